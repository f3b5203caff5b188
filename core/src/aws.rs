//! The standard AWS configuration, as every streamlake tool loads it.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::names::DEFAULT_REGION;

/// Loads the shared configuration from the standard provider chain (environment,
/// `AWS_PROFILE` and the config files, SSO, container and instance roles), with
/// [`DEFAULT_REGION`] when no region is configured. `AWS_ENDPOINT_URL` points every
/// client at an emulator.
pub async fn load_config() -> SdkConfig {
    let region = RegionProviderChain::default_provider().or_else(DEFAULT_REGION);
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}
