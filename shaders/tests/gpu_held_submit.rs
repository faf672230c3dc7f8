//! Guarantees: `Executor::queue_read` on the GPU holds its command buffer back so that the
//! acting steps of several executors on one device are one submission and their collects one
//! wait, without changing what any call sequence returns: every sequence below (held work
//! followed by writes of the same executor, by runs, by a read of another buffer, by a drop)
//! returns exactly what the CPU twins return for it. One test, because the submission counters
//! are per process and tests of one binary run side by side.

mod common;

use common::{gpu, integers};
use fairground_shaders::layout::{CopyMode, CopyParams};
use fairground_shaders::registry::Kernel;
use fairground_shaders::{
    BufferId, CpuExecutor, Executor, ExecutorExt, GpuExecutor, Program, SeqId, gpu_exec,
};

const N: usize = 300;

/// `dst := src` (a range copy of N words) as the program's one sequence.
fn copy_program() -> (Program, SeqId, BufferId, BufferId) {
    let mut prog = Program::new();
    let src = prog.buffer("src", N);
    let index = prog.buffer("index", 1);
    let dst = prog.buffer("dst", N);
    let seq = prog.sequence();
    let p = CopyParams {
        rows: N as u32,
        width: 1,
        mode: CopyMode::Range as u32,
        ..CopyParams::default()
    };
    prog.push(seq, Kernel::CopyRows, &p, &[src, index, dst], N as u64);
    (prog, seq, src, dst)
}

/// One call sequence that mixes held work with the calls that must see it in order; what it
/// collects, in order.
fn script<E: Executor>(e: &mut E, seq: SeqId, src: BufferId, dst: BufferId) -> Vec<Vec<u32>> {
    let (x, y, z) = (
        integers(1, N, 1 << 30),
        integers(2, N, 1 << 30),
        integers(3, N, 1 << 30),
    );
    let mut out = Vec::new();
    e.write(src, &x).unwrap();
    e.queue_read(&[seq], dst).unwrap();
    // A write after held work: the held copy read src as x.
    e.write(src, &y).unwrap();
    out.push(e.collect(dst).unwrap());
    // A run after held work, then a collect with nothing queued for it: a plain read (y).
    e.queue_read(&[seq], dst).unwrap();
    e.run(seq).unwrap();
    out.push(e.collect(dst).unwrap());
    // A write into the read buffer itself after held work: the collect sees the write.
    e.write(src, &x).unwrap();
    e.queue_read(&[seq], dst).unwrap();
    e.write(dst, &z).unwrap();
    out.push(e.collect(dst).unwrap());
    // A read of another buffer while work is held, then the collect.
    e.queue_read(&[seq], dst).unwrap();
    out.push(e.read_words(src).unwrap());
    out.push(e.collect(dst).unwrap());
    out
}

#[test]
fn held_steps_of_several_executors_are_one_submission_and_change_nothing() {
    let Some(ctx) = gpu("held_steps_of_several_executors_are_one_submission_and_change_nothing")
    else {
        return;
    };
    let (prog, seq, src, dst) = copy_program();

    // Three executors, each writing its own input and queueing its step: one submission.
    let mut nets: Vec<GpuExecutor> = (0..3)
        .map(|_| GpuExecutor::new(ctx.clone(), prog.clone()).unwrap())
        .collect();
    let inputs: Vec<Vec<u32>> = (0..3).map(|k| integers(10 + k, N, u32::MAX)).collect();
    // Warm the staging buffers and drain anything earlier (construction writes).
    for net in &mut nets {
        net.read_words(dst).unwrap();
    }
    for _ in 0..2 {
        let (submits, readbacks) = (gpu_exec::submits(), gpu_exec::readbacks());
        for (net, input) in nets.iter_mut().zip(&inputs) {
            net.write(src, input).unwrap();
            net.queue_read(&[seq], dst).unwrap();
        }
        assert_eq!(
            gpu_exec::submits(),
            submits,
            "held work is not submitted yet"
        );
        for (net, input) in nets.iter_mut().zip(&inputs) {
            assert_eq!(&net.collect(dst).unwrap(), input);
        }
        assert_eq!(
            gpu_exec::submits() - submits,
            1,
            "three steps, one submission"
        );
        assert_eq!(gpu_exec::readbacks() - readbacks, 3);
    }

    // An executor dropped while it holds work: its work is submitted, the others' unharmed.
    let mut a = GpuExecutor::new(ctx.clone(), prog.clone()).unwrap();
    let mut b = GpuExecutor::new(ctx.clone(), prog.clone()).unwrap();
    a.write(src, &inputs[0]).unwrap();
    a.queue_read(&[seq], dst).unwrap();
    b.write(src, &inputs[1]).unwrap();
    b.queue_read(&[seq], dst).unwrap();
    drop(a);
    assert_eq!(b.collect(dst).unwrap(), inputs[1]);

    // Every ordering case returns what the twins return.
    let mut g = GpuExecutor::new(ctx.clone(), prog.clone()).unwrap();
    let mut c = CpuExecutor::new(prog);
    let (got, want) = (script(&mut g, seq, src, dst), script(&mut c, seq, src, dst));
    assert_eq!(got.len(), want.len());
    for (k, (g, c)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, c, "script step {k}");
    }
    // And the script's own expectations, so the twins are not wrong the same way.
    let (x, y, z) = (
        integers(1, N, 1 << 30),
        integers(2, N, 1 << 30),
        integers(3, N, 1 << 30),
    );
    assert_eq!(want, vec![x.clone(), y, z, x.clone(), x]);
}
