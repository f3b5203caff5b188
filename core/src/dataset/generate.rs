//! Sample records of any dataset, for load tests of a user's own shape: every column
//! type, nulls and missing values in optional fields, event times spread over days in the
//! dataset's own format, and malformed records on purpose at a known rate. The same seed
//! gives the same records; whether each record is valid is what the dataset says of it.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde_json::{Map, Value, json};

use super::{ColumnType, Dataset, Read};
use crate::generate::{GeneratedRecord, GeneratorConfig};
use crate::time::from_epoch_millis;

/// Days the generated event times spread over, from the configuration's start.
pub const SPREAD_DAYS: u64 = 7;

/// An endless iterator of records of one dataset.
#[derive(Debug)]
pub struct DatasetGenerator<'d> {
    dataset: &'d Dataset,
    reads: Vec<(Read, ColumnType)>,
    rng: fastrand::Rng,
    config: GeneratorConfig,
    count: u64,
}

impl<'d> DatasetGenerator<'d> {
    /// A generator of `dataset`'s records.
    pub fn new(dataset: &'d Dataset, config: GeneratorConfig) -> Self {
        let mut reads: Vec<(Read, ColumnType)> = dataset
            .columns()
            .iter()
            .filter_map(|c| c.read().map(|r| (r.clone(), c.ty)))
            .collect();
        if let Some(event) = dataset.event_time()
            && !reads.iter().any(|(r, _)| r.path == event.path)
        {
            // The event time is read, not kept (a column derives from it).
            reads.push((Read::of_event_time(event), ColumnType::Timestamp));
        }
        Self {
            dataset,
            reads,
            rng: fastrand::Rng::with_seed(config.seed),
            config,
            count: 0,
        }
    }

    /// A time within the spread, to the millisecond.
    fn time(&mut self) -> DateTime<Utc> {
        let start = self.config.start.and_time(NaiveTime::MIN).and_utc();
        start + Duration::milliseconds(self.rng.i64(0..(SPREAD_DAYS as i64) * 86_400_000))
    }

    /// A value that fits the column.
    fn value(&mut self, read: &Read, ty: ColumnType, name: &str) -> Value {
        match ty {
            ColumnType::String => {
                let stem: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
                let candidate = format!("{stem}{}", self.rng.u32(0..20));
                match &read.pattern {
                    Some(p) if !p.is_match(&candidate) => {
                        // Letters only, then digits only: one of them fits most codes.
                        let letters = stem.to_ascii_uppercase();
                        let found = [letters, self.rng.u32(0..20).to_string()]
                            .into_iter()
                            .find(|c| p.is_match(c));
                        found.map_or(Value::Null, Value::from)
                    }
                    _ => candidate.into(),
                }
            }
            ColumnType::Long => self.rng.i64(0..10_000).into(),
            ColumnType::Double => (f64::from(self.rng.i32(-10_000..10_000)) / 10.0).into(),
            ColumnType::Boolean => self.rng.bool().into(),
            ColumnType::Timestamp => {
                let t = self.time();
                read.format.render(&t)
            }
            ColumnType::Date => {
                let t = self.time();
                match read.format {
                    super::TimeFormat::Pattern(_) => read.format.render(&t),
                    _ => t.date_naive().to_string().into(),
                }
            }
            ColumnType::Json => json!({"n": self.rng.u32(0..100), "tags": ["a", "b"]}),
        }
    }

    /// A valid record as a JSON object.
    fn object(&mut self) -> Map<String, Value> {
        let mut object = Map::new();
        let reads = std::mem::take(&mut self.reads);
        for (read, ty) in &reads {
            let name = read.path.last().map_or("", String::as_str);
            let value = if !read.required && self.rng.u8(0..10) == 0 {
                // Optional: sometimes null, sometimes missing.
                if self.rng.bool() {
                    continue;
                }
                Value::Null
            } else {
                self.value(read, *ty, name)
            };
            insert(&mut object, &read.path, value);
        }
        self.reads = reads;
        object
    }

    /// A record that is wrong on purpose, in one of several ways.
    fn malformed(&mut self, mut object: Map<String, Value>) -> Vec<u8> {
        let required: Vec<usize> = (0..self.reads.len())
            .filter(|&i| self.reads[i].0.required)
            .collect();
        match self.rng.u8(0..5) {
            0 => {
                let text = serde_json::to_string(&object).expect("JSON");
                text.as_bytes()[..text.len() / 2].to_vec()
            }
            1 if !required.is_empty() => {
                let (read, _) = &self.reads[required[self.rng.usize(..required.len())]];
                remove(&mut object, &read.path);
                serde_json::to_vec(&object).expect("JSON")
            }
            2 if !self.reads.is_empty() => {
                let (read, ty) = &self.reads[self.rng.usize(..self.reads.len())];
                let wrong = match ty {
                    ColumnType::String | ColumnType::Date => json!([1, 2]),
                    // Any JSON fits a json column: break the record instead.
                    ColumnType::Json => return b"{\"not\": closed".to_vec(),
                    _ => json!("n/a"),
                };
                insert(&mut object, &read.path, wrong);
                serde_json::to_vec(&object).expect("JSON")
            }
            3 => {
                let mut data = serde_json::to_vec(&object).expect("JSON");
                data.splice(1..1, b"\"\xff\xfe\":1,".iter().copied());
                data
            }
            _ => {
                let values: Vec<String> = object.values().map(Value::to_string).collect();
                values.join(",").into_bytes()
            }
        }
    }

    /// The record's Kinesis partition key: the dataset's key field, else a spread key.
    fn partition_key(&mut self, object: &Map<String, Value>) -> String {
        let path: Vec<&str> = self
            .dataset
            .partition_key()
            .map(|k| k.split('.').collect())
            .unwrap_or_default();
        match lookup(object, &path) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => format!("key-{}", self.rng.u32(0..1024)),
        }
    }
}

impl Iterator for DatasetGenerator<'_> {
    type Item = GeneratedRecord;

    fn next(&mut self) -> Option<GeneratedRecord> {
        self.count += 1;
        let object = self.object();
        let partition_key = self.partition_key(&object);
        let data = if self.config.error_rate > 0.0 && self.rng.f64() < self.config.error_rate {
            self.malformed(object)
        } else {
            serde_json::to_vec(&object).expect("JSON")
        };
        let valid = self.dataset.normalize(&data, from_epoch_millis(0)).is_ok();
        Some(GeneratedRecord {
            partition_key,
            data,
            valid,
        })
    }
}

fn insert(object: &mut Map<String, Value>, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut at = object;
    for key in parents {
        let slot = at
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        at = slot.as_object_mut().expect("an object");
    }
    at.insert(last.clone(), value);
}

fn remove(object: &mut Map<String, Value>, path: &[String]) {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut at = object;
    for key in parents {
        match at.get_mut(key).and_then(Value::as_object_mut) {
            Some(next) => at = next,
            None => return,
        }
    }
    at.remove(last);
}

fn lookup<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = object.get(*first)?;
    match rest {
        [] => Some(value),
        _ => lookup(value.as_object()?, rest),
    }
}
