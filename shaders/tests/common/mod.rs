//! Shared helpers of the shader tests: one GPU device per test binary, the loud skip, a seeded
//! input generator and tolerance checks.
#![allow(dead_code)]

pub mod minibatch;

use fairground_shaders::cpu::philox4x32_10;
use fairground_shaders::{GpuContext, ShaderError};
use std::sync::{Arc, OnceLock};

/// The shared device, or `None` after a loud skip line. With FAIRGROUND_REQUIRE_GPU=1 a missing
/// adapter fails the test instead.
pub fn gpu(test: &str) -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        GpuContext::from_env()
            .map(Arc::new)
            .map_err(|e: ShaderError| e.to_string())
    });
    match ctx {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) => {
            if std::env::var("FAIRGROUND_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("FAIRGROUND_REQUIRE_GPU=1 but: {e}");
            }
            eprintln!(
                "SKIPPED (no GPU adapter): {test} — install mesa-vulkan-drivers or set \
                 FAIRGROUND_REQUIRE_GPU=1 to fail ({e})"
            );
            None
        }
    }
}

/// Deterministic uniform values in [lo, hi) from Philox, keyed by `stream`.
pub fn uniform(stream: u32, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let b = philox4x32_10([i as u32, (i >> 32) as u32, stream, 7], [0xF00D, 0xBEEF]);
            lo + (hi - lo) * ((b[0] >> 8) as f32 / 16_777_216.0)
        })
        .collect()
}

/// Deterministic integers in [0, n_values).
pub fn integers(stream: u32, n: usize, n_values: u32) -> Vec<u32> {
    (0..n)
        .map(|i| philox4x32_10([i as u32, 0, stream, 11], [0xF00D, 0xBEEF])[1] % n_values)
        .collect()
}

/// Panics with the worst element when |a - b| > atol + rtol * |b| anywhere.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&a, &b)) in gpu.iter().zip(cpu).enumerate() {
        let excess = (a - b).abs() - (atol + rtol * b.abs());
        let bad = excess > 0.0 || excess.is_nan();
        if bad && worst.is_none_or(|(_, w)| excess > w || excess.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i}: gpu {} vs cpu {} (atol {atol}, rtol {rtol})",
            gpu[i], cpu[i]
        );
    }
}

/// Bytes per storage binding of the chunking tests' device: small enough that a 4096 x 256
/// activation buffer (4 MiB) needs four chunks.
pub const SMALL_BINDING: u64 = 1 << 20;

/// A second kind of shared device (for test binaries that use it instead of [`gpu`]): the
/// adapter with `max_storage_buffer_binding_size` lowered to [`SMALL_BINDING`]. Same skip rules.
pub fn gpu_small_bindings(test: &str) -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        fairground_shaders::BackendChoice::from_env()
            .and_then(|choice| {
                GpuContext::with_limits(choice, |l| {
                    l.max_storage_buffer_binding_size = SMALL_BINDING;
                })
            })
            .map(Arc::new)
            .map_err(|e: ShaderError| e.to_string())
    });
    match ctx {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) => {
            if std::env::var("FAIRGROUND_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("FAIRGROUND_REQUIRE_GPU=1 but: {e}");
            }
            eprintln!(
                "SKIPPED (no GPU adapter): {test} — install mesa-vulkan-drivers or set \
                 FAIRGROUND_REQUIRE_GPU=1 to fail ({e})"
            );
            None
        }
    }
}
