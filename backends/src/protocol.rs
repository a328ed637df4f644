//! The client/daemon wire format on the control socket.
//!
//! The socket is a UNIX-domain stream socket (`:::socket:` in cltab). It is
//! not wire-compatible with Perl's Cluster::Init (IPC::LDT + Storable); this
//! is its own, documented format:
//!
//! * One connection carries **exactly one request and one reply**.
//! * The client sends the request as **one line of JSON** (UTF-8) terminated
//!   by `\n`. The line, without its terminator, is at most
//!   [`MAX_REQUEST_LEN`] (64 KiB) bytes; a longer one gets an error reply.
//!   End of stream also ends the request, so a client may shut down its
//!   writing side instead of sending `\n`.
//! * The daemon answers with **one line of JSON** terminated by `\n`, then
//!   closes the connection.
//!
//! Requests are objects with an `op` field; other fields depend on it.
//! Unknown extra fields are ignored (so a newer client can add optional
//! ones); an unknown `op` or a missing field is an error.
//!
//! ```text
//! {"op":"tell","group":"web","level":"2"}   switch group `web` to level 2
//! {"op":"shutdown"}                          halt all groups, then exit
//! {"op":"status"}                            report the status of all groups
//! {"op":"reread"}                            re-read cltab now
//! ```
//!
//! A reply always has `ok` and `msg`; `status` is present only when there is
//! one to report (answer to `status`):
//!
//! ```text
//! {"ok":true,"msg":"level transition started"}
//! {"ok":false,"msg":"no such group: web"}
//! {"ok":true,"msg":"status","status":{...}}
//! ```
//!
//! The status document has `pid` (the daemon's), `cltab` (its path; the
//! client checks ambiguous tells against it), `processes`, `shutting_down`,
//! `groups` (`{"group","level","state"}` as in clstat) and `entries` (one
//! per entry of the groups' current levels: `group`, `tag`, `mode`,
//! `state`, `restarts`, `fast_respawns`, and when known `pid`, `uptime_ms`,
//! `last_exit`, `in_ms` (throttled), `for_ms` and `signal` (stopping)).
//!
//! The daemon side uses [`read_request`] and [`write_reply`] (tokio); the
//! command-line client uses the blocking [`call`]. A client treats
//! [`ClientError::daemon_not_running`] as exit status 3.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest request line accepted, in bytes, without the terminating `\n`.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// Longest reply line the client accepts (a status reply can be large).
pub const MAX_REPLY_LEN: usize = 16 * 1024 * 1024;

/// What a client asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Switch `group` to runlevel `level` (`clinit GROUP LEVEL`).
    Tell { group: String, level: String },
    /// Halt every group, then exit (`clinit -k`).
    Shutdown,
    /// Report the status of every group.
    Status,
    /// Re-read cltab now (`clinit` with no arguments).
    Reread,
}

/// The daemon's answer to one request.
///
/// On the wire: `{"ok":…,"msg":…}` and, for a status, `"status":{…}` last.
/// The daemon builds its status from typed fields and keeps it as JSON
/// text ([`Reply::with_typed_status`]): with 1,000 entries a
/// `serde_json::Value` tree costs about 12 allocations per entry on every
/// status call, and `clinit --wait` asks every 20 ms. A client parses
/// `status` into a `Value` ([`call`]) or only the fields it needs
/// ([`call_status_brief`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Reply {
    /// Whether the request was accepted.
    pub ok: bool,
    /// Human-readable result, printed by the client.
    pub msg: String,
    /// Structured status, for [`Request::Status`], as a client reads it.
    #[serde(default)]
    pub status: Option<serde_json::Value>,
    /// The daemon's status, already serialized; sent in place of `status`.
    #[serde(skip)]
    encoded: Option<EncodedStatus>,
}

/// A status document serialized once, written into the reply verbatim.
#[derive(Debug, Clone)]
struct EncodedStatus(Box<serde_json::value::RawValue>);

impl PartialEq for EncodedStatus {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Serialize for Reply {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let has_status = self.encoded.is_some() || self.status.is_some();
        let mut st = s.serialize_struct("Reply", 2 + usize::from(has_status))?;
        st.serialize_field("ok", &self.ok)?;
        st.serialize_field("msg", &self.msg)?;
        if let Some(raw) = &self.encoded {
            st.serialize_field("status", &raw.0)?;
        } else if let Some(status) = &self.status {
            st.serialize_field("status", status)?;
        }
        st.end()
    }
}

impl Reply {
    /// A successful reply with this message.
    pub fn ok(msg: impl Into<String>) -> Self {
        Reply { ok: true, msg: msg.into(), status: None, encoded: None }
    }

    /// A failure reply with this message.
    pub fn err(msg: impl Into<String>) -> Self {
        Reply { ok: false, msg: msg.into(), status: None, encoded: None }
    }

    /// The same reply carrying a status document.
    pub fn with_status(mut self, status: serde_json::Value) -> Self {
        self.status = Some(status);
        self.encoded = None;
        self
    }

    /// The same reply carrying a status document serialized straight from
    /// `status` (serde derive), without a `serde_json::Value` tree. The
    /// bytes on the wire are the same as for [`Reply::with_status`] of the
    /// equal `Value` when the struct's fields are in the order a `Value`
    /// map sorts them (alphabetical).
    pub fn with_typed_status<T: Serialize>(mut self, status: &T) -> Self {
        match serde_json::value::to_raw_value(status) {
            Ok(raw) => {
                self.encoded = Some(EncodedStatus(raw));
                self.status = None;
                self
            }
            // Unreachable for the daemon's plain structs (string keys only);
            // said to the client rather than panicking.
            Err(e) => Reply::err(format!("cannot serialize the status: {e}")),
        }
    }
}

/// The part of a status document a polling client needs: the daemon's
/// pid, its live process count, whether it is starting or shutting down,
/// and the group lines. Parsing only these skips the per-entry array
/// without allocating for it (serde ignores unknown fields). Every field
/// is optional on the wire, so an older daemon's status parses too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StatusBrief {
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub processes: u64,
    #[serde(default)]
    pub starting: Option<String>,
    #[serde(default)]
    pub shutting_down: bool,
    #[serde(default)]
    pub groups: Vec<GroupLine>,
}

/// One `groups` element of a status document: as in clstat.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupLine {
    pub group: String,
    pub level: String,
    pub state: String,
}

/// A reply read for its [`StatusBrief`] only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BriefReply {
    pub ok: bool,
    pub msg: String,
    #[serde(default)]
    pub status: Option<StatusBrief>,
}

/// A request could not be read or understood, or a reply not written.
/// The `Display` text is meant to be sent back in [`Reply::err`].
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request too long: more than {limit} bytes without a newline")]
    TooLong { limit: usize },
    #[error("request is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error("empty request")]
    Empty,
    /// The peer closed without sending a byte: a probe (a second daemon
    /// checking whether this socket is served, a health check), not a bad
    /// request; logged at debug at most.
    #[error("connection closed without a request")]
    Closed,
    /// serde's message may quote the request's own strings (`unknown
    /// variant ...`): shown with control characters escaped.
    #[error("malformed request: {}", clinit_engine::located::escape_controls(&.0.to_string()))]
    Json(#[source] serde_json::Error),
    #[error("no complete request within {}", fmt_duration(*.after))]
    Timeout { after: Duration },
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Parse one request line (with or without its trailing `\n` / `\r\n`).
/// Never panics; every kind of bad input becomes a [`ProtocolError`] with a
/// message fit to send back to the client.
pub fn parse_request(line: &[u8]) -> Result<Request, ProtocolError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_REQUEST_LEN {
        return Err(ProtocolError::TooLong { limit: MAX_REQUEST_LEN });
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| ProtocolError::NotUtf8 { offset: e.valid_up_to() })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(ProtocolError::Empty);
    }
    serde_json::from_str(text).map_err(ProtocolError::Json)
}

/// The request as it goes on the wire: one JSON line ending in `\n`.
pub fn encode_request(req: &Request) -> Vec<u8> {
    encode_line(req)
}

/// The reply as it goes on the wire: one JSON line ending in `\n`.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    encode_line(reply)
}

fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain types cannot fail (string keys, no maps with
    // non-string keys, serde_json::Value and RawValue always serialize).
    let mut out = serde_json::to_vec(value).expect("protocol types always serialize");
    out.push(b'\n');
    out
}

/// Daemon side: read one request from a freshly accepted connection, up to
/// the first `\n` or end of stream, within `timeout` overall. Enforces
/// [`MAX_REQUEST_LEN`]. Anything after the newline is ignored.
pub async fn read_request<S>(stream: &mut S, timeout: Duration) -> Result<Request, ProtocolError>
where
    S: AsyncRead + Unpin,
{
    let (line, got_any) = tokio::time::timeout(timeout, read_line(stream))
        .await
        .map_err(|_| ProtocolError::Timeout { after: timeout })??;
    if !got_any {
        return Err(ProtocolError::Closed);
    }
    parse_request(&line)
}

/// One line, and whether the peer sent any byte at all.
async fn read_line<S>(stream: &mut S) -> Result<(Vec<u8>, bool), ProtocolError>
where
    S: AsyncRead + Unpin,
{
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut got_any = false;
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok((line, got_any)); // EOF ends the request
        }
        got_any = true;
        if let Some(pos) = chunk[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..pos]);
            break;
        }
        line.extend_from_slice(&chunk[..n]);
        // Allow a trailing '\r' just past the limit; parse_request strips it.
        if line.len() > MAX_REQUEST_LEN + 1 {
            return Err(ProtocolError::TooLong { limit: MAX_REQUEST_LEN });
        }
    }
    Ok((line, got_any))
}

/// Daemon side: send the reply line. The caller closes the connection
/// afterwards (dropping the stream) and should bound this with
/// `tokio::time::timeout`, since a client that never reads could otherwise
/// stall a large reply.
pub async fn write_reply<S>(stream: &mut S, reply: &Reply) -> Result<(), ProtocolError>
where
    S: AsyncWrite + Unpin,
{
    stream.write_all(&encode_reply(reply)).await?;
    stream.flush().await?;
    Ok(())
}

/// A client call failed. Messages name the socket and suggest the likely
/// cause.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no daemon socket at {}: is the daemon running?", .path.display())]
    NoSocket { path: PathBuf },
    #[error("connection refused on socket {}: is the daemon running?", .path.display())]
    Refused { path: PathBuf },
    #[error("cannot connect to daemon socket {}: {source}", .path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no reply from the daemon on socket {} within {}", .path.display(), fmt_duration(*.after))]
    Timeout { path: PathBuf, after: Duration },
    #[error("the daemon on socket {} closed the connection without replying", .path.display())]
    NoReply { path: PathBuf },
    #[error("reply from the daemon on socket {} is longer than {limit} bytes", .path.display())]
    ReplyTooLong { path: PathBuf, limit: usize },
    #[error("malformed reply from the daemon on socket {}: {source}", .path.display())]
    BadReply {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("talking to the daemon on socket {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ClientError {
    /// Nothing serves the socket: it does not exist, or nobody listens on
    /// it (a daemon killed with SIGKILL leaves its socket file behind).
    /// Clients exit with status 3 then, as `systemctl status` does.
    pub fn daemon_not_running(&self) -> bool {
        matches!(self, ClientError::NoSocket { .. } | ClientError::Refused { .. })
    }
}

/// Client side (blocking): connect to `socket`, send `req`, wait for the
/// reply. `timeout` bounds the whole exchange after connecting.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    call_as(socket, req, timeout)
}

/// Client side (blocking): ask for the status and parse only its
/// [`StatusBrief`], for clients that poll (`clinit --wait`, benches).
pub fn call_status_brief(socket: &Path, timeout: Duration) -> Result<BriefReply, ClientError> {
    call_as(socket, &Request::Status, timeout)
}

/// [`call`], parsing the reply line as `T`.
fn call_as<T: serde::de::DeserializeOwned>(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> Result<T, ClientError> {
    let path = socket.to_path_buf();
    let mut stream = StdUnixStream::connect(socket).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ClientError::NoSocket { path: path.clone() },
        io::ErrorKind::ConnectionRefused => ClientError::Refused { path: path.clone() },
        _ => ClientError::Connect { path: path.clone(), source },
    })?;
    let deadline = Instant::now() + timeout;
    let timed_out = |path: &PathBuf| ClientError::Timeout { path: path.clone(), after: timeout };
    let io_err = |path: &PathBuf, source: io::Error| {
        if matches!(source.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
            timed_out(path)
        } else {
            ClientError::Io { path: path.clone(), source }
        }
    };
    // A zero timeout is rejected by set_*_timeout; treat "no time left" as
    // timed out instead.
    let remaining = || {
        let left = deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    };

    let left = remaining().ok_or_else(|| timed_out(&path))?;
    stream.set_write_timeout(Some(left)).map_err(|e| io_err(&path, e))?;
    stream.write_all(&encode_request(req)).map_err(|e| io_err(&path, e))?;
    // We send nothing more; tell the daemon so (it may read to EOF). A
    // failure here only means the daemon already closed; the read will say.
    let _ = stream.shutdown(std::net::Shutdown::Write);

    let mut reply = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = remaining().ok_or_else(|| timed_out(&path))?;
        stream.set_read_timeout(Some(left)).map_err(|e| io_err(&path, e))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(&path, e)),
        };
        if n == 0 {
            break;
        }
        if let Some(pos) = chunk[..n].iter().position(|&b| b == b'\n') {
            reply.extend_from_slice(&chunk[..pos]);
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
        if reply.len() > MAX_REPLY_LEN {
            return Err(ClientError::ReplyTooLong { path, limit: MAX_REPLY_LEN });
        }
    }
    if reply.iter().all(u8::is_ascii_whitespace) {
        return Err(ClientError::NoReply { path });
    }
    serde_json::from_slice(&reply).map_err(|source| ClientError::BadReply { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tell(group: &str, level: &str) -> Request {
        Request::Tell { group: group.into(), level: level.into() }
    }

    #[test]
    fn parses_good_requests() {
        assert_eq!(
            parse_request(br#"{"op":"tell","group":"web","level":"2"}"#).unwrap(),
            tell("web", "2")
        );
        assert_eq!(parse_request(b"{\"op\":\"shutdown\"}\n").unwrap(), Request::Shutdown);
        assert_eq!(parse_request(b"  {\"op\":\"status\"}\r\n").unwrap(), Request::Status);
        assert_eq!(parse_request(br#"{"op":"reread"}"#).unwrap(), Request::Reread);
        // field order does not matter; unknown extra fields are ignored
        assert_eq!(
            parse_request(br#"{"level":"0","extra":1,"group":"g","op":"tell"}"#).unwrap(),
            tell("g", "0")
        );
    }

    #[test]
    fn wire_format_is_stable() {
        assert_eq!(
            encode_request(&tell("web", "2")),
            b"{\"op\":\"tell\",\"group\":\"web\",\"level\":\"2\"}\n"
        );
        assert_eq!(encode_request(&Request::Shutdown), b"{\"op\":\"shutdown\"}\n");
        assert_eq!(encode_request(&Request::Status), b"{\"op\":\"status\"}\n");
        assert_eq!(encode_request(&Request::Reread), b"{\"op\":\"reread\"}\n");
        assert_eq!(
            encode_reply(&Reply::ok("level transition started")),
            b"{\"ok\":true,\"msg\":\"level transition started\"}\n"
        );
        assert_eq!(
            encode_reply(&Reply::err("no such group: x").with_status(json!({"a": 1}))),
            b"{\"ok\":false,\"msg\":\"no such group: x\",\"status\":{\"a\":1}}\n"
        );
        // a reply without `status` parses
        let r: Reply = serde_json::from_str(r#"{"ok":true,"msg":"m"}"#).unwrap();
        assert_eq!(r, Reply::ok("m"));
    }

    /// A typed status goes on the wire as the equal `Value` would, and a
    /// polling client reads its brief part without the entries.
    #[test]
    fn typed_status_is_written_like_a_value_and_read_briefly() {
        #[derive(Serialize)]
        struct Doc<'a> {
            entries: Vec<[u32; 2]>,
            groups: Vec<[(&'a str, &'a str); 0]>,
            pid: u32,
            processes: u64,
        }
        let doc = Doc { entries: vec![[1, 2], [3, 4]], groups: vec![], pid: 7, processes: 2 };
        let typed = encode_reply(&Reply::ok("status").with_typed_status(&doc));
        let value = encode_reply(&Reply::ok("status").with_status(json!({
            "pid": 7, "processes": 2, "groups": [], "entries": [[1, 2], [3, 4]]})));
        assert_eq!(String::from_utf8(typed.clone()).unwrap(), String::from_utf8(value).unwrap());
        let full: Reply = serde_json::from_slice(&typed).unwrap();
        assert_eq!(full.status.unwrap()["entries"][1][0], 3);
        let brief: BriefReply = serde_json::from_slice(&typed).unwrap();
        let st = brief.status.unwrap();
        assert_eq!((st.pid, st.processes, st.shutting_down), (Some(7), 2, false));
        // An older daemon's status (no pid, no entries) reads too.
        let old: BriefReply = serde_json::from_str(
            r#"{"ok":true,"msg":"status","status":{"processes":3,"groups":[{"group":"g","level":"1","state":"DONE"}]}}"#,
        )
        .unwrap();
        assert_eq!(old.status.unwrap().groups[0].state, "DONE");
    }

    #[test]
    fn encode_then_parse_round_trips() {
        for req in
            [tell("grp with space", "1\n2\"3"), Request::Shutdown, Request::Status, Request::Reread]
        {
            let line = encode_request(&req);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(parse_request(&line).unwrap(), req);
        }
    }

    fn err_msg(line: &[u8]) -> String {
        parse_request(line).unwrap_err().to_string()
    }

    #[test]
    fn rejects_garbage_with_readable_messages() {
        assert_eq!(err_msg(b""), "empty request");
        assert_eq!(err_msg(b" \r\n"), "empty request");
        assert!(err_msg(b"hello").starts_with("malformed request: "));
        assert!(err_msg(b"{\"op\":\"tell\"").starts_with("malformed request: "));
        assert!(err_msg(b"[1,2]").starts_with("malformed request: "));
        assert!(err_msg(b"{}").contains("missing field `op`"), "{}", err_msg(b"{}"));
        let m = err_msg(br#"{"op":"reboot"}"#);
        assert!(m.contains("unknown variant `reboot`"), "{m}");
        let m = err_msg(br#"{"op":"tell","group":"g"}"#);
        assert!(m.contains("missing field `level`"), "{m}");
        let m = err_msg(br#"{"op":"tell","group":1,"level":"2"}"#);
        assert!(m.starts_with("malformed request: invalid type"), "{m}");
        assert_eq!(
            err_msg(b"{\"op\":\"st\xffatus\"}"),
            "request is not valid UTF-8 (invalid byte at offset 9)"
        );
        // every byte value alone: never a panic
        for b in 0..=255u8 {
            assert!(parse_request(&[b]).is_err());
        }
    }

    #[test]
    fn rejects_oversize() {
        let pad = " ".repeat(MAX_REQUEST_LEN);
        let line = format!("{{\"op\":\"status\"}}{pad}");
        assert!(matches!(
            parse_request(line.as_bytes()),
            Err(ProtocolError::TooLong { limit: MAX_REQUEST_LEN })
        ));
        assert_eq!(
            err_msg(line.as_bytes()),
            "request too long: more than 65536 bytes without a newline"
        );
        // exactly at the limit is fine
        let ok = format!("{{\"op\":\"status\"}}{}", " ".repeat(MAX_REQUEST_LEN - 15));
        assert_eq!(ok.len(), MAX_REQUEST_LEN);
        assert_eq!(parse_request(ok.as_bytes()).unwrap(), Request::Status);
    }

    #[tokio::test]
    async fn round_trip_over_a_socket_pair() {
        let (mut client, mut daemon) = tokio::net::UnixStream::pair().unwrap();
        let req = tell("web", "2");
        client.write_all(&encode_request(&req)).await.unwrap();
        let got = read_request(&mut daemon, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got, req);

        let reply = Reply::ok("level transition started").with_status(json!({"web": "2"}));
        write_reply(&mut daemon, &reply).await.unwrap();
        drop(daemon);
        let mut buf = Vec::new();
        client.read_to_end(&mut buf).await.unwrap();
        assert_eq!(buf.last(), Some(&b'\n'));
        let back: Reply = serde_json::from_slice(&buf).unwrap();
        assert_eq!(back, reply);
    }

    #[tokio::test]
    async fn request_ended_by_eof_without_newline() {
        let (mut client, mut daemon) = tokio::net::UnixStream::pair().unwrap();
        client.write_all(br#"{"op":"reread"}"#).await.unwrap();
        client.shutdown().await.unwrap();
        let got = read_request(&mut daemon, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got, Request::Reread);
    }

    #[tokio::test]
    async fn oversize_request_on_the_socket_is_rejected() {
        let (mut client, mut daemon) = tokio::net::UnixStream::pair().unwrap();
        // Never sends a newline; the reader must stop at the limit rather
        // than buffer forever or wait for EOF.
        let writer = tokio::spawn(async move {
            let junk = vec![b'x'; 4 * MAX_REQUEST_LEN];
            let _ = client.write_all(&junk).await;
            client
        });
        let err = read_request(&mut daemon, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, ProtocolError::TooLong { .. }), "{err}");
        drop(daemon);
        let _ = writer.await;
    }

    #[tokio::test]
    async fn silent_client_times_out() {
        let (_client, mut daemon) = tokio::net::UnixStream::pair().unwrap();
        let err = read_request(&mut daemon, Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(err, ProtocolError::Timeout { .. }), "{err}");
        assert_eq!(err.to_string(), "no complete request within 0.1 s");
    }
}
