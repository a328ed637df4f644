//! # clinit-engine
//!
//! The pure core of clinit: file formats and deterministic state machines.
//!
//! Nothing in this crate performs I/O, reads a clock or draws from a global
//! random number generator. Every entry point takes `now` (a [`Millis`]) and
//! an input, and answers with commands for an executor to carry out. That is
//! what lets the same code run under the real daemons (`clinit`, `mosha`)
//! and under the seeded simulator, and what makes a recorded trace replay
//! bit for bit.
//!
//! Two machines make up a node, and this page teaches both contracts.
//!
//! ## 1. The init machine
//!
//! [`init::Init`] runs one node's groups from its `cltab` (one line per
//! entry: `group:tag:level:mode:command`). Feed it an [`init::Input`] with
//! the time, drain the [`init::Action`]s it queued, and call it again with
//! [`init::Input::Tick`] when `now` reaches [`init::Init::poll_timeout`].
//!
//! ```
//! use clinit_engine::cltab::Cltab;
//! use clinit_engine::init::{Action, Init, InitConfig, Input, Reply};
//! use clinit_engine::process::ExitStatus;
//! use clinit_engine::Millis;
//!
//! // A group `web` whose level `start` runs one server, restarted on exit.
//! let table = Cltab::parse("web:w1:start:respawn:serve --port 80\n", "cltab").unwrap();
//! let mut init = Init::new(InitConfig::default(), table, Millis::ZERO);
//! init.drain_actions(); // the first status write
//!
//! // Tell the group to go to `start`: the machine asks for one spawn.
//! let reply = init.handle(Millis(10), Input::Tell { group: "web".into(), level: "start".into() });
//! assert_eq!(reply, Reply::Started);
//! let spawned = init.drain_actions().into_iter().find_map(|a| match a {
//!     Action::Spawn { id, command, .. } => Some((id, command)),
//!     _ => None,
//! });
//! let (id, command) = spawned.expect("a spawn");
//! assert_eq!(command, "serve --port 80");
//!
//! // The executor reports the server's exit; a respawn entry is restarted,
//! // after the throttle's pause when it dies too often.
//! init.handle(Millis(5_000), Input::Exited { id, status: ExitStatus::Code(1), lingering: false });
//! let mut now = Millis(5_000);
//! let mut respawned = init.drain_actions().iter().any(|a| matches!(a, Action::Spawn { .. }));
//! while !respawned {
//!     // Nothing to do until the machine's own timer: advance to it.
//!     now = init.poll_timeout().expect("a timer is pending");
//!     init.handle(now, Input::Tick);
//!     respawned = init.drain_actions().iter().any(|a| matches!(a, Action::Spawn { .. }));
//! }
//! assert_eq!(init.status().get("web").map(|s| s.level.as_str()), Some("start"));
//! ```
//!
//! ## 2. The cluster driver
//!
//! [`cluster::ClusterDriver`] is one node of a cluster: its init machine,
//! its HA monitor, and every cluster rule (membership, reading every
//! member's files with deadlines, replicating `hactl` and `cltab`,
//! staleness, fencing, heartbeats). It is shaped like quinn-proto's
//! `Connection`:
//!
//! * [`cluster::ClusterDriver::handle`] takes a [`cluster::ClusterInput`]
//!   (a command's result, a child's exit, a client request, a signal, or a
//!   `Tick`);
//! * [`cluster::ClusterDriver::poll_command`] hands out
//!   [`cluster::ClusterCommand`]s: read membership, read a node's files,
//!   copy a file, write `clstat`/`hastat`/heartbeat, spawn, signal, fence,
//!   exit. Each says which input answers it;
//! * [`cluster::ClusterDriver::poll_timeout`] is the one time the node next
//!   wants a `Tick`.
//!
//! An executor answers with facts only (a file's bytes, its mtime, the
//! reader's wall clock); the driver decides what they mean, and it decides
//! itself when a read has taken too long. Here is one cycle by hand, for a
//! node that sees a peer whose `clstat` says `web` runs there, and adopts
//! that peer's `hactl`:
//!
//! ```
//! use clinit_engine::cltab::Cltab;
//! use clinit_engine::cluster::*;
//! use clinit_engine::monitor::PolicyConfig;
//! use clinit_engine::Millis;
//!
//! let cfg = ClusterConfig::new(1, PolicyConfig::default());
//! let mut node = ClusterDriver::new(cfg, Cltab::default(), Millis::ZERO);
//! let wall = WallMs(1_700_000_000_000);
//! // What an executor found in node `n`'s directory (`None`: no file).
//! let report = |n: u32, file: SharedFile, text: Option<&str>| FileReport {
//!     node: n,
//!     file,
//!     path: format!("/mfs/{n}/{file}").into(),
//!     read: Ok(text.map(|t| FileVersion {
//!         mtime: wall,
//!         id: ContentId(u64::from(n)),
//!         bytes: Some(t.as_bytes().into()),
//!     })),
//! };
//! let mut published = None;
//! node.handle(Millis::ZERO, ClusterInput::Tick); // the first cycle is due at once
//! while let Some(command) = node.poll_command() {
//!     let answer = match command {
//!         ClusterCommand::WriteClstat { seq, .. } => {
//!             ClusterInput::StatusWritten { seq, file: SharedFile::Clstat, result: Ok(()) }
//!         }
//!         ClusterCommand::ReadMembership { seq } => {
//!             ClusterInput::MembershipRead { seq, report: MembershipReport::Members(vec![1, 2]) }
//!         }
//!         ClusterCommand::ReadNodes { seq, asks } => {
//!             // One batch for every member: my own directory (node 1) has
//!             // no hactl yet; node 2 runs web and has the hactl.
//!             let reports = asks
//!                 .iter()
//!                 .map(|ask| match (ask.node, ask.file) {
//!                     (2, SharedFile::Clstat) => {
//!                         report(2, ask.file, Some("Cluster::Init::Group web start DONE\n"))
//!                     }
//!                     (2, SharedFile::Hactl) => report(2, ask.file, Some("web start\n")),
//!                     (n, file) => report(n, file, None),
//!                 })
//!                 .collect();
//!             ClusterInput::NodesRead { seq, read_at: wall, reports, unchanged: vec![] }
//!         }
//!         ClusterCommand::Copy { seq, file: SharedFile::Hactl, from: 2, .. } => {
//!             // The driver chose node 2's hactl; the executor installs it.
//!             ClusterInput::CopyDone { seq, id: ContentId(99) }
//!         }
//!         ClusterCommand::WriteHastat { seq, published: p } => {
//!             published = Some(p);
//!             ClusterInput::StatusWritten { seq, file: SharedFile::Hastat, result: Ok(()) }
//!         }
//!         other => panic!("not in this example: {other:?}"),
//!     };
//!     node.handle(Millis::ZERO, answer);
//! }
//! // The cycle decided: `web` runs on node 2, so node 1 leaves it alone.
//! let published = published.expect("the view is published every cycle");
//! assert_eq!(published.members, vec![1, 2]);
//! assert!(published.hastat.groups["web"].contains_key(&2));
//! assert!(node.hactl().is_some_and(|h| h.groups.contains_key("web")));
//! // Next cycle: a second later or more (classic's cycle time), and never
//! // sooner than the minimum cycle.
//! assert!(node.poll_timeout().is_some_and(|t| t >= MIN_CYCLE));
//! ```
//!
//! Had node 2's read not answered, the driver itself would have reported
//! [`cluster::ClusterEvent::ReadTimedOut`] at the deadline it set, counted
//! node 2 as unreadable, and ignored the late answer.
//!
//! ### Three drivers through a failover
//!
//! [`cluster::lab::Lab`] is the smallest complete executor (files in a map,
//! children that run until signalled, one virtual clock). Three nodes boot;
//! `web` starts on one of them; that node dies; a survivor takes `web` over.
//!
//! ```
//! use clinit_engine::cluster::lab::Lab;
//! use clinit_engine::cluster::ClusterConfig;
//! use clinit_engine::monitor::PolicyConfig;
//! use clinit_engine::Millis;
//!
//! let mut lab = Lab::new();
//! for n in 1..=3 {
//!     let mut cfg = ClusterConfig::new(n, PolicyConfig::default());
//!     cfg.seed = u64::from(n);
//!     lab.add_node(cfg, "web:w1:start:respawn:serve\n", "web start\n");
//! }
//! // Every node reads the others' clstats; exactly one plans, tests and
//! // starts `web` (classic's rules: plan, wait a cycle, test, start).
//! assert!(lab.run_until_true(Millis::from_secs(120), |lab| !lab.owners("web").is_empty()));
//! let owner = lab.owners("web")[0];
//!
//! // The owner dies with its processes: membership drops it.
//! lab.crash(owner);
//! let limit = lab.now + Millis::from_secs(120);
//! assert!(lab.run_until_true(limit, |lab| !lab.owners("web").is_empty()));
//! let new_owner = lab.owners("web");
//! assert_eq!(new_owner.len(), 1);
//! assert_ne!(new_owner[0], owner);
//! ```

pub mod cltab;
pub mod cluster;
pub mod driver;
pub mod hactl;
pub mod hastat;
pub mod init;
pub mod lint;
pub mod located;
pub mod monitor;
pub mod options;
pub mod process;
pub mod status;
pub mod time;
pub mod trace;

pub use time::Millis;
