//! `liyu check` and `liyu lexicon check` as a user runs them.

use serde_json::Value;

use crate::util::{liyu, repo, shared, utf16_slice};

fn jsonl(out: &[u8]) -> Vec<Value> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

/// Runs `liyu lexicon check` on a folder of the given files; its exit code and stdout.
fn lexicon_check(name: &str, files: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("liyu-{name}-lexicon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let out = liyu(&["lexicon", "check", dir.to_str().unwrap()], b"");
    std::fs::remove_dir_all(&dir).ok();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn jsonl_keeps_ids_and_input_order_and_reads_plain_lines() {
    let input = "{\"id\": \"a\", \"text\": \"有牌子,自己看\", \"extra\": 1}\n请您稍等\n\n{\"id\": 7, \"text\": \"您好\"}\n";
    let out = liyu(&["check", "--format", "jsonl"], input.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = jsonl(&out.stdout);
    let ids: Vec<&Value> = rows.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&Value::from("a"), &Value::from(2), &Value::from(7)]);
    let f = &rows[0]["findings"][0];
    assert_eq!(f["matched"], "有牌子,自己看");
    assert_eq!(f["start"], 0);
    assert_eq!(f["end"], 7);
    assert_eq!(f["category"], "deflection");
    assert!(f["suggestions"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(rows[1]["findings"], Value::Array(vec![]));
}

#[test]
fn utf16_offsets_on_the_wire_index_like_javascript() {
    let text = "😀你给我滚";
    let out = liyu(&["check", "--format", "jsonl"], text.as_bytes());
    let rows = jsonl(&out.stdout);
    let f = &rows[0]["findings"][0];
    let (s, e) = (
        f["start"].as_u64().unwrap() as usize,
        f["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(utf16_slice(text, s, e), f["matched"].as_str().unwrap());
    assert!(s >= 2, "the emoji is two UTF-16 units");
}

#[test]
fn invalid_utf8_line_is_reported_and_the_rest_still_checked() {
    let mut input = b"\xff\xfe broken\n".to_vec();
    input.extend_from_slice("快点,我要下班了\n".as_bytes());
    let out = liyu(&["check", "--format", "jsonl"], &input);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1 is not valid UTF-8"), "{err}");
    let rows = jsonl(&out.stdout);
    assert_eq!(rows.len(), 2);
    assert!(rows[0]["error"].is_string());
    assert_eq!(rows[1]["id"], 2);
    assert!(!rows[1]["findings"].as_array().unwrap().is_empty());
}

#[test]
fn text_format_highlights_the_span_and_gives_the_suggestion() {
    let out = liyu(&["check", "有牌子,自己看"], b"");
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("【有牌子,自己看】"), "{s}");
    assert!(s.contains("建议"), "{s}");
    let out = liyu(&["check", "您好,很高兴为您服务"], b"");
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("未发现问题"));
}

#[test]
fn json_format_is_one_array() {
    let out = liyu(&["check", "--format", "json", "去死吧", "您好"], b"");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["text"], "去死吧");
}

#[test]
fn missing_lexicon_folder_is_a_clear_error() {
    let out = liyu(
        &["check", "--lexicons", "/nonexistent/lexicons", "你好"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/lexicons") && err.contains("cannot read the folder"),
        "{err}"
    );
}

#[test]
fn lexicon_check_accepts_the_shipped_lexicons() {
    let out = liyu(
        &["lexicon", "check", repo("lexicons").to_str().unwrap()],
        b"",
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ok: "));
}

#[test]
fn lexicon_check_names_file_line_and_column_of_each_problem() {
    let (code, s) = lexicon_check(
        "broken",
        &[
            (
                "impatience.toml",
                r#"category = "impatience"
[[rule]]
id = "impatience.hurry"
severity = "warn"
message = "急躁"
source = "common practice"
phrases = ["快点"]
examples = ["请您稍等"]
counter_examples = ["快点吧"]

[[rule]]
id = "impatience.bad"
severity = "loud"
message = "x"
source = "common practice"
patterns = ['(']
examples = ["x"]
"#,
            ),
            (
                "other.toml",
                "category = \"impatience\"\n[[rule]]\nid = \"impatience.x\"\nsevrity = \"warn\"\n",
            ),
        ],
    );
    assert_eq!(code, Some(1));
    assert!(
        s.contains("impatience.toml:13:12: unknown severity \"loud\""),
        "{s}"
    );
    assert!(s.contains("impatience.toml:16:13: invalid pattern"), "{s}");
    assert!(s.contains("other.toml:4:1: unknown field `sevrity`"), "{s}");
}

#[test]
fn lexicon_check_runs_examples_and_counter_examples() {
    let (code, s) = lexicon_check(
        "example",
        &[("impatience.toml", "category = \"impatience\"\n[[rule]]\nid = \"impatience.hurry\"\nseverity = \"warn\"\nmessage = \"急躁\"\nsource = \"common practice\"\nphrases = [\"快点\"]\nexamples = [\"请您稍等\"]\ncounter_examples = [\"快点吧\"]\n")],
    );
    assert_eq!(code, Some(1));
    assert!(
        s.contains(
            "impatience.toml:8:13: rule impatience.hurry does not match its example \"请您稍等\""
        ),
        "{s}"
    );
    assert!(
        s.contains(
            "impatience.toml:9:21: rule impatience.hurry matches its counter-example \"快点吧\""
        ),
        "{s}"
    );
}

#[test]
fn shared_score_script_accepts_the_jsonl_output() {
    let labels = shared("eval/messages.jsonl");
    let input = std::fs::read(&labels).unwrap();
    let out = liyu(&["check", "--format", "jsonl"], &input);
    assert!(out.status.success());
    let path = std::env::temp_dir().join(format!("liyu-eval-{}.jsonl", std::process::id()));
    std::fs::write(&path, &out.stdout).unwrap();
    let score = std::process::Command::new("python3")
        .arg(shared("eval/score.py"))
        .arg(&labels)
        .arg(&path)
        .args(["--min-recall", "0.95", "--min-precision", "0.95"])
        .output()
        .expect("python3 runs");
    std::fs::remove_file(&path).ok();
    let report = String::from_utf8_lossy(&score.stdout);
    assert!(score.status.success(), "{report}");
    assert!(report.contains("bad spans 0"), "{report}");
}

#[test]
fn every_shipped_config_is_valid() {
    for path in [
        "liyu.example.toml",
        "examples/json-chat.toml",
        "examples/socketio-chat.toml",
        "examples/chatwoot.toml",
    ] {
        let text = std::fs::read_to_string(repo(path)).unwrap();
        if let Err(e) = liyu::config::Config::parse(path, &text) {
            panic!("{path}: {e}");
        }
    }
}

#[test]
fn serve_names_the_line_and_key_of_a_config_mistake() {
    let path = std::env::temp_dir().join(format!("liyu-bad-config-{}.toml", std::process::id()));
    std::fs::write(&path, "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"ws://127.0.0.1:1\"\n\n[check]\nmdoe = \"block\"\n").unwrap();
    let out = liyu(&["serve", "--config", path.to_str().unwrap()], b"");
    std::fs::remove_file(&path).ok();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":6:1: unknown field `mdoe`"), "{err}");
}

#[test]
fn lexicon_check_names_a_pattern_that_parses_but_does_not_compile() {
    // The checker compiles regexes on first use; `lexicon check` compiles them all, so a pattern
    // over the compiler's size limit is still reported where it was written, not silently unused.
    let (code, s) = lexicon_check(
        "huge",
        &[("impatience.toml", "category = \"impatience\"\n[[rule]]\nid = \"impatience.huge\"\nseverity = \"warn\"\nmessage = \"急躁\"\nsource = \"common practice\"\npatterns = ['快点(\\w{100}){100}']\nexamples = [\"快点\"]\n")],
    );
    assert_eq!(code, Some(1), "{s}");
    assert!(
        s.contains("impatience.toml:7:13: pattern of impatience.huge does not compile"),
        "{s}"
    );
}
