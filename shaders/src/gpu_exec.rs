//! The `gpu` backend: runs a [`Program`] on a wgpu device. Buffers, uniform buffers and bind
//! groups are created once, in [`GpuExecutor::new`], staging buffers at a buffer's first read; a
//! run records one compute pass per sequence and makes one submission. A
//! [`Executor::queue_read`] holds its command buffer back in the shared [`GpuContext`] instead,
//! so the acting steps of all networks on a device, their action readbacks included, are one
//! submission and one wait.

use crate::device::{GpuContext, SUBGROUP_KERNELS};
use crate::error::ShaderError;
use crate::layout::{AdamParams, DenseParams, GaeParams, HeadParams, ReduceParams};
use crate::mlp::{act_grad_threads, tiled_threads};
use crate::program::{BufferId, Executor, OpRef, Program, RowLayout, SeqId};
use crate::registry::Kernel;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wgpu::util::DeviceExt;

/// Queue submissions and readbacks of every GPU executor in this process (see [`submits`]).
static SUBMITS: AtomicU64 = AtomicU64::new(0);
static READBACKS: AtomicU64 = AtomicU64::new(0);

/// Queue submissions so far in this process, by every [`GpuExecutor`]: one per `run` and one
/// per `read_words`, and one for all the work held back by [`Executor::queue_read`] until it
/// is needed (writes ride on the next submission). What `fairground bench train` divides by
/// rollout steps and minibatches to show the host round trips.
pub fn submits() -> u64 {
    SUBMITS.load(Ordering::Relaxed)
}

/// Readbacks so far in this process (each a wait for the device; the collects of held work
/// share their submission).
pub fn readbacks() -> u64 {
    READBACKS.load(Ordering::Relaxed)
}

/// One dispatch of a launch: the whole launch, or one chunk of its rows.
struct Part {
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    /// First row of the chunk and its row capacity; `None` for an unchunked launch.
    chunk: Option<(u32, u32)>,
    /// Whether the chunk holds rows at the current uniform (always true unchunked).
    active: bool,
    /// Whether the dispatch runs the kernel's subgroup variant (see [`subgroup_blocks`]), and
    /// then whether its aligned one (see [`aligned_operands`]).
    subgroup: bool,
    aligned: bool,
    /// The bind group of the subgroup variant (its own layout), for unchunked launches of a
    /// kernel that has one on this device.
    subgroup_bind_group: Option<wgpu::BindGroup>,
}

struct GpuOp {
    kernel: Kernel,
    /// Invocations of the whole launch.
    threads: u64,
    parts: Vec<Part>,
}

pub struct GpuExecutor {
    ctx: Arc<GpuContext>,
    program: Program,
    buffers: Vec<wgpu::Buffer>,
    sequences: Vec<Vec<GpuOp>>,
    /// One mappable copy per buffer that has been read, made at its first read and reused
    /// (a readback creates no buffer after that).
    staging: Vec<Option<wgpu::Buffer>>,
    /// Whether this executor has a command buffer held back in the context (see
    /// [`Executor::queue_read`]): anything it does next submits it first, so its own calls
    /// keep their order.
    holding: bool,
    /// The buffer whose copy the last `queue_read` recorded into its staging buffer.
    queued_read: Option<BufferId>,
}

impl Drop for GpuExecutor {
    /// Held work is submitted, never dropped: the copies it makes may be another executor's
    /// next collect's to wait for.
    fn drop(&mut self) {
        self.release();
    }
}

/// Submit every command buffer held back on `ctx` (every executor's), in the order they were
/// recorded, as one submission; nothing when none is held. The lock is held through the
/// submission: an executor that finds nothing held must be able to map its staging buffer
/// at once, so the copy into it has to be submitted by then, not merely taken.
fn submit_held(ctx: &GpuContext) {
    let mut held = ctx.held.lock().expect("held command buffers");
    if !held.is_empty() {
        ctx.queue.submit(held.drain(..));
        SUBMITS.fetch_add(1, Ordering::Relaxed);
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn write_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Rows per fixed split of a launch whose chunks must start on split boundaries.
fn rows_per_split(kernel: Kernel, uniform: &[u8]) -> Option<u32> {
    let at = match kernel {
        Kernel::WeightGradPartial => std::mem::offset_of!(DenseParams, rows_per_split),
        Kernel::ReducePartial => std::mem::offset_of!(ReduceParams, rows_per_split),
        _ => return None,
    };
    Some(read_u32(uniform, at).max(1))
}

/// The uniform of one chunk (first row `row0`, at most `cap` rows) of a launch whose uniform is
/// `base`, and whether the chunk has any rows to run. Every row-chunked uniform holds its row
/// count at byte 0 (asserted in `layout`); the heads also shift `agent_offset` (sampling
/// counters stay those of the whole batch); `weight_grad_partial` and `reduce_partial` start at
/// their chunk's first split (chunks start on split boundaries) and run even without rows (they
/// write their splits' zero partials); GAE chunks other than the latest carry the recursion
/// from the step after them.
fn chunk_uniform(kernel: Kernel, base: &[u8], row0: u32, cap: u32) -> (Vec<u8>, bool) {
    let mut bytes = base.to_vec();
    let total = read_u32(base, 0);
    let rows = total.saturating_sub(row0).min(cap);
    write_u32(&mut bytes, 0, rows);
    match kernel {
        Kernel::AdamUpdate => {
            let at = std::mem::offset_of!(AdamParams, param_base);
            write_u32(&mut bytes, at, read_u32(base, at).wrapping_add(row0));
            (bytes, rows > 0)
        }
        Kernel::HeadSample | Kernel::HeadEvaluate | Kernel::HeadBackward => {
            let at = std::mem::offset_of!(HeadParams, agent_offset);
            write_u32(&mut bytes, at, read_u32(base, at).wrapping_add(row0));
            (bytes, rows > 0)
        }
        Kernel::WeightGradPartial | Kernel::ReducePartial => {
            let rps = rows_per_split(kernel, base).expect("a split kernel");
            let at = match kernel {
                Kernel::WeightGradPartial => std::mem::offset_of!(DenseParams, split_base),
                _ => std::mem::offset_of!(ReduceParams, split_base),
            };
            write_u32(&mut bytes, at, row0 / rps);
            (bytes, true)
        }
        Kernel::Gae => {
            let carry = u32::from(total > row0.saturating_add(cap));
            write_u32(&mut bytes, std::mem::offset_of!(GaeParams, carry), carry);
            (bytes, rows > 0)
        }
        _ => (bytes, rows > 0),
    }
}

/// Result rows and columns of one workgroup of the dense subgroup variants (BM, BN in
/// wgsl_subgroup/dense_subgroup.wgsl).
const SUBGROUP_BLOCK: u32 = 32;

/// Workgroups of the variant of a dense launch with uniform `uniform`: for the matrix
/// kernels one subgroup per 32 x 32 block of the result, for the elementwise ones one per
/// four elements per invocation of the variant's workgroup. `None` when the launch keeps the portable kernel: the device has no
/// variants, the kernel has none, or the layer is grouped (the variants read one parameter
/// set). Only for launches that are not split into chunks.
fn subgroup_blocks(ctx: &GpuContext, kernel: Kernel, uniform: &[u8]) -> Option<u64> {
    ctx.subgroup_pipeline(kernel, false)?;
    let u = |at: usize| read_u32(uniform, at);
    if u(std::mem::offset_of!(DenseParams, group_count)) != 1 {
        return None;
    }
    let blocks = |n: u32| u64::from(n.div_ceil(SUBGROUP_BLOCK));
    let variant_size = SUBGROUP_KERNELS
        .iter()
        .find(|v| v.kernel == kernel)
        .map_or(1, |v| u64::from(v.workgroup_size));
    let rows = u(std::mem::offset_of!(DenseParams, rows));
    let in_width = u(std::mem::offset_of!(DenseParams, in_width));
    let out_width = u(std::mem::offset_of!(DenseParams, out_width));
    Some(match kernel {
        Kernel::DenseForward => blocks(rows) * blocks(out_width),
        Kernel::InputGrad => blocks(rows) * blocks(in_width),
        Kernel::WeightGradPartial => {
            u64::from(u(std::mem::offset_of!(DenseParams, split_count)))
                * blocks(out_width)
                * blocks(in_width + 1)
        }
        // The elementwise variants: four elements per invocation.
        Kernel::ActGrad => (u64::from(rows) * u64::from(out_width)).div_ceil(4 * variant_size),
        Kernel::WeightGradReduce => {
            (u64::from(out_width) * u64::from(in_width + 1)).div_ceil(4 * variant_size)
        }
        _ => return None,
    })
}

/// Whether every vec4 operand of the aligned variant of `kernel` starts on a vec4 boundary
/// (the launch binds whole buffers, so offsets are the ones in the uniform).
fn aligned_operands(kernel: Kernel, uniform: &[u8]) -> bool {
    let u = |at: usize| read_u32(uniform, at);
    let in4 = u(std::mem::offset_of!(DenseParams, in_width)).is_multiple_of(4);
    match kernel {
        // W[k, i0 ..] at weight_offset + k * in_width + i0 (i0 a multiple of 4).
        Kernel::InputGrad => {
            in4 && u(std::mem::offset_of!(DenseParams, weight_offset)).is_multiple_of(4)
        }
        // dz[r, o0 ..] and x[r, c0 ..] (o0, c0 multiples of 4).
        Kernel::WeightGradPartial => {
            in4 && u(std::mem::offset_of!(DenseParams, out_width)).is_multiple_of(4)
        }
        _ => false,
    }
}

/// Workgroups and variant of an unchunked launch: the subgroup variant's blocks where it
/// applies (see [`subgroup_blocks`]), else the tiled kernel's `threads`.
fn whole_dispatch(
    ctx: &GpuContext,
    kernel: Kernel,
    uniform: &[u8],
    threads: u64,
) -> Result<([u32; 3], bool, bool), ShaderError> {
    match subgroup_blocks(ctx, kernel, uniform) {
        // dispatch_size counts invocations in the portable kernel's workgroups: ask for as
        // many of those as the variant has workgroups.
        Some(blocks) => Ok((
            ctx.dispatch_size(kernel, blocks * u64::from(kernel.workgroup_size()))?,
            true,
            aligned_operands(kernel, uniform),
        )),
        None => Ok((ctx.dispatch_size(kernel, threads)?, false, false)),
    }
}

/// Invocations one chunk needs (its uniform from [`chunk_uniform`]), at most the whole launch's
/// `threads`: the rows of the chunk, or for the split kernels its splits (up to the last one of
/// the launch, which may lie past the rows and still gets its zero partials).
fn chunk_threads(kernel: Kernel, chunk: &[u8], cap: u32, threads: u64) -> u64 {
    let rows = read_u32(chunk, 0);
    let u = |at: usize| read_u32(chunk, at);
    let splits = |rps: u32, count_at: usize, base_at: usize| {
        u64::from((cap / rps.max(1)).min(u(count_at).saturating_sub(u(base_at))))
    };
    let needed = match kernel {
        Kernel::DenseForward => {
            tiled_threads(rows, u(std::mem::offset_of!(DenseParams, out_width)), 1)
        }
        Kernel::InputGrad => tiled_threads(rows, u(std::mem::offset_of!(DenseParams, in_width)), 1),
        Kernel::ActGrad => act_grad_threads(
            u64::from(rows) * u64::from(u(std::mem::offset_of!(DenseParams, out_width))),
        ),
        Kernel::WeightGradPartial => {
            let s = splits(
                u(std::mem::offset_of!(DenseParams, rows_per_split)),
                std::mem::offset_of!(DenseParams, split_count),
                std::mem::offset_of!(DenseParams, split_base),
            );
            s * tiled_threads(
                u(std::mem::offset_of!(DenseParams, out_width)),
                u(std::mem::offset_of!(DenseParams, in_width)) + 1,
                u(std::mem::offset_of!(DenseParams, group_count)),
            )
        }
        Kernel::ReducePartial => {
            let s = splits(
                u(std::mem::offset_of!(ReduceParams, rows_per_split)),
                std::mem::offset_of!(ReduceParams, split_count),
                std::mem::offset_of!(ReduceParams, split_base),
            );
            s * u64::from(u(std::mem::offset_of!(ReduceParams, group_count)))
        }
        // One invocation per row of each of the chunk's time steps.
        Kernel::GaeReturns => {
            u64::from(rows) * u64::from(u(std::mem::offset_of!(GaeParams, agents)))
        }
        Kernel::HeadSample
        | Kernel::HeadEvaluate
        | Kernel::HeadBackward
        | Kernel::PpoLoss
        | Kernel::Normalize
        | Kernel::FairAdjust
        | Kernel::AdamUpdate
        | Kernel::GradAccumulate => u64::from(rows),
        _ => threads,
    };
    needed.min(threads)
}

impl GpuExecutor {
    /// Creates every buffer, uniform and bind group once. A launch whose binding exceeds
    /// `max_storage_buffer_binding_size` and that declared its rows ([`Program::push_rows`]) is
    /// split into chunks of rows: each chunk binds the sub-range of every row-indexed buffer
    /// (offsets multiples of `min_storage_buffer_offset_alignment`; `weight_grad_partial` and
    /// `reduce_partial` chunks also start on split boundaries, so fixed-split sums do not
    /// change) and gets its own uniform and a dispatch sized to its rows; all chunks are
    /// recorded into the same pass. GAE chunks are ranges of time steps, recorded latest first,
    /// each binding one step more than its own to carry the recursion. Other launches with an
    /// oversized binding (or a row too wide for any chunk) are a typed error.
    pub fn new(ctx: Arc<GpuContext>, program: Program) -> Result<Self, ShaderError> {
        let limits = &ctx.limits;
        let binding_limit = limits.max_storage_buffer_binding_size;
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(4);
        let mut buffers = Vec::with_capacity(program.buffers.len());
        for decl in &program.buffers {
            let bytes = (decl.words * size_of::<u32>()) as u64;
            if bytes > limits.max_buffer_size {
                return Err(ShaderError::BufferTooLarge {
                    label: decl.label.clone(),
                    bytes,
                    limit: limits.max_buffer_size,
                    what: "buffer",
                });
            }
            // A multiple of 16 bytes, so that the dense subgroup variants can read every
            // declared word through arrays of vec4. Everything else uses the declared size.
            buffers.push(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&decl.label),
                size: bytes.next_multiple_of(16),
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
                let (workgroups, subgroup, aligned) =
                    whole_dispatch(&ctx, op.kernel, &op.uniform, op.threads)?;
                let sizes: Vec<u64> = op
                    .buffers
                    .iter()
                    .map(|id| (program.buffers[id.0 as usize].words * size_of::<u32>()) as u64)
                    .collect();
                let oversized = sizes.iter().position(|&b| b > binding_limit);
                let part = |uniform_bytes: &[u8],
                            ranges: &[(u64, Option<u64>)],
                            chunk: Option<(u32, u32)>,
                            active: bool,
                            workgroups: [u32; 3],
                            subgroup: bool,
                            aligned: bool| {
                    let uniform =
                        ctx.device
                            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                                label: Some(op.kernel.entry_point()),
                                contents: uniform_bytes,
                                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                            });
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: uniform.as_entire_binding(),
                    }];
                    for (b, (id, &(offset, size))) in op.buffers.iter().zip(ranges).enumerate() {
                        entries.push(wgpu::BindGroupEntry {
                            binding: b as u32 + 1,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &buffers[id.0 as usize],
                                offset,
                                size: size.and_then(wgpu::BufferSize::new),
                            }),
                        });
                    }
                    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(op.kernel.entry_point()),
                        layout,
                        entries: &entries,
                    });
                    let subgroup_bind_group = match (chunk, ctx.subgroup_pipeline(op.kernel, false))
                    {
                        (None, Some((_, sg_layout))) => {
                            Some(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                                label: Some(op.kernel.entry_point()),
                                layout: sg_layout,
                                entries: &entries,
                            }))
                        }
                        _ => None,
                    };
                    Part {
                        uniform,
                        bind_group,
                        workgroups,
                        chunk,
                        active,
                        subgroup,
                        aligned,
                        subgroup_bind_group,
                    }
                };
                let too_large = |b: usize| {
                    let decl = &program.buffers[op.buffers[b].0 as usize];
                    ShaderError::BufferTooLarge {
                        label: decl.label.clone(),
                        bytes: sizes[b],
                        limit: binding_limit,
                        what: "storage binding",
                    }
                };
                let parts = match (oversized, &op.rows) {
                    (None, _) => {
                        let whole = vec![(0, None); op.buffers.len()];
                        vec![part(
                            &op.uniform,
                            &whole,
                            None,
                            true,
                            workgroups,
                            subgroup,
                            aligned,
                        )]
                    }
                    (Some(b), None) => return Err(too_large(b)),
                    (Some(b), Some(layout)) => {
                        // A reduction over a view that starts past its first row (one set of
                        // a packed network) would read past its chunk's binding: refused.
                        if op.kernel == Kernel::ReducePartial
                            && read_u32(
                                &op.uniform,
                                std::mem::offset_of!(ReduceParams, value_offset),
                            ) >= read_u32(
                                &op.uniform,
                                std::mem::offset_of!(ReduceParams, value_stride),
                            )
                        {
                            return Err(too_large(b));
                        }
                        let total = read_u32(&op.uniform, 0);
                        // Bytes per row of each binding; 0: bound whole (not indexed by row, or
                        // smaller than its rows, so not read per row in this launch: e.g. a
                        // one-word mask buffer with masks off); None: not read at all, bound
                        // as a prefix within the limit.
                        let per_row: Vec<Option<u64>> = layout
                            .words_per_row
                            .iter()
                            .zip(&sizes)
                            .map(|(&w, &size)| {
                                if w == RowLayout::UNREAD {
                                    return None;
                                }
                                let w = u64::from(w) * 4;
                                Some(if w * u64::from(total) > size { 0 } else { w })
                            })
                            .collect();
                        if let Some(b) = (0..sizes.len())
                            .find(|&b| per_row[b] == Some(0) && sizes[b] > binding_limit)
                        {
                            return Err(too_large(b));
                        }
                        // Chunk rows: every row-indexed offset a multiple of the offset
                        // alignment and, for the split kernels, a split boundary.
                        let row_bytes = || per_row.iter().flatten().filter(|&&w| w > 0);
                        let mut unit = row_bytes().fold(1, |u, &w| lcm(u, align / gcd(align, w)));
                        if let Some(rps) = rows_per_split(op.kernel, &op.uniform) {
                            unit = lcm(unit, u64::from(rps));
                        }
                        // GAE chunks also bind the step after them (the carried state).
                        let extra = u64::from(op.kernel == Kernel::Gae);
                        let max_rows = row_bytes()
                            .map(|&w| binding_limit / w)
                            .min()
                            .unwrap_or(u64::MAX)
                            .saturating_sub(extra);
                        let cap = max_rows / unit * unit;
                        if cap == 0 {
                            let b = oversized.expect("some binding is oversized");
                            return Err(too_large(b));
                        }
                        let cap = cap.min(u64::from(total.max(1))) as u32;
                        let mut parts = (0..total.div_ceil(cap))
                            .map(|c| {
                                let row0 = c * cap;
                                let ranges: Vec<(u64, Option<u64>)> = per_row
                                    .iter()
                                    .zip(&sizes)
                                    .map(|(&w, &size)| match w {
                                        None => (0, Some(size.min(binding_limit))),
                                        Some(0) => (0, None),
                                        Some(w) => {
                                            let offset = u64::from(row0) * w;
                                            let bytes = (u64::from(cap) + extra) * w;
                                            (offset, Some(bytes.min(size - offset)))
                                        }
                                    })
                                    .collect();
                                let (bytes, active) =
                                    chunk_uniform(op.kernel, &op.uniform, row0, cap);
                                let threads = chunk_threads(op.kernel, &bytes, cap, op.threads);
                                let workgroups = ctx.dispatch_size(op.kernel, threads)?;
                                Ok(part(
                                    &bytes,
                                    &ranges,
                                    Some((row0, cap)),
                                    active,
                                    workgroups,
                                    false,
                                    false,
                                ))
                            })
                            .collect::<Result<Vec<_>, ShaderError>>()?;
                        // GAE runs backwards in time: the latest chunk first.
                        if op.kernel == Kernel::Gae {
                            parts.reverse();
                        }
                        parts
                    }
                };
                gpu_ops.push(GpuOp {
                    kernel: op.kernel,
                    threads: op.threads,
                    parts,
                });
            }
            sequences.push(gpu_ops);
        }
        let staging = (0..buffers.len()).map(|_| None).collect();
        Ok(Self {
            ctx,
            program,
            buffers,
            sequences,
            staging,
            holding: false,
            queued_read: None,
        })
    }

    /// Dispatches recorded for a sequence (more than its launches when some run in chunks).
    pub fn dispatch_count(&self, seq: SeqId) -> usize {
        self.sequences[seq.0 as usize]
            .iter()
            .map(|op| op.parts.len())
            .sum()
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Submit what this executor holds back (and with it every other executor's on the
    /// device), before a call of its own that must come after it.
    fn release(&mut self) {
        if self.holding {
            submit_held(&self.ctx);
            self.holding = false;
        }
    }

    /// The size in bytes of `buffer`'s staging copy (the declared words, not the padding: see
    /// `new`), which is created at the first call.
    fn make_staging(&mut self, buffer: BufferId) -> u64 {
        let size = (self.program.buffers[buffer.0 as usize].words * size_of::<u32>()) as u64;
        let device = &self.ctx.device;
        self.staging[buffer.0 as usize].get_or_insert_with(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        size
    }

    /// Map `buffer`'s staging copy (the copy into it recorded by [`Self::record_all`] and
    /// submitted), wait for the device and return its words.
    fn map_staging(&self, buffer: BufferId) -> Result<Vec<u32>, ShaderError> {
        READBACKS.fetch_add(1, Ordering::Relaxed);
        let label = &self.program.buffers[buffer.0 as usize].label;
        let device_error = |e: String| ShaderError::Device(format!("reading {label:?}: {e}"));
        let staging = self.staging[buffer.0 as usize]
            .as_ref()
            .expect("made by record_all");
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| device_error(e.to_string()))?
            .map_err(|e| device_error(e.to_string()))?;
        let words = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| device_error(e.to_string()))?;
            bytemuck::pod_collect_to_vec::<u8, u32>(&view)
        };
        staging.unmap();
        Ok(words)
    }

    /// Record `seqs` and, when `read` is given, the copy of that buffer into its staging
    /// buffer, as one command buffer.
    fn record_all(&mut self, seqs: &[SeqId], read: Option<BufferId>) -> wgpu::CommandBuffer {
        let size = read.map(|buffer| self.make_staging(buffer));
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        for &seq in seqs {
            crate::program::count_flops(&self.program.sequences[seq.0 as usize]);
            self.record(&mut encoder, seq);
        }
        if let (Some(buffer), Some(size)) = (read, size) {
            let staging = self.staging[buffer.0 as usize]
                .as_ref()
                .expect("made above");
            encoder.copy_buffer_to_buffer(&self.buffers[buffer.0 as usize], 0, staging, 0, size);
        }
        encoder.finish()
    }

    fn wait(&self) -> Result<(), ShaderError> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| ShaderError::Device(e.to_string()))
    }
}

impl GpuExecutor {
    /// Record sequence `seq` as one compute pass of `encoder`.
    fn record(&self, encoder: &mut wgpu::CommandEncoder, seq: SeqId) {
        let ops = &self.sequences[seq.0 as usize];
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("run"),
                timestamp_writes: None,
            });
            for op in ops {
                let (tiled, _) = self.ctx.pipeline(op.kernel);
                for part in &op.parts {
                    if part.workgroups[0] == 0 || !part.active {
                        continue;
                    }
                    match (&part.subgroup_bind_group, part.subgroup) {
                        (Some(bind_group), true) => {
                            let (pipeline, _) = self
                                .ctx
                                .subgroup_pipeline(op.kernel, part.aligned)
                                .expect("subgroup parts only where the variant is built");
                            pass.set_pipeline(pipeline);
                            pass.set_bind_group(0, bind_group, &[]);
                        }
                        _ => {
                            pass.set_pipeline(tiled);
                            pass.set_bind_group(0, &part.bind_group, &[]);
                        }
                    }
                    let [x, y, z] = part.workgroups;
                    pass.dispatch_workgroups(x, y, z);
                }
            }
        }
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
            // A write is applied before the next submission's commands, so what this executor
            // holds back (which read the buffer as it was) goes first; a queued copy of it
            // is stale after the write.
            self.release();
            if self.queued_read == Some(buffer) {
                self.queued_read = None;
            }
            self.ctx.queue.write_buffer(
                &self.buffers[buffer.0 as usize],
                (offset_words * size_of::<u32>()) as u64,
                bytemuck::cast_slice(data),
            );
        }
        Ok(())
    }

    fn read_words(&mut self, buffer: BufferId) -> Result<Vec<u32>, ShaderError> {
        self.release();
        let commands = self.record_all(&[], Some(buffer));
        self.ctx.queue.submit([commands]);
        SUBMITS.fetch_add(1, Ordering::Relaxed);
        self.map_staging(buffer)
    }

    fn set_uniform(&mut self, op: OpRef, bytes: &[u8]) {
        self.release();
        let dst = &mut self.program.sequences[op.seq as usize][op.index as usize].uniform;
        assert_eq!(dst.len(), bytes.len(), "uniform size");
        let gpu_op = &mut self.sequences[op.seq as usize][op.index as usize];
        if gpu_op.kernel == Kernel::Gae && gpu_op.parts.len() > 1 {
            let at = std::mem::offset_of!(GaeParams, agents);
            assert_eq!(
                read_u32(dst, at),
                read_u32(bytes, at),
                "gae: the agent count of a chunked launch is fixed"
            );
        }
        dst.copy_from_slice(bytes);
        for part in &mut gpu_op.parts {
            match part.chunk {
                None => {
                    // The subgroup variant's dispatch follows the rows (the tiled kernel's is
                    // sized once, for the launch's declared threads).
                    let (workgroups, subgroup, aligned) =
                        whole_dispatch(&self.ctx, gpu_op.kernel, bytes, gpu_op.threads)
                            .expect("no more workgroups than the whole launch's");
                    part.workgroups = workgroups;
                    part.subgroup = subgroup;
                    part.aligned = aligned;
                    self.ctx.queue.write_buffer(&part.uniform, 0, bytes);
                }
                Some((row0, cap)) => {
                    let (chunk, active) = chunk_uniform(gpu_op.kernel, bytes, row0, cap);
                    let threads = chunk_threads(gpu_op.kernel, &chunk, cap, gpu_op.threads);
                    part.workgroups = self
                        .ctx
                        .dispatch_size(gpu_op.kernel, threads)
                        .expect("no more workgroups than the whole launch's");
                    part.active = active;
                    self.ctx.queue.write_buffer(&part.uniform, 0, &chunk);
                }
            }
        }
    }

    fn run(&mut self, seq: SeqId) -> Result<(), ShaderError> {
        self.run_all(&[seq])
    }

    fn run_all(&mut self, seqs: &[SeqId]) -> Result<(), ShaderError> {
        self.release();
        // The runs may change the buffer a held copy was made of.
        self.queued_read = None;
        let commands = self.record_all(seqs, None);
        self.ctx.queue.submit([commands]);
        SUBMITS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn queue_read(&mut self, seqs: &[SeqId], read: BufferId) -> Result<(), ShaderError> {
        // Writes made since this executor's last submission ride on the held submission:
        // wgpu applies a queue's pending writes before the next submission's commands, and
        // no executor writes another's buffers.
        let commands = self.record_all(seqs, Some(read));
        self.ctx
            .held
            .lock()
            .expect("held command buffers")
            .push(commands);
        self.holding = true;
        self.queued_read = Some(read);
        Ok(())
    }

    fn collect(&mut self, read: BufferId) -> Result<Vec<u32>, ShaderError> {
        if self.queued_read != Some(read) {
            return self.read_words(read);
        }
        self.queued_read = None;
        // Whoever collects first submits every executor's held work; the rest find theirs
        // submitted already.
        submit_held(&self.ctx);
        self.holding = false;
        self.map_staging(read)
    }

    fn finish(&mut self) -> Result<(), ShaderError> {
        self.release();
        self.wait()
    }
}
