//! Metrics in CloudWatch's embedded metric format (EMF): one JSON log line per invocation
//! that CloudWatch Logs turns into metrics (namespace [`NAMESPACE`], dimension
//! `FunctionName`), with no API call and no latency in the function.
//!
//! The line follows the specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! a JSON object with nothing before or after it, whose `_aws` member holds the timestamp
//! (milliseconds since the epoch) and one metric directive naming the namespace, the
//! dimension set and each metric with its unit; the values are members of the root. The
//! local stack reads the same lines back from the Lambdas' logs ([`Metrics::from_emf`]).

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every streamlake metric.
pub const NAMESPACE: &str = "streamlake";

/// The dimension every metric carries.
pub const DIMENSION: &str = "FunctionName";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things (records, rows, requests).
    Count,
    /// Bytes.
    Bytes,
    /// Milliseconds.
    Milliseconds,
}

impl Unit {
    /// CloudWatch's name of the unit.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Bytes => "Bytes",
            Self::Milliseconds => "Milliseconds",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Count, Self::Bytes, Self::Milliseconds]
            .into_iter()
            .find(|u| u.name() == name)
    }
}

/// One invocation's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// The function (the `FunctionName` dimension).
    pub function_name: String,
    /// When, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Name, unit and value of each metric, in the order added.
    pub values: Vec<(String, Unit, f64)>,
}

impl Metrics {
    /// No metrics yet, for `function_name` at `timestamp_ms`.
    pub fn new(function_name: impl Into<String>, timestamp_ms: i64) -> Self {
        Self {
            function_name: function_name.into(),
            timestamp_ms,
            values: Vec::new(),
        }
    }

    /// Adds a metric (builder style).
    #[must_use]
    pub fn with(mut self, name: &str, unit: Unit, value: impl Into<f64>) -> Self {
        self.values.push((name.to_owned(), unit, value.into()));
        self
    }

    /// The value of the metric `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
    }

    /// The EMF document, as one line.
    pub fn to_emf(&self) -> String {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.name() }))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert(DIMENSION.into(), Value::from(self.function_name.as_str()));
        for (name, _, value) in &self.values {
            root.insert(name.clone(), Value::from(*value));
        }
        Value::Object(root).to_string()
    }

    /// The metrics of an EMF line in the [`NAMESPACE`] namespace, or `None` for any other
    /// line (a log line, another namespace, a document that breaks the specification).
    pub fn from_emf(line: &str) -> Option<Self> {
        let root: Map<String, Value> = serde_json::from_str(line.trim()).ok()?;
        let aws = root.get("_aws")?.as_object()?;
        let timestamp_ms = aws.get("Timestamp")?.as_i64()?;
        let directive = aws
            .get("CloudWatchMetrics")?
            .as_array()?
            .iter()
            .find(|d| d["Namespace"] == NAMESPACE)?;
        let function_name = root.get(DIMENSION)?.as_str()?.to_owned();
        let values = directive["Metrics"]
            .as_array()?
            .iter()
            .map(|m| {
                let name = m["Name"].as_str()?;
                let unit = Unit::from_name(m["Unit"].as_str().unwrap_or("None"))?;
                Some((name.to_owned(), unit, root.get(name)?.as_f64()?))
            })
            .collect::<Option<_>>()?;
        Some(Self {
            function_name,
            timestamp_ms,
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metrics {
        Metrics::new("streamlake-consumer", 1_700_000_000_123)
            .with("RecordsIn", Unit::Count, 100)
            .with("BytesIn", Unit::Bytes, 12_345)
            .with("Duration", Unit::Milliseconds, 42.5)
    }

    #[test]
    fn an_emf_line_follows_the_specification() {
        let line = sample().to_emf();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123_i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "streamlake");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "RecordsIn", "Unit": "Count"},
                {"Name": "BytesIn", "Unit": "Bytes"},
                {"Name": "Duration", "Unit": "Milliseconds"},
            ])
        );
        // Every dimension and metric the directive names is a member of the root.
        assert_eq!(v["FunctionName"], "streamlake-consumer");
        assert_eq!(v["RecordsIn"], 100.0);
        assert_eq!(v["Duration"], 42.5);
    }

    #[test]
    fn a_line_reads_back_as_written() {
        let m = sample();
        assert_eq!(Metrics::from_emf(&m.to_emf()), Some(m.clone()));
        assert_eq!(m.get("BytesIn"), Some(12_345.0));
        assert_eq!(m.get("Nope"), None);
    }

    #[test]
    fn other_lines_are_not_metrics() {
        for line in [
            "",
            "batch processed",
            r#"{"level":"INFO","fields":{"message":"batch processed"}}"#,
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"other","Dimensions":[[]],"Metrics":[]}]}}"#,
            // A metric the directive names but the root lacks.
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"streamlake","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"X","Unit":"Count"}]}]},"FunctionName":"f"}"#,
        ] {
            assert_eq!(Metrics::from_emf(line), None, "{line}");
        }
    }
}
