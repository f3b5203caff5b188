//! The Direct PUT source of a delivery stream: records that producers send with
//! `PutRecord` and `PutRecordBatch` (answered by [`crate::http::firehose`]) go into the
//! same delivery buffer as a Kinesis source's records.
//!
//! Each accepted record gets a record id, which the API returns (`RecordId`) and which
//! orders the records as a sequence number orders a shard's; the delivered objects are
//! named after the first record id they hold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use tokio::sync::mpsc;

use super::FirehoseStats;
use crate::emulated::kinesis_source::StreamRecord;

/// The "shard" of Direct PUT records in object names and record ids.
pub const DIRECT_PUT_SHARD: &str = "direct-put";

/// Where a Direct PUT delivery stream takes records in.
#[derive(Debug, Clone)]
pub struct DirectPutInlet {
    records: mpsc::Sender<Vec<StreamRecord>>,
    stats: Arc<Mutex<FirehoseStats>>,
    shard: Arc<str>,
    /// Microseconds since the epoch when the inlet opened: record ids of a later run sort
    /// after this run's, so objects of two runs never share a name.
    epoch: u64,
    next: Arc<AtomicU64>,
}

/// The delivery stream is stopping and takes no more records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delivery stream is stopping")]
pub struct Stopped;

impl DirectPutInlet {
    pub(super) fn new(
        records: mpsc::Sender<Vec<StreamRecord>>,
        stats: Arc<Mutex<FirehoseStats>>,
    ) -> Self {
        let epoch = u64::try_from(Utc::now().timestamp_micros()).unwrap_or_default();
        Self {
            records,
            stats,
            shard: DIRECT_PUT_SHARD.into(),
            epoch,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Takes records in (waiting while the delivery buffer is full) and returns their
    /// record ids, in order.
    pub async fn put(&self, records: Vec<Vec<u8>>) -> Result<Vec<String>, Stopped> {
        let first = self.next.fetch_add(records.len() as u64, Ordering::Relaxed);
        let arrival = Utc::now();
        let records: Vec<StreamRecord> = records
            .into_iter()
            .zip(first..)
            .map(|(data, n)| StreamRecord {
                shard_id: self.shard.clone(),
                // Decimal and of one width, as sequence numbers compare.
                sequence_number: format!("{:020}{n:016}", self.epoch),
                partition_key: String::new(),
                data,
                arrival,
                subsequence_number: None,
            })
            .collect();
        let ids = records.iter().map(|r| r.sequence_number.clone()).collect();
        let count = records.len() as u64;
        // Counted before sending, so the delivery never settles more than was read.
        {
            let mut s = self.stats.lock().expect("not poisoned");
            s.records_read += count;
            s.in_flight += count;
        }
        if self.records.send(records).await.is_err() {
            let mut s = self.stats.lock().expect("not poisoned");
            s.records_read -= count;
            s.in_flight -= count;
            return Err(Stopped);
        }
        Ok(ids)
    }
}

/// The Direct PUT delivery streams the local stack plays, by name: the stack's HTTP front
/// answers `PutRecord` and `PutRecordBatch` for these and forwards the rest.
#[derive(Debug, Clone, Default)]
pub struct DirectPutRoutes {
    inlets: Arc<RwLock<HashMap<String, DirectPutInlet>>>,
}

impl DirectPutRoutes {
    /// Routes `stream`'s records to `inlet`.
    pub fn register(&self, stream: &str, inlet: DirectPutInlet) {
        self.inlets
            .write()
            .expect("not poisoned")
            .insert(stream.to_owned(), inlet);
    }

    /// Stops routing `stream`'s records (its delivery stream stopped).
    pub fn remove(&self, stream: &str) {
        self.inlets.write().expect("not poisoned").remove(stream);
    }

    /// The inlet of `stream`, if the stack plays it.
    pub fn get(&self, stream: &str) -> Option<DirectPutInlet> {
        self.inlets
            .read()
            .expect("not poisoned")
            .get(stream)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlake_core::seqnum;

    #[tokio::test]
    async fn record_ids_are_sequence_numbers_in_order_across_calls() {
        let (tx, mut rx) = mpsc::channel(4);
        let stats = Arc::new(Mutex::new(FirehoseStats::default()));
        let inlet = DirectPutInlet::new(tx, stats.clone());
        let a = inlet.put(vec![b"a".to_vec(), b"b".to_vec()]).await.unwrap();
        let b = inlet.put(vec![b"c".to_vec()]).await.unwrap();
        let ids: Vec<&String> = a.iter().chain(&b).collect();
        assert!(ids.windows(2).all(|w| seqnum::compare(w[0], w[1]).is_lt()));
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        assert_eq!(stats.lock().unwrap().records_read, 3);
        drop(rx);
        assert_eq!(inlet.put(vec![b"d".to_vec()]).await, Err(Stopped));
        assert_eq!(stats.lock().unwrap().records_read, 3);
    }
}
