//! The per-cell advantage transform over the rollout store (fairness.wgsl). Every store row
//! belongs to at most one of `cells` cells (a group of agents, a group × factor level, ...);
//! with per-cell weights `(a_c, b_c)` the update trains on
//!
//! ```text
//! A'[r] = a_c * A[r] + b_c * m[segment(r) * cells + c]      c = cell of row r, c < cells
//! A'[r] = A[r]                                              row r in no cell
//! ```
//!
//! where a segment is `StoreSpec::segment` consecutive rows (the agents of one instance at one
//! step) and `m` is a per-(segment, cell) input, typically built from another store's
//! per-segment cell means ([`ActorCritic::store_segment_means`]). Alongside, per-cell sums,
//! counts and means of the stored rewards and values ([`CellStats`]) feed whatever computes the
//! weights. Nothing here knows why the weights are what they are: Fair-PPO's shaped penalty is
//! one user (its weights and partner-cell mix, `store_fair_adjust`), and any algorithm that
//! reweights advantages per cell or mixes in a per-segment cell mean (FEN's or SOTO's group
//! terms, say) can use it as it is. Weights of (1, 0) change nothing, bit for bit.

use super::record::{ReduceSpec, record_group_reduce, reduce_partial_words};
use super::store::{Store, StoreSpec};
use super::{ActorCritic, check_len};
use crate::error::ShaderError;
use crate::layout::{FairParams, GroupStats, SegmentSum};
use crate::program::{BufferId, Executor, ExecutorExt, OpRef, Program, SeqId};
use crate::registry::Kernel;

/// Buffers and sequences of the advantage transform of a store with cells.
pub(super) struct CellAdjust {
    pub(super) cells: u32,
    pub(super) cell_ids: BufferId,
    /// Per cell: `(a_c, b_c)`.
    pub(super) weights: BufferId,
    /// `m`: segments × cells values.
    pub(super) mix: BufferId,
    pub(super) segment_sums: BufferId,
    /// Segments of the mix term (0: none).
    pub(super) segments: u32,
    pub(super) adjust_op: OpRef,
    /// The transform's uniform with the mix term on (when the store has segments).
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

/// Per cell: sum, count and mean of the stored rewards and of the stored values (the critic's
/// values at acting time) of the rows in that cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellStats {
    pub rewards: Vec<GroupStats>,
    pub values: Vec<GroupStats>,
}

/// The sequences of a store with cells: per-cell reductions of the stored rewards and values
/// (cell ids as group ids), the per-row advantage adjustment, and the per-segment sums.
pub(super) fn declare_cell_adjust(prog: &mut Program, store: &Store, st: StoreSpec) -> CellAdjust {
    let mut adjust = declare_buffers(prog, st);
    record_cell_stats(prog, store, &adjust);
    adjust.adjust_op = prog.push(
        adjust.adjust_seq,
        Kernel::FairAdjust,
        &adjust.adjust_params,
        &[
            store.gae.advantages,
            adjust.cell_ids,
            adjust.weights,
            adjust.mix,
            store.adv_adjust,
        ],
        u64::from(adjust.adjust_params.rows),
    );
    if adjust.segments > 0 {
        prog.push(
            adjust.segment_seq,
            Kernel::SegmentMeans,
            &adjust.adjust_params,
            &[store.gae.advantages, adjust.cell_ids, adjust.segment_sums],
            u64::from(adjust.segments) * u64::from(st.cells),
        );
    }
    adjust
}

/// The transform's buffers and sequences, with no launch yet (`adjust_op` is set once recorded).
fn declare_buffers(prog: &mut Program, st: StoreSpec) -> CellAdjust {
    let n = st.rows() as u32;
    let stats_words = st.cells as usize * size_of::<GroupStats>() / 4;
    let segments = if st.segment > 0 {
        n.div_ceil(st.segment)
    } else {
        0
    };
    let mix_words = (segments as usize * st.cells as usize).max(1);
    CellAdjust {
        cells: st.cells,
        cell_ids: prog.buffer("store.cell_ids", n as usize),
        weights: prog.buffer("store.cell_weights", 2 * st.cells as usize),
        mix: prog.buffer("store.cell_mix", mix_words),
        segment_sums: prog.buffer("store.segment_sums", 2 * mix_words),
        segments,
        adjust_op: OpRef { seq: 0, index: 0 },
        adjust_params: FairParams {
            rows: n,
            cells: st.cells,
            mix_width: st.segment,
            segments,
        },
        segment_seq: prog.sequence(),
        reward_stats: prog.buffer("store.cell_reward_stats", stats_words),
        value_stats: prog.buffer("store.cell_value_stats", stats_words),
        stats_seq: prog.sequence(),
        adjust_seq: prog.sequence(),
    }
}

/// Per-cell fixed-order reductions of the stored rewards, then of the stored values (`stats_seq`).
fn record_cell_stats(prog: &mut Program, store: &Store, adjust: &CellAdjust) {
    let partial = prog.buffer("store.cell_partial", reduce_partial_words(adjust.cells));
    let spec = ReduceSpec {
        group_count: adjust.cells,
        use_groups: true,
        ..ReduceSpec::plain(adjust.adjust_params.rows)
    };
    for (values, stats) in [
        (store.gae.rewards, adjust.reward_stats),
        (store.gae.values, adjust.value_stats),
    ] {
        record_group_reduce(
            prog,
            adjust.stats_seq,
            spec,
            values,
            adjust.cell_ids,
            stats,
            partial,
            stats,
        );
    }
}

impl<E: Executor> ActorCritic<E> {
    fn cell_adjust(&self) -> Result<&CellAdjust, ShaderError> {
        self.store()?
            .adjust
            .as_ref()
            .ok_or(ShaderError::NoFairCells)
    }

    /// After [`Self::store_advantages`] (any time before the update), give each store row its
    /// cell (`cell_ids[row] < cells`, or `cells` and above for a row in none) and return the
    /// per-cell sums, counts and means of the stored rewards and values, reduced in a fixed
    /// order on the device. [`Self::store_adjust_advantages`] and
    /// [`Self::store_segment_means`] use these cell ids.
    pub fn store_cell_stats(&mut self, cell_ids: &[u32]) -> Result<CellStats, ShaderError> {
        let n = self.store()?.spec.rows();
        let adjust = self.cell_adjust()?;
        let (ids, seq, rs, vs, cells) = (
            adjust.cell_ids,
            adjust.stats_seq,
            adjust.reward_stats,
            adjust.value_stats,
            adjust.cells as usize,
        );
        check_len("store cell ids", n, cell_ids.len())?;
        self.exec.write(ids, cell_ids)?;
        self.exec.run(seq)?;
        let mut rewards: Vec<GroupStats> = self.exec.read(rs)?;
        rewards.truncate(cells);
        let mut values: Vec<GroupStats> = self.exec.read(vs)?;
        values.truncate(cells);
        Ok(CellStats { rewards, values })
    }

    /// The per-cell affine advantage transform: every store row's advantage A becomes
    /// `weights[c][0] * A + weights[c][1] * mix[segment * cells + c]` for the update (the
    /// `adv_adjust` the loss adds), with the cells `c` of the last [`Self::store_cell_stats`];
    /// `mix` (segments × cells values, a store built with [`StoreSpec::segment`]) is any
    /// per-segment, per-cell value (Fair-PPO: the partner cell's mean advantage), None for no
    /// mix term. Run after [`Self::store_advantages`] (the weights apply to the standardised
    /// advantages); weights of (1, 0) change nothing, bit for bit.
    pub fn store_adjust_advantages(
        &mut self,
        weights: &[[f32; 2]],
        mix: Option<&[f32]>,
    ) -> Result<(), ShaderError> {
        let adjust = self.cell_adjust()?;
        let (buf, mix_buf, seq, cells, op, base, segments) = (
            adjust.weights,
            adjust.mix,
            adjust.adjust_seq,
            adjust.cells as usize,
            adjust.adjust_op,
            adjust.adjust_params,
            adjust.segments as usize,
        );
        check_len("cell weights", cells, weights.len())?;
        self.exec.write(buf, weights)?;
        let p = match mix {
            Some(m) => {
                if segments == 0 {
                    return Err(ShaderError::NoFairCells);
                }
                check_len("mix values", segments * cells, m.len())?;
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

    /// Fair-PPO's name for [`Self::store_adjust_advantages`] (the weights and partner-cell mix
    /// of its shaped penalty), kept so existing callers compile unchanged. Same call, same bits.
    pub fn store_fair_adjust(
        &mut self,
        weights: &[[f32; 2]],
        mix: Option<&[f32]>,
    ) -> Result<(), ShaderError> {
        self.store_adjust_advantages(weights, mix)
    }

    /// Per segment (the rows of one instance at one step) and cell: the sum and count of the
    /// stored (standardised) advantages of the segment's rows in that cell, with the cells of
    /// the last [`Self::store_cell_stats`]; reduced in row order on the device. Another
    /// network's mix term is built from them.
    pub fn store_segment_means(&mut self) -> Result<Vec<SegmentSum>, ShaderError> {
        let adjust = self.cell_adjust()?;
        let (seq, out, n) = (
            adjust.segment_seq,
            adjust.segment_sums,
            adjust.segments as usize * adjust.cells as usize,
        );
        if n == 0 {
            return Err(ShaderError::NoFairCells);
        }
        self.exec.run(seq)?;
        let mut v: Vec<SegmentSum> = self.exec.read(out)?;
        v.truncate(n);
        Ok(v)
    }

    /// Set every store row's advantage adjustment (what the update adds to the stored
    /// advantage) from the host: an algorithm whose advantage transform is not per-cell affine
    /// (SOTO's welfare-weighted sum over the agents of a step) computes `A' − A` itself. Rows
    /// of the whole store; a store without cells takes it too. Zeros change nothing, bit for
    /// bit.
    pub fn store_set_adjustments(&mut self, adjust: &[f32]) -> Result<(), ShaderError> {
        let store = self.store()?;
        let (buf, n) = (store.adv_adjust, store.spec.rows());
        check_len("store adjustments", n, adjust.len())?;
        self.exec.write(buf, adjust)
    }

    /// The store's values V(s_t) as acted (rows of the whole store).
    pub fn stored_values(&mut self) -> Result<Vec<f32>, ShaderError> {
        let store = self.store()?;
        let (buf, n) = (store.gae.values, store.spec.rows());
        let mut v: Vec<f32> = self.exec.read(buf)?;
        v.truncate(n);
        Ok(v)
    }

    /// Replace the store's advantages and returns from the host (an advantage estimate the
    /// store's GAE cannot express, such as the reference FEN port's GAE over a network's rows
    /// flattened into one trajectory). Rows of the whole store; the epochs then train on them.
    pub fn store_set_advantages(&mut self, adv: &[f32], ret: &[f32]) -> Result<(), ShaderError> {
        let store = self.store()?;
        let (gae, n) = (store.gae, store.spec.rows());
        check_len("store advantages", n, adv.len())?;
        check_len("store returns", n, ret.len())?;
        self.exec.write(gae.advantages, adv)?;
        self.exec.write(gae.returns, ret)
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
