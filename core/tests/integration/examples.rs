//! The examples under `examples/`: each dataset file loads, and its sample records read
//! as the file says: every valid record's typed values equal the input's (checked here
//! with `serde_json` and `chrono`, not with the dataset's own reader), and the malformed
//! share is the sample's 1% or so.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value as Json;
use streamlake_core::dataset::infer::infer;
use streamlake_core::dataset::{ColumnType, Dataset, Derived, Source, TimeFormat, Value};

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("dataset.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn lookup<'a>(record: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(record, |at, key| at.get(key))
}

fn time_of(input: &Json, format: &TimeFormat) -> DateTime<Utc> {
    match (format, input) {
        (TimeFormat::EpochMillis, Json::Number(n)) => {
            Utc.timestamp_millis_opt(n.as_i64().unwrap()).unwrap()
        }
        (TimeFormat::EpochSeconds, Json::Number(n)) => {
            Utc.timestamp_opt(n.as_i64().unwrap(), 0).unwrap()
        }
        (TimeFormat::Rfc3339(_), Json::String(s)) => {
            DateTime::parse_from_rfc3339(s).unwrap().to_utc()
        }
        (TimeFormat::Pattern(_), Json::String(s)) => {
            NaiveDateTime::parse_from_str(s, format.as_setting())
                .unwrap()
                .and_utc()
        }
        other => panic!("no independent reading of {other:?}"),
    }
}

/// Whether `value` is what the dataset promises for `input`.
fn check(ty: ColumnType, format: &TimeFormat, input: Option<&Json>, value: &Value<'_>) {
    let input = input.filter(|v| !v.is_null());
    match (ty, input, value) {
        (_, None, Value::Null) => {}
        (ColumnType::String, Some(Json::String(s)), Value::Null) => assert!(s.trim().is_empty()),
        (ColumnType::String, Some(Json::String(s)), Value::String(v)) => {
            assert!(s.eq_ignore_ascii_case(v), "{s:?} -> {v:?}");
        }
        (ColumnType::Long, Some(Json::Number(n)), Value::Long(v)) => {
            assert_eq!(n.as_i64(), Some(*v));
        }
        (ColumnType::Double, Some(Json::Number(n)), Value::Double(v)) => {
            assert_eq!(n.as_f64(), Some(*v));
        }
        (ColumnType::Double, Some(Json::String(s)), Value::Double(v)) => {
            assert_eq!(s.parse::<f64>().unwrap(), *v);
        }
        (ColumnType::Boolean, Some(Json::Bool(b)), Value::Boolean(v)) => assert_eq!(b, v),
        (ColumnType::Timestamp, Some(t), Value::Timestamp(v)) => {
            assert_eq!(time_of(t, format), *v);
        }
        (ColumnType::Json, Some(j), Value::Json(text)) => {
            assert_eq!(&serde_json::from_str::<Json>(text).unwrap(), j);
        }
        other => panic!("{ty}: {other:?}"),
    }
}

/// `dataset infer` over an example's sample gives a dataset that reads every record the
/// example's own file reads, with the same event time.
#[test]
fn a_dataset_inferred_from_each_sample_reads_what_the_example_reads() {
    let arrival = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    for dir in examples() {
        let Ok(text) = std::fs::read_to_string(dir.join("records.ndjson")) else {
            continue;
        };
        let example = Dataset::load_path(&dir).unwrap();
        let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
        let inferred = infer("sample", "records.ndjson", lines.iter().copied()).unwrap();
        let inferred = inferred.dataset;
        assert_eq!(
            inferred.event_time().map(|e| e.path.clone()),
            example.event_time().map(|e| e.path.clone()),
            "{}",
            example.name()
        );
        for line in &lines {
            if let Ok(record) = example.normalize(line, arrival) {
                let read = inferred.normalize(line, arrival);
                assert_eq!(
                    read.map(|r| r.time).ok(),
                    Some(record.time),
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
}

#[test]
fn every_example_reads_its_sample_records_as_its_dataset_file_says() {
    let dirs = examples();
    let names: Vec<_> = dirs.iter().map(|d| d.file_name().unwrap()).collect();
    assert!(names.len() >= 5, "{names:?}");
    let arrival = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    for dir in dirs {
        let dataset = Dataset::load_path(&dir).unwrap();
        let Ok(text) = std::fs::read_to_string(dir.join("records.ndjson")) else {
            continue;
        };
        let (mut valid, mut invalid) = (0, 0);
        for line in text.lines() {
            let Ok(record) = dataset.normalize(line.as_bytes(), arrival) else {
                invalid += 1;
                continue;
            };
            valid += 1;
            let input: Json = serde_json::from_str(line).unwrap();
            for (column, value) in dataset.columns().iter().zip(&record.values) {
                match &column.source {
                    Source::Read(read) => {
                        check(column.ty, &read.format, lookup(&input, &read.path), value)
                    }
                    Source::Derived(Derived::ArrivalTime) => {
                        assert_eq!(*value, Value::Timestamp(arrival))
                    }
                    Source::Derived(Derived::EventTime) => {
                        assert_eq!(*value, Value::Timestamp(record.time))
                    }
                    Source::Derived(Derived::EventDate) => {
                        assert_eq!(*value, Value::Date(record.time.date_naive()))
                    }
                }
            }
            let expected_time = match dataset.event_time() {
                Some(event) => time_of(lookup(&input, &event.path).unwrap(), &event.format),
                None => arrival,
            };
            assert_eq!(record.time, expected_time, "{line}");
        }
        let share = f64::from(invalid) / f64::from(valid + invalid);
        println!(
            "{}: {valid} valid, {invalid} malformed ({:.1}%)",
            dataset.name(),
            share * 100.0
        );
        assert!((0.002..0.03).contains(&share), "{}", dataset.name());
    }
}
