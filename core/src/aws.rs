//! The standard AWS configuration, as every streamlake tool loads it.

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::names::DEFAULT_REGION;

/// The SDK's configuration loader with the project's HTTPS client: rustls on `ring`,
/// which builds with a C compiler alone (the SDK's default, `aws-lc-rs`, needs CMake).
/// Clients built from what it loads, and the credential providers it sets up, share that
/// client.
pub fn loader() -> ConfigLoader {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

/// Loads the shared configuration from the standard provider chain (environment,
/// `AWS_PROFILE` and the config files, SSO, container and instance roles), with
/// [`DEFAULT_REGION`] when no region is configured. `AWS_ENDPOINT_URL` points every
/// client at an emulator.
pub async fn load_config() -> SdkConfig {
    // The loader's own region chain, which (unlike `RegionProviderChain::default_provider`)
    // uses its HTTPS client for the instance metadata lookup.
    let config = loader().load().await;
    if config.region().is_some() {
        return config;
    }
    // Loaded again rather than patched, so that the credential providers that depend on
    // the region (STS web identity, SSO) see it too.
    loader()
        .region(Region::from_static(DEFAULT_REGION))
        .load()
        .await
}
