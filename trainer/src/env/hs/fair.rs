//! HS's fairness cells. DP: 0 = a non-impaired patient, 1 = an impaired one (the patient the
//! router routes); CSP: impaired · 3 + priority of that patient; CF: the hospital (its world;
//! hospital 2k is side a of its pair, its twin 2k + 1 side b). A decision in no cell (the
//! dispatcher's and the manager's for DP and CSP: they concern several patients or none) gets
//! the cell count. Retrospective gaps are measured on the patients of the days finished in the
//! rollout; a rollout that finishes no day keeps the latest.

use super::{HsAdapter, PRIORITY_NAMES, ROLES};
use crate::config::Fairness;
use crate::env::fairness::{CellSums, Credit, FairnessCells, ReferenceForm};
use fairground_kernel::hs::PATIENTS_MAX;
use fairground_shaders::ppo::CellStats;

/// Cells of a notion for `instances` hospitals.
pub fn fair_cells(fairness: Fairness, instances: usize) -> u32 {
    match fairness {
        Fairness::Dp => 2,
        Fairness::Csp => 6,
        Fairness::Cf => instances as u32,
    }
}

/// The comparisons of a notion: (level, side-a cell, side-b cell).
pub fn comparisons(fairness: Fairness, instances: usize) -> Vec<(String, u32, u32)> {
    match fairness {
        Fairness::Dp => vec![("all".into(), 0, 1)],
        Fairness::Csp => PRIORITY_NAMES
            .iter()
            .enumerate()
            .map(|(p, name)| (name.to_string(), p as u32, 3 + p as u32))
            .collect(),
        Fairness::Cf => (0..instances / 2)
            .map(|k| (format!("pair{k}"), 2 * k as u32, 2 * k as u32 + 1))
            .collect(),
    }
}

/// Rows per segment of the router's ledger mix, a value per row at the row's cell (`fair_adjust`
/// reads `mix[(row / segment) * cells + cell]`). DP and CSP: 1, since rows of one round may
/// share a cell (segments × cells = rows × 2 or × 6). CF: the instances N, since the k-th
/// decisions of all hospitals fill rows k·N .. k·N + N − 1 and each is its hospital's cell, so
/// every row has its own value and the mix stays rows long instead of rows × N.
pub fn credit_segment(fairness: Fairness, instances: usize) -> u32 {
    match fairness {
        Fairness::Cf => instances as u32,
        Fairness::Dp | Fairness::Csp => 1,
    }
}

impl FairnessCells for HsAdapter {
    const RETRO_PERSISTS: bool = true;
    const REFERENCE: ReferenceForm = ReferenceForm::Roles;

    fn cell_count(&self, f: Fairness) -> u32 {
        fair_cells(f, self.round.role.len())
    }

    fn cell(&self, f: Fairness, net: usize, slot: u32) -> u32 {
        let i = slot as usize;
        let none = self.cell_count(f);
        let inst = self.env.instance(i);
        let patient = inst.pending_patient();
        match (f, net) {
            (Fairness::Cf, _) => slot,
            (Fairness::Dp, 0) => patient.map_or(none, |p| u32::from(inst.impairment(p) > 0)),
            (Fairness::Csp, 0) => patient.map_or(none, |p| {
                3 * u32::from(inst.impairment(p) > 0) + u32::from(inst.priority(p))
            }),
            _ => none,
        }
    }

    fn comparisons(&self, f: Fairness) -> Vec<(String, u32, u32)> {
        comparisons(f, self.round.role.len())
    }

    fn retro_gaps(&self, f: Fairness, _: &CellSums) -> Vec<Option<f64>> {
        let o = &self.outcomes;
        (0..self.comparisons(f).len())
            .map(|k| match f {
                Fairness::Dp => o.gap(None),
                Fairness::Csp => o.gap(Some(k)),
                Fairness::Cf => o.pair_gap(k),
            })
            .collect()
    }

    /// The router critic's gap by cell (the device's per-cell means of its values); with one
    /// agent set per world, side b's values are the twins' router's.
    fn pro_gaps(&self, f: Fairness, _: &CellSums, stats: &[Option<CellStats>]) -> Vec<Option<f64>> {
        let (net_a, net_b) = (0, self.partner_net(0));
        self.comparisons(f)
            .iter()
            .map(|(_, a, b)| {
                let (sa, sb) = (stats[net_a].as_ref()?, stats[net_b].as_ref()?);
                let (va, vb) = (sa.values[*a as usize], sb.values[*b as usize]);
                (va.count > 0 && vb.count > 0).then(|| f64::from(va.mean) - f64::from(vb.mean))
            })
            .collect()
    }

    /// With one agent set per world (`hs.cf_world_agents`), the other world's network of the
    /// same role; else the network itself.
    fn partner_net(&self, net: usize) -> usize {
        if self.world_agents {
            (net + ROLES) % (2 * ROLES)
        } else {
            net
        }
    }

    fn credit(&self, f: Fairness) -> Credit {
        Credit::Ledger {
            net: 0,
            segment: credit_segment(f, self.round.role.len()),
        }
    }

    fn routed_patient(&self, slot: u32) -> Option<(u16, f64)> {
        let inst = self.env.instance(slot as usize);
        inst.pending_patient().map(|p| (p as u16, inst.ledger(p)))
    }

    fn episodes_ended(&self, slot: u32) -> u32 {
        self.day_ends[slot as usize]
    }

    /// The patient's ledger if it finished (done or exited): today's if its day has not ended
    /// since it was routed, the finished day's (the round's day-end output, kept until the
    /// hospital's next day ends) if exactly one ended; None otherwise.
    fn final_ledger(&self, slot: u32, patient: u16, ends_then: u32) -> Option<f64> {
        let (i, p) = (slot as usize, patient as usize);
        let inst = self.env.instance(i);
        match self.day_ends[i] - ends_then {
            0 => inst.status(p).is_finished().then(|| inst.ledger(p)),
            1 => {
                let k = i * PATIENTS_MAX + p;
                (self.round.day_finished[k] != 0).then(|| self.round.day_ledger[k])
            }
            _ => None,
        }
    }
}

impl crate::env::units::GroupOutcomes for HsAdapter {
    const GROUPS: usize = 3;

    fn outcomes_by_group(&self, slot: u32, ended: bool, out: &mut [(f64, u32)]) {
        let i = slot as usize;
        out.fill((0.0, 0));
        if ended {
            // The day's statistics as the kernel closed them (the instance is already the
            // next day's).
            let st = &self.round.day_stats[i];
            for (g, o) in out.iter_mut().enumerate().take(3) {
                *o = (
                    st.ledger_finished[g].iter().sum(),
                    st.finished[g].iter().map(|&c| u32::from(c)).sum(),
                );
            }
            return;
        }
        let inst = self.env.instance(i);
        for p in 0..usize::from(self.hs_patients) {
            if inst.status(p).is_finished() {
                let o = &mut out[usize::from(inst.impairment(p)).min(2)];
                o.0 += inst.ledger(p);
                o.1 += 1;
            }
        }
    }

    fn reward_by_group(&self, slot: u32, out: &mut [f32]) {
        let g = fairground_kernel::hs::IMPAIRMENTS;
        let i = slot as usize;
        out.copy_from_slice(&self.round.reward_by_group[i * g..(i + 1) * g]);
    }
}

#[cfg(test)]
mod tests {
    //! The ledger credit's mix layout gives every router row its own value (CF: one per row).
    use super::*;

    #[test]
    fn the_credit_mix_gives_every_row_its_own_value_and_cf_one_per_row() {
        let n = 5;
        for fairness in [Fairness::Dp, Fairness::Csp, Fairness::Cf] {
            let (cells, seg) = (
                fair_cells(fairness, n) as usize,
                credit_segment(fairness, n) as usize,
            );
            // Store row k·N + i is instance i's k-th decision; CF's cell is the instance, and
            // DP/CSP rows may take any cell.
            let rows = 7 * n;
            let mut seen = std::collections::HashSet::new();
            for row in 0..rows {
                let cell_choices: Vec<usize> = match fairness {
                    Fairness::Cf => vec![row % n],
                    _ => (0..cells).collect(),
                };
                for c in cell_choices {
                    assert!(seen.insert((row, row / seg * cells + c)));
                }
            }
            let slots: std::collections::HashSet<usize> = seen.iter().map(|&(_, k)| k).collect();
            assert_eq!(
                slots.len(),
                seen.len(),
                "{fairness:?}: two rows share a value"
            );
            let len = rows.div_ceil(seg) * cells;
            assert!(slots.iter().all(|&k| k < len));
            if fairness == Fairness::Cf {
                assert_eq!(len, rows, "CF: one value per row, not rows × N");
            }
        }
    }
}
