//! The Lambda event source mapping for a Kinesis stream, played locally.
//!
//! Per shard, in order: records are read into batches (batch size and batching window),
//! sent to the consumer as the Kinesis event Lambda sends, and the shard's checkpoint
//! advances only past what succeeded. With `ReportBatchItemFailures`, the response's
//! lowest reported sequence number is where the next batch starts; an empty list is
//! success; a null or empty identifier (or one not in the batch) fails the whole batch.
//! A batch that keeps failing is retried `max_retries` times, then discarded with a
//! logged, counted record of what was skipped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use streamlake_core::seqnum;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clients::Clients;
use crate::error::StackError;
use crate::kinesis_source::{ShardReader, StartingPosition, StreamRecord, list_shards};
use crate::lambda_host::{LambdaFunction, MAX_PAYLOAD_BYTES};

/// Configuration of the mapping.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Stream name.
    pub stream: String,
    /// Stream ARN (`eventSourceARN`).
    pub stream_arn: String,
    /// Records per batch (Lambda: 1-10,000, default 100).
    pub batch_size: usize,
    /// How long to gather records before invoking (Lambda: 0-300 s, default 0).
    pub batching_window: Duration,
    /// Where reading starts.
    pub starting_position: StartingPosition,
    /// Retries of a failing batch before it is discarded (`None`: until it succeeds).
    pub max_retries: Option<u32>,
    /// Whether the function reports partial batch failures.
    pub report_batch_item_failures: bool,
    /// Region (`awsRegion`).
    pub region: String,
    /// Execution role ARN (`invokeIdentityArn`).
    pub role_arn: String,
}

/// Counters of the mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingStats {
    /// Records read from the stream.
    pub records_read: u64,
    /// Records the checkpoint moved past after the function succeeded with them.
    pub succeeded: u64,
    /// Records skipped after the retries ran out.
    pub discarded: u64,
    /// Invocations (retries included).
    pub invocations: u64,
    /// Invocations that failed, or reported failed items.
    pub failed_invocations: u64,
}

impl MappingStats {
    /// Whether every record read has been settled.
    pub fn settled(&self) -> bool {
        self.succeeded + self.discarded == self.records_read
    }
}

/// A running event source mapping.
pub struct EventSourceMapping {
    stats: Arc<Mutex<MappingStats>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl EventSourceMapping {
    /// Starts polling every shard.
    pub async fn start(
        config: MappingConfig,
        clients: &Clients,
        function: Arc<LambdaFunction>,
    ) -> Result<Self, StackError> {
        let stats = Arc::new(Mutex::new(MappingStats::default()));
        let (stop, stopped) = watch::channel(false);
        let config = Arc::new(config);
        let mut tasks = Vec::new();
        for shard in list_shards(&clients.kinesis, &config.stream).await? {
            let poller = ShardPoller {
                reader: ShardReader::new(
                    clients.kinesis.clone(),
                    &config.stream,
                    &shard,
                    config.starting_position.clone(),
                ),
                config: config.clone(),
                function: function.clone(),
                stats: stats.clone(),
                pending: VecDeque::new(),
            };
            tasks.push(tokio::spawn(poller.run(stopped.clone())));
        }
        Ok(Self { stats, stop, tasks })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MappingStats {
        self.stats.lock().expect("not poisoned").clone()
    }

    /// Stops polling after the batches in progress.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

struct ShardPoller {
    reader: ShardReader,
    config: Arc<MappingConfig>,
    function: Arc<LambdaFunction>,
    stats: Arc<Mutex<MappingStats>>,
    /// Records read but not yet past the checkpoint, in order.
    pending: VecDeque<StreamRecord>,
}

/// What an invocation's result means for the batch.
#[derive(Debug, PartialEq, Eq)]
enum BatchResult {
    /// Every record succeeded.
    Success,
    /// The records before this index succeeded; retry from it.
    RetryFrom(usize),
    /// The whole batch failed.
    Failed(String),
}

impl ShardPoller {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut retries = 0u32;
        while !*stop.borrow() {
            if let Err(e) = self.fill().await {
                tracing::warn!(
                    shard = self.reader.shard_id(),
                    "event source mapping cannot read: {e}"
                );
            }
            if self.pending.is_empty() {
                let _ = tokio::time::timeout(Duration::from_millis(250), stop.changed()).await;
                continue;
            }
            let batch = self.batch_len();
            let result = self.invoke(batch).await;
            self.stats.lock().expect("not poisoned").invocations += 1;
            let failed = match result {
                BatchResult::Success => {
                    self.advance(batch, false);
                    retries = 0;
                    continue;
                }
                BatchResult::RetryFrom(index) => {
                    self.advance(index, false);
                    format!("the function reported a failure at record {index} of the batch")
                }
                BatchResult::Failed(reason) => reason,
            };
            self.stats.lock().expect("not poisoned").failed_invocations += 1;
            retries += 1;
            if self.config.max_retries.is_some_and(|max| retries > max) {
                let skipped = self.batch_len();
                tracing::error!(
                    shard = self.reader.shard_id(),
                    start_sequence_number = %self.pending[0].sequence_number,
                    end_sequence_number = %self.pending[skipped - 1].sequence_number,
                    records = skipped,
                    "retries exhausted, discarding the batch: {failed}"
                );
                self.advance(skipped, true);
                retries = 0;
            } else {
                tracing::warn!(
                    shard = self.reader.shard_id(),
                    retry = retries,
                    "batch failed, retrying: {failed}"
                );
                let backoff = Duration::from_millis(100 * u64::from(retries.min(20)));
                let _ = tokio::time::timeout(backoff, stop.changed()).await;
            }
        }
    }

    /// Moves the checkpoint past the first `n` pending records.
    fn advance(&mut self, n: usize, discarded: bool) {
        self.pending.drain(..n);
        let mut stats = self.stats.lock().expect("not poisoned");
        if discarded {
            stats.discarded += n as u64;
        } else {
            stats.succeeded += n as u64;
        }
    }

    /// Reads until a batch is full, the window closes, or the shard has nothing more.
    async fn fill(&mut self) -> Result<(), StackError> {
        let deadline = Instant::now() + self.config.batching_window;
        loop {
            let want = self.config.batch_size.saturating_sub(self.pending.len());
            if want == 0 {
                return Ok(());
            }
            let records = self
                .reader
                .read(want.try_into().unwrap_or(i32::MAX))
                .await?;
            if !records.is_empty() {
                self.stats.lock().expect("not poisoned").records_read += records.len() as u64;
                self.pending.extend(records);
                continue;
            }
            if Instant::now() >= deadline || self.reader.is_closed() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200).min(deadline - Instant::now())).await;
        }
    }

    /// Records in the next batch: up to the batch size and the payload limit.
    fn batch_len(&self) -> usize {
        let mut size = 64;
        let mut n = 0;
        for r in self.pending.iter().take(self.config.batch_size) {
            size += r.data.len().div_ceil(3) * 4
                + r.partition_key.len()
                + 2 * r.sequence_number.len()
                + 512;
            if n > 0 && size > MAX_PAYLOAD_BYTES {
                break;
            }
            n += 1;
        }
        n
    }

    async fn invoke(&self, batch: usize) -> BatchResult {
        let records: Vec<&StreamRecord> = self.pending.iter().take(batch).collect();
        let event = KinesisEvent {
            records: records.iter().map(|r| self.event_record(r)).collect(),
        };
        let body = serde_json::to_vec(&event).expect("the event serializes");
        match self.function.invoke(body).await {
            Err(e) => BatchResult::Failed(e.to_string()),
            Ok(response) if !self.config.report_batch_item_failures => {
                let _ = response;
                BatchResult::Success
            }
            Ok(response) => interpret(&response, &records),
        }
    }

    fn event_record<'a>(&'a self, r: &'a StreamRecord) -> EventRecord<'a> {
        EventRecord {
            kinesis: KinesisData {
                kinesis_schema_version: "1.0",
                partition_key: &r.partition_key,
                sequence_number: &r.sequence_number,
                data: STANDARD.encode(&r.data),
                approximate_arrival_timestamp: r.arrival.timestamp_millis() as f64 / 1000.0,
            },
            event_source: "aws:kinesis",
            event_version: "1.0",
            event_id: format!("{}:{}", r.shard_id, r.sequence_number),
            event_name: "aws:kinesis:record",
            invoke_identity_arn: &self.config.role_arn,
            aws_region: &self.config.region,
            event_source_arn: &self.config.stream_arn,
        }
    }
}

/// Reads a partial batch response.
fn interpret(response: &[u8], records: &[&StreamRecord]) -> BatchResult {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Response {
        #[serde(default)]
        batch_item_failures: Option<Vec<Failure>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Failure {
        #[serde(default)]
        item_identifier: Option<String>,
    }
    // A response that is not an object (e.g. `null`) means success without failures.
    let Ok(Some(parsed)) = serde_json::from_slice::<Option<Response>>(response) else {
        return BatchResult::Success;
    };
    let failures = parsed.batch_item_failures.unwrap_or_default();
    if failures.is_empty() {
        return BatchResult::Success;
    }
    let mut lowest: Option<&str> = None;
    for f in &failures {
        let Some(id) = f.item_identifier.as_deref().filter(|id| !id.is_empty()) else {
            return BatchResult::Failed("a batch item failure has no identifier".into());
        };
        if !records.iter().any(|r| r.sequence_number == id) {
            return BatchResult::Failed(format!(
                "reported sequence number {id} is not in the batch"
            ));
        }
        lowest = seqnum::min(lowest.into_iter().chain([id]));
    }
    let lowest = lowest.expect("at least one failure");
    let index = records
        .iter()
        .position(|r| r.sequence_number == lowest)
        .expect("checked above");
    BatchResult::RetryFrom(index)
}

#[derive(Serialize)]
struct KinesisEvent<'a> {
    #[serde(rename = "Records")]
    records: Vec<EventRecord<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventRecord<'a> {
    kinesis: KinesisData<'a>,
    event_source: &'static str,
    event_version: &'static str,
    #[serde(rename = "eventID")]
    event_id: String,
    event_name: &'static str,
    invoke_identity_arn: &'a str,
    aws_region: &'a str,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KinesisData<'a> {
    kinesis_schema_version: &'static str,
    partition_key: &'a str,
    sequence_number: &'a str,
    data: String,
    /// Epoch seconds with a fraction, as Lambda sends it.
    approximate_arrival_timestamp: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn records(seqs: &[&str]) -> Vec<StreamRecord> {
        seqs.iter()
            .map(|s| StreamRecord {
                shard_id: "shardId-000000000000".into(),
                sequence_number: (*s).to_owned(),
                partition_key: "k".into(),
                data: b"{}".to_vec(),
                arrival: Utc::now(),
            })
            .collect()
    }

    #[test]
    fn reads_partial_batch_responses_as_lambda_does() {
        let owned = records(&["8", "9", "10", "11"]);
        let batch: Vec<&StreamRecord> = owned.iter().collect();
        assert_eq!(
            interpret(br#"{"batchItemFailures":[]}"#, &batch),
            BatchResult::Success
        );
        assert_eq!(interpret(b"null", &batch), BatchResult::Success);
        assert_eq!(interpret(b"{}", &batch), BatchResult::Success);
        assert_eq!(
            interpret(
                br#"{"batchItemFailures":[{"itemIdentifier":"11"},{"itemIdentifier":"9"}]}"#,
                &batch
            ),
            BatchResult::RetryFrom(1),
            "the lowest sequence number wins, compared as a number"
        );
        assert!(matches!(
            interpret(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &batch),
            BatchResult::Failed(_)
        ));
        assert!(matches!(
            interpret(
                br#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
                &batch
            ),
            BatchResult::Failed(_)
        ));
        assert!(matches!(
            interpret(br#"{"batchItemFailures":[{"itemIdentifier":"7"}]}"#, &batch),
            BatchResult::Failed(_)
        ));
    }

    #[test]
    fn events_have_the_shape_lambda_sends() {
        let owned = records(&["49590338271490256608559692538361571095921575989136588898"]);
        let record = EventRecord {
            kinesis: KinesisData {
                kinesis_schema_version: "1.0",
                partition_key: &owned[0].partition_key,
                sequence_number: &owned[0].sequence_number,
                data: STANDARD.encode(&owned[0].data),
                approximate_arrival_timestamp: 1_633_046_401.25,
            },
            event_source: "aws:kinesis",
            event_version: "1.0",
            event_id: "shardId-000000000000:1".into(),
            event_name: "aws:kinesis:record",
            invoke_identity_arn: "arn:aws:iam::123456789012:role/r",
            aws_region: "us-east-1",
            event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        };
        let json = serde_json::to_value(KinesisEvent {
            records: vec![record],
        })
        .unwrap();
        let r = &json["Records"][0];
        assert_eq!(r["eventID"], "shardId-000000000000:1");
        assert_eq!(
            r["eventSourceARN"],
            "arn:aws:kinesis:us-east-1:123456789012:stream/s"
        );
        assert_eq!(
            r["kinesis"]["approximateArrivalTimestamp"],
            1_633_046_401.25
        );
        assert_eq!(r["kinesis"]["data"], "e30=");
    }
}
