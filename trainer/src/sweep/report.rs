//! `fairground report DIR`: a sweep's results as `runs.csv` (one row per run) and `report.md`
//! (per grid, one row per configuration: the seeds found, and for each measure the mean over
//! seeds with a 95 % percentile-bootstrap interval), from the run directories' `eval.json`
//! alone, so a report can be rebuilt anywhere from the files. Runs without an `eval.json` are
//! listed as missing, never silently averaged away: a row says how many seeds it has.
//!
//! Not yet (issue 16): figures, the selection/evaluation seed split, the price of fairness and
//! the probability of improvement.

use super::{Sweep, load, state};
use crate::error::TrainError;
use crate::io::write_atomic;
use fairground_kernel::rng::{Purpose, Stream};
use std::collections::BTreeMap;
use std::path::Path;

/// A measure of the report: its column name and how to read it from an `eval.json`.
struct Measure {
    name: &'static str,
    read: fn(&serde_json::Value) -> Option<f64>,
}

/// The table's DP: the key the run's profile names in `table_keys` (AH: totals under
/// `reference`, per agent under `clean`), else `dp` (HS).
fn dp_of(e: &serde_json::Value) -> Option<f64> {
    let key = e["table_keys"][0].as_str().unwrap_or("dp");
    e[key].as_f64()
}

fn csp_of(e: &serde_json::Value) -> Option<f64> {
    let key = e["table_keys"][1].as_str().unwrap_or("csp");
    e[key]["sum"].as_f64()
}

const MEASURES: [Measure; 7] = [
    Measure {
        name: "reward",
        // AH: reward per agent-step; HS: patients treated per day.
        read: |e| {
            e["mean_reward_per_agent_step"]
                .as_f64()
                .or_else(|| e["patients_treated_mean"].as_f64())
        },
    },
    Measure {
        name: "dp",
        read: dp_of,
    },
    Measure {
        name: "abs_dp",
        read: |e| dp_of(e).map(f64::abs),
    },
    Measure {
        name: "csp_sum",
        read: csp_of,
    },
    Measure {
        name: "cf",
        read: |e| e["cf"].as_f64(),
    },
    Measure {
        name: "gini",
        read: |e| e["gini"].as_f64().or_else(|| e["welfare"]["gini"].as_f64()),
    },
    Measure {
        name: "jain",
        read: |e| e["jain"].as_f64().or_else(|| e["welfare"]["jain"].as_f64()),
    },
];

/// Resamples of the percentile bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Mean of `v` and its 95 % percentile-bootstrap interval over `BOOTSTRAP_RESAMPLES`
/// resamples drawn from a fixed stream (the same numbers on every machine). One value: the
/// interval is that value.
pub fn mean_ci(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let mut rng = Stream::new(0x5245_504f_5254, Purpose::TrainAlgo, &[n as u64]);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| v[rng.below(n as u32) as usize]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (BOOTSTRAP_RESAMPLES - 1) as f64).round()) as usize];
    Some((mean, at(0.025), at(0.975)))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn value_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Write `runs.csv` and `report.md` into `out`; returns the report's text.
pub fn report(dir: &Path, out: &Path) -> Result<String, TrainError> {
    let sweep: Sweep = load(dir)?;
    let mut csv = String::from("index,grid,state,values");
    for m in &MEASURES {
        csv += &format!(",{}", m.name);
    }
    csv += "\n";
    // Per grid, per configuration (the axis values but the seed): each measure's values.
    type Config = BTreeMap<String, Vec<Vec<f64>>>;
    let mut grids: Vec<(Config, Vec<usize>)> =
        vec![(BTreeMap::new(), Vec::new()); sweep.grids.len()];
    let mut order: Vec<Vec<String>> = vec![Vec::new(); sweep.grids.len()];
    for r in &sweep.runs {
        let eval_path = dir.join(&r.dir).join("eval.json");
        let eval: Option<serde_json::Value> = std::fs::read_to_string(&eval_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let values: Vec<String> = r
            .values
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect();
        let st = state(dir, r);
        csv += &format!(
            "{},{},{},{}",
            r.index,
            csv_field(&sweep.grids[r.grid].name),
            st.name(),
            csv_field(&values.join(" "))
        );
        let read: Vec<Option<f64>> = MEASURES
            .iter()
            .map(|m| eval.as_ref().and_then(|e| (m.read)(e)))
            .collect();
        for x in &read {
            csv += &format!(",{}", x.map_or(String::new(), |x| format!("{x}")));
        }
        csv += "\n";
        let key: Vec<String> = r
            .values
            .iter()
            .filter(|(k, _)| k.as_str() != "seed")
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect();
        let key = if key.is_empty() {
            "(all)".to_string()
        } else {
            key.join(" ")
        };
        let (configs, missing) = &mut grids[r.grid];
        if !configs.contains_key(&key) {
            order[r.grid].push(key.clone());
        }
        let cols = configs
            .entry(key)
            .or_insert_with(|| vec![Vec::new(); MEASURES.len()]);
        if eval.is_none() {
            missing.push(r.index);
            continue;
        }
        for (c, x) in cols.iter_mut().zip(&read) {
            if let Some(x) = x {
                c.push(*x);
            }
        }
    }
    let mut md = format!(
        "# Sweep report\n\nFrom `{}` ({} runs). Each cell: mean over the configuration's seeds \
         [95 % percentile-bootstrap interval, {BOOTSTRAP_RESAMPLES} resamples]; `n` counts the \
         seeds with an `eval.json`. `reward` is the reward per agent-step (AH) or the patients \
         treated per day (HS); `dp` and `csp_sum` are the keys the runs' profile names in \
         `table_keys` (AH reference: group totals; clean: per agent).\n",
        dir.display(),
        sweep.runs.len()
    );
    for (g, grid) in sweep.grids.iter().enumerate() {
        let (configs, missing) = &grids[g];
        md += &format!("\n## {}\n\n| configuration | n |", grid.name);
        for m in &MEASURES {
            md += &format!(" {} |", m.name);
        }
        md += "\n|---|---|";
        md += &"---|".repeat(MEASURES.len());
        md += "\n";
        for key in &order[g] {
            let cols = &configs[key];
            let n = cols.iter().map(Vec::len).max().unwrap_or(0);
            md += &format!("| {key} | {n} |");
            for c in cols {
                md += &match mean_ci(c) {
                    Some((m, lo, hi)) => format!(" {m:.4} [{lo:.4}, {hi:.4}] |"),
                    None => " — |".to_string(),
                };
            }
            md += "\n";
        }
        if !missing.is_empty() {
            md += &format!(
                "\nMissing (no eval.json yet): runs {missing:?}; the rows above average only \
                 what exists.\n"
            );
        }
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    write_atomic(&out.join("runs.csv"), csv.as_bytes())?;
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(md)
}
