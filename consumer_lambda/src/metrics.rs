//! The consumer's metrics per invocation, in CloudWatch's embedded metric format
//! ([`streamlake_core::metrics`]).

use chrono::{DateTime, Utc};
use streamlake_core::metrics::{Metrics, Unit};

use crate::{BatchPlan, WriteOutcome};

/// What one batch did.
#[derive(Debug, Clone, Copy)]
pub struct BatchReport<'a> {
    /// Records in the event.
    pub records: usize,
    /// Their data bytes.
    pub bytes_in: usize,
    /// Arrival time in the stream of the event's last record.
    pub last_arrival: Option<DateTime<Utc>>,
    /// The plan of the batch.
    pub plan: &'a BatchPlan,
    /// What writing it did.
    pub outcome: &'a WriteOutcome,
    /// Invalid records whose dead letter could not be written (retried).
    pub dead_letter_failures: usize,
    /// How long the invocation took, in milliseconds.
    pub duration_ms: f64,
}

/// The metrics of a batch. `RecordsIn` = `RecordsOk` (valid and taken by a table: their rows were
/// written, found stale, or, for `RowsFailed`, handed back to be retried) + `RecordsFailed`
/// (invalid: dead-lettered, or retried if that write failed) + `RecordsDropped` (no table
/// takes them). `IteratorAge` is Lambda's: how old the event's last record is
/// when the function gets it.
pub fn batch_metrics(function_name: &str, now: DateTime<Utc>, b: &BatchReport<'_>) -> Metrics {
    let invalid = b.plan.invalid.len();
    let metrics = Metrics::new(function_name, now.timestamp_millis())
        .with("RecordsIn", Unit::Count, b.records as f64)
        .with(
            "RecordsOk",
            Unit::Count,
            b.records.saturating_sub(invalid + b.plan.unrouted) as f64,
        )
        .with("RecordsFailed", Unit::Count, invalid as f64)
        .with("RecordsDropped", Unit::Count, b.plan.unrouted as f64)
        .with("BytesIn", Unit::Bytes, b.bytes_in as f64)
        .with("RowsWritten", Unit::Count, b.outcome.written as f64)
        .with("StaleWrites", Unit::Count, b.outcome.stale as f64)
        .with("RowsFailed", Unit::Count, b.outcome.failed.len() as f64)
        .with("WriteRequests", Unit::Count, b.outcome.requests as f64)
        .with("Retries", Unit::Count, b.outcome.retries as f64)
        .with(
            "DeadLetters",
            Unit::Count,
            invalid.saturating_sub(b.dead_letter_failures) as f64,
        )
        .with("Duration", Unit::Milliseconds, b.duration_ms);
    match b.last_arrival {
        Some(arrival) => metrics.with(
            "IteratorAge",
            Unit::Milliseconds,
            (now - arrival).num_milliseconds().max(0) as f64,
        ),
        None => metrics,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use streamlake_core::dataset::Dataset;

    use super::*;
    use crate::{InputRecord, Tables, plan_batch};

    #[test]
    fn a_known_batch_reads_back_with_its_counts() {
        let now = Utc::now();
        let arrival = now - TimeDelta::milliseconds(1_500);
        let lines: [&[u8]; 4] = [
            br#"{"stationid":"S1","datatype":"TMAX","value":1.5,"date":"2021-10-01T00:00:00"}"#,
            br#"{"stationid":"S1","datatype":"TMIN","value":0.5,"date":"2021-10-01T00:00:00"}"#,
            br#"{"stationid":"S2","datatype":"WIND","value":3,"date":"2021-10-01T00:00:00"}"#,
            b"not json",
        ];
        let plan = plan_batch(
            lines.iter().enumerate().map(|(i, data)| InputRecord {
                sequence_number: ["1", "2", "3", "4"][i],
                partition_key: "k",
                data,
                arrival,
            }),
            &Tables::new(Dataset::weather(), "").unwrap(),
        );
        let outcome = WriteOutcome {
            written: 1,
            requests: 2,
            retries: 1,
            ..WriteOutcome::default()
        };
        let report = BatchReport {
            records: lines.len(),
            bytes_in: lines.iter().map(|l| l.len()).sum(),
            last_arrival: Some(arrival),
            plan: &plan,
            outcome: &outcome,
            dead_letter_failures: 0,
            duration_ms: 12.0,
        };
        let line = batch_metrics("streamlake-consumer", now, &report).to_emf();
        let m = Metrics::from_emf(&line).expect("an EMF line");
        assert_eq!(m.function_name, "streamlake-consumer");
        for (name, value) in [
            ("RecordsIn", 4.0),
            ("RecordsOk", 2.0),
            ("RecordsFailed", 1.0),
            ("RecordsDropped", 1.0),
            ("BytesIn", report.bytes_in as f64),
            ("RowsWritten", 1.0),
            ("StaleWrites", 0.0),
            ("RowsFailed", 0.0),
            ("WriteRequests", 2.0),
            ("Retries", 1.0),
            ("DeadLetters", 1.0),
            ("Duration", 12.0),
            ("IteratorAge", 1_500.0),
        ] {
            assert_eq!(m.get(name), Some(value), "{name}");
        }
    }
}
