//! The whole pipeline on one machine: emulator, resources, Lambdas, Firehose and the
//! event source mapping.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use streamlake_core::layout;
use streamlake_core::names;
use streamlake_core::routing::Routing;

use crate::binaries::Binaries;
use crate::clients::Clients;
use crate::emulator::Emulator;
use crate::error::StackError;
use crate::esm::{EventSourceMapping, MappingConfig, MappingStats};
use crate::firehose::{Firehose, FirehoseConfig, FirehoseStats};
use crate::kinesis_source::StartingPosition;
use crate::lambda_host::{FunctionSpec, LambdaFunction};
use crate::resources::{self, Resources};

/// Everything that can be set about the local stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Folder for the emulator's virtualenv, logs and state.
    pub state_dir: PathBuf,
    /// Kinesis stream.
    pub stream: String,
    /// Shards of the stream when it is created.
    pub shards: i32,
    /// Bucket of the lake.
    pub bucket: String,
    /// Datatype -> DynamoDB table.
    pub routing: Routing,
    /// Firehose delivery stream name.
    pub delivery_stream: String,
    /// Firehose buffer size.
    pub buffer_bytes: usize,
    /// Firehose buffer interval.
    pub buffer_interval: Duration,
    /// Bytes of records per transform invocation.
    pub processor_buffer_bytes: usize,
    /// Event source mapping batch size.
    pub batch_size: usize,
    /// Event source mapping batching window.
    pub batching_window: Duration,
    /// Retries of a failing consumer batch (`None`: until it succeeds).
    pub max_retries: Option<u32>,
    /// Lambda invocation timeout.
    pub function_timeout: Duration,
}

impl StackConfig {
    /// Local defaults: the project's resource names, and buffers small enough that data
    /// shows up in S3 within seconds.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            state_dir,
            stream: names::STREAM.into(),
            shards: 2,
            bucket: names::BUCKET.into(),
            routing: Routing::default(),
            delivery_stream: names::DELIVERY_STREAM.into(),
            buffer_bytes: 1024 * 1024,
            buffer_interval: Duration::from_secs(2),
            processor_buffer_bytes: 1024 * 1024,
            batch_size: 100,
            batching_window: Duration::ZERO,
            max_retries: Some(3),
            function_timeout: Duration::from_secs(60),
        }
    }
}

/// A running local stack.
pub struct LocalStack {
    config: StackConfig,
    emulator: Emulator,
    clients: Clients,
    binaries: Binaries,
    log_dir: PathBuf,
    transform: Arc<LambdaFunction>,
    consumer: Arc<LambdaFunction>,
    firehose: Option<Firehose>,
    mapping: Option<EventSourceMapping>,
}

impl LocalStack {
    /// Starts the emulator, creates what is missing, starts both Lambdas, Firehose
    /// delivery and the event source mapping.
    pub async fn start(config: StackConfig) -> Result<Self, StackError> {
        let binaries = Binaries::locate().await?;
        let emulator = Emulator::start(&config.state_dir).await?;
        let clients = Clients::connect(emulator.endpoint(), emulator.is_own()).await;
        let region = clients.region();
        let stream_arn = resources::ensure(
            &clients,
            &Resources {
                stream: config.stream.clone(),
                shards: config.shards,
                bucket: config.bucket.clone(),
                tables: config
                    .routing
                    .tables()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            },
        )
        .await?;

        let log_dir = config.state_dir.join("logs").join(format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            std::process::id()
        ));
        std::fs::create_dir_all(&log_dir)
            .map_err(StackError::io(format!("creating {}", log_dir.display())))?;

        let function =
            |name: &str, binary: &str, memory_mb, env: Vec<(String, String)>| FunctionSpec {
                name: name.to_owned(),
                binary: binaries.path(binary),
                env,
                timeout: config.function_timeout,
                memory_mb,
                log_path: log_dir.join(format!("{name}.log")),
                region: region.clone(),
            };
        let transform = Arc::new(
            LambdaFunction::start(function(
                names::TRANSFORM_FUNCTION,
                "transform_lambda",
                512,
                Vec::new(),
            ))
            .await?,
        );
        let mut consumer_env = clients.child_env.clone();
        consumer_env.push(("STREAMLAKE_ROUTING".into(), config.routing.to_string()));
        consumer_env.push((
            "STREAMLAKE_DEAD_LETTER".into(),
            format!(
                "s3://{}/{}",
                config.bucket,
                layout::CONSUMER_DEAD_LETTER_PREFIX
            ),
        ));
        let consumer = Arc::new(
            LambdaFunction::start(function(
                names::CONSUMER_FUNCTION,
                "consumer_lambda",
                256,
                consumer_env,
            ))
            .await?,
        );

        let firehose = Firehose::start(
            FirehoseConfig {
                delivery_stream: config.delivery_stream.clone(),
                source_stream: config.stream.clone(),
                source_stream_arn: stream_arn.clone(),
                bucket: config.bucket.clone(),
                prefix: layout::DATA_PREFIX.into(),
                error_prefix: layout::ERROR_PREFIX.into(),
                buffer_bytes: config.buffer_bytes,
                buffer_interval: config.buffer_interval,
                processor_buffer_bytes: config.processor_buffer_bytes,
                retries: 3,
                max_active_partitions: 500,
                starting_position: StartingPosition::TrimHorizon,
                region: region.clone(),
            },
            &clients,
            transform.clone(),
        )
        .await?;
        let mapping = EventSourceMapping::start(
            MappingConfig {
                stream: config.stream.clone(),
                stream_arn,
                batch_size: config.batch_size,
                batching_window: config.batching_window,
                starting_position: StartingPosition::TrimHorizon,
                max_retries: config.max_retries,
                report_batch_item_failures: true,
                role_arn: format!(
                    "arn:aws:iam::{}:role/{}",
                    names::LOCAL_ACCOUNT,
                    names::CONSUMER_FUNCTION
                ),
                region,
            },
            &clients,
            consumer.clone(),
        )
        .await?;

        Ok(Self {
            config,
            emulator,
            clients,
            binaries,
            log_dir,
            transform,
            consumer,
            firehose: Some(firehose),
            mapping: Some(mapping),
        })
    }

    /// The stack's configuration.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The emulator's endpoint URL.
    pub fn endpoint(&self) -> &str {
        self.emulator.endpoint()
    }

    /// Clients on the emulator.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// Where the binaries are.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Folder of the Lambdas' logs.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.log_dir
    }

    /// Firehose counters.
    pub fn firehose_stats(&self) -> FirehoseStats {
        self.firehose
            .as_ref()
            .map(Firehose::stats)
            .unwrap_or_default()
    }

    /// Event source mapping counters.
    pub fn mapping_stats(&self) -> MappingStats {
        self.mapping
            .as_ref()
            .map(EventSourceMapping::stats)
            .unwrap_or_default()
    }

    /// Waits until both branches have read at least `records` records and settled every
    /// record they read (Firehose's buffer is delivered at once instead of at the end of
    /// its interval).
    pub async fn wait_settled(&self, records: u64, timeout: Duration) -> Result<(), StackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut flushed = false;
        loop {
            let f = self.firehose_stats();
            let m = self.mapping_stats();
            if f.records_read >= records && m.records_read >= records && m.settled() {
                if f.settled() {
                    return Ok(());
                }
                if !flushed && let Some(firehose) = &self.firehose {
                    firehose.flush().await;
                    flushed = true;
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(StackError::Timeout(format!(
                    "the pipeline did not settle {records} records within {timeout:?}: firehose {f:?}, consumer {m:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops everything: reading, then delivery of what is buffered, then the Lambdas
    /// and the emulator.
    pub async fn stop(mut self) {
        if let Some(mapping) = self.mapping.take() {
            mapping.stop().await;
        }
        if let Some(firehose) = self.firehose.take() {
            firehose.stop().await;
        }
        for function in [self.transform, self.consumer] {
            if let Some(function) = Arc::into_inner(function) {
                function.stop().await;
            }
        }
        self.emulator.stop().await;
    }
}
