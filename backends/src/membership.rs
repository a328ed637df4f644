//! Who is up: the cluster layer's membership, behind a trait so `mosha` can
//! use openMosix ([`crate::openmosix`]), heartbeat files on any shared
//! directory ([`crate::heartbeat`]), or a simulator's model of either.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Membership could not be learned at all (a single unreadable node is not
/// an error: that node is simply not up).
#[derive(Debug, Error)]
pub enum MembershipError {
    #[error("cannot list nodes in {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("membership read did not finish within {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Other(String),
}

/// A source of membership. Calls may block (they read files); `mosha`
/// runs them off the daemon's thread, bounded in time.
pub trait Membership: Send + Sync + 'static {
    /// The nodes that are up now, ascending, without repeats.
    fn members(&self) -> Result<Vec<u32>, MembershipError>;
    /// What this source reads, for logs (`openMosix /proc/hpc`, ...).
    fn describe(&self) -> String;
}
