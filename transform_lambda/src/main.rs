use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::value::RawValue;
use streamlake_core::dataset::Dataset;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Read and checked once, at cold start: a missing or invalid dataset fails the start
    // (with the reason in the log), never a batch.
    let dataset = Dataset::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let dataset = &dataset;
    run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        transform_lambda::handler(dataset, event)
    }))
    .await
}
