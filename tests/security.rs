//! Who may see what: every admin route refuses a caller without a valid token (the router's own
//! source is read, so a route added later is covered or the test fails), nothing secret or personal
//! reaches the log, and the WebSocket Origin allow-list does what the config says.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{temp_sqlite, Proxy, Upstream, JSON_CHAT, TOKEN};

/// Routes that are open by design: health, metrics (counts only), the login page and the console
/// script and its styles (public, like any script an integrator's page includes). Any other route
/// of the admin router must refuse without a token.
const OPEN: &[&str] = &[
    "/healthz",
    "/metrics",
    "/login",
    "/liyu-console.js",
    "/liyu-console.css",
];

/// `(method, path)` of every `.route(…)` in `src/web/mod.rs`, and whether it is behind the auth
/// layer (declared in the `protected` router).
fn routes_in_the_router() -> Vec<(String, String, bool)> {
    let source = std::fs::read_to_string(crate::util::repo("src/web/mod.rs")).unwrap();
    let app = source
        .split("pub fn app(")
        .nth(1)
        .expect("src/web/mod.rs has fn app");
    let app = &app[..app.find("\n}\n").expect("end of fn app")];
    let protected_end = app
        .find(".route_layer(")
        .expect("the protected router has an auth layer");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = app[at..].find(".route(\"") {
        let start = at + i + ".route(\"".len();
        let end = start + app[start..].find('"').unwrap();
        let path = app[start..end].to_string();
        let call_end = start + app[start..].find('\n').unwrap_or(app.len() - start);
        let handlers = &app[end..call_end];
        for method in ["get", "post", "put", "patch", "delete"] {
            if handlers.contains(&format!("{method}(")) {
                out.push((method.to_uppercase(), path.clone(), start < protected_end));
            }
        }
        at = end;
    }
    out
}

/// Sends one request and returns its status, without waiting for the body (an event stream never
/// ends).
async fn status_of(addr: SocketAddr, method: &str, path: &str, header: Option<&str>) -> u16 {
    let header = header.map_or(String::new(), |h| format!("{h}\r\n"));
    let body = "{\"text\":\"x\",\"verdict\":\"confirmed\"}";
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{header}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut line = Vec::new();
    while line.len() < 12 {
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "{method} {path}: connection closed without an answer"
        );
        line.extend_from_slice(&b[..n]);
    }
    std::str::from_utf8(&line[9..12]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_route_of_the_admin_router_refuses_without_a_valid_token() {
    let routes = routes_in_the_router();
    assert!(
        routes.len() >= 15,
        "only {} routes found: {routes:?}",
        routes.len()
    );
    for (method, path, protected) in &routes {
        assert!(
            *protected || OPEN.contains(&path.as_str()),
            "{method} {path} is outside the auth layer and not one of the open routes {OPEN:?}"
        );
    }
    let up = Upstream::start().await;
    let proxy = Proxy::start_admin(&format!("ws://{}", up.addr), &temp_sqlite(), JSON_CHAT).await;
    let admin = proxy.admin.unwrap();
    let near_miss = format!("Authorization: Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
    let prefix = format!("Authorization: Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Authorization: Bearer {TOKEN}0");
    let wrong_scheme = format!("Authorization: Basic {TOKEN}");
    let refused = [
        None,
        Some("Authorization: Bearer "),
        Some("Authorization: Bearer wrong"),
        Some(near_miss.as_str()),
        Some(prefix.as_str()),
        Some(longer.as_str()),
        Some(wrong_scheme.as_str()),
        Some("Cookie: liyu_session="),
        Some("Cookie: liyu_session=forged"),
        Some("X-Api-Token: test-token-7f3a9c"),
    ];
    let good = format!("Authorization: Bearer {TOKEN}");
    let mut tried = 0;
    for (method, path, protected) in &routes {
        let path = path.replace("{id}", "1");
        if !protected {
            continue;
        }
        for header in &refused {
            let status = status_of(admin, method, &path, *header).await;
            assert_eq!(status, 401, "{method} {path} with {header:?}");
            // The token in the query string is not a token either.
            let status = status_of(admin, method, &format!("{path}?token={TOKEN}"), *header).await;
            assert_eq!(status, 401, "{method} {path}?token=… with {header:?}");
            tried += 2;
        }
        // The route exists and the right token opens it: the refusals above are the auth layer's.
        let status = status_of(admin, method, &path, Some(&good)).await;
        assert_ne!(status, 401, "{method} {path} refuses the right token");
        assert_ne!(status, 405, "{method} {path} is not routed");
    }
    for path in OPEN {
        assert_ne!(status_of(admin, "GET", path, None).await, 401, "{path}");
    }
    eprintln!("admin routes: {tried} unauthorised requests, all refused");
    proxy.shutdown().await;
}

/// Logs in through the login form; the session id from its cookie.
async fn login(admin: SocketAddr, token: &str) -> Option<String> {
    let form = format!("token={token}");
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.lines()
        .find_map(|l| l.split_once("liyu_session="))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .filter(|v| !v.is_empty())
}

/// What goes through a liyu with every kind of secret and personal data, and then must not be in
/// its log: (log level, what must not appear).
async fn exercise_and_read_the_log(rust_log: &str) -> (String, Vec<(&'static str, String)>) {
    let mut up = Upstream::start().await;
    let mut served = crate::process::Served::start(
        &format!("ws://{}", up.addr),
        "",
        &format!("[check]\nmode = \"block\"\n{JSON_CHAT}"),
        rust_log,
        crate::process::temp_dir("logs"),
    );
    let text = "您好,甲乙丙丁戊己庚辛,有牌子,自己看";
    let phone = "13912345678";
    let id_card = "11010519491231002X";
    let card = "6222020200112233445";
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", served.proxy))
        .await
        .unwrap();
    let mut agent = crate::harness::Client { ws };
    let mut conn = up.accept().await;
    let messages = [
        text.to_string(),
        format!("您好,您的手机号{phone}已登记"),
        format!("您好,身份证{id_card},卡号{card}"),
        "去死吧,壬癸子丑".to_string(),
    ];
    for (i, m) in messages.iter().enumerate() {
        agent
            .send_json(serde_json::json!({"type": "message", "id": i, "conversation": "log-1", "sender": "a", "text": m}))
            .await;
    }
    // Each of them breaks a rule: four findings frames (the last for the blocked one).
    for _ in 0..messages.len() {
        assert_eq!(agent.next_json().await["type"], "liyu.findings");
    }
    conn.next().await;
    // A customer message, as the chat server sends it.
    let customer = serde_json::json!({"type": "message", "conversation": "log-1", "sender": "c", "text": format!("寅卯辰巳 {phone}")});
    conn.tx.send(Message::text(customer.to_string())).unwrap();
    assert_eq!(agent.next_json().await, customer);
    let session = login(served.admin, TOKEN).await.expect("a session");
    assert!(login(served.admin, "wrong-token-5150").await.is_none());
    let good = format!("Authorization: Bearer {TOKEN}");
    for (method, path, auth) in [
        ("GET", "/v1/findings", good.as_str()),
        (
            "GET",
            "/v1/findings",
            "Authorization: Bearer wrong-token-5150",
        ),
        ("POST", "/v1/check", good.as_str()),
        (
            "GET",
            "/v1/lexicon",
            &format!("Cookie: liyu_session={session}"),
        ),
    ] {
        let body = serde_json::json!({"text": format!("午未申酉 {phone}")});
        crate::api::call(served.admin, method, path, Some(auth), Some(&body)).await;
    }
    served.sigterm();
    served.wait(Duration::from_secs(15)).await;
    let secrets = vec![
        ("the admin token", TOKEN.to_string()),
        ("a wrong token", "wrong-token-5150".to_string()),
        ("the session id", session),
        ("a phone number", phone.to_string()),
        ("an ID number", id_card.to_string()),
        ("a card number", card.to_string()),
        ("an agent's message", "甲乙丙丁戊己庚辛".to_string()),
        ("a blocked message", "壬癸子丑".to_string()),
        ("a customer's message", "寅卯辰巳".to_string()),
        ("a checked text", "午未申酉".to_string()),
    ];
    (served.log(), secrets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_info_level_the_log_holds_no_token_session_message_or_personal_number() {
    let (log, secrets) = exercise_and_read_the_log("info").await;
    assert!(
        log.contains("liyu proxy listening"),
        "the log was captured:\n{log}"
    );
    assert!(log.contains("dashboard login refused"), "{log}");
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "{what} is in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_debug_level_the_log_holds_no_token_session_or_personal_number() {
    let (log, secrets) = exercise_and_read_the_log("debug").await;
    assert!(log.contains("DEBUG"), "debug logging was on:\n{log}");
    for (what, secret) in secrets {
        // Message text may appear at debug level (an operator debugging a rule); secrets and
        // personal numbers never.
        if what.ends_with("message") || what == "a checked text" {
            continue;
        }
        assert!(!log.contains(&secret), "{what} is in the debug log");
    }
}

/// At trace level the WebSocket library logs every frame and message it handles, payload included
/// (as text and as hex): liyu keeps it at debug unless `RUST_LOG` names it, so an operator who turns
/// on trace for liyu does not write customers' numbers, tokens or session ids to the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_trace_level_the_log_holds_no_token_session_or_personal_number() {
    let (log, secrets) = exercise_and_read_the_log("trace").await;
    assert!(log.contains("TRACE"), "trace logging was on:\n{log}");
    for (what, secret) in secrets {
        if what.ends_with("message") || what == "a checked text" {
            continue;
        }
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!log.contains(&secret), "{what} is in the trace log");
        assert!(!log.contains(&hex), "{what} is in the trace log, in hex");
    }
}

async fn upgrade_status(proxy: &Proxy, origin: Option<&str>) -> u16 {
    let mut req = format!("ws://{}/ws", proxy.addr)
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn the_origin_allow_list_is_off_by_default_and_exact_when_set() {
    let up = Upstream::start().await;
    let url = format!("ws://{}", up.addr);
    // Off by default: liyu drops in front of any chat page.
    let open = Proxy::start(&url, "", JSON_CHAT).await;
    for origin in [None, Some("https://anything.example"), Some("null")] {
        assert_eq!(upgrade_status(&open, origin).await, 101, "{origin:?}");
    }
    open.shutdown().await;

    let listed = Proxy::start(
        &url,
        "origins = [\"https://console.example\", \"http://127.0.0.1:3000\"]",
        JSON_CHAT,
    )
    .await;
    assert_eq!(
        upgrade_status(&listed, Some("https://console.example")).await,
        101
    );
    assert_eq!(
        upgrade_status(&listed, Some("http://127.0.0.1:3000")).await,
        101
    );
    for origin in [
        None,
        Some("null"),
        Some("https://console.example.evil"),
        Some("https://evil.example"),
        Some("http://console.example"),
        Some("https://console.example:443"),
        Some("HTTPS://CONSOLE.EXAMPLE"),
    ] {
        assert_eq!(upgrade_status(&listed, origin).await, 403, "{origin:?}");
    }
    listed.shutdown().await;
}
