//! PPO (clipped surrogate, GAE): every hook of [`Algorithm`] at its default.

use super::Algorithm;
use crate::env::EnvAdapter;

/// Proximal policy optimisation, nothing added.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ppo;

/// PPO keeps nothing beyond its networks (older checkpoints' extra fields are ignored).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct NoState {}

impl<A: EnvAdapter> Algorithm<A> for Ppo {
    type State = NoState;
    const PACKS: bool = true;

    fn state(&self) -> NoState {
        NoState {}
    }

    fn restore(&mut self, _: NoState) -> Result<(), crate::error::TrainError> {
        Ok(())
    }
}
