//! Word-boundary decisions with jieba, only where a `words` form was hit.
//!
//! Cutting every message with jieba would cost more than the rest of the checker together; a word
//! form is hit in a small share of messages, and then jieba cuts only the clause around the hit.

use std::sync::OnceLock;

use jieba_rs::Jieba;

use super::normalize::{Break, Normalized};

/// How far either side of a word jieba looks to decide whether it stands as a word: enough for the
/// words that could swallow the form, short enough to keep the cut cheap.
const WORD_CONTEXT_CHARS: usize = 8;

fn jieba() -> &'static Jieba {
    // The dictionary never changes, so it is loaded once per process and shared by every checker a
    // reload builds.
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// Loads jieba's dictionary if it is not loaded yet.
pub(crate) fn warm_up() {
    jieba();
}

/// Whether the normalised range `start..end` stands as a word.
///
/// It does when it spans no clause punctuation of the original, and each of its ends is either a
/// clause boundary (punctuation, start or end of the message) or a word boundary in jieba's cut of the
/// clause around it (without HMM, so that unknown characters stay single and cannot glue a short form
/// to its neighbours).
pub(crate) fn stands_as_word(norm: &Normalized, start: usize, end: usize) -> bool {
    if norm.break_within(start, end) == Break::Hard {
        return false;
    }
    let left_free = norm.break_at(start) == Break::Hard;
    let right_free = norm.break_at(end) == Break::Hard;
    if left_free && right_free {
        return true;
    }
    let clause = norm.clause_around(start, end, WORD_CONTEXT_CHARS);
    let text = &norm.as_str()[clause.clone()];
    let (mut left, mut right) = (left_free, right_free);
    for token in jieba().cut(text, false) {
        let (s, e) = (
            clause.start + token.byte_start,
            clause.start + token.byte_end,
        );
        left |= s == start;
        right |= e == end;
    }
    left && right
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, form: &str) -> bool {
        let n = Normalized::new(text);
        let start = n.as_str().find(form).expect("form in text");
        stands_as_word(&n, start, start + form.len())
    }

    #[test]
    fn gun_stands_alone_but_not_in_compounds() {
        assert!(word("你给我滚", "滚"));
        assert!(word("滚!", "滚"));
        assert!(!word("屏幕滚动很流畅", "滚"));
        assert!(!word("滚筒洗衣机", "滚"));
    }

    #[test]
    fn tama_not_inside_mama() {
        assert!(!word("他妈妈来了", "他妈"));
    }

    #[test]
    fn kuaidian_not_across_words_or_punctuation() {
        assert!(word("马上下班了,你快点", "快点"));
        assert!(word("快点,我要下班了", "快点"));
        assert!(!word("尽快点击链接", "快点"));
        assert!(!word("这款车加速很快,点火也容易", "快点"));
    }

    #[test]
    fn spaces_inside_a_word_are_an_evasion_not_a_boundary() {
        assert!(word("快 点,我要下班了", "快点"));
    }
}
