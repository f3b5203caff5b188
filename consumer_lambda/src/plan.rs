//! Planning a batch: from Kinesis records to one merged update per DynamoDB row.
//!
//! Pure logic, no I/O: the tests run it on fixtures.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use streamlake_core::normalize;
use streamlake_core::routing::{Routing, STATION_NAME_ATTRIBUTE};
use streamlake_core::seqnum;

/// One Kinesis record of the batch, as the plan needs it.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Sequence number (decimal string).
    pub sequence_number: &'a str,
    /// Partition key.
    pub partition_key: &'a str,
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

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A datatype's measurement.
    Number(f64),
    /// The station's name.
    Text(String),
}

/// An attribute value and the sequence number of the record that set it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// The value.
    pub value: Value,
    /// Sequence number of the record it comes from.
    pub sequence_number: String,
}

/// Everything the batch sets on one row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowUpdate {
    /// Which row.
    pub key: RowKey,
    /// Attribute (a datatype, or `StationName`) -> newest value of the batch.
    pub attributes: BTreeMap<String, Versioned>,
    /// Sequence numbers of the records merged into this update, in batch order.
    pub sequence_numbers: Vec<String>,
}

impl RowUpdate {
    /// The lowest sequence number that contributed to the row: where a retry must start.
    pub fn lowest_sequence_number(&self) -> &str {
        seqnum::min(self.sequence_numbers.iter().map(String::as_str))
            .expect("a planned row has a record")
    }
}

/// A record that can never be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Arrival time in the stream.
    pub arrival: DateTime<Utc>,
    /// Its bytes.
    pub data: Vec<u8>,
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

/// Plans the writes of a batch. Of two values for the same attribute, the one with the
/// higher sequence number wins, whatever the order of the records.
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
                    partition_key: record.partition_key.to_owned(),
                    arrival: record.arrival,
                    data: record.data.to_vec(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let Some(table) = routing.table_for(&observation.datatype) else {
            plan.unrouted += 1;
            continue;
        };
        if !storable(observation.value) {
            plan.invalid.push(InvalidEntry {
                sequence_number: record.sequence_number.to_owned(),
                partition_key: record.partition_key.to_owned(),
                arrival: record.arrival,
                data: record.data.to_vec(),
                reason: format!(
                    "field `value`: {} is outside the range DynamoDB numbers can hold (1E-130 to 9.99E+125)",
                    observation.value
                ),
            });
            continue;
        }
        let key = RowKey {
            table: table.to_owned(),
            stationid: observation.stationid.into_owned(),
            date: observation.date,
        };
        let row = rows.entry(key.clone()).or_insert_with(|| RowUpdate {
            key,
            attributes: BTreeMap::new(),
            sequence_numbers: Vec::new(),
        });
        let seq = record.sequence_number;
        let mut set = |attribute: String, value: Value| {
            let newer = row
                .attributes
                .get(&attribute)
                .is_none_or(|old| seqnum::compare(&old.sequence_number, seq).is_lt());
            if newer {
                row.attributes.insert(
                    attribute,
                    Versioned {
                        value,
                        sequence_number: seq.to_owned(),
                    },
                );
            }
        };
        set(
            observation.datatype.into_owned(),
            Value::Number(observation.value),
        );
        if let Some(name) = observation.station_name {
            set(
                STATION_NAME_ATTRIBUTE.to_owned(),
                Value::Text(name.into_owned()),
            );
        }
        row.sequence_numbers.push(seq.to_owned());
    }
    plan.updates = rows.into_values().collect();
    plan
}

/// Whether DynamoDB can store the number: zero, or a magnitude from 1E-130 to below 1E+126.
fn storable(value: f64) -> bool {
    value == 0.0 || (1e-130..1e126).contains(&value.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlake_core::time::from_epoch_millis;

    fn rec<'a>(seq: &'a str, data: &'a str) -> InputRecord<'a> {
        InputRecord {
            sequence_number: seq,
            partition_key: "k",
            data: data.as_bytes(),
            arrival: from_epoch_millis(0),
        }
    }

    fn number(row: &RowUpdate, attribute: &str) -> f64 {
        match row.attributes[attribute].value {
            Value::Number(n) => n,
            Value::Text(_) => panic!("{attribute} is text"),
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
                "10",
                r#"{"date":"2021-10-01T00:00:00","stationid":"S1","location":"B","datatype":"PRCP","value":7}"#,
            ),
        ];
        let plan = plan_batch(records, &Routing::default());
        assert_eq!(plan.updates.len(), 3);
        let precip = &plan.updates[0];
        assert_eq!(precip.key.table, "Precipitation");
        assert_eq!(precip.key.date.to_string(), "2021-10-01");
        assert_eq!(number(precip, "PRCP"), 7.0, "the newer record wins");
        assert_eq!(precip.attributes["PRCP"].sequence_number, "10");
        assert_eq!(number(precip, "SNOW"), 0.0);
        assert_eq!(
            precip.attributes["StationName"].value,
            Value::Text("B".into())
        );
        assert_eq!(precip.sequence_numbers, ["1", "2", "10"]);
        assert_eq!(precip.lowest_sequence_number(), "1");
        assert_eq!(plan.updates[2].key.table, "Temperature");
    }

    #[test]
    fn the_higher_sequence_number_wins_whatever_the_order() {
        let records = [
            rec(
                "10",
                r#"{"date":"2021-10-01","stationid":"S1","datatype":"PRCP","value":7}"#,
            ),
            rec(
                "9",
                r#"{"date":"2021-10-01","stationid":"S1","datatype":"PRCP","value":5}"#,
            ),
        ];
        let plan = plan_batch(records, &Routing::default());
        assert_eq!(number(&plan.updates[0], "PRCP"), 7.0);
        assert_eq!(plan.updates[0].lowest_sequence_number(), "9");
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
            rec(
                "4",
                r#"{"date":"2021-10-01","stationid":"S1","datatype":"TMIN","value":1e200}"#,
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
        assert_eq!(seqs, ["1", "3", "4"]);
        assert!(plan.invalid[2].reason.contains("DynamoDB"));
        assert!(plan.invalid[1].reason.contains("`value`"));
        assert_eq!(plan.invalid[0].data, b"not json");
    }
}
