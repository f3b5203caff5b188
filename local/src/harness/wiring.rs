//! What each piece of the stack is given, derived from the stack's configuration (the
//! settings `infra/template.yaml` gives the same pieces on AWS).

use std::path::Path;
use std::sync::Arc;

use consumer_lambda::config::DEAD_LETTER_VAR;
use streamlake_core::dataset::DATASET_ENV;
use streamlake_core::layout::{self, OutputFormat};
use streamlake_core::names;

use crate::clients::Clients;
use crate::emulated::checkpoint::CheckpointStore;
use crate::emulated::esm::{MappingConfig, OnFailureDestination};
use crate::emulated::firehose::FirehoseConfig;
use crate::emulated::firehose::settings::{DeliverySettings, LambdaProcessor, Source};
use crate::emulated::kinesis_source::StartingPosition;
use crate::emulated::lambda_host::FunctionSpec;
use crate::error::{Report, StackError};
use crate::faults::Call;
use crate::faults::latency::Service;
use crate::harness::binaries::Binaries;
use crate::harness::emulator::Emulator;
use crate::harness::node_servers::{NodeServer, NodeServerKind, node_available};
use crate::harness::resources::{Provisioned, Resources, TableSpec};
use crate::harness::stack::{ApiServer, Servers, StackConfig};
use crate::http::faults::FaultProxy;

impl StackConfig {
    /// The stream, bucket, tables and queue the stack needs.
    pub(crate) fn resources(&self) -> Resources {
        Resources {
            stream: self.stream.clone(),
            shards: self.shards,
            bucket: self.bucket.clone(),
            tables: self.dataset.dynamodb().map_or_else(Vec::new, TableSpec::of),
            failure_queue: self.failure_queue.clone(),
        }
    }

    /// The names of the dataset's DynamoDB tables (none without `[dynamodb]`).
    pub fn table_names(&self) -> Vec<&str> {
        self.dataset
            .dynamodb()
            .map(|d| d.table_keys().map(|(name, ..)| name).collect())
            .unwrap_or_default()
    }

    /// The shard checkpoints of this stream instance, when they are kept.
    pub(crate) fn checkpoints(
        &self,
        emulator: &Emulator,
        provisioned: &Provisioned,
    ) -> Result<Option<CheckpointStore>, StackError> {
        if !self.checkpoints {
            return Ok(None);
        }
        // The emulator is part of the identity: two emulators can each have a stream of
        // the same name created in the same second.
        let identity = format!("{}@{}", emulator.endpoint(), provisioned.stream_identity);
        CheckpointStore::open(&self.state_dir.join("checkpoints"), &identity).map(Some)
    }

    /// A function of the stack: its binary, memory, environment and injected faults.
    pub(crate) fn function(
        &self,
        (name, binary, memory_mb, call): (&str, &str, u32, Call),
        mut env: Vec<(String, String)>,
        binaries: &Binaries,
        log_dir: &Path,
        region: &str,
    ) -> FunctionSpec {
        // JSON log lines, as the template's `LoggingConfig` asks of Lambda.
        env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
        FunctionSpec {
            name: name.to_owned(),
            binary: binaries.path(binary),
            env,
            timeout: self.function_timeout,
            memory_mb,
            log_path: log_dir.join(format!("{name}.log")),
            region: region.to_owned(),
            faults: self.faults.injector(call).map(Arc::new),
        }
    }

    /// The Node.js servers that take APIs over from the emulator, installed (on a first
    /// run) and started at once; `ApiServer::Auto` settings are resolved here. `owned`:
    /// whether the stack runs its own emulator (`Auto` keeps a shared one answering
    /// everything).
    pub(crate) async fn node_servers(
        &self,
        owned: bool,
        log_dir: &Path,
    ) -> Result<(Vec<(Service, NodeServer)>, Servers), StackError> {
        // Only `Auto` asks whether Node.js is there (two processes to run).
        let node_usable =
            [self.dynamodb, self.kinesis].contains(&ApiServer::Auto) && owned && node_available();
        let start = |asked: ApiServer, service: Service, kind: NodeServerKind| async move {
            Ok::<_, StackError>(match asked {
                ApiServer::Emulator => None,
                ApiServer::Node => Some(NodeServer::start(kind, &self.state_dir, log_dir).await?),
                ApiServer::Auto if !node_usable => None,
                // Chosen for speed, not asked for: the emulator answers if it cannot start.
                ApiServer::Auto => match NodeServer::start(kind, &self.state_dir, log_dir).await {
                    Ok(started) => Some(started),
                    Err(e) => {
                        tracing::warn!("{service} stays on the emulator: {}", Report(&e));
                        None
                    }
                },
            })
        };
        let (dynamodb, kinesis) = tokio::try_join!(
            start(self.dynamodb, Service::DynamoDb, NodeServerKind::Dynalite),
            start(self.kinesis, Service::Kinesis, NodeServerKind::Kinesalite),
        )?;
        let resolved = |started: &Option<NodeServer>| {
            if started.is_some() {
                ApiServer::Node
            } else {
                ApiServer::Emulator
            }
        };
        let servers = Servers {
            dynamodb: resolved(&dynamodb),
            kinesis: resolved(&kinesis),
        };
        let routed: Vec<(Service, NodeServer)> = [
            dynamodb.map(|n| (Service::DynamoDb, n)),
            kinesis.map(|n| (Service::Kinesis, n)),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok((routed, servers))
    }

    /// What clients talk to in front of the emulator: the stack's HTTP front, which
    /// answers Direct PUT calls, fails or delays HTTP calls as asked, and sends the APIs
    /// of `routed` to their Node.js servers.
    pub(crate) async fn front(
        &self,
        emulator: &Emulator,
        routed: Vec<(Service, NodeServer)>,
    ) -> Result<(FaultProxy, Vec<NodeServer>), StackError> {
        let routes: Vec<(Service, &str)> = routed.iter().map(|(s, n)| (*s, n.endpoint())).collect();
        let proxy = FaultProxy::start_routed(emulator.endpoint(), &routes, &self.faults).await?;
        Ok((proxy, routed.into_iter().map(|(_, n)| n).collect()))
    }

    /// The Lambdas' dataset: its file, written into the run's folder as the deploy puts
    /// it into the function's package, and the variable that names it.
    pub(crate) fn dataset_env(&self, run_dir: &Path) -> Result<Vec<(String, String)>, StackError> {
        let path = run_dir.join("dataset.toml");
        std::fs::write(&path, self.dataset.text())
            .map_err(StackError::io(format!("writing {}", path.display())))?;
        Ok(vec![(DATASET_ENV.to_owned(), path.display().to_string())])
    }

    /// The consumer's environment: its dataset (as the transform's) and dead letters;
    /// `None` when the dataset names no table.
    pub(crate) fn consumer_env(
        &self,
        clients: &Clients,
        run_dir: &Path,
    ) -> Result<Option<Vec<(String, String)>>, StackError> {
        if self.dataset.dynamodb().is_none() {
            return Ok(None);
        }
        let dead_letter = format!(
            "s3://{}/{}",
            self.bucket,
            layout::CONSUMER_DEAD_LETTER_PREFIX
        );
        let mut env = clients.child_env.clone();
        env.extend(self.dataset_env(run_dir)?);
        env.push((DEAD_LETTER_VAR.into(), dead_letter));
        Ok(Some(env))
    }

    /// The delivery streams, as `infra/template.yaml` configures them: one reading the
    /// Kinesis stream, one taking Direct PUT calls; both transform, partition into the
    /// lake's prefixes, buffer and write the lake's format.
    pub(crate) fn firehoses(
        &self,
        provisioned: &Provisioned,
        region: &str,
        transform_arn: String,
        checkpoints: Option<CheckpointStore>,
    ) -> [FirehoseConfig; 2] {
        let settings = |name: &str, source| DeliverySettings {
            name: name.to_owned(),
            source,
            bucket: self.bucket.clone(),
            prefix: self.dataset.firehose_prefix(),
            error_prefix: layout::ERROR_PREFIX.into(),
            buffer_bytes: self.buffer_bytes,
            buffer_interval: self.buffer_interval,
            processor: LambdaProcessor {
                function_arn: transform_arn.clone(),
                buffer_bytes: self.processor_buffer_bytes,
                retries: 3,
            },
            format: self.output_format,
            conversion_table: (self.output_format == OutputFormat::Parquet)
                .then(|| self.dataset.name().to_owned()),
        };
        let config = |settings, journal| FirehoseConfig {
            settings,
            max_active_partitions: 500,
            starting_position: StartingPosition::TrimHorizon,
            checkpoints: checkpoints.clone(),
            journal,
            region: region.to_owned(),
            dataset: self.dataset.clone(),
        };
        let kinesis = Source::Kinesis {
            stream_arn: provisioned.stream_arn.clone(),
        };
        // Direct PUT records are kept in a journal beside the checkpoints, of the same
        // stack instance: what a crash left is delivered into the same lake.
        let journal = checkpoints
            .as_ref()
            .map(|c| c.folder_beside(&format!("{}.journal", names::DIRECT_DELIVERY_STREAM)));
        [
            config(settings(&self.delivery_stream, kinesis), None),
            config(
                settings(names::DIRECT_DELIVERY_STREAM, Source::DirectPut),
                journal,
            ),
        ]
    }

    /// The consumer's event source mapping, with the on-failure queue.
    pub(crate) fn mapping_config(
        &self,
        provisioned: &Provisioned,
        clients: &Clients,
        checkpoints: Option<CheckpointStore>,
    ) -> MappingConfig {
        let role_arn = format!(
            "arn:aws:iam::{}:role/{}",
            names::LOCAL_ACCOUNT,
            names::CONSUMER_FUNCTION
        );
        let region = clients.region();
        MappingConfig {
            settings: self.mapping.clone(),
            on_failure: Some(OnFailureDestination {
                sqs: clients.sqs.clone(),
                queue_url: provisioned.failure_queue_url.clone(),
            }),
            checkpoints,
            ..MappingConfig::new(&self.stream, &provisioned.stream_arn, &region, &role_arn)
        }
    }
}
