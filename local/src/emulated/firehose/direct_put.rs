//! The Direct PUT source of a delivery stream: records that producers send with
//! `PutRecord` and `PutRecordBatch` (answered by [`crate::http::firehose`]) go into the
//! same delivery buffer as a Kinesis source's records.
//!
//! Each accepted record gets a record id, which the API returns (`RecordId`) and which
//! orders the records as a sequence number orders a shard's; the delivered objects are
//! named after the first record id they hold. With a journal ([`super::journal`]) a call
//! is answered only once its records are on disk, and the delivery stream's checkpoint
//! says which of them are delivered: a restarted stack delivers the rest, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use super::FirehoseStats;
use super::journal::Journal;
use crate::emulated::kinesis_source::StreamRecord;

/// The "shard" of Direct PUT records in object names and record ids.
pub const DIRECT_PUT_SHARD: &str = "direct-put";

/// Most calls one journal write (one `fsync`) takes in together.
const GROUP_CALLS: usize = 64;

/// Records the journal's records from an earlier run are sent into the buffer by (a
/// `PutRecordBatch` holds at most 500).
const REPLAY_BATCH: usize = 500;

/// Where a Direct PUT delivery stream takes records in.
#[derive(Debug, Clone)]
pub struct DirectPutInlet {
    calls: mpsc::Sender<Call>,
}

/// One `PutRecord`/`PutRecordBatch` call's records, and where its answer goes.
#[derive(Debug)]
struct Call {
    records: Vec<Vec<u8>>,
    answer: Answer,
}

/// Why records were not taken in (the call is answered `ServiceUnavailableException`,
/// and its producer sends them again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// The delivery stream is stopping.
    #[error("the delivery stream is stopping")]
    Stopped,
    /// The journal could not keep them.
    #[error("the Direct PUT journal cannot keep the records: {0}")]
    Journal(String),
}

impl DirectPutInlet {
    /// Starts taking records in: each call's records get record ids, are written to
    /// `journal` (when there is one) and sent into the delivery buffer, in id order,
    /// after the journal's own records left from an earlier run (`replay`).
    pub(super) fn start(
        records: mpsc::Sender<Vec<StreamRecord>>,
        stats: Arc<Mutex<FirehoseStats>>,
        journal: Option<Arc<Mutex<Journal>>>,
        replay: Vec<StreamRecord>,
    ) -> Self {
        let (calls, incoming) = mpsc::channel(GROUP_CALLS);
        let last = journal
            .as_ref()
            .and_then(|j| j.lock().expect("not poisoned").last_id().map(str::to_owned));
        let ids = RecordIds::after(last.as_deref());
        tokio::spawn(
            TakeIn {
                records,
                stats,
                journal,
                ids,
            }
            .run(incoming, replay),
        );
        Self { calls }
    }

    /// Takes records in (on disk first, when the stream keeps a journal; waiting while
    /// the delivery buffer is full) and returns their record ids, in order.
    pub async fn put(&self, records: Vec<Vec<u8>>) -> Result<Vec<String>, PutError> {
        let (answer, answered) = oneshot::channel();
        self.calls
            .send(Call { records, answer })
            .await
            .map_err(|_| PutError::Stopped)?;
        answered.await.map_err(|_| PutError::Stopped)?
    }
}

/// Record ids: decimal, of one width, as sequence numbers compare; the first part is the
/// microsecond the inlet opened (later than any id of the journal), so ids of a later run
/// sort after this run's and objects of two runs never share a name.
#[derive(Debug)]
struct RecordIds {
    epoch: u64,
    next: u64,
}

impl RecordIds {
    fn after(last: Option<&str>) -> Self {
        let now = u64::try_from(Utc::now().timestamp_micros()).unwrap_or_default();
        let last_epoch = last
            .and_then(|id| id.get(..20))
            .and_then(|e| e.parse::<u64>().ok());
        Self {
            epoch: last_epoch.map_or(now, |e| now.max(e + 1)),
            next: 0,
        }
    }

    fn next(&mut self) -> String {
        let id = format!("{:020}{:016}", self.epoch, self.next);
        self.next += 1;
        id
    }
}

/// Where a call's answer goes.
type Answer = oneshot::Sender<Result<Vec<String>, PutError>>;

/// Answers every call of a group that the journal could not keep.
fn fail(answers: Vec<Answer>, error: &dyn std::fmt::Display) {
    tracing::error!("the Direct PUT journal cannot keep records: {error}");
    for answer in answers {
        let _ = answer.send(Err(PutError::Journal(error.to_string())));
    }
}

/// The task that takes calls in, one group at a time.
struct TakeIn {
    records: mpsc::Sender<Vec<StreamRecord>>,
    stats: Arc<Mutex<FirehoseStats>>,
    journal: Option<Arc<Mutex<Journal>>>,
    ids: RecordIds,
}

impl TakeIn {
    async fn run(mut self, mut incoming: mpsc::Receiver<Call>, replay: Vec<StreamRecord>) {
        if !replay.is_empty() {
            tracing::info!(
                records = replay.len(),
                "delivering the Direct PUT records the journal kept from the last run"
            );
            // A call's worth at a time, so the buffer is cut by size and time as usual.
            let mut replay = replay.into_iter().peekable();
            while replay.peek().is_some() {
                let batch: Vec<StreamRecord> = replay.by_ref().take(REPLAY_BATCH).collect();
                if !self.enqueue(batch).await {
                    return;
                }
            }
        }
        let mut group = Vec::with_capacity(GROUP_CALLS);
        while incoming.recv_many(&mut group, GROUP_CALLS).await > 0 {
            self.take(std::mem::take(&mut group)).await;
        }
    }

    /// Gives a group of calls their ids, writes them to the journal with one `fsync`,
    /// sends them into the buffer and answers each.
    async fn take(&mut self, calls: Vec<Call>) {
        let shard: Arc<str> = DIRECT_PUT_SHARD.into();
        let arrival = Utc::now();
        let (answers, mut batches): (Vec<Answer>, Vec<Vec<StreamRecord>>) = calls
            .into_iter()
            .map(|call| {
                let batch = call
                    .records
                    .into_iter()
                    .map(|data| StreamRecord {
                        shard_id: shard.clone(),
                        sequence_number: self.ids.next(),
                        partition_key: String::new(),
                        data,
                        arrival,
                        subsequence_number: None,
                    })
                    .collect();
                (call.answer, batch)
            })
            .unzip();
        if let Some(journal) = &self.journal {
            let journal = journal.clone();
            // The records go to the blocking pool and come back: written, never copied.
            let written = tokio::task::spawn_blocking(move || {
                let written = journal
                    .lock()
                    .expect("not poisoned")
                    .append(batches.iter().flatten());
                (batches, written)
            })
            .await;
            batches = match written {
                Ok((back, Ok(()))) => back,
                Ok((_, Err(e))) => return fail(answers, &e),
                Err(e) => return fail(answers, &e),
            };
        }
        for (answer, batch) in answers.into_iter().zip(batches) {
            let ids = batch.iter().map(|r| r.sequence_number.clone()).collect();
            // Once in the journal, records are accepted even if the delivery has just
            // stopped: the next start delivers them.
            let accepted = self.enqueue(batch).await || self.journal.is_some();
            let _ = answer.send(if accepted {
                Ok(ids)
            } else {
                Err(PutError::Stopped)
            });
        }
    }

    /// Sends records into the delivery buffer (waiting while it is full); `false` once
    /// the delivery has stopped.
    async fn enqueue(&self, records: Vec<StreamRecord>) -> bool {
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
            return false;
        }
        true
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
        let inlet = DirectPutInlet::start(tx, stats.clone(), None, Vec::new());
        let a = inlet.put(vec![b"a".to_vec(), b"b".to_vec()]).await.unwrap();
        let b = inlet.put(vec![b"c".to_vec()]).await.unwrap();
        let ids: Vec<&String> = a.iter().chain(&b).collect();
        assert!(ids.windows(2).all(|w| seqnum::compare(w[0], w[1]).is_lt()));
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        assert_eq!(stats.lock().unwrap().records_read, 3);
        drop(rx);
        assert_eq!(inlet.put(vec![b"d".to_vec()]).await, Err(PutError::Stopped));
        assert_eq!(stats.lock().unwrap().records_read, 3);
    }

    #[tokio::test]
    async fn journaled_records_are_on_disk_before_the_answer_and_come_back_first() {
        let dir = std::env::temp_dir().join(format!("streamlake-inlet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let shard: Arc<str> = DIRECT_PUT_SHARD.into();
        let stats = Arc::new(Mutex::new(FirehoseStats::default()));
        let (journal, replay) = Journal::open(&dir, &shard, None).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let journal = Arc::new(Mutex::new(journal));
        let inlet = DirectPutInlet::start(tx, stats.clone(), Some(journal), replay);
        let first = inlet
            .put(vec![b"a\n".to_vec(), b"b\n".to_vec()])
            .await
            .unwrap();
        // Answered: on disk, whatever happens to the process now.
        let (_, on_disk) = Journal::open(&dir, &shard, None).unwrap();
        assert_eq!(on_disk.len(), 2);
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        drop((inlet, rx));

        // The next run: the records past the checkpoint first, under their own ids, then
        // new ones after them.
        let (journal, replay) = Journal::open(&dir, &shard, Some(&first[0])).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let journal = Arc::new(Mutex::new(journal));
        let inlet = DirectPutInlet::start(tx, stats, Some(journal), replay);
        let replayed = rx.recv().await.unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].sequence_number, first[1]);
        assert_eq!(replayed[0].data, b"b\n");
        let later = inlet.put(vec![b"c\n".to_vec()]).await.unwrap();
        assert!(seqnum::compare(&first[1], &later[0]).is_lt());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
