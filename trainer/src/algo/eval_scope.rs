//! What an algorithm's own evaluation numbers (FEN's and SOTO's part of `eval.json`) count:
//! the episodes the environment keeps, not every one that ended. Evaluation plays a
//! counterfactual twin of every instance (for `cf`) and may end more episodes than it asked
//! for in its last round; the environment's report keeps the factual world's first `episodes`
//! in round then slot order, and so must the algorithm's, or its `episodes` and means describe
//! other episodes than the rest of the file.

use crate::env::EnvAdapter;

/// Training counts everything; evaluation the factual world, up to the episodes asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalScope {
    cap: Option<u64>,
}

impl EvalScope {
    /// The scope of an evaluation of `episodes` episodes.
    pub fn eval(episodes: usize) -> Self {
        Self {
            cap: Some(episodes as u64),
        }
    }

    /// Whether a decision of `slot` counts (evaluation: the factual world's only).
    pub fn decision<A: EnvAdapter>(&self, env: &A, slot: u32) -> bool {
        self.cap.is_none() || env.factual(slot)
    }

    /// Whether an episode of `slot` that just ended counts, `counted` having been counted
    /// before it (slots visited in order within a round, as the environment keeps them).
    pub fn episode<A: EnvAdapter>(&self, env: &A, slot: u32, counted: u64) -> bool {
        match self.cap {
            None => true,
            Some(cap) => env.factual(slot) && counted < cap,
        }
    }
}
