use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::sync::Arc;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use query::athena::{TableFormat, TableNames, all_ddl};
use query::convert::convert;
use query::{Filter, ScanOptions, scan, summarize_partitions};
use serde_json::Value;
use streamlake_core::lake::{DateRange, Lake, LakeLocation};

/// mimalloc, as DataFusion's own CLI: a scan allocates and frees batch buffers of a few
/// hundred KiB by the thousand, which the system allocator returns to the kernel and
/// faults back in (page faults and `madvise` were a tenth of a cold GROUP BY).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads the streamlake lake: browse partitions, scan records, run SQL, compact.
///
/// The lake is `s3://bucket/prefix/` (credentials and region from the standard AWS
/// configuration; AWS_ENDPOINT_URL for an emulator) or a local folder with the same
/// `year=YYYY/month=MM/day=DD/` layout. Its records' shape is the dataset file stored
/// beside it (`_dataset.toml`, written by `streamlake up` and the deploy), or --dataset.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Where the lake is.
    #[arg(
        long,
        global = true,
        env = "STREAMLAKE_LAKE",
        default_value = "s3://streamlake-lake/data/"
    )]
    lake: LakeLocation,
    /// The dataset file of the lake's records (or a folder holding dataset.toml)
    /// [default: the one stored beside the lake, else the weather dataset].
    #[arg(long, global = true, value_name = "FILE")]
    dataset: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The year/month/day tree with objects, bytes and records per day.
    Partitions {
        /// First day, inclusive.
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, inclusive.
        #[arg(long)]
        to: Option<NaiveDate>,
    },
    /// Run SQL over the lake (Apache DataFusion); the lake is the table named after its
    /// dataset (`weather`), with `year`, `month`, `day` (and `hour`) partition columns that
    /// prune whole partitions.
    Sql {
        /// The statement, e.g. "SELECT datatype, count(*) FROM weather GROUP BY datatype",
        /// or several separated by `;` (the last one's result is shown), comments allowed:
        /// `"$(cat infra/athena/weather_view.sql) SELECT count(*) FROM weather"`.
        #[arg(allow_hyphen_values = true)]
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
        /// Write the result to this file instead (Parquet if it ends in .parquet, else CSV).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Also draw the result as a PNG chart: x = the first column, one line (or bar,
        /// for a text x) per other numeric column, or per value of --series.
        #[arg(long, value_name = "FILE.png")]
        chart: Option<std::path::PathBuf>,
        /// With --chart: one series per value of this column.
        #[arg(long, value_name = "COLUMN", requires = "chart")]
        series: Option<String>,
        /// With --chart: the chart's title (default: none).
        #[arg(long, requires = "chart")]
        title: Option<String>,
    },
    /// Rewrite each partition's objects into one object of the lake's format (Parquet, or
    /// GZIP NDJSON); readers, Athena's view included, never see a day missing or doubled.
    Compact {
        /// First day, inclusive.
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, inclusive.
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Seconds another compaction's claim on a day must stay unrenewed before this
        /// one takes it over as left by a crash (0: at once, when no other compaction
        /// runs).
        #[arg(long, default_value_t = query::compaction::LEASE.as_secs())]
        lease: u64,
    },
    /// Write the lake as Parquet into another location (one object per day), and print
    /// the Athena DDL for it.
    Convert {
        /// The new lake, e.g. s3://streamlake-lake/parquet/ (never the lake itself).
        #[arg(long)]
        dest: LakeLocation,
        /// First day, inclusive.
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, inclusive.
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Name of the new lake's Athena view (its tables get `_raw` and
        /// `_compaction_log`) [default: the dataset's name, then `_parquet`].
        #[arg(long)]
        table: Option<String>,
    },
    /// Print the Athena DDL for the lake: the table over its folders, the compaction
    /// log's table, and the view to query.
    Ddl {
        /// The format the lake's objects are in.
        #[arg(long, value_enum, default_value_t = DdlFormat::Ndjson)]
        format: DdlFormat,
        /// Name of the view (its tables get `_raw` and `_compaction_log`) [default: the
        /// dataset's name].
        #[arg(long)]
        table: Option<String>,
    },
    /// Records of a date range, reading only its partitions.
    Scan {
        /// First day, inclusive.
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, inclusive.
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Keep records whose column equals the value (repeatable; all must match).
        #[arg(long = "where", value_name = "COLUMN=VALUE")]
        filters: Vec<String>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DdlFormat {
    /// NDJSON, plain or GZIP (Hive's JSON SerDe).
    Ndjson,
    /// Parquet.
    Parquet,
}

impl From<DdlFormat> for TableFormat {
    fn from(f: DdlFormat) -> Self {
        match f {
            DdlFormat::Ndjson => TableFormat::Json,
            DdlFormat::Parquet => TableFormat::Parquet,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SqlFormat {
    /// A table on the terminal.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl From<SqlFormat> for query::output::Format {
    fn from(f: SqlFormat) -> Self {
        match f {
            SqlFormat::Table => Self::Table,
            SqlFormat::Csv => Self::Csv,
            SqlFormat::Json => Self::Json,
            SqlFormat::Ndjson => Self::Ndjson,
        }
    }
}

/// A progress indicator on a terminal (hidden otherwise).
fn progress(len: Option<u64>, template: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A table on the terminal.
    Table,
    /// One JSON object per line.
    Ndjson,
}

/// Prints the Athena DDL of the lake at `location`: its view is `table`, or the dataset's
/// name.
fn print_ddl(
    dataset: &streamlake_core::dataset::Dataset,
    table: Option<&str>,
    format: DdlFormat,
    location: &LakeLocation,
) {
    let table = table.unwrap_or(dataset.name());
    print!(
        "{}",
        all_ddl(
            dataset,
            &TableNames::for_view(table),
            format.into(),
            location
        )
    );
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
    let cli = Cli::parse();
    // The DDL of a given dataset needs the lake's location, not the lake: no AWS call, so
    // no AWS configuration is looked for.
    if let (Command::Ddl { format, table }, Some(path)) = (&cli.command, &cli.dataset) {
        let dataset = streamlake_core::dataset::Dataset::load_path(path)?;
        print_ddl(&dataset, table.as_deref(), *format, &cli.lake);
        return Ok(());
    }
    let lake = Lake::open(cli.lake).await;
    let dataset = match query::lake_dataset(&lake, cli.dataset.as_deref()).await {
        // A dataset file's errors name the file already.
        Err(e) if cli.dataset.is_none() => Err(e).with_context(|| {
            format!(
                "cannot read the dataset stored beside {} (--dataset FILE gives one instead)",
                lake.location()
            )
        })?,
        result => Arc::new(result?),
    };
    let lake = lake.with_granularity(dataset.partition());
    match cli.command {
        Command::Partitions { from, to } => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(["partition", "objects", "bytes", "records"]);
            let summaries = summarize_partitions(&lake, DateRange { from, to }, |_| {}).await?;
            for s in &summaries {
                table.add_row([
                    Cell::new(s.partition.to_string()),
                    Cell::new(s.objects).set_alignment(CellAlignment::Right),
                    Cell::new(s.bytes).set_alignment(CellAlignment::Right),
                    Cell::new(s.records).set_alignment(CellAlignment::Right),
                ]);
            }
            println!("{table}");
            let (objects, bytes, records) = summaries.iter().fold((0, 0, 0), |(o, b, r), s| {
                (o + s.objects, b + s.bytes, r + s.records)
            });
            println!(
                "{} partitions, {objects} objects, {bytes} bytes, {records} records in {}",
                summaries.len(),
                lake.location()
            );
        }
        Command::Sql {
            query,
            format,
            out,
            chart,
            series,
            title,
        } => {
            let session = query::sql::LakeSession::new(lake, dataset).await?;
            let batches = session.run(&query).await?;
            if let Some(path) = chart {
                let options = query::chart::ChartOptions {
                    series,
                    title,
                    ..Default::default()
                };
                let drawn = query::chart::draw_png(&batches, &path, &options)?;
                eprintln!(
                    "chart of {} points in {} series written to {}",
                    drawn.points,
                    drawn.series.len(),
                    path.display()
                );
            }
            match out {
                Some(path) => {
                    query::output::write_file(&batches, &path)?;
                    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                    eprintln!("{rows} rows written to {}", path.display());
                }
                None => {
                    query::output::print(&batches, format.into(), &mut std::io::stdout().lock())?
                }
            }
            tracing::info!("read {}", session.counters().read());
        }
        Command::Compact { from, to, lease } => {
            let range = DateRange { from, to };
            let total = lake.partitions(range).await?.len() as u64;
            let bar = progress(
                Some(total),
                "{spinner} compacting {bar:40} {pos}/{len} partitions {elapsed}",
            );
            let done = query::compaction::Compactor::new(&lake, &dataset)
                .lease(std::time::Duration::from_secs(lease))
                .run(range, |_| bar.inc(1))
                .await?;
            bar.finish_and_clear();
            let objects: usize = done.iter().map(|p| p.objects_in).sum();
            let records: u64 = done.iter().map(|p| p.records).sum();
            let (bytes_in, bytes_out) = done
                .iter()
                .fold((0, 0), |(i, o), p| (i + p.bytes_in, o + p.bytes_out));
            println!(
                "compacted {} of {total} partitions: {objects} objects ({bytes_in} bytes) into {} objects ({bytes_out} bytes), {records} records",
                done.len(),
                done.len()
            );
        }
        Command::Convert {
            dest,
            from,
            to,
            table,
        } => {
            let range = DateRange { from, to };
            let target = Lake::open(dest.clone())
                .await
                .with_granularity(dataset.partition());
            let bar = progress(None, "{spinner} converting: {pos} partitions {elapsed}");
            let done = convert(&lake, &target, &dataset, range, |_| bar.inc(1)).await?;
            target.write_dataset(dataset.text()).await?;
            bar.finish_and_clear();
            let records: u64 = done.iter().map(|p| p.records).sum();
            let (bytes_in, bytes_out) = done
                .iter()
                .fold((0, 0), |(i, o), p| (i + p.bytes_in, o + p.bytes_out));
            eprintln!(
                "converted {} partitions ({bytes_in} bytes) into {} Parquet objects in {dest} ({bytes_out} bytes), {records} records; its Athena DDL:",
                done.len(),
                done.len()
            );
            let table = table.unwrap_or_else(|| format!("{}_parquet", dataset.name()));
            print!(
                "{}",
                all_ddl(
                    &dataset,
                    &TableNames::for_view(&table),
                    TableFormat::Parquet,
                    &dest
                )
            );
        }
        Command::Ddl { format, table } => {
            print_ddl(&dataset, table.as_deref(), format, lake.location());
        }
        Command::Scan {
            from,
            to,
            filters,
            limit,
            format,
        } => {
            let filters = filters
                .iter()
                .map(|f| Filter::parse(f, &dataset))
                .collect::<Result<_, _>>()?;
            let options = ScanOptions {
                range: DateRange { from, to },
                filters,
                limit,
            };
            let columns: Vec<&str> = dataset.columns().iter().map(|c| c.name.as_str()).collect();
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(&columns);
            let bar = progress(None, "{spinner} {pos} records {elapsed}");
            let stats = scan(&lake, &options, |record| {
                bar.inc(1);
                match format {
                    Format::Ndjson => println!("{}", Value::Object(record)),
                    Format::Table => {
                        table.add_row(columns.iter().map(|c| match record.get(*c) {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        }));
                    }
                }
            })
            .await?;
            bar.finish_and_clear();
            if matches!(format, Format::Table) {
                println!("{table}");
            }
            eprintln!(
                "{} matching of {} records read ({} objects, {} bytes, {} partitions)",
                stats.matched, stats.records, stats.objects, stats.bytes, stats.partitions
            );
        }
    }
    Ok(())
}
