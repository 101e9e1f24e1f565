//! Soak: a steady 2,000 agent messages a second over 500 connections through the real `liyu serve`
//! (block mode, checking on, SQLite store on), with the chat server sending a customer message
//! for every fourth agent message. Every frame must arrive, in order, byte-identical, unless liyu
//! blocked it (and then the agent is told so); every flagged message gets its findings frame; the
//! store drops nothing; liyu's heap stays flat after warm-up.
//!
//! 30 s in the normal suite; `LIYU_SOAK_SECS=600` (what `tests/run.sh --extended` sets) for the
//! 10-minute run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use liyu::Severity;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::JSON_CHAT;
use crate::process::Served;

const CONNECTIONS: usize = 500;
const RATE: usize = 2_000;

/// What agents write: mostly clean; one in ten annotated, one blocked, one with a personal number
/// (far more than a real team writes, so the store is busy too).
const TEMPLATES: &[&str] = &[
    "您好,请稍等,马上为您办理",
    "您好,您的材料已经收到,我们会尽快处理",
    "您好,有牌子,自己看",
    "您好,请您到3号窗口办理",
    "您好,您的手机号13812345678已登记",
    "您好,感谢您的耐心等待",
    "您好,您反映的情况我已经记录下来了",
    "您好,这个问题我帮您查一下",
    "您好,去死吧",
    "您好,请问还有什么可以帮您",
];

/// Agent message `k` of connection `c`, exactly as sent.
fn agent_frame(c: usize, k: u64) -> String {
    let text = format!("{} #{k}", TEMPLATES[(k as usize * 7 + c) % TEMPLATES.len()]);
    json!({"type": "message", "id": k, "conversation": format!("soak-{c}"), "sender": format!("agent-{}", c % 50), "text": text})
        .to_string()
}

/// Customer message `j` of connection `c`, exactly as the chat server sends it.
fn customer_frame(c: usize, j: u64) -> String {
    json!({"type": "message", "conversation": format!("soak-{c}"), "sender": "customer", "text": format!("请问我的业务办好了吗 {j}")})
        .to_string()
}

/// What liyu must do with agent message `k` of connection `c`: (blocked, annotated). Decided by
/// the same checker liyu runs, once per template (the number after it changes nothing; if it did,
/// the findings frames would not match and the soak would fail).
fn fate(c: usize, k: u64) -> (bool, bool) {
    static FATES: OnceLock<Vec<(bool, bool)>> = OnceLock::new();
    let fates = FATES.get_or_init(|| {
        TEMPLATES
            .iter()
            .map(|t| {
                let findings = crate::util::checker().check(&format!("{t} #0"));
                let blocked = findings.iter().any(|f| f.severity == Severity::Block);
                (blocked, !findings.is_empty())
            })
            .collect()
    });
    fates[(k as usize * 7 + c) % TEMPLATES.len()]
}

/// Shared tallies and the first failure seen.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    blocked: AtomicU64,
    delivered: AtomicU64,
    annotated: AtomicU64,
    customer_sent: AtomicU64,
    customer_received: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut f = self.failures.lock().unwrap();
        if f.len() < 10 {
            f.push(what);
        }
    }
}

/// The chat server: checks that every agent message arrives in order and byte-identical (blocked
/// ones skipped), and answers every fourth one with a customer message.
async fn chat_server(tally: Arc<Tally>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tally = tally.clone();
            tokio::spawn(async move {
                let path = Arc::new(Mutex::new(String::new()));
                let p = path.clone();
                #[allow(clippy::result_large_err)]
                let cb = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                               resp| {
                    *p.lock().unwrap() = req.uri().to_string();
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                    return;
                };
                let c: usize = path
                    .lock()
                    .unwrap()
                    .rsplit_once("c=")
                    .and_then(|(_, n)| n.parse().ok())
                    .expect("connection number in the path");
                let mut expect = 0u64;
                let mut answered = 0u64;
                while let Some(Ok(m)) = ws.next().await {
                    let Message::Text(t) = m else { continue };
                    while fate(c, expect).0 {
                        expect += 1;
                    }
                    if t.as_str() != agent_frame(c, expect) {
                        tally.fail(format!(
                            "connection {c}: expected message {expect}, got {t}"
                        ));
                        return;
                    }
                    tally.delivered.fetch_add(1, Ordering::Relaxed);
                    expect += 1;
                    if expect.is_multiple_of(4) {
                        let frame = customer_frame(c, answered);
                        if ws.send(Message::text(frame)).await.is_err() {
                            return;
                        }
                        answered += 1;
                        tally.customer_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    addr
}

/// One agent: sends at `per_second` until `until`, checking everything that comes back.
async fn agent(c: usize, proxy: SocketAddr, per_second: f64, until: Instant, tally: Arc<Tally>) {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/soak?c={c}"))
        .await
        .unwrap_or_else(|e| panic!("connection {c}: {e}"));
    let (mut w, mut r) = ws.split();
    // Which of the sent messages expect a findings frame, in order, and whether it was blocked.
    let (fates_tx, mut fates_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, bool)>();
    let reader_tally = tally.clone();
    let reader = tokio::spawn(async move {
        let mut customer = 0u64;
        while let Some(Ok(m)) = r.next().await {
            let Message::Text(t) = m else { continue };
            let t = t.as_str();
            if t.contains("\"liyu.findings\"") {
                let v: Value = serde_json::from_str(t).unwrap();
                let Ok((k, blocked)) = fates_rx.try_recv() else {
                    reader_tally.fail(format!("connection {c}: unexpected findings {t}"));
                    return;
                };
                let action = if blocked { "blocked" } else { "delivered" };
                if v["message_id"] != k || v["action"] != action {
                    reader_tally.fail(format!(
                        "connection {c}: findings for {k} ({action}) expected, got {t}"
                    ));
                    return;
                }
                reader_tally.annotated.fetch_add(1, Ordering::Relaxed);
            } else if t == customer_frame(c, customer) {
                customer += 1;
                reader_tally
                    .customer_received
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                reader_tally.fail(format!(
                    "connection {c}: expected customer message {customer}, got {t}"
                ));
                return;
            }
        }
    });
    let period = Duration::from_secs_f64(1.0 / per_second);
    // Spread the connections' ticks over the period.
    tokio::time::sleep(period.mul_f64(c as f64 / CONNECTIONS as f64)).await;
    let mut tick = tokio::time::interval(period);
    let mut k = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        let (blocked, annotated) = fate(c, k);
        if annotated {
            let _ = fates_tx.send((k, blocked));
        }
        if w.send(Message::text(agent_frame(c, k))).await.is_err() {
            tally.fail(format!("connection {c}: send {k} failed"));
            break;
        }
        tally.sent.fetch_add(1, Ordering::Relaxed);
        if blocked {
            tally.blocked.fetch_add(1, Ordering::Relaxed);
        }
        k += 1;
    }
    // Let the last frames land, then close properly.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = w.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_steady_load_loses_nothing_and_memory_stays_flat() {
    let secs: u64 = std::env::var("LIYU_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let tally = Arc::new(Tally::default());
    let upstream = chat_server(tally.clone()).await;
    let served = Served::start(
        &format!("ws://{upstream}"),
        "",
        &format!("[check]\nmode = \"block\"\n{JSON_CHAT}"),
        // The addresses are logged at info.
        "warn,liyu=info",
        crate::process::temp_dir("soak"),
    );
    let (rss0, anon0) = served.rss_kib();
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let per_second = RATE as f64 / CONNECTIONS as f64;
    let mut agents = Vec::new();
    for c in 0..CONNECTIONS {
        agents.push(tokio::spawn(agent(
            c,
            served.proxy,
            per_second,
            until,
            tally.clone(),
        )));
    }
    // Memory every 2 s: (seconds since start, all, anonymous).
    let warm_up = Duration::from_secs((secs / 5).max(10));
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss, anon) = served.rss_kib();
        samples.push((started.elapsed().as_secs(), rss, anon));
        if !tally.failures.lock().unwrap().is_empty() {
            break;
        }
    }
    for a in agents {
        a.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:#?}");

    let sent = tally.sent.load(Ordering::Relaxed);
    let blocked = tally.blocked.load(Ordering::Relaxed);
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let customer_sent = tally.customer_sent.load(Ordering::Relaxed);
    let customer_received = tally.customer_received.load(Ordering::Relaxed);
    let annotated = tally.annotated.load(Ordering::Relaxed);
    let rate = sent as f64 / secs as f64;
    eprintln!(
        "soak {secs} s, {CONNECTIONS} connections: {sent} agent frames sent ({rate:.0}/s), \
         {delivered} delivered, {blocked} blocked, {annotated} findings frames; \
         {customer_sent} customer frames sent, {customer_received} received"
    );
    assert_eq!(delivered + blocked, sent, "agent messages lost");
    assert_eq!(customer_received, customer_sent, "customer messages lost");
    assert!(
        blocked > 0 && annotated > blocked,
        "the load had flagged and blocked messages"
    );
    assert!(
        rate > 0.8 * RATE as f64,
        "the load fell to {rate:.0}/s of {RATE}: the machine was too busy for this to be a soak"
    );

    // The store kept up: nothing dropped, the queue drained.
    let written = served.metric("liyu_store_written_total").await;
    let dropped = served.metric("liyu_store_dropped_total").await;
    eprintln!("store: {written} events written, {dropped} dropped");
    assert_eq!(dropped, 0.0);
    assert!(written >= annotated as f64);

    // Heap flat after warm-up: the largest anonymous RSS after warm-up within 20% (+16 MiB for
    // allocator slack) of the largest seen during warm-up.
    let warm: Vec<_> = samples
        .iter()
        .filter(|s| s.0 <= warm_up.as_secs())
        .collect();
    let after: Vec<_> = samples.iter().filter(|s| s.0 > warm_up.as_secs()).collect();
    let warm_max = warm.iter().map(|s| s.2).max().unwrap_or(anon0);
    let after_max = after.iter().map(|s| s.2).max().unwrap_or(warm_max);
    let last = samples.last().copied().unwrap_or((0, rss0, anon0));
    let by_minute: HashMap<u64, u64> = samples.iter().map(|s| (s.0 / 60, s.2)).collect();
    let mut minutes: Vec<_> = by_minute.into_iter().collect();
    minutes.sort();
    eprintln!(
        "liyu RSS: start {rss0} KiB (anonymous {anon0}), end {} KiB (anonymous {}); \
         anonymous max during warm-up {warm_max} KiB, after {after_max} KiB; per minute {minutes:?}",
        last.1, last.2
    );
    assert!(
        after_max <= warm_max + warm_max / 5 + 16 * 1024,
        "liyu's heap grew after warm-up: {warm_max} → {after_max} KiB"
    );
}
