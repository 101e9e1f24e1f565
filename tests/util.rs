//! Shared helpers: the built-in checker, the `liyu` binary, labelled data files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use liyu::{Checker, Finding, Severity};
use serde_json::Value;

/// The checker with the shipped lexicons, built once for the whole test binary.
pub fn checker() -> &'static Checker {
    static C: OnceLock<Checker> = OnceLock::new();
    C.get_or_init(|| Checker::builtin().expect("the shipped lexicons load"))
}

/// Findings of warn or block severity: what counts as flagging a message.
pub fn flags(text: &str) -> Vec<Finding> {
    checker()
        .check(text)
        .into_iter()
        .filter(|f| f.severity >= Severity::Warn)
        .collect()
}

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A path in `../shared`, the evaluation material beside the repository (present in CI and on
/// developers' machines).
pub fn shared(path: &str) -> PathBuf {
    repo("../shared").join(path)
}

/// Runs `liyu` with `args`, feeding `stdin`.
pub fn liyu(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_liyu"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("liyu runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // Write from another thread: a large input must not deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("liyu finishes");
    writer.join().unwrap();
    out
}

/// The text between UTF-16 offsets `start..end`, as a JavaScript string would slice it.
pub fn utf16_slice(text: &str, start: usize, end: usize) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    String::from_utf16(&units[start..end]).expect("span on a character boundary")
}

/// A labelled message.
pub struct Labelled {
    pub id: String,
    pub text: String,
    pub flag: bool,
    pub categories: Vec<String>,
}

/// Reads a labelled JSONL file (`{"id", "text", "flag", "categories"}` a line).
pub fn labelled(path: &Path) -> Vec<Labelled> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("labelled line is JSON");
            Labelled {
                id: v["id"].as_str().unwrap().to_string(),
                text: v["text"].as_str().unwrap().to_string(),
                flag: v["flag"].as_bool().unwrap(),
                categories: v["categories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            }
        })
        .collect()
}
