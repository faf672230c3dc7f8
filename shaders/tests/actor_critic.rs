//! Guarantees: the whole PPO minibatch step (grouped policy and value MLPs, multi-discrete head,
//! clipped loss with the fairness hooks, backward, Adam with gradient clipping) is
//! bit-reproducible on the GPU (parameters after 10 Adam steps hashed, two independent runs),
//! and the GPU and cpu backends, driven through the same `ActorCritic` interface, agree on
//! sampled actions, values, loss statistics and parameters after 10 steps. The same holds for
//! the shared-trunk model (trunk feeding both heads, the heads' input gradients summed).
//! Accumulate mode (the reference baselines' one step per update): training launches leave the
//! parameters and Adam's state untouched, and one step on the mean of two identical
//! minibatches' gradients is a plain step on that minibatch, bit for bit, on both backends.

mod common;

use common::minibatch::{Data, data, minibatch, train_10};
use common::{assert_close, gpu, uniform};
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, CpuExecutor, GpuExecutor, PpoHyper, SampleKey,
};

fn spec(batch: u32) -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width: 10,
        trunk: vec![],
        hidden: vec![64, 32],
        action_components: vec![9, 3],
        group_count: 2,
        hidden_activation: Activation::LeakyRelu,
        batch,
        use_masks: true,
    }
}

/// The HS model's shape (spec §3.2) at small widths: a shared trunk with linear heads, and a
/// trunk with a hidden layer in each head (the value head's input gradient then comes from a
/// hidden layer's backward).
fn trunk_specs(batch: u32) -> [ActorCriticSpec; 2] {
    [
        ActorCriticSpec {
            trunk: vec![48, 32],
            hidden: vec![],
            ..spec(batch)
        },
        ActorCriticSpec {
            trunk: vec![24],
            hidden: vec![16],
            ..spec(batch)
        },
    ]
}

fn hyper() -> PpoHyper {
    PpoHyper {
        clip_vloss: true,
        max_grad_norm: 0.5,
        loss_scale: 1.25,
        ..PpoHyper::default()
    }
}

fn fnv1a(words: &[f32]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        w.to_bits()
            .to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3))
    })
}

#[test]
fn gpu_training_is_bit_reproducible() {
    let Some(ctx) = gpu("gpu_training_is_bit_reproducible") else {
        return;
    };
    let s = spec(1000);
    let d = data(&s);
    let p0 = s.init_params(42);
    let mut hashes = Vec::new();
    for _ in 0..2 {
        let mut ac = ActorCritic::new(s.clone(), hyper(), &p0, |p| {
            GpuExecutor::new(ctx.clone(), p)
        })
        .unwrap();
        let p = train_10(&mut ac, &d);
        assert_ne!(p, p0, "training moved the parameters");
        hashes.push(fnv1a(&p));
    }
    assert_eq!(
        hashes[0], hashes[1],
        "parameter hashes after 10 Adam steps: {:016x} vs {:016x}",
        hashes[0], hashes[1]
    );
}

#[test]
fn gpu_and_cpu_backends_agree_through_the_same_interface() {
    let Some(ctx) = gpu("gpu_and_cpu_backends_agree_through_the_same_interface") else {
        return;
    };
    for batch in [7u32, 1000] {
        let s = spec(batch);
        let d = data(&s);
        let p0 = s.init_params(7);
        let mut g = ActorCritic::new(s.clone(), hyper(), &p0, |p| {
            GpuExecutor::new(ctx.clone(), p)
        })
        .unwrap();
        let mut c = ActorCritic::new(s.clone(), hyper(), &p0, |p| Ok(CpuExecutor::new(p))).unwrap();
        let key = SampleKey {
            seed: 99,
            iteration: 1,
            step: 2,
            agent_offset: 0,
        };
        let ga = g.act(&d.obs, &d.groups, &d.masks, key).unwrap();
        let ca = c.act(&d.obs, &d.groups, &d.masks, key).unwrap();
        // Untrained logits are near-uniform and well away from CDF ties at these keys.
        let same = ga
            .actions
            .iter()
            .zip(&ca.actions)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            same * 1000 >= ga.actions.len() * 999,
            "batch {batch}: {same} of {} actions agree",
            ga.actions.len()
        );
        // Same summation order; FMA and exp/log ulps only.
        assert_close("values", &ga.values, &ca.values, 1e-5, 1e-4);
        let gp = train_10(&mut g, &d);
        let cp = train_10(&mut c, &d);
        let (gs, cs) = (g.loss_stats().unwrap(), c.loss_stats().unwrap());
        assert_close(
            "loss stats",
            &[
                gs.policy_loss,
                gs.value_loss,
                gs.entropy,
                gs.approx_kl,
                gs.clip_fraction,
            ],
            &[
                cs.policy_loss,
                cs.value_loss,
                cs.entropy,
                cs.approx_kl,
                cs.clip_fraction,
            ],
            1e-4,
            1e-3,
        );
        // Ten Adam steps of lr 5e-4 move each parameter by at most ~5e-3; rounding differences
        // in the gradients change the steps by far less than one step (Adam normalises them,
        // so tiny gradients can flip sign: allow 1e-4, a fiftieth of the total motion).
        assert_close("params after 10 steps", &gp, &cp, 1e-4, 0.0);
    }
}

/// The first `rows` rows of `d` (a partial minibatch).
fn head(d: &Data, rows: usize, s: &ActorCriticSpec) -> Data {
    let (w, c) = (s.logit_width() as usize, s.action_components.len());
    Data {
        obs: d.obs[..rows * s.obs_width as usize].to_vec(),
        groups: d.groups[..rows].to_vec(),
        masks: d.masks[..rows * w].to_vec(),
        actions: d.actions[..rows * c].to_vec(),
        old_logp: d.old_logp[..rows].to_vec(),
        old_values: d.old_values[..rows].to_vec(),
        adv: d.adv[..rows].to_vec(),
        adj: d.adj[..rows].to_vec(),
        ret: d.ret[..rows].to_vec(),
    }
}

#[test]
fn partial_minibatches_run_on_fewer_rows_than_the_batch() {
    // Built for 64 rows, called with 23 (then 64 again): the same results as a network built
    // for exactly 23 rows, on both backends.
    let (big, small) = (spec(64), spec(23));
    let full = data(&big);
    let part = head(&full, 23, &big);
    let p0 = big.init_params(11);
    let cpu = |s: &ActorCriticSpec| {
        ActorCritic::new(s.clone(), hyper(), &p0, |p| Ok(CpuExecutor::new(p))).unwrap()
    };
    let (mut c64, mut c23) = (cpu(&big), cpu(&small));
    let key = SampleKey {
        seed: 5,
        iteration: 2,
        step: 3,
        agent_offset: 8,
    };
    let a64 = c64.act(&part.obs, &part.groups, &part.masks, key).unwrap();
    let a23 = c23.act(&part.obs, &part.groups, &part.masks, key).unwrap();
    assert_eq!(a64.actions.len(), 23 * 2);
    // Forward and sampling are per row: bit-identical.
    assert_eq!(a64, a23, "act on 23 of 64 rows = act on a 23-row network");
    let p64 = train_10(&mut c64, &part);
    let p23 = train_10(&mut c23, &part);
    // The weight gradients sum the same terms in the same row order, but in splits of
    // ceil(64 / 32) = 2 rows instead of 1, so the sums associate differently: rounding only.
    // After 10 Adam steps (each <= lr = 5e-4 per parameter) allow 1e-4, as for gpu vs cpu.
    assert_close("params, 23 of 64 rows vs 23 rows", &p64, &p23, 1e-4, 0.0);
    let (s64, s23) = (c64.loss_stats().unwrap(), c23.loss_stats().unwrap());
    // Per-row terms reduced in the same order, at parameters that differ by the rounding above.
    assert_close(
        "statistics, 23 of 64 rows vs 23 rows",
        &[
            s64.policy_loss,
            s64.value_loss,
            s64.entropy,
            s64.approx_kl,
            s64.clip_fraction,
        ],
        &[
            s23.policy_loss,
            s23.value_loss,
            s23.entropy,
            s23.approx_kl,
            s23.clip_fraction,
        ],
        1e-5,
        1e-4,
    );
    // Wrong row counts are typed errors.
    assert!(c23.act(&full.obs, &full.groups, &full.masks, key).is_err());
    assert!(c64.act(&full.obs[..15], &[], &[], key).is_err());

    let Some(ctx) = gpu("partial_minibatches_run_on_fewer_rows_than_the_batch") else {
        return;
    };
    let mut g64 = ActorCritic::new(big.clone(), hyper(), &p0, |p| {
        GpuExecutor::new(ctx.clone(), p)
    })
    .unwrap();
    let ga = g64.act(&part.obs, &part.groups, &part.masks, key).unwrap();
    assert_eq!(
        ga.actions, a64.actions,
        "untrained logits are far from CDF ties"
    );
    // Same summation order; FMA and exp/log ulps only (as above).
    assert_close("values", &ga.values, &a64.values, 1e-5, 1e-4);
    let gp = train_10(&mut g64, &part);
    assert_close("params after 10 partial steps", &gp, &p64, 1e-4, 0.0);
    // Back to full minibatches on the same network.
    let gf = train_10(&mut g64, &full);
    let cf = train_10(&mut c64, &full);
    assert_close("params after 10 full steps", &gf, &cf, 1e-4, 0.0);
}

#[test]
fn trunk_model_gpu_and_cpu_agree_and_gpu_training_is_bit_reproducible() {
    let Some(ctx) = gpu("trunk_model_gpu_and_cpu_agree_and_gpu_training_is_bit_reproducible")
    else {
        return;
    };
    for batch in [7u32, 1000] {
        for s in trunk_specs(batch) {
            let what = format!("batch {batch}, trunk {:?}, heads {:?}", s.trunk, s.hidden);
            let d = data(&s);
            let p0 = s.init_params(7);
            assert_eq!(p0.len(), s.param_len() as usize);
            let gpu_ac = || {
                ActorCritic::new(s.clone(), hyper(), &p0, |p| {
                    GpuExecutor::new(ctx.clone(), p)
                })
                .unwrap()
            };
            let mut g = gpu_ac();
            let mut c =
                ActorCritic::new(s.clone(), hyper(), &p0, |p| Ok(CpuExecutor::new(p))).unwrap();
            let key = SampleKey {
                seed: 99,
                iteration: 1,
                step: 2,
                agent_offset: 0,
            };
            let ga = g.act(&d.obs, &d.groups, &d.masks, key).unwrap();
            let ca = c.act(&d.obs, &d.groups, &d.masks, key).unwrap();
            // Untrained logits are near-uniform and well away from CDF ties at these keys.
            let same = ga
                .actions
                .iter()
                .zip(&ca.actions)
                .filter(|(a, b)| a == b)
                .count();
            assert!(
                same * 1000 >= ga.actions.len() * 999,
                "{what}: {same} of {} actions agree",
                ga.actions.len()
            );
            // Same summation order; FMA and exp/log ulps only (as for separate networks).
            assert_close(
                &format!("{what}: values"),
                &ga.values,
                &ca.values,
                1e-5,
                1e-4,
            );
            let gp = train_10(&mut g, &d);
            let cp = train_10(&mut c, &d);
            assert_ne!(gp, p0, "{what}: training moved the parameters");
            let trunk_len = s.param_offsets()[1] as usize;
            assert_ne!(gp[..trunk_len], p0[..trunk_len], "{what}: the trunk trains");
            let (gs, cs) = (g.loss_stats().unwrap(), c.loss_stats().unwrap());
            assert_close(
                &format!("{what}: loss stats"),
                &[
                    gs.policy_loss,
                    gs.value_loss,
                    gs.entropy,
                    gs.approx_kl,
                    gs.clip_fraction,
                ],
                &[
                    cs.policy_loss,
                    cs.value_loss,
                    cs.entropy,
                    cs.approx_kl,
                    cs.clip_fraction,
                ],
                1e-4,
                1e-3,
            );
            // As for separate networks: ten Adam steps of lr 5e-4 move a parameter by at most
            // ~5e-3; rounding differences change that by far less than one step.
            assert_close(
                &format!("{what}: params after 10 steps"),
                &gp,
                &cp,
                1e-4,
                0.0,
            );
            // A second, independent GPU run: the same bits.
            let again = train_10(&mut gpu_ac(), &d);
            assert_eq!(
                fnv1a(&gp),
                fnv1a(&again),
                "{what}: parameter hashes after 10 Adam steps differ run to run"
            );
        }
    }
}

fn accumulating() -> PpoHyper {
    PpoHyper {
        accumulate: true,
        ..hyper()
    }
}

/// On the cpu backend: training launches in accumulate mode move nothing; one step on the mean
/// of the same minibatch's gradients twice is a plain step on it, bit for bit.
fn accumulated_vs_plain_cpu() {
    let s = spec(64);
    let d = data(&s);
    let mb = minibatch(&d);
    let p0 = s.init_params(11);
    let cpu = |p| Ok(CpuExecutor::new(p));
    let mut plain = ActorCritic::new(s.clone(), hyper(), &p0, cpu).unwrap();
    let mut acc = ActorCritic::new(s.clone(), accumulating(), &p0, cpu).unwrap();
    assert!(
        plain.apply_accumulated(1).is_err(),
        "a plain actor-critic has no accumulator"
    );
    for step in 0..3 {
        let (before, state) = (acc.params().unwrap(), acc.optimizer_state().unwrap());
        acc.train_minibatch(&mb).unwrap();
        acc.train_minibatch(&mb).unwrap();
        assert_eq!(
            acc.params().unwrap(),
            before,
            "step {step}: no move before apply"
        );
        assert_eq!(
            acc.optimizer_state().unwrap(),
            state,
            "step {step}: Adam untouched"
        );
        acc.apply_accumulated(2).unwrap();
        plain.train_minibatch(&mb).unwrap();
        assert_eq!(
            acc.params().unwrap(),
            plain.params().unwrap(),
            "step {step}: params"
        );
        assert_eq!(
            acc.optimizer_state().unwrap(),
            plain.optimizer_state().unwrap(),
            "step {step}: Adam's state"
        );
    }
}

#[test]
fn accumulate_mode_steps_once_on_the_mean_gradient() {
    accumulated_vs_plain_cpu();
    let Some(ctx) = gpu("accumulate_mode_steps_once_on_the_mean_gradient") else {
        return;
    };
    let s = spec(64);
    let d = data(&s);
    let mb = minibatch(&d);
    let p0 = s.init_params(11);
    let mut g = ActorCritic::new(s.clone(), accumulating(), &p0, |p| {
        GpuExecutor::new(ctx.clone(), p)
    })
    .unwrap();
    let mut c =
        ActorCritic::new(s.clone(), accumulating(), &p0, |p| Ok(CpuExecutor::new(p))).unwrap();
    for step in 0..3 {
        for _ in 0..2 {
            g.train_minibatch(&mb).unwrap();
            c.train_minibatch(&mb).unwrap();
        }
        g.apply_accumulated(2).unwrap();
        c.apply_accumulated(2).unwrap();
        assert_close(
            &format!("accumulated step {step}: params"),
            &g.params().unwrap(),
            &c.params().unwrap(),
            1e-5,
            1e-5,
        );
    }
}

/// A gradient per logit (`set_logit_grad_extra`) moves the parameters' gradient by exactly the
/// gradient of Σ_{allowed (r, j)} E_rj · z_rj(θ): finite differences over parameters of every
/// layer of the policy head; zeros, or switching it off, change nothing, bit for bit.
#[test]
fn an_extra_logit_gradient_is_the_gradient_of_its_linear_term() {
    let s = ActorCriticSpec {
        group_count: 1,
        ..spec(16)
    };
    let d = data(&s);
    let d = Data {
        groups: vec![],
        ..d
    };
    let mb = minibatch(&d);
    let p0 = s.init_params(21);
    let lw = s.logit_width() as usize;
    let extra = uniform(30, 16 * lw, -1.0, 1.0);
    let cpu = |p| Ok(CpuExecutor::new(p));
    let grads = |e: Option<&[f32]>| {
        let mut ac = ActorCritic::new(s.clone(), hyper(), &p0, cpu).unwrap();
        ac.set_logit_grad_extra(e).unwrap();
        ac.train_minibatch(&mb).unwrap();
        ac.grads().unwrap()
    };
    let (g0, g1) = (grads(None), grads(Some(&extra)));
    assert_eq!(grads(Some(&vec![0.0; 16 * lw])), g0, "zeros change nothing");
    let linear = |p: &[f32]| -> f64 {
        let mut ac = ActorCritic::new(s.clone(), hyper(), p, cpu).unwrap();
        let key = SampleKey {
            seed: 1,
            iteration: 0,
            step: 0,
            agent_offset: 0,
        };
        ac.act(&d.obs, &[], &d.masks, key).unwrap();
        let z = ac.logits().unwrap();
        (0..16 * lw)
            .filter(|&i| d.masks[i] != 0)
            .map(|i| f64::from(extra[i]) * f64::from(z[i]))
            .sum()
    };
    let [_, policy_at, value_at] = s.param_offsets();
    let mut checked = 0;
    for k in (policy_at as usize..value_at as usize).step_by(97) {
        let h = 1e-3f32;
        let (mut up, mut down) = (p0.clone(), p0.clone());
        up[k] += h;
        down[k] -= h;
        let fd = (linear(&up) - linear(&down)) / (2.0 * f64::from(h));
        // The PPO loss's loss_scale (1.25 in `hyper`) does not scale the extra term.
        let got = f64::from(g1[k] - g0[k]);
        assert!(
            (got - fd).abs() <= 2e-3 * fd.abs().max(1.0),
            "param {k}: gradient change {got}, finite difference {fd}"
        );
        checked += 1;
    }
    assert!(checked > 10);
}
