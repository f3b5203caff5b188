//! Stopping the stack when the emulator is gone (as after Ctrl-C, which reaches the
//! emulator too): the stack gives up on what it cannot deliver after its grace period,
//! and counts it, per source, instead of retrying forever.

use std::time::Duration;

use producer::{Entry, Producer, ProducerConfig};
use streamlake::emulated::kinesis_source::StartingPosition;
use streamlake::emulated::shard_poller;
use streamlake::emulated::shutdown::STOP_GRACE;
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::emulator::Emulator;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};

use crate::support::run_logs;

/// The Kinesis records in the stack's stream (an aggregate counts once, as the mapping
/// counts it).
async fn kinesis_records(stack: &LocalStack) -> u64 {
    let readers = shard_poller::readers(
        stack.clients(),
        &stack.config().stream,
        "count",
        None,
        &StartingPosition::TrimHorizon,
    )
    .await
    .unwrap();
    let mut count = 0;
    for mut reader in readers {
        loop {
            let records = reader.read(10_000).await.unwrap();
            if records.is_empty() {
                break;
            }
            count += records.len() as u64;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stack_stops_within_its_grace_when_the_emulator_is_gone() {
    let state_dir = default_state_dir();
    let mut emulator = Emulator::start(&state_dir, &run_logs()).await.unwrap();
    let mut config = StackConfig::new(state_dir);
    config.endpoint = Some(emulator.endpoint().to_owned());
    // Firehose keeps the records in its buffer until the stack stops.
    config.buffer_interval = Duration::from_secs(900);
    let stack = LocalStack::start(config).await.unwrap();
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig::default())
        .take(50)
        .map(Entry::from)
        .collect();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    assert_eq!(
        producer.send(entries.clone(), |_| {}).await.unwrap().sent,
        50
    );
    let direct = Producer::firehose(
        stack.clients().firehose.clone(),
        ProducerConfig::new(streamlake_core::names::DIRECT_DELIVERY_STREAM),
    );
    assert_eq!(
        direct
            .send(entries[..30].to_vec(), |_| {})
            .await
            .unwrap()
            .sent,
        30
    );
    // Everything read and the mapping done with it before the emulator goes: "settled"
    // alone also holds between two reads of the mapping.
    let in_stream = kinesis_records(&stack).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while stack.firehose_stats().records_read < 50
        || stack.mapping_stats().records_read < in_stream
        || !stack.mapping_stats().settled()
    {
        assert!(tokio::time::Instant::now() < deadline, "records not read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    emulator.kill();
    let started = tokio::time::Instant::now();
    let stats = tokio::time::timeout(Duration::from_secs(120), stack.stop())
        .await
        .expect("the stack stops although S3 is gone");
    assert!(
        started.elapsed() >= STOP_GRACE,
        "it tried for its grace period"
    );
    // Nothing delivered, nothing silently gone: the buffer is counted as not delivered
    // (its checkpoint did not move, so a restart reads it again).
    assert_eq!(
        (stats.firehose.delivered, stats.firehose.in_flight),
        (0, 50),
        "{stats:?}"
    );
    assert_eq!(stats.firehose.undelivered(), 50, "{stats:?}");
    // Direct PUT: accepted, in the journal, counted as not delivered.
    assert_eq!(
        (stats.direct_put.delivered, stats.direct_put.undelivered()),
        (0, 30),
        "{stats:?}"
    );
    assert_eq!(stats.mapping.unsettled(), 0, "{stats:?}");
}
