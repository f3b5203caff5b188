//! Kinesis consumer Lambda for streamlake: records into the DynamoDB tables their dataset
//! file names (`[dynamodb]`).
//!
//! Each batch is read against the dataset (the one definition of a record's shape), each
//! record goes to the tables whose `when` it passes, and the batch is merged per row: one
//! conditional `UpdateItem` per row sets every attribute the batch holds for it, each
//! with the sequence number of the record that set it, never replacing a newer value with
//! an older one.
//!
//! Failure behaviour, so that a shard never stalls and nothing is lost silently:
//! - an invalid record is logged with its sequence number and reason, and written to the
//!   dead-letter location (`STREAMLAKE_DEAD_LETTER`, `s3://bucket/prefix/`); it is never
//!   retried, unless that write fails;
//! - a record no table takes is counted and skipped;
//! - throttled and transient writes are retried with backoff and jitter within the
//!   invocation's time budget; a row that still fails is reported in `batchItemFailures`
//!   with the lowest sequence number that contributed to it, so the event source mapping
//!   retries from there.
//!
//! With tumbling windows (`TumblingWindowInSeconds` on the mapping), each batch is also
//! folded into the window's state, and the window's final invocation adds the aggregates
//! to the summary tables (`[[dynamodb.summaries]]`, see [`window`]).

pub mod config;
pub mod dead_letter;
pub mod metrics;
pub mod plan;
pub mod tables;
pub mod window;
pub mod write;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::streams::KinesisBatchItemFailure;
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};
use serde::{Deserialize, Serialize};
use streamlake_core::{kpl, seqnum};
use tokio::time::Instant;
use window::WindowState;

pub use config::{ConfigError, ConsumerConfig};
pub use plan::{BatchPlan, InputRecord, RowKey, RowUpdate, plan_batch};
pub use tables::Tables;
pub use write::{WriteOptions, WriteOutcome, apply};

/// The AWS clients the consumer uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB, for the rows.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3, for the dead-letter location.
    pub s3: aws_sdk_s3::Client,
}

/// The event: the Kinesis records, and with tumbling windows the window's fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerEvent {
    /// The records (none in a window's final invocation).
    #[serde(rename = "Records", default)]
    pub records: Vec<KinesisEventRecord>,
    /// The tumbling window, when the mapping has one.
    #[serde(default)]
    pub window: Option<TimeWindow>,
    /// The window's state, as the previous invocation returned it.
    #[serde(default)]
    pub state: Option<WindowState>,
    /// Whether the window is closing: time to write its aggregates.
    #[serde(default)]
    pub is_final_invoke_for_window: bool,
}

/// A tumbling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TimeWindow {
    /// Start, inclusive.
    pub start: DateTime<Utc>,
    /// End, exclusive.
    pub end: DateTime<Utc>,
}

/// The response: the records to retry from, and with tumbling windows the new state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerResponse {
    /// At most one: the lowest sequence number to retry from.
    pub batch_item_failures: Vec<KinesisBatchItemFailure>,
    /// The window's state after this invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<WindowState>,
}

/// The Lambda handler: plans the batch, writes it, and reports what must be retried;
/// with tumbling windows, also folds the batch into the window's state, and writes the
/// window's aggregates when it closes.
pub async fn handler(
    clients: &Clients,
    config: &ConsumerConfig,
    event: LambdaEvent<ConsumerEvent>,
) -> Result<ConsumerResponse, Error> {
    let started = Instant::now();
    let deadline = budget(event.context.deadline);
    let function_name = event.context.env_config.function_name.clone();
    let event = event.payload;
    if let (Some(window), true) = (event.window, event.is_final_invoke_for_window) {
        let state = event.state.unwrap_or_default();
        let outcome = window::write_summary(
            &clients.dynamodb,
            &config.tables,
            window.end,
            &state,
            config.write_concurrency,
            deadline,
        )
        .await;
        tracing::info!(
            rows = state.len(),
            written = outcome.written,
            failed = outcome.failed.len(),
            deferred = outcome.deferred,
            end = %window.end,
            "window closed"
        );
        if !outcome.failed.is_empty() || outcome.deferred > 0 {
            // Lambda retries a failed final invocation until it succeeds; the retry
            // writes only the rows this one did not.
            return Err(format!(
                "{} of {} summary rows not written ({} failed, {} left at the time budget)",
                outcome.failed.len() + outcome.deferred,
                state.len(),
                outcome.failed.len(),
                outcome.deferred
            )
            .into());
        }
        return Ok(ConsumerResponse {
            batch_item_failures: Vec::new(),
            state: Some(WindowState::new()),
        });
    }

    let records = &event.records;
    let users = user_records(records);
    let inputs = users.iter().map(|u| InputRecord {
        sequence_number: &u.position,
        partition_key: &u.partition_key,
        data: &u.data,
        arrival: u.arrival,
    });
    let plan = plan_batch(inputs.clone(), &config.tables);
    for invalid in &plan.invalid {
        tracing::warn!(sequence_number = %invalid.sequence_number, reason = %invalid.reason, "invalid record");
    }
    let shard_id = records
        .first()
        .and_then(|r| r.event_id.as_deref())
        .and_then(|id| id.split_once(':'))
        .map_or("unknown-shard", |(shard, _)| shard);
    // `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`
    let stream = records
        .first()
        .and_then(|r| r.event_source_arn.as_deref())
        .and_then(|arn| arn.rsplit_once(":stream/"))
        .map_or("unknown-stream", |(_, name)| name);
    let dead_letters = async {
        match &config.dead_letter {
            Some(dl) if !plan.invalid.is_empty() => {
                dl.write(
                    &clients.s3,
                    stream,
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
        user_records = users.len(),
        rows = plan.updates.len(),
        written = outcome.written,
        stale = outcome.stale,
        requests = outcome.requests,
        reads = outcome.reads,
        retries = outcome.retries,
        failed_rows = outcome.failed.len(),
        invalid = plan.invalid.len(),
        unrouted = plan.unrouted,
        "batch processed"
    );
    let report = metrics::BatchReport {
        records: users.len(),
        bytes_in: records.iter().map(|r| r.kinesis.data.0.len()).sum(),
        last_arrival: records
            .last()
            .map(|r| r.kinesis.approximate_arrival_timestamp.0),
        plan: &plan,
        outcome: &outcome,
        dead_letter_failures: dead_letter_failures.len(),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    println!(
        "{}",
        metrics::batch_metrics(&function_name, Utc::now(), &report).to_emf()
    );
    let failed = outcome
        .failed
        .iter()
        .chain(&dead_letter_failures)
        .map(String::as_str);
    // A user record of an aggregate is retried with its whole Kinesis record: the
    // response names Kinesis records (its earlier user records are written again, as
    // stale no-ops).
    let retry_from = seqnum::min(failed).map(|p| seqnum::kinesis_part(p).to_owned());
    // The window state takes only the records before the first one to retry: the
    // retried records are folded when they succeed.
    let state = event.window.map(|_| {
        let mut state = event.state.clone().unwrap_or_default();
        let done = inputs.filter(|r| {
            retry_from
                .as_deref()
                .is_none_or(|from| seqnum::compare(r.sequence_number, from).is_lt())
        });
        let dataset = config.tables.dataset();
        let records: Vec<_> = done
            .filter_map(|r| dataset.normalize(r.data, r.arrival).ok())
            .collect();
        window::fold(&mut state, &config.tables, &records);
        state
    });
    let mut response = ConsumerResponse {
        batch_item_failures: Vec::new(),
        state,
    };
    if let Some(from) = retry_from {
        let mut failure = KinesisBatchItemFailure::default();
        failure.item_identifier = Some(from);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// A user record of the batch: a Kinesis record, or one record of a KPL aggregate.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Its position: the sequence number, or `SEQ:SUB` inside an aggregate
    /// ([`seqnum::with_subsequence`]); versions and retries are per position.
    pub position: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Arrival of its Kinesis record.
    pub arrival: DateTime<Utc>,
}

/// The user records of a batch, in order: Kinesis records in the KPL aggregated format
/// are de-aggregated, as a Lambda consumer must do itself
/// (<https://docs.aws.amazon.com/streams/latest/dev/kinesis-kpl-consumer-deaggregation.html>);
/// anything else (including an aggregate whose digest fails) is one record.
pub fn user_records(records: &[KinesisEventRecord]) -> Vec<UserRecord> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let k = &r.kinesis;
        let arrival = k.approximate_arrival_timestamp.0;
        match kpl::deaggregate(&k.data.0) {
            Ok(users) => out.extend(users.into_iter().zip(0..).map(|(u, sub)| UserRecord {
                position: seqnum::with_subsequence(&k.sequence_number, sub),
                partition_key: u.partition_key,
                data: u.data,
                arrival,
            })),
            Err(_) => out.push(UserRecord {
                position: k.sequence_number.clone(),
                partition_key: k.partition_key.clone(),
                data: k.data.0.clone(),
                arrival,
            }),
        }
    }
    out
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
