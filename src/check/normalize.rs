//! The normalised view that every rule matches against, and the offset map back to the original.
//!
//! Agents (and people trying to get around a filter) write the same words in many ways: full-width
//! letters, traditional characters, spaces or emoji between characters, punctuation anywhere. Matching
//! runs on one canonical view so that a lexicon lists each form once:
//!
//! * NFKC (full-width → half-width, compatibility ideographs → unified ones),
//! * lower case,
//! * traditional → simplified (from `fast2s`'s table),
//! * whitespace, punctuation, emoji, symbols and zero-width characters dropped.
//!
//! Every character of the view remembers the byte range of the original character it came from, so a
//! finding's span is exact in the original text whatever was dropped or converted in between.

use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// What was dropped just before a character of the normalised view.
///
/// A *hard* break is clause punctuation (`,` `。` `?` …) or a newline: a word never spans it. A *soft*
/// break is anything else that was dropped (spaces, emoji, `*`, zero-width characters): the things people
/// put inside a word to get it past a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Break {
    None = 0,
    Soft = 1,
    Hard = 2,
}

/// One character of the normalised view.
#[derive(Clone, Copy, Debug)]
struct CharMap {
    /// Byte offset of this character in the normalised text.
    norm: u32,
    /// Byte range of the original character it came from.
    orig_start: u32,
    orig_end: u32,
    /// What was dropped between the previous kept character and this one.
    brk: Break,
}

/// A normalised view of a text with its offset map.
#[derive(Debug, Default)]
pub struct Normalized {
    text: String,
    chars: Vec<CharMap>,
}

/// Receives the characters of the normalised view as they are made.
///
/// One walk over the text serves two needs: the hot path wants only the view (most messages break no
/// rule, and then no span is ever mapped back), while a message with hits wants the full offset map.
trait Sink {
    fn keep(&mut self, c: char, orig_start: u32, orig_end: u32, brk: Break);
}

/// Walks `original`, sending every kept character of the view to `sink`.
#[inline(always)]
fn walk(original: &str, sink: &mut impl Sink) {
    let table = t2s_table();
    let mut pending = Break::None;
    let keep = |sink: &mut _, c: char, start: u32, end: u32, pending: &mut Break| {
        Sink::keep(sink, c, start, end, *pending);
        *pending = Break::None;
    };
    for (offset, c) in original.char_indices() {
        let orig_start = offset as u32;
        let orig_end = (offset + c.len_utf8()) as u32;
        // Fast path: ASCII and the CJK Unified Ideographs block are already NFKC and have no case
        // beyond ASCII's; they are nearly all of the text liyu sees.
        if c.is_ascii() {
            if keeps_ascii(c) {
                keep(
                    sink,
                    c.to_ascii_lowercase(),
                    orig_start,
                    orig_end,
                    &mut pending,
                );
            } else {
                pending = pending.max(drop_kind(c));
            }
            continue;
        }
        if (CJK_FIRST..=CJK_LAST).contains(&(c as u32)) {
            keep(sink, simplify(table, c), orig_start, orig_end, &mut pending);
            continue;
        }
        // Full-width ASCII (，！？Ａ１) is NFKC-equivalent to ASCII at a fixed offset.
        if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
            let a = char::from_u32(c as u32 - 0xFEE0).unwrap_or(' ');
            if keeps_ascii(a) {
                keep(
                    sink,
                    a.to_ascii_lowercase(),
                    orig_start,
                    orig_end,
                    &mut pending,
                );
            } else {
                pending = pending.max(drop_kind(c).max(drop_kind(a)));
            }
            continue;
        }
        // CJK and general punctuation (、。“”…—) that is dropped whatever NFKC makes of it.
        if matches!(c, '\u{2000}'..='\u{206F}' | '\u{3000}'..='\u{303F}') && is_dropped(c) {
            pending = pending.max(drop_kind(c));
            continue;
        }
        for k in std::iter::once(c).nfkc() {
            for l in k.to_lowercase() {
                let kept = if l.is_ascii() {
                    keeps_ascii(l)
                } else {
                    !is_dropped(l)
                };
                if kept {
                    keep(sink, simplify(table, l), orig_start, orig_end, &mut pending);
                } else {
                    pending = pending.max(drop_kind(l));
                }
            }
        }
    }
}

/// ASCII letters and digits are kept (lower-cased), and `%` because "100%" is a claim; the rest of
/// ASCII is punctuation, symbols, spaces and controls.
fn keeps_ascii(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '%'
}

struct TextOnly<'a>(&'a mut String);

impl Sink for TextOnly<'_> {
    #[inline(always)]
    fn keep(&mut self, c: char, _: u32, _: u32, _: Break) {
        self.0.push(c);
    }
}

impl Sink for Normalized {
    #[inline(always)]
    fn keep(&mut self, c: char, orig_start: u32, orig_end: u32, brk: Break) {
        self.chars.push(CharMap {
            norm: self.text.len() as u32,
            orig_start,
            orig_end,
            brk,
        });
        self.text.push(c);
    }
}

/// Writes the normalised view of `original` into `out` (cleared first), without the offset map.
///
/// This is on the path of every message, and nearly every character of chat is one the view keeps as
/// it is (a simplified CJK ideograph, a lower-case letter or digit) or drops (punctuation, spaces).
/// So the bytes are scanned with two bit tables, the runs of unchanged characters are copied as they
/// are, dropped ones are skipped, and only the rest (emoji, traditional characters, full-width
/// letters, capitals) take the full path of [`walk`]: a fraction of the cost of decoding and
/// re-encoding every character.
pub fn normalize_into(original: &str, out: &mut String) {
    out.clear();
    let tables = fast_tables();
    let bytes = original.as_bytes();
    let (mut i, mut run) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let len = if b < 0x80 {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'%' {
                i += 1;
                continue;
            }
            out.push_str(&original[run..i]);
            if b.is_ascii_uppercase() {
                out.push(b.to_ascii_lowercase() as char);
            }
            // Every other ASCII character is punctuation, a space or a control: dropped.
            i += 1;
            run = i;
            continue;
        } else if (0xE0..0xF0).contains(&b) {
            // A three-byte sequence (`original` is valid UTF-8, so both continuation bytes follow):
            // the CJK ideographs and CJK and full-width punctuation are all here.
            let cp = (u32::from(b & 0x0F) << 12)
                | (u32::from(bytes[i + 1] & 0x3F) << 6)
                | u32::from(bytes[i + 2] & 0x3F);
            if tables.is_unchanged(cp) {
                i += 3;
                continue;
            }
            if tables.is_dropped(cp) {
                out.push_str(&original[run..i]);
                i += 3;
                run = i;
                continue;
            }
            3
        } else if b < 0xE0 {
            2
        } else {
            4
        };
        out.push_str(&original[run..i]);
        walk(&original[i..i + len], &mut TextOnly(out));
        i += len;
        run = i;
    }
    out.push_str(&original[run..]);
}

/// Bit tables over the three-byte code points (U+0800..U+FFFF) for [`normalize_into`]: which the
/// view keeps unchanged and which it drops, as [`walk`] decides. 16 KB together, of which chat
/// touches a few cache lines; the conversion table itself is 110 KB.
struct FastTables {
    unchanged: Vec<u64>,
    dropped: Vec<u64>,
}

impl FastTables {
    #[inline(always)]
    fn bit(bits: &[u64], cp: u32) -> bool {
        let k = cp.wrapping_sub(0x800) as usize;
        bits.get(k / 64).is_some_and(|w| w & (1 << (k % 64)) != 0)
    }

    #[inline(always)]
    fn is_unchanged(&self, cp: u32) -> bool {
        Self::bit(&self.unchanged, cp)
    }

    #[inline(always)]
    fn is_dropped(&self, cp: u32) -> bool {
        Self::bit(&self.dropped, cp)
    }
}

fn fast_tables() -> &'static FastTables {
    static TABLES: OnceLock<FastTables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let words = (0x10000 - 0x800) / 64;
        let mut t = FastTables {
            unchanged: vec![0; words],
            dropped: vec![0; words],
        };
        let mut view = String::new();
        for cp in 0x800u32..0x10000 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let mut buf = [0u8; 4];
            view.clear();
            walk(c.encode_utf8(&mut buf), &mut TextOnly(&mut view));
            let k = (cp - 0x800) as usize;
            if view.is_empty() {
                t.dropped[k / 64] |= 1 << (k % 64);
            } else if view.chars().eq([c]) {
                t.unchanged[k / 64] |= 1 << (k % 64);
            }
        }
        t
    })
}

const CJK_FIRST: u32 = 0x4E00;
const CJK_LAST: u32 = 0x9FFF;

impl Normalized {
    /// Normalise `original`, keeping the offset map.
    pub fn new(original: &str) -> Normalized {
        let mut n = Normalized {
            text: String::with_capacity(original.len()),
            chars: Vec::with_capacity(original.len() / 2 + 1),
        };
        walk(original, &mut n);
        n
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Index of the normalised character that starts at byte `pos` (or `chars.len()` at the end).
    fn char_at(&self, pos: usize) -> usize {
        self.chars
            .binary_search_by_key(&(pos as u32), |m| m.norm)
            .unwrap_or_else(|i| i)
    }

    /// The byte range in the original text of the normalised byte range `start..end`.
    ///
    /// `start..end` must lie on character boundaries of the normalised text and not be empty.
    pub fn original_range(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        debug_assert!(start < end);
        let first = self.char_at(start);
        let last = self.char_at(end) - 1;
        self.chars[first].orig_start as usize..self.chars[last].orig_end as usize
    }

    /// What was dropped just before the normalised byte offset `pos` (a character boundary).
    /// The start and end of the text count as hard breaks.
    pub(crate) fn break_at(&self, pos: usize) -> Break {
        if pos == 0 || pos >= self.text.len() {
            return Break::Hard;
        }
        self.chars[self.char_at(pos)].brk
    }

    /// The strongest break strictly inside the normalised byte range `start..end`.
    pub(crate) fn break_within(&self, start: usize, end: usize) -> Break {
        let first = self.char_at(start);
        let last = self.char_at(end);
        self.chars[first + 1..last]
            .iter()
            .map(|m| m.brk)
            .max()
            .unwrap_or(Break::None)
    }

    /// Which characters of the normalised range `start..end` (by index from its start) follow clause
    /// punctuation of the original, as a bit mask; characters past the 64th are not reported.
    pub(crate) fn hard_breaks_within(&self, start: usize, end: usize) -> u64 {
        let first = self.char_at(start);
        let last = self.char_at(end);
        let mut mask = 0u64;
        for (k, m) in self.chars[first + 1..last].iter().enumerate().take(63) {
            if m.brk == Break::Hard {
                mask |= 1 << (k + 1);
            }
        }
        mask
    }

    /// The clause around `start..end`: the widest range that contains it, reaches at most `reach`
    /// characters either side, and crosses no hard break. Used to give jieba context for a word.
    pub(crate) fn clause_around(
        &self,
        start: usize,
        end: usize,
        reach: usize,
    ) -> std::ops::Range<usize> {
        let first = self.char_at(start);
        let last = self.char_at(end); // exclusive
        let mut lo = first;
        while lo > 0 && first - lo < reach && self.chars[lo].brk != Break::Hard {
            lo -= 1;
        }
        let mut hi = last;
        while hi < self.chars.len() && hi - last < reach && self.chars[hi].brk != Break::Hard {
            hi += 1;
        }
        let lo_byte = self.chars[lo].norm as usize;
        let hi_byte = self
            .chars
            .get(hi)
            .map_or(self.text.len(), |m| m.norm as usize);
        lo_byte..hi_byte
    }
}

/// Normalise a lexicon form the same way as a message, returning just the text.
pub fn normalize_form(form: &str) -> String {
    let mut out = String::with_capacity(form.len());
    normalize_into(form, &mut out);
    out
}

/// Where a lexicon form, as written, separates its characters with punctuation or spaces: bit `k`
/// is set when the `k`-th character of its normalised view follows something that was dropped. A
/// phrase may match across clause punctuation in a message only at those places.
pub fn written_breaks(form: &str) -> u64 {
    let n = Normalized::new(form);
    let mut mask = 0u64;
    for (k, m) in n.chars.iter().enumerate().skip(1).take(63) {
        if m.brk != Break::None {
            mask |= 1 << k;
        }
    }
    mask
}

/// Whether a (NFKC-ed, lower-cased) non-ASCII character is left out of the view.
fn is_dropped(c: char) -> bool {
    if matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}') {
        // Variation selectors ride along with emoji.
        return true;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Punctuation | GeneralCategoryGroup::Separator => true,
        GeneralCategoryGroup::Other => true, // controls, format (zero-width), private use
        GeneralCategoryGroup::Symbol => matches!(
            c.general_category(),
            GeneralCategory::OtherSymbol | GeneralCategory::ModifierSymbol
        ),
        _ => false,
    }
}

/// How strong a break a dropped character makes.
fn drop_kind(c: char) -> Break {
    match c {
        ',' | '.' | '!' | '?' | ';' | ':' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | '\''
        | '\n' | '\r' | '，' | '。' | '！' | '？' | '；' | '：' | '、' | '…' | '（' | '）'
        | '【' | '】' | '「' | '」' | '『' | '』' | '《' | '》' | '“' | '”' | '‘' | '’' => {
            Break::Hard
        }
        _ => Break::Soft,
    }
}

/// Traditional → simplified for one character.
///
/// `fast2s::convert` walks a string and looks every character up in a hash map; liyu normalises every
/// message on the hot path, so the per-character mapping of the CJK block is read out of fast2s once
/// into a flat table and each conversion becomes an array index. fast2s's few context-dependent cases
/// (characters that stay traditional inside particular words) are not needed for matching.
pub(crate) fn to_simplified(c: char) -> char {
    simplify(t2s_table(), c)
}

const T2S_FIRST: u32 = 0x3400;
const T2S_LAST: u32 = 0x9FFF;

#[inline(always)]
fn simplify(table: &[char], c: char) -> char {
    let cp = c as u32;
    if (T2S_FIRST..=T2S_LAST).contains(&cp) {
        table[(cp - T2S_FIRST) as usize]
    } else {
        c
    }
}

fn t2s_table() -> &'static [char] {
    static TABLE: OnceLock<Vec<char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (T2S_FIRST..=T2S_LAST)
            .map(|cp| {
                let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                let converted = fast2s::convert(c.encode_utf8(&mut buf));
                let mut chars = converted.chars();
                match (chars.next(), chars.next()) {
                    (Some(s), None) => s,
                    _ => c,
                }
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(s: &str) -> String {
        Normalized::new(s).as_str().to_string()
    }

    #[test]
    fn fast_view_is_the_view_of_the_full_walk() {
        // normalize_into copies unchanged runs and walks only the rest; the view must be exactly the
        // one the offset-mapped walk makes, for every kind of character around every other.
        let ranges = [
            0x0..0x250,
            0x2000..0x2070,
            0x3000..0x3040,
            0x3400..0x3440,
            0x4DF0..0x4E10,
            0x9FF0..0xA010,
            0xF900..0xF910,
            0xFE00..0xFE20,
            0xFF00..0xFF70,
            0x1F600..0x1F610,
            0x20000..0x20008,
        ];
        let mut chars: Vec<char> = ranges
            .into_iter()
            .flatten()
            .filter_map(char::from_u32)
            .collect();
        // A spread of the CJK block, traditional characters among them.
        chars.extend((0x4E00..0xA000).step_by(13).filter_map(char::from_u32));
        chars.extend("這個問題請您稍等，謝謝ＡＢＣ ＸＹＺ 有牌子,自己看".chars());
        let mut out = String::new();
        for width in [1, 2, 5, 16] {
            for chunk in chars.chunks(width) {
                let text: String = chunk.iter().collect();
                normalize_into(&text, &mut out);
                assert_eq!(out, view(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn drops_punctuation_spaces_emoji_and_zero_width() {
        assert_eq!(view("有牌子,自己看"), "有牌子自己看");
        assert_eq!(view("有牌子 自己看！"), "有牌子自己看");
        assert_eq!(view("快😊点\u{200B}吧🙂\u{FE0F}"), "快点吧");
        assert_eq!(view("傻*逼"), "傻逼");
    }

    #[test]
    fn full_width_and_case_fold() {
        assert_eq!(view("ＳＢ，ＴＭＤ"), "sbtmd");
        assert_eq!(view("１００％没问题"), "100%没问题");
    }

    #[test]
    fn traditional_to_simplified() {
        assert_eq!(view("下班了,明天再來"), "下班了明天再来");
        assert_eq!(view("這不歸我們管"), "这不归我们管");
    }

    #[test]
    fn offset_map_points_at_original() {
        let s = "快 点，我 要 下 班 了";
        let n = Normalized::new(s);
        assert_eq!(n.as_str(), "快点我要下班了");
        let at = n.as_str().find("下班").unwrap();
        let r = n.original_range(at, at + "下班".len());
        assert_eq!(&s[r], "下 班");
        let r = n.original_range(0, n.as_str().len());
        assert_eq!(&s[r], s);
    }

    #[test]
    fn breaks_are_hard_for_clause_punctuation_soft_for_spaces() {
        let n = Normalized::new("很快,点火 也");
        let t = n.as_str();
        assert_eq!(t, "很快点火也");
        assert_eq!(n.break_at(t.find('点').unwrap()), Break::Hard);
        assert_eq!(n.break_at(t.find('也').unwrap()), Break::Soft);
        assert_eq!(n.break_at(t.find('快').unwrap()), Break::None);
        assert_eq!(n.break_at(0), Break::Hard);
    }

    #[test]
    fn the_view_alone_equals_the_view_with_its_map() {
        for s in ["有牌子，自己看！", "ＳＢ😀快 点", "下班了,明天再來", ""] {
            let mut v = String::new();
            normalize_into(s, &mut v);
            assert_eq!(v, Normalized::new(s).as_str());
        }
    }

    #[test]
    fn written_breaks_mark_where_a_form_has_punctuation() {
        assert_eq!(written_breaks("有牌子,自己看"), 1 << 3);
        assert_eq!(written_breaks("有牌子自己看"), 0);
        assert_eq!(written_breaks("快 点"), 1 << 1);
        let n = Normalized::new("一间没有?为什么");
        let at = n.as_str().find("没有").unwrap();
        assert_eq!(n.hard_breaks_within(at, n.as_str().len()), 1 << 2);
    }

    #[test]
    fn empty_and_all_dropped() {
        assert_eq!(view(""), "");
        assert_eq!(view(" ,,。 😀"), "");
    }
}
