//! A chat system for liyu to stand in front of: a WebSocket server (and a small HTTP server) on port 0
//! that records what reaches it and can push frames to its clients; and liyu's proxy started on port
//! 0 in front of it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use liyu::config::Config;
use liyu::proxy::{self, State};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A connection that reached the fake chat server.
pub struct UpConn {
    /// Frames it received, in order.
    pub rx: mpsc::UnboundedReceiver<Message>,
    /// Frames to send to the client.
    pub tx: mpsc::UnboundedSender<Message>,
    /// The upgrade request's headers, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The request path and query.
    pub path: String,
}

impl UpConn {
    /// The next frame received, waiting at most 5 s.
    pub async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("upstream received a frame in time")
            .expect("upstream connection open")
    }

    /// A header of the upgrade request.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The fake chat server.
pub struct Upstream {
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<UpConn>,
}

impl Upstream {
    /// Starts a chat server that accepts the `chat.v2` subprotocol when offered.
    pub async fn start() -> Upstream {
        Upstream::start_with(None).await
    }

    /// Starts a chat server that refuses every upgrade with `status` when given.
    pub async fn start_with(refuse: Option<u16>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns_tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conns_tx = conns_tx.clone();
                tokio::spawn(async move {
                    let seen = Arc::new(Mutex::new((Vec::new(), String::new())));
                    let seen2 = seen.clone();
                    // tungstenite's callback signature fixes the error type; its size is not ours.
                    #[allow(clippy::result_large_err)]
                    let callback = move |req: &Request, mut resp: Response| {
                        let mut s = seen2.lock().unwrap();
                        s.0 = req
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect();
                        s.1 = req
                            .uri()
                            .path_and_query()
                            .map_or("/".into(), |p| p.to_string());
                        if let Some(code) = refuse {
                            let mut e =
                                ErrorResponse::new(Some("refused by the chat server".into()));
                            *e.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                            return Err(e);
                        }
                        let offered = req
                            .headers()
                            .get("sec-websocket-protocol")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if offered.split(',').any(|p| p.trim() == "chat.v2") {
                            resp.headers_mut()
                                .insert("sec-websocket-protocol", "chat.v2".parse().unwrap());
                        }
                        Ok(resp)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                        return;
                    };
                    let (headers, path) = seen.lock().unwrap().clone();
                    let (mut w, mut r) = ws.split();
                    let (in_tx, rx) = mpsc::unbounded_channel();
                    let (tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
                    let _ = conns_tx.send(UpConn {
                        rx,
                        tx,
                        headers,
                        path,
                    });
                    tokio::spawn(async move {
                        while let Some(m) = out_rx.recv().await {
                            if w.send(m).await.is_err() {
                                break;
                            }
                        }
                    });
                    while let Some(Ok(m)) = r.next().await {
                        if in_tx.send(m).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Upstream { addr, conns }
    }

    /// The next connection that reached the server.
    pub async fn accept(&mut self) -> UpConn {
        tokio::time::timeout(Duration::from_secs(5), self.conns.recv())
            .await
            .expect("a connection reached the upstream in time")
            .unwrap()
    }
}

/// What reached the fake HTTP chat API: (method, path, headers, body).
pub type HttpSeen = (String, String, Vec<(String, String)>, Bytes);

/// A fake HTTP chat API that answers 201 with `{"ok":true}` and records each request. It also accepts
/// WebSocket upgrades (and holds the socket open), as a chat server's one host does.
pub async fn http_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<HttpSeen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        if req.headers().get("upgrade").is_some() {
                            return Ok(accept_socket(req));
                        }
                        let method = req.method().to_string();
                        let path = req
                            .uri()
                            .path_and_query()
                            .map_or("/".into(), |p| p.to_string());
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let _ = tx.send((method, path, headers, body));
                        let mut resp = hyper::Response::new(test_body(b"{\"ok\":true}"));
                        *resp.status_mut() = hyper::StatusCode::CREATED;
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, rx)
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn test_body(bytes: &'static [u8]) -> TestBody {
    Full::new(Bytes::from_static(bytes)).boxed()
}

/// Completes a WebSocket handshake and keeps the socket open, reading until it closes.
fn accept_socket(mut req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<TestBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            while let Some(Ok(_)) = ws.next().await {}
        }
    });
    let mut resp = hyper::Response::new(test_body(b""));
    *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("connection", "Upgrade".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("sec-websocket-accept", key.parse().unwrap());
    resp
}

/// liyu's proxy on port 0 (and, when started with [`Proxy::start_admin`], its admin API).
pub struct Proxy {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    /// The admin listener's address, when started.
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

/// The admin token the tests use.
pub const TOKEN: &str = "test-token-7f3a9c";

/// A fresh SQLite store URL in a temp dir.
pub fn temp_sqlite() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "liyu-test-store-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite:{}", dir.join("findings.db").display())
}

/// The `[[messages]]` block of the plain JSON chat the tests speak.
pub const JSON_CHAT: &str = r#"
[[messages]]
framing = "json"
match = { "/type" = "message" }
text = "/text"
conversation = "/conversation"
sender = "/sender"
message_id = "/id"

[[messages]]
framing = "json"
kind = "end"
match = { "/type" = "closed" }
conversation = "/conversation"
"#;

impl Proxy {
    /// Starts liyu in front of `upstream` (a `ws://` or `http://` URL); `proxy_extra` goes into
    /// `[proxy]`, `rest` after it (other sections, `[[messages]]`).
    pub async fn start(upstream: &str, proxy_extra: &str, rest: &str) -> Proxy {
        let text = format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nconnect_timeout = \"2s\"\n{proxy_extra}\n{rest}"
        );
        let config = Config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let state = State::new(config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(proxy::run(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Proxy {
            addr,
            state,
            admin: None,
            stop: Some(tx),
            handle,
        }
    }

    /// Starts liyu with a findings store at `store_url` and its admin API (token [`TOKEN`]) on
    /// port 0.
    pub async fn start_admin(upstream: &str, store_url: &str, rest: &str) -> Proxy {
        let admin_cfg =
            format!("[admin]\ntokens = [\"{TOKEN}\"]\n\n[store]\nurl = \"{store_url}\"\n{rest}");
        let mut proxy = Proxy::start(upstream, "", &admin_cfg).await;
        let store = liyu::store::StoreHandle::start(store_url)
            .await
            .expect("store opens");
        proxy.state.attach_store(store);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        proxy.admin = Some(listener.local_addr().unwrap());
        tokio::spawn(liyu::web::run(
            listener,
            proxy.state.clone(),
            std::future::pending(),
        ));
        proxy
    }

    /// Connects a WebSocket client through liyu.
    pub async fn connect(&self, path: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", self.addr))
            .await
            .expect("connect through liyu");
        Client { ws }
    }

    /// Starts shutdown and waits for the proxy to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.handle)
            .await
            .expect("liyu drained in time")
            .unwrap();
    }
}

/// A WebSocket client (an agent's console or a customer's page).
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send(Message::text(v.to_string())).await;
    }

    /// The next frame, waiting at most 5 s.
    pub async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(5), self.ws.next())
            .await
            .expect("client received a frame in time")
            .expect("client connection open")
            .expect("valid frame")
    }

    /// The next frame parsed as JSON.
    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON frame"),
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }

    /// Whether a frame arrives within `wait` (None if not).
    pub async fn maybe_next(&mut self, wait: Duration) -> Option<Message> {
        match tokio::time::timeout(wait, self.ws.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            _ => None,
        }
    }
}
