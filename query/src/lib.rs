//! Reading the streamlake lake back: browse its partitions, scan its records.
//!
//! Both work on the lake in S3 or on a local folder with the same layout, on NDJSON,
//! GZIP'd NDJSON and Parquet objects, and read only the `year=/month=/day=` partitions of
//! the requested date range.

pub mod filter;
pub mod partitions;
pub mod scan;

pub use filter::{Filter, FilterError};

use thiserror::Error;

/// Failure to read the lake.
#[derive(Debug, Error)]
pub enum QueryError {
    /// Listing or fetching failed.
    #[error(transparent)]
    Lake(#[from] streamlake_core::lake::LakeError),
    /// An object is not of the format its name says.
    #[error(transparent)]
    Format(#[from] streamlake_core::formats::ReadError),
}
pub use partitions::{PartitionSummary, summarize_partitions};
pub use scan::{ScanOptions, ScanStats, scan};
