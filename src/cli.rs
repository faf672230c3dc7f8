//! Command-line arguments. Every numeric argument carries its allowed range, so bad input is
//! rejected by the parser with one line that names the argument and the range.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fairground_kernel::Profile;
use fairground_trainer::{Algo, Backend, EnvName, Fairness, Penalty};
use std::str::FromStr;

#[derive(Parser, Debug)]
#[command(
    name = "fairground",
    version,
    about = "Fair multi-agent reinforcement learning: fast deterministic kernels, Fair-PPO on the GPU"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `fairground audit RUN_DIR` or `fairground audit SWEEP_DIR --sample K --seed S`.
#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    /// A run directory, or a sweep directory (with --sample).
    pub dir: std::path::PathBuf,
    /// Audit only the last K iterations, each retrained from the checkpoint before it (the
    /// run must have kept those checkpoints) [default: every iteration, from scratch].
    #[arg(long, value_name = "K", conflicts_with = "all",
          value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub iterations: Option<u32>,
    /// Retrain every iteration from scratch (the default).
    #[arg(long)]
    pub all: bool,
    /// Also re-run the evaluation and compare eval.json (or eval-greedy.json).
    #[arg(long)]
    pub eval: bool,
    /// Audit on this backend; refused (exit 2) unless it is the run's.
    #[arg(long, value_parser = one_of::<Backend>(Backend::NAMES))]
    pub backend: Option<Backend>,
    /// A sweep directory: audit K of its trained runs, chosen by --seed.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sample: Option<u32>,
    /// The seed that chooses the sampled runs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Measure throughput; each bench prints exactly one JSON line on stdout.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Train with PPO or Fair-PPO; writes a run directory (printed on stdout) and can resume it.
    Train(TrainArgs),
    /// Run a trained policy for whole episodes; writes eval.json into the run directory.
    Eval(EvalArgs),
    /// Record one episode (AH) or day (HS) of a run's policy into a replay file, or check a
    /// replay file by re-simulating it (exit 1 at the first round that differs).
    Replay(ReplayArgs),
    /// Re-derive a run (or a sample of a sweep's runs) from its own config and compare every
    /// metrics line, parameter hash and, with --eval, eval.json (exit 0 identical, 1 divergent,
    /// 2 could not audit).
    Audit(AuditArgs),
    /// Turn a replay file into a self-contained HTML player (and, AH, an animated GIF); the
    /// replay is re-simulated and verified first.
    View(ViewArgs),
    /// Plan, run and follow a sweep of runs (one machine, or an array job).
    #[command(subcommand)]
    Sweep(SweepCommand),
    /// A sweep's results: runs.csv and report.md (per configuration, mean over seeds with a
    /// 95 % bootstrap interval), from the runs' eval.json alone.
    Report {
        /// The sweep directory.
        dir: std::path::PathBuf,
        /// Where to write [default: DIR/report].
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// How each grid's best configuration is chosen on the selection seeds.
        #[arg(long, value_enum, default_value = "abs-dp")]
        select: ReportSelect,
        /// How many seeds (the lowest) choose the best configurations; the others report them
        /// [default: half the seeds, at least one]; 0: nothing is selected and every seed
        /// reports (only when every grid has one configuration, as in a replication).
        #[arg(long)]
        selection_seeds: Option<usize>,
    },
}

/// `report --select`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ReportSelect {
    /// The lowest mean |DP|.
    AbsDp,
    /// The highest mean reward.
    Reward,
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Expand a sweep file's axes into numbered runs: DIR/sweep.json and one config per run.
    Plan {
        /// The sweep file ([base] config keys, [axes] lists of values).
        file: std::path::PathBuf,
        /// The sweep directory to write.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Train one run of a planned sweep: skipped if done, resumed if partial.
    Run {
        /// The sweep directory.
        dir: std::path::PathBuf,
        /// The run (with --pack: the pack group) [default: $SLURM_ARRAY_TASK_ID, else
        /// $JOB_COMPLETION_INDEX].
        #[arg(long)]
        index: Option<usize>,
        /// Train the runs whose configs differ only in seed, fair.alpha and fair.beta as
        /// packs of up to K in one process each, 1..=64 (each run's result is unchanged).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        pack: Option<u32>,
    },
    /// Run every unfinished run of a sweep with a local pool of processes.
    Local {
        dir: std::path::PathBuf,
        /// Runs at once (each a `sweep run` process), 1..=64.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        jobs: u32,
        /// Train the runs whose configs differ only in seed, fair.alpha and fair.beta as
        /// packs of up to K in one process each (a job each), 1..=64 (each run's result is unchanged).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        pack: Option<u32>,
    },
    /// Write DIR/slurm.sbatch, an array job with one task per run calling `sweep run`; print
    /// it, and submit it with --submit.
    Slurm {
        dir: std::path::PathBuf,
        /// Slurm partition.
        #[arg(long)]
        partition: Option<String>,
        /// Time limit per run (Slurm's format, e.g. 02:00:00).
        #[arg(long)]
        time: Option<String>,
        /// CPUs per run, 1..=1024.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
        cpus_per_task: u32,
        /// GPUs per run, 0..=64 (0: none requested).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
        gpus_per_task: u32,
        /// Runs at once (the array's %K), 1..=100000 [default: all].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        max_parallel: Option<u32>,
        /// Submit with sbatch (prints the job id).
        #[arg(long)]
        submit: bool,
        /// Train the runs whose configs differ only in seed, fair.alpha and fair.beta as
        /// packs of up to K in one array task each, 1..=64 (each run's result is unchanged).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        pack: Option<u32>,
    },
    /// Write DIR/k8s-job.yaml, a Kubernetes Indexed Job with one completion per run calling
    /// `sweep run` (JOB_COMPLETION_INDEX); print it.
    K8s {
        dir: std::path::PathBuf,
        /// The container image holding the fairground binary.
        #[arg(long, default_value = "fairground:latest")]
        image: String,
        /// A PersistentVolumeClaim holding the sweep directory, mounted at the same path.
        #[arg(long)]
        pvc: Option<String>,
        /// Runs at once (the Job's parallelism), 1..=100000 [default: all].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        max_parallel: Option<u32>,
        /// Train the runs whose configs differ only in seed, fair.alpha and fair.beta as
        /// packs of up to K in one completion each, 1..=64 (each run's result is unchanged).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        pack: Option<u32>,
    },
    /// One line per run: its state and axis values, and the failed runs' error lines.
    Status {
        dir: std::path::PathBuf,
        /// Print the status as one JSON object instead.
        #[arg(long)]
        json: bool,
    },
}

/// A parser for one of a trainer enum's names (`NAMES`, `FromStr`): clap lists the possible
/// values in help and errors, and the names exist only in the trainer.
fn one_of<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Debug,
{
    PossibleValuesParser::new(names).map(|s| s.parse::<T>().expect("a possible value"))
}

/// A penalty weight: a number in 0..=10.
fn parse_weight(s: &str) -> Result<f32, String> {
    let w: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if w.is_finite() && (0.0..=10.0).contains(&w) {
        Ok(w)
    } else {
        Err(format!("{w} is not in 0..=10"))
    }
}

#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Environment.
    #[arg(long, value_parser = one_of::<EnvName>(EnvName::NAMES))]
    pub env: Option<EnvName>,
    /// Learning algorithm.
    #[arg(long, value_parser = one_of::<Algo>(Algo::NAMES))]
    pub algo: Option<Algo>,
    /// Fair-PPO's fairness notion [default: dp]; also chooses the disparities the metrics lead
    /// with (cf runs every HS instance with its twin).
    #[arg(long, value_parser = one_of::<Fairness>(Fairness::NAMES))]
    pub fairness: Option<Fairness>,
    /// Weight of the retrospective term, realised group-return gap, in 0..=10 [default: 0.5].
    #[arg(long, value_parser = parse_weight, allow_hyphen_values = true)]
    pub alpha: Option<f32>,
    /// Weight of the prospective term, critic-value gap, in 0..=10 [default: 0.5].
    #[arg(long, value_parser = parse_weight, allow_hyphen_values = true)]
    pub beta: Option<f32>,
    /// How the penalty enters the update [default: shaped].
    #[arg(long, value_parser = one_of::<Penalty>(Penalty::NAMES))]
    pub penalty: Option<Penalty>,
    /// Rule and trainer profile: clean (default) or reference (the Python reference's [REPRO]
    /// behaviours; their flags default on and are overridable in --config).
    #[arg(long)]
    pub profile: Option<Profile>,
    /// Environment instances stepped together [default: 8].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub instances: Option<u32>,
    /// Steps of every instance per iteration [default: 128].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rollout_steps: Option<u32>,
    /// Iterations in total (rollout + update each) [default: 6].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub iterations: Option<u32>,
    /// Root seed of every random stream [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run directory [default: runs/<env>-<profile>-s<seed>-<time>].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// TOML file with any config fields (flags override it).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Backend of the networks [default: auto].
    #[arg(long, value_parser = one_of::<Backend>(Backend::NAMES))]
    pub backend: Option<Backend>,
    /// Continue the run in --out from its last checkpoint up to --iterations.
    #[arg(long)]
    pub resume: bool,
    /// Train the seeds --seed .. --seed + K together in one process, each into its own run
    /// directory OUT/seed-<seed> (bit-identical to training each alone); PPO and Fair-PPO
    /// train their networks packed, one program for all K.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub seeds: u32,
    /// With --seeds: train each run's networks on their own instead of packed (the
    /// comparison baseline; the outputs are the same).
    #[arg(long)]
    pub no_pack: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The run directory to evaluate (its latest checkpoint).
    pub run_dir: std::path::PathBuf,
    /// Whole episodes to play.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub episodes: u32,
    /// Take the most probable action instead of sampling.
    #[arg(long)]
    pub greedy: bool,
    /// Play uniform random actions instead (the baseline; writes eval-random.json).
    #[arg(long, conflicts_with = "greedy")]
    pub random: bool,
    /// Steps per episode [default: the run's].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub episode_steps: Option<u32>,
    /// Backend of the networks [default: the run's].
    #[arg(long, value_parser = one_of::<Backend>(Backend::NAMES))]
    pub backend: Option<Backend>,
    /// AH: start every test game of both counterfactual worlds from one seed, hence one layout
    /// (the reference's CF test re-creates its worlds with seed 42 for every game).
    #[arg(long)]
    pub one_layout: bool,
}

/// `fairground replay RUN_DIR --out FILE.fgr` or `fairground replay --check FILE.fgr`.
#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The run directory whose policy plays.
    #[arg(required_unless_present = "check", conflicts_with = "check")]
    pub run_dir: Option<std::path::PathBuf>,
    /// The replay file to write.
    #[arg(long, required_unless_present = "check", conflicts_with = "check")]
    pub out: Option<std::path::PathBuf>,
    /// The checkpoint (iteration) whose networks play [default: the newest].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
    pub checkpoint: Option<u32>,
    /// Which episode (AH) or day (HS) of the first instance to record, from 0.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub episode: u32,
    /// Take the most probable action instead of sampling.
    #[arg(long)]
    pub greedy: bool,
    /// Re-simulate this replay file and verify every round's state digests.
    #[arg(long, value_name = "FILE")]
    pub check: Option<std::path::PathBuf>,
    /// Worker threads of the kernel [default: the run's, or the recording's for --check]; the
    /// result does not depend on them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
}

/// `fairground view FILE.fgr --out PAGE.html [--gif OUT.gif]`.
#[derive(Args, Debug, Clone)]
pub struct ViewArgs {
    /// The replay file (from `fairground replay`).
    pub replay: std::path::PathBuf,
    /// Write the HTML player here (one file: no network, the frames embedded).
    #[arg(long, value_name = "PAGE.html", required_unless_present = "gif")]
    pub out: Option<std::path::PathBuf>,
    /// Write the AH episode as an animated GIF here.
    #[arg(long, value_name = "OUT.gif")]
    pub gif: Option<std::path::PathBuf>,
    /// GIF: keep every N-th frame (and the last).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub gif_every: u32,
    /// GIF: pixels per grid cell (3..=32).
    #[arg(long, value_name = "PX", default_value_t = 8)]
    pub gif_scale: u32,
    /// GIF: frames per second (1..=50).
    #[arg(long, value_name = "FPS", default_value_t = 20)]
    pub gif_fps: u32,
    /// Worker threads of the re-simulation [default: the recording's]; frames do not depend
    /// on them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Step environment instances under uniform random actions from a seeded stream.
    Env(EnvBenchArgs),
    /// Time the PPO compute core: forward + sampling, and forward + backward + loss + Adam.
    Shaders(ShadersBenchArgs),
    /// Time PPO training end to end (rollout + update) and split it by phase.
    Train(TrainBenchArgs),
}

#[derive(Args, Debug, Clone)]
pub struct TrainBenchArgs {
    /// Environment (its default config and networks; for hs, steps are decision rounds).
    #[arg(long, value_parser = one_of::<EnvName>(EnvName::NAMES), default_value = "ah")]
    pub env: EnvName,
    /// Environment instances.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub instances: u32,
    /// Backend of the networks.
    #[arg(long, value_parser = one_of::<Backend>(Backend::NAMES), default_value = "auto")]
    pub backend: Backend,
    /// Steps (hs: decision rounds) per iteration.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rollout_steps: u32,
    /// Rows per PPO minibatch (the reference's 256 by default).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub minibatch_size: u32,
    /// Timed iterations (after one warm-up iteration).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub iterations: u32,
    /// Algorithm, with its default settings (fair-ppo: dp, alpha = beta = 0.5).
    #[arg(long, value_parser = one_of::<Algo>(Algo::NAMES), default_value = "ppo")]
    pub algo: Algo,
    /// Profile: clean, or reference (its defaults; on AH, PPO and Fair-PPO train each group
    /// network on both groups' memories, the reference's work per trained agent-step).
    #[arg(long, default_value = "clean")]
    pub profile: Profile,
    /// Worker threads of the kernel and of cpu-gemm's products [default: the config's, 2];
    /// the trained bits do not depend on them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: Option<u32>,
    /// Train K seeds together, as `train --seeds K` does (the line counts all K runs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub seeds: u32,
    /// With --seeds: every network trains run by run (what packing is measured against).
    #[arg(long)]
    pub no_pack: bool,
}

#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct EnvBenchArgs {
    /// Which environment to step.
    #[arg(long, value_parser = one_of::<EnvName>(EnvName::NAMES))]
    pub env: EnvName,
    /// Number of independent instances stepped together.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub instances: u32,
    /// Steps per instance (AH).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub steps: u32,
    /// Simulated days per instance (HS).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub days: u32,
    /// Worker threads (results are identical for any value).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
    /// Root seed of every random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rule profile: clean (the paper's rules) or reference (the Python code's behaviour).
    #[arg(long, default_value = "clean")]
    pub profile: Profile,
    /// Add what happened inside the steps to the line, each a mean with its standard error, to
    /// hold a profile against the reference code (tools/refcompare/). AH, over instances:
    /// substitutions, executed actions, outcomes, movers, frozen agents, ripeness, the sensitive
    /// agents' share of the reward. HS, over each instance's first --days days: rewards and
    /// decisions per role, escort wait and travel, routing outcomes, ward wait, exits, ledger
    /// means by impairment and priority, the ledgers' DP. Same trajectory as without.
    #[arg(long)]
    pub stats: bool,
    /// AH: the share of sensitive agents, 0..=1 (0 and 1 are the reference's counterfactual
    /// worlds; default 0.5).
    #[arg(long)]
    pub sensitive_fraction: Option<f64>,
    /// AH: steps per episode, 1..=1,000,000 (default 3000; the reference's test scripts 1500).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub episode_steps: Option<u32>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputeBackend {
    /// WGSL kernels through wgpu (Vulkan, Metal or DX12; FAIRGROUND_BACKEND chooses).
    Gpu,
    /// The kernels' CPU twins, single-threaded.
    Cpu,
    /// The twins with the matrix products through the gemm crate, on 2 threads.
    #[value(name = "cpu-gemm")]
    CpuGemm,
}

fn parse_width(s: &str) -> Result<u32, String> {
    let w: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a width"))?;
    if (1..=4096).contains(&w) {
        Ok(w)
    } else {
        Err(format!("width {w} is not in 1..=4096"))
    }
}

#[derive(Args, Debug, Clone)]
pub struct ShadersBenchArgs {
    /// Which backend runs the kernels.
    #[arg(long, value_enum, default_value = "gpu")]
    pub backend: ComputeBackend,
    /// Rows per forward call and per minibatch.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub batch: u32,
    /// Hidden widths of the policy and value MLPs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256,128,64", value_parser = parse_width)]
    pub hidden: Vec<u32>,
    /// Observation width.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub obs: u32,
    /// Number of discrete actions (one categorical head).
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub actions: u32,
}
