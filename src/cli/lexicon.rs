//! `liyu lexicon check DIR`.

use std::path::Path;
use std::process::ExitCode;

use liyu::check::BuildError;
use liyu::{Checker, Lexicon};

/// Validates a folder of lexicons and runs every example; prints each problem as
/// `file:line:column: what`.
pub fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    let lexicon = match Lexicon::from_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            for p in e.problems() {
                println!("{p}");
            }
            eprintln!("{} problem(s)", e.problems().len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let (rules, forms, files) = (
        lexicon.rules().len(),
        lexicon.surface_forms(),
        lexicon.files().len(),
    );
    let checker = match Checker::new(lexicon) {
        Ok(c) => c,
        Err(BuildError::Lexicon(e)) => {
            for p in e.problems() {
                println!("{p}");
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            println!("{}: {e}", dir.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    // One `file:line:column: what` line per pattern that does not compile.
    if let Err(BuildError::Compile(errors)) = checker.compile_all() {
        println!("{errors}");
        return Ok(ExitCode::FAILURE);
    }
    for (rule, pattern) in checker.unprefixed_patterns() {
        eprintln!(
            "note: {rule}: pattern {pattern:?} has no literal prefix, so it runs on every message"
        );
    }
    let problems = checker.verify_examples();
    for p in &problems {
        println!("{p}");
    }
    let examples: usize = checker
        .rules()
        .iter()
        .map(|r| r.examples.len() + r.counter_examples.len())
        .sum();
    if problems.is_empty() {
        let (needles, prefixes) = checker.needle_counts();
        eprintln!(
            "ok: {rules} rules, {forms} surface forms, {examples} examples in {files} files; \
             one automaton of {needles} needles ({prefixes} of them pattern prefixes), {:.1} MiB",
            checker.automaton_bytes() as f64 / (1024.0 * 1024.0)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} problem(s) in {rules} rules", problems.len());
        Ok(ExitCode::FAILURE)
    }
}
