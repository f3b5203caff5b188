//! `PutRecord` and `PutRecordBatch` of the Direct PUT delivery streams the stack plays,
//! answered by the stack's HTTP front (the other delivery streams' calls go on to the
//! emulator). Firehose's limits and answers:
//! - at most 500 records and 4 MiB per `PutRecordBatch`, at most 1,000 KiB (1,024,000
//!   bytes) per record, before base64: a request over a limit is refused whole
//!   (`ValidationException`, `InvalidArgumentException`) and nothing of it is taken;
//! - every accepted record gets a `RecordId`; a `PutRecordBatch` whose entries partly
//!   fail answers HTTP 200 with `FailedPutCount` and, per failed entry, `ErrorCode`
//!   (`ServiceUnavailableException`, `InternalFailure`) and `ErrorMessage`; only the
//!   failed entries are to be sent again.
//!
//! <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>
//! <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecord.html>

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::emulated::firehose::direct_put::DirectPutInlet;
use crate::faults::Injector;

/// Most records of one `PutRecordBatch`.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Most bytes of one record, before base64.
pub const MAX_RECORD_BYTES: usize = 1_024_000;
/// Most bytes of one `PutRecordBatch`'s records, before base64.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The per-entry errors `PutRecordBatch` documents.
const ENTRY_ERRORS: [(&str, &str); 2] = [
    (
        "ServiceUnavailableException",
        "Slow down. (injected by the streamlake fault proxy)",
    ),
    (
        "InternalFailure",
        "Internal service failure. (injected by the streamlake fault proxy)",
    ),
];

/// A Firehose data-plane call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// One record.
    PutRecord,
    /// Up to 500 records.
    PutRecordBatch,
}

impl Operation {
    /// The operation of an `X-Amz-Target` header, if it is one of these.
    pub fn of_target(target: Option<&str>) -> Option<Self> {
        match target? {
            "Firehose_20150804.PutRecord" => Some(Self::PutRecord),
            "Firehose_20150804.PutRecordBatch" => Some(Self::PutRecordBatch),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Request {
    delivery_stream_name: String,
    #[serde(default)]
    record: Option<Entry>,
    #[serde(default)]
    records: Option<Vec<Entry>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    #[serde(default)]
    data: Option<String>,
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body (an error has `__type` and `message`).
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    /// An error of the AWS JSON protocol.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "__type": code, "message": message.into() }),
        }
    }
}

/// The delivery stream a request names, if its body parses.
pub fn stream_name(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Request>(body)
        .ok()
        .map(|r| r.delivery_stream_name)
}

/// The records of a request, checked against Firehose's limits, or the error that refuses
/// the whole request.
pub fn records(operation: Operation, body: &[u8]) -> Result<Vec<Vec<u8>>, Answer> {
    let request: Request = serde_json::from_slice(body)
        .map_err(|e| Answer::error(400, "SerializationException", e.to_string()))?;
    let (entries, field) = match operation {
        Operation::PutRecord => (request.record.into_iter().collect(), "record"),
        Operation::PutRecordBatch => (request.records.unwrap_or_default(), "records"),
    };
    let validation = |message: String| {
        Answer::error(
            400,
            "ValidationException",
            format!("1 validation error detected: {message}"),
        )
    };
    if entries.is_empty() {
        return Err(validation(format!(
            "Value null at '{field}' failed to satisfy constraint: Member must not be null"
        )));
    }
    if entries.len() > MAX_BATCH_RECORDS {
        return Err(validation(format!(
            "Value at 'records' failed to satisfy constraint: Member must have length less \
             than or equal to {MAX_BATCH_RECORDS} (got {})",
            entries.len()
        )));
    }
    let mut records = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = match operation {
            Operation::PutRecord => "record.data".to_owned(),
            Operation::PutRecordBatch => format!("records.{}.member.data", i + 1),
        };
        let data = entry
            .data
            .ok_or_else(|| validation(format!("Value null at '{at}' must not be null")))
            .and_then(|d| {
                STANDARD
                    .decode(d)
                    .map_err(|e| Answer::error(400, "SerializationException", format!("{at}: {e}")))
            })?;
        if data.len() > MAX_RECORD_BYTES {
            return Err(validation(format!(
                "Value of {} bytes at '{at}' failed to satisfy constraint: Member must have \
                 length less than or equal to {MAX_RECORD_BYTES}",
                data.len()
            )));
        }
        records.push(data);
    }
    let total: usize = records.iter().map(Vec::len).sum();
    if total > MAX_BATCH_BYTES {
        return Err(Answer::error(
            400,
            "InvalidArgumentException",
            format!("Records size exceeds 4 MB limit ({total} bytes)"),
        ));
    }
    Ok(records)
}

/// Takes a request's records into `inlet` and answers as Firehose does; with `failing`,
/// a random non-empty subset of a batch's entries fails instead (not taken in).
pub async fn answer(
    operation: Operation,
    body: &[u8],
    inlet: &DirectPutInlet,
    failing: Option<&Injector>,
) -> Answer {
    let records = match records(operation, body) {
        Ok(records) => records,
        Err(answer) => return answer,
    };
    let errors = match failing {
        Some(injector) => injector.fail_entries(records.len(), &ENTRY_ERRORS),
        None => vec![None; records.len()],
    };
    let taken: Vec<Vec<u8>> = records
        .into_iter()
        .zip(&errors)
        .filter(|(_, e)| e.is_none())
        .map(|(r, _)| r)
        .collect();
    let ids = if taken.is_empty() {
        Vec::new()
    } else {
        match inlet.put(taken).await {
            Ok(ids) => ids,
            Err(stopped) => {
                return Answer::error(500, "ServiceUnavailableException", stopped.to_string());
            }
        }
    };
    if operation == Operation::PutRecord {
        return Answer::ok(json!({ "RecordId": ids[0], "Encrypted": false }));
    }
    let mut ids = ids.into_iter();
    let responses: Vec<Value> = errors
        .iter()
        .map(|e| match e {
            Some((code, message)) => json!({ "ErrorCode": code, "ErrorMessage": message }),
            None => json!({ "RecordId": ids.next().expect("one id per record taken") }),
        })
        .collect();
    let failed = errors.iter().filter(|e| e.is_some()).count();
    Answer::ok(json!({
        "FailedPutCount": failed,
        "Encrypted": false,
        "RequestResponses": responses,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[&[u8]]) -> Vec<u8> {
        let records: Vec<Value> = records
            .iter()
            .map(|r| json!({ "Data": STANDARD.encode(r) }))
            .collect();
        serde_json::to_vec(&json!({ "DeliveryStreamName": "d", "Records": records })).unwrap()
    }

    fn code(answer: &Answer) -> &str {
        answer.body["__type"].as_str().unwrap_or_default()
    }

    #[test]
    fn a_batch_within_the_limits_gives_its_records_in_order() {
        let body = batch(&[b"a\n", b"", b"c"]);
        assert_eq!(stream_name(&body).as_deref(), Some("d"));
        assert_eq!(
            records(Operation::PutRecordBatch, &body).unwrap(),
            [b"a\n".to_vec(), Vec::new(), b"c".to_vec()]
        );
        let one =
            serde_json::to_vec(&json!({"DeliveryStreamName": "d", "Record": {"Data": "eA=="}}))
                .unwrap();
        assert_eq!(
            records(Operation::PutRecord, &one).unwrap(),
            [b"x".to_vec()]
        );
    }

    #[test]
    fn each_limit_refuses_the_whole_request_with_the_documented_error() {
        let small = [b'x'; 10];
        let too_many: Vec<&[u8]> = vec![&small[..]; MAX_BATCH_RECORDS + 1];
        let answer = records(Operation::PutRecordBatch, &batch(&too_many)).unwrap_err();
        assert_eq!((answer.status, code(&answer)), (400, "ValidationException"));

        let at_limit: Vec<&[u8]> = vec![&small[..]; MAX_BATCH_RECORDS];
        assert!(records(Operation::PutRecordBatch, &batch(&at_limit)).is_ok());

        let big = vec![b'x'; MAX_RECORD_BYTES + 1];
        let answer = records(Operation::PutRecordBatch, &batch(&[b"ok", &big])).unwrap_err();
        assert_eq!(code(&answer), "ValidationException");
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("records.2.member.data")
        );
        let largest = vec![b'x'; MAX_RECORD_BYTES];
        assert!(records(Operation::PutRecordBatch, &batch(&[&largest])).is_ok());

        let five: Vec<&[u8]> = vec![&largest[..]; 5];
        let answer = records(Operation::PutRecordBatch, &batch(&five)).unwrap_err();
        assert_eq!(code(&answer), "InvalidArgumentException");

        let answer = records(Operation::PutRecordBatch, &batch(&[])).unwrap_err();
        assert_eq!(code(&answer), "ValidationException");
        let answer = records(Operation::PutRecordBatch, b"{").unwrap_err();
        assert_eq!(code(&answer), "SerializationException");
    }
}
