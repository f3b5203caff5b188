use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use producer::aggregate::{Aggregating, ShardMap};
use producer::input::{PartitionKeyer, ndjson_entries};
use producer::redrive::{self, RedriveConfig, Source};
use producer::{Entry, Producer, ProducerConfig};
use streamlake_core::dataset::Dataset;
use streamlake_core::dataset::generate::DatasetGenerator;
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::names;

/// Writes records to a Kinesis data stream with PutRecords, or to a Firehose delivery
/// stream with PutRecordBatch (`--firehose`).
///
/// Records come from an NDJSON file (one record per line, `-` for stdin) or from the
/// generator of any dataset (`--generate`). Credentials and region come from the standard AWS
/// configuration; AWS_ENDPOINT_URL points at an emulator.
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Stream to write to.
    #[arg(long, env = "STREAMLAKE_STREAM", default_value = names::STREAM)]
    stream: String,
    /// NDJSON file to send, one record per line; `-` reads stdin.
    #[arg(
        long,
        conflicts_with = "generate",
        required_unless_present = "generate"
    )]
    file: Option<PathBuf>,
    /// Generate sample records instead of reading a file: `weather` (the built-in NOAA-like
    /// generator) or a dataset file (TOML, or a folder holding dataset.toml), whose records
    /// are made of every column type, nulls in optional fields and event times spread over
    /// days.
    #[arg(long, value_name = "weather|DATASET")]
    generate: Option<Generator>,
    /// The dataset file of the records sent with --file: its `partition_key` field keys
    /// them [default: the weather dataset].
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    dataset: Option<PathBuf>,
    /// Key each record by this field (a dotted path reaches into nested objects) instead of
    /// the dataset's `partition_key`; `-` keys every record by a hash of its bytes. A record
    /// without the field is keyed by its hash, which spreads such records over the shards.
    #[arg(long, value_name = "FIELD")]
    partition_key: Option<String>,
    /// Records to generate.
    #[arg(long, default_value_t = 1000, requires = "generate")]
    count: usize,
    /// Seed of the generator: the same seed gives the same records.
    #[arg(long, default_value_t = 1, requires = "generate")]
    seed: u64,
    /// First day of generated observations.
    #[arg(long, default_value = "2021-10-01", requires = "generate")]
    start: NaiveDate,
    /// Fraction (0 to 1) of generated records that are deliberately malformed.
    #[arg(long, default_value_t = 0.0, requires = "generate")]
    error_rate: f64,
    /// Attempts per record before giving up on it.
    #[arg(long, default_value_t = 8)]
    max_attempts: usize,
    /// Pack records in the KPL aggregated format, up to the 1 MiB record limit, one
    /// aggregate per shard (every record lands on the shard of its own partition key).
    /// The consumer and Firehose de-aggregate them.
    #[arg(long, conflicts_with = "firehose")]
    aggregate: bool,
    /// Send to this Firehose delivery stream (Direct PUT source, e.g. streamlake-direct)
    /// with PutRecordBatch instead of the Kinesis stream; a newline is appended to each
    /// record that lacks one.
    #[arg(long, value_name = "NAME")]
    firehose: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send the records that failed downstream (Firehose's processing-failed records, the
    /// consumer's dead letters) through the stream again, once the cause is fixed. Error
    /// objects sent are marked (`errors/redriven/`) and not sent again.
    Redrive(RedriveArgs),
}

#[derive(Debug, clap::Args)]
struct RedriveArgs {
    /// Stream to write to.
    #[arg(long, env = "STREAMLAKE_STREAM", default_value = names::STREAM)]
    stream: String,
    /// Bucket of the lake.
    #[arg(long, env = "STREAMLAKE_BUCKET", default_value = names::BUCKET)]
    bucket: String,
    /// Which failed records.
    #[arg(long, value_enum, default_value_t = RedriveSource::All)]
    source: RedriveSource,
    /// Only error objects written on or after this day (UTC).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Only error objects written on or before this day (UTC).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Count what would be sent; send and mark nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RedriveSource {
    /// Firehose's `errors/processing-failed/`.
    ProcessingFailed,
    /// The consumer's dead letters.
    DeadLetters,
    /// Both (a record in both is sent once).
    All,
}

/// What `--generate` makes.
#[derive(Debug, Clone)]
enum Generator {
    /// GHCND-like daily observations of Maryland stations (PRCP, SNOW, TMAX, TMIN).
    Weather,
    /// Records of the dataset file at this path.
    Dataset(PathBuf),
}

impl std::str::FromStr for Generator {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "weather" {
            Self::Weather
        } else {
            Self::Dataset(s.into())
        })
    }
}

impl Args {
    /// The partition keys of records read from --file.
    fn keyer(&self) -> Result<PartitionKeyer> {
        Ok(match (&self.partition_key, &self.dataset) {
            (Some(field), _) if field == "-" => PartitionKeyer::hash(),
            (Some(field), _) => PartitionKeyer::field(field),
            (None, Some(path)) => PartitionKeyer::of_dataset(&Dataset::load_path(path)?),
            (None, None) => PartitionKeyer::of_dataset(&Dataset::weather()),
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    streamlake_core::report::exit(run().await.map(|()| std::process::ExitCode::SUCCESS))
}

async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!(
                    "warn,{}",
                    streamlake_core::aws::SDK_LOG_DIRECTIVE
                ))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::Redrive(redrive)) = args.command {
        return run_redrive(redrive).await;
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.error_rate),
        "--error-rate must be between 0 and 1"
    );

    // The dataset of --generate DATASET, which its generator borrows while records are sent.
    let mut generated = None;
    let (entries, total): (Box<dyn Iterator<Item = Entry> + '_>, Option<u64>) =
        match (&args.file, &args.generate) {
            (Some(path), _) => {
                let keyer = args.keyer()?;
                let reader: Box<dyn std::io::BufRead> = if path.as_os_str() == "-" {
                    Box::new(std::io::stdin().lock())
                } else {
                    let file = File::open(path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    Box::new(BufReader::new(file))
                };
                let lines = ndjson_entries(reader, keyer).map_while(move |line| match line {
                    Ok(entry) => Some(entry),
                    Err(e) => {
                        tracing::error!("stopped reading the input: {e}");
                        None
                    }
                });
                (Box::new(lines), None)
            }
            (None, Some(Generator::Weather)) => {
                let generator = WeatherGenerator::new(GeneratorConfig {
                    seed: args.seed,
                    start: args.start,
                    error_rate: args.error_rate,
                });
                (
                    Box::new(generator.take(args.count).map(Entry::from)),
                    Some(args.count as u64),
                )
            }
            (None, Some(Generator::Dataset(path))) => {
                let dataset = generated.insert(Dataset::load_path(path)?);
                let config = GeneratorConfig {
                    seed: args.seed,
                    start: args.start,
                    error_rate: args.error_rate,
                };
                let keyer = args
                    .partition_key
                    .as_ref()
                    .map(|_| args.keyer())
                    .transpose()?;
                let records = DatasetGenerator::new(dataset, config).take(args.count);
                let entries = records.map(move |r| {
                    let mut entry = Entry::from(r);
                    if let Some(keyer) = &keyer {
                        entry.partition_key = keyer.key(&entry.data);
                    }
                    entry
                });
                (Box::new(entries), Some(args.count as u64))
            }
            (None, None) => unreachable!("clap requires --file or --generate"),
        };

    let progress = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if !std::io::stderr().is_terminal() {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} records {per_sec} {elapsed}")
            .expect("valid template"),
    );

    let shared = streamlake_core::aws::load_config().await;
    let client = aws_sdk_kinesis::Client::new(&shared);
    let destination = args.firehose.as_deref().unwrap_or(&args.stream);
    let mut config = ProducerConfig::new(destination);
    config.max_attempts = args.max_attempts.max(1);
    let limits = config.limits;
    let producer = match &args.firehose {
        Some(_) => Producer::firehose(aws_sdk_firehose::Client::new(&shared), config),
        None => Producer::new(client.clone(), config),
    };
    let (summary, user_records) = if args.aggregate {
        let shards = ShardMap::of_stream(&client, &args.stream).await?;
        let aggregating =
            std::cell::RefCell::new(Aggregating::new(entries, shards, limits.max_record_bytes));
        let aggregates = std::iter::from_fn(|| aggregating.borrow_mut().next());
        let summary = producer
            .send(aggregates, |_| {
                progress.set_position(aggregating.borrow().user_records())
            })
            .await?;
        let users = aggregating.borrow().user_records();
        (summary, Some(users))
    } else {
        let summary = producer
            .send(entries, |done| progress.set_position(done))
            .await?;
        (summary, None)
    };
    progress.finish_and_clear();
    if let Some(users) = user_records {
        println!(
            "aggregated {users} user records into {} Kinesis records ({:.1} per record, {:.0} user records/s)",
            summary.sent + summary.failed.len() as u64,
            users as f64 / (summary.sent + summary.failed.len() as u64).max(1) as f64,
            users as f64 / summary.elapsed.as_secs_f64().max(1e-9)
        );
    }

    println!(
        "sent {} records ({} bytes) to {} in {:.2} s: {:.0} records/s, {} requests, {} retried, {} failed",
        summary.sent,
        summary.bytes,
        destination,
        summary.elapsed.as_secs_f64(),
        summary.records_per_second(),
        summary.requests,
        summary.retried,
        summary.failed.len()
    );
    for failed in summary.failed.iter().take(10) {
        eprintln!(
            "failed: key {}: {}",
            failed.entry.partition_key, failed.reason
        );
    }
    if !summary.failed.is_empty() {
        anyhow::bail!("{} records could not be sent", summary.failed.len());
    }
    Ok(())
}

async fn run_redrive(args: RedriveArgs) -> Result<()> {
    let shared = streamlake_core::aws::load_config().await;
    let s3 = streamlake_core::lake::s3_client_from(&shared);
    let producer = Producer::new(
        aws_sdk_kinesis::Client::new(&shared),
        ProducerConfig::new(&args.stream),
    );
    let sources = match args.source {
        RedriveSource::ProcessingFailed => vec![Source::ProcessingFailed],
        RedriveSource::DeadLetters => vec![Source::DeadLetters],
        RedriveSource::All => vec![Source::ProcessingFailed, Source::DeadLetters],
    };
    let config = RedriveConfig {
        bucket: args.bucket,
        sources,
        from: args.from,
        to: args.to,
        dry_run: args.dry_run,
    };
    let summary = redrive::redrive(&s3, &producer, &config).await?;
    let objects: Vec<String> = summary
        .objects
        .iter()
        .map(|(source, n)| format!("{n} {}", source.prefix()))
        .collect();
    println!(
        "{} {} records of {} error objects ({}) to {}; {} sent from both sources only once; {} objects redriven before",
        if args.dry_run { "would send" } else { "sent" },
        summary.sent,
        summary.objects.values().sum::<usize>(),
        if objects.is_empty() {
            "none".to_owned()
        } else {
            objects.join(", ")
        },
        args.stream,
        summary.duplicates,
        summary.already_redriven,
    );
    for (key, reason) in summary.failed.iter().take(10) {
        eprintln!("failed: {key}: {reason}");
    }
    anyhow::ensure!(
        summary.failed.is_empty(),
        "{} records could not be sent; their objects are not marked, run redrive again",
        summary.failed.len()
    );
    Ok(())
}
