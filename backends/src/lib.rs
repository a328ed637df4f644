//! All real I/O of clinit: the process supervisor (fork/exec in a new
//! session, process-group signals, per-pid reaping) and the client/daemon
//! wire format on the control socket. The engine crate stays pure; this
//! crate turns its actions into system calls and the world's answers back
//! into engine events.

pub mod atomic;
pub mod daemon;
pub mod process;
pub mod protocol;
