//! Properties over generated input (proptest): spans always point into the original text, the
//! normalised view's offset map is exact, normalisation never panics, and the frame codecs give
//! back what was put in. The assertions themselves live in `fuzz/src/lib.rs` (module `oracles`),
//! shared with the fuzz targets.
//!
//! Case counts are fixed (no `PROPTEST_CASES` needed); a failure prints the shrunk input, and
//! proptest keeps it in `tests/props.proptest-regressions` to be tried first on every later run.

use liyu::check::mask_numbers;
use liyu::check::normalize::{normalize_into, Normalized};
use liyu::proxy::codec::{self, Framing, Kind, MessageSpec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Map, Value};

use crate::oracles;

/// Pieces that make generated messages hit rules: whole forbidden phrases and their parts, in
/// simplified, traditional and full-width forms, personal numbers, and the characters that
/// normalisation drops, folds or decomposes (spaces, zero-width and combining marks, quotes,
/// astral characters, compatibility ideographs).
const PIECES: &[&str] = &[
    "有牌子",
    "自己看",
    "下班了",
    "明天再来",
    "明天再來",
    "下班啦",
    "快点",
    "我要下班了",
    "没看我正忙着吗",
    "去死吧",
    "你去问",
    "我不明白",
    "不知道",
    "您好",
    "请稍等",
    "谢谢",
    "13812345678",
    "１３８１２３４５６７８",
    "11010519491231002X",
    "6222020200112233445",
    ",",
    "，",
    "。",
    "!",
    "！",
    "?",
    "~",
    "、",
    "…",
    " ",
    "　",
    "\u{200b}",
    "\u{301}",
    "\u{fe0f}",
    "“",
    "”",
    "「",
    "」",
    "\"",
    "'",
    "😀",
    "𠀀",
    "㍿",
    "ｆｕｃｋ",
    "Ａ",
    "a",
    "\n",
    "\t",
    "\u{0}",
];

fn message() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(PIECES).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        1 => "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn spans_point_into_the_original_for_any_message(text in message()) {
        oracles::spans_are_exact(crate::util::checker(), &text);
    }
}

#[test]
fn generated_messages_do_hit_rules() {
    // A property over messages that never hit a rule would prove nothing: the generator above, run
    // on its own, must produce findings.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut hits = 0;
    for _ in 0..300 {
        let text = message().new_tree(&mut runner).unwrap().current();
        hits += crate::util::checker().check(&text).len();
    }
    assert!(hits > 50, "only {hits} findings in 300 generated messages");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn normalisation_never_panics_and_its_map_is_exact(text in prop_oneof![message(), any::<String>()]) {
        oracles::offset_map_is_exact(&text);
        // The fast path (no map) makes the same view.
        let mut view = String::new();
        normalize_into(&text, &mut view);
        let mapped = Normalized::new(&text);
        prop_assert_eq!(view.as_str(), mapped.as_str());
    }

    #[test]
    fn masking_keeps_every_length(text in message()) {
        let masked = mask_numbers(&text);
        prop_assert_eq!(masked.chars().count(), text.chars().count());
        prop_assert_eq!(masked.encode_utf16().count(), text.encode_utf16().count());
        // Only digits (and the X of an ID number) are ever replaced.
        for (a, b) in text.chars().zip(masked.chars()) {
            prop_assert!(a == b || b == '*', "{:?} became {:?}", a, b);
        }
    }
}

/// The fields a generated chat payload carries.
#[derive(Clone, Debug)]
struct Payload {
    text: String,
    conversation: Value,
    sender: Option<String>,
    id: Value,
    override_flag: bool,
    /// Other keys, before and after the message's own.
    extra: Vec<(String, Value)>,
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    (
        any::<String>(),
        prop_oneof![
            any::<String>().prop_map(Value::String),
            any::<i64>().prop_map(Value::from)
        ],
        prop::option::of("\\PC{0,12}"),
        prop_oneof![
            "\\PC{0,12}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from)
        ],
        any::<bool>(),
        prop::collection::vec(("x[a-z]{0,3}", json_value()), 0..4),
    )
        .prop_map(
            |(text, conversation, sender, id, override_flag, extra)| Payload {
                text,
                conversation,
                sender,
                id,
                override_flag,
                extra,
            },
        )
}

impl Payload {
    /// The payload object, extra keys split around the message's own; with or without the flag.
    fn object(&self, with_flag: bool) -> Value {
        let mut m = Map::new();
        let half = self.extra.len() / 2;
        for (k, v) in &self.extra[..half] {
            m.insert(k.clone(), v.clone());
        }
        m.insert("text".into(), json!(self.text));
        m.insert("conversation".into(), self.conversation.clone());
        if let Some(s) = &self.sender {
            m.insert("sender".into(), json!(s));
        }
        m.insert("id".into(), self.id.clone());
        if with_flag && self.override_flag {
            m.insert("liyu_override".into(), json!(true));
        }
        for (k, v) in &self.extra[half..] {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    fn conversation_id(&self) -> String {
        match &self.conversation {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

fn spec(framing: Framing) -> MessageSpec {
    oracles::spec(framing, Kind::Message)
}

/// Decodes `frame` and checks every field against `p`, then the frame without the override flag.
fn round_trip(specs: &[MessageSpec], frame: &str, p: &Payload, stripped: &str) {
    let d = codec::decode(specs, frame).unwrap_or_else(|| panic!("{frame} did not decode"));
    assert_eq!(d.text.as_deref(), Some(p.text.as_str()));
    assert_eq!(d.conversation, Some(p.conversation_id()));
    assert_eq!(d.sender, p.sender);
    assert_eq!(d.message_id.as_ref(), Some(&p.id));
    assert_eq!(d.override_requested, p.override_flag);
    let without = d.without_override();
    // No flag: byte-identical. A flag: exactly the frame as it would have been written without it.
    assert_eq!(without, if p.override_flag { stripped } else { frame });
    let again = codec::decode(specs, &without).expect("the stripped frame decodes");
    assert!(!again.override_requested);
    assert_eq!(again.text, d.text);
    assert_eq!(again.namespace(), d.namespace());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn json_frames_round_trip(p in payload()) {
        let frame = p.object(true).to_string();
        let stripped = p.object(false).to_string();
        round_trip(&[spec(Framing::Json)], &frame, &p, &stripped);
    }

    #[test]
    fn socketio_frames_round_trip(
        p in payload(),
        namespace in prop::option::of("/[a-z0-9_/-]{0,8}"),
        ack in prop::option::of("[0-9]{1,4}"),
        event in "\\PC{0,10}",
        more in prop::collection::vec(json_value(), 0..3),
    ) {
        let packet = |payload: Value| {
            let mut args = vec![json!(event), payload];
            args.extend(more.iter().cloned());
            let mut s = "42".to_string();
            if let Some(ns) = &namespace {
                s.push_str(ns);
                s.push(',');
            }
            s.push_str(ack.as_deref().unwrap_or(""));
            s.push_str(&Value::Array(args).to_string());
            s
        };
        let frame = packet(p.object(true));
        let stripped = packet(p.object(false));
        round_trip(&[spec(Framing::Socketio)], &frame, &p, &stripped);
        let d = codec::decode(&[spec(Framing::Socketio)], &frame).unwrap();
        prop_assert_eq!(d.namespace(), namespace.as_deref());
    }

    #[test]
    fn liyu_events_decode_back_in_every_framing(
        conversation in "\\PC{0,12}",
        namespace in prop::option::of("/[a-z0-9_-]{1,8}"),
    ) {
        let event = json!({"type": "liyu.nudge", "text": "请及时回复", "conversation": conversation});
        for framing in [Framing::Json, Framing::Socketio] {
            let frame = codec::encode_event_for(framing, namespace.as_deref(), &event);
            let back = MessageSpec {
                event: (framing == Framing::Socketio).then(|| "liyu.nudge".to_string()),
                ..spec(framing)
            };
            let d = codec::decode(&[back], &frame).expect("an event decodes");
            prop_assert_eq!(d.conversation.as_deref(), Some(conversation.as_str()));
            prop_assert_eq!(d.text.as_deref(), Some("请及时回复"));
            if framing == Framing::Socketio {
                prop_assert_eq!(d.namespace(), namespace.as_deref());
            }
        }
    }
}
