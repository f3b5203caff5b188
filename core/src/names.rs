//! Default names of the resources, shared by the local stack, the CLIs and the deploy
//! template's tests.

/// Kinesis data stream the producer writes to.
pub const STREAM: &str = "streamlake-records";
/// S3 bucket of the lake.
pub const BUCKET: &str = "streamlake-lake";
/// Firehose delivery stream (also the first part of every delivered object's name).
pub const DELIVERY_STREAM: &str = "streamlake-delivery";
/// Firehose delivery stream with a Direct PUT source (producers call `PutRecordBatch`),
/// delivering into the same lake.
pub const DIRECT_DELIVERY_STREAM: &str = "streamlake-direct";
/// Transform Lambda function name.
pub const TRANSFORM_FUNCTION: &str = "streamlake-transform";
/// Consumer Lambda function name.
pub const CONSUMER_FUNCTION: &str = "streamlake-consumer";
/// SQS queue receiving the consumer's event source mapping failures (metadata only).
pub const CONSUMER_FAILURE_QUEUE: &str = "streamlake-consumer-failures";
/// Region used when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Account id the local stack uses in ARNs (moto's default account).
pub const LOCAL_ACCOUNT: &str = "123456789012";
/// Glue database of the lake (the template's `<NamePrefix>_lake`).
pub const GLUE_DATABASE: &str = "streamlake_lake";
