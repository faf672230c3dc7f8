//! Guarantees for `AhParams::one_layout` (the reference's CF test: every test game re-creates
//! its worlds from seed 42):
//! - every episode of every instance starts from the same layout (agents' cells, sensitive
//!   draw, preferences, bushes), across auto-resets and whatever the actions were;
//! - the all-able world's twin is the all-sensitive world on that same layout;
//! - without it, episodes and instances differ (the flag is what does it), and a snapshot
//!   without the field reads it as off.

mod common;

use fairground_kernel::Profile;
use fairground_kernel::ah::{AhEnv, AhParams};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};

type Layout = (Vec<(u32, u32, bool, u8)>, Vec<(u32, u32)>);

fn layout(env: &AhEnv, i: usize) -> Layout {
    let inst = env.instance(i);
    let agents = (0..env.agents())
        .map(|a| {
            let g = inst.agent(a);
            (g.x, g.y, g.sensitive, g.pref)
        })
        .collect();
    let bushes = inst.bushes().map(|b| (b.x, b.y)).collect();
    (agents, bushes)
}

/// Each instance's starting layout of its first `episodes` episodes, under random actions.
fn starts(params: AhParams, instances: usize, episodes: u32) -> Vec<Vec<Layout>> {
    let mut env = AhEnv::new(params, instances, 11).unwrap();
    let pool = WorkerPool::new(2);
    let n = instances * env.agents();
    let mut rng = Stream::new(11, Purpose::RandomActions, &[]);
    let mut out: Vec<Vec<Layout>> = (0..instances).map(|i| vec![layout(&env, i)]).collect();
    while out[0].len() < episodes as usize {
        let actions: Vec<u8> = (0..n).map(|_| rng.below(9) as u8).collect();
        let (_, _, dones) = common::step(&mut env, &actions, &pool);
        for (i, o) in out.iter_mut().enumerate() {
            if dones[i] != 0 {
                o.push(layout(&env, i));
            }
        }
    }
    out
}

fn params(one_layout: bool) -> AhParams {
    let mut p = AhParams::new(Profile::Reference);
    p.episode_steps = 15;
    p.one_layout = one_layout;
    p
}

#[test]
fn every_game_starts_from_one_layout() {
    let s = starts(params(true), 3, 4);
    let first = &s[0][0];
    for (i, inst) in s.iter().enumerate() {
        for (e, l) in inst.iter().enumerate() {
            assert_eq!(l, first, "instance {i} episode {e}");
        }
    }
    let plain = starts(params(false), 3, 4);
    assert_ne!(plain[0][0], plain[0][1], "without the flag episodes differ");
    assert_ne!(
        plain[0][0], plain[1][0],
        "without the flag instances differ"
    );
}

#[test]
fn the_all_able_worlds_twin_is_all_sensitive_on_the_same_layout() {
    let mut p = params(true);
    p.sensitive_fraction = 0.0;
    let able = AhEnv::new(p, 2, 5).unwrap();
    let sensitive = able.twin();
    for i in 0..2 {
        let (a, b) = (layout(&able, i), layout(&sensitive, i));
        assert!(a.0.iter().all(|g| !g.2) && b.0.iter().all(|g| g.2));
        let cells = |l: &Layout| {
            (
                l.0.iter().map(|g| (g.0, g.1, g.3)).collect::<Vec<_>>(),
                l.1.clone(),
            )
        };
        assert_eq!(cells(&a), cells(&b), "instance {i}");
    }
}

#[test]
fn old_snapshots_read_one_layout_as_off() {
    let env = AhEnv::new(params(false), 1, 3).unwrap();
    let mut json = serde_json::to_value(env.snapshot()).unwrap();
    json["params"].as_object_mut().unwrap().remove("one_layout");
    let snap: fairground_kernel::ah::AhSnapshot = serde_json::from_value(json).unwrap();
    assert!(!snap.params.one_layout);
}
