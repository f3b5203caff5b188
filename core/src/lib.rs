//! Shared building blocks of streamlake.
//!
//! Everything that more than one component must agree on lives here, defined once:
//! the [`dataset`] file (a record's shape, its lake columns and its DynamoDB tables), the
//! [`partition`] keys taken from a record's own event time, the lake's key [`layout`]
//! (prefix templates and object names), the default resource [`names`], and
//! deterministic sample-data generators ([`generate`]).
//!
//! The crate is dependency-light on purpose: the transform Lambda links it. Reading the
//! lake from S3 is behind the `s3` feature.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "formats")]
pub mod columnar;
pub mod dataset;
#[cfg(feature = "formats")]
pub mod formats;
pub mod generate;
#[cfg(feature = "kpl")]
pub mod kpl;
#[cfg(feature = "s3")]
pub mod lake;
pub mod layout;
pub mod metrics;
pub mod names;
#[cfg(feature = "formats")]
pub mod ndjson;
pub mod partition;
pub mod report;
pub mod seqnum;
pub mod time;

pub use partition::PartitionKeys;
