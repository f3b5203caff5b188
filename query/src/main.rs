use anyhow::Result;
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use query::{Filter, ScanOptions, scan, summarize_partitions};
use serde_json::Value;
use streamlake_core::lake::{DateRange, Lake, LakeLocation};
use streamlake_core::schema::FIELDS;

/// Reads the streamlake lake: browse partitions, scan records.
///
/// The lake is `s3://bucket/prefix/` (credentials and region from the standard AWS
/// configuration; AWS_ENDPOINT_URL for an emulator) or a local folder with the same
/// `year=YYYY/month=MM/day=DD/` layout.
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
    /// Records of a date range, reading only its partitions.
    Scan {
        /// First day, inclusive.
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, inclusive.
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Keep records whose field equals the value (repeatable; all must match).
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        filters: Vec<Filter>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A table on the terminal.
    Table,
    /// One JSON object per line.
    Ndjson,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let lake = Lake::open(cli.lake).await;
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
        Command::Scan {
            from,
            to,
            filters,
            limit,
            format,
        } => {
            let options = ScanOptions {
                range: DateRange { from, to },
                filters,
                limit,
            };
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(FIELDS.iter().map(|f| f.name));
            let stats = scan(&lake, &options, |record| match format {
                Format::Ndjson => println!("{}", Value::Object(record)),
                Format::Table => {
                    table.add_row(FIELDS.iter().map(|f| match record.get(f.name) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Null) | None => String::new(),
                        Some(other) => other.to_string(),
                    }));
                }
            })
            .await?;
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
