//! Frame codec: decides which WebSocket text frames are chat messages, extracts their fields,
//! re-encodes a frame without the `liyu_override` flag, and encodes liyu's own event frames in the
//! connection's framing.
//!
//! Synchronous and allocation-light on the common path: most frames on a chat connection are not
//! chat messages (pings, presence, typing indicators …) and must be forwarded byte-identical, so
//! [`decode`] rejects them by looking at their first bytes before parsing any JSON, and parses a
//! frame at most once per framing however many specs it is tried against.

use serde_json::{Map, Value};

/// How a connection's text frames carry messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// Each frame is one JSON object; pointers resolve against it.
    Json,
    /// Engine.IO v4 / Socket.IO v5 packets; pointers resolve against the event's first argument.
    Socketio,
    /// Each frame is the plain message text.
    Text,
}

/// What a matched frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A chat message whose text is checked.
    Message,
    /// The end of a conversation (no text needed).
    End,
}

/// One configured kind of frame (`[[messages]]` in the config), validated.
#[derive(Clone, Debug)]
pub struct MessageSpec {
    /// The spec's name, for logs and events.
    pub name: String,
    /// The framing this spec decodes.
    pub framing: Framing,
    /// What a frame matching this spec is.
    pub kind: Kind,
    /// Socket.IO event name that must match (socketio framing only).
    pub event: Option<String>,
    /// JSON pointer → required value, all must be equal (json/socketio; pointers into the payload object).
    pub filters: Vec<(String, Value)>,
    /// JSON pointer to the message text (required for json/socketio Message specs; unused for text framing, where the whole frame is the text).
    pub text: Option<String>,
    /// JSON pointer to the conversation id.
    pub conversation: Option<String>,
    /// JSON pointer to the sender id.
    pub sender: Option<String>,
    /// JSON pointer to the message id.
    pub message_id: Option<String>,
}

/// A frame that matched a spec.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Index of the spec that matched (first match wins).
    pub spec: usize,
    /// The matched spec's kind.
    pub kind: Kind,
    /// The message text (None if the pointer is missing or not a string — then the frame is not treated as a message: decode should return None for a Message spec whose text pointer does not resolve to a string).
    pub text: Option<String>,
    /// Conversation id: strings as they are, numbers rendered with to_string(); None when absent.
    pub conversation: Option<String>,
    /// Sender id: strings as they are, numbers rendered with to_string(); None when absent.
    pub sender: Option<String>,
    /// The message id as it was (string or number), to echo back.
    pub message_id: Option<Value>,
    /// The payload had "liyu_override": true at its top level.
    pub override_requested: bool,
    /// The frame as received, so that a frame without the override key can be forwarded
    /// byte-identical even through `without_override`.
    raw: String,
    /// The parsed frame, kept to re-encode it without the override key.
    repr: Repr,
}

/// The parsed form of a matched frame.
#[derive(Clone, Debug)]
enum Repr {
    /// The top-level value, always an object.
    Json(Value),
    Socketio(SocketioEvent),
    Text,
}

/// A Socket.IO EVENT packet (`42[/ns,][ack]["event", payload, …]`).
#[derive(Clone, Debug)]
struct SocketioEvent {
    /// The namespace exactly as written (with its leading '/'), None when the frame had none.
    namespace: Option<String>,
    /// The ack id digits exactly as written (leading zeros kept), None when absent.
    ack: Option<String>,
    /// The whole argument array: `[event name, payload object, further arguments …]`.
    args: Vec<Value>,
}

/// The key an agent's client sets to ask liyu to forward a flagged message anyway.
const OVERRIDE_KEY: &str = "liyu_override";

/// Socket.IO event name used when an event object given to the encoders has no string "type".
const FALLBACK_EVENT: &str = "liyu";

impl Decoded {
    /// The frame as it should be forwarded when the override flag is honoured: the same frame with the top-level "liyu_override" key removed (json: the object re-serialised, key order preserved; socketio: same packet type, namespace and ack id, payload re-serialised). For text framing, returns the original text.
    ///
    /// When the payload has no "liyu_override" key at all the original frame is returned
    /// byte-identical. Re-serialising is compact JSON: insignificant whitespace and `\u` escapes of
    /// non-control characters are not kept, and integers beyond the 64-bit range come back as floats.
    pub fn without_override(&self) -> String {
        match &self.repr {
            Repr::Text => self.raw.clone(),
            Repr::Json(payload) => match strip_override(payload) {
                Some(stripped) => stripped.to_string(),
                None => self.raw.clone(),
            },
            Repr::Socketio(ev) => {
                let Some(stripped) = ev.args.get(1).and_then(strip_override) else {
                    return self.raw.clone();
                };
                let mut args = Vec::with_capacity(ev.args.len());
                args.push(ev.args[0].clone());
                args.push(stripped);
                args.extend(ev.args[2..].iter().cloned());
                let mut out = String::from("42");
                if let Some(ns) = &ev.namespace {
                    out.push_str(ns);
                    out.push(',');
                }
                if let Some(ack) = &ev.ack {
                    out.push_str(ack);
                }
                out.push_str(&Value::Array(args).to_string());
                out
            }
        }
    }

    /// Encodes one of liyu's own events (a JSON object with a "type" such as "liyu.findings" or "liyu.nudge") in this frame's framing, for sending back on the same connection: json and text framing → the object serialised as JSON text; socketio → `42` + `/ns,` if the decoded frame had a namespace + `["<value of type>", <object>]` (no ack id).
    ///
    /// An event without a string "type" is sent as Socket.IO event `"liyu"`.
    pub fn encode_event(&self, event: &Value) -> String {
        match &self.repr {
            Repr::Socketio(ev) => encode_socketio(ev.namespace.as_deref(), event),
            Repr::Json(_) | Repr::Text => event.to_string(),
        }
    }

    /// The Socket.IO namespace of the frame, if any (for remembering per connection).
    ///
    /// Exactly as written in the frame, leading '/' included; None for json and text framing and
    /// for Socket.IO frames on the default namespace.
    pub fn namespace(&self) -> Option<&str> {
        match &self.repr {
            Repr::Socketio(ev) => ev.namespace.as_deref(),
            Repr::Json(_) | Repr::Text => None,
        }
    }
}

/// Finds the first spec that `frame` matches and extracts its fields; None when no spec matches (the frame is then forwarded untouched). Never panics on any input (invalid JSON, deep nesting — serde_json's recursion limit errors are fine, treat as no match — huge strings, wrong types).
///
/// A spec whose filters match but whose text pointer (for a Message spec) does not resolve to a
/// string does not match, and the next spec is tried.
pub fn decode(specs: &[MessageSpec], frame: &str) -> Option<Decoded> {
    // Each framing's parse is done at most once, on the first spec that needs it: the outer
    // Option is "not tried yet", the inner one "not this framing".
    let mut json: Option<Option<Value>> = None;
    let mut socketio: Option<Option<SocketioEvent>> = None;

    for (index, spec) in specs.iter().enumerate() {
        match spec.framing {
            // Text framing has no structure to filter on: the frame is the message.
            Framing::Text => {
                return Some(Decoded {
                    spec: index,
                    kind: spec.kind,
                    text: Some(frame.to_owned()),
                    conversation: None,
                    sender: None,
                    message_id: None,
                    override_requested: false,
                    raw: frame.to_owned(),
                    repr: Repr::Text,
                });
            }
            Framing::Json => {
                let Some(payload) = json.get_or_insert_with(|| parse_json(frame)) else {
                    continue;
                };
                if let Some(fields) = extract(spec, payload) {
                    let payload = json.take().flatten()?;
                    return Some(fields.into_decoded(index, spec.kind, frame, Repr::Json(payload)));
                }
            }
            Framing::Socketio => {
                let Some(ev) = socketio.get_or_insert_with(|| parse_socketio(frame)) else {
                    continue;
                };
                if let Some(want) = &spec.event {
                    if ev.args[0].as_str() != Some(want.as_str()) {
                        continue;
                    }
                }
                if let Some(fields) = extract(spec, &ev.args[1]) {
                    let ev = socketio.take().flatten()?;
                    return Some(fields.into_decoded(index, spec.kind, frame, Repr::Socketio(ev)));
                }
            }
        }
    }
    None
}

/// Encodes an event for a connection whose framing is known but that has no decoded frame at hand (e.g. a nudge sent on a timer): json/text → JSON text; socketio → `42["<type>",<object>]` (optionally with namespace `ns` when Some and not "/").
///
/// A namespace given without its leading '/' gets one. An event without a string "type" is sent as
/// Socket.IO event `"liyu"`.
pub fn encode_event_for(framing: Framing, namespace: Option<&str>, event: &Value) -> String {
    match framing {
        Framing::Socketio => encode_socketio(namespace, event),
        Framing::Json | Framing::Text => event.to_string(),
    }
}

/// `42` + optional `/ns,` + `["<type>",<event>]`.
fn encode_socketio(namespace: Option<&str>, event: &Value) -> String {
    let name = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(FALLBACK_EVENT);
    let body = event.to_string();
    let mut out = String::with_capacity(body.len() + name.len() + 16);
    out.push_str("42");
    // The default namespace "/" is never written (the Socket.IO encoder omits it too).
    if let Some(ns) = namespace.filter(|ns| !ns.is_empty() && *ns != "/") {
        if !ns.starts_with('/') {
            out.push('/');
        }
        out.push_str(ns);
        out.push(',');
    }
    out.push('[');
    out.push_str(&Value::String(name.to_owned()).to_string());
    out.push(',');
    out.push_str(&body);
    out.push(']');
    out
}

/// Parses a json-framing frame: Some only for a top-level object. Frames whose first
/// non-whitespace byte is not '{' are rejected without parsing.
fn parse_json(frame: &str) -> Option<Value> {
    if !frame
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return None;
    }
    // Errors (syntax, recursion limit past 128 levels) mean "not a message".
    serde_json::from_str::<Value>(frame)
        .ok()
        .filter(Value::is_object)
}

/// Parses a Socket.IO EVENT packet: Some only when the frame is `42[/ns,][ack]["name",{…},…]`
/// with a string event name and an object payload. Every other packet (other Engine.IO types,
/// CONNECT/ACK/BINARY_EVENT …, malformed arrays) is rejected, most without parsing.
fn parse_socketio(frame: &str) -> Option<SocketioEvent> {
    // '4' Engine.IO message, '2' Socket.IO EVENT. BINARY_EVENT ('5') is never a message: its
    // placeholders stand for binary frames we do not see, whatever the attachment count claims.
    let rest = frame.strip_prefix("42")?;
    // The namespace runs up to the first ',' as in socket.io-parser, so we read the same packet
    // the server will; a namespace with no ',' after it leaves no payload.
    let (namespace, rest) = if rest.starts_with('/') {
        let comma = rest.find(',')?;
        (Some(&rest[..comma]), &rest[comma + 1..])
    } else {
        (None, rest)
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (ack, rest) = rest.split_at(digits);
    if !rest.starts_with('[') {
        return None;
    }
    let Value::Array(args) = serde_json::from_str::<Value>(rest).ok()? else {
        return None;
    };
    if args.len() < 2 || !args[0].is_string() || !args[1].is_object() {
        return None;
    }
    Some(SocketioEvent {
        namespace: namespace.map(str::to_owned),
        ack: (!ack.is_empty()).then(|| ack.to_owned()),
        args,
    })
}

/// The fields a spec extracts from a payload.
struct Fields {
    text: Option<String>,
    conversation: Option<String>,
    sender: Option<String>,
    message_id: Option<Value>,
    override_requested: bool,
}

impl Fields {
    fn into_decoded(self, spec: usize, kind: Kind, frame: &str, repr: Repr) -> Decoded {
        Decoded {
            spec,
            kind,
            text: self.text,
            conversation: self.conversation,
            sender: self.sender,
            message_id: self.message_id,
            override_requested: self.override_requested,
            raw: frame.to_owned(),
            repr,
        }
    }
}

/// Applies a json/socketio spec to a payload object: None when a filter fails, or when a Message
/// spec's text pointer is unset or does not resolve to a string.
fn extract(spec: &MessageSpec, payload: &Value) -> Option<Fields> {
    let filters_hold = spec.filters.iter().all(|(pointer, want)| {
        payload
            .pointer(pointer)
            .is_some_and(|got| values_equal(got, want))
    });
    if !filters_hold {
        return None;
    }
    let text = spec
        .text
        .as_deref()
        .and_then(|p| payload.pointer(p))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if spec.kind == Kind::Message && text.is_none() {
        return None;
    }
    let resolve = |pointer: &Option<String>| pointer.as_deref().and_then(|p| payload.pointer(p));
    Some(Fields {
        text,
        conversation: resolve(&spec.conversation).and_then(id_string),
        sender: resolve(&spec.sender).and_then(id_string),
        message_id: resolve(&spec.message_id)
            .filter(|v| v.is_string() || v.is_number())
            .cloned(),
        override_requested: payload.get(OVERRIDE_KEY) == Some(&Value::Bool(true)),
    })
}

/// An id as a string: strings as they are, numbers rendered; anything else is no id.
fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Filter equality. Numbers compare by value, because filters come from TOML and frames from
/// JSON encoders that disagree on `1` vs `1.0`; everything else compares structurally.
fn values_equal(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                a == b
            } else if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
                a == b
            } else {
                matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a == b)
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => got == want,
    }
}

/// The payload object without its top-level override key (order of the other keys kept); None
/// when there is no such key, so the caller can forward the original bytes.
fn strip_override(payload: &Value) -> Option<Value> {
    let object = payload.as_object()?;
    if !object.contains_key(OVERRIDE_KEY) {
        return None;
    }
    let mut stripped: Map<String, Value> = object.clone();
    // shift_remove, not remove: with preserve_order, remove swaps the last key into its place.
    stripped.shift_remove(OVERRIDE_KEY);
    Some(Value::Object(stripped))
}

/// A console's request to check a draft before it is sent: `{"type": "liyu.check", "id": …,
/// "text": "…", "conversation": "…"}` as a JSON frame, or the Socket.IO event `liyu.check` with that
/// object. liyu answers it on the same connection and never forwards it (see [`CheckRequest::answer`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRequest {
    /// The console's request id, echoed so it can drop answers to drafts it no longer shows.
    pub id: Option<Value>,
    /// The draft.
    pub text: String,
    /// The conversation the draft is for, echoed.
    pub conversation: Option<String>,
    framing: Framing,
    namespace: Option<String>,
}

/// The `type` (json) or event name (Socket.IO) of a draft check.
pub const CHECK_TYPE: &str = "liyu.check";
/// The `type` of its answer.
pub const CHECKED_TYPE: &str = "liyu.checked";

impl CheckRequest {
    /// The answer frame, in the request's framing: `{"type": "liyu.checked", "id", "conversation",
    /// "mode", "findings"}`.
    pub fn answer(&self, mode: &str, findings: &[crate::check::Finding]) -> String {
        let event = serde_json::json!({
            "type": CHECKED_TYPE,
            "id": self.id,
            "conversation": self.conversation,
            "mode": mode,
            "findings": findings,
        });
        encode_event_for(self.framing, self.namespace.as_deref(), &event)
    }
}

/// Reads a draft-check request, whatever the connection's message specs say: the request is liyu's
/// own protocol, so it is recognised before [`decode`] and in any framing. Frames that do not
/// mention `"liyu.check"` are rejected without parsing (this runs on every frame an agent sends).
pub fn decode_check(frame: &str) -> Option<CheckRequest> {
    if !frame.contains("\"liyu.check\"") {
        return None;
    }
    let (payload, framing, namespace) = if let Some(v) = parse_json(frame) {
        if v.get("type").and_then(Value::as_str) != Some(CHECK_TYPE) {
            return None;
        }
        (v, Framing::Json, None)
    } else {
        let ev = parse_socketio(frame)?;
        if ev.args[0].as_str() != Some(CHECK_TYPE) {
            return None;
        }
        let SocketioEvent {
            namespace, args, ..
        } = ev;
        let payload = args.into_iter().nth(1)?;
        (payload, Framing::Socketio, namespace)
    };
    let text = payload.get("text")?.as_str()?.to_owned();
    Some(CheckRequest {
        id: payload
            .get("id")
            .filter(|v| v.is_string() || v.is_number())
            .cloned(),
        text,
        conversation: payload.get("conversation").and_then(id_string),
        framing,
        namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A spec with nothing but its framing and kind; tests fill in the rest.
    fn spec(framing: Framing, kind: Kind) -> MessageSpec {
        MessageSpec {
            name: "test".to_owned(),
            framing,
            kind,
            event: None,
            filters: Vec::new(),
            text: None,
            conversation: None,
            sender: None,
            message_id: None,
        }
    }

    /// A Message spec with the usual pointers: /text, /conversation, /sender, /id.
    fn message(framing: Framing) -> MessageSpec {
        MessageSpec {
            text: Some("/text".to_owned()),
            conversation: Some("/conversation".to_owned()),
            sender: Some("/sender".to_owned()),
            message_id: Some("/id".to_owned()),
            ..spec(framing, Kind::Message)
        }
    }

    fn with_filter(mut spec: MessageSpec, pointer: &str, value: Value) -> MessageSpec {
        spec.filters.push((pointer.to_owned(), value));
        spec
    }

    fn with_event(mut spec: MessageSpec, event: &str) -> MessageSpec {
        spec.event = Some(event.to_owned());
        spec
    }

    // ---- json framing ----

    #[test]
    fn json_match_extracts_fields() {
        let specs = [MessageSpec {
            text: Some("/data/body/text".to_owned()),
            conversation: Some("/data/conv".to_owned()),
            sender: Some("/from/id".to_owned()),
            message_id: Some("/mid".to_owned()),
            ..with_filter(spec(Framing::Json, Kind::Message), "/type", json!("chat"))
        }];
        let frame = r#"{"type":"chat","mid":"m-1","data":{"conv":"c1","body":{"text":"有牌子,自己看"}},"from":{"id":"agent7"}}"#;
        let d = decode(&specs, frame).expect("matches");
        assert_eq!(d.spec, 0);
        assert_eq!(d.kind, Kind::Message);
        assert_eq!(d.text.as_deref(), Some("有牌子,自己看"));
        assert_eq!(d.conversation.as_deref(), Some("c1"));
        assert_eq!(d.sender.as_deref(), Some("agent7"));
        assert_eq!(d.message_id, Some(json!("m-1")));
        assert!(!d.override_requested);
        assert_eq!(d.namespace(), None);
    }

    #[test]
    fn json_escaped_text_is_unescaped() {
        let specs = [message(Framing::Json)];
        let d = decode(&specs, r#"{"text":"\u4f60\u597d\n\"x\""}"#).unwrap();
        assert_eq!(d.text.as_deref(), Some("你好\n\"x\""));
    }

    #[test]
    fn json_absent_fields_are_none() {
        let specs = [message(Framing::Json)];
        let d = decode(&specs, r#"{"text":"hi"}"#).unwrap();
        assert_eq!(d.text.as_deref(), Some("hi"));
        assert_eq!(d.conversation, None);
        assert_eq!(d.sender, None);
        assert_eq!(d.message_id, None);
    }

    #[test]
    fn json_filter_mismatch_is_none() {
        let specs = [with_filter(message(Framing::Json), "/type", json!("chat"))];
        assert!(decode(&specs, r#"{"type":"typing","text":"hi"}"#).is_none());
        // Filter pointer absent.
        assert!(decode(&specs, r#"{"text":"hi"}"#).is_none());
        // Same value, different type.
        let specs = [with_filter(message(Framing::Json), "/type", json!(1))];
        assert!(decode(&specs, r#"{"type":"1","text":"hi"}"#).is_none());
    }

    #[test]
    fn json_filters_on_nested_pointers_and_non_string_values() {
        let base = message(Framing::Json);
        let base = with_filter(base, "/meta/role", json!("agent"));
        let base = with_filter(base, "/meta/level", json!(2));
        let base = with_filter(base, "/meta/flags/urgent", json!(false));
        let base = with_filter(base, "/meta/tags", json!(["a", "b"]));
        let base = with_filter(base, "/meta/extra", json!(null));
        let base = with_filter(base, "/meta/obj", json!({"k": 1}));
        let base = with_filter(base, "/items/1/kind", json!("msg"));
        let specs = [with_filter(base, "/a~1b/c~0d", json!(true))];
        let frame = r#"{"text":"hi","meta":{"role":"agent","level":2,"flags":{"urgent":false},"tags":["a","b"],"extra":null,"obj":{"k":1}},"items":[{},{"kind":"msg"}],"a/b":{"c~d":true}}"#;
        assert_eq!(decode(&specs, frame).unwrap().text.as_deref(), Some("hi"));

        // Each filter, broken in turn, rejects the frame.
        for (original, broken) in [
            (r#""role":"agent""#, r#""role":"customer""#),
            (r#""level":2"#, r#""level":3"#),
            (r#""urgent":false"#, r#""urgent":true"#),
            (r#""tags":["a","b"]"#, r#""tags":["b","a"]"#),
            (r#""extra":null"#, r#""extra":0"#),
            (r#""obj":{"k":1}"#, r#""obj":{"k":1,"j":2}"#),
            (r#""kind":"msg""#, r#""kind":"sys""#),
            (r#""c~d":true"#, r#""c~d":1"#),
        ] {
            assert!(frame.contains(original), "{original}");
            let mutated = frame.replacen(original, broken, 1);
            assert!(decode(&specs, &mutated).is_none(), "{mutated}");
        }
    }

    #[test]
    fn json_numeric_filters_compare_by_value() {
        let specs = [with_filter(message(Framing::Json), "/v", json!(2))];
        assert!(decode(&specs, r#"{"v":2.0,"text":"x"}"#).is_some());
        assert!(decode(&specs, r#"{"v":2,"text":"x"}"#).is_some());
        assert!(decode(&specs, r#"{"v":2.5,"text":"x"}"#).is_none());
        assert!(decode(&specs, r#"{"v":-2,"text":"x"}"#).is_none());
        let specs = [with_filter(message(Framing::Json), "/v", json!(-1))];
        assert!(decode(&specs, r#"{"v":-1,"text":"x"}"#).is_some());
        assert!(decode(&specs, r#"{"v":18446744073709551615,"text":"x"}"#).is_none());
        let specs = [with_filter(message(Framing::Json), "/v", json!(u64::MAX))];
        assert!(decode(&specs, r#"{"v":18446744073709551615,"text":"x"}"#).is_some());
    }

    #[test]
    fn json_numbers_as_ids() {
        let specs = [message(Framing::Json)];
        let d = decode(
            &specs,
            r#"{"text":"x","conversation":12345,"sender":-7,"id":99}"#,
        )
        .unwrap();
        assert_eq!(d.conversation.as_deref(), Some("12345"));
        assert_eq!(d.sender.as_deref(), Some("-7"));
        assert_eq!(d.message_id, Some(json!(99)));
        assert_eq!(d.message_id.unwrap().to_string(), "99");

        let d = decode(
            &specs,
            r#"{"text":"x","conversation":1.5,"sender":18446744073709551615,"id":"007"}"#,
        )
        .unwrap();
        assert_eq!(d.conversation.as_deref(), Some("1.5"));
        assert_eq!(d.sender.as_deref(), Some("18446744073709551615"));
        assert_eq!(d.message_id, Some(json!("007")));
    }

    #[test]
    fn json_ids_of_other_types_are_none() {
        let specs = [message(Framing::Json)];
        let d = decode(
            &specs,
            r#"{"text":"x","conversation":true,"sender":{"id":1},"id":null}"#,
        )
        .unwrap();
        assert_eq!(d.conversation, None);
        assert_eq!(d.sender, None);
        assert_eq!(d.message_id, None);
        let d = decode(&specs, r#"{"text":"x","conversation":[1],"id":[1]}"#).unwrap();
        assert_eq!(d.conversation, None);
        assert_eq!(d.message_id, None);
        // An empty string is still an id as it is.
        let d = decode(&specs, r#"{"text":"x","conversation":""}"#).unwrap();
        assert_eq!(d.conversation.as_deref(), Some(""));
    }

    #[test]
    fn first_match_wins() {
        let end = with_filter(spec(Framing::Json, Kind::End), "/type", json!("close"));
        let chat = with_filter(message(Framing::Json), "/type", json!("chat"));
        let any = message(Framing::Json);
        let specs = [end, chat, any];
        let d = decode(&specs, r#"{"type":"close","text":"bye"}"#).unwrap();
        assert_eq!((d.spec, d.kind), (0, Kind::End));
        let d = decode(&specs, r#"{"type":"chat","text":"hi"}"#).unwrap();
        assert_eq!((d.spec, d.kind), (1, Kind::Message));
        let d = decode(&specs, r#"{"type":"other","text":"hi"}"#).unwrap();
        assert_eq!((d.spec, d.kind), (2, Kind::Message));
        // Two identical specs: the earlier one.
        let specs = [message(Framing::Json), message(Framing::Json)];
        assert_eq!(decode(&specs, r#"{"text":"hi"}"#).unwrap().spec, 0);
    }

    #[test]
    fn message_without_string_text_is_none() {
        let specs = [message(Framing::Json)];
        assert!(decode(&specs, r#"{"conversation":"c"}"#).is_none());
        assert!(decode(&specs, r#"{"text":42}"#).is_none());
        assert!(decode(&specs, r#"{"text":null}"#).is_none());
        assert!(decode(&specs, r#"{"text":{"zh":"hi"}}"#).is_none());
        // A Message spec with no text pointer never matches json frames.
        let specs = [spec(Framing::Json, Kind::Message)];
        assert!(decode(&specs, r#"{"text":"hi"}"#).is_none());
    }

    #[test]
    fn message_without_text_falls_through_to_next_spec() {
        let specs = [message(Framing::Json), spec(Framing::Json, Kind::End)];
        let d = decode(&specs, r#"{"text":1}"#).unwrap();
        assert_eq!((d.spec, d.kind), (1, Kind::End));
    }

    #[test]
    fn end_spec_needs_no_text() {
        let specs = [MessageSpec {
            conversation: Some("/c".to_owned()),
            ..with_filter(spec(Framing::Json, Kind::End), "/event", json!("end"))
        }];
        let d = decode(&specs, r#"{"event":"end","c":5}"#).unwrap();
        assert_eq!(d.kind, Kind::End);
        assert_eq!(d.text, None);
        assert_eq!(d.conversation.as_deref(), Some("5"));
        // With a text pointer, an End frame's text is reported when present.
        let specs = [MessageSpec {
            text: Some("/t".to_owned()),
            ..spec(Framing::Json, Kind::End)
        }];
        assert_eq!(
            decode(&specs, r#"{"t":"bye"}"#).unwrap().text.as_deref(),
            Some("bye")
        );
        assert_eq!(decode(&specs, r#"{"t":1}"#).unwrap().text, None);
    }

    #[test]
    fn override_detection() {
        let specs = [message(Framing::Json)];
        let yes = |f: &str| decode(&specs, f).unwrap().override_requested;
        assert!(yes(r#"{"text":"x","liyu_override":true}"#));
        assert!(!yes(r#"{"text":"x","liyu_override":false}"#));
        assert!(!yes(r#"{"text":"x","liyu_override":"true"}"#));
        assert!(!yes(r#"{"text":"x","liyu_override":1}"#));
        assert!(!yes(r#"{"text":"x","meta":{"liyu_override":true}}"#));
        assert!(!yes(r#"{"text":"x"}"#));
    }

    #[test]
    fn json_without_override_keeps_key_order() {
        let specs = [message(Framing::Json)];
        let frame = r#"{ "z": 1, "liyu_override": true, "text": "滚", "a": {"liyu_override": true, "y": 2, "b": 3}, "m": [1.5, "s"] }"#;
        let d = decode(&specs, frame).unwrap();
        assert!(d.override_requested);
        assert_eq!(
            d.without_override(),
            r#"{"z":1,"text":"滚","a":{"liyu_override":true,"y":2,"b":3},"m":[1.5,"s"]}"#
        );
        // Last key too.
        let d = decode(&specs, r#"{"text":"x","liyu_override":true}"#).unwrap();
        assert_eq!(d.without_override(), r#"{"text":"x"}"#);
        // A false flag is removed as well: the key is liyu's, not the server's.
        let d = decode(&specs, r#"{"liyu_override":false,"text":"x","b":1}"#).unwrap();
        assert!(!d.override_requested);
        assert_eq!(d.without_override(), r#"{"text":"x","b":1}"#);
    }

    #[test]
    fn json_without_override_and_no_key_is_byte_identical() {
        let specs = [message(Framing::Json)];
        let frame = "  {\"text\" : \"\\u4f60\",\n \"n\": 1e2 }  ";
        assert_eq!(decode(&specs, frame).unwrap().without_override(), frame);
    }

    #[test]
    fn json_non_objects_are_none() {
        let specs = [MessageSpec {
            text: Some("".to_owned()),
            ..spec(Framing::Json, Kind::Message)
        }];
        for frame in [
            r#"["text"]"#,
            r#""text""#,
            "42",
            "null",
            "",
            "   ",
            r#"42["chat",{"text":"x"}]"#,
            "x{}",
        ] {
            assert!(decode(&specs, frame).is_none(), "{frame}");
        }
    }

    #[test]
    fn json_leading_whitespace_is_allowed() {
        let specs = [message(Framing::Json)];
        let d = decode(&specs, " \t\r\n{\"text\":\"hi\"}\n").unwrap();
        assert_eq!(d.text.as_deref(), Some("hi"));
    }

    #[test]
    fn invalid_json_is_none() {
        let specs = [message(Framing::Json), message(Framing::Socketio)];
        for frame in [
            "{",
            r#"{"text":}"#,
            r#"{"text":"x""#,
            r#"{"text":"x"} trailing"#,
            r#"{"text":"x"}{"text":"y"}"#,
            r#"{"text":"\ud800"}"#,
            r#"{"text":"x",}"#,
            r#"{'text':'x'}"#,
            "{\"text\":\"a\u{0}b\"}",
            r#"42["chat",{"text":"x"}"#,
            r#"42["chat",{"text":"x"}]]"#,
            r#"42["chat",{"text":}]"#,
        ] {
            assert!(decode(&specs, frame).is_none(), "{frame}");
        }
    }

    #[test]
    fn invalid_pointers_do_not_panic() {
        let specs = [MessageSpec {
            text: Some("text".to_owned()),
            ..spec(Framing::Json, Kind::Message)
        }];
        assert!(decode(&specs, r#"{"text":"x"}"#).is_none());
        let specs = [with_filter(
            message(Framing::Json),
            "/a/99999999999999999999",
            json!(1),
        )];
        assert!(decode(&specs, r#"{"text":"x","a":[1]}"#).is_none());
        let specs = [MessageSpec {
            text: Some("/items/0".to_owned()),
            ..spec(Framing::Json, Kind::Message)
        }];
        assert_eq!(
            decode(&specs, r#"{"items":["first"]}"#)
                .unwrap()
                .text
                .as_deref(),
            Some("first")
        );
    }

    #[test]
    fn no_specs_is_none() {
        assert!(decode(&[], r#"{"text":"x"}"#).is_none());
        assert!(decode(&[], "hello").is_none());
    }

    // ---- socketio framing ----

    #[test]
    fn socketio_plain_event() {
        let specs = [with_event(message(Framing::Socketio), "chat")];
        let d = decode(
            &specs,
            r#"42["chat",{"text":"你去问前台","conversation":9,"sender":"a1","id":3}]"#,
        )
        .unwrap();
        assert_eq!(d.spec, 0);
        assert_eq!(d.text.as_deref(), Some("你去问前台"));
        assert_eq!(d.conversation.as_deref(), Some("9"));
        assert_eq!(d.sender.as_deref(), Some("a1"));
        assert_eq!(d.message_id, Some(json!(3)));
        assert_eq!(d.namespace(), None);
        assert!(!d.override_requested);
    }

    #[test]
    fn socketio_namespace_and_ack() {
        let specs = [with_event(message(Framing::Socketio), "chat")];
        let d = decode(&specs, r#"42/admin,["chat",{"text":"a"}]"#).unwrap();
        assert_eq!(d.namespace(), Some("/admin"));
        assert_eq!(d.text.as_deref(), Some("a"));

        let d = decode(&specs, r#"4217["chat",{"text":"b"}]"#).unwrap();
        assert_eq!(d.namespace(), None);
        assert_eq!(d.text.as_deref(), Some("b"));

        let d = decode(&specs, r#"42/admin,17["chat",{"text":"c"}]"#).unwrap();
        assert_eq!(d.namespace(), Some("/admin"));
        assert_eq!(d.text.as_deref(), Some("c"));

        let d = decode(&specs, r#"42/a/b-c,0["chat",{"text":"d"}]"#).unwrap();
        assert_eq!(d.namespace(), Some("/a/b-c"));
    }

    #[test]
    fn socketio_event_name_must_match() {
        let specs = [with_event(message(Framing::Socketio), "chat")];
        assert!(decode(&specs, r#"42["typing",{"text":"a"}]"#).is_none());
        assert!(decode(&specs, r#"42["Chat",{"text":"a"}]"#).is_none());
        // Without an event in the spec any event name matches.
        let specs = [message(Framing::Socketio)];
        assert!(decode(&specs, r#"42["typing",{"text":"a"}]"#).is_some());
    }

    #[test]
    fn socketio_event_then_filters_first_match_wins() {
        let end = MessageSpec {
            conversation: Some("/conversation".to_owned()),
            ..with_event(spec(Framing::Socketio, Kind::End), "close")
        };
        let agent = with_filter(
            with_event(message(Framing::Socketio), "chat"),
            "/from/role",
            json!("agent"),
        );
        let specs = [end, agent];
        let d = decode(&specs, r#"42["close",{"conversation":"c"}]"#).unwrap();
        assert_eq!((d.spec, d.kind), (0, Kind::End));
        assert_eq!(d.conversation.as_deref(), Some("c"));
        let d = decode(&specs, r#"42["chat",{"text":"x","from":{"role":"agent"}}]"#).unwrap();
        assert_eq!((d.spec, d.kind), (1, Kind::Message));
        assert!(decode(
            &specs,
            r#"42["chat",{"text":"x","from":{"role":"customer"}}]"#
        )
        .is_none());
    }

    #[test]
    fn socketio_payload_is_second_element_extra_args_kept() {
        let specs = [message(Framing::Socketio)];
        let frame = r#"42["chat",{"text":"x"},{"text":"not this"},3]"#;
        let d = decode(&specs, frame).unwrap();
        assert_eq!(d.text.as_deref(), Some("x"));
        assert_eq!(d.without_override(), frame);
    }

    #[test]
    fn socketio_without_override_keeps_packet_shape() {
        let specs = [message(Framing::Socketio)];
        let cases = [
            (
                r#"42["chat",{"liyu_override":true,"text":"x"}]"#,
                r#"42["chat",{"text":"x"}]"#,
            ),
            (
                r#"42/admin,["chat",{"a":1,"liyu_override":true,"text":"x","b":2}]"#,
                r#"42/admin,["chat",{"a":1,"text":"x","b":2}]"#,
            ),
            (
                r#"4217["chat",{"text":"x","liyu_override":true}]"#,
                r#"4217["chat",{"text":"x"}]"#,
            ),
            (
                r#"42/admin,017["chat",{"z":0,"text":"x","liyu_override":true},"extra",{"liyu_override":true}]"#,
                r#"42/admin,017["chat",{"z":0,"text":"x"},"extra",{"liyu_override":true}]"#,
            ),
        ];
        for (frame, want) in cases {
            let d = decode(&specs, frame).unwrap();
            assert!(d.override_requested, "{frame}");
            assert_eq!(d.without_override(), want);
            // The stripped frame decodes to the same message, without the flag.
            let again = decode(&specs, &d.without_override()).unwrap();
            assert!(!again.override_requested);
            assert_eq!(again.text, d.text);
            assert_eq!(again.namespace(), d.namespace());
        }
        // No key: byte-identical.
        let frame = r#"42/admin,5["chat",{"text":"\u4f60"}]"#;
        assert_eq!(decode(&specs, frame).unwrap().without_override(), frame);
    }

    #[test]
    fn socketio_non_event_packets_are_none() {
        let specs = [message(Framing::Socketio)];
        for frame in [
            // Engine.IO packets other than message.
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#,
            "1",
            "2",
            "3",
            "2probe",
            "3probe",
            "5",
            "6",
            // Socket.IO packets other than EVENT.
            "40",
            r#"40{"token":"x"}"#,
            r#"40/admin,{"sid":"x"}"#,
            "41",
            "41/admin,",
            r#"4317["chat",{"text":"x"}]"#,
            r#"43["chat",{"text":"x"}]"#,
            r#"44{"message":"nope"}"#,
            // Binary events, honest and lying about their attachments.
            r#"451-["chat",{"_placeholder":true,"num":0}]"#,
            r#"450-["chat",{"text":"x"}]"#,
            r#"451-/admin,["chat",{"text":"x"}]"#,
            r#"461-17["chat",{"text":"x"}]"#,
            // An attachment count on an EVENT: not a valid EVENT.
            r#"421-["chat",{"text":"x"}]"#,
            // Not Engine.IO message type.
            r#"52["chat",{"text":"x"}]"#,
            r#"["chat",{"text":"x"}]"#,
            r#"{"text":"x"}"#,
        ] {
            assert!(decode(&specs, frame).is_none(), "{frame}");
        }
    }

    #[test]
    fn socketio_malformed_events_are_none() {
        let specs = [message(Framing::Socketio)];
        for frame in [
            "42",
            "42[]",
            r#"42["chat"]"#,
            r#"42["chat","text"]"#,
            r#"42["chat",["text"]]"#,
            r#"42["chat",null]"#,
            r#"42[1,{"text":"x"}]"#,
            r#"42[null,{"text":"x"}]"#,
            r#"42{"text":"x"}"#,
            r#"42"chat""#,
            r#"42 ["chat",{"text":"x"}]"#,
            r#"42/admin"#,
            r#"42/admin,"#,
            r#"42/admin,x["chat",{"text":"x"}]"#,
            r#"42/admin["chat",{"text":"x"}]"#,
            r#"4217"#,
            r#"42x["chat",{"text":"x"}]"#,
            r#" 42["chat",{"text":"x"}]"#,
        ] {
            assert!(decode(&specs, frame).is_none(), "{frame}");
        }
    }

    #[test]
    fn mixed_framings_parse_each_once_and_match_in_order() {
        let specs = [message(Framing::Json), message(Framing::Socketio)];
        let d = decode(&specs, r#"42["chat",{"text":"s"}]"#).unwrap();
        assert_eq!((d.spec, d.text.as_deref()), (1, Some("s")));
        let d = decode(&specs, r#"{"text":"j"}"#).unwrap();
        assert_eq!((d.spec, d.text.as_deref()), (0, Some("j")));
        // Two json specs after a socketio one: the json parse is reused.
        let specs = [
            message(Framing::Socketio),
            with_filter(message(Framing::Json), "/k", json!(1)),
            with_filter(message(Framing::Json), "/k", json!(2)),
        ];
        assert_eq!(decode(&specs, r#"{"k":2,"text":"x"}"#).unwrap().spec, 2);
    }

    // ---- text framing ----

    #[test]
    fn text_framing_takes_whole_frame() {
        let specs = [with_event(
            with_filter(spec(Framing::Text, Kind::Message), "/x", json!(1)),
            "ignored",
        )];
        for frame in [
            "有牌子,自己看",
            "",
            r#"{"text":"json-looking"}"#,
            "42[\"x\",{}]",
        ] {
            let d = decode(&specs, frame).unwrap();
            assert_eq!(d.spec, 0);
            assert_eq!(d.kind, Kind::Message);
            assert_eq!(d.text.as_deref(), Some(frame));
            assert_eq!(d.conversation, None);
            assert_eq!(d.sender, None);
            assert_eq!(d.message_id, None);
            assert!(!d.override_requested);
            assert_eq!(d.namespace(), None);
            assert_eq!(d.without_override(), frame);
        }
    }

    #[test]
    fn text_framing_first_text_spec_wins_after_earlier_specs() {
        let specs = [
            with_filter(message(Framing::Json), "/type", json!("chat")),
            spec(Framing::Text, Kind::End),
            spec(Framing::Text, Kind::Message),
        ];
        let d = decode(&specs, r#"{"type":"chat","text":"j"}"#).unwrap();
        assert_eq!(d.spec, 0);
        let d = decode(&specs, r#"{"type":"other","text":"j"}"#).unwrap();
        assert_eq!((d.spec, d.kind), (1, Kind::End));
        assert_eq!(d.text.as_deref(), Some(r#"{"type":"other","text":"j"}"#));
        let d = decode(&specs, "plain").unwrap();
        assert_eq!((d.spec, d.kind), (1, Kind::End));
    }

    // ---- encoding events ----

    fn findings() -> Value {
        json!({"type": "liyu.findings", "id": 7, "findings": [{"rule": "deflection.sign", "start": 0}]})
    }

    const FINDINGS_JSON: &str =
        r#"{"type":"liyu.findings","id":7,"findings":[{"rule":"deflection.sign","start":0}]}"#;

    #[test]
    fn encode_event_json_and_text() {
        let d = decode(&[message(Framing::Json)], r#"{"text":"x"}"#).unwrap();
        assert_eq!(d.encode_event(&findings()), FINDINGS_JSON);
        let d = decode(&[spec(Framing::Text, Kind::Message)], "x").unwrap();
        assert_eq!(d.encode_event(&findings()), FINDINGS_JSON);
        assert_eq!(
            d.encode_event(&json!({"type": "liyu.nudge", "text": "请稍等"})),
            r#"{"type":"liyu.nudge","text":"请稍等"}"#
        );
    }

    #[test]
    fn encode_event_socketio() {
        let specs = [message(Framing::Socketio)];
        let d = decode(&specs, r#"42["chat",{"text":"x"}]"#).unwrap();
        assert_eq!(
            d.encode_event(&findings()),
            format!(r#"42["liyu.findings",{FINDINGS_JSON}]"#)
        );
        // Namespace kept, ack id dropped.
        let d = decode(&specs, r#"42/admin,17["chat",{"text":"x"}]"#).unwrap();
        assert_eq!(
            d.encode_event(&findings()),
            format!(r#"42/admin,["liyu.findings",{FINDINGS_JSON}]"#)
        );
        // The default namespace written explicitly is not repeated.
        let d = decode(&specs, r#"42/,["chat",{"text":"x"}]"#).unwrap();
        assert_eq!(d.namespace(), Some("/"));
        assert_eq!(
            d.encode_event(&json!({"type": "liyu.nudge"})),
            r#"42["liyu.nudge",{"type":"liyu.nudge"}]"#
        );
    }

    #[test]
    fn encode_event_socketio_without_type() {
        let d = decode(&[message(Framing::Socketio)], r#"42["chat",{"text":"x"}]"#).unwrap();
        assert_eq!(d.encode_event(&json!({"a": 1})), r#"42["liyu",{"a":1}]"#);
        assert_eq!(
            d.encode_event(&json!({"type": 5})),
            r#"42["liyu",{"type":5}]"#
        );
        // A type that needs escaping is escaped.
        assert_eq!(
            d.encode_event(&json!({"type": "a\"b"})),
            r#"42["a\"b",{"type":"a\"b"}]"#
        );
    }

    #[test]
    fn encode_event_for_each_framing() {
        let nudge = json!({"type": "liyu.nudge", "conversation": "c1"});
        let body = r#"{"type":"liyu.nudge","conversation":"c1"}"#;
        assert_eq!(encode_event_for(Framing::Json, None, &nudge), body);
        assert_eq!(
            encode_event_for(Framing::Json, Some("/admin"), &nudge),
            body
        );
        assert_eq!(encode_event_for(Framing::Text, None, &nudge), body);
        let sio = |ns| encode_event_for(Framing::Socketio, ns, &nudge);
        assert_eq!(sio(None), format!(r#"42["liyu.nudge",{body}]"#));
        assert_eq!(sio(Some("/")), format!(r#"42["liyu.nudge",{body}]"#));
        assert_eq!(sio(Some("")), format!(r#"42["liyu.nudge",{body}]"#));
        assert_eq!(
            sio(Some("/admin")),
            format!(r#"42/admin,["liyu.nudge",{body}]"#)
        );
        assert_eq!(
            sio(Some("admin")),
            format!(r#"42/admin,["liyu.nudge",{body}]"#)
        );
    }

    #[test]
    fn encoded_socketio_event_decodes_back() {
        let specs = [with_event(
            MessageSpec {
                text: Some("/conversation".to_owned()),
                ..spec(Framing::Socketio, Kind::Message)
            },
            "liyu.nudge",
        )];
        let frame = encode_event_for(
            Framing::Socketio,
            Some("/admin"),
            &json!({"type": "liyu.nudge", "conversation": "c1"}),
        );
        let d = decode(&specs, &frame).unwrap();
        assert_eq!(d.namespace(), Some("/admin"));
        assert_eq!(d.text.as_deref(), Some("c1"));
    }

    // ---- config enums ----

    #[test]
    fn framing_and_kind_deserialize_lowercase() {
        let f: Vec<Framing> = serde_json::from_str(r#"["json","socketio","text"]"#).unwrap();
        assert_eq!(f, [Framing::Json, Framing::Socketio, Framing::Text]);
        let k: Vec<Kind> = serde_json::from_str(r#"["message","end"]"#).unwrap();
        assert_eq!(k, [Kind::Message, Kind::End]);
        assert!(serde_json::from_str::<Framing>(r#""Json""#).is_err());
        assert!(serde_json::from_str::<Kind>(r#""socketio""#).is_err());
    }

    // ---- hostile input ----

    #[test]
    fn deep_nesting_is_none() {
        let specs = [message(Framing::Json), message(Framing::Socketio)];
        let deep_object = format!(
            r#"{{"text":"x","d":{}1{}}}"#,
            r#"{"a":"#.repeat(10_000),
            "}".repeat(10_000)
        );
        assert!(decode(&specs, &deep_object).is_none());
        let deep_array = format!(
            r#"{{"text":"x","d":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(decode(&specs, &deep_array).is_none());
        let deep_sio = format!(
            r#"42["chat",{{"text":"x"}},{}{}]"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(decode(&specs, &deep_sio).is_none());
        // Unclosed deep nesting too.
        assert!(decode(&specs, &"{\"a\":[".repeat(10_000)).is_none());
        assert!(decode(&specs, &format!("42{}", "[".repeat(10_000))).is_none());
    }

    #[test]
    fn moderate_nesting_still_matches() {
        let specs = [message(Framing::Json)];
        let frame = format!(
            r#"{{"text":"x","d":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(decode(&specs, &frame).unwrap().text.as_deref(), Some("x"));
    }

    #[test]
    fn five_megabyte_strings() {
        let big = "忌".repeat(5 * 1024 * 1024 / 3);
        let specs = [message(Framing::Json)];
        let frame = format!(r#"{{"text":"{big}","liyu_override":true}}"#);
        let d = decode(&specs, &frame).unwrap();
        assert_eq!(d.text.as_deref(), Some(big.as_str()));
        assert_eq!(d.without_override(), format!(r#"{{"text":"{big}"}}"#));

        let specs = [message(Framing::Socketio)];
        let frame = format!(r#"42/ns,1["chat",{{"text":"{big}"}}]"#);
        let d = decode(&specs, &frame).unwrap();
        assert_eq!(d.text.as_ref().map(String::len), Some(big.len()));

        let specs = [spec(Framing::Text, Kind::Message)];
        let d = decode(&specs, &big).unwrap();
        assert_eq!(d.text.as_deref(), Some(big.as_str()));

        // A 5 MB frame that is not a message is rejected.
        let specs = [message(Framing::Json), message(Framing::Socketio)];
        let frame = format!(r#"{{"other":"{big}"}}"#);
        assert!(decode(&specs, &frame).is_none());
        assert!(decode(&specs, &big).is_none());
        let unterminated = format!(r#"{{"text":"{big}"#);
        assert!(decode(&specs, &unterminated).is_none());
    }

    // ---- draft checks ----

    #[test]
    fn check_request_json_and_socketio() {
        let r = decode_check(
            r#"{"type":"liyu.check","id":3,"text":"有牌子,自己看","conversation":"c1"}"#,
        )
        .unwrap();
        assert_eq!(r.id, Some(json!(3)));
        assert_eq!(r.text, "有牌子,自己看");
        assert_eq!(r.conversation.as_deref(), Some("c1"));
        assert_eq!(
            r.answer("block", &[]),
            r#"{"type":"liyu.checked","id":3,"conversation":"c1","mode":"block","findings":[]}"#
        );
        let r = decode_check(r#"42/agents,7["liyu.check",{"id":"d1","text":"x"}]"#).unwrap();
        assert_eq!((r.id.clone(), r.text.as_str()), (Some(json!("d1")), "x"));
        assert_eq!(
            r.answer("annotate", &[]),
            r#"42/agents,["liyu.checked",{"type":"liyu.checked","id":"d1","conversation":null,"mode":"annotate","findings":[]}]"#
        );
    }

    #[test]
    fn not_check_requests() {
        for frame in [
            r#"{"type":"message","text":"liyu.check"}"#,
            r#"{"type":"message","text":"\"liyu.check\""}"#,
            r#"{"type":"liyu.check"}"#,
            r#"{"type":"liyu.check","text":5}"#,
            r#"42["chat",{"type":"liyu.check","text":"x"}]"#,
            r#"42["liyu.check","x"]"#,
            r#"["liyu.check",{"text":"x"}]"#,
            "liyu.check",
            "",
        ] {
            assert_eq!(decode_check(frame), None, "{frame}");
        }
        // An object id is not echoed (ids are strings or numbers, as message ids are).
        let r = decode_check(r#"{"type":"liyu.check","id":{"a":1},"text":"x"}"#).unwrap();
        assert_eq!(r.id, None);
    }
}
