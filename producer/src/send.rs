//! Sending entries with `PutRecords` to a Kinesis stream, or with `PutRecordBatch` to a
//! Firehose delivery stream (Direct PUT), retrying only what failed.

use std::time::{Duration, Instant};

use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchError;
use aws_sdk_firehose::types::{PutRecordBatchResponseEntry, Record};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, PutRecordsResultEntry};
use backon::{BackoffBuilder, ExponentialBuilder};
use thiserror::Error;

use crate::batch::{Batcher, Entry, Limits};

/// How the producer sends.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Stream name (or ARN), or the delivery stream's name.
    pub stream: String,
    /// Request limits.
    pub limits: Limits,
    /// Attempts per entry, the first included.
    pub max_attempts: usize,
    /// First retry delay (doubles each retry, with jitter).
    pub min_delay: Duration,
    /// Longest retry delay.
    pub max_delay: Duration,
}

impl ProducerConfig {
    /// Defaults for `stream`: Kinesis limits, 8 attempts, 100 ms to 5 s between them.
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            limits: Limits::default(),
            max_attempts: 8,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// A record that could not be put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// The record.
    pub entry: Entry,
    /// The last error.
    pub reason: String,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records accepted by the stream.
    pub sent: u64,
    /// Bytes of the records sent (data only).
    pub bytes: u64,
    /// Entry retries (an entry retried twice counts twice).
    pub retried: u64,
    /// `PutRecords` requests made.
    pub requests: u64,
    /// Records given up on, with the reason.
    pub failed: Vec<FailedEntry>,
    /// Time spent.
    pub elapsed: Duration,
}

impl Summary {
    /// Records per second sent.
    pub fn records_per_second(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A failure that stops the run: retrying cannot help.
#[derive(Debug, Error)]
pub enum ProduceError {
    /// The stream does not exist, access is denied, or the request is invalid.
    #[error("{operation} to {stream} failed: {message}")]
    Fatal {
        /// `PutRecords` or `PutRecordBatch`.
        operation: &'static str,
        /// Stream name.
        stream: String,
        /// The SDK's error, with its causes.
        message: String,
    },
}

/// Where a producer puts records.
#[derive(Debug, Clone)]
enum Destination {
    /// A Kinesis data stream (`PutRecords`).
    Stream(Client),
    /// A Firehose delivery stream with a Direct PUT source (`PutRecordBatch`).
    DeliveryStream(aws_sdk_firehose::Client),
}

/// Why a request put nothing.
enum PutError {
    /// Retrying cannot help.
    Fatal(String),
    /// Sending again may work.
    Retry(String),
}

impl PutError {
    /// An SDK error, fatal or not, with its causes.
    fn new(fatal: bool, e: impl std::error::Error) -> Self {
        let message = DisplayErrorContext(&e).to_string();
        if fatal {
            PutError::Fatal(message)
        } else {
            PutError::Retry(message)
        }
    }
}

/// Puts records into one stream.
#[derive(Debug, Clone)]
pub struct Producer {
    destination: Destination,
    config: ProducerConfig,
}

impl Producer {
    /// A producer writing to the Kinesis stream `config.stream` with `client`.
    pub fn new(client: Client, config: ProducerConfig) -> Self {
        Self {
            destination: Destination::Stream(client),
            config,
        }
    }

    /// A producer writing to the Direct PUT delivery stream `config.stream` with
    /// `PutRecordBatch`, within its limits ([`Limits::firehose`], whatever `config.limits`
    /// says). A newline is appended to each record that does not end with one: Firehose
    /// concatenates records, and the lake is newline-delimited.
    pub fn firehose(client: aws_sdk_firehose::Client, config: ProducerConfig) -> Self {
        Self {
            destination: Destination::DeliveryStream(client),
            config: ProducerConfig {
                limits: Limits::firehose(),
                ..config
            },
        }
    }

    fn operation(&self) -> &'static str {
        match self.destination {
            Destination::Stream(_) => "PutRecords",
            Destination::DeliveryStream(_) => "PutRecordBatch",
        }
    }

    /// Sends every entry, in order, one request at a time; `progress` is called with the
    /// number of records settled (sent or failed) so far.
    pub async fn send(
        &self,
        entries: impl IntoIterator<Item = Entry>,
        mut progress: impl FnMut(u64),
    ) -> Result<Summary, ProduceError> {
        let start = Instant::now();
        let mut summary = Summary::default();
        let mut batcher = Batcher::new(self.config.limits);
        let newline = matches!(self.destination, Destination::DeliveryStream(_));
        for mut entry in entries {
            if newline && entry.data.last() != Some(&b'\n') {
                entry.data.push(b'\n');
            }
            if let Some(reason) = self.config.limits.reject(&entry) {
                summary.failed.push(FailedEntry { entry, reason });
                continue;
            }
            if let Some(batch) = batcher.push(entry) {
                self.put_batch(batch, &mut summary).await?;
                progress(summary.sent + summary.failed.len() as u64);
            }
        }
        if let Some(batch) = batcher.finish() {
            self.put_batch(batch, &mut summary).await?;
            progress(summary.sent + summary.failed.len() as u64);
        }
        summary.elapsed = start.elapsed();
        Ok(summary)
    }

    /// Puts one batch, retrying the entries that fail until they succeed or the attempts
    /// run out.
    async fn put_batch(
        &self,
        batch: Vec<Entry>,
        summary: &mut Summary,
    ) -> Result<(), ProduceError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.config.min_delay)
            .with_max_delay(self.config.max_delay)
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut pending = batch;
        loop {
            summary.requests += 1;
            let (retry, reason) = match self.put(&pending).await {
                Ok(errors) => {
                    let mut retry = Vec::new();
                    let mut reason = String::new();
                    for (entry, error) in pending.into_iter().zip(errors) {
                        match error {
                            None => {
                                summary.sent += 1;
                                summary.bytes += entry.data.len() as u64;
                            }
                            Some(e) => {
                                reason = e;
                                retry.push(entry);
                            }
                        }
                    }
                    (retry, reason)
                }
                Err(PutError::Fatal(message)) => {
                    return Err(ProduceError::Fatal {
                        operation: self.operation(),
                        stream: self.config.stream.clone(),
                        message,
                    });
                }
                Err(PutError::Retry(reason)) => (pending, reason),
            };
            if retry.is_empty() {
                return Ok(());
            }
            match delays.next() {
                Some(delay) => {
                    tracing::debug!(records = retry.len(), %reason, ?delay, "retrying failed records");
                    summary.retried += retry.len() as u64;
                    tokio::time::sleep(delay).await;
                    pending = retry;
                }
                None => {
                    tracing::warn!(records = retry.len(), %reason, "giving up on records");
                    summary
                        .failed
                        .extend(retry.into_iter().map(|entry| FailedEntry {
                            entry,
                            reason: reason.clone(),
                        }));
                    return Ok(());
                }
            }
        }
    }

    /// One request; per entry, `None` when it was put, or the error.
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Option<String>>, PutError> {
        match &self.destination {
            Destination::Stream(client) => self
                .put_records(client, entries)
                .await
                .map_err(|e| PutError::new(is_fatal(&e), e)),
            Destination::DeliveryStream(client) => self
                .put_record_batch(client, entries)
                .await
                .map_err(|e| PutError::new(is_fatal_for_firehose(&e), e)),
        }
    }

    /// One `PutRecords` request.
    async fn put_records(
        &self,
        client: &Client,
        entries: &[Entry],
    ) -> Result<Vec<Option<String>>, SdkError<PutRecordsError>> {
        let records = entries
            .iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&e.partition_key)
                    .data(Blob::new(e.data.clone()))
                    .build()
                    .expect("partition key and data are set")
            })
            .collect();
        let output = client
            .put_records()
            .stream_name(&self.config.stream)
            .set_records(Some(records))
            .send()
            .await?;
        Ok(results_per_entry(entries.len(), output.records()))
    }

    /// One `PutRecordBatch` request.
    async fn put_record_batch(
        &self,
        client: &aws_sdk_firehose::Client,
        entries: &[Entry],
    ) -> Result<Vec<Option<String>>, SdkError<PutRecordBatchError>> {
        let records = entries
            .iter()
            .map(|e| {
                Record::builder()
                    .data(aws_sdk_firehose::primitives::Blob::new(e.data.clone()))
                    .build()
                    .expect("data is set")
            })
            .collect();
        let output = client
            .put_record_batch()
            .delivery_stream_name(&self.config.stream)
            .set_records(Some(records))
            .send()
            .await?;
        Ok(batch_results_per_entry(
            entries.len(),
            output.request_responses(),
        ))
    }
}

/// `PutRecordBatch` errors no retry can fix (a limit broken, a stream missing).
fn is_fatal_for_firehose(e: &SdkError<PutRecordBatchError>) -> bool {
    match e.as_service_error() {
        Some(PutRecordBatchError::ServiceUnavailableException(_)) => false,
        Some(
            PutRecordBatchError::ResourceNotFoundException(_)
            | PutRecordBatchError::InvalidArgumentException(_)
            | PutRecordBatchError::InvalidKmsResourceException(_)
            | PutRecordBatchError::InvalidSourceException(_),
        ) => true,
        // A limit the producer keeps cannot be broken; a `ValidationException` means
        // the request is malformed, which no retry fixes.
        Some(other) => other.meta().code() == Some("ValidationException"),
        None => false,
    }
}

/// Per entry sent, `None` when the response says it was put, or the error. A response
/// whose results do not match the request one for one cannot say which entries were put:
/// all of them are sent again (a duplicate is harmless downstream; a loss is not).
fn results_per_entry(sent: usize, results: &[PutRecordsResultEntry]) -> Vec<Option<String>> {
    let errors = results.iter().map(|r| (r.error_code(), r.error_message()));
    errors_per_entry("PutRecords", sent, errors)
}

/// [`results_per_entry`] for a `PutRecordBatch` response.
fn batch_results_per_entry(
    sent: usize,
    results: &[PutRecordBatchResponseEntry],
) -> Vec<Option<String>> {
    let errors = results.iter().map(|r| (r.error_code(), r.error_message()));
    errors_per_entry("PutRecordBatch", sent, errors)
}

/// The error of each entry, from the (code, message) of each result of `operation`.
fn errors_per_entry<'a>(
    operation: &str,
    sent: usize,
    results: impl ExactSizeIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Vec<Option<String>> {
    if results.len() != sent {
        let reason = format!(
            "the {operation} response holds {} results for {sent} records",
            results.len()
        );
        return vec![Some(reason); sent];
    }
    results
        .map(|(code, message)| {
            code.map(|code| match message {
                Some(message) => format!("{code}: {message}"),
                None => code.to_owned(),
            })
        })
        .collect()
}

/// Errors no retry can fix.
fn is_fatal(e: &SdkError<PutRecordsError>) -> bool {
    matches!(
        e.as_service_error(),
        Some(
            PutRecordsError::ResourceNotFoundException(_)
                | PutRecordsError::InvalidArgumentException(_)
                | PutRecordsError::AccessDeniedException(_)
                | PutRecordsError::KmsAccessDeniedException(_)
                | PutRecordsError::KmsNotFoundException(_)
                | PutRecordsError::KmsDisabledException(_),
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .sequence_number("1")
            .shard_id("shardId-000000000000")
            .build()
    }

    fn throttled() -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .error_code("ProvisionedThroughputExceededException")
            .error_message("Rate exceeded")
            .build()
    }

    #[test]
    fn results_match_entries_one_for_one() {
        assert_eq!(
            results_per_entry(2, &[ok(), throttled()]),
            [
                None,
                Some("ProvisionedThroughputExceededException: Rate exceeded".into())
            ]
        );
    }

    #[test]
    fn a_response_shorter_than_the_request_sends_every_entry_again() {
        let results = results_per_entry(3, &[ok()]);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|r| {
            r.as_deref()
                .is_some_and(|r| r.contains("1 results for 3 records"))
        }));
    }
}
