//! Where invalid records go: one JSON object per record in S3, named by stream, shard and
//! sequence number, so a replayed batch overwrites instead of duplicating (and a stream
//! created again, whose shards and sequence numbers may start over, adds instead of
//! overwriting another stream's).

use aws_sdk_s3::error::DisplayErrorContext;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use serde::Serialize;
use streamlake_core::time::Rfc3339;

use crate::plan::InvalidEntry;

/// An S3 location for invalid records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Bucket.
    pub bucket: String,
    /// Key prefix, empty or ending in `/`.
    pub prefix: String,
}

/// What a dead-letter object holds.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetterRecord<'a> {
    stream_name: &'a str,
    shard_id: &'a str,
    sequence_number: &'a str,
    partition_key: &'a str,
    approximate_arrival_timestamp: String,
    reason: &'a str,
    /// The record's bytes, base64.
    raw_data: String,
}

impl DeadLetter {
    /// The key of an invalid record.
    pub fn key(&self, stream: &str, shard_id: &str, sequence_number: &str) -> String {
        format!("{}{stream}/{shard_id}/{sequence_number}.json", self.prefix)
    }

    /// Writes the invalid records; returns the sequence numbers that could not be written.
    pub async fn write(
        &self,
        s3: &aws_sdk_s3::Client,
        stream: &str,
        shard_id: &str,
        invalid: &[InvalidEntry],
        concurrency: usize,
    ) -> Vec<String> {
        futures::stream::iter(invalid)
            .map(|entry| async move {
                let record = DeadLetterRecord {
                    stream_name: stream,
                    shard_id,
                    sequence_number: &entry.sequence_number,
                    partition_key: &entry.partition_key,
                    approximate_arrival_timestamp: Rfc3339(&entry.arrival).to_string(),
                    reason: &entry.reason,
                    raw_data: STANDARD.encode(&entry.data),
                };
                let body = serde_json::to_vec(&record).expect("dead-letter records serialize");
                let key = self.key(stream, shard_id, &entry.sequence_number);
                let result = s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .content_type("application/json")
                    .body(body.into())
                    .send()
                    .await;
                match result {
                    Ok(_) => None,
                    Err(e) => {
                        tracing::error!(
                            key,
                            "dead-letter write failed: {}",
                            DisplayErrorContext(e)
                        );
                        Some(entry.sequence_number.clone())
                    }
                }
            })
            .buffer_unordered(concurrency.max(1))
            .filter_map(|failed| async move { failed })
            .collect()
            .await
    }
}
