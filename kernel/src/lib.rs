//! fairground-kernel: deterministic, allocation-free simulation kernels that step thousands of
//! environment instances at once in struct-of-arrays form.
//!
//! - [`ah`]: Allelopathic Harvest, the 40-agent berry gridworld.
//! - [`hs`]: HospitalSim, the three-agent hospital discrete-event simulation.
//! - [`rng`]: named, seeded random streams (the only source of randomness).
//! - [`pool`]: worker threads that split a step over instances without allocating.
//! - [`hash`]: the stable trajectory digest used by golden tests and benches.
//! - [`world`]: [`World`], factual or counterfactual, for every environment.
//!
//! What this crate never does: read a clock, allocate after construction, touch the GPU, do I/O,
//! or iterate a hash map. `clippy.toml` in this crate enforces the mechanical part of that.

pub mod ah;
pub mod hash;
pub mod hs;
pub mod pool;
pub mod profile;
pub mod rng;
pub mod world;

pub use profile::Profile;
pub use world::World;
