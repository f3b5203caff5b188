//! The lake's objects per partition for `status` and the dashboard, kept without listing
//! the whole bucket at every snapshot: a lake of a year of hourly partitions holds 8,760
//! folders, and `up` takes a snapshot every two seconds.
//!
//! [`LakeIndex::build`] lists the lake once (one flat `ListObjectsV2` over its prefix, a
//! thousand keys a page). After that, a snapshot ([`LakeIndex::refresh`]) lists only the
//! partitions the stack's Firehose wrote into within the recent window (one request each)
//! and replaces their entries; the totals are the sum of the entries, so they move with
//! every object the stack writes. Changes the stack does not make (a `query compact`, an
//! object copied in by hand) show within [`FULL_LISTING_EVERY`], when the whole lake is
//! listed again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use streamlake_core::PartitionKeys;
use streamlake_core::lake::Lake;

use crate::error::StackError;

/// How often the whole lake is listed again.
pub const FULL_LISTING_EVERY: Duration = Duration::from_secs(300);

/// How long a partition the stack wrote into stays in the recent window by default.
pub const RECENT_WINDOW: Duration = Duration::from_secs(600);

/// Objects and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objects {
    /// Objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Objects {
    fn add(&mut self, size: u64) {
        self.objects += 1;
        self.bytes += size;
    }
}

/// The whole lake, as totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeTotals {
    /// Partitions holding data.
    pub partitions: u64,
    /// Their objects and bytes.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The lake's data objects per partition, and which partitions are recent.
#[derive(Debug)]
pub struct LakeIndex {
    /// The bucket, keys from its root.
    bucket: Lake,
    prefix: String,
    window: Duration,
    partitions: BTreeMap<String, Objects>,
    /// When the stack last wrote into each partition of the window.
    written: HashMap<String, Instant>,
    /// The newest data object seen: (last modified, key).
    newest: Option<(Option<DateTime<Utc>>, String)>,
    listed: Instant,
}

impl LakeIndex {
    /// Lists the lake under `prefix` of `bucket` (a lake over the whole bucket) once;
    /// partitions written into stay recent for `window`.
    pub async fn build(bucket: Lake, prefix: &str, window: Duration) -> Result<Self, StackError> {
        let mut index = Self {
            bucket,
            prefix: prefix.to_owned(),
            window,
            partitions: BTreeMap::new(),
            written: HashMap::new(),
            newest: None,
            listed: Instant::now(),
        };
        index.list_all().await?;
        Ok(index)
    }

    /// [`LakeIndex::build`] over the lake of `stack`.
    pub async fn of_stack(stack: &crate::LocalStack, window: Duration) -> Result<Self, StackError> {
        let config = stack.config();
        let bucket = stack.clients().bucket(&config.bucket);
        Self::build(bucket, config.dataset.prefix(), window).await
    }

    /// Takes in the data prefixes the stack wrote objects under since the last refresh
    /// (`<lake prefix><partition>/`) and lists the partitions of the window again (or the
    /// whole lake, every [`FULL_LISTING_EVERY`]).
    pub async fn refresh(
        &mut self,
        written: impl IntoIterator<Item = String>,
    ) -> Result<(), StackError> {
        let now = Instant::now();
        for prefix in written {
            if let Some(partition) = PartitionKeys::from_path(&prefix) {
                self.written.insert(partition.to_string(), now);
            }
        }
        let window = self.window;
        self.written
            .retain(|_, at| now.duration_since(*at) <= window);
        if now.duration_since(self.listed) >= FULL_LISTING_EVERY {
            return self.list_all().await;
        }
        let recent: BTreeSet<String> = self.written.keys().cloned().collect();
        for partition in recent {
            let objects = self.list(&format!("{}{partition}/", self.prefix)).await?;
            match objects.get(&partition) {
                Some(o) => self.partitions.insert(partition, *o),
                None => self.partitions.remove(&partition),
            };
        }
        Ok(())
    }

    /// The partitions the stack wrote into within the window, with their objects.
    pub fn recent(&self) -> BTreeMap<String, Objects> {
        self.written
            .keys()
            .filter_map(|p| Some((p.clone(), *self.partitions.get(p)?)))
            .collect()
    }

    /// The whole lake.
    pub fn totals(&self) -> LakeTotals {
        self.partitions
            .values()
            .fold(LakeTotals::default(), |t, o| LakeTotals {
                partitions: t.partitions + 1,
                objects: t.objects + o.objects,
                bytes: t.bytes + o.bytes,
            })
    }

    /// The key of the newest data object seen.
    pub fn newest(&self) -> Option<&str> {
        self.newest.as_ref().map(|(_, key)| key.as_str())
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    async fn list_all(&mut self) -> Result<(), StackError> {
        self.partitions = self.list(&self.prefix.clone()).await?;
        self.listed = Instant::now();
        Ok(())
    }

    /// The data objects under `prefix`, per partition (noting the newest).
    async fn list(&mut self, prefix: &str) -> Result<BTreeMap<String, Objects>, StackError> {
        let mut out: BTreeMap<String, Objects> = BTreeMap::new();
        let objects =
            self.bucket
                .objects_under(prefix)
                .await
                .map_err(|source| StackError::Lake {
                    context: "listing the lake".into(),
                    source,
                })?;
        for object in objects {
            let Some(partition) = PartitionKeys::from_path(&object.key) else {
                continue;
            };
            if streamlake_core::lake::is_hidden(&object.key) {
                continue;
            }
            out.entry(partition.to_string())
                .or_default()
                .add(object.size);
            self.newest = self.newest.take().max(Some((object.modified, object.key)));
        }
        Ok(out)
    }
}
