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
use std::sync::OnceLock;

use daachorse::CharwiseDoubleArrayAhoCorasick;
use regex::{Regex, RegexSet};
use regex_automata::{meta, Anchored, Input};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind, Look};

use super::lexicon::{Detector, Location, Rule};
use super::normalize::{normalize_into, Normalized};
use super::{privacy, segment};

/// How a rule uses a literal needle.
///
/// Eight bytes: a needle's uses are read on every match of it, and a clean message matches a few
/// common ones (您, 我, digits) whose lists a busy service has evicted from the cache.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Use {
    /// `breaks`: where the phrase may span clause punctuation of the message, as an index into
    /// [`Matcher::breaks`].
    Phrase {
        rule: u32,
        breaks: u16,
    },
    Word {
        rule: u32,
    },
    NearTerm {
        group: u32,
        term: u16,
    },
    /// A literal of anchor `anchor` of prefiltered pattern `pattern`; `at_start` when it is the
    /// pattern's only anchor and every match starts with it (see
    /// [`Prefiltered::starts_with_anchor`]): known here, the scan need not load the pattern to
    /// learn it.
    PatternPart {
        pattern: u32,
        anchor: u8,
        at_start: bool,
        /// One bit per anchor of the pattern: all set once every anchor was seen.
        all: u8,
    },
}

/// The contexts that cancel a rule's hits.
///
/// Their regexes are compiled on first use (see [`Matcher::compile_all`]).
#[derive(Debug, Default)]
struct Unless {
    literals: Vec<String>,
    patterns: Vec<String>,
    /// All the contexts as one alternation: whether any of them is in the window at all; and the
    /// longest a context can be, in bytes (`None` when a pattern is unbounded).
    any: OnceLock<Result<(meta::Regex, Option<usize>), String>>,
    /// `patterns` one by one: which of them overlaps the hit.
    each: OnceLock<Vec<meta::Regex>>,
}

/// How far around a hit its `unless` contexts are looked for, in characters: contexts are local
/// (the words around a phrase), and a bound keeps a long message with many hits linear.
const UNLESS_REACH: usize = 32;

impl Unless {
    fn new(literals: Vec<String>, patterns: Vec<String>) -> Unless {
        Unless {
            literals,
            patterns,
            any: OnceLock::new(),
            each: OnceLock::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.patterns.is_empty()
    }

    /// The alternation of all the contexts, compiled on first use. The lexicon parsed each
    /// pattern already; what can still fail here is a compiler limit.
    fn any(&self) -> &Result<(meta::Regex, Option<usize>), String> {
        self.any.get_or_init(|| {
            let alternatives: Vec<String> = self
                .literals
                .iter()
                .map(|l| regex::escape(l))
                .chain(self.patterns.iter().cloned())
                .collect();
            // No literal prefilter: the window is at most 64 characters around a hit, which the
            // lazy DFA walks for less than a prefilter (Teddy, for literal contexts) costs to start,
            // and whose tables would be one more thing cold in the cache (callgrind, the chat
            // corpus's flagged messages: 15,100 -> 14,800 instructions, 278 -> 261 L1 misses each).
            let re = meta::Regex::builder()
                .configure(meta::Config::new().auto_prefilter(false))
                .build_many(&alternatives)
                .map_err(|e| e.to_string())?;
            // Parsed here, with the compile, not when the checker is built (which compiles nothing).
            let reach = alternatives
                .iter()
                .map(|a| {
                    regex_syntax::Parser::new()
                        .parse(a)
                        .ok()
                        .and_then(|hir| hir.properties().maximum_len())
                })
                .try_fold(0, |most, len| len.map(|len| most.max(len)));
            Ok((re, reach))
        })
    }

    /// The patterns one by one; each is smaller than the alternation that compiled.
    fn each(&self) -> &[meta::Regex] {
        self.each.get_or_init(|| {
            self.patterns
                .iter()
                .filter_map(|p| meta::Regex::new(p).ok())
                .collect()
        })
    }

    /// Whether one of the contexts occurs in `view` overlapping `start..end`, within
    /// [`UNLESS_REACH`] characters of it.
    fn cancels(&self, view: &str, start: usize, end: usize) -> bool {
        if self.is_empty() {
            return false;
        }
        let Ok(any) = self.any() else {
            return false;
        };
        let mut lo = view[..start]
            .char_indices()
            .rev()
            .nth(UNLESS_REACH - 1)
            .map_or(0, |(i, _)| i);
        let mut hi = view[end..]
            .char_indices()
            .nth(UNLESS_REACH)
            .map_or(view.len(), |(i, _)| end + i);
        // A context that overlaps the hit lies within its own length of it: the rest of the
        // window cannot hold one, and is not searched (most contexts are a few characters long).
        if let Some(reach) = any.1 {
            (lo, hi) = whole_range(
                view,
                lo.max(start.saturating_sub(reach)),
                hi.min(end + reach),
            );
        }
        // The haystack stays the whole view, so `^` and `$` in a context mean the message's start
        // and end, not the window's.
        let window = || Input::new(view).range(lo..hi);
        // Most hits have no cancelling context near them: one search for all of a rule's contexts
        // settles that, where searching for each one alone cost a few thousand instructions per hit
        // for a rule with a dozen of them. Only when one is there does each context say whether it
        // overlaps the hit.
        if !any.0.is_match(window()) {
            return false;
        }
        let overlaps = |s: usize, e: usize| s < end && start < e;
        self.literals.iter().any(|l| {
            view[lo..hi]
                .match_indices(l.as_str())
                .any(|(s, m)| overlaps(lo + s, lo + s + m.len()))
        }) || self
            .each()
            .iter()
            .any(|re| re.find_iter(window()).any(|m| overlaps(m.start(), m.end())))
    }
}

#[derive(Clone, Copy, Debug)]
struct NearGroup {
    rule: u32,
    terms: u16,
    window: usize,
}

/// The automaton's value for a needle: the needle's one use itself, when it is an anchor of a
/// pattern (most of the needles, and the commonest in clean text: 您, 的, 是, digits), or where its
/// list starts in [`Matcher::uses`]. Reading the list was a cache miss per match in a busy
/// service; an inline use costs none.
struct Inline;

impl Inline {
    /// Marks an inline use; a list's start is below it.
    const FLAG: u32 = 1 << 31;
    const PATTERNS: u32 = 1 << 24;

    /// Bits 0-23 the pattern, 24 the anchor, 25 `at_start`, 26-27 `all`.
    fn encode(u: Use) -> Option<u32> {
        match u {
            Use::PatternPart {
                pattern,
                anchor,
                at_start,
                all,
            } if pattern < Self::PATTERNS && anchor < 2 && all < 4 => Some(
                Self::FLAG
                    | pattern
                    | u32::from(anchor) << 24
                    | u32::from(at_start) << 25
                    | u32::from(all) << 26,
            ),
            _ => None,
        }
    }

    #[inline(always)]
    fn decode(value: u32) -> Option<Use> {
        (value & Self::FLAG != 0).then_some(Use::PatternPart {
            pattern: value & (Self::PATTERNS - 1),
            anchor: (value >> 24 & 1) as u8,
            at_start: value >> 25 & 1 != 0,
            all: (value >> 26 & 3) as u8,
        })
    }

    /// Appends a needle's uses to `flat`, each marked when it ends the list; the value is where
    /// the list starts.
    fn list(flat: &mut Vec<(Use, bool)>, of_needle: &[Use]) -> Result<u32, String> {
        let start = u32::try_from(flat.len())
            .ok()
            .filter(|&s| s < Self::FLAG)
            .ok_or("too many needle uses for one automaton")?;
        let n = of_needle.len();
        flat.extend(of_needle.iter().enumerate().map(|(i, &u)| (u, i + 1 == n)));
        Ok(start)
    }
}

// Kept so: see [`Use`].
const _: () = assert!(std::mem::size_of::<Use>() == 8);

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

/// A pattern found through its anchors.
#[derive(Debug)]
struct Prefiltered {
    pattern: String,
    /// Where the pattern was written, for a compile error.
    at: Location,
    /// `pattern` compiled on its first confirmation (see [`Matcher::compile_all`]).
    re: OnceLock<Result<meta::Regex, String>>,
    rule: u32,
    /// Per anchor, [`Anchor::back`].
    backs: Vec<Option<usize>>,
    /// The characters a match can start with, when they are few (see [`first_chars`]).
    first: Option<Vec<char>>,
    /// The longest a match can be, in bytes, when the pattern bounds it.
    max_len: Option<usize>,
    /// Every match starts at the start of the view (`^…`) / ends at its end (`…$`): the patterns
    /// that are a whole message ("^(哦|嗯)$") are confirmed only where an anchor could be part of
    /// such a match, not at every 嗯 of every message.
    from_start: bool,
    to_end: bool,
}

impl Prefiltered {
    fn re(&self) -> &Result<meta::Regex, String> {
        self.re
            .get_or_init(|| meta::Regex::new(&self.pattern).map_err(|e| e.to_string()))
    }

    /// One bit per anchor (at most [`MAX_ANCHORS`]).
    fn all_anchors(&self) -> u8 {
        (1u8 << self.backs.len()) - 1
    }

    /// Whether every match starts with the pattern's one anchor: then it is confirmed right where
    /// the anchor is found, with [`confirm_at`](Self::confirm_at).
    fn starts_with_anchor(&self) -> bool {
        self.backs == [Some(0)]
    }

    /// Whether a match could start at the beginning of `rest`: a character test that spares most
    /// of the anchored searches tried before an anchor ("联系" is in most messages that give a phone
    /// number; a match of "(你|您)?(自己)?(去)?(找|问|联系)…" starting two characters before it
    /// needs 你, 您, 自, 去, 找 or 问 there).
    fn may_start(&self, rest: &str) -> bool {
        match (&self.first, rest.chars().next()) {
            (Some(first), Some(c)) => first.contains(&c),
            _ => true,
        }
    }

    /// The match that starts at `at`, where the pattern's starting anchor was found.
    fn confirm_at(&self, view: &str, at: usize, spans: &mut Vec<Span>) {
        if (self.from_start && at != 0)
            || (self.to_end && self.max_len.is_some_and(|max| view.len() - at > max))
        {
            return;
        }
        // Only the end is unknown: an anchored half search skips the reverse scan that finding a
        // start would need.
        let input = Input::new(view).range(at..).anchored(Anchored::Yes);
        let Ok(re) = self.re() else {
            return;
        };
        if let Some(m) = re.search_half(&input) {
            if m.offset() > at {
                spans.push(Span {
                    rule: self.rule,
                    start: at,
                    end: m.offset(),
                });
            }
        }
    }

    /// Runs the pattern where all its anchors were found; `found` holds (anchor, position) of each
    /// anchor literal found in `view`, at least one of each anchor, sorted.
    fn confirm(&self, view: &str, found: &[(u8, usize)], spans: &mut Vec<Span>) {
        debug_assert!((0..self.backs.len()).all(|a| found.iter().any(|f| f.0 as usize == a)));
        debug_assert!(found.is_sorted());
        let of_anchor = |a: u8| {
            let lo = found.partition_point(|f| f.0 < a);
            let hi = found.partition_point(|f| f.0 <= a);
            &found[lo..hi]
        };
        // Where a bounded pattern's match must lie around one of its anchors, every other anchor
        // must have been found too: in a long text the anchors of a two-anchor pattern are nearly
        // always there, but far apart, and most places are passed over without a search.
        let others_within = |anchor: u8, lo: usize, hi: usize| {
            (0..self.backs.len() as u8)
                .filter(|&a| a != anchor)
                .all(|a| {
                    let of = of_anchor(a);
                    of.get(of.partition_point(|f| f.1 < lo))
                        .is_some_and(|f| f.1 < hi)
                })
        };
        // An anchor a few characters into the pattern: trying each place a match could start
        // before it with an anchored search (most fail on their first byte) is cheaper than an
        // unanchored search, which has to find the start with a reverse scan.
        let short = self
            .backs
            .iter()
            .enumerate()
            .find_map(|(a, b)| b.filter(|&b| b <= SHORT_BACK).map(|b| (a as u8, b)));
        if let Some((anchor, back)) = short {
            for &(_, at) in of_anchor(anchor) {
                let first = at.saturating_sub(back);
                // A match starts at most `back` before this anchor and is at most `max` long.
                if let Some(max) = self.max_len {
                    if !others_within(anchor, first, at + max) {
                        continue;
                    }
                }
                for start in first..=at {
                    if view.is_char_boundary(start) && self.may_start(&view[start..]) {
                        self.confirm_at(view, start, spans);
                    }
                }
            }
            return;
        }
        let Ok(re) = self.re() else {
            return;
        };
        let mut search = |lo: usize, hi: usize| {
            if (self.from_start && lo > 0) || (self.to_end && hi < view.len()) {
                return;
            }
            let (lo, hi) = whole_range(view, lo, hi);
            // The haystack stays the whole view, so `^` and `$` keep their meaning.
            for m in re.find_iter(Input::new(view).range(lo..hi)) {
                if !m.is_empty() {
                    spans.push(Span {
                        rule: self.rule,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        };
        match (self.max_len, self.backs[0]) {
            // Every match holds a literal of the first anchor, starting at most `back` after the
            // match does, and is at most `max` long: so it lies within `back` before and `max`
            // after one of them. Those stretches that hold the other anchors too are searched,
            // overlapping ones together.
            (Some(max), Some(back)) => {
                let mut window: Option<(usize, usize)> = None;
                for &(_, at) in of_anchor(0) {
                    let (lo, hi) = (at.saturating_sub(back), at + max);
                    if !others_within(0, lo, hi) {
                        continue;
                    }
                    window = match window {
                        Some((wlo, whi)) if lo <= whi => Some((wlo, hi)),
                        Some((wlo, whi)) => {
                            search(wlo, whi);
                            Some((lo, hi))
                        }
                        None => Some((lo, hi)),
                    };
                }
                if let Some((lo, hi)) = window {
                    search(lo, hi);
                }
            }
            // Unbounded: a match starts at most `back` bytes before any of its anchors, so
            // searching from the earliest such place finds every match.
            _ => {
                let lo = found
                    .iter()
                    .map(|&(a, at)| self.backs[a as usize].map_or(0, |b| at.saturating_sub(b)))
                    .min()
                    .unwrap_or(0);
                search(lo, view.len());
            }
        }
    }
}

/// The per-message working lists, reused from message to message.
#[derive(Default)]
struct Scratch {
    view: String,
    spans: Vec<Span>,
    /// (group, term, start, end)
    near_hits: Vec<(u32, u16, usize, usize)>,
    /// (pattern, anchor, start)
    pattern_hits: Vec<(u32, u8, usize)>,
    /// (anchor, start) of one pattern
    found: Vec<(u8, usize)>,
    /// Per prefiltered pattern, the anchors seen in this message: (message stamp, one bit per
    /// anchor). A slot whose stamp is not this message's counts as empty, so nothing is cleared
    /// between messages, and a checker built after this scratch (a reload) only grows it.
    seen: Vec<(u32, u8)>,
    stamp: u32,
    /// Whether some pattern has all its anchors in this message.
    any_ready: bool,
}

impl Scratch {
    /// Clears the lists for a message of a matcher of `patterns` prefiltered patterns.
    fn clear(&mut self, patterns: usize) {
        self.spans.clear();
        self.near_hits.clear();
        self.pattern_hits.clear();
        self.found.clear();
        self.any_ready = false;
        if self.seen.len() < patterns {
            self.seen.resize(patterns, (0, 0));
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Once in four billion messages: old stamps could look current again.
            self.seen.fill((0, 0));
            self.stamp = 1;
        }
    }

    /// Notes anchor `anchor` of `pattern` seen; true when that completes the pattern's anchors,
    /// which marks the slot [`COMPLETE`](Self::COMPLETE).
    #[inline]
    fn see(seen: &mut [(u32, u8)], stamp: u32, pattern: u32, anchor: u8, all: u8) -> bool {
        let slot = &mut seen[pattern as usize];
        if slot.0 != stamp {
            *slot = (stamp, 0);
        }
        slot.1 |= 1 << anchor;
        if slot.1 == all {
            slot.1 |= Self::COMPLETE;
            return true;
        }
        false
    }

    /// A slot's mark for a pattern whose anchors were all seen (above the [`MAX_ANCHORS`] bits).
    const COMPLETE: u8 = 0x80;

    /// Whether every anchor of `pattern` was seen in the message of `stamp`.
    fn complete(seen: &[(u32, u8)], stamp: u32, pattern: u32) -> bool {
        let (at, bits) = seen[pattern as usize];
        at == stamp && bits & Self::COMPLETE != 0
    }
}

#[derive(Debug)]
pub(crate) struct Matcher {
    needles: Option<Needles>,
    /// The uses of every needle that has more than one (or one that is not a pattern anchor), one
    /// list after another, each entry marked when it ends its needle's list. The automaton's value
    /// for such a needle is where its list starts, so a match costs one load: a `Vec` per needle
    /// cost two dependent ones (the `Vec`, then its heap block) and were the largest stall of a
    /// clean message's scan (perf: a fifth of its samples). The other needles carry their use in
    /// the value itself (see [`Inline`]).
    uses: Vec<(Use, bool)>,
    /// Patterns confirmed where one of their required literals was found.
    prefixed: Vec<Prefiltered>,
    /// Patterns with no literal prefix, run over every message, with their rules.
    set: Option<RegexSet>,
    regexes: Vec<Regex>,
    pattern_rules: Vec<u32>,
    /// Per rule, the contexts that cancel its hits.
    unless: Vec<Unless>,
    near: Vec<NearGroup>,
    /// The distinct masks of where phrases may span clause punctuation (see [`Use::Phrase`]).
    breaks: Vec<u64>,
    /// How many needles, and how many of them pattern anchors.
    needle_counts: (usize, usize),
    detectors: Vec<(Detector, usize)>,
}

/// Every literal form of the lexicon in one Aho-Corasick automaton over characters.
///
/// The needles are Chinese: thousands of forms over about 1,300 distinct characters, three bytes
/// each in UTF-8. A byte-wise DFA (the `aho-corasick` crate's, stepped by hand) took three dependent
/// table loads per character in a 21 MiB table for 11,000 needles, ten times the L2 cache, and the
/// scan was half of a clean message's cost. `daachorse`'s character-wise double array maps each
/// character to a code ranked by frequency and takes one step per character in 0.7 MiB for the
/// same needles, with the same overlapping matches.
struct Needles {
    automaton: CharwiseDoubleArrayAhoCorasick<u32>,
}

impl std::fmt::Debug for Needles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needles")
            .field("states", &self.automaton.num_states())
            .finish()
    }
}

impl Needles {
    /// The automaton of `needles`, each with its value.
    fn new(needles: &[Vec<u8>], values: &[u32]) -> Result<Needles, String> {
        let needles = needles
            .iter()
            .map(|n| std::str::from_utf8(n).map_err(|e| e.to_string()))
            .collect::<Result<Vec<&str>, String>>()?;
        // The standard match kind reports overlapping matches.
        let automaton = CharwiseDoubleArrayAhoCorasick::with_values(
            needles.into_iter().zip(values.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        Ok(Needles { automaton })
    }

    /// Calls `f(value, start, end)` for every occurrence of every needle in `haystack`, overlapping
    /// ones included, in order of their end.
    #[inline]
    fn for_each(&self, haystack: &str, mut f: impl FnMut(u32, usize, usize)) {
        for m in self.automaton.find_overlapping_iter(haystack) {
            f(m.value(), m.start(), m.end());
        }
    }
}

/// A set of literals one of which every match of a pattern contains, at a known place in it.
#[derive(Debug, PartialEq)]
struct Anchor {
    /// The literals (they may be prefixes of longer required strings).
    literals: Vec<Vec<u8>>,
    /// How many bytes of the match may come before the literal: 0 when every match starts with it,
    /// `None` when the part before it is unbounded.
    back: Option<usize>,
}

/// Up to how many bytes before an anchor a match is confirmed by trying each start.
const SHORT_BACK: usize = 12;

/// At most this many anchors per pattern: two rare ones already make a confirmation rare.
const MAX_ANCHORS: usize = 2;

/// The rarest sets of literals every match of `pattern` must contain (at most [`MAX_ANCHORS`]), in the
/// order they occur in the pattern, when there are few enough literals to be worth putting in the
/// automaton; empty when there are none.
///
/// Lexicon patterns often start with optional or very common parts ("(你|您)?(自己)?(去)?(找|问)…",
/// "(等|看|问|…)…(不会死|死不了)"): anchoring on their first characters fired a regex search at most
/// 您, 我 and 问 of every clean message. So each required element of the pattern's top-level
/// concatenation is a candidate: the literals that start the rest of the pattern there (up to four
/// characters while they stay few: see [`required_prefixes`]), scored by [`Rarity`]. The regex runs only
/// where all the chosen sets were found.
fn anchors(hir: &Hir) -> Vec<Anchor> {
    let parts: Vec<Hir> = match hir.kind() {
        HirKind::Concat(parts) => parts.clone(),
        _ => vec![hir.clone()],
    };
    let mut candidates: Vec<(Rarity, usize, Anchor)> = Vec::new();
    let mut back = Some(0usize);
    for (i, part) in parts.iter().enumerate() {
        if part.properties().minimum_len().unwrap_or(0) > 0 {
            if let Some(literals) = required_prefixes(&Hir::concat(parts[i..].to_vec())) {
                candidates.push((Rarity::of(&literals), i, Anchor { literals, back }));
            }
        }
        back = match (back, part.properties().maximum_len()) {
            (Some(b), Some(m)) => Some(b + m),
            _ => None,
        };
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    // A second anchor when it has no single characters, or when the best one is not selective
    // either: a set of single characters fires on many messages, but two such sets together
    // rarely (measured on the chat corpus: ~10 % off a clean message, ~16 % off the mixed corpus,
    // though the automaton grows by a tenth). The model misjudges some common phrases: "这个问题"
    // is four characters, but a pattern anchored on it alone, "(这个)(问题)…(问)(三)(遍)", was
    // confirmed on one clean message in twenty; with "问三" as a second anchor, not at all. Two
    // words of two characters, each too common to be selective, are rare together: confirmations
    // on the chat corpus's 1,919 clean messages went from 496 to 161 (the automaton +6 %).
    let mut keep = 1;
    while keep < candidates.len().min(MAX_ANCHORS)
        && (candidates[keep].0.shortest >= 2 || !candidates[0].0.selective())
    {
        keep += 1;
    }
    candidates.truncate(keep);
    candidates.sort_by_key(|c| c.1);
    candidates.into_iter().map(|(_, _, a)| a).collect()
}

/// How often a set of anchor literals is expected to fire in chat; smaller is rarer.
///
/// A simple model: any given character stands at a given place of a message with probability 1/20,
/// so a literal of n characters fires about 20^-n times per place, and a set fires the sum of its
/// literals. Length dominates, as it does in real chat (您, 问 and 找 are in most messages; 不会死 in
/// almost none), and a long alternation of words still loses to a short list of rare ones.
/// (jieba's dictionary frequencies were tried and mislead: they come from news text, where 客服 and
/// 给您 are rare.)
#[derive(Debug)]
struct Rarity {
    expected: f64,
    shortest: usize,
}

impl Rarity {
    fn of(literals: &[Vec<u8>]) -> Rarity {
        let chars = |l: &Vec<u8>| String::from_utf8_lossy(l).chars().count();
        Rarity {
            expected: literals
                .iter()
                .map(|l| 20f64.powi(-(chars(l) as i32)))
                .sum(),
            shortest: literals.iter().map(chars).min().unwrap_or(0),
        }
    }

    fn cmp(&self, other: &Rarity) -> std::cmp::Ordering {
        self.expected.total_cmp(&other.expected)
    }

    /// Rare on its own: no single characters, which fire on many messages, and no more likely
    /// than eight two-character words (160 of three characters). A count of literals was the test
    /// before, and it called fifty three-character words common: their pattern then took a
    /// second anchor such as 你|您 or 是, which fired on most clean messages for nothing
    /// (measured on the chat corpus: 9 % of a message's instructions, 8 % of its cache misses).
    /// (Two sets that are not selective may still be, together: see [`anchors`].)
    fn selective(&self) -> bool {
        self.shortest >= 2 && self.expected <= 8.0 * 20f64.powi(-2)
    }
}

/// The characters every match of `pattern` starts with, when there are at most 64 of them (none
/// when a match can be empty or start with any of a large class).
fn first_chars(hir: &Hir) -> Option<Vec<char>> {
    let mut extractor = Extractor::new();
    extractor
        .kind(ExtractKind::Prefix)
        .limit_class(64)
        .limit_literal_len(4)
        .limit_total(64);
    let seq = extractor.extract(hir);
    let mut first = Vec::new();
    for literal in seq.literals()? {
        // A prefix may have been cut inside a character: only its first whole one counts.
        let bytes = literal.as_bytes();
        let valid = match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?,
        };
        first.push(valid.chars().next()?);
    }
    first.sort_unstable();
    first.dedup();
    Some(first)
}

/// The literals every match of `hir` starts with: the longest that stay few.
fn required_prefixes(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    // The longer the literals, the rarer a confirmation (a search that fails on nearly every clean
    // message): four characters while they stay few, else three, else two, and one character only
    // as the last resort. Needles are cheap in the character-wise automaton (it grows by about
    // 12 bytes a state): the shipped lexicon's 24,000 prefixes took 1.1 MiB, and cut the work on a
    // clean message by 6 % against a limit of three characters and 64 literals. Up to 1,024 of four
    // or three characters: lexicon patterns open with ever longer alternations (organisations,
    // roles, times), and at 256 more of them fell back to two characters or one, which fire on most
    // messages (callgrind, 141 rules, the chat corpus's clean messages: 4,040 -> 3,567 instructions
    // and 43.0 -> 36.7 L1 misses each; 2,048 gains nothing more; the automaton 2.4 -> 3.7 MiB).
    for (bytes, most) in [(12, 1024), (9, 1024), (6, 250), (3, 250)] {
        let mut extractor = Extractor::new();
        extractor
            .kind(ExtractKind::Prefix)
            .limit_class(32)
            .limit_literal_len(bytes)
            .limit_total(1024);
        let mut seq = extractor.extract(hir);
        seq.dedup();
        let Some(literals) = seq.literals() else {
            continue;
        };
        // The automaton steps over whole characters, and a prefix cut at a byte limit may end
        // inside one: the whole characters before the cut are still a prefix of every match.
        let mut whole: Vec<Vec<u8>> = literals
            .iter()
            .map(|l| whole_chars(l.as_bytes()).to_vec())
            .collect();
        whole.sort_unstable();
        whole.dedup();
        if whole.is_empty() || whole.len() > most || whole.iter().any(Vec::is_empty) {
            continue;
        }
        return Some(whole);
    }
    None
}

/// `lo..hi` widened to whole characters of `view` (and `hi` kept inside it).
fn whole_range(view: &str, mut lo: usize, hi: usize) -> (usize, usize) {
    while !view.is_char_boundary(lo) {
        lo -= 1;
    }
    let mut hi = hi.min(view.len());
    while !view.is_char_boundary(hi) {
        hi += 1;
    }
    (lo, hi)
}

/// The longest prefix of `bytes` that is whole UTF-8 characters.
fn whole_chars(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes,
        Err(e) => &bytes[..e.valid_up_to()],
    }
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
        let mut breaks: Vec<u64> = Vec::new();
        let mut prefixed = Vec::new();
        let mut patterns = Vec::new();
        let mut pattern_rules = Vec::new();
        let mut unless = Vec::new();
        let mut detectors = Vec::new();
        let mut needs_jieba = false;
        for (ri, rule) in rules.iter().enumerate() {
            let r = ri as u32;
            let f = &rule.forms;
            for (p, &mask) in f.phrases.iter().zip(&f.phrase_breaks) {
                let i = match breaks.iter().position(|&b| b == mask) {
                    Some(i) => i,
                    None => {
                        breaks.push(mask);
                        breaks.len() - 1
                    }
                };
                let breaks = u16::try_from(i).map_err(|_| "more than 65,536 break masks")?;
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
                // Parsed once for both analyses; a pattern that does not parse has neither, and
                // the regex set below reports its error.
                let hir = regex_syntax::Parser::new().parse(&p.value).ok();
                let anchors = hir.as_ref().map_or_else(Vec::new, anchors);
                match anchors.is_empty() {
                    false => {
                        let pattern = prefixed.len() as u32;
                        let p = Prefiltered {
                            pattern: p.value.clone(),
                            at: p.at.clone(),
                            re: OnceLock::new(),
                            rule: r,
                            backs: anchors.iter().map(|a| a.back).collect(),
                            first: hir.as_ref().and_then(first_chars),
                            max_len: hir.as_ref().and_then(|h| h.properties().maximum_len()),
                            from_start: hir.as_ref().is_some_and(|h| {
                                h.properties().look_set_prefix().contains(Look::Start)
                            }),
                            to_end: hir.as_ref().is_some_and(|h| {
                                h.properties().look_set_suffix().contains(Look::End)
                            }),
                        };
                        let at_start = p.starts_with_anchor();
                        let all = p.all_anchors();
                        prefixed.push(p);
                        for (a, anchor) in anchors.into_iter().enumerate() {
                            for literal in anchor.literals {
                                add(
                                    &literal,
                                    Use::PatternPart {
                                        pattern,
                                        anchor: a as u8,
                                        at_start,
                                        all,
                                    },
                                );
                            }
                        }
                    }
                    true => {
                        patterns.push(p.value.clone());
                        pattern_rules.push(r);
                    }
                }
            }
            unless.push(Unless::new(
                f.unless.iter().map(|u| u.value.clone()).collect(),
                f.unless_patterns.iter().map(|p| p.value.clone()).collect(),
            ));
            if let Some(d) = f.detector {
                detectors.push((d, ri));
            }
        }
        let needle_counts = (
            uses.len(),
            uses.iter()
                .filter(|of| of.iter().any(|u| matches!(u, Use::PatternPart { .. })))
                .count(),
        );
        let mut flat: Vec<(Use, bool)> = Vec::with_capacity(uses.iter().map(Vec::len).sum());
        let values: Vec<u32> = uses
            .iter()
            .map(|of_needle| match of_needle.as_slice() {
                [only] => match Inline::encode(*only) {
                    Some(value) => Ok(value),
                    None => Inline::list(&mut flat, of_needle),
                },
                _ => Inline::list(&mut flat, of_needle),
            })
            .collect::<Result<_, String>>()?;
        let uses = flat;
        let needles = match needles.is_empty() {
            true => None,
            false => Some(Needles::new(&needles, &values)?),
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
            needles,
            uses,
            prefixed,
            set,
            regexes,
            pattern_rules,
            unless,
            near,
            breaks,
            needle_counts,
            detectors,
        })
    }

    /// Compiles every regex now instead of on first use, and reports those that do not compile
    /// (a compiler limit: the lexicon has parsed them all), each with its place.
    ///
    /// Building the checker compiles nothing, so that a start-up or a reload takes what parsing
    /// and the automaton take (compiling the ~1,150 patterns and contexts was four fifths of it);
    /// a pattern is compiled when its anchors first occur in a message. `liyu lexicon check` calls
    /// this to report errors; the service calls it on a thread of its own after start-up (to have
    /// every regex ready before traffic needs it) and before swapping in a reloaded lexicon.
    pub(crate) fn compile_all(&self, rules: &[Rule]) -> Vec<String> {
        let mut errors = Vec::new();
        for p in &self.prefixed {
            if let Err(e) = p.re() {
                let id = &rules[p.rule as usize].id;
                errors.push(format!("{}: pattern of {id} does not compile: {e}", p.at));
            }
        }
        for (rule, unless) in rules.iter().zip(&self.unless) {
            if unless.is_empty() {
                continue;
            }
            if let Err(e) = unless.any() {
                errors.push(format!(
                    "{}: unless contexts of {} do not compile: {e}",
                    rule.at, rule.id
                ));
            }
            unless.each();
        }
        errors
    }

    /// How many needles the automaton holds, and how many of them are pattern prefixes.
    pub(crate) fn needle_counts(&self) -> (usize, usize) {
        self.needle_counts
    }

    /// The heap the needle automaton takes, in bytes: what a message's scan may touch.
    pub(crate) fn automaton_bytes(&self) -> usize {
        self.needles
            .as_ref()
            .map_or(0, |n| n.automaton.heap_bytes())
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
            // The view and the working lists of each message live in buffers kept per thread: no
            // allocation for them on the hot path, where a clean message costs a few hundred ns.
            static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.scan_with(rules, text, dedupe, &mut scratch),
            Err(_) => self.scan_with(rules, text, dedupe, &mut Scratch::default()),
        })
    }

    fn scan_with(&self, rules: &[Rule], text: &str, dedupe: bool, s: &mut Scratch) -> Vec<Hit> {
        s.clear(self.prefixed.len());
        let Scratch {
            view,
            spans,
            near_hits,
            pattern_hits,
            found,
            seen,
            stamp,
            any_ready,
        } = s;
        let stamp = *stamp;
        normalize_into(text, view);
        let view = view.as_str();
        // The offset map is built only when a hit needs it: most messages have none.
        let mut mapped: Option<Normalized> = None;

        if let Some(needles) = &self.needles {
            needles.for_each(view, |value, start, end| {
                // Several rules may share a word needle (each needle is one distinct form): jieba
                // answers once per occurrence.
                let mut stands: Option<bool> = None;
                let only;
                let of_needle = match Inline::decode(value) {
                    Some(u) => {
                        only = [(u, true)];
                        &only[..]
                    }
                    None => &self.uses[value as usize..],
                };
                for &(u, last) in of_needle {
                    match u {
                        Use::Phrase { rule, breaks } => {
                            // "没有为什么" is not in "一间没有?为什么": a phrase spans clause
                            // punctuation only where its written form has some.
                            let map = with_map(&mut mapped, text);
                            let allowed = self.breaks[breaks as usize];
                            if map.hard_breaks_within(start, end) & !allowed == 0 {
                                spans.push(Span { rule, start, end });
                            }
                        }
                        Use::Word { rule } => {
                            let ok = *stands.get_or_insert_with(|| {
                                segment::stands_as_word(with_map(&mut mapped, text), start, end)
                            });
                            if ok {
                                spans.push(Span { rule, start, end });
                            }
                        }
                        Use::NearTerm { group, term } => near_hits.push((group, term, start, end)),
                        Use::PatternPart {
                            pattern,
                            anchor,
                            at_start,
                            all,
                        } => {
                            if at_start {
                                self.prefixed[pattern as usize].confirm_at(view, start, spans);
                            } else {
                                // Every place is kept, but only a pattern that gets all its
                                // anchors is confirmed: a clean message sees ~10 anchors of
                                // patterns (您, 我, 是, digits are anchors of several), and
                                // sorting their places to find the complete ones was a fifth of
                                // its cost.
                                pattern_hits.push((pattern, anchor, start));
                                *any_ready |= Scratch::see(seen, stamp, pattern, anchor, all);
                            }
                        }
                    }
                    if last {
                        break;
                    }
                }
            });
        }
        if *any_ready {
            pattern_hits.retain(|&(pattern, _, _)| Scratch::complete(seen, stamp, pattern));
            if pattern_hits.len() > 1 {
                pattern_hits.sort_unstable();
            }
            for (i, &(pattern, anchor, at)) in pattern_hits.iter().enumerate() {
                found.push((anchor, at));
                if pattern_hits.get(i + 1).is_none_or(|next| next.0 != pattern) {
                    self.prefixed[pattern as usize].confirm(view, found, spans);
                    found.clear();
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
            self.chain_near(view, text, &mut mapped, near_hits, spans);
        }

        spans.retain(|s| !self.unless[s.rule as usize].cancels(view, s.start, s.end));
        // One hit per stretch of text per rule: the earliest, and of those the longest.
        spans.sort_by_key(|s| (s.rule, s.start, usize::MAX - s.end));
        let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans.drain(..) {
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
    ///
    /// A long message (a pasted document) can hold thousands of term hits, so each step looks up
    /// the next term by binary search and counts at most `window + 1` characters: linear in the
    /// hits, where a scan of every later hit with a full count of the characters between was
    /// quadratic in the length of the text.
    fn chain_near(
        &self,
        view: &str,
        text: &str,
        mapped: &mut Option<Normalized>,
        hits: &mut [(u32, u16, usize, usize)],
        spans: &mut Vec<Span>,
    ) {
        hits.sort_unstable();
        for of_group in hits.chunk_by(|a, b| a.0 == b.0) {
            let g = self.near[of_group[0].0 as usize];
            // The hits of term `t`, in order of start (the sort put them so).
            let term = |t: u16| {
                let lo = of_group.partition_point(|h| h.1 < t);
                let hi = of_group.partition_point(|h| h.1 <= t);
                &of_group[lo..hi]
            };
            let within = |from: usize, to: usize| {
                view[from..to].chars().take(g.window + 1).count() <= g.window
            };
            // The chain from `first`, handing each hit it takes to `each`; its end, when complete.
            let walk = |first: &(u32, u16, usize, usize), each: &mut dyn FnMut(usize, usize)| {
                each(first.2, first.3);
                let mut end = first.3;
                for t in 1..g.terms {
                    // The nearest hit of the next term at or after `end`: a later one is only
                    // farther away, so when this one is out of the window, all of them are.
                    let of_term = term(t);
                    let next = of_term
                        .get(of_term.partition_point(|h| h.2 < end))
                        .filter(|h| within(end, h.2))?;
                    each(next.2, next.3);
                    end = next.3;
                }
                Some(end)
            };
            let mut covered_to = 0;
            for first in term(0) {
                if first.2 < covered_to {
                    continue;
                }
                let Some(end) = walk(first, &mut |_, _| {}) else {
                    continue;
                };
                // A term does not span a quotation mark: in 不得对客户说"快点,我要下班了" the term 说快点
                // would pull the span out of the quotes, and a quoted phrase is the agent quoting,
                // not saying it (see [`mark_quoted`]). Other punctuation inside a term is an evasion
                // (下.班.了). Checked only on a whole chain (rare), so a clean message never builds
                // the offset map for it; the chain from the next first hit (快点) is tried next.
                let map = with_map(mapped, text);
                let mut whole = true;
                walk(first, &mut |s, e| {
                    whole &= !text[map.original_range(s, e)].contains(is_quotation_mark)
                });
                if whole {
                    spans.push(Span {
                        rule: g.rule,
                        start: first.2,
                        end,
                    });
                    covered_to = end;
                }
            }
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

/// The quotation marks an agent quotes a phrase in, opening and closing.
const QUOTES: [(char, char); 4] = [('“', '”'), ('「', '」'), ('『', '』'), ('"', '"')];

fn is_quotation_mark(c: char) -> bool {
    QUOTES.iter().any(|&(open, close)| c == open || c == close)
}

/// Marks hits that lie wholly inside a pair of quotation marks (“…” 「…」 『…』 "…").
///
/// An agent who writes 您说同事跟您讲“下班了,明天再来”,这确实不应该 is quoting a forbidden phrase to
/// apologise for it, not saying it; such hits are kept for review but do not count as violations.
fn mark_quoted(text: &str, hits: &mut [Hit]) {
    if hits.is_empty() || !text.chars().any(|c| QUOTES.iter().any(|p| p.0 == c)) {
        return;
    }
    let mut quoted: Vec<Range<usize>> = Vec::new();
    for (open, close) in QUOTES {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_anchor_travels_in_the_automatons_value() {
        for (pattern, anchor, at_start, all) in [(0, 0, true, 1), (70_000, 1, false, 3)] {
            let u = Use::PatternPart {
                pattern,
                anchor,
                at_start,
                all,
            };
            let value = Inline::encode(u).unwrap();
            assert_eq!(Inline::decode(value), Some(u));
        }
        // Other uses, and list starts, are not inline.
        assert_eq!(Inline::encode(Use::Word { rule: 3 }), None);
        assert_eq!(Inline::decode(12_345), None);
        let mut flat = Vec::new();
        let start = Inline::list(&mut flat, &[Use::Word { rule: 1 }, Use::Word { rule: 2 }]);
        assert_eq!(start, Ok(0));
        assert_eq!(
            flat,
            vec![
                (Use::Word { rule: 1 }, false),
                (Use::Word { rule: 2 }, true)
            ]
        );
    }

    fn parse(pattern: &str) -> Hir {
        regex_syntax::Parser::new().parse(pattern).unwrap()
    }

    fn first_chars(pattern: &str) -> Option<Vec<char>> {
        super::first_chars(&parse(pattern))
    }

    /// A checker of one rule with one pattern (its example is checked when the lexicon loads).
    fn checker_of(category: &str, pattern: &str, example: &str) -> crate::check::Checker {
        let lexicon = crate::check::Lexicon::from_sources([(
            "t.toml".to_string(),
            format!(
                r#"
category = "{category}"

[[rule]]
id = "{category}.t"
severity = "warn"
message = "m"
suggestions = ["请稍等"]
source = "common practice"
patterns = ['{pattern}']
examples = ["{example}"]
"#
            ),
        )]);
        let Ok(lexicon) = lexicon else {
            panic!("{:?}", lexicon.err())
        };
        crate::check::Checker::new(lexicon).unwrap()
    }

    fn literals(pattern: &str) -> Vec<Vec<String>> {
        anchors(&parse(pattern))
            .into_iter()
            .map(|a| {
                a.literals
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn anchors_skip_common_and_optional_starts() {
        // Not 等/看/问, which are in most messages: the rare required words at the end.
        let a = literals("(等|看|问)(一下)?(你|您)?(又|也)(不会死|死不了)");
        assert!(
            a.iter().any(|set| set.contains(&"不会死".to_string())),
            "{a:?}"
        );
        assert!(a
            .iter()
            .all(|set| set.iter().all(|l| l.chars().count() >= 2)));
    }

    #[test]
    fn a_second_anchor_only_when_it_is_a_word() {
        // 傻 is rare and required; the other required part is one of 你/您, which buys nothing.
        let a = literals("(你|您)(真)?傻");
        assert_eq!(a.len(), 1, "{a:?}");
    }

    #[test]
    fn single_characters_are_anchored_in_pairs() {
        // Every required part is one character (找 or 问, then 去 or 吧): neither alone is rare, both
        // together are, so both are anchors and the regex runs only where both were found.
        let a = literals("(找|问)[^我]{0,3}(去|吧)");
        assert_eq!(a.len(), 2, "{a:?}");
        let checker = checker_of("deflection", "(找|问)[^我]{0,3}(去|吧)", "你找别人去");
        let f = checker.check("这事你找前台去,我不管");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].matched, "找前台去");
        // Both anchors, no match: 去 comes before 找.
        assert!(checker.check("我去找找看").is_empty());
    }

    #[test]
    fn checkers_of_different_sizes_share_a_thread() {
        // The per-thread record of anchors seen is sized by the first checker to use it; a larger
        // checker built later (a reload) on the same thread must grow it, and anchors seen in
        // one message must not complete a pattern in the next.
        let small = checker_of("deflection", "(找|问)[^我]{0,3}(去|吧)", "你找别人去");
        assert_eq!(small.check("你找别人去").len(), 1);
        let large = crate::check::Checker::new(crate::check::Lexicon::builtin().unwrap()).unwrap();
        assert!(large
            .check("有牌子,自己看")
            .iter()
            .any(|f| f.matched == "有牌子,自己看"));
        assert_eq!(small.check("这事你找前台去,我不管").len(), 1);
        assert!(small.check("找一找").is_empty());
        assert!(small.check("吧").is_empty());
        assert!(large.check("请稍等").is_empty());
    }

    #[test]
    fn first_characters_of_optional_starts() {
        let first = first_chars("(你|您)?(自己)?(去)?(找|问|联系)(厂家|他们)(去|吧)");
        assert_eq!(
            first,
            Some(vec!['你', '去', '问', '您', '找', '自', '联']).map(|mut v: Vec<char>| {
                v.sort_unstable();
                v
            })
        );
        // A match may start with any ideograph, or be empty: no filter.
        assert_eq!(first_chars(r"\p{Han}{2}吧"), None);
        assert_eq!(first_chars("(等等)?"), None);
    }

    #[test]
    fn anchors_of_a_pattern_without_required_literals() {
        // Any two ideographs: no literal set small enough for the automaton.
        assert!(anchors(&parse(r"\p{Han}{2}")).is_empty());
    }

    #[test]
    fn a_match_that_starts_before_its_anchor_is_found() {
        let checker = checker_of(
            "impatience",
            "(等|看|问)(一下)?(你|您)?(又|也)(不会死|死不了)",
            "问一下又不会死",
        );
        let f = checker.check("你就等一下你又不会死!");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].matched, "等一下你又不会死");
        assert!(checker.check("这个问题不会影响您").is_empty());
    }

    #[test]
    fn a_match_is_found_where_its_anchors_are_near_each_other_not_where_they_are_far_apart() {
        // Both anchors are words and neither starts the pattern: the regex is searched only
        // around a 不会死 with a 懂吗 close enough after it to be one match.
        let pattern = r"(等|看|问)\p{Han}{0,4}(不会死|死不了)\p{Han}{0,8}(懂吗|知道吗)";
        assert_eq!(literals(pattern).len(), 2, "{:?}", literals(pattern));
        let checker = checker_of("condescension", pattern, "问一下又不会死你懂吗");
        let text = format!("问一下不会死,{}懂吗?看看又不会死你懂吗", "的".repeat(60));
        let f = checker.check(&text);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].matched, "看看又不会死你懂吗");
        assert!(checker
            .check(&format!("等等不会死{}知道吗", "的".repeat(20)))
            .is_empty());
    }

    #[test]
    fn patterns_tied_to_the_start_or_end_of_the_message() {
        let whole = checker_of("impatience", "^(哦|嗯)$", "嗯");
        assert_eq!(whole.check("嗯。").len(), 1);
        assert!(whole.check("嗯嗯").is_empty());
        assert!(whole.check("好的,嗯").is_empty());
        assert!(whole.check("嗯,好的").is_empty());
        let end = checker_of("impatience", "(自己看|自己查)(吧)?$", "你自己看吧");
        assert_eq!(end.check("规定都写着呢,自己看吧!")[0].matched, "自己看吧");
        assert!(end.check("自己看吧,我再给您讲一遍").is_empty());
        let start = checker_of("impatience", r"^\p{Han}{0,4}(自己看|自己查)", "你自己看");
        assert_eq!(start.check("那你自己看")[0].matched, "那你自己看");
        assert!(start.check("好的好的那你自己看").is_empty());
    }

    #[test]
    fn an_unless_context_tied_to_the_end_means_the_messages_end_not_its_windows() {
        // A question ("…保证能退吗") is not a promise; the same words with more after them are.
        let lexicon = crate::check::Lexicon::from_sources([(
            "t.toml".to_string(),
            r#"
category = "overpromise"

[[rule]]
id = "overpromise.t"
severity = "warn"
message = "m"
suggestions = ["请稍等"]
source = "common practice"
phrases = ["保证"]
unless_patterns = ['保证.*吗$', '保证金']
examples = ["保证能退"]
counter_examples = ["保证能退吗", "交保证金"]
"#
            .to_string(),
        )])
        .unwrap();
        let checker = crate::check::Checker::new(lexicon).unwrap();
        assert!(checker.check("这个保证能退吗?").is_empty());
        assert!(checker.check("保证金一周内退").is_empty());
        // The window ends 32 characters after the hit, here right after 吗: the context must not
        // take that for the end of the message.
        let thirty = "一二三四五六七八九十".repeat(3);
        let text = format!("保证{thirty}一吗,下周一定给您退回原账户");
        assert_eq!(checker.check(&text).len(), 1, "{text}");
        assert!(checker.check(&format!("保证{thirty}一吗")).is_empty());
    }

    #[test]
    fn a_pattern_prefix_cut_inside_a_character_still_anchors_the_pattern() {
        // The literal prefix is cut at twelve bytes, inside 看: the automaton steps over whole
        // characters, so the anchor must end before it.
        let prefixes = required_prefixes(&parse("a1你自己看吧")).unwrap();
        assert_eq!(prefixes, vec!["a1你自己".as_bytes().to_vec()]);
        let checker = checker_of("deflection", "a1你自己看吧", "a1你自己看吧");
        let f = checker.check("A1,你自己看吧!");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].matched, "A1,你自己看吧");
        assert!(checker.check("a1你自己来吧").is_empty());
    }
}
