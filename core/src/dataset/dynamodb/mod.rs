//! The `[dynamodb]` section of a dataset file: the consumer's tables, their keys and
//! attributes, and the window summaries.
//!
//! ```toml
//! [[dynamodb.tables]]
//! name = "UnicornSensorData"
//! partition_key = "Name"
//! sort_key = "StatusTime"
//!
//! [[dynamodb.summaries]]
//! table = "UnicornSummary"
//! group_by = ["Name"]
//! window = "minute"
//! sum = ["Distance"]
//! ```
//!
//! Every name refers to a column of the dataset (`[[fields]]`), so a table follows the
//! lake's typed, checked values. [`file`] reads and checks the section; the checked model
//! is what the consumer, the local stack and the deploy follow.

pub mod expression;
pub(super) mod file;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::{ColumnType, Value};

/// Suffix of an attribute's version: `PRCP` is versioned by `PRCP_seq`.
pub const VERSION_SUFFIX: &str = "_seq";
/// The version attribute of a table versioned per row.
pub const ROW_VERSION_ATTRIBUTE: &str = "row_seq";
/// The attribute of a summary row holding the end of the last tumbling window added.
pub const WINDOW_END_ATTRIBUTE: &str = "window_end";

/// The attribute that holds the version of `attribute` in a table versioned per attribute.
pub fn version_attribute(attribute: &str) -> String {
    format!("{attribute}{VERSION_SUFFIX}")
}

/// The consumer's tables.
#[derive(Debug, Clone, Default)]
pub struct DynamoDb {
    /// Tables of records: one item per key, upserted.
    pub tables: Vec<ItemTable>,
    /// Tables of window summaries.
    pub summaries: Vec<SummaryTable>,
    /// Where each partition key's latest position is, for `status` and the dashboard.
    pub position: Option<Position>,
}

/// Where `status` and the dashboard find the latest position of each partition key of an
/// item table (`[dynamodb.position]`): the item with the greatest sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The item table.
    pub table: String,
    /// Its partition key's attribute: whose position it is.
    pub key: String,
    /// Its sort key's attribute, when it has one: the newest item is the latest position.
    pub order: Option<String>,
    /// The attribute holding the latitude, in degrees.
    pub latitude: String,
    /// The attribute holding the longitude, in degrees.
    pub longitude: String,
}

impl DynamoDb {
    /// Every table, item tables first: its name and key.
    pub fn table_keys(&self) -> impl Iterator<Item = (&str, &Key, Option<&Key>)> {
        self.tables
            .iter()
            .map(|t| (t.name.as_str(), &t.partition_key, t.sort_key.as_ref()))
            .chain(
                self.summaries
                    .iter()
                    .map(|s| (s.name.as_str(), &s.partition_key, s.sort_key.as_ref())),
            )
    }
}

/// The DynamoDB type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `S`.
    String,
    /// `N`.
    Number,
}

impl KeyType {
    /// The `AttributeType` of a key schema: `S` or `N`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyType::String => "S",
            KeyType::Number => "N",
        }
    }
}

/// Where a key attribute's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// A column (by index).
    Column(usize),
    /// The event time, RFC 3339 in UTC.
    EventTime,
    /// The event time's UTC day.
    EventDate,
    /// The start of the event time's window (a summary's `window`).
    WindowStart(Window),
}

/// A key attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The attribute's name.
    pub attribute: String,
    /// Its value.
    pub source: KeySource,
    /// Its type.
    pub ty: KeyType,
}

/// A key attribute's value in a record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyValue {
    /// Text.
    String(String),
    /// A number, as its decimal text.
    Number(String),
}

impl KeyValue {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        match self {
            KeyValue::String(s) | KeyValue::Number(s) => s,
        }
    }
}

impl Key {
    /// The key's value for a record's `values` and event `time`; `None` when the column
    /// is null (a key column is required, so only a value the dataset let through).
    pub fn value(&self, values: &[Value<'_>], time: DateTime<Utc>) -> Option<KeyValue> {
        let text = match self.source {
            KeySource::Column(i) => text(&values[i])?,
            KeySource::EventTime => crate::time::format_rfc3339(&time),
            KeySource::EventDate => time.date_naive().to_string(),
            KeySource::WindowStart(window) => crate::time::format_rfc3339(&window.start(time)),
        };
        Some(match self.ty {
            KeyType::String => KeyValue::String(text),
            KeyType::Number => KeyValue::Number(text),
        })
    }
}

/// A value as the text a key, a filter or an attribute name compares: strings as they are,
/// numbers and booleans as JSON writes them, times in RFC 3339 UTC, days as `YYYY-MM-DD`.
pub fn text(value: &Value<'_>) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::String(s) => s.to_string(),
        Value::Long(n) => n.to_string(),
        Value::Double(x) => x.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Timestamp(t) => crate::time::format_rfc3339(t),
        Value::Date(d) => d.to_string(),
        Value::Json(j) => (*j).to_owned(),
    })
}

/// Only records whose column holds one of these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The column.
    pub column: usize,
    /// The accepted values, as [`text`] writes them.
    pub values: Vec<String>,
}

impl Filter {
    /// Whether the record's `values` pass.
    pub fn accepts(&self, values: &[Value<'_>]) -> bool {
        text(&values[self.column]).is_some_and(|v| self.values.contains(&v))
    }
}

/// Attributes named by one column's value and holding another's (`PRCP = 5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pivot {
    /// The column whose value names the attribute.
    pub name: usize,
    /// The column whose value the attribute holds.
    pub value: usize,
}

/// An attribute written from a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// The column.
    pub column: usize,
}

/// How an item table keeps the newest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// Each attribute with its own version (`<attribute>_seq`): records that set
    /// different attributes of one row merge, whatever their order.
    Attribute,
    /// One version per row (`row_seq`): every record sets the whole row.
    Row,
}

/// What a null value does to its attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// The attribute keeps what it held.
    Keep,
    /// The attribute is removed.
    Remove,
}

/// How a `json` column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonAs {
    /// Its JSON text (`S`).
    String,
    /// A DynamoDB document: objects as `M`, arrays as `L`.
    Document,
}

/// A table of records: one item per key, the newest value of each attribute.
#[derive(Debug, Clone)]
pub struct ItemTable {
    /// The table's name.
    pub name: String,
    /// Its partition key.
    pub partition_key: Key,
    /// Its sort key.
    pub sort_key: Option<Key>,
    /// Only these records, when set.
    pub when: Option<Filter>,
    /// The attributes written from columns.
    pub attributes: Vec<Attribute>,
    /// The attribute named by a column's value.
    pub pivot: Option<Pivot>,
    /// How versions are kept.
    pub versions: Versions,
    /// What nulls do.
    pub nulls: Nulls,
    /// How `json` columns are stored.
    pub json: JsonAs,
}

/// The event-time window of a summary row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The UTC minute.
    Minute,
    /// The UTC hour.
    Hour,
    /// The UTC day.
    Day,
}

impl Window {
    /// The setting's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    /// The window's start for an instant.
    pub fn start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let length = match self {
            Window::Minute => TimeDelta::minutes(1),
            Window::Hour => TimeDelta::hours(1),
            Window::Day => TimeDelta::days(1),
        };
        t.duration_trunc(length).unwrap_or(t)
    }
}

/// An aggregate function of a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Sum.
    Sum,
    /// Lowest value.
    Min,
    /// Highest value.
    Max,
}

impl Aggregate {
    /// The setting's name, also the suffix of its attribute (`Distance_sum`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Aggregate::Sum => "sum",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }
}

/// One aggregate of a summary: a function of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    /// The function.
    pub aggregate: Aggregate,
    /// The column.
    pub column: usize,
    /// The attribute, `<column>_<function>`; `None` for the pivot's value column, whose
    /// attribute is `<pivot value>_<function>`.
    pub attribute: Option<String>,
}

impl Measure {
    /// The attribute this measure writes, for a record whose pivot names `pivot`.
    pub fn attribute_for(&self, pivot: Option<&str>) -> String {
        match (&self.attribute, pivot) {
            (Some(name), _) => name.clone(),
            (None, Some(pivot)) => format!("{pivot}_{}", self.aggregate.as_str()),
            (None, None) => unreachable!("a pivoted measure has a pivot value"),
        }
    }
}

/// A table of window summaries: counts, sums, lowest and highest values per group,
/// each tumbling window of the event source mapping added once.
#[derive(Debug, Clone)]
pub struct SummaryTable {
    /// The table's name.
    pub name: String,
    /// Its partition key: the first `group_by` column.
    pub partition_key: Key,
    /// Its sort key: the second `group_by` column, or the event-time window's start.
    pub sort_key: Option<Key>,
    /// Only these records, when set.
    pub when: Option<Filter>,
    /// Counts and measures per value of this column too (`PRCP_count`, `PRCP_sum`).
    pub pivot: Option<Pivot>,
    /// The attribute counting the group's records.
    pub count: Option<String>,
    /// The measures.
    pub measures: Vec<Measure>,
}

impl SummaryTable {
    /// The attribute counting the records of a pivot value: `<value>_count`.
    pub fn pivot_count_attribute(pivot: &str) -> String {
        format!("{pivot}_count")
    }
}

/// Whether `ty` can be a key of type [`KeyType`], and which.
pub(crate) fn key_type(ty: ColumnType) -> Option<KeyType> {
    match ty {
        ColumnType::String | ColumnType::Timestamp | ColumnType::Date => Some(KeyType::String),
        ColumnType::Long => Some(KeyType::Number),
        ColumnType::Double | ColumnType::Boolean | ColumnType::Json => None,
    }
}
