//! `liyu serve` in front of a chat server: real sockets on port 0, tokio-tungstenite peers.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{http_upstream, Proxy, Upstream, JSON_CHAT};

fn chat(id: u64, conversation: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "conversation": conversation, "sender": "agent-7", "text": text})
}

fn text_of(m: &Message) -> &str {
    match m {
        Message::Text(t) => t.as_str(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn frames_that_are_not_chat_messages_pass_byte_identical_both_ways() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut agent = proxy.connect("/ws?room=1").await;
    let mut conn = up.accept().await;
    assert_eq!(conn.path, "/ws?room=1");

    let frames = vec![
        Message::text("plain text, not JSON: 有牌子,自己看"),
        Message::text(r#"{"type":"typing","text":"有牌子,自己看"}"#),
        Message::text(r#"{ "type" : "presence" ,  "spaces":  true }"#),
        Message::binary(vec![0u8, 255, 1, 2, 3]),
        Message::Ping(b"hello".to_vec().into()),
    ];
    for f in &frames {
        agent.send(f.clone()).await;
        assert_eq!(&conn.next().await, f);
    }
    // The ping is answered: by the chat server's pong, relayed (and by liyu's own WebSocket layer,
    // which answers every ping it reads).
    match agent.next().await {
        Message::Pong(p) => assert_eq!(&p[..], b"hello"),
        other => panic!("expected a pong, got {other:?}"),
    }
    for f in &frames[..4] {
        conn.tx.send(f.clone()).unwrap();
        let got = loop {
            match agent.next().await {
                Message::Pong(_) => continue,
                m => break m,
            }
        };
        assert_eq!(&got, f);
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn agent_message_breaking_a_rule_is_delivered_and_annotated() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;
    let mut feed = proxy.state.records.subscribe();

    let msg = chat(41, "c1", "您好,有牌子,自己看");
    agent.send_json(msg.clone()).await;
    // The chat server gets the message exactly as sent.
    assert_eq!(text_of(&conn.next().await), msg.to_string());
    let frame = agent.next_json().await;
    assert_eq!(frame["type"], "liyu.findings");
    assert_eq!(frame["action"], "delivered");
    assert_eq!(frame["message_id"], 41);
    assert_eq!(frame["conversation"], "c1");
    let f = &frame["findings"][0];
    assert_eq!(f["category"], "deflection");
    assert_eq!(f["matched"], "有牌子,自己看");
    assert_eq!(f["start"], 3);
    assert!(!f["suggestions"].as_array().unwrap().is_empty());
    let record = feed.recv().await.unwrap();
    assert_eq!(record.agent.as_deref(), Some("agent-7"));

    // A clean message gets no findings frame.
    agent
        .send_json(chat(42, "c1", "请您稍等,马上为您办理"))
        .await;
    conn.next().await;
    assert!(agent.maybe_next(Duration::from_millis(300)).await.is_none());
    proxy.shutdown().await;
}

#[tokio::test]
async fn block_mode_holds_back_and_override_sends_it_anyway() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "",
        &format!("[check]\nmode = \"block\"\n{JSON_CHAT}"),
    )
    .await;
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;

    // "去死吧" is a block-severity insult.
    agent.send_json(chat(1, "c2", "去死吧")).await;
    let frame = agent.next_json().await;
    assert_eq!(frame["action"], "blocked");
    assert_eq!(frame["findings"][0]["severity"], "block");

    // Lower severities are delivered and annotated.
    agent.send_json(chat(2, "c2", "您好,快点,我要下班了")).await;
    let delivered = conn.next().await;
    assert!(text_of(&delivered).contains("我要下班了"));
    assert_eq!(agent.next_json().await["action"], "delivered");

    // The override is honoured, the flag stripped, the record says so.
    let mut resent = chat(1, "c2", "去死吧");
    resent["liyu_override"] = json!(true);
    agent.send_json(resent).await;
    let got: Value = serde_json::from_str(text_of(&conn.next().await)).unwrap();
    assert_eq!(got, chat(1, "c2", "去死吧"));
    assert_eq!(agent.next_json().await["action"], "overridden");
    proxy.shutdown().await;
}

#[tokio::test]
async fn socketio_events_are_checked_and_keep_namespace_and_ack() {
    let mut up = Upstream::start().await;
    let config = r#"
[[messages]]
framing = "socketio"
event = "chat message"
text = "/body"
conversation = "/room"
message_id = "/mid"
"#;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", config).await;
    let mut agent = proxy.connect("/socket.io/?EIO=4&transport=websocket").await;
    let mut conn = up.accept().await;

    for f in ["0", "40/support,", "2", "3"] {
        agent.send(Message::text(f)).await;
        assert_eq!(text_of(&conn.next().await), f);
    }
    let frame = r#"42/support,17["chat message",{"room":"r9","mid":"m1","body":"没看我正忙着吗"}]"#;
    agent.send(Message::text(frame)).await;
    assert_eq!(text_of(&conn.next().await), frame);
    let back = agent.next().await;
    let back = text_of(&back);
    assert!(
        back.starts_with(r#"42/support,["liyu.findings","#),
        "{back}"
    );
    let payload: Value = serde_json::from_str(&back["42/support,".len()..]).unwrap();
    assert_eq!(payload[1]["findings"][0]["category"], "impatience");
    assert_eq!(payload[1]["conversation"], "r9");
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_refusal_status_is_passed_back_and_unreachable_is_502() {
    let up = Upstream::start_with(Some(401)).await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
    proxy.shutdown().await;

    // Nothing listens on this port any more.
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let proxy = Proxy::start(&format!("ws://{dead}"), "", JSON_CHAT).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 502),
        other => panic!("expected 502, got {other}"),
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn headers_and_subprotocol_reach_the_upstream() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut req = format!("ws://{}/ws", proxy.addr)
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("cookie", "session=abc".parse().unwrap());
    h.insert("authorization", "Bearer t0ken".parse().unwrap());
    h.insert("origin", "https://console.example".parse().unwrap());
    h.insert(
        "sec-websocket-protocol",
        "chat.v1, chat.v2".parse().unwrap(),
    );
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat.v2");
    let conn = up.accept().await;
    assert_eq!(conn.header("cookie"), Some("session=abc"));
    assert_eq!(conn.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(conn.header("origin"), Some("https://console.example"));
    assert_eq!(conn.header("x-forwarded-for"), Some("127.0.0.1"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn origin_allow_list_refuses_other_pages() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "origins = [\"https://console.example\"]",
        JSON_CHAT,
    )
    .await;
    let mut req = format!("ws://{}/ws", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other}"),
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn close_code_and_reason_are_relayed() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;
    agent
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4001),
            reason: "agent logged out".into(),
        })))
        .await;
    match conn.next().await {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::Library(4001));
            assert_eq!(f.reason.as_str(), "agent logged out");
        }
        other => panic!("expected close, got {other:?}"),
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009_and_others_keep_working() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "max_message_bytes = 1024",
        JSON_CHAT,
    )
    .await;
    let mut big = proxy.connect("/ws").await;
    let _conn = up.accept().await;
    big.send(Message::text("x".repeat(4096))).await;
    match big.next().await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    let mut other = proxy.connect("/ws").await;
    let mut conn = up.accept().await;
    other.send(Message::text("still here")).await;
    assert_eq!(text_of(&conn.next().await), "still here");
    proxy.shutdown().await;
}

#[tokio::test]
async fn inject_off_keeps_the_protocol_untouched_but_records_findings() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "",
        &format!("[check]\ninject = false\n{JSON_CHAT}"),
    )
    .await;
    let mut feed = proxy.state.records.subscribe();
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;
    agent.send_json(chat(5, "c5", "您好,有牌子,自己看")).await;
    conn.next().await;
    let record = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.findings[0].category.as_str(), "deflection");
    assert!(agent.maybe_next(Duration::from_millis(300)).await.is_none());
    proxy.shutdown().await;
}

#[tokio::test]
async fn customer_side_config_blocks_agent_messages_before_the_customer_sees_them() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "agent_side = \"upstream\"",
        &format!("[check]\nmode = \"block\"\n{JSON_CHAT}"),
    )
    .await;
    let mut customer = proxy.connect("/ws").await;
    let conn = up.accept().await;
    conn.tx
        .send(Message::text(chat(1, "c9", "去死吧").to_string()))
        .unwrap();
    conn.tx
        .send(Message::text(
            chat(2, "c9", "您好,请问有什么可以帮您?").to_string(),
        ))
        .unwrap();
    // Only the courteous one arrives, and no liyu frame is ever sent to a customer.
    let got: Value = serde_json::from_str(text_of(&customer.next().await)).unwrap();
    assert_eq!(got["id"], 2);
    assert!(customer
        .maybe_next(Duration::from_millis(300))
        .await
        .is_none());
    proxy.shutdown().await;
}

#[tokio::test]
async fn http_route_blocks_with_422_and_forwards_the_rest_with_findings_to_the_agent_socket() {
    let (http_addr, mut seen) = http_upstream().await;
    let mut up = Upstream::start().await;
    // One upstream host serves both the WebSocket and the HTTP API in real chat systems; here the
    // HTTP one is used for both kinds of request, and the WebSocket test server answers upgrades.
    let _ = &mut up;
    let routes = r#"
[check]
mode = "block"

[[routes]]
method = "POST"
path = "/api/v1/accounts/{account}/conversations/{conversation}/messages"
text = "/content"
conversation = "path:conversation"
sender = "header:x-agent"
"#;
    let proxy = Proxy::start(&format!("http://{http_addr}"), "", routes).await;
    let client = reqwest_like::Client::new(proxy.addr);

    let (status, body) = client
        .post(
            "/api/v1/accounts/1/conversations/77/messages",
            "a1",
            r#"{"content":"去死吧","private":false}"#,
        )
        .await;
    assert_eq!(status, 422);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["action"], "blocked");
    assert_eq!(v["conversation"], "77");
    assert!(
        seen.try_recv().is_err(),
        "a blocked message never reaches the chat server"
    );

    let (status, body) = client
        .post(
            "/api/v1/accounts/1/conversations/77/messages",
            "a1",
            r#"{"content":"您好,快点,我要下班了"}"#,
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body, r#"{"ok":true}"#);
    let (method, path, headers, got) = seen.recv().await.unwrap();
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/api/v1/accounts/1/conversations/77/messages")
    );
    assert_eq!(&got[..], r#"{"content":"您好,快点,我要下班了"}"#.as_bytes());
    assert!(headers
        .iter()
        .any(|(n, v)| n == "x-forwarded-for" && v == "127.0.0.1"));

    // Requests on other paths are proxied untouched.
    let (status, _) = client.get("/api/v1/profile").await;
    assert_eq!(status, 201);
    assert_eq!(seen.recv().await.unwrap().1, "/api/v1/profile");
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_connections_with_1001() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "drain_timeout = \"3s\"",
        JSON_CHAT,
    )
    .await;
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;
    agent.send(Message::text("before")).await;
    assert_eq!(text_of(&conn.next().await), "before");
    let stopping = tokio::spawn(proxy.shutdown());
    match agent.next().await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    match conn.next().await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected close 1001 upstream, got {other:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_broken_lexicon_on_reload_keeps_the_running_one() {
    let dir = std::env::temp_dir().join(format!("liyu-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(crate::util::repo("lexicons")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "",
        &format!("[check]\nlexicons = \"{}\"\n{JSON_CHAT}", dir.display()),
    )
    .await;
    let rules = proxy.state.lexicon_status().rules;
    std::fs::write(dir.join("impatience.toml"), "[[rule]]\nid = 3\n").unwrap();
    let err = proxy.state.reload().unwrap_err();
    assert!(err.contains("impatience.toml:2:"), "{err}");
    let status = proxy.state.lexicon_status();
    assert_eq!(status.rules, rules);
    assert!(status.last_error.is_some());
    // Still checking with the old lexicon.
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;
    agent.send_json(chat(1, "c", "您好,快点,我要下班了")).await;
    conn.next().await;
    assert_eq!(
        agent.next_json().await["findings"][0]["category"],
        "impatience"
    );
    std::fs::remove_dir_all(&dir).ok();
    proxy.shutdown().await;
}

/// A minimal HTTP/1.1 client over a TCP socket, enough for these tests.
mod reqwest_like {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub struct Client(SocketAddr);

    impl Client {
        pub fn new(addr: SocketAddr) -> Client {
            Client(addr)
        }

        async fn call(&self, head: String, body: &str) -> (u16, String) {
            let mut s = TcpStream::connect(self.0).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            let text = String::from_utf8_lossy(&out).to_string();
            let status = text[9..12].parse().unwrap();
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            // Chunked responses: keep it simple by stripping a single chunk's framing.
            let body = if text
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                body.split("\r\n").nth(1).unwrap_or("").to_string()
            } else {
                body.to_string()
            };
            (status, body)
        }

        pub async fn post(&self, path: &str, agent: &str, body: &str) -> (u16, String) {
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: liyu\r\nConnection: close\r\nContent-Type: application/json\r\nX-Agent: {agent}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            self.call(head, body).await
        }

        pub async fn get(&self, path: &str) -> (u16, String) {
            let head = format!("GET {path} HTTP/1.1\r\nHost: liyu\r\nConnection: close\r\n\r\n");
            self.call(head, "").await
        }
    }
}

#[tokio::test]
async fn findings_of_http_sent_messages_reach_the_agents_open_socket() {
    // One chat server serves the console's socket and its HTTP API, as Rocket.Chat does.
    let (http_addr, mut seen) = http_upstream().await;
    let config = r#"
[[routes]]
method = "POST"
path = "/api/v1/chat.sendMessage"
text = "/message/msg"
conversation = "/message/rid"
sender = "header:x-agent"
"#;
    let proxy = Proxy::start(
        &format!("http://{http_addr}"),
        "agent_id = \"query:agent\"",
        &format!("{config}{JSON_CHAT}"),
    )
    .await;
    let mut console = proxy.connect("/websocket?agent=a1").await;
    let client = reqwest_like::Client::new(proxy.addr);
    let (status, _) = client
        .post(
            "/api/v1/chat.sendMessage",
            "a1",
            r#"{"message":{"rid":"room-3","msg":"您好,这不归我们管,你去别处问问"}}"#,
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(seen.recv().await.unwrap().1, "/api/v1/chat.sendMessage");
    let frame = console.next_json().await;
    assert_eq!(frame["type"], "liyu.findings");
    assert_eq!(frame["conversation"], "room-3");
    assert_eq!(frame["action"], "delivered");
    assert_eq!(frame["findings"][0]["category"], "deflection");

    // Another agent's console hears nothing of it.
    let mut other = proxy.connect("/websocket?agent=a2").await;
    client
        .post(
            "/api/v1/chat.sendMessage",
            "a1",
            r#"{"message":{"rid":"room-3","msg":"有牌子,自己看"}}"#,
        )
        .await;
    seen.recv().await.unwrap();
    assert_eq!(console.next_json().await["conversation"], "room-3");
    assert!(other.maybe_next(Duration::from_millis(300)).await.is_none());
    proxy.shutdown().await;
}

#[tokio::test]
async fn first_reply_without_greeting_and_last_reply_without_farewell_are_findings() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;

    agent.send_json(chat(1, "g1", "请提供订单号")).await;
    conn.next().await;
    let frame = agent.next_json().await;
    let cats: Vec<&str> = frame["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["category"].as_str().unwrap())
        .collect();
    assert_eq!(cats, ["greeting"]);
    assert_eq!(
        frame["findings"][0]["suggestions"][0],
        "您好,请问有什么可以帮您?"
    );

    // Later replies are not judged for greetings; the conversation ends without a farewell.
    agent.send_json(chat(2, "g1", "已经为您办好了")).await;
    conn.next().await;
    conn.tx
        .send(Message::text(
            json!({"type": "closed", "conversation": "g1"}).to_string(),
        ))
        .unwrap();
    let closed = agent.next().await;
    assert!(text_of(&closed).contains("closed"));
    let frame = agent.next_json().await;
    assert_eq!(frame["action"], "recorded");
    assert_eq!(frame["findings"][0]["category"], "farewell");
    assert_eq!(frame["findings"][0]["matched"], "已经为您办好了");

    // A conversation that greets and takes leave has neither finding.
    agent
        .send_json(chat(3, "g2", "您好,请问有什么可以帮您?"))
        .await;
    conn.next().await;
    agent.send_json(chat(4, "g2", "请慢走,再见")).await;
    conn.next().await;
    conn.tx
        .send(Message::text(
            json!({"type": "closed", "conversation": "g2"}).to_string(),
        ))
        .unwrap();
    agent.next().await;
    assert!(agent.maybe_next(Duration::from_millis(300)).await.is_none());
    proxy.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_waiting_customer_nudges_the_agent_then_records_a_slow_reply() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "idle_timeout = \"1h\"",
        JSON_CHAT,
    )
    .await;
    let mut feed = proxy.state.records.subscribe();
    let mut agent = proxy.connect("/ws").await;
    let conn = up.accept().await;
    let customer = json!({"type": "message", "id": 9, "conversation": "w1", "sender": "cust", "text": "在吗?我的退款呢"});
    conn.tx.send(Message::text(customer.to_string())).unwrap();
    assert_eq!(agent.next_json().await, customer);
    let started = tokio::time::Instant::now();

    // Paused time: the runtime jumps to liyu's next deadline whenever everything is idle.
    let nudge = match agent.maybe_next(Duration::from_secs(600)).await {
        Some(Message::Text(t)) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
        other => panic!("expected a nudge, got {other:?}"),
    };
    assert_eq!(nudge["type"], "liyu.nudge");
    assert_eq!(nudge["conversation"], "w1");
    assert_eq!(nudge["waited_seconds"], 30);
    assert_eq!(started.elapsed().as_secs(), 30);

    let slow = match agent.maybe_next(Duration::from_secs(600)).await {
        Some(Message::Text(t)) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
        other => panic!("expected a slow-reply finding, got {other:?}"),
    };
    assert_eq!(slow["action"], "recorded");
    assert_eq!(slow["findings"][0]["category"], "slow_reply");
    assert_eq!(started.elapsed().as_secs(), 60);
    let record = feed.recv().await.unwrap();
    assert_eq!(record.findings[0].rule, "conversation.slow-reply");

    // Once answered, the clock stops: no further nudge.
    agent
        .send_json(chat(10, "w1", "您好,让您久等了,马上为您查询"))
        .await;
    assert!(agent.maybe_next(Duration::from_secs(300)).await.is_none());
    proxy.shutdown().await;
}
