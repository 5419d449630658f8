//! Background work at a lower CPU priority: the batcher's row building and the embedded store's
//! writes.
//!
//! The spool is what makes a 202 durable; the store is filled from it afterwards. When both
//! cores are busy, the work that answers agents should win, and the store should catch up from
//! the spool when load drops (that is what the spool is for). Without this, a burst made the
//! SQLite writer take half a core away from acknowledgement (docs/BENCHMARKS.md, acknowledged
//! rate ceiling). With idle CPU the priority changes nothing: the writer gets all it needs.
//!
//! Each job runs on a thread of its own, started for it (a batch is tens to hundreds of ms of
//! work, a thread start a few tens of µs), whose nice value is `batch.background_nice`. The
//! threads the job starts inherit it (the SQLite JSON check). A thread of tokio's blocking pool
//! cannot be used: Linux lets an unprivileged process lower a thread's priority but not raise
//! it back, and the pool reuses its threads for the spool's fsyncs.

use std::sync::atomic::{AtomicI32, Ordering};

static NICE: AtomicI32 = AtomicI32::new(0);

/// Sets the nice value of background threads started from now on (0–19; 0 = same as ingest).
pub fn set_nice(nice: i32) {
    NICE.store(nice.clamp(0, 19), Ordering::Relaxed);
}

/// The nice value background threads get.
pub fn nice() -> i32 {
    NICE.load(Ordering::Relaxed)
}

/// Runs `job` on a new background thread named `name` and waits for its result without
/// blocking the async worker. Errors when no thread can be started or the job panics.
pub async fn run<R, F>(name: &str, job: F) -> Result<R, String>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let nice = nice();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_priority(nice);
            let _ = tx.send(job());
        })
        .map_err(|err| format!("cannot start a {name} thread: {err}"))?;
    rx.await.map_err(|_| format!("the {name} job panicked"))
}

/// Lowers the calling thread's priority to `nice` (Linux: nice values are per thread).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::debug!(nice, %error, "could not lower a background thread's priority");
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
    async fn jobs_run_at_the_configured_nice_and_so_do_their_threads() {
        set_nice(7);
        let (own, child) = run("test-bg", || {
            let child = std::thread::spawn(current_thread_nice).join().unwrap();
            (current_thread_nice(), child)
        })
        .await
        .unwrap();
        assert_eq!((own, child), (7, 7));
        // The caller's thread is untouched.
        assert_eq!(current_thread_nice(), 0);
        let panicked = run("test-bg", || panic!("boom")).await;
        assert!(panicked.unwrap_err().contains("panicked"));
        set_nice(0);
    }
}
