//! `up`'s status: run in process (the stack and `serve::Serving`), after a run it equals
//! what the lake, the tables and the queue hold, read back here with the SDK, and the
//! dashboard it serves, rendered by a real browser (headless Chromium), shows the same
//! figures. Against `streamlake up`, `status --json` on a lake of many partitions shows
//! the recent ones, and totals equal to a full listing.

use std::collections::BTreeMap;
use std::time::Duration;

use producer::{Entry, Producer, ProducerConfig};
use streamlake::LocalStack;
use streamlake::StackConfig;
use streamlake::clients::Clients;
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::demo::count_rows;
use streamlake::harness::emulator::Emulator;
use streamlake::lake_index::RECENT_WINDOW;
use streamlake::serve::Serving;
use streamlake::status::{Objects, Status};
use streamlake_core::PartitionKeys;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::layout::DATA_ROOT;
use streamlake_e2e::write_old_partitions;

use crate::support::{run_logs, start_up, terminate};

/// Every data object under the lake's prefix, per partition (a full listing).
async fn full_listing(clients: &Clients, bucket: &str) -> BTreeMap<String, Objects> {
    let mut partitions: BTreeMap<String, Objects> = BTreeMap::new();
    let mut pages = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(DATA_ROOT)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap();
            if streamlake_core::lake::is_hidden(key) {
                continue;
            }
            let partition = PartitionKeys::from_path(key).unwrap();
            let entry = partitions.entry(partition.to_string()).or_default();
            entry.objects += 1;
            entry.bytes += object.size().unwrap() as u64;
        }
    }
    partitions
}

/// `streamlake status --json` for `state_dir`.
async fn status_json(binaries: &Binaries, state_dir: &std::path::Path) -> Status {
    let output = binaries
        .command("streamlake")
        .args(["status", "--json", "--state-dir"])
        .arg(state_dir)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_and_the_dashboard_equal_what_the_lake_and_tables_hold() {
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let endpoint = emulator.endpoint().to_owned();
    let state_dir = default_state_dir().join(format!("status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).unwrap();
    let config = StackConfig::new(state_dir.clone());
    let clients = Clients::connect(&endpoint, true).await;
    // In process: the stack, and `up`'s status served and refreshed until the check ends.
    let mut in_process = StackConfig::new(state_dir.clone());
    in_process.endpoint = Some(endpoint.clone());
    let stack = LocalStack::start(in_process).await.unwrap();
    let serving = Serving::start(&stack, RECENT_WINDOW).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = serving.until(&stack, async {
        let _ = stopped.await;
    });
    let check = async {
        let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig {
            seed: 5,
            error_rate: 0.03,
            ..GeneratorConfig::default()
        })
        .take(600)
        .map(Entry::from)
        .collect();
        let producer = Producer::new(clients.kinesis.clone(), ProducerConfig::new(&config.stream));
        let sent = producer.send(entries.clone(), |_| {}).await.unwrap().sent;
        assert_eq!(sent as usize, entries.len());

        // Until both branches have settled every record, and a snapshot taken after that.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
        let status = loop {
            let s = streamlake::status::fetch(&state_dir).await.unwrap();
            let settled = s.firehose.settled()
                && s.firehose.records_read == sent
                && s.mapping.settled()
                && s.mapping.records_read == sent
                && s.metrics["streamlake-consumer"].get("RecordsIn") == Some(&(sent as f64));
            if settled {
                // The counters are final; the next snapshot lists the lake after them.
                tokio::time::sleep(streamlake::status::REFRESH * 2).await;
                break streamlake::status::fetch(&state_dir).await.unwrap();
            }
            assert!(tokio::time::Instant::now() < deadline, "{s:#?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };

        // The lake, read back here.
        let partitions = full_listing(&clients, &config.bucket).await;
        assert!(!partitions.is_empty());
        // Every partition was written within the window: all of them shown, and the totals.
        assert_eq!(status.partitions, partitions);
        let objects: u64 = partitions.values().map(|o| o.objects).sum();
        let bytes: u64 = partitions.values().map(|o| o.bytes).sum();
        assert_eq!(
            (
                status.lake.partitions,
                status.lake.objects,
                status.lake.bytes
            ),
            (partitions.len() as u64, objects, bytes)
        );
        assert_eq!(
            status.rows,
            count_rows(&clients, &config.table_names()).await.unwrap()
        );
        // Every item table has rows; the summary table is empty without tumbling windows.
        let dynamodb = config.dataset.dynamodb().unwrap();
        assert!(dynamodb.tables.iter().all(|t| status.rows[&t.name] > 0));
        assert!(dynamodb.summaries.iter().all(|t| status.rows[&t.name] == 0));
        assert_eq!(status.firehose.delivered + status.firehose.failed, sent);
        assert_eq!(status.mapping.succeeded, sent);
        assert_eq!(status.failure_queue_depth, 0);
        let malformed = status.firehose.failed;
        assert!(malformed > 0);
        assert_eq!(
            status.metrics["streamlake-consumer"]["DeadLetters"],
            malformed as f64
        );
        assert_eq!(status.errors["consumer-invalid"].objects, malformed);
        assert!(status.errors["processing-failed"].objects > 0);
        let checkpoints = &status.checkpoints;
        assert_eq!(checkpoints.len(), 2, "{checkpoints:?}");
        assert!(checkpoints.values().all(|shards| shards.len() == 2));

        dashboard_shows(&state_dir, &status).await;
        let _ = stop.send(());
    };
    tokio::join!(serve, check);
    let stats = stack.stop().await;
    assert_eq!(
        stats.firehose.undelivered() + stats.mapping.unsettled(),
        0,
        "{stats:?}"
    );
    emulator.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// The dashboard, as headless Chromium renders it (its DOM after the page's script ran),
/// shows the figures of `status`. Skipped, saying so, when Chromium is not installed
/// (`.ci/run` installs it).
async fn dashboard_shows(state_dir: &std::path::Path, status: &Status) {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("skipped the browser check: Chromium is not installed");
        return;
    };
    let endpoint =
        std::fs::read_to_string(state_dir.join(streamlake::status::ENDPOINT_FILE)).unwrap();
    let output = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("{}/", endpoint.trim()))
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let dom = String::from_utf8(output.stdout).unwrap();
    let consumer = &status.metrics["streamlake-consumer"];
    let rows: u64 = status.rows.values().sum();
    for (id, value) in [
        ("firehose-read", status.firehose.records_read.to_string()),
        ("firehose-buffered", status.firehose.in_flight.to_string()),
        ("firehose-delivered", status.firehose.delivered.to_string()),
        ("firehose-failed", status.firehose.failed.to_string()),
        ("firehose-dropped", status.firehose.dropped.to_string()),
        ("direct-read", status.direct_put.records_read.to_string()),
        ("direct-delivered", status.direct_put.delivered.to_string()),
        ("consumer-read", status.mapping.records_read.to_string()),
        ("consumer-succeeded", status.mapping.succeeded.to_string()),
        ("consumer-discarded", status.mapping.discarded.to_string()),
        ("consumer-dead-letters", consumer["DeadLetters"].to_string()),
        ("failure-queue", status.failure_queue_depth.to_string()),
        ("rows", rows.to_string()),
        ("stream", status.stream.clone()),
    ] {
        let rendered = format!("id=\"{id}\">{value}<");
        assert!(
            dom.contains(&rendered),
            "{rendered} not in the page:\n{dom}"
        );
    }
    let (partition, objects) = status.partitions.last_key_value().unwrap();
    assert!(
        dom.contains(&format!("<td>{partition}</td><td>{}</td>", objects.objects)),
        "the newest partition is listed:\n{dom}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_lake_of_many_partitions_status_shows_the_recent_ones_and_whole_totals() {
    const OLD: usize = 1500;
    let binaries = Binaries::locate().await.unwrap();
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let endpoint = emulator.endpoint().to_owned();
    let state_dir = default_state_dir().join(format!("status-many-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).unwrap();
    let config = StackConfig::new(state_dir.clone());
    let clients = Clients::connect(&endpoint, true).await;
    // Years of daily partitions, one object each, there before the stack starts.
    clients
        .s3
        .create_bucket()
        .bucket(&config.bucket)
        .send()
        .await
        .unwrap();
    let first = chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap();
    write_old_partitions(&clients.bucket(&config.bucket), first, OLD).await;
    let mut up = start_up(&binaries, &endpoint, &state_dir, "up", &[]).await;
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig::default())
        .take(200)
        .map(Entry::from)
        .collect();
    let producer = Producer::new(clients.kinesis.clone(), ProducerConfig::new(&config.stream));
    let sent = producer.send(entries, |_| {}).await.unwrap().sent;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let status = loop {
        let s = status_json(&binaries, &state_dir).await;
        if s.firehose.settled() && s.firehose.records_read == sent {
            tokio::time::sleep(streamlake::status::REFRESH * 2).await;
            break status_json(&binaries, &state_dir).await;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let all = full_listing(&clients, &config.bucket).await;
    let recent: BTreeMap<String, Objects> = all
        .iter()
        .filter(|(_, o)| o.objects > 0)
        .filter(|(p, _)| !p.starts_with("year=201"))
        .map(|(p, o)| (p.clone(), *o))
        .collect();
    assert!(!recent.is_empty() && recent.len() < 100, "{recent:?}");
    assert_eq!(status.partitions, recent, "only the partitions written now");
    assert_eq!(
        (
            status.lake.partitions,
            status.lake.objects,
            status.lake.bytes
        ),
        (
            all.len() as u64,
            all.values().map(|o| o.objects).sum(),
            all.values().map(|o| o.bytes).sum()
        ),
        "totals as a full listing counts them"
    );
    assert!(all.len() > OLD);
    terminate(&mut up).await;
    emulator.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}
