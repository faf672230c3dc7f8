//! What happened inside AH steps, for holding a profile against the reference code
//! (`fairground bench env --env ah --stats`): how often actions were substituted or exhausted,
//! which actions were finally executed, what each kind of outcome paid, who moved and who ended
//! frozen, how ripe the bushes were.
//!
//! The counters are filled only by [`super::AhEnv::step_recording`]: the rules are generic over
//! a [`Record`] and the plain [`super::AhEnv::step`] records into `()`, whose methods are empty,
//! so the plain step compiles to exactly what it was. Every counter is an integer, so the sums
//! do not depend on how the worker pool splits the instances.

use super::params::ACTIONS;

/// Outcome kinds that pay (spec §1.5's reward summary).
pub const OUTCOMES: [&str; 6] = [
    "eat_own",
    "eat_other",
    "ripen_own",
    "ripen_other",
    "change_colour",
    "block_other",
];
/// The reward of each outcome kind.
pub const OUTCOME_REWARD: [u64; 6] = [5, 1, 3, 1, 5, 3];

/// One instance's counters (agents ≤ 256: one moved bit each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Agent-steps: every agent's turn, whatever happened in it.
    pub agent_steps: u64,
    /// Turns lost before any attempt: frozen, or a sensitive agent resting.
    pub frozen_turns: u64,
    pub resting_turns: u64,
    /// Turns with at least one substitute (a first attempt infeasible).
    pub substituted: u64,
    /// Turns whose every attempt was infeasible.
    pub exhausted: u64,
    /// Turns ended by an attempt of each action (after substitution).
    pub executed: [u64; ACTIONS as usize],
    /// Outcomes that paid, by kind ([`OUTCOMES`]).
    pub outcomes: [u64; 6],
    /// Live and ripe bushes, summed over the steps (after the step's growth).
    pub bushes: u64,
    pub ripe_bushes: u64,
    /// Episodes that ended, and summed over them the agents that moved at least once and the
    /// agents frozen at the end.
    pub episodes: u64,
    pub moved_agents: u64,
    pub frozen_agents: u64,
    /// This episode's movers so far.
    pub moved: [u64; 4],
}

/// What the rules report while they step an instance.
pub(crate) trait Record {
    fn turn(&mut self) {}
    fn frozen(&mut self) {}
    fn resting(&mut self) {}
    fn substituted(&mut self) {}
    fn exhausted(&mut self) {}
    /// The turn ended with an attempt of `action` that paid `reward`; `agent` moved if it was
    /// a move.
    fn executed(&mut self, agent: usize, action: u8, reward: f32) {
        let _ = (agent, action, reward);
    }
    fn bushes(&mut self, live: u64, ripe: u64) {
        let _ = (live, ripe);
    }
    /// The episode ends with `frozen` agents frozen.
    fn episode_end(&mut self, frozen: u64) {
        let _ = frozen;
    }
    /// Whether `bushes` is wanted (the ripe count costs a pass over the bushes).
    fn wants_bushes(&self) -> bool {
        false
    }
}

impl Record for () {}

impl Record for InstanceStats {
    fn turn(&mut self) {
        self.agent_steps += 1;
    }
    fn frozen(&mut self) {
        self.frozen_turns += 1;
    }
    fn resting(&mut self) {
        self.resting_turns += 1;
    }
    fn substituted(&mut self) {
        self.substituted += 1;
    }
    fn exhausted(&mut self) {
        self.exhausted += 1;
    }
    fn executed(&mut self, agent: usize, action: u8, reward: f32) {
        use super::rules::action::*;
        self.executed[action as usize] += 1;
        let kind = match (action, reward as u32) {
            (EAT, 5) => Some(0),
            (EAT, 1) => Some(1),
            (RIPEN, 3) => Some(2),
            (RIPEN, 1) => Some(3),
            (CHANGE_COLOUR, 5) => Some(4),
            (INTERACT, 3) => Some(5),
            _ => None,
        };
        if let Some(k) = kind {
            self.outcomes[k] += 1;
        }
        if (UP..=RIGHT).contains(&action) {
            self.moved[agent / 64] |= 1 << (agent % 64);
        }
    }
    fn bushes(&mut self, live: u64, ripe: u64) {
        self.bushes += live;
        self.ripe_bushes += ripe;
    }
    fn episode_end(&mut self, frozen: u64) {
        self.episodes += 1;
        self.frozen_agents += frozen;
        self.moved_agents += self
            .moved
            .iter()
            .map(|m| u64::from(m.count_ones()))
            .sum::<u64>();
        self.moved = [0; 4];
    }
    fn wants_bushes(&self) -> bool {
        true
    }
}

/// Every instance's counters, for [`super::AhEnv::step_recording`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AhStats {
    pub instances: Vec<InstanceStats>,
}

impl AhStats {
    /// Zeroed counters for `instances` instances.
    pub fn new(instances: usize) -> Self {
        Self {
            instances: vec![InstanceStats::default(); instances],
        }
    }

    /// The sum over instances (integer sums: any order gives the same).
    pub fn total(&self) -> InstanceStats {
        let mut t = InstanceStats::default();
        for s in &self.instances {
            t.agent_steps += s.agent_steps;
            t.frozen_turns += s.frozen_turns;
            t.resting_turns += s.resting_turns;
            t.substituted += s.substituted;
            t.exhausted += s.exhausted;
            for (a, b) in t.executed.iter_mut().zip(&s.executed) {
                *a += b;
            }
            for (a, b) in t.outcomes.iter_mut().zip(&s.outcomes) {
                *a += b;
            }
            t.bushes += s.bushes;
            t.ripe_bushes += s.ripe_bushes;
            t.episodes += s.episodes;
            t.moved_agents += s.moved_agents;
            t.frozen_agents += s.frozen_agents;
        }
        t
    }
}
