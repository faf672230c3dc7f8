//! The `cpu-gemm` backend: runs a [`Program`] on the CPU with its matrix products (the dense
//! forward, input-gradient and weight-gradient launches) through the `gemm` crate, on a fixed
//! set of threads, and every other launch with its CPU twin.
//!
//! Why `gemm`: measured against `matrixmultiply` and `faer` on this project's shapes (the
//! networks' layers at 256 and 320 rows, and `256×256 @ 256×128`), it was the fastest on one
//! core and on two (README, "Training throughput"); `faer` multiplies through it.
//!
//! Determinism. The twins keep the shaders' summation order, so their bits are the same on every
//! machine; a tuned GEMM sums in its own blocked order with fused multiply-adds, so this
//! executor agrees with the twins within a written tolerance (`shaders/tests/gemm_vs_twin.rs`),
//! not bit for bit. What it promises instead: same inputs ⇒ same bits, for any thread count.
//! Every product is cut into tiles of fixed size ([`TILE_ROWS`] × [`TILE_COLS`] of the output)
//! whatever the thread count, and each tile is one single-threaded `gemm` call over the whole
//! inner dimension, so threads only decide who computes a tile, never how a sum is split (the
//! `gemm` crate picks its blocking from the shape it is given, so handing it a thread-dependent
//! shape would change the bits). The crate picks its kernels at run time for the CPU's vector
//! instructions, so bits can differ between machines with different instruction sets; audits
//! across machines use the `cpu` backend (the twins).
//!
//! No allocation per launch: the per-launch binding tables are built once, the row gathers of
//! grouped networks reuse scratch that grows to its largest size and stays, and the written
//! buffers are moved out and back, never copied.

use crate::cpu_exec::{run_twin, set_host_uniform, write_host};
use crate::error::ShaderError;
use crate::layout::{DenseParams, HeadParams};
use crate::program::{BufferId, Executor, Op, OpRef, Program, SeqId};
use crate::registry::{Access, Kernel};
use bytemuck::{cast_slice, cast_slice_mut};
use std::sync::Arc;

/// Output rows of one tile of a product.
///
/// Why 128 × 256: each tile is one `gemm` call that packs its own operand panels, so small tiles
/// pack the same weights again and again. Measured with `bench train --env ah --instances 8
/// --iterations 3` on the 2-core machine, in one session: 64 × 128 tiles gave 16.4k trained
/// agent-steps/s, 128 × 128 21-22k, 128 × 256 27-29k. The paper's layers are at most 256 wide
/// and its products 256 or 320 rows tall, so a layer is still two or three tiles, one per core.
pub const TILE_ROWS: usize = 128;
/// Output columns of one tile of a product.
pub const TILE_COLS: usize = 256;

/// Rows of one chunk of a policy-head launch (`head_evaluate`, `head_backward`) split over the
/// threads. Every row of a head is independent of the others, so each chunk is the twin run on
/// its rows and the result is the twin's, bit for bit, for any split. Why split at all: HS's
/// dispatcher has 20 × 50 logits per row, and its heads, run on one core, were a fifth of HS's
/// training time (perf, `bench train --env hs`).
pub const HEAD_ROWS: usize = 64;

/// `gemm` calls so far in this process (one per tile): see [`gemm_calls`].
static GEMM_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The `gemm` calls (tiles) every executor of this process has made. The crate allocates its
/// packing workspace on each call (gemm-common 0.18, `gemm_basic_generic`: one `MemBuffer` and
/// one `vec!`), so `shaders/tests/gemm_no_alloc.rs` holds the executor to at most that much.
pub fn gemm_calls() -> u64 {
    GEMM_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A matrix operand: element (i, j) at `ptr[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// The output of a product: element (i, j) at `ptr[i * rs + j]`.
#[derive(Clone, Copy)]
struct MatMut {
    ptr: *mut f32,
    rs: isize,
}

// SAFETY: the pointers are only dereferenced inside `product`, while the slices they come from
// are borrowed by its caller, and distinct tiles write disjoint elements of the output.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}
unsafe impl Send for MatMut {}
unsafe impl Sync for MatMut {}

/// The threads the products run on. Shared by every executor of a trainer: the networks run
/// one after another, never at once.
#[derive(Clone)]
pub struct GemmPool {
    pool: Option<Arc<rayon::ThreadPool>>,
    threads: usize,
}

impl GemmPool {
    /// `threads` worker threads (1: the calling thread only, no pool).
    pub fn new(threads: usize) -> Result<Self, ShaderError> {
        let threads = threads.max(1);
        let pool = if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("fairground-gemm-{i}"))
                .build()
                .map_err(|e| ShaderError::Device(format!("gemm thread pool: {e}")))?;
            Some(Arc::new(pool))
        } else {
            None
        };
        Ok(Self { pool, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `work(first_row, out_chunk)` for every [`HEAD_ROWS`]-row chunk of `out` (`width` words
    /// per row), on the pool's threads when there are several chunks.
    fn row_chunks(
        &self,
        out: &mut [u32],
        width: usize,
        rows: usize,
        work: impl Fn(usize, &mut [u32]) + Sync,
    ) {
        let out = &mut out[..rows * width];
        let chunk = (HEAD_ROWS * width).max(1);
        match &self.pool {
            Some(pool) if rows > HEAD_ROWS => {
                use rayon::prelude::*;
                pool.install(|| {
                    out.par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(c, o)| work(c * HEAD_ROWS, o))
                });
            }
            _ => out
                .chunks_mut(chunk)
                .enumerate()
                .for_each(|(c, o)| work(c * HEAD_ROWS, o)),
        }
    }

    /// Every product of `jobs`, cut into fixed tiles, all tiles in one parallel region (the
    /// parameter sets of a grouped launch are independent products, so their tiles share the
    /// cores rather than running set after set). `starts` is scratch (each job's first tile).
    ///
    /// # Safety
    /// Each job's operands must address valid matrices of its shape, its output must not
    /// overlap any operand, and no two jobs' outputs may overlap; nothing else may access the
    /// outputs meanwhile.
    unsafe fn run_jobs(&self, jobs: &[Job], starts: &mut Vec<usize>) {
        starts.clear();
        let mut total = 0;
        for job in jobs {
            starts.push(total);
            total += job.tiles();
        }
        let tile = |t: usize| {
            let j = starts.partition_point(|&s| s <= t) - 1;
            // SAFETY: the caller's contract, job by job.
            unsafe { jobs[j].tile(t - starts[j]) }
        };
        match &self.pool {
            Some(pool) if total > 1 => {
                use rayon::prelude::*;
                pool.install(|| (0..total).into_par_iter().for_each(tile));
            }
            _ => (0..total).for_each(tile),
        }
    }
}

/// One product `c[m × n] = a[m × k] · b[k × n]` (`accumulate`: `c +=`), and what each tile of
/// it does around its `gemm` call: a forward's tile starts from the bias and ends activated, so
/// the elementwise work runs on the tile's core too.
#[derive(Clone, Copy)]
struct Job {
    m: usize,
    n: usize,
    k: usize,
    c: MatMut,
    accumulate: bool,
    a: Mat,
    b: Mat,
    /// Forward launches: every output row starts as these `n` values (then `c +=`).
    bias: Option<Bias>,
    activation: u32,
}

#[derive(Clone, Copy)]
struct Bias(*const f32);

// SAFETY: as for `Mat`: dereferenced only inside `run_jobs`, under its caller's borrows.
unsafe impl Send for Bias {}
unsafe impl Sync for Bias {}

impl Job {
    fn tiles(&self) -> usize {
        tile_grid(self.m, self.n)
    }

    /// Tile `t` (row-major over the tile grid): one single-threaded `gemm` call over the whole
    /// inner dimension, whatever the thread count.
    ///
    /// # Safety
    /// [`GemmPool::run_jobs`]' contract.
    unsafe fn tile(&self, t: usize) {
        let tn = self.n.div_ceil(TILE_COLS);
        let (i0, j0) = ((t / tn) * TILE_ROWS, (t % tn) * TILE_COLS);
        let (rows, cols) = (TILE_ROWS.min(self.m - i0), TILE_COLS.min(self.n - j0));
        let (c, a, b) = (self.c, self.a, self.b);
        // SAFETY: the caller's contract; the tile lies inside every operand.
        unsafe {
            let dst = c.ptr.offset(i0 as isize * c.rs + j0 as isize);
            let row =
                |i: usize| std::slice::from_raw_parts_mut(dst.offset(i as isize * c.rs), cols);
            if let Some(bias) = self.bias {
                let bias = std::slice::from_raw_parts(bias.0.add(j0), cols);
                (0..rows).for_each(|i| row(i).copy_from_slice(bias));
            }
            if self.k == 0 {
                if !self.accumulate {
                    (0..rows).for_each(|i| row(i).fill(0.0));
                }
            } else {
                GEMM_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                gemm::gemm(
                    rows,
                    cols,
                    self.k,
                    dst,
                    1,
                    c.rs,
                    self.accumulate,
                    a.ptr.offset(i0 as isize * a.rs),
                    a.cs,
                    a.rs,
                    b.ptr.offset(j0 as isize * b.cs),
                    b.cs,
                    b.rs,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            if self.activation != 0 {
                (0..rows).for_each(|i| activate(row(i), self.activation));
            }
        }
    }
}

/// The widest vector instructions `gemm` dispatches to on this CPU (its kernels are chosen at
/// run time, so bits can differ between CPUs that differ here: the adapter string says which).
fn instruction_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
        "sse2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// Per launch: the buffer of every binding and which bindings it writes.
struct Plan {
    ids: Vec<usize>,
    writable: Vec<usize>,
}

/// Rows of each parameter set of a grouped launch, the gathered rows of each set, and the jobs
/// of the launch (all grown, never shrunk: after the first minibatch nothing is allocated).
#[derive(Default)]
struct Scratch {
    sets: Vec<Vec<usize>>,
    a: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
    c: Vec<Vec<f32>>,
    bias: Vec<f32>,
    jobs: Vec<Job>,
    starts: Vec<usize>,
}

pub struct GemmExecutor {
    program: Program,
    buffers: Vec<Vec<u32>>,
    plans: Vec<Vec<Plan>>,
    /// Per sequence and launch: the later `dense_forward` that reads the same rows and can run
    /// with it (see [`pairs`]).
    partners: Vec<Vec<Option<usize>>>,
    /// Per launch of the running sequence: already run, with its partner.
    done: Vec<bool>,
    pool: GemmPool,
    scratch: Scratch,
    taken: Vec<Vec<u32>>,
}

/// For each `dense_forward` of a sequence, the first later `dense_forward` on the same rows
/// (same input, parameter and group-id buffers) that may run at the earlier one's place: no
/// launch from the earlier one up to it writes what it reads or writes, and none in between
/// reads what it writes. Without a trunk these are the policy's and the value network's first
/// layers, both reading the observations: the "batched where they share inputs".
/// Whether their shapes match is checked at run time, when their uniforms are known.
fn pairs(ops: &[Op], plans: &[Plan]) -> Vec<Option<usize>> {
    let mut partners = vec![None; ops.len()];
    let mut claimed = vec![false; ops.len()];
    for i in 0..ops.len() {
        if ops[i].kernel != Kernel::DenseForward || claimed[i] {
            continue;
        }
        let ids = &plans[i].ids;
        let j = (i + 1..ops.len()).find(|&j| {
            ops[j].kernel == Kernel::DenseForward
                && plans[j].ids[..3] == ids[..3]
                && plans[j].ids[3] != ids[3]
        });
        let Some(j) = j else { continue };
        let (reads_j, writes_j) = (&plans[j].ids, &plans[j].writable);
        let free = (i..j).all(|k| {
            let writes_k = &plans[k].writable;
            let reads_k = &plans[k].ids;
            !writes_k.iter().any(|b| reads_j.contains(b))
                && (k == i || !reads_k.iter().any(|b| writes_j.contains(b)))
        });
        if free {
            partners[i] = Some(j);
            claimed[j] = true;
        }
    }
    partners
}

impl GemmExecutor {
    pub fn new(program: Program, pool: GemmPool) -> Self {
        let buffers = program
            .buffers
            .iter()
            .map(|b| vec![0u32; b.words])
            .collect();
        let plans = program
            .sequences
            .iter()
            .map(|ops| {
                ops.iter()
                    .map(|op| {
                        let ids: Vec<usize> = op.buffers.iter().map(|b| b.0 as usize).collect();
                        let writable = op
                            .kernel
                            .storage()
                            .iter()
                            .zip(&ids)
                            .filter(|(a, _)| matches!(a, Access::ReadWrite(_)))
                            .map(|(_, &i)| i)
                            .collect();
                        Plan { ids, writable }
                    })
                    .collect()
            })
            .collect();
        let partners = program
            .sequences
            .iter()
            .zip(&plans)
            .map(|(ops, plans): (&Vec<Op>, &Vec<Plan>)| pairs(ops, plans))
            .collect();
        let longest = program.sequences.iter().map(Vec::len).max().unwrap_or(0);
        Self {
            program,
            buffers,
            plans,
            partners,
            done: vec![false; longest],
            pool,
            scratch: Scratch::default(),
            taken: Vec::with_capacity(4),
        }
    }
}

fn f(v: &[u32]) -> &[f32] {
    cast_slice(v)
}

fn fm(v: &mut [u32]) -> &mut [f32] {
    cast_slice_mut(v)
}

/// The rows of each parameter set (`None`: not grouped, every row in set 0, in place).
fn group_rows(p: &DenseParams, group_ids: &[u32], sets: &mut Vec<Vec<usize>>) -> bool {
    if p.group_count <= 1 {
        return false;
    }
    let groups = p.group_count as usize;
    sets.resize_with(groups.max(sets.len()), Vec::new);
    sets.iter_mut().for_each(Vec::clear);
    for (row, &g) in group_ids[..p.rows as usize].iter().enumerate() {
        let g = g as usize;
        if g < groups {
            sets[g].push(row);
        }
    }
    true
}

/// Copy rows `rows` of the `width`-wide matrix `src` into `dst`, packed.
fn gather(src: &[f32], width: usize, rows: &[usize], dst: &mut Vec<f32>) {
    dst.clear();
    for &r in rows {
        dst.extend_from_slice(&src[r * width..][..width]);
    }
}

/// The shaders' activations (the twins' [`crate::cpu::activate`]), applied in place; the
/// match inside is loop-invariant, so each activation gets its own vectorised loop.
fn activate(y: &mut [f32], activation: u32) {
    if activation != 0 {
        y.iter_mut()
            .for_each(|z| *z = crate::cpu::activate(*z, activation));
    }
}

/// The GEMM launches' view of the executor: its threads and scratch, apart from its buffers.
struct Dense<'a> {
    pool: &'a GemmPool,
    scratch: &'a mut Scratch,
}

/// A packed `rows × width` matrix, for a job's operand.
fn mat(v: &[f32], width: usize) -> Mat {
    Mat {
        ptr: v.as_ptr(),
        rs: width as isize,
        cs: 1,
    }
}

/// The transpose of a packed `rows × width` matrix.
fn mat_t(v: &[f32], width: usize) -> Mat {
    Mat {
        ptr: v.as_ptr(),
        rs: 1,
        cs: width as isize,
    }
}

fn out(v: &mut [f32], width: usize) -> MatMut {
    MatMut {
        ptr: v.as_mut_ptr(),
        rs: width as isize,
    }
}

impl Dense<'_> {
    /// The parameter sets of a launch (1 when it is not grouped), with one gather buffer of
    /// each kind per set.
    fn sets(&mut self, p: &DenseParams, gids: &[u32], outputs: usize) -> (bool, usize) {
        let s = &mut *self.scratch;
        let grouped = group_rows(p, gids, &mut s.sets);
        let sets = if grouped { p.group_count as usize } else { 1 };
        for (v, n) in [
            (&mut s.a, sets),
            (&mut s.b, sets),
            (&mut s.c, outputs * sets),
        ] {
            v.resize_with(n.max(v.len()), Vec::new);
        }
        s.jobs.clear();
        (grouped, sets)
    }

    /// Run the jobs pushed since [`Dense::sets`].
    fn run(&mut self) {
        let s = &mut *self.scratch;
        // SAFETY: every job was built from slices its caller borrows for the whole launch, and
        // each writes its own output (a set's gather buffer, a set's block, or the launch's
        // output when there is one set).
        unsafe { self.pool.run_jobs(&s.jobs, &mut s.starts) };
    }

    /// `dense_forward`: y = act(x Wᵀ + b) per parameter set, for one launch or for two that
    /// read the same rows `x` (a policy's and a value network's first layers, see
    /// [`GemmExecutor::new`]'s pairing): their rows are grouped and gathered once, and the
    /// products of both run in one parallel region. Every output is what its launch alone gives,
    /// bit for bit: the same tiles, the same `gemm` calls.
    fn forward(
        &mut self,
        x: &[f32],
        w: &[f32],
        gids: &[u32],
        outs: &mut [(DenseParams, &mut [f32])],
    ) {
        let p0 = outs[0].0;
        let (n_in, rows) = (p0.in_width as usize, p0.rows as usize);
        let (grouped, sets) = self.sets(&p0, gids, outs.len());
        let s = &mut *self.scratch;
        for g in 0..sets {
            if grouped {
                gather(x, n_in, &s.sets[g], &mut s.a[g]);
            }
            for (o, (p, y)) in outs.iter_mut().enumerate() {
                let n_out = p.out_width as usize;
                let base = g * p.group_stride as usize;
                let weights = &w[base + p.weight_offset as usize..][..n_in * n_out];
                let bias = &w[base + p.bias_offset as usize..][..n_out];
                let (a, c, m) = if grouped {
                    let c = &mut s.c[o * sets + g];
                    c.resize(s.sets[g].len() * n_out, 0.0);
                    (mat(&s.a[g], n_in), out(c, n_out), s.sets[g].len())
                } else {
                    (mat(x, n_in), out(&mut y[..rows * n_out], n_out), rows)
                };
                s.jobs.push(Job {
                    m,
                    n: n_out,
                    k: n_in,
                    c,
                    accumulate: true,
                    a,
                    b: mat_t(weights, n_in),
                    bias: Some(Bias(bias.as_ptr())),
                    activation: p.activation,
                });
            }
        }
        self.run();
        if grouped {
            let s = &*self.scratch;
            for (o, (p, y)) in outs.iter_mut().enumerate() {
                let n_out = p.out_width as usize;
                for g in 0..sets {
                    for (k, &r) in s.sets[g].iter().enumerate() {
                        y[r * n_out..][..n_out]
                            .copy_from_slice(&s.c[o * sets + g][k * n_out..][..n_out]);
                    }
                }
            }
        }
    }

    /// `input_grad`: dx (+)= dz W per parameter set.
    fn input_grad(&mut self, p: &DenseParams, dz: &[f32], w: &[f32], gids: &[u32], dx: &mut [f32]) {
        let (n_in, n_out, rows) = (p.in_width as usize, p.out_width as usize, p.rows as usize);
        let acc = p.accumulate != 0;
        let (grouped, sets) = self.sets(p, gids, 1);
        let s = &mut *self.scratch;
        for g in 0..sets {
            let weights =
                &w[g * p.group_stride as usize + p.weight_offset as usize..][..n_in * n_out];
            let (a, c, m) = if grouped {
                gather(dz, n_out, &s.sets[g], &mut s.a[g]);
                s.c[g].clear();
                s.c[g].resize(s.sets[g].len() * n_in, 0.0);
                (mat(&s.a[g], n_out), out(&mut s.c[g], n_in), s.sets[g].len())
            } else {
                (mat(dz, n_out), out(&mut dx[..rows * n_in], n_in), rows)
            };
            s.jobs.push(Job {
                m,
                n: n_in,
                k: n_out,
                c,
                accumulate: acc && !grouped,
                a,
                b: mat(weights, n_in),
                bias: None,
                activation: 0,
            });
        }
        self.run();
        if grouped {
            let s = &*self.scratch;
            for g in 0..sets {
                for (k, &r) in s.sets[g].iter().enumerate() {
                    let (src, dst) = (&s.c[g][k * n_in..][..n_in], &mut dx[r * n_in..][..n_in]);
                    if acc {
                        dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
            }
        }
    }

    /// `weight_grad_partial`, whole: split 0 of `partial` gets, per set, dzᵀ [x, 1] over all the
    /// set's rows; `weight_grad_reduce` then reads split 0 only.
    fn weight_grad(
        &mut self,
        p: &DenseParams,
        x: &[f32],
        dz: &[f32],
        gids: &[u32],
        partial: &mut [f32],
    ) {
        assert_eq!(
            p.split_base, 0,
            "the cpu-gemm backend never chunks a launch"
        );
        let (n_in, n_out, rows) = (p.in_width as usize, p.out_width as usize, p.rows as usize);
        let cols = n_in + 1;
        let (grouped, sets) = self.sets(p, gids, 1);
        let s = &mut *self.scratch;
        let partial = &mut partial[..sets * n_out * cols];
        for g in 0..sets {
            let (xs, dzs, m): (&[f32], &[f32], usize) = if grouped {
                gather(x, n_in, &s.sets[g], &mut s.a[g]);
                gather(dz, n_out, &s.sets[g], &mut s.b[g]);
                (&s.a[g], &s.b[g], s.sets[g].len())
            } else {
                (&x[..rows * n_in], &dz[..rows * n_out], rows)
            };
            // Set g's block: rows `cols` apart, the product filling columns 0..n_in of each.
            s.jobs.push(Job {
                m: n_out,
                n: n_in,
                k: m,
                c: out(&mut partial[g * n_out * cols..], cols),
                accumulate: false,
                a: mat_t(dzs, n_out),
                b: mat(xs, n_in),
                bias: None,
                activation: 0,
            });
        }
        self.run();
        let s = &mut *self.scratch;
        for g in 0..sets {
            let (dzs, m): (&[f32], usize) = if grouped {
                (&s.b[g], s.sets[g].len())
            } else {
                (&dz[..rows * n_out], rows)
            };
            // The bias column: each output's dz summed over the rows in ascending order, in a
            // packed row of sums (the column itself is `cols` apart).
            s.bias.clear();
            s.bias.resize(n_out, 0.0);
            for d in dzs[..m * n_out].chunks_exact(n_out) {
                s.bias.iter_mut().zip(d).for_each(|(b, v)| *b += v);
            }
            let dst = &mut partial[g * n_out * cols..][..n_out * cols];
            for (o, b) in s.bias.iter().enumerate() {
                dst[o * cols + n_in] = *b;
            }
        }
    }
}

/// The rows `first..first + rows` of a row-major buffer of `width` words per row; a buffer the
/// launch does not read (`used` false: a one-word placeholder) is passed as it is.
fn rows_of(v: &[u32], used: bool, first: usize, width: usize) -> &[u32] {
    if used { &v[first * width..] } else { v }
}

/// `head_evaluate` and `head_backward` over [`HEAD_ROWS`]-row chunks: the twin on each chunk.
fn head(pool: &GemmPool, op: &Op, bufs: &[Vec<u32>], ids: &[usize], out: &mut [u32]) {
    let b = |k: usize| -> &[u32] { &bufs[ids[k]] };
    let p: HeadParams = *bytemuck::from_bytes(&op.uniform);
    let (rows, width) = (p.rows as usize, p.logit_width as usize);
    let comps = p.component_count as usize;
    let masked = p.use_mask != 0;
    let chunk_params = |first: usize| HeadParams {
        rows: (rows - first).min(HEAD_ROWS) as u32,
        ..p
    };
    match op.kernel {
        Kernel::HeadEvaluate => pool.row_chunks(out, 2, rows, |first, o| {
            crate::cpu::head_evaluate(
                &chunk_params(first),
                f(&b(0)[first * width..]),
                rows_of(b(1), masked, first, width),
                b(2),
                &b(3)[first * comps..],
                fm(o),
            )
        }),
        _ => pool.row_chunks(out, width, rows, |first, o| {
            crate::cpu::head_backward(
                &chunk_params(first),
                f(&b(0)[first * width..]),
                rows_of(b(1), masked, first, width),
                b(2),
                &b(3)[first * comps..],
                f(&b(4)[first * 2..]),
                fm(o),
                f(rows_of(b(6), p.extra_grad == 1, first, width)),
            )
        }),
    }
}

impl GemmExecutor {
    /// `weight_grad_reduce` of a whole `weight_grad`: split 0 is the sum.
    fn weight_reduce(p: &DenseParams, partial: &[f32], grads: &mut [f32]) {
        let (n_in, n_out) = (p.in_width as usize, p.out_width as usize);
        let cols = n_in + 1;
        for g in 0..p.group_count as usize {
            let set = g * p.group_stride as usize;
            let src = &partial[g * n_out * cols..][..n_out * cols];
            for o in 0..n_out {
                let row = &src[o * cols..][..cols];
                let w = &mut grads[set + p.weight_offset as usize + o * n_in..][..n_in];
                if p.accumulate != 0 {
                    w.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                } else {
                    w.copy_from_slice(&row[..n_in]);
                }
                let b = &mut grads[set + p.bias_offset as usize + o];
                *b = if p.accumulate != 0 {
                    *b + row[n_in]
                } else {
                    row[n_in]
                };
            }
        }
    }
}

impl Executor for GemmExecutor {
    fn adapter_name(&self) -> String {
        let threads = self.pool.threads();
        let plural = if threads == 1 { "" } else { "s" };
        format!("cpu-gemm ({threads} thread{plural}, {})", instruction_set())
    }

    fn backend_name(&self) -> &'static str {
        "cpu-gemm"
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
        let seq = seq.0 as usize;
        crate::program::count_flops(&self.program.sequences[seq]);
        // The whole sequence runs on a pool thread, not only its products: a pool's idle
        // workers spin for a while before they sleep, so a caller doing the serial launches
        // beside them would share the cores with spinners (three threads on two cores). Inside
        // the pool the thread that runs the serial launches is one of the workers, and the
        // products' nested `install` runs in place.
        // A sequence whose every product is one tile (an acting step on a few rows) stays on
        // the caller: the hop to the pool and back would cost more than it buys.
        match self.pool.pool.clone() {
            Some(pool) if self.parallel(seq) => pool.install(|| self.run_sequence(seq)),
            _ => self.run_sequence(seq),
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ShaderError> {
        Ok(())
    }
}

/// The tiles of a dense launch's product, from its uniform's current shape (a grouped launch's
/// rows counted together: an upper bound).
fn tiles(kernel: Kernel, p: &DenseParams) -> usize {
    let (rows, n_in, n_out) = (p.rows as usize, p.in_width as usize, p.out_width as usize);
    let (m, n) = match kernel {
        Kernel::DenseForward => (rows, n_out),
        Kernel::InputGrad => (rows, n_in),
        Kernel::WeightGradPartial => (n_out, n_in),
        _ => return 0,
    };
    tile_grid(m, n)
}

/// The tiles of an `m × n` output (none when it is empty).
fn tile_grid(m: usize, n: usize) -> usize {
    m.div_ceil(TILE_ROWS) * n.div_ceil(TILE_COLS)
}

impl GemmExecutor {
    /// The pairs of `dense_forward` launches this executor runs as one (see [`pairs`]), over
    /// all its sequences.
    pub fn paired_launches(&self) -> usize {
        self.partners
            .iter()
            .flatten()
            .filter(|p| p.is_some())
            .count()
    }

    /// Run every launch on its own (`false`): the comparison `shaders/tests/gemm_pairing.rs`
    /// makes, pairing against none.
    pub fn with_pairing(mut self, on: bool) -> Self {
        if !on {
            self.partners.iter_mut().flatten().for_each(|p| *p = None);
        }
        self
    }

    /// Launch `k`'s partner, when it has one and their uniforms now give the same rows and
    /// sets (a last, short minibatch sets both alike; anything else runs them apart).
    fn partner(&self, seq: usize, k: usize) -> Option<usize> {
        let j = self.partners[seq][k]?;
        let ops = &self.program.sequences[seq];
        let (a, b): (&DenseParams, &DenseParams) = (
            bytemuck::from_bytes(&ops[k].uniform),
            bytemuck::from_bytes(&ops[j].uniform),
        );
        let same = a.rows == b.rows && a.in_width == b.in_width && a.group_count == b.group_count;
        same.then_some(j)
    }

    /// Launches `k` and `j`, two `dense_forward`s on the same rows, as one.
    fn forward_pair(&mut self, seq: usize, k: usize, j: usize) {
        let (ids, out_j) = (&self.plans[seq][k].ids, self.plans[seq][j].ids[3]);
        let out_k = ids[3];
        let mut yk = std::mem::take(&mut self.buffers[out_k]);
        let mut yj = std::mem::take(&mut self.buffers[out_j]);
        let ops = &self.program.sequences[seq];
        let (pk, pj): (DenseParams, DenseParams) = (
            *bytemuck::from_bytes(&ops[k].uniform),
            *bytemuck::from_bytes(&ops[j].uniform),
        );
        let b = |i: usize| -> &[u32] { &self.buffers[ids[i]] };
        let mut me = Dense {
            pool: &self.pool,
            scratch: &mut self.scratch,
        };
        me.forward(
            f(b(0)),
            f(b(1)),
            b(2),
            &mut [(pk, fm(&mut yk)), (pj, fm(&mut yj))],
        );
        self.buffers[out_k] = yk;
        self.buffers[out_j] = yj;
    }

    /// Whether any product of the sequence has more than one tile, as its uniforms stand now.
    fn parallel(&self, seq: usize) -> bool {
        self.program.sequences[seq]
            .iter()
            .any(|op| match op.kernel {
                Kernel::DenseForward | Kernel::InputGrad | Kernel::WeightGradPartial => {
                    tiles(op.kernel, bytemuck::from_bytes(&op.uniform)) > 1
                }
                Kernel::HeadEvaluate | Kernel::HeadBackward => {
                    bytemuck::from_bytes::<HeadParams>(&op.uniform).rows as usize > HEAD_ROWS
                }
                _ => false,
            })
    }

    fn run_sequence(&mut self, seq: usize) {
        self.done.fill(false);
        for k in 0..self.program.sequences[seq].len() {
            if self.done[k] {
                continue;
            }
            if let Some(j) = self.partner(seq, k) {
                self.forward_pair(seq, k, j);
                self.done[j] = true;
                continue;
            }
            let plan = &self.plans[seq][k];
            let mut taken = std::mem::take(&mut self.taken);
            taken.extend(
                plan.writable
                    .iter()
                    .map(|&i| std::mem::take(&mut self.buffers[i])),
            );
            let op: &Op = &self.program.sequences[seq][k];
            let b = |j: usize| -> &[u32] { &self.buffers[plan.ids[j]] };
            match op.kernel {
                Kernel::DenseForward | Kernel::InputGrad | Kernel::WeightGradPartial => {
                    let p: DenseParams = *bytemuck::from_bytes(&op.uniform);
                    let kernel = op.kernel;
                    let (b0, b1, b2) = (b(0), b(1), b(2));
                    // The executor's own state is split from the buffers for the call.
                    let mut me = Dense {
                        pool: &self.pool,
                        scratch: &mut self.scratch,
                    };
                    let out = fm(&mut taken[0]);
                    match kernel {
                        Kernel::DenseForward => me.forward(f(b0), f(b1), b2, &mut [(p, out)]),
                        Kernel::InputGrad => me.input_grad(&p, f(b0), f(b1), b2, out),
                        _ => me.weight_grad(&p, f(b0), f(b1), b2, out),
                    }
                }
                Kernel::WeightGradReduce => {
                    let p: DenseParams = *bytemuck::from_bytes(&op.uniform);
                    Self::weight_reduce(&p, f(b(0)), fm(&mut taken[0]));
                }
                Kernel::HeadEvaluate | Kernel::HeadBackward => {
                    head(&self.pool, op, &self.buffers, &plan.ids, &mut taken[0]);
                }
                _ => run_twin(op, &self.buffers, &plan.ids, &mut taken),
            }
            for (&i, buf) in plan.writable.iter().zip(taken.drain(..)) {
                self.buffers[i] = buf;
            }
            self.taken = taken;
        }
    }
}
