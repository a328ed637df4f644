//! The membership model: who each node believes is up.
//!
//! The truth is simple (a node is reachable from another when both are up
//! and on the same side of any partition), but no node sees the truth: each
//! has its own view, which follows the truth after a detection delay (a
//! death or a cut is noticed `detect_down + U[0, jitter)` later, a return
//! `detect_up + U[0, jitter)` later) and which can wrongly drop a live node
//! for a while (false suspicion). That gap between truth and views is what
//! the HA layer's decisions run on, so it is modelled per observer.
//!
//! Changes in flight are cancelled by generation: every change of a pair's
//! truth bumps its generation, and a scheduled view change applies only if
//! its generation is still current.

use clinit_engine::time::Millis;

/// A view change the world must schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub at: Millis,
    pub observer: u32,
    pub target: u32,
    pub present: bool,
    pub generation: u32,
}

/// Membership truth and every node's view. Nodes are numbered 1..=n.
#[derive(Debug, Clone)]
pub struct Membership {
    n: usize,
    up: Vec<bool>,
    side: Vec<u8>,
    /// `view[o][t]`: observer o lists target t.
    view: Vec<Vec<bool>>,
    generation: Vec<Vec<u32>>,
}

impl Membership {
    /// `n` nodes, all up, every view complete.
    pub fn new(n: usize) -> Membership {
        Membership {
            n,
            up: vec![true; n + 1],
            side: vec![0; n + 1],
            view: vec![vec![true; n + 1]; n + 1],
            generation: vec![vec![0; n + 1]; n + 1],
        }
    }

    fn nodes(&self) -> impl Iterator<Item = u32> {
        1..=self.n as u32
    }

    pub fn is_up(&self, node: u32) -> bool {
        self.up[node as usize]
    }

    /// `a` can reach `b`'s files (and `b` is really there).
    pub fn reachable(&self, a: u32, b: u32) -> bool {
        self.up[b as usize] && self.side[a as usize] == self.side[b as usize]
    }

    /// `a` and `b` are on the same side of any partition (files of a dead
    /// node on the same side stay readable).
    pub fn same_side(&self, a: u32, b: u32) -> bool {
        self.side[a as usize] == self.side[b as usize]
    }

    /// Truth as `observer` should eventually see it.
    fn truth(&self, observer: u32, target: u32) -> bool {
        observer == target || self.reachable(observer, target)
    }

    pub fn lists(&self, observer: u32, target: u32) -> bool {
        self.view[observer as usize][target as usize]
    }

    /// The members `observer` believes in, ascending (itself included when
    /// its own view lists it, which it always does here).
    pub fn members(&self, observer: u32, out: &mut Vec<u32>) {
        out.clear();
        let row = &self.view[observer as usize];
        out.extend(self.nodes().filter(|&t| row[t as usize]));
    }

    /// Nodes in `observer`'s view.
    pub fn view_size(&self, observer: u32) -> usize {
        self.view[observer as usize][1..].iter().filter(|&&b| b).count()
    }

    /// Run `change` on the truth, then return the view changes it implies
    /// for every live observer, each `delay(present)` from now.
    fn retruth(
        &mut self,
        now: Millis,
        change: impl FnOnce(&mut Membership),
        mut delay: impl FnMut(bool) -> Millis,
    ) -> Vec<Pending> {
        let before: Vec<Vec<bool>> =
            self.nodes().map(|o| self.nodes().map(|t| self.truth(o, t)).collect()).collect();
        change(self);
        let mut out = Vec::new();
        for o in self.nodes() {
            if !self.up[o as usize] {
                continue;
            }
            for t in self.nodes() {
                let now_true = self.truth(o, t);
                if now_true == before[o as usize - 1][t as usize - 1] {
                    continue;
                }
                let g = &mut self.generation[o as usize][t as usize];
                *g += 1;
                let generation = *g;
                out.push(Pending {
                    at: now + delay(now_true),
                    observer: o,
                    target: t,
                    present: now_true,
                    generation,
                });
            }
        }
        out
    }

    /// `node` died.
    pub fn crash(
        &mut self,
        now: Millis,
        node: u32,
        delay: impl FnMut(bool) -> Millis,
    ) -> Vec<Pending> {
        self.retruth(now, |m| m.up[node as usize] = false, delay)
    }

    /// `node` came back: its own view is the truth at once (it asks at
    /// boot); the others learn after their delay.
    pub fn restart(
        &mut self,
        now: Millis,
        node: u32,
        delay: impl FnMut(bool) -> Millis,
    ) -> Vec<Pending> {
        let out = self.retruth(now, |m| m.up[node as usize] = true, delay);
        let out: Vec<Pending> = out.into_iter().filter(|p| p.observer != node).collect();
        for t in 1..=self.n as u32 {
            let truth = self.truth(node, t);
            self.view[node as usize][t as usize] = truth;
            self.generation[node as usize][t as usize] += 1;
        }
        out
    }

    /// Split into sides (`side[node]`, index 0 unused); all 0 heals.
    pub fn partition(
        &mut self,
        now: Millis,
        sides: &[u8],
        delay: impl FnMut(bool) -> Millis,
    ) -> Vec<Pending> {
        let sides = sides.to_vec();
        self.retruth(
            now,
            |m| {
                for (i, s) in sides.iter().enumerate().skip(1).take(m.n) {
                    m.side[i] = *s;
                }
            },
            delay,
        )
    }

    /// `observer` wrongly drops `target` until `until` (only if it lists a
    /// reachable target now). Returns the re-listing to schedule.
    pub fn suspect(&mut self, observer: u32, target: u32, until: Millis) -> Option<Pending> {
        if observer == target
            || !self.up[observer as usize]
            || !self.reachable(observer, target)
            || !self.lists(observer, target)
        {
            return None;
        }
        self.view[observer as usize][target as usize] = false;
        let g = &mut self.generation[observer as usize][target as usize];
        *g += 1;
        Some(Pending { at: until, observer, target, present: true, generation: *g })
    }

    /// A scheduled change fires. Returns whether the view changed.
    pub fn apply(&mut self, p: &Pending) -> bool {
        let (o, t) = (p.observer as usize, p.target as usize);
        if self.generation[o][t] != p.generation || !self.up[o] || self.view[o][t] == p.present {
            return false;
        }
        self.view[o][t] = p.present;
        true
    }

    /// Side of each node (index 0 unused).
    pub fn sides(&self) -> &[u8] {
        &self.side
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_is_seen_after_the_delay_and_a_return_cancels_it() {
        let mut m = Membership::new(3);
        let p = m.crash(Millis(0), 3, |_| Millis(1000));
        assert_eq!(p.len(), 2, "nodes 1 and 2 learn");
        assert!(m.lists(1, 3), "not yet");
        let back = m.restart(Millis(500), 3, |_| Millis(1000));
        assert!(!m.apply(&p[0]), "superseded by the restart");
        assert!(back.iter().all(|b| b.present));
        let mut members = Vec::new();
        m.members(3, &mut members);
        assert_eq!(members, vec![1, 2, 3]);
    }

    #[test]
    fn partitions_and_suspicion() {
        let mut m = Membership::new(4);
        let p = m.partition(Millis(0), &[0, 0, 0, 1, 1], |_| Millis(10));
        assert_eq!(p.len(), 8); // 4 observers × 2 nodes across
        for x in &p {
            m.apply(x);
        }
        let mut members = Vec::new();
        m.members(1, &mut members);
        assert_eq!(members, vec![1, 2]);
        assert!(m.suspect(1, 3, Millis(50)).is_none(), "not reachable");
        let back = m.suspect(1, 2, Millis(50)).expect("suspected");
        assert!(!m.lists(1, 2));
        assert!(m.apply(&back));
        assert!(m.lists(1, 2));
    }
}
