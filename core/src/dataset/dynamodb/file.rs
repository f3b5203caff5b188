//! Reading and checking the `[dynamodb]` section: every name against the dataset's
//! columns, key types, clashes between attributes, and DynamoDB's expression limits, each
//! refusal naming the line and key at fault.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::expression::{max_versioned_attributes, versioned_update};
use super::{
    Aggregate, Attribute, DynamoDb, Filter, ItemTable, JsonAs, Key, KeySource, KeyType, Measure,
    Nulls, Pivot, Position, ROW_VERSION_ATTRIBUTE, SummaryTable, VERSION_SUFFIX, Versions,
    WINDOW_END_ATTRIBUTE, Window, key_type,
};
use crate::dataset::error::DatasetError;
use crate::dataset::file::Checker;
use crate::dataset::{Column, ColumnType};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::dataset) struct RawDynamoDb {
    #[serde(default)]
    tables: Vec<Spanned<RawTable>>,
    #[serde(default)]
    summaries: Vec<Spanned<RawSummary>>,
    position: Option<Spanned<RawPosition>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPosition {
    table: Spanned<String>,
    latitude: Spanned<String>,
    longitude: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: Spanned<String>,
    partition_key: Spanned<String>,
    #[serde(default)]
    sort_key: Option<Spanned<String>>,
    #[serde(default)]
    when: Option<Spanned<RawWhen>>,
    #[serde(default)]
    attributes: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pivot: Option<Spanned<RawPivot>>,
    #[serde(default)]
    rename: Option<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    versions: Option<Spanned<RawVersions>>,
    #[serde(default)]
    nulls: Option<RawNulls>,
    #[serde(default)]
    json: Option<RawJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    field: Spanned<String>,
    #[serde(rename = "in")]
    values: Spanned<Vec<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPivot {
    name: Spanned<String>,
    value: Spanned<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawVersions {
    Attribute,
    Row,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawNulls {
    Keep,
    Remove,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawJson {
    String,
    Document,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawWindow {
    Tumbling,
    Minute,
    Hour,
    Day,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSummary {
    table: Spanned<String>,
    group_by: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    window: Option<Spanned<RawWindow>>,
    #[serde(default)]
    window_attribute: Option<Spanned<String>>,
    #[serde(default)]
    when: Option<Spanned<RawWhen>>,
    #[serde(default)]
    pivot: Option<Spanned<RawPivot>>,
    #[serde(default)]
    count: Option<Spanned<String>>,
    #[serde(default)]
    sum: Vec<Spanned<String>>,
    #[serde(default)]
    min: Vec<Spanned<String>>,
    #[serde(default)]
    max: Vec<Spanned<String>>,
}

/// What the section is checked against.
pub(in crate::dataset) struct Context<'a> {
    pub columns: &'a [Column],
    /// Whether the dataset has an `[event_time]`.
    pub event_time: bool,
    /// The input key the stream is partitioned by (`partition_key`).
    pub stream_key: Option<&'a str>,
}

/// Checks the section.
pub(in crate::dataset) fn check(
    c: &Checker<'_>,
    raw: RawDynamoDb,
    cx: &Context<'_>,
) -> Result<DynamoDb, DatasetError> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut unique = |name: &Spanned<String>, key: &str| {
        let n = name.get_ref();
        let valid = (3..=255).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !valid {
            return c.error(
                name.span(),
                key,
                format!("{n:?} is not a DynamoDB table name: 3 to 255 letters, digits, _, - or ."),
            );
        }
        if let Some(other) = names.insert(n.clone(), key.to_owned()) {
            return c.error(
                name.span(),
                key,
                format!("table {n:?} is named twice ({other} has that name)"),
            );
        }
        Ok(())
    };
    let mut dynamodb = DynamoDb::default();
    for (i, table) in raw.tables.into_iter().enumerate() {
        let key = |k: &str| format!("dynamodb.tables[{i}].{k}");
        let span = table.span();
        let table = table.into_inner();
        unique(&table.name, &key("name"))?;
        dynamodb.tables.push(item_table(c, cx, table, span, &key)?);
    }
    for (i, summary) in raw.summaries.into_iter().enumerate() {
        let key = |k: &str| format!("dynamodb.summaries[{i}].{k}");
        let span = summary.span();
        let summary = summary.into_inner();
        unique(&summary.table, &key("table"))?;
        dynamodb
            .summaries
            .push(summary_table(c, cx, summary, span, &key)?);
    }
    if let Some(raw) = raw.position {
        dynamodb.position = Some(position(c, cx, &dynamodb.tables, raw.into_inner())?);
    }
    Ok(dynamodb)
}

/// `[dynamodb.position]`: an item table, and two of its numeric attributes.
fn position(
    c: &Checker<'_>,
    cx: &Context<'_>,
    tables: &[ItemTable],
    raw: RawPosition,
) -> Result<Position, DatasetError> {
    let Some(table) = tables.iter().find(|t| t.name == *raw.table.get_ref()) else {
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        return c.error(
            raw.table.span(),
            "dynamodb.position.table",
            format!(
                "{:?} is not a table of [[dynamodb.tables]] (tables: {})",
                raw.table.get_ref(),
                names.join(", ")
            ),
        );
    };
    let attribute = |name: &Spanned<String>, key: &str| -> Result<String, DatasetError> {
        let i = column(c, cx, name, key)?;
        if !matches!(cx.columns[i].ty, ColumnType::Double | ColumnType::Long) {
            return c.error(
                name.span(),
                key,
                format!(
                    "column {:?} is a {}: a coordinate is a double or a long",
                    name.get_ref(),
                    cx.columns[i].ty
                ),
            );
        }
        match table.attributes.iter().find(|a| a.column == i) {
            Some(a) => Ok(a.name.clone()),
            None => c.error(
                name.span(),
                key,
                format!(
                    "column {:?} is not an attribute of table {:?}",
                    name.get_ref(),
                    table.name
                ),
            ),
        }
    };
    Ok(Position {
        table: table.name.clone(),
        key: table.partition_key.attribute.clone(),
        order: table.sort_key.as_ref().map(|k| k.attribute.clone()),
        latitude: attribute(&raw.latitude, "dynamodb.position.latitude")?,
        longitude: attribute(&raw.longitude, "dynamodb.position.longitude")?,
    })
}

/// A column by name, or a refusal listing the columns.
fn column(
    c: &Checker<'_>,
    cx: &Context<'_>,
    name: &Spanned<String>,
    key: &str,
) -> Result<usize, DatasetError> {
    cx.columns
        .iter()
        .position(|col| col.name == *name.get_ref())
        .map_or_else(
            || {
                let known: Vec<&str> = cx.columns.iter().map(|col| col.name.as_str()).collect();
                c.error(
                    name.span(),
                    key,
                    format!(
                        "{:?} is not a column of the dataset (columns: {})",
                        name.get_ref(),
                        known.join(", ")
                    ),
                )
            },
            Ok,
        )
}

/// A key attribute: a required column of a key type, or the event time or day.
fn key_of(
    c: &Checker<'_>,
    cx: &Context<'_>,
    name: &Spanned<String>,
    key: &str,
    partition: bool,
) -> Result<Key, DatasetError> {
    let n = name.get_ref();
    let Some(i) = cx.columns.iter().position(|col| col.name == *n) else {
        let derived = match n.as_str() {
            "event_time" => Some(KeySource::EventTime),
            "event_date" => Some(KeySource::EventDate),
            _ => None,
        };
        return match derived {
            Some(source) if cx.event_time && !partition => Ok(Key {
                attribute: n.clone(),
                source,
                ty: KeyType::String,
            }),
            _ => column(c, cx, name, key).map(|_| unreachable!("not a column")),
        };
    };
    let col = &cx.columns[i];
    if col.nullable() {
        return c.error(
            name.span(),
            key,
            format!(
                "column {n:?} is not required: a key must be in every record (required = true)"
            ),
        );
    }
    let ty = match key_type(col.ty) {
        Some(KeyType::Number) if col.ty != ColumnType::Long => None,
        Some(_) if partition && !matches!(col.ty, ColumnType::String | ColumnType::Long) => None,
        other => other,
    };
    let Some(ty) = ty else {
        let allowed = if partition {
            "string or long"
        } else {
            "string, long, timestamp or date"
        };
        return c.error(
            name.span(),
            key,
            format!("column {n:?} is a {}: a key here is a {allowed}", col.ty),
        );
    };
    Ok(Key {
        attribute: n.clone(),
        source: KeySource::Column(i),
        ty,
    })
}

fn filter(
    c: &Checker<'_>,
    cx: &Context<'_>,
    when: Spanned<RawWhen>,
    key: &dyn Fn(&str) -> String,
) -> Result<Filter, DatasetError> {
    let when = when.into_inner();
    let i = column(c, cx, &when.field, &key("when.field"))?;
    let ty = cx.columns[i].ty;
    if !matches!(
        ty,
        ColumnType::String | ColumnType::Long | ColumnType::Boolean
    ) {
        return c.error(
            when.field.span(),
            key("when.field"),
            format!(
                "`when` compares string, long or boolean columns; {:?} is a {ty}",
                when.field.get_ref()
            ),
        );
    }
    let span = when.values.span();
    let mut values = Vec::new();
    for v in when.values.into_inner() {
        values.push(match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return c.error(
                    span,
                    key("when.in"),
                    format!("{other} is not a string, an integer or a boolean"),
                );
            }
        });
    }
    if values.is_empty() {
        return c.error(
            span,
            key("when.in"),
            "`in` lists no value: no record would match",
        );
    }
    Ok(Filter { column: i, values })
}

fn pivot(
    c: &Checker<'_>,
    cx: &Context<'_>,
    pivot: Spanned<RawPivot>,
    key: &dyn Fn(&str) -> String,
) -> Result<Pivot, DatasetError> {
    let pivot = pivot.into_inner();
    let name = column(c, cx, &pivot.name, &key("pivot.name"))?;
    let col = &cx.columns[name];
    if col.ty != ColumnType::String || col.nullable() {
        return c.error(
            pivot.name.span(),
            key("pivot.name"),
            format!(
                "column {:?} names attributes: it must be a required string column",
                col.name
            ),
        );
    }
    let value = column(c, cx, &pivot.value, &key("pivot.value"))?;
    if value == name {
        return c.error(
            pivot.value.span(),
            key("pivot.value"),
            "the pivot's value is its name column",
        );
    }
    Ok(Pivot { name, value })
}

/// Refuses an attribute name that is a key's or a version's.
fn clash(
    c: &Checker<'_>,
    span: Range<usize>,
    key: &str,
    attribute: &str,
    keys: &[&Key],
    reserved: &[&str],
) -> Result<(), DatasetError> {
    if keys.iter().any(|k| k.attribute == attribute) {
        return c.error(
            span,
            key,
            format!("attribute {attribute:?} is a key of the table"),
        );
    }
    if attribute.ends_with(VERSION_SUFFIX) || reserved.contains(&attribute) {
        return c.error(
            span,
            key,
            format!(
                "attribute {attribute:?} clashes with the version attributes (`<attribute>{VERSION_SUFFIX}`, `{ROW_VERSION_ATTRIBUTE}`, `{WINDOW_END_ATTRIBUTE}`)"
            ),
        );
    }
    Ok(())
}

fn item_table(
    c: &Checker<'_>,
    cx: &Context<'_>,
    t: RawTable,
    span: Range<usize>,
    key: &dyn Fn(&str) -> String,
) -> Result<ItemTable, DatasetError> {
    let partition_key = key_of(c, cx, &t.partition_key, &key("partition_key"), true)?;
    let sort_key = match &t.sort_key {
        None => None,
        Some(s) => Some(key_of(c, cx, s, &key("sort_key"), false)?),
    };
    let keys: Vec<&Key> = std::iter::once(&partition_key).chain(&sort_key).collect();
    let key_column = |i: usize| keys.iter().any(|k| k.source == KeySource::Column(i));
    let when = t.when.map(|w| filter(c, cx, w, key)).transpose()?;
    let pivot = t.pivot.map(|p| pivot(c, cx, p, key)).transpose()?;
    let columns: Vec<(usize, Range<usize>)> = match t.attributes {
        Some(list) => {
            let mut out: Vec<(usize, Range<usize>)> = Vec::new();
            for (j, name) in list.iter().enumerate() {
                let k = key(&format!("attributes[{j}]"));
                let i = column(c, cx, name, &k)?;
                if key_column(i) {
                    return c.error(
                        name.span(),
                        k,
                        format!("column {:?} is a key of the table", name.get_ref()),
                    );
                }
                if out.iter().any(|(o, _)| *o == i) {
                    return c.error(
                        name.span(),
                        k,
                        format!("column {:?} is listed twice", name.get_ref()),
                    );
                }
                out.push((i, name.span()));
            }
            out
        }
        // Every column that is not a key nor the pivot's.
        None => (0..cx.columns.len())
            .filter(|&i| !key_column(i))
            .filter(|&i| pivot.is_none_or(|p| p.name != i && p.value != i))
            .map(|i| (i, span.clone()))
            .collect(),
    };
    let mut renames = t.rename.unwrap_or_default();
    let mut attributes = Vec::with_capacity(columns.len());
    for (i, col_span) in columns {
        let column = &cx.columns[i];
        let (name, name_span) = match renames.remove(&column.name) {
            Some(to) => (to.get_ref().clone(), to.span()),
            None => (column.name.clone(), col_span),
        };
        if name.is_empty() {
            return c.error(
                name_span,
                key("rename"),
                "an attribute name cannot be empty",
            );
        }
        if attributes.iter().any(|a: &Attribute| a.name == name) {
            return c.error(
                name_span,
                key("rename"),
                format!("two columns are written to attribute {name:?}"),
            );
        }
        clash(
            c,
            name_span,
            &key("attributes"),
            &name,
            &keys,
            &[ROW_VERSION_ATTRIBUTE],
        )?;
        attributes.push(Attribute { name, column: i });
    }
    if let Some((from, to)) = renames.into_iter().next() {
        return c.error(
            to.span(),
            key(&format!("rename.{from}")),
            format!("column {from:?} is not an attribute of the table"),
        );
    }
    if attributes.is_empty() && pivot.is_none() {
        return c.error(span, key("attributes"), "the table writes no attribute");
    }
    // Every record sets the whole row when no attribute can be null and none is pivoted.
    let whole_rows = pivot.is_none() && attributes.iter().all(|a| !cx.columns[a.column].nullable());
    let versions = match t.versions {
        None if whole_rows => Versions::Row,
        None => Versions::Attribute,
        Some(v) => match v.get_ref() {
            RawVersions::Attribute => Versions::Attribute,
            RawVersions::Row if whole_rows => Versions::Row,
            RawVersions::Row => {
                return c.error(
                    v.span(),
                    key("versions"),
                    "versions per row need every record to set the whole row: no pivot, and every attribute a required column",
                );
            }
        },
    };
    // The widest update: every attribute (a pivot adds one per name, and such rows are
    // written in parts of at most the attributes that fit).
    if pivot.is_none() {
        let n = attributes.len();
        let fits = match versions {
            Versions::Row => versioned_update(std::iter::repeat_n(true, n), 1).fit(),
            Versions::Attribute => n <= max_versioned_attributes(),
        };
        if !fits {
            return c.error(
                span,
                key("attributes"),
                format!(
                    "the table's widest update sets {n} attributes, more than one DynamoDB update expression holds (4 KB, 300 operators): at most {} with versions per attribute",
                    max_versioned_attributes()
                ),
            );
        }
    }
    Ok(ItemTable {
        name: t.name.into_inner(),
        partition_key,
        sort_key,
        when,
        attributes,
        pivot,
        versions,
        nulls: match t.nulls {
            None | Some(RawNulls::Keep) => Nulls::Keep,
            Some(RawNulls::Remove) => Nulls::Remove,
        },
        json: match t.json {
            None | Some(RawJson::String) => JsonAs::String,
            Some(RawJson::Document) => JsonAs::Document,
        },
    })
}

fn summary_table(
    c: &Checker<'_>,
    cx: &Context<'_>,
    s: RawSummary,
    span: Range<usize>,
    key: &dyn Fn(&str) -> String,
) -> Result<SummaryTable, DatasetError> {
    let group_span = s.group_by.span();
    let group_by = s.group_by.into_inner();
    let window = match s.window.as_ref().map(|w| *w.get_ref()) {
        None | Some(RawWindow::Tumbling) => None,
        Some(RawWindow::Minute) => Some(Window::Minute),
        Some(RawWindow::Hour) => Some(Window::Hour),
        Some(RawWindow::Day) => Some(Window::Day),
    };
    let most = if window.is_some() { 1 } else { 2 };
    if group_by.is_empty() || group_by.len() > most {
        let why = if window.is_some() {
            "one column: the window's start is the sort key"
        } else {
            "one or two columns: the table's partition and sort keys"
        };
        return c.error(
            group_span,
            key("group_by"),
            format!("`group_by` names {why}"),
        );
    }
    let partition_key = key_of(c, cx, &group_by[0], &key("group_by[0]"), true)?;
    let sort_key = match (group_by.get(1), window) {
        (Some(name), _) => Some(key_of(c, cx, name, &key("group_by[1]"), false)?),
        (None, Some(window)) => {
            let attribute = s
                .window_attribute
                .as_ref()
                .map_or("window_start", |a| a.get_ref().as_str())
                .to_owned();
            Some(Key {
                attribute,
                source: KeySource::WindowStart(window),
                ty: KeyType::String,
            })
        }
        (None, None) => None,
    };
    if let (Some(a), None) = (&s.window_attribute, window) {
        return c.error(
            a.span(),
            key("window_attribute"),
            "`window_attribute` names the key of an event-time window (window = \"minute\", \"hour\" or \"day\")",
        );
    }
    // The window's once-only condition is per row: a row must take records of one shard.
    let stream_column = cx.stream_key.and_then(|k| {
        let path: Vec<&str> = k.split('.').collect();
        cx.columns.iter().position(|col| {
            col.read()
                .is_some_and(|r| r.path.iter().map(String::as_str).eq(path.iter().copied()))
        })
    });
    let grouped_by_stream_key = stream_column.is_some_and(|i| {
        std::iter::once(&partition_key)
            .chain(&sort_key)
            .any(|k| k.source == KeySource::Column(i))
    });
    if !grouped_by_stream_key {
        return c.error(
            group_span,
            key("group_by"),
            "a summary groups by the column the stream is partitioned by (the dataset's `partition_key`): each window is added to a row once, which holds when a row's records all come from one shard",
        );
    }
    let keys: Vec<&Key> = std::iter::once(&partition_key).chain(&sort_key).collect();
    let when = s.when.map(|w| filter(c, cx, w, key)).transpose()?;
    let pivot = s.pivot.map(|p| pivot(c, cx, p, key)).transpose()?;
    let mut attributes: Vec<String> = Vec::new();
    let mut add = |name: String, span: Range<usize>, k: String| {
        clash(c, span.clone(), &k, &name, &keys, &[WINDOW_END_ATTRIBUTE])?;
        if attributes.contains(&name) {
            return c.error(span, k, format!("attribute {name:?} is written twice"));
        }
        attributes.push(name);
        Ok(())
    };
    let count = match s.count {
        None => None,
        Some(name) => {
            add(name.get_ref().clone(), name.span(), key("count"))?;
            Some(name.into_inner())
        }
    };
    let mut measures = Vec::new();
    for (aggregate, list, option) in [
        (Aggregate::Sum, &s.sum, "sum"),
        (Aggregate::Min, &s.min, "min"),
        (Aggregate::Max, &s.max, "max"),
    ] {
        for (j, name) in list.iter().enumerate() {
            let k = key(&format!("{option}[{j}]"));
            let i = column(c, cx, name, &k)?;
            let ty = cx.columns[i].ty;
            if !matches!(ty, ColumnType::Long | ColumnType::Double) {
                return c.error(
                    name.span(),
                    k,
                    format!(
                        "`{option}` takes long or double columns; {:?} is a {ty}",
                        name.get_ref()
                    ),
                );
            }
            let attribute = if pivot.is_some_and(|p| p.value == i) {
                None
            } else {
                let attribute = format!("{}_{}", name.get_ref(), aggregate.as_str());
                add(attribute.clone(), name.span(), k)?;
                Some(attribute)
            };
            measures.push(Measure {
                aggregate,
                column: i,
                attribute,
            });
        }
    }
    if count.is_none() && pivot.is_none() && measures.is_empty() {
        return c.error(
            span,
            key("count"),
            "the summary aggregates nothing: name a `count`, a `pivot`, or `sum`/`min`/`max` columns",
        );
    }
    Ok(SummaryTable {
        name: s.table.into_inner(),
        partition_key,
        sort_key,
        when,
        pivot,
        count,
        measures,
    })
}
