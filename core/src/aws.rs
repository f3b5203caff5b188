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

/// The log directive the command-line tools add to their default filter. `aws_config`
/// logs a warning for each provider of its region and credential chains that finds
/// nothing (on a laptop, three 400-character lines from the instance metadata lookup
/// alone), though a chain that ends with nothing is not a fault: a missing region is
/// [`load_config`]'s one line, missing credentials the failed request's own error.
pub const SDK_LOG_DIRECTIVE: &str = "aws_config=error";

/// Loads the shared configuration from the standard provider chain (environment,
/// `AWS_PROFILE` and the config files, SSO, container and instance roles), with
/// [`DEFAULT_REGION`] when no region is configured: said in one warning that tells how
/// to set one, unless `AWS_ENDPOINT_URL` points every client at an emulator (where the
/// region names nothing real).
pub async fn load_config() -> SdkConfig {
    // The loader's own region chain, which (unlike `RegionProviderChain::default_provider`)
    // uses its HTTPS client for the instance metadata lookup.
    let config = loader().load().await;
    if config.region().is_some() {
        return config;
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_none_or(|e| e.is_empty()) {
        tracing::warn!(
            "no AWS region configured: using {DEFAULT_REGION} (set AWS_REGION, or `region` in your AWS profile: aws configure set region REGION)"
        );
    }
    // Loaded again rather than patched, so that the credential providers that depend on
    // the region (STS web identity, SSO) see it too.
    loader()
        .region(Region::from_static(DEFAULT_REGION))
        .load()
        .await
}
