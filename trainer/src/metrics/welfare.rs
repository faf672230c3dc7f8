//! Fairness and welfare metrics over a utility vector (`metrics-spec.md`, "Welfare and
//! inequality"): AH's 40 player returns, AH's group totals [NSr, NSb, Sr, Sb], HS patient groups.
//!
//! One domain rule throughout: the inequality indices (Gini, Jain, CV) and Nash welfare are
//! defined by their authors on non-negative allocations, so a negative entry gives `None` rather
//! than a number outside the index's range. GGF is defined for any reals, which is why the
//! baselines spec picks it for HS's possibly negative ledgers (`baselines-spec.md` A5.7).

use serde::Serialize;

/// α of the α-fair welfare in [`welfare`]: the recommended metric set's α-fair(0.9)
/// (`metrics-spec.md`), also SOTO's `alpha_fairness = 0.9` (`DFRL/common/utils.py`).
pub const DEFAULT_ALPHA: f64 = 0.9;
/// Base b of the GGF weights in [`welfare`]: the recommended GGF(b = 2) (`metrics-spec.md`),
/// SOTO's `ggi_constant = 2` (`baselines-spec.md` A2.1, A5.1).
pub const DEFAULT_GGF_BASE: f64 = 2.0;
/// The seed's shift before its NNSW ratio (`seed-implementation-spec.md` §6).
pub const NNSW_EPS: f64 = 1e-10;

fn has_negative(x: &[f64]) -> bool {
    x.iter().any(|&v| v < 0.0)
}

fn sorted(x: &[f64]) -> Vec<f64> {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Gini coefficient `G = 2 Σ_i i·u_(i) / (n Σu) − (n + 1)/n`, u sorted ascending, i from 1: the
/// sorted form of the mean absolute difference `Σ_ij |u_i − u_j| / (2n²ū)` (`metrics-spec.md`;
/// the seed's definition, `seed-implementation-spec.md` §6). `Some(0.0)` when Σu = 0 (all zero or
/// empty), as the seed does. `None` if any u < 0: the formula then leaves [0, 1] (and flips sign
/// for a negative mean). Summation order matches the former `run.rs` code bit for bit (sum after
/// sorting), since a pinned snapshot depends on it.
pub fn gini(x: &[f64]) -> Option<f64> {
    if has_negative(x) {
        return None;
    }
    let x = sorted(x);
    let sum: f64 = x.iter().sum();
    if sum == 0.0 {
        return Some(0.0);
    }
    let n = x.len() as f64;
    let ranked: f64 = x
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 + 1.0) * v)
        .sum();
    Some(2.0 * ranked / (n * sum) - (n + 1.0) / n)
}

/// Jain's index `J = (Σu)² / (n Σu²)`, in [1/n, 1] (`metrics-spec.md`; seed §6). `Some(0.0)` when
/// Σu² = 0 (all zero or empty), as the seed does. `None` if any u < 0: mixed signs cancel in Σu,
/// so the value no longer measures equality. Expression order is the former `run.rs` one.
pub fn jain(x: &[f64]) -> Option<f64> {
    if has_negative(x) {
        return None;
    }
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v.powi(2)).sum();
    let n = x.len() as f64;
    Some(if sq == 0.0 { 0.0 } else { sum * sum / (n * sq) })
}

/// Nash social welfare as the geometric mean `(Π u_i)^(1/n)`, computed as `exp(mean ln u)` so 40
/// returns cannot overflow the product. The spec's other form, `Σ log u` (`metrics-spec.md`), is
/// `n·ln(nsw)` = [`alpha_fair`] at α = 1. `Some(0.0)` if some u = 0 (the product is 0); `None` if
/// empty or any u < 0 (the root of a signed product is not a welfare).
pub fn nash_welfare(x: &[f64]) -> Option<f64> {
    if x.is_empty() || has_negative(x) {
        return None;
    }
    let mean_log = x.iter().map(|v| v.ln()).sum::<f64>() / x.len() as f64;
    Some(mean_log.exp())
}

/// Normalised Nash social welfare, the seed's: add [`NNSW_EPS`] to every entry, then geometric
/// mean / arithmetic mean (`metrics-spec.md`; seed §6). In (0, 1] by AM–GM, 1 iff all equal; the
/// shift keeps it finite with zero entries (all zero gives ≈ 1). `None` if empty or any u < 0.
pub fn nnsw(x: &[f64]) -> Option<f64> {
    if x.is_empty() || has_negative(x) {
        return None;
    }
    let shifted: Vec<f64> = x.iter().map(|v| v + NNSW_EPS).collect();
    let am = shifted.iter().sum::<f64>() / shifted.len() as f64;
    Some(nash_welfare(&shifted)? / am)
}

/// Coefficient of variation, FEN's fairness measure: `CV = sqrt(Σ(u − ū)² / ((n − 1) ū²))`, i.e.
/// the **sample** (n − 1) standard deviation over the mean (`baselines-spec.md` A1.1, from the FEN
/// poster; `metrics-spec.md` names CV as FEN's). `None` if n < 2, ū = 0 or any u < 0.
pub fn coefficient_of_variation(x: &[f64]) -> Option<f64> {
    if x.len() < 2 || has_negative(x) {
        return None;
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return None;
    }
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some(var.sqrt() / mean)
}

/// SOTO's GGF weights `ω_r = 1/b^r`, r = 0 for the worst-off: `get_omega` with
/// `ggi_type = xpowerminusn` (`DFRL/common/utils.py`; `baselines-spec.md` A2.1, A5.1). Not
/// normalised, as in SOTO's default; its `xpowerminusnrescaled` divides by their sum.
/// `powf` mirrors Python's `**`.
pub fn ggf_weights(n: usize, base: f64) -> Vec<f64> {
    (0..n).map(|r| 1.0 / base.powf(r as f64)).collect()
}

/// Generalised Gini welfare `GGF_ω(u) = Σ_r ω_r u_(r)`, u sorted ascending so ω_0 goes to the
/// worst-off; ω should be strictly decreasing (`metrics-spec.md`: "the SOTO score";
/// `baselines-spec.md` A2.1). Defined for any reals (A5.7); 0 for an empty vector.
/// `None` unless there is exactly one weight per rank.
pub fn ggf(x: &[f64], weights: &[f64]) -> Option<f64> {
    (x.len() == weights.len()).then(|| sorted(x).iter().zip(weights).map(|(u, w)| w * u).sum())
}

/// α-fair welfare `Σ u^(1−α)/(1−α)` for α ≠ 1, `Σ ln u` for α = 1 (`metrics-spec.md`;
/// `baselines-spec.md` A2.1): utilitarian at α = 0, proportional (Nash) at 1, max-min as α → ∞.
/// Domain: u > 0, which SOTO needs ("needs J > 0", A5.1); u = 0 is also finite for α < 1.
/// `None` outside it (any u < 0, u = 0 with α ≥ 1, α < 0 or NaN); 0 for an empty vector.
pub fn alpha_fair(x: &[f64], alpha: f64) -> Option<f64> {
    let zero_ok = alpha < 1.0;
    if alpha.is_nan() || alpha < 0.0 || x.iter().any(|&v| v < 0.0 || (v == 0.0 && !zero_ok)) {
        return None;
    }
    if alpha == 1.0 {
        return Some(x.iter().map(|v| v.ln()).sum());
    }
    let p = 1.0 - alpha;
    Some(x.iter().map(|v| v.powf(p) / p).sum())
}

/// Every metric of one utility vector; `None` where undefined (serialised as `null`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Welfare {
    pub gini: Option<f64>,
    pub jain: Option<f64>,
    pub nsw: Option<f64>,
    pub nnsw: Option<f64>,
    pub cv: Option<f64>,
    /// Some for every vector; None only from [`mean_welfare`] over no episodes.
    pub ggf: Option<f64>,
    pub alpha_fair: Option<f64>,
}

/// All metrics of `x` with the spec's recommended parameters: GGF with
/// `ggf_weights(n, DEFAULT_GGF_BASE)` (b = 2) and α-fair with `DEFAULT_ALPHA` (0.9).
pub fn welfare(x: &[f64]) -> Welfare {
    Welfare {
        gini: gini(x),
        jain: jain(x),
        nsw: nash_welfare(x),
        nnsw: nnsw(x),
        cv: coefficient_of_variation(x),
        ggf: ggf(x, &ggf_weights(x.len(), DEFAULT_GGF_BASE)),
        alpha_fair: alpha_fair(x, DEFAULT_ALPHA),
    }
}

/// Mean over the defined values only, so one undefined episode does not erase the metric (the
/// mean is then over fewer episodes); `None` if no episode defines it.
fn mean_defined(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// [`welfare`] per episode, then each field averaged over the episodes where it is defined
/// (a metric of the mean vector would hide per-episode inequality).
pub fn mean_welfare(episodes: &[Vec<f64>]) -> Welfare {
    let per: Vec<Welfare> = episodes.iter().map(|e| welfare(e)).collect();
    let field = |f: fn(&Welfare) -> Option<f64>| mean_defined(per.iter().map(f));
    Welfare {
        gini: field(|w| w.gini),
        jain: field(|w| w.jain),
        nsw: field(|w| w.nsw),
        nnsw: field(|w| w.nnsw),
        cv: field(|w| w.cv),
        ggf: field(|w| w.ggf),
        alpha_fair: field(|w| w.alpha_fair),
    }
}

#[cfg(test)]
mod tests {
    //! Each metric matches hand-computed values (arithmetic in the comments), Gini and Jain match
    //! the former `run.rs` closures bit for bit, and the edge cases follow the documented domains.
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn gini_hand_values() {
        // Σu = 10, Σ i·u_(i) = 1 + 4 + 9 + 16 = 30: 2·30/(4·10) − 5/4 = 1.5 − 1.25 = 0.25.
        assert_eq!(gini(&[1.0, 2.0, 3.0, 4.0]), Some(0.25));
        assert_eq!(gini(&[4.0, 1.0, 3.0, 2.0]), Some(0.25));
        // Σu = 10, Σ i·u_(i) = 5 + 10 = 15: 30/20 − 3/2 = 0.
        assert_eq!(gini(&[5.0, 5.0]), Some(0.0));
        // One holder of everything: 2·4/(4·1) − 5/4 = 0.75 = (n − 1)/n, the maximum.
        assert_eq!(gini(&[0.0, 0.0, 0.0, 1.0]), Some(0.75));
        assert_eq!(gini(&[]), Some(0.0));
        assert_eq!(gini(&[0.0; 4]), Some(0.0));
        assert_eq!(gini(&[-1.0, 2.0]), None);
    }

    #[test]
    fn gini_and_jain_match_former_run_rs_bit_for_bit() {
        let t: [f32; 4] = [13.25, 0.1, 7.7, 2.0];
        let x: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
        let mut s = x.clone();
        s.sort_by(f64::total_cmp);
        let sum: f64 = s.iter().sum();
        let ranked = s
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 + 1.0) * v)
            .sum::<f64>();
        let old_gini = 2.0 * ranked / (4.0 * sum) - 5.0 / 4.0;
        assert_eq!(gini(&x).map(f64::to_bits), Some(old_gini.to_bits()));
        let sum: f64 = x.iter().sum();
        let sq: f64 = x.iter().map(|v| v.powi(2)).sum();
        assert_eq!(
            jain(&x).map(f64::to_bits),
            Some((sum * sum / (4.0 * sq)).to_bits())
        );
    }

    #[test]
    fn jain_hand_values() {
        assert_eq!(jain(&[1.0; 4]), Some(1.0)); // 16/(4·4)
        assert_eq!(jain(&[1.0, 0.0, 0.0, 0.0]), Some(0.25)); // 1/(4·1) = 1/n
        assert_eq!(jain(&[1.0, 3.0]), Some(0.8)); // 16/(2·10)
        assert_eq!(jain(&[0.0; 3]), Some(0.0));
        assert_eq!(jain(&[]), Some(0.0));
        assert_eq!(jain(&[1.0, -1.0]), None);
    }

    #[test]
    fn nash_welfare_hand_values() {
        assert!(close(nash_welfare(&[1.0, 4.0]), 2.0)); // sqrt(1·4)
        assert!(close(nash_welfare(&[2.0, 8.0]), 4.0)); // sqrt(16)
        assert_eq!(nash_welfare(&[0.0, 5.0]), Some(0.0)); // product 0
        assert_eq!(nash_welfare(&[]), None);
        assert_eq!(nash_welfare(&[-1.0, 2.0]), None);
    }

    #[test]
    fn nnsw_hand_values() {
        // gm = 2, am = 2.5: 0.8 (the 1e-10 shift moves it by < 1e-10).
        assert!((nnsw(&[1.0, 4.0]).unwrap() - 0.8).abs() < 1e-9);
        assert!((nnsw(&[3.0; 3]).unwrap() - 1.0).abs() < 1e-12);
        // All zero: gm = am = 1e-10, so ≈ 1 (the seed's shift treats it as equal).
        assert!((nnsw(&[0.0; 4]).unwrap() - 1.0).abs() < 1e-9);
        // sqrt(1e-10 · (1 + 1e-10)) / (0.5 + 1e-10) ≈ 1e-5/0.5 = 2e-5.
        assert!((nnsw(&[0.0, 1.0]).unwrap() - 2e-5).abs() < 1e-9);
        assert_eq!(nnsw(&[]), None);
        assert_eq!(nnsw(&[-1.0, 1.0]), None);
    }

    #[test]
    fn cv_is_sample_std_over_mean() {
        let cv = coefficient_of_variation;
        // ū = 2, Σ(u − ū)² = 2, /(n − 1) = 2: sqrt(2)/2 (population std would give 0.5).
        assert!(close(cv(&[1.0, 3.0]), 2f64.sqrt() / 2.0));
        assert_eq!(cv(&[2.0; 3]), Some(0.0));
        assert_eq!(cv(&[2.0]), None);
        assert_eq!(cv(&[0.0, 0.0]), None);
        assert_eq!(cv(&[-1.0, 3.0]), None);
    }

    #[test]
    fn ggf_hand_values() {
        assert_eq!(ggf_weights(4, 2.0), vec![1.0, 0.5, 0.25, 0.125]);
        // Sorted [1, 2, 3]: 1·1 + 0.5·2 + 0.25·3 = 2.75.
        assert_eq!(ggf(&[3.0, 1.0, 2.0], &ggf_weights(3, 2.0)), Some(2.75));
        assert_eq!(ggf(&[3.0, 1.0, 2.0], &[1.0; 3]), Some(6.0)); // ω ≡ 1: utilitarian
        assert_eq!(ggf(&[1.0, -2.0], &[1.0, 0.5]), Some(-1.5)); // −2·1 + 1·0.5
        assert_eq!(ggf(&[], &[]), Some(0.0));
    }

    #[test]
    fn ggf_is_undefined_without_one_weight_per_rank() {
        assert_eq!(ggf(&[1.0, 2.0], &[1.0]), None);
        assert_eq!(ggf(&[1.0], &[1.0, 0.5]), None);
    }

    #[test]
    fn alpha_fair_hand_values() {
        let e = std::f64::consts::E;
        assert!(close(alpha_fair(&[1.0, e], 1.0), 1.0)); // ln 1 + ln e
        assert_eq!(alpha_fair(&[1.0, 2.0, 3.0], 0.0), Some(6.0)); // Σu
        assert_eq!(alpha_fair(&[1.0, 4.0], 0.5), Some(6.0)); // (1 + 2)/0.5
        assert_eq!(alpha_fair(&[1.0, 2.0], 2.0), Some(-1.5)); // (1 + 1/2)/(−1)
        let nsw = nash_welfare(&[2.0, 3.0]).unwrap();
        assert!(close(alpha_fair(&[2.0, 3.0], 1.0), 2.0 * nsw.ln())); // n·ln(nsw)
        assert!(close(alpha_fair(&[0.0, 1.0], 0.9), 10.0)); // (0 + 1)/0.1
        assert_eq!(alpha_fair(&[0.0, 1.0], 1.0), None);
        assert_eq!(alpha_fair(&[0.0, 1.0], 2.0), None);
        assert_eq!(alpha_fair(&[-1.0, 1.0], 0.5), None);
        assert_eq!(alpha_fair(&[1.0], -1.0), None);
        assert_eq!(alpha_fair(&[], 2.0), Some(0.0));
    }

    #[test]
    fn welfare_uses_default_parameters() {
        let w = welfare(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(w.gini, Some(0.25));
        assert!(close(w.jain, 100.0 / 120.0)); // 10²/(4·30)
        assert!(close(w.nsw, 24f64.powf(0.25))); // (1·2·3·4)^(1/4)
        assert!(close(w.cv, (5.0f64 / 3.0).sqrt() / 2.5)); // Σdev² = 5, /3; ū = 2.5
        assert_eq!(w.ggf, Some(3.25)); // 1 + 1 + 0.75 + 0.5
        // (1 + 2^0.1 + 3^0.1 + 4^0.1)/0.1 ≈ (1 + 1.071773 + 1.116123 + 1.148698)/0.1
        assert!((w.alpha_fair.unwrap() - 43.365_95).abs() < 1e-4);
    }

    #[test]
    fn mean_welfare_skips_undefined_episodes() {
        // [1, 1]: gini 0, jain 1; [1, 3]: gini 2·7/(2·4) − 3/2 = 0.25, jain 0.8.
        let m = mean_welfare(&[vec![1.0, 1.0], vec![1.0, 3.0]]);
        assert_eq!(m.gini, Some(0.125));
        assert!(close(m.jain, 0.9));
        // [−1, 1] defines only GGF (−1 + 0.5); [1, 3] has GGF 1 + 1.5 = 2.5.
        let m = mean_welfare(&[vec![1.0, 3.0], vec![-1.0, 1.0]]);
        assert_eq!(m.gini, Some(0.25));
        assert!(close(m.cv, 2f64.sqrt() / 2.0));
        assert_eq!(m.ggf, Some(1.0)); // (2.5 − 0.5)/2
        let none = mean_welfare(&[]);
        assert!(none.gini.is_none() && none.ggf.is_none() && none.alpha_fair.is_none());
    }
}
