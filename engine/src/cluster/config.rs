//! How a node's cluster driver is set up, and the pure judgements that
//! backends and tools share with it (heartbeat freshness, reading a
//! clstat, reading a replicated file).

use super::*;

/// Shortest pause between two monitor cycles. The classic policy truncates
/// its cycle time to whole seconds and could ask for 0 (spec W16); a loop
/// of shared-filesystem reads with no pause would only load the cluster.
pub const MIN_CYCLE: Millis = Millis(200);

/// A third of the timeout, between 1 and 10 seconds: the default read
/// deadline (a dead shared mount costs one "unreadable", never a stall).
pub fn default_read_timeout(timeout: Millis) -> Millis {
    Millis((timeout.0 / 3).clamp(1_000, 10_000))
}

/// Heartbeat-file membership: the nodes whose heartbeat, read at
/// `read_at` (the reader's wall clock), is no older than `timeout` (ms).
/// An unreadable or missing heartbeat means "not up". Ages compare the
/// reader's clock with the writer's mtime, so clock skew between nodes eats
/// into the margin (spec W11).
pub fn fresh_heartbeats(read_at: WallMs, beats: &[(u32, FileRead)], timeout: Millis) -> Vec<u32> {
    beats
        .iter()
        .filter_map(|(node, read)| match read {
            Ok(Some(v)) if read_at.since(v.mtime) <= timeout => Some(*node),
            _ => None,
        })
        .collect()
}

/// How the driver judges one read of another node's `clstat` (with no
/// cache): missing → [`NodeStatus::Missing`]; unreadable, not UTF-8 or with
/// a line that is not a status line → [`NodeStatus::Unreadable`] naming
/// `file:line` ("unknown", never "runs nothing", spec W3); else its groups
/// and its age, `read_at − mtime` (zero for a file from the future).
pub fn judge_clstat(node: u32, read_at: WallMs, report: FileReport) -> NodeStatus {
    let mut cache = ClstatCache::new();
    cycle::clstat_status(node, read_at, &report.path, report.read, &mut cache)
}

/// How the driver turns one read of a replicated file into a copy
/// (parsed, or the cached parse when the content is unchanged).
pub fn judge_copy<T: Replicated>(
    node: u32,
    report: FileReport,
    replica: &Replica<T>,
) -> crate::monitor::replicate::CopyRead<T> {
    cycle::copy_read(node, &report.path, report.read, replica)
}

/// Where membership comes from, as far as the driver is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipSource {
    /// The executor's source answers with a member list (openMosix
    /// `/proc/hpc`, a simulator's oracle).
    External,
    /// Heartbeat files under the shared directory: the driver commands this
    /// node's heartbeat every [`heartbeat_for`] the timeout, and counts a
    /// node up while its heartbeat is no older than the timeout (ages
    /// compare the reader's clock with the writer's mtime: clock skew eats
    /// into the margin, spec W11).
    HeartbeatFiles,
}

/// How one node's driver is set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// This node.
    pub me: u32,
    /// The policy; its timeout is the staleness limit (ms) and sets the
    /// clstat and heartbeat periods (a third of it).
    pub policy: PolicyConfig,
    /// Seed of the monitor's random stream.
    pub seed: u64,
    /// Init machine tunables (the heartbeat is shortened to fit the timeout).
    pub init: InitConfig,
    pub membership: MembershipSource,
    /// Deadline of one read (membership, or one node's files) and of one
    /// copy, in ms.
    pub read_timeout: Millis,
    /// On [`ClusterInput::Stop`], how long to wait for the local groups to
    /// stop before halting them anyway (ms).
    pub shutdown_wait: Millis,
    /// Shortest pause between cycles (ms), [`MIN_CYCLE`] by default.
    pub min_cycle: Millis,
    /// Queue a trace of every call into the node's machines and the text of
    /// what it decided ([`ClusterDriver::poll_trace`]), for `mosha
    /// --record` and the simulator's replay.
    #[serde(default)]
    pub trace: bool,
    /// `ranked` only: the initial known membership (replicated
    /// configuration; a durable state from a previous run overrides it).
    /// Empty: this node alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<u32>,
}

impl ClusterConfig {
    /// Node `me` under `policy`, with the original's defaults for the rest.
    pub fn new(me: u32, policy: PolicyConfig) -> Self {
        let timeout = crate::monitor::AnyPolicy::new(policy.clone()).timeout();
        ClusterConfig {
            me,
            policy,
            seed: 0,
            init: InitConfig::default(),
            membership: MembershipSource::External,
            read_timeout: default_read_timeout(timeout),
            shutdown_wait: Millis::from_secs(120),
            min_cycle: MIN_CYCLE,
            trace: false,
            known: Vec::new(),
        }
        .with_policy_defaults()
    }

    /// Under `ranked`, the read deadline is the policy's (≤ H/4: a read
    /// that takes longer is "unknown" for that cycle, and no cycle waits
    /// for every node); classic keeps a third of its timeout.
    fn with_policy_defaults(mut self) -> Self {
        if let PolicyConfig::Ranked(p) = &self.policy {
            self.read_timeout = p.read_deadline;
        }
        self
    }

    /// The staleness timeout of the policy (ms).
    pub fn timeout(&self) -> Millis {
        crate::monitor::AnyPolicy::new(self.policy.clone()).timeout()
    }
}
