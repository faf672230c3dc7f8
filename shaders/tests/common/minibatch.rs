//! The actor-critic tests' minibatch: seeded inputs for a spec with a 9-way and a 3-way action
//! component (every fifth logit masked, every stored action allowed), shared by
//! actor_critic.rs (GPU against the twins) and gemm_vs_twin.rs (cpu-gemm against the twins).

use super::{integers, uniform};
use fairground_shaders::{ActorCritic, ActorCriticSpec, Executor, Minibatch};

/// One minibatch's inputs.
pub struct Data {
    pub obs: Vec<f32>,
    pub groups: Vec<u32>,
    pub masks: Vec<u32>,
    pub actions: Vec<u32>,
    pub old_logp: Vec<f32>,
    pub old_values: Vec<f32>,
    pub adv: Vec<f32>,
    pub adj: Vec<f32>,
    pub ret: Vec<f32>,
}

/// Seeded inputs for `s.batch` rows.
pub fn data(s: &ActorCriticSpec) -> Data {
    let n = s.batch as usize;
    let width = s.logit_width() as usize;
    let masks = (0..n * width).map(|i| u32::from(i % 5 != 4)).collect();
    let a9 = integers(3, n, 9);
    let a3 = integers(4, n, 3);
    // Keep every stored action allowed: logit j of row r is masked when (r * width + j) % 5 == 4.
    let mut actions: Vec<u32> = (0..n).flat_map(|r| [a9[r], a3[r]]).collect();
    for r in 0..n {
        for (c, (off, size)) in [(0usize, 9u32), (9, 3)].into_iter().enumerate() {
            while (r * width + off + actions[r * 2 + c] as usize) % 5 == 4 {
                actions[r * 2 + c] = (actions[r * 2 + c] + 1) % size;
            }
        }
    }
    Data {
        obs: uniform(1, n * s.obs_width as usize, -1.0, 1.0),
        groups: integers(2, n, s.group_count),
        masks,
        actions,
        old_logp: uniform(5, n, -3.5, -2.5),
        old_values: uniform(6, n, -0.5, 0.5),
        adv: uniform(7, n, -1.0, 1.0),
        adj: uniform(8, n, -0.1, 0.1),
        ret: uniform(9, n, -1.0, 1.0),
    }
}

/// The minibatch view of `d`.
pub fn minibatch(d: &Data) -> Minibatch<'_> {
    Minibatch {
        obs: &d.obs,
        group_ids: &d.groups,
        masks: &d.masks,
        actions: &d.actions,
        old_logp: &d.old_logp,
        old_values: &d.old_values,
        advantages: &d.adv,
        adv_adjust: &d.adj,
        returns: &d.ret,
    }
}

/// Ten Adam steps on `d`; the parameters after them.
pub fn train_10<E: Executor>(ac: &mut ActorCritic<E>, d: &Data) -> Vec<f32> {
    let mb = minibatch(d);
    for _ in 0..10 {
        ac.train_minibatch(&mb).expect("train");
    }
    ac.params().expect("params")
}
