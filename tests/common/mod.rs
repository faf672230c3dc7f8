//! Helpers shared by the integration tests (each test binary includes what it needs).
#![allow(dead_code)]

use fairground_kernel::ah::{AgentSpec, AhEnv, AhParams, BushSpec, StepOut, naive_observations};
use fairground_kernel::pool::WorkerPool;

/// One env step with freshly allocated outputs: (obs, rewards, dones).
pub fn step(env: &mut AhEnv, actions: &[u8], pool: &WorkerPool) -> (Vec<f32>, Vec<f32>, Vec<u8>) {
    let mut obs = vec![0f32; env.obs_len()];
    let mut rewards = vec![0f32; env.instances() * env.agents()];
    let mut dones = vec![0u8; env.instances()];
    let mut groups = vec![0u8; env.instances() * env.agents()];
    let mut prefs = vec![0u8; env.instances() * env.agents()];
    env.step(
        actions,
        StepOut {
            obs: &mut obs,
            rewards: &mut rewards,
            dones: &mut dones,
            groups: &mut groups,
            prefs: &mut prefs,
        },
        pool,
    );
    (obs, rewards, dones)
}

/// A one-instance env on a small empty grid with the given hand-made layout.
pub fn scenario(mut params: AhParams, agents: &[AgentSpec], bushes: &[BushSpec]) -> AhEnv {
    params.agents = agents.len() as u32;
    params.bushes_init = 0;
    let mut env = AhEnv::new(params, 1, 7).expect("valid params");
    env.set_layout(0, agents, bushes);
    env
}

pub fn agent(x: u32, y: u32, sensitive: bool, pref: u8) -> AgentSpec {
    AgentSpec {
        x,
        y,
        sensitive,
        pref,
    }
}

pub fn bush(x: u32, y: u32, colour: u8, ripe: bool) -> BushSpec {
    BushSpec { x, y, colour, ripe }
}

/// The observation of instance `i` by the naive definition, from its public state.
pub fn naive_obs(env: &AhEnv, i: usize) -> Vec<f32> {
    let inst = env.instance(i);
    let agents: Vec<_> = (0..env.agents())
        .map(|a| {
            let ag = inst.agent(a);
            (ag.x, ag.y, ag.sensitive, ag.pref, ag.last_reward)
        })
        .collect();
    let bushes: Vec<_> = inst.bushes().map(|b| (b.x, b.y, b.colour)).collect();
    naive_observations(env.params(), &agents, &bushes)
}
