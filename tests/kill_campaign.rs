//! Crash safety, proven by a SIGKILL campaign (issue 10): `kill -9` of
//! `clinit -d` at random moments (during level changes, spawns, respawns,
//! status writes and cltab re-reads), a restart on the same socket each
//! time, and after each kill:
//! * `clstat` and the state file are whole (every clstat line a complete
//!   status line ending in `\n`; the state file valid JSON) or absent;
//! * the restarted daemon answers on the same socket, and once it has
//!   stopped the previous generation no process the old daemon started is
//!   left (no orphan);
//! * told the levels again, exactly one instance of each entry that should
//!   run is running (no duplicate).
//!
//! Rounds alternate between cgroup containment (when root) and the
//! process-group fallback (`--no-cgroups`). `cargo test` runs a few rounds;
//! `CLINIT_KILL_ROUNDS=200 cargo test --release --test kill_campaign --
//! --nocapture` runs the full campaign and prints a summary line.
//! `CLINIT_KILL_SEED` picks the random stream (default: fixed).

mod common;

use clinit_backends::protocol::{encode_request, Request};
use clinit_engine::status::ClStat;
use common::{alive, wait_for, Daemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// Number of bulk respawn entries in group `b` at level 1 (a wider spawn
/// window for the kill to land in).
const BULK: usize = 12;

/// The sleep arguments that mark this test run's services: `sleep 8<c><pid><k>`
/// is unique to this test process, so counting and cleaning up by command
/// line touches nothing else on the machine.
struct Marks(String);
impl Marks {
    /// `campaign` (a digit) keeps two campaigns of one test process apart.
    fn new(campaign: u8) -> Self {
        Marks(format!("8{campaign}{}", std::process::id()))
    }
    fn arg(&self, k: u32) -> String {
        format!("{}{k}", self.0)
    }
    /// Live (non-zombie) processes per marker `k`.
    fn running(&self) -> BTreeMap<u32, Vec<i32>> {
        let mut out: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else { return out };
        for pid in dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()) {
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let Some(arg) = cmd.trim_end().strip_prefix("sleep ") else { continue };
            let Some(k) = arg.strip_prefix(&self.0).and_then(|k| k.parse().ok()) else { continue };
            if alive(pid) {
                out.entry(k).or_default().push(pid);
            }
        }
        out
    }
}

impl Drop for Marks {
    /// Whatever happened, end every process of this run (by pid).
    fn drop(&mut self) {
        for pids in self.running().values() {
            for &pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Group `a`: r1 at levels 1 and 2, r2 at 1, r3 at 2 (respawn), a `wait`
/// entry at both. Group `b`: s1 and BULK copies of marker 6 at 1
/// (respawn), s2 at 2 (once). `version` changes r1's line (a re-read then
/// restarts it with the new definition).
fn cltab(m: &Marks, version: u64) -> String {
    let mut t = format!(
        "a:r1:12:respawn:exec sleep {} # v{version}\n\
         a:r2:1:respawn:exec sleep {}\n\
         a:r3:2:respawn:exec sleep {}\n\
         a:w:12:wait:true\n\
         b:s1:1:respawn:exec sleep {}\n\
         b:s2:2:once:exec sleep {}\n",
        m.arg(1),
        m.arg(2),
        m.arg(3),
        m.arg(4),
        m.arg(5)
    );
    for i in 0..BULK {
        t.push_str(&format!("b:k{i}:1:respawn:exec sleep {}\n", m.arg(6)));
    }
    t
}

/// How many of each marker run with group a at `la` and b at `lb`.
fn expected(la: u8, lb: u8) -> BTreeMap<u32, Vec<i32>> {
    let mut want: BTreeMap<u32, usize> = BTreeMap::new();
    want.insert(1, 1);
    want.insert(if la == 1 { 2 } else { 3 }, 1);
    if lb == 1 {
        want.insert(4, 1);
        want.insert(6, BULK);
    } else {
        want.insert(5, 1);
    }
    want.into_iter().map(|(k, n)| (k, vec![0; n])).collect()
}

fn counts(m: &BTreeMap<u32, Vec<i32>>) -> BTreeMap<u32, usize> {
    m.iter().map(|(k, v)| (*k, v.len())).collect()
}

/// Send a request without waiting for the reply (the kill lands while the
/// daemon works on it).
fn send_only(d: &Daemon, req: &Request) -> Option<UnixStream> {
    let mut s = UnixStream::connect(&d.socket).ok()?;
    s.write_all(&encode_request(req)).ok()?;
    Some(s)
}

/// Files after a kill: whole or absent, never half-written.
fn check_files(d: &Daemon, round: u32) {
    if let Ok(text) = std::fs::read_to_string(&d.clstat) {
        let (_, bad) = ClStat::parse_strict(&text);
        assert!(
            bad.is_empty(),
            "round {round}: clstat lines {bad:?} are not status lines:\n{text}"
        );
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "round {round}: clstat cut short:\n{text}"
        );
    }
    if let Ok(bytes) = std::fs::read(d.path("clinit.state")) {
        let parsed = serde_json::from_slice::<serde_json::Value>(&bytes);
        assert!(
            parsed.is_ok(),
            "round {round}: state file is not whole JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

fn flags(cgroups: bool) -> Vec<&'static str> {
    let mut f = vec!["--term-after", "0.3", "--kill-after", "0.8"];
    if !cgroups {
        f.push("--no-cgroups");
    }
    f
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// One campaign of `rounds` kills; returns (kills, the longest wait until
/// the previous generation was gone).
fn campaign(rounds: u32, seed: u64) -> (u32, Duration) {
    let m = Marks::new(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut version = 0;
    let mut d = Daemon::prepare(&cltab(&m, version));
    let mut worst_cleanup = Duration::ZERO;
    let mut kills = 0;
    for round in 0..rounds {
        let cgroups = is_root() && round % 2 == 0;
        d.spawn(&flags(cgroups));
        d = d.wait_ready();
        // The previous generation is stopped before anything starts.
        let t0 = Instant::now();
        let left = wait_for(T, "the previous generation to be stopped", || {
            let left = m.running();
            if left.is_empty() || t0.elapsed() > Duration::from_secs(10) {
                Some(left)
            } else {
                None
            }
        });
        assert!(
            left.is_empty(),
            "round {round} (seed {seed}): orphans left running: {left:?}\nlog:\n{}",
            d.log_text()
        );
        worst_cleanup = worst_cleanup.max(t0.elapsed());
        // Told again, exactly one instance of each entry.
        let (la, lb) = (1 + rng.random_range(0..2) as u8, 1 + rng.random_range(0..2) as u8);
        assert!(d.tell("a", &la.to_string()).ok);
        assert!(d.tell("b", &lb.to_string()).ok);
        d.wait_state("a", &format!("{la} DONE"), T);
        d.wait_state("b", &format!("{lb} DONE"), T);
        let want = counts(&expected(la, lb));
        let now = wait_for(T, "exactly one instance of each entry", || {
            let now = counts(&m.running());
            (now == want).then_some(now)
        });
        assert_eq!(now, want, "round {round}");
        // Chaos, then the kill at a random moment inside it.
        let _pending = match rng.random_range(0..4) {
            0 => send_only(&d, &Request::Tell { group: "a".into(), level: (3 - la).to_string() }),
            1 => send_only(&d, &Request::Tell { group: "b".into(), level: (3 - lb).to_string() }),
            2 => {
                version += 1;
                d.write_cltab(&cltab(&m, version));
                send_only(&d, &Request::Reread)
            }
            _ => {
                // Kill a child: the kill lands during its respawn.
                let running = m.running();
                if let Some(pid) = running.values().flatten().next() {
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                }
                None
            }
        };
        std::thread::sleep(Duration::from_micros(rng.random_range(0..30_000)));
        kill(Pid::from_raw(d.daemon_pid()), Signal::SIGKILL).expect("SIGKILL the daemon");
        d.wait_exit(T);
        kills += 1;
        check_files(&d, round);
    }
    // The last restart, to prove the last kill left nothing either.
    d.spawn(&flags(is_root()));
    d = d.wait_ready();
    let left = wait_for(T, "the last generation to be stopped", || {
        let left = m.running();
        left.is_empty().then_some(left)
    });
    assert!(left.is_empty());
    drop(d);
    (kills, worst_cleanup)
}

#[test]
fn sigkill_at_random_moments_never_duplicates_orphans_or_tears_files() {
    let rounds = std::env::var("CLINIT_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let seed = std::env::var("CLINIT_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let t0 = Instant::now();
    let (kills, worst) = campaign(rounds, seed);
    assert_eq!(kills, rounds);
    println!(
        "KILL CAMPAIGN clinit: {kills} SIGKILLs (seed {seed}, cgroups {}), 0 duplicates, 0 orphans, \
         0 torn files; longest clean-up after restart {:.0} ms; {:.1} s",
        if is_root() { "every other round" } else { "never (not root)" },
        worst.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64()
    );
}

/// One `mosha` node (heartbeat-free: an openMosix view where node 1 is up)
/// on a temp tree, killed and restarted by [`mosha_campaign`].
struct Node {
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Node {
    fn ha(&self) -> std::path::PathBuf {
        self.dir.path().join("mfs/1/var/mosix-ha")
    }

    fn start(&mut self, seed: u64) {
        let log = std::fs::File::create(self.dir.path().join("mosha.log")).expect("log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_mosha"))
            .args(["--node", "1", "--timeout", "3", "--seed", &seed.to_string(), "--mfsbase"])
            .arg(self.dir.path().join("mfs"))
            .arg("--hpcbase")
            .arg(self.dir.path().join("hpc"))
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosha");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosha.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// Files of a mosha node after a kill: clstat, hastat and the state file
/// whole or absent.
fn check_mosha_files(n: &Node, round: u32) {
    let ha = n.ha();
    if let Ok(text) = std::fs::read_to_string(ha.join("clstat")) {
        let (_, bad) = ClStat::parse_strict(&text);
        assert!(
            bad.is_empty() && (text.is_empty() || text.ends_with('\n')),
            "round {round}: torn clstat:\n{text}"
        );
    }
    for name in ["hastat", "clinit.state"] {
        if let Ok(bytes) = std::fs::read(ha.join(name)) {
            let ok = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok();
            assert!(ok, "round {round}: torn {name}: {:?}", String::from_utf8_lossy(&bytes));
        }
    }
}

/// `rounds` kills of a one-node `mosha` whose hactl wants two groups
/// (respawn entries, markers 1 and 2): after each restart the node settles
/// with exactly one instance of each, and at no sample in between are
/// there two (the old generation is stopped before anything starts).
/// Returns (kills, samples taken, the longest time to settle).
fn mosha_campaign(rounds: u32, seed: u64) -> (u32, u64, Duration) {
    let m = Marks::new(2);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::Builder::new().prefix("mosha-kill.").tempdir().expect("tempdir");
    let mut n = Node { dir, child: None };
    std::fs::create_dir_all(n.ha()).expect("mkdir");
    std::fs::create_dir_all(n.dir.path().join("hpc/nodes/1")).expect("mkdir");
    std::fs::write(n.dir.path().join("hpc/nodes/1/status"), "3\n").expect("view");
    let cltab = format!(
        "g1:r1:start:respawn:exec sleep {}\ng2:r2:start:respawn:exec sleep {}\n",
        m.arg(1),
        m.arg(2)
    );
    std::fs::write(n.ha().join("cltab"), cltab).expect("cltab");
    std::fs::write(n.ha().join("hactl"), "g1 start\ng2 start\n").expect("hactl");
    let want: BTreeMap<u32, usize> = [(1, 1), (2, 1)].into();
    let (mut kills, mut samples, mut worst) = (0, 0u64, Duration::ZERO);
    // One more start than kills: the last restart proves the last kill
    // left nothing behind either, and is then stopped with SIGTERM.
    for round in 0..=rounds {
        // What the killed node left: the new node must stop it (never adopt
        // it), so "settled" means the right counts of new processes only.
        let old: Vec<i32> = m.running().values().flatten().copied().collect();
        n.start(seed.wrapping_add(u64::from(round)));
        let t0 = Instant::now();
        loop {
            let running = m.running();
            let now = counts(&running);
            let fresh = running.values().flatten().all(|p| !old.contains(p));
            samples += 1;
            let dup: Vec<_> =
                now.iter().filter(|(k, c)| **c > want.get(k).copied().unwrap_or(0)).collect();
            assert!(
                dup.is_empty(),
                "round {round} (seed {seed}): duplicates {dup:?}\nlog:\n{}",
                n.log()
            );
            if now == want && fresh {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "round {round}: not settled: {now:?}\nlog:\n{}",
                n.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        worst = worst.max(t0.elapsed());
        if round == rounds {
            break;
        }
        match rng.random_range(0..3) {
            0 => {
                if let Some(pid) = m.running().values().flatten().next() {
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                }
            }
            1 => {
                // The same hactl again (a new mtime): a re-read and a replication.
                let _ = clinit_backends::atomic::write_atomic(
                    &n.ha().join("hactl"),
                    b"g1 start\ng2 start\n",
                    None,
                );
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        n.kill9();
        kills += 1;
        check_mosha_files(&n, round);
    }
    drop(n);
    let left = wait_for(T, "the last node's services to stop", || {
        let left = m.running();
        left.is_empty().then_some(left)
    });
    assert!(left.is_empty());
    (kills, samples, worst)
}

#[test]
fn mosha_sigkill_at_random_moments_never_runs_a_second_copy() {
    let rounds = std::env::var("MOSHA_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let seed = std::env::var("CLINIT_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let t0 = Instant::now();
    let (kills, samples, worst) = mosha_campaign(rounds, seed);
    assert_eq!(kills, rounds);
    println!(
        "KILL CAMPAIGN mosha: {kills} SIGKILLs (seed {seed}), {samples} samples, 0 duplicates, \
         0 torn files; longest restart-to-settled {:.0} ms; {:.1} s",
        worst.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64()
    );
}
