//! Reading the streamlake lake back: browse its partitions, scan its records.
//!
//! Both work on the lake in S3 or on a local folder with the same layout, and read only
//! the `year=/month=/day=` partitions of the requested date range.

pub mod filter;
pub mod partitions;
pub mod scan;

pub use filter::{Filter, FilterError};
pub use partitions::{PartitionSummary, summarize_partitions};
pub use scan::{ScanOptions, ScanStats, scan};
