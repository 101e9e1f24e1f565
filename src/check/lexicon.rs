//! Lexicon files: TOML → validated [`Rule`]s, with every problem located as `file:line:column`.
//!
//! The format is documented in `lexicons/README.md`. Parsing collects every problem it can find in
//! one pass (unknown keys, missing fields, unknown categories or severities, duplicate ids, empty forms,
//! invalid regexes), so an editor of a lexicon sees them all at once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::normalize::{normalize_form, to_simplified, written_breaks};
use super::{Category, Severity};

include!(concat!(env!("OUT_DIR"), "/builtin_lexicons.rs"));

/// Where something was written in a lexicon file (1-based line and column, in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file's name as it was given.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A value and where it was written.
#[derive(Clone, Debug)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub at: Location,
}

/// One problem found in a lexicon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub at: Location,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// Why a lexicon could not be loaded: every problem found, each with its location.
#[derive(Clone, Debug)]
pub struct LexiconError {
    problems: Vec<Problem>,
}

impl LexiconError {
    pub(crate) fn new(problems: Vec<Problem>) -> LexiconError {
        LexiconError { problems }
    }

    /// The problems, in file order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for LexiconError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LexiconError {}

/// What a rule looks for.
#[derive(Clone, Debug, Default)]
pub struct Forms {
    /// Literal forms, normalised.
    pub phrases: Vec<Located<String>>,
    /// For each phrase, where its written form had punctuation or spaces (see
    /// [`written_breaks`](super::normalize::written_breaks)).
    pub phrase_breaks: Vec<u64>,
    /// Literal forms that must stand as a word, normalised.
    pub words: Vec<Located<String>>,
    /// Ordered terms, each a set of normalised alternatives.
    pub near: Vec<Located<Vec<Vec<String>>>>,
    /// Characters allowed between two near terms.
    pub window: usize,
    /// Regular expressions over the normalised text.
    pub patterns: Vec<Located<String>>,
    /// Literal contexts that cancel an overlapping hit, normalised.
    pub unless: Vec<Located<String>>,
    /// Regex contexts that cancel an overlapping hit.
    pub unless_patterns: Vec<Located<String>>,
    /// A built-in detector (privacy).
    pub detector: Option<Detector>,
}

/// Built-in detectors for personal data, which no list of phrases can describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detector {
    /// Mainland mobile numbers.
    Mobile,
    /// 18-digit resident identity numbers with a valid checksum.
    IdCard,
    /// Bank card numbers passing Luhn.
    BankCard,
}

/// One validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Stable id, `category.name`.
    pub id: String,
    /// Category.
    pub category: Category,
    /// Severity.
    pub severity: Severity,
    /// The norm it breaks and why, in Chinese.
    pub message: String,
    /// Approved replies.
    pub suggestions: Vec<String>,
    /// A replacement for the flagged span.
    pub fix: Option<String>,
    /// Which norm of the seed it comes from.
    pub source: String,
    /// What it looks for.
    pub forms: Forms,
    /// Sentences it must flag.
    pub examples: Vec<Located<String>>,
    /// Sentences it must not flag.
    pub counter_examples: Vec<Located<String>>,
    /// Where the rule's id was written.
    pub at: Location,
}

/// A set of rules loaded from lexicon files.
#[derive(Clone, Debug, Default)]
pub struct Lexicon {
    rules: Vec<Rule>,
    files: Vec<String>,
}

impl Lexicon {
    /// The lexicons compiled into the binary.
    pub fn builtin() -> Result<Lexicon, LexiconError> {
        Lexicon::from_sources(BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())))
    }

    /// Every `*.toml` file in `dir`, in name order.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Lexicon, LexiconError> {
        let dir = dir.as_ref();
        let here = |what: String| {
            LexiconError::new(vec![Problem {
                at: Location {
                    file: Arc::from(dir.display().to_string()),
                    line: 0,
                    column: 0,
                },
                what,
            }])
        };
        let entries =
            std::fs::read_dir(dir).map_err(|e| here(format!("cannot read the folder: {e}")))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(here("no .toml lexicon files in this folder".into()));
        }
        let mut sources = Vec::with_capacity(paths.len());
        let mut problems = Vec::new();
        for p in paths {
            let name = p.display().to_string();
            match std::fs::read(&p) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => sources.push((name, text)),
                    Err(e) => {
                        let (line, column) = line_col(
                            &String::from_utf8_lossy(e.as_bytes()),
                            e.utf8_error().valid_up_to(),
                        );
                        problems.push(Problem {
                            at: Location {
                                file: name.into(),
                                line,
                                column,
                            },
                            what: "the file is not valid UTF-8".into(),
                        })
                    }
                },
                Err(e) => problems.push(Problem {
                    at: Location {
                        file: name.into(),
                        line: 0,
                        column: 0,
                    },
                    what: format!("cannot read the file: {e}"),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(LexiconError::new(problems));
        }
        Lexicon::from_sources(sources)
    }

    /// Lexicon files given as `(name, text)` pairs; `name` is used in error locations.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Lexicon, LexiconError> {
        let mut lexicon = Lexicon::default();
        let mut problems = Vec::new();
        let mut seen: HashMap<String, Location> = HashMap::new();
        for (name, text) in sources {
            let file: Arc<str> = Arc::from(name.as_str());
            for rule in parse_file(&file, &text, &mut problems) {
                if let Some(first) = seen.get(&rule.id) {
                    problems.push(Problem {
                        at: rule.at.clone(),
                        what: format!("duplicate rule id {:?}, first defined at {first}", rule.id),
                    });
                    continue;
                }
                seen.insert(rule.id.clone(), rule.at.clone());
                lexicon.rules.push(rule);
            }
            lexicon.files.push(name);
        }
        if problems.is_empty() {
            Ok(lexicon)
        } else {
            Err(LexiconError::new(problems))
        }
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The files the rules came from.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// How many surface forms the rules list: phrases, words, patterns, and each alternative of
    /// each near term once. (Counting the combinations a near chain accepts instead would make one
    /// four-term rule weigh more than the rest of the lexicon.)
    pub fn surface_forms(&self) -> usize {
        self.rules
            .iter()
            .map(|r| {
                let f = &r.forms;
                f.phrases.len()
                    + f.words.len()
                    + f.patterns.len()
                    + f.near
                        .iter()
                        .flat_map(|n| n.value.iter().map(Vec::len))
                        .sum::<usize>()
            })
            .sum()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    category: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RuleToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    id: Spanned<String>,
    category: Option<Spanned<String>>,
    severity: Spanned<String>,
    message: Spanned<String>,
    #[serde(default)]
    suggestions: Vec<Spanned<String>>,
    fix: Option<Spanned<String>>,
    source: Spanned<String>,
    #[serde(default)]
    phrases: Vec<Spanned<String>>,
    #[serde(default)]
    words: Vec<Spanned<String>>,
    #[serde(default)]
    near: Vec<Spanned<Vec<Spanned<String>>>>,
    window: Option<Spanned<i64>>,
    #[serde(default)]
    patterns: Vec<Spanned<String>>,
    #[serde(default)]
    unless: Vec<Spanned<String>>,
    #[serde(default)]
    unless_patterns: Vec<Spanned<String>>,
    detector: Option<Spanned<String>>,
    #[serde(default)]
    examples: Vec<Spanned<String>>,
    #[serde(default)]
    counter_examples: Vec<Spanned<String>>,
}

/// Default characters allowed between two `near` terms.
const DEFAULT_WINDOW: usize = 6;
/// Largest `window` accepted: a wider one would tie unrelated clauses together.
const MAX_WINDOW: usize = 40;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    Lines::new(text).line_col(offset)
}

/// Where each line of a text starts, to place many offsets in it: every form of a lexicon gets a
/// location, and counting the lines before each one from the file's start made loading the shipped
/// lexicon quadratic (four fifths of parsing it went there).
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// 1-based line and column (in characters) of byte `offset`, by a binary search for the line.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let column = self.text[self.starts[line - 1]..offset].chars().count() + 1;
        (line, column)
    }
}

/// Parses one file; problems are appended, the rules that are valid are returned.
fn parse_file(file: &Arc<str>, text: &str, problems: &mut Vec<Problem>) -> Vec<Rule> {
    let lines = Lines::new(text);
    let at = |offset: usize| {
        let (line, column) = lines.line_col(offset);
        Location {
            file: file.clone(),
            line,
            column,
        }
    };
    let mut problem = |offset: usize, what: String| {
        problems.push(Problem {
            at: at(offset),
            what,
        })
    };

    let parsed: FileToml = match toml::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            problem(offset, e.message().trim().to_string());
            return Vec::new();
        }
    };

    let file_category = match &parsed.category {
        Some(c) => match c.get_ref().parse::<Category>() {
            Ok(cat) if cat.is_lexical() => Some(cat),
            _ => {
                problem(c.span().start, unknown_category(c.get_ref()));
                return Vec::new();
            }
        },
        None => None,
    };
    if parsed.rule.is_empty() {
        problem(0, "the file has no [[rule]]".into());
    }

    let mut rules = Vec::new();
    for spanned in parsed.rule {
        let rule_start = spanned.span().start;
        let r = spanned.into_inner();
        // This rule's problems, as (byte offset, what); located when the rule is done.
        let mut errs: Vec<(usize, String)> = Vec::new();

        let id = r.id.get_ref().trim().to_string();
        let category = match &r.category {
            Some(c) => match c.get_ref().parse::<Category>() {
                Ok(cat) if cat.is_lexical() => Some(cat),
                _ => {
                    errs.push((c.span().start, unknown_category(c.get_ref())));
                    None
                }
            },
            None => {
                if file_category.is_none() {
                    errs.push((
                        rule_start,
                        "rule has no category and the file sets none".into(),
                    ));
                }
                file_category
            }
        };
        if id.is_empty() {
            errs.push((r.id.span().start, "empty rule id".into()));
        } else if let Some(cat) = category {
            let prefix = format!("{}.", cat.as_str());
            if !id.starts_with(&prefix) || id.len() == prefix.len() {
                errs.push((
                    r.id.span().start,
                    format!("rule id {id:?} must start with {prefix:?} followed by a name"),
                ));
            }
        }
        let severity = match r.severity.get_ref().parse::<Severity>() {
            Ok(s) => Some(s),
            Err(()) => {
                errs.push((
                    r.severity.span().start,
                    format!(
                        "unknown severity {:?} (expected info, warn or block)",
                        r.severity.get_ref()
                    ),
                ));
                None
            }
        };
        for (name, field) in [("message", &r.message), ("source", &r.source)] {
            if field.get_ref().trim().is_empty() {
                errs.push((field.span().start, format!("empty {name}")));
            }
        }

        let mut literal = |list: Vec<Spanned<String>>, what: &str| -> Vec<Located<String>> {
            list.into_iter()
                .filter_map(|s| {
                    let form = normalize_form(s.get_ref());
                    if form.is_empty() {
                        errs.push((
                            s.span().start,
                            format!("empty {what} (nothing is left after normalisation)"),
                        ));
                        None
                    } else {
                        Some(Located {
                            value: form,
                            at: at(s.span().start),
                        })
                    }
                })
                .collect()
        };
        let phrase_breaks: Vec<u64> = r
            .phrases
            .iter()
            .filter(|p| !normalize_form(p.get_ref()).is_empty())
            .map(|p| written_breaks(p.get_ref()))
            .collect();
        let phrases = literal(r.phrases, "phrase");
        let words = literal(r.words, "word");
        let unless = literal(r.unless, "unless form");

        let mut near = Vec::new();
        for group in r.near {
            let start = group.span().start;
            let terms = group.into_inner();
            if terms.len() < 2 {
                errs.push((start, "a near group needs at least two terms".into()));
                continue;
            }
            let mut alternatives = Vec::new();
            for term in &terms {
                let alts: Vec<String> = term
                    .get_ref()
                    .split('|')
                    .map(normalize_form)
                    .filter(|a| !a.is_empty())
                    .collect();
                if alts.is_empty()
                    || term
                        .get_ref()
                        .split('|')
                        .any(|a| normalize_form(a).is_empty())
                {
                    errs.push((term.span().start, "empty near term or alternative".into()));
                }
                alternatives.push(alts);
            }
            near.push(Located {
                value: alternatives,
                at: at(start),
            });
        }
        let window = match r.window {
            None => DEFAULT_WINDOW,
            Some(w) => {
                let v = *w.get_ref();
                if !(0..=MAX_WINDOW as i64).contains(&v) {
                    errs.push((
                        w.span().start,
                        format!("window {v} is out of range 0..={MAX_WINDOW}"),
                    ));
                }
                v.clamp(0, MAX_WINDOW as i64) as usize
            }
        };

        let mut regexes = |list: Vec<Spanned<String>>, what: &str| -> Vec<Located<String>> {
            list.into_iter()
                .filter_map(|s| {
                    // The text a pattern sees is simplified character by character, so the same is
                    // done to the pattern's own Chinese characters (never regex syntax): a pattern
                    // written with 呵 or 來 matches what the text's 呵 or 來 became.
                    let pattern: String = s.get_ref().chars().map(to_simplified).collect();
                    if pattern.is_empty() {
                        errs.push((s.span().start, format!("empty {what}")));
                        return None;
                    }
                    // Parsed, not compiled: the checker compiles each pattern once, on first use,
                    // and compiling them here as well doubled the lexicon's load time. What is
                    // left to the compiler (a pattern over its size limit) is reported with this
                    // pattern's place by `Checker::compile_all`.
                    match regex_syntax::Parser::new().parse(&pattern) {
                        Ok(hir) if hir.properties().minimum_len() == Some(0) => {
                            errs.push((s.span().start, format!("{what} matches the empty string")));
                            None
                        }
                        Ok(_) => Some(Located {
                            value: pattern,
                            at: at(s.span().start),
                        }),
                        Err(e) => {
                            // The regex error spans several lines with a caret; its last line is the
                            // reason.
                            let reason = e.to_string();
                            let reason = reason.lines().last().unwrap_or("").trim().to_string();
                            errs.push((s.span().start, format!("invalid {what}: {reason}")));
                            None
                        }
                    }
                })
                .collect()
        };
        let patterns = regexes(r.patterns, "pattern");
        let unless_patterns = regexes(r.unless_patterns, "unless pattern");

        let detector = match &r.detector {
            None => None,
            Some(d) => match d.get_ref().as_str() {
                "mobile" => Some(Detector::Mobile),
                "id_card" => Some(Detector::IdCard),
                "bank_card" => Some(Detector::BankCard),
                other => {
                    errs.push((
                        d.span().start,
                        format!(
                            "unknown detector {other:?} (expected mobile, id_card or bank_card)"
                        ),
                    ));
                    None
                }
            },
        };
        if detector.is_some() && category.is_some_and(|c| c != Category::Privacy) {
            errs.push((
                rule_start,
                "detectors belong to privacy rules (category = \"privacy\")".into(),
            ));
        }
        if phrases.is_empty()
            && words.is_empty()
            && near.is_empty()
            && patterns.is_empty()
            && detector.is_none()
            && errs.is_empty()
        {
            errs.push((
                r.id.span().start,
                "rule has no phrases, words, near, patterns or detector".into(),
            ));
        }
        if r.examples.is_empty() {
            errs.push((r.id.span().start, "rule has no examples".into()));
        }
        let suggestions: Vec<String> = r.suggestions.iter().map(|s| s.get_ref().clone()).collect();
        for s in &r.suggestions {
            if s.get_ref().trim().is_empty() {
                errs.push((s.span().start, "empty suggestion".into()));
            }
        }

        let sentences = |list: Vec<Spanned<String>>| -> Vec<Located<String>> {
            list.into_iter()
                .map(|s| Located {
                    at: at(s.span().start),
                    value: s.into_inner(),
                })
                .collect()
        };
        if !errs.is_empty() {
            problems.extend(errs.into_iter().map(|(offset, what)| Problem {
                at: at(offset),
                what,
            }));
            continue;
        }
        let (Some(category), Some(severity)) = (category, severity) else {
            continue;
        };
        rules.push(Rule {
            id,
            category,
            severity,
            message: r.message.get_ref().trim().to_string(),
            suggestions,
            fix: r.fix.map(|f| f.into_inner()),
            source: r.source.get_ref().trim().to_string(),
            forms: Forms {
                phrases,
                phrase_breaks,
                words,
                near,
                window,
                patterns,
                unless,
                unless_patterns,
                detector,
            },
            examples: sentences(r.examples),
            counter_examples: sentences(r.counter_examples),
            at: at(r.id.span().start),
        });
    }
    rules
}

fn unknown_category(name: &str) -> String {
    format!(
        "unknown category {name:?} (expected one of {})",
        Category::LEXICAL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters_from_one() {
        let text = "a = 1\n\n中文 = \"等一下\"\r\nb\n";
        let lines = Lines::new(text);
        assert_eq!(lines.line_col(0), (1, 1));
        assert_eq!(lines.line_col(6), (2, 1));
        assert_eq!(lines.line_col(text.find('等').unwrap()), (3, 7));
        // Inside a character: the character's own place.
        assert_eq!(lines.line_col(text.find('等').unwrap() + 1), (3, 7));
        assert_eq!(lines.line_col(text.find('b').unwrap()), (4, 1));
        // Past the end: the end.
        assert_eq!(lines.line_col(text.len() + 2), (5, 1));
    }

    fn problems(text: &str) -> Vec<String> {
        match Lexicon::from_sources([("t.toml".to_string(), text.to_string())]) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    const GOOD: &str = r#"category = "impatience"
[[rule]]
id = "impatience.hurry"
severity = "warn"
message = "急躁"
suggestions = ["请稍等"]
source = "common practice"
phrases = ["快点"]
examples = ["快点"]
"#;

    #[test]
    fn a_valid_file_loads() {
        let lex = Lexicon::from_sources([("t.toml".into(), GOOD.into())]).unwrap();
        assert_eq!(lex.rules().len(), 1);
        assert_eq!(lex.rules()[0].category, Category::Impatience);
        assert_eq!(lex.rules()[0].at.to_string(), "t.toml:3:6");
    }

    #[test]
    fn unknown_key_is_named_with_line_and_column() {
        let p = problems(&GOOD.replace("phrases", "phrasez"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("t.toml:8:1: unknown field `phrasez`"),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_category_and_severity() {
        let p = problems(&GOOD.replace("\"impatience\"", "\"rudeness\""));
        assert!(
            p[0].starts_with("t.toml:1:12: unknown category \"rudeness\""),
            "{p:?}"
        );
        let p = problems(&GOOD.replace("\"warn\"", "\"fatal\""));
        assert!(
            p[0].starts_with("t.toml:4:12: unknown severity \"fatal\""),
            "{p:?}"
        );
    }

    #[test]
    fn invalid_regex_and_empty_form() {
        let p = problems(&GOOD.replace(
            "phrases = [\"快点\"]",
            "patterns = ['快(点']\nwords = [\"，\"]",
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter()
                .any(|p| p.starts_with("t.toml:8:13: invalid pattern")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.starts_with("t.toml:9:10: empty word")),
            "{p:?}"
        );
    }

    #[test]
    fn duplicate_ids_across_files() {
        let err = Lexicon::from_sources([
            ("a.toml".to_string(), GOOD.to_string()),
            ("b.toml".to_string(), GOOD.to_string()),
        ])
        .unwrap_err();
        let p = err.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].at.to_string(), "b.toml:3:6");
        assert!(p[0].what.contains("first defined at a.toml:3:6"));
    }

    #[test]
    fn broken_toml_is_located() {
        let p = problems("category = \"impatience\"\n[[rule]\nid = 1\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("t.toml:2:"), "{p:?}");
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let e = Lexicon::from_dir("/nonexistent/liyu-lexicons").unwrap_err();
        assert!(e.to_string().contains("cannot read the folder"), "{e}");
    }
}
