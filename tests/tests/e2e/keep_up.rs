//! Keeping up with a full shard: one shard written at Kinesis's per-shard limit (1,000
//! records/s) for 60 s through the local stack, the consumer writing to dynalite with 5 ms
//! added to each answer (a DynamoDB round trip). Reports the rate written and settled and
//! the consumer's iterator age (Lambda's `IteratorAge`: how old the last record of a batch
//! is when the batch is done) every 10 s.
//!
//! Not part of `cargo test` (ignored, a measurement); run it with
//!
//! ```sh
//! cargo test -p streamlake-e2e --test e2e keep_up -- --ignored --nocapture
//! ```
//!
//! `STREAMLAKE_BATCH_SIZE` and `STREAMLAKE_PARALLELIZATION` try other mapping settings
//! (default: 100 and 1, the mapping's defaults).

use std::time::{Duration, Instant};

use producer::{Entry, Producer, ProducerConfig};
use streamlake::faults::FaultPlan;
use streamlake::harness::binaries::default_state_dir;
use streamlake::{ApiServer, LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};

/// Kinesis's write limit per shard.
const RECORDS_PER_SECOND: usize = 1_000;
const SECONDS: usize = 60;
/// Records per `PutRecords`: ten a second.
const PER_REQUEST: usize = RECORDS_PER_SECOND / 10;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a one-minute measurement: cargo test -p streamlake-e2e --test e2e keep_up -- --ignored --nocapture"]
async fn one_shard_at_its_write_limit_for_a_minute() {
    let batch_size = setting("STREAMLAKE_BATCH_SIZE", 100);
    let parallelization = setting("STREAMLAKE_PARALLELIZATION", 1);
    // The shared state folder (the installed servers); no checkpoints are kept in it.
    let mut config = StackConfig::new(default_state_dir());
    config.shards = 1;
    config.checkpoints = false;
    config.dynamodb = ApiServer::Node;
    config.kinesis = ApiServer::Node;
    config.faults = FaultPlan::default().with_latency("dynamodb=5".parse().unwrap());
    config.mapping.batch_size = batch_size;
    config.mapping.parallelization_factor = parallelization;
    let stack = LocalStack::start(config).await.unwrap();

    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig::default())
        .take(RECORDS_PER_SECOND * SECONDS)
        .map(Entry::from)
        .collect();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut ages = Vec::new();
    let mut next_sample = Duration::from_secs(10);
    for chunk in entries.chunks(PER_REQUEST) {
        tick.tick().await;
        let summary = producer.send(chunk.to_vec(), |_| {}).await.unwrap();
        assert_eq!(summary.sent as usize, chunk.len());
        if start.elapsed() >= next_sample {
            let m = stack.mapping_stats();
            ages.push((start.elapsed().as_secs(), m.succeeded, m.iterator_age_ms));
            next_sample += Duration::from_secs(10);
        }
    }
    let written_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while stack.mapping_stats().succeeded < entries.len() as u64 {
        assert!(Instant::now() < deadline, "{:?}", stack.mapping_stats());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled_in = start.elapsed();
    let m = stack.mapping_stats();
    stack.stop().await;

    println!(
        "keep up: one shard, batch size {batch_size}, parallelization {parallelization}, \
         dynalite at 5 ms: {} records written in {:.1} s ({:.0}/s), all settled after {:.1} s \
         ({:.0}/s); {} invocations",
        entries.len(),
        written_in.as_secs_f64(),
        entries.len() as f64 / written_in.as_secs_f64(),
        settled_in.as_secs_f64(),
        entries.len() as f64 / settled_in.as_secs_f64(),
        m.invocations
    );
    for (at, settled, age) in &ages {
        println!("  at {at:>2} s: {settled:>6} settled, iterator age {age:>5} ms");
    }
    println!(
        "  largest iterator age {} ms; the last batch's {} ms",
        m.max_iterator_age_ms, m.iterator_age_ms
    );
    assert_eq!(m.discarded, 0);
}
