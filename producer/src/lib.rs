//! Writing records to a Kinesis data stream.
//!
//! [`Producer`] packs records into `PutRecords` requests within the API limits
//! ([`batch`]), sends them, and retries only the entries that failed, with exponential
//! backoff and jitter, until they succeed or the attempts run out. Every record ends up
//! counted: sent, or failed with its reason. [`redrive`] sends the records that failed
//! downstream through the stream again. [`aggregate`] packs records in the KPL aggregated
//! format.

pub mod aggregate;
pub mod batch;
pub mod input;
pub mod redrive;
pub mod send;

pub use batch::{Batcher, Entry, Limits};
pub use send::{FailedEntry, Producer, ProducerConfig, Summary};
