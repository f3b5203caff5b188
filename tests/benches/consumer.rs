//! The consumer's DynamoDB writes: this consumer (rows merged per batch, conditional
//! `UpdateItem`s issued concurrently) vs the seed-000 way (one unconditional `UpdateItem`
//! per record, sequentially), on the same records, the same server, in the same run.
//!
//! `cargo bench -p streamlake-e2e --bench consumer` runs both against moto (one request at
//! a time), and against dynalite (npm, pinned; requests served in parallel) directly and
//! behind the fault proxy adding 0, 2, 5 and 10 ms to each answer, like a network round
//! trip to DynamoDB. It prints requests per batch and items/s of both, and ends with one
//! line per server: `consumer vs sequential at N ms: X.Xx items/s (A vs B)`. Each side runs
//! three times, alternating; the best run counts.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use consumer_lambda::{InputRecord, WriteOptions, apply, plan_batch};
use streamlake::faults::FaultPlan;
use streamlake::faults::latency::{LatencySpec, Service};
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::clients::Clients;
use streamlake::harness::emulator::Emulator;
use streamlake::harness::logs;
use streamlake::harness::node_servers::{NodeServer, NodeServerKind};
use streamlake::harness::resources;
use streamlake::http::faults::FaultProxy;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::normalize;
use streamlake_core::routing::Routing;

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

async fn ours(clients: &Clients, routing: &Routing, records: &[(String, Vec<u8>)]) -> Result {
    let start = Instant::now();
    let mut requests = 0;
    for batch in records.chunks(BATCH) {
        let plan = plan_batch(
            batch.iter().map(|(seq, data)| InputRecord {
                sequence_number: seq,
                partition_key: "bench",
                data,
                arrival: Utc::now(),
            }),
            routing,
        );
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

/// The seed-000 consumer: one `UpdateItem` per record, one after the other.
async fn baseline(clients: &Clients, routing: &Routing, records: &[(String, Vec<u8>)]) -> Result {
    let start = Instant::now();
    let mut requests = 0;
    for (_, data) in records {
        let Ok(o) = normalize(data, Utc::now()) else {
            continue;
        };
        let Some(table) = routing.table_for(&o.datatype) else {
            continue;
        };
        clients
            .dynamodb
            .update_item()
            .table_name(table)
            .key("stationid", AttributeValue::S(o.stationid.to_string()))
            .key("date", AttributeValue::S(o.date.to_string()))
            .update_expression("SET StationName = :l, #d = :v")
            .expression_attribute_names("#d", o.datatype.as_ref())
            .expression_attribute_values(
                ":l",
                AttributeValue::S(o.station_name.unwrap_or_default().to_string()),
            )
            .expression_attribute_values(":v", AttributeValue::N(o.value.to_string()))
            .send()
            .await
            .expect("update");
        requests += 1;
    }
    Result {
        elapsed: start.elapsed(),
        requests,
    }
}

/// The best of three alternating runs of each writer, on fresh tables.
async fn measure(
    clients: &Clients,
    records: &[(String, Vec<u8>)],
    label: &str,
) -> (Result, Result) {
    let routing = |prefix: &str| {
        Routing::new([
            ("PRCP", format!("{prefix}Precipitation")),
            ("SNOW", format!("{prefix}Precipitation")),
            ("TMAX", format!("{prefix}Temperature")),
            ("TMIN", format!("{prefix}Temperature")),
        ])
    };
    let mut best_ours: Option<Result> = None;
    let mut best_baseline: Option<Result> = None;
    for run in 0..RUNS {
        let (o, b) = (
            routing(&format!("Ours{label}{run}")),
            routing(&format!("Seed{label}{run}")),
        );
        for table in o.tables().into_iter().chain(b.tables()) {
            resources::ensure_table(clients, table)
                .await
                .expect("a table");
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

#[tokio::main]
async fn main() {
    let logs = run_logs();
    let mut moto = Emulator::start(&default_state_dir(), &logs)
        .await
        .expect("moto");
    let dynalite = NodeServer::start(NodeServerKind::Dynalite, &default_state_dir(), &logs)
        .await
        .expect("dynalite");
    let records: Vec<(String, Vec<u8>)> = WeatherGenerator::new(GeneratorConfig::default())
        .take(RECORDS)
        .enumerate()
        .map(|(i, r)| {
            (
                format!("4959033827149025660855969253836157109592157598913658{i:04}"),
                r.data,
            )
        })
        .collect();
    let rows_per_batch: f64 = records
        .chunks(BATCH)
        .map(|b| {
            plan_batch(
                b.iter().map(|(seq, data)| InputRecord {
                    sequence_number: seq,
                    partition_key: "bench",
                    data,
                    arrival: Utc::now(),
                }),
                &Routing::default(),
            )
            .updates
            .len() as f64
        })
        .sum::<f64>()
        / (RECORDS / BATCH) as f64;

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

    println!(
        "consumer bench: {RECORDS} records in batches of {BATCH} ({rows_per_batch:.1} distinct rows per batch), \
         best of {RUNS}; streamlake = rows merged, conditional, {CONCURRENCY} in flight; \
         sequential = seed 000, one UpdateItem per record"
    );
    let batches = (RECORDS / BATCH) as f64;
    let rate = |r: &Result| RECORDS as f64 / r.elapsed.as_secs_f64();
    let mut summary = Vec::new();
    for (i, (name, _proxy, endpoint)) in servers.iter().enumerate() {
        let clients = Clients::connect(endpoint, true).await;
        let (o, b) = measure(&clients, &records, &i.to_string()).await;
        println!(
            "  {name:<17} streamlake {:>5.1} requests/batch {:>7.0} items/s | sequential {:>5.1} requests/batch {:>7.0} items/s",
            o.requests as f64 / batches,
            rate(&o),
            b.requests as f64 / batches,
            rate(&b),
        );
        summary.push(format!(
            "consumer vs sequential {}: {:.1}x items/s ({:.0} vs {:.0})",
            name.strip_prefix("dynalite ")
                .map_or_else(|| format!("on {name}"), str::to_owned),
            rate(&o) / rate(&b),
            rate(&o),
            rate(&b)
        ));
    }
    for line in summary {
        println!("{line}");
    }
    moto.stop().await;
}

fn run_logs() -> std::path::PathBuf {
    logs::create_run_dir(&default_state_dir()).expect("a log folder")
}
