//! Shard checkpoints kept on disk, so a restarted stack resumes where it stopped.
//!
//! One JSON file per stream instance (its ARN and creation time: a stream created again
//! under the same name starts over), holding, per reader (`firehose`, the mapping's
//! function) and shard, the sequence number everything up to which is settled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::StackError;

type Positions = BTreeMap<String, BTreeMap<String, String>>;

/// Checkpoints of one stream instance.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
    positions: Arc<Mutex<Positions>>,
}

impl CheckpointStore {
    /// Opens (or starts) the checkpoints of the stream identified by `identity`, in `dir`.
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
        Ok(Self {
            path,
            positions: Arc::new(Mutex::new(positions)),
        })
    }

    /// The checkpoint of a reader on a shard.
    pub fn get(&self, reader: &str, shard: &str) -> Option<String> {
        self.positions
            .lock()
            .expect("not poisoned")
            .get(reader)
            .and_then(|shards| shards.get(shard))
            .cloned()
    }

    /// Records a checkpoint and writes the file (atomically: a temporary file renamed).
    /// Writes are serialized, so the file never goes back to an older state.
    pub fn set(&self, reader: &str, shard: &str, sequence_number: &str) {
        let mut positions = self.positions.lock().expect("not poisoned");
        positions
            .entry(reader.to_owned())
            .or_default()
            .insert(shard.to_owned(), sequence_number.to_owned());
        let json = serde_json::to_vec_pretty(&*positions).expect("checkpoints serialize");
        let tmp = self.path.with_extension(format!(
            "json.{}.{}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let written = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!("cannot save checkpoints to {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_reopening() {
        let dir =
            std::env::temp_dir().join(format!("streamlake-checkpoints-{}", std::process::id()));
        let identity = "arn:aws:kinesis:us-east-1:123456789012:stream/s@2026-11-22T00:00:00Z";
        let store = CheckpointStore::open(&dir, identity).unwrap();
        assert_eq!(store.get("firehose", "shardId-000000000000"), None);
        store.set("firehose", "shardId-000000000000", "42");
        store.set("consumer", "shardId-000000000000", "40");
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
}
