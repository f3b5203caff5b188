//! Firehose delivery from a Kinesis source, played locally.
//!
//! Like a Firehose delivery stream with a Kinesis data stream as source, a Lambda
//! processor and dynamic partitioning:
//! - every shard is read in order; records are buffered until the buffer size or the
//!   buffer interval is reached;
//! - the buffer is cut into invocations of at most the processor buffer size (and never
//!   more than the 6 MB invocation limit), and the transform Lambda is invoked through
//!   the Runtime API; failed invocations are retried `retries` times;
//! - each response record is checked against its input (`recordId`, `result`, base64
//!   `data`, `metadata.partitionKeys`); `Ok` records are grouped by the evaluated S3
//!   prefix and written as one object per prefix, named as Firehose names them;
//!   `Dropped` records are counted; everything else becomes an error record under the
//!   error prefix, in the shape AWS documents for its error type ([`ErrorRecord`]).
//!
//! Unlike Firehose, which is at-least-once and may write a record twice, delivery here is
//! exactly-once across crashes: an object holds the records of one shard (per prefix), is
//! named after its first record, and the shard's checkpoint is written to disk after every
//! object of the buffer is written and before the next buffer is delivered. A crash
//! mid-delivery leaves objects past the checkpoint; the restarted stack reads the same
//! records again and writes them under the same keys.

mod chunking;
pub mod direct_put;
pub mod journal;
mod response;
pub mod settings;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use streamlake_core::dataset::Dataset;
use streamlake_core::layout::{self, ErrorOutputType, OutputFormat, PrefixContext, PrefixTemplate};
use streamlake_core::{columnar, formats, names, seqnum};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use direct_put::{DirectPutInlet, DirectPutRoutes};
use journal::Journal;
use response::{Failure, Outcome};
use settings::{DeliverySettings, Source};
pub use wire::{
    DataCatalogTable, ErrorRecord, FormatConversionFailedRecord, ProcessingFailedRecord,
};
use wire::{EventRecord, TransformEvent};

use crate::clients::Clients;
use crate::emulated::checkpoint::CheckpointStore;
use crate::emulated::kinesis_source::{StartingPosition, StreamRecord};
use crate::emulated::lambda_host::{self, Function, InvokeError};
use crate::emulated::shard_poller;
use crate::emulated::shutdown::{STOP_GRACE, join_within};
use crate::error::{Report, StackError};

/// Configuration of the local delivery stream.
#[derive(Debug, Clone)]
pub struct FirehoseConfig {
    /// The delivery stream as the stack asks for it. [`Firehose::start`] creates it
    /// through the Firehose API when it is missing and plays what the API describes.
    pub settings: DeliverySettings,
    /// Most distinct prefixes one delivery may write (Firehose default: 500).
    pub max_active_partitions: usize,
    /// Where reading a Kinesis source starts when there is no checkpoint.
    pub starting_position: StartingPosition,
    /// Where shard checkpoints are kept (advanced once a buffer is written).
    pub checkpoints: Option<CheckpointStore>,
    /// For a Direct PUT source: the folder of its journal ([`journal`]), where accepted
    /// records are kept until delivered (`None`: kept in memory only, lost by a crash).
    /// Needs `checkpoints`, which say what was delivered.
    pub journal: Option<std::path::PathBuf>,
    /// Region for ARNs.
    pub region: String,
    /// The records' shape: the schema record-format conversion writes (on AWS, the Glue
    /// table's columns, which the deploy generates from the same dataset file).
    pub dataset: Arc<Dataset>,
}

/// Counters of the delivery stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FirehoseStats {
    /// Records read from the source stream.
    pub records_read: u64,
    /// Records waiting in the buffer or in delivery (after a stop: the records that could
    /// not be delivered).
    pub in_flight: u64,
    /// Records written under the data prefix.
    pub delivered: u64,
    /// Records written under the error prefix.
    pub failed: u64,
    /// Records the transform dropped on purpose.
    pub dropped: u64,
    /// Transform invocations (retries included).
    pub invocations: u64,
    /// Objects written (data and errors).
    pub objects: u64,
}

impl FirehoseStats {
    /// Whether every record read has been delivered, failed or dropped.
    pub fn settled(&self) -> bool {
        self.in_flight == 0 && self.delivered + self.failed + self.dropped == self.records_read
    }

    /// Records read (or accepted) and not delivered, failed or dropped.
    pub fn undelivered(&self) -> u64 {
        self.records_read
            .saturating_sub(self.delivered + self.failed + self.dropped)
    }
}

/// A running local delivery stream.
pub struct Firehose {
    stats: Arc<Mutex<FirehoseStats>>,
    stop: watch::Sender<bool>,
    flush: mpsc::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
    /// For a Direct PUT source: where its inlet is registered, and under which name.
    direct_put: Option<(DirectPutRoutes, String)>,
    /// What it plays: the settings `DescribeDeliveryStream` answered at the start.
    settings: DeliverySettings,
    /// A Direct PUT source's journal.
    journal: Option<Arc<Mutex<Journal>>>,
    /// The folders data objects were written into since the last [`Firehose::take_written`].
    written: Arc<Mutex<BTreeSet<String>>>,
}

/// What a Direct PUT journal holds on disk: its records (delivered ones included until
/// their segment is deleted) and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalDepth {
    /// Records in its segments.
    pub records: u64,
    /// Bytes of its segments.
    pub bytes: u64,
}

impl Firehose {
    /// Creates the delivery stream through the API when missing, then plays what
    /// `DescribeDeliveryStream` answers: reads the Kinesis source, or takes the records of
    /// `PutRecord`/`PutRecordBatch` in through `routes` for a Direct PUT source.
    pub async fn start(
        mut config: FirehoseConfig,
        clients: &Clients,
        transform: Arc<dyn Function>,
        routes: &DirectPutRoutes,
    ) -> Result<Self, StackError> {
        config.settings = config.settings.ensure(&clients.firehose).await?;
        let settings = &config.settings;
        if settings.processor.function_arn != transform.arn() {
            return Err(settings::SettingsError::Unplayable {
                stream: settings.name.clone(),
                setting: "LambdaArn",
                value: settings.processor.function_arn.clone(),
            }
            .into());
        }
        let template = |which, text: &str| {
            PrefixTemplate::parse(text).map_err(|source| StackError::Prefix { which, source })
        };
        let prefix = template("prefix", &settings.prefix)?;
        let error_prefix = template("error prefix", &settings.error_prefix)?;
        let stats = Arc::new(Mutex::new(FirehoseStats::default()));
        let (stop, stopped) = watch::channel(false);
        let (records_tx, records_rx) = mpsc::channel::<Vec<StreamRecord>>(16);
        let (flush, flush_rx) = mpsc::channel(4);
        let mut tasks = Vec::new();
        let mut journal = None;
        let written: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let direct_put = match settings.source.stream_name() {
            Some(stream) => {
                let readers = shard_poller::readers(
                    clients,
                    stream,
                    &settings.name,
                    config.checkpoints.as_ref(),
                    &config.starting_position,
                )
                .await?;
                for reader in readers {
                    let mut buffer = SourceBuffer {
                        out: records_tx.clone(),
                        stats: stats.clone(),
                    };
                    let stop = stopped.clone();
                    tasks.push(tokio::spawn(async move {
                        shard_poller::poll(reader, "Firehose", &mut buffer, stop).await;
                    }));
                }
                None
            }
            None => {
                let shard: Arc<str> = direct_put::DIRECT_PUT_SHARD.into();
                let (kept, replay) = match (&config.journal, &config.checkpoints) {
                    (Some(dir), Some(checkpoints)) => {
                        let settled = checkpoints.get(&settings.name, &shard);
                        let (opened, replay) = Journal::open(dir, &shard, settled.as_deref())
                            .map_err(StackError::io(format!(
                                "opening the Direct PUT journal {}",
                                dir.display()
                            )))?;
                        (Some(Arc::new(Mutex::new(opened))), replay)
                    }
                    _ => (None, Vec::new()),
                };
                journal = kept.clone();
                routes.register(
                    &settings.name,
                    DirectPutInlet::start(records_tx.clone(), stats.clone(), kept, replay),
                );
                Some((routes.clone(), settings.name.clone()))
            }
        };
        drop(records_tx);
        let settings = config.settings.clone();
        let delivery = Delivery {
            config,
            prefix,
            error_prefix,
            s3: clients.s3.clone(),
            transform,
            stats: stats.clone(),
            journal: journal.clone(),
            written: written.clone(),
        };
        tasks.push(tokio::spawn(delivery.run(records_rx, flush_rx)));
        Ok(Self {
            stats,
            stop,
            flush,
            tasks,
            direct_put,
            settings,
            journal,
            written,
        })
    }

    /// The settings it plays, as the Firehose API described them when it started.
    pub fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FirehoseStats {
        self.stats.lock().expect("not poisoned").clone()
    }

    /// The folders (`<prefix>year=…/…/`) data objects were written into since the last
    /// call.
    pub fn take_written(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.written.lock().expect("not poisoned"))
    }

    /// What its journal holds, for a Direct PUT source that keeps one.
    pub fn journal_depth(&self) -> Option<JournalDepth> {
        self.journal.as_ref().map(|j| {
            let (bytes, records) = j.lock().expect("not poisoned").size();
            JournalDepth { records, bytes }
        })
    }

    /// Delivers the buffer now instead of at the end of the interval.
    pub async fn flush(&self) {
        let _ = self.flush.send(()).await;
    }

    /// Stops reading and delivers what is buffered, for up to [`STOP_GRACE`]; then gives
    /// up on what is left (S3 or the function may be gone). Returns the final counters:
    /// `in_flight` counts the records not delivered, which are read again from the
    /// checkpoint at the next start.
    pub async fn stop(mut self) -> FirehoseStats {
        let _ = self.stop.send(true);
        if let Some((routes, name)) = self.direct_put.take() {
            // The last sender of the buffer: delivery ends once it is drained.
            routes.remove(&name);
        }
        if !join_within(std::mem::take(&mut self.tasks), STOP_GRACE).await {
            tracing::warn!(
                "Firehose stopped before delivering {} records (read again at the next start)",
                self.stats().in_flight
            );
        }
        self.stats()
    }
}

/// Where the reads of a Kinesis source's shards go: the delivery buffer.
struct SourceBuffer {
    out: mpsc::Sender<Vec<StreamRecord>>,
    stats: Arc<Mutex<FirehoseStats>>,
}

impl shard_poller::Intake for SourceBuffer {
    async fn take(&mut self, records: Vec<StreamRecord>) -> bool {
        // Firehose de-aggregates KPL records of a Kinesis source: the transform and the
        // lake see user records.
        // https://docs.aws.amazon.com/streams/latest/dev/kpl-with-firehose.html
        let records: Vec<StreamRecord> = records
            .into_iter()
            .flat_map(StreamRecord::deaggregated)
            .collect();
        {
            let mut s = self.stats.lock().expect("not poisoned");
            s.records_read += records.len() as u64;
            s.in_flight += records.len() as u64;
        }
        self.out.send(records).await.is_ok()
    }
}

/// Delivered records of one object, with their transformed data.
type Group<'a> = Vec<(&'a StreamRecord, Vec<u8>)>;

/// Concatenates the data of delivered records.
trait ConcatData {
    fn concat_data(&self) -> Vec<u8>;
}

impl ConcatData for Group<'_> {
    fn concat_data(&self) -> Vec<u8> {
        self.iter().flat_map(|(_, d)| d.iter().copied()).collect()
    }
}

struct Delivery {
    config: FirehoseConfig,
    prefix: PrefixTemplate,
    error_prefix: PrefixTemplate,
    s3: aws_sdk_s3::Client,
    transform: Arc<dyn Function>,
    stats: Arc<Mutex<FirehoseStats>>,
    /// A Direct PUT source's journal, told what is delivered once it is checkpointed.
    journal: Option<Arc<Mutex<Journal>>>,
    /// The folders data objects were written into since [`Firehose::take_written`].
    written: Arc<Mutex<BTreeSet<String>>>,
}

impl Delivery {
    async fn run(
        self,
        mut records: mpsc::Receiver<Vec<StreamRecord>>,
        mut flush: mpsc::Receiver<()>,
    ) {
        let mut buffer: Vec<StreamRecord> = Vec::new();
        let mut bytes = 0usize;
        let mut oldest: Option<Instant> = None;
        loop {
            let due = oldest.map(|t| t + self.config.settings.buffer_interval);
            tokio::select! {
                batch = records.recv() => match batch {
                    Some(batch) => {
                        oldest.get_or_insert_with(Instant::now);
                        bytes += batch.iter().map(|r| r.data.len()).sum::<usize>();
                        buffer.extend(batch);
                        if bytes >= self.config.settings.buffer_bytes {
                            self.deliver(std::mem::take(&mut buffer)).await;
                            (bytes, oldest) = (0, None);
                        }
                    }
                    None => break,
                },
                Some(()) = flush.recv() => {
                    if !buffer.is_empty() {
                        self.deliver(std::mem::take(&mut buffer)).await;
                        (bytes, oldest) = (0, None);
                    }
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.deliver(std::mem::take(&mut buffer)).await;
                    (bytes, oldest) = (0, None);
                }
            }
        }
        if !buffer.is_empty() {
            self.deliver(buffer).await;
        }
    }

    /// Transforms and writes one buffer.
    async fn deliver(&self, records: Vec<StreamRecord>) {
        let mut outcomes: Vec<Option<Outcome>> = std::iter::repeat_with(|| None)
            .take(records.len())
            .collect();
        for chunk in chunking::invocations(&records, self.config.settings.processor.buffer_bytes) {
            let results = self.process(&records, &chunk).await;
            for (i, outcome) in chunk.into_iter().zip(results) {
                outcomes[i] = Some(outcome);
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.expect("every record is in one chunk"))
            .collect();
        self.write(&records, outcomes).await;
        if let Some(store) = &self.config.checkpoints {
            // Shards are read in order, so the last record of a shard in this buffer
            // means everything before it is written too.
            let mut last: HashMap<&str, &str> = HashMap::new();
            for r in &records {
                last.insert(&r.shard_id, &r.sequence_number);
            }
            for (shard, seq) in last {
                store.set(&self.config.settings.name, shard, seq);
            }
            // On disk before the next buffer's objects are written: then every object past
            // the checkpoint on disk belongs to the one buffer in delivery, and after a
            // crash that buffer is read again from the same records, so each of its objects
            // gets the same key (`object_name`) and is replaced, never added twice.
            if let Err(e) = store.flush().await {
                tracing::error!("{}", Report(&e));
            } else if let (Some(journal), Some(last)) = (&self.journal, records.last()) {
                // Checkpointed on disk: the journal's segments up to here are not needed.
                let settled = journal
                    .lock()
                    .expect("not poisoned")
                    .settle(&last.sequence_number);
                if let Err(e) = settled {
                    tracing::warn!("cleaning the Direct PUT journal: {e}");
                }
            }
        }
    }

    /// Invokes the transform for one chunk (with retries) and checks its response.
    async fn process(&self, records: &[StreamRecord], chunk: &[usize]) -> Vec<Outcome> {
        let ids: Vec<String> = chunk.iter().map(|&i| records[i].record_id()).collect();
        let event = TransformEvent {
            invocation_id: uuid::Uuid::new_v4().to_string(),
            delivery_stream_arn: &self.delivery_stream_arn(),
            source_kinesis_stream_arn: match &self.config.settings.source {
                Source::Kinesis { stream_arn } => Some(stream_arn),
                Source::DirectPut => None,
            },
            region: &self.config.region,
            records: chunk
                .iter()
                .zip(&ids)
                .map(|(&i, id)| {
                    let record = &records[i];
                    match self.config.settings.source {
                        Source::Kinesis { .. } => EventRecord::new(id.clone(), record),
                        Source::DirectPut => EventRecord::direct_put(id.clone(), record),
                    }
                })
                .collect(),
        };
        let body =
            axum::body::Bytes::from(serde_json::to_vec(&event).expect("the event serializes"));
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            self.stats.lock().expect("not poisoned").invocations += 1;
            match self.transform.invoke(body.clone()).await {
                Ok(response) => break response,
                Err(e)
                    if attempts <= self.config.settings.processor.retries
                        && !matches!(e, InvokeError::Stopped) =>
                {
                    tracing::warn!(
                        attempt = attempts,
                        "transform invocation failed, retrying: {e}"
                    );
                    tokio::time::sleep(lambda_host::retry_delay(attempts)).await;
                }
                Err(e) => {
                    let code = match e {
                        InvokeError::Timeout(_) => "Lambda.FunctionTimeout",
                        InvokeError::TooLarge(..) => "Lambda.ResponseTooLarge",
                        _ => "Lambda.FunctionError",
                    };
                    tracing::error!(
                        records = chunk.len(),
                        "transform invocation failed for good: {e}"
                    );
                    return chunk
                        .iter()
                        .map(|_| {
                            Outcome::Failed(Failure::processing(code, e.to_string(), attempts))
                        })
                        .collect();
                }
            }
        };
        response::check(&ids, &response, attempts, &self.prefix)
    }

    /// Groups the outcomes into objects (encoded in the output format) and writes them.
    async fn write(&self, records: &[StreamRecord], outcomes: Vec<Outcome>) {
        // Delivered records by prefix and shard, failed records with the bytes to keep.
        let mut delivered: BTreeMap<(String, &str), Group<'_>> = BTreeMap::new();
        let mut prefixes: BTreeSet<String> = BTreeSet::new();
        let mut failed: Vec<(&StreamRecord, Failure, Vec<u8>)> = Vec::new();
        let mut dropped = 0u64;
        for (record, outcome) in records.iter().zip(outcomes) {
            match outcome {
                Outcome::Delivered { prefix, .. }
                    if !prefixes.contains(&prefix)
                        && prefixes.len() >= self.config.max_active_partitions =>
                {
                    let failure = Failure {
                        output: ErrorOutputType::PartitioningFailed,
                        code: "DynamicPartitioning.ActivePartitionsLimitExceeded".into(),
                        message: format!(
                            "more than {} active partitions in one delivery",
                            self.config.max_active_partitions
                        ),
                        attempts: 1,
                    };
                    failed.push((record, failure, record.data.clone()));
                }
                Outcome::Delivered { prefix, data } => {
                    prefixes.insert(prefix.clone());
                    delivered
                        .entry((prefix, &record.shard_id))
                        .or_default()
                        .push((record, data));
                }
                Outcome::Dropped => dropped += 1,
                Outcome::Failed(failure) => failed.push((record, failure, record.data.clone())),
            }
        }

        let mut objects: Vec<(String, Vec<u8>, u64, bool)> = Vec::new();
        let extension = self.config.settings.format.extension();
        for ((prefix, _), group) in delivered {
            let first = group[0].0;
            let (body, rows) = match self.config.settings.format {
                OutputFormat::Ndjson => (group.concat_data(), group.len()),
                OutputFormat::NdjsonGzip => (formats::gzip(&group.concat_data()), group.len()),
                OutputFormat::Parquet => {
                    let lines: Vec<&[u8]> = group.iter().map(|(_, d)| d.as_slice()).collect();
                    match columnar::ndjson_to_parquet(&self.config.dataset, &lines) {
                        Ok(converted) => {
                            for (i, reason) in converted.rejected {
                                let (record, data) = &group[i];
                                let failure = Failure {
                                    output: ErrorOutputType::FormatConversionFailed,
                                    code: "DataFormatConversion.MalformedData".into(),
                                    message: reason,
                                    attempts: 1,
                                };
                                failed.push((record, failure, data.clone()));
                            }
                            (converted.parquet.unwrap_or_default(), converted.rows)
                        }
                        Err(e) => {
                            for (record, data) in &group {
                                let failure = Failure {
                                    output: ErrorOutputType::FormatConversionFailed,
                                    code: "DataFormatConversion.ConversionFailed".into(),
                                    message: e.to_string(),
                                    attempts: 1,
                                };
                                failed.push((record, failure, data.clone()));
                            }
                            (Vec::new(), 0)
                        }
                    }
                }
            };
            if rows > 0 {
                let name = self.object_name(first, extension);
                objects.push((format!("{prefix}{name}"), body, rows as u64, false));
            }
        }

        let now = Utc::now();
        let mut errors: BTreeMap<(String, &str), (Vec<u8>, &StreamRecord, u64)> = BTreeMap::new();
        for (record, failure, raw) in failed {
            let ctx = PrefixContext {
                lambda_keys: &[],
                error_output_type: Some(failure.output),
                arrival: record.arrival,
            };
            let prefix = self.error_prefix.evaluate(&ctx).unwrap_or_else(|e| {
                tracing::error!("cannot evaluate the error prefix: {e}");
                format!("{}{}/", layout::ERROR_ROOT, failure.output)
            });
            let line = self.error_record(record, failure, &raw, now);
            let (body, first, count) = errors
                .entry((prefix, &record.shard_id))
                .or_insert_with(|| (Vec::new(), record, 0));
            serde_json::to_writer(&mut *body, &line).expect("error records serialize");
            body.push(b'\n');
            if seqnum::compare(&record.sequence_number, &first.sequence_number).is_lt() {
                *first = record;
            }
            *count += 1;
        }
        for ((prefix, _), (body, first, count)) in errors {
            objects.push((
                format!("{prefix}{}", self.object_name(first, "")),
                body,
                count,
                true,
            ));
        }

        for (key, body, count, is_error) in objects {
            self.put(&key, body).await;
            if !is_error && let Some((folder, _)) = key.rsplit_once('/') {
                self.written
                    .lock()
                    .expect("not poisoned")
                    .insert(format!("{folder}/"));
            }
            let mut s = self.stats.lock().expect("not poisoned");
            s.objects += 1;
            s.in_flight -= count;
            if is_error {
                s.failed += count;
            } else {
                s.delivered += count;
            }
        }
        let mut s = self.stats.lock().expect("not poisoned");
        s.dropped += dropped;
        s.in_flight -= dropped;
    }

    /// The error record of a failed record, in the shape of its error type.
    fn error_record(
        &self,
        record: &StreamRecord,
        failure: Failure,
        raw: &[u8],
        now: DateTime<Utc>,
    ) -> ErrorRecord {
        let raw_data = STANDARD.encode(raw);
        match failure.output {
            ErrorOutputType::FormatConversionFailed => {
                ErrorRecord::FormatConversion(FormatConversionFailedRecord {
                    attempts_made: failure.attempts,
                    arrival_timestamp: record.arrival.timestamp_millis(),
                    last_error_code: failure.code,
                    last_error_message: failure.message,
                    attempt_ending_timestamp: now.timestamp_millis(),
                    raw_data,
                    sequence_number: record.sequence_number.clone(),
                    sub_sequence_number: 0,
                    data_catalog_table: self.data_catalog_table(),
                })
            }
            _ => ErrorRecord::Processing(ProcessingFailedRecord {
                attempts_made: failure.attempts,
                arrival_timestamp: record.arrival.timestamp_millis(),
                error_code: failure.code,
                error_message: failure.message,
                attempt_ending_timestamp: now.timestamp_millis(),
                raw_data,
                lambda_arn: self.transform.arn(),
            }),
        }
    }

    /// The Glue table the Parquet conversion follows (the template's).
    fn data_catalog_table(&self) -> DataCatalogTable {
        let (account, region) = (names::LOCAL_ACCOUNT, &self.config.region);
        DataCatalogTable {
            catalog_id: account.into(),
            database_name: names::GLUE_DATABASE.into(),
            table_name: self.config.dataset.name().into(),
            region: region.clone(),
            version_id: "LATEST".into(),
            catalog_arn: format!("arn:aws:glue:{region}:{account}:catalog"),
        }
    }

    /// The name of an object of one shard's records, named as Firehose names objects,
    /// except that its unique part is the shard and the sequence number of its first
    /// record instead of a random string: delivered again after a crash, the same range
    /// gets the same key and replaces the object instead of adding a copy.
    fn object_name(&self, first: &StreamRecord, extension: &str) -> String {
        layout::object_name(
            &self.config.settings.name,
            1,
            &first.arrival,
            &format!("{}-{}", first.shard_id, first.sequence_number),
            extension,
        )
    }

    /// Writes one object, retrying as Firehose does until S3 accepts it (backoff from
    /// 0.2 s to 10 s).
    async fn put(&self, key: &str, body: Vec<u8>) {
        let body = axum::body::Bytes::from(body);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .without_max_times();
        let put = || {
            self.s3
                .put_object()
                .bucket(&self.config.settings.bucket)
                .key(key)
                .body(body.clone().into())
                .send()
        };
        let retried = put
            .retry(backoff)
            .notify(|e, delay| {
                tracing::warn!(
                    key,
                    "S3 PutObject failed, retrying in {delay:?}: {}",
                    Report(e)
                );
            })
            .await;
        debug_assert!(retried.is_ok(), "retried without a limit");
    }

    fn delivery_stream_arn(&self) -> String {
        format!(
            "arn:aws:firehose:{}:{}:deliverystream/{}",
            self.config.region,
            names::LOCAL_ACCOUNT,
            self.config.settings.name
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::emulated::firehose::settings::LambdaProcessor;
    use crate::emulated::lambda_host::StubFunction;

    /// A transform that fails its first `failures` invocations with `error`, then answers
    /// every record `Ok`, unchanged, in partition 2021-10-01.
    fn failing(failures: u32, error: fn() -> InvokeError) -> Arc<StubFunction> {
        StubFunction::new(move |call, payload| {
            if call < failures {
                return Err(error());
            }
            let event: serde_json::Value = serde_json::from_slice(payload).unwrap();
            let keys = json!({ "year": "2021", "month": "10", "day": "01" });
            let records: Vec<serde_json::Value> = event["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    json!({ "recordId": r["recordId"], "result": "Ok", "data": r["data"],
                            "metadata": { "partitionKeys": keys } })
                })
                .collect();
            Ok(serde_json::to_vec(&json!({ "records": records }))
                .unwrap()
                .into())
        })
    }

    fn delivery(transform: Arc<dyn Function>, retries: u32) -> Delivery {
        let settings = DeliverySettings {
            name: "streamlake-delivery".into(),
            source: Source::DirectPut,
            bucket: "lake".into(),
            prefix: layout::DATA_PREFIX.into(),
            error_prefix: layout::ERROR_PREFIX.into(),
            buffer_bytes: 1 << 20,
            buffer_interval: Duration::from_secs(1),
            processor: LambdaProcessor {
                function_arn: transform.arn(),
                buffer_bytes: 1 << 20,
                retries,
            },
            format: OutputFormat::Ndjson,
            conversion_table: None,
        };
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .build(),
        );
        Delivery {
            prefix: PrefixTemplate::parse(&settings.prefix).unwrap(),
            error_prefix: PrefixTemplate::parse(&settings.error_prefix).unwrap(),
            config: FirehoseConfig {
                settings,
                max_active_partitions: 500,
                starting_position: StartingPosition::TrimHorizon,
                checkpoints: None,
                journal: None,
                region: "us-east-1".into(),
                dataset: Arc::new(Dataset::weather()),
            },
            s3,
            transform,
            stats: Arc::default(),
            journal: None,
            written: Arc::default(),
        }
    }

    fn records(n: usize) -> Vec<StreamRecord> {
        let shard: Arc<str> = direct_put::DIRECT_PUT_SHARD.into();
        (0..n)
            .map(|i| StreamRecord {
                shard_id: shard.clone(),
                sequence_number: format!("{i:036}"),
                partition_key: String::new(),
                data: format!("{{\"n\":{i}}}\n").into_bytes(),
                arrival: DateTime::from_timestamp_millis(1_633_046_400_000).unwrap(),
                subsequence_number: None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_invocation_is_retried_and_its_records_delivered() {
        let stub = failing(2, || InvokeError::Crashed("signal 9".into()));
        let delivery = delivery(stub.clone(), 3);
        let records = records(3);
        let outcomes = delivery.process(&records, &[0, 1, 2]).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Delivered { prefix, .. } if prefix == "data/year=2021/month=10/day=01/")),
            "every record delivered"
        );
        assert_eq!(stub.calls(), 3, "two failures, then a success");
        assert_eq!(delivery.stats.lock().unwrap().invocations, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_exhausted_fail_every_record_with_the_lambda_error_code() {
        let stub = failing(u32::MAX, || InvokeError::Timeout(Duration::from_secs(60)));
        let delivery = delivery(stub.clone(), 3);
        let records = records(2);
        let outcomes = delivery.process(&records, &[0, 1]).await;
        assert_eq!(stub.calls(), 4, "the first try and 3 retries");
        for outcome in outcomes {
            let Outcome::Failed(failure) = outcome else {
                panic!("delivered")
            };
            assert_eq!(
                (failure.code.as_str(), failure.attempts),
                ("Lambda.FunctionTimeout", 4)
            );
            // The error record Firehose writes for it: the original bytes, base64, the
            // function's ARN, the attempts.
            let record = delivery.error_record(&records[0], failure, &records[0].data, Utc::now());
            let ErrorRecord::Processing(written) = record else {
                panic!("not a processing-failed record")
            };
            assert_eq!(written.error_code, "Lambda.FunctionTimeout");
            assert_eq!(written.attempts_made, 4);
            assert_eq!(written.lambda_arn, stub.arn());
            assert_eq!(STANDARD.decode(&written.raw_data).unwrap(), records[0].data);
            assert_eq!(written.arrival_timestamp, 1_633_046_400_000);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_function_is_not_retried() {
        let stub = failing(u32::MAX, || InvokeError::Stopped);
        let delivery = delivery(stub.clone(), 3);
        let outcomes = delivery.process(&records(1), &[0]).await;
        assert_eq!(stub.calls(), 1);
        assert!(matches!(&outcomes[0], Outcome::Failed(f) if f.code == "Lambda.FunctionError"));
    }
}
