//! The loop Firehose and the event source mapping both run per shard: start where the
//! shard's checkpoint says, read while the consumer has room, pace empty reads to the
//! shard's read limit, back off on errors, stop when told.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;

use crate::clients::Clients;
use crate::emulated::checkpoint::CheckpointStore;
use crate::emulated::kinesis_source::{ShardReader, StartingPosition, StreamRecord, list_shards};
use crate::error::{Report, StackError};

/// Most records one `GetRecords` call returns.
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html>
pub const MAX_GET_RECORDS: usize = 10_000;

/// The wait after a read that found nothing: one read per second per shard and consumer,
/// as Kinesis recommends so that several consumers (here Firehose and the event source
/// mapping) stay within a shard's five reads per second
/// (<https://docs.aws.amazon.com/streams/latest/dev/kinesis-low-latency.html>,
/// <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>), and as
/// Lambda's event source mapping polls. A read that returned records is followed at once.
const EMPTY_READ_WAIT: Duration = Duration::from_secs(1);

/// The wait while the consumer has no room for more records.
const FULL_WAIT: Duration = Duration::from_millis(50);

/// Where the records a poller reads go.
pub trait Intake: Send {
    /// How many records may be read now; 0 waits (the reader is ahead of its consumer).
    fn room(&self) -> usize {
        MAX_GET_RECORDS
    }

    /// Takes the records of one read, in order; `false` when the consumer is gone.
    fn take(&mut self, records: Vec<StreamRecord>) -> impl Future<Output = bool> + Send;
}

/// A reader of each shard of `stream`, starting after `consumer`'s checkpoint of that
/// shard, or at `otherwise` where it has none.
pub async fn readers(
    clients: &Clients,
    stream: &str,
    consumer: &str,
    checkpoints: Option<&CheckpointStore>,
    otherwise: &StartingPosition,
) -> Result<Vec<ShardReader>, StackError> {
    let shards = list_shards(&clients.kinesis, stream).await?;
    Ok(shards
        .into_iter()
        .map(|shard| {
            let start = checkpoints
                .and_then(|c| c.get(consumer, &shard))
                .map_or_else(|| otherwise.clone(), StartingPosition::AfterSequenceNumber);
            ShardReader::new(clients.kinesis.clone(), stream, &shard, start)
        })
        .collect())
}

/// Reads `reader`'s shard into `intake` until stopped, the shard is closed and read, or
/// the intake is gone. `consumer` names who reads, in the warnings about failed reads.
pub async fn poll(
    mut reader: ShardReader,
    consumer: &str,
    intake: &mut impl Intake,
    mut stop: watch::Receiver<bool>,
) {
    let backoff = || {
        ExponentialBuilder::default()
            .with_min_delay(EMPTY_READ_WAIT)
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .build()
    };
    let mut failures = backoff();
    while !*stop.borrow() && !reader.is_closed() {
        let room = intake.room().min(MAX_GET_RECORDS);
        let wait = if room == 0 {
            FULL_WAIT
        } else {
            match reader.read(i32::try_from(room).unwrap_or(i32::MAX)).await {
                Ok(records) if records.is_empty() => EMPTY_READ_WAIT,
                Ok(records) => {
                    failures = backoff();
                    if !intake.take(records).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(
                        shard = reader.shard_id(),
                        "{consumer} cannot read the stream: {}",
                        Report(&e)
                    );
                    failures.next().unwrap_or(EMPTY_READ_WAIT)
                }
            }
        };
        let _ = tokio::time::timeout(wait, stop.changed()).await;
    }
}
