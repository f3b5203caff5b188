//! The compiled record plan: one pass over a raw record's JSON into a slot per input the
//! dataset reads, the checks of each column, and the NDJSON line written straight into
//! the caller's buffer.
//!
//! Keys are matched in the order the dataset reads them first (a record of the dataset's
//! own layout costs one comparison per key), then through a hash map, so a key out of
//! order costs no scan of a wide dataset's fields. Strings borrow from the record unless
//! they hold escapes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use thiserror::Error;

use super::{Case, ColumnType, Dataset, Derived, Read, Source, UnknownFields};
use crate::partition::PartitionKeys;
use crate::time::Rfc3339;

/// Why a record does not fit the dataset. The message names the field at fault.
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
    /// The JSON is not an object.
    #[error("record is not a JSON object")]
    NotAnObject,
    /// A field is missing, of the wrong type, or its value is unacceptable.
    #[error("field `{field}`: {reason}")]
    Field {
        /// The input key (or dotted path) at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A column's value in a normalized record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// No value.
    Null,
    /// Text (string columns).
    String(Cow<'a, str>),
    /// An integer.
    Long(i64),
    /// A finite float.
    Double(f64),
    /// A boolean.
    Boolean(bool),
    /// An instant, UTC.
    Timestamp(DateTime<Utc>),
    /// A day.
    Date(NaiveDate),
    /// JSON text, as it came.
    Json(&'a str),
}

/// A record read against its dataset: a value per column, and its partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized<'a> {
    /// The values, in the dataset's column order.
    pub values: Vec<Value<'a>>,
    /// The event time (the arrival time when the dataset has no event time).
    pub time: DateTime<Utc>,
    /// The partition.
    pub partition: PartitionKeys,
}

impl<'a> Normalized<'a> {
    /// The value of the column `name` (`None` when the dataset has no such column).
    pub fn get(&self, dataset: &Dataset, name: &str) -> Option<&Value<'a>> {
        let index = dataset.columns().iter().position(|c| c.name == name)?;
        self.values.get(index)
    }

    /// Appends the record as one NDJSON line (ending in `\n`), the columns in order.
    pub fn write_ndjson(&self, dataset: &Dataset, out: &mut Vec<u8>) {
        for (key, value) in dataset.plan.keys.iter().zip(&self.values) {
            out.extend_from_slice(key);
            write_value(value, out);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// The compiled plan of a dataset.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    root: Node,
    /// One per input read: the column it fills (or none: the event time alone).
    slots: Vec<Slot>,
    /// Per column: `{"name":` for the first, `,"name":` for the others.
    keys: Vec<Box<[u8]>>,
    /// Per column: where its value comes from.
    fills: Vec<Fill>,
    /// The slot holding the event time.
    event: Option<usize>,
    /// The slots in the order their presence is checked.
    presence: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Slot {
    label: Box<str>,
    ty: ColumnType,
    read: Read,
}

#[derive(Debug, Clone, Copy)]
enum Fill {
    Slot(usize),
    Derived(Derived),
}

/// The keys of one JSON object that the dataset reads.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Dotted path of this object, with a trailing `.` (empty at the top).
    path: Box<str>,
    entries: Vec<Entry>,
    index: HashMap<Box<str>, usize>,
    reject_unknown: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    name: Box<str>,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Slot { slot: usize, json: bool },
    Object(Node),
}

impl Node {
    fn insert(&mut self, path: &[String], slot: usize, json: bool) {
        let (first, rest) = path.split_first().expect("paths are not empty");
        let at = match self.index.get(first.as_str()) {
            Some(&at) => at,
            None => {
                let target = if rest.is_empty() {
                    Target::Slot { slot, json }
                } else {
                    Target::Object(Node {
                        path: format!("{}{first}.", self.path).into(),
                        reject_unknown: self.reject_unknown,
                        ..Node::default()
                    })
                };
                self.entries.push(Entry {
                    name: first.as_str().into(),
                    target,
                });
                self.index
                    .insert(first.as_str().into(), self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        if let Target::Object(node) = &mut self.entries[at].target
            && !rest.is_empty()
        {
            node.insert(rest, slot, json);
        }
    }

    /// The entry for `key`: the one after `next` when it matches, else by lookup.
    fn find(&self, key: &str, next: usize) -> Option<usize> {
        match self.entries.get(next) {
            Some(e) if &*e.name == key => Some(next),
            _ => self.index.get(key).copied(),
        }
    }
}

impl Plan {
    pub(super) fn new(dataset: &Dataset) -> Self {
        let mut plan = Plan {
            root: Node {
                reject_unknown: dataset.unknown_fields == UnknownFields::Reject,
                ..Node::default()
            },
            ..Plan::default()
        };
        for (i, column) in dataset.columns.iter().enumerate() {
            let open = if i == 0 { "{" } else { "," };
            let key = serde_json::to_string(&column.name).expect("a string serializes");
            plan.keys
                .push(format!("{open}{key}:").into_bytes().into_boxed_slice());
            let fill = match &column.source {
                Source::Derived(d) => Fill::Derived(*d),
                Source::Read(read) => {
                    let slot = plan.add_slot(read.clone(), column.ty);
                    if dataset
                        .event_time
                        .as_ref()
                        .is_some_and(|e| e.path == read.path)
                    {
                        plan.event = Some(slot);
                    }
                    Fill::Slot(slot)
                }
            };
            plan.fills.push(fill);
        }
        if let Some(event) = &dataset.event_time
            && plan.event.is_none()
        {
            // Read only to place the record (a column derives from it).
            plan.event = Some(plan.add_slot(Read::of_event_time(event), ColumnType::Timestamp));
        }
        plan.presence = plan.event.into_iter().collect();
        plan.presence
            .extend((0..plan.slots.len()).filter(|&s| Some(s) != plan.event));
        plan
    }

    fn add_slot(&mut self, read: Read, ty: ColumnType) -> usize {
        let slot = self.slots.len();
        self.root.insert(&read.path, slot, ty == ColumnType::Json);
        self.slots.push(Slot {
            label: read.dotted().into(),
            ty,
            read,
        });
        slot
    }

    pub(super) fn normalize<'a>(
        &self,
        dataset: &Dataset,
        data: &'a [u8],
        arrival: DateTime<Utc>,
    ) -> Result<Normalized<'a>, InvalidRecord> {
        let mut raw = vec![Raw::Absent; self.slots.len()];
        self.parse(data, &mut raw)?;
        // As a typed reading of the record would: wrong types in the order of the input
        // (during the parse), then missing fields (the event time first: it places the
        // record), then each column's checks in order, the event time's last.
        for &slot in &self.presence {
            if matches!(raw[slot], Raw::Absent) && self.slots[slot].read.required {
                return Err(self.slots[slot].fail("missing".into()));
            }
        }
        let mut slots = Vec::with_capacity(raw.len());
        for (slot, raw) in self.slots.iter().zip(raw) {
            slots.push(slot.check(raw)?);
        }
        let time = match self.event {
            Some(slot) => match slots[slot] {
                Value::Timestamp(t) => t,
                Value::Date(d) => d.and_time(NaiveTime::MIN).and_utc(),
                _ => unreachable!("the event slot is required and a time"),
            },
            None => arrival,
        };
        let values = self
            .fills
            .iter()
            .map(|fill| match *fill {
                Fill::Slot(slot) => std::mem::replace(&mut slots[slot], Value::Null),
                Fill::Derived(Derived::EventTime) => Value::Timestamp(time),
                Fill::Derived(Derived::EventDate) => Value::Date(time.date_naive()),
                Fill::Derived(Derived::ArrivalTime) => Value::Timestamp(arrival),
            })
            .collect();
        Ok(Normalized {
            values,
            time,
            partition: PartitionKeys::for_time_in(&time, dataset.partition),
        })
    }

    pub(super) fn normalize_into(
        &self,
        dataset: &Dataset,
        data: &[u8],
        arrival: DateTime<Utc>,
        out: &mut Vec<u8>,
    ) -> Result<PartitionKeys, InvalidRecord> {
        let record = self.normalize(dataset, data, arrival)?;
        record.write_ndjson(dataset, out);
        Ok(record.partition)
    }

    /// Reads the record's JSON into `raw`, a slot per read input.
    fn parse<'a>(&self, data: &'a [u8], raw: &mut [Raw<'a>]) -> Result<(), InvalidRecord> {
        let mut failure = None;
        let mut de = serde_json::Deserializer::from_slice(data);
        let seed = ObjectSeed {
            node: &self.root,
            slots: &self.slots,
            raw,
            failure: &mut failure,
        };
        match seed.deserialize(&mut de).and_then(|()| de.end()) {
            Ok(()) => Ok(()),
            Err(e) => Err(failure.unwrap_or_else(|| explain(data, &e))),
        }
    }
}

/// What a JSON parse error means for the record.
fn explain(data: &[u8], e: &serde_json::Error) -> InvalidRecord {
    if let Err(utf8) = std::str::from_utf8(data) {
        return InvalidRecord::NotUtf8 {
            offset: utf8.valid_up_to(),
        };
    }
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if e.is_data() || (first.is_some() && first != Some(&b'{') && e.is_syntax() && is_json(data)) {
        return InvalidRecord::NotAnObject;
    }
    InvalidRecord::NotJson(e.to_string())
}

fn is_json(data: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(data).is_ok()
}

/// A value as the record holds it, before its column's checks.
#[derive(Debug, Clone)]
enum Raw<'a> {
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Object,
    Array,
    Json(&'a RawValue),
}

impl Raw<'_> {
    /// The value as a message shows it.
    fn found(&self) -> String {
        match self {
            Raw::Str(s) => format!("the string {:?}", shorten(s)),
            Raw::Int(n) => format!("the number {n}"),
            Raw::UInt(n) => format!("the number {n}"),
            Raw::Float(x) => format!("the number {x}"),
            Raw::Bool(b) => b.to_string(),
            Raw::Object => "an object".into(),
            Raw::Array => "an array".into(),
            Raw::Json(_) | Raw::Absent | Raw::Null => "null".into(),
        }
    }
}

impl Slot {
    fn fail(&self, reason: String) -> InvalidRecord {
        InvalidRecord::Field {
            field: self.label.to_string(),
            reason,
        }
    }

    /// The checks a value's JSON type alone decides: null where a value is required,
    /// and a kind of value the column never reads.
    fn shape(&self, raw: &Raw<'_>) -> Result<(), InvalidRecord> {
        let read = &self.read;
        let expected = match (self.ty, raw) {
            (_, Raw::Null) if read.required => return Err(self.fail("must not be null".into())),
            (_, Raw::Null | Raw::Absent) | (ColumnType::Json, _) => return Ok(()),
            (ColumnType::String, Raw::Str(_)) => return Ok(()),
            (ColumnType::String, _) => "a string",
            (ColumnType::Long | ColumnType::Double, Raw::Int(_) | Raw::UInt(_) | Raw::Float(_)) => {
                return Ok(());
            }
            (ColumnType::Long | ColumnType::Double, Raw::Str(_)) if read.accept_strings => {
                return Ok(());
            }
            (ColumnType::Long, _) => "an integer",
            (ColumnType::Double, _) => "a number",
            (ColumnType::Boolean, Raw::Bool(_)) => return Ok(()),
            (ColumnType::Boolean, Raw::Str(_)) if read.accept_strings => return Ok(()),
            (ColumnType::Boolean, _) => "true or false",
            (ColumnType::Timestamp, Raw::Str(_)) => return Ok(()),
            (ColumnType::Timestamp, Raw::Int(_) | Raw::UInt(_) | Raw::Float(_))
                if read.format.is_epoch() =>
            {
                return Ok(());
            }
            (ColumnType::Timestamp, _) => {
                return Err(self.fail(format!(
                    "expected {}, found {}",
                    read.format.describe(),
                    raw.found()
                )));
            }
            (ColumnType::Date, Raw::Str(_)) => return Ok(()),
            (ColumnType::Date, _) => "a date (YYYY-MM-DD)",
        };
        Err(self.fail(format!("expected {expected}, found {}", raw.found())))
    }

    /// The column's checks and conversion of one value.
    fn check<'a>(&self, raw: Raw<'a>) -> Result<Value<'a>, InvalidRecord> {
        let fail = |reason: String| self.fail(reason);
        let read = &self.read;
        match raw {
            Raw::Absent if read.required => return Err(fail("missing".into())),
            Raw::Null if read.required => return Err(fail("must not be null".into())),
            Raw::Absent | Raw::Null => return Ok(Value::Null),
            _ => {}
        }
        let expected =
            |what: &str, raw: &Raw<'_>| fail(format!("expected {what}, found {}", raw.found()));
        let numeric_text = |raw: &Raw<'a>| match raw {
            Raw::Str(s) if read.accept_strings => Some(s.trim().to_owned()),
            _ => None,
        };
        match self.ty {
            ColumnType::String => {
                let Raw::Str(s) = raw else {
                    return Err(expected("a string", &raw));
                };
                if s.trim().is_empty() {
                    if read.non_empty {
                        return Err(fail("must not be empty".into()));
                    }
                    if read.blank_as_null {
                        return Ok(Value::Null);
                    }
                }
                if let Some(pattern) = &read.pattern
                    && !pattern.is_match(&s)
                {
                    let shown = pattern.as_str();
                    let shown = &shown[4..shown.len() - 2];
                    return Err(fail(format!(
                        "{:?} does not match the pattern {shown}",
                        shorten(&s)
                    )));
                }
                Ok(Value::String(match read.case {
                    Some(Case::Upper) if s.chars().any(char::is_lowercase) => {
                        Cow::Owned(s.to_uppercase())
                    }
                    Some(Case::Lower) if s.chars().any(char::is_uppercase) => {
                        Cow::Owned(s.to_lowercase())
                    }
                    _ => s,
                }))
            }
            ColumnType::Long => {
                let n = match &raw {
                    Raw::Int(n) => Some(*n),
                    Raw::UInt(n) => i64::try_from(*n).ok(),
                    Raw::Float(x) => integral(*x),
                    _ => match numeric_text(&raw) {
                        Some(s) => s.parse().ok().or_else(|| s.parse().ok().and_then(integral)),
                        None => return Err(expected("an integer", &raw)),
                    },
                };
                n.map(Value::Long)
                    .ok_or_else(|| fail(format!("{} is not an integer (64-bit)", raw.found())))
            }
            ColumnType::Double => {
                let x = match &raw {
                    Raw::Int(n) => *n as f64,
                    Raw::UInt(n) => *n as f64,
                    Raw::Float(x) => *x,
                    _ => match numeric_text(&raw).map(|s| s.parse::<f64>()) {
                        Some(Ok(x)) => x,
                        _ => return Err(expected("a number", &raw)),
                    },
                };
                if x.is_finite() {
                    Ok(Value::Double(x))
                } else {
                    Err(fail(format!("{} is not a finite number", raw.found())))
                }
            }
            ColumnType::Boolean => match &raw {
                Raw::Bool(b) => Ok(Value::Boolean(*b)),
                _ => match numeric_text(&raw) {
                    Some(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Boolean(true)),
                    Some(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Boolean(false)),
                    _ => Err(expected("true or false", &raw)),
                },
            },
            ColumnType::Timestamp => {
                let format = &read.format;
                let t = match &raw {
                    Raw::Int(n) if format.is_epoch() => format.from_integer(*n),
                    Raw::UInt(n) if format.is_epoch() => {
                        i64::try_from(*n).ok().and_then(|n| format.from_integer(n))
                    }
                    Raw::Float(x) if format.is_epoch() => format.from_float(*x),
                    Raw::Str(s) => format.parse_text(s),
                    _ => return Err(expected(&format.describe(), &raw)),
                };
                t.map(Value::Timestamp).ok_or_else(|| {
                    let shown = raw.found();
                    let shown = shown.strip_prefix("the string ").unwrap_or(&shown);
                    fail(format!("{shown} is not {}", format.describe()))
                })
            }
            ColumnType::Date => {
                let Raw::Str(s) = &raw else {
                    return Err(expected("a date (YYYY-MM-DD)", &raw));
                };
                let day = match &read.format {
                    super::TimeFormat::Pattern(_) => {
                        read.format.parse_text(s).map(|t| t.date_naive())
                    }
                    _ => crate::time::fixed_date(s.as_bytes()),
                };
                day.filter(|d| (0..=9999).contains(&d.year()))
                    .map(Value::Date)
                    .ok_or_else(|| fail(format!("{:?} is not a date (YYYY-MM-DD)", shorten(s))))
            }
            ColumnType::Json => match raw {
                Raw::Json(v) => Ok(Value::Json(v.get())),
                _ => Err(expected("a JSON value", &raw)),
            },
        }
    }
}

fn integral(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i64)
}

fn shorten(s: &str) -> Cow<'_, str> {
    if s.chars().count() > 60 {
        Cow::Owned(s.chars().take(60).collect::<String>() + "…")
    } else {
        Cow::Borrowed(s)
    }
}

fn write_value(value: &Value<'_>, out: &mut Vec<u8>) {
    // Writing plain strings and numbers into a Vec cannot fail.
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::String(s) => serde_json::to_writer(&mut *out, s).expect("a string serializes"),
        Value::Long(n) => serde_json::to_writer(&mut *out, n).expect("a number serializes"),
        Value::Double(x) => serde_json::to_writer(&mut *out, x).expect("a number serializes"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Timestamp(t) => {
            out.push(b'"');
            out.extend_from_slice(Rfc3339(t).write(&mut [0; 30]).as_bytes());
            out.push(b'"');
        }
        Value::Date(d) => {
            out.push(b'"');
            write_date(*d, out);
            out.push(b'"');
        }
        Value::Json(text) => serde_json::to_writer(&mut *out, text).expect("a string serializes"),
    }
}

/// `YYYY-MM-DD` (years 0..=9999).
fn write_date(d: NaiveDate, out: &mut Vec<u8>) {
    let (year, month, day) = (d.year().unsigned_abs(), d.month(), d.day());
    let digit = |v: u32| b'0' + (v % 10) as u8;
    out.extend_from_slice(&[
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
    ]);
}

impl Value<'_> {
    /// The text of a string or JSON value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Json(text) => Some(text),
            _ => None,
        }
    }

    /// A number (a long as a double).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Double(x) => Some(x),
            Value::Long(n) => Some(n as f64),
            _ => None,
        }
    }

    /// A day.
    pub fn as_date(&self) -> Option<NaiveDate> {
        match *self {
            Value::Date(d) => Some(d),
            _ => None,
        }
    }

    /// An instant.
    pub fn as_timestamp(&self) -> Option<DateTime<Utc>> {
        match *self {
            Value::Timestamp(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::String(s) => f.write_str(s),
            Value::Long(n) => write!(f, "{n}"),
            Value::Double(x) => write!(f, "{x}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Timestamp(t) => write!(f, "{}", Rfc3339(t)),
            Value::Date(d) => write!(f, "{d}"),
            Value::Json(text) => f.write_str(text),
        }
    }
}

// --- The one pass over the record's JSON -------------------------------------------------

/// Reads one object of the record into the slots of its node.
struct ObjectSeed<'r, 'a> {
    node: &'r Node,
    slots: &'r [Slot],
    raw: &'r mut [Raw<'a>],
    failure: &'r mut Option<InvalidRecord>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut next = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some(at) = self.node.find(&key, next) else {
                if self.node.reject_unknown {
                    *self.failure = Some(InvalidRecord::Field {
                        field: format!("{}{key}", self.node.path),
                        reason: "not a field of the dataset (it rejects unknown fields)".into(),
                    });
                    return Err(de::Error::custom("unknown field"));
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            next = at + 1;
            match &self.node.entries[at].target {
                &Target::Slot { slot, json } => {
                    if !matches!(self.raw[slot], Raw::Absent) {
                        *self.failure = Some(InvalidRecord::Field {
                            field: format!("{}{key}", self.node.path),
                            reason: "appears twice".into(),
                        });
                        return Err(de::Error::custom("duplicate field"));
                    }
                    let raw = if json {
                        match map.next_value::<&'de RawValue>()? {
                            v if v.get() == "null" => Raw::Null,
                            v => Raw::Json(v),
                        }
                    } else {
                        map.next_value_seed(ValueSeed)?
                    };
                    if let Err(e) = self.slots[slot].shape(&raw) {
                        *self.failure = Some(e);
                        return Err(de::Error::custom("wrong type"));
                    }
                    self.raw[slot] = raw;
                }
                Target::Object(node) => map.next_value_seed(NestedSeed(ObjectSeed {
                    node,
                    slots: self.slots,
                    raw: &mut *self.raw,
                    failure: &mut *self.failure,
                }))?,
            }
        }
        Ok(())
    }
}

/// A nested object the dataset reads into: an object, or null (its fields absent).
struct NestedSeed<'r, 'a>(ObjectSeed<'r, 'a>);

impl<'de> DeserializeSeed<'de> for NestedSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or null")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.visit_map(map)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_an_object(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_an_object(Raw::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_an_object(Raw::UInt(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_an_object(Raw::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_an_object(Raw::Str(Cow::Borrowed(v)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.not_an_object(Raw::Array)
    }
}

impl NestedSeed<'_, '_> {
    fn not_an_object<E: de::Error>(self, found: Raw<'_>) -> Result<(), E> {
        let path = self.0.node.path.trim_end_matches('.');
        *self.0.failure = Some(InvalidRecord::Field {
            field: path.to_owned(),
            reason: format!("expected an object, found {}", found.found()),
        });
        Err(E::custom("not an object"))
    }
}

/// A key, borrowed unless it holds escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Any JSON value, kept as the record holds it (objects and arrays only noted).
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Raw<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Raw::UInt(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Raw::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Raw::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Raw::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Raw::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Raw::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Object)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::Array)
    }
}
