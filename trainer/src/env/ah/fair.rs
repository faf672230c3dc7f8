//! AH's fairness cells. Demographic parity compares the groups (cell = group: 0 non-sensitive,
//! 1 sensitive); conditional statistical parity compares them within each berry preference
//! (cell = 2 · group + preference, preference 0 red, 1 blue); counterfactual fairness compares
//! every agent with itself in the twin world (cell = slot: the factual world's slots, then the
//! twin's). Gaps are per-agent returns over the rollout: T · (mean reward per row of side a −
//! of side b); prospective gaps the mean critic value of a − of b.

use super::{AhAdapter, GROUP_NETS};
use crate::config::Fairness;
use crate::env::fairness::{CellSums, Credit, FairnessCells, ReferenceForm};
use fairground_shaders::ppo::CellStats;

/// The cells of a notion in one game.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FairCells {
    pub fairness: Fairness,
    /// Slots (instances × agents) of one world.
    pub world_slots: u32,
}

impl FairCells {
    pub fn count(&self) -> u32 {
        match self.fairness {
            Fairness::Dp => 2,
            Fairness::Csp => 4,
            Fairness::Cf => 2 * self.world_slots,
        }
    }

    /// The cell of a row of `slot` (of both worlds' slot order), its group and preference.
    pub fn cell(&self, group: u8, pref: u8, slot: usize) -> u32 {
        match self.fairness {
            Fairness::Dp => u32::from(group),
            Fairness::Csp => 2 * u32::from(group) + u32::from(pref),
            Fairness::Cf => slot as u32,
        }
    }

    /// The comparisons: (level name, side-a cell, side-b cell).
    pub fn comparisons(&self) -> Vec<(String, u32, u32)> {
        match self.fairness {
            Fairness::Dp => vec![("all".into(), 0, 1)],
            Fairness::Csp => vec![("red".into(), 0, 2), ("blue".into(), 1, 3)],
            Fairness::Cf => (0..self.world_slots)
                .map(|s| (format!("slot{s}"), s, self.world_slots + s))
                .collect(),
        }
    }
}

/// Per comparison (retro, pro): retro = `steps` · (mean reward per row of side a − of side b),
/// the per-agent return gap over a rollout of `steps` steps; pro = mean value of a − of b.
pub fn cell_gaps(cells: FairCells, sums: &CellSums, steps: u32) -> Vec<(Option<f64>, Option<f64>)> {
    cells
        .comparisons()
        .into_iter()
        .map(|(_, a, b)| {
            let gap = |v: &[f64]| Some(sums.mean(v, a)? - sums.mean(v, b)?);
            (
                gap(&sums.reward).map(|g| g * f64::from(steps)),
                gap(&sums.value),
            )
        })
        .collect()
}

impl FairnessCells for AhAdapter {
    const REFERENCE: ReferenceForm = ReferenceForm::Passes;

    fn cell_count(&self, f: Fairness) -> u32 {
        self.fair_cells(f).count()
    }

    fn cell(&self, f: Fairness, _net: usize, slot: u32) -> u32 {
        let s = slot as usize;
        self.fair_cells(f).cell(self.groups[s], self.prefs[s], s)
    }

    fn comparisons(&self, f: Fairness) -> Vec<(String, u32, u32)> {
        self.fair_cells(f).comparisons()
    }

    fn retro_gaps(&self, f: Fairness, sums: &CellSums) -> Vec<Option<f64>> {
        cell_gaps(self.fair_cells(f), sums, self.rollout_steps)
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    fn pro_gaps(&self, f: Fairness, sums: &CellSums, _: &[Option<CellStats>]) -> Vec<Option<f64>> {
        cell_gaps(self.fair_cells(f), sums, self.rollout_steps)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// DP and CSP mix in the partner group's mean advantage of the same instance and step
    /// (segments of `agents` rows); CF compares an agent with itself, so weights alone.
    fn credit(&self, f: Fairness) -> Credit {
        Credit::GroupShift {
            mix_segment: match f {
                Fairness::Cf => 0,
                Fairness::Dp | Fairness::Csp => self.agents() as u32,
            },
        }
    }

    /// The same group-flipped agents: DP the other group; CSP the other group's agents of the
    /// same berry preference.
    fn partner_cell(&self, f: Fairness, c: usize) -> usize {
        match f {
            Fairness::Csp => c ^ 2,
            _ => 1 - c,
        }
    }

    fn partner_net(&self, net: usize) -> usize {
        GROUP_NETS - 1 - net
    }

    /// Counterfactual fairness (spec §4.4) compares whole worlds: side a = the factual world's
    /// cells, side b = the twin's.
    fn reference_levels(&self, f: Fairness) -> Vec<(Vec<u32>, Vec<u32>)> {
        let cells = self.fair_cells(f);
        match f {
            Fairness::Cf => vec![(
                (0..cells.world_slots).collect(),
                (cells.world_slots..2 * cells.world_slots).collect(),
            )],
            _ => cells
                .comparisons()
                .into_iter()
                .map(|(_, a, b)| (vec![a], vec![b]))
                .collect(),
        }
    }
}
