//! The `streamlake` command line: its arguments (clap), what they ask of the stack, and
//! the commands that are only a few lines over the library (`dataset`, `status`). This
//! is the program's edge, so its errors are `anyhow`'s; `main` parses and dispatches.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use streamlake_core::dataset::Dataset;
use streamlake_core::names;

use crate::dataset_tool;
use crate::emulated::kinesis_source::{Position, StartingPosition};
use crate::faults::latency::LatencySpec;
use crate::faults::{FaultPlan, FaultSpec};
use crate::harness::binaries::default_state_dir;
use crate::harness::demo::{DemoOptions, Sample};
use crate::harness::stack::{ApiServer, StackConfig};
use crate::tail::{TailFormat, TailOptions};

/// The stack's defaults, which the flags show and start from (each written once, in
/// [`StackConfig::new`] and [`crate::emulated::esm::MappingSettings::default`]).
static DEFAULTS: LazyLock<StackConfig> = LazyLock::new(|| StackConfig::new(default_state_dir()));

/// The sample records of an example's folder, which `demo --dataset DIR` sends.
const SAMPLE_RECORDS: &str = "records.ndjson";

/// The streamlake pipeline on this machine: Kinesis, Firehose, both Lambdas, S3 and
/// DynamoDB, against an AWS emulator.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the local stack and keep it running until Ctrl-C.
    Up(UpArgs),
    /// Start the stack, send sample data through it, and show what arrived where.
    Demo(DemoArgs),
    /// One screen for the running stack (`streamlake up` with the same state folder):
    /// Firehose, the consumer, checkpoints, tables, the lake and its errors.
    Status(StatusArgs),
    /// Dataset files: check one, or infer a starting one from sample records.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Follow a stream, every shard, and print its records (the stream named by the
    /// standard AWS configuration; `AWS_ENDPOINT_URL` for the local stack).
    Tail(TailArgs),
}

/// `streamlake demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Records to produce.
    #[arg(long, default_value_t = 2000)]
    pub records: usize,
    /// Seed of the sample data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of records malformed on purpose, to show the error path.
    #[arg(long, default_value_t = 0.01)]
    pub error_rate: f64,
    /// First day of the generated records' event times.
    #[arg(long, default_value = "2021-10-01")]
    pub start: NaiveDate,
    /// Send the records to the Direct PUT delivery stream (PutRecordBatch) instead of
    /// the Kinesis stream.
    #[arg(long)]
    pub direct_put: bool,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Validate a dataset file (or a folder holding dataset.toml) and print the columns,
    /// Glue types, partitions and tables it implies.
    Check {
        /// The dataset file.
        file: PathBuf,
        /// The dataset stored with the lake (its `_dataset.toml`): fail when the file
        /// changes it in a way older objects cannot be read with.
        #[arg(long, value_name = "FILE", conflicts_with = "bucket")]
        stored: Option<PathBuf>,
        /// As --stored, with the dataset stored in this bucket beside the dataset's lake
        /// (`s3://BUCKET/<prefix>_dataset.toml`), if there is one (the standard AWS
        /// configuration reaches it).
        #[arg(long)]
        bucket: Option<String>,
        /// With --stored or --bucket: report a breaking change without failing.
        #[arg(long)]
        allow_breaking: bool,
    },
    /// Write the CloudFormation template that deploys a dataset (infra/deploy.sh
    /// --dataset FILE runs this): infra/template.yaml with its Glue tables, view, Firehose
    /// prefixes and saved queries for the dataset.
    Template {
        /// The dataset file.
        file: PathBuf,
        /// A folder of saved Athena queries (NAME.sql) [default: the dataset folder's
        /// queries/; without any, one query of the records per day].
        #[arg(long)]
        queries: Option<PathBuf>,
        /// Write the template here instead of to standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Write a starting dataset file from sample records (NDJSON, `-` for stdin): each key
    /// a column (nested objects as dotted paths) of the narrowest type its values fit,
    /// required where every record has it, and the most time-like field as the event time.
    Infer {
        /// The sample records, one JSON object per line.
        sample: PathBuf,
        /// The dataset's name [default: the sample's file name].
        #[arg(long)]
        name: Option<String>,
        /// Records to read from the sample.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Write the file here instead of to standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The state folder of the running `up` [default: target/streamlake].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Print the snapshot as JSON (what `up` serves at /api/status).
    #[arg(long)]
    json: bool,
    /// Refresh every two seconds until Ctrl-C.
    #[arg(long)]
    watch: bool,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Kinesis stream.
    #[arg(long, default_value = names::STREAM)]
    stream: String,
    /// Where to start: the oldest records, new ones only, or those from --timestamp.
    #[arg(long, value_enum, default_value_t = Position::TrimHorizon)]
    from: Position,
    /// With `--from at-timestamp`: the time (RFC 3339).
    #[arg(long)]
    timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// Print only records whose COLUMN (as the dataset normalizes the record) has VALUE
    /// (repeatable), as `query scan`.
    #[arg(long = "where", value_name = "COLUMN=VALUE")]
    filters: Vec<String>,
    /// The dataset file of the records, for --where [default: the weather dataset].
    #[arg(long, value_name = "FILE")]
    dataset: Option<PathBuf>,
    /// Stop after this many records printed (default: until Ctrl-C).
    #[arg(long)]
    count: Option<usize>,
    /// pretty: where each record came from, and its JSON indented; ndjson: each record
    /// as produced, one per line.
    #[arg(long, value_enum, default_value_t = TailFormat::Pretty)]
    pub format: TailFormat,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Seconds a partition the stack wrote into stays in `status` and the dashboard
    /// (which otherwise show the whole lake's totals, not every partition).
    #[arg(long, default_value_t = crate::lake_index::RECENT_WINDOW.as_secs())]
    pub status_window: u64,
}

#[derive(Debug, Args)]
pub struct StackArgs {
    /// Folder for the emulator, logs and checkpoints [default: target/streamlake].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The dataset file (TOML) that gives the records' shape, or a folder holding
    /// dataset.toml (an example: `demo` then sends its records.ndjson, or generated
    /// records when it has none) [default: the weather dataset,
    /// examples/weather/dataset.toml].
    #[arg(long, value_name = "FILE")]
    dataset: Option<PathBuf>,
    /// Store the dataset with the lake even when it changes the one a previous run stored
    /// in a way older objects cannot be read with (a column removed or retyped, a
    /// required column added).
    #[arg(long)]
    allow_breaking_dataset: bool,
    /// Use this local emulator instead of starting one.
    #[arg(long)]
    endpoint: Option<String>,
    /// Kinesis stream.
    #[arg(long, default_value_t = DEFAULTS.stream.clone())]
    stream: String,
    /// Shards of the stream when it is created.
    #[arg(long, default_value_t = DEFAULTS.shards)]
    shards: i32,
    /// Bucket of the lake.
    #[arg(long, default_value_t = DEFAULTS.bucket.clone())]
    bucket: String,
    /// Format of the lake's objects: ndjson, ndjson-gzip or parquet.
    #[arg(long, default_value_t = DEFAULTS.output_format)]
    output_format: streamlake_core::layout::OutputFormat,
    /// Firehose buffer size, in bytes.
    #[arg(long, default_value_t = DEFAULTS.buffer_bytes)]
    buffer_bytes: usize,
    /// Firehose buffer interval, in seconds.
    #[arg(long, default_value_t = DEFAULTS.buffer_interval.as_secs_f64())]
    buffer_interval: f64,
    /// Event source mapping batch size (1 to 10,000).
    #[arg(long, default_value_t = u32::try_from(DEFAULTS.mapping.batch_size).unwrap_or(u32::MAX), value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Event source mapping batching window, in seconds (0 to 300).
    #[arg(long, default_value_t = DEFAULTS.mapping.batching_window.as_secs_f64())]
    batching_window: f64,
    /// Where the event source mapping starts without a checkpoint.
    #[arg(long, value_enum, default_value_t = Position::of(&DEFAULTS.mapping.starting_position))]
    starting_position: Position,
    /// With `--starting-position at-timestamp`: the time (RFC 3339).
    #[arg(long)]
    starting_position_timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// Retries of a failing consumer batch before it is skipped (-1: until the records expire).
    #[arg(long, default_value_t = DEFAULTS.mapping.max_retries.map_or(-1, i64::from), allow_negative_numbers = true)]
    maximum_retry_attempts: i64,
    /// Records older than this many seconds are skipped (-1: never).
    #[arg(long, default_value_t = DEFAULTS.mapping.max_record_age.map_or(-1, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX)), allow_negative_numbers = true)]
    maximum_record_age: i64,
    /// Split a batch in two when the consumer fails.
    #[arg(long, default_value_t = DEFAULTS.mapping.bisect_on_error, action = clap::ArgAction::Set)]
    bisect_batch_on_function_error: bool,
    /// Concurrent consumer batches per shard (1 to 10).
    #[arg(long, default_value_t = u32::try_from(DEFAULTS.mapping.parallelization_factor).unwrap_or(1), value_parser = clap::value_parser!(u32).range(1..=10))]
    parallelization_factor: u32,
    /// Tumbling windows of this many seconds (1 to 900): the consumer adds each window to
    /// the dataset's summary tables, `[[dynamodb.summaries]]` (0: off).
    #[arg(long, default_value_t = DEFAULTS.mapping.tumbling_window.map_or(0, |w| w.as_secs()), value_parser = clap::value_parser!(u64).range(0..=900))]
    tumbling_window: u64,
    /// SQS queue receiving what the event source mapping skips (metadata only).
    #[arg(long, default_value_t = DEFAULTS.failure_queue.clone())]
    failure_queue: String,
    /// Do not keep shard checkpoints on disk (a restart reads the stream from the start).
    #[arg(long)]
    no_checkpoints: bool,
    /// Fail this fraction of a call, with the errors AWS documents for it (repeatable):
    /// kinesis:PutRecords, kinesis:GetRecords, s3:PutObject, dynamodb:UpdateItem,
    /// sqs:SendMessage, lambda:transform, lambda:consumer. For example
    /// `--inject kinesis:PutRecords=0.1 --inject lambda:consumer=0.05`.
    #[arg(long, value_name = "SERVICE:OPERATION=RATE")]
    inject: Vec<FaultSpec>,
    /// Seed of the injected faults' random numbers (the same seed fails the same calls).
    #[arg(long, default_value_t = 1)]
    inject_seed: u64,
    /// Hold each answer of a service back by MS milliseconds, plus or minus up to JITTER
    /// (repeatable): a round trip like AWS's. Services: kinesis, dynamodb, s3, sqs. For
    /// example `--inject-latency dynamodb=5 --inject-latency s3=20±5`.
    #[arg(long, value_name = "SERVICE=MS[±JITTER]")]
    inject_latency: Vec<LatencySpec>,
    /// The server that answers DynamoDB: dynalite serves requests in parallel, as
    /// DynamoDB does (auto: dynalite when Node.js is installed and the stack runs its own
    /// emulator).
    #[arg(long, value_enum, default_value_t = DEFAULTS.dynamodb)]
    pub dynamodb: ApiServer,
    /// The server that answers Kinesis: kinesalite serves requests in parallel, as
    /// Kinesis does (auto: kinesalite when Node.js is installed and the stack runs its own
    /// emulator).
    #[arg(long, value_enum, default_value_t = DEFAULTS.kinesis)]
    pub kinesis: ApiServer,
    /// Same as `--inject dynamodb:UpdateItem=RATE`.
    #[arg(long, value_name = "RATE")]
    inject_throttling: Option<f64>,
}

impl StackArgs {
    /// The stack these flags ask for.
    pub fn config(&self) -> Result<StackConfig> {
        let mut config = StackConfig::new(self.state_dir.clone().unwrap_or_else(default_state_dir));
        if let Some(path) = &self.dataset {
            config.dataset = Arc::new(Dataset::load_path(path)?);
        }
        config.allow_breaking_dataset = self.allow_breaking_dataset;
        config.endpoint.clone_from(&self.endpoint);
        config.stream.clone_from(&self.stream);
        config.shards = self.shards;
        config.bucket.clone_from(&self.bucket);
        config.buffer_bytes = self.buffer_bytes;
        config.output_format = self.output_format;
        config.buffer_interval =
            seconds(self.buffer_interval, 900.0).context("--buffer-interval")?;
        config.failure_queue.clone_from(&self.failure_queue);
        config.checkpoints = !self.no_checkpoints;
        let mut faults = self.inject.clone();
        if let Some(rate) = self.inject_throttling {
            faults.push(
                format!("dynamodb:UpdateItem={rate}")
                    .parse()
                    .context("--inject-throttling")?,
            );
        }
        config.dynamodb = self.dynamodb;
        config.kinesis = self.kinesis;
        config.faults = self
            .inject_latency
            .iter()
            .fold(FaultPlan::new(faults, self.inject_seed), |plan, l| {
                plan.with_latency(*l)
            });
        let m = &mut config.mapping;
        m.batch_size = self.batch_size as usize;
        m.batching_window = seconds(self.batching_window, 300.0).context("--batching-window")?;
        m.starting_position =
            StartingPosition::chosen(self.starting_position, self.starting_position_timestamp)
                .context("--starting-position at-timestamp needs --starting-position-timestamp")?;
        m.max_retries = u32::try_from(self.maximum_retry_attempts).ok();
        m.max_record_age = u64::try_from(self.maximum_record_age)
            .ok()
            .map(Duration::from_secs);
        m.bisect_on_error = self.bisect_batch_on_function_error;
        m.parallelization_factor = self.parallelization_factor as usize;
        m.tumbling_window =
            (self.tumbling_window > 0).then(|| Duration::from_secs(self.tumbling_window));
        Ok(config)
    }
}

fn seconds(value: f64, max: f64) -> Result<Duration> {
    anyhow::ensure!(
        (0.0..=max).contains(&value),
        "must be between 0 and {max} seconds"
    );
    Ok(Duration::from_secs_f64(value))
}

impl TailArgs {
    /// What to follow, and how to print it.
    pub fn options(&self) -> Result<TailOptions> {
        let from = StartingPosition::chosen(self.from, self.timestamp)
            .context("--from at-timestamp needs --timestamp")?;
        let dataset = Arc::new(match &self.dataset {
            Some(path) => Dataset::load_path(path)?,
            None => Dataset::weather(),
        });
        let filters = self
            .filters
            .iter()
            .map(|f| query::filter::Filter::parse(f, &dataset))
            .collect::<Result<_, _>>()?;
        Ok(TailOptions {
            stream: self.stream.clone(),
            from,
            dataset,
            filters,
            count: self.count,
            format: self.format,
        })
    }
}

impl DemoArgs {
    /// What the demo sends: the example folder's records when it has them, else
    /// generated ones.
    pub fn options(&self) -> Result<DemoOptions> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.error_rate),
            "--error-rate must be between 0 and 1"
        );
        let sample = match &self.stack.dataset {
            None => Sample::Weather,
            Some(path) if path.join(SAMPLE_RECORDS).is_file() => {
                Sample::File(path.join(SAMPLE_RECORDS))
            }
            Some(_) => Sample::Generated,
        };
        Ok(DemoOptions {
            sample,
            direct_put: self.direct_put,
            records: self.records,
            seed: self.seed,
            error_rate: self.error_rate,
            start: self.start,
        })
    }
}

impl UpArgs {
    /// The producer's `--generate` value for the stack's dataset.
    pub fn generate(&self) -> String {
        self.stack
            .dataset
            .as_ref()
            .map_or_else(|| "weather".to_owned(), |p| p.display().to_string())
    }
}

impl Command {
    /// The log level when `RUST_LOG` says none: `up` tells what it does, the others
    /// only warn.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Up(_) => "info",
            Command::Demo(_) | Command::Tail(_) | Command::Status(_) | Command::Dataset(_) => {
                "warn"
            }
        }
    }
}

impl DatasetCommand {
    /// Runs the command.
    pub async fn run(self) -> Result<()> {
        match self {
            DatasetCommand::Check {
                file,
                stored,
                bucket,
                allow_breaking,
            } => {
                let dataset = Dataset::load_path(&file)?;
                print!("{}", dataset_tool::describe(&dataset));
                let older = match (stored, bucket) {
                    (Some(path), _) => {
                        Some((Dataset::load_path(&path)?, path.display().to_string()))
                    }
                    (None, Some(bucket)) => dataset_tool::stored_dataset(&bucket, &dataset).await?,
                    (None, None) => None,
                };
                if let Some((older, origin)) = older {
                    let changes = dataset.breaking_changes_from(&older);
                    for change in &changes {
                        eprintln!("breaking change from {origin}: {change}");
                    }
                    anyhow::ensure!(
                        changes.is_empty() || allow_breaking,
                        "{} cannot replace {origin}: older objects would not read (--allow-breaking to go on)",
                        file.display()
                    );
                }
            }
            DatasetCommand::Template { file, queries, out } => {
                let dataset = Dataset::load_path(&file)?;
                let folder = queries.unwrap_or_else(|| {
                    let dir = if file.is_dir() {
                        file.as_path()
                    } else {
                        file.parent().unwrap_or(&file)
                    };
                    dir.join("queries")
                });
                let queries = dataset_tool::saved_queries(&folder)
                    .with_context(|| format!("cannot read the queries in {}", folder.display()))?;
                let text = dataset_tool::template(&dataset, &queries)?;
                match &out {
                    Some(path) => std::fs::write(path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                    None => print!("{text}"),
                }
            }
            DatasetCommand::Infer {
                sample,
                name,
                limit,
                out,
            } => {
                let text = if sample.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin().lock())?
                } else {
                    std::fs::read_to_string(&sample)
                        .with_context(|| format!("cannot read {}", sample.display()))?
                };
                let name = name.unwrap_or_else(|| dataset_tool::name_of(&sample));
                let lines = text.lines().filter(|l| !l.trim().is_empty()).take(limit);
                let origin = sample.display().to_string();
                let inferred = streamlake_core::dataset::infer::infer(
                    &name,
                    &origin,
                    lines.map(str::as_bytes),
                )?;
                match &out {
                    Some(path) => std::fs::write(path, &inferred.text)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                    None => print!("{}", inferred.text),
                }
                eprintln!(
                    "inferred {} columns from {} records ({} lines skipped: not JSON objects){}",
                    inferred.dataset.columns().len(),
                    inferred.records,
                    inferred.skipped,
                    out.map(|p| format!(", written to {}", p.display()))
                        .unwrap_or_default()
                );
            }
        }
        Ok(())
    }
}

impl StatusArgs {
    /// Prints the running stack's status (again every [`crate::status::REFRESH`] with
    /// `--watch`, until Ctrl-C).
    pub async fn run(self) -> Result<()> {
        let args = self;
        let state_dir = args.state_dir.unwrap_or_else(default_state_dir);
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            let status = crate::status::fetch(&state_dir).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                if args.watch {
                    // Clear the screen and go home, as `watch` does.
                    print!("\x1b[2J\x1b[H");
                }
                print!("{status}");
            }
            if !args.watch {
                return Ok(());
            }
            tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                () = tokio::time::sleep(crate::status::REFRESH) => {}
            }
        }
    }
}
