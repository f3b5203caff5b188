//! Compaction as Athena and `query` see it: at every step, crashed after every change to
//! the lake or its log and resumed, every record is read exactly once, by
//! - Athena's reading: every object of the partition folders whose name does not start with
//!   `_` or `.`, read as the table's format (an object of the other format fails, as
//!   Athena's SerDe does), then the view's SQL from `infra/athena/weather_view.sql`;
//! - `query sql` on the table `weather` (the compaction log honoured).
//!
//! Both lake formats; an NDJSON lake stays NDJSON (GZIP), a Parquet lake Parquet.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::arrow::util::pretty::pretty_format_batches;
use query::QueryError;
use query::athena::TableFormat;
use query::compaction::{Compactor, compact};
use query::sql::LakeSession;
use streamlake_core::dataset::Dataset;
use streamlake_core::lake::{DateRange, Lake, LakeLocation};
use streamlake_core::layout::OutputFormat;

/// The lake's dataset, read once.
static WEATHER: std::sync::LazyLock<Dataset> = std::sync::LazyLock::new(Dataset::weather);

/// Every record, in an order of its own: equal text means the same records, once each.
const ALL: &str = "SELECT stationid, datatype, \"date\", value, observed_at, ingested_at, \
                   station_name, year, month, day FROM weather \
                   ORDER BY stationid, datatype, observed_at, value";

fn view_ddl() -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/athena/weather_view.sql");
    std::fs::read_to_string(file).unwrap()
}

async fn lake(root: &Path) -> Lake {
    Lake::open(LakeLocation::Local(root.to_owned())).await
}

/// The records as `query sql` reads the table.
async fn as_query_reads(root: &Path) -> String {
    let session = LakeSession::new(
        lake(root).await,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
    )
    .await
    .unwrap();
    let batches = session.run(ALL).await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// The records as Athena reads them: the view's SQL over the raw table, every object read
/// as `format`.
async fn as_athena_reads(root: &Path, format: TableFormat) -> String {
    let session = LakeSession::with_raw_format(
        lake(root).await,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
        Some(format),
    )
    .await
    .unwrap();
    // The view replaces the table `weather` of the session, as in Athena; both
    // statements in one run, as `query sql "$(cat weather_view.sql) SELECT ..."` does.
    let batches = session
        .run(&format!("{}\n{ALL}", view_ddl()))
        .await
        .unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// Both readings equal `expected`.
async fn assert_every_record_once(root: &Path, format: TableFormat, expected: &str, when: &str) {
    assert_eq!(as_query_reads(root).await, expected, "query, {when}");
    assert_eq!(
        as_athena_reads(root, format).await,
        expected,
        "Athena, {when}"
    );
}

/// After a finished compaction: one object per day of the lake's format, an empty log.
async fn assert_compacted(root: &Path, format: OutputFormat) {
    let lake = lake(root).await;
    for partition in lake.partitions(DateRange::default()).await.unwrap() {
        let objects = lake.objects(&partition).await.unwrap();
        assert_eq!(objects.len(), 1, "{partition}: {objects:?}");
        assert_eq!(OutputFormat::of_key(&objects[0].key), format, "{objects:?}");
    }
    let log = lake
        .objects_in(&lake.compaction_log_folder())
        .await
        .unwrap();
    assert!(log.is_empty(), "{log:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Stops a compaction after each change in turn, reads, resumes, reads.
async fn crash_at_every_step(name: &str, written: OutputFormat, compacted: OutputFormat) {
    let (original, observations) = common::lake(name, 150, common::Layout::Only(written));
    let table = TableFormat::of(written);
    let expected = as_query_reads(&original).await;
    assert!(expected.matches("| GHCND:").count() == observations.len());
    assert_eq!(as_athena_reads(&original, table).await, expected);
    let days = lake(&original)
        .await
        .partitions(DateRange::default())
        .await
        .unwrap()
        .len();
    assert!(days >= 2, "{days} days");

    let root = original.with_file_name(format!("{name}-run"));
    let mut stops = 0;
    for changes in 0.. {
        copy_dir(&original, &root);
        let lake = lake(&root).await;
        let run = Compactor::new(&lake, &WEATHER)
            .stop_after(changes)
            .run(DateRange::default(), |_| {})
            .await;
        match run {
            Ok(done) => {
                assert_eq!(done.len(), days);
                assert_compacted(&root, compacted).await;
                assert_every_record_once(&root, table, &expected, "compacted").await;
                break;
            }
            Err(QueryError::Interrupted { changes: made }) => assert_eq!(made, changes),
            Err(e) => panic!("{e}"),
        }
        stops += 1;
        let when = format!("stopped after {changes} changes");
        assert_every_record_once(&root, table, &expected, &when).await;
        // The next run takes the claim over (its holder is gone), finishes or undoes
        // what was left, then compacts.
        Compactor::new(&lake, &WEATHER)
            .lease(Duration::ZERO)
            .run(DateRange::default(), |_| {})
            .await
            .unwrap();
        assert_compacted(&root, compacted).await;
        assert_every_record_once(&root, table, &expected, &format!("resumed, {when}")).await;
    }
    // Per day: log written, object written, log committed, two sources deleted, log deleted.
    assert_eq!(stops, days * 6);

    // Runs that stop sooner and sooner each time, recovery included: one more change each.
    copy_dir(&original, &root);
    let lake = lake(&root).await;
    for changes in 1.. {
        let run = Compactor::new(&lake, &WEATHER)
            .lease(Duration::ZERO)
            .stop_after(changes)
            .run(DateRange::default(), |_| {})
            .await;
        let when = format!("runs stopped after 1..={changes} changes");
        assert_every_record_once(&root, table, &expected, &when).await;
        if run.is_ok() {
            break;
        }
    }
    assert_compacted(&root, compacted).await;
    // Compacting again changes nothing.
    assert!(
        compact(&lake, &WEATHER, DateRange::default(), |_| {})
            .await
            .unwrap()
            .is_empty()
    );
    for dir in [&original, &root] {
        std::fs::remove_dir_all(dir).unwrap();
        let _ = std::fs::remove_dir_all(Path::new(
            &LakeLocation::Local(dir.clone()).compaction_log_folder(),
        ));
    }
}

#[tokio::test]
async fn an_ndjson_lake_compacts_into_gzip_ndjson_and_is_read_once_at_every_step() {
    crash_at_every_step(
        "compact-ndjson",
        OutputFormat::Ndjson,
        OutputFormat::NdjsonGzip,
    )
    .await;
}

#[tokio::test]
async fn a_gzip_ndjson_lake_stays_gzip_ndjson() {
    crash_at_every_step(
        "compact-gzip",
        OutputFormat::NdjsonGzip,
        OutputFormat::NdjsonGzip,
    )
    .await;
}

#[tokio::test]
async fn a_parquet_lake_compacts_into_parquet_and_is_read_once_at_every_step() {
    crash_at_every_step(
        "compact-parquet",
        OutputFormat::Parquet,
        OutputFormat::Parquet,
    )
    .await;
}

#[tokio::test]
async fn a_day_that_mixes_formats_is_refused_by_name() {
    let (root, _) = common::lake("compact-mixed", 150, common::Layout::Mixed);
    let lake = lake(&root).await;
    let error = compact(&lake, &WEATHER, DateRange::default(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("year=") && error.contains("Parquet and 1 NDJSON objects"),
        "{error}"
    );
    // And Athena's JSON table fails on that day's Parquet object, naming it.
    let session = LakeSession::with_raw_format(
        lake,
        std::sync::Arc::new(streamlake_core::dataset::Dataset::weather()),
        Some(TableFormat::Json),
    )
    .await
    .unwrap();
    let error = session
        .run("SELECT count(*) FROM weather_raw")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(".parquet is Parquet, but the table reads NDJSON"),
        "{error}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn convert_writes_a_parquet_lake_elsewhere_with_the_same_records() {
    let (root, observations) = common::lake(
        "convert-src",
        150,
        common::Layout::Only(OutputFormat::Ndjson),
    );
    let dest = root.with_file_name(format!("convert-dest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dest);
    let source = lake(&root).await;
    let target = lake(&dest).await;
    let done = query::convert::convert(&source, &target, &WEATHER, DateRange::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        done.iter().map(|p| p.records).sum::<u64>(),
        observations.len() as u64
    );
    assert_compacted(&dest, OutputFormat::Parquet).await;
    let expected = as_query_reads(&root).await;
    assert_eq!(as_athena_reads(&dest, TableFormat::Parquet).await, expected);
    // Into itself: refused.
    assert!(
        query::convert::convert(&source, &source, &WEATHER, DateRange::default(), |_| {})
            .await
            .is_err()
    );
    std::fs::remove_dir_all(root).unwrap();
    std::fs::remove_dir_all(dest).unwrap();
}

/// The objects of every partition and of the log, by name: equal listings mean no change.
async fn listing(root: &Path) -> Vec<String> {
    let lake = lake(root).await;
    let mut names = Vec::new();
    for partition in lake.partitions(DateRange::default()).await.unwrap() {
        names.extend(
            lake.objects(&partition)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key),
        );
    }
    names.extend(
        lake.objects_in(&lake.compaction_log_folder())
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key),
    );
    names.sort();
    names
}

/// A compaction stopped after each change in turn leaves its claim as a live one would:
/// a second compaction changes nothing while the claim could still be renewed, then takes
/// it over, settles it and compacts; every record is read once at every step.
#[tokio::test]
async fn a_second_compaction_waits_for_the_claim_then_takes_over_a_crashed_one() {
    let (original, _) = common::lake(
        "compact-second",
        150,
        common::Layout::Only(OutputFormat::Ndjson),
    );
    let expected = as_query_reads(&original).await;
    // Stopped after the claim, the new object, the commit, the first and the second
    // source deleted (the sixth change releases the claim): each case in a copy of its
    // own, all at once, since each spends most of a lease waiting.
    let cases = (1..=5).map(|changes| {
        let (original, expected) = (original.clone(), expected.clone());
        tokio::spawn(async move {
            let root = original.with_file_name(format!("compact-second-run-{changes}"));
            stopped_after(changes, &original, &root, &expected).await;
            root
        })
    });
    let roots = futures::future::join_all(cases).await;
    for dir in std::iter::once(original).chain(roots.into_iter().map(Result::unwrap)) {
        std::fs::remove_dir_all(&dir).unwrap();
        let _ = std::fs::remove_dir_all(Path::new(
            &LakeLocation::Local(dir.clone()).compaction_log_folder(),
        ));
    }
}

/// A first compaction of a copy of `original` at `root` stopped after `changes`, then a
/// second one: it waits for the first one's claim to go a lease unrenewed, then compacts;
/// every record is read once at every step.
async fn stopped_after(changes: usize, original: &Path, root: &Path, expected: &str) {
    let table = TableFormat::Json;
    let lease = Duration::from_millis(1500);
    copy_dir(original, root);
    let first = lake(root).await;
    let stopped = Compactor::new(&first, &WEATHER)
        .stop_after(changes)
        .run(DateRange::default(), |_| {})
        .await;
    assert!(
        matches!(stopped, Err(QueryError::Interrupted { .. })),
        "{stopped:?}"
    );
    let when = format!("first stopped after {changes} changes");
    assert_every_record_once(root, table, expected, &when).await;
    let before = listing(root).await;

    let second = tokio::spawn({
        let root = root.to_owned();
        async move {
            let lake = lake(&root).await;
            Compactor::new(&lake, &WEATHER)
                .lease(lease)
                .run(DateRange::default(), |_| {})
                .await
        }
    });
    // Watched for less than a lease: the claim may still be renewed.
    tokio::time::sleep(lease / 4).await;
    assert!(!second.is_finished(), "{when}: the second did not wait");
    assert_eq!(
        listing(root).await,
        before,
        "{when}: the second changed the lake"
    );
    assert_every_record_once(root, table, expected, &format!("{when}, second waiting")).await;

    second.await.unwrap().unwrap();
    assert_compacted(root, OutputFormat::NdjsonGzip).await;
    assert_every_record_once(root, table, expected, &format!("{when}, second done")).await;
}

/// Two compactions of the same lake started together, on two threads: each day is
/// compacted by exactly one of them (the other waits for its claim, then finds the day
/// done), and every record is read once after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compactions_started_together_compact_each_day_once() {
    let (original, _) = common::lake(
        "compact-race",
        150,
        common::Layout::Only(OutputFormat::Parquet),
    );
    let expected = as_query_reads(&original).await;
    let days = lake(&original)
        .await
        .partitions(DateRange::default())
        .await
        .unwrap();
    let root = original.with_file_name("compact-race-run");
    for round in 0..3 {
        copy_dir(&original, &root);
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let run = || {
            let (root, start) = (root.clone(), start.clone());
            tokio::spawn(async move {
                let lake = lake(&root).await;
                start.wait().await;
                compact(&lake, &WEATHER, DateRange::default(), |_| {}).await
            })
        };
        let (a, b) = (run(), run());
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        let mut compacted: Vec<_> = a.iter().chain(&b).map(|p| p.partition.unwrap()).collect();
        compacted.sort();
        assert_eq!(compacted, days, "round {round}: each day compacted once");
        assert_compacted(&root, OutputFormat::Parquet).await;
        assert_every_record_once(
            &root,
            TableFormat::Parquet,
            &expected,
            &format!("round {round}"),
        )
        .await;
    }
    for dir in [&original, &root] {
        std::fs::remove_dir_all(dir).unwrap();
        let _ = std::fs::remove_dir_all(Path::new(
            &LakeLocation::Local(dir.clone()).compaction_log_folder(),
        ));
    }
}
