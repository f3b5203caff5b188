//! The pure transformation: Firehose event in, response out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use streamlake_core::PartitionKeys;
use streamlake_core::dataset::Dataset;
use streamlake_core::time::from_epoch_millis;

use crate::event::FirehoseEvent;
use crate::response::{ResponseWriter, TransformResult};

/// Counts of one invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransformStats {
    /// Records returned `Ok`.
    pub ok: usize,
    /// Records returned `ProcessingFailed`.
    pub failed: usize,
    /// Decoded input bytes.
    pub bytes_in: usize,
    /// Output bytes of `Ok` records (before base64).
    pub bytes_out: usize,
}

/// A record that could not be transformed: what finds it again, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure<'e> {
    /// The record's `recordId` in the invocation.
    pub record_id: &'e str,
    /// The source shard (Kinesis source only).
    pub shard_id: Option<&'e str>,
    /// The record's sequence number in its shard (Kinesis source only).
    pub sequence_number: Option<&'e str>,
    /// Arrival time, epoch milliseconds.
    pub arrival_ms: Option<i64>,
    /// Why it failed, naming the field at fault.
    pub reason: String,
}

impl RecordFailure<'_> {
    /// Logs the failure as `record failed` with its fields. Firehose writes the original
    /// record to `processing-failed/` with its own `errorCode`/`errorMessage`, not the
    /// function's reason: this log line is where the reason is found on AWS.
    /// <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>
    pub fn log(&self) {
        tracing::warn!(
            record_id = self.record_id,
            shard_id = self.shard_id,
            sequence_number = self.sequence_number,
            arrival_ms = self.arrival_ms,
            reason = %self.reason,
            "record failed"
        );
    }
}

/// Reads a Firehose event from its JSON body and transforms it against `dataset` (see
/// [`transform`]).
///
/// Only a body that is not a Firehose event at all is an error.
pub fn transform_json(
    body: &str,
    dataset: &Dataset,
) -> Result<(Box<RawValue>, TransformStats), serde_json::Error> {
    let event: FirehoseEvent<'_> = serde_json::from_str(body)?;
    Ok(transform(&event, dataset, |failure| failure.log()))
}

/// Transforms every record of `event` into the JSON response Firehose expects, each
/// record read and written as `dataset` says; never fails as a whole. Each record that
/// fails is returned `ProcessingFailed` with its original data, and handed to
/// `on_failure` with its reason.
pub fn transform<'e>(
    event: &'e FirehoseEvent<'_>,
    dataset: &Dataset,
    on_failure: impl FnMut(RecordFailure<'e>),
) -> (Box<RawValue>, TransformStats) {
    transform_with(
        event,
        |data, arrival, line| {
            dataset
                .normalize_into(data, arrival, line)
                .map_err(|e| e.to_string())
        },
        on_failure,
    )
}

/// [`transform`] with any record function: `normalize(data, arrival, line)` appends the
/// record's NDJSON line to `line` and returns its partition, or says why it cannot.
pub fn transform_with<'e>(
    event: &'e FirehoseEvent<'_>,
    mut normalize: impl FnMut(&[u8], DateTime<Utc>, &mut Vec<u8>) -> Result<PartitionKeys, String>,
    mut on_failure: impl FnMut(RecordFailure<'e>),
) -> (Box<RawValue>, TransformStats) {
    let mut stats = TransformStats::default();
    let input_size: usize = event
        .records
        .iter()
        .map(|r| r.data.len() + r.record_id.len())
        .sum();
    let mut out = ResponseWriter::with_capacity(input_size + input_size / 2 + 64);
    let mut raw = Vec::new();
    let mut line = Vec::new();
    for record in &event.records {
        raw.clear();
        line.clear();
        let arrival = record
            .approximate_arrival_timestamp
            .map_or_else(Utc::now, from_epoch_millis);
        let outcome = match STANDARD.decode_vec(record.data.as_bytes(), &mut raw) {
            Err(e) => Err(format!("data is not valid base64: {e}")),
            Ok(()) => normalize(&raw, arrival, &mut line),
        };
        stats.bytes_in += raw.len();
        match outcome {
            Ok(keys) => {
                stats.ok += 1;
                stats.bytes_out += line.len();
                out.record(&record.record_id, TransformResult::Ok, &line, Some(keys));
            }
            Err(reason) => {
                stats.failed += 1;
                let source = record.kinesis_record_metadata.as_ref();
                on_failure(RecordFailure {
                    record_id: &record.record_id,
                    shard_id: source.map(|m| m.shard_id.as_ref()),
                    sequence_number: source.map(|m| m.sequence_number.as_ref()),
                    arrival_ms: record.approximate_arrival_timestamp,
                    reason,
                });
                out.failed(&record.record_id, &record.data);
            }
        }
    }
    (out.finish(), stats)
}
