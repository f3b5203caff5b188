//! The consumer's configuration, from its environment.

use std::env;

use streamlake_core::routing::{Routing, RoutingParseError};
use thiserror::Error;

/// Environment variable holding the routing (`PRCP=Precipitation,...`).
pub const ROUTING_VAR: &str = "STREAMLAKE_ROUTING";
/// Environment variable holding the number of concurrent writes.
pub const CONCURRENCY_VAR: &str = "STREAMLAKE_WRITE_CONCURRENCY";

/// How the consumer routes and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Datatype -> table.
    pub routing: Routing,
    /// At most this many `UpdateItem` requests in flight.
    pub write_concurrency: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            routing: Routing::default(),
            write_concurrency: 16,
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
        Ok(config)
    }
}
