//! The struct-of-arrays state of N AH instances.
//!
//! Every column is one `Vec` over all instances, laid out instance-major with a fixed stride per
//! instance: per-instance scalars (stride 1), per-agent (stride `agents`), per-cell (stride
//! `cells`), per-row bitmasks (stride `height`). The `soa!` macro writes the column list once and
//! derives from it the owning state, a mutable view over a range of instances that splits at an
//! instance boundary (how the worker pool divides a step), and a per-instance borrow.

use crate::rng::Stream;
use serde::{Deserialize, Serialize};

/// Strides of the column kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    pub agents: usize,
    pub cells: usize,
    pub rows: usize,
}

impl Dims {
    #[inline]
    pub fn instance(&self) -> usize {
        1
    }
    #[inline]
    pub fn agent(&self) -> usize {
        self.agents
    }
    #[inline]
    pub fn cell(&self) -> usize {
        self.cells
    }
    #[inline]
    pub fn row(&self) -> usize {
        self.rows
    }
}

/// Reward groups: sensitive × preference colour, in the order `[NSr, NSb, Sr, Sb]` (spec §6).
pub const GROUPS: usize = 4;

/// Cell marker: nothing here. Values below `WALL` are agent ids.
pub(crate) const EMPTY: u8 = 0xFF;
/// Cell marker: a bush (its attributes are in the `bush_*` columns).
pub(crate) const BUSH: u8 = 0xFE;
/// Cell marker: the border around the grid (never entered, never adjacent to anything useful).
pub(crate) const WALL: u8 = 0xFD;

/// Bush colours. `NONE` only arises from growth when no red or blue bush is alive (spec §1.4).
pub(crate) const RED: u8 = 0;
pub(crate) const BLUE: u8 = 1;
pub(crate) const NONE: u8 = 2;

/// `bush_ripe_at` of a bush that only a ripen action will make ripe.
pub(crate) const NEVER: u32 = u32::MAX;

macro_rules! soa {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty => $unit:ident ),* $(,)?) => {
        /// All instances' state, one column per field (see the module docs for the layout).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct AhState {
            $( $(#[$doc])* pub(crate) $field: Vec<$ty>, )*
        }

        /// A mutable view of the state of a contiguous range of instances.
        pub(crate) struct AhView<'a> {
            pub dims: Dims,
            pub instances: usize,
            $( pub $field: &'a mut [$ty], )*
        }

        /// One instance's columns.
        pub(crate) struct Inst<'a> {
            $( pub $field: &'a mut [$ty], )*
        }

        impl AhState {
            pub(crate) fn zeroed(dims: Dims, instances: usize) -> Self {
                Self { $( $field: vec![<$ty>::default(); instances * dims.$unit()], )* }
            }

            pub(crate) fn view(&mut self, dims: Dims, instances: usize) -> AhView<'_> {
                AhView { dims, instances, $( $field: &mut self.$field, )* }
            }

            /// Check that every column has the length `instances` implies (snapshots from
            /// elsewhere are validated before use).
            pub(crate) fn check_lengths(&self, dims: Dims, instances: usize) -> Result<(), &'static str> {
                $( if self.$field.len() != instances * dims.$unit() { return Err(stringify!($field)); } )*
                Ok(())
            }
        }

        impl<'a> AhView<'a> {
            pub fn split_at(self, at: usize) -> (Self, Self) {
                let dims = self.dims;
                let rest = self.instances - at;
                $( let $field = self.$field.split_at_mut(at * dims.$unit()); )*
                (
                    AhView { dims, instances: at, $( $field: $field.0, )* },
                    AhView { dims, instances: rest, $( $field: $field.1, )* },
                )
            }

            #[inline]
            pub fn inst(&mut self, i: usize) -> Inst<'_> {
                let dims = self.dims;
                Inst {
                    $( $field: &mut self.$field[i * dims.$unit()..(i + 1) * dims.$unit()], )*
                }
            }
        }
    };
}

soa! {
    // ---- per instance ----
    /// Steps taken in the current episode.
    step: u32 => instance,
    /// Episodes completed by this instance.
    episodes_done: u32 => instance,
    /// Yields one seed per episode.
    episode_rng: Stream => instance,
    /// Spontaneous growth draws.
    growth_rng: Stream => instance,
    /// Acting-order permutations (only without `fixed_agent_order`).
    order_rng: Stream => instance,
    /// Live bushes by colour `[red, blue, none]`.
    bush_count: [u16; 3] => instance,
    /// Start of the live-bush ring (bushes in birth order = expiry order).
    ring_head: u16 => instance,
    /// Number of live bushes in the ring.
    ring_len: u16 => instance,
    /// Reward sums of the last completed episode by group.
    last_group_return: [f32; GROUPS] => instance,

    // ---- per agent ----
    agent_x: u8 => agent,
    agent_y: u8 => agent,
    /// 1 for sensitive (mobility-impaired) agents.
    agent_sensitive: u8 => agent,
    /// Preference colour (RED or BLUE).
    agent_pref: u8 => agent,
    /// Turns the agent still sits out after being blocked (`u8::MAX` = for good).
    agent_frozen: u8 => agent,
    /// Reward of the agent's last step (observation feature 3).
    agent_last_reward: f32 => agent,
    /// Return of the current episode.
    agent_return: f32 => agent,
    /// Return of the last completed episode.
    agent_last_return: f32 => agent,
    /// Substitute-action draws of this agent.
    agent_rng: Stream => agent,

    // ---- per cell of the padded grid (cell = (y + 1) * (width + 2) + x + 1) ----
    /// EMPTY, BUSH, or the id of the agent standing here.
    cell: u8 => cell,
    bush_colour: u8 => cell,
    /// First step of the episode at which the bush is ripe: ripeness is `step >= bush_ripe_at`
    /// (`NEVER`: not until a ripen action). Storing the time instead of a flag and an age makes
    /// clean-profile regrowth free: no per-step pass over the bushes.
    bush_ripe_at: u32 => cell,
    /// Ring of live bushes: cell ids in birth order.
    ring_cell: u16 => cell,
    /// Ring of live bushes: step index after whose bush phase the bush dies.
    ring_expiry: u32 => cell,

    // ---- per row: bit x of row y set iff cell (x, y) holds one ----
    red_rows: u64 => row,
    blue_rows: u64 => row,
    agent_rows: u64 => row,
}
