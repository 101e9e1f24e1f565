//! `liyu check`: messages in, findings out.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use liyu::Finding;
use serde_json::{json, Value};

use super::load_checker;
use crate::Format;

/// One message to check.
struct Input {
    /// The caller's id, or the 1-based line (argument) number.
    id: Value,
    text: String,
}

pub fn run(
    texts: Vec<String>,
    format: Format,
    lexicons: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let checker = load_checker(lexicons.as_deref())?;
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut bad_lines = 0usize;

    let mut results: Vec<Value> = Vec::new();
    let mut emit = |input: Input, out: &mut dyn Write| -> io::Result<()> {
        let findings = checker.check(&input.text);
        match format {
            Format::Jsonl => {
                serde_json::to_writer(&mut *out, &json!({"id": input.id, "findings": findings}))?;
                writeln!(out)
            }
            Format::Json => {
                results.push(json!({"id": input.id, "text": input.text, "findings": findings}));
                Ok(())
            }
            Format::Text => print_text(out, &input.text, &findings, color),
        }
    };

    if texts.is_empty() {
        let stdin = io::stdin();
        let mut reader = stdin.lock();
        let mut raw = Vec::new();
        let mut number = 0usize;
        loop {
            raw.clear();
            if reader.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            number += 1;
            while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                raw.pop();
            }
            let line = match std::str::from_utf8(&raw) {
                Ok(l) => l,
                Err(e) => {
                    // Say where, keep going: one bad line must not lose the rest of a batch.
                    let what = format!(
                        "line {number} is not valid UTF-8 (at byte {})",
                        e.valid_up_to()
                    );
                    eprintln!("liyu: {what}");
                    if format == Format::Jsonl {
                        serde_json::to_writer(&mut out, &json!({"id": number, "error": what}))?;
                        writeln!(out)?;
                    }
                    bad_lines += 1;
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(line, number) {
                Ok(input) => emit(input, &mut out)?,
                Err(what) => {
                    eprintln!("liyu: {what}");
                    if format == Format::Jsonl {
                        serde_json::to_writer(&mut out, &json!({"id": number, "error": what}))?;
                        writeln!(out)?;
                    }
                    bad_lines += 1;
                }
            }
        }
    } else {
        for (i, text) in texts.into_iter().enumerate() {
            emit(
                Input {
                    id: json!(i + 1),
                    text,
                },
                &mut out,
            )?;
        }
    }
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &results)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(if bad_lines > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A line is a JSON object with "text" (and optionally "id"), or else the message itself.
fn parse_line(line: &str, number: usize) -> Result<Input, String> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(trimmed) {
            let id = obj.remove("id").unwrap_or(json!(number));
            return match obj.remove("text") {
                Some(Value::String(text)) => Ok(Input { id, text }),
                Some(_) => Err(format!("line {number}: \"text\" is not a string")),
                None => Err(format!("line {number}: JSON object without \"text\"")),
            };
        }
    }
    Ok(Input {
        id: json!(number),
        text: line.to_string(),
    })
}

/// The message with spans highlighted (reverse video on a terminal, 【】 elsewhere), then each
/// finding: rule, category, severity, norm, suggestions and fix.
fn print_text(
    out: &mut dyn Write,
    text: &str,
    findings: &[Finding],
    color: bool,
) -> io::Result<()> {
    let (open, close) = if color {
        ("\x1b[1;4;31m", "\x1b[0m")
    } else {
        ("【", "】")
    };
    let mut shown = String::new();
    let mut at = 0;
    for f in findings {
        if f.bytes.start < at {
            continue; // overlapping spans: the first one is highlighted
        }
        shown.push_str(&text[at..f.bytes.start]);
        shown.push_str(open);
        shown.push_str(&text[f.bytes.clone()]);
        shown.push_str(close);
        at = f.bytes.end;
    }
    shown.push_str(&text[at..]);
    writeln!(out, "{shown}")?;
    if findings.is_empty() {
        writeln!(out, "  ✓ 未发现问题 (no findings)")?;
    }
    for f in findings {
        writeln!(
            out,
            "  {} {} [{} {}] 「{}」 ({}..{})",
            match f.severity {
                liyu::Severity::Block => "✗",
                liyu::Severity::Warn => "!",
                liyu::Severity::Info => "·",
            },
            f.rule,
            f.category.label(),
            f.severity,
            f.matched,
            f.start,
            f.end
        )?;
        writeln!(out, "    {}", f.message)?;
        for s in &f.suggestions {
            writeln!(out, "    建议: {s}")?;
        }
        if let Some(fix) = &f.fix {
            writeln!(out, "    改为: {fix}")?;
        }
    }
    writeln!(out)
}
