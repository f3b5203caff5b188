//! A Firehose transform that does nothing: every record back unchanged, on the generic
//! typed path (`KinesisFirehoseEvent` in, `KinesisFirehoseResponse` out). The baseline of
//! the transform's round trip through the Runtime API (`benches/transform_runtime.rs`).

use aws_lambda_events::event::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseResponse, KinesisFirehoseResponseRecord,
    KinesisFirehoseResponseRecordMetadata,
};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

async fn echo(event: LambdaEvent<KinesisFirehoseEvent>) -> Result<KinesisFirehoseResponse, Error> {
    let mut response = KinesisFirehoseResponse::default();
    response.records = event
        .payload
        .records
        .into_iter()
        .map(|r| {
            let mut out = KinesisFirehoseResponseRecord::default();
            out.record_id = r.record_id;
            out.result = Some("Ok".into());
            out.data = r.data;
            out.metadata = KinesisFirehoseResponseRecordMetadata::default();
            out
        })
        .collect();
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(echo)).await
}
