//! The partition tree: objects, bytes and records per day.

use streamlake_core::PartitionKeys;
use streamlake_core::formats::count_records;
use streamlake_core::lake::{DateRange, Lake};

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
    for partition in lake.partitions(range).await? {
        let mut summary = PartitionSummary {
            partition,
            objects: 0,
            bytes: 0,
            records: 0,
        };
        for object in crate::compaction::live_objects(lake, &partition).await? {
            let body = lake.read(&object.key).await?;
            summary.objects += 1;
            summary.bytes += object.size;
            summary.records += count_records(&object.key, &body)?;
        }
        each(&summary);
        out.push(summary);
    }
    Ok(out)
}
