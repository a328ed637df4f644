//! # clinit-engine
//!
//! The pure core of clinit: file formats and deterministic state machines.
//!
//! Nothing in this crate performs I/O, reads a clock or draws from a global
//! random number generator. Every entry point takes `now` (a [`time::Millis`])
//! and an input, and answers with actions for a driver to carry out. That is
//! what lets the same code run under the real daemon and under the seeded
//! simulator, and what makes a recorded trace replay bit for bit.

pub mod cltab;
pub mod cluster;
pub mod driver;
pub mod hactl;
pub mod hastat;
pub mod init;
pub mod lint;
pub mod located;
pub mod monitor;
pub mod process;
pub mod status;
pub mod time;
pub mod trace;

pub use time::Millis;
