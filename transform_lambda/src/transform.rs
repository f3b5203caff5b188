//! The pure transformation: Firehose event in, response out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::Serialize;
use serde_json::value::RawValue;
use streamlake_core::normalize;
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

/// What a failed record's response data holds.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailedData<'a> {
    error_message: &'a str,
    raw_data: &'a str,
}

/// Reads a Firehose event from its JSON body and transforms it (see [`transform`]).
///
/// Only a body that is not a Firehose event at all is an error.
pub fn transform_json(body: &str) -> Result<(Box<RawValue>, TransformStats), serde_json::Error> {
    let event: FirehoseEvent<'_> = serde_json::from_str(body)?;
    Ok(transform(&event))
}

/// Transforms every record of `event` into the JSON response Firehose expects; never
/// fails as a whole.
pub fn transform(event: &FirehoseEvent<'_>) -> (Box<RawValue>, TransformStats) {
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
            Ok(()) => normalize(&raw, arrival)
                .map(|o| {
                    o.write_ndjson(&mut line);
                    o.partition()
                })
                .map_err(|e| e.to_string()),
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
                tracing::warn!(record_id = %record.record_id, %reason, "record failed");
                let failed = FailedData {
                    error_message: &reason,
                    raw_data: &record.data,
                };
                let json = serde_json::to_vec(&failed).expect("strings serialize");
                out.record(
                    &record.record_id,
                    TransformResult::ProcessingFailed,
                    &json,
                    None,
                );
            }
        }
    }
    (out.finish(), stats)
}
