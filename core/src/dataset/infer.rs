//! A starting dataset file from a sample of records, as a Glue crawler infers a table, but
//! before anything is deployed: each key (nested objects as dotted paths) becomes a column
//! with the narrowest type every sampled value fits, `required` where every record has a
//! value, and the most time-like column becomes the event time, with its format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use super::{ColumnType, Dataset, DatasetError};

/// The share of a key's values that must fit a type for the column to get it.
const TOLERANCE: f64 = 0.99;

/// Nested objects deeper than this are kept as one `json` column.
const MAX_DEPTH: usize = 4;

/// Text time formats tried on strings, after RFC 3339.
const PATTERNS: [&str; 4] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%d/%m/%Y %H:%M:%S%.f",
];

/// Epoch milliseconds between 2001 and 2286; seconds between 2001 and 2286.
const EPOCH_MILLIS: std::ops::Range<i64> = 1_000_000_000_000..10_000_000_000_000;
const EPOCH_SECONDS: std::ops::Range<i64> = 1_000_000_000..10_000_000_000;

/// What the sampled values of one key were.
#[derive(Debug, Default, Clone)]
struct Seen {
    present: usize,
    booleans: usize,
    integers: usize,
    floats: usize,
    numeric_strings: usize,
    integer_strings: usize,
    epoch_millis: usize,
    epoch_seconds: usize,
    rfc3339: usize,
    dates: usize,
    patterns: [usize; PATTERNS.len()],
    strings: usize,
    other: usize,
}

/// The type, and the time format, the values of one key fit.
#[derive(Debug, Clone, PartialEq)]
enum Fit {
    Type(ColumnType),
    Time(&'static str),
}

impl Seen {
    fn add(&mut self, value: &Value) {
        self.present += 1;
        match value {
            Value::Bool(_) => self.booleans += 1,
            Value::Number(n) => match n.as_i64() {
                Some(i) => {
                    self.integers += 1;
                    self.epoch_millis += usize::from(EPOCH_MILLIS.contains(&i));
                    self.epoch_seconds += usize::from(EPOCH_SECONDS.contains(&i));
                }
                None => self.floats += 1,
            },
            Value::String(s) => {
                self.strings += 1;
                // Not "007": a code with leading zeros stays text.
                let digits = s.trim_start_matches('-');
                if s.parse::<i64>().is_ok() && (digits.len() == 1 || !digits.starts_with('0')) {
                    self.integer_strings += 1;
                }
                if s.parse::<f64>().is_ok_and(f64::is_finite) {
                    self.numeric_strings += 1;
                }
                if DateTime::parse_from_rfc3339(s).is_ok() {
                    self.rfc3339 += 1;
                } else if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
                    self.dates += 1;
                }
                for (seen, pattern) in self.patterns.iter_mut().zip(PATTERNS) {
                    *seen += usize::from(NaiveDateTime::parse_from_str(s, pattern).is_ok());
                }
            }
            _ => self.other += 1,
        }
    }

    /// The narrowest type that almost every value fits (a few stray values, such as
    /// malformed records in a sample, do not widen a column to `json`), and how many
    /// values do not fit it.
    fn fit(&self) -> (Fit, usize) {
        let n = self.present;
        let candidates = [
            (Fit::Type(ColumnType::Boolean), self.booleans),
            (Fit::Type(ColumnType::Timestamp), self.rfc3339),
            (Fit::Type(ColumnType::Date), self.dates),
        ]
        .into_iter()
        .chain(
            self.patterns
                .iter()
                .zip(PATTERNS)
                .map(|(&c, p)| (Fit::Time(p), c)),
        )
        .chain([
            (
                Fit::Type(ColumnType::Long),
                self.integers + self.integer_strings,
            ),
            (
                Fit::Type(ColumnType::Double),
                self.integers + self.floats + self.numeric_strings,
            ),
            (Fit::Type(ColumnType::String), self.strings),
        ]);
        for (fit, fitting) in candidates {
            if fitting > 0 && fitting as f64 >= n as f64 * TOLERANCE {
                return (fit, n - fitting);
            }
        }
        (Fit::Type(ColumnType::Json), 0)
    }
}

/// The outcome of [`infer`].
#[derive(Debug, Clone)]
pub struct Inferred {
    /// The dataset file's text (checked: it loads).
    pub text: String,
    /// The dataset it makes.
    pub dataset: Dataset,
    /// Records read.
    pub records: usize,
    /// Lines that were not JSON objects (not sampled).
    pub skipped: usize,
}

/// Infers a dataset named `name` from sample records (one JSON object each); `origin`
/// names the sample in the file's header comment.
pub fn infer<'a>(
    name: &str,
    origin: &str,
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Inferred, DatasetError> {
    let mut seen: Vec<(Vec<String>, Seen)> = Vec::new();
    let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let (mut count, mut skipped) = (0, 0);
    for record in records {
        let Ok(Node::Object(object)) = serde_json::from_slice::<Node>(record) else {
            skipped += 1;
            continue;
        };
        count += 1;
        let mut leaves = Vec::new();
        flatten(&object, &mut Vec::new(), &mut leaves);
        for (path, value) in leaves {
            let i = *index.entry(path.clone()).or_insert_with(|| {
                seen.push((path, Seen::default()));
                seen.len() - 1
            });
            if !value.is_null() {
                seen[i].1.add(&value);
            }
        }
    }
    let text = render(name, origin, count, &seen);
    let dataset = Dataset::from_toml(&text, &format!("the dataset inferred from {origin}"))?;
    Ok(Inferred {
        text,
        dataset,
        records: count,
        skipped,
    })
}

/// A JSON value whose objects keep their keys in the record's order (the columns' order).
#[derive(Debug)]
enum Node {
    Object(Vec<(String, Node)>),
    Leaf(Value),
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;

        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Node;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Leaf(v.into()))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Leaf(v.into()))
            }

            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Leaf(v.into()))
            }

            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Leaf(v.into()))
            }

            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Leaf(v.into()))
            }

            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Leaf(Value::Null))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Node::Leaf(Value::Array(items)))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut members: Vec<(String, Node)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Node>()? {
                    // A repeated key: the last value counts, as for serde_json's maps.
                    members.retain(|(k, _)| *k != key);
                    members.push((key, value));
                }
                Ok(Node::Object(members))
            }
        }

        deserializer.deserialize_any(Visit)
    }
}

impl Node {
    /// The value as serde_json holds it (an object's keys sorted).
    fn to_value(&self) -> Value {
        match self {
            Node::Leaf(v) => v.clone(),
            Node::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

/// The leaves of an object, nested objects as paths; an object deeper than
/// [`MAX_DEPTH`], an empty one or an array is one leaf.
fn flatten(object: &[(String, Node)], path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    for (key, value) in object {
        path.push(key.clone());
        match value {
            Node::Object(inner) if !inner.is_empty() && path.len() < MAX_DEPTH => {
                flatten(inner, path, out);
            }
            _ => out.push((path.clone(), value.to_value())),
        }
        path.pop();
    }
}

/// Last keys that say too little on their own to name a nested field's column: `session.id`
/// becomes `session_id`, not `id`.
const GENERIC_KEYS: [&str; 16] = [
    "id",
    "name",
    "type",
    "kind",
    "value",
    "key",
    "code",
    "status",
    "label",
    "text",
    "data",
    "time",
    "timestamp",
    "date",
    "version",
    "count",
];

/// The column name of every path, in order: a top-level key keeps its name; a nested one
/// gets its last key, or its whole path joined by `_` when the last key alone is generic
/// ([`GENERIC_KEYS`]) or is also another path's last key. Names are made of
/// `[A-Za-z0-9_]`, never a partition column's name, and unique.
fn column_names(paths: &[&[String]]) -> Vec<String> {
    let clean = |s: &str| -> String {
        let mut name: String = s
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            name.insert(0, '_');
        }
        name
    };
    let last = |path: &[String]| clean(path.last().map_or("", String::as_str));
    let mut last_keys: BTreeMap<String, usize> = BTreeMap::new();
    for path in paths {
        *last_keys.entry(last(path)).or_default() += 1;
    }
    let mut taken: Vec<String> = Vec::with_capacity(paths.len());
    for path in paths {
        let key = last(path);
        let generic = GENERIC_KEYS.contains(&key.to_ascii_lowercase().as_str());
        let mut name = if path.len() > 1 && (generic || last_keys[&key] > 1) {
            clean(&path.join("_"))
        } else {
            key
        };
        if taken.contains(&name) {
            name = clean(&path.join("_"));
        }
        while ["year", "month", "day", "hour"].contains(&name.as_str()) || taken.contains(&name) {
            name.push_str("_value");
        }
        taken.push(name);
    }
    taken
}

/// How time-like a key's name is, for choosing the event time.
fn time_score(path: &[String]) -> usize {
    let key = path
        .last()
        .map_or(String::new(), |k| k.to_ascii_lowercase());
    ["time", "timestamp", "ts", "date", "at", "when"]
        .iter()
        .map(|hint| {
            if key == *hint {
                3
            } else if key.ends_with(hint) || key.starts_with(hint) {
                2
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

fn render(name: &str, origin: &str, count: usize, seen: &[(Vec<String>, Seen)]) -> String {
    struct Candidate {
        index: usize,
        format: String,
        score: usize,
    }
    let fits: Vec<(Fit, usize)> = seen.iter().map(|(_, s)| s.fit()).collect();
    // The event time: a required time-like column, the most time-like name first.
    let mut event: Option<Candidate> = None;
    for (i, ((path, s), (fit, _))) in seen.iter().zip(&fits).enumerate() {
        if s.present < count {
            continue;
        }
        let score = time_score(path);
        let format = match fit {
            Fit::Type(ColumnType::Timestamp | ColumnType::Date) => "rfc3339".to_owned(),
            Fit::Time(pattern) => (*pattern).to_owned(),
            Fit::Type(ColumnType::Long) if score > 0 && s.epoch_millis == s.present => {
                "epoch_millis".to_owned()
            }
            Fit::Type(ColumnType::Long) if score > 0 && s.epoch_seconds == s.present => {
                "epoch_seconds".to_owned()
            }
            _ => continue,
        };
        if event.as_ref().is_none_or(|e| score > e.score) {
            event = Some(Candidate {
                index: i,
                format,
                score,
            });
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Inferred by `streamlake dataset infer` from {count} records of {origin}.\n\
         # Check the types, which fields are required, the event time and the partition\n\
         # before the first deploy: a column's type cannot change later without a new lake."
    );
    let _ = writeln!(out, "name = {}", toml_string(name));
    let _ = writeln!(out, "partition = \"day\"          # or \"hour\"");
    let _ = writeln!(out, "unknown_fields = \"drop\"");
    if let Some(event) = &event {
        let path = seen[event.index].0.join(".");
        let _ = writeln!(
            out,
            "\n[event_time]\nfield = {}\nformat = {}",
            toml_string(&path),
            toml_string(&event.format)
        );
    } else {
        let _ = writeln!(
            out,
            "\n# No field holds a time in every record: the arrival time decides the partition."
        );
    }
    let paths: Vec<&[String]> = seen.iter().map(|(path, _)| path.as_slice()).collect();
    let columns = column_names(&paths);
    for (i, (((path, s), (fit, misfits)), column)) in seen.iter().zip(fits).zip(columns).enumerate()
    {
        let from = path.join(".");
        let is_event = event.as_ref().is_some_and(|e| e.index == i);
        let (ty, format) = match fit {
            Fit::Type(ColumnType::Long) if is_event => (ColumnType::Timestamp, None::<String>),
            Fit::Type(ty) => (ty, None),
            Fit::Time(_) if is_event => (ColumnType::Timestamp, None),
            Fit::Time(pattern) => (ColumnType::Timestamp, Some(pattern.to_owned())),
        };
        let _ = writeln!(out, "\n[[fields]]\nname = {}", toml_string(&column));
        if from != column {
            let _ = writeln!(out, "from = {}", toml_string(&from));
        }
        let _ = writeln!(out, "type = {}", toml_string(ty.as_str()));
        if let Some(format) = format {
            let _ = writeln!(out, "format = {}", toml_string(&format));
        }
        if misfits > 0 {
            let _ = writeln!(
                out,
                "# {misfits} of {} values do not fit: those records would fail",
                s.present
            );
        }
        if s.present == count && count > 0 {
            let _ = writeln!(out, "required = true");
        } else {
            let _ = writeln!(out, "# in {} of {count} records", s.present);
        }
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(records: &[&str]) -> Vec<Vec<u8>> {
        records.iter().map(|r| r.as_bytes().to_vec()).collect()
    }

    fn inferred(records: &[&str]) -> Inferred {
        let lines = lines(records);
        infer("sample", "sample.ndjson", lines.iter().map(Vec::as_slice)).unwrap()
    }

    fn column(inferred: &Inferred, name: &str) -> (ColumnType, bool, String) {
        let c = inferred.dataset.column(name).unwrap();
        let read = c.read().unwrap();
        (c.ty, read.required, read.dotted())
    }

    #[test]
    fn types_presence_and_nested_paths() {
        let i = inferred(&[
            r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189","Distance":175,"Lat":42.1,"ok":true,"price":"12.5","meta":{"src":"a","tags":[1]}}"#,
            r#"{"Name":"Bucephalus","StatusTime":"2017-06-05 09:17:09.191","Distance":163,"Lat":42,"ok":false,"price":"3","meta":{"src":"b","tags":[]}}"#,
            r#"{"Name":"Pegasus","StatusTime":"2017-06-05 09:17:10.001","Lat":41.5,"ok":null,"price":"7.25","meta":{"src":"c","tags":[2]}}"#,
            "not json",
        ]);
        assert_eq!((i.records, i.skipped), (3, 1));
        assert_eq!(
            column(&i, "Name"),
            (ColumnType::String, true, "Name".into())
        );
        assert_eq!(
            column(&i, "Distance"),
            (ColumnType::Long, false, "Distance".into())
        );
        assert_eq!(column(&i, "Lat"), (ColumnType::Double, true, "Lat".into()));
        assert_eq!(column(&i, "ok"), (ColumnType::Boolean, false, "ok".into()));
        assert_eq!(
            column(&i, "price"),
            (ColumnType::Double, true, "price".into())
        );
        assert_eq!(
            column(&i, "src"),
            (ColumnType::String, true, "meta.src".into())
        );
        assert_eq!(
            column(&i, "tags"),
            (ColumnType::Json, true, "meta.tags".into())
        );
        let event = i.dataset.event_time().unwrap();
        assert_eq!(event.path, ["StatusTime"]);
        assert_eq!(event.format.as_setting(), "%Y-%m-%d %H:%M:%S%.f");
        // The inferred file reads its own sample.
        let sample = lines(&[
            r#"{"Name":"X","StatusTime":"2017-06-05 09:17:08.189","Lat":1,"price":"1","meta":{"src":"s","tags":[]}}"#,
        ]);
        let record = i.dataset.normalize(&sample[0], chrono::Utc::now()).unwrap();
        assert_eq!(record.partition.to_string(), "year=2017/month=06/day=05");
    }

    #[test]
    fn epoch_millis_under_a_time_like_name_is_the_event_time() {
        let i = inferred(&[
            r#"{"vin":"A","ts":1700000000123,"count":1700000000123,"location":{"lat":1.5,"lon":2}}"#,
            r#"{"vin":"B","ts":1700000001123,"count":5,"location":{"lat":1,"lon":2.5}}"#,
        ]);
        let event = i.dataset.event_time().unwrap();
        assert_eq!(
            (event.path.join("."), event.format.as_setting()),
            ("ts".into(), "epoch_millis")
        );
        assert_eq!(i.dataset.column("ts").unwrap().ty, ColumnType::Timestamp);
        assert_eq!(i.dataset.column("count").unwrap().ty, ColumnType::Long);
        assert_eq!(
            column(&i, "lat"),
            (ColumnType::Double, true, "location.lat".into())
        );
    }

    #[test]
    fn without_a_time_the_arrival_time_partitions_and_names_are_made_valid() {
        let i = inferred(&[
            r#"{"ticker symbol":"AMZN","day":3,"a":{"id":1},"b":{"id":"x"}}"#,
            r#"{"ticker symbol":"MSFT","day":4,"a":{"id":2},"b":{"id":"y"}}"#,
        ]);
        assert!(i.dataset.event_time().is_none());
        assert!(i.text.contains("the arrival time decides the partition"));
        let names: Vec<&str> = i
            .dataset
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["ticker_symbol", "day_value", "a_id", "b_id"]);
    }

    #[test]
    fn nested_columns_are_named_by_their_path_when_the_last_key_is_ambiguous_or_generic() {
        let i = inferred(&[
            r#"{"a":{"id":1},"b":{"id":"x"},"c":{"name":"n"},"d":{"src":"s"},"user":{"tier":"gold"}}"#,
            r#"{"a":{"id":2},"b":{"id":"y"},"c":{"name":"m"},"d":{"src":"t"},"user":{"tier":"free"}}"#,
        ]);
        let named: Vec<(&str, String)> = i
            .dataset
            .columns()
            .iter()
            .map(|c| (c.name.as_str(), c.read().unwrap().dotted()))
            .collect();
        assert_eq!(
            named,
            [
                ("a_id", "a.id".to_owned()),
                ("b_id", "b.id".to_owned()),
                ("c_name", "c.name".to_owned()),
                ("src", "d.src".to_owned()),
                ("tier", "user.tier".to_owned()),
            ]
        );
        // A top-level key keeps its name; a nested one sharing it is named by its path.
        let i = inferred(&[r#"{"id":1,"session":{"id":"s1"},"experiment":{"name":"e"}}"#]);
        let names: Vec<&str> = i
            .dataset
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["id", "session_id", "experiment_name"]);
    }
}
