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
    let lexicon = match dir {
        Some(dir) => Lexicon::from_dir(dir)
            .with_context(|| format!("cannot load the lexicons in {}", dir.display()))?,
        None => Lexicon::builtin().context("the built-in lexicons are broken")?,
    };
    Ok(Checker::new(lexicon)?)
}
