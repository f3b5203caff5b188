//! Firehose data-transformation Lambda for streamlake.
//!
//! Every record of a Firehose invocation is decoded, validated and normalized against
//! the dataset file ([`streamlake_core::dataset`]), read once at cold start; the response
//! holds exactly one record per input record, with the same `recordId`:
//!
//! - `Ok`: the data is one NDJSON line ending in `\n`, and `metadata.partitionKeys`
//!   holds `year`, `month`, `day` (and `hour` in an hourly lake) of the record's UTC
//!   event time, or of its arrival when the dataset has no event time (for Firehose
//!   dynamic partitioning);
//! - `ProcessingFailed`: the data is not base64, UTF-8, JSON, or a record of the dataset. The
//!   response returns the original data; Firehose writes the record under
//!   `processing-failed/`. The reason is logged (`record failed`, with the `recordId`,
//!   shard and sequence number): that is where Firehose users find it, since Firehose's
//!   error record carries its own message, not the function's. One bad record never
//!   fails the invocation.
//!
//! The event is decoded the way this work needs (`data` stays a base64 string until the
//! record is processed, so one undecodable record fails alone) and the response is
//! written straight into one JSON buffer: see `BENCHMARKS.md`.

mod event;
mod response;
mod transform;

pub use event::{FirehoseEvent, FirehoseRecord, KinesisRecordMetadata};
pub use response::TransformResult;
pub use transform::{RecordFailure, TransformStats, transform, transform_json, transform_with};

use std::time::Instant;

use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::value::RawValue;
use streamlake_core::dataset::Dataset;
use streamlake_core::metrics::{Metrics, Unit};

/// The Lambda handler: transforms the event against `dataset`, logs the outcome and
/// prints its metrics (one EMF line, [`metrics`]).
///
/// The event is taken as raw JSON and read with borrowed strings; the response is
/// returned as ready-made JSON (`{"records":[...]}`).
pub async fn handler(
    dataset: &Dataset,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Box<RawValue>, Error> {
    let started = Instant::now();
    let (response, stats) = transform_json(event.payload.get(), dataset)?;
    tracing::info!(
        ok = stats.ok,
        failed = stats.failed,
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        "transformed batch"
    );
    let duration_ms = started.elapsed().as_secs_f64() * 1e3;
    let m = metrics(&event.context.env_config.function_name, &stats, duration_ms);
    println!("{}", m.to_emf());
    Ok(response)
}

/// An invocation's metrics: records in, ok, failed (`ProcessingFailed`) and dropped (none:
/// the transform drops nothing), bytes in and out, and its duration.
pub fn metrics(function_name: &str, stats: &TransformStats, duration_ms: f64) -> Metrics {
    Metrics::new(function_name, Utc::now().timestamp_millis())
        .with("RecordsIn", Unit::Count, (stats.ok + stats.failed) as f64)
        .with("RecordsOk", Unit::Count, stats.ok as f64)
        .with("RecordsFailed", Unit::Count, stats.failed as f64)
        .with("RecordsDropped", Unit::Count, 0)
        .with("BytesIn", Unit::Bytes, stats.bytes_in as f64)
        .with("BytesOut", Unit::Bytes, stats.bytes_out as f64)
        .with("Duration", Unit::Milliseconds, duration_ms)
}
