//! The format shared by `mosha`'s small operator logs (the fence log,
//! [`crate::fence_log`], and the group-change record,
//! [`crate::group_moves`]): a `#` comment line, then one record per line,
//! its fields split by white space, oldest first. Each log says what its
//! fields are and mean; this module only splits lines, names the line of
//! an error, renders, and reads the file with a size cap (a larger file is
//! not ours). Blank and `#` lines are skipped; any malformed line makes the
//! whole file unusable (a half-understood log would mislead an operator).

use std::path::Path;

/// A log that cannot be used: which line (from 1) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

impl ParseError {
    fn at(line: usize, reason: &str) -> ParseError {
        ParseError { line, reason: reason.into() }
    }
}

/// Parse `text`: each record line must have exactly `N` fields (else
/// `want`, which names them, is the error); `record` turns them into a
/// `T` or says which field is wrong (the error gets the line number).
pub fn parse<T, const N: usize>(
    text: &str,
    want: &str,
    mut record: impl FnMut([&str; N]) -> Result<T, &'static str>,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let fields: [&str; N] = words[..].try_into().map_err(|_| ParseError::at(i + 1, want))?;
        out.push(record(fields).map_err(|reason| ParseError::at(i + 1, reason))?);
    }
    Ok(out)
}

/// The file's text: `header` (a `#` line, without its newline), then one
/// line per record.
pub fn render(header: &str, records: impl IntoIterator<Item = String>) -> String {
    let mut out = format!("{header}\n");
    for line in records {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Read the log at `path` (at most `limit` bytes, a regular file only):
/// `Ok(None)` when there is none; errors name the file and line.
pub fn read<T>(
    path: &Path,
    limit: u64,
    parse: impl FnOnce(&str) -> Result<Vec<T>, ParseError>,
) -> Result<Option<Vec<T>>, String> {
    match crate::safe_read::read_regular(path, limit) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => parse(&String::from_utf8_lossy(&bytes))
            .map(Some)
            .map_err(|e| format!("{}:{e}", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Result<Vec<(u32, String)>, ParseError> {
        parse(text, "want `n word`", |[n, w]| Ok((n.parse().map_err(|_| "n")?, w.to_string())))
    }

    #[test]
    fn lines_split_skip_comments_and_name_the_bad_line() {
        assert_eq!(pairs("# h\n\n 1 a \n2 b\n"), Ok(vec![(1, "a".into()), (2, "b".into())]));
        assert_eq!(pairs("# h\n1 a\n1 a b\n"), Err(ParseError::at(3, "want `n word`")));
        assert_eq!(pairs("x a\n"), Err(ParseError::at(1, "n")));
        assert_eq!(render("# h", ["1 a".to_string()]), "# h\n1 a\n");
    }
}
