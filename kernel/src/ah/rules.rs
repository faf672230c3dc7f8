//! The rules of one AH step for one instance (spec §1.2–§1.6), and its reset.
//!
//! Everything here works on one instance's columns ([`Inst`]) and allocates nothing.

use super::observe::{ObsInputs, write_observations};
use super::params::{ACTIONS, AGENTS_MAX, AhParams, OBS_DIM};
use super::state::{AhView, BLUE, BUSH, EMPTY, GROUPS, Inst, NEVER, NONE, RED, WALL};
use super::stats::{InstanceStats, Record};
use crate::pool::Split;
use crate::rng::{Purpose, Stream};

/// `agent_frozen` value meaning "for the rest of the episode".
pub(crate) const FROZEN_FOR_GOOD: u8 = u8::MAX;

/// Action ids (spec §1.5).
pub mod action {
    pub const STAY: u8 = 0;
    pub const UP: u8 = 1;
    pub const DOWN: u8 = 2;
    pub const LEFT: u8 = 3;
    pub const RIGHT: u8 = 4;
    pub const EAT: u8 = 5;
    pub const CHANGE_COLOUR: u8 = 6;
    pub const INTERACT: u8 = 7;
    pub const RIPEN: u8 = 8;
    /// Names in id order, for logs and reports.
    pub const NAMES: [&str; 9] = [
        "stay",
        "up",
        "down",
        "left",
        "right",
        "eat",
        "change_colour",
        "interact",
        "ripen",
    ];
}

/// Which world an environment simulates (one type for every environment, `crate::world`).
pub use crate::world::World;

/// One part of a step: a range of instances with their inputs and caller-owned outputs.
pub(crate) struct StepPart<'a> {
    pub state: AhView<'a>,
    pub actions: &'a [u8],
    pub obs: &'a mut [f32],
    pub rewards: &'a mut [f32],
    pub dones: &'a mut [u8],
    pub groups: &'a mut [u8],
    pub prefs: &'a mut [u8],
    /// One counter set per instance when recording ([`super::AhEnv::step_recording`]),
    /// empty otherwise.
    pub stats: &'a mut [InstanceStats],
}

impl Split for StepPart<'_> {
    fn instances(&self) -> usize {
        self.state.instances
    }

    fn split_at(self, at: usize) -> (Self, Self) {
        let a = self.state.dims.agents;
        let (s0, s1) = self.state.split_at(at);
        let (a0, a1) = self.actions.split_at(at * a);
        let (o0, o1) = self.obs.split_at_mut(at * a * OBS_DIM);
        let (r0, r1) = self.rewards.split_at_mut(at * a);
        let (d0, d1) = self.dones.split_at_mut(at);
        let (g0, g1) = self.groups.split_at_mut(at * a);
        let (p0, p1) = self.prefs.split_at_mut(at * a);
        let (c0, c1) = if self.stats.is_empty() {
            (Default::default(), Default::default())
        } else {
            self.stats.split_at_mut(at)
        };
        (
            StepPart {
                state: s0,
                actions: a0,
                obs: o0,
                rewards: r0,
                dones: d0,
                groups: g0,
                prefs: p0,
                stats: c0,
            },
            StepPart {
                state: s1,
                actions: a1,
                obs: o1,
                rewards: r1,
                dones: d1,
                groups: g1,
                prefs: p1,
                stats: c1,
            },
        )
    }
}

/// Step every instance of `part` once.
pub(crate) fn step_part(p: &AhParams, part: StepPart<'_>, world: World) {
    let StepPart {
        mut state,
        actions,
        obs,
        rewards,
        dones,
        groups,
        prefs,
        stats,
    } = part;
    let a = state.dims.agents;
    for i in 0..state.instances {
        let mut s = state.inst(i);
        let acts = &actions[i * a..(i + 1) * a];
        let rew = &mut rewards[i * a..(i + 1) * a];
        // Recording is chosen per instance, outside the agents' loop: the plain step runs the
        // rules with `()`, whose records are empty.
        dones[i] = match stats.get_mut(i) {
            Some(rec) => step_instance(p, &mut s, acts, rew, world, rec),
            None => step_instance(p, &mut s, acts, rew, world, &mut ()),
        } as u8;
        groups[i * a..(i + 1) * a].copy_from_slice(&s.agent_sensitive[..a]);
        prefs[i * a..(i + 1) * a].copy_from_slice(&s.agent_pref[..a]);
        write_observations(
            p,
            &ObsInputs::from_inst(&s),
            &mut obs[i * a * OBS_DIM..(i + 1) * a * OBS_DIM],
        );
    }
}

/// One step of one instance; returns whether its episode ended (it is then already reset).
fn step_instance<R: Record>(
    p: &AhParams,
    s: &mut Inst<'_>,
    actions: &[u8],
    rewards: &mut [f32],
    world: World,
    rec: &mut R,
) -> bool {
    let n = p.agents as usize;
    let t = s.step[0];

    // 1. Agents act one after the other on the grid as earlier movers left it (first mover wins).
    if p.flags.fixed_agent_order {
        for (agent, &action) in actions.iter().enumerate().take(n) {
            act_and_book(p, s, agent, action, t, rewards, rec);
        }
    } else {
        let mut order = [0u8; AGENTS_MAX as usize];
        for (k, o) in order.iter_mut().enumerate().take(n) {
            *o = k as u8;
        }
        s.order_rng[0].shuffle(&mut order[..n]);
        for &agent in &order[..n] {
            let agent = agent as usize;
            act_and_book(p, s, agent, actions[agent], t, rewards, rec);
        }
    }

    // 2. Bushes age: the ones whose lifespan is over die. (Clean-profile regrowth needs no
    // pass: a bush's `bush_ripe_at` already says when it is ripe again.)
    expire_bushes(p, s, t);

    // 3. Spontaneous growth every `growth_every_steps` steps (not at step 0).
    if t > 0 && t.is_multiple_of(p.growth_every_steps) {
        grow_bush(p, s, t);
    }
    if rec.wants_bushes() {
        let (live, ripe) = bush_ripeness(s, t + 1);
        rec.bushes(live, ripe);
    }

    // 4. Advance the clock; at the limit, book the episode and start the next one.
    s.step[0] = t + 1;
    if s.step[0] >= p.episode_steps {
        rec.episode_end(frozen_agents(s));
        s.agent_last_return.copy_from_slice(s.agent_return);
        s.last_group_return[0] = group_sums(s.agent_return, s.agent_sensitive, s.agent_pref);
        s.episodes_done[0] += 1;
        reset_instance(p, s, world);
        true
    } else {
        false
    }
}

/// Agents frozen now (for good, or for their next turn).
pub(crate) fn frozen_agents(s: &Inst<'_>) -> u64 {
    s.agent_frozen.iter().filter(|&&f| f > 0).count() as u64
}

/// Live bushes and the ripe ones among them as of step `t`.
pub(crate) fn bush_ripeness(s: &Inst<'_>, t: u32) -> (u64, u64) {
    let cap = s.ring_cell.len();
    let (head, len) = (s.ring_head[0] as usize, s.ring_len[0] as usize);
    let ripe = (0..len)
        .filter(|k| t >= s.bush_ripe_at[s.ring_cell[(head + k) % cap] as usize])
        .count();
    (len as u64, ripe as u64)
}

#[inline]
fn act_and_book<R: Record>(
    p: &AhParams,
    s: &mut Inst<'_>,
    agent: usize,
    action: u8,
    t: u32,
    rewards: &mut [f32],
    rec: &mut R,
) {
    assert!(
        (action as u32) < ACTIONS,
        "action {action} of agent {agent} is not in 0..{ACTIONS}"
    );
    let r = act(p, s, agent, action, t, rec);
    rewards[agent] = r;
    s.agent_last_reward[agent] = r;
    s.agent_return[agent] += r;
}

/// Reward sums by group `[NSr, NSb, Sr, Sb]`. Groups are fixed within an episode, so these are
/// derived from per-agent returns rather than accumulated every step; rewards are small
/// integers, so the f32 sums are exact whatever the order.
pub(crate) fn group_sums(returns: &[f32], sensitive: &[u8], pref: &[u8]) -> [f32; GROUPS] {
    let mut sums = [0f32; GROUPS];
    for ((&r, &s), &p) in returns.iter().zip(sensitive).zip(pref) {
        sums[group_of(s, p)] += r;
    }
    sums
}

/// Group index in `[NSr, NSb, Sr, Sb]`.
#[inline]
pub(crate) fn group_of(sensitive: u8, pref: u8) -> usize {
    const { assert!(GROUPS == 4) };
    (sensitive as usize) * 2 + pref as usize
}

/// What one attempt of an action led to.
enum Attempt {
    /// The action took effect (or was a no-op that ends the turn) with this reward.
    Done(f32),
    /// Not possible here: try a substitute (spec §1.5 step 4).
    Infeasible,
}

/// One agent's turn: frozen and resting checks, then up to `max_attempts` attempts.
#[inline]
fn act<R: Record>(
    p: &AhParams,
    s: &mut Inst<'_>,
    agent: usize,
    action: u8,
    t: u32,
    rec: &mut R,
) -> f32 {
    rec.turn();
    let frozen = s.agent_frozen[agent];
    if frozen > 0 {
        if frozen != FROZEN_FOR_GOOD {
            s.agent_frozen[agent] = frozen - 1;
        }
        rec.frozen();
        return 0.0;
    }
    // Sensitive agents act on odd steps only (the reference increments a per-agent counter
    // before testing its parity, so they act on 0-based steps 1, 3, 5, ...).
    let resting = s.agent_sensitive[agent] == 1 && t.is_multiple_of(2);
    if resting && p.flags.rest_blocks_all_actions {
        rec.resting();
        return 0.0;
    }
    let attempts = if p.flags.substitute_failed_actions {
        p.max_attempts
    } else {
        1
    };
    let mut candidates: u16 = (1 << ACTIONS) - 1;
    let mut current = action;
    for attempt in 1..=attempts {
        match attempt_action(p, s, agent, current, resting, t) {
            Attempt::Done(r) => {
                rec.executed(agent, current, r);
                return r;
            }
            Attempt::Infeasible => {
                if attempt == attempts {
                    break;
                }
                if attempt == 1 {
                    rec.substituted();
                }
                candidates &= !(1u16 << current);
                let k = s.agent_rng[agent].below(candidates.count_ones());
                current = nth_set_bit(candidates, k);
            }
        }
    }
    rec.exhausted();
    0.0
}

/// Index of the `k`-th (0-based) set bit of `bits`.
#[inline]
fn nth_set_bit(mut bits: u16, k: u32) -> u8 {
    for _ in 0..k {
        bits &= bits - 1;
    }
    bits.trailing_zeros() as u8
}

/// The four neighbours of padded cell `c` in the reference's scan order: (x, y+1), (x+1, y),
/// (x, y-1), (x-1, y). Off-grid neighbours are wall cells, which match no predicate.
#[inline]
fn neighbours(p: &AhParams, c: usize) -> [usize; 4] {
    let pw = p.padded_width();
    [c + pw, c + 1, c - pw, c - 1]
}

#[inline]
fn first_adjacent(
    p: &AhParams,
    s: &Inst<'_>,
    c: usize,
    pred: impl Fn(u8, usize) -> bool,
) -> Option<usize> {
    neighbours(p, c).into_iter().find(|&n| pred(s.cell[n], n))
}

fn attempt_action(
    p: &AhParams,
    s: &mut Inst<'_>,
    agent: usize,
    action: u8,
    resting: bool,
    t: u32,
) -> Attempt {
    use action::*;
    let x = s.agent_x[agent] as u32;
    let y = s.agent_y[agent] as u32;
    let pref = s.agent_pref[agent];
    let here = p.cell_index(x, y);
    match action {
        STAY => Attempt::Done(0.0),
        UP | DOWN | LEFT | RIGHT => {
            if resting || p.flags.moves_never_succeed {
                return Attempt::Infeasible;
            }
            let pw = p.padded_width();
            let (target, tx, ty) = match action {
                UP => (here - pw, x, y.wrapping_sub(1)),
                DOWN => (here + pw, x, y + 1),
                LEFT => (here - 1, x.wrapping_sub(1), y),
                _ => (here + 1, x + 1, y),
            };
            // Off-grid targets are wall cells, never EMPTY.
            if s.cell[target] != EMPTY {
                return Attempt::Infeasible;
            }
            s.cell[here] = EMPTY;
            s.cell[target] = agent as u8;
            s.agent_rows[y as usize] &= !(1u64 << x);
            s.agent_rows[ty as usize] |= 1u64 << tx;
            s.agent_x[agent] = tx as u8;
            s.agent_y[agent] = ty as u8;
            Attempt::Done(0.0)
        }
        EAT => match first_adjacent(p, s, here, |v, _| v == BUSH) {
            None => Attempt::Infeasible,
            Some(c) => {
                let colour = s.bush_colour[c];
                if t >= s.bush_ripe_at[c] && colour != NONE {
                    unripen(p, s, c, t);
                    Attempt::Done(if colour == pref { 5.0 } else { 1.0 })
                } else {
                    Attempt::Done(0.0)
                }
            }
        },
        RIPEN => match first_adjacent(p, s, here, |v, _| v == BUSH) {
            None => Attempt::Infeasible,
            Some(c) => {
                if t < s.bush_ripe_at[c] {
                    s.bush_ripe_at[c] = 0;
                    Attempt::Done(if s.bush_colour[c] == pref { 3.0 } else { 1.0 })
                } else {
                    Attempt::Done(0.0)
                }
            }
        },
        CHANGE_COLOUR => {
            if first_adjacent(p, s, here, |v, _| v == BUSH).is_none() {
                return Attempt::Infeasible;
            }
            // Feasible next to any bush; if every adjacent bush already has the agent's colour
            // nothing happens and the turn ends (the reference does not substitute here).
            match first_adjacent(p, s, here, |v, c| v == BUSH && s.bush_colour[c] != pref) {
                None => Attempt::Done(0.0),
                Some(c) => {
                    recolour_bush(p, s, c, pref);
                    unripen(p, s, c, t);
                    Attempt::Done(5.0)
                }
            }
        }
        INTERACT => match first_adjacent(p, s, here, |v, _| v < WALL) {
            None => Attempt::Infeasible,
            Some(c) => {
                let target = s.cell[c] as usize;
                s.agent_frozen[target] = if p.flags.permanent_freeze {
                    FROZEN_FOR_GOOD
                } else {
                    1
                };
                Attempt::Done(if s.agent_pref[target] != pref {
                    3.0
                } else {
                    0.0
                })
            }
        },
        _ => unreachable!("action checked against ACTIONS"),
    }
}

fn recolour_bush(p: &AhParams, s: &mut Inst<'_>, c: usize, colour: u8) {
    let old = s.bush_colour[c];
    let (x, y) = p.cell_xy(c);
    set_colour_bit(s, old, x, y, false);
    set_colour_bit(s, colour, x, y, true);
    s.bush_count[0][old as usize] -= 1;
    s.bush_count[0][colour as usize] += 1;
    s.bush_colour[c] = colour;
}

#[inline]
fn set_colour_bit(s: &mut Inst<'_>, colour: u8, x: u32, y: u32, on: bool) {
    let rows = match colour {
        RED => &mut *s.red_rows,
        BLUE => &mut *s.blue_rows,
        _ => return,
    };
    if on {
        rows[y as usize] |= 1u64 << x;
    } else {
        rows[y as usize] &= !(1u64 << x);
    }
}

/// Put a new unripe bush on empty cell `c`, dying after the bush phase of step `expiry`, its
/// regrowth counted from step `unripe_from` (0 for bushes placed at reset; `t + 1` for one grown
/// at the end of step `t`, which misses that step's regrowth).
pub(crate) fn place_bush(
    p: &AhParams,
    s: &mut Inst<'_>,
    c: usize,
    colour: u8,
    expiry: u32,
    unripe_from: u32,
) {
    debug_assert_eq!(s.cell[c], EMPTY);
    s.cell[c] = BUSH;
    s.bush_colour[c] = colour;
    unripen(p, s, c, unripe_from);
    let (x, y) = p.cell_xy(c);
    set_colour_bit(s, colour, x, y, true);
    s.bush_count[0][colour as usize] += 1;
    // The ring keeps bushes in birth order, which is also expiry order (all share one lifespan).
    let cap = s.ring_cell.len();
    let tail = (s.ring_head[0] as usize + s.ring_len[0] as usize) % cap;
    assert!(
        (s.ring_len[0] as usize) < cap,
        "live-bush ring full: more bushes than cells"
    );
    s.ring_cell[tail] = c as u16;
    s.ring_expiry[tail] = expiry;
    s.ring_len[0] += 1;
}

fn expire_bushes(p: &AhParams, s: &mut Inst<'_>, t: u32) {
    let cap = s.ring_cell.len();
    while s.ring_len[0] > 0 {
        let head = s.ring_head[0] as usize;
        if s.ring_expiry[head] > t {
            break;
        }
        let c = s.ring_cell[head] as usize;
        let colour = s.bush_colour[c];
        let (x, y) = p.cell_xy(c);
        set_colour_bit(s, colour, x, y, false);
        s.bush_count[0][colour as usize] -= 1;
        s.cell[c] = EMPTY;
        s.ring_head[0] = ((head + 1) % cap) as u16;
        s.ring_len[0] -= 1;
    }
}

/// Make bush `c` unripe, counting its regrowth from step `from`: with the clean rule it is ripe
/// again at step `from + regrowth_steps` (an eaten bush at step t is ripe again at t + 3: it
/// regrows at the end of steps t, t + 1, t + 2); with `ripen_only_by_action` never by itself.
#[inline]
fn unripen(p: &AhParams, s: &mut Inst<'_>, c: usize, from: u32) {
    s.bush_ripe_at[c] = if p.flags.ripen_only_by_action {
        NEVER
    } else {
        from + p.regrowth_steps
    };
}

/// Spontaneous growth (spec §1.4): colour by the linear rule, then up to `growth_tries` random
/// cells; the bush grows on the first empty one.
fn grow_bush(p: &AhParams, s: &mut Inst<'_>, t: u32) {
    let red = s.bush_count[0][RED as usize] as f64;
    let blue = s.bush_count[0][BLUE as usize] as f64;
    let rng = &mut s.growth_rng[0];
    let colour = if red + blue == 0.0 {
        NONE
    } else if rng.unit_f64() < red / (red + blue) {
        RED
    } else {
        BLUE
    };
    for _ in 0..p.growth_tries {
        let rng = &mut s.growth_rng[0];
        let x = rng.below(p.width);
        let y = rng.below(p.height);
        let c = p.cell_index(x, y);
        if s.cell[c] == EMPTY {
            place_bush(p, s, c, colour, t + p.lifespan_steps, t + 1);
            return;
        }
    }
}

/// Start a new episode with the next seed of the instance's episode stream (spec §1.2); with
/// `one_layout` the stream is not advanced, so every episode gets its first seed.
pub(crate) fn reset_instance(p: &AhParams, s: &mut Inst<'_>, world: World) {
    let n = p.agents as usize;
    let seed = if p.one_layout {
        s.episode_rng[0].clone().next_u64()
    } else {
        s.episode_rng[0].next_u64()
    };
    let mut layout = Stream::new(seed, Purpose::AhLayout, &[]);
    s.growth_rng[0] = Stream::new(seed, Purpose::AhGrowth, &[]);
    s.order_rng[0] = Stream::new(seed, Purpose::AhOrder, &[]);
    for (agent, rng) in s.agent_rng.iter_mut().enumerate() {
        *rng = Stream::new(seed, Purpose::AhRetry, &[agent as u64]);
    }

    clear_instance(p, s);

    // Sensitive agents: a uniform subset of exactly `sensitive_agents()` (a partial
    // Fisher–Yates); the counterfactual twin flips every agent's attribute.
    let mut ids = [0u8; AGENTS_MAX as usize];
    for (k, id) in ids.iter_mut().enumerate().take(n) {
        *id = k as u8;
    }
    let k_sensitive = p.sensitive_agents() as usize;
    for i in 0..k_sensitive {
        let j = i + layout.below((n - i) as u32) as usize;
        ids.swap(i, j);
    }
    let flip = (world == World::Counterfactual) as u8;
    s.agent_sensitive.fill(flip);
    for &id in &ids[..k_sensitive] {
        s.agent_sensitive[id as usize] = 1 - flip;
    }

    // Agents (red-preferring first), then red bushes, then blue bushes, each on a uniformly
    // random empty cell: the same distribution as popping cells off a shuffled list.
    let red_agents = p.red_agents() as usize;
    for agent in 0..n {
        let c = random_empty_cell(p, s, &mut layout);
        s.cell[c] = agent as u8;
        let (x, y) = p.cell_xy(c);
        s.agent_x[agent] = x as u8;
        s.agent_y[agent] = y as u8;
        s.agent_rows[y as usize] |= 1u64 << x;
        s.agent_pref[agent] = if agent < red_agents { RED } else { BLUE };
    }
    let red_bushes = p.red_bushes_init();
    for b in 0..p.bushes_init {
        let c = random_empty_cell(p, s, &mut layout);
        let colour = if b < red_bushes { RED } else { BLUE };
        // Initial bushes count as born before step 0: they die after step `lifespan - 1`.
        place_bush(p, s, c, colour, p.lifespan_steps - 1, 0);
    }
}

fn random_empty_cell(p: &AhParams, s: &Inst<'_>, rng: &mut Stream) -> usize {
    // Terminates: validation guarantees agents + initial bushes <= cells.
    // One draw over the unpadded cells (row-major), exactly as on an unpadded grid.
    loop {
        let k = rng.below(p.cells());
        let c = p.cell_index(k % p.width, k / p.width);
        if s.cell[c] == EMPTY {
            return c;
        }
    }
}

/// Empty the grid and zero the episode's clock, counters and returns (streams are kept).
pub(crate) fn clear_instance(p: &AhParams, s: &mut Inst<'_>) {
    s.step[0] = 0;
    s.bush_count[0] = [0; 3];
    s.ring_head[0] = 0;
    s.ring_len[0] = 0;
    // Walls on the border, empty inside.
    let pw = p.padded_width();
    let ph = p.height as usize + 2;
    s.cell.fill(WALL);
    for y in 1..ph - 1 {
        s.cell[y * pw + 1..(y + 1) * pw - 1].fill(EMPTY);
    }
    s.bush_colour.fill(0);
    s.bush_ripe_at.fill(NEVER);
    s.red_rows.fill(0);
    s.blue_rows.fill(0);
    s.agent_rows.fill(0);
    s.agent_frozen.fill(0);
    s.agent_last_reward.fill(0.0);
    s.agent_return.fill(0.0);
}
