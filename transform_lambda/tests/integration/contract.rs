//! The Firehose transformation contract, checked on a fixture of a real event shape
//! (Kinesis stream source) and against `aws_lambda_events`' types.

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use streamlake_core::dataset::Dataset;
use transform_lambda::{FirehoseEvent, TransformStats, transform, transform_json};

const FIXTURE: &str = include_str!("../fixtures/firehose_kinesis_source.json");

fn fixture() -> FirehoseEvent<'static> {
    serde_json::from_str(FIXTURE).unwrap()
}

/// Transforms an event and reads the response JSON back.
fn run(event: FirehoseEvent<'_>) -> (Value, TransformStats) {
    let (raw, stats) = transform(&event, &Dataset::weather(), |_| {});
    (serde_json::from_str(raw.get()).unwrap(), stats)
}

fn decoded(data: &str) -> String {
    String::from_utf8(STANDARD.decode(data).unwrap()).unwrap()
}

#[test]
fn one_result_per_record_with_the_same_record_id() {
    let event = fixture();
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|r| r.record_id.to_string())
        .collect();
    let (response, stats) = run(event);
    let out: Vec<String> = response["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recordId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(out, ids);
    assert_eq!((stats.ok, stats.failed), (2, 4));
}

#[test]
fn ok_records_are_ndjson_lines_with_partition_keys() {
    let (json, _) = run(fixture());
    let first = &json["records"][0];
    assert_eq!(first["result"], "Ok");
    assert_eq!(
        first["metadata"]["partitionKeys"],
        serde_json::json!({"year": "2021", "month": "10", "day": "01"})
    );
    let line = decoded(first["data"].as_str().unwrap());
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let row: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(row["stationid"], "GHCND:US1MDAA0001");
    assert_eq!(row["station_name"], "RIDGE 1.0 N, MD US");
    assert_eq!(row["observed_at"], "2021-10-01T00:00:00Z");
    assert_eq!(row["date"], "2021-10-01");
    assert_eq!(row["ingested_at"], "2021-10-01T00:00:01Z");

    // An offset moves the record to the next UTC day, month and year.
    let second = &json["records"][1];
    assert_eq!(
        second["metadata"]["partitionKeys"],
        serde_json::json!({"year": "2022", "month": "01", "day": "01"})
    );
    let row: Value = serde_json::from_str(&decoded(second["data"].as_str().unwrap())).unwrap();
    assert_eq!(row["datatype"], "TMIN");
    assert_eq!(row["value"], -2.8);
    assert_eq!(row["observed_at"], "2022-01-01T03:30:00Z");
}

#[test]
fn bad_records_fail_alone_returning_their_original_data_and_reporting_the_reason() {
    let event = fixture();
    let mut failures = Vec::new();
    let (raw, _) = transform(&event, &Dataset::weather(), |f| failures.push(f));
    let response: Value = serde_json::from_str(raw.get()).unwrap();
    let expected = [
        (2, "not valid base64"),
        (3, "UTF-8"),
        (4, "not valid JSON"),
        (5, "field `value`"),
    ];
    assert_eq!(failures.len(), expected.len());
    for ((i, reason), failure) in expected.into_iter().zip(&failures) {
        let (input, r) = (&event.records[i], &response["records"][i]);
        assert_eq!(r["result"], "ProcessingFailed", "record {i}");
        assert!(r.get("metadata").is_none());
        // The data as it came, even when it is not base64: Firehose keeps the original.
        assert_eq!(r["data"], input.data.as_ref(), "record {i}");
        // The reason, with what finds the record again.
        assert!(failure.reason.contains(reason), "record {i}: {failure:?}");
        assert_eq!(failure.record_id, input.record_id);
        let source = input.kinesis_record_metadata.as_ref().unwrap();
        assert_eq!(
            failure.sequence_number,
            Some(source.sequence_number.as_ref())
        );
        assert_eq!(failure.shard_id, Some(source.shard_id.as_ref()));
        assert_eq!(failure.arrival_ms, input.approximate_arrival_timestamp);
    }
}

#[test]
fn the_event_reads_what_aws_sends_and_the_response_is_what_aws_reads() {
    // AWS's own event type and ours read the fixture the same way (without the record
    // whose data is deliberately not base64, which AWS's type refuses as a whole).
    let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["records"].as_array_mut().unwrap().remove(2);
    let aws_event: KinesisFirehoseEvent = serde_json::from_value(v.clone()).unwrap();
    let body = v.to_string();
    let ours: FirehoseEvent<'_> = serde_json::from_str(&body).unwrap();
    assert_eq!(ours.records.len(), aws_event.records.len());
    for (a, o) in aws_event.records.iter().zip(&ours.records) {
        assert_eq!(a.record_id.as_deref(), Some(o.record_id.as_ref()));
        assert_eq!(STANDARD.encode(&a.data.0), o.data.as_ref());
        // aws_lambda_events goes through f64 seconds and can lose the last millisecond.
        let theirs = a.approximate_arrival_timestamp.0.timestamp_millis();
        assert!((theirs - o.approximate_arrival_timestamp.unwrap()).abs() <= 1);
    }

    // The response (its Ok records: AWS's type insists on metadata) reads as AWS's type.
    let (response, _) = run(ours);
    let ok_only: Vec<&Value> = response["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "Ok")
        .collect();
    let json = serde_json::json!({ "records": ok_only });
    let theirs: KinesisFirehoseResponse = serde_json::from_value(json).unwrap();
    assert_eq!(theirs.records[0].result.as_deref(), Some("Ok"));
    assert_eq!(theirs.records[0].metadata.partition_keys["month"], "10");
}

#[test]
fn an_empty_event_gives_an_empty_response() {
    let (raw, stats) =
        transform_json(r#"{"invocationId":"x","records":[]}"#, &Dataset::weather()).unwrap();
    assert_eq!(raw.get(), r#"{"records":[]}"#);
    assert_eq!(stats.ok + stats.failed, 0);
}

#[test]
fn the_metrics_line_of_a_known_event_carries_its_counts() {
    let (response, stats) = run(fixture());
    let records = response["records"].as_array().unwrap();
    let line = transform_lambda::metrics("streamlake-transform", &stats, 7.5).to_emf();
    let m = streamlake_core::metrics::Metrics::from_emf(&line).expect("an EMF line");
    assert_eq!(m.function_name, "streamlake-transform");
    let count = |result: &str| records.iter().filter(|r| r["result"] == result).count() as f64;
    for (name, value) in [
        ("RecordsIn", records.len() as f64),
        ("RecordsOk", count("Ok")),
        ("RecordsFailed", count("ProcessingFailed")),
        ("RecordsDropped", count("Dropped")),
        ("BytesIn", stats.bytes_in as f64),
        ("BytesOut", stats.bytes_out as f64),
        ("Duration", 7.5),
    ] {
        assert_eq!(m.get(name), Some(value), "{name}");
    }
    assert_eq!(m.get("RecordsIn"), Some(6.0));
}
