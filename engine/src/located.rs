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

/// The 1-based line holding byte `offset` of `bytes` (for errors found by
/// byte offset, such as invalid UTF-8, which must still name `file:line`).
pub fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    let end = offset.min(bytes.len());
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// User data made safe for one log line, reply or error message: control
/// characters (a newline that would forge a log line, escape sequences that
/// would rewrite a terminal) are shown escaped, as Rust's `escape_debug`
/// does (`\n`, `\u{1b}`); everything else is kept as is.
pub fn escape_controls(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() })
            .collect()
    } else {
        text.to_string()
    }
}
