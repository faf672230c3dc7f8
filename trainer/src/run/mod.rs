//! The run layer: `fairground train`, `fairground eval` and `fairground bench train` as the
//! binary runs them. [`make_trainer`] is the one place that matches environment × algorithm ×
//! backend; everything after it (the train loop with its metrics lines and checkpoints, eval,
//! bench) works on one object-safe [`RunTrainer`].

pub mod bench;
pub mod dir;
pub mod eval;
pub mod packed;
pub mod train;

pub use bench::{BenchRequest, bench};
pub use dir::{Overrides, TrainRequest};
pub use eval::{EvalRequest, eval};
pub use train::train;

use crate::algo::Algorithm;
use crate::algo::fair_ppo::FairPpo;
use crate::algo::fen::Fen;
use crate::algo::fen::hs::FenHs;
use crate::algo::ppo::Ppo;
use crate::algo::soto::Soto;
use crate::algo::soto::hs::SotoHs;
use crate::common::{ActMode, EnvUse, Timing};
use crate::config::{Algo, Backend, EnvName, TrainConfig};
use crate::env::EnvAdapter;
use crate::env::ah::AhAdapter;
use crate::env::hs::HsAdapter;
use crate::error::TrainError;
use crate::io::{ckpt_stem, load_latest_checkpoint, params_hash, read_checkpoint, save_checkpoint};
use crate::repro::{AhReproTrainer, uses_store};
use crate::train_loop::{IterStats, Trainer, TrainerState};
use fairground_shaders::{
    CpuExecutor, Executor, GemmExecutor, GemmPool, GpuContext, GpuExecutor, PeakProbe, Program,
    ShaderError,
};
use std::path::Path;
use std::sync::Arc;

/// What one iteration produced, environment and algorithm erased: the metrics line's body (the
/// environment's numbers, the loss statistics, `penalty`), the decisions trained, the wall
/// time and a one-line progress summary.
pub struct Iteration {
    pub body: serde_json::Map<String, serde_json::Value>,
    pub trained: u64,
    pub wall_s: f64,
    pub summary: String,
}

/// One run's trainer, whatever its environment, algorithm and backend.
pub trait RunTrainer {
    fn iterate(&mut self) -> Result<Iteration, ShaderError>;
    fn iteration(&self) -> u32;
    fn env_steps(&self) -> u64;
    /// The parameters' digest and the first non-finite loss or parameters (naming the
    /// network), from one read of the parameters.
    fn check_params(&mut self) -> Result<crate::net::ParamCheck, ShaderError>;
    /// Write a checkpoint of the current state into run directory `dir`.
    fn save(&mut self, dir: &Path, param_hash: &str) -> Result<(), TrainError>;
    /// Continue from `dir`'s newest checkpoint; the iteration it holds (None: no checkpoint).
    fn resume(&mut self, dir: &Path) -> Result<Option<u32>, TrainError>;
    /// Load only the networks of `dir`'s newest checkpoint (evaluation).
    fn load_latest_nets(&mut self, dir: &Path) -> Result<(), TrainError>;
    /// Load only the networks of `dir`'s checkpoint `iteration`, verified (a replay of an
    /// older policy); the checkpoint's parameter hash.
    fn load_nets_at(&mut self, dir: &Path, iteration: u32) -> Result<String, TrainError>;
    /// Play `episodes` episodes (AH) or days (HS): `eval.json`'s environment numbers;
    /// `progress` gets the episodes finished so far, after every round; `watch` sees the
    /// environment at every step (a replay's recorder; [`crate::train_loop::no_watch`]).
    fn play(
        &mut self,
        episodes: usize,
        mode: ActMode,
        random: bool,
        progress: &mut dyn FnMut(usize),
        watch: &mut crate::train_loop::Watch<'_>,
    ) -> Result<serde_json::Value, ShaderError>;
    fn adapter(&self) -> &str;
    /// The seeds the run derived (the manifest's `seeds`).
    fn seeds(&self) -> serde_json::Value;
    fn timing(&self) -> Timing;
    /// What a trained decision is called in a bench line ("agent_steps", "decisions").
    fn trained_unit(&self) -> &'static str;
}

/// The iteration erased: the environment's metrics and the loss flattened, then `penalty`.
fn erase<M: serde::Serialize>(s: IterStats<M>, summary: String) -> Iteration {
    #[derive(serde::Serialize)]
    struct Body<M> {
        #[serde(flatten)]
        env: M,
        #[serde(flatten)]
        loss: crate::update::LossMetrics,
        penalty: Option<serde_json::Value>,
        #[serde(flatten)]
        algo: serde_json::Map<String, serde_json::Value>,
    }
    let mut algo = serde_json::Map::new();
    let penalty = if s.report_key == "penalty" {
        s.penalty
    } else {
        algo.insert(s.report_key.to_string(), s.penalty.into());
        None
    };
    let body = Body {
        env: s.env,
        loss: s.loss,
        penalty,
        algo,
    };
    let serde_json::Value::Object(body) = serde_json::to_value(&body).expect("json") else {
        unreachable!("a struct serialises to an object")
    };
    Iteration {
        body,
        trained: s.trained,
        wall_s: s.wall_s,
        summary,
    }
}

/// The newest checkpoint of `dir` or a clear refusal when there is none to evaluate.
fn no_checkpoint(dir: &Path) -> TrainError {
    TrainError::Eval {
        dir: dir.display().to_string(),
        why: "no checkpoint to evaluate".into(),
    }
}

/// How an environment's metrics read in a progress line.
pub trait Summary {
    fn summary(&self, rate: f64) -> String;
    const TRAINED_UNIT: &'static str;
}

impl Summary for crate::env::ah::AhMetrics {
    const TRAINED_UNIT: &'static str = "agent_steps";
    fn summary(&self, rate: f64) -> String {
        format!(
            "reward/agent-step {:.5}, {rate:.0} trained agent-steps/s",
            self.mean_reward_per_agent_step
        )
    }
}

impl Summary for crate::env::hs::HsMetrics {
    const TRAINED_UNIT: &'static str = "decisions";
    fn summary(&self, rate: f64) -> String {
        format!(
            "{} days, patients treated {}, {rate:.0} decisions/s",
            self.days_completed,
            self.patients_treated_mean
                .map_or("-".to_string(), |m| format!("{m:.1}"))
        )
    }
}

/// `RunTrainer` for a trainer type `$t` whose checkpoint sidecar is `$state` and whose
/// metrics type is `$metrics`: both trainers have the same inherent methods, so the erased face
/// is written once.
macro_rules! run_trainer {
    ($t:ty, $state:ty, $metrics:ty) => {
        fn iterate(&mut self) -> Result<Iteration, ShaderError> {
            let s = <$t>::iterate(self)?;
            let summary = s.env.summary(s.trained as f64 / s.wall_s);
            Ok(erase(s, summary))
        }
        fn iteration(&self) -> u32 {
            self.iteration
        }
        fn env_steps(&self) -> u64 {
            self.env_steps
        }
        fn check_params(&mut self) -> Result<crate::net::ParamCheck, ShaderError> {
            <$t>::check_params(self)
        }
        fn save(&mut self, dir: &Path, param_hash: &str) -> Result<(), TrainError> {
            let (state, nets) = <$t>::save(self)?;
            save_checkpoint(dir, &state, &nets, param_hash)
        }
        fn resume(&mut self, dir: &Path) -> Result<Option<u32>, TrainError> {
            let Some((state, nets)) = load_latest_checkpoint::<$state>(dir)? else {
                return Ok(None);
            };
            let done = state.iteration;
            self.load(state, &nets)?;
            Ok(Some(done))
        }
        fn load_latest_nets(&mut self, dir: &Path) -> Result<(), TrainError> {
            let (state, nets) =
                load_latest_checkpoint::<$state>(dir)?.ok_or_else(|| no_checkpoint(dir))?;
            self.load_model(state, &nets)
        }
        fn load_nets_at(&mut self, dir: &Path, iteration: u32) -> Result<String, TrainError> {
            let (state, nets) = read_checkpoint::<$state>(dir, iteration).map_err(|why| {
                TrainError::Checkpoint {
                    why: format!("{}: {why}", ckpt_stem(dir, iteration).display()),
                }
            })?;
            let hash = params_hash(&nets);
            self.load_model(state, &nets)?;
            Ok(hash)
        }
        fn play(
            &mut self,
            episodes: usize,
            mode: ActMode,
            random: bool,
            progress: &mut dyn FnMut(usize),
            watch: &mut crate::train_loop::Watch<'_>,
        ) -> Result<serde_json::Value, ShaderError> {
            <$t>::play(self, episodes, mode, random, progress, watch)
        }
        fn adapter(&self) -> &str {
            <$t>::adapter(self)
        }
        fn seeds(&self) -> serde_json::Value {
            serde_json::to_value(<$t>::seeds(self)).expect("json")
        }
        fn timing(&self) -> Timing {
            self.timing
        }
        fn trained_unit(&self) -> &'static str {
            <$metrics as Summary>::TRAINED_UNIT
        }
    };
}

impl<A, G, E> RunTrainer for Trainer<A, G, E>
where
    A: EnvAdapter,
    A::Metrics: Summary,
    G: Algorithm<A>,
    E: Executor + Send,
{
    run_trainer!(Trainer<A, G, E>, TrainerState<A::Snapshot, G::State>, A::Metrics);
}

impl<E: Executor + Send> RunTrainer for AhReproTrainer<E> {
    run_trainer!(
        AhReproTrainer<E>,
        TrainerState<crate::env::ah::AhState, crate::algo::fair_ppo::FairState>,
        crate::env::ah::AhMetrics
    );
}

/// What runs the networks once a backend is opened (cloning shares the pool or the device).
#[derive(Clone)]
pub enum Compute {
    /// The CPU twins (`cpu`).
    Twins,
    /// The twins with the products through `gemm` on these threads (`cpu-gemm`).
    Gemm(GemmPool),
    /// The GPU (`gpu`).
    Gpu(Arc<GpuContext>),
}

/// The backend to use: `auto` becomes `gpu` when a hardware adapter exists, else `cpu-gemm`;
/// `threads`: the `cpu-gemm` backend's threads (the config's `threads`).
pub fn open_backend(backend: Backend, threads: u32) -> Result<(Backend, Compute), TrainError> {
    let gemm = || -> Result<(Backend, Compute), TrainError> {
        Ok((
            Backend::CpuGemm,
            Compute::Gemm(GemmPool::new(threads as usize)?),
        ))
    };
    match backend {
        Backend::Cpu => Ok((Backend::Cpu, Compute::Twins)),
        Backend::CpuGemm => gemm(),
        Backend::Gpu => Ok((
            Backend::Gpu,
            Compute::Gpu(Arc::new(GpuContext::from_env()?)),
        )),
        // A software adapter (lavapipe) is slower than the CPU at the reference's 256-row
        // minibatches, so `auto` takes the gpu backend only on a hardware adapter.
        Backend::Auto => match GpuContext::from_env() {
            Ok(ctx) if ctx.info.device_type != wgpu::DeviceType::Cpu => {
                Ok((Backend::Gpu, Compute::Gpu(Arc::new(ctx))))
            }
            Ok(_) => gemm(),
            Err(ShaderError::NoAdapter { .. }) => gemm(),
            Err(e) => Err(e.into()),
        },
    }
}

/// The peak of the opened backend on one large product through its dense-forward launch
/// (shaders' `peak` module): the issue's `256×256 @ 256×128` on the CPU backends, a product
/// 64 times taller on the GPU (a 16-MFLOP launch is mostly dispatch overhead there).
pub fn measure_peak(
    compute: &Compute,
    seconds: f64,
) -> Result<(fairground_shaders::Peak, PeakProbe), TrainError> {
    let rows = if matches!(compute, Compute::Gpu(_)) {
        16_384
    } else {
        256
    };
    let (program, probe) = PeakProbe::new(rows, 256, 128);
    let peak = match compute {
        Compute::Gpu(ctx) => {
            probe.measure(&mut GpuExecutor::new(ctx.clone(), program)?, seconds, 5)?
        }
        Compute::Gemm(pool) => {
            probe.measure(&mut GemmExecutor::new(program, pool.clone()), seconds, 5)?
        }
        Compute::Twins => probe.measure(&mut CpuExecutor::new(program), seconds, 5)?,
    };
    Ok((peak, probe))
}

/// The trainer of a validated config on the opened backend.
pub fn make_trainer(
    cfg: &TrainConfig,
    env_use: EnvUse,
    compute: Compute,
) -> Result<Box<dyn RunTrainer>, TrainError> {
    match compute {
        Compute::Gpu(ctx) => with_executor(cfg, env_use, move |p| GpuExecutor::new(ctx.clone(), p)),
        Compute::Gemm(pool) => with_executor(cfg, env_use, move |p| {
            Ok(GemmExecutor::new(p, pool.clone()))
        }),
        Compute::Twins => with_executor(cfg, env_use, |p| Ok(CpuExecutor::new(p))),
    }
}

/// The one environment × algorithm match: `$build` gets `$new`, a constructor of the arm's
/// trainer from a config (`|cfg| -> Result<Trainer<A, G, E>, TrainError>`), and makes what the
/// caller needs of it (one trainer, or a pack of several); `$repro` is the AH reference
/// profile's host-side trainer ([`AhReproTrainer`]).
macro_rules! each_trainer {
    ($cfg:expr, $env_use:expr, $make:expr, $repro:expr, |$new:ident| $build:expr) => {{
        match ($cfg.env, $cfg.algo) {
            // The reference profile's [REPRO] memories live on the host (repro.rs).
            (EnvName::Ah, Algo::Ppo | Algo::FairPpo) if !uses_store($cfg) => $repro,
            (EnvName::Ah, Algo::Ppo) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    Trainer::new(cfg, AhAdapter::new(cfg, $env_use)?, Ppo, &$make)
                };
                $build
            }
            (EnvName::Ah, Algo::FairPpo) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    let env = AhAdapter::new(cfg, $env_use)?;
                    let algo = FairPpo::new(cfg, &env, env.slots() * cfg.rollout_steps as usize);
                    Trainer::new(cfg, env, algo, &$make)
                };
                $build
            }
            (EnvName::Ah, Algo::Fen) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    let env = AhAdapter::new(cfg, $env_use)?;
                    let algo = Fen::new(cfg, &env)?;
                    Trainer::new(cfg, env, algo, &$make)
                };
                $build
            }
            (EnvName::Ah, Algo::Soto) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    let env = AhAdapter::new(cfg, $env_use)?;
                    let algo = Soto::new(cfg, &env);
                    Trainer::new(cfg, env, algo, &$make)
                };
                $build
            }
            (EnvName::Hs, Algo::Fen) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    let env = HsAdapter::new(cfg, $env_use);
                    let algo = FenHs::new(cfg, &env)?;
                    Trainer::new(cfg, env, algo, &$make)
                };
                $build
            }
            (EnvName::Hs, Algo::Soto) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    let env = HsAdapter::new(cfg, $env_use);
                    let algo = SotoHs::new(cfg, &env)?;
                    Trainer::new(cfg, env, algo, &$make)
                };
                $build
            }
            (EnvName::Hs, Algo::Ppo) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    Trainer::new(cfg, HsAdapter::new(cfg, $env_use), Ppo, &$make)
                };
                $build
            }
            (EnvName::Hs, Algo::FairPpo) => {
                let $new = |cfg: &TrainConfig| -> Result<_, TrainError> {
                    let env = HsAdapter::new(cfg, $env_use);
                    let algo = FairPpo::new(cfg, &env, env.slots() * cfg.rollout_steps as usize);
                    Trainer::new(cfg, env, algo, &$make)
                };
                $build
            }
        }
    }};
}
pub(crate) use each_trainer;

/// One trainer of `cfg` on executors from `make`.
fn with_executor<E: Executor + Send + 'static>(
    cfg: &TrainConfig,
    env_use: EnvUse,
    make: impl Fn(Program) -> Result<E, ShaderError>,
) -> Result<Box<dyn RunTrainer>, TrainError> {
    Ok(each_trainer!(
        cfg,
        env_use,
        make,
        Box::new(AhReproTrainer::new(cfg, env_use, make)?),
        |new| Box::new(new(cfg)?)
    ))
}
