//! Who may command the daemon (issue 10, item 5).
//!
//! The security model, in full:
//!
//! * The control socket is created with mode **0600** (owner only), or
//!   **0660** owned by a configured group (`clinit -d --socket-group G`),
//!   whatever the daemon's umask: its mode is set explicitly, and the socket
//!   is bound under a umask of 0177, so it is never reachable by others, not
//!   even for the instant between `bind` and `chmod`. A socket directory the
//!   daemon creates gets mode 0755.
//! * Every connection's peer is identified by the kernel (`SO_PEERCRED`),
//!   not by anything the client says. **Commands** (tell, re-read,
//!   shutdown) are accepted only from root, from the daemon's own uid, or
//!   from a process whose primary or supplementary groups include the
//!   configured group; anyone else gets "permission denied" and a log line.
//! * **Status** is answered to every peer that can connect. Who can connect
//!   is decided by the socket's mode, above; the `clstat` file is written
//!   with mode 0644 (world-readable, as the original's was), because status
//!   readers (monitoring, `mosha` on other nodes) need no privilege.
//!
//! This follows the convention of other supervisors' control sockets
//! (systemd's private socket, supervisord's `chmod`/`chown` settings, s6's
//! per-directory permissions): file modes decide who connects, peer
//! credentials decide who commands.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Mode of the control socket without a socket group.
pub const SOCKET_MODE: u32 = 0o600;
/// Mode of the control socket with a socket group.
pub const SOCKET_MODE_GROUP: u32 = 0o660;
/// Mode of a socket or status directory the daemon creates.
pub const DIR_MODE: u32 = 0o755;

/// A socket group that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("no such group: {0:?}")]
    Unknown(String),
    #[error("cannot look up group {name:?}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// Resolve a group name (or a numeric gid) to its gid, through the system's
/// name service (`getgrnam_r`).
pub fn resolve_group(name: &str) -> Result<u32, GroupError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let cname = CString::new(name).map_err(|_| GroupError::Unknown(name.to_string()))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: getgrnam_r writes only into `grp` and `buf` (whose length we
    // pass) and stores into `result` a pointer to `grp` or null.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(GroupError::Lookup {
                name: name.to_string(),
                source: io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(GroupError::Unknown(name.to_string()));
        }
        Ok(grp.gr_gid)
    }
}

/// Set the socket's mode (and group) explicitly: 0600, or 0660 with `group`.
pub fn secure_socket(path: &Path, group: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    let mode = if group.is_some() { SOCKET_MODE_GROUP } else { SOCKET_MODE };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Run `f` with the process umask set to `mask`, then restore it. Used
/// around `bind`, which creates the socket file with `0777 & !umask`.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(mask as libc::mode_t));
    let out = f();
    umask(old);
    out
}

/// The credentials of a connected peer, from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// The rule of the module doc: who may send commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The daemon's effective uid.
    pub owner: u32,
    /// The configured socket group, if any.
    pub group: Option<u32>,
}

impl Access {
    /// The daemon's own uid, and `group`.
    pub fn new(group: Option<u32>) -> Access {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Access { owner: unsafe { libc::geteuid() }, group }
    }

    /// May `peer` send commands? Its supplementary groups are read from
    /// `/proc/<pid>/status` (the kernel reports only the primary gid).
    pub fn may_command(&self, peer: &Peer) -> bool {
        if peer.uid == 0 || peer.uid == self.owner {
            return true;
        }
        let Some(group) = self.group else { return false };
        peer.gid == group || peer.pid.is_some_and(|pid| supplementary_groups(pid).contains(&group))
    }

    /// Who may command, for error messages.
    pub fn describe(&self) -> String {
        match self.group {
            Some(g) => format!("root, uid {}, or members of group {g}", self.owner),
            None => format!("root or uid {}", self.owner),
        }
    }
}

/// The `Groups:` line of `/proc/<pid>/status` (empty if unreadable).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_the_owner_or_the_group_may_command() {
        let a = Access { owner: 1000, group: Some(50) };
        let peer = |uid, gid| Peer { uid, gid, pid: None };
        assert!(a.may_command(&peer(0, 0)));
        assert!(a.may_command(&peer(1000, 1000)));
        assert!(a.may_command(&peer(1001, 50)));
        assert!(!a.may_command(&peer(65534, 65534)));
        let no_group = Access { owner: 1000, group: None };
        assert!(!no_group.may_command(&peer(1001, 50)));
        assert_eq!(resolve_group("0").expect("numeric"), 0);
        assert_eq!(resolve_group("root").expect("root group"), 0);
        assert!(matches!(resolve_group("no-such-group-h10"), Err(GroupError::Unknown(_))));
    }
}
