//! What every command-line front end needs the same way: logging set up from
//! `RUST_LOG` (colour only on a terminal) and durations given in seconds.

use clinit_engine::time::Millis;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The exit statuses of the command-line tools, documented in their
/// `--help` and man pages. 3 for "not running" follows `systemctl status`
/// (LSB's "program is not running"); 2 is clap's usage error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; with `--wait`, the level is DONE or PASSED.
    Ok = 0,
    /// Refused (by the daemon, or a check found errors), or the level FAILED.
    Refused = 1,
    /// Bad command line.
    Usage = 2,
    /// The daemon is not running: no socket, or nothing listens on it.
    NotRunning = 3,
    /// `--wait` gave up.
    TimedOut = 4,
    /// `status`: the daemon answers but is still starting (it stops what a
    /// previous daemon left running first), so no group runs yet.
    Starting = 5,
}

impl From<Exit> for std::process::ExitCode {
    fn from(code: Exit) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Log to stderr at `RUST_LOG`'s level (default `info`); colour only when
/// stderr is a terminal, so log files stay plain text. Writes never block:
/// a full stderr pipe drops and counts lines ([`crate::nblog`]).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(crate::nblog::LogSink::stderr())
        // Its report of a failed write is an `eprintln!`, which panics on
        // a dead stderr; the sink never fails anyway.
        .log_internal_errors(false)
        .init();
}

/// `eprintln!` that never panics: a daemon's stderr may be a pipe whose
/// reader is gone (`EPIPE`), and a panic there would orphan its services.
pub fn eprint_quiet(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Run a daemon's main future on a single-threaded runtime (one task owns
/// the machine; nothing needs more). Errors are printed as `PROG: error`
/// and turn into a failing exit status.
pub fn run_daemon<E: std::fmt::Display>(
    prog: &str,
    main: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprint_quiet(format_args!("{prog}: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint_quiet(format_args!("{prog}: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// A number of seconds, zero allowed (clap value parser).
pub fn secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..1e9).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number of seconds")),
    }
}

/// A positive number of seconds (clap value parser).
pub fn positive_secs(text: &str) -> Result<f64, String> {
    match secs(text) {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Seconds to engine milliseconds, rounded.
pub fn millis(secs: f64) -> Millis {
    Millis((secs * 1000.0).round() as u64)
}

/// A settings file could not be used. Every message names the file, and
/// the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read settings file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid TOML: {source}", .path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{}:{line}: unknown setting {key:?} (settings are the long flags of --help, without the dashes)", .path.display())]
    Unknown { path: PathBuf, line: usize, key: String },
    #[error("{}:{line}: setting {key:?} {problem}", .path.display())]
    BadValue { path: PathBuf, line: usize, key: String, problem: &'static str },
}

/// Settings from a TOML file, as command-line flags to put *before* the
/// real ones. Every long flag of `cmd` can be a key (`timeout = 3`,
/// `mfsbase = "/mfs"`, `stomith-grace = 120`; `_` may stand for `-`); a
/// switch takes `true` or `false`. Parsing the result with clap's
/// `args_override_self` lets a flag given on the command line win over the
/// file, and validates values exactly as on the command line. `skip` names
/// flags that cannot come from a file (the file's own `--config`).
///
/// This is the convention of tools that take every flag from a file too
/// (`mosha.toml` beside systemd's `EnvironmentFile=` habit): one list of
/// settings, documented once in `--help`.
pub fn config_args(
    cmd: &clap::Command,
    path: &Path,
    text: &str,
    skip: &[&str],
) -> Result<Vec<OsString>, ConfigError> {
    let table: toml::Table =
        text.parse().map_err(|source| ConfigError::Toml { path: path.to_path_buf(), source })?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let line = line_of(text, key);
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(name.as_str())).filter(|_| {
            !skip.contains(&name.as_str()) && !matches!(name.as_str(), "help" | "version")
        });
        let Some(arg) = arg else {
            return Err(ConfigError::Unknown { path: path.to_path_buf(), line, key: key.clone() });
        };
        let bad = |problem| ConfigError::BadValue {
            path: path.to_path_buf(),
            line,
            key: key.clone(),
            problem,
        };
        let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let text = match value {
            toml::Value::Boolean(on) if switch => {
                if *on {
                    out.push(OsString::from(format!("--{name}")));
                }
                continue;
            }
            _ if switch => return Err(bad("is a switch: give true or false")),
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => return Err(bad("must be a string or a number")),
        };
        out.push(OsString::from(format!("--{name}={text}")));
    }
    Ok(out)
}

/// Where in a settings file the value clap refused was set: the line of
/// the setting named by the error's invalid argument (`--timeout <SECS>`
/// → key `timeout`, or `stomith_grace` for `--stomith-grace`). `None` when
/// the error names no argument or the key is not found in `text`.
pub fn config_error_line(text: &str, err: &clap::Error) -> Option<(String, usize)> {
    let clap::error::ContextValue::String(arg) = err.get(clap::error::ContextKind::InvalidArg)?
    else {
        return None;
    };
    let name = arg.strip_prefix("--")?.split([' ', '=']).next()?.to_string();
    [name.clone(), name.replace('-', "_")]
        .into_iter()
        .find_map(|key| Some(line_of(text, &key)).filter(|&l| l > 0).map(|l| (key, l)))
}

/// The first line that sets `key` (1-based; 0 when not found, e.g. a key
/// inside an inline table).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches('"');
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches('"').trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

/// The settings file to read: `--config FILE` (or `--config=FILE`) from the
/// raw arguments, else `default`. The flag is looked for before clap runs,
/// since the file's settings go in front of the arguments. Returns the path
/// and whether it was given explicitly (a missing default file is fine, a
/// missing named one is an error).
pub fn config_path(args: &[OsString], default: &str) -> (PathBuf, bool) {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            if let Some(v) = it.next() {
                return (PathBuf::from(v), true);
            }
        } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return (PathBuf::from(v), true);
        }
    }
    (PathBuf::from(default), false)
}

/// Read the settings file for [`config_args`]: `None` when the default file
/// does not exist.
pub fn read_config(path: &Path, explicit: bool) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
    }
}

/// Restore the default action of SIGPIPE (terminate quietly), which the Rust
/// runtime sets to "ignore". For one-shot client commands whose output may
/// go to `head`: without it, `println!` panics on the closed pipe.
pub fn default_sigpipe() {
    // SAFETY: called at start-up, before any thread is spawned; setting a
    // signal's disposition to SIG_DFL has no other precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> clap::Command {
        clap::Command::new("t")
            .arg(clap::Arg::new("timeout").long("timeout"))
            .arg(clap::Arg::new("stomith-grace").long("stomith-grace"))
            .arg(clap::Arg::new("init").long("init").action(clap::ArgAction::SetTrue))
            .arg(clap::Arg::new("config").long("config"))
    }

    fn args(text: &str) -> Result<Vec<String>, String> {
        config_args(&cmd(), Path::new("m.toml"), text, &["config"])
            .map(|v| v.into_iter().map(|s| s.into_string().expect("utf-8")).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn settings_become_flags() {
        assert_eq!(
            args("timeout = 3\nstomith_grace = 2.5\ninit = true\n"),
            // in key order
            Ok(vec!["--init".into(), "--stomith-grace=2.5".into(), "--timeout=3".into()])
        );
        assert_eq!(args("init = false\n"), Ok(vec![]));
        assert_eq!(args("\"timeout\" = \"-1\"\n"), Ok(vec!["--timeout=-1".into()]));
    }

    #[test]
    fn bad_settings_name_file_and_line() {
        assert_eq!(
            args("# c\ntimeout = 3\ntimout = 4\n"),
            Err("m.toml:3: unknown setting \"timout\" (settings are the long flags of --help, without the dashes)".into())
        );
        assert_eq!(
            args("config = \"x\"\n").map_err(|e| e.contains(":1: unknown setting")),
            Err(true)
        );
        assert_eq!(
            args("init = 1\n"),
            Err("m.toml:1: setting \"init\" is a switch: give true or false".into())
        );
        assert!(args("timeout = [1]\n").is_err_and(|e| e.contains("must be a string or a number")));
        let e = args("timeout = \n").expect_err("toml error");
        assert!(e.starts_with("m.toml: not valid TOML:") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn config_path_is_found_before_parsing() {
        let argv = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(config_path(&argv(&["m", "status"]), "/d"), (PathBuf::from("/d"), false));
        assert_eq!(
            config_path(&argv(&["m", "--config", "/x", "status"]), "/d"),
            (PathBuf::from("/x"), true)
        );
        assert_eq!(config_path(&argv(&["m", "--config=/y"]), "/d"), (PathBuf::from("/y"), true));
        assert!(!config_path(&argv(&["m", "--", "--config=/y"]), "/d").1);
        assert!(read_config(Path::new("/nonexistent/m.toml"), false).expect("fine").is_none());
        assert!(read_config(Path::new("/nonexistent/m.toml"), true).is_err());
    }

    #[test]
    fn seconds_parse_and_convert() {
        assert_eq!(secs("0"), Ok(0.0));
        assert!(secs("-1").is_err() && secs("nan").is_err() && secs("x").is_err());
        assert!(positive_secs("0").is_err());
        assert_eq!(millis(positive_secs("0.25").expect("valid")), Millis(250));
    }
}
