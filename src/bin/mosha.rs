//! `mosha`: the head-less HA monitor of one node (the OpenMosix::HA
//! successor), and `mosha status`, the operator's one-shot cluster table.
//! Thin: argument parsing and wiring; the work is in
//! `clinit_backends::mosha` and `clinit_backends::cluster_status`.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use clinit_backends::cli::{self, Exit};
use clinit_backends::cluster_status;
use clinit_backends::heartbeat::HeartbeatMembership;
use clinit_backends::membership::Membership;
use clinit_backends::mosha::{self, MembershipKind, MoshaConfig};
use clinit_backends::openmosix::{self, HpcMembership};
use clinit_backends::shared::{FsStore, NodePaths, SharedFile, SharedStore};
use clinit_engine::cltab::{Cltab, MAX_CLTAB_BYTES};
use clinit_engine::hactl::Hactl;
use clinit_engine::lint;
use clinit_engine::monitor::ranked::RankedParams;
use clinit_engine::monitor::replicate::parse_copy;
use clinit_engine::monitor::{ClassicParams, PolicyConfig};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Keeps every resource group wanted in hactl running on exactly one live
/// node that passes the group's tests, with no head node.
///
/// Runs the node's init machine itself: its control socket is
/// <mfsbase>/<node>/<varpath>/clinit.s (`clinit -s SOCKET -v` shows the local
/// groups), its status <mfsbase>/<node>/<varpath>/clstat. hactl and cltab in
/// that directory are replicated from the newest copy on any live node.
/// SIGTERM or SIGINT stops every local group, waits for them, and exits 0.
///
/// Every flag can also be set in the settings file (default
/// /etc/clinit/mosha.toml, `timeout = 3`, `mfsbase = "/mfs"`), so `mosha
/// status` and `mosha check` need no repeated flags; the command line wins.
#[derive(Parser, Debug)]
#[command(name = "mosha", version, after_help = AFTER_HELP, args_override_self = true)]
pub(crate) struct Args {
    /// Settings file: TOML, one `flag = value` per long flag (without the
    /// dashes). A missing default file is fine; a missing named one is not.
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Create --mfsbase (and accept a missing --hpcbase) for a new cluster.
    /// Without it mosha refuses a base directory that does not exist, so a
    /// typo does not start a new, empty cluster tree.
    #[arg(long)]
    init: bool,
    /// This node's number (default: from `--whois`, i.e. `mosctl whois`).
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..))]
    node: Option<u32>,
    /// Where every node's filesystem is visible, as <mfsbase>/<node>/.
    #[arg(long, global = true, value_name = "DIR", default_value = "/mfs")]
    mfsbase: PathBuf,
    /// openMosix proc tree: node N is up iff bit 2 is set in <hpcbase>/nodes/N/status.
    #[arg(long, global = true, value_name = "DIR", default_value = "/proc/hpc")]
    hpcbase: PathBuf,
    /// HA directory relative to each node's root.
    #[arg(long, global = true, value_name = "PATH", default_value = "var/mosix-ha")]
    varpath: PathBuf,
    /// Under classic: a node whose clstat is older than this is stale
    /// (STOMITH), and clstat is rewritten every third of it. Under
    /// --policy ranked it is not used by the monitor: the lease H (2 s by
    /// default) sets every time (heartbeat H/16, a record older than 3·H is
    /// stale); only `mosha standby`'s heartbeat-file membership still
    /// reads it.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 60.0, value_parser = cli::positive_secs)]
    timeout: f64,
    /// Run `CMD <node>` against a stale node, once per stale episode
    /// (default: log only).
    #[arg(long, value_name = "CMD")]
    stomith: Option<String>,
    /// Fence nobody during this long after start-up (the original's fixed
    /// 120 s: a freshly started node must first see fresh status files).
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0, value_parser = cli::positive_secs)]
    stomith_grace: f64,
    /// Longest a STOMITH command may run before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = cli::positive_secs)]
    stomith_timeout: f64,
    /// Decision policy. Global, so that `mosha standby ... --policy ranked`
    /// and `mosha hactl set ... --policy ranked` read as they are written.
    #[arg(long, global = true, value_enum, default_value = "classic")]
    policy: PolicyName,
    /// Where membership comes from.
    #[arg(long, global = true, value_enum, default_value = "openmosix")]
    membership: MembershipName,
    /// Seed of the planning coin flips and backoffs (default: from the
    /// clock and pid; logged at start, so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Command whose output holds this node's number (first run of digits).
    #[arg(long, global = true, value_name = "CMD", default_value = "mosctl whois")]
    whois: String,
    /// Record every input of this node's machines to FILE (a trace that
    /// `clinit-sim replay FILE` re-runs decision for decision), with
    /// wall-clock checkpoints: record on every node, and `clinit-sim replay
    /// n1 n2 n3` replays an incident cluster-wide. A recording already at
    /// FILE (an earlier incarnation's, say one killed with -9) is kept as
    /// FILE.1, older ones as FILE.2 .. FILE.9: replay a killed one with
    /// `clinit-sim replay FILE.1 --killed N`.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// On SIGTERM/SIGINT, wait this long for the groups to stop before
    /// halting them anyway.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0, value_parser = cli::positive_secs)]
    shutdown_wait: f64,
    /// Run `sh -c CMD` once per membership transition where a node comes
    /// up, in transition order, one at a time, with MOSHA_TRANSITION,
    /// MOSHA_NODE, MOSHA_CHANGE, MOSHA_TIME, MOSHA_REASON and MOSHA_ME set.
    #[arg(long, value_name = "CMD")]
    on_nodeup: Option<String>,
    /// As --on-nodeup, for a node going down.
    #[arg(long, value_name = "CMD")]
    on_nodedown: Option<String>,
    /// Longest a hook may run before its process group is killed (logged).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = cli::positive_secs)]
    hook_timeout: f64,
    /// `--policy ranked`: the cluster's nodes, as first known membership
    /// (e.g. 1,2,3; later kept in the node's durable state).
    #[arg(long, value_delimiter = ',', value_name = "NODES")]
    known: Option<Vec<u32>>,
    /// `--policy ranked`: move a running group back to a better-ranked node
    /// once that node has held its lease for 10 s (default off: a running
    /// group stays where it runs, as every move is an outage).
    #[arg(long)]
    failback: bool,
    /// Contain services by process group only, even where a cgroup v2 per
    /// entry could be created (as `clinit --no-cgroups`; in mosha.toml
    /// `no-cgroups = true`).
    #[arg(long)]
    no_cgroups: bool,
    // Children's output, as clinit's: --child-output, --log-dir,
    // --log-max-bytes, --log-keep (in mosha.toml: `child-output = "journal"`).
    #[command(flatten)]
    output: clinit_backends::childlog::OutputArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print one table of the cluster: nodes (up, stale, unreadable, fenced)
    /// and groups (wanted level, where they run, state on every node).
    /// Under --policy ranked every node's record is read twice, 1.5 s
    /// apart: a node whose record did not move, whose lease lapsed or that
    /// a peer fenced is NOT LIVE (the reason is given) and its groups are
    /// not counted as running there. Exit 0 when quorum is held (ranked:
    /// the local node is live), 3 when membership is unknown, 4 when
    /// quorum is lost or unknown, 1 when no node is found.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Redraw every SECS seconds until interrupted (like crm_mon).
        #[arg(long, value_name = "SECS", value_parser = cli::positive_secs)]
        watch: Option<f64>,
    },
    /// Check this node's hactl and cltab (or the given files) without
    /// starting anything: both parse, and every level hactl wants is named
    /// by some entry of its group (a typo such as `sttart` runs nothing).
    /// Exit 0 when all is well, 1 with every problem listed.
    Check {
        /// The hactl to check (default: <mfsbase>/<node>/<varpath>/hactl).
        #[arg(long, value_name = "FILE")]
        hactl: Option<PathBuf>,
        /// The cltab to check (default: <mfsbase>/<node>/<varpath>/cltab).
        #[arg(long, value_name = "FILE")]
        cltab: Option<PathBuf>,
    },
    /// Put NODE in standby (`on`) or take it out (`off`): under `--policy
    /// ranked` a standby node stops its groups gracefully, others take
    /// them, and it takes no new ones. Written as a `#@standby` line into
    /// the hactl the cluster converges on (as `status` shows it), saved in this node's directory (the one `--node`
    /// names, as `hactl set` does; sealed, version bumped, replicated). Refused
    /// under `classic` (which ignores it), for a node with no directory
    /// under --mfsbase, and when it would leave no live node out of
    /// standby (every group would stop) unless `--force`.
    Standby {
        /// The node to put in or out of standby. (Its id is not `node`:
        /// that would collide with the global `--node`, and clap would
        /// then take this value as the local node.)
        #[arg(value_name = "NODE")]
        target: u32,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// Put it in standby even if no live node is left out of standby.
        #[arg(long)]
        force: bool,
    },
    /// Show or change the replicated hactl safely (validated, atomic).
    Hactl {
        #[command(subcommand)]
        verb: HactlVerb,
    },
}

/// `mosha hactl ...`.
#[derive(Subcommand, Debug)]
enum HactlVerb {
    /// Print the hactl the cluster converges on (the copy `mosha status`
    /// shows: under `ranked` the highest sealed version that parses, under
    /// `classic` the newest that parses, among the members' copies), whose
    /// it is, and what is wrong with the local copy, if anything.
    Show,
    /// Want GROUP at LEVEL cluster-wide: that same hactl with the change,
    /// checked against the newest cltab (a level no entry of the group
    /// names is refused; `stop` always works), written atomically into this
    /// node's directory with a fresh mtime, so every live node copies it at
    /// its next cycle. Under `--policy ranked` it then waits 1 s and
    /// re-reads every copy: it reports the version only once the edit is in
    /// the copy all nodes converge on, writes again one version up when a
    /// concurrent edit tied with it, and fails when a concurrent edit of
    /// the same group won. Exit 1 when refused.
    Set {
        /// The resource group.
        group: String,
        /// The level to want (`stop`: run nowhere).
        level: String,
    },
}

/// Where the settings are read from without --config.
const DEFAULT_CONFIG: &str = "/etc/clinit/mosha.toml";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PolicyName {
    /// OpenMosix::HA 0.555 decisions and timings.
    Classic,
    /// Leases, quorum-granted claims, fencing and a watchdog: placement by
    /// rank (lease H = 2 s, heartbeat H/16; --timeout is not used).
    Ranked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MembershipName {
    /// openMosix: <hpcbase>/nodes/<N>/status.
    Openmosix,
    /// Heartbeat files under <mfsbase>, fresher than --timeout.
    Heartbeat,
}

const AFTER_HELP: &str = "\
Files in <mfsbase>/<node>/<varpath>/:
  hactl      '<group> <level> [preferred,nodes]' lines: what should run (level stop: nowhere)
  cltab      the init table, group:tag:levels:mode:command; levels plan, test, <level>, stop
  clstat     this node's group states (written by the init machine)
  hastat     this node's view of the cluster (JSON)
  heartbeat  with --membership heartbeat
Exit status: 0 ok, 1 refused or a check found problems, 2 usage error
(also a bad settings file). `mosha status`: 0 quorum held, 1 refused (a base
directory that does not exist, a --node with no directory) or no node found,
3 membership unknown, 4 quorum lost or unknown (the local node's hastat says
no quorum or is missing, or its clstat is stale: its monitor is not running).
Set RUST_LOG (e.g. RUST_LOG=debug) to change the log level.";

fn main() -> ExitCode {
    // Started as ranked's watchdog process (by mosha itself): run it only.
    clinit_backends::watchdog::run_if_requested();
    let args = match parse_args(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("mosha: {e}");
            return Exit::Usage.into();
        }
    };
    cli::init_logging();
    if args.command.is_some() {
        // A reading command piped into `head` ends quietly when the pipe
        // closes, as Unix tools do, instead of panicking in `println!`.
        // Never for the monitor itself: a closed log pipe must not kill it.
        cli::default_sigpipe();
    }
    if matches!(args.command, Some(Command::Status { .. })) {
        if let Err(e) = check_status_target(&args) {
            eprintln!("mosha: {e}");
            return Exit::Refused.into();
        }
    }
    match &args.command {
        Some(Command::Status { json, watch: None }) => status(&args, *json),
        Some(Command::Status { json, watch: Some(secs) }) => loop {
            // A terminal gets a redrawn screen; a pipe gets one table per tick.
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                print!("\x1b[H\x1b[2J");
            }
            let _ = status(&args, *json);
            println!();
            std::thread::sleep(Duration::from_secs_f64(*secs));
        },
        Some(Command::Check { hactl, cltab }) => check(&args, hactl.clone(), cltab.clone()).into(),
        Some(Command::Hactl { verb }) => hactl_command(&args, verb).into(),
        Some(Command::Standby { target, state, force }) => {
            match standby(&args, *target, state == "on", *force) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("mosha: {e}");
                    Exit::Refused
                }
            }
            .into()
        }
        None => daemon(&args),
    }
}

/// The command line with the settings file's flags in front of it (so
/// the command line wins). A bad settings file is an error naming it;
/// command-line errors exit through clap as usual (status 2).
fn parse_args(argv: Vec<OsString>) -> Result<Args, String> {
    let (path, explicit) = cli::config_path(&argv, DEFAULT_CONFIG);
    let mut full: Vec<OsString> = argv.iter().take(1).cloned().collect();
    if let Some(text) = cli::read_config(&path, explicit).map_err(|e| e.to_string())? {
        let from_file = cli::config_args(&Args::command(), &path, &text, &["config"])
            .map_err(|e| e.to_string())?;
        // Values are validated alone first, so an error names the file.
        let mut alone = full.clone();
        alone.extend(from_file.iter().cloned());
        if let Err(e) = Args::command().try_get_matches_from(alone) {
            let msg = e.render().to_string();
            // The setting's own line, as for every other settings error.
            if let Some((key, line)) = cli::config_error_line(&text, &e) {
                let first = msg.lines().next().unwrap_or_default();
                let first = first.strip_prefix("error: ").unwrap_or(first);
                return Err(format!("{}:{line}: setting {key:?}: {first}", path.display()));
            }
            return Err(format!("in {}: {}", path.display(), msg.trim_end()));
        }
        full.extend(from_file);
    }
    full.extend(argv.into_iter().skip(1));
    let matches = Args::command().get_matches_from(full);
    Args::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// Who checks the base directories: the daemon may create a new cluster
/// (`--init`); a client command (`hactl`, `standby`, `check`) only reads
/// or edits an existing one, so `--init` is no advice for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BaseUse {
    Daemon,
    Client,
}

/// A base directory that does not exist is a typo unless `--init` says a
/// new cluster starts there (daemon only). A client given `--node` needs
/// no `--hpcbase` (only `whois` and membership read it).
fn check_bases(args: &Args, by: BaseUse) -> Result<(), String> {
    if args.init && by == BaseUse::Daemon {
        return Ok(());
    }
    let mut dirs = vec![("--mfsbase", &args.mfsbase)];
    if args.membership == MembershipName::Openmosix
        && (by == BaseUse::Daemon || args.node.is_none())
    {
        dirs.push(("--hpcbase", &args.hpcbase));
    }
    for (flag, dir) in dirs {
        if !dir.is_dir() {
            let advice = match by {
                BaseUse::Daemon => "; refusing to start (give --init to start a new cluster there)",
                BaseUse::Client => "",
            };
            return Err(format!(
                "{flag} {} does not exist or is not a directory{advice}",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// The nodes that have a directory under the shared base. Errors: the
/// base cannot be listed, naming it.
fn cluster_nodes(store: &FsStore) -> Result<Vec<u32>, String> {
    store.nodes().map_err(|e| format!("cannot list {}: {e}", store.base()))
}

/// `node` must have a directory under the shared base: a node number that
/// names no node of the cluster is a typo, not a new node (a client never
/// creates one). Shared by every client command that is given a node:
/// `hactl set` and `status` (this node), `standby` (its target). Returns
/// the nodes it listed, so that a caller that needs them lists them once.
fn require_node(store: &FsStore, node: u32) -> Result<Vec<u32>, String> {
    let nodes = cluster_nodes(store)?;
    if nodes.contains(&node) {
        return Ok(nodes);
    }
    Err(format!(
        "no such node {node}: node {node} has no directory under {} (nodes there: {})",
        store.base(),
        node_list(&nodes)
    ))
}

/// [`require_node`] for this node, named by `--node` (or `--whois`).
fn require_own_node(store: &FsStore, me: u32) -> Result<(), String> {
    require_node(store, me).map(drop).map_err(|e| format!("{e}; --node names this node's number"))
}

/// What `mosha status` checks before it reads anything, as `hactl set` and
/// `standby` do: the base directories exist, and a `--node` names a node of
/// the cluster. Without them it used to print a table of nothing (a typo in
/// `--mfsbase`) or judge a node that does not exist, and exit as if it had
/// only found trouble.
fn check_status_target(args: &Args) -> Result<(), String> {
    check_bases(args, BaseUse::Client)?;
    if let Some(me) = args.node {
        let store = FsStore::new(NodePaths::new(args.mfsbase.clone(), &args.varpath));
        require_own_node(&store, me)?;
    }
    Ok(())
}

fn whois(args: &Args) -> Result<u32, String> {
    match args.node {
        Some(n) => Ok(n),
        None => openmosix::whois(&args.whois, Duration::from_secs(10)).map_err(|e| e.to_string()),
    }
}

fn default_seed(node: u32) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ u64::from(node).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn daemon(args: &Args) -> ExitCode {
    if let Err(e) = check_bases(args, BaseUse::Daemon) {
        eprintln!("mosha: {e}");
        return Exit::Refused.into();
    }
    if args.init {
        if let Err(e) = std::fs::create_dir_all(&args.mfsbase) {
            eprintln!("mosha: cannot create --mfsbase {}: {e}", args.mfsbase.display());
            return Exit::Refused.into();
        }
    }
    let me = match whois(args) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("mosha: {e}");
            return ExitCode::FAILURE;
        }
    };
    let paths = NodePaths::new(args.mfsbase.clone(), &args.varpath);
    let membership = match args.membership {
        MembershipName::Openmosix => MembershipKind::OpenMosix { hpcbase: args.hpcbase.clone() },
        MembershipName::Heartbeat => MembershipKind::Heartbeat,
    };
    let mut cfg = MoshaConfig::new(me, paths, membership, policy_of(args));
    cfg.seed = args.seed.unwrap_or_else(|| default_seed(me));
    cfg.stomith = args.stomith.clone();
    cfg.fence_limit = Duration::from_secs_f64(args.stomith_timeout);
    cfg.shutdown_wait = Duration::from_secs_f64(args.shutdown_wait);
    cfg.record = args.record.clone();
    cfg.known = args.known.clone().unwrap_or_default();
    cfg.cgroups = !args.no_cgroups;
    cfg.hooks = mosha::transitions::Hooks {
        on_nodeup: args.on_nodeup.clone(),
        on_nodedown: args.on_nodedown.clone(),
        timeout: Duration::from_secs_f64(args.hook_timeout),
    };
    cfg.output = mosha::ChildOutputConfig {
        mode: args.output.child_output,
        log_dir: args.output.log_dir.clone(),
        rotation: args.output.rotation(),
    };
    cli::run_daemon("mosha", mosha::run(cfg))
}

/// The policy and its parameters from the command line (`--policy`,
/// `--timeout`, `--stomith-grace`, `--stomith`, `--failback`).
fn policy_of(args: &Args) -> PolicyConfig {
    match args.policy {
        PolicyName::Classic => PolicyConfig::Classic(ClassicParams {
            timeout: cli::millis(args.timeout),
            stomith_grace: cli::millis(args.stomith_grace),
            ..Default::default()
        }),
        PolicyName::Ranked => PolicyConfig::Ranked(RankedParams {
            fence_command: args.stomith.is_some(),
            failback: args.failback,
            ..Default::default()
        }),
    }
}

fn status(args: &Args, json: bool) -> ExitCode {
    use clinit_engine::monitor::{AnyPolicy, Policy};
    // The staleness limit the monitors themselves use: `--timeout` under
    // classic, three leases under ranked (which ignores `--timeout`), so a
    // node dead for 9 s is not shown up for a minute.
    let timeout = AnyPolicy::new(policy_of(args)).timeout();
    let store: Arc<dyn SharedStore> =
        Arc::new(FsStore::new(NodePaths::new(args.mfsbase.clone(), &args.varpath)));
    let membership = membership_of(args, store.clone());
    let me = match whois(args) {
        Ok(n) => Some(n),
        Err(e) => {
            if !json {
                eprintln!(
                    "mosha: local node unknown ({e}); showing the hactl the cluster converges on"
                );
            }
            None
        }
    };
    // What the nodes recorded over time: membership transitions and
    // group changes (for the "since" and "moves" columns).
    let paths = NodePaths::new(args.mfsbase.clone(), &args.varpath);
    let history = mosha::transitions::best_history(&args.mfsbase, &paths.varpath);
    let nodes = store.nodes().unwrap_or_default();
    let mut records = cluster_status::Records::read(&paths, &nodes, history);
    if matches!(args.policy, PolicyName::Ranked) {
        // Life as `mosha standby` judges it (two reads of every record,
        // 1.5 s apart), and why a node is not live: a frozen, lapsed or
        // fenced owner's groups were shown running until its clstat was
        // older than the staleness limit (issue 12, item 4).
        records.ranked_faults = Some(cluster_status::sample_ranked_faults(&*store, &nodes));
    }
    // The hactl the cluster converges on, by the policy's own rule.
    let rule = hactl_rule(args);
    let mut st = cluster_status::collect(
        &*store,
        &*membership,
        timeout,
        me,
        rule,
        &records,
        SystemTime::now(),
    );
    if let PolicyConfig::Ranked(p) = policy_of(args) {
        st.lease_secs = Some(p.lease.0 as f64 / 1000.0);
    }
    if json {
        match serde_json::to_string_pretty(&st) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("mosha: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        // A local cltab that does not parse is said at its end.
        print!("{}", cluster_status::render(&st));
        // Nodes in standby, from the hactl in force (issue 12).
        if !st.standby.is_empty() && matches!(args.policy, PolicyName::Ranked) {
            println!("\nnodes in standby (drained under ranked): {}", node_list(&st.standby));
        }
        // The transition history, when the cluster keeps one (issue 12).
        if let Some(h) = &records.history {
            let now_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            print!("{}", mosha::transitions::render_recent(h, 5, now_ms));
        }
    }
    let health = cluster_status::health(&st, me);
    match &health {
        cluster_status::Health::Ok => {}
        cluster_status::Health::NoNodes => {
            eprintln!("mosha: no node found under {}", args.mfsbase.display())
        }
        cluster_status::Health::MembershipUnknown(why) => {
            eprintln!("mosha: membership unknown: {why}")
        }
        cluster_status::Health::QuorumLost(why) => eprintln!("mosha: {why}"),
    }
    ExitCode::from(health.exit_code())
}

/// `mosha check`: the files parse and agree ([`lint::check_hactl`]).
fn check(args: &Args, hactl: Option<PathBuf>, cltab: Option<PathBuf>) -> Exit {
    let mut problems: Vec<String> = Vec::new();
    // The shared directories matter only for a file not given: checking
    // `--hactl F --cltab G` needs no cluster (a new user's first check, a
    // CI job, a file about to be installed).
    if hactl.is_none() || cltab.is_none() {
        if let Err(e) = check_bases(args, BaseUse::Client) {
            problems.push(e);
        }
    }
    let node_file = |name: &str| -> Result<PathBuf, String> {
        let me = whois(args)
            .map_err(|e| format!("no --{name} given and the local node is unknown: {e}"))?;
        Ok(NodePaths::new(args.mfsbase.clone(), &args.varpath).node_dir(me).join(name))
    };
    let hactl_path = hactl.map(Ok).unwrap_or_else(|| node_file("hactl"));
    let cltab_path = cltab.map(Ok).unwrap_or_else(|| node_file("cltab"));
    // What the monitor itself would read: regular files only (a FIFO or
    // a device is refused at once), bounded, and valid UTF-8.
    let read = |path: &Path| -> Result<String, String> {
        let bytes = clinit_backends::safe_read::read_regular(path, MAX_CLTAB_BYTES)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("cannot read {}: no such file", path.display()))?;
        String::from_utf8(bytes).map_err(|e| {
            format!(
                "{}: not valid UTF-8 (at byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            )
        })
    };
    // A copy the daemons would judge truncated or damaged (a cut or bad
    // `#@mosha` seal line, `ranked`'s versioned replicas): they never adopt
    // it, so neither may `check` call it ok. Judged after the parse, which
    // refuses a 0-byte file with its own message.
    let sealed = |text: &str, path: &Path| -> Result<(), String> {
        use clinit_engine::monitor::replica_version::{classify, Seal};
        match classify(text.as_bytes()) {
            Seal::Truncated { reason } => Err(format!(
                "{}:1: the copy is truncated or damaged ({reason}): mosha never adopts it; \
                 remove the #@mosha line to make it a hand edit, or use `mosha hactl set`",
                path.display()
            )),
            _ => Ok(()),
        }
    };
    let parsed_cltab = cltab_path.and_then(|path| {
        let text = read(&path)?;
        // The rule replication applies to a copy, as for hactl below.
        let table = parse_copy::<Cltab>(text.as_bytes(), &path.display().to_string())?;
        sealed(&text, &path)?;
        let table = Arc::unwrap_or_clone(table);
        println!(
            "{}: {} entries in {} groups",
            path.display(),
            table.entries.len(),
            table.groups().len()
        );
        Ok(table)
    });
    let parsed_hactl = hactl_path.and_then(|path| {
        let text = read(&path)?;
        // The rule replication applies to a copy (a 0-byte file is refused).
        let name = path.display().to_string();
        let hactl = parse_copy::<Hactl>(text.as_bytes(), &name)?;
        sealed(&text, &path)?;
        let hactl = Arc::unwrap_or_clone(hactl);
        println!("{}: {} groups wanted", path.display(), hactl.groups.len());
        // Accepted (the last line wins, as in the original), but said.
        for d in clinit_engine::hactl::duplicate_groups(&text) {
            let (last, earlier) = d.lines.split_last().unwrap_or((&0, &[]));
            let earlier: Vec<String> = earlier.iter().map(usize::to_string).collect();
            println!(
                "{name}:{last}: warning: group {} is also given on line {}; this last line wins",
                d.group,
                earlier.join(", ")
            );
        }
        Ok(hactl)
    });
    match (&parsed_hactl, &parsed_cltab) {
        (Ok(hactl), Ok(cltab)) => {
            problems.extend(lint::check_hactl(hactl, cltab).iter().map(ToString::to_string))
        }
        _ => {
            problems.extend(parsed_cltab.err());
            problems.extend(parsed_hactl.err());
        }
    }
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("ok");
        Exit::Ok
    } else {
        Exit::Refused
    }
}

/// The best copy of `file` that parses with `parse`, among every node
/// under `--mfsbase`: (node, text, parsed). A sealed copy (highest version,
/// then the content-hash tie-break, as `ranked` replicates) comes before an
/// unsealed one, and among unsealed ones the newest mtime (the original's
/// rule); a truncated copy or one that does not parse is skipped, as
/// replication never adopts one. The text is the body, without its seal
/// line. (The highest version on any node is [`highest_version`]'s.)
fn newest<T>(
    store: &FsStore,
    file: SharedFile,
    parse: impl Fn(&str, &str) -> Option<T>,
) -> Result<Option<(u32, String, T)>, String> {
    use clinit_engine::monitor::replica_version::{body, classify, Seal};
    let nodes = cluster_nodes(store)?;
    type Key = (Option<clinit_engine::monitor::replica_version::Version>, SystemTime);
    let mut best: Option<(Key, u32, String, T)> = None;
    for node in nodes {
        let Ok(Some(snap)) = store.read(node, file) else { continue };
        let seal = classify(&snap.bytes);
        if matches!(seal, Seal::Truncated { .. }) {
            continue;
        }
        let text = String::from_utf8_lossy(body(&snap.bytes)).into_owned();
        let Some(parsed) = parse(&text, &store.describe(node, file)) else { continue };
        let key = (seal.version(), snap.stamp.mtime);
        if best.as_ref().is_none_or(|(k, ..)| key > *k) {
            best = Some((key, node, text, parsed));
        }
    }
    Ok(best.map(|(_, node, text, parsed)| (node, text, parsed)))
}

/// The hactl the cluster converges on, picked as `mosha status` picks it
/// ([`cluster_status::pick_hactl`] among [`cluster_status::hactl_candidates`],
/// by the policy's rule), with `me`'s own copy judged.
fn converged_hactl(args: &Args, me: Option<u32>) -> cluster_status::HactlPick {
    let store: Arc<dyn SharedStore> =
        Arc::new(FsStore::new(NodePaths::new(args.mfsbase.clone(), &args.varpath)));
    let members = membership_of(args, store.clone()).members().ok();
    let candidates = cluster_status::hactl_candidates(&*store, members.as_deref());
    cluster_status::pick_hactl(&*store, &candidates, me, hactl_rule(args))
}

/// How long `hactl set` and `standby` wait for a hand edit (on any member
/// node's copy) to be sealed by its node's monitor: the settle time (2 s)
/// plus 3 s for the monitor's cycle and a loaded machine.
const HAND_EDIT_WAIT: Duration = Duration::from_secs(5);

/// [`converged_hactl`], but under `ranked`, while a member node's copy (this
/// node's own included) is a hand edit that its monitor has not sealed yet
/// ([`replica_edit::pending_hand_edits`]), wait up to [`HAND_EDIT_WAIT`] for
/// the seal, then pick again. This node's own hand edit that does not parse
/// is refused outright: nothing will seal it, and the write would drop it.
///
/// Why: `hactl set` and `standby` write this node's file one version above
/// every copy. Written over an unsealed hand edit of this node's file, the
/// edit was gone without a word, though it was made first. Written while
/// another node's hand edit settled, the change was undone about a second
/// after `set` reported it: that node's monitor sealed its edit one above
/// the change it had seen meanwhile (a new user's finding). Sealed first,
/// the hand edit is the base and the change goes on top of it. A hand edit
/// not sealed in time (its node's `mosha` not running, or the file still
/// changing) is refused rather than overwritten or left to undo the change
/// later. `classic` has no seals: a hand edit with the newest mtime
/// already is the base.
///
/// [`replica_edit::pending_hand_edits`]: clinit_engine::monitor::replica_edit::pending_hand_edits
fn pick_past_hand_edits(
    args: &Args,
    store: &FsStore,
    me: u32,
) -> Result<cluster_status::HactlPick, String> {
    use clinit_engine::monitor::ranked::record::fnv1a64;
    use clinit_engine::monitor::replica_edit::pending_hand_edits;
    let pick = converged_hactl(args, Some(me));
    if !matches!(args.policy, PolicyName::Ranked) {
        return Ok(pick);
    }
    refuse_unparsable_own_edit(store, me)?;
    // Every node with a directory, members or not (a node without one has
    // no copy): a node whose `mosha` is down (and that membership may list
    // down) seals its hand edit when it runs again, one above every
    // version it then knows, and that undid a `set` confirmed meanwhile (a
    // new user's finding).
    let nodes = cluster_nodes(store)?;
    let until = std::time::Instant::now() + HAND_EDIT_WAIT;
    let mut said = BTreeSet::new();
    let mut pick = pick;
    loop {
        let (copies, _) = hactl_copies(store, &nodes, None);
        let base = pick.text.as_deref().map(|t| fnv1a64(t.as_bytes()));
        let pending = pending_hand_edits(&copies, base);
        let Some(&(node, _)) = pending.first() else { return Ok(pick) };
        let file = store.describe(node, SharedFile::Hactl);
        if std::time::Instant::now() >= until {
            let whose = if node == me {
                "writing now would drop it"
            } else {
                "written now, this change would be undone once that edit is sealed"
            };
            return Err(format!(
                "refused: {file} holds a hand edit that was not sealed within {} s (is node \
                 {node}'s mosha running? is the file still being written?); {whose}. Run again \
                 once it is sealed (`mosha hactl show` on node {node}), or make the change in \
                 that edit",
                HAND_EDIT_WAIT.as_secs()
            ));
        }
        for &(node, _) in &pending {
            if said.insert(node) {
                eprintln!(
                    "mosha: {} holds a hand edit not sealed yet: waiting for node {node}'s \
                     monitor to seal it (at most {} s), so that this change goes on top of it",
                    store.describe(node, SharedFile::Hactl),
                    HAND_EDIT_WAIT.as_secs()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        pick = converged_hactl(args, Some(me));
    }
}

/// Under `ranked`: refuse when this node's own copy is a hand edit that
/// does not parse. Its monitor leaves such a copy alone (it keeps the last
/// good parse), so nothing would ever seal it, and `set` or `standby`
/// would write over it: the operator's unfinished edit gone without a word
/// (a new user's finding).
fn refuse_unparsable_own_edit(store: &FsStore, me: u32) -> Result<(), String> {
    use clinit_engine::monitor::replica_version::{classify, Seal};
    let Ok(Some(snap)) = store.read(me, SharedFile::Hactl) else { return Ok(()) };
    if !matches!(classify(&snap.bytes), Seal::Edited { .. }) {
        return Ok(());
    }
    let file = store.describe(me, SharedFile::Hactl);
    // The whole file, seal line included (a comment to the parser), so
    // that the line numbers are the file's.
    let text = String::from_utf8_lossy(&snap.bytes).into_owned();
    match Hactl::parse(&text, &file) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "refused: {file} holds a hand edit that does not parse ({e}); writing now would \
             drop it. Fix the file, or remove it to take the cluster's copy, and run again"
        )),
    }
}

/// The membership source `args` name, judged as `mosha status` judges it
/// (the staleness limit the monitors themselves use).
fn membership_of(args: &Args, store: Arc<dyn SharedStore>) -> Box<dyn Membership> {
    use clinit_engine::monitor::{AnyPolicy, Policy};
    let timeout = AnyPolicy::new(policy_of(args)).timeout();
    match args.membership {
        MembershipName::Openmosix => Box::new(HpcMembership::new(args.hpcbase.clone())),
        MembershipName::Heartbeat => Box::new(HeartbeatMembership::new(store, timeout)),
    }
}

/// The rule the policy replicates `hactl` by.
fn hactl_rule(args: &Args) -> cluster_status::HactlRule {
    match args.policy {
        PolicyName::Classic => cluster_status::HactlRule::Newest,
        PolicyName::Ranked => cluster_status::HactlRule::Versioned,
    }
}

/// The highest version any node's copy of `file` carries (sealed, or a
/// hand edit that kept its seal line; a truncated copy's is not believed):
/// an edit is sealed one above it, so that it wins wherever it is read.
fn highest_version(store: &FsStore, file: SharedFile) -> Result<u64, String> {
    use clinit_engine::monitor::replica_version::{classify, Seal};
    let mut highest = 0;
    for node in cluster_nodes(store)? {
        let Ok(Some(snap)) = store.read(node, file) else { continue };
        match classify(&snap.bytes) {
            Seal::Sealed(v) => highest = highest.max(v.number),
            Seal::Edited { was: Some(n), .. } => highest = highest.max(n),
            _ => {}
        }
    }
    Ok(highest)
}

/// `mosha standby NODE on|off`: the hactl the cluster converges on (see
/// [`converged_hactl`]) with its `#@standby`
/// line changed, sealed one version above every copy, written into this
/// node's directory.
fn standby(args: &Args, node: u32, on: bool, force: bool) -> Result<Exit, String> {
    if !matches!(args.policy, PolicyName::Ranked) {
        return Err("standby is honoured only under --policy ranked".into());
    }
    check_bases(args, BaseUse::Client)?;
    let store = FsStore::new(NodePaths::new(args.mfsbase.clone(), &args.varpath));
    let me = whois(args)?;
    let known = require_node(&store, node)?;
    let pick = pick_past_hand_edits(args, &store, me)?;
    let (Some(text), Some(hactl)) = (pick.text, pick.hactl) else {
        let why = pick.error.unwrap_or_else(|| "no hactl that parses".into());
        return Err(format!("{why} (under {})", store.base()));
    };
    let highest = highest_version(&store, SharedFile::Hactl)?;
    let mut nodes = hactl.standby.clone();
    let changed = if on { nodes.insert(node) } else { nodes.remove(&node) };
    let state = if on { "on" } else { "off" };
    if !changed {
        println!("node {node}: standby already {state}; nothing written");
        return Ok(Exit::Ok);
    }
    if on && !force {
        // Live: what membership lists up; unreadable membership: every
        // node with a directory (refuse rather than guess optimistically).
        let shared: Arc<dyn SharedStore> =
            Arc::new(FsStore::new(NodePaths::new(args.mfsbase.clone(), &args.varpath)));
        let membership: Box<dyn Membership> = match args.membership {
            MembershipName::Openmosix => Box::new(HpcMembership::new(args.hpcbase.clone())),
            MembershipName::Heartbeat => {
                Box::new(HeartbeatMembership::new(shared, cli::millis(args.timeout)))
            }
        };
        let listed: Vec<u32> =
            membership.members().map(|m| m.into_iter().collect()).unwrap_or(known);
        // Under ranked a listed node counts only while its record moves
        // and its lease holds: membership by heartbeat files lists a node
        // dead for less than --timeout (60 s by default) as up.
        let live = ranked_live(&store, &listed);
        if clinit_engine::hactl::standby_leaves_none(&nodes, &live) {
            return Err(format!(
                "refused: standby of node {node} leaves no live node out of standby \
                 (live: {}; standby: {}): every wanted group would stop; \
                 use --force to do it anyway",
                node_list(&live),
                node_list(&nodes)
            ));
        }
    }
    let edited = clinit_engine::hactl::with_standby(&text, &nodes);
    let target = store.describe(me, SharedFile::Hactl);
    Hactl::parse(&edited, &target).map_err(|e| format!("refused: {e}"))?;
    let version = highest + 1;
    // Named as this node's edit (`by=`), as `hactl set` names its own.
    let sealed = clinit_engine::monitor::replica_version::seal_by(edited.as_bytes(), version, me);
    eprintln!("mosha: node {node} standby {state} in {target} (version {version})");
    store
        .write(me, SharedFile::Hactl, &sealed, None)
        .map_err(|e| format!("cannot write {target}: {e}"))?;
    println!(
        "standby {state} for node {node}; nodes in standby: {} (under --policy ranked)",
        node_list(&nodes)
    );
    Ok(Exit::Ok)
}

/// Node numbers as an operator writes them: `1, 3`, or `none`.
fn node_list<'a>(nodes: impl IntoIterator<Item = &'a u32>) -> String {
    let list: Vec<String> = nodes.into_iter().map(u32::to_string).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Of `listed`, the live nodes under `ranked`: record moved within
/// [`cluster_status::LIVE_SAMPLE`], lease holds, incarnation not listed as
/// fenced by a peer ([`clinit_engine::monitor::ranked::Record::live_nodes`],
/// the rule `mosha status` shows too). A record that cannot be read or
/// parsed counts as not live: the check is for a refusal, and refusing
/// wrongly is the safe side (`--force` exists).
fn ranked_live(store: &FsStore, listed: &[u32]) -> Vec<u32> {
    cluster_status::sample_ranked_live(store, listed).into_iter().collect()
}

/// `mosha hactl show|set`.
fn hactl_command(args: &Args, verb: &HactlVerb) -> Exit {
    match hactl_edit(args, verb) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mosha: {e}");
            Exit::Refused
        }
    }
}

fn hactl_edit(args: &Args, verb: &HactlVerb) -> Result<Exit, String> {
    check_bases(args, BaseUse::Client)?;
    let store = FsStore::new(NodePaths::new(args.mfsbase.clone(), &args.varpath));
    match verb {
        HactlVerb::Show => {
            let me = whois(args).ok();
            let pick = converged_hactl(args, me);
            let (Some(node), Some(text)) = (pick.from, pick.text) else {
                let why = pick.error.unwrap_or_else(|| "no hactl that parses".into());
                return Err(format!("{why} (under {})", store.base()));
            };
            let version = pick.version.map(|v| format!(", version {v}")).unwrap_or_default();
            eprintln!(
                "# {} (the copy the cluster converges on{version})",
                store.describe(node, SharedFile::Hactl)
            );
            let local = pick.local.as_ref();
            if let Some(line) = local.and_then(|l| cluster_status::local_hactl_line(l, Some(node)))
            {
                eprintln!("# {line}");
            }
            print!("{text}");
            Ok(Exit::Ok)
        }
        HactlVerb::Set { group, level } => {
            let me = whois(args)?;
            require_own_node(&store, me)?;
            let (_, cltab) = newest(&store, SharedFile::Cltab, |t, f| Cltab::parse(t, f).ok())?
                .map(|(n, _, c)| (n, c))
                .ok_or_else(|| format!("no node under {} has a cltab that parses", store.base()))?;
            // The copy `mosha status` shows, by the same rule: an edit on
            // top of any other would undo what the cluster acts on. Under
            // ranked, once this node's own hand edit (if one is settling)
            // is sealed: the write below replaces this node's file.
            let pick = pick_past_hand_edits(args, &store, me)?;
            let highest = highest_version(&store, SharedFile::Hactl)?;
            let (old_text, old_level) = match (pick.text, &pick.hactl) {
                (Some(text), Some(hactl)) => (text, hactl.get(group).map(|w| w.level.clone())),
                _ => (String::new(), None),
            };
            let target = store.describe(me, SharedFile::Hactl);
            if old_level.as_deref() == Some(level.as_str()) {
                println!("hactl already wants {group} at {level}; nothing written");
                return Ok(Exit::Ok);
            }
            // Checked here so that a bad edit is refused before anything
            // is written, under either policy.
            let text = lint::set_level(&old_text, &target, &cltab, group, level)
                .map_err(|e| format!("refused: {e}"))?;
            let version = highest + 1;
            if matches!(args.policy, PolicyName::Ranked) {
                let from = old_level.as_deref();
                return set_checked(&store, me, &cltab, group, level, from, old_text, version);
            }
            let from = old_level.unwrap_or_else(|| "(absent)".into());
            eprintln!(
                "mosha: setting {group} from {from} to {level} in {target} (version {version})"
            );
            // Sealed with a version above every copy seen; classic reads
            // the seal line as a comment and replicates by mtime.
            let sealed =
                clinit_engine::monitor::replica_version::seal_by(text.as_bytes(), version, me);
            store
                .write(me, SharedFile::Hactl, &sealed, None)
                .map_err(|e| format!("cannot write {target}: {e}"))?;
            println!("hactl: {group} {from} -> {level}; live nodes copy it at their next cycle");
            Ok(Exit::Ok)
        }
    }
}

/// `hactl set` under `--policy ranked`: a read-modify-write with a version
/// check. Write the edit sealed as `version`, wait
/// [`replica_edit::SETTLE`], re-read every node's copy and let the engine
/// judge ([`replica_edit::judge`]): report the version only once the edit
/// is in the copy every node converges on, write again on top of a copy
/// that tied or won, fail on a concurrent edit of the same group, and give
/// up after [`replica_edit::ATTEMPTS`] writes.
#[allow(clippy::too_many_arguments)]
fn set_checked(
    store: &FsStore,
    me: u32,
    cltab: &Cltab,
    group: &str,
    level: &str,
    from: Option<&str>,
    mut base: String,
    mut version: u64,
) -> Result<Exit, String> {
    use clinit_engine::monitor::replica_edit::{self, judge, Edit, Verdict};
    use clinit_engine::monitor::replica_version::seal_by;
    let target = store.describe(me, SharedFile::Hactl);
    let shown = from.unwrap_or("(absent)");
    let mut concurrent = Vec::new();
    // Hand edits already there before the first write: the pick waited for
    // those it had to (`pick_past_hand_edits`); the others equal the base
    // (a new cluster's unsealed copies). Only an edit made after it is
    // waited for after the write.
    let (copies, _) = hactl_copies(store, &cluster_nodes(store)?, Some(group));
    let before: Vec<u64> = copies
        .iter()
        .filter_map(|(_, f)| match f.as_ref()?.seal {
            clinit_engine::monitor::replica_version::Seal::Edited { sum, .. } => Some(sum),
            _ => None,
        })
        .collect();
    for attempt in 1..=replica_edit::ATTEMPTS {
        let text = lint::set_level(&base, &target, cltab, group, level)
            .map_err(|e| format!("refused: {e}"))?;
        eprintln!(
            "mosha: setting {group} from {shown} to {level} in {target} (version {version}, \
             write {attempt} of {})",
            replica_edit::ATTEMPTS
        );
        if attempt == 1 {
            test_barrier(me);
        }
        store
            .write(me, SharedFile::Hactl, &seal_by(text.as_bytes(), version, me), None)
            .map_err(|e| format!("cannot write {target}: {e}"))?;
        std::thread::sleep(Duration::from_millis(replica_edit::SETTLE.0));
        let (copies, mut texts) = checked_copies(store, group, &before, &mut concurrent)?;
        match judge(&copies, &Edit { level, from, wrote: version, concurrent: &concurrent }) {
            Verdict::Stands { version } => {
                println!(
                    "hactl: {group} {shown} -> {level} ({version}); live nodes copy it at their \
                     next cycle"
                );
                return Ok(Exit::Ok);
            }
            Verdict::Rebase { on, number } => {
                eprintln!(
                    "mosha: node {on}'s copy tied with or won over my edit (another edit made \
                     at the same time): writing mine again on top of it as version {number}"
                );
                base = texts.remove(&on).unwrap_or(base);
                version = number;
            }
            Verdict::Conflict { node, version, level: theirs, writer } => {
                // Name the writer of the winning content when its seal
                // says (the copy read may be another node's replica of it).
                let whose = match writer {
                    Some(w) if w != node => format!("node {w}'s edit (read in node {node}'s copy)"),
                    Some(w) => format!("node {w}'s edit"),
                    None => format!("node {node}'s copy"),
                };
                return Err(format!(
                    "refused: another edit of {group} won over mine (made at the same time, \
                     or later on top of mine): {whose} ({version}) wants {group} at {}; check \
                     with `mosha hactl show`",
                    theirs.as_deref().unwrap_or("(absent)")
                ));
            }
            Verdict::Vanished { number } => {
                eprintln!("mosha: my write of {target} is gone or damaged: writing it again");
                version = number;
            }
        }
    }
    Err(format!(
        "gave up after {} writes: other edits kept winning over mine; check with `mosha hactl \
         show` and try again",
        replica_edit::ATTEMPTS
    ))
}

/// Every node's hactl copy, read for `set`'s check after
/// [`HAND_EDIT_WAIT`] at most for the hand edits pending on any node to be
/// sealed (or dropped) by their monitors, those whose checksums are in
/// `before` (there before the first write) aside; their body checksums
/// are added to `concurrent` for [`replica_edit::judge`].
///
/// Why: a hand edit made on another node just before this `set` and first
/// seen by its monitor after this write is sealed one above it, without
/// this edit, about 2 s after it was made. Judged before that, the edit was
/// reported as standing and then undone; judged after, a hand edit of
/// other lines is merged (rebase) and one of the same group is a conflict.
///
/// [`replica_edit::judge`]: clinit_engine::monitor::replica_edit::judge
fn checked_copies(
    store: &FsStore,
    group: &str,
    before: &[u64],
    concurrent: &mut Vec<u64>,
) -> Result<HactlCopies, String> {
    use clinit_engine::monitor::replica_edit::pending_hand_edits;
    let nodes = cluster_nodes(store)?;
    let until = std::time::Instant::now() + HAND_EDIT_WAIT;
    let mut said = BTreeSet::new();
    loop {
        let (copies, texts) = hactl_copies(store, &nodes, Some(group));
        let mut pending = pending_hand_edits(&copies, None);
        pending.retain(|(_, sum)| !before.contains(sum));
        if pending.is_empty() {
            return Ok((copies, texts));
        }
        if std::time::Instant::now() >= until {
            // Written, but not confirmed: once sealed, that edit is
            // numbered above this change and undoes it.
            let (node, _) = pending[0];
            return Err(format!(
                "not confirmed: {} holds a hand edit made while this change was written, not \
                 sealed within {} s (is node {node}'s mosha running?); once its monitor seals \
                 it, it may undo this change. Check with `mosha hactl show` once node {node} \
                 runs, and run again",
                store.describe(node, SharedFile::Hactl),
                HAND_EDIT_WAIT.as_secs()
            ));
        }
        for &(node, sum) in &pending {
            if !concurrent.contains(&sum) {
                concurrent.push(sum);
            }
            if said.insert(node) {
                eprintln!(
                    "mosha: {} holds a hand edit made while this change was written: waiting \
                     for node {node}'s monitor to seal it before checking (at most {} s)",
                    store.describe(node, SharedFile::Hactl),
                    HAND_EDIT_WAIT.as_secs()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(node, copy)` pairs as the engine's hactl-edit rules read them, and the
/// bodies of the copies that parse (by node).
type HactlCopies = (
    Vec<(u32, Option<clinit_engine::monitor::replica_edit::CopyFacts>)>,
    std::collections::HashMap<u32, String>,
);

/// `nodes`' hactl copies as [`replica_edit::judge`] and
/// [`replica_edit::pending_hand_edits`] need them, and the bodies of the
/// copies that parse (by node). `group`: the group whose wanted level the
/// facts carry (`None`: only whether each copy parses matters).
///
/// [`replica_edit::judge`]: clinit_engine::monitor::replica_edit::judge
/// [`replica_edit::pending_hand_edits`]: clinit_engine::monitor::replica_edit::pending_hand_edits
fn hactl_copies(store: &FsStore, nodes: &[u32], group: Option<&str>) -> HactlCopies {
    use clinit_engine::monitor::replica_edit::CopyFacts;
    use clinit_engine::monitor::replica_version::{body, classify};
    let mut copies = Vec::new();
    let mut texts = std::collections::HashMap::new();
    for &node in nodes {
        let Ok(Some(snap)) = store.read(node, SharedFile::Hactl) else {
            copies.push((node, None));
            continue;
        };
        let seal = classify(&snap.bytes);
        let writer = clinit_engine::monitor::replica_version::writer(&snap.bytes);
        let text = String::from_utf8_lossy(body(&snap.bytes)).into_owned();
        let level = Hactl::parse(&text, &store.describe(node, SharedFile::Hactl))
            .ok()
            .map(|h| group.and_then(|g| h.get(g)).map(|w| w.level.clone()));
        if level.is_some() {
            texts.insert(node, text);
        }
        copies.push((node, Some(CopyFacts { seal, level, writer })));
    }
    (copies, texts)
}

/// Test hook for the real concurrency test: with `MOSHA_TEST_SET_BARRIER`
/// naming a directory and `MOSHA_TEST_SET_PARTIES` a count, mark this node
/// there and wait (at most 10 s) until that many writers have read, so
/// that their writes land in the same instant. Unset: nothing.
fn test_barrier(me: u32) {
    let Some(dir) = std::env::var_os("MOSHA_TEST_SET_BARRIER") else { return };
    let parties: usize =
        std::env::var("MOSHA_TEST_SET_PARTIES").ok().and_then(|p| p.parse().ok()).unwrap_or(2);
    let dir = PathBuf::from(dir);
    let _ = std::fs::write(dir.join(format!("node{me}")), b"");
    for _ in 0..1000 {
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        if n >= parties {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
