//! `liyu serve` between peers it did not write: a WebSocket server and client built on Python's
//! `websockets` package (tests/peers/ws_peers.py) exchange 10,000 random frames through liyu in
//! annotate mode.
//!
//! The frames are generated here from a fixed seed: JSON chat messages (a few per cent breaking a
//! rule), JSON that is not a chat message, plain text, unicode-heavy text, binary, large frames
//! (100–900 KB, under the 1 MiB default limit), some sent fragmented, text fragments sometimes cut
//! inside a character. Every frame carries its sequence number: a chat message in its `id`, other
//! JSON in `seq`, text as a `#<seq> ` prefix, binary in its first four bytes (big-endian).
//!
//! Expected findings frames come from the same built-in checker liyu runs: a chat message gets one
//! exactly when `Checker::check` finds anything in its text. liyu annotates every finding, `info`
//! ones included (a quoted phrase is downgraded to info and still shown), so the expectation counts
//! all severities. The conversation-level greeting finding is kept out of the picture by opening
//! every conversation with a message that starts with "您好," (the first agent message of a
//! conversation is the only one judged for a greeting); a greeting finding would therefore show up
//! as a findings frame nobody expected, or as a findings list different from the checker's.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::harness::{Proxy, JSON_CHAT};
use crate::util::{checker, repo};

const FRAMES: usize = 10_000;
const SEED: u64 = 0x6c69_7975_5f77_7331;
/// Conversations the chat messages are spread over.
const CONVERSATIONS: u64 = 60;
/// Large frames are between these sizes (bytes of payload).
const LARGE: (usize, usize) = (100 * 1024, 900 * 1024);

/// xorshift64*: small, seeded, good enough to shuffle test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }

    fn per_mille(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const CLEAN: &[&str] = &[
    "请您稍等,马上为您办理",
    "您好,请问有什么可以帮您?",
    "好的,我马上为您查询订单状态",
    "感谢您的耐心等待,问题已经处理好了",
    "这个问题我帮您反馈给相关部门,稍后回复您",
    "请问还有什么可以帮您?",
    "祝您生活愉快,再见",
    "已经为您登记,预计三个工作日内处理完毕",
    "麻烦您提供一下订单号,我帮您查一下",
    "非常抱歉给您带来不便",
    "好的,明白了,我这边马上跟进",
    "请您放心,退款会原路返回",
];

const RUDE: &[&str] = &[
    "有牌子,自己看",
    "快点,我要下班了",
    "去死吧",
    "没看我正忙着吗",
    "这不归我管",
    "你自己不会看吗",
    "爱买不买",
    "我也没办法,你找别人吧",
];

const PREFIXES: &[&str] = &["", "", "", "", "亲,", "好的,", "嗯嗯,", "Hi, "];
const SUFFIXES: &[&str] = &["", "", "", "。", "!", "~", " 😊", "🙏🏻", "…"];

/// Pieces of unicode-heavy text: emoji sequences, CJK (also beyond the BMP), combining marks, RTL
/// scripts and controls, zero-width characters, C0 controls, noncharacters.
const UNICODE: &[&str] = &[
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🇨🇳",
    "❤️",
    "🏳️‍🌈",
    "😀",
    "礼",
    "语",
    "客服",
    "𠀀",
    "𪚥",
    "𝕏",
    "e\u{301}",
    "a\u{308}\u{323}",
    "Z\u{36b}\u{33e}\u{35b}\u{346}",
    "\u{1100}\u{1161}\u{11a8}",
    "مرحبا",
    "שלום",
    "\u{202e}abc\u{202c}",
    "\u{200f}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}",
    "\u{0}",
    "\u{1f}",
    "\u{7f}",
    "\u{fffd}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{10ffff}",
    "\\",
    "\"",
    "\n",
    "\t",
    " ",
];

enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Text(t) => t.len(),
            Payload::Binary(b) => b.len(),
        }
    }
}

struct Frame {
    /// What was generated, for the counts and for reporting differences.
    label: &'static str,
    payload: Payload,
    fragments: usize,
    /// Text fragments cut at byte offsets (possibly inside a character) rather than between
    /// characters.
    split_utf8: bool,
}

/// The findings frame a chat message should get.
struct Expected {
    conversation: String,
    findings: Value,
    /// Only info-severity findings (a frame is still expected).
    info_only: bool,
}

/// Generates the frames and the findings frames they should cause, keyed by message id.
fn generate() -> (Vec<Frame>, BTreeMap<u64, Expected>) {
    let mut rng = Rng(SEED);
    let mut frames = Vec::with_capacity(FRAMES);
    let mut expected = BTreeMap::new();
    let mut greeted: HashSet<u64> = HashSet::new();
    for seq in 0..FRAMES {
        let roll = rng.below(1000);
        let (label, payload) = if roll < 6 {
            match rng.below(3) {
                0 => ("large text", Payload::Text(large_text(&mut rng, seq))),
                1 => ("large binary", Payload::Binary(large_binary(&mut rng, seq))),
                _ => {
                    let text = large_chat_text(&mut rng);
                    let frame = chat(&mut rng, seq, text, &mut greeted, &mut expected);
                    ("large chat", Payload::Text(frame))
                }
            }
        } else if roll < 550 {
            let text = chat_text(&mut rng);
            let frame = chat(&mut rng, seq, text, &mut greeted, &mut expected);
            ("chat", Payload::Text(frame))
        } else if roll < 650 {
            ("other JSON", Payload::Text(other_json(&mut rng, seq)))
        } else if roll < 750 {
            ("plain text", Payload::Text(plain_text(&mut rng, seq)))
        } else if roll < 850 {
            (
                "unicode",
                Payload::Text(unicode_text(&mut rng, seq, 1, 200)),
            )
        } else {
            ("binary", Payload::Binary(binary(&mut rng, seq)))
        };
        let large = payload.len() >= LARGE.0;
        let fragments = if rng.per_mille(if large { 250 } else { 50 }) {
            rng.range(2, if large { 64 } else { 8 })
        } else {
            1
        };
        let split_utf8 = rng.per_mille(500);
        frames.push(Frame {
            label,
            payload,
            fragments,
            split_utf8,
        });
    }
    (frames, expected)
}

/// The text of an ordinary chat message: mostly clean, a few per cent rude, a few quoting.
fn chat_text(rng: &mut Rng) -> String {
    let body = match rng.below(1000) {
        0..40 => rng.pick(RUDE).to_string(),
        40..50 => format!("客户刚才说“{}”,我们已经记录", rng.pick(RUDE)),
        50..200 => format!("{},{}", rng.pick(CLEAN), rng.pick(CLEAN)),
        200..260 => format!("{}{}", rng.pick(CLEAN), unicode_pieces(rng, 1, 6)),
        _ => rng.pick(CLEAN).to_string(),
    };
    format!("{}{body}{}", rng.pick(PREFIXES), rng.pick(SUFFIXES))
}

/// A long agent message: clean sentences, sometimes a rude one in the middle.
fn large_chat_text(rng: &mut Rng) -> String {
    let target = rng.range(LARGE.0, LARGE.1 - 1024);
    let mut rude_at = rng.per_mille(300).then_some(target / 2);
    let mut text = String::with_capacity(target + 64);
    while text.len() < target {
        if rude_at.is_some_and(|at| text.len() >= at) {
            text.push_str(rng.pick(RUDE));
            rude_at = None;
        } else {
            text.push_str(rng.pick(CLEAN));
        }
        text.push('。');
    }
    text
}

/// A chat message frame in the JSON_CHAT shape, in one of several spellings; records the findings
/// frame it should get.
fn chat(
    rng: &mut Rng,
    seq: usize,
    text: String,
    greeted: &mut HashSet<u64>,
    expected: &mut BTreeMap<u64, Expected>,
) -> String {
    let conv = rng.below(CONVERSATIONS);
    // The first message of each conversation greets, so no greeting finding is due anywhere.
    let text = if greeted.insert(conv) {
        format!("您好,{text}")
    } else {
        text
    };
    let conversation = format!("conv-{conv}");
    let sender = format!("agent-{}", conv % 7);
    let findings = checker().check(&text);
    if !findings.is_empty() {
        let info_only = findings.iter().all(|f| f.severity == liyu::Severity::Info);
        expected.insert(
            seq as u64,
            Expected {
                conversation: conversation.clone(),
                findings: serde_json::to_value(&findings).unwrap(),
                info_only,
            },
        );
    }
    let large = text.len() >= LARGE.0;
    let mut fields = vec![
        ("type", json!("message")),
        ("id", json!(seq)),
        ("conversation", json!(conversation)),
        ("sender", json!(sender)),
        ("text", json!(text)),
    ];
    let spelling = if large { rng.below(2) } else { rng.below(10) };
    if spelling == 1 {
        // Shuffled keys and extra fields.
        fields.push(("ts", json!(1_700_000_000_000u64 + seq as u64)));
        fields.push((
            "meta",
            json!({"client": "console", "v": [1, 2.5, null, true]}),
        ));
        for i in (1..fields.len()).rev() {
            fields.swap(i, rng.range(0, i));
        }
    }
    let object: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let object = Value::Object(object);
    match spelling {
        2 => serde_json::to_string_pretty(&object).unwrap(),
        3 => format!("\n\t {object}\r\n"),
        4 => ascii_escaped(&object.to_string()),
        _ => object.to_string(),
    }
}

/// JSON with every non-ASCII character written as `\uXXXX` escapes (surrogate pairs beyond the BMP),
/// as JSON encoders with "ensure ASCII" write it.
fn ascii_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// JSON that is not a chat message (its rude text must not be checked).
fn other_json(rng: &mut Rng, seq: usize) -> String {
    let conversation = format!("conv-{}", rng.below(CONVERSATIONS));
    let text = rng.pick(RUDE);
    let v = match rng.below(8) {
        0 => json!({"type": "typing", "seq": seq, "conversation": conversation}),
        1 => json!({"type": "presence", "seq": seq, "status": "online", "agents": [1, 2, 3]}),
        2 => json!({"type": "receipt", "seq": seq, "conversation": conversation, "text": text}),
        3 => json!({"type": "Message", "seq": seq, "conversation": conversation, "text": text}),
        4 => {
            json!({"type": "message", "id": seq, "conversation": conversation, "body": text})
        }
        5 => json!({"type": "message", "id": seq, "conversation": conversation, "text": 42}),
        6 => json!([{"type": "message", "id": seq, "conversation": conversation, "text": text}]),
        _ => json!({"seq": seq, "nested": {"type": "message", "text": text}}),
    };
    v.to_string()
}

/// Text that is not JSON (a rude phrase in it must not be checked either).
fn plain_text(rng: &mut Rng, seq: usize) -> String {
    let mut t = if rng.per_mille(100) {
        format!("{{#{seq} not JSON ")
    } else {
        format!("#{seq} ")
    };
    for _ in 0..rng.range(0, 30) {
        match rng.below(4) {
            0 => t.push_str(rng.pick(RUDE)),
            1 => t.push_str(rng.pick(CLEAN)),
            2 => t.push_str(rng.pick(&["hello", "world", "{", "}", "[", "\"type\":", "42"])),
            _ => t.push(' '),
        }
    }
    t
}

/// `#<seq> ` and then unicode pieces.
fn unicode_text(rng: &mut Rng, seq: usize, min: usize, max: usize) -> String {
    format!("#{seq} {}", unicode_pieces(rng, min, max))
}

/// `min..=max` unicode pieces or random scalar values.
fn unicode_pieces(rng: &mut Rng, min: usize, max: usize) -> String {
    let mut t = String::new();
    for _ in 0..rng.range(min, max) {
        if rng.per_mille(200) {
            // Any scalar value: skip the surrogate range.
            let c = loop {
                if let Some(c) = char::from_u32(rng.below(0x11_0000) as u32) {
                    break c;
                }
            };
            t.push(c);
        } else {
            t.push_str(rng.pick(UNICODE));
        }
    }
    t
}

fn seq_bytes(seq: usize) -> Vec<u8> {
    (seq as u32).to_be_bytes().to_vec()
}

/// Random bytes after the sequence number; some frames are invalid UTF-8 on purpose, some are a
/// rude chat message's JSON sent as binary (binary frames are never checked).
fn binary(rng: &mut Rng, seq: usize) -> Vec<u8> {
    let mut b = seq_bytes(seq);
    match rng.below(10) {
        0 => b.extend_from_slice(
            json!({"type": "message", "id": seq, "conversation": "conv-0", "text": rng.pick(RUDE)})
                .to_string()
                .as_bytes(),
        ),
        1 => b.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xf4, 0x90]),
        _ => {
            for _ in 0..rng.range(0, 4096) {
                b.push(rng.next() as u8);
            }
        }
    }
    b
}

fn large_binary(rng: &mut Rng, seq: usize) -> Vec<u8> {
    let size = rng.range(LARGE.0, LARGE.1);
    let mut b = seq_bytes(seq);
    while b.len() < size {
        b.extend_from_slice(&rng.next().to_le_bytes());
    }
    b.truncate(size);
    b
}

fn large_text(rng: &mut Rng, seq: usize) -> String {
    let size = rng.range(LARGE.0, LARGE.1 - 16);
    // A few kilobytes of unicode repeated, with the position spelt in now and then so that a
    // misplaced chunk would differ.
    let chunk = unicode_text(rng, seq, 500, 1500);
    let mut t = String::with_capacity(size + chunk.len());
    let mut n = 0;
    while t.len() < size {
        t.push_str(&chunk);
        t.push_str(&format!("<{n}>"));
        n += 1;
    }
    t
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A child process killed (if still running) when the test ends, however it ends.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `kid` to exit without blocking the runtime, at most `limit`.
async fn wait_exit(kid: &mut Kid, what: &str, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = kid.0.try_wait().expect("child status") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn python() -> Command {
    let mut c = Command::new("python3");
    c.arg(repo("tests/peers/ws_peers.py"));
    c.stdin(Stdio::null());
    c
}

/// The Python package must be there: this test is not skipped when it is missing.
fn require_websockets() {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import sys, websockets, websockets.asyncio.client, websockets.asyncio.server; \
             sys.exit(int(websockets.__version__.split('.')[0]) < 14)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs python3 with the `websockets` package (>= 14); run tests/run.sh, which \
         installs it, or `python3 -m pip install -U websockets`"
    );
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// How a received message differs from the frame sent, or None when it is the same.
fn difference(sent: &Frame, got: &Value) -> Option<String> {
    let (kind, data) = match &sent.payload {
        Payload::Text(t) => ("text", t.clone()),
        Payload::Binary(b) => ("binary", base64(b)),
    };
    let got_kind = got["kind"].as_str().unwrap_or("?");
    let got_data = got["data"].as_str().unwrap_or("");
    if got_kind != kind {
        return Some(format!("sent {kind}, received {got_kind}"));
    }
    if got_data == data {
        return None;
    }
    let at = data
        .chars()
        .zip(got_data.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let around = |s: &str| {
        s.chars()
            .skip(at.saturating_sub(10))
            .take(30)
            .collect::<String>()
    };
    Some(format!(
        "{kind} of {} chars sent, {} received, first difference at char {at} (base64 for \
         binary): sent {:?}, received {:?}",
        data.chars().count(),
        got_data.chars().count(),
        around(&data),
        around(got_data)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_peers_exchange_10000_frames_through_liyu() {
    require_websockets();
    let started = Instant::now();
    let (frames, expected) = generate();
    let generated_in = started.elapsed();

    let dir: PathBuf = std::env::temp_dir().join(format!("liyu-thirdparty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let frames_path = dir.join("frames.json");
    let server_out = dir.join("server.json");
    let client_out = dir.join("client.json");
    {
        let list: Vec<Value> = frames
            .iter()
            .map(|f| {
                let (kind, data) = match &f.payload {
                    Payload::Text(t) => ("text", t.clone()),
                    Payload::Binary(b) => ("binary", base64(b)),
                };
                let split = if f.split_utf8 { "utf8" } else { "chars" };
                json!({"kind": kind, "data": data, "fragments": f.fragments, "split": split})
            })
            .collect();
        let file = std::fs::File::create(&frames_path).unwrap();
        serde_json::to_writer(BufWriter::new(file), &list).unwrap();
    }

    // The chat server: Python, port 0, the port on its first stdout line.
    let mut server = Kid(python()
        .args(["server", "--out"])
        .arg(&server_out)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs"));
    let stdout = server.0.stdout.take().unwrap();
    let line = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("the Python server printed its port in time")
    .unwrap()
    .expect("the Python server's stdout");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the Python server printed {line:?}, not a port"));

    let proxy = Proxy::start(&format!("ws://127.0.0.1:{port}"), "", JSON_CHAT).await;

    // The agent's console: Python, through liyu.
    let exchange = Instant::now();
    let mut client = Kid(python()
        .args(["client", "--url"])
        .arg(format!("ws://{}/chat", proxy.addr))
        .arg("--frames")
        .arg(&frames_path)
        .arg("--out")
        .arg(&client_out)
        .args(["--expect", &expected.len().to_string(), "--wait", "30"])
        .spawn()
        .expect("python3 runs"));
    let status = wait_exit(&mut client, "the Python client", Duration::from_secs(120)).await;
    assert!(
        status.success(),
        "the Python client failed ({status}); its stderr is above"
    );
    let status = wait_exit(&mut server, "the Python server", Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "the Python server failed ({status}); its stderr is above"
    );
    let exchanged_in = exchange.elapsed();

    // What reached the chat server: every frame, byte-identical, in order.
    let server_got = read_json(&server_out);
    let received = server_got["received"].as_array().unwrap();
    let mut wrong = Vec::new();
    for (seq, (sent, got)) in frames.iter().zip(received).enumerate() {
        if let Some(d) = difference(sent, got) {
            wrong.push(format!("frame {seq} ({}): {d}", sent.label));
        }
    }
    assert!(
        wrong.is_empty() && received.len() == FRAMES,
        "the chat server received {} messages for {FRAMES} sent; {} differ:\n{}",
        received.len(),
        wrong.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        server_got["close_code"], 1000,
        "the chat server saw the client's normal close: {server_got:?}"
    );

    // What reached the agent: a findings frame for exactly the messages with findings.
    let client_got = read_json(&client_out);
    let mut problems = Vec::new();
    let mut got_ids = BTreeSet::new();
    for m in client_got["received"].as_array().unwrap() {
        let frame: Option<Value> = (m["kind"] == "text")
            .then(|| serde_json::from_str(m["data"].as_str().unwrap()).ok())
            .flatten();
        let Some(frame) = frame.filter(|f| f["type"] == "liyu.findings") else {
            problems.push(format!("not a findings frame: {m}"));
            continue;
        };
        let Some(id) = frame["message_id"].as_u64() else {
            problems.push(format!("findings frame without a message id: {frame}"));
            continue;
        };
        if !got_ids.insert(id) {
            problems.push(format!("second findings frame for message {id}"));
        }
        let Some(want) = expected.get(&id) else {
            problems.push(format!("unexpected findings frame: {frame}"));
            continue;
        };
        if frame["conversation"] != want.conversation.as_str()
            || frame["action"] != "delivered"
            || frame["findings"] != want.findings
        {
            problems.push(format!(
                "message {id}: findings frame {frame}, expected conversation {} action \
                 delivered findings {}",
                want.conversation, want.findings
            ));
        }
    }
    let want_ids: BTreeSet<u64> = expected.keys().copied().collect();
    let missing: Vec<u64> = want_ids.difference(&got_ids).copied().collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} findings frames missing, for messages {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problems with what the agent received:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .map(|p| p.chars().take(800).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        client_got["close_code"], 1000,
        "the client's close was answered normally: {}",
        client_got["close_code"]
    );

    // The figures.
    let mut by_label: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for f in &frames {
        let e = by_label.entry(f.label).or_default();
        e.0 += 1;
        e.1 += f.payload.len();
    }
    let bytes: usize = frames.iter().map(|f| f.payload.len()).sum();
    let fragmented = frames.iter().filter(|f| f.fragments > 1).count();
    let mid_char = frames
        .iter()
        .filter(|f| f.fragments > 1 && f.split_utf8 && matches!(f.payload, Payload::Text(_)))
        .count();
    let chats =
        by_label.get("chat").map_or(0, |c| c.0) + by_label.get("large chat").map_or(0, |c| c.0);
    let info_only = expected.values().filter(|e| e.info_only).count();
    eprintln!(
        "thirdparty: {FRAMES} frames, {bytes} bytes ({:.1} MB) sent by Python websockets {} through \
         liyu, all received byte-identical and in order",
        bytes as f64 / 1e6,
        client_got["send_seconds"].as_f64().map_or(String::new(), |s| format!("in {s:.1} s")),
    );
    for (label, (n, b)) in &by_label {
        eprintln!("thirdparty:   {label}: {n} frames, {b} bytes");
    }
    eprintln!(
        "thirdparty: {fragmented} sent fragmented ({mid_char} text ones cut at byte offsets); \
         {chats} chat messages, {} with findings ({} warn/block, {info_only} info only); {} \
         findings frames received, all for those messages, findings equal to the checker's",
        expected.len(),
        expected.len() - info_only,
        got_ids.len()
    );
    eprintln!(
        "thirdparty: generated in {:.1} s, exchanged in {:.1} s, {:.1} s in all",
        generated_in.as_secs_f64(),
        exchanged_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    proxy.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
