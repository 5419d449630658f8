//! The connection table: every open connection, its phase, and which one to close when the
//! budget is spent.
//!
//! A connection is in one of two pools: `regular` (up to the cap derived from the descriptor
//! limit) or `reserve` (a few more, served only for the operator endpoints). When a pool is
//! full, the connection that has waited longest while idle or half-open (no request yet, or
//! a request head still arriving) is doomed to make room: its task drops it at once. A
//! connection serving a request, or upgraded to the feed's WebSocket, is never doomed.
//!
//! The table is a map under one lock: admitting or removing a connection is O(1), looking for
//! a victim is a scan, done only when a pool is full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted; not a byte received yet.
    Fresh,
    /// Part of a request head received; no request dispatched yet.
    Head,
    /// Serving a request.
    Active,
    /// Between requests on a keep-alive connection.
    Idle,
    /// Upgraded to a WebSocket (the feed): outside these timeouts.
    Upgraded,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Fresh,
            1 => Phase::Head,
            2 => Phase::Active,
            3 => Phase::Idle,
            _ => Phase::Upgraded,
        }
    }

    /// Idle or half-open: may be closed to make room.
    pub fn sheddable(self) -> bool {
        matches!(self, Phase::Fresh | Phase::Head | Phase::Idle)
    }

    /// The label of a connection closed in this phase (`half_open` or `idle`).
    pub fn label(self) -> &'static str {
        match self {
            Phase::Fresh | Phase::Head => "half_open",
            Phase::Idle => "idle",
            Phase::Active => "active",
            Phase::Upgraded => "upgraded",
        }
    }
}

/// Which pool a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The budget under the descriptor limit.
    Regular,
    /// The reserve for the operator endpoints.
    Reserve,
}

/// The two timeouts a connection's phase is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A request head must arrive within this long.
    pub header_read: Duration,
    /// A keep-alive connection may be idle this long.
    pub keep_alive_idle: Duration,
}

/// One open connection.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    pool: Pool,
    epoch: Instant,
    phase: AtomicU8,
    /// When the current phase started, ms since `epoch` (kept from `Fresh` into `Head`).
    since_ms: AtomicU64,
    in_flight: AtomicUsize,
    doomed: AtomicBool,
    kill: Notify,
    /// Notified when a response leaves the connection idle: its deadline is new.
    idle: Notify,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn set(&self, phase: Phase) {
        self.since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// The pool it counts against.
    pub fn pool(&self) -> Pool {
        self.pool
    }

    /// Its phase now.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Bytes arrived: a fresh or idle connection is now reading a request head.
    pub fn on_bytes(&self) {
        match self.phase() {
            // The head's deadline still counts from the accept.
            Phase::Fresh => self.phase.store(Phase::Head as u8, Ordering::Release),
            Phase::Idle => self.set(Phase::Head),
            _ => {}
        }
    }

    /// A request was dispatched to the router.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self.phase() != Phase::Upgraded {
            self.set(Phase::Active);
        }
    }

    /// A response was written (or abandoned).
    pub fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 && self.phase() != Phase::Upgraded {
            self.set(Phase::Idle);
            // `notify_one` keeps a permit when the task is not waiting yet.
            self.idle.notify_one();
        }
    }

    /// Resolves once a response has left the connection idle. Its task then takes the idle
    /// deadline: while a request was active it had none to wait for.
    pub async fn turned_idle(&self) {
        self.idle.notified().await;
    }

    /// The connection was handed to a WebSocket.
    pub fn upgraded(&self) {
        self.phase.store(Phase::Upgraded as u8, Ordering::Release);
    }

    /// When the current phase times out, if it can.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let limit = match self.phase() {
            Phase::Fresh | Phase::Head => timeouts.header_read,
            Phase::Idle => timeouts.keep_alive_idle,
            Phase::Active | Phase::Upgraded => return None,
        };
        let since = Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        Some(self.epoch + since + limit)
    }

    /// Whether it was chosen to make room.
    pub fn is_doomed(&self) -> bool {
        self.doomed.load(Ordering::Acquire)
    }

    /// Resolves once the connection is chosen to make room.
    pub async fn doomed(&self) {
        if self.is_doomed() {
            return;
        }
        self.kill.notified().await;
    }

    fn doom(&self) {
        self.doomed.store(true, Ordering::Release);
        // `notify_one` keeps a permit when the task is not waiting yet.
        self.kill.notify_one();
    }
}

/// Open connections per pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Regular connections open (doomed ones included until they close).
    pub regular: usize,
    /// Reserve connections open.
    pub reserve: usize,
}

#[derive(Default)]
struct Inner {
    conns: HashMap<u64, Arc<Conn>>,
    open: Counts,
    doomed: Counts,
}

impl Inner {
    /// Doomed connections whose socket is still open, in both pools.
    fn closing(&self) -> usize {
        self.doomed.regular + self.doomed.reserve
    }
}

/// What [`Table::admit`] decided for a new connection.
pub enum Admission {
    /// Serve it; `shed` is the phase of the connection closed to make room, if one was.
    Admitted {
        /// Its place in the table; dropping it removes the connection.
        slot: Slot,
        /// The phase of the connection doomed to make room.
        shed: Option<Phase>,
    },
    /// Both pools are full of connections in use: answer 503 and close.
    Refused,
}

/// The table of open connections.
pub struct Table {
    epoch: Instant,
    limits: Counts,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
    /// Notified each time a doomed connection's socket closes.
    closed: Notify,
}

impl Table {
    /// A table allowing `limits.regular` regular and `limits.reserve` reserve connections.
    pub fn new(limits: Counts) -> Arc<Table> {
        Arc::new(Table {
            epoch: Instant::now(),
            limits,
            next_id: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
            closed: Notify::new(),
        })
    }

    /// The limits.
    pub fn limits(&self) -> Counts {
        self.limits
    }

    /// Open connections now.
    pub fn counts(&self) -> Counts {
        self.inner.lock().open
    }

    /// Doomed connections whose socket is not closed yet. Each still holds a descriptor: a
    /// doomed connection is closed by its own task, which may not have run yet.
    pub fn closing(&self) -> usize {
        self.inner.lock().closing()
    }

    /// Waits until at most `allowed` doomed connections are still open, or `patience` has
    /// passed (a doomed connection's task closes it at its next poll, so the wait is short;
    /// the bound keeps a stuck task from stopping the accept loop for good). Returns whether
    /// the count is within `allowed`.
    pub async fn wait_for_closing(&self, allowed: usize, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so a close between the two is not missed.
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.closing() <= allowed {
                return true;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return self.closing() <= allowed;
            }
        }
    }

    /// Admits a new connection, dooming the oldest idle or half-open one when its pool is full.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.inner.lock();
        let mut shed = None;
        let pool = if live(&inner, Pool::Regular) < self.limits.regular {
            Pool::Regular
        } else if let Some(phase) = doom_oldest(&mut inner, Pool::Regular) {
            shed = Some(phase);
            Pool::Regular
        } else if live(&inner, Pool::Reserve) < self.limits.reserve {
            Pool::Reserve
        } else if let Some(phase) = doom_oldest(&mut inner, Pool::Reserve) {
            shed = Some(phase);
            Pool::Reserve
        } else {
            return Admission::Refused;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            pool,
            epoch: self.epoch,
            phase: AtomicU8::new(Phase::Fresh as u8),
            since_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            in_flight: AtomicUsize::new(0),
            doomed: AtomicBool::new(false),
            kill: Notify::new(),
            idle: Notify::new(),
        });
        inner.conns.insert(id, conn.clone());
        *count_mut(&mut inner.open, pool) += 1;
        Admission::Admitted {
            slot: Slot {
                table: self.clone(),
                conn,
            },
            shed,
        }
    }

    /// Dooms the oldest idle or half-open connection of any pool (the process is out of
    /// descriptors); returns its phase.
    pub fn shed_one(&self) -> Option<Phase> {
        let mut inner = self.inner.lock();
        doom_oldest(&mut inner, Pool::Regular).or_else(|| doom_oldest(&mut inner, Pool::Reserve))
    }
}

fn count_mut(counts: &mut Counts, pool: Pool) -> &mut usize {
    match pool {
        Pool::Regular => &mut counts.regular,
        Pool::Reserve => &mut counts.reserve,
    }
}

fn count(counts: &Counts, pool: Pool) -> usize {
    match pool {
        Pool::Regular => counts.regular,
        Pool::Reserve => counts.reserve,
    }
}

/// Open connections of a pool that are not already on their way out.
fn live(inner: &Inner, pool: Pool) -> usize {
    count(&inner.open, pool).saturating_sub(count(&inner.doomed, pool))
}

fn doom_oldest(inner: &mut Inner, pool: Pool) -> Option<Phase> {
    let victim = inner
        .conns
        .values()
        .filter(|c| c.pool == pool && !c.is_doomed() && c.phase().sheddable())
        .min_by_key(|c| (c.since_ms.load(Ordering::Relaxed), c.id))?
        .clone();
    let phase = victim.phase();
    victim.doom();
    *count_mut(&mut inner.doomed, pool) += 1;
    Some(phase)
}

/// A connection's place in the [`Table`]; dropping it (when the socket closes) frees it.
pub struct Slot {
    table: Arc<Table>,
    conn: Arc<Conn>,
}

impl Slot {
    /// The connection.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.table.inner.lock();
        if inner.conns.remove(&self.conn.id).is_some() {
            let pool = self.conn.pool;
            *count_mut(&mut inner.open, pool) -= 1;
            if self.conn.is_doomed() {
                *count_mut(&mut inner.doomed, pool) -= 1;
                drop(inner);
                self.table.closed.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(table: &Arc<Table>) -> (Slot, Option<Phase>) {
        match table.admit() {
            Admission::Admitted { slot, shed } => (slot, shed),
            Admission::Refused => panic!("refused"),
        }
    }

    /// Pins when a connection's phase started, so the test does not depend on the clock.
    fn since(slot: &Slot, ms: u64) {
        slot.conn().since_ms.store(ms, Ordering::Relaxed);
    }

    #[test]
    fn sheds_the_oldest_idle_or_half_open_then_uses_the_reserve_then_refuses() {
        let table = Table::new(Counts {
            regular: 3,
            reserve: 1,
        });
        let (a, _) = admitted(&table);
        let (b, _) = admitted(&table);
        let (c, _) = admitted(&table);
        // a serves a request, b is idle after one since t=50, c sent nothing since t=10.
        a.conn().request_started();
        b.conn().request_started();
        b.conn().request_finished();
        assert_eq!(b.conn().phase(), Phase::Idle);
        assert_eq!(c.conn().phase(), Phase::Fresh);
        since(&b, 50);
        since(&c, 10);
        // Full: the oldest sheddable (c) goes.
        let (d, shed) = admitted(&table);
        assert_eq!(shed, Some(Phase::Fresh));
        assert!(c.conn().is_doomed() && !b.conn().is_doomed());
        assert_eq!(d.conn().pool(), Pool::Regular);
        since(&d, 100);
        // Then b (idle since 50) before d (half-open since 100).
        let (e, shed) = admitted(&table);
        assert_eq!(shed, Some(Phase::Idle));
        assert!(b.conn().is_doomed() && !d.conn().is_doomed());
        since(&e, 200);
        let (f, shed) = admitted(&table);
        assert_eq!(shed, Some(Phase::Fresh));
        assert!(d.conn().is_doomed());
        // Every live regular connection busy: the reserve, then a refusal.
        e.conn().request_started();
        f.conn().request_started();
        let (g, shed) = admitted(&table);
        assert_eq!((g.conn().pool(), shed), (Pool::Reserve, None));
        g.conn().request_started();
        assert!(matches!(table.admit(), Admission::Refused));
        // Closing frees the place.
        drop((b, c, d));
        assert_eq!(
            table.counts(),
            Counts {
                regular: 3,
                reserve: 1
            }
        );
        drop(a);
        let (h, shed) = admitted(&table);
        assert_eq!((h.conn().pool(), shed), (Pool::Regular, None));
    }

    /// A doomed connection counts as closing until its slot drops, and the accept loop's wait
    /// ends when it does (or at its patience, saying the count is still over).
    #[tokio::test]
    async fn doomed_connections_count_as_closing_until_their_socket_drops() {
        let table = Table::new(Counts {
            regular: 1,
            reserve: 0,
        });
        let (old, _) = admitted(&table);
        let (new, shed) = admitted(&table);
        assert_eq!(shed, Some(Phase::Fresh));
        assert_eq!(table.closing(), 1);
        assert!(
            !table.wait_for_closing(0, Duration::from_millis(20)).await,
            "still open: the wait gives up at its patience"
        );
        let closer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(old);
        });
        assert!(table.wait_for_closing(0, Duration::from_secs(30)).await);
        assert_eq!(table.closing(), 0);
        closer.await.unwrap();
        // A connection that was not doomed never counted.
        drop(new);
        assert_eq!(table.closing(), 0);
    }

    #[test]
    fn phases_and_deadlines() {
        let table = Table::new(Counts {
            regular: 1,
            reserve: 0,
        });
        let (slot, _) = admitted(&table);
        let conn = slot.conn();
        let t = Timeouts {
            header_read: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(75),
        };
        let fresh = conn.deadline(&t).unwrap();
        conn.on_bytes();
        assert_eq!(conn.phase(), Phase::Head);
        assert_eq!(
            conn.deadline(&t),
            Some(fresh),
            "the head counts from the accept"
        );
        conn.request_started();
        assert_eq!(conn.deadline(&t), None);
        conn.request_finished();
        let idle = conn.deadline(&t).unwrap();
        assert!(idle > fresh + Duration::from_secs(60));
        conn.request_started();
        conn.upgraded();
        conn.request_finished();
        assert_eq!(conn.phase(), Phase::Upgraded);
        assert_eq!(conn.deadline(&t), None);
        assert!(!conn.phase().sheddable());
    }
}
