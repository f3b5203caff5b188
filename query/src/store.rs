//! The object store DataFusion reads an S3 lake through, signed with credentials from the
//! standard AWS provider chain (profiles, SSO, roles: whatever the AWS CLI would use).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use object_store::CredentialProvider;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use streamlake_core::lake::LakeLocation;

use crate::QueryError;

/// Registers the lake's object store with `ctx`; returns its URL.
pub async fn register(
    ctx: &SessionContext,
    location: &LakeLocation,
) -> Result<ObjectStoreUrl, QueryError> {
    let LakeLocation::S3 { bucket, .. } = location else {
        return Ok(ObjectStoreUrl::local_filesystem());
    };
    let shared = streamlake_core::aws::load_config().await;
    let credentials = shared
        .credentials_provider()
        .ok_or_else(|| QueryError::Store("no AWS credentials provider is configured".into()))?;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(shared.region().map_or("us-east-1", |r| r.as_ref()))
        .with_credentials(Arc::new(SdkCredentials {
            provider: credentials,
            cached: Mutex::new(None),
        }));
    if let Some(endpoint) = shared.endpoint_url() {
        // An emulator: plain HTTP and path-style addressing.
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    let store = builder
        .build()
        .map_err(|e| QueryError::Store(e.to_string()))?;
    let url = ObjectStoreUrl::parse(format!("s3://{bucket}"))
        .map_err(|e| QueryError::Store(e.to_string()))?;
    ctx.register_object_store(url.as_ref(), Arc::new(store));
    Ok(url)
}

/// The SDK's credentials, cached until shortly before they expire.
#[derive(Debug)]
struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        if let Some((credential, expiry)) = self.cached.lock().expect("not poisoned").as_ref()
            && expiry.is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300))
        {
            return Ok(credential.clone());
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_owned(),
            secret_key: c.secret_access_key().to_owned(),
            token: c.session_token().map(str::to_owned),
        });
        *self.cached.lock().expect("not poisoned") = Some((credential.clone(), c.expiry()));
        Ok(credential)
    }
}
