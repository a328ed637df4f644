//! STOMITH ("shoot the other machine in the head"): what `mosha` does to a
//! stale node. The engine decides *when* (at most once per stale episode,
//! after the start-up grace); this decides *how*.
//!
//! The default, as in the original, only logs at error level. With
//! `--stomith CMD`, `/bin/sh -c 'CMD <node>'` runs in its own process group,
//! bounded in time (the group is SIGKILLed when it overruns), reaped, and its
//! output logged.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a fencing attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceOutcome {
    /// No command configured: logged only.
    Logged,
    /// The command exited 0.
    Done { output: String },
    /// The command failed, overran its time, or could not start.
    Failed { reason: String, output: String },
}

/// Fences a node. Blocking; `mosha` calls it off the daemon's thread.
pub trait Fence: Send + Sync + 'static {
    fn fence(&self, node: u32) -> FenceOutcome;
}

/// The original's default: an alert in the log, nothing else.
pub struct LogFence;

impl Fence for LogFence {
    fn fence(&self, node: u32) -> FenceOutcome {
        tracing::error!("STOMITH node {node} (no --stomith command configured: logged only)");
        FenceOutcome::Logged
    }
}

/// Runs `COMMAND <node>` through the shell.
pub struct CommandFence {
    pub command: String,
    pub limit: Duration,
}

/// Most output kept for the log, per stream.
const MAX_OUTPUT: u64 = 64 * 1024;

impl Fence for CommandFence {
    fn fence(&self, node: u32) -> FenceOutcome {
        let line = format!("{} {node}", self.command);
        // Info: running the configured fence is the system working as
        // asked; the decision to fence was logged (at warn) when it was
        // made, and a failure is logged at error.
        tracing::info!("STOMITH node {node}: running `{}`", crate::daemon::escape(&line));
        let mut command = Command::new(crate::process::SHELL);
        command
            .arg("-c")
            .arg(&line)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // Claimed until this returns, after the wait: `mosha`'s reaper
        // leaves the shell to us, and reaps what the shell started once
        // the group is killed (see `crate::claimed`).
        let (mut child, _claim) = match crate::claimed::spawn(&mut command) {
            Ok(c) => c,
            Err(e) => {
                return FenceOutcome::Failed {
                    reason: format!("cannot start `{line}`: {e}"),
                    output: String::new(),
                }
            }
        };
        // Drain both pipes in threads, so a chatty command cannot block on a
        // full pipe while we wait for it.
        let readers: Vec<_> = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|stream| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = stream.take(MAX_OUTPUT).read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
            rx
        })
        .collect();
        let deadline = Instant::now() + self.limit;
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                    let _ = child.wait();
                    break Err(format!("`{line}` did not finish within {:?}; killed", self.limit));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => break Err(format!("waiting for `{line}`: {e}")),
            }
        };
        // Whatever the command left behind in its group goes too.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let mut output = String::new();
        for rx in readers {
            if let Ok(buf) = rx.recv_timeout(Duration::from_secs(1)) {
                output.push_str(&String::from_utf8_lossy(&buf));
            }
        }
        let output = output.trim().to_string();
        match status {
            Ok(s) if s.success() => FenceOutcome::Done { output },
            Ok(s) => FenceOutcome::Failed { reason: format!("`{line}` {s}"), output },
            Err(reason) => FenceOutcome::Failed { reason, output },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_command_with_the_node_and_keeps_output() {
        let f = CommandFence { command: "echo fencing".into(), limit: Duration::from_secs(10) };
        assert_eq!(f.fence(7), FenceOutcome::Done { output: "fencing 7".into() });
        let f = CommandFence {
            command: "echo no >&2; exit 3; :".into(),
            limit: Duration::from_secs(10),
        };
        match f.fence(2) {
            FenceOutcome::Failed { reason, output } => {
                assert!(reason.contains("exit status: 3"), "{reason}");
                assert_eq!(output, "no");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Running the configured fence command is the system working as
    /// asked: info, not error (a new user read "ERROR STOMITH ... running"
    /// as a failure).
    #[test]
    fn the_running_line_is_info() {
        let f = CommandFence { command: "true".into(), limit: Duration::from_secs(10) };
        let (outcome, logged) = crate::test_log::capture(|| f.fence(3));
        assert_eq!(outcome, FenceOutcome::Done { output: String::new() });
        let lines = crate::test_log::lines_with(&logged, "STOMITH node 3: running `true 3`");
        assert_eq!(lines.len(), 1, "{logged}");
        assert!(lines[0].contains("INFO"), "{logged}");
        assert!(!logged.contains("ERROR") && !logged.contains("WARN"), "{logged}");
    }

    #[test]
    fn an_overrunning_command_is_killed() {
        let f = CommandFence { command: "sleep 30; :".into(), limit: Duration::from_millis(200) };
        let start = Instant::now();
        assert!(matches!(f.fence(1), FenceOutcome::Failed { .. }));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
