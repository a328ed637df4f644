//! Issue 10 under `mosha`: a spawn that fails for lack of a resource
//! (`SpawnFailure::Starved`, which `mosha`'s executor reports for `EMFILE`,
//! `ENFILE`, `EAGAIN` and `ENOMEM` by errno) is retried soon and never
//! counted toward the crash-loop throttle, as under `clinit -d`; the same
//! failures as plain I/O errors hit the throttle.

use super::*;
use crate::init::Notice as InitNotice;
use crate::process::Shortage;

/// One node running `web`; its child dies, and the next `fails` spawns
/// fail (starved for `shortage`, or plainly). Returns the cluster after
/// 40 s and the time the child died.
fn respawn_after_failures(fails: usize, shortage: Option<Shortage>) -> (Cluster, Millis) {
    let mut c = Cluster::new(&[1], "web start\n");
    let placed = c.run_until_pred(Millis::from_secs(120), |c| c.owners("web") == [1]);
    assert!(placed, "web never started: {:?}", c.events);
    let exec = c.execs.get_mut(&1).expect("exec");
    let id = *exec.running.iter().next().expect("web runs");
    exec.running.remove(&id);
    exec.spawn_fails = fails;
    exec.spawn_shortage = shortage;
    exec.spawn_tries.clear();
    let died = c.now;
    c.feed(1, ClusterInput::ChildExited { id, status: ExitStatus::Signaled(9), lingering: false });
    c.pump(1);
    c.run_until(died + Millis::from_secs(40));
    (c, died)
}

fn throttled(c: &Cluster) -> bool {
    c.events_of(1)
        .iter()
        .any(|e| matches!(e, ClusterEvent::Init(InitNotice::RespawnThrottled { .. })))
}

#[test]
fn a_starved_spawn_under_mosha_is_retried_within_a_second_and_never_throttled() {
    let (c, died) = respawn_after_failures(12, Some(Shortage::Descriptors));
    let exec = &c.execs[&1];
    // 12 starved tries, then the one that starts it.
    assert_eq!(exec.spawn_tries.len(), 13, "{:?}", exec.spawn_tries);
    let gaps: Vec<u64> = exec.spawn_tries.windows(2).map(|w| (w[1] - w[0]).0).collect();
    assert!(gaps.iter().all(|&g| g <= 1_000), "retries at most 1 s apart: {gaps:?}");
    assert!(exec.running.len() == 1 && c.owners("web") == [1], "web runs again");
    assert!(!throttled(&c), "a shortage is not a crash: {:?}", c.events_of(1));
    let last = *exec.spawn_tries.last().expect("tries");
    assert!(last - died < Millis::from_secs(15), "restarted {} after the death", last - died);
    let report = c.drivers[&1].init().entries(c.now);
    assert_eq!(report[0].fast_respawns, 0, "{report:?}");
    let said = c.events_of(1).iter().filter(|e| {
        matches!(e, ClusterEvent::SpawnFailed { error: SpawnFailure::Starved { .. }, .. })
    });
    assert_eq!(said.count(), 12, "each starved try is reported");

    // The control: the same failures as plain spawn failures are crashes.
    let (c, _) = respawn_after_failures(12, None);
    assert!(throttled(&c), "plain spawn failures feed the throttle");
    assert!(c.execs[&1].spawn_tries.len() < 13, "{:?}", c.execs[&1].spawn_tries);
}
