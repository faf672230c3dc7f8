//! [`PolicyNet`]: one actor-critic with its rollout store and scratch, the network plumbing that
//! AH's group networks and HS's role networks share (and FEN's or SOTO's networks will).
//!
//! A network's rollout lives in its on-device store (`ActorCritic::with_store`): acting uploads
//! the gathered observations and reads back only the actions; GAE, standardisation, minibatch
//! gathers, the loss, backward passes and Adam run through the [`Executor`]. The host keeps per
//! store row only the decision's reward, its done flag, whether the row was acted this rollout
//! and, per slot, the last row of its sequence (where an episode end puts its done).
//!
//! Store layouts ([`StoreLayout`]): `Dense` (AH) puts slot `s`'s decision of step `t` at row
//! `t * slots + s`, a row no one acted being a hole marked done (exact for GAE, since a slot
//! changes network only at an episode reset); `Ragged` (HS) puts the k-th decision of slot `s`
//! at row `k * slots + s`, each sequence as long as the slot's decisions.

use crate::common::{ActMode, NONE, NetState};
use crate::config::TrainConfig;
use crate::update::{
    ActAt, EpochScratch, LossSums, act_chunks, act_into_store, actor_critic_spec,
    adjust_advantages, bootstrap_store, collect_store_actions, push_argmax, train_stored_epochs,
};
use fairground_kernel::rng::Stream;
use fairground_shaders::ppo::StoreSpec;
use fairground_shaders::{
    ActorCritic, ActorCriticSpec, Executor, PpoHyper, Program, SampleKey, ShaderError,
};

/// Where a network's decisions go in its store (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreLayout {
    /// Row `t * slots + slot`; holes are marked done.
    Dense,
    /// Row `k * slots + slot` for the slot's k-th decision.
    Ragged,
}

/// What a network looks like from the environment: its name, inputs and action components.
#[derive(Clone, Debug, PartialEq)]
pub struct NetShape {
    pub name: &'static str,
    pub obs_width: usize,
    pub action_components: Vec<u32>,
    pub layout: StoreLayout,
}

/// Extra store capacity an algorithm asks for: fairness cells and the per-segment rows of a
/// mix term (see `StoreSpec::cells`, `StoreSpec::segment`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreExtras {
    pub cells: u32,
    pub segment: u32,
}

/// What a network's update uses from its algorithm: per cell the advantage weight and the
/// weight of the mix term (see fairness.wgsl), the mix term itself, and a loss scale. PPO is
/// `NetPlan::default()`: no adjustment, scale 1.
#[derive(Clone, Debug, PartialEq)]
pub struct NetPlan {
    pub weights: Option<Vec<[f32; 2]>>,
    pub mix: Option<Vec<f32>>,
    pub loss_scale: f32,
}

impl Default for NetPlan {
    fn default() -> Self {
        Self {
            weights: None,
            mix: None,
            loss_scale: 1.0,
        }
    }
}

/// One network, its store bookkeeping and its scratch (allocated once).
pub struct PolicyNet<E: Executor> {
    pub ac: ActorCritic<E>,
    pub shape: NetShape,
    /// The hyperparameters it trains with (the config's, as the algorithm tuned them).
    pub hyper: PpoHyper,
    sample_seed: u64,
    pub shuffle: Stream,
    batch: usize,
    slots_total: usize,
    /// Acting scratch: the gathered slots and their observations, then the outputs.
    pub slots: Vec<u32>,
    pub obs: Vec<f32>,
    /// How many of `slots` came from which environment network, in order.
    pub runs: Vec<(usize, usize)>,
    pub actions: Vec<u32>,
    /// Whether the last [`Self::act_stored`] left a chunk for [`Self::collect_actions`].
    acting: bool,
    /// Logits of the last [`Self::act_logits`] (rows x logit width).
    pub logits: Vec<f32>,
    pub logp: Vec<f32>,
    pub values: Vec<f32>,
    /// Store rows of the current act call.
    pub dst: Vec<u32>,
    /// Store rows acted this rollout, in act order (the minibatch order).
    pub rows: Vec<u32>,
    /// Per slot: its decisions this rollout (the ragged store's lengths).
    pub count: Vec<u32>,
    /// Per slot: the last row of its sequence (NONE after an episode end).
    last_row: Vec<u32>,
    /// Per store row: the decision's reward, its done flag, and 0 if acted this rollout else 1.
    pub rewards: Vec<f32>,
    pub dones: Vec<f32>,
    pub valid: Vec<u32>,
    epochs: EpochScratch,
    /// Loss statistics of the current update.
    pub loss: LossSums,
    /// Bytes moved to and from the executor since the last iteration's end.
    pub transfer_bytes: u64,
}

impl<E: Executor> PolicyNet<E> {
    /// A network of `shape` for `slots` store slots and `cfg.rollout_steps` rows per slot,
    /// initialised from `init_seed`; `batch` rows per act call at most. `extras: None` builds
    /// it without a store (the reference profile's host-side memories).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &TrainConfig,
        shape: NetShape,
        slots: usize,
        batch: usize,
        init_seed: u64,
        sample_seed: u64,
        shuffle: Stream,
        extras: Option<StoreExtras>,
        tune: impl FnOnce(&mut ActorCriticSpec, &mut PpoHyper),
        make_executor: &impl Fn(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        let mut spec = actor_critic_spec(
            cfg,
            shape.obs_width as u32,
            shape.action_components.clone(),
            batch as u32,
        );
        let mut hyper = cfg.ppo_hyper();
        tune(&mut spec, &mut hyper);
        let init = spec.init_params(init_seed);
        let (ac, rows) = match extras {
            Some(extras) => {
                let store = StoreSpec {
                    steps: cfg.rollout_steps,
                    slots: slots as u32,
                    ragged: shape.layout == StoreLayout::Ragged,
                    cells: extras.cells,
                    segment: extras.segment,
                };
                let ac = ActorCritic::with_store(spec, hyper, &init, store, make_executor)?;
                (ac, slots * cfg.rollout_steps as usize)
            }
            None => (ActorCritic::new(spec, hyper, &init, make_executor)?, 0),
        };
        Ok(Self {
            ac,
            hyper,
            sample_seed,
            shuffle,
            batch,
            slots_total: slots,
            slots: Vec::with_capacity(slots),
            obs: Vec::with_capacity(slots * shape.obs_width),
            runs: Vec::with_capacity(4),
            logits: Vec::new(),
            actions: Vec::with_capacity(slots * shape.action_components.len()),
            logp: Vec::with_capacity(slots),
            values: Vec::with_capacity(slots),
            dst: Vec::with_capacity(slots),
            rows: Vec::with_capacity(rows),
            count: vec![0; slots],
            last_row: vec![NONE; slots],
            rewards: vec![0.0; rows],
            dones: vec![0.0; rows],
            valid: vec![1; rows],
            epochs: EpochScratch::default(),
            loss: LossSums::default(),
            transfer_bytes: 0,
            acting: false,
            shape,
        })
    }

    /// Action components per decision.
    pub fn components(&self) -> usize {
        self.shape.action_components.len()
    }

    /// Start a rollout: no row acted, every row a hole (done in the dense layout).
    pub fn begin_rollout(&mut self) {
        let hole_done = match self.shape.layout {
            StoreLayout::Dense => 1.0,
            StoreLayout::Ragged => 0.0,
        };
        self.rows.clear();
        self.count.fill(0);
        self.last_row.fill(NONE);
        self.rewards.fill(0.0);
        self.dones.fill(hole_done);
        self.valid.fill(1);
    }

    /// The store rows of the gathered slots' decisions at rollout step `step` (into `dst`).
    pub fn assign_rows(&mut self, step: u32) {
        let n = self.slots_total as u32;
        self.dst.clear();
        for &s in &self.slots {
            let row = match self.shape.layout {
                StoreLayout::Dense => step * n + s,
                StoreLayout::Ragged => {
                    let k = self.count[s as usize];
                    self.count[s as usize] += 1;
                    k * n + s
                }
            };
            self.dst.push(row);
        }
    }

    /// Act on the gathered rows into the store rows of [`Self::assign_rows`], keeping
    /// everything but the actions on the device; the actions are in [`Self::actions`] after
    /// [`Self::collect_actions`] (on the GPU the last chunk's work is held back until then, so
    /// call this for every network first).
    pub fn act_stored(&mut self, iteration: u32, step: u32) -> Result<(), ShaderError> {
        debug_assert_eq!(self.dst.len(), self.slots.len(), "assign_rows first");
        self.rows.extend_from_slice(&self.dst);
        for (&row, &s) in self.dst.iter().zip(&self.slots) {
            self.valid[row as usize] = 0;
            self.dones[row as usize] = 0.0;
            self.last_row[s as usize] = row;
        }
        self.actions.clear();
        let at = self.act_at(iteration, step);
        let w = self.shape.obs_width;
        self.acting = act_into_store(&mut self.ac, at, &self.obs, w, &self.dst, &mut self.actions)?;
        // Observations and store rows up, actions down.
        self.transfer_bytes += (self.dst.len() * (w + 1 + self.components()) * 4) as u64;
        Ok(())
    }

    /// The actions of the last [`Self::act_stored`], into [`Self::actions`].
    pub fn collect_actions(&mut self) -> Result<(), ShaderError> {
        collect_store_actions(
            &mut self.ac,
            std::mem::take(&mut self.acting),
            &mut self.actions,
        )
    }

    /// The reward of this round's decision of every acting slot (`reward[slot]`).
    pub fn record_rewards(&mut self, reward: &[f32]) {
        for (&row, &s) in self.dst.iter().zip(&self.slots) {
            self.rewards[row as usize] = reward[s as usize];
        }
    }

    /// The store row of `slot`'s latest decision in this rollout, unless its episode ended
    /// after it (or it has none).
    pub fn last_row(&self, slot: usize) -> Option<u32> {
        let r = self.last_row[slot];
        (r != NONE).then_some(r)
    }

    /// Slot `slot`'s episode ended: its sequence's last row is done (0 follows it).
    pub fn end_episode(&mut self, slot: usize) {
        let last = &mut self.last_row[slot];
        if *last != NONE {
            self.dones[*last as usize] = 1.0;
            *last = NONE;
        }
    }

    fn act_at(&self, iteration: u32, step: u32) -> ActAt {
        ActAt {
            batch: self.batch,
            seed: self.sample_seed,
            iteration,
            step,
        }
    }

    /// After the last round: the ragged store's lengths, then the values of the gathered
    /// (pending) observations as their slots' bootstrap values.
    pub fn bootstrap(&mut self, iteration: u32, step: u32) -> Result<(), ShaderError> {
        if self.rewards.is_empty() {
            // No store (a network its algorithm drives): nothing to bootstrap.
            return Ok(());
        }
        if self.shape.layout == StoreLayout::Ragged {
            self.ac.store_lengths(&self.count)?;
            self.transfer_bytes += (self.count.len() * 8) as u64;
        }
        let at = self.act_at(iteration, step);
        let w = self.shape.obs_width;
        bootstrap_store(&mut self.ac, at, &self.obs, w, &self.slots)?;
        self.transfer_bytes += (self.slots.len() * (w + 1) * 4) as u64;
        Ok(())
    }

    /// GAE over the store (advantages standardised over this rollout's rows when the config
    /// asks and there are 2+; with `hs.standardized_returns` on HS the returns are then those
    /// advantages + the stored values), after the rollout.
    pub fn advantages(&mut self, cfg: &TrainConfig) -> Result<(), ShaderError> {
        self.loss = LossSums::default();
        let n = self.rows.len();
        if n == 0 {
            return Ok(());
        }
        self.ac.store_advantages(
            &self.rewards,
            &self.dones,
            &self.valid,
            cfg.ppo.gamma,
            cfg.ppo.gae_lambda,
            cfg.ppo.normalize_advantages && n > 1,
        )?;
        if cfg.env == crate::config::EnvName::Hs && cfg.hs.standardized_returns {
            self.ac.store_returns_from_advantages()?;
        }
        self.transfer_bytes += (self.rewards.len() * 12) as u64;
        Ok(())
    }

    /// K epochs of minibatch PPO over this rollout's rows, gathered on the device, with the
    /// plan's advantage transform and loss scale.
    pub fn epochs(&mut self, cfg: &TrainConfig, plan: &NetPlan) -> Result<(), ShaderError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        if let Some(w) = &plan.weights {
            self.transfer_bytes += adjust_advantages(&mut self.ac, w, plan.mix.as_deref())?;
        }
        self.ac.set_loss_scale(plan.loss_scale);
        self.transfer_bytes += train_stored_epochs(
            &mut self.ac,
            &self.rows,
            cfg,
            &mut self.shuffle,
            &mut self.epochs,
            &mut self.loss,
        )?;
        self.ac.finish()
    }

    /// Act on the gathered rows outside the store (evaluation): actions (sampled or greedy),
    /// log-probabilities and values, chunk by chunk.
    pub fn act(&mut self, iteration: u32, step: u32, mode: ActMode) -> Result<(), ShaderError> {
        self.actions.clear();
        self.logp.clear();
        self.values.clear();
        let (w, comps) = (self.shape.obs_width, self.components());
        let choices = self.shape.action_components[0] as usize;
        let n = self.slots.len();
        let (ac, obs, batch) = (&mut self.ac, &self.obs, self.batch);
        let (actions, logp, values, bytes) = (
            &mut self.actions,
            &mut self.logp,
            &mut self.values,
            &mut self.transfer_bytes,
        );
        act_chunks(
            n,
            batch,
            self.sample_seed,
            iteration,
            step,
            |start, end, key| {
                let out = ac.act(&obs[start * w..end * w], &[], &[], key)?;
                // Observations up; actions, log-probabilities, entropies and values back.
                *bytes += ((end - start) * w * 4 + batch * (comps + 3) * 4) as u64;
                match mode {
                    ActMode::Sample => actions.extend_from_slice(&out.actions),
                    ActMode::Greedy => {
                        let logits = ac.logits()?;
                        *bytes += (logits.len() * 4) as u64;
                        push_argmax(&logits, choices, (end - start) * comps, actions);
                    }
                }
                logp.extend_from_slice(&out.logp);
                values.extend_from_slice(&out.values);
                Ok(())
            },
        )
    }

    /// [`Self::act`] that also keeps every row's logits in `logits` (a driven network: FEN's
    /// controller reads its choice probabilities). `step` keys the sampling.
    pub fn act_logits(
        &mut self,
        iteration: u32,
        step: u32,
        mode: ActMode,
    ) -> Result<(), ShaderError> {
        self.actions.clear();
        self.logp.clear();
        self.values.clear();
        self.logits.clear();
        let (w, comps) = (self.shape.obs_width, self.components());
        let choices = self.shape.action_components[0] as usize;
        let lw = self.shape.action_components.iter().sum::<u32>() as usize;
        let (ac, obs, batch) = (&mut self.ac, &self.obs, self.batch);
        let (actions, logp, values, logits, bytes) = (
            &mut self.actions,
            &mut self.logp,
            &mut self.values,
            &mut self.logits,
            &mut self.transfer_bytes,
        );
        act_chunks(
            self.slots.len(),
            batch,
            self.sample_seed,
            iteration,
            step,
            |start, end, key: SampleKey| {
                let out = ac.act(&obs[start * w..end * w], &[], &[], key)?;
                let l = ac.logits()?;
                *bytes += ((end - start) * w * 4 + batch * (comps + 3 + lw) * 4) as u64;
                logits.extend_from_slice(&l[..(end - start) * lw]);
                match mode {
                    ActMode::Sample => actions.extend_from_slice(&out.actions),
                    ActMode::Greedy => {
                        push_argmax(&l, choices, (end - start) * comps, actions);
                    }
                }
                logp.extend_from_slice(&out.logp[..end - start]);
                values.extend_from_slice(&out.values[..end - start]);
                Ok(())
            },
        )
    }

    /// The parameters and Adam state.
    pub fn save(&mut self) -> Result<NetState, ShaderError> {
        Ok(NetState {
            params: self.ac.params()?,
            optimizer: self.ac.optimizer_state()?,
        })
    }

    pub fn restore(&mut self, s: &NetState) -> Result<(), ShaderError> {
        self.ac.restore(&s.params, &s.optimizer)
    }
}

/// What one read of every network's parameters after an update gives: their digest (the
/// checkpoints' `param_hash`) and the first non-finite loss or parameter vector, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamCheck {
    /// Hex digest of every network's parameters, in network order.
    pub hash: String,
    /// "<loss|parameters> (network <name>)"; a non-finite gradient shows up in the parameters
    /// it produces.
    pub non_finite: Option<String>,
}

/// Read every network's parameters once: their digest and the first non-finite value.
pub fn check_params<E: Executor>(nets: &mut [PolicyNet<E>]) -> Result<ParamCheck, ShaderError> {
    let mut h = fairground_kernel::hash::TrajectoryHash::new();
    let mut non_finite = None;
    for net in nets {
        let params = net.ac.params()?;
        if non_finite.is_none() {
            let what = if net.loss.sums.iter().any(|v| !v.is_finite()) {
                Some("loss")
            } else if params.iter().any(|v| !v.is_finite()) {
                Some("parameters")
            } else {
                None
            };
            non_finite = what.map(|w| format!("{w} (network {})", net.shape.name));
        }
        h.write_f32s(&params);
    }
    Ok(ParamCheck {
        hash: h.hex(),
        non_finite,
    })
}

/// Every network's parameters and Adam state, in network order.
pub fn save_all<E: Executor>(nets: &mut [PolicyNet<E>]) -> Result<Vec<NetState>, ShaderError> {
    nets.iter_mut().map(PolicyNet::save).collect()
}

/// Restore every network from a checkpoint's states (refused unless one per network).
pub fn restore_all<E: Executor>(
    nets: &mut [PolicyNet<E>],
    states: &[NetState],
) -> Result<(), crate::error::TrainError> {
    if states.len() != nets.len() {
        return Err(crate::error::TrainError::Checkpoint {
            why: format!(
                "it holds {} networks, this run has {}",
                states.len(),
                nets.len()
            ),
        });
    }
    for (net, s) in nets.iter_mut().zip(states) {
        net.restore(s)?;
    }
    Ok(())
}

/// Restore every network's shuffle stream (refused unless one per network).
pub fn restore_streams<E: Executor>(
    nets: &mut [PolicyNet<E>],
    streams: Vec<Stream>,
) -> Result<(), crate::error::TrainError> {
    if streams.len() != nets.len() {
        return Err(crate::error::TrainError::Checkpoint {
            why: format!(
                "it holds {} networks' streams, this run trains {}",
                streams.len(),
                nets.len()
            ),
        });
    }
    for (net, s) in nets.iter_mut().zip(streams) {
        net.shuffle = s;
    }
    Ok(())
}
