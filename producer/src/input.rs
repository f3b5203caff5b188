//! Where records come from: NDJSON lines, or a generator; and the Kinesis partition key
//! each one is sent with.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::BufRead;

use serde_json::value::RawValue;
use streamlake_core::dataset::Dataset;
use streamlake_core::generate::GeneratedRecord;

use crate::batch::Entry;

/// Kinesis' limit on a partition key, in Unicode characters.
const MAX_KEY_CHARS: usize = 256;

/// How a record's partition key is chosen: the value of one of its fields (a dotted path
/// reaches into nested objects), so that the records of one key stay in order on one
/// shard; a record without that field, or with no field named, is keyed by a hash of its
/// bytes, which spreads such records over the shards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionKeyer {
    path: Vec<String>,
}

impl PartitionKeyer {
    /// Keys by the field at `dotted` (`"user.id"`).
    pub fn field(dotted: &str) -> Self {
        Self {
            path: dotted.split('.').map(str::to_owned).collect(),
        }
    }

    /// Keys by the field the dataset names in `partition_key`, else by hash.
    pub fn of_dataset(dataset: &Dataset) -> Self {
        dataset.partition_key().map(Self::field).unwrap_or_default()
    }

    /// Keys every record by a hash of its bytes.
    pub fn hash() -> Self {
        Self::default()
    }

    /// The partition key of one record.
    pub fn key(&self, record: &[u8]) -> String {
        self.field_value(record)
            .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS)
            .unwrap_or_else(|| {
                let mut hasher = std::hash::DefaultHasher::new();
                record.hash(&mut hasher);
                format!("h-{:016x}", hasher.finish())
            })
    }

    /// The text of the keyed field: a string as is, a number as written.
    fn field_value(&self, record: &[u8]) -> Option<String> {
        let (last, parents) = self.path.split_last()?;
        let mut raw: &RawValue = serde_json::from_slice(record).ok()?;
        for key in parents {
            raw = member(raw, key)?;
        }
        let value = member(raw, last)?;
        match serde_json::from_str::<serde_json::Value>(value.get()).ok()? {
            serde_json::Value::String(s) => Some(s),
            n @ serde_json::Value::Number(_) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// One member of a JSON object, unparsed.
fn member<'a>(object: &'a RawValue, key: &str) -> Option<&'a RawValue> {
    let mut members: HashMap<Cow<'a, str>, &'a RawValue> =
        serde_json::from_str(object.get()).ok()?;
    members.remove(key)
}

/// Reads NDJSON: one record per non-blank line, sent as is (without the newline), keyed
/// by `keyer`.
pub fn ndjson_entries(
    reader: impl BufRead,
    keyer: PartitionKeyer,
) -> impl Iterator<Item = std::io::Result<Entry>> {
    reader.split(b'\n').filter_map(move |line| match line {
        Err(e) => Some(Err(e)),
        Ok(mut line) => {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.trim_ascii().is_empty() {
                return None;
            }
            Some(Ok(Entry {
                partition_key: keyer.key(&line),
                data: line,
            }))
        }
    })
}

impl From<GeneratedRecord> for Entry {
    fn from(r: GeneratedRecord) -> Self {
        Entry {
            partition_key: r.partition_key,
            data: r.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_keys_them_by_a_field() {
        let input = b"{\"id\":\"S1\",\"value\":1}\r\n\n  \nnot json\n{\"id\":7}\n{\"id\":\"\"}";
        let entries: Vec<Entry> = ndjson_entries(&input[..], PartitionKeyer::field("id"))
            .map(Result::unwrap)
            .collect();
        let keys: Vec<&str> = entries.iter().map(|e| e.partition_key.as_str()).collect();
        assert_eq!(keys[0], "S1");
        assert!(keys[1].starts_with("h-"), "{keys:?}");
        assert_eq!(keys[2], "7");
        assert!(keys[3].starts_with("h-"), "{keys:?}");
        assert_eq!(entries[0].data, b"{\"id\":\"S1\",\"value\":1}");
        assert_eq!(entries[1].data, b"not json");
    }

    #[test]
    fn a_dotted_path_reaches_into_nested_objects() {
        let keyer = PartitionKeyer::field("user.id");
        assert_eq!(keyer.key(br#"{"user":{"id":"u-1","n":2},"x":[1]}"#), "u-1");
        assert!(keyer.key(br#"{"user":"u-1"}"#).starts_with("h-"));
    }

    #[test]
    fn the_hash_spreads_records_and_is_stable_for_one_record() {
        let keyer = PartitionKeyer::hash();
        assert_eq!(keyer.key(b"{\"a\":1}"), keyer.key(b"{\"a\":1}"));
        assert_ne!(keyer.key(b"{\"a\":1}"), keyer.key(b"{\"a\":2}"));
        let weather = PartitionKeyer::of_dataset(&Dataset::weather());
        assert_eq!(weather.key(br#"{"stationid":"GHCND:X"}"#), "GHCND:X");
    }

    #[test]
    fn a_key_longer_than_kinesis_allows_is_hashed() {
        let long = format!("{{\"id\":\"{}\"}}", "k".repeat(257));
        assert!(
            PartitionKeyer::field("id")
                .key(long.as_bytes())
                .starts_with("h-")
        );
    }
}
