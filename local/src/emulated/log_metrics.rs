//! CloudWatch's side of the Lambdas' metrics: the embedded-metric-format lines
//! ([`streamlake_core::metrics`]) read back from a function's log, kept as CloudWatch
//! keeps them: per metric, its statistics (`SampleCount`, `Sum`, `Maximum`) over all time
//! and per second (CloudWatch's high resolution), by the timestamp each line carries.
//!
//! The log is read on demand, from where the last read stopped: no task, nothing missed,
//! and a line the function is still writing is kept until its end arrives.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;

use streamlake_core::metrics::{Metrics, Unit};

/// CloudWatch's statistics of a metric over some period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Statistics {
    /// Values recorded (`SampleCount`).
    pub count: u64,
    /// Their sum (`Sum`).
    pub sum: f64,
    /// The largest (`Maximum`).
    pub max: f64,
}

impl Statistics {
    fn add(&mut self, value: f64) {
        self.max = if self.count == 0 {
            value
        } else {
            self.max.max(value)
        };
        self.count += 1;
        self.sum += value;
    }
}

/// One metric of one function.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// Its unit.
    pub unit: Unit,
    /// Over all time.
    pub total: Statistics,
    /// Per second: the key is the second's start, in milliseconds since the epoch.
    pub per_second: BTreeMap<i64, Statistics>,
}

/// The metrics of one function's log.
#[derive(Debug)]
pub struct LogMetrics {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    offset: u64,
    partial: Vec<u8>,
    series: BTreeMap<String, MetricSeries>,
}

impl LogMetrics {
    /// The metrics of the log at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            state: Mutex::default(),
        }
    }

    /// Every metric so far, by name, after reading what the log gained since the last
    /// call. A log that cannot be read yet has no metrics yet.
    pub fn read(&self) -> BTreeMap<String, MetricSeries> {
        let mut state = self.state.lock().expect("not poisoned");
        let mut gained = Vec::new();
        if let Ok(mut file) = std::fs::File::open(&self.path)
            && file.seek(SeekFrom::Start(state.offset)).is_ok()
            && let Ok(n) = file.read_to_end(&mut gained)
        {
            state.offset += n as u64;
        }
        state.partial.extend_from_slice(&gained);
        let complete = state
            .partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let lines: Vec<u8> = state.partial.drain(..complete).collect();
        for line in lines.split(|&b| b == b'\n') {
            let Some(metrics) = std::str::from_utf8(line).ok().and_then(Metrics::from_emf) else {
                continue;
            };
            let second = metrics.timestamp_ms.div_euclid(1000) * 1000;
            for (name, unit, value) in metrics.values {
                let series = state.series.entry(name).or_insert_with(|| MetricSeries {
                    unit,
                    total: Statistics::default(),
                    per_second: BTreeMap::new(),
                });
                series.total.add(value);
                series.per_second.entry(second).or_default().add(value);
            }
        }
        state.series.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn lines_are_read_once_as_they_arrive_and_summed_per_second() {
        let dir = std::env::temp_dir().join(format!("log-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.log");
        let metrics = LogMetrics::new(&path);
        assert!(metrics.read().is_empty(), "no log yet");

        let line = |ts: i64, n: u32| {
            Metrics::new("f", ts)
                .with("RecordsIn", Unit::Count, n)
                .to_emf()
        };
        let mut log = std::fs::File::create(&path).unwrap();
        writeln!(
            log,
            "{{\"level\":\"INFO\",\"message\":\"batch processed\"}}"
        )
        .unwrap();
        writeln!(log, "{}", line(1_000, 10)).unwrap();
        let half = line(1_999, 5);
        write!(log, "{}", &half[..20]).unwrap();
        let series = &metrics.read()["RecordsIn"];
        assert_eq!(series.total.sum, 10.0, "a line being written is not read");

        writeln!(log, "{}", &half[20..]).unwrap();
        writeln!(log, "{}", line(2_000, 7)).unwrap();
        let series = &metrics.read()["RecordsIn"];
        assert_eq!(series.unit, Unit::Count);
        assert_eq!(
            series.total,
            Statistics {
                count: 3,
                sum: 22.0,
                max: 10.0
            }
        );
        assert_eq!(series.per_second[&1_000].sum, 15.0);
        assert_eq!(series.per_second[&2_000].sum, 7.0);
        assert_eq!(metrics.read()["RecordsIn"].total.count, 3, "read once");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
