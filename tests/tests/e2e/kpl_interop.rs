//! KPL interop against the reference implementation, the Python `aws-kinesis-agg`
//! package (PyPI, pinned, installed by the test in the stack's state folder): what it
//! aggregates, core's de-aggregator, the consumer and the local Firehose take apart
//! exactly; what `producer --aggregate` packs, it takes apart exactly.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDate;
use producer::aggregate::{Aggregating, ShardMap};
use producer::{Entry, Producer, ProducerConfig};
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::python::ensure_venv;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::kpl::deaggregate;
use tokio::io::AsyncWriteExt;

use crate::support::assert_nothing_lost;

/// The reference package and what it needs, pinned.
const REQUIREMENTS: &[&str] = &["aws-kinesis-agg==1.2.3", "protobuf==7.36.2", "six==1.17.0"];

/// Aggregates (`aggregate`) or de-aggregates (`deaggregate`) `[partition key, base64
/// data]` pairs read as JSON from stdin with the reference package; writes the result's
/// pairs as JSON.
const SCRIPT: &str = r#"
import base64, json, sys
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records
request = json.load(sys.stdin)
out = []
if request["mode"] == "aggregate":
    aggregator = RecordAggregator()
    full = [aggregator.add_user_record(pk, base64.b64decode(data)) for pk, data in request["records"]]
    full.append(aggregator.clear_and_get())
    out = [[pk, base64.b64encode(data).decode()] for pk, _, data in (r.get_contents() for r in full if r is not None)]
else:
    events = [{"kinesis": {"data": data, "partitionKey": pk, "sequenceNumber": str(i + 1),
                           "approximateArrivalTimestamp": 0, "kinesisSchemaVersion": "1.0"}}
              for i, (pk, data) in enumerate(request["records"])]
    text = lambda d: d if isinstance(d, str) else d.decode()
    out = [[r["kinesis"]["partitionKey"], text(r["kinesis"]["data"])] for r in deaggregate_records(events)]
json.dump(out, sys.stdout)
"#;

/// Runs [`SCRIPT`] over `records`.
async fn reference(python: &std::path::Path, mode: &str, records: &[Entry]) -> Vec<Entry> {
    let pairs: Vec<(&str, String)> = records
        .iter()
        .map(|e| (e.partition_key.as_str(), STANDARD.encode(&e.data)))
        .collect();
    let request = serde_json::json!({ "mode": mode, "records": pairs });
    let mut child = tokio::process::Command::new(python)
        .env_remove(streamlake::harness::python::BYTECODE)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&serde_json::to_vec(&request).unwrap())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "aws-kinesis-agg {mode} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pairs: Vec<(String, String)> = serde_json::from_slice(&output.stdout).unwrap();
    pairs
        .into_iter()
        .map(|(partition_key, data)| Entry {
            partition_key,
            data: STANDARD.decode(data).unwrap(),
        })
        .collect()
}

fn weather(seed: u64, count: usize) -> Vec<Entry> {
    WeatherGenerator::new(GeneratorConfig {
        seed,
        start: NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
        error_rate: 0.05,
    })
    .take(count)
    .map(Entry::from)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kpl_aggregates_interoperate_with_the_reference_package() {
    let venv = ensure_venv(
        &default_state_dir(),
        "kpl-interop-1",
        REQUIREMENTS,
        "installing aws-kinesis-agg",
        "about 10 s",
    )
    .await
    .unwrap();
    let python = venv.join("bin").join("python");

    // Ours, taken apart by the reference: exactly the records, in order.
    let entries = weather(21, 3000);
    let ours: Vec<Entry> =
        Aggregating::new(entries.clone().into_iter(), ShardMap::single(), 64 * 1024).collect();
    assert!(ours.len() > 2 && ours.len() < 100, "{}", ours.len());
    assert_eq!(reference(&python, "deaggregate", &ours).await, entries);

    // The reference's, taken apart by core: exactly the records, in order.
    let entries = weather(22, 600);
    let theirs = reference(&python, "aggregate", &entries).await;
    assert!(
        theirs.len() < entries.len() / 10,
        "{} aggregates",
        theirs.len()
    );
    let back: Vec<Entry> = theirs
        .iter()
        .flat_map(|a| deaggregate(&a.data).unwrap())
        .map(|u| Entry {
            partition_key: u.partition_key,
            data: u.data,
        })
        .collect();
    assert_eq!(back, entries);

    // And through the stack: the local Firehose and the consumer lose nothing of them.
    let mut config = StackConfig::new(default_state_dir());
    config.buffer_interval = Duration::from_secs(1);
    let stack = LocalStack::start(config).await.unwrap();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let summary = producer.send(theirs.clone(), |_| {}).await.unwrap();
    assert_eq!(summary.sent as usize, theirs.len());
    stack
        .wait_settled_counts(
            entries.len() as u64,
            theirs.len() as u64,
            Duration::from_secs(240),
        )
        .await
        .unwrap();
    let ledger = assert_nothing_lost(&stack, &entries).await;
    assert!(ledger.malformed > 0, "{ledger:?}");
    stack.stop().await;
}
