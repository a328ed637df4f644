//! `clinit`: the per-node init daemon and its client (Cluster::Init
//! compatible command line).

use clap::Parser;
use clinit_backends::cli;
use clinit_backends::daemon::{self, DaemonConfig, DEFAULT_CLSTAT, DEFAULT_CLTAB, DEFAULT_SOCKET};
use clinit_backends::protocol::{self, Reply, Request};
use clinit_engine::cltab::Cltab;
use clinit_engine::status::ClStat;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Cluster-wide init: runs resource groups of a cltab at runlevels.
///
/// With -d, run the daemon in the foreground. Otherwise talk to a running
/// daemon: `clinit GROUP LEVEL` moves a group to a level, `clinit LEVEL`
/// moves the group named after this host, `clinit` alone makes the daemon
/// re-read its cltab, `clinit -k` shuts it down (every group is stopped:
/// SIGINT, then SIGTERM after 5 s, then SIGKILL after 15 s).
#[derive(Parser, Debug)]
#[command(name = "clinit", version, after_help = AFTER_HELP)]
struct Args {
    /// Run the daemon in the foreground (for init, systemd or a supervisor).
    #[arg(short = 'd')]
    daemon: bool,
    /// Ask the daemon to stop every group and exit.
    #[arg(short = 'k')]
    kill: bool,
    /// With -k: wait until the daemon has exited.
    #[arg(long, requires = "kill")]
    wait: bool,
    /// After the action, print the status: `group level STATE` lines.
    #[arg(short = 'v')]
    verbose: bool,
    /// Print the daemon's status as JSON.
    #[arg(long)]
    json: bool,
    /// The cltab file. Its :::socket: and :::clstat: directives override -s
    /// and the default status path.
    #[arg(short = 'c', value_name = "CLTAB", default_value = DEFAULT_CLTAB)]
    cltab: PathBuf,
    /// The daemon's control socket.
    #[arg(short = 's', value_name = "SOCKET", default_value = DEFAULT_SOCKET)]
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
    /// Demo: start a daemon on a bundled example cltab in a temporary
    /// directory, switch groups through levels, print the status, shut down.
    #[arg(long, conflicts_with_all = ["daemon", "kill"])]
    demo: bool,
    /// [GROUP] LEVEL. GROUP defaults to this host's name.
    #[arg(value_name = "ARGS", num_args = 0..=2)]
    positional: Vec<String>,
}

const AFTER_HELP: &str = "\
Files:
  cltab   group:tag:levels:mode:command lines; modes once, wait, respawn, off, test
  clstat  'Cluster::Init::Group GROUP LEVEL STATE' lines, rewritten atomically
Replies to a tell: 'level transition started', 'no such group: G', or the cltab
error (PATH:LINE: reason). The exit status is 1 when the daemon refused.
Set RUST_LOG (e.g. RUST_LOG=debug) to change the daemon's log level.";

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    if args.demo {
        return demo::run();
    }
    if args.daemon {
        return run_daemon(&args);
    }
    run_client(&args)
}

fn run_daemon(args: &Args) -> ExitCode {
    let mut cfg = DaemonConfig::new(args.cltab.clone(), args.socket.clone());
    cfg.clstat = PathBuf::from(DEFAULT_CLSTAT);
    cfg.init.escalation.term_after = cli::millis(args.term_after);
    cfg.init.escalation.kill_after = cli::millis(args.kill_after.max(args.term_after));
    cfg.init.heartbeat = Some(cli::millis(args.heartbeat.max(0.001)));
    cfg.socket_group = args.socket_group.clone();
    cfg.cgroups = !args.no_cgroups;
    cli::run_daemon("clinit", daemon::run(cfg))
}

/// The socket and status paths a client should use: the cltab's directives
/// win, as in the original. A cltab that does not parse still yields its
/// directives (a client must be able to reach a daemon to be told why).
fn client_paths(args: &Args) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(&args.cltab).unwrap_or_default();
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

fn run_client(args: &Args) -> ExitCode {
    let (socket, clstat) = client_paths(args);
    let request = if args.kill {
        Some(Request::Shutdown)
    } else {
        match args.positional.as_slice() {
            [] if args.verbose || args.json => None,
            [] => Some(Request::Reread),
            [level] => Some(Request::Tell { group: hostname(), level: level.clone() }),
            [group, level] => Some(Request::Tell { group: group.clone(), level: level.clone() }),
            _ => unreachable!("clap limits ARGS to two values"),
        }
    };
    let mut code = ExitCode::SUCCESS;
    if let Some(request) = request {
        let print_reply = matches!(request, Request::Tell { .. });
        match protocol::call(&socket, &request, CLIENT_TIMEOUT) {
            Ok(reply) => {
                if print_reply || !reply.ok {
                    println!("{}", reply.msg);
                }
                if !reply.ok {
                    code = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("clinit: {e}");
                return ExitCode::FAILURE;
            }
        }
        if args.kill && args.wait && !wait_gone(&socket, Duration::from_secs(120)) {
            eprintln!("clinit: the daemon is still running after 120 s");
            code = ExitCode::FAILURE;
        }
    }
    if args.json {
        match protocol::call(&socket, &Request::Status, CLIENT_TIMEOUT) {
            Ok(Reply { status: Some(status), .. }) => println!("{status}"),
            Ok(reply) => println!("{}", serde_json::json!({"error": reply.msg})),
            Err(e) => println!("{}", serde_json::json!({"error": e.to_string()})),
        }
    } else if args.verbose {
        print!("{}", read_status(&socket, &clstat).query(None, None));
    }
    code
}

/// The daemon's status: asked over the socket, or read from the clstat
/// file when the daemon does not answer.
fn read_status(socket: &Path, clstat: &Path) -> ClStat {
    if let Ok(Reply { status: Some(v), .. }) =
        protocol::call(socket, &Request::Status, CLIENT_TIMEOUT)
    {
        if let Some(groups) = v.get("groups").and_then(|g| g.as_array()) {
            let mut text = String::new();
            for g in groups {
                let field = |k: &str| g.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
                text.push_str(&format!(
                    "Cluster::Init::Group {} {} {}\n",
                    field("group"),
                    field("level"),
                    field("state")
                ));
            }
            return ClStat::parse(&text);
        }
    }
    ClStat::parse(&std::fs::read_to_string(clstat).unwrap_or_default())
}

/// Wait until nothing listens on the socket any more.
fn wait_gone(socket: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::os::unix::net::UnixStream::connect(socket).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
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
                let st = read_status(&self.socket, &self.clstat);
                if st.get(group).is_some_and(|s| s.state.is_settled()) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(format!("group {group} did not settle within 20 s"))
        }

        fn show(&self) {
            println!("$ clinit -v");
            print!("{}", read_status(&self.socket, &self.clstat).query(None, None));
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
