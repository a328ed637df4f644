//! `mosha status`: one table of the whole cluster, read straight from the
//! shared files (like `crm_mon` run once). No daemon is asked: it works
//! from any node, also when the local `mosha` is down.
//!
//! For each node: whether membership lists it, the age of its clstat (stale
//! when older than the timeout), whether it could be read, and what its own
//! last hastat said (quorum, whom it fenced). For each group: the level the
//! local hactl wants, the nodes where it runs, and its state on every node.
//!
//! Since when: a node's line gives the age of its last membership
//! transition in the cluster's transition history (the numbered up/down
//! record `mosha` keeps in every node's directory); a node the history never
//! mentions gets none. The "last fences" are what the nodes' hastats list
//! as fenced, each with the age of the hastat that lists it: a hastat
//! records *that* a node was fenced, not *when*, so the age is an upper
//! bound ("fenced at least this long ago"), never shown as the fence time.

use crate::group_moves::GroupChange;
use crate::membership::Membership;
use crate::shared::{read_clstat, HastatDoc, NodePaths, SharedFile, SharedStore};
use clinit_engine::hactl::Hactl;
use clinit_engine::hastat::counts_as_running;
use clinit_engine::located::escape_controls;
use clinit_engine::monitor::ranked::NotLive;
use clinit_engine::monitor::replica_version::{self, classify, converged, Facts, Seal, Version};
use clinit_engine::monitor::replicate::parse_copy;
use clinit_engine::monitor::transitions::History;
use clinit_engine::monitor::NodeStatus;
use clinit_engine::status::GroupState;
use clinit_engine::time::Millis;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

/// One node's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReport {
    pub node: u32,
    /// Listed by membership; `None` when membership could not be read.
    pub member: Option<bool>,
    /// `ok`, `missing` or `unreadable`.
    pub clstat: &'static str,
    /// Age of the clstat, seconds.
    pub age_secs: Option<f64>,
    /// clstat older than the timeout.
    pub stale: bool,
    /// Why the clstat could not be read.
    pub reason: Option<String>,
    /// The node's own last hastat said it had quorum; under `ranked`
    /// (no hastat) its own record's lease is `holding`.
    pub quorum: Option<bool>,
    /// Nodes whose last hastat says they fenced this one.
    pub fenced_by: Vec<u32>,
    /// The change (`up` / `down`) of this node's last membership
    /// transition in the history; `None`: the history never mentions it
    /// (or there is no history).
    pub since_change: Option<String>,
    /// Age of that transition, seconds, by the reader's clock against the
    /// recorder's wall clock (operators only: clocks may differ a little).
    pub since_secs: Option<f64>,
    /// `ranked`: alive by its own record, judged as `mosha standby` does
    /// ([`clinit_engine::monitor::ranked::Record::live_nodes`]: its record
    /// moved over [`LIVE_SAMPLE`], its lease holds, and no peer lists its
    /// incarnation as fenced). A node not live runs nothing that counts,
    /// whatever its clstat still says. `None`: not sampled (`classic`).
    pub live: Option<bool>,
    /// `ranked`, a node not live: why, in words ([`NotLive`]: its record
    /// did not move, its lease lapsed, a peer fenced it, no record).
    pub not_live: Option<String>,
    /// `ranked`: whether its record says its watchdog runs (`None`: no
    /// record read, or `classic`). A node without one cannot stop its
    /// services if its monitor freezes, so peers take nothing over from it
    /// without a fence: an operator wants to see that before a failure.
    pub watchdog: Option<bool>,
}

/// How long `mosha status` and `mosha standby` wait between their two
/// reads of every `ranked` record: 1.5 s, `suspect_after`, six heartbeat
/// periods at the default period: a live node's counter moves within it.
pub const LIVE_SAMPLE: std::time::Duration = std::time::Duration::from_millis(1_500);

/// Every `ranked` record among `nodes` that can be read and parsed.
pub fn read_ranked_records(
    store: &dyn SharedStore,
    nodes: &[u32],
) -> BTreeMap<u32, clinit_engine::monitor::ranked::Record> {
    nodes
        .iter()
        .filter_map(|&n| {
            let snap = store.read(n, SharedFile::Heartbeat).ok().flatten()?;
            let text = std::str::from_utf8(&snap.bytes).ok()?;
            Some((n, clinit_engine::monitor::ranked::Record::parse(text).ok()?))
        })
        .collect()
}

/// The live nodes among `nodes` under `ranked`: every record read twice,
/// [`LIVE_SAMPLE`] apart, and judged by the engine's rule
/// ([`clinit_engine::monitor::ranked::Record::live_nodes`]). A record that
/// cannot be read or parsed counts as not live. Blocks for `LIVE_SAMPLE`.
pub fn sample_ranked_live(store: &dyn SharedStore, nodes: &[u32]) -> BTreeSet<u32> {
    let earlier = read_ranked_records(store, nodes);
    std::thread::sleep(LIVE_SAMPLE);
    let later = read_ranked_records(store, nodes);
    clinit_engine::monitor::ranked::Record::live_nodes(&earlier, &later)
}

/// Of `nodes`, why each one that is not live is not, sampled as
/// [`sample_ranked_live`] samples (the same engine rule,
/// [`clinit_engine::monitor::ranked::Record::not_live`]): a node absent is
/// live. Blocks for `LIVE_SAMPLE`.
pub fn sample_ranked_faults(store: &dyn SharedStore, nodes: &[u32]) -> BTreeMap<u32, NotLive> {
    let earlier = read_ranked_records(store, nodes);
    std::thread::sleep(LIVE_SAMPLE);
    let later = read_ranked_records(store, nodes);
    clinit_engine::monitor::ranked::Record::not_live(&earlier, &later, nodes.iter().copied())
}

/// One fence a node publishes: under `classic` `by`'s last hastat lists
/// `node` as fenced; under `ranked` `by`'s record lists `node`'s
/// incarnation as fenced (or as the lost tie-breaker whose vote it holds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FenceReport {
    pub node: u32,
    pub by: u32,
    /// Age of the hastat (or record) that lists it, seconds: the fence
    /// happened at least this long ago.
    pub listed_secs_ago: f64,
    /// `ranked`: the fenced incarnation of `node` (`None` under classic,
    /// whose hastat names nodes only).
    pub incarnation: Option<u64>,
    /// `ranked`: how long ago the fence was done, seconds, from `by`'s
    /// fence log ([`crate::fence_log`]; `None`: not in the log).
    pub fenced_secs_ago: Option<f64>,
}

/// One group's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    pub group: String,
    /// Level wanted by the hactl (`None`: absent, i.e. stopped everywhere).
    pub wanted: Option<String>,
    /// Nodes where it runs: non-idle at a level other than plan/test/stop,
    /// on a node that membership does not list as down (a dead node's last
    /// clstat still shows what it ran; its column does).
    pub running_on: Vec<u32>,
    /// `level STATE` per node that has a line for it.
    pub states: BTreeMap<u32, String>,
    /// How long it has run where it runs, seconds: the age of its start
    /// on the running node (the newest, if it runs on several), from that
    /// node's group-change record. `None`: not running, or no record
    /// shows the start.
    pub since_secs: Option<f64>,
    /// How many times it started on a node other than the one it last
    /// started on, in the hour before now, from every node's group-change
    /// record. `None`: no node has a record.
    pub moves_last_hour: Option<u32>,
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    pub shared: String,
    /// The staleness limit of a clstat: `--timeout` under `classic`,
    /// three leases under `ranked` (which does not use `--timeout`).
    pub timeout_secs: f64,
    /// `ranked`: its lease H, seconds, which sets every time there (the
    /// header names it instead of a timeout). `None` under `classic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_secs: Option<f64>,
    /// Whose hactl gave the wanted levels: the same as `hactl_from` (kept
    /// for scripts written before it).
    pub hactl_node: Option<u32>,
    /// The node whose copy won: the hactl the cluster converges on, by the
    /// policy's own rule ([`HactlRule`]). Its levels are the WANTED column.
    pub hactl_from: Option<u32>,
    /// The winning copy's version number (`ranked`'s sealed replicas;
    /// `None` under `classic`, or when no sealed copy parses yet).
    pub hactl_version: Option<u64>,
    /// The state of the local node's own copy (`None`: local node unknown).
    pub hactl_local: Option<LocalHactl>,
    pub hactl_error: Option<String>,
    /// The local node's own cltab copy when it does not parse (`None`: it
    /// parses, there is none, or the local node is unknown). Its monitor
    /// keeps its last good table meanwhile, so nothing else in the picture
    /// shows that the file on disk is not what runs (a new user's finding).
    pub cltab_local_error: Option<LocalCltabError>,
    pub membership_error: Option<String>,
    pub nodes: Vec<NodeReport>,
    pub groups: Vec<GroupReport>,
    /// Every fence the nodes' last hastats list, by fenced node then by
    /// fencing node.
    pub fences: Vec<FenceReport>,
    /// Group-change records that could not be read (file:line and why).
    pub record_errors: Vec<String>,
    /// Nodes in standby (issue 12), from the `#@standby` line of the hactl
    /// that gave the wanted levels: under `ranked` they are drained and
    /// take no new groups.
    pub standby: Vec<u32>,
    /// The last number of the cluster's membership-transition history
    /// (`None`: no history yet).
    pub transitions_last: Option<u64>,
    /// The last [`RECENT`] membership transitions, oldest first.
    pub transitions: Vec<RecentTransition>,
}

/// Which rule picks the hactl the cluster converges on: the one the
/// monitors replicate by, so that `mosha status` shows the levels the
/// cluster acts on, not whatever the local copy says (a new user's node
/// with a torn copy showed the torn copy's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HactlRule {
    /// `classic`: the newest mtime among copies that parse, ties to the
    /// lowest node (the original's `getlatest`, spec §5.4).
    Newest,
    /// `ranked`: the highest sealed version that parses, equal numbers to
    /// the higher checksum ([`replica_version::converged`]).
    Versioned,
}

/// The local node's own hactl copy, judged as its monitor judges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalHactl {
    pub node: u32,
    /// One of [`LocalHactl::STATES`]: `converged` (its content is the
    /// winning copy's), `behind` (a good copy, older: its monitor replaces
    /// it), `ahead` (a good copy newer than the winner: the node is not a
    /// member, so the cluster does not read it), `edited` (no seal line: a
    /// hand edit its monitor seals as a new version), `checksum_fails`,
    /// `truncated`, `unparsable`, `missing`, `unreadable`.
    pub state: &'static str,
    /// Its sealed version number, if it has a seal line that names one.
    pub version: Option<u64>,
    /// What is wrong with it, in words (for the broken states).
    pub reason: Option<String>,
}

impl LocalHactl {
    /// Every value of `state`.
    pub const STATES: [&'static str; 9] = [
        "converged",
        "behind",
        "ahead",
        "edited",
        "checksum_fails",
        "truncated",
        "unparsable",
        "missing",
        "unreadable",
    ];

    /// The copy cannot be used as it is: the node runs on its last good
    /// copy (or none) until it is repaired or replaced.
    pub fn broken(&self) -> bool {
        matches!(
            self.state,
            "checksum_fails" | "truncated" | "unparsable" | "missing" | "unreadable"
        )
    }
}

/// The local node's own cltab copy, which does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalCltabError {
    pub node: u32,
    /// The file, as the store names it (the path under `--mfsbase`).
    pub file: String,
    /// Every error found, in line order (at least one).
    pub errors: Vec<LineProblem>,
}

/// One located parse error: `line` counts the file's lines, the seal line
/// of a versioned copy included, so that it is the line an editor shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineProblem {
    pub line: usize,
    /// What is wrong with that line, in words.
    pub error: String,
}

/// `me`'s own cltab copy, judged as its monitor judges it: `Some` when it
/// does not parse. An unreadable or missing copy is not reported here (the
/// monitor logs it); only a copy whose text is wrong, which an operator
/// can fix.
pub fn local_cltab_error(store: &dyn SharedStore, me: u32) -> Option<LocalCltabError> {
    use clinit_engine::cltab::Cltab;
    let Ok(Some(snap)) = store.read(me, SharedFile::Cltab) else { return None };
    let file = store.describe(me, SharedFile::Cltab);
    // The whole file, seal line included (a comment to the parser), so
    // that the line numbers are the file's.
    let text = String::from_utf8_lossy(&snap.bytes);
    let errors = Cltab::parse(&text, &file).err()?;
    let errors = errors
        .0
        .into_iter()
        .map(|e| LineProblem { line: e.line, error: e.kind.to_string() })
        .collect();
    Some(LocalCltabError { node: me, file, errors })
}

/// `mosha status`'s words for a local cltab that does not parse.
fn local_cltab_lines(e: &LocalCltabError) -> String {
    let mut out = format!(
        "local cltab (node {}) does NOT PARSE; its monitor keeps its last good table until it \
         is fixed:\n",
        e.node
    );
    for p in &e.errors {
        out.push_str(&format!("  {}:{}: {}\n", e.file, p.line, p.error.replace('\n', "\n  ")));
    }
    out
}

/// How many transitions `mosha status --json` lists.
pub const RECENT: usize = 10;

/// One recent membership transition, with its age by the reader's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentTransition {
    /// `number`, `node`, `change` (`up`/`down`), `at_ms` (the recorder's
    /// wall clock, ms since the epoch), `by` (the recording node), `reason`.
    #[serde(flatten)]
    pub transition: clinit_engine::monitor::transitions::Transition,
    /// Seconds since `at_ms` by this reader's clock (never negative).
    pub secs_ago: f64,
}

/// What the nodes recorded over time, besides their status files: the
/// membership-transition history and each node's group-change record.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// The cluster's best transition history, if any.
    pub history: Option<History>,
    /// Each node's group-change record (nodes without one are absent).
    pub moves: BTreeMap<u32, Vec<GroupChange>>,
    /// Each node's fence log (`ranked`; nodes without one are absent).
    pub fence_logs: BTreeMap<u32, Vec<crate::fence_log::FenceEntry>>,
    /// Records that could not be read.
    pub errors: Vec<String>,
    /// `ranked`: why each sampled node that is not live is not
    /// ([`sample_ranked_faults`]; a node absent is live); `None` under
    /// `classic` (no liveness sample is taken).
    pub ranked_faults: Option<BTreeMap<u32, NotLive>>,
}

impl Records {
    /// Read the group-change records of every node directory under
    /// `paths` (`history` is read by the caller: its reader lives with the
    /// recorder thread).
    pub fn read(paths: &NodePaths, nodes: &[u32], history: Option<History>) -> Records {
        let mut records = Records { history, ..Records::default() };
        for &node in nodes {
            let path = paths.node_dir(node).join(crate::group_moves::FILE);
            match crate::group_moves::read(&path) {
                Ok(Some(changes)) => {
                    records.moves.insert(node, changes);
                }
                Ok(None) => {}
                Err(e) => records.errors.push(e),
            }
            let path = paths.node_dir(node).join(crate::fence_log::FILE);
            match crate::fence_log::read(&path) {
                Ok(Some(entries)) => {
                    records.fence_logs.insert(node, entries);
                }
                Ok(None) => {}
                Err(e) => records.errors.push(e),
            }
        }
        records
    }
}

/// When `group` last started on a node, by that node's record (ms since
/// the epoch): its last change into running from not running (or from no
/// line). `None` unless the record's last line for the group is running.
fn started_at(changes: &[GroupChange], group: &str) -> Option<i64> {
    let mut start = None;
    let mut was_running = false;
    for c in changes.iter().filter(|c| c.group == group) {
        let running = counts_as_running(&c.level, &GroupState::parse(&c.state));
        if running && !was_running {
            start = Some(c.at_ms);
        }
        if !running {
            start = None;
        }
        was_running = running;
    }
    start
}

/// `group`'s "since" and "moves in the last hour" (see [`GroupReport`]).
pub fn group_history(
    moves: &BTreeMap<u32, Vec<GroupChange>>,
    group: &str,
    running_on: &[u32],
    now: SystemTime,
) -> (Option<f64>, Option<u32>) {
    let now_s = epoch_secs(now);
    let since = running_on
        .iter()
        .filter_map(|n| moves.get(n).and_then(|c| started_at(c, group)))
        .max()
        .map(|at| (now_s - at as f64 / 1000.0).max(0.0));
    if moves.is_empty() {
        return (since, None);
    }
    // Every start on every node, in time order.
    let mut starts: Vec<(i64, u32)> = Vec::new();
    for (&node, changes) in moves {
        let mut was_running = false;
        for c in changes.iter().filter(|c| c.group == group) {
            let running = counts_as_running(&c.level, &GroupState::parse(&c.state));
            if running && !was_running {
                starts.push((c.at_ms, node));
            }
            was_running = running;
        }
    }
    starts.sort();
    let hour_ago_ms = ((now_s - 3600.0) * 1000.0) as i64;
    let moves = starts.windows(2).filter(|w| w[1].1 != w[0].1 && w[1].0 >= hour_ago_ms).count();
    (since, Some(u32::try_from(moves).unwrap_or(u32::MAX)))
}

/// Seconds since the epoch of `t` (0 before the epoch).
fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Read everything. `me`: the local node (its own hactl copy is judged
/// and shown beside the converged one); `rule`: how the policy picks the
/// hactl the cluster converges on, among the members' copies (every node's
/// when membership is unknown). `records.history`: the cluster's best
/// membership-transition history, if any (gives each node's "since").
pub fn collect(
    store: &dyn SharedStore,
    membership: &dyn Membership,
    timeout: Millis,
    me: Option<u32>,
    rule: HactlRule,
    records: &Records,
    now: SystemTime,
) -> ClusterStatus {
    let history = records.history.as_ref();
    let (members, membership_error) = match membership.members() {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(format!("{}: {e}", membership.describe()))),
    };
    let mut all: BTreeSet<u32> = store.nodes().unwrap_or_default().into_iter().collect();
    all.extend(members.iter().flatten().copied());
    all.extend(me);

    let mut reports = Vec::new();
    let mut states: BTreeMap<String, BTreeMap<u32, (String, bool)>> = BTreeMap::new();
    let mut hastats = BTreeMap::new();
    // `ranked` nodes' records (no hastat): whom they fenced, and the age
    // of the record that says so.
    let mut ranked_fences: BTreeMap<u32, RecordFences> = BTreeMap::new();
    // Each node's incarnation as its own record publishes it: a fence of
    // an older one is over (the node came back).
    let mut incarnations: BTreeMap<u32, u64> = BTreeMap::new();
    for &node in &all {
        let status = read_clstat(store, node, now);
        let mut report = NodeReport {
            node,
            member: members.as_ref().map(|m| m.contains(&node)),
            clstat: "ok",
            age_secs: None,
            stale: false,
            reason: None,
            quorum: None,
            fenced_by: Vec::new(),
            since_change: None,
            since_secs: None,
            live: records.ranked_faults.as_ref().map(|f| !f.contains_key(&node)),
            not_live: records
                .ranked_faults
                .as_ref()
                .and_then(|f| f.get(&node))
                .map(|w| w.to_string()),
            watchdog: None,
        };
        if let Some((change, secs)) = history.and_then(|h| since(h, node, now)) {
            report.since_change = Some(change);
            report.since_secs = Some(secs);
        }
        match status {
            NodeStatus::Read { clstat, age } => {
                report.age_secs = Some(age.0 as f64 / 1000.0);
                report.stale = clinit_engine::monitor::is_stale(age, timeout);
                for (group, st) in &clstat.groups {
                    let line = format!("{} {}", st.level, st.state);
                    // A node not live (record frozen, lease lapsed, or
                    // fenced) had its groups killed by its watchdog, or
                    // may start nothing: its clstat is its last word.
                    let running = counts_as_running(&st.level, &st.state)
                        && report.member != Some(false)
                        && report.live != Some(false);
                    states.entry(group.clone()).or_default().insert(node, (line, running));
                }
            }
            NodeStatus::Missing => report.clstat = "missing",
            NodeStatus::Unreadable { reason } => {
                report.clstat = "unreadable";
                report.reason = Some(reason);
            }
        }
        if let Ok(Some(snap)) = store.read(node, SharedFile::Hastat) {
            if let Ok(doc) = serde_json::from_slice::<HastatDoc>(&snap.bytes) {
                report.quorum = Some(doc.quorum);
                hastats.insert(node, doc);
            }
        }
        if report.quorum.is_none() {
            // `ranked` writes no hastat: its quorum is the lease its own
            // record (the heartbeat file) publishes.
            if let Ok(Some(snap)) = store.read(node, SharedFile::Heartbeat) {
                let record = std::str::from_utf8(&snap.bytes)
                    .ok()
                    .and_then(|t| clinit_engine::monitor::ranked::Record::parse(t).ok());
                if let Some(r) = record {
                    incarnations.insert(node, r.incarnation);
                    report.quorum = Some(r.holds_quorum());
                    report.watchdog = Some(r.watchdog);
                    let mut fenced: Vec<(u32, u64)> =
                        r.fenced.iter().chain(&r.votes).map(|(&n, &i)| (n, i)).collect();
                    fenced.sort_unstable();
                    fenced.dedup();
                    let age = snap.stamp.mtime.elapsed().map_or(0.0, |d| d.as_secs_f64());
                    ranked_fences.insert(node, (fenced, age));
                }
            }
        }
        reports.push(report);
    }
    let mut fences = fences(&hastats, now);
    fences.extend(
        ranked_fence_reports(&ranked_fences, &records.fence_logs, now).into_iter().filter(|f| {
            let current = incarnations.get(&f.node).copied();
            f.incarnation.is_none_or(|i| clinit_engine::monitor::ranked::fence_in_force(i, current))
        }),
    );
    fences.sort_by_key(|f| (f.node, f.by));
    for report in &mut reports {
        report.fenced_by = fences.iter().filter(|f| f.node == report.node).map(|f| f.by).collect();
        report.fenced_by.dedup();
    }

    // The copies the monitors replicate among.
    let candidates = hactl_candidates(store, members.as_deref());
    let pick = pick_hactl(store, &candidates, me, rule);
    let hactl = pick.hactl;
    let mut names: BTreeSet<String> = states.keys().cloned().collect();
    names.extend(hactl.iter().flat_map(|h| h.groups.keys().cloned()));
    let groups = names
        .into_iter()
        .map(|group| {
            let per_node = states.remove(&group).unwrap_or_default();
            let running_on: Vec<u32> =
                per_node.iter().filter(|(_, (_, r))| *r).map(|(&n, _)| n).collect();
            let (since_secs, moves_last_hour) =
                group_history(&records.moves, &group, &running_on, now);
            GroupReport {
                wanted: hactl.as_ref().and_then(|h| h.get(&group)).map(|w| w.level.clone()),
                running_on,
                states: per_node.into_iter().map(|(n, (line, _))| (n, line)).collect(),
                since_secs,
                moves_last_hour,
                group,
            }
        })
        .collect();
    let standby = hactl.as_ref().map(|h| h.standby.iter().copied().collect()).unwrap_or_default();
    ClusterStatus {
        shared: store.base(),
        timeout_secs: timeout.0 as f64 / 1000.0,
        lease_secs: None,
        hactl_node: pick.from,
        hactl_from: pick.from,
        hactl_version: pick.version,
        hactl_local: pick.local,
        hactl_error: pick.error,
        cltab_local_error: me.and_then(|me| local_cltab_error(store, me)),
        membership_error,
        nodes: reports,
        groups,
        fences,
        record_errors: records.errors.clone(),
        standby,
        transitions_last: history.map(|h| h.last),
        transitions: history.map(|h| recent(h, RECENT, now)).unwrap_or_default(),
    }
}

/// The last `k` transitions of `history`, oldest first, with their age.
pub fn recent(history: &History, k: usize, now: SystemTime) -> Vec<RecentTransition> {
    history
        .tail(k)
        .iter()
        .map(|t| RecentTransition {
            transition: t.clone(),
            secs_ago: (epoch_secs(now) - t.at_ms as f64 / 1000.0).max(0.0),
        })
        .collect()
}

/// `node`'s last transition in `history`: its change and age (seconds, by
/// `now`; never negative).
pub fn since(history: &History, node: u32, now: SystemTime) -> Option<(String, f64)> {
    let t = history.entries.iter().rev().find(|t| t.node == node)?;
    let age = (epoch_secs(now) - t.at_ms as f64 / 1000.0).max(0.0);
    Some((t.change.to_string(), age))
}

/// The fences the hastats list (`hastats`: by writing node), with the age
/// of the listing hastat.
pub fn fences(hastats: &BTreeMap<u32, HastatDoc>, now: SystemTime) -> Vec<FenceReport> {
    let mut out: Vec<FenceReport> = hastats
        .iter()
        .flat_map(|(&by, doc)| {
            let age = (epoch_secs(now) - doc.written).max(0.0);
            doc.fenced.iter().map(move |&node| FenceReport {
                node,
                by,
                listed_secs_ago: age,
                incarnation: None,
                fenced_secs_ago: None,
            })
        })
        .collect();
    out.sort_by_key(|f| (f.node, f.by));
    out
}

/// What one `ranked` record lists as fenced: `(node, incarnation)`s, and
/// the record's age in seconds.
pub type RecordFences = (Vec<(u32, u64)>, f64);

/// The fences `ranked` records list (`records`: by fencing node, the
/// fenced `(node, incarnation)`s and the record's age), each with its time
/// from the fencing node's fence log when the log has it (the newest line
/// for that node and incarnation).
pub fn ranked_fence_reports(
    records: &BTreeMap<u32, RecordFences>,
    logs: &BTreeMap<u32, Vec<crate::fence_log::FenceEntry>>,
    now: SystemTime,
) -> Vec<FenceReport> {
    let mut out = Vec::new();
    for (&by, (fenced, age)) in records {
        for &(node, incarnation) in fenced {
            let at = logs.get(&by).and_then(|log| {
                log.iter().rev().find(|e| e.node == node && e.incarnation == incarnation)
            });
            out.push(FenceReport {
                node,
                by,
                listed_secs_ago: *age,
                incarnation: Some(incarnation),
                fenced_secs_ago: at.map(|e| (epoch_secs(now) - e.at_ms as f64 / 1000.0).max(0.0)),
            });
        }
    }
    out
}

/// One node's hactl copy as `mosha status` reads it.
enum HactlCopy {
    Missing,
    Unreadable(String),
    Read { bytes: Vec<u8>, mtime: SystemTime, parsed: Result<Hactl, String> },
}

/// What [`pick_hactl`] found.
#[derive(Debug, Clone)]
pub struct HactlPick {
    /// The winning copy, parsed (`None`: no candidate's copy parses).
    pub hactl: Option<Hactl>,
    /// The winning copy's text without its seal line: what `mosha hactl
    /// show` prints and `mosha hactl set` edits.
    pub text: Option<String>,
    /// Whose copy won.
    pub from: Option<u32>,
    /// The winning copy's version (`None` under `classic`, or while no
    /// sealed copy parses).
    pub version: Option<u64>,
    /// The local node's own copy, judged (`None`: local node unknown).
    pub local: Option<LocalHactl>,
    /// Why nothing won.
    pub error: Option<String>,
}

/// The nodes whose hactl copies the monitors replicate among: the members
/// `members` lists (a node membership lists down is not read), or every
/// node with a directory when membership is unknown (`None`). One rule for
/// `mosha status`, `hactl show`, `hactl set` and `standby`, so that they
/// all show and edit the copy the cluster acts on.
pub fn hactl_candidates(store: &dyn SharedStore, members: Option<&[u32]>) -> BTreeSet<u32> {
    match members {
        Some(m) => m.iter().copied().collect(),
        None => store.nodes().unwrap_or_default().into_iter().collect(),
    }
}

fn read_hactl(store: &dyn SharedStore, node: u32) -> HactlCopy {
    let name = store.describe(node, SharedFile::Hactl);
    match store.read(node, SharedFile::Hactl) {
        Ok(None) => HactlCopy::Missing,
        Err(e) => HactlCopy::Unreadable(format!("{name}: {e}")),
        Ok(Some(snap)) => {
            let parsed = parse_copy::<Hactl>(&snap.bytes, &name).map(Arc::unwrap_or_clone);
            HactlCopy::Read { bytes: snap.bytes.to_vec(), mtime: snap.stamp.mtime, parsed }
        }
    }
}

/// The hactl the cluster converges on among `candidates`' copies (see
/// [`hactl_candidates`]), by `rule`, and the state of `me`'s own copy.
/// Under `ranked`, while no sealed copy parses (a new cluster whose copies
/// are not sealed yet), the newest complete copy that parses stands in,
/// without a version. The one picker of `mosha status`, `mosha hactl show`,
/// `mosha hactl set` and `mosha standby`: a second one (the best sealed
/// copy on any node) let `hactl set` edit a copy the cluster did not act
/// on, undoing a `classic` hand edit with a newer mtime.
pub fn pick_hactl(
    store: &dyn SharedStore,
    candidates: &BTreeSet<u32>,
    me: Option<u32>,
    rule: HactlRule,
) -> HactlPick {
    let mut copies: BTreeMap<u32, HactlCopy> =
        candidates.iter().map(|&n| (n, read_hactl(store, n))).collect();
    if let Some(me) = me {
        copies.entry(me).or_insert_with(|| read_hactl(store, me));
    }
    let seal = |bytes: &[u8]| match rule {
        HactlRule::Versioned => Some(classify(bytes)),
        HactlRule::Newest => None,
    };
    let versioned = match rule {
        HactlRule::Versioned => {
            let facts: Vec<(u32, Option<Facts>)> = candidates
                .iter()
                .map(|&n| match copies.get(&n) {
                    Some(HactlCopy::Read { bytes, parsed, .. }) => {
                        let writer = replica_version::writer(bytes);
                        (n, Some(Facts { seal: classify(bytes), parses: parsed.is_ok(), writer }))
                    }
                    _ => (n, None),
                })
                .collect();
            converged(&facts)
        }
        HactlRule::Newest => None,
    };
    let winner = versioned.map(|(n, _)| n).or_else(|| {
        // The original's rule: the newest mtime that parses, ties to the
        // lowest node; never a truncated copy under `ranked`.
        candidates
            .iter()
            .filter_map(|&n| match copies.get(&n) {
                Some(HactlCopy::Read { bytes, mtime, parsed: Ok(_) })
                    if !matches!(seal(bytes), Some(Seal::Truncated { .. })) =>
                {
                    Some((*mtime, std::cmp::Reverse(n)))
                }
                _ => None,
            })
            .max()
            .map(|(_, std::cmp::Reverse(n))| n)
    });
    let (hactl, body) = match winner.and_then(|n| copies.get(&n)) {
        Some(HactlCopy::Read { bytes, parsed: Ok(h), .. }) => {
            (Some(h.clone()), Some(replica_version::body(&bytes[..]).to_vec()))
        }
        _ => (None, None),
    };
    let text = body.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
    let version = versioned.map(|(_, v)| v);
    let local = me
        .and_then(|me| copies.get(&me).map(|c| judge_local(me, c, rule, body.as_deref(), version)));
    let error = match (winner, candidates.is_empty()) {
        (Some(_), _) => None,
        (None, true) => Some("no member node to read a hactl from".into()),
        (None, false) => Some("no member node has a hactl that parses".into()),
    };
    HactlPick { hactl, text, from: winner, version: version.map(|v| v.number), local, error }
}

/// The local copy's state (see [`LocalHactl::state`]), given the winning
/// copy's body and version (if any).
fn judge_local(
    node: u32,
    copy: &HactlCopy,
    rule: HactlRule,
    winner_body: Option<&[u8]>,
    winner: Option<Version>,
) -> LocalHactl {
    let local = |state, version, reason| LocalHactl { node, state, version, reason };
    let (bytes, parsed) = match copy {
        HactlCopy::Missing => return local("missing", None, None),
        HactlCopy::Unreadable(why) => return local("unreadable", None, Some(escape_controls(why))),
        HactlCopy::Read { bytes, parsed, .. } => (bytes, parsed),
    };
    let seal = match rule {
        HactlRule::Versioned => classify(bytes),
        // `classic` reads a seal line as a comment: only the content counts.
        HactlRule::Newest => Seal::Edited { was: None, sum: 0 },
    };
    if let Seal::Truncated { reason } = &seal {
        let why = format!("{reason}: never adopted; its monitor replaces it with a complete copy");
        return local("truncated", None, Some(why));
    }
    if let Err(e) = parsed {
        return local("unparsable", seal_number(&seal), Some(escape_controls(e)));
    }
    match seal {
        Seal::Edited { was: Some(n), .. } => local(
            "checksum_fails",
            Some(n),
            Some(format!(
                "its #@mosha seal line (version {n}) does not match its body: edited by hand \
                 with the seal line kept (its monitor seals it as a new version once it stays \
                 unchanged for 2 s), or damaged"
            )),
        ),
        Seal::Sealed(v) => match winner {
            Some(w) if v == w => local("converged", Some(v.number), None),
            Some(w) if v < w => local("behind", Some(v.number), None),
            Some(_) => local("ahead", Some(v.number), None),
            None => local("converged", Some(v.number), None),
        },
        _ if rule == HactlRule::Versioned => local("edited", None, None),
        _ if winner_body == Some(replica_version::body(bytes)) => local("converged", None, None),
        _ => local("behind", None, None),
    }
}

fn seal_number(seal: &Seal) -> Option<u64> {
    match seal {
        Seal::Sealed(v) => Some(v.number),
        Seal::Edited { was, .. } => *was,
        Seal::Truncated { .. } => None,
    }
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn list(nodes: &[u32]) -> String {
    nodes.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// An age for people: `42s`, `3m05s`, `2h07m`, `4d03h` (whole seconds,
/// two units at most, as `ps` and `crm_mon` print elapsed times).
pub fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m{:02}s", s / 60, s % 60),
        6000..=172_799 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The human-readable form.
/// What `mosha status` exits with, judged from the picture (the codes are
/// in `mosha --help`): a monitoring check (Nagios, systemd `ExecCondition`,
/// a script) needs "quorum held" apart from "looked and found trouble".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Membership was read and the node judged (the local node, else any
    /// member) holds quorum by its own fresh hastat (under `ranked`: its
    /// record shows its lease `holding`). Exit 0.
    Ok,
    /// No node at all under the shared directory. Exit 1.
    NoNodes,
    /// The membership source could not be read. Exit 3.
    MembershipUnknown(String),
    /// Quorum lost, or not known: the judged node's hastat says no quorum,
    /// it wrote none, or its clstat is missing, unreadable or stale (its
    /// monitor is not running, so its last word may no longer hold). Exit 4.
    QuorumLost(String),
}

impl Health {
    pub fn exit_code(&self) -> u8 {
        match self {
            Health::Ok => 0,
            Health::NoNodes => 1,
            Health::MembershipUnknown(_) => 3,
            Health::QuorumLost(_) => 4,
        }
    }
}

/// [`Health`] of a picture; `me` is the local node when known (its view is
/// the one that counts, as for the wanted levels), else any member will do.
pub fn health(st: &ClusterStatus, me: Option<u32>) -> Health {
    if st.nodes.is_empty() {
        return Health::NoNodes;
    }
    if let Some(e) = &st.membership_error {
        return Health::MembershipUnknown(e.clone());
    }
    let judge = |n: &NodeReport| -> Result<(), String> {
        if n.live == Some(false) {
            let why = n.not_live.as_deref().unwrap_or(NOT_LIVE);
            return Err(format!("node {}: not live: {why}", n.node));
        }
        if n.clstat != "ok" || n.stale {
            return Err(format!(
                "node {}: quorum unknown: its clstat is {} (is its monitor running?)",
                n.node,
                if n.stale { "stale" } else { n.clstat }
            ));
        }
        match n.quorum {
            Some(true) => Ok(()),
            Some(false) => Err(format!("node {}: quorum LOST (its last hastat or lease)", n.node)),
            None => {
                Err(format!("node {}: quorum unknown: no readable hastat or ranked record", n.node))
            }
        }
    };
    let verdict = match me.and_then(|me| st.nodes.iter().find(|n| n.node == me)) {
        Some(local) => judge(local),
        None => {
            let members: Vec<&NodeReport> =
                st.nodes.iter().filter(|n| n.member == Some(true)).collect();
            match members.iter().map(|n| judge(n)).find(Result::is_ok) {
                Some(ok) => ok,
                None => Err(members
                    .first()
                    .map(|n| judge(n).err().unwrap_or_default())
                    .unwrap_or_else(|| "no node is a member: quorum unknown".into())),
            }
        }
    };
    match verdict {
        Ok(()) => Health::Ok,
        Err(why) => Health::QuorumLost(why),
    }
}

/// The SINCE cell: the age of the node's last transition when it agrees
/// with what membership says now (`3m05s`); when it does not (the recorder
/// has not recorded the change yet, or membership is unknown), the
/// transition itself (`down 3m05s ago?`); `-` when the history never
/// mentions the node.
fn since_cell(n: &NodeReport) -> String {
    match (&n.since_change, n.since_secs) {
        (Some(change), Some(secs)) => {
            let now = match n.member {
                Some(true) => Some("up"),
                Some(false) => Some("down"),
                None => None,
            };
            if now == Some(change.as_str()) {
                human_secs(secs)
            } else {
                format!("{change} {} ago?", human_secs(secs))
            }
        }
        _ => "-".into(),
    }
}

/// What to say about the local hactl copy, when it is not the one in
/// force (`from`: the node whose copy is): said plainly when it is broken,
/// since the node then runs on its last good copy, not on what the file
/// shows. Also `mosha hactl show`'s note.
pub fn local_hactl_line(l: &LocalHactl, from: Option<u32>) -> Option<String> {
    let node = l.node;
    let shown = match from {
        Some(n) if n != node => format!("; the wanted levels shown are node {n}'s copy"),
        _ => String::new(),
    };
    let why = l.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    let version = l.version.map(|v| format!(" (version {v})")).unwrap_or_default();
    let text = match l.state {
        "converged" => return None,
        "behind" => format!(
            "local hactl (node {node}){version} is behind: its monitor copies the newer one at \
             its next cycle{shown}"
        ),
        "ahead" => format!(
            "local hactl (node {node}){version} is newer than the one in force, but membership \
             does not list node {node}, so no node reads it{shown}"
        ),
        "edited" => format!(
            "local hactl (node {node}) was edited by hand: its monitor seals it as a new version \
             once it stays unchanged for 2 s{shown}"
        ),
        "missing" => format!("local hactl (node {node}) is MISSING{shown}"),
        state => format!(
            "local hactl (node {node}) is BROKEN: {}{why}; this node keeps its last good copy{shown}",
            state.replace('_', " ")
        ),
    };
    Some(text)
}

/// Why a node is not live under `ranked`, in an operator's words.
const NOT_LIVE: &str = "its record did not move within 1.5 s, its lease does not hold, or a \
     peer lists its incarnation as fenced (a fenced node that still runs rejoins by itself as a \
     new incarnation)";

pub fn render(st: &ClusterStatus) -> String {
    // Under ranked the lease sets every time: `--timeout` is not used, so
    // naming a timeout would send an operator to the wrong flag.
    let mut out = match st.lease_secs {
        Some(h) => format!("cluster {} (ranked, lease {h}s)", st.shared),
        None => format!("cluster {} (timeout {}s)", st.shared, st.timeout_secs),
    };
    match (st.hactl_from, st.hactl_version) {
        (Some(n), Some(v)) => {
            out.push_str(&format!(", wanted levels from node {n}'s hactl (version {v})\n"))
        }
        (Some(n), None) => out.push_str(&format!(", wanted levels from node {n}'s hactl\n")),
        (None, _) => out.push('\n'),
    }
    if let Some(e) = &st.membership_error {
        out.push_str(&format!("membership unknown: {e}\n"));
    }
    if let Some(e) = &st.hactl_error {
        out.push_str(&format!("hactl: {e}\n"));
    }
    if let Some(line) = st.hactl_local.as_ref().and_then(|l| local_hactl_line(l, st.hactl_from)) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    let mut rows = vec![vec![
        "NODE".into(),
        "MEMBER".into(),
        "SINCE".into(),
        "CLSTAT".into(),
        "QUORUM".into(),
        "NOTES".into(),
    ]];
    for n in &st.nodes {
        let member = match n.member {
            Some(true) => "up",
            Some(false) => "down",
            None => "?",
        };
        let clstat = match (n.clstat, n.age_secs) {
            ("ok", Some(age)) if n.stale => format!("STALE {} old", human_secs(age)),
            ("ok", Some(age)) => format!("{} old", human_secs(age)),
            (other, _) => other.to_string(),
        };
        // A node not live holds nothing, whatever its last record said: its
        // `yes` would read as a quorum it may no longer have.
        let quorum = match (n.quorum, n.live) {
            (Some(true), Some(false)) => "-",
            (Some(true), _) => "yes",
            (Some(false), _) => "LOST",
            (None, _) => "-",
        };
        let mut notes = Vec::new();
        if n.live == Some(false) {
            notes.push(format!("NOT LIVE: {}", n.not_live.as_deref().unwrap_or(NOT_LIVE)));
        }
        if n.watchdog == Some(false) {
            notes.push(
                "NO WATCHDOG: nothing is taken over from it without a fence if its monitor \
                 freezes"
                    .into(),
            );
        }
        if !n.fenced_by.is_empty() {
            notes.push(format!("FENCED by {}", list(&n.fenced_by)));
        }
        if let Some(r) = &n.reason {
            notes.push(r.clone());
        }
        rows.push(vec![
            n.node.to_string(),
            member.into(),
            since_cell(n),
            clstat,
            quorum.into(),
            notes.join("; "),
        ]);
    }
    out.push_str(&table(&rows));
    let (classic, ranked): (Vec<&FenceReport>, Vec<&FenceReport>) =
        st.fences.iter().partition(|f| f.incarnation.is_none());
    if !classic.is_empty() {
        out.push_str("\nlast fences (from the hastats; a hastat keeps no fence time):\n");
        for f in classic {
            out.push_str(&format!(
                "  node {} fenced by node {} (listed in its hastat written {} ago)\n",
                f.node,
                f.by,
                human_secs(f.listed_secs_ago)
            ));
        }
    }
    if !ranked.is_empty() {
        out.push_str("\nfences in force (from the ranked records, times from the fence logs):\n");
        for f in ranked {
            let when = match f.fenced_secs_ago {
                Some(ago) => format!("{} ago", human_secs(ago)),
                None => "time not in its fence log".to_string(),
            };
            out.push_str(&format!(
                "  node {} (incarnation {}) fenced by node {}, {when}\n",
                f.node,
                f.incarnation.unwrap_or_default(),
                f.by,
            ));
        }
    }
    out.push('\n');
    for e in &st.record_errors {
        out.push_str(&format!("group-change record not used: {e}\n"));
    }
    let mut header = vec![
        "GROUP".to_string(),
        "WANTED".into(),
        "RUNNING ON".into(),
        "SINCE".into(),
        "MOVES/1H".into(),
    ];
    header.extend(st.nodes.iter().map(|n| format!("NODE {}", n.node)));
    let mut rows = vec![header];
    for g in &st.groups {
        // A stale node's last word may no longer be true: marked with `?`.
        let stale = |node: &u32| st.nodes.iter().any(|n| n.node == *node && n.stale);
        let running: Vec<String> = g
            .running_on
            .iter()
            .map(|n| if stale(n) { format!("{n}?") } else { n.to_string() })
            .collect();
        let mut row = vec![
            g.group.clone(),
            g.wanted.clone().unwrap_or_else(|| "(absent)".into()),
            match g.running_on.len() {
                0 if g.wanted.as_deref().is_some_and(|w| w != "stop") => "NOWHERE".into(),
                0 => "-".into(),
                _ => running.join(","),
            },
            g.since_secs.map_or_else(|| "-".into(), human_secs),
            g.moves_last_hour.map_or_else(|| "-".into(), |m| m.to_string()),
        ];
        // A down or stale node's clstat is its last word, not its state:
        // say so instead of showing it as current.
        row.extend(st.nodes.iter().map(|n| match g.states.get(&n.node) {
            None => "-".into(),
            Some(line) if n.member == Some(false) => format!("down (was {line})"),
            Some(line) if n.live == Some(false) => format!("not live (last {line})"),
            Some(line) if n.stale => format!("stale (last {line})"),
            Some(line) => line.clone(),
        }));
        rows.push(row);
    }
    out.push_str(&table(&rows));
    if let Some(e) = &st.cltab_local_error {
        out.push('\n');
        out.push_str(&local_cltab_lines(e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_write_them() {
        let got: Vec<String> =
            [0.4, 42.0, 99.0, 100.0, 185.0, 5999.0, 6000.0, 7620.0, 172_800.0 + 3.0 * 3600.0]
                .into_iter()
                .map(human_secs)
                .collect();
        assert_eq!(
            got,
            ["0s", "42s", "99s", "1m40s", "3m05s", "99m59s", "1h40m", "2h07m", "2d03h"]
        );
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    #[test]
    fn since_is_the_nodes_last_transition_and_absent_when_never_recorded() {
        use clinit_engine::monitor::transitions::Change;
        let mut h = History::default();
        h.append(2, Change::Up, 1_000_000, 1, "heartbeat fresh");
        h.append(3, Change::Up, 1_000_500, 1, "heartbeat fresh");
        h.append(2, Change::Down, 1_060_000, 1, "heartbeat 61 s old");
        // Node 2: its last transition (down), 1090 - 1060 = 30 s ago.
        assert_eq!(since(&h, 2, at(1090)), Some(("down".to_string(), 30.0)));
        assert_eq!(since(&h, 3, at(1090)), Some(("up".to_string(), 89.5)));
        // Never in the history: nothing (not "0s").
        assert_eq!(since(&h, 4, at(1090)), None);
        // A reader clock behind the recorder's: never a negative age.
        assert_eq!(since(&h, 2, at(1000)), Some(("down".to_string(), 0.0)));
    }

    #[test]
    fn since_cell_flags_a_transition_that_disagrees_with_membership() {
        let mut n = NodeReport {
            node: 2,
            member: Some(false),
            clstat: "ok",
            age_secs: None,
            stale: false,
            reason: None,
            quorum: None,
            fenced_by: vec![],
            since_change: Some("down".into()),
            since_secs: Some(130.0),
            live: None,
            not_live: None,
            watchdog: None,
        };
        assert_eq!(since_cell(&n), "2m10s");
        n.member = Some(true);
        assert_eq!(since_cell(&n), "down 2m10s ago?");
        n.member = None;
        assert_eq!(since_cell(&n), "down 2m10s ago?");
        n.since_change = None;
        n.since_secs = None;
        assert_eq!(since_cell(&n), "-");
    }

    #[test]
    fn fences_come_from_every_hastat_with_its_age() {
        let doc = |node: u32, written: f64, fenced: Vec<u32>| HastatDoc {
            node,
            written,
            groups: BTreeMap::new(),
            unknown: BTreeMap::new(),
            members: vec![],
            stale: vec![],
            fenced,
            quorum: true,
            halting: false,
        };
        let hastats: BTreeMap<u32, HastatDoc> = [
            (1, doc(1, 990.0, vec![3, 2])),
            (2, doc(2, 900.0, vec![])),
            (4, doc(4, 1001.0, vec![2])),
        ]
        .into();
        assert_eq!(
            fences(&hastats, at(1000)),
            vec![
                FenceReport {
                    node: 2,
                    by: 1,
                    listed_secs_ago: 10.0,
                    incarnation: None,
                    fenced_secs_ago: None
                },
                FenceReport {
                    node: 2,
                    by: 4,
                    listed_secs_ago: 0.0,
                    incarnation: None,
                    fenced_secs_ago: None
                },
                FenceReport {
                    node: 3,
                    by: 1,
                    listed_secs_ago: 10.0,
                    incarnation: None,
                    fenced_secs_ago: None
                },
            ]
        );
        assert!(fences(&BTreeMap::new(), at(1000)).is_empty());
    }

    fn change(at_s: i64, group: &str, level: &str, state: &str) -> GroupChange {
        GroupChange {
            at_ms: at_s * 1000,
            group: group.into(),
            level: level.into(),
            state: state.into(),
        }
    }

    #[test]
    fn group_since_is_its_last_start_on_the_running_node() {
        let moves: BTreeMap<u32, Vec<GroupChange>> = [
            (
                1,
                vec![
                    change(100, "web", "start", "STARTING"),
                    change(110, "web", "start", "DONE"),
                    change(500, "web", "stop", "DONE"),
                    change(600, "web", "start", "STARTING"),
                    change(620, "web", "start", "DONE"),
                    change(630, "db", "start", "DONE"),
                ],
            ),
            (2, vec![change(300, "web", "start", "DONE")]),
        ]
        .into();
        // Started again at 600 on node 1 (STARTING -> DONE is no restart).
        assert_eq!(group_history(&moves, "web", &[1], at(1000)).0, Some(400.0));
        // Node 2's record says it still runs there since 300.
        assert_eq!(group_history(&moves, "web", &[2], at(1000)).0, Some(700.0));
        // Running on both: the newest placement.
        assert_eq!(group_history(&moves, "web", &[1, 2], at(1000)).0, Some(400.0));
        // Not running, or no record shows the start: none.
        assert_eq!(group_history(&moves, "web", &[], at(1000)).0, None);
        assert_eq!(group_history(&moves, "db", &[2], at(1000)).0, None);
        // A record whose last line is not running gives no start.
        let stopped: BTreeMap<u32, Vec<GroupChange>> =
            [(1, vec![change(1, "web", "start", "DONE"), change(2, "web", "stop", "DONE")])].into();
        assert_eq!(group_history(&stopped, "web", &[1], at(10)).0, None);
    }

    #[test]
    fn moves_count_starts_on_another_node_within_the_hour() {
        let hour = 3600;
        let t0 = 10 * hour;
        let moves: BTreeMap<u32, Vec<GroupChange>> = [
            (
                1,
                vec![
                    change(t0 - 2 * hour, "web", "start", "DONE"),
                    change(t0 - 2 * hour + 60, "web", "stop", "DONE"),
                    // Restarted on the same node: no move.
                    change(t0 - 30 * 60, "web", "start", "DONE"),
                    change(t0 - 20 * 60, "web", "stop", "DONE"),
                    change(t0 - 20 * 60 + 5, "web", "start", "STARTING"),
                ],
            ),
            (
                2,
                vec![
                    // Moved from 1 to 2, more than an hour ago: not counted.
                    change(t0 - 90 * 60, "web", "start", "DONE"),
                    change(t0 - 40 * 60, "web", "stop", "DONE"),
                    // Moved 1 -> 2 in the hour: counted.
                    change(t0 - 10 * 60, "web", "start", "DONE"),
                ],
            ),
        ]
        .into();
        // Starts in order: 1 (-2h), 2 (-90m), 1 (-30m), 1 (-20m), 2 (-10m):
        // moves 1->2 (-90m, too old), 2->1 (-30m), 2 (-10m) from 1.
        assert_eq!(group_history(&moves, "web", &[2], at(t0 as u64)).1, Some(2));
        // A group no record mentions never moved; no record at all: unknown.
        assert_eq!(group_history(&moves, "db", &[], at(t0 as u64)).1, Some(0));
        assert_eq!(group_history(&BTreeMap::new(), "web", &[2], at(t0 as u64)), (None, None));
    }

    #[test]
    fn records_read_every_nodes_file_and_name_a_bad_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = NodePaths::new(dir.path(), "var/clinit");
        for node in [1, 2, 3] {
            std::fs::create_dir_all(paths.node_dir(node)).expect("mkdir");
        }
        let file = |n| paths.node_dir(n).join(crate::group_moves::FILE);
        std::fs::write(file(1), "5000 web start DONE\n").expect("write");
        std::fs::write(file(3), "5000 web start\n").expect("write");
        let r = Records::read(&paths, &[1, 2, 3], None);
        assert_eq!(r.moves.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(r.moves[&1], vec![change(5, "web", "start", "DONE")]);
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].contains("3/var/clinit/groupmoves:line 1"), "{:?}", r.errors);
    }

    #[test]
    fn status_json_carries_standby_and_the_recent_transitions() {
        use clinit_engine::monitor::transitions::Change;
        let mut h = History::default();
        for i in 0..12u32 {
            let change = if i % 2 == 0 { Change::Down } else { Change::Up };
            h.append(3, change, 1_000_000 + i64::from(i) * 1_000, 1, "missed heartbeats");
        }
        let st = ClusterStatus {
            shared: "/mfs".into(),
            timeout_secs: 60.0,
            lease_secs: None,
            hactl_node: Some(1),
            hactl_from: Some(1),
            hactl_version: Some(7),
            hactl_local: Some(LocalHactl {
                node: 2,
                state: "truncated",
                version: None,
                reason: Some("0 bytes".into()),
            }),
            hactl_error: None,
            cltab_local_error: Some(LocalCltabError {
                node: 2,
                file: "/mfs/2/var/mosix-ha/cltab".into(),
                errors: vec![LineProblem { line: 3, error: "bad mode \"sometimes\"".into() }],
            }),
            membership_error: None,
            nodes: vec![],
            groups: vec![],
            fences: vec![],
            record_errors: vec![],
            standby: vec![2],
            transitions_last: Some(h.last),
            transitions: recent(&h, 2, at(1_020)),
        };
        insta::assert_snapshot!(serde_json::to_string_pretty(&st).expect("json"), @r#"
        {
          "shared": "/mfs",
          "timeout_secs": 60.0,
          "hactl_node": 1,
          "hactl_from": 1,
          "hactl_version": 7,
          "hactl_local": {
            "node": 2,
            "state": "truncated",
            "version": null,
            "reason": "0 bytes"
          },
          "hactl_error": null,
          "cltab_local_error": {
            "node": 2,
            "file": "/mfs/2/var/mosix-ha/cltab",
            "errors": [
              {
                "line": 3,
                "error": "bad mode \"sometimes\""
              }
            ]
          },
          "membership_error": null,
          "nodes": [],
          "groups": [],
          "fences": [],
          "record_errors": [],
          "standby": [
            2
          ],
          "transitions_last": 12,
          "transitions": [
            {
              "number": 11,
              "node": 3,
              "change": "down",
              "at_ms": 1010000,
              "by": 1,
              "reason": "missed heartbeats",
              "secs_ago": 10.0
            },
            {
              "number": 12,
              "node": 3,
              "change": "up",
              "at_ms": 1011000,
              "by": 1,
              "reason": "missed heartbeats",
              "secs_ago": 9.0
            }
          ]
        }
        "#);
        assert_eq!(recent(&h, RECENT, at(1_020)).len(), RECENT);
        // The text says the same at its end, after a blank line.
        let text = render(&st);
        assert!(
            text.ends_with(
                "\n\nlocal cltab (node 2) does NOT PARSE; its monitor keeps its last good table \
                 until it is fixed:\n  /mfs/2/var/mosix-ha/cltab:3: bad mode \"sometimes\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn ranked_fences_come_from_the_records_with_their_time_from_the_fence_logs() {
        use crate::fence_log::FenceEntry;
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        // Node 1's record lists node 2's incarnation 4 as fenced, node 3's
        // lists node 2's incarnation 3 (an older fence, not in its log).
        let records: BTreeMap<u32, RecordFences> =
            [(1, (vec![(2, 4)], 0.2)), (3, (vec![(2, 3)], 0.1))].into();
        let logs: BTreeMap<u32, Vec<FenceEntry>> = [(
            1,
            vec![
                FenceEntry { at_ms: 900_000, node: 2, incarnation: 3 },
                FenceEntry { at_ms: 988_000, node: 2, incarnation: 4 },
            ],
        )]
        .into();
        let got = ranked_fence_reports(&records, &logs, now);
        assert_eq!(
            got,
            vec![
                FenceReport {
                    node: 2,
                    by: 1,
                    listed_secs_ago: 0.2,
                    incarnation: Some(4),
                    fenced_secs_ago: Some(12.0)
                },
                FenceReport {
                    node: 2,
                    by: 3,
                    listed_secs_ago: 0.1,
                    incarnation: Some(3),
                    fenced_secs_ago: None
                },
            ]
        );
        let st = ClusterStatus {
            shared: "/mfs".into(),
            timeout_secs: 6.0,
            lease_secs: None,
            hactl_node: None,
            hactl_from: None,
            hactl_version: None,
            hactl_local: None,
            hactl_error: None,
            cltab_local_error: None,
            membership_error: None,
            nodes: vec![],
            groups: vec![],
            fences: got,
            record_errors: vec![],
            standby: vec![],
            transitions_last: None,
            transitions: Vec::new(),
        };
        let text = render(&st);
        assert!(text.contains("node 2 (incarnation 4) fenced by node 1, 12s ago"), "{text}");
        assert!(
            text.contains("node 2 (incarnation 3) fenced by node 3, time not in its fence log"),
            "{text}"
        );
    }

    /// A classic picture of three nodes and two groups.
    fn sample_status() -> ClusterStatus {
        ClusterStatus {
            shared: "/mfs".into(),
            timeout_secs: 60.0,
            lease_secs: None,
            hactl_node: Some(1),
            hactl_from: Some(1),
            hactl_version: None,
            hactl_local: None,
            hactl_error: None,
            cltab_local_error: None,
            membership_error: None,
            nodes: vec![
                NodeReport {
                    node: 1,
                    member: Some(true),
                    clstat: "ok",
                    age_secs: Some(3.0),
                    stale: false,
                    reason: None,
                    quorum: Some(true),
                    fenced_by: vec![],
                    since_change: Some("up".into()),
                    since_secs: Some(185.0),
                    live: None,
                    not_live: None,
                    watchdog: None,
                },
                NodeReport {
                    node: 2,
                    member: Some(true),
                    clstat: "ok",
                    age_secs: Some(75.0),
                    stale: true,
                    reason: None,
                    quorum: Some(true),
                    fenced_by: vec![1],
                    since_change: Some("down".into()),
                    since_secs: Some(40.0),
                    live: None,
                    not_live: None,
                    watchdog: None,
                },
                NodeReport {
                    node: 3,
                    member: Some(false),
                    clstat: "ok",
                    age_secs: Some(300.0),
                    stale: true,
                    reason: None,
                    quorum: Some(true),
                    fenced_by: vec![],
                    since_change: None,
                    since_secs: None,
                    live: None,
                    not_live: None,
                    watchdog: None,
                },
            ],
            groups: vec![
                GroupReport {
                    group: "web".into(),
                    wanted: Some("start".into()),
                    running_on: vec![2],
                    states: [(2, "start DONE".to_string()), (3, "start DONE".to_string())].into(),
                    since_secs: Some(4000.0),
                    moves_last_hour: Some(2),
                },
                GroupReport {
                    group: "db".into(),
                    wanted: Some("start".into()),
                    running_on: vec![],
                    states: [(1, "test FAILED".to_string())].into(),
                    since_secs: None,
                    moves_last_hour: Some(0),
                },
            ],
            fences: vec![FenceReport {
                node: 2,
                by: 1,
                listed_secs_ago: 3.0,
                incarnation: None,
                fenced_secs_ago: None,
            }],
            record_errors: vec![],
            standby: vec![3],
            transitions_last: Some(7),
            transitions: Vec::new(),
        }
    }

    #[test]
    fn renders_nodes_and_groups() {
        let st = sample_status();
        insta::assert_snapshot!(render(&st), @r"
        cluster /mfs (timeout 60s), wanted levels from node 1's hactl

        NODE  MEMBER  SINCE          CLSTAT           QUORUM  NOTES
        1     up      3m05s          3s old           yes
        2     up      down 40s ago?  STALE 75s old    yes     FENCED by 1
        3     down    -              STALE 5m00s old  yes

        last fences (from the hastats; a hastat keeps no fence time):
          node 2 fenced by node 1 (listed in its hastat written 3s ago)

        GROUP  WANTED  RUNNING ON  SINCE   MOVES/1H  NODE 1       NODE 2                   NODE 3
        web    start   2?          66m40s  2         -            stale (last start DONE)  down (was start DONE)
        db     start   NOWHERE     -       0         test FAILED  -                        -
        ");
    }

    /// New-user findings: under `ranked`, a node that is not live showed
    /// QUORUM `yes` (its record's last word), and nothing showed that a
    /// node runs without a watchdog.
    #[test]
    fn a_node_not_live_shows_no_quorum_and_a_node_without_a_watchdog_says_so() {
        let mut st = sample_status();
        st.lease_secs = Some(2.0);
        st.nodes[0].live = Some(true);
        st.nodes[0].watchdog = Some(false);
        st.nodes[1].live = Some(false);
        st.nodes[1].not_live = Some("its lease lapsed".into());
        st.nodes[1].watchdog = Some(true);
        let text = render(&st);
        let row = |n: &str| text.lines().find(|l| l.starts_with(n)).expect("node row").to_string();
        let cells = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let one = row("1 ");
        assert_eq!(cells(&one)[5], "yes", "{text}");
        assert!(
            one.contains("NO WATCHDOG: nothing is taken over from it without a fence"),
            "{text}"
        );
        let two = row("2 ");
        assert!(two.contains("NOT LIVE: its lease lapsed"), "{text}");
        assert!(!two.contains("yes") && !two.contains("WATCHDOG"), "{text}");
    }

    /// A cluster directory with one hactl copy per `(node, bytes)`.
    fn hactl_store(copies: &[(u32, &[u8])]) -> (tempfile::TempDir, crate::shared::FsStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = NodePaths::new(dir.path(), "var/clinit");
        for &(node, bytes) in copies {
            std::fs::create_dir_all(paths.node_dir(node)).expect("mkdir");
            std::fs::write(paths.node_dir(node).join("hactl"), bytes).expect("write");
        }
        let store = crate::shared::FsStore::new(paths);
        (dir, store)
    }

    /// A new user's node 2 had a torn hactl; `mosha status` on it showed
    /// the torn copy's levels. It shows the copy the cluster converges on
    /// (the highest sealed version that parses), names its node and
    /// version, and says what is wrong with the local copy.
    #[test]
    fn status_shows_the_converged_hactl_and_judges_the_local_copy() {
        use clinit_engine::monitor::replica_version::seal;
        let v7 = seal(b"web start\ndb start\n", 7);
        let v5 = seal(b"web stop\n", 5);
        let torn = &v7[..v7.len() - 4];
        let (_dir, store) = hactl_store(&[(1, &v5), (2, torn), (3, &v7)]);
        let all: BTreeSet<u32> = [1, 2, 3].into();
        let pick = pick_hactl(&store, &all, Some(2), HactlRule::Versioned);
        assert_eq!((pick.from, pick.version, pick.error.as_deref()), (Some(3), Some(7), None));
        let wanted = pick.hactl.expect("hactl");
        assert_eq!(wanted.get("db").map(|w| w.level.as_str()), Some("start"));
        let local = pick.local.expect("local");
        assert_eq!(local.state, "truncated");
        assert!(local.broken());
        assert!(local.reason.as_deref().is_some_and(|r| r.contains("of the")), "{local:?}");
        let line = local_hactl_line(&local, Some(3)).expect("said");
        assert!(line.starts_with("local hactl (node 2) is BROKEN: truncated ("), "{line}");
        assert!(line.ends_with("the wanted levels shown are node 3's copy"), "{line}");
        // Node 1's good but older copy is behind; node 3's is the winner.
        let pick = pick_hactl(&store, &all, Some(1), HactlRule::Versioned);
        let local = pick.local.expect("local");
        assert_eq!((local.state, local.version), ("behind", Some(5)));
        assert!(!local.broken());
        let pick = pick_hactl(&store, &all, Some(3), HactlRule::Versioned);
        assert_eq!(pick.local.map(|l| l.state), Some("converged"));
        // A node that membership lists down is not read: node 3's copy
        // does not count, node 1's is in force.
        let up: BTreeSet<u32> = [1, 2].into();
        let pick = pick_hactl(&store, &up, Some(2), HactlRule::Versioned);
        assert_eq!((pick.from, pick.version), (Some(1), Some(5)));
    }

    #[test]
    fn a_local_copy_that_does_not_parse_or_fails_its_checksum_is_broken() {
        use clinit_engine::monitor::replica_version::seal;
        let v4 = seal(b"web start\n", 4);
        let mut kept_line = v4.clone();
        kept_line.extend_from_slice(b"db start\n");
        let (_dir, store) = hactl_store(&[(1, &v4), (2, b"web start 1 2\nweb\n"), (3, &kept_line)]);
        let all: BTreeSet<u32> = [1, 2, 3, 4].into();
        let state = |me| {
            let pick = pick_hactl(&store, &all, Some(me), HactlRule::Versioned);
            assert_eq!(pick.from, Some(1));
            pick.local.expect("local")
        };
        let two = state(2);
        assert_eq!(two.state, "unparsable");
        let reason = two.reason.clone().unwrap_or_default();
        assert!(!reason.contains('\n') && reason.contains("hactl:2"), "{reason}");
        let three = state(3);
        assert_eq!((three.state, three.version), ("checksum_fails", Some(4)));
        assert!(three.broken());
        let four = state(4);
        assert_eq!(four.state, "missing");
        assert_eq!(
            local_hactl_line(&four, Some(1)).as_deref(),
            Some("local hactl (node 4) is MISSING; the wanted levels shown are node 1's copy")
        );
    }

    /// Under `classic` the newest mtime that parses is in force (spec
    /// §5.4), not the local copy.
    #[test]
    fn classic_status_shows_the_newest_copy_that_parses() {
        let (_dir, store) = hactl_store(&[(1, b"web start\n"), (2, b"web stop\n")]);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let path = store.paths.node_dir(1).join("hactl");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
        let all: BTreeSet<u32> = [1, 2].into();
        let pick = pick_hactl(&store, &all, Some(1), HactlRule::Newest);
        assert_eq!((pick.from, pick.version), (Some(2), None));
        assert_eq!(pick.local.map(|l| l.state), Some("behind"));
        let pick = pick_hactl(&store, &all, Some(2), HactlRule::Newest);
        assert_eq!(pick.local.map(|l| l.state), Some("converged"));
    }
}
