//! Where records come from: NDJSON lines, or the built-in generator.

use std::io::BufRead;

use streamlake_core::generate::GeneratedRecord;

use crate::batch::Entry;

/// The partition key of an input line: the record's `stationid` when it has one, so
/// that a station's records keep their order; otherwise a key derived from the line
/// number, which spreads unreadable lines over the shards.
pub fn partition_key(line: &[u8], line_number: usize) -> String {
    #[derive(serde::Deserialize)]
    struct Keyed<'a> {
        #[serde(borrow)]
        stationid: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Keyed<'_>>(line)
        .ok()
        .and_then(|k| k.stationid)
        .filter(|k| !k.is_empty() && k.chars().count() <= 256)
        .map_or_else(|| format!("line-{line_number}"), |k| k.into_owned())
}

/// Reads NDJSON: one record per non-blank line, sent as is (without the newline).
pub fn ndjson_entries(reader: impl BufRead) -> impl Iterator<Item = std::io::Result<Entry>> {
    reader
        .split(b'\n')
        .enumerate()
        .filter_map(|(i, line)| match line {
            Err(e) => Some(Err(e)),
            Ok(mut line) => {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.trim_ascii().is_empty() {
                    return None;
                }
                Some(Ok(Entry {
                    partition_key: partition_key(&line, i + 1),
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
    fn reads_lines_and_keys_them_by_station() {
        let input = b"{\"stationid\":\"S1\",\"value\":1}\r\n\n  \nnot json\n{\"stationid\":\"S2\"}";
        let entries: Vec<Entry> = ndjson_entries(&input[..]).map(Result::unwrap).collect();
        let keys: Vec<&str> = entries.iter().map(|e| e.partition_key.as_str()).collect();
        assert_eq!(keys, ["S1", "line-4", "S2"]);
        assert_eq!(entries[0].data, b"{\"stationid\":\"S1\",\"value\":1}");
        assert_eq!(entries[1].data, b"not json");
    }
}
