//! Every example under `examples/` end to end through the local stack, started with its
//! dataset file: each valid sample record once in its partition with the typed values the
//! dataset gives it, each malformed one under `processing-failed/` with its original bytes
//! and its reason in the transform's log, and `query` (with `--dataset`, and with the
//! dataset the stack stored beside the lake) counting what went in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use producer::input::{PartitionKeyer, ndjson_entries};
use producer::{Entry, Producer, ProducerConfig};
use serde_json::Value as Json;
use streamlake::emulated::firehose::ErrorRecord;
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::demo::read_prefix;
use streamlake::harness::lake_dataset;
use streamlake::harness::stack::ApiServer;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::PartitionKeys;
use streamlake_core::dataset::{Dataset, Derived, Source};
use streamlake_core::layout::ERROR_ROOT;
use streamlake_core::names;
use streamlake_core::time::from_epoch_millis;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// The `record failed` reasons of the transform's JSON log.
fn logged_reasons(stack: &LocalStack) -> Vec<String> {
    let log = stack.log_dir().join("streamlake-transform.log");
    let mut reasons: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|l| l["fields"]["message"] == "record failed")
        .map(|l| l["fields"]["reason"].as_str().unwrap().to_owned())
        .collect();
    reasons.sort();
    reasons
}

/// A lake line without its arrival-time columns (which the test cannot know in advance),
/// as sorted JSON text.
fn comparable(dataset: &Dataset, line: &[u8]) -> String {
    let mut object: serde_json::Map<String, Json> = serde_json::from_slice(line).unwrap();
    for column in dataset.columns() {
        if matches!(column.source, Source::Derived(Derived::ArrivalTime)) {
            object.remove(&column.name);
        }
    }
    serde_json::to_string(&object).unwrap()
}

/// `query ARGS` against the stack; its standard output.
async fn query(stack: &LocalStack, args: &[&str]) -> String {
    let output = stack
        .binaries()
        .command("query")
        .args(args)
        .envs(stack.clients().child_env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "query {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn run_example(name: &str, direct_put: bool) -> LocalStack {
    let dir = example(name);
    let dataset = Dataset::load_path(&dir).unwrap();
    let mut config = StackConfig::new(default_state_dir());
    config.dataset = dataset.clone().into();
    config.buffer_interval = Duration::from_secs(1);
    // A dataset with tables (the unicorns') also has a consumer to wait for: dynalite
    // serves its writes in parallel, where moto takes one at a time.
    config.dynamodb = ApiServer::Node;
    let stack = LocalStack::start(config).await.unwrap();
    let file = std::fs::File::open(dir.join("records.ndjson")).unwrap();
    let entries: Vec<Entry> = ndjson_entries(
        std::io::BufReader::new(file),
        PartitionKeyer::of_dataset(&dataset),
    )
    .map(Result::unwrap)
    .collect();
    let clients = stack.clients();
    let producer = if direct_put {
        let config = ProducerConfig::new(names::DIRECT_DELIVERY_STREAM);
        Producer::firehose(clients.firehose.clone(), config)
    } else {
        Producer::new(
            clients.kinesis.clone(),
            ProducerConfig::new(&stack.config().stream),
        )
    };
    let summary = producer.send(entries.clone(), |_| {}).await.unwrap();
    assert_eq!(summary.sent, entries.len() as u64);
    if direct_put {
        stack
            .wait_direct_put_settled(summary.sent, Duration::from_secs(180))
            .await
            .unwrap();
    } else {
        // The lake is what this checks: the consumer (the unicorns have tables) is not
        // waited for.
        stack
            .wait_firehose_settled(summary.sent, Duration::from_secs(180))
            .await
            .unwrap();
    }

    // What the dataset makes of each input, with any arrival time: the partition of a
    // dataset without event time is checked against the record's own arrival column.
    let epoch = from_epoch_millis(0);
    let mut expected: BTreeMap<String, Option<PartitionKeys>> = BTreeMap::new();
    let mut malformed: Vec<Vec<u8>> = Vec::new();
    let mut reasons = Vec::new();
    for entry in &entries {
        // Direct PUT records travel with the newline the producer appends.
        let data = if direct_put {
            [&entry.data[..], b"\n"].concat()
        } else {
            entry.data.clone()
        };
        match dataset.normalize(&data, epoch) {
            Ok(record) => {
                let mut line = Vec::new();
                record.write_ndjson(&dataset, &mut line);
                let partition = dataset.event_time().map(|_| record.partition);
                let previous = expected.insert(comparable(&dataset, &line), partition);
                assert!(previous.is_none(), "the samples hold no duplicates");
            }
            Err(reason) => {
                malformed.push(data);
                reasons.push(reason.to_string());
            }
        }
    }
    assert!(!malformed.is_empty() && !expected.is_empty());

    let bucket = &stack.config().bucket;
    let mut delivered: BTreeMap<String, PartitionKeys> = BTreeMap::new();
    let arrival = dataset.partition_time_column().map(|c| c.name.clone());
    for (key, body) in read_prefix(clients, bucket, dataset.prefix())
        .await
        .unwrap()
    {
        let partition = PartitionKeys::from_path(&key).unwrap_or_else(|| panic!("{key}"));
        assert_eq!(partition.granularity(), dataset.partition(), "{key}");
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if dataset.event_time().is_none() {
                let object: Json = serde_json::from_slice(line).unwrap();
                let at = object[arrival.as_deref().unwrap()].as_str().unwrap();
                let at = chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc();
                assert_eq!(
                    PartitionKeys::for_time_in(&at, dataset.partition()),
                    partition
                );
            }
            let previous = delivered.insert(comparable(&dataset, line), partition);
            assert!(previous.is_none(), "{key}: a record delivered twice");
        }
    }
    assert_eq!(delivered.len(), expected.len(), "{name}: records delivered");
    for (line, partition) in &delivered {
        let wanted = expected
            .get(line)
            .unwrap_or_else(|| panic!("{name}: {line} is no input's"));
        if let Some(wanted) = wanted {
            assert_eq!(wanted, partition, "{line}");
        }
    }

    // Each malformed record once under processing-failed/, with its bytes.
    let mut failed = Vec::new();
    for (key, body) in read_prefix(clients, bucket, ERROR_ROOT).await.unwrap() {
        if !key.starts_with("errors/processing-failed/") {
            continue;
        }
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let ErrorRecord::Processing(record) = serde_json::from_slice(line).unwrap() else {
                panic!("{key}: not a processing-failed record");
            };
            failed.push(STANDARD.decode(&record.raw_data).unwrap());
        }
    }
    failed.sort();
    malformed.sort();
    assert_eq!(failed, malformed, "{name}: processing-failed records");
    reasons.sort();
    assert_eq!(logged_reasons(&stack), reasons, "{name}: logged reasons");

    // query counts what went in: with the dataset named, and with the one stored beside
    // the lake (no flag).
    let lake = format!("s3://{bucket}/{}", dataset.prefix());
    let sql = format!("SELECT count(*) AS n FROM {}", dataset.name());
    let dataset_file = dir.join("dataset.toml");
    let dataset_flag = dataset_file.to_str().unwrap();
    for args in [
        vec![
            "--dataset",
            dataset_flag,
            "--lake",
            &lake,
            "sql",
            "--format",
            "csv",
            &sql,
        ],
        vec!["--lake", &lake, "sql", "--format", "csv", &sql],
    ] {
        let out = query(&stack, &args).await;
        assert_eq!(out.trim(), format!("n\n{}", expected.len()), "{args:?}");
    }
    stack
}

/// The next `up` on this lake: an added optional column is stored; a retyped column is
/// refused with the reason, unless asked for.
async fn next_up_checks_the_stored_dataset(stack: &LocalStack) {
    let clients = stack.clients();
    let bucket = &stack.config().bucket;
    let stored = stack.config().dataset.text().to_owned();
    let added = Dataset::from_toml(
        &format!("{stored}\n[[fields]]\nname = \"venue\"\ntype = \"string\"\n"),
        "added.toml",
    )
    .unwrap();
    lake_dataset::store(clients, bucket, &added, false)
        .await
        .unwrap();
    let retyped = Dataset::from_toml(
        &added.text().replace(
            "name = \"quantity\"\ntype = \"long\"",
            "name = \"quantity\"\ntype = \"double\"",
        ),
        "retyped.toml",
    )
    .unwrap();
    let refused = lake_dataset::store(clients, bucket, &retyped, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "the dataset cannot replace the one stored at s3://streamlake-lake/data/_dataset.toml"
        ) && refused.contains("column \"quantity\" changes type from long to double"),
        "{refused}"
    );
    lake_dataset::store(clients, bucket, &retyped, true)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trades_partitioned_by_arrival() {
    let stack = run_example("trades", false).await;
    next_up_checks_the_stored_dataset(&stack).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_in_hourly_partitions_under_their_own_prefix() {
    run_example("events", false).await.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unicorns_with_a_patterned_event_time() {
    run_example("unicorns", false).await.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn telematics_sent_with_direct_put() {
    run_example("telematics", true).await.stop().await;
}
