//! One engine for every rule: a single Aho-Corasick automaton over all literal forms, run once per
//! message over the normalised view.
//!
//! Each literal needle remembers which rules use it and how (phrase, word, near term, or the start of
//! a pattern); the scan turns automaton matches into rule hits, confirms words with jieba, confirms
//! patterns with an anchored regex search where their prefix was seen, and chains near terms. Only
//! then, and only for the rules that hit, are their `unless` contexts looked for: they cost nothing on
//! the messages that break no rule, which are nearly all of them. Finally spans are mapped back to
//! the original text.
//!
//! Patterns go through the automaton too because a `RegexSet` of a couple of hundred Unicode patterns
//! outgrows the lazy DFA's cache and falls back to a slow engine: tens of microseconds on every clean
//! message. Almost every lexicon pattern starts with one of a few literal strings, which
//! `regex-syntax` extracts; only a pattern without such a prefix is run over every message, in a
//! small `RegexSet` of its own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexSet};
use regex_automata::{meta, Anchored, Input};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::lexicon::{Detector, Rule};
use super::normalize::{normalize_into, Normalized};
use super::{privacy, segment};

/// How a rule uses a literal needle.
#[derive(Clone, Copy, Debug)]
enum Use {
    /// `breaks`: where the phrase may span clause punctuation of the message.
    Phrase {
        rule: u32,
        breaks: u64,
    },
    Word {
        rule: u32,
    },
    NearTerm {
        group: u32,
        term: u16,
    },
    /// A prefix of prefiltered pattern `pattern`: confirm with an anchored search here.
    PatternStart {
        pattern: u32,
    },
}

/// The contexts that cancel a rule's hits.
#[derive(Debug, Default)]
struct Unless {
    literals: Vec<String>,
    patterns: Vec<Regex>,
}

/// How far around a hit its `unless` contexts are looked for, in characters: contexts are local
/// (the words around a phrase), and a bound keeps a long message with many hits linear.
const UNLESS_REACH: usize = 32;

impl Unless {
    /// Whether one of the contexts occurs in `view` overlapping `start..end`.
    fn cancels(&self, view: &str, start: usize, end: usize) -> bool {
        if self.literals.is_empty() && self.patterns.is_empty() {
            return false;
        }
        let lo = view[..start]
            .char_indices()
            .rev()
            .nth(UNLESS_REACH - 1)
            .map_or(0, |(i, _)| i);
        let hi = view[end..]
            .char_indices()
            .nth(UNLESS_REACH)
            .map_or(view.len(), |(i, _)| end + i);
        let window = &view[lo..hi];
        let overlaps = |s: usize, e: usize| lo + s < end && start < lo + e;
        self.literals.iter().any(|l| {
            window
                .match_indices(l.as_str())
                .any(|(s, m)| overlaps(s, s + m.len()))
        }) || self
            .patterns
            .iter()
            .any(|re| re.find_iter(window).any(|m| overlaps(m.start(), m.end())))
    }
}

#[derive(Clone, Copy, Debug)]
struct NearGroup {
    rule: u32,
    terms: u16,
    window: usize,
}

/// A rule hit on the original text.
#[derive(Debug)]
pub(crate) struct Hit {
    pub rule: usize,
    pub bytes: Range<usize>,
    /// A fix computed for this hit (the masked number of a privacy detector).
    pub fix: Option<String>,
    /// The hit lies inside quotation marks: the agent is reporting what someone said.
    pub quoted: bool,
}

/// A hit on the normalised view, before mapping back.
#[derive(Clone, Copy, Debug)]
struct Span {
    rule: u32,
    start: usize,
    end: usize,
}

#[derive(Debug)]
pub(crate) struct Matcher {
    ac: Option<AhoCorasick>,
    uses: Vec<Vec<Use>>,
    /// Patterns confirmed where one of their literal prefixes was found, with their rule.
    prefixed: Vec<(meta::Regex, u32)>,
    /// Patterns with no literal prefix, run over every message, with their rules.
    set: Option<RegexSet>,
    regexes: Vec<Regex>,
    pattern_rules: Vec<u32>,
    /// Per rule, the contexts that cancel its hits.
    unless: Vec<Unless>,
    near: Vec<NearGroup>,
    detectors: Vec<(Detector, usize)>,
}

/// The literal prefixes a match of `pattern` must start with, when there are few enough to be worth
/// putting in the automaton.
fn literal_prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    // The longer a prefix, the rarer it is in clean text and the fewer anchored searches run: a
    // one-character prefix such as 您 or 这 fires on most messages. But the alternations at the start
    // of a pattern multiply, and thousands of prefixes make the one automaton slower for every
    // message. So: three characters while that stays few, else two characters while that stays
    // below the hard limit, and one character only as the last resort.
    for (bytes, most) in [(9, 64), (6, 250), (3, 250)] {
        let mut extractor = Extractor::new();
        extractor
            .kind(ExtractKind::Prefix)
            .limit_class(32)
            .limit_literal_len(bytes)
            .limit_total(250);
        let mut seq = extractor.extract(&hir);
        seq.dedup();
        let Some(literals) = seq.literals() else {
            continue;
        };
        if literals.is_empty()
            || literals.len() > most
            || literals.iter().any(|l| l.as_bytes().is_empty())
        {
            continue;
        }
        return Some(literals.iter().map(|l| l.as_bytes().to_vec()).collect());
    }
    None
}

impl Matcher {
    pub(crate) fn build(rules: &[Rule]) -> Result<Matcher, String> {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        let mut uses: Vec<Vec<Use>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut add = |needle: &[u8], u: Use| {
            let i = *index.entry(needle.to_vec()).or_insert_with(|| {
                needles.push(needle.to_vec());
                uses.push(Vec::new());
                needles.len() - 1
            });
            uses[i].push(u);
        };
        let mut near = Vec::new();
        let mut prefixed = Vec::new();
        let mut patterns = Vec::new();
        let mut pattern_rules = Vec::new();
        let mut unless = Vec::new();
        let mut detectors = Vec::new();
        let mut needs_jieba = false;
        for (ri, rule) in rules.iter().enumerate() {
            let r = ri as u32;
            let f = &rule.forms;
            for (p, &breaks) in f.phrases.iter().zip(&f.phrase_breaks) {
                add(p.value.as_bytes(), Use::Phrase { rule: r, breaks });
            }
            for w in &f.words {
                needs_jieba = true;
                add(w.value.as_bytes(), Use::Word { rule: r });
            }
            for group in &f.near {
                let g = near.len() as u32;
                near.push(NearGroup {
                    rule: r,
                    terms: group.value.len() as u16,
                    window: f.window,
                });
                for (t, alternatives) in group.value.iter().enumerate() {
                    for a in alternatives {
                        add(
                            a.as_bytes(),
                            Use::NearTerm {
                                group: g,
                                term: t as u16,
                            },
                        );
                    }
                }
            }
            for p in &f.patterns {
                match literal_prefixes(&p.value) {
                    Some(prefixes) => {
                        let re = meta::Regex::new(&p.value).map_err(|e| e.to_string())?;
                        let pattern = prefixed.len() as u32;
                        prefixed.push((re, r));
                        for prefix in prefixes {
                            add(&prefix, Use::PatternStart { pattern });
                        }
                    }
                    None => {
                        patterns.push(p.value.clone());
                        pattern_rules.push(r);
                    }
                }
            }
            unless.push(Unless {
                literals: f.unless.iter().map(|u| u.value.clone()).collect(),
                patterns: f
                    .unless_patterns
                    .iter()
                    .map(|p| Regex::new(&p.value))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?,
            });
            if let Some(d) = f.detector {
                detectors.push((d, ri));
            }
        }
        let ac = if needles.is_empty() {
            None
        } else {
            // Overlapping search needs the standard match semantics; a DFA is the fastest scan and
            // a lexicon of a few thousand short forms stays in the low megabytes.
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&needles)
                    .map_err(|e| e.to_string())?,
            )
        };
        let (set, regexes) = if patterns.is_empty() {
            (None, Vec::new())
        } else {
            let set = RegexSet::new(&patterns).map_err(|e| e.to_string())?;
            let regexes = patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            (Some(set), regexes)
        };
        if needs_jieba {
            // Load the dictionary now, not on the first word hit in the middle of live traffic.
            segment::warm_up();
        }
        Ok(Matcher {
            ac,
            uses,
            prefixed,
            set,
            regexes,
            pattern_rules,
            unless,
            near,
            detectors,
        })
    }

    /// How many needles the automaton holds, and how many of them are pattern prefixes.
    pub(crate) fn needle_counts(&self) -> (usize, usize) {
        let prefixes = self
            .uses
            .iter()
            .filter(|u| u.iter().any(|u| matches!(u, Use::PatternStart { .. })))
            .count();
        (self.uses.len(), prefixes)
    }

    /// The rules (by index) and patterns that have no literal prefix and so run on every message.
    pub(crate) fn unprefixed_patterns(&self) -> impl Iterator<Item = (usize, &str)> {
        self.pattern_rules
            .iter()
            .zip(&self.regexes)
            .map(|(&rule, re)| (rule as usize, re.as_str()))
    }

    /// The hits of every rule in `text`; with `dedupe`, a hit inside a more telling one of the same
    /// category is dropped (what users see), without it every rule reports its own (what a rule's
    /// examples are checked against).
    pub(crate) fn scan(&self, rules: &[Rule], text: &str, dedupe: bool) -> Vec<Hit> {
        thread_local! {
            // The view of each message is built in a buffer kept per thread: no allocation for it on
            // the hot path.
            static VIEW: RefCell<String> = const { RefCell::new(String::new()) };
        }
        VIEW.with(|cell| match cell.try_borrow_mut() {
            Ok(mut view) => {
                normalize_into(text, &mut view);
                self.scan_view(rules, text, &view, dedupe)
            }
            Err(_) => {
                let mut view = String::new();
                normalize_into(text, &mut view);
                self.scan_view(rules, text, &view, dedupe)
            }
        })
    }

    fn scan_view(&self, rules: &[Rule], text: &str, view: &str, dedupe: bool) -> Vec<Hit> {
        // The offset map is built only when a hit needs it: most messages have none.
        let mut mapped: Option<Normalized> = None;
        let mut spans: Vec<Span> = Vec::new();
        // (group, term, start, end)
        let mut near_hits: Vec<(u32, u16, usize, usize)> = Vec::new();

        if let Some(ac) = &self.ac {
            // Several rules may share a word needle; jieba answers once per span.
            let mut word_cache: Vec<(usize, usize, bool)> = Vec::new();
            for m in ac.find_overlapping_iter(view) {
                let (start, end) = (m.start(), m.end());
                for u in &self.uses[m.pattern().as_usize()] {
                    match *u {
                        Use::Phrase { rule, breaks } => {
                            // "没有为什么" is not in "一间没有?为什么": a phrase spans clause
                            // punctuation only where its written form has some.
                            let map = with_map(&mut mapped, text);
                            if map.hard_breaks_within(start, end) & !breaks == 0 {
                                spans.push(Span { rule, start, end });
                            }
                        }
                        Use::Word { rule } => {
                            let ok = match word_cache
                                .iter()
                                .find(|(s, e, _)| *s == start && *e == end)
                            {
                                Some(&(_, _, ok)) => ok,
                                None => {
                                    let ok = segment::stands_as_word(
                                        with_map(&mut mapped, text),
                                        start,
                                        end,
                                    );
                                    word_cache.push((start, end, ok));
                                    ok
                                }
                            };
                            if ok {
                                spans.push(Span { rule, start, end });
                            }
                        }
                        Use::NearTerm { group, term } => near_hits.push((group, term, start, end)),
                        Use::PatternStart { pattern } => {
                            let (re, rule) = &self.prefixed[pattern as usize];
                            let input = Input::new(view).range(start..).anchored(Anchored::Yes);
                            // Anchored at the prefix, so only the end is unknown: the half
                            // search skips the reverse scan that finding a start would need.
                            if let Some(m) = re.search_half(&input) {
                                if m.offset() > start {
                                    spans.push(Span {
                                        rule: *rule,
                                        start,
                                        end: m.offset(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(set) = &self.set {
            for i in set.matches(view).iter() {
                let rule = self.pattern_rules[i];
                for m in self.regexes[i].find_iter(view) {
                    if !m.is_empty() {
                        spans.push(Span {
                            rule,
                            start: m.start(),
                            end: m.end(),
                        });
                    }
                }
            }
        }
        if !near_hits.is_empty() {
            self.chain_near(view, &mut near_hits, &mut spans);
        }

        spans.retain(|s| !self.unless[s.rule as usize].cancels(view, s.start, s.end));
        // One hit per stretch of text per rule: the earliest, and of those the longest.
        spans.sort_by_key(|s| (s.rule, s.start, usize::MAX - s.end));
        let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans {
            if let Some(last) = kept.last() {
                if last.rule == s.rule && s.start < last.end {
                    continue;
                }
            }
            kept.push(s);
        }

        let mut hits: Vec<Hit> = Vec::with_capacity(kept.len());
        if !kept.is_empty() {
            let norm = with_map(&mut mapped, text);
            hits.extend(kept.into_iter().map(|s| Hit {
                rule: s.rule as usize,
                bytes: norm.original_range(s.start, s.end),
                fix: None,
                quoted: false,
            }));
        }
        if !self.detectors.is_empty() && privacy::may_contain(view) {
            for found in privacy::scan(text) {
                if let Some(&(_, rule)) = self.detectors.iter().find(|(d, _)| *d == found.kind) {
                    hits.push(Hit {
                        rule,
                        bytes: found.bytes,
                        fix: Some(found.masked),
                        quoted: false,
                    });
                }
            }
        }
        if dedupe {
            drop_covered(rules, &mut hits);
        }
        mark_quoted(text, &mut hits);
        hits.sort_by_key(|h| (h.bytes.start, h.bytes.end, h.rule));
        hits
    }

    /// Turns near-term hits into spans: each group's terms in order, at most `window` characters
    /// apart.
    fn chain_near(&self, view: &str, hits: &mut [(u32, u16, usize, usize)], spans: &mut Vec<Span>) {
        hits.sort_unstable();
        let mut i = 0;
        while i < hits.len() {
            let group = hits[i].0;
            let mut j = i;
            while j < hits.len() && hits[j].0 == group {
                j += 1;
            }
            let g = self.near[group as usize];
            let of_group = &hits[i..j];
            let term = |t: u16| of_group.iter().filter(move |h| h.1 == t);
            let mut covered_to = 0;
            for first in term(0) {
                if first.2 < covered_to {
                    continue;
                }
                let mut end = first.3;
                let mut complete = true;
                for t in 1..g.terms {
                    let next =
                        term(t).find(|h| h.2 >= end && view[end..h.2].chars().count() <= g.window);
                    match next {
                        Some(h) => end = h.3,
                        None => {
                            complete = false;
                            break;
                        }
                    }
                }
                if complete {
                    spans.push(Span {
                        rule: g.rule,
                        start: first.2,
                        end,
                    });
                    covered_to = end;
                }
            }
            i = j;
        }
    }
}

/// The view of `text` with its offset map, built on first use.
fn with_map<'a>(slot: &'a mut Option<Normalized>, text: &str) -> &'a Normalized {
    slot.get_or_insert_with(|| Normalized::new(text))
}

/// Drops a hit whose span lies inside another hit of the same category that is at least as severe:
/// the agent is told once per stretch of text, by the rule that says the most.
fn drop_covered(rules: &[Rule], hits: &mut Vec<Hit>) {
    if hits.len() < 2 {
        return;
    }
    let covered: Vec<bool> = (0..hits.len())
        .map(|i| {
            let a = &hits[i];
            let ra = &rules[a.rule];
            hits.iter().enumerate().any(|(j, b)| {
                let rb = &rules[b.rule];
                j != i
                    && rb.category == ra.category
                    && rb.severity >= ra.severity
                    && b.bytes.start <= a.bytes.start
                    && a.bytes.end <= b.bytes.end
                    // Of two identical spans, keep the first rule's.
                    && (b.bytes != a.bytes || rb.severity > ra.severity || j < i)
            })
        })
        .collect();
    let mut i = 0;
    hits.retain(|_| {
        i += 1;
        !covered[i - 1]
    });
}

/// Marks hits that lie wholly inside a pair of quotation marks (“…” 「…」 『…』 "…").
///
/// An agent who writes 您说同事跟您讲“下班了,明天再来”,这确实不应该 is quoting a forbidden phrase to
/// apologise for it, not saying it; such hits are kept for review but do not count as violations.
fn mark_quoted(text: &str, hits: &mut [Hit]) {
    const PAIRS: [(char, char); 4] = [('“', '”'), ('「', '」'), ('『', '』'), ('"', '"')];
    if hits.is_empty() || !text.chars().any(|c| PAIRS.iter().any(|p| p.0 == c)) {
        return;
    }
    let mut quoted: Vec<Range<usize>> = Vec::new();
    for (open, close) in PAIRS {
        let mut rest = 0;
        while let Some(i) = text[rest..].find(open) {
            let inner = rest + i + open.len_utf8();
            let Some(j) = text[inner..].find(close) else {
                break;
            };
            quoted.push(inner..inner + j);
            rest = inner + j + close.len_utf8();
        }
    }
    for h in hits.iter_mut() {
        h.quoted = quoted
            .iter()
            .any(|q| q.start <= h.bytes.start && h.bytes.end <= q.end);
    }
}
