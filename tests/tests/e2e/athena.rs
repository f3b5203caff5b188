//! Athena's view over a lake in S3 (moto): with a compaction stopped while pending and
//! while committed, the view's SQL run by the `query` binary (Athena's `"$path"` is
//! `s3://bucket/key`, as the compaction log writes it) and `query sql` on the table both
//! read every record once; the next compaction finishes and both still agree. Two
//! compactions started together over S3 compact each day once (the day's claim is a
//! conditional write, which the stack's front makes atomic).
//!
//! The clients talk to the emulator through the stack's front, as in the local stack.

use std::process::Stdio;

use query::QueryError;
use std::time::Duration;

use query::compaction::{Compactor, compact};
use streamlake::clients::Clients;
use streamlake::faults::FaultPlan;
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::emulator::Emulator;
use streamlake::http::faults::FaultProxy;
use streamlake_core::PartitionKeys;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::lake::{DateRange, Lake, LakeLocation};
use streamlake_core::layout::OutputFormat;
use streamlake_core::time::from_epoch_millis;
use streamlake_e2e::weather;

use crate::support::run_logs;

const LAKE: &str = "s3://athena-view/data/";

/// Every record, in an order of its own.
const ALL: &str = "SELECT stationid, datatype, \"date\", value, observed_at, station_name, \
                   year, month, day FROM weather ORDER BY stationid, datatype, observed_at, value";

/// `query --lake LAKE sql --format csv SQL` against the emulator.
async fn query_sql(binaries: &Binaries, clients: &Clients, sql: &str) -> String {
    query_lake(binaries, clients, LAKE, sql).await
}

/// `query --lake <lake> sql --format csv SQL` against the emulator.
async fn query_lake(binaries: &Binaries, clients: &Clients, lake: &str, sql: &str) -> String {
    let output = binaries
        .command("query")
        .args(["--lake", lake, "sql", "--format", "csv", sql])
        .envs(clients.child_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "query sql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn assert_every_record_once(
    binaries: &Binaries,
    clients: &Clients,
    expected: &str,
    when: &str,
) {
    let view = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/athena/weather_view.sql"),
    )
    .unwrap();
    assert_eq!(
        query_sql(binaries, clients, ALL).await,
        expected,
        "query, {when}"
    );
    let athena = query_sql(binaries, clients, &format!("{view}\n{ALL}")).await;
    assert_eq!(athena, expected, "Athena's view, {when}");
}

/// The emulator behind the stack's front, a bucket, and a weather lake in it with two
/// NDJSON objects per day (as Firehose delivers them); the records as `query` reads them.
async fn lake_in_s3(
    bucket_of: &str,
) -> (
    Emulator,
    FaultProxy,
    Clients,
    Lake,
    Vec<PartitionKeys>,
    usize,
) {
    let emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let front = FaultProxy::start(emulator.endpoint(), &FaultPlan::default())
        .await
        .unwrap();
    let clients = Clients::connect(front.endpoint(), true).await;
    let location: LakeLocation = bucket_of.parse().unwrap();
    let LakeLocation::S3 { bucket, .. } = &location else {
        unreachable!()
    };
    clients
        .s3
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let lake = Lake::with_client(location.clone(), clients.s3.clone());
    let mut by_day: std::collections::BTreeMap<PartitionKeys, Vec<u8>> = Default::default();
    let mut records = 0;
    for r in WeatherGenerator::new(GeneratorConfig::default()).take(120) {
        let o = weather(&r.data, from_epoch_millis(1_633_046_400_000)).unwrap();
        o.write_ndjson(by_day.entry(o.partition()).or_default());
        records += 1;
    }
    assert!(by_day.len() >= 2);
    for (day, body) in &by_day {
        let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
        let (first, second) = lines.split_at(lines.len() / 2);
        for (i, part) in [first, second].into_iter().enumerate() {
            lake.write(&lake.key_in(day, &format!("delivery-{i}")), part.concat())
                .await
                .unwrap();
        }
    }
    let days = by_day.into_keys().collect();
    (emulator, front, clients, lake, days, records)
}

/// One object per day, of GZIP NDJSON, and an empty compaction log.
async fn assert_compacted(lake: &Lake, days: &[PartitionKeys]) {
    for day in days {
        let objects = lake.objects(day).await.unwrap();
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert_eq!(
            OutputFormat::of_key(&objects[0].key),
            OutputFormat::NdjsonGzip
        );
    }
    assert!(
        lake.objects_in(&lake.compaction_log_folder())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_athena_view_reads_every_record_once_over_s3_while_compacting() {
    let (mut emulator, _front, clients, lake, days, records) = lake_in_s3(LAKE).await;
    let binaries = Binaries::locate().await.unwrap();
    let expected = query_sql(&binaries, &clients, ALL).await;
    assert_eq!(
        expected.lines().count(),
        records + 1,
        "header and every record"
    );
    assert_every_record_once(&binaries, &clients, &expected, "before").await;

    // Stopped with the first day's new object written, its entry pending.
    let stopped = Compactor::new(&lake, &streamlake_core::dataset::Dataset::weather())
        .stop_after(2)
        .run(DateRange::default(), |_| {})
        .await;
    assert!(matches!(
        stopped,
        Err(QueryError::Interrupted { changes: 2 })
    ));
    assert_every_record_once(&binaries, &clients, &expected, "pending").await;
    // The next run takes the claim over, undoes it and releases it (3 changes), then
    // stops with the day committed (claim, new object, commit), its sources not yet
    // deleted. Its holder is gone: no lease to wait.
    let stopped = Compactor::new(&lake, &streamlake_core::dataset::Dataset::weather())
        .lease(Duration::ZERO)
        .stop_after(6)
        .run(DateRange::default(), |_| {})
        .await;
    assert!(matches!(
        stopped,
        Err(QueryError::Interrupted { changes: 6 })
    ));
    assert_every_record_once(&binaries, &clients, &expected, "committed").await;
    // The next run finishes the committed one and compacts the rest.
    Compactor::new(&lake, &streamlake_core::dataset::Dataset::weather())
        .lease(Duration::ZERO)
        .run(DateRange::default(), |_| {})
        .await
        .unwrap();
    assert_compacted(&lake, &days).await;
    assert_every_record_once(&binaries, &clients, &expected, "compacted").await;
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compactions_over_s3_started_together_compact_each_day_once() {
    const RACE: &str = "s3://compaction-race/data/";
    let (mut emulator, _front, clients, lake, days, _) = lake_in_s3(RACE).await;
    let binaries = Binaries::locate().await.unwrap();
    let before = query_lake(&binaries, &clients, RACE, ALL).await;
    let view = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/athena/weather_view.sql"),
    )
    .unwrap();
    let as_athena = format!("{view}\n{ALL}");
    assert_eq!(
        query_lake(&binaries, &clients, RACE, &as_athena).await,
        before
    );
    let dataset = std::sync::Arc::new(streamlake_core::dataset::Dataset::weather());
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let run = || {
        let (lake, dataset, start) = (lake.clone(), dataset.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            compact(&lake, &dataset, DateRange::default(), |_| {}).await
        })
    };
    let (a, b) = (run(), run());
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    let mut compacted: Vec<_> = a.iter().chain(&b).map(|p| p.partition.unwrap()).collect();
    compacted.sort();
    assert_eq!(compacted, days, "each day compacted by one of the two");
    assert_compacted(&lake, &days).await;
    assert_eq!(query_lake(&binaries, &clients, RACE, ALL).await, before);
    assert_eq!(
        query_lake(&binaries, &clients, RACE, &as_athena).await,
        before,
        "Athena's view"
    );
    emulator.stop().await;
}
