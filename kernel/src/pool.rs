//! A fixed set of worker threads that runs one job on disjoint parts of the state, allocating
//! nothing per job.
//!
//! Why not `std::thread::scope` or rayon: spawning a scoped thread allocates, and the kernel
//! promises zero allocations after construction (a counting-allocator test checks it). The
//! pool's threads are created once; a job is a borrowed closure handed over under a mutex and
//! condition variable (futex-based on Linux, no heap). The caller thread works on part 0.
//!
//! Determinism: a job is split into parts by instance index only; each part is processed by
//! exactly one thread and no part reads another's data, so results never depend on the thread
//! count or on scheduling.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Upper bound on threads (and so on parts per job).
pub const THREADS_MAX: usize = 64;

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

struct Control {
    generation: u64,
    job: Option<JobPtr>,
    /// Parts in the current job (worker `w` runs part `w` iff `w < parts`).
    parts: usize,
    /// Worker parts of the current job not yet finished.
    pending: usize,
    panicked: bool,
    shutdown: bool,
}

struct Shared {
    control: Mutex<Control>,
    start: Condvar,
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
            control: Mutex::new(Control {
                generation: 0,
                job: None,
                parts: 0,
                pending: 0,
                panicked: false,
                shutdown: false,
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
        // SAFETY (lifetime erasure): the pointer is only dereferenced by workers between the
        // generation bump below and their `pending` decrement, and this function does not return
        // (even on panic: see `WaitGuard`) until `pending` is zero.
        let ptr: *const (dyn Fn(usize) + Sync + '_) = job;
        let ptr: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(ptr) };
        {
            let mut c = self.shared.control.lock().unwrap();
            c.job = Some(JobPtr(ptr));
            c.parts = parts;
            c.pending = parts - 1;
            c.panicked = false;
            c.generation += 1;
        }
        self.shared.start.notify_all();
        let guard = WaitGuard {
            shared: &self.shared,
        };
        job(0);
        drop(guard);
        let c = self.shared.control.lock().unwrap();
        assert!(
            !c.panicked,
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
        let mut c = self
            .shared
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while c.pending > 0 {
            c = self.shared.done.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        c.job = None;
    }
}

fn worker_loop(shared: &Shared, worker: usize) {
    let mut seen = 0u64;
    loop {
        let job = {
            let mut c = shared.control.lock().unwrap();
            while c.generation == seen && !c.shutdown {
                c = shared.start.wait(c).unwrap();
            }
            if c.shutdown {
                return;
            }
            seen = c.generation;
            // Workers beyond the job's part count have nothing to do this generation.
            if worker >= c.parts {
                continue;
            }
            c.job.expect("job set with generation")
        };
        // SAFETY: see `run_erased`; the caller waits for `pending == 0` before the closure dies.
        let f = unsafe { &*job.0 };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(worker))).is_ok();
        let mut c = shared.control.lock().unwrap();
        c.panicked |= !ok;
        c.pending -= 1;
        if c.pending == 0 {
            shared.done.notify_all();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shared.control.lock().unwrap().shutdown = true;
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
}
