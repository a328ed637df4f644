//! `mosha`: the head-less HA monitor of one node (the OpenMosix::HA
//! successor), and `mosha status`, the operator's one-shot cluster table.
//! Thin: argument parsing and wiring; the work is in
//! `clinit_backends::mosha` and `clinit_backends::cluster_status`.

use clap::{Parser, Subcommand, ValueEnum};
use clinit_backends::cli;
use clinit_backends::cluster_status;
use clinit_backends::heartbeat::HeartbeatMembership;
use clinit_backends::membership::Membership;
use clinit_backends::mosha::{self, MembershipKind, MoshaConfig};
use clinit_backends::openmosix::{self, HpcMembership};
use clinit_backends::shared::{FsStore, NodePaths, SharedStore};
use clinit_engine::monitor::ranked::RankedParams;
use clinit_engine::monitor::{ClassicParams, PolicyConfig};
use std::path::PathBuf;
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
#[derive(Parser, Debug)]
#[command(name = "mosha", version, after_help = AFTER_HELP)]
struct Args {
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
    /// A node whose clstat is older than this is stale (STOMITH). clstat is
    /// rewritten every third of it.
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
    /// Decision policy.
    #[arg(long, value_enum, default_value = "classic")]
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
    /// `clinit-sim replay FILE` re-runs decision for decision).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// On SIGTERM/SIGINT, wait this long for the groups to stop before
    /// halting them anyway.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0, value_parser = cli::positive_secs)]
    shutdown_wait: f64,
    /// `--policy ranked`: the cluster's nodes, as first known membership
    /// (e.g. 1,2,3; later kept in the node's durable state).
    #[arg(long, value_delimiter = ',', value_name = "NODES")]
    known: Option<Vec<u32>>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print one table of the cluster: nodes (up, stale, unreadable, fenced)
    /// and groups (wanted level, where they run, state on every node).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PolicyName {
    /// OpenMosix::HA 0.555 decisions and timings.
    Classic,
    /// Leases, quorum-granted claims, fencing and a watchdog: placement by
    /// rank (lease H = 2 s, heartbeat H/8; --timeout is not used).
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
Set RUST_LOG (e.g. RUST_LOG=debug) to change the log level.";

fn main() -> ExitCode {
    // Started as ranked's watchdog process (by mosha itself): run it only.
    clinit_backends::watchdog::run_if_requested();
    let args = Args::parse();
    cli::init_logging();
    match &args.command {
        Some(Command::Status { json }) => status(&args, *json),
        None => daemon(&args),
    }
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
    let policy = match args.policy {
        PolicyName::Classic => PolicyConfig::Classic(ClassicParams {
            timeout: cli::millis(args.timeout),
            stomith_grace: cli::millis(args.stomith_grace),
            ..Default::default()
        }),
        PolicyName::Ranked => PolicyConfig::Ranked(RankedParams {
            fence_command: args.stomith.is_some(),
            ..Default::default()
        }),
    };
    let mut cfg = MoshaConfig::new(me, paths, membership, policy);
    cfg.seed = args.seed.unwrap_or_else(|| default_seed(me));
    cfg.stomith = args.stomith.clone();
    cfg.fence_limit = Duration::from_secs_f64(args.stomith_timeout);
    cfg.shutdown_wait = Duration::from_secs_f64(args.shutdown_wait);
    cfg.record = args.record.clone();
    cfg.known = args.known.clone().unwrap_or_default();
    cli::run_daemon("mosha", mosha::run(cfg))
}

fn status(args: &Args, json: bool) -> ExitCode {
    let timeout = cli::millis(args.timeout);
    let store: Arc<dyn SharedStore> =
        Arc::new(FsStore::new(NodePaths::new(args.mfsbase.clone(), &args.varpath)));
    let membership: Box<dyn Membership> = match args.membership {
        MembershipName::Openmosix => Box::new(HpcMembership::new(args.hpcbase.clone())),
        MembershipName::Heartbeat => Box::new(HeartbeatMembership::new(store.clone(), timeout)),
    };
    let me = match whois(args) {
        Ok(n) => Some(n),
        Err(e) => {
            if !json {
                eprintln!("mosha: local node unknown ({e}); showing the newest hactl");
            }
            None
        }
    };
    let st = cluster_status::collect(&*store, &*membership, timeout, me, SystemTime::now());
    if json {
        match serde_json::to_string_pretty(&st) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("mosha: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", cluster_status::render(&st));
    }
    if st.nodes.is_empty() {
        eprintln!("mosha: no node found under {}", args.mfsbase.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
