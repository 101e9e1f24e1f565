//! The admin listener: HTTP API, live events, metrics and the team leads' dashboard (doc/api.md).
//!
//! A listener of its own, never the proxied port. Every `/v1` call and every dashboard page needs a
//! bearer token (compared in constant time) or the session cookie the login page sets; `/healthz`,
//! `/metrics` and the login page are open. The dashboard's files are compiled into the binary.

mod api;
mod metrics;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::proxy::State;

/// What the admin handlers share.
#[derive(Clone)]
pub struct Web {
    /// The proxy's shared state (checker, store, live feed, metrics).
    pub state: Arc<State>,
    /// Sessions opened through the login page (random ids).
    sessions: Arc<Mutex<HashSet<String>>>,
    /// Whether the listener is served over TLS (the cookie is then `Secure`).
    secure: bool,
    /// Becomes true when the listener shuts down: live event streams end then, instead of holding
    /// the graceful shutdown open until its timeout.
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Web {
    /// Handlers over `state`.
    pub fn new(state: Arc<State>) -> Web {
        Web {
            state,
            sessions: Arc::new(Mutex::new(HashSet::new())),
            secure: false,
            // Never stopped unless `run` gives it a sender: a router driven by tests has no shutdown.
            stop: tokio::sync::watch::channel(false).1,
        }
    }

    /// Whether `token` is one of the configured admin tokens, compared in constant time (every
    /// configured token is compared, so the time does not say which one nearly matched).
    fn valid_token(&self, token: &str) -> bool {
        let mut ok = subtle::Choice::from(0u8);
        for t in &self.state.config.admin_tokens {
            ok |= t.as_bytes().ct_eq(token.as_bytes());
        }
        bool::from(ok) && !token.is_empty()
    }

    fn valid_session(&self, id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut ok = subtle::Choice::from(0u8);
        for s in sessions.iter() {
            ok |= s.as_bytes().ct_eq(id.as_bytes());
        }
        bool::from(ok)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return self.valid_token(token.trim());
        }
        session_cookie(headers).is_some_and(|id| self.valid_session(&id))
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == "liyu_session").then(|| v.to_string())
        })
}

/// The admin router. Factored out so tests can drive it without a socket.
pub fn app(web: Web) -> Router {
    let protected = Router::new()
        .route("/", get(page_index))
        .route("/assets/app.js", get(asset_js))
        .route("/assets/style.css", get(asset_css))
        .route("/logout", post(logout))
        .route("/v1/check", post(api::check))
        .route("/v1/findings", get(api::findings))
        .route("/v1/findings/{id}", get(api::finding))
        .route("/v1/findings/{id}/review", post(api::review))
        .route("/v1/stats", get(api::stats))
        .route("/v1/events", get(api::events))
        .route("/v1/lexicon", get(api::lexicon))
        .route("/v1/lexicon/reload", post(api::reload))
        .route("/v1/export.csv", get(api::export_csv))
        .route_layer(middleware::from_fn_with_state(web.clone(), require_auth));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics::render))
        .route("/login", get(page_login).post(login))
        .route("/liyu-console.js", get(asset_console))
        .route("/liyu-console.css", get(asset_console_css))
        .merge(protected)
        .with_state(web)
}

/// Serves the admin API for `state` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let app = app(Web {
        stop,
        ..Web::new(state)
    });
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await
    {
        tracing::error!(error = %e, "admin listener failed");
    }
}

async fn require_auth(AxState(web): AxState<Web>, req: Request, next: Next) -> Response {
    if web.authorized(req.headers()) {
        return next.run(req).await;
    }
    // A person opening the dashboard is sent to the login page; an API client gets 401.
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if req.uri().path() == "/" && wants_html {
        // A person opening the dashboard without a session is sent to the login page.
        return Redirect::to("/login").into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "a bearer token or a dashboard session is required"})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    AxState(web): AxState<Web>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !web.valid_token(form.token.trim()) {
        tracing::info!("dashboard login refused");
        return Redirect::to("/login?error=1").into_response();
    }
    let id = random_id();
    web.sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone());
    // The admin listener speaks plain HTTP; where it is served over TLS, a terminating proxy in
    // front of it says so with X-Forwarded-Proto. Believing the header can only add `Secure`, which
    // never weakens the cookie.
    let over_tls = web.secure
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let secure = if over_tls { "; Secure" } else { "" };
    let cookie = format!("liyu_session={id}; Path=/; HttpOnly; SameSite=Strict{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout(AxState(web): AxState<Web>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        web.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
    (
        [(
            header::SET_COOKIE,
            "liyu_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0".to_string(),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

/// 128 random bits from the OS, hex: session ids, and the token `liyu demo` makes up.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    // Mixed with the clock and a counter so ids stay unique even without /dev/urandom.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (i, b) in t.to_le_bytes().iter().enumerate() {
        bytes[i % 16] ^= b;
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
/// The agent console component (README "Agent console"): public, like any script a page loads.
pub const CONSOLE_JS: &str = include_str!("assets/liyu-console.js");
/// Its styles.
pub const CONSOLE_CSS: &str = include_str!("assets/liyu-console.css");

/// The login page is self-contained (assets need a session): its one inline style and one inline
/// script are allowed by hash, nothing else. Editing either changes its hash.
const LOGIN_CSP: &str = "default-src 'none'; style-src 'sha256-W2fF+oUz14c0ciwbzjsdQWGPnBxzBMycrPPC0xgiwu8='; script-src 'sha256-/C1/g5Ju6ArKjF8gR65Jtjx5HnD49cdnJ6s96r/W6dU='; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Pages may load only their own scripts and styles; message text can never become markup.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

fn html(body: &'static str, csp: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn page_index() -> Response {
    html(INDEX_HTML, CSP)
}

async fn page_login() -> Response {
    html(LOGIN_HTML, LOGIN_CSP)
}

async fn asset_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn asset_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE_CSS,
    )
        .into_response()
}

/// The console files are loaded by other sites' pages (the integrators' consoles): any origin may
/// use them, and a console revalidates them so a new liyu's script reaches it.
fn console_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn asset_console() -> Response {
    console_asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

async fn asset_console_css() -> Response {
    console_asset("text/css; charset=utf-8", CONSOLE_CSS)
}
