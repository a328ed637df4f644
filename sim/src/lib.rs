//! # clinit-sim
//!
//! A seeded discrete-event simulator for clinit's cluster layer. It runs N
//! production [`clinit_engine::cluster::ClusterDriver`]s (the cluster loop
//! `mosha` runs: init machine, HA monitor, reads, replication, heartbeats)
//! on a virtual clock and executes their commands against a simulated
//! shared filesystem, membership source and process table, in a world of
//! delays, crashes, partitions, killed, frozen or paused monitors, skewed
//! and drifting clocks and failing I/O. Invariants are judged from the
//! process table (ground truth), not from what the nodes believe. Every random
//! choice comes from one seed, so a run is a pure function of (seed,
//! scenario): any failure it finds can be replayed, traced and shrunk.
//!
//! One job per module: [`world`] runs the event loop; [`command`] and
//! [`processes`] model children, [`fs`] the shared filesystem,
//! [`membership`] the per-node membership views; [`faults`] draws fault
//! schedules; [`invariants`] checks the named properties and [`metrics`]
//! measures; [`report`] summarises; [`host`] and [`trace`] record inputs
//! and [`replay`] replays them, [`incident`] replays the recordings of
//! all nodes of one incident together ([`timeline_svg`] draws its timeline, [`latency_svg`] draws failover latency distributions, [`chart`] holds what the SVG charts share); [`sweep`] and [`shrink`] run many seeds.

pub mod chart;
pub mod command;
pub mod config;
pub mod faults;
pub mod fs;
pub mod host;
pub mod incident;
pub mod invariants;
pub mod json_words;
pub mod latency_svg;
pub mod membership;
pub mod metrics;
pub mod processes;
pub mod queue;
pub mod replay;
pub mod report;
pub mod seeds;
pub mod shrink;
pub mod study;
pub mod sweep;
pub mod timeline_svg;
pub mod trace;
pub mod units;
pub mod workload;
pub mod world;

pub use config::{SimConfig, WorldParams};
pub use world::{run, RunOptions, RunResult};
