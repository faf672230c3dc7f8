//! Metrics that training and evaluation share: the disparities of a rollout or of the played
//! episodes (DP signed and absolute, CSP per level and summed, CF), and welfare and inequality
//! over any utility vector ([`welfare`]: Gini, Jain, Nash social welfare and its normalised
//! form, coefficient of variation, generalised Gini welfare, alpha-fair welfare).

pub mod outcomes;
pub mod welfare;

pub use welfare::{Welfare, mean_welfare};

use fairground_kernel::hs::HsDayStats;
use serde::Serialize;

/// One finished AH episode of the factual world (what the AH eval numbers are computed from).
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeTotals {
    /// Group totals `[NSr, NSb, Sr, Sb]`.
    pub totals: [f32; 4],
    /// Agents in each of those cells.
    pub counts: [u32; 4],
    /// Every agent's return.
    pub returns: Vec<f32>,
    /// Counterfactual runs: mean over agents of |return − the twin's return| (the twin's
    /// episode ends on the same step).
    pub cf: Option<f64>,
    /// Counterfactual runs: the episode's total reward (all agents, all steps) of the factual
    /// world and of the counterfactual one (the reference's CF test compares these).
    pub world_totals: Option<[f64; 2]>,
    /// Actions the agents of each group (0 non-sensitive, 1 sensitive) chose in the episode,
    /// by action id (the report's action-profile radar).
    pub actions: [[u32; fairground_kernel::ah::ACTIONS as usize]; 2],
}

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
/// and `sum` = mean over episodes of Σ_c |·| (the paper's Eq. 4). The same on group TOTALS
/// (the reference's quantities, spec §6 and §9 item 29: not a rescaling for `csp`, since each
/// colour's sensitive count varies per episode): `dp_total`, `dp_total_abs`, `csp_total`.
/// A world without one of the groups (the reference's all-able counterfactual world) has no
/// disparity: every key is then null.
pub fn ah_eval_disparities(episodes: &[EpisodeTotals]) -> serde_json::Value {
    let has_both = |n: &[u32; 4]| n[0] + n[1] > 0 && n[2] + n[3] > 0;
    if !episodes.iter().all(|ep| has_both(&ep.counts)) {
        return serde_json::json!({
            "dp": null, "dp_abs": null, "csp": null,
            "dp_total": null, "dp_total_abs": null, "csp_total": null,
        });
    }
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
    // The reference's quantities (spec §6, §9 item 29): differences of group TOTALS.
    let total = |t: &[f32; 4], cells: &[usize]| cells.iter().map(|&c| f64::from(t[c])).sum::<f64>();
    let (mut dp_t, mut dp_t_abs, mut csp_t_sum) = (0.0, 0.0, 0.0);
    let mut colour_t = [0.0; 2];
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
        let gt = total(t, &[0, 1]) - total(t, &[2, 3]);
        dp_t += gt / e;
        dp_t_abs += gt.abs() / e;
        for (c, acc) in colour_t.iter_mut().enumerate() {
            let gc = total(t, &[c]) - total(t, &[2 + c]);
            *acc += gc / e;
            csp_t_sum += gc.abs() / e;
        }
    }
    serde_json::json!({
        "dp": dp,
        "dp_abs": dp_abs,
        "csp": {"red": colour[0], "blue": colour[1], "sum": csp_sum},
        "dp_total": dp_t,
        "dp_total_abs": dp_t_abs,
        "csp_total": {"red": colour_t[0], "blue": colour_t[1], "sum": csp_t_sum},
    })
}

/// HS eval disparities (spec §6) of the factual hospitals' days (even instances): per day
/// `dp` = mean ledger of finished non-impaired − impaired (signed, as AH's), `dp_abs` its |·|; `csp` per priority the same within the priority (an
/// empty cell's mean counts as 0, as the reference's tables) and their sum; `cf` (twin runs)
/// per pair of days of the same number |mean ledger of the factual hospital − its twin|;
/// `cf_total` the reference's CF test metric (`CF_Reward_Gap` of `fair-PPO-HS/CF/test.py`): per
/// pair |Σ ledger of the factual hospital's finished patients − the twin's| (a pair where a side
/// finished nobody counts that side as 0). Each is the mean over the days (pairs) that have it.
pub fn hs_eval_disparities(days: &[(usize, HsDayStats)]) -> serde_json::Value {
    let mean_of = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let cell = |s: &HsDayStats, imps: &[usize], pris: &[usize]| {
        outcomes::Outcomes::of_day(s).mean(imps, pris)
    };
    let (mut dp_abs, mut dp) = (Vec::new(), Vec::new());
    let mut pri: [Vec<f64>; 3] = Default::default();
    for (_, s) in days.iter().filter(|(i, _)| i % 2 == 0) {
        if let (Some(a), Some(b)) = (cell(s, &[0], &[0, 1, 2]), cell(s, &[1, 2], &[0, 1, 2])) {
            dp_abs.push((a - b).abs());
            dp.push(a - b);
        }
        for (p, acc) in pri.iter_mut().enumerate() {
            let a = cell(s, &[0], &[p]).unwrap_or(0.0);
            let b = cell(s, &[1, 2], &[p]).unwrap_or(0.0);
            acc.push((a - b).abs());
        }
    }
    let (mut cf, mut cf_total) = (Vec::new(), Vec::new());
    let ledger_sum = |x: &HsDayStats| x.ledger_finished.iter().flatten().sum::<f64>();
    for (i, s) in days.iter().filter(|(i, _)| i % 2 == 0) {
        let twin = days.iter().find(|(j, t)| *j == i + 1 && t.day == s.day);
        if let Some((_, t)) = twin {
            let all = |x: &HsDayStats| cell(x, &[0, 1, 2], &[0, 1, 2]);
            if let (Some(a), Some(b)) = (all(s), all(t)) {
                cf.push((a - b).abs());
            }
            cf_total.push((ledger_sum(s) - ledger_sum(t)).abs());
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
        "dp_abs": mean_of(&dp_abs),
        "csp": {
            "low": csp[0],
            "medium": csp[1],
            "high": csp[2],
            "sum": csp.iter().flatten().sum::<f64>(),
        },
        "cf": mean_of(&cf),
        "cf_total": mean_of(&cf_total),
        "welfare": {"impairment_groups": mean_welfare(&groups)},
    })
}

#[cfg(test)]
mod tests {
    //! The disparities on hand-made episodes and days, computed by hand in the comments.
    use super::*;

    fn episode(totals: [f32; 4], counts: [u32; 4]) -> EpisodeTotals {
        EpisodeTotals {
            totals,
            counts,
            returns: vec![],
            cf: None,
            world_totals: None,
            actions: Default::default(),
        }
    }

    #[test]
    fn csp_levels_keep_their_sign_and_sum_the_absolute_gaps() {
        let v = csp_value(&[("red", Some(-2.0)), ("blue", Some(0.5)), ("x", None)]).unwrap();
        assert_eq!(v["red"], -2.0);
        assert_eq!(v["x"], serde_json::Value::Null);
        assert_eq!(v["sum"], 2.5);
        assert!(
            csp_value(&[("red", None)]).is_none(),
            "nothing measured: null"
        );
    }

    #[test]
    fn ah_disparities_are_per_agent_and_total_gaps_averaged_over_episodes() {
        // Episode 1: NS (NSr 30 over 3 agents, NSb 10 over 1) = 40/4 = 10 per agent; S (Sr 12
        // over 2, Sb 24 over 2) = 36/4 = 9: dp = 1; red 30/3 − 12/2 = 4, blue 10 − 12 = −2.
        // Episode 2: NS 8/4 = 2, S 16/4 = 4: dp = −2; red 6/2 − 8/2 = −1, blue 2/2 − 8/2 = −3.
        let eps = [
            episode([30.0, 10.0, 12.0, 24.0], [3, 1, 2, 2]),
            episode([6.0, 2.0, 8.0, 8.0], [2, 2, 2, 2]),
        ];
        let d = ah_eval_disparities(&eps);
        assert_eq!(d["dp"], (1.0 - 2.0) / 2.0);
        assert_eq!(d["dp_abs"], (1.0 + 2.0) / 2.0);
        assert_eq!(d["csp"]["red"], (4.0 - 1.0) / 2.0);
        assert_eq!(d["csp"]["blue"], (-2.0 - 3.0) / 2.0);
        // Eq. 4: per episode Σ_c |gap_c| = 6 and 4, mean 5.
        assert_eq!(d["csp"]["sum"], 5.0);
        // On totals (the reference's): NS − S = 40 − 36 = 4 and 8 − 16 = −8; red 30 − 12 = 18
        // and 6 − 8 = −2, blue 10 − 24 = −14 and 2 − 8 = −6; Σ_c |·| = 32 and 8. Not 4 × the
        // per-agent CSP: the colours' agent counts differ per episode.
        assert_eq!(d["dp_total"], -2.0);
        assert_eq!(d["dp_total_abs"], 6.0);
        assert_eq!(d["csp_total"]["red"], 8.0);
        assert_eq!(d["csp_total"]["blue"], -10.0);
        assert_eq!(d["csp_total"]["sum"], 20.0);
    }

    fn day(i: u32, ledger: [[f64; 3]; 3], finished: [[u16; 3]; 3]) -> HsDayStats {
        HsDayStats {
            day: i,
            ledger_finished: ledger,
            finished,
            ..HsDayStats::default()
        }
    }

    #[test]
    fn hs_disparities_are_gaps_of_mean_ledgers_of_finished_patients() {
        // Factual hospital 0: none 2 patients with 400 in all (mean 200); low 1 with 190, high 1
        // with 170 (impaired mean 180): dp = 20. By priority (all in priority 0 here): the same
        // 20; priorities 1 and 2 have no patient, so 0 − 0. Twin 1: everyone mean 190.
        let f = day(
            0,
            [[400.0, 0.0, 0.0], [190.0, 0.0, 0.0], [170.0, 0.0, 0.0]],
            [[2, 0, 0], [1, 0, 0], [1, 0, 0]],
        );
        let t = day(
            0,
            [[380.0, 0.0, 0.0], [380.0, 0.0, 0.0], [0.0; 3]],
            [[2, 0, 0], [2, 0, 0], [0; 3]],
        );
        let d = hs_eval_disparities(&[(0, f), (1, t)]);
        assert_eq!(d["dp"], 20.0);
        assert_eq!(d["dp_abs"], 20.0);
        assert_eq!(d["csp"]["low"], 20.0);
        assert_eq!(d["csp"]["medium"], 0.0);
        assert_eq!(d["csp"]["sum"], 20.0);
        // CF: factual mean (400 + 190 + 170) / 4 = 190, twin 760 / 4 = 190. On sums (the
        // reference's): 760 − 760 = 0 too; a twin that finished one patient more moves it.
        assert_eq!(d["cf"], 0.0);
        assert_eq!(d["cf_total"], 0.0);
        let t3 = day(
            0,
            [[380.0, 0.0, 0.0], [380.0, 0.0, 0.0], [190.0, 0.0, 0.0]],
            [[2, 0, 0], [2, 0, 0], [1, 0, 0]],
        );
        let d3 = hs_eval_disparities(&[(0, f), (1, t3)]);
        assert_eq!(d3["cf"], 0.0, "means: 950 / 5 = 190");
        assert_eq!(d3["cf_total"], 190.0, "sums: |760 − 950|");
        // Welfare over the impairment groups [200, 190, 170] of the factual day.
        let w = &d["welfare"]["impairment_groups"];
        let jain =
            (560.0f64 * 560.0) / (3.0 * (200.0f64.powi(2) + 190.0f64.powi(2) + 170.0f64.powi(2)));
        assert!((w["jain"].as_f64().unwrap() - jain).abs() < 1e-12, "{w}");
    }
}
