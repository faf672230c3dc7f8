//! Guarantees: the CPU twins' backward passes (MLP weights, biases and inputs; policy head
//! log-probability and entropy with masks and several components; clipped PPO loss with and
//! without value clipping) agree with central finite differences of an independent f64
//! reference forward pass. Since the GPU kernels match the twins (gpu_vs_cpu.rs), this checks
//! the GPU gradients too. Points are chosen away from the loss's kinks.

mod common;

use common::{integers, uniform};
use fairground_shaders::cpu;
use fairground_shaders::layout::*;
use fairground_shaders::mlp::{MlpPlacement, MlpSpec};
use fairground_shaders::{Activation, CpuExecutor, Executor, ExecutorExt, Program};

fn act64(z: f64, a: Activation) -> f64 {
    match a {
        Activation::Identity => z,
        Activation::Relu => z.max(0.0),
        Activation::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                0.01 * z
            }
        }
        Activation::Tanh => z.tanh(),
    }
}

/// f64 reference forward of a grouped MLP, returning sum(output * weights_out).
fn mlp_loss64(
    spec: &MlpSpec,
    params: &[f64],
    x: &[f64],
    groups: &[u32],
    rows: usize,
    w_out: &[f64],
) -> f64 {
    let layers = spec.layers();
    let mut loss = 0.0;
    for r in 0..rows {
        let base = groups[r] as usize * spec.set_len() as usize;
        let mut h: Vec<f64> =
            x[r * spec.input_width() as usize..][..spec.input_width() as usize].to_vec();
        for l in &layers {
            let (ni, no) = (l.in_width as usize, l.out_width as usize);
            h = (0..no)
                .map(|o| {
                    let mut z = params[base + l.bias_offset as usize + o];
                    for i in 0..ni {
                        z += params[base + l.weight_offset as usize + o * ni + i] * h[i];
                    }
                    act64(z, l.activation)
                })
                .collect();
        }
        let no = spec.output_width() as usize;
        for o in 0..no {
            loss += h[o] * w_out[r * no + o];
        }
    }
    loss
}

fn rel_check(what: &str, analytic: f64, numeric: f64, tol: f64) {
    let err = (analytic - numeric).abs();
    assert!(
        err <= tol * (1.0 + numeric.abs().max(analytic.abs())),
        "{what}: analytic {analytic} vs finite difference {numeric}"
    );
}

#[test]
fn mlp_backward_matches_finite_differences() {
    for (widths, groups, act) in [
        (vec![3u32, 5, 2], 1u32, Activation::Tanh),
        (vec![4, 6, 6, 3], 2, Activation::LeakyRelu),
        (vec![2, 7, 1], 3, Activation::Relu),
    ] {
        let rows = 5usize;
        let spec = MlpSpec {
            widths: widths.clone(),
            hidden_activation: act,
            output_activation: Activation::Tanh,
            group_count: groups,
        };
        let place = MlpPlacement {
            spec: spec.clone(),
            param_offset: 0,
            rows: rows as u32,
        };
        let mut prog = Program::new();
        let x = prog.buffer("x", rows * widths[0] as usize);
        let params = prog.buffer("params", spec.param_len() as usize);
        let grads = prog.buffer("grads", spec.param_len() as usize);
        let gids = prog.buffer("groups", rows);
        let dy = prog.buffer("dy", rows * spec.output_width() as usize);
        let bufs = place.declare_buffers(&mut prog, "net", x, true);
        let seq = prog.sequence();
        place.record_forward(&mut prog, seq, params, gids, &bufs);
        place.record_backward(&mut prog, seq, params, grads, gids, &bufs, dy);
        let xv = uniform(1, rows * widths[0] as usize, -1.5, 1.5);
        let pv = spec.init_params(3);
        let gv = integers(2, rows, groups);
        let wv = uniform(4, rows * spec.output_width() as usize, -1.0, 1.0);
        let mut e = CpuExecutor::new(prog);
        e.write(x, &xv).unwrap();
        e.write(params, &pv).unwrap();
        e.write(gids, &gv).unwrap();
        e.write(dy, &wv).unwrap();
        e.run(seq).unwrap();
        let g: Vec<f32> = e.read(grads).unwrap();
        let dx: Vec<f32> = e.read(bufs.activation_grads[0].unwrap()).unwrap();

        let p64: Vec<f64> = pv.iter().map(|&v| f64::from(v)).collect();
        let x64: Vec<f64> = xv.iter().map(|&v| f64::from(v)).collect();
        let w64: Vec<f64> = wv.iter().map(|&v| f64::from(v)).collect();
        let h = 1e-6;
        for k in 0..p64.len() {
            let (mut a, mut b) = (p64.clone(), p64.clone());
            a[k] += h;
            b[k] -= h;
            let fd = (mlp_loss64(&spec, &a, &x64, &gv, rows, &w64)
                - mlp_loss64(&spec, &b, &x64, &gv, rows, &w64))
                / (2.0 * h);
            // f32 analytic gradient against an f64 derivative: 1e-4 relative.
            rel_check(&format!("{widths:?} param {k}"), f64::from(g[k]), fd, 1e-4);
        }
        for k in 0..x64.len() {
            let (mut a, mut b) = (x64.clone(), x64.clone());
            a[k] += h;
            b[k] -= h;
            let fd = (mlp_loss64(&spec, &p64, &a, &gv, rows, &w64)
                - mlp_loss64(&spec, &p64, &b, &gv, rows, &w64))
                / (2.0 * h);
            rel_check(&format!("{widths:?} input {k}"), f64::from(dx[k]), fd, 1e-4);
        }
    }
}

/// f64 log-prob of `actions` and entropy of one row.
fn head64(z: &[f64], mask: &[u32], comps: &[u32], actions: &[u32]) -> (f64, f64) {
    let (mut logp, mut ent, mut start) = (0.0, 0.0, 0usize);
    for (c, &s) in comps.iter().enumerate() {
        let idx: Vec<usize> = (start..start + s as usize)
            .filter(|&j| mask[j] != 0)
            .collect();
        let m = idx.iter().map(|&j| z[j]).fold(f64::MIN, f64::max);
        let lse = m + idx.iter().map(|&j| (z[j] - m).exp()).sum::<f64>().ln();
        logp += z[start + actions[c] as usize] - lse;
        ent -= idx
            .iter()
            .map(|&j| (z[j] - lse).exp() * (z[j] - lse))
            .sum::<f64>();
        start += s as usize;
    }
    (logp, ent)
}

#[test]
fn policy_head_backward_matches_finite_differences() {
    let comps = [4u32, 3, 2];
    let width = 9usize;
    let rows = 6usize;
    let z = uniform(5, rows * width, -2.0, 2.0);
    let mut mask: Vec<u32> = integers(6, rows * width, 3)
        .iter()
        .map(|&v| u32::from(v != 0))
        .collect();
    let mut actions = Vec::new();
    for r in 0..rows {
        let mut start = 0;
        for &s in &comps {
            mask[r * width + start + s as usize - 1] = 1;
            actions.push(s - 1); // the last logit of each component, always allowed
            start += s as usize;
        }
    }
    let pg = uniform(7, rows * 2, -1.0, 1.0);
    let p = HeadParams {
        rows: rows as u32,
        logit_width: width as u32,
        component_count: 3,
        use_mask: 1,
        ..HeadParams::default()
    };
    let mut lg = vec![0.0f32; rows * width];
    cpu::head_backward(&p, &z, &mask, &comps, &actions, &pg, &mut lg);
    let h = 1e-6;
    for r in 0..rows {
        let zr: Vec<f64> = z[r * width..][..width]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mr = &mask[r * width..][..width];
        let ar = &actions[r * 3..][..3];
        let loss = |zz: &[f64]| {
            let (lp, en) = head64(zz, mr, &comps, ar);
            f64::from(pg[r * 2]) * lp + f64::from(pg[r * 2 + 1]) * en
        };
        for j in 0..width {
            let (mut a, mut b) = (zr.clone(), zr.clone());
            a[j] += h;
            b[j] -= h;
            let fd = (loss(&a) - loss(&b)) / (2.0 * h);
            rel_check(
                &format!("row {r} logit {j}"),
                f64::from(lg[r * width + j]),
                fd,
                1e-4,
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ppo64(
    lp_new: f64,
    v: f64,
    lp_old: f64,
    v_old: f64,
    adv: f64,
    ret: f64,
    ent: f64,
    p: &LossParams,
) -> f64 {
    let ratio = (lp_new - lp_old).exp();
    let eps = f64::from(p.clip_coef);
    let pg = (-adv * ratio).max(-adv * ratio.clamp(1.0 - eps, 1.0 + eps));
    let mut vl = (v - ret).powi(2);
    if p.clip_vloss != 0 {
        vl = vl.max((v_old + (v - v_old).clamp(-eps, eps) - ret).powi(2));
    }
    f64::from(p.loss_scale)
        * f64::from(p.loss_norm)
        * (pg + f64::from(p.vf_coef) * vl - f64::from(p.ent_coef) * ent)
}

#[test]
fn ppo_loss_gradient_matches_finite_differences() {
    let rows = 64usize;
    for clip_vloss in [0u32, 1] {
        let p = LossParams {
            rows: rows as u32,
            clip_coef: 0.2,
            vf_coef: 0.7,
            ent_coef: 0.01,
            clip_vloss,
            loss_scale: 2.0,
            loss_norm: 1.0 / rows as f32,
            pad0: 0,
        };
        let lp_new = uniform(60, rows, -2.0, -1.0);
        let lp_old = uniform(61, rows, -2.0, -1.0);
        let v = uniform(62, rows, -1.0, 1.0);
        let v_old = uniform(63, rows, -1.0, 1.0);
        let adv = uniform(64, rows, -1.0, 1.0);
        let adj = uniform(65, rows, -0.2, 0.2);
        let ret = uniform(66, rows, -1.0, 1.0);
        let ent = uniform(67, rows, 0.5, 2.0);
        let policy_new: Vec<f32> = lp_new
            .iter()
            .zip(&ent)
            .flat_map(|(&a, &b)| [a, b])
            .collect();
        let policy_old: Vec<f32> = lp_old.iter().flat_map(|&a| [a, 0.0]).collect();
        let (mut pg, mut vg, mut terms) =
            (vec![0.0; 2 * rows], vec![0.0; rows], vec![0.0; 4 * rows]);
        cpu::ppo_loss(
            &p,
            &policy_new,
            &v,
            &policy_old,
            &v_old,
            &adv,
            &adj,
            &ret,
            &mut pg,
            &mut vg,
            &mut terms,
        );
        let h = 1e-6;
        let mut checked = 0;
        for i in 0..rows {
            let f = |dl: f64, dv: f64, de: f64| {
                ppo64(
                    f64::from(lp_new[i]) + dl,
                    f64::from(v[i]) + dv,
                    f64::from(lp_old[i]),
                    f64::from(v_old[i]),
                    f64::from(adv[i]) + f64::from(adj[i]),
                    f64::from(ret[i]),
                    f64::from(ent[i]) + de,
                    &p,
                )
            };
            // Skip points within 1e-4 of a kink (clip boundaries, equal branches).
            let ratio = f64::from(lp_new[i] - lp_old[i]).exp();
            let dv = f64::from(v[i] - v_old[i]);
            let near = (ratio - 0.8).abs() < 1e-4
                || (ratio - 1.2).abs() < 1e-4
                || (dv.abs() - 0.2).abs() < 1e-4;
            if near {
                continue;
            }
            checked += 1;
            rel_check(
                &format!("row {i} d/dlogp"),
                f64::from(pg[2 * i]),
                (f(h, 0.0, 0.0) - f(-h, 0.0, 0.0)) / (2.0 * h),
                1e-4,
            );
            rel_check(
                &format!("row {i} d/dentropy"),
                f64::from(pg[2 * i + 1]),
                (f(0.0, 0.0, h) - f(0.0, 0.0, -h)) / (2.0 * h),
                1e-4,
            );
            rel_check(
                &format!("row {i} d/dvalue"),
                f64::from(vg[i]),
                (f(0.0, h, 0.0) - f(0.0, -h, 0.0)) / (2.0 * h),
                1e-4,
            );
            // The per-sample terms are the f64 loss's pieces.
            let scale = f64::from(p.loss_scale * p.loss_norm);
            let total = scale
                * (f64::from(terms[4 * i]) + f64::from(p.vf_coef) * f64::from(terms[4 * i + 1])
                    - f64::from(p.ent_coef) * f64::from(ent[i]));
            rel_check(&format!("row {i} loss"), total, f(0.0, 0.0, 0.0), 1e-5);
        }
        assert!(checked > rows / 2, "most rows are away from kinks");
    }
}

#[test]
fn philox_matches_the_published_known_answer() {
    // Random123 kat_vectors: philox4x32 10 rounds, counter 0, key 0.
    assert_eq!(
        cpu::philox4x32_10([0; 4], [0; 2]),
        [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
    );
    // counter all ones, key all ones.
    assert_eq!(
        cpu::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
    );
}
