//! Partition keys taken from a record's own event time.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// The `year/month/day` partition of a record, from its event time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKeys {
    date: NaiveDate,
}

impl PartitionKeys {
    /// The partition holding records of this UTC day.
    pub fn for_date(date: NaiveDate) -> Self {
        Self { date }
    }

    /// The partition of an event that happened at `t`.
    pub fn for_time(t: &DateTime<Utc>) -> Self {
        Self::for_date(t.date_naive())
    }

    /// The day this partition holds.
    pub fn date(&self) -> NaiveDate {
        self.date
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

    /// The keys as (name, value) pairs, in [`crate::schema::PARTITION_COLUMNS`] order.
    pub fn pairs(&self) -> [(&'static str, KeyValue); 3] {
        let [year, month, day] = crate::schema::PARTITION_COLUMNS else {
            unreachable!("three partition columns")
        };
        [
            (year, KeyValue::new(self.date.year().unsigned_abs(), 4)),
            (month, KeyValue::new(self.date.month(), 2)),
            (day, KeyValue::new(self.date.day(), 2)),
        ]
    }

    /// Reads the partition from a key that contains `year=YYYY/month=MM/day=DD`.
    pub fn from_path(path: &str) -> Option<Self> {
        let mut year = None;
        let mut month = None;
        let mut day = None;
        for segment in path.split('/') {
            if let Some((name, value)) = segment.split_once('=') {
                let slot = match name {
                    "year" => &mut year,
                    "month" => &mut month,
                    "day" => &mut day,
                    _ => continue,
                };
                *slot = Some(value.parse::<u32>().ok()?);
            }
        }
        let date = NaiveDate::from_ymd_opt(i32::try_from(year?).ok()?, month?, day?)?;
        Some(Self::for_date(date))
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

/// Hive-style path of the partition: `year=2021/month=10/day=01`.
impl fmt::Display for PartitionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "year={:04}/month={:02}/day={:02}",
            self.date.year(),
            self.date.month(),
            self.date.day()
        )
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
        let pairs: Vec<String> = p.pairs().iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(pairs, ["year=2021", "month=03", "day=04"]);
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
