//! The transform's round trip through the Lambda Runtime API, against an echo function's.
//!
//! `cargo bench -p streamlake-e2e --bench transform_runtime` builds the transform
//! (release), starts it and `echo_lambda` (the generic typed path returning every record
//! unchanged) under the local Lambda host, and invokes each with the same Firehose event
//! (10,000 generated weather records: with their Kinesis metadata, 5.6 MB, near the 6 MB
//! limit, as a Kinesis source sends them; and without, 3 MB, as Direct PUT does): what Firehose waits for per invocation, the
//! Runtime API's HTTP, `lambda_runtime`'s decoding and encoding and the work included.
//! Prints the best of 30 invocations of each and the ratio, in the same run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use streamlake::emulated::lambda_host::{FunctionSpec, LambdaFunction};
use streamlake_core::dataset::DATASET_ENV;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};

const RECORDS: usize = 10_000;
const RUNS: usize = 30;

/// The event of a Kinesis source (records with their Kinesis metadata), or of Direct PUT.
fn event(kinesis_metadata: bool) -> Vec<u8> {
    let records: Vec<serde_json::Value> = WeatherGenerator::new(GeneratorConfig::default())
        .take(RECORDS)
        .enumerate()
        .map(|(i, r)| {
            let seq = format!("4959033827149025660855969253836157109592157598913658{i:04}");
            let mut record = serde_json::json!({
                "recordId": format!("{seq}000000000000000000000"),
                "approximateArrivalTimestamp": 1_633_046_400_000_i64 + i as i64,
                "data": STANDARD.encode(&r.data),
            });
            if kinesis_metadata {
                record["kinesisRecordMetadata"] = serde_json::json!({
                    "shardId": "shardId-000000000000",
                    "partitionKey": r.partition_key,
                    "approximateArrivalTimestamp": 1_633_046_400_000_i64 + i as i64,
                    "sequenceNumber": seq,
                    "subsequenceNumber": 0
                });
            }
            record
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

/// The release transform binary, built now with the cargo that runs the bench.
fn transform_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "transform_lambda"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build of transform_lambda failed");
    let echo = PathBuf::from(env!("CARGO_BIN_EXE_echo_lambda"));
    echo.with_file_name("transform_lambda")
}

async fn start(
    name: &str,
    binary: PathBuf,
    env: Vec<(String, String)>,
    dir: &std::path::Path,
) -> LambdaFunction {
    LambdaFunction::start(FunctionSpec {
        name: name.into(),
        binary,
        env,
        timeout: Duration::from_secs(60),
        memory_mb: 512,
        log_path: dir.join(format!("{name}.log")),
        region: "us-east-1".into(),
        faults: None,
    })
    .await
    .unwrap()
}

/// Best of [`RUNS`] invocations (after two to warm up).
async fn best(function: &LambdaFunction, payload: &bytes::Bytes) -> Duration {
    for _ in 0..2 {
        function.invoke(payload.clone()).await.unwrap();
    }
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        let response = function.invoke(payload.clone()).await.unwrap();
        best = best.min(start.elapsed());
        assert!(response.len() > payload.len() / 2);
    }
    best
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!(
        "streamlake-transform-runtime-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dataset = dir.join("dataset.toml");
    std::fs::write(
        &dataset,
        streamlake_core::dataset::Dataset::weather().text(),
    )
    .unwrap();
    let transform = start(
        "transform",
        transform_binary(),
        vec![(DATASET_ENV.into(), dataset.display().to_string())],
        &dir,
    )
    .await;
    let echo = start(
        "echo",
        env!("CARGO_BIN_EXE_echo_lambda").into(),
        vec![],
        &dir,
    )
    .await;
    for (source, metadata) in [("Kinesis source", true), ("Direct PUT", false)] {
        let payload = bytes::Bytes::from(event(metadata));
        let mb = payload.len() as f64 / 1e6;
        let (ours, baseline) = (
            best(&transform, &payload).await,
            best(&echo, &payload).await,
        );
        println!(
            "summary: {source} event {mb:.2} MB, {RECORDS} records, best of {RUNS} invocations through the Runtime API"
        );
        for (name, t) in [
            ("transform (weather dataset)", ours),
            ("echo (typed, no work)", baseline),
        ] {
            println!(
                "summary:   {name:<28} {:>7.2} ms  {:>6.1} MB/s",
                t.as_secs_f64() * 1e3,
                mb / t.as_secs_f64()
            );
        }
        println!(
            "summary:   the transform takes {:.2}x the echo function's time",
            ours.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    transform.stop().await;
    echo.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
