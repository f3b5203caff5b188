//! Planning a batch: from Kinesis records to one merged update per DynamoDB row.
//!
//! Every record is read against the dataset; each item table whose `when` it passes takes
//! its key and attributes (a pivot adds the attribute its name column names). Rows are
//! merged per key, the newest record's value of each attribute winning, so a batch needs
//! one request per distinct row. Pure logic, no I/O: the tests run it on fixtures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use streamlake_core::dataset::Value as Column;
use streamlake_core::dataset::dynamodb::{
    ItemTable, JsonAs, KeyValue, Nulls, ROW_VERSION_ATTRIBUTE, VERSION_SUFFIX, Versions,
    WINDOW_END_ATTRIBUTE, text,
};
use streamlake_core::seqnum;

use crate::tables::Tables;

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

/// A key attribute and its value.
pub type KeyPart = (String, KeyValue);

/// The key of a row: table, partition key, sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    /// Table name (as deployed).
    pub table: String,
    /// Partition key attribute and value.
    pub partition: KeyPart,
    /// Sort key attribute and value.
    pub sort: Option<KeyPart>,
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}={}",
            self.table,
            self.partition.0,
            self.partition.1.as_str()
        )?;
        if let Some((name, value)) = &self.sort {
            write!(f, " {name}={}", value.as_str())?;
        }
        Ok(())
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number (`N`), as its decimal text.
    Number(String),
    /// Text (`S`).
    Text(String),
    /// A boolean (`BOOL`).
    Bool(bool),
    /// JSON text stored as a DynamoDB document (`M`, `L`, ...).
    Document(String),
    /// No value: the attribute is removed.
    Removed,
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
    /// Attribute -> newest value of the batch.
    pub attributes: BTreeMap<String, Versioned>,
    /// How the table keeps versions.
    pub versions: Versions,
    /// Sequence numbers of the records merged into this update, in batch order.
    pub sequence_numbers: Vec<String>,
}

impl RowUpdate {
    /// The lowest sequence number that contributed to the row: where a retry must start.
    pub fn lowest_sequence_number(&self) -> &str {
        seqnum::min(self.sequence_numbers.iter().map(String::as_str))
            .expect("a planned row has a record")
    }

    /// The attribute holding the version of `attribute`.
    pub fn version_of(&self, attribute: &str) -> String {
        match self.versions {
            Versions::Attribute => format!("{attribute}{VERSION_SUFFIX}"),
            Versions::Row => ROW_VERSION_ATTRIBUTE.to_owned(),
        }
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
    /// Valid records skipped because no table takes them.
    pub unrouted: usize,
}

/// DynamoDB's largest item (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html#limits-items>).
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's longest partition and sort key values, in bytes.
const MAX_PARTITION_KEY_BYTES: usize = 2048;
const MAX_SORT_KEY_BYTES: usize = 1024;

/// What one record sets on one row.
struct Contribution {
    key: RowKey,
    versions: Versions,
    attributes: Vec<(String, Value)>,
}

/// Plans the writes of a batch. Of two values for the same attribute, the one with the
/// higher sequence number wins, whatever the order of the records.
pub fn plan_batch<'a>(
    records: impl IntoIterator<Item = InputRecord<'a>>,
    tables: &Tables,
) -> BatchPlan {
    let mut rows: BTreeMap<RowKey, RowUpdate> = BTreeMap::new();
    let mut plan = BatchPlan::default();
    for record in records {
        let contributions = tables
            .dataset()
            .normalize(record.data, record.arrival)
            .map_err(|e| e.to_string())
            .and_then(|n| contributions(tables, &n.values, n.time));
        let contributions = match contributions {
            Ok(c) => c,
            Err(reason) => {
                plan.invalid.push(InvalidEntry {
                    sequence_number: record.sequence_number.to_owned(),
                    partition_key: record.partition_key.to_owned(),
                    arrival: record.arrival,
                    data: record.data.to_vec(),
                    reason,
                });
                continue;
            }
        };
        if contributions.is_empty() {
            plan.unrouted += 1;
            continue;
        }
        let seq = record.sequence_number;
        for c in contributions {
            let row = rows.entry(c.key.clone()).or_insert_with(|| RowUpdate {
                key: c.key,
                attributes: BTreeMap::new(),
                versions: c.versions,
                sequence_numbers: Vec::new(),
            });
            for (attribute, value) in c.attributes {
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
            }
            row.sequence_numbers.push(seq.to_owned());
        }
    }
    plan.updates = rows.into_values().collect();
    plan
}

/// What a record sets on each table that takes it; an error names why it cannot be
/// written anywhere.
fn contributions(
    tables: &Tables,
    values: &[Column<'_>],
    time: DateTime<Utc>,
) -> Result<Vec<Contribution>, String> {
    let columns = tables.dataset().columns();
    let mut out = Vec::new();
    for table in &tables.dynamodb().tables {
        if table.when.as_ref().is_some_and(|w| !w.accepts(values)) {
            continue;
        }
        let key = row_key(tables, table, values, time)?;
        let mut attributes = Vec::with_capacity(table.attributes.len() + 1);
        let mut bytes = 0;
        for a in &table.attributes {
            if let Some(value) = attribute_value(table, &values[a.column], &columns[a.column].name)?
            {
                bytes += a.name.len() + size(&value);
                attributes.push((a.name.clone(), value));
            }
        }
        if let Some(pivot) = table.pivot {
            let name = text(&values[pivot.name]).unwrap_or_default();
            let field = &columns[pivot.name].name;
            if name.is_empty()
                || name.ends_with(VERSION_SUFFIX)
                || name == ROW_VERSION_ATTRIBUTE
                || name == WINDOW_END_ATTRIBUTE
                || name == key.partition.0
                || key.sort.as_ref().is_some_and(|(s, _)| *s == name)
                || table.attributes.iter().any(|a| a.name == name)
            {
                return Err(format!(
                    "field `{field}`: {name:?} cannot name an attribute of table {} (empty, a key, another attribute or a version)",
                    table.name
                ));
            }
            let value_column = &columns[pivot.value].name;
            if let Some(value) = attribute_value(table, &values[pivot.value], value_column)? {
                bytes += name.len() + size(&value);
                attributes.push((name, value));
            }
        }
        if bytes > MAX_ITEM_BYTES {
            return Err(format!(
                "the record's attributes for table {} take {bytes} bytes: a DynamoDB item holds at most 400 KB",
                table.name
            ));
        }
        out.push(Contribution {
            key,
            versions: table.versions,
            attributes,
        });
    }
    Ok(out)
}

fn row_key(
    tables: &Tables,
    table: &ItemTable,
    values: &[Column<'_>],
    time: DateTime<Utc>,
) -> Result<RowKey, String> {
    let part = |key: &streamlake_core::dataset::dynamodb::Key, limit: usize| {
        let value = key.value(values, time).ok_or_else(|| {
            format!(
                "field `{}`: missing, and it is a key of table {}",
                key.attribute, table.name
            )
        })?;
        let len = value.as_str().len();
        if len == 0 || len > limit {
            return Err(format!(
                "field `{}`: a key of table {} takes 1 to {limit} bytes, not {len}",
                key.attribute, table.name
            ));
        }
        Ok((key.attribute.clone(), value))
    };
    Ok(RowKey {
        table: tables.name(&table.name),
        partition: part(&table.partition_key, MAX_PARTITION_KEY_BYTES)?,
        sort: table
            .sort_key
            .as_ref()
            .map(|k| part(k, MAX_SORT_KEY_BYTES))
            .transpose()?,
    })
}

/// The attribute value of a column's value: `None` leaves the attribute as it is.
fn attribute_value(
    table: &ItemTable,
    value: &Column<'_>,
    field: &str,
) -> Result<Option<Value>, String> {
    Ok(Some(match value {
        Column::Null => match table.nulls {
            Nulls::Keep => return Ok(None),
            Nulls::Remove => Value::Removed,
        },
        Column::String(s) => Value::Text(s.to_string()),
        Column::Long(n) => Value::Number(n.to_string()),
        Column::Double(x) => {
            if !storable(*x) {
                return Err(format!(
                    "field `{field}`: {x} is outside the range DynamoDB numbers can hold (1E-130 to 9.99E+125)"
                ));
            }
            Value::Number(x.to_string())
        }
        Column::Boolean(b) => Value::Bool(*b),
        Column::Json(j) => match table.json {
            JsonAs::String => Value::Text((*j).to_owned()),
            JsonAs::Document => Value::Document((*j).to_owned()),
        },
        other @ (Column::Timestamp(_) | Column::Date(_)) => {
            Value::Text(text(other).expect("not null"))
        }
    }))
}

/// Roughly what a value takes in an item, in bytes.
fn size(value: &Value) -> usize {
    match value {
        Value::Number(s) | Value::Text(s) | Value::Document(s) => s.len(),
        Value::Bool(_) => 1,
        Value::Removed => 0,
    }
}

/// Whether DynamoDB can store the number: zero, or a magnitude from 1E-130 to below 1E+126.
fn storable(value: f64) -> bool {
    value == 0.0 || (1e-130..1e126).contains(&value.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlake_core::dataset::Dataset;
    use streamlake_core::time::from_epoch_millis;

    fn weather() -> Tables {
        Tables::new(Dataset::weather(), "").unwrap()
    }

    fn rec<'a>(seq: &'a str, data: &'a str) -> InputRecord<'a> {
        InputRecord {
            sequence_number: seq,
            partition_key: "k",
            data: data.as_bytes(),
            arrival: from_epoch_millis(0),
        }
    }

    fn number(row: &RowUpdate, attribute: &str) -> String {
        match &row.attributes[attribute].value {
            Value::Number(n) => n.clone(),
            other => panic!("{attribute} is {other:?}"),
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
        let plan = plan_batch(records, &weather());
        assert_eq!(plan.updates.len(), 3);
        let precip = &plan.updates[0];
        assert_eq!(precip.key.table, "Precipitation");
        assert_eq!(precip.key.sort.as_ref().unwrap().1.as_str(), "2021-10-01");
        assert_eq!(number(precip, "PRCP"), "7", "the newer record wins");
        assert_eq!(precip.attributes["PRCP"].sequence_number, "10");
        assert_eq!(number(precip, "SNOW"), "0");
        assert_eq!(
            precip.attributes["StationName"].value,
            Value::Text("B".into())
        );
        assert_eq!(precip.sequence_numbers, ["1", "2", "10"]);
        assert_eq!(precip.lowest_sequence_number(), "1");
        assert_eq!(precip.version_of("PRCP"), "PRCP_seq");
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
        let plan = plan_batch(records, &weather());
        assert_eq!(number(&plan.updates[0], "PRCP"), "7");
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
        let plan = plan_batch(records, &weather());
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

    #[test]
    fn a_pivot_cannot_name_a_version_attribute() {
        let records = [rec(
            "1",
            r#"{"date":"2021-10-01","stationid":"S1","datatype":"x_seq","value":3}"#,
        )];
        let tables = Tables::new(
            Dataset::from_toml(
                &Dataset::weather()
                    .text()
                    .replace("case = \"upper\"\n", "")
                    .replace("in = [\"PRCP\", \"SNOW\"]", "in = [\"PRCP\", \"x_seq\"]"),
                "weather.toml",
            )
            .unwrap(),
            "",
        )
        .unwrap();
        let plan = plan_batch(records, &tables);
        assert_eq!(plan.invalid.len(), 1);
        assert!(
            plan.invalid[0].reason.contains("field `datatype`"),
            "{:?}",
            plan.invalid
        );
    }
}
