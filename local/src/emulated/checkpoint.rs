//! Shard checkpoints kept on disk, so a restarted stack resumes where it stopped.
//!
//! One JSON file per stream instance (its ARN and creation time: a stream created again
//! under the same name starts over), holding, per reader (`firehose`, the mapping's
//! function) and shard, the sequence number everything up to which is settled.
//!
//! A checkpoint is set in memory (readers settle batches on async workers and must not
//! wait on the disk); one flusher task writes the file when something changed, at most
//! every [`FLUSH_EVERY`], on the blocking pool, atomically (a temporary file renamed), and
//! [`CheckpointStore::flush`] writes it at stop. A crash loses at most the last interval's
//! checkpoints: those records are read again, never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::{Report, StackError};

/// The longest a settled checkpoint waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

type Positions = BTreeMap<String, BTreeMap<String, String>>;

/// Checkpoints of one stream instance (cheap to clone: clones share them).
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The checkpoints and their version (incremented by every change).
    positions: Mutex<(Positions, u64)>,
    /// Wakes the flusher.
    changed: Arc<Notify>,
    /// The version on disk; held while writing, so writes never go back in time.
    written: tokio::sync::Mutex<u64>,
    flusher: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

impl CheckpointStore {
    /// Opens (or starts) the checkpoints of the stream identified by `identity`, in `dir`,
    /// and starts their flusher (on the current Tokio runtime).
    pub fn open(dir: &Path, identity: &str) -> Result<Self, StackError> {
        std::fs::create_dir_all(dir)
            .map_err(StackError::io(format!("creating {}", dir.display())))?;
        let name: String = identity
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{name}.json"));
        let positions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable checkpoints {}: {e}", path.display());
                Positions::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Positions::new(),
            Err(e) => return Err(StackError::io(format!("reading {}", path.display()))(e)),
        };
        let changed = Arc::new(Notify::new());
        let shared = Arc::new_cyclic(|store| Shared {
            path,
            positions: Mutex::new((positions, 0)),
            changed: changed.clone(),
            written: tokio::sync::Mutex::new(0),
            flusher: tokio::spawn(flush_when_changed(store.clone(), changed)),
        });
        Ok(Self { shared })
    }

    /// A folder beside the checkpoints' file, of the same stream instance:
    /// `<file stem>.<name>/` (a stream created again starts with a new one).
    pub fn folder_beside(&self, name: &str) -> PathBuf {
        self.shared.path.with_extension(name)
    }

    /// The checkpoint of a reader on a shard.
    pub fn get(&self, reader: &str, shard: &str) -> Option<String> {
        self.shared
            .positions
            .lock()
            .expect("not poisoned")
            .0
            .get(reader)
            .and_then(|shards| shards.get(shard))
            .cloned()
    }

    /// Every checkpoint: by reader, by shard.
    pub fn all(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.shared
            .positions
            .lock()
            .expect("not poisoned")
            .0
            .clone()
    }

    /// Records a checkpoint in memory; the flusher writes it within [`FLUSH_EVERY`].
    pub fn set(&self, reader: &str, shard: &str, sequence_number: &str) {
        {
            let mut guard = self.shared.positions.lock().expect("not poisoned");
            let (positions, version) = &mut *guard;
            positions
                .entry(reader.to_owned())
                .or_default()
                .insert(shard.to_owned(), sequence_number.to_owned());
            *version += 1;
        }
        self.shared.changed.notify_one();
    }

    /// Writes the checkpoints now if they changed since the last write.
    pub async fn flush(&self) -> Result<(), StackError> {
        self.shared.write().await
    }
}

impl Shared {
    async fn write(&self) -> Result<(), StackError> {
        let mut written = self.written.lock().await;
        let (json, version) = {
            let guard = self.positions.lock().expect("not poisoned");
            if guard.1 == *written {
                return Ok(());
            }
            let json = serde_json::to_vec_pretty(&guard.0).expect("checkpoints serialize");
            (json, guard.1)
        };
        let path = self.path.clone();
        let context = format!("saving checkpoints to {}", path.display());
        tokio::task::spawn_blocking(move || {
            let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
            std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path))
        })
        .await
        .map_err(|e| StackError::io(context.clone())(std::io::Error::other(e)))?
        .map_err(StackError::io(context))?;
        *written = version;
        Ok(())
    }
}

/// The flusher: after a change, waits [`FLUSH_EVERY`] for more, then writes them all.
async fn flush_when_changed(store: Weak<Shared>, changed: Arc<Notify>) {
    loop {
        changed.notified().await;
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(shared) = store.upgrade() else {
            return;
        };
        if let Err(e) = shared.write().await {
            tracing::warn!("{}", Report(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "streamlake-checkpoints-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn checkpoints_survive_reopening() {
        let dir = dir("reopen");
        let identity = "arn:aws:kinesis:us-east-1:123456789012:stream/s@2026-11-22T00:00:00Z";
        let store = CheckpointStore::open(&dir, identity).unwrap();
        assert_eq!(store.get("firehose", "shardId-000000000000"), None);
        store.set("firehose", "shardId-000000000000", "42");
        store.set("consumer", "shardId-000000000000", "40");
        store.flush().await.unwrap();
        let again = CheckpointStore::open(&dir, identity).unwrap();
        assert_eq!(
            again.get("firehose", "shardId-000000000000").as_deref(),
            Some("42")
        );
        assert_eq!(
            again.get("consumer", "shardId-000000000000").as_deref(),
            Some("40")
        );
        let other = CheckpointStore::open(&dir, "another stream").unwrap();
        assert_eq!(other.get("firehose", "shardId-000000000000"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn set_stays_in_memory_until_the_flusher_writes_it() {
        let dir = dir("flusher");
        let store = CheckpointStore::open(&dir, "stream").unwrap();
        store.set("firehose", "shard", "7");
        let file = dir.join("stream.json");
        assert!(!file.exists(), "set does not touch the disk");
        // The flusher writes it by itself, after its interval.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !file.exists() {
            assert!(tokio::time::Instant::now() < deadline, "never flushed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reopened = CheckpointStore::open(&dir, "stream").unwrap();
        assert_eq!(reopened.get("firehose", "shard").as_deref(), Some("7"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
