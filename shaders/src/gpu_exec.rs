//! The `gpu` backend: runs a [`Program`] on a wgpu device. Buffers, uniform buffers and bind
//! groups are created once, in [`GpuExecutor::new`]; a run records one compute pass and makes one
//! submission.

use crate::device::GpuContext;
use crate::error::ShaderError;
use crate::program::{BufferId, Executor, OpRef, Program, SeqId};
use crate::registry::Kernel;
use std::sync::Arc;
use wgpu::util::DeviceExt;

struct GpuOp {
    kernel: Kernel,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

pub struct GpuExecutor {
    ctx: Arc<GpuContext>,
    program: Program,
    buffers: Vec<wgpu::Buffer>,
    sequences: Vec<Vec<GpuOp>>,
}

impl GpuExecutor {
    pub fn new(ctx: Arc<GpuContext>, program: Program) -> Result<Self, ShaderError> {
        let limits = &ctx.limits;
        let mut buffers = Vec::with_capacity(program.buffers.len());
        for decl in &program.buffers {
            let bytes = (decl.words * size_of::<u32>()) as u64;
            for (limit, what) in [
                (limits.max_buffer_size, "buffer"),
                (limits.max_storage_buffer_binding_size, "storage binding"),
            ] {
                if bytes > limit {
                    return Err(ShaderError::BufferTooLarge {
                        label: decl.label.clone(),
                        bytes,
                        limit,
                        what,
                    });
                }
            }
            buffers.push(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&decl.label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }));
        }
        let mut sequences = Vec::with_capacity(program.sequences.len());
        for ops in &program.sequences {
            let mut gpu_ops = Vec::with_capacity(ops.len());
            for op in ops {
                let (_, layout) = ctx.pipeline(op.kernel);
                let uniform = ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(op.kernel.entry_point()),
                        contents: &op.uniform,
                        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    });
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                }];
                for (b, id) in op.buffers.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: b as u32 + 1,
                        resource: buffers[id.0 as usize].as_entire_binding(),
                    });
                }
                let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(op.kernel.entry_point()),
                    layout,
                    entries: &entries,
                });
                gpu_ops.push(GpuOp {
                    kernel: op.kernel,
                    uniform,
                    bind_group,
                    workgroups: ctx.dispatch_size(op.kernel, op.threads)?,
                });
            }
            sequences.push(gpu_ops);
        }
        Ok(Self {
            ctx,
            program,
            buffers,
            sequences,
        })
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    fn wait(&self) -> Result<(), ShaderError> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| ShaderError::Device(e.to_string()))
    }
}

impl Executor for GpuExecutor {
    fn adapter_name(&self) -> String {
        self.ctx.adapter_name()
    }

    fn backend_name(&self) -> &'static str {
        "gpu"
    }

    fn write_words(
        &mut self,
        buffer: BufferId,
        offset_words: usize,
        data: &[u32],
    ) -> Result<(), ShaderError> {
        let decl = &self.program.buffers[buffer.0 as usize];
        if offset_words + data.len() > decl.words {
            return Err(ShaderError::WriteOutOfBounds {
                label: decl.label.clone(),
                words: offset_words + data.len(),
                capacity: decl.words,
            });
        }
        if !data.is_empty() {
            self.ctx.queue.write_buffer(
                &self.buffers[buffer.0 as usize],
                (offset_words * size_of::<u32>()) as u64,
                bytemuck::cast_slice(data),
            );
        }
        Ok(())
    }

    fn read_words(&mut self, buffer: BufferId) -> Result<Vec<u32>, ShaderError> {
        let src = &self.buffers[buffer.0 as usize];
        let size = src.size();
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.ctx.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        let label = &self.program.buffers[buffer.0 as usize].label;
        rx.recv()
            .map_err(|e| ShaderError::Device(format!("reading {label:?}: {e}")))?
            .map_err(|e| ShaderError::Device(format!("reading {label:?}: {e}")))?;
        let words = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| ShaderError::Device(format!("reading {label:?}: {e}")))?;
            bytemuck::pod_collect_to_vec::<u8, u32>(&view)
        };
        staging.unmap();
        Ok(words)
    }

    fn set_uniform(&mut self, op: OpRef, bytes: &[u8]) {
        let dst = &mut self.program.sequences[op.seq as usize][op.index as usize].uniform;
        assert_eq!(dst.len(), bytes.len(), "uniform size");
        dst.copy_from_slice(bytes);
        let gpu_op = &self.sequences[op.seq as usize][op.index as usize];
        self.ctx.queue.write_buffer(&gpu_op.uniform, 0, bytes);
    }

    fn run(&mut self, seq: SeqId) -> Result<(), ShaderError> {
        let ops = &self.sequences[seq.0 as usize];
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("run"),
                timestamp_writes: None,
            });
            for op in ops {
                if op.workgroups[0] == 0 {
                    continue;
                }
                let (pipeline, _) = self.ctx.pipeline(op.kernel);
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &op.bind_group, &[]);
                let [x, y, z] = op.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ShaderError> {
        self.wait()
    }
}
