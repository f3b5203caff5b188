//! Athena's view over a lake in S3 (moto): with a compaction stopped while pending and
//! while committed, the view's SQL run by the `query` binary (Athena's `"$path"` is
//! `s3://bucket/key`, as the compaction log writes it) and `query sql` on the table both
//! read every record once; the next compaction finishes and both still agree.

use std::process::Stdio;

use query::QueryError;
use query::compaction::{Compactor, compact};
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::clients::Clients;
use streamlake::harness::emulator::Emulator;
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
    let output = tokio::process::Command::new(binaries.path("query"))
        .args(["--lake", LAKE, "sql", "--format", "csv", sql])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_athena_view_reads_every_record_once_over_s3_while_compacting() {
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let clients = Clients::connect(emulator.endpoint(), true).await;
    let binaries = Binaries::locate().await.unwrap();
    let location: LakeLocation = LAKE.parse().unwrap();
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

    // Two NDJSON objects per day, as Firehose delivers them.
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
    // The next run undoes it (2 changes), then stops with the day committed, its
    // sources not yet deleted.
    let stopped = Compactor::new(&lake, &streamlake_core::dataset::Dataset::weather())
        .stop_after(5)
        .run(DateRange::default(), |_| {})
        .await;
    assert!(matches!(
        stopped,
        Err(QueryError::Interrupted { changes: 5 })
    ));
    assert_every_record_once(&binaries, &clients, &expected, "committed").await;
    // The next run finishes the committed one and compacts the rest.
    compact(
        &lake,
        &streamlake_core::dataset::Dataset::weather(),
        DateRange::default(),
        |_| {},
    )
    .await
    .unwrap();
    for day in by_day.keys() {
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
    assert_every_record_once(&binaries, &clients, &expected, "compacted").await;
    emulator.stop().await;
}
