//! Writing a planned batch to DynamoDB: one conditional `UpdateItem` per row,
//! concurrently, retried with backoff within the invocation's time budget.
//!
//! Every attribute is stored with the sortable sequence number of the record that set
//! it (`<attribute>_seq`, or one `row_seq` for a table whose records set the whole row),
//! and the update's condition refuses to replace a newer value with an older one. When the condition fails, the current item comes back with the
//! error, and only the attributes that are really newer are written again. So a replayed
//! batch, or records arriving out of order, leave the row holding the newest values.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use streamlake_core::dataset::dynamodb::expression::{max_versioned_attributes, versioned_update};
use streamlake_core::dataset::dynamodb::{KeyValue, Versions};
use streamlake_core::seqnum;
use tokio::time::Instant;

use crate::plan::{BatchPlan, RowUpdate, Value};

/// How the writes are made.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// At most this many requests in flight.
    pub concurrency: usize,
    /// No retry starts after this instant (the invocation's budget).
    pub deadline: Instant,
    /// First retry delay (doubles, with jitter).
    pub min_delay: Duration,
    /// Longest retry delay.
    pub max_delay: Duration,
}

impl WriteOptions {
    /// Options with the given concurrency and deadline, retries from 25 ms to 2 s.
    pub fn new(concurrency: usize, deadline: Instant) -> Self {
        Self {
            concurrency,
            deadline,
            min_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// What happened to the writes of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows written (at least one attribute).
    pub written: usize,
    /// Rows whose every attribute was already as new or newer in the table.
    pub stale: usize,
    /// `UpdateItem` requests sent, retries included.
    pub requests: usize,
    /// `GetItem` requests: the row read after a failed condition, from servers that do
    /// not return the old item with the failure.
    pub reads: usize,
    /// Retries after throttling or transient errors.
    pub retries: usize,
    /// Rows that could not be written: the lowest sequence number of each.
    pub failed: Vec<String>,
}

/// Rounds of "condition failed, write what is newer" before giving up on a row.
const MAX_CONDITION_ROUNDS: usize = 8;

/// The result of one row.
#[derive(Debug)]
enum RowResult {
    Written,
    Stale,
    Failed(String),
}

/// Writes every row of `plan`.
pub async fn apply(client: &Client, plan: &BatchPlan, options: WriteOptions) -> WriteOutcome {
    let mut results = futures::stream::iter(&plan.updates)
        .map(|row| async move { (row, write_row(client, row, &options).await) })
        .buffer_unordered(options.concurrency.max(1));
    let mut outcome = WriteOutcome::default();
    while let Some((row, (result, counts))) = results.next().await {
        outcome.requests += counts.requests;
        outcome.reads += counts.reads;
        outcome.retries += counts.retries;
        match result {
            RowResult::Written => outcome.written += 1,
            RowResult::Stale => outcome.stale += 1,
            RowResult::Failed(error) => {
                tracing::error!(
                    row = %row.key,
                    sequence_number = row.lowest_sequence_number(),
                    %error,
                    "row write failed"
                );
                outcome.failed.push(row.lowest_sequence_number().to_owned());
            }
        }
    }
    outcome
}

/// Why one update did not apply.
enum UpdateError {
    /// The condition failed: the item as it is now, when the server returned it.
    Condition(Option<HashMap<String, AttributeValue>>),
    /// Throttled, or a transient failure: worth retrying.
    Transient(String),
    /// Anything else.
    Fatal(String),
}

/// Requests one row took.
#[derive(Debug, Default)]
struct Counts {
    requests: usize,
    reads: usize,
    retries: usize,
}

/// Writes one row, in parts of at most the attributes one update expression holds.
async fn write_row(
    client: &Client,
    row: &RowUpdate,
    options: &WriteOptions,
) -> (RowResult, Counts) {
    let mut pending: Vec<&str> = row.attributes.keys().map(String::as_str).collect();
    let per_request = match row.versions {
        Versions::Attribute => max_versioned_attributes(),
        Versions::Row => pending.len().max(1),
    };
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(options.min_delay)
        .with_max_delay(options.max_delay)
        .without_max_times()
        .with_jitter()
        .build();
    let mut counts = Counts::default();
    let mut written = false;
    let mut rounds = 0;
    while !pending.is_empty() {
        let mut part: Vec<&str> = pending.iter().take(per_request).copied().collect();
        counts.requests += 1;
        let error = match update(client, row, &part).await {
            Ok(()) => {
                written = true;
                pending.retain(|a| !part.contains(a));
                continue;
            }
            // DynamoDB returns the item with the failure (`ReturnValuesOnConditionCheckFailure`);
            // servers that do not (dynalite, older DynamoDB-compatible ones) get a read.
            Err(UpdateError::Condition(None)) => {
                counts.reads += 1;
                match read_versions(client, row, &part).await {
                    Ok(current) => UpdateError::Condition(Some(current)),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        match error {
            UpdateError::Condition(current) => {
                // Nothing of this part was written: keep what is newer than stored.
                let current = current.unwrap_or_default();
                let stale: Vec<&str> = part
                    .iter()
                    .copied()
                    .filter(|a| !newer_than_stored(row, a, &current))
                    .collect();
                part.retain(|a| !stale.contains(a));
                pending.retain(|a| !stale.contains(a));
                rounds += 1;
                if rounds > MAX_CONDITION_ROUNDS {
                    let error = "the row kept changing under concurrent writers".to_owned();
                    return (RowResult::Failed(error), counts);
                }
            }
            UpdateError::Transient(error) => {
                let delay = delays.next().expect("unbounded backoff");
                if Instant::now() + delay >= options.deadline {
                    let error = format!("{error} (no time left to retry)");
                    return (RowResult::Failed(error), counts);
                }
                counts.retries += 1;
                tokio::time::sleep(delay).await;
            }
            UpdateError::Fatal(error) => return (RowResult::Failed(error), counts),
        }
    }
    let result = if written {
        RowResult::Written
    } else {
        RowResult::Stale
    };
    (result, counts)
}

/// The key attributes of a row.
fn key_of(row: &RowUpdate) -> HashMap<String, AttributeValue> {
    std::iter::once(&row.key.partition)
        .chain(&row.key.sort)
        .map(|(name, value)| (name.clone(), key_value(value)))
        .collect()
}

/// A key value as DynamoDB takes it.
pub fn key_value(value: &KeyValue) -> AttributeValue {
    match value {
        KeyValue::String(s) => AttributeValue::S(s.clone()),
        KeyValue::Number(n) => AttributeValue::N(n.clone()),
    }
}

/// The distinct version attributes of `attributes`, each with the newest sortable
/// sequence number among the attributes it versions.
fn versions_of(row: &RowUpdate, attributes: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for attribute in attributes {
        let version = row.version_of(attribute);
        let seq = seqnum::sortable(&row.attributes[*attribute].sequence_number);
        match out.iter_mut().find(|(v, _)| *v == version) {
            Some((_, newest)) if seq > *newest => *newest = seq,
            Some(_) => {}
            None => out.push((version, seq)),
        }
    }
    out
}

/// The stored versions of `attributes` of the row (a strongly consistent read, so it sees
/// the write that failed the condition).
async fn read_versions(
    client: &Client,
    row: &RowUpdate,
    attributes: &[&str],
) -> Result<HashMap<String, AttributeValue>, UpdateError> {
    let versions = versions_of(row, attributes);
    let mut request = client
        .get_item()
        .table_name(&row.key.table)
        .set_key(Some(key_of(row)))
        .consistent_read(true);
    let mut projection = Vec::with_capacity(versions.len());
    for (j, (version, _)) in versions.iter().enumerate() {
        projection.push(format!("#v{j}"));
        request = request.expression_attribute_names(format!("#v{j}"), version);
    }
    let item = request
        .projection_expression(projection.join(", "))
        .send()
        .await
        .map_err(|e| classify_error(&e, DisplayErrorContext(&e).to_string()))?
        .item;
    Ok(item.unwrap_or_default())
}

/// Whether the row's value of `attribute` is newer than the one in `item`.
fn newer_than_stored(
    row: &RowUpdate,
    attribute: &str,
    item: &HashMap<String, AttributeValue>,
) -> bool {
    let ours = seqnum::sortable(&row.attributes[attribute].sequence_number);
    match item
        .get(&row.version_of(attribute))
        .and_then(|v| v.as_s().ok())
    {
        Some(stored) => ours.as_str() > stored.as_str(),
        None => true,
    }
}

/// An attribute value as DynamoDB takes it (`None` for one that is removed).
fn attribute_value(value: &Value) -> Option<AttributeValue> {
    Some(match value {
        Value::Number(n) => AttributeValue::N(n.clone()),
        Value::Text(s) => AttributeValue::S(s.clone()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Document(json) => match serde_json::from_str(json) {
            Ok(v) => document(&v),
            Err(_) => AttributeValue::S(json.clone()),
        },
        Value::Removed => return None,
    })
}

/// A JSON value as a DynamoDB document.
fn document(v: &serde_json::Value) -> AttributeValue {
    match v {
        serde_json::Value::Null => AttributeValue::Null(true),
        serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
        serde_json::Value::Number(n) => AttributeValue::N(n.to_string()),
        serde_json::Value::String(s) => AttributeValue::S(s.clone()),
        serde_json::Value::Array(items) => AttributeValue::L(items.iter().map(document).collect()),
        serde_json::Value::Object(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), document(v))).collect())
        }
    }
}

/// One conditional `UpdateItem` setting `attributes` of the row.
async fn update(client: &Client, row: &RowUpdate, attributes: &[&str]) -> Result<(), UpdateError> {
    let values: Vec<Option<AttributeValue>> = attributes
        .iter()
        .map(|a| attribute_value(&row.attributes[*a].value))
        .collect();
    let versions = versions_of(row, attributes);
    let expressions = versioned_update(values.iter().map(Option::is_some), versions.len());
    let mut request = client
        .update_item()
        .table_name(&row.key.table)
        .set_key(Some(key_of(row)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (i, (attribute, value)) in attributes.iter().zip(values).enumerate() {
        request = request.expression_attribute_names(format!("#a{i}"), *attribute);
        if let Some(value) = value {
            request = request.expression_attribute_values(format!(":a{i}"), value);
        }
    }
    for (j, (version, seq)) in versions.into_iter().enumerate() {
        request = request
            .expression_attribute_names(format!("#v{j}"), version)
            .expression_attribute_values(format!(":v{j}"), AttributeValue::S(seq));
    }
    request
        .update_expression(expressions.update)
        .condition_expression(expressions.condition)
        .send()
        .await
        .map(|_| ())
        .map_err(classify)
}

fn classify(e: SdkError<UpdateItemError>) -> UpdateError {
    if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) = e.as_service_error() {
        return UpdateError::Condition(failed.item().cloned());
    }
    let message = DisplayErrorContext(&e).to_string();
    classify_error(&e, message)
}

/// Transient (throttled, a server error, no answer) or not.
fn classify_error<E: ProvideErrorMetadata>(e: &SdkError<E>, message: String) -> UpdateError {
    let transient = match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            s.raw().status().is_server_error()
                || matches!(
                    e.code(),
                    Some(
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                            | "LimitExceededException"
                            | "TransactionConflictException"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                    )
                )
        }
        _ => false,
    };
    if transient {
        UpdateError::Transient(message)
    } else {
        UpdateError::Fatal(message)
    }
}
