//! Reading and writing the timestamps that appear in records, object names and prefixes.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

/// Reads an event time, in UTC unless it carries an offset.
///
/// Accepted forms:
/// - RFC 3339 with `Z` or an offset (`2021-10-01T06:00:00+02:00`), converted to UTC;
/// - a local date-time without offset (`2021-10-01T00:00:00`, optional fraction), taken as UTC;
/// - a date alone (`2021-10-01`), meaning midnight UTC.
///
/// Years outside 0..=9999 are refused, so that every accepted time has a four-digit
/// `year=` partition.
pub fn parse_event_time(s: &str) -> Option<DateTime<Utc>> {
    parse_event_time_in(s, FixedOffset::east_opt(0).expect("zero offset"))
}

/// [`parse_event_time`], with times and dates without an offset in `zone`.
pub fn parse_event_time_in(s: &str, zone: FixedOffset) -> Option<DateTime<Utc>> {
    if s.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let local = |t: NaiveDateTime| {
        if zone.local_minus_utc() == 0 {
            Some(t.and_utc())
        } else {
            zone.from_local_datetime(&t)
                .single()
                .map(|t| t.with_timezone(&Utc))
        }
    };
    let t = if s.len() == 10 {
        local(fixed_date(s.as_bytes())?.and_hms_opt(0, 0, 0)?)?
    } else if s.len() == 19 {
        // The GHCND form, read without a general-purpose parser: it is most of the input.
        local(fixed_date_time(s.as_bytes())?)?
    } else if has_offset(s) {
        DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc)
    } else {
        local(s.parse::<NaiveDateTime>().ok()?)?
    };
    (0..=9999).contains(&t.year()).then_some(t)
}

/// Reads `YYYY-MM-DD`.
pub(crate) fn fixed_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS`.
fn fixed_date_time(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    fixed_date(&b[..10])?.and_hms_opt(
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    )
}

/// The value of a run of ASCII digits.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        let d = c.wrapping_sub(b'0');
        (d < 10).then(|| acc * 10 + u32::from(d))
    })
}

/// Whether a date-time string ends in `Z` or a `±HH:MM` offset.
fn has_offset(s: &str) -> bool {
    let b = s.as_bytes();
    match b.last() {
        Some(b'Z' | b'z') => true,
        _ => b.len() > 19 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':',
    }
}

/// Displays an instant as RFC 3339 in UTC with a `Z` suffix, with a fraction only when
/// there is one (`2021-10-01T00:00:00Z`, `2021-10-01T00:00:00.250Z`), without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339<'a>(pub &'a DateTime<Utc>);

impl Rfc3339<'_> {
    /// Writes the text into `buf` and returns it (at most 30 bytes).
    pub fn write<'b>(&self, buf: &'b mut [u8; 30]) -> &'b str {
        let t = self.0;
        let year = u32::try_from(t.year()).unwrap_or(0).min(9999);
        let mut n = 0;
        let mut put = |value: u32, width: usize, sep: Option<u8>| {
            let mut v = value;
            for i in (0..width).rev() {
                buf[n + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            n += width;
            if let Some(s) = sep {
                buf[n] = s;
                n += 1;
            }
        };
        put(year, 4, Some(b'-'));
        put(t.month(), 2, Some(b'-'));
        put(t.day(), 2, Some(b'T'));
        put(t.hour(), 2, Some(b':'));
        put(t.minute(), 2, Some(b':'));
        put(t.second(), 2, None);
        match t.nanosecond() % 1_000_000_000 {
            0 => {}
            ns if ns % 1_000_000 == 0 => {
                put(0, 0, Some(b'.'));
                put(ns / 1_000_000, 3, None);
            }
            ns if ns % 1_000 == 0 => {
                put(0, 0, Some(b'.'));
                put(ns / 1_000, 6, None);
            }
            ns => {
                put(0, 0, Some(b'.'));
                put(ns, 9, None);
            }
        }
        put(0, 0, Some(b'Z'));
        std::str::from_utf8(&buf[..n]).expect("ASCII digits and separators")
    }
}

impl fmt::Display for Rfc3339<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write(&mut [0; 30]))
    }
}

/// Formats an instant as [`Rfc3339`] text.
pub fn format_rfc3339(t: &DateTime<Utc>) -> String {
    Rfc3339(t).to_string()
}

/// The instant `ms` milliseconds after the Unix epoch (clamped to the epoch when out of range).
pub fn from_epoch_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Formats `t` with a Java `DateTimeFormatter`-style pattern, as Firehose does for
/// `!{timestamp:...}` and object names.
///
/// Supported letters: `yyyy`/`yy` (year), `MM` (month), `dd` (day), `HH` (hour),
/// `mm` (minute), `ss` (second); text in single quotes and any other character are copied.
pub fn format_java_pattern(pattern: &str, t: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&q| q == '\'')
                .map_or(chars.len(), |p| i + 1 + p);
            out.extend(&chars[i + 1..end]);
            i = end + 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let field = match c {
            'y' if run == 2 => Some(format!("{:02}", t.year().rem_euclid(100))),
            'y' => Some(format!("{:04}", t.year())),
            'M' => Some(format!("{:02}", t.month())),
            'd' => Some(format!("{:02}", t.day())),
            'H' => Some(format!("{:02}", t.hour())),
            'm' => Some(format!("{:02}", t.minute())),
            's' => Some(format!("{:02}", t.second())),
            _ => None,
        };
        match field {
            Some(f) => out.push_str(&f),
            None => out.extend(std::iter::repeat_n(c, run)),
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reads_the_accepted_forms() {
        assert_eq!(
            parse_event_time("2021-10-01T00:00:00"),
            Some(utc("2021-10-01T00:00:00Z"))
        );
        assert_eq!(
            parse_event_time("2021-10-01"),
            Some(utc("2021-10-01T00:00:00Z"))
        );
        assert_eq!(
            parse_event_time("2021-10-01T12:30:00Z"),
            Some(utc("2021-10-01T12:30:00Z"))
        );
        assert_eq!(
            parse_event_time("2021-10-01T01:30:00+02:00"),
            Some(utc("2021-09-30T23:30:00Z"))
        );
        assert_eq!(
            parse_event_time("2021-12-31T22:00:00-05:00"),
            Some(utc("2022-01-01T03:00:00Z"))
        );
        assert_eq!(
            parse_event_time("2021-10-01T00:00:00.250"),
            Some(utc("2021-10-01T00:00:00.250Z"))
        );
    }

    #[test]
    fn refuses_anything_else() {
        assert_eq!(digits(b"0931"), Some(931));
        assert_eq!(digits(b"09a1"), None);
        for bad in [
            "",
            "yesterday",
            "2021-13-01",
            "2021-02-30",
            "2021-10-01T25:00:00",
            "1633046400",
            "2021/10/01",
        ] {
            assert_eq!(parse_event_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_java_patterns() {
        let t = utc("2021-03-04T05:06:07Z");
        assert_eq!(format_java_pattern("yyyy/MM/dd/HH/", &t), "2021/03/04/05/");
        assert_eq!(
            format_java_pattern("yyyy-MM-dd-HH-mm-ss", &t),
            "2021-03-04-05-06-07"
        );
        assert_eq!(format_java_pattern("'year='yyyy", &t), "year=2021");
    }

    #[test]
    fn rfc3339_is_utc_with_z() {
        assert_eq!(
            format_rfc3339(&utc("2021-10-01T02:00:00+02:00")),
            "2021-10-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(&from_epoch_millis(1_633_046_400_250)),
            "2021-10-01T00:00:00.250Z"
        );
    }
}
