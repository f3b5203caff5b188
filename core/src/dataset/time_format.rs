//! The formats a timestamp or date column reads: RFC 3339, epoch seconds or milliseconds,
//! or a strftime pattern (with a declared offset when the pattern has none).

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use crate::time::parse_event_time_in;

/// How the text (or number) of a time is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339: an offset is converted, a time without offset is in the dataset's zone,
    /// a date alone is midnight.
    Rfc3339(FixedOffset),
    /// Seconds since the Unix epoch (a number or a numeric string; a fraction is kept).
    EpochSeconds,
    /// Milliseconds since the Unix epoch.
    EpochMillis,
    /// A strftime pattern (`%Y-%m-%d %H:%M:%S%.f`).
    Pattern(Pattern),
}

impl Default for TimeFormat {
    fn default() -> Self {
        TimeFormat::Rfc3339(utc())
    }
}

/// A checked strftime pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as written.
    pub text: String,
    /// The zone of times that carry no offset.
    pub offset: FixedOffset,
    /// Whether the pattern reads an offset (`%z`, `%:z`).
    has_offset: bool,
    /// Whether it reads a time of day (otherwise midnight).
    has_time: bool,
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("zero offset")
}

impl TimeFormat {
    /// Reads a format setting (`rfc3339`, `epoch_seconds`, `epoch_millis`, or a strftime
    /// pattern) with the zone for times without an offset; `Err` says why it is refused.
    pub fn parse(format: &str, offset: FixedOffset) -> Result<Self, String> {
        match format {
            "rfc3339" => Ok(TimeFormat::Rfc3339(offset)),
            "epoch_seconds" => Ok(TimeFormat::EpochSeconds),
            "epoch_millis" => Ok(TimeFormat::EpochMillis),
            pattern if !pattern.contains('%') => Err(format!(
                "unknown format {pattern:?}: expected rfc3339, epoch_seconds, epoch_millis or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\""
            )),
            pattern => Pattern::new(pattern, offset).map(TimeFormat::Pattern),
        }
    }

    /// The setting's value, as the dataset file spells it.
    pub fn as_setting(&self) -> &str {
        match self {
            TimeFormat::Rfc3339(_) => "rfc3339",
            TimeFormat::EpochSeconds => "epoch_seconds",
            TimeFormat::EpochMillis => "epoch_millis",
            TimeFormat::Pattern(p) => &p.text,
        }
    }

    /// Whether values are numbers (epoch formats) rather than text.
    pub fn is_epoch(&self) -> bool {
        matches!(self, TimeFormat::EpochSeconds | TimeFormat::EpochMillis)
    }

    /// Reads a time from text.
    pub fn parse_text(&self, s: &str) -> Option<DateTime<Utc>> {
        let t = match self {
            TimeFormat::Rfc3339(offset) => parse_event_time_in(s, *offset)?,
            TimeFormat::EpochSeconds | TimeFormat::EpochMillis => {
                let s = s.trim();
                match s.parse::<i64>() {
                    Ok(n) => self.from_integer(n)?,
                    Err(_) => self.from_float(s.parse().ok()?)?,
                }
            }
            TimeFormat::Pattern(p) => p.parse(s)?,
        };
        in_range(t)
    }

    /// Reads a time from an integer (epoch formats only).
    pub fn from_integer(&self, n: i64) -> Option<DateTime<Utc>> {
        let t = match self {
            TimeFormat::EpochSeconds => Utc.timestamp_opt(n, 0).single()?,
            TimeFormat::EpochMillis => Utc.timestamp_millis_opt(n).single()?,
            _ => return None,
        };
        in_range(t)
    }

    /// Reads a time from a number with a fraction (epoch formats only).
    pub fn from_float(&self, x: f64) -> Option<DateTime<Utc>> {
        let micros = match self {
            TimeFormat::EpochSeconds => x * 1e6,
            TimeFormat::EpochMillis => x * 1e3,
            _ => return None,
        };
        if !micros.is_finite() || micros.abs() > 3e17 {
            return None;
        }
        in_range(DateTime::from_timestamp_micros(micros.round() as i64)?)
    }

    /// `t` as a record would carry it in this format (text, or a number for the epochs).
    pub fn render(&self, t: &DateTime<Utc>) -> serde_json::Value {
        match self {
            TimeFormat::Rfc3339(offset) if offset.local_minus_utc() == 0 => {
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().into()
            }
            TimeFormat::Rfc3339(offset) => t
                .with_timezone(offset)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
            TimeFormat::EpochSeconds => t.timestamp().into(),
            TimeFormat::EpochMillis => t.timestamp_millis().into(),
            TimeFormat::Pattern(p) => t
                .with_timezone(&p.offset)
                .format(&p.text)
                .to_string()
                .into(),
        }
    }

    /// What the format accepts, for error messages.
    pub fn describe(&self) -> String {
        match self {
            TimeFormat::Rfc3339(_) => {
                "a timestamp (RFC 3339, or YYYY-MM-DDTHH:MM:SS) or a date (YYYY-MM-DD)".into()
            }
            TimeFormat::EpochSeconds => "seconds since the epoch".into(),
            TimeFormat::EpochMillis => "milliseconds since the epoch".into(),
            TimeFormat::Pattern(p) => format!("a time in the format {:?}", p.text),
        }
    }
}

/// Years outside 0..=9999 are refused, so that every accepted time has a four-digit
/// `year=` partition.
fn in_range(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (0..=9999).contains(&t.year()).then_some(t)
}

impl Pattern {
    /// Checks a pattern: every specifier known, and a full date read back from it.
    fn new(text: &str, offset: FixedOffset) -> Result<Self, String> {
        let items: Vec<Item<'_>> = StrftimeItems::new(text).collect();
        if items.iter().any(|i| matches!(i, Item::Error)) {
            return Err(format!("{text:?} is not a valid strftime pattern"));
        }
        let has_offset = text.contains("%z") || text.contains("%:z") || text.contains("%#z");
        let pattern = |has_time| Self {
            text: text.to_owned(),
            offset,
            has_offset,
            has_time,
        };
        // A pattern that reads back what it writes, as a date and time or as a date.
        let sample = NaiveDate::from_ymd_opt(2021, 10, 5)
            .and_then(|d| d.and_hms_micro_opt(13, 14, 15, 250_000))
            .expect("a valid sample time");
        let written = offset
            .from_local_datetime(&sample)
            .single()
            .expect("a fixed offset")
            .format(text)
            .to_string();
        let with_time = pattern(true);
        if with_time.parse(&written).is_some() {
            return Ok(with_time);
        }
        let date_only = pattern(false);
        match date_only.parse(&written) {
            Some(_) => Ok(date_only),
            None => Err(format!(
                "{text:?} does not read a whole date (it needs a year, month and day, e.g. %Y-%m-%d)"
            )),
        }
    }

    fn parse(&self, s: &str) -> Option<DateTime<Utc>> {
        if self.has_offset {
            return DateTime::parse_from_str(s, &self.text)
                .ok()
                .map(|t| t.with_timezone(&Utc));
        }
        let local = if self.has_time {
            NaiveDateTime::parse_from_str(s, &self.text).ok()?
        } else {
            NaiveDate::parse_from_str(s, &self.text)
                .ok()?
                .and_time(NaiveTime::MIN)
        };
        Some(
            self.offset
                .from_local_datetime(&local)
                .single()?
                .with_timezone(&Utc),
        )
    }
}

/// Reads a `timezone` setting: `UTC` or a fixed offset `+05:30`.
pub fn parse_offset(zone: &str) -> Result<FixedOffset, String> {
    if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
        return Ok(utc());
    }
    let refused =
        || format!("unknown timezone {zone:?}: expected \"UTC\" or an offset such as \"+05:30\"");
    let b = zone.as_bytes();
    if b.len() != 6 || !matches!(b[0], b'+' | b'-') || b[3] != b':' {
        return Err(refused());
    }
    let hours: i32 = zone[1..3].parse().map_err(|_| refused())?;
    let minutes: i32 = zone[4..6].parse().map_err(|_| refused())?;
    if hours > 23 || minutes > 59 {
        return Err(refused());
    }
    let seconds = (hours * 3600 + minutes * 60) * if b[0] == b'-' { -1 } else { 1 };
    FixedOffset::east_opt(seconds).ok_or_else(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_time(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn patterns_read_times_with_and_without_offsets() {
        let unicorn = TimeFormat::parse("%Y-%m-%d %H:%M:%S%.f", utc()).unwrap();
        assert_eq!(
            unicorn.parse_text("2017-06-05 09:17:08.189"),
            Some(utc_time("2017-06-05T09:17:08.189Z"))
        );
        assert_eq!(unicorn.parse_text("2017-06-05"), None);
        let india = TimeFormat::parse("%d/%m/%Y %H:%M", parse_offset("+05:30").unwrap()).unwrap();
        assert_eq!(
            india.parse_text("05/06/2017 01:00"),
            Some(utc_time("2017-06-04T19:30:00Z"))
        );
        let day = TimeFormat::parse("%Y%m%d", utc()).unwrap();
        assert_eq!(
            day.parse_text("20211001"),
            Some(utc_time("2021-10-01T00:00:00Z"))
        );
        let offset = TimeFormat::parse("%Y-%m-%dT%H:%M:%S%z", utc()).unwrap();
        assert_eq!(
            offset.parse_text("2021-10-01T01:00:00+0200"),
            Some(utc_time("2021-09-30T23:00:00Z"))
        );
    }

    #[test]
    fn epochs_read_numbers_and_numeric_text() {
        let s = TimeFormat::parse("epoch_seconds", utc()).unwrap();
        assert_eq!(
            s.from_integer(1_633_046_400),
            Some(utc_time("2021-10-01T00:00:00Z"))
        );
        assert_eq!(
            s.from_float(1_633_046_400.5),
            Some(utc_time("2021-10-01T00:00:00.5Z"))
        );
        assert_eq!(
            s.parse_text("1633046400"),
            Some(utc_time("2021-10-01T00:00:00Z"))
        );
        let ms = TimeFormat::parse("epoch_millis", utc()).unwrap();
        assert_eq!(
            ms.from_integer(1_633_046_400_250),
            Some(utc_time("2021-10-01T00:00:00.250Z"))
        );
        assert_eq!(ms.from_integer(i64::MAX), None);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            TimeFormat::parse("iso", utc())
                .unwrap_err()
                .contains("unknown format")
        );
        assert!(
            TimeFormat::parse("%Y-%Q", utc())
                .unwrap_err()
                .contains("not a valid")
        );
        assert!(
            TimeFormat::parse("%H:%M", utc())
                .unwrap_err()
                .contains("whole date")
        );
        assert!(parse_offset("+25:00").is_err());
        assert!(parse_offset("Europe/Paris").is_err());
        assert_eq!(parse_offset("-03:00").unwrap().local_minus_utc(), -3 * 3600);
    }
}
