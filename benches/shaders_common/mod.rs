// Shared setup of the shader benches (included with `#[path]`, not a bench target itself).

use fairground_shaders::{Activation, ActorCriticSpec, GpuContext};
use std::sync::Arc;

/// The reference's AH networks: 10 -> 256 -> 128 -> 64 -> {9, 1}, leaky ReLU.
pub fn reference_spec(batch: u32) -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width: 10,
        trunk: vec![],
        hidden: vec![256, 128, 64],
        action_components: vec![9],
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch,
        use_masks: false,
    }
}

/// The GPU device, or None with a loud line (the cpu benches still run).
pub fn gpu() -> Option<Arc<GpuContext>> {
    match GpuContext::from_env() {
        Ok(ctx) => Some(Arc::new(ctx)),
        Err(e) => {
            eprintln!("SKIPPED gpu benches (no GPU adapter): {e}");
            None
        }
    }
}

pub fn wave(n: usize, phase: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|k| ((k + phase) as f32 * 0.618_034).sin() * scale)
        .collect()
}
