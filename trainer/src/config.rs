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
    /// `gpu` on a hardware GPU adapter, else `cpu` (a software adapter such as lavapipe is
    /// slower than the CPU twins at 256-row minibatches); the manifest says which was used.
    #[default]
    Auto,
    /// The WGSL kernels through wgpu.
    Gpu,
    /// The kernels' CPU twins.
    Cpu,
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
named_enum!(Algo { Ppo => "ppo", FairPpo => "fair-ppo" });
named_enum!(Fairness { Dp => "dp", Csp => "csp", Cf => "cf" });
named_enum!(Penalty { Shaped => "shaped", Reference => "reference" });
named_enum!(Backend { Auto => "auto", Gpu => "gpu", Cpu => "cpu" });

/// Everything that defines a training run. Unknown keys in a TOML file are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Environment: "ah" or "hs". Fields a config file or flag does not set take the defaults
    /// of that environment ([`TrainConfig::default`] for AH, [`TrainConfig::hs_default`] for HS).
    pub env: EnvName,
    /// Algorithm: "ppo" or "fair-ppo".
    pub algo: Algo,
    /// Fair-PPO: the fairness notion, "dp", "csp" or "cf" ("cf" steps every instance with its
    /// counterfactual twin, for every algorithm: AH a twin world, HS twin hospitals, which
    /// need an even number of instances; an HS default of one instance becomes one pair).
    pub fairness: Fairness,
    /// Fair-PPO: weight of the retrospective term (realised group-return gap), 0..=10.
    pub alpha: f32,
    /// Fair-PPO: weight of the prospective term (critic-value gap), 0..=10.
    pub beta: f32,
    /// Fair-PPO: "shaped" (the gaps weight the policy gradient) or "reference" (spec §4).
    pub penalty: Penalty,
    /// Rule profile of the environment and the trainer: "clean" (the default) or "reference".
    /// The environment follows it; it also sets the defaults of the [REPRO] flags below (on for
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
    /// Worker threads for the kernel and for running the two group networks side by side
    /// (results do not depend on it).
    pub threads: u32,
    /// Steps per AH episode (instances reset automatically after the last one).
    pub episode_steps: u32,
    /// HS: patients per simulated day (reference 300; at most 320).
    pub hs_patients: u16,
    /// HS: minutes per simulated day (reference 720; at most 1440).
    pub hs_sim_minutes: u16,
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
    /// Standardise advantages over each group's rollout (mean 0, unbiased std 1).
    pub normalize_advantages: bool,
    /// Visit each epoch's rows in a fresh seeded order (false: sequential slices, as the
    /// reference).
    pub shuffle_minibatches: bool,
    /// Write a checkpoint every this many iterations (and always after the last).
    pub checkpoint_every: u32,
    /// AH [REPRO] (spec §1.7, §9 item 3): action misalignment. Every step, each instance's
    /// actions are concatenated as [the actions sampled for its non-sensitive players, in player
    /// order, then those for its sensitive players] and applied to players 0, 1, … in order, so
    /// player k generally acts with another player's action; the rollout still records, per
    /// player, its own observation, the action sampled for it and the reward it actually got.
    /// Also applies to `fairground eval`. false: each player gets its own action.
    pub ah_action_misalignment: bool,
    /// AH [REPRO] (spec §3.1, §9 item 4): GAE over each group's memory (its rows in time-major,
    /// then instance, then player order) as ONE trajectory: an entry's next value is the next
    /// entry's, the last entry bootstraps with 0, no done masks. false: GAE per player
    /// trajectory with done masks and bootstrap values.
    pub ah_interleaved_gae: bool,
    /// AH [REPRO] (spec §3.1): returns := the (standardised, with `normalize_advantages`)
    /// advantage + stored value, and inside every minibatch the returns are standardised again
    /// (the minibatch's mean and unbiased std + 1e-8; a one-row minibatch gets 0) before the
    /// value regression. false: returns = raw GAE advantage + stored value.
    pub ah_standardized_returns: bool,
    /// AH [REPRO] (spec §3.1, §9 item 5): cross-group training. Per update the non-sensitive
    /// network trains on its own memory then on the sensitive memory, and the sensitive network
    /// on its own then on the non-sensitive memory (K epochs each pass); on the other group's
    /// memory the "old" log-probabilities and values are the stored ones, i.e. the other
    /// network's. false: each network trains on its own memory only.
    pub ah_cross_group_training: bool,
    /// HS [REPRO] (spec §3.2): the reference's importance-ratio broadcasting. In every minibatch
    /// of B rows the ratio is the B × B matrix r_ij = exp(logπ_new(a_j|s_j) − logπ_old(a_i|s_i)),
    /// multiplied by A_j, clipped element-wise, and the surrogate is the mean over all B² pairs
    /// (value and entropy terms unchanged). false: the per-sample ratio.
    pub hs_pairwise_ratio: bool,
    /// HS: each iteration runs decision rounds until every instance has ended the day it was in
    /// (one update per episode, as the reference, spec §3.2); `rollout_steps` then caps the
    /// rounds of one iteration (a day longer than that is cut and continues in the next). With
    /// `instances = 1`, the reference profile's default, an iteration is exactly one day; with
    /// more, instances that end their day early go on into the next until the last one ends.
    pub hs_whole_days: bool,
}

impl Default for TrainConfig {
    /// The reference's hyperparameters with a short run: `cargo run --release -- train --env ah`
    /// takes about a minute on a 2-core machine.
    fn default() -> Self {
        Self {
            env: EnvName::Ah,
            algo: Algo::Ppo,
            fairness: Fairness::Dp,
            alpha: 0.5,
            beta: 0.5,
            penalty: Penalty::Shaped,
            profile: Profile::Clean,
            instances: 8,
            rollout_steps: 128,
            iterations: 6,
            seed: 0,
            backend: Backend::Auto,
            threads: 2,
            episode_steps: 3000,
            hs_patients: 300,
            hs_sim_minutes: 720,
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
            checkpoint_every: 1,
            ah_action_misalignment: false,
            ah_interleaved_gae: false,
            ah_standardized_returns: false,
            ah_cross_group_training: false,
            hs_pairwise_ratio: false,
            hs_whole_days: false,
        }
    }
}

impl TrainConfig {
    /// The PPO hyperparameters the shaders take, from this config (the rest keep their
    /// defaults, which are the reference's).
    pub fn ppo_hyper(&self) -> PpoHyper {
        PpoHyper {
            clip_coef: self.clip_coef,
            vf_coef: self.vf_coef,
            ent_coef: self.ent_coef,
            lr: self.lr,
            pairwise_ratio: self.env == EnvName::Hs && self.hs_pairwise_ratio,
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
        let mut c = Self::default_for(env);
        if profile == Profile::Reference {
            c.profile = Profile::Reference;
            c.ah_action_misalignment = true;
            c.ah_interleaved_gae = true;
            c.ah_standardized_returns = true;
            c.ah_cross_group_training = true;
            c.hs_pairwise_ratio = true;
            c.hs_whole_days = true;
            c.shuffle_minibatches = false;
            match env {
                EnvName::Ah => {
                    c.instances = 1;
                    c.rollout_steps = c.episode_steps;
                }
                EnvName::Hs => {
                    c.normalize_advantages = false;
                    c.instances = 1;
                    c.rollout_steps = HS_DAY_ROUNDS_CAP;
                    c.trunk = vec![256, 128];
                    c.hidden = vec![];
                    c.lr = 1e-5;
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
        // Parse once as is: type errors and unknown keys are reported with their line.
        let parsed = Self::from_toml(text, path)?;
        let env = env.unwrap_or(parsed.env);
        let profile = profile.unwrap_or(parsed.profile);
        if env == EnvName::Ah && profile == Profile::Clean {
            return Ok(parsed);
        }
        let mut table = toml::Table::try_from(Self::defaults(env, profile)).expect("config table");
        let file: toml::Table = toml::from_str(text).expect("parsed above");
        let sets_rollout = file.contains_key("rollout_steps");
        for (k, v) in file {
            table.insert(k, v);
        }
        let mut cfg: Self = toml::Value::Table(table)
            .try_into()
            .expect("fields checked above");
        if env == EnvName::Ah && profile == Profile::Reference && !sets_rollout {
            cfg.rollout_steps = cfg.episode_steps;
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
    /// Parse a TOML file's text; a wrong type or an unknown key names the field.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, TrainError> {
        toml::from_str(text).map_err(|e| {
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
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Check every field against what is allowed (before anything is written).
    pub fn validate(&self) -> Result<(), TrainError> {
        range_u32("instances", self.instances, 1, 65_536)?;
        range_u32("rollout_steps", self.rollout_steps, 1, 100_000)?;
        range_u32("iterations", self.iterations, 1, 100_000_000)?;
        range_u32("threads", self.threads, 1, 64)?;
        range_u32("episode_steps", self.episode_steps, 1, 1_000_000)?;
        range_u32("hs_patients", u32::from(self.hs_patients), 1, 320)?;
        range_u32("hs_sim_minutes", u32::from(self.hs_sim_minutes), 1, 1440)?;
        if self.trunk.iter().any(|&w| !(1..=4096).contains(&w)) {
            return Err(bad(
                "trunk",
                format!("{:?}: need 0 or more widths in 1..=4096", self.trunk),
            ));
        }
        let least = usize::from(self.trunk.is_empty());
        if self.hidden.len() < least || self.hidden.iter().any(|&w| !(1..=4096).contains(&w)) {
            return Err(bad(
                "hidden",
                format!(
                    "{:?}: need {least} or more widths in 1..=4096{}",
                    self.hidden,
                    if least > 0 { " without a trunk" } else { "" }
                ),
            ));
        }
        range_f32("lr", self.lr, f32::MIN_POSITIVE, 1.0)?;
        range_f32("gamma", self.gamma, 0.0, 1.0)?;
        range_f32("gae_lambda", self.gae_lambda, 0.0, 1.0)?;
        range_f32("clip_coef", self.clip_coef, 0.0, 10.0)?;
        range_u32("epochs", self.epochs, 1, 1000)?;
        range_u32("minibatch_size", self.minibatch_size, 1, 65_536)?;
        range_f32("vf_coef", self.vf_coef, 0.0, 1e6)?;
        range_f32("ent_coef", self.ent_coef, 0.0, 1e6)?;
        range_u32("checkpoint_every", self.checkpoint_every, 1, 100_000_000)?;
        range_f32("alpha", self.alpha, 0.0, 10.0)?;
        range_f32("beta", self.beta, 0.0, 10.0)?;
        if self.fairness == Fairness::Cf
            && self.env == EnvName::Hs
            && !self.instances.is_multiple_of(2)
        {
            return Err(bad(
                "instances",
                format!(
                    "{} with fairness = cf: need an even number (each factual hospital has its \
                     twin)",
                    self.instances
                ),
            ));
        }
        let rows = u64::from(self.instances) * u64::from(self.rollout_steps) * 250;
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
                r.ah_action_misalignment
                    && r.ah_interleaved_gae
                    && r.ah_standardized_returns
                    && r.ah_cross_group_training
                    && r.hs_pairwise_ratio
                    && r.hs_whole_days
                    && !r.shuffle_minibatches
            );
            assert_eq!(r.profile, Profile::Reference);
            let c = TrainConfig::defaults(env, Profile::Clean);
            assert!(
                !(c.ah_action_misalignment
                    || c.ah_interleaved_gae
                    || c.ah_standardized_returns
                    || c.ah_cross_group_training
                    || c.hs_pairwise_ratio
                    || c.hs_whole_days)
            );
            assert_eq!(c, TrainConfig::default_for(env));
        }
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Reference);
        assert_eq!(
            (hs.trunk.as_slice(), hs.hidden.len(), hs.lr),
            (&[256, 128][..], 0, 1e-5)
        );
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Clean);
        assert_eq!(
            (hs.trunk.len(), hs.hidden.as_slice(), hs.lr),
            (0, &[256, 128][..], 3e-4)
        );
        let ah = TrainConfig::defaults(EnvName::Ah, Profile::Reference);
        assert_eq!((ah.instances, ah.rollout_steps), (1, 3000));
        assert!(
            !ah.ppo_hyper().pairwise_ratio,
            "the pairwise ratio is HS only"
        );
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Reference);
        assert!(hs.ppo_hyper().pairwise_ratio && !hs.normalize_advantages);
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
        assert!(!cfg.ah_cross_group_training && cfg.ah_interleaved_gae);
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
}
