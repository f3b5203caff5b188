//! The Firehose transformation event, as the work needs it.
//!
//! Field names follow the AWS contract (and `aws_lambda_events`' types, which the tests
//! check them against). Strings borrow from the request body, and `data` stays base64
//! text until its record is processed, so a record whose data is not base64 fails alone
//! instead of failing the invocation.

use std::borrow::Cow;

use serde::Deserialize;

/// A Firehose data-transformation invocation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseEvent<'a> {
    /// Identifier of this invocation.
    #[serde(borrow, default)]
    pub invocation_id: Cow<'a, str>,
    /// ARN of the delivery stream.
    #[serde(borrow, default)]
    pub delivery_stream_arn: Cow<'a, str>,
    /// ARN of the source Kinesis stream, when the source is a stream.
    #[serde(borrow, default)]
    pub source_kinesis_stream_arn: Option<Cow<'a, str>>,
    /// Records to transform.
    #[serde(borrow)]
    pub records: Vec<FirehoseRecord<'a>>,
}

/// One record to transform.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecord<'a> {
    /// Identifier to return with the result.
    #[serde(borrow)]
    pub record_id: Cow<'a, str>,
    /// Arrival time in Firehose (or in the source stream), epoch milliseconds.
    #[serde(default)]
    pub approximate_arrival_timestamp: Option<i64>,
    /// The record, base64-encoded.
    #[serde(borrow)]
    pub data: Cow<'a, str>,
    /// Where the record was read from, when the source is a Kinesis stream.
    #[serde(borrow, default)]
    pub kinesis_record_metadata: Option<KinesisRecordMetadata<'a>>,
}

/// The source stream's coordinates of a record (Kinesis source only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisRecordMetadata<'a> {
    /// The shard the record was read from.
    #[serde(borrow, default)]
    pub shard_id: Cow<'a, str>,
    /// The record's sequence number in its shard.
    #[serde(borrow, default)]
    pub sequence_number: Cow<'a, str>,
}
