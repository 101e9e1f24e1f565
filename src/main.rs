//! The `liyu` command line: glue around the checker library.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// 礼语 liyu: a service-language checker for Chinese customer-service chat.
#[derive(Parser)]
#[command(name = "liyu", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check messages for forbidden service language and print the findings.
    ///
    /// Messages come from the arguments or, without them, from standard input, one a line: plain
    /// text, or JSON objects with "text" (and "id"). Output is one block (text), one array (json) or
    /// one object a line in input order (jsonl).
    Check {
        /// Messages to check; without them, standard input is read.
        texts: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Load lexicons from this folder instead of the built-in ones.
        #[arg(long, value_name = "DIR")]
        lexicons: Option<PathBuf>,
    },
    /// Run the proxy in front of a chat system (see liyu.example.toml).
    Serve {
        /// The config file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Work with lexicon files.
    Lexicon {
        #[command(subcommand)]
        command: LexiconCommand,
    },
}

#[derive(Subcommand)]
enum LexiconCommand {
    /// Validate the lexicons in a folder and run every rule's examples; problems print as
    /// file:line:column: what.
    Check {
        /// The folder of *.toml lexicon files.
        dir: PathBuf,
    },
}

/// How `liyu check` prints findings.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The message with each span highlighted, the rule, the norm and the suggestion.
    Text,
    /// One JSON array of results.
    Json,
    /// One JSON object a line: {"id", "findings"}.
    Jsonl,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Check {
            texts,
            format,
            lexicons,
        } => cli::check::run(texts, format, lexicons),
        Command::Lexicon {
            command: LexiconCommand::Check { dir },
        } => cli::lexicon::check(&dir),
        Command::Serve { config } => cli::serve::run(&config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("liyu: {e:#}");
            ExitCode::from(2)
        }
    }
}
