//! KPL aggregation end to end: a producer packs user records (malformed ones among them)
//! into aggregated Kinesis records, one aggregate per shard; the local Firehose
//! de-aggregates them for the transform, the consumer de-aggregates them itself, and every
//! user record ends up in exactly one place, as if it had been sent plain.

use std::time::Duration;

use chrono::NaiveDate;
use producer::aggregate::{Aggregating, ShardMap};
use producer::{Entry, Producer, ProducerConfig};
use streamlake::faults::{Call, FaultPlan};
use streamlake::harness::binaries::default_state_dir;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};

use crate::support::assert_nothing_lost;

/// Aggregated records through a stack with `plan` (no faults, or throttled writes).
async fn aggregated_through(plan: FaultPlan) {
    let mut config = StackConfig::new(default_state_dir());
    config.buffer_interval = Duration::from_secs(1);
    config.faults = plan;
    let stack = LocalStack::start(config).await.unwrap();
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig {
        seed: 11,
        start: NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
        error_rate: 0.05,
    })
    .take(800)
    .map(Entry::from)
    .collect();
    let shards = ShardMap::of_stream(&stack.clients().kinesis, &stack.config().stream)
        .await
        .unwrap();
    assert_eq!(shards.len(), stack.config().shards as usize);
    // Aggregates of at most 16 KiB: several per shard, malformed records inside them.
    let aggregates: Vec<Entry> =
        Aggregating::new(entries.clone().into_iter(), shards, 16 * 1024).collect();
    assert!(
        aggregates.len() > 2 && aggregates.len() * 20 < entries.len(),
        "{} aggregates",
        aggregates.len()
    );
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let summary = producer.send(aggregates.clone(), |_| {}).await.unwrap();
    assert_eq!(summary.sent as usize, aggregates.len());
    // Firehose reads user records; the consumer's mapping reads Kinesis records.
    stack
        .wait_settled_counts(
            entries.len() as u64,
            aggregates.len() as u64,
            Duration::from_secs(240),
        )
        .await
        .unwrap();
    let ledger = assert_nothing_lost(&stack, &entries).await;
    assert!(ledger.malformed > 0, "{ledger:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregated_records_are_de_aggregated_by_firehose_and_the_consumer() {
    aggregated_through(FaultPlan::default()).await;
}

/// A third of the consumer's writes throttled: the consumer retries them within the
/// invocation, and a row that still fails is reported by the Kinesis record of its first
/// user record (`batchItemFailures` name Kinesis records), so the mapping retries the whole
/// aggregate and the user records already written are written again as stale no-ops; the
/// malformed user records go to the dead letters once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregated_records_with_throttled_writes_lose_nothing() {
    aggregated_through(FaultPlan::default().with(Call::DynamoDbUpdateItem, 0.3)).await;
}
