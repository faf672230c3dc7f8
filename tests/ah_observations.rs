//! Guarantees: the fast observation (row bitmasks, outward search) equals the naive definition
//! of spec §1.3 (minimum Manhattan distance over every bush of a colour / every other agent,
//! `width + height` when none exists) on many random states: random grid sizes up to the 64-wide
//! limit, one agent only, no bushes, one colour only, crowded grids, both profiles.

mod common;

use common::{naive_obs, step};
use fairground_kernel::Profile;
use fairground_kernel::ah::{AhEnv, AhParams, OBS_DIM};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};

fn random_params(rng: &mut Stream) -> AhParams {
    let profile = if rng.below(2) == 0 {
        Profile::Clean
    } else {
        Profile::Reference
    };
    let mut p = AhParams::new(profile);
    p.width = 1 + rng.below(64);
    p.height = 1 + rng.below(20);
    let cells = p.width * p.height;
    p.agents = 1 + rng.below(cells.min(60));
    p.bushes_init = rng.below(cells - p.agents + 1);
    p.red_bush_fraction = [0.0, 0.5, 1.0, 0.3][rng.below(4) as usize];
    p.sensitive_fraction = rng.unit_f64();
    p.red_agent_fraction = rng.unit_f64();
    p.lifespan_steps = 1 + rng.below(60);
    p.growth_tries = [0, 3, 100][rng.below(3) as usize];
    p.episode_steps = 1 + rng.below(80);
    p
}

#[test]
fn fast_observations_equal_the_naive_definition() {
    let mut rng = Stream::new(2024, Purpose::RandomActions, &[1]);
    let pool = WorkerPool::new(2);
    let mut checked = 0;
    for case in 0..300 {
        let mut params = random_params(&mut rng);
        if case == 0 {
            params.width = 64; // the widest grid: bit 63 of a row is in use
        }
        let instances = 1 + rng.below(4) as usize;
        let mut env = AhEnv::new(params.clone(), instances, case).unwrap();
        let n = instances * env.agents();
        let mut obs = vec![0f32; env.obs_len()];
        env.observe(&mut obs);
        for t in 0..25 {
            for i in 0..instances {
                let per = env.agents() * OBS_DIM;
                let got = &obs[i * per..(i + 1) * per];
                assert_eq!(
                    got,
                    &naive_obs(&env, i)[..],
                    "case {case} step {t} instance {i} params {params:?}"
                );
                checked += 1;
            }
            let actions: Vec<u8> = (0..n).map(|_| rng.below(9) as u8).collect();
            obs = step(&mut env, &actions, &pool).0;
        }
    }
    assert!(checked > 10_000);
}
