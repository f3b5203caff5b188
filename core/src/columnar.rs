//! A dataset's records as Arrow record batches and Parquet files, with the Arrow schema
//! derived from the dataset file, as Firehose record-format conversion writes them.
//!
//! Partition columns (`year`, `month`, `day`, `hour`) are path segments, not data columns.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use thiserror::Error;

use crate::dataset::{ColumnType, Dataset};
use crate::ndjson::{DecodeError, NdjsonDecoder};

/// The Arrow type of a column.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String | ColumnType::Json => DataType::Utf8,
        ColumnType::Long => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        // An offset, not a zone name: arrow reads it without a time-zone database.
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        ColumnType::Date => DataType::Date32,
    }
}

/// The Arrow schema of a dataset's records: its columns in order.
pub fn arrow_schema(dataset: &Dataset) -> SchemaRef {
    Arc::new(Schema::new(
        dataset
            .columns()
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), c.nullable()))
            .collect::<Vec<_>>(),
    ))
}

/// The lake's NDJSON decoder for `dataset`: all its columns, keys expected in the order
/// the transform writes them.
pub fn ndjson_decoder(dataset: &Dataset, batch_size: usize) -> Result<NdjsonDecoder, DecodeError> {
    let names: Vec<&str> = dataset.columns().iter().map(|c| c.name.as_str()).collect();
    Ok(NdjsonDecoder::new(arrow_schema(dataset), batch_size)?.with_written_order(&names))
}

/// Rows per Parquet row group: large objects read well in few, big row groups.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Failure to encode a whole batch (records that do not fit are reported, not errors).
#[derive(Debug, Error)]
pub enum EncodeError {
    /// Arrow could not build the batch.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The lines could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Parquet could not write it.
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
}

/// NDJSON lines converted to Parquet: the file, and the lines that do not fit the schema.
#[derive(Debug)]
pub struct Converted {
    /// The Parquet file (Snappy), `None` when no line fit.
    pub parquet: Option<Vec<u8>>,
    /// Rows in the file.
    pub rows: usize,
    /// (index of the line, reason) of every line left out.
    pub rejected: Vec<(usize, String)>,
}

/// Reads NDJSON lines into record batches of the dataset's schema (with the lake's one
/// NDJSON decoder, [`NdjsonDecoder`]).
pub fn decode_ndjson<'a>(
    dataset: &Dataset,
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<RecordBatch>, DecodeError> {
    ndjson_decoder(dataset, ROW_GROUP_ROWS)?.decode_lines(lines)
}

/// Converts NDJSON lines (the transform's output) to a Parquet file of the dataset's
/// schema, as Firehose record-format conversion does: lines that do not fit the schema
/// are left out and reported with the reason.
pub fn ndjson_to_parquet(dataset: &Dataset, lines: &[&[u8]]) -> Result<Converted, EncodeError> {
    let decoder = ndjson_decoder(dataset, ROW_GROUP_ROWS)?;
    let schema = arrow_schema(dataset);
    let (mut batches, mut rejected) = (Vec::new(), Vec::new());
    let mut from = 0;
    // A line at fault stops the decoder: keep the lines before it, report it, go on.
    loop {
        match decoder.decode_lines(lines[from..].iter().copied()) {
            Ok(rest) => {
                batches.extend(rest);
                break;
            }
            Err(DecodeError::Line { line, reason }) => {
                let at = from + line - 1;
                batches.extend(decoder.decode_lines(lines[from..at].iter().copied())?);
                rejected.push((at, reason));
                from = at + 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let parquet = if rows > 0 {
        Some(write_parquet(&schema, &batches)?)
    } else {
        None
    };
    Ok(Converted {
        parquet,
        rows,
        rejected,
    })
}

/// `batch` in `schema`: its columns by name, a column it lacks (an object written before
/// the column was added) null. A column of another type is an error: a dataset change
/// that needs it is refused before anything is written.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().as_ref() == schema.as_ref() {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => Err(ArrowError::SchemaError(format!(
                "column {} is {}, the dataset says {}",
                field.name(),
                column.data_type(),
                field.data_type()
            ))),
            None => Ok(arrow_array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Nullability follows the dataset: an added column is optional, so null is allowed.
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
}

/// Writes record batches of `schema` as one Parquet file (Snappy).
pub fn write_parquet(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, EncodeError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_epoch_millis;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn line(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        Dataset::weather()
            .normalize_into(
                json.as_bytes(),
                from_epoch_millis(1_633_046_400_250),
                &mut out,
            )
            .unwrap();
        out
    }

    #[test]
    fn the_schema_follows_the_fields() {
        let dataset = Dataset::weather();
        let schema = arrow_schema(&dataset);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let columns: Vec<&str> = dataset.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, columns);
        assert!(
            schema
                .field_with_name("station_name")
                .unwrap()
                .is_nullable()
        );
        assert!(!schema.field_with_name("value").unwrap().is_nullable());
    }

    #[test]
    fn converts_lines_and_reports_those_that_do_not_fit() {
        let good = line(
            r#"{"date":"2021-10-01T06:30:00","stationid":"S1","location":"A","datatype":"PRCP","value":5.5}"#,
        );
        let no_name =
            line(r#"{"date":"2021-10-02","stationid":"S2","datatype":"TMAX","value":-1}"#);
        let bad = br#"{"stationid":"S3","datatype":"PRCP","value":"five","observed_at":"x","date":"2021-10-01","ingested_at":"x"}"#;
        let lines: Vec<&[u8]> = vec![&good, bad, &no_name];
        let converted = ndjson_to_parquet(&Dataset::weather(), &lines).unwrap();
        assert_eq!(converted.rows, 2);
        assert_eq!(converted.rejected.len(), 1);
        assert_eq!(converted.rejected[0].0, 1);

        let file = bytes_reader(converted.parquet.unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(
            reader.schema().as_ref(),
            arrow_schema(&Dataset::weather()).as_ref()
        );
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let values = batch.column(3).as_primitive::<Float64Type>();
        assert_eq!(values.values(), &[5.5, -1.0]);
        let observed = batch.column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(observed.value(0), 1_633_069_800_000_000);
        assert!(batch.column(1).is_null(1), "a missing station name is null");

        // Lines at fault anywhere, one after another: each reported, the others kept.
        let lines: Vec<&[u8]> = vec![bad, &good, bad, b"nope", &no_name, bad];
        let converted = ndjson_to_parquet(&Dataset::weather(), &lines).unwrap();
        assert_eq!(converted.rows, 2);
        let at: Vec<usize> = converted.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [0, 2, 3, 5]);
        assert_eq!(
            converted.rejected[0].1,
            "field `value`: expected a number, found `\"five\"`"
        );
        assert_eq!(converted.rejected[2].1, "not a JSON object");
    }

    fn bytes_reader(bytes: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from(bytes)
    }
}
