//! Kinesis consumer Lambda for streamlake: weather observations into DynamoDB.
//!
//! Each batch is decoded and normalized with the one schema of [`streamlake_core`],
//! routed by datatype (by default `PRCP`/`SNOW` into `Precipitation`, `TMAX`/`TMIN`
//! into `Temperature`; `STREAMLAKE_ROUTING` changes it), and merged per row: one
//! conditional `UpdateItem` per (table, station, day) sets every datatype value the batch
//! holds for that row, plus `StationName`, each with the sequence number of the record
//! that set it, never replacing a newer value with an older one.
//!
//! Failure behaviour, so that a shard never stalls and nothing is lost silently:
//! - an invalid record is logged with its sequence number and reason, and written to the
//!   dead-letter location (`STREAMLAKE_DEAD_LETTER`, `s3://bucket/prefix/`); it is never
//!   retried, unless that write fails;
//! - a datatype without a route is counted and skipped;
//! - throttled and transient writes are retried with backoff and jitter within the
//!   invocation's time budget; a row that still fails is reported in `batchItemFailures`
//!   with the lowest sequence number that contributed to it, so the event source mapping
//!   retries from there.

pub mod config;
pub mod dead_letter;
pub mod plan;
pub mod write;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent};
use streamlake_core::seqnum;
use tokio::time::Instant;

pub use config::{ConfigError, ConsumerConfig};
pub use plan::{BatchPlan, InputRecord, RowKey, RowUpdate, plan_batch};
pub use write::{WriteOptions, WriteOutcome, apply};

/// The AWS clients the consumer uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB, for the rows.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3, for the dead-letter location.
    pub s3: aws_sdk_s3::Client,
}

/// The Lambda handler: plans the batch, writes it, and reports what must be retried.
pub async fn handler(
    clients: &Clients,
    config: &ConsumerConfig,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    let deadline = budget(event.context.deadline);
    let records = &event.payload.records;
    let plan = plan_batch(
        records.iter().map(|r| InputRecord {
            sequence_number: &r.kinesis.sequence_number,
            partition_key: &r.kinesis.partition_key,
            data: &r.kinesis.data.0,
            arrival: r.kinesis.approximate_arrival_timestamp.0,
        }),
        &config.routing,
    );
    for invalid in &plan.invalid {
        tracing::warn!(sequence_number = %invalid.sequence_number, reason = %invalid.reason, "invalid record");
    }
    let shard_id = records
        .first()
        .and_then(|r| r.event_id.as_deref())
        .and_then(|id| id.split_once(':'))
        .map_or("unknown-shard", |(shard, _)| shard);
    let dead_letters = async {
        match &config.dead_letter {
            Some(dl) if !plan.invalid.is_empty() => {
                dl.write(
                    &clients.s3,
                    shard_id,
                    &plan.invalid,
                    config.write_concurrency,
                )
                .await
            }
            _ => Vec::new(),
        }
    };
    let options = WriteOptions::new(config.write_concurrency, deadline);
    let (outcome, dead_letter_failures) =
        tokio::join!(apply(&clients.dynamodb, &plan, options), dead_letters);
    tracing::info!(
        records = records.len(),
        rows = plan.updates.len(),
        written = outcome.written,
        stale = outcome.stale,
        requests = outcome.requests,
        retries = outcome.retries,
        failed_rows = outcome.failed.len(),
        invalid = plan.invalid.len(),
        unrouted = plan.unrouted,
        "batch processed"
    );
    let mut response = KinesisEventResponse::default();
    let failed = outcome
        .failed
        .iter()
        .chain(&dead_letter_failures)
        .map(String::as_str);
    if let Some(lowest) = seqnum::min(failed) {
        response.add_failure(lowest);
    }
    Ok(response)
}

/// The instant after which no retry should start: the invocation's deadline minus a
/// margin to report the result (a tenth of the time left, at least half a second).
fn budget(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let left = Duration::from_millis(
        u64::try_from(u128::from(deadline_ms).saturating_sub(now_ms)).unwrap_or(0),
    );
    let margin = (left / 10).max(Duration::from_millis(500));
    Instant::now() + left.saturating_sub(margin)
}
