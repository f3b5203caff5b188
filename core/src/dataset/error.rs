//! A mistake in a dataset file, with the file, line and key at fault.

use std::ops::Range;

use thiserror::Error;

/// A dataset file that cannot be used: where, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct DatasetError {
    /// The file (as given to the reader).
    pub origin: String,
    /// Line of the mistake, from 1 (0 when the file could not be read).
    pub line: usize,
    /// Column of the mistake, from 1.
    pub column: usize,
    /// The key at fault (`fields[2].type`), or the file's top level.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// `file:line:column: `key`: message`, or `file: message` for a file that cannot be read.
impl std::fmt::Display for DatasetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.origin, self.message),
            line => write!(
                f,
                "{}:{line}:{}: `{}`: {}",
                self.origin, self.column, self.key, self.message
            ),
        }
    }
}

impl DatasetError {
    /// A dataset that is not where it was looked for.
    pub(crate) fn missing(origin: &str, message: impl Into<String>) -> Self {
        Self {
            origin: origin.to_owned(),
            line: 0,
            column: 0,
            key: String::new(),
            message: message.into(),
        }
    }

    /// A mistake at byte `span` of `text`.
    pub(crate) fn at(
        origin: &str,
        text: &str,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(text, span.start);
        Self {
            origin: origin.to_owned(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A file that could not be read.
    pub(crate) fn io(origin: &str, e: std::io::Error) -> Self {
        Self::missing(origin, format!("cannot be read: {e}"))
    }

    /// TOML's own error (syntax, an unknown key, a value of the wrong type), with the key
    /// of the line it points at.
    pub(crate) fn toml(origin: &str, text: &str, e: &toml::de::Error) -> Self {
        let span = e.span().unwrap_or(0..0);
        let line_text = text[..span.start.min(text.len())]
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .to_owned()
            + text[span.start.min(text.len())..]
                .split('\n')
                .next()
                .unwrap_or_default();
        let key = match line_text.split_once('=') {
            Some((key, _)) => key.trim().trim_matches('"').to_owned(),
            None => line_text.trim().to_owned(),
        };
        let message = e.message().trim().replace('\n', " ");
        Self::at(origin, text, span, key, message)
    }
}

/// The line and column (from 1) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
