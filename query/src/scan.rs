//! Scanning records of a date range, with filters.

use futures::TryStreamExt;
use serde_json::{Map, Value};
use streamlake_core::formats::read_records;
use streamlake_core::lake::{DateRange, Lake};

use crate::QueryError;
use crate::filter::Filter;

/// What to scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Days to read.
    pub range: DateRange,
    /// Every filter must match.
    pub filters: Vec<Filter>,
    /// Stop after this many matches.
    pub limit: Option<usize>,
}

/// What a scan read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Partitions opened.
    pub partitions: u64,
    /// Objects read.
    pub objects: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records read.
    pub records: u64,
    /// Records that matched.
    pub matched: u64,
    /// Lines that are not JSON objects (skipped).
    pub unreadable: u64,
}

/// Reads the partitions of the range (objects of any format) and calls `each` with every
/// matching record.
pub async fn scan(
    lake: &Lake,
    options: &ScanOptions,
    mut each: impl FnMut(Map<String, Value>),
) -> Result<ScanStats, QueryError> {
    let mut stats = ScanStats::default();
    let (partitions, hidden) = crate::compaction::partitions_to_read(lake, options.range).await?;
    let mut listed = std::pin::pin!(crate::compaction::live_objects_of(
        lake, &hidden, partitions
    ));
    while let Some((_, objects)) = listed.try_next().await? {
        stats.partitions += 1;
        for object in objects {
            let body = lake.read(&object.key).await?;
            stats.objects += 1;
            stats.bytes += body.len() as u64;
            let (records, unreadable) = read_records(&object.key, &body)?;
            stats.records += records.len() as u64 + unreadable;
            stats.unreadable += unreadable;
            for record in records {
                if options.filters.iter().all(|f| f.matches(&record)) {
                    stats.matched += 1;
                    each(record);
                    if options.limit.is_some_and(|l| stats.matched as usize >= l) {
                        return Ok(stats);
                    }
                }
            }
        }
    }
    Ok(stats)
}
