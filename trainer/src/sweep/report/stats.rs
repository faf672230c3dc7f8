//! The report's statistics over seeds, after rliable (Agarwal et al. 2021): means and
//! interquartile means with stratified-bootstrap intervals, the probability of improvement, and
//! a paired bootstrap for the price of fairness. Every resample is drawn from a fixed stream, so
//! a report is the same on every machine.

use fairground_kernel::rng::{Purpose, Stream};

/// Resamples of every bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A point estimate and its 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

fn stream(tag: u64, sizes: &[usize]) -> Stream {
    let mut key = vec![tag];
    key.extend(sizes.iter().map(|&n| n as u64));
    Stream::new(0x5245_504f_5254, Purpose::TrainAlgo, &key)
}

/// The 2.5 % and 97.5 % points of sorted `v` (nearest rank).
fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round()) as usize];
    (at(0.025), at(0.975))
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The interquartile mean: the mean of the middle half, dropping ⌊n/4⌋ values at each end
/// (scipy's `trim_mean(x, 0.25)`, rliable's IQM). Meaningful from 4 values; below that it is
/// the mean.
pub fn iqm(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let cut = s.len() / 4;
    mean(&s[cut..s.len() - cut])
}

/// The fewest seeds for which the report shows an interquartile mean (below it the IQM drops
/// nothing and is the mean).
pub const IQM_MIN: usize = 4;

/// `statistic` of the strata and its 95 % stratified-bootstrap interval: each resample draws
/// every stratum's values with replacement from that stratum alone (rliable's
/// `StratifiedBootstrap`: runs are resampled within their task, never across). One stratum is
/// the ordinary percentile bootstrap. None if a stratum is empty.
pub fn stratified(
    tag: u64,
    strata: &[&[f64]],
    statistic: &dyn Fn(&[&[f64]]) -> f64,
) -> Option<Estimate> {
    if strata.is_empty() || strata.iter().any(|s| s.is_empty()) {
        return None;
    }
    let sizes: Vec<usize> = strata.iter().map(|s| s.len()).collect();
    let mut rng = stream(tag, &sizes);
    let mut buf: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
    let stats: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for (b, s) in buf.iter_mut().zip(strata) {
                for x in b.iter_mut() {
                    *x = s[rng.below(s.len() as u32) as usize];
                }
            }
            let views: Vec<&[f64]> = buf.iter().map(Vec::as_slice).collect();
            statistic(&views)
        })
        .collect();
    let (lo, hi) = percentiles(stats);
    Some(Estimate {
        value: statistic(strata),
        lo,
        hi,
    })
}

/// Tags of the report's bootstrap streams (one per statistic, so that adding one never moves
/// another's numbers).
pub mod tag {
    pub const MEAN: u64 = 1;
    pub const IQM: u64 = 2;
    pub const IMPROVEMENT: u64 = 3;
    pub const PRICE: u64 = 4;
}

/// Mean of `v` with its bootstrap interval.
pub fn mean_ci(v: &[f64]) -> Option<Estimate> {
    stratified(tag::MEAN, &[v], &|s| mean(s[0]))
}

/// Interquartile mean of `v` with its bootstrap interval.
pub fn iqm_ci(v: &[f64]) -> Option<Estimate> {
    stratified(tag::IQM, &[v], &|s| iqm(s[0]))
}

/// P(X > Y): the chance that a run of X beats a run of Y, over every pair, ties counting a
/// half (rliable's `probability_of_improvement`, the Mann-Whitney U statistic over n·m).
pub fn p_improvement(x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    for &a in x {
        for &b in y {
            s += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    s / (x.len() * y.len()) as f64
}

/// P(X > Y) with an interval from resampling X and Y independently (two strata).
pub fn p_improvement_ci(x: &[f64], y: &[f64]) -> Option<Estimate> {
    stratified(tag::IMPROVEMENT, &[x, y], &|s| p_improvement(s[0], s[1]))
}

/// Price of fairness in percent: how much reward `fair` gives up against `base`,
/// 100·(mean base − mean fair)/mean base, over seed-paired values (`pairs[k]` = (fair, base)
/// of one seed), with a paired bootstrap interval (seeds resampled together, so the
/// seed-to-seed variation both share cancels). None without pairs or with a zero base mean.
pub fn price_of_fairness(pairs: &[(f64, f64)]) -> Option<Estimate> {
    let price = |p: &[(f64, f64)]| {
        let f: f64 = p.iter().map(|x| x.0).sum();
        let b: f64 = p.iter().map(|x| x.1).sum();
        100.0 * (b - f) / b
    };
    let b: f64 = pairs.iter().map(|x| x.1).sum();
    if pairs.is_empty() || b == 0.0 {
        return None;
    }
    let mut rng = stream(tag::PRICE, &[pairs.len()]);
    let mut buf = pairs.to_vec();
    let stats: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for x in buf.iter_mut() {
                *x = pairs[rng.below(pairs.len() as u32) as usize];
            }
            price(&buf)
        })
        .filter(|p| p.is_finite())
        .collect();
    let (lo, hi) = percentiles(stats);
    Some(Estimate {
        value: price(pairs),
        lo,
        hi,
    })
}

/// Most pairs [`sign_flip_p`] enumerates (2^n sign patterns).
pub const SIGN_FLIP_MAX: usize = 22;

/// The exact one-sided paired sign-flip test of "the differences are below zero": under the
/// null each seed's difference `d_i` is as likely `+|d_i|` as `-|d_i|`, and the p-value is the
/// fraction of the 2^n sign patterns whose sum is at most the observed sum (the observed
/// pattern included, so p ≥ 2^-n). Sums are compared with a relative tolerance of 1e-12 so
/// patterns equal to the observed one up to rounding count as ties. None without pairs or
/// beyond [`SIGN_FLIP_MAX`] pairs.
pub fn sign_flip_p(diffs: &[f64]) -> Option<f64> {
    let n = diffs.len();
    if n == 0 || n > SIGN_FLIP_MAX {
        return None;
    }
    let observed: f64 = diffs.iter().sum();
    let scale: f64 = diffs.iter().map(|d| d.abs()).sum();
    let bound = observed + 1e-12 * scale.max(f64::MIN_POSITIVE);
    let abs: Vec<f64> = diffs.iter().map(|d| d.abs()).collect();
    let mut at_most = 0u64;
    for mask in 0u64..(1 << n) {
        let sum: f64 = abs
            .iter()
            .enumerate()
            .map(|(i, &a)| if mask >> i & 1 == 1 { -a } else { a })
            .sum();
        if sum <= bound {
            at_most += 1;
        }
    }
    Some(at_most as f64 / (1u64 << n) as f64)
}

#[cfg(test)]
mod tests {
    //! Hand values of every statistic.
    use super::*;

    #[test]
    fn iqm_drops_a_quarter_at_each_end() {
        assert_eq!(iqm(&[100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -100.0]), 3.5);
        assert_eq!(iqm(&[1.0, 2.0, 9.0]), 4.0, "below 4 values: the mean");
        assert_eq!(iqm(&[1.0, 2.0, 3.0, 40.0]), 2.5);
    }

    #[test]
    fn improvement_counts_pairs_and_half_ties() {
        assert_eq!(p_improvement(&[3.0, 1.0], &[2.0, 2.0]), 0.5);
        assert_eq!(p_improvement(&[3.0], &[1.0, 2.0, 3.0]), 2.5 / 3.0);
        assert_eq!(p_improvement(&[0.0], &[1.0]), 0.0);
    }

    #[test]
    fn price_is_the_reward_given_up_in_percent() {
        let e = price_of_fairness(&[(0.9, 1.0), (1.8, 2.0)]).unwrap();
        assert!((e.value - 10.0).abs() < 1e-12);
        // Every seed pays exactly 10 %: every resample agrees.
        assert!(
            (e.lo - 10.0).abs() < 1e-9 && (e.hi - 10.0).abs() < 1e-9,
            "{e:?}"
        );
        assert_eq!(price_of_fairness(&[]), None);
    }

    #[test]
    fn sign_flip_counts_patterns_at_most_the_observed_sum() {
        // All three below zero: only the observed pattern is as low, p = 1/8.
        assert_eq!(sign_flip_p(&[-1.0, -2.0, -3.0]), Some(0.125));
        // All above zero: every pattern is at most the observed sum.
        assert_eq!(sign_flip_p(&[1.0, 2.0, 3.0]), Some(1.0));
        // [-3, 1]: sums of (±3, ±1) are 4, 2, -2, -4; at most -2: two of four.
        assert_eq!(sign_flip_p(&[-3.0, 1.0]), Some(0.5));
        // Ties: |d| equal, observed sum 0 ([-1, 1]): patterns with sums -2, 0, 0 count.
        assert_eq!(sign_flip_p(&[-1.0, 1.0]), Some(0.75));
        // A zero difference has both signs equal: it doubles every count.
        assert_eq!(sign_flip_p(&[-1.0, 0.0]), Some(0.5));
        assert_eq!(sign_flip_p(&[]), None);
        assert_eq!(sign_flip_p(&[-1.0; SIGN_FLIP_MAX + 1]), None);
    }

    #[test]
    fn intervals_hold_the_estimate_and_repeat() {
        let v = [1.0, 4.0, 2.0, 8.0, 5.0];
        let a = mean_ci(&v).unwrap();
        assert_eq!(a.value, 4.0);
        assert!(a.lo <= 4.0 && 4.0 <= a.hi && a.lo >= 1.0 && a.hi <= 8.0 && a.lo < a.hi);
        assert_eq!(mean_ci(&v), Some(a));
        let one = mean_ci(&[2.5]).unwrap();
        assert_eq!((one.lo, one.hi), (2.5, 2.5));
        let p = p_improvement_ci(&[3.0, 4.0, 5.0], &[1.0, 2.0, 3.5]).unwrap();
        assert!(p.lo <= p.value && p.value <= p.hi && p.hi <= 1.0);
        assert_eq!(mean_ci(&[]), None);
    }
}
