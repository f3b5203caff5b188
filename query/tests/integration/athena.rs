//! Athena parity: the DDL in `infra/athena/` has the one schema's columns, and the saved
//! queries give, through `query sql`, the values computed here independently.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use query::athena::{TableFormat, TableNames, log_table_ddl, raw_table_ddl, view_ddl};
use query::output::{Format, print};
use query::sql::LakeSession;
use serde_json::Value;
use streamlake_core::dataset::Dataset;
use streamlake_core::lake::{Lake, LakeLocation};

fn athena(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/athena")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The header of every generated DDL file.
const HEADER: &str = "-- Generated from examples/weather/dataset.toml by query/src/athena.rs (`query ddl` prints the same\n\
                      -- for any lake); query/tests/integration/athena.rs checks it. Replace <bucket> with the lake bucket.\n";

/// The DDL files `infra/athena/` must hold, and what each says first.
fn ddl_files() -> Vec<(&'static str, String)> {
    let names = TableNames::for_view("weather");
    let lake: LakeLocation = "s3://<bucket>/data/".parse().unwrap();
    vec![
        (
            "weather_raw_ndjson.sql",
            format!(
                "{HEADER}-- The objects in the lake's partition folders, NDJSON lake (output format ndjson or\n\
                 -- ndjson-gzip; compaction keeps it NDJSON). Query the view `weather`, not this table.\n{}",
                raw_table_ddl(&Dataset::weather(), &names, TableFormat::Json, &lake)
            ),
        ),
        (
            "weather_raw_parquet.sql",
            format!(
                "{HEADER}-- The objects in the lake's partition folders, Parquet lake (output format parquet).\n\
                 -- Query the view `weather`, not this table.\n{}",
                raw_table_ddl(&Dataset::weather(), &names, TableFormat::Parquet, &lake)
            ),
        ),
        (
            "weather_compaction_log.sql",
            format!(
                "{HEADER}-- The compaction log (query/src/compaction_log.rs): which objects a compaction in\n\
                 -- progress hides. Beside the lake, outside data/.\n{}",
                log_table_ddl(&names, &lake)
            ),
        ),
        (
            "weather_view.sql",
            format!(
                "{HEADER}-- What to query: the raw table without the objects the compaction log hides. Every\n\
                 -- record once at every step of a compaction, as `query sql` reads the lake.\n{}",
                view_ddl(&Dataset::weather(), &names)
            ),
        ),
    ]
}

/// `STREAMLAKE_UPDATE_DDL=1 cargo test -p query --test athena` rewrites the files.
#[test]
fn the_ddl_files_are_generated_from_the_schema() {
    let update = std::env::var_os("STREAMLAKE_UPDATE_DDL").is_some();
    for (file, expected) in ddl_files() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../infra/athena")
            .join(file);
        if update {
            std::fs::write(&path, &expected).unwrap();
        }
        assert_eq!(
            athena(file),
            expected,
            "{file} is out of date: STREAMLAKE_UPDATE_DDL=1 cargo test -p query --test athena"
        );
    }
    // Every column of the dataset, with its Glue type and comment.
    let raw = athena("weather_raw_parquet.sql");
    let dataset = Dataset::weather();
    for c in dataset.columns() {
        let column = format!(
            "  {} {} COMMENT '{}'",
            c.name,
            c.ty.glue_type(),
            c.comment.as_deref().unwrap_or_default().replace('\'', "''")
        );
        assert!(raw.contains(&column), "{column}");
    }
    let partitions = format!(
        "PARTITIONED BY ({})",
        dataset
            .partition()
            .columns()
            .iter()
            .map(|c| format!("{c} int"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(raw.contains(&partitions));
}

/// Runs a saved query and returns its rows.
async fn saved(session: &LakeSession, name: &str) -> Vec<BTreeMap<String, Value>> {
    let batches = session
        .run(&athena(&format!("queries/{name}.sql")))
        .await
        .unwrap();
    let mut out = Vec::new();
    print(&batches, Format::Ndjson, &mut out).unwrap();
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * (1.0 + b.abs())
}

#[tokio::test]
async fn saved_queries_agree_with_independent_computation() {
    let (root, observations) = common::lake("athena", 2000, common::Layout::Mixed);
    let session = LakeSession::new(
        Lake::open(LakeLocation::Local(root.clone())).await,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
    )
    .await
    .unwrap();

    // Daily precipitation per station, October 2021.
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for o in observations.iter().filter(|o| o.datatype == "PRCP") {
        if chrono::Datelike::month(&o.date) == 10 {
            *expected
                .entry((o.stationid.to_string(), o.date.to_string()))
                .or_default() += o.value;
        }
    }
    let rows = saved(&session, "daily_precipitation_per_station").await;
    assert_eq!(rows.len(), expected.len());
    for (row, ((station, date), total)) in rows.iter().zip(&expected) {
        assert_eq!(
            (
                row["stationid"].as_str().unwrap(),
                row["date"].as_str().unwrap()
            ),
            (station.as_str(), date.as_str())
        );
        assert!(
            close(row["precipitation"].as_f64().unwrap(), *total),
            "{row:?} vs {total}"
        );
    }

    // Temperature range per day.
    let mut days: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for o in &observations {
        let day = days
            .entry(o.date.to_string())
            .or_insert((f64::INFINITY, f64::NEG_INFINITY));
        match o.datatype.as_ref() {
            "TMIN" => day.0 = day.0.min(o.value),
            "TMAX" => day.1 = day.1.max(o.value),
            _ => {}
        }
    }
    days.retain(|_, (lo, hi)| lo.is_finite() || hi.is_finite());
    let rows = saved(&session, "temperature_range_per_day").await;
    assert_eq!(rows.len(), days.len());
    for (row, (date, (lo, hi))) in rows.iter().zip(&days) {
        assert_eq!(row["date"].as_str().unwrap(), date);
        assert!(close(row["lowest"].as_f64().unwrap(), *lo));
        assert!(close(row["highest"].as_f64().unwrap(), *hi));
        assert!(close(row["temperature_range"].as_f64().unwrap(), hi - lo));
    }

    // Top stations by snowfall.
    let mut snow: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for o in observations.iter().filter(|o| o.datatype == "SNOW") {
        let s = snow.entry(o.stationid.to_string()).or_default();
        s.0 += o.value;
        s.1 += 1;
    }
    let mut top: Vec<(String, f64, u64)> = snow.into_iter().map(|(k, (s, n))| (k, s, n)).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    let rows = saved(&session, "top_stations_by_snowfall").await;
    assert_eq!(rows.len(), top.len());
    for (row, (station, total, n)) in rows.iter().zip(&top) {
        assert_eq!(row["stationid"].as_str().unwrap(), station);
        assert!(close(row["snowfall"].as_f64().unwrap(), *total));
        assert_eq!(row["observations"].as_u64().unwrap(), *n);
    }
    std::fs::remove_dir_all(root).unwrap();
}
