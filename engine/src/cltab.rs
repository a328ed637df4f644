//! The `cltab` file: an inittab with a resource-group column (spec §1).
//!
//! ```text
//! # comment (only when `#` is the very first character)
//! :::socket:/var/run/clinit/clinit.s
//! :::clstat:/var/run/clinit/clstat
//! group:tag:levels:mode:command (the command may contain colons)
//! ```
//!
//! Parsing is all-or-nothing and reports *every* problem with `file:line`, so
//! an operator fixes a bad table in one pass. A daemon keeps running on its
//! last good table when a new one does not parse.
//!
//! Every line that parses can run, and every byte is accounted for (issue 10,
//! items 2 and 10). Refused, with `file:line`:
//!
//! * a **0-byte file**: far likelier a truncation (`: > cltab`, a full disk,
//!   a half-done copy) than an intent, and taking it as "nothing configured"
//!   would stop every service. An intentionally empty table says so with a
//!   comment line;
//! * a **NUL** byte, **invalid UTF-8** ([`Cltab::parse_bytes`]), a byte-order
//!   mark anywhere but at the very start (a leading BOM, as some Windows
//!   editors write, is stripped), and a **carriage return** other than the
//!   `\r` of a `\r\n` line end (CR-only line endings would glue the file into
//!   one line);
//! * **control characters** in the group, tag, levels and mode fields, so
//!   names survive clstat, logs and the socket unchanged (a command may hold
//!   them: the shell gets it as one argument, and logs show it escaped);
//! * a **command longer than [`MAX_COMMAND_LEN`]**, Linux's limit on one
//!   argument string (`MAX_ARG_STRLEN`): the kernel would refuse every spawn.
//!
//! Per-entry options (working directory, user, environment, umask,
//! resource limits, readiness) sit in an optional `:::entry:TAG ...`
//! directive that the original parser stores and ignores; see
//! [`crate::options`].
//!
//! These rules hold for comment lines too, except the control-character and
//! length rules, which concern the fields of entries.

use crate::options::{BoxedOptions, EntryOptions, OptionError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use thiserror::Error;

/// Longest command accepted, in bytes: Linux's `MAX_ARG_STRLEN` (32 pages
/// of 4 KiB = 131,072 bytes, including the terminating NUL) is the most one
/// argument of `execve` may hold, and a command is one argument of
/// `/bin/sh -c`.
pub const MAX_COMMAND_LEN: usize = 32 * 4096 - 1;

/// Largest cltab file a reader should accept, in bytes (4 MiB: 30 times a
/// 1,000-entry table with 100-byte commands). The daemon refuses a bigger
/// file without reading past this limit, so `/dev/zero` or a runaway
/// generator cannot exhaust its memory.
pub const MAX_CLTAB_BYTES: u64 = 4 * 1024 * 1024;

/// Run mode of an entry (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Start in the background; counts as done at once; never restarted.
    Once,
    /// Run in the foreground: later entries wait until it exits.
    Wait,
    /// Start in the background and restart when it exits (rate-limited).
    Respawn,
    /// Never run.
    Off,
    /// Foreground; exit 0 passes, anything else fails the group.
    Test,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Once, Mode::Wait, Mode::Respawn, Mode::Off, Mode::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Once => "once",
            Mode::Wait => "wait",
            Mode::Respawn => "respawn",
            Mode::Off => "off",
            Mode::Test => "test",
        }
    }

    pub fn parse(word: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == word)
    }

    /// Entries of a blocking mode hold back the entries after them until
    /// they exit.
    pub fn is_blocking(self) -> bool {
        matches!(self, Mode::Wait | Mode::Test)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The levels column of an entry, with the original's matching rules
/// (spec §1.3) minus its regex quirk: plain string comparison only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Levels(pub String);

impl Levels {
    /// Does this entry belong to the requested level?
    ///
    /// * exact match of the whole field, or
    /// * the field has a comma: one of its non-empty comma pieces matches, or
    /// * no comma: one of its single characters matches.
    pub fn contains(&self, level: &str) -> bool {
        let field = self.0.as_str();
        if field == level {
            return true;
        }
        if field.contains(',') {
            return field.split(',').any(|piece| !piece.is_empty() && piece == level);
        }
        let mut chars = level.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => field.contains(c),
            _ => false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One process line of the cltab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 1-based line number in the file it came from.
    pub line: usize,
    pub group: String,
    pub tag: String,
    pub levels: Levels,
    pub mode: Mode,
    pub command: String,
    /// From the entry's `:::entry:` directive, if any.
    #[serde(default, skip_serializing_if = "BoxedOptions::is_empty")]
    pub options: BoxedOptions,
}

impl Entry {
    /// Two versions of an entry run the same thing: a change of mode,
    /// command or options means the running instance must be stopped and
    /// forgotten.
    pub fn same_process(&self, other: &Entry) -> bool {
        self.mode == other.mode
            && self.command == other.command
            && self.group == other.group
            && self.options == other.options
    }

    pub fn render(&self) -> String {
        format!("{}:{}:{}:{}:{}", self.group, self.tag, self.levels.0, self.mode, self.command)
    }
}

/// A parsed, validated cltab.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cltab {
    /// `:::socket:` directive: overrides the command line's `-s`.
    pub socket: Option<String>,
    /// `:::clstat:` directive: overrides the default status path.
    pub clstat: Option<String>,
    /// `:::log:` directive: accepted for compatibility, otherwise unused.
    pub log: Option<String>,
    /// Any other directive, kept (and warned about by the daemon).
    pub other_directives: BTreeMap<String, String>,
    /// Process entries in file order.
    pub entries: Vec<std::sync::Arc<Entry>>,
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    #[error("too few fields: expected group:tag:levels:mode:command")]
    TooFewFields,
    #[error("empty group name")]
    EmptyGroup,
    #[error("group name {0:?} contains whitespace (it could not be written to clstat)")]
    GroupWhitespace(String),
    #[error("empty tag")]
    EmptyTag,
    #[error("empty levels field")]
    EmptyLevels,
    #[error("unknown mode {0:?} (expected once, wait, respawn, off or test)")]
    UnknownMode(String),
    #[error("empty command")]
    EmptyCommand,
    #[error("entry has duplicate tag: {tag} (first defined on line {first_line})")]
    DuplicateTag { tag: String, first_line: usize },
    #[error("malformed directive: expected :::NAME:VALUE")]
    BadDirective,
    #[error(
        "the file is empty (0 bytes): refused as a likely truncation; \
         an intentionally empty table needs a comment line"
    )]
    EmptyFile,
    #[error("NUL byte in line")]
    Nul,
    #[error("invalid UTF-8 at byte {offset} of the line")]
    InvalidUtf8 { offset: usize },
    #[error("byte-order mark (U+FEFF) inside the file (only a leading one is allowed)")]
    Bom,
    #[error("carriage return inside a line (CR-only line endings are not supported)")]
    CarriageReturn,
    #[error("control character {ch:?} in the {field}")]
    ControlChar { field: &'static str, ch: char },
    #[error("command is {len} bytes long; the kernel accepts at most {max}")]
    CommandTooLong { len: usize, max: usize },
    #[error(":::entry: {0}")]
    Options(OptionError),
}

/// One error of this format, located.
pub type ParseError = crate::located::ParseError<LineError>;

/// Every error found in one file, in line order.
pub type ParseErrors = crate::located::ParseErrors<LineError>;

impl Cltab {
    /// Parse the raw bytes of a file: like [`Cltab::parse`], and a line that
    /// is not valid UTF-8 is an error at its line (never silently replaced
    /// by U+FFFD, which would rename a group).
    pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<Cltab, ParseErrors> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return Cltab::parse(text, file);
        }
        let mut bad = Vec::new();
        let mut text = String::with_capacity(bytes.len());
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                text.push('\n');
            }
            match std::str::from_utf8(line) {
                Ok(l) => text.push_str(l),
                Err(e) => bad.push(ParseError {
                    file: file.to_string(),
                    line: i + 1,
                    kind: LineError::InvalidUtf8 { offset: e.valid_up_to() },
                }),
            }
        }
        let mut errors = match Cltab::parse(&text, file) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        };
        errors.extend(bad);
        errors.sort_by_key(|e| e.line);
        Err(crate::located::ParseErrors(errors))
    }

    /// Parse `text`; `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Cltab, ParseErrors> {
        let mut tab = Cltab::default();
        let mut errors = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut options: Vec<(usize, String)> = Vec::new();
        if text.is_empty() {
            let kind = LineError::EmptyFile;
            return Err(crate::located::ParseErrors(vec![ParseError {
                file: file.to_string(),
                line: 1,
                kind,
            }]));
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.split('\n').enumerate() {
            let lineno = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let mut fail = |kind| {
                errors.push(ParseError { file: file.to_string(), line: lineno, kind });
            };
            if let Some(kind) = bad_bytes(line) {
                fail(kind);
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(directive) = line.strip_prefix(":::") {
                match directive.split_once(':') {
                    Some((name, value)) if !name.is_empty() && !value.is_empty() => {
                        let value = value.to_string();
                        match name {
                            "socket" => tab.socket = Some(value),
                            "clstat" => tab.clstat = Some(value),
                            "log" => tab.log = Some(value),
                            "entry" => options.push((lineno, value)),
                            _ => {
                                tab.other_directives.insert(name.to_string(), value);
                            }
                        }
                    }
                    _ => fail(LineError::BadDirective),
                }
                continue;
            }
            match parse_entry(line, lineno) {
                Ok(entry) => {
                    if let Some(&first_line) = seen.get(&entry.tag) {
                        fail(LineError::DuplicateTag { tag: entry.tag, first_line });
                    } else {
                        seen.insert(entry.tag.clone(), lineno);
                        tab.entries.push(std::sync::Arc::new(entry));
                    }
                }
                Err(kind) => fail(kind),
            }
        }
        tab.attach_options(options, file, &mut errors);
        if errors.is_empty() {
            Ok(tab)
        } else {
            errors.sort_by_key(|e| e.line);
            Err(crate::located::ParseErrors(errors))
        }
    }

    /// Give each `:::entry:TAG ...` directive's options to its entry.
    fn attach_options(
        &mut self,
        directives: Vec<(usize, String)>,
        file: &str,
        errors: &mut Vec<ParseError>,
    ) {
        let mut given: HashMap<String, usize> = HashMap::new();
        for (line, value) in directives {
            let mut fail = |e| {
                errors.push(ParseError {
                    file: file.to_string(),
                    line,
                    kind: LineError::Options(e),
                })
            };
            let value = value.trim_start();
            let (tag, words) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
            if tag.is_empty() {
                fail(OptionError::NoTag);
                continue;
            }
            if let Some(&first_line) = given.get(tag) {
                fail(OptionError::Duplicate { tag: tag.to_string(), first_line });
                continue;
            }
            given.insert(tag.to_string(), line);
            let parsed = match EntryOptions::parse(words) {
                Ok(o) => o,
                Err(e) => {
                    fail(e);
                    continue;
                }
            };
            let Some(entry) =
                self.entries.iter_mut().find(|e| e.tag == tag).map(std::sync::Arc::make_mut)
            else {
                fail(OptionError::UnknownTag(tag.to_string()));
                continue;
            };
            if parsed.ready.is_some() && !matches!(entry.mode, Mode::Once | Mode::Respawn) {
                fail(OptionError::ReadyOnBlocking(entry.mode.to_string()));
                continue;
            }
            entry.options = parsed.into();
        }
    }

    /// Only the `socket` and `clstat` directives of a text, even one that
    /// does not parse: a client needs them to reach the daemon and be told
    /// what is wrong with the rest.
    pub fn scan_directives(text: &str) -> (Option<String>, Option<String>) {
        let (mut socket, mut clstat) = (None, None);
        for line in text.lines() {
            if let Some(v) = line.strip_prefix(":::socket:").filter(|v| !v.is_empty()) {
                socket = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix(":::clstat:").filter(|v| !v.is_empty()) {
                clstat = Some(v.to_string());
            }
        }
        (socket, clstat)
    }

    /// Render back to cltab text (directives first, then entries). An
    /// empty table renders as a comment line, since a 0-byte file is refused.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let known = [("socket", &self.socket), ("clstat", &self.clstat), ("log", &self.log)];
        for (name, value) in known {
            if let Some(v) = value {
                out.push_str(&format!(":::{name}:{v}\n"));
            }
        }
        for (name, v) in &self.other_directives {
            out.push_str(&format!(":::{name}:{v}\n"));
        }
        for e in &self.entries {
            out.push_str(&e.render());
            out.push('\n');
        }
        for e in self.entries.iter().filter(|e| !e.options.is_empty()) {
            out.push_str(&format!(":::entry:{} {}\n", e.tag, e.options.render()));
        }
        if out.is_empty() {
            out.push_str("# empty table\n");
        }
        out
    }

    /// Entries of one group, in file order.
    pub fn group_entries<'a>(
        &'a self,
        group: &'a str,
    ) -> impl Iterator<Item = &'a std::sync::Arc<Entry>> + 'a {
        self.entries.iter().filter(move |e| e.group == group)
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.entries.iter().any(|e| e.group == group)
    }

    pub fn entry(&self, tag: &str) -> Option<&std::sync::Arc<Entry>> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    /// Group names in first-appearance order, without repeats.
    pub fn groups(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !out.contains(&e.group.as_str()) {
                out.push(&e.group);
            }
        }
        out
    }
}

/// Bytes no line may hold, comments included (module doc).
fn bad_bytes(line: &str) -> Option<LineError> {
    if line.contains('\0') {
        Some(LineError::Nul)
    } else if line.contains('\u{feff}') {
        Some(LineError::Bom)
    } else if line.contains('\r') {
        Some(LineError::CarriageReturn)
    } else {
        None
    }
}

/// The first control character of a name field.
fn control_char(field: &str) -> Option<char> {
    field.chars().find(|c| c.is_control())
}

fn parse_entry(line: &str, lineno: usize) -> Result<Entry, LineError> {
    let mut fields = line.splitn(5, ':');
    let (Some(group), Some(tag), Some(levels), Some(mode), Some(command)) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(LineError::TooFewFields);
    };
    for (field, value) in [("group", group), ("tag", tag), ("levels", levels), ("mode", mode)] {
        if let Some(ch) = control_char(value) {
            return Err(LineError::ControlChar { field, ch });
        }
    }
    if command.len() > MAX_COMMAND_LEN {
        return Err(LineError::CommandTooLong { len: command.len(), max: MAX_COMMAND_LEN });
    }
    if group.is_empty() {
        return Err(LineError::EmptyGroup);
    }
    if group.chars().any(char::is_whitespace) {
        return Err(LineError::GroupWhitespace(group.to_string()));
    }
    if tag.is_empty() {
        return Err(LineError::EmptyTag);
    }
    if levels.is_empty() {
        return Err(LineError::EmptyLevels);
    }
    let mode = Mode::parse(mode).ok_or_else(|| LineError::UnknownMode(mode.to_string()))?;
    if mode != Mode::Off && command.trim().is_empty() {
        return Err(LineError::EmptyCommand);
    }
    Ok(Entry {
        line: lineno,
        group: group.to_string(),
        tag: tag.to_string(),
        levels: Levels(levels.to_string()),
        mode,
        command: command.to_string(),
        options: BoxedOptions::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_matching_rules() {
        let l = |s: &str| Levels(s.to_string());
        assert!(l("12").contains("1") && l("12").contains("2") && l("12").contains("12"));
        assert!(!l("12").contains("3"));
        assert!(l("long1,long2,5").contains("long2") && l("long1,long2,5").contains("5"));
        assert!(!l("long1,long2,5").contains("l"));
        assert!(l("long3,").contains("long3") && !l("long3,").contains(""));
        assert!(l("long3").contains("long3") && l("long3").contains("g"));
        assert!(l("start").contains("s") && !l("start").contains("st"));
        assert!(!l("1").contains("."), "no regex semantics");
        assert!(l("0").contains("0"));
    }

    #[test]
    fn parses_entries_directives_and_colons_in_commands() {
        let text = "# comment\n\n:::socket:/tmp/s:x\n:::clstat:/tmp/clstat\n\
                    g:t1:1:wait:echo a:b\n0:t2:0:once:sleep 1\n";
        let tab = Cltab::parse(text, "cltab").expect("valid");
        assert_eq!(tab.socket.as_deref(), Some("/tmp/s:x"));
        assert_eq!(tab.clstat.as_deref(), Some("/tmp/clstat"));
        assert_eq!(tab.entries.len(), 2);
        assert_eq!(tab.entries[0].command, "echo a:b");
        assert_eq!(tab.entries[0].line, 5);
        assert_eq!(tab.entries[1].group, "0");
    }

    #[test]
    fn reports_every_error_with_file_and_line() {
        let text = "g:a:1:wait:true\ng:b:1:bogus:true\ng:a:1:once:true\nshort:x\n:::novalue:\n";
        let err = Cltab::parse(text, "/etc/cltab").expect_err("invalid");
        insta::assert_snapshot!(err.to_string(), @r#"
        /etc/cltab:2: unknown mode "bogus" (expected once, wait, respawn, off or test)
        /etc/cltab:3: entry has duplicate tag: a (first defined on line 1)
        /etc/cltab:4: too few fields: expected group:tag:levels:mode:command
        /etc/cltab:5: malformed directive: expected :::NAME:VALUE
        "#);
    }

    #[test]
    fn refuses_empty_files_and_bytes_that_cannot_run() {
        let err = |text: &[u8]| Cltab::parse_bytes(text, "t").expect_err("refused").to_string();
        assert!(err(b"").starts_with("t:1: the file is empty (0 bytes)"));
        assert!(Cltab::parse("# nothing here\n", "t").expect("comments only").entries.is_empty());
        let long = format!("g:a:1:once:{}\n", "x".repeat(MAX_COMMAND_LEN + 1));
        let text = format!(
            "g:ok:1:once:true\ng:n:1:once:a\0b\n\u{feff}g:b:1:once:x\ng\u{1b}:c:1:once:x\n\
             g:d:1:once:a\rb\ng:e\x07:1:once:a\n{long}"
        );
        insta::assert_snapshot!(err(text.as_bytes()), @r#"
        t:2: NUL byte in line
        t:3: byte-order mark (U+FEFF) inside the file (only a leading one is allowed)
        t:4: control character '\u{1b}' in the group
        t:5: carriage return inside a line (CR-only line endings are not supported)
        t:6: control character '\u{7}' in the tag
        t:7: command is 131072 bytes long; the kernel accepts at most 131071
        "#);
        assert_eq!(
            err(b"g:a:1:once:ok\ng\xff:b:1:once:x\n"),
            "t:2: invalid UTF-8 at byte 1 of the line"
        );
        // CR-only line endings: one long line with CRs in it.
        assert!(err(b"g:a:1:once:x\rg:b:1:once:y\r").contains("t:1: carriage return"));
        // A leading BOM is stripped; CRLF line ends are fine; a tab in a command too.
        let tab = Cltab::parse_bytes(b"\xef\xbb\xbfg:a:1:once:x\ty\r\n", "t").expect("ok");
        assert_eq!((tab.entries[0].group.as_str(), tab.entries[0].command.as_str()), ("g", "x\ty"));
        assert_eq!(Cltab::default().render(), "# empty table\n");
    }

    #[test]
    fn entry_directives_attach_options_and_render_back() {
        let text = "g:a:1:respawn:srv\n:::entry:a user=nobody ready=notify env=\"X=a b\"\n\
                    g:w:1:wait:true\n";
        let tab = Cltab::parse(text, "t").expect("valid");
        let a = tab.entry("a").expect("a");
        assert_eq!(a.options.user.as_deref(), Some("nobody"));
        assert_eq!(a.options.env, vec![("X".to_string(), "a b".to_string())]);
        assert!(tab.other_directives.is_empty(), "not an unknown directive");
        let again = Cltab::parse(&tab.render(), "t").expect("round trip");
        assert_eq!(again.render(), tab.render());
        assert_eq!(again.entry("a").map(|e| &e.options), Some(&a.options));
        let bad = "g:a:1:once:x\ng:w:1:wait:y\n:::entry:zz cwd=/\n:::entry:w ready=notify\n\
                   :::entry:a umask=8\n:::entry:a cwd=/\n";
        insta::assert_snapshot!(Cltab::parse(bad, "t").expect_err("refused").to_string(), @r#"
        t:3: :::entry: no entry has tag "zz"
        t:4: :::entry: ready= applies to once and respawn entries; a wait entry is waited for until it exits
        t:5: :::entry: bad value for umask: expected an octal mask such as 027
        t:6: :::entry: options for tag a were already given on line 5
        "#);
    }
}
