//! Files of a run directory, all written atomically: the bytes go to `NAME.tmp`, are synced,
//! and the temp file is renamed over `NAME`. A kill mid-write leaves at most a stale `.tmp`,
//! which readers ignore and the next write replaces.
//!
//! Checkpoints: `checkpoints/ckpt-NNNNNNNN.safetensors` (per group: `gN.params`, `gN.adam_m1`,
//! `gN.adam_m2`, `gN.adam_state` = [beta1_pow, beta2_pow, step]; `params` and the moments in
//! the `ActorCriticSpec` layout: trunk if any, then policy head, then value head) then its JSON
//! sidecar `ckpt-NNNNNNNN.json` (counters, RNG streams, the environment's snapshot). The sidecar is
//! written last, so a checkpoint counts only when both files are complete. HS checkpoints have
//! the same layout with three networks (`g0` router, `g1` dispatcher, `g2` manager) and the
//! hospital's snapshot under `hs_env` in the sidecar.

use crate::common::NetState;
use crate::error::TrainError;
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
    let mut f = std::fs::File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| TrainError::io(&tmp, e))?;
    f.sync_all().map_err(|e| TrainError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
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

fn ckpt_stem(dir: &Path, iteration: u32) -> PathBuf {
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
    let mut meta = std::collections::HashMap::new();
    meta.insert("param_hash".to_string(), param_hash.to_string());
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| TrainError::io(&stem.with_extension("safetensors"), e))?;
    write_atomic(&stem.with_extension("safetensors"), &bytes)?;
    let mut sidecar = serde_json::to_value(state).expect("state serialises");
    sidecar["param_hash"] = serde_json::Value::String(param_hash.to_string());
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

/// The newest complete checkpoint, or `None` when there is none.
pub fn load_latest_checkpoint<S: CheckpointState>(
    dir: &Path,
) -> Result<Option<(S, Vec<NetState>)>, TrainError> {
    let Some(iteration) = list_checkpoints(dir).into_iter().max() else {
        return Ok(None);
    };
    let stem = ckpt_stem(dir, iteration);
    let side_path = stem.with_extension("json");
    let state: S = serde_json::from_str(&read_to_string(&side_path)?)
        .map_err(|e| TrainError::io(&side_path, e))?;
    let st_path = stem.with_extension("safetensors");
    let bytes = std::fs::read(&st_path).map_err(|e| TrainError::io(&st_path, e))?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| TrainError::io(&st_path, e))?;
    let get = |name: String| -> Result<Vec<f32>, TrainError> {
        Ok(bytes_f32(
            st.tensor(&name)
                .map_err(|e| TrainError::io(&st_path, format!("{name}: {e}")))?
                .data(),
        ))
    };
    let mut nets = Vec::new();
    for g in 0..state.networks() {
        let c = get(format!("g{g}.adam_state"))?;
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
    Ok(Some((state, nets)))
}
