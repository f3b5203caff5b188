//! Soak: a million records through `streamlake up` (a separate process, as users run it)
//! with every fault kind injected at once, then every record accounted for exactly as the
//! fault tests do, and the peak memory of `up` and its Lambdas read from `/proc`.
//!
//! In rounds of 50,000 records, each on a new stream (one `up` per round, the same
//! bucket, tables and emulator): moto's Kinesis costs time in proportion to the records
//! a shard already holds for every record put (`Shard.put_record` copies the shard's keys
//! to find the last one) and for every `GetRecords` (it scans the shard from its start),
//! so one stream of a million records would take hours. Each round's records fall on
//! days of their own: moto's sequence numbers start again at 1 on a new stream, and a
//! row written by two streams would see the older one's versions as newer.
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
use streamlake::clients::Clients;
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::emulator::Emulator;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::seqnum;
use streamlake_e2e::weather;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::support::{audit_in_order, failure_queue_url, interrupt, run_logs};

/// Every call the pipeline makes fails now and then, each with the errors AWS documents.
const FAULTS: &[&str] = &[
    "kinesis:PutRecords=0.05",
    "kinesis:GetRecords=0.02",
    "s3:PutObject=0.02",
    "dynamodb:UpdateItem=0.02",
    "sqs:SendMessage=0.02",
    "lambda:transform=0.05",
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
];

/// Records per round (per stream).
const ROUND: usize = 50_000;

/// Days each round's records fall on.
const DAYS_PER_ROUND: usize = 3;

/// `streamlake up` running in its own process, and the endpoint it printed.
struct Up {
    child: Child,
    endpoint: String,
}

async fn start_up(
    binaries: &Binaries,
    emulator: &str,
    state_dir: &Path,
    stream: &str,
    seed: u64,
) -> Up {
    let log = std::fs::File::create(state_dir.join(format!("{stream}.log"))).unwrap();
    let mut command = binaries.command("streamlake");
    command
        .args([
            "up",
            "--endpoint",
            emulator,
            "--stream",
            stream,
            "--state-dir",
        ])
        .arg(state_dir)
        .args(SETTINGS)
        .args(["--inject-seed", &seed.to_string()]);
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

/// Generated records, their days folded into the round's own days: a busy feed in which a
/// station reports each datatype many times a day (the newest value stays in DynamoDB),
/// and the consumer's batches merge into few rows (the emulator's DynamoDB answers about
/// 120 `UpdateItem`s a second).
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
        if weather(&entry.data, arrival).is_ok() {
            let day = 1 + (i / ROUND * DAYS_PER_ROUND + i % DAYS_PER_ROUND) % 365;
            let date = NaiveDate::from_yo_opt(2021, day as u32).unwrap();
            let mut value: serde_json::Value = serde_json::from_slice(&entry.data).unwrap();
            value["date"] = format!("{date}T00:00:00").into();
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

/// Readers (Firehose, the mapping) of `stream` and the shards on which they have settled
/// everything.
fn settled(
    state_dir: &Path,
    stream: &str,
    last: &BTreeMap<String, String>,
) -> BTreeMap<String, usize> {
    let mut done = BTreeMap::new();
    // One file per stream instance, named after its ARN (`..._stream_NAME_CREATED.json`).
    let marker = format!("_stream_{stream}_");
    for file in std::fs::read_dir(state_dir.join("checkpoints")).unwrap() {
        let path = file.unwrap().path();
        if !path.to_string_lossy().contains(&marker) {
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else {
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

/// What one round measured.
struct Round {
    sent_in: Duration,
    settled_in: Duration,
    resent: u64,
    peak_rss_mib: f64,
    lambdas: Vec<(String, f64)>,
    stopped: Vec<String>,
}

/// One round: `up` on a new stream (faults seeded with `seed`), the entries sent through
/// its fault endpoint, until
/// Firehose and the mapping have settled every shard, then Ctrl-C. Returns the stream's
/// records in shard order.
async fn round(
    binaries: &Binaries,
    emulator: &Emulator,
    state_dir: &Path,
    stream: &str,
    seed: u64,
    entries: &[Entry],
) -> (Vec<Vec<u8>>, Round) {
    let direct = Clients::connect(emulator.endpoint(), true).await;
    let mut up = start_up(binaries, emulator.endpoint(), state_dir, stream, seed).await;
    let pid = up.child.id().unwrap();
    let through_faults = Clients::connect(&up.endpoint, true).await;
    let produce = Instant::now();
    let producer = Producer::new(through_faults.kinesis.clone(), ProducerConfig::new(stream));
    let summary = producer
        .send(entries.iter().cloned(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        summary.sent as usize,
        entries.len(),
        "{:?}",
        summary.failed.first()
    );
    let sent_in = produce.elapsed();

    let (records, last) = read_stream(&direct, stream).await;
    assert_eq!(
        records.len(),
        entries.len(),
        "each entry once in the stream"
    );
    assert_eq!(last.len(), SHARDS);
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let done = settled(state_dir, stream, &last);
        if done.len() == 2 && done.values().all(|&n| n == SHARDS) {
            break;
        }
        assert!(Instant::now() < deadline, "{stream} not settled: {done:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settled_in = produce.elapsed();
    let peak_rss_mib = peak_rss_mib(pid).expect("up's memory");
    let lambdas = children_peak_rss(pid);
    interrupt(&mut up.child).await;
    let log = std::fs::read_to_string(state_dir.join(format!("{stream}.log"))).unwrap();
    let stopped = log
        .lines()
        .skip_while(|l| !l.starts_with("stopped"))
        .map(str::to_owned)
        .collect();
    let round = Round {
        sent_in,
        settled_in,
        resent: summary.retried,
        peak_rss_mib,
        lambdas,
        stopped,
    };
    (records, round)
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
    let entries = records(count);
    eprintln!("soak: {count} records in rounds of {ROUND}, faults {FAULTS:?}");

    let mut stream_order = Vec::with_capacity(count);
    let mut peak = 0f64;
    for (i, chunk) in entries.chunks(ROUND).enumerate() {
        let stream = format!("streamlake-soak-{i}");
        // Each round's faults fall on other calls.
        let seed = 7 + i as u64;
        let (records, r) = round(&binaries, &emulator, &state_dir, &stream, seed, chunk).await;
        stream_order.extend(records);
        peak = peak.max(r.peak_rss_mib);
        eprintln!(
            "soak: round {i}: {} records sent in {:.1?} ({} resent after PutRecords faults), \
             settled after {:.1?}; peak RSS of up {:.0} MiB, Lambdas {:?}; {:?}",
            chunk.len(),
            r.sent_in,
            r.resent,
            r.settled_in,
            r.peak_rss_mib,
            r.lambdas,
            r.stopped
        );
    }

    let direct = Clients::connect(emulator.endpoint(), true).await;
    let queue_url = failure_queue_url(&direct, &config).await;
    let ledger = audit_in_order(
        &direct,
        &config,
        &queue_url,
        &entries,
        stream_order.iter().map(Vec::as_slice),
    )
    .await;
    eprintln!(
        "soak: {count} records, lost = 0: {ledger:?}; peak RSS of up {peak:.0} MiB; whole run {:.1?}",
        started.elapsed()
    );
    emulator.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}
