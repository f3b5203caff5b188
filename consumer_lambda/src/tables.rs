//! What the consumer writes: the dataset, its `[dynamodb]` section, and the deployed
//! names of its tables.

use streamlake_core::dataset::Dataset;
use streamlake_core::dataset::dynamodb::DynamoDb;

use crate::config::ConfigError;

/// The dataset the consumer follows, with the prefix of its tables' names.
#[derive(Debug, Clone)]
pub struct Tables {
    dataset: Dataset,
    prefix: String,
}

impl Tables {
    /// The tables of `dataset`, named `<prefix><name>`; a dataset without a `[dynamodb]`
    /// section has no consumer.
    pub fn new(dataset: Dataset, prefix: impl Into<String>) -> Result<Self, ConfigError> {
        if dataset.dynamodb().is_none() {
            return Err(ConfigError::NoTables(dataset.name().to_owned()));
        }
        Ok(Self {
            dataset,
            prefix: prefix.into(),
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Its `[dynamodb]` section.
    pub fn dynamodb(&self) -> &DynamoDb {
        self.dataset.dynamodb().expect("checked in Tables::new")
    }

    /// The deployed name of a table of the section.
    pub fn name(&self, table: &str) -> String {
        format!("{}{table}", self.prefix)
    }
}
