//! Named, seeded random streams.
//!
//! Every random draw in the kernel comes from a [`Stream`] derived from
//! `(seed, purpose, index…)`: no global RNG, no clock, no thread identity. Two consequences users
//! rely on:
//! - results do not depend on how instances are spread over threads;
//! - a counterfactual twin built from the same seeds draws the same numbers for the same purpose
//!   (common random numbers), because purposes never share a stream.
//!
//! The generator is PCG-XSH-RR 64/32 (`rand_pcg::Pcg32`); its whole state is two `u64`s, so a
//! stream is `Copy`, snapshots trivially and is stored inline in the struct-of-arrays state.

use rand_core::Rng;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

/// What a stream is for. The discriminant is mixed into the stream's seed, so two purposes never
/// share draws. Never renumber a variant: golden hashes depend on these values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Per instance: yields one seed per episode (instances auto-reset with the next one).
    Episodes = 0x0001,
    /// AH reset: cell shuffle and sensitive-agent draw.
    AhLayout = 0x0A01,
    /// AH spontaneous bush growth: colour and cell tries.
    AhGrowth = 0x0A02,
    /// AH per-agent substitute actions after a failed attempt (indexed by agent).
    AhRetry = 0x0A03,
    /// AH acting order (only when the fixed agent order is switched off).
    AhOrder = 0x0A04,
    /// Uniform random actions used by benches and tests (not used by the kernel itself).
    RandomActions = 0x0F01,
    /// HS patient attributes (impairment, priority, illness) and the day's arrival rates.
    HsPatients = 0x0B01,
    /// HS arrival gaps.
    HsArrivals = 0x0B02,
    /// HS clerk predictions (priority and assistance guesses).
    HsClerks = 0x0B03,
    /// HS arrival templates: the curriculum's pool, a day's choice from it, a fresh template.
    HsTemplates = 0x0B04,
    /// Trainer: initial network parameters (indexed by network).
    TrainInit = 0x0C01,
    /// Trainer: the key of the policy's counter-based action sampling (indexed by network).
    TrainSample = 0x0C02,
    /// Trainer: minibatch shuffling (indexed by network).
    TrainShuffle = 0x0C03,
    /// Trainer: the environment seed of a run (training and evaluation differ by index).
    TrainEnv = 0x0C04,
    /// Trainer: an algorithm's own draws (SOTO's stream choices), indexed by use.
    TrainAlgo = 0x0C05,
}

/// SplitMix64 finaliser: a bijective avalanche on 64 bits, used to derive seeds.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derive a 64-bit seed from a root seed and a path of integers (order matters).
#[inline]
pub fn derive_seed(root: u64, path: &[u64]) -> u64 {
    let mut h = mix64(root ^ 0x6a09_e667_f3bc_c908);
    for &p in path {
        h = mix64(h ^ mix64(p.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    h
}

/// One named random stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    state: u64,
    stream: u64,
}

/// A valid but meaningless stream: the value columns hold before their first reset.
impl Default for Stream {
    fn default() -> Self {
        Stream::new(0, Purpose::Episodes, &[])
    }
}

impl Stream {
    /// The stream for `purpose` at `index` (instance, agent, …) under `seed`.
    pub fn new(seed: u64, purpose: Purpose, index: &[u64]) -> Self {
        let mut path = [0u64; 4];
        assert!(index.len() < path.len(), "stream index path too long");
        path[0] = purpose as u64;
        path[1..=index.len()].copy_from_slice(index);
        let s = derive_seed(seed, &path[..=index.len()]);
        // The PCG increment selects one of 2^63 sequences; derive it independently of the state.
        let pcg = Pcg32::new(s, mix64(s ^ 0xda94_2042_e4dd_58b5));
        Self::from_pcg(&pcg)
    }

    #[inline]
    fn from_pcg(pcg: &Pcg32) -> Self {
        Self {
            state: pcg.state(),
            stream: pcg.stream(),
        }
    }

    #[inline]
    fn with_pcg<T>(&mut self, f: impl FnOnce(&mut Pcg32) -> T) -> T {
        let mut pcg = Pcg32::from_state(self.state, self.stream);
        let out = f(&mut pcg);
        self.state = pcg.state();
        out
    }

    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        self.with_pcg(|p| p.next_u32())
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        (hi << 32) | lo
    }

    /// Uniform integer in `0..n` (Lemire's multiply-and-reject: unbiased, usually one draw).
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        assert!(n > 0, "below(0)");
        let mut m = self.next_u32() as u64 * n as u64;
        let mut low = m as u32;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = self.next_u32() as u64 * n as u64;
                low = m as u32;
            }
        }
        (m >> 32) as u32
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub fn range_inclusive(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi);
        let span = (hi - lo) as u64 + 1;
        assert!(span <= u32::MAX as u64, "range too wide");
        lo + self.below(span as u32) as i64
    }

    /// Uniform `f64` in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform `f64` in `[lo, hi)`.
    #[inline]
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit_f64()
    }

    /// Exponential variate with the given rate (mean `1 / rate`), by inversion.
    #[inline]
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -(1.0 - self.unit_f64()).ln() / rate
    }

    /// Standard normal variate (Box–Muller; one draw pair per call, the sine branch is unused
    /// so that the stream position depends only on the number of calls).
    #[inline]
    pub fn normal(&mut self, mean: f64, std_dev: f64) -> f64 {
        let u1 = 1.0 - self.unit_f64(); // (0, 1]
        let u2 = self.unit_f64();
        mean + std_dev * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle from the back (the draw order of Python's `random.shuffle`).
    #[inline]
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_and_indices_give_distinct_streams() {
        let a = Stream::new(7, Purpose::AhLayout, &[0]).next_u64();
        let b = Stream::new(7, Purpose::AhGrowth, &[0]).next_u64();
        let c = Stream::new(7, Purpose::AhLayout, &[1]).next_u64();
        let d = Stream::new(8, Purpose::AhLayout, &[0]).next_u64();
        assert!(a != b && a != c && a != d && b != c);
        assert_eq!(a, Stream::new(7, Purpose::AhLayout, &[0]).next_u64());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut s = Stream::new(1, Purpose::RandomActions, &[]);
        let mut counts = [0u32; 9];
        for _ in 0..90_000 {
            counts[s.below(9) as usize] += 1;
        }
        for c in counts {
            assert!((9_400..10_600).contains(&c), "counts {counts:?}");
        }
    }

    #[test]
    fn snapshot_by_clone_continues_identically() {
        let mut s = Stream::new(3, Purpose::HsArrivals, &[2]);
        s.next_u32();
        let mut t = s.clone();
        for _ in 0..100 {
            assert_eq!(s.next_u32(), t.next_u32());
        }
    }

    #[test]
    fn unit_and_exponential_have_expected_means() {
        let mut s = Stream::new(5, Purpose::HsArrivals, &[]);
        let n = 200_000;
        let mean_u: f64 = (0..n).map(|_| s.unit_f64()).sum::<f64>() / n as f64;
        let mean_e: f64 = (0..n).map(|_| s.exponential(2.0)).sum::<f64>() / n as f64;
        let mean_n: f64 = (0..n).map(|_| s.normal(3.0, 2.0)).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.005, "{mean_u}");
        assert!((mean_e - 0.5).abs() < 0.01, "{mean_e}");
        assert!((mean_n - 3.0).abs() < 0.02, "{mean_n}");
    }
}
