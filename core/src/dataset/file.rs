//! Reading a dataset file: TOML into the raw model (with spans), then every check that
//! needs more than one key, each refusal naming the line and key at fault.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::error::DatasetError;
use super::time_format::{TimeFormat, parse_offset};
use super::{
    Case, Column, ColumnType, Dataset, Derived, EventTime, Granularity, Read, Source,
    UnknownFields, dynamodb, record,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    prefix: Option<Spanned<String>>,
    #[serde(default)]
    partition: Option<Spanned<RawGranularity>>,
    #[serde(default)]
    unknown_fields: Option<RawUnknownFields>,
    #[serde(default)]
    partition_key: Option<Spanned<String>>,
    #[serde(default)]
    event_time: Option<Spanned<RawEventTime>>,
    #[serde(default)]
    fields: Option<Spanned<Vec<Spanned<RawField>>>>,
    #[serde(default)]
    dynamodb: Option<dynamodb::file::RawDynamoDb>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawGranularity {
    Day,
    Hour,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawUnknownFields {
    Drop,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventTime {
    field: Spanned<String>,
    #[serde(default)]
    format: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawType {
    String,
    Long,
    Double,
    Boolean,
    Timestamp,
    Date,
    Json,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawDerived {
    EventTime,
    EventDate,
    ArrivalTime,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawCase {
    Upper,
    Lower,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Spanned<String>,
    #[serde(default)]
    from: Option<Spanned<String>>,
    #[serde(default, rename = "type")]
    ty: Option<Spanned<RawType>>,
    #[serde(default)]
    derive: Option<Spanned<RawDerived>>,
    #[serde(default)]
    required: Option<Spanned<bool>>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    non_empty: Option<Spanned<bool>>,
    #[serde(default)]
    blank_as_null: Option<Spanned<bool>>,
    #[serde(default)]
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    case: Option<Spanned<RawCase>>,
    #[serde(default)]
    accept_strings: Option<Spanned<bool>>,
    #[serde(default)]
    format: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
}

impl From<RawType> for ColumnType {
    fn from(t: RawType) -> Self {
        match t {
            RawType::String => ColumnType::String,
            RawType::Long => ColumnType::Long,
            RawType::Double => ColumnType::Double,
            RawType::Boolean => ColumnType::Boolean,
            RawType::Timestamp => ColumnType::Timestamp,
            RawType::Date => ColumnType::Date,
            RawType::Json => ColumnType::Json,
        }
    }
}

impl From<RawDerived> for Derived {
    fn from(d: RawDerived) -> Self {
        match d {
            RawDerived::EventTime => Derived::EventTime,
            RawDerived::EventDate => Derived::EventDate,
            RawDerived::ArrivalTime => Derived::ArrivalTime,
        }
    }
}

/// Names of partition columns, which no data column may take.
const RESERVED: &[&str] = &["year", "month", "day", "hour"];

/// Reads and checks a dataset file.
pub(super) fn parse(text: &str, origin: &str) -> Result<Dataset, DatasetError> {
    let raw: RawDataset = toml::from_str(text).map_err(|e| DatasetError::toml(origin, text, &e))?;
    Checker { text, origin }.check(raw)
}

/// Checks a file's keys, and refuses with the line and key at fault.
pub(super) struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Checker<'_> {
    /// A refusal at `span` of the file.
    pub(super) fn error<T>(
        &self,
        span: std::ops::Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, DatasetError> {
        Err(DatasetError::at(self.origin, self.text, span, key, message))
    }

    fn check(&self, raw: RawDataset) -> Result<Dataset, DatasetError> {
        let _ = raw.description;
        let name = raw.name;
        if !is_table_name(name.get_ref()) {
            return self.error(
                name.span(),
                "name",
                format!(
                    "{:?} is not a table name: a lower-case letter, then lower-case letters, digits or _",
                    name.get_ref()
                ),
            );
        }
        let prefix = match raw.prefix {
            None => crate::layout::DATA_ROOT.to_owned(),
            Some(prefix) => {
                let p = prefix.get_ref();
                if p.is_empty()
                    || !p.ends_with('/')
                    || p.starts_with('/')
                    || p.contains("//")
                    || p.contains("!{")
                    || p.split('/')
                        .any(|s| s.starts_with('_') || s.starts_with('.'))
                {
                    return self.error(
                        prefix.span(),
                        "prefix",
                        format!(
                            "{p:?} is not a lake prefix: folders ending in /, such as \"data/\" (no leading /, no expressions, no folder starting with _ or .)"
                        ),
                    );
                }
                if p.starts_with(crate::layout::ERROR_ROOT) {
                    return self.error(
                        prefix.span(),
                        "prefix",
                        format!(
                            "{p:?} is inside the error folder {}",
                            crate::layout::ERROR_ROOT
                        ),
                    );
                }
                p.clone()
            }
        };
        let partition = match raw.partition.map(Spanned::into_inner) {
            None | Some(RawGranularity::Day) => Granularity::Day,
            Some(RawGranularity::Hour) => Granularity::Hour,
        };
        let unknown_fields = match raw.unknown_fields {
            None | Some(RawUnknownFields::Drop) => UnknownFields::Drop,
            Some(RawUnknownFields::Reject) => UnknownFields::Reject,
        };

        let fields = match raw.fields {
            Some(fields) if !fields.get_ref().is_empty() => fields.into_inner(),
            Some(fields) => {
                return self.error(fields.span(), "fields", "the dataset has no [[fields]]");
            }
            None => return self.error(0..0, "fields", "the dataset has no [[fields]]"),
        };
        let mut columns = Vec::with_capacity(fields.len());
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut spans = Vec::new();
        for (i, field) in fields.into_iter().enumerate() {
            let key = |k: &str| format!("fields[{i}].{k}");
            let span = field.span();
            let field = field.into_inner();
            let name = &field.name;
            if !is_column_name(name.get_ref()) {
                return self.error(
                    name.span(),
                    key("name"),
                    format!(
                        "{:?} is not a column name: a letter or _, then letters, digits or _",
                        name.get_ref()
                    ),
                );
            }
            let folded = name.get_ref().to_ascii_lowercase();
            if RESERVED.contains(&folded.as_str()) {
                return self.error(
                    name.span(),
                    key("name"),
                    format!("{:?} is a partition column's name", name.get_ref()),
                );
            }
            if let Some(&other) = names.get(&folded) {
                return self.error(
                    name.span(),
                    key("name"),
                    format!(
                        "duplicate column {:?} (fields[{other}] has that name; Glue and Athena ignore case)",
                        name.get_ref()
                    ),
                );
            }
            names.insert(folded, i);
            columns.push(self.column(field, &key)?);
            spans.push(span);
        }
        self.check_reads(&columns, &spans)?;

        let event_time = match raw.event_time {
            None => {
                if let Some((i, c)) = columns.iter().enumerate().find(|(_, c)| {
                    matches!(
                        c.source,
                        Source::Derived(Derived::EventTime | Derived::EventDate)
                    )
                }) {
                    return self.error(
                        spans[i].clone(),
                        format!("fields[{i}].derive"),
                        format!(
                            "column {:?} is derived from the event time, but the dataset has no [event_time]",
                            c.name
                        ),
                    );
                }
                None
            }
            Some(event) => Some(self.event_time(event, &mut columns)?),
        };

        let partition_key = match raw.partition_key {
            None => None,
            Some(key) => {
                let path = split_path(key.get_ref());
                let read = columns
                    .iter()
                    .filter_map(Column::read)
                    .any(|r| r.path == path);
                if !read {
                    return self.error(
                        key.span(),
                        "partition_key",
                        format!("{:?} is not an input field of the dataset", key.get_ref()),
                    );
                }
                Some(key.into_inner())
            }
        };

        let dynamodb = match raw.dynamodb {
            None => None,
            Some(section) => {
                let cx = dynamodb::file::Context {
                    columns: &columns,
                    event_time: event_time.is_some(),
                    stream_key: partition_key.as_deref(),
                };
                Some(dynamodb::file::check(self, section, &cx)?)
            }
        };

        let mut dataset = Dataset {
            name: name.into_inner(),
            prefix,
            partition,
            unknown_fields,
            event_time,
            partition_key,
            columns,
            dynamodb,
            text: self.text.to_owned(),
            plan: record::Plan::default(),
        };
        dataset.plan = record::Plan::new(&dataset);
        Ok(dataset)
    }

    fn column(&self, f: RawField, key: &dyn Fn(&str) -> String) -> Result<Column, DatasetError> {
        let name_span = f.name.span();
        let name = f.name.into_inner();
        if let Some(derive) = f.derive {
            let derived: Derived = derive.into_inner().into();
            if let Some(from) = &f.from {
                return self.error(
                    from.span(),
                    key("from"),
                    format!(
                        "column {name:?} is derived ({}) and cannot also be read",
                        derived.as_str()
                    ),
                );
            }
            if let Some(ty) = &f.ty
                && ColumnType::from(*ty.get_ref()) != derived.column_type()
            {
                return self.error(
                    ty.span(),
                    key("type"),
                    format!(
                        "{} is a {}, not a {}",
                        derived.as_str(),
                        derived.column_type(),
                        ColumnType::from(*ty.get_ref())
                    ),
                );
            }
            for (option, span) in [
                ("required", f.required.as_ref().map(Spanned::span)),
                ("non_empty", f.non_empty.as_ref().map(Spanned::span)),
                ("blank_as_null", f.blank_as_null.as_ref().map(Spanned::span)),
                ("pattern", f.pattern.as_ref().map(Spanned::span)),
                ("case", f.case.as_ref().map(Spanned::span)),
                (
                    "accept_strings",
                    f.accept_strings.as_ref().map(Spanned::span),
                ),
                ("format", f.format.as_ref().map(Spanned::span)),
                ("timezone", f.timezone.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    return self.error(
                        span,
                        key(option),
                        format!(
                            "column {name:?} is derived ({}): `{option}` applies to columns read from the input",
                            derived.as_str()
                        ),
                    );
                }
            }
            return Ok(Column {
                name,
                ty: derived.column_type(),
                source: Source::Derived(derived),
                comment: f.comment,
            });
        }
        let Some(ty) = f.ty else {
            return self.error(
                name_span,
                key("type"),
                format!(
                    "column {name:?} has no type: one of {}, or derive = \"event_time\" | \"event_date\" | \"arrival_time\"",
                    type_list()
                ),
            );
        };
        let ty_span = ty.span();
        let ty: ColumnType = ty.into_inner().into();
        let path = match &f.from {
            Some(from) => {
                let path = split_path(from.get_ref());
                if path.iter().any(String::is_empty) {
                    return self.error(
                        from.span(),
                        key("from"),
                        format!(
                            "{:?} is not an input key or dotted path (\"meta.ts\")",
                            from.get_ref()
                        ),
                    );
                }
                path
            }
            None => vec![name.clone()],
        };
        let string_only = |option: &str, span: Option<std::ops::Range<usize>>| match span {
            Some(span) if ty != ColumnType::String => self.error(
                span,
                key(option),
                format!("`{option}` applies to string columns; {name:?} is a {ty}"),
            ),
            _ => Ok(()),
        };
        string_only("non_empty", f.non_empty.as_ref().map(Spanned::span))?;
        string_only("blank_as_null", f.blank_as_null.as_ref().map(Spanned::span))?;
        string_only("pattern", f.pattern.as_ref().map(Spanned::span))?;
        string_only("case", f.case.as_ref().map(Spanned::span))?;
        let non_empty = f.non_empty.is_some_and(Spanned::into_inner);
        let blank_as_null = f.blank_as_null.as_ref().is_some_and(|b| *b.get_ref());
        if non_empty && blank_as_null {
            let span = f.blank_as_null.map(|b| b.span()).unwrap_or(ty_span.clone());
            return self.error(
                span,
                key("blank_as_null"),
                "`non_empty` refuses blank values; `blank_as_null` makes them null: choose one",
            );
        }
        let pattern = match f.pattern {
            None => None,
            Some(p) => Some(
                regex::Regex::new(&format!("^(?:{})$", p.get_ref())).or_else(|e| {
                    self.error(
                        p.span(),
                        key("pattern"),
                        format!("{:?} is not a regular expression: {e}", p.get_ref())
                            .replace('\n', " "),
                    )
                })?,
            ),
        };
        if let Some(accept) = &f.accept_strings
            && !matches!(
                ty,
                ColumnType::Long | ColumnType::Double | ColumnType::Boolean
            )
        {
            return self.error(
                accept.span(),
                key("accept_strings"),
                format!("`accept_strings` applies to long, double and boolean columns; {name:?} is a {ty}"),
            );
        }
        let is_time = matches!(ty, ColumnType::Timestamp | ColumnType::Date);
        for (option, span) in [
            ("format", f.format.as_ref().map(Spanned::span)),
            ("timezone", f.timezone.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span
                && !is_time
            {
                return self.error(
                    span,
                    key(option),
                    format!("`{option}` applies to timestamp and date columns; {name:?} is a {ty}"),
                );
            }
        }
        let format = self.time_format(
            f.format.as_ref(),
            f.timezone.as_ref(),
            &key("format"),
            &key("timezone"),
        )?;
        if ty == ColumnType::Date
            && let (TimeFormat::EpochSeconds | TimeFormat::EpochMillis, Some(span)) =
                (&format, f.format.as_ref().map(Spanned::span))
        {
            return self.error(
                span,
                key("format"),
                "a date column reads text (YYYY-MM-DD or a pattern), not epoch numbers",
            );
        }
        Ok(Column {
            name,
            ty,
            source: Source::Read(Read {
                path,
                required: f.required.is_some_and(Spanned::into_inner),
                non_empty,
                blank_as_null,
                pattern,
                case: f.case.map(|c| match c.into_inner() {
                    RawCase::Upper => Case::Upper,
                    RawCase::Lower => Case::Lower,
                }),
                accept_strings: f.accept_strings.is_none_or(Spanned::into_inner),
                format,
            }),
            comment: f.comment,
        })
    }

    /// A format and zone setting, checked.
    fn time_format(
        &self,
        format: Option<&Spanned<String>>,
        timezone: Option<&Spanned<String>>,
        format_key: &str,
        zone_key: &str,
    ) -> Result<TimeFormat, DatasetError> {
        let offset = match timezone {
            None => parse_offset("UTC").expect("UTC"),
            Some(zone) => parse_offset(zone.get_ref())
                .or_else(|message| self.error(zone.span(), zone_key, message))?,
        };
        match format {
            None => Ok(TimeFormat::Rfc3339(offset)),
            Some(format) => TimeFormat::parse(format.get_ref(), offset)
                .or_else(|message| self.error(format.span(), format_key, message)),
        }
    }

    /// Two columns reading one input, or one column reading inside another's value.
    fn check_reads(
        &self,
        columns: &[Column],
        spans: &[std::ops::Range<usize>],
    ) -> Result<(), DatasetError> {
        for (i, column) in columns.iter().enumerate() {
            let Some(read) = column.read() else { continue };
            for (j, other) in columns[..i].iter().enumerate() {
                let Some(earlier) = other.read() else {
                    continue;
                };
                let (short, long) = if earlier.path.len() <= read.path.len() {
                    (&earlier.path, &read.path)
                } else {
                    (&read.path, &earlier.path)
                };
                if long.starts_with(short) {
                    let message = if short.len() == long.len() {
                        format!(
                            "column {:?} reads {:?}, which column {:?} (fields[{j}]) reads already",
                            column.name,
                            read.dotted(),
                            other.name
                        )
                    } else {
                        format!(
                            "column {:?} reads {:?} and column {:?} (fields[{j}]) reads {:?}: one is inside the other",
                            column.name,
                            read.dotted(),
                            other.name,
                            earlier.dotted()
                        )
                    };
                    return self.error(spans[i].clone(), format!("fields[{i}].from"), message);
                }
            }
        }
        Ok(())
    }

    fn event_time(
        &self,
        event: Spanned<RawEventTime>,
        columns: &mut [Column],
    ) -> Result<EventTime, DatasetError> {
        let event = event.into_inner();
        let path = split_path(event.field.get_ref());
        let format = self.time_format(
            event.format.as_ref(),
            event.timezone.as_ref(),
            "event_time.format",
            "event_time.timezone",
        )?;
        let derived = columns
            .iter()
            .any(|c| matches!(c.source, Source::Derived(Derived::EventTime)));
        let reader = columns
            .iter_mut()
            .position(|c| c.read().is_some_and(|r| r.path == path));
        match reader {
            Some(i) => {
                let column = &mut columns[i];
                if !matches!(column.ty, ColumnType::Timestamp | ColumnType::Date) {
                    return self.error(
                        event.field.span(),
                        "event_time.field",
                        format!(
                            "{:?} is read by column {:?}, a {}: the event time is a timestamp or a date",
                            event.field.get_ref(),
                            column.name,
                            column.ty
                        ),
                    );
                }
                let Source::Read(read) = &mut column.source else {
                    unreachable!("found by its read")
                };
                let own = read.format != TimeFormat::default();
                if own && event.format.is_some() && read.format != format {
                    return self.error(
                        event.field.span(),
                        "event_time.format",
                        format!(
                            "column {:?} reads {:?} as {:?}, the event time as {:?}",
                            column.name,
                            event.field.get_ref(),
                            read.format.as_setting(),
                            format.as_setting()
                        ),
                    );
                }
                if !own {
                    read.format = format.clone();
                }
                // The event time decides the partition: a record without one cannot be placed.
                read.required = true;
                Ok(EventTime {
                    path,
                    format: read.format.clone(),
                })
            }
            None if derived => Ok(EventTime { path, format }),
            None => self.error(
                event.field.span(),
                "event_time.field",
                format!(
                    "{:?} is not a field: read it in a [[fields]] entry (name or from), or add a column with derive = \"event_time\"",
                    event.field.get_ref()
                ),
            ),
        }
    }
}

fn type_list() -> String {
    ColumnType::ALL.map(ColumnType::as_str).join(", ")
}

fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

/// `[a-z][a-z0-9_]*`.
fn is_table_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_column_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
