//! The cluster layer's HA machine (`mosha`), pure.
//!
//! Each cycle the driver learns membership, reads every member's `clstat`,
//! replicates and parses `hactl` (see [`replicate`]), and feeds the result to
//! [`Monitor::step`] as an [`Observation`]. The machine answers with
//! [`Action`]s (tell the local init machine, fence, write hastat, halt all)
//! and the time of its next cycle. It reads no clock and owns its random
//! stream, seeded by the caller: the same seed and observations give the
//! same actions.
//!
//! Pieces, one job each: [`view`] turns an observation into the consolidated
//! view (remembering last good clstats and stale episodes), [`metrics`] and
//! `quorum` are the original's helpers, [`policy`] decides.

pub(crate) mod action;
pub mod metrics;
pub mod policy;
pub(crate) mod quorum;
pub mod ranked;
pub mod replica_edit;
pub mod replica_version;
pub mod replicate;
pub mod transitions;
pub mod view;

#[cfg(test)]
pub(crate) mod fixtures;

pub use action::{Action, Notice};
pub use policy::classic::{Classic, ClassicParams};
pub use policy::{AnyPolicy, Policy, PolicyConfig};
pub use view::{is_stale, NodeStatus, Observation};

use crate::status::ClStat;
use crate::time::Millis;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use view::ViewMemory;

/// The answer to one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub actions: Vec<Action>,
    /// When to run the next cycle.
    pub next_wakeup: Millis,
}

/// The HA monitor of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    policy: AnyPolicy,
    rng: ChaCha8Rng,
    memory: ViewMemory,
    started: Millis,
    next_wakeup: Millis,
}

impl Monitor {
    /// A monitor started at `start`, drawing randomness from `seed`.
    pub fn new(config: PolicyConfig, seed: u64, start: Millis) -> Monitor {
        Monitor::with_rng(config, ChaCha8Rng::seed_from_u64(seed), start)
    }

    pub fn with_rng(config: PolicyConfig, rng: ChaCha8Rng, start: Millis) -> Monitor {
        Monitor {
            policy: AnyPolicy::new(config),
            rng,
            memory: ViewMemory::default(),
            started: start,
            next_wakeup: start,
        }
    }

    /// Run one cycle.
    pub fn step(&mut self, obs: &Observation) -> Step {
        self.step_with_own(obs, None)
    }

    /// Run one cycle in which this node (`obs.me`) is a member with status
    /// `own`, whatever `obs` says of it: a node's view of itself comes from
    /// its own init machine. Saves copying the observation to say so.
    pub fn step_with_own(&mut self, obs: &Observation, own: Option<&ClStat>) -> Step {
        let timeout = self.policy.timeout();
        let (view, events) = self.memory.observe(obs, own, timeout, self.started);
        let decision = self.policy.cycle(&view, &mut self.rng);
        let mut actions: Vec<Action> = events.into_iter().map(Action::Log).collect();
        for action in &decision.actions {
            if let Action::Fence { node } = action {
                self.memory.mark_fenced(*node);
            }
        }
        actions.extend(decision.actions);
        self.next_wakeup = obs.now + decision.sleep;
        Step { actions, next_wakeup: self.next_wakeup }
    }

    /// When the next cycle is due (`start` before the first one).
    pub fn next_wakeup(&self) -> Millis {
        self.next_wakeup
    }

    pub fn policy(&self) -> &AnyPolicy {
        &self.policy
    }
}
