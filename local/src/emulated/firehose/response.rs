//! What Firehose makes of a transform's response: each input record matched to its
//! response record by `recordId` and checked (`result`, base64 `data`, the partition keys
//! the prefix needs), as the data transformation page describes
//! (<https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use streamlake_core::layout::{ErrorOutputType, PrefixContext, PrefixTemplate};

use super::wire::{ResponseRecord, TransformResponse};

/// The outcome of one record of a delivery.
pub(super) enum Outcome {
    /// Written under `prefix` with the function's `data`.
    Delivered { prefix: String, data: Vec<u8> },
    /// Dropped on purpose by the function (counted).
    Dropped,
    /// Written to the error output.
    Failed(Failure),
}

/// Why a record goes to the error output, and which one.
pub(super) struct Failure {
    /// The error output (`processing-failed`, `partitioning-failed`, ...).
    pub(super) output: ErrorOutputType,
    /// Its `errorCode`.
    pub(super) code: String,
    /// Its `errorMessage`.
    pub(super) message: String,
    /// Invocations made (`attemptsMade`).
    pub(super) attempts: u32,
}

impl Failure {
    /// A processing failure (`errorCode` from the Lambda step).
    pub(super) fn processing(code: &str, message: impl Into<String>, attempts: u32) -> Self {
        Self {
            output: ErrorOutputType::ProcessingFailed,
            code: code.to_owned(),
            message: message.into(),
            attempts,
        }
    }
}

/// Matches a response to its records, as Firehose checks it.
pub(super) fn check(
    ids: &[String],
    response: &[u8],
    attempts: u32,
    prefix: &PrefixTemplate,
) -> Vec<Outcome> {
    let parsed: TransformResponse = match serde_json::from_slice(response) {
        Ok(r) => r,
        Err(e) => {
            let message =
                format!("the function's response is not a Firehose transformation response: {e}");
            return ids
                .iter()
                .map(|_| {
                    Outcome::Failed(Failure::processing(
                        "Lambda.JsonProcessingException",
                        &message,
                        attempts,
                    ))
                })
                .collect();
        }
    };
    let mut by_id: HashMap<&str, Vec<&ResponseRecord>> = HashMap::new();
    for r in &parsed.records {
        by_id
            .entry(r.record_id.as_deref().unwrap_or_default())
            .or_default()
            .push(r);
    }
    ids.iter()
        .map(|id| match by_id.get(id.as_str()).map(Vec::as_slice) {
            None | Some([]) => Outcome::Failed(Failure::processing(
                "Lambda.MissingRecordId",
                format!("record {id} is missing from the function's response"),
                attempts,
            )),
            Some([_, _, ..]) => Outcome::Failed(Failure::processing(
                "Lambda.DuplicatedRecordId",
                format!("record {id} appears more than once in the function's response"),
                attempts,
            )),
            Some([r]) => outcome(r, attempts, prefix),
        })
        .collect()
}

fn outcome(r: &ResponseRecord, attempts: u32, prefix: &PrefixTemplate) -> Outcome {
    let data = r.data.as_deref().map(|d| STANDARD.decode(d));
    match (r.result.as_deref(), data) {
        (Some("Ok"), Some(Ok(data))) => {
            let keys: Vec<(&str, &str)> = r
                .metadata
                .as_ref()
                .and_then(|m| m.partition_keys.as_ref())
                .map(|k| k.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                .unwrap_or_default();
            let ctx = PrefixContext {
                lambda_keys: &keys,
                error_output_type: None,
                arrival: Utc::now(),
            };
            match prefix.evaluate(&ctx) {
                Ok(prefix) => Outcome::Delivered { prefix, data },
                Err(e) => Outcome::Failed(Failure {
                    output: ErrorOutputType::PartitioningFailed,
                    code: "DynamicPartitioning.MetadataExtractionFailed".into(),
                    message: e.to_string(),
                    attempts,
                }),
            }
        }
        (Some("Ok"), _) => Outcome::Failed(Failure::processing(
            "Lambda.InvalidData",
            "an Ok record's data is missing or not valid base64",
            attempts,
        )),
        (Some("Dropped"), _) => Outcome::Dropped,
        // Firehose does not read the data of a `ProcessingFailed` record: the error
        // record holds its own message and the original data; the function's reason
        // is in the function's logs.
        // https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html
        (Some("ProcessingFailed"), _) => Outcome::Failed(Failure::processing(
            "Lambda.ProcessingFailedStatus",
            "the function returned the record with result ProcessingFailed (its logs hold the reason)",
            attempts,
        )),
        (other, _) => Outcome::Failed(Failure::processing(
            "Lambda.InvalidResult",
            format!("result {other:?} is not Ok, Dropped or ProcessingFailed"),
            attempts,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> PrefixTemplate {
        PrefixTemplate::parse("data/year=!{partitionKeyFromLambda:year}/").unwrap()
    }

    fn codes(outcomes: &[Outcome]) -> Vec<String> {
        outcomes
            .iter()
            .map(|o| match o {
                Outcome::Delivered { prefix, data } => {
                    format!("{prefix} {}", String::from_utf8_lossy(data))
                }
                Outcome::Dropped => "dropped".into(),
                Outcome::Failed(f) => f.code.clone(),
            })
            .collect()
    }

    #[test]
    fn matches_records_by_id_and_checks_each() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e", "f"].map(String::from).to_vec();
        let ok = STANDARD.encode(b"{}\n");
        let response = serde_json::json!({ "records": [
            { "recordId": "a", "result": "Ok", "data": ok,
              "metadata": { "partitionKeys": { "year": "2021" } } },
            { "recordId": "b", "result": "Dropped" },
            { "recordId": "c", "result": "ProcessingFailed", "data": ok },
            { "recordId": "d", "result": "Ok", "data": "not base64!" },
            { "recordId": "e", "result": "Ok", "data": ok },
            { "recordId": "e", "result": "Ok", "data": ok },
            { "recordId": "z", "result": "Ok", "data": ok },
        ]});
        let outcomes = check(&ids, response.to_string().as_bytes(), 2, &prefix());
        assert_eq!(
            codes(&outcomes),
            [
                "data/year=2021/ {}\n",
                "dropped",
                "Lambda.ProcessingFailedStatus",
                "Lambda.InvalidData",
                "Lambda.DuplicatedRecordId",
                "Lambda.MissingRecordId",
            ]
        );
        let Outcome::Failed(failure) = &outcomes[5] else {
            unreachable!()
        };
        assert_eq!(failure.attempts, 2);
        assert!(
            failure.message.contains("record f is missing"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn a_record_without_the_prefix_keys_fails_partitioning() {
        let response = serde_json::json!({ "records": [
            { "recordId": "a", "result": "Ok", "data": STANDARD.encode(b"x") },
        ]});
        let outcomes = check(&["a".into()], response.to_string().as_bytes(), 1, &prefix());
        let Outcome::Failed(failure) = &outcomes[0] else {
            panic!("delivered")
        };
        assert_eq!(failure.output, ErrorOutputType::PartitioningFailed);
        assert_eq!(failure.code, "DynamicPartitioning.MetadataExtractionFailed");
    }

    #[test]
    fn a_response_that_is_not_one_fails_every_record() {
        let outcomes = check(&["a".into(), "b".into()], b"{\"no\": 1", 4, &prefix());
        assert_eq!(codes(&outcomes), ["Lambda.JsonProcessingException"; 2]);
        let outcomes = check(
            &["a".into()],
            br#"{"records":[{"recordId":"a","result":"Maybe"}]}"#,
            1,
            &prefix(),
        );
        assert_eq!(codes(&outcomes), ["Lambda.InvalidResult"]);
    }
}
