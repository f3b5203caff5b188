//! The consumer's DynamoDB writes against the emulator: this consumer (rows merged per
//! batch, conditional `UpdateItem`s issued concurrently) vs the seed-000 way (one
//! unconditional `UpdateItem` per record, sequentially), on the same records, the same
//! emulator, in the same run.
//!
//! `cargo bench -p streamlake-e2e --bench consumer` prints requests per batch and items/s
//! of both, and their ratio. Each side runs three times, alternating; the best run counts.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use consumer_lambda::{InputRecord, WriteOptions, apply, plan_batch};
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::clients::Clients;
use streamlake::harness::emulator::Emulator;
use streamlake::harness::logs;
use streamlake::harness::resources::{self, Resources};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::normalize;
use streamlake_core::routing::Routing;

const RECORDS: usize = 2000;
const BATCH: usize = 100;
const CONCURRENCY: usize = 16;

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

#[tokio::main]
async fn main() {
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .expect("emulator");
    let clients = Clients::connect(emulator.endpoint(), true).await;
    let routing = |prefix: &str| {
        Routing::new([
            ("PRCP", format!("{prefix}Precipitation")),
            ("SNOW", format!("{prefix}Precipitation")),
            ("TMAX", format!("{prefix}Temperature")),
            ("TMIN", format!("{prefix}Temperature")),
        ])
    };
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
    let keys_per_batch: f64 = records
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

    let mut best_ours: Option<Result> = None;
    let mut best_baseline: Option<Result> = None;
    for run in 0..3 {
        let (o, b) = (
            routing(&format!("Ours{run}")),
            routing(&format!("Seed{run}")),
        );
        let mut tables: Vec<String> = o
            .tables()
            .into_iter()
            .chain(b.tables())
            .map(str::to_owned)
            .collect();
        tables.dedup();
        resources::ensure(
            &clients,
            &Resources {
                stream: "bench".into(),
                shards: 1,
                bucket: "bench".into(),
                tables,
                failure_queue: "bench".into(),
            },
        )
        .await
        .expect("tables");
        let b_result = baseline(&clients, &b, &records).await;
        let o_result = ours(&clients, &o, &records).await;
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
    let (o, b) = (best_ours.unwrap(), best_baseline.unwrap());
    let batches = (RECORDS / BATCH) as f64;
    let rate = |r: &Result| RECORDS as f64 / r.elapsed.as_secs_f64();
    println!(
        "consumer bench: {RECORDS} records in batches of {BATCH}, moto at {}, best of 3",
        emulator.endpoint()
    );
    println!("  distinct rows per batch:            {keys_per_batch:.1}");
    println!(
        "  streamlake (merged, {CONCURRENCY} concurrent): {:>6.1} requests/batch  {:>8.0} items/s  ({:.2} s)",
        o.requests as f64 / batches,
        rate(&o),
        o.elapsed.as_secs_f64()
    );
    println!(
        "  seed 000 (one per record, serial):  {:>6.1} requests/batch  {:>8.0} items/s  ({:.2} s)",
        b.requests as f64 / batches,
        rate(&b),
        b.elapsed.as_secs_f64()
    );
    println!("  items/s ratio: {:.1}x", rate(&o) / rate(&b));
    emulator.stop().await;
}

/// A log folder for an emulator started here.
fn run_logs() -> std::path::PathBuf {
    logs::create_run_dir(&default_state_dir()).expect("a log folder")
}
