//! Reading the streamlake lake back: browse its partitions, scan its records, query it
//! with SQL (Apache DataFusion), compact it.
//!
//! Both work on the lake in S3 or on a local folder with the same layout, on NDJSON,
//! GZIP'd NDJSON and Parquet objects, and read only the `year=/month=/day=` (`hour=`)
//! partitions of the requested date range. The records' shape is the lake's dataset file
//! ([`lake_dataset`]).

pub mod athena;
pub mod chart;
pub mod cloudformation;
pub mod compaction;
pub mod compaction_log;
pub mod convert;
pub mod filter;
pub mod local_file;
pub mod log_table;
pub mod named_objects;
pub mod ndjson_scan;
pub mod output;
pub mod partitions;
pub mod pruning;
pub mod scan;
pub mod sql;
pub mod store;
pub mod table;
pub mod view_grouping;
pub mod whole_object;

pub use filter::{Filter, FilterError};

use std::path::Path;

use streamlake_core::dataset::{Dataset, DatasetError};
use streamlake_core::lake::Lake;
use thiserror::Error;

/// The dataset of a lake's records: the file given (`--dataset`), else the one stored
/// beside the lake ([`Lake::read_dataset`]), else the default (weather).
pub async fn lake_dataset(lake: &Lake, given: Option<&Path>) -> Result<Dataset, QueryError> {
    if let Some(path) = given {
        return Ok(Dataset::load_path(path)?);
    }
    match lake.read_dataset().await? {
        Some(text) => Ok(Dataset::from_toml(
            &text,
            &lake.url_of(&lake.dataset_key()),
        )?),
        None => Ok(Dataset::weather()),
    }
}

/// Failure to read the lake.
#[derive(Debug, Error)]
pub enum QueryError {
    /// Listing or fetching failed.
    #[error(transparent)]
    Lake(#[from] streamlake_core::lake::LakeError),
    /// An object is not of the format its name says.
    #[error(transparent)]
    Format(#[from] streamlake_core::formats::ReadError),
    /// The dataset file cannot be used.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The SQL failed.
    #[error(transparent)]
    Sql(datafusion::error::DataFusionError),
    /// An object of the lake could not be read (named, whatever DataFusion wrapped it in).
    #[error("{0}")]
    Object(named_objects::ObjectError),
    /// Arrow could not format the result.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// The object store for DataFusion could not be set up.
    #[error("object store: {0}")]
    Store(String),
    /// A compaction could not write its file.
    #[error("compaction: {0}")]
    Compaction(String),
    /// Another compaction took over this compaction's claim on a day (this one went a
    /// whole lease without renewing it).
    #[error(
        "compaction {id} of {day} lost its claim to another compaction (it went a whole lease without renewal); the day is left to that one"
    )]
    ClaimLost {
        /// The day folder.
        day: String,
        /// The compaction.
        id: String,
    },
    /// A compaction run was stopped on purpose ([`compaction::Compactor::stop_after`]).
    #[error("compaction stopped after {changes} changes, as asked")]
    Interrupted {
        /// Changes made to the lake and its log.
        changes: usize,
    },
}
pub use partitions::{PartitionSummary, summarize_partitions};

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        match named_objects::object_error(&error) {
            Some(object) => QueryError::Object(named_objects::ObjectError {
                object: object.object.clone(),
                reason: object.reason.clone(),
            }),
            None => QueryError::Sql(error),
        }
    }
}
pub use scan::{ScanOptions, ScanStats, scan};
