//! Weather observations: reading raw input records and normalizing them.
//!
//! Input is one JSON object per record, as the NOAA GHCND daily API returns them:
//!
//! ```json
//! {"date":"2021-10-01T00:00:00","stationid":"GHCND:US1MDAA0001","location":"RIDGE 1.0 N, MD US","datatype":"PRCP","value":5}
//! ```
//!
//! [`normalize`] turns it into an [`Observation`], whose fields follow
//! [`crate::schema::FIELDS`] exactly, or says why it cannot.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

use crate::partition::PartitionKeys;
use crate::time::{Rfc3339, parse_event_time};

/// A normalized weather observation: one row of the lake.
///
/// Strings borrow from the input record when they can, so normalizing a batch does not
/// copy every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation<'a> {
    /// GHCND station identifier.
    pub stationid: Cow<'a, str>,
    /// Station name and place (the input's `location`), when given.
    pub station_name: Option<Cow<'a, str>>,
    /// Measured quantity, upper case.
    pub datatype: Cow<'a, str>,
    /// Measured value, finite.
    pub value: f64,
    /// Event time, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub observed_at: DateTime<Utc>,
    /// UTC day of `observed_at`.
    pub date: NaiveDate,
    /// Arrival time in the stream, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub ingested_at: DateTime<Utc>,
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(Rfc3339(t).write(&mut [0; 30]))
}

impl Observation<'_> {
    /// The lake partition this observation belongs to.
    pub fn partition(&self) -> PartitionKeys {
        PartitionKeys::for_date(self.date)
    }

    /// Appends the observation as one NDJSON line (ending in `\n`) to `out`.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        // Serializing plain strings, numbers and dates into a Vec cannot fail.
        serde_json::to_writer(&mut *out, self).expect("observation serializes to JSON");
        out.push(b'\n');
    }

    /// A copy that owns all its strings.
    pub fn into_owned(self) -> Observation<'static> {
        Observation {
            stationid: Cow::Owned(self.stationid.into_owned()),
            station_name: self.station_name.map(|n| Cow::Owned(n.into_owned())),
            datatype: Cow::Owned(self.datatype.into_owned()),
            value: self.value,
            observed_at: self.observed_at,
            date: self.date,
            ingested_at: self.ingested_at,
        }
    }
}

/// Why a record is not a valid observation. The message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidRecord {
    /// The bytes are not UTF-8 text.
    #[error("record is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The text is not a JSON document.
    #[error("record is not valid JSON: {0}")]
    NotJson(String),
    /// The JSON does not have the shape of an observation (not an object, or a field missing).
    #[error("record does not match the observation schema: {0}")]
    Shape(String),
    /// A field is present but its value is unacceptable.
    #[error("field `{field}`: {reason}")]
    Field {
        /// Input field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A field has the wrong JSON type.
    #[error("field `{field}`: {reason}")]
    FieldType {
        /// Input field name, as found in the record.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The input record, borrowed from the raw bytes where possible.
#[derive(Deserialize)]
struct RawObservation<'a> {
    #[serde(borrow)]
    date: Cow<'a, str>,
    #[serde(borrow)]
    stationid: Cow<'a, str>,
    #[serde(borrow, default)]
    location: Option<Cow<'a, str>>,
    #[serde(borrow)]
    datatype: Cow<'a, str>,
    value: f64,
}

/// Reads one raw record and normalizes it.
///
/// `ingested_at` is the record's arrival time in the stream. Unknown input fields are
/// ignored; everything in [`crate::schema::FIELDS`] is validated.
pub fn normalize(
    data: &[u8],
    ingested_at: DateTime<Utc>,
) -> Result<Observation<'_>, InvalidRecord> {
    // Parsing the bytes checks the UTF-8 of every string it reads, and outside strings
    // JSON allows only ASCII, so a successful parse needs no separate UTF-8 pass. The fast
    // path does not track field paths either: only a failure is read again, to explain it.
    let raw: RawObservation<'_> = match serde_json::from_slice(data) {
        Ok(raw) => raw,
        Err(_) => return Err(explain(data)),
    };

    let stationid = non_blank("stationid", raw.stationid)?;
    let datatype = non_blank("datatype", raw.datatype)?;
    if !datatype
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(InvalidRecord::Field {
            field: "datatype",
            reason: format!("{datatype:?} is not a datatype code (letters, digits, _)"),
        });
    }
    let datatype = if datatype.bytes().any(|b| b.is_ascii_lowercase()) {
        Cow::Owned(datatype.to_ascii_uppercase())
    } else {
        datatype
    };
    if !raw.value.is_finite() {
        return Err(InvalidRecord::Field {
            field: "value",
            reason: format!("{} is not a finite number", raw.value),
        });
    }
    let observed_at = parse_event_time(&raw.date).ok_or_else(|| InvalidRecord::Field {
        field: "date",
        reason: format!(
            "{:?} is not a date (YYYY-MM-DD) or a timestamp (RFC 3339, or YYYY-MM-DDTHH:MM:SS in UTC)",
            raw.date
        ),
    })?;
    let station_name = raw.location.filter(|l| !l.trim().is_empty());

    Ok(Observation {
        stationid,
        station_name,
        datatype,
        value: raw.value,
        date: observed_at.date_naive(),
        observed_at,
        ingested_at,
    })
}

/// Reads a record that failed to parse again, slowly, to say why.
fn explain(data: &[u8]) -> InvalidRecord {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => {
            return InvalidRecord::NotUtf8 {
                offset: e.valid_up_to(),
            };
        }
    };
    if !text.trim_start().starts_with('{') {
        return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => InvalidRecord::Shape("expected a JSON object".into()),
            Err(e) => InvalidRecord::NotJson(e.to_string()),
        };
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, RawObservation<'_>>(&mut de) {
        Err(e) => classify(e),
        Ok(_) => match de.end() {
            Err(e) => InvalidRecord::NotJson(e.to_string()),
            Ok(()) => InvalidRecord::Shape("unreadable record".into()),
        },
    }
}

fn non_blank<'a>(field: &'static str, s: Cow<'a, str>) -> Result<Cow<'a, str>, InvalidRecord> {
    if s.trim().is_empty() {
        Err(InvalidRecord::Field {
            field,
            reason: "must not be empty".into(),
        })
    } else {
        Ok(s)
    }
}

fn classify(e: serde_path_to_error::Error<serde_json::Error>) -> InvalidRecord {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data if path != "." => InvalidRecord::FieldType {
            field: path,
            reason: inner.to_string(),
        },
        serde_json::error::Category::Data => InvalidRecord::Shape(inner.to_string()),
        _ if path != "." => InvalidRecord::NotJson(format!("{inner} (in field `{path}`)")),
        _ => InvalidRecord::NotJson(inner.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FIELDS;
    use crate::time::{format_rfc3339, from_epoch_millis};

    const SEED: &str = r#"{"date":"2021-10-01T00:00:00","stationid":"GHCND:US1MDAA0001","location":"RIDGE 1.0 N, MD US","datatype":"PRCP","value":5}"#;

    fn arrival() -> DateTime<Utc> {
        from_epoch_millis(1_633_100_000_000)
    }

    fn reason(input: &[u8]) -> String {
        normalize(input, arrival()).unwrap_err().to_string()
    }

    #[test]
    fn normalizes_the_seed_record() {
        let o = normalize(SEED.as_bytes(), arrival()).unwrap();
        assert_eq!(o.stationid, "GHCND:US1MDAA0001");
        assert_eq!(o.station_name.as_deref(), Some("RIDGE 1.0 N, MD US"));
        assert_eq!(o.datatype, "PRCP");
        assert_eq!(o.value, 5.0);
        assert_eq!(o.partition().to_string(), "year=2021/month=10/day=01");
        let mut line = Vec::new();
        o.write_ndjson(&mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"stationid\":\"GHCND:US1MDAA0001\",\"station_name\":\"RIDGE 1.0 N, MD US\",\"datatype\":\"PRCP\",\"value\":5.0,\"observed_at\":\"2021-10-01T00:00:00Z\",\"date\":\"2021-10-01\",\"ingested_at\":\"2021-10-01T14:53:20Z\"}\n"
        );
    }

    #[test]
    fn output_columns_follow_the_schema() {
        let o = normalize(SEED.as_bytes(), arrival()).unwrap();
        let v: serde_json::Value = serde_json::to_value(&o).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut schema: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        schema.sort_unstable();
        assert_eq!(sorted, schema);
    }

    #[test]
    fn converts_offsets_to_utc_and_moves_the_partition() {
        let input = br#"{"date":"2021-10-01T01:00:00+03:00","stationid":"S","datatype":"tmax","value":-3.5}"#;
        let o = normalize(input, arrival()).unwrap();
        assert_eq!(o.datatype, "TMAX");
        assert_eq!(o.date.to_string(), "2021-09-30");
        assert_eq!(format_rfc3339(&o.observed_at), "2021-09-30T22:00:00Z");
        assert_eq!(o.station_name, None);
    }

    #[test]
    fn reads_back_what_it_writes() {
        let o = normalize(SEED.as_bytes(), arrival()).unwrap();
        let mut line = Vec::new();
        o.write_ndjson(&mut line);
        let back: Observation<'_> = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn reasons_name_the_field() {
        assert!(reason(b"\xff\xfe").contains("UTF-8"));
        assert!(reason(b"{\"date\":").contains("not valid JSON"));
        assert!(reason(b"[1,2]").contains("schema"));
        assert!(
            reason(br#"{"date":"2021-10-01","datatype":"PRCP","value":1}"#).contains("`stationid`")
        );
        assert!(
            reason(br#"{"date":"2021-10-01","stationid":"S","datatype":"PRCP","value":"5"}"#)
                .starts_with("field `value`")
        );
        assert!(
            reason(br#"{"date":"2021-10-01","stationid":"S","datatype":"PRCP","value":null}"#)
                .starts_with("field `value`")
        );
        assert!(
            reason(br#"{"date":"2021-13-01","stationid":"S","datatype":"PRCP","value":1}"#)
                .starts_with("field `date`")
        );
        assert!(
            reason(br#"{"date":"2021-10-01","stationid":" ","datatype":"PRCP","value":1}"#)
                .starts_with("field `stationid`")
        );
        assert!(
            reason(br#"{"date":"2021-10-01","stationid":"S","datatype":"PR CP","value":1}"#)
                .starts_with("field `datatype`")
        );
        assert!(
            reason(br#"{"date":"2021-10-01","stationid":"S","datatype":"PRCP","value":1e999}"#)
                .contains("value")
        );
        assert!(
            reason(br#"{"date":"2021-10-01","stationid":"S","datatype":"PRCP","value":1} x"#)
                .contains("JSON")
        );
    }
}
