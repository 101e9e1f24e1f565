//! Configuration: TOML file → [`FileConfig`] (unknown keys are errors) → validated [`Config`].
//!
//! Every problem is reported with the file, line and column of the key or value at fault, so an
//! integrator who mistypes `upsteam` or writes `mode = "blok"` is told exactly where. Secrets can come
//! from the environment instead of the file (`LIYU_ADMIN_TOKENS`, comma-separated). `liyu.example.toml`
//! at the top of the repository is the commented reference.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::check::lexicon::line_col;
use crate::proxy::codec::{Framing, Kind, MessageSpec};

/// A configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `file:line:column: what` for each problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// What liyu does with a message that breaks a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deliver it and tell the agent.
    Annotate,
    /// Hold back messages with a `block` finding; deliver and annotate the rest.
    Block,
}

/// Which side of the proxy the agents are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentSide {
    /// Agents' consoles connect through liyu: their messages go client → upstream.
    Client,
    /// Customers connect through liyu: agents' messages arrive upstream → client.
    Upstream,
}

/// Where an HTTP route's field comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A JSON pointer into the request body.
    Body(String),
    /// A `{name}` segment of the route's path.
    Path(String),
    /// A request header.
    Header(String),
    /// A query parameter of the WebSocket URL.
    Query(String),
}

/// A configured HTTP route whose requests carry agent messages.
#[derive(Clone, Debug)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: String,
    /// Path segments; `{name}` captures one segment, `*` matches the rest.
    pub segments: Vec<String>,
    /// JSON pointer to the message text in the body.
    pub text: String,
    /// Conversation id.
    pub conversation: Option<Source>,
    /// Agent id (to find the agent's open WebSocket).
    pub sender: Option<Source>,
    /// Message id.
    pub message_id: Option<Source>,
}

impl Route {
    /// The `{name}` captures if `method` and `path` match this route.
    pub fn matches(&self, method: &str, path: &str) -> Option<Vec<(String, String)>> {
        if !method.eq_ignore_ascii_case(&self.method) {
            return None;
        }
        let mut captures = Vec::new();
        let mut parts = path.trim_start_matches('/').split('/');
        for seg in &self.segments {
            if seg == "*" {
                return Some(captures);
            }
            let part = parts.next()?;
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if part.is_empty() {
                    return None;
                }
                captures.push((name.to_string(), part.to_string()));
            } else if seg != part {
                return None;
            }
        }
        parts.next().is_none().then_some(captures)
    }
}

/// The validated configuration of `liyu serve`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where consoles or customers' pages connect.
    pub listen: SocketAddr,
    /// The chat server: `ws://`, `wss://`, `http://` or `https://` host (and optional path prefix).
    pub upstream: Upstream,
    /// Connecting to the upstream gives up after this long (then 502 / close 1011).
    pub connect_timeout: Duration,
    /// Largest WebSocket message accepted (close 1009 beyond) and largest checked HTTP body.
    pub max_message_bytes: usize,
    /// Connections beyond this wait for one to close.
    pub max_connections: usize,
    /// A proxied connection with no frame either way for this long is closed.
    pub idle_timeout: Duration,
    /// A peer that takes none of the frames waiting for it for this long is given up on (the
    /// client closed with 1008 when it is the one not reading, with 1011 when the upstream is).
    pub write_timeout: Duration,
    /// On SIGTERM, connections get this long to finish after close 1001.
    pub drain_timeout: Duration,
    /// Allowed `Origin` values for proxied WebSockets; empty allows any (drop-in default).
    pub origins: Vec<String>,
    /// Where a WebSocket's agent id comes from at connect time (`query:NAME` or `header:NAME`), for
    /// consoles that send messages by HTTP and only listen on their socket.
    pub agent_id: Option<Source>,
    /// Annotate or block.
    pub mode: Mode,
    /// Send findings frames to agents on their socket; off keeps the chat protocol untouched.
    pub inject: bool,
    /// Check messages at all (off: pure forwarding, for measuring liyu's own cost).
    pub checking: bool,
    /// Folder of lexicons; None: the compiled-in ones.
    pub lexicons: Option<PathBuf>,
    /// Which side the agents are on.
    pub agent_side: AgentSide,
    /// Which frames are chat messages, first match wins.
    pub messages: Vec<MessageSpec>,
    /// HTTP routes carrying agent messages.
    pub routes: Vec<Route>,
    /// Conversation rules.
    pub conversation: crate::conversation::Settings,
    /// The admin API listener (issue: findings store and dashboard).
    pub admin_listen: Option<SocketAddr>,
    /// Bearer tokens for the admin API.
    pub admin_tokens: Vec<String>,
    /// Where findings are stored: `sqlite:PATH` (default `sqlite:liyu.db`) or `postgres://…`;
    /// `LIYU_STORE_URL` overrides it (a PostgreSQL URL carries a password).
    pub store_url: String,
}

/// The upstream chat server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Whether connections use TLS.
    pub tls: bool,
    /// `host:port` (port defaulted from the scheme).
    pub authority: String,
    /// Host name (for TLS and the Host header).
    pub host: String,
    /// Path prefix prepended to every proxied path ("" for none).
    pub prefix: String,
}

impl Upstream {
    /// The WebSocket URL for a client's path and query.
    pub fn ws_url(&self, path_and_query: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}{}",
            self.authority, self.prefix, path_and_query
        )
    }

    /// The HTTP URL for a client's path and query.
    pub fn http_url(&self, path_and_query: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!(
            "{scheme}://{}{}{}",
            self.authority, self.prefix, path_and_query
        )
    }

    fn parse(url: &str) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "upstream {url:?} must start with ws://, wss://, http:// or https://"
            ));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("upstream {url:?} has no host"));
        }
        let (host, authority) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                if p.parse::<u16>().is_err() {
                    return Err(format!("upstream {url:?} has an invalid port {p:?}"));
                }
                (
                    h.trim_matches(['[', ']']).to_string(),
                    authority.to_string(),
                )
            }
            _ => (
                authority.trim_matches(['[', ']']).to_string(),
                format!("{authority}:{}", if tls { 443 } else { 80 }),
            ),
        };
        Ok(Upstream {
            tls,
            authority,
            host,
            prefix: prefix.to_string(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    proxy: Spanned<ProxyFile>,
    #[serde(default)]
    check: CheckFile,
    #[serde(default)]
    conversation: ConversationFile,
    #[serde(default)]
    admin: AdminFile,
    #[serde(default)]
    store: StoreFile,
    #[serde(default)]
    messages: Vec<Spanned<MessageFile>>,
    #[serde(default)]
    routes: Vec<Spanned<RouteFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    listen: Spanned<String>,
    upstream: Spanned<String>,
    agent_side: Option<AgentSide>,
    connect_timeout: Option<Spanned<String>>,
    max_message_bytes: Option<usize>,
    max_connections: Option<usize>,
    idle_timeout: Option<Spanned<String>>,
    write_timeout: Option<Spanned<String>>,
    drain_timeout: Option<Spanned<String>>,
    #[serde(default)]
    origins: Vec<String>,
    agent_id: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    mode: Option<Mode>,
    inject: Option<bool>,
    checking: Option<bool>,
    lexicons: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConversationFile {
    nudge_after: Option<Spanned<String>>,
    reply_sla: Option<Spanned<String>>,
    forget_after: Option<Spanned<String>>,
    greetings: Option<Vec<String>>,
    farewells: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    listen: Option<Spanned<String>>,
    #[serde(default)]
    tokens: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageFile {
    name: Option<String>,
    framing: Framing,
    #[serde(default = "default_kind")]
    kind: Kind,
    event: Option<String>,
    #[serde(default, rename = "match")]
    filters: toml::Table,
    text: Option<Spanned<String>>,
    conversation: Option<Spanned<String>>,
    sender: Option<Spanned<String>>,
    message_id: Option<Spanned<String>>,
}

fn default_kind() -> Kind {
    Kind::Message
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    method: String,
    path: Spanned<String>,
    text: Spanned<String>,
    conversation: Option<Spanned<String>>,
    sender: Option<Spanned<String>>,
    message_id: Option<Spanned<String>>,
}

/// Parses `30s`, `500ms`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?} (expected e.g. \"30s\", \"500ms\", \"10m\")")
    })?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in duration {s:?} (ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{name}: cannot read the config: {e}")],
        })?;
        Config::parse(&name, &text)
    }

    /// Validates config text; `name` is used in error locations.
    pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let at = |offset: usize| {
            let (l, c) = line_col(text, offset);
            format!("{name}:{l}:{c}")
        };
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            ConfigError {
                problems: vec![format!("{}: {}", at(offset), e.message().trim())],
            }
        })?;
        let mut problem =
            |offset: usize, what: String| problems.push(format!("{}: {what}", at(offset)));
        let duration = |v: &Option<Spanned<String>>,
                        default: Duration,
                        problem: &mut dyn FnMut(usize, String)| match v {
            None => default,
            Some(s) => parse_duration(s.get_ref()).unwrap_or_else(|e| {
                problem(s.span().start, e);
                default
            }),
        };

        let proxy = file.proxy.into_inner();
        let listen = proxy
            .listen
            .get_ref()
            .parse::<SocketAddr>()
            .unwrap_or_else(|e| {
                problem(
                    proxy.listen.span().start,
                    format!(
                        "listen {:?} is not an address like 127.0.0.1:8080: {e}",
                        proxy.listen.get_ref()
                    ),
                );
                SocketAddr::from(([127, 0, 0, 1], 0))
            });
        let upstream = Upstream::parse(proxy.upstream.get_ref()).unwrap_or_else(|e| {
            problem(proxy.upstream.span().start, e);
            Upstream {
                tls: false,
                authority: String::new(),
                host: String::new(),
                prefix: String::new(),
            }
        });
        // A zero connect, idle or write timeout would fail every connection at once: a typo, not a
        // policy, so it is an error rather than a proxy that refuses everyone.
        let timeout = |v: &Option<Spanned<String>>,
                       key: &str,
                       default: Duration,
                       problem: &mut dyn FnMut(usize, String)| {
            let d = duration(v, default, problem);
            match v {
                Some(s) if d.is_zero() => {
                    problem(s.span().start, format!("{key} must be longer than 0s"));
                    default
                }
                _ => d,
            }
        };
        let connect_timeout = timeout(
            &proxy.connect_timeout,
            "connect_timeout",
            Duration::from_secs(5),
            &mut problem,
        );
        let idle_timeout = timeout(
            &proxy.idle_timeout,
            "idle_timeout",
            Duration::from_secs(600),
            &mut problem,
        );
        let write_timeout = timeout(
            &proxy.write_timeout,
            "write_timeout",
            Duration::from_secs(30),
            &mut problem,
        );
        let drain_timeout = duration(&proxy.drain_timeout, Duration::from_secs(10), &mut problem);

        let defaults = crate::conversation::Settings::default();
        let c = &file.conversation;
        let conversation = crate::conversation::Settings {
            nudge_after: duration(&c.nudge_after, defaults.nudge_after, &mut problem),
            reply_sla: duration(&c.reply_sla, defaults.reply_sla, &mut problem),
            forget_after: duration(&c.forget_after, defaults.forget_after, &mut problem),
            greetings: c.greetings.clone().unwrap_or(defaults.greetings),
            farewells: c.farewells.clone().unwrap_or(defaults.farewells),
        };

        let pointer = |p: &Option<Spanned<String>>,
                       problem: &mut dyn FnMut(usize, String)|
         -> Option<String> {
            let p = p.as_ref()?;
            if !p.get_ref().is_empty() && !p.get_ref().starts_with('/') {
                problem(
                    p.span().start,
                    format!(
                        "{:?} is not a JSON pointer (it must start with '/')",
                        p.get_ref()
                    ),
                );
            }
            Some(p.get_ref().clone())
        };
        let mut messages = Vec::new();
        for (i, m) in file.messages.into_iter().enumerate() {
            let start = m.span().start;
            let m = m.into_inner();
            let text_ptr = pointer(&m.text, &mut problem);
            if m.kind == Kind::Message && m.framing != Framing::Text && text_ptr.is_none() {
                problem(
                    start,
                    "a message block with json or socketio framing needs `text` (a JSON pointer)"
                        .into(),
                );
            }
            if m.event.is_some() && m.framing != Framing::Socketio {
                problem(start, "`event` applies to socketio framing only".into());
            }
            let mut filters = Vec::new();
            for (k, v) in m.filters {
                if !k.starts_with('/') {
                    problem(
                        start,
                        format!("match key {k:?} is not a JSON pointer (it must start with '/')"),
                    );
                }
                match serde_json::to_value(v) {
                    Ok(v) => filters.push((k, v)),
                    Err(e) => problem(start, format!("match value for {k:?}: {e}")),
                }
            }
            messages.push(MessageSpec {
                name: m.name.unwrap_or_else(|| format!("messages[{i}]")),
                framing: m.framing,
                kind: m.kind,
                event: m.event,
                filters,
                text: text_ptr,
                conversation: pointer(&m.conversation, &mut problem),
                sender: pointer(&m.sender, &mut problem),
                message_id: pointer(&m.message_id, &mut problem),
            });
        }

        let mut routes = Vec::new();
        for r in file.routes {
            let r = r.into_inner();
            let path = r.path.get_ref();
            if !path.starts_with('/') {
                problem(
                    r.path.span().start,
                    format!("route path {path:?} must start with '/'"),
                );
            }
            let segments: Vec<String> = path
                .trim_start_matches('/')
                .split('/')
                .map(str::to_string)
                .collect();
            let names: Vec<&str> = segments
                .iter()
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            let mut source = |s: &Option<Spanned<String>>| -> Option<Source> {
                let s = s.as_ref()?;
                let v = s.get_ref();
                if let Some(name) = v.strip_prefix("path:") {
                    if !names.contains(&name) {
                        problem(
                            s.span().start,
                            format!("{v:?}: the route path has no {{{name}}} segment"),
                        );
                    }
                    Some(Source::Path(name.to_string()))
                } else if let Some(h) = v.strip_prefix("header:") {
                    Some(Source::Header(h.to_ascii_lowercase()))
                } else if v.starts_with('/') {
                    Some(Source::Body(v.clone()))
                } else {
                    problem(
                        s.span().start,
                        format!("{v:?} must be a JSON pointer (/…), path:NAME or header:NAME"),
                    );
                    None
                }
            };
            let conversation = source(&r.conversation);
            let sender = source(&r.sender);
            let message_id = source(&r.message_id);
            if !r.text.get_ref().starts_with('/') {
                problem(
                    r.text.span().start,
                    format!("text {:?} must be a JSON pointer", r.text.get_ref()),
                );
            }
            routes.push(Route {
                method: r.method.to_ascii_uppercase(),
                segments,
                text: r.text.into_inner(),
                conversation,
                sender,
                message_id,
            });
        }

        let agent_id = proxy.agent_id.as_ref().and_then(|a| {
            let v = a.get_ref();
            if let Some(q) = v.strip_prefix("query:") {
                Some(Source::Query(q.to_string()))
            } else if let Some(h) = v.strip_prefix("header:") {
                Some(Source::Header(h.to_ascii_lowercase()))
            } else {
                problem(
                    a.span().start,
                    format!("agent_id {v:?} must be query:NAME or header:NAME"),
                );
                None
            }
        });
        let admin_listen = file.admin.listen.as_ref().and_then(|l| {
            l.get_ref()
                .parse::<SocketAddr>()
                .map_err(|e| {
                    problem(
                        l.span().start,
                        format!("admin listen {:?} is not an address: {e}", l.get_ref()),
                    );
                })
                .ok()
        });
        let mut admin_tokens = file.admin.tokens;
        if let Ok(env) = std::env::var("LIYU_ADMIN_TOKENS") {
            admin_tokens = env
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
        }

        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Config {
            listen,
            upstream,
            connect_timeout,
            max_message_bytes: proxy.max_message_bytes.unwrap_or(1 << 20),
            max_connections: proxy.max_connections.unwrap_or(10_000),
            idle_timeout,
            write_timeout,
            drain_timeout,
            origins: proxy.origins,
            agent_id,
            mode: file.check.mode.unwrap_or(Mode::Annotate),
            inject: file.check.inject.unwrap_or(true),
            checking: file.check.checking.unwrap_or(true),
            lexicons: file.check.lexicons,
            agent_side: proxy.agent_side.unwrap_or(AgentSide::Client),
            messages,
            routes,
            conversation,
            admin_listen,
            admin_tokens,
            store_url: std::env::var("LIYU_STORE_URL")
                .ok()
                .or(file.store.url)
                .unwrap_or_else(|| "sqlite:liyu.db".to_string()),
        })
    }
}

/// A JSON value at `pointer` rendered as an id: strings as they are, numbers and booleans as text.
pub fn id_at(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"ws://127.0.0.1:9000\"\n";

    #[test]
    fn minimal_config_has_defaults() {
        let c = Config::parse("t.toml", MINIMAL).unwrap();
        assert_eq!(c.mode, Mode::Annotate);
        assert!(c.inject);
        assert_eq!(c.upstream.authority, "127.0.0.1:9000");
        assert_eq!(
            c.upstream.ws_url("/chat?x=1"),
            "ws://127.0.0.1:9000/chat?x=1"
        );
        assert_eq!(c.conversation.nudge_after, Duration::from_secs(30));
    }

    #[test]
    fn unknown_key_is_named_with_line_and_column() {
        let e = Config::parse("t.toml", &format!("{MINIMAL}upsteam = 1\n")).unwrap_err();
        assert!(
            e.problems[0].starts_with("t.toml:4:1: unknown field `upsteam`"),
            "{e}"
        );
        let e =
            Config::parse("t.toml", &format!("{MINIMAL}[check]\nmode = \"blok\"\n")).unwrap_err();
        assert!(
            e.problems[0].starts_with("t.toml:5:8: unknown variant `blok`"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_located() {
        let text =
            "[proxy]\nlisten = \"nowhere\"\nupstream = \"ftp://x\"\nidle_timeout = \"5 parsecs\"\n";
        let e = Config::parse("t.toml", text).unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
        assert!(
            e.problems[0].starts_with("t.toml:2:10: listen \"nowhere\""),
            "{e}"
        );
        assert!(
            e.problems[1].starts_with("t.toml:3:12: upstream \"ftp://x\""),
            "{e}"
        );
        assert!(
            e.problems[2].starts_with("t.toml:4:16: unknown unit"),
            "{e}"
        );
    }

    #[test]
    fn zero_timeouts_are_refused_where_they_are() {
        let text = "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"ws://127.0.0.1:9\"\nwrite_timeout = \"0s\"\nconnect_timeout = \"0ms\"\n";
        let e = Config::parse("t.toml", text).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(
            e.problems[1].starts_with("t.toml:4:17: write_timeout must be longer than 0s"),
            "{e}"
        );
        assert!(
            e.problems[0].starts_with("t.toml:5:19: connect_timeout must be longer than 0s"),
            "{e}"
        );
    }

    #[test]
    fn routes_match_paths_with_captures() {
        let text = format!(
            "{MINIMAL}[[routes]]\nmethod = \"post\"\npath = \"/api/v1/accounts/{{account}}/conversations/{{conversation}}/messages\"\ntext = \"/content\"\nconversation = \"path:conversation\"\n"
        );
        let c = Config::parse("t.toml", &text).unwrap();
        let r = &c.routes[0];
        let caps = r
            .matches("POST", "/api/v1/accounts/3/conversations/42/messages")
            .unwrap();
        assert_eq!(caps[1], ("conversation".to_string(), "42".to_string()));
        assert!(r
            .matches("GET", "/api/v1/accounts/3/conversations/42/messages")
            .is_none());
        assert!(r
            .matches("POST", "/api/v1/accounts/3/conversations/42")
            .is_none());
        assert_eq!(r.conversation, Some(Source::Path("conversation".into())));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn upstream_with_tls_path_prefix_and_default_port() {
        let u = Upstream::parse("wss://chat.example.com/socket").unwrap();
        assert!(u.tls);
        assert_eq!(u.authority, "chat.example.com:443");
        assert_eq!(u.ws_url("/ws"), "wss://chat.example.com:443/socket/ws");
    }
}
