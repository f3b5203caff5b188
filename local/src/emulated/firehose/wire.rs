//! The Firehose data-transformation event and response on the wire, and the error
//! records Firehose writes under the error prefix.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::emulated::kinesis_source::StreamRecord;

/// The invocation event, as Firehose sends it (the source stream and each record's
/// metadata only for a Kinesis stream source).
/// <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformEvent<'a> {
    pub invocation_id: String,
    pub delivery_stream_arn: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_kinesis_stream_arn: Option<&'a str>,
    pub region: &'a str,
    pub records: Vec<EventRecord<'a>>,
}

/// One record of the event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord<'a> {
    pub record_id: String,
    /// Epoch milliseconds.
    pub approximate_arrival_timestamp: i64,
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinesis_record_metadata: Option<KinesisRecordMetadata<'a>>,
}

/// Where the record came from in the source stream.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisRecordMetadata<'a> {
    pub shard_id: &'a str,
    pub partition_key: &'a str,
    /// Epoch milliseconds.
    pub approximate_arrival_timestamp: i64,
    pub sequence_number: &'a str,
    pub subsequence_number: u64,
}

impl<'a> EventRecord<'a> {
    /// The event record of a stream record, with its record id.
    pub fn new(record_id: String, record: &'a StreamRecord) -> Self {
        let arrival = record.arrival.timestamp_millis();
        Self {
            record_id,
            approximate_arrival_timestamp: arrival,
            data: STANDARD.encode(&record.data),
            kinesis_record_metadata: Some(KinesisRecordMetadata {
                shard_id: &record.shard_id,
                partition_key: &record.partition_key,
                approximate_arrival_timestamp: arrival,
                sequence_number: &record.sequence_number,
                subsequence_number: record.subsequence_number.unwrap_or(0),
            }),
        }
    }

    /// The event record of a Direct PUT record: no Kinesis metadata.
    pub fn direct_put(record_id: String, record: &'a StreamRecord) -> Self {
        Self {
            kinesis_record_metadata: None,
            ..Self::new(record_id, record)
        }
    }
}

/// The function's response.
#[derive(Debug, Deserialize)]
pub struct TransformResponse {
    pub records: Vec<ResponseRecord>,
}

/// One record of the response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseRecord {
    #[serde(default)]
    pub record_id: Option<String>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub metadata: Option<ResponseMetadata>,
}

/// Metadata of a response record.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMetadata {
    #[serde(default)]
    pub partition_keys: Option<HashMap<String, String>>,
}

/// A record Firehose writes under the error prefix, in the shape AWS documents for its
/// error type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorRecord {
    /// Under `processing-failed/` (and `partitioning-failed/`).
    Processing(ProcessingFailedRecord),
    /// Under `format-conversion-failed/`.
    FormatConversion(FormatConversionFailedRecord),
}

impl ErrorRecord {
    /// The error code, whichever the shape.
    pub fn error_code(&self) -> &str {
        match self {
            ErrorRecord::Processing(r) => &r.error_code,
            ErrorRecord::FormatConversion(r) => &r.last_error_code,
        }
    }

    /// The original record, base64.
    pub fn raw_data(&self) -> &str {
        match self {
            ErrorRecord::Processing(r) => &r.raw_data,
            ErrorRecord::FormatConversion(r) => &r.raw_data,
        }
    }
}

/// A record the transform Lambda did not process: Firehose's own `errorCode` and
/// `errorMessage` (for a record the function returned `ProcessingFailed`, not the
/// function's reason, which only its logs hold) and the original data.
/// <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>
///
/// Records that dynamic partitioning could not place are written with the same fields;
/// AWS documents only that the error information comes with the record.
/// <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-error-handling.html>
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessingFailedRecord {
    /// Invocations attempted.
    pub attempts_made: u32,
    /// Epoch milliseconds.
    pub arrival_timestamp: i64,
    pub error_code: String,
    pub error_message: String,
    /// Epoch milliseconds.
    pub attempt_ending_timestamp: i64,
    /// The original record, base64.
    pub raw_data: String,
    pub lambda_arn: String,
}

/// A record that record-format conversion could not read against the table's schema.
/// The page shows `lastErrorCode`/`lastErrorMessage` (its older Markdown source said
/// `ErrorCode`/`ErrorMessage`).
/// <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html>
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormatConversionFailedRecord {
    pub attempts_made: u32,
    /// Epoch milliseconds.
    pub arrival_timestamp: i64,
    pub last_error_code: String,
    pub last_error_message: String,
    /// Epoch milliseconds.
    pub attempt_ending_timestamp: i64,
    /// The record as converted (the transform's output), base64.
    pub raw_data: String,
    /// The source record's sequence number.
    pub sequence_number: String,
    pub sub_sequence_number: u64,
    pub data_catalog_table: DataCatalogTable,
}

/// The Glue table a format conversion read its schema from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataCatalogTable {
    pub catalog_id: String,
    pub database_name: String,
    pub table_name: String,
    pub region: String,
    pub version_id: String,
    pub catalog_arn: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(record: &ErrorRecord) -> Vec<String> {
        let value = serde_json::to_value(record).unwrap();
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn each_error_type_has_the_fields_aws_documents() {
        let processing = ErrorRecord::Processing(ProcessingFailedRecord {
            attempts_made: 4,
            arrival_timestamp: 1,
            error_code: "Lambda.ProcessingFailedStatus".into(),
            error_message: "m".into(),
            attempt_ending_timestamp: 2,
            raw_data: "eA==".into(),
            lambda_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        });
        assert_eq!(
            keys(&processing),
            [
                "arrivalTimestamp",
                "attemptEndingTimestamp",
                "attemptsMade",
                "errorCode",
                "errorMessage",
                "lambdaArn",
                "rawData"
            ]
        );
        let conversion = ErrorRecord::FormatConversion(FormatConversionFailedRecord {
            attempts_made: 1,
            arrival_timestamp: 1,
            last_error_code: "DataFormatConversion.MalformedData".into(),
            last_error_message: "m".into(),
            attempt_ending_timestamp: 2,
            raw_data: "eA==".into(),
            sequence_number: "49".into(),
            sub_sequence_number: 0,
            data_catalog_table: DataCatalogTable {
                catalog_id: "123456789012".into(),
                database_name: "streamlake_lake".into(),
                table_name: "weather".into(),
                region: "us-east-1".into(),
                version_id: "LATEST".into(),
                catalog_arn: "arn:aws:glue:us-east-1:123456789012:catalog".into(),
            },
        });
        assert_eq!(
            keys(&conversion),
            [
                "arrivalTimestamp",
                "attemptEndingTimestamp",
                "attemptsMade",
                "dataCatalogTable",
                "lastErrorCode",
                "lastErrorMessage",
                "rawData",
                "sequenceNumber",
                "subSequenceNumber"
            ]
        );
        // Either shape reads back as itself.
        for record in [processing, conversion] {
            let line = serde_json::to_string(&record).unwrap();
            assert_eq!(serde_json::from_str::<ErrorRecord>(&line).unwrap(), record);
        }
    }
}
