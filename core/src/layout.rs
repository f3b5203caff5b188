//! The lake's key layout: Firehose prefix templates and object names.
//!
//! The local stack evaluates these templates exactly as Firehose does, and the deploy
//! template uses the same strings, so objects land under the same keys in both.

use std::fmt;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::time::format_java_pattern;

/// Folder of the bucket under which the data partitions live.
pub const DATA_ROOT: &str = "data/";

/// Folder of the bucket under which failed records land.
pub const ERROR_ROOT: &str = "errors/";

/// Where the consumer keeps the records it cannot write (one object per record,
/// `<shard>/<sequence number>.json`). Not a Firehose error output type.
pub const CONSUMER_DEAD_LETTER_PREFIX: &str = "errors/consumer-invalid/";

/// Firehose S3 prefix of delivered records: one folder per day of event time.
pub const DATA_PREFIX: &str = "data/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/day=!{partitionKeyFromLambda:day}/";

/// Firehose S3 error output prefix.
pub const ERROR_PREFIX: &str = "errors/!{firehose:error-output-type}/";

/// The timestamp Firehose appends to a prefix that has no `!{timestamp:...}` expression
/// (and no dynamic partitioning).
pub const DEFAULT_TIMESTAMP_PATTERN: &str = "yyyy/MM/dd/HH/";

/// The format of the lake's data objects (the delivery stream's output setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Newline-delimited JSON, uncompressed, objects without extension (as Firehose writes).
    #[default]
    Ndjson,
    /// Newline-delimited JSON, GZIP-compressed, objects ending in `.gz`.
    NdjsonGzip,
    /// Parquet (Snappy) through record-format conversion, objects ending in `.parquet`.
    Parquet,
}

impl OutputFormat {
    /// Every format.
    pub const ALL: [OutputFormat; 3] = [
        OutputFormat::Ndjson,
        OutputFormat::NdjsonGzip,
        OutputFormat::Parquet,
    ];

    /// The setting's value: `ndjson`, `ndjson-gzip`, `parquet`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::NdjsonGzip => "ndjson-gzip",
            OutputFormat::Parquet => "parquet",
        }
    }

    /// The extension of the objects.
    pub const fn extension(self) -> &'static str {
        match self {
            OutputFormat::Ndjson => "",
            OutputFormat::NdjsonGzip => ".gz",
            OutputFormat::Parquet => ".parquet",
        }
    }

    /// The format of an object, from its key.
    pub fn of_key(key: &str) -> Self {
        if key.ends_with(".parquet") {
            OutputFormat::Parquet
        } else if key.ends_with(".gz") {
            OutputFormat::NdjsonGzip
        } else {
            OutputFormat::Ndjson
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An output format name that is not one of `ndjson`, `ndjson-gzip`, `parquet`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown output format {0:?}: expected ndjson, ndjson-gzip or parquet")]
pub struct UnknownFormat(String);

impl std::str::FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Why Firehose put a record under the error prefix (`!{firehose:error-output-type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorOutputType {
    /// The transform Lambda failed the record, or the invocation failed.
    ProcessingFailed,
    /// Record-format conversion (e.g. to Parquet) could not read the record.
    FormatConversionFailed,
    /// Dynamic partitioning found no usable partition keys.
    PartitioningFailed,
}

impl ErrorOutputType {
    /// The value of `!{firehose:error-output-type}`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorOutputType::ProcessingFailed => "processing-failed",
            ErrorOutputType::FormatConversionFailed => "format-conversion-failed",
            ErrorOutputType::PartitioningFailed => "partitioning-failed",
        }
    }
}

impl fmt::Display for ErrorOutputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed Firehose prefix template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    PartitionKeyFromLambda(String),
    PartitionKeyFromQuery(String),
    ErrorOutputType,
    RandomString,
    Timestamp(String),
}

/// A prefix template that Firehose would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// `!{` without a closing `}`.
    #[error("unclosed expression in prefix {0:?}")]
    Unclosed(String),
    /// An expression namespace Firehose does not know.
    #[error("unknown expression !{{{0}}} in prefix")]
    UnknownExpression(String),
}

/// Values an evaluation may need.
#[derive(Debug, Clone, Copy)]
pub struct PrefixContext<'a> {
    /// Partition keys returned by the transform Lambda, as (name, value).
    pub lambda_keys: &'a [(&'a str, &'a str)],
    /// Error output type, when evaluating the error prefix.
    pub error_output_type: Option<ErrorOutputType>,
    /// Arrival time of the oldest record in the object.
    pub arrival: DateTime<Utc>,
}

/// An evaluation that cannot produce a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvaluateError {
    /// The Lambda did not return a partition key the prefix uses.
    #[error("partition key {0:?} missing from the Lambda's metadata")]
    MissingPartitionKey(String),
    /// `!{firehose:error-output-type}` outside of an error prefix.
    #[error("!{{firehose:error-output-type}} is only defined in the error prefix")]
    NoErrorOutputType,
    /// A JQ (`partitionKeyFromQuery`) expression: not supported by the local stack.
    #[error("partitionKeyFromQuery:{0} is not supported by the local stack")]
    Unsupported(String),
}

impl PrefixTemplate {
    /// Parses a prefix such as [`DATA_PREFIX`] or [`ERROR_PREFIX`].
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(template.to_owned()))?;
            let expr = &after[..end];
            let part = match expr.split_once(':') {
                Some(("partitionKeyFromLambda", k)) => Part::PartitionKeyFromLambda(k.to_owned()),
                Some(("partitionKeyFromQuery", k)) => Part::PartitionKeyFromQuery(k.to_owned()),
                Some(("firehose", "error-output-type")) => Part::ErrorOutputType,
                Some(("firehose", "random-string")) => Part::RandomString,
                Some(("timestamp", pattern)) => Part::Timestamp(pattern.to_owned()),
                _ => return Err(TemplateError::UnknownExpression(expr.to_owned())),
            };
            parts.push(part);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Whether the template has a `!{timestamp:...}` expression.
    pub fn has_timestamp(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Timestamp(_)))
    }

    /// Whether the template uses dynamic-partitioning keys.
    pub fn is_dynamic(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p,
                Part::PartitionKeyFromLambda(_) | Part::PartitionKeyFromQuery(_)
            )
        })
    }

    /// The names of the Lambda partition keys the template uses, in order.
    pub fn lambda_keys(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::PartitionKeyFromLambda(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// The literal text before the first expression (the part of the key a listing can
    /// start from).
    pub fn static_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(s)) => s,
            _ => "",
        }
    }

    /// Evaluates the template into a key prefix.
    ///
    /// As on Firehose, a template without a timestamp expression and without dynamic
    /// partitioning gets [`DEFAULT_TIMESTAMP_PATTERN`] appended.
    pub fn evaluate(&self, ctx: &PrefixContext<'_>) -> Result<String, EvaluateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::PartitionKeyFromLambda(k) => {
                    let v = ctx
                        .lambda_keys
                        .iter()
                        .find(|(name, _)| name == k)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| EvaluateError::MissingPartitionKey(k.clone()))?;
                    out.push_str(v);
                }
                Part::PartitionKeyFromQuery(k) => {
                    return Err(EvaluateError::Unsupported(k.clone()));
                }
                Part::ErrorOutputType => out.push_str(
                    ctx.error_output_type
                        .ok_or(EvaluateError::NoErrorOutputType)?
                        .as_str(),
                ),
                Part::RandomString => out.push_str(&random_string()),
                Part::Timestamp(pattern) => {
                    out.push_str(&format_java_pattern(pattern, &ctx.arrival))
                }
            }
        }
        if !self.has_timestamp() && !self.is_dynamic() {
            if !out.is_empty() && !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(&format_java_pattern(
                DEFAULT_TIMESTAMP_PATTERN,
                &ctx.arrival,
            ));
        }
        Ok(out)
    }
}

/// Eleven random alphanumeric characters, as `!{firehose:random-string}` gives.
fn random_string() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(11)
        .collect()
}

/// The name Firehose gives a delivered object:
/// `<delivery stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>`.
pub fn object_name(
    delivery_stream: &str,
    version: u32,
    arrival: &DateTime<Utc>,
    uuid: &str,
    extension: &str,
) -> String {
    format!(
        "{delivery_stream}-{version}-{}-{uuid}{extension}",
        format_java_pattern("yyyy-MM-dd-HH-mm-ss", arrival)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_epoch_millis;

    fn at() -> DateTime<Utc> {
        from_epoch_millis(1_637_584_000_000) // 2021-11-22T12:26:40Z
    }

    #[test]
    fn evaluates_the_data_prefix() {
        let t = PrefixTemplate::parse(DATA_PREFIX).unwrap();
        let keys = [("year", "2021"), ("month", "10"), ("day", "01")];
        let ctx = PrefixContext {
            lambda_keys: &keys,
            error_output_type: None,
            arrival: at(),
        };
        assert_eq!(t.evaluate(&ctx).unwrap(), "data/year=2021/month=10/day=01/");
        assert_eq!(
            t.lambda_keys().collect::<Vec<_>>(),
            ["year", "month", "day"]
        );
        assert_eq!(t.static_prefix(), "data/year=");
        assert!(DATA_PREFIX.starts_with(DATA_ROOT));
    }

    #[test]
    fn error_prefix_gets_the_default_timestamp() {
        let t = PrefixTemplate::parse(ERROR_PREFIX).unwrap();
        let ctx = PrefixContext {
            lambda_keys: &[],
            error_output_type: Some(ErrorOutputType::ProcessingFailed),
            arrival: at(),
        };
        assert_eq!(
            t.evaluate(&ctx).unwrap(),
            "errors/processing-failed/2021/11/22/12/"
        );
        assert!(ERROR_PREFIX.starts_with(ERROR_ROOT));
    }

    #[test]
    fn missing_keys_and_bad_templates_are_errors() {
        let t = PrefixTemplate::parse(DATA_PREFIX).unwrap();
        let ctx = PrefixContext {
            lambda_keys: &[("year", "2021")],
            error_output_type: None,
            arrival: at(),
        };
        assert_eq!(
            t.evaluate(&ctx),
            Err(EvaluateError::MissingPartitionKey("month".into()))
        );
        assert!(PrefixTemplate::parse("a/!{nope:x}/").is_err());
        assert!(PrefixTemplate::parse("a/!{timestamp:yyyy").is_err());
        let ts = PrefixTemplate::parse("raw/!{timestamp:yyyy}/").unwrap();
        assert_eq!(ts.evaluate(&ctx).unwrap(), "raw/2021/");
    }

    #[test]
    fn formats_round_trip_and_name_their_objects() {
        for f in OutputFormat::ALL {
            assert_eq!(f.as_str().parse::<OutputFormat>().unwrap(), f);
            assert_eq!(OutputFormat::of_key(&format!("data/x{}", f.extension())), f);
        }
        assert!("csv".parse::<OutputFormat>().is_err());
    }

    #[test]
    fn names_objects_like_firehose() {
        assert_eq!(
            object_name("streamlake-delivery", 1, &at(), "abc", ""),
            "streamlake-delivery-1-2021-11-22-12-26-40-abc"
        );
    }
}
