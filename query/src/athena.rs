//! What Athena users create over the lake, generated from the dataset file
//! ([`streamlake_core::dataset`]): the raw table over the partition folders, the
//! compaction log table, and the view named after the dataset (`weather`) that reads the
//! raw table as `query` reads the lake ([`crate::compaction_log`]'s rule, in SQL over
//! `"$path"`).
//!
//! `infra/athena/*.sql` and the template's Glue resources are this module's output (a test
//! checks each), and `query ddl` prints it for any location.

use std::fmt::Write as _;

use streamlake_core::dataset::{ColumnType, Dataset};
use streamlake_core::lake::LakeLocation;
use streamlake_core::layout::OutputFormat;
use thiserror::Error;

/// The format a table reads every object of its location as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFormat {
    /// Hive's JSON SerDe over text objects (GZIP'd when their name ends in `.gz`).
    Json,
    /// Parquet.
    Parquet,
}

/// An object of one format where a table reads another.
#[derive(Debug, Error)]
#[error("{url} is {found}, but the table reads {table}: Athena's table fails on it")]
pub struct FormatMismatch {
    /// The object.
    pub url: String,
    /// Its format.
    pub found: &'static str,
    /// The table's.
    pub table: &'static str,
}

impl TableFormat {
    /// The table format of a lake written in `format`.
    pub const fn of(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Parquet => TableFormat::Parquet,
            OutputFormat::Ndjson | OutputFormat::NdjsonGzip => TableFormat::Json,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            TableFormat::Json => "NDJSON",
            TableFormat::Parquet => "Parquet",
        }
    }

    /// The format of the object `key` (at `url`), if the table can read it.
    pub fn check(self, url: &str, key: &str) -> Result<OutputFormat, FormatMismatch> {
        let format = OutputFormat::of_key(key);
        if TableFormat::of(format) == self {
            Ok(format)
        } else {
            Err(FormatMismatch {
                url: url.to_owned(),
                found: TableFormat::of(format).name(),
                table: self.name(),
            })
        }
    }
}

/// The names of the three objects Athena users create for one lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// The view users query (`weather`).
    pub view: String,
    /// The table over the partition folders (`weather_raw`).
    pub raw: String,
    /// The compaction log's table (`weather_compaction_log`).
    pub log: String,
}

impl TableNames {
    /// The names for a dataset's view (the dataset's name).
    pub fn of(dataset: &Dataset) -> Self {
        Self::for_view(dataset.name())
    }

    /// The names for a view called `view`.
    pub fn for_view(view: &str) -> Self {
        Self {
            view: view.to_owned(),
            raw: format!("{view}_raw"),
            log: format!("{view}_compaction_log"),
        }
    }
}

/// The Hive JSON SerDe's timestamp forms: what the transform writes (`Z`, 0/3/6/9
/// fraction digits).
pub const TIMESTAMP_FORMATS: &str = "yyyy-MM-dd'T'HH:mm:ss'Z',yyyy-MM-dd'T'HH:mm:ss.SSS'Z',yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z',yyyy-MM-dd'T'HH:mm:ss.SSSSSSSSS'Z'";

/// The columns of the compaction log's table, with their comments.
pub const LOG_COLUMNS: &[(&str, &str)] = &[
    (
        "compaction_id",
        "Id of the compaction (its log object is <id>.json)",
    ),
    (
        "day_folder",
        "Partition folder, e.g. year=2021/month=10/day=15",
    ),
    (
        "object_path",
        "The object, as the \"$path\" pseudo-column names it",
    ),
    (
        "object_role",
        "compacted (the object written) or source (an object it replaces)",
    ),
    (
        "state",
        "pending (sources are read) or committed (the compacted object is read)",
    ),
];

fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `s3://bucket/prefix/` of a location (a local folder as given).
fn url(location: &LakeLocation) -> String {
    location.to_string()
}

/// `CREATE EXTERNAL TABLE` for the table over the partition folders of `lake`, holding
/// `dataset`'s records, read as `format`, with projected partitions (no crawler, no
/// `MSCK REPAIR`).
pub fn raw_table_ddl(
    dataset: &Dataset,
    names: &TableNames,
    format: TableFormat,
    lake: &LakeLocation,
) -> String {
    let location = url(lake);
    let mut out = format!("CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n", names.raw);
    let columns: Vec<String> = dataset
        .columns()
        .iter()
        .map(|c| {
            let comment = c
                .comment
                .as_deref()
                .map(|text| format!(" COMMENT {}", sql_string(text)))
                .unwrap_or_default();
            format!("  {} {}{comment}", c.name, c.ty.glue_type())
        })
        .collect();
    out.push_str(&columns.join(",\n"));
    let partition_columns = dataset.partition().columns();
    let partitions: Vec<String> = partition_columns
        .iter()
        .map(|c| format!("{c} int"))
        .collect();
    let _ = writeln!(out, "\n)\nPARTITIONED BY ({})", partitions.join(", "));
    match format {
        TableFormat::Json => {
            out.push_str("ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n");
            let _ = writeln!(
                out,
                "WITH SERDEPROPERTIES (\n  'timestamp.formats' = {}\n)",
                sql_string(TIMESTAMP_FORMATS)
            );
        }
        TableFormat::Parquet => out.push_str("STORED AS PARQUET\n"),
    }
    let _ = writeln!(out, "LOCATION {}", sql_string(&location));
    out.push_str("TBLPROPERTIES (\n  'projection.enabled' = 'true',\n");
    out.push_str(
        "  'projection.year.type' = 'integer',\n  'projection.year.range' = '1970,2100',\n",
    );
    out.push_str("  'projection.month.type' = 'integer',\n  'projection.month.range' = '1,12',\n  'projection.month.digits' = '2',\n");
    out.push_str("  'projection.day.type' = 'integer',\n  'projection.day.range' = '1,31',\n  'projection.day.digits' = '2',\n");
    if partition_columns.contains(&"hour") {
        out.push_str("  'projection.hour.type' = 'integer',\n  'projection.hour.range' = '0,23',\n  'projection.hour.digits' = '2',\n");
    }
    let template: String = partition_columns
        .iter()
        .map(|c| format!("{c}=${{{c}}}/"))
        .collect();
    let _ = write!(
        out,
        "  'storage.location.template' = {}",
        sql_string(&format!("{location}{template}"))
    );
    if format == TableFormat::Parquet {
        out.push_str(",\n  'parquet.compression' = 'SNAPPY'");
    }
    out.push_str("\n);\n");
    out
}

/// `CREATE EXTERNAL TABLE` for the compaction log of `lake` (JSON lines, in
/// [`LakeLocation::compaction_log`]).
pub fn log_table_ddl(names: &TableNames, lake: &LakeLocation) -> String {
    let mut out = format!("CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n", names.log);
    let columns: Vec<String> = LOG_COLUMNS
        .iter()
        .map(|(name, doc)| format!("  {name} string COMMENT {}", sql_string(doc)))
        .collect();
    out.push_str(&columns.join(",\n"));
    out.push_str("\n)\nROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n");
    let _ = writeln!(
        out,
        "LOCATION {};",
        sql_string(&url(&lake.compaction_log()))
    );
    out
}

/// The view's query: the raw table without the objects the compaction log hides.
pub fn view_query(dataset: &Dataset, names: &TableNames) -> String {
    let columns: Vec<String> = dataset
        .columns()
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .chain(
            dataset
                .partition()
                .columns()
                .iter()
                .map(|c| format!("\"{c}\"")),
        )
        .collect();
    format!(
        "SELECT {columns}\nFROM {raw}\nWHERE \"$path\" NOT IN (\n  SELECT object_path FROM {log}\n  WHERE (object_role = 'compacted' AND state = 'pending')\n     OR (object_role = 'source' AND state = 'committed')\n)",
        columns = columns.join(", "),
        raw = names.raw,
        log = names.log,
    )
}

/// `CREATE OR REPLACE VIEW` for the view users query.
pub fn view_ddl(dataset: &Dataset, names: &TableNames) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{};\n",
        names.view,
        view_query(dataset, names)
    )
}

/// The Presto/Trino type of a column, as an Athena view's definition in Glue names it.
pub const fn view_column_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String | ColumnType::Json => "varchar",
        ColumnType::Long => "bigint",
        ColumnType::Double => "double",
        ColumnType::Boolean => "boolean",
        ColumnType::Timestamp => "timestamp(3)",
        ColumnType::Date => "date",
    }
}

/// Every statement for one lake, in the order to run them, with a comment above each.
pub fn all_ddl(
    dataset: &Dataset,
    names: &TableNames,
    format: TableFormat,
    lake: &LakeLocation,
) -> String {
    format!(
        "-- The objects in the lake's partition folders, as Athena reads them.\n{}\n\
         -- The compaction log (query/src/compaction_log.rs).\n{}\n\
         -- What to query: every record once, at every step of a compaction.\n{}",
        raw_table_ddl(dataset, names, format, lake),
        log_table_ddl(names, lake),
        view_ddl(dataset, names)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_check_objects() {
        assert!(TableFormat::Json.check("u", "a/b").is_ok());
        assert!(TableFormat::Json.check("u", "a/b.gz").is_ok());
        let error = TableFormat::Json
            .check("s3://b/x.parquet", "x.parquet")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "s3://b/x.parquet is Parquet, but the table reads NDJSON: Athena's table fails on it"
        );
        assert!(TableFormat::Parquet.check("u", "x.parquet").is_ok());
        assert!(TableFormat::Parquet.check("u", "x.gz").is_err());
    }

    #[test]
    fn the_view_names_every_column_and_the_rule() {
        let names = TableNames::for_view("weather");
        let view = view_ddl(&Dataset::weather(), &names);
        assert!(view.starts_with("CREATE OR REPLACE VIEW weather AS\nSELECT \"stationid\""));
        assert!(view.contains("FROM weather_raw\n"));
        assert!(view.contains("SELECT object_path FROM weather_compaction_log"));
        let log = log_table_ddl(&names, &"s3://b/data/".parse().unwrap());
        assert!(log.contains("LOCATION 's3://b/compaction-log/data/';"));
    }
}
