//! PutRecords failing entry by entry inside an HTTP 200, as Kinesis answers when some
//! records of a request are throttled or fail internally.
//!
//! The failed entries are taken out of the request before it reaches the emulator (a
//! failed entry is not written to the stream), and put back into the emulator's answer at
//! their places with `ErrorCode` and `ErrorMessage`; `FailedRecordCount` counts them.
//! <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>

use serde_json::{Value, json};

use super::Injector;

/// The per-entry error codes PutRecords documents.
const ENTRY_ERRORS: [(&str, &str); 2] = [
    (
        "ProvisionedThroughputExceededException",
        "Rate exceeded for shard (injected by the streamlake fault proxy).",
    ),
    (
        "InternalFailure",
        "Internal service failure (injected by the streamlake fault proxy).",
    ),
];

/// A PutRecords request with some entries failed.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialFailure {
    /// Per entry of the request: the error it fails with, or `None` if it goes through.
    errors: Vec<Option<(&'static str, &'static str)>>,
}

impl PartialFailure {
    /// Fails a random non-empty subset of the request's entries (each with even chance),
    /// or `None` when the body is not a PutRecords request with entries.
    pub fn choose(injector: &Injector, request: &[u8]) -> Option<Self> {
        let entries = records(&serde_json::from_slice(request).ok()?)?.len();
        if entries == 0 {
            return None;
        }
        let errors = injector.fail_entries(entries, &ENTRY_ERRORS);
        Some(Self { errors })
    }

    /// Whether every entry fails (nothing to send to the emulator).
    pub fn fails_all(&self) -> bool {
        self.errors.iter().all(Option::is_some)
    }

    /// The request without the failed entries.
    pub fn request(&self, request: &[u8]) -> Option<Vec<u8>> {
        let mut body: Value = serde_json::from_slice(request).ok()?;
        let kept: Vec<Value> = records(&body)?
            .iter()
            .zip(&self.errors)
            .filter(|(_, e)| e.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        body["Records"] = Value::Array(kept);
        serde_json::to_vec(&body).ok()
    }

    /// The answer to the whole request: the emulator's answer for the entries it got
    /// (`None` when every entry failed), with the failed entries put back in place.
    pub fn response(&self, upstream: Option<&[u8]>) -> Option<Vec<u8>> {
        let mut body: Value = match upstream {
            Some(bytes) => serde_json::from_slice(bytes).ok()?,
            None => json!({ "FailedRecordCount": 0, "Records": [] }),
        };
        let mut answered = records(&body)?.clone().into_iter();
        let mut failed = body["FailedRecordCount"].as_u64().unwrap_or(0);
        let mut merged = Vec::with_capacity(self.errors.len());
        for error in &self.errors {
            match error {
                Some((code, message)) => {
                    failed += 1;
                    merged.push(json!({ "ErrorCode": code, "ErrorMessage": message }));
                }
                None => merged.push(answered.next()?),
            }
        }
        body["Records"] = Value::Array(merged);
        body["FailedRecordCount"] = json!(failed);
        serde_json::to_vec(&body).ok()
    }
}

fn records(body: &Value) -> Option<&Vec<Value>> {
    body.get("Records")?.as_array()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{Call, FaultPlan};

    fn request(n: usize) -> Vec<u8> {
        let records: Vec<Value> = (0..n)
            .map(|i| json!({ "Data": "e30=", "PartitionKey": format!("k{i}") }))
            .collect();
        serde_json::to_vec(&json!({ "StreamName": "s", "Records": records })).unwrap()
    }

    #[test]
    fn failed_entries_are_not_sent_and_come_back_in_place() {
        let plan = FaultPlan::default().with(Call::KinesisPutRecords, 1.0);
        let injector = plan.injector(Call::KinesisPutRecords).unwrap();
        for _ in 0..50 {
            let sent = request(5);
            let failure = PartialFailure::choose(&injector, &sent).unwrap();
            let kept: Value = serde_json::from_slice(&failure.request(&sent).unwrap()).unwrap();
            let kept = kept["Records"].as_array().unwrap();
            let failed = failure.errors.iter().filter(|e| e.is_some()).count();
            assert!(failed >= 1);
            assert_eq!(kept.len(), 5 - failed);
            // The emulator answers the kept entries in order.
            let upstream: Vec<Value> = kept
                .iter()
                .map(|r| json!({ "SequenceNumber": r["PartitionKey"], "ShardId": "shardId-0" }))
                .collect();
            let upstream = json!({ "FailedRecordCount": 0, "Records": upstream });
            let answer = failure
                .response(
                    (!failure.fails_all())
                        .then(|| serde_json::to_vec(&upstream).unwrap())
                        .as_deref(),
                )
                .unwrap();
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(answer["FailedRecordCount"], json!(failed));
            let entries = answer["Records"].as_array().unwrap();
            assert_eq!(entries.len(), 5);
            for (i, (entry, error)) in entries.iter().zip(&failure.errors).enumerate() {
                match error {
                    Some((code, _)) => assert_eq!(entry["ErrorCode"], json!(code)),
                    None => assert_eq!(entry["SequenceNumber"], json!(format!("k{i}"))),
                }
            }
        }
    }

    #[test]
    fn a_body_that_is_not_put_records_is_left_alone() {
        let plan = FaultPlan::default().with(Call::KinesisPutRecords, 1.0);
        let injector = plan.injector(Call::KinesisPutRecords).unwrap();
        assert!(PartialFailure::choose(&injector, b"not json").is_none());
        assert!(PartialFailure::choose(&injector, &request(0)).is_none());
    }
}
