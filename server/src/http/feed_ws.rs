//! `GET /v1/feed`: the WebSocket endpoint of the live feed ([`crate::feed`] is the hub it reads
//! from). The token is checked before the upgrade (401 otherwise); the first message is a
//! `hello`; every message carries the connection's sequence number (framed by
//! `protocol::encode_frame`); a malformed client message is answered with an `error` and the
//! connection stays. `query` and `get` go to the [`QueryService`], as the REST API's do.
//! A client silent for `connections.websocket_ping_interval_ms` is pinged, and closed when it
//! has not answered within `connections.websocket_pong_timeout_ms` ([`Liveness`]; counted as
//! `connections_closed_total{reason="dead_peer"}`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use baddybugs_common::catalog;
use baddybugs_common::protocol::{
    encode_frame, ClientMessage, ClientMessageError, Hello, ServerMessage, PROTOCOL_VERSION,
};
use baddybugs_common::query::EventLookup;
use baddybugs_common::timestamp::format_millis;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};

use crate::feed::liveness::{Due, Liveness};
use crate::feed::{Client, FeedHub};
use crate::http::error::ApiError;
use crate::http::query::require_token;
use crate::query::QueryService;
use crate::state::AppState;

/// Upgrades to the feed after checking the token.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let remote = remote.to_string();
    let hub = state.feed.clone();
    let queries = QueryService::new(state.store.clone(), state.drift.clone());
    let store_kind = state.metrics.gauges.sink.lock().kind.clone();
    let heartbeat = Heartbeat {
        interval: Duration::from_millis(state.config.connections.websocket_ping_interval_ms),
        timeout: Duration::from_millis(state.config.connections.websocket_pong_timeout_ms),
    };
    Ok(ws
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| connection(hub, queries, socket, remote, store_kind, heartbeat)))
}

/// The ping interval and pong timeout of a connection (`connections.websocket_*`).
#[derive(Debug, Clone, Copy)]
struct Heartbeat {
    interval: Duration,
    timeout: Duration,
}

/// How long a woken connection waits for more tail messages before it writes. A busy tail
/// publishes thousands of messages a second; waking and writing once per message cost more
/// server CPU than building them. Answers to the client's own requests do not wait.
const LINGER: Duration = Duration::from_millis(10);

/// How long the close frame may take to go out before the connection is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

async fn connection(
    hub: Arc<FeedHub>,
    queries: QueryService,
    socket: WebSocket,
    remote: String,
    store_kind: String,
    heartbeat: Heartbeat,
) {
    let client = hub.connect(remote.clone());
    tracing::info!(client = client.id, %remote, "feed client connected");
    let (mut sink, mut stream) = socket.split();
    let mut seq = 0u64;
    let timeout = Duration::from_millis(hub.config().slow_client_timeout_ms.max(1));
    let hello = ServerMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        instance_id: hub.instance_id().to_owned(),
        started_at: format_millis(hub.metrics().started_ms()),
        types: catalog::all().iter().map(|t| t.name.to_owned()).collect(),
        tail_retention: hub.config().tail_retention,
        store: store_kind,
    });
    seq += 1;
    let hello = encode_frame(seq, &serde_json::to_string(&hello).unwrap_or_default());
    if sink.send(Message::Text(hello.into())).await.is_err() {
        hub.disconnect(&client);
        return;
    }
    let mut liveness = Liveness::new(Instant::now(), heartbeat.interval, heartbeat.timeout);
    let reason = loop {
        if hub.is_closed() {
            break "server shutting down";
        }
        tokio::select! {
            _ = tokio::time::sleep_until(liveness.next_deadline().into()) => {
                match liveness.poll(Instant::now()) {
                    Some(Due::Ping) => {
                        if let Err(reason) = send_all(&mut sink, vec![Message::Ping(Default::default())], timeout).await {
                            break reason;
                        }
                    }
                    Some(Due::Dead) => {
                        hub.metrics().connections.dead_peers.fetch_add(1, Ordering::Relaxed);
                        break "dead peer: no answer to a ping";
                    }
                    None => {}
                }
            }
            _ = client.notified() => {
                if !client.has_control() {
                    // Let a burst gather: one wake-up and one socket write per burst.
                    tokio::time::sleep(LINGER).await;
                }
                let (messages, dropped) = client.take();
                let mut frames = Vec::with_capacity(messages.len() + 1);
                if let Some((count, total)) = dropped {
                    seq += 1;
                    let json = serde_json::to_string(&ServerMessage::Dropped { count, total }).unwrap_or_default();
                    frames.push(Message::Text(encode_frame(seq, &json).into()));
                }
                for message in messages {
                    seq += 1;
                    frames.push(Message::Text(encode_frame(seq, &message.json).into()));
                }
                if frames.is_empty() {
                    continue;
                }
                if let Err(reason) = send_all(&mut sink, frames, timeout).await {
                    break reason;
                }
            }
            incoming = stream.next() => {
                if matches!(incoming, Some(Ok(_))) {
                    liveness.heard(Instant::now());
                }
                match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break "client closed",
                    Some(Ok(Message::Text(text))) => handle_client_message(&hub, &queries, &client, text.as_str()),
                    Some(Ok(Message::Binary(_))) => hub.send_control(&client, &ServerMessage::Error {
                        id: None,
                        message: "binary frames are not supported: send JSON text frames".into(),
                    }),
                    Some(Ok(_)) => {}
                }
            }
        }
    };
    tracing::info!(client = client.id, %remote, reason, "feed client disconnected");
    hub.disconnect(&client);
    // A client dropped for being too slow does not read its close frame either: without a
    // bound, this task (its queue, its buffered frames) would live as long as the socket.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(None))).await;
}

/// Writes frames into the WebSocket's buffer (it goes to the socket each time it passes
/// 128 KiB) and flushes once at the end: one write per burst, not one per message. Each step
/// may block at most `timeout` (the slow-client limit).
async fn send_all(
    sink: &mut SplitSink<WebSocket, Message>,
    frames: Vec<Message>,
    timeout: Duration,
) -> Result<(), &'static str> {
    let too_slow = "client too slow: its socket stayed blocked";
    for frame in frames {
        match tokio::time::timeout(timeout, sink.feed(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err("connection lost"),
            Err(_) => return Err(too_slow),
        }
    }
    match tokio::time::timeout(timeout, sink.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("connection lost"),
        Err(_) => Err(too_slow),
    }
}

fn handle_client_message(
    hub: &Arc<FeedHub>,
    queries: &QueryService,
    client: &Arc<Client>,
    text: &str,
) {
    let message = match ClientMessage::parse(text) {
        Ok(m) => m,
        // A query of an unknown kind or with a bad parameter: answered under its id.
        Err(ClientMessageError {
            id: Some(id),
            message,
        }) => {
            hub.send_control(
                client,
                &ServerMessage::Error {
                    id: Some(id),
                    message,
                },
            );
            return;
        }
        Err(ClientMessageError { id: None, message }) => {
            hub.send_control(
                client,
                &ServerMessage::Error {
                    id: None,
                    message: format!(
                        "cannot read this message ({message}); expected {{\"op\":\"subscribe\"|\"unsubscribe\"|\"query\"|\"get\"|\"ping\", …}}"
                    ),
                },
            );
            return;
        }
    };
    match message {
        ClientMessage::Subscribe { topics, filter } => {
            let topics = hub.subscribe(client, &topics, filter);
            hub.send_control(client, &ServerMessage::Subscribed { topics });
        }
        ClientMessage::Unsubscribe { topics } => {
            let topics = hub.unsubscribe(client, &topics);
            hub.send_control(client, &ServerMessage::Subscribed { topics });
        }
        ClientMessage::Ping { nonce } => hub.send_control(client, &ServerMessage::Pong { nonce }),
        ClientMessage::Get {
            id,
            event_id,
            organization,
            application,
        } => {
            let hub = hub.clone();
            let queries = queries.clone();
            let client = client.clone();
            let lookup = EventLookup {
                event_id: event_id.clone(),
                organization,
                application,
            };
            tokio::spawn(async move {
                let message = match queries.event(lookup).await {
                    // One match: the event itself; several (tenants that share the id): every
                    // match, as `{"events": […]}` (docs/PROTOCOL.md).
                    Ok(mut events) if !events.is_empty() => {
                        let data = if events.len() == 1 {
                            serde_json::to_value(events.remove(0))
                        } else {
                            serde_json::to_value(events).map(|events| {
                                let mut matches = serde_json::Map::new();
                                matches.insert("events".into(), events);
                                serde_json::Value::Object(matches)
                            })
                        };
                        match data {
                            Ok(data) => ServerMessage::Result { id, data },
                            Err(err) => ServerMessage::Error {
                                id: Some(id),
                                message: format!("event {event_id:?} cannot be rendered: {err}"),
                            },
                        }
                    }
                    Ok(_) => ServerMessage::Error {
                        id: Some(id),
                        message: format!("no stored event has id {event_id:?}"),
                    },
                    Err(err) => ServerMessage::Error {
                        id: Some(id),
                        message: format!("the store cannot answer: {err}"),
                    },
                };
                hub.send_control(&client, &message);
            });
        }
        ClientMessage::Query { id, query } => {
            let hub = hub.clone();
            let queries = queries.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let message = match queries.run(query).await {
                    Ok(data) => ServerMessage::Result { id, data },
                    Err(err) => ServerMessage::Error {
                        id: Some(id),
                        message: err.to_string(),
                    },
                };
                hub.send_control(&client, &message);
            });
        }
    }
}
