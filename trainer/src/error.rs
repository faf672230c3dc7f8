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
}

impl TrainError {
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        TrainError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
