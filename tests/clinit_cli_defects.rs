//! Defects a new user found in the `clinit` client (each test failed
//! before its fix).

mod common;

use common::Daemon;

/// `--timeout` only means something with `--wait`: alone it is a usage
/// error (exit 2) naming `--wait`, instead of being silently ignored.
#[test]
fn timeout_without_wait_is_a_usage_error() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let out = d.client(&["--timeout", "5", "g", "1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wait"), "{out:?}");
    assert_eq!(d.state_of("g"), "", "nothing was told");
    // With --wait it is accepted, as before.
    let out = d.client(&["--wait", "--timeout", "5", "g", "1"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Control characters from argv (an escape sequence that clears the
/// screen, a newline that fakes an output line) are printed escaped, both
/// in the client's own lines and in the daemon's reply it prints.
#[test]
fn the_client_escapes_control_characters_from_argv() {
    let d = Daemon::start("g:a:1:once:true\n", &[]);
    let group = "\u{1b}[2Jevil\nclinit: all good";
    let out = d.client(&["tell", group, "1"]);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for text in [&stdout, &stderr] {
        assert!(!text.contains('\u{1b}'), "raw ESC printed: {out:?}");
        assert!(!text.lines().any(|l| l == "clinit: all good"), "forged line: {out:?}");
    }
    assert!(stderr.contains("\\u{1b}[2Jevil\\nclinit: all good"), "{out:?}");
    assert!(stdout.contains("\\u{1b}[2J"), "the reply is escaped too: {out:?}");
    assert_eq!(out.status.code(), Some(1), "no such group: refused: {out:?}");
}
