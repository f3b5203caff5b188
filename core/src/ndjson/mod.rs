//! The lake's NDJSON decoded straight into Arrow columns, only the columns asked for.
//!
//! One pass over each line ([`scan`]): keys are matched against the lake's columns in the
//! order the transform writes them (the dataset's, [`NdjsonDecoder::with_written_order`]),
//! so a line of the transform's own layout costs one byte comparison per key; other
//! orders (one hash lookup per key), unknown keys, whitespace and escapes are read too. Values of columns not asked for are stepped over without being decoded (their
//! syntax still checked). A line at fault stops the object with an error naming the
//! line, the field and the cause.
//!
//! A body is decoded a block of whole lines at a time ([`BLOCK_BYTES`]): each block is
//! checked as UTF-8, split into lines and scanned while it is in the CPU's cache, and a
//! reader ([`NdjsonDecoder::decode_reader`]) is read a block at a time, so a file is never
//! held whole. (Each step over a whole 8 MB object would read it from memory again: on
//! the lake bench's 2 GB, reading in blocks costs 0.43 s of one core against 0.55-0.70 s
//! for read, check and split over whole objects.)
//!
//! Each column is decoded by the decoder of its type ([`columns`]), as `arrow-json` does.

mod columns;
mod scan;

use std::io::{ErrorKind, Read};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, SchemaRef};
use thiserror::Error;

use columns::{BatchBuilder, Factory};
use scan::{Key, Keys, Token, scan_object};

/// Lines are decoded in blocks of about this many bytes (a line longer than a block is
/// one block of its own).
pub const BLOCK_BYTES: usize = 256 * 1024;

/// A line that cannot be decoded, or a schema the decoder cannot produce.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The line (1-based) at fault, and why.
    #[error("line {line}: {reason}")]
    Line {
        /// Line number in the object, from 1.
        line: usize,
        /// What is wrong, naming the field when one is at fault.
        reason: String,
    },
    /// A column type this decoder does not produce.
    #[error("column `{0}`: type {1} is not supported")]
    Unsupported(String, DataType),
    /// Arrow refused the batch.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The reader failed (after `line` whole lines).
    #[error("read failed after {line} lines: {source}")]
    Read {
        /// Lines read before the failure.
        line: usize,
        /// The cause.
        source: std::io::Error,
    },
}

/// Decodes NDJSON into record batches of a given schema (a projection of the lake's).
#[derive(Clone)]
pub struct NdjsonDecoder {
    schema: SchemaRef,
    columns: Arc<[Factory]>,
    keys: Arc<Keys>,
    batch_size: usize,
}

impl std::fmt::Debug for NdjsonDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonDecoder")
            .field("schema", &self.schema)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl NdjsonDecoder {
    /// A decoder producing `schema` (Utf8, Utf8View, Int64, Float64, Boolean,
    /// Timestamp(µs), Date32 columns, matched to JSON keys by name) in batches of at most
    /// `batch_size` rows. An empty schema counts the lines.
    pub fn new(schema: SchemaRef, batch_size: usize) -> Result<Self, DecodeError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| columns::factory(f))
            .collect::<Result<_, _>>()?;
        let mut decoder = Self {
            schema,
            columns,
            keys: Arc::new(Keys::new(Vec::new())),
            batch_size: batch_size.max(1),
        };
        decoder = decoder.with_written_order(&[]);
        Ok(decoder)
    }

    /// Expects keys in this order (the lake's columns, as the transform writes them),
    /// then the schema's other columns: a line in that order costs one comparison per key.
    pub fn with_written_order(mut self, names: &[&str]) -> Self {
        let schema = self.schema.clone();
        let others = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|name| !names.contains(name));
        let keys = names
            .iter()
            .copied()
            .chain(others)
            .map(|name| Key::new(name, schema.index_of(name).ok()))
            .collect();
        self.keys = Arc::new(Keys::new(keys));
        self
    }

    /// Decodes a whole NDJSON body (blank lines are skipped).
    pub fn decode(&self, body: &[u8]) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut decoding = Decoding::new(self);
        let mut rest = body;
        while !rest.is_empty() {
            // Up to the last line end within a block, or the end of a longer line.
            let end = memchr::memrchr(b'\n', &rest[..rest.len().min(BLOCK_BYTES)])
                .or_else(|| memchr::memchr(b'\n', rest))
                .map_or(rest.len(), |at| at + 1);
            decoding.block(&rest[..end])?;
            rest = &rest[end..];
        }
        decoding.finish()
    }

    /// Decodes NDJSON read from `reader` a block at a time (blank lines are skipped).
    pub fn decode_reader(&self, mut reader: impl Read) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut decoding = Decoding::new(self);
        let mut buffer = vec![0; BLOCK_BYTES];
        let mut filled = 0;
        loop {
            if filled == buffer.len() {
                // A line longer than the buffer.
                buffer.resize(buffer.len() * 2, 0);
            }
            let read = match reader.read(&mut buffer[filled..]) {
                Ok(read) => read,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(DecodeError::Read {
                        line: decoding.lines,
                        source,
                    });
                }
            };
            filled += read;
            let end = match memchr::memrchr(b'\n', &buffer[..filled]) {
                _ if read == 0 => filled,
                Some(at) => at + 1,
                None => continue,
            };
            decoding.block(&buffer[..end])?;
            buffer.copy_within(end..filled, 0);
            filled -= end;
            if read == 0 {
                return decoding.finish();
            }
        }
    }

    /// Decodes lines given one by one (blank ones are skipped; numbers count them all).
    pub fn decode_lines<'a>(
        &self,
        lines: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<RecordBatch>, DecodeError> {
        let mut decoding = Decoding::new(self);
        for line in lines {
            decoding.line(std::str::from_utf8(line))?;
        }
        decoding.finish()
    }
}

/// One decode under way: the batch being built, those done, the lines seen.
struct Decoding<'a> {
    decoder: &'a NdjsonDecoder,
    batch: BatchBuilder,
    tokens: Vec<Token>,
    batches: Vec<RecordBatch>,
    lines: usize,
}

impl<'a> Decoding<'a> {
    fn new(decoder: &'a NdjsonDecoder) -> Self {
        Self {
            decoder,
            // Builders grow as lines come: a large batch size costs nothing for few lines.
            batch: BatchBuilder::new(&decoder.columns, decoder.batch_size.min(8192)),
            tokens: vec![Token::Absent; decoder.columns.len()],
            batches: Vec::new(),
            lines: 0,
        }
    }

    /// Whole lines (the last one may lack its line end).
    fn block(&mut self, block: &[u8]) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(block).map_err(|e| DecodeError::Line {
            line: self.lines + line_of(block, e.valid_up_to()),
            reason: "not UTF-8 text".into(),
        })?;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', block) {
            self.line(Ok(&text[start..end]))?;
            start = end + 1;
        }
        if start < text.len() {
            self.line(Ok(&text[start..]))?;
        }
        Ok(())
    }

    fn line(&mut self, line: Result<&str, std::str::Utf8Error>) -> Result<(), DecodeError> {
        self.lines += 1;
        let number = self.lines;
        let at = |reason: String| DecodeError::Line {
            line: number,
            reason,
        };
        let line = line.map_err(|_| at("not UTF-8 text".into()))?;
        if line.bytes().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        let decoder = self.decoder;
        self.tokens.fill(Token::Absent);
        scan_object(line.as_bytes(), &decoder.keys, &mut self.tokens).map_err(at)?;
        self.batch
            .append(line, &self.tokens, &decoder.schema)
            .map_err(at)?;
        if self.batch.rows == decoder.batch_size {
            self.batches.push(self.batch.finish(&decoder.schema)?);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<RecordBatch>, DecodeError> {
        if self.batch.rows > 0 {
            self.batches.push(self.batch.finish(&self.decoder.schema)?);
        }
        Ok(self.batches)
    }
}

/// The line number (from 1) of a byte offset.
fn line_of(body: &[u8], offset: usize) -> usize {
    1 + memchr::memchr_iter(b'\n', &body[..offset]).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::arrow_schema;
    use crate::dataset::Dataset;
    use crate::generate::{GeneratorConfig, WeatherGenerator};
    use crate::time::from_epoch_millis;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type};
    use arrow_schema::{Field, Schema};
    use columns::parse_f64;

    fn decoder(names: &[&str]) -> NdjsonDecoder {
        let full = arrow_schema(&Dataset::weather());
        let fields: Vec<Field> = names
            .iter()
            .map(|n| full.field_with_name(n).unwrap().clone())
            .collect();
        NdjsonDecoder::new(Arc::new(Schema::new(fields)), 1024).unwrap()
    }

    fn error(body: &str) -> String {
        decoder(&["stationid", "station_name", "value", "observed_at", "date"])
            .decode(body.as_bytes())
            .unwrap_err()
            .to_string()
    }

    /// Lines as the transform writes them.
    fn transform_output(records: usize) -> Vec<u8> {
        let dataset = Dataset::weather();
        let mut body = Vec::new();
        for record in WeatherGenerator::new(GeneratorConfig::default()).take(records) {
            dataset
                .normalize_into(
                    &record.data,
                    from_epoch_millis(1_633_046_400_250),
                    &mut body,
                )
                .unwrap();
        }
        body
    }

    /// The lines as arrow-json reads them.
    fn decode_ndjson(body: &[u8]) -> Vec<RecordBatch> {
        let reader = arrow_json::ReaderBuilder::new(arrow_schema(&Dataset::weather()))
            .build(body)
            .unwrap();
        reader.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn reads_what_arrow_json_reads() {
        let body = transform_output(3000);
        let expected = decode_ndjson(&body);
        let ours = NdjsonDecoder::new(arrow_schema(&Dataset::weather()), 1000)
            .unwrap()
            .decode(&body)
            .unwrap();
        assert_eq!(
            ours.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [1000; 3]
        );
        let concat = |b: &[RecordBatch]| {
            arrow_select::concat::concat_batches(&arrow_schema(&Dataset::weather()), b).unwrap()
        };
        assert_eq!(concat(&ours), concat(&expected));
    }

    /// A reader that hands out at most `step` bytes per read, failing with `Interrupted`
    /// every other time.
    struct Trickle<'a> {
        body: &'a [u8],
        step: usize,
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.body.len());
            buf[..n].copy_from_slice(&self.body[..n]);
            self.body = &self.body[n..];
            Ok(n)
        }
    }

    #[test]
    fn blocks_and_readers_decode_what_a_whole_body_decodes() {
        // Over several blocks, a line longer than a block in the middle, no final line end.
        let mut body = transform_output(3000);
        let long = format!(
            "{{\"stationid\":\"{}\",\"value\":1,\"observed_at\":\"2021-10-01T00:00:00Z\",\"date\":\"2021-10-01\"}}\n",
            "S".repeat(BLOCK_BYTES + 10)
        );
        let half = body.len() / 2;
        let half = half + memchr::memchr(b'\n', &body[half..]).unwrap() + 1;
        body.splice(half..half, long.bytes());
        body.pop();
        assert!(body.len() > 3 * BLOCK_BYTES);
        let decoder = decoder(&["stationid", "value", "date"]);
        let concat =
            |b: &[RecordBatch]| arrow_select::concat::concat_batches(&decoder.schema, b).unwrap();
        let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        let expected = concat(&decoder.decode_lines(lines).unwrap());
        assert_eq!(expected.num_rows(), 3001);
        assert_eq!(concat(&decoder.decode(&body).unwrap()), expected);
        for step in [1 << 20, 4096, 77] {
            let reader = Trickle {
                body: &body,
                step,
                interrupt: false,
            };
            assert_eq!(concat(&decoder.decode_reader(reader).unwrap()), expected);
        }
        // Errors name the line in the whole body, whatever block it falls in.
        let mut bad = body.clone();
        bad.extend_from_slice(b"\n{\"stationid\":\"\xff\"}\n{\"nope\n");
        for result in [
            decoder.decode(&bad),
            decoder.decode_reader(Trickle {
                body: &bad,
                step: 1000,
                interrupt: false,
            }),
        ] {
            assert_eq!(result.unwrap_err().to_string(), "line 3002: not UTF-8 text");
        }
        let failing = std::io::Read::chain(&body[..10_000], Failing);
        let error = decoder.decode_reader(failing).unwrap_err().to_string();
        assert!(error.starts_with("read failed after "), "{error}");
    }

    struct Failing;

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the disk went away"))
        }
    }

    #[test]
    fn reads_only_the_wanted_columns_in_their_order() {
        let body = transform_output(50);
        let batches = decoder(&["value", "datatype"]).decode(&body).unwrap();
        let full = decode_ndjson(&body);
        assert_eq!(batches[0].num_columns(), 2);
        assert_eq!(batches[0].column(0), full[0].column(3));
        assert_eq!(batches[0].column(1), full[0].column(2));
        // No columns: the lines are counted (and still checked).
        let counted = NdjsonDecoder::new(Arc::new(Schema::empty()), 20)
            .unwrap()
            .decode(&body)
            .unwrap();
        assert_eq!(counted.iter().map(RecordBatch::num_rows).sum::<usize>(), 50);
        assert!(
            NdjsonDecoder::new(Arc::new(Schema::empty()), 20)
                .unwrap()
                .decode(b"{}\nnope\n")
                .is_err()
        );
    }

    #[test]
    fn any_valid_json_object_is_read() {
        let body = concat!(
            "  { \"date\" : \"2021-10-02\", \"value\":\"1.5e1\", \"extra\": {\"a\": [1, {\"b\": null}, \"x\\\"]\"]}, ",
            "\"st\\u0061tionid\": \"A\\u00e9\\n\", \"observed_at\": \"2021-10-02T01:00:00+02:00\", \"ok\": true }\r\n",
            "\n",
            "{\"stationid\":\"B\",\"station_name\":null,\"value\":-0.25,\"observed_at\":1633046400000000,\"date\":18900}\n",
        );
        let batch = &decoder(&["stationid", "station_name", "value", "observed_at", "date"])
            .decode(body.as_bytes())
            .unwrap()[0];
        assert_eq!(batch.num_rows(), 2);
        let ids = batch.column(0).as_string::<i32>();
        assert_eq!((ids.value(0), ids.value(1)), ("A\u{e9}\n", "B"));
        assert!(batch.column(1).is_null(0) && batch.column(1).is_null(1));
        let values = batch.column(2).as_primitive::<Float64Type>();
        assert_eq!((values.value(0), values.value(1)), (15.0, -0.25));
        let at = batch
            .column(3)
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(at.value(0), 1_633_132_800_000_000 - 3_600_000_000);
        assert_eq!(at.value(1), 1_633_046_400_000_000);
        let dates = batch.column(4).as_primitive::<Date32Type>();
        assert_eq!((dates.value(0), dates.value(1)), (18902, 18900));
    }

    #[test]
    fn longs_booleans_and_a_wide_schema_out_of_order() {
        // 40 columns; lines write them in reverse (every key out of the expected order).
        let mut fields: Vec<Field> = (0..38)
            .map(|i| Field::new(format!("c{i}"), DataType::Int64, true))
            .collect();
        fields.push(Field::new("flag", DataType::Boolean, true));
        fields.push(Field::new("text", DataType::Utf8, true));
        let schema = Arc::new(Schema::new(fields));
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let decoder = NdjsonDecoder::new(schema.clone(), 100)
            .unwrap()
            .with_written_order(&names);
        let mut body = String::new();
        for row in 0..3 {
            let mut keys: Vec<String> = (0..38)
                .map(|i| format!("\"c{i}\":{}", i * 10 + row))
                .collect();
            keys.push(format!("\"flag\":{}", row % 2 == 0));
            keys.push("\"text\":\"{\\\"a\\\":1}\"".into());
            keys.reverse();
            body.push_str(&format!("{{{}}}\n", keys.join(",")));
        }
        body.push_str("{\"c0\":\"7\",\"c1\":5.0,\"flag\":\"false\"}\n");
        let batch = &decoder.decode(body.as_bytes()).unwrap()[0];
        let c37 = batch
            .column(37)
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(c37.values()[..3], [370, 371, 372]);
        let c0 = batch
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(c0.value(3), 7);
        assert_eq!(
            batch
                .column(1)
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(3),
            5
        );
        let flags = batch.column(38).as_boolean();
        assert_eq!(
            (flags.value(0), flags.value(1), flags.value(3)),
            (true, false, false)
        );
        assert_eq!(batch.column(39).as_string::<i32>().value(0), "{\"a\":1}");
        assert!(batch.column(39).is_null(3));
        for (bad, expected) in [
            (
                "{\"c0\":1.5}",
                "line 1: field `c0`: expected an integer, found `1.5`",
            ),
            (
                "{\"flag\":1}",
                "line 1: field `flag`: expected true or false, found `1`",
            ),
            (
                "{\"c2\":true}",
                "line 1: field `c2`: expected an integer, found `true`",
            ),
        ] {
            assert_eq!(
                decoder.decode(bad.as_bytes()).unwrap_err().to_string(),
                expected
            );
        }
    }

    #[test]
    fn short_decimals_parse_exactly() {
        for text in [
            "0",
            "-0",
            "0.1",
            "-12.3",
            "59.9",
            "123456789012345",
            "0.000001",
            "1e3",
            "2.5E-3",
            "12345678901234567890.5",
        ] {
            let fast = parse_f64(text);
            let std: f64 = text.parse().unwrap();
            assert_eq!(fast.to_bits(), std.to_bits(), "{text}");
        }
    }

    #[test]
    fn a_line_at_fault_is_named_with_the_field_and_cause() {
        let good = r#"{"stationid":"A","value":1,"observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01"}"#;
        let cases = [
            (
                r#"{"stationid":"A","value":"x","observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01"}"#,
                "line 2: field `value`: expected a number, found `\"x\"`",
            ),
            (
                r#"{"value":1,"observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01"}"#,
                "line 2: field `stationid`: missing",
            ),
            (
                r#"{"stationid":null,"value":1,"observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01"}"#,
                "line 2: field `stationid`: null",
            ),
            (
                r#"{"stationid":7,"value":1,"observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01"}"#,
                "line 2: field `stationid`: expected a string, found `7`",
            ),
            (
                r#"{"stationid":"A","value":1,"observed_at":"yesterday","date":"2021-10-01"}"#,
                "line 2: field `observed_at`: expected an RFC 3339 timestamp, found `\"yesterday\"`",
            ),
            (
                r#"{"stationid":"A","value":1,"observed_at":"2021-10-01T00:00:00Z","date":"2021-13-01"}"#,
                "line 2: field `date`: expected a date (YYYY-MM-DD), found `\"2021-13-01\"`",
            ),
            (
                r#"{"stationid":"A","value":01,"observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01"}"#,
                "line 2: invalid number `01`",
            ),
            (
                r#"{"stationid":"A","value":1,"observed_at":"2021-10-01T00:00:00Z","date":"2021-10-01"} x"#,
                "line 2: text after the object at column 86",
            ),
            (
                r#"{"stationid":"A","value":1"#,
                "line 2: the object is not closed",
            ),
            (
                r#"{"stationid":"A,"value":1}"#,
                "line 2: expected `,` or `}` at column 18, found `v`",
            ),
            (r#"[1]"#, "line 2: not a JSON object"),
        ];
        for (bad, expected) in cases {
            assert_eq!(error(&format!("{good}\n{bad}\n")), expected, "{bad}");
        }
        assert_eq!(
            NdjsonDecoder::new(arrow_schema(&Dataset::weather()), 8)
                .unwrap()
                .decode(b"{}\n\xff\n")
                .unwrap_err()
                .to_string(),
            "line 2: not UTF-8 text"
        );
    }
}
