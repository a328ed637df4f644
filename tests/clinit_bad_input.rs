//! Bad input never panics and never stops the daemon: malformed cltabs at
//! start-up and at runtime, garbage on the socket, and client errors.

mod common;

use clinit_backends::protocol::Request;
use common::Daemon;
use std::io::{Read, Write};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn malformed_cltab_at_start_up_is_refused_with_every_error() {
    let mut d = Daemon::prepare("g:a:1:once:true\ng:a:1:wait:true\ng:b:1:bogus:true\ng:c\n");
    d.spawn(&[]);
    let status = d.wait_exit(T);
    assert!(!status.success(), "the daemon must refuse to start");
    let log = d.log_text();
    let path = d.cltab.display().to_string();
    assert!(
        log.contains(&format!("{path}:4: entry has duplicate tag: a (first defined on line 3)")),
        "{log}"
    );
    assert!(log.contains(&format!("{path}:5: unknown mode \"bogus\"")), "{log}");
    assert!(log.contains(&format!("{path}:6: too few fields")), "{log}");
    assert!(!d.socket.exists(), "nothing was started");
}

#[test]
fn malformed_cltab_at_runtime_keeps_the_last_good_table() {
    let d = Daemon::start("g:a:1:once:true\nh:b:1:once:true\n", &[]);
    d.tell("g", "1");
    d.wait_state("g", "1 DONE", T);
    d.write_cltab("g:a:1:once:true\ng:a:2:once:dup\n");
    let reply = d.tell("h", "1");
    assert!(!reply.ok);
    assert!(reply.msg.contains(":4: entry has duplicate tag: a"), "{}", reply.msg);
    // The client prints the error and exits 1.
    let out = d.client(&["h", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("duplicate tag"));
    // Fixed: the daemon, still running, works on the new table.
    d.write_cltab("g:a:1:once:true\nh:b:1:once:true\n");
    assert_eq!(d.tell("h", "1").msg, "level transition started");
    d.wait_state("h", "1 DONE", T);
}

#[test]
fn garbage_on_the_socket_gets_an_error_reply_and_the_daemon_keeps_serving() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    for garbage in
        [&b"hello\n"[..], b"{\"op\":\"explode\"}\n", b"\xff\xfe\n", b"{\"op\":\"tell\"}\n"]
    {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
        s.set_read_timeout(Some(T)).expect("timeout");
        s.write_all(garbage).expect("write");
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("reply");
        assert!(reply.contains("\"ok\":false"), "{reply}");
    }
    // A client that connects and says nothing, and one that hangs up.
    let silent = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    drop(std::os::unix::net::UnixStream::connect(&d.socket).expect("connect"));
    assert_eq!(d.tell("g", "1").msg, "level transition started");
    d.wait_state("g", "1 DONE", T);
    drop(silent);
}

#[test]
fn client_reports_unknown_groups_and_prints_status() {
    let d = Daemon::start("web:a:1:once:true\n", &[]);
    let out = d.client(&["web", "1"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "level transition started\n");
    d.wait_state("web", "1 DONE", T);
    let out = d.client(&["nosuch", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no such group: nosuch\n");
    let out = d.client(&["-v"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web 1 DONE\n");
    let out = d.client(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["groups"][0]["state"], "DONE");
    assert!(d.request(&Request::Status).expect("status").ok);
}

#[test]
fn client_without_a_daemon_says_so() {
    let d = Daemon::prepare("g:a:1:once:true\n");
    let out = d.client(&["g", "1"]);
    // 3: the daemon is not running (documented exit status, as systemctl).
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the daemon running"), "{err}");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let out = std::process::Command::new(common::CLINIT)
        .arg("-d")
        .arg("-c")
        .arg(&d.cltab)
        .output()
        .expect("second daemon");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));
    assert_eq!(d.tell("g", "1").msg, "level transition started");
}
