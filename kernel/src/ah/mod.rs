//! Allelopathic Harvest (spec §1): a 25 × 15 grid, 40 agents preferring red or blue berries, half
//! of them mobility-impaired (the sensitive attribute), bushes that die, grow and change colour.
//!
//! Module map:
//! - [`params`]: [`AhParams`] (the paper's Table 3 defaults) and [`AhFlags`] (each rule on which
//!   the reference code and the paper differ; a profile is a set of flags).
//! - `state`: the struct-of-arrays columns of N instances.
//! - `rules`: one step and one reset of one instance.
//! - `observe`: the 10-feature observation, with a bitmask search for nearest entities and the
//!   naive definition it is tested against.
//! - [`env`]: [`AhEnv`], the public face: construction, twins, stepping over a worker pool,
//!   snapshots, per-instance inspection and rendering.

pub mod env;
mod observe;
pub mod params;
mod rules;
mod state;
pub mod stats;

pub use env::{Agent, AgentSpec, AhEnv, AhSnapshot, Bush, BushSpec, InstanceRef, StepOut};
pub use observe::naive_observations;
pub use params::{
    ACTIONS, AGENTS_MAX, AhFlags, AhParams, HEIGHT_MAX, OBS_DIM, ParamError, WIDTH_MAX,
};
pub use rules::{World, action};
pub use state::{AhState, GROUPS};
pub use stats::{AhStats, InstanceStats};
