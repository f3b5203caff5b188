//! Reading a Kinesis stream shard by shard, as Firehose and the event source mapping do.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};

use crate::error::StackError;

/// One record read from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Shard it was read from.
    pub shard_id: Arc<str>,
    /// Sequence number (decimal string).
    pub sequence_number: String,
    /// Partition key.
    pub partition_key: String,
    /// Record bytes.
    pub data: Vec<u8>,
    /// Arrival time in the stream.
    pub arrival: DateTime<Utc>,
    /// For a user record taken out of a KPL aggregate, its index in the aggregate.
    pub subsequence_number: Option<u64>,
}

impl StreamRecord {
    /// The user records of a KPL aggregated record, each with its sub-sequence number;
    /// any other record as is ([`streamlake_core::kpl`]).
    pub fn deaggregated(self) -> Vec<StreamRecord> {
        match streamlake_core::kpl::deaggregate(&self.data) {
            Ok(users) => users
                .into_iter()
                .zip(0..)
                .map(|(user, i)| StreamRecord {
                    shard_id: self.shard_id.clone(),
                    sequence_number: self.sequence_number.clone(),
                    partition_key: user.partition_key,
                    data: user.data,
                    arrival: self.arrival,
                    subsequence_number: Some(i),
                })
                .collect(),
            Err(_) => vec![self],
        }
    }

    /// An upper bound of the bytes the record takes in a Lambda event, Kinesis's or
    /// Firehose's: its data in base64, its ids twice, and 512 bytes for the field names,
    /// ARNs and timestamps around them.
    pub fn event_bytes(&self) -> usize {
        self.data.len().div_ceil(3) * 4
            + 2 * (self.shard_id.len() + self.partition_key.len() + self.sequence_number.len())
            + 512
    }

    /// The record's id in a Firehose event: shard and sequence number, and the
    /// sub-sequence number of a user record of an aggregate.
    pub fn record_id(&self) -> String {
        match self.subsequence_number {
            Some(sub) => format!("{}:{}:{sub}", self.shard_id, self.sequence_number),
            None => format!("{}:{}", self.shard_id, self.sequence_number),
        }
    }
}

/// Where a reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record of the shard.
    TrimHorizon,
    /// Only records added from now on.
    Latest,
    /// The first record that arrived at or after this time.
    AtTimestamp(DateTime<Utc>),
    /// Just after this sequence number (a checkpoint).
    AfterSequenceNumber(String),
}

/// Where a reader starts, as the command line and the API name it (`AT_TIMESTAMP` takes
/// its time apart: [`StartingPosition::chosen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Position {
    /// The oldest record of each shard.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
    /// Records from a timestamp on.
    AtTimestamp,
}

impl Position {
    /// The choice a starting position is (a checkpoint's is where trim horizon starts).
    pub fn of(position: &StartingPosition) -> Self {
        match position {
            StartingPosition::Latest => Self::Latest,
            StartingPosition::AtTimestamp(_) => Self::AtTimestamp,
            StartingPosition::TrimHorizon | StartingPosition::AfterSequenceNumber(_) => {
                Self::TrimHorizon
            }
        }
    }
}

impl StartingPosition {
    /// The position chosen, with the time `AtTimestamp` needs; `None` when it is missing.
    pub fn chosen(position: Position, timestamp: Option<DateTime<Utc>>) -> Option<Self> {
        match (position, timestamp) {
            (Position::TrimHorizon, _) => Some(Self::TrimHorizon),
            (Position::Latest, _) => Some(Self::Latest),
            (Position::AtTimestamp, Some(t)) => Some(Self::AtTimestamp(t)),
            (Position::AtTimestamp, None) => None,
        }
    }
}

/// The shards of a stream.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<String>, StackError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = request
            .send()
            .await
            .map_err(|e| StackError::aws(format!("ListShards {stream}"), e))?;
        shards.extend(out.shards().iter().map(|s| s.shard_id().to_owned()));
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// Reads one shard in order.
#[derive(Debug)]
pub struct ShardReader {
    client: Client,
    stream: String,
    shard_id: Arc<str>,
    start: StartingPosition,
    iterator: Option<String>,
    last_sequence_number: Option<String>,
    closed: bool,
}

impl ShardReader {
    /// A reader of `shard_id` from `start`.
    pub fn new(client: Client, stream: &str, shard_id: &str, start: StartingPosition) -> Self {
        Self {
            client,
            stream: stream.to_owned(),
            shard_id: shard_id.into(),
            start,
            iterator: None,
            last_sequence_number: None,
            closed: false,
        }
    }

    /// The shard.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// Whether the shard is closed and fully read.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads up to `limit` records (possibly none). Throttling is retried with backoff
    /// and an expired iterator replaced; other errors are returned.
    pub async fn read(&mut self, limit: i32) -> Result<Vec<StreamRecord>, StackError> {
        if self.closed {
            return Ok(Vec::new());
        }
        loop {
            let iterator = match self.iterator.take() {
                Some(i) => i,
                None => self.new_iterator().await?,
            };
            let read = (|| {
                self.client
                    .get_records()
                    .shard_iterator(&iterator)
                    .limit(limit.clamp(1, 10_000))
                    .send()
            })
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .without_max_times(),
            )
            .sleep(tokio::time::sleep)
            .when(|e| {
                e.as_service_error()
                    .is_some_and(|s| s.is_provisioned_throughput_exceeded_exception())
            })
            .await;
            match read {
                Ok(out) => {
                    self.iterator = out.next_shard_iterator().map(str::to_owned);
                    self.closed = self.iterator.is_none();
                    let records: Vec<StreamRecord> = out
                        .records()
                        .iter()
                        .map(|r| StreamRecord {
                            shard_id: self.shard_id.clone(),
                            sequence_number: r.sequence_number().to_owned(),
                            partition_key: r.partition_key().unwrap_or_default().to_owned(),
                            data: r.data().as_ref().to_vec(),
                            arrival: r
                                .approximate_arrival_timestamp()
                                .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                                .unwrap_or_else(Utc::now),
                            subsequence_number: None,
                        })
                        .collect();
                    if let Some(last) = records.last() {
                        self.last_sequence_number = Some(last.sequence_number.clone());
                    }
                    return Ok(records);
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_expired_iterator_exception()) =>
                {
                    self.iterator = None;
                }
                Err(e) => {
                    return Err(StackError::aws(
                        format!("GetRecords {}/{}", self.stream, self.shard_id),
                        e,
                    ));
                }
            }
        }
    }

    async fn new_iterator(&self) -> Result<String, StackError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(self.shard_id.as_ref());
        let request = match (&self.last_sequence_number, &self.start) {
            (Some(seq), _) | (None, StartingPosition::AfterSequenceNumber(seq)) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, StartingPosition::TrimHorizon) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, StartingPosition::Latest) => {
                request.shard_iterator_type(ShardIteratorType::Latest)
            }
            (None, StartingPosition::AtTimestamp(t)) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(
                    t.timestamp_millis(),
                )),
        };
        let out = request.send().await.map_err(|e| {
            StackError::aws(
                format!("GetShardIterator {}/{}", self.stream, self.shard_id),
                e,
            )
        })?;
        out.shard_iterator().map(str::to_owned).ok_or_else(|| {
            StackError::aws(
                format!("GetShardIterator {}/{}", self.stream, self.shard_id),
                std::io::Error::other("no iterator returned"),
            )
        })
    }
}
