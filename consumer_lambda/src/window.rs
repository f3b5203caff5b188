//! Window summaries (`[[dynamodb.summaries]]`), carried by the event source mapping's
//! tumbling windows (`TumblingWindowInSeconds`).
//!
//! While a window is open, every invocation folds its valid records into the window's
//! state, which the mapping passes from one invocation to the next: per summary row (its
//! group, and with an event-time `window` the start of the record's minute, hour or day),
//! the counts, sums, lowest and highest values. The window's final invocation adds the
//! state to the summary tables, each row's update conditional on the window
//! (`window_end` older than this window's end), so a replayed window changes nothing;
//! lowest and highest values are then set where they improve the stored ones, which a
//! replay cannot change either. The rows are read first, so a retried final invocation
//! writes only what the failed one did not (see [`write_summary`]).
//!
//! Why the mapping's windows carry event-time windows too: a row then takes each batch's
//! contribution in one request per window instead of one per record, and a late record
//! is still added to the row of its own minute, in the window it arrives in.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use streamlake_core::dataset::Normalized;
use streamlake_core::dataset::dynamodb::{
    Aggregate, KeyValue, SummaryTable, WINDOW_END_ATTRIBUTE, text,
};
use streamlake_core::time::Rfc3339;
use tokio::time::Instant;

use crate::tables::Tables;
use crate::write::key_value;

/// What a window saw of one summary row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowAggregate {
    /// Attribute -> records counted.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Attribute -> sum.
    #[serde(default)]
    pub sums: BTreeMap<String, f64>,
    /// Attribute -> lowest value.
    #[serde(default)]
    pub mins: BTreeMap<String, f64>,
    /// Attribute -> highest value.
    #[serde(default)]
    pub maxs: BTreeMap<String, f64>,
}

/// The key of a summary row in the window state: its table (as in the dataset) and key
/// values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct StateKey(String, String, Option<String>);

/// The window state: the JSON of a row's key -> the JSON of its [`RowAggregate`] (the event
/// source mapping carries state as strings).
pub type WindowState = HashMap<String, String>;

/// Folds normalized records into the window state.
pub fn fold<'a>(
    state: &mut WindowState,
    tables: &Tables,
    records: impl IntoIterator<Item = &'a Normalized<'a>>,
) {
    let summaries = &tables.dynamodb().summaries;
    if summaries.is_empty() {
        return;
    }
    let mut decoded: BTreeMap<String, RowAggregate> = BTreeMap::new();
    for record in records {
        for summary in summaries {
            if summary
                .when
                .as_ref()
                .is_some_and(|w| !w.accepts(&record.values))
            {
                continue;
            }
            let Some(pk) = summary.partition_key.value(&record.values, record.time) else {
                continue;
            };
            let sk = match &summary.sort_key {
                None => None,
                Some(key) => match key.value(&record.values, record.time) {
                    Some(v) => Some(v.as_str().to_owned()),
                    None => continue,
                },
            };
            let key =
                serde_json::to_string(&StateKey(summary.name.clone(), pk.as_str().to_owned(), sk))
                    .expect("keys serialize");
            let aggregate = decoded.entry(key.clone()).or_insert_with(|| {
                state
                    .get(&key)
                    .and_then(|json| serde_json::from_str(json).ok())
                    .unwrap_or_default()
            });
            add(aggregate, summary, record);
        }
    }
    for (key, aggregate) in decoded {
        state.insert(
            key,
            serde_json::to_string(&aggregate).expect("aggregates serialize"),
        );
    }
}

/// Adds one record to its row's aggregate.
fn add(aggregate: &mut RowAggregate, summary: &SummaryTable, record: &Normalized<'_>) {
    if let Some(count) = &summary.count {
        *aggregate.counts.entry(count.clone()).or_default() += 1;
    }
    let pivot = summary.pivot.and_then(|p| text(&record.values[p.name]));
    if let Some(name) = &pivot {
        *aggregate
            .counts
            .entry(SummaryTable::pivot_count_attribute(name))
            .or_default() += 1;
    }
    for measure in &summary.measures {
        let Some(x) = number(&record.values[measure.column]) else {
            continue;
        };
        if measure.attribute.is_none() && pivot.is_none() {
            continue;
        }
        let attribute = measure.attribute_for(pivot.as_deref());
        match measure.aggregate {
            Aggregate::Sum => *aggregate.sums.entry(attribute).or_default() += x,
            Aggregate::Min => {
                let m = aggregate.mins.entry(attribute).or_insert(x);
                *m = m.min(x);
            }
            Aggregate::Max => {
                let m = aggregate.maxs.entry(attribute).or_insert(x);
                *m = m.max(x);
            }
        }
    }
}

fn number(value: &streamlake_core::dataset::Value<'_>) -> Option<f64> {
    match value {
        streamlake_core::dataset::Value::Long(n) => Some(*n as f64),
        streamlake_core::dataset::Value::Double(x) => Some(*x),
        _ => None,
    }
}

/// What the final invocation of a window did to the summary tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryOutcome {
    /// Rows the window was added to (or that already held it, from an earlier attempt).
    pub written: usize,
    /// Rows not written: their state keys (the invocation fails, and Lambda retries it).
    pub failed: Vec<String>,
    /// Rows left for the retry because the invocation's budget ran out.
    pub deferred: usize,
    /// State entries that name no summary row of the dataset (a state written by another
    /// version of the dataset): logged, and skipped, since no retry can write them.
    pub unreadable: usize,
}

/// A summary row of the window: where it goes and what the window adds to it.
struct Row {
    state_key: String,
    table: String,
    key: HashMap<String, AttributeValue>,
    aggregate: RowAggregate,
}

/// Adds a closed window's state to the summary tables, `concurrency` requests at a time,
/// starting no row after `deadline`.
///
/// The rows are read first (`BatchGetItem`, 100 keys a request), so a row that already
/// holds this window, from an earlier attempt of the same final invocation, costs no
/// write: a retried final invocation only writes what its predecessor did not, and so
/// finishes however many rows the window has. A new row takes one conditional
/// `UpdateItem`; an existing one two (the window's counts and sums, then the extremes that
/// improve on the stored ones).
pub async fn write_summary(
    client: &Client,
    tables: &Tables,
    window_end: DateTime<Utc>,
    state: &WindowState,
    concurrency: usize,
    deadline: Instant,
) -> SummaryOutcome {
    let end = Rfc3339(&window_end).to_string();
    let mut outcome = SummaryOutcome::default();
    let mut rows = Vec::with_capacity(state.len());
    for (state_key, json) in state {
        match row(tables, state_key, json) {
            Ok(row) => rows.push(row),
            Err(e) => {
                tracing::error!(key = state_key, "summary row unreadable, skipped: {e}");
                outcome.unreadable += 1;
            }
        }
    }
    let stored = match stored_rows(client, &rows, deadline).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!("reading the summary rows failed: {e}");
            outcome.failed.extend(rows.into_iter().map(|r| r.state_key));
            return outcome;
        }
    };
    let results: Vec<(String, Option<Result<(), String>>)> = futures::stream::iter(&rows)
        .map(|row| {
            let stored = stored.get(&(row.table.clone(), key_text(&row.key)));
            let end = end.as_str();
            async move {
                if Instant::now() >= deadline {
                    return (row.state_key.clone(), None);
                }
                let result = write_row(client, row, stored, end).await;
                (row.state_key.clone(), Some(result))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (key, result) in results {
        match result {
            Some(Ok(())) => outcome.written += 1,
            Some(Err(e)) => {
                tracing::error!(key, "summary write failed: {e}");
                outcome.failed.push(key);
            }
            None => outcome.deferred += 1,
        }
    }
    outcome
}

/// A state entry as the row it writes.
fn row(tables: &Tables, state_key: &str, json: &str) -> Result<Row, String> {
    let StateKey(table, pk, sk) =
        serde_json::from_str(state_key).map_err(|e| format!("bad state key {state_key:?}: {e}"))?;
    let summary = tables
        .dynamodb()
        .summaries
        .iter()
        .find(|s| s.name == table)
        .ok_or_else(|| format!("the dataset has no summary table {table:?}"))?;
    let aggregate: RowAggregate =
        serde_json::from_str(json).map_err(|e| format!("bad state for {state_key}: {e}"))?;
    let typed = |ty, v: String| match ty {
        streamlake_core::dataset::dynamodb::KeyType::String => KeyValue::String(v),
        streamlake_core::dataset::dynamodb::KeyType::Number => KeyValue::Number(v),
    };
    let mut key = HashMap::new();
    key.insert(
        summary.partition_key.attribute.clone(),
        key_value(&typed(summary.partition_key.ty, pk)),
    );
    if let (Some(k), Some(v)) = (&summary.sort_key, sk) {
        key.insert(k.attribute.clone(), key_value(&typed(k.ty, v)));
    }
    Ok(Row {
        state_key: state_key.to_owned(),
        table: tables.name(&summary.name),
        key,
        aggregate,
    })
}

/// A key as comparable text: its attributes, sorted, with their values.
fn key_text(key: &HashMap<String, AttributeValue>) -> String {
    let sorted: BTreeMap<&String, String> = key
        .iter()
        .map(|(name, value)| {
            let text = match value {
                AttributeValue::S(s) => format!("S:{s}"),
                AttributeValue::N(n) => format!("N:{n}"),
                other => format!("{other:?}"),
            };
            (name, text)
        })
        .collect();
    format!("{sorted:?}")
}

type Item = HashMap<String, AttributeValue>;

/// The rows as stored now, by (table, [`key_text`]): their window end and extremes.
async fn stored_rows(
    client: &Client,
    rows: &[Row],
    deadline: Instant,
) -> Result<HashMap<(String, String), Item>, String> {
    let mut stored = HashMap::new();
    let mut by_table: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        by_table.entry(&row.table).or_default().push(row);
    }
    for (table, rows) in by_table {
        for chunk in rows.chunks(100) {
            // The keys, the window's end, and every extreme these rows may improve.
            let mut names: Vec<&str> = vec![WINDOW_END_ATTRIBUTE];
            for row in chunk {
                names.extend(row.key.keys().map(String::as_str));
                names.extend(row.aggregate.mins.keys().map(String::as_str));
                names.extend(row.aggregate.maxs.keys().map(String::as_str));
            }
            names.sort_unstable();
            names.dedup();
            let mut keys = KeysAndAttributes::builder()
                .consistent_read(true)
                .projection_expression(
                    (0..names.len())
                        .map(|i| format!("#p{i}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            for (i, name) in names.iter().enumerate() {
                keys = keys.expression_attribute_names(format!("#p{i}"), *name);
            }
            for row in chunk {
                keys = keys.keys(row.key.clone());
            }
            let mut request = Some(keys.build().map_err(|e| e.to_string())?);
            let mut attempt = 0u32;
            while let Some(keys) = request.take() {
                let answer = client
                    .batch_get_item()
                    .request_items(table, keys)
                    .send()
                    .await
                    .map_err(|e| format!("BatchGetItem {table}: {}", DisplayErrorContext(e)))?;
                for item in answer
                    .responses
                    .unwrap_or_default()
                    .remove(table)
                    .unwrap_or_default()
                {
                    let key: HashMap<String, AttributeValue> = chunk[0]
                        .key
                        .keys()
                        .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                        .collect();
                    stored.insert((table.to_owned(), key_text(&key)), item);
                }
                // Keys DynamoDB did not get to (throttling, size) are asked again.
                request = answer
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(table)
                    .filter(|k| !k.keys().is_empty());
                if request.is_some() {
                    attempt += 1;
                    let delay = Duration::from_millis(25 << attempt.min(6));
                    if Instant::now() + delay >= deadline {
                        return Err(format!("BatchGetItem {table}: keys left unprocessed"));
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    Ok(stored)
}

/// Adds the window to one row, knowing what the row held before (`None`: no such row).
async fn write_row(
    client: &Client,
    row: &Row,
    stored: Option<&Item>,
    window_end: &str,
) -> Result<(), String> {
    let Some(item) = stored else {
        if create(client, row, window_end).await? {
            return Ok(());
        }
        // Created by another writer meanwhile: add to it as to any existing row.
        add_window(client, &row.table, &row.key, &row.aggregate, window_end).await?;
        return set_extremes(client, &row.table, &row.key, &extremes(&row.aggregate)).await;
    };
    let applied = item
        .get(WINDOW_END_ATTRIBUTE)
        .and_then(|w| w.as_s().ok())
        .is_some_and(|w| w.as_str() >= window_end);
    if !applied {
        add_window(client, &row.table, &row.key, &row.aggregate, window_end).await?;
    }
    let mut pending = extremes(&row.aggregate);
    pending.retain(|e| improves(item, e));
    set_extremes(client, &row.table, &row.key, &pending).await
}

/// A row's lowest and highest values: (attribute, value, whether lower is better).
fn extremes(aggregate: &RowAggregate) -> Vec<(&str, f64, bool)> {
    aggregate
        .mins
        .iter()
        .map(|(a, x)| (a.as_str(), *x, true))
        .chain(aggregate.maxs.iter().map(|(a, x)| (a.as_str(), *x, false)))
        .collect()
}

/// Whether an extreme improves on what `item` holds.
fn improves(item: &Item, (attribute, x, lower): &(&str, f64, bool)) -> bool {
    match item
        .get(*attribute)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<f64>().ok())
    {
        Some(stored) if *lower => *x < stored,
        Some(stored) => *x > stored,
        None => true,
    }
}

/// Writes a new row whole in one request: its counts, sums, extremes and window. Returns
/// false when the row exists after all.
async fn create(client: &Client, row: &Row, window_end: &str) -> Result<bool, String> {
    add_to_row(
        client,
        &row.table,
        &row.key,
        &row.aggregate,
        window_end,
        true,
    )
    .await
}

/// Adds the window's counts and sums, once: the condition refuses a window that is not
/// newer than the last one added.
async fn add_window(
    client: &Client,
    table: &str,
    key: &HashMap<String, AttributeValue>,
    aggregate: &RowAggregate,
    window_end: &str,
) -> Result<(), String> {
    // Refused: this window (or a later one) is already in the row.
    add_to_row(client, table, key, aggregate, window_end, false)
        .await
        .map(|_| ())
}

/// Adds the window's counts and sums to a row and sets its `window_end`, with its extremes
/// too when the row must be `new`; conditional on the row not holding this window (or, when
/// `new`, any window). Returns whether the condition held.
async fn add_to_row(
    client: &Client,
    table: &str,
    key: &HashMap<String, AttributeValue>,
    aggregate: &RowAggregate,
    window_end: &str,
    new: bool,
) -> Result<bool, String> {
    let mut request = client
        .update_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .expression_attribute_names("#w", WINDOW_END_ATTRIBUTE)
        .expression_attribute_values(":w", AttributeValue::S(window_end.to_owned()));
    let mut adds = Vec::new();
    let mut sets = vec!["#w = :w".to_owned()];
    for (i, (attribute, n)) in numbers(aggregate).enumerate() {
        adds.push(format!("#n{i} :n{i}"));
        request = request
            .expression_attribute_names(format!("#n{i}"), attribute)
            .expression_attribute_values(format!(":n{i}"), AttributeValue::N(n));
    }
    if new {
        for (i, (attribute, x, _)) in extremes(aggregate).into_iter().enumerate() {
            sets.push(format!("#e{i} = :e{i}"));
            request = request
                .expression_attribute_names(format!("#e{i}"), attribute)
                .expression_attribute_values(format!(":e{i}"), AttributeValue::N(x.to_string()));
        }
    }
    let mut update = format!("SET {}", sets.join(", "));
    if !adds.is_empty() {
        update = format!("ADD {} {update}", adds.join(", "));
    }
    let condition = if new {
        "attribute_not_exists(#w)"
    } else {
        "attribute_not_exists(#w) OR #w < :w"
    };
    let result = request
        .update_expression(update)
        .condition_expression(condition)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(DisplayErrorContext(e).to_string()),
    }
}

/// The window's counts and sums, as (attribute, number text).
fn numbers(aggregate: &RowAggregate) -> impl Iterator<Item = (&String, String)> {
    aggregate
        .counts
        .iter()
        .map(|(a, n)| (a, n.to_string()))
        .chain(aggregate.sums.iter().map(|(a, x)| (a, x.to_string())))
}

/// Sets the lowest and highest values where they improve on the stored ones. Setting
/// an extreme again changes nothing, so this needs no window condition.
async fn set_extremes(
    client: &Client,
    table: &str,
    key: &HashMap<String, AttributeValue>,
    pending: &[(&str, f64, bool)],
) -> Result<(), String> {
    let mut pending = pending.to_vec();
    for _ in 0..8 {
        if pending.is_empty() {
            return Ok(());
        }
        let mut sets = Vec::new();
        let mut conditions = Vec::new();
        let mut request = client
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, (attribute, x, lower)) in pending.iter().enumerate() {
            sets.push(format!("#e{i} = :e{i}"));
            let op = if *lower { ">" } else { "<" };
            conditions.push(format!("(attribute_not_exists(#e{i}) OR #e{i} {op} :e{i})"));
            request = request
                .expression_attribute_names(format!("#e{i}"), *attribute)
                .expression_attribute_values(format!(":e{i}"), AttributeValue::N(x.to_string()));
        }
        let result = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .send()
            .await;
        let item = match result {
            Ok(_) => return Ok(()),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(item) => item.clone(),
                        None => client
                            .get_item()
                            .table_name(table)
                            .set_key(Some(key.clone()))
                            .consistent_read(true)
                            .send()
                            .await
                            .map_err(|e| DisplayErrorContext(e).to_string())?
                            .item
                            .unwrap_or_default(),
                    }
                }
                _ => return Err(DisplayErrorContext(e).to_string()),
            },
        };
        // Keep the extremes that still improve on the stored ones.
        pending.retain(|e| improves(&item, e));
    }
    Err("the row's extremes kept changing under concurrent writers".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlake_core::dataset::Dataset;
    use streamlake_core::time::from_epoch_millis;

    #[test]
    fn folds_observations_across_invocations() {
        let tables = Tables::new(Dataset::weather(), "").unwrap();
        let records = [
            r#"{"date":"2021-10-01","stationid":"S1","datatype":"PRCP","value":2.5}"#,
            r#"{"date":"2021-10-01","stationid":"S1","datatype":"PRCP","value":1}"#,
            r#"{"date":"2021-10-02","stationid":"S1","datatype":"TMAX","value":20}"#,
        ];
        let normalized: Vec<_> = records
            .iter()
            .map(|r| {
                tables
                    .dataset()
                    .normalize(r.as_bytes(), from_epoch_millis(0))
                    .unwrap()
            })
            .collect();
        let mut state = WindowState::new();
        fold(&mut state, &tables, &normalized[..1]);
        fold(&mut state, &tables, &normalized[1..]);
        let day: RowAggregate =
            serde_json::from_str(&state[r#"["DailySummary","S1","2021-10-01"]"#]).unwrap();
        assert_eq!(day.counts["observations"], 2);
        assert_eq!(day.counts["PRCP_count"], 2);
        assert_eq!(day.sums["PRCP_sum"], 3.5);
        assert!(state.contains_key(r#"["DailySummary","S1","2021-10-02"]"#));
    }
}
