//! SQL over a local lake: results equal on NDJSON and Parquet, partition pruning.

use crate::common;

use std::sync::atomic::Ordering;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use query::sql::LakeSession;
use streamlake_core::lake::{Lake, LakeLocation};
use streamlake_core::layout::OutputFormat;

async fn session(root: &std::path::Path) -> LakeSession {
    LakeSession::new(
        Lake::open(LakeLocation::Local(root.to_owned())).await,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
    )
    .await
    .unwrap()
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

const BY_DAY: &str = "SELECT \"date\", datatype, count(*) AS n, round(sum(value), 3) AS total \
                      FROM weather GROUP BY \"date\", datatype ORDER BY \"date\", datatype";

/// Every column, partition columns between data columns, in an order of its own.
const ROWS: &str = "SELECT day, stationid, station_name, year, observed_at, ingested_at, value, \
                    month, datatype, \"date\" FROM weather \
                    ORDER BY stationid, observed_at, datatype LIMIT 60";

#[tokio::test]
async fn every_format_gives_the_same_answers() {
    let mut answers = Vec::new();
    for (name, layout) in [
        ("sql-ndjson", common::Layout::Only(OutputFormat::Ndjson)),
        ("sql-parquet", common::Layout::Only(OutputFormat::Parquet)),
        ("sql-gzip", common::Layout::Only(OutputFormat::NdjsonGzip)),
        ("sql-mixed", common::Layout::Mixed),
    ] {
        let (root, observations) = common::lake(name, 800, layout);
        let s = session(&root).await;
        let count = s.run("SELECT count(*) AS n FROM weather").await.unwrap();
        assert!(
            text(&count).contains(&format!("| {} ", observations.len())),
            "{name}: {}",
            text(&count)
        );
        answers.push((name, text(&s.run(BY_DAY).await.unwrap())));
        answers.push((name, text(&s.run(ROWS).await.unwrap())));
        let limited = s
            .run("SELECT stationid FROM weather LIMIT 3")
            .await
            .unwrap();
        assert_eq!(limited.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
        std::fs::remove_dir_all(root).unwrap();
    }
    for (i, (name, answer)) in answers.iter().enumerate().skip(2) {
        assert_eq!(answer, &answers[i % 2].1, "{name} differs from NDJSON");
    }
}

#[tokio::test]
async fn a_line_that_does_not_fit_fails_the_query_naming_object_line_and_field() {
    let (root, _) = common::lake("sql-bad-line", 200, common::Layout::Mixed);
    let object = std::fs::read_dir(root.join("year=2021/month=10/day=01"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| OutputFormat::of_key(&p.to_string_lossy()) == OutputFormat::Ndjson)
        .unwrap();
    let mut body = std::fs::read(&object).unwrap();
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    body.extend_from_slice(br#"{"stationid":"S","datatype":"TMAX","value":"warm"}"#);
    std::fs::write(&object, body).unwrap();
    let error = session(&root)
        .await
        .run("SELECT avg(value) FROM weather")
        .await
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{}: line {}: field `value`: expected a number, found `\"warm\"`",
        object.display(),
        lines + 1
    );
    assert!(error.contains(&expected), "{error}");
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn a_one_day_query_opens_only_that_days_objects() {
    let (root, observations) = common::lake("sql-prune", 800, common::Layout::Mixed);
    let s = session(&root).await;
    let day = observations[400].date;
    let expected = observations.iter().filter(|o| o.date == day).count();
    let sql = format!(
        "SELECT count(*) AS n FROM weather WHERE year = {} AND month = {} AND day = {}",
        chrono::Datelike::year(&day),
        chrono::Datelike::month(&day),
        chrono::Datelike::day(&day)
    );
    let result = s.run(&sql).await.unwrap();
    assert!(
        text(&result).contains(&format!("| {expected} ")),
        "{}",
        text(&result)
    );
    let c = s.counters();
    assert_eq!(c.partitions.load(Ordering::Relaxed), 1);
    assert_eq!(
        c.objects.load(Ordering::Relaxed),
        2,
        "only the day's two objects"
    );
    std::fs::remove_dir_all(root).unwrap();
}

/// A filter, the records it selects, and the days that could hold one of them.
type Case = (
    String,
    Box<dyn Fn(&common::Observation) -> bool>,
    Box<dyn Fn(chrono::NaiveDate) -> bool>,
);

#[tokio::test]
async fn date_and_observed_at_filters_open_only_the_days_that_can_match() {
    use chrono::{NaiveDate, TimeZone, Utc};
    for (name, layout) in [
        ("prune-ndjson", common::Layout::Only(OutputFormat::Ndjson)),
        ("prune-parquet", common::Layout::Only(OutputFormat::Parquet)),
        ("prune-mixed", common::Layout::Mixed),
    ] {
        let (root, observations) = common::lake(name, 800, layout);
        let days: Vec<NaiveDate> = observations
            .iter()
            .map(|o| o.date)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(days.len() > 6, "{} days", days.len());
        let (d3, d4, d5) = (days[3], days[4], days[5]);
        let at = |d: NaiveDate, h: u32| Utc.from_utc_datetime(&d.and_hms_opt(h, 0, 0).unwrap());
        // The generator's records are observed at midnight UTC: on the day boundaries.
        let cases: Vec<Case> = vec![
            (
                format!("\"date\" = '{d3}'"),
                Box::new(move |o| o.date == d3),
                Box::new(move |d| d == d3),
            ),
            (
                format!("\"date\" IN ('{d3}', '{d5}')"),
                Box::new(move |o| o.date == d3 || o.date == d5),
                Box::new(move |d| d == d3 || d == d5),
            ),
            (
                format!("\"date\" BETWEEN '{d3}' AND '{d5}'"),
                Box::new(move |o| (d3..=d5).contains(&o.date)),
                Box::new(move |d| (d3..=d5).contains(&d)),
            ),
            (
                format!("\"date\" > '{d5}' AND year = 2021"),
                Box::new(move |o| o.date > d5),
                Box::new(move |d| d > d5),
            ),
            (
                format!("observed_at >= '{d3}T00:00:00Z' AND observed_at < '{d5}T00:00:00Z'"),
                Box::new(move |o| o.observed_at >= at(d3, 0) && o.observed_at < at(d5, 0)),
                Box::new(move |d| d >= d3 && d < d5),
            ),
            (
                format!("observed_at <= '{d3}T00:00:00Z'"),
                Box::new(move |o| o.observed_at <= at(d3, 0)),
                Box::new(move |d| d <= d3),
            ),
            (
                // 19:00 at UTC-5 is midnight UTC of the next day.
                format!("observed_at > '{d3}T19:00:00-05:00'"),
                Box::new(move |o| o.observed_at > at(d4, 0)),
                Box::new(move |d| d >= d4),
            ),
            (
                format!("observed_at BETWEEN '{d3}T12:00:00Z' AND '{d4}T12:00:00Z'"),
                Box::new(move |o| o.observed_at >= at(d3, 12) && o.observed_at <= at(d4, 12)),
                Box::new(move |d| d == d3 || d == d4),
            ),
            (
                format!("\"date\" = '{d3}' OR stationid = 'GHCND:US1MDAA0001'"),
                Box::new(move |o| o.date == d3 || o.stationid == "GHCND:US1MDAA0001"),
                Box::new(|_| true),
            ),
        ];
        for (filter, selects, may_hold) in &cases {
            let s = session(&root).await;
            let expected = observations.iter().filter(|o| selects(o)).count();
            let result = s
                .run(&format!("SELECT count(*) AS n FROM weather WHERE {filter}"))
                .await
                .unwrap();
            assert!(
                text(&result).contains(&format!("| {expected} ")),
                "{name}: {filter}: expected {expected}\n{}",
                text(&result)
            );
            let opened = s.counters().partitions.load(Ordering::Relaxed) as usize;
            let could_match = days.iter().filter(|d| may_hold(**d)).count();
            assert_eq!(opened, could_match, "{name}: {filter}: partitions opened");
        }
        // EXPLAIN says what a query opens.
        let s = session(&root).await;
        let explained = text(
            &s.run(&format!(
                "EXPLAIN SELECT count(*) FROM weather WHERE \"date\" = '{d3}'"
            ))
            .await
            .unwrap(),
        );
        assert!(
            explained.contains(&format!(
                "lake_scan     | partitions=1 of {}, objects=2,",
                days.len()
            )),
            "{explained}"
        );
        if name == "prune-parquet" {
            // Row groups whose statistics rule the filter out are not read.
            let analyzed = text(
                &s.run(
                    "EXPLAIN ANALYZE SELECT count(*) FROM weather WHERE stationid = 'GHCND:NONE'",
                )
                .await
                .unwrap(),
            );
            let groups = days.len() * 2; // one per object
            assert!(
                analyzed.contains(&format!(
                    "row_groups_pruned_statistics={groups} total → 0 matched"
                )),
                "{analyzed}"
            );
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}

/// A corrupt Parquet object fails a query with its name and the reason, each said once.
#[tokio::test]
async fn a_corrupt_parquet_object_is_named_once() {
    let root = std::env::temp_dir().join(format!("streamlake-corrupt-{}", std::process::id()));
    let day = root.join("year=2021/month=10/day=01");
    std::fs::create_dir_all(&day).unwrap();
    std::fs::write(day.join("x.parquet"), b"PAR1 not really").unwrap();
    let lake =
        streamlake_core::lake::Lake::open(streamlake_core::lake::LakeLocation::Local(root.clone()))
            .await;
    let session = query::sql::LakeSession::new(
        lake,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
    )
    .await
    .unwrap();
    let error = session
        .run("SELECT count(*) FROM weather")
        .await
        .unwrap_err();
    let text = streamlake_core::report::Report(&error).to_string();
    assert!(
        text.contains("/year=2021/month=10/day=01/x.parquet: not a readable Parquet object"),
        "{text}"
    );
    assert_eq!(text.matches("Parquet error").count(), 0, "{text}");
    std::fs::remove_dir_all(root).unwrap();
}
