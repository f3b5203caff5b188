//! Errors of the local stack.

use std::path::PathBuf;

use thiserror::Error;

use crate::harness::emulator::EmulatorError;

/// Any error, boxed (an SDK error of any operation).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Failure to run the local stack.
#[derive(Debug, Error)]
pub enum StackError {
    /// The emulator could not be provided.
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    /// An AWS request failed.
    #[error("{operation} failed")]
    Aws {
        /// Request and target, e.g. `CreateStream streamlake-records`.
        operation: String,
        /// The SDK's error.
        source: BoxError,
    },
    /// A binary the stack runs is missing.
    #[error(
        "{} is missing: build the workspace first (`cargo build --workspace`), \
         or set STREAMLAKE_BIN_DIR to the folder of the streamlake binaries",
        .0.display()
    )]
    MissingBinary(PathBuf),
    /// Building the binaries failed.
    #[error("cargo build of {packages} failed ({status})")]
    Build {
        /// The packages built.
        packages: String,
        /// How cargo exited.
        status: std::process::ExitStatus,
    },
    /// A Firehose prefix template does not parse.
    #[error("Firehose {which}")]
    Prefix {
        /// Which prefix (`prefix`, `error prefix`).
        which: &'static str,
        /// The cause.
        source: streamlake_core::layout::TemplateError,
    },
    /// A delivery stream's description holds settings the local Firehose cannot play.
    #[error(transparent)]
    DeliveryStream(#[from] crate::emulated::firehose::settings::SettingsError),
    /// An endpoint is not a URI.
    #[error("endpoint {endpoint:?}")]
    Endpoint {
        /// The endpoint given.
        endpoint: String,
        /// The cause.
        source: axum::http::uri::InvalidUri,
    },
    /// An object of the lake cannot be read.
    #[error(transparent)]
    Read(#[from] streamlake_core::formats::ReadError),
    /// A local file or process operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A dataset file is invalid.
    #[error(transparent)]
    Dataset(#[from] streamlake_core::dataset::DatasetError),
    /// The dataset differs from the one stored with the lake in a way older objects
    /// cannot be read with.
    #[error(
        "the dataset cannot replace the one stored at {stored}:\n  {}\n\
         Start with a compatible dataset (optional columns may be added), another prefix, \
         or --allow-breaking-dataset to store it anyway",
        .changes.join("\n  ")
    )]
    BreakingDataset {
        /// The stored dataset's URL.
        stored: String,
        /// What breaks, one line each.
        changes: Vec<String>,
    },
    /// The lake could not be read or written.
    #[error("{context}")]
    Lake {
        /// What was being done.
        context: String,
        /// The cause.
        source: streamlake_core::lake::LakeError,
    },
    /// The lake's compaction log could not be read.
    #[error("reading the lake's compaction log")]
    CompactionLog(#[source] query::QueryError),
    /// The pipeline did not settle in time.
    #[error("{0}")]
    Timeout(String),
}

impl StackError {
    /// An AWS error from any SDK error type.
    pub fn aws(
        operation: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StackError::Aws {
            operation: operation.into(),
            source: Box::new(error),
        }
    }

    /// A context-labelled I/O error.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| StackError::Io { context, source }
    }
}

/// Displays an error with its causes, each said once (for logs, where no reporter walks
/// the chain).
pub use streamlake_core::report::Report;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_error_keeps_its_source_and_reports_the_chain() {
        let cause = std::io::Error::other("connection refused");
        let error = StackError::aws("GetRecords s/shard", cause);
        let source = std::error::Error::source(&error).expect("the source is kept");
        assert_eq!(source.to_string(), "connection refused");
        assert_eq!(
            Report(&error).to_string(),
            "GetRecords s/shard failed: connection refused"
        );
    }
}
