//! The lake's NDJSON decoded straight into Arrow columns, only the columns asked for.
//!
//! One pass over each line: keys are matched against the lake's fields in the order the
//! transform writes them ([`FIELDS`]), so a line of the transform's own layout costs one
//! byte comparison per key; other orders, unknown keys, whitespace and escapes are read
//! too. Values of columns not asked for are stepped over without being decoded (their
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
//! Conversions are those `arrow-json` makes for the same types: numbers or numeric
//! strings for doubles, RFC 3339 strings (or numbers in the column's unit) for
//! timestamps, `YYYY-MM-DD` (or days) for dates.

use std::borrow::Cow;
use std::io::{ErrorKind, Read};
use std::sync::Arc;

use arrow_array::builder::{
    Date32Builder, Float64Builder, StringBuilder, StringViewBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::timezone::Tz;
use arrow_array::types::Date32Type;
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_cast::parse::{Parser, string_to_datetime};
use arrow_schema::{ArrowError, DataType, SchemaRef, TimeUnit};
use thiserror::Error;

use crate::schema::FIELDS;

/// Objects nested deeper than this inside a line are refused (the schema has none).
const MAX_DEPTH: usize = 64;

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
#[derive(Debug, Clone)]
pub struct NdjsonDecoder {
    schema: SchemaRef,
    columns: Arc<[ColumnKind]>,
    keys: Arc<[Key]>,
    batch_size: usize,
}

/// A key the decoder knows: the lake's fields in their written order, then any other
/// column of the schema.
#[derive(Debug)]
struct Key {
    /// The name between quotes, as the transform writes it.
    quoted: Box<[u8]>,
    /// Its first and last eight bytes, for a quick comparison.
    head: u64,
    tail: u64,
    /// The column its value fills, if wanted.
    column: Option<usize>,
}

impl Key {
    fn new(name: &str, column: Option<usize>) -> Self {
        let quoted: Box<[u8]> = format!("\"{name}\"").into_bytes().into();
        let word = |at: usize| {
            quoted.get(at..at + 8).map_or(0, |w| {
                u64::from_le_bytes(w.try_into().expect("eight bytes"))
            })
        };
        let (head, tail) = (word(0), word(quoted.len().saturating_sub(8)));
        Self {
            head,
            tail,
            quoted,
            column,
        }
    }

    fn name(&self) -> &[u8] {
        &self.quoted[1..self.quoted.len() - 1]
    }

    /// Whether `text` starts with this key, quotes included. Keys of 8 to 16 bytes
    /// compare as two (overlapping) words: no call, no loop.
    fn is_at(&self, text: &[u8]) -> bool {
        let n = self.quoted.len();
        match text.get(..n) {
            Some(start) if (8..=16).contains(&n) => {
                let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("eight bytes"));
                word(&start[..8]) == self.head && word(&start[n - 8..]) == self.tail
            }
            Some(start) => start == &*self.quoted,
            None => false,
        }
    }
}

#[derive(Debug, Clone)]
enum ColumnKind {
    Utf8,
    Utf8View,
    Float64,
    /// The column's time zone as written in the schema, and parsed.
    TimestampMicros(Option<Arc<str>>, Tz),
    Date32,
}

impl NdjsonDecoder {
    /// A decoder producing `schema` (Utf8, Utf8View, Float64, Timestamp(µs), Date32
    /// columns, matched to JSON keys by name) in batches of at most `batch_size` rows.
    /// An empty schema counts the lines.
    pub fn new(schema: SchemaRef, batch_size: usize) -> Result<Self, DecodeError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => Ok(ColumnKind::Utf8),
                DataType::Utf8View => Ok(ColumnKind::Utf8View),
                DataType::Float64 => Ok(ColumnKind::Float64),
                DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                    // Without a zone, times without an offset are UTC, as in arrow-json.
                    let parsed = tz.as_deref().unwrap_or("+00:00").parse().map_err(|_| {
                        DecodeError::Unsupported(f.name().clone(), f.data_type().clone())
                    })?;
                    Ok(ColumnKind::TimestampMicros(tz.clone(), parsed))
                }
                DataType::Date32 => Ok(ColumnKind::Date32),
                other => Err(DecodeError::Unsupported(f.name().clone(), other.clone())),
            })
            .collect::<Result<_, _>>()?;
        let others = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|name| FIELDS.iter().all(|f| f.name != *name));
        let keys = FIELDS
            .iter()
            .map(|f| f.name)
            .chain(others)
            .map(|name| Key::new(name, schema.index_of(name).ok()))
            .collect();
        Ok(Self {
            schema,
            columns,
            keys,
            batch_size: batch_size.max(1),
        })
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

/// Where a wanted field's value sits in the line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Absent,
    Null,
    /// Between the quotes; `escaped` when it holds a backslash.
    String {
        start: usize,
        end: usize,
        escaped: bool,
    },
    Number {
        start: usize,
        end: usize,
    },
    /// `true`, `false`, an object or an array.
    Other {
        start: usize,
        end: usize,
    },
}

/// Walks one line's object, recording where the wanted columns' values are.
fn scan_object(line: &[u8], keys: &[Key], tokens: &mut [Token]) -> Result<(), String> {
    let mut p = Cursor { line, pos: 0 };
    p.skip_ws();
    if p.peek() != Some(b'{') {
        return Err("not a JSON object".into());
    }
    p.pos += 1;
    p.skip_ws();
    let mut next = 0;
    if p.peek() == Some(b'}') {
        p.pos += 1;
    } else {
        loop {
            p.skip_ws();
            let key = match keys.get(next) {
                // The key the transform writes next, byte for byte.
                Some(key) if key.is_at(&line[p.pos..]) => {
                    p.pos += key.quoted.len();
                    Some(next)
                }
                _ => {
                    let Token::String {
                        start,
                        end,
                        escaped,
                    } = p.string()?
                    else {
                        unreachable!("string() returns strings")
                    };
                    let name = if escaped {
                        Cow::Owned(unescape(&line[start - 1..=end])?.into_owned().into_bytes())
                    } else {
                        Cow::Borrowed(&line[start..end])
                    };
                    keys.iter().position(|k| k.name() == name.as_ref())
                }
            };
            p.skip_ws();
            p.expect(b':')?;
            p.skip_ws();
            match key {
                Some(i) => {
                    next = i + 1;
                    match keys[i].column {
                        Some(column) => tokens[column] = p.value()?,
                        None => p.skip_value(0)?,
                    }
                }
                None => p.skip_value(0)?,
            }
            p.skip_ws();
            match p.bump() {
                Some(b',') => continue,
                Some(b'}') => break,
                Some(c) => {
                    return Err(format!(
                        "expected `,` or `}}` at column {}, found `{}`",
                        p.pos, c as char
                    ));
                }
                None => return Err("the object is not closed".into()),
            }
        }
    }
    p.skip_ws();
    if p.pos < line.len() {
        return Err(format!("text after the object at column {}", p.pos + 1));
    }
    Ok(())
}

/// Non-zero when a byte of `word` equals `byte` (the lowest set bit marks the first).
const fn find_byte(word: u64, byte: u8) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let x = word ^ (ONES * byte as u64);
    x.wrapping_sub(ONES) & !x & HIGHS
}

struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.bump() {
            Some(found) if found == c => Ok(()),
            Some(found) => Err(format!(
                "expected `{}` at column {}, found `{}`",
                c as char, self.pos, found as char
            )),
            None => Err(format!(
                "expected `{}`, found the end of the line",
                c as char
            )),
        }
    }

    /// A string starting at the cursor (which must be on its opening quote).
    fn string(&mut self) -> Result<Token, String> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Eight bytes at a time up to the next quote or backslash.
            while let Some(chunk) = self.line.get(self.pos..self.pos + 8) {
                let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                let found = find_byte(word, b'"') | find_byte(word, b'\\');
                if found != 0 {
                    self.pos += found.trailing_zeros() as usize / 8;
                    break;
                }
                self.pos += 8;
            }
            match self.peek() {
                Some(b'"') => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(Token::String {
                        start,
                        end,
                        escaped,
                    });
                }
                // A backslash: the character after it is escaped.
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
                None => return Err("a string is not closed".into()),
            }
        }
    }

    /// A JSON number's text (validated against JSON's grammar).
    fn number(&mut self) -> Result<Token, String> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int = digits(self);
        let leading_zero = int > 1 && self.line[self.pos - int] == b'0';
        let mut ok = int > 0 && !leading_zero;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            ok &= digits(self) > 0;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            ok &= digits(self) > 0;
        }
        if ok {
            Ok(Token::Number {
                start,
                end: self.pos,
            })
        } else {
            Err(format!(
                "invalid number `{}`",
                String::from_utf8_lossy(&self.line[start..self.pos.max(start + 1)])
            ))
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.line[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(format!("unexpected text at column {}", self.pos + 1))
        }
    }

    /// The value at the cursor, as a token.
    fn value(&mut self) -> Result<Token, String> {
        let start = self.pos;
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'n') => self.literal(b"null").map(|()| Token::Null),
            Some(b'{' | b'[' | b't' | b'f') => {
                self.skip_value(0)?;
                Ok(Token::Other {
                    start,
                    end: self.pos,
                })
            }
            Some(c) => Err(format!(
                "unexpected `{}` at column {}",
                c as char,
                self.pos + 1
            )),
            None => Err("a value is missing at the end of the line".into()),
        }
    }

    /// Steps over the value at the cursor, checking its syntax.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deep".into());
        }
        match self.peek() {
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if open == b'{' {
                        self.string()?;
                        self.skip_ws();
                        self.expect(b':')?;
                        self.skip_ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.bump() {
                        Some(b',') => {}
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(format!("expected `,` or `{}`", close as char)),
                    }
                }
            }
            _ => self.value().map(drop),
        }
    }
}

/// A JSON string (with its quotes) that holds escapes, decoded.
fn unescape(quoted: &[u8]) -> Result<Cow<'static, str>, String> {
    serde_json::from_slice::<String>(quoted)
        .map(Cow::Owned)
        .map_err(|e| format!("invalid string: {e}"))
}

/// Parses a number already checked against JSON's grammar: short decimals exactly and
/// fast (both parts exact in a double, one correctly rounded division), others with the
/// standard library.
fn parse_f64(text: &str) -> f64 {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0;
    let mut fraction = None;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            // More digits than a double holds exactly: not the short form.
            b'0'..=b'9' if count == 15 => return text.parse().expect("checked JSON number"),
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
            }
            b'.' => fraction = Some(digits.len() - i - 1),
            // An exponent: not the short form.
            _ => return text.parse().expect("checked JSON number"),
        }
    }
    let value = mantissa as f64 / POW10[fraction.unwrap_or(0)];
    if negative { -value } else { value }
}

/// Column builders for one batch.
struct BatchBuilder {
    columns: Vec<Builder>,
    rows: usize,
}

enum Builder {
    Utf8(StringBuilder),
    Utf8View(StringViewBuilder),
    Float64(Float64Builder),
    Timestamp(TimestampMicrosecondBuilder, Tz),
    Date32(Date32Builder),
}

impl BatchBuilder {
    fn new(kinds: &[ColumnKind], capacity: usize) -> Self {
        let columns = kinds
            .iter()
            .map(|kind| match kind {
                ColumnKind::Utf8 => {
                    Builder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
                }
                ColumnKind::Utf8View => {
                    Builder::Utf8View(StringViewBuilder::with_capacity(capacity))
                }
                ColumnKind::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
                ColumnKind::TimestampMicros(zone, tz) => Builder::Timestamp(
                    TimestampMicrosecondBuilder::with_capacity(capacity)
                        .with_timezone_opt(zone.clone()),
                    *tz,
                ),
                ColumnKind::Date32 => Builder::Date32(Date32Builder::with_capacity(capacity)),
            })
            .collect();
        Self { columns, rows: 0 }
    }

    /// Appends one line's values (a token per column). On error the builders may hold
    /// part of the line: the caller abandons the batch.
    fn append(&mut self, line: &str, tokens: &[Token], schema: &SchemaRef) -> Result<(), String> {
        for ((builder, token), field) in self.columns.iter_mut().zip(tokens).zip(schema.fields()) {
            let null = matches!(token, Token::Absent | Token::Null);
            if null && !field.is_nullable() {
                let what = if *token == Token::Absent {
                    "missing"
                } else {
                    "null"
                };
                return Err(format!("field `{}`: {what}", field.name()));
            }
            append_value(builder, line, *token)
                .map_err(|reason| format!("field `{}`: {reason}", field.name()))?;
        }
        self.rows += 1;
        Ok(())
    }

    /// The batch so far; the builders start over.
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, DecodeError> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Utf8(b) => Arc::new(b.finish()),
                    Builder::Utf8View(b) => Arc::new(b.finish()),
                    Builder::Float64(b) => Arc::new(b.finish()),
                    Builder::Timestamp(b, _) => Arc::new(b.finish()),
                    Builder::Date32(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?)
    }
}

/// Converts a token to the builder's type and appends it; `Err` says why it does not fit.
fn append_value(builder: &mut Builder, line: &str, token: Token) -> Result<(), String> {
    // Tokens start and end at ASCII bytes (quotes, digits, brackets): character
    // boundaries of the line, which is UTF-8 already.
    let found = |what: &str, start: usize, end: usize| {
        let shown: String = line[start..end].chars().take(40).collect();
        format!("expected {what}, found `{shown}`")
    };
    match token {
        Token::Absent | Token::Null => match builder {
            Builder::Utf8(b) => b.append_null(),
            Builder::Utf8View(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Timestamp(b, _) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
        },
        Token::String {
            start,
            end,
            escaped,
        } => {
            let s = if escaped {
                unescape(&line.as_bytes()[start - 1..=end])?
            } else {
                Cow::Borrowed(&line[start..end])
            };
            // Shown with its quotes when it does not fit.
            let found = |what: &str| found(what, start - 1, end + 1);
            match builder {
                Builder::Utf8(b) => b.append_value(s),
                Builder::Utf8View(b) => b.append_value(s),
                Builder::Float64(b) => {
                    let value = s.trim().parse::<f64>();
                    b.append_value(value.map_err(|_| found("a number"))?);
                }
                Builder::Timestamp(b, tz) => {
                    let at =
                        string_to_datetime(tz, &s).map_err(|_| found("an RFC 3339 timestamp"))?;
                    b.append_value(at.timestamp_micros());
                }
                Builder::Date32(b) => {
                    let days = Date32Type::parse(&s);
                    b.append_value(days.ok_or_else(|| found("a date (YYYY-MM-DD)"))?);
                }
            }
        }
        Token::Number { start, end } => {
            let text = &line[start..end];
            match builder {
                Builder::Float64(b) => b.append_value(parse_f64(text)),
                Builder::Timestamp(b, _) => {
                    let value = text.parse();
                    b.append_value(value.map_err(|_| found("a timestamp", start, end))?);
                }
                Builder::Date32(b) => {
                    let value = text.parse();
                    b.append_value(value.map_err(|_| found("a date", start, end))?);
                }
                Builder::Utf8(_) | Builder::Utf8View(_) => {
                    return Err(found("a string", start, end));
                }
            }
        }
        Token::Other { start, end } => {
            let what = match builder {
                Builder::Utf8(_) | Builder::Utf8View(_) => "a string",
                _ => "a value of the column's type",
            };
            return Err(found(what, start, end));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::arrow_schema;
    use crate::generate::{GeneratorConfig, WeatherGenerator};
    use crate::observation::normalize;
    use crate::time::from_epoch_millis;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use arrow_schema::{Field, Schema};

    fn decoder(names: &[&str]) -> NdjsonDecoder {
        let full = arrow_schema();
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
        let mut body = Vec::new();
        for record in WeatherGenerator::new(GeneratorConfig::default()).take(records) {
            normalize(&record.data, from_epoch_millis(1_633_046_400_250))
                .unwrap()
                .write_ndjson(&mut body);
        }
        body
    }

    /// The lines as arrow-json reads them.
    fn decode_ndjson(body: &[u8]) -> Vec<RecordBatch> {
        let reader = arrow_json::ReaderBuilder::new(arrow_schema())
            .build(body)
            .unwrap();
        reader.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn reads_what_arrow_json_reads() {
        let body = transform_output(3000);
        let expected = decode_ndjson(&body);
        let ours = NdjsonDecoder::new(arrow_schema(), 1000)
            .unwrap()
            .decode(&body)
            .unwrap();
        assert_eq!(
            ours.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [1000; 3]
        );
        let concat =
            |b: &[RecordBatch]| arrow_select::concat::concat_batches(&arrow_schema(), b).unwrap();
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
            NdjsonDecoder::new(arrow_schema(), 8)
                .unwrap()
                .decode(b"{}\n\xff\n")
                .unwrap_err()
                .to_string(),
            "line 2: not UTF-8 text"
        );
    }
}
