//! The whole pipeline over the local stack (real moto, real Lambda binaries through the
//! Runtime API): every valid record lands in its `year=/month=/day=` partition exactly
//! once, every malformed one lands under the error prefix with its reason and original
//! bytes, and DynamoDB holds the merged rows.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDate;
use producer::{Entry, Producer, ProducerConfig};
use streamlake::emulated::firehose::ErrorRecord;
use streamlake::harness::binaries::default_state_dir;
use streamlake::harness::demo::read_prefix;
use streamlake::harness::node_servers::node_available;
use streamlake::{ApiServer, LocalStack, StackConfig};
use streamlake_core::PartitionKeys;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::layout::{CONSUMER_DEAD_LETTER_PREFIX, DATA_ROOT, ERROR_ROOT};
use streamlake_core::metrics::Metrics;
use streamlake_core::time::{format_rfc3339, from_epoch_millis};
use streamlake_e2e::weather;

/// Records written by hand: offsets that move a record into the next day, month and
/// year, a date without a time, and every kind of malformed input.
fn handmade() -> Vec<Entry> {
    let valid = [
        r#"{"date":"2021-12-31T23:30:00-05:00","stationid":"GHCND:USW00093721","location":"BWI, MD US","datatype":"TMAX","value":4.4}"#,
        r#"{"date":"2021-12-31T22:00:00Z","stationid":"GHCND:USW00093721","location":"BWI, MD US","datatype":"TMIN","value":-1.5}"#,
        r#"{"date":"2022-01-01T01:00:00-02:00","stationid":"GHCND:USW00093721","datatype":"prcp","value":0.3}"#,
        r#"{"date":"2022-02-28","stationid":"GHCND:US1MDAA0001","location":"RIDGE 1.0 N, MD US","datatype":"SNOW","value":12}"#,
        r#"{"date":"2022-02-28T12:00:00","stationid":"GHCND:US1MDAA0001","location":"RIDGE 1.0 N, MD US","datatype":"AWND","value":3.2}"#,
    ];
    let malformed: [&[u8]; 7] = [
        b"GHCND:US1MDAA0001,2021-10-01,PRCP,5",
        br#"{"date":"2021-10-01","datatype":"PRCP","value":1}"#,
        br#"{"date":"2021-10-01","stationid":"S","datatype":"PRCP","value":"five"}"#,
        br#"{"date":"2021-10-41","stationid":"S","datatype":"PRCP","value":1}"#,
        b"{\"date\":\"2021-10-01\",\"stationid\":\"\xff\",\"datatype\":\"PRCP\",\"value\":1}",
        br#"[{"date":"2021-10-01","stationid":"S","datatype":"PRCP","value":1}]"#,
        br#"{"date":"2021-10-01","stationid":"S","datatype":"PRCP","value":1"#,
    ];
    valid
        .iter()
        .map(|v| v.as_bytes())
        .chain(malformed)
        .enumerate()
        .map(|(i, data)| Entry {
            partition_key: format!("handmade-{i}"),
            data: data.to_vec(),
        })
        .collect()
}

/// The fields of the `record failed` lines of a Lambda's JSON log.
fn failure_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "record failed")
        .map(|l| l["fields"].clone())
        .collect()
}

fn s(v: &AttributeValue) -> &str {
    v.as_s().map(String::as_str).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_record_is_delivered_once_or_failed_with_its_reason() {
    delivered_once_or_failed_with_its_reason(StackConfig::new(default_state_dir())).await;
}

/// The same with Kinesis and DynamoDB answered by kinesalite and dynalite, as `up` and
/// `demo` run them when Node.js is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_record_is_delivered_once_or_failed_with_its_reason_on_node_servers() {
    if !node_available() {
        eprintln!("skipped: Node.js and npm are not installed");
        return;
    }
    let mut config = StackConfig::new(default_state_dir());
    config.kinesis = ApiServer::Node;
    config.dynamodb = ApiServer::Node;
    delivered_once_or_failed_with_its_reason(config).await;
}

async fn delivered_once_or_failed_with_its_reason(mut config: StackConfig) {
    config.buffer_interval = Duration::from_secs(1);
    let stack = LocalStack::start(config)
        .await
        .expect("the local stack starts");

    // Generated days across a month boundary, malformed records mixed in, plus handmade ones.
    let generated = WeatherGenerator::new(GeneratorConfig {
        seed: 7,
        start: NaiveDate::from_ymd_opt(2021, 9, 28).unwrap(),
        error_rate: 0.05,
    })
    .take(400)
    .map(Entry::from);
    let entries: Vec<Entry> = generated.chain(handmade()).collect();
    let producer = Producer::new(
        stack.clients().kinesis.clone(),
        ProducerConfig::new(&stack.config().stream),
    );
    let summary = producer.send(entries.clone(), |_| {}).await.unwrap();
    assert_eq!(summary.sent as usize, entries.len());
    assert!(summary.failed.is_empty());
    stack
        .wait_settled(summary.sent, Duration::from_secs(240))
        .await
        .expect("both branches settle");

    // What each input should become, by the one definition of normalization.
    let arrival = from_epoch_millis(0);
    let mut expected: BTreeMap<(PartitionKeys, String, String, String), u32> = BTreeMap::new();
    let mut malformed: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut expected_rows: BTreeMap<(String, String, String), BTreeMap<String, f64>> =
        BTreeMap::new();
    for e in &entries {
        match weather(&e.data, arrival) {
            Ok(o) => {
                let key = (
                    o.partition(),
                    o.stationid.to_string(),
                    o.datatype.to_string(),
                    format_rfc3339(&o.observed_at),
                );
                *expected.entry(key).or_default() += 1;
                if let Some(table) = streamlake_e2e::weather_table(&o.datatype) {
                    expected_rows
                        .entry((
                            table.to_owned(),
                            o.stationid.to_string(),
                            o.date.to_string(),
                        ))
                        .or_default()
                        .insert(o.datatype.to_string(), o.value);
                }
            }
            Err(_) => *malformed.entry(e.data.clone()).or_default() += 1,
        }
    }
    assert!(
        expected
            .keys()
            .map(|k| k.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 6
    );

    // S3 data: each valid record once, in the partition of its own UTC day.
    let clients = stack.clients();
    let bucket = &stack.config().bucket;
    let mut delivered: BTreeMap<(PartitionKeys, String, String, String), u32> = BTreeMap::new();
    for (key, body) in read_prefix(clients, bucket, DATA_ROOT).await.unwrap() {
        let partition = PartitionKeys::from_path(&key).expect("data objects are in a partition");
        assert!(
            key.contains("/streamlake-delivery-1-"),
            "object named like Firehose's: {key}"
        );
        assert!(body.ends_with(b"\n"));
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let row: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(
                row["date"].as_str().unwrap(),
                partition.date().to_string(),
                "{key}"
            );
            let k = (
                partition,
                row["stationid"].as_str().unwrap().to_owned(),
                row["datatype"].as_str().unwrap().to_owned(),
                row["observed_at"].as_str().unwrap().to_owned(),
            );
            *delivered.entry(k).or_default() += 1;
        }
    }
    assert_eq!(delivered, expected);
    let new_year = PartitionKeys::for_date(NaiveDate::from_ymd_opt(2022, 1, 1).unwrap());
    assert_eq!(delivered.keys().filter(|k| k.0 == new_year).count(), 2);

    // S3 errors: each malformed record once, with its original bytes, in the shape
    // Firehose writes for a record the function returned `ProcessingFailed`.
    let mut failed: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut reasons = Vec::new();
    for (key, body) in read_prefix(clients, bucket, ERROR_ROOT).await.unwrap() {
        if key.starts_with(CONSUMER_DEAD_LETTER_PREFIX) {
            continue;
        }
        assert!(key.starts_with("errors/processing-failed/"), "{key}");
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let ErrorRecord::Processing(record) = serde_json::from_slice(line).unwrap() else {
                panic!("{key}: not a processing-failed record");
            };
            assert_eq!(record.error_code, "Lambda.ProcessingFailedStatus");
            assert!(
                record
                    .lambda_arn
                    .ends_with(":function:streamlake-transform")
            );
            let raw = STANDARD.decode(&record.raw_data).unwrap();
            reasons.push(
                stack
                    .config()
                    .dataset
                    .normalize(&raw, arrival)
                    .unwrap_err()
                    .to_string(),
            );
            *failed.entry(raw).or_default() += 1;
        }
    }
    assert_eq!(failed, malformed);
    // The reasons are where they are on AWS: in the transform's (JSON) log, with the
    // record's id, shard and sequence number.
    let logged = failure_log(&stack.log_dir().join("streamlake-transform.log"));
    assert!(
        logged
            .iter()
            .all(|f| ["record_id", "shard_id", "sequence_number"]
                .iter()
                .all(|k| f[k].as_str().is_some_and(|v| !v.is_empty()))),
        "{logged:?}"
    );
    let mut logged: Vec<String> = logged
        .iter()
        .map(|f| f["reason"].as_str().unwrap().to_owned())
        .collect();
    logged.sort();
    reasons.sort();
    assert_eq!(logged, reasons);

    // The consumer's dead letters: each malformed record once, with its reason.
    let mut dead: HashMap<Vec<u8>, u32> = HashMap::new();
    for (key, body) in read_prefix(clients, bucket, CONSUMER_DEAD_LETTER_PREFIX)
        .await
        .unwrap()
    {
        let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let raw = STANDARD
            .decode(record["rawData"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            record["reason"],
            stack
                .config()
                .dataset
                .normalize(&raw, arrival)
                .unwrap_err()
                .to_string()
        );
        assert!(key.ends_with(&format!(
            "/{}.json",
            record["sequenceNumber"].as_str().unwrap()
        )));
        *dead.entry(raw).or_default() += 1;
    }
    assert_eq!(dead, malformed);

    // The Lambdas' metrics (EMF lines in their logs) count the same records.
    let metric = |log: &str, name: &str| -> f64 {
        std::fs::read_to_string(stack.log_dir().join(log))
            .unwrap()
            .lines()
            .filter_map(Metrics::from_emf)
            .filter_map(|m| m.get(name))
            .sum()
    };
    let malformed_count = malformed.values().sum::<u32>() as f64;
    let valid_count = expected.values().sum::<u32>() as f64;
    let transform = "streamlake-transform.log";
    assert_eq!(metric(transform, "RecordsIn"), entries.len() as f64);
    assert_eq!(metric(transform, "RecordsOk"), valid_count);
    assert_eq!(metric(transform, "RecordsFailed"), malformed_count);
    let consumer = "streamlake-consumer.log";
    assert_eq!(metric(consumer, "RecordsIn"), entries.len() as f64);
    assert_eq!(metric(consumer, "RecordsFailed"), malformed_count);
    assert_eq!(metric(consumer, "DeadLetters"), malformed_count);
    assert_eq!(metric(consumer, "RowsFailed"), 0.0);
    // The stack keeps the same series, as CloudWatch does.
    let series = stack.lambda_metrics();
    for (function, log) in [
        ("streamlake-transform", transform),
        ("streamlake-consumer", consumer),
    ] {
        for name in ["RecordsIn", "RecordsOk", "RecordsFailed"] {
            let kept = &series[function][name];
            assert_eq!(kept.total.sum, metric(log, name), "{function} {name}");
            let per_second: f64 = kept.per_second.values().map(|s| s.sum).sum();
            assert_eq!(per_second, kept.total.sum, "{function} {name}");
        }
    }

    // DynamoDB: one row per (table, station, day) with every datatype merged.
    let mut rows = 0;
    for ((table, station, date), values) in &expected_rows {
        let item = clients
            .dynamodb
            .get_item()
            .table_name(table)
            .key("stationid", AttributeValue::S(station.clone()))
            .key("date", AttributeValue::S(date.clone()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_else(|| panic!("row {table}/{station}/{date} is missing"));
        for (datatype, value) in values {
            let stored: f64 = item[datatype].as_n().unwrap().parse().unwrap();
            assert_eq!(stored, *value, "{table}/{station}/{date}/{datatype}");
        }
        rows += 1;
    }
    let counts = streamlake::harness::demo::count(clients, stack.config())
        .await
        .unwrap();
    assert_eq!(counts.rows.values().sum::<u64>(), rows);
    let bwi = clients
        .dynamodb
        .get_item()
        .table_name("Temperature")
        .key("stationid", AttributeValue::S("GHCND:USW00093721".into()))
        .key("date", AttributeValue::S("2022-01-01".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(s(&bwi["StationName"]), "BWI, MD US");
    assert!(
        bwi.contains_key("TMAX") && !bwi.contains_key("TMIN"),
        "TMIN of 2021-12-31T22:00Z is on Dec 31"
    );

    assert_eq!(stack.mapping_stats().discarded, 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parquet_and_gzip_lakes_hold_every_valid_record_once() {
    for format in [
        streamlake_core::layout::OutputFormat::Parquet,
        streamlake_core::layout::OutputFormat::NdjsonGzip,
    ] {
        let mut config = StackConfig::new(default_state_dir());
        config.buffer_interval = Duration::from_secs(1);
        config.output_format = format;
        let stack = LocalStack::start(config)
            .await
            .expect("the local stack starts");
        let entries: Vec<Entry> = WeatherGenerator::new(GeneratorConfig {
            seed: 3,
            start: NaiveDate::from_ymd_opt(2021, 10, 30).unwrap(),
            error_rate: 0.05,
        })
        .take(300)
        .map(Entry::from)
        .collect();
        let producer = Producer::new(
            stack.clients().kinesis.clone(),
            ProducerConfig::new(&stack.config().stream),
        );
        producer.send(entries.clone(), |_| {}).await.unwrap();
        stack
            .wait_settled(300, Duration::from_secs(240))
            .await
            .unwrap();

        let mut expected: BTreeMap<(PartitionKeys, String, String, String), u32> = BTreeMap::new();
        for e in &entries {
            if let Ok(o) = weather(&e.data, from_epoch_millis(0)) {
                let key = (
                    o.partition(),
                    o.stationid.to_string(),
                    o.datatype.to_string(),
                    o.value.to_string(),
                );
                *expected.entry(key).or_default() += 1;
            }
        }
        let mut delivered: BTreeMap<(PartitionKeys, String, String, String), u32> = BTreeMap::new();
        for (key, body) in read_prefix(stack.clients(), &stack.config().bucket, DATA_ROOT)
            .await
            .unwrap()
        {
            assert!(key.ends_with(format.extension()), "{key}");
            if format == streamlake_core::layout::OutputFormat::Parquet {
                let batches = streamlake_core::formats::read_parquet(&key, &body).unwrap();
                assert_eq!(
                    batches[0].schema(),
                    streamlake_core::columnar::arrow_schema(&stack.config().dataset),
                    "{key}"
                );
            }
            let partition = PartitionKeys::from_path(&key).unwrap();
            let (records, unreadable) =
                streamlake_core::formats::read_records(&key, &body).unwrap();
            assert_eq!(unreadable, 0);
            for r in records {
                let k = (
                    partition,
                    r["stationid"].as_str().unwrap().to_owned(),
                    r["datatype"].as_str().unwrap().to_owned(),
                    r["value"].as_f64().unwrap().to_string(),
                );
                *delivered.entry(k).or_default() += 1;
            }
        }
        assert_eq!(delivered, expected, "{format}");
        stack.stop().await;
    }
}
