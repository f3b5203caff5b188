//! A Kinesis consumer for testing the local event source mapping and Lambda host: it fails
//! on records containing `poison`, and logs the sequence number of every record of the
//! batches it completes to `FLAKY_LOG` (as `partition-key sequence-number` lines).
//!
//! `FLAKY_MODE` says how it fails:
//! - `error` (default): the whole invocation fails;
//! - `partial`: the poison record is reported in `batchItemFailures`, the records before
//!   it are logged;
//! - `malformed`: like `partial`, but the `itemIdentifier` is a number, which Lambda takes
//!   as a failure of the whole batch;
//! - `hang`: the invocation never answers;
//! - `window`: with tumbling windows, counts the window's records in its state, fails
//!   the window's final invocation `FLAKY_FINAL_FAILURES` times (default 0, counted in
//!   `FLAKY_LOG.finals`), then logs `window N`, N the records the state counted.
//!
//! KPL aggregated records are de-aggregated, as a consumer must: the poison is a user
//! record, logged positions are `SEQ:SUB` for user records of an aggregate, and `partial`
//! reports the Kinesis record that holds the poison (Lambda's `itemIdentifier` is a
//! Kinesis sequence number), after logging the user records before it.
//!
//! With `FLAKY_REMAINING_LOG`, every invocation appends the milliseconds it had left when
//! it started (its deadline minus the time it read the event).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::kinesis::KinesisEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};
use streamlake_core::kpl::deaggregate;

fn append(path: &str, line: &str) -> std::io::Result<()> {
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(log, "{line}")
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    if std::env::var("FLAKY_MODE").is_ok_and(|m| m == "window") {
        return window(&event.payload);
    }
    let (payload, context) = (serde_json::from_value(event.payload)?, event.context);
    records(LambdaEvent { payload, context }).await
}

/// The `window` mode.
fn window(event: &Value) -> Result<Value, Error> {
    let seen = event["state"]["n"]
        .as_str()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if event["isFinalInvokeForWindow"] != json!(true) {
        let n = seen + event["Records"].as_array().map_or(0, |r| r.len() as u64);
        return Ok(json!({ "state": { "n": n.to_string() }, "batchItemFailures": [] }));
    }
    let log = std::env::var("FLAKY_LOG")?;
    let finals = format!("{log}.finals");
    let failed: u64 = std::fs::read_to_string(&finals)
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let failures: u64 = std::env::var("FLAKY_FINAL_FAILURES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if failed < failures {
        std::fs::write(&finals, (failed + 1).to_string())?;
        return Err("the final invocation fails".into());
    }
    append(&log, &format!("window {seen}"))?;
    Ok(json!({ "state": {}, "batchItemFailures": [] }))
}

async fn records(event: LambdaEvent<KinesisEvent>) -> Result<Value, Error> {
    if let Ok(path) = std::env::var("FLAKY_REMAINING_LOG") {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        let deadline = event.context.deadline;
        append(&path, &(deadline.saturating_sub(now)).to_string())?;
    }
    let mode = std::env::var("FLAKY_MODE").unwrap_or_else(|_| "error".into());
    // Every user record: (its Kinesis record's index, its position, partition key, data).
    let mut users = Vec::new();
    for (i, r) in event.payload.records.iter().enumerate() {
        let seq = r.kinesis.sequence_number.as_str();
        let key = r.kinesis.partition_key.as_str();
        match deaggregate(&r.kinesis.data.0) {
            Ok(inner) => users.extend(
                inner
                    .into_iter()
                    .zip(0..)
                    .map(|(u, sub)| (i, format!("{seq}:{sub}"), u.partition_key, u.data)),
            ),
            Err(_) => users.push((i, seq.to_owned(), key.to_owned(), r.kinesis.data.0.clone())),
        }
    }
    let poison = users
        .iter()
        .position(|(_, _, _, data)| data.windows(6).any(|w| w == b"poison"));
    let done = match (poison, mode.as_str()) {
        (Some(_), "hang") => loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        },
        (Some(u), "partial" | "malformed") => &users[..u],
        (Some(_), _) => return Err("poison record".into()),
        (None, _) => &users[..],
    };
    if let Ok(path) = std::env::var("FLAKY_LOG") {
        for (_, position, key, _) in done {
            append(&path, &format!("{key} {position}"))?;
        }
    }
    let records = &event.payload.records;
    let failures = match poison.map(|u| &records[users[u].0].kinesis.sequence_number) {
        None => json!([]),
        Some(_) if mode == "malformed" => json!([{ "itemIdentifier": 123 }]),
        Some(seq) => json!([{ "itemIdentifier": seq }]),
    };
    Ok(json!({ "batchItemFailures": failures }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handle)).await
}
