//! The on-device rollout store: what acting produced and what the update reads, kept on the
//! device so a rollout step sends observations and brings back only actions. Its buffers and
//! sequences (scatter of an act's outputs and of bootstrap values, GAE, standardisation, the
//! gather of a minibatch) and the calls that drive them.

use super::adjust::{CellAdjust, declare_cell_adjust};
use super::build::Buffers;
use super::check_len;
use super::record::{GaeBuffers, ReduceSpec, record_normalize, reduce_partial_words};
use super::{ActorCritic, ActorCriticSpec, SampleKey};
use crate::error::ShaderError;
use crate::layout::{CopyMode, CopyParams, GaeParams, GroupStats};
use crate::program::{BufferId, Executor, ExecutorExt, OpRef, Program, SeqId};
use crate::registry::Kernel;

/// Shape of an [`ActorCritic`]'s on-device rollout store: `steps` x `slots` rows, time-major
/// (row `t * slots + s`), so GAE runs over it as `slots` trajectories of `steps` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    pub steps: u32,
    pub slots: u32,
    /// Slot `s`'s trajectory is only its first `lengths[s]` steps, given per rollout with
    /// [`ActorCritic::store_lengths`] (agents that act a varying number of times: HS decisions).
    pub ragged: bool,
    /// Cells of the per-cell advantage transform (0: none): the rows' cells of
    /// [`ActorCritic::store_cell_stats`] and the weights of
    /// [`ActorCritic::store_adjust_advantages`] (Fair-PPO's shaped penalty, for one).
    pub cells: u32,
    /// Rows per segment of the transform's mix term (the agents of one instance at one step;
    /// 0: no mix term), see [`ActorCritic::store_segment_means`].
    pub segment: u32,
}

/// A store's rows on the host ([`ActorCritic::stored_rows`]), one vector per training input,
/// row-major in store row order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredRows {
    pub obs: Vec<f32>,
    /// Empty unless the spec uses masks.
    pub masks: Vec<u32>,
    pub actions: Vec<u32>,
    pub old_logp: Vec<f32>,
    pub old_values: Vec<f32>,
    pub advantages: Vec<f32>,
    pub adv_adjust: Vec<f32>,
    pub returns: Vec<f32>,
}

impl StoreSpec {
    pub fn rows(&self) -> usize {
        self.steps as usize * self.slots as usize
    }
}

/// The rollout store: what acting produced and what the update reads, kept on the device so a
/// rollout step sends observations and brings back only actions (see [`ActorCritic::with_store`]).
pub(super) struct Store {
    pub(super) spec: StoreSpec,
    pub(super) obs: BufferId,
    pub(super) masks: BufferId,
    pub(super) actions: BufferId,
    /// (log-probability, entropy) per row: the layout of `policy_old`.
    pub(super) policy: BufferId,
    pub(super) gae: GaeBuffers,
    pub(super) adv_adjust: BufferId,
    /// 0: the row holds this network's data; 1: a hole (another network's agent).
    pub(super) valid: BufferId,
    /// Rows of the current call: scatter destinations or gather sources.
    pub(super) index: BufferId,
    /// Per slot, its trajectory's length (ragged stores).
    pub(super) lengths: BufferId,
    /// Per slot, the store row of its last step (ragged stores).
    pub(super) tail_index: BufferId,
    pub(super) store_seq: SeqId,
    pub(super) boot_seq: SeqId,
    /// Ragged stores: each slot's last value becomes its default bootstrap value.
    pub(super) tail_seq: SeqId,
    pub(super) gae_seq: SeqId,
    pub(super) norm_seq: SeqId,
    /// returns := advantages + values over the whole store ([`ActorCritic::store_returns_from_advantages`]).
    pub(super) returns_seq: SeqId,
    /// A stored minibatch: the gathers, then a copy of the training launches.
    pub(super) gather_seq: SeqId,
    pub(super) gae_op: OpRef,
    /// Launches of `gather_seq` before its copy of the training launches.
    pub(super) train_offset: usize,
    /// Copy launches whose row count follows each call.
    pub(super) copies: Vec<(OpRef, CopyParams)>,
    /// The per-cell advantage transform (stores with cells).
    pub(super) adjust: Option<CellAdjust>,
}

/// Declare the store's buffers and its sequences: scatter of an act's outputs, scatter of
/// bootstrap values, the gather of a minibatch (followed by a copy of the training launches of
/// `train_seq`), GAE, standardisation, and the cells' sequences when the store has cells.
pub(super) fn declare_store(
    prog: &mut Program,
    spec: &ActorCriticSpec,
    bufs: &Buffers,
    train_seq: SeqId,
    st: StoreSpec,
) -> Store {
    let mut store = declare_buffers(prog, spec, st);
    let mut copies = Copies {
        batch: spec.batch,
        index: store.index,
        ops: Vec::new(),
    };
    record_scatters(prog, &mut copies, spec, bufs, &store);
    record_gathers(prog, &mut copies, spec, bufs, &store);
    // One submission per stored minibatch: the training launches follow the gathers.
    store.train_offset = prog.ops(store.gather_seq).len();
    let train_ops = prog.ops(train_seq).to_vec();
    prog.sequences[store.gather_seq.0 as usize].extend(train_ops);
    store.copies = copies.ops;
    store.gae_op = record_gae(prog, &store);
    record_normalize_valid(prog, &store);
    store
        .gae
        .record_returns(prog, store.returns_seq, st.steps, st.slots);
    store.adjust = (st.cells > 0).then(|| declare_cell_adjust(prog, &store, st));
    store
}

/// The store's buffers and sequences, with no launch yet (`gae_op`, `train_offset` and
/// `copies` are set as the launches are recorded).
fn declare_buffers(prog: &mut Program, spec: &ActorCriticSpec, st: StoreSpec) -> Store {
    let n = st.rows();
    let comps = spec.action_components.len();
    let lw = spec.logit_width() as usize;
    let gae = GaeBuffers::declare(prog, st.steps, st.slots);
    Store {
        spec: st,
        obs: prog.buffer("store.obs", n * spec.obs_width as usize),
        masks: prog.buffer("store.masks", if spec.use_masks { n * lw } else { 1 }),
        actions: prog.buffer("store.actions", n * comps),
        policy: prog.buffer("store.policy", n * 2),
        gae,
        adv_adjust: prog.buffer("store.adv_adjust", n),
        valid: prog.buffer("store.valid", n),
        index: prog.buffer("store.index", spec.batch as usize),
        lengths: prog.buffer("store.lengths", st.slots as usize),
        tail_index: prog.buffer("store.tail_index", st.slots as usize),
        store_seq: prog.sequence(),
        boot_seq: prog.sequence(),
        tail_seq: prog.sequence(),
        gae_seq: prog.sequence(),
        norm_seq: prog.sequence(),
        returns_seq: prog.sequence(),
        gather_seq: prog.sequence(),
        gae_op: OpRef { seq: 0, index: 0 },
        train_offset: 0,
        copies: Vec::new(),
        adjust: None,
    }
}

/// Records row copies between the actor-critic's buffers and the store through the store's
/// index buffer, keeping each launch: its row count follows every call (`set_copy_rows`).
struct Copies {
    batch: u32,
    index: BufferId,
    ops: Vec<(OpRef, CopyParams)>,
}

impl Copies {
    /// Copy `width` words per row from `src` to `dst`, for up to `batch` rows.
    fn push(
        &mut self,
        prog: &mut Program,
        seq: SeqId,
        mode: CopyMode,
        width: u32,
        src: BufferId,
        dst: BufferId,
    ) {
        let p = CopyParams {
            rows: self.batch,
            width,
            mode: mode as u32,
            ..CopyParams::default()
        };
        let threads = u64::from(self.batch) * u64::from(width);
        let op = prog.push(seq, Kernel::CopyRows, &p, &[src, self.index, dst], threads);
        self.ops.push((op, p));
    }
}

/// An act's observations, masks, actions, (log-probability, entropy) and values into the store
/// rows of the index (`store_seq`); bootstrap values into the slots of the index (`boot_seq`).
fn record_scatters(
    prog: &mut Program,
    copies: &mut Copies,
    spec: &ActorCriticSpec,
    bufs: &Buffers,
    store: &Store,
) {
    let (seq, scatter) = (store.store_seq, CopyMode::Scatter);
    let comps = spec.action_components.len() as u32;
    let values = bufs.values_new();
    copies.push(prog, seq, scatter, spec.obs_width, bufs.obs, store.obs);
    if spec.use_masks {
        let lw = spec.logit_width();
        copies.push(prog, seq, scatter, lw, bufs.masks, store.masks);
    }
    copies.push(
        prog,
        seq,
        scatter,
        comps,
        bufs.sampled_actions,
        store.actions,
    );
    copies.push(prog, seq, scatter, 2, bufs.sample_out, store.policy);
    copies.push(prog, seq, scatter, 1, values, store.gae.values);
    let last_values = store.gae.last_values;
    copies.push(prog, store.boot_seq, scatter, 1, values, last_values);
}

/// A minibatch's rows of the store (the rows of the index) into the training inputs.
fn record_gathers(
    prog: &mut Program,
    copies: &mut Copies,
    spec: &ActorCriticSpec,
    bufs: &Buffers,
    store: &Store,
) {
    let (g, gather) = (store.gather_seq, CopyMode::Gather);
    let comps = spec.action_components.len() as u32;
    copies.push(prog, g, gather, spec.obs_width, store.obs, bufs.obs);
    if spec.use_masks {
        let lw = spec.logit_width();
        copies.push(prog, g, gather, lw, store.masks, bufs.masks);
    }
    copies.push(prog, g, gather, comps, store.actions, bufs.actions);
    copies.push(prog, g, gather, 2, store.policy, bufs.policy_old);
    copies.push(prog, g, gather, 1, store.gae.values, bufs.values_old);
    copies.push(prog, g, gather, 1, store.gae.advantages, bufs.advantages);
    copies.push(prog, g, gather, 1, store.adv_adjust, bufs.adv_adjust);
    copies.push(prog, g, gather, 1, store.gae.returns, bufs.returns);
}

/// GAE over the store (`gae_seq`; its uniform's discount and lambda are set per call) and, for
/// a ragged store, the default bootstrap values (`tail_seq`). Returns the GAE launch.
fn record_gae(prog: &mut Program, store: &Store) -> OpRef {
    let st = store.spec;
    let gae_params = GaeParams {
        steps: st.steps,
        agents: st.slots,
        ..GaeParams::default()
    };
    if !st.ragged {
        return store.gae.record(prog, store.gae_seq, gae_params);
    }
    // Each slot's last value (at the rows of `tail_index`) is its default bootstrap value.
    let tail = CopyParams {
        rows: st.slots,
        width: 1,
        mode: CopyMode::Gather as u32,
        ..CopyParams::default()
    };
    let g = store.gae;
    prog.push(
        store.tail_seq,
        Kernel::CopyRows,
        &tail,
        &[g.values, store.tail_index, g.last_values],
        u64::from(st.slots),
    );
    // Not chunkable (a slot's rows span the whole store): bound whole.
    prog.push(
        store.gae_seq,
        Kernel::GaeRagged,
        &gae_params,
        &[
            g.rewards,
            g.values,
            g.dones,
            g.last_values,
            g.advantages,
            g.returns,
            store.lengths,
        ],
        u64::from(st.slots),
    )
}

/// Standardise the stored advantages in place (`norm_seq`), the valid rows and the holes as
/// two groups (the valid flag is the group id), so holes never shift the valid rows' mean.
fn record_normalize_valid(prog: &mut Program, store: &Store) {
    let norm = ReduceSpec {
        group_count: 2,
        use_groups: true,
        ..ReduceSpec::plain(store.spec.rows() as u32)
    };
    let partial = prog.buffer("store.norm_partial", reduce_partial_words(2));
    let mean = prog.buffer("store.mean", 2 * size_of::<GroupStats>() / 4);
    let var = prog.buffer("store.var", 2 * size_of::<GroupStats>() / 4);
    record_normalize(
        prog,
        store.norm_seq,
        norm,
        store.gae.advantages,
        store.valid,
        partial,
        mean,
        var,
    );
}

impl<E: Executor> ActorCritic<E> {
    pub(super) fn store(&self) -> Result<&Store, ShaderError> {
        self.store.as_ref().ok_or(ShaderError::NoStore)
    }

    /// Point the copy launches of `seq` at `rows` rows.
    pub(super) fn set_copy_rows(&mut self, seq: SeqId, rows: u32) {
        let Some(store) = &self.store else { return };
        for (op, base) in &store.copies {
            if op.seq == seq.0 {
                let p = CopyParams { rows, ..*base };
                self.exec.set_uniform_pod(*op, &p);
            }
        }
    }

    /// Write the store rows of the current call (distinct, each below the store's rows).
    pub(super) fn write_index(&mut self, rows: &[u32]) -> Result<(), ShaderError> {
        let store = self.store()?;
        let (index, limit) = (store.index, store.spec.rows());
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= limit) {
            return Err(ShaderError::StoreRow {
                row: bad as usize,
                rows: limit,
            });
        }
        self.exec.write(index, rows)
    }

    /// [`Self::queue_act`], then write the act's observations, masks, actions, (log-probability,
    /// entropy) and values into store rows `dst` (one per observation row). Fetch the actions
    /// with [`Self::act_actions`].
    pub fn queue_act_stored(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
        key: SampleKey,
        dst: &[u32],
    ) -> Result<(), ShaderError> {
        let seq = self.store()?.store_seq;
        self.prepare_act(obs, group_ids, masks, key)?;
        check_len("store rows", self.act_rows as usize, dst.len())?;
        self.write_index(dst)?;
        self.set_copy_rows(seq, dst.len() as u32);
        // Every write is queued before the runs, so the act, its store copy and the copy of
        // its actions are one command buffer on the GPU, held back until a collect.
        self.exec
            .queue_read(&[self.act_seq, seq], self.bufs.sampled_actions)
    }

    /// The actions of the last queued act (rows x components): the only thing a stored
    /// rollout step reads back. On the GPU this submits the held acting steps of every network
    /// on the device (see [`Executor::queue_read`]).
    pub fn act_actions(&mut self) -> Result<Vec<u32>, ShaderError> {
        let n = self.act_rows as usize * self.spec.action_components.len();
        let mut actions: Vec<u32> = self.exec.collect(self.bufs.sampled_actions)?;
        actions.truncate(n);
        Ok(actions)
    }

    /// After a [`Self::queue_act`] on the observations that follow the rollout's last step,
    /// write their values as the bootstrap values of store slots `slots`.
    pub fn store_bootstrap(&mut self, slots: &[u32]) -> Result<(), ShaderError> {
        let store = self.store()?;
        let (seq, limit) = (store.boot_seq, store.spec.slots as usize);
        check_len("bootstrap slots", self.act_rows as usize, slots.len())?;
        if let Some(&bad) = slots.iter().find(|&&s| s as usize >= limit) {
            return Err(ShaderError::StoreRow {
                row: bad as usize,
                rows: limit,
            });
        }
        let index = store.index;
        self.exec.write(index, slots)?;
        self.set_copy_rows(seq, slots.len() as u32);
        self.exec.run(seq)
    }

    /// Ragged stores, once per rollout before [`Self::store_bootstrap`] and
    /// [`Self::store_advantages`]: slot `s`'s trajectory is its first `lengths[s]` steps
    /// (rows `t * slots + s`, `t < lengths[s]`), and its bootstrap value defaults to the value of
    /// its own last step (what a trajectory still waiting for a decision of another kind keeps;
    /// [`Self::store_bootstrap`] then overwrites the slots that have a pending observation).
    pub fn store_lengths(&mut self, lengths: &[u32]) -> Result<(), ShaderError> {
        let store = self.store()?;
        let st = store.spec;
        let (len_buf, tail_buf, seq) = (store.lengths, store.tail_index, store.tail_seq);
        if !st.ragged {
            return Err(ShaderError::NotRagged);
        }
        check_len("store lengths", st.slots as usize, lengths.len())?;
        if let Some(&bad) = lengths.iter().find(|&&l| l > st.steps) {
            return Err(ShaderError::StoreRow {
                row: bad as usize,
                rows: st.steps as usize,
            });
        }
        let tail: Vec<u32> = lengths
            .iter()
            .enumerate()
            .map(|(s, &l)| l.saturating_sub(1) * st.slots + s as u32)
            .collect();
        self.exec.write(len_buf, lengths)?;
        self.exec.write(tail_buf, &tail)?;
        self.exec.run(seq)
    }

    /// GAE over the whole store (rewards and dones per row, time-major; a hole must have
    /// `done = 1`, so no trajectory bootstraps through it; a ragged store covers only each
    /// slot's first `lengths[s]` steps and leaves its later rows, which must be marked invalid,
    /// untouched), then, with `normalize`, the
    /// standardisation of the advantages of the rows with `valid[row] == 0` (mean 0, unbiased
    /// std 1; holes are standardised apart and never read). Returns are advantage + value,
    /// before standardisation, as in the host path.
    pub fn store_advantages(
        &mut self,
        rewards: &[f32],
        dones: &[f32],
        valid: &[u32],
        gamma: f32,
        gae_lambda: f32,
        normalize: bool,
    ) -> Result<(), ShaderError> {
        let store = self.store()?;
        let n = store.spec.rows();
        let (gae, valid_buf, gae_op, st) = (store.gae, store.valid, store.gae_op, store.spec);
        let (gae_seq, norm_seq) = (store.gae_seq, store.norm_seq);
        check_len("store rewards", n, rewards.len())?;
        check_len("store dones", n, dones.len())?;
        check_len("store valid", n, valid.len())?;
        self.exec.write(gae.rewards, rewards)?;
        self.exec.write(gae.dones, dones)?;
        self.exec.write(valid_buf, valid)?;
        let p = GaeParams {
            steps: st.steps,
            agents: st.slots,
            gamma,
            gae_lambda,
            ..GaeParams::default()
        };
        self.exec.set_uniform_pod(gae_op, &p);
        self.exec.run(gae_seq)?;
        if normalize {
            self.exec.run(norm_seq)?;
        }
        Ok(())
    }

    /// Replace every stored return by the stored advantage as it stands plus the stored value:
    /// after [`Self::store_advantages`] with `normalize`, the value target becomes the
    /// standardised advantage + V (the reference's HS counterfactual script, spec §3.2) instead
    /// of the raw advantage + V. Rows a ragged store leaves untouched get advantage + value of
    /// whatever they hold; they are invalid and never read.
    pub fn store_returns_from_advantages(&mut self) -> Result<(), ShaderError> {
        let seq = self.store()?.returns_seq;
        self.exec.run(seq)
    }

    /// Queue one PPO minibatch step over store rows `rows` (1 ..= batch, any order), gathered
    /// on the device.
    pub fn train_stored(&mut self, rows: &[u32]) -> Result<(), ShaderError> {
        let seq = self.store()?.gather_seq;
        if rows.is_empty() || rows.len() > self.spec.batch as usize {
            return Err(ShaderError::StoreRows {
                rows: rows.len(),
                batch: self.spec.batch as usize,
            });
        }
        self.write_index(rows)?;
        self.set_copy_rows(seq, rows.len() as u32);
        self.set_rows(rows.len() as u32);
        self.exec.run(seq)
    }

    /// What a minibatch of the store's first `rows` rows trains on, read back in one piece per
    /// buffer (store row order): the host side of a minibatch step that trains this store's
    /// rows elsewhere, such as a [`super::PackedActorCritic`] set. The values are the bits
    /// [`Self::train_stored`] gathers.
    pub fn stored_rows(&mut self) -> Result<StoredRows, ShaderError> {
        let store = self.store()?;
        let n = store.spec.rows();
        let (gae, s) = (
            store.gae,
            (store.obs, store.masks, store.actions, store.policy),
        );
        let adv_adjust = store.adv_adjust;
        let width = self.spec.obs_width as usize;
        let comps = self.spec.action_components.len();
        let lw = self.spec.logit_width() as usize;
        fn read<T: bytemuck::Pod, E: Executor>(
            exec: &mut E,
            buf: BufferId,
            len: usize,
        ) -> Result<Vec<T>, ShaderError> {
            let mut v: Vec<T> = exec.read(buf)?;
            v.truncate(len);
            Ok(v)
        }
        let e = &mut self.exec;
        let policy: Vec<f32> = read(e, s.3, n * 2)?;
        Ok(StoredRows {
            obs: read(e, s.0, n * width)?,
            masks: if self.spec.use_masks {
                read(e, s.1, n * lw)?
            } else {
                Vec::new()
            },
            actions: read(e, s.2, n * comps)?,
            old_logp: policy.iter().step_by(2).copied().collect(),
            old_values: read(e, gae.values, n)?,
            advantages: read(e, gae.advantages, n)?,
            adv_adjust: read(e, adv_adjust, n)?,
            returns: read(e, gae.returns, n)?,
        })
    }

    /// The store's advantages and returns (rows of the whole store; for tests and audits).
    pub fn stored_advantages(&mut self) -> Result<(Vec<f32>, Vec<f32>), ShaderError> {
        let store = self.store()?;
        let (gae, n) = (store.gae, store.spec.rows());
        let mut adv: Vec<f32> = self.exec.read(gae.advantages)?;
        adv.truncate(n);
        let mut ret: Vec<f32> = self.exec.read(gae.returns)?;
        ret.truncate(n);
        Ok((adv, ret))
    }
}
