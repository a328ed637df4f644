//! openMosix: membership from `<hpcbase>/nodes/<N>/status`, and the local
//! node number from `mosctl whois` (spec §2, §3.1).
//!
//! Node N is up iff bit value 2 is set in the number on the first line of
//! its `status` file (value 1 marks a configured node, value 2 a node that is
//! up and reachable; fixtures use 3). Entries of `<hpcbase>/nodes` whose
//! names are not numbers are ignored; a node whose status cannot be read or
//! parsed is not up. A missing `nodes` directory is an error (the original
//! died; `mosha` logs it and retries).

use crate::membership::{Membership, MembershipError};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The "up" bit of an openMosix node status word.
pub const UP_BIT: u64 = 2;

/// Membership read from an openMosix `/proc/hpc`-style tree.
#[derive(Debug, Clone)]
pub struct HpcMembership {
    pub hpcbase: PathBuf,
}

impl HpcMembership {
    pub fn new(hpcbase: impl Into<PathBuf>) -> Self {
        HpcMembership { hpcbase: hpcbase.into() }
    }

    fn nodes_dir(&self) -> PathBuf {
        self.hpcbase.join("nodes")
    }
}

/// Is this status text (its first line, a number) "up"? `None` when the
/// first line is not a number.
pub fn status_is_up(text: &str) -> Option<bool> {
    let first = text.lines().next()?.trim();
    let value = parse_number(first)?;
    Some(value & UP_BIT != 0)
}

/// Decimal, or `0x` hexadecimal (the kernel prints decimal; be lenient).
fn parse_number(word: &str) -> Option<u64> {
    match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => word.parse().ok(),
    }
}

/// A directory entry name that is a node number.
pub fn node_number(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

impl Membership for HpcMembership {
    fn members(&self) -> Result<Vec<u32>, MembershipError> {
        let dir = self.nodes_dir();
        let entries = std::fs::read_dir(&dir)
            .map_err(|source| MembershipError::List { path: dir.clone(), source })?;
        let mut up = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(node) = name.to_str().and_then(node_number) else { continue };
            let status = entry.path().join("status");
            let Ok(text) = std::fs::read_to_string(&status) else { continue };
            match status_is_up(&text) {
                Some(true) => up.push(node),
                Some(false) => {}
                None => tracing::debug!("{}: not a status number; node skipped", status.display()),
            }
        }
        up.sort_unstable();
        up.dedup();
        Ok(up)
    }

    fn describe(&self) -> String {
        format!("openMosix {}", self.nodes_dir().display())
    }
}

/// The local node number could not be learned.
#[derive(Debug, Error)]
pub enum WhoisError {
    #[error("cannot run `{command}`: {source} (give the node number with --node)")]
    Run {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {after:?} (give the node number with --node)")]
    Timeout { command: String, after: Duration },
    #[error("`{command}` failed ({status}): {output:?} (give the node number with --node)")]
    Failed { command: String, status: String, output: String },
    #[error("no node number in the output of `{command}`: {output:?}")]
    NoDigits { command: String, output: String },
    #[error("`{command}` says this is node 0, which is not a valid openMosix node: {output:?}")]
    Zero { command: String, output: String },
    #[error("node number {digits} from `{command}` is too large")]
    TooLarge { command: String, digits: String },
}

/// The node number in `mosctl whois` output: the first run of digits
/// (`"This is MOSIX #32"` → 32). No digits, or 0, is an error (spec §2).
pub fn parse_whois(command: &str, output: &str) -> Result<u32, WhoisError> {
    let start = output.find(|c: char| c.is_ascii_digit()).ok_or_else(|| WhoisError::NoDigits {
        command: command.into(),
        output: output.trim().into(),
    })?;
    let digits: String = output[start..].chars().take_while(char::is_ascii_digit).collect();
    let node: u32 = digits
        .parse()
        .map_err(|_| WhoisError::TooLarge { command: command.into(), digits: digits.clone() })?;
    if node == 0 {
        return Err(WhoisError::Zero { command: command.into(), output: output.trim().into() });
    }
    Ok(node)
}

/// Run `command` (through `/bin/sh -c`, e.g. `mosctl whois`) and parse its
/// output. Bounded by `limit`; the command runs in its own process group,
/// which is killed on timeout.
pub fn whois(command: &str, limit: Duration) -> Result<u32, WhoisError> {
    use std::os::unix::process::CommandExt;
    let run_err = |source| WhoisError::Run { command: command.into(), source };
    // Claimed until this returns, after the wait (see `crate::claimed`).
    let (mut child, _claim) = crate::claimed::spawn(
        Command::new(crate::process::SHELL)
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0),
    )
    .map_err(run_err)?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().map_err(run_err)? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(WhoisError::Timeout { command: command.into(), after: limit });
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if !status.success() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        let output = format!("{}{}", out.trim(), err.trim());
        return Err(WhoisError::Failed {
            command: command.into(),
            status: status.to_string(),
            output,
        });
    }
    parse_whois(command, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whois_takes_the_first_run_of_digits() {
        assert_eq!(parse_whois("w", "This is MOSIX #32\n").ok(), Some(32));
        assert_eq!(parse_whois("w", "7").ok(), Some(7));
        assert_eq!(parse_whois("w", "node 12 of 40").ok(), Some(12));
        assert!(matches!(parse_whois("w", "This is MOSIX #0"), Err(WhoisError::Zero { .. })));
        assert!(matches!(parse_whois("w", "not configured"), Err(WhoisError::NoDigits { .. })));
        assert!(matches!(parse_whois("w", ""), Err(WhoisError::NoDigits { .. })));
        assert!(matches!(parse_whois("w", "#99999999999"), Err(WhoisError::TooLarge { .. })));
        let msg = parse_whois("mosctl whois", "This is MOSIX #0").unwrap_err().to_string();
        assert!(msg.contains("node 0"), "{msg}");
    }

    #[test]
    fn status_bit_two_means_up() {
        assert_eq!(status_is_up("3\n"), Some(true));
        assert_eq!(status_is_up("2"), Some(true));
        assert_eq!(status_is_up("1\n"), Some(false));
        assert_eq!(status_is_up("0"), Some(false));
        assert_eq!(status_is_up(" 7 \nmore"), Some(true));
        assert_eq!(status_is_up("0x6"), Some(true));
        assert_eq!(status_is_up("up"), None);
        assert_eq!(status_is_up(""), None);
    }

    #[test]
    fn node_names_are_numbers() {
        assert_eq!(node_number("12"), Some(12));
        assert_eq!(node_number("1a"), None);
        assert_eq!(node_number("+1"), None);
        assert_eq!(node_number(""), None);
    }
}
