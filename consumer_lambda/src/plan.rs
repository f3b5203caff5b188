//! Planning a batch: from Kinesis records to one merged update per DynamoDB row.
//!
//! Pure logic, no I/O: the tests run it on fixtures.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use streamlake_core::normalize;
use streamlake_core::routing::Routing;

/// One Kinesis record of the batch, as the plan needs it.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Sequence number (decimal string).
    pub sequence_number: &'a str,
    /// Decoded record bytes.
    pub data: &'a [u8],
    /// Arrival time in the stream.
    pub arrival: DateTime<Utc>,
}

/// The key of a row: table, station, day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    /// Table name.
    pub table: String,
    /// Partition key: the station.
    pub stationid: String,
    /// Sort key: the UTC day.
    pub date: NaiveDate,
}

/// Everything the batch sets on one row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowUpdate {
    /// Which row.
    pub key: RowKey,
    /// Station name, from the last record that had one.
    pub station_name: Option<String>,
    /// Datatype -> value; a later record of the batch replaces an earlier one.
    pub values: BTreeMap<String, f64>,
    /// Sequence numbers of the records merged into this update, in batch order.
    pub sequence_numbers: Vec<String>,
}

/// A record that can never be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// Its sequence number.
    pub sequence_number: String,
    /// Why it is invalid.
    pub reason: String,
}

/// The writes a batch needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchPlan {
    /// One update per row, in key order.
    pub updates: Vec<RowUpdate>,
    /// Records skipped because they are invalid.
    pub invalid: Vec<InvalidEntry>,
    /// Valid records skipped because their datatype has no table.
    pub unrouted: usize,
}

/// Plans the writes of a batch (records in stream order).
pub fn plan_batch<'a>(
    records: impl IntoIterator<Item = InputRecord<'a>>,
    routing: &Routing,
) -> BatchPlan {
    let mut rows: BTreeMap<RowKey, RowUpdate> = BTreeMap::new();
    let mut plan = BatchPlan::default();
    for record in records {
        let observation = match normalize(record.data, record.arrival) {
            Ok(o) => o,
            Err(e) => {
                plan.invalid.push(InvalidEntry {
                    sequence_number: record.sequence_number.to_owned(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let Some(table) = routing.table_for(&observation.datatype) else {
            plan.unrouted += 1;
            continue;
        };
        let key = RowKey {
            table: table.to_owned(),
            stationid: observation.stationid.into_owned(),
            date: observation.date,
        };
        let row = rows.entry(key.clone()).or_insert_with(|| RowUpdate {
            key,
            station_name: None,
            values: BTreeMap::new(),
            sequence_numbers: Vec::new(),
        });
        if let Some(name) = observation.station_name {
            row.station_name = Some(name.into_owned());
        }
        row.values
            .insert(observation.datatype.into_owned(), observation.value);
        row.sequence_numbers.push(record.sequence_number.to_owned());
    }
    plan.updates = rows.into_values().collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlake_core::time::from_epoch_millis;

    fn rec<'a>(seq: &'a str, data: &'a str) -> InputRecord<'a> {
        InputRecord {
            sequence_number: seq,
            data: data.as_bytes(),
            arrival: from_epoch_millis(0),
        }
    }

    #[test]
    fn merges_datatypes_of_a_station_day_into_one_row() {
        let records = [
            rec(
                "1",
                r#"{"date":"2021-10-01T00:00:00","stationid":"S1","location":"A","datatype":"PRCP","value":5}"#,
            ),
            rec(
                "2",
                r#"{"date":"2021-10-01T00:00:00","stationid":"S1","location":"A","datatype":"SNOW","value":0}"#,
            ),
            rec(
                "3",
                r#"{"date":"2021-10-01T00:00:00","stationid":"S1","location":"A","datatype":"TMAX","value":20.5}"#,
            ),
            rec(
                "4",
                r#"{"date":"2021-10-02T00:00:00","stationid":"S1","location":"A","datatype":"PRCP","value":1}"#,
            ),
            rec(
                "5",
                r#"{"date":"2021-10-01T00:00:00","stationid":"S1","location":"A","datatype":"PRCP","value":7}"#,
            ),
        ];
        let plan = plan_batch(records, &Routing::default());
        assert_eq!(plan.updates.len(), 3);
        let precip = &plan.updates[0];
        assert_eq!(precip.key.table, "Precipitation");
        assert_eq!(precip.key.date.to_string(), "2021-10-01");
        assert_eq!(
            precip.values["PRCP"], 7.0,
            "the later record of the batch wins"
        );
        assert_eq!(precip.values["SNOW"], 0.0);
        assert_eq!(precip.sequence_numbers, ["1", "2", "5"]);
        assert_eq!(precip.station_name.as_deref(), Some("A"));
        assert_eq!(plan.updates[2].key.table, "Temperature");
    }

    #[test]
    fn skips_invalid_and_unrouted_records_with_counts() {
        let records = [
            rec("1", "not json"),
            rec(
                "2",
                r#"{"date":"2021-10-01","stationid":"S1","datatype":"AWND","value":3}"#,
            ),
            rec(
                "3",
                r#"{"date":"2021-10-01","stationid":"S1","datatype":"TMIN","value":"x"}"#,
            ),
        ];
        let plan = plan_batch(records, &Routing::default());
        assert!(plan.updates.is_empty());
        assert_eq!(plan.unrouted, 1);
        let seqs: Vec<&str> = plan
            .invalid
            .iter()
            .map(|i| i.sequence_number.as_str())
            .collect();
        assert_eq!(seqs, ["1", "3"]);
        assert!(plan.invalid[1].reason.contains("`value`"));
    }
}
