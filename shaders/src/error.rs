//! Typed errors at the boundary; every message carries the numbers and says what to do.

/// What can go wrong setting up or running the kernels.
#[derive(Debug, thiserror::Error)]
pub enum ShaderError {
    #[error(
        "no GPU adapter found (backends: {backends}{detail}); install a GPU driver with Vulkan, \
         Metal or DX12 support, or Mesa's CPU Vulkan driver lavapipe \
         (`apt-get install mesa-vulkan-drivers`), or use the cpu backend"
    )]
    NoAdapter { backends: String, detail: String },
    #[error("unknown backend {value:?} in {variable}: expected auto, vulkan, metal or dx12")]
    UnknownBackend {
        variable: &'static str,
        value: String,
    },
    #[error("adapter {adapter:?} refused a device: {detail}")]
    RequestDevice { adapter: String, detail: String },
    #[error("adapter {adapter:?} allows {available} {limit}, the kernels need {needed}")]
    LimitTooLow {
        adapter: String,
        limit: &'static str,
        available: u64,
        needed: u64,
    },
    #[error("buffer {label:?} needs {bytes} bytes, the device allows {limit} bytes per {what}")]
    BufferTooLarge {
        label: String,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },
    #[error(
        "kernel {kernel} needs {workgroups} workgroups, more than the device's {max_per_dimension} \
         x {max_per_dimension}"
    )]
    DispatchTooLarge {
        kernel: &'static str,
        workgroups: u64,
        max_per_dimension: u32,
    },
    #[error("shader {file} failed to build on the device: {message}")]
    Compile { file: &'static str, message: String },
    #[error("writing {words} words into buffer {label:?} of {capacity} words")]
    WriteOutOfBounds {
        label: String,
        words: usize,
        capacity: usize,
    },
    #[error("{what}: expected {expected} values, got {got}")]
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(
        "{values} observation values are not 1 to {batch} whole rows of {width}: a call runs on \
         at most the batch it was built for"
    )]
    RowCount {
        values: usize,
        width: usize,
        batch: usize,
    },
    #[error("this actor-critic was built without a rollout store (use ActorCritic::with_store)")]
    NoStore,
    #[error(
        "fairness cells need a store built with StoreSpec::cells > 0 (and a mix term \
         StoreSpec::segment > 0)"
    )]
    NoFairCells,
    #[error("store_lengths needs a store built with StoreSpec::ragged")]
    NotRagged,
    #[error("store row {row} is out of range: the store has {rows}")]
    StoreRow { row: usize, rows: usize },
    #[error("{rows} store rows in one call: allowed 1 to {batch} (the batch it was built for)")]
    StoreRows { rows: usize, batch: usize },
    #[error("apply_accumulated needs an actor-critic built with PpoHyper::accumulate")]
    NotAccumulating,
    /// A packed actor-critic's shape or call that packing cannot keep bit-identical to the
    /// sets alone: the field and what is allowed.
    #[error("packed actor-critic: {0}")]
    Packing(String),
    #[error("GPU device error: {0}")]
    Device(String),
}
