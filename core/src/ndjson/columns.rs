//! One decoder per Arrow column type, as `arrow-json` arranges its readers: each turns the
//! token a line holds for its column into a value of its builder, or says why it cannot.
//!
//! Conversions are those `arrow-json` makes for the same types: numbers or numeric
//! strings for numbers, `true`/`false` (or those strings) for booleans, RFC 3339 strings
//! (or numbers in the column's unit) for timestamps, `YYYY-MM-DD` (or days) for dates.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder, StringViewBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::timezone::Tz;
use arrow_array::types::Date32Type;
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_cast::parse::{Parser, string_to_datetime};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};

use super::DecodeError;
use super::scan::{Token, unescape};

/// Decodes one column's values into its builder.
pub(super) trait ColumnDecoder: Send {
    /// Appends the value `token` marks in `line` (absent or null: a null).
    fn append(&mut self, line: &str, token: Token) -> Result<(), String>;
    /// The column so far; the builder starts over.
    fn finish(&mut self) -> ArrayRef;
}

/// Makes a column's decoder for batches of about `capacity` rows.
pub(super) type Factory = Arc<dyn Fn(usize) -> Box<dyn ColumnDecoder> + Send + Sync>;

/// The decoder factory of a column, or why its type is not decoded.
pub(super) fn factory(field: &Field) -> Result<Factory, DecodeError> {
    let unsupported = || DecodeError::Unsupported(field.name().clone(), field.data_type().clone());
    Ok(match field.data_type() {
        DataType::Utf8 => Arc::new(|n| {
            Box::new(Text(StringBuilder::with_capacity(n, n * 16))) as Box<dyn ColumnDecoder>
        }),
        DataType::Utf8View => Arc::new(|n| Box::new(Text(StringViewBuilder::with_capacity(n)))),
        DataType::Float64 => Arc::new(|n| Box::new(Float64(Float64Builder::with_capacity(n)))),
        DataType::Int64 => Arc::new(|n| Box::new(Int64(Int64Builder::with_capacity(n)))),
        DataType::Boolean => Arc::new(|n| Box::new(Boolean(BooleanBuilder::with_capacity(n)))),
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            // Without a zone, times without an offset are UTC, as in arrow-json.
            let tz: Tz = zone
                .as_deref()
                .unwrap_or("+00:00")
                .parse()
                .map_err(|_| unsupported())?;
            let zone = zone.clone();
            Arc::new(move |n| {
                Box::new(Timestamp {
                    builder: TimestampMicrosecondBuilder::with_capacity(n)
                        .with_timezone_opt(zone.clone()),
                    tz,
                })
            })
        }
        DataType::Date32 => Arc::new(|n| Box::new(Date32(Date32Builder::with_capacity(n)))),
        _ => return Err(unsupported()),
    })
}

/// The text of a string token (escapes decoded).
fn text(line: &str, start: usize, end: usize, escaped: bool) -> Result<Cow<'_, str>, String> {
    if escaped {
        unescape(&line.as_bytes()[start - 1..=end])
    } else {
        Ok(Cow::Borrowed(&line[start..end]))
    }
}

/// `expected WHAT, found `TEXT`` for the token's text (strings with their quotes).
fn found(line: &str, token: Token, what: &str) -> String {
    // Tokens start and end at ASCII bytes (quotes, digits, brackets): character
    // boundaries of the line, which is UTF-8 already.
    let (start, end) = match token {
        Token::String { start, end, .. } => (start - 1, end + 1),
        Token::Number { start, end } | Token::Other { start, end } => (start, end),
        Token::Absent | Token::Null => (0, 0),
    };
    let shown: String = line[start..end].chars().take(40).collect();
    format!("expected {what}, found `{shown}`")
}

/// Builders of text columns.
trait TextBuilder: Send {
    fn append_value(&mut self, s: &str);
    fn append_null(&mut self);
    fn finish_array(&mut self) -> ArrayRef;
}

impl TextBuilder for StringBuilder {
    fn append_value(&mut self, s: &str) {
        StringBuilder::append_value(self, s);
    }
    fn append_null(&mut self) {
        StringBuilder::append_null(self);
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl TextBuilder for StringViewBuilder {
    fn append_value(&mut self, s: &str) {
        StringViewBuilder::append_value(self, s);
    }
    fn append_null(&mut self) {
        StringViewBuilder::append_null(self);
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

/// Strings (`Utf8`, `Utf8View`).
struct Text<B>(B);

impl<B: TextBuilder> ColumnDecoder for Text<B> {
    fn append(&mut self, line: &str, token: Token) -> Result<(), String> {
        match token {
            Token::Absent | Token::Null => self.0.append_null(),
            Token::String {
                start,
                end,
                escaped,
            } => self.0.append_value(&text(line, start, end, escaped)?),
            _ => return Err(found(line, token, "a string")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.0.finish_array()
    }
}

struct Float64(Float64Builder);

impl ColumnDecoder for Float64 {
    fn append(&mut self, line: &str, token: Token) -> Result<(), String> {
        match token {
            Token::Absent | Token::Null => self.0.append_null(),
            Token::Number { start, end } => self.0.append_value(parse_f64(&line[start..end])),
            Token::String {
                start,
                end,
                escaped,
            } => {
                let value = text(line, start, end, escaped)?.trim().parse::<f64>();
                self.0
                    .append_value(value.map_err(|_| found(line, token, "a number"))?);
            }
            Token::Other { .. } => return Err(found(line, token, "a number")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

struct Int64(Int64Builder);

impl ColumnDecoder for Int64 {
    fn append(&mut self, line: &str, token: Token) -> Result<(), String> {
        let value = match token {
            Token::Absent | Token::Null => {
                self.0.append_null();
                return Ok(());
            }
            Token::Number { start, end } => parse_i64(&line[start..end]),
            Token::String {
                start,
                end,
                escaped,
            } => parse_i64(text(line, start, end, escaped)?.trim()),
            Token::Other { .. } => None,
        };
        self.0
            .append_value(value.ok_or_else(|| found(line, token, "an integer"))?);
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// An integer, or a number without a fraction (`5.0`, `1e3`).
fn parse_i64(text: &str) -> Option<i64> {
    text.parse().ok().or_else(|| {
        let x: f64 = text.parse().ok()?;
        (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i64)
    })
}

struct Boolean(BooleanBuilder);

impl ColumnDecoder for Boolean {
    fn append(&mut self, line: &str, token: Token) -> Result<(), String> {
        let text = match token {
            Token::Absent | Token::Null => {
                self.0.append_null();
                return Ok(());
            }
            Token::Other { start, end } => Cow::Borrowed(&line[start..end]),
            Token::String {
                start,
                end,
                escaped,
            } => text(line, start, end, escaped)?,
            Token::Number { .. } => Cow::Borrowed(""),
        };
        match text.trim() {
            "true" => self.0.append_value(true),
            "false" => self.0.append_value(false),
            _ => return Err(found(line, token, "true or false")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

struct Timestamp {
    builder: TimestampMicrosecondBuilder,
    tz: Tz,
}

impl ColumnDecoder for Timestamp {
    fn append(&mut self, line: &str, token: Token) -> Result<(), String> {
        match token {
            Token::Absent | Token::Null => self.builder.append_null(),
            Token::String {
                start,
                end,
                escaped,
            } => {
                let s = text(line, start, end, escaped)?;
                let at = string_to_datetime(&self.tz, &s)
                    .map_err(|_| found(line, token, "an RFC 3339 timestamp"))?;
                self.builder.append_value(at.timestamp_micros());
            }
            Token::Number { start, end } => {
                let value = line[start..end].parse();
                self.builder
                    .append_value(value.map_err(|_| found(line, token, "a timestamp"))?);
            }
            Token::Other { .. } => return Err(found(line, token, "a timestamp")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.builder.finish())
    }
}

struct Date32(Date32Builder);

impl ColumnDecoder for Date32 {
    fn append(&mut self, line: &str, token: Token) -> Result<(), String> {
        match token {
            Token::Absent | Token::Null => self.0.append_null(),
            Token::String {
                start,
                end,
                escaped,
            } => {
                let days = Date32Type::parse(&text(line, start, end, escaped)?);
                self.0
                    .append_value(days.ok_or_else(|| found(line, token, "a date (YYYY-MM-DD)"))?);
            }
            Token::Number { start, end } => {
                let value = line[start..end].parse();
                self.0
                    .append_value(value.map_err(|_| found(line, token, "a date"))?);
            }
            Token::Other { .. } => return Err(found(line, token, "a date")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// Column decoders for one batch.
pub(super) struct BatchBuilder {
    columns: Vec<Box<dyn ColumnDecoder>>,
    pub(super) rows: usize,
}

impl BatchBuilder {
    pub(super) fn new(factories: &[Factory], capacity: usize) -> Self {
        Self {
            columns: factories.iter().map(|f| f(capacity)).collect(),
            rows: 0,
        }
    }

    /// Appends one line's values (a token per column). On error the builders may hold
    /// part of the line: the caller abandons the batch.
    pub(super) fn append(
        &mut self,
        line: &str,
        tokens: &[Token],
        schema: &SchemaRef,
    ) -> Result<(), String> {
        for ((column, token), field) in self.columns.iter_mut().zip(tokens).zip(schema.fields()) {
            let null = matches!(token, Token::Absent | Token::Null);
            if null && !field.is_nullable() {
                let what = if *token == Token::Absent {
                    "missing"
                } else {
                    "null"
                };
                return Err(format!("field `{}`: {what}", field.name()));
            }
            column
                .append(line, *token)
                .map_err(|reason| format!("field `{}`: {reason}", field.name()))?;
        }
        self.rows += 1;
        Ok(())
    }

    /// The batch so far; the builders start over.
    pub(super) fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, DecodeError> {
        let columns: Vec<ArrayRef> = self.columns.iter_mut().map(|c| c.finish()).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?)
    }
}

/// Parses a number already checked against JSON's grammar: short decimals exactly and
/// fast (both parts exact in a double, one correctly rounded division), others with the
/// standard library.
pub(super) fn parse_f64(text: &str) -> f64 {
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
