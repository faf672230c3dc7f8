//! Files of a run directory, all written atomically: the bytes go to `NAME.tmp`, are synced,
//! and the temp file is renamed over `NAME`. A kill mid-write leaves at most a stale `.tmp`,
//! which readers ignore and the next write replaces.
//!
//! Checkpoints: `checkpoints/ckpt-NNNNNNNN.safetensors` (per group: `gN.params`, `gN.adam_m1`,
//! `gN.adam_m2`, `gN.adam_state` = [beta1_pow, beta2_pow, step]; `params` and the moments in
//! the `ActorCriticSpec` layout: trunk if any, then policy head, then value head) then its JSON
//! sidecar `ckpt-NNNNNNNN.json` (counters, RNG streams, the environment's snapshot). The sidecar is
//! written last, so a checkpoint counts only when both files are complete. Loading verifies
//! every checkpoint ([`read_checkpoint`]: hashes of the parameters and the Adam state, the
//! sidecar's iteration) and falls back to the newest one that verifies. HS checkpoints have
//! the same layout with three networks (`g0` router, `g1` dispatcher, `g2` manager) and the
//! hospital's snapshot under `hs_env` in the sidecar.

use crate::common::NetState;
use crate::error::TrainError;
use fairground_kernel::hash::TrajectoryHash;
use fairground_shaders::OptimizerState;
use fairground_shaders::layout::AdamState;
use safetensors::tensor::{Dtype, TensorView};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a checkpoint's JSON sidecar holds (the trainer's state type implements it): its
/// iteration and how many networks the tensors file holds.
pub trait CheckpointState: serde::Serialize + serde::de::DeserializeOwned {
    fn iteration(&self) -> u32;
    fn networks(&self) -> usize;
}

/// Write `bytes` to `path` via `path.tmp` + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        // A failed write (a full disk) leaves no partial `.tmp` behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TrainError::io(path, e)
    })
}

pub fn read_to_string(path: &Path) -> Result<String, TrainError> {
    std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Checkpoint `iteration`'s files without their extension (`.json`, `.safetensors`).
pub fn ckpt_stem(dir: &Path, iteration: u32) -> PathBuf {
    dir.join("checkpoints").join(format!("ckpt-{iteration:08}"))
}

/// Write a checkpoint (tensors, then the sidecar) and keep only the two newest.
pub fn save_checkpoint<S: CheckpointState>(
    dir: &Path,
    state: &S,
    nets: &[NetState],
    param_hash: &str,
) -> Result<(), TrainError> {
    let stem = ckpt_stem(dir, state.iteration());
    let mut named: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (g, n) in nets.iter().enumerate() {
        let adam = &n.optimizer.adam;
        let counters = [adam.beta1_pow, adam.beta2_pow, adam.step as f32];
        for (name, v) in [
            ("params", &n.params[..]),
            ("adam_m1", &n.optimizer.moment1[..]),
            ("adam_m2", &n.optimizer.moment2[..]),
            ("adam_state", &counters[..]),
        ] {
            named.push((format!("g{g}.{name}"), f32_bytes(v), v.len()));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(name, bytes, len)| {
            let view = TensorView::new(Dtype::F32, vec![*len], bytes).expect("f32 tensor");
            (name.clone(), view)
        })
        .collect();
    debug_assert_eq!(
        params_hash(nets),
        param_hash,
        "the trainer's hash of these parameters"
    );
    let mut meta = std::collections::HashMap::new();
    // One metadata entry only: safetensors writes its metadata map in hash order, and a second
    // key would make the file's bytes differ run to run (the Adam digest is in the sidecar).
    meta.insert("param_hash".to_string(), param_hash.to_string());
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| TrainError::io(&stem.with_extension("safetensors"), e))?;
    write_atomic(&stem.with_extension("safetensors"), &bytes)?;
    let mut sidecar = serde_json::to_value(state).expect("state serialises");
    sidecar["param_hash"] = serde_json::Value::String(param_hash.to_string());
    sidecar["optimizer_hash"] = serde_json::Value::String(optimizer_hash(nets));
    let text = serde_json::to_string(&sidecar).expect("json");
    write_atomic(&stem.with_extension("json"), text.as_bytes())?;
    // Keep the two newest complete checkpoints.
    let mut all = list_checkpoints(dir);
    all.sort_unstable();
    if all.len() > 2 {
        for &old in &all[..all.len() - 2] {
            let s = ckpt_stem(dir, old);
            let _ = std::fs::remove_file(s.with_extension("json"));
            let _ = std::fs::remove_file(s.with_extension("safetensors"));
        }
    }
    Ok(())
}

/// The newest checkpoint's iteration, verified or not (for messages).
pub fn latest_checkpoint(dir: &Path) -> Option<u32> {
    list_checkpoints(dir).into_iter().max()
}

/// Iterations of the checkpoints whose sidecar exists (temp files are ignored).
fn list_checkpoints(dir: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(dir.join("checkpoints")) else {
        return vec![];
    };
    rd.filter_map(|e| {
        let name = e.ok()?.file_name().into_string().ok()?;
        name.strip_prefix("ckpt-")?
            .strip_suffix(".json")?
            .parse()
            .ok()
    })
    .collect()
}

/// The digest of every network's parameters, in network order: what a checkpoint records as
/// `param_hash` (the trainers' `param_hash` is the same digest of the live parameters).
pub fn params_hash(nets: &[NetState]) -> String {
    let mut h = TrajectoryHash::new();
    for n in nets {
        h.write_f32s(&n.params);
    }
    h.hex()
}

/// The digest of every network's Adam state (moments, then the counters).
pub fn optimizer_hash(nets: &[NetState]) -> String {
    let mut h = TrajectoryHash::new();
    for n in nets {
        let a = &n.optimizer.adam;
        h.write_f32s(&n.optimizer.moment1);
        h.write_f32s(&n.optimizer.moment2);
        h.write_f32s(&[a.beta1_pow, a.beta2_pow]);
        h.write_u32(a.step);
    }
    h.hex()
}

/// The newest checkpoint that verifies ([`read_checkpoint`]), or `None` when there is none. A
/// newer one that does not verify (truncated, a flipped byte, an edited sidecar) is moved
/// aside into `checkpoints/damaged/` (never deleted) with one line on stderr naming it and why;
/// when none verifies, the newest one's reason is the error and nothing is moved.
pub fn load_latest_checkpoint<S: CheckpointState>(
    dir: &Path,
) -> Result<Option<(S, Vec<NetState>)>, TrainError> {
    let mut iterations = list_checkpoints(dir);
    iterations.sort_unstable_by(|a, b| b.cmp(a));
    let mut damaged: Vec<(u32, String)> = Vec::new();
    for &it in &iterations {
        match read_checkpoint::<S>(dir, it) {
            Ok(found) => {
                for (bad, why) in &damaged {
                    let kept = set_aside(dir, *bad)?;
                    eprintln!(
                        "warning: checkpoint {} does not verify ({why}); moved to {} and \
                         continuing from iteration {it}",
                        ckpt_stem(dir, *bad).display(),
                        kept.display()
                    );
                }
                return Ok(Some(found));
            }
            Err(why) => damaged.push((it, why)),
        }
    }
    match damaged.first() {
        None => Ok(None),
        Some((it, why)) => Err(TrainError::Checkpoint {
            why: format!(
                "{}: {why} (and no older checkpoint verifies)",
                ckpt_stem(dir, *it).display()
            ),
        }),
    }
}

/// Move checkpoint `iteration`'s files into `checkpoints/damaged/`; returns that folder.
fn set_aside(dir: &Path, iteration: u32) -> Result<PathBuf, TrainError> {
    let aside = dir.join("checkpoints").join("damaged");
    std::fs::create_dir_all(&aside).map_err(|e| TrainError::io(&aside, e))?;
    let stem = ckpt_stem(dir, iteration);
    for ext in ["json", "safetensors"] {
        let from = stem.with_extension(ext);
        if from.exists() {
            let to = aside.join(from.file_name().expect("a file name"));
            std::fs::rename(&from, &to).map_err(|e| TrainError::io(&from, e))?;
        }
    }
    Ok(aside)
}

/// Read checkpoint `iteration` and verify it: the sidecar parses and names that iteration, the
/// tensors parse, the parameters hash to the `param_hash` both files record, and the Adam
/// state to the sidecar's `optimizer_hash` (checkpoints of versions before it have none).
/// The error says what did not match.
pub fn read_checkpoint<S: CheckpointState>(
    dir: &Path,
    iteration: u32,
) -> Result<(S, Vec<NetState>), String> {
    let stem = ckpt_stem(dir, iteration);
    let side_path = stem.with_extension("json");
    let text = std::fs::read_to_string(&side_path).map_err(|e| format!("sidecar: {e}"))?;
    let sidecar: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("sidecar is not JSON: {e}"))?;
    let recorded_in_sidecar = |key: &str| sidecar[key].as_str().map(str::to_owned);
    let (side_params, side_optimizer) = (
        recorded_in_sidecar("param_hash"),
        recorded_in_sidecar("optimizer_hash"),
    );
    let state: S = serde_json::from_value(sidecar)
        .map_err(|e| format!("sidecar does not hold this run's state: {e}"))?;
    if state.iteration() != iteration {
        return Err(format!(
            "sidecar says iteration {}, its file name {iteration}",
            state.iteration()
        ));
    }
    let st_path = stem.with_extension("safetensors");
    let bytes = std::fs::read(&st_path).map_err(|e| format!("tensors: {e}"))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("tensors file is damaged: {e}"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("tensors file is damaged: {e}"))?;
    let get = |name: String| -> Result<Vec<f32>, String> {
        Ok(bytes_f32(
            st.tensor(&name)
                .map_err(|e| format!("tensor {name}: {e}"))?
                .data(),
        ))
    };
    let mut nets = Vec::new();
    for g in 0..state.networks() {
        let c = get(format!("g{g}.adam_state"))?;
        if c.len() != 3 {
            return Err(format!(
                "tensor g{g}.adam_state holds {} values, not 3",
                c.len()
            ));
        }
        nets.push(NetState {
            params: get(format!("g{g}.params"))?,
            optimizer: OptimizerState {
                moment1: get(format!("g{g}.adam_m1"))?,
                moment2: get(format!("g{g}.adam_m2"))?,
                adam: AdamState {
                    beta1_pow: c[0],
                    beta2_pow: c[1],
                    step: c[2] as u32,
                    pad0: 0,
                },
            },
        });
    }
    let recorded = |key: &str| meta.metadata().as_ref().and_then(|m| m.get(key).cloned());
    let computed = params_hash(&nets);
    match recorded("param_hash") {
        Some(h) if h == computed => {}
        Some(h) => {
            return Err(format!(
                "the parameters hash to {computed}, the tensors file records {h}"
            ));
        }
        None => return Err("the tensors file records no param_hash".into()),
    }
    if let Some(h) = side_params
        && h != computed
    {
        return Err(format!(
            "the parameters hash to {computed}, the sidecar records {h}"
        ));
    }
    if let Some(h) = side_optimizer {
        let o = optimizer_hash(&nets);
        if h != o {
            return Err(format!(
                "the Adam state hashes to {o}, the sidecar records {h}"
            ));
        }
    }
    Ok((state, nets))
}
