//! Faults liyu must survive without losing, reordering or corrupting a message, and bad input it
//! must answer clearly: the chat server refusing, down, dying and coming back; clients that vanish,
//! stop reading or churn; a findings store that is locked, full or unreachable; a lexicon broken
//! while traffic flows; SIGTERM under load; invalid UTF-8, oversized frames, deep JSON, lying
//! Socket.IO packets and bodies that are not JSON.
//!
//! Each test says which fault it injects; `FAULTS` in the closing notes counts them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{temp_sqlite, Client, Proxy, Upstream, JSON_CHAT, TOKEN};

fn chat(id: u64, conversation: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "conversation": conversation, "sender": "agent-1", "text": text})
}

/// Reads until a close frame or the end of the connection: the close frame, if one came, and the
/// frames before it.
async fn until_close(client: &mut Client, limit: Duration) -> (Option<CloseFrame>, Vec<Message>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, client.ws.next()).await {
            Err(_) => panic!("no close within {limit:?}; {} frames before", seen.len()),
            Ok(Some(Ok(Message::Close(f)))) => return (f, seen),
            Ok(Some(Ok(m))) => seen.push(m),
            Ok(Some(Err(_))) | Ok(None) => return (None, seen),
        }
    }
}

fn code(f: &Option<CloseFrame>) -> Option<CloseCode> {
    f.as_ref().map(|f| f.code)
}

/// Waits until `cond` holds, polling.
async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A chat server that echoes every text and binary frame, and can be killed (every socket dropped
/// without a close frame, the port freed) and started again on the same port.
struct Echo {
    addr: SocketAddr,
    kill: watch::Sender<bool>,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
    /// Connections that ended.
    ended: Arc<AtomicUsize>,
}

impl Echo {
    async fn start() -> Echo {
        Echo::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> Echo {
        // The port was just freed by a killed server: binding it can take a moment.
        let listener = {
            let mut tries = 0;
            loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(e) if tries < 50 => {
                        tries += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot bind {addr}: {e}"),
                }
            }
        };
        let addr = listener.local_addr().unwrap();
        let (kill, killed) = watch::channel(false);
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let (acc, end) = (accepted.clone(), ended.clone());
        let mut stop = killed.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                    _ = stop.wait_for(|k| *k) => return,
                };
                acc.fetch_add(1, Ordering::Relaxed);
                let mut stop = killed.clone();
                let end = end.clone();
                tokio::spawn(async move {
                    let serve = async {
                        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                            return;
                        };
                        while let Some(Ok(m)) = ws.next().await {
                            let echo = matches!(m, Message::Text(_) | Message::Binary(_));
                            if echo && ws.send(m).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        _ = serve => {}
                        _ = stop.wait_for(|k| *k) => {}
                    }
                    end.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        Echo {
            addr,
            kill,
            accepted,
            ended,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drops every connection and the listener, as a crashed server would.
    async fn kill(self) -> SocketAddr {
        let _ = self.kill.send(true);
        let ended = self.ended.clone();
        let accepted = self.accepted.load(Ordering::Relaxed);
        eventually(
            "killed server's connections end",
            Duration::from_secs(5),
            || ended.load(Ordering::Relaxed) >= accepted,
        )
        .await;
        self.addr
    }
}

/// Sends `n` numbered text frames and checks they come back in order, byte-identical.
async fn echo_round(client: &mut Client, tag: &str, n: usize) {
    for i in 0..n {
        client.send(Message::text(format!("{tag}-{i}"))).await;
    }
    for i in 0..n {
        assert_eq!(client.next().await, Message::text(format!("{tag}-{i}")));
    }
}

async fn refused_status(proxy: &Proxy) -> u16 {
    match tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP answer, got {e}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    }
}

// ---- the chat server ----------------------------------------------------------------------------

/// Fault: the chat server is down when liyu starts, then comes up. Every attempt meanwhile gets a
/// clear 502, and liyu needs no restart to serve the next connection.
#[tokio::test]
async fn upstream_down_at_start_gets_502_until_it_comes_up() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let proxy = Proxy::start(&format!("ws://{port}"), "", JSON_CHAT).await;
    for _ in 0..3 {
        assert_eq!(refused_status(&proxy).await, 502);
    }
    let echo = Echo::start_on(port).await;
    let mut client = proxy.connect("/ws").await;
    echo_round(&mut client, "up", 20).await;
    assert!(
        proxy.state.metrics.upstream_errors.load(Ordering::Relaxed) >= 3,
        "refusals are counted"
    );
    drop(echo);
    proxy.shutdown().await;
}

/// Fault: the chat server accepts the TCP connection and drops it before the handshake.
#[tokio::test]
async fn upstream_dropping_the_handshake_gets_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let proxy = Proxy::start(&format!("ws://{addr}"), "", JSON_CHAT).await;
    assert_eq!(refused_status(&proxy).await, 502);
    proxy.shutdown().await;
}

/// Faults: the chat server dies mid-conversation (twice: once while the client is quiet, once while
/// it is sending), then restarts on the same port. Every frame relayed before the death came back
/// in order; the client is told 1011; the next connection works.
#[tokio::test]
async fn upstream_dying_mid_conversation_closes_1011_and_a_restart_serves_again() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url(), "", JSON_CHAT).await;

    let mut quiet = proxy.connect("/ws").await;
    echo_round(&mut quiet, "before", 50).await;
    let busy = proxy.connect("/ws").await;
    // The busy client keeps sending while the server dies; what comes back must be its own frames
    // in order, then 1011.
    let (mut w, mut r) = busy.ws.split();
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        while w.send(Message::text(format!("busy-{sent}"))).await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent
    });
    let reader = tokio::spawn(async move {
        let mut back = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), r.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    assert_eq!(t.as_str(), format!("busy-{back}"), "echo out of order");
                    back += 1;
                }
                Ok(Some(Ok(Message::Close(f)))) => return (code(&f), back),
                Ok(Some(Ok(_))) => {}
                Ok(_) => return (None, back),
                Err(_) => panic!("the busy client was not closed"),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = echo.kill().await;

    let (f, _) = until_close(&mut quiet, Duration::from_secs(5)).await;
    assert_eq!(code(&f), Some(CloseCode::Error), "quiet client told 1011");
    assert_eq!(f.unwrap().reason.as_str(), "upstream connection lost");
    let (busy_code, back) = reader.await.unwrap();
    assert_eq!(busy_code, Some(CloseCode::Error), "busy client told 1011");
    let sent = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("sending stops once closed")
        .unwrap();
    assert!(back > 0 && back <= sent, "{back} of {sent} echoed");

    // The server is back on the same port: new connections work, without restarting liyu.
    let _echo = Echo::start_on(addr).await;
    let mut again = proxy.connect("/ws").await;
    echo_round(&mut again, "after", 50).await;
    proxy.shutdown().await;
}

// ---- clients ------------------------------------------------------------------------------------

/// Fault: the client's connection ends without a close frame (its process killed). The chat server
/// is told 1001 at once and liyu forgets the connection.
#[tokio::test]
async fn a_client_vanishing_without_a_close_frees_both_sides() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut client = proxy.connect("/ws").await;
    let mut conn = up.accept().await;
    client.send(Message::text("last words")).await;
    assert_eq!(conn.next().await, Message::text("last words"));
    assert_eq!(
        proxy.state.metrics.open_connections.load(Ordering::Relaxed),
        1
    );
    // Drop the TCP connection under the WebSocket: no close frame.
    drop(client);
    match conn.next().await {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::Away);
            assert_eq!(f.reason.as_str(), "client connection lost");
        }
        other => panic!("expected close 1001, got {other:?}"),
    }
    let state = proxy.state.clone();
    eventually("connection forgotten", Duration::from_secs(5), || {
        state.metrics.open_connections.load(Ordering::Relaxed) == 0
    })
    .await;
    proxy.shutdown().await;
}

/// Fault: a client that goes silent (a laptop lid closed: no close, no FIN) on a connection where
/// nothing else happens is closed after `idle_timeout`, both ways with 1001; a console that only
/// listens while the chat server talks is not idle and stays open.
#[tokio::test]
async fn idle_timeout_counts_frames_either_way() {
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(
        &format!("ws://{}", up.addr),
        "idle_timeout = \"1s\"",
        JSON_CHAT,
    )
    .await;
    let mut silent = proxy.connect("/ws").await;
    let mut silent_up = up.accept().await;
    let mut listener = proxy.connect("/ws").await;
    let listener_up = up.accept().await;

    // The listening console hears a frame every 300 ms for 3 s and never sends one.
    for i in 0..10 {
        listener_up
            .tx
            .send(Message::text(format!("news {i}")))
            .unwrap();
        assert_eq!(listener.next().await, Message::text(format!("news {i}")));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Meanwhile the silent one was closed, both ways.
    let (f, _) = until_close(&mut silent, Duration::from_secs(1)).await;
    assert_eq!(code(&f), Some(CloseCode::Away));
    assert_eq!(f.unwrap().reason.as_str(), "idle timeout");
    match silent_up.next().await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected close 1001 upstream, got {other:?}"),
    }
    // And the listening console is still open.
    listener_up.tx.send(Message::text("still there")).unwrap();
    assert_eq!(listener.next().await, Message::text("still there"));
    proxy.shutdown().await;
}

/// A chat server that pushes `n` frames of `size` bytes (frame i starts with its number) to its one
/// client as fast as liyu takes them, counting those its socket accepted, and reports the close
/// frame it gets.
async fn pusher(
    n: usize,
    size: usize,
) -> (
    SocketAddr,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<Option<CloseFrame>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pushed = Arc::new(AtomicUsize::new(0));
    let (close_tx, close_rx) = mpsc::unbounded_channel();
    let count = pushed.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let (mut w, mut r) = ws.split();
        tokio::spawn(async move {
            for i in 0..n {
                let mut body = format!("{i:08}").into_bytes();
                body.resize(size, b'.');
                if w.send(Message::binary(body)).await.is_err() {
                    return;
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        while let Some(m) = r.next().await {
            match m {
                Ok(Message::Close(f)) => {
                    let _ = close_tx.send(f);
                    return;
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = close_tx.send(None);
                    return;
                }
            }
        }
        let _ = close_tx.send(None);
    });
    (addr, pushed, close_rx)
}

/// Fault: a client stops reading while the chat server pushes 256 MB at it. Policy: back-pressure
/// first (liyu reads no more from the server than it can hand on: 64 queued frames plus socket
/// buffers), then after `write_timeout` without progress the client is given up on (1008, the
/// server told 1001). Whatever the client did get is a prefix of what was sent, in order, intact.
#[tokio::test]
async fn a_client_that_stops_reading_is_back_pressured_then_closed_1008() {
    const FRAME: usize = 64 * 1024;
    const FRAMES: usize = 4096;
    let (addr, pushed, mut closed) = pusher(FRAMES, FRAME).await;
    let proxy = Proxy::start(&format!("ws://{addr}"), "write_timeout = \"2s\"", JSON_CHAT).await;
    let mut client = proxy.connect("/ws").await;
    // Not reading. The server's pushing stalls well short of the 4096 frames.
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = pushed.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    // 64 queued frames plus kernel socket buffers (a few MB each way on loopback): far below 4096.
    assert!(
        last < 1024,
        "{last} frames of 64 KiB accepted for a client that reads nothing: liyu's buffers are unbounded"
    );
    let started = Instant::now();
    let told = tokio::time::timeout(Duration::from_secs(10), closed.recv())
        .await
        .expect("the chat server is told")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let told = told.expect("a close frame, not a dropped connection");
    assert_eq!(told.code, CloseCode::Away);
    assert_eq!(told.reason.as_str(), "client too slow");

    // The client wakes up: what reaches it is the first frames, in order, intact, then the end.
    let mut got = 0usize;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), client.ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                assert_eq!(b.len(), FRAME);
                assert_eq!(
                    &b[..8],
                    format!("{got:08}").as_bytes(),
                    "frame {got} out of order"
                );
                got += 1;
            }
            Ok(Some(Ok(Message::Close(f)))) => break code(&f),
            Ok(Some(Ok(other))) => panic!("unexpected {other:?}"),
            Ok(Some(Err(_))) | Ok(None) => break None,
            Err(_) => panic!("the slow client's connection was not ended"),
        }
    };
    assert!(got <= last, "{got} received, {last} pushed");
    // The close frame reaches a client only if the socket had room for it.
    assert!(matches!(end, None | Some(CloseCode::Policy)), "{end:?}");
    let state = proxy.state.clone();
    eventually("connection forgotten", Duration::from_secs(5), || {
        state.metrics.open_connections.load(Ordering::Relaxed) == 0
    })
    .await;
    proxy.shutdown().await;
}

/// Fault: the chat server stops reading while a client sends. The client is slowed down (its sends
/// stop completing), then closed with 1011.
#[tokio::test]
async fn an_upstream_that_stops_reading_gets_the_client_closed_1011() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        // Holds the socket open and never reads it.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(ws);
    });
    let proxy = Proxy::start(&format!("ws://{addr}"), "write_timeout = \"2s\"", JSON_CHAT).await;
    let client = proxy.connect("/ws").await;
    let (mut w, mut r) = client.ws.split();
    let sent = Arc::new(AtomicUsize::new(0));
    let count = sent.clone();
    let sender = tokio::spawn(async move {
        let body = vec![b'x'; 64 * 1024];
        while w.send(Message::binary(body.clone())).await.is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let end = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match r.next().await {
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the client is closed");
    let end = end.expect("a close frame");
    assert_eq!(end.code, CloseCode::Error);
    assert_eq!(end.reason.as_str(), "upstream too slow: frames not read");
    assert!(
        sent.load(Ordering::Relaxed) < 1024,
        "back-pressure reached the client"
    );
    sender.abort();
    proxy.shutdown().await;
}

/// Fault: more clients than `max_connections`. The one past the limit waits (no error, no
/// unbounded accept) and is served as soon as another leaves.
#[tokio::test]
async fn past_max_connections_a_client_waits_for_a_free_place() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url(), "max_connections = 2", JSON_CHAT).await;
    let mut a = proxy.connect("/ws").await;
    let mut b = proxy.connect("/ws").await;
    echo_round(&mut a, "a", 3).await;
    echo_round(&mut b, "b", 3).await;
    let addr = proxy.addr;
    let third = tokio::spawn(async move {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("the third client is served");
        Client { ws }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past max_connections = 2"
    );
    a.ws.close(None).await.unwrap();
    let mut c = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a place was free")
        .unwrap();
    echo_round(&mut c, "c", 3).await;
    echo_round(&mut b, "b2", 3).await;
    proxy.shutdown().await;
}

/// Fault: 10,000 connections opened and closed in a churn, half of them closed properly and half
/// dropped. Every one relays its frame; afterwards liyu holds no connection, and the chat server
/// saw each one end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churn_of_10000_connections_leaves_nothing_open() {
    const N: usize = 10_000;
    const AT_ONCE: usize = 50;
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url(), "", JSON_CHAT).await;
    let addr = proxy.addr;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..AT_ONCE {
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= N {
                    return;
                }
                let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/churn"))
                    .await
                    .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                let text = format!("churn {i}");
                ws.send(Message::text(text.clone())).await.unwrap();
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Ok(Some(Ok(m))) => assert_eq!(m, Message::text(text)),
                    other => panic!("connection {i}: {other:?}"),
                }
                if i.is_multiple_of(2) {
                    ws.close(None).await.unwrap();
                    while let Some(Ok(_)) = ws.next().await {}
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let state = proxy.state.clone();
    eventually(
        "every connection forgotten",
        Duration::from_secs(10),
        || state.metrics.open_connections.load(Ordering::Relaxed) == 0,
    )
    .await;
    let (accepted, ended) = (echo.accepted.clone(), echo.ended.clone());
    eventually(
        "the chat server saw every connection end",
        Duration::from_secs(10),
        || ended.load(Ordering::Relaxed) == N,
    )
    .await;
    assert_eq!(accepted.load(Ordering::Relaxed), N);
    eprintln!("churn: {N} connections in {took:.1?}");
    proxy.shutdown().await;
}

// ---- bad input ----------------------------------------------------------------------------------

/// Bad input: a text frame that is not UTF-8. The client is told 1007, the chat server 1001; other
/// connections go on.
#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let mut up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut bad = proxy.connect("/ws").await;
    let mut bad_up = up.accept().await;
    let mut good = proxy.connect("/ws").await;
    let mut good_up = up.accept().await;
    let raw = Frame::message(
        b"{\"text\":\"\xe6\x9c\xff\"}".to_vec(),
        OpCode::Data(Data::Text),
        true,
    );
    bad.send(Message::Frame(raw)).await;
    let (f, _) = until_close(&mut bad, Duration::from_secs(5)).await;
    assert_eq!(code(&f), Some(CloseCode::Invalid));
    match bad_up.next().await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("the chat server got {other:?} instead of a close"),
    }
    good.send(Message::text("unaffected")).await;
    assert_eq!(good_up.next().await, Message::text("unaffected"));
    proxy.shutdown().await;
}

/// Bad input: a frame header announcing 1 TiB. liyu answers 1009 at once, before a byte of the
/// payload, so the claim costs it nothing.
#[tokio::test]
async fn a_frame_announcing_a_terabyte_closes_1009_before_any_payload() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", JSON_CHAT).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: liyu\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // FIN + text; masked, 64-bit length 2^40; the mask; no payload.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    s.write_all(&frame).await.unwrap();
    let mut reply = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut reply))
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(reply[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([reply[2], reply[3]]), 1009);
    proxy.shutdown().await;
}

/// Measures, while `work` runs, the longest round trip of another connection's frames: a stall of
/// the proxy shows up here.
async fn worst_echo_during<F: std::future::Future>(
    proxy: &Proxy,
    work: F,
) -> (F::Output, Duration) {
    let mut probe = proxy.connect("/probe").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let prober = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let mut i = 0;
        while !flag.load(Ordering::Relaxed) {
            let t = Instant::now();
            probe.send(Message::text(format!("probe {i}"))).await;
            assert_eq!(probe.next().await, Message::text(format!("probe {i}")));
            worst = worst.max(t.elapsed());
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst
    });
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    (out, prober.await.unwrap())
}

/// Bad input: JSON nested 10,000 deep, as a chat message and as a Socket.IO event. It is not
/// something liyu can read as a message, so it passes byte-identical, quickly, unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_10000_deep_passes_through_without_a_stall() {
    let echo = Echo::start().await;
    let config = format!(
        "{JSON_CHAT}\n[[messages]]\nframing = \"socketio\"\nevent = \"chat\"\ntext = \"/text\"\n"
    );
    let proxy = Proxy::start(&echo.url(), "", &config).await;
    let deep = format!(
        r#"{{"type":"message","conversation":"d","text":"有牌子,自己看","d":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_sio = format!(
        r#"42["chat",{{"text":"有牌子,自己看"}},{}{}]"#,
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let mut client = proxy.connect("/ws").await;
    let ((), worst) = worst_echo_during(&proxy, async {
        for frame in [&deep, &deep_sio] {
            let t = Instant::now();
            client.send(Message::text(frame.clone())).await;
            assert_eq!(&client.next().await, &Message::text(frame.clone()));
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        }
    })
    .await;
    assert!(
        worst < Duration::from_secs(1),
        "other traffic stalled {worst:?}"
    );
    assert!(
        client
            .maybe_next(Duration::from_millis(300))
            .await
            .is_none(),
        "no findings for what cannot be read as a message"
    );
    proxy.shutdown().await;
}

/// Bad input: a 100 MB string in a chat message. Over the limit (1 MiB by default) it is refused
/// with 1009 without stalling anyone else; under a raised limit a 5 MB one is checked to its end and
/// delivered byte-identical, again without stalling anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_string_is_refused_1009_or_checked_without_a_stall() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&echo.url(), "", JSON_CHAT).await;
    let huge = format!(
        r#"{{"type":"message","conversation":"h","text":"{}"}}"#,
        "a".repeat(100 * 1024 * 1024)
    );
    let client = proxy.connect("/ws").await;
    let (f, worst) = worst_echo_during(&proxy, async {
        let (mut w, mut r) = client.ws.split();
        // The send may fail half-way: liyu stops reading once it has seen the length.
        let sending = tokio::spawn(async move {
            let _ = w.send(Message::text(huge)).await;
        });
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(10), r.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => break f,
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        };
        sending.abort();
        end
    })
    .await;
    assert_eq!(code(&f), Some(CloseCode::Size));
    assert!(
        worst < Duration::from_secs(1),
        "other traffic stalled {worst:?}"
    );
    proxy.shutdown().await;

    let proxy = Proxy::start(&echo.url(), "max_message_bytes = 8388608", JSON_CHAT).await;
    // 5 MB of clean text, with a forbidden phrase at the very end.
    let text = format!("{}有牌子,自己看", "请您稍等。".repeat(5 * 1024 * 1024 / 15));
    let frame = chat(1, "h", &text).to_string();
    let mut client = proxy.connect("/ws").await;
    let (findings, worst) = worst_echo_during(&proxy, async {
        let t = Instant::now();
        client.send(Message::text(frame.clone())).await;
        let mut echoed = false;
        let mut findings = None;
        while !(echoed && findings.is_some()) {
            match client.next().await {
                Message::Text(t) if t.as_str() == frame => echoed = true,
                Message::Text(t) => {
                    findings = Some(serde_json::from_str::<Value>(t.as_str()).unwrap())
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        findings.unwrap()
    })
    .await;
    assert_eq!(findings["type"], "liyu.findings");
    assert_eq!(findings["findings"][0]["matched"], "有牌子,自己看");
    assert!(
        worst < Duration::from_secs(1),
        "other traffic stalled {worst:?}"
    );
    proxy.shutdown().await;
}

/// Bad input: Socket.IO binary events that announce attachments which never come (and a binary
/// frame that belongs to none). liyu does not wait for them and does not read them as messages:
/// they pass untouched, and the next real event is checked.
#[tokio::test]
async fn socketio_frames_lying_about_attachments_pass_untouched() {
    let mut up = Upstream::start().await;
    let config = "[[messages]]\nframing = \"socketio\"\nevent = \"chat\"\ntext = \"/body\"\n";
    let proxy = Proxy::start(&format!("ws://{}", up.addr), "", config).await;
    let mut agent = proxy.connect("/socket.io/?EIO=4&transport=websocket").await;
    let mut conn = up.accept().await;
    let lies = [
        Message::text(r#"451-["chat",{"body":"有牌子,自己看"}]"#),
        Message::text(r#"4599999999999999999999-["chat",{"body":"去死吧"}]"#),
        Message::text(r#"45-1-["chat",{"body":"去死吧"}]"#),
        Message::text(r#"452-/ns,7["chat",{"_placeholder":true,"num":5}]"#),
        Message::binary(vec![4, 0xff, 0, 1]),
    ];
    for m in &lies {
        agent.send(m.clone()).await;
        assert_eq!(&conn.next().await, m);
    }
    assert!(agent.maybe_next(Duration::from_millis(300)).await.is_none());
    let real = r#"42["chat",{"body":"没看我正忙着吗"}]"#;
    agent.send(Message::text(real)).await;
    assert_eq!(conn.next().await, Message::text(real));
    match agent.next().await {
        Message::Text(t) => assert!(t.as_str().starts_with(r#"42["liyu.findings","#), "{t}"),
        other => panic!("expected findings, got {other:?}"),
    }
    proxy.shutdown().await;
}

/// A raw HTTP/1.1 POST: (status, body).
async fn post_raw(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: liyu\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text[9..12].parse().unwrap();
    (
        status,
        text.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string(),
    )
}

/// Bad input: bodies that are not JSON on a checked HTTP route. Annotating, they are forwarded
/// byte-identical (liyu cannot read them, so it does not change them); blocking, they are refused
/// with 400 and a reason, and never reach the chat server.
#[tokio::test]
async fn a_body_that_is_not_json_on_a_checked_route() {
    let route = "[[routes]]\nmethod = \"POST\"\npath = \"/api/messages\"\ntext = \"/content\"\n";
    let bodies: [&[u8]; 4] = [
        b"content=%E6%9C%89%E7%89%8C%E5%AD%90",
        b"{\"content\": \"unterminated",
        b"\xff\xfe not utf-8",
        b"",
    ];
    let (http, mut seen) = crate::harness::http_upstream().await;
    let proxy = Proxy::start(&format!("http://{http}"), "", route).await;
    for body in bodies {
        let (status, _) = post_raw(proxy.addr, "/api/messages", body).await;
        assert_eq!(status, 201);
        let got = seen.recv().await.unwrap();
        assert_eq!(&got.3[..], body, "forwarded byte-identical");
    }
    proxy.shutdown().await;

    let proxy = Proxy::start(
        &format!("http://{http}"),
        "",
        &format!("[check]\nmode = \"block\"\n{route}"),
    )
    .await;
    for body in bodies {
        let (status, answer) = post_raw(proxy.addr, "/api/messages", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("not JSON"), "{answer}");
    }
    assert!(
        seen.try_recv().is_err(),
        "nothing unreadable reached the chat server"
    );
    proxy.shutdown().await;
}

// ---- the findings store -------------------------------------------------------------------------

/// A tmpfs of `size` mounted at a fresh directory (a disk that can really fill up), unmounted on
/// drop. Needs root, as tests/run.sh and CI have.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = crate::process::temp_dir("tmpfs");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (the disk-full test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("ballast");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP relay to a real server that can be cut (every connection reset, new ones refused) and
/// restored: the server "unreachable" without touching it.
struct Cuttable {
    addr: SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cuttable {
    async fn start(target: String) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_up, list) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(task.abort_handle());
            }
        });
        Cuttable { addr, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// What a store fault test needs from the fault: where the store is, how to break it, how to mend it.
struct StoreFault {
    url: String,
    inject: Box<dyn FnOnce() -> Box<dyn FnOnce() + Send> + Send>,
}

/// The common course of a store fault: the fault is injected, 100 flagged messages go through
/// liyu (every one delivered at once, byte-identical, annotated), 12,000 more events overflow the
/// store's queue; the fault is cleared. Then every event is either written or counted as dropped
/// (none lost silently), the metrics endpoint shows the drops, and every finding of the 100
/// messages is in the store.
async fn a_store_fault_is_survived(fault: StoreFault) {
    use liyu::store::{Filter, StoreEvent};
    const MESSAGES: usize = 100;
    const OVERFLOW: usize = 12_000;
    let mut up = Upstream::start().await;
    let proxy = Proxy::start_admin(&format!("ws://{}", up.addr), &fault.url, JSON_CHAT).await;
    let store = proxy.state.store().unwrap().clone();
    let m = store.metrics.clone();
    let mut agent = proxy.connect("/ws").await;
    let mut conn = up.accept().await;

    let clear = (fault.inject)();
    let started = Instant::now();
    let mut findings = 0;
    for i in 0..MESSAGES {
        let frame = chat(i as u64, "store-fault", &format!("您好,有牌子,自己看 {i}")).to_string();
        let t = Instant::now();
        agent.send(Message::text(frame.clone())).await;
        assert_eq!(
            conn.next().await,
            Message::text(frame),
            "delivered byte-identical"
        );
        let annotation = agent.next_json().await;
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "message {i} waited {:?}",
            t.elapsed()
        );
        findings += annotation["findings"].as_array().unwrap().len();
    }
    eprintln!(
        "{MESSAGES} messages through a broken store in {:?}",
        started.elapsed()
    );
    for _ in 0..OVERFLOW {
        store.submit(StoreEvent::Checked {
            at_ms: liyu::proxy::now_ms(),
            agent: "overflow".into(),
        });
    }
    let total = (2 * MESSAGES + OVERFLOW) as u64;
    eventually(
        "the store reports the failure",
        Duration::from_secs(30),
        || m.errors.load(Ordering::Relaxed) > 0,
    )
    .await;
    assert_eq!(
        m.written.load(Ordering::Relaxed),
        0,
        "nothing written while broken"
    );
    let dropped = m.dropped.load(Ordering::Relaxed);
    assert!(dropped > 0, "a full queue drops and counts");

    clear();
    eventually(
        "writing resumes and the queue drains",
        Duration::from_secs(60),
        || {
            m.written.load(Ordering::Relaxed) + m.dropped.load(Ordering::Relaxed) == total
                && m.queued.load(Ordering::Relaxed) == 0
        },
    )
    .await;
    assert_eq!(
        m.dropped.load(Ordering::Relaxed),
        dropped,
        "no drops once mended"
    );
    let admin = proxy.admin.unwrap();
    assert_eq!(
        crate::process::metric(admin, "liyu_store_dropped_total").await,
        dropped as f64
    );
    let stored = store
        .read(|b| {
            b.findings(&Filter {
                conversation: Some("store-fault".into()),
                limit: Some(500),
                ..Filter::default()
            })
        })
        .await
        .unwrap();
    assert_eq!(
        stored.items.len(),
        findings,
        "every finding of every message is stored"
    );
    eprintln!(
        "store fault: {total} events, {} written, {dropped} dropped and counted",
        m.written.load(Ordering::Relaxed)
    );
    proxy.shutdown().await;
}

/// Fault: another process holds the SQLite database's write lock (a backup, a stuck migration).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_store() {
    let url = temp_sqlite();
    let path = url.strip_prefix("sqlite:").unwrap().to_string();
    a_store_fault_is_survived(StoreFault {
        url,
        inject: Box::new(move || {
            let (locked_tx, locked_rx) = std::sync::mpsc::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                let c = rusqlite::Connection::open(&path).unwrap();
                c.execute_batch("BEGIN EXCLUSIVE").unwrap();
                locked_tx.send(()).unwrap();
                let _ = release_rx.recv();
                c.execute_batch("COMMIT").unwrap();
            });
            locked_rx.recv().unwrap();
            Box::new(move || {
                release_tx.send(()).unwrap();
                holder.join().unwrap();
            })
        }),
    })
    .await;
}

/// Fault: the disk holding the SQLite database is full (a real file system, filled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_sqlite_store() {
    let disk = Arc::new(Tmpfs::mount("8m"));
    let url = format!("sqlite:{}", disk.0.join("findings.db").display());
    let d = disk.clone();
    a_store_fault_is_survived(StoreFault {
        url,
        inject: Box::new(move || {
            let ballast = d.fill();
            Box::new(move || std::fs::remove_file(ballast).unwrap())
        }),
    })
    .await;
    drop(disk);
}

/// Fault: the PostgreSQL server becomes unreachable (connections reset, new ones refused), then
/// reachable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_store() {
    let base = std::env::var("LIYU_TEST_POSTGRES").expect(
        "LIYU_TEST_POSTGRES is not set: this test needs a PostgreSQL server (tests/run.sh starts one)",
    );
    let schema = format!("liyu_fault_{}", std::process::id());
    let (b, s) = (base.clone(), schema.clone());
    tokio::task::spawn_blocking(move || {
        let mut c = ::postgres::Client::connect(&b, ::postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}"
        ))
        .unwrap();
    })
    .await
    .unwrap();
    // postgres://user@HOST:PORT/db… → the same through the relay.
    let after_at = base.split_once('@').expect("a user in the URL").1;
    let (server, rest) = after_at.split_once('/').unwrap();
    let relay = Arc::new(Cuttable::start(server.to_string()).await);
    let prefix = &base[..base.len() - after_at.len()];
    let sep = if rest.contains('?') { '&' } else { '?' };
    let url = format!(
        "{prefix}{}/{rest}{sep}options=-c%20search_path%3D{schema}&connect_timeout=2",
        relay.addr
    );
    let r = relay.clone();
    a_store_fault_is_survived(StoreFault {
        url,
        inject: Box::new(move || {
            r.cut();
            Box::new(move || r.restore())
        }),
    })
    .await;
    tokio::task::spawn_blocking(move || {
        let mut c = ::postgres::Client::connect(&base, ::postgres::NoTls).unwrap();
        let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
    })
    .await
    .unwrap();
}

// ---- the lexicon, replaced while traffic flows ---------------------------------------------------

/// Fault: a lexicon file is replaced by a broken one while 20 agents chat. liyu's watcher (the real
/// one, in the real binary) keeps the running lexicon, logs the error and shows it in
/// `/v1/lexicon` with file and line; when the file is mended it loads it. No message is lost,
/// reordered or left unchecked meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lexicon_broken_while_traffic_flows_keeps_the_running_one() {
    const AGENTS: usize = 20;
    let dir = crate::process::temp_dir("lexicon-swap");
    let lexicons = dir.join("lexicons");
    std::fs::create_dir_all(&lexicons).unwrap();
    for f in std::fs::read_dir(crate::util::repo("lexicons")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, lexicons.join(p.file_name().unwrap())).unwrap();
        }
    }
    let good = std::fs::read(lexicons.join("impatience.toml")).unwrap();
    let mut up = Upstream::start().await;
    let served = crate::process::Served::start(
        &format!("ws://{}", up.addr),
        "",
        &format!(
            "[check]\nlexicons = \"{}\"\n{JSON_CHAT}",
            lexicons.display()
        ),
        "info",
        dir,
    );
    let admin = served.admin;
    let lexicon = || async move {
        let (status, _, body) = crate::api::call(
            admin,
            "GET",
            "/v1/lexicon",
            Some(&format!("Authorization: Bearer {TOKEN}")),
            None,
        )
        .await;
        assert_eq!(status, 200);
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let before = lexicon().await;
    assert_eq!(before["version"], 1);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut agents = Vec::new();
    for a in 0..AGENTS {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws?agent={a}", served.proxy))
                .await
                .unwrap();
        let mut client = Client { ws };
        let mut conn = up.accept().await;
        let stop = stop.clone();
        agents.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Every other message breaks an impatience rule: the file being replaced.
                let text = if sent.is_multiple_of(2) {
                    "您好,快点,我要下班了"
                } else {
                    "您好,请稍等"
                };
                let frame = chat(sent, &format!("lex-{a}"), text).to_string();
                client.send(Message::text(frame.clone())).await;
                assert_eq!(
                    conn.next().await,
                    Message::text(frame),
                    "agent {a} message {sent}"
                );
                if sent.is_multiple_of(2) {
                    let f = client.next_json().await;
                    assert_eq!(f["message_id"], sent);
                    assert_eq!(
                        f["findings"][0]["category"], "impatience",
                        "checked with the running lexicon"
                    );
                }
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(
        lexicons.join("impatience.toml"),
        "category = \"impatience\"\n[[rule]]\nid = 3\n",
    )
    .unwrap();
    let broken = {
        let start = Instant::now();
        loop {
            let l = lexicon().await;
            if !l["last_error"].is_null() {
                break l;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the broken file was not noticed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let error = broken["last_error"].as_str().unwrap();
    assert!(error.contains("impatience.toml:3:"), "{error}");
    assert_eq!(
        broken["rules"], before["rules"],
        "the running lexicon stays"
    );
    assert_eq!(broken["version"], 1);
    served
        .wait_for_log("lexicon reload failed", Duration::from_secs(5))
        .await;
    assert!(
        served.log().contains("impatience.toml:3:"),
        "the log names the file and line"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::write(lexicons.join("impatience.toml"), &good).unwrap();
    let start = Instant::now();
    loop {
        let l = lexicon().await;
        if l["last_error"].is_null() && l["version"].as_u64().unwrap() >= 2 {
            assert_eq!(l["rules"], before["rules"]);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the mended file was not loaded: {l}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for a in agents {
        total += a.await.unwrap();
    }
    assert!(total > AGENTS as u64 * 20, "only {total} messages");
    eprintln!("lexicon swap: {total} messages, none lost, all checked");
}

// ---- SIGTERM under load -------------------------------------------------------------------------

/// Fault: SIGTERM to the real binary while 50 agents send and the chat server pushes to them. Every
/// frame liyu took is delivered whole and in order (what arrives is a prefix of what was sent, both
/// ways), every connection is answered with close 1001 both ways, and liyu exits 0 within its drain
/// time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_it_accepted() {
    const CLIENTS: usize = 50;
    let mut up = Upstream::start().await;
    let mut served = crate::process::Served::start(
        &format!("ws://{}", up.addr),
        "drain_timeout = \"5s\"",
        JSON_CHAT,
        "info",
        crate::process::temp_dir("sigterm"),
    );
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for c in 0..CLIENTS {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?c={c}", served.proxy))
            .await
            .unwrap();
        let mut conn = up.accept().await;
        // The chat server's side: pushes down-N every 5 ms and keeps what it receives.
        servers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut pushed = 0u64;
            loop {
                tokio::select! {
                    m = conn.rx.recv() => match m {
                        Some(Message::Close(f)) => return (got, code(&f), pushed),
                        Some(m) => got.push(m),
                        None => return (got, None, pushed),
                    },
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {
                        if conn.tx.send(Message::text(format!("down-{pushed}"))).is_ok() {
                            pushed += 1;
                        }
                    }
                }
            }
        }));
        let (mut w, mut r) = ws.split();
        let reader = tokio::spawn(async move {
            let mut down = 0u64;
            loop {
                match tokio::time::timeout(Duration::from_secs(15), r.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        assert_eq!(
                            t.as_str(),
                            format!("down-{down}"),
                            "client {c}: out of order"
                        );
                        down += 1;
                    }
                    Ok(Some(Ok(Message::Close(f)))) => return (code(&f), down),
                    Ok(Some(Ok(_))) => {}
                    Ok(_) => return (None, down),
                    Err(_) => panic!("client {c} was never closed"),
                }
            }
        });
        let writer = tokio::spawn(async move {
            let mut sent = Vec::new();
            loop {
                let frame = chat(
                    sent.len() as u64,
                    &format!("term-{c}"),
                    "您好,请您稍等,马上为您办理",
                )
                .to_string();
                if w.send(Message::text(frame.clone())).await.is_err() {
                    return sent;
                }
                sent.push(frame);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        });
        clients.push((reader, writer));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    served.sigterm();
    let status = served.wait(Duration::from_secs(10)).await;
    assert!(status.success(), "liyu exited with {status}");
    let (mut up_frames, mut down_frames) = (0, 0);
    for (c, ((reader, writer), server)) in clients.into_iter().zip(servers).enumerate() {
        let (client_close, down) = reader.await.unwrap();
        let sent = writer.await.unwrap();
        let (got, server_close, pushed) = server.await.unwrap();
        assert_eq!(
            client_close,
            Some(CloseCode::Away),
            "client {c} answered with 1001"
        );
        assert_eq!(
            server_close,
            Some(CloseCode::Away),
            "chat server {c} told 1001"
        );
        assert!(got.len() <= sent.len(), "client {c}");
        for (i, m) in got.iter().enumerate() {
            assert_eq!(
                m,
                &Message::text(sent[i].clone()),
                "client {c} frame {i}: lost, reordered or cut"
            );
        }
        assert!(down <= pushed);
        up_frames += got.len();
        down_frames += down;
    }
    assert!(
        up_frames > CLIENTS * 50,
        "too little load: {up_frames} frames"
    );
    eprintln!("SIGTERM under load: {up_frames} frames up and {down_frames} down delivered whole, every connection closed 1001");
}
