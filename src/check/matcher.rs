//! One engine for every rule: a single Aho-Corasick automaton over all literal forms and a single
//! `RegexSet` over all patterns, both run once per message over the normalised view.
//!
//! Each literal needle remembers which rules use it and how (phrase, word, near term, unless context);
//! the scan turns automaton matches into rule hits, confirms words with jieba, chains near terms,
//! drops hits cancelled by an `unless`, and finally maps spans back to the original text.

use std::collections::HashMap;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexSet};

use super::lexicon::{Detector, Rule};
use super::normalize::Normalized;
use super::{privacy, segment};

/// How a rule uses a literal needle.
#[derive(Clone, Copy, Debug)]
enum Use {
    Phrase { rule: u32 },
    Word { rule: u32 },
    NearTerm { group: u32, term: u16 },
    Unless { rule: u32 },
}

/// How a rule uses a regex of the set.
#[derive(Clone, Copy, Debug)]
struct PatternUse {
    rule: u32,
    unless: bool,
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
    set: Option<RegexSet>,
    regexes: Vec<Regex>,
    pattern_uses: Vec<PatternUse>,
    near: Vec<NearGroup>,
    detectors: Vec<(Detector, usize)>,
}

impl Matcher {
    pub(crate) fn build(rules: &[Rule]) -> Result<Matcher, String> {
        let mut needles: Vec<String> = Vec::new();
        let mut uses: Vec<Vec<Use>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut add = |needle: &str, u: Use| {
            let i = *index.entry(needle.to_string()).or_insert_with(|| {
                needles.push(needle.to_string());
                uses.push(Vec::new());
                needles.len() - 1
            });
            uses[i].push(u);
        };
        let mut near = Vec::new();
        let mut patterns = Vec::new();
        let mut pattern_uses = Vec::new();
        let mut detectors = Vec::new();
        let mut needs_jieba = false;
        for (ri, rule) in rules.iter().enumerate() {
            let r = ri as u32;
            let f = &rule.forms;
            for p in &f.phrases {
                add(&p.value, Use::Phrase { rule: r });
            }
            for w in &f.words {
                needs_jieba = true;
                add(&w.value, Use::Word { rule: r });
            }
            for u in &f.unless {
                add(&u.value, Use::Unless { rule: r });
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
                            a,
                            Use::NearTerm {
                                group: g,
                                term: t as u16,
                            },
                        );
                    }
                }
            }
            for p in &f.patterns {
                patterns.push(p.value.clone());
                pattern_uses.push(PatternUse {
                    rule: r,
                    unless: false,
                });
            }
            for p in &f.unless_patterns {
                patterns.push(p.value.clone());
                pattern_uses.push(PatternUse {
                    rule: r,
                    unless: true,
                });
            }
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
            set,
            regexes,
            pattern_uses,
            near,
            detectors,
        })
    }

    pub(crate) fn scan(&self, rules: &[Rule], text: &str) -> Vec<Hit> {
        let norm = Normalized::new(text);
        let view = norm.as_str();
        let mut spans: Vec<Span> = Vec::new();
        let mut unless: Vec<Span> = Vec::new();
        // (group, term, start, end)
        let mut near_hits: Vec<(u32, u16, usize, usize)> = Vec::new();

        if let Some(ac) = &self.ac {
            // Several rules may share a word needle; jieba answers once per span.
            let mut word_cache: Vec<(usize, usize, bool)> = Vec::new();
            for m in ac.find_overlapping_iter(view) {
                let (start, end) = (m.start(), m.end());
                for u in &self.uses[m.pattern().as_usize()] {
                    match *u {
                        Use::Phrase { rule } => spans.push(Span { rule, start, end }),
                        Use::Word { rule } => {
                            let ok = match word_cache
                                .iter()
                                .find(|(s, e, _)| *s == start && *e == end)
                            {
                                Some(&(_, _, ok)) => ok,
                                None => {
                                    let ok = segment::stands_as_word(&norm, start, end);
                                    word_cache.push((start, end, ok));
                                    ok
                                }
                            };
                            if ok {
                                spans.push(Span { rule, start, end });
                            }
                        }
                        Use::NearTerm { group, term } => near_hits.push((group, term, start, end)),
                        Use::Unless { rule } => unless.push(Span { rule, start, end }),
                    }
                }
            }
        }
        if let Some(set) = &self.set {
            for i in set.matches(view).iter() {
                let u = self.pattern_uses[i];
                for m in self.regexes[i].find_iter(view) {
                    if m.is_empty() {
                        continue;
                    }
                    let s = Span {
                        rule: u.rule,
                        start: m.start(),
                        end: m.end(),
                    };
                    if u.unless {
                        unless.push(s);
                    } else {
                        spans.push(s);
                    }
                }
            }
        }
        if !near_hits.is_empty() {
            self.chain_near(view, &mut near_hits, &mut spans);
        }

        spans.retain(|s| {
            !unless
                .iter()
                .any(|u| u.rule == s.rule && u.start < s.end && s.start < u.end)
        });
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

        let mut hits: Vec<Hit> = kept
            .into_iter()
            .map(|s| Hit {
                rule: s.rule as usize,
                bytes: norm.original_range(s.start, s.end),
                fix: None,
            })
            .collect();
        if !self.detectors.is_empty() {
            for found in privacy::scan(text) {
                if let Some(&(_, rule)) = self.detectors.iter().find(|(d, _)| *d == found.kind) {
                    hits.push(Hit {
                        rule,
                        bytes: found.bytes,
                        fix: Some(found.masked),
                    });
                }
            }
        }
        drop_covered(rules, &mut hits);
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
