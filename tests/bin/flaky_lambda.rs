//! A Kinesis consumer for testing the local event source mapping: it fails on records
//! containing `poison`, and logs the sequence number of every record of the batches it
//! completes to `FLAKY_LOG` (as `partition-key sequence-number` lines).
//!
//! `FLAKY_MODE=error` (default) fails the whole invocation; `FLAKY_MODE=partial` reports
//! the poison record in `batchItemFailures` and logs the records before it.

use std::io::Write;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

async fn handle(event: LambdaEvent<KinesisEvent>) -> Result<KinesisEventResponse, Error> {
    let partial = std::env::var("FLAKY_MODE").is_ok_and(|m| m == "partial");
    let records = &event.payload.records;
    let poison = records
        .iter()
        .position(|r| r.kinesis.data.0.windows(6).any(|w| w == b"poison"));
    let done = match (poison, partial) {
        (Some(_), false) => return Err("poison record".into()),
        (Some(i), true) => &records[..i],
        (None, _) => &records[..],
    };
    if let Ok(path) = std::env::var("FLAKY_LOG") {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for r in done {
            writeln!(
                log,
                "{} {}",
                r.kinesis.partition_key, r.kinesis.sequence_number
            )?;
        }
    }
    let mut response = KinesisEventResponse::default();
    if let Some(i) = poison {
        response.add_failure(records[i].kinesis.sequence_number.clone());
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handle)).await
}
