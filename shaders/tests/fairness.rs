//! Guarantees: Fair-PPO's shaped-penalty kernels are exact. `fair_adjust` (with and without
//! its mix term) and `segment_means` give bit-identical results on the GPU and in their CPU
//! twins over a table of shapes (rows out of every cell included); weights of exactly (1, 0)
//! adjust nothing, so the loss sees the advantage bit for bit (alpha = beta = 0 is PPO); the
//! store's per-cell reductions of rewards and values and its per-segment advantage sums equal
//! the host's; and a stored update with cell weights and a mix term trains bit-identically to
//! the host path fed the twin's `adv_adjust`, while (1, 0) weights train bit-identically to a
//! store that never heard of fairness.

mod common;

use common::{assert_close, gpu, integers, uniform};
use fairground_shaders::cpu;
use fairground_shaders::layout::{FairParams, SegmentSum};
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
    for (rows, cells, mixing) in [
        (1u32, 1u32, false),
        (7, 2, true),
        (1000, 6, false),
        (1000, 4, true),
        (70_000, 320, true),
    ] {
        let mut prog = Program::new();
        let adv = prog.buffer("adv", rows as usize);
        let ids = prog.buffer("ids", rows as usize);
        let w = prog.buffer("w", 2 * cells as usize);
        let width = 40u32;
        let segments = rows.div_ceil(width);
        let mix = prog.buffer("mix", (segments * cells) as usize);
        let out = prog.buffer("out", rows as usize);
        let sums = prog.buffer("sums", 2 * (segments * cells) as usize);
        let (seq, seg_seq) = (prog.sequence(), prog.sequence());
        let p = FairParams {
            rows,
            cells,
            mix_width: if mixing { width } else { 0 },
            segments,
        };
        prog.push(
            seq,
            Kernel::FairAdjust,
            &p,
            &[adv, ids, w, mix, out],
            u64::from(rows),
        );
        prog.push(
            seg_seq,
            Kernel::SegmentMeans,
            &FairParams {
                mix_width: width,
                ..p
            },
            &[adv, ids, sums],
            u64::from(segments * cells),
        );
        let a = uniform(1, rows as usize, -3.0, 3.0);
        // Ids up to cells + 1: some rows are in no cell.
        let c = integers(2, rows as usize, cells + 2);
        let flat = uniform(3, 2 * cells as usize, -1.0, 2.0);
        let weights: Vec<[f32; 2]> = flat.chunks(2).map(|x| [x[0], x[1]]).collect();
        let m = uniform(4, (segments * cells) as usize, -2.0, 2.0);
        let mut g = GpuExecutor::new(ctx.clone(), prog.clone()).unwrap();
        let mut k = CpuExecutor::new(prog);
        for e in [&mut g as &mut dyn Executor, &mut k] {
            e.write(adv, &a).unwrap();
            e.write(ids, &c).unwrap();
            e.write(w, &flat).unwrap();
            e.write(mix, &m).unwrap();
            e.write(out, &vec![7.0f32; rows as usize]).unwrap();
            e.run(seq).unwrap();
            e.run(seg_seq).unwrap();
        }
        let go: Vec<f32> = g.read(out).unwrap();
        let ko: Vec<f32> = k.read(out).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&go),
            bits(&ko),
            "rows {rows} cells {cells} mix {mixing}"
        );
        let mut expect = vec![0.0; rows as usize];
        cpu::fair_adjust(&p, &a, &c, &weights, &m, &mut expect);
        assert_eq!(bits(&ko), bits(&expect));
        let gs: Vec<SegmentSum> = g.read(sums).unwrap();
        let ks: Vec<SegmentSum> = k.read(sums).unwrap();
        assert_eq!(gs, ks, "segment sums, rows {rows} cells {cells}");
        let seg = 1.min(segments as usize - 1);
        let c1 = (0..rows as usize)
            .filter(|&r| r / width as usize == seg && c[r] == 1 % cells)
            .count();
        assert_eq!(
            ks[seg * cells as usize + (1 % cells) as usize].count as usize,
            c1
        );
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
    cpu::fair_adjust(&p, &a, &c, &[[1.0, 0.0]; 3], &[], &mut adj);
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
    segment: u32,
    make: impl FnOnce(Program) -> Result<E, ShaderError>,
) -> ActorCritic<E> {
    let s = spec();
    let store = StoreSpec {
        steps: STEPS,
        slots: SLOTS,
        ragged: false,
        cells,
        segment,
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
    let mut ac = store_of(CELLS, SLOTS, |p| Ok(CpuExecutor::new(p)));
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
    let weights = [[0.25f32, 0.5], [1.75, -0.25], [-0.5, 1.0]];
    let mut fair = store_of(CELLS, SLOTS, |p| Ok(CpuExecutor::new(p)));
    let mut ones = store_of(CELLS, SLOTS, |p| Ok(CpuExecutor::new(p)));
    let mut plain = store_of(0, 0, |p| Ok(CpuExecutor::new(p)));
    for ac in [&mut fair, &mut ones, &mut plain] {
        rollout(ac);
    }
    fair.store_cell_stats(&cell_ids()).unwrap();
    // The mix term from this store's own segment sums (any values do for the test).
    let sums = fair.store_segment_means().unwrap();
    let (adv, _) = fair.stored_advantages().unwrap();
    let ids = cell_ids();
    for (i, s) in sums.iter().enumerate() {
        let (k, c) = (i / CELLS as usize, i % CELLS as usize);
        let rows = (k * SLOTS as usize..(k + 1) * SLOTS as usize).filter(|&r| ids[r] == c as u32);
        let host: f32 = rows.clone().map(|r| adv[r]).sum();
        assert_eq!(s.count as usize, rows.count());
        assert_eq!(s.sum, host, "segment {k} cell {c}: row-order sum");
    }
    let mix: Vec<f32> = sums.iter().map(|s| s.sum / s.count.max(1) as f32).collect();
    fair.store_fair_adjust(&weights, Some(&mix)).unwrap();
    ones.store_cell_stats(&cell_ids()).unwrap();
    ones.store_fair_adjust(&[[1.0, 0.0]; CELLS as usize], Some(&mix))
        .unwrap();
    assert!(matches!(
        plain.store_fair_adjust(&[[1.0, 0.0]], None).unwrap_err(),
        ShaderError::NoFairCells
    ));

    let p = FairParams {
        rows: STEPS * SLOTS,
        cells: CELLS,
        mix_width: SLOTS,
        segments: STEPS,
    };
    let mut expect = vec![0.0; adv.len()];
    cpu::fair_adjust(&p, &adv, &cell_ids(), &weights, &mix, &mut expect);
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
    let mut a = store_of(0, 0, |p| Ok(CpuExecutor::new(p)));
    let mut b = store_of(0, 0, |p| Ok(CpuExecutor::new(p)));
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
    let mut g = store_of(CELLS, SLOTS, |p| GpuExecutor::new(ctx.clone(), p));
    let mut c = store_of(CELLS, SLOTS, |p| Ok(CpuExecutor::new(p)));
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
    let w = [[0.5, 0.5], [1.5, -0.5], [0.0, 1.0]];
    let gm = g.store_segment_means().unwrap();
    let cm = c.store_segment_means().unwrap();
    assert_eq!(
        gm.iter().map(|s| s.count).collect::<Vec<_>>(),
        cm.iter().map(|s| s.count).collect::<Vec<_>>()
    );
    let mix: Vec<f32> = cm.iter().map(|s| s.sum / s.count.max(1) as f32).collect();
    g.store_fair_adjust(&w, Some(&mix)).unwrap();
    c.store_fair_adjust(&w, Some(&mix)).unwrap();
    assert_close(
        "adjustments",
        &g.stored_adjustments().unwrap(),
        &c.stored_adjustments().unwrap(),
        1e-5,
        1e-4,
    );
}
