//! What a welfare-aware baseline needs of an environment whose fairness is about groups of
//! people rather than about its agents (HospitalSim: patients by impairment, while the agents
//! are three roles). FEN's and SOTO's HS adaptations (baselines-spec §A4.7, §A5.7) take these
//! groups as their utility holders; the adapter says what each group has so far.

use crate::env::EnvAdapter;

/// Per-group outcomes of an environment's episodes so far.
pub trait GroupOutcomes: EnvAdapter {
    /// Groups (HS: impairment none, low, high).
    const GROUPS: usize;
    /// Per group, (sum of outcomes, count) of `slot`'s current episode so far (HS: the ledgers
    /// of today's finished patients); with `ended`, of the episode that ended in the last step.
    fn outcomes_by_group(&self, slot: u32, ended: bool, out: &mut [(f64, u32)]);
    /// Per group, the reward of `slot`'s decision of the last round split by the group of the
    /// people it concerns (HS: `HsRound::reward_by_group`; the parts sum to the reward).
    fn reward_by_group(&self, slot: u32, out: &mut [f32]);
}
