//! Errors of the local stack.

use thiserror::Error;

use crate::emulator::EmulatorError;

/// Failure to run the local stack.
#[derive(Debug, Error)]
pub enum StackError {
    /// The emulator could not be provided.
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    /// An AWS request failed.
    #[error("{operation} failed: {message}")]
    Aws {
        /// Request and target, e.g. `CreateStream streamlake-records`.
        operation: String,
        /// The SDK's error with its causes.
        message: String,
    },
    /// A Lambda binary could not be found, built or started.
    #[error("{0}")]
    Lambda(String),
    /// A local file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The pipeline did not settle in time.
    #[error("{0}")]
    Timeout(String),
}

impl StackError {
    /// An AWS error from any SDK error type, with its causes.
    pub fn aws(operation: impl Into<String>, error: impl std::error::Error) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        StackError::Aws {
            operation: operation.into(),
            message,
        }
    }

    /// A context-labelled I/O error.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| StackError::Io { context, source }
    }
}
