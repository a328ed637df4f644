//! Everything random in a run comes from its one seed, split into
//! independent streams (one per concern, one per node incarnation), so that
//! changing how much one part draws (e.g. removing a fault while shrinking)
//! does not reshuffle the others.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The streams of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    Workload = 1,
    Faults = 2,
    Fs = 3,
    Membership = 4,
    Boot = 5,
    Processes = 6,
    Monitor = 7,
    /// Run-time draws of fault episodes (fence and membership failures).
    Chance = 8,
    /// Per node incarnation: status write failures.
    Store = 9,
    /// Per node incarnation: how long its membership hooks run.
    Hooks = 10,
}

/// splitmix64: a cheap, well-mixed derivation of sub-seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A sub-seed for `(stream, a, b)`.
pub fn derive(seed: u64, stream: Stream, a: u64, b: u64) -> u64 {
    mix(mix(mix(seed ^ mix(stream as u64)) ^ a) ^ b.rotate_left(32))
}

/// The generator of one stream.
pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream as u64);
    r
}

/// The generator of one node incarnation's stream.
pub fn node_rng(seed: u64, stream: Stream, node: u32, incarnation: u32) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, stream, u64::from(node), u64::from(incarnation)))
}
