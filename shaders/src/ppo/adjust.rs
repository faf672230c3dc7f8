//! The fairness part of the rollout store.

use super::ActorCritic;
use super::record::{ReduceSpec, record_group_reduce, reduce_partial_words};
use super::store::{Store, StoreSpec};
use crate::error::ShaderError;
use crate::layout::*;
use crate::program::{BufferId, Executor, ExecutorExt, OpRef, Program, SeqId};
use crate::registry::Kernel;

/// Fairness buffers of a store with cells (see fairness.wgsl).
pub(super) struct FairStore {
    pub(super) cells: u32,
    pub(super) cell_ids: BufferId,
    pub(super) weights: BufferId,
    pub(super) mix: BufferId,
    pub(super) segment_sums: BufferId,
    /// Segments of the mix term (0: none).
    pub(super) segments: u32,
    pub(super) adjust_op: OpRef,
    pub(super) adjust_params: FairParams,
    /// Per-segment, per-cell sums of the stored advantages.
    pub(super) segment_seq: SeqId,
    pub(super) reward_stats: BufferId,
    pub(super) value_stats: BufferId,
    /// Per-cell reductions of the stored rewards and values.
    pub(super) stats_seq: SeqId,
    /// The advantage adjustment of every store row.
    pub(super) adjust_seq: SeqId,
}

/// Per fairness cell: sum, count and mean of the stored rewards and of the stored values (the
/// critic's values at acting time) of the rows in that cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellStats {
    pub rewards: Vec<GroupStats>,
    pub values: Vec<GroupStats>,
}

/// The fairness sequences of a store with cells: per-cell reductions of the stored rewards
/// and values (cell ids as group ids), and the per-row advantage adjustment.
pub(super) fn declare_fair(prog: &mut Program, store: &Store, st: StoreSpec) -> FairStore {
    let n = st.rows() as u32;
    let stats_words = st.cells as usize * size_of::<GroupStats>() / 4;
    let segments = if st.segment > 0 {
        n.div_ceil(st.segment)
    } else {
        0
    };
    let mix_words = (segments as usize * st.cells as usize).max(1);
    let adjust_params = FairParams {
        rows: n,
        cells: st.cells,
        mix_width: st.segment,
        segments,
    };
    let mut fair = FairStore {
        cells: st.cells,
        cell_ids: prog.buffer("store.cell_ids", n as usize),
        weights: prog.buffer("store.cell_weights", 2 * st.cells as usize),
        mix: prog.buffer("store.cell_mix", mix_words),
        segment_sums: prog.buffer("store.segment_sums", 2 * mix_words),
        segments,
        adjust_op: OpRef { seq: 0, index: 0 },
        adjust_params,
        segment_seq: prog.sequence(),
        reward_stats: prog.buffer("store.cell_reward_stats", stats_words),
        value_stats: prog.buffer("store.cell_value_stats", stats_words),
        stats_seq: prog.sequence(),
        adjust_seq: prog.sequence(),
    };
    let partial = prog.buffer("store.cell_partial", reduce_partial_words(st.cells));
    let spec = ReduceSpec {
        group_count: st.cells,
        use_groups: true,
        ..ReduceSpec::plain(n)
    };
    for (values, stats) in [
        (store.gae.rewards, fair.reward_stats),
        (store.gae.values, fair.value_stats),
    ] {
        record_group_reduce(
            prog,
            fair.stats_seq,
            spec,
            values,
            fair.cell_ids,
            stats,
            partial,
            stats,
        );
    }
    fair.adjust_op = prog.push(
        fair.adjust_seq,
        Kernel::FairAdjust,
        &adjust_params,
        &[
            store.gae.advantages,
            fair.cell_ids,
            fair.weights,
            fair.mix,
            store.adv_adjust,
        ],
        u64::from(n),
    );
    if segments > 0 {
        prog.push(
            fair.segment_seq,
            Kernel::SegmentMeans,
            &adjust_params,
            &[store.gae.advantages, fair.cell_ids, fair.segment_sums],
            u64::from(segments) * u64::from(st.cells),
        );
    }
    fair
}

impl<E: Executor> ActorCritic<E> {
    fn fair_store(&self) -> Result<&FairStore, ShaderError> {
        self.store()?.fair.as_ref().ok_or(ShaderError::NoFairCells)
    }

    /// After [`Self::store_advantages`] (any time before the update), give each store row its
    /// fairness cell (`cell_ids[row] < cells`, or `cells` and above for a row in none) and
    /// return the per-cell sums, counts and means of the stored rewards and values, reduced in
    /// a fixed order on the device. [`Self::store_fair_adjust`] uses these cell ids.
    pub fn store_cell_stats(&mut self, cell_ids: &[u32]) -> Result<CellStats, ShaderError> {
        let n = self.store()?.spec.rows();
        let fair = self.fair_store()?;
        let (ids, seq, rs, vs, cells) = (
            fair.cell_ids,
            fair.stats_seq,
            fair.reward_stats,
            fair.value_stats,
            fair.cells as usize,
        );
        Self::check("store cell ids", n, cell_ids.len())?;
        self.exec.write(ids, cell_ids)?;
        self.exec.run(seq)?;
        let mut rewards: Vec<GroupStats> = self.exec.read(rs)?;
        rewards.truncate(cells);
        let mut values: Vec<GroupStats> = self.exec.read(vs)?;
        values.truncate(cells);
        Ok(CellStats { rewards, values })
    }

    /// Fair-PPO's shaped penalty: every store row's advantage A becomes
    /// `weights[c][0] * A + weights[c][1] * mix[segment * cells + c]` for the update (the
    /// `adv_adjust` the loss adds), with the cells `c` of the last [`Self::store_cell_stats`];
    /// `mix` (segments × cells values, a store built with [`StoreSpec::segment`]) is the
    /// partner cell's mean advantage per segment, None for no mix term. Run after
    /// [`Self::store_advantages`] (the weights apply to the standardised advantages); weights
    /// of (1, 0) change nothing, bit for bit.
    pub fn store_fair_adjust(
        &mut self,
        weights: &[[f32; 2]],
        mix: Option<&[f32]>,
    ) -> Result<(), ShaderError> {
        let fair = self.fair_store()?;
        let (buf, mix_buf, seq, cells, op, base, segments) = (
            fair.weights,
            fair.mix,
            fair.adjust_seq,
            fair.cells as usize,
            fair.adjust_op,
            fair.adjust_params,
            fair.segments as usize,
        );
        Self::check("cell weights", cells, weights.len())?;
        self.exec.write(buf, weights)?;
        let p = match mix {
            Some(m) => {
                if segments == 0 {
                    return Err(ShaderError::NoFairCells);
                }
                Self::check("mix values", segments * cells, m.len())?;
                self.exec.write(mix_buf, m)?;
                base
            }
            None => FairParams {
                mix_width: 0,
                ..base
            },
        };
        self.exec.set_uniform_pod(op, &p);
        self.exec.run(seq)
    }

    /// Per segment (the rows of one instance at one step) and cell: the sum and count of the
    /// stored (standardised) advantages of the segment's rows in that cell, with the cells of
    /// the last [`Self::store_cell_stats`]; reduced in row order on the device. Another
    /// network's mix term is built from them.
    pub fn store_segment_means(&mut self) -> Result<Vec<SegmentSum>, ShaderError> {
        let fair = self.fair_store()?;
        let (seq, out, n) = (
            fair.segment_seq,
            fair.segment_sums,
            fair.segments as usize * fair.cells as usize,
        );
        if n == 0 {
            return Err(ShaderError::NoFairCells);
        }
        self.exec.run(seq)?;
        let mut v: Vec<SegmentSum> = self.exec.read(out)?;
        v.truncate(n);
        Ok(v)
    }

    /// The store's advantage adjustments (rows of the whole store; for tests and audits).
    pub fn stored_adjustments(&mut self) -> Result<Vec<f32>, ShaderError> {
        let store = self.store()?;
        let (buf, n) = (store.adv_adjust, store.spec.rows());
        let mut adj: Vec<f32> = self.exec.read(buf)?;
        adj.truncate(n);
        Ok(adj)
    }
}
