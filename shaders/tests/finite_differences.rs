//! Guarantees: the CPU twins' backward passes (MLP weights, biases and inputs; policy head
//! log-probability and entropy with masks and several components; clipped PPO loss with and
//! without value clipping; the reference's pairwise HS surrogate; the whole PPO loss of a
//! shared-trunk `ActorCritic` with respect to every parameter, trunk included) agree with central
//! finite differences of an independent f64 reference forward pass; the pairwise surrogate also
//! matches a direct O(B²) formula and hand-computed numbers on a two-sample example. Since the
//! GPU kernels match the twins (gpu_vs_cpu.rs), this checks
//! the GPU gradients too. Points are chosen away from the loss's kinks.

mod common;

use common::{integers, uniform};
use fairground_shaders::cpu;
use fairground_shaders::layout::*;
use fairground_shaders::mlp::{MlpPlacement, MlpSpec};
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, CpuExecutor, Executor, ExecutorExt, Minibatch,
    PpoHyper, Program,
};

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
        let place = MlpPlacement::new(spec.clone(), 0, rows as u32);
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
    cpu::head_backward(&p, &z, &mask, &comps, &actions, &pg, &mut lg, &[]);
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
            pairwise: 0,
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

/// The reference's HS surrogate by its definition (spec §3.2): over all B² pairs,
/// r_ij = exp(logp_new_j - logp_old_i), pg_ij = max(-A_j r_ij, -A_j clip(r_ij)); the mean.
fn pairwise_surrogate64(lp_new: &[f64], lp_old: &[f64], adv: &[f64], eps: f64) -> f64 {
    let b = lp_new.len();
    let mut sum = 0.0;
    for &old in lp_old {
        for j in 0..b {
            let r = (lp_new[j] - old).exp();
            sum += (-adv[j] * r).max(-adv[j] * r.clamp(1.0 - eps, 1.0 + eps));
        }
    }
    sum / (b * b) as f64
}

fn pairwise_params(rows: usize, clip_vloss: u32, loss_scale: f32) -> LossParams {
    LossParams {
        rows: rows as u32,
        clip_coef: 0.2,
        vf_coef: 0.7,
        ent_coef: 0.01,
        clip_vloss,
        loss_scale,
        loss_norm: 1.0 / rows as f32,
        pairwise: 1,
    }
}

/// (policy_grad, value_grad, terms) of the CPU twin.
#[allow(clippy::too_many_arguments)]
fn twin(
    p: &LossParams,
    lp_new: &[f32],
    ent: &[f32],
    v: &[f32],
    lp_old: &[f32],
    v_old: &[f32],
    adv: &[f32],
    adj: &[f32],
    ret: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = lp_new.len();
    let policy_new: Vec<f32> = lp_new.iter().zip(ent).flat_map(|(&a, &b)| [a, b]).collect();
    let policy_old: Vec<f32> = lp_old.iter().flat_map(|&a| [a, 0.0]).collect();
    let (mut pg, mut vg, mut terms) = (vec![0.0; 2 * rows], vec![0.0; rows], vec![0.0; 4 * rows]);
    cpu::ppo_loss(
        p,
        &policy_new,
        v,
        &policy_old,
        v_old,
        adv,
        adj,
        ret,
        &mut pg,
        &mut vg,
        &mut terms,
    );
    (pg, vg, terms)
}

#[test]
fn ppo_loss_pairwise_matches_the_direct_formula_on_a_hand_example() {
    // B = 2, clip 0.2. r_ij = exp(lp_new_j - lp_old_i):
    //   j = 0 (A = 1):  r_00 = 1.1, r_10 = 0.55 -> pg -1.1 (unclipped), -0.55 (unclipped)
    //   j = 1 (A = -2): r_01 = 1.0, r_11 = 0.5  -> pg  2.0 (unclipped),  1.6 (clipped: 2 x 0.8)
    // Surrogate = (-1.1 - 0.55 + 2.0 + 1.6) / 4 = 0.4875 (the per-sample ratio would give
    // (-1.1 + 1.6) / 2 = 0.25). d/dlp_new_0 = (-1.1 - 0.55) / 4, d/dlp_new_1 = (2.0 + 0) / 4.
    let lp_new = [1.1f32.ln(), 0.0];
    let lp_old = [0.0f32, 2.0f32.ln()];
    let adv = [1.0f32, -2.0];
    let zeros = [0.0f32; 2];
    let ent = [0.5f32, 0.5];
    let p = LossParams {
        vf_coef: 0.0,
        ent_coef: 0.0,
        ..pairwise_params(2, 0, 1.0)
    };
    let (pg, vg, terms) = twin(
        &p, &lp_new, &ent, &zeros, &lp_old, &zeros, &adv, &zeros, &zeros,
    );
    let direct = pairwise_surrogate64(
        &lp_new.map(f64::from),
        &lp_old.map(f64::from),
        &adv.map(f64::from),
        0.2,
    );
    assert!((direct - 0.4875).abs() < 1e-6, "direct formula {direct}");
    // terms[4j] is row j's mean over i, so the mean of the rows' terms is the B² mean.
    let twin_mean = (f64::from(terms[0]) + f64::from(terms[4])) / 2.0;
    assert!(
        (twin_mean - direct).abs() < 1e-6,
        "twin {twin_mean} vs {direct}"
    );
    assert!((terms[0] - (-0.825)).abs() < 1e-6, "row 0: {}", terms[0]);
    assert!((terms[4] - 1.8).abs() < 1e-6, "row 1: {}", terms[4]);
    assert!(
        (pg[0] - (-1.65 / 4.0)).abs() < 1e-6,
        "d/dlp_new_0 {}",
        pg[0]
    );
    assert!((pg[2] - 0.5).abs() < 1e-6, "d/dlp_new_1 {}", pg[2]);
    // Clipped fraction per row: one of two pairs (r = 0.55, r = 0.5) lies outside [0.8, 1.2].
    assert_eq!([terms[3], terms[7]], [0.5, 0.5]);
    // approx_kl stays the diagonal's: (r_jj - 1) - ln r_jj.
    let kl0 = (1.1f32 - 1.0) - 1.1f32.ln();
    let kl1 = (0.5f32 - 1.0) - 0.5f32.ln();
    assert!((terms[2] - kl0).abs() < 1e-6 && (terms[6] - kl1).abs() < 1e-6);
    assert_eq!(vg, [0.0, 0.0]);
    // The per-sample loss on the same data differs: the flag changes the surrogate.
    let plain = LossParams { pairwise: 0, ..p };
    let (_, _, plain_terms) = twin(
        &plain, &lp_new, &ent, &zeros, &lp_old, &zeros, &adv, &zeros, &zeros,
    );
    assert!((plain_terms[0] - (-1.1)).abs() < 1e-6 && (plain_terms[4] - 1.6).abs() < 1e-6);

    // A larger random minibatch: the twin's row means average to the direct B² mean.
    let rows = 37;
    let lp_new = uniform(80, rows, -2.5, -1.5);
    let lp_old = uniform(81, rows, -2.5, -1.5);
    let adv = uniform(82, rows, -1.0, 1.0);
    let adj = uniform(83, rows, -0.2, 0.2);
    let z = vec![0.0f32; rows];
    let (_, _, terms) = twin(
        &pairwise_params(rows, 0, 1.0),
        &lp_new,
        &z,
        &z,
        &lp_old,
        &z,
        &adv,
        &adj,
        &z,
    );
    let a: Vec<f64> = adv
        .iter()
        .zip(&adj)
        .map(|(&a, &j)| f64::from(a + j))
        .collect();
    let direct = pairwise_surrogate64(
        &lp_new.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        &lp_old.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        &a,
        0.2,
    );
    let twin_mean = (0..rows).map(|j| f64::from(terms[4 * j])).sum::<f64>() / rows as f64;
    rel_check("37-row pairwise mean", twin_mean, direct, 1e-5);
}

#[test]
fn ppo_loss_pairwise_gradient_matches_finite_differences() {
    let rows = 24usize;
    for clip_vloss in [0u32, 1] {
        let p = pairwise_params(rows, clip_vloss, 2.0);
        let lp_new = uniform(70, rows, -2.0, -1.0);
        let lp_old = uniform(71, rows, -2.0, -1.0);
        let v = uniform(72, rows, -1.0, 1.0);
        let v_old = uniform(73, rows, -1.0, 1.0);
        let adv = uniform(74, rows, -1.0, 1.0);
        let adj = uniform(75, rows, -0.2, 0.2);
        let ret = uniform(76, rows, -1.0, 1.0);
        let ent = uniform(77, rows, 0.5, 2.0);
        let (pg, vg, _) = twin(&p, &lp_new, &ent, &v, &lp_old, &v_old, &adv, &adj, &ret);
        let a: Vec<f64> = adv
            .iter()
            .zip(&adj)
            .map(|(&a, &j)| f64::from(a + j))
            .collect();
        let lo: Vec<f64> = lp_old.iter().map(|&x| f64::from(x)).collect();
        let eps = f64::from(p.clip_coef);
        // The whole minibatch loss in f64: scale * (B² mean surrogate + per-row value and
        // entropy means), loss_norm = 1/B.
        let total = |ln: &[f64], vv: &[f64], ee: &[f64]| {
            let mut rest = 0.0;
            for j in 0..rows {
                let mut vl = (vv[j] - f64::from(ret[j])).powi(2);
                if clip_vloss != 0 {
                    let vo = f64::from(v_old[j]);
                    vl = vl.max((vo + (vv[j] - vo).clamp(-eps, eps) - f64::from(ret[j])).powi(2));
                }
                rest += f64::from(p.vf_coef) * vl - f64::from(p.ent_coef) * ee[j];
            }
            f64::from(p.loss_scale)
                * (pairwise_surrogate64(ln, &lo, &a, eps) + rest * f64::from(p.loss_norm))
        };
        let ln0: Vec<f64> = lp_new.iter().map(|&x| f64::from(x)).collect();
        let v0: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
        let e0: Vec<f64> = ent.iter().map(|&x| f64::from(x)).collect();
        let h = 1e-6;
        let mut checked = 0;
        for j in 0..rows {
            // Skip rows with a pair within 1e-4 of a clip boundary, or a value kink.
            let near = lo.iter().any(|&o| {
                let r = (ln0[j] - o).exp();
                (r - 0.8).abs() < 1e-4 || (r - 1.2).abs() < 1e-4
            }) || ((v0[j] - f64::from(v_old[j])).abs() - 0.2).abs() < 1e-4;
            if near {
                continue;
            }
            checked += 1;
            let bump = |x: &[f64], d: f64| {
                let mut y = x.to_vec();
                y[j] += d;
                y
            };
            rel_check(
                &format!("row {j} d/dlogp"),
                f64::from(pg[2 * j]),
                (total(&bump(&ln0, h), &v0, &e0) - total(&bump(&ln0, -h), &v0, &e0)) / (2.0 * h),
                1e-4,
            );
            rel_check(
                &format!("row {j} d/dentropy"),
                f64::from(pg[2 * j + 1]),
                (total(&ln0, &v0, &bump(&e0, h)) - total(&ln0, &v0, &bump(&e0, -h))) / (2.0 * h),
                1e-4,
            );
            rel_check(
                &format!("row {j} d/dvalue"),
                f64::from(vg[j]),
                (total(&ln0, &bump(&v0, h), &e0) - total(&ln0, &bump(&v0, -h), &e0)) / (2.0 * h),
                1e-4,
            );
        }
        assert!(
            checked > rows / 2,
            "most rows are away from kinks ({checked})"
        );
    }
}

/// f64 forward of one row through one parameter set of an MLP placed at `offset`; `min_z`
/// tracks the smallest |pre-activation| of the layers with a kink (ReLU, leaky ReLU).
fn mlp_row64(
    spec: &MlpSpec,
    params: &[f64],
    offset: usize,
    group: usize,
    x: &[f64],
    min_z: &mut f64,
) -> Vec<f64> {
    let base = offset + group * spec.set_len() as usize;
    let mut h = x.to_vec();
    for l in &spec.layers() {
        let (ni, no) = (l.in_width as usize, l.out_width as usize);
        h = (0..no)
            .map(|o| {
                let mut z = params[base + l.bias_offset as usize + o];
                for i in 0..ni {
                    z += params[base + l.weight_offset as usize + o * ni + i] * h[i];
                }
                if matches!(l.activation, Activation::Relu | Activation::LeakyRelu) {
                    *min_z = min_z.min(z.abs());
                }
                act64(z, l.activation)
            })
            .collect();
    }
    h
}

/// One minibatch of an actor-critic loss check.
struct AcBatch {
    obs: Vec<f32>,
    groups: Vec<u32>,
    masks: Vec<u32>,
    actions: Vec<u32>,
    old_logp: Vec<f32>,
    old_values: Vec<f32>,
    adv: Vec<f32>,
    adj: Vec<f32>,
    ret: Vec<f32>,
}

/// Per row of the f64 reference forward: (log-prob, entropy, value); and the smallest
/// |pre-activation| at a ReLU kink.
fn ac_forward64(s: &ActorCriticSpec, p: &[f64], b: &AcBatch) -> (Vec<[f64; 3]>, f64) {
    let (ow, lw, nc) = (
        s.obs_width as usize,
        s.logit_width() as usize,
        s.action_components.len(),
    );
    let [_, policy_at, value_at] = s.param_offsets().map(|o| o as usize);
    let mut min_z = f64::MAX;
    let rows = (0..b.groups.len())
        .map(|r| {
            let g = b.groups[r] as usize;
            let x: Vec<f64> = b.obs[r * ow..][..ow]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let h = match s.trunk() {
                Some(t) => mlp_row64(&t, p, 0, g, &x, &mut min_z),
                None => x,
            };
            let z = mlp_row64(&s.policy(), p, policy_at, g, &h, &mut min_z);
            let v = mlp_row64(&s.value(), p, value_at, g, &h, &mut min_z)[0];
            let (lp, ent) = head64(
                &z,
                &b.masks[r * lw..][..lw],
                &s.action_components,
                &b.actions[r * nc..][..nc],
            );
            [lp, ent, v]
        })
        .collect();
    (rows, min_z)
}

/// The f64 minibatch loss: the sum over rows of [`ppo64`] (which carries the 1 / rows mean).
fn ac_loss64(s: &ActorCriticSpec, p: &[f64], b: &AcBatch, lp: &LossParams) -> f64 {
    let (rows, _) = ac_forward64(s, p, b);
    rows.iter()
        .enumerate()
        .map(|(r, &[logp, ent, v])| {
            ppo64(
                logp,
                v,
                f64::from(b.old_logp[r]),
                f64::from(b.old_values[r]),
                f64::from(b.adv[r]) + f64::from(b.adj[r]),
                f64::from(b.ret[r]),
                ent,
                lp,
            )
        })
        .sum()
}

#[test]
fn actor_critic_trunk_loss_gradient_matches_finite_differences() {
    let rows = 12usize;
    for (trunk, hidden) in [(vec![7u32, 6], vec![]), (vec![6], vec![4u32])] {
        let s = ActorCriticSpec {
            obs_width: 5,
            trunk: trunk.clone(),
            hidden: hidden.clone(),
            action_components: vec![3, 2],
            group_count: 2,
            hidden_activation: Activation::LeakyRelu,
            batch: rows as u32,
            use_masks: true,
        };
        let what = format!("trunk {trunk:?}, heads {hidden:?}");
        let hyper = PpoHyper {
            clip_coef: 0.2,
            vf_coef: 0.7,
            ent_coef: 0.01,
            clip_vloss: true,
            loss_scale: 1.25,
            max_grad_norm: 0.0,
            ..PpoHyper::default()
        };
        let lp = LossParams {
            rows: rows as u32,
            clip_coef: hyper.clip_coef,
            vf_coef: hyper.vf_coef,
            ent_coef: hyper.ent_coef,
            clip_vloss: u32::from(hyper.clip_vloss),
            loss_scale: hyper.loss_scale,
            loss_norm: 1.0 / rows as f32,
            pairwise: 0,
        };
        let (lw, nc) = (s.logit_width() as usize, s.action_components.len());
        let actions: Vec<u32> = integers(71, rows, 3)
            .into_iter()
            .zip(integers(72, rows, 2))
            .flat_map(|(a, b)| [a, b])
            .collect();
        // Masks with about a third of the logits forbidden, the stored actions always allowed.
        let mut masks: Vec<u32> = integers(73, rows * lw, 3)
            .iter()
            .map(|&v| u32::from(v != 0))
            .collect();
        for r in 0..rows {
            masks[r * lw + actions[r * nc] as usize] = 1;
            masks[r * lw + 3 + actions[r * nc + 1] as usize] = 1;
        }
        let mut b = AcBatch {
            obs: uniform(70, rows * 5, -1.5, 1.5),
            groups: integers(74, rows, 2),
            masks,
            actions,
            old_logp: vec![0.0; rows],
            old_values: vec![0.0; rows],
            adv: uniform(75, rows, -1.0, 1.0),
            adj: uniform(76, rows, -0.1, 0.1),
            ret: uniform(79, rows, -1.0, 1.0),
        };
        let p0 = s.init_params(5);
        let p64: Vec<f64> = p0.iter().map(|&v| f64::from(v)).collect();
        // Old log-probs and values relative to the current ones, away from every kink: rows
        // 0, 3, .. far below the clip range, rows 1, 4, .. far above (clipped surrogate and
        // clipped value branches), the rest well inside.
        let (now, min_z) = ac_forward64(&s, &p64, &b);
        let near = uniform(78, rows, -0.1, 0.1);
        for (r, &[logp, _, v]) in now.iter().enumerate() {
            let off = match r % 3 {
                0 => 0.5,
                1 => -0.5,
                _ => f64::from(near[r]),
            };
            b.old_logp[r] = (logp + off) as f32;
            b.old_values[r] = (v + off) as f32;
            let ratio = (logp - f64::from(b.old_logp[r])).exp();
            assert!(
                (ratio - 0.8).abs() > 1e-2 && (ratio - 1.2).abs() > 1e-2,
                "{what}: row {r} ratio {ratio} is away from the clip kinks"
            );
            let dv = v - f64::from(b.old_values[r]);
            let clipped = f64::from(b.old_values[r]) + dv.clamp(-0.2, 0.2);
            let ret = f64::from(b.ret[r]);
            assert!(
                dv.abs() < 0.2 || ((v - ret).powi(2) - (clipped - ret).powi(2)).abs() > 1e-3,
                "{what}: row {r} is away from the value-clip kink"
            );
        }
        // Central differences of h = 1e-6 never cross a leaky ReLU kink.
        assert!(
            min_z > 1e-4,
            "{what}: a pre-activation {min_z} is at a kink"
        );

        let mut ac = ActorCritic::new(s.clone(), hyper, &p0, |p| Ok(CpuExecutor::new(p))).unwrap();
        ac.train_minibatch(&Minibatch {
            obs: &b.obs,
            group_ids: &b.groups,
            masks: &b.masks,
            actions: &b.actions,
            old_logp: &b.old_logp,
            old_values: &b.old_values,
            advantages: &b.adv,
            adv_adjust: &b.adj,
            returns: &b.ret,
        })
        .unwrap();
        let g = ac.grads().unwrap();
        assert_eq!(g.len(), p64.len());
        let trunk_len = s.param_offsets()[1] as usize;
        assert!(trunk_len > 0);
        assert!(
            g[..trunk_len].iter().any(|v| v.abs() > 1e-3),
            "{what}: the trunk's gradient is not negligible"
        );
        let h = 1e-6;
        for k in 0..p64.len() {
            let (mut a, mut c) = (p64.clone(), p64.clone());
            a[k] += h;
            c[k] -= h;
            let fd = (ac_loss64(&s, &a, &b, &lp) - ac_loss64(&s, &c, &b, &lp)) / (2.0 * h);
            let part = if k < trunk_len { "trunk" } else { "head" };
            // f32 analytic gradient against an f64 derivative: 1e-4 relative.
            rel_check(
                &format!("{what}: {part} param {k}"),
                f64::from(g[k]),
                fd,
                1e-4,
            );
        }
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
