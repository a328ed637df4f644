//! Decision policies. A policy sees one cycle's [`View`] and the machine's
//! random stream, and answers with actions and how long to sleep.
//!
//! Policies are enum-dispatched ([`AnyPolicy`]) so the machine stays `Clone`
//! and a configuration is plain serde data ([`PolicyConfig`]). Adding a
//! policy means a new module, a variant here and a match arm each in
//! [`AnyPolicy`]; existing policies are not touched.

pub mod classic;

use super::action::Action;
use super::view::View;
use crate::time::Millis;
use classic::{Classic, ClassicParams};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The outcome of one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Time until the next cycle.
    pub sleep: Millis,
}

/// What every policy provides.
pub trait Policy {
    /// Age of a `clstat` beyond which its node is stale.
    fn timeout(&self) -> Millis;
    /// Decide one cycle.
    fn cycle(&mut self, view: &View<'_>, rng: &mut ChaCha8Rng) -> Decision;
}

/// Which policy, with its parameters (e.g. from a simulator scenario:
/// `{"policy": "classic", "timeout": 30000}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum PolicyConfig {
    Classic(ClassicParams),
    /// `ranked` (leases, claims, fencing, a watchdog): not a cycle policy
    /// over a [`View`] but its own machine
    /// ([`crate::monitor::ranked::Ranked`]), hosted by
    /// [`crate::cluster::ClusterDriver`] (`{"policy": "ranked", "lease": 2000}`).
    Ranked(crate::monitor::ranked::RankedParams),
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::Classic(ClassicParams::default())
    }
}

/// A running policy.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyPolicy {
    Classic(Classic),
    /// `ranked` decides in [`crate::monitor::ranked::Ranked`], which the
    /// cluster driver steps instead of a [`super::Monitor`] cycle; as a
    /// cycle policy it only answers its timeout (3·H: a record older than
    /// that on the observer's clock is surely past any lease) and decides
    /// nothing, so a [`super::Monitor`] built for it is inert.
    Ranked(crate::monitor::ranked::RankedParams),
}

impl AnyPolicy {
    pub fn new(config: PolicyConfig) -> AnyPolicy {
        match config {
            PolicyConfig::Classic(params) => AnyPolicy::Classic(Classic::new(params)),
            PolicyConfig::Ranked(params) => AnyPolicy::Ranked(params),
        }
    }
}

impl Policy for AnyPolicy {
    fn timeout(&self) -> Millis {
        match self {
            AnyPolicy::Classic(p) => p.timeout(),
            AnyPolicy::Ranked(p) => Millis(p.lease.0.saturating_mul(3)),
        }
    }

    fn cycle(&mut self, view: &View<'_>, rng: &mut ChaCha8Rng) -> Decision {
        match self {
            AnyPolicy::Classic(p) => p.cycle(view, rng),
            AnyPolicy::Ranked(p) => Decision { actions: Vec::new(), sleep: p.heartbeat },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_tagged_and_partial() {
        let c: PolicyConfig =
            serde_json::from_str(r#"{"policy": "classic", "timeout": 30000}"#).expect("valid");
        let PolicyConfig::Classic(p) = &c else { panic!("classic expected: {c:?}") };
        assert_eq!(p.timeout, Millis::from_secs(30));
        assert_eq!(p.cycletime_secs, 1.0);
        let json = serde_json::to_string(&PolicyConfig::default()).expect("serialises");
        insta::assert_snapshot!(json, @r#"{"policy":"classic","timeout":60000,"cycletime_secs":1.0,"balance":1.5,"quorum_ratio":0.6,"stomith_grace":120000,"backoff_max_secs":10.0,"quorum_loss_sleep":30000}"#);
    }

    #[test]
    fn ranked_is_selectable_by_tag() {
        let c: PolicyConfig =
            serde_json::from_str(r#"{"policy": "ranked", "lease": 3000}"#).expect("valid");
        let PolicyConfig::Ranked(p) = &c else { panic!("ranked expected: {c:?}") };
        assert_eq!(p.lease, Millis(3000));
        assert_eq!(p.heartbeat, Millis(125), "unset fields keep their defaults");
        assert_eq!(AnyPolicy::new(c).timeout(), Millis(9000));
    }
}
