//! Metrics that training and evaluation share: the disparities of a rollout or of the played
//! episodes (DP signed and absolute, CSP per level and summed, CF), and welfare and inequality
//! over any utility vector ([`welfare`]: Gini, Jain, Nash social welfare and its normalised
//! form, coefficient of variation, generalised Gini welfare, alpha-fair welfare).

pub mod welfare;

pub use welfare::{Welfare, mean_welfare};

use crate::env::ah::EpisodeTotals;
use fairground_kernel::hs::HsDayStats;
use serde::Serialize;

/// The fairness part of a metrics line: the measured disparities, and what the penalty did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FairMetrics {
    /// Demographic disparity this update: mean return of a minus b, in the env's units (AH:
    /// per-agent reward over the rollout; HS: mean ledger of finished patients), null if not
    /// measured.
    pub dp: Option<f64>,
    /// Conditional statistical disparity per factor level (signed) and the sum of |·|.
    pub csp: Option<serde_json::Value>,
    /// Counterfactual disparity: mean over pairs of |factual − twin| (runs with twins).
    pub cf: Option<f64>,
}

/// `{"level": gap, ..., "sum": Σ|gap|}` of the measured levels (None when none was measured).
pub fn csp_value(levels: &[(&str, Option<f64>)]) -> Option<serde_json::Value> {
    let mut m = serde_json::Map::new();
    let mut sum = 0.0;
    let mut any = false;
    for (name, g) in levels {
        m.insert(name.to_string(), serde_json::json!(g));
        if let Some(g) = g {
            sum += g.abs();
            any = true;
        }
    }
    any.then(|| {
        m.insert("sum".into(), serde_json::json!(sum));
        serde_json::Value::Object(m)
    })
}

/// AH eval disparities in per-agent return units (spec §6's group gaps, divided by each
/// cell's agents): `dp` = mean over episodes of (non-sensitive mean return − sensitive),
/// `dp_abs` = mean of its |·|; `csp` per berry preference c the mean of (NS_c mean − S_c mean),
/// and `sum` = mean over episodes of Σ_c |·| (the paper's Eq. 4).
pub fn ah_eval_disparities(episodes: &[EpisodeTotals]) -> serde_json::Value {
    let e = episodes.len().max(1) as f64;
    let per_agent = |t: &[f32; 4], n: &[u32; 4], cells: &[usize]| {
        let total: f64 = cells.iter().map(|&c| f64::from(t[c])).sum();
        let count: u32 = cells.iter().map(|&c| n[c]).sum();
        if count > 0 {
            total / f64::from(count)
        } else {
            0.0
        }
    };
    let (mut dp, mut dp_abs, mut csp_sum) = (0.0, 0.0, 0.0);
    let mut colour = [0.0; 2];
    for EpisodeTotals {
        totals: t,
        counts: n,
        ..
    } in episodes
    {
        let g = per_agent(t, n, &[0, 1]) - per_agent(t, n, &[2, 3]);
        dp += g / e;
        dp_abs += g.abs() / e;
        for (c, acc) in colour.iter_mut().enumerate() {
            let gc = per_agent(t, n, &[c]) - per_agent(t, n, &[2 + c]);
            *acc += gc / e;
            csp_sum += gc.abs() / e;
        }
    }
    serde_json::json!({
        "dp": dp,
        "dp_abs": dp_abs,
        "csp": {"red": colour[0], "blue": colour[1], "sum": csp_sum},
    })
}

/// HS eval disparities (spec §6) of the factual hospitals' days (even instances): per day
/// `dp` = |mean ledger of finished non-impaired − impaired| (`dp_signed` without |·|); `csp` per priority the same within the priority (an
/// empty cell's mean counts as 0, as the reference's tables) and their sum; `cf` (twin runs)
/// per pair of days of the same number |mean ledger of the factual hospital − its twin|. Each
/// is the mean over the days (pairs) that have it.
pub fn hs_eval_disparities(days: &[(usize, HsDayStats)]) -> serde_json::Value {
    let mean_of = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let cell = |s: &HsDayStats, imps: &[usize], pris: &[usize]| {
        crate::env::hs::Outcomes::of_day(s).mean(imps, pris)
    };
    let (mut dp, mut dp_signed) = (Vec::new(), Vec::new());
    let mut pri: [Vec<f64>; 3] = Default::default();
    for (_, s) in days.iter().filter(|(i, _)| i % 2 == 0) {
        if let (Some(a), Some(b)) = (cell(s, &[0], &[0, 1, 2]), cell(s, &[1, 2], &[0, 1, 2])) {
            dp.push((a - b).abs());
            dp_signed.push(a - b);
        }
        for (p, acc) in pri.iter_mut().enumerate() {
            let a = cell(s, &[0], &[p]).unwrap_or(0.0);
            let b = cell(s, &[1, 2], &[p]).unwrap_or(0.0);
            acc.push((a - b).abs());
        }
    }
    let mut cf = Vec::new();
    for (i, s) in days.iter().filter(|(i, _)| i % 2 == 0) {
        let twin = days.iter().find(|(j, t)| *j == i + 1 && t.day == s.day);
        if let Some((_, t)) = twin {
            let all = |x: &HsDayStats| cell(x, &[0, 1, 2], &[0, 1, 2]);
            if let (Some(a), Some(b)) = (all(s), all(t)) {
                cf.push((a - b).abs());
            }
        }
    }
    let csp: Vec<Option<f64>> = pri.iter().map(|v| mean_of(v)).collect();
    // Welfare over the patient groups: per factual day the mean ledger of each impairment's
    // finished patients (a day missing a group is left out), then averaged over the days.
    let groups: Vec<Vec<f64>> = days
        .iter()
        .filter(|(i, _)| i % 2 == 0)
        .filter_map(|(_, s)| (0..3).map(|g| cell(s, &[g], &[0, 1, 2])).collect())
        .collect();
    serde_json::json!({
        "dp": mean_of(&dp),
        "dp_signed": mean_of(&dp_signed),
        "csp": {
            "low": csp[0],
            "medium": csp[1],
            "high": csp[2],
            "sum": csp.iter().flatten().sum::<f64>(),
        },
        "cf": mean_of(&cf),
        "welfare": {"impairment_groups": mean_welfare(&groups)},
    })
}
