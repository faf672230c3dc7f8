//! Guarantees: under random parameters, flags and actions, every AH step keeps the world
//! consistent — one entity per cell, every agent on its own cell, agents conserved, live bushes
//! within capacity and matching the kernel's colour counts, rewards only from {0, 1, 3, 5},
//! group sums equal to agent sums, freezes as the profile allows, the clock counting to the
//! episode limit, and observations equal to their naive definition.
//!
//! Seeds: a fixed list always runs, plus one fresh seed per run (from SIM_SEED if set, else the
//! clock). A failure prints `reproduce with SIM_SEED=…`.

mod common;

use common::{naive_obs, step};
use fairground_kernel::Profile;
use fairground_kernel::ah::{AhEnv, AhParams, OBS_DIM};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};

fn random_world(seed: u64) -> (AhParams, usize, u32, usize) {
    let mut rng = Stream::new(seed, Purpose::RandomActions, &[0xC0FFEE]);
    let profile = if rng.below(2) == 0 {
        Profile::Clean
    } else {
        Profile::Reference
    };
    let mut p = AhParams::new(profile);
    p.width = 1 + rng.below(40);
    p.height = 1 + rng.below(20);
    let cells = p.width * p.height;
    p.agents = 1 + rng.below(cells.min(50));
    p.bushes_init = rng.below(cells - p.agents + 1);
    p.red_bush_fraction = rng.unit_f64();
    p.red_agent_fraction = rng.unit_f64();
    p.sensitive_fraction = rng.unit_f64();
    p.lifespan_steps = 1 + rng.below(150);
    p.growth_every_steps = 1 + rng.below(4);
    p.growth_tries = rng.below(120);
    p.regrowth_steps = 1 + rng.below(5);
    p.max_attempts = 1 + rng.below(9);
    p.episode_steps = 1 + rng.below(300);
    // Any combination of flags must keep the invariants.
    p.flags.permanent_freeze = rng.below(2) == 0;
    p.flags.ripen_only_by_action = rng.below(2) == 0;
    p.flags.rest_blocks_all_actions = rng.below(2) == 0;
    p.flags.substitute_failed_actions = rng.below(2) == 0;
    p.flags.fixed_agent_order = rng.below(2) == 0;
    let instances = 1 + rng.below(6) as usize;
    let steps = 200 + rng.below(600);
    let threads = 1 + rng.below(3) as usize;
    (p, instances, steps, threads)
}

fn check(env: &AhEnv, obs: &[f32], rewards: &[f32], dones: &[u8]) -> Result<(), String> {
    let p = env.params();
    let a = env.agents();
    for i in 0..env.instances() {
        let inst = env.instance(i);
        let mut seen = vec![false; (p.width * p.height) as usize];
        for k in 0..a {
            let ag = inst.agent(k);
            if inst.cell(ag.x, ag.y) != Some(Ok(k)) {
                return Err(format!(
                    "instance {i}: agent {k} not on its cell ({}, {})",
                    ag.x, ag.y
                ));
            }
            let c = (ag.y * p.width + ag.x) as usize;
            if std::mem::replace(&mut seen[c], true) {
                return Err(format!("instance {i}: two agents on cell {c}"));
            }
            match (p.flags.permanent_freeze, ag.frozen_turns) {
                (true, None | Some(0)) | (false, Some(0 | 1)) => {}
                (_, f) => return Err(format!("instance {i}: agent {k} frozen_turns {f:?}")),
            }
            let r = rewards[i * a + k];
            if ![0.0, 1.0, 3.0, 5.0].contains(&r) {
                return Err(format!("instance {i}: agent {k} reward {r}"));
            }
        }
        let mut by_colour = [0u16; 3];
        for b in inst.bushes() {
            let c = (b.y * p.width + b.x) as usize;
            if std::mem::replace(&mut seen[c], true) {
                return Err(format!("instance {i}: bush on an occupied cell {c}"));
            }
            by_colour[b.colour as usize] += 1;
        }
        // Every cell the grid reports as occupied was accounted for above, and vice versa.
        for y in 0..p.height {
            for x in 0..p.width {
                let c = (y * p.width + x) as usize;
                if inst.cell(x, y).is_some() != seen[c] {
                    return Err(format!(
                        "instance {i}: cell ({x}, {y}) occupancy disagrees with entities"
                    ));
                }
            }
        }
        if by_colour != inst.bush_counts() {
            return Err(format!(
                "instance {i}: counted bushes {by_colour:?} vs kernel {:?}",
                inst.bush_counts()
            ));
        }
        let live: u32 = by_colour.iter().map(|&c| c as u32).sum();
        if live > p.width * p.height - p.agents {
            return Err(format!("instance {i}: {live} bushes exceed capacity"));
        }
        let agent_sum: f32 = (0..a).map(|k| inst.agent(k).episode_return).sum();
        let group_sum: f32 = inst.group_returns().iter().sum();
        if agent_sum != group_sum {
            return Err(format!(
                "instance {i}: agent returns {agent_sum} vs group returns {group_sum}"
            ));
        }
        if inst.step_in_episode() >= p.episode_steps
            || (dones[i] == 1) != (inst.step_in_episode() == 0)
        {
            return Err(format!(
                "instance {i}: clock {} with done {}",
                inst.step_in_episode(),
                dones[i]
            ));
        }
        let per = a * OBS_DIM;
        if obs[i * per..(i + 1) * per] != naive_obs(env, i)[..] {
            return Err(format!(
                "instance {i}: observation differs from the naive definition"
            ));
        }
    }
    Ok(())
}

fn run(seed: u64) {
    let (params, instances, steps, threads) = random_world(seed);
    let mut env = AhEnv::new(params.clone(), instances, seed).unwrap();
    let pool = WorkerPool::new(threads);
    let mut rng = Stream::new(seed, Purpose::RandomActions, &[]);
    let n = instances * env.agents();
    for t in 0..steps {
        let actions: Vec<u8> = (0..n).map(|_| rng.below(9) as u8).collect();
        let (obs, rewards, dones) = step(&mut env, &actions, &pool);
        if let Err(e) = check(&env, &obs, &rewards, &dones) {
            panic!(
                "invariant broken at step {t}: {e}\nparams: {params:?}\nreproduce with SIM_SEED={seed}"
            );
        }
    }
}

#[test]
fn invariants_hold_every_step() {
    let fresh = match std::env::var("SIM_SEED") {
        Ok(s) => s.parse().expect("SIM_SEED must be an unsigned integer"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("ah_invariants: fresh seed {fresh} (reproduce with SIM_SEED={fresh})");
    for seed in (1..=40).chain([fresh]) {
        run(seed);
    }
}
