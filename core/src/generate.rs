//! Deterministic sample data: GHCND-like daily weather records for Maryland stations.
//!
//! The generator walks day by day from a start date; each day, every station reports
//! some of its datatypes, so a (station, day, datatype) never repeats. The same seed
//! always gives the same records. Optionally, malformed records are mixed in at a known
//! rate, to exercise the error paths.

use chrono::{Days, NaiveDate};
use serde::Serialize;

/// Stations of the generated data: (id, location, reports temperature).
const STATIONS: &[(&str, &str, bool)] = &[
    ("GHCND:US1MDAA0001", "RIDGE 1.0 N, MD US", false),
    ("GHCND:US1MDAA0002", "ANNAPOLIS 2.1 NW, MD US", false),
    ("GHCND:US1MDAA0006", "SEVERNA PARK 1.3 SE, MD US", false),
    ("GHCND:US1MDAL0003", "FROSTBURG 0.6 W, MD US", false),
    ("GHCND:US1MDBL0008", "TOWSON 1.9 N, MD US", false),
    ("GHCND:US1MDBL0021", "PARKVILLE 1.5 E, MD US", false),
    ("GHCND:US1MDCR0004", "WESTMINSTER 3.4 SW, MD US", false),
    ("GHCND:US1MDFR0012", "FREDERICK 4.2 NE, MD US", false),
    ("GHCND:US1MDHW0005", "ELLICOTT CITY 2.6 W, MD US", false),
    ("GHCND:US1MDMG0010", "ROCKVILLE 1.8 NNW, MD US", false),
    ("GHCND:US1MDPG0014", "BOWIE 2.0 S, MD US", false),
    ("GHCND:US1MDWS0007", "HAGERSTOWN 3.1 E, MD US", false),
    ("GHCND:USC00180465", "BALTIMORE HOWARD CO, MD US", true),
    ("GHCND:USC00181750", "CLARKSVILLE 3 NNE, MD US", true),
    ("GHCND:USC00182523", "EMMITSBURG 2 SE, MD US", true),
    ("GHCND:USC00183675", "HAGERSTOWN, MD US", true),
    ("GHCND:USC00185718", "OAKLAND 1 SE, MD US", true),
    ("GHCND:USC00187330", "ROYAL OAK 2 SSW, MD US", true),
    ("GHCND:USC00188380", "SALISBURY, MD US", true),
    (
        "GHCND:USW00093721",
        "BALTIMORE WASHINGTON INTERNATIONAL AIRPORT, MD US",
        true,
    ),
    (
        "GHCND:USW00093784",
        "WASHINGTON DULLES INTERNATIONAL AIRPORT, MD US",
        true,
    ),
    ("GHCND:USW00013752", "ANDREWS AIR FORCE BASE, MD US", true),
];

/// One generated record.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedRecord {
    /// Kinesis partition key: the station id.
    pub partition_key: String,
    /// The record bytes (a JSON object, or something malformed).
    pub data: Vec<u8>,
    /// Whether `data` is a valid observation.
    pub valid: bool,
}

/// Configuration of [`WeatherGenerator`].
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Seed: the same seed gives the same records.
    pub seed: u64,
    /// First day of observations.
    pub start: NaiveDate,
    /// Fraction (0..=1) of records that are malformed.
    pub error_rate: f64,
}

impl Default for GeneratorConfig {
    /// Maryland, from October 1, 2021 (the NOAA tutorial's data set), no errors, seed 1.
    fn default() -> Self {
        Self {
            seed: 1,
            start: NaiveDate::from_ymd_opt(2021, 10, 1).expect("valid date"),
            error_rate: 0.0,
        }
    }
}

#[derive(Serialize)]
struct InputRecord<'a> {
    date: String,
    stationid: &'a str,
    location: &'a str,
    datatype: &'a str,
    value: f64,
}

/// An endless iterator of generated weather records.
#[derive(Debug, Clone)]
pub struct WeatherGenerator {
    rng: fastrand::Rng,
    config: GeneratorConfig,
    day: u64,
    pending: Vec<GeneratedRecord>,
}

impl WeatherGenerator {
    /// A generator for `config`.
    pub fn new(config: GeneratorConfig) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(config.seed),
            config,
            day: 0,
            pending: Vec::new(),
        }
    }

    /// Fills `pending` with one day's reports (in reverse, to pop from the end).
    fn next_day(&mut self) {
        let date = self
            .config
            .start
            .checked_add_days(Days::new(self.day))
            .expect("generated dates stay in range");
        self.day += 1;
        let stamp = format!("{date}T00:00:00");
        let mut day = Vec::new();
        for &(id, location, temperature) in STATIONS {
            if self.rng.f64() < 0.15 {
                continue; // this station did not report today
            }
            let mut emit = |datatype: &str, value: f64| {
                let record = InputRecord {
                    date: stamp.clone(),
                    stationid: id,
                    location,
                    datatype,
                    value,
                };
                day.push(GeneratedRecord {
                    partition_key: id.to_owned(),
                    data: serde_json::to_vec(&record).expect("record serializes"),
                    valid: true,
                });
            };
            let rain = if self.rng.f64() < 0.6 {
                0.0
            } else {
                f64::from(self.rng.u32(1..600)) / 10.0
            };
            emit("PRCP", rain);
            if self.rng.f64() < 0.5 {
                let snow = if self.rng.f64() < 0.9 {
                    0.0
                } else {
                    f64::from(self.rng.u32(1..120))
                };
                emit("SNOW", snow);
            }
            if temperature {
                let tmax = f64::from(self.rng.i32(80..300)) / 10.0;
                let tmin = tmax - f64::from(self.rng.i32(30..120)) / 10.0;
                emit("TMAX", tmax);
                emit("TMIN", (tmin * 10.0).round() / 10.0);
            }
        }
        day.reverse();
        self.pending = day;
    }

    fn malformed(&mut self) -> GeneratedRecord {
        let (id, location, _) = STATIONS[self.rng.usize(..STATIONS.len())];
        let date = self.config.start;
        let data = match self.rng.u8(0..6) {
            0 => format!(r#"{{"date":"{date}T00:00:00","stationid":"{id}","datatype":"PR"#).into_bytes(),
            1 => format!(r#"{{"date":"{date}T00:00:00","location":"{location}","datatype":"PRCP","value":1}}"#)
                .into_bytes(),
            2 => format!(r#"{{"date":"{date}T00:00:00","stationid":"{id}","datatype":"TMAX","value":"n/a"}}"#)
                .into_bytes(),
            3 => format!(r#"{{"date":"{date}T99:00:00","stationid":"{id}","datatype":"TMIN","value":3}}"#)
                .into_bytes(),
            4 => {
                let mut v = format!(r#"{{"date":"{date}","stationid":""#).into_bytes();
                v.extend_from_slice(b"\xff\xfe");
                v.extend_from_slice(br#"","datatype":"PRCP","value":0}"#);
                v
            }
            _ => format!("{id},{date},PRCP,5").into_bytes(),
        };
        GeneratedRecord {
            partition_key: id.to_owned(),
            data,
            valid: false,
        }
    }
}

impl Iterator for WeatherGenerator {
    type Item = GeneratedRecord;

    fn next(&mut self) -> Option<GeneratedRecord> {
        if self.config.error_rate > 0.0 && self.rng.f64() < self.config.error_rate {
            return Some(self.malformed());
        }
        while self.pending.is_empty() {
            self.next_day();
        }
        self.pending.pop()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::dataset::Dataset;
    use crate::time::from_epoch_millis;

    #[test]
    fn same_seed_same_records() {
        let a: Vec<_> = WeatherGenerator::new(GeneratorConfig::default())
            .take(500)
            .collect();
        let b: Vec<_> = WeatherGenerator::new(GeneratorConfig::default())
            .take(500)
            .collect();
        assert_eq!(a, b);
        let c: Vec<_> = WeatherGenerator::new(GeneratorConfig {
            seed: 2,
            ..Default::default()
        })
        .take(500)
        .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn valid_flag_matches_normalization_and_keys_never_repeat() {
        let config = GeneratorConfig {
            error_rate: 0.1,
            ..Default::default()
        };
        let dataset = Dataset::weather();
        let text = |o: &crate::dataset::Normalized<'_>, column| {
            o.get(&dataset, column)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let mut seen = HashSet::new();
        let mut invalid = 0;
        for r in WeatherGenerator::new(config).take(5_000) {
            let result = dataset.normalize(&r.data, from_epoch_millis(0));
            assert_eq!(
                result.is_ok(),
                r.valid,
                "{:?}",
                String::from_utf8_lossy(&r.data)
            );
            match result {
                Ok(o) => {
                    let station = text(&o, "stationid").unwrap();
                    assert_eq!(station, r.partition_key);
                    let date = o.get(&dataset, "date").and_then(|v| v.as_date());
                    assert!(seen.insert((station, date, text(&o, "datatype"))));
                }
                Err(_) => invalid += 1,
            }
        }
        assert!(
            (350..650).contains(&invalid),
            "{invalid} invalid of 5000 at rate 0.1"
        );
    }
}
