//! The partition tree: objects, bytes and records per day.

use futures::TryStreamExt;
use streamlake_core::PartitionKeys;
use streamlake_core::formats::{
    PARQUET_FOOTER_BYTES, count_records, parquet_metadata_length, parquet_rows,
};
use streamlake_core::lake::{DateRange, Lake, ObjectInfo};
use streamlake_core::layout::OutputFormat;

use crate::QueryError;

/// What one partition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSummary {
    /// The day.
    pub partition: PartitionKeys,
    /// Objects in it.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    /// Records (lines) in them.
    pub records: u64,
}

/// Summarizes every partition in `range`, calling `each` as each one is counted.
pub async fn summarize_partitions(
    lake: &Lake,
    range: DateRange,
    mut each: impl FnMut(&PartitionSummary),
) -> Result<Vec<PartitionSummary>, QueryError> {
    let mut out = Vec::new();
    let (partitions, hidden) = crate::compaction::partitions_to_read(lake, range).await?;
    let mut listed = std::pin::pin!(crate::compaction::live_objects_of(
        lake, &hidden, partitions
    ));
    while let Some((partition, objects)) = listed.try_next().await? {
        let mut summary = PartitionSummary {
            partition,
            objects: 0,
            bytes: 0,
            records: 0,
        };
        for object in objects {
            summary.objects += 1;
            summary.bytes += object.size;
            summary.records += records_in(lake, &object).await?;
        }
        each(&summary);
        out.push(summary);
    }
    Ok(out)
}

/// The records of one object: a Parquet object's row count is in its footer (one or two
/// range reads, whatever its size); NDJSON lines are counted.
async fn records_in(lake: &Lake, object: &ObjectInfo) -> Result<u64, QueryError> {
    if OutputFormat::of_key(&object.key) != OutputFormat::Parquet {
        let body = lake.read(&object.key).await?;
        return Ok(count_records(&object.key, &body)?);
    }
    // Most footers of the lake's objects fit in the last 64 KiB: one request.
    const TAIL_HINT: u64 = 64 * 1024;
    let size = object.size;
    let mut tail = lake
        .read_range(&object.key, size.saturating_sub(TAIL_HINT)..size)
        .await?;
    // Anything but exactly the 8 footer bytes (an object shorter than that) is refused.
    let footer = &tail[tail.len().saturating_sub(PARQUET_FOOTER_BYTES)..];
    let length = parquet_metadata_length(&object.key, footer)?;
    let needed = length + PARQUET_FOOTER_BYTES;
    if needed > tail.len() {
        let start = size.saturating_sub(needed as u64);
        tail = lake.read_range(&object.key, start..size).await?;
    }
    let end = tail.len() - PARQUET_FOOTER_BYTES;
    let metadata = &tail[end.saturating_sub(length)..end];
    Ok(parquet_rows(&object.key, metadata)?)
}
