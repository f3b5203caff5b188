//! The consumer's configuration, from its environment.

use std::env;

use streamlake_core::lake::LakeLocation;
use streamlake_core::routing::{Routing, RoutingParseError};
use thiserror::Error;

use crate::dead_letter::DeadLetter;

/// Environment variable holding the routing (`PRCP=Precipitation,...`).
pub const ROUTING_VAR: &str = "STREAMLAKE_ROUTING";
/// Environment variable holding the number of concurrent writes.
pub const CONCURRENCY_VAR: &str = "STREAMLAKE_WRITE_CONCURRENCY";
/// Environment variable naming the tumbling-window summary table.
pub const SUMMARY_TABLE_VAR: &str = "STREAMLAKE_SUMMARY_TABLE";
/// Environment variable naming where invalid records go (`s3://bucket/prefix/`).
pub const DEAD_LETTER_VAR: &str = "STREAMLAKE_DEAD_LETTER";

/// How the consumer routes and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Datatype -> table.
    pub routing: Routing,
    /// At most this many requests in flight.
    pub write_concurrency: usize,
    /// Where invalid records are kept; without it they are only logged.
    pub dead_letter: Option<DeadLetter>,
    /// Table of the tumbling-window aggregates.
    pub summary_table: String,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            routing: Routing::default(),
            write_concurrency: 16,
            dead_letter: None,
            summary_table: crate::window::SUMMARY_TABLE.to_owned(),
        }
    }
}

/// A configuration variable that cannot be read.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The routing does not parse.
    #[error("{ROUTING_VAR}: {0}")]
    Routing(#[from] RoutingParseError),
    /// The concurrency is not a positive integer.
    #[error("{CONCURRENCY_VAR}: {0:?} is not a positive integer")]
    Concurrency(String),
    /// The dead-letter location is not `s3://bucket/prefix/`.
    #[error("{DEAD_LETTER_VAR}: {0:?} is not s3://bucket/prefix/")]
    DeadLetter(String),
}

impl ConsumerConfig {
    /// Reads the configuration from the environment; unset variables keep their defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Ok(routing) = env::var(ROUTING_VAR) {
            config.routing = routing.parse()?;
        }
        if let Ok(n) = env::var(CONCURRENCY_VAR) {
            config.write_concurrency = n
                .parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .ok_or(ConfigError::Concurrency(n))?;
        }
        if let Ok(table) = env::var(SUMMARY_TABLE_VAR).map(|t| t.trim().to_owned())
            && !table.is_empty()
        {
            config.summary_table = table;
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
