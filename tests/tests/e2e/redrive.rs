//! Redrive round trip: records the transform failed land in the lake once after the fix
//! and a redrive, and a second redrive sends nothing.

use std::time::Duration;

use chrono::NaiveDate;
use producer::redrive::{self, RedriveConfig, Source};
use producer::{Entry, Producer, ProducerConfig};
use streamlake::faults::{Call, FaultPlan};
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::emulator::Emulator;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};

use crate::support::{assert_nothing_lost, run_logs};

const RECORDS: usize = 200;

fn config(endpoint: &str) -> StackConfig {
    let mut config = StackConfig::new(default_state_dir());
    config.endpoint = Some(endpoint.to_owned());
    config.buffer_interval = Duration::from_secs(1);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_of_a_broken_transform_land_once_after_the_fix_and_a_redrive() {
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig {
        seed: 31,
        start: NaiveDate::from_ymd_opt(2021, 10, 3).unwrap(),
        error_rate: 0.0,
    })
    .take(RECORDS)
    .map(Entry::from)
    .collect();

    // A transform that never answers: every record ends in processing-failed/.
    let mut broken = config(emulator.endpoint());
    broken.faults = FaultPlan::default().with(Call::LambdaTransform, 1.0);
    let stack = LocalStack::start(broken).await.unwrap();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    producer.send(entries.clone(), |_| {}).await.unwrap();
    stack
        .wait_settled(RECORDS as u64, Duration::from_secs(240))
        .await
        .unwrap();
    assert_eq!(stack.firehose_stats().failed, RECORDS as u64);
    stack.stop().await;

    // Fixed: the stack resumes at its checkpoints, and the failed records are redriven.
    let stack = LocalStack::start(config(emulator.endpoint()))
        .await
        .unwrap();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let mut redrive_config = RedriveConfig {
        bucket: stack.config().bucket.clone(),
        sources: vec![Source::ProcessingFailed, Source::DeadLetters],
        from: None,
        to: None,
        dry_run: true,
    };
    let s3 = &stack.clients().s3;
    let counted = redrive::redrive(s3, &producer, &redrive_config)
        .await
        .unwrap();
    assert_eq!(counted.sent, RECORDS as u64, "{counted:?}");
    assert_eq!(counted.marked, 0, "a dry run marks nothing");

    redrive_config.dry_run = false;
    let sent = redrive::redrive(s3, &producer, &redrive_config)
        .await
        .unwrap();
    assert_eq!(sent.sent, RECORDS as u64, "{sent:?}");
    assert_eq!(sent.marked, counted.objects.values().sum::<usize>());
    stack
        .wait_settled(RECORDS as u64, Duration::from_secs(240))
        .await
        .unwrap();
    let ledger = assert_nothing_lost(&stack, &entries).await;
    assert_eq!(ledger.delivered, RECORDS, "{ledger:?}");

    // Sent once: a second redrive finds nothing new.
    redrive_config.dry_run = true;
    let again = redrive::redrive(s3, &producer, &redrive_config)
        .await
        .unwrap();
    assert_eq!(again.sent, 0, "{again:?}");
    assert_eq!(again.already_redriven, sent.marked);
    stack.stop().await;
    emulator.stop().await;
}
