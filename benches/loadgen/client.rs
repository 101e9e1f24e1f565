//! The clients: N WebSocket connections sending chat frames and timing each frame's echo.
//!
//! Two ways to load a set-up:
//! - closed loop (saturation): every connection keeps a fixed number of frames in flight and sends
//!   the next one as soon as an echo returns, so the slowest stage sets the pace;
//! - open loop (latency): one pacer thread schedules frames at a fixed total rate, round-robin over
//!   the connections, whatever the replies do. A frame's latency is counted from when it was
//!   *scheduled*, so a stalled proxy cannot hide its backlog by slowing the sender down.
//!
//! Echoes come back in order on each connection (one TCP stream, relayed frame by frame), so each
//! connection matches them with a FIFO of send times; liyu's own frames (findings, nudges) are
//! skipped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::procs;

/// A client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Small buffers: ten thousand idle client connections must not cost the load generator gigabytes.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(1 << 20)
}

/// The `host:port` of a `ws://host:port/path` URL.
fn socket_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .parse()
        .map_err(|e| format!("{url}: {authority} is not an ip:port: {e}"))
}

/// Opens one WebSocket (Nagle off, as every proxy under test does on its own sockets).
pub async fn connect(url: &str) -> Result<Ws, String> {
    let addr = socket_addr(url)?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("nodelay {addr}: {e}"))?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
        .await
        .map_err(|e| format!("handshake {url}: {e}"))?;
    Ok(ws)
}

/// Opens `n` WebSockets, `parallel` handshakes at a time (a burst of thousands of SYNs overflows the
/// listen backlog and costs seconds of retransmits).
pub async fn connect_many(url: &str, n: usize, parallel: usize) -> Result<Vec<Ws>, String> {
    let url = url.to_string();
    let results: Vec<Result<Ws, String>> = futures_util::stream::iter(0..n)
        .map(|_| {
            let url = url.clone();
            async move { connect(&url).await }
        })
        .buffered(parallel.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// Whether a frame is one of liyu's own (findings, nudges), not an echo.
fn is_liyu_frame(text: &str) -> bool {
    text.starts_with("{\"type\":\"liyu.")
}

/// What a received frame means to a client: `Ok(true)` an echo, `Ok(false)` something to skip
/// (liyu's own frames, control frames), `Err` the end of the connection.
fn echo_of(
    received: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<bool, String> {
    match received {
        Some(Ok(Message::Text(t))) => Ok(!is_liyu_frame(t.as_str())),
        Some(Ok(Message::Binary(_))) => Ok(true),
        Some(Ok(_)) => Ok(false),
        Some(Err(e)) => Err(format!("receive: {e}")),
        None => Err("closed by the peer".into()),
    }
}

/// The chat frames sent: every line of `benches/data/chat.txt`, as the JSON frames of the json-chat
/// example (`{"type":"message","id",…,"text"}`), so a checking proxy decodes and checks them all.
pub struct Frames {
    /// The texts, already JSON-quoted.
    texts: Vec<String>,
}

impl Frames {
    pub fn load() -> Result<Frames, String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/chat.txt");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let texts: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::to_string(l).unwrap_or_default())
            .collect();
        if texts.is_empty() {
            return Err(format!("{} has no messages", path.display()));
        }
        Ok(Frames { texts })
    }

    /// The `seq`-th frame of connection `conn`: its own conversation, one of 64 agents, and a walk
    /// through the corpus that differs per connection.
    pub fn frame(&self, conn: usize, seq: u64) -> Message {
        let i = (conn.wrapping_mul(7919) + seq as usize) % self.texts.len();
        Message::text(format!(
            "{{\"type\":\"message\",\"id\":{seq},\"conversation\":\"c{conn}\",\"sender\":\"agent{}\",\"text\":{}}}",
            conn % 64,
            self.texts[i]
        ))
    }
}

/// How a run loads its connections.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// Each connection keeps this many frames in flight.
    Closed { in_flight: usize },
    /// This many frames per second in total, spread evenly over the connections.
    Open { rate: f64 },
}

/// The timing of one run: warm-up, then the measured window.
#[derive(Clone, Copy)]
struct Window {
    warm_until: Instant,
    stop_at: Instant,
}

#[derive(Default)]
struct ConnStats {
    /// Echoes received in the measured window.
    completed: u64,
    /// Latencies of the frames scheduled in the measured window, in µs (open loop only).
    latencies_us: Vec<u32>,
    /// Frames never answered.
    unanswered: u64,
    error: Option<String>,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct RunResult {
    /// Echoes per second in the measured window.
    pub per_sec: f64,
    /// Echoes counted.
    pub completed: u64,
    /// Open loop: latencies in µs, sorted.
    pub latencies_us: Vec<u32>,
    /// Frames never answered (or lost to errors).
    pub unanswered: u64,
    /// Connections that failed.
    pub errors: Vec<String>,
    /// CPU time of the watched processes in the measured window, µs.
    pub cpu_us: Option<f64>,
}

impl RunResult {
    /// The `q`-quantile of the latencies, µs.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        Some(self.latencies_us[i] as f64)
    }

    /// CPU-µs of the watched processes per echoed frame.
    pub fn cpu_per_msg(&self) -> Option<f64> {
        let cpu = self.cpu_us?;
        (self.completed > 0).then(|| cpu / self.completed as f64)
    }
}

/// Runs one load over `conns`, measuring `measure` after `warm`, and the CPU time of `pids` over the
/// same window. The connections are handed back for the next run (those that failed are dropped).
pub async fn run(
    conns: Vec<Ws>,
    frames: &Arc<Frames>,
    load: Load,
    warm: Duration,
    measure: Duration,
    pids: &[u32],
) -> (Vec<Ws>, RunResult) {
    // A short lead so every connection task is running before the first frame is due.
    let start = Instant::now() + Duration::from_millis(50);
    let window = Window {
        warm_until: start + warm,
        stop_at: start + warm + measure,
    };
    let n = conns.len();
    let mut tasks = tokio::task::JoinSet::new();
    let mut senders = Vec::new();
    for (i, ws) in conns.into_iter().enumerate() {
        let frames = frames.clone();
        let pace = match load {
            Load::Closed { in_flight } => Pace::Closed(in_flight),
            Load::Open { .. } => {
                let (tx, rx) = mpsc::unbounded_channel();
                senders.push(tx);
                Pace::Open(rx)
            }
        };
        tasks.spawn(async move {
            let mut stats = ConnStats::default();
            let ws = drive(ws, i, &frames, pace, window, start, &mut stats).await;
            (i, ws, stats)
        });
    }
    let pacer = match load {
        Load::Open { rate } => Some(std::thread::spawn(move || {
            pace(senders, rate, start, window.stop_at)
        })),
        Load::Closed { .. } => None,
    };

    sleep_until(window.warm_until.into()).await;
    let cpu_before = procs::cpu_ticks(pids);
    sleep_until(window.stop_at.into()).await;
    let cpu_after = procs::cpu_ticks(pids);
    if let Some(p) = pacer {
        let _ = p.join();
    }

    let mut result = RunResult::default();
    let mut back = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, ws, stats)) = joined else {
            result.errors.push("a connection task panicked".into());
            continue;
        };
        result.completed += stats.completed;
        result.unanswered += stats.unanswered;
        result.latencies_us.extend(stats.latencies_us);
        if let Some(e) = stats.error {
            result.errors.push(format!("connection {i}: {e}"));
        }
        if let Some(ws) = ws {
            back.push(ws);
        }
    }
    result.latencies_us.sort_unstable();
    result.per_sec = result.completed as f64 / measure.as_secs_f64();
    if !pids.is_empty() {
        result.cpu_us = Some(cpu_after.saturating_sub(cpu_before) as f64 * procs::us_per_tick());
    }
    (back, result)
}

enum Pace {
    Closed(usize),
    Open(mpsc::UnboundedReceiver<Instant>),
}

/// How long after the measured window a connection waits for its last echoes.
const DRAIN: Duration = Duration::from_secs(3);

/// One connection's part of a run. Returns the connection if it is still usable.
async fn drive(
    mut ws: Ws,
    conn: usize,
    frames: &Frames,
    pace: Pace,
    w: Window,
    start: Instant,
    stats: &mut ConnStats,
) -> Option<Ws> {
    let mut in_flight: VecDeque<Instant> = VecDeque::new();
    let mut seq: u64 = 0;
    let drain_until = w.stop_at + DRAIN;
    let fail = |stats: &mut ConnStats, what: String| {
        stats.error = Some(what);
        None
    };
    match pace {
        Pace::Closed(window) => {
            sleep_until(start.into()).await;
            for _ in 0..window.max(1) {
                in_flight.push_back(Instant::now());
                seq += 1;
                if let Err(e) = ws.feed(frames.frame(conn, seq)).await {
                    return fail(stats, format!("send: {e}"));
                }
            }
            if let Err(e) = ws.flush().await {
                return fail(stats, format!("send: {e}"));
            }
            while !in_flight.is_empty() {
                let next = tokio::select! {
                    m = ws.next() => m,
                    _ = sleep_until(drain_until.into()) => {
                        stats.unanswered += in_flight.len() as u64;
                        return fail(stats, "echoes missing after the run".into());
                    }
                };
                match echo_of(next) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => return fail(stats, e),
                }
                in_flight.pop_front();
                let now = Instant::now();
                if now >= w.warm_until && now < w.stop_at {
                    stats.completed += 1;
                }
                if now < w.stop_at {
                    in_flight.push_back(now);
                    seq += 1;
                    if let Err(e) = ws.send(frames.frame(conn, seq)).await {
                        return fail(stats, format!("send: {e}"));
                    }
                }
            }
        }
        Pace::Open(mut schedule) => {
            let mut open = true;
            loop {
                if !open && in_flight.is_empty() {
                    break;
                }
                tokio::select! {
                    biased;
                    due = schedule.recv(), if open => {
                        let Some(due) = due else {
                            open = false;
                            continue;
                        };
                        // Whatever else is already due goes out in the same write.
                        let mut next = Some(due);
                        while let Some(due) = next {
                            in_flight.push_back(due);
                            seq += 1;
                            if let Err(e) = ws.feed(frames.frame(conn, seq)).await {
                                return fail(stats, format!("send: {e}"));
                            }
                            next = schedule.try_recv().ok();
                        }
                        if let Err(e) = ws.flush().await {
                            return fail(stats, format!("send: {e}"));
                        }
                    }
                    m = ws.next() => {
                        match echo_of(m) {
                            Ok(true) => {}
                            Ok(false) => continue,
                            Err(e) => return fail(stats, e),
                        }
                        let Some(due) = in_flight.pop_front() else {
                            return fail(stats, "an echo of a frame never sent".into());
                        };
                        if due >= w.warm_until {
                            let us = due.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            stats.latencies_us.push(us);
                            stats.completed += 1;
                        }
                    }
                    _ = sleep_until(drain_until.into()), if !open => {
                        stats.unanswered += in_flight.len() as u64;
                        return fail(stats, "echoes missing after the run".into());
                    }
                }
            }
        }
    }
    Some(ws)
}

/// The open loop's pacer: frame `k` is due at `start + k / rate`, on connection `k mod n`. Runs on a
/// thread of its own with a fine timer slack, so the schedule does not inherit tokio's
/// one-millisecond timer wheel (which would send bursts and time the bursts' queueing).
fn pace(senders: Vec<mpsc::UnboundedSender<Instant>>, rate: f64, start: Instant, stop: Instant) {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack (50 µs by default).
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000u64, 0u64, 0u64, 0u64);
    }
    let n = senders.len() as u64;
    if n == 0 || rate <= 0.0 {
        return;
    }
    let due = |k: u64| start + Duration::from_nanos((k as f64 * 1e9 / rate) as u64);
    let mut k: u64 = 0;
    loop {
        let next = due(k);
        if next >= stop {
            break;
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let now = Instant::now();
        while due(k) <= now && due(k) < stop {
            // A connection that failed has dropped its receiver; the others go on.
            let _ = senders[(k % n) as usize].send(due(k));
            k += 1;
        }
    }
}

/// Sends one frame on each connection and waits for its echo (sessions that have chatted once, then
/// sit idle). All frames go out first, then the echoes are read. Returns how many answered.
pub async fn exchange_once(conns: &mut [Ws], frames: &Frames) -> usize {
    let mut sent = vec![false; conns.len()];
    for (i, ws) in conns.iter_mut().enumerate() {
        sent[i] = ws.send(frames.frame(i, 1)).await.is_ok();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = 0;
    for (ws, _) in conns.iter_mut().zip(sent).filter(|(_, s)| *s) {
        loop {
            let m = tokio::select! {
                m = ws.next() => m,
                _ = sleep_until(deadline.into()) => None,
            };
            match echo_of(m) {
                Ok(true) => {
                    answered += 1;
                    break;
                }
                Ok(false) => continue,
                Err(_) => break,
            }
        }
    }
    answered
}
