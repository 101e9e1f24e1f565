//! 礼语 liyu: a real-time service-language checker for Chinese customer-service chat.
//!
//! Service norms for 便民服务中心, 政务服务中心 and customer-service teams list what staff must never
//! say to the people they serve (服务忌语: "有牌子,自己看", "下班了,明天再来", "我不明白,你去问××")
//! and what to say instead (文明用语: "请稍等", "请您到×号××窗口办理", "请慢走"). liyu flags the
//! first, with spans exact to the character, and suggests the second.
//!
//! This crate is the synchronous checker; the `liyu` binary puts a command line (and, later, a proxy
//! and a dashboard) around it.
//!
//! ```
//! use liyu::{Checker, Category};
//!
//! let checker = Checker::builtin().unwrap();
//! let findings = checker.check("下班了,明天再來");
//! assert!(findings.iter().any(|f| f.category == Category::Impatience));
//! // Spans point at the original text, here including the comma and the traditional 來.
//! let f = &findings[0];
//! assert_eq!(&"下班了,明天再來"[f.bytes.clone()], f.matched);
//! ```
//!
//! # Layout
//! - [`check`]: the checker — lexicon loading ([`check::lexicon`]), normalisation with an offset map
//!   ([`check::normalize`]), one Aho-Corasick automaton for every rule's literal forms and pattern
//!   prefixes, jieba only around word hits, privacy detectors.
//! - [`conversation`]: per-conversation rules (greeting, farewell, reply time), also synchronous.
//! - [`config`]: `liyu serve`'s configuration, TOML → validated [`config::Config`].
//! - [`proxy`]: the service around the checker — WebSocket and HTTP proxying, findings frames,
//!   reloads, graceful shutdown (tokio, hyper, tokio-tungstenite).
//! - [`store`]: findings storage (SQLite, PostgreSQL) behind a bounded queue and one writer task.
//! - [`web`]: the admin listener — API, live events, metrics, the dashboard, and `liyu-console.js`
//!   (the agent console component).
//! - [`demo`]: `liyu demo`'s chat backend (customer page, agent console) and the configuration it
//!   runs liyu with.
//! - `lexicons/` (in the repository): the rules, one TOML file per category, compiled into the crate.
#![deny(missing_docs)]

pub mod check;
pub mod config;
pub mod conversation;
pub mod demo;
pub mod proxy;
pub mod store;
pub mod web;

pub use check::{BuildError, Category, Checker, Finding, Lexicon, LexiconError, Severity};
