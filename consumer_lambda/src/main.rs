use consumer_lambda::{Clients, ConsumerConfig, handler};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ConsumerConfig::from_env()?;
    let shared = streamlake_core::aws::load_config().await;
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(&shared),
        s3: streamlake_core::lake::s3_client_from(&shared),
    };
    run(service_fn(|event| handler(&clients, &config, event))).await
}
