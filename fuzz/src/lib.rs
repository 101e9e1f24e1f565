//! What liyu's fuzz targets assert, in one place for both of the drivers that run them:
//!
//! - libFuzzer, through `cargo fuzz run -s none TARGET` (`fuzz_targets/*.rs`, coverage-guided, run for
//!   a bounded time by `tests/run.sh --extended`);
//! - the normal test suite, which replays the seed inputs in `fuzz/seeds/` and a fixed number of
//!   seeded mutations of them on every run (`tests/fuzz_replay.rs` includes this file by path), so a
//!   crash found once stays fixed without a fuzzer installed.
//!
//! Each function takes raw bytes, must never panic for any of them, and panics (an assertion) when
//! liyu breaks a promise on that input. Inputs are cut to [`MAX_INPUT`] bytes: the promises are about
//! what liyu does with any input, and longer ones only slow the search down.

use std::sync::OnceLock;

use liyu::check::normalize::Normalized;
use liyu::check::{mask_numbers, Lexicon};
use liyu::config::Config;
use liyu::proxy::codec::{self, Framing, Kind, MessageSpec};
use liyu::Checker;
use serde_json::json;

/// Inputs longer than this are cut.
pub const MAX_INPUT: usize = 16 * 1024;

fn cut(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT)]
}

/// The text of an input: invalid UTF-8 is replaced, as a WebSocket peer can never deliver it.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(cut(data)).into_owned()
}

/// The checker with the shipped lexicons, built once.
pub fn builtin() -> &'static Checker {
    static C: OnceLock<Checker> = OnceLock::new();
    C.get_or_init(|| Checker::builtin().expect("the shipped lexicons load"))
}

/// The checker on any text: every finding's span is a slice of the text on character boundaries
/// whose bytes, UTF-16 offsets and `matched` agree; the offset map of the normalised view points
/// every kept character at characters of the original; masking keeps lengths.
pub fn checker(data: &[u8]) {
    let text = text(data);
    spans_are_exact(builtin(), &text);
    offset_map_is_exact(&text);
    let masked = mask_numbers(&text);
    assert_eq!(masked.chars().count(), text.chars().count(), "{text:?}");
    assert_eq!(
        masked.encode_utf16().count(),
        text.encode_utf16().count(),
        "{text:?}"
    );
}

/// Asserts the promises of [`liyu::Finding`] spans for `checker` on `text`.
pub fn spans_are_exact(checker: &Checker, text: &str) {
    let findings = checker.check(text);
    let mut last_start = 0;
    for f in &findings {
        let b = f.bytes.clone();
        assert!(b.start < b.end && b.end <= text.len(), "{f:?} in {text:?}");
        assert!(
            text.is_char_boundary(b.start) && text.is_char_boundary(b.end),
            "{f:?} splits a character of {text:?}"
        );
        assert_eq!(&text[b.clone()], f.matched, "{text:?}");
        assert_eq!(f.start, text[..b.start].encode_utf16().count(), "{text:?}");
        assert_eq!(f.end, text[..b.end].encode_utf16().count(), "{text:?}");
        assert!(f.start >= last_start, "findings out of order in {text:?}");
        last_start = f.start;
    }
}

/// Every character of the normalised view maps back to a non-empty range of whole characters of
/// the original, and those ranges never go backwards.
pub fn offset_map_is_exact(text: &str) {
    let n = Normalized::new(text);
    let view = n.as_str();
    let mut prev_end = 0;
    for (i, c) in view.char_indices() {
        let r = n.original_range(i, i + c.len_utf8());
        assert!(r.start < r.end && r.end <= text.len(), "{r:?} of {text:?}");
        assert!(
            text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
            "{r:?} splits a character of {text:?}"
        );
        assert!(r.end >= prev_end, "offset map goes backwards in {text:?}");
        prev_end = r.end;
    }
    if !view.is_empty() {
        let whole = n.original_range(0, view.len());
        assert!(whole.end <= text.len());
    }
}

/// A spec reading `/text`, `/conversation`, `/sender` and `/id`, with no filters.
pub fn spec(framing: Framing, kind: Kind) -> MessageSpec {
    MessageSpec {
        name: "fuzz".into(),
        framing,
        kind,
        event: None,
        filters: Vec::new(),
        text: Some("/text".into()),
        conversation: Some("/conversation".into()),
        sender: Some("/sender".into()),
        message_id: Some("/id".into()),
    }
}

/// The spec sets the codec target decodes with; the input's first byte picks one.
fn spec_sets() -> Vec<Vec<MessageSpec>> {
    let filtered = MessageSpec {
        filters: vec![("/type".into(), json!("message"))],
        ..spec(Framing::Json, Kind::Message)
    };
    let chat_event = MessageSpec {
        event: Some("chat".into()),
        ..spec(Framing::Socketio, Kind::Message)
    };
    let end_event = MessageSpec {
        event: Some("close".into()),
        text: None,
        ..spec(Framing::Socketio, Kind::End)
    };
    vec![
        vec![spec(Framing::Socketio, Kind::Message)],
        vec![end_event, chat_event],
        vec![spec(Framing::Json, Kind::Message)],
        vec![filtered, spec(Framing::Socketio, Kind::Message)],
        vec![spec(Framing::Text, Kind::Message)],
    ]
}

/// The frame codecs on any frame: decoding never panics; a decoded frame re-encoded without the
/// override flag decodes to the same message (and is byte-identical when it had no flag); liyu's
/// own events encode to frames that decode back.
pub fn codec(data: &[u8]) {
    let Some((&pick, rest)) = cut(data).split_first() else {
        return;
    };
    let sets = spec_sets();
    let specs = &sets[pick as usize % sets.len()];
    let frame = String::from_utf8_lossy(rest);
    let Some(d) = codec::decode(specs, &frame) else {
        return;
    };
    let again = d.without_override();
    if !has_override_key(&frame) {
        assert_eq!(again, frame, "a frame without the key must pass unchanged");
    }
    let e = codec::decode(specs, &again).expect("the re-encoded frame decodes");
    assert!(!e.override_requested, "{again}");
    assert_eq!(e.spec, d.spec, "{frame} → {again}");
    assert_eq!(e.kind, d.kind);
    assert_eq!(e.text, d.text);
    assert_eq!(e.conversation, d.conversation);
    assert_eq!(e.sender, d.sender);
    assert_eq!(e.message_id, d.message_id);
    assert_eq!(e.namespace(), d.namespace());

    // A findings frame in the same framing decodes back with its fields (socketio: as its event).
    let event = json!({"type": "liyu.findings", "text": d.text, "conversation": d.conversation});
    let encoded = d.encode_event(&event);
    let framing = specs[d.spec].framing;
    let back = [MessageSpec {
        event: (framing == Framing::Socketio).then(|| "liyu.findings".to_string()),
        ..spec(framing, Kind::Message)
    }];
    if d.text.is_some() {
        let b = codec::decode(&back, &encoded).expect("an encoded event decodes");
        if framing != Framing::Text {
            assert_eq!(b.text, d.text, "{encoded}");
            assert_eq!(b.namespace(), d.namespace().filter(|ns| *ns != "/"));
        }
    }
}

/// Whether the payload of a decoded frame has a `liyu_override` key at all (whatever its value, and
/// however its name is escaped): only such a frame may be re-encoded.
fn has_override_key(frame: &str) -> bool {
    let payload = match serde_json::from_str::<serde_json::Value>(frame) {
        Ok(v) => v,
        Err(_) => {
            // A Socket.IO event: 42[/namespace,][ack][name, payload, …]
            let Some(rest) = frame.strip_prefix("42") else {
                return false;
            };
            let rest = match rest.strip_prefix('/') {
                Some(r) => r.split_once(',').map_or("", |(_, r)| r),
                None => rest,
            };
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            match serde_json::from_str::<serde_json::Value>(rest) {
                Ok(serde_json::Value::Array(args)) => args.get(1).cloned().unwrap_or_default(),
                _ => return false,
            }
        }
    };
    payload.get("liyu_override").is_some()
}

/// The config parser on any text: never panics, and every problem names `file:line:column` inside
/// the text.
pub fn config(data: &[u8]) {
    let text = text(data);
    if let Err(e) = Config::parse("fuzz.toml", &text) {
        assert!(!e.problems.is_empty());
        for p in &e.problems {
            located(p, "fuzz.toml", &text);
        }
    }
}

/// The lexicon loader on any text: never panics; every problem is located inside the text; a
/// lexicon that loads compiles or says why not, and then checks its own examples with exact spans.
pub fn lexicon(data: &[u8]) {
    let text = text(data);
    match Lexicon::from_sources([("fuzz.toml".to_string(), text.clone())]) {
        Err(e) => {
            for p in e.problems() {
                located(&p.to_string(), "fuzz.toml", &text);
            }
        }
        Ok(lexicon) => {
            let examples: Vec<String> = lexicon
                .rules()
                .iter()
                .flat_map(|r| r.examples.iter().chain(&r.counter_examples))
                .map(|e| e.value.clone())
                .collect();
            // A lexicon too large to compile is an error, not a crash.
            if let Ok(checker) = Checker::new(lexicon) {
                for e in examples.iter().take(16) {
                    spans_are_exact(&checker, e);
                }
            }
        }
    }
}

/// Asserts that `problem` starts `file:line:column: ` with a line and column inside `text`.
fn located(problem: &str, file: &str, text: &str) {
    let rest = problem
        .strip_prefix(file)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or_else(|| panic!("problem not located in {file}: {problem}"));
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no line in {problem}"));
    let column: usize = parts
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no column in {problem}"));
    let lines = text.split('\n').count();
    assert!(
        (1..=lines).contains(&line),
        "line {line} of {lines}: {problem}"
    );
    assert!(column >= 1, "{problem}");
}
