//! The `cpu` backend: runs a [`Program`] with the CPU twins, single-threaded.

use crate::cpu;
use crate::error::ShaderError;
use crate::layout::*;
use crate::program::{BufferId, Executor, Op, OpRef, Program, SeqId};
use crate::registry::Kernel;
use bytemuck::{Pod, cast_slice, cast_slice_mut, from_bytes};

pub struct CpuExecutor {
    program: Program,
    buffers: Vec<Vec<u32>>,
}

impl CpuExecutor {
    pub fn new(program: Program) -> Self {
        let buffers = program
            .buffers
            .iter()
            .map(|b| vec![0u32; b.words])
            .collect();
        Self { program, buffers }
    }
}

fn uni<U: Pod>(bytes: &[u8]) -> U {
    *from_bytes::<U>(bytes)
}

fn f(v: &[u32]) -> &[f32] {
    cast_slice(v)
}

fn fm(v: &mut [u32]) -> &mut [f32] {
    cast_slice_mut(v)
}

impl Executor for CpuExecutor {
    fn adapter_name(&self) -> String {
        "cpu".to_string()
    }

    fn backend_name(&self) -> &'static str {
        "cpu"
    }

    fn write_words(
        &mut self,
        buffer: BufferId,
        offset_words: usize,
        data: &[u32],
    ) -> Result<(), ShaderError> {
        write_host(&self.program, &mut self.buffers, buffer, offset_words, data)
    }

    fn read_words(&mut self, buffer: BufferId) -> Result<Vec<u32>, ShaderError> {
        Ok(self.buffers[buffer.0 as usize].clone())
    }

    fn set_uniform(&mut self, op: OpRef, bytes: &[u8]) {
        set_host_uniform(&mut self.program, op, bytes);
    }

    fn run(&mut self, seq: SeqId) -> Result<(), ShaderError> {
        let ops = &self.program.sequences[seq.0 as usize];
        crate::program::count_flops(ops);
        let bufs = &mut self.buffers;
        for op in ops {
            let ids: Vec<usize> = op.buffers.iter().map(|b| b.0 as usize).collect();
            // Take the written buffers out so the read-only ones can be borrowed alongside.
            let writable: Vec<usize> = op
                .kernel
                .storage()
                .iter()
                .zip(&ids)
                .filter(|(a, _)| matches!(a, crate::registry::Access::ReadWrite(_)))
                .map(|(_, &i)| i)
                .collect();
            let mut taken: Vec<Vec<u32>> = writable
                .iter()
                .map(|&i| std::mem::take(&mut bufs[i]))
                .collect();
            run_twin(op, bufs, &ids, &mut taken);
            for (i, buf) in writable.into_iter().zip(taken) {
                bufs[i] = buf;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ShaderError> {
        Ok(())
    }
}

/// `Executor::write_words` of the host executors ([`CpuExecutor`], [`crate::GemmExecutor`]):
/// `data` at `offset_words` of `buffer`, refused past its end.
pub(crate) fn write_host(
    program: &Program,
    buffers: &mut [Vec<u32>],
    buffer: BufferId,
    offset_words: usize,
    data: &[u32],
) -> Result<(), ShaderError> {
    let dst = &mut buffers[buffer.0 as usize];
    if offset_words + data.len() > dst.len() {
        return Err(ShaderError::WriteOutOfBounds {
            label: program.buffers[buffer.0 as usize].label.clone(),
            words: offset_words + data.len(),
            capacity: dst.len(),
        });
    }
    dst[offset_words..offset_words + data.len()].copy_from_slice(data);
    Ok(())
}

/// `Executor::set_uniform` of the host executors: the launch's uniform bytes, same size.
pub(crate) fn set_host_uniform(program: &mut Program, op: OpRef, bytes: &[u8]) {
    let dst = &mut program.sequences[op.seq as usize][op.index as usize].uniform;
    assert_eq!(dst.len(), bytes.len(), "uniform size");
    dst.copy_from_slice(bytes);
}

/// Run one launch with its CPU twin. `bufs` holds every buffer but the launch's written ones,
/// which are `taken` (in binding order) so that the read ones can be borrowed alongside;
/// `ids[k]` is binding k's buffer. Shared by [`CpuExecutor`] and [`crate::GemmExecutor`]
/// (for every launch it does not run through its GEMM path).
pub(crate) fn run_twin(op: &Op, bufs: &[Vec<u32>], ids: &[usize], taken: &mut [Vec<u32>]) {
    let b = |k: usize| -> &[u32] { &bufs[ids[k]] };
    let u = &op.uniform;
    match op.kernel {
        Kernel::DenseForward => {
            cpu::dense_forward(&uni(u), f(b(0)), f(b(1)), b(2), fm(&mut taken[0]))
        }
        Kernel::ActGrad => cpu::act_grad(&uni(u), f(b(0)), f(b(1)), fm(&mut taken[0])),
        Kernel::InputGrad => cpu::input_grad(&uni(u), f(b(0)), f(b(1)), b(2), fm(&mut taken[0])),
        Kernel::WeightGradPartial => {
            cpu::weight_grad_partial(&uni(u), f(b(0)), f(b(1)), b(2), fm(&mut taken[0]))
        }
        Kernel::WeightGradReduce => cpu::weight_grad_reduce(&uni(u), f(b(0)), fm(&mut taken[0])),
        Kernel::HeadSample => {
            let (a, rest) = taken.split_at_mut(1);
            cpu::head_sample(&uni(u), f(b(0)), b(1), b(2), &mut a[0], fm(&mut rest[0]))
        }
        Kernel::HeadEvaluate => {
            cpu::head_evaluate(&uni(u), f(b(0)), b(1), b(2), b(3), fm(&mut taken[0]))
        }
        Kernel::HeadBackward => cpu::head_backward(
            &uni(u),
            f(b(0)),
            b(1),
            b(2),
            b(3),
            f(b(4)),
            fm(&mut taken[0]),
            f(b(6)),
        ),
        Kernel::Gae => {
            let (a, rest) = taken.split_at_mut(1);
            cpu::gae(
                &uni(u),
                f(b(0)),
                f(b(1)),
                f(b(2)),
                f(b(3)),
                fm(&mut a[0]),
                fm(&mut rest[0]),
            )
        }
        Kernel::GaeReturns => {
            let (a, rest) = taken.split_at_mut(1);
            cpu::gae_returns(&uni(u), f(b(1)), f(&a[0]), fm(&mut rest[0]))
        }
        Kernel::GaeRagged => {
            let (a, rest) = taken.split_at_mut(1);
            cpu::gae_ragged(
                &uni(u),
                f(b(0)),
                f(b(1)),
                f(b(2)),
                f(b(3)),
                fm(&mut a[0]),
                fm(&mut rest[0]),
                b(6),
            )
        }
        Kernel::PpoLoss => {
            let [pg, vg, terms] = &mut taken[..] else {
                unreachable!("ppo_loss writes three buffers")
            };
            cpu::ppo_loss(
                &uni(u),
                f(b(0)),
                f(b(1)),
                f(b(2)),
                f(b(3)),
                f(b(4)),
                f(b(5)),
                f(b(6)),
                fm(pg),
                fm(vg),
                fm(terms),
            )
        }
        Kernel::AdamBegin => {
            let state: &mut [AdamState] = cast_slice_mut(&mut taken[0]);
            cpu::adam_begin(&uni(u), state)
        }
        Kernel::AdamUpdate => {
            let state: &[AdamState] = cast_slice(b(0));
            let norm: &[GroupStats] = cast_slice(b(1));
            let [params, m1, m2] = &mut taken[..] else {
                unreachable!("adam_update writes three buffers")
            };
            cpu::adam_update(&uni(u), state, norm, fm(params), f(b(3)), fm(m1), fm(m2))
        }
        Kernel::GradAccumulate => {
            let [grads, acc] = &mut taken[..] else {
                unreachable!("grad_accumulate writes two buffers")
            };
            cpu::grad_accumulate(&uni(u), fm(grads), fm(acc))
        }
        Kernel::ReducePartial => cpu::reduce_partial(
            &uni(u),
            f(b(0)),
            b(1),
            cast_slice(b(2)),
            cast_slice_mut(&mut taken[0]),
        ),
        Kernel::ReduceFinal => {
            cpu::reduce_final(&uni(u), cast_slice(b(0)), cast_slice_mut(&mut taken[0]))
        }
        Kernel::Normalize => cpu::normalize(
            &uni(u),
            fm(&mut taken[0]),
            b(1),
            cast_slice(b(2)),
            cast_slice(b(3)),
        ),
        Kernel::CopyRows => cpu::copy_rows(&uni(u), b(0), b(1), &mut taken[0]),
        Kernel::FairAdjust => cpu::fair_adjust(
            &uni(u),
            f(b(0)),
            b(1),
            cast_slice(b(2)),
            f(b(3)),
            fm(&mut taken[0]),
        ),
        Kernel::SegmentMeans => {
            cpu::segment_means(&uni(u), f(b(0)), b(1), cast_slice_mut(&mut taken[0]))
        }
    }
}
