//! Sending failed records through the stream again, once the cause is fixed.
//!
//! The sources are Firehose's `errors/processing-failed/` objects (JSON lines, each with the
//! record's original bytes in `rawData`) and the consumer's dead letters
//! (`errors/consumer-invalid/<shard>/<sequence number>.json`). A record that failed in both
//! branches (malformed input fails in both) is in both places and is sent once. After
//! every record of an error object is accepted by the stream, a marker
//! `errors/redriven/<object key>` is written, and objects with a marker are skipped from
//! then on: a second redrive does not send them again. An interrupted redrive may send the
//! records of an unmarked object again.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_s3::Client;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use streamlake_core::lake::{Lake, LakeError, LakeLocation};
use streamlake_core::layout::CONSUMER_DEAD_LETTER_PREFIX;
use thiserror::Error;

use crate::send::ProduceError;
use crate::{Entry, Producer};

/// Where Firehose writes records its transform could not process.
pub const PROCESSING_FAILED_PREFIX: &str = "errors/processing-failed/";
/// Where a redriven error object's marker goes (followed by the object's key).
pub const REDRIVEN_PREFIX: &str = "errors/redriven/";

/// Which failed records to send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Firehose's `errors/processing-failed/`.
    ProcessingFailed,
    /// The consumer's dead letters.
    DeadLetters,
}

impl Source {
    /// The key prefix of the source's objects.
    pub fn prefix(self) -> &'static str {
        match self {
            Source::ProcessingFailed => PROCESSING_FAILED_PREFIX,
            Source::DeadLetters => CONSUMER_DEAD_LETTER_PREFIX,
        }
    }
}

/// What to redrive.
#[derive(Debug, Clone)]
pub struct RedriveConfig {
    /// The lake's bucket.
    pub bucket: String,
    /// The sources to read.
    pub sources: Vec<Source>,
    /// Only error objects written on or after this day (UTC).
    pub from: Option<NaiveDate>,
    /// Only error objects written on or before this day (UTC).
    pub to: Option<NaiveDate>,
    /// Count what would be sent, send nothing, mark nothing.
    pub dry_run: bool,
}

/// What a redrive did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveSummary {
    /// Error objects read, per source.
    pub objects: BTreeMap<Source, usize>,
    /// Error objects skipped because an earlier redrive sent them.
    pub already_redriven: usize,
    /// Records found in the objects read.
    pub records: usize,
    /// Records not sent because the same bytes are sent from the other source.
    pub duplicates: usize,
    /// Records accepted by the stream (in a dry run: that would be sent).
    pub sent: u64,
    /// Records the stream did not accept, with the reason (their objects stay unmarked).
    pub failed: Vec<(String, String)>,
    /// Error objects marked as redriven.
    pub marked: usize,
}

/// Failure to redrive.
#[derive(Debug, Error)]
pub enum RedriveError {
    /// Listing or reading the error objects failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// Writing a marker failed.
    #[error("S3 PutObject s3://{bucket}/{key} failed")]
    Mark {
        /// The bucket.
        bucket: String,
        /// The marker's key.
        key: String,
        /// The SDK's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An error object does not hold what its prefix says.
    #[error("s3://{bucket}/{key} is not an error record with rawData: {message}")]
    Unreadable {
        /// The bucket.
        bucket: String,
        /// The object.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Sending to the stream failed for good.
    #[error(transparent)]
    Send(#[from] ProduceError),
}

/// The part of an error record a redrive needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord {
    raw_data: String,
    #[serde(default)]
    partition_key: Option<String>,
}

/// One error object to redrive.
struct ErrorObject {
    source: Source,
    key: String,
    records: Vec<Entry>,
}

/// Sends the failed records of `config.sources` through the stream of `producer`, and
/// marks the error objects whose records were all accepted.
pub async fn redrive(
    s3: &Client,
    producer: &Producer,
    config: &RedriveConfig,
) -> Result<RedriveSummary, RedriveError> {
    let mut summary = RedriveSummary::default();
    let bucket = Lake::with_client(
        LakeLocation::S3 {
            bucket: config.bucket.clone(),
            prefix: String::new(),
        },
        s3.clone(),
    );
    let marked: HashSet<String> = bucket
        .objects_under(REDRIVEN_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| o.key.strip_prefix(REDRIVEN_PREFIX).map(str::to_owned))
        .collect();
    let mut objects = Vec::new();
    let mut sources = config.sources.clone();
    sources.sort_unstable();
    sources.dedup();
    for source in sources {
        for object in bucket.objects_under(source.prefix()).await? {
            let key = object.key;
            let day = object.modified.unwrap_or_else(Utc::now).date_naive();
            if config.from.is_some_and(|from| day < from) || config.to.is_some_and(|to| day > to) {
                continue;
            }
            if marked.contains(&key) {
                summary.already_redriven += 1;
                continue;
            }
            let body = bucket.read(&key).await?;
            let records = parse(&body, &key).map_err(|message| RedriveError::Unreadable {
                bucket: config.bucket.clone(),
                key: key.clone(),
                message,
            })?;
            *summary.objects.entry(source).or_default() += 1;
            summary.records += records.len();
            objects.push(ErrorObject {
                source,
                key,
                records,
            });
        }
    }

    // A record in both sources failed in both branches: sent once (from processing-failed).
    let mut pending: HashMap<Vec<u8>, usize> = HashMap::new();
    for object in objects
        .iter()
        .filter(|o| o.source == Source::ProcessingFailed)
    {
        for record in &object.records {
            *pending.entry(record.data.clone()).or_default() += 1;
        }
    }
    let mut entries = Vec::new();
    for object in &mut objects {
        let records = std::mem::take(&mut object.records);
        for record in records {
            if object.source == Source::DeadLetters
                && let Some(count) = pending.get_mut(&record.data)
                && *count > 0
            {
                *count -= 1;
                summary.duplicates += 1;
                continue;
            }
            entries.push(record);
        }
    }
    if config.dry_run {
        summary.sent = entries.len() as u64;
        return Ok(summary);
    }

    let sent = producer.send(entries, |_| {}).await?;
    summary.sent = sent.sent;
    let failed_objects: HashSet<&str> = sent
        .failed
        .iter()
        .filter_map(|f| object_of(&f.entry.partition_key))
        .collect();
    summary.failed = sent
        .failed
        .iter()
        .map(|f| (f.entry.partition_key.clone(), f.reason.clone()))
        .collect();
    for object in &objects {
        if failed_objects.contains(object.key.as_str()) {
            continue;
        }
        let marker = serde_json::json!({
            "redrivenAt": Utc::now().to_rfc3339(),
            "source": object.key,
        });
        put(
            s3,
            &config.bucket,
            &format!("{REDRIVEN_PREFIX}{}", object.key),
            marker.to_string().into_bytes(),
        )
        .await?;
        summary.marked += 1;
    }
    Ok(summary)
}

/// The records of an error object: JSON lines (processing-failed) or one JSON object (a
/// dead letter), each with `rawData`. Each record's partition key names its object and
/// line, so that a record the stream refuses can be traced back to its object.
fn parse(body: &[u8], key: &str) -> Result<Vec<Entry>, String> {
    body.split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(line, json)| {
            let record: RawRecord =
                serde_json::from_slice(json).map_err(|e| format!("line {}: {e}", line + 1))?;
            let data = STANDARD
                .decode(&record.raw_data)
                .map_err(|e| format!("line {}: rawData is not base64: {e}", line + 1))?;
            // Kinesis partition keys are at most 256 characters; the original key is kept
            // when the record has one, else the object and line spread records over shards.
            let partition_key = record
                .partition_key
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .unwrap_or_else(|| format!("line-{}", line + 1));
            Ok(Entry {
                partition_key: format!("{partition_key}|{line}|{key}")
                    .chars()
                    .take(256)
                    .collect(),
                data,
            })
        })
        .collect()
}

/// The error object a redriven record came from (see [`parse`]).
fn object_of(partition_key: &str) -> Option<&str> {
    partition_key.splitn(3, '|').nth(2)
}

async fn put(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), RedriveError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| RedriveError::Mark {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_processing_failed_lines_and_dead_letters() {
        let lines = format!(
            "{}\n{}\n",
            serde_json::json!({"rawData": STANDARD.encode(b"first"), "errorCode": "Lambda.FunctionError"}),
            serde_json::json!({"rawData": STANDARD.encode(b"second")}),
        );
        let key = "errors/processing-failed/2021/10/01/00/x";
        let records = parse(lines.as_bytes(), key).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].data, b"second");
        assert_eq!(object_of(&records[1].partition_key), Some(key));

        let dead = serde_json::json!({
            "shardId": "shardId-000000000000", "sequenceNumber": "49", "partitionKey": "station-7",
            "reason": "bad", "rawData": STANDARD.encode(b"third"),
        });
        let key = "errors/consumer-invalid/streamlake-records/shardId-000000000000/49.json";
        let records = parse(dead.to_string().as_bytes(), key).unwrap();
        assert_eq!(records[0].data, b"third");
        assert!(records[0].partition_key.starts_with("station-7|"));
        assert_eq!(object_of(&records[0].partition_key), Some(key));
    }

    #[test]
    fn an_unreadable_record_names_its_line() {
        let error = parse(b"{\"rawData\":\"e30=\"}\nnot json\n", "k").unwrap_err();
        assert!(error.starts_with("line 2:"), "{error}");
        let error = parse(b"{\"rawData\":\"***\"}", "k").unwrap_err();
        assert!(error.contains("base64"), "{error}");
    }
}
