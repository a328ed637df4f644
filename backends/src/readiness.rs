//! The I/O of readiness (issue 11 item 4): how an entry with `ready=` tells
//! the daemon it is ready. What readiness *means* (starting until ready,
//! the time-out, FAILED) is the engine's rule (`clinit_engine::init`); this
//! module only turns a message into an `Input::Ready` for the instance.
//!
//! * `ready=notify`, systemd's `sd_notify` protocol: each instance gets its
//!   own datagram socket, `NOTIFY_DIR/ID.sock`, named in `$NOTIFY_SOCKET`.
//!   A datagram holding the line `READY=1` makes it ready. The socket has
//!   `SO_PASSCRED` set, and a datagram counts only when the kernel-supplied
//!   sender pid is in the instance's process group (systemd's
//!   `NotifyAccess=all`, limited to the entry's own processes): another
//!   local process cannot declare an entry ready. The directory is 0711
//!   (reachable, not listable); the socket is 0600, owned by the entry's
//!   user when it has one.
//! * `ready=fd:N`, s6's notification-fd: the instance gets the write end
//!   of a pipe as its descriptor N and is ready when it writes a newline.
//!
//! Both are read on the output thread ([`crate::childlog`]), never on the
//! daemon's loop; the result reaches the loop through an unbounded channel
//! (a send never blocks). A source ends at readiness, at EOF, or when the
//! daemon drops the instance's cancel handle (it was reaped).

use crate::childlog::OutputJob;
use clinit_engine::process::ProcId;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Dropping it ends the instance's readiness source.
pub type Cancel = oneshot::Sender<()>;

/// Where readiness reports go: the daemon's loop.
pub type ReadyTx = mpsc::UnboundedSender<ProcId>;

/// The directory of notify sockets for a daemon on `socket`:
/// `SOCKET.notify/` beside it.
pub fn notify_dir(socket: &Path) -> PathBuf {
    let mut name = socket.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "clinit".into());
    name.push(".notify");
    socket.with_file_name(name)
}

/// Create the notify directory (0711) if needed.
pub fn create_notify_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// A bound notify socket for instance `id`, before the spawn.
pub struct NotifySocket {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    /// Bind `DIR/ID.sock` (replacing a stale one), 0600, owned by `owner`
    /// when given, with `SO_PASSCRED` so each datagram carries its sender.
    pub fn bind(dir: &Path, id: ProcId, owner: Option<(u32, u32)>) -> io::Result<NotifySocket> {
        let path = dir.join(format!("{}.sock", id.0));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
        let on: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        sock.set_nonblocking(true)?;
        Ok(NotifySocket { path, sock })
    }

    /// The job that reads it for instance `id` whose process group is
    /// `pgid` (known after the spawn).
    pub fn job(self, id: ProcId, pgid: u32, label: String, tx: ReadyTx) -> (OutputJob, Cancel) {
        let (cancel, cancelled) = oneshot::channel();
        let job = OutputJob::Task(Box::new(move || {
            Box::pin(async move {
                tokio::select! {
                    _ = watch_notify(&self.sock, id, pgid, &label, tx) => {}
                    _ = cancelled => {}
                }
                // Dropping `self` removes the socket file.
                drop(self);
            })
        }));
        (job, cancel)
    }
}

impl Drop for NotifySocket {
    /// The socket file goes with the socket: at readiness, when the
    /// instance is reaped, or when its spawn failed.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One received datagram: text and sender pid (0 when the kernel gave none).
fn recv_with_pid(fd: i32, buf: &mut [u8]) -> io::Result<(usize, u32)> {
    // Room for one SCM_CREDENTIALS message.
    let mut cmsg = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain C data; every pointer in it points to a live
    // buffer of the stated length for the duration of the call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut pid = 0;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                pid = cred.pid as u32;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        Ok((n as usize, pid))
    }
}

/// The process group of `pid`, if it still exists.
fn pgid_of(pid: u32) -> Option<u32> {
    // SAFETY: getpgid takes a plain integer.
    let g = unsafe { libc::getpgid(pid as libc::pid_t) };
    (g > 0).then_some(g as u32)
}

async fn watch_notify(sock: &UnixDatagram, id: ProcId, pgid: u32, label: &str, tx: ReadyTx) {
    let sock = match sock.try_clone().and_then(tokio::net::UnixDatagram::from_std) {
        Ok(s) => s,
        Err(e) => {
            warn!("{label}: cannot watch its notify socket: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; 4096];
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        let raw = sock.as_raw_fd();
        match sock.try_io(tokio::io::Interest::READABLE, || recv_with_pid(raw, &mut buf)) {
            Ok((n, pid)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                // A live sender must be in the instance's process group. A
                // sender that has already exited cannot be placed: the
                // common `systemd-notify --ready` (or any one-shot helper)
                // exits right after its send, often before this read. It is
                // trusted as systemd trusts it: only root and the entry's
                // own user may write to this private socket.
                let live_pgid = if pid == 0 || pid == pgid { None } else { pgid_of(pid) };
                if pid == 0 || live_pgid.is_some_and(|g| g != pgid) {
                    warn!("{label}: ignored a notify message from pid {pid}, not one of its processes");
                    continue;
                }
                if pid != pgid && live_pgid.is_none() {
                    debug!("{label}: notify message from pid {pid}, which has already exited");
                }
                if text.lines().any(|l| l == "READY=1") {
                    let _ = tx.send(id);
                    return;
                }
                debug!("{label}: notify message without READY=1 ignored");
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                warn!("{label}: reading its notify socket: {e}");
                return;
            }
        }
    }
}

/// The job reading the readiness pipe of instance `id` (s6 style): ready
/// at the first newline.
pub fn fd_job(read: OwnedFd, id: ProcId, label: String, tx: ReadyTx) -> (OutputJob, Cancel) {
    let (cancel, cancelled) = oneshot::channel();
    let job = OutputJob::Task(Box::new(move || {
        Box::pin(async move {
            let watch = async {
                let mut rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(read) {
                    Ok(rx) => rx,
                    Err(e) => {
                        warn!("{label}: cannot read its readiness fd: {e}");
                        return;
                    }
                };
                let mut buf = [0u8; 512];
                loop {
                    match rx.read(&mut buf).await {
                        Ok(0) => return,
                        Ok(n) if buf[..n].contains(&b'\n') => {
                            let _ = tx.send(id);
                            return;
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            };
            tokio::select! {
                _ = watch => {}
                _ = cancelled => {}
            }
        })
    }));
    (job, cancel)
}
