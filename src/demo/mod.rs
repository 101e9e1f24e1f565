//! `liyu demo`: a small chat system to watch liyu work, with nothing to set up.
//!
//! The demo is a chat backend of its own — a customer page, an agent console and a WebSocket hub
//! that relays messages between them by conversation ([`hub`]) — with liyu in front of it exactly as
//! in a real deployment: the agent console is opened through liyu's proxy, so its page and its
//! WebSocket pass through liyu, while customers reach the backend directly. The agent console is
//! built on `liyu-console.js`, loaded from liyu's admin listener like an integrator's console would.
//!
//! This module is the backend and the configuration it runs liyu with ([`config`]); `src/cli/demo.rs`
//! binds the listeners, starts liyu's service (the same code as `liyu serve`) and prints the
//! addresses.
//!
//! The chat protocol is plain JSON, one object a frame (the shape of `examples/json-chat.toml`):
//! - customer → hub: `{"type": "message", "id", "text"}`, `{"type": "end"}`;
//! - agent → hub: `{"type": "message", "id", "conversation", "sender", "text"}`;
//! - hub → agents: `hello` (mode and every conversation with its messages), `conversation` (a new
//!   one), `message` (a customer's), `sent` (an agent's, delivered), `conversation.closed`;
//! - hub → customers: `welcome` (its conversation and messages), `message` (either side's), `closed`.
//!
//! Only `message` frames are chat messages to liyu; `conversation.closed` ends a conversation (its
//! farewell is checked). Everything else passes through liyu untouched.

pub mod hub;

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{Config, ConfigError, Mode};

/// How the demo runs liyu.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Annotate or block.
    pub mode: Mode,
    /// The demo backend's address (liyu's upstream).
    pub chat: SocketAddr,
    /// liyu's proxy (the agent console's address).
    pub proxy: SocketAddr,
    /// liyu's admin listener (dashboard, `liyu-console.js`).
    pub admin: SocketAddr,
    /// The dashboard's token.
    pub token: String,
    /// The findings store, `sqlite:PATH`.
    pub store_url: String,
    /// How long a customer waits before the agent is nudged.
    pub nudge_after: Duration,
}

/// The demo's liyu configuration, written as the TOML an integrator would write (so it goes through
/// the same parser and validation as `liyu serve --config`).
const CONFIG: &str = r#"
[proxy]
listen = "{proxy}"
upstream = "ws://{chat}"
agent_side = "client"
# Ctrl-C should stop the demo promptly.
drain_timeout = "2s"

[check]
mode = "{mode}"

[conversation]
nudge_after = "{nudge_after}ms"

[admin]
listen = "{admin}"

[[messages]]
name = "chat message"
framing = "json"
match = { "/type" = "message" }
text = "/text"
conversation = "/conversation"
sender = "/sender"
message_id = "/id"

[[messages]]
name = "conversation closed"
framing = "json"
kind = "end"
match = { "/type" = "conversation.closed" }
conversation = "/conversation"
"#;

/// The configuration liyu runs with in the demo.
///
/// The token and the store are set after parsing: `LIYU_ADMIN_TOKENS` and `LIYU_STORE_URL` in the
/// environment must not change what the demo printed.
pub fn config(settings: &Settings) -> Result<Config, ConfigError> {
    let mode = match settings.mode {
        Mode::Annotate => "annotate",
        Mode::Block => "block",
    };
    let text = CONFIG
        .replace("{proxy}", &settings.proxy.to_string())
        .replace("{chat}", &settings.chat.to_string())
        .replace("{admin}", &settings.admin.to_string())
        .replace("{mode}", mode)
        .replace(
            "{nudge_after}",
            &settings.nudge_after.as_millis().to_string(),
        );
    let mut config = Config::parse("liyu demo", &text)?;
    config.admin_tokens = vec![settings.token.clone()];
    config.store_url = settings.store_url.clone();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: Mode) -> Settings {
        Settings {
            mode,
            chat: "127.0.0.1:7001".parse().unwrap(),
            proxy: "127.0.0.1:7002".parse().unwrap(),
            admin: "127.0.0.1:7003".parse().unwrap(),
            token: "t0k".into(),
            store_url: "sqlite:/tmp/x.db".into(),
            nudge_after: Duration::from_millis(2500),
        }
    }

    #[test]
    fn demo_config_points_liyu_at_the_backend() {
        let c = config(&settings(Mode::Block)).unwrap();
        assert_eq!(c.mode, Mode::Block);
        assert_eq!(
            c.upstream.ws_url("/ws/agent"),
            "ws://127.0.0.1:7001/ws/agent"
        );
        assert_eq!(c.listen.port(), 7002);
        assert_eq!(c.admin_listen.map(|a| a.port()), Some(7003));
        assert_eq!(c.admin_tokens, ["t0k"]);
        assert_eq!(c.store_url, "sqlite:/tmp/x.db");
        assert_eq!(c.conversation.nudge_after, Duration::from_millis(2500));
        assert!(c.inject);
        assert_eq!(c.messages.len(), 2);
        assert_eq!(
            config(&settings(Mode::Annotate)).unwrap().mode,
            Mode::Annotate
        );
    }

    #[test]
    fn hub_frames_are_what_the_demo_config_says() {
        use crate::proxy::codec::{decode, Kind};
        let c = config(&settings(Mode::Annotate)).unwrap();
        let agent = r#"{"type":"message","id":"m1","conversation":"c-1","sender":"agent-1","text":"有牌子,自己看"}"#;
        let d = decode(&c.messages, agent).unwrap();
        assert_eq!(d.kind, Kind::Message);
        assert_eq!(d.conversation.as_deref(), Some("c-1"));
        assert_eq!(d.message_id, Some(serde_json::json!("m1")));
        let closed = r#"{"type":"conversation.closed","conversation":"c-1"}"#;
        assert_eq!(decode(&c.messages, closed).unwrap().kind, Kind::End);
        // The hub's other frames are not messages: an agent's delivered message echoed to the
        // consoles must not restart the customer's reply clock.
        for other in [
            r#"{"type":"sent","id":"m1","conversation":"c-1","text":"您好"}"#,
            r#"{"type":"hello","mode":"annotate","conversations":[]}"#,
        ] {
            assert!(decode(&c.messages, other).is_none(), "{other}");
        }
    }
}
