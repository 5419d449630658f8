//! The live feed: fan-out of metrics snapshots, event and rejection tails, waterfalls and
//! pipeline traces to WebSocket clients ([`ws`] is the endpoint).
//!
//! In: taps from the ingest path ([`FeedHub::publish_batch`]), the batcher
//! ([`FeedHub::publish_stored_traces`]) and the metrics ticker ([`FeedHub::publish_metrics`]).
//! Out: one bounded queue per client. Each message is serialised once and shared by every
//! client (the per-connection sequence number is spliced in when it is sent).
//!
//! Backpressure: a client's queue holds at most `feed.client_queue_messages` tail messages;
//! when full, the oldest are dropped and the client is told how many it lost (a `dropped`
//! message) when it reads again. Metrics snapshots are never queued twice: the newest replaces
//! an unsent one. A client whose socket stays blocked for `feed.slow_client_timeout_ms` is
//! disconnected. The ingest path never waits on a client: publishing only takes short locks.
//!
//! Cost when nobody listens: the events and lifecycle tails are built only while a client is
//! subscribed to them (one atomic load per batch otherwise); the malformed and pipeline tails
//! keep their last `feed.tail_retention` messages for clients that connect later.

mod build;
pub mod ws;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baddybugs_common::protocol::{FeedFilter, MetricsSnapshot, ServerMessage, Topic};
use baddybugs_common::CheckedEvent;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::FeedConfig;
use crate::metrics::Metrics;
use crate::record::BatchMeta;
use crate::sink::{Store, TraceRow};

/// A message serialised once: its JSON without the `seq` field, and its routing facts.
#[derive(Debug)]
pub struct Outgoing {
    /// Topic (None for control messages: errors, results, pongs).
    pub topic: Option<Topic>,
    /// `{"kind":…}` JSON text.
    pub json: String,
    /// Facts the filters look at.
    pub facets: Facets,
}

/// What a subscription filter can match on.
#[derive(Debug, Default, Clone)]
pub struct Facets {
    /// Event type.
    pub event_type: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Reason codes.
    pub reasons: Vec<String>,
    /// Error flag.
    pub is_error: Option<bool>,
}

impl Facets {
    fn matches(&self, filter: &FeedFilter) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        eq(&filter.event_type, &self.event_type)
            && eq(&filter.name, &self.name)
            && eq(&filter.environment, &self.environment)
            && eq(&filter.trace_id, &self.trace_id)
            && filter
                .reason
                .as_ref()
                .is_none_or(|r| self.reasons.iter().any(|x| x == r))
            && filter.is_error.is_none_or(|e| self.is_error == Some(e))
    }
}

/// Most control messages (results, errors, pongs) queued for one client.
const CONTROL_CAPACITY: usize = 256;

/// One client's queue.
#[derive(Default)]
struct Queue {
    control: VecDeque<Arc<Outgoing>>,
    tail: VecDeque<Arc<Outgoing>>,
    metrics: Option<Arc<Outgoing>>,
    bytes: usize,
    dropped_unreported: u64,
}

/// One connected client.
pub struct Client {
    /// Connection id.
    pub id: u64,
    /// Remote address.
    pub remote: String,
    subscriptions: Mutex<(Vec<Topic>, FeedFilter)>,
    queue: Mutex<Queue>,
    notify: Notify,
    dropped_total: AtomicU64,
    capacity: usize,
}

impl Client {
    fn push(&self, message: Arc<Outgoing>) {
        let mut q = self.queue.lock();
        match message.topic {
            Some(Topic::Metrics) => {
                if let Some(old) = q.metrics.replace(message.clone()) {
                    q.bytes -= old.json.len();
                }
                q.bytes += message.json.len();
            }
            Some(_) => {
                q.bytes += message.json.len();
                q.tail.push_back(message);
                while q.tail.len() > self.capacity {
                    if let Some(old) = q.tail.pop_front() {
                        q.bytes -= old.json.len();
                        q.dropped_unreported += 1;
                        self.dropped_total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            None => {
                // Answers to the client's own requests: bounded too. A client that sends
                // queries without reading the answers loses the oldest ones, and is told.
                q.bytes += message.json.len();
                q.control.push_back(message);
                while q.control.len() > CONTROL_CAPACITY {
                    if let Some(old) = q.control.pop_front() {
                        q.bytes -= old.json.len();
                        q.dropped_unreported += 1;
                        self.dropped_total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Takes the next messages to send: a `dropped` notice first when some were lost.
    fn take(&self) -> (Vec<Arc<Outgoing>>, Option<(u64, u64)>) {
        let mut q = self.queue.lock();
        let mut out: Vec<Arc<Outgoing>> = q.control.drain(..).collect();
        if let Some(m) = q.metrics.take() {
            out.push(m);
        }
        out.extend(q.tail.drain(..));
        q.bytes = 0;
        let dropped = (q.dropped_unreported > 0).then(|| {
            let n = q.dropped_unreported;
            q.dropped_unreported = 0;
            (n, self.dropped_total.load(Ordering::Relaxed))
        });
        (out, dropped)
    }

    fn wants(&self, message: &Outgoing) -> bool {
        let subs = self.subscriptions.lock();
        match message.topic {
            None => true,
            Some(topic) => {
                subs.0.contains(&topic)
                    && (topic == Topic::Metrics || message.facets.matches(&subs.1))
            }
        }
    }

    /// Whether an answer (result, error, pong) is waiting: it is sent without lingering.
    fn has_control(&self) -> bool {
        !self.queue.lock().control.is_empty()
    }

    /// Bytes queued.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes
    }
}

/// Per-second sampler of the events tail.
struct Sampler {
    second: Instant,
    seen: u64,
    last_rate: u64,
    counter: u64,
}

/// The hub every feed client subscribes to.
pub struct FeedHub {
    config: FeedConfig,
    metrics: Arc<Metrics>,
    instance_id: String,
    store: Arc<dyn Store>,
    clients: Mutex<HashMap<u64, Arc<Client>>>,
    next_id: AtomicU64,
    topic_subscribers: [AtomicUsize; 5],
    retained: Mutex<HashMap<Topic, VecDeque<Arc<Outgoing>>>>,
    sampler: Mutex<Sampler>,
    traces: Mutex<build::TraceAssembler>,
    closed: Notify,
    is_closed: std::sync::atomic::AtomicBool,
}

fn topic_index(topic: Topic) -> usize {
    match topic {
        Topic::Metrics => 0,
        Topic::Events => 1,
        Topic::Malformed => 2,
        Topic::Lifecycle => 3,
        Topic::Pipeline => 4,
    }
}

impl FeedHub {
    /// A hub with no client.
    pub fn new(
        config: FeedConfig,
        metrics: Arc<Metrics>,
        instance_id: String,
        store: Arc<dyn Store>,
    ) -> FeedHub {
        FeedHub {
            config,
            metrics,
            instance_id,
            store,
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            topic_subscribers: Default::default(),
            retained: Mutex::new(HashMap::new()),
            sampler: Mutex::new(Sampler {
                second: Instant::now(),
                seen: 0,
                last_rate: 0,
                counter: 0,
            }),
            traces: Mutex::new(build::TraceAssembler::default()),
            closed: Notify::new(),
            is_closed: Default::default(),
        }
    }

    /// The store (for `query` and `get`).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Settings.
    pub fn config(&self) -> &FeedConfig {
        &self.config
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    fn listening(&self, topic: Topic) -> bool {
        self.topic_subscribers[topic_index(topic)].load(Ordering::Relaxed) > 0
    }

    /// Registers a client.
    pub fn connect(&self, remote: String) -> Arc<Client> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client = Arc::new(Client {
            id,
            remote,
            subscriptions: Mutex::new((Vec::new(), FeedFilter::default())),
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            dropped_total: AtomicU64::new(0),
            capacity: self.config.client_queue_messages,
        });
        self.clients.lock().insert(id, client.clone());
        self.refresh_gauges();
        client
    }

    /// Unregisters a client.
    pub fn disconnect(&self, client: &Client) {
        let topics = client.subscriptions.lock().0.clone();
        for topic in topics {
            self.topic_subscribers[topic_index(topic)].fetch_sub(1, Ordering::Relaxed);
        }
        self.clients.lock().remove(&client.id);
        self.refresh_gauges();
    }

    /// Changes a client's subscriptions; new tail subscribers get the retained messages.
    pub fn subscribe(&self, client: &Client, topics: &[Topic], filter: FeedFilter) -> Vec<Topic> {
        let mut subs = client.subscriptions.lock();
        for topic in topics {
            if !subs.0.contains(topic) {
                subs.0.push(*topic);
                self.topic_subscribers[topic_index(*topic)].fetch_add(1, Ordering::Relaxed);
            }
        }
        subs.1 = filter;
        let now = subs.0.clone();
        drop(subs);
        let retained = self.retained.lock();
        for topic in topics {
            if let Some(ring) = retained.get(topic) {
                for message in ring {
                    if client.wants(message) {
                        client.push(message.clone());
                    }
                }
            }
        }
        drop(retained);
        if topics.contains(&Topic::Metrics) {
            let snapshot = self.metrics.current();
            let message = build::outgoing(
                Some(Topic::Metrics),
                &ServerMessage::Metrics(Box::new(snapshot)),
                Facets::default(),
            );
            client.push(Arc::new(message));
        }
        self.refresh_gauges();
        now
    }

    /// Removes topics.
    pub fn unsubscribe(&self, client: &Client, topics: &[Topic]) -> Vec<Topic> {
        let mut subs = client.subscriptions.lock();
        for topic in topics {
            if let Some(pos) = subs.0.iter().position(|t| t == topic) {
                subs.0.remove(pos);
                self.topic_subscribers[topic_index(*topic)].fetch_sub(1, Ordering::Relaxed);
            }
        }
        subs.0.clone()
    }

    /// Queues a control message (result, error, pong) for one client; never dropped.
    pub fn send_control(&self, client: &Client, message: &ServerMessage) {
        client.push(Arc::new(build::outgoing(None, message, Facets::default())));
    }

    fn broadcast(&self, message: Outgoing, retain: bool) {
        let message = Arc::new(message);
        if retain {
            if let Some(topic) = message.topic {
                let mut retained = self.retained.lock();
                let ring = retained.entry(topic).or_default();
                ring.push_back(message.clone());
                while ring.len() > self.config.tail_retention {
                    ring.pop_front();
                }
            }
        }
        let clients: Vec<Arc<Client>> = self.clients.lock().values().cloned().collect();
        for client in clients {
            if client.wants(&message) {
                client.push(message.clone());
            }
        }
    }

    /// Publishes what one ingest request produced.
    pub fn publish_batch(
        &self,
        meta: &BatchMeta,
        accepted: &[(u32, CheckedEvent<'_>)],
        quarantined_raw: &[&[u8]],
        _elapsed: Duration,
    ) {
        for (q, raw) in meta.quarantined.iter().zip(quarantined_raw) {
            let (message, facets) = build::malformed(meta, q, raw);
            self.broadcast(
                build::outgoing(Some(Topic::Malformed), &message, facets),
                true,
            );
        }
        if self.listening(Topic::Events) && !accepted.is_empty() {
            let one_in = self.sample_rate(accepted.len() as u64);
            for (index, event) in accepted {
                if !self.sample_take(one_in) {
                    continue;
                }
                let (message, facets) = build::tail_event(meta, *index, event, one_in);
                self.broadcast(
                    build::outgoing(Some(Topic::Events), &message, facets),
                    false,
                );
            }
        }
        if self.listening(Topic::Lifecycle) {
            // Trace spans are assembled per trace, and each trace touched by this request is
            // sent once, with all its spans so far (not once per span: a request often carries
            // several spans of one trace, and each message would repeat the previous one).
            let mut touched: Vec<(String, usize, bool)> = Vec::new();
            let mut slot: HashMap<String, usize> = HashMap::new();
            for (position, (index, event)) in accepted.iter().enumerate() {
                match event.envelope.event_type.as_ref() {
                    "lifecycle" => {
                        let (message, facets) = build::lifecycle(meta, *index, event);
                        self.broadcast(
                            build::outgoing(Some(Topic::Lifecycle), &message, facets),
                            true,
                        );
                    }
                    "trace_span" => {
                        let Some(trace_id) = self.traces.lock().add(event) else {
                            continue;
                        };
                        let error = event.columns.is_error;
                        match slot.get(&trace_id) {
                            Some(&i) => {
                                touched[i].1 = position;
                                touched[i].2 |= error;
                            }
                            None => {
                                slot.insert(trace_id.clone(), touched.len());
                                touched.push((trace_id, position, error));
                            }
                        }
                    }
                    _ => {}
                }
            }
            for (trace_id, position, any_error) in touched {
                let Some(message) = self.traces.lock().waterfall(&trace_id) else {
                    continue;
                };
                let facets = build::trace_facets(&accepted[position].1, any_error);
                self.broadcast(
                    build::outgoing(Some(Topic::Lifecycle), &message, facets),
                    true,
                );
            }
        }
    }

    /// Events-tail sampling: `None` while under `events_tail_per_sec`, else `Some(n)`.
    fn sample_rate(&self, incoming: u64) -> Option<u32> {
        let mut s = self.sampler.lock();
        if s.second.elapsed() >= Duration::from_secs(1) {
            s.last_rate = s.seen;
            s.seen = 0;
            s.second = Instant::now();
        }
        s.seen += incoming;
        let limit = u64::from(self.config.events_tail_per_sec.max(1));
        let rate = s.last_rate.max(s.seen);
        (rate > limit).then(|| rate.div_ceil(limit).min(u64::from(u32::MAX)) as u32)
    }

    fn sample_take(&self, one_in: Option<u32>) -> bool {
        match one_in {
            None => true,
            Some(n) => {
                let mut s = self.sampler.lock();
                s.counter += 1;
                s.counter.is_multiple_of(u64::from(n))
            }
        }
    }

    /// Publishes the pipeline traces the batcher stored (with their `inserted` stage).
    pub fn publish_stored_traces(&self, traces: &[TraceRow]) {
        for trace in traces {
            let (message, facets) = build::pipeline(trace);
            self.broadcast(
                build::outgoing(Some(Topic::Pipeline), &message, facets),
                true,
            );
        }
    }

    /// Publishes a metrics snapshot.
    pub fn publish_metrics(&self, snapshot: Arc<MetricsSnapshot>) {
        self.refresh_gauges();
        if !self.listening(Topic::Metrics) {
            return;
        }
        let message = build::outgoing(
            Some(Topic::Metrics),
            &ServerMessage::Metrics(Box::new((*snapshot).clone())),
            Facets::default(),
        );
        self.broadcast(message, false);
    }

    /// Bytes held in client queues.
    pub fn queued_bytes(&self) -> u64 {
        self.clients
            .lock()
            .values()
            .map(|c| c.queued_bytes() as u64)
            .sum()
    }

    fn refresh_gauges(&self) {
        let clients: Vec<Arc<Client>> = self.clients.lock().values().cloned().collect();
        let stats = clients
            .iter()
            .map(|c| baddybugs_common::protocol::FeedClientStats {
                id: c.id,
                remote: c.remote.clone(),
                dropped: c.dropped_total.load(Ordering::Relaxed),
                topics: c.subscriptions.lock().0.clone(),
            })
            .collect();
        *self.metrics.gauges.feed_clients.lock() = stats;
    }

    /// Tells every connection to close (shutdown).
    pub fn close(&self) {
        self.is_closed.store(true, Ordering::SeqCst);
        self.closed.notify_waiters();
        for client in self.clients.lock().values() {
            client.notify.notify_one();
        }
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::sqlite::SqliteStore;

    fn hub(dir: &std::path::Path) -> FeedHub {
        let store = SqliteStore::open(&dir.join("events.db")).unwrap();
        FeedHub::new(
            FeedConfig::default(),
            Arc::new(Metrics::new("test".into())),
            "test".into(),
            Arc::new(store),
        )
    }

    fn meta() -> BatchMeta {
        BatchMeta {
            batch_id: "b".into(),
            received_ms: 1_749_567_234_300,
            organization: "o".into(),
            application: "a".into(),
            remote_addr: None,
            agent_version: None,
            bytes_compressed: 0,
            bytes_inflated: 0,
            total_events: 4,
            duplicates: 0,
            quarantined: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// Issue 5 (feed cost): the spans of one trace that arrive in one request make one
    /// `lifecycle` message with all of them, not one message per span.
    #[test]
    fn trace_spans_of_one_request_make_one_waterfall() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let client = hub.connect("test".into());
        hub.subscribe(&client, &[Topic::Lifecycle], FeedFilter::default());
        let raws: Vec<String> = baddybugs_fixtures::valid_of("trace_span")
            .into_iter()
            .filter(|f| f.shape == baddybugs_fixtures::Shape::Agent)
            .map(|f| f.text)
            .collect();
        assert_eq!(
            raws.len(),
            4,
            "the four trace_span fixtures share one trace"
        );
        let events: Vec<(u32, CheckedEvent<'_>)> = raws
            .iter()
            .enumerate()
            .map(|(i, raw)| (i as u32, baddybugs_common::check_event(raw, 0).unwrap()))
            .collect();
        hub.publish_batch(&meta(), &events, &[], Duration::ZERO);
        let (messages, dropped) = client.take();
        assert!(dropped.is_none());
        assert_eq!(messages.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&messages[0].json).unwrap();
        assert_eq!(v["kind"], "lifecycle");
        assert_eq!(v["source"], "trace_span");
        assert_eq!(v["spans"].as_array().unwrap().len(), 4);
        // A later request adds to the same trace and sends it again, with every span.
        hub.publish_batch(&meta(), &events[..1], &[], Duration::ZERO);
        let (messages, _) = client.take();
        let v: serde_json::Value = serde_json::from_str(&messages[0].json).unwrap();
        assert_eq!(v["spans"].as_array().unwrap().len(), 5);
    }
}
