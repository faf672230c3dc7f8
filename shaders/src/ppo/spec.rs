//! The actor-critic's shapes and the values that cross its interface: what the network is
//! ([`ActorCriticSpec`]), how it learns ([`PpoHyper`]), and what one call sends or returns
//! ([`SampleKey`], [`ActOutput`], [`Minibatch`], [`LossStats`], [`OptimizerState`]). Plain data,
//! kept apart from the recording so a trainer can build and check them without an executor.

use crate::layout::AdamState;
use crate::mlp::{Activation, MlpSpec};

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
    /// The reference's HS pairwise surrogate ([`crate::layout::LossParams::pairwise`], spec
    /// §3.2 [REPRO]).
    pub pairwise_ratio: bool,
    /// Training launches keep each minibatch's gradients in an accumulator instead of taking an
    /// Adam step; [`super::ActorCritic::apply_accumulated`] then takes one step on their mean
    /// (the reference FEN and SOTO ports' one optimiser step per update over the loss averaged
    /// at fixed parameters, baselines-spec F8, S7).
    pub accumulate: bool,
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
            accumulate: false,
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

/// Adam's moments and counters of an [`ActorCritic`](super::ActorCritic), as a checkpoint
/// stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    pub moment1: Vec<f32>,
    pub moment2: Vec<f32>,
    pub adam: AdamState,
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
