//! `fairground report DIR`: a sweep's results, from the run directories' `eval.json` and
//! `metrics.jsonl` alone (a report can be rebuilt anywhere from the files):
//! - `runs.csv`: one row per planned run;
//! - `report.md` and a self-contained `report.html` (no network; the figures inline): per
//!   environment the paper's tables (AH: efficiency and fairness, per-colour; HS: Tables 1 and
//!   2), each algorithm at its best configuration chosen on *selection* seeds and reported on
//!   separate *evaluation* seeds, with the price of fairness against PPO (paired bootstrap) and
//!   the probability of improvement of Fair-PPO over each baseline; then every configuration of
//!   every grid over all its seeds;
//! - the figures as SVG files: the Pareto front of reward against |DP|, learning curves, the
//!   α × β heat maps and (AH) the action-profile radar per group;
//! - `marl-eval.json`: the runs in marl-eval's raw-data layout, for users of rliable.
//!
//! Runs without an `eval.json` are listed as missing, never silently averaged away: every row
//! says how many seeds it averages.

mod data;
mod figures;
mod measures;
pub mod stats;
mod table;

pub use stats::{BOOTSTRAP_RESAMPLES, Estimate, mean_ci};

use super::{Sweep, load};
use crate::error::TrainError;
use crate::io::write_atomic;
use data::{Config, Env, Run};
use measures::{ABS_DP, Better, CORE, Measure, REWARD};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use table::Table;

/// How the best configuration of a grid is chosen (on the selection seeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The lowest mean |DP|.
    AbsDp,
    /// The highest mean reward.
    Reward,
}

impl Select {
    fn text(self) -> &'static str {
        match self {
            Select::AbsDp => "the lowest mean |DP|",
            Select::Reward => "the highest mean reward",
        }
    }

    /// The measure the selection ranks by.
    fn measure(self) -> &'static Measure {
        match self {
            Select::AbsDp => &ABS_DP,
            Select::Reward => &REWARD,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub select: Select,
    /// Seeds (the lowest, in order) that choose the best configurations; the rest report them.
    /// Default: half of them, at least one.
    pub selection_seeds: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            select: Select::AbsDp,
            selection_seeds: None,
        }
    }
}

/// A number in a table: 4 decimals below 10, 2 below 1,000, none above.
pub fn fmt(x: f64) -> String {
    let a = x.abs();
    if a < 10.0 {
        format!("{x:.4}")
    } else if a < 1000.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.0}")
    }
}

fn cell(e: Option<Estimate>) -> String {
    match e {
        Some(e) => format!("{} [{}, {}]", fmt(e.value), fmt(e.lo), fmt(e.hi)),
        None => "—".to_string(),
    }
}

/// The seeds that choose and the seeds that report.
struct Split {
    selection: BTreeSet<u64>,
    evaluation: BTreeSet<u64>,
    /// One seed only: selected and reported on the same one.
    same: bool,
    /// `--selection-seeds 0`: every grid has one configuration, nothing is selected, every
    /// seed reports.
    none: bool,
}

fn split(runs: &[Run], opts: &Options) -> Result<Split, TrainError> {
    let seeds: Vec<u64> = runs
        .iter()
        .map(|r| r.seed)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let n = seeds.len();
    let bad = |k: usize| TrainError::Io {
        path: "--selection-seeds".into(),
        message: format!(
            "{k}: allowed 0..={} (the sweep has {n} seed{}; the rest report; 0 only when \
             every grid has one configuration)",
            n.saturating_sub(1),
            if n == 1 { "" } else { "s" }
        ),
    };
    if n <= 1 {
        if let Some(k) = opts.selection_seeds {
            return Err(bad(k));
        }
        let all: BTreeSet<u64> = seeds.into_iter().collect();
        return Ok(Split {
            selection: all.clone(),
            evaluation: all,
            same: true,
            none: false,
        });
    }
    let k = opts.selection_seeds.unwrap_or((n / 2).max(1));
    if k >= n {
        return Err(bad(k));
    }
    if k == 0 {
        let all: BTreeSet<u64> = seeds.into_iter().collect();
        return Ok(Split {
            selection: all.clone(),
            evaluation: all,
            same: false,
            none: true,
        });
    }
    Ok(Split {
        selection: seeds[..k].iter().copied().collect(),
        evaluation: seeds[k..].iter().copied().collect(),
        same: false,
        none: false,
    })
}

/// `v` turned so that higher is better (|DP|: lower is better, so negated).
fn oriented(m: &Measure, v: Vec<f64>) -> Vec<f64> {
    match m.better {
        Better::Lower => v.into_iter().map(|x| -x).collect(),
        Better::Higher | Better::Neither => v,
    }
}

struct Report<'a> {
    sweep: &'a Sweep,
    runs: Vec<Run>,
    configs: Vec<Config>,
    split: Split,
    opts: Options,
}

impl Report<'_> {
    /// Per seed in `seeds`, measure `read` of config `c` (runs with an eval.json only).
    fn by_seed(
        &self,
        c: &Config,
        seeds: &BTreeSet<u64>,
        read: &dyn Fn(&serde_json::Value) -> Option<f64>,
    ) -> BTreeMap<u64, f64> {
        c.runs
            .iter()
            .map(|&i| &self.runs[i])
            .filter(|r| seeds.contains(&r.seed))
            .filter_map(|r| Some((r.seed, read(r.eval.as_ref()?)?)))
            .collect()
    }

    fn values(&self, c: &Config, seeds: &BTreeSet<u64>, m: &Measure) -> Vec<f64> {
        self.by_seed(c, seeds, &m.read).into_values().collect()
    }

    fn all_seeds(&self) -> BTreeSet<u64> {
        self.runs.iter().map(|r| r.seed).collect()
    }

    fn env_of(&self, c: &Config) -> Env {
        self.runs[c.runs[0]].env
    }

    fn algo_of(&self, c: &Config) -> &str {
        &self.runs[c.runs[0]].algo
    }

    fn grid_configs(&self, env: Env, grid: usize) -> Vec<&Config> {
        self.configs
            .iter()
            .filter(|c| c.grid == grid && self.env_of(c) == env)
            .collect()
    }

    fn grids_of(&self, env: Env) -> Vec<usize> {
        let mut g: Vec<usize> = Vec::new();
        for c in &self.configs {
            if self.env_of(c) == env && !g.contains(&c.grid) {
                g.push(c.grid);
            }
        }
        g
    }

    /// The grid's best configuration by the selection rule on `seeds` (configurations with no
    /// finished run there cannot be chosen); None if none has one.
    fn best<'c>(&self, cands: &[&'c Config], seeds: &BTreeSet<u64>) -> Option<&'c Config> {
        let score = |c: &Config| {
            let m = self.opts.select.measure();
            // Lowest score wins: the measure turned so that higher is better, negated.
            let v = oriented(m, self.values(c, seeds, m));
            (!v.is_empty()).then(|| -stats::mean(&v))
        };
        let mut best: Option<(&Config, f64)> = None;
        for &c in cands {
            if let Some(s) = score(c)
                && best.is_none_or(|(_, b)| s < b)
            {
                best = Some((c, s));
            }
        }
        best.map(|(c, _)| c)
    }

    fn label(&self, c: &Config) -> String {
        c.key.clone()
    }

    fn grid_name(&self, g: usize) -> &str {
        &self.sweep.grids[g].name
    }

    /// Each grid of `env` with its best configuration (None: nothing finished to choose on).
    fn bests(&self, env: Env) -> Vec<(usize, Option<&Config>)> {
        self.grids_of(env)
            .into_iter()
            .map(|g| {
                (
                    g,
                    self.best(&self.grid_configs(env, g), &self.split.selection),
                )
            })
            .collect()
    }

    /// PPO's configuration in `env` (the price of fairness is against it).
    fn ppo<'c>(&self, bests: &[(usize, Option<&'c Config>)]) -> Option<&'c Config> {
        bests
            .iter()
            .filter_map(|(_, c)| *c)
            .find(|c| self.algo_of(c) == "ppo")
    }

    fn price(&self, c: &Config, ppo: Option<&Config>) -> String {
        let Some(p) = ppo else {
            return "— (no PPO)".into();
        };
        if std::ptr::eq(c, p) {
            return "baseline".into();
        }
        let ev = &self.split.evaluation;
        let mine = self.by_seed(c, ev, &REWARD.read);
        let base = self.by_seed(p, ev, &REWARD.read);
        let pairs: Vec<(f64, f64)> = mine
            .iter()
            .filter_map(|(s, &x)| Some((x, *base.get(s)?)))
            .collect();
        cell(stats::price_of_fairness(&pairs))
    }

    fn iqm(&self, c: &Config, m: &Measure) -> String {
        let v = self.values(c, &self.split.evaluation, m);
        if v.len() < stats::IQM_MIN {
            return format!("— (n < {})", stats::IQM_MIN);
        }
        cell(stats::iqm_ci(&v))
    }

    /// How many of `c`'s runs on `seeds` have an `eval.json` (the `n` of a row).
    fn n_with_eval(&self, c: &Config, seeds: &BTreeSet<u64>) -> usize {
        c.runs
            .iter()
            .map(|&i| &self.runs[i])
            .filter(|r| r.eval.is_some() && seeds.contains(&r.seed))
            .count()
    }

    /// One row per grid of `env`: its best configuration on the evaluation seeds.
    /// `first`: the section's first table, with the price of fairness, the IQMs and the full
    /// note; else a companion table of the same configurations.
    fn best_table(&self, env: Env, title: &str, ms: &[Measure], first: bool) -> Table {
        let bests = self.bests(env);
        let ppo = self.ppo(&bests);
        let mut header: Vec<String> = ["algorithm", "configuration", "n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        header.extend(ms.iter().map(|m| m.label.to_string()));
        if first {
            header.push("price of fairness %".into());
        }
        if first {
            header.push("reward IQM".into());
            header.push("|DP| IQM".into());
        }
        let mut rows = Vec::new();
        for (g, best) in &bests {
            let mut row = vec![self.grid_name(*g).to_string()];
            let Some(c) = best else {
                row.push("— (no finished run on the selection seeds)".into());
                row.extend(std::iter::repeat_n("—".to_string(), header.len() - 2));
                rows.push(row);
                continue;
            };
            row.push(self.label(c));
            row.push(self.n_with_eval(c, &self.split.evaluation).to_string());
            for m in ms {
                row.push(cell(mean_ci(&self.values(c, &self.split.evaluation, m))));
            }
            if first {
                row.push(self.price(c, ppo));
            }
            if first {
                row.push(self.iqm(c, &REWARD));
                row.push(self.iqm(c, &ABS_DP));
            }
            rows.push(row);
        }
        Table {
            title: title.to_string(),
            note: if first {
                self.best_note(env)
            } else {
                "The configurations and seeds of the table above.".into()
            },
            header,
            rows,
        }
    }

    fn best_note(&self, env: Env) -> String {
        let seeds = |s: &BTreeSet<u64>| s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let mut n = format!(
            "Each algorithm (grid) at its best configuration: {} on the selection seeds [{}], \
             reported on the evaluation seeds [{}]; `n` counts the evaluation seeds with an \
             `eval.json`. Cells: mean [95 % stratified-bootstrap interval, {BOOTSTRAP_RESAMPLES} \
             resamples]. {}",
            self.opts.select.text(),
            seeds(&self.split.selection),
            seeds(&self.split.evaluation),
            match env {
                Env::Ah =>
                    "`reward` is the reward per agent-step; DP and CSP are in the units \
                            of the runs' `table_keys` (reference profile: group totals; clean: \
                            per agent).",
                Env::Hs =>
                    "DP is the mean ledger of finished non-impaired minus impaired \
                            patients; the price of fairness is on patients treated per day.",
            }
        );
        if self.split.none {
            n = format!(
                "Each algorithm (grid) has one configuration (`--selection-seeds 0`: nothing is \
                 selected), reported on every seed [{}]; `n` counts the seeds with an \
                 `eval.json`. Cells: mean [95 % stratified-bootstrap interval, \
                 {BOOTSTRAP_RESAMPLES} resamples].",
                seeds(&self.split.evaluation)
            );
        } else if self.split.same {
            n += " **The sweep has one seed, so the configuration is selected and reported on \
                  the same seed: this flatters the best of many configurations (the reference \
                  analysis does this throughout).**";
        } else {
            n += " The reference analysis selects and reports on the same episodes, which \
                  flatters the best of many configurations; the table below measures by how \
                  much.";
        }
        n
    }

    /// How much selecting and reporting on the same seeds flatters the best configuration.
    fn flattery_table(&self, env: Env) -> Option<Table> {
        let all = self.all_seeds();
        let mut rows = Vec::new();
        for g in self.grids_of(env) {
            let cands = self.grid_configs(env, g);
            if cands.len() < 2 {
                continue;
            }
            let measure = self.opts.select.measure();
            let same = self.best(&cands, &all);
            let held = self.best(&cands, &self.split.selection);
            let show = |c: Option<&Config>, seeds: &BTreeSet<u64>| match c {
                Some(c) => format!(
                    "{} ({})",
                    cell(mean_ci(&self.values(c, seeds, measure))),
                    self.label(c)
                ),
                None => "—".into(),
            };
            rows.push(vec![
                self.grid_name(g).to_string(),
                cands.len().to_string(),
                show(same, &all),
                show(held, &self.split.evaluation),
            ]);
        }
        (!rows.is_empty()).then(|| Table {
            title: "Selection on the reported seeds flatters".into(),
            note: format!(
                "The best of a grid's configurations by {}: chosen and reported on every seed \
                 (as the reference analysis does) against chosen on the selection seeds and \
                 reported on the evaluation seeds.",
                self.opts.select.text()
            ),
            header: vec![
                "algorithm".into(),
                "configurations".into(),
                "selected and reported on all seeds".into(),
                "held out".into(),
            ],
            rows,
        })
    }

    /// P(Fair-PPO's run beats the baseline's) on |DP| and on reward, evaluation seeds.
    fn improvement_table(&self, env: Env) -> Option<Table> {
        let bests = self.bests(env);
        let ev = &self.split.evaluation;
        let mut rows = Vec::new();
        for (fg, fc) in &bests {
            let Some(fc) = fc else { continue };
            if self.algo_of(fc) != "fair-ppo" {
                continue;
            }
            for (bg, bc) in &bests {
                let Some(bc) = bc else { continue };
                if self.algo_of(bc) == "fair-ppo" {
                    continue;
                }
                let better = |m: &Measure| {
                    stats::p_improvement_ci(
                        &oriented(m, self.values(fc, ev, m)),
                        &oriented(m, self.values(bc, ev, m)),
                    )
                };
                let (dp, rw) = (better(&ABS_DP), better(&REWARD));
                rows.push(vec![
                    self.grid_name(*fg).to_string(),
                    self.grid_name(*bg).to_string(),
                    cell(dp),
                    cell(rw),
                ]);
            }
        }
        (!rows.is_empty()).then(|| Table {
            title: "Probability of improvement".into(),
            note: "P(X > Y): the chance that a run of Fair-PPO (at its best configuration) beats \
                   a run of the baseline, over every pair of evaluation seeds, ties counting a \
                   half (rliable); 0.5 is no difference. Interval: both sides resampled \
                   independently."
                .into(),
            header: vec![
                "algorithm".into(),
                "baseline".into(),
                "P(lower |DP|)".into(),
                "P(higher reward)".into(),
            ],
            rows,
        })
    }

    /// Each grid's best configuration against PPO's, seed by seed on the evaluation seeds:
    /// per measure of [`measures::PAIRED`], how often and by how much it moved, with the exact
    /// one-sided sign-flip test of "lower" (the replication protocol's test,
    /// docs/fair-ppo.md).
    fn paired_table(&self, env: Env) -> Option<Table> {
        let bests = self.bests(env);
        let ppo = self.ppo(&bests)?;
        let ev = &self.split.evaluation;
        let mut rows = Vec::new();
        for (g, c) in &bests {
            let Some(c) = c else { continue };
            if std::ptr::eq(*c, ppo) {
                continue;
            }
            for m in &measures::PAIRED {
                let base = self.by_seed(ppo, ev, &m.read);
                let pairs: Vec<(f64, f64)> = self
                    .by_seed(c, ev, &m.read)
                    .into_iter()
                    .filter_map(|(s, x)| Some((x, *base.get(&s)?)))
                    .collect();
                if pairs.is_empty() {
                    continue;
                }
                let diffs: Vec<f64> = pairs.iter().map(|(x, b)| x - b).collect();
                let mean_of = |f: fn(&(f64, f64)) -> f64| {
                    fmt(stats::mean(&pairs.iter().map(f).collect::<Vec<_>>()))
                };
                let p = match stats::sign_flip_p(&diffs) {
                    Some(p) => format!("{p:.4}"),
                    None => format!("— (n > {})", stats::SIGN_FLIP_MAX),
                };
                rows.push(vec![
                    self.grid_name(*g).to_string(),
                    self.label(c),
                    m.label.to_string(),
                    pairs.len().to_string(),
                    mean_of(|x| x.1),
                    mean_of(|x| x.0),
                    fmt(stats::mean(&diffs)),
                    format!(
                        "{} of {}",
                        diffs.iter().filter(|&&d| d < 0.0).count(),
                        pairs.len()
                    ),
                    p,
                ]);
            }
        }
        (!rows.is_empty()).then(|| Table {
            title: "Paired against PPO".into(),
            note: "Seed by seed on the evaluation seeds, each grid's best configuration against \
                   PPO's run of the same seed (same environment and initialisation seeds). \
                   Δ = the algorithm minus PPO; `lower`: the seeds where the algorithm's value \
                   is below PPO's; p: the exact one-sided paired sign-flip test of a lower \
                   value (all 2^n sign patterns of the differences; for the reward, a small p \
                   says the algorithm costs reward)."
                .into(),
            header: [
                "algorithm",
                "configuration",
                "measure",
                "pairs",
                "PPO",
                "value",
                "Δ",
                "lower",
                "p (lower)",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows,
        })
    }

    /// The signed DP and the reward of each grid's best configuration, one row per evaluation
    /// seed (what the paired table summarises).
    fn per_seed_table(&self, env: Env) -> Option<Table> {
        let bests: Vec<(usize, &Config)> = self
            .bests(env)
            .into_iter()
            .filter_map(|(g, c)| Some((g, c?)))
            .collect();
        if bests.is_empty() {
            return None;
        }
        let mut header = vec!["seed".to_string()];
        for (g, _) in &bests {
            header.push(format!("{} DP", self.grid_name(*g)));
            header.push(format!("{} reward", self.grid_name(*g)));
        }
        let cols: Vec<[BTreeMap<u64, f64>; 2]> = bests
            .iter()
            .map(|(_, c)| {
                [
                    self.by_seed(c, &self.split.evaluation, &measures::DP.read),
                    self.by_seed(c, &self.split.evaluation, &REWARD.read),
                ]
            })
            .collect();
        let rows = self
            .split
            .evaluation
            .iter()
            .map(|s| {
                let mut row = vec![s.to_string()];
                for col in &cols {
                    for m in col {
                        row.push(m.get(s).map_or("—".into(), |&v| fmt(v)));
                    }
                }
                row
            })
            .collect();
        Some(Table {
            title: "Per seed".into(),
            note: "Each grid's best configuration on every evaluation seed: the signed DP \
                   (non-sensitive minus sensitive) and the reward (AH: per agent-step; HS: \
                   patients treated per day)."
                .into(),
            header,
            rows,
        })
    }

    fn hs_table2(&self) -> Table {
        let bests = self.bests(Env::Hs);
        let mut header: Vec<String> = vec!["algorithm".into(), "priority".into(), "n".into()];
        header.extend(measures::HS_TABLE2_COLUMNS.iter().map(|s| s.to_string()));
        let mut rows = Vec::new();
        for (g, best) in &bests {
            let Some(c) = best else { continue };
            for p in measures::PRIORITIES {
                let mut row = vec![self.grid_name(*g).to_string(), p.to_string()];
                let mut n = 0;
                let mut cells = Vec::new();
                for k in 0..4 {
                    let v: Vec<f64> = self
                        .by_seed(c, &self.split.evaluation, &|e| measures::hs_table2(e, p)[k])
                        .into_values()
                        .collect();
                    n = n.max(v.len());
                    cells.push(cell(mean_ci(&v)));
                }
                row.push(n.to_string());
                row.extend(cells);
                rows.push(row);
            }
        }
        Table {
            title: "HS Table 2: by priority and impairment".into(),
            note: "Per priority: the reward gap (mean ledger of finished non-impaired minus \
                   impaired patients) and the finished patients per day by impairment; each \
                   algorithm at the configuration of Table 1, evaluation seeds."
                .into(),
            header,
            rows,
        }
    }

    /// Every configuration of grid `g` over all its seeds.
    fn grid_table(&self, g: usize) -> Table {
        let all = self.all_seeds();
        let mut header: Vec<String> = vec!["configuration".into(), "n".into()];
        header.extend(CORE.iter().map(|m| m.key.to_string()));
        let mut rows = Vec::new();
        for c in self.configs.iter().filter(|c| c.grid == g) {
            let cols: Vec<Vec<f64>> = CORE.iter().map(|m| self.values(c, &all, m)).collect();
            let n = self.n_with_eval(c, &all);
            let mut row = vec![c.key.clone(), n.to_string()];
            row.extend(cols.iter().map(|v| cell(mean_ci(v))));
            rows.push(row);
        }
        let missing: Vec<usize> = self
            .runs
            .iter()
            .filter(|r| r.grid == g && r.eval.is_none())
            .map(|r| r.index)
            .collect();
        let mut note = "Every configuration over all its seeds (descriptive: no selection). \
                        Cells: mean [95 % bootstrap interval]; `n` counts the seeds with an \
                        `eval.json`."
            .to_string();
        if !missing.is_empty() {
            note += &format!(
                " Missing (no eval.json yet): runs {missing:?}; the rows above average only \
                 what exists."
            );
        }
        Table {
            title: self.grid_name(g).to_string(),
            note,
            header,
            rows,
        }
    }
}

/// The report being written: Markdown and HTML side by side, and the figure files.
struct Doc {
    md: String,
    html: String,
    figures: Vec<(String, String)>,
}

impl Doc {
    fn heading(&mut self, level: usize, text: &str) {
        self.md += &format!("\n{} {text}\n", "#".repeat(level));
        self.html += &format!("<h{level}>{}</h{level}>\n", table::escape(text));
    }
    fn para(&mut self, text: &str) {
        self.md += &format!("\n{text}\n");
        self.html += &format!("<p>{}</p>\n", table::inline_code(&table::escape(text)));
    }
    fn table(&mut self, t: &Table, level: usize) {
        self.md += &t.markdown(level);
        self.html += &t.html(level);
    }
    fn figure(&mut self, file: String, svg: Result<String, String>, caption: &str) {
        match svg {
            Ok(svg) => {
                self.md += &format!("\n![{file}]({file})\n\n*{caption}*\n");
                self.html += &format!(
                    "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
                    table::escape(caption)
                );
                self.figures.push((file, svg));
            }
            Err(e) => self.para(&format!("({file} could not be drawn: {e})")),
        }
    }
}

fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

const ALGORITHMS: [(&str, &str); 4] = [
    ("ppo", "PPO"),
    ("fair-ppo", "Fair-PPO"),
    ("fen", "FEN"),
    ("soto", "SOTO"),
];

impl Report<'_> {
    fn env_section(&self, doc: &mut Doc, env: Env) {
        doc.heading(2, env.title());
        let present: BTreeSet<&str> = self
            .configs
            .iter()
            .filter(|c| self.env_of(c) == env)
            .map(|c| self.algo_of(c))
            .collect();
        let absent: Vec<&str> = ALGORITHMS
            .iter()
            .filter(|(k, _)| !present.contains(k))
            .map(|(_, n)| *n)
            .collect();
        if !absent.is_empty() {
            doc.para(&format!(
                "Not in this sweep: {} (the tables compare only what ran).",
                absent.join(", ")
            ));
        }
        match env {
            Env::Ah => {
                doc.table(
                    &self.best_table(
                        env,
                        "AH: efficiency and fairness",
                        &measures::AH_TABLE,
                        true,
                    ),
                    3,
                );
                doc.table(
                    &self.best_table(env, "AH: per berry colour", &measures::AH_COLOUR, false),
                    3,
                );
            }
            Env::Hs => {
                doc.table(
                    &self.best_table(env, "HS Table 1", &measures::HS_TABLE1, true),
                    3,
                );
                doc.table(&self.hs_table2(), 3);
            }
        }
        if let Some(t) = self.improvement_table(env) {
            doc.table(&t, 3);
        }
        if let Some(t) = self.paired_table(env) {
            doc.table(&t, 3);
        }
        if let Some(t) = self.per_seed_table(env) {
            doc.table(&t, 3);
        }
        if let Some(t) = self.flattery_table(env) {
            doc.table(&t, 3);
        }
        self.env_figures(doc, env);
    }

    fn env_figures(&self, doc: &mut Doc, env: Env) {
        let all = self.all_seeds();
        let grids = self.grids_of(env);
        let names: Vec<String> = grids
            .iter()
            .map(|&g| self.grid_name(g).to_string())
            .collect();
        let series_of = |g: usize| grids.iter().position(|&x| x == g).unwrap_or(0);
        // Pareto: every configuration over all its seeds.
        let mut points: Vec<figures::ParetoPoint> = Vec::new();
        for c in self.configs.iter().filter(|c| self.env_of(c) == env) {
            if let (Some(d), Some(r)) = (
                mean_ci(&self.values(c, &all, &ABS_DP)),
                mean_ci(&self.values(c, &all, &REWARD)),
            ) {
                points.push(figures::ParetoPoint {
                    series: series_of(c.grid),
                    abs_dp: d,
                    reward: r,
                    front: false,
                });
            }
        }
        let dominated = |p: &figures::ParetoPoint| {
            points.iter().any(|q| {
                let (qx, qy, px, py) = (
                    q.abs_dp.value,
                    q.reward.value,
                    p.abs_dp.value,
                    p.reward.value,
                );
                qx <= px && qy >= py && (qx < px || qy > py)
            })
        };
        let front: Vec<bool> = points.iter().map(|p| !dominated(p)).collect();
        for (p, f) in points.iter_mut().zip(front) {
            p.front = f;
        }
        let reward_label = match env {
            Env::Ah => "reward per agent-step",
            Env::Hs => "patients treated per day",
        };
        doc.heading(3, "Figures");
        doc.figure(
            format!("pareto-{}.svg", env.name()),
            figures::pareto(
                &format!("{}: reward against |DP|", env.title()),
                reward_label,
                &names,
                &points,
            ),
            "Reward against |DP|, one point per configuration (mean over all its seeds, 95 % \
             whiskers on both axes); ringed and joined: the non-dominated configurations.",
        );
        // Learning curves: each grid's best configuration, evaluation seeds.
        let mut rewards = Vec::new();
        let mut dps = Vec::new();
        for (g, best) in self.bests(env) {
            let Some(c) = best else { continue };
            let mut by_it: BTreeMap<u32, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
            for &i in &c.runs {
                let r = &self.runs[i];
                if !self.split.evaluation.contains(&r.seed) {
                    continue;
                }
                for p in &r.curve {
                    let e = by_it.entry(p.iteration).or_default();
                    e.0.extend(p.reward);
                    e.1.extend(p.dp.map(f64::abs));
                }
            }
            let pts = |k: usize| -> Vec<(u32, Estimate)> {
                by_it
                    .iter()
                    .filter_map(|(&it, v)| Some((it, mean_ci(if k == 0 { &v.0 } else { &v.1 })?)))
                    .collect()
            };
            let label = self.grid_name(g).to_string();
            rewards.push(figures::Curve {
                series: series_of(g),
                label: label.clone(),
                points: pts(0),
            });
            dps.push(figures::Curve {
                series: series_of(g),
                label,
                points: pts(1),
            });
        }
        doc.figure(
            format!("curves-{}.svg", env.name()),
            figures::curves(env.title(), &rewards, &dps),
            "Learning curves of each algorithm's best configuration: the rollouts' reward and |DP| \
             per iteration, mean over the evaluation seeds and its 95 % band.",
        );
        self.heat_figures(doc, env);
        if env == Env::Ah {
            let mut radars = Vec::new();
            for (g, best) in self.bests(env) {
                let Some(c) = best else { continue };
                let mut seen = false;
                let groups: [Vec<f64>; 2] = ["non_sensitive", "sensitive"].map(|grp| {
                    fairground_kernel::ah::action::NAMES
                        .iter()
                        .map(|a| {
                            let v: Vec<f64> = self
                                .by_seed(c, &self.split.evaluation, &|e| {
                                    e["action_profile"][grp][*a].as_f64()
                                })
                                .into_values()
                                .collect();
                            seen |= !v.is_empty();
                            if v.is_empty() { 0.0 } else { stats::mean(&v) }
                        })
                        .collect()
                });
                if !seen {
                    // No evaluation (or an eval.json from before action profiles) to draw.
                    continue;
                }
                radars.push(figures::Radar {
                    title: self.grid_name(g).to_string(),
                    groups,
                });
            }
            doc.figure(
                "radar-ah.svg".into(),
                figures::radars(&fairground_kernel::ah::action::NAMES, &radars),
                "AH action profile per group: the fraction of turns each group's agents chose each \
                 action, each algorithm's best configuration, evaluation seeds (chosen actions: \
                 under the reference profile moves are chosen but never executed).",
            );
        }
    }

    /// Per grid with α and β axes, and per value of its other axes, heat maps of |DP| and
    /// reward (all seeds).
    fn heat_figures(&self, doc: &mut Doc, env: Env) {
        let all = self.all_seeds();
        for g in self.grids_of(env) {
            let axes = &self.sweep.grids[g].axes;
            let (Some(ax_a), Some(ax_b)) = (
                axes.iter().find(|a| a.name == "fair.alpha"),
                axes.iter().find(|a| a.name == "fair.beta"),
            ) else {
                continue;
            };
            let text = |v: &toml::Value| v.to_string();
            let alphas: Vec<String> = ax_a.values.iter().map(text).collect();
            let betas: Vec<String> = ax_b.values.iter().map(text).collect();
            let rest_of = |c: &Config| -> String {
                let r = &self.runs[c.runs[0]];
                r.axes
                    .iter()
                    .filter(|(k, _)| !["fair.alpha", "fair.beta", "seed"].contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={}", data::value_text(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let cfgs = self.grid_configs(env, g);
            let rests: Vec<String> = cfgs
                .iter()
                .map(|c| rest_of(c))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for rest in rests {
                let cell_of = |m: &Measure, a: usize, b: usize| -> Option<f64> {
                    let c = cfgs.iter().find(|c| {
                        let r = &self.runs[c.runs[0]];
                        rest_of(c) == rest
                            && r.axes.get("fair.alpha").map(|v| v.to_string())
                                == Some(alphas[a].clone())
                            && r.axes.get("fair.beta").map(|v| v.to_string())
                                == Some(betas[b].clone())
                    })?;
                    let v = self.values(c, &all, m);
                    (!v.is_empty()).then(|| stats::mean(&v))
                };
                let grid = |m: &Measure| -> Vec<Vec<Option<f64>>> {
                    (0..betas.len())
                        .map(|b| (0..alphas.len()).map(|a| cell_of(m, a, b)).collect())
                        .collect()
                };
                let what = if rest.is_empty() {
                    self.grid_name(g).to_string()
                } else {
                    format!("{} {rest}", self.grid_name(g))
                };
                let maps = [
                    figures::Heat {
                        title: format!("|DP|: {what}"),
                        cells: grid(&ABS_DP),
                    },
                    figures::Heat {
                        title: format!("reward: {what}"),
                        cells: grid(&REWARD),
                    },
                ];
                doc.figure(
                    format!("heatmap-{}-{}.svg", env.name(), file_part(&what)),
                    figures::heat_maps(&alphas, &betas, &maps),
                    &format!("{what}: mean |DP| and mean reward over α × β (all seeds)."),
                );
            }
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn runs_csv(runs: &[Run], sweep: &Sweep) -> String {
    let mut csv = String::from("index,grid,state,values");
    for m in &CORE {
        csv += &format!(",{}", m.key);
    }
    csv += ",env,algo,seed\n";
    for r in runs {
        csv += &format!(
            "{},{},{},{}",
            r.index,
            csv_field(&sweep.grids[r.grid].name),
            r.state,
            csv_field(&r.values.join(" "))
        );
        for m in &CORE {
            let x = r.eval.as_ref().and_then(|e| (m.read)(e));
            csv += &format!(",{}", x.map_or(String::new(), |x| format!("{x}")));
        }
        csv += &format!(",{},{},{}\n", r.env.name(), csv_field(&r.algo), r.seed);
    }
    csv
}

/// marl-eval's raw-data layout: environment → task (the profile) → algorithm (grid and
/// configuration) → `run_<seed>` → `step_<iteration>` (the rollout's reward and |DP|, with
/// `step_count` = environment steps) and `absolute_metrics` (the evaluation's measures; one
/// value each, since `eval.json` holds the mean over its episodes).
fn marl_eval(rep: &Report) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut root = Map::new();
    for c in &rep.configs {
        for &i in &c.runs {
            let r = &rep.runs[i];
            let alg = format!("{} {}", rep.grid_name(c.grid), c.key);
            let mut run = Map::new();
            for p in &r.curve {
                let mut step = Map::new();
                step.insert("step_count".into(), json!(p.env_steps));
                if let Some(x) = p.reward {
                    step.insert("reward".into(), json!([x]));
                }
                if let Some(x) = p.dp {
                    step.insert("abs_dp".into(), json!([x.abs()]));
                }
                run.insert(format!("step_{}", p.iteration), step.into());
            }
            if let Some(e) = &r.eval {
                let abs: Map<String, Value> = CORE
                    .iter()
                    .filter_map(|m| Some((m.key.to_string(), json!([(m.read)(e)?]))))
                    .collect();
                run.insert("absolute_metrics".into(), abs.into());
            }
            let task = root
                .entry(r.env.title().replace(' ', ""))
                .or_insert_with(|| Map::new().into())
                .as_object_mut()
                .expect("object")
                .entry(r.profile.clone())
                .or_insert_with(|| Map::new().into())
                .as_object_mut()
                .expect("object")
                .entry(alg)
                .or_insert_with(|| Map::new().into())
                .as_object_mut()
                .expect("object");
            task.insert(format!("run_{}", r.seed), run.into());
        }
    }
    root.into()
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;\
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid \
#bbb;padding:3px 6px;text-align:right}th{background:#eee}td:first-child,td:nth-child(2){text-align:left}\
.note{color:#444;font-size:14px}figure{margin:1.5em 0}figcaption{font-size:14px;color:#444}\
code{background:#f3f3f3;padding:0 3px}";

/// Write the report of the sweep in `dir` into `out`; returns `report.md`'s text.
pub fn report(dir: &Path, out: &Path, opts: &Options) -> Result<String, TrainError> {
    let sweep: Sweep = load(dir)?;
    let runs = data::read_runs(dir, &sweep)?;
    let configs = data::configs(&runs);
    let split = split(&runs, opts)?;
    if split.none
        && let Some(g) =
            (0..sweep.grids.len()).find(|&g| configs.iter().filter(|c| c.grid == g).count() > 1)
    {
        return Err(TrainError::Io {
            path: "--selection-seeds".into(),
            message: format!(
                "0: allowed only when every grid has one configuration (grid {} has {})",
                sweep.grids[g].name,
                configs.iter().filter(|c| c.grid == g).count()
            ),
        });
    }
    let rep = Report {
        sweep: &sweep,
        runs,
        configs,
        split,
        opts: opts.clone(),
    };
    let mut doc = Doc {
        md: "# Sweep report\n".into(),
        html: String::new(),
        figures: Vec::new(),
    };
    let finished = rep.runs.iter().filter(|r| r.eval.is_some()).count();
    doc.para(&format!(
        "From `{}`: {} planned runs, {finished} with an `eval.json`. Everything below is \
         recomputed from the runs' `eval.json` and `metrics.jsonl` (`runs.csv` has one row per \
         run; `marl-eval.json` the same runs for rliable).",
        dir.display(),
        rep.runs.len()
    ));
    let envs: BTreeSet<Env> = rep.runs.iter().map(|r| r.env).collect();
    for env in envs {
        rep.env_section(&mut doc, env);
    }
    doc.heading(2, "Every configuration");
    for g in 0..sweep.grids.len() {
        doc.table(&rep.grid_table(g), 3);
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    write_atomic(
        &out.join("runs.csv"),
        runs_csv(&rep.runs, &sweep).as_bytes(),
    )?;
    for (file, svg) in &doc.figures {
        write_atomic(&out.join(file), svg.as_bytes())?;
    }
    let json = serde_json::to_string_pretty(&marl_eval(&rep)).expect("json");
    write_atomic(&out.join("marl-eval.json"), json.as_bytes())?;
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sweep report</title>\
         <style>{STYLE}</style></head><body>\n<h1>Sweep report</h1>\n{}</body></html>\n",
        doc.html
    );
    write_atomic(&out.join("report.html"), html.as_bytes())?;
    write_atomic(&out.join("report.md"), doc.md.as_bytes())?;
    Ok(doc.md)
}
