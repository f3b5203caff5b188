//! The local stack: the whole streamlake pipeline on one machine, no AWS account.
//!
//! The source is laid out by role:
//!
//! - [`emulated`]: what AWS runs for us, played locally as AWS documents it: Firehose
//!   delivery from a Kinesis source ([`emulated::firehose`]), the Lambda event source
//!   mapping ([`emulated::esm`]), the Lambda service itself ([`emulated::lambda_host`]: the
//!   Lambda binaries as child processes behind a local Runtime API), and what those share
//!   (the shard reader, checkpoints, bounded shutdown). Each service starts from its
//!   configuration and returns a handle with `stats()` and `stop()`.
//! - [`clients`]: the SDK clients on the stack's endpoint, which the emulated services and
//!   the harness both use.
//! - [`harness`]: what runs them on one machine: the emulator process (moto, installed on
//!   first use), the binaries, the resources, the stack that composes it all
//!   ([`harness::stack`]) and the demo. Nothing in [`emulated`] uses it.
//! - [`faults`]: the calls that can be failed on purpose (`--inject`) and the errors AWS
//!   documents for each.
//! - [`http`]: HTTP servers the stack puts in front of the emulator (the fault proxy).
//! - [`dashboard`]: the live page `up` serves.
//! - [`positions`]: each partition key's latest position (`[dynamodb.position]`) and its
//!   SVG plot, for `status` and the dashboard.
//! - [`dataset_tool`]: `streamlake dataset check` and `infer`.
//! - [`status`]: a snapshot of a running stack (`streamlake status`), served by `up`;
//!   [`lake_index`]: the lake's partitions and totals it shows, kept without listing the
//!   whole bucket each time.
//! - [`serve`]: `up` once the stack is up: the status refreshed and served until stopped,
//!   and what `up` prints.
//! - [`cli`]: the `streamlake` command line's arguments and its small commands (`main`
//!   only parses and dispatches).
//! - [`tail`]: following a stream from the command line (`streamlake tail`).

pub mod cli;
pub mod clients;
pub mod dashboard;
pub mod dataset_tool;
pub mod emulated;
pub mod error;
pub mod faults;
pub mod harness;
pub mod http;
pub mod lake_index;
pub mod positions;
pub mod serve;
pub mod status;
pub mod tail;

pub use error::StackError;
pub use harness::stack::{ApiServer, FinalStats, LocalStack, StackConfig};
