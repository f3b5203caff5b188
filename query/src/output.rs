//! Writing query results: a table on the terminal, CSV, JSON, NDJSON, or a Parquet/CSV file.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv;
use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;

use crate::QueryError;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table on the terminal.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
}

fn err(e: impl std::fmt::Display) -> QueryError {
    QueryError::Store(format!("writing the result: {e}"))
}

/// Prints `batches` to `out` in `format`.
pub fn print(
    batches: &[RecordBatch],
    format: Format,
    out: &mut impl Write,
) -> Result<(), QueryError> {
    match format {
        Format::Table => writeln!(out, "{}", pretty_format_batches(batches)?).map_err(err),
        Format::Csv => {
            let mut writer = csv::Writer::new(out);
            for b in batches {
                writer.write(b)?;
            }
            Ok(())
        }
        Format::Json => {
            let mut writer = ArrayWriter::new(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
            writeln!(out).map_err(err)
        }
        Format::Ndjson => {
            let mut writer = LineDelimitedWriter::new(out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
            Ok(())
        }
    }
}

/// Writes `batches` to a file: Parquet if its name ends in `.parquet`, else CSV.
pub fn write_file(batches: &[RecordBatch], path: &Path) -> Result<(), QueryError> {
    let file = File::create(path).map_err(err)?;
    let Some(first) = batches.first() else {
        return Ok(());
    };
    if path.extension().is_some_and(|e| e == "parquet") {
        let mut writer = ArrowWriter::try_new(file, first.schema(), None).map_err(err)?;
        for b in batches {
            writer.write(b).map_err(err)?;
        }
        writer.close().map_err(err)?;
    } else {
        let mut writer = csv::Writer::new(file);
        for b in batches {
            writer.write(b)?;
        }
    }
    Ok(())
}
