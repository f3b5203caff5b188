//! Reading the lake's objects whatever their format: NDJSON, GZIP'd NDJSON or Parquet
//! (told apart by the key's extension, as Firehose names them).

use std::borrow::Cow;
use std::io::Read;

use arrow_array::RecordBatch;
use flate2::read::GzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::layout::OutputFormat;

/// An object that cannot be read.
#[derive(Debug, Error)]
pub enum ReadError {
    /// Decompresses to more than a read may hold (a corrupt or hostile object).
    #[error("{key}: decompresses to more than {limit} bytes")]
    TooLarge {
        /// The object.
        key: String,
        /// The limit.
        limit: u64,
    },
    /// Not GZIP (the cause says so: [`decompressing`]).
    #[error("{key}: {source}")]
    Gzip {
        /// The object.
        key: String,
        /// The cause.
        source: std::io::Error,
    },
    /// NDJSON lines that do not fit the observation schema.
    #[error("{key}: does not fit the observation schema: {message}")]
    Schema {
        /// The object.
        key: String,
        /// The cause.
        message: String,
    },
    /// Not Parquet, or not readable as Arrow.
    #[error("{key}: not readable Parquet: {message}")]
    Parquet {
        /// The object.
        key: String,
        /// The cause.
        message: String,
    },
}

/// Records in an object (lines for NDJSON, rows for Parquet).
pub fn count_records(key: &str, body: &[u8]) -> Result<u64, ReadError> {
    match OutputFormat::of_key(key) {
        OutputFormat::Ndjson | OutputFormat::NdjsonGzip => Ok(count_lines(&decompress(key, body)?)),
        OutputFormat::Parquet => {
            let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(body))
                .map_err(|e| parquet_error(key, e))?;
            Ok(u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0))
        }
    }
}

/// The records of an object as JSON objects (lines that are not JSON objects are
/// skipped and counted in the second value).
pub fn read_records(key: &str, body: &[u8]) -> Result<(Vec<Map<String, Value>>, u64), ReadError> {
    match OutputFormat::of_key(key) {
        OutputFormat::Ndjson | OutputFormat::NdjsonGzip => Ok(parse_lines(&decompress(key, body)?)),
        OutputFormat::Parquet => {
            let batches = read_parquet(key, body)?;
            let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
            for batch in &batches {
                writer.write(batch).map_err(|e| parquet_error(key, e))?;
            }
            writer.finish().map_err(|e| parquet_error(key, e))?;
            Ok(parse_lines(&writer.into_inner()))
        }
    }
}

/// The records of an object as record batches of the dataset's schema.
pub fn read_batches(
    dataset: &crate::dataset::Dataset,
    key: &str,
    body: &[u8],
) -> Result<Vec<RecordBatch>, ReadError> {
    match OutputFormat::of_key(key) {
        OutputFormat::Ndjson | OutputFormat::NdjsonGzip => {
            crate::columnar::decode_ndjson(dataset, lines(&decompress(key, body)?)).map_err(|e| {
                ReadError::Schema {
                    key: key.to_owned(),
                    message: e.to_string(),
                }
            })
        }
        OutputFormat::Parquet => read_parquet(key, body),
    }
}

/// The record batches of a Parquet object.
pub fn read_parquet(key: &str, body: &[u8]) -> Result<Vec<RecordBatch>, ReadError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(body))
        .and_then(|b| b.build())
        .map_err(|e| parquet_error(key, e))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet_error(key, e))
}

fn parquet_error(key: &str, e: impl std::fmt::Display) -> ReadError {
    ReadError::Parquet {
        key: key.to_owned(),
        message: e.to_string(),
    }
}

/// An NDJSON object's text: the body itself, or decompressed when the key ends in `.gz`.
pub fn decompress<'a>(key: &str, body: &'a [u8]) -> Result<Cow<'a, [u8]>, ReadError> {
    match OutputFormat::of_key(key) {
        OutputFormat::NdjsonGzip => gunzip(key, body).map(Cow::Owned),
        _ => Ok(Cow::Borrowed(body)),
    }
}

/// An NDJSON object's text as a reader: `reader` itself, or, when the key ends in `.gz`,
/// decompressed as it is read (failing past [`MAX_DECOMPRESSED_BYTES`]).
pub fn decompressing<'a>(
    key: &str,
    reader: Box<dyn Read + Send + 'a>,
) -> Box<dyn Read + Send + 'a> {
    decompressing_at_most(key, reader, MAX_DECOMPRESSED_BYTES)
}

fn decompressing_at_most<'a>(
    key: &str,
    reader: Box<dyn Read + Send + 'a>,
    limit: u64,
) -> Box<dyn Read + Send + 'a> {
    match OutputFormat::of_key(key) {
        OutputFormat::NdjsonGzip => Box::new(AtMost {
            inner: GzDecoder::new(reader),
            left: limit,
            limit,
        }),
        _ => reader,
    }
}

/// A GZIP decoder that fails (`FileTooLarge`) once more than `limit` bytes came out of
/// it, and says "not GZIP" when its input is not (malformed or cut short).
struct AtMost<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::UnexpectedEof => {
                std::io::Error::new(e.kind(), format!("not GZIP: {e}"))
            }
            _ => e,
        })?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("decompresses to more than {} bytes", self.limit),
            )
        })?;
        Ok(n)
    }
}

/// The most a GZIP object may decompress to (NDJSON compresses about tenfold; Firehose
/// objects are at most 128 MiB before compression).
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

fn gunzip(key: &str, body: &[u8]) -> Result<Vec<u8>, ReadError> {
    gunzip_at_most(key, body, MAX_DECOMPRESSED_BYTES)
}

fn gunzip_at_most(key: &str, body: &[u8], limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    decompressing_at_most(key, Box::new(body), limit)
        .read_to_end(&mut out)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::FileTooLarge => ReadError::TooLarge {
                key: key.to_owned(),
                limit,
            },
            _ => ReadError::Gzip {
                key: key.to_owned(),
                source,
            },
        })?;
    Ok(out)
}

/// Bytes at the end of a Parquet object that hold the length of its metadata.
pub const PARQUET_FOOTER_BYTES: usize = 8;

/// The length of a Parquet object's metadata, from its last [`PARQUET_FOOTER_BYTES`]
/// bytes (the metadata is the bytes just before them).
pub fn parquet_metadata_length(key: &str, tail: &[u8]) -> Result<usize, ReadError> {
    FooterTail::try_from(tail)
        .map(|t| t.metadata_length())
        .map_err(|e| parquet_error(key, e))
}

/// The rows of a Parquet object, from its metadata alone.
pub fn parquet_rows(key: &str, metadata: &[u8]) -> Result<u64, ReadError> {
    let metadata =
        ParquetMetaDataReader::decode_metadata(metadata).map_err(|e| parquet_error(key, e))?;
    Ok(u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0))
}

fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
}

fn count_lines(body: &[u8]) -> u64 {
    lines(body).count() as u64
}

fn parse_lines(body: &[u8]) -> (Vec<Map<String, Value>>, u64) {
    let mut records = Vec::new();
    let mut unreadable = 0;
    for line in lines(body) {
        match serde_json::from_slice(line) {
            Ok(record) => records.push(record),
            Err(_) => unreadable += 1,
        }
    }
    (records, unreadable)
}

/// GZIP-compresses an object body.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(body)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::ndjson_to_parquet;

    const LINES: &[u8] = b"{\"stationid\":\"S1\",\"station_name\":null,\"datatype\":\"PRCP\",\"value\":5.0,\"observed_at\":\"2021-10-01T00:00:00Z\",\"date\":\"2021-10-01\",\"ingested_at\":\"2021-10-01T00:00:01Z\"}\n{\"stationid\":\"S2\",\"station_name\":\"B\",\"datatype\":\"TMAX\",\"value\":20.5,\"observed_at\":\"2021-10-01T00:00:00Z\",\"date\":\"2021-10-01\",\"ingested_at\":\"2021-10-01T00:00:01Z\"}\n";

    #[test]
    fn decompression_stops_at_its_limit_naming_the_object() {
        let bomb = gzip(&vec![b'\n'; 1 << 20]);
        assert!(
            bomb.len() < 4096,
            "a megabyte of newlines compresses to {}",
            bomb.len()
        );
        let error = gunzip_at_most("data/x.gz", &bomb, 1 << 16).unwrap_err();
        assert_eq!(
            error.to_string(),
            "data/x.gz: decompresses to more than 65536 bytes"
        );
        assert_eq!(
            gunzip_at_most("data/x.gz", &bomb, 1 << 20).unwrap().len(),
            1 << 20
        );
    }

    #[test]
    fn a_decompressing_reader_reads_what_gunzip_reads_and_stops_at_its_limit() {
        let read = |key: &str, body: &[u8], limit| {
            let mut out = Vec::new();
            decompressing_at_most(key, Box::new(body), limit)
                .read_to_end(&mut out)
                .map(|_| out)
        };
        let bomb = gzip(&vec![b'\n'; 1 << 20]);
        assert_eq!(read("data/x.gz", &bomb, 1 << 20).unwrap().len(), 1 << 20);
        assert_eq!(
            read("data/x.gz", &bomb, 1 << 16).unwrap_err().to_string(),
            "decompresses to more than 65536 bytes"
        );
        let error = read("data/x.gz", LINES, 1 << 20).unwrap_err().to_string();
        assert!(error.starts_with("not GZIP: "), "{error}");
        // Without `.gz` the body is read as it is.
        assert_eq!(read("data/x", LINES, 1).unwrap(), LINES);
    }

    #[test]
    fn a_parquet_objects_rows_come_from_its_footer_alone() {
        let lines: Vec<&[u8]> = LINES.split_inclusive(|&b| b == b'\n').collect();
        let parquet = ndjson_to_parquet(&crate::dataset::Dataset::weather(), &lines)
            .unwrap()
            .parquet
            .unwrap();
        let tail = &parquet[parquet.len() - PARQUET_FOOTER_BYTES..];
        let length = parquet_metadata_length("a.parquet", tail).unwrap();
        let end = parquet.len() - PARQUET_FOOTER_BYTES;
        let metadata = &parquet[end - length..end];
        assert_eq!(parquet_rows("a.parquet", metadata).unwrap(), 2);
        let error = parquet_metadata_length("a.parquet", b"12345678").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("a.parquet: not readable Parquet")
        );
    }

    #[test]
    fn every_format_reads_the_same_records() {
        let lines: Vec<&[u8]> = LINES.split_inclusive(|&b| b == b'\n').collect();
        let parquet = ndjson_to_parquet(&crate::dataset::Dataset::weather(), &lines)
            .unwrap()
            .parquet
            .unwrap();
        let objects = [
            ("a".to_owned(), LINES.to_vec()),
            ("a.gz".to_owned(), gzip(LINES)),
            ("a.parquet".to_owned(), parquet),
        ];
        for (key, body) in &objects {
            assert_eq!(count_records(key, body).unwrap(), 2, "{key}");
            let (records, unreadable) = read_records(key, body).unwrap();
            assert_eq!(unreadable, 0);
            let stations: Vec<&str> = records
                .iter()
                .map(|r| r["stationid"].as_str().unwrap())
                .collect();
            assert_eq!(stations, ["S1", "S2"], "{key}");
            assert_eq!(records[1]["value"], 20.5, "{key}");
            assert_eq!(records[0]["date"], "2021-10-01", "{key}");
            let batches = read_batches(&crate::dataset::Dataset::weather(), key, body).unwrap();
            assert_eq!(
                batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                2,
                "{key}"
            );
        }
    }
}
