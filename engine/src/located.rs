//! Parse errors located at `file:line`, shared by every text format, so an
//! operator sees the same `PATH:LINE: reason` shape whatever file is wrong.

use std::fmt;
use thiserror::Error;

/// One error of kind `K` (a format's own "what is wrong with this line"),
/// located.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}: {kind}")]
pub struct ParseError<K: std::error::Error> {
    pub file: String,
    pub line: usize,
    pub kind: K,
}

/// Every error found in one file, in line order (one per output line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseErrors<K: std::error::Error>(pub Vec<ParseError<K>>);

impl<K: std::error::Error> std::error::Error for ParseErrors<K> {}

impl<K: std::error::Error> fmt::Display for ParseErrors<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
