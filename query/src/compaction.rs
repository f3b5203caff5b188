//! Compaction: a partition's many small objects rewritten into one Parquet file.
//!
//! Readers must never see a partition with its data missing or doubled, so compaction
//! follows a manifest protocol, and every reader of this crate honours it:
//! 1. write `_streamlake-compaction-<id>.json`, naming the new object and its sources;
//! 2. write the new object;
//! 3. delete the sources;
//! 4. delete the manifest.
//!
//! A reader that finds a manifest whose new object exists ignores the manifest's sources;
//! otherwise it reads the sources. At every step it reads each record once. Names that
//! start with `_` or `.` are never data (Athena and Hive skip them too; Athena does not know
//! the protocol, and can see a partition doubled between steps 2 and 3).

use std::collections::HashSet;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use streamlake_core::PartitionKeys;
use streamlake_core::columnar::write_parquet;
use streamlake_core::formats::read_batches;
use streamlake_core::lake::{DateRange, Lake, ObjectInfo};

use crate::QueryError;

/// Names of compaction manifests start with this.
pub const MANIFEST_PREFIX: &str = "_streamlake-compaction-";

/// What a compaction manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Name of the object that replaces the sources.
    pub compacted: String,
    /// Names of the objects it replaces.
    pub sources: Vec<String>,
}

/// Partitions listed at once: listing a partition in S3 is a request (or more) of its own.
pub const LIST_CONCURRENCY: usize = 16;

/// The live objects ([`live_objects`]) of each partition, listed [`LIST_CONCURRENCY`] at a
/// time, in the partitions' order.
pub fn live_objects_of(
    lake: &Lake,
    partitions: Vec<PartitionKeys>,
) -> impl Stream<Item = Result<(PartitionKeys, Vec<ObjectInfo>), QueryError>> + '_ {
    futures::stream::iter(partitions)
        .map(move |p| async move { live_objects(lake, &p).await.map(|objects| (p, objects)) })
        .buffered(LIST_CONCURRENCY)
}

/// The objects of a partition a reader must read: data objects, without the sources of
/// a finished compaction.
pub async fn live_objects(
    lake: &Lake,
    partition: &PartitionKeys,
) -> Result<Vec<ObjectInfo>, QueryError> {
    let all = lake.objects(partition).await?;
    let names: HashSet<&str> = all.iter().map(ObjectInfo::name).collect();
    let mut replaced: HashSet<String> = HashSet::new();
    for manifest in all.iter().filter(|o| o.name().starts_with(MANIFEST_PREFIX)) {
        let body = lake.read(&manifest.key).await?;
        match serde_json::from_slice::<Manifest>(&body) {
            Ok(m) if names.contains(m.compacted.as_str()) => replaced.extend(m.sources),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(key = %manifest.key, "ignoring an unreadable compaction manifest: {e}")
            }
        }
    }
    Ok(all
        .into_iter()
        .filter(|o| !o.name().starts_with(['_', '.']) && !replaced.contains(o.name()))
        .collect())
}

/// What compacting one partition did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionCompaction {
    /// The partition.
    pub partition: Option<PartitionKeys>,
    /// Objects replaced.
    pub objects_in: usize,
    /// Their bytes.
    pub bytes_in: u64,
    /// Bytes of the Parquet file written.
    pub bytes_out: u64,
    /// Records moved.
    pub records: u64,
}

/// Compacts every partition of `range` that has more than one object; `each` is called
/// after each partition (compacted or not).
pub async fn compact(
    lake: &Lake,
    range: DateRange,
    mut each: impl FnMut(&PartitionCompaction),
) -> Result<Vec<PartitionCompaction>, QueryError> {
    let mut done = Vec::new();
    for partition in lake.partitions(range).await? {
        let report = compact_partition(lake, &partition).await?;
        each(&report);
        if report.objects_in > 0 {
            done.push(report);
        }
    }
    Ok(done)
}

async fn compact_partition(
    lake: &Lake,
    partition: &PartitionKeys,
) -> Result<PartitionCompaction, QueryError> {
    let mut report = PartitionCompaction {
        partition: Some(*partition),
        ..Default::default()
    };
    let sources = live_objects(lake, partition).await?;
    if sources.len() < 2 {
        return Ok(report);
    }
    let mut batches = Vec::new();
    for object in &sources {
        let body = lake.read(&object.key).await?;
        batches.extend(read_batches(&object.key, &body)?);
        report.bytes_in += object.size;
    }
    report.records = batches.iter().map(|b| b.num_rows() as u64).sum();
    let parquet = write_parquet(&batches).map_err(|e| QueryError::Compaction(e.to_string()))?;
    report.bytes_out = parquet.len() as u64;
    report.objects_in = sources.len();

    let id = uuid::Uuid::new_v4().simple().to_string();
    let manifest = Manifest {
        compacted: format!("compacted-{id}.parquet"),
        sources: sources.iter().map(|o| o.name().to_owned()).collect(),
    };
    let manifest_key = lake.key_in(partition, &format!("{MANIFEST_PREFIX}{id}.json"));
    let manifest_body = serde_json::to_vec(&manifest).expect("manifests serialize");
    lake.write(&manifest_key, manifest_body).await?;
    lake.write(&lake.key_in(partition, &manifest.compacted), parquet)
        .await?;
    for source in &sources {
        lake.delete(&source.key).await?;
    }
    lake.delete(&manifest_key).await?;
    Ok(report)
}
