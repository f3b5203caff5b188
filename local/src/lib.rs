//! The local stack: the whole streamlake pipeline on one machine, no AWS account.
//!
//! - [`emulator`]: moto in server mode (installed on first use) or the emulator named by
//!   `AWS_ENDPOINT_URL`;
//! - [`resources`]: the stream, bucket and tables, created when missing;
//! - [`lambda_host`]: the Lambda binaries run as child processes behind a local Lambda
//!   Runtime API;
//! - [`firehose`] and [`esm`]: the two pieces AWS runs for us, played locally: Firehose
//!   delivery from a Kinesis source, and the Lambda event source mapping;
//! - [`stack`] puts them together; [`demo`] runs sample data through it.

pub mod binaries;
pub mod checkpoint;
pub mod clients;
pub mod demo;
pub mod emulator;
pub mod error;
pub mod esm;
pub mod faults;
pub mod firehose;
pub mod kinesis_source;
pub mod lambda_host;
pub mod logs;
pub mod progress;
pub mod python;
pub mod resources;
pub mod shutdown;
pub mod stack;

pub use error::StackError;
pub use stack::{FinalStats, LocalStack, StackConfig};
