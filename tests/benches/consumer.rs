//! The consumer's DynamoDB writes: this consumer (rows merged per batch, conditional
//! `UpdateItem`s issued concurrently) vs the tutorials' way (one unconditional
//! `UpdateItem` per record, sequentially), on the same records, the same server, in the
//! same run, for the weather and the unicorn examples.
//!
//! `cargo bench -p streamlake-e2e --bench consumer` runs both against moto (one request at
//! a time), and against dynalite (npm, pinned; requests served in parallel) directly and
//! behind the fault proxy adding 0, 2, 5 and 10 ms to each answer, like a network round
//! trip to DynamoDB. It prints requests per batch and items/s of both, and ends with one
//! line per dataset and server: `weather: consumer vs sequential at N ms: X.Xx items/s (A vs B)`. Each side runs
//! three times, alternating; the best run counts.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use consumer_lambda::plan::Value;
use consumer_lambda::{InputRecord, Tables, WriteOptions, apply, plan_batch};
use streamlake::clients::Clients;
use streamlake::faults::FaultPlan;
use streamlake::faults::latency::{LatencySpec, Service};
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::emulator::Emulator;
use streamlake::harness::logs;
use streamlake::harness::node_servers::{NodeServer, NodeServerKind};
use streamlake::harness::resources::{self, TableSpec};
use streamlake::http::faults::FaultProxy;
use streamlake_core::dataset::Dataset;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};

const RECORDS: usize = 2000;
const BATCH: usize = 100;
const CONCURRENCY: usize = 16;
/// Each writer runs this many times per server, alternating; the best run counts.
const RUNS: usize = 3;
/// Round trips added in front of dynalite.
const LATENCIES_MS: [u64; 4] = [0, 2, 5, 10];

struct Result {
    elapsed: Duration,
    requests: usize,
}

fn inputs(batch: &[(String, Vec<u8>)]) -> impl Iterator<Item = InputRecord<'_>> + Clone {
    batch.iter().map(|(seq, data)| InputRecord {
        sequence_number: seq,
        partition_key: "bench",
        data,
        arrival: Utc::now(),
    })
}

async fn ours(clients: &Clients, tables: &Tables, records: &[(String, Vec<u8>)]) -> Result {
    let start = Instant::now();
    let mut requests = 0;
    for batch in records.chunks(BATCH) {
        let plan = plan_batch(inputs(batch), tables);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let outcome = apply(
            &clients.dynamodb,
            &plan,
            WriteOptions::new(CONCURRENCY, deadline),
        )
        .await;
        assert!(outcome.failed.is_empty());
        requests += outcome.requests;
    }
    Result {
        elapsed: start.elapsed(),
        requests,
    }
}

/// The tutorials' consumer: per record and table, one unconditional `UpdateItem` setting
/// its attributes, one after the other.
async fn baseline(clients: &Clients, tables: &Tables, records: &[(String, Vec<u8>)]) -> Result {
    let start = Instant::now();
    let mut requests = 0;
    for record in records {
        for row in plan_batch(inputs(std::slice::from_ref(record)), tables).updates {
            let mut key = HashMap::new();
            for (name, value) in std::iter::once(&row.key.partition).chain(&row.key.sort) {
                key.insert(name.clone(), consumer_lambda::write::key_value(value));
            }
            let mut request = clients
                .dynamodb
                .update_item()
                .table_name(&row.key.table)
                .set_key(Some(key));
            let mut sets = Vec::new();
            for (i, (attribute, v)) in row.attributes.iter().enumerate() {
                let value = match &v.value {
                    Value::Number(n) => AttributeValue::N(n.clone()),
                    Value::Bool(b) => AttributeValue::Bool(*b),
                    Value::Text(s) | Value::Document(s) => AttributeValue::S(s.clone()),
                    Value::Removed => continue,
                };
                sets.push(format!("#a{i} = :a{i}"));
                request = request
                    .expression_attribute_names(format!("#a{i}"), attribute)
                    .expression_attribute_values(format!(":a{i}"), value);
            }
            request
                .update_expression(format!("SET {}", sets.join(", ")))
                .send()
                .await
                .expect("update");
            requests += 1;
        }
    }
    Result {
        elapsed: start.elapsed(),
        requests,
    }
}

/// The best of three alternating runs of each writer, on fresh tables.
async fn measure(
    clients: &Clients,
    dataset: &Dataset,
    records: &[(String, Vec<u8>)],
    label: &str,
) -> (Result, Result) {
    let tables = |prefix: String| Tables::new(dataset.clone(), prefix).expect("tables");
    let mut best_ours: Option<Result> = None;
    let mut best_baseline: Option<Result> = None;
    for run in 0..RUNS {
        let (o, b) = (
            tables(format!("Ours{label}{run}")),
            tables(format!("Seed{label}{run}")),
        );
        for t in [&o, &b] {
            for mut spec in TableSpec::of(t.dynamodb()) {
                spec.name = t.name(&spec.name);
                resources::ensure_table(clients, &spec)
                    .await
                    .expect("a table");
            }
        }
        let b_result = baseline(clients, &b, records).await;
        let o_result = ours(clients, &o, records).await;
        if best_baseline
            .as_ref()
            .is_none_or(|x| b_result.elapsed < x.elapsed)
        {
            best_baseline = Some(b_result);
        }
        if best_ours
            .as_ref()
            .is_none_or(|x| o_result.elapsed < x.elapsed)
        {
            best_ours = Some(o_result);
        }
    }
    (best_ours.expect("runs"), best_baseline.expect("runs"))
}

/// The records of a dataset: weather generated, the unicorns' from their example.
fn records(dataset: &str) -> Vec<(String, Vec<u8>)> {
    let data: Vec<Vec<u8>> = match dataset {
        "weather" => WeatherGenerator::new(GeneratorConfig::default())
            .take(RECORDS)
            .map(|r| r.data)
            .collect(),
        name => {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples")
                .join(name)
                .join("records.ndjson");
            std::fs::read_to_string(&path)
                .expect("the example's records")
                .lines()
                .take(RECORDS)
                .map(|l| l.as_bytes().to_vec())
                .collect()
        }
    };
    data.into_iter()
        .enumerate()
        .map(|(i, data)| {
            (
                format!("4959033827149025660855969253836157109592157598913658{i:04}"),
                data,
            )
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let logs = run_logs();
    let mut moto = Emulator::start(&default_state_dir(), &logs)
        .await
        .expect("moto");
    let dynalite = NodeServer::start(NodeServerKind::Dynalite, &default_state_dir(), &logs)
        .await
        .expect("dynalite");

    // DynamoDB-like servers: moto (one request at a time), dynalite (in parallel) as it
    // is and behind the fault proxy holding each answer back like a network round trip.
    let mut servers: Vec<(String, Option<FaultProxy>, String)> =
        vec![("moto".into(), None, moto.endpoint().to_owned())];
    for ms in LATENCIES_MS {
        let plan = FaultPlan::default().with_latency(LatencySpec {
            service: Service::DynamoDb,
            delay: Duration::from_millis(ms),
            jitter: Duration::ZERO,
        });
        let proxy = FaultProxy::start(dynalite.endpoint(), &plan)
            .await
            .expect("latency proxy");
        let endpoint = proxy.endpoint().to_owned();
        servers.push((format!("dynalite at {ms} ms"), Some(proxy), endpoint));
    }

    let mut summary = Vec::new();
    for name in ["weather", "unicorns"] {
        let dataset = Dataset::load_path(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples")
                .join(name),
        )
        .expect("the example's dataset");
        let records = records(name);
        let tables = Tables::new(dataset.clone(), "").expect("tables");
        let rows_per_batch: f64 = records
            .chunks(BATCH)
            .map(|b| plan_batch(inputs(b), &tables).updates.len() as f64)
            .sum::<f64>()
            / records.chunks(BATCH).len() as f64;
        println!(
            "consumer bench, {name}: {} records in batches of {BATCH} ({rows_per_batch:.1} distinct rows per batch), \
             best of {RUNS}; streamlake = rows merged, conditional, {CONCURRENCY} in flight; \
             sequential = one UpdateItem per record and table",
            records.len()
        );
        let batches = records.chunks(BATCH).len() as f64;
        let rate = |r: &Result| records.len() as f64 / r.elapsed.as_secs_f64();
        for (i, (server, _proxy, endpoint)) in servers.iter().enumerate() {
            let clients = Clients::connect(endpoint, true).await;
            let (o, b) = measure(&clients, &dataset, &records, &format!("{name}{i}")).await;
            println!(
                "  {server:<17} streamlake {:>5.1} requests/batch {:>7.0} items/s | sequential {:>5.1} requests/batch {:>7.0} items/s",
                o.requests as f64 / batches,
                rate(&o),
                b.requests as f64 / batches,
                rate(&b),
            );
            summary.push(format!(
                "{name}: consumer vs sequential {}: {:.1}x items/s ({:.0} vs {:.0})",
                server
                    .strip_prefix("dynalite ")
                    .map_or_else(|| format!("on {server}"), str::to_owned),
                rate(&o) / rate(&b),
                rate(&o),
                rate(&b)
            ));
        }
    }
    for line in summary {
        println!("{line}");
    }
    moto.stop().await;
}

fn run_logs() -> std::path::PathBuf {
    logs::create_run_dir(&default_state_dir()).expect("a log folder")
}
