//! Fleet mode: one console watching several ingest nodes.
//!
//! Each node keeps its own [`FeedState`] (connection, hello, metrics, restart detection and its
//! own tails, which a reconnect to the same instance replays against), and everything it adds to
//! a tail is copied, tagged with the node, into the fleet's merged state that every view shows.
//! The merged metrics are the sum of the nodes' latest snapshots ([`merge_metrics`]); the rates
//! are the sum of the connected nodes' rates, so a node that is down adds nothing it is not doing.

use baddybugs_common::protocol::{
    AppStats, Histo, MetricsSnapshot, ReasonStats, Refusal, SinkStats, TypeStats,
};

use super::{Conn, FeedEvent, FeedState, Rates, Reply};
use crate::state::tail::{NodeIx, Tail};
use crate::state::time::hms;

/// A sink lag beyond this many seconds flags a node as lagging.
pub(crate) const LAG_WARN_SECS: f64 = 10.0;

/// One node of the fleet.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Short name shown in the node column and matched by `node:` (the URL's `host:port`).
    pub(crate) name: String,
    /// What this node's feed said.
    pub(crate) state: FeedState,
}

impl Node {
    /// A node not yet heard from.
    pub(crate) fn new(url: &str) -> Self {
        Node {
            name: node_name(url),
            state: FeedState::default(),
        }
    }

    /// Whether the node's feed is connected now.
    pub(crate) fn is_up(&self) -> bool {
        matches!(self.state.conn, Conn::Connected { .. })
    }

    /// What is wrong with the node, most serious first; `None` when it is healthy.
    pub(crate) fn trouble(&self) -> Option<String> {
        let s = &self.state;
        match &s.conn {
            Conn::Waiting { error, .. } => return Some(format!("DOWN: {error}")),
            Conn::Connecting { .. } if s.hello.is_none() => return Some("connecting".to_owned()),
            Conn::Connecting { .. } => return Some("reconnecting".to_owned()),
            Conn::Connected { .. } => {}
        }
        let m = s.metrics.as_ref()?;
        if !m.sink.healthy {
            return Some(format!(
                "store down: {}",
                m.sink.last_error.as_deref().unwrap_or("no detail")
            ));
        }
        if m.sink.lag_secs.is_some_and(|l| l >= LAG_WARN_SECS) {
            return Some(format!(
                "lagging: {} events unstored for {:.0} s",
                m.sink.lag_events,
                m.sink.lag_secs.unwrap_or(0.0)
            ));
        }
        let b = &m.buffers;
        if b.spool_quota_bytes > 0 && b.spool_bytes * 10 >= b.spool_quota_bytes * 8 {
            return Some("spool above 80% of its quota".to_owned());
        }
        None
    }
}

/// `host:port` of a feed URL (the whole URL when it has no host).
pub(crate) fn node_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    if host.is_empty() {
        url.to_owned()
    } else {
        host.to_owned()
    }
}

/// The nodes of a fleet for `urls`, named by `host:port`, or by `:port` alone when every node
/// is on the same host (a fleet on one machine), so the node column stays narrow.
pub(crate) fn nodes(urls: &[String]) -> Vec<Node> {
    let mut nodes: Vec<Node> = urls.iter().map(|u| Node::new(u)).collect();
    let host = |name: &str| name.rsplit_once(':').map(|(h, _)| h.to_owned());
    let first = nodes.first().and_then(|n| host(&n.name));
    if first.is_some() && nodes.iter().all(|n| host(&n.name) == first) {
        for n in &mut nodes {
            if let Some((_, port)) = n.name.rsplit_once(':') {
                n.name = format!(":{port}");
            }
        }
    }
    nodes
}

/// The nodes of a fleet and the merged state the views show.
impl FeedState {
    /// Applies one report of node `ix` of `nodes`: to the node's own state, then what it added
    /// to the merged state `self`. Returns the answer to a query when it is one.
    pub(crate) fn apply_from(
        &mut self,
        nodes: &mut [Node],
        ix: NodeIx,
        event: FeedEvent,
        now_ms: i64,
    ) -> Option<Reply> {
        let node = nodes.get_mut(ix as usize)?;
        let was_up = node.is_up();
        let old_instance = node.state.hello.as_ref().map(|h| h.instance_id.clone());
        let before = pushed(&node.state);
        let is_metrics = matches!(
            &event,
            FeedEvent::Message(env) if matches!(env.message, baddybugs_common::protocol::ServerMessage::Metrics(_))
        );
        let drift = match &event {
            FeedEvent::Message(env) => match &env.message {
                baddybugs_common::protocol::ServerMessage::Drift(n) => Some((**n).clone()),
                _ => None,
            },
            _ => None,
        };
        let reply = node.state.apply(event, now_ms);
        // A key new to a node is announced to the fleet (the merged list keeps it once).
        if let Some(n) = drift {
            self.drift.announce(n, now_ms);
        }
        let name = node.name.clone();

        // Copy what the node added to its tails, tagged with the node.
        let s = &node.state;
        copy_newest(&s.events, before.0, &mut self.events, ix);
        copy_newest(&s.malformed, before.1, &mut self.malformed, ix);
        copy_newest(&s.lifecycles, before.2, &mut self.lifecycles, ix);
        copy_newest(&s.pipeline, before.3, &mut self.pipeline, ix);

        // Say in the merged tails what happened to one node.
        let is_up = node.is_up();
        let new_instance = node.state.hello.as_ref().map(|h| h.instance_id.clone());
        if was_up && !is_up {
            self.mark_all(&format!("node {name}: connection lost at {}", hms(now_ms)));
        }
        if let (Some(old), Some(new)) = (&old_instance, &new_instance) {
            if old != new {
                self.mark_all(&format!(
                    "node {name} restarted at {}: its counters start again",
                    hms(now_ms)
                ));
            }
        }

        if self.hello.is_none() {
            self.hello = nodes[ix as usize].state.hello.clone();
        }
        self.conn = fleet_conn(nodes, now_ms);
        self.disconnected_at_ms = if nodes.iter().any(Node::is_up) {
            None
        } else {
            self.disconnected_at_ms.or(Some(now_ms))
        };
        self.frames += 1;
        self.last_data_ms = Some(now_ms);
        if is_metrics || was_up != is_up {
            self.merge_from(nodes, ix, now_ms);
        }
        reply
    }

    /// Recomputes the fleet's metrics, rates and HTTP answers from the nodes' latest.
    fn merge_from(&mut self, nodes: &[Node], ix: NodeIx, now_ms: i64) {
        let snapshots: Vec<&MetricsSnapshot> = nodes
            .iter()
            .filter_map(|n| n.state.metrics.as_ref())
            .collect();
        if snapshots.is_empty() {
            return;
        }
        let merged = merge_metrics(&snapshots);
        let mut rates = Rates::default();
        for n in nodes.iter().filter(|n| n.is_up()) {
            rates.received += n.state.rates.received;
            rates.accepted += n.state.rates.accepted;
            rates.rejected += n.state.rates.rejected;
            rates.duplicates += n.state.rates.duplicates;
        }
        self.rates = rates;
        // One point a second: when the first node that is up reports.
        let leader = nodes.iter().position(Node::is_up);
        if leader == Some(ix as usize) {
            self.rejected_history
                .push_back(Some(rates.rejected.round() as u64));
            while self.rejected_history.len() > 60 {
                self.rejected_history.pop_front();
            }
        }
        // Nodes have their own uptimes: the fleet's clock is the console's.
        self.http.record(
            now_ms as f64 / 1000.0,
            &merged.responses,
            &merged.refusals,
            &merged.refusals_by_sender,
        );
        self.metrics = Some(merged);
    }
}

/// Copies the newest item of a node's tail into the fleet's, when the node just added one (one
/// report adds at most one item to one tail).
fn copy_newest<T: Clone>(node: &Tail<T>, pushed_before: u64, fleet: &mut Tail<T>, ix: NodeIx) {
    if node.pushed > pushed_before {
        if let Some(item) = node.newest() {
            fleet.push_from(ix, item.clone());
        }
    }
}

/// The tails' `pushed` counters (events, malformed, lifecycles, pipeline).
fn pushed(s: &FeedState) -> (u64, u64, u64, u64) {
    (
        s.events.pushed,
        s.malformed.pushed,
        s.lifecycles.pushed,
        s.pipeline.pushed,
    )
}

/// The fleet's connection: connected while any node is; else waiting on the soonest retry.
fn fleet_conn(nodes: &[Node], now_ms: i64) -> Conn {
    if let Some(since) = nodes
        .iter()
        .filter_map(|n| match n.state.conn {
            Conn::Connected { since_ms } => Some(since_ms),
            _ => None,
        })
        .min()
    {
        return Conn::Connected { since_ms: since };
    }
    let waiting = nodes.iter().filter_map(|n| match &n.state.conn {
        Conn::Waiting {
            attempt,
            retry_at_ms,
            error,
        } => Some((*retry_at_ms, *attempt, format!("{}: {error}", n.name))),
        _ => None,
    });
    match waiting.min_by_key(|w| w.0) {
        Some((retry_at_ms, attempt, error))
            if nodes
                .iter()
                .all(|n| !matches!(n.state.conn, Conn::Connecting { .. })) =>
        {
            Conn::Waiting {
                attempt,
                retry_at_ms: retry_at_ms.max(now_ms),
                error,
            }
        }
        _ => Conn::Connecting { attempt: 1 },
    }
}

/// The fleet's snapshot: counters, rates, reasons, responses and buffers summed; per-type rows
/// merged by type; histograms' buckets summed and their percentiles the worst node's (a bound,
/// not the fleet's true percentile: the nodes send buckets, not raw values); the store is
/// healthy only when every node's is.
pub(crate) fn merge_metrics(nodes: &[&MetricsSnapshot]) -> MetricsSnapshot {
    let mut out = MetricsSnapshot {
        at: nodes.iter().map(|m| m.at.clone()).max().unwrap_or_default(),
        uptime_secs: nodes.iter().map(|m| m.uptime_secs).fold(0.0, f64::max),
        instance_id: "fleet".to_owned(),
        ..MetricsSnapshot::default()
    };
    out.totals.event_type = "all".to_owned();
    for (i, m) in nodes.iter().enumerate() {
        add_type(&mut out.totals, &m.totals);
        for ty in &m.types {
            match out.types.iter_mut().find(|t| t.event_type == ty.event_type) {
                Some(t) => add_type(t, ty),
                None => out.types.push(ty.clone()),
            }
        }
        for r in &m.reasons {
            add_reason(&mut out.reasons, r);
        }
        for h in &m.latencies {
            match out.latencies.iter_mut().find(|x| x.name == h.name) {
                Some(x) => add_histo(x, h),
                None => out.latencies.push(h.clone()),
            }
        }
        if out.batch_sizes.name.is_empty() {
            out.batch_sizes = m.batch_sizes.clone();
        } else {
            add_histo(&mut out.batch_sizes, &m.batch_sizes);
        }
        for (status, count) in &m.responses {
            match out.responses.iter_mut().find(|(s, _)| s == status) {
                Some((_, c)) => *c += count,
                None => out.responses.push((*status, *count)),
            }
        }
        for r in &m.refusals {
            match out
                .refusals
                .iter_mut()
                .find(|x| x.status == r.status && x.code == r.code)
            {
                Some(x) => x.count += r.count,
                None => out.refusals.push(Refusal::clone(r)),
            }
        }
        for r in &m.refusals_by_sender {
            match out
                .refusals_by_sender
                .iter_mut()
                .find(|x| x.sender == r.sender && x.status == r.status && x.code == r.code)
            {
                Some(x) => x.count += r.count,
                None => out.refusals_by_sender.push(r.clone()),
            }
        }
        for a in &m.apps {
            match out
                .apps
                .iter_mut()
                .find(|x| x.organization == a.organization && x.application == a.application)
            {
                Some(x) => add_app(x, a),
                None => out.apps.push(a.clone()),
            }
        }
        let (t, n) = (&mut out.throughput, &m.throughput);
        add_series(&mut t.accepted, &n.accepted);
        add_series(&mut t.rejected, &n.rejected);
        add_series(&mut t.duplicates, &n.duplicates);
        let (b, a) = (&mut out.buffers, &m.buffers);
        b.memory_bytes += a.memory_bytes;
        b.memory_events += a.memory_events;
        b.spool_bytes += a.spool_bytes;
        b.spool_quota_bytes += a.spool_quota_bytes;
        b.spool_segments += a.spool_segments;
        b.pending_records += a.pending_records;
        b.oldest_pending_secs = max_opt(b.oldest_pending_secs, a.oldest_pending_secs);
        b.rss_bytes = match (b.rss_bytes, a.rss_bytes) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        add_sink(&mut out.sink, &m.sink, i == 0);
        out.feed_clients.extend(m.feed_clients.iter().cloned());
    }
    out.responses.sort_unstable();
    // The most events first, `other` (an empty organization) last, as a node sends them.
    out.apps.sort_by(|a, b| {
        a.organization
            .is_empty()
            .cmp(&b.organization.is_empty())
            .then(b.received.cmp(&a.received))
            .then_with(|| a.application.cmp(&b.application))
    });
    out.reasons
        .sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    out
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// Adds a per-second series to another: histories end now on every node, so they are added
/// aligned on their newest second.
fn add_series(into: &mut Vec<Option<u64>>, s: &[Option<u64>]) {
    let (a, b) = (into.len(), s.len());
    if b > a {
        let mut longer = vec![None; b - a];
        longer.append(into);
        *into = longer;
    }
    let offset = into.len() - b;
    for (slot, v) in into[offset..].iter_mut().zip(s) {
        *slot = match (*slot, *v) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
    }
}

fn add_app(into: &mut AppStats, a: &AppStats) {
    into.received += a.received;
    into.accepted += a.accepted;
    into.rejected += a.rejected;
    into.duplicates += a.duplicates;
    into.rate_10s += a.rate_10s;
    into.rate_60s += a.rate_60s;
    into.rejected_rate_60s += a.rejected_rate_60s;
}

fn add_type(into: &mut TypeStats, t: &TypeStats) {
    into.received += t.received;
    into.accepted += t.accepted;
    into.rejected += t.rejected;
    into.duplicates += t.duplicates;
    into.rate_1s += t.rate_1s;
    into.rate_10s += t.rate_10s;
    into.rate_60s += t.rate_60s;
    into.rejected_rate_60s += t.rejected_rate_60s;
    add_series(&mut into.history, &t.history);
    into.duration_p99_ms = max_opt(into.duration_p99_ms, t.duration_p99_ms);
}

fn add_reason(into: &mut Vec<ReasonStats>, r: &ReasonStats) {
    match into.iter_mut().find(|x| x.code == r.code) {
        Some(x) => {
            x.count += r.count;
            x.rate_60s += r.rate_60s;
            let newer = match (&x.last, &r.last) {
                (Some(a), Some(b)) => b.at > a.at,
                (None, Some(_)) => true,
                _ => false,
            };
            if newer {
                x.last = r.last.clone();
            }
        }
        None => into.push(r.clone()),
    }
}

fn add_histo(into: &mut Histo, h: &Histo) {
    if h.count == 0 {
        return;
    }
    if into.count == 0 {
        *into = h.clone();
        return;
    }
    into.count += h.count;
    into.min = into.min.min(h.min);
    into.max = into.max.max(h.max);
    into.p50 = into.p50.max(h.p50);
    into.p90 = into.p90.max(h.p90);
    into.p99 = into.p99.max(h.p99);
    into.p999 = into.p999.max(h.p999);
    for b in &h.buckets {
        match into.buckets.iter_mut().find(|x| x.le == b.le) {
            Some(x) => x.count += b.count,
            None => into.buckets.push(b.clone()),
        }
    }
    into.buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
}

/// The fleet's store: down when any node's is, with that node's error; lag summed, its age the
/// worst.
fn add_sink(into: &mut SinkStats, s: &SinkStats, first: bool) {
    if first {
        *into = s.clone();
        return;
    }
    if into.kind != s.kind {
        into.kind = format!("{}+{}", into.kind, s.kind);
    }
    if !s.healthy && into.healthy {
        into.last_error = s.last_error.clone();
    }
    into.healthy &= s.healthy;
    into.errors += s.errors;
    into.retrying = into.retrying.max(s.retrying);
    into.written_events += s.written_events;
    into.written_batches += s.written_batches;
    into.commits += s.commits;
    into.lag_events += s.lag_events;
    into.lag_secs = max_opt(into.lag_secs, s.lag_secs);
    into.last_write_at = into.last_write_at.clone().max(s.last_write_at.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures;
    use baddybugs_common::protocol::ServerMessage;

    fn snapshot(n: u64) -> MetricsSnapshot {
        match fixtures::metrics(n) {
            ServerMessage::Metrics(m) => *m,
            other => panic!("not a snapshot: {other:?}"),
        }
    }

    #[test]
    fn a_node_is_named_by_host_and_port() {
        assert_eq!(node_name("ws://127.0.0.1:8081/v1/feed"), "127.0.0.1:8081");
        assert_eq!(
            node_name("wss://ingest-b.example:443/v1/feed?x=1"),
            "ingest-b.example:443"
        );
        assert_eq!(node_name("nonsense"), "nonsense");
        let same_host: Vec<String> = ["ws://127.0.0.1:8081/v1/feed", "ws://127.0.0.1:8082/v1/feed"]
            .map(String::from)
            .to_vec();
        let names: Vec<String> = nodes(&same_host).into_iter().map(|n| n.name).collect();
        assert_eq!(
            names,
            [":8081", ":8082"],
            "one host: the port tells them apart"
        );
        let two_hosts: Vec<String> = ["ws://a:8080/v1/feed", "ws://b:8080/v1/feed"]
            .map(String::from)
            .to_vec();
        let names: Vec<String> = nodes(&two_hosts).into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["a:8080", "b:8080"]);
    }

    #[test]
    fn merged_counters_are_the_nodes_sums_and_the_store_is_as_healthy_as_the_worst() {
        let mut a = snapshot(10);
        let mut b = snapshot(20);
        b.sink.healthy = false;
        b.sink.last_error = Some("connection refused".into());
        a.responses = vec![(202, 7)];
        b.responses = vec![(202, 3), (401, 2)];
        let m = merge_metrics(&[&a, &b]);
        assert_eq!(m.totals.received, a.totals.received + b.totals.received);
        assert_eq!(m.responses, vec![(202, 10), (401, 2)]);
        assert!(!m.sink.healthy);
        assert_eq!(m.sink.last_error.as_deref(), Some("connection refused"));
        assert_eq!(m.uptime_secs, b.uptime_secs);
        for ty in &m.types {
            let sum: u64 = [&a, &b]
                .iter()
                .flat_map(|s| s.types.iter())
                .filter(|t| t.event_type == ty.event_type)
                .map(|t| t.received)
                .sum();
            assert_eq!(ty.received, sum, "{}", ty.event_type);
        }
        // Issue 16's figures add up too: per application, per sender, the rates of the minute.
        let shop = |m: &MetricsSnapshot| {
            m.apps
                .iter()
                .find(|x| x.application == "shop")
                .map_or(0, |x| x.received)
        };
        assert_eq!(shop(&m), shop(&a) + shop(&b));
        assert_eq!(m.apps[0].application, "shop", "the most events first");
        let wrong_key = |m: &MetricsSnapshot| {
            m.refusals_by_sender
                .iter()
                .find(|r| r.sender.starts_with("key sha256:"))
                .map_or(0, |r| r.count)
        };
        assert_eq!(wrong_key(&m), wrong_key(&a) + wrong_key(&b));
        let last = |m: &MetricsSnapshot| m.throughput.accepted.last().copied().flatten();
        assert_eq!(
            last(&m),
            Some(last(&a).unwrap_or(0) + last(&b).unwrap_or(0))
        );
    }

    #[test]
    fn histories_of_different_lengths_add_up_on_their_newest_second() {
        let mut a = TypeStats {
            history: vec![Some(1), Some(2), Some(3)],
            ..TypeStats::default()
        };
        let b = TypeStats {
            history: vec![None, Some(10), Some(20), Some(30)],
            ..TypeStats::default()
        };
        add_type(&mut a, &b);
        assert_eq!(a.history, vec![None, Some(11), Some(22), Some(33)]);
    }
}
