//! Partition keys taken from a record's own event time.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use crate::dataset::Granularity;

/// The `year/month/day` (or `year/month/day/hour`) partition of a record, from its event
/// time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKeys {
    date: NaiveDate,
    hour: Option<u8>,
}

impl PartitionKeys {
    /// The partition holding records of this UTC day.
    pub fn for_date(date: NaiveDate) -> Self {
        Self { date, hour: None }
    }

    /// The partition holding records of this UTC hour of `date` (0..=23).
    pub fn for_hour(date: NaiveDate, hour: u32) -> Self {
        Self {
            date,
            hour: Some(hour.min(23) as u8),
        }
    }

    /// The day partition of an event that happened at `t`.
    pub fn for_time(t: &DateTime<Utc>) -> Self {
        Self::for_date(t.date_naive())
    }

    /// The partition of an event that happened at `t`, at `granularity`.
    pub fn for_time_in(t: &DateTime<Utc>, granularity: Granularity) -> Self {
        match granularity {
            Granularity::Day => Self::for_date(t.date_naive()),
            Granularity::Hour => Self::for_hour(t.date_naive(), t.hour()),
        }
    }

    /// The day this partition holds (or holds an hour of).
    pub fn date(&self) -> NaiveDate {
        self.date
    }

    /// The hour this partition holds, in an hourly lake.
    pub fn hour(&self) -> Option<u32> {
        self.hour.map(u32::from)
    }

    /// The day partition this one is in (itself for a day partition).
    pub fn day_partition(&self) -> Self {
        Self::for_date(self.date)
    }

    /// The granularity of this partition.
    pub fn granularity(&self) -> Granularity {
        match self.hour {
            None => Granularity::Day,
            Some(_) => Granularity::Hour,
        }
    }

    /// `year` key: four digits.
    pub fn year(&self) -> String {
        format!("{:04}", self.date.year())
    }

    /// `month` key: two digits.
    pub fn month(&self) -> String {
        format!("{:02}", self.date.month())
    }

    /// `day` key: two digits.
    pub fn day(&self) -> String {
        format!("{:02}", self.date.day())
    }

    /// The keys as (name, value) pairs, outermost first: `year`, `month`, `day`, and
    /// `hour` in an hourly lake.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, KeyValue)> {
        let [year, month, day, hour] = ["year", "month", "day", "hour"];
        [
            Some((year, KeyValue::new(self.date.year().unsigned_abs(), 4))),
            Some((month, KeyValue::new(self.date.month(), 2))),
            Some((day, KeyValue::new(self.date.day(), 2))),
            self.hour.map(|h| (hour, KeyValue::new(u32::from(h), 2))),
        ]
        .into_iter()
        .flatten()
    }

    /// Reads the partition from a key that contains `year=YYYY/month=MM/day=DD` (and
    /// `hour=HH` after them, in an hourly lake).
    pub fn from_path(path: &str) -> Option<Self> {
        let mut year = None;
        let mut month = None;
        let mut day = None;
        let mut hour = None;
        for segment in path.split('/') {
            if let Some((name, value)) = segment.split_once('=') {
                let slot = match name {
                    "year" => &mut year,
                    "month" => &mut month,
                    "day" => &mut day,
                    "hour" => &mut hour,
                    _ => continue,
                };
                *slot = Some(value.parse::<u32>().ok()?);
            }
        }
        let date = NaiveDate::from_ymd_opt(i32::try_from(year?).ok()?, month?, day?)?;
        match hour {
            None => Some(Self::for_date(date)),
            Some(h) if h < 24 => Some(Self::for_hour(date, h)),
            Some(_) => None,
        }
    }
}

/// A partition key value, zero-padded (`2021`, `03`), held without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValue {
    digits: [u8; 4],
    width: usize,
}

impl KeyValue {
    /// `value` (at most 9999) in `width` (at most 4) digits.
    fn new(value: u32, width: usize) -> Self {
        let mut digits = [b'0'; 4];
        let mut v = value;
        for d in digits[..width].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        Self { digits, width }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.width]).expect("ASCII digits")
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hive-style path of the partition: `year=2021/month=10/day=01` (`/hour=07` in an
/// hourly lake).
impl fmt::Display for PartitionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "year={:04}/month={:02}/day={:02}",
            self.date.year(),
            self.date.month(),
            self.date.day()
        )?;
        match self.hour {
            Some(h) => write!(f, "/hour={h:02}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded() {
        let p = PartitionKeys::for_date(NaiveDate::from_ymd_opt(2021, 3, 4).unwrap());
        assert_eq!(
            (p.year(), p.month(), p.day()),
            ("2021".into(), "03".into(), "04".into())
        );
        assert_eq!(p.to_string(), "year=2021/month=03/day=04");
        let pairs: Vec<String> = p.pairs().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(pairs, ["year=2021", "month=03", "day=04"]);
        let h = PartitionKeys::for_hour(p.date(), 7);
        assert_eq!(h.to_string(), "year=2021/month=03/day=04/hour=07");
        assert_eq!(h.pairs().count(), 4);
        assert_eq!(PartitionKeys::from_path(&format!("data/{h}/x")), Some(h));
    }

    #[test]
    fn round_trips_through_a_path() {
        let p = PartitionKeys::for_date(NaiveDate::from_ymd_opt(2021, 10, 31).unwrap());
        let key = format!("data/{p}/streamlake-delivery-1-2021-10-31-00-00-00-x");
        assert_eq!(PartitionKeys::from_path(&key), Some(p));
        assert_eq!(
            PartitionKeys::from_path("data/year=2021/month=02/day=30/x"),
            None
        );
        assert_eq!(PartitionKeys::from_path("data/year=2021/month=02/"), None);
    }
}
