//! The blocking client against a real tokio listener on a socket in a temp dir.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clinit_backends::protocol::{
    call, read_request, write_reply, ClientError, ProtocolError, Reply, Request,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

const T: Duration = Duration::from_secs(5);

/// Run the blocking client off the runtime thread.
async fn call_blocking(
    path: PathBuf,
    req: Request,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    tokio::task::spawn_blocking(move || call(&path, &req, timeout)).await.unwrap()
}

#[tokio::test]
async fn client_and_daemon_talk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinit.s");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (mut conn, _) = listener.accept().await.unwrap();
            let reply = match read_request(&mut conn, T).await {
                Ok(Request::Tell { group, level }) => Reply::ok(format!("told {group} {level}")),
                Ok(Request::Status) => {
                    Reply::ok("status").with_status(serde_json::json!({"web": "2"}))
                }
                Ok(other) => Reply::err(format!("unexpected {other:?}")),
                Err(e) => Reply::err(e.to_string()),
            };
            write_reply(&mut conn, &reply).await.unwrap();
            seen.push(reply);
        }
        seen
    });

    let r =
        call_blocking(path.clone(), Request::Tell { group: "web".into(), level: "2".into() }, T)
            .await
            .unwrap();
    assert_eq!(r, Reply::ok("told web 2"));
    let r = call_blocking(path.clone(), Request::Status, T).await.unwrap();
    assert!(r.ok);
    assert_eq!(r.status, Some(serde_json::json!({"web": "2"})));
    assert_eq!(server.await.unwrap().len(), 2);
}

#[tokio::test]
async fn garbage_gets_an_error_reply_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinit.s");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let err = read_request(&mut conn, T).await.unwrap_err();
        write_reply(&mut conn, &Reply::err(err.to_string())).await.unwrap();
        err
    });
    let mut raw = tokio::net::UnixStream::connect(&path).await.unwrap();
    raw.write_all(b"{\"op\":\"launch_missiles\"}\n").await.unwrap();
    let err = server.await.unwrap();
    assert!(matches!(err, ProtocolError::Json(_)));
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut buf).await.unwrap();
    let reply: Reply = serde_json::from_slice(&buf).unwrap();
    assert!(!reply.ok);
    assert!(reply.msg.contains("unknown variant `launch_missiles`"), "{}", reply.msg);
}

#[test]
fn missing_socket_says_is_the_daemon_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.s");
    let err = call(&path, &Request::Status, T).unwrap_err();
    assert!(matches!(err, ClientError::NoSocket { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("is the daemon running?"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn stale_socket_says_connection_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.s");
    // Bound then closed: the file stays, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let err = call(&path, &Request::Shutdown, T).unwrap_err();
    assert!(matches!(err, ClientError::Refused { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("connection refused"), "{msg}");
    assert!(msg.contains("is the daemon running?"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn silent_daemon_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.s");
    // Listening, but never accepting or answering.
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let start = Instant::now();
    let err = call(&path, &Request::Reread, Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(err.to_string().contains("no reply"), "{err}");
}

#[test]
fn daemon_closing_without_reply_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rude.s");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
    });
    let err = call(&path, &Request::Status, T).unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, ClientError::NoReply { .. } | ClientError::Io { .. }), "{err:?}");
}

#[test]
fn malformed_reply_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.s");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let (conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).unwrap();
        (&conn).write_all(b"not json\n").unwrap();
        line
    });
    let err = call(&path, &Request::Status, T).unwrap_err();
    assert_eq!(server.join().unwrap(), "{\"op\":\"status\"}\n");
    assert!(matches!(err, ClientError::BadReply { .. }), "{err:?}");
    assert!(err.to_string().starts_with("malformed reply"), "{err}");
}
