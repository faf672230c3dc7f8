//! Guarantees: Fair-PPO's shaped-penalty kernels are exact. `fair_adjust` gives bit-identical
//! adjustments on the GPU and in its CPU twin over a table of shapes (rows out of every cell
//! included); a weight of exactly 1 adjusts nothing, so the loss sees the advantage bit for bit
//! (alpha = beta = 0 is PPO); the store's per-cell reductions of rewards and values equal the
//! host's sums, counts and means; and a stored update with cell weights trains bit-identically
//! to the host path fed `adv_adjust = (weight - 1) * advantage` by the twin, while all-one
//! weights train bit-identically to a store that never heard of fairness.

mod common;

use common::{assert_close, gpu, integers, uniform};
use fairground_shaders::cpu;
use fairground_shaders::layout::FairParams;
use fairground_shaders::ppo::StoreSpec;
use fairground_shaders::registry::Kernel;
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, CpuExecutor, Executor, ExecutorExt, GpuExecutor,
    Minibatch, PpoHyper, Program, SampleKey, ShaderError,
};

#[test]
fn fair_adjust_matches_its_twin_bit_for_bit() {
    let Some(ctx) = gpu("fair_adjust_matches_its_twin_bit_for_bit") else {
        return;
    };
    for (rows, cells) in [(1u32, 1u32), (7, 2), (1000, 6), (70_000, 320)] {
        let mut prog = Program::new();
        let adv = prog.buffer("adv", rows as usize);
        let ids = prog.buffer("ids", rows as usize);
        let w = prog.buffer("w", cells as usize);
        let out = prog.buffer("out", rows as usize);
        let seq = prog.sequence();
        let p = FairParams {
            rows,
            cells,
            ..FairParams::default()
        };
        prog.push_rows(
            seq,
            Kernel::FairAdjust,
            &p,
            &[adv, ids, w, out],
            u64::from(rows),
            &[1, 1, 0, 1],
        );
        let a = uniform(1, rows as usize, -3.0, 3.0);
        // Ids up to cells + 1: some rows are in no cell.
        let c = integers(2, rows as usize, cells + 2);
        let weights = uniform(3, cells as usize, -1.0, 2.0);
        let mut g = GpuExecutor::new(ctx.clone(), prog.clone()).unwrap();
        let mut k = CpuExecutor::new(prog);
        for e in [&mut g as &mut dyn Executor, &mut k] {
            e.write(adv, &a).unwrap();
            e.write(ids, &c).unwrap();
            e.write(w, &weights).unwrap();
            e.write(out, &vec![7.0f32; rows as usize]).unwrap();
            e.run(seq).unwrap();
        }
        let go: Vec<f32> = g.read(out).unwrap();
        let ko: Vec<f32> = k.read(out).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&go), bits(&ko), "rows {rows} cells {cells}");
        let mut expect = vec![0.0; rows as usize];
        cpu::fair_adjust(&p, &a, &c, &weights, &mut expect);
        assert_eq!(bits(&ko), bits(&expect));
        for r in 0..rows as usize {
            if c[r] >= cells {
                assert_eq!(ko[r], 0.0, "row {r} is in no cell");
            }
        }
    }
}

#[test]
fn a_weight_of_one_leaves_every_advantage_bit_identical() {
    let n = 4096;
    let a = uniform(4, n, -1e6, 1e6);
    let c = integers(5, n, 3);
    let p = FairParams {
        rows: n as u32,
        cells: 3,
        ..FairParams::default()
    };
    let mut adj = vec![1.0; n];
    cpu::fair_adjust(&p, &a, &c, &[1.0; 3], &mut adj);
    for (x, d) in a.iter().zip(&adj) {
        assert_eq!((x + d).to_bits(), x.to_bits());
    }
}

const STEPS: u32 = 4;
const SLOTS: u32 = 6;
const CELLS: u32 = 3;

fn spec() -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width: 5,
        trunk: vec![],
        hidden: vec![16, 8],
        action_components: vec![4],
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch: 8,
        use_masks: false,
    }
}

fn hyper() -> PpoHyper {
    PpoHyper {
        lr: 1e-2,
        ..PpoHyper::default()
    }
}

fn store_of<E: Executor>(
    cells: u32,
    make: impl FnOnce(Program) -> Result<E, ShaderError>,
) -> ActorCritic<E> {
    let s = spec();
    let store = StoreSpec {
        steps: STEPS,
        slots: SLOTS,
        ragged: false,
        cells,
    };
    ActorCritic::with_store(s.clone(), hyper(), &s.init_params(3), store, make).unwrap()
}

fn obs_at(t: u32) -> Vec<f32> {
    uniform(10 + t, (SLOTS * spec().obs_width) as usize, -1.0, 1.0)
}

fn key(step: u32) -> SampleKey {
    SampleKey {
        seed: 5,
        iteration: 2,
        step,
        agent_offset: 0,
    }
}

/// Act every slot at every step through the store, bootstrap, standardised GAE.
fn rollout<E: Executor>(ac: &mut ActorCritic<E>) {
    for t in 0..STEPS {
        let dst: Vec<u32> = (0..SLOTS).map(|s| t * SLOTS + s).collect();
        ac.queue_act_stored(&obs_at(t), &[], &[], key(t), &dst)
            .unwrap();
        ac.act_actions().unwrap();
    }
    ac.queue_act(&obs_at(STEPS), &[], &[], key(STEPS)).unwrap();
    let slots: Vec<u32> = (0..SLOTS).collect();
    ac.store_bootstrap(&slots).unwrap();
    let n = (STEPS * SLOTS) as usize;
    ac.store_advantages(&rewards(), &vec![0.0; n], &vec![0; n], 0.99, 0.95, true)
        .unwrap();
}

fn rewards() -> Vec<f32> {
    uniform(30, (STEPS * SLOTS) as usize, -1.0, 2.0)
}

/// Cell of each row: slot % 4 (slot 3 is in no cell, id 3 = CELLS).
fn cell_ids() -> Vec<u32> {
    (0..STEPS * SLOTS).map(|r| (r % SLOTS) % 4).collect()
}

fn minibatches() -> Vec<Vec<u32>> {
    let rows: Vec<u32> = (0..STEPS * SLOTS).rev().collect();
    rows.chunks(7).map(<[u32]>::to_vec).collect()
}

#[test]
fn cell_stats_are_the_host_sums_of_rewards_and_values_by_cell() {
    let mut ac = store_of(CELLS, |p| Ok(CpuExecutor::new(p)));
    rollout(&mut ac);
    let stats = ac.store_cell_stats(&cell_ids()).unwrap();
    // The values the store holds: what the same (untrained) network gives on the same rows.
    let s = spec();
    let mut host = ActorCritic::new(s.clone(), hyper(), &s.init_params(3), |p| {
        Ok(CpuExecutor::new(p))
    })
    .unwrap();
    let mut v = Vec::new();
    for t in 0..STEPS {
        v.extend(host.act(&obs_at(t), &[], &[], key(t)).unwrap().values);
    }
    let r = rewards();
    let ids = cell_ids();
    for c in 0..CELLS {
        let rows: Vec<usize> = (0..r.len()).filter(|&i| ids[i] == c).collect();
        let sum: f32 = rows.iter().map(|&i| r[i]).sum();
        let got = stats.rewards[c as usize];
        assert_eq!(got.count as usize, rows.len(), "cell {c} count");
        assert!(
            (got.sum - sum).abs() < 1e-5,
            "cell {c} sum {} vs {sum}",
            got.sum
        );
        assert!((got.mean - sum / rows.len() as f32).abs() < 1e-6);
        let vsum: f32 = rows.iter().map(|&i| v[i]).sum();
        let got = stats.values[c as usize];
        assert_eq!(got.count as usize, rows.len());
        assert!((got.sum - vsum).abs() < 1e-5, "cell {c} value sum");
    }
    assert_eq!(stats.rewards.len(), CELLS as usize);
}

#[test]
fn cell_weights_train_like_the_host_path_and_ones_like_ppo() {
    let weights = [0.25f32, 1.75, -0.5];
    let mut fair = store_of(CELLS, |p| Ok(CpuExecutor::new(p)));
    let mut ones = store_of(CELLS, |p| Ok(CpuExecutor::new(p)));
    let mut plain = store_of(0, |p| Ok(CpuExecutor::new(p)));
    for ac in [&mut fair, &mut ones, &mut plain] {
        rollout(ac);
    }
    fair.store_cell_stats(&cell_ids()).unwrap();
    fair.store_fair_adjust(&weights).unwrap();
    ones.store_cell_stats(&cell_ids()).unwrap();
    ones.store_fair_adjust(&[1.0; CELLS as usize]).unwrap();
    assert!(matches!(
        plain.store_fair_adjust(&[1.0]).unwrap_err(),
        ShaderError::NoFairCells
    ));

    let (adv, _) = fair.stored_advantages().unwrap();
    let p = FairParams {
        rows: STEPS * SLOTS,
        cells: CELLS,
        ..FairParams::default()
    };
    let mut expect = vec![0.0; adv.len()];
    cpu::fair_adjust(&p, &adv, &cell_ids(), &weights, &mut expect);
    assert_eq!(fair.stored_adjustments().unwrap(), expect);
    assert!(ones.stored_adjustments().unwrap().iter().all(|&x| x == 0.0));

    // The host path: same rollout through train_minibatch with the twin's adjustments.
    let s = spec();
    let mut host = ActorCritic::new(s.clone(), hyper(), &s.init_params(3), |p| {
        Ok(CpuExecutor::new(p))
    })
    .unwrap();
    let (sadv, sret) = fair.stored_advantages().unwrap();
    let mut obs = Vec::new();
    let mut acts = Vec::new();
    let mut logp = Vec::new();
    let mut vals = Vec::new();
    for t in 0..STEPS {
        let out = host.act(&obs_at(t), &[], &[], key(t)).unwrap();
        obs.extend(obs_at(t));
        acts.extend(out.actions);
        logp.extend(out.logp);
        vals.extend(out.values);
    }
    let w = s.obs_width as usize;
    for rows in minibatches() {
        for ac in [&mut fair, &mut ones, &mut plain] {
            ac.train_stored(&rows).unwrap();
        }
        let pick = |v: &[f32], k: usize| -> Vec<f32> {
            rows.iter()
                .flat_map(|&i| v[i as usize * k..(i as usize + 1) * k].to_vec())
                .collect()
        };
        let actions: Vec<u32> = rows.iter().map(|&i| acts[i as usize]).collect();
        host.train_minibatch(&Minibatch {
            obs: &pick(&obs, w),
            group_ids: &[],
            masks: &[],
            actions: &actions,
            old_logp: &pick(&logp, 1),
            old_values: &pick(&vals, 1),
            advantages: &pick(&sadv, 1),
            adv_adjust: &pick(&expect, 1),
            returns: &pick(&sret, 1),
        })
        .unwrap();
    }
    let (fp, op, pp) = (
        fair.params().unwrap(),
        ones.params().unwrap(),
        plain.params().unwrap(),
    );
    assert_eq!(fp, host.params().unwrap(), "weighted store = host path");
    assert_eq!(op, pp, "weights of 1 = PPO, bit for bit");
    assert_ne!(fp, pp, "the weights changed the update");
}

#[test]
fn loss_scale_scales_the_first_gradient() {
    // Adam's first step is sign(g) * lr whatever the scale, so compare gradients instead.
    let mut a = store_of(0, |p| Ok(CpuExecutor::new(p)));
    let mut b = store_of(0, |p| Ok(CpuExecutor::new(p)));
    rollout(&mut a);
    rollout(&mut b);
    b.set_loss_scale(2.0);
    let rows: Vec<u32> = (0..8).collect();
    a.train_stored(&rows).unwrap();
    b.train_stored(&rows).unwrap();
    let (ga, gb) = (a.grads().unwrap(), b.grads().unwrap());
    let doubled: Vec<f32> = ga.iter().map(|g| 2.0 * g).collect();
    assert_close("gradient x 2", &gb, &doubled, 1e-6, 1e-5);
    assert!(ga.iter().any(|&g| g != 0.0));
}

#[test]
fn fairness_reductions_and_adjustments_agree_between_gpu_and_cpu() {
    let Some(ctx) = gpu("fairness_reductions_and_adjustments_agree_between_gpu_and_cpu") else {
        return;
    };
    let mut g = store_of(CELLS, |p| GpuExecutor::new(ctx.clone(), p));
    let mut c = store_of(CELLS, |p| Ok(CpuExecutor::new(p)));
    rollout(&mut g);
    rollout(&mut c);
    let gs = g.store_cell_stats(&cell_ids()).unwrap();
    let cs = c.store_cell_stats(&cell_ids()).unwrap();
    for (a, b) in gs.rewards.iter().zip(&cs.rewards) {
        assert_eq!(a.count, b.count);
        assert!((a.sum - b.sum).abs() < 1e-5);
    }
    for (a, b) in gs.values.iter().zip(&cs.values) {
        assert_eq!(a.count, b.count);
        assert!((a.mean - b.mean).abs() < 1e-5);
    }
    let w = [0.5, 1.5, 0.0];
    g.store_fair_adjust(&w).unwrap();
    c.store_fair_adjust(&w).unwrap();
    assert_close(
        "adjustments",
        &g.stored_adjustments().unwrap(),
        &c.stored_adjustments().unwrap(),
        1e-5,
        1e-4,
    );
}
