//! `clinit`: the per-node init daemon and its client (Cluster::Init
//! compatible command line).

use clap::{CommandFactory, Parser, Subcommand};
use clinit_backends::childlog;
use clinit_backends::cli::{self, Exit};
use clinit_backends::daemon::{self, DaemonConfig, DEFAULT_CLSTAT, DEFAULT_CLTAB, DEFAULT_SOCKET};
use clinit_backends::logview;
use clinit_backends::protocol::{self, ClientError, Reply, Request};
use clinit_backends::safe_read::read_regular;
use clinit_engine::cltab::{Cltab, MAX_CLTAB_BYTES};
use clinit_engine::lint;
use clinit_engine::status::{ClStat, GroupState, GroupStatus};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `--wait` asks the daemon for its status.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// Cluster-wide init: runs resource groups of a cltab at runlevels.
///
/// With -d, run the daemon in the foreground. Otherwise talk to a running
/// daemon: `clinit GROUP LEVEL` moves a group to a level, `clinit LEVEL`
/// moves the group named after this host, `clinit` alone makes the daemon
/// re-read its cltab, `clinit -k` shuts it down (every group is stopped:
/// SIGINT, then SIGTERM after 5 s, then SIGKILL after 15 s). The verbs
/// `status`, `tell` and `check` sit next to these compatible forms.
#[derive(Parser, Debug)]
#[command(name = "clinit", version, after_help = AFTER_HELP)]
pub(crate) struct Args {
    #[command(subcommand)]
    verb: Option<Verb>,
    /// Run the daemon in the foreground (for init, systemd or a supervisor).
    /// Refuses to start when the cltab does not exist.
    #[arg(short = 'd')]
    daemon: bool,
    /// Ask the daemon to stop every group and exit.
    #[arg(short = 'k')]
    kill: bool,
    /// With -k: wait until the daemon has exited. With a tell: wait until
    /// the group has settled at the level (DONE, PASSED or FAILED).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit status 4). Given
    /// without --wait it is a usage error (it would silently do nothing).
    #[arg(long, value_name = "SECS", default_value_t = 120.0, value_parser = cli::positive_secs, requires = "wait")]
    timeout: f64,
    /// After the action, print the status: `group level STATE` lines
    /// (the original's meaning; to only look, use `clinit status`).
    #[arg(short = 'v')]
    verbose: bool,
    /// Print the daemon's status as JSON (after the action, if any).
    #[arg(long)]
    json: bool,
    /// The level to tell, taken as a level even when it is also a group
    /// name (`clinit [GROUP] --level LEVEL`).
    #[arg(long, value_name = "LEVEL")]
    level: Option<String>,
    /// The cltab file. Its :::socket: and :::clstat: directives override -s
    /// and the default status path.
    #[arg(short = 'c', global = true, value_name = "CLTAB", default_value = DEFAULT_CLTAB)]
    cltab: PathBuf,
    /// The daemon's control socket.
    #[arg(short = 's', global = true, value_name = "SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Daemon: seconds from a stop's SIGINT to SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = cli::secs)]
    term_after: f64,
    /// Daemon: seconds from a stop's SIGINT to SIGKILL.
    #[arg(long, value_name = "SECS", default_value_t = 15.0, value_parser = cli::secs)]
    kill_after: f64,
    /// Daemon: rewrite clstat at least this often (a heartbeat for readers
    /// that judge liveness by the file's age).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = cli::secs)]
    heartbeat: f64,
    /// Daemon: members of this group (name or gid) may command the daemon;
    /// the socket becomes 0660 owned by it (default: 0600, owner and root).
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Daemon: contain entries by process group only, even where a cgroup
    /// v2 per entry could be created.
    #[arg(long)]
    no_cgroups: bool,
    // Children's output: --child-output, --log-dir, --log-max-bytes, --log-keep.
    #[command(flatten)]
    output: childlog::OutputArgs,
    /// Demo: start a daemon on a bundled example cltab in a temporary
    /// directory, switch groups through levels, print the status, shut down.
    #[arg(long, conflicts_with_all = ["daemon", "kill"])]
    demo: bool,
    /// [GROUP] LEVEL. GROUP defaults to this host's name.
    #[arg(value_name = "ARGS", num_args = 0..=2)]
    positional: Vec<String>,
    /// `-s` was given on the command line (not its default).
    #[arg(skip)]
    socket_given: bool,
    /// `-c` was given on the command line (not its default).
    #[arg(skip)]
    cltab_given: bool,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Print the status of every group, or of GROUP: `group level STATE`
    /// lines (or JSON with --json). Only reads; changes nothing.
    Status {
        /// Only this group.
        group: Option<String>,
        /// Print the daemon's status as JSON.
        #[arg(long, id = "status_json")]
        json: bool,
    },
    /// Move GROUP to LEVEL (the same as `clinit GROUP LEVEL`); with --wait,
    /// exit 0 when it is DONE or PASSED, 1 when FAILED, 4 on time-out.
    Tell {
        /// The resource group.
        group: String,
        /// The runlevel (or use --level).
        #[arg(id = "tell_level", value_name = "LEVEL")]
        level: Option<String>,
        #[command(flatten)]
        flags: TellFlags,
    },
    /// Print the log of an entry (GROUP:TAG) or of every entry of GROUP,
    /// rotated files included, merged by time; -f follows it across
    /// rotation, as `tail -F` does.
    Log {
        /// GROUP or GROUP:TAG.
        #[arg(value_name = "GROUP[:TAG]")]
        target: String,
        /// Keep printing lines as they are written.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(short = 'n', long = "lines", value_name = "N")]
        lines: Option<usize>,
    },
    /// Check a cltab (default: the -c file) and print what it defines, or
    /// every error as PATH:LINE: reason (exit 1). Starts nothing.
    Check {
        /// The cltab to check.
        cltab: Option<PathBuf>,
    },
}

/// The options of `clinit tell`. The same flags exist before a verb (the
/// compatible forms); they are not global, so `clinit check --help` or
/// `clinit log --help` do not list options that do nothing there.
#[derive(clap::Args, Debug)]
struct TellFlags {
    /// Wait until the group has settled at the level (DONE, PASSED or
    /// FAILED).
    #[arg(long, id = "tell_wait")]
    wait: bool,
    /// With --wait: give up after this many seconds (exit status 4; default
    /// 120).
    #[arg(long, id = "tell_timeout", value_name = "SECS", value_parser = cli::positive_secs, requires = "tell_wait")]
    timeout: Option<f64>,
    /// After the action, print the status: `group level STATE` lines.
    #[arg(short = 'v', id = "tell_verbose")]
    verbose: bool,
    /// Print the daemon's status as JSON after the action.
    #[arg(long, id = "tell_json")]
    json: bool,
    /// The level to tell, taken as a level even when it is also a group
    /// name (instead of LEVEL).
    #[arg(long = "level", id = "tell_forced_level", value_name = "LEVEL")]
    level: Option<String>,
}

impl Args {
    /// Fold a verb's own flags into the top-level ones the client reads, so
    /// `clinit --wait tell g 1` and `clinit tell g 1 --wait` mean the same.
    fn absorb_verb_flags(&mut self) {
        match &self.verb {
            Some(Verb::Status { json, .. }) => self.json |= *json,
            Some(Verb::Tell { flags, .. }) => {
                self.wait |= flags.wait;
                if let Some(t) = flags.timeout {
                    self.timeout = t;
                }
                self.verbose |= flags.verbose;
                self.json |= flags.json;
                if flags.level.is_some() {
                    self.level.clone_from(&flags.level);
                }
            }
            _ => {}
        }
    }
}

const AFTER_HELP: &str = "\
Files:
  cltab   group:tag:levels:mode:command lines; modes once, wait, respawn, off, test
  clstat  'Cluster::Init::Group GROUP LEVEL STATE' lines, rewritten atomically
Replies to a tell: 'level transition started', 'no such group: G', or the cltab
error (PATH:LINE: reason). A tell whose level is the name of a group, while no
entry of the target group names that level, is refused as ambiguous (it would
stop the group); --level LEVEL forces it.
Exit status:
  0  ok (with --wait: the level is DONE or PASSED)
  1  refused by the daemon, a bad cltab, or (with --wait) the level FAILED
  2  usage error
  3  the daemon is not running (no socket, or nothing listens on it)
  4  --wait timed out
  5  status: the daemon is starting (stopping what a previous daemon left running)
Set RUST_LOG (e.g. RUST_LOG=debug) to change the daemon's log level.";

/// Text from argv or from the daemon, made safe for the terminal: control
/// characters (an escape sequence that would rewrite the screen, a newline
/// that would fake an output line) are printed escaped, `\u{1b}`.
fn esc(text: &str) -> String {
    clinit_engine::located::escape_controls(text)
}

fn main() -> ExitCode {
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let mut args = match <Args as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let given = |id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    (args.socket_given, args.cltab_given) = (given("socket"), given("cltab"));
    args.absorb_verb_flags();
    cli::init_logging();
    if args.demo {
        return demo::run();
    }
    if args.daemon {
        return run_daemon(&args);
    }
    if args.verb.is_some() && (args.kill || !args.positional.is_empty()) {
        usage("-k and GROUP LEVEL arguments do not go with a verb (status, tell, check)");
    }
    match &args.verb {
        Some(Verb::Check { cltab }) => check(cltab.as_deref().unwrap_or(&args.cltab)).into(),
        Some(Verb::Log { target, follow, lines }) => {
            Client::new(&args).log(target, *follow, *lines).into()
        }
        Some(Verb::Status { group, .. }) => Client::new(&args).status(group.as_deref()).into(),
        Some(Verb::Tell { group, level, .. }) => {
            let level = match (level, &args.level) {
                (Some(level), None) => Told::Word(level.clone()),
                (None, Some(level)) => Told::Forced(level.clone()),
                _ => usage("tell needs exactly one of LEVEL and --level LEVEL"),
            };
            Client::new(&args).run(Some(Action::Tell { group: group.clone(), level })).into()
        }
        None => {
            let action = compatible_action(&args);
            Client::new(&args).run(action).into()
        }
    }
}

/// Print a usage error as clap does and exit with status 2.
fn usage(msg: &str) -> ! {
    Args::command().error(clap::error::ErrorKind::ArgumentConflict, msg).exit()
}

/// What the compatible command line asks for.
fn compatible_action(args: &Args) -> Option<Action> {
    if args.kill {
        if !args.positional.is_empty() || args.level.is_some() {
            usage("-k takes no GROUP or LEVEL");
        }
        return Some(Action::Shutdown);
    }
    let tell = |group: String, level: Told| Some(Action::Tell { group, level });
    match (args.positional.as_slice(), &args.level) {
        ([], None) if args.verbose || args.json => None,
        ([], None) => Some(Action::Reread),
        ([level], None) => tell(hostname(), Told::Word(level.clone())),
        ([group, level], None) => tell(group.clone(), Told::Word(level.clone())),
        ([], Some(level)) => tell(hostname(), Told::Forced(level.clone())),
        ([group], Some(level)) => tell(group.clone(), Told::Forced(level.clone())),
        _ => usage("with --level, give at most GROUP"),
    }
}

fn run_daemon(args: &Args) -> ExitCode {
    // The original started an empty daemon on a missing cltab; a typo in -c
    // then looked like a healthy node running nothing.
    if let Err(e) = std::fs::metadata(&args.cltab) {
        eprintln!(
            "clinit: cannot use cltab {}: {e}; refusing to start (an empty file runs no groups)",
            args.cltab.display()
        );
        return Exit::Refused.into();
    }
    let mut cfg = DaemonConfig::new(args.cltab.clone(), args.socket.clone());
    cfg.clstat = PathBuf::from(DEFAULT_CLSTAT);
    cfg.init.escalation.term_after = cli::millis(args.term_after);
    cfg.init.escalation.kill_after = cli::millis(args.kill_after.max(args.term_after));
    cfg.init.heartbeat = Some(cli::millis(args.heartbeat.max(0.001)));
    cfg.socket_group = args.socket_group.clone();
    cfg.cgroups = !args.no_cgroups;
    cfg.child_output = args.output.child_output;
    cfg.log_dir = args.output.log_dir.clone();
    cfg.rotation = args.output.rotation();
    cli::run_daemon("clinit", daemon::run(cfg))
}

/// The cltab's text as a client needs it (its directives, the ambiguity
/// check): read like the daemon reads it, so a FIFO or `/dev/zero` at the
/// path never hangs or bloats the client. `None` when it cannot be read.
fn read_cltab_text(path: &Path) -> Option<String> {
    let bytes = read_regular(path, MAX_CLTAB_BYTES).ok()??;
    String::from_utf8(bytes).ok()
}

/// `clinit check [CLTAB]`: parse, report, start nothing.
fn check(path: &Path) -> Exit {
    // The daemon's own reader: regular files only, at most MAX_CLTAB_BYTES.
    let bytes = match read_regular(path, MAX_CLTAB_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            eprintln!("clinit: cannot read cltab {}: no such file", path.display());
            return Exit::Refused;
        }
        Err(e) => {
            eprintln!("clinit: {e}");
            return Exit::Refused;
        }
    };
    // The daemon's own parser: the same refusals (empty file, NUL, invalid
    // UTF-8, stray CR) with the same file:line.
    match Cltab::parse_bytes(&bytes, &path.display().to_string()) {
        Ok(table) => {
            for (name, value) in &table.other_directives {
                println!("{}: warning: unknown directive :::{name}:{value}", path.display());
            }
            // Lines that parse but cannot run here: an unknown user or
            // group, a missing working directory.
            let problems = clinit_backends::entry_env::host_problems(&table.entries);
            for (line, why) in &problems {
                println!("{}:{line}: {}", path.display(), esc(why));
            }
            if !problems.is_empty() {
                return Exit::Refused;
            }
            let groups = table.groups();
            println!(
                "{}: ok: {} entries in {} groups ({})",
                path.display(),
                table.entries.len(),
                groups.len(),
                groups.join(", ")
            );
            Exit::Ok
        }
        Err(errors) => {
            println!("{errors}");
            Exit::Refused
        }
    }
}

/// The socket and status paths a client should use: the cltab's directives
/// win, as in the original. A cltab that does not parse still yields its
/// directives (a client must be able to reach a daemon to be told why).
fn client_paths(args: &Args) -> (PathBuf, PathBuf) {
    let text = read_cltab_text(&args.cltab).unwrap_or_default();
    let (socket, clstat) = Cltab::scan_directives(&text);
    (
        socket.map(PathBuf::from).unwrap_or_else(|| args.socket.clone()),
        clstat.map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CLSTAT)),
    )
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A level as the operator gave it.
#[derive(Debug, Clone)]
enum Told {
    /// A positional word: refused when it is ambiguous ([`lint::ambiguous_tell`]).
    Word(String),
    /// `--level LEVEL`: taken as a level whatever it is.
    Forced(String),
}

/// A mutating request of the client.
#[derive(Debug, Clone)]
enum Action {
    Tell { group: String, level: Told },
    Shutdown,
    Reread,
}

/// The client side of one `clinit` invocation.
struct Client<'a> {
    args: &'a Args,
    socket: PathBuf,
    clstat: PathBuf,
}

impl<'a> Client<'a> {
    fn new(args: &'a Args) -> Self {
        let (socket, clstat) = client_paths(args);
        Client { args, socket, clstat }
    }

    fn call(&self, request: &Request) -> Result<Reply, ClientError> {
        protocol::call(&self.socket, request, CLIENT_TIMEOUT)
    }

    /// Report a failed call; the exit status says whether the daemon runs.
    fn failed(&self, e: &ClientError) -> Exit {
        if self.args.json {
            println!("{}", serde_json::json!({ "error": e.to_string() }));
        }
        eprintln!("clinit: {e}");
        if !e.daemon_not_running() {
            return Exit::Refused;
        }
        // A cltab that is empty or unreadable names no socket: the daemon
        // may well run on the one its last good table named. Said only
        // when the socket came from that default (with -s the operator
        // chose it), and for the default cltab only when it exists.
        if let Some(why) = self.socket_unknown_because() {
            eprintln!(
                "clinit: tried {}, the default socket, because {} {why}, so its :::socket: \
                 directive (if it had one) is unknown; a daemon started on it may listen on the \
                 socket its last good table named: give that socket with -s",
                self.socket.display(),
                self.args.cltab.display()
            );
        }
        // The file a dead daemon left is not the truth: say it is there,
        // never print it as the status.
        if let Ok(age) = std::fs::metadata(&self.clstat).and_then(|m| m.modified()) {
            let secs = age.elapsed().map(|d| d.as_secs()).unwrap_or(0);
            eprintln!(
                "clinit: {} was last written {secs} s ago by a daemon that is gone; not shown",
                self.clstat.display()
            );
        }
        Exit::NotRunning
    }

    /// Why the socket had to be the default one though a cltab was meant to
    /// name it: `None` when -s was given, the cltab was read, or the
    /// default cltab (no -c) does not exist (no daemon was meant to read it).
    fn socket_unknown_because(&self) -> Option<&'static str> {
        if self.args.socket_given {
            return None;
        }
        match std::fs::metadata(&self.args.cltab) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.args.cltab_given.then_some("does not exist")
            }
            Err(_) => Some("cannot be read"),
            Ok(m) if m.len() == 0 => Some("is empty (0 bytes)"),
            Ok(_) if read_cltab_text(&self.args.cltab).is_none() => Some("cannot be read"),
            Ok(_) => None,
        }
    }

    /// `clinit log GROUP[:TAG]`: the log directory is the running daemon's
    /// (from its status), else --log-dir, the :::log: directive, or the
    /// default beside the status file.
    fn log(&self, target: &str, follow: bool, lines: Option<usize>) -> Exit {
        let (group, tag) = match target.split_once(':') {
            Some((g, t)) => (g.to_string(), Some(t.to_string())),
            None => (target.to_string(), None),
        };
        let from_daemon = self
            .status_doc()
            .ok()
            .and_then(|doc| doc["child_output"]["log_dir"].as_str().map(PathBuf::from));
        let directive = read_cltab_text(&self.args.cltab)
            .and_then(|t| Cltab::parse(&t, "cltab").ok())
            .and_then(|t| t.log.map(PathBuf::from));
        let dir = from_daemon
            .or(directive)
            .or_else(|| self.args.output.log_dir.clone())
            .unwrap_or_else(|| daemon::default_log_dir(&self.clstat));
        let list = || logview::entry_files(&dir, &group, tag.as_deref());
        let files = match list() {
            Ok(files) if !files.is_empty() => files,
            Ok(_) | Err(_) if follow => Vec::new(),
            Ok(_) => {
                eprintln!("clinit: no log for {} in {}", daemon::escape(target), dir.display());
                return Exit::Refused;
            }
            Err(e) => {
                eprintln!(
                    "clinit: no log for {} in {}: {e}",
                    daemon::escape(target),
                    dir.display()
                );
                return Exit::Refused;
            }
        };
        match logview::show(files, lines, follow, || list().unwrap_or_default()) {
            Ok(()) => Exit::Ok,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
            Err(e) => {
                eprintln!("clinit: reading the log of {}: {e}", daemon::escape(target));
                Exit::Refused
            }
        }
    }

    /// The daemon's status document.
    fn status_doc(&self) -> Result<serde_json::Value, ClientError> {
        let reply = self.call(&Request::Status)?;
        Ok(reply.status.unwrap_or(serde_json::Value::Null))
    }

    /// Carry out `action` (if any), then print the status if asked.
    fn run(&self, action: Option<Action>) -> Exit {
        let mut code = Exit::Ok;
        if let Some(action) = action {
            code = match self.act(action) {
                Ok(code) => code,
                Err(e) => return self.failed(&e),
            };
        }
        if self.args.json || self.args.verbose {
            // -k --wait: the daemon is gone by design; nothing to print.
            if self.args.kill && self.args.wait {
                return code;
            }
            match self.print_status(None) {
                Exit::Ok => {}
                other => return other,
            }
        }
        code
    }

    fn act(&self, action: Action) -> Result<Exit, ClientError> {
        match action {
            Action::Reread => {
                eprintln!(
                    "clinit: asking the daemon on {} to re-read its cltab",
                    self.socket.display()
                );
                let reply = self.call(&Request::Reread)?;
                Ok(self.reply(&reply, false))
            }
            Action::Shutdown => {
                let pid = if self.args.wait { daemon_pid(&self.status_doc()?) } else { None };
                eprintln!(
                    "clinit: asking the daemon on {} to halt every group and exit",
                    self.socket.display()
                );
                let reply = self.call(&Request::Shutdown)?;
                let code = self.reply(&reply, false);
                if code != Exit::Ok || !self.args.wait {
                    return Ok(code);
                }
                let limit = Duration::from_secs_f64(self.args.timeout);
                if self.wait_gone(pid, limit) {
                    Ok(Exit::Ok)
                } else {
                    eprintln!("clinit: the daemon is still running after {} s", self.args.timeout);
                    Ok(Exit::TimedOut)
                }
            }
            Action::Tell { group, level } => {
                let level = match level {
                    Told::Forced(level) => level,
                    Told::Word(level) => {
                        let doc = self.status_doc()?;
                        if let Some(refused) = self.ambiguous(&doc, &group, &level) {
                            eprintln!("clinit: refused: {}", esc(&refused.to_string()));
                            return Ok(Exit::Refused);
                        }
                        level
                    }
                };
                eprintln!("clinit: telling group {} to go to level {}", esc(&group), esc(&level));
                let reply =
                    self.call(&Request::Tell { group: group.clone(), level: level.clone() })?;
                let code = self.reply(&reply, true);
                if code != Exit::Ok || !self.args.wait {
                    return Ok(code);
                }
                self.wait_settled(&group, &level)
            }
        }
    }

    /// Print a reply as the original did (a tell's always, others' on
    /// failure); a refusal is exit status 1.
    fn reply(&self, reply: &Reply, always: bool) -> Exit {
        if always || !reply.ok {
            println!("{}", esc(&reply.msg));
        }
        if reply.ok {
            Exit::Ok
        } else {
            Exit::Refused
        }
    }

    /// Apply [`lint::ambiguous_tell`] to the cltab the daemon serves (named
    /// in its status), or to `-c` when that path is relative to somewhere
    /// else. An unreadable or bad table skips the check: the daemon reads the
    /// same file for the tell and reports its errors.
    fn ambiguous(
        &self,
        doc: &serde_json::Value,
        group: &str,
        level: &str,
    ) -> Option<lint::AmbiguousTell> {
        let served = doc.get("cltab").and_then(|c| c.as_str()).map(PathBuf::from);
        let path = served.filter(|p| p.is_absolute()).unwrap_or_else(|| self.args.cltab.clone());
        let text = read_cltab_text(&path)?;
        let table = Cltab::parse(&text, &path.display().to_string()).ok()?;
        lint::ambiguous_tell(&table, group, level)
    }

    /// `--wait` after a tell: until the group is settled at `level`.
    fn wait_settled(&self, group: &str, level: &str) -> Result<Exit, ClientError> {
        let limit = Duration::from_secs_f64(self.args.timeout);
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < limit {
            // Only the group lines: the per-entry array is skipped unparsed.
            let brief = protocol::call_status_brief(&self.socket, CLIENT_TIMEOUT)?;
            let now = brief.status.and_then(|s| {
                s.groups
                    .into_iter()
                    .find(|g| g.group == group)
                    .map(|g| GroupStatus { level: g.level, state: GroupState::parse(&g.state) })
            });
            if let Some(st) = &now {
                if st.level == level && st.state.is_settled() && st.state != GroupState::Configured
                {
                    return Ok(match st.state {
                        GroupState::Failed => {
                            eprintln!(
                                "clinit: group {} FAILED at level {}",
                                esc(group),
                                esc(level)
                            );
                            Exit::Refused
                        }
                        _ => Exit::Ok,
                    });
                }
            }
            last = now;
            std::thread::sleep(WAIT_POLL);
        }
        let now =
            last.map(|s| format!("{} {}", s.level, s.state)).unwrap_or_else(|| "no status".into());
        eprintln!(
            "clinit: group {} has not settled at level {} after {} s (now: {})",
            esc(group),
            esc(level),
            self.args.timeout,
            esc(&now)
        );
        Ok(Exit::TimedOut)
    }

    /// `-k --wait`: until nothing answers on the socket and the daemon's
    /// process is gone. Asks for the status (a request the daemon answers
    /// quietly) rather than connecting and hanging up, which the daemon
    /// would log as an empty request.
    fn wait_gone(&self, pid: Option<u32>, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let gone = match protocol::call_status_brief(&self.socket, limit) {
                Ok(_) => false,
                Err(e) => e.daemon_not_running(),
            };
            if gone && pid.is_none_or(|pid| !process_alive(pid)) {
                return true;
            }
            std::thread::sleep(WAIT_POLL);
        }
        false
    }

    /// `clinit status [GROUP]`, `-v` and `--json`: ask the daemon, print.
    fn status(&self, group: Option<&str>) -> Exit {
        self.print_status(group)
    }

    fn print_status(&self, group: Option<&str>) -> Exit {
        let doc = match self.status_doc() {
            Ok(doc) => doc,
            Err(e) => return self.failed(&e),
        };
        let all = groups(&doc);
        // A restarted daemon stopping its predecessor's processes has no
        // groups yet: say so on stdout, where the status goes, and exit
        // with its own code (not 0: nothing is running yet).
        let starting = doc.get("starting").and_then(|s| s.as_str()).map(esc);
        if let (Some(text), false) = (&starting, self.args.json) {
            println!("clinit: {text}");
        }
        if let Some(g) = group {
            if !all.groups.contains_key(g) {
                eprintln!(
                    "clinit: no status for group {} (not in the cltab, or never told a level)",
                    esc(g)
                );
                return Exit::Refused;
            }
        }
        if self.args.json {
            let mut doc = doc;
            if let (Some(g), Some(list)) =
                (group, doc.get_mut("groups").and_then(|l| l.as_array_mut()))
            {
                list.retain(|entry| entry.get("group").and_then(|x| x.as_str()) == Some(g));
            }
            println!("{doc}");
        } else if self.args.verbose && self.args.verb.is_none() {
            // -v: the original's lines, unchanged for scripts.
            print!("{}", all.query(None, None));
        } else {
            for (g, st) in &all.groups {
                if group.is_none_or(|want| want == g) {
                    println!("{g} {} {}{}", st.level, st.state, trouble(&doc, g));
                }
            }
        }
        if starting.is_some() {
            Exit::Starting
        } else {
            Exit::Ok
        }
    }
}

/// What a group's `DONE` may hide, from the status document's per-entry
/// states: ` (httpd throttled, next start in 55 s; worker stopping, SIGTERM
/// sent)`, or "" when nothing is wrong.
fn trouble(doc: &serde_json::Value, group: &str) -> String {
    let mut notes = Vec::new();
    for e in doc.get("entries").and_then(|e| e.as_array()).into_iter().flatten() {
        let field = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let ms = |k: &str| e.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        if field("group") != group {
            continue;
        }
        let tag = field("tag");
        let note = match field("state") {
            "throttled" => {
                format!("{tag} respawning too fast, next start in {} s", ms("in_ms").div_ceil(1000))
            }
            "starved" => {
                format!("{tag} not started: {}, retrying in {} ms", field("reason"), ms("in_ms"))
            }
            "stopping" => format!("{tag} stopping for {} s", ms("for_ms") / 1000),
            "failed" if !field("failure").is_empty() => {
                format!("{tag} failed: {}", field("failure"))
            }
            "failed" => format!("{tag} failed"),
            "exited" if field("mode") == "respawn" => format!("{tag} down"),
            _ => continue,
        };
        notes.push(note);
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

/// The `groups` of a status document as a [`ClStat`].
fn groups(doc: &serde_json::Value) -> ClStat {
    let mut stat = ClStat::default();
    for g in doc.get("groups").and_then(|g| g.as_array()).into_iter().flatten() {
        let field = |k: &str| g.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
        stat.groups.insert(
            field("group"),
            GroupStatus { level: field("level"), state: GroupState::parse(&field("state")) },
        );
    }
    stat
}

fn daemon_pid(doc: &serde_json::Value) -> Option<u32> {
    doc.get("pid").and_then(|p| p.as_u64()).and_then(|p| u32::try_from(p).ok())
}

/// Is this process still running (not gone, not a zombie)? Linux /proc.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z")
        }
        Err(_) => false,
    }
}

/// The daemon's status for the demo: asked over the socket.
fn read_status(socket: &Path) -> ClStat {
    match protocol::call(socket, &Request::Status, CLIENT_TIMEOUT) {
        Ok(Reply { status: Some(doc), .. }) => groups(&doc),
        _ => ClStat::default(),
    }
}

mod demo {
    //! `clinit --demo`: a guided tour on a temporary directory.

    use super::*;
    use std::process::{Command, Stdio};

    const DEMO_CLTAB: &str = include_str!("../../examples/demo.cltab");

    fn say(text: &str) {
        println!("\n# {text}");
    }

    struct Tour {
        socket: PathBuf,
        clstat: PathBuf,
    }

    impl Tour {
        fn tell(&self, group: &str, level: &str) -> Result<(), String> {
            println!("$ clinit {group} {level}");
            let req = Request::Tell { group: group.into(), level: level.into() };
            let reply =
                protocol::call(&self.socket, &req, CLIENT_TIMEOUT).map_err(|e| e.to_string())?;
            println!("{}", reply.msg);
            self.settle(group)
        }

        /// Wait (bounded) until the group has finished its level change.
        fn settle(&self, group: &str) -> Result<(), String> {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                let st = read_status(&self.socket);
                if st.get(group).is_some_and(|s| s.state.is_settled()) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(format!("group {group} did not settle within 20 s"))
        }

        fn show(&self) {
            println!("$ clinit -v");
            print!("{}", read_status(&self.socket).query(None, None));
        }
    }

    pub fn run() -> ExitCode {
        match tour() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clinit demo failed: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn tour() -> Result<(), String> {
        let dir =
            tempfile::Builder::new().prefix("clinit-demo.").tempdir().map_err(|e| e.to_string())?;
        let dir_s = dir.path().display().to_string();
        let cltab = dir.path().join("cltab");
        std::fs::write(&cltab, DEMO_CLTAB.replace("@DIR@", &dir_s)).map_err(|e| e.to_string())?;
        let log_path = dir.path().join("daemon.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        say(&format!("Demo directory {dir_s}; the cltab is:"));
        print!("{}", DEMO_CLTAB.replace("@DIR@", &dir_s));
        say("Starting the daemon: clinit -d -c cltab");
        let mut child = Command::new(exe)
            .arg("-d")
            .arg("-c")
            .arg(&cltab)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        let tour = Tour { socket: dir.path().join("clinit.s"), clstat: dir.path().join("clstat") };
        let result = steps(&tour, &mut child);
        if result.is_err() {
            // Never leave a daemon behind: it stops its own children on SIGTERM.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        say("The daemon's log:");
        print!("{}", std::fs::read_to_string(&log_path).unwrap_or_default());
        result
    }

    fn steps(tour: &Tour, child: &mut std::process::Child) -> Result<(), String> {
        let start = Instant::now();
        while protocol::call(&tour.socket, &Request::Status, CLIENT_TIMEOUT).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("the daemon did not come up within 10 s".into());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the daemon exited at start-up ({status})"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        say("Run web's test entries: only `test` entries in the level, so PASSED or FAILED");
        tour.tell("web", "test")?;
        tour.show();
        say("Start web: the `wait` entry runs first, then the respawned server");
        tour.tell("web", "start")?;
        tour.show();
        say("Groups are independent: db goes to level 1 while web stays up");
        tour.tell("db", "1")?;
        say("web to level full: the server is kept (it is in both levels), the worker starts");
        tour.tell("web", "full")?;
        tour.show();
        say("web to stop: server and worker get SIGINT, then the stop script runs");
        tour.tell("web", "stop")?;
        tour.show();
        say("Shut down: clinit -k --wait (every group halted, then the daemon exits)");
        let reply = protocol::call(&tour.socket, &Request::Shutdown, CLIENT_TIMEOUT)
            .map_err(|e| e.to_string())?;
        println!("{}", reply.msg);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                println!(
                    "daemon exited ({status}) after {:?}; clstat removed: {}",
                    start.elapsed(),
                    !tour.clstat.exists()
                );
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err("the daemon did not exit within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
