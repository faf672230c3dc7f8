//! `fairground sweep plan`: a sweep file's axes expanded into a numbered list of runs, each a
//! config file with its content hash, validated before anything is written.
//!
//! A sweep file has a `[base]` table (any keys of a `train --config` file) and an `[axes]`
//! table whose entries are lists of values, named by their dotted config key (`seed`,
//! `algo`, `fair.alpha`, written `fair.alpha = [...]` or `"fair.alpha" = [...]`). The runs are
//! the cartesian product of the axes, in the alphabetical order of the axis names with the
//! last varying fastest, so the plan depends only on the file's content. Several grids (each
//! its own product, over its own base) are `[[grid]]` tables, planned one after another.

use crate::error::TrainError;
use crate::io::{read_to_string, write_atomic};
use crate::run::dir::resolve_text;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The format version of `sweep.json`.
pub const SWEEP_VERSION: u32 = 1;

/// One axis: a dotted config key and its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    pub name: String,
    pub values: Vec<toml::Value>,
}

/// One planned run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    pub index: usize,
    /// The grid it belongs to (an index into `Sweep::grids`).
    pub grid: usize,
    /// The axis values of this run, by axis name.
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Relative to the sweep directory: the run's config file and its run directory.
    pub config: String,
    pub dir: String,
    /// SHA-256 of the config file's bytes.
    pub config_hash: String,
}

/// The sweep file's `[eval]` table: every run is evaluated after training
/// (`fairground eval RUN --episodes E [--greedy]`), its `eval.json` part of the run's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalPlan {
    /// Whole episodes (HS: days), 1..=1,000,000.
    pub episodes: u32,
    #[serde(default)]
    pub greedy: bool,
}

/// `sweep.json`: the whole plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub version: u32,
    /// Evaluation after training (none without an `[eval]` table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalPlan>,
    /// SHA-256 of the sweep file the plan was made from.
    pub source_hash: String,
    pub grids: Vec<Grid>,
    pub runs: Vec<PlannedRun>,
}

/// At most this many runs in one sweep (a typo in an axis should not write a million files).
pub const RUNS_MAX: usize = 100_000;

fn sweep_err(path: &str, why: String) -> TrainError {
    TrainError::Io {
        path: path.to_string(),
        message: why,
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The axes of an `[axes]` table, nested tables flattened into dotted names.
fn axes_of(
    t: &toml::Table,
    prefix: &str,
    out: &mut Vec<Axis>,
    path: &str,
) -> Result<(), TrainError> {
    for (k, v) in t {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => axes_of(sub, &name, out, path)?,
            toml::Value::Array(values) if values.is_empty() => {
                return Err(sweep_err(
                    path,
                    format!("axis `{name}`: an empty list; give at least one value"),
                ));
            }
            toml::Value::Array(values) => out.push(Axis {
                name,
                values: values.clone(),
            }),
            other => {
                return Err(sweep_err(
                    path,
                    format!("axis `{name}`: {other} is not a list of values (write [{other}])"),
                ));
            }
        }
    }
    Ok(())
}

/// Set the dotted key `name` of `t` to `v`, creating tables on the way.
fn set_dotted(t: &mut toml::Table, name: &str, v: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().expect("split yields one part");
    let mut cur = t;
    for p in parts {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is a value in [base], not a section"))?;
    }
    cur.insert(last.to_string(), v);
    Ok(())
}

/// One grid of a sweep: a base (the file's `[base]` with the grid's own `base` over it) and
/// its axes, whose product it plans.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub name: String,
    pub axes: Vec<Axis>,
}

/// `a` with `b`'s keys over it, sub-tables merged key by key.
fn merged(a: &toml::Table, b: &toml::Table) -> toml::Table {
    let mut out = a.clone();
    for (k, v) in b {
        match (out.get_mut(k), v) {
            (Some(toml::Value::Table(x)), toml::Value::Table(y)) => *x = merged(x, y),
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn table_of(v: Option<toml::Value>, what: &str, path: &str) -> Result<toml::Table, TrainError> {
    match v {
        Some(toml::Value::Table(t)) => Ok(t),
        None => Ok(toml::Table::new()),
        Some(_) => Err(sweep_err(path, format!("`{what}` must be a table"))),
    }
}

/// A grid's axes, sorted by name; an empty set is refused.
fn grid_axes(t: toml::Table, what: &str, path: &str) -> Result<Vec<Axis>, TrainError> {
    let mut axes = Vec::new();
    axes_of(&t, "", &mut axes, path)?;
    axes.sort_by(|a, b| a.name.cmp(&b.name));
    if axes.is_empty() {
        return Err(sweep_err(
            path,
            format!("{what} is empty: name at least one axis (for example seed = [0, 1, 2])"),
        ));
    }
    Ok(axes)
}

/// Parse a sweep file and plan its runs (every run's config resolved and validated as
/// `train --config` would). Returns the plan and each run's config text.
///
/// One grid is `[axes]`; several are `[[grid]]` tables, each with a `name`, an `axes` table
/// and optionally a `base` table over the file's `[base]` (the paper's grids: Fair-PPO over
/// α × β × notion, each baseline over its own parameters). Runs are numbered grid by grid in
/// file order.
pub fn plan_text(text: &str, path: &str) -> Result<(Sweep, Vec<String>), TrainError> {
    let mut file: toml::Table = toml::from_str(text).map_err(|e| {
        sweep_err(
            path,
            format!("not a sweep file: {}", one_line(&e.to_string())),
        )
    })?;
    if let Some(k) = file
        .keys()
        .find(|k| !matches!(k.as_str(), "base" | "axes" | "grid" | "eval"))
    {
        return Err(sweep_err(
            path,
            format!(
                "unknown table `{k}`: a sweep file has [base], [axes] (or [[grid]]) and [eval]"
            ),
        ));
    }
    let eval = match file.remove("eval") {
        None => None,
        Some(v) => {
            let e: EvalPlan = v.try_into().map_err(|e: toml::de::Error| {
                sweep_err(path, format!("[eval]: {}", one_line(&e.to_string())))
            })?;
            if !(1..=1_000_000).contains(&e.episodes) {
                return Err(sweep_err(
                    path,
                    format!("[eval] episodes: {} is not in 1..=1000000", e.episodes),
                ));
            }
            Some(e)
        }
    };
    let base = table_of(file.remove("base"), "base", path)?;
    let mut grids: Vec<(Grid, toml::Table)> = Vec::new();
    match (file.remove("axes"), file.remove("grid")) {
        (Some(_), Some(_)) => {
            return Err(sweep_err(
                path,
                "both [axes] and [[grid]]: use one (several grids are [[grid]] tables)".into(),
            ));
        }
        (Some(axes), None) => {
            let axes = grid_axes(table_of(Some(axes), "axes", path)?, "[axes]", path)?;
            let name = "main".to_string();
            grids.push((Grid { name, axes }, base.clone()));
        }
        (None, Some(toml::Value::Array(list))) if !list.is_empty() => {
            for (k, g) in list.into_iter().enumerate() {
                let mut g = table_of(Some(g), "grid", path)?;
                let name = match g.remove("name") {
                    Some(toml::Value::String(s)) => s,
                    None => format!("grid{k}"),
                    Some(other) => {
                        return Err(sweep_err(
                            path,
                            format!("grid {k}: name {other} is not a string"),
                        ));
                    }
                };
                let grid_base = merged(&base, &table_of(g.remove("base"), "grid.base", path)?);
                let axes = g
                    .remove("axes")
                    .ok_or_else(|| sweep_err(path, format!("grid `{name}`: no axes table")))?;
                if let Some(extra) = g.keys().next() {
                    return Err(sweep_err(
                        path,
                        format!(
                            "grid `{name}`: unknown key `{extra}` (a grid has name, base, axes)"
                        ),
                    ));
                }
                let axes = grid_axes(
                    table_of(Some(axes), "grid.axes", path)?,
                    &format!("grid `{name}`'s axes"),
                    path,
                )?;
                grids.push((Grid { name, axes }, grid_base));
            }
        }
        _ => {
            return Err(sweep_err(
                path,
                "no [axes] table: name at least one axis (for example seed = [0, 1, 2])".into(),
            ));
        }
    }
    let mut total = 0usize;
    for (g, _) in &grids {
        let n = g
            .axes
            .iter()
            .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
            .unwrap_or(usize::MAX);
        total = total.saturating_add(n);
    }
    if total > RUNS_MAX {
        return Err(sweep_err(
            path,
            format!("more than {RUNS_MAX} runs; split the sweep"),
        ));
    }
    let mut runs = Vec::with_capacity(total);
    let mut texts = Vec::with_capacity(total);
    for (gi, (grid, grid_base)) in grids.iter().enumerate() {
        let axes = &grid.axes;
        let n: usize = axes.iter().map(|a| a.values.len()).product();
        for local in 0..n {
            let index = runs.len();
            // Mixed radix, the last axis fastest.
            let mut rest = local;
            let mut picks = vec![0usize; axes.len()];
            for (k, a) in axes.iter().enumerate().rev() {
                picks[k] = rest % a.values.len();
                rest /= a.values.len();
            }
            let mut t = grid_base.clone();
            let mut values = serde_json::Map::new();
            let mut label = Vec::with_capacity(axes.len());
            for (a, &p) in axes.iter().zip(&picks) {
                let v = a.values[p].clone();
                label.push(format!("{} = {v}", a.name));
                values.insert(
                    a.name.clone(),
                    serde_json::to_value(&v).expect("a TOML value is JSON"),
                );
                set_dotted(&mut t, &a.name, v)
                    .map_err(|why| sweep_err(path, format!("axis `{}`: {why}", a.name)))?;
            }
            let label = label.join(", ");
            let config_text = toml::to_string(&t).expect("a table serialises");
            resolve_text(&config_text, "of the run").map_err(|e| {
                let at = if grids.len() > 1 {
                    format!("grid `{}`, ", grid.name)
                } else {
                    String::new()
                };
                sweep_err(path, format!("{at}run {index} ({label}): {e}"))
            })?;
            let id = format!("{index:04}");
            runs.push(PlannedRun {
                index,
                grid: gi,
                values,
                config: format!("runs/{id}/config.toml"),
                dir: format!("runs/{id}/run"),
                config_hash: sha256_hex(config_text.as_bytes()),
            });
            texts.push(config_text);
        }
    }
    let sweep = Sweep {
        version: SWEEP_VERSION,
        eval,
        source_hash: sha256_hex(text.as_bytes()),
        grids: grids.into_iter().map(|(g, _)| g).collect(),
        runs,
    };
    Ok((sweep, texts))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `sweep plan FILE --out DIR`: plan, then write every run's config and `sweep.json` (last).
/// A directory that already holds a plan is accepted only if it is the same plan.
pub fn plan(file: &Path, out: &Path) -> Result<Sweep, TrainError> {
    let path = file.display().to_string();
    let text = read_to_string(file)?;
    let (sweep, texts) = plan_text(&text, &path)?;
    let json = serde_json::to_string_pretty(&sweep).expect("json");
    let sweep_path = out.join("sweep.json");
    if sweep_path.exists() {
        let old = read_to_string(&sweep_path)?;
        if old == json {
            return Ok(sweep);
        }
        return Err(sweep_err(
            &out.display().to_string(),
            "holds another sweep's plan (sweep.json differs); plan into a new directory".into(),
        ));
    }
    if out.is_file() {
        return Err(sweep_err(
            &out.display().to_string(),
            "is a file, not a directory".into(),
        ));
    }
    for (run, text) in sweep.runs.iter().zip(&texts) {
        let p = out.join(&run.config);
        let parent = p.parent().expect("runs/NNNN");
        std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
        write_atomic(&p, text.as_bytes())?;
    }
    write_atomic(&sweep_path, json.as_bytes())?;
    Ok(sweep)
}

/// Read `DIR/sweep.json`, refusing another version or a damaged file.
pub fn load(dir: &Path) -> Result<Sweep, TrainError> {
    let p = dir.join("sweep.json");
    if !p.exists() {
        return Err(sweep_err(
            &dir.display().to_string(),
            "no sweep.json there (make one with `fairground sweep plan FILE --out DIR`)".into(),
        ));
    }
    let s: Sweep = serde_json::from_str(&read_to_string(&p)?)
        .map_err(|e| sweep_err(&p.display().to_string(), format!("damaged: {e}")))?;
    if s.version != SWEEP_VERSION {
        return Err(sweep_err(
            &p.display().to_string(),
            format!(
                "version {} (this fairground reads {SWEEP_VERSION})",
                s.version
            ),
        ));
    }
    Ok(s)
}

/// Run `i`'s config file, checked against its planned hash: its path and text.
pub fn run_config(dir: &Path, run: &PlannedRun) -> Result<(PathBuf, String), TrainError> {
    let p = dir.join(&run.config);
    let bytes = std::fs::read(&p).map_err(|e| TrainError::io(&p, e))?;
    let hash = sha256_hex(&bytes);
    if hash != run.config_hash {
        return Err(sweep_err(
            &p.display().to_string(),
            format!(
                "its content hash {hash} is not the planned {} (the file was changed after \
                 `sweep plan`); plan again",
                run.config_hash
            ),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| TrainError::io(&p, e))?;
    Ok((p, text))
}
