//! The fuzz targets' assertions on every normal test run, without a fuzzer: each seed input in
//! `fuzz/seeds/TARGET/` (hand-written cases, and every input a fuzzing run ever failed on, kept
//! there) and a fixed set of seeded mutations of them. Coverage-guided fuzzing is
//! `tests/run.sh --extended` (cargo-fuzz); this keeps what it found fixed.

use std::path::PathBuf;

use crate::oracles;

/// xorshift64*: a fixed sequence, so a failure here fails the same way on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte strings that matter to the parsers: JSON and Socket.IO punctuation, TOML syntax, multi-byte
/// characters cut in half, deep nesting.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"42",
    b"/ns,",
    b"451-",
    b"\\u0000",
    b"\\ud800",
    b"liyu_override",
    b"true",
    b"=",
    b"\n",
    b"[[rule]]",
    b"[[messages]]",
    b"[proxy]",
    b"'''",
    b"\xe6\x9c",
    b"\xff",
    b"\xf0\x9f\x98",
    "有牌子".as_bytes(),
    "下班了".as_bytes(),
    b"13812345678",
    b"[[[[[[[[[[[[[[[[",
    b"near = [",
    b"patterns = ['(",
    b"{0,99999}",
];

fn mutate(rng: &mut Rng, seed: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, t.iter().copied());
            }
            2 => data.truncate(at),
            3 if !data.is_empty() => {
                let end = (at + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            4 => {
                // A piece of another seed.
                let other = &pool[rng.below(pool.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(256)).min(other.len());
                data.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let end = (at + rng.below(32)).min(data.len());
                let copy = data[at..end].to_vec();
                data.splice(at..at, copy);
            }
        }
    }
    data
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(seeds.len() >= 5, "{} has too few seeds", dir.display());
    seeds
}

/// Runs `oracle` on every seed of `target` and on `per_seed` mutations of each.
fn replay(target: &str, per_seed: usize, oracle: fn(&[u8])) {
    let pool = seeds(target);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for seed in &pool {
        oracle(seed);
        for _ in 0..per_seed {
            oracle(&mutate(&mut rng, seed, &pool));
        }
    }
}

#[test]
fn checker_target_seeds_and_mutations() {
    replay("checker", 200, oracles::checker);
}

#[test]
fn codec_target_seeds_and_mutations() {
    replay("codec", 400, oracles::codec);
}

#[test]
fn config_target_seeds_and_mutations() {
    replay("config", 300, oracles::config);
}

#[test]
fn lexicon_target_seeds_and_mutations() {
    // Each input that loads builds a checker (milliseconds): fewer mutations.
    replay("lexicon", 15, oracles::lexicon);
}
