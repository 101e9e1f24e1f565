//! `liyu serve`: the proxy in front of an existing chat system.
//!
//! One listener takes both WebSocket upgrades and plain HTTP (hyper, HTTP/1.1). A WebSocket is
//! connected to the same path on the upstream and then relayed frame by frame ([`ws`]); an HTTP
//! request is reverse-proxied, and checked first when it matches a configured route ([`http`]).
//! Which frames are chat messages is configured, not guessed ([`codec`]).
//!
//! Shared by every connection, in [`State`]: the checker (swapped whole on reload), the conversation
//! clocks, a registry of open agent connections (so findings and nudges produced elsewhere reach the
//! right console), and the live feed of records. Entry points take a bound listener and a shutdown
//! future, so tests bind port 0 and run in parallel.

pub mod codec;
pub mod http;
pub mod ws;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch, Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::check::{mask_numbers, Checker, Finding, Lexicon};
use crate::config::Config;
use crate::conversation::{Conversations, Event};
use crate::store::{ContextMessage, StoreEvent, StoreHandle};
use codec::Framing;

/// What happened to a checked message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Forwarded (with its findings shown to the agent).
    Delivered,
    /// Held back: it never reached the customer.
    Blocked,
    /// Held back once, then sent anyway by the agent.
    Overridden,
    /// Not a message of its own: a conversation finding (slow reply, missing farewell).
    Recorded,
}

/// One checked message with findings, as it goes to the live feed and the store.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Conversation id, when the frame or route carries one.
    pub conversation: Option<String>,
    /// Agent (sender) id, when known.
    pub agent: Option<String>,
    /// The chat system's message id, echoed.
    pub message_id: Option<Value>,
    /// The message text (empty for conversation-level records).
    pub text: String,
    /// Delivered, blocked, overridden or recorded.
    pub action: Action,
    /// What was found.
    pub findings: Vec<Finding>,
}

impl Record {
    /// The frame an agent's console receives for this record.
    pub fn frame(&self) -> Value {
        json!({
            "type": "liyu.findings",
            "message_id": self.message_id,
            "conversation": self.conversation,
            "action": self.action,
            "findings": self.findings,
        })
    }
}

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Agent messages checked.
    pub messages_checked: AtomicU64,
    /// Customer messages seen.
    pub customer_messages: AtomicU64,
    /// Messages held back.
    pub blocked: AtomicU64,
    /// Findings produced.
    pub findings: AtomicU64,
    /// Open proxied connections.
    pub open_connections: AtomicUsize,
    /// Upstream connection failures.
    pub upstream_errors: AtomicU64,
    /// Frames relayed.
    pub frames: AtomicU64,
    /// Check latency histogram: counts per bucket of [`CHECK_BUCKETS`] (and one past the last).
    pub check_buckets: [AtomicU64; CHECK_BUCKETS.len() + 1],
    /// Sum of check times, in nanoseconds.
    pub check_nanos: AtomicU64,
    /// Findings by (category, severity), for the metrics endpoint.
    pub findings_by: Mutex<HashMap<(String, String), u64>>,
}

/// Upper bounds of the check latency histogram, in seconds.
pub const CHECK_BUCKETS: [f64; 8] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.1,
];

impl Metrics {
    /// Records one check's duration.
    pub fn observe_check(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = CHECK_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(CHECK_BUCKETS.len());
        self.check_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.check_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// An open connection to an agent's console that liyu can write to.
#[derive(Clone, Debug)]
pub(crate) struct AgentConn {
    id: u64,
    tx: mpsc::Sender<Message>,
    framing: Framing,
    namespace: Option<String>,
}

impl AgentConn {
    /// Queues one of liyu's events for the console; dropped if its queue is full (the console is not
    /// reading, and liyu's own frames must never hold up the chat).
    fn send_event(&self, event: &Value) {
        let text = codec::encode_event_for(self.framing, self.namespace.as_deref(), event);
        let _ = self.tx.try_send(Message::text(text));
    }
}

#[derive(Default)]
struct Registry {
    by_agent: HashMap<String, Vec<AgentConn>>,
    by_conversation: HashMap<String, Vec<AgentConn>>,
}

impl Registry {
    fn add(map: &mut HashMap<String, Vec<AgentConn>>, key: &str, conn: &AgentConn) {
        // Called for every chat frame, and nearly always for a connection already registered under
        // this key: look it up without allocating the key, and leave an unchanged entry alone.
        let Some(list) = map.get_mut(key) else {
            map.insert(key.to_string(), vec![conn.clone()]);
            return;
        };
        match list.iter_mut().find(|c| c.id == conn.id) {
            Some(c) => {
                if c.framing != conn.framing || c.namespace != conn.namespace {
                    *c = conn.clone();
                }
            }
            None => list.push(conn.clone()),
        }
    }

    fn remove(&mut self, id: u64) {
        for map in [&mut self.by_agent, &mut self.by_conversation] {
            map.retain(|_, list| {
                list.retain(|c| c.id != id);
                !list.is_empty()
            });
        }
    }
}

/// The lexicon in use and the outcome of the last reload.
#[derive(Clone, Debug, Serialize)]
pub struct LexiconStatus {
    /// Rules loaded.
    pub rules: usize,
    /// Where they came from ("built-in" or the folder).
    pub source: String,
    /// When the running checker was built (ms since the epoch).
    pub loaded_at_ms: u64,
    /// How long building it took.
    pub build_ms: u64,
    /// How many successful loads so far (1 = the initial load).
    pub version: u64,
    /// The last reload's error, if it failed (the previous lexicon stays in use).
    pub last_error: Option<String>,
}

/// Everything the connections share.
pub struct State {
    /// The configuration.
    pub config: Config,
    checker: RwLock<Arc<Checker>>,
    lexicon: Mutex<LexiconStatus>,
    conversations: Mutex<Conversations>,
    clock_changed: Notify,
    registry: Mutex<Registry>,
    /// Live feed of records (findings), for the store and the event stream.
    pub records: broadcast::Sender<Arc<Record>>,
    /// Counters.
    pub metrics: Metrics,
    next_conn: AtomicU64,
    http_client: http::Client,
    store: OnceLock<StoreHandle>,
    /// The last few messages of each conversation (masked), for the context of stored findings.
    recent: Mutex<HashMap<String, VecDeque<ContextMessage>>>,
}

/// Messages of context kept per conversation.
const CONTEXT_MESSAGES: usize = 5;
/// Conversations whose context is kept; past this the oldest half is forgotten.
const CONTEXT_CONVERSATIONS: usize = 20_000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn load_checker(dir: Option<&Path>) -> Result<Checker, String> {
    let lexicon = match dir {
        Some(d) => Lexicon::from_dir(d).map_err(|e| e.to_string())?,
        None => Lexicon::builtin().map_err(|e| e.to_string())?,
    };
    Checker::new(lexicon).map_err(|e| e.to_string())
}

impl State {
    /// Builds the shared state: loads the lexicons (an error here stops start-up).
    pub fn new(config: Config) -> Result<Arc<State>, String> {
        let started = std::time::Instant::now();
        // jieba's dictionary takes about as long to load as the lexicon takes to parse and compile,
        // and depends on nothing: it loads on a thread of its own meanwhile (the checker build waits
        // for it where it needs it), so start-up costs the longer of the two, not their sum.
        let dictionary = std::thread::spawn(crate::check::warm_up);
        let checker = load_checker(config.lexicons.as_deref());
        let _ = dictionary.join();
        let checker = Arc::new(checker?);
        // The checker compiles its regexes on first use; compiling them all now, beside start-up
        // rather than before it, has them ready before most traffic needs them.
        let compiling = checker.clone();
        std::thread::spawn(move || {
            if let Err(e) = compiling.compile_all() {
                tracing::error!(error = %e, "some lexicon patterns do not compile and never match");
            }
        });
        let status = LexiconStatus {
            rules: checker.rules().len(),
            source: config
                .lexicons
                .as_ref()
                .map_or("built-in".to_string(), |p| p.display().to_string()),
            loaded_at_ms: now_ms(),
            build_ms: started.elapsed().as_millis() as u64,
            version: 1,
            last_error: None,
        };
        let (records, _) = broadcast::channel(1024);
        Ok(Arc::new(State {
            conversations: Mutex::new(Conversations::new(config.conversation.clone())),
            config,
            checker: RwLock::new(checker),
            lexicon: Mutex::new(status),
            clock_changed: Notify::new(),
            registry: Mutex::new(Registry::default()),
            records,
            metrics: Metrics::default(),
            next_conn: AtomicU64::new(1),
            http_client: http::client(),
            store: OnceLock::new(),
            recent: Mutex::new(HashMap::new()),
        }))
    }

    /// The checker in use. Cheap: an `Arc` clone under a read lock held for no longer than that.
    pub fn checker(&self) -> Arc<Checker> {
        self.checker
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The lexicon in use and the last reload's outcome.
    pub fn lexicon_status(&self) -> LexiconStatus {
        self.lexicon
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rebuilds the checker from the configured lexicons and swaps it in; on error the running one
    /// stays and the error is kept for `lexicon_status`.
    pub fn reload(&self) -> Result<(), String> {
        let started = std::time::Instant::now();
        // A reload compiles every regex before the swap: a lexicon that hits a compiler limit is
        // refused and the running one stays, as for any other error.
        let result = load_checker(self.config.lexicons.as_deref())
            .and_then(|c| c.compile_all().map(|()| c).map_err(|e| e.to_string()));
        let mut status = self.lexicon.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(checker) => {
                status.rules = checker.rules().len();
                status.loaded_at_ms = now_ms();
                status.build_ms = started.elapsed().as_millis() as u64;
                status.version += 1;
                status.last_error = None;
                *self.checker.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(checker);
                tracing::info!(
                    rules = status.rules,
                    version = status.version,
                    "lexicon reloaded"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "lexicon reload failed; the running lexicon stays");
                status.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn conversations(&self) -> std::sync::MutexGuard<'_, Conversations> {
        self.conversations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches the findings store; from then on records, checked messages and reply times are
    /// written to it.
    pub fn attach_store(&self, store: StoreHandle) {
        let _ = self.store.set(store);
    }

    /// The attached store, if any.
    pub fn store(&self) -> Option<&StoreHandle> {
        self.store.get()
    }

    /// Publishes a record to the live feed and queues it for the store (masked, with context).
    pub fn publish(&self, record: Record) {
        self.metrics
            .findings
            .fetch_add(record.findings.len() as u64, Ordering::Relaxed);
        {
            let mut by = self
                .metrics
                .findings_by
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for f in &record.findings {
                *by.entry((
                    f.category.as_str().to_string(),
                    f.severity.as_str().to_string(),
                ))
                .or_default() += 1;
            }
        }
        let record = Arc::new(mask_record(record));
        if let Some(store) = self.store() {
            let context = record
                .conversation
                .as_ref()
                .and_then(|c| self.recent().get(c).cloned())
                .map(Vec::from)
                .unwrap_or_default();
            store.submit(StoreEvent::Findings {
                at_ms: record.at_ms,
                conversation: record.conversation.clone(),
                agent: record.agent.clone(),
                message_id: record.message_id.as_ref().map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                text: record.text.clone(),
                action: record.action,
                findings: record.findings.clone(),
                context,
            });
        }
        let _ = self.records.send(record);
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<ContextMessage>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a message of a conversation as context for later findings (masked).
    fn remember(&self, conversation: &str, role: &str, text: &str) {
        let mut recent = self.recent();
        if recent.len() >= CONTEXT_CONVERSATIONS && !recent.contains_key(conversation) {
            // Bounded memory: forget the conversations idle the longest.
            let mut by_age: Vec<(u64, String)> = recent
                .iter()
                .map(|(k, v)| (v.back().map_or(0, |m| m.at_ms), k.clone()))
                .collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(CONTEXT_CONVERSATIONS / 2) {
                recent.remove(&k);
            }
        }
        let list = recent.entry(conversation.to_string()).or_default();
        if list.len() == CONTEXT_MESSAGES {
            list.pop_front();
        }
        list.push_back(ContextMessage {
            at_ms: now_ms(),
            role: role.to_string(),
            text: mask_numbers(text),
        });
    }

    /// The conversation side of an agent's message (greeting rule, reply time, counts, context);
    /// returns the conversation findings. Call after checking, before publishing.
    pub(crate) fn agent_said(
        &self,
        conversation: Option<&str>,
        agent: Option<&str>,
        text: &str,
        now: std::time::Instant,
    ) -> Vec<Finding> {
        self.metrics
            .messages_checked
            .fetch_add(1, Ordering::Relaxed);
        let agent_id = agent.unwrap_or("").to_string();
        if let Some(store) = self.store() {
            store.submit(StoreEvent::Checked {
                at_ms: now_ms(),
                agent: agent_id.clone(),
            });
        }
        let Some(conv) = conversation else {
            return Vec::new();
        };
        let (waited, findings) = {
            let mut convs = self.conversations();
            let waited = convs
                .waiting_since(conv)
                .map(|t| now.saturating_duration_since(t));
            (waited, convs.agent_message(conv, text, now))
        };
        if let (Some(waited), Some(store)) = (waited, self.store()) {
            store.submit(StoreEvent::Reply {
                at_ms: now_ms(),
                agent: agent_id,
                wait_ms: waited.as_millis() as u64,
            });
        }
        findings
    }

    /// Remembers an agent's message as context, after its findings were published (so a finding's
    /// context is what came before it).
    pub(crate) fn agent_context(&self, conversation: Option<&str>, text: &str) {
        if let Some(conv) = conversation {
            self.remember(conv, "agent", text);
        }
    }

    /// A customer's message: starts the reply clock, kept as context.
    pub(crate) fn customer_said(&self, conversation: &str, text: &str, now: std::time::Instant) {
        self.metrics
            .customer_messages
            .fetch_add(1, Ordering::Relaxed);
        // The clock task sleeps until the earliest deadline; it needs waking only when this message
        // set an earlier one (a wake per customer message would cost a task switch each).
        let earlier = {
            let mut convs = self.conversations();
            let before = convs.next_deadline();
            convs.customer_message(conversation, now);
            let after = convs.next_deadline();
            before.is_none_or(|b| after.is_some_and(|a| a < b))
        };
        if earlier {
            self.clock_changed.notify_one();
        }
        self.remember(conversation, "customer", text);
    }

    /// Sends `record`'s findings frame to the open consoles of `agent` (HTTP-sent messages).
    fn notify_agent(&self, agent: &str, record: &Record) {
        if !self.config.inject {
            return;
        }
        let conns = self
            .registry()
            .by_agent
            .get(agent)
            .cloned()
            .unwrap_or_default();
        let frame = record.frame();
        for c in conns {
            c.send_event(&frame);
        }
    }

    fn consoles_of(&self, conversation: &str) -> Vec<AgentConn> {
        self.registry()
            .by_conversation
            .get(conversation)
            .cloned()
            .unwrap_or_default()
    }
}

/// Masks personal numbers in a record's text and findings (lengths are kept, so spans stay valid).
fn mask_record(mut record: Record) -> Record {
    record.text = mask_numbers(&record.text);
    for f in &mut record.findings {
        f.matched = mask_numbers(&f.matched);
    }
    record
}

/// A place among `max_connections`, held by a connection's task and, once it is upgraded, by its
/// WebSocket relay too: the place is free when both are done.
pub(crate) type Slot = Arc<tokio::sync::OwnedSemaphorePermit>;

/// Serves the proxy on `listener` until `shutdown` completes, then drains: every connection is sent
/// close 1001 both ways and given `drain_timeout` to finish.
///
/// A WebSocket outlives the HTTP connection it was upgraded from, so the drain waits for every
/// place of `max_connections` to be given back, not just for the connection tasks.
pub async fn run(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(state.config.max_connections));
    let timers = tokio::spawn(conversation_clock(state.clone(), stop_rx.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            http::serve_connection(stream, peer, state, stop, Arc::new(permit)).await;
        });
        // Reap finished connections so the set does not grow with churn.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = state.config.drain_timeout;
    let all = u32::try_from(state.config.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(drain, async {
        while tasks.join_next().await.is_some() {}
        let _ = limit.acquire_many(all).await;
    })
    .await;
    tasks.abort_all();
    timers.abort();
}

/// Sleeps until the next conversation deadline, then sends nudges and records slow replies.
async fn conversation_clock(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        let next = state.conversations().next_deadline();
        let wake = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wake => {}
            _ = state.clock_changed.notified() => continue,
            _ = stop.changed() => return,
        }
        let events = state
            .conversations()
            .poll(tokio::time::Instant::now().into_std());
        for event in events {
            match event {
                Event::Nudge {
                    conversation,
                    waited,
                } => {
                    if !state.config.inject {
                        continue;
                    }
                    let frame = json!({
                        "type": "liyu.nudge",
                        "conversation": conversation,
                        "waited_seconds": waited.as_secs(),
                        "message": "客户已等待较长时间,请及时回复(及时回复,不拖延用户时间)",
                        "suggestions": ["让您久等了,非常抱歉", "请稍等,马上为您处理"],
                    });
                    for c in state.consoles_of(&conversation) {
                        c.send_event(&frame);
                    }
                }
                Event::SlowReply {
                    conversation,
                    finding,
                    ..
                } => {
                    let record = Record {
                        at_ms: now_ms(),
                        conversation: Some(conversation.clone()),
                        agent: None,
                        message_id: None,
                        text: String::new(),
                        action: Action::Recorded,
                        findings: vec![finding],
                    };
                    if state.config.inject {
                        let frame = record.frame();
                        for c in state.consoles_of(&conversation) {
                            c.send_event(&frame);
                        }
                    }
                    state.publish(record);
                }
            }
        }
    }
}

/// Reloads the lexicons whenever a `*.toml` file in the configured folder changes (checked every
/// `every`), until `stop` completes. Built-in lexicons never change, so then it only waits.
pub async fn watch_lexicons(state: Arc<State>, every: Duration, stop: impl Future<Output = ()>) {
    let Some(dir) = state.config.lexicons.clone() else {
        return stop.await;
    };
    let stamp = move || -> Vec<(std::path::PathBuf, Option<SystemTime>, u64)> {
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
            .map(|e| {
                let meta = e.metadata().ok();
                (
                    e.path(),
                    meta.as_ref().and_then(|m| m.modified().ok()),
                    meta.map_or(0, |m| m.len()),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut last = stamp();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = stamp();
        if now != last {
            last = now;
            let state = state.clone();
            // Building a checker takes tens of milliseconds: off the reactor.
            let _ = tokio::task::spawn_blocking(move || state.reload()).await;
        }
    }
}

/// Resolves once shutdown has started. (The guard `wait_for` returns is not `Send`; it is dropped
/// here, before the caller's next await.)
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The address a peer connected from, for X-Forwarded-For.
pub(crate) fn peer_ip(peer: SocketAddr) -> String {
    peer.ip().to_string()
}
