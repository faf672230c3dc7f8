//! A fixed set of worker threads that runs one job on disjoint parts of the state, allocating
//! nothing per job.
//!
//! Why not `std::thread::scope` or rayon: spawning a scoped thread allocates, and the kernel
//! promises zero allocations after construction (a counting-allocator test checks it). The
//! pool's threads are created once; a job is a borrowed closure handed over through an atomic
//! generation counter. Threads spin briefly on the atomics before sleeping on a mutex and
//! condition variable (futex-based on Linux, no heap), so short jobs (an HS decision round is
//! tens of µs) do not pay a wake-up per hand-off. The caller thread works on part 0.
//!
//! Determinism: a job is split into parts by instance index only; each part is processed by
//! exactly one thread and no part reads another's data, so results never depend on the thread
//! count or on scheduling.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Upper bound on threads (and so on parts per job).
pub const THREADS_MAX: usize = 64;

/// How long a thread polls an atomic before it sleeps on a condition variable. A sleeping
/// thread costs a futex wake and a reschedule (tens of µs) per hand-off, as much as a whole
/// decision round of 64 HS instances; polling a little first makes short jobs worth splitting.
/// The first `PURE_SPINS` polls busy-wait; the rest yield the core, so that on an oversubscribed
/// machine the thread being waited for gets to run. Counts, not times: the kernel reads no clock.
const SPINS: u32 = 256;
const PURE_SPINS: u32 = 64;

/// Poll `ready` for a while; true if it became true before the polls ran out.
#[inline]
fn poll(ready: impl Fn() -> bool) -> bool {
    for i in 0..SPINS {
        if ready() {
            return true;
        }
        if i < PURE_SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    false
}

/// A mutable view of a range of instances that can be split in two at an instance boundary.
pub trait Split: Sized + Send {
    /// Number of instances in the view.
    fn instances(&self) -> usize;
    /// Split into `[0, at)` and `[at, len)`.
    fn split_at(self, at: usize) -> (Self, Self);
}

/// Type-erased pointer to the job closure. Only dereferenced while `run_erased` waits.
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync));
// SAFETY: the pointee is `Sync` and outlives every use (see `run_erased`).
unsafe impl Send for JobPtr {}

/// What a job is; written under the mutex before `generation` is bumped.
struct Job {
    ptr: Option<JobPtr>,
    /// Parts in the current job (worker `w` runs part `w` iff `w < parts`).
    parts: usize,
}

struct Shared {
    /// Bumped (under `job`'s mutex) to start a job; workers spin on it, then sleep on `start`.
    generation: AtomicU64,
    /// Worker parts of the current job not yet finished.
    pending: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    job: Mutex<Job>,
    start: Condvar,
    /// The caller sleeps here (holding `job`'s mutex to check `pending`) when spinning was not
    /// enough; the last worker to finish takes the mutex before notifying, so no wake-up is lost.
    done: Condvar,
}

/// A pool of `threads - 1` workers plus the calling thread.
pub struct WorkerPool {
    threads: usize,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// A pool that runs jobs on `threads` threads (the caller counts as one).
    pub fn new(threads: usize) -> Self {
        assert!(
            (1..=THREADS_MAX).contains(&threads),
            "threads must be in 1..={THREADS_MAX}, got {threads}"
        );
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            job: Mutex::new(Job {
                ptr: None,
                parts: 0,
            }),
            start: Condvar::new(),
            done: Condvar::new(),
        });
        let handles = (1..threads)
            .map(|worker| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("fairground-worker-{worker}"))
                    .spawn(move || worker_loop(&shared, worker))
                    .expect("spawn worker thread")
            })
            .collect();
        Self {
            threads,
            shared,
            handles,
        }
    }

    /// Number of threads jobs run on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Split `view` into at most `threads` contiguous parts of near-equal size and run `work`
    /// on each part, one part per thread. Returns when every part is done.
    pub fn run_split<V: Split>(&self, view: V, work: &(dyn Fn(V) + Sync)) {
        let n = view.instances();
        let parts = self.threads.min(n.max(1));
        if parts == 1 {
            work(view);
            return;
        }
        // Parts live on the stack: one uncontended mutex each, so a worker can take its own
        // part out through a shared reference.
        let slots: [Mutex<Option<V>>; THREADS_MAX] = std::array::from_fn(|_| Mutex::new(None));
        let mut rest = view;
        let mut start = 0;
        for (p, slot) in slots.iter().enumerate().take(parts) {
            let end = (p + 1) * n / parts;
            if p + 1 == parts {
                *slot.lock().unwrap() = Some(rest);
                break;
            }
            let (head, tail) = rest.split_at(end - start);
            *slot.lock().unwrap() = Some(head);
            rest = tail;
            start = end;
        }
        let job = |p: usize| {
            let part = slots[p].lock().unwrap().take();
            if let Some(part) = part {
                work(part);
            }
        };
        self.run_erased(parts, &job);
    }

    /// Run `job(p)` for `p in 0..parts` (`parts <= threads`), part 0 on the calling thread.
    fn run_erased(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        assert!(parts <= self.threads);
        let sh = &*self.shared;
        // SAFETY (lifetime erasure): the pointer is only dereferenced by workers between the
        // generation bump below and their `pending` decrement, and this function does not return
        // (even on panic: see `WaitGuard`) until `pending` is zero.
        let ptr: *const (dyn Fn(usize) + Sync + '_) = job;
        let ptr: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(ptr) };
        {
            let mut j = sh.job.lock().unwrap();
            j.ptr = Some(JobPtr(ptr));
            j.parts = parts;
            sh.pending.store(parts - 1, Ordering::Release);
            sh.panicked.store(false, Ordering::Relaxed);
            sh.generation.fetch_add(1, Ordering::AcqRel);
        }
        sh.start.notify_all();
        let guard = WaitGuard { shared: sh };
        job(0);
        drop(guard);
        assert!(
            !sh.panicked.load(Ordering::Acquire),
            "a worker thread panicked while running a kernel job"
        );
    }
}

/// Waits for the workers of the current job, also when the caller's part panics.
struct WaitGuard<'a> {
    shared: &'a Shared,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let sh = self.shared;
        poll(|| sh.pending.load(Ordering::Acquire) == 0);
        let mut j = sh.job.lock().unwrap_or_else(|e| e.into_inner());
        while sh.pending.load(Ordering::Acquire) > 0 {
            j = sh.done.wait(j).unwrap_or_else(|e| e.into_inner());
        }
        j.ptr = None;
    }
}

fn worker_loop(sh: &Shared, worker: usize) {
    let mut seen = 0u64;
    loop {
        // Spin first: the next job usually follows quickly.
        for _ in 0..SPINS {
            if sh.generation.load(Ordering::Acquire) != seen || sh.shutdown.load(Ordering::Acquire)
            {
                break;
            }
            std::hint::spin_loop();
        }
        let (ptr, parts) = {
            let mut j = sh.job.lock().unwrap();
            while sh.generation.load(Ordering::Acquire) == seen
                && !sh.shutdown.load(Ordering::Acquire)
            {
                j = sh.start.wait(j).unwrap();
            }
            if sh.shutdown.load(Ordering::Acquire) {
                return;
            }
            seen = sh.generation.load(Ordering::Acquire);
            (j.ptr, j.parts)
        };
        // Workers beyond the job's part count have nothing to do this generation.
        if worker >= parts {
            continue;
        }
        let job = ptr.expect("job set with generation");
        // SAFETY: see `run_erased`; the caller waits for `pending == 0` before the closure dies.
        let f = unsafe { &*job.0 };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(worker))).is_ok();
        if !ok {
            sh.panicked.store(true, Ordering::Release);
        }
        if sh.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Take the mutex so the caller is either before its check or already waiting.
            let _j = sh.job.lock().unwrap();
            sh.done.notify_all();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        {
            let _j = self.shared.job.lock().unwrap();
            self.shared.shutdown.store(true, Ordering::Release);
        }
        self.shared.start.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Chunk<'a>(&'a mut [u64]);
    impl Split for Chunk<'_> {
        fn instances(&self) -> usize {
            self.0.len()
        }
        fn split_at(self, at: usize) -> (Self, Self) {
            let (a, b) = self.0.split_at_mut(at);
            (Chunk(a), Chunk(b))
        }
    }

    #[test]
    fn every_element_is_processed_exactly_once_for_any_thread_count() {
        for threads in [1, 2, 3, 7] {
            let pool = WorkerPool::new(threads);
            for n in [0usize, 1, 2, 5, 64, 1000] {
                let mut data = vec![0u64; n];
                for round in 0..3u64 {
                    pool.run_split(Chunk(&mut data), &|c: Chunk| {
                        for x in c.0.iter_mut() {
                            *x += round + 1;
                        }
                    });
                }
                assert!(data.iter().all(|&x| x == 6), "threads {threads} n {n}");
            }
        }
    }

    #[test]
    fn many_tiny_jobs_back_to_back() {
        // Hand-offs race with spinning and sleeping workers; every job must still see every
        // element exactly once.
        let pool = WorkerPool::new(3);
        let mut data = vec![0u64; 7];
        for _ in 0..20_000 {
            pool.run_split(Chunk(&mut data), &|c: Chunk| {
                for x in c.0.iter_mut() {
                    *x += 1;
                }
            });
        }
        assert!(data.iter().all(|&x| x == 20_000), "{data:?}");
    }

    #[test]
    fn a_panicking_part_is_reported_and_the_pool_survives() {
        let pool = WorkerPool::new(2);
        // Two parts: [0, 1] on the caller, [2, 3] on the worker; only the worker's part panics.
        let mut data = vec![0u64, 1, 2, 3];
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run_split(Chunk(&mut data), &|c: Chunk| {
                if c.0[0] == 2 {
                    panic!("worker part failed");
                }
            });
        }));
        assert!(
            result.is_err(),
            "a panic in a worker's part must reach the caller"
        );
        pool.run_split(Chunk(&mut data), &|c: Chunk| {
            for x in c.0.iter_mut() {
                *x *= 3;
            }
        });
        assert_eq!(data, vec![0, 3, 6, 9], "the pool still works after a panic");
    }
}
