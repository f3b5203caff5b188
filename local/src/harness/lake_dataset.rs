//! The dataset stored beside the lake (`_dataset.toml` under the dataset's prefix, which
//! Athena and Hive skip): `up` compares the dataset it starts with against the one a
//! previous run stored, refuses a change that would make older objects unreadable unless
//! asked to, and stores its own, so that `query --lake s3://...` needs no `--dataset`.

use streamlake_core::dataset::Dataset;
use streamlake_core::dataset::evolution::Breaking;
use streamlake_core::lake::{Lake, LakeError, LakeLocation};

use crate::clients::Clients;
use crate::error::StackError;

/// The lake of `dataset` in `bucket`.
fn lake(clients: &Clients, bucket: &str, dataset: &Dataset) -> Lake {
    let location = LakeLocation::S3 {
        bucket: bucket.to_owned(),
        prefix: dataset.prefix().to_owned(),
    };
    Lake::with_client(location, clients.s3.clone()).with_granularity(dataset.partition())
}

/// Checks `dataset` against the one stored with its lake (if any), then stores it.
/// `allow_breaking` stores it even when older objects would no longer read.
pub async fn store(
    clients: &Clients,
    bucket: &str,
    dataset: &Dataset,
    allow_breaking: bool,
) -> Result<(), StackError> {
    let lake = lake(clients, bucket, dataset);
    let lake_error = |source: LakeError| StackError::Lake {
        context: format!("the dataset stored at {}", lake.url_of(&lake.dataset_key())),
        source,
    };
    if let Some(text) = lake.read_dataset().await.map_err(lake_error)? {
        let stored = lake.url_of(&lake.dataset_key());
        let older = Dataset::from_toml(&text, &stored)?;
        let changes = dataset.breaking_changes_from(&older);
        if !changes.is_empty() && !allow_breaking {
            return Err(StackError::BreakingDataset {
                stored,
                changes: changes.iter().map(Breaking::to_string).collect(),
            });
        }
        for change in &changes {
            tracing::warn!(
                "dataset {}: {change} (stored anyway, as asked)",
                dataset.name()
            );
        }
    }
    lake.write_dataset(dataset.text()).await.map_err(lake_error)
}
