//! `streamlake tail` prints exactly the records produced: every one, as produced, with
//! `--format ndjson`, and exactly the matching ones with `--where`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use producer::{Entry, Producer, ProducerConfig};
use streamlake::harness::binaries::default_state_dir;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::time::from_epoch_millis;
use streamlake_e2e::weather;

/// Runs `streamlake tail` against the stack; its output lines, counted.
async fn tail(stack: &LocalStack, args: &[&str]) -> BTreeMap<Vec<u8>, usize> {
    let mut command = stack.binaries().command("streamlake");
    command
        .arg("tail")
        .args(["--stream", &stack.config().stream])
        .args(args)
        .envs(stack.clients().child_env.iter().cloned())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("tail stops after --count records")
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = BTreeMap::new();
    for line in output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        *lines.entry(line.to_vec()).or_default() += 1;
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_exactly_the_records_produced() {
    let stack = LocalStack::start(StackConfig::new(default_state_dir()))
        .await
        .expect("the local stack starts");
    let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig {
        seed: 11,
        error_rate: 0.05,
        ..GeneratorConfig::default()
    })
    .take(300)
    .map(Entry::from)
    .collect();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let summary = producer.send(entries.clone(), |_| {}).await.unwrap();
    assert_eq!(summary.sent as usize, entries.len());

    let count = |data: &[Vec<u8>]| {
        let mut counted: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for d in data {
            let line = d.strip_suffix(b"\n").unwrap_or(d);
            *counted.entry(line.to_vec()).or_default() += 1;
        }
        counted
    };
    let all: Vec<Vec<u8>> = entries.iter().map(|e| e.data.clone()).collect();
    let printed = tail(
        &stack,
        &["--count", &all.len().to_string(), "--format", "ndjson"],
    )
    .await;
    assert_eq!(printed, count(&all));

    let tmax: Vec<Vec<u8>> = all
        .iter()
        .filter(|d| weather(d, from_epoch_millis(0)).is_ok_and(|o| o.datatype == "TMAX"))
        .cloned()
        .collect();
    assert!(!tmax.is_empty() && tmax.len() < all.len());
    let printed = tail(
        &stack,
        &[
            "--where",
            "datatype=tmax",
            "--count",
            &tmax.len().to_string(),
            "--format",
            "ndjson",
        ],
    )
    .await;
    assert_eq!(printed, count(&tmax));
    stack.stop().await;
}
