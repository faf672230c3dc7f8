//! Guarantees: the on-device rollout store is a faithful replacement for host-side rollout
//! buffers. `copy_rows` (range, gather, scatter) copies words bit for bit on the GPU exactly as
//! its CPU twin does; a rollout acted, stored, advantaged (GAE over the store with holes marked
//! done) and trained through `ActorCritic::with_store` gives bit-identical actions, advantages,
//! returns and parameters to the same rollout kept on the host and fed through
//! `train_minibatch`; the store's standardisation leaves the valid rows with mean 0 and unbiased
//! std 1; the stored path agrees between the GPU and the cpu backend; and a ragged store (slot
//! s's trajectory is its first lengths[s] rows, HS decisions) gives, per slot, exactly the GAE of
//! that slot's sequence alone, bootstrapped from its pending value or else its own last value,
//! on both backends, leaving the rows past each length untouched; and the standardised value
//! target (returns := standardised advantage + stored value, the reference's HS-CF script) holds
//! row for row on both backends.

mod common;

use common::{assert_close, gpu, integers, uniform};
use fairground_shaders::cpu;
use fairground_shaders::layout::{CopyMode, CopyParams, GaeParams};
use fairground_shaders::ppo::StoreSpec;
use fairground_shaders::registry::Kernel;
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, CpuExecutor, Executor, ExecutorExt, GpuExecutor,
    Minibatch, PpoHyper, Program, SampleKey, ShaderError,
};

#[test]
fn copy_rows_matches_its_twin_bit_for_bit() {
    let Some(ctx) = gpu("copy_rows_matches_its_twin_bit_for_bit") else {
        return;
    };
    for (rows, width) in [(1u32, 1u32), (7, 2), (1000, 10), (70_000, 1)] {
        for mode in [CopyMode::Range, CopyMode::Gather, CopyMode::Scatter] {
            let src_rows = 2 * rows + 3;
            let mut prog = Program::new();
            let src = prog.buffer("src", (src_rows * width) as usize);
            let index = prog.buffer("index", rows as usize);
            let dst = prog.buffer("dst", (src_rows * width) as usize);
            let seq = prog.sequence();
            let p = CopyParams {
                rows,
                width,
                src_base: 3,
                dst_base: 1,
                mode: mode as u32,
                ..CopyParams::default()
            };
            prog.push(
                seq,
                Kernel::CopyRows,
                &p,
                &[src, index, dst],
                u64::from(rows) * u64::from(width),
            );
            // Raw words, including NaN payloads, must pass unchanged.
            let words: Vec<u32> = integers(1, (src_rows * width) as usize, u32::MAX);
            // Distinct indices (a permutation of every other row), as a scatter requires.
            let idx: Vec<u32> = (0..rows).map(|r| (r * 7919 % rows) * 2).collect();
            let before: Vec<u32> = integers(2, (src_rows * width) as usize, u32::MAX);
            let mut g = GpuExecutor::new(ctx.clone(), prog.clone()).unwrap();
            let mut c = CpuExecutor::new(prog);
            for e in [&mut g as &mut dyn Executor, &mut c] {
                e.write(src, &words).unwrap();
                e.write(index, &idx).unwrap();
                e.write(dst, &before).unwrap();
                e.run(seq).unwrap();
            }
            let gd: Vec<u32> = g.read(dst).unwrap();
            let cd: Vec<u32> = c.read(dst).unwrap();
            assert_eq!(gd, cd, "rows {rows} width {width} {mode:?}");
            let mut expect = before.clone();
            cpu::copy_rows(&p, &words, &idx, &mut expect);
            assert_eq!(cd, expect, "rows {rows} width {width} {mode:?}");
            assert_ne!(cd, before, "the copy wrote something");
        }
    }
}

const STEPS: u32 = 4;
const SLOTS: u32 = 6;

fn spec() -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width: 5,
        trunk: vec![],
        hidden: vec![16, 8],
        action_components: vec![4, 3],
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch: 8,
        use_masks: false,
    }
}

/// This network owns the even slots up to step 1 and the odd ones after: membership changes
/// only after step 1, where every episode ends (as an AH agent changes group only at a reset).
fn owns(t: u32, s: u32) -> bool {
    (s + u32::from(t >= 2)).is_multiple_of(2)
}

fn slots_at(t: u32) -> Vec<u32> {
    (0..SLOTS).filter(|&s| owns(t, s)).collect()
}

fn obs_at(t: u32, n: usize) -> Vec<f32> {
    uniform(10 + t, n * spec().obs_width as usize, -1.0, 1.0)
}

fn key(step: u32) -> SampleKey {
    SampleKey {
        seed: 5,
        iteration: 2,
        step,
        agent_offset: 0,
    }
}

/// What a rollout produced, as the host path keeps it (store layout, zero in the holes).
struct HostRollout {
    obs: Vec<f32>,
    actions: Vec<u32>,
    logp: Vec<f32>,
    values: Vec<f32>,
    last_values: Vec<f32>,
}

fn rewards_dones_valid() -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let n = (STEPS * SLOTS) as usize;
    let rewards = uniform(30, n, -1.0, 2.0);
    let mut dones = vec![0.0; n];
    let mut valid = vec![0u32; n];
    for t in 0..STEPS {
        for s in 0..SLOTS {
            let i = (t * SLOTS + s) as usize;
            if !owns(t, s) {
                valid[i] = 1;
                dones[i] = 1.0;
            } else if t == 1 {
                dones[i] = 1.0;
            }
        }
    }
    (rewards, dones, valid)
}

/// Act the whole rollout through the store; return each step's actions.
fn act_stored<E: Executor>(ac: &mut ActorCritic<E>) -> Vec<Vec<u32>> {
    let mut all = Vec::new();
    for t in 0..STEPS {
        let slots = slots_at(t);
        let dst: Vec<u32> = slots.iter().map(|s| t * SLOTS + s).collect();
        ac.queue_act_stored(&obs_at(t, slots.len()), &[], &[], key(t), &dst)
            .unwrap();
        all.push(ac.act_actions().unwrap());
    }
    let slots = slots_at(STEPS);
    ac.queue_act(&obs_at(STEPS, slots.len()), &[], &[], key(STEPS))
        .unwrap();
    ac.store_bootstrap(&slots).unwrap();
    all
}

fn act_host<E: Executor>(ac: &mut ActorCritic<E>) -> (Vec<Vec<u32>>, HostRollout) {
    let (n, w, c) = ((STEPS * SLOTS) as usize, spec().obs_width as usize, 2);
    let mut ro = HostRollout {
        obs: vec![0.0; n * w],
        actions: vec![0; n * c],
        logp: vec![0.0; n],
        values: vec![0.0; n],
        last_values: vec![0.0; SLOTS as usize],
    };
    let mut all = Vec::new();
    for t in 0..STEPS {
        let slots = slots_at(t);
        let obs = obs_at(t, slots.len());
        let out = ac.act(&obs, &[], &[], key(t)).unwrap();
        for (k, &s) in slots.iter().enumerate() {
            let i = (t * SLOTS + s) as usize;
            ro.obs[i * w..(i + 1) * w].copy_from_slice(&obs[k * w..(k + 1) * w]);
            ro.actions[i * c..(i + 1) * c].copy_from_slice(&out.actions[k * c..(k + 1) * c]);
            ro.logp[i] = out.logp[k];
            ro.values[i] = out.values[k];
        }
        all.push(out.actions);
    }
    let slots = slots_at(STEPS);
    let out = ac
        .act(&obs_at(STEPS, slots.len()), &[], &[], key(STEPS))
        .unwrap();
    for (k, &s) in slots.iter().enumerate() {
        ro.last_values[s as usize] = out.values[k];
    }
    (all, ro)
}

/// Two epochs over the valid rows in a fixed shuffled order, minibatches of 5 (the last
/// partial).
fn minibatches() -> Vec<Vec<u32>> {
    let (_, _, valid) = rewards_dones_valid();
    let mut rows: Vec<u32> = (0..valid.len() as u32)
        .filter(|&i| valid[i as usize] == 0)
        .collect();
    let mut out = Vec::new();
    for epoch in 0..2 {
        rows.rotate_left(3 + epoch);
        rows.reverse();
        out.extend(rows.chunks(5).map(<[u32]>::to_vec));
    }
    out
}

fn hyper() -> PpoHyper {
    PpoHyper {
        lr: 1e-2,
        ..PpoHyper::default()
    }
}

fn stored_cpu() -> ActorCritic<CpuExecutor> {
    let s = spec();
    let store = StoreSpec {
        steps: STEPS,
        slots: SLOTS,
        ragged: false,
        cells: 0,
        segment: 0,
    };
    ActorCritic::with_store(s.clone(), hyper(), &s.init_params(3), store, |p| {
        Ok(CpuExecutor::new(p))
    })
    .unwrap()
}

#[test]
fn a_stored_rollout_trains_exactly_like_the_host_rollout() {
    let s = spec();
    let mut stored = stored_cpu();
    let mut host = ActorCritic::new(s.clone(), hyper(), &s.init_params(3), |p| {
        Ok(CpuExecutor::new(p))
    })
    .unwrap();
    let stored_actions = act_stored(&mut stored);
    let (host_actions, ro) = act_host(&mut host);
    assert_eq!(stored_actions, host_actions, "the same actions come back");

    let (rewards, dones, valid) = rewards_dones_valid();
    let (gamma, lambda) = (0.9, 0.8);
    stored
        .store_advantages(&rewards, &dones, &valid, gamma, lambda, false)
        .unwrap();
    let n = rewards.len();
    let (mut adv, mut ret) = (vec![0.0; n], vec![0.0; n]);
    let p = GaeParams {
        steps: STEPS,
        agents: SLOTS,
        gamma,
        gae_lambda: lambda,
        ..GaeParams::default()
    };
    cpu::gae(
        &p,
        &rewards,
        &ro.values,
        &dones,
        &ro.last_values,
        &mut adv,
        &mut ret,
    );
    let (sadv, sret) = stored.stored_advantages().unwrap();
    assert_eq!(sadv, adv, "advantages");
    assert_eq!(sret, ret, "returns");
    // The bootstrap reached the trajectories still open after the last step.
    assert!(
        (0..SLOTS as usize)
            .any(|s| ro.last_values[s] != 0.0
                && dones[(STEPS - 1) as usize * SLOTS as usize + s] == 0.0),
        "some trajectory bootstraps"
    );

    let (w, c) = (s.obs_width as usize, 2);
    for rows in minibatches() {
        stored.train_stored(&rows).unwrap();
        let pick = |v: &[f32], k: usize| -> Vec<f32> {
            rows.iter()
                .flat_map(|&i| v[i as usize * k..(i as usize + 1) * k].to_vec())
                .collect()
        };
        let actions: Vec<u32> = rows
            .iter()
            .flat_map(|&i| ro.actions[i as usize * c..(i as usize + 1) * c].to_vec())
            .collect();
        host.train_minibatch(&Minibatch {
            obs: &pick(&ro.obs, w),
            group_ids: &[],
            masks: &[],
            actions: &actions,
            old_logp: &pick(&ro.logp, 1),
            old_values: &pick(&ro.values, 1),
            advantages: &pick(&adv, 1),
            adv_adjust: &vec![0.0; rows.len()],
            returns: &pick(&ret, 1),
        })
        .unwrap();
    }
    let (sp, hp) = (stored.params().unwrap(), host.params().unwrap());
    assert_ne!(sp, s.init_params(3), "training moved the parameters");
    assert_eq!(sp, hp, "parameters after the same minibatches");
    assert_eq!(stored.loss_stats().unwrap(), host.loss_stats().unwrap());
}

#[test]
fn the_store_standardises_the_valid_rows_only() {
    let mut stored = stored_cpu();
    act_stored(&mut stored);
    let (rewards, dones, valid) = rewards_dones_valid();
    stored
        .store_advantages(&rewards, &dones, &valid, 0.99, 0.95, true)
        .unwrap();
    let (adv, _) = stored.stored_advantages().unwrap();
    let mine: Vec<f64> = adv
        .iter()
        .zip(&valid)
        .filter(|&(_, &v)| v == 0)
        .map(|(&a, _)| f64::from(a))
        .collect();
    let n = mine.len() as f64;
    let mean = mine.iter().sum::<f64>() / n;
    let var = mine.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
    assert!(mean.abs() < 1e-6, "mean {mean}");
    assert!((var.sqrt() - 1.0).abs() < 1e-5, "std {}", var.sqrt());
}

#[test]
fn returns_from_standardised_advantages_are_advantage_plus_stored_value() {
    // Dense and ragged stores: after the standardisation, every valid row's return is its
    // standardised advantage plus its stored value (the reference's HS-CF target), not the raw
    // GAE return; the advantages themselves do not move.
    let dense = {
        let mut ac = stored_cpu();
        act_stored(&mut ac);
        (ac, rewards_dones_valid())
    };
    let ragged = {
        let mut ac = ragged_store(|p| Ok(CpuExecutor::new(p)));
        act_ragged(&mut ac);
        (ac, ragged_inputs())
    };
    for (name, (mut ac, (rewards, dones, valid))) in [("dense", dense), ("ragged", ragged)] {
        ac.store_advantages(&rewards, &dones, &valid, 0.99, 0.95, true)
            .unwrap();
        let (adv, raw) = ac.stored_advantages().unwrap();
        let values = ac.stored_values().unwrap();
        ac.store_returns_from_advantages().unwrap();
        let (adv2, ret) = ac.stored_advantages().unwrap();
        assert_eq!(adv2, adv, "{name}: advantages unchanged");
        let mut differs = 0;
        for i in (0..ret.len()).filter(|&i| valid[i] == 0) {
            assert_eq!(ret[i], adv[i] + values[i], "{name}: row {i}");
            differs += usize::from(ret[i] != raw[i]);
        }
        assert!(
            differs > 0,
            "{name}: the target changed from the raw return"
        );
    }
}

#[test]
fn store_calls_reject_bad_rows_with_a_clear_error() {
    let mut stored = stored_cpu();
    let too_far = STEPS * SLOTS;
    let obs = obs_at(0, 1);
    let err = stored
        .queue_act_stored(&obs, &[], &[], key(0), &[too_far])
        .unwrap_err();
    assert!(
        matches!(err, ShaderError::StoreRow { row, rows } if row == too_far as usize && rows == too_far as usize)
    );
    let err = stored.train_stored(&[0; 9]).unwrap_err();
    assert!(matches!(err, ShaderError::StoreRows { rows: 9, batch: 8 }));
    let s = spec();
    let mut plain = ActorCritic::new(s.clone(), hyper(), &s.init_params(3), |p| {
        Ok(CpuExecutor::new(p))
    })
    .unwrap();
    assert!(matches!(
        plain.train_stored(&[0]).unwrap_err(),
        ShaderError::NoStore
    ));
}

#[test]
fn the_stored_path_agrees_between_gpu_and_cpu() {
    let Some(ctx) = gpu("the_stored_path_agrees_between_gpu_and_cpu") else {
        return;
    };
    let s = spec();
    let store = StoreSpec {
        steps: STEPS,
        slots: SLOTS,
        ragged: false,
        cells: 0,
        segment: 0,
    };
    let mut g = ActorCritic::with_store(s.clone(), hyper(), &s.init_params(3), store, |p| {
        GpuExecutor::new(ctx.clone(), p)
    })
    .unwrap();
    let mut c = stored_cpu();
    let (ga, ca) = (act_stored(&mut g), act_stored(&mut c));
    // Untrained logits are near-uniform and away from CDF ties at these keys.
    assert_eq!(ga, ca, "sampled actions");
    let (rewards, dones, valid) = rewards_dones_valid();
    for e in [&mut g as &mut dyn StoreRun, &mut c] {
        e.advantages(&rewards, &dones, &valid);
    }
    let (gadv, gret) = g.stored_advantages().unwrap();
    let (cadv, cret) = c.stored_advantages().unwrap();
    assert_close("advantages", &gadv, &cadv, 1e-5, 1e-4);
    assert_close("returns", &gret, &cret, 1e-5, 1e-4);
    for rows in minibatches() {
        g.train_stored(&rows).unwrap();
        c.train_stored(&rows).unwrap();
    }
    // Eight Adam steps of lr 1e-2 move each parameter by up to ~8e-2; rounding differences in
    // the gradients change that by far less than one step.
    assert_close(
        "params",
        &g.params().unwrap(),
        &c.params().unwrap(),
        2e-3,
        0.0,
    );
}

/// Standardised GAE over the store, for either backend.
trait StoreRun {
    fn advantages(&mut self, rewards: &[f32], dones: &[f32], valid: &[u32]);
    fn returns_from_advantages(&mut self);
    fn values(&mut self) -> Vec<f32>;
    fn stored(&mut self) -> (Vec<f32>, Vec<f32>);
}

impl<E: Executor> StoreRun for ActorCritic<E> {
    fn advantages(&mut self, rewards: &[f32], dones: &[f32], valid: &[u32]) {
        self.store_advantages(rewards, dones, valid, 0.99, 0.95, true)
            .unwrap();
    }
    fn returns_from_advantages(&mut self) {
        self.store_returns_from_advantages().unwrap();
    }
    fn values(&mut self) -> Vec<f32> {
        self.stored_values().unwrap()
    }
    fn stored(&mut self) -> (Vec<f32>, Vec<f32>) {
        self.stored_advantages().unwrap()
    }
}

/// Ragged: slot s acts `LENS[s]` times (its k-th decision is row k * SLOTS + s); slot 3 never.
const LENS: [u32; SLOTS as usize] = [4, 1, 3, 0, 2, 4];

fn ragged_store<E: Executor>(
    make: impl FnOnce(Program) -> Result<E, ShaderError>,
) -> ActorCritic<E> {
    let s = spec();
    let store = StoreSpec {
        steps: STEPS,
        slots: SLOTS,
        ragged: true,
        cells: 0,
        segment: 0,
    };
    ActorCritic::with_store(s.clone(), hyper(), &s.init_params(4), store, make).unwrap()
}

/// Act the ragged rollout: at decision round k every slot with k < LENS[s] acts; then slots
/// 0 and 2 have a pending observation (the others bootstrap from their own last value). Returns
/// (values per store row as the host saw them, pending values by slot).
fn act_ragged<E: Executor>(ac: &mut ActorCritic<E>) -> (Vec<f32>, Vec<(u32, f32)>) {
    let mut values = vec![0.0; (STEPS * SLOTS) as usize];
    for k in 0..STEPS {
        let slots: Vec<u32> = (0..SLOTS).filter(|&s| k < LENS[s as usize]).collect();
        let obs = obs_at(20 + k, slots.len());
        let dst: Vec<u32> = slots.iter().map(|s| k * SLOTS + s).collect();
        ac.queue_act_stored(&obs, &[], &[], key(k), &dst).unwrap();
        ac.act_actions().unwrap();
        // The same rows again through the host path, for the expected values.
        let out = ac.act(&obs, &[], &[], key(k)).unwrap();
        for (j, &row) in dst.iter().enumerate() {
            values[row as usize] = out.values[j];
        }
    }
    ac.store_lengths(&LENS).unwrap();
    let pending = [0u32, 2];
    let out = ac
        .act(&obs_at(40, pending.len()), &[], &[], key(STEPS))
        .unwrap();
    ac.store_bootstrap(&pending).unwrap();
    (values, pending.iter().copied().zip(out.values).collect())
}

fn ragged_inputs() -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let n = (STEPS * SLOTS) as usize;
    let rewards = uniform(50, n, -1.0, 1.0);
    let mut dones = vec![0.0; n];
    dones[SLOTS as usize] = 1.0; // slot 0's second decision ends its day
    let valid = (0..n as u32)
        .map(|row| u32::from(row / SLOTS >= LENS[(row % SLOTS) as usize]))
        .collect();
    (rewards, dones, valid)
}

#[test]
fn a_ragged_store_is_gae_of_each_slot_sequence_alone() {
    let mut ac = ragged_store(|p| Ok(CpuExecutor::new(p)));
    let (values, pending) = act_ragged(&mut ac);
    let (rewards, dones, valid) = ragged_inputs();
    let before = ac.stored_advantages().unwrap();
    let (gamma, lambda) = (0.9, 0.7);
    ac.store_advantages(&rewards, &dones, &valid, gamma, lambda, false)
        .unwrap();
    let (adv, ret) = ac.stored_advantages().unwrap();
    for s in 0..SLOTS {
        let len = LENS[s as usize];
        let rows: Vec<usize> = (0..len).map(|k| (k * SLOTS + s) as usize).collect();
        let boot = pending
            .iter()
            .find(|&&(p, _)| p == s)
            .map(|&(_, v)| v)
            .or(rows.last().map(|&r| values[r]))
            .unwrap_or(0.0);
        let pick = |v: &[f32]| rows.iter().map(|&r| v[r]).collect::<Vec<f32>>();
        let (mut a1, mut r1) = (vec![0.0; rows.len()], vec![0.0; rows.len()]);
        let p = GaeParams {
            steps: len,
            agents: 1,
            gamma,
            gae_lambda: lambda,
            ..GaeParams::default()
        };
        cpu::gae(
            &p,
            &pick(&rewards),
            &pick(&values),
            &pick(&dones),
            &[boot],
            &mut a1,
            &mut r1,
        );
        assert_eq!(pick(&adv), a1, "slot {s} advantages");
        assert_eq!(pick(&ret), r1, "slot {s} returns");
        for k in len..STEPS {
            let row = (k * SLOTS + s) as usize;
            assert_eq!(adv[row], before.0[row], "row {row} past slot {s}'s length");
        }
    }
    // Slot 1's only decision bootstraps from its own value: its advantage is its reward plus
    // (gamma - 1) times that value.
    let v = values[1];
    assert_eq!(adv[1], rewards[1] + gamma * v - v);
    let err = stored_cpu().store_lengths(&LENS).unwrap_err();
    assert!(matches!(err, ShaderError::NotRagged));
}

#[test]
fn the_ragged_store_agrees_between_gpu_and_cpu() {
    let Some(ctx) = gpu("the_ragged_store_agrees_between_gpu_and_cpu") else {
        return;
    };
    let mut g = ragged_store(|p| GpuExecutor::new(ctx.clone(), p));
    let mut c = ragged_store(|p| Ok(CpuExecutor::new(p)));
    act_ragged(&mut g);
    act_ragged(&mut c);
    let (rewards, dones, valid) = ragged_inputs();
    for e in [&mut g as &mut dyn StoreRun, &mut c] {
        e.advantages(&rewards, &dones, &valid);
    }
    let (gadv, gret) = g.stored_advantages().unwrap();
    let (cadv, cret) = c.stored_advantages().unwrap();
    assert_close("advantages", &gadv, &cadv, 1e-5, 1e-4);
    assert_close("returns", &gret, &cret, 1e-5, 1e-4);
    // The standardised target on both backends: the same sum of what each backend holds.
    for (e, adv) in [(&mut g as &mut dyn StoreRun, &gadv), (&mut c, &cadv)] {
        let values = e.values();
        e.returns_from_advantages();
        let ret = e.stored().1;
        for i in (0..ret.len()).filter(|&i| valid[i] == 0) {
            assert_eq!(ret[i], adv[i] + values[i], "row {i}");
        }
    }
}
