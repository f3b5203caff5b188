use aws_config::BehaviorVersion;
use consumer_lambda::{ConsumerConfig, handler};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ConsumerConfig::from_env()?;
    let shared = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&shared);
    run(service_fn(|event| handler(&client, &config, event))).await
}
