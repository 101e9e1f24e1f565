//! The `liyu` command line: glue around the checker library.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Try liyu in a browser: a built-in chat (customer page, agent console) behind liyu, and the
    /// dashboard.
    ///
    /// Everything runs on 127.0.0.1 with nothing to configure: the compiled-in lexicons, SQLite in a
    /// temporary folder. The three addresses are printed; Ctrl-C stops everything.
    Demo {
        /// Annotate (deliver every message and tell the agent) or block (hold back messages with a
        /// `block` finding until the agent sends them anyway).
        #[arg(long, value_enum, default_value_t = DemoMode::Annotate)]
        mode: DemoMode,
        /// Keep the findings store (SQLite) in this folder; without it a temporary folder is used and
        /// removed on exit.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Port of the demo's chat backend (the customer page); 0 takes a free one.
        #[arg(long, value_name = "PORT", default_value_t = 0)]
        chat_port: u16,
        /// Port of liyu's proxy (the agent console); 0 takes a free one.
        #[arg(long, value_name = "PORT", default_value_t = 0)]
        proxy_port: u16,
        /// Port of liyu's admin listener (the dashboard); 0 takes a free one.
        #[arg(long, value_name = "PORT", default_value_t = 0)]
        admin_port: u16,
        /// Nudge the agent when a customer has waited this long (e.g. 15s, 2m).
        #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = liyu::config::parse_duration)]
        nudge_after: Duration,
        /// The dashboard's token; without it a random one is made up (and printed).
        #[arg(long)]
        token: Option<String>,
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

/// What `liyu demo` does with a message that breaks a rule.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoMode {
    /// Deliver it and tell the agent.
    Annotate,
    /// Hold back messages with a `block` finding.
    Block,
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
        Command::Demo {
            mode,
            data,
            chat_port,
            proxy_port,
            admin_port,
            nudge_after,
            token,
        } => cli::demo::run(cli::demo::Options {
            mode: match mode {
                DemoMode::Annotate => liyu::config::Mode::Annotate,
                DemoMode::Block => liyu::config::Mode::Block,
            },
            data,
            ports: [chat_port, proxy_port, admin_port],
            nudge_after,
            token,
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("liyu: {e:#}");
            ExitCode::from(2)
        }
    }
}
