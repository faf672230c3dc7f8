//! AH parameters (the paper's Table 3 defaults) and behaviour flags (the profile's rules).

use crate::Profile;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Widest grid: one row of cells is one `u64` bitmask in the observation search.
pub const WIDTH_MAX: u32 = 64;
/// Tallest grid.
pub const HEIGHT_MAX: u32 = 64;
/// Most agents per instance: agent ids are `u8`, with two values reserved as cell markers.
pub const AGENTS_MAX: u32 = 250;
/// Actions: stay, up, down, left, right, eat, change colour, interact, ripen.
pub const ACTIONS: u32 = 9;
/// Features per agent observation (spec §1.3).
pub const OBS_DIM: usize = 10;

const _: () = assert!(WIDTH_MAX <= 64, "row bitmasks are u64");
const _: () = assert!(
    AGENTS_MAX <= 252,
    "agent ids share a u8 with the EMPTY, BUSH and WALL markers"
);
const _: () = assert!(
    (WIDTH_MAX + 2) * (HEIGHT_MAX + 2) <= u16::MAX as u32,
    "padded cell ids are u16"
);
const _: () = assert!(ACTIONS <= 16, "substitute candidates are a u16 bitmask");

/// Which rules are in force. Each field is one behaviour of the Python reference that the paper's
/// text contradicts or leaves open; [`AhFlags::from_profile`] gives the profile's set, and any
/// field can be overridden on its own. ARCHITECTURE.md and README.md list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AhFlags {
    /// A blocked agent stays frozen for the rest of the episode (reference: the frozen flag is
    /// never cleared, spec §1.5 step 2). Off (clean): frozen for its next turn only, as the
    /// paper says ("block, for one turn").
    pub permanent_freeze: bool,
    /// Bushes ripen only through the ripen action (reference: the regrowth timer is dead code,
    /// spec §1.4). Off (clean): an unripe bush also ripens by itself `regrowth_steps` steps after
    /// it became unripe (the paper's Table 3: "berry regrowth 3ts").
    pub ripen_only_by_action: bool,
    /// On its resting steps a sensitive agent does nothing at all (reference, spec §1.5 step 3).
    /// Off (clean): only movement is restricted, as the paper says ("limited to moving only every
    /// two turns"); a move on a resting step counts as an infeasible attempt.
    pub rest_blocks_all_actions: bool,
    /// An infeasible action is replaced by a uniformly random other action, up to
    /// `max_attempts` attempts in all (both profiles: the paper is silent, the reference does it).
    pub substitute_failed_actions: bool,
    /// Agents act in index order every step, first mover wins (both profiles, as the reference).
    /// Off: the acting order is a fresh uniform permutation each step, drawn from the instance's
    /// `AhOrder` stream (removes the systematic advantage of low indices).
    pub fixed_agent_order: bool,
    /// Moves (actions 1–4) are always infeasible and take the substitution path (reference:
    /// its action table names them "move_up" … while `Player.move` only knows "up" …, so no
    /// agent ever changes cell; spec §1.5, corrected 2026-12-02). Off (clean): a move into an
    /// empty in-grid cell succeeds. (Snapshots from before the flag have none: they moved.)
    #[serde(default)]
    pub moves_never_succeed: bool,
}

impl AhFlags {
    pub const fn from_profile(profile: Profile) -> Self {
        match profile {
            Profile::Reference => Self {
                permanent_freeze: true,
                ripen_only_by_action: true,
                rest_blocks_all_actions: true,
                substitute_failed_actions: true,
                fixed_agent_order: true,
                moves_never_succeed: true,
            },
            Profile::Clean => Self {
                permanent_freeze: false,
                ripen_only_by_action: false,
                rest_blocks_all_actions: false,
                substitute_failed_actions: true,
                fixed_agent_order: true,
                moves_never_succeed: false,
            },
        }
    }
}

/// Everything that defines an AH game. Defaults are the paper's (Table 3) and the reference
/// scripts' (spec §1.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AhParams {
    /// Grid width (x in `0..width`).
    pub width: u32,
    /// Grid height (y in `0..height`).
    pub height: u32,
    /// Agents per instance.
    pub agents: u32,
    /// Agents preferring red: `floor(agents * red_agent_fraction)`, the lowest indices.
    pub red_agent_fraction: f64,
    /// Sensitive (mobility-impaired) agents: exactly `floor(agents * sensitive_fraction)`, a
    /// uniformly random subset redrawn every episode.
    pub sensitive_fraction: f64,
    /// Bushes placed at reset.
    pub bushes_init: u32,
    /// Red share of the initial bushes: `floor(bushes_init * red_bush_fraction)` are red.
    pub red_bush_fraction: f64,
    /// A bush dies after this many steps.
    pub lifespan_steps: u32,
    /// A new bush tries to grow every this many steps.
    pub growth_every_steps: u32,
    /// Random cells tried per growth event before giving up.
    pub growth_tries: u32,
    /// Steps after which an unripe bush ripens by itself (only without `ripen_only_by_action`).
    pub regrowth_steps: u32,
    /// Attempts per agent and step when substitutes are on.
    pub max_attempts: u32,
    /// Steps per episode; instances reset automatically after the last one.
    pub episode_steps: u32,
    /// The rules in force.
    pub flags: AhFlags,
    /// The profile the flags were derived from (informational: the flags are what counts).
    pub profile: Profile,
    /// Every episode of every instance starts from one seed (instance 0's first): the same
    /// layout, sensitive draw and environment streams each time, so episodes differ only by
    /// the actions. The reference's counterfactual test re-creates its worlds with seed 42
    /// for every test game; off everywhere else. Snapshots made before this field existed
    /// read it as off.
    #[serde(default)]
    pub one_layout: bool,
}

impl AhParams {
    /// The paper's game under `profile`, with `episode_steps` = 3000 (the README's training
    /// runs).
    pub fn new(profile: Profile) -> Self {
        Self {
            width: 25,
            height: 15,
            agents: 40,
            red_agent_fraction: 0.5,
            sensitive_fraction: 0.5,
            bushes_init: 60,
            red_bush_fraction: 0.5,
            lifespan_steps: 120,
            growth_every_steps: 2,
            growth_tries: 100,
            regrowth_steps: 3,
            max_attempts: 3,
            episode_steps: 3000,
            flags: AhFlags::from_profile(profile),
            profile,
            one_layout: false,
        }
    }

    pub fn cells(&self) -> u32 {
        self.width * self.height
    }

    /// Row stride of the cell grid, which has a one-cell wall border on every side so that
    /// neighbour and move lookups never need a bounds check.
    #[inline]
    pub(crate) fn padded_width(&self) -> usize {
        self.width as usize + 2
    }

    /// Cells of the padded grid (the per-instance stride of the cell columns).
    pub(crate) fn padded_cells(&self) -> usize {
        self.padded_width() * (self.height as usize + 2)
    }

    /// Padded cell index of grid position (x, y).
    #[inline]
    pub(crate) fn cell_index(&self, x: u32, y: u32) -> usize {
        (y as usize + 1) * self.padded_width() + x as usize + 1
    }

    /// Grid position of padded cell index `c` (not a wall).
    #[inline]
    pub(crate) fn cell_xy(&self, c: usize) -> (u32, u32) {
        let pw = self.padded_width();
        ((c % pw) as u32 - 1, (c / pw) as u32 - 1)
    }

    pub fn red_agents(&self) -> u32 {
        (self.agents as f64 * self.red_agent_fraction).floor() as u32
    }

    pub fn sensitive_agents(&self) -> u32 {
        (self.agents as f64 * self.sensitive_fraction).floor() as u32
    }

    pub fn red_bushes_init(&self) -> u32 {
        (self.bushes_init as f64 * self.red_bush_fraction).floor() as u32
    }

    /// Distance reported when no entity of a kind exists (the reference's `x_dim + y_dim`).
    pub fn no_target_distance(&self) -> u32 {
        self.width + self.height
    }

    /// Check every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<(), ParamError> {
        fn range(field: &'static str, v: u32, lo: u32, hi: u32) -> Result<(), ParamError> {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ParamError {
                    field,
                    message: format!("must be in {lo}..={hi}, got {v}"),
                })
            }
        }
        fn fraction(field: &'static str, v: f64) -> Result<(), ParamError> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ParamError {
                    field,
                    message: format!("must be in [0, 1], got {v}"),
                })
            }
        }
        range("width", self.width, 1, WIDTH_MAX)?;
        range("height", self.height, 1, HEIGHT_MAX)?;
        range("agents", self.agents, 1, AGENTS_MAX)?;
        fraction("red_agent_fraction", self.red_agent_fraction)?;
        fraction("sensitive_fraction", self.sensitive_fraction)?;
        fraction("red_bush_fraction", self.red_bush_fraction)?;
        let free = self.cells().saturating_sub(self.agents);
        range("agents", self.agents, 1, self.cells())?;
        range("bushes_init", self.bushes_init, 0, free)?;
        range("lifespan_steps", self.lifespan_steps, 1, 1 << 30)?;
        range("growth_every_steps", self.growth_every_steps, 1, 1 << 30)?;
        range("growth_tries", self.growth_tries, 0, 1 << 20)?;
        range("regrowth_steps", self.regrowth_steps, 1, 255)?;
        range("max_attempts", self.max_attempts, 1, ACTIONS)?;
        range("episode_steps", self.episode_steps, 1, 1 << 30)?;
        Ok(())
    }
}

/// A parameter outside its allowed range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl std::error::Error for ParamError {}
