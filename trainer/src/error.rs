//! Typed errors at the trainer's boundary; every message is one line that names the field or
//! the file and says what is allowed.

use fairground_shaders::ShaderError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config field `{field}`: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("config file {path}, line {line}, field `{key}`: {message}")]
    ConfigFile {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error(
        "run directory {0} already exists: pass --resume to continue it, or choose another --out"
    )]
    RunDirExists(String),
    #[error("cannot resume {dir}: {why}")]
    Resume { dir: String, why: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Shader(#[from] ShaderError),
    #[error("environment parameter `{}`: {}", .0.field, .0.message)]
    Param(#[from] fairground_kernel::ah::ParamError),
    #[error("checkpoint: {why}")]
    Checkpoint { why: String },
    /// Training produced a non-finite loss or parameters; the run stopped before writing that
    /// iteration (exit code 3), resumable from its last good checkpoint.
    #[error("non-finite {what} at iteration {iteration}; last good checkpoint: {last_good}")]
    NonFinite {
        what: String,
        iteration: u32,
        last_good: String,
    },
    /// `eval` cannot evaluate the directory.
    #[error("cannot evaluate {dir}: {why}")]
    Eval { dir: String, why: String },
    /// A stop was asked for (Ctrl-C, SIGTERM); the run saved a checkpoint (exit code 130).
    #[error(
        "interrupted at iteration {iteration}: resume with `fairground train --out {dir} --resume`"
    )]
    Interrupted { dir: String, iteration: u32 },
    /// A stop was asked for while a sweep's pack group trained; its runs saved checkpoints
    /// (exit code 130).
    #[error("interrupted at iteration {iteration}: rerun `{command}` to continue")]
    Stopped { command: String, iteration: u32 },
    /// `replay` cannot record from a directory, or refuses a replay file (not one, another
    /// version, damaged, inconsistent).
    #[error("replay {path}: {why}")]
    Replay { path: String, why: String },
    /// `eval` computed its result but could not write it (the result is printed anyway).
    #[error("{path}: {message} (the evaluation is printed on stdout)")]
    EvalNotSaved {
        path: String,
        message: String,
        text: String,
    },
}

impl TrainError {
    /// A stop that was asked for (Ctrl-C, SIGTERM), not a failure: the run resumes.
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            TrainError::Interrupted { .. } | TrainError::Stopped { .. }
        )
    }
}

impl TrainError {
    /// The process exit code: 3 for a non-finite run, 1 otherwise (2 is the CLI's usage error).
    pub fn exit_code(&self) -> u8 {
        match self {
            TrainError::NonFinite { .. } => 3,
            TrainError::Interrupted { .. } | TrainError::Stopped { .. } => 130,
            _ => 1,
        }
    }
}

impl TrainError {
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        TrainError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
