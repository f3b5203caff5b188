//! The pipeline under the faults AWS produces (`--inject`): every call of the pipeline
//! failing on its own, and all at once, loses nothing and duplicates nothing.

use std::time::Duration;

use chrono::NaiveDate;
use producer::{Entry, Producer, ProducerConfig};
use streamlake::faults::{Call, FaultPlan};
use streamlake::harness::binaries::default_state_dir;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_e2e::drain_queue;

use crate::support::assert_nothing_lost;

const RECORDS: usize = 300;

fn weather(seed: u64) -> Vec<Entry> {
    WeatherGenerator::new(GeneratorConfig {
        seed,
        start: NaiveDate::from_ymd_opt(2021, 10, 30).unwrap(),
        error_rate: 0.03,
    })
    .take(RECORDS)
    .map(Entry::from)
    .collect()
}

/// A stack with `faults`, whose consumer mapping retries until it succeeds (so the
/// tables can be checked exactly).
async fn stack_with(faults: FaultPlan) -> LocalStack {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = StackConfig::new(default_state_dir());
    config.buffer_interval = Duration::from_secs(1);
    config.function_timeout = Duration::from_secs(10);
    // Many small invocations and requests, so that every faulted call is made often.
    config.processor_buffer_bytes = 2048;
    config.mapping.batch_size = 25;
    config.mapping.max_retries = None;
    config.mapping.max_record_age = None;
    config.faults = faults;
    LocalStack::start(config)
        .await
        .expect("the local stack starts")
}

/// Sends the entries through the stack's endpoint (the fault proxy's), as a user's
/// producer would, 20 per request.
async fn produce(stack: &LocalStack, entries: &[Entry]) {
    let mut config = ProducerConfig::new(&stack.config().stream);
    config.limits.max_records = 20;
    let producer = Producer::new(stack.clients().kinesis.clone(), config);
    let summary = producer.send(entries.to_vec(), |_| {}).await.unwrap();
    assert_eq!(summary.sent as usize, entries.len(), "{:?}", summary.failed);
    assert!(summary.failed.is_empty());
}

/// Runs `RECORDS` records through a stack that fails `calls` at `rate`, and checks that
/// every record is where it belongs, exactly once.
async fn survives(calls: &[Call], rate: f64, seed: u64) {
    let plan = calls.iter().fold(FaultPlan::new([], seed), |plan, call| {
        plan.with(*call, rate)
    });
    let stack = stack_with(plan).await;
    let entries = weather(seed);
    produce(&stack, &entries).await;
    stack
        .wait_settled(RECORDS as u64, Duration::from_secs(300))
        .await
        .unwrap();
    let ledger = assert_nothing_lost(&stack, &entries).await;
    let injected = stack.injected_by_call();
    // The on-failure queue is only called when a batch is given up on, which a mapping that
    // retries until it succeeds never does (`send_message_faults_never_lose_a_skipped_batch`).
    for call in calls.iter().filter(|c| **c != Call::SqsSendMessage) {
        assert!(
            injected.get(call).copied().unwrap_or(0) > 0,
            "{call} was failed: {injected:?}"
        );
    }
    eprintln!("{calls:?} at {rate}: {ledger:?}, injected {injected:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_records_faults_resend_only_the_failed_entries() {
    survives(&[Call::KinesisPutRecords], 0.4, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_records_faults_are_retried_by_both_readers() {
    survives(&[Call::KinesisGetRecords], 0.3, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_object_faults_never_drop_a_buffer_or_a_dead_letter() {
    survives(&[Call::S3PutObject], 0.4, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn update_item_faults_are_retried_by_the_consumer() {
    survives(&[Call::DynamoDbUpdateItem], 0.3, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transform_crashes_and_timeouts_are_retried_by_firehose() {
    survives(&[Call::LambdaTransform], 0.3, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_crashes_and_timeouts_are_retried_by_the_mapping() {
    survives(&[Call::LambdaConsumer], 0.3, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_at_once_loses_nothing() {
    // Every call of the Kinesis path (Direct PUT faults: `direct_put::*`).
    let calls: Vec<Call> = Call::ALL
        .into_iter()
        .filter(|c| *c != Call::FirehosePutRecordBatch)
        .collect();
    survives(&calls, 0.15, 7).await;
}

/// The on-failure destination is only used when a batch is given up on: a consumer that
/// fails half its invocations, with no retries, gives up on batches, and their
/// descriptions reach the queue although half the `SendMessage` calls fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_message_faults_never_lose_a_skipped_batch() {
    let plan = FaultPlan::new([], 8)
        .with(Call::LambdaConsumer, 0.5)
        .with(Call::SqsSendMessage, 0.5);
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut config = StackConfig::new(default_state_dir());
    config.buffer_interval = Duration::from_secs(1);
    config.mapping.max_retries = Some(0);
    config.mapping.bisect_on_error = false;
    config.mapping.batch_size = 20;
    config.faults = plan;
    let stack = LocalStack::start(config).await.unwrap();
    let entries = weather(8);
    produce(&stack, &entries).await;
    stack
        .wait_settled(RECORDS as u64, Duration::from_secs(300))
        .await
        .unwrap();
    let mapping = stack.mapping_stats();
    assert!(mapping.discarded > 0, "{mapping:?}");
    let described: u64 = drain_queue(&stack.clients().sqs, stack.failure_queue_url())
        .await
        .iter()
        .map(|body| {
            let message: serde_json::Value = serde_json::from_str(body).unwrap();
            message["KinesisBatchInfo"]["batchSize"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(
        described, mapping.discarded,
        "every skipped record is described once"
    );
    assert_eq!(mapping.succeeded + mapping.discarded, RECORDS as u64);
    assert!(stack.injected_by_call()[&Call::SqsSendMessage] > 0);
    stack.stop().await;
}
