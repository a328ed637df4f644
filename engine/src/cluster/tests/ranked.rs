//! The driver hosting `ranked`, by hand: the same in-memory executor as the
//! classic tests (files in a map, children that run until signalled or
//! SIGKILLed, a fence that kills its target's children and succeeds).

use super::*;
use crate::monitor::ranked::{LeaseState, RankedParams, Record};

/// A `ranked` cluster of `nodes` (all known members), `hactl` everywhere.
fn ranked_cluster(nodes: &[u32], hactl: &str, params: RankedParams) -> Cluster {
    let mut files = Files::default();
    let mut drivers = BTreeMap::new();
    for &n in nodes {
        files.put(n, SharedFile::Hactl, hactl, WallMs(T0 - 10_000));
        files.put(n, SharedFile::Cltab, CLTAB, WallMs(T0 - 10_000));
        drivers.insert(n, ranked_driver(n, nodes, &params, None, Millis::ZERO));
    }
    let mut c = Cluster {
        now: Millis::ZERO,
        files,
        drivers,
        execs: nodes.iter().map(|&n| (n, Exec::default())).collect(),
        up: nodes.to_vec(),
        faults: BTreeMap::new(),
        events: BTreeMap::new(),
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
