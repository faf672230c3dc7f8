//! Observations (spec §1.3): 10 raw features per agent.
//!
//! The three distance features are the expensive part of a naive implementation (a scan of all
//! bushes and all agents per agent: ~100 entities × 40 agents per step). Here each kind of entity
//! is a bitmask per grid row; the nearest one to (x, y) is found by visiting rows outward from y
//! and, in each row, the nearest set bit left and right of x with two bit scans. The search stops
//! as soon as the row distance alone reaches the best distance found, so it usually looks at a
//! handful of rows. [`naive_observations`] is the definition it must equal; a test compares the
//! two on many random states.

use super::params::{AhParams, HEIGHT_MAX, OBS_DIM};
use super::state::{AhState, BLUE, Dims, Inst, RED};

/// The columns an observation reads, for one instance.
pub(crate) struct ObsInputs<'a> {
    pub agent_x: &'a [u8],
    pub agent_y: &'a [u8],
    pub agent_sensitive: &'a [u8],
    pub agent_pref: &'a [u8],
    pub agent_last_reward: &'a [f32],
    pub bush_count: [u16; 3],
    pub red_rows: &'a [u64],
    pub blue_rows: &'a [u64],
    pub agent_rows: &'a [u64],
    /// Cell contents (agent id on an agent's cell).
    pub cell: &'a [u8],
}

impl<'a> ObsInputs<'a> {
    pub fn from_inst(s: &'a Inst<'_>) -> Self {
        Self {
            agent_x: s.agent_x,
            agent_y: s.agent_y,
            agent_sensitive: s.agent_sensitive,
            agent_pref: s.agent_pref,
            agent_last_reward: s.agent_last_reward,
            bush_count: s.bush_count[0],
            red_rows: s.red_rows,
            blue_rows: s.blue_rows,
            agent_rows: s.agent_rows,
            cell: s.cell,
        }
    }

    pub fn from_state(s: &'a AhState, dims: Dims, i: usize) -> Self {
        let a = i * dims.agents..(i + 1) * dims.agents;
        let r = i * dims.rows..(i + 1) * dims.rows;
        let c = i * dims.cells..(i + 1) * dims.cells;
        Self {
            agent_x: &s.agent_x[a.clone()],
            agent_y: &s.agent_y[a.clone()],
            agent_sensitive: &s.agent_sensitive[a.clone()],
            agent_pref: &s.agent_pref[a.clone()],
            agent_last_reward: &s.agent_last_reward[a],
            bush_count: s.bush_count[i],
            red_rows: &s.red_rows[r.clone()],
            blue_rows: &s.blue_rows[r.clone()],
            agent_rows: &s.agent_rows[r],
            cell: &s.cell[c],
        }
    }
}

/// Sentinel distance for "no entity in this row": larger than any distance on a legal grid.
const FAR: u32 = 1 << 12;

/// Horizontal distance from column `x` to the nearest set bit of `row`, or `>= FAR` if none.
#[inline(always)]
fn row_distance(row: u64, x: u32) -> u32 {
    let right = (row >> x).trailing_zeros(); // 64 if nothing at or right of x
    let left = (row << (63 - x)).leading_zeros(); // 64 if nothing at or left of x
    let d = right.min(left);
    // Branch-free: 64 (empty row) becomes 64 + FAR.
    d + ((d & 64) << 6)
}

/// Manhattan distance from (x, y) to the nearest set bit of `rows`, or `none` if there is none.
/// `skip_self` clears bit (x, y) first (the agent's own position in the agent layer).
#[inline]
fn nearest(rows: &[u64], x: u32, y: u32, skip_self: bool, none: u32) -> u32 {
    let h = rows.len() as u32;
    let own = rows[y as usize] & !((skip_self as u64) << x);
    let mut best = row_distance(own, x);
    let mut dy = 1;
    while dy < best {
        let mut any = false;
        if y >= dy {
            best = best.min(dy + row_distance(rows[(y - dy) as usize], x));
            any = true;
        }
        if y + dy < h {
            best = best.min(dy + row_distance(rows[(y + dy) as usize], x));
            any = true;
        }
        if !any {
            break;
        }
        dy += 1;
    }
    if best >= FAR { none } else { best }
}

/// Write all agents' observations of one instance into `obs` (`agents × OBS_DIM`, row-major).
pub(crate) fn write_observations(p: &AhParams, s: &ObsInputs<'_>, obs: &mut [f32]) {
    let none = p.no_target_distance();
    let n_red = s.bush_count[RED as usize] as f32;
    let n_blue = s.bush_count[BLUE as usize] as f32;
    for (agent, o) in obs.chunks_exact_mut(OBS_DIM).enumerate() {
        let x = s.agent_x[agent] as u32;
        let y = s.agent_y[agent] as u32;
        o[0] = x as f32;
        o[1] = y as f32;
        o[2] = s.agent_sensitive[agent] as f32;
        o[3] = s.agent_last_reward[agent];
        o[4] = (s.agent_pref[agent] + 1) as f32;
        o[5] = n_red;
        o[6] = n_blue;
        o[9] = nearest(s.agent_rows, x, y, true, none) as f32;
    }
    bush_distances(p, s, obs);
}

/// Features 7 and 8 (distance to the nearest red / blue bush) of every agent at once, by
/// bit-parallel L1 dilation: after `d` rounds, bit (x, y) of `reach` is set iff a bush of that
/// colour lies within Manhattan distance `d` of (x, y). Each round costs a few word operations
/// per row for the whole grid; an agent's distance is the round in which its bit is first
/// reached. Agents never stand on bushes, so distance 0 never occurs.
fn bush_distances(p: &AhParams, s: &ObsInputs<'_>, obs: &mut [f32]) {
    let h = s.agent_rows.len();
    let width_mask = if p.width == 64 {
        u64::MAX
    } else {
        (1u64 << p.width) - 1
    };
    let none = p.no_target_distance() as f32;
    // Fixed-size scratch on the stack (no allocation). `reach` has one spare zero row below the
    // grid so that reading "the row below" needs no branch.
    let mut reach = [[0u64; HEIGHT_MAX as usize + 1]; 2];
    let mut waiting = [[0u64; HEIGHT_MAX as usize]; 2];
    let mut live = [false; 2];
    for (k, rows) in [s.red_rows, s.blue_rows].into_iter().enumerate() {
        reach[k][..h].copy_from_slice(rows);
        if rows.iter().any(|&r| r != 0) {
            waiting[k][..h].copy_from_slice(s.agent_rows);
            live[k] = true;
        } else {
            // No bush of this colour: every agent gets the "none" distance.
            for o in obs.chunks_exact_mut(OBS_DIM) {
                o[7 + k] = none;
            }
        }
    }
    let [reach_red, reach_blue] = &mut reach;
    let [waiting_red, waiting_blue] = &mut waiting;
    let mut d = 0u32;
    while live[0] || live[1] {
        d += 1;
        debug_assert!(
            d <= p.width + p.height,
            "dilation did not reach every agent"
        );
        // Both colours grow in the same pass (a finished colour has nothing left waiting, so
        // growing it further is harmless and cheaper than a branch per row).
        let (mut above_red, mut above_blue) = (0u64, 0u64);
        let (mut still_red, mut still_blue) = (0u64, 0u64);
        for y in 0..h {
            let (here_red, here_blue) = (reach_red[y], reach_blue[y]);
            let grown_red =
                (here_red | (here_red << 1) | (here_red >> 1) | above_red | reach_red[y + 1])
                    & width_mask;
            let grown_blue =
                (here_blue | (here_blue << 1) | (here_blue >> 1) | above_blue | reach_blue[y + 1])
                    & width_mask;
            above_red = here_red;
            above_blue = here_blue;
            reach_red[y] = grown_red;
            reach_blue[y] = grown_blue;
            let hit_red = grown_red & waiting_red[y];
            let hit_blue = grown_blue & waiting_blue[y];
            if (hit_red | hit_blue) != 0 {
                for (k, hit) in [(0, hit_red), (1, hit_blue)] {
                    let mut bits = hit;
                    while bits != 0 {
                        let x = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let agent = s.cell[p.cell_index(x as u32, y as u32)] as usize;
                        obs[agent * OBS_DIM + 7 + k] = d as f32;
                    }
                }
                waiting_red[y] &= !hit_red;
                waiting_blue[y] &= !hit_blue;
            }
            still_red |= waiting_red[y];
            still_blue |= waiting_blue[y];
        }
        live = [still_red != 0, still_blue != 0];
    }
}

/// The definition of the observation, computed the slow way from entity lists: for each agent,
/// the minimum Manhattan distance over every bush of a colour and every other agent. Test oracle.
pub fn naive_observations(
    p: &AhParams,
    agents: &[(u32, u32, bool, u8, f32)],
    bushes: &[(u32, u32, u8)],
) -> Vec<f32> {
    let none = p.no_target_distance();
    let mut out = Vec::with_capacity(agents.len() * OBS_DIM);
    let count = |c: u8| bushes.iter().filter(|b| b.2 == c).count() as f32;
    for (i, &(x, y, sensitive, pref, last_reward)) in agents.iter().enumerate() {
        let dist = |bx: u32, by: u32| bx.abs_diff(x) + by.abs_diff(y);
        let near_bush = |c: u8| {
            bushes
                .iter()
                .filter(|b| b.2 == c)
                .map(|b| dist(b.0, b.1))
                .min()
                .unwrap_or(none)
        };
        let near_agent = agents
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, a)| dist(a.0, a.1))
            .min()
            .unwrap_or(none);
        out.extend_from_slice(&[
            x as f32,
            y as f32,
            sensitive as u8 as f32,
            last_reward,
            (pref + 1) as f32,
            count(RED),
            count(BLUE),
            near_bush(RED) as f32,
            near_bush(BLUE) as f32,
            near_agent as f32,
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_distance_matches_a_scan() {
        for row in [
            0u64,
            1,
            1 << 63,
            0b1010_0000,
            u64::MAX,
            0x8000_0000_0000_0001,
        ] {
            for x in 0..64u32 {
                let scan = (0..64u32)
                    .filter(|b| row >> b & 1 == 1)
                    .map(|b| b.abs_diff(x))
                    .min();
                let fast = row_distance(row, x);
                match scan {
                    Some(d) => assert_eq!(fast, d, "row {row:#x} x {x}"),
                    None => assert!(fast >= FAR),
                }
            }
        }
    }
}
