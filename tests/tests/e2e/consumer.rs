//! The consumer branch over the local stack: nothing lost, no shard stuck, tables exact.

use std::time::Duration;

use crate::support::run_logs;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDate;
use producer::{Entry, Producer, ProducerConfig};
use streamlake::clients::Clients;
use streamlake::emulated::lambda_host::{FunctionSpec, LambdaFunction};
use streamlake::faults::{Call, FaultPlan};
use streamlake::harness::binaries::{Binaries, default_state_dir};
use streamlake::harness::demo::read_prefix;
use streamlake::harness::emulator::Emulator;
use streamlake::harness::resources::{self, Resources, TableSpec};
use streamlake::{LocalStack, StackConfig};
use streamlake_core::dataset::Dataset;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::layout::{CONSUMER_DEAD_LETTER_PREFIX, DATA_ROOT};
use streamlake_e2e::{
    WEATHER_TABLES as TABLES, drain_queue, expected_rows, table_rows, weather_dataset_env,
};

fn weather(seed: u64, count: usize, error_rate: f64) -> Vec<Entry> {
    WeatherGenerator::new(GeneratorConfig {
        seed,
        start: NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
        error_rate,
    })
    .take(count)
    .map(Entry::from)
    .collect()
}

async fn produce(stack: &LocalStack, entries: &[Entry]) {
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let summary = producer.send(entries.to_vec(), |_| {}).await.unwrap();
    assert_eq!(summary.sent as usize, entries.len());
}

/// Logs of the stack, shown with `RUST_LOG=...` and `--nocapture`.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config(endpoint: Option<&str>) -> StackConfig {
    logs();
    let mut config = StackConfig::new(default_state_dir());
    config.endpoint = endpoint.map(str::to_owned);
    config.buffer_interval = Duration::from_secs(1);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_writes_and_invalid_records_lose_nothing() {
    let mut config = config(None);
    config.faults = FaultPlan::default().with(Call::DynamoDbUpdateItem, 0.3);
    let stack = LocalStack::start(config).await.unwrap();
    let entries = weather(11, 400, 0.05);
    produce(&stack, &entries).await;
    stack
        .wait_settled(400, Duration::from_secs(240))
        .await
        .unwrap();

    let expected = expected_rows(entries.iter().map(|e| e.data.as_slice()));
    assert_eq!(
        table_rows(&stack.clients().dynamodb, &TABLES, false).await,
        expected
    );
    assert!(
        stack.injected_faults() > 10,
        "throttling was injected: {}",
        stack.injected_faults()
    );
    let mapping = stack.mapping_stats();
    assert_eq!(mapping.discarded, 0, "{mapping:?}");

    // Invalid records were not retried: each is in the dead-letter prefix once.
    let malformed = entries
        .iter()
        .filter(|e| streamlake_e2e::weather(&e.data, chrono::Utc::now()).is_err())
        .count();
    assert!(malformed > 5);
    let dead = read_prefix(
        stack.clients(),
        &stack.config().bucket,
        CONSUMER_DEAD_LETTER_PREFIX,
    )
    .await
    .unwrap();
    assert_eq!(dead.len(), malformed);
    assert!(
        drain_queue(&stack.clients().sqs, stack.failure_queue_url())
            .await
            .is_empty()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_the_whole_stream_leaves_the_tables_identical() {
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let stack = LocalStack::start(config(Some(emulator.endpoint())))
        .await
        .unwrap();
    // Records of the same row spread over batches, and a station reported twice.
    let mut entries = weather(5, 300, 0.02);
    entries.extend(weather(5, 60, 0.0).into_iter().map(|mut e| {
        e.data = String::from_utf8(e.data)
            .unwrap()
            .replace("\"value\":", "\"value\":1")
            .into_bytes();
        e
    }));
    produce(&stack, &entries).await;
    stack
        .wait_settled(entries.len() as u64, Duration::from_secs(240))
        .await
        .unwrap();
    let before = table_rows(&stack.clients().dynamodb, &TABLES, true).await;
    assert_eq!(
        table_rows(&stack.clients().dynamodb, &TABLES, false).await,
        expected_rows(entries.iter().map(|e| e.data.as_slice()))
    );
    stack.stop().await;

    // A second stack without checkpoints reads the whole stream again.
    let mut again = config(Some(emulator.endpoint()));
    again.checkpoints = false;
    let stack = LocalStack::start(again).await.unwrap();
    stack
        .wait_settled(entries.len() as u64, Duration::from_secs(240))
        .await
        .unwrap();
    let after = table_rows(&stack.clients().dynamodb, &TABLES, true).await;
    assert_eq!(after, before);
    stack.stop().await;
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_newest_value_wins_whatever_the_order() {
    let state_dir = default_state_dir();
    let binaries = Binaries::locate().await.unwrap();
    let mut emulator = Emulator::start(&state_dir, &run_logs()).await.unwrap();
    let clients = Clients::connect(emulator.endpoint(), true).await;
    resources::ensure(
        &clients,
        &Resources {
            stream: "ordering".into(),
            shards: 1,
            bucket: "ordering".into(),
            tables: TableSpec::of(Dataset::weather().dynamodb().unwrap()),
            failure_queue: "ordering".into(),
        },
    )
    .await
    .unwrap();
    let consumer = LambdaFunction::start(FunctionSpec {
        name: "streamlake-consumer".into(),
        binary: binaries.path("consumer_lambda"),
        env: clients
            .child_env
            .iter()
            .cloned()
            .chain([weather_dataset_env()])
            .collect(),
        timeout: Duration::from_secs(30),
        memory_mb: 256,
        log_path: std::env::temp_dir()
            .join(format!("ordering-consumer-{}.log", std::process::id())),
        region: clients.region(),
        faults: None,
    })
    .await
    .unwrap();

    let record = |seq: &str, datatype: &str, value: f64, location: &str| {
        let data = format!(
            r#"{{"date":"2021-10-01T00:00:00","stationid":"S1","location":"{location}","datatype":"{datatype}","value":{value}}}"#
        );
        serde_json::json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0", "partitionKey": "S1", "sequenceNumber": seq,
                "data": STANDARD.encode(data), "approximateArrivalTimestamp": 1_633_046_400.5
            },
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": format!("shardId-000000000000:{seq}"), "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/c", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/ordering"
        })
    };
    let invoke = |records: Vec<serde_json::Value>| {
        let body = serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap();
        let consumer = &consumer;
        async move {
            let response = consumer.invoke(body).await.unwrap();
            let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
            assert_eq!(response["batchItemFailures"], serde_json::json!([]));
        }
    };
    // The newer record (sequence 100, longer than 99 but smaller as text) arrives first.
    invoke(vec![record("100", "PRCP", 9.0, "NEW NAME")]).await;
    invoke(vec![
        record("99", "PRCP", 1.0, "OLD NAME"),
        record("98", "SNOW", 2.0, "OLD NAME"),
    ])
    .await;
    // In one batch, out of order.
    invoke(vec![
        record("120", "TMAX", 20.0, "NEW NAME"),
        record("110", "TMAX", 10.0, "OLD NAME"),
    ])
    .await;
    // A replay of everything changes nothing.
    invoke(vec![
        record("100", "PRCP", 9.0, "NEW NAME"),
        record("99", "PRCP", 1.0, "OLD NAME"),
    ])
    .await;

    let get = |table: &'static str| {
        let dynamodb = clients.dynamodb.clone();
        async move {
            dynamodb
                .get_item()
                .table_name(table)
                .key("stationid", AttributeValue::S("S1".into()))
                .key("date", AttributeValue::S("2021-10-01".into()))
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        }
    };
    let precipitation = get("Precipitation").await;
    assert_eq!(precipitation["PRCP"].as_n().unwrap(), "9");
    assert_eq!(precipitation["PRCP_seq"].as_s().unwrap(), "003:100");
    assert_eq!(precipitation["SNOW"].as_n().unwrap(), "2");
    assert_eq!(precipitation["StationName"].as_s().unwrap(), "NEW NAME");
    let temperature = get("Temperature").await;
    assert_eq!(temperature["TMAX"].as_n().unwrap(), "20");

    consumer.stop().await;
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_stack_resumes_without_loss_or_duplicates() {
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let first = weather(21, 300, 0.02);
    let second = weather(22, 300, 0.02);
    let all: Vec<Entry> = first.iter().chain(&second).cloned().collect();

    let stack = LocalStack::start(config(Some(emulator.endpoint())))
        .await
        .unwrap();
    produce(&stack, &first).await;
    // Stop mid-stream: once the consumer has done some of the work.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while stack.mapping_stats().succeeded < 50 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = stack.stop().await;
    assert!(
        stopped.mapping.succeeded < 300,
        "stopped mid-stream: {:?}",
        stopped.mapping
    );

    // While it is down, more records arrive; then it starts again.
    let stack = LocalStack::start(config(Some(emulator.endpoint())))
        .await
        .unwrap();
    produce(&stack, &second).await;
    // Each branch resumes at its checkpoint: it reads exactly what the first run did not
    // settle.
    let total = all.len() as u64;
    let f = &stopped.firehose;
    let firehose_left = total - (f.delivered + f.failed + f.dropped);
    let mapping_left = total - (stopped.mapping.succeeded + stopped.mapping.discarded);
    stack
        .wait_settled_counts(firehose_left, mapping_left, Duration::from_secs(240))
        .await
        .unwrap();

    let bucket = stack.config().bucket.clone();
    let lines = |objects: &[(String, Vec<u8>)]| -> usize {
        objects
            .iter()
            .map(|(_, b)| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count())
            .sum()
    };
    let data = read_prefix(stack.clients(), &bucket, DATA_ROOT)
        .await
        .unwrap();
    let errors = read_prefix(stack.clients(), &bucket, "errors/processing-failed/")
        .await
        .unwrap();
    assert_eq!(
        lines(&data) + lines(&errors),
        all.len(),
        "every record delivered once"
    );
    assert_eq!(
        table_rows(&stack.clients().dynamodb, &TABLES, false).await,
        expected_rows(all.iter().map(|e| e.data.as_slice()))
    );
    let resumed = stack.stop().await;
    // Both branches resumed at their checkpoints: what the first run settled is not read again.
    let settled_before = stopped.mapping.succeeded + stopped.mapping.discarded;
    assert_eq!(
        resumed.mapping.records_read,
        all.len() as u64 - settled_before
    );
    // Firehose's checkpoint moves once a whole buffer is written: a buffer the stop's
    // grace cut short is read again (its objects are written again under the same keys, so
    // the lake above still holds every record once).
    let f = &stopped.firehose;
    assert!(
        resumed.firehose.records_read >= all.len() as u64 - (f.delivered + f.failed + f.dropped)
    );
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tumbling_windows_add_up_to_the_daily_summary() {
    let mut config = config(None);
    config.mapping.tumbling_window = Some(Duration::from_secs(2));
    config.mapping.batch_size = 50;
    let stack = LocalStack::start(config).await.unwrap();
    let entries = weather(31, 300, 0.03);
    // Two bursts, so that the records fall into more than one window.
    produce(&stack, &entries[..150]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    produce(&stack, &entries[150..]).await;
    stack
        .wait_settled(300, Duration::from_secs(240))
        .await
        .unwrap();

    // What the windows should add up to, per station and day.
    let mut expected: std::collections::BTreeMap<(String, String), (u64, f64)> = Default::default();
    for e in &entries {
        if let Ok(o) = streamlake_e2e::weather(&e.data, chrono::Utc::now())
            && o.datatype == "PRCP"
        {
            let row = expected
                .entry((o.stationid.to_string(), o.date.to_string()))
                .or_default();
            row.0 += 1;
            row.1 += o.value;
        }
    }
    // The last window closes once its end has passed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = table_rows(&stack.clients().dynamodb, &["DailySummary"], false).await;
        let actual: std::collections::BTreeMap<(String, String), (u64, f64)> = rows
            .iter()
            .filter_map(|((_, station, date), a)| {
                let count = a.get("PRCP_count")?.parse().ok()?;
                let sum: f64 = a.get("PRCP_sum")?.parse().ok()?;
                Some((
                    (station.clone(), date.clone()),
                    (count, (sum * 10.0).round() / 10.0),
                ))
            })
            .collect();
        let rounded: std::collections::BTreeMap<_, _> = expected
            .iter()
            .map(|(k, (n, s))| (k.clone(), (*n, (s * 10.0).round() / 10.0)))
            .collect();
        if actual == rounded {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "summary {actual:?}\nexpected {rounded:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.stop().await;
}
