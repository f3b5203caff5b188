//! Observations as Arrow record batches and Parquet files, with the Arrow schema derived
//! from [`crate::schema::FIELDS`], as Firehose record-format conversion writes them.
//!
//! Partition columns (`year`, `month`, `day`) are path segments, not data columns.

use std::sync::{Arc, LazyLock};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use thiserror::Error;

use crate::ndjson::{DecodeError, NdjsonDecoder};
use crate::schema::{FIELDS, FieldType};

/// The Arrow type of a column.
pub fn arrow_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::String => DataType::Utf8,
        FieldType::Double => DataType::Float64,
        // An offset, not a zone name: arrow reads it without a time-zone database.
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        FieldType::Date => DataType::Date32,
    }
}

/// The Arrow schema of a normalized observation.
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(
            FIELDS
                .iter()
                .map(|f| Field::new(f.name, arrow_type(f.ty), f.nullable))
                .collect::<Vec<_>>(),
        ))
    });
    SCHEMA.clone()
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

/// Reads NDJSON lines into record batches of the observation schema (with the lake's
/// one NDJSON decoder, [`NdjsonDecoder`]).
pub fn decode_ndjson<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<RecordBatch>, DecodeError> {
    NdjsonDecoder::new(arrow_schema(), ROW_GROUP_ROWS)?.decode_lines(lines)
}

/// Converts NDJSON lines (the transform's output) to a Parquet file, as Firehose
/// record-format conversion does: lines that do not fit the schema are left out and
/// reported with the reason.
pub fn ndjson_to_parquet(lines: &[&[u8]]) -> Result<Converted, EncodeError> {
    let decoder = NdjsonDecoder::new(arrow_schema(), ROW_GROUP_ROWS)?;
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
        Some(write_parquet(&batches)?)
    } else {
        None
    };
    Ok(Converted {
        parquet,
        rows,
        rejected,
    })
}

/// Writes record batches of the observation schema as one Parquet file (Snappy).
pub fn write_parquet(batches: &[RecordBatch]) -> Result<Vec<u8>, EncodeError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, arrow_schema(), Some(props))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::normalize;
    use crate::time::from_epoch_millis;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn line(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        normalize(json.as_bytes(), from_epoch_millis(1_633_046_400_250))
            .unwrap()
            .write_ndjson(&mut out);
        out
    }

    #[test]
    fn the_schema_follows_the_fields() {
        let schema = arrow_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, FIELDS.iter().map(|f| f.name).collect::<Vec<_>>());
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
        let converted = ndjson_to_parquet(&lines).unwrap();
        assert_eq!(converted.rows, 2);
        assert_eq!(converted.rejected.len(), 1);
        assert_eq!(converted.rejected[0].0, 1);

        let file = bytes_reader(converted.parquet.unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(reader.schema().as_ref(), arrow_schema().as_ref());
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let values = batch.column(3).as_primitive::<Float64Type>();
        assert_eq!(values.values(), &[5.5, -1.0]);
        let observed = batch.column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(observed.value(0), 1_633_069_800_000_000);
        assert!(batch.column(1).is_null(1), "a missing station name is null");

        // Lines at fault anywhere, one after another: each reported, the others kept.
        let lines: Vec<&[u8]> = vec![bad, &good, bad, b"nope", &no_name, bad];
        let converted = ndjson_to_parquet(&lines).unwrap();
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
