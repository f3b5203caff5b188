//! The Firehose data-transformation event and response on the wire, and the error
//! records Firehose writes under the error prefix.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::kinesis_source::StreamRecord;

/// The invocation event, as Firehose sends it for a Kinesis stream source.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformEvent<'a> {
    pub invocation_id: String,
    pub delivery_stream_arn: &'a str,
    pub source_kinesis_stream_arn: &'a str,
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
    pub kinesis_record_metadata: KinesisRecordMetadata<'a>,
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
            kinesis_record_metadata: KinesisRecordMetadata {
                shard_id: &record.shard_id,
                partition_key: &record.partition_key,
                approximate_arrival_timestamp: arrival,
                sequence_number: &record.sequence_number,
                subsequence_number: 0,
            },
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

/// A record under the error prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRecord {
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
