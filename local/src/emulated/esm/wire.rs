//! What the event source mapping sends: the Kinesis event, and the on-failure record.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use streamlake_core::seqnum;

use crate::emulated::kinesis_source::StreamRecord;

/// The event Lambda sends for a batch of Kinesis records.
#[derive(Serialize)]
pub struct KinesisEvent<'a> {
    #[serde(rename = "Records")]
    pub records: Vec<EventRecord<'a>>,
    /// With tumbling windows: the window, its state, and whether this is its final call.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowFields<'a>>,
}

/// A tumbling window's state: what the function returned last.
pub type WindowState = serde_json::Map<String, serde_json::Value>;

/// The fields of an event with tumbling windows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowFields<'a> {
    pub window: WindowRange,
    pub state: &'a WindowState,
    pub shard_id: &'a str,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: &'a str,
    pub is_final_invoke_for_window: bool,
    pub is_window_terminated_early: bool,
}

/// Start and end of a window, RFC 3339.
#[derive(Serialize)]
pub struct WindowRange {
    pub start: String,
    pub end: String,
}

/// The `state` of a response (empty when missing or not an object).
pub fn returned_state(response: &[u8]) -> WindowState {
    serde_json::from_slice::<serde_json::Value>(response)
        .ok()
        .and_then(|v| match v.get("state") {
            Some(serde_json::Value::Object(state)) => Some(state.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// One record of the event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord<'a> {
    pub kinesis: KinesisData<'a>,
    pub event_source: &'static str,
    pub event_version: &'static str,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: &'static str,
    pub invoke_identity_arn: &'a str,
    pub aws_region: &'a str,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: &'a str,
}

/// The Kinesis part of a record.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisData<'a> {
    pub kinesis_schema_version: &'static str,
    pub partition_key: &'a str,
    pub sequence_number: &'a str,
    pub data: String,
    /// Epoch seconds with a fraction, as Lambda sends it.
    pub approximate_arrival_timestamp: f64,
}

impl<'a> EventRecord<'a> {
    /// The event record of a stream record.
    pub fn new(
        r: &'a StreamRecord,
        role_arn: &'a str,
        region: &'a str,
        stream_arn: &'a str,
    ) -> Self {
        Self {
            kinesis: KinesisData {
                kinesis_schema_version: "1.0",
                partition_key: &r.partition_key,
                sequence_number: &r.sequence_number,
                data: STANDARD.encode(&r.data),
                approximate_arrival_timestamp: r.arrival.timestamp_millis() as f64 / 1000.0,
            },
            event_source: "aws:kinesis",
            event_version: "1.0",
            event_id: format!("{}:{}", r.shard_id, r.sequence_number),
            event_name: "aws:kinesis:record",
            invoke_identity_arn: role_arn,
            aws_region: region,
            event_source_arn: stream_arn,
        }
    }
}

/// What an invocation's result means for the batch.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// Every record succeeded.
    Success,
    /// The records before this index succeeded; retry from it.
    RetryFrom(usize),
    /// The whole batch failed; `function_error` when the function itself failed (as
    /// opposed to a partial batch response that fails it whole).
    Failed {
        reason: String,
        function_error: bool,
    },
}

/// Reads a partial batch response (`ReportBatchItemFailures`) as Lambda does: a null or
/// empty response, or a null or empty `batchItemFailures` list, is a complete success; a
/// failure whose `itemIdentifier` is missing, null, empty, not a string or not a sequence
/// number of the batch fails the whole batch, and so does a response that is not a JSON
/// object. Otherwise the batch is retried from the lowest reported sequence number.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>
pub fn interpret(response: &[u8], records: &[&StreamRecord]) -> BatchResult {
    use serde_json::Value;
    let whole = |reason: String| BatchResult::Failed {
        reason,
        function_error: false,
    };
    let value = if response.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice(response) {
            Ok(value) => value,
            Err(e) => return whole(format!("the response is not JSON: {e}")),
        }
    };
    let failures = match &value {
        Value::Null => return BatchResult::Success,
        Value::Object(response) => match response.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchResult::Success,
            Some(Value::Array(failures)) => failures,
            Some(other) => return whole(format!("batchItemFailures is not a list: {other}")),
        },
        other => return whole(format!("the response is not a JSON object: {other}")),
    };
    let mut lowest: Option<&str> = None;
    for failure in failures {
        let Some(id) = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
        else {
            return whole(format!(
                "a batch item failure has no itemIdentifier string: {failure}"
            ));
        };
        if !records.iter().any(|r| r.sequence_number == id) {
            return whole(format!("reported sequence number {id} is not in the batch"));
        }
        lowest = seqnum::min(lowest.into_iter().chain([id]));
    }
    match lowest {
        None => BatchResult::Success,
        Some(lowest) => BatchResult::RetryFrom(
            records
                .iter()
                .position(|r| r.sequence_number == lowest)
                .expect("checked above"),
        ),
    }
}

/// The metadata-only record sent to the on-failure destination.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureRecord {
    pub request_context: RequestContext,
    pub response_context: ResponseContext,
    pub version: String,
    pub timestamp: String,
    #[serde(rename = "KinesisBatchInfo")]
    pub kinesis_batch_info: KinesisBatchInfo,
}

/// Which invocation gave up.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub request_id: String,
    pub function_arn: String,
    /// `RetryAttemptsExhausted` or `RecordAgeExceeded`.
    pub condition: String,
    pub approximate_invoke_count: u32,
}

/// How the last invocation ended.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    pub status_code: u16,
    pub executed_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_error: Option<String>,
}

/// The records given up on: where to find them in the stream.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KinesisBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub approximate_arrival_of_first_record: String,
    pub approximate_arrival_of_last_record: String,
    pub batch_size: usize,
    pub stream_arn: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn records(seqs: &[&str]) -> Vec<StreamRecord> {
        seqs.iter()
            .map(|s| StreamRecord {
                shard_id: "shardId-000000000000".into(),
                sequence_number: (*s).to_owned(),
                partition_key: "k".into(),
                data: b"{}".to_vec(),
                arrival: Utc::now(),
                subsequence_number: None,
            })
            .collect()
    }

    #[test]
    fn reads_partial_batch_responses_as_lambda_does() {
        let owned = records(&["8", "9", "10", "11"]);
        let batch: Vec<&StreamRecord> = owned.iter().collect();
        assert_eq!(
            interpret(br#"{"batchItemFailures":[]}"#, &batch),
            BatchResult::Success
        );
        assert_eq!(interpret(b"null", &batch), BatchResult::Success);
        assert_eq!(interpret(b"{}", &batch), BatchResult::Success);
        assert_eq!(interpret(b"", &batch), BatchResult::Success);
        assert_eq!(
            interpret(br#"{"batchItemFailures":null,"state":{}}"#, &batch),
            BatchResult::Success
        );
        assert_eq!(
            interpret(
                br#"{"batchItemFailures":[{"itemIdentifier":"11"},{"itemIdentifier":"9"}]}"#,
                &batch
            ),
            BatchResult::RetryFrom(1),
            "the lowest sequence number wins, compared as a number"
        );
        for whole in [
            &br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#[..],
            br#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            br#"{"batchItemFailures":[{"itemIdentifier":"7"}]}"#,
            // Malformed: a number, a missing or misspelled key, not a list, not an object.
            br#"{"batchItemFailures":[{"itemIdentifier":123}]}"#,
            br#"{"batchItemFailures":[{}]}"#,
            br#"{"batchItemFailures":[{"itemIdentifer":"9"}]}"#,
            br#"{"batchItemFailures":{"itemIdentifier":"9"}}"#,
            br#"[{"itemIdentifier":"9"}]"#,
            b"\"ok\"",
            b"not json",
        ] {
            assert!(matches!(
                interpret(whole, &batch),
                BatchResult::Failed {
                    function_error: false,
                    ..
                }
            ));
        }
    }

    #[test]
    fn events_have_the_shape_lambda_sends() {
        let owned = records(&["49590338271490256608559692538361571095921575989136588898"]);
        let record = EventRecord::new(
            &owned[0],
            "arn:aws:iam::123456789012:role/r",
            "us-east-1",
            "arn:s",
        );
        let json = serde_json::to_value(KinesisEvent {
            records: vec![record],
            window: None,
        })
        .unwrap();
        let r = &json["Records"][0];
        assert_eq!(
            r["eventID"],
            "shardId-000000000000:49590338271490256608559692538361571095921575989136588898"
        );
        assert_eq!(r["eventSourceARN"], "arn:s");
        assert_eq!(r["kinesis"]["data"], "e30=");
        assert!(r["kinesis"]["approximateArrivalTimestamp"].is_f64());
        // AWS's own type reads it.
        let theirs: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(json).unwrap();
        assert_eq!(theirs.records[0].kinesis.data.0, b"{}");
    }
}
