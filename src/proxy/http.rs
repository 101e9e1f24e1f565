//! Plain HTTP: each connection is served by hyper; upgrades go to [`ws`](super::ws), everything else
//! is reverse-proxied to the upstream. A request matching a configured route (Chatwoot's
//! `POST …/conversations/{id}/messages`, Rocket.Chat's `POST /api/v1/chat.sendMessage`) is checked
//! first: blocked with 422 and the findings, or forwarded with its findings sent to the agent's open
//! WebSocket and to the live feed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{now_ms, peer_ip, ws, Action, Record, Slot, State};
use crate::check::Severity;
use crate::config::{id_at, Mode, Route, Source};

/// The body type of every response liyu sends.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// The HTTP client for the upstream (plain or TLS with the system's roots).
pub type Client =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Builds the upstream HTTP client.
pub fn client() -> Client {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .unwrap_or_else(|_| {
            // No system roots (a minimal container): TLS upstreams will fail to verify, plain HTTP
            // still works.
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        })
        .https_or_http()
        .enable_http1()
        .build();
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https)
}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Serves one TCP connection until it closes or shutdown starts.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let service_state = state.clone();
    let service_stop = stop.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let state = service_state.clone();
        let stop = service_stop.clone();
        let slot = slot.clone();
        async move {
            let resp = if ws::is_upgrade(&req) {
                ws::upgrade(req, peer, state, stop, slot).await
            } else {
                forward(req, peer, state).await
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = super::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Headers that belong to one hop and are not forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    for h in HOP_BY_HOP.iter().map(|s| s.to_string()).chain(named) {
        headers.remove(h.as_str());
    }
}

/// Reverse-proxies one request, checking it first when it matches a route.
async fn forward(req: Request<Incoming>, peer: SocketAddr, state: Arc<State>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let route = state.config.routes.iter().find_map(|r| {
        r.matches(req.method().as_str(), &path)
            .map(|caps| (r.clone(), caps))
    });
    let (parts, body) = req.into_parts();
    let body: Body = match route {
        None => body.boxed(),
        Some((route, captures)) => {
            let limit = state.config.max_message_bytes;
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &json!({"error": format!("liyu: the body is larger than max_message_bytes ({limit})")}),
                    )
                }
            };
            match check_route(&state, &route, &captures, &parts.headers, bytes).await {
                Ok(body) => full(body),
                Err(resp) => return resp,
            }
        }
    };
    send_upstream(parts, body, peer, &state).await
}

/// Checks a route's body. `Ok` is the body to forward (the override flag stripped), `Err` the answer
/// to give instead (blocked, or not checkable).
async fn check_route(
    state: &Arc<State>,
    route: &Route,
    captures: &[(String, String)],
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<Bytes, Response<Body>> {
    let mut value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            if state.config.mode == Mode::Block {
                // A message liyu cannot read is a message it cannot vouch for.
                return Err(json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": format!("liyu: the body of a checked route is not JSON: {e}")}),
                ));
            }
            tracing::warn!(error = %e, "checked route with a body that is not JSON; forwarded unchecked");
            return Ok(bytes);
        }
    };
    let Some(text) = value
        .pointer(&route.text)
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(bytes);
    };
    let field = |source: &Option<Source>, value: &Value| -> Option<String> {
        match source.as_ref()? {
            Source::Body(p) => id_at(value, p),
            // Routes are validated to use body, path or header sources only.
            Source::Query(_) => None,
            Source::Path(name) => captures
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
            Source::Header(h) => headers
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    };
    let conversation = field(&route.conversation, &value);
    let agent = field(&route.sender, &value);
    let message_id = field(&route.message_id, &value).map(Value::String);
    let override_requested = value
        .as_object_mut()
        .and_then(|o| o.remove("liyu_override"))
        .is_some_and(|v| v == Value::Bool(true));

    let now = tokio::time::Instant::now().into_std();
    let mut findings = if state.config.checking {
        ws::check(state, text.clone()).await
    } else {
        Vec::new()
    };
    findings.extend(state.agent_said(conversation.as_deref(), agent.as_deref(), &text, now));
    let blocking =
        state.config.mode == Mode::Block && findings.iter().any(|f| f.severity == Severity::Block);
    let action = match (blocking, override_requested) {
        (true, false) => Action::Blocked,
        (true, true) => Action::Overridden,
        _ => Action::Delivered,
    };
    let forwarded = if override_requested {
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    } else {
        bytes
    };
    if findings.is_empty() {
        state.agent_context(conversation.as_deref(), &text);
        return Ok(forwarded);
    }
    let record = Record {
        at_ms: now_ms(),
        conversation,
        agent,
        message_id,
        text,
        action,
        findings,
    };
    let frame = record.frame();
    if let Some(agent) = &record.agent {
        state.notify_agent(agent, &record);
    }
    let (conv, said) = (record.conversation.clone(), record.text.clone());
    state.publish(record);
    state.agent_context(conv.as_deref(), &said);
    if action == Action::Blocked {
        state.metrics.blocked.fetch_add(1, Ordering::Relaxed);
        return Err(json_response(StatusCode::UNPROCESSABLE_ENTITY, &frame));
    }
    Ok(forwarded)
}

async fn send_upstream(
    mut parts: hyper::http::request::Parts,
    body: Body,
    peer: SocketAddr,
    state: &Arc<State>,
) -> Response<Body> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = state.config.upstream.http_url(path);
    parts.uri = match url.parse() {
        Ok(u) => u,
        Err(_) => {
            return json_response(
                StatusCode::BAD_GATEWAY,
                &json!({"error": "liyu: bad upstream address"}),
            )
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    let forwarded = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, {}", peer_ip(peer)),
        None => peer_ip(peer),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        parts.headers.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state.config.upstream.authority) {
        parts.headers.insert(header::HOST, v);
    }
    // A rewritten body has a new length.
    parts.headers.remove(header::CONTENT_LENGTH);
    let req = Request::from_parts(parts, body);
    let call = state.http_client.request(req);
    match tokio::time::timeout(
        state
            .config
            .connect_timeout
            .max(std::time::Duration::from_secs(30)),
        call,
    )
    .await
    {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Ok(Err(e)) => {
            state
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "upstream HTTP request failed");
            json_response(
                StatusCode::BAD_GATEWAY,
                &json!({"error": "liyu: upstream unreachable"}),
            )
        }
        Err(_) => {
            state
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            json_response(
                StatusCode::GATEWAY_TIMEOUT,
                &json!({"error": "liyu: upstream timed out"}),
            )
        }
    }
}
