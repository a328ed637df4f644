//! Per-entry options: working directory, user and group, extra
//! environment, umask, resource limits, and readiness (issue 11 item 4).
//!
//! They live in an optional cltab directive, one per entry:
//!
//! ```text
//! web:w1:2:respawn:exec httpd -f
//! :::entry:w1 user=www cwd=/srv/www umask=027 env=LANG=C limit.nofile=4096 ready=notify
//! ```
//!
//! Why a directive: the original parser stores any `:::NAME:VALUE` line it
//! does not know and otherwise ignores it, so a table using this extension
//! still loads, unchanged in meaning, under an old `clinit` (which then
//! simply runs the entries without their options). The entry line itself
//! keeps the original five fields.
//!
//! The value is the entry's tag, then whitespace-separated `key=value`
//! words. A value may be written in double quotes to hold spaces, with `\"`
//! and `\\` as escapes (`env="GREETING=hello world"`). Keys (each at most
//! once, except `env` and `limit.*` for distinct names):
//!
//! * `cwd=DIR`: working directory (absolute).
//! * `user=NAME|UID`, `group=NAME|GID`: credentials; `group` defaults to
//!   the user's primary group, and supplementary groups are the user's
//!   (as `initgroups` would set them). Needs a daemon running as root.
//! * `env=NAME=VALUE`: added to the environment (repeatable).
//! * `umask=OCTAL`: e.g. `umask=027`.
//! * `limit.NAME=SOFT[:HARD]`: a resource limit (`setrlimit`); NAME is one
//!   of `nofile nproc core as fsize cpu stack data memlock`, values are
//!   numbers or `infinity`; HARD defaults to SOFT. Units are the kernel's
//!   (bytes, seconds for `cpu`), as in systemd's `LimitNOFILE=`.
//! * `ready=notify`: the entry is ready when it sends `READY=1` over the
//!   datagram socket named by `$NOTIFY_SOCKET` (systemd's `sd_notify`
//!   protocol, `Type=notify`).
//! * `ready=fd:N`: the entry is ready when it writes a newline to its file
//!   descriptor N (N >= 3; s6's `notification-fd` convention).
//! * `ready_timeout=DURATION`: how long readiness may take (`90s` by
//!   default, systemd's `DefaultTimeoutStartSec`); `500ms`, `2s`, `1m`, or
//!   a plain number of seconds.
//!
//! What readiness means (the rule, kept in [`crate::init`]): a `once` or
//! `respawn` entry with `ready=` counts as *starting* until it signals
//! readiness. Like a `wait` entry, it holds back the entries after it in
//! its group's level, and the group's `DONE` verdict waits for it. If it
//! is not ready within the time-out, it is stopped (INT, TERM, KILL) and
//! the entry FAILED, with the reason shown in status. `ready=` on a `wait`,
//! `test` or `off` entry is refused: those are waited for until they exit.

use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// systemd's `DefaultTimeoutStartSec`: how long an entry may take to
/// signal readiness unless its `ready_timeout=` says otherwise.
pub const DEFAULT_READY_TIMEOUT: Millis = Millis(90_000);

/// How an entry signals readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// `READY=1` on `$NOTIFY_SOCKET` (sd_notify).
    Notify,
    /// A newline written to this descriptor (s6).
    Fd(u32),
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Notify => f.write_str("notify"),
            Readiness::Fd(n) => write!(f, "fd:{n}"),
        }
    }
}

/// A resource a limit applies to (`setrlimit`'s `RLIMIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Nofile,
    Nproc,
    Core,
    As,
    Fsize,
    Cpu,
    Stack,
    Data,
    Memlock,
}

impl Resource {
    pub const ALL: [Resource; 9] = [
        Resource::Nofile,
        Resource::Nproc,
        Resource::Core,
        Resource::As,
        Resource::Fsize,
        Resource::Cpu,
        Resource::Stack,
        Resource::Data,
        Resource::Memlock,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
            Resource::Core => "core",
            Resource::As => "as",
            Resource::Fsize => "fsize",
            Resource::Cpu => "cpu",
            Resource::Stack => "stack",
            Resource::Data => "data",
            Resource::Memlock => "memlock",
        }
    }
}

/// One resource limit; `None` is unlimited (`infinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub resource: Resource,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The options of one entry. The default is "none": the entry runs as the
/// daemon does, ready as soon as it is started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Readiness>,
    /// `None`: [`DEFAULT_READY_TIMEOUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<Millis>,
}

/// What is wrong with an `:::entry:` directive.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionError {
    #[error("expected :::entry:TAG key=value ...")]
    NoTag,
    #[error("no entry has tag {0:?}")]
    UnknownTag(String),
    #[error("options for tag {tag} were already given on line {first_line}")]
    Duplicate { tag: String, first_line: usize },
    #[error("{0:?} is not key=value")]
    NotKeyValue(String),
    #[error("unknown option {0:?} (expected cwd, user, group, env, umask, limit.NAME, ready, ready_timeout)")]
    UnknownKey(String),
    #[error("option {0} given twice")]
    Repeated(String),
    #[error("bad value for {key}: {why}")]
    BadValue { key: String, why: String },
    #[error("unterminated double quote")]
    Unterminated,
    #[error(
        "ready= applies to once and respawn entries; a {0} entry is waited for until it exits"
    )]
    ReadyOnBlocking(String),
}

/// No options: what [`BoxedOptions`] reads as when none were given.
static NO_OPTIONS: EntryOptions = EntryOptions {
    cwd: None,
    user: None,
    group: None,
    env: Vec::new(),
    umask: None,
    limits: Vec::new(),
    ready: None,
    ready_timeout: None,
};

/// An entry's options as a cltab line keeps them: boxed when any are
/// given, nothing but an empty pointer otherwise. Most entries have none,
/// and an [`EntryOptions`] inline is about 160 bytes: 160 KB for a table
/// of 1,000 entries (issue 10, "speed must not regress", the daemon's
/// memory). Reads as an [`EntryOptions`] (`Deref`); serialised as one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoxedOptions(Option<Box<EntryOptions>>);

impl BoxedOptions {
    /// No option given.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl std::ops::Deref for BoxedOptions {
    type Target = EntryOptions;

    fn deref(&self) -> &EntryOptions {
        self.0.as_deref().unwrap_or(&NO_OPTIONS)
    }
}

impl From<EntryOptions> for BoxedOptions {
    fn from(options: EntryOptions) -> BoxedOptions {
        BoxedOptions((!options.is_empty()).then(|| Box::new(options)))
    }
}

impl Serialize for BoxedOptions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BoxedOptions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<BoxedOptions, D::Error> {
        EntryOptions::deserialize(deserializer).map(BoxedOptions::from)
    }
}

impl EntryOptions {
    pub fn is_empty(&self) -> bool {
        *self == EntryOptions::default()
    }

    /// The readiness time-out in force.
    pub fn ready_timeout(&self) -> Millis {
        self.ready_timeout.unwrap_or(DEFAULT_READY_TIMEOUT)
    }

    /// Parse the words after the tag.
    pub fn parse(words: &str) -> Result<EntryOptions, OptionError> {
        let mut o = EntryOptions::default();
        let mut seen: Vec<String> = Vec::new();
        for word in split_words(words)? {
            let (key, value) =
                word.split_once('=').ok_or_else(|| OptionError::NotKeyValue(word.clone()))?;
            let bad = |why: &str| OptionError::BadValue { key: key.to_string(), why: why.into() };
            let once = key != "env";
            if once {
                if seen.iter().any(|k| k == key) {
                    return Err(OptionError::Repeated(key.to_string()));
                }
                seen.push(key.to_string());
            }
            match key {
                "cwd" if value.starts_with('/') => o.cwd = Some(value.to_string()),
                "cwd" => return Err(bad("must be an absolute path")),
                "user" | "group" if value.is_empty() => return Err(bad("empty")),
                "user" => o.user = Some(value.to_string()),
                "group" => o.group = Some(value.to_string()),
                "env" => {
                    let (name, v) =
                        value.split_once('=').ok_or_else(|| bad("expected NAME=VALUE"))?;
                    let ok_name = !name.is_empty()
                        && !name.starts_with(|c: char| c.is_ascii_digit())
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok_name {
                        return Err(bad("NAME must be letters, digits and _"));
                    }
                    o.env.push((name.to_string(), v.to_string()));
                }
                "umask" => {
                    let mask = u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| bad("expected an octal mask such as 027"))?;
                    o.umask = Some(mask);
                }
                "ready" => {
                    o.ready = Some(match value {
                        "notify" => Readiness::Notify,
                        _ => match value.strip_prefix("fd:").map(str::parse::<u32>) {
                            Some(Ok(n)) if n >= 3 => Readiness::Fd(n),
                            _ => return Err(bad("expected notify or fd:N with N >= 3")),
                        },
                    })
                }
                "ready_timeout" => {
                    o.ready_timeout = Some(
                        parse_duration(value)
                            .ok_or_else(|| bad("expected a duration: 500ms, 2s, 1m or seconds"))?,
                    )
                }
                _ => {
                    let Some(name) = key.strip_prefix("limit.") else {
                        return Err(OptionError::UnknownKey(key.to_string()));
                    };
                    let resource = Resource::ALL
                        .into_iter()
                        .find(|r| r.as_str() == name)
                        .ok_or_else(|| OptionError::UnknownKey(key.to_string()))?;
                    let (soft, hard) = value.split_once(':').unwrap_or((value, value));
                    let num = |v: &str| match v {
                        "infinity" => Ok(None),
                        _ => v
                            .parse::<u64>()
                            .map(Some)
                            .map_err(|_| bad("expected a number or infinity")),
                    };
                    let (soft, hard) = (num(soft)?, num(hard)?);
                    if hard.is_some_and(|h| soft.is_none_or(|s| s > h)) {
                        return Err(bad("the soft limit exceeds the hard one"));
                    }
                    o.limits.push(Limit { resource, soft, hard });
                }
            }
        }
        Ok(o)
    }

    /// Back to directive words (`parse` of this gives `self` again).
    pub fn render(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        let mut push = |k: &str, v: &str| words.push(format!("{k}={}", quote(v)));
        if let Some(v) = &self.cwd {
            push("cwd", v);
        }
        if let Some(v) = &self.user {
            push("user", v);
        }
        if let Some(v) = &self.group {
            push("group", v);
        }
        for (n, v) in &self.env {
            push("env", &format!("{n}={v}"));
        }
        if let Some(m) = self.umask {
            push("umask", &format!("{m:03o}"));
        }
        for l in &self.limits {
            let v = |x: Option<u64>| x.map_or("infinity".to_string(), |n| n.to_string());
            push(
                &format!("limit.{}", l.resource.as_str()),
                &format!("{}:{}", v(l.soft), v(l.hard)),
            );
        }
        if let Some(r) = self.ready {
            push("ready", &r.to_string());
        }
        if let Some(t) = self.ready_timeout {
            push("ready_timeout", &format!("{}ms", t.0));
        }
        words.join(" ")
    }
}

/// `500ms`, `2s`, `1m`, or a plain number of seconds.
fn parse_duration(v: &str) -> Option<Millis> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000)
    } else {
        (v, 1000)
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(scale).filter(|&ms| ms > 0).map(Millis)
}

/// Quote a value if it holds whitespace, a quote or a backslash.
fn quote(v: &str) -> String {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\') {
        let mut out = String::from("\"");
        for c in v.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    } else {
        v.to_string()
    }
}

/// Whitespace-separated words; double quotes group, `\"` and `\\` escape
/// inside them.
fn split_words(text: &str) -> Result<Vec<String>, OptionError> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => match chars.next() {
                    Some(e) => word.push(e),
                    None => return Err(OptionError::Unterminated),
                },
                c if c.is_whitespace() && !quoted => break,
                c => word.push(c),
            }
        }
        if quoted {
            return Err(OptionError::Unterminated);
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_renders_back() {
        let text = "cwd=/srv user=www group=web env=A=1 env=\"B=x y\" umask=027 \
                    limit.nofile=1024:4096 limit.core=infinity ready=fd:3 ready_timeout=2s";
        let o = EntryOptions::parse(text).expect("parses");
        assert_eq!(o.cwd.as_deref(), Some("/srv"));
        assert_eq!(o.env, vec![("A".into(), "1".into()), ("B".into(), "x y".into())]);
        assert_eq!(o.umask, Some(0o27));
        assert_eq!(
            o.limits[0],
            Limit { resource: Resource::Nofile, soft: Some(1024), hard: Some(4096) }
        );
        assert_eq!(o.limits[1], Limit { resource: Resource::Core, soft: None, hard: None });
        assert_eq!(o.ready, Some(Readiness::Fd(3)));
        assert_eq!(o.ready_timeout(), Millis(2000));
        assert_eq!(EntryOptions::parse(&o.render()), Ok(o));
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        let err = |t: &str| EntryOptions::parse(t).expect_err(t).to_string();
        assert!(err("cwd=rel").contains("absolute"));
        assert!(err("umask=9").contains("octal"));
        assert!(err("ready=fd:1").contains("N >= 3"));
        assert!(err("ready=sd").contains("notify"));
        assert!(err("limit.nofile=10:5").contains("exceeds"));
        assert!(err("limit.bogus=1").contains("unknown option"));
        assert!(err("user=a user=b").contains("twice"));
        assert!(err("env=\"A=1").contains("quote"));
        assert!(err("nokey").contains("key=value"));
        assert!(err("ready_timeout=0").contains("duration"));
        assert_eq!(EntryOptions::parse(""), Ok(EntryOptions::default()));
    }
}
