//! The consumer branch for a dataset other than weather: tutorial 003's unicorn tables
//! through the local stack, exact after a run and after a replay of the whole stream; the
//! per-minute summary equal to the same aggregation computed over the input; `status`
//! showing each unicorn's newest position; a record without its key dead-lettered with
//! the reason; the newest value winning over replays and out-of-order batches on moto and
//! on dynalite; and the unicorn demo filling its per-minute summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DurationRound, TimeDelta, Utc};
use consumer_lambda::Tables;
use producer::input::{PartitionKeyer, ndjson_entries};
use producer::redrive::{self, RedriveConfig, Source};
use producer::{Entry, Producer, ProducerConfig};
use streamlake::clients::Clients;
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::demo::{self, DemoOptions, Sample, read_prefix};
use streamlake::harness::emulator::Emulator;
use streamlake::harness::node_servers::{NodeServer, NodeServerKind};
use streamlake::harness::resources::{TableSpec, ensure_table};
use streamlake::harness::stack::ApiServer;
use streamlake::{LocalStack, StackConfig};
use streamlake_core::dataset::{Dataset, Value};
use streamlake_core::layout::CONSUMER_DEAD_LETTER_PREFIX;
use streamlake_core::time::{format_rfc3339, from_epoch_millis};

use crate::support::{run_logs, write_batches};

/// An item: key attribute values -> attribute -> value as text.
type Items = BTreeMap<Vec<String>, BTreeMap<String, String>>;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn unicorns() -> Dataset {
    Dataset::load_path(&example("unicorns")).unwrap()
}

/// The example's records, and one without the key `Name`.
fn entries(dataset: &Dataset, count: usize) -> Vec<Entry> {
    let file = std::fs::File::open(example("unicorns").join("records.ndjson")).unwrap();
    let mut entries: Vec<Entry> = ndjson_entries(
        std::io::BufReader::new(file),
        PartitionKeyer::of_dataset(dataset),
    )
    .map(Result::unwrap)
    .take(count)
    .collect();
    entries.push(Entry {
        partition_key: "no-name".into(),
        data: br#"{"StatusTime":"2017-06-05 09:17:08.189","Latitude":1.5,"Longitude":2.5}"#
            .to_vec(),
    });
    entries
}

/// Every item of a table, without the version attributes unless `versions`.
async fn items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: &[&str],
    versions: bool,
) -> Items {
    let text = |v: &AttributeValue| match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        other => format!("{other:?}"),
    };
    let mut out = Items::new();
    let mut pages = client.scan().table_name(table).into_paginator().send();
    while let Some(page) = pages.next().await {
        for item in page.expect("scan").items() {
            let key = keys.iter().map(|k| text(&item[*k])).collect();
            let attributes = item
                .iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .filter(|(k, _)| versions || !(k.ends_with("_seq") || *k == "window_end"))
                .map(|(k, v)| (k.clone(), text(v)))
                .collect();
            out.insert(key, attributes);
        }
    }
    out
}

/// The numbers of a record by column name, as the dataset reads them.
fn numbers(dataset: &Dataset, values: &[Value<'_>]) -> BTreeMap<String, f64> {
    dataset
        .columns()
        .iter()
        .zip(values)
        .filter_map(|(c, v)| match v {
            Value::Long(n) => Some((c.name.clone(), *n as f64)),
            Value::Double(x) => Some((c.name.clone(), *x)),
            _ => None,
        })
        .collect()
}

/// What `UnicornSensorData` must hold: per unicorn and time, the newest record's readings.
fn expected_items(dataset: &Dataset, records: &[&[u8]]) -> Items {
    let mut out = Items::new();
    for data in records {
        let Ok(n) = dataset.normalize(data, from_epoch_millis(0)) else {
            continue;
        };
        let name = match &n.values[0] {
            Value::String(s) => s.to_string(),
            other => panic!("{other:?}"),
        };
        let attributes = numbers(dataset, &n.values)
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        out.insert(vec![name, format_rfc3339(&n.time)], attributes);
    }
    out
}

/// A minute's statuses, distance, and (lowest, highest) per field.
type MinuteRow = (u64, f64, BTreeMap<String, (f64, f64)>);

/// The per-minute summary, computed here: per unicorn and minute of StatusTime, the
/// statuses, the distance and the lowest and highest points.
fn expected_summary(dataset: &Dataset, records: &[&[u8]]) -> Items {
    let mut rows: BTreeMap<Vec<String>, MinuteRow> = BTreeMap::new();
    for data in records {
        let Ok(n) = dataset.normalize(data, from_epoch_millis(0)) else {
            continue;
        };
        let Value::String(name) = &n.values[0] else {
            panic!()
        };
        let minute = n.time.duration_trunc(TimeDelta::minutes(1)).unwrap();
        let row = rows
            .entry(vec![name.to_string(), format_rfc3339(&minute)])
            .or_default();
        let numbers = numbers(dataset, &n.values);
        row.0 += 1;
        row.1 += numbers.get("Distance").copied().unwrap_or_default();
        for field in ["MagicPoints", "HealthPoints"] {
            if let Some(&x) = numbers.get(field) {
                let e = row.2.entry(field.to_owned()).or_insert((x, x));
                e.0 = e.0.min(x);
                e.1 = e.1.max(x);
            }
        }
    }
    rows.into_iter()
        .map(|(key, (count, distance, extremes))| {
            let mut a = BTreeMap::from([
                ("statuses".to_owned(), count.to_string()),
                ("Distance_sum".to_owned(), distance.to_string()),
            ]);
            for (field, (min, max)) in extremes {
                a.insert(format!("{field}_min"), min.to_string());
                a.insert(format!("{field}_max"), max.to_string());
            }
            (key, a)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unicorn_tables_are_exact_after_a_run_and_a_replay() {
    let mut emulator = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    let dataset = unicorns();
    let config = || {
        let mut config = StackConfig::new(default_state_dir());
        config.endpoint = Some(emulator.endpoint().to_owned());
        config.dataset = dataset.clone().into();
        config.buffer_interval = Duration::from_secs(1);
        config.dynamodb = ApiServer::Emulator;
        config.mapping.tumbling_window = Some(Duration::from_secs(2));
        config
    };
    let stack = LocalStack::start(config()).await.unwrap();
    let entries = entries(&dataset, 200);
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let sent = producer.send(entries.clone(), |_| {}).await.unwrap().sent;
    stack
        .wait_settled(sent, Duration::from_secs(240))
        .await
        .unwrap();
    let records: Vec<&[u8]> = entries.iter().map(|e| e.data.as_slice()).collect();
    assert!(expected_items(&dataset, &records).len() > 150);
    let client = &stack.clients().dynamodb;
    let keys = ["Name", "StatusTime"];
    assert_eq!(
        items(client, "UnicornSensorData", &keys, false).await,
        expected_items(&dataset, &records),
        "UnicornSensorData holds every status once"
    );

    // The last window closes once its end has passed (its final invocation retried
    // until every row is written, which takes a while on a loaded machine's moto).
    let expected = expected_summary(&dataset, &records);
    assert!(expected.len() > 5, "{expected:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let summary = items(
            client,
            "UnicornAggregation",
            &["Name", "windowStart"],
            false,
        )
        .await;
        if summary == expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "summary {summary:?}\nexpected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // `status` shows each unicorn where its newest status puts it, and the plot draws them.
    let mut lake =
        streamlake::lake_index::LakeIndex::of_stack(&stack, streamlake::lake_index::RECENT_WINDOW)
            .await
            .unwrap();
    let status = streamlake::status::Status::of(&stack, &mut lake)
        .await
        .unwrap();
    assert!(status.consumer);
    let sensor_items = expected_items(&dataset, &records);
    assert_eq!(status.rows["UnicornSensorData"], sensor_items.len() as u64);
    let mut newest: BTreeMap<String, (String, f64, f64)> = BTreeMap::new();
    for (key, attributes) in &sensor_items {
        let coordinate = |a: &str| attributes[a].parse::<f64>().unwrap();
        // Items are in (name, time) order: the last of a name is its newest.
        newest.insert(
            key[0].clone(),
            (
                key[1].clone(),
                coordinate("Latitude"),
                coordinate("Longitude"),
            ),
        );
    }
    let shown: BTreeMap<String, (String, f64, f64)> = status
        .positions
        .iter()
        .map(|p| {
            let at = p.at.clone().unwrap();
            (p.key.clone(), (at, p.latitude, p.longitude))
        })
        .collect();
    assert_eq!(shown, newest);
    let plot = streamlake::positions::svg(&status.positions);
    assert_eq!(plot.matches("<circle").count(), newest.len());

    // The record without its key is a dead letter, with the reason.
    let dead = read_prefix(
        stack.clients(),
        &stack.config().bucket,
        CONSUMER_DEAD_LETTER_PREFIX,
    )
    .await
    .unwrap();
    let malformed = records
        .iter()
        .filter(|r| dataset.normalize(r, Utc::now()).is_err())
        .count();
    assert_eq!(dead.len(), malformed);
    let no_name = dead
        .iter()
        .map(|(_, body)| serde_json::from_slice::<serde_json::Value>(body).unwrap())
        .find(|d| d["partitionKey"] == "no-name")
        .expect("the record without Name is a dead letter");
    assert!(
        no_name["reason"].as_str().unwrap().contains("`Name`"),
        "{no_name}"
    );
    assert_eq!(
        STANDARD
            .decode(no_name["rawData"].as_str().unwrap())
            .unwrap(),
        entries.last().unwrap().data
    );
    // `producer redrive` finds each malformed record once, from either branch.
    let producer_again = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let counted = redrive::redrive(
        &stack.clients().s3,
        &producer_again,
        &RedriveConfig {
            bucket: stack.config().bucket.clone(),
            sources: vec![Source::ProcessingFailed, Source::DeadLetters],
            from: None,
            to: None,
            dry_run: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(counted.sent, malformed as u64, "{counted:?}");
    let before = items(client, "UnicornSensorData", &keys, true).await;
    stack.stop().await;

    // A second stack without checkpoints reads the whole stream again: nothing changes.
    let mut again = config();
    again.checkpoints = false;
    again.mapping.tumbling_window = None;
    let stack = LocalStack::start(again).await.unwrap();
    stack
        .wait_settled(sent, Duration::from_secs(240))
        .await
        .unwrap();
    assert_eq!(
        items(&stack.clients().dynamodb, "UnicornSensorData", &keys, true).await,
        before
    );
    stack.stop().await;
    emulator.stop().await;
}

/// Writes the batches through the consumer's library.
async fn write(clients: &Clients, tables: &Tables, records: &[(String, Vec<u8>)]) {
    write_batches(clients, tables, records, 50, 8).await;
}

/// The records numbered from `first`, every MagicPoints moved by `shift`.
fn numbered(first: u64, shift: i64, records: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    records
        .iter()
        .filter_map(|r| {
            let mut v: serde_json::Value = serde_json::from_slice(r).ok()?;
            if let Some(points) = v.get("MagicPoints").and_then(serde_json::Value::as_i64) {
                v["MagicPoints"] = (points + shift).into();
            }
            Some(serde_json::to_vec(&v).unwrap())
        })
        .enumerate()
        .map(|(i, data)| ((first + i as u64).to_string(), data))
        .collect()
}

/// A run, a replay, newer values, then older ones in reverse order: the newest stay.
async fn scenario(endpoint: &str) {
    let clients = Clients::connect(endpoint, true).await;
    let tables = Tables::new(unicorns(), "").unwrap();
    for table in TableSpec::of(tables.dynamodb()) {
        ensure_table(&clients, &table).await.unwrap();
    }
    let entries = entries(tables.dataset(), 200);
    let records: Vec<&[u8]> = entries.iter().map(|e| e.data.as_slice()).collect();
    let original = numbered(1_000, 0, &records);
    let newest = numbered(3_000, 7, &records);
    let mut between = numbered(2_000, 3, &records);
    between.reverse();
    write(&clients, &tables, &original).await;
    write(&clients, &tables, &original).await;
    write(&clients, &tables, &newest).await;
    write(&clients, &tables, &between).await;
    let newest_data: Vec<&[u8]> = newest.iter().map(|(_, d)| d.as_slice()).collect();
    assert_eq!(
        items(
            &clients.dynamodb,
            "UnicornSensorData",
            &["Name", "StatusTime"],
            false
        )
        .await,
        expected_items(tables.dataset(), &newest_data),
        "{endpoint}: every item holds its newest readings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_unicorn_status_wins_on_moto_and_dynalite() {
    let dynalite = NodeServer::start(NodeServerKind::Dynalite, &default_state_dir(), &run_logs())
        .await
        .unwrap();
    let mut moto = Emulator::start(&default_state_dir(), &run_logs())
        .await
        .unwrap();
    scenario(moto.endpoint()).await;
    scenario(dynalite.endpoint()).await;
    moto.stop().await;
}

/// `demo --dataset examples/unicorns` as the command line runs it: the demo turns the
/// consumer's tumbling windows on for the dataset's per-minute summary, and once it has
/// counted what arrived the summary holds exactly the aggregation of the records it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unicorn_demo_fills_its_per_minute_summary() {
    let dataset = unicorns();
    let mut config = StackConfig::new(default_state_dir());
    config.dataset = dataset.clone().into();
    config.buffer_interval = Duration::from_secs(1);
    assert_eq!(demo::fill_summaries(&mut config), ["UnicornAggregation"]);
    assert_eq!(config.mapping.tumbling_window, Some(demo::SUMMARY_WINDOW));
    let stack = LocalStack::start(config).await.unwrap();
    let sample = example("unicorns").join("records.ndjson");
    let options = DemoOptions {
        sample: Sample::File(sample.clone()),
        direct_put: false,
        records: 300,
        seed: 1,
        error_rate: 0.0,
        start: chrono::NaiveDate::from_ymd_opt(2021, 10, 1).unwrap(),
    };
    let report = demo::run(&stack, &options).await.unwrap();
    assert!(report.reconciles(), "{report}");
    assert!(report.unfilled_summaries.is_empty(), "{report}");

    let text = std::fs::read_to_string(&sample).unwrap();
    let records: Vec<&[u8]> = text.lines().take(300).map(str::as_bytes).collect();
    let expected = expected_summary(&dataset, &records);
    assert!(expected.len() > 5, "{expected:?}");
    let client = &stack.clients().dynamodb;
    let summary = items(
        client,
        "UnicornAggregation",
        &["Name", "windowStart"],
        false,
    )
    .await;
    assert_eq!(summary, expected, "the summary once the demo has counted");
    assert_eq!(
        report.counts.rows["UnicornAggregation"],
        expected.len() as u64
    );
    stack.stop().await;
}
