//! The whole pipeline on one machine: emulator, resources, Lambdas, Firehose and the
//! event source mapping.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use streamlake_core::dataset::Dataset;
use streamlake_core::layout::OutputFormat;
use streamlake_core::names;

use crate::clients::Clients;
use crate::emulated::checkpoint::CheckpointStore;
pub use crate::emulated::esm::MappingSettings;
use crate::emulated::esm::{EventSourceMapping, MappingStats};
use crate::emulated::firehose::settings::DeliverySettings;
use crate::emulated::firehose::{Firehose, FirehoseStats, JournalDepth};
use crate::emulated::lambda_host::LambdaFunction;
use crate::emulated::log_metrics::MetricSeries;
use crate::error::StackError;
use crate::faults::{Call, FaultPlan};
use crate::harness::binaries::Binaries;
use crate::harness::emulator::Emulator;
use crate::harness::lake_dataset;
use crate::harness::logs;
use crate::harness::node_servers::NodeServer;
use crate::harness::resources;
use crate::http::faults::FaultProxy;

/// Everything that can be set about the local stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Folder for the emulator's virtualenv, logs and checkpoints.
    pub state_dir: PathBuf,
    /// The records' shape: columns, event time, partitions.
    pub dataset: Arc<Dataset>,
    /// Store the dataset with the lake even when it differs from the stored one in a way
    /// older objects cannot be read with.
    pub allow_breaking_dataset: bool,
    /// A local emulator to use instead of starting one (`AWS_ENDPOINT_URL` also names one).
    pub endpoint: Option<String>,
    /// Kinesis stream.
    pub stream: String,
    /// Shards of the stream when it is created.
    pub shards: i32,
    /// Bucket of the lake.
    pub bucket: String,
    /// Name of the delivery stream reading the Kinesis stream (the Direct PUT one is
    /// [`names::DIRECT_DELIVERY_STREAM`]).
    pub delivery_stream: String,
    /// Firehose buffer size.
    pub buffer_bytes: usize,
    /// Firehose buffer interval.
    pub buffer_interval: Duration,
    /// Bytes of records per transform invocation.
    pub processor_buffer_bytes: usize,
    /// Format of the lake's data objects.
    pub output_format: OutputFormat,
    /// The consumer's event source mapping (stream, ARNs and destination are filled in
    /// by the stack).
    pub mapping: MappingSettings,
    /// SQS queue of the mapping's on-failure destination.
    pub failure_queue: String,
    /// Keep shard checkpoints on disk, so a restarted stack resumes where it stopped.
    pub checkpoints: bool,
    /// Lambda invocation timeout.
    pub function_timeout: Duration,
    /// Calls failed on purpose (`--inject`): HTTP calls through the fault proxy, which
    /// every client then uses; Lambda invocations by the Lambda host.
    pub faults: FaultPlan,
    /// The server that answers DynamoDB (dynalite as the Node.js server).
    pub dynamodb: ApiServer,
    /// The server that answers Kinesis (kinesalite as the Node.js server).
    pub kinesis: ApiServer,
}

impl StackConfig {
    /// Local defaults: the project's resource names, and buffers small enough that data
    /// shows up in S3 within seconds.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            state_dir,
            dataset: Arc::new(Dataset::weather()),
            allow_breaking_dataset: false,
            endpoint: None,
            stream: names::STREAM.into(),
            shards: 2,
            bucket: names::BUCKET.into(),
            delivery_stream: names::DELIVERY_STREAM.into(),
            buffer_bytes: 1024 * 1024,
            buffer_interval: Duration::from_secs(2),
            processor_buffer_bytes: 1024 * 1024,
            output_format: OutputFormat::default(),
            mapping: MappingSettings::default(),
            failure_queue: names::CONSUMER_FAILURE_QUEUE.into(),
            checkpoints: true,
            function_timeout: Duration::from_secs(60),
            faults: FaultPlan::default(),
            // What users get: the Node.js servers where they can start (as AWS, they serve
            // requests in parallel, and with a few times less CPU per request than moto).
            dynamodb: ApiServer::Auto,
            kinesis: ApiServer::Auto,
        }
    }
}

/// Which server answers each API a Node.js server can take over, once resolved (never
/// [`ApiServer::Auto`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Servers {
    /// DynamoDB's.
    pub dynamodb: ApiServer,
    /// Kinesis'.
    pub kinesis: ApiServer,
}

/// The server that answers an API which a Node.js server can take over from the emulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiServer {
    /// The emulator (moto, or the one at `--endpoint`): one request at a time.
    #[default]
    Emulator,
    /// The Node.js server (dynalite, kinesalite; installed with npm on first use), behind
    /// the stack's proxy: requests served in parallel, as AWS does; its data lives and
    /// dies with the stack.
    Node,
    /// The Node.js server when the stack runs its own emulator and Node.js is installed;
    /// else the emulator (one shared with others through `--endpoint` or
    /// `AWS_ENDPOINT_URL` keeps answering everything, its data outliving the stack).
    Auto,
}

/// The transform: function name, binary, memory (MB) as in the template, and its faults.
const TRANSFORM: (&str, &str, u32, Call) = (
    names::TRANSFORM_FUNCTION,
    "transform_lambda",
    512,
    Call::LambdaTransform,
);
/// The consumer: function name, binary, memory (MB) as in the template, and its faults.
const CONSUMER: (&str, &str, u32, Call) = (
    names::CONSUMER_FUNCTION,
    "consumer_lambda",
    256,
    Call::LambdaConsumer,
);

/// A running local stack.
pub struct LocalStack {
    config: StackConfig,
    emulator: Emulator,
    clients: Clients,
    binaries: Binaries,
    log_dir: PathBuf,
    failure_queue_url: String,
    transform: Arc<LambdaFunction>,
    /// The consumer, when the dataset names tables (`[dynamodb]`).
    consumer: Option<Arc<LambdaFunction>>,
    front: FaultProxy,
    _node_servers: Vec<NodeServer>,
    /// Which server answers DynamoDB and Kinesis, as resolved at the start.
    servers: Servers,
    checkpoints: Option<CheckpointStore>,
    firehose: Option<Firehose>,
    direct_put: Option<Firehose>,
    mapping: Option<EventSourceMapping>,
}

impl LocalStack {
    /// Starts the emulator and the HTTP front, creates what is missing, starts both
    /// Lambdas, both delivery streams (Kinesis source, Direct PUT) and the event source
    /// mapping (each piece's settings: `harness::wiring`).
    pub async fn start(config: StackConfig) -> Result<Self, StackError> {
        let log_dir = logs::create_run_dir(&config.state_dir).map_err(StackError::io(format!(
            "creating a log folder in {}",
            config.state_dir.display()
        )))?;
        // The binaries are built (under cargo) while the servers are installed and start:
        // on a first run, the build of the Lambdas and `query` beside the installs of moto
        // and of the Node.js servers.
        let emulator = async {
            Ok::<_, StackError>(match &config.endpoint {
                Some(endpoint) => Emulator::shared(endpoint),
                None => Emulator::start(&config.state_dir, &log_dir).await?,
            })
        };
        let owned = config.endpoint.is_none() && Emulator::named_by_environment().is_none();
        let (binaries, emulator, (routed, servers)) = tokio::try_join!(
            Binaries::locate(),
            emulator,
            config.node_servers(owned, &log_dir)
        )?;
        let (front, node_servers) = config.front(&emulator, routed).await?;
        let clients = Clients::connect(emulator.endpoint(), emulator.is_local())
            .await
            .through(front.endpoint());
        let region = clients.region();
        let provisioned = resources::ensure(&clients, &config.resources()).await?;
        lake_dataset::store(
            &clients,
            &config.bucket,
            &config.dataset,
            config.allow_breaking_dataset,
        )
        .await?;
        let checkpoints = config.checkpoints(&emulator, &provisioned)?;

        let function = |identity, env| config.function(identity, env, &binaries, &log_dir, &region);
        let dataset_env = config.dataset_env(&log_dir)?;
        let transform = Arc::new(LambdaFunction::start(function(TRANSFORM, dataset_env)).await?);
        let consumer = match config.consumer_env(&clients, &log_dir)? {
            Some(env) => Some(Arc::new(
                LambdaFunction::start(function(CONSUMER, env)).await?,
            )),
            None => {
                tracing::info!(
                    dataset = config.dataset.name(),
                    "the dataset has no [dynamodb] section: no consumer"
                );
                None
            }
        };

        let [kinesis_source, direct_put] = config
            .firehoses(
                &provisioned,
                &region,
                transform.spec().arn(),
                checkpoints.clone(),
            )
            .map(|c| Firehose::start(c, &clients, transform.clone(), front.direct_put()));
        let (firehose, direct_put) = tokio::try_join!(kinesis_source, direct_put)?;
        let mapping = match &consumer {
            Some(consumer) => {
                let mapping_config =
                    config.mapping_config(&provisioned, &clients, checkpoints.clone());
                Some(EventSourceMapping::start(mapping_config, &clients, consumer.clone()).await?)
            }
            None => None,
        };

        Ok(Self {
            config,
            emulator,
            clients,
            binaries,
            log_dir,
            failure_queue_url: provisioned.failure_queue_url,
            transform,
            consumer,
            front,
            _node_servers: node_servers,
            servers,
            checkpoints,
            firehose: Some(firehose),
            direct_put: Some(direct_put),
            mapping,
        })
    }

    /// Which server answers DynamoDB and Kinesis.
    pub fn servers(&self) -> Servers {
        self.servers
    }

    /// The configuration it was started with (its `Auto` servers unresolved: see
    /// [`LocalStack::servers`]).
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The endpoint every client of the stack uses: the stack's HTTP front (Direct PUT,
    /// faults, Node.js servers), in front of the emulator.
    pub fn endpoint(&self) -> &str {
        self.front.endpoint()
    }

    /// The emulator's own endpoint (behind the front).
    pub fn emulator_endpoint(&self) -> &str {
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
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// URL of the event source mapping's on-failure queue.
    pub fn failure_queue_url(&self) -> &str {
        &self.failure_queue_url
    }

    /// Faults injected so far: by the proxy, and into the Lambdas' invocations.
    pub fn injected_faults(&self) -> u64 {
        self.injected_by_call().values().sum()
    }

    /// Faults injected so far, per call.
    pub fn injected_by_call(&self) -> BTreeMap<Call, u64> {
        let mut counts = self.front.injected_by_call();
        for (call, function) in [
            (Call::LambdaTransform, Some(&self.transform)),
            (Call::LambdaConsumer, self.consumer.as_ref()),
        ] {
            let Some(function) = function else { continue };
            if let Some(injector) = &function.spec().faults {
                counts.insert(call, injector.injected());
            }
        }
        counts
    }

    /// Counters of the delivery stream reading the Kinesis stream.
    pub fn firehose_stats(&self) -> FirehoseStats {
        self.firehose
            .as_ref()
            .map(Firehose::stats)
            .unwrap_or_default()
    }

    /// The settings each delivery stream plays (the Kinesis source's first), as the
    /// Firehose API described them.
    pub fn delivery_settings(&self) -> Vec<DeliverySettings> {
        [&self.firehose, &self.direct_put]
            .into_iter()
            .flatten()
            .map(|f| f.settings().clone())
            .collect()
    }

    /// Counters of the Direct PUT delivery stream.
    pub fn direct_put_stats(&self) -> FirehoseStats {
        self.direct_put
            .as_ref()
            .map(Firehose::stats)
            .unwrap_or_default()
    }

    /// The folders both delivery streams wrote data objects into since the last call.
    pub fn take_written(&self) -> BTreeSet<String> {
        [&self.firehose, &self.direct_put]
            .into_iter()
            .flatten()
            .flat_map(|f| f.take_written())
            .collect()
    }

    /// What the Direct PUT journal holds (none without checkpoints).
    pub fn journal_depth(&self) -> Option<JournalDepth> {
        self.direct_put.as_ref().and_then(Firehose::journal_depth)
    }

    /// The metrics each Lambda printed so far (its EMF lines), by function and metric.
    pub fn lambda_metrics(&self) -> BTreeMap<String, BTreeMap<String, MetricSeries>> {
        std::iter::once(&self.transform)
            .chain(&self.consumer)
            .map(|f| (f.spec().name.clone(), f.metrics()))
            .collect()
    }

    /// Every shard checkpoint (empty when none are kept): by reader, by shard.
    pub fn checkpoints(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.checkpoints
            .as_ref()
            .map(CheckpointStore::all)
            .unwrap_or_default()
    }

    /// Event source mapping counters.
    pub fn mapping_stats(&self) -> MappingStats {
        self.mapping
            .as_ref()
            .map(EventSourceMapping::stats)
            .unwrap_or_default()
    }

    /// Delivers both delivery streams' buffers now instead of at the end of their interval.
    pub async fn flush_firehose(&self) {
        for firehose in [&self.firehose, &self.direct_put].into_iter().flatten() {
            firehose.flush().await;
        }
    }

    /// Waits until the Direct PUT delivery stream has taken at least `records` records in
    /// and settled every one (its buffer is delivered at once).
    pub async fn wait_direct_put_settled(
        &self,
        records: u64,
        timeout: Duration,
    ) -> Result<(), StackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.direct_put_stats();
            if stats.records_read >= records && stats.settled() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(StackError::Timeout(format!(
                    "Direct PUT did not settle {records} records within {timeout:?}: {stats:?}"
                )));
            }
            if stats.records_read >= records {
                self.flush_firehose().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until Firehose has read at least `records` records and delivered or failed
    /// each of them (its buffer delivered at once); the consumer is not waited for.
    pub async fn wait_firehose_settled(
        &self,
        records: u64,
        timeout: Duration,
    ) -> Result<(), StackError> {
        self.wait_until_settled(records, None, timeout).await
    }

    /// Waits until both branches have read at least `records` records and settled every
    /// record they read (Firehose's buffer is delivered at once instead of at the end of
    /// its interval).
    pub async fn wait_settled(&self, records: u64, timeout: Duration) -> Result<(), StackError> {
        self.wait_settled_counts(records, records, timeout).await
    }

    /// Like [`LocalStack::wait_settled`], with a count per branch: Firehose must have read
    /// `firehose` records, the consumer's mapping `mapping` (after a restart, each resumes
    /// at its own checkpoint).
    pub async fn wait_settled_counts(
        &self,
        firehose: u64,
        mapping: u64,
        timeout: Duration,
    ) -> Result<(), StackError> {
        self.wait_until_settled(firehose, Some(mapping), timeout)
            .await
    }

    /// Waits until Firehose has read `firehose` records and the mapping, when `mapping`
    /// is given, that many, each branch having settled what it read (the mapping's
    /// tumbling windows closed too: their final invocations write the summaries).
    async fn wait_until_settled(
        &self,
        firehose: u64,
        mapping: Option<u64>,
        timeout: Duration,
    ) -> Result<(), StackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut flushed = false;
        loop {
            let f = self.firehose_stats();
            let m = self.mapping_stats();
            // Settled, and the aggregates of every tumbling window written.
            let consumed = match (mapping, &self.mapping) {
                (Some(records), Some(_)) => {
                    m.records_read >= records && m.settled() && m.open_windows == 0
                }
                _ => true,
            };
            if f.records_read >= firehose && consumed {
                if f.settled() {
                    return Ok(());
                }
                if !flushed {
                    self.flush_firehose().await;
                    flushed = true;
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(StackError::Timeout(match mapping {
                    Some(mapping) => format!(
                        "the pipeline did not settle ({firehose} records for Firehose, {mapping} for the consumer) \
                         within {timeout:?}: firehose {f:?}, consumer {m:?}"
                    ),
                    None => format!(
                        "Firehose did not settle {firehose} records within {timeout:?}: {f:?}"
                    ),
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops everything: reading, then delivery of what is buffered and the batches in
    /// progress (checkpoints saved; both bounded by [`crate::emulated::shutdown::STOP_GRACE`]), then
    /// the Lambdas and the emulator (if the stack started it). Returns the final counters.
    pub async fn stop(mut self) -> FinalStats {
        let injected = self.injected_by_call();
        let journal = self.journal_depth().is_some();
        let (mapping, firehose, direct) = (
            self.mapping.take(),
            self.firehose.take(),
            self.direct_put.take(),
        );
        let (mapping, firehose, direct_put) = tokio::join!(
            async { Some(mapping?.stop().await) },
            async { Some(firehose?.stop().await) },
            async { Some(direct?.stop().await) },
        );
        let stats = FinalStats {
            firehose: firehose.unwrap_or_default(),
            direct_put: direct_put.unwrap_or_default(),
            mapping: mapping.unwrap_or_default(),
            injected,
            journal,
        };
        if let Some(store) = &self.checkpoints
            && let Err(e) = store.flush().await
        {
            tracing::error!("{}", crate::error::Report(&e));
        }
        for function in std::iter::once(self.transform).chain(self.consumer) {
            if let Some(function) = Arc::into_inner(function) {
                function.stop().await;
            }
        }
        self.emulator.stop().await;
        stats
    }
}

/// The counters of a stopped stack; shown, its stop summary: what was delivered, and
/// what was not, per source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalStats {
    /// Firehose delivery from the Kinesis stream.
    pub firehose: FirehoseStats,
    /// Firehose delivery of Direct PUT records.
    pub direct_put: FirehoseStats,
    /// The consumer's event source mapping.
    pub mapping: MappingStats,
    /// Faults injected, per call.
    pub injected: BTreeMap<Call, u64>,
    /// Whether Direct PUT kept a journal (what it did not deliver is delivered next time).
    pub journal: bool,
}

impl std::fmt::Display for FinalStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (stream, direct, mapping) = (&self.firehose, &self.direct_put, &self.mapping);
        writeln!(
            f,
            "stopped: Firehose delivered {} and failed {} records from the stream, {} and {} of Direct PUT; consumer settled {}",
            stream.delivered,
            stream.failed,
            direct.delivered,
            direct.failed,
            mapping.succeeded + mapping.discarded
        )?;
        if !self.injected.is_empty() {
            let counts: Vec<String> = self
                .injected
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            writeln!(f, "  faults injected: {}", counts.join(", "))?;
        }
        if stream.undelivered() > 0 {
            writeln!(
                f,
                "  not delivered: {} records of the stream; the checkpoint did not move past them, so the next `up` on the same stream reads them again",
                stream.undelivered()
            )?;
        }
        if direct.undelivered() > 0 {
            let next = if self.journal {
                "kept in the journal, they are delivered by the next `up` with the same state folder"
            } else {
                "accepted into memory only (no checkpoints, no journal): they are lost"
            };
            writeln!(
                f,
                "  not delivered: {} Direct PUT records; {next}",
                direct.undelivered()
            )?;
        }
        if mapping.unsettled() > 0 {
            writeln!(
                f,
                "  not settled: {} records of the consumer; its checkpoint did not move past them, so the next `up` reads them again",
                mapping.unsettled()
            )?;
        }
        Ok(())
    }
}
