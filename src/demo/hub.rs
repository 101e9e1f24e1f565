//! The demo's chat backend: the customer page, the agent console page, and a WebSocket hub that
//! relays messages between customers and agents by conversation.
//!
//! It knows nothing of liyu: it is the chat system liyu stands in front of. Its memory is bounded
//! ([`MAX_CONVERSATIONS`], [`MAX_MESSAGES`]) and a peer that stops reading loses frames rather than
//! holding up the others.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State as AxState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::config::Mode;
use crate::proxy::now_ms;

/// Conversations kept; past this the oldest is forgotten.
pub const MAX_CONVERSATIONS: usize = 100;
/// Messages kept per conversation (what a page reloaded gets back).
pub const MAX_MESSAGES: usize = 200;
/// The longest message accepted, in characters.
const MAX_TEXT_CHARS: usize = 2_000;
/// The longest id (conversation, message, agent) accepted, in bytes.
const MAX_ID: usize = 64;
/// Frames queued for one page before further ones are dropped.
const PEER_QUEUE: usize = 256;

/// What the backend needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Told to agent consoles, which show it.
    pub mode: Mode,
    /// Where liyu's admin listener serves `liyu-console.js`, e.g. `http://127.0.0.1:9090`.
    pub liyu: String,
}

const CUSTOMER_HTML: &str = include_str!("assets/customer.html");
const AGENT_HTML: &str = include_str!("assets/agent.html");
const CUSTOMER_JS: &str = include_str!("assets/customer.js");
const AGENT_JS: &str = include_str!("assets/agent.js");
const DEMO_CSS: &str = include_str!("assets/demo.css");

/// Pages run only their own files (and, on the agent console, liyu's); message text never becomes
/// markup.
const CUSTOMER_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Conversation {
    id: String,
    name: String,
    closed: bool,
    messages: VecDeque<Value>,
}

impl Conversation {
    fn summary(&self) -> Value {
        json!({
            "conversation": self.id,
            "name": self.name,
            "closed": self.closed,
            "messages": self.messages,
        })
    }
}

struct Peer {
    id: u64,
    /// The customer's conversation; None for agents.
    conversation: Option<String>,
    tx: mpsc::Sender<Message>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    visitors: u64,
    conversations: VecDeque<Conversation>,
    agents: Vec<Peer>,
    customers: Vec<Peer>,
}

impl Inner {
    fn conversation(&mut self, id: &str) -> Option<&mut Conversation> {
        self.conversations.iter_mut().find(|c| c.id == id)
    }

    fn to_agents(&self, frame: &Value) {
        let text = frame.to_string();
        for a in &self.agents {
            // A console that stops reading misses frames; it gets them all back on reload.
            let _ = a.tx.try_send(Message::text(text.clone()));
        }
    }

    fn to_customers(&self, conversation: &str, frame: &Value) {
        let text = frame.to_string();
        for c in &self.customers {
            if c.conversation.as_deref() == Some(conversation) {
                let _ = c.tx.try_send(Message::text(text.clone()));
            }
        }
    }
}

/// The chat backend's state.
pub struct Hub {
    settings: Settings,
    agent_csp: String,
    agent_html: String,
    inner: Mutex<Inner>,
    stop: watch::Sender<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Customer,
    Agent,
}

impl Hub {
    /// A hub with no conversations yet.
    pub fn new(settings: Settings) -> Arc<Hub> {
        let liyu = settings.liyu.trim_end_matches('/').to_string();
        let agent_csp = format!(
            "default-src 'none'; script-src 'self' {liyu}; style-src 'self' {liyu}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        let agent_html = AGENT_HTML.replace("{{LIYU}}", &liyu);
        Arc::new(Hub {
            settings,
            agent_csp,
            agent_html,
            inner: Mutex::new(Inner::default()),
            stop: watch::channel(false).0,
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A customer's page connects: to its conversation when it names one still open, else to a new
    /// one. The page is sent its conversation; agents hear of a new one.
    fn join_customer(&self, wanted: Option<&str>, tx: mpsc::Sender<Message>) -> (u64, String) {
        let mut inner = self.inner();
        inner.next += 1;
        let peer = inner.next;
        let open = wanted.filter(|w| valid_id(w)).and_then(|w| {
            inner
                .conversation(w)
                .filter(|c| !c.closed)
                .map(|c| c.id.clone())
        });
        let id = match open {
            Some(id) => id,
            None => {
                inner.visitors += 1;
                let n = inner.visitors;
                // The clock part keeps a page still holding a conversation of an earlier run of the
                // demo from joining a new stranger's.
                let id = format!("c-{n}-{}", now_ms() % 100_000);
                if inner.conversations.len() == MAX_CONVERSATIONS {
                    inner.conversations.pop_front();
                }
                inner.conversations.push_back(Conversation {
                    id: id.clone(),
                    name: format!("访客 {n}"),
                    closed: false,
                    messages: VecDeque::new(),
                });
                inner.to_agents(&json!({
                    "type": "conversation",
                    "conversation": id,
                    "name": format!("访客 {n}"),
                    "closed": false,
                }));
                id
            }
        };
        let welcome = match inner.conversation(&id) {
            Some(c) => {
                let mut w = c.summary();
                w["type"] = json!("welcome");
                w
            }
            None => json!({"type": "welcome", "conversation": id}),
        };
        let _ = tx.try_send(Message::text(welcome.to_string()));
        inner.customers.push(Peer {
            id: peer,
            conversation: Some(id.clone()),
            tx,
        });
        (peer, id)
    }

    /// An agent's console connects: it is sent the mode and every conversation.
    fn join_agent(&self, tx: mpsc::Sender<Message>) -> u64 {
        let mut inner = self.inner();
        inner.next += 1;
        let peer = inner.next;
        let mode = match self.settings.mode {
            Mode::Annotate => "annotate",
            Mode::Block => "block",
        };
        let conversations: Vec<Value> = inner
            .conversations
            .iter()
            .map(Conversation::summary)
            .collect();
        let hello = json!({"type": "hello", "mode": mode, "conversations": conversations});
        let _ = tx.try_send(Message::text(hello.to_string()));
        inner.agents.push(Peer {
            id: peer,
            conversation: None,
            tx,
        });
        peer
    }

    fn leave(&self, peer: u64) {
        let mut inner = self.inner();
        inner.agents.retain(|p| p.id != peer);
        inner.customers.retain(|p| p.id != peer);
    }

    /// A frame from a customer of `conversation`.
    fn customer_frame(&self, conversation: &str, frame: &Value) -> Result<(), &'static str> {
        let mut inner = self.inner();
        match frame.get("type").and_then(Value::as_str) {
            Some("message") => {
                let text = message_text(frame)?;
                let c = inner
                    .conversation(conversation)
                    .ok_or("this conversation has ended")?;
                if c.closed {
                    return Err("this conversation has ended");
                }
                let message = json!({
                    "type": "message",
                    "id": message_id(frame),
                    "conversation": conversation,
                    "from": "customer",
                    "sender": c.name,
                    "text": text,
                    "at": now_ms(),
                });
                remember(c, &message);
                inner.to_agents(&message);
                inner.to_customers(conversation, &message);
                Ok(())
            }
            Some("end") => {
                let c = inner
                    .conversation(conversation)
                    .ok_or("no such conversation")?;
                if !c.closed {
                    c.closed = true;
                    inner.to_agents(
                        &json!({"type": "conversation.closed", "conversation": conversation}),
                    );
                    inner.to_customers(conversation, &json!({"type": "closed"}));
                }
                Ok(())
            }
            _ => Err("unknown frame"),
        }
    }

    /// A frame from an agent (through liyu: a message liyu held back never arrives here).
    fn agent_frame(&self, frame: &Value) -> Result<(), &'static str> {
        if frame.get("type").and_then(Value::as_str) != Some("message") {
            return Err("unknown frame");
        }
        let text = message_text(frame)?;
        let conversation = frame
            .get("conversation")
            .and_then(Value::as_str)
            .filter(|c| valid_id(c))
            .ok_or("a message needs its conversation")?
            .to_string();
        let sender = frame
            .get("sender")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_ID)
            .unwrap_or("agent")
            .to_string();
        let mut inner = self.inner();
        let c = inner
            .conversation(&conversation)
            .ok_or("no such conversation")?;
        if c.closed {
            return Err("this conversation has ended");
        }
        let mut message = json!({
            "type": "message",
            "id": message_id(frame),
            "conversation": conversation,
            "from": "agent",
            "sender": sender,
            "text": text,
            "at": now_ms(),
        });
        remember(c, &message);
        inner.to_customers(&conversation, &message);
        // Consoles hear of it as "sent", not "message": liyu reads frames coming to a console as
        // the customer's, and an agent's own words must not look like a customer waiting.
        message["type"] = json!("sent");
        inner.to_agents(&message);
        Ok(())
    }
}

fn remember(c: &mut Conversation, message: &Value) {
    if c.messages.len() == MAX_MESSAGES {
        c.messages.pop_front();
    }
    c.messages.push_back(message.clone());
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn message_text(frame: &Value) -> Result<&str, &'static str> {
    let text = frame
        .get("text")
        .and_then(Value::as_str)
        .ok_or("a message needs its text")?;
    if text.trim().is_empty() {
        return Err("the message is empty");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("the message is too long");
    }
    Ok(text)
}

/// The page's id for a message, or one of ours.
fn message_id(frame: &Value) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    match frame.get("id").and_then(Value::as_str) {
        Some(id) if valid_id(id) => id.to_string(),
        _ => format!("h-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
    }
}

/// The backend's routes.
pub fn app(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(customer_page))
        .route("/agent", get(agent_page))
        .route(
            "/assets/demo.css",
            get(|| asset("text/css; charset=utf-8", DEMO_CSS)),
        )
        .route(
            "/assets/customer.js",
            get(|| asset("text/javascript; charset=utf-8", CUSTOMER_JS)),
        )
        .route(
            "/assets/agent.js",
            get(|| asset("text/javascript; charset=utf-8", AGENT_JS)),
        )
        .route("/ws/customer", get(customer_socket))
        .route("/ws/agent", get(agent_socket))
        .with_state(hub)
}

/// Serves the backend on `listener` until `shutdown`; then every page's socket is closed with 1001.
pub async fn run(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stop = hub.stop.clone();
    let serve = axum::serve(listener, app(hub)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    if let Err(e) = serve.await {
        tracing::error!(error = %e, "demo chat backend failed");
    }
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn page(body: String, csp: &str) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

async fn customer_page() -> Response {
    page(CUSTOMER_HTML.to_string(), CUSTOMER_CSP)
}

async fn agent_page(AxState(hub): AxState<Arc<Hub>>) -> Response {
    page(hub.agent_html.clone(), &hub.agent_csp)
}

#[derive(Deserialize)]
struct CustomerQuery {
    conversation: Option<String>,
}

async fn customer_socket(
    AxState(hub): AxState<Arc<Hub>>,
    Query(q): Query<CustomerQuery>,
    req: Request,
) -> Response {
    upgrade(req, move |ws| {
        session(ws, hub, Side::Customer, q.conversation)
    })
}

async fn agent_socket(AxState(hub): AxState<Arc<Hub>>, req: Request) -> Response {
    upgrade(req, move |ws| session(ws, hub, Side::Agent, None))
}

type PageWs = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Answers a WebSocket handshake and runs `then` on the socket.
fn upgrade<F, Fut>(mut req: Request, then: F) -> Response
where
    F: FnOnce(PageWs) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return (StatusCode::BAD_REQUEST, "a WebSocket upgrade is expected").into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, None).await;
        then(ws).await;
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// One page's socket: its frames go to the hub, the hub's frames to it, until either side closes or
/// the demo stops.
async fn session(ws: PageWs, hub: Arc<Hub>, side: Side, wanted: Option<String>) {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(PEER_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let closing = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (peer, conversation) = match side {
        Side::Customer => {
            let (peer, c) = hub.join_customer(wanted.as_deref(), tx.clone());
            (peer, Some(c))
        }
        Side::Agent => (hub.join_agent(tx.clone()), None),
    };
    let mut stop = hub.stop.subscribe();
    loop {
        let next = tokio::select! {
            m = stream.next() => m,
            _ = crate::proxy::stopped(&mut stop) => {
                let _ = tx.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "the demo is stopping".into(),
                }))).await;
                break;
            }
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let result = match (&conversation, side) {
            (Some(c), Side::Customer) => hub.customer_frame(c, &frame),
            _ => hub.agent_frame(&frame),
        };
        if let Err(why) = result {
            let error = json!({"type": "error", "message": why, "id": frame.get("id")});
            let _ = tx.try_send(Message::text(error.to_string()));
        }
    }
    hub.leave(peer);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Arc<Hub> {
        Hub::new(Settings {
            mode: Mode::Block,
            liyu: "http://127.0.0.1:9".into(),
        })
    }

    fn frames(rx: &mut mpsc::Receiver<Message>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Message::Text(t)) = rx.try_recv() {
            out.push(serde_json::from_str(t.as_str()).unwrap());
        }
        out
    }

    #[test]
    fn messages_go_to_the_other_side_of_their_conversation_only() {
        let hub = hub();
        let (agent_tx, mut agent) = mpsc::channel(16);
        hub.join_agent(agent_tx);
        let (a_tx, mut a) = mpsc::channel(16);
        let (_, conv_a) = hub.join_customer(None, a_tx);
        let (b_tx, mut b) = mpsc::channel(16);
        let (_, conv_b) = hub.join_customer(None, b_tx);
        assert_ne!(conv_a, conv_b);
        let hello = frames(&mut agent);
        assert_eq!(hello[0]["type"], "hello");
        assert_eq!(hello[0]["mode"], "block");
        assert_eq!(hello[1]["type"], "conversation");
        assert_eq!(frames(&mut a)[0]["type"], "welcome");
        frames(&mut b);

        hub.customer_frame(
            &conv_a,
            &json!({"type": "message", "id": "q1", "text": "你好"}),
        )
        .unwrap();
        let seen = frames(&mut agent);
        assert_eq!(seen[0]["type"], "message");
        assert_eq!(seen[0]["from"], "customer");
        assert_eq!(seen[0]["conversation"], conv_a.as_str());
        assert_eq!(frames(&mut a)[0]["text"], "你好");
        assert!(frames(&mut b).is_empty());

        let reply = json!({"type": "message", "id": "r1", "conversation": conv_a, "sender": "agent-1", "text": "您好"});
        hub.agent_frame(&reply).unwrap();
        let to_a = frames(&mut a);
        assert_eq!(
            (to_a[0]["type"].as_str(), to_a[0]["from"].as_str()),
            (Some("message"), Some("agent"))
        );
        assert_eq!(to_a[0]["id"], "r1");
        assert!(frames(&mut b).is_empty());
        assert_eq!(frames(&mut agent)[0]["type"], "sent");
    }

    #[test]
    fn a_reloaded_page_gets_its_conversation_back_until_it_ends() {
        let hub = hub();
        let (tx, mut rx) = mpsc::channel(16);
        let (_, conv) = hub.join_customer(None, tx);
        hub.customer_frame(&conv, &json!({"type": "message", "text": "在吗"}))
            .unwrap();
        let (tx, mut again) = mpsc::channel(16);
        let (_, same) = hub.join_customer(Some(&conv), tx);
        assert_eq!(same, conv);
        let welcome = frames(&mut again);
        assert_eq!(welcome[0]["messages"][0]["text"], "在吗");
        hub.customer_frame(&conv, &json!({"type": "end"})).unwrap();
        assert!(frames(&mut rx).iter().any(|f| f["type"] == "closed"));
        let (tx, _rx) = mpsc::channel(16);
        assert_ne!(hub.join_customer(Some(&conv), tx).1, conv);
        // An ended conversation takes no more messages.
        let late = json!({"type": "message", "conversation": conv, "text": "您好"});
        assert!(hub.agent_frame(&late).is_err());
    }

    #[test]
    fn bad_frames_are_refused() {
        let hub = hub();
        let (tx, _rx) = mpsc::channel(16);
        let (_, conv) = hub.join_customer(None, tx);
        for frame in [
            json!({"type": "message"}),
            json!({"type": "message", "text": "   "}),
            json!({"type": "message", "text": "长".repeat(MAX_TEXT_CHARS + 1)}),
            json!({"type": "typing"}),
        ] {
            assert!(hub.customer_frame(&conv, &frame).is_err(), "{frame}");
        }
        let unknown = json!({"type": "message", "conversation": "nope", "text": "您好"});
        assert!(hub.agent_frame(&unknown).is_err());
        let hostile = json!({"type": "message", "conversation": "<x>", "text": "您好"});
        assert!(hub.agent_frame(&hostile).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let hub = hub();
        let mut first = None;
        for _ in 0..MAX_CONVERSATIONS + 5 {
            let (tx, _rx) = mpsc::channel(1);
            let (peer, c) = hub.join_customer(None, tx);
            hub.leave(peer);
            first.get_or_insert(c);
        }
        let inner = hub.inner();
        assert_eq!(inner.conversations.len(), MAX_CONVERSATIONS);
        assert!(inner
            .conversations
            .iter()
            .all(|c| Some(&c.id) != first.as_ref()));
        assert!(inner.customers.is_empty());
    }
}
