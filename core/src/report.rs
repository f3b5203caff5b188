//! An error with its causes, each said once, for a program's last words and for logs.
//!
//! Many errors show their cause in their own message (DataFusion's `External error: X`,
//! an SDK error's display context) and also return it as their `source()`; walking the
//! chain then prints `X` two or three times. [`Report`] writes `error: cause: cause`,
//! leaving out a cause whose message the text already holds.

use std::error::Error;
use std::fmt;

/// Displays an error and the causes its message does not already say.
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let message = cause.to_string();
            if !message.is_empty() && !said.contains(&message) {
                said.push_str(": ");
                said.push_str(&message);
            }
            source = cause.source();
        }
        f.write_str(&said)
    }
}

/// A program's exit code: its own on success; on failure the error, said once on standard
/// error (`error: …`), and failure.
pub fn exit<E>(result: Result<std::process::ExitCode, E>) -> std::process::ExitCode
where
    E: AsRef<dyn Error + Send + Sync + 'static>,
{
    result.unwrap_or_else(|e| {
        let error: &(dyn Error + 'static) = e.as_ref();
        eprintln!("error: {}", Report(error));
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapping(&'static str, Option<Box<Wrapping>>);

    impl fmt::Display for Wrapping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn says_each_cause_once() {
        let inner = Wrapping("line 3: expected a number", None);
        let external = Wrapping(
            "External error: line 3: expected a number",
            Some(Box::new(inner)),
        );
        let top = Wrapping("s3://b/k", Some(Box::new(external)));
        assert_eq!(
            Report(&top).to_string(),
            "s3://b/k: External error: line 3: expected a number"
        );
        let plain = Wrapping(
            "reading the log",
            Some(Box::new(Wrapping("connection refused", None))),
        );
        assert_eq!(
            Report(&plain).to_string(),
            "reading the log: connection refused"
        );
    }
}
