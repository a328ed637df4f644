//! All real I/O of clinit: the process supervisor (fork/exec in a new
//! session, process-group signals, per-pid reaping), the client/daemon wire
//! format on the control socket, the daemon loop, and the cluster layer's
//! backends (membership, the shared store, fencing) with the `mosha` loop.
//! The engine crate stays pure; this crate turns its actions into system
//! calls and the world's answers back into engine events.

pub mod access;
pub mod atomic;
pub mod cgroup;
pub mod childlog;
pub mod claimed;
pub mod cli;
pub mod clone3;
pub mod cluster_status;
pub mod daemon;
pub mod entry_env;
pub mod fence;
pub mod fence_log;
pub mod generations;
pub mod group_moves;
pub mod heartbeat;
pub mod logview;
pub mod membership;
pub mod mosha;
pub mod nblog;
pub mod openmosix;
pub mod output_pipes;
pub mod process;
pub mod protocol;
pub mod readiness;
pub mod repeats;
pub mod safe_read;
pub mod shared;
pub mod spawn_clock;
pub mod status_detail;
pub mod status_reply;
pub mod status_writer;
#[cfg(test)]
pub(crate) mod test_log;
pub mod trace_writer;
pub mod watchdog;
pub mod word_log;
