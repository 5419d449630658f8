//! Which jemalloc arena each of the server's threads allocates from: one arena per CPU.
//!
//! jemalloc's default is four arenas per CPU, a thread joining the least used one at its first
//! allocation. Each arena keeps its own freed pages for `dirty_decay_ms` and its own partly
//! used runs, so on two CPUs the server's dozen threads spread over eight arenas held 8–14 MiB
//! more at the acknowledgement ceiling than over two (docs/BENCHMARKS.md, "One jemalloc arena
//! per CPU, and freed pages back after 0.3 s"), for no measured gain in rate. `narenas` can only be set before the
//! allocator starts, as a fixed number, so instead every thread the server starts binds itself
//! here (`thread.arena`), round robin over as many arenas as there are CPUs: a larger machine
//! gets more arenas. jemalloc's `percpu_arena` would do the same per call, by the CPU a thread
//! runs on; it was measured 10 % more CPU per event in the drain, since a batch built on one
//! CPU and freed on another takes the lock of a remote arena.
//!
//! An operator's `_RJEM_MALLOC_CONF` still wins: with fewer arenas (`narenas`) threads bind
//! within those, and with `percpu_arena` jemalloc refuses the binding, which is then left alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tikv_jemalloc_ctl::{Access, AsName as _};

use crate::metrics::memory::jemalloc_is_global;

/// Threads bound so far: the next one takes arena `BOUND % arenas()`.
static BOUND: AtomicUsize = AtomicUsize::new(0);

/// Arenas the threads are spread over: one per CPU, within jemalloc's `arenas.narenas`.
fn arenas() -> usize {
    static ARENAS: OnceLock<usize> = OnceLock::new();
    *ARENAS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let configured = tikv_jemalloc_ctl::arenas::narenas::read().map_or(1, |n| n as usize);
        cpus.clamp(1, configured.max(1))
    })
}

/// Binds the calling thread to the next arena, round robin. Call it first thing in every thread
/// the server starts; does nothing when jemalloc is not the global allocator (unit tests).
pub fn bind_this_thread() {
    if !jemalloc_is_global() {
        return;
    }
    let arena = (BOUND.fetch_add(1, Ordering::Relaxed) % arenas()) as u32;
    let bound = b"thread.arena\0".name().write(arena);
    if let Err(error) = bound {
        tracing::debug!(arena, %error, "jemalloc refused to bind the thread to an arena");
    }
}
