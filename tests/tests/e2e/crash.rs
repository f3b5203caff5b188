//! Crash consistency: `streamlake up` killed with SIGKILL in the middle of delivery, twice,
//! against an emulator that stays up, then started again with the same state folder:
//! every record reaches the lake and the tables, and the lake holds none twice. The same
//! for Direct PUT: records `PutRecordBatch` accepted, killed before any was delivered,
//! then again amid the restarted delivery.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use producer::{Entry, Producer, ProducerConfig};
use streamlake::StackConfig;
use streamlake::clients::Clients;
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::emulator::Emulator;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::layout::DATA_ROOT;
use tokio::process::Child;

use crate::support::{
    audit, audit_lake, failure_queue_url, interrupt, run_logs, start_up, start_up_at,
    wait_for_consumer, with_newline,
};

const RECORDS: usize = 2000;

/// Starts `streamlake up` on `endpoint` with `state_dir`, with small buffers: many
/// deliveries, each of several objects, to be killed amid.
async fn up(binaries: &Binaries, endpoint: &str, state_dir: &Path, run: u32) -> Child {
    start_up(
        binaries,
        endpoint,
        state_dir,
        &format!("up-{run}"),
        &["--buffer-bytes", "8192", "--buffer-interval", "0.5"],
    )
    .await
}

/// What a crash test runs against: an emulator that stays up across the kills, and a
/// state folder of its own.
struct Crash {
    binaries: Binaries,
    emulator: Emulator,
    endpoint: String,
    state_dir: std::path::PathBuf,
    config: StackConfig,
    clients: Clients,
}

impl Crash {
    async fn start(name: &str) -> Self {
        let binaries = Binaries::locate().await.unwrap();
        let emulator = Emulator::start(&default_state_dir(), &run_logs())
            .await
            .unwrap();
        let endpoint = emulator.endpoint().to_owned();
        let state_dir = default_state_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        let config = StackConfig::new(state_dir.clone());
        let clients = Clients::connect(&endpoint, true).await;
        Self {
            binaries,
            emulator,
            endpoint,
            state_dir,
            config,
            clients,
        }
    }
}

/// The records a crash test sends: [`RECORDS`] of them, 2 % malformed.
fn entries(seed: u64) -> Vec<Entry> {
    WeatherGenerator::new(GeneratorConfig {
        seed,
        start: NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
        error_rate: 0.02,
    })
    .take(RECORDS)
    .map(Entry::from)
    .collect()
}

/// Data objects in the lake.
async fn objects(clients: &Clients, bucket: &str) -> usize {
    clients
        .bucket(bucket)
        .objects_under(DATA_ROOT)
        .await
        .map_or(0, |objects| {
            objects
                .iter()
                .filter(|o| !streamlake_core::lake::is_hidden(&o.key))
                .count()
        })
}

/// Waits until the lake holds more than `count` data objects.
async fn wait_for_objects(clients: &Clients, bucket: &str, count: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = objects(clients, bucket).await;
        if now > count {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new objects");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lines in the lake (data and errors): every record once when delivery is complete.
/// Each object is read once while it stays as it is, so that polling reads only what was
/// written (or written again) since the last poll instead of the whole lake each time.
#[derive(Default)]
struct LakeLines {
    /// Key -> (size, last write, lines).
    seen: HashMap<String, (u64, Option<DateTime<Utc>>, usize)>,
}

impl LakeLines {
    async fn count(&mut self, clients: &Clients, bucket: &str) -> usize {
        let lake = clients.bucket(bucket);
        let mut objects = Vec::new();
        for prefix in [DATA_ROOT, "errors/processing-failed/"] {
            objects.extend(lake.objects_under(prefix).await.unwrap());
        }
        objects.retain(|o| !streamlake_core::lake::is_hidden(&o.key));
        let mut lines = 0;
        for object in objects {
            let current = self
                .seen
                .get(&object.key)
                .filter(|(size, modified, _)| (*size, *modified) == (object.size, object.modified));
            lines += match current {
                Some((_, _, lines)) => *lines,
                None => {
                    let body = lake.read(&object.key).await.unwrap();
                    let n = body.iter().filter(|b| **b == b'\n').count();
                    self.seen
                        .insert(object.key.clone(), (object.size, object.modified, n));
                    n
                }
            };
        }
        lines
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_delivery_twice_then_restart_loses_and_duplicates_nothing() {
    let Crash {
        binaries,
        mut emulator,
        endpoint,
        state_dir,
        config,
        clients,
    } = Crash::start("crash").await;

    let mut first = up(&binaries, &endpoint, &state_dir, 1).await;
    let entries = entries(21);
    let producer = Producer::new(clients.kinesis.clone(), ProducerConfig::new(&config.stream));
    assert_eq!(
        producer.send(entries.clone(), |_| {}).await.unwrap().sent as usize,
        RECORDS
    );

    // Killed as soon as a few objects are written, then again a little later.
    let written = wait_for_objects(&clients, &config.bucket, 2).await;
    first.kill().await.unwrap();
    let mut second = up(&binaries, &endpoint, &state_dir, 2).await;
    wait_for_objects(&clients, &config.bucket, written + 3).await;
    second.kill().await.unwrap();
    let mut lake_lines = LakeLines::default();
    let delivered_before = lake_lines.count(&clients, &config.bucket).await;
    assert!(
        delivered_before < RECORDS,
        "killed mid-delivery: {delivered_before} of {RECORDS} records were in the lake"
    );

    let last = up(&binaries, &endpoint, &state_dir, 3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while lake_lines.count(&clients, &config.bucket).await < RECORDS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lake is incomplete"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for_consumer(&clients, &config.bucket, &entries).await;
    // Ctrl-C: the consumer's batches in progress are finished and checkpointed.
    let mut last = last;
    interrupt(&mut last).await;

    let queue_url = failure_queue_url(&clients, &config).await;
    let ledger = audit(&clients, &config, &queue_url, &entries).await;
    assert_eq!(ledger.transform_failed, 0);
    eprintln!("after two crashes: {ledger:?}, {delivered_before} delivered before the restart");
    emulator.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_put_records_accepted_before_a_sigkill_are_delivered_once_after_restarts() {
    let Crash {
        binaries,
        mut emulator,
        endpoint,
        state_dir,
        config,
        clients,
    } = Crash::start("crash-direct").await;

    // A buffer that is not delivered before the kill: 15 minutes, 64 MiB.
    let (mut first, front) = start_up_at(
        &binaries,
        &endpoint,
        &state_dir,
        "direct-1",
        &["--buffer-bytes", "67108864", "--buffer-interval", "900"],
    )
    .await;
    let entries = entries(22);
    let to_front = Clients::connect(&front, true).await;
    let producer = Producer::firehose(
        to_front.firehose.clone(),
        ProducerConfig::new(streamlake_core::names::DIRECT_DELIVERY_STREAM),
    );
    let sent = producer.send(entries.clone(), |_| {}).await.unwrap();
    assert_eq!(sent.sent as usize, RECORDS, "every record accepted");
    first.kill().await.unwrap();
    let mut lake_lines = LakeLines::default();
    assert_eq!(
        lake_lines.count(&clients, &config.bucket).await,
        0,
        "killed before any delivery"
    );

    // Restarted with small buffers: the journal's records are delivered; killed again
    // amid that delivery, then started a last time.
    let small = ["--buffer-bytes", "8192", "--buffer-interval", "0.5"];
    let mut second = start_up(&binaries, &endpoint, &state_dir, "direct-2", &small).await;
    wait_for_objects(&clients, &config.bucket, 2).await;
    second.kill().await.unwrap();
    let delivered_before = lake_lines.count(&clients, &config.bucket).await;
    let mut last = start_up(&binaries, &endpoint, &state_dir, "direct-3", &small).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while lake_lines.count(&clients, &config.bucket).await < RECORDS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lake is incomplete"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    interrupt(&mut last).await;
    let (ledger, _, _) = audit_lake(&clients, &config.bucket, &with_newline(&entries)).await;
    eprintln!(
        "Direct PUT after two crashes: {ledger:?}, {delivered_before} delivered before the last start"
    );
    // Read whole again: what the polls saw is not what is checked.
    assert_eq!(
        LakeLines::default().count(&clients, &config.bucket).await,
        RECORDS
    );
    // Delivered and checkpointed: the journal keeps nothing more.
    let journals: Vec<_> = walk(&state_dir.join("checkpoints"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".journal"))
        .filter(|p| p.is_file())
        .collect();
    assert!(journals.is_empty(), "{journals:?}");
    emulator.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
