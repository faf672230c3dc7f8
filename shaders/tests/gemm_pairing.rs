//! Guarantees for the `cpu-gemm` executor's pairing of `dense_forward` launches that read the
//! same rows (the policy's and the value network's first layers, both on the observations, or
//! both heads on a shared trunk's output):
//! - the paper's actor-critic forms such pairs (acting and training sequences), a trunk model
//!   too;
//! - pairing changes no bit: ten Adam steps, the sampled actions and the values are the same
//!   with pairing as without, grouped and not, on 1 and 2 threads;
//! - a short last minibatch (rows below the batch) still trains the same with pairing.

mod common;

use common::minibatch::{data, minibatch, train_10};
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, GemmExecutor, GemmPool, PpoHyper, SampleKey,
};

fn spec(trunk: Vec<u32>, hidden: Vec<u32>, groups: u32) -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width: 10,
        trunk,
        hidden,
        action_components: vec![9, 3],
        group_count: groups,
        hidden_activation: Activation::Tanh,
        batch: 320,
        use_masks: true,
    }
}

fn build(s: &ActorCriticSpec, threads: usize, pairing: bool) -> ActorCritic<GemmExecutor> {
    let pool = GemmPool::new(threads).expect("pool");
    ActorCritic::new(s.clone(), PpoHyper::default(), &s.init_params(5), |p| {
        Ok(GemmExecutor::new(p, pool.clone()).with_pairing(pairing))
    })
    .expect("actor-critic")
}

/// Actions and values of one acting call, then the parameters after ten steps, then after a
/// short (100-row) minibatch.
fn run(s: &ActorCriticSpec, threads: usize, pairing: bool) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut ac = build(s, threads, pairing);
    let d = data(s);
    let key = SampleKey {
        seed: 11,
        iteration: 1,
        step: 2,
        agent_offset: 0,
    };
    let out = ac.act(&d.obs, &d.groups, &d.masks, key).expect("act");
    let mut acted: Vec<u32> = out.actions.clone();
    acted.extend(out.values.iter().map(|v| v.to_bits()));
    let params = train_10(&mut ac, &d).iter().map(|v| v.to_bits()).collect();
    let n = 100;
    let (w, c) = (s.logit_width() as usize, s.action_components.len());
    let o = s.obs_width as usize;
    let mut mb = minibatch(&d);
    mb.obs = &d.obs[..n * o];
    mb.group_ids = &d.groups[..n];
    mb.masks = &d.masks[..n * w];
    mb.actions = &d.actions[..n * c];
    mb.old_logp = &d.old_logp[..n];
    mb.old_values = &d.old_values[..n];
    mb.advantages = &d.adv[..n];
    mb.adv_adjust = &d.adj[..n];
    mb.returns = &d.ret[..n];
    ac.train_minibatch(&mb).expect("short minibatch");
    let short = ac
        .params()
        .expect("params")
        .iter()
        .map(|v| v.to_bits())
        .collect();
    (acted, params, short)
}

#[test]
fn the_first_layers_on_the_observations_are_paired() {
    for (trunk, hidden) in [(vec![], vec![256, 128, 64]), (vec![64, 32], vec![])] {
        let s = spec(trunk.clone(), hidden, 2);
        let mut ac = build(&s, 2, true);
        let pairs = ac.executor().paired_launches();
        assert!(
            pairs >= 2,
            "trunk {trunk:?}: {pairs} paired launches, expected the acting and the training \
             forward's first layers at least"
        );
        assert_eq!(build(&s, 2, false).executor().paired_launches(), 0);
    }
}

#[test]
fn pairing_changes_no_bit() {
    for groups in [1, 2] {
        for (trunk, hidden) in [(vec![], vec![256, 128, 64]), (vec![64, 32], vec![])] {
            let s = spec(trunk.clone(), hidden, groups);
            for threads in [1, 2] {
                let alone = run(&s, threads, false);
                let paired = run(&s, threads, true);
                let what = format!("groups {groups}, trunk {trunk:?}, {threads} threads");
                assert!(alone.0 == paired.0, "{what}: acting differs");
                assert!(
                    alone.1 == paired.1,
                    "{what}: parameters after 10 steps differ"
                );
                assert!(alone.2 == paired.2, "{what}: the short minibatch differs");
            }
        }
    }
}
