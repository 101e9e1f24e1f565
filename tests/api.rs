//! The admin API against a real server on port 0, with the proxy producing the findings, on SQLite
//! and on PostgreSQL.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{temp_sqlite, Proxy, Upstream, JSON_CHAT, TOKEN};

/// A minimal HTTP/1.1 client: (status, headers, body).
pub(crate) async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = auth.map_or(String::new(), |a| format!("{a}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text[9..12].parse().unwrap();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, headers.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    let (status, _, body) = call(addr, "GET", path, Some(&bearer()), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Waits until the store has written `n` findings (the writer is asynchronous).
async fn wait_for_findings(addr: std::net::SocketAddr, n: usize) -> Value {
    for _ in 0..100 {
        let v = get_json(addr, "/v1/findings?limit=500").await;
        if v["items"].as_array().unwrap().len() >= n {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the store did not receive {n} findings");
}

fn chat(id: u64, conv: &str, agent: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "conversation": conv, "sender": agent, "text": text})
}

async fn api_round_trip(store_url: &str) {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start_admin(&format!("ws://{}", up.addr), store_url, JSON_CHAT).await;
    let admin = proxy.admin.unwrap();
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;

    // A customer writes (context), the agent answers rudely, with a customer's phone number.
    conn.tx
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"type":"message","id":1,"conversation":"c1","sender":"cust","text":"请问我的手机号13812345678绑定了吗"})
                .to_string(),
        ))
        .unwrap();
    agent.next().await;
    agent
        .send_json(chat(
            2,
            "c1",
            "a7",
            "您好,有牌子,自己看。您的手机号13812345678已绑定",
        ))
        .await;
    conn.next().await;
    agent.next().await;
    agent.send_json(chat(3, "c1", "a7", "请您稍等")).await;
    conn.next().await;
    agent
        .send_json(chat(4, "c2", "a8", "您好,快点,我要下班了"))
        .await;
    conn.next().await;
    agent.next().await;

    let page = wait_for_findings(admin, 3).await;
    let items = page["items"].as_array().unwrap();
    // Newest first; personal numbers masked in everything stored.
    assert_eq!(items[0]["agent"], "a8");
    for it in items {
        assert!(
            !it["text"].as_str().unwrap().contains("13812345678"),
            "{it}"
        );
        assert!(
            !it["matched"].as_str().unwrap().contains("13812345678"),
            "{it}"
        );
    }
    let privacy = items.iter().find(|i| i["category"] == "privacy").unwrap();
    assert_eq!(privacy["matched"], "138****5678");

    // Filters.
    let v = get_json(admin, "/v1/findings?agent=a7&category=deflection").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let id = v["items"][0]["id"].as_i64().unwrap();
    let v = get_json(admin, "/v1/findings?q=%E4%B8%8B%E7%8F%AD").await; // q=下班
    assert_eq!(v["items"][0]["agent"], "a8");
    let v = get_json(admin, "/v1/findings?agent=%27%20OR%201%3D1%20--").await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        0,
        "injection string matches nothing"
    );

    // One finding with its context (the customer's message before it, masked).
    let f = get_json(admin, &format!("/v1/findings/{id}")).await;
    assert_eq!(f["context"][0]["role"], "customer");
    assert_eq!(f["context"][0]["text"], "请问我的手机号138****5678绑定了吗");

    // Review it as a false positive; the rule's false-positive share reflects it.
    let (status, _, body) = call(
        admin,
        "POST",
        &format!("/v1/findings/{id}/review"),
        Some(&bearer()),
        Some(&json!({"verdict": "false_positive", "note": "quoting the sign"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reviewed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reviewed["verdict"], "false_positive");
    let stats = get_json(admin, "/v1/stats?group=rule").await;
    let rule = f["rule"].as_str().unwrap();
    let row = stats["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == rule)
        .unwrap();
    assert_eq!(row["false_positive_share"], 1.0);
    let v = get_json(admin, "/v1/findings?reviewed=false_positive").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (status, _, _) = call(
        admin,
        "POST",
        &format!("/v1/findings/{id}/review"),
        Some(&bearer()),
        Some(&json!({"verdict": "maybe"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = call(admin, "GET", "/v1/findings/999999", Some(&bearer()), None).await;
    assert_eq!(status, 404);

    // Per-agent rates: a7 sent 2 checked messages with findings in one of them.
    let stats = get_json(admin, "/v1/stats?group=agent").await;
    let a7 = stats["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "a7")
        .unwrap()
        .clone();
    assert_eq!(a7["messages"], 2);
    assert_eq!(a7["findings"], 2);
    assert_eq!(a7["rate_per_100"], 100.0);

    // CSV export has a header and one line per finding.
    let (status, headers, csv) = call(admin, "GET", "/v1/export.csv", Some(&bearer()), None).await;
    assert_eq!(status, 200);
    assert!(headers.to_ascii_lowercase().contains("text/csv"));
    assert_eq!(csv.lines().count(), 1 + items.len(), "{csv}");

    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_sqlite() {
    api_round_trip(&temp_sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_postgres() {
    let url = std::env::var("LIYU_TEST_POSTGRES").expect(
        "LIYU_TEST_POSTGRES is not set: run tests/run.sh, which starts a PostgreSQL server",
    );
    // Its own schema, so it runs beside the other PostgreSQL tests.
    let schema = format!("liyu_api_{}", std::process::id());
    let (base, s) = (url.clone(), schema.clone());
    tokio::task::spawn_blocking(move || {
        let mut c = ::postgres::Client::connect(&base, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to LIYU_TEST_POSTGRES={base}: {e}"));
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}"
        ))
        .unwrap();
    })
    .await
    .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    api_round_trip(&format!("{url}{sep}options=-c%20search_path%3D{schema}")).await;
}

#[tokio::test]
async fn check_endpoint_is_pure_and_answers_in_wire_form() {
    let up = Upstream::start().await;
    let proxy = Proxy::start_admin(&format!("ws://{}", up.addr), &temp_sqlite(), JSON_CHAT).await;
    let admin = proxy.admin.unwrap();
    let (status, _, body) = call(
        admin,
        "POST",
        "/v1/check",
        Some(&bearer()),
        Some(&json!({"text": "😀有牌子,自己看", "conversation": "draft"})),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let f = &v["findings"][0];
    assert_eq!((f["start"].as_u64(), f["end"].as_u64()), (Some(2), Some(9)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page = get_json(admin, "/v1/findings").await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "drafts are not stored"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn without_a_token_every_api_route_and_page_is_refused() {
    let up = Upstream::start().await;
    let proxy = Proxy::start_admin(&format!("ws://{}", up.addr), &temp_sqlite(), JSON_CHAT).await;
    let admin = proxy.admin.unwrap();
    let routes = [
        ("GET", "/"),
        ("GET", "/assets/app.js"),
        ("GET", "/assets/style.css"),
        ("POST", "/v1/check"),
        ("GET", "/v1/findings"),
        ("GET", "/v1/findings/1"),
        ("POST", "/v1/findings/1/review"),
        ("GET", "/v1/stats?group=agent"),
        ("GET", "/v1/events"),
        ("GET", "/v1/lexicon"),
        ("POST", "/v1/lexicon/reload"),
        ("GET", "/v1/export.csv"),
        ("POST", "/logout"),
    ];
    for (method, path) in routes {
        for auth in [
            None,
            Some("Authorization: Bearer wrong"),
            Some("Cookie: liyu_session=forged"),
        ] {
            let (status, _, _) = call(admin, method, path, auth, Some(&json!({"text": "x"}))).await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}");
        }
    }
    // Open ones.
    assert_eq!(call(admin, "GET", "/healthz", None, None).await.0, 200);
    let (status, _, metrics) = call(admin, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("liyu_messages_checked_total"));
    assert_eq!(call(admin, "GET", "/login", None, None).await.0, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn login_sets_an_http_only_strict_cookie_that_opens_the_dashboard() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let proxy = Proxy::start_admin(&format!("ws://{}", up.addr), &temp_sqlite(), JSON_CHAT).await;
    let admin = proxy.admin.unwrap();
    let form = format!("token={}", urlencode(TOKEN));
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let cookie_line = out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"));
    // Served over plain HTTP the cookie cannot be Secure (the browser would drop it) ...
    assert!(!cookie_line.contains("Secure"), "{cookie_line}");
    // ... and behind a proxy that terminates TLS it is.
    let tls_head = head.replacen(
        "Connection: close\r\n",
        "Connection: close\r\nX-Forwarded-Proto: https\r\n",
        1,
    );
    let mut tls = tokio::net::TcpStream::connect(admin).await.unwrap();
    tls.write_all(tls_head.as_bytes()).await.unwrap();
    let mut tls_out = String::new();
    tls.read_to_string(&mut tls_out).await.unwrap();
    let tls_cookie = tls_out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie over TLS");
    assert!(tls_cookie.contains("; Secure"), "{tls_cookie}");
    let session = cookie_line
        .split_once("liyu_session=")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap();
    let cookie = format!("Cookie: liyu_session={session}");
    let (status, headers, _) = call(admin, "GET", "/", Some(&cookie), None).await;
    assert_eq!(status, 200);
    assert!(headers
        .to_ascii_lowercase()
        .contains("content-security-policy"));
    assert_eq!(
        call(admin, "GET", "/v1/lexicon", Some(&cookie), None)
            .await
            .0,
        200
    );
    // A wrong token goes back to the login page, no cookie.
    let (status, headers, _) = call(admin, "POST", "/login", None, None).await;
    assert!(
        status == 415 || status == 400 || status == 422 || status == 303,
        "{status}"
    );
    assert!(!headers.contains("liyu_session="));
    proxy.shutdown().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
