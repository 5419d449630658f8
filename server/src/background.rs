//! Bounded CPU pools: where the server does its CPU work, so that tokio's workers only do I/O.
//!
//! Two pools, each a named [`rayon`] pool sized from the cores, with a bounded queue:
//!
//! - **`ingest-cpu`** (owned by the server state, see [`crate::ingest`]): inflating a body,
//!   checking its signature, splitting it and validating its events. At the process's own
//!   priority: this work is what answers agents.
//! - **`store-cpu`** (process-wide, [`run`]): the batcher's row building and the embedded store's
//!   writes, at `batch.background_nice` *above the process's own nice value*. The spool is what
//!   makes a 202 durable; the store is filled from it afterwards. When both cores are busy, the
//!   work that answers agents should win, and the store should catch up from the spool when load
//!   drops (that is what the spool is for). With idle CPU the priority changes nothing.
//!   Measured: +11 % acknowledged under a flood, the store's rate −9 % (docs/BENCHMARKS.md).
//!
//! Back-pressure: a pool takes at most `2 × threads` jobs at once (running or queued in rayon);
//! further callers wait asynchronously for a slot, holding no thread. A job that panics is
//! answered as [`PoolError::Panicked`] (a bug, logged by the caller), never a process abort.
//!
//! Why a pool of our own threads and not tokio's blocking pool: Linux lets an unprivileged
//! process lower a thread's priority but not raise it back, and tokio's blocking pool reuses its
//! threads for the spool's fsyncs; and a bounded, named pool shows up as such in `top -H`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

/// Why a job did not return its result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool's threads could not be started.
    #[error("cannot start the {pool} threads")]
    Start {
        /// Pool name.
        pool: &'static str,
        /// What the OS said.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// The job panicked (a bug).
    #[error("a {pool} job panicked: {message}")]
    Panicked {
        /// Pool name.
        pool: &'static str,
        /// The panic message, when it was a string.
        message: String,
    },
}

/// A named, bounded pool of CPU threads.
pub struct CpuPool {
    name: &'static str,
    pool: rayon::ThreadPool,
    slots: Arc<Semaphore>,
    threads: usize,
    busy: Arc<AtomicUsize>,
}

impl std::fmt::Debug for CpuPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPool")
            .field("name", &self.name)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl CpuPool {
    /// A pool of `threads` threads (0 = one per core) named `name-N`, each `nice_delta` above
    /// the nice value of the process when the pool starts (0 = same priority).
    pub fn new(name: &'static str, threads: usize, nice_delta: i32) -> Result<CpuPool, PoolError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let nice = (current_thread_nice() + nice_delta.max(0)).min(19);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{name}-{i}"))
            .start_handler(move |_| {
                crate::arenas::bind_this_thread();
                lower_priority(nice);
            })
            .build()
            .map_err(|source| PoolError::Start { pool: name, source })?;
        Ok(CpuPool {
            name,
            pool,
            slots: Arc::new(Semaphore::new(threads * 2)),
            threads,
            busy: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Jobs running or queued right now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Runs `job` on the pool and waits for its result without blocking the async worker;
    /// waits first for a slot when the pool is saturated.
    pub async fn run<R, F>(&self, job: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // The semaphore is never closed, so acquiring only waits.
        let permit = Arc::clone(&self.slots).acquire_owned().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let busy = Arc::clone(&self.busy);
        busy.fetch_add(1, Ordering::Relaxed);
        self.pool.spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(job));
            busy.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            let _ = tx.send(result.map_err(panic_message));
        });
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(PoolError::Panicked {
                pool: self.name,
                message,
            }),
            // The job always sends, unless rayon dropped it (pool shutting down).
            Err(_) => Err(PoolError::Panicked {
                pool: self.name,
                message: "the job was dropped".into(),
            }),
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

static STORE_NICE: AtomicI32 = AtomicI32::new(10);
static STORE_POOL: OnceLock<CpuPool> = OnceLock::new();

/// Sets the store pool's priority (`batch.background_nice`, relative to the process's nice
/// value). Takes effect if called before the pool's first job (the server calls it at start).
pub fn set_nice(nice_delta: i32) {
    STORE_NICE.store(nice_delta.clamp(0, 19), Ordering::Relaxed);
}

/// The process-wide `store-cpu` pool. Process-wide rather than passed around because every
/// store writer and batcher of a process shares one priority class, and stores are built in
/// many places (tests, tools) that should not each start threads.
pub fn store_pool() -> &'static CpuPool {
    STORE_POOL.get_or_init(|| {
        // Row building is at most two jobs at once (the batcher's pipeline) plus one write.
        CpuPool::new("store-cpu", 0, STORE_NICE.load(Ordering::Relaxed))
            .unwrap_or_else(|err| panic!("cannot start the store-cpu pool: {err}"))
    })
}

/// Runs `job` on the `store-cpu` pool (see the module doc).
pub async fn run<R, F>(job: F) -> Result<R, PoolError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    store_pool().run(job).await
}

/// Sets the calling thread's nice value (Linux: nice values are per thread; only ever raised).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    if nice <= current_thread_nice() {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::debug!(nice, %error, "could not lower a pool thread's priority");
    }
}

/// Lowers the calling thread's priority (not done outside Linux).
#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

/// The calling thread's nice value (Linux; 0 elsewhere).
#[cfg(target_os = "linux")]
pub fn current_thread_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

/// The calling thread's nice value (Linux; 0 elsewhere).
#[cfg(not(target_os = "linux"))]
pub fn current_thread_nice() -> i32 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_relative_to_the_process_nice_and_so_do_their_threads() {
        // Relative: the suite may itself run under `nice`.
        let base = current_thread_nice();
        let pool = CpuPool::new("test-cpu", 2, 7).unwrap();
        let (own, child, name) = pool
            .run(|| {
                let child = std::thread::spawn(current_thread_nice).join().unwrap();
                let name = std::thread::current().name().map(str::to_owned);
                (current_thread_nice(), child, name)
            })
            .await
            .unwrap();
        let expected = (base + 7).min(19);
        assert_eq!((own, child), (expected, expected));
        assert!(name.unwrap().starts_with("test-cpu-"));
        // The caller's thread is untouched.
        assert_eq!(current_thread_nice(), base);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_and_the_pool_survives_it() {
        let pool = CpuPool::new("test-cpu", 1, 0).unwrap();
        let panicked = pool.run(|| -> u32 { panic!("boom") }).await;
        assert!(
            matches!(&panicked, Err(PoolError::Panicked { message, .. }) if message == "boom"),
            "{panicked:?}"
        );
        assert_eq!(pool.run(|| 41 + 1).await.unwrap(), 42);
        assert_eq!(pool.busy(), 0);
    }

    #[tokio::test]
    async fn saturation_waits_for_a_slot_instead_of_queueing_without_bound() {
        let pool = Arc::new(CpuPool::new("test-cpu", 1, 0).unwrap());
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(parking_lot::Mutex::new(release_rx));
        // Two slots for one thread: two jobs take them, the third waits.
        let mut running = Vec::new();
        for _ in 0..2 {
            let (pool, rx) = (pool.clone(), release_rx.clone());
            running.push(tokio::spawn(async move {
                pool.run(move || rx.lock().recv().unwrap()).await.unwrap()
            }));
        }
        while pool.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let third = pool.run(|| 3);
        tokio::pin!(third);
        assert!(
            futures_util::poll!(&mut third).is_pending(),
            "a saturated pool makes the caller wait"
        );
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        for job in running {
            job.await.unwrap();
        }
        assert_eq!(third.await.unwrap(), 3);
    }
}
