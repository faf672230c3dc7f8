//! The typed training configuration: every hyperparameter with the reference's default (spec
//! §3.1, AH), read from TOML (`--config FILE.toml`), overridden by command-line flags, validated
//! before anything is written, and saved resolved in the run directory (`config.toml`).
//!
//! Profiles: `profile` selects both the environment's rules (`fairground_kernel::Profile`, passed
//! to `AhParams` / `HsConfig`) and the defaults of the trainer's [REPRO] flags
//! (`ah_action_misalignment`, `ah_interleaved_gae`, `ah_standardized_returns`,
//! `ah_cross_group_training`, `hs_pairwise_ratio`): all on for `reference`, all off for `clean`,
//! each overridable in the TOML. See [`TrainConfig::defaults`].

use crate::error::TrainError;
use fairground_kernel::Profile;
use fairground_kernel::ah::AGENTS_MAX;
use fairground_shaders::PpoHyper;
use serde::{Deserialize, Serialize};

/// Which environment to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EnvName {
    /// Allelopathic Harvest.
    #[default]
    Ah,
    /// HospitalSim (three role networks; HS-specific defaults, see [`TrainConfig::hs_default`]).
    Hs,
}

/// Which learning algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// Proximal policy optimisation (clipped surrogate, GAE).
    #[default]
    Ppo,
    /// PPO with the fairness penalty (`fairness`, `alpha`, `beta`, `penalty`; see
    /// docs/fair-ppo.md).
    #[serde(rename = "fair-ppo")]
    FairPpo,
    /// FEN (Jiang & Lu 2019): a controller over sub-policies and the fair-efficient reward
    /// (`[fen]`; docs/baselines.md).
    Fen,
    /// SOTO (Zimmer et al. 2021): self- and team-oriented streams, the team stream trained on
    /// the welfare-weighted sum of every agent's advantage (`[soto]`; docs/baselines.md).
    Soto,
}

/// SOTO's social welfare function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SotoWelfare {
    /// Generalised Gini: ω_r = b^{−r} by ascending utility rank.
    #[default]
    Ggf,
    /// α-fairness: weights (J + ε)^{−α}.
    Alpha,
}

impl Algo {
    pub fn is_fair(self) -> bool {
        self == Algo::FairPpo
    }
}

/// Which fairness notion Fair-PPO penalises (and which disparities the metrics lead with).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fairness {
    /// Demographic parity: sensitive vs non-sensitive group means.
    #[default]
    Dp,
    /// Conditional statistical parity: demographic parity within each level of the legitimate
    /// factor (AH: berry preference; HS: patient priority), summed.
    Csp,
    /// Counterfactual fairness: each world against its twin with the attribute flipped
    /// (common random numbers, stepped in lock-step with the same policies).
    Cf,
}

/// How the penalty enters the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Penalty {
    /// The retrospective and prospective gaps weight the policy gradient (docs/fair-ppo.md).
    #[default]
    Shaped,
    /// The reference code's semantics exactly (spec §4): normalisers, dynamic λ, sign.
    Reference,
}

/// Which backend runs the networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `gpu` on a hardware GPU adapter, else `cpu-gemm` (a software adapter such as lavapipe
    /// is slower than the CPU at 256-row minibatches); the manifest says which was used.
    #[default]
    Auto,
    /// The WGSL kernels through wgpu.
    Gpu,
    /// The kernels' CPU twins: the shaders' summation order, so the same bits on every
    /// machine (the test oracle, and what every run made before `cpu-gemm` existed used).
    Cpu,
    /// The CPU twins with the matrix products through a tuned GEMM on `threads` threads: the
    /// same bits for any thread count, within a written tolerance of the twins, and bits that
    /// can differ between CPUs with different vector instructions.
    #[serde(rename = "cpu-gemm")]
    CpuGemm,
}

/// The command-line and TOML names of a config enum: `NAMES` (in order), `name()`, `FromStr`
/// (an unknown name gets one line listing the allowed ones) and `Display`. The CLI parses its
/// flags with these, so the names exist once.
macro_rules! named_enum {
    ($t:ident { $($v:ident => $n:literal),+ $(,)? }) => {
        impl $t {
            /// Every allowed name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($n),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($t::$v => $n,)+
                }
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($n => Ok($t::$v),)+
                    _ => Err(format!(
                        "unknown {} '{s}' (allowed: {})",
                        stringify!($t).to_lowercase(),
                        Self::NAMES.join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum!(EnvName { Ah => "ah", Hs => "hs" });
named_enum!(Algo { Ppo => "ppo", FairPpo => "fair-ppo", Fen => "fen", Soto => "soto" });
named_enum!(SotoWelfare { Ggf => "ggf", Alpha => "alpha" });
named_enum!(Consensus { Exact => "exact", Gossip => "gossip" });
named_enum!(DiversityReward { LogProb => "log_prob", Prob => "prob" });
named_enum!(Share { All => "all", Group => "group" });

/// How FEN's agents learn the mean utility ū.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Consensus {
    /// The exact mean over the instance's agents (both authors' codebases).
    #[default]
    Exact,
    /// Metropolis-weighted average consensus, re-seeded from the agents' own utilities every
    /// step (`gossip_rounds` rounds over `gossip_ring`'s graph).
    Gossip,
}

/// What FEN's diversity sub-policies (z ≥ 1) are rewarded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DiversityReward {
    /// log p_θ(z | x_{t+1}), floored at `log_floor` (the poster's objective).
    #[default]
    #[serde(rename = "log_prob")]
    LogProb,
    /// p_θ(z | x_{t+1}) (the authors' code).
    #[serde(rename = "prob")]
    Prob,
}

/// Which agents share a baseline's networks (FEN's controller and sub-policies, SOTO's
/// streams).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Share {
    /// One controller and one set of sub-policies for every agent (the authors' job and
    /// Matthew scripts, and the reference port); needs environment networks of one shape (AH).
    #[default]
    All,
    /// One controller and set of sub-policies per environment network (AH group, HS role).
    Group,
}

impl Share {
    /// Share units for `env_nets` environment networks.
    pub fn units(self, env_nets: usize) -> usize {
        match self {
            Share::All => 1,
            Share::Group => env_nets,
        }
    }

    /// The share unit of environment network `env_net`.
    pub fn unit(self, env_net: usize) -> usize {
        match self {
            Share::All => 0,
            Share::Group => env_net,
        }
    }

    /// The environment networks of share unit `unit` (of `env_nets`).
    pub fn env_nets(self, unit: usize, env_nets: usize) -> std::ops::Range<usize> {
        match self {
            Share::All => 0..env_nets,
            Share::Group => unit..unit + 1,
        }
    }
}
named_enum!(Fairness { Dp => "dp", Csp => "csp", Cf => "cf" });
named_enum!(Penalty { Shaped => "shaped", Reference => "reference" });
named_enum!(Backend { Auto => "auto", Gpu => "gpu", Cpu => "cpu", CpuGemm => "cpu-gemm" });

/// Everything that defines a training run, in sections: the run itself at the top level, then
/// `[ppo]` (networks and the update), `[fair]` (Fair-PPO's penalty), `[ah]` and `[hs]` (each
/// environment's own settings and [REPRO] flags). Unknown keys in a TOML file are errors; the
/// flat layout of earlier versions (`lr = …`, `hs_patients = …`) is still read, each key into
/// its section ([`LEGACY_KEYS`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Environment: "ah" or "hs". Fields a config file or flag does not set take the defaults
    /// of that environment ([`TrainConfig::default`] for AH, [`TrainConfig::hs_default`] for HS).
    pub env: EnvName,
    /// Algorithm: "ppo" or "fair-ppo".
    pub algo: Algo,
    /// Rule profile of the environment and the trainer: "clean" (the default) or "reference".
    /// The environment follows it; it also sets the defaults of the [REPRO] flags (on for
    /// "reference", off for "clean") and, for "reference", the reference's rollout shape and
    /// minibatch order (see [`TrainConfig::defaults`]).
    pub profile: Profile,
    /// Environment instances stepped together.
    pub instances: u32,
    /// T: steps of every instance per iteration (one update after them).
    pub rollout_steps: u32,
    /// Iterations to run in total (a resumed run continues up to this number).
    pub iterations: u32,
    /// Root seed: every stream (environment, initialisation, sampling, shuffling) derives from it.
    pub seed: u64,
    /// "auto", "gpu" or "cpu". The saved config holds the backend actually used.
    pub backend: Backend,
    /// Worker threads for the kernel and for running the networks side by side (results do
    /// not depend on it).
    pub threads: u32,
    /// Write a checkpoint every this many iterations (and always after the last).
    pub checkpoint_every: u32,
    /// `[ppo]`: the networks and the PPO update.
    pub ppo: PpoConfig,
    /// `[fair]`: Fair-PPO's fairness notion and penalty.
    pub fair: FairConfig,
    /// `[ah]`: Allelopathic Harvest.
    pub ah: AhConfig,
    /// `[hs]`: HospitalSim.
    pub hs: HsSection,
    /// `[fen]`: FEN's controller, sub-policies and fair-efficient reward.
    pub fen: FenConfig,
    /// `[soto]`: SOTO's streams and welfare.
    pub soto: SotoConfig,
}

/// `[soto]`: SOTO (Zimmer et al. 2021) as its authors built it (baselines-spec §A5;
/// docs/baselines.md says why each default is what it is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SotoConfig {
    /// "ggf" (generalised Gini) or "alpha" (α-fairness).
    pub welfare: SotoWelfare,
    /// b of the GGF weights ω_r = b^{−r} (r = 0 the worst-off), > 1 and at most 1e6 (the
    /// authors' 2).
    pub ggf_base: f32,
    /// α of the α-fair weights (J + ε)^{−α}, 0..=100 (the authors' 0.9).
    pub alpha: f32,
    /// ε of the α-fair weights, in (0, 1].
    pub alpha_eps: f32,
    /// T: steps of a stream segment (the stream is redrawn and the utilities snapshotted every
    /// T steps from an episode's reset), 1..=1,000,000 (the authors' 25–128).
    pub segment: u32,
    /// p: β = max(1 − progress/p, 0) is the chance an agent uses its self stream for a segment,
    /// progress = iteration / iterations; in (0, 1e9] (the authors' 0.5).
    pub beta_proportion: f32,
    /// "all" (one self and one team network for every agent) or "group".
    pub share: Share,
    /// The team stream's hidden widths (policy and critic), each in 1..=4096, at least one.
    pub team_hidden: Vec<u32>,
    /// Add the z-scored utilities of every agent of the instance, by index, to the team
    /// stream's input (the authors' CLDE).
    pub full_vector: bool,
    /// [REPRO] S1: the team advantage is each agent's own advantage times its own weight,
    /// standardised, not the welfare-weighted sum over the instance's agents.
    pub self_weighted_advantage: bool,
    /// [REPRO] S3: an agent's utility J is the mean of its last (up to 100) episode returns,
    /// starting from one 0 (the port's deque), and every row of an update is weighted by it.
    pub deque_utility: bool,
    /// [REPRO] S5: the team stream's extra input is the instance's bush statistics [ripe,
    /// blue, red] as fractions of its live bushes (zeros without bushes), the same for every
    /// agent, instead of the recommendation and the agent's standing.
    pub bush_fraction_input: bool,
    /// [REPRO] S6: one stream per episode for all the agents of an instance together, drawn at
    /// the episode's start (no segments).
    pub episode_stream: bool,
    /// [REPRO] S10: each stream's GAE over its rows as one trajectory (time-major, agent-minor;
    /// no episode ends or truncated segments; bootstrap 0), standardised; returns = the
    /// advantage the stream trains on + V.
    pub flat_gae: bool,
}

impl Default for SotoConfig {
    fn default() -> Self {
        Self {
            welfare: SotoWelfare::Ggf,
            ggf_base: 2.0,
            alpha: 0.9,
            alpha_eps: 1e-8,
            segment: 50,
            beta_proportion: 0.5,
            share: Share::All,
            team_hidden: vec![64, 64],
            full_vector: false,
            self_weighted_advantage: false,
            deque_utility: false,
            bush_fraction_input: false,
            episode_stream: false,
            flat_gae: false,
        }
    }
}

impl SotoConfig {
    fn validate(&self) -> Result<(), TrainError> {
        if !(self.ggf_base.is_finite() && self.ggf_base > 1.0 && self.ggf_base <= 1e6) {
            return Err(bad(
                "soto.ggf_base",
                format!("{} is not in (1, 1e6]", self.ggf_base),
            ));
        }
        range_f32("soto.alpha", self.alpha, 0.0, 100.0)?;
        if !(self.alpha_eps.is_finite() && self.alpha_eps > 0.0 && self.alpha_eps <= 1.0) {
            return Err(bad(
                "soto.alpha_eps",
                format!("{} is not in (0, 1]", self.alpha_eps),
            ));
        }
        range_u32("soto.segment", self.segment, 1, 1_000_000)?;
        if !(self.beta_proportion.is_finite()
            && self.beta_proportion > 0.0
            && self.beta_proportion <= 1e9)
        {
            return Err(bad(
                "soto.beta_proportion",
                format!("{} is not in (0, 1e9]", self.beta_proportion),
            ));
        }
        if self.team_hidden.is_empty() || self.team_hidden.iter().any(|&w| !(1..=4096).contains(&w))
        {
            return Err(bad(
                "soto.team_hidden",
                format!("{:?}: need 1 or more widths in 1..=4096", self.team_hidden),
            ));
        }
        Ok(())
    }
}

/// `[fen]`: FEN (Jiang & Lu 2019) as its authors built it (baselines-spec §A4; docs/baselines.md
/// says why each default is what it is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FenConfig {
    /// M: sub-policies, 1..=8. Sub-policy 0 maximises the environment's reward, 1.. the
    /// diversity reward; M = 1 has no controller and is PPO.
    pub subpolicies: u32,
    /// T: steps between the controller's choices (AH 50: 60 choices per 3,000-step episode;
    /// HS 25 decisions of a role), 1..=1,000,000.
    pub macro_steps: u32,
    /// c: the utility at which utilisation min(1, ū/c) saturates, > 0 (AH 5: the largest
    /// one-step reward, the paper's definition; HS 100).
    pub c: f32,
    /// ε of the fair-efficient reward min(1, ū/c) / (ε + |u_i/ū − 1|), > 0 (the authors' 0.1).
    pub eps: f32,
    /// "exact" or "gossip".
    pub consensus: Consensus,
    /// Gossip rounds per step, 1..=1000.
    pub gossip_rounds: u32,
    /// Gossip graph: 0 the complete graph, k ≥ 1 a ring where each agent hears the k nearest
    /// agents on each side (by agent index), 0..=64.
    pub gossip_ring: u32,
    /// "log_prob" (the poster) or "prob" (the authors' code).
    pub diversity_reward: DiversityReward,
    /// Floor of the log-probability diversity reward (ln 1e-6), in -100..=0.
    pub log_floor: f32,
    /// γ_c of the controller's semi-MDP over macro steps, 0..=1 (both authors' codebases: 0,
    /// the controller reward is its own target).
    pub controller_gamma: f32,
    /// λ_c of the controller's GAE (used when γ_c > 0), 0..=1.
    pub controller_lambda: f32,
    /// "all" (AH default, one model for every agent) or "group" (one per AH group or HS role).
    pub share: Share,
    /// Standardise the controller's two extra inputs (δ, η) by running mean and std.
    pub extra_obs_norm: bool,
    /// Entropy coefficient of the diversity sub-policies (the H(A|O) term), 0..=1e6; sub-policy
    /// 0 takes `ppo.ent_coef`.
    pub diversity_entropy: f32,
    /// The controller's hidden widths (ReLU), each in 1..=4096, at least one.
    pub controller_hidden: Vec<u32>,
    /// The controller's entropy coefficient, 0..=1e6.
    pub controller_ent_coef: f32,
    /// The controller's hidden activation: false ReLU (the authors'), true tanh (the reference
    /// port's 10 → 128 → 64 tanh, F13).
    pub controller_tanh: bool,
    /// [REPRO] F1: the controller sees the plain observation, without (δ, η) (HS: without
    /// (η, δ_g)).
    pub controller_plain_input: bool,
    /// [REPRO] F3: the reference port's reward (ū/c) / (ε + |u_i/(ū + ε) − 1|), utilisation
    /// not clipped at 1 (with its c = 1, ε = 1e-6 it explodes when u_i ≈ ū).
    pub unclipped_utilisation: bool,
    /// [REPRO] F2: ū starts at each agent's first reward of the episode and is then only
    /// gossiped, one round on the complete graph (weights 1/(n + 1)) after every T-th step; it
    /// never absorbs later utilities (it tends to the mean first-step reward).
    pub stale_consensus: bool,
    /// [REPRO] F2: the controller's reward is computed once, when the episode ends, from the
    /// final utilities, and every macro step of the episode gets that one value. On HS (F4, the
    /// FEN-HS port's): the day's mean over {impaired, not impaired} patients of
    /// (ū/c) / (ε + |u_g/ū − 1|), ū and u_g the mean ledgers of the day's finished patients
    /// (u_g = 0 for a group without any), 0 when ū ≤ 1e-6.
    pub episode_end_reward: bool,
    /// [REPRO] F6: a diversity sub-policy's reward at every step is the log-probability of
    /// the controller's last choice as stored when it chose, plus `decision_entropy` times the
    /// sub-policy's entropy at that step (so it hardly depends on the sub-policy's actions).
    /// On HS (the FEN-HS port's): the stored log-probability of the hospital's last controller
    /// choice if it was this role's, else 0 (plus the entropy term; the port has none).
    pub decision_logprob_reward: bool,
    /// α_H of `decision_logprob_reward` (the reference port's 0.05), 0..=1e6.
    pub decision_entropy: f32,
    /// [REPRO] F9: each sub-policy's advantages are GAE(γ, λ) over all its rows of the
    /// rollout as one trajectory (time-major, agent-minor; no episode ends, no truncated
    /// segments, the last row bootstrapped with 0), standardised, with returns = the
    /// standardised advantage + V (the reference's `_ppo_step`). On HS (the FEN-HS port's):
    /// the last row bootstrapped with its own value, standardised only over two or more rows,
    /// returns = the raw advantage + V.
    pub flat_gae: bool,
    /// [REPRO] F5: the controller's baseline is its largest logit (no critic: its value loss
    /// is off), its advantages GAE(γ, λ) over its macro rows of all agents flattened in
    /// decision order, bootstrapped with 0, standardised.
    pub maxlogit_baseline: bool,
    /// [REPRO] F7: β_KL of the term β_KL · KL(mean controller distribution ‖ uniform) added
    /// to the controller's loss (over each minibatch's rows), 0..=1e6; 0: none (the port: 0.5).
    pub kl_uniform: f32,
    /// [REPRO] F10: macro boundaries (and the stale gossip) on one global step counter that an
    /// episode's reset does not restart.
    pub global_clock: bool,
    /// [REPRO] F12: evaluation asks the controller for its argmax at every step (no macro
    /// persistence).
    pub argmax_every_step: bool,
    /// Hidden widths of a trunk the controller's policy and value heads share, each in
    /// 1..=4096 (leaky ReLU, as every trunk, and then so are `controller_hidden`'s layers);
    /// empty: separate controller networks of `controller_hidden` (the FEN-HS port: 256, 128
    /// with linear heads, the role networks' shape).
    pub controller_trunk: Vec<u32>,
    /// Standardise the controller's advantages over the rows of each update (unbiased std +
    /// 1e-8; a single row is left as it is), as the FEN-HS port does.
    pub standardized_controller: bool,
    /// [REPRO] HS only, the FEN-HS port's macro process: a boundary is every T-th round of a
    /// hospital's day (its decisions of all roles counted, as the reference's wrapper steps),
    /// where only the role deciding at that round chooses; every role starts the day on
    /// sub-policy 0.
    pub hospital_clock: bool,
    /// Evaluation takes the controller's argmax at its boundaries (F12, FEN-HS's test; the
    /// sub-policies act as `eval --greedy` says).
    pub argmax_controller: bool,
    /// HS only: T at evaluation, 0..=1,000,000; 0: `macro_steps` (the FEN-HS port tests with
    /// 25 after training with 50).
    pub eval_macro_steps: u32,
    /// [REPRO] HS only, F12: at evaluation a role that has not been given a sub-policy today
    /// acts uniformly at random (the port's wrapper plays a random action for an agent that
    /// sends none).
    pub random_until_chosen: bool,
}

impl Default for FenConfig {
    /// AH's.
    fn default() -> Self {
        Self {
            subpolicies: 4,
            macro_steps: 50,
            c: 5.0,
            eps: 0.1,
            consensus: Consensus::Exact,
            gossip_rounds: 10,
            gossip_ring: 2,
            diversity_reward: DiversityReward::LogProb,
            log_floor: -13.815_511,
            controller_gamma: 0.0,
            controller_lambda: 0.95,
            share: Share::All,
            extra_obs_norm: true,
            diversity_entropy: 0.03,
            controller_hidden: vec![128, 128],
            controller_ent_coef: 0.01,
            controller_tanh: false,
            controller_plain_input: false,
            unclipped_utilisation: false,
            stale_consensus: false,
            episode_end_reward: false,
            decision_logprob_reward: false,
            decision_entropy: 0.05,
            flat_gae: false,
            maxlogit_baseline: false,
            kl_uniform: 0.0,
            global_clock: false,
            argmax_every_step: false,
            controller_trunk: vec![],
            standardized_controller: false,
            hospital_clock: false,
            argmax_controller: false,
            eval_macro_steps: 0,
            random_until_chosen: false,
        }
    }
}

impl FenConfig {
    fn validate(&self) -> Result<(), TrainError> {
        range_u32("fen.subpolicies", self.subpolicies, 1, 8)?;
        range_u32("fen.macro_steps", self.macro_steps, 1, 1_000_000)?;
        range_u32("fen.eval_macro_steps", self.eval_macro_steps, 0, 1_000_000)?;
        if !(self.c.is_finite() && self.c > 0.0 && self.c <= 1e9) {
            return Err(bad("fen.c", format!("{} is not in (0, 1e9]", self.c)));
        }
        if !(self.eps.is_finite() && self.eps > 0.0 && self.eps <= 1e9) {
            return Err(bad("fen.eps", format!("{} is not in (0, 1e9]", self.eps)));
        }
        range_u32("fen.gossip_rounds", self.gossip_rounds, 1, 1000)?;
        range_u32("fen.gossip_ring", self.gossip_ring, 0, 64)?;
        range_f32("fen.log_floor", self.log_floor, -100.0, 0.0)?;
        range_f32("fen.controller_gamma", self.controller_gamma, 0.0, 1.0)?;
        range_f32("fen.controller_lambda", self.controller_lambda, 0.0, 1.0)?;
        range_f32("fen.diversity_entropy", self.diversity_entropy, 0.0, 1e6)?;
        range_f32(
            "fen.controller_ent_coef",
            self.controller_ent_coef,
            0.0,
            1e6,
        )?;
        range_f32("fen.decision_entropy", self.decision_entropy, 0.0, 1e6)?;
        range_f32("fen.kl_uniform", self.kl_uniform, 0.0, 1e6)?;
        if self
            .controller_trunk
            .iter()
            .any(|&w| !(1..=4096).contains(&w))
        {
            return Err(bad(
                "fen.controller_trunk",
                format!(
                    "{:?}: need 0 or more widths in 1..=4096",
                    self.controller_trunk
                ),
            ));
        }
        let least = usize::from(self.controller_trunk.is_empty());
        if self.controller_hidden.len() < least
            || self
                .controller_hidden
                .iter()
                .any(|&w| !(1..=4096).contains(&w))
        {
            return Err(bad(
                "fen.controller_hidden",
                format!(
                    "{:?}: need {least} or more widths in 1..=4096{}",
                    self.controller_hidden,
                    if least > 0 {
                        " without a controller_trunk"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(())
    }
}

/// `[ppo]`: the networks and the PPO update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Hidden widths of the shared trunk feeding the policy and value heads, each layer leaky
    /// ReLU (spec §3.2, HS: 256, 128); empty: no trunk, separate networks (spec §3.1, AH).
    /// Widths in 1..=4096.
    pub trunk: Vec<u32>,
    /// Hidden widths of the policy and the value MLPs, after the trunk if any (spec §3.1, AH:
    /// 256, 128, 64; HS: none, linear heads). Widths in 1..=4096; at least one without a trunk.
    pub hidden: Vec<u32>,
    /// Adam learning rate (spec §3.1: 5e-4).
    pub lr: f32,
    /// Discount γ.
    pub gamma: f32,
    /// GAE λ.
    pub gae_lambda: f32,
    /// PPO clip ε.
    pub clip_coef: f32,
    /// K: epochs over the rollout per update.
    pub epochs: u32,
    /// Rows per minibatch (the last one of an epoch may be partial).
    pub minibatch_size: u32,
    /// Value-loss coefficient c_v.
    pub vf_coef: f32,
    /// Entropy coefficient.
    pub ent_coef: f32,
    /// Standardise advantages over each network's rollout (mean 0, unbiased std 1).
    pub normalize_advantages: bool,
    /// Visit each epoch's rows in a fresh seeded order (false: sequential slices, as the
    /// reference).
    pub shuffle_minibatches: bool,
    /// [REPRO] The reference FEN and SOTO ports' update (baselines-spec F8, S7): the epochs'
    /// minibatch losses are averaged at fixed parameters and each network takes ONE Adam step
    /// per update on their mean gradient (the "epochs" change nothing but the average). Off:
    /// one step per minibatch. Not on AH's reference host path (`ah.*` [REPRO] trainer flags).
    pub one_step_per_update: bool,
    /// Clip each Adam step's gradient to this global L2 norm, in 0..=1e6; 0: no clipping (the
    /// FEN-HS port: 0.5).
    pub max_grad_norm: f32,
}

/// `[fair]`: Fair-PPO's fairness notion and penalty (docs/fair-ppo.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FairConfig {
    /// The fairness notion, "dp", "csp" or "cf" ("cf" steps every instance with its
    /// counterfactual twin, for every algorithm: AH a twin world, HS twin hospitals, which
    /// need an even number of instances; an HS default of one instance becomes one pair).
    pub fairness: Fairness,
    /// Weight of the retrospective term (realised group-return gap), 0..=10.
    pub alpha: f32,
    /// Weight of the prospective term (critic-value gap), 0..=10.
    pub beta: f32,
    /// "shaped" (the gaps weight the policy gradient) or "reference" (spec §4).
    pub penalty: Penalty,
}

/// `[ah]`: Allelopathic Harvest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AhConfig {
    /// Steps per episode (instances reset automatically after the last one).
    pub episode_steps: u32,
    /// [REPRO] (spec §1.7, §9 item 3): action misalignment. Every step, each instance's
    /// actions are concatenated as [the actions sampled for its non-sensitive players, in player
    /// order, then those for its sensitive players] and applied to players 0, 1, … in order, so
    /// player k generally acts with another player's action; the rollout still records, per
    /// player, its own observation, the action sampled for it and the reward it actually got.
    /// Also applies to `fairground eval`. false: each player gets its own action.
    pub action_misalignment: bool,
    /// [REPRO] (spec §3.1, §9 item 4): GAE over each group's memory (its rows in time-major,
    /// then instance, then player order) as ONE trajectory: an entry's next value is the next
    /// entry's, the last entry bootstraps with 0, no done masks. false: GAE per player
    /// trajectory with done masks and bootstrap values.
    pub interleaved_gae: bool,
    /// [REPRO] (spec §3.1): returns := the (standardised, with `normalize_advantages`)
    /// advantage + stored value, and inside every minibatch the returns are standardised again
    /// (the minibatch's mean and unbiased std + 1e-8; a one-row minibatch gets 0) before the
    /// value regression. false: returns = raw GAE advantage + stored value.
    pub standardized_returns: bool,
    /// [REPRO] (spec §3.1, §9 item 5): cross-group training. Per update the non-sensitive
    /// network trains on its own memory then on the sensitive memory, and the sensitive network
    /// on its own then on the non-sensitive memory (K epochs each pass); on the other group's
    /// memory the "old" log-probabilities and values are the stored ones, i.e. the other
    /// network's. false: each network trains on its own memory only.
    pub cross_group_training: bool,
    /// [REPRO] The environment rule of spec §1.5 (corrected): moves are always infeasible and
    /// take the substitution path, so no agent ever changes cell (the reference's action names
    /// do not match its move table). On in `reference`, off in `clean`. Unlike the kernel's
    /// other rule flags it is recorded in the config: a run directory made before it existed
    /// (no key) moved, and resumes and evaluates as it was made.
    pub moves_never_succeed: bool,
    /// [REPRO] (spec §4.4, the reference's AH counterfactual scripts): the counterfactual
    /// experiment is two whole worlds, an all-able one (sensitive fraction 0) played entirely
    /// by network 0 and an all-sensitive one (fraction 1) played entirely by network 1, with
    /// independent layouts, each network's memory its own world; where fairground's
    /// counterfactual is the twin of a 50/50 world (every attribute flipped, common random
    /// numbers, rows routed to networks by group in both worlds). Counterfactual runs on AH
    /// only. The reference profile turns it on for PPO's and Fair-PPO's counterfactual runs; a
    /// config file that sets it keeps its value; a run made before the key existed has it off.
    pub cf_reference_worlds: bool,
    /// Evaluation only (`fairground eval --one-layout` sets it for that evaluation): every
    /// test game of both counterfactual worlds starts from one seed, hence one layout, as the
    /// reference's CF test, which re-creates both worlds with seed 42 for every game (its
    /// published CF numbers are conditional on that layout). Counterfactual runs on AH only.
    pub cf_test_one_layout: bool,
}

/// `[hs]`: HospitalSim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HsSection {
    /// Patients per simulated day (reference 300; at most 320).
    pub patients: u16,
    /// Minutes per simulated day (reference 720; at most 1440).
    pub sim_minutes: u16,
    /// [REPRO] (spec §3.2): the reference's importance-ratio broadcasting. In every minibatch
    /// of B rows the ratio is the B × B matrix r_ij = exp(logπ_new(a_j|s_j) − logπ_old(a_i|s_i)),
    /// multiplied by A_j, clipped element-wise, and the surrogate is the mean over all B² pairs
    /// (value and entropy terms unchanged). false: the per-sample ratio.
    pub pairwise_ratio: bool,
    /// Each iteration runs decision rounds until every instance has ended the day it was in
    /// (one update per episode, as the reference, spec §3.2); `rollout_steps` then caps the
    /// rounds of one iteration (a day longer than that is cut and continues in the next). With
    /// `instances = 1`, the reference profile's default, an iteration is exactly one day; with
    /// more, instances that end their day early go on into the next until the last one ends.
    pub whole_days: bool,
    /// [REPRO] (spec §3.2; the reference's HS counterfactual script `fair-PPO-HS/CF`): the value
    /// target is the advantage as the update sees it (standardised, with
    /// `ppo.normalize_advantages`) plus the stored value, not the raw GAE advantage plus the
    /// value. The reference profile turns it on, with `ppo.normalize_advantages`, for Fair-PPO's
    /// and PPO's counterfactual runs only (its DP and CSP scripts use raw advantages); a config
    /// file that sets either key keeps its value. Not for FEN or SOTO (their reference ports'
    /// GAE defines the returns).
    pub standardized_returns: bool,
    /// [REPRO] (spec §2.4, §3.2; the reference's DP, CSP, FEN and SOTO HS scripts): the
    /// arrival-template curriculum. Training days take their peaks from a pool of
    /// `curriculum_templates` two-peak templates drawn once from `curriculum_seed` (not the
    /// run's seed: the reference reseeds its global RNG with 42), sorted by difficulty (peaks ×
    /// total peak minutes): the day of global index g (day d of hospital k of K: d·K + k)
    /// draws uniformly from the easiest `max(1, ⌊0.3·n⌋)` while g < `curriculum_phase_days[0]`,
    /// the easiest `max(1, ⌊0.7·n⌋)` while g < `curriculum_phase_days[1]`, then from all; every
    /// evaluation day draws a fresh template (the test scripts). false: the hospital's single
    /// random peak per day, in training and evaluation. The reference profile turns it on except
    /// for counterfactual runs (the CF scripts never apply their templates); a config file
    /// that sets it keeps its value; a run made before the key existed has it off.
    pub arrival_curriculum: bool,
    /// The curriculum's pool size (reference 5; 1..=64).
    pub curriculum_templates: u8,
    /// The seed of the curriculum's pool (reference 42), independent of the run's seed.
    pub curriculum_seed: u64,
    /// Global day indices where the curriculum's easy and medium phases end (reference
    /// [300, 600]; ascending).
    pub curriculum_phase_days: [u32; 2],
    /// [REPRO] (the reference's HS counterfactual scripts `fair-PPO-HS/CF/train.py`, `test.py`):
    /// both worlds of a counterfactual pair end their day in the round where either world's
    /// ends (`while not done_w0 and not done_w1`), the slower one cut short where it stands
    /// (kernel `PairDays::EitherEnds`), in training and evaluation. Counterfactual runs
    /// (`fair.fairness = "cf"`) on HS only. The reference profile turns it on for PPO's and
    /// Fair-PPO's counterfactual runs; a config file that sets it keeps its value; a run made
    /// before the key existed has it off.
    pub cf_days_end_together: bool,
    /// [REPRO] (the same scripts): one agent set per world, each world's three networks acting
    /// only in their world and each trained on its own world's memory (six networks:
    /// router, dispatcher, manager of the factual worlds, then of the twins), where fairground
    /// shares one network per role across the twins. Counterfactual runs on HS only, with the
    /// reference penalty (`fair.penalty = "reference"`, which only reports P on HS) or PPO.
    /// Defaults as `cf_days_end_together`.
    pub cf_world_agents: bool,
}

/// The flat keys of earlier versions' config files: (flat key, section, key in the section).
pub const LEGACY_KEYS: [(&str, &str, &str); 25] = [
    ("trunk", "ppo", "trunk"),
    ("hidden", "ppo", "hidden"),
    ("lr", "ppo", "lr"),
    ("gamma", "ppo", "gamma"),
    ("gae_lambda", "ppo", "gae_lambda"),
    ("clip_coef", "ppo", "clip_coef"),
    ("epochs", "ppo", "epochs"),
    ("minibatch_size", "ppo", "minibatch_size"),
    ("vf_coef", "ppo", "vf_coef"),
    ("ent_coef", "ppo", "ent_coef"),
    ("normalize_advantages", "ppo", "normalize_advantages"),
    ("shuffle_minibatches", "ppo", "shuffle_minibatches"),
    ("fairness", "fair", "fairness"),
    ("alpha", "fair", "alpha"),
    ("beta", "fair", "beta"),
    ("penalty", "fair", "penalty"),
    ("episode_steps", "ah", "episode_steps"),
    ("ah_action_misalignment", "ah", "action_misalignment"),
    ("ah_interleaved_gae", "ah", "interleaved_gae"),
    ("ah_standardized_returns", "ah", "standardized_returns"),
    ("ah_cross_group_training", "ah", "cross_group_training"),
    ("hs_patients", "hs", "patients"),
    ("hs_sim_minutes", "hs", "sim_minutes"),
    ("hs_pairwise_ratio", "hs", "pairwise_ratio"),
    ("hs_whole_days", "hs", "whole_days"),
];

/// A parsed table with every flat legacy key moved into its section (see [`LEGACY_KEYS`]).
/// A key given both ways is an error (the flat key, and a message naming both).
pub fn sectioned(mut t: toml::Table) -> Result<toml::Table, (&'static str, String)> {
    for (flat, section, key) in LEGACY_KEYS {
        let Some(v) = t.remove(flat) else { continue };
        let sec = t
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(sec) = sec.as_table_mut() else {
            return Err((
                section,
                format!("`{section}` must be a table ([{section}])"),
            ));
        };
        if sec.contains_key(key) {
            return Err((
                flat,
                format!("`{flat}` (the flat layout) and `{section}.{key}` both given: keep one"),
            ));
        }
        sec.insert(key.to_string(), v);
    }
    Ok(t)
}

impl Default for PpoConfig {
    /// AH's (spec §3.1).
    fn default() -> Self {
        Self {
            trunk: vec![],
            hidden: vec![256, 128, 64],
            lr: 5e-4,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_coef: 0.2,
            epochs: 5,
            minibatch_size: 256,
            vf_coef: 1.0,
            ent_coef: 0.01,
            normalize_advantages: true,
            shuffle_minibatches: true,
            one_step_per_update: false,
            max_grad_norm: 0.0,
        }
    }
}

impl Default for FairConfig {
    fn default() -> Self {
        Self {
            fairness: Fairness::Dp,
            alpha: 0.5,
            beta: 0.5,
            penalty: Penalty::Shaped,
        }
    }
}

impl Default for AhConfig {
    fn default() -> Self {
        Self {
            episode_steps: 3000,
            action_misalignment: false,
            interleaved_gae: false,
            standardized_returns: false,
            cross_group_training: false,
            moves_never_succeed: false,
            cf_reference_worlds: false,
            cf_test_one_layout: false,
        }
    }
}

impl Default for HsSection {
    fn default() -> Self {
        Self {
            patients: 300,
            sim_minutes: 720,
            pairwise_ratio: false,
            whole_days: false,
            standardized_returns: false,
            arrival_curriculum: false,
            curriculum_templates: 5,
            curriculum_seed: 42,
            curriculum_phase_days: [300, 600],
            cf_days_end_together: false,
            cf_world_agents: false,
        }
    }
}

impl Default for TrainConfig {
    /// The reference's hyperparameters with a short run: `cargo run --release -- train --env ah`
    /// takes about a minute on a 2-core machine.
    fn default() -> Self {
        Self {
            env: EnvName::Ah,
            algo: Algo::Ppo,
            profile: Profile::Clean,
            instances: 8,
            rollout_steps: 128,
            iterations: 6,
            seed: 0,
            backend: Backend::Auto,
            threads: 2,
            checkpoint_every: 1,
            ppo: PpoConfig::default(),
            fair: FairConfig::default(),
            ah: AhConfig::default(),
            hs: HsSection::default(),
            fen: FenConfig::default(),
            soto: SotoConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The PPO hyperparameters the shaders take, from this config (the rest keep their
    /// defaults, which are the reference's).
    pub fn ppo_hyper(&self) -> PpoHyper {
        PpoHyper {
            clip_coef: self.ppo.clip_coef,
            vf_coef: self.ppo.vf_coef,
            ent_coef: self.ppo.ent_coef,
            lr: self.ppo.lr,
            pairwise_ratio: self.env == EnvName::Hs && self.hs.pairwise_ratio,
            accumulate: self.ppo.one_step_per_update,
            max_grad_norm: self.ppo.max_grad_norm,
            ..PpoHyper::default()
        }
    }

    /// HS defaults (spec §3.2 but for the networks): rollout_steps counts decision rounds (one
    /// decision of every instance each); γ 0.99, λ 0.95, clip 0.2, 10 epochs, minibatch 256,
    /// value coefficient 0.5, entropy 0.01. Per role, separate policy and value MLPs 256 → 128
    /// at lr 3e-4; the reference's shared trunk 256 → 128 with linear heads at lr 1e-5 is the
    /// `reference` profile's ([`Self::defaults`]). With the shared trunk, the value loss
    /// (returns in the thousands, loss ~1e5) dominates the trunk's gradient: at lr 1e-4 the
    /// router still misroutes 44 % of patients after 30 iterations, against 14 % with separate
    /// networks at 3e-4 (README, "Fair-PPO evidence").
    pub fn hs_default() -> Self {
        Self {
            env: EnvName::Hs,
            instances: 8,
            rollout_steps: 256,
            iterations: 4,
            ppo: PpoConfig {
                trunk: vec![],
                hidden: vec![256, 128],
                lr: 3e-4,
                gamma: 0.99,
                gae_lambda: 0.95,
                clip_coef: 0.2,
                epochs: 10,
                minibatch_size: 256,
                vf_coef: 0.5,
                ent_coef: 0.01,
                ..PpoConfig::default()
            },
            fen: FenConfig {
                macro_steps: 25,
                c: 100.0,
                share: Share::Group,
                ..FenConfig::default()
            },
            soto: SotoConfig {
                share: Share::Group,
                segment: 25,
                ..SotoConfig::default()
            },
            ..Self::default()
        }
    }

    /// The defaults of `env`.
    pub fn default_for(env: EnvName) -> Self {
        match env {
            EnvName::Ah => Self::default(),
            EnvName::Hs => Self::hs_default(),
        }
    }

    /// The defaults of `env` under `profile`. `reference` turns every [REPRO] flag on (the AH
    /// ones only act in AH runs, the HS one only in HS runs), visits minibatches as sequential
    /// slices (`shuffle_minibatches = false`), and:
    /// - AH: one instance whose whole episode is one rollout (`instances = 1`,
    ///   `rollout_steps = episode_steps`, 3000), one update per episode, as the reference;
    /// - HS: advantages not standardised (`normalize_advantages = false`; returns are the raw
    ///   advantage + stored value in both profiles); one instance whose whole day is one rollout
    ///   (`instances = 1`, `hs_whole_days`, `rollout_steps` = [`HS_DAY_ROUNDS_CAP`] as the cap);
    ///   spec §3.2's networks, a shared trunk 256 → 128 with linear heads, at lr 1e-5.
    pub fn defaults(env: EnvName, profile: Profile) -> Self {
        Self::defaults_for_algo(env, profile, Algo::Ppo)
    }

    /// [`Self::defaults`] for `algo`: with `reference` on AH, FEN gets the reference FEN-AH
    /// port (baselines-spec A1.3 F1–F13 and spec §3.3/§5.1's values) instead of the PPO
    /// reference trainer's [REPRO] flags, which belong to the reference's PPO update.
    pub fn defaults_for_algo(env: EnvName, profile: Profile, algo: Algo) -> Self {
        let mut c = Self::defaults_ppo(env, profile);
        if profile == Profile::Reference && algo == Algo::Fen {
            c.algo = Algo::Fen;
            match env {
                EnvName::Ah => c.fen_ah_reference(),
                EnvName::Hs => c.fen_hs_reference(),
            }
        }
        c
    }

    /// The reference FEN-HS port (`FEN-HS/trainFEN.py`, `agent_scripts/FENAgent.py`; spec
    /// §5.2): per role a controller and M = 4 sub-policies, each its own network of the role's
    /// shape (a 256 → 128 leaky-ReLU trunk with linear heads) on the plain observation; a
    /// boundary every T = 50 rounds of the hospital's day, where the role deciding chooses;
    /// sub-policy 0 on the environment's reward, the others on the stored log-probability of
    /// the hospital's last controller choice when it was their role's, else 0; one controller
    /// reward per day (F4: c = 100, ε = 0.1, over impaired and not impaired patients) for its
    /// every choice, trained on Monte-Carlo returns (γ 0.99) less its value, standardised; the
    /// sub-policies on flat GAE(0.99, 0.95) bootstrapped with their own last value; lr 1e-5,
    /// clip 0.1, 10 epochs of sequential minibatches of 64, value 0.5, entropy 0.01, gradient
    /// norm 0.5, the B × B ratio (F14) in every network; one hospital, one rollout per day
    /// (the HS PPO reference's environment settings).
    fn fen_hs_reference(&mut self) {
        let p = &mut self.ppo;
        p.lr = 1e-5;
        p.clip_coef = 0.1;
        p.epochs = 10;
        p.minibatch_size = 64;
        p.vf_coef = 0.5;
        p.ent_coef = 0.01;
        p.gamma = 0.99;
        p.gae_lambda = 0.95;
        p.max_grad_norm = 0.5;
        self.fen = FenConfig {
            subpolicies: 4,
            macro_steps: 50,
            c: 100.0,
            eps: 0.1,
            share: Share::Group,
            extra_obs_norm: false,
            diversity_entropy: 0.01,
            controller_trunk: vec![256, 128],
            controller_hidden: vec![],
            controller_ent_coef: 0.01,
            controller_gamma: 0.99,
            controller_lambda: 1.0,
            standardized_controller: true,
            controller_plain_input: true,
            episode_end_reward: true,
            decision_logprob_reward: true,
            decision_entropy: 0.0,
            flat_gae: true,
            hospital_clock: true,
            argmax_controller: true,
            eval_macro_steps: 25,
            random_until_chosen: true,
            ..FenConfig::default()
        };
    }

    /// The reference FEN-AH port (`FEN-AH/trainFEN.py`, `FENAgent.py`): one FEN model for all
    /// players, k = 2 sub-policies, T = 10 on a global clock, c = 1, ε = 1e-6, the controller
    /// 10 → 128 → 64 tanh on the plain observation with the stale consensus, one reward per
    /// episode, the max-logit baseline and β_KL = 0.5; the sub-policies' flat GAE and
    /// decision-log-prob diversity reward (α_H = 0.05); lr 1e-4, clip 0.1, 5 epochs of
    /// sequential minibatches of 256 averaged into one Adam step per episode, value 0.5,
    /// entropy 0.01; evaluation by the controller's argmax at every step.
    fn fen_ah_reference(&mut self) {
        self.ah.action_misalignment = false;
        self.ah.interleaved_gae = false;
        self.ah.standardized_returns = false;
        self.ah.cross_group_training = false;
        let p = &mut self.ppo;
        p.lr = 1e-4;
        p.clip_coef = 0.1;
        p.epochs = 5;
        p.minibatch_size = 256;
        p.vf_coef = 0.5;
        p.ent_coef = 0.01;
        p.gamma = 0.99;
        p.gae_lambda = 0.95;
        p.shuffle_minibatches = false;
        p.one_step_per_update = true;
        self.fen = FenConfig {
            subpolicies: 2,
            macro_steps: 10,
            c: 1.0,
            eps: 1e-6,
            share: Share::All,
            extra_obs_norm: false,
            diversity_entropy: 0.01,
            controller_hidden: vec![128, 64],
            controller_ent_coef: 0.0,
            controller_tanh: true,
            controller_plain_input: true,
            unclipped_utilisation: true,
            stale_consensus: true,
            episode_end_reward: true,
            decision_logprob_reward: true,
            decision_entropy: 0.05,
            flat_gae: true,
            maxlogit_baseline: true,
            kl_uniform: 0.5,
            global_clock: true,
            argmax_every_step: true,
            ..FenConfig::default()
        };
    }

    fn defaults_ppo(env: EnvName, profile: Profile) -> Self {
        let mut c = Self::default_for(env);
        if profile == Profile::Reference {
            c.profile = Profile::Reference;
            c.ah.action_misalignment = true;
            c.ah.moves_never_succeed = true;
            c.ah.interleaved_gae = true;
            c.ah.standardized_returns = true;
            c.ah.cross_group_training = true;
            c.hs.pairwise_ratio = true;
            c.hs.whole_days = true;
            c.hs.arrival_curriculum = true;
            c.ppo.shuffle_minibatches = false;
            match env {
                EnvName::Ah => {
                    c.instances = 1;
                    c.rollout_steps = c.ah.episode_steps;
                }
                EnvName::Hs => {
                    c.ppo.normalize_advantages = false;
                    c.instances = 1;
                    c.rollout_steps = HS_DAY_ROUNDS_CAP;
                    c.ppo.trunk = vec![256, 128];
                    c.ppo.hidden = vec![];
                    c.ppo.lr = 1e-5;
                }
            }
        }
        c
    }

    /// Parse a TOML file's text with the defaults of `env` and `profile` (each when given, else
    /// the file's, else AH's and clean's; see [`Self::defaults`]) for the keys it does not set.
    /// An AH reference config that sets `episode_steps` but not `rollout_steps` gets
    /// `rollout_steps = episode_steps` (one rollout per episode).
    pub fn from_toml_for(
        text: &str,
        path: &str,
        env: Option<EnvName>,
        profile: Option<Profile>,
    ) -> Result<Self, TrainError> {
        Self::from_toml_for_algo(text, path, env, profile, None)
    }

    /// [`Self::from_toml_for`] with the defaults of `algo` (when given, else the file's; see
    /// [`Self::defaults_for_algo`]).
    pub fn from_toml_for_algo(
        text: &str,
        path: &str,
        env: Option<EnvName>,
        profile: Option<Profile>,
        algo: Option<Algo>,
    ) -> Result<Self, TrainError> {
        // Parse once as is: type errors and unknown keys are reported with their line.
        let parsed = Self::from_toml(text, path)?;
        let env = env.unwrap_or(parsed.env);
        let profile = profile.unwrap_or(parsed.profile);
        let algo = algo.unwrap_or(parsed.algo);
        if env == EnvName::Ah && profile == Profile::Clean {
            return Ok(parsed);
        }
        let mut table = toml::Table::try_from(Self::defaults_for_algo(env, profile, algo))
            .expect("config table");
        let file = sectioned(toml::from_str(text).expect("parsed above")).expect("checked above");
        let sets_rollout = file.contains_key("rollout_steps");
        merge(&mut table, file);
        let mut cfg: Self = toml::Value::Table(table)
            .try_into()
            .expect("fields checked above");
        if env == EnvName::Ah && profile == Profile::Reference && !sets_rollout {
            cfg.rollout_steps = cfg.ah.episode_steps;
        }
        Ok(cfg)
    }
}

/// The reference profile's cap on the decision rounds of one HS whole-day rollout: a day of the
/// spec's hospital takes about 3,600 rounds.
pub const HS_DAY_ROUNDS_CAP: u32 = 16_384;

fn bad(field: &'static str, message: String) -> TrainError {
    TrainError::Config { field, message }
}

fn range_u32(field: &'static str, v: u32, lo: u32, hi: u32) -> Result<(), TrainError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(bad(field, format!("{v} is not in {lo}..={hi}")))
    }
}

fn range_f32(field: &'static str, v: f32, lo: f32, hi: f32) -> Result<(), TrainError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(bad(field, format!("{v} is not in {lo}..={hi}")))
    }
}

impl TrainConfig {
    /// Parse a TOML file's text (sections, or the flat layout of earlier versions); a wrong
    /// type or an unknown key names the field and its line.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, TrainError> {
        toml::from_str::<RawConfig>(text).map_err(|e| {
            // The toml error's Display spans several lines (a source excerpt); fold it into one
            // that names the key on the offending line.
            let line_no = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count());
            let key = line_no
                .and_then(|n| text.lines().nth(n))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string());
            TrainError::ConfigFile {
                path: path.to_string(),
                line: line_no.map_or(0, |n| n + 1),
                key: key.unwrap_or_else(|| "?".into()),
                message: e.message().trim().to_string(),
            }
        })?;
        let table = toml::from_str::<toml::Table>(text).expect("parsed above");
        let table = sectioned(table).map_err(|(key, message)| TrainError::ConfigFile {
            path: path.to_string(),
            line: text
                .lines()
                .position(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
                .map_or(0, |n| n + 1),
            key: key.into(),
            message,
        })?;
        Ok(toml::Value::Table(table)
            .try_into()
            .expect("every key and type checked above"))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Check every field against what is allowed (before anything is written), section by
    /// section; an error names the field as `section.key`.
    pub fn validate(&self) -> Result<(), TrainError> {
        range_u32("instances", self.instances, 1, 65_536)?;
        range_u32("rollout_steps", self.rollout_steps, 1, 100_000)?;
        range_u32("iterations", self.iterations, 1, 100_000_000)?;
        range_u32("threads", self.threads, 1, 64)?;
        range_u32("checkpoint_every", self.checkpoint_every, 1, 100_000_000)?;
        self.ppo.validate()?;
        self.fair.validate()?;
        self.ah.validate()?;
        self.hs.validate()?;
        self.fen.validate()?;
        self.soto.validate()?;
        if matches!(self.algo, Algo::Fen | Algo::Soto) {
            self.check_baseline()?;
        }
        if self.ppo.one_step_per_update
            && self.env == EnvName::Ah
            && !crate::repro::uses_store(self)
        {
            return Err(bad(
                "ppo.one_step_per_update",
                "true: not on AH's reference host path (the ah.* [REPRO] trainer flags); set it \
                 false or turn those flags off"
                    .into(),
            ));
        }
        // The reference's counterfactual protocols: each for its environment's CF runs only,
        // some for its PPO and Fair-PPO scripts only.
        let cf = self.fair.fairness == Fairness::Cf;
        let protocols = [
            (
                "ah.cf_reference_worlds",
                self.ah.cf_reference_worlds,
                EnvName::Ah,
                true,
            ),
            (
                "ah.cf_test_one_layout",
                self.ah.cf_test_one_layout,
                EnvName::Ah,
                false,
            ),
            (
                "hs.cf_days_end_together",
                self.hs.cf_days_end_together,
                EnvName::Hs,
                false,
            ),
            (
                "hs.cf_world_agents",
                self.hs.cf_world_agents,
                EnvName::Hs,
                true,
            ),
        ];
        for (field, on, env, ppo_only) in protocols {
            if !on {
                continue;
            }
            if !(cf && self.env == env) {
                let (e, upper) = (env.name(), env.name().to_uppercase());
                return Err(bad(
                    field,
                    format!(
                        "true: a protocol of the reference's {upper} counterfactual scripts; \
                         needs env = \"{e}\" and fair.fairness = \"cf\" (set it false)"
                    ),
                ));
            }
            if ppo_only && !matches!(self.algo, Algo::Ppo | Algo::FairPpo) {
                return Err(bad(
                    field,
                    format!(
                        "true with algo {}: a protocol of the reference's PPO and Fair-PPO \
                         counterfactual scripts; set it false",
                        self.algo.name()
                    ),
                ));
            }
        }
        let cf_hs = cf && self.env == EnvName::Hs;
        if self.hs.cf_world_agents
            && self.algo == Algo::FairPpo
            && self.fair.penalty == Penalty::Shaped
        {
            return Err(bad(
                "hs.cf_world_agents",
                "true with fair.penalty = \"shaped\": the shaped penalty's ledger credit \
                 trains one router network, not one per world; use fair.penalty = \
                 \"reference\" or set it false"
                    .into(),
            ));
        }
        if cf_hs && !self.instances.is_multiple_of(2) {
            return Err(bad(
                "instances",
                format!(
                    "{} with fair.fairness = cf: need an even number (each factual hospital has \
                     its twin)",
                    self.instances
                ),
            ));
        }
        let rows =
            u64::from(self.instances) * u64::from(self.rollout_steps) * u64::from(AGENTS_MAX);
        if rows > 64 << 20 {
            return Err(bad(
                "rollout_steps",
                format!(
                    "instances x rollout_steps x agents = {rows} rows is over the 67,108,864 the \
                     host rollout buffers allow"
                ),
            ));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// FEN and SOTO run on the store trainer path (the environment may follow either profile).
    /// Refused here, before anything is written, rather than silently training something else:
    /// the AH reference ports' flags on HS and FEN-HS's on AH, SOTO-HS with the B × B ratio, SOTO's
    /// reference profile (S4, S9 missing), and AH's [REPRO] trainer flags, which belong to
    /// the reference's PPO update.
    fn check_baseline(&self) -> Result<(), TrainError> {
        let algo = self.algo.to_string();
        if self.env == EnvName::Hs {
            let f = &self.fen;
            let ah_only = [
                ("fen.controller_tanh", f.controller_tanh),
                ("fen.unclipped_utilisation", f.unclipped_utilisation),
                ("fen.stale_consensus", f.stale_consensus),
                ("fen.maxlogit_baseline", f.maxlogit_baseline),
                ("fen.kl_uniform", f.kl_uniform > 0.0),
                ("fen.global_clock", f.global_clock),
                ("fen.argmax_every_step", f.argmax_every_step),
                (
                    "soto.self_weighted_advantage",
                    self.soto.self_weighted_advantage,
                ),
                ("soto.deque_utility", self.soto.deque_utility),
                ("soto.episode_stream", self.soto.episode_stream),
                ("soto.bush_fraction_input", self.soto.bush_fraction_input),
                ("soto.flat_gae", self.soto.flat_gae),
            ];
            if let Some((field, _)) = ah_only.iter().find(|(_, on)| *on) {
                return Err(bad(
                    field,
                    "true: a behaviour of the reference ports on AH, not of FEN-HS's or \
                     SOTO-HS's; on hs set it false"
                        .into(),
                ));
            }
            if self.hs.standardized_returns {
                return Err(bad(
                    "hs.standardized_returns",
                    format!(
                        "true: the value target of the reference's Fair-PPO HS counterfactual \
                         script; {algo}'s update keeps its own returns; set it false"
                    ),
                ));
            }
            if self.hs.pairwise_ratio && self.algo == Algo::Soto {
                return Err(bad(
                    "hs.pairwise_ratio",
                    "true: SOTO-HS with the reference's [REPRO] ratio (S11's router) is not \
                     implemented yet; set it false"
                        .into(),
                ));
            }
            return Ok(());
        }
        let hs_only = [
            ("fen.hospital_clock", self.fen.hospital_clock),
            ("fen.random_until_chosen", self.fen.random_until_chosen),
            ("fen.eval_macro_steps", self.fen.eval_macro_steps > 0),
        ];
        if let Some((field, _)) = hs_only.iter().find(|(_, on)| *on) {
            return Err(bad(
                field,
                "set: a behaviour of the FEN-HS port, on hs only; on ah leave it unset".into(),
            ));
        }
        if self.algo == Algo::Soto && self.profile == Profile::Reference {
            return Err(bad(
                "profile",
                "reference with algo soto: the SOTO-AH port's shared trunk (S4) and trunk-less \
                 checkpoints (S9) are not implemented yet; use profile clean with the [soto] \
                 reference flags (docs/baselines.md)"
                    .into(),
            ));
        }
        let flags = [
            ("ah.action_misalignment", self.ah.action_misalignment),
            ("ah.interleaved_gae", self.ah.interleaved_gae),
            ("ah.standardized_returns", self.ah.standardized_returns),
            ("ah.cross_group_training", self.ah.cross_group_training),
        ];
        if let Some((field, _)) = flags.iter().find(|(_, on)| *on) {
            return Err(bad(
                field,
                format!(
                    "true: {algo} with the reference PPO trainer's [REPRO] flags is not \
                     implemented (they belong to the reference's PPO update); set the four ah.* \
                     trainer flags false"
                ),
            ));
        }
        Ok(())
    }
}

impl PpoConfig {
    fn validate(&self) -> Result<(), TrainError> {
        if self.trunk.iter().any(|&w| !(1..=4096).contains(&w)) {
            return Err(bad(
                "ppo.trunk",
                format!("{:?}: need 0 or more widths in 1..=4096", self.trunk),
            ));
        }
        let least = usize::from(self.trunk.is_empty());
        if self.hidden.len() < least || self.hidden.iter().any(|&w| !(1..=4096).contains(&w)) {
            return Err(bad(
                "ppo.hidden",
                format!(
                    "{:?}: need {least} or more widths in 1..=4096{}",
                    self.hidden,
                    if least > 0 { " without a trunk" } else { "" }
                ),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return Err(bad("ppo.lr", format!("{} is not in (0, 1]", self.lr)));
        }
        range_f32("ppo.gamma", self.gamma, 0.0, 1.0)?;
        range_f32("ppo.gae_lambda", self.gae_lambda, 0.0, 1.0)?;
        range_f32("ppo.clip_coef", self.clip_coef, 0.0, 10.0)?;
        range_u32("ppo.epochs", self.epochs, 1, 1000)?;
        range_u32("ppo.minibatch_size", self.minibatch_size, 1, 65_536)?;
        range_f32("ppo.vf_coef", self.vf_coef, 0.0, 1e6)?;
        range_f32("ppo.ent_coef", self.ent_coef, 0.0, 1e6)?;
        range_f32("ppo.max_grad_norm", self.max_grad_norm, 0.0, 1e6)
    }
}

impl FairConfig {
    fn validate(&self) -> Result<(), TrainError> {
        range_f32("fair.alpha", self.alpha, 0.0, 10.0)?;
        range_f32("fair.beta", self.beta, 0.0, 10.0)
    }
}

impl AhConfig {
    fn validate(&self) -> Result<(), TrainError> {
        range_u32("ah.episode_steps", self.episode_steps, 1, 1_000_000)
    }
}

impl HsSection {
    fn validate(&self) -> Result<(), TrainError> {
        range_u32("hs.patients", u32::from(self.patients), 1, 320)?;
        range_u32("hs.sim_minutes", u32::from(self.sim_minutes), 1, 1440)?;
        range_u32(
            "hs.curriculum_templates",
            u32::from(self.curriculum_templates),
            1,
            fairground_kernel::hs::arrivals::POOL_MAX as u32,
        )?;
        let [easy, medium] = self.curriculum_phase_days;
        if easy > medium {
            return Err(bad(
                "hs.curriculum_phase_days",
                format!(
                    "[{easy}, {medium}]: the easy phase must end no later than the medium one \
                     (ascending day indices)"
                ),
            ));
        }
        Ok(())
    }
}

/// Deep-merge `top` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// What a config file may hold: the sections, and the flat keys of earlier versions (read into
/// their sections, [`LEGACY_KEYS`]). Only parsed to check types and unknown keys straight from
/// the text, so that every error keeps its line; the config itself is built from the table.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    env: Option<EnvName>,
    algo: Option<Algo>,
    profile: Option<Profile>,
    instances: Option<u32>,
    rollout_steps: Option<u32>,
    iterations: Option<u32>,
    seed: Option<u64>,
    backend: Option<Backend>,
    threads: Option<u32>,
    checkpoint_every: Option<u32>,
    ppo: Option<PpoConfig>,
    fair: Option<FairConfig>,
    fen: Option<FenConfig>,
    soto: Option<SotoConfig>,
    ah: Option<AhConfig>,
    hs: Option<HsSection>,
    // The flat layout of earlier versions.
    trunk: Option<Vec<u32>>,
    hidden: Option<Vec<u32>>,
    lr: Option<f32>,
    gamma: Option<f32>,
    gae_lambda: Option<f32>,
    clip_coef: Option<f32>,
    epochs: Option<u32>,
    minibatch_size: Option<u32>,
    vf_coef: Option<f32>,
    ent_coef: Option<f32>,
    normalize_advantages: Option<bool>,
    shuffle_minibatches: Option<bool>,
    fairness: Option<Fairness>,
    alpha: Option<f32>,
    beta: Option<f32>,
    penalty: Option<Penalty>,
    episode_steps: Option<u32>,
    ah_action_misalignment: Option<bool>,
    ah_interleaved_gae: Option<bool>,
    ah_standardized_returns: Option<bool>,
    ah_cross_group_training: Option<bool>,
    hs_patients: Option<u16>,
    hs_sim_minutes: Option<u16>,
    hs_pairwise_ratio: Option<bool>,
    hs_whole_days: Option<bool>,
}

#[cfg(test)]
mod tests {
    //! The profiles' defaults: every [REPRO] flag on for `reference`, off for `clean`, each
    //! overridable, and the HS network sets of both profiles.
    use super::*;

    #[test]
    fn reference_defaults_turn_every_flag_on_and_clean_off() {
        use crate::config::EnvName;
        for env in [EnvName::Ah, EnvName::Hs] {
            let r = TrainConfig::defaults(env, Profile::Reference);
            assert!(
                r.ah.action_misalignment
                    && r.ah.interleaved_gae
                    && r.ah.standardized_returns
                    && r.ah.cross_group_training
                    && r.hs.pairwise_ratio
                    && r.hs.whole_days
                    && !r.ppo.shuffle_minibatches
            );
            assert_eq!(r.profile, Profile::Reference);
            let c = TrainConfig::defaults(env, Profile::Clean);
            assert!(
                !(c.ah.action_misalignment
                    || c.ah.interleaved_gae
                    || c.ah.standardized_returns
                    || c.ah.cross_group_training
                    || c.hs.pairwise_ratio
                    || c.hs.whole_days)
            );
            assert_eq!(c, TrainConfig::default_for(env));
        }
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Reference);
        assert_eq!(
            (hs.ppo.trunk.as_slice(), hs.ppo.hidden.len(), hs.ppo.lr),
            (&[256, 128][..], 0, 1e-5)
        );
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Clean);
        assert_eq!(
            (hs.ppo.trunk.len(), hs.ppo.hidden.as_slice(), hs.ppo.lr),
            (0, &[256, 128][..], 3e-4)
        );
        let ah = TrainConfig::defaults(EnvName::Ah, Profile::Reference);
        assert_eq!((ah.instances, ah.rollout_steps), (1, 3000));
        assert!(
            !ah.ppo_hyper().pairwise_ratio,
            "the pairwise ratio is HS only"
        );
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Reference);
        assert!(hs.ppo_hyper().pairwise_ratio && !hs.ppo.normalize_advantages);
        assert_eq!(
            (hs.instances, hs.rollout_steps),
            (1, crate::config::HS_DAY_ROUNDS_CAP)
        );
        // Each flag is overridable; an AH reference file setting episode_steps only gets
        // one episode per rollout.
        let cfg = TrainConfig::from_toml_for(
            "profile = \"reference\"\nepisode_steps = 50\nah_cross_group_training = false\n",
            "t.toml",
            None,
            None,
        )
        .unwrap();
        assert_eq!(cfg.rollout_steps, 50);
        assert!(!cfg.ah.cross_group_training && cfg.ah.interleaved_gae);
        let cfg = TrainConfig::from_toml_for(
            "episode_steps = 50\nrollout_steps = 10\n",
            "t.toml",
            None,
            Some(Profile::Reference),
        )
        .unwrap();
        assert_eq!((cfg.rollout_steps, cfg.profile), (10, Profile::Reference));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn the_flat_layout_of_earlier_versions_reads_into_the_sections() {
        let flat = "env = \"hs\"\ninstances = 4\nlr = 0.001\ntrunk = [8]\nhidden = []\n\
                    fairness = \"csp\"\nalpha = 0.25\nepisode_steps = 40\n\
                    ah_interleaved_gae = true\nhs_patients = 50\nhs_whole_days = true\n";
        let sectioned = "env = \"hs\"\ninstances = 4\n[ppo]\nlr = 0.001\ntrunk = [8]\n\
                         hidden = []\n[fair]\nfairness = \"csp\"\nalpha = 0.25\n[ah]\n\
                         episode_steps = 40\ninterleaved_gae = true\n[hs]\npatients = 50\n\
                         whole_days = true\n";
        let a = TrainConfig::from_toml(flat, "flat.toml").unwrap();
        let b = TrainConfig::from_toml(sectioned, "sectioned.toml").unwrap();
        assert_eq!(a, b);
        assert_eq!((a.ppo.lr, a.fair.alpha, a.hs.patients), (0.001, 0.25, 50));
        assert!(a.ah.interleaved_gae && a.hs.whole_days);
        // The same with the environment's defaults for the keys not given.
        let a = TrainConfig::from_toml_for(flat, "flat.toml", None, None).unwrap();
        let b = TrainConfig::from_toml_for(sectioned, "s.toml", None, None).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.ppo.epochs, TrainConfig::hs_default().ppo.epochs);
        // Saved configs are sectioned and read back to the same config.
        let text = a.to_toml();
        assert!(text.contains("[ppo]") && text.contains("[hs]") && !text.contains("hs_patients"));
        assert_eq!(TrainConfig::from_toml(&text, "saved.toml").unwrap(), a);
    }

    #[test]
    fn a_key_given_flat_and_in_its_section_is_refused_naming_both() {
        let e = TrainConfig::from_toml("lr = 0.1\n[ppo]\nlr = 0.2\n", "both.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`lr`") && e.contains("`ppo.lr`") && e.contains("line 1"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        // A section's unknown key names the key and its line.
        let e = TrainConfig::from_toml("seed = 1\n[ppo]\nlearning_rate = 0.1\n", "u.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("learning_rate"), "{e}");
    }

    #[test]
    fn validation_names_the_section() {
        let mut c = TrainConfig::default();
        c.ppo.gamma = 1.5;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("ppo.gamma") && e.contains("0..=1"), "{e}");
        let mut c = TrainConfig::hs_default();
        c.hs.sim_minutes = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("hs.sim_minutes")
        );
    }
}
