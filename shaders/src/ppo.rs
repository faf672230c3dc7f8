//! PPO building blocks recorded into a [`Program`] (GAE, fixed-order reductions, advantage
//! normalisation) and [`ActorCritic`]: separate policy and value MLPs (AH, spec §3.1) or a
//! shared trunk with policy and value heads (HS, spec §3.2), with a categorical /
//! multi-discrete head, run by any [`Executor`] (the `gpu` or the `cpu` backend).

use crate::error::ShaderError;
use crate::layout::*;
use crate::mlp::{Activation, MlpBuffers, MlpPlacement, MlpSpec};
use crate::program::{BufferId, Executor, ExecutorExt, OpRef, Program, RowLayout, SeqId};
use crate::registry::Kernel;

/// Fixed number of splits of every group reduction (first pass), see group_reduce.wgsl.
pub const REDUCE_SPLITS: u32 = 256;

/// Words of the partial-sum scratch a reduction over `group_count` groups needs.
pub fn reduce_partial_words(group_count: u32) -> usize {
    REDUCE_SPLITS as usize * group_count as usize * size_of::<GroupPartial>() / 4
}

/// What to reduce: `rows` values at `values[r * value_stride + value_offset]`.
#[derive(Clone, Copy, Debug)]
pub struct ReduceSpec {
    pub rows: u32,
    pub group_count: u32,
    /// false: every row is in group 0 (the group id buffer is not read).
    pub use_groups: bool,
    pub value_stride: u32,
    pub value_offset: u32,
    pub mode: ReduceMode,
    /// Group g's statistics land at `stats[output_offset + g]`.
    pub output_offset: u32,
}

impl ReduceSpec {
    pub fn plain(rows: u32) -> Self {
        Self {
            rows,
            group_count: 1,
            use_groups: false,
            value_stride: 1,
            value_offset: 0,
            mode: ReduceMode::Value,
            output_offset: 0,
        }
    }

    /// Words per row of the group id binding: 1, or [`RowLayout::UNREAD`] when groups are off.
    fn group_id_words(&self) -> u32 {
        if self.use_groups {
            1
        } else {
            RowLayout::UNREAD
        }
    }

    pub fn params(&self) -> ReduceParams {
        ReduceParams {
            rows: self.rows,
            group_count: self.group_count,
            split_count: REDUCE_SPLITS,
            rows_per_split: self.rows.div_ceil(REDUCE_SPLITS).max(1),
            value_stride: self.value_stride,
            value_offset: self.value_offset,
            mode: self.mode as u32,
            use_groups: u32::from(self.use_groups),
            epsilon: 1e-8,
            output_offset: self.output_offset,
            split_base: 0,
            pad1: 0,
        }
    }
}

/// Record a fixed-order group reduction: per group sum, count, mean (and sum / (count - 1)).
/// `center` holds the means used by [`ReduceMode::SquaredDeviation`] (any stats buffer
/// otherwise).
#[allow(clippy::too_many_arguments)]
pub fn record_group_reduce(
    program: &mut Program,
    seq: SeqId,
    spec: ReduceSpec,
    values: BufferId,
    group_ids: BufferId,
    center: BufferId,
    partial: BufferId,
    stats: BufferId,
) {
    let p = spec.params();
    program.push_rows(
        seq,
        Kernel::ReducePartial,
        &p,
        &[values, group_ids, center, partial],
        u64::from(REDUCE_SPLITS) * u64::from(spec.group_count),
        &[spec.value_stride, spec.group_id_words(), 0, 0],
    );
    program.push(
        seq,
        Kernel::ReduceFinal,
        &p,
        &[partial, stats],
        u64::from(spec.group_count),
    );
}

/// Record per-group standardisation in place: (x - mean) / (std + 1e-8), std unbiased.
/// `mean_stats` and `var_stats` each hold `group_count` GroupStats (4 words each).
#[allow(clippy::too_many_arguments)]
pub fn record_normalize(
    program: &mut Program,
    seq: SeqId,
    spec: ReduceSpec,
    values: BufferId,
    group_ids: BufferId,
    partial: BufferId,
    mean_stats: BufferId,
    var_stats: BufferId,
) {
    let mean = ReduceSpec {
        mode: ReduceMode::Value,
        output_offset: 0,
        ..spec
    };
    record_group_reduce(
        program, seq, mean, values, group_ids, mean_stats, partial, mean_stats,
    );
    let var = ReduceSpec {
        mode: ReduceMode::SquaredDeviation,
        output_offset: 0,
        ..spec
    };
    record_group_reduce(
        program, seq, var, values, group_ids, mean_stats, partial, var_stats,
    );
    program.push_rows(
        seq,
        Kernel::Normalize,
        &mean.params(),
        &[values, group_ids, mean_stats, var_stats],
        u64::from(spec.rows),
        &[spec.value_stride, spec.group_id_words(), 0, 0],
    );
}

/// Record one Adam update over `p.param_count` parameters (after `adam_begin` and, with
/// clipping, the gradient-norm reduction into `norm_stats`). On the GPU it runs in chunks of
/// parameters when the parameter, gradient or moment buffers exceed the storage-binding limit.
#[allow(clippy::too_many_arguments)]
pub fn record_adam_update(
    program: &mut Program,
    seq: SeqId,
    p: &AdamParams,
    state: BufferId,
    norm_stats: BufferId,
    params: BufferId,
    grads: BufferId,
    moment1: BufferId,
    moment2: BufferId,
) -> OpRef {
    program.push_rows(
        seq,
        Kernel::AdamUpdate,
        p,
        &[state, norm_stats, params, grads, moment1, moment2],
        u64::from(p.param_count),
        &[0, 0, 1, 1, 1, 1],
    )
}

/// Buffers of GAE over `steps` x `agents` (time-major, agent-minor).
#[derive(Clone, Copy, Debug)]
pub struct GaeBuffers {
    pub rewards: BufferId,
    pub values: BufferId,
    pub dones: BufferId,
    pub last_values: BufferId,
    pub advantages: BufferId,
    pub returns: BufferId,
}

impl GaeBuffers {
    pub fn declare(program: &mut Program, steps: u32, agents: u32) -> Self {
        let n = steps as usize * agents as usize;
        Self {
            rewards: program.buffer("gae.rewards", n),
            values: program.buffer("gae.values", n),
            dones: program.buffer("gae.dones", n),
            last_values: program.buffer("gae.last_values", agents as usize),
            advantages: program.buffer("gae.advantages", n),
            returns: program.buffer("gae.returns", n),
        }
    }

    /// Record GAE. On the GPU it runs in chunks of time steps, latest first, when the buffers
    /// exceed the storage-binding limit; `p.agents` must then stay that of the first uniform.
    pub fn record(&self, program: &mut Program, seq: SeqId, p: GaeParams) -> OpRef {
        let a = p.agents;
        program.push_rows(
            seq,
            Kernel::Gae,
            &p,
            &[
                self.rewards,
                self.values,
                self.dones,
                self.last_values,
                self.advantages,
                self.returns,
            ],
            u64::from(p.agents),
            &[a, a, a, 0, a, a],
        )
    }
}

/// The actor-critic: an optional shared trunk `obs -> trunk..` feeding a policy head
/// `-> hidden.. -> sum(action_components)` and a value head `-> hidden.. -> 1`, each with
/// `group_count` parameter sets (one per group of agents), run on 1 ..= `batch` rows per call
/// (the rows of a call are those of its observations: a last, partial minibatch runs as it is).
///
/// - `trunk` empty: the reference's AH model, two separate MLPs `obs -> hidden.. -> out`
///   (spec §3.1).
/// - `trunk` non-empty: the HS model of spec §3.2 with `trunk = [256, 128]` and `hidden = []`
///   (linear heads). Every trunk layer, its last included, applies `hidden_activation`; in
///   backward the two heads' input gradients are summed into the trunk's output gradient
///   (policy head first, the value head's added to it) before the trunk's backward.
///
/// Parameter layout (floats, see [`ActorCriticSpec::param_offsets`]): the trunk's sets, then
/// the policy head's, then the value head's, each an [`MlpSpec`] layout (set after set, layer
/// after layer, weights `out x in` row-major then biases).
#[derive(Clone, Debug, PartialEq)]
pub struct ActorCriticSpec {
    pub obs_width: u32,
    /// Hidden widths of the shared trunk; empty: no trunk (separate networks).
    pub trunk: Vec<u32>,
    /// Hidden widths of each head (after the trunk, if any).
    pub hidden: Vec<u32>,
    /// Categorical: one entry (the action count). Multi-discrete: one entry per component.
    pub action_components: Vec<u32>,
    pub group_count: u32,
    pub hidden_activation: Activation,
    pub batch: u32,
    pub use_masks: bool,
}

/// Seed salt of the trunk's initialisation (the heads keep theirs, so a spec without trunk
/// initialises exactly as before trunks existed).
const TRUNK_SEED_SALT: u64 = 0x5452_554e_4b00_0000;
/// Seed salt of the value network's initialisation.
const VALUE_SEED_SALT: u64 = 0x5641_4c55_4500_0000;

impl ActorCriticSpec {
    /// The shared trunk `obs -> trunk..` (every layer activated), or `None` without one.
    pub fn trunk(&self) -> Option<MlpSpec> {
        if self.trunk.is_empty() {
            return None;
        }
        let mut widths = vec![self.obs_width];
        widths.extend(&self.trunk);
        Some(MlpSpec {
            widths,
            hidden_activation: self.hidden_activation,
            output_activation: self.hidden_activation,
            group_count: self.group_count,
        })
    }

    /// Width of the heads' input: the trunk's output, or the observation.
    pub fn head_input_width(&self) -> u32 {
        self.trunk.last().copied().unwrap_or(self.obs_width)
    }

    fn head(&self, out: u32) -> MlpSpec {
        let mut widths = vec![self.head_input_width()];
        widths.extend(&self.hidden);
        widths.push(out);
        MlpSpec {
            widths,
            hidden_activation: self.hidden_activation,
            output_activation: Activation::Identity,
            group_count: self.group_count,
        }
    }

    /// The policy head (the whole policy network without a trunk).
    pub fn policy(&self) -> MlpSpec {
        self.head(self.logit_width())
    }

    /// The value head (the whole value network without a trunk).
    pub fn value(&self) -> MlpSpec {
        self.head(1)
    }

    pub fn logit_width(&self) -> u32 {
        self.action_components.iter().sum()
    }

    /// Where the trunk, the policy head and the value head start in the parameters.
    pub fn param_offsets(&self) -> [u32; 3] {
        let trunk = self.trunk().map_or(0, |t| t.param_len());
        [0, trunk, trunk + self.policy().param_len()]
    }

    /// Trunk parameters first, then policy head, then value head.
    pub fn param_len(&self) -> u32 {
        self.param_offsets()[2] + self.value().param_len()
    }

    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut p = self
            .trunk()
            .map_or_else(Vec::new, |t| t.init_params(seed ^ TRUNK_SEED_SALT));
        p.extend(self.policy().init_params(seed));
        p.extend(self.value().init_params(seed ^ VALUE_SEED_SALT));
        p
    }
}

/// PPO and Adam hyperparameters (the paper's symbols). Defaults: the reference's AH settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PpoHyper {
    pub clip_coef: f32,
    pub vf_coef: f32,
    pub ent_coef: f32,
    pub clip_vloss: bool,
    /// Fairness hook: a scalar multiplying the whole loss.
    pub loss_scale: f32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// <= 0: no gradient clipping.
    pub max_grad_norm: f32,
    /// The reference's HS pairwise surrogate ([`LossParams::pairwise`], spec §3.2 [REPRO]).
    pub pairwise_ratio: bool,
}

impl Default for PpoHyper {
    fn default() -> Self {
        Self {
            clip_coef: 0.2,
            vf_coef: 1.0,
            ent_coef: 0.01,
            clip_vloss: false,
            loss_scale: 1.0,
            lr: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            max_grad_norm: 0.0,
            pairwise_ratio: false,
        }
    }
}

/// The counter of one sampling call: actions of row r use key (seed) and counter
/// (iteration, step, agent_offset + r, component).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleKey {
    pub seed: u64,
    pub iteration: u32,
    pub step: u32,
    pub agent_offset: u32,
}

/// What `act` returns, per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActOutput {
    /// rows x components.
    pub actions: Vec<u32>,
    pub logp: Vec<f32>,
    pub entropy: Vec<f32>,
    pub values: Vec<f32>,
}

/// One minibatch of stored rollout data: `rows` (1 ..= `batch`) rows each, `rows` given by the
/// length of `obs`.
#[derive(Clone, Copy, Debug)]
pub struct Minibatch<'a> {
    pub obs: &'a [f32],
    /// Empty when `group_count == 1`.
    pub group_ids: &'a [u32],
    /// rows x logit_width, 0 = forbidden; empty unless `use_masks`.
    pub masks: &'a [u32],
    /// rows x components.
    pub actions: &'a [u32],
    pub old_logp: &'a [f32],
    pub old_values: &'a [f32],
    pub advantages: &'a [f32],
    /// Fairness hook: added to the advantages.
    pub adv_adjust: &'a [f32],
    pub returns: &'a [f32],
}

/// Adam's moments and counters of an [`ActorCritic`], as a checkpoint stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    pub moment1: Vec<f32>,
    pub moment2: Vec<f32>,
    pub adam: AdamState,
}

/// Shape of an [`ActorCritic`]'s on-device rollout store: `steps` x `slots` rows, time-major
/// (row `t * slots + s`), so GAE runs over it as `slots` trajectories of `steps` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    pub steps: u32,
    pub slots: u32,
    /// Slot `s`'s trajectory is only its first `lengths[s]` steps, given per rollout with
    /// [`ActorCritic::store_lengths`] (agents that act a varying number of times: HS decisions).
    pub ragged: bool,
    /// Fairness cells (0: none): the rows' cells of [`ActorCritic::store_cell_stats`] and the
    /// weights of [`ActorCritic::store_fair_adjust`] (Fair-PPO's shaped penalty).
    pub cells: u32,
    /// Rows per segment of the fairness mix term (the agents of one instance at one step; 0:
    /// no mix term), see [`ActorCritic::store_segment_means`].
    pub segment: u32,
}

impl StoreSpec {
    pub fn rows(&self) -> usize {
        self.steps as usize * self.slots as usize
    }
}

/// The rollout store: what acting produced and what the update reads, kept on the device so a
/// rollout step sends observations and brings back only actions (see [`ActorCritic::with_store`]).
struct Store {
    spec: StoreSpec,
    obs: BufferId,
    masks: BufferId,
    actions: BufferId,
    /// (log-probability, entropy) per row: the layout of `policy_old`.
    policy: BufferId,
    gae: GaeBuffers,
    adv_adjust: BufferId,
    /// 0: the row holds this network's data; 1: a hole (another network's agent).
    valid: BufferId,
    /// Rows of the current call: scatter destinations or gather sources.
    index: BufferId,
    /// Per slot, its trajectory's length (ragged stores).
    lengths: BufferId,
    /// Per slot, the store row of its last step (ragged stores).
    tail_index: BufferId,
    store_seq: SeqId,
    boot_seq: SeqId,
    /// Ragged stores: each slot's last value becomes its default bootstrap value.
    tail_seq: SeqId,
    gae_seq: SeqId,
    norm_seq: SeqId,
    /// A stored minibatch: the gathers, then a copy of the training launches.
    gather_seq: SeqId,
    gae_op: OpRef,
    /// Launches of `gather_seq` before its copy of the training launches.
    train_offset: usize,
    /// Copy launches whose row count follows each call.
    copies: Vec<(OpRef, CopyParams)>,
    fair: Option<FairStore>,
}

/// Fairness buffers of a store with cells (see fairness.wgsl).
struct FairStore {
    cells: u32,
    cell_ids: BufferId,
    weights: BufferId,
    mix: BufferId,
    segment_sums: BufferId,
    /// Segments of the mix term (0: none).
    segments: u32,
    adjust_op: OpRef,
    adjust_params: FairParams,
    /// Per-segment, per-cell sums of the stored advantages.
    segment_seq: SeqId,
    reward_stats: BufferId,
    value_stats: BufferId,
    /// Per-cell reductions of the stored rewards and values.
    stats_seq: SeqId,
    /// The advantage adjustment of every store row.
    adjust_seq: SeqId,
}

/// Per fairness cell: sum, count and mean of the stored rewards and of the stored values (the
/// critic's values at acting time) of the rows in that cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellStats {
    pub rewards: Vec<GroupStats>,
    pub values: Vec<GroupStats>,
}

/// Means over the last minibatch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStats {
    pub policy_loss: f32,
    pub value_loss: f32,
    pub entropy: f32,
    pub approx_kl: f32,
    pub clip_fraction: f32,
}

struct Buffers {
    obs: BufferId,
    group_ids: BufferId,
    masks: BufferId,
    components: BufferId,
    sampled_actions: BufferId,
    sample_out: BufferId,
    actions: BufferId,
    policy_new: BufferId,
    policy_old: BufferId,
    values_old: BufferId,
    advantages: BufferId,
    adv_adjust: BufferId,
    returns: BufferId,
    policy_grad: BufferId,
    value_grad: BufferId,
    terms: BufferId,
    params: BufferId,
    grads: BufferId,
    moment1: BufferId,
    moment2: BufferId,
    adam_state: BufferId,
    norm_partial: BufferId,
    norm_stats: BufferId,
    stats_partial: BufferId,
    stats: BufferId,
    trunk: Option<MlpBuffers>,
    policy: MlpBuffers,
    value: MlpBuffers,
}

/// Trunk (optional), policy and value heads, sampling and one PPO minibatch step, on any
/// [`Executor`].
pub struct ActorCritic<E: Executor> {
    exec: E,
    spec: ActorCriticSpec,
    bufs: Buffers,
    act_seq: SeqId,
    train_seq: SeqId,
    sample_op: OpRef,
    head_params: HeadParams,
    scratch: Vec<f32>,
    /// Launches whose row count follows each call's rows, with their uniforms for `batch`.
    row_ops: Vec<(OpRef, Kernel, Vec<u8>)>,
    /// Rows the row launches are set to now.
    rows: u32,
    /// Rows of the last queued act.
    act_rows: u32,
    store: Option<Store>,
}

impl<E: Executor> ActorCritic<E> {
    /// Declare the program, hand it to `make_executor` (e.g. `CpuExecutor::new` or
    /// `|p| GpuExecutor::new(ctx, p)`), and upload `params` (see
    /// [`ActorCriticSpec::init_params`]).
    pub fn new(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        params: &[f32],
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        Self::build(spec, hyper, params, None, make_executor)
    }

    /// [`Self::new`] with an on-device rollout store of `store` rows: acting writes its
    /// observations, actions, log-probabilities and values into the store
    /// ([`Self::queue_act_stored`]), GAE and advantage standardisation run over it
    /// ([`Self::store_advantages`]) and minibatches are gathered from it
    /// ([`Self::train_stored`]), so only actions cross back to the host during a rollout.
    pub fn with_store(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        params: &[f32],
        store: StoreSpec,
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        Self::build(spec, hyper, params, Some(store), make_executor)
    }

    fn build(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        params: &[f32],
        store: Option<StoreSpec>,
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        let rows = spec.batch;
        let n = rows as usize;
        let n_comp = spec.action_components.len();
        let logit_width = spec.logit_width() as usize;
        let [_, policy_offset, value_offset] = spec.param_offsets();
        let trunk = spec.trunk().map(|t| MlpPlacement {
            spec: t,
            param_offset: 0,
            rows,
        });
        let policy = MlpPlacement {
            spec: spec.policy(),
            param_offset: policy_offset,
            rows,
        };
        let value = MlpPlacement {
            spec: spec.value(),
            param_offset: value_offset,
            rows,
        };
        let param_len = spec.param_len() as usize;
        if params.len() != param_len {
            return Err(ShaderError::ShapeMismatch {
                what: "parameters",
                expected: param_len,
                got: params.len(),
            });
        }
        let mut prog = Program::new();
        let obs = prog.buffer("obs", n * spec.obs_width as usize);
        let trunk_bufs = trunk
            .as_ref()
            .map(|t| t.declare_buffers(&mut prog, "trunk", obs, false));
        // With a trunk, both heads read its output and write their input gradients into one
        // buffer: the policy head's (declared with it), the value head's added to it.
        let head_input = trunk_bufs
            .as_ref()
            .map_or(obs, |b| *b.activations.last().expect("trunk output"));
        let policy_bufs = policy.declare_buffers(&mut prog, "policy", head_input, trunk.is_some());
        let mut value_bufs = value.declare_buffers(&mut prog, "value", head_input, false);
        let trunk_grad = policy_bufs.activation_grads[0];
        value_bufs.activation_grads[0] = trunk_grad;
        let stats_words = 5 * size_of::<GroupStats>() / 4;
        let bufs = Buffers {
            obs,
            group_ids: prog.buffer("group_ids", n),
            masks: prog.buffer("masks", if spec.use_masks { n * logit_width } else { 1 }),
            components: prog.buffer("components", n_comp),
            sampled_actions: prog.buffer("sampled_actions", n * n_comp),
            sample_out: prog.buffer("sample_out", n * 2),
            actions: prog.buffer("actions", n * n_comp),
            policy_new: prog.buffer("policy_new", n * 2),
            policy_old: prog.buffer("policy_old", n * 2),
            values_old: prog.buffer("values_old", n),
            advantages: prog.buffer("advantages", n),
            adv_adjust: prog.buffer("adv_adjust", n),
            returns: prog.buffer("returns", n),
            policy_grad: prog.buffer("policy_grad", n * 2),
            value_grad: prog.buffer("value_grad", n),
            terms: prog.buffer("terms", n * 4),
            params: prog.buffer("params", param_len),
            grads: prog.buffer("grads", param_len),
            moment1: prog.buffer("moment1", param_len),
            moment2: prog.buffer("moment2", param_len),
            adam_state: prog.buffer("adam_state", size_of::<AdamState>() / 4),
            norm_partial: prog.buffer("norm_partial", reduce_partial_words(1)),
            norm_stats: prog.buffer("norm_stats", size_of::<GroupStats>() / 4),
            stats_partial: prog.buffer("stats_partial", reduce_partial_words(1)),
            stats: prog.buffer("stats", stats_words),
            trunk: trunk_bufs,
            policy: policy_bufs,
            value: value_bufs,
        };
        let head_params = HeadParams {
            rows,
            logit_width: logit_width as u32,
            component_count: n_comp as u32,
            use_mask: u32::from(spec.use_masks),
            ..HeadParams::default()
        };
        let logits = *bufs.policy.activations.last().expect("policy output");
        let values_new = *bufs.value.activations.last().expect("value output");
        let logit_grad = bufs
            .policy
            .activation_grads
            .last()
            .expect("policy output")
            .expect("declared");

        // act: forward the trunk and both heads, sample.
        let act_seq = prog.sequence();
        if let (Some(t), Some(tb)) = (&trunk, &bufs.trunk) {
            t.record_forward(&mut prog, act_seq, bufs.params, bufs.group_ids, tb);
        }
        policy.record_forward(
            &mut prog,
            act_seq,
            bufs.params,
            bufs.group_ids,
            &bufs.policy,
        );
        value.record_forward(&mut prog, act_seq, bufs.params, bufs.group_ids, &bufs.value);
        let lw = logit_width as u32;
        let mask_words = if spec.use_masks { lw } else { 0 };
        let comps = n_comp as u32;
        let sample_op = prog.push_rows(
            act_seq,
            Kernel::HeadSample,
            &head_params,
            &[
                logits,
                bufs.masks,
                bufs.components,
                bufs.sampled_actions,
                bufs.sample_out,
            ],
            u64::from(rows),
            &[lw, mask_words, 0, comps, 2],
        );

        // train: forward, evaluate, loss, backward, Adam, statistics.
        let train_seq = prog.sequence();
        if let (Some(t), Some(tb)) = (&trunk, &bufs.trunk) {
            t.record_forward(&mut prog, train_seq, bufs.params, bufs.group_ids, tb);
        }
        policy.record_forward(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.group_ids,
            &bufs.policy,
        );
        value.record_forward(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.group_ids,
            &bufs.value,
        );
        prog.push_rows(
            train_seq,
            Kernel::HeadEvaluate,
            &head_params,
            &[
                logits,
                bufs.masks,
                bufs.components,
                bufs.actions,
                bufs.policy_new,
            ],
            u64::from(rows),
            &[lw, mask_words, 0, comps, 2],
        );
        let loss = LossParams {
            rows,
            clip_coef: hyper.clip_coef,
            vf_coef: hyper.vf_coef,
            ent_coef: hyper.ent_coef,
            clip_vloss: u32::from(hyper.clip_vloss),
            loss_scale: hyper.loss_scale,
            loss_norm: 1.0 / rows as f32,
            pairwise: u32::from(hyper.pairwise_ratio),
        };
        prog.push_rows(
            train_seq,
            Kernel::PpoLoss,
            &loss,
            &[
                bufs.policy_new,
                values_new,
                bufs.policy_old,
                bufs.values_old,
                bufs.advantages,
                bufs.adv_adjust,
                bufs.returns,
                bufs.policy_grad,
                bufs.value_grad,
                bufs.terms,
            ],
            u64::from(rows),
            &[2, 1, 2, 1, 1, 1, 1, 2, 1, 4],
        );
        prog.push_rows(
            train_seq,
            Kernel::HeadBackward,
            &head_params,
            &[
                logits,
                bufs.masks,
                bufs.components,
                bufs.actions,
                bufs.policy_grad,
                logit_grad,
            ],
            u64::from(rows),
            &[lw, mask_words, 0, comps, 2, lw],
        );
        policy.record_backward(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.grads,
            bufs.group_ids,
            &bufs.policy,
            logit_grad,
        );
        // With a trunk, the value head's input gradient adds to the policy head's.
        value.record_backward_with(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.grads,
            bufs.group_ids,
            &bufs.value,
            bufs.value_grad,
            trunk_grad.is_some(),
        );
        if let (Some(t), Some(tb), Some(dx)) = (&trunk, &bufs.trunk, trunk_grad) {
            t.record_backward(
                &mut prog,
                train_seq,
                bufs.params,
                bufs.grads,
                bufs.group_ids,
                tb,
                dx,
            );
        }
        let adam = AdamParams {
            param_count: param_len as u32,
            lr: hyper.lr,
            beta1: hyper.beta1,
            beta2: hyper.beta2,
            epsilon: hyper.epsilon,
            max_grad_norm: hyper.max_grad_norm,
            pad0: 0,
            pad1: 0,
        };
        // From here to the statistics, launches run over parameters, not rows.
        let params_ops = prog.ops(train_seq).len();
        prog.push(train_seq, Kernel::AdamBegin, &adam, &[bufs.adam_state], 1);
        if hyper.max_grad_norm > 0.0 {
            let norm = ReduceSpec {
                mode: ReduceMode::Square,
                ..ReduceSpec::plain(param_len as u32)
            };
            record_group_reduce(
                &mut prog,
                train_seq,
                norm,
                bufs.grads,
                bufs.group_ids,
                bufs.norm_stats,
                bufs.norm_partial,
                bufs.norm_stats,
            );
        }
        record_adam_update(
            &mut prog,
            train_seq,
            &adam,
            bufs.adam_state,
            bufs.norm_stats,
            bufs.params,
            bufs.grads,
            bufs.moment1,
            bufs.moment2,
        );
        let stats_ops = prog.ops(train_seq).len();
        // Statistics: policy loss, value loss, approx KL, clip fraction, entropy.
        for (slot, (values, stride, offset)) in [
            (bufs.terms, 4, 0),
            (bufs.terms, 4, 1),
            (bufs.terms, 4, 2),
            (bufs.terms, 4, 3),
            (bufs.policy_new, 2, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let s = ReduceSpec {
                value_stride: stride,
                value_offset: offset,
                output_offset: slot as u32,
                ..ReduceSpec::plain(rows)
            };
            record_group_reduce(
                &mut prog,
                train_seq,
                s,
                values,
                bufs.group_ids,
                bufs.stats,
                bufs.stats_partial,
                bufs.stats,
            );
        }

        // Every launch whose uniform holds the row count (at byte 0) follows the rows of each
        // call; rows_per_split stays that of `batch`, so the fixed split order does not depend
        // on the call's rows.
        let store = store.map(|st| Self::declare_store(&mut prog, &spec, &bufs, train_seq, st));
        let mut row_seqs = vec![
            (act_seq, 0..0, 0..0),
            (train_seq, params_ops..stats_ops, 0..0),
        ];
        if let Some(st) = &store {
            // The stored minibatch sequence: the gathers (rows set by `set_copy_rows`), then a
            // copy of the training launches.
            let g = st.train_offset;
            row_seqs.push((st.gather_seq, g + params_ops..g + stats_ops, 0..g));
        }
        let mut row_ops = Vec::new();
        for (seq, skip, copies) in row_seqs {
            for (index, op) in prog.ops(seq).iter().enumerate() {
                if !skip.contains(&index)
                    && !copies.contains(&index)
                    && op.kernel != Kernel::HeadSample
                {
                    let op_ref = OpRef {
                        seq: seq.0,
                        index: index as u32,
                    };
                    row_ops.push((op_ref, op.kernel, op.uniform.clone()));
                }
            }
        }

        let mut exec = make_executor(prog)?;
        exec.write(bufs.params, params)?;
        exec.write(bufs.adam_state, &[AdamState::INITIAL])?;
        exec.write(bufs.components, &spec.action_components)?;
        Ok(Self {
            exec,
            spec,
            bufs,
            act_seq,
            train_seq,
            sample_op,
            head_params,
            scratch: vec![0.0; n * 2],
            row_ops,
            rows,
            act_rows: rows,
            store,
        })
    }

    /// Declare the store's buffers and its sequences: scatter of an act's outputs, scatter of
    /// bootstrap values, GAE, standardisation, and the gather of a minibatch.
    fn declare_store(
        prog: &mut Program,
        spec: &ActorCriticSpec,
        bufs: &Buffers,
        train_seq: SeqId,
        st: StoreSpec,
    ) -> Store {
        let n = st.rows();
        let comps = spec.action_components.len() as u32;
        let lw = spec.logit_width();
        let ow = spec.obs_width;
        let gae = GaeBuffers::declare(prog, st.steps, st.slots);
        let store = Store {
            spec: st,
            obs: prog.buffer("store.obs", n * ow as usize),
            masks: prog.buffer(
                "store.masks",
                if spec.use_masks { n * lw as usize } else { 1 },
            ),
            actions: prog.buffer("store.actions", n * comps as usize),
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
            gather_seq: prog.sequence(),
            gae_op: OpRef { seq: 0, index: 0 },
            train_offset: 0,
            copies: Vec::new(),
            fair: None,
        };
        let mut copies = Vec::new();
        let mut copy = |prog: &mut Program, seq: SeqId, mode: CopyMode, width, src, dst| {
            let p = CopyParams {
                rows: spec.batch,
                width,
                mode: mode as u32,
                ..CopyParams::default()
            };
            let threads = u64::from(spec.batch) * u64::from(width);
            let op = prog.push(seq, Kernel::CopyRows, &p, &[src, store.index, dst], threads);
            copies.push((op, p));
        };
        let values_new = *bufs.value.activations.last().expect("value output");
        let scatter = CopyMode::Scatter;
        copy(prog, store.store_seq, scatter, ow, bufs.obs, store.obs);
        if spec.use_masks {
            copy(prog, store.store_seq, scatter, lw, bufs.masks, store.masks);
        }
        copy(
            prog,
            store.store_seq,
            scatter,
            comps,
            bufs.sampled_actions,
            store.actions,
        );
        copy(
            prog,
            store.store_seq,
            scatter,
            2,
            bufs.sample_out,
            store.policy,
        );
        copy(
            prog,
            store.store_seq,
            scatter,
            1,
            values_new,
            store.gae.values,
        );
        copy(
            prog,
            store.boot_seq,
            scatter,
            1,
            values_new,
            store.gae.last_values,
        );
        let gather = CopyMode::Gather;
        let g = store.gather_seq;
        copy(prog, g, gather, ow, store.obs, bufs.obs);
        if spec.use_masks {
            copy(prog, g, gather, lw, store.masks, bufs.masks);
        }
        copy(prog, g, gather, comps, store.actions, bufs.actions);
        copy(prog, g, gather, 2, store.policy, bufs.policy_old);
        copy(prog, g, gather, 1, store.gae.values, bufs.values_old);
        copy(prog, g, gather, 1, store.gae.advantages, bufs.advantages);
        copy(prog, g, gather, 1, store.adv_adjust, bufs.adv_adjust);
        copy(prog, g, gather, 1, store.gae.returns, bufs.returns);
        // One submission per stored minibatch: the training launches follow the gathers.
        let train_offset = prog.ops(g).len();
        let train_ops = prog.ops(train_seq).to_vec();
        prog.sequences[g.0 as usize].extend(train_ops);
        let gae_params = GaeParams {
            steps: st.steps,
            agents: st.slots,
            ..GaeParams::default()
        };
        let gae_op = if st.ragged {
            let tail = CopyParams {
                rows: st.slots,
                width: 1,
                mode: CopyMode::Gather as u32,
                ..CopyParams::default()
            };
            prog.push(
                store.tail_seq,
                Kernel::CopyRows,
                &tail,
                &[store.gae.values, store.tail_index, store.gae.last_values],
                u64::from(st.slots),
            );
            let g = store.gae;
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
        } else {
            store.gae.record(prog, store.gae_seq, gae_params)
        };
        let norm = ReduceSpec {
            group_count: 2,
            use_groups: true,
            ..ReduceSpec::plain(n as u32)
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
        let fair = (st.cells > 0).then(|| Self::declare_fair(prog, &store, st));
        Store {
            gae_op,
            copies,
            train_offset,
            fair,
            ..store
        }
    }

    /// The fairness sequences of a store with cells: per-cell reductions of the stored rewards
    /// and values (cell ids as group ids), and the per-row advantage adjustment.
    fn declare_fair(prog: &mut Program, store: &Store, st: StoreSpec) -> FairStore {
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

    pub fn spec(&self) -> &ActorCriticSpec {
        &self.spec
    }

    pub fn executor(&mut self) -> &mut E {
        &mut self.exec
    }

    fn check(what: &'static str, expected: usize, got: usize) -> Result<(), ShaderError> {
        if expected == got {
            Ok(())
        } else {
            Err(ShaderError::ShapeMismatch {
                what,
                expected,
                got,
            })
        }
    }

    /// Point every row launch at `rows` rows (a no-op when they already are).
    fn set_rows(&mut self, rows: u32) {
        if rows == self.rows {
            return;
        }
        self.write_row_uniforms(rows);
    }

    /// Scale the whole minibatch loss (its policy, value and entropy gradients) by `scale` from
    /// the next training launch on (`PpoHyper::loss_scale`; Fair-PPO's reference penalty sets
    /// the dynamic-λ factor of spec §4.1 here).
    pub fn set_loss_scale(&mut self, scale: f32) {
        let at = std::mem::offset_of!(LossParams, loss_scale);
        let mut changed = false;
        for (_, kernel, base) in &mut self.row_ops {
            if *kernel == Kernel::PpoLoss && base[at..at + 4] != scale.to_le_bytes() {
                base[at..at + 4].copy_from_slice(&scale.to_le_bytes());
                changed = true;
            }
        }
        if changed {
            self.write_row_uniforms(self.rows);
        }
    }

    fn write_row_uniforms(&mut self, rows: u32) {
        for (op, kernel, base) in &self.row_ops {
            let mut bytes = base.clone();
            bytes[..4].copy_from_slice(&rows.to_le_bytes());
            if *kernel == Kernel::PpoLoss {
                let at = std::mem::offset_of!(LossParams, loss_norm);
                bytes[at..at + 4].copy_from_slice(&(1.0 / rows as f32).to_le_bytes());
            }
            self.exec.set_uniform(*op, &bytes);
        }
        self.rows = rows;
    }

    /// Rows of a call from its observations: 1 ..= batch whole rows.
    fn rows_of(&self, obs: &[f32]) -> Result<u32, ShaderError> {
        let width = self.spec.obs_width as usize;
        let rows = obs.len() / width;
        if !obs.len().is_multiple_of(width) || rows == 0 || rows > self.spec.batch as usize {
            return Err(ShaderError::RowCount {
                values: obs.len(),
                width,
                batch: self.spec.batch as usize,
            });
        }
        Ok(rows as u32)
    }

    /// Upload observations (and group ids, masks) of `rows` rows and set the row launches.
    fn write_common(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
    ) -> Result<usize, ShaderError> {
        let rows = self.rows_of(obs)?;
        let n = rows as usize;
        self.exec.write(self.bufs.obs, obs)?;
        if self.spec.group_count > 1 || !group_ids.is_empty() {
            Self::check("group_ids", n, group_ids.len())?;
            self.exec.write(self.bufs.group_ids, group_ids)?;
        }
        if self.spec.use_masks {
            Self::check("masks", n * self.spec.logit_width() as usize, masks.len())?;
            self.exec.write(self.bufs.masks, masks)?;
        }
        self.set_rows(rows);
        Ok(n)
    }

    /// Queue the sampling pass for the rows of `obs` (at most `batch`) without waiting; fetch
    /// with [`Self::act_output`].
    pub fn queue_act(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
        key: SampleKey,
    ) -> Result<(), ShaderError> {
        let n = self.write_common(obs, group_ids, masks)?;
        self.act_rows = n as u32;
        self.head_params.rows = n as u32;
        self.head_params.seed_lo = key.seed as u32;
        self.head_params.seed_hi = (key.seed >> 32) as u32;
        self.head_params.iteration = key.iteration;
        self.head_params.step = key.step;
        self.head_params.agent_offset = key.agent_offset;
        let hp = self.head_params;
        self.exec.set_uniform_pod(self.sample_op, &hp);
        self.exec.run(self.act_seq)
    }

    /// Read back the last queued act: actions, log-probabilities, entropies and values.
    pub fn act_output(&mut self) -> Result<ActOutput, ShaderError> {
        let n = self.act_rows as usize;
        let mut actions: Vec<u32> = self.exec.read(self.bufs.sampled_actions)?;
        actions.truncate(n * self.spec.action_components.len());
        let out: Vec<f32> = self.exec.read(self.bufs.sample_out)?;
        let mut values: Vec<f32> = self
            .exec
            .read(*self.bufs.value.activations.last().expect("value output"))?;
        values.truncate(n);
        Ok(ActOutput {
            actions,
            logp: out.iter().step_by(2).take(n).copied().collect(),
            entropy: out.iter().skip(1).step_by(2).take(n).copied().collect(),
            values,
        })
    }

    /// Sample actions for the rows of `obs` (at most `batch`) and return them with
    /// log-probabilities and values.
    pub fn act(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
        key: SampleKey,
    ) -> Result<ActOutput, ShaderError> {
        self.queue_act(obs, group_ids, masks, key)?;
        self.act_output()
    }

    /// Queue one PPO minibatch step (forward, loss, backward, Adam) over the minibatch's rows
    /// (at most `batch`; the loss is their mean) without waiting.
    pub fn train_minibatch(&mut self, mb: &Minibatch<'_>) -> Result<(), ShaderError> {
        let n = self.write_common(mb.obs, mb.group_ids, mb.masks)?;
        Self::check(
            "actions",
            n * self.spec.action_components.len(),
            mb.actions.len(),
        )?;
        for (what, v) in [
            ("old_logp", mb.old_logp),
            ("old_values", mb.old_values),
            ("advantages", mb.advantages),
            ("adv_adjust", mb.adv_adjust),
            ("returns", mb.returns),
        ] {
            Self::check(what, n, v.len())?;
        }
        self.exec.write(self.bufs.actions, mb.actions)?;
        for (i, &lp) in mb.old_logp.iter().enumerate() {
            self.scratch[i * 2] = lp;
        }
        self.exec
            .write(self.bufs.policy_old, &self.scratch[..n * 2])?;
        self.exec.write(self.bufs.values_old, mb.old_values)?;
        self.exec.write(self.bufs.advantages, mb.advantages)?;
        self.exec.write(self.bufs.adv_adjust, mb.adv_adjust)?;
        self.exec.write(self.bufs.returns, mb.returns)?;
        self.exec.run(self.train_seq)
    }

    /// Means of the loss terms over the last minibatch.
    pub fn loss_stats(&mut self) -> Result<LossStats, ShaderError> {
        let s: Vec<GroupStats> = self.exec.read(self.bufs.stats)?;
        Ok(LossStats {
            policy_loss: s[0].mean,
            value_loss: s[1].mean,
            approx_kl: s[2].mean,
            clip_fraction: s[3].mean,
            entropy: s[4].mean,
        })
    }

    /// Wait for everything queued.
    pub fn finish(&mut self) -> Result<(), ShaderError> {
        self.exec.finish()
    }

    /// Current parameters (trunk, then policy head, then value head).
    pub fn params(&mut self) -> Result<Vec<f32>, ShaderError> {
        let mut p: Vec<f32> = self.exec.read(self.bufs.params)?;
        p.truncate(self.spec.param_len() as usize);
        Ok(p)
    }

    /// Adam's moments and counters (for checkpoints; see [`Self::restore`]).
    pub fn optimizer_state(&mut self) -> Result<OptimizerState, ShaderError> {
        let len = self.spec.param_len() as usize;
        let mut moment1: Vec<f32> = self.exec.read(self.bufs.moment1)?;
        moment1.truncate(len);
        let mut moment2: Vec<f32> = self.exec.read(self.bufs.moment2)?;
        moment2.truncate(len);
        let adam: Vec<AdamState> = self.exec.read(self.bufs.adam_state)?;
        Ok(OptimizerState {
            moment1,
            moment2,
            adam: adam[0],
        })
    }

    /// Replace the parameters and Adam's state (a checkpoint written from [`Self::params`] and
    /// [`Self::optimizer_state`]): training continues exactly as it would have.
    pub fn restore(&mut self, params: &[f32], state: &OptimizerState) -> Result<(), ShaderError> {
        let len = self.spec.param_len() as usize;
        for (what, v) in [
            ("parameters", params),
            ("moment1", &state.moment1[..]),
            ("moment2", &state.moment2[..]),
        ] {
            Self::check(what, len, v.len())?;
        }
        self.exec.write(self.bufs.params, params)?;
        self.exec.write(self.bufs.moment1, &state.moment1)?;
        self.exec.write(self.bufs.moment2, &state.moment2)?;
        self.exec.write(self.bufs.adam_state, &[state.adam])
    }

    /// Policy logits of the last act (rows x logit width), e.g. for greedy actions.
    pub fn logits(&mut self) -> Result<Vec<f32>, ShaderError> {
        let n = self.act_rows as usize * self.spec.logit_width() as usize;
        let mut l: Vec<f32> = self
            .exec
            .read(*self.bufs.policy.activations.last().expect("policy output"))?;
        l.truncate(n);
        Ok(l)
    }

    fn store(&self) -> Result<&Store, ShaderError> {
        self.store.as_ref().ok_or(ShaderError::NoStore)
    }

    /// Point the copy launches of `seq` at `rows` rows.
    fn set_copy_rows(&mut self, seq: SeqId, rows: u32) {
        let Some(store) = &self.store else { return };
        for (op, base) in &store.copies {
            if op.seq == seq.0 {
                let p = CopyParams { rows, ..*base };
                self.exec.set_uniform_pod(*op, &p);
            }
        }
    }

    /// Write the store rows of the current call (distinct, each below the store's rows).
    fn write_index(&mut self, rows: &[u32]) -> Result<(), ShaderError> {
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
        self.queue_act(obs, group_ids, masks, key)?;
        Self::check("store rows", self.act_rows as usize, dst.len())?;
        self.write_index(dst)?;
        self.set_copy_rows(seq, dst.len() as u32);
        self.exec.run(seq)
    }

    /// The actions of the last queued act (rows x components): the only thing a stored
    /// rollout step reads back.
    pub fn act_actions(&mut self) -> Result<Vec<u32>, ShaderError> {
        let n = self.act_rows as usize * self.spec.action_components.len();
        let mut actions: Vec<u32> = self.exec.read(self.bufs.sampled_actions)?;
        actions.truncate(n);
        Ok(actions)
    }

    /// After a [`Self::queue_act`] on the observations that follow the rollout's last step,
    /// write their values as the bootstrap values of store slots `slots`.
    pub fn store_bootstrap(&mut self, slots: &[u32]) -> Result<(), ShaderError> {
        let store = self.store()?;
        let (seq, limit) = (store.boot_seq, store.spec.slots as usize);
        Self::check("bootstrap slots", self.act_rows as usize, slots.len())?;
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
        Self::check("store lengths", st.slots as usize, lengths.len())?;
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
        Self::check("store rewards", n, rewards.len())?;
        Self::check("store dones", n, dones.len())?;
        Self::check("store valid", n, valid.len())?;
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

    /// Gradients of the last minibatch (same layout as the parameters).
    pub fn grads(&mut self) -> Result<Vec<f32>, ShaderError> {
        let mut g: Vec<f32> = self.exec.read(self.bufs.grads)?;
        g.truncate(self.spec.param_len() as usize);
        Ok(g)
    }
}
