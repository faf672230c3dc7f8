//! Guarantees: a small seeded AH instance, driven by a fixed action script, looks exactly like
//! the reviewed ASCII snapshots after 0, 5 and 30 steps, in both profiles. A rule change shows up
//! here as a readable diff of the grid. Legend (see `InstanceRef::render`): `R`/`B` agents by
//! preference, lower case if sensitive, `#` frozen; `x`/`o` unripe red/blue bushes, `X`/`O` ripe.

mod common;

use common::step;
use fairground_kernel::Profile;
use fairground_kernel::ah::{AhEnv, AhParams};
use fairground_kernel::pool::WorkerPool;

fn picture(profile: Profile, steps: u32) -> String {
    let mut p = AhParams::new(profile);
    p.width = 12;
    p.height = 6;
    p.agents = 8;
    p.bushes_init = 12;
    p.lifespan_steps = 25;
    let mut env = AhEnv::new(p, 1, 2026).unwrap();
    let pool = WorkerPool::new(1);
    for t in 0..steps {
        // A fixed script that exercises every action.
        let actions: Vec<u8> = (0..8u32).map(|a| ((t * 7 + a * 3) % 9) as u8).collect();
        step(&mut env, &actions, &pool);
    }
    let inst = env.instance(0);
    let returns: Vec<f32> = (0..8).map(|a| inst.agent(a).episode_return).collect();
    format!(
        "step {steps}, bushes [red, blue, none] = {:?}, returns {returns:?}\n{}",
        inst.bush_counts(),
        inst.render()
    )
}

#[test]
fn rendered_grids_match_snapshots() {
    for profile in Profile::ALL {
        for steps in [0, 5, 30] {
            insta::assert_snapshot!(format!("ah_{profile}_{steps}"), picture(profile, steps));
        }
    }
}
