//! One `status` snapshot on a lake of many partitions: as `up` takes it (the partitions
//! of the recent window listed, the totals kept: `LakeIndex`) against a snapshot that
//! lists the whole lake first (what every snapshot did before), in the same run.
//!
//! `cargo bench -p streamlake-e2e --bench status` starts a local stack (moto), writes
//! `PARTITIONS` day partitions of one object each into its lake, sends `RECORDS` records
//! through the pipeline (a few recent partitions), then takes `RUNS` snapshots of each
//! kind, alternating, and prints the median of each and their ratio.
//! `STREAMLAKE_BENCH_PARTITIONS` changes the lake's size.

use std::time::{Duration, Instant};

use producer::{Entry, Producer, ProducerConfig};
use streamlake::harness::binaries::default_state_dir;
use streamlake::lake_index::{LakeIndex, RECENT_WINDOW};
use streamlake::status::Status;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_e2e::write_old_partitions;

const PARTITIONS: usize = 10_000;
const RECORDS: usize = 500;
const RUNS: usize = 7;

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

#[tokio::main]
async fn main() {
    let partitions = std::env::var("STREAMLAKE_BENCH_PARTITIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(PARTITIONS);
    let stack = LocalStack::start(StackConfig::new(default_state_dir()))
        .await
        .unwrap();
    let bucket = stack.clients().bucket(&stack.config().bucket);
    let first = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
    let started = Instant::now();
    write_old_partitions(&bucket, first, partitions).await;
    eprintln!(
        "{partitions} partitions written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig::default())
        .take(RECORDS)
        .map(Entry::from)
        .collect();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    producer.send(entries, |_| {}).await.unwrap();
    stack
        .wait_firehose_settled(RECORDS as u64, Duration::from_secs(300))
        .await
        .unwrap();

    let mut index = LakeIndex::of_stack(&stack, RECENT_WINDOW).await.unwrap();
    let (mut kept, mut listed) = (Vec::new(), Vec::new());
    let mut shown = (0, 0);
    for _ in 0..RUNS {
        let start = Instant::now();
        let status = Status::of(&stack, &mut index).await.unwrap();
        kept.push(start.elapsed().as_secs_f64());
        shown = (status.partitions.len(), status.lake.partitions);

        let start = Instant::now();
        let mut fresh = LakeIndex::of_stack(&stack, RECENT_WINDOW).await.unwrap();
        let whole = Status::of(&stack, &mut fresh).await.unwrap();
        listed.push(start.elapsed().as_secs_f64());
        assert_eq!(whole.lake, status.lake, "both count the same lake");
    }
    let (kept, listed) = (median(kept), median(listed));
    println!(
        "lake of {} partitions ({} recent), median of {RUNS} snapshots each:",
        shown.1, shown.0
    );
    println!("| snapshot | seconds |");
    println!("| --- | --- |");
    println!("| recent window, totals kept (`up`) | {kept:.3} |");
    println!("| whole lake listed first | {listed:.3} |");
    println!("whole listing vs recent window: {:.1}x", listed / kept);
    stack.stop().await;
}
