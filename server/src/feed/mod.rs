//! The live feed: fan-out of metrics snapshots, event and rejection tails, waterfalls and
//! pipeline traces and schema drift keys to WebSocket clients (the endpoint is `http/feed_ws.rs`; the feed does not
//! know the transport, nor the store: history queries go to the query service).
//!
//! In: the ingest path's [`tap`] (a compact value per acknowledged request, turned into
//! messages by [`FeedHub::publish_batch`] on the `feed-build` thread), the batcher
//! ([`FeedHub::publish_stored_traces`]) and the metrics ticker ([`FeedHub::publish_metrics`]).
//! Out: one bounded queue per client. Each message is serialised once and shared by every
//! client (the per-connection sequence number is spliced in when it is sent).
//!
//! Backpressure: a client's queue holds at most `feed.client_queue_messages` tail messages;
//! when full, the oldest are dropped and the client is told how many it lost (a `dropped`
//! message) when it reads again. Metrics snapshots are never queued twice: the newest replaces
//! an unsent one. A client whose socket stays blocked for `feed.slow_client_timeout_ms` is
//! disconnected. The ingest path never waits on a client and never builds a message: it hands
//! the tap a value without blocking (dropped from the feed, and counted, if the tap is full).
//!
//! Cost when nobody listens: the events and lifecycle tails are built only while a client is
//! subscribed to them (one atomic load per batch otherwise); the malformed and pipeline tails
//! keep their last `feed.tail_retention` messages for clients that connect later.

mod build;
pub mod liveness;
pub mod tap;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baddybugs_common::protocol::{
    FeedFilter, MetricsSnapshot, PipelineTrace, ServerMessage, Topic,
};
use baddybugs_common::CheckedEvent;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::FeedConfig;
use crate::metrics::Metrics;
use crate::sink::TraceRow;
pub use tap::{AcceptedBatch, FeedEvent, FeedKind, FeedTap};

/// Parses an accepted event again for a message (it passed validation, so this only fails
/// on a bug, which leaves the event out of the tail and says so in the log).
fn recheck<'b>(batch: &'b AcceptedBatch, event: &FeedEvent) -> Option<CheckedEvent<'b>> {
    let checked = batch
        .text(event)
        .and_then(|text| baddybugs_common::check_event(text, batch.meta.received_ms).ok());
    if checked.is_none() {
        tracing::warn!(
            batch_id = %batch.meta.batch_id,
            index = event.index,
            "an accepted event no longer passes validation; left out of the live tail (a bug)"
        );
    }
    checked
}

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

    /// Waits until a message is queued for this client (at once if one is waiting already).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// Takes the queued messages to send, in order (answers, the latest metrics snapshot, the
    /// tails), and how many were dropped since the last take with the connection's total:
    /// `Some((count, total))`, to announce in a `dropped` message before them.
    pub fn take(&self) -> (Vec<Arc<Outgoing>>, Option<(u64, u64)>) {
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
    pub fn has_control(&self) -> bool {
        !self.queue.lock().control.is_empty()
    }

    /// Bytes queued.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes
    }
}

/// Per-second sampler of a tail: above `limit` messages per second it keeps 1 in n, with
/// `n = ceil(rate / limit)` from the busier of the last and the current second.
struct Sampler {
    second: Instant,
    seen: u64,
    last_rate: u64,
    counter: u64,
}

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            second: Instant::now(),
            seen: 0,
            last_rate: 0,
            counter: 0,
        }
    }

    /// Counts `incoming` candidates; `None` while under `limit` per second, else `Some(n)`.
    fn rate(&mut self, incoming: u64, limit: u32) -> Option<u32> {
        if self.second.elapsed() >= Duration::from_secs(1) {
            self.last_rate = self.seen;
            self.seen = 0;
            self.second = Instant::now();
        }
        self.seen += incoming;
        let limit = u64::from(limit.max(1));
        let rate = self.last_rate.max(self.seen);
        (rate > limit).then(|| rate.div_ceil(limit).min(u64::from(u32::MAX)) as u32)
    }

    /// Whether the next candidate is kept at 1 in `one_in`.
    fn take(&mut self, one_in: Option<u32>) -> bool {
        match one_in {
            None => true,
            Some(n) => {
                self.counter += 1;
                self.counter.is_multiple_of(u64::from(n))
            }
        }
    }
}

/// The hub every feed client subscribes to.
pub struct FeedHub {
    config: FeedConfig,
    metrics: Arc<Metrics>,
    instance_id: String,
    clients: Mutex<HashMap<u64, Arc<Client>>>,
    next_id: AtomicU64,
    topic_subscribers: [AtomicUsize; 6],
    retained: Mutex<HashMap<Topic, VecDeque<Arc<Outgoing>>>>,
    sampler: Mutex<Sampler>,
    lifecycle_sampler: Mutex<Sampler>,
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
        Topic::Drift => 5,
    }
}

impl FeedHub {
    /// A hub with no client.
    pub fn new(config: FeedConfig, metrics: Arc<Metrics>, instance_id: String) -> FeedHub {
        FeedHub {
            config,
            metrics,
            instance_id,
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            topic_subscribers: Default::default(),
            retained: Mutex::new(HashMap::new()),
            sampler: Mutex::new(Sampler::new()),
            lifecycle_sampler: Mutex::new(Sampler::new()),
            traces: Mutex::new(build::TraceAssembler::default()),
            closed: Notify::new(),
            is_closed: Default::default(),
        }
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

    /// Whether a client listens to a tail built from accepted events (events, lifecycle).
    pub fn wants_accepted_events(&self) -> bool {
        self.listening(Topic::Events) || self.listening(Topic::Lifecycle)
    }

    /// Publishes what one acknowledged request produced (on the `feed-build` thread: see
    /// [`tap`]). Events are parsed again only when a message is built from them.
    pub fn publish_batch(&self, batch: &AcceptedBatch) {
        let meta = &batch.meta;
        for (i, q) in meta.quarantined.iter().enumerate() {
            let (message, facets) = build::malformed(meta, q, batch.quarantined_bytes(i));
            self.broadcast(
                build::outgoing(Some(Topic::Malformed), &message, facets),
                true,
            );
        }
        if self.listening(Topic::Events) && !batch.events.is_empty() {
            // One lock per request: the sampling decisions first, the messages after.
            let (one_in, keep) = {
                let mut sampler = self.sampler.lock();
                let one_in =
                    sampler.rate(batch.events.len() as u64, self.config.events_tail_per_sec);
                let keep: Vec<bool> = batch.events.iter().map(|_| sampler.take(one_in)).collect();
                (one_in, keep)
            };
            for (event, keep) in batch.events.iter().zip(keep) {
                if !keep {
                    continue;
                }
                let Some(checked) = recheck(batch, event) else {
                    continue;
                };
                let (message, facets) = build::tail_event(meta, event.index, &checked, one_in);
                self.broadcast(
                    build::outgoing(Some(Topic::Events), &message, facets),
                    false,
                );
            }
        }
        if self.listening(Topic::Lifecycle) {
            self.publish_waterfalls(batch);
        }
    }

    /// The `lifecycle` tail of one request: a waterfall per `lifecycle` event, and one per
    /// trace its `trace_span` events touched (with all of that trace's spans so far, not one
    /// message per span: a request often carries several spans of one trace, and each message
    /// would repeat the previous one). Above `feed.lifecycle_tail_per_sec` the waterfalls are
    /// sampled 1 in n and say so, except those of errors, which are always sent: building and
    /// sending thousands of waterfalls a second would cost CPU for no reader (issue 5).
    fn publish_waterfalls(&self, batch: &AcceptedBatch) {
        let meta = &batch.meta;
        let mut lifecycles: Vec<&FeedEvent> = Vec::new();
        // (trace id, the last span event of it in this request, any error)
        let mut touched: Vec<(String, &FeedEvent, bool)> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        for event in &batch.events {
            match event.kind {
                FeedKind::Lifecycle => lifecycles.push(event),
                FeedKind::TraceSpan => {
                    // Every span is assembled, sampled or not, so a trace sent later is whole.
                    let Some(checked) = recheck(batch, event) else {
                        continue;
                    };
                    let Some(trace_id) = self.traces.lock().add(&checked) else {
                        continue;
                    };
                    match slot.get(&trace_id) {
                        Some(&i) => {
                            touched[i].1 = event;
                            touched[i].2 |= event.error;
                        }
                        None => {
                            slot.insert(trace_id.clone(), touched.len());
                            touched.push((trace_id, event, event.error));
                        }
                    }
                }
                FeedKind::Other => {}
            }
        }
        let candidates = (lifecycles.len() + touched.len()) as u64;
        if candidates == 0 {
            return;
        }
        // One lock per request: errors are always kept and do not advance the sampler.
        let (one_in, keep_lifecycle, keep_trace) = {
            let mut sampler = self.lifecycle_sampler.lock();
            let one_in = sampler.rate(candidates, self.config.lifecycle_tail_per_sec);
            let mut keep = |error: bool| error || sampler.take(one_in);
            let lifecycle: Vec<bool> = lifecycles.iter().map(|e| keep(e.error)).collect();
            let trace: Vec<bool> = touched.iter().map(|t| keep(t.2)).collect();
            (one_in, lifecycle, trace)
        };
        for (event, keep) in lifecycles.into_iter().zip(keep_lifecycle) {
            if !keep {
                continue;
            }
            let Some(checked) = recheck(batch, event) else {
                continue;
            };
            let (message, facets) = build::lifecycle(meta, event.index, &checked, one_in);
            self.broadcast(
                build::outgoing(Some(Topic::Lifecycle), &message, facets),
                true,
            );
        }
        for ((trace_id, last, any_error), keep) in touched.into_iter().zip(keep_trace) {
            if !keep {
                continue;
            }
            let Some(message) = self.traces.lock().waterfall(&trace_id, one_in, meta) else {
                continue;
            };
            let Some(checked) = recheck(batch, last) else {
                continue;
            };
            let facets = build::trace_facets(&checked, any_error);
            self.broadcast(
                build::outgoing(Some(Topic::Lifecycle), &message, facets),
                true,
            );
        }
    }

    /// Publishes schema drift keys new to this process (kept for later subscribers like the
    /// other tails; at most `drift.max_types` × `drift.max_keys_per_type` over a process's
    /// life, so built on the request path).
    pub fn publish_drift(&self, notices: Vec<baddybugs_common::protocol::DriftNotice>) {
        for notice in notices {
            let facets = Facets {
                event_type: Some(notice.event_type.clone()),
                ..Facets::default()
            };
            let message = ServerMessage::Drift(Box::new(notice));
            self.broadcast(build::outgoing(Some(Topic::Drift), &message, facets), true);
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

    /// Publishes a refused ingest request (401, 413, 415, 429, 503 …) as a pipeline row:
    /// outcome `refused`, its status and reason. It never reaches the spool, so the batcher
    /// cannot publish it; `trace` is only built when a client listens to the pipeline tail.
    pub fn publish_refused(&self, trace: impl FnOnce() -> PipelineTrace) {
        if !self.listening(Topic::Pipeline) {
            return;
        }
        let message = ServerMessage::Pipeline(Box::new(trace()));
        let facets = Facets {
            is_error: Some(true),
            ..Facets::default()
        };
        self.broadcast(
            build::outgoing(Some(Topic::Pipeline), &message, facets),
            true,
        );
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

    /// Bytes of the tail messages kept for clients that subscribe later
    /// (`feed.tail_retention` per tail).
    pub fn retained_bytes(&self) -> u64 {
        self.retained
            .lock()
            .values()
            .flat_map(|ring| ring.iter())
            .map(|m| m.json.len() as u64)
            .sum()
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
    use crate::record::BatchMeta;

    fn hub() -> FeedHub {
        hub_with(FeedConfig::default().lifecycle_tail_per_sec)
    }

    fn meta() -> BatchMeta {
        BatchMeta::for_test(4)
    }

    /// An acknowledged request of these events (what the ingest path hands the tap).
    fn batch_of(raws: &[&str]) -> AcceptedBatch {
        let mut body = Vec::new();
        let mut events = Vec::new();
        for (i, raw) in raws.iter().enumerate() {
            let start = body.len();
            body.extend_from_slice(raw.as_bytes());
            let checked = baddybugs_common::check_event(raw, 0).unwrap();
            events.push(FeedEvent::of(i as u32, start..body.len(), &checked));
        }
        AcceptedBatch {
            meta: meta(),
            body: body.into(),
            events,
            quarantined: Vec::new(),
        }
    }

    /// Issue 5 (feed cost): the spans of one trace that arrive in one request make one
    /// `lifecycle` message with all of them, not one message per span.
    #[test]
    fn trace_spans_of_one_request_make_one_waterfall() {
        let hub = hub();
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
        let raws: Vec<&str> = raws.iter().map(String::as_str).collect();
        hub.publish_batch(&batch_of(&raws));
        let (messages, dropped) = client.take();
        assert!(dropped.is_none());
        assert_eq!(messages.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&messages[0].json).unwrap();
        assert_eq!(v["kind"], "lifecycle");
        assert_eq!(v["source"], "trace_span");
        assert_eq!(v["spans"].as_array().unwrap().len(), 4);
        // A later request adds to the same trace and sends it again, with every span.
        hub.publish_batch(&batch_of(&raws[..1]));
        let (messages, _) = client.take();
        let v: serde_json::Value = serde_json::from_str(&messages[0].json).unwrap();
        assert_eq!(v["spans"].as_array().unwrap().len(), 5);
    }
    fn lifecycle_fixture(name: &str) -> String {
        let id = format!("lifecycle/valid/{name}.agent.json");
        baddybugs_fixtures::fixture(&id)
            .unwrap_or_else(|| panic!("no fixture {id}"))
            .text
    }

    /// Issue 5 (feed cost): above `lifecycle_tail_per_sec` the lifecycle tail keeps 1 in n
    /// waterfalls and marks them; the waterfalls of server errors are all sent.
    #[test]
    fn lifecycle_tail_is_sampled_above_its_rate_and_keeps_every_error() {
        let hub = hub_with(10);
        let client = hub.connect("test".into());
        hub.subscribe(&client, &[Topic::Lifecycle], FeedFilter::default());
        let ok = lifecycle_fixture("http_request");
        let failed = lifecycle_fixture("server_error_500");
        // 100 requests, every tenth a 500: 110 candidates in one second for a limit of 10.
        let raws: Vec<&str> = (0..100)
            .map(|i| {
                if i % 10 == 9 {
                    failed.as_str()
                } else {
                    ok.as_str()
                }
            })
            .collect();
        hub.publish_batch(&batch_of(&raws));
        let (messages, dropped) = client.take();
        assert!(dropped.is_none());
        let waterfalls: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::from_str(&m.json).unwrap())
            .collect();
        let errors = waterfalls
            .iter()
            .filter(|w| w["status_code"] == 500)
            .count();
        assert_eq!(errors, 10, "every 500 is sent");
        let others = waterfalls.len() - errors;
        // 1 in 10 of the 90 others (the counter also advances on nothing else).
        assert_eq!(others, 9, "{} waterfalls", waterfalls.len());
        assert!(
            waterfalls.iter().all(|w| w["sampled_one_in"] == 10),
            "every message says it is sampled 1 in 10"
        );

        // Under the limit nothing is sampled: a new hub, 5 requests.
        let quiet = hub_with(10);
        let client = quiet.connect("test".into());
        quiet.subscribe(&client, &[Topic::Lifecycle], FeedFilter::default());
        quiet.publish_batch(&batch_of(&raws[..5]));
        let (messages, _) = client.take();
        assert_eq!(messages.len(), 5);
        for m in &messages {
            let v: serde_json::Value = serde_json::from_str(&m.json).unwrap();
            assert!(v["sampled_one_in"].is_null(), "{v}");
        }
    }

    fn hub_with(lifecycle_tail_per_sec: u32) -> FeedHub {
        FeedHub::new(
            FeedConfig {
                lifecycle_tail_per_sec,
                ..FeedConfig::default()
            },
            Arc::new(Metrics::new("test".into())),
            "test".into(),
        )
    }
}
