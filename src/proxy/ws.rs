//! WebSocket proxying: upgrade, connect upstream, relay both ways, check agents' messages.
//!
//! The client's upgrade is answered only after the upstream accepted its own, so a refusal (401, 404
//! …) reaches the client with the upstream's status, and an unreachable upstream gets 502. Then two
//! loops relay frames: client → upstream and upstream → client. Everything written to the client goes
//! through one bounded queue (relayed frames, findings, nudges), so frames keep their order and a
//! client that stops reading holds back the upstream instead of growing memory; one that takes
//! nothing for `write_timeout` is closed (1008); see `relay`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::codec::{self, Decoded, Kind};
use super::http::{full, Body};
use super::{now_ms, peer_ip, Action, AgentConn, Record, Registry, Slot, State};
use crate::check::{Finding, Severity};
use crate::config::{AgentSide, Mode, Source};

/// Frames queued for a client before the upstream reader waits (back-pressure).
const CLIENT_QUEUE: usize = 64;

/// Buffer sizes: tungstenite's defaults (128 KiB read, 128 KiB write) would cost half a megabyte per
/// idle proxied connection; chat frames are small, and larger messages still arrive whole.
///
/// Writes are fed and then flushed once (see [`relay`]): frames queue in the write buffer until it
/// holds `write_buffer_size` bytes, so a burst goes out in one system call. The buffer keeps its
/// capacity once grown, so it is sized like the read buffer: a burst of chat frames fits, and an idle
/// connection that once had one holds at most a few KiB. A peer that does not read makes writing
/// wait (tokio-tungstenite flushes before it takes the next frame), so the buffer stays near
/// `write_buffer_size` plus one message; `max_write_buffer_size` is the hard cap.
fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(max_message.saturating_mul(2).max(64 * 1024))
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Whether a request asks for a WebSocket upgrade.
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// Headers that belong to one hop or to the handshake itself; the rest are passed upstream.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
];

/// Answers a WebSocket upgrade: connects upstream first, then completes the client's handshake and
/// spawns the relay.
pub async fn upgrade(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
    slot: Slot,
) -> Response<Body> {
    let config = &state.config;
    if !config.origins.is_empty() {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("");
        if !config.origins.iter().any(|o| o == origin) {
            tracing::info!(%peer, origin, "WebSocket refused: origin not allowed");
            return status(StatusCode::FORBIDDEN, "origin not allowed");
        }
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return status(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let url = config.upstream.ws_url(&path);
    let mut up_req = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%url, error = %e, "cannot build the upstream request");
            return status(StatusCode::BAD_GATEWAY, "bad upstream address");
        }
    };
    for (name, value) in req.headers() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            up_req.headers_mut().append(name.clone(), value.clone());
        }
    }
    let forwarded = match req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, {}", peer_ip(peer)),
        None => peer_ip(peer),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        up_req.headers_mut().insert("x-forwarded-for", v);
    }

    let ws_cfg = ws_config(config.max_message_bytes);
    let connect = tokio_tungstenite::connect_async_with_config(up_req, Some(ws_cfg), false);
    let (upstream, up_resp) = match tokio::time::timeout(config.connect_timeout, connect).await {
        Ok(Ok(x)) => x,
        Ok(Err(tungstenite::Error::Http(resp))) => {
            // The upstream refused the upgrade: the client hears exactly that.
            state
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            let (parts, body) = resp.into_parts();
            let mut out = Response::new(full(body.unwrap_or_default()));
            *out.status_mut() = parts.status;
            for (name, value) in &parts.headers {
                if !NOT_FORWARDED.contains(&name.as_str()) {
                    out.headers_mut().append(name.clone(), value.clone());
                }
            }
            return out;
        }
        Ok(Err(e)) => {
            state
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%url, error = %e, "upstream WebSocket connect failed");
            return status(StatusCode::BAD_GATEWAY, "upstream unreachable");
        }
        Err(_) => {
            state
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%url, "upstream WebSocket connect timed out");
            return status(StatusCode::GATEWAY_TIMEOUT, "upstream connect timed out");
        }
    };

    let agent = connect_agent_id(&req, &state);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    // The subprotocol the upstream chose is the one the client gets.
    if let Some(p) = up_resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p.clone());
    }
    tokio::spawn(async move {
        // The relay holds the connection's place until it ends.
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "client upgrade failed");
                return;
            }
        };
        let client = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config(state.config.max_message_bytes)),
        )
        .await;
        state
            .metrics
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        relay(client, upstream, state.clone(), stop, agent).await;
        state
            .metrics
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    });
    resp
}

/// The agent id a console gave when connecting, per `[proxy] agent_id`.
fn connect_agent_id(req: &Request<Incoming>, state: &State) -> Option<String> {
    match state.config.agent_id.as_ref()? {
        Source::Query(name) => req.uri().query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_string())
        }),
        Source::Header(name) => req
            .headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        _ => None,
    }
}

fn status(code: StatusCode, why: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(why.as_bytes())));
    *r.status_mut() = code;
    r
}

/// Reads `rx` until a close frame or its end.
async fn until_closed<S>(rx: Option<S>)
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let Some(mut rx) = rx else { return };
    while let Some(Ok(m)) = rx.next().await {
        if m.is_close() {
            return;
        }
    }
}

/// How a relay ended, for the close frames sent to whichever side is still open.
fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}

/// What the per-connection logic decided about a frame.
enum Verdict {
    Forward(Message),
    Hold,
}

/// Per-connection context: which side the agent is on and the console to write liyu's frames to.
struct Ctx {
    state: Arc<State>,
    id: u64,
    /// Queue to the client.
    to_client: mpsc::Sender<Message>,
    /// Agent id and conversations learnt on this connection (for the registry).
    namespace: Option<String>,
}

impl Ctx {
    /// Whether the client of this connection is an agent's console (where liyu's frames may go).
    fn client_is_agent(&self) -> bool {
        self.state.config.agent_side == AgentSide::Client
    }

    fn console(&self, decoded: &Decoded) -> AgentConn {
        AgentConn {
            id: self.id,
            tx: self.to_client.clone(),
            framing: self.state.config.messages[decoded.spec].framing,
            namespace: decoded
                .namespace()
                .map(str::to_string)
                .or(self.namespace.clone()),
        }
    }

    /// A frame from the agent's side: checked, maybe held back.
    async fn agent_frame(&mut self, msg: Message) -> Verdict {
        let Message::Text(text) = &msg else {
            return Verdict::Forward(msg);
        };
        let state = self.state.clone();
        if self.client_is_agent() {
            if let Some(request) = codec::decode_check(text.as_str()) {
                // A draft, not a message: answered here, never forwarded, nothing recorded.
                let findings = if state.config.checking {
                    check(&state, request.text.clone()).await
                } else {
                    Vec::new()
                };
                let mode = match state.config.mode {
                    Mode::Annotate => "annotate",
                    Mode::Block => "block",
                };
                let _ = self
                    .to_client
                    .send(Message::text(request.answer(mode, &findings)))
                    .await;
                return Verdict::Hold;
            }
        }
        let Some(decoded) = codec::decode(&state.config.messages, text.as_str()) else {
            return Verdict::Forward(msg);
        };
        if decoded.namespace().is_some() {
            self.namespace = decoded.namespace().map(str::to_string);
        }
        if self.client_is_agent() {
            let console = self.console(&decoded);
            let mut reg = state.registry();
            if let Some(agent) = &decoded.sender {
                Registry::add(&mut reg.by_agent, agent, &console);
            }
            if let Some(conv) = &decoded.conversation {
                Registry::add(&mut reg.by_conversation, conv, &console);
            }
        }
        let now = tokio::time::Instant::now().into_std();
        match decoded.kind {
            Kind::End => {
                if let Some(conv) = &decoded.conversation {
                    let findings = state.conversations().end(conv, now);
                    self.conversation_findings(&decoded, findings);
                }
                Verdict::Forward(msg)
            }
            Kind::Message => {
                let text = decoded.text.clone().unwrap_or_default();
                let mut findings = if state.config.checking {
                    check(&state, text.clone()).await
                } else {
                    Vec::new()
                };
                findings.extend(state.agent_said(
                    decoded.conversation.as_deref(),
                    decoded.sender.as_deref(),
                    &text,
                    now,
                ));
                let blocking = state.config.mode == Mode::Block
                    && findings.iter().any(|f| f.severity == Severity::Block);
                let (verdict, action) = if blocking && !decoded.override_requested {
                    state.metrics.blocked.fetch_add(1, Ordering::Relaxed);
                    (Verdict::Hold, Action::Blocked)
                } else if decoded.override_requested {
                    let forwarded = Message::text(decoded.without_override());
                    let action = if blocking {
                        Action::Overridden
                    } else {
                        Action::Delivered
                    };
                    (Verdict::Forward(forwarded), action)
                } else {
                    (Verdict::Forward(msg), Action::Delivered)
                };
                if !findings.is_empty() {
                    let record = Record {
                        at_ms: now_ms(),
                        conversation: decoded.conversation.clone(),
                        agent: decoded.sender.clone(),
                        message_id: decoded.message_id.clone(),
                        text: text.clone(),
                        action,
                        findings,
                    };
                    if state.config.inject && self.client_is_agent() {
                        let frame = decoded.encode_event(&record.frame());
                        // The findings frame follows the relayed frames already queued.
                        let _ = self.to_client.send(Message::text(frame)).await;
                    }
                    state.publish(record);
                }
                state.agent_context(decoded.conversation.as_deref(), &text);
                verdict
            }
        }
    }

    /// A frame from the customer's side: seen (it starts the reply clock), never changed.
    fn customer_frame(&mut self, msg: &Message) {
        let Message::Text(text) = msg else { return };
        let state = self.state.clone();
        let Some(decoded) = codec::decode(&state.config.messages, text.as_str()) else {
            return;
        };
        let Some(conv) = decoded.conversation.clone() else {
            return;
        };
        let now = tokio::time::Instant::now().into_std();
        match decoded.kind {
            Kind::Message => {
                if self.client_is_agent() {
                    let console = self.console(&decoded);
                    Registry::add(&mut state.registry().by_conversation, &conv, &console);
                }
                state.customer_said(&conv, decoded.text.as_deref().unwrap_or(""), now);
            }
            Kind::End => {
                let findings = state.conversations().end(&conv, now);
                self.conversation_findings(&decoded, findings);
            }
        }
    }

    fn conversation_findings(&self, decoded: &Decoded, findings: Vec<Finding>) {
        if findings.is_empty() {
            return;
        }
        let record = Record {
            at_ms: now_ms(),
            conversation: decoded.conversation.clone(),
            agent: decoded.sender.clone(),
            message_id: None,
            text: String::new(),
            action: Action::Recorded,
            findings,
        };
        if self.state.config.inject && self.client_is_agent() {
            let _ = self
                .to_client
                .try_send(Message::text(decoded.encode_event(&record.frame())));
        }
        self.state.publish(record);
    }
}

/// Checks a message off the reactor when it is large enough to take noticeable time.
pub(crate) async fn check(state: &Arc<State>, text: String) -> Vec<Finding> {
    /// Below this a check takes microseconds: cheaper inline than a thread hop.
    const INLINE_BYTES: usize = 16 * 1024;
    let checker = state.checker();
    let started = std::time::Instant::now();
    let findings = if text.len() <= INLINE_BYTES {
        checker.check(&text)
    } else {
        tokio::task::spawn_blocking(move || checker.check(&text))
            .await
            .unwrap_or_default()
    };
    state.metrics.observe_check(started.elapsed());
    findings
}

/// Why one direction of the relay stopped.
enum End {
    /// The side closed (its close frame was forwarded).
    Closed,
    /// The side's connection failed or vanished.
    Gone,
    /// A protocol violation: close with this code.
    Violation(CloseCode, &'static str),
    /// The other side can no longer be written to (its connection is gone, or it stopped reading
    /// and was given up on).
    PeerGone,
    /// The other side took no frame for `write_timeout`: close the reading side with this code.
    PeerStalled(CloseCode, &'static str),
    /// Shutdown or idle timeout.
    Stopped(CloseCode, &'static str),
    /// The relay is ending for a reason the other direction found.
    Halted,
}

impl End {
    fn idle() -> End {
        End::Stopped(CloseCode::Away, "idle timeout")
    }

    fn shutdown() -> End {
        End::Stopped(CloseCode::Away, "liyu is shutting down")
    }
}

fn classify(e: &tungstenite::Error) -> End {
    use tungstenite::error::{CapacityError, ProtocolError};
    match e {
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            End::Violation(CloseCode::Size, "message too big")
        }
        tungstenite::Error::Capacity(_) => End::Violation(CloseCode::Size, "frame too big"),
        tungstenite::Error::Utf8(_) => End::Violation(CloseCode::Invalid, "invalid UTF-8"),
        // The connection ended without a close frame: the peer is gone (a crash, a dropped
        // network), not speaking the protocol wrong; the other side is told so (1001 or 1011).
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
        tungstenite::Error::Protocol(_) => End::Violation(CloseCode::Protocol, "protocol error"),
        _ => End::Gone,
    }
}

type ClientWs = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type UpstreamWs = WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// When a frame last went either way, for the idle timeout: a console that only listens while the
/// chat server talks is not idle.
struct Activity {
    start: tokio::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: tokio::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the connection becomes idle if nothing goes either way before then.
    fn deadline(&self, idle: Duration) -> tokio::time::Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    /// Waits until the connection has been idle for `idle` in both directions.
    async fn idle(&self, idle: Duration) {
        loop {
            let at = self.deadline(idle);
            if at <= tokio::time::Instant::now() {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

/// How long liyu waits to hand over the close frames at the end of a relay: a peer that does not
/// take them by then is dropped without one.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Relays frames between `client` and `upstream` until both are done.
///
/// Back-pressure, both ways: frames wait in a queue of [`CLIENT_QUEUE`] frames (towards the client)
/// or in the socket (towards the upstream), and while they wait liyu reads nothing more from the
/// sending side, so a peer that does not read slows its sender down instead of growing liyu's
/// memory. A peer that takes nothing for `write_timeout` is given up on: a client that stopped
/// reading is closed with 1008 (when the close frame can still be written; otherwise its connection
/// is dropped) and the upstream told 1001; an upstream that stopped reading gets the client closed
/// with 1011.
async fn relay(
    client: ClientWs,
    upstream: UpstreamWs,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    agent: Option<String>,
) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let (to_client, mut client_queue) = mpsc::channel::<Message>(CLIENT_QUEUE);
    let id = state.conn_id();
    let mut ctx = Ctx {
        state: state.clone(),
        id,
        to_client: to_client.clone(),
        namespace: None,
    };
    let idle = state.config.idle_timeout;
    let write_timeout = state.config.write_timeout;
    let activity = Arc::new(Activity::new());
    // Set when one direction ends for a reason the other must act on (the client given up on).
    let (halt_tx, halt_rx) = watch::channel(false);
    let agent_is_client = state.config.agent_side == AgentSide::Client;
    if let (Some(agent), true) = (&agent, agent_is_client) {
        // Findings of messages this agent sends by HTTP come back on this socket.
        let console = AgentConn {
            id,
            tx: to_client.clone(),
            framing: state
                .config
                .messages
                .first()
                .map_or(codec::Framing::Json, |m| m.framing),
            namespace: None,
        };
        Registry::add(&mut state.registry().by_agent, agent, &console);
    }

    // Writer to the client: drains the queue, batching what is ready into one flush. A flush that
    // does not finish in `write_timeout` means the client stopped reading: it gets 1008 if that can
    // still be written, and the queue is dropped, which the upstream reader sees.
    let client_stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stalled = client_stalled.clone();
    let writer = tokio::spawn(async move {
        while let Some(first) = client_queue.recv().await {
            let is_close = matches!(first, Message::Close(_));
            let batch = async {
                client_tx.feed(first).await?;
                if !is_close {
                    while let Ok(next) = client_queue.try_recv() {
                        let closing = matches!(next, Message::Close(_));
                        client_tx.feed(next).await?;
                        if closing {
                            break;
                        }
                    }
                }
                client_tx.flush().await
            };
            let written = tokio::time::timeout(write_timeout, batch).await;
            match written {
                Ok(Ok(())) if !is_close => continue,
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    stalled.store(true, Ordering::Relaxed);
                    let why = close(CloseCode::Policy, "client too slow: frames not read");
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), client_tx.send(why)).await;
                    return;
                }
            }
            let _ = tokio::time::timeout(CLOSE_WAIT, client_tx.close()).await;
            return;
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, client_tx.close()).await;
    });

    // Upstream → client.
    let up_state = state.clone();
    let up_to_client = to_client.clone();
    let mut up_ctx = Ctx {
        state: state.clone(),
        id,
        to_client: to_client.clone(),
        namespace: None,
    };
    let mut up_stop = stop.clone();
    let mut up_halt = halt_rx.clone();
    let up_activity = activity.clone();
    let upstream_reader = async move {
        let end = async {
            loop {
                let next = tokio::select! {
                    m = up_rx.next() => m,
                    _ = up_activity.idle(idle) => return End::idle(),
                    _ = super::stopped(&mut up_stop) => return End::shutdown(),
                    _ = up_to_client.closed() => return End::PeerGone,
                    _ = super::stopped(&mut up_halt) => return End::Halted,
                };
                let msg = match next {
                    None => return End::Gone,
                    Some(Err(e)) => return classify(&e),
                    Some(Ok(m)) => m,
                };
                up_activity.touch();
                up_state.metrics.frames.fetch_add(1, Ordering::Relaxed);
                let closing = matches!(msg, Message::Close(_));
                if agent_is_client {
                    // Relayed first, then looked at: a findings frame it causes (a missing
                    // farewell when it ends the conversation) follows it.
                    let seen = matches!(msg, Message::Text(_)).then(|| msg.clone());
                    if up_to_client.send(msg).await.is_err() {
                        return End::PeerGone;
                    }
                    if let Some(seen) = seen {
                        up_ctx.customer_frame(&seen);
                    }
                } else if let Verdict::Forward(m) = up_ctx.agent_frame(msg).await {
                    if up_to_client.send(m).await.is_err() {
                        return End::PeerGone;
                    }
                }
                if closing {
                    return End::Closed;
                }
            }
        }
        .await;
        (end, up_rx)
    };

    // Client → upstream.
    let client_state = state.clone();
    let mut client_halt = halt_rx;
    let client_activity = activity.clone();
    let client_reader = async move {
        let end = async {
            loop {
                let next = tokio::select! {
                    m = client_rx.next() => m,
                    _ = client_activity.idle(idle) => return End::idle(),
                    _ = super::stopped(&mut stop) => return End::shutdown(),
                    _ = super::stopped(&mut client_halt) => return End::Halted,
                };
                let msg = match next {
                    None => return End::Gone,
                    Some(Err(e)) => return classify(&e),
                    Some(Ok(m)) => m,
                };
                client_activity.touch();
                client_state.metrics.frames.fetch_add(1, Ordering::Relaxed);
                let closing = matches!(msg, Message::Close(_));
                let out = if agent_is_client {
                    match ctx.agent_frame(msg).await {
                        Verdict::Forward(m) => Some(m),
                        Verdict::Hold => None,
                    }
                } else {
                    ctx.customer_frame(&msg);
                    Some(msg)
                };
                if let Some(m) = out {
                    match tokio::time::timeout(write_timeout, up_tx.send(m)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return End::PeerGone,
                        Err(_) => {
                            return End::PeerStalled(
                                CloseCode::Error,
                                "upstream too slow: frames not read",
                            )
                        }
                    }
                }
                if closing {
                    return End::Closed;
                }
            }
        }
        .await;
        (end, up_tx, client_rx)
    };

    let mut upstream_reader = Box::pin(upstream_reader);
    let mut client_reader = Box::pin(client_reader);
    // Whichever side ends first decides what the other side is told. Every close frame is offered
    // for at most CLOSE_WAIT: a peer that does not read must not hold the relay open.
    let tell_client = |m: Message| {
        let to_client = to_client.clone();
        async move {
            let _ = tokio::time::timeout(CLOSE_WAIT, to_client.send(m)).await;
        }
    };
    // The reading halves, handed back as the readers end, for the closing handshake.
    let (mut up_rest, mut client_rest) = (None, None);
    tokio::select! {
        (end, rx) = &mut upstream_reader => {
            up_rest = Some(rx);
            let upstream_told = match end {
                End::Closed | End::Halted => None,
                End::Violation(code, why) => {
                    tell_client(close(code, why)).await;
                    None
                }
                End::Stopped(code, why) => {
                    tell_client(close(code, why)).await;
                    Some((code, why))
                }
                End::Gone | End::PeerStalled(..) => {
                    tell_client(close(CloseCode::Error, "upstream connection lost")).await;
                    None
                }
                End::PeerGone => {
                    // The client cannot be written to: stop reading it and tell the upstream why.
                    let _ = halt_tx.send(true);
                    if client_stalled.load(Ordering::Relaxed) {
                        Some((CloseCode::Away, "client too slow"))
                    } else {
                        Some((CloseCode::Away, "client connection lost"))
                    }
                }
            };
            // Give the client a moment to answer the close, then stop reading it. On shutdown the
            // upstream is told too (the client reader stops at the same signal).
            let client_done = tokio::time::timeout(CLOSE_WAIT, &mut client_reader).await;
            if let Ok((_, mut up_tx, rx)) = client_done {
                client_rest = Some(rx);
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    if let Some((code, why)) = upstream_told {
                        let _ = up_tx.send(close(code, why)).await;
                    }
                    let _ = up_tx.close().await;
                })
                .await;
            }
        }
        (end, mut up_tx, rx) = &mut client_reader => {
            client_rest = Some(rx);
            let upstream_told = match end {
                End::Closed | End::Halted => None,
                End::PeerGone => {
                    tell_client(close(CloseCode::Error, "upstream connection lost")).await;
                    None
                }
                End::PeerStalled(code, why) => {
                    // The upstream is not reading: a close frame would wait behind what it has not
                    // read, so it is not sent; dropping the connection tells it.
                    tell_client(close(code, why)).await;
                    None
                }
                End::Violation(code, why) => {
                    tell_client(close(code, why)).await;
                    Some((CloseCode::Away, "client connection closed"))
                }
                End::Stopped(code, why) => {
                    tell_client(close(code, why)).await;
                    Some((code, why))
                }
                End::Gone => Some((CloseCode::Away, "client connection lost")),
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                if let Some((code, why)) = upstream_told {
                    let _ = up_tx.send(close(code, why)).await;
                }
                let _ = up_tx.close().await;
            })
            .await;
            if let Ok((_, rx)) = tokio::time::timeout(CLOSE_WAIT, &mut upstream_reader).await {
                up_rest = Some(rx);
            }
        }
    }
    // The closing handshake: each side is read until its close frame (what it sent meanwhile is
    // dropped), so the connection ends with a FIN. Closing a socket with unread data sends a reset
    // instead, and a reset can destroy the close frame liyu has just sent.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        tokio::join!(until_closed(up_rest), until_closed(client_rest));
    })
    .await;
    // Every sender of the client queue must go for the writer to finish: the registry's, the
    // readers' and ours.
    state.registry().remove(id);
    drop(upstream_reader);
    drop(client_reader);
    drop(to_client);
    let _ = tokio::time::timeout(CLOSE_WAIT, writer).await;
}
