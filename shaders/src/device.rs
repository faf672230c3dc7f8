//! Device setup the trainer reuses: pick an adapter (Vulkan, Metal or DX12; `FAIRGROUND_BACKEND`
//! or wgpu's own `WGPU_BACKEND` chooses), request the adapter's limits explicitly, build every
//! pipeline once, and return a typed error that says how to get an adapter when there is none.

use crate::error::ShaderError;
use crate::registry::{Access, Family, Kernel, max_storage_bindings};
use std::num::NonZeroU64;

/// Which graphics API to use. `Auto` tries Vulkan, Metal and DX12 (whichever exist here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    #[default]
    Auto,
    Vulkan,
    Metal,
    Dx12,
}

impl BackendChoice {
    pub fn parse(variable: &'static str, value: &str) -> Result<Self, ShaderError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "vulkan" | "vk" => Ok(Self::Vulkan),
            "metal" | "mtl" => Ok(Self::Metal),
            "dx12" | "d3d12" => Ok(Self::Dx12),
            _ => Err(ShaderError::UnknownBackend {
                variable,
                value: value.to_string(),
            }),
        }
    }

    /// `FAIRGROUND_BACKEND` if set, else `WGPU_BACKEND` if set, else `Auto`.
    pub fn from_env() -> Result<Self, ShaderError> {
        for variable in ["FAIRGROUND_BACKEND", "WGPU_BACKEND"] {
            if let Ok(value) = std::env::var(variable) {
                return Self::parse(variable, &value);
            }
        }
        Ok(Self::Auto)
    }

    pub fn backends(self) -> wgpu::Backends {
        match self {
            Self::Auto => wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
            Self::Vulkan => wgpu::Backends::VULKAN,
            Self::Metal => wgpu::Backends::METAL,
            Self::Dx12 => wgpu::Backends::DX12,
        }
    }
}

struct KernelPipeline {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

/// One device with every kernel's pipeline built. Share it (`Arc`) between executors.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with (the adapter's own).
    pub limits: wgpu::Limits,
    kernels: Vec<KernelPipeline>,
    /// Pipelines of the subgroup variants of the dense matrix kernels, in the order of
    /// [`SUBGROUP_KERNELS`]; empty unless [`GpuContext::subgroup_dense`].
    subgroup_kernels: Vec<KernelPipeline>,
    /// Command buffers that executors on this device recorded with
    /// [`crate::Executor::queue_read`] and hold back: the next submission takes them all.
    pub(crate) held: std::sync::Mutex<Vec<wgpu::CommandBuffer>>,
}

/// A variant of a dense kernel in `wgsl_subgroup/dense_subgroup.wgsl`.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// The kernel it stands in for: same bindings and uniform, same values in the same order.
    pub kernel: Kernel,
    pub entry_point: &'static str,
    /// Storage bindings (1-based) it reads or writes as arrays of vec4.
    pub vec4_bindings: &'static [u32],
    pub workgroup_size: u32,
    /// Only for launches whose operands start on vec4 boundaries (see gpu_exec's
    /// `aligned_operands`); the executor prefers it there over the kernel's general variant.
    pub aligned: bool,
}

/// The dense kernels that have a variant: the matrix kernels sharing operands through
/// subgroups (one subgroup per workgroup), the elementwise ones with vec4 loads. See that file
/// for when the executor uses them.
pub const SUBGROUP_KERNELS: [Variant; 7] = [
    Variant {
        kernel: Kernel::DenseForward,
        entry_point: "dense_forward_sg",
        vec4_bindings: &[1, 2],
        workgroup_size: SUBGROUP_WIDTH,
        aligned: false,
    },
    Variant {
        kernel: Kernel::InputGrad,
        entry_point: "input_grad_sg",
        vec4_bindings: &[1, 2],
        workgroup_size: SUBGROUP_WIDTH,
        aligned: false,
    },
    Variant {
        kernel: Kernel::WeightGradPartial,
        entry_point: "weight_grad_partial_sg",
        vec4_bindings: &[1, 2],
        workgroup_size: SUBGROUP_WIDTH,
        aligned: false,
    },
    Variant {
        kernel: Kernel::InputGrad,
        entry_point: "input_grad_sg_aligned",
        vec4_bindings: &[1, 2],
        workgroup_size: SUBGROUP_WIDTH,
        aligned: true,
    },
    Variant {
        kernel: Kernel::WeightGradPartial,
        entry_point: "weight_grad_partial_sg_aligned",
        vec4_bindings: &[1, 2],
        workgroup_size: SUBGROUP_WIDTH,
        aligned: true,
    },
    Variant {
        kernel: Kernel::ActGrad,
        entry_point: "act_grad_v4",
        vec4_bindings: &[1, 2, 3],
        workgroup_size: 64,
        aligned: false,
    },
    Variant {
        kernel: Kernel::WeightGradReduce,
        entry_point: "weight_grad_reduce_v4",
        vec4_bindings: &[1],
        workgroup_size: 64,
        aligned: false,
    },
];

/// Source of the subgroup variants. It lives outside `shaders/wgsl/` because it needs naga's
/// subgroup capability, which the portable kernels must not use.
pub const DENSE_SUBGROUP_SOURCE: &str = include_str!("../wgsl_subgroup/dense_subgroup.wgsl");

/// The only subgroup width the variants are written for: the lanes of one 256-bit SIMD
/// register of f32 (llvmpipe on AVX2). Each workgroup of the variants is one subgroup.
pub const SUBGROUP_WIDTH: u32 = 8;

/// `FAIRGROUND_DENSE_KERNELS=tiled` keeps the portable tiled kernels on every device (for
/// comparing the two, or to rule the variants out).
fn subgroup_kernels_allowed() -> bool {
    std::env::var("FAIRGROUND_DENSE_KERNELS").map_or(true, |v| v.trim() != "tiled")
}

impl GpuContext {
    /// Choose the backend from the environment (see [`BackendChoice::from_env`]).
    pub fn from_env() -> Result<Self, ShaderError> {
        Self::new(BackendChoice::from_env()?)
    }

    pub fn new(choice: BackendChoice) -> Result<Self, ShaderError> {
        Self::with_limits(choice, |_| {})
    }

    /// Like [`GpuContext::new`], with the adapter's limits adjusted by `adjust` before the
    /// device is requested (e.g. a small `max_storage_buffer_binding_size` to exercise
    /// chunking; limits may only be lowered).
    pub fn with_limits(
        choice: BackendChoice,
        adjust: impl FnOnce(&mut wgpu::Limits),
    ) -> Result<Self, ShaderError> {
        Self::with_options(choice, adjust, subgroup_kernels_allowed())
    }

    /// Like [`GpuContext::with_limits`]; `subgroup_dense: false` keeps the tiled dense kernels
    /// even where the subgroup variants could run (see [`GpuContext::subgroup_dense`]).
    pub fn with_options(
        choice: BackendChoice,
        adjust: impl FnOnce(&mut wgpu::Limits),
        subgroup_dense: bool,
    ) -> Result<Self, ShaderError> {
        let backends = choice.backends();
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| ShaderError::NoAdapter {
            backends: format!("{backends:?}"),
            detail: format!(": {e}"),
        })?;
        let info = adapter.get_info();
        let mut limits = adapter.limits();
        adjust(&mut limits);
        let needed = u64::from(max_storage_bindings());
        if u64::from(limits.max_storage_buffers_per_shader_stage) < needed {
            return Err(ShaderError::LimitTooLow {
                adapter: info.name.clone(),
                limit: "storage buffers per shader stage",
                available: u64::from(limits.max_storage_buffers_per_shader_stage),
                needed,
            });
        }
        // The subgroup variants run only where every subgroup is exactly SUBGROUP_WIDTH wide:
        // they broadcast from fixed lanes 0..8 and make each workgroup one subgroup.
        let subgroup_dense = subgroup_dense
            && adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == SUBGROUP_WIDTH
            && info.subgroup_max_size == SUBGROUP_WIDTH;
        let required_features = if subgroup_dense {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fairground"),
            required_features,
            // Explicitly the adapter's limits: wgpu's defaults cap storage bindings at 128 MiB.
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| ShaderError::RequestDevice {
            adapter: info.name.clone(),
            detail: e.to_string(),
        })?;
        let kernels = build_pipelines(&device)?;
        let subgroup_kernels = if subgroup_dense {
            build_subgroup_pipelines(&device)?
        } else {
            Vec::new()
        };
        Ok(Self {
            device,
            queue,
            info,
            limits,
            kernels,
            subgroup_kernels,
            held: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The adapter's name (e.g. "llvmpipe (LLVM 19.1.7, 256 bits)").
    pub fn adapter_name(&self) -> String {
        self.info.name.clone()
    }

    /// Whether the subgroup variants of the dense matrix kernels are built (the device has
    /// subgroups of exactly [`SUBGROUP_WIDTH`] lanes and they were not turned off). The executor
    /// then runs ungrouped, unchunked dense launches with them.
    pub fn subgroup_dense(&self) -> bool {
        !self.subgroup_kernels.is_empty()
    }

    /// The pipeline and bind group layout of `kernel`'s variant, when it has one and it is
    /// built: the aligned one when `aligned` and there is one, else the general one. (Both
    /// variants of a kernel have the same bind group layout.)
    pub(crate) fn subgroup_pipeline(
        &self,
        kernel: Kernel,
        aligned: bool,
    ) -> Option<(&wgpu::ComputePipeline, &wgpu::BindGroupLayout)> {
        let find = |want: bool| {
            SUBGROUP_KERNELS
                .iter()
                .position(|v| v.kernel == kernel && v.aligned == want)
        };
        let i = if aligned {
            find(true).or_else(|| find(false))
        } else {
            find(false)
        }?;
        self.subgroup_kernels
            .get(i)
            .map(|k| (&k.pipeline, &k.layout))
    }

    pub(crate) fn pipeline(
        &self,
        kernel: Kernel,
    ) -> (&wgpu::ComputePipeline, &wgpu::BindGroupLayout) {
        let k = &self.kernels[kernel as usize];
        (&k.pipeline, &k.layout)
    }

    /// Workgroup counts for `threads` invocations, folded into two dimensions when one dimension
    /// would exceed `max_compute_workgroups_per_dimension` (e.g. 65537 rows x 256 units).
    pub fn dispatch_size(&self, kernel: Kernel, threads: u64) -> Result<[u32; 3], ShaderError> {
        dispatch_size(
            kernel,
            threads,
            self.limits.max_compute_workgroups_per_dimension,
        )
    }
}

/// See [`GpuContext::dispatch_size`]. Shaders linearise `(wg.y * nwg.x + wg.x) * 64 + lid` and
/// bound-check, so the fold may launch a few idle workgroups.
pub fn dispatch_size(
    kernel: Kernel,
    threads: u64,
    max_per_dimension: u32,
) -> Result<[u32; 3], ShaderError> {
    let workgroups = threads.div_ceil(u64::from(kernel.workgroup_size()));
    if workgroups == 0 {
        return Ok([0, 0, 0]);
    }
    let max = u64::from(max_per_dimension);
    let x = workgroups.min(max);
    let y = workgroups.div_ceil(x);
    if y > max {
        return Err(ShaderError::DispatchTooLarge {
            kernel: kernel.entry_point(),
            workgroups,
            max_per_dimension,
        });
    }
    Ok([x as u32, y as u32, 1])
}

fn build_pipelines(device: &wgpu::Device) -> Result<Vec<KernelPipeline>, ShaderError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let modules: Vec<(Family, wgpu::ShaderModule)> = Family::ALL
        .iter()
        .map(|&family| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(family.file_name()),
                source: wgpu::ShaderSource::Wgsl(family.source().into()),
            });
            (family, module)
        })
        .collect();
    let mut kernels = Vec::with_capacity(Kernel::ALL.len());
    for (i, &kernel) in Kernel::ALL.iter().enumerate() {
        assert_eq!(
            kernel as usize, i,
            "Kernel::ALL must list kernels in declaration order"
        );
        let module = &modules
            .iter()
            .find(|(f, _)| *f == kernel.family())
            .expect("every family has a module")
            .1;
        kernels.push(kernel_pipeline(
            device,
            module,
            kernel,
            kernel.entry_point(),
            &[],
        ));
    }
    if let Some(error) = pollster::block_on(scope.pop()) {
        return Err(ShaderError::Compile {
            file: "(one of the registry's WGSL files)",
            message: error.to_string(),
        });
    }
    Ok(kernels)
}

/// The pipeline of `entry` in `module` with `kernel`'s bindings: its uniform at binding 0, its
/// storage bindings from 1 (read-only or not, each at least one element); the bindings listed in
/// `vec4_bindings` are used as arrays of vec4 and need at least 16 bytes.
fn kernel_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    kernel: Kernel,
    entry: &str,
    vec4_bindings: &[u32],
) -> KernelPipeline {
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: NonZeroU64::new(kernel.uniform_size()),
        },
        count: None,
    }];
    for (b, access) in kernel.storage().iter().enumerate() {
        let (read_only, elem) = match *access {
            Access::Read(e) => (true, e),
            Access::ReadWrite(e) => (false, e),
        };
        let binding = b as u32 + 1;
        let min = if vec4_bindings.contains(&binding) {
            16
        } else {
            elem
        };
        entries.push(wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: NonZeroU64::new(min),
            },
            count: None,
        });
    }
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(entry),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions::default(),
        cache: None,
    });
    KernelPipeline { layout, pipeline }
}

/// Pipelines of [`SUBGROUP_KERNELS`]. Each has the bindings of the kernel it stands in for,
/// except that those it uses as arrays of vec4 need at least 16 bytes (the executor pads every
/// buffer to a multiple of 16 bytes).
fn build_subgroup_pipelines(device: &wgpu::Device) -> Result<Vec<KernelPipeline>, ShaderError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("dense_subgroup.wgsl"),
        source: wgpu::ShaderSource::Wgsl(DENSE_SUBGROUP_SOURCE.into()),
    });
    let pipelines = SUBGROUP_KERNELS
        .iter()
        .map(|v| kernel_pipeline(device, &module, v.kernel, v.entry_point, v.vec4_bindings))
        .collect();
    if let Some(error) = pollster::block_on(scope.pop()) {
        return Err(ShaderError::Compile {
            file: "dense_subgroup.wgsl",
            message: error.to_string(),
        });
    }
    Ok(pipelines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_past_the_per_dimension_limit_fold_into_two_dimensions() {
        // 65537 rows x 256 units = 262,148 workgroups of 64 > 65535.
        let [x, y, z] = dispatch_size(Kernel::DenseForward, 65_537 * 256, 65_535).unwrap();
        assert_eq!((x, y, z), (65_535, 5, 1));
        assert!(u64::from(x) * u64::from(y) * 64 >= 65_537 * 256);
        assert_eq!(dispatch_size(Kernel::Gae, 0, 65_535).unwrap(), [0, 0, 0]);
        assert!(dispatch_size(Kernel::Gae, 65_536u64 * 65_536 * 64, 65_535).is_err());
    }

    #[test]
    fn backend_names_parse_and_the_no_adapter_error_says_how_to_get_one() {
        assert_eq!(
            BackendChoice::parse("X", "Vulkan").unwrap(),
            BackendChoice::Vulkan
        );
        assert_eq!(BackendChoice::parse("X", "").unwrap(), BackendChoice::Auto);
        let e = BackendChoice::parse("FAIRGROUND_BACKEND", "cuda")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("FAIRGROUND_BACKEND") && e.contains("cuda"),
            "{e}"
        );
        let e = ShaderError::NoAdapter {
            backends: "VULKAN".into(),
            detail: String::new(),
        }
        .to_string();
        assert!(
            e.contains("apt-get install mesa-vulkan-drivers") && !e.contains('\n'),
            "{e}"
        );
    }
}
