//! The Lambda event source mapping for a Kinesis stream, played locally, as documented.
//!
//! Per shard, records are read in order and dealt to `ParallelizationFactor` lanes by
//! partition key (so a key's records stay in order), each lane making batches (batch
//! size, batching window) and invoking the function with the Kinesis event Lambda sends.
//! - `ReportBatchItemFailures`: the records before the lowest reported sequence number
//!   succeeded; the batch is retried from it. An empty list is success; a null, empty or
//!   unknown identifier fails the whole batch.
//! - A function error fails the whole batch; with `BisectBatchOnFunctionError` the batch
//!   is split in two (without using a retry) until the failing record is alone.
//! - `MaximumRetryAttempts` and `MaximumRecordAgeInSeconds` bound the retries; records
//!   given up on are skipped, and the on-failure destination (an SQS queue) gets the
//!   metadata-only record with `KinesisBatchInfo`.
//! - `TumblingWindowInSeconds`: windows aligned on the arrival time; each batch gets the
//!   window's state, and the final invocation is retried until it succeeds, the lane
//!   waiting meanwhile, as Lambda does; the checkpoint moves past a window's records only
//!   once its final invocation succeeded, so a stop or a crash mid-window reads them
//!   again instead of losing the window's aggregates.
//! - The shard's checkpoint (on disk, when a store is given) only moves past records that
//!   are settled, so a restart resumes where the mapping stopped.

mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use streamlake_core::seqnum;
use streamlake_core::time::Rfc3339;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use wire::{BatchResult, EventRecord, KinesisEvent, interpret};
pub use wire::{FailureRecord, KinesisBatchInfo};

use crate::clients::Clients;
use crate::emulated::checkpoint::CheckpointStore;
use crate::emulated::kinesis_source::{ShardReader, StartingPosition, StreamRecord};
use crate::emulated::lambda_host::{self, Function, InvokeError, MAX_EVENT_RECORDS_BYTES};
use crate::emulated::shard_poller;
use crate::emulated::shutdown::{STOP_GRACE, join_within};
use crate::error::{Report, StackError};

/// Where records given up on are reported.
#[derive(Debug, Clone)]
pub struct OnFailureDestination {
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// Queue URL.
    pub queue_url: String,
}

/// Configuration of the mapping (the `CreateEventSourceMapping` parameters).
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Stream name.
    pub stream: String,
    /// Stream ARN (`eventSourceARN`).
    pub stream_arn: String,
    /// The mapping's settings (batching, retries, windows).
    pub settings: MappingSettings,
    /// Where records given up on are reported.
    pub on_failure: Option<OnFailureDestination>,
    /// Where shard checkpoints are kept.
    pub checkpoints: Option<CheckpointStore>,
    /// Region (`awsRegion`).
    pub region: String,
    /// Execution role ARN (`invokeIdentityArn`).
    pub role_arn: String,
}

impl MappingConfig {
    /// The mapping of `stream` with the default settings ([`MappingSettings::default`]).
    pub fn new(stream: &str, stream_arn: &str, region: &str, role_arn: &str) -> Self {
        Self {
            stream: stream.to_owned(),
            stream_arn: stream_arn.to_owned(),
            settings: MappingSettings::default(),
            on_failure: None,
            checkpoints: None,
            region: region.to_owned(),
            role_arn: role_arn.to_owned(),
        }
    }
}

/// What an event source mapping's API sets: batching, where to start, retries, windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingSettings {
    /// Records per batch (1 to 10,000; Lambda's default 100).
    pub batch_size: usize,
    /// How long to gather records before invoking (0 to 300 s; default 0).
    pub batching_window: Duration,
    /// Where reading starts when there is no checkpoint.
    pub starting_position: StartingPosition,
    /// Retries of a failing batch before it is given up on (`None`: until the records expire).
    pub max_retries: Option<u32>,
    /// Records older than this are given up on (`None`: never).
    pub max_record_age: Option<Duration>,
    /// Split a batch in two when the function fails.
    pub bisect_on_error: bool,
    /// Concurrent batches per shard (1 to 10), order kept per partition key.
    pub parallelization_factor: usize,
    /// Whether the function reports partial batch failures.
    pub report_batch_item_failures: bool,
    /// Tumbling windows of this length (`TumblingWindowInSeconds`, up to 900 s): the
    /// function gets each window's state, and a final invocation when it closes.
    pub tumbling_window: Option<Duration>,
}

impl Default for MappingSettings {
    /// Lambda's defaults, except that retries are bounded (3) and record age too (1 hour)
    /// so that a failing batch cannot hold its shard for days.
    fn default() -> Self {
        Self {
            batch_size: 100,
            batching_window: Duration::ZERO,
            starting_position: StartingPosition::TrimHorizon,
            max_retries: Some(3),
            max_record_age: Some(Duration::from_secs(3600)),
            bisect_on_error: true,
            parallelization_factor: 1,
            report_batch_item_failures: true,
            tumbling_window: None,
        }
    }
}

/// Counters of the mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MappingStats {
    /// Records read from the stream.
    pub records_read: u64,
    /// Records the function succeeded with.
    pub succeeded: u64,
    /// Records given up on (retries or age exhausted).
    pub discarded: u64,
    /// Invocations (retries included).
    pub invocations: u64,
    /// Invocations that failed, or reported failed items.
    pub failed_invocations: u64,
    /// Records sent to the on-failure destination.
    pub on_failure_records: u64,
    /// Age of the last record of the latest settled batch when it was settled, in
    /// milliseconds: Lambda's `IteratorAge` metric for this mapping.
    pub iterator_age_ms: u64,
    /// The largest `iterator_age_ms` so far.
    pub max_iterator_age_ms: u64,
    /// Tumbling windows opened whose final invocation has not succeeded yet: their
    /// records are settled, but their aggregates are not written.
    #[serde(default)]
    pub open_windows: u64,
}

impl MappingStats {
    /// Whether every record read has been settled.
    pub fn settled(&self) -> bool {
        self.succeeded + self.discarded == self.records_read
    }

    /// Records read and not settled (after a stop: read again at the next start).
    pub fn unsettled(&self) -> u64 {
        self.records_read - self.succeeded - self.discarded
    }
}

/// A running event source mapping.
pub struct EventSourceMapping {
    stats: Arc<Mutex<MappingStats>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What every task of the mapping shares.
struct Context {
    config: MappingConfig,
    function: Arc<dyn Function>,
    stats: Arc<Mutex<MappingStats>>,
}

impl EventSourceMapping {
    /// Starts polling every shard.
    pub async fn start(
        config: MappingConfig,
        clients: &Clients,
        function: Arc<dyn Function>,
    ) -> Result<Self, StackError> {
        let stats = Arc::new(Mutex::new(MappingStats::default()));
        let (stop, stopped) = watch::channel(false);
        let readers = shard_poller::readers(
            clients,
            &config.stream,
            function.name(),
            config.checkpoints.as_ref(),
            &config.settings.starting_position,
        )
        .await?;
        let context = Arc::new(Context {
            config,
            function,
            stats: stats.clone(),
        });
        let tasks = readers
            .into_iter()
            .map(|reader| tokio::spawn(run_shard(context.clone(), reader, stopped.clone())))
            .collect();
        Ok(Self { stats, stop, tasks })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MappingStats {
        self.stats.lock().expect("not poisoned").clone()
    }

    /// Stops polling after the batches in progress (their checkpoints are saved), waiting
    /// for them up to [`STOP_GRACE`]; batches still in progress then are left unsettled and
    /// read again from the checkpoint at the next start. Returns the final counters.
    pub async fn stop(mut self) -> MappingStats {
        let _ = self.stop.send(true);
        if !join_within(std::mem::take(&mut self.tasks), STOP_GRACE).await {
            tracing::warn!(
                "the event source mapping stopped with {} records unsettled (read again at the next start)",
                self.stats().unsettled()
            );
        }
        self.stats()
    }
}

/// Records of a shard that are read but not settled, in order: the checkpoint is the
/// last record before the first unsettled one.
struct ShardProgress {
    shard_id: String,
    /// Sortable sequence number -> (sequence number, settled).
    records: BTreeMap<String, (String, bool)>,
    /// Bounds how many records are read ahead of the function.
    read_ahead: Arc<Semaphore>,
}

impl ShardProgress {
    /// Marks records settled; returns the new checkpoint if it moved. Their read-ahead
    /// permits go back unless they were given back already (`released`).
    fn settle(&mut self, records: &[StreamRecord], released: bool) -> Option<String> {
        for r in records {
            if let Some(entry) = self.records.get_mut(&seqnum::sortable(&r.sequence_number)) {
                entry.1 = true;
            }
        }
        if !released {
            self.read_ahead.add_permits(records.len());
        }
        let mut checkpoint = None;
        while let Some(entry) = self.records.first_entry() {
            if !entry.get().1 {
                break;
            }
            checkpoint = Some(entry.remove().0);
        }
        checkpoint
    }
}

/// Reads one shard and deals its records to the lanes until stopped.
async fn run_shard(ctx: Arc<Context>, reader: ShardReader, stop: watch::Receiver<bool>) {
    let factor = ctx.config.settings.parallelization_factor.clamp(1, 10);
    let read_ahead = Arc::new(Semaphore::new(
        (ctx.config.settings.batch_size * factor * 4).max(1000),
    ));
    let progress = Arc::new(Mutex::new(ShardProgress {
        shard_id: reader.shard_id().to_owned(),
        records: BTreeMap::new(),
        read_ahead: read_ahead.clone(),
    }));
    let mut lanes = Vec::with_capacity(factor);
    // Aborting the shard's task (a stop past its grace) aborts its lanes with it.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..factor {
        let (tx, rx) = mpsc::unbounded_channel();
        lanes.push(tx);
        let lane = Lane {
            ctx: ctx.clone(),
            progress: progress.clone(),
            incoming: rx,
            pending: VecDeque::new(),
            splits: Vec::new(),
            attempts: 0,
            window: None,
            held: Vec::new(),
        };
        workers.spawn(lane.run(stop.clone()));
    }
    let mut dealer = Dealer {
        lanes,
        progress,
        read_ahead,
        stats: ctx.stats.clone(),
    };
    shard_poller::poll(reader, "the event source mapping", &mut dealer, stop).await;
    drop(dealer);
    while workers.join_next().await.is_some() {}
}

/// Where the reads of a shard go: its lanes, by partition key, within the read-ahead.
struct Dealer {
    lanes: Vec<mpsc::UnboundedSender<StreamRecord>>,
    progress: Arc<Mutex<ShardProgress>>,
    read_ahead: Arc<Semaphore>,
    stats: Arc<Mutex<MappingStats>>,
}

impl shard_poller::Intake for Dealer {
    fn room(&self) -> usize {
        self.read_ahead.available_permits()
    }

    async fn take(&mut self, records: Vec<StreamRecord>) -> bool {
        self.read_ahead.forget_permits(records.len());
        self.stats.lock().expect("not poisoned").records_read += records.len() as u64;
        let mut p = self.progress.lock().expect("not poisoned");
        for record in records {
            p.records.insert(
                seqnum::sortable(&record.sequence_number),
                (record.sequence_number.clone(), false),
            );
            let mut hasher = std::hash::DefaultHasher::new();
            record.partition_key.hash(&mut hasher);
            let lane = (hasher.finish() % self.lanes.len() as u64) as usize;
            let _ = self.lanes[lane].send(record);
        }
        true
    }
}

/// One lane of a shard: batches, invokes, retries, gives up.
struct Lane {
    ctx: Arc<Context>,
    progress: Arc<Mutex<ShardProgress>>,
    incoming: mpsc::UnboundedReceiver<StreamRecord>,
    /// Records not yet settled, in order.
    pending: VecDeque<StreamRecord>,
    /// Sizes of the sub-batches left by bisection; the last one is next.
    splits: Vec<usize>,
    /// Invocations of the current batch.
    attempts: u32,
    /// The open tumbling window.
    window: Option<OpenWindow>,
    /// Records of the open window that are done but whose checkpoint waits for the
    /// window's final invocation: a stop or a crash before it reads them again, so the
    /// window's aggregates are rebuilt instead of lost.
    held: Vec<StreamRecord>,
}

/// A tumbling window being aggregated by the function.
struct OpenWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The state the function returned last.
    state: serde_json::Map<String, serde_json::Value>,
    /// Attempts of its final invocation.
    final_attempts: u32,
}

/// The tumbling window (aligned on multiples of its length) a record arriving at `t` is in.
fn window_of(t: DateTime<Utc>, length: Duration) -> (DateTime<Utc>, DateTime<Utc>) {
    let length_ms = i64::try_from(length.as_millis()).unwrap_or(i64::MAX).max(1);
    let start_ms = t.timestamp_millis().div_euclid(length_ms) * length_ms;
    let start = DateTime::from_timestamp_millis(start_ms).unwrap_or(t);
    (start, start + length)
}

impl Lane {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if !self.fill(&mut stop).await {
                return;
            }
            self.discard_expired().await;
            if let Some(length) = self.ctx.config.settings.tumbling_window {
                let next = self.pending.front().map(|r| window_of(r.arrival, length).0);
                let closed = self
                    .window
                    .as_ref()
                    .is_some_and(|w| next.map_or(Utc::now() >= w.end, |start| start != w.start));
                if closed {
                    self.close_window(&mut stop).await;
                    continue;
                }
                if let (None, Some(first)) = (&self.window, self.pending.front()) {
                    self.ctx.stats.lock().expect("not poisoned").open_windows += 1;
                    let (start, end) = window_of(first.arrival, length);
                    self.window = Some(OpenWindow {
                        start,
                        end,
                        state: serde_json::Map::new(),
                        final_attempts: 0,
                    });
                }
            }
            if self.pending.is_empty() {
                continue;
            }
            let len = self.batch_len();
            let (result, state) = self.invoke(len, false).await;
            if let (Some(window), Some(state)) = (&mut self.window, state)
                && !matches!(result, BatchResult::Failed { .. })
            {
                window.state = state;
            }
            self.attempts += 1;
            {
                let mut stats = self.ctx.stats.lock().expect("not poisoned");
                stats.invocations += 1;
                if !matches!(result, BatchResult::Success) {
                    stats.failed_invocations += 1;
                }
            }
            match result {
                BatchResult::Success => {
                    self.settle(len, false);
                    self.splits.pop();
                    self.attempts = 0;
                }
                BatchResult::RetryFrom(index) => {
                    // The retry covers the rest of this batch, not new records.
                    self.settle(index, false);
                    match self.splits.last_mut() {
                        Some(top) => *top -= index,
                        None => self.splits.push(len - index),
                    }
                    self.failed(
                        len - index,
                        "the function reported a failed record",
                        &mut stop,
                    )
                    .await;
                }
                BatchResult::Failed {
                    reason,
                    function_error,
                } => {
                    if function_error && self.ctx.config.settings.bisect_on_error && len > 1 {
                        // Splitting does not use a retry.
                        self.splits.pop();
                        self.splits.push(len - len / 2);
                        self.splits.push(len / 2);
                        self.attempts = 0;
                        tracing::info!(shard = %self.shard_id(), "function error, bisecting a batch of {len}: {reason}");
                        continue;
                    }
                    self.failed(len, &reason, &mut stop).await;
                }
            }
        }
    }

    fn shard_id(&self) -> String {
        self.progress.lock().expect("not poisoned").shard_id.clone()
    }

    /// Waits for records: until a batch is full or the batching window closes. Returns
    /// false when the lane must end.
    async fn fill(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let window_end = Instant::now() + self.ctx.config.settings.batching_window;
        loop {
            while let Ok(r) = self.incoming.try_recv() {
                self.pending.push_back(r);
            }
            if *stop.borrow() {
                return false;
            }
            // An open tumbling window whose end has passed needs its final invocation.
            let window_ended = self.window.as_ref().is_some_and(|w| Utc::now() >= w.end);
            let enough = self.pending.len() >= self.ctx.config.settings.batch_size
                || window_ended
                || (!self.pending.is_empty()
                    && (Instant::now() >= window_end || !self.splits.is_empty()));
            if enough {
                return true;
            }
            let wait = if self.pending.is_empty() {
                Duration::from_millis(500)
            } else {
                window_end.saturating_duration_since(Instant::now())
            };
            tokio::select! {
                r = self.incoming.recv() => match r {
                    Some(r) => self.pending.push_back(r),
                    None if self.pending.is_empty() => return false,
                    None => return true,
                },
                _ = stop.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Size of the next batch: the bisected sub-batch, or up to the batch size, within
    /// the invocation payload limit and the open tumbling window.
    fn batch_len(&self) -> usize {
        let mut limit = self
            .splits
            .last()
            .copied()
            .unwrap_or(self.ctx.config.settings.batch_size)
            .min(self.pending.len());
        if let (Some(window), Some(length)) =
            (&self.window, self.ctx.config.settings.tumbling_window)
        {
            let in_window = self
                .pending
                .iter()
                .take_while(|r| window_of(r.arrival, length).0 == window.start)
                .count();
            limit = limit.min(in_window.max(1));
        }
        let mut size = 0;
        let mut n = 0;
        for r in self.pending.iter().take(limit) {
            size += r.event_bytes();
            if n > 0 && size > MAX_EVENT_RECORDS_BYTES {
                break;
            }
            n += 1;
        }
        n
    }

    /// Invokes the function with the first `len` pending records (and the open window's
    /// state); returns what the result means and the window state it returned.
    async fn invoke(
        &self,
        len: usize,
        final_for_window: bool,
    ) -> (BatchResult, Option<wire::WindowState>) {
        let c = &self.ctx.config;
        let records: Vec<&StreamRecord> = self.pending.iter().take(len).collect();
        let shard_id = self.shard_id();
        let event = KinesisEvent {
            records: records
                .iter()
                .map(|r| EventRecord::new(r, &c.role_arn, &c.region, &c.stream_arn))
                .collect(),
            window: self.window.as_ref().map(|w| wire::WindowFields {
                window: wire::WindowRange {
                    start: Rfc3339(&w.start).to_string(),
                    end: Rfc3339(&w.end).to_string(),
                },
                state: &w.state,
                shard_id: &shard_id,
                event_source_arn: &c.stream_arn,
                is_final_invoke_for_window: final_for_window,
                is_window_terminated_early: false,
            }),
        };
        let body = serde_json::to_vec(&event).expect("the event serializes");
        match self.ctx.function.invoke(body.into()).await {
            Err(e) => (
                BatchResult::Failed {
                    reason: e.to_string(),
                    function_error: !matches!(e, InvokeError::Stopped),
                },
                None,
            ),
            Ok(response) => {
                let state = self
                    .window
                    .as_ref()
                    .map(|_| wire::returned_state(&response));
                let result = if c.settings.report_batch_item_failures {
                    interpret(&response, &records)
                } else {
                    BatchResult::Success
                };
                (result, state)
            }
        }
    }

    /// The final invocation of the open window. It is retried until it succeeds, and the
    /// lane waits meanwhile: "If the invocation fails, your Lambda function pauses further
    /// processing until a successful invocation" (Lambda developer guide, "Implementing
    /// stateful Kinesis Data Streams processing in Lambda", services-kinesis-windows.html).
    /// `MaximumRetryAttempts` does not apply: giving up would drop the window's aggregates.
    async fn close_window(&mut self, stop: &mut watch::Receiver<bool>) {
        let (result, _) = self.invoke(0, true).await;
        self.ctx.stats.lock().expect("not poisoned").invocations += 1;
        let Some(window) = &mut self.window else {
            return;
        };
        window.final_attempts += 1;
        match result {
            BatchResult::Success | BatchResult::RetryFrom(_) => {
                self.window = None;
                self.ctx.stats.lock().expect("not poisoned").open_windows -= 1;
                let held = std::mem::take(&mut self.held);
                self.checkpoint(&held, true);
            }
            BatchResult::Failed { reason, .. } => {
                let attempt = window.final_attempts;
                self.ctx
                    .stats
                    .lock()
                    .expect("not poisoned")
                    .failed_invocations += 1;
                tracing::warn!(
                    shard = %self.shard_id(),
                    attempt,
                    "final invocation of a tumbling window failed, retrying: {reason}"
                );
                let backoff = lambda_host::retry_delay(attempt);
                let _ = tokio::time::timeout(backoff, stop.changed()).await;
            }
        }
    }

    /// A batch of `len` failed: retry it, or give up on it.
    async fn failed(&mut self, len: usize, reason: &str, stop: &mut watch::Receiver<bool>) {
        let retries = self.attempts.saturating_sub(1);
        if self
            .ctx
            .config
            .settings
            .max_retries
            .is_some_and(|max| retries >= max)
        {
            tracing::error!(shard = %self.shard_id(), records = len, "retries exhausted, skipping the batch: {reason}");
            self.give_up(len, "RetryAttemptsExhausted").await;
            self.splits.pop();
            self.attempts = 0;
        } else {
            tracing::warn!(shard = %self.shard_id(), retry = retries + 1, "batch failed, retrying: {reason}");
            let backoff = lambda_host::retry_delay(self.attempts);
            let _ = tokio::time::timeout(backoff, stop.changed()).await;
        }
    }

    /// Gives up on the records at the front that are older than the maximum record age.
    async fn discard_expired(&mut self) {
        let Some(max_age) = self.ctx.config.settings.max_record_age else {
            return;
        };
        let oldest_allowed = Utc::now() - max_age;
        let expired = self
            .pending
            .iter()
            .take_while(|r| r.arrival < oldest_allowed)
            .count();
        if expired > 0 {
            tracing::error!(shard = %self.shard_id(), records = expired, "records older than {max_age:?}, skipping them");
            self.give_up(expired, "RecordAgeExceeded").await;
            self.splits.clear();
            self.attempts = 0;
        }
    }

    /// Reports the first `len` records to the on-failure destination and settles them.
    async fn give_up(&mut self, len: usize, condition: &str) {
        let c = &self.ctx.config;
        if let Some(destination) = &c.on_failure {
            let first = &self.pending[0];
            let last = &self.pending[len - 1];
            let record = FailureRecord {
                request_context: wire::RequestContext {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    function_arn: self.ctx.function.arn(),
                    condition: condition.to_owned(),
                    approximate_invoke_count: self.attempts,
                },
                response_context: wire::ResponseContext {
                    status_code: 200,
                    executed_version: "$LATEST".into(),
                    function_error: Some("Unhandled".into()),
                },
                version: "1.0".into(),
                timestamp: Rfc3339(&Utc::now()).to_string(),
                kinesis_batch_info: KinesisBatchInfo {
                    shard_id: first.shard_id.to_string(),
                    start_sequence_number: first.sequence_number.clone(),
                    end_sequence_number: last.sequence_number.clone(),
                    approximate_arrival_of_first_record: Rfc3339(&first.arrival).to_string(),
                    approximate_arrival_of_last_record: Rfc3339(&last.arrival).to_string(),
                    batch_size: len,
                    stream_arn: c.stream_arn.clone(),
                },
            };
            let body = serde_json::to_string(&record).expect("failure records serialize");
            send_until_accepted(destination, &body).await;
            self.ctx
                .stats
                .lock()
                .expect("not poisoned")
                .on_failure_records += len as u64;
        }
        self.settle(len, true);
    }

    /// Settles the first `n` pending records and moves the checkpoint.
    fn settle(&mut self, n: usize, discarded: bool) {
        let settled: Vec<StreamRecord> = self.pending.drain(..n).collect();
        {
            let mut stats = self.ctx.stats.lock().expect("not poisoned");
            if let Some(last) = settled.last() {
                let age = (Utc::now() - last.arrival).num_milliseconds().max(0) as u64;
                stats.iterator_age_ms = age;
                stats.max_iterator_age_ms = stats.max_iterator_age_ms.max(age);
            }
            if discarded {
                stats.discarded += n as u64;
            } else {
                stats.succeeded += n as u64;
            }
        }
        if self.window.is_some() {
            // Read ahead goes on; the checkpoint waits for the window to close.
            let progress = self.progress.lock().expect("not poisoned");
            progress.read_ahead.add_permits(settled.len());
            self.held.extend(settled);
            return;
        }
        self.checkpoint(&settled, false);
    }

    /// Settles `records` in the shard's progress and saves the checkpoint if it moved.
    fn checkpoint(&self, records: &[StreamRecord], released: bool) {
        let mut progress = self.progress.lock().expect("not poisoned");
        if let Some(checkpoint) = progress.settle(records, released)
            && let Some(store) = &self.ctx.config.checkpoints
        {
            store.set(self.ctx.function.name(), &progress.shard_id, &checkpoint);
        }
    }
}

/// Sends a message to the on-failure queue, retrying until it is accepted: the record of
/// what was skipped must not be lost.
async fn send_until_accepted(destination: &OnFailureDestination, body: &str) {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .without_max_times();
    let send = || {
        destination
            .sqs
            .send_message()
            .queue_url(&destination.queue_url)
            .message_body(body)
            .send()
    };
    let retried = send
        .retry(backoff)
        .notify(|e, _| {
            tracing::warn!(
                "on-failure destination refused the record, retrying: {}",
                Report(e)
            );
        })
        .await;
    debug_assert!(retried.is_ok(), "retried without a limit");
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use super::*;
    use crate::emulated::lambda_host::StubFunction;

    /// What the stub answers its invocation number `call` (from 0), given the batch's
    /// records' data and sequence numbers, in order.
    type Answer = fn(usize, &[String], &[String]) -> Result<serde_json::Value, InvokeError>;

    fn function_error() -> InvokeError {
        InvokeError::Function {
            error_type: "Poison".into(),
            message: "cannot take r5".into(),
        }
    }

    fn ok() -> serde_json::Value {
        json!({ "batchItemFailures": [] })
    }

    /// Runs one lane over `n` records (`r0`, `r1`, ...) arrived now, until all are settled.
    async fn run(
        n: usize,
        settings: MappingSettings,
        answer: Answer,
    ) -> (Vec<Vec<String>>, MappingStats) {
        let now = Utc::now();
        run_arrived(&vec![now; n], settings, answer).await
    }

    /// [`run`], record `ri` arrived at `arrivals[i]`.
    async fn run_arrived(
        arrivals: &[DateTime<Utc>],
        settings: MappingSettings,
        answer: Answer,
    ) -> (Vec<Vec<String>>, MappingStats) {
        // Every batch the consumer was invoked with, kept; answered as `answer` says.
        let batches: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let stub = StubFunction::new({
            let batches = batches.clone();
            move |call, payload| {
                let event: serde_json::Value = serde_json::from_slice(payload).unwrap();
                let records = event["Records"].as_array().cloned().unwrap_or_default();
                let data: Vec<String> = records
                    .iter()
                    .map(|r| {
                        let bytes = STANDARD
                            .decode(r["kinesis"]["data"].as_str().unwrap())
                            .unwrap();
                        String::from_utf8(bytes).unwrap()
                    })
                    .collect();
                let sequence_numbers: Vec<String> = records
                    .iter()
                    .map(|r| r["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned())
                    .collect();
                let answer = answer(call as usize, &data, &sequence_numbers);
                batches.lock().unwrap().push(data);
                answer.map(|v| v.to_string().into())
            }
        });
        let mut config = MappingConfig::new(
            "s",
            "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "us-east-1",
            "arn:aws:iam::123456789012:role/r",
        );
        config.settings = settings;
        let stats = Arc::new(Mutex::new(MappingStats::default()));
        let ctx = Arc::new(Context {
            config,
            function: stub.clone(),
            stats: stats.clone(),
        });
        let progress = Arc::new(Mutex::new(ShardProgress {
            shard_id: "shardId-000000000000".into(),
            records: BTreeMap::new(),
            read_ahead: Arc::new(Semaphore::new(1000)),
        }));
        let (tx, incoming) = mpsc::unbounded_channel();
        let shard: Arc<str> = "shardId-000000000000".into();
        for (i, arrival) in arrivals.iter().enumerate() {
            tx.send(StreamRecord {
                shard_id: shard.clone(),
                sequence_number: format!("{:056}", i + 1),
                partition_key: "k".into(),
                data: format!("r{i}").into_bytes(),
                arrival: *arrival,
                subsequence_number: None,
            })
            .unwrap();
        }
        drop(tx);
        let lane = Lane {
            ctx,
            progress,
            incoming,
            pending: VecDeque::new(),
            splits: Vec::new(),
            attempts: 0,
            window: None,
            held: Vec::new(),
        };
        let (_stop, stopped) = watch::channel(false);
        lane.run(stopped).await;
        let batches = batches.lock().unwrap().clone();
        let stats = stats.lock().unwrap().clone();
        (batches, stats)
    }

    fn settings(batch_size: usize, bisect: bool, max_retries: u32) -> MappingSettings {
        MappingSettings {
            batch_size,
            bisect_on_error: bisect,
            max_retries: Some(max_retries),
            ..MappingSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bisect_isolates_a_poison_record_and_gives_up_on_it_alone() {
        let poison = |_, data: &[String], _: &[String]| {
            if data.iter().any(|d| d == "r5") {
                Err(function_error())
            } else {
                Ok(ok())
            }
        };
        let (batches, stats) = run(8, settings(8, true, 1), poison).await;
        assert_eq!((stats.succeeded, stats.discarded), (7, 1), "{stats:?}");
        let alone = batches.iter().filter(|b| b.as_slice() == ["r5"]).count();
        assert_eq!(
            alone, 2,
            "the poison alone: tried, then retried once: {batches:?}"
        );
        assert_eq!(batches[0].len(), 8);
        assert_eq!(batches[1], ["r0", "r1", "r2", "r3"], "bisected in halves");
    }

    #[tokio::test(start_paused = true)]
    async fn without_bisect_a_failing_batch_is_retried_then_given_up_whole() {
        let (batches, stats) = run(4, settings(4, false, 2), |_, _, _| Err(function_error())).await;
        assert_eq!(batches.len(), 3, "the first try and 2 retries");
        assert!(batches.iter().all(|b| b.len() == 4));
        assert_eq!((stats.succeeded, stats.discarded), (0, 4));
        assert_eq!(stats.invocations, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_response_retries_from_the_reported_record() {
        // The first invocation reports r3 (and r5) failed; later ones succeed.
        let partial = |call, _: &[String], seq: &[String]| {
            if call == 0 {
                Ok(json!({ "batchItemFailures": [
                    { "itemIdentifier": seq[5] }, { "itemIdentifier": seq[3] }
                ]}))
            } else {
                Ok(ok())
            }
        };
        let (batches, stats) = run(8, settings(8, true, 3), partial).await;
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(
            batches[1],
            ["r3", "r4", "r5", "r6", "r7"],
            "from the lowest reported"
        );
        assert_eq!((stats.succeeded, stats.discarded), (8, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_item_identifier_fails_the_whole_batch() {
        let unknown = |call, _: &[String], _: &[String]| {
            if call == 0 {
                Ok(json!({ "batchItemFailures": [{ "itemIdentifier": "42" }] }))
            } else {
                Ok(ok())
            }
        };
        let (batches, stats) = run(3, settings(3, false, 3), unknown).await;
        assert_eq!(batches.len(), 2, "retried whole: {batches:?}");
        assert_eq!(batches[1].len(), 3);
        assert_eq!(stats.succeeded, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn each_tumbling_window_gets_its_records_then_one_final_invocation() {
        // Two windows of a minute, both over: each closes after its records.
        let minute = Duration::from_secs(60);
        let (first, _) = window_of(Utc::now() - chrono::Duration::minutes(10), minute);
        let second = first + chrono::Duration::minutes(1);
        let at = |start: DateTime<Utc>, s: i64| start + chrono::Duration::seconds(s);
        let arrivals = [
            at(first, 1),
            at(first, 30),
            at(second, 2),
            at(second, 3),
            at(second, 59),
        ];
        let windowed = MappingSettings {
            tumbling_window: Some(minute),
            ..settings(100, true, 3)
        };
        let state = |_, data: &[String], _: &[String]| {
            Ok(json!({ "state": { "records": data.len() }, "batchItemFailures": [] }))
        };
        let (batches, stats) = run_arrived(&arrivals, windowed, state).await;
        let empty: Vec<String> = Vec::new();
        assert_eq!(
            batches,
            [
                vec!["r0".to_owned(), "r1".to_owned()],
                empty.clone(),
                vec!["r2".to_owned(), "r3".to_owned(), "r4".to_owned()],
                empty,
            ],
            "a window's records, then its final invocation (no records)"
        );
        assert_eq!(stats.succeeded, 5);
    }
}
