//! Soak: a million records through `streamlake up` (a separate process, as users run it)
//! with every fault kind injected at once, then every record accounted for exactly as the
//! fault tests do, and the peak memory of `up` and its Lambdas read from `/proc`.
//!
//! Not part of `cargo test` (ignored); run it with
//!
//! ```sh
//! cargo test -p streamlake-e2e --test e2e soak -- --ignored --nocapture
//! ```
//!
//! `STREAMLAKE_SOAK_RECORDS` changes the number of records (default 1,000,000).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;
use chrono::NaiveDate;
use producer::{Entry, Producer, ProducerConfig};
use streamlake::StackConfig;
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::clients::Clients;
use streamlake::harness::emulator::Emulator;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::{normalize, seqnum};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{audit_in_order, run_logs};

/// Every call the pipeline makes fails now and then, each with the errors AWS documents.
const FAULTS: &[&str] = &[
    "kinesis:PutRecords=0.02",
    "kinesis:GetRecords=0.02",
    "s3:PutObject=0.02",
    "dynamodb:UpdateItem=0.02",
    "sqs:SendMessage=0.02",
    "lambda:transform=0.01",
    "lambda:consumer=0.01",
];

const SHARDS: usize = 4;

/// The settings of the run, as `up` flags. Large consumer batches: the emulator's
/// DynamoDB answers about 120 `UpdateItem`s a second, and a batch costs one per row.
const SETTINGS: &[&str] = &[
    "--shards",
    "4",
    "--batch-size",
    "10000",
    "--buffer-bytes",
    "5242880",
    "--buffer-interval",
    "5",
    "--inject-seed",
    "7",
];

/// `streamlake up` running in its own process, and the endpoint it printed.
struct Up {
    child: Child,
    endpoint: String,
}

async fn start_up(binaries: &Binaries, emulator: &str, state_dir: &Path) -> Up {
    let log = std::fs::File::create(state_dir.join("up.log")).unwrap();
    let mut command = Command::new(binaries.path("streamlake"));
    command
        .args(["up", "--endpoint", emulator, "--state-dir"])
        .arg(state_dir)
        .args(SETTINGS);
    for fault in FAULTS {
        command.args(["--inject", fault]);
    }
    let mut child = command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut endpoint = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(url) = line.trim().strip_prefix("endpoint") {
            endpoint = Some(url.trim().to_owned());
        }
        if line.starts_with("Send data") {
            break;
        }
    }
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Up {
        child,
        endpoint: endpoint.expect("up prints its endpoint"),
    }
}

/// Generated records, their days folded into October 2021: a month of a busy feed, in
/// which a station reports each datatype many times a day (the newest value stays in
/// DynamoDB), and the consumer's batches merge into few rows.
fn records(count: usize) -> Vec<Entry> {
    let arrival = streamlake_core::time::from_epoch_millis(0);
    WeatherGenerator::new(GeneratorConfig {
        seed: 5,
        start: NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
        error_rate: 0.01,
    })
    .take(count)
    .enumerate()
    .map(|(i, record)| {
        let mut entry = Entry::from(record);
        if normalize(&entry.data, arrival).is_ok() {
            let mut value: serde_json::Value = serde_json::from_slice(&entry.data).unwrap();
            value["date"] = format!("2021-10-{:02}T00:00:00", 1 + i % 31).into();
            entry.data = serde_json::to_vec(&value).unwrap();
        }
        entry
    })
    .collect()
}

/// Every record of the stream, shard by shard in sequence order, and each shard's last
/// sequence number, read from the emulator itself (no faults).
async fn read_stream(clients: &Clients, stream: &str) -> (Vec<Vec<u8>>, BTreeMap<String, String>) {
    let shards = clients
        .kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let (mut data, mut last) = (Vec::new(), BTreeMap::new());
    for shard in shards.shards() {
        let mut iterator = clients
            .kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            let page = clients
                .kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            for record in page.records() {
                data.push(record.data().as_ref().to_vec());
                last.insert(
                    shard.shard_id().to_owned(),
                    record.sequence_number().to_owned(),
                );
            }
            iterator = page.next_shard_iterator;
        }
    }
    (data, last)
}

/// Readers (Firehose, the mapping) and the shards on which they have settled everything.
fn settled(state_dir: &Path, last: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut done = BTreeMap::new();
    for file in std::fs::read_dir(state_dir.join("checkpoints")).unwrap() {
        let Ok(bytes) = std::fs::read(file.unwrap().path()) else {
            continue;
        };
        let Ok(readers) =
            serde_json::from_slice::<BTreeMap<String, BTreeMap<String, String>>>(&bytes)
        else {
            continue; // being replaced
        };
        for (reader, shards) in readers {
            let caught_up = last
                .iter()
                .filter(|(shard, seq)| {
                    shards
                        .get(*shard)
                        .is_some_and(|at| seqnum::compare(at, seq).is_ge())
                })
                .count();
            done.insert(reader, caught_up);
        }
    }
    done
}

/// Peak resident memory (VmHWM) of a process, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The Lambda processes `up` runs: its children, by command name, with their peak memory.
fn children_peak_rss(pid: u32) -> Vec<(String, f64)> {
    // Each thread lists the children it started.
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    let children: Vec<String> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .collect();
    children
        .iter()
        .flat_map(|c| c.split_whitespace())
        .filter_map(|c| c.parse::<u32>().ok())
        .filter_map(|c| {
            let name = std::fs::read_to_string(format!("/proc/{c}/comm")).ok()?;
            Some((name.trim().to_owned(), peak_rss_mib(c)?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a soak of about half an hour: cargo test -p streamlake-e2e --test e2e soak -- --ignored --nocapture"]
async fn a_million_records_with_every_fault_on_lose_nothing() {
    let count: usize = std::env::var("STREAMLAKE_SOAK_RECORDS")
        .map_or(1_000_000, |n| n.parse().expect("a number of records"));
    let started = Instant::now();
    let binaries = Binaries::locate().await.unwrap();
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let state_dir = default_state_dir().join(format!("soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).unwrap();
    let config = StackConfig::new(state_dir.clone());
    let direct = Clients::connect(emulator.endpoint(), true).await;

    let mut up = start_up(&binaries, emulator.endpoint(), &state_dir).await;
    let pid = up.child.id().unwrap();
    let through_faults = Clients::connect(&up.endpoint, true).await;
    let entries = records(count);
    eprintln!("soak: {count} records, faults {FAULTS:?}, up pid {pid}");

    let produce = Instant::now();
    let producer = Producer::new(
        through_faults.kinesis.clone(),
        ProducerConfig::new(&config.stream),
    );
    let mut shown = 0;
    let summary = producer
        .send(entries.iter().cloned(), |n| {
            if n >= shown + 100_000 {
                shown = n;
                eprintln!("soak: {n} records sent");
            }
        })
        .await
        .unwrap();
    assert_eq!(summary.sent as usize, count, "{:?}", summary.failed.first());
    let produced_in = produce.elapsed();
    eprintln!(
        "soak: sent in {produced_in:.0?}, {} entries resent after PutRecords faults",
        summary.retried
    );

    let (stream, last) = read_stream(&direct, &config.stream).await;
    assert_eq!(stream.len(), count, "each entry once in the stream");
    assert_eq!(last.len(), SHARDS);
    let deadline = Instant::now() + Duration::from_secs(3 * 3600);
    let mut next_report = Instant::now();
    loop {
        let done = settled(&state_dir, &last);
        if done.len() == 2 && done.values().all(|&n| n == SHARDS) {
            break;
        }
        if Instant::now() >= next_report {
            eprintln!(
                "soak: {:.0?}: shards settled per reader {done:?}",
                produce.elapsed()
            );
            next_report += Duration::from_secs(60);
        }
        assert!(Instant::now() < deadline, "not settled: {done:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let delivered_in = produce.elapsed();
    let peak = peak_rss_mib(pid).expect("up's memory");
    let lambdas = children_peak_rss(pid);

    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), up.child.wait())
        .await
        .expect("up stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}");

    let queue_url = direct
        .sqs
        .get_queue_url()
        .queue_name(&config.failure_queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let ledger = audit_in_order(
        &direct,
        &config,
        &queue_url,
        &entries,
        stream.iter().map(Vec::as_slice),
    )
    .await;
    let log = std::fs::read_to_string(state_dir.join("up.log")).unwrap();
    let stopped: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with("stopped"))
        .collect();
    eprintln!("soak: up said at stop: {stopped:?}");
    eprintln!(
        "soak: {count} records, lost = 0: {ledger:?}; sent in {produced_in:.1?}, all settled \
         {delivered_in:.1?} after the first was sent; peak RSS of up {peak:.0} MiB, of its \
         Lambdas {lambdas:?}; whole run {:.1?}",
        started.elapsed()
    );
    emulator.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}
