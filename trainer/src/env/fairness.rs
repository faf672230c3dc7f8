//! What a fairness-aware algorithm needs to know about an environment: which fairness cell a
//! decision belongs to, which cells are compared, the realised gaps of a rollout, and how an
//! advantage transform reaches the decisions. Each adapter implements [`FairnessCells`] in its
//! own `fair.rs`; the algorithms that use it live under `algo/`.
//!
//! A notion ([`Fairness`]) is a list of comparisons, one per level: (level name, side-a cell,
//! side-b cell), side a being the advantaged-by-convention side (non-sensitive, or the factual
//! world).

use crate::config::Fairness;
use crate::env::EnvAdapter;
use fairground_shaders::ppo::CellStats;

/// Per-cell sums and counts of a rollout's rewards and values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CellSums {
    pub reward: Vec<f64>,
    pub value: Vec<f64>,
    pub count: Vec<u64>,
}

impl CellSums {
    pub fn new(cells: usize) -> Self {
        Self {
            reward: vec![0.0; cells],
            value: vec![0.0; cells],
            count: vec![0; cells],
        }
    }

    /// Add one network's device reductions (cells beyond `self`'s are ignored).
    pub fn add_device(&mut self, s: &CellStats) {
        for (c, (r, v)) in s.rewards.iter().zip(&s.values).enumerate() {
            self.reward[c] += f64::from(r.sum);
            self.value[c] += f64::from(v.sum);
            self.count[c] += u64::from(r.count);
        }
    }

    /// Mean per row of `sums` in cell `c`, None for an empty cell.
    pub fn mean(&self, sums: &[f64], c: u32) -> Option<f64> {
        let n = self.count[c as usize];
        (n > 0).then(|| sums[c as usize] / n as f64)
    }
}

/// How a per-comparison shift δ of the shaped penalty reaches the decisions' advantages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credit {
    /// Every network's rows: side a (1 − δ)·A, side b (1 + δ)·A; with `mix_segment` > 0 also
    /// ± δ times the partner cell's mean advantage in the other network over the same segment
    /// of `mix_segment` rows (AH DP and CSP: an instance and step).
    GroupShift { mix_segment: u32 },
    /// Network `net`'s rows only: weight 1 and ∓ δ times the decision's standardised
    /// ledger-to-go (HS's router), the mix laid out `segment` rows a segment.
    Ledger { net: usize, segment: u32 },
}

/// Which of the reference code's penalty forms an environment's reference penalty takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceForm {
    /// AH (spec §4.2–4.4): per training pass, clamped gaps on totals and a loss scale.
    Passes,
    /// HS (spec §4.5–4.7): per role, reported; λ detached, so no gradient effect.
    Roles,
}

/// The fairness knowledge of an environment.
pub trait FairnessCells: EnvAdapter {
    /// Whether a comparison measured in no cell this rollout keeps the latest measured gap (HS:
    /// disparities are measured on finished days only).
    const RETRO_PERSISTS: bool = false;
    const REFERENCE: ReferenceForm;

    /// Cells of a notion; this number is also the "no cell" id of a decision in none.
    fn cell_count(&self, f: Fairness) -> u32;
    /// The cell of network `net`'s pending decision for `slot` (call before the step).
    fn cell(&self, f: Fairness, net: usize, slot: u32) -> u32;
    /// The comparisons: (level name, side-a cell, side-b cell).
    fn comparisons(&self, f: Fairness) -> Vec<(String, u32, u32)>;
    /// The retrospective (realised) gap per comparison of this rollout, None where a side was
    /// not measured; `sums` are the rows' device reductions by cell.
    fn retro_gaps(&self, f: Fairness, sums: &CellSums) -> Vec<Option<f64>>;
    /// The prospective (critic) gap per comparison: from the summed reductions, or from the
    /// device's per-network statistics.
    fn pro_gaps(
        &self,
        f: Fairness,
        sums: &CellSums,
        stats: &[Option<CellStats>],
    ) -> Vec<Option<f64>>;
    /// How the shaped penalty's δ reaches the advantages.
    fn credit(&self, f: Fairness) -> Credit;
    /// The cell compared with `c` in the other network (`Credit::GroupShift` mix).
    fn partner_cell(&self, f: Fairness, c: usize) -> usize {
        let _ = f;
        c
    }
    /// The network whose rows are `net`'s partners (`Credit::GroupShift` mix).
    fn partner_net(&self, net: usize) -> usize {
        net
    }
    /// The reference penalty's levels as (side-a cells, side-b cells); by default each
    /// comparison's two cells.
    fn reference_levels(&self, f: Fairness) -> Vec<(Vec<u32>, Vec<u32>)> {
        self.comparisons(f)
            .into_iter()
            .map(|(_, a, b)| (vec![a], vec![b]))
            .collect()
    }

    /// `Credit::Ledger`: the patient the pending decision of `slot` concerns, with its ledger
    /// now, or None.
    fn routed_patient(&self, slot: u32) -> Option<(u16, f64)> {
        let _ = slot;
        None
    }
    /// `Credit::Ledger`: episodes (days) `slot` has ended in this rollout so far.
    fn episodes_ended(&self, slot: u32) -> u32 {
        let _ = slot;
        0
    }
    /// `Credit::Ledger`: the final ledger of `patient` of `slot`, routed when the slot had
    /// ended `ends_then` episodes, if the patient has finished (None otherwise).
    fn final_ledger(&self, slot: u32, patient: u16, ends_then: u32) -> Option<f64> {
        let _ = (slot, patient, ends_then);
        None
    }
}
