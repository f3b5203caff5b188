//! The producer against the local stack's endpoint, as a user runs it after `up`: this
//! producer (`PutRecords` batching, retries of failed entries), the same with `--aggregate`
//! (KPL), and the Direct PUT path (`PutRecordBatch` to `streamlake-direct`), each against a
//! boto3 producer sending the same records the same way (`producer_boto3.py`: requests of
//! 500), in the same run; and Direct PUT into a second stack that keeps no journal
//! (`--no-checkpoints`: accepted records only in memory), for what the journal costs.
//!
//! `cargo bench -p streamlake-e2e --bench producer` starts a local stack (moto), sends
//! `RECORDS` generated weather records per run, each producer `RUNS` times alternating, and
//! prints the best run of each: records/s, requests, and for `--aggregate` the Kinesis
//! records per user record. The stack's Firehose and consumer read along, as they do for a
//! user, so every producer shares moto with them alike.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use producer::aggregate::{Aggregating, ShardMap};
use producer::{Entry, Producer, ProducerConfig};
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::python::ensure_venv;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::names;

const RECORDS: usize = 5000;
const RUNS: usize = 3;
const BOTO3: &str = "boto3==1.44.5";

/// One run: records sent, time, requests, and Kinesis records (aggregates) when not 1:1.
#[derive(Debug, Clone, Copy)]
struct Run {
    records: usize,
    seconds: f64,
    requests: u64,
    kinesis_records: Option<u64>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

async fn ours(stack: &LocalStack, entries: &[Entry], how: &str) -> Run {
    let clients = stack.clients();
    let start = Instant::now();
    let (summary, kinesis_records) = match how {
        "kinesis" => {
            let producer = Producer::new(
                clients.kinesis.clone(),
                ProducerConfig::new(&stack.config().stream),
            );
            (producer.send(entries.to_vec(), |_| {}).await.unwrap(), None)
        }
        "aggregate" => {
            let producer = Producer::new(
                clients.kinesis.clone(),
                ProducerConfig::new(&stack.config().stream),
            );
            let shards = ShardMap::of_stream(&clients.kinesis, &stack.config().stream)
                .await
                .unwrap();
            let limit = ProducerConfig::new("").limits.max_record_bytes;
            let aggregates: Vec<Entry> =
                Aggregating::new(entries.iter().cloned(), shards, limit).collect();
            let n = aggregates.len() as u64;
            (producer.send(aggregates, |_| {}).await.unwrap(), Some(n))
        }
        _ => {
            let producer = Producer::firehose(
                clients.firehose.clone(),
                ProducerConfig::new(names::DIRECT_DELIVERY_STREAM),
            );
            (producer.send(entries.to_vec(), |_| {}).await.unwrap(), None)
        }
    };
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    Run {
        records: entries.len(),
        seconds: start.elapsed().as_secs_f64(),
        requests: summary.requests,
        kinesis_records,
    }
}

async fn boto3(python: &Path, stack: &LocalStack, file: &Path, mode: &str) -> Run {
    let name = match mode {
        "kinesis" => stack.config().stream.clone(),
        _ => names::DIRECT_DELIVERY_STREAM.to_owned(),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/producer_boto3.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .args([stack.endpoint(), mode, &name])
        .arg(file)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    Run {
        records: answer["records"].as_u64().unwrap() as usize,
        seconds: answer["seconds"].as_f64().unwrap(),
        requests: answer["requests"].as_u64().unwrap(),
        kinesis_records: None,
    }
}

fn best(runs: &[Run]) -> Run {
    *runs
        .iter()
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .unwrap()
}

#[tokio::main]
async fn main() {
    let state = default_state_dir();
    let venv = ensure_venv(
        &state,
        "bench-boto3-1",
        &[BOTO3],
        "installing boto3 for the producer benchmark",
        "about 20 s",
    )
    .await
    .unwrap();
    let python = venv.join("bin").join("python");
    let mut config = StackConfig::new(state.clone());
    config.buffer_interval = Duration::from_secs(5);
    let stack = LocalStack::start(config.clone()).await.unwrap();
    config.checkpoints = false;
    let memory_only = LocalStack::start(config).await.unwrap();
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig {
        seed: 3,
        start: NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
        error_rate: 0.0,
    })
    .take(RECORDS)
    .map(Entry::from)
    .collect();
    let file = stack.log_dir().join("producer-bench.ndjson");
    let body: Vec<u8> = entries
        .iter()
        .flat_map(|e| e.data.iter().copied().chain([b'\n']))
        .collect();
    std::fs::write(&file, body).unwrap();

    let names = [
        "streamlake PutRecords",
        "boto3 put_records",
        "streamlake PutRecords --aggregate",
        "streamlake PutRecordBatch (Direct PUT)",
        "boto3 put_record_batch (Direct PUT)",
        "streamlake PutRecordBatch (Direct PUT), no journal",
    ];
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); names.len()];
    for round in 0..RUNS {
        runs[0].push(ours(&stack, &entries, "kinesis").await);
        runs[1].push(boto3(&python, &stack, &file, "kinesis").await);
        runs[2].push(ours(&stack, &entries, "aggregate").await);
        runs[3].push(ours(&stack, &entries, "firehose").await);
        runs[4].push(boto3(&python, &stack, &file, "firehose").await);
        runs[5].push(ours(&memory_only, &entries, "firehose").await);
        eprintln!("round {} of {RUNS} done", round + 1);
    }
    println!("{RECORDS} records per run, best of {RUNS} alternating runs:");
    println!("| producer | records/s | requests | Kinesis records per user record |");
    println!("| --- | --- | --- | --- |");
    let best: Vec<Run> = runs.iter().map(|r| best(r)).collect();
    for (name, run) in names.iter().zip(&best) {
        let packing = run.kinesis_records.map_or_else(
            || "1".to_owned(),
            |k| format!("{:.4}", k as f64 / run.records as f64),
        );
        println!(
            "| {name} | {:.0} | {} | {packing} |",
            run.per_second(),
            run.requests
        );
    }
    let ratio = |a: usize, b: usize| best[a].per_second() / best[b].per_second();
    println!("streamlake vs boto3, PutRecords: {:.2}x", ratio(0, 1));
    println!(
        "streamlake --aggregate vs boto3 PutRecords: {:.2}x",
        ratio(2, 1)
    );
    println!("streamlake vs boto3, PutRecordBatch: {:.2}x", ratio(3, 4));
    println!(
        "PutRecordBatch vs PutRecords (streamlake): {:.2}x",
        ratio(3, 0)
    );
    println!(
        "PutRecordBatch with the journal vs without: {:.2}x",
        ratio(3, 5)
    );
    memory_only.stop().await;
    stack.stop().await;
}
