//! AWS clients pointed at the emulator, and the environment the stack's processes get.

use aws_config::SdkConfig;
use streamlake_core::lake::{Lake, LakeLocation};
use streamlake_core::names::DEFAULT_REGION;

/// Placeholder access key for the stack's own emulator, which accepts any key. It is not
/// a credential anywhere else; against AWS only the standard provider chain is used.
const EMULATOR_KEY: &str = "streamlake-local-emulator";

/// The clients the stack uses, all on one endpoint.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Shared configuration (endpoint, region, credentials).
    pub config: SdkConfig,
    /// Kinesis.
    pub kinesis: aws_sdk_kinesis::Client,
    /// S3, path-style.
    pub s3: aws_sdk_s3::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// Firehose (the delivery streams' settings).
    pub firehose: aws_sdk_firehose::Client,
    /// Environment for child processes (Lambdas, CLIs) so they reach the same endpoint.
    pub child_env: Vec<(String, String)>,
}

impl Clients {
    /// The whole of `bucket` as a lake (keys from the bucket's root), read through
    /// [`Clients::s3`].
    pub fn bucket(&self, bucket: &str) -> Lake {
        let location = LakeLocation::S3 {
            bucket: bucket.to_owned(),
            prefix: String::new(),
        };
        Lake::with_client(location, self.s3.clone())
    }

    /// Clients for `endpoint`. For a local emulator the region is fixed and the
    /// placeholder key is used; for an endpoint named by `AWS_ENDPOINT_URL` the standard
    /// configuration applies.
    pub async fn connect(endpoint: &str, local_emulator: bool) -> Self {
        let mut child_env = vec![("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned())];
        let config = if local_emulator {
            for (k, v) in [
                ("AWS_REGION", DEFAULT_REGION),
                ("AWS_ACCESS_KEY_ID", EMULATOR_KEY),
                ("AWS_SECRET_ACCESS_KEY", EMULATOR_KEY),
            ] {
                child_env.push((k.to_owned(), v.to_owned()));
            }
            streamlake_core::aws::loader()
                .endpoint_url(endpoint)
                .region(DEFAULT_REGION)
                .test_credentials()
                .load()
                .await
        } else {
            streamlake_core::aws::load_config().await
        };
        Self::of(config, child_env)
    }

    /// The same clients on another endpoint (the fault proxy in front of the emulator):
    /// same region and credentials, and child processes sent there too.
    pub fn through(&self, endpoint: &str) -> Self {
        let config = self.config.to_builder().endpoint_url(endpoint).build();
        let mut child_env = self.child_env.clone();
        for (key, value) in &mut child_env {
            if key == "AWS_ENDPOINT_URL" {
                endpoint.clone_into(value);
            }
        }
        Self::of(config, child_env)
    }

    /// Every client from one configuration.
    fn of(config: SdkConfig, child_env: Vec<(String, String)>) -> Self {
        Self {
            kinesis: aws_sdk_kinesis::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            firehose: aws_sdk_firehose::Client::new(&config),
            s3: streamlake_core::lake::s3_client_from(&config),
            config,
            child_env,
        }
    }

    /// The region in use.
    pub fn region(&self) -> String {
        self.config
            .region()
            .map_or_else(|| DEFAULT_REGION.to_owned(), ToString::to_string)
    }
}
