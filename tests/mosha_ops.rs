//! The operator's `mosha` command line: the settings file (so `mosha
//! status` and `mosha check` need no repeated flags), `mosha check`, the
//! refusal of a base directory that does not exist unless `--init`, and a
//! status table that does not pass a dead node's last state off as current.

use clinit_engine::monitor::replica_version::{classify, seal, seal_by};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MOSHA: &str = env!("CARGO_BIN_EXE_mosha");

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A cluster tree on a temp dir: `mfs/<n>/var/mosix-ha/` and an openMosix
/// membership view `hpc/nodes/<n>/status`.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::Builder::new().prefix("mosha-ops.").tempdir().expect("tempdir");
        Tree { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn put(&self, node: u32, name: &str, text: &str) {
        let dir = self.path(&format!("mfs/{node}/var/mosix-ha"));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(name), text).expect("write");
    }

    fn member(&self, node: u32, up: bool) {
        let dir = self.path(&format!("hpc/nodes/{node}"));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("status"), if up { "3\n" } else { "1\n" }).expect("write");
    }

    /// A settings file naming this tree.
    fn config(&self, extra: &str) -> PathBuf {
        let path = self.path("mosha.toml");
        let text = format!(
            "# settings for the test\nnode = 1\nmfsbase = \"{}\"\nhpcbase = \"{}\"\ntimeout = 30\n{extra}",
            self.path("mfs").display(),
            self.path("hpc").display()
        );
        fs::write(&path, text).expect("write settings");
        path
    }

    fn mosha(&self, args: &[&str]) -> Output {
        Command::new(MOSHA).args(args).stdin(Stdio::null()).output().expect("run mosha")
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A node's hastat saying whether it holds quorum.
fn hastat(node: u32, quorum: bool) -> String {
    format!(
        "{{\"node\":{node},\"written\":0,\"groups\":{{}},\"members\":[{node}],\"stale\":[],\
         \"fenced\":[],\"quorum\":{quorum},\"halting\":false}}\n"
    )
}

/// `standby` is honoured only under `--policy ranked`: under the default
/// (classic) it is refused and nothing is written, and `status` does not
/// show a standby line that classic ignores.
#[test]
fn standby_is_refused_and_not_shown_under_classic() {
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "#@standby 2\nweb start\n");
    t.put(2, "hactl", "#@standby 2\nweb start\n");
    t.put(1, "clstat", "Cluster::Init::Group web start DONE\n");
    t.member(1, true);
    t.member(2, true);
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "standby", "1", "on"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("standby is honoured only under --policy ranked"), "{out:?}");
    let hactl = fs::read_to_string(t.path("mfs/1/var/mosix-ha/hactl")).expect("hactl");
    assert_eq!(hactl, "#@standby 2\nweb start\n", "nothing written");
    let out = t.mosha(&["--config", arg(&config), "status"]);
    assert!(stdout(&out).contains("web"), "the table was printed: {out:?}");
    assert!(!stdout(&out).contains("nodes in standby"), "{out:?}");
}

/// `--policy` is a global flag: given after the subcommand it is taken,
/// as `--node` and `--config` are (it used to be "unexpected argument",
/// exit 2, while only `mosha --policy ranked standby ...` worked).
#[test]
fn policy_may_follow_the_subcommand() {
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "web start\n");
    t.member(1, true);
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "standby", "7", "on", "--policy", "ranked"]);
    let err = stderr(&out);
    assert!(!err.contains("unexpected argument"), "{out:?}");
    assert!(!err.contains("honoured only under --policy ranked"), "{out:?}");
    assert!(err.contains('7'), "refused for the node, not the flag: {out:?}");
    assert_ne!(out.status.code(), Some(0), "{out:?}");
}

/// `mosha status` exits 0 only when quorum is held: 4 when the local
/// node's hastat says it is lost, when there is none, or when its clstat is
/// stale; 3 when membership cannot be read. It used to exit 0 in every case.
#[test]
fn status_exit_code_says_whether_quorum_is_held() {
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "web start\n");
    t.put(1, "clstat", "Cluster::Init::Group web start DONE\n");
    t.member(1, true);
    let config = t.config("");
    let status =
        |extra: &[&str]| t.mosha(&[&["--config", arg(&config), "status"][..], extra].concat());
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(4), "no hastat: quorum unknown: {out:?}");
    assert!(stderr(&out).contains("node 1: quorum unknown"), "{out:?}");
    t.put(1, "hastat", &hastat(1, false));
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(stderr(&out).contains("quorum LOST"), "{out:?}");
    assert!(stdout(&out).contains("LOST"), "the table says it too: {out:?}");
    t.put(1, "hastat", &hastat(1, true));
    let out = status(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A stale clstat: the node's monitor is not running, its word is old.
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let clstat = t.path("mfs/1/var/mosix-ha/clstat");
    fs::File::options().write(true).open(&clstat).and_then(|f| f.set_modified(old)).expect("mtime");
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(stderr(&out).contains("stale"), "{out:?}");
    // Membership that cannot be read.
    fs::remove_dir_all(t.path("hpc")).expect("rm hpc");
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr(&out).contains("membership unknown"), "{out:?}");
}

/// `mosha check` warns about a group given twice in hactl (still exit 0:
/// the last line wins, as in the original). It used to say nothing.
#[test]
fn check_warns_about_a_group_given_twice_in_hactl() {
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "web start\n# note\nweb stop\n");
    t.member(1, true);
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "check"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let hactl = t.path("mfs/1/var/mosix-ha/hactl");
    let want = format!(
        "{}:3: warning: group web is also given on line 1; this last line wins",
        hactl.display()
    );
    assert!(stdout(&out).contains(&want), "{out:?}");
    assert!(stdout(&out).ends_with("ok\n"), "{out:?}");
}

const CLTAB: &str = "web:chk:test:test:true\nweb:httpd:start:respawn:sleep 60\n";

#[test]
fn status_takes_its_settings_from_the_file_and_shows_a_dead_node_as_down() {
    let t = Tree::new();
    for node in [1, 2] {
        t.put(node, "cltab", CLTAB);
        t.put(node, "hactl", "web start\n");
    }
    t.put(1, "clstat", "Cluster::Init::Group web test PASSED\n");
    t.put(2, "clstat", "Cluster::Init::Group web start DONE\n");
    t.put(1, "hastat", &hastat(1, true));
    t.member(1, true);
    t.member(2, false);
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let table = stdout(&out);
    assert!(table.contains("(timeout 30s), wanted levels from node 1's hactl"), "{table}");
    let web = table.lines().find(|l| l.starts_with("web ")).expect("web line");
    assert!(web.contains("NOWHERE"), "a down node runs nothing: {table}");
    assert!(web.contains("down (was start DONE)"), "{table}");
    // The command line wins over the file.
    let out = t.mosha(&["--config", arg(&config), "status", "--timeout", "7"]);
    assert!(stdout(&out).contains("(timeout 7s)"), "{out:?}");
    // JSON from the same settings.
    let out = t.mosha(&["--config", arg(&config), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["timeout_secs"], 30.0);
    assert_eq!(v["nodes"][1]["member"], false);
}

#[test]
fn a_bad_settings_file_is_a_usage_error_naming_file_and_line() {
    let t = Tree::new();
    let config = t.config("timout = 3\n");
    let out = t.mosha(&["--config", arg(&config), "status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains(&format!("{}:6: unknown setting \"timout\"", config.display())));
    let config = t.config("stomith-grace = -5\n");
    let out = t.mosha(&["--config", arg(&config), "status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    // The bad value's line too (it used to say only "in FILE").
    let at = format!("{}:6: setting \"stomith-grace\": invalid value '-5'", config.display());
    assert!(err.contains(&at), "{err}");
    let config = t.config("# a comment\nstomith_grace = \"soon\"\n");
    let out = t.mosha(&["--config", arg(&config), "status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let at = format!("{}:7: setting \"stomith_grace\": invalid value 'soon'", config.display());
    assert!(stderr(&out).contains(&at), "{out:?}");
    let out = t.mosha(&["--config", arg(&t.path("missing.toml")), "status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("cannot read settings file"), "{out:?}");
}

#[test]
fn check_finds_a_level_typo_in_hactl() {
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "web start\n");
    t.member(1, true);
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "check"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).ends_with("ok\n"), "{out:?}");
    t.put(1, "hactl", "web sttart\n");
    let out = t.mosha(&["--config", arg(&config), "check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("hactl wants group 'web' at level 'sttart', which no entry"),
        "{out:?}"
    );
    // Explicit files, and a cltab that does not parse: file:line.
    let bad = t.path("bad-cltab");
    fs::write(&bad, "web:a:start:sometimes:true\n").expect("write");
    let out = t.mosha(&["--config", arg(&config), "check", "--cltab", arg(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains(&format!("{}:1: unknown mode", bad.display())), "{out:?}");
}

#[test]
fn a_missing_base_directory_is_refused_unless_init() {
    let t = Tree::new();
    t.member(1, true);
    let empty = t.path("empty.toml");
    fs::write(&empty, "").expect("write");
    let typo = t.path("mfz");
    let base = ["--config", arg(&empty), "--node", "1", "--timeout", "3"];
    let out = t
        .mosha(&[&base[..], &["--mfsbase", arg(&typo), "--hpcbase", arg(&t.path("hpc"))]].concat());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("--mfsbase") && stderr(&out).contains("--init"), "{out:?}");
    assert!(!typo.exists(), "no tree was created");
    fs::create_dir_all(t.path("mfs")).expect("mkdir");
    let out = t.mosha(
        &[&base[..], &["--mfsbase", arg(&t.path("mfs")), "--hpcbase", arg(&t.path("hpx"))]]
            .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("--hpcbase"), "{out:?}");

    // With --init the daemon starts on a new tree; SIGTERM ends it (exit 0).
    let new = t.path("new-mfs");
    let log = fs::File::create(t.path("log")).expect("log");
    let mut child = Command::new(MOSHA)
        .args(base)
        .args(["--init", "--membership", "heartbeat", "--mfsbase", arg(&new)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mosha --init");
    let clstat = new.join("1/var/mosix-ha/clstat");
    let start = Instant::now();
    while !clstat.exists() && start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "mosha --init exited: {status}: {}",
                fs::read_to_string(t.path("log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = clstat.exists();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        new.join("1/var/mosix-ha").is_dir(),
        "{}",
        fs::read_to_string(t.path("log")).unwrap_or_default()
    );
    assert!(started, "the node wrote its clstat in the new tree");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn the_example_settings_file_in_dist_is_valid() {
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "web start\n");
    t.put(1, "clstat", "Cluster::Init::Group web start DONE\n");
    t.put(1, "hastat", &hastat(1, true));
    t.member(1, true);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/systemd/mosha.toml.example");
    let (mfs, hpc) = (t.path("mfs"), t.path("hpc"));
    let out =
        t.mosha(&["--config", example, "--mfsbase", arg(&mfs), "--hpcbase", arg(&hpc), "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("(timeout 60s), wanted levels from node 1's hactl"), "{out:?}");
}

#[test]
fn hactl_set_edits_the_newest_copy_and_refuses_typos() {
    let t = Tree::new();
    let cltab = "web:chk:test:test:true\nweb:httpd:start:respawn:sleep 60\ndb:d:start:once:true\n";
    for node in [1, 2] {
        t.put(node, "cltab", cltab);
        t.member(node, true);
    }
    t.put(1, "hactl", "web stop\n");
    // Node 2's copy is newer: the edit must start from it, not from node 1's.
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    let h1 = t.path("mfs/1/var/mosix-ha/hactl");
    fs::File::options()
        .write(true)
        .open(&h1)
        .and_then(|f| f.set_modified(old))
        .expect("age node 1's hactl");
    t.put(2, "hactl", "# operator notes\nweb start 2\ndb stop\n");
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "hactl", "show"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "# operator notes\nweb start 2\ndb stop\n");
    assert!(stderr(&out).contains("mfs/2/var/mosix-ha/hactl"), "{out:?}");

    let out = t.mosha(&["--config", arg(&config), "hactl", "set", "db", "start"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("hactl: db stop -> start"), "{out:?}");
    let written = fs::read_to_string(&h1).expect("node 1's hactl");
    // Sealed as version 1 (the copies were unsealed): the seal line is a
    // comment to the original parser, and under `ranked` the version wins.
    let body = "# operator notes\nweb start 2\ndb start\n";
    assert_eq!(written, String::from_utf8(seal_by(body.as_bytes(), 1, 1)).expect("utf8"));
    let age = fs::metadata(&h1).and_then(|m| m.modified()).expect("mtime");
    assert!(age > old, "a fresh mtime, so replication picks this copy");

    // A typo is refused and nothing changes.
    let out = t.mosha(&["--config", arg(&config), "hactl", "set", "web", "sttart"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("refused: hactl wants group 'web' at level 'sttart'"), "{out:?}");
    assert_eq!(fs::read_to_string(&h1).expect("unchanged"), written);
    // Setting what is already wanted writes nothing.
    let out = t.mosha(&["--config", arg(&config), "hactl", "set", "db", "start"]);
    assert!(stdout(&out).contains("already wants db at start"), "{out:?}");
    // The next edit bumps the version, and `show` prints the body.
    let out = t.mosha(&["--config", arg(&config), "hactl", "set", "web", "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let written = fs::read(&h1).expect("node 1's hactl");
    assert_eq!(classify(&written).version().map(|v| v.number), Some(2));
    let out = t.mosha(&["--config", arg(&config), "hactl", "show"]);
    assert_eq!(stdout(&out), "# operator notes\nweb stop 2\ndb start\n");
}

/// Run `mosha hactl set GROUP LEVEL` under `--policy ranked` from node 1
/// and node 2 at once: both read the same copies, then meet at a barrier
/// (the `MOSHA_TEST_SET_BARRIER` test hook) so that their writes land in
/// the same instant with the same version. Each run is bounded (60 s).
fn concurrent_sets(t: &Tree, edits: [(&str, &str); 2]) -> Vec<Output> {
    let barrier = t.path("barrier");
    fs::create_dir_all(&barrier).expect("mkdir barrier");
    let children: Vec<_> = edits
        .iter()
        .zip([1u32, 2])
        .map(|((group, level), node)| {
            let config = t.path(&format!("node{node}.toml"));
            let text = format!(
                "node = {node}\nmfsbase = \"{}\"\nhpcbase = \"{}\"\npolicy = \"ranked\"\n",
                t.path("mfs").display(),
                t.path("hpc").display()
            );
            fs::write(&config, text).expect("write settings");
            Command::new(MOSHA)
                .args(["--config", arg(&config), "hactl", "set", group, level])
                .env("MOSHA_TEST_SET_BARRIER", &barrier)
                .env("MOSHA_TEST_SET_PARTIES", "2")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn mosha")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    children
        .into_iter()
        .map(|mut child| {
            while child.try_wait().expect("try_wait").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.wait_with_output().expect("output")
        })
        .collect()
}

/// Issue 12: two `hactl set`s of two different groups made in the same
/// instant on two nodes both survive under `ranked`. Before the version
/// check both wrote version 5, the content-hash tie-break kept one copy and
/// the other edit was lost while both commands reported success.
#[test]
fn concurrent_hactl_sets_of_two_groups_both_survive_under_ranked() {
    let t = Tree::new();
    let cltab = "web:httpd:start:respawn:sleep 60\ndb:d:start:once:true\n";
    let base = seal(b"web stop\ndb stop\n", 4);
    for node in [1, 2] {
        t.put(node, "cltab", cltab);
        t.put(node, "hactl", std::str::from_utf8(&base).expect("utf8"));
        t.member(node, true);
    }
    let outs = concurrent_sets(&t, [("web", "start"), ("db", "start")]);
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    // Both first wrote version 5 (the race really happened), and at least
    // one of them saw the other's copy and wrote again on top of it.
    for out in &outs {
        assert!(stderr(out).contains("(version 5, write 1 of 5)"), "{out:?}");
    }
    assert!(outs.iter().any(|o| stderr(o).contains("writing mine again on top of it")), "{outs:?}");
    // Every node's copy now converges on one that holds both edits.
    let config = t.config("policy = \"ranked\"\n");
    let out = t.mosha(&["--config", arg(&config), "hactl", "show"]);
    assert_eq!(stdout(&out), "web start\ndb start\n", "{out:?}");
    for out in &outs {
        assert!(
            stdout(out).contains("(version 6 ("),
            "each reports the version that holds it: {out:?}"
        );
    }
}

/// Two concurrent `hactl set`s of the *same* group to two levels: one wins
/// the tie-break and reports its version, the other fails with a clear
/// error naming the winner (never both "succeeded").
#[test]
fn concurrent_hactl_sets_of_one_group_report_the_conflict() {
    let t = Tree::new();
    let cltab = "web:httpd:start:respawn:sleep 60\nweb:w2:2:once:true\n";
    let base = seal(b"web stop\n", 4);
    for node in [1, 2] {
        t.put(node, "cltab", cltab);
        t.put(node, "hactl", std::str::from_utf8(&base).expect("utf8"));
        t.member(node, true);
    }
    let outs = concurrent_sets(&t, [("web", "start"), ("web", "2")]);
    let codes: Vec<_> = outs.iter().map(|o| o.status.code()).collect();
    assert!(codes.contains(&Some(0)) && codes.contains(&Some(1)), "{outs:?}");
    let (won, lost) = if codes[0] == Some(0) { (&outs[0], &outs[1]) } else { (&outs[1], &outs[0]) };
    assert!(stderr(lost).contains("another edit of web won over mine"), "{lost:?}");
    assert!(stdout(won).contains("(version 5 ("), "{won:?}");
    let winner = if codes[0] == Some(0) { "web start\n" } else { "web 2\n" };
    let config = t.config("policy = \"ranked\"\n");
    let out = t.mosha(&["--config", arg(&config), "hactl", "show"]);
    assert_eq!(stdout(&out), winner, "{out:?}");
}

/// NU1: `hactl set` on node 2 lost to an edit made on node 3, which node 1
/// already held a replica of; the refusal named node 1's copy. The writer
/// is named from the content's seal (`by=3`), whichever copy was read.
#[test]
fn a_refused_hactl_set_names_the_writer_of_the_winning_edit_not_a_replica() {
    let t = Tree::new();
    let cltab = "web:httpd:start:respawn:sleep 60\nweb:w2:2:once:true\n";
    let base = seal(b"web stop\n", 4);
    for node in [1, 2, 3] {
        t.put(node, "cltab", cltab);
        t.put(node, "hactl", std::str::from_utf8(&base).expect("utf8"));
        t.member(node, true);
    }
    let barrier = t.path("barrier");
    fs::create_dir_all(&barrier).expect("mkdir barrier");
    let config = t.path("node2.toml");
    let text = format!(
        "node = 2\nmfsbase = \"{}\"\nhpcbase = \"{}\"\npolicy = \"ranked\"\n",
        t.path("mfs").display(),
        t.path("hpc").display()
    );
    fs::write(&config, text).expect("write settings");
    let mut child = Command::new(MOSHA)
        .args(["--config", arg(&config), "hactl", "set", "web", "start"])
        .env("MOSHA_TEST_SET_BARRIER", &barrier)
        .env("MOSHA_TEST_SET_PARTIES", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mosha");
    // Node 2 has read version 4 and waits at the barrier: node 3's edit
    // (version 6, on top of a version 5 node 2 never saw) lands on node 3
    // and is already replicated to node 1, then node 2 writes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !barrier.join("node2").exists() {
        assert!(Instant::now() < deadline, "node 2 never reached the barrier");
        std::thread::sleep(Duration::from_millis(10));
    }
    let theirs = seal_by(b"web 2\n", 6, 3);
    for node in [3, 1] {
        t.put(node, "hactl", std::str::from_utf8(&theirs).expect("utf8"));
    }
    fs::write(barrier.join("node3"), b"").expect("join the barrier");
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = stderr(&out);
    assert!(said.contains("another edit of web won over mine"), "{said}");
    assert!(said.contains("node 3's edit (read in node 1's copy)"), "{said}");
    assert!(said.contains("wants web at 2"), "{said}");
}

#[test]
fn status_watch_redraws_until_interrupted() {
    use std::io::{BufRead, BufReader};
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "web start\n");
    t.put(1, "clstat", "Cluster::Init::Group web start DONE\n");
    t.member(1, true);
    let config = t.config("");
    let mut child = Command::new(MOSHA)
        .args(["--config", arg(&config), "status", "--watch", "0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosha status --watch");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let wanted = line.starts_with("cluster ") || line.starts_with("web ");
            if wanted && tx.send(line).is_err() {
                break;
            }
        }
    });
    // Each table reads the files again: a changed clstat shows up.
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("first table");
    assert!(first.contains("wanted levels from node 1's hactl"), "{first}");
    let web = rx.recv_timeout(Duration::from_secs(20)).expect("web line");
    assert!(web.contains("start DONE"), "{web}");
    t.put(1, "clstat", "Cluster::Init::Group web stop DONE\n");
    let start = Instant::now();
    let mut tables = 1;
    loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("redrawn");
        tables += usize::from(line.starts_with("cluster "));
        if line.starts_with("web ") && line.contains("stop DONE") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the change never showed");
    }
    assert!(tables >= 2, "a later table showed the change");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("interrupt");
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.wait();
    let _ = reader.join();
}

/// `mosha check --hactl F --cltab G` checks those two files without a
/// cluster: no `--mfsbase` (default `/mfs`) or membership view needs to
/// exist. With one file left to its default, the base still matters.
#[test]
fn check_of_given_files_needs_no_shared_directory() {
    let t = Tree::new();
    let empty = t.path("empty.toml");
    fs::write(&empty, "").expect("write");
    let (cltab, hactl) = (t.path("my-cltab"), t.path("my-hactl"));
    fs::write(&cltab, CLTAB).expect("write");
    fs::write(&hactl, "web start\n").expect("write");
    let missing = t.path("no-such-mfs");
    let base = ["--config", arg(&empty), "--mfsbase", arg(&missing), "--hpcbase", arg(&missing)];
    let out =
        t.mosha(&[&base[..], &["check", "--cltab", arg(&cltab), "--hactl", arg(&hactl)]].concat());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).ends_with("ok\n"), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("--mfsbase"), "{out:?}");
    // Only --cltab given: the hactl comes from the base, which is missing.
    let out = t.mosha(&[&base[..], &["--node", "1", "check", "--cltab", arg(&cltab)]].concat());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains("--mfsbase"), "{out:?}");
}

/// `mosha check` refuses a copy whose `#@mosha` seal line the daemons judge
/// damaged or cut (they never adopt it): it used to say `ok` for a seal
/// with a non-hex checksum (new-user test NU9 #8). A hand edit (no seal
/// line) and a complete sealed copy pass.
#[test]
fn check_refuses_a_copy_with_a_damaged_seal_line() {
    let t = Tree::new();
    let empty = t.path("empty.toml");
    fs::write(&empty, "").expect("write");
    let (cltab, hactl) = (t.path("my-cltab"), t.path("my-hactl"));
    fs::write(&cltab, CLTAB).expect("write");
    let base = ["--config", arg(&empty)];
    let check = |text: &[u8]| {
        fs::write(&hactl, text).expect("write");
        t.mosha(&[&base[..], &["check", "--cltab", arg(&cltab), "--hactl", arg(&hactl)]].concat())
    };
    let out = check(b"#@mosha version=99 bytes=10 fnv1a64=zz\nweb start\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains(":1: the copy is truncated or damaged"), "{out:?}");
    let good = seal(b"web start\n", 3);
    for ok in [&b"web start\n"[..], &good[..]] {
        let out = check(ok);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    let cut = &good[..good.len() - 3];
    assert_eq!(check(cut).status.code(), Some(1), "a cut sealed copy");
}

/// `hactl set` is a client: a missing `--mfsbase` is a typo it reports
/// without the daemon's `--init` advice, `--hpcbase` is not needed when
/// `--node` is given, and a `--node` naming no node directory is refused
/// before anything is written (it advised `--init`, which then failed with
/// "No such file or directory"; new-user test NU9 #12).
#[test]
fn hactl_set_names_a_node_without_a_directory_and_gives_no_init_advice() {
    let t = Tree::new();
    t.put(1, "cltab", CLTAB);
    t.put(1, "hactl", "web start\n");
    t.put(2, "hactl", "web start\n");
    let mfs = t.path("mfs");
    let no_hpc = t.path("no-hpc");
    let set = |node: &str, base: &Path| {
        t.mosha(&[
            "--mfsbase",
            arg(base),
            "--hpcbase",
            arg(&no_hpc),
            "--node",
            node,
            "--policy",
            "ranked",
            "hactl",
            "set",
            "web",
            "stop",
        ])
    };
    let out = set("9", &mfs);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("node 9 has no directory") && err.contains("nodes there: 1, 2"), "{err}");
    assert!(!err.contains("--init"), "{err}");
    assert!(!t.path("mfs/9").exists(), "nothing written for node 9");

    let out = set("1", &t.path("mfz"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("--mfsbase") && !err.contains("--init"), "{err}");

    let out = set("1", &mfs);
    assert_eq!(out.status.code(), Some(0), "--hpcbase is not needed with --node: {out:?}");
    let hactl = fs::read_to_string(t.path("mfs/1/var/mosix-ha/hactl")).expect("read");
    assert!(hactl.contains("web stop"), "{hactl}");
}

/// `mosha status` refuses, as `hactl set` and `standby` do, a base
/// directory that does not exist and a `--node` with no directory under
/// it: exit 1, a message naming what is wrong, no table. It used to print
/// an empty table (a typo in `--mfsbase`) or judge a node that does not
/// exist, and exit as if it had only found trouble in the cluster. With
/// `--watch` it is refused at once, not every tick.
#[test]
fn status_refuses_a_missing_base_directory_and_a_node_that_is_not_a_member() {
    let t = Tree::new();
    for node in [1, 2] {
        t.put(node, "cltab", CLTAB);
        t.put(node, "hactl", "web start\n");
        t.member(node, true);
    }
    let (mfs, hpc) = (t.path("mfs"), t.path("hpc"));
    let status = |base: &Path, node: &str, extra: &[&str]| {
        let args = ["--mfsbase", arg(base), "--hpcbase", arg(&hpc), "--node", node, "status"];
        t.mosha(&[&args[..], extra].concat())
    };
    for extra in [&[][..], &["--json"]] {
        let out = status(&t.path("mfz"), "1", extra);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains(&format!("--mfsbase {} does not exist", t.path("mfz").display())));
        assert!(!err.contains("--init"), "no --init advice for a client: {err}");
        assert_eq!(stdout(&out), "", "no table: {out:?}");

        let out = status(&mfs, "9", extra);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains("no such node 9") && err.contains("nodes there: 1, 2"), "{err}");
        assert_eq!(stdout(&out), "", "no table: {out:?}");
        assert!(!t.path("mfs/9").exists(), "nothing created for node 9");
    }
    // The same refusal under --watch, at once (bounded: a loop is killed).
    let mut child = Command::new(MOSHA)
        .args(["--mfsbase", arg(&mfs), "--hpcbase", arg(&hpc), "--node", "9"])
        .args(["status", "--watch", "0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run mosha");
    let until = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("status --watch with a bad --node did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1));
    // A member is shown as before (no clstat yet: quorum unknown, 4).
    let out = status(&mfs, "2", &[]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(stdout(&out).contains("web    start"), "{out:?}");
}

/// Under `classic` too, `status` shows the hactl the cluster converges on
/// (the newest copy that parses, the original's rule), not the local one,
/// and says plainly when the local copy does not parse. It used to show
/// the local copy's parse error and every group as `(absent)`.
#[test]
fn classic_status_shows_the_newest_hactl_and_says_the_local_copy_is_broken() {
    let t = Tree::new();
    for node in [1, 2] {
        t.put(node, "cltab", CLTAB);
        t.member(node, true);
    }
    t.put(1, "hactl", "web start\nweb\n");
    t.put(2, "hactl", "web start\n");
    t.put(1, "clstat", "Cluster::Init::Group web start DONE\n");
    t.put(1, "hastat", &hastat(1, true));
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["hactl_from"], 2, "{v}");
    assert_eq!(v["hactl_node"], 2, "{v}");
    assert_eq!(v["hactl_version"], serde_json::Value::Null, "classic has no versions: {v}");
    assert_eq!(v["hactl_error"], serde_json::Value::Null, "{v}");
    assert_eq!(v["hactl_local"]["node"], 1, "{v}");
    assert_eq!(v["hactl_local"]["state"], "unparsable", "{v}");
    let reason = v["hactl_local"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("mfs/1/var/mosix-ha/hactl:2"), "{v}");
    assert_eq!(v["groups"][0]["wanted"], "start", "{v}");
    let out = t.mosha(&["--config", arg(&config), "status"]);
    let text = stdout(&out);
    assert!(text.contains("wanted levels from node 2's hactl\n"), "{text}");
    assert!(text.contains("local hactl (node 1) is BROKEN: unparsable ("), "{text}");
    assert!(text.contains("the wanted levels shown are node 2's copy"), "{text}");
}

/// A new user's finding: with the local cltab broken, `mosha status` gave
/// no hint (the monitor logs that it keeps its last good table). It names
/// the file and line, in the text and in `--json` (`cltab_local_error`); a
/// peer's broken copy is not the local node's concern.
#[test]
fn status_says_when_the_local_cltab_does_not_parse() {
    let t = Tree::new();
    for node in [1, 2] {
        t.put(node, "hactl", "web start\n");
        t.member(node, true);
    }
    t.put(1, "cltab", &format!("{CLTAB}web:broken\n"));
    t.put(2, "cltab", CLTAB);
    let config = t.config("");
    let text = stdout(&t.mosha(&["--config", arg(&config), "status"]));
    assert!(text.contains("local cltab (node 1) does NOT PARSE; its monitor keeps"), "{text}");
    let line = CLTAB.lines().count() + 1;
    assert!(text.contains(&format!("mfs/1/var/mosix-ha/cltab:{line}")), "{text}");
    // `--json` says the same: node, file and each error's line.
    let out = t.mosha(&["--config", arg(&config), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let e = &v["cltab_local_error"];
    assert_eq!(e["node"], 1, "{v}");
    assert!(e["file"].as_str().is_some_and(|f| f.ends_with("mfs/1/var/mosix-ha/cltab")), "{v}");
    assert_eq!(e["errors"][0]["line"], line, "{v}");
    assert!(e["errors"][0]["error"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    t.put(1, "cltab", CLTAB);
    t.put(2, "cltab", "web:broken\n");
    let text = stdout(&t.mosha(&["--config", arg(&config), "status"]));
    assert!(!text.contains("NOT PARSE"), "{text}");
    let out = t.mosha(&["--config", arg(&config), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["cltab_local_error"], serde_json::Value::Null, "a peer's copy is not local: {v}");
}

/// Age `node`'s hactl by `secs` (its mtime set in the past).
fn age_hactl(t: &Tree, node: u32, secs: u64) {
    let old = std::time::SystemTime::now() - Duration::from_secs(secs);
    fs::File::options()
        .write(true)
        .open(t.path(&format!("mfs/{node}/var/mosix-ha/hactl")))
        .and_then(|f| f.set_modified(old))
        .expect("age the hactl");
}

/// `mosha hactl show` and `set` pick their base copy by `mosha status`'s
/// rule, under `classic` the newest mtime that parses: node 1 holds an
/// older copy sealed by an earlier `hactl set`, node 2 a newer hand edit
/// (no seal line), which is what `classic` replicates and `status` shows.
/// `show` used to print node 1's copy (a sealed copy beat any unsealed
/// one, whatever the mtimes), and `set` edited on top of it, so the
/// replicated edit silently undid node 2's hand edit.
#[test]
fn classic_hactl_show_and_set_take_the_copy_status_shows() {
    let t = Tree::new();
    for node in [1, 2] {
        t.put(node, "cltab", CLTAB);
        t.member(node, true);
    }
    let sealed = seal(b"web start\n", 3);
    t.put(1, "hactl", std::str::from_utf8(&sealed).expect("utf-8"));
    age_hactl(&t, 1, 600);
    t.put(2, "hactl", "# hand edit on node 2\nweb stop\n");
    let config = t.config("");
    let out = t.mosha(&["--config", arg(&config), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["hactl_from"], 2, "{v}");
    let out = t.mosha(&["--config", arg(&config), "hactl", "show"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "# hand edit on node 2\nweb stop\n", "{out:?}");
    assert!(stderr(&out).contains("mfs/2/var/mosix-ha/hactl (the copy the cluster converges on)"));
    assert!(stderr(&out).contains("local hactl (node 1) is behind"), "{out:?}");
    let out = t.mosha(&["--config", arg(&config), "hactl", "set", "web", "start"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("hactl: web stop -> start"), "{out:?}");
    let written = fs::read(t.path("mfs/1/var/mosix-ha/hactl")).expect("node 1's hactl");
    assert_eq!(written, seal_by(b"# hand edit on node 2\nweb start\n", 4, 1), "on top of node 2's");
}

/// The same under `ranked` (the highest sealed version that parses among
/// the members' copies): node 1's own copy is torn (its seal line says
/// version 20 and more bytes than follow), node 2 holds version 5, and
/// node 3, which membership lists down, version 9. `status` shows node 2's
/// version 5: the monitors do not read a node that is down, and never
/// adopt a torn copy. `show` used to print node 3's copy; now it prints
/// node 2's, says that the local copy is broken, and `set` edits on top of
/// it, sealed one version above every copy (10), so the edit also wins
/// over node 3's when it comes back.
#[test]
fn ranked_hactl_show_and_set_take_the_copy_status_shows_past_a_torn_local_copy() {
    let t = Tree::new();
    for node in [1, 2, 3] {
        t.put(node, "cltab", CLTAB);
        t.member(node, node != 3);
    }
    let torn = seal(b"web stop\n# a long comment\n", 20);
    t.put(1, "hactl", std::str::from_utf8(&torn[..torn.len() - 10]).expect("utf-8"));
    t.put(2, "hactl", std::str::from_utf8(&seal(b"# in force\nweb stop\n", 5)).expect("utf-8"));
    t.put(3, "hactl", std::str::from_utf8(&seal(b"web start\n", 9)).expect("utf-8"));
    let config = t.config("policy = \"ranked\"\n");
    let out = t.mosha(&["--config", arg(&config), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((v["hactl_from"].clone(), v["hactl_version"].clone()), (2.into(), 5.into()), "{v}");
    let out = t.mosha(&["--config", arg(&config), "hactl", "show"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "# in force\nweb stop\n", "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("mfs/2/var/mosix-ha/hactl (the copy the cluster converges on, version 5)"));
    assert!(err.contains("local hactl (node 1) is BROKEN: truncated ("), "{err}");
    let out = t.mosha(&["--config", arg(&config), "hactl", "set", "web", "start"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("hactl: web stop -> start (version 10"), "{out:?}");
    let written = fs::read(t.path("mfs/1/var/mosix-ha/hactl")).expect("node 1's hactl");
    assert_eq!(written, seal_by(b"# in force\nweb start\n", 10, 1), "on top of node 2's");
}
