//! Helpers of the end-to-end tests: what the tables should hold, and what they hold.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use streamlake_core::dataset::{Dataset, InvalidRecord};
use streamlake_core::lake::Lake;
use streamlake_core::layout::DATA_ROOT;
use streamlake_core::time::from_epoch_millis;
use streamlake_core::{PartitionKeys, seqnum};

/// A DynamoDB row: (table, station, date) -> attribute -> value as text.
pub type Rows = BTreeMap<(String, String, String), BTreeMap<String, String>>;

/// The weather dataset's item tables (`examples/weather/dataset.toml`).
pub const WEATHER_TABLES: [&str; 2] = ["Precipitation", "Temperature"];

/// The weather dataset file, as a Lambda's `STREAMLAKE_DATASET` names it.
pub fn weather_dataset_env() -> (String, String) {
    (
        streamlake_core::dataset::DATASET_ENV.to_owned(),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/weather/dataset.toml"
        )
        .to_owned(),
    )
}

/// One record as the weather dataset reads it: the columns the tests check, its line and
/// its partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Weather {
    pub stationid: String,
    pub station_name: Option<String>,
    pub datatype: String,
    pub value: f64,
    pub observed_at: DateTime<Utc>,
    pub date: NaiveDate,
    partition: PartitionKeys,
    line: Vec<u8>,
}

impl Weather {
    /// The record's partition in the lake.
    pub fn partition(&self) -> PartitionKeys {
        self.partition
    }

    /// Appends the record's NDJSON line, as the transform writes it.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.line);
    }
}

/// `data` read by the weather dataset (`examples/weather/dataset.toml`), arrived at `arrival`.
pub fn weather(data: &[u8], arrival: DateTime<Utc>) -> Result<Weather, InvalidRecord> {
    static DATASET: LazyLock<Dataset> = LazyLock::new(Dataset::weather);
    let dataset = &*DATASET;
    let record = dataset.normalize(data, arrival)?;
    let mut line = Vec::new();
    record.write_ndjson(dataset, &mut line);
    let value = |column| record.get(dataset, column).expect("a weather column");
    let text = |column| value(column).as_str().map(str::to_owned);
    Ok(Weather {
        stationid: text("stationid").expect("required"),
        station_name: text("station_name"),
        datatype: text("datatype").expect("required"),
        value: value("value").as_f64().expect("required"),
        observed_at: value("observed_at").as_timestamp().expect("derived"),
        date: value("date").as_date().expect("derived"),
        partition: record.partition,
        line,
    })
}

/// The weather table a datatype goes to: the model of the dataset's `when` filters.
pub fn weather_table(datatype: &str) -> Option<&'static str> {
    match datatype {
        "PRCP" | "SNOW" => Some("Precipitation"),
        "TMAX" | "TMIN" => Some("Temperature"),
        _ => None,
    }
}

/// The weather rows the consumer should leave for these records (in stream order): per
/// row, every datatype's newest value and the station name.
pub fn expected_rows<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Rows {
    let mut rows = Rows::new();
    for data in records {
        let Ok(o) = weather(data, from_epoch_millis(0)) else {
            continue;
        };
        let Some(table) = weather_table(&o.datatype) else {
            continue;
        };
        let row = rows
            .entry((
                table.to_owned(),
                o.stationid.to_string(),
                o.date.to_string(),
            ))
            .or_default();
        row.insert(o.datatype.to_string(), o.value.to_string());
        if let Some(name) = o.station_name {
            row.insert("StationName".into(), name.to_string());
        }
    }
    rows
}

/// Every row of the weather tables, attributes as text (without the `_seq` bookkeeping unless
/// `with_sequences`).
pub async fn table_rows(
    client: &aws_sdk_dynamodb::Client,
    tables: &[&str],
    with_sequences: bool,
) -> Rows {
    let mut rows = Rows::new();
    for table in tables {
        let mut pages = client.scan().table_name(*table).into_paginator().send();
        while let Some(page) = pages.next().await {
            for item in page.expect("scan").items() {
                let text = |v: &AttributeValue| match v {
                    AttributeValue::S(s) => s.clone(),
                    AttributeValue::N(n) => n.clone(),
                    other => format!("{other:?}"),
                };
                let key = (
                    (*table).to_owned(),
                    text(&item["stationid"]),
                    text(&item["date"]),
                );
                let attributes = item
                    .iter()
                    .filter(|(k, _)| *k != "stationid" && *k != "date")
                    .filter(|(k, _)| with_sequences || !k.ends_with("_seq"))
                    .map(|(k, v)| (k.clone(), text(v)))
                    .collect();
                rows.insert(key, attributes);
            }
        }
    }
    rows
}

/// Every message of a queue, removed from it.
pub async fn drain_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let messages = received.messages();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push(m.body().unwrap_or_default().to_owned());
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}

/// Whether `a` is before `b` as sequence numbers.
pub fn before(a: &str, b: &str) -> bool {
    seqnum::compare(a, b).is_lt()
}

/// Writes `count` daily partitions from `first` on into a lake over a whole bucket, one
/// small object each (`old-N`), 16 at a time: a lake that was there before the stack.
pub async fn write_old_partitions(bucket: &Lake, first: NaiveDate, count: usize) {
    futures::stream::iter(0..count)
        .map(|i| async move {
            let day = PartitionKeys::for_date(first + chrono::Days::new(i as u64));
            let key = format!("{DATA_ROOT}{day}/old-{i}");
            bucket
                .write(&key, format!("{{\"n\":{i}}}\n").into_bytes())
                .await
        })
        .buffer_unordered(16)
        .for_each(|written| async move {
            written.unwrap();
        })
        .await;
}
