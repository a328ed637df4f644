//! The mutations ("havoc", as AFL calls its random stage) and a small
//! seeded random number generator (SplitMix64: the harness must be
//! reproducible from its seed, and needs nothing stronger).

/// SplitMix64 (Steele, Lea, Flood 2014): one `u64` of state, full period.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; 0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes that parsers of line-oriented and JSON formats treat specially.
const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\n",
    b"\r",
    b"\r\n",
    b":",
    b"#",
    b" ",
    b"\t",
    b"\x7f",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"-1",
    b"0",
    b"18446744073709551616",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"\x1b[2J",
];

/// Apply 1–8 random mutations to `input`, keeping it at most `max` bytes.
/// `pool` provides splice material, `dict` the target's own tokens.
pub fn havoc(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]], max: usize) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        match rng.below(11) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next_u64() as u8;
            }
            2 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                insert(rng, input, token);
            }
            3 if !dict.is_empty() => {
                let token = dict[rng.below(dict.len())];
                insert(rng, input, token);
            }
            4 if !input.is_empty() => {
                // Delete a range, short ones more often.
                let start = rng.below(input.len());
                let most = 1 + rng.below(64);
                let len = 1 + rng.below((input.len() - start).min(most));
                input.drain(start..start + len);
            }
            5 if !input.is_empty() => {
                // Duplicate a range in place.
                let start = rng.below(input.len());
                let len = 1 + rng.below((input.len() - start).min(256));
                let chunk = input[start..start + len].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            6 if !pool.is_empty() => {
                // Splice: a piece of another input.
                let other = &pool[rng.below(pool.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let len = 1 + rng.below(other.len() - start);
                    let at = rng.below(input.len() + 1);
                    input.splice(at..at, other[start..start + len].iter().copied());
                }
            }
            7 if !input.is_empty() => {
                let at = rng.below(input.len());
                input.truncate(at);
            }
            8 if !input.is_empty() => {
                // Repeat one line many times (long files, duplicate keys).
                let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
                let line = lines[rng.below(lines.len())].to_vec();
                for _ in 0..1 + rng.below(16) {
                    input.extend_from_slice(&line);
                    input.push(b'\n');
                }
            }
            9 if !input.is_empty() => {
                // Swap two bytes.
                let (a, b) = (rng.below(input.len()), rng.below(input.len()));
                input.swap(a, b);
            }
            _ => {
                // A long run of one byte (over-long fields).
                let byte = [b'a', b' ', b':', b'0', b'\n', 0][rng.below(6)];
                let at = rng.below(input.len() + 1);
                let n = 1 + rng.below(4096);
                input.splice(at..at, std::iter::repeat_n(byte, n));
            }
        }
        input.truncate(max);
    }
}

fn insert(rng: &mut Rng, input: &mut Vec<u8>, token: &[u8]) {
    let at = rng.below(input.len() + 1);
    input.splice(at..at, token.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let pool = vec![b"g:a:1:once:true\n".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            for _ in 0..100 {
                let mut input = pool[0].clone();
                havoc(&mut rng, &mut input, &pool, &[b"respawn"], 1024);
                out.push(input);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().all(|i| i.len() <= 1024));
    }
}
