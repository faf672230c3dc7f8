//! The report's measures: each a name, a label, how to read it from an `eval.json`, and which
//! direction is better. DP and CSP are read under the keys the run's profile names in
//! `table_keys` (AH reference: differences of group totals; clean: per-agent means; HS: `dp`).

use serde_json::Value;

/// Which way a measure improves (what the Pareto front and the probability of improvement use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Signed quantities (DP, CSP): neither direction is better; their sizes are.
    Neither,
}

pub struct Measure {
    pub key: &'static str,
    pub label: &'static str,
    pub read: fn(&Value) -> Option<f64>,
    pub better: Better,
}

fn table_key(e: &Value, i: usize, default: &'static str) -> String {
    e["table_keys"][i].as_str().unwrap_or(default).to_string()
}

fn dp_of(e: &Value) -> Option<f64> {
    e[table_key(e, 0, "dp")].as_f64()
}

fn csp(e: &Value, cell: &str) -> Option<f64> {
    e[table_key(e, 1, "csp")][cell].as_f64()
}

/// AH: reward per agent-step; HS: patients treated per day.
fn reward_of(e: &Value) -> Option<f64> {
    e["mean_reward_per_agent_step"]
        .as_f64()
        .or_else(|| e["patients_treated_mean"].as_f64())
}

fn welfare(e: &Value, k: &str) -> Option<f64> {
    e["welfare"]["groups"][k]
        .as_f64()
        .or_else(|| e["welfare"]["impairment_groups"][k].as_f64())
}

macro_rules! m {
    ($key:literal, $label:literal, $better:ident, $read:expr) => {
        Measure {
            key: $key,
            label: $label,
            read: $read,
            better: Better::$better,
        }
    };
}

pub const REWARD: Measure = m!("reward", "reward", Higher, reward_of);
pub const ABS_DP: Measure = m!("abs_dp", "|DP|", Lower, |e| dp_of(e).map(f64::abs));

/// The mean over episodes of each episode's |DP| (`dp_abs`; `dp_total_abs` where the profile's
/// table reads totals): unlike [`ABS_DP`], gaps of opposite signs in different episodes do not
/// cancel. The replication protocol's statistic (docs/fair-ppo.md).
pub const EPISODE_ABS_DP: Measure = m!("dp_abs", "mean |DP| per episode", Lower, |e| {
    e[format!("{}_abs", table_key(e, 0, "dp"))].as_f64()
});

pub const DP: Measure = m!("dp", "DP", Neither, dp_of);

/// What the paired table tests, each against PPO.
pub const PAIRED: [Measure; 4] = [
    EPISODE_ABS_DP,
    m!("csp_sum", "CSP Σ|·|", Lower, |e| csp(e, "sum")),
    m!("cf", "CF", Lower, |e| e["cf"].as_f64()),
    REWARD,
];

/// The columns of `runs.csv` and of the all-configurations tables (both environments).
pub const CORE: [Measure; 8] = [
    REWARD,
    m!("dp", "DP", Neither, dp_of),
    ABS_DP,
    m!("csp_sum", "CSP Σ|·|", Lower, |e| csp(e, "sum")),
    m!("cf", "CF", Lower, |e| e["cf"].as_f64()),
    m!("gini", "Gini", Lower, |e| e["gini"]
        .as_f64()
        .or_else(|| welfare(e, "gini"))),
    m!("jain", "JFI", Higher, |e| e["jain"]
        .as_f64()
        .or_else(|| welfare(e, "jain"))),
    m!("nnsw", "NNSW", Higher, |e| welfare(e, "nnsw")),
];

/// The paper's AH table: efficiency and fairness per algorithm.
pub const AH_TABLE: [Measure; 7] = [
    REWARD,
    m!("dp", "DP", Neither, dp_of),
    ABS_DP,
    m!("gini", "Gini", Lower, |e| e["gini"].as_f64()),
    m!("jain", "JFI", Higher, |e| e["jain"].as_f64()),
    m!("nnsw", "NNSW", Higher, |e| welfare(e, "nnsw")),
    m!("cf", "CF", Lower, |e| e["cf"].as_f64()),
];

/// The paper's AH per-colour table: CSP per berry colour and the four group totals.
pub const AH_COLOUR: [Measure; 7] = [
    m!("csp_red", "CSP red", Neither, |e| csp(e, "red")),
    m!("csp_blue", "CSP blue", Neither, |e| csp(e, "blue")),
    m!("csp_sum", "CSP Σ|·|", Lower, |e| csp(e, "sum")),
    m!("NSr", "NS red", Higher, |e| e["group_totals"]["NSr"]
        .as_f64()),
    m!("NSb", "NS blue", Higher, |e| e["group_totals"]["NSb"]
        .as_f64()),
    m!("Sr", "S red", Higher, |e| e["group_totals"]["Sr"].as_f64()),
    m!("Sb", "S blue", Higher, |e| e["group_totals"]["Sb"].as_f64()),
];

/// HS Table 1: patients treated, DP, escorts, swing moves and routing outcomes.
pub const HS_TABLE1: [Measure; 9] = [
    m!("treated", "patients treated", Higher, |e| {
        e["patients_treated_mean"].as_f64()
    }),
    m!("dp", "DP", Neither, dp_of),
    ABS_DP,
    m!("escort_wait", "escort wait", Lower, |e| {
        e["escort_wait_mean"].as_f64()
    }),
    m!("escort_travel", "escort travel", Lower, |e| {
        e["escort_travel_mean"].as_f64()
    }),
    m!("swing_moves", "swing moves", Lower, |e| {
        e["swing_moves_mean"].as_f64()
    }),
    m!("perfect", "perfect", Higher, |e| {
        e["routing_outcome_fraction"]["perfect"].as_f64()
    }),
    m!("backup", "backup", Neither, |e| {
        e["routing_outcome_fraction"]["backup"].as_f64()
    }),
    m!("wrong", "incorrect", Lower, |e| {
        e["routing_outcome_fraction"]["wrong"].as_f64()
    }),
];

/// HS Table 2's cells for one priority: the reward (ledger) gap and finished patients per day
/// by impairment.
pub fn hs_table2(e: &Value, priority: &str) -> [Option<f64>; 4] {
    let p = &e["by_priority"][priority];
    [
        p["gap"].as_f64(),
        p["finished_per_day"]["none"].as_f64(),
        p["finished_per_day"]["low"].as_f64(),
        p["finished_per_day"]["high"].as_f64(),
    ]
}

pub const HS_TABLE2_COLUMNS: [&str; 4] = [
    "reward gap (NI − I)",
    "finished, not impaired",
    "finished, low impairment",
    "finished, high impairment",
];

/// Priorities in the order of the paper's Table 2.
pub const PRIORITIES: [&str; 3] = ["high", "medium", "low"];
