//! Writing a planned batch to DynamoDB: one `UpdateItem` per row, concurrently.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use streamlake_core::routing::{PARTITION_KEY, SORT_KEY, STATION_NAME_ATTRIBUTE};
use streamlake_core::seqnum;

use crate::plan::{BatchPlan, RowUpdate};

/// What happened to the writes of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows written.
    pub written: usize,
    /// Rows that could not be written: the lowest sequence number of each.
    pub failed: Vec<String>,
}

impl WriteOutcome {
    /// Sequence numbers to report in `batchItemFailures`: the lowest one is enough for the
    /// event source mapping, which retries everything from it.
    pub fn failed_sequence_numbers(&self) -> Vec<String> {
        seqnum::min(self.failed.iter().map(String::as_str))
            .map(|s| vec![s.to_owned()])
            .unwrap_or_default()
    }
}

/// Writes every row of `plan`, at most `concurrency` requests at a time.
pub async fn apply(client: &Client, plan: &BatchPlan, concurrency: usize) -> WriteOutcome {
    let mut results = futures::stream::iter(&plan.updates)
        .map(|row| async move { (row, update_row(client, row).await) })
        .buffer_unordered(concurrency.max(1));
    let mut outcome = WriteOutcome::default();
    while let Some((row, result)) = results.next().await {
        match result {
            Ok(()) => outcome.written += 1,
            Err(error) => {
                let lowest = seqnum::min(row.sequence_numbers.iter().map(String::as_str))
                    .expect("a planned row has at least one record");
                tracing::error!(
                    table = %row.key.table,
                    stationid = %row.key.stationid,
                    date = %row.key.date,
                    sequence_number = lowest,
                    %error,
                    "row write failed"
                );
                outcome.failed.push(lowest.to_owned());
            }
        }
    }
    outcome
}

/// One `UpdateItem` that sets every value of the row.
async fn update_row(client: &Client, row: &RowUpdate) -> Result<(), String> {
    let mut expression = Vec::with_capacity(row.values.len() + 1);
    let mut request = client
        .update_item()
        .table_name(&row.key.table)
        .key(PARTITION_KEY, AttributeValue::S(row.key.stationid.clone()))
        .key(SORT_KEY, AttributeValue::S(row.key.date.to_string()));
    for (i, (datatype, value)) in row.values.iter().enumerate() {
        expression.push(format!("#d{i} = :v{i}"));
        request = request
            .expression_attribute_names(format!("#d{i}"), datatype)
            .expression_attribute_values(format!(":v{i}"), AttributeValue::N(value.to_string()));
    }
    if let Some(name) = &row.station_name {
        expression.push("#name = :name".to_owned());
        request = request
            .expression_attribute_names("#name", STATION_NAME_ATTRIBUTE)
            .expression_attribute_values(":name", AttributeValue::S(name.clone()));
    }
    request
        .update_expression(format!("SET {}", expression.join(", ")))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| DisplayErrorContext(e).to_string())
}
