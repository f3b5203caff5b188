//! Transform throughput on a Firehose event at the 6 MB invocation limit.
//!
//! `cargo bench -p transform_lambda` measures, on the same event in the same run:
//! - `streamlake`: what a Lambda invocation of this crate costs after the bytes arrive:
//!   decode the event JSON (as `lambda_runtime` does), transform every record against
//!   the weather dataset file, encode the response JSON;
//! - `compiled_in` (baseline): the same with the weather schema compiled in
//!   (`streamlake_core::observation`), the path the dataset file replaces;
//! - `aws_lambda_events_echo` (baseline): the generic typed path with no work at all:
//!   decode into `KinesisFirehoseEvent`, copy every record into a
//!   `KinesisFirehoseResponse` unchanged, encode it.
//!
//! Throughput is in bytes of the input event. After criterion's report, a summary prints
//! the best of 60 runs of each path and their ratio: on a shared, noisy machine those
//! are the repeatable figures. `TRANSFORM_PROFILE=1` runs only the handler's work, for
//! `perf record`.

use aws_lambda_events::event::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseResponse, KinesisFirehoseResponseRecord,
    KinesisFirehoseResponseRecordMetadata,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use serde_json::value::RawValue;
use std::sync::LazyLock;
use streamlake_core::dataset::Dataset;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::normalize;
use transform_lambda::{FirehoseEvent, transform_json, transform_with};

/// The dataset, read once as the Lambda's cold start reads it.
static WEATHER: LazyLock<Dataset> = LazyLock::new(Dataset::weather);

/// Records in the event: about 5.8 MB with the Kinesis record metadata.
const RECORDS: usize = 10_000;

fn event() -> Vec<u8> {
    let records: Vec<serde_json::Value> = WeatherGenerator::new(GeneratorConfig::default())
        .take(RECORDS)
        .enumerate()
        .map(|(i, r)| {
            let seq = format!("4959033827149025660855969253836157109592157598913658{i:04}");
            serde_json::json!({
                "recordId": format!("{seq}000000000000000000000"),
                "approximateArrivalTimestamp": 1_633_046_400_000_i64 + i as i64,
                "data": STANDARD.encode(&r.data),
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": r.partition_key,
                    "approximateArrivalTimestamp": 1_633_046_400_000_i64 + i as i64,
                    "sequenceNumber": seq,
                    "subsequenceNumber": 0
                }
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "invocationId": "bench",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/streamlake-delivery",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/streamlake-records",
        "region": "us-east-1",
        "records": records,
    }))
    .unwrap()
}

/// What `lambda_runtime` does with the body, then what the handler does.
fn streamlake(body: &[u8]) -> Vec<u8> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let event: Box<RawValue> = serde_path_to_error::deserialize(de).unwrap();
    let (response, stats) = transform_json(event.get(), &WEATHER).unwrap();
    assert_eq!(stats.failed, 0);
    serde_json::to_vec(&response).unwrap()
}

/// [`streamlake`] with the compiled-in weather schema instead of the dataset file.
fn compiled_in(body: &[u8]) -> Vec<u8> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let event: Box<RawValue> = serde_path_to_error::deserialize(de).unwrap();
    let event: FirehoseEvent<'_> = serde_json::from_str(event.get()).unwrap();
    let (response, stats) = transform_with(
        &event,
        |data, arrival, line| {
            let o = normalize(data, arrival).map_err(|e| e.to_string())?;
            o.write_ndjson(line);
            Ok(o.partition())
        },
        |f| f.log(),
    );
    assert_eq!(stats.failed, 0);
    serde_json::to_vec(&response).unwrap()
}

fn aws_lambda_events_echo(body: &[u8]) -> Vec<u8> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let event: KinesisFirehoseEvent = serde_path_to_error::deserialize(de).unwrap();
    let mut response = KinesisFirehoseResponse::default();
    response.records = event
        .records
        .into_iter()
        .map(|r| {
            let mut out = KinesisFirehoseResponseRecord::default();
            out.record_id = r.record_id;
            out.result = Some("Ok".into());
            out.data = r.data;
            out.metadata = KinesisFirehoseResponseRecordMetadata::default();
            out
        })
        .collect();
    serde_json::to_vec(&response).unwrap()
}

fn bench(c: &mut Criterion) {
    let body = event();
    eprintln!("event: {} records, {} bytes", RECORDS, body.len());
    let mut group = c.benchmark_group("firehose_6mb_event");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(30);
    group.bench_function("streamlake", |b| b.iter(|| streamlake(&body)));
    group.bench_function("compiled_in", |b| b.iter(|| compiled_in(&body)));
    group.bench_function("aws_lambda_events_echo", |b| {
        b.iter(|| aws_lambda_events_echo(&body))
    });
    group.finish();
}

/// Best of `runs` timings: on a shared, noisy machine the minimum is the most
/// repeatable figure of what the code costs.
fn best_of(runs: usize, f: impl Fn() -> Vec<u8>) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .min()
        .expect("at least one run")
}

/// Prints best-of-N throughput of both paths and their ratio (same run, same event).
fn summary() {
    let body = event();
    let mb = body.len() as f64 / 1e6;
    assert_eq!(streamlake(&body), compiled_in(&body), "the same response");
    let ours = best_of(60, || streamlake(&body));
    let compiled = best_of(60, || compiled_in(&body));
    let echo = best_of(60, || aws_lambda_events_echo(&body));
    println!(
        "summary: event {:.2} MB, {RECORDS} records, best of 60 runs",
        mb
    );
    for (name, t) in [
        ("streamlake", ours),
        ("compiled_in", compiled),
        ("aws_lambda_events_echo", echo),
    ] {
        println!(
            "summary: {name:<24} {:>7.2} ms  {:>7.1} MB/s",
            t.as_secs_f64() * 1e3,
            mb / t.as_secs_f64()
        );
    }
    println!(
        "summary: the dataset file takes {:.3}x the time of the compiled-in schema",
        ours.as_secs_f64() / compiled.as_secs_f64()
    );
    println!(
        "summary: streamlake is {:.2}x the throughput of the typed echo",
        echo.as_secs_f64() / ours.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var_os("TRANSFORM_PROFILE").is_some() {
        // For `perf record`: nothing but the handler's own work, many times.
        let body = String::from_utf8(event()).unwrap();
        for _ in 0..200 {
            black_box(transform_json(&body, &WEATHER).unwrap());
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
