//! The consumer's configuration, from its environment.

use std::env;

use streamlake_core::dataset::{Dataset, DatasetError};
use streamlake_core::lake::LakeLocation;
use thiserror::Error;

use crate::dead_letter::DeadLetter;
use crate::tables::Tables;

/// Environment variable holding the prefix of the tables' names (the deploy's
/// `TablePrefix`; empty by default).
pub const TABLE_PREFIX_VAR: &str = "STREAMLAKE_TABLE_PREFIX";
/// Environment variable holding the number of concurrent writes.
pub const CONCURRENCY_VAR: &str = "STREAMLAKE_WRITE_CONCURRENCY";
/// Environment variable naming where invalid records go (`s3://bucket/prefix/`).
pub const DEAD_LETTER_VAR: &str = "STREAMLAKE_DEAD_LETTER";

/// What the consumer writes, and how.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The dataset and its tables.
    pub tables: Tables,
    /// At most this many requests in flight.
    pub write_concurrency: usize,
    /// Where invalid records are kept; without it they are only logged.
    pub dead_letter: Option<DeadLetter>,
}

impl ConsumerConfig {
    /// A configuration writing `tables`, 16 requests at a time, without dead letters.
    pub fn new(tables: Tables) -> Self {
        Self {
            tables,
            write_concurrency: 16,
            dead_letter: None,
        }
    }
}

/// A configuration that cannot be read.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The dataset file cannot be used.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The dataset has no `[dynamodb]` section.
    #[error("dataset {0:?} has no [dynamodb] section: it names no table for the consumer")]
    NoTables(String),
    /// The concurrency is not a positive integer.
    #[error("{CONCURRENCY_VAR}: {0:?} is not a positive integer")]
    Concurrency(String),
    /// The dead-letter location is not `s3://bucket/prefix/`.
    #[error("{DEAD_LETTER_VAR}: {0:?} is not s3://bucket/prefix/")]
    DeadLetter(String),
}

impl ConsumerConfig {
    /// Reads the configuration from the environment: the dataset file named by
    /// `STREAMLAKE_DATASET` (required), and the optional variables above.
    pub fn from_env() -> Result<Self, ConfigError> {
        let prefix = env::var(TABLE_PREFIX_VAR).unwrap_or_default();
        let mut config = Self::new(Tables::new(Dataset::from_env()?, prefix.trim())?);
        if let Ok(n) = env::var(CONCURRENCY_VAR) {
            config.write_concurrency = n
                .parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .ok_or(ConfigError::Concurrency(n))?;
        }
        if let Ok(location) = env::var(DEAD_LETTER_VAR).map(|l| l.trim().to_owned())
            && !location.is_empty()
        {
            config.dead_letter = match location.parse() {
                Ok(LakeLocation::S3 { bucket, prefix }) => Some(DeadLetter { bucket, prefix }),
                _ => return Err(ConfigError::DeadLetter(location)),
            };
        }
        Ok(config)
    }
}
