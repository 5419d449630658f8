//! The only async I/O: connect to the feed, subscribe to every topic, forward what arrives to
//! the app through a bounded channel, send the app's queries, and reconnect with backoff.
//!
//! The app never waits on the network: frames go through a bounded channel. When the app lags
//! and the channel is full, metrics snapshots are coalesced (only the newest is kept) and tail
//! messages are dropped and counted (`FeedEvent::LagDropped`); control messages (hello, answers,
//! notices) always get through.

use std::time::Duration;

use baddybugs_common::protocol::{
    peek_frame, ClientMessage, FeedFilter, FrameHead, MetricsSnapshot, PipelineTrace,
    ServerEnvelope, ServerMessage, TailEvent, TailMalformed, Topic, Waterfall,
};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::state::backoff::Backoff;
use crate::state::seq::{SeqCheck, SeqTracker};
use crate::state::tail::NodeIx;
use crate::state::FeedEvent;

/// An open feed connection.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connection that stays silent this long is considered lost (metrics come every second).
const READ_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the network task of one node reports: the app's channel, each report tagged with the
/// node (always 0 when the console watches one server).
#[derive(Debug, Clone)]
pub(crate) struct Reports {
    node: NodeIx,
    tx: mpsc::Sender<(NodeIx, FeedEvent)>,
}

impl Reports {
    /// Reports of node `node` into `tx`.
    pub(crate) fn new(node: NodeIx, tx: mpsc::Sender<(NodeIx, FeedEvent)>) -> Self {
        Reports { node, tx }
    }

    async fn send(&self, event: FeedEvent) -> Result<(), ()> {
        self.tx.send((self.node, event)).await.map_err(|_| ())
    }

    fn try_send(&self, event: FeedEvent) -> Result<(), TrySendError<FeedEvent>> {
        self.tx.try_send((self.node, event)).map_err(|e| match e {
            TrySendError::Full((_, event)) => TrySendError::Full(event),
            TrySendError::Closed((_, event)) => TrySendError::Closed(event),
        })
    }
}

/// Where to connect.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
}

/// What the app asks of the network task.
#[derive(Debug)]
pub(crate) enum NetCommand {
    /// Boxed: a query with its filters is far larger than the other commands.
    Send(Box<ClientMessage>),
    Reconnect,
}

/// Why a connection attempt failed, with advice for a person.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConnectError {
    BadUrl(String),
    Unauthorized,
    NotFound,
    Refused(String),
    Status(u16),
    Other(String),
}

impl ConnectError {
    /// One paragraph: what went wrong and how to fix it.
    pub(crate) fn explain(&self, url: &str) -> String {
        match self {
            ConnectError::BadUrl(e) => format!(
                "cannot use the feed URL {url:?}: {e}.\nPass --url ws://HOST:PORT/v1/feed (the server prints `listening on http://HOST:PORT`)."
            ),
            ConnectError::Unauthorized => format!(
                "the server at {url} refused the feed token (HTTP 401 before the WebSocket upgrade).\nPass --token TOKEN or set BADDYBUGS_FEED_TOKEN, or point --data-dir at the server's data directory (its dev-credentials.json holds the feed_token)."
            ),
            ConnectError::NotFound => format!(
                "{url} is not a feed endpoint (HTTP 404): is this the right URL? The feed is at ws://HOST:PORT/v1/feed."
            ),
            ConnectError::Refused(e) => format!(
                "cannot reach {url}: {e}.\nIs the server running? Start it with `cargo run -p baddybugs-ingest` (or `just run`), or fix --url."
            ),
            ConnectError::Status(code) => format!(
                "the server at {url} answered HTTP {code} instead of upgrading to a WebSocket; check --url."
            ),
            ConnectError::Other(e) => format!("cannot connect to {url}: {e}"),
        }
    }

    fn short(&self) -> String {
        match self {
            ConnectError::BadUrl(e) => format!("bad URL: {e}"),
            ConnectError::Unauthorized => "HTTP 401: bad token".into(),
            ConnectError::NotFound => "HTTP 404: not a feed URL".into(),
            ConnectError::Refused(e) => e.clone(),
            ConnectError::Status(c) => format!("HTTP {c}"),
            ConnectError::Other(e) => e.clone(),
        }
    }
}

fn classify(err: WsError) -> ConnectError {
    match err {
        WsError::Http(resp) if resp.status().as_u16() == 401 => ConnectError::Unauthorized,
        WsError::Http(resp) if resp.status().as_u16() == 404 => ConnectError::NotFound,
        WsError::Http(resp) => ConnectError::Status(resp.status().as_u16()),
        WsError::Url(e) => ConnectError::BadUrl(e.to_string()),
        WsError::HttpFormat(e) => ConnectError::BadUrl(e.to_string()),
        WsError::Io(e) => ConnectError::Refused(e.to_string()),
        other => ConnectError::Other(other.to_string()),
    }
}

/// Opens the WebSocket (token as `Authorization: Bearer`).
pub(crate) async fn connect(target: &Target) -> Result<Ws, ConnectError> {
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(classify)?;
    if let Some(token) = &target.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ConnectError::Other("the token contains characters a header cannot hold".into())
        })?;
        request.headers_mut().insert("authorization", value);
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(classify(e)),
        Err(_) => Err(ConnectError::Refused(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Runs the network task until the app goes away. `first` is the connection `main` opened to
/// check the settings before entering the TUI (`None` for a fleet node that was down then).
pub(crate) async fn run(
    first: Option<Ws>,
    target: Target,
    tx: Reports,
    mut commands: mpsc::UnboundedReceiver<NetCommand>,
) {
    let mut backoff = Backoff::default();
    let mut next = first;
    loop {
        let ws = match next.take() {
            Some(ws) => ws,
            None => {
                let attempt = backoff.attempt;
                if tx.send(FeedEvent::Connecting { attempt }).await.is_err() {
                    return;
                }
                match connect(&target).await {
                    Ok(ws) => ws,
                    Err(e) => {
                        tracing::info!(error = %e.short(), attempt, "feed connect failed");
                        if !wait(&mut backoff, e.short(), &tx, &mut commands).await {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        backoff.reset();
        if tx.send(FeedEvent::Connected).await.is_err() {
            return;
        }
        tracing::info!(url = %target.url, "feed connected");
        let reason = match Session::new(&tx).run(ws, &mut commands).await {
            Some(reason) => reason,
            None => return,
        };
        tracing::info!(%reason, "feed connection ended");
        if reason != "reconnect requested" && !wait(&mut backoff, reason, &tx, &mut commands).await
        {
            return;
        }
    }
}

/// Reports the loss and waits out the backoff (or until `R`); false when the app is gone.
async fn wait(
    backoff: &mut Backoff,
    error: String,
    tx: &Reports,
    commands: &mut mpsc::UnboundedReceiver<NetCommand>,
) -> bool {
    let delay = backoff.next_delay(rand::thread_rng().gen::<f64>());
    let event = FeedEvent::Disconnected {
        error,
        attempt: backoff.attempt,
        retry_in_ms: delay.as_millis() as u64,
    };
    if tx.send(event).await.is_err() {
        return false;
    }
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            command = commands.recv() => match command {
                None => return false,
                Some(NetCommand::Reconnect) => return true,
                Some(NetCommand::Send(message)) => {
                    if let Some(reply) = not_connected(*message) {
                        if tx.send(reply).await.is_err() {
                            return false;
                        }
                    }
                }
            },
        }
    }
}

/// A request cannot be sent while disconnected: answer it locally so nothing waits forever.
fn not_connected(message: ClientMessage) -> Option<FeedEvent> {
    let id = match message {
        ClientMessage::Query { id, .. } | ClientMessage::Get { id, .. } => id,
        _ => return None,
    };
    Some(FeedEvent::Message(Box::new(ServerEnvelope {
        seq: 0,
        message: ServerMessage::Error {
            id: Some(id),
            message: "not connected: the request was not sent".into(),
        },
    })))
}

/// One connection's forwarding state.
struct Session<'a> {
    tx: &'a Reports,
    seq: SeqTracker,
    pending_metrics: Option<FeedEvent>,
    lagged: u64,
}

impl<'a> Session<'a> {
    fn new(tx: &'a Reports) -> Self {
        Session {
            tx,
            seq: SeqTracker::default(),
            pending_metrics: None,
            lagged: 0,
        }
    }

    /// Returns why the connection ended, or None when the app is gone.
    async fn run(
        mut self,
        ws: Ws,
        commands: &mut mpsc::UnboundedReceiver<NetCommand>,
    ) -> Option<String> {
        let (mut sink, mut stream) = ws.split();
        let subscribe = ClientMessage::Subscribe {
            topics: Topic::ALL.to_vec(),
            filter: FeedFilter::default(),
        };
        let text = serde_json::to_string(&subscribe).unwrap_or_default();
        if let Err(e) = sink.send(Message::Text(text)).await {
            return Some(format!("cannot subscribe: {e}"));
        }
        let mut flush = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                frame = tokio::time::timeout(READ_TIMEOUT, stream.next()) => match frame {
                    Err(_) => return Some(format!("no data for {}s", READ_TIMEOUT.as_secs())),
                    Ok(None) => return Some("the server closed the connection".into()),
                    Ok(Some(Err(e))) => return Some(format!("connection lost: {e}")),
                    Ok(Some(Ok(Message::Text(text)))) => {
                        if !self.on_text(&text).await {
                            return None;
                        }
                    }
                    Ok(Some(Ok(Message::Close(_)))) => return Some("the server closed the connection".into()),
                    Ok(Some(Ok(_))) => {}
                },
                command = commands.recv() => match command {
                    None => return None,
                    Some(NetCommand::Reconnect) => return Some("reconnect requested".into()),
                    Some(NetCommand::Send(message)) => {
                        let text = serde_json::to_string(&message).unwrap_or_default();
                        if let Err(e) = sink.send(Message::Text(text)).await {
                            return Some(format!("connection lost: {e}"));
                        }
                    }
                },
                _ = flush.tick() => {
                    if !self.flush() {
                        return None;
                    }
                }
            }
        }
    }

    /// Tries to hand over what was held back; false when the app is gone.
    fn flush(&mut self) -> bool {
        if let Some(metrics) = self.pending_metrics.take() {
            match self.tx.try_send(metrics) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => self.pending_metrics = Some(m),
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        if self.lagged > 0 {
            match self.tx.try_send(FeedEvent::LagDropped(self.lagged)) {
                Ok(()) => self.lagged = 0,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    async fn on_text(&mut self, text: &str) -> bool {
        let envelope: ServerEnvelope = match decode(text) {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(%error, frame = %text.chars().take(200).collect::<String>(), "unreadable feed frame");
                return true;
            }
        };
        if let SeqCheck::Gap { missed } = self.seq.observe(envelope.seq) {
            if self.tx.send(FeedEvent::Gap { missed }).await.is_err() {
                return false;
            }
        }
        let tail = matches!(
            envelope.message,
            ServerMessage::Event(_)
                | ServerMessage::Malformed(_)
                | ServerMessage::Lifecycle(_)
                | ServerMessage::Pipeline(_)
        );
        let metrics = matches!(envelope.message, ServerMessage::Metrics(_));
        let event = FeedEvent::Message(Box::new(envelope));
        if metrics {
            // Coalesce: a newer snapshot replaces one still waiting.
            self.pending_metrics = Some(event);
            return self.flush();
        }
        if tail {
            if !self.flush() {
                return false;
            }
            if self.lagged > 0 {
                self.lagged += 1;
                return true;
            }
            return match self.tx.try_send(event) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.lagged += 1;
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            };
        }
        self.tx.send(event).await.is_ok()
    }
}

/// Decodes one server frame. The tail messages and metrics (nearly every frame under load) are
/// read straight into their struct, which ignores the `seq` and `kind` fields: the generic
/// path (`ServerEnvelope`, a flattened, internally tagged enum) first buffers the whole frame
/// into serde's `Content` tree, and costs the console several times more CPU and allocations.
/// Anything else, or a frame laid out differently, takes the generic path.
pub(crate) fn decode(text: &str) -> Result<ServerEnvelope, serde_json::Error> {
    let fast = peek_frame(text).and_then(|FrameHead { seq, kind }| {
        let message = match kind {
            "lifecycle" => serde_json::from_str::<Waterfall>(text)
                .map(|m| ServerMessage::Lifecycle(Box::new(m))),
            "event" => {
                serde_json::from_str::<TailEvent>(text).map(|m| ServerMessage::Event(Box::new(m)))
            }
            "malformed" => serde_json::from_str::<TailMalformed>(text)
                .map(|m| ServerMessage::Malformed(Box::new(m))),
            "pipeline" => serde_json::from_str::<PipelineTrace>(text)
                .map(|m| ServerMessage::Pipeline(Box::new(m))),
            "metrics" => serde_json::from_str::<MetricsSnapshot>(text)
                .map(|m| ServerMessage::Metrics(Box::new(m))),
            _ => return None,
        };
        Some(message.map(|message| ServerEnvelope { seq, message }))
    });
    match fast {
        Some(Ok(envelope)) => Ok(envelope),
        _ => serde_json::from_str(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_decoding_reads_what_the_generic_path_reads() {
        use crate::state::fixtures;
        let messages = vec![
            ServerMessage::Event(Box::new(fixtures::event(3, "log", "x"))),
            ServerMessage::Lifecycle(Box::new(fixtures::waterfall(1))),
            ServerMessage::Malformed(Box::new(fixtures::malformed(2))),
            ServerMessage::Pipeline(Box::new(fixtures::pipeline(3))),
            ServerMessage::Metrics(Box::default()),
            ServerMessage::Dropped { count: 2, total: 9 },
            ServerMessage::Pong { nonce: None },
        ];
        for (seq, message) in messages.into_iter().enumerate() {
            let envelope = ServerEnvelope {
                seq: seq as u64 + 1,
                message,
            };
            let text = serde_json::to_string(&envelope).unwrap();
            assert!(peek_frame(&text).is_some(), "{text}");
            assert_eq!(decode(&text).unwrap(), envelope);
        }
        // Another field order still decodes (the generic path).
        let other = r#"{"kind":"dropped","seq":4,"count":1,"total":1}"#;
        assert_eq!(decode(other).unwrap().seq, 4);
        assert!(decode(r#"{"seq":1,"kind":"event","id":3}"#).is_err());
    }

    #[test]
    fn errors_say_how_to_fix_them() {
        let url = "ws://127.0.0.1:1/v1/feed";
        assert!(ConnectError::Unauthorized.explain(url).contains("--token"));
        assert!(ConnectError::Refused("refused".into())
            .explain(url)
            .contains("running"));
        assert!(ConnectError::BadUrl("x".into())
            .explain(url)
            .contains("--url"));
    }

    #[tokio::test]
    async fn refused_and_bad_url_are_classified() {
        let target = Target {
            url: "ws://127.0.0.1:1/v1/feed".into(),
            token: None,
        };
        assert!(matches!(
            connect(&target).await,
            Err(ConnectError::Refused(_))
        ));
        let target = Target {
            url: "not a url".into(),
            token: None,
        };
        assert!(matches!(
            connect(&target).await,
            Err(ConnectError::BadUrl(_))
        ));
    }

    /// The server closes a feed client that does not answer its pings
    /// (`connections.websocket_pong_timeout_ms`). tungstenite queues the pong and sends it with
    /// the next read or write: the session always has a read pending, so it answers at once.
    #[tokio::test]
    async fn the_session_answers_the_servers_pings() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let mut pongs = Vec::new();
            for nonce in [b"one".to_vec(), b"two".to_vec()] {
                ws.send(Message::Ping(nonce)).await.unwrap();
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Pong(data))) => {
                            pongs.push(data);
                            break;
                        }
                        Some(Ok(_)) => continue,
                        other => panic!("no pong: {other:?}"),
                    }
                }
            }
            // The socket goes back with the pongs: dropping it here would reset the
            // session's connection before the test has read the answer.
            (pongs, ws)
        });
        let target = Target {
            url: format!("ws://{addr}/v1/feed"),
            token: None,
        };
        let ws = connect(&target).await.unwrap();
        let (tx, _rx) = mpsc::channel(16);
        let tx = Reports::new(0, tx);
        let (_commands_tx, mut commands) = mpsc::unbounded_channel();
        let session = Session::new(&tx).run(ws, &mut commands);
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                biased;
                answered = server => answered.unwrap(),
                ended = session => panic!("the session ended first: {ended:?}"),
            }
        })
        .await
        .expect("both pings answered within 10 s");
        assert_eq!(answered.0, [b"one".to_vec(), b"two".to_vec()]);
    }

    #[tokio::test]
    async fn lagging_app_gets_coalesced_metrics_and_a_drop_count() {
        let (tx, mut rx) = mpsc::channel(2);
        let tx = Reports::new(3, tx);
        let mut s = Session::new(&tx);
        let metrics = |seq: u64| {
            serde_json::to_string(&ServerEnvelope {
                seq,
                message: ServerMessage::Metrics(Box::default()),
            })
            .unwrap()
        };
        let event = |seq: u64| {
            serde_json::to_string(&ServerEnvelope {
                seq,
                message: ServerMessage::Event(Box::new(crate::state::fixtures::event(
                    seq, "log", "x",
                ))),
            })
            .unwrap()
        };
        assert!(s.on_text(&event(1)).await);
        assert!(s.on_text(&event(2)).await);
        // The channel (2) is full: tails are counted, metrics wait, newest kept.
        assert!(s.on_text(&event(3)).await);
        assert!(s.on_text(&metrics(4)).await);
        assert!(s.on_text(&metrics(5)).await);
        assert_eq!(s.lagged, 1);
        assert!(s.pending_metrics.is_some());
        for _ in 0..2 {
            rx.recv().await.unwrap();
        }
        assert!(s.flush());
        match rx.recv().await.unwrap() {
            (3, FeedEvent::Message(env)) => assert_eq!(env.seq, 5),
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.recv().await.unwrap(), (3, FeedEvent::LagDropped(1)));
    }
}
