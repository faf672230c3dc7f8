//! AH frames for the viewer and the GIF: one per state of factual instance 0, from the
//! restored start (frame 0) to the end of the episode (frame `rounds`).
//!
//! The kernel starts the next episode inside the step that ends one, so the grid after the
//! last round is already the next episode's. The last frame therefore keeps the grid of the
//! frame before it and carries the episode's booked outcome: its group returns are
//! `last_episode_group_returns` (what `eval` and the replay's header report), its per-agent
//! returns `last_episode_returns`.

use crate::replay::sim::Kernel;
use fairground_kernel::ah::{GROUPS, InstanceRef, action};
use serde::Serialize;

/// A cell's code in a frame's grid string: `.` empty or an agent's cell; bushes `r`/`b`/`n`
/// (red, blue, uncoloured) unripe, upper case ripe.
fn bush_code(colour: u8, ripe: bool) -> u8 {
    let c = [b'r', b'b', b'n'][usize::from(colour.min(2))];
    if ripe { c.to_ascii_uppercase() } else { c }
}

/// One frame of the episode.
#[derive(Clone, Debug, Serialize)]
pub struct AhFrame {
    /// Step of the episode this frame shows (0 = the start).
    pub step: u32,
    /// `width * height` cell codes, row y = 0 first (see [`bush_code`]).
    pub grid: String,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
    /// 0 free, 1 sits out its next turn(s), 2 frozen for the rest of the episode.
    pub frozen: Vec<u8>,
    /// The action each agent took in the round that led here (none in frame 0).
    pub action: Vec<u8>,
    /// The reward the round gave each agent.
    pub reward: Vec<f32>,
    /// Each agent's return so far this episode.
    pub ret: Vec<f32>,
    /// Returns so far by group `[NS red, NS blue, S red, S blue]`.
    pub group_returns: [f32; GROUPS],
    /// Live bushes `[red, blue, none]`.
    pub bushes: [u16; 3],
    /// The episode ended with the round that led here.
    pub end: bool,
}

/// The episode's frames and what does not change within it.
#[derive(Clone, Debug, Serialize)]
pub struct AhFrames {
    pub width: u32,
    pub height: u32,
    pub agents: u32,
    pub sensitive: Vec<u8>,
    /// Preference colour: 0 red, 1 blue.
    pub pref: Vec<u8>,
    pub action_names: Vec<&'static str>,
    pub frames: Vec<AhFrame>,
}

impl AhFrames {
    pub fn new() -> Self {
        Self {
            width: 0,
            height: 0,
            agents: 0,
            sensitive: vec![],
            pref: vec![],
            action_names: action::NAMES.to_vec(),
            frames: vec![],
        }
    }

    /// Add the frame of `kernel` after a round whose actions were `actions` (the start: None).
    pub fn push(&mut self, kernel: &Kernel, actions: Option<&[u8]>) {
        let Kernel::Ah {
            env,
            rewards,
            dones,
            ..
        } = kernel
        else {
            unreachable!("an AH replay restores an AH kernel")
        };
        let inst = env.instance(0);
        let n = env.agents();
        if self.frames.is_empty() {
            let p = env.params();
            self.width = p.width;
            self.height = p.height;
            self.agents = n as u32;
            for a in 0..n {
                let ag = inst.agent(a);
                self.sensitive.push(u8::from(ag.sensitive));
                self.pref.push(ag.pref);
            }
        }
        let end = actions.is_some() && dones[0] != 0;
        let action = actions.map_or_else(|| vec![u8::MAX; n], |a| a[..n].to_vec());
        let reward = if actions.is_some() {
            rewards[..n].to_vec()
        } else {
            vec![0.0; n]
        };
        let frame = if end {
            // The state is the next episode's: keep the last grid, book the outcome.
            let prev = self.frames.last().expect("a round follows the start frame");
            AhFrame {
                step: prev.step + 1,
                action,
                reward,
                ret: inst.last_episode_returns().to_vec(),
                group_returns: inst.last_episode_group_returns(),
                end: true,
                ..prev.clone()
            }
        } else {
            self.live_frame(&inst, n, action, reward)
        };
        self.frames.push(frame);
    }

    fn live_frame(
        &self,
        inst: &InstanceRef<'_>,
        n: usize,
        action: Vec<u8>,
        reward: Vec<f32>,
    ) -> AhFrame {
        let (w, h) = (self.width, self.height);
        let mut grid = vec![b'.'; (w * h) as usize];
        for b in inst.bushes() {
            grid[(b.y * w + b.x) as usize] = bush_code(b.colour, b.ripe);
        }
        let mut f = AhFrame {
            step: inst.step_in_episode(),
            grid: String::from_utf8(grid).expect("ascii"),
            x: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
            frozen: Vec::with_capacity(n),
            action,
            reward,
            ret: Vec::with_capacity(n),
            group_returns: inst.group_returns(),
            bushes: inst.bush_counts(),
            end: false,
        };
        for a in 0..n {
            let ag = inst.agent(a);
            f.x.push(ag.x as u8);
            f.y.push(ag.y as u8);
            f.frozen.push(match ag.frozen_turns {
                Some(0) => 0,
                Some(_) => 1,
                None => 2,
            });
            f.ret.push(ag.episode_return);
        }
        f
    }
}

impl Default for AhFrames {
    fn default() -> Self {
        Self::new()
    }
}
