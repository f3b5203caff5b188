//! The AWS services the pipeline relies on, played locally as AWS documents them.

pub mod checkpoint;
pub mod esm;
pub mod firehose;
pub mod kinesis_source;
pub mod lambda_host;
pub mod log_metrics;
pub mod shard_poller;
pub mod shutdown;
