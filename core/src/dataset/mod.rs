//! The dataset file: the one definition of a record's shape.
//!
//! A dataset file (TOML) names the lake's columns, their types, where each is read from in
//! the input record (a key or a dotted path into nested objects) or what it is derived from
//! (the event time, its UTC day, the arrival time), which input field is the event time and
//! in what format, the partition granularity, and what to do with keys it does not name.
//! Validation in the transform, the Arrow/Parquet schema, the Glue/Athena columns, `query`'s
//! table and the generator all follow it.
//!
//! [`Dataset::from_toml`] reads and checks a file: a mistake is refused with the file,
//! line and key ([`DatasetError`]). The checked dataset holds a compiled plan
//! ([`Dataset::normalize`]) that reads a record and writes its NDJSON line without a
//! lookup per key.
//!
//! ```toml
//! name = "unicorns"
//! partition = "day"
//!
//! [event_time]
//! field = "StatusTime"
//! format = "%Y-%m-%d %H:%M:%S%.f"
//!
//! [[fields]]
//! name = "Name"
//! type = "string"
//! required = true
//!
//! [[fields]]
//! name = "StatusTime"
//! type = "timestamp"
//! ```

pub mod dynamodb;
mod error;
pub mod evolution;
mod file;
pub mod generate;
pub mod infer;
mod record;
mod time_format;

use std::path::Path;

pub use error::DatasetError;
pub use record::{InvalidRecord, Normalized, Value};
pub use time_format::TimeFormat;

use crate::partition::PartitionKeys;

/// The lake's granularity: one folder per day or per hour of event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// `year=/month=/day=/`.
    #[default]
    Day,
    /// `year=/month=/day=/hour=/`.
    Hour,
}

impl Granularity {
    /// The setting's value: `day` or `hour`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Hour => "hour",
        }
    }

    /// The partition columns, outermost first.
    pub const fn columns(self) -> &'static [&'static str] {
        match self {
            Granularity::Day => &["year", "month", "day"],
            Granularity::Hour => &["year", "month", "day", "hour"],
        }
    }
}

/// What happens to an input key the dataset does not read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// Ignored, as Firehose's record format conversion does.
    #[default]
    Drop,
    /// The record fails, naming the key.
    Reject,
}

/// The logical type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// A 64-bit integer.
    Long,
    /// A finite 64-bit float.
    Double,
    /// `true` or `false`.
    Boolean,
    /// An instant, written as RFC 3339 in UTC (`2021-10-01T00:00:00Z`).
    Timestamp,
    /// A calendar day, written as `YYYY-MM-DD`.
    Date,
    /// Any JSON value, kept as its JSON text (a string column in Parquet and Glue).
    Json,
}

impl ColumnType {
    /// Every type, as the dataset file spells them.
    pub const ALL: [ColumnType; 7] = [
        ColumnType::String,
        ColumnType::Long,
        ColumnType::Double,
        ColumnType::Boolean,
        ColumnType::Timestamp,
        ColumnType::Date,
        ColumnType::Json,
    ];

    /// The name in the dataset file.
    pub const fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Long => "long",
            ColumnType::Double => "double",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
            ColumnType::Json => "json",
        }
    }

    /// The Glue / Athena (Hive DDL) type of a column of this type.
    pub const fn glue_type(self) -> &'static str {
        match self {
            ColumnType::String | ColumnType::Json => "string",
            ColumnType::Long => "bigint",
            ColumnType::Double => "double",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
        }
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value a column takes from the record's times instead of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Derived {
    /// The event time, UTC (a timestamp).
    EventTime,
    /// The UTC day of the event time (a date): the partition's day.
    EventDate,
    /// The record's arrival time in the stream, UTC (a timestamp).
    ArrivalTime,
}

impl Derived {
    /// The name in the dataset file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Derived::EventTime => "event_time",
            Derived::EventDate => "event_date",
            Derived::ArrivalTime => "arrival_time",
        }
    }

    /// The column type it produces.
    pub const fn column_type(self) -> ColumnType {
        match self {
            Derived::EventTime | Derived::ArrivalTime => ColumnType::Timestamp,
            Derived::EventDate => ColumnType::Date,
        }
    }
}

/// Letter case a string column is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Upper case.
    Upper,
    /// Lower case.
    Lower,
}

/// Where a column's value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Read from the input record.
    Read(Read),
    /// Derived from the record's times.
    Derived(Derived),
}

/// A column read from the input.
#[derive(Debug, Clone)]
pub struct Read {
    /// The input key, or the path of keys into nested objects.
    pub path: Vec<String>,
    /// Whether a missing or null value fails the record (otherwise it is null in the lake).
    pub required: bool,
    /// Strings: a blank value fails the record.
    pub non_empty: bool,
    /// Strings: a blank value is null.
    pub blank_as_null: bool,
    /// Strings: the whole value must match this pattern.
    pub pattern: Option<regex::Regex>,
    /// Strings: written in this case (after the pattern is checked).
    pub case: Option<Case>,
    /// Numbers and booleans: also read from strings (`"12.5"`, `"true"`).
    pub accept_strings: bool,
    /// Timestamps and dates: the text's format.
    pub format: TimeFormat,
}

impl Read {
    /// The read of an event time that no column keeps: required, in its own format.
    pub fn of_event_time(event: &EventTime) -> Self {
        Self {
            path: event.path.clone(),
            required: true,
            non_empty: false,
            blank_as_null: false,
            pattern: None,
            case: None,
            accept_strings: true,
            format: event.format.clone(),
        }
    }

    /// The path as written in the dataset file (`meta.ts`).
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// One column of the lake.
#[derive(Debug, Clone)]
pub struct Column {
    /// The column's name in NDJSON, Parquet and Glue.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Where its value comes from.
    pub source: Source,
    /// A one-line description (the Glue column comment).
    pub comment: Option<String>,
}

impl Column {
    /// Whether the column may be null in the lake.
    pub fn nullable(&self) -> bool {
        match &self.source {
            Source::Read(read) => !read.required,
            Source::Derived(_) => false,
        }
    }

    /// The input read, if the column is not derived.
    pub fn read(&self) -> Option<&Read> {
        match &self.source {
            Source::Read(read) => Some(read),
            Source::Derived(_) => None,
        }
    }
}

/// Where the event time is read.
#[derive(Debug, Clone)]
pub struct EventTime {
    /// The input key or path.
    pub path: Vec<String>,
    /// Its format.
    pub format: TimeFormat,
}

/// A checked dataset, with its compiled record plan.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: String,
    prefix: String,
    partition: Granularity,
    unknown_fields: UnknownFields,
    event_time: Option<EventTime>,
    partition_key: Option<String>,
    columns: Vec<Column>,
    dynamodb: Option<dynamodb::DynamoDb>,
    text: String,
    plan: record::Plan,
}

/// The variable that names a Lambda function's dataset file.
pub const DATASET_ENV: &str = "STREAMLAKE_DATASET";

/// The default dataset: NOAA GHCND daily weather (tutorial 000).
const WEATHER: &str = include_str!("../../../examples/weather/dataset.toml");

impl Dataset {
    /// Reads and checks a dataset file's text; `origin` names it in errors (a path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, DatasetError> {
        file::parse(text, origin)
    }

    /// Reads and checks a dataset file.
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(&origin, e))?;
        Self::from_toml(&text, &origin)
    }

    /// Reads and checks a dataset file, or the `dataset.toml` of a folder (an example's
    /// folder, `examples/unicorns`).
    pub fn load_path(path: &Path) -> Result<Self, DatasetError> {
        if path.is_dir() {
            Self::load(&path.join("dataset.toml"))
        } else {
            Self::load(path)
        }
    }

    /// The dataset of a Lambda function: the file named by [`DATASET_ENV`] (a path in the
    /// function's package). Unset, unreadable or invalid is an error: the function must
    /// fail its cold start rather than transform records against a guess.
    ///
    /// A relative path is read from `LAMBDA_TASK_ROOT`, where Lambda extracts the
    /// function's package ("The path to your Lambda function code":
    /// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>).
    pub fn from_env() -> Result<Self, DatasetError> {
        match std::env::var_os(DATASET_ENV) {
            Some(path) => {
                let path = Path::new(&path);
                match std::env::var_os("LAMBDA_TASK_ROOT") {
                    Some(root) if path.is_relative() => Self::load(&Path::new(&root).join(path)),
                    _ => Self::load(path),
                }
            }
            None => Err(DatasetError::missing(
                DATASET_ENV,
                "is not set: it names the dataset file (dataset.toml in the function's package)",
            )),
        }
    }

    /// The default dataset, NOAA weather (`examples/weather/dataset.toml`).
    pub fn weather() -> Self {
        Self::from_toml(WEATHER, "examples/weather/dataset.toml")
            .expect("the weather dataset is valid")
    }

    /// The table name in `query` and in Glue/Athena.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lake's prefix in the bucket (`data/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Firehose S3 prefix of delivered records: the lake's prefix, then a folder per
    /// partition key the transform returns (`data/year=!{partitionKeyFromLambda:year}/...`).
    pub fn firehose_prefix(&self) -> String {
        let mut prefix = self.prefix.clone();
        for key in self.partition.columns() {
            prefix.push_str(&format!("{key}=!{{partitionKeyFromLambda:{key}}}/"));
        }
        prefix
    }

    /// Day or hour partitions.
    pub fn partition(&self) -> Granularity {
        self.partition
    }

    /// What happens to input keys the dataset does not read.
    pub fn unknown_fields(&self) -> UnknownFields {
        self.unknown_fields
    }

    /// Where the event time is read; `None`: the arrival time decides the partition.
    pub fn event_time(&self) -> Option<&EventTime> {
        self.event_time.as_ref()
    }

    /// The input key whose value is the Kinesis partition key, if the dataset names one.
    pub fn partition_key(&self) -> Option<&str> {
        self.partition_key.as_deref()
    }

    /// The lake's columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column holding the event time (read or derived), if there is one.
    pub fn event_time_column(&self) -> Option<&Column> {
        let event = self.event_time.as_ref()?;
        self.columns.iter().find(|c| match &c.source {
            Source::Derived(Derived::EventTime) => true,
            Source::Read(read) => read.path == event.path,
            Source::Derived(_) => false,
        })
    }

    /// The column holding the event time's UTC day, if there is one.
    pub fn event_date_column(&self) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| matches!(c.source, Source::Derived(Derived::EventDate)))
    }

    /// The column holding the time that decides the partition: the event time's column,
    /// or, for a dataset without an event time, its arrival-time column.
    pub fn partition_time_column(&self) -> Option<&Column> {
        match self.event_time {
            Some(_) => self.event_time_column(),
            None => self
                .columns
                .iter()
                .find(|c| matches!(c.source, Source::Derived(Derived::ArrivalTime))),
        }
    }

    /// The column holding the partition time's UTC day (the event date), if there is one.
    pub fn partition_date_column(&self) -> Option<&Column> {
        self.event_date_column()
    }

    /// The consumer's tables (`[dynamodb]`); `None`: the dataset has no consumer branch.
    pub fn dynamodb(&self) -> Option<&dynamodb::DynamoDb> {
        self.dynamodb.as_ref()
    }

    /// The dataset file's text, as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads one raw record and writes its NDJSON line (ending in `\n`) to `out`;
    /// returns its partition. `arrival` is the record's arrival time in the stream. On
    /// error `out` is left as it was.
    pub fn normalize_into(
        &self,
        data: &[u8],
        arrival: chrono::DateTime<chrono::Utc>,
        out: &mut Vec<u8>,
    ) -> Result<PartitionKeys, InvalidRecord> {
        self.plan.normalize_into(self, data, arrival, out)
    }

    /// Reads one raw record into its typed values (for callers that need the values, not
    /// the line).
    pub fn normalize<'a>(
        &self,
        data: &'a [u8],
        arrival: chrono::DateTime<chrono::Utc>,
    ) -> Result<Normalized<'a>, InvalidRecord> {
        self.plan.normalize(self, data, arrival)
    }
}
