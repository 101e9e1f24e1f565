//! The team leads' dashboard in a real browser: Debian's headless Chromium driven through
//! chromedriver (WebDriver, the `fantoccini` crate), against liyu's proxy and admin server on port 0
//! in front of the fake chat server.
//!
//! The scenario of the issue: without the token every page and API answers 401; log in with the
//! token; a finding the proxy just produced appears live; marking it a false positive changes the
//! rule's false-positive share; a message containing `<script>` and `<img onerror>` shows as text and
//! runs nothing. It also saves screenshots in target/screenshots/ (with LIYU_UPDATE_SCREENSHOTS=1, in
//! doc/screenshots/, which the README shows).
//!
//! Chromium and chromedriver come from Debian (`chromium`, `chromium-driver`); tests/run.sh installs
//! them. Without them this test fails (it never skips).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{temp_sqlite, Client as WsClient, Proxy, UpConn, Upstream, JSON_CHAT, TOKEN};
use crate::util::repo;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the page may take to show what the server did.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------------------------------------
// chromedriver and the browser

/// A temporary folder, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "liyu-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// chromedriver on a free port, killed on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    /// Browser tests take turns: on two cores, two Chromiums at once starve each other's pages
    /// past the tests' patience.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_browser() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the dashboard's browser test needs Debian's `{package}`. \
             Run tests/run.sh (it installs chromium and chromium-driver), or \
             `apt-get install chromium chromium-driver`."
        );
    }
}

pub(crate) async fn start_driver() -> Driver {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    require_browser();
    let turn = TURN.lock().await;
    for _ in 0..3 {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}; run tests/run.sh"));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Driver {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                    _turn: turn,
                };
            }
            if child.try_wait().unwrap().is_some() {
                break; // lost the port to someone else: try another
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("chromedriver did not start listening");
}

/// A fresh headless Chromium session (its own profile folder).
pub(crate) async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1400,1000",
                "--lang=zh-CN",
            ],
        }),
    );
    // chromedriver speaks plain HTTP on loopback: no TLS connector needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM} through chromedriver: {e}"))
}

/// Runs `script` in the page and returns its value.
pub(crate) async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Polls `script` until it returns something other than null/false, or fails with `what`.
pub(crate) async fn until(c: &Client, what: &str, script: &str, args: Vec<Value>) -> Value {
    let started = Instant::now();
    loop {
        let v = js(c, script, args.clone()).await;
        if !v.is_null() && v != Value::Bool(false) {
            return v;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting for {what} (last value {v})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn path_of(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

pub(crate) async fn wait_for_path(c: &Client, want: &str) {
    let started = Instant::now();
    loop {
        let path = path_of(c).await;
        if path == want {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "expected to be at {want}, still at {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn screenshot(c: &Client, name: &str) {
    // Without the passing notice of the last click.
    let hide = "const t = document.getElementById('toast'); if (t) t.hidden = true;";
    js(c, hide, vec![]).await;
    let png = c.screenshot().await.expect("screenshot");
    // Into target/ on every run; into doc/screenshots/ (what the README shows) only when asked, so a
    // test run leaves the work tree clean.
    let dir = if std::env::var_os("LIYU_UPDATE_SCREENSHOTS").is_some() {
        repo("doc/screenshots")
    } else {
        repo("target/screenshots")
    };
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, png).unwrap();
}

// ------------------------------------------------------------------------------------------------
// liyu's admin server, asked directly

/// One HTTP/1.1 request on a fresh connection: (status, headers lower-cased, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no complete answer in 10 s"))
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP answer: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, rest.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every page, asset and API call without valid credentials: 401 (a page may redirect to /login).
async fn everything_is_refused_without_the_token(admin: SocketAddr) {
    let pages = ["/", "/assets/app.js", "/assets/style.css"];
    let apis: [(&str, &str, &str); 10] = [
        ("GET", "/v1/findings", ""),
        ("GET", "/v1/findings/1", ""),
        (
            "POST",
            "/v1/findings/1/review",
            r#"{"verdict":"false_positive"}"#,
        ),
        ("GET", "/v1/stats?group=rule", ""),
        ("GET", "/v1/events", ""),
        ("GET", "/v1/export.csv", ""),
        ("POST", "/v1/check", r#"{"text":"有牌子,自己看"}"#),
        ("GET", "/v1/lexicon", ""),
        ("POST", "/v1/lexicon/reload", ""),
        ("GET", "/v1/findings?limit=1", ""),
    ];
    let wrong_bearer = "Bearer not-the-token";
    let forged_cookie = "liyu_session=forged";
    let credentials: [Vec<(&str, &str)>; 3] = [
        vec![],
        vec![("Authorization", wrong_bearer)],
        vec![("Cookie", forged_cookie)],
    ];
    for creds in &credentials {
        for page in pages {
            let (status, headers, _) = http(admin, "GET", page, creds, "").await;
            let to_login = (300..400).contains(&status)
                && header(&headers, "location").is_some_and(|l| l.starts_with("/login"));
            assert!(
                status == 401 || to_login,
                "GET {page} with {creds:?}: {status} {headers:?}, expected 401 or a redirect to /login"
            );
        }
        for (method, path, body) in apis {
            let mut h = creds.clone();
            h.push(("Content-Type", "application/json"));
            let (status, _, answer) = http(admin, method, path, &h, body).await;
            assert_eq!(
                status, 401,
                "{method} {path} with {creds:?} answered {status}: {answer}"
            );
            let v: Value = serde_json::from_str(&answer)
                .unwrap_or_else(|_| panic!("{method} {path}: 401 body is not JSON: {answer:?}"));
            assert!(v["error"].is_string(), "{method} {path}: {answer}");
        }
    }
    // The login page itself is open; the token opens the API (so the 401s above are about auth).
    let (status, _, page) = http(admin, "GET", "/login", &[], "").await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"token\""), "login form: {page}");
    // Logging in with the token gives a session cookie (HttpOnly, SameSite=Strict) that opens it.
    let form = format!("token={}", form_encode(TOKEN));
    let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, headers, _) = http(admin, "POST", "/login", &form_type, &form).await;
    assert!((300..400).contains(&status), "POST /login: {status}");
    assert_eq!(header(&headers, "location"), Some("/"));
    let cookie = header(&headers, "set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("liyu_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap();
    let (status, _, answer) = http(admin, "GET", "/v1/findings", &[("Cookie", session)], "").await;
    assert_eq!(status, 200, "{answer}");
    // A wrong token is sent back to the login page with the error shown.
    let (status, headers, _) = http(admin, "POST", "/login", &form_type, "token=wrong").await;
    assert!((300..400).contains(&status), "POST /login: {status}");
    assert_eq!(header(&headers, "location"), Some("/login?error=1"));
    assert!(header(&headers, "set-cookie").is_none());
}

/// application/x-www-form-urlencoded.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// the chat

fn chat(id: u64, conversation: &str, agent: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "conversation": conversation, "sender": agent, "text": text})
}

/// An agent console and the chat server's side of its connection.
struct Console {
    agent: WsClient,
    conn: UpConn,
}

impl Console {
    async fn open(liyu: &Proxy, up: &mut Upstream) -> Console {
        let agent = liyu.connect("/ws").await;
        let conn = up.accept().await;
        Console { agent, conn }
    }

    /// A customer writes (from the chat server's side); returns once the console received it, so
    /// liyu has seen it before the agent answers.
    async fn customer(&mut self, conversation: &str, text: &str) {
        let m = chat(0, conversation, "customer", text);
        self.conn
            .tx
            .send(tokio_tungstenite::tungstenite::Message::text(m.to_string()))
            .unwrap();
        // Skip liyu's findings frames for the agent's earlier messages.
        while self.agent.next_json().await != m {}
    }

    /// The agent writes; the chat server receives it (annotate mode delivers everything).
    async fn say(&mut self, id: u64, conversation: &str, agent: &str, text: &str) {
        self.agent
            .send_json(chat(id, conversation, agent, text))
            .await;
        self.conn.next().await;
    }
}

// ------------------------------------------------------------------------------------------------
// the scenario

const SIGN: &str = "您好,有牌子,自己看";
const SPAN: &str = "有牌子,自己看";
const HOSTILE: &str =
    r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">有牌子,自己看"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_login_live_feed_false_positive_and_untrusted_text() {
    let started = Instant::now();
    let mut up = Upstream::start().await;
    let liyu = Proxy::start_admin(&format!("ws://{}", up.addr), &temp_sqlite(), JSON_CHAT).await;
    let admin = liyu.admin.expect("the admin listener");
    let base = format!("http://{admin}");

    everything_is_refused_without_the_token(admin).await;
    seed_history(&liyu);

    let driver = start_driver().await;
    let profile = TempDir::new("chromium-profile");
    let c = browser(&driver, &profile.0).await;
    let outcome = std::panic::AssertUnwindSafe(scenario(&c, &base, &liyu, &mut up))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        // Keep what the page showed when it failed, for whoever reads the failure.
        if let Ok(png) = c.screenshot().await {
            let path = std::env::temp_dir().join("liyu-browser-failure.png");
            let _ = std::fs::write(&path, png);
            eprintln!("the page at the failure: {}", path.display());
        }
    }
    let _ = c.close().await;
    drop(driver);
    liyu.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    eprintln!("browser scenario took {:.1?}", started.elapsed());
}

async fn scenario(c: &Client, base: &str, liyu: &Proxy, up: &mut Upstream) {
    // Without the session cookie the dashboard is not shown.
    dashboard_is_refused(c, base).await;

    // The login page; a wrong token is refused with an error on the page.
    c.goto(&format!("{base}/login")).await.unwrap();
    // login.html is self-contained (the assets need a session): its inline style and script must be
    // allowed by the page's Content-Security-Policy (by hash).
    let styled = "return getComputedStyle(document.getElementById('login-submit')).color";
    assert_eq!(
        js(c, styled, vec![]).await,
        json!("rgb(255, 255, 255)"),
        "login.html's inline <style> did not apply: does the /login Content-Security-Policy allow \
         its hash?"
    );
    let error_shown = "const e = document.getElementById('login-error'); \
                       return e !== null && e.offsetParent !== null";
    assert_eq!(js(c, error_shown, vec![]).await, json!(false));
    screenshot(c, "login.png").await;
    login(c, "not-the-token").await;
    wait_for_path(c, "/login?error=1").await;
    assert_eq!(
        js(c, error_shown, vec![]).await,
        json!(true),
        "login.html's inline <script> did not show the error: does the /login \
         Content-Security-Policy allow its hash?"
    );

    // The right token: the dashboard, its live feed connected.
    login(c, TOKEN).await;
    wait_for_path(c, "/").await;
    until(
        c,
        "the live feed to connect",
        "return document.getElementById('live-status').dataset.state === 'open'",
        vec![],
    )
    .await;

    // An agent breaks a rule through the proxy: the finding appears live, highlighted.
    let mut console = Console::open(liyu, up).await;
    console
        .customer("c1", "你好,请问社保卡补办需要带什么材料?")
        .await;
    console.say(1, "c1", "agent-7", SIGN).await;
    let item = until(
        c,
        "the finding in the live feed",
        FEED_ITEM,
        vec![json!(SIGN), json!("deflection.")],
    )
    .await;
    assert_eq!(item["text"], SIGN, "{item}");
    assert_eq!(item["mark"], SPAN, "{item}");
    assert_eq!(item["agent"], "agent-7", "{item}");
    assert_eq!(item["category"], "推诿塞责", "{item}");
    assert_eq!(item["action"], "已送达", "{item}");
    let rule = item["rule"].as_str().unwrap().to_string();

    // The per-rule table lists the rule, not reviewed yet.
    let share = until(
        c,
        "the rule in the per-rule table",
        &format!("return {SHARE_CELL}"),
        vec![json!(rule)],
    )
    .await;
    assert_eq!(share, json!("—"), "false-positive share before any review");

    // False positive: the feed item says so and the rule's share goes to 100%.
    c.execute(
        "const [li] = arguments; li.querySelector('[data-testid=fp-button]').click();",
        vec![item["element"].clone()],
    )
    .await
    .unwrap();
    until(
        c,
        "the feed item to show the verdict",
        "return arguments[0].querySelector('[data-testid=verdict]').textContent === '误报'",
        vec![item["element"].clone()],
    )
    .await;
    until(
        c,
        "the rule's false-positive share to become 100%",
        &format!("return ({SHARE_CELL}) === '100%'"),
        vec![json!(rule)],
    )
    .await;
    // The findings table shows the same finding reviewed.
    until(
        c,
        "the findings table row to show the verdict",
        "const row = document.querySelector('#findings tbody tr[data-finding-id]'); \
         return row !== null && row.querySelector('[data-testid=verdict]').textContent === '误报'",
        vec![],
    )
    .await;

    // Hostile text is shown as text and runs nothing.
    console.say(2, "c1", "agent-7", HOSTILE).await;
    let item = until(
        c,
        "the hostile message in the live feed",
        FEED_ITEM,
        vec![json!(HOSTILE), json!("deflection.")],
    )
    .await;
    assert_eq!(item["text"], HOSTILE, "{item}");
    assert_eq!(item["mark"], SPAN, "{item}");
    until(
        c,
        "the hostile message in the findings table",
        "return [...document.querySelectorAll('#findings [data-testid=message-text]')]\
         .some(m => m.textContent === arguments[0])",
        vec![json!(HOSTILE)],
    )
    .await;
    // Its conversation view: the earlier messages, then the flagged one, all as text.
    c.execute(
        "arguments[0].querySelector('[data-testid=open-conversation]').click()",
        vec![item["element"].clone()],
    )
    .await
    .unwrap();
    let view = until(c, "the conversation view", CONVERSATION, vec![]).await;
    screenshot(c, "conversation.png").await;
    assert_eq!(view["flagged"], HOSTILE, "{view}");
    assert_eq!(view["mark"], SPAN, "{view}");
    let context = view["context"].as_array().unwrap();
    assert!(
        context.iter().any(|m| m == &json!(["agent", SIGN])),
        "context has the earlier message: {view}"
    );
    assert!(
        view["norm"].as_str().is_some_and(|n| !n.is_empty()),
        "{view}"
    );
    assert!(view["suggestions"].as_u64().unwrap() > 0, "{view}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hostile = js(
        c,
        "return {pwned: typeof window.__pwned, \
                 scripts: document.querySelectorAll('body script').length, \
                 images: document.querySelectorAll('img').length}",
        vec![],
    )
    .await;
    assert_eq!(
        hostile,
        json!({"pwned": "undefined", "scripts": 0, "images": 0}),
        "markup in a message must stay text"
    );
    c.find(Locator::Id("conv-close"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // A few more conversations, so the screenshot shows a working day.
    for (id, (conv, agent, customer, reply)) in (10..).zip(SAMPLE_DAY) {
        console.customer(conv, customer).await;
        console.say(id, conv, agent, reply).await;
    }
    until(
        c,
        "the sample day in the findings table",
        "return document.querySelectorAll('#findings tbody tr[data-finding-id]').length >= 8",
        vec![],
    )
    .await;
    until(
        c,
        "the per-agent table",
        "return document.querySelectorAll('#agents-table tr[data-agent]').length >= 5",
        vec![],
    )
    .await;
    // A lead confirms two of them (from the findings table).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    js(
        c,
        "const rows = document.querySelectorAll('#findings tbody tr[data-finding-id]'); \
         for (const i of [1, 2]) rows[i].querySelector('[data-testid=confirm-button]').click();",
        vec![],
    )
    .await;
    until(
        c,
        "two confirmed findings",
        "return document.querySelectorAll('#findings tbody tr[data-verdict=confirmed]').length === 2",
        vec![],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    js(c, "window.scrollTo(0, 0)", vec![]).await;
    screenshot(c, "dashboard.png").await;

    // The export link carries the filters.
    c.execute(
        "const f = document.getElementById('filters'); f.elements.agent.value = 'agent-7'; \
         f.requestSubmit();",
        vec![],
    )
    .await
    .unwrap();
    until(
        c,
        "the export link to carry the filter",
        "return document.getElementById('export-csv').getAttribute('href').includes('agent=agent-7')",
        vec![],
    )
    .await;

    let export = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             const href = document.getElementById('export-csv').getAttribute('href'); \
             fetch(href).then(r => r.text().then(t => done([r.status, t])), () => done(null));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(export[0], json!(200), "{export}");
    let csv = export[1].as_str().unwrap();
    assert!(
        csv.contains("agent-7") && !csv.contains("agent-12"),
        "{csv}"
    );

    // Logging out ends the session: the dashboard sends the browser back to the login page and the
    // API answers the browser 401 (asked from an API page of the same origin: the login page's
    // policy allows it no requests).
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(c, "/login").await;
    dashboard_is_refused(c, base).await;
    c.goto(&format!("{base}/v1/lexicon")).await.unwrap();
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/v1/findings').then(r => done(r.status), e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(401), "the API after logging out");
}

/// Opening the dashboard without a session ends at the login page or a 401 page, never the dashboard.
async fn dashboard_is_refused(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    // Give a refresh to /login, if the answer asks for one, the time to happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = path_of(c).await;
    if path != "/login" {
        let feed = js(c, "return document.getElementById('feed') !== null", vec![]).await;
        assert_eq!(
            feed,
            json!(false),
            "the dashboard showed at {path} without a session"
        );
    }
}

async fn login(c: &Client, token: &str) {
    let input = c.find(Locator::Id("token")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
    c.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The newest live-feed item whose message text is `arguments[0]` and whose rule starts with
/// `arguments[1]`, described; null while there is none.
const FEED_ITEM: &str = r#"
const [text, rulePrefix] = arguments;
for (const li of document.querySelectorAll('#feed [data-testid=feed-item]')) {
  const msg = li.querySelector('[data-testid=message-text]');
  if (!msg || msg.textContent !== text || !li.dataset.rule.startsWith(rulePrefix)) continue;
  const mark = msg.querySelectorAll('mark');
  return {
    element: li,
    text: msg.textContent,
    mark: mark.length === 1 ? mark[0].textContent : null,
    rule: li.dataset.rule,
    agent: li.querySelector('[data-testid=agent]').textContent,
    category: li.querySelector('[data-testid=category]').textContent,
    action: li.querySelector('[data-testid=action]').textContent,
  };
}
return null;
"#;

/// The false-positive share shown for rule `arguments[0]` in the per-rule table, null while absent
/// (an expression).
const SHARE_CELL: &str = r#"(() => {
  for (const tr of document.querySelectorAll('#rules-table tr[data-rule]')) {
    if (tr.dataset.rule === arguments[0]) return tr.querySelector('[data-testid=fp-share]').textContent;
  }
  return null;
})()"#;

/// The open conversation view, described; null while closed.
const CONVERSATION: &str = r#"
const d = document.getElementById('conversation');
if (!d.open) return null;
const flagged = d.querySelector('[data-testid=flagged-message] [data-testid=message-text]');
if (!flagged) return null;
const mark = flagged.querySelectorAll('mark');
return {
  flagged: flagged.textContent,
  mark: mark.length === 1 ? mark[0].textContent : null,
  context: [...d.querySelectorAll('[data-testid=context-message]')]
    .map(m => [m.dataset.role, m.querySelector('.txt').textContent]),
  norm: d.querySelector('[data-testid=norm]').textContent,
  suggestions: d.querySelectorAll('[data-testid=suggestions] li').length,
};
"#;

/// Agents of the history and of the live part.
const AGENTS: [&str; 5] = ["agent-7", "agent-12", "王晓梅", "李建国", "agent-3"];

/// What agents wrote earlier in the day (each breaks a rule).
const HISTORY: [&str; 8] = [
    "下班了,明天再来",
    "您好,快点说,后面还有人排队",
    "不是跟你说过了吗?怎么还问",
    "这个我不明白,你去问前台吧",
    "放心,百分之百能批下来",
    "你有病吧",
    "没看我正忙着吗",
    "您好,有牌子,自己看",
];

/// The last day in the store, as the proxy would have written it: messages checked every hour, reply
/// times, and findings with their context. The chart, the tables and the screenshot show it around
/// the live part. Nothing of it is reviewed, so no rule has a false-positive share yet.
fn seed_history(liyu: &Proxy) {
    use liyu::proxy::Action;
    use liyu::store::{ContextMessage, StoreEvent};
    const HOUR: u64 = 3_600_000;
    let store = liyu.state.store().expect("the store is attached");
    let checker = liyu.state.checker();
    let now = liyu::proxy::now_ms();
    for hour in 1..24u64 {
        let start = now - hour * HOUR;
        let agent = |i: u64| AGENTS[((i + hour) % AGENTS.len() as u64) as usize].to_string();
        for i in 0..(16 + (hour * 7 % 11) * 4) {
            let at_ms = start + i * 40_000;
            store.submit(StoreEvent::Checked {
                at_ms,
                agent: agent(i),
            });
            if i % 3 == 0 {
                let wait_ms = 4_000 + (i * hour * 7_919) % 70_000;
                store.submit(StoreEvent::Reply {
                    at_ms,
                    agent: agent(i),
                    wait_ms,
                });
            }
        }
        for k in 0..(hour * 5 % 7 + 1) {
            let text = HISTORY[((hour + k * 3) % HISTORY.len() as u64) as usize];
            let findings = checker.check(text);
            assert!(!findings.is_empty(), "history message {text} breaks a rule");
            let action = if findings.iter().any(|f| f.severity == liyu::Severity::Block) {
                Action::Blocked
            } else {
                Action::Delivered
            };
            let at_ms = start + (k + 1) * 7 * 60_000;
            store.submit(StoreEvent::Findings {
                at_ms,
                conversation: Some(format!("h{hour}-{k}")),
                agent: Some(agent(k)),
                message_id: Some(format!("m{hour}-{k}")),
                text: text.to_string(),
                action,
                findings,
                context: vec![ContextMessage {
                    at_ms: at_ms - 45_000,
                    role: "customer".into(),
                    text: "请问这个业务怎么办理?".into(),
                }],
            });
        }
    }
}

/// (conversation, agent, what the customer asks, what the agent answers).
const SAMPLE_DAY: [(&str, &str, &str, &str); 8] = [
    (
        "c2",
        "agent-12",
        "我的营业执照变更办好了吗?",
        "下班了,明天再来",
    ),
    (
        "c3",
        "王晓梅",
        "请问公积金提取要多久?",
        "您好,放心,百分之百能批下来",
    ),
    (
        "c4",
        "agent-7",
        "我上午来过一次了",
        "不是跟你说过了吗?怎么还问",
    ),
    (
        "c5",
        "李建国",
        "医保报销找哪个窗口?",
        "您好,这个我不明白,你去问前台吧",
    ),
    ("c6", "agent-12", "你好,在吗?", "您好,请问有什么可以帮您?"),
    (
        "c7",
        "王晓梅",
        "能帮我联系一下经办人吗?",
        "您好,他的手机号是13812345678",
    ),
    ("c8", "李建国", "怎么还没好?", "没看我正忙着吗"),
    (
        "c9",
        "agent-7",
        "材料都带齐了",
        "您好,请您稍等,马上为您办理",
    ),
];
