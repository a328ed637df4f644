//! The classic quorum ratchet (spec §5.1).
//!
//! The reference is the member count at the *last successful* check, not a
//! configured cluster size: a drop below `ratio` × reference in one step loses
//! quorum (and the reference stays, so it keeps failing until enough nodes are
//! back), while a gradual decline never does. It starts at 0, so the first
//! check always passes, and lives in memory only. These weaknesses (spec W4)
//! are kept on purpose: `classic` is the baseline to compare against.

use serde::{Deserialize, Serialize};

/// Ratchet state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quorum {
    ratio: f64,
    reference: usize,
}

impl Quorum {
    pub fn new(ratio: f64) -> Quorum {
        Quorum { ratio, reference: 0 }
    }

    /// The count at the last successful check.
    pub fn reference(&self) -> usize {
        self.reference
    }

    /// Check `count` visible nodes; on success the reference becomes `count`.
    pub fn check(&mut self, count: usize) -> bool {
        // Same float expression as the Perl `@node < $q * .6`, so the
        // boundaries (12 of 20, 6 of 10) fall the same way.
        if (count as f64) < (self.reference as f64) * self.ratio {
            return false;
        }
        self.reference = count;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// t/1045quorum.t, all 15 steps: (node range, expected, reference after).
    #[test]
    fn t1045_sequence() {
        let mut q = Quorum::new(0.6);
        assert_eq!(q.reference(), 0); // 1: object created
        let steps: [(std::ops::RangeInclusive<u32>, bool, usize); 14] = [
            (1..=3, true, 3),    // 2
            (1..=10, true, 10),  // 3
            (1..=7, true, 7),    // 4: 7 >= 6
            (1..=6, true, 6),    // 5: 6 >= 4.2
            (1..=10, true, 10),  // 6
            (1..=6, true, 6),    // 7: 6 is not < 6
            (1..=20, true, 20),  // 8
            (1..=11, false, 20), // 9: 11 < 12
            (1..=11, false, 20), // 10
            (1..=12, true, 12),  // 11: boundary
            (1..=11, true, 11),  // 12: 11 >= 7.2
            (1..=3, false, 11),  // 13: 3 < 6.6
            (1..=3, false, 11),  // 14
            (20..=40, true, 21), // 15
        ];
        for (i, (nodes, expect, reference)) in steps.into_iter().enumerate() {
            let count = nodes.count();
            assert_eq!(q.check(count), expect, "step {}", i + 2);
            assert_eq!(q.reference(), reference, "step {}", i + 2);
        }
    }
}
