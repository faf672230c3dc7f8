//! A program is a fixed set of buffers and sequences of kernel launches, declared once. Both
//! backends execute the same program: [`crate::GpuExecutor`] records a sequence into one compute
//! pass and one submission, [`crate::CpuExecutor`] runs the CPU twins in the same order. This is
//! what makes the `cpu` backend sit behind exactly the same interface as the GPU one.

use crate::error::ShaderError;
use crate::registry::Kernel;
use bytemuck::Pod;

/// A buffer of the program (4-byte words: f32, u32 or Pod structs of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferId(pub(crate) u32);

/// A sequence of launches that runs as one unit (one GPU submission).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeqId(pub(crate) u32);

/// One launch inside a sequence, for updating its uniform between runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpRef {
    pub(crate) seq: u32,
    pub(crate) index: u32,
}

#[derive(Clone, Debug)]
pub struct BufferDecl {
    pub label: String,
    pub words: usize,
}

#[derive(Clone, Debug)]
pub struct Op {
    pub kernel: Kernel,
    pub uniform: Vec<u8>,
    pub buffers: Vec<BufferId>,
    /// Invocations to launch (workgroups = threads.div_ceil(workgroup size)).
    pub threads: u64,
    /// How the launch splits into chunks of rows; `None`: it cannot.
    pub rows: Option<RowLayout>,
}

/// The row structure of a launch whose work is independent per row (or, for
/// `weight_grad_partial`, per fixed split of rows): the GPU executor splits such a launch into
/// chunks of rows when a binding exceeds the device's storage-binding limit, binding each
/// chunk's sub-range of the row-indexed buffers (see [`crate::GpuExecutor`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowLayout {
    /// 4-byte words per row of each storage binding, in binding order; 0: not indexed by row
    /// (bound whole in every chunk); [`RowLayout::UNREAD`]: not read by this launch at all
    /// (e.g. group ids with groups off), bound as a prefix within the limit.
    pub words_per_row: Vec<u32>,
}

impl RowLayout {
    /// `words_per_row` of a binding the launch does not read.
    pub const UNREAD: u32 = u32::MAX;
}

#[derive(Clone, Debug, Default)]
pub struct Program {
    pub(crate) buffers: Vec<BufferDecl>,
    pub(crate) sequences: Vec<Vec<Op>>,
}

impl Program {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare a buffer of `words` 4-byte words (at least one word is allocated).
    pub fn buffer(&mut self, label: impl Into<String>, words: usize) -> BufferId {
        self.buffers.push(BufferDecl {
            label: label.into(),
            words: words.max(1),
        });
        BufferId(self.buffers.len() as u32 - 1)
    }

    pub fn sequence(&mut self) -> SeqId {
        self.sequences.push(Vec::new());
        SeqId(self.sequences.len() as u32 - 1)
    }

    /// Append a launch. Panics (a programmer error) when the uniform or the buffer count does not
    /// match the kernel's binding table.
    pub fn push<U: Pod>(
        &mut self,
        seq: SeqId,
        kernel: Kernel,
        uniform: &U,
        buffers: &[BufferId],
        threads: u64,
    ) -> OpRef {
        self.push_op(seq, kernel, uniform, buffers, threads, None)
    }

    /// [`Program::push`] for a launch that can run in chunks of rows: the uniform's first field
    /// is its row count, and binding k holds `words_per_row[k]` words per row (0: not indexed by
    /// row, [`RowLayout::UNREAD`]: not read).
    pub fn push_rows<U: Pod>(
        &mut self,
        seq: SeqId,
        kernel: Kernel,
        uniform: &U,
        buffers: &[BufferId],
        threads: u64,
        words_per_row: &[u32],
    ) -> OpRef {
        assert_eq!(
            words_per_row.len(),
            buffers.len(),
            "{kernel:?}: words per row of every binding"
        );
        let rows = RowLayout {
            words_per_row: words_per_row.to_vec(),
        };
        self.push_op(seq, kernel, uniform, buffers, threads, Some(rows))
    }

    fn push_op<U: Pod>(
        &mut self,
        seq: SeqId,
        kernel: Kernel,
        uniform: &U,
        buffers: &[BufferId],
        threads: u64,
        rows: Option<RowLayout>,
    ) -> OpRef {
        let bytes = bytemuck::bytes_of(uniform).to_vec();
        assert_eq!(
            bytes.len() as u64,
            kernel.uniform_size(),
            "{kernel:?}: uniform size"
        );
        assert_eq!(
            buffers.len(),
            kernel.storage().len(),
            "{kernel:?}: storage binding count"
        );
        // A written buffer may not be bound twice in one launch (wgpu forbids it too).
        for (i, (access, id)) in kernel.storage().iter().zip(buffers).enumerate() {
            if matches!(access, crate::registry::Access::ReadWrite(_)) {
                let twice = buffers
                    .iter()
                    .enumerate()
                    .any(|(j, other)| j != i && other == id);
                assert!(!twice, "{kernel:?}: written buffer {id:?} bound twice");
            }
        }
        let ops = &mut self.sequences[seq.0 as usize];
        ops.push(Op {
            kernel,
            uniform: bytes,
            buffers: buffers.to_vec(),
            threads,
            rows,
        });
        OpRef {
            seq: seq.0,
            index: ops.len() as u32 - 1,
        }
    }

    pub fn buffer_decl(&self, id: BufferId) -> &BufferDecl {
        &self.buffers[id.0 as usize]
    }

    pub fn ops(&self, seq: SeqId) -> &[Op] {
        &self.sequences[seq.0 as usize]
    }
}

/// What runs a [`Program`]: the GPU (wgpu) or the CPU twins. Writes and runs are queued in order;
/// reads wait for everything queued before them.
pub trait Executor {
    /// `"cpu"` or the GPU adapter's name.
    fn adapter_name(&self) -> String;
    fn backend_name(&self) -> &'static str;
    fn write_words(
        &mut self,
        buffer: BufferId,
        offset_words: usize,
        data: &[u32],
    ) -> Result<(), ShaderError>;
    fn read_words(&mut self, buffer: BufferId) -> Result<Vec<u32>, ShaderError>;
    /// Replace a launch's uniform (same size), effective for runs queued after this call.
    fn set_uniform(&mut self, op: OpRef, bytes: &[u8]);
    fn run(&mut self, seq: SeqId) -> Result<(), ShaderError>;
    /// Run `seqs` one after another, as one unit where the backend has units: the GPU records
    /// them into one submission (a rollout step's act and its store copy), the CPU backends
    /// simply run them in order.
    fn run_all(&mut self, seqs: &[SeqId]) -> Result<(), ShaderError> {
        seqs.iter().try_for_each(|&seq| self.run(seq))
    }
    /// Run `seqs`, then make buffer `read` as they left it ready for [`Executor::collect`].
    /// The GPU records both into one command buffer and holds it back until a collect (of any
    /// executor on its device) or this executor's next call needs it submitted, so the acting
    /// step of every network on one device goes in one submission with its action readback.
    /// The CPU backends run `seqs` now and read at the collect.
    fn queue_read(&mut self, seqs: &[SeqId], read: BufferId) -> Result<(), ShaderError> {
        let _ = read;
        self.run_all(seqs)
    }
    /// The words of `read` after the last [`Executor::queue_read`] that named it (what
    /// [`Executor::read_words`] returns then); submits what this device holds back.
    fn collect(&mut self, read: BufferId) -> Result<Vec<u32>, ShaderError> {
        self.read_words(read)
    }
    /// Wait until everything queued has finished.
    fn finish(&mut self) -> Result<(), ShaderError>;
}

/// Typed helpers over [`Executor`]'s word interface.
pub trait ExecutorExt: Executor {
    fn write<T: Pod>(&mut self, buffer: BufferId, data: &[T]) -> Result<(), ShaderError> {
        self.write_words(buffer, 0, bytemuck::cast_slice(data))
    }
    fn read<T: Pod>(&mut self, buffer: BufferId) -> Result<Vec<T>, ShaderError> {
        let words = self.read_words(buffer)?;
        Ok(bytemuck::pod_collect_to_vec(&words))
    }
    fn set_uniform_pod<U: Pod>(&mut self, op: OpRef, uniform: &U) {
        self.set_uniform(op, bytemuck::bytes_of(uniform));
    }
}

impl<E: Executor + ?Sized> ExecutorExt for E {}

/// FLOPs of the dense launches every executor has run in this process (see [`executed_flops`]).
static EXECUTED_FLOPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The model FLOPs of one launch, counted from the network shapes: 2 × rows × inputs × outputs
/// for a dense forward, an input gradient and a weight gradient (one multiply and one add per
/// weight and row); 0 for every other kernel (activations, heads, the loss, Adam: elementwise
/// work that no GEMM does, so it does not count towards the arithmetic a peak measures).
pub fn op_flops(op: &Op) -> u64 {
    match op.kernel {
        Kernel::DenseForward | Kernel::InputGrad | Kernel::WeightGradPartial => {
            let p: crate::layout::DenseParams = *bytemuck::from_bytes(&op.uniform);
            2 * p.rows as u64 * p.in_width as u64 * p.out_width as u64
        }
        _ => 0,
    }
}

/// Add the model FLOPs of a sequence's launches (called once per run by every executor).
pub(crate) fn count_flops(ops: &[Op]) {
    let n: u64 = ops.iter().map(op_flops).sum();
    EXECUTED_FLOPS.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// The model FLOPs of every dense launch run so far in this process, by any executor: what
/// `fairground bench train` divides by wall time for `model_gflop_per_s` (a difference of two
/// readings around the timed iterations).
pub fn executed_flops() -> u64 {
    EXECUTED_FLOPS.load(std::sync::atomic::Ordering::Relaxed)
}
