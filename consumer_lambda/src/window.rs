//! Tumbling-window aggregates per station and day (`TumblingWindowInSeconds`).
//!
//! While a window is open, every invocation folds its valid records into the window's
//! state (which the event source mapping passes from one invocation to the next); the
//! final invocation of the window adds the state to the `DailySummary` table, one
//! `UpdateItem` per station and day. The update is conditional on the window: a row takes
//! each window once, so a replayed window changes nothing.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use streamlake_core::Observation;
use streamlake_core::routing::{PARTITION_KEY, SORT_KEY};
use streamlake_core::time::Rfc3339;

/// Default name of the summary table.
pub const SUMMARY_TABLE: &str = streamlake_core::names::SUMMARY_TABLE;

/// What a window saw of one station and day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayAggregate {
    /// Observations.
    pub observations: u64,
    /// Observations per datatype.
    pub counts: BTreeMap<String, u64>,
    /// Sum of the values per datatype.
    pub sums: BTreeMap<String, f64>,
}

/// The window state: `stationid|date` -> JSON of its [`DayAggregate`] (the event source
/// mapping carries state as strings).
pub type WindowState = HashMap<String, String>;

/// Folds observations into the window state.
pub fn fold<'a>(
    state: &mut WindowState,
    observations: impl IntoIterator<Item = &'a Observation<'a>>,
) {
    let mut decoded: BTreeMap<String, DayAggregate> = BTreeMap::new();
    for o in observations {
        let key = format!("{}|{}", o.stationid, o.date);
        let aggregate = decoded.entry(key.clone()).or_insert_with(|| {
            state
                .get(&key)
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default()
        });
        aggregate.observations += 1;
        *aggregate.counts.entry(o.datatype.to_string()).or_default() += 1;
        *aggregate.sums.entry(o.datatype.to_string()).or_default() += o.value;
    }
    for (key, aggregate) in decoded {
        state.insert(
            key,
            serde_json::to_string(&aggregate).expect("aggregates serialize"),
        );
    }
}

/// Adds a closed window's state to the summary table. Returns the keys that could not
/// be written.
pub async fn write_summary(
    client: &Client,
    table: &str,
    window_end: DateTime<Utc>,
    state: &WindowState,
    concurrency: usize,
) -> Vec<String> {
    let end = Rfc3339(&window_end).to_string();
    futures::stream::iter(state)
        .map(|(key, json)| {
            let end = end.clone();
            async move {
                let result = add(client, table, key, json, &end).await;
                result.err().map(|e| {
                    tracing::error!(key, "summary write failed: {e}");
                    key.clone()
                })
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failed| async move { failed })
        .collect()
        .await
}

async fn add(
    client: &Client,
    table: &str,
    key: &str,
    json: &str,
    window_end: &str,
) -> Result<(), String> {
    let (stationid, date) = key
        .split_once('|')
        .ok_or_else(|| format!("bad state key {key:?}"))?;
    let aggregate: DayAggregate =
        serde_json::from_str(json).map_err(|e| format!("bad state for {key}: {e}"))?;
    let mut adds = vec!["observations :n".to_owned()];
    let mut request = client
        .update_item()
        .table_name(table)
        .key(PARTITION_KEY, AttributeValue::S(stationid.to_owned()))
        .key(SORT_KEY, AttributeValue::S(date.to_owned()))
        .expression_attribute_values(":n", AttributeValue::N(aggregate.observations.to_string()))
        .expression_attribute_values(":w", AttributeValue::S(window_end.to_owned()));
    for (i, (datatype, count)) in aggregate.counts.iter().enumerate() {
        let sum = aggregate.sums.get(datatype).copied().unwrap_or_default();
        adds.push(format!("#c{i} :c{i}, #s{i} :s{i}"));
        request = request
            .expression_attribute_names(format!("#c{i}"), format!("{datatype}_count"))
            .expression_attribute_names(format!("#s{i}"), format!("{datatype}_sum"))
            .expression_attribute_values(format!(":c{i}"), AttributeValue::N(count.to_string()))
            .expression_attribute_values(format!(":s{i}"), AttributeValue::N(sum.to_string()));
    }
    let result = request
        .update_expression(format!("ADD {} SET window_end = :w", adds.join(", ")))
        .condition_expression("attribute_not_exists(window_end) OR window_end < :w")
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // This window (or a later one) is already in the row.
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(DisplayErrorContext(e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlake_core::normalize;
    use streamlake_core::time::from_epoch_millis;

    #[test]
    fn folds_observations_across_invocations() {
        let records = [
            r#"{"date":"2021-10-01","stationid":"S1","datatype":"PRCP","value":2.5}"#,
            r#"{"date":"2021-10-01","stationid":"S1","datatype":"PRCP","value":1}"#,
            r#"{"date":"2021-10-02","stationid":"S1","datatype":"TMAX","value":20}"#,
        ];
        let observations: Vec<Observation<'_>> = records
            .iter()
            .map(|r| normalize(r.as_bytes(), from_epoch_millis(0)).unwrap())
            .collect();
        let mut state = WindowState::new();
        fold(&mut state, &observations[..1]);
        fold(&mut state, &observations[1..]);
        let day: DayAggregate = serde_json::from_str(&state["S1|2021-10-01"]).unwrap();
        assert_eq!(day.observations, 2);
        assert_eq!(day.counts["PRCP"], 2);
        assert_eq!(day.sums["PRCP"], 3.5);
        assert!(state.contains_key("S1|2021-10-02"));
    }
}
