//! Detectors for customers' personal numbers: mainland mobile numbers, resident identity numbers and
//! bank card numbers.
//!
//! These run on the original text rather than the normalised view, because the view drops the spaces
//! and punctuation that separate one number from the next ("共3件,13600001234" must not read as a
//! 12-digit number). A number is a run of digits (ASCII or full-width) in which single spaces or dashes
//! may group the digits, with no letter or digit directly around it. A run is a finding only when it
//! passes the checks of its kind, so masked numbers, hotlines, short codes and most order numbers are
//! not findings; a number introduced as an order, waybill or ticket number is not personal data either.

use std::ops::Range;

use super::lexicon::Detector;

/// A personal number found in a text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub kind: Detector,
    pub bytes: Range<usize>,
    /// The number with its middle masked, as it may be written instead.
    pub masked: String,
}

/// Words that, just before a number, say it is a reference of the business and not a person's.
const REFERENCE_WORDS: &[&str] = &[
    "订单",
    "单号",
    "编号",
    "运单",
    "快递",
    "物流",
    "流水",
    "工单",
    "发票",
    "合同",
    "批次",
    "序列号",
    "型号",
    "票号",
    "案号",
    "受理号",
];
/// How many characters before a number are searched for a reference word.
const REFERENCE_REACH: usize = 8;

/// Whether the normalised view of a message could hold a personal number: a run of at least ten
/// digits (an identity number's check character may be an `x`). The view drops the spaces and dashes
/// that group digits, so every run the precise scan of the original could find is at least this long
/// here; most messages are ruled out by this one pass over the shorter view.
///
/// A run of ten digits covers one of every ten consecutive places, so only every tenth byte is
/// looked at, and a run is measured only around one that is a digit.
pub(crate) fn may_contain(view: &str) -> bool {
    let bytes = view.as_bytes();
    let need = MIN_DIGITS - 1;
    let mut probe = need - 1;
    while probe < bytes.len() {
        if !bytes[probe].is_ascii_digit() {
            probe += need;
            continue;
        }
        let start = bytes[..probe]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |i| i + 1);
        let end = bytes[probe..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |i| probe + i);
        if end - start >= need {
            return true;
        }
        // The next run starts after `end`, which is not a digit.
        probe = end + need;
    }
    false
}

pub(crate) fn scan(text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    if !text.bytes().any(
        |b| b.is_ascii_digit() || b == 0xEF, /* lead byte of full-width digits */
    ) {
        return found;
    }
    for run in runs(text) {
        if is_reference(text, run.groups[0].start) {
            continue;
        }
        classify_run(text, &run, &mut found);
    }
    found
}

/// A run of digit groups: each group a byte range of digits, separated by one space or dash.
struct Run {
    groups: Vec<Range<usize>>,
    /// Byte range of a trailing `X` (the check character of an identity number), if any.
    check_x: Option<Range<usize>>,
}

fn digit_value(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((c as u32 - '０' as u32) as u8),
        _ => None,
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\u{a0}' | '\u{3000}' | '－' | '‐' | '–')
}

/// The shortest personal number (a mobile number) has this many digits; shorter runs are skipped
/// before anything is allocated for them.
const MIN_DIGITS: usize = 11;

fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|rest| rest.chars().next())
}

/// `text` with the middle digits of every personal number replaced by `*`, character for character:
/// the masked text has the same length in characters and UTF-16 units, so spans computed on the
/// original still point at the same words.
pub fn mask_numbers(text: &str) -> String {
    let found = scan(text);
    if found.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.bytes.start]);
        let span = &text[f.bytes.clone()];
        let is_position =
            |c: char| digit_value(c).is_some() || matches!(c, 'X' | 'x' | 'Ｘ' | 'ｘ');
        let total = span.chars().filter(|c| is_position(*c)).count();
        let (keep_front, keep_back) = match f.kind {
            Detector::BankCard => (4, 4),
            _ => (3, 4),
        };
        let mut seen = 0;
        for c in span.chars() {
            if is_position(c) {
                let keep = seen < keep_front || seen + keep_back >= total;
                out.push(if keep { c } else { '*' });
                seen += 1;
            } else {
                out.push(c);
            }
        }
        at = f.bytes.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Byte offset of the next digit (ASCII, or full-width EF BC 90..=99) at or after `from`.
fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.iter()
        .enumerate()
        .position(|(k, &b)| {
            b.is_ascii_digit()
                || (b == 0xEF
                    && rest.get(k + 1) == Some(&0xBC)
                    && rest.get(k + 2).is_some_and(|n| (0x90..=0x99).contains(n)))
        })
        .map(|k| from + k)
}

/// Walks the run of digit groups starting at `i`: returns the groups (when `record`), the number of
/// digits and where the run ends.
fn walk_run(text: &str, i: usize, record: bool) -> (Vec<Range<usize>>, usize, usize) {
    let mut groups = Vec::new();
    let mut digits = 0;
    let mut j = i;
    loop {
        let group_start = j;
        while let Some(d) = char_at(text, j).filter(|&d| digit_value(d).is_some()) {
            j += d.len_utf8();
            digits += 1;
        }
        if record {
            groups.push(group_start..j);
        }
        match char_at(text, j) {
            Some(sep) if is_separator(sep) => {
                let after = j + sep.len_utf8();
                if char_at(text, after).is_some_and(|d| digit_value(d).is_some()) {
                    j = after;
                    continue;
                }
            }
            _ => {}
        }
        return (groups, digits, j);
    }
}

fn runs(text: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut i = 0;
    // Jump from digit to digit on the bytes: most of a message is not digits.
    while let Some(at) = next_digit(text.as_bytes(), i) {
        i = at;
        // Part of an identifier (letters glued to digits), not a number on its own.
        let glued_before = text[..i]
            .chars()
            .next_back()
            .is_some_and(|p| p.is_ascii_alphabetic());
        // Walk the run: digit groups joined by single separators. Groups are recorded only for a
        // run long enough to be a personal number (the second walk); most runs are prices or times.
        let start = i;
        let (groups, digits, j) = walk_run(text, i, false);
        let (groups, j) = if digits >= MIN_DIGITS - 1 {
            let (groups, _, j) = walk_run(text, i, true);
            (groups, j)
        } else {
            (groups, j)
        };
        let mut check_x = None;
        let mut end = j;
        if let Some(x) = char_at(text, j).filter(|x| matches!(x, 'X' | 'x' | 'Ｘ' | 'ｘ')) {
            check_x = Some(j..j + x.len_utf8());
            end = j + x.len_utf8();
        }
        let glued_after = char_at(text, end).is_some_and(|n| n.is_ascii_alphanumeric());
        if glued_after && check_x.is_some() {
            // "…X" followed by more letters: the X belonged to a word.
            check_x = None;
        }
        let glued = glued_before || (glued_after && check_x.is_none());
        if !glued && digits + usize::from(check_x.is_some()) >= MIN_DIGITS {
            runs.push(Run { groups, check_x });
        }
        i = end.max(start + 1);
    }
    runs
}

/// Words that, between a reference word and the number, say the number is a person's after all:
/// 快递员电话 is the courier's phone, not a waybill.
const PERSONAL_WORDS: &[&str] = &["电话", "手机", "联系方式", "身份证", "卡号", "银行卡"];

/// Whether the number at `start` is introduced as a reference of the business: a reference word
/// shortly before it, with no word for a person's number after that word.
fn is_reference(text: &str, start: usize) -> bool {
    let before = &text[..start];
    let from = before
        .char_indices()
        .rev()
        .nth(REFERENCE_REACH - 1)
        .map_or(0, |(b, _)| b);
    let window = &before[from..];
    REFERENCE_WORDS.iter().any(|w| {
        window.rfind(w).is_some_and(|at| {
            let after = &window[at + w.len()..];
            !PERSONAL_WORDS.iter().any(|p| after.contains(p))
        })
    })
}

fn digits_of(text: &str, groups: &[Range<usize>]) -> Vec<u8> {
    groups
        .iter()
        .flat_map(|g| text[g.clone()].chars().filter_map(digit_value))
        .collect()
}

/// Tries the whole run first, then shorter stretches of whole groups (a date and a phone number
/// written side by side form one run).
fn classify_run(text: &str, run: &Run, found: &mut Vec<Found>) {
    let n = run.groups.len();
    let mut from = 0;
    'outer: while from < n {
        for to in (from + 1..=n).rev() {
            let groups = &run.groups[from..to];
            let x = if to == n { run.check_x.clone() } else { None };
            if let Some(f) = classify(text, groups, x) {
                found.push(f);
                from = to;
                continue 'outer;
            }
        }
        from += 1;
    }
}

fn classify(text: &str, groups: &[Range<usize>], check_x: Option<Range<usize>>) -> Option<Found> {
    let digits = digits_of(text, groups);
    let start = groups[0].start;
    let digits_end = groups[groups.len() - 1].end;
    if let Some(x) = check_x {
        if digits.len() == 17 && id_checksum(&digits) == 10 && plausible_id(&digits) {
            return Some(Found {
                kind: Detector::IdCard,
                bytes: start..x.end,
                masked: mask_id(&digits, 'X'),
            });
        }
    }
    let bytes = start..digits_end;
    match digits.len() {
        11 if is_mobile(&digits) => Some(Found {
            kind: Detector::Mobile,
            bytes,
            masked: mask(&digits, 3, 4),
        }),
        13 if digits[..2] == [8, 6] && is_mobile(&digits[2..]) => Some(Found {
            kind: Detector::Mobile,
            bytes,
            masked: mask(&digits[2..], 3, 4),
        }),
        18 if plausible_id(&digits) && id_checksum(&digits[..17]) == digits[17] => {
            let check = (b'0' + digits[17]) as char;
            Some(Found {
                kind: Detector::IdCard,
                bytes,
                masked: mask_id(&digits[..17], check),
            })
        }
        16..=19 if is_card_prefix(&digits) && luhn(&digits) => Some(Found {
            kind: Detector::BankCard,
            bytes,
            masked: mask(&digits, 4, 4),
        }),
        _ => None,
    }
}

fn is_mobile(d: &[u8]) -> bool {
    d.len() == 11 && d[0] == 1 && (3..=9).contains(&d[1])
}

/// The GB 11643 check value of the first 17 digits: 0–9, or 10 for `X`.
fn id_checksum(d: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [u8; 11] = [1, 0, 10, 9, 8, 7, 6, 5, 4, 3, 2];
    let sum: u32 = d.iter().zip(WEIGHTS).map(|(&v, w)| u32::from(v) * w).sum();
    CHECK[(sum % 11) as usize]
}

/// A region code that starts with 1–8 and a birth date that exists in 1900–2099.
fn plausible_id(d: &[u8]) -> bool {
    let num = |r: Range<usize>| d[r].iter().fold(0u32, |a, &v| a * 10 + u32::from(v));
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    (1..=8).contains(&d[0])
        && (1900..=2099).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
}

/// Issuer prefixes of the cards used in China (UnionPay 62, Visa 4, Mastercard 2/5, JCB 35, and the
/// older domestic 9 series); other long numbers are far more often order or account references.
fn is_card_prefix(d: &[u8]) -> bool {
    match d[0] {
        4 | 5 | 9 => true,
        6 => matches!(d[1], 0 | 2 | 5),
        3 => d[1] == 5,
        2 => (2..=7).contains(&d[1]),
        _ => false,
    }
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &v)| {
            let v = u32::from(v);
            if i % 2 == 1 {
                let dbl = v * 2;
                if dbl > 9 {
                    dbl - 9
                } else {
                    dbl
                }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn mask(d: &[u8], keep_front: usize, keep_back: usize) -> String {
    d.iter()
        .enumerate()
        .map(|(i, &v)| {
            if i < keep_front || i >= d.len() - keep_back {
                (b'0' + v) as char
            } else {
                '*'
            }
        })
        .collect()
}

fn mask_id(first17: &[u8], check: char) -> String {
    let mut s = mask(first17, 3, 0);
    s.truncate(14);
    s.extend(first17[14..].iter().map(|&v| (b'0' + v) as char));
    s.push(check);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Detector, String, String)> {
        scan(text)
            .into_iter()
            .map(|f| (f.kind, text[f.bytes].to_string(), f.masked))
            .collect()
    }

    #[test]
    fn the_quick_test_finds_every_run_of_ten_digits_wherever_it_lies() {
        // Probing every tenth byte must agree with looking at all of them, for runs of every
        // length at every offset, among ASCII and three-byte characters.
        let naive = |view: &str| {
            let mut run = 0;
            view.bytes().any(|b| {
                run = if b.is_ascii_digit() { run + 1 } else { 0 };
                run >= MIN_DIGITS - 1
            })
        };
        for before in ["", "a", "号码", "单号12345", "x1234567"] {
            for len in 0..14 {
                for pad in 0..12 {
                    let view = format!(
                        "{before}{}{}{}是",
                        "您".repeat(pad % 3),
                        "a".repeat(pad),
                        "7".repeat(len)
                    );
                    assert_eq!(may_contain(&view), naive(&view), "{view}");
                    let view = format!("{view}{}", "1".repeat(pad));
                    assert_eq!(may_contain(&view), naive(&view), "{view}");
                }
            }
        }
    }

    #[test]
    fn mobile_numbers_plain_grouped_and_with_country_code() {
        assert_eq!(
            kinds("您的手机号是18612345678,没错吧"),
            [(Detector::Mobile, "18612345678".into(), "186****5678".into())]
        );
        assert_eq!(kinds("电话 138-1234-5678")[0].1, "138-1234-5678");
        assert_eq!(kinds("+86 13812345678")[0].2, "138****5678");
        assert_eq!(kinds("１３６０００１２３４５")[0].0, Detector::Mobile);
    }

    #[test]
    fn masked_numbers_hotlines_and_short_codes_are_not_findings() {
        assert!(kinds("您的手机号138****5678").is_empty());
        assert!(kinds("您的手机号后四位是5678,对吗").is_empty());
        assert!(kinds("400-100-8888是我们的官方热线").is_empty());
        assert!(kinds("急救电话是120").is_empty());
        assert!(kinds("客服电话95588").is_empty());
    }

    #[test]
    fn a_date_beside_a_phone_number_does_not_hide_it() {
        let k = kinds("2024-11-29 13600001234");
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].1, "13600001234");
    }

    #[test]
    fn identity_numbers_need_a_valid_checksum_and_date() {
        assert_eq!(
            kinds("客户身份证号440306199211174324,我发你核对一下"),
            [(
                Detector::IdCard,
                "440306199211174324".into(),
                "440***********4324".into()
            )]
        );
        assert!(kinds("440306199211174325")
            .iter()
            .all(|k| k.0 != Detector::IdCard));
        assert_eq!(kinds("11010519491231002X号")[0].0, Detector::IdCard);
    }

    #[test]
    fn bank_cards_need_luhn_and_an_issuer_prefix() {
        assert_eq!(
            kinds("银行卡6217000012345678907已经冻结"),
            [(
                Detector::BankCard,
                "6217000012345678907".into(),
                "6217***********8907".into()
            )]
        );
        assert_eq!(
            kinds("卡号 6217 0000 1234 5678 907")[0].0,
            Detector::BankCard
        );
        assert!(kinds("6217000012345678908").is_empty(), "fails Luhn");
    }

    #[test]
    fn masking_keeps_the_length_and_hides_the_middle() {
        let t = "电话138-1234-5678,卡号6217000012345678907,身份证11010519491231002X。";
        let m = mask_numbers(t);
        assert_eq!(
            m,
            "电话138-****-5678,卡号6217***********8907,身份证110***********002X。"
        );
        assert_eq!(m.chars().count(), t.chars().count());
        assert_eq!(
            mask_numbers("订单号3026112900012346"),
            "订单号3026112900012346"
        );
    }

    #[test]
    fn references_and_identifiers_are_not_personal_numbers() {
        assert!(kinds("订单号3026112900012346已为您记录").is_empty());
        assert!(kinds("运单号:13600001234").is_empty());
        assert!(kinds("型号AB13600001234").is_empty());
        assert!(kinds("快递单号 13600001234").is_empty());
    }

    #[test]
    fn a_persons_number_named_after_a_reference_word_is_still_personal() {
        // 快递 opens 快递员电话, the courier's phone: a mobile number, spaced digit by digit.
        assert_eq!(
            kinds("快递员电话 1 3 3 6 7 4 2 8 1 0 5"),
            [(
                Detector::Mobile,
                "1 3 3 6 7 4 2 8 1 0 5".to_string(),
                "133****8105".to_string()
            )]
        );
        assert_eq!(kinds("物流公司的联系方式13367428105").len(), 1);
    }
}
