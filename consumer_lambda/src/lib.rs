//! Kinesis consumer Lambda for streamlake: weather observations into DynamoDB.
//!
//! Each batch is decoded and normalized with the one schema of [`streamlake_core`],
//! routed by datatype (by default `PRCP`/`SNOW` into `Precipitation`, `TMAX`/`TMIN`
//! into `Temperature`), and merged per row: one `UpdateItem` per (table, station, day)
//! sets every datatype value the batch holds for that row, plus `StationName`.
//!
//! Failure behaviour, so that a shard never stalls and nothing is lost silently:
//! - an invalid record is logged with its sequence number and reason, counted, and
//!   skipped (retrying it could never succeed);
//! - a datatype without a route is counted and skipped;
//! - a row whose write fails (after the SDK's retries) is reported in
//!   `batchItemFailures` with the lowest sequence number that contributed to it, so the
//!   event source mapping retries from there.

pub mod config;
pub mod plan;
pub mod write;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent};

pub use config::{ConfigError, ConsumerConfig};
pub use plan::{BatchPlan, InputRecord, RowKey, RowUpdate, plan_batch};
pub use write::{WriteOutcome, apply};

/// The Lambda handler: plans the batch, writes it, and reports the rows that failed.
pub async fn handler(
    client: &aws_sdk_dynamodb::Client,
    config: &ConsumerConfig,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    let records = event.payload.records.iter().map(|r| InputRecord {
        sequence_number: &r.kinesis.sequence_number,
        data: &r.kinesis.data.0,
        arrival: r.kinesis.approximate_arrival_timestamp.0,
    });
    let plan = plan_batch(records, &config.routing);
    for invalid in &plan.invalid {
        tracing::warn!(sequence_number = %invalid.sequence_number, reason = %invalid.reason, "invalid record skipped");
    }
    let outcome = apply(client, &plan, config.write_concurrency).await;
    tracing::info!(
        records = event.payload.records.len(),
        rows = plan.updates.len(),
        written = outcome.written,
        failed_rows = outcome.failed.len(),
        invalid = plan.invalid.len(),
        unrouted = plan.unrouted,
        "batch processed"
    );
    let mut response = KinesisEventResponse::default();
    response.set_failures(outcome.failed_sequence_numbers());
    Ok(response)
}
