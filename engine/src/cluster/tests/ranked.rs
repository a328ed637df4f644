//! The driver hosting `ranked`, by hand: the same in-memory executor as the
//! classic tests (files in a map, children that run until signalled or
//! SIGKILLed, a fence that kills its target's children and succeeds).

use super::*;
use crate::monitor::ranked::{LeaseState, RankedParams, Record};
use crate::monitor::transitions::Change;

/// A `ranked` cluster of `nodes` (all known members), `hactl` everywhere.
fn ranked_cluster(nodes: &[u32], hactl: &str, params: RankedParams) -> Cluster {
    ranked_cluster_traced(nodes, hactl, params, false)
}

/// [`ranked_cluster`], with every driver's trace tap on (`trace`).
fn ranked_cluster_traced(nodes: &[u32], hactl: &str, params: RankedParams, trace: bool) -> Cluster {
    let mut files = Files::default();
    let mut drivers = BTreeMap::new();
    for &n in nodes {
        files.put(n, SharedFile::Hactl, hactl, WallMs(T0 - 10_000));
        files.put(n, SharedFile::Cltab, CLTAB, WallMs(T0 - 10_000));
        let table = Cltab::parse(CLTAB, "cltab").expect("parses");
        let mut cfg = ClusterConfig::new(n, PolicyConfig::Ranked(params.clone()));
        cfg.known = nodes.to_vec();
        cfg.trace = trace;
        drivers.insert(n, ClusterDriver::with_durable(cfg, table, None, Millis::ZERO));
    }
    let mut c = Cluster {
        now: Millis::ZERO,
        files,
        drivers,
        execs: nodes.iter().map(|&n| (n, Exec::default())).collect(),
        up: nodes.to_vec(),
        faults: BTreeMap::new(),
        events: BTreeMap::new(),
        compact: false,
        unchanged_answers: 0,
        recycle: false,
        traces: BTreeMap::new(),
        heartbeat_files: false,
    };
    for &n in nodes {
        c.pump(n);
    }
    c
}

fn ranked_driver(
    n: u32,
    nodes: &[u32],
    params: &RankedParams,
    durable: Option<crate::monitor::ranked::Durable>,
    now: Millis,
) -> ClusterDriver {
    let table = Cltab::parse(CLTAB, "cltab").expect("parses");
    let mut cfg = ClusterConfig::new(n, PolicyConfig::Ranked(params.clone()));
    cfg.known = nodes.to_vec();
    ClusterDriver::with_durable(cfg, table, durable, now)
}

fn with_fence() -> RankedParams {
    RankedParams { fence_command: true, ..RankedParams::default() }
}

/// Step for `span`, asserting after every step that `web` never runs on
/// two nodes (by the executors' process tables: a child is running until
/// an exit is reported).
fn run_single_owner(c: &mut Cluster, span: Millis) {
    let limit = c.now + span;
    let mut guard = 0;
    while c.step(limit) {
        let running: Vec<u32> = c
            .execs
            .iter()
            .filter(|(n, e)| c.drivers.contains_key(n) && !e.running.is_empty())
            .map(|(n, _)| *n)
            .collect();
        assert!(running.len() <= 1, "web runs on {running:?} at {}", c.now);
        guard += 1;
        assert!(guard < 200_000, "runaway at {}", c.now);
    }
}

#[test]
fn ranked_config_reads_within_a_quarter_lease() {
    let cfg = ClusterConfig::new(1, PolicyConfig::Ranked(RankedParams::default()));
    assert_eq!(cfg.read_timeout, Millis(500), "H/4 with H = 2 s");
    assert_eq!(cfg.timeout(), Millis(6000), "3H");
    let classic = ClusterConfig::new(1, PolicyConfig::default());
    assert_eq!(classic.read_timeout, Millis(10_000), "classic keeps timeout/3 (60 s / 3, capped)");
}

/// `web` is placed on exactly one node under a quorum-granted claim; the
/// record every node publishes as its heartbeat parses, names the node and
/// says `holding`; the durable state was persisted and the watchdog armed
/// with a deadline ahead of now; every spawn carried a not-after time.
#[test]
fn ranked_places_once_and_publishes_records() {
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    let placed = c.run_until_pred(Millis::from_secs(60), |c| !c.owners("web").is_empty());
    assert!(placed, "web never started: {:?}", c.events);
    run_single_owner(&mut c, Millis::from_secs(20));
    let owners = c.owners("web");
    assert_eq!(owners.len(), 1, "owners {owners:?}");
    let owner = owners[0];
    for n in [1, 2, 3] {
        let text = c.files.text(n, SharedFile::Heartbeat).expect("a record was written");
        let record = Record::parse(&text).expect("the heartbeat is a ranked record");
        assert_eq!(record.node, n);
        assert_eq!(record.incarnation, 1);
        assert_eq!(record.lease, LeaseState::Holding, "node {n}: {text}");
        let exec = &c.execs[&n];
        assert_eq!(exec.durable.as_ref().map(|d| d.incarnation), Some(1));
        let (_, deadline) = exec.watchdog.expect("watchdog armed");
        assert!(deadline.is_some_and(|d| d > c.now), "node {n}: {deadline:?} at {}", c.now);
    }
    let owner_exec = &c.execs[&owner];
    assert!(!owner_exec.not_after.is_empty());
    assert!(owner_exec.not_after.iter().all(Option::is_some), "{:?}", owner_exec.not_after);
    assert!(c.events_of(owner).iter().any(|e| matches!(
        e,
        ClusterEvent::Ranked(crate::monitor::ranked::RankedNotice::ClaimHeld { .. })
    )));
}

/// The owner dies (gone from membership at once, `detect=0`): a survivor
/// fences it and starts `web` within a few seconds, never two at a time.
#[test]
fn ranked_fails_over_by_fence() {
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    c.run_until_pred(Millis::from_secs(60), |c| !c.owners("web").is_empty());
    run_single_owner(&mut c, Millis::from_secs(10));
    let owner = c.owners("web")[0];
    c.crash(owner);
    let died = c.now;
    let moved = c.run_until_pred(died + Millis::from_secs(30), |c| !c.owners("web").is_empty());
    assert!(moved, "web never moved: {:?}", c.events);
    let took = c.now.saturating_sub(died);
    assert!(took <= Millis::from_secs(5), "failover took {took}");
    let fencers: Vec<u32> =
        c.execs.iter().filter(|(_, e)| e.fenced.contains(&owner)).map(|(n, _)| *n).collect();
    assert!(!fencers.is_empty(), "the dead owner {owner} was never fenced");
    run_single_owner(&mut c, Millis::from_secs(20));
    assert_eq!(c.owners("web").len(), 1);
}

/// A restarted node is a new incarnation: the driver starts from what the
/// previous run persisted.
#[test]
fn ranked_restart_is_a_new_incarnation() {
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    c.run_until(Millis::from_secs(5));
    let durable = c.execs[&2].durable.clone().expect("persisted");
    assert_eq!(durable.incarnation, 1);
    let d = ranked_driver(2, &[1, 2, 3], &with_fence(), Some(durable), c.now);
    assert_eq!(d.ranked().map(|r| r.incarnation()), Some(2));
    c.drivers.insert(2, d);
    c.pump(2);
    c.run_until(c.now + Millis::from_secs(5));
    let text = c.files.text(2, SharedFile::Heartbeat).expect("record");
    assert_eq!(Record::parse(&text).expect("parses").incarnation, 2);
}

/// A torn record (half of it) is unknown, never absent: the owner keeps
/// `web` while one peer's file is torn.
#[test]
fn ranked_torn_record_is_unknown_not_absent() {
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    c.run_until_pred(Millis::from_secs(60), |c| !c.owners("web").is_empty());
    let owner = c.owners("web")[0];
    let text = c.files.text(owner, SharedFile::Heartbeat).expect("record");
    let torn = &text[..text.len() / 2];
    c.files.put(owner, SharedFile::Heartbeat, torn, WallMs(T0));
    let other = *[1, 2, 3].iter().find(|&&n| n != owner).expect("a peer");
    c.step(c.now + Millis::from_secs(1));
    let _ = other;
    run_single_owner(&mut c, Millis::from_secs(10));
    assert_eq!(c.owners("web"), vec![owner]);
}

/// Versioned replicas (issue 12): every node's hactl, as bytes.
fn hactls(c: &Cluster, nodes: &[u32]) -> Vec<String> {
    nodes.iter().map(|&n| c.files.text(n, SharedFile::Hactl).unwrap_or_default()).collect()
}

fn replica_notes(c: &Cluster, node: u32) -> Vec<String> {
    c.events_of(node)
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Replica { file, note } => Some(format!("{file}: {note}")),
            _ => None,
        })
        .collect()
}

/// Two different hactl copies with the same mtime (the original's rule
/// never converges on them: each node keeps its own on a tie): under
/// `ranked` both are hand-edited copies, each sealed by its node, and the
/// content-hash tie-break picks one for every node.
#[test]
fn ranked_replicas_with_equal_mtimes_converge_on_one_content() {
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    c.files.put(2, SharedFile::Hactl, "web start 3\n", WallMs(T0 - 10_000));
    c.run_until(Millis::from_secs(15));
    let files = hactls(&c, &[1, 2, 3]);
    assert!(files.iter().all(|f| *f == files[0]), "not converged: {files:?}");
    let seal = crate::monitor::replica_version::classify(files[0].as_bytes());
    assert!(seal.version().is_some(), "the common copy is sealed: {files:?}");
    let hactl = c.drivers[&1].hactl().expect("a hactl is in use");
    for n in [2, 3] {
        assert_eq!(c.drivers[&n].hactl(), Some(hactl), "node {n} uses another hactl");
    }
}

/// A copy whose mtime lies an hour in the future (a clock running ahead)
/// does not undo an operator's later edit: versions, not mtimes, decide.
#[test]
fn ranked_replicas_ignore_a_future_mtime() {
    use crate::monitor::replica_version::{body, classify, seal};
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    let v1: Arc<[u8]> = seal(b"web start\n", 1).into();
    for n in [1, 2] {
        c.files.put_bytes(n, SharedFile::Hactl, v1.clone(), WallMs(T0 - 10_000));
    }
    c.files.put_bytes(3, SharedFile::Hactl, v1, WallMs(T0 + 3_600_000));
    let placed = c.run_until_pred(Millis::from_secs(60), |c| !c.owners("web").is_empty());
    assert!(placed, "web never started");
    // The operator edits node 1's copy by hand (the original format).
    let at = c.now;
    c.files.put(1, SharedFile::Hactl, "web stop\n", wall(at));
    let stopped = c.run_until_pred(at + Millis::from_secs(30), |c| {
        hactls(c, &[1, 2, 3]).iter().all(|f| body(f.as_bytes()) == b"web stop\n")
            && c.owners("web").is_empty()
    });
    assert!(
        stopped,
        "the edit did not win: {:?} {:?}",
        hactls(&c, &[1, 2, 3]),
        replica_notes(&c, 1)
    );
    // It stays won: node 3's future mtime never brings `web start` back.
    c.run_until(c.now + Millis::from_secs(20));
    for f in hactls(&c, &[1, 2, 3]) {
        assert_eq!(body(f.as_bytes()), b"web stop\n");
        assert_eq!(classify(f.as_bytes()).version().map(|v| v.number), Some(2), "{f}");
    }
    assert!(c.owners("web").is_empty());
    assert!(
        replica_notes(&c, 1).iter().any(|n| n.contains("sealed as version 2")),
        "{:?}",
        replica_notes(&c, 1)
    );
}

/// A truncated sealed copy is never adopted, whatever its version; the
/// node that holds it gets the best complete copy back.
#[test]
fn ranked_replicas_never_adopt_a_truncated_copy() {
    use crate::monitor::replica_version::{body, classify, seal};
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    let good: Arc<[u8]> = seal(b"web start\n", 1).into();
    let high = seal(b"# maintenance\nweb stop\n", 9);
    // Cut at a line boundary: the cut text still parses.
    let cut: Arc<[u8]> = high[..high.len() - b"web stop\n".len()].into();
    for n in [1, 3] {
        c.files.put_bytes(n, SharedFile::Hactl, good.clone(), WallMs(T0 - 10_000));
    }
    c.files.put_bytes(2, SharedFile::Hactl, cut, WallMs(T0 + 60_000));
    let mut seen_owner = false;
    let limit = Millis::from_secs(30);
    while c.step(limit) {
        seen_owner |= !c.owners("web").is_empty();
        for n in [1, 3] {
            let f = c.files.text(n, SharedFile::Hactl).unwrap_or_default();
            assert_eq!(body(f.as_bytes()), b"web start\n", "node {n} adopted the cut copy");
        }
    }
    assert!(seen_owner, "web never ran");
    let f = c.files.text(2, SharedFile::Hactl).unwrap_or_default();
    assert_eq!(classify(f.as_bytes()).version().map(|v| v.number), Some(1), "{f}");
    // Whoever read node 2's cut copy before node 2 replaced it said so.
    let said: Vec<u32> = [1, 3]
        .into_iter()
        .filter(|&n| replica_notes(&c, n).iter().any(|t| t.contains("node 2's copy is truncated")))
        .collect();
    assert!(!said.is_empty(), "{:?} {:?}", replica_notes(&c, 1), replica_notes(&c, 3));
    assert!(replica_notes(&c, 2).iter().any(|t| t.contains("my copy is truncated")));
}

/// `#@standby N` in hactl (issue 12): the owner in standby stops its group
/// gracefully and another node takes it; the standby node takes nothing
/// new; off again, the group stays where it runs (no failback).
#[test]
fn ranked_standby_drains_a_node_and_keeps_new_groups_off_it() {
    use crate::monitor::replica_version::seal;
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    c.run_until_pred(Millis::from_secs(60), |c| c.owners("web").len() == 1);
    run_single_owner(&mut c, Millis::from_secs(5));
    let owner = c.owners("web")[0];
    let text = format!("#@standby {owner}\nweb start\n");
    let at = c.now;
    c.files.put_bytes(1, SharedFile::Hactl, seal(text.as_bytes(), 10).into(), wall(at));
    let moved = c.run_until_pred(
        at + Millis::from_secs(60),
        |c| matches!(c.owners("web")[..], [n] if n != owner),
    );
    assert!(moved, "web did not leave node {owner}: {:?}", c.owners("web"));
    let drained = c.events_of(owner).iter().any(|e| {
        matches!(e, ClusterEvent::Ranked(crate::monitor::ranked::RankedNotice::StandbyDrain { group }) if group == "web")
    });
    assert!(drained, "no drain notice on node {owner}");
    // It was stopped by a tell (graceful), never by a kill of the lease.
    run_single_owner(&mut c, Millis::from_secs(10));
    let new_owner = c.owners("web")[0];
    assert_ne!(new_owner, owner);
    // The new owner dies: web goes to the third node, never to the standby one.
    c.crash(new_owner);
    let third = [1, 2, 3].into_iter().find(|&n| n != owner && n != new_owner).expect("third");
    let limit = c.now + Millis::from_secs(60);
    let mut guard = 0;
    while c.step(limit) {
        assert!(!c.owners("web").contains(&owner), "web started on the standby node {owner}");
        if c.owners("web") == vec![third] {
            break;
        }
        guard += 1;
        assert!(guard < 200_000, "runaway");
    }
    assert_eq!(c.owners("web"), vec![third]);
    // Standby off: web stays on the third node (no failback).
    let at = c.now;
    c.files.put_bytes(third, SharedFile::Hactl, seal(b"web start\n", 11).into(), wall(at));
    run_single_owner(&mut c, Millis::from_secs(15));
    assert_eq!(c.owners("web"), vec![third]);
}

/// A hand edit with a typo is said (file:line) and never sealed; the node
/// keeps its last sealed copy.
#[test]
fn ranked_replicas_say_a_broken_hand_edit_and_keep_the_last_sealed_copy() {
    let mut c = ranked_cluster(&[1, 2, 3], "web start\n", with_fence());
    c.run_until_pred(Millis::from_secs(60), |c| c.owners("web").len() == 1);
    let before = c.drivers[&2].hactl().cloned().expect("a hactl in use");
    let at = c.now;
    c.files.put(2, SharedFile::Hactl, "web\n", wall(at));
    c.run_until(at + Millis::from_secs(10));
    let said = c.events_of(2).iter().any(|e| {
        matches!(e, ClusterEvent::OwnUnparsable { file: SharedFile::Hactl, kept_last_good: true, errors } if errors.contains(":1:"))
    });
    assert!(said, "{:?}", replica_notes(&c, 2));
    assert_eq!(c.files.text(2, SharedFile::Hactl).as_deref(), Some("web\n"), "never sealed");
    assert_eq!(c.drivers[&2].hactl(), Some(&before));
    assert_eq!(c.owners("web").len(), 1);
}

/// Under `ranked` with heartbeat-file membership only the machine writes
/// the heartbeat file (its record): the driver's classic `<pid> <seconds>`
/// beat would overwrite the record (peers then read another policy, or
/// nothing usable, from a live node; and a killed node's last write could
/// be the classic beat).
#[test]
fn under_ranked_with_heartbeat_membership_only_records_are_written_as_heartbeats() {
    let table = Cltab::parse(CLTAB, "cltab").expect("parses");
    let mut cfg = ClusterConfig::new(1, PolicyConfig::Ranked(RankedParams::default()));
    cfg.known = vec![1, 2, 3];
    cfg.membership = MembershipSource::HeartbeatFiles;
    let mut d = ClusterDriver::with_durable(cfg, table, None, Millis::ZERO);
    let (mut records, mut beats) = (0, 0);
    let mut now = Millis::ZERO;
    while now < Millis(10_000) {
        d.handle(now, ClusterInput::Tick);
        while let Some(c) = d.poll_command() {
            match c {
                ClusterCommand::WriteHeartbeat { payload: Some(_), seq, .. } => {
                    records += 1;
                    let ok = ClusterInput::StatusWritten {
                        seq,
                        file: SharedFile::Heartbeat,
                        result: Ok(()),
                    };
                    d.handle(now, ok);
                }
                ClusterCommand::WriteHeartbeat { payload: None, .. } => beats += 1,
                ClusterCommand::Persist { seq, .. } => {
                    d.handle(now, ClusterInput::Persisted { seq, result: Ok(()) });
                }
                _ => {}
            }
        }
        now = now + Millis(50);
    }
    assert!(records > 10, "the machine wrote its records ({records})");
    assert_eq!(beats, 0, "a classic beat was written under ranked");
}

/// Issue 8 (NU2): a recording that contains a lease loss replays to the
/// same decisions. Two parts of it: the executor refusing spawns because
/// it got to them after their not-after time (a stalled `mosha`), which
/// reaches the driver as an input (`SpawnResult` with
/// `SpawnFailure::TooLate`) recorded as the init machine's `Exited {
/// SpawnFailed }`; and the lease loss itself, whose `KillAllNow` stops
/// every local group in the init machine. That stop was not recorded (the
/// other stop-alls are, as `Record::StopAll`), so a replay kept the group
/// at `start` and respawned it where the recording stopped it.
#[test]
fn ranked_trace_with_spawns_refused_as_too_late_replays_identically() {
    use crate::init::Input;
    use crate::process::ExitStatus;
    use crate::trace::Record as Trace;
    let mut c = ranked_cluster_traced(&[1, 2, 3], "web start\n", with_fence(), true);
    for n in [1, 2, 3] {
        c.faults.insert(n, Faults { spawns_late: true, ..Faults::default() });
    }
    c.run_until(Millis::from_secs(40));
    let refused: usize = c.execs.values().map(|e| e.refused_late).sum();
    assert!(refused >= 1, "no spawn was refused as late: {:?}", c.events);
    assert!(c.execs.values().all(|e| e.running.is_empty()), "a refused spawn does not run");
    c.faults.clear();
    let placed = c.run_until_pred(c.now + Millis::from_secs(60), |c| {
        c.execs.values().any(|e| !e.running.is_empty())
    });
    assert!(placed, "web started once spawns were on time: {:?}", c.events);
    // Then the owner loses its lease: it cannot read the others' records
    // (hung reads) and its machine orders KillAllNow, which stops every
    // local group in its init machine.
    let owner = c.execs.iter().find(|(_, e)| !e.running.is_empty()).map(|(n, _)| *n);
    let owner = owner.expect("an owner");
    let others: BTreeSet<u32> = [1, 2, 3].into_iter().filter(|n| *n != owner).collect();
    c.faults.insert(owner, Faults { hang_reads_of: others, ..Faults::default() });
    c.run_until(c.now + Millis::from_secs(40));
    let lost = c.events_of(owner).iter().any(|e| {
        matches!(e, ClusterEvent::Ranked(crate::monitor::ranked::RankedNotice::LeaseLost { .. }))
    });
    assert!(lost, "node {owner} never lost its lease: {:?}", c.events_of(owner));
    c.faults.clear();
    c.run_until(c.now + Millis::from_secs(60));
    let (mut failed, mut stop_alls) = (0, 0);
    for (n, d) in c.drivers.iter_mut() {
        let mut trace = Vec::new();
        while let Some(item) = d.poll_trace() {
            trace.push(item);
        }
        failed += trace
            .iter()
            .filter(|(r, _)| {
                matches!(
                    r,
                    Trace::Init {
                        input: Input::Exited { status: ExitStatus::SpawnFailed, .. },
                        ..
                    }
                )
            })
            .count();
        assert!(trace.iter().any(|(r, _)| matches!(r, Trace::Ranked { .. })), "node {n}");
        stop_alls += trace.iter().filter(|(r, _)| matches!(r, Trace::StopAll { .. })).count();
        assert_replays(*n, &trace);
    }
    assert_eq!(failed, refused, "every refusal is a recorded input");
    assert!(stop_alls >= 1, "the lease loss's stop is recorded");
}

/// A `ranked` driver under heartbeat-file membership.
fn heartbeat_driver(
    n: u32,
    nodes: &[u32],
    durable: Option<crate::monitor::ranked::Durable>,
    now: Millis,
) -> ClusterDriver {
    let table = Cltab::parse(CLTAB, "cltab").expect("parses");
    let mut cfg = ClusterConfig::new(n, PolicyConfig::Ranked(RankedParams::default()));
    cfg.known = nodes.to_vec();
    cfg.membership = MembershipSource::HeartbeatFiles;
    ClusterDriver::with_durable(cfg, table, durable, now)
}

/// A `ranked` cluster of `nodes` under heartbeat-file membership, `web`
/// wanted; only the nodes of `running` start now (the others' directories
/// exist, without a heartbeat file yet).
fn heartbeat_cluster(nodes: &[u32], running: &[u32]) -> Cluster {
    let mut c = ranked_cluster(&[], "", RankedParams::default());
    c.heartbeat_files = true;
    for &n in nodes {
        c.files.put(n, SharedFile::Hactl, "web start\n", WallMs(T0 - 10_000));
        c.files.put(n, SharedFile::Cltab, CLTAB, WallMs(T0 - 10_000));
        c.execs.insert(n, Exec::default());
    }
    c.up = nodes.to_vec();
    for &n in running {
        c.drivers.insert(n, heartbeat_driver(n, nodes, None, Millis::ZERO));
        c.pump(n);
    }
    c
}

/// The membership changes of `about` that node `node` queued for its
/// transition history, from its `from`-th event on.
fn changes_of(c: &Cluster, node: u32, about: u32, from: usize) -> Vec<(Change, String)> {
    c.events_of(node)[from.min(c.events_of(node).len())..]
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Membership { changes, .. } => Some(changes),
            _ => None,
        })
        .flatten()
        .filter(|(n, _, _)| *n == about)
        .map(|(_, ch, why)| (*ch, why.clone()))
        .collect()
}

/// The revocations node `node` publishes in its record.
fn published_revocations(c: &Cluster, node: u32) -> BTreeMap<u32, crate::monitor::ranked::Seen> {
    let text = c.files.text(node, SharedFile::Heartbeat).expect("record");
    Record::parse(&text).expect("parses").revocations
}

/// Issue 9, a defect found on real nodes: a node killed and restarted
/// within 2 s stayed revoked, and the history recorded it `down` and never
/// `up`. Its new incarnation must be heard (an `up` on every peer) within
/// 3 heartbeats + a lease of its restart, no revocation may concern it,
/// and it must hold its lease again.
#[test]
fn a_node_restarted_within_two_seconds_is_heard_again_with_one_up() {
    let mut c = heartbeat_cluster(&[1, 2, 3], &[1, 2, 3]);
    c.run_until(Millis::from_secs(10));
    for n in [1, 2, 3] {
        let heard = c.drivers[&n].ranked().map(|r| r.heard());
        assert_eq!(heard, Some(vec![1, 2, 3]), "node {n}: {:?}", c.events_of(n));
    }
    let durable = c.execs[&3].durable.clone().expect("persisted");
    // The crash: mosha and its children are gone; its files stay.
    c.drivers.remove(&3);
    c.execs.get_mut(&3).expect("exec").running.clear();
    let marks: Vec<usize> = [1, 2].iter().map(|&n| c.events_of(n).len()).collect();
    c.run_until(c.now + Millis(2_000));
    for (i, n) in [1u32, 2].into_iter().enumerate() {
        let seen = changes_of(&c, n, 3, marks[i]);
        assert_eq!(seen.len(), 1, "node {n}: one down after 1.5 s of silence: {seen:?}");
        assert_eq!(seen[0].0, Change::Down, "node {n}: {seen:?}");
        assert!(seen[0].1.contains("missed heartbeats"), "node {n}: {seen:?}");
    }
    c.drivers.insert(3, heartbeat_driver(3, &[1, 2, 3], Some(durable), c.now));
    c.pump(3);
    let restarted = c.now;
    // The bound: 3 heartbeat periods + H = 2.75 s.
    let p = RankedParams::default();
    let bound = Millis(3 * p.heartbeat.0 + p.lease.0);
    c.run_until(restarted + bound);
    for (i, n) in [1u32, 2].into_iter().enumerate() {
        let seen = changes_of(&c, n, 3, marks[i]);
        let kinds: Vec<Change> = seen.iter().map(|s| s.0).collect();
        assert_eq!(kinds, vec![Change::Down, Change::Up], "node {n}: {seen:?}");
        assert!(seen[1].1.contains("incarnation 2"), "node {n}: {seen:?}");
        let revoked = published_revocations(&c, n);
        assert!(
            revoked.get(&3).is_none_or(|r| r.incarnation != 2),
            "node {n} revokes the new incarnation: {revoked:?}"
        );
    }
    let three = c.drivers[&3].ranked().expect("ranked");
    assert_eq!(three.incarnation(), 2);
    assert_eq!(three.lease_state(), LeaseState::Holding, "{:?}", c.events_of(3));
    // And it stays so: no down follows for that incarnation.
    c.run_until(c.now + Millis::from_secs(20));
    for (i, n) in [1u32, 2].into_iter().enumerate() {
        let kinds: Vec<Change> = changes_of(&c, n, 3, marks[i]).iter().map(|s| s.0).collect();
        assert_eq!(kinds, vec![Change::Down, Change::Up], "node {n}");
    }
}

/// NU1: a node killed and restarted within 1 s (its new incarnation heard
/// before the old one was judged silent) recorded no transition at all.
/// It is now `down` ("restarted") and `up` again on every peer, once.
#[test]
fn a_node_restarted_faster_than_suspicion_is_down_and_up_once() {
    let mut c = heartbeat_cluster(&[1, 2, 3], &[1, 2, 3]);
    c.run_until(Millis::from_secs(10));
    let durable = c.execs[&3].durable.clone().expect("persisted");
    c.drivers.remove(&3);
    c.execs.get_mut(&3).expect("exec").running.clear();
    let marks: Vec<usize> = [1, 2].iter().map(|&n| c.events_of(n).len()).collect();
    c.run_until(c.now + Millis(500));
    c.drivers.insert(3, heartbeat_driver(3, &[1, 2, 3], Some(durable), c.now));
    c.pump(3);
    c.run_until(c.now + Millis::from_secs(20));
    for (i, n) in [1u32, 2].into_iter().enumerate() {
        let seen = changes_of(&c, n, 3, marks[i]);
        let kinds: Vec<Change> = seen.iter().map(|s| s.0).collect();
        assert_eq!(kinds, vec![Change::Down, Change::Up], "node {n}: {seen:?}");
        assert!(seen[1].1.contains("incarnation 2"), "node {n}: {seen:?}");
    }
}

/// Issue 12, a defect found on real nodes: at a join, the joiner got an
/// `up` and 1-12 ms later a `down` (firing `--on-nodedown`), because the
/// heartbeat file's presence and the machine's verdict disagreed for a
/// moment, and the machine revoked the joiner's live incarnation. A node
/// that joins 3 s after the others is now `up` once on every node, with no
/// `down` for anyone, and nobody revokes it.
#[test]
fn a_late_joiner_gets_one_up_and_no_down_anywhere() {
    let mut c = heartbeat_cluster(&[1, 2, 3], &[1, 2]);
    c.run_until(Millis::from_secs(3));
    c.drivers.insert(3, heartbeat_driver(3, &[1, 2, 3], None, c.now));
    c.pump(3);
    c.run_until(Millis::from_secs(15));
    for n in [1, 2, 3] {
        for about in [1, 2, 3] {
            let seen = changes_of(&c, n, about, 0);
            assert!(
                seen.iter().all(|s| s.0 == Change::Up),
                "node {n} saw node {about} go down: {seen:?}"
            );
            assert!(seen.len() <= 1, "node {n}, node {about}: {seen:?}");
        }
        assert_eq!(changes_of(&c, n, 3, 0).len(), usize::from(n != 3), "node {n}");
        let revoked = published_revocations(&c, n);
        assert!(revoked.values().all(|r| r.incarnation == 0), "node {n}: {revoked:?}");
        let heard = c.drivers[&n].ranked().map(|r| r.heard());
        assert_eq!(heard, Some(vec![1, 2, 3]), "node {n}");
    }
    assert_eq!(c.owners("web").len(), 1);
}
