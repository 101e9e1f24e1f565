//! Subcommands of the `liyu` binary.

pub mod check;
pub mod demo;
pub mod lexicon;
pub mod serve;

use std::path::Path;

use anyhow::Context;
use liyu::{Checker, Lexicon};

/// The checker for `--lexicons DIR`, or the built-in one.
pub fn load_checker(dir: Option<&Path>) -> anyhow::Result<Checker> {
    let Some(dir) = dir else {
        let lexicon = Lexicon::builtin().context("the built-in lexicons are broken")?;
        return Ok(Checker::new(lexicon)?);
    };
    let lexicon = Lexicon::from_dir(dir)
        .with_context(|| format!("cannot load the lexicons in {}", dir.display()))?;
    let checker = Checker::new(lexicon)?;
    // Regexes compile on first use; a user's lexicon is compiled whole now, so that a pattern over
    // a compiler limit stops the command with its place instead of never matching. (The built-in
    // lexicons are compiled by the test suite.)
    checker
        .compile_all()
        .with_context(|| format!("cannot load the lexicons in {}", dir.display()))?;
    Ok(checker)
}
