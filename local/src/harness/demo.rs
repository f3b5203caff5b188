//! `streamlake demo`: the whole pipeline on sample data, then a summary read back from
//! S3 and DynamoDB, and the `query` command lines that read the lake back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_dynamodb::types::Select;
use chrono::{NaiveDate, Utc};
use producer::input::{PartitionKeyer, ndjson_entries};
use producer::{Entry, Producer, ProducerConfig};
use streamlake_core::PartitionKeys;
use streamlake_core::dataset::generate::DatasetGenerator;
use streamlake_core::dataset::{ColumnType, Dataset};
use streamlake_core::generate::{GeneratorConfig, WeatherGenerator};
use streamlake_core::layout::{CONSUMER_DEAD_LETTER_PREFIX, ERROR_ROOT};
use streamlake_core::names::DIRECT_DELIVERY_STREAM;

use crate::clients::Clients;
use crate::error::StackError;
use crate::harness::progress::Step;
use crate::harness::stack::{LocalStack, StackConfig};

/// The tumbling window the demo turns on for a dataset with window summaries: the event
/// source mapping carries summaries in tumbling windows only
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>), so
/// without one the summary tables stay empty.
pub const SUMMARY_WINDOW: Duration = Duration::from_secs(2);

/// Turns the event source mapping's tumbling windows on ([`SUMMARY_WINDOW`]) when the
/// stack's dataset has summary tables and the mapping has no window yet; returns the
/// tables that fills (none when nothing changed).
pub fn fill_summaries(config: &mut StackConfig) -> Vec<String> {
    let Some(dynamodb) = config.dataset.dynamodb() else {
        return Vec::new();
    };
    if dynamodb.summaries.is_empty() || config.mapping.tumbling_window.is_some() {
        return Vec::new();
    }
    let tables = dynamodb.summaries.iter().map(|s| s.name.clone()).collect();
    config.mapping.tumbling_window = Some(SUMMARY_WINDOW);
    tables
}

/// Where the demo's records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    /// The built-in NOAA-like weather generator.
    Weather,
    /// Records generated from the stack's dataset file ([`DatasetGenerator`]).
    Generated,
    /// The lines of an NDJSON file (an example's `records.ndjson`).
    File(PathBuf),
}

/// What the demo produces.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the records come from.
    pub sample: Sample,
    /// Send them to the Direct PUT delivery stream instead of the Kinesis stream.
    pub direct_put: bool,
    /// Records to produce (at most, from a file).
    pub records: usize,
    /// Generator seed.
    pub seed: u64,
    /// Fraction of records malformed on purpose.
    pub error_rate: f64,
    /// First day of the generated observations.
    pub start: NaiveDate,
}

/// What the lake and the tables hold after the demo, counted by reading them back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeCounts {
    /// Records per data partition (`year=/month=/day=`): (objects, records).
    pub partitions: BTreeMap<PartitionKeys, (u64, u64)>,
    /// Error records per error output type folder.
    pub errors: BTreeMap<String, u64>,
    /// Rows per DynamoDB table.
    pub rows: BTreeMap<String, u64>,
    /// Records the consumer could not write (its dead-letter objects).
    pub dead_letters: u64,
}

impl LakeCounts {
    /// Records delivered under the data prefix.
    pub fn delivered(&self) -> u64 {
        self.partitions.values().map(|(_, r)| r).sum()
    }

    /// Records under the error prefix.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The demo's result.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Where the records were sent: the Kinesis stream, or the Direct PUT delivery stream.
    pub stream: String,
    /// Bucket name.
    pub bucket: String,
    /// The lake's prefix in the bucket.
    pub prefix: String,
    /// Records the producer sent.
    pub produced: u64,
    /// Of which malformed on purpose.
    pub malformed: u64,
    /// Records the producer failed to send.
    pub not_sent: u64,
    /// Records the transform dropped on purpose.
    pub dropped: u64,
    /// Read back from S3 and DynamoDB.
    pub counts: LakeCounts,
    /// Records the event source mapping discarded after retries.
    pub discarded: u64,
    /// The dataset that has no consumer tables (`[dynamodb]`), if so.
    pub no_consumer: Option<String>,
    /// Summary tables left empty because the mapping had no tumbling window.
    pub unfilled_summaries: Vec<String>,
}

impl DemoReport {
    /// Whether every produced record is accounted for.
    pub fn reconciles(&self) -> bool {
        self.produced == self.counts.delivered() + self.counts.failed() + self.dropped
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "produced {} records to {} ({} malformed on purpose, {} not sent)",
            self.produced, self.stream, self.malformed, self.not_sent
        )?;
        writeln!(f)?;
        writeln!(f, "Firehose -> s3://{}/{}", self.bucket, self.prefix)?;
        writeln!(f, "  {:<32} {:>7} {:>8}", "partition", "objects", "records")?;
        for (partition, (objects, records)) in &c.partitions {
            writeln!(
                f,
                "  {:<32} {objects:>7} {records:>8}",
                partition.to_string()
            )?;
        }
        writeln!(
            f,
            "  delivered {} records in {} partitions",
            c.delivered(),
            c.partitions.len()
        )?;
        for (folder, records) in &c.errors {
            writeln!(
                f,
                "  failed    {records} records in s3://{}/{ERROR_ROOT}{folder}/",
                self.bucket
            )?;
        }
        writeln!(f, "  dropped   {}", self.dropped)?;
        writeln!(f)?;
        writeln!(f, "Consumer -> DynamoDB")?;
        if let Some(dataset) = &self.no_consumer {
            writeln!(
                f,
                "  none: dataset {dataset} has no [dynamodb] section (no consumer was started)"
            )?;
        }
        for (table, rows) in &c.rows {
            if self.unfilled_summaries.contains(table) {
                writeln!(
                    f,
                    "  {table:<16} {rows} rows (a window summary: --tumbling-window SECONDS fills it)"
                )?;
            } else {
                writeln!(f, "  {table:<16} {rows} rows")?;
            }
        }
        writeln!(
            f,
            "  invalid   {} records in s3://{}/{CONSUMER_DEAD_LETTER_PREFIX}",
            c.dead_letters, self.bucket
        )?;
        if self.discarded > 0 {
            writeln!(f, "  discarded after retries: {} records", self.discarded)?;
        }
        writeln!(f)?;
        let verdict = if self.reconciles() {
            "reconciled"
        } else {
            "MISMATCH"
        };
        write!(
            f,
            "produced {} = delivered {} + failed {} + dropped {}: {verdict}",
            self.produced,
            c.delivered(),
            c.failed(),
            self.dropped
        )
    }
}

/// The records of a demo, and how many of them the dataset refuses.
fn sample_records(
    dataset: &Dataset,
    options: &DemoOptions,
) -> Result<(Vec<Entry>, u64), StackError> {
    let config = GeneratorConfig {
        seed: options.seed,
        start: options.start,
        error_rate: options.error_rate,
    };
    let records: Vec<_> = match &options.sample {
        Sample::Weather => WeatherGenerator::new(config)
            .take(options.records)
            .collect(),
        Sample::Generated => DatasetGenerator::new(dataset, config)
            .take(options.records)
            .collect(),
        Sample::File(path) => {
            let io = |e| StackError::io(format!("reading {}", path.display()))(e);
            let reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
            let entries = ndjson_entries(reader, PartitionKeyer::of_dataset(dataset))
                .take(options.records)
                .collect::<Result<Vec<_>, _>>()
                .map_err(io)?;
            let now = Utc::now();
            let malformed = entries
                .iter()
                .filter(|e| dataset.normalize(&e.data, now).is_err())
                .count();
            return Ok((entries, malformed as u64));
        }
    };
    let malformed = records.iter().filter(|r| !r.valid).count() as u64;
    Ok((records.into_iter().map(Entry::from).collect(), malformed))
}

/// Runs the demo on a started stack: produces, waits for both branches, counts.
pub async fn run(stack: &LocalStack, options: &DemoOptions) -> Result<DemoReport, StackError> {
    let config = stack.config();
    let (records, malformed) = sample_records(&config.dataset, options)?;
    let clients = stack.clients();
    let (producer, destination) = if options.direct_put {
        let producer = Producer::firehose(
            clients.firehose.clone(),
            ProducerConfig::new(DIRECT_DELIVERY_STREAM),
        );
        (producer, DIRECT_DELIVERY_STREAM)
    } else {
        let producer = Producer::new(clients.kinesis.clone(), ProducerConfig::new(&config.stream));
        (producer, config.stream.as_str())
    };
    let producing = Step::start(
        format!("producing {} records to {destination}", records.len()),
        "",
    );
    let summary = producer
        .send(records, |_| {})
        .await
        .map_err(|e| StackError::aws("PutRecords", e))?;
    drop(producing);
    if options.direct_put {
        let _waiting = Step::start("waiting for Firehose (Direct PUT) to settle them", "");
        stack
            .wait_direct_put_settled(summary.sent, Duration::from_secs(300))
            .await?;
        return Ok(DemoReport {
            stream: destination.to_owned(),
            bucket: config.bucket.clone(),
            prefix: config.dataset.prefix().to_owned(),
            produced: summary.sent,
            malformed,
            not_sent: summary.failed.len() as u64,
            dropped: stack.direct_put_stats().dropped,
            counts: count(clients, config).await?,
            discarded: 0,
            no_consumer: no_consumer(config),
            unfilled_summaries: unfilled_summaries(config),
        });
    }
    let waiting = Step::start("waiting for Firehose and the consumer to settle them", "");
    let settled = stack.wait_settled(summary.sent, Duration::from_secs(300));
    tokio::pin!(settled);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            result = &mut settled => break result?,
            _ = tick.tick() => {
                let (f, m) = (stack.firehose_stats(), stack.mapping_stats());
                waiting.set_detail(format!(
                    "Firehose {} of {} settled, consumer {} of {}",
                    f.delivered + f.failed + f.dropped,
                    summary.sent,
                    m.succeeded + m.discarded,
                    summary.sent
                ));
            }
        }
    }
    drop(waiting);
    let counts = count(stack.clients(), config).await?;
    Ok(DemoReport {
        stream: config.stream.clone(),
        bucket: config.bucket.clone(),
        prefix: config.dataset.prefix().to_owned(),
        produced: summary.sent,
        malformed,
        not_sent: summary.failed.len() as u64,
        dropped: stack.firehose_stats().dropped,
        counts,
        discarded: stack.mapping_stats().discarded,
        no_consumer: no_consumer(config),
        unfilled_summaries: unfilled_summaries(config),
    })
}

/// The dataset's name when it names no consumer table.
fn no_consumer(config: &StackConfig) -> Option<String> {
    config
        .dataset
        .dynamodb()
        .is_none()
        .then(|| config.dataset.name().to_owned())
}

/// The dataset's summary tables, when no tumbling window carries them.
fn unfilled_summaries(config: &StackConfig) -> Vec<String> {
    match (config.dataset.dynamodb(), config.mapping.tumbling_window) {
        (Some(dynamodb), None) => dynamodb.summaries.iter().map(|s| s.name.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Counts what the lake and the tables hold, by reading them.
pub async fn count(clients: &Clients, config: &StackConfig) -> Result<LakeCounts, StackError> {
    let mut counts = LakeCounts::default();
    for (key, body) in read_prefix(clients, &config.bucket, config.dataset.prefix()).await? {
        let Some(partition) = PartitionKeys::from_path(&key) else {
            continue;
        };
        let records = streamlake_core::formats::count_records(&key, &body)?;
        let entry = counts.partitions.entry(partition).or_default();
        entry.0 += 1;
        entry.1 += records;
    }
    for (key, body) in read_prefix(clients, &config.bucket, ERROR_ROOT).await? {
        if key.starts_with(CONSUMER_DEAD_LETTER_PREFIX) {
            counts.dead_letters += 1;
            continue;
        }
        let folder = key[ERROR_ROOT.len()..]
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        *counts.errors.entry(folder).or_default() += lines(&body);
    }
    counts.rows = count_rows(clients, &config.table_names()).await?;
    Ok(counts)
}

/// The `query` command lines (arguments after `query`) that read a demo's lake back: a
/// few records of its first partition's day, and the records per value of the dataset's
/// partition key field (the average of its first `double` column beside them).
pub fn follow_up_queries(dataset: &Dataset, bucket: &str, report: &DemoReport) -> Vec<Vec<String>> {
    let lake = format!("s3://{bucket}/{}", dataset.prefix());
    let mut queries = Vec::new();
    if let Some(first) = report.counts.partitions.keys().next() {
        let day = first.date().to_string();
        queries.push(
            [
                "--lake", &lake, "scan", "--from", &day, "--to", &day, "--limit", "5",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
    }
    let keyed = dataset.partition_key().and_then(|key| {
        dataset
            .columns()
            .iter()
            .find(|c| c.read().is_some_and(|r| r.dotted() == key))
    });
    let group = keyed
        .or_else(|| {
            dataset
                .columns()
                .iter()
                .find(|c| c.ty == ColumnType::String)
        })
        .map(|c| c.name.clone());
    let (select, group_by) = match &group {
        Some(column) => (format!("\"{column}\""), "1".to_owned()),
        None => ("year, month, day".to_owned(), "1, 2, 3".to_owned()),
    };
    let average = dataset
        .columns()
        .iter()
        .find(|c| c.ty == ColumnType::Double)
        .map(|c| format!(", round(avg(\"{0}\"), 1) AS \"avg_{0}\"", c.name))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {select}, count(*) AS records{average} FROM {} GROUP BY {group_by} ORDER BY {group_by} LIMIT 10",
        dataset.name()
    );
    queries.push(vec!["--lake".into(), lake, "sql".into(), sql]);
    queries
}

/// Runs the [`follow_up_queries`] of a demo with the `query` binary against the stack,
/// all at once, then prints each command line as a shell reads it back and its output;
/// `true` when every one succeeded.
pub async fn run_follow_up_queries(
    stack: &LocalStack,
    report: &DemoReport,
) -> Result<bool, StackError> {
    let c = stack.config();
    let queries = follow_up_queries(&c.dataset, &c.bucket, report);
    let outputs = futures::future::try_join_all(queries.iter().map(|args| {
        stack
            .binaries()
            .command("query")
            .args(args)
            .envs(stack.clients().child_env.iter().map(|(k, v)| (k, v)))
            .output()
    }))
    .await
    .map_err(StackError::io("running query"))?;
    let mut all_ok = true;
    for (args, output) in queries.iter().zip(outputs) {
        println!();
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains([' ', '"']) {
                    // The SQL holds no single quote.
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect();
        println!("$ query {}", shown.join(" "));
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        all_ok &= output.status.success();
    }
    Ok(all_ok)
}

/// Rows per table, counted with `Scan` (`Select: COUNT`).
pub async fn count_rows(
    clients: &Clients,
    tables: &[&str],
) -> Result<BTreeMap<String, u64>, StackError> {
    let mut counts = BTreeMap::new();
    for table in tables {
        let mut rows = 0;
        let mut pages = clients
            .dynamodb
            .scan()
            .table_name(*table)
            .select(Select::Count)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            rows += page
                .map_err(|e| StackError::aws(format!("Scan {table}"), e))?
                .count() as u64;
        }
        counts.insert((*table).to_owned(), rows);
    }
    Ok(counts)
}

fn lines(body: &[u8]) -> u64 {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64
}

/// Every object under a prefix that a table reads (not the hidden ones, such as the
/// dataset file stored beside the lake: [`streamlake_core::lake::is_hidden`]), with its
/// content.
pub async fn read_prefix(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, StackError> {
    let lake = clients.bucket(bucket);
    let lake_error = |source| StackError::Lake {
        context: format!("reading s3://{bucket}/{prefix}"),
        source,
    };
    let mut out = Vec::new();
    for object in lake.objects_under(prefix).await.map_err(lake_error)? {
        if streamlake_core::lake::is_hidden(&object.key) {
            continue;
        }
        let body = lake.read(&object.key).await.map_err(lake_error)?;
        out.push((object.key, body));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    fn config_of(example: &str) -> StackConfig {
        let mut config = StackConfig::new(std::env::temp_dir());
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(example);
        config.dataset = Arc::new(Dataset::load_path(&path).unwrap());
        config
    }

    #[test]
    fn summaries_turn_the_tumbling_window_on_unless_one_was_chosen() {
        let mut unicorns = config_of("unicorns");
        assert_eq!(fill_summaries(&mut unicorns), ["UnicornAggregation"]);
        assert_eq!(unicorns.mapping.tumbling_window, Some(SUMMARY_WINDOW));

        let mut chosen = config_of("unicorns");
        chosen.mapping.tumbling_window = Some(Duration::from_secs(60));
        assert!(fill_summaries(&mut chosen).is_empty());
        assert_eq!(
            chosen.mapping.tumbling_window,
            Some(Duration::from_secs(60))
        );

        let mut weather = config_of("weather");
        assert_eq!(fill_summaries(&mut weather), ["DailySummary"]);

        // Trades have no tables.
        let mut trades = config_of("trades");
        assert!(fill_summaries(&mut trades).is_empty());
        assert_eq!(trades.mapping.tumbling_window, None);
    }
}
