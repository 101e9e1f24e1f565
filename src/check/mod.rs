//! The synchronous checker: lexicons in, findings out.
//!
//! A [`Checker`] is built once from a [`Lexicon`] (all literal forms and the patterns' literal prefixes
//! into one Aho-Corasick automaton, each pattern into a regex) and then shared behind an `Arc`; [`Checker::check`] takes `&self` and
//! allocates only per call, so any number of threads may check at once. A reload builds a new checker
//! and swaps it in; this module never touches an async runtime, a socket or a database.
//!
//! The path of one message:
//! 1. [`normalize`] makes the view every form is matched against, with an offset map back;
//! 2. the matcher scans that view once with the automaton; a pattern's regex runs only where its
//!    prefixes were found;
//! 3. hits of `words` are confirmed by jieba on the clause around them only ([`segment`]);
//! 4. `near` terms are chained, `unless` contexts cancel hits, privacy detectors run on the digits;
//! 5. spans are mapped back to the original and given in bytes and UTF-16 code units.

pub mod lexicon;
mod matcher;
pub mod normalize;
mod privacy;
mod segment;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use lexicon::{Lexicon, LexiconError, Location, Problem, Rule};
pub use privacy::mask_numbers;

use matcher::Matcher;
/// Loads jieba's dictionary now (once per process), for a service that overlaps it with other
/// start-up work.
pub(crate) use segment::warm_up;

/// What kind of norm a finding breaks. The names are used on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 推诿塞责: passing the customer on instead of answering (首问负责).
    Deflection,
    /// 急躁不耐烦: hurrying or brushing off the customer.
    Impatience,
    /// 生硬指责/讽刺: blaming, lecturing or mocking the customer.
    Condescension,
    /// 粗俗辱骂: swearing and insults.
    Profanity,
    /// 夸大承诺: promising what the agent cannot guarantee.
    Overpromise,
    /// 泄露隐私: customers' personal data in the chat.
    Privacy,
    /// 迎声: the first reply of a conversation has no greeting.
    Greeting,
    /// 送声: the conversation ended without a farewell.
    Farewell,
    /// 及时回复: a customer waited too long for a reply.
    SlowReply,
}

impl Category {
    /// The categories a lexicon file may use; the others come from conversation rules.
    pub const LEXICAL: [Category; 6] = [
        Category::Deflection,
        Category::Impatience,
        Category::Condescension,
        Category::Profanity,
        Category::Overpromise,
        Category::Privacy,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Deflection => "deflection",
            Category::Impatience => "impatience",
            Category::Condescension => "condescension",
            Category::Profanity => "profanity",
            Category::Overpromise => "overpromise",
            Category::Privacy => "privacy",
            Category::Greeting => "greeting",
            Category::Farewell => "farewell",
            Category::SlowReply => "slow_reply",
        }
    }

    /// The Chinese name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Category::Deflection => "推诿塞责",
            Category::Impatience => "急躁不耐烦",
            Category::Condescension => "生硬指责",
            Category::Profanity => "粗俗辱骂",
            Category::Overpromise => "夸大承诺",
            Category::Privacy => "泄露隐私",
            Category::Greeting => "缺少迎声",
            Category::Farewell => "缺少送声",
            Category::SlowReply => "回复不及时",
        }
    }

    /// Whether lexicon rules may have this category.
    pub fn is_lexical(self) -> bool {
        Category::LEXICAL.contains(&self)
    }
}

impl FromStr for Category {
    type Err = ();
    fn from_str(s: &str) -> Result<Category, ()> {
        [
            Category::Deflection,
            Category::Impatience,
            Category::Condescension,
            Category::Profanity,
            Category::Overpromise,
            Category::Privacy,
            Category::Greeting,
            Category::Farewell,
            Category::SlowReply,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or(())
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How serious a finding is. `Block` findings hold a message back in block mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; not counted as a violation.
    Info,
    /// A violation; the message is delivered and annotated.
    Warn,
    /// A serious violation; in block mode the message is held back.
    Block,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Block => "block",
        }
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Severity, ()> {
        match s {
            "info" => Ok(Severity::Info),
            "warn" => Ok(Severity::Warn),
            "block" => Ok(Severity::Block),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One place where a text breaks a rule. Serialises to the wire form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule's id.
    pub rule: String,
    /// The rule's category.
    pub category: Category,
    /// The rule's severity; `info` when the span is inside quotation marks (the agent is quoting, not
    /// saying it).
    pub severity: Severity,
    /// Start of the span in UTF-16 code units (what a JavaScript string indexes).
    pub start: usize,
    /// End of the span in UTF-16 code units.
    pub end: usize,
    /// The original text of the span.
    pub matched: String,
    /// The norm broken and why.
    pub message: String,
    /// Approved replies.
    pub suggestions: Vec<String>,
    /// A replacement for the span, when the rule has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The span in bytes of the original text (library use; not on the wire).
    #[serde(skip)]
    pub bytes: Range<usize>,
}

/// Why a checker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The lexicon files have problems.
    #[error("{0}")]
    Lexicon(#[from] LexiconError),
    /// Patterns that parse but hit a compiler limit: one `file:line:column: what` line each.
    #[error("cannot compile the lexicon: {0}")]
    Compile(String),
}

/// The compiled checker. Build once, share behind an `Arc`, call [`check`](Checker::check) from any
/// thread.
///
/// # Resource usage
/// Building compiles every literal form (and the literal prefixes of the patterns) into one
/// character-wise Aho-Corasick automaton (1.6 MiB for the shipped lexicon) and loads jieba's
/// dictionary once per process (shared by all checkers); each pattern becomes a lazy-DFA regex on its
/// first use, or all of them at once with [`compile_all`](Checker::compile_all). Checking a message
/// allocates its normalised view (about 20 bytes per character) and the findings.
#[derive(Debug)]
pub struct Checker {
    rules: Vec<Rule>,
    matcher: Matcher,
}

impl Checker {
    /// Compile a lexicon.
    pub fn new(lexicon: Lexicon) -> Result<Checker, BuildError> {
        let rules = lexicon.rules().to_vec();
        let matcher = Matcher::build(&rules).map_err(BuildError::Compile)?;
        Ok(Checker { rules, matcher })
    }

    /// Compiles every regex of the lexicon now rather than on first use, and reports those that do
    /// not compile, each with the file, line and column it was written at.
    ///
    /// [`Checker::new`] parses every pattern (a syntax error is a lexicon error) but compiles
    /// none: regexes are compiled when a message first needs them, which makes a build, and so a
    /// start-up or a reload, cost what parsing and the automaton cost. Call this on a thread of
    /// its own to have them all ready, or before swapping a reloaded checker in, to refuse one
    /// that hits a compiler limit.
    pub fn compile_all(&self) -> Result<(), BuildError> {
        let errors = self.matcher.compile_all(&self.rules);
        match errors.is_empty() {
            true => Ok(()),
            false => Err(BuildError::Compile(errors.join("\n"))),
        }
    }

    /// The checker for the lexicons compiled into the binary.
    pub fn builtin() -> Result<Checker, BuildError> {
        Checker::new(Lexicon::builtin()?)
    }

    /// The rules this checker enforces.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Check one message. Findings are ordered by where they start.
    pub fn check(&self, text: &str) -> Vec<Finding> {
        self.findings(text, true)
    }

    fn findings(&self, text: &str, dedupe: bool) -> Vec<Finding> {
        let hits = self.matcher.scan(&self.rules, text, dedupe);
        let mut findings = Vec::with_capacity(hits.len());
        let mut utf16 = Utf16Cursor::new(text);
        for hit in hits {
            let rule = &self.rules[hit.rule];
            let start = utf16.at(hit.bytes.start);
            let end = utf16.at(hit.bytes.end);
            let fix = hit.fix.clone().or_else(|| rule.fix.clone());
            let suggestions = match &hit.fix {
                // A detector's suggestion is the masked number itself, then the rule's wording.
                Some(_) if rule.forms.detector.is_some() => {
                    let mut s = vec![fix.clone().unwrap_or_default()];
                    s.extend(rule.suggestions.iter().cloned());
                    s
                }
                _ => rule.suggestions.clone(),
            };
            findings.push(Finding {
                rule: rule.id.clone(),
                category: rule.category,
                severity: if hit.quoted {
                    Severity::Info
                } else {
                    rule.severity
                },
                start,
                end,
                matched: text[hit.bytes.clone()].to_string(),
                message: rule.message.clone(),
                suggestions,
                fix,
                bytes: hit.bytes,
            });
        }
        findings
    }

    /// How many literal needles the one automaton holds, and how many of them are pattern prefixes.
    pub fn needle_counts(&self) -> (usize, usize) {
        self.matcher.needle_counts()
    }

    /// The heap the one automaton takes, in bytes.
    pub fn automaton_bytes(&self) -> usize {
        self.matcher.automaton_bytes()
    }

    /// Patterns that the automaton cannot prefilter (no literal prefix), as (rule id, pattern): each
    /// runs over every message, so a lexicon should have few.
    pub fn unprefixed_patterns(&self) -> Vec<(&str, &str)> {
        self.matcher
            .unprefixed_patterns()
            .map(|(rule, p)| (self.rules[rule].id.as_str(), p))
            .collect()
    }

    /// Run every rule's examples and counter-examples; returns the ones that fail, located.
    pub fn verify_examples(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for rule in &self.rules {
            // Against every rule's own hits: another rule that covers the same words does not make
            // this rule's example fail.
            let fires = |s: &str| self.findings(s, false).iter().any(|f| f.rule == rule.id);
            for ex in &rule.examples {
                if !fires(&ex.value) {
                    problems.push(Problem {
                        at: ex.at.clone(),
                        what: format!("rule {} does not match its example {:?}", rule.id, ex.value),
                    });
                }
            }
            for ex in &rule.counter_examples {
                if fires(&ex.value) {
                    problems.push(Problem {
                        at: ex.at.clone(),
                        what: format!(
                            "rule {} matches its counter-example {:?}",
                            rule.id, ex.value
                        ),
                    });
                }
            }
        }
        problems
    }
}

/// Converts increasing byte offsets of one text to UTF-16 offsets without rescanning from the start.
struct Utf16Cursor<'a> {
    text: &'a str,
    byte: usize,
    units: usize,
}

impl<'a> Utf16Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Utf16Cursor {
            text,
            byte: 0,
            units: 0,
        }
    }

    fn at(&mut self, byte: usize) -> usize {
        // Findings come in order of start, but one's end lies past the next one's start when they
        // overlap: step back from where the cursor is rather than recount from the beginning,
        // which made a long text with many findings quadratic.
        if byte >= self.byte {
            self.units += self.text[self.byte..byte].encode_utf16().count();
        } else {
            self.units -= self.text[byte..self.byte].encode_utf16().count();
        }
        self.byte = byte;
        self.units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<Checker>();
        assert::<Finding>();
        assert::<Lexicon>();
        assert::<BuildError>();
    }

    #[test]
    fn utf16_cursor_counts_surrogate_pairs() {
        let s = "a😀中b";
        let mut c = Utf16Cursor::new(s);
        assert_eq!(c.at(1), 1);
        assert_eq!(c.at(5), 3);
        assert_eq!(c.at(8), 4);
        assert_eq!(c.at(5), 3);
        assert_eq!(c.at(1), 1);
        assert_eq!(c.at(9), 5);
        assert_eq!(c.at(0), 0);
    }
}
