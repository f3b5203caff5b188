//! Transform throughput on a Firehose event at the 6 MB invocation limit.
//!
//! `cargo bench -p transform_lambda` measures, on the same event in the same run:
//! - `streamlake`: what a Lambda invocation of this crate costs after the bytes arrive:
//!   decode the event JSON (as `lambda_runtime` does), transform every record against
//!   the weather dataset file, encode the response JSON;
//! - `aws_lambda_events_echo` (baseline): the generic typed path with no work at all:
//!   decode into `KinesisFirehoseEvent`, copy every record into a
//!   `KinesisFirehoseResponse` unchanged, encode it.
//!
//! - `wide_40_columns`: a 40-column dataset (every type, nested paths, optional fields
//!   null or missing), its generated records in an event of the same size.
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
use streamlake_core::dataset::generate::DatasetGenerator;
use streamlake_core::generate::{GeneratedRecord, GeneratorConfig, WeatherGenerator};
use transform_lambda::transform_json;

/// The dataset, read once as the Lambda's cold start reads it.
static WEATHER: LazyLock<Dataset> = LazyLock::new(Dataset::weather);

/// Records in the event: about 5.8 MB with the Kinesis record metadata.
const RECORDS: usize = 10_000;

/// Records of the 40-column event: about the same 5.6 MB.
const WIDE_RECORDS: usize = 4_100;

/// A dataset of 40 columns: the seven types in turn, every fifth one nested, the even
/// ones required, an RFC 3339 event time.
static WIDE: LazyLock<Dataset> = LazyLock::new(|| {
    let types = [
        "string",
        "long",
        "double",
        "boolean",
        "timestamp",
        "date",
        "json",
    ];
    let mut text = String::from(
        "name = \"wide\"\n[event_time]\nfield = \"at\"\n\n[[fields]]\nname = \"at\"\ntype = \"timestamp\"\n",
    );
    for i in 1..40 {
        let from = if i % 5 == 0 {
            format!("group.f{i}")
        } else {
            format!("f{i}")
        };
        text.push_str(&format!(
            "\n[[fields]]\nname = \"c{i}\"\nfrom = \"{from}\"\ntype = \"{}\"\nrequired = {}\n",
            types[i % types.len()],
            i % 2 == 0
        ));
    }
    Dataset::from_toml(&text, "wide.toml").expect("a valid dataset")
});

fn weather_event() -> Vec<u8> {
    event(WeatherGenerator::new(GeneratorConfig::default()).take(RECORDS))
}

fn wide_event() -> Vec<u8> {
    event(DatasetGenerator::new(&WIDE, GeneratorConfig::default()).take(WIDE_RECORDS))
}

fn event(generated: impl Iterator<Item = GeneratedRecord>) -> Vec<u8> {
    let records: Vec<serde_json::Value> = generated
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
    with_dataset(body, &WEATHER)
}

/// [`streamlake`] over the 40-column dataset.
fn wide(body: &[u8]) -> Vec<u8> {
    with_dataset(body, &WIDE)
}

fn with_dataset(body: &[u8], dataset: &Dataset) -> Vec<u8> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let event: Box<RawValue> = serde_path_to_error::deserialize(de).unwrap();
    let (response, stats) = transform_json(event.get(), dataset).unwrap();
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
    let body = weather_event();
    let wide_body = wide_event();
    eprintln!("event: {} records, {} bytes", RECORDS, body.len());
    let mut group = c.benchmark_group("firehose_6mb_event");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(30);
    group.bench_function("streamlake", |b| b.iter(|| streamlake(&body)));
    group.bench_function("aws_lambda_events_echo", |b| {
        b.iter(|| aws_lambda_events_echo(&body))
    });
    group.throughput(Throughput::Bytes(wide_body.len() as u64));
    group.bench_function("wide_40_columns", |b| b.iter(|| wide(&wide_body)));
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
    let body = weather_event();
    let wide_body = wide_event();
    let mb = body.len() as f64 / 1e6;
    let ours = best_of(60, || streamlake(&body));
    let echo = best_of(60, || aws_lambda_events_echo(&body));
    println!(
        "summary: event {:.2} MB, {RECORDS} records, best of 60 runs",
        mb
    );
    for (name, t) in [("streamlake", ours), ("aws_lambda_events_echo", echo)] {
        println!(
            "summary: {name:<24} {:>7.2} ms  {:>7.1} MB/s",
            t.as_secs_f64() * 1e3,
            mb / t.as_secs_f64()
        );
    }
    println!(
        "summary: streamlake is {:.2}x the throughput of the typed echo",
        echo.as_secs_f64() / ours.as_secs_f64()
    );
    let wide_time = best_of(60, || wide(&wide_body));
    let wide_mb = wide_body.len() as f64 / 1e6;
    println!(
        "summary: wide_40_columns          {:>7.2} ms  {:>7.1} MB/s  {:>9.0} records/s ({WIDE_RECORDS} records, {wide_mb:.2} MB)",
        wide_time.as_secs_f64() * 1e3,
        wide_mb / wide_time.as_secs_f64(),
        WIDE_RECORDS as f64 / wide_time.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var_os("TRANSFORM_PROFILE").is_some() {
        // For `perf record`: nothing but the handler's own work, many times.
        let body = String::from_utf8(weather_event()).unwrap();
        for _ in 0..200 {
            black_box(transform_json(&body, &WEATHER).unwrap());
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
