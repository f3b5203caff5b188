//! Additive evolution: a lake whose older objects (NDJSON, GZIP, Parquet) were written with
//! one dataset reads with a newer dataset that adds optional columns (one between the older
//! ones): the older records read null there, the newer ones their values, in `sql`,
//! `scan`-like reads and the view; a breaking change is named.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use query::sql::LakeSession;
use streamlake_core::columnar::ndjson_to_parquet;
use streamlake_core::dataset::Dataset;
use streamlake_core::formats::gzip;
use streamlake_core::lake::{Lake, LakeLocation};
use streamlake_core::layout::OutputFormat;

const OLDER: &str = r#"
name = "readings"
[event_time]
field = "at"

[[fields]]
name = "id"
type = "string"
required = true

[[fields]]
name = "at"
type = "timestamp"

[[fields]]
name = "n"
type = "long"
"#;

/// OLDER with `tag` added between `at` and `n`, and `extra` at the end.
fn newer_text() -> String {
    OLDER.replace(
        "[[fields]]\nname = \"n\"",
        "[[fields]]\nname = \"tag\"\ntype = \"string\"\n\n[[fields]]\nname = \"n\"",
    ) + "\n[[fields]]\nname = \"extra\"\ntype = \"double\"\n"
}

/// Writes `records` (JSON lines) read with `dataset` as one object of `format` in their
/// day's folder.
fn write(root: &std::path::Path, dataset: &Dataset, format: OutputFormat, records: &[String]) {
    let arrival = Utc.with_ymd_and_hms(2024, 3, 9, 0, 0, 0).unwrap();
    let mut lines = Vec::new();
    let mut partition = None;
    for record in records {
        let normalized = dataset.normalize(record.as_bytes(), arrival).unwrap();
        partition = Some(normalized.partition);
        let mut line = Vec::new();
        normalized.write_ndjson(dataset, &mut line);
        lines.push(line);
    }
    let body = match format {
        OutputFormat::Ndjson => lines.concat(),
        OutputFormat::NdjsonGzip => gzip(&lines.concat()),
        OutputFormat::Parquet => {
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            ndjson_to_parquet(dataset, &refs).unwrap().parquet.unwrap()
        }
    };
    let dir = root.join(partition.unwrap().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("readings-{}{}", dataset.columns().len(), format.extension());
    std::fs::write(dir.join(name), body).unwrap();
}

#[tokio::test]
async fn older_objects_of_every_format_read_null_in_an_added_optional_column() {
    let older = Dataset::from_toml(OLDER, "older.toml").unwrap();
    let newer = Dataset::from_toml(&newer_text(), "newer.toml").unwrap();
    assert_eq!(newer.breaking_changes_from(&older), []);
    let root = std::env::temp_dir().join(format!("streamlake-evolution-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let formats = [
        OutputFormat::Ndjson,
        OutputFormat::NdjsonGzip,
        OutputFormat::Parquet,
    ];
    for (day, format) in formats.into_iter().enumerate() {
        let old: Vec<String> = (0..3)
            .map(|i| {
                format!(
                    r#"{{"id":"old-{day}-{i}","at":"2024-03-0{}T10:00:00Z","n":{i}}}"#,
                    day + 1
                )
            })
            .collect();
        write(&root, &older, format, &old);
        let new: Vec<String> = (0..2)
            .map(|i| {
                format!(
                    r#"{{"id":"new-{day}-{i}","at":"2024-03-0{}T10:00:00Z","tag":"t{i}","n":{i},"extra":{i}.5}}"#,
                    day + 4
                )
            })
            .collect();
        write(&root, &newer, format, &new);
    }

    let lake = Lake::open(LakeLocation::Local(root.clone())).await;
    let session = LakeSession::new(lake, Arc::new(newer)).await.unwrap();
    for table in ["readings", "readings_raw"] {
        let batches = session
            .run(&format!(
                "SELECT id, tag, n, extra FROM {table} ORDER BY id"
            ))
            .await
            .unwrap();
        let batch =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(batch.num_rows(), 15, "{table}");
        let text = |i: usize| cast(batch.column(i), &DataType::Utf8).unwrap();
        let (ids, tags) = (text(0), text(1));
        let (ids, tags) = (ids.as_string::<i32>(), tags.as_string::<i32>());
        let n = batch.column(2).as_primitive::<Int64Type>();
        let extra = batch.column(3).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            assert!(!n.is_null(row), "{table} {id}");
            if id.starts_with("old-") {
                assert!(tags.is_null(row) && extra.is_null(row), "{table} {id}");
            } else {
                let i = id.rsplit('-').next().unwrap();
                assert_eq!(tags.value(row), format!("t{i}"), "{table} {id}");
                assert_eq!(extra.value(row), format!("{i}.5").parse::<f64>().unwrap());
            }
        }
    }
    let batches = session
        .run("SELECT count(*) FROM readings WHERE extra IS NULL")
        .await
        .unwrap();
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 9);
    std::fs::remove_dir_all(&root).unwrap();
}
