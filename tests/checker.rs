//! The checker through its library API: the shipped rules' own examples, the false-positive guards
//! and the evasions (each pinned by name), exact spans, and bad input.

use std::collections::HashSet;

use liyu::{Category, Checker, Lexicon};

use crate::util::{checker, flags, repo, utf16_slice};

#[test]
fn every_example_of_every_shipped_rule_holds() {
    let problems = checker().verify_examples();
    assert!(
        problems.is_empty(),
        "{} example(s) fail:\n{}",
        problems.len(),
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_regex_of_the_shipped_lexicon_compiles() {
    // The checker compiles a regex when a message first needs it; a shipped pattern over a
    // compiler limit would otherwise only show as a rule that never fires.
    let checker = Checker::builtin().unwrap();
    if let Err(e) = checker.compile_all() {
        panic!("{e}");
    }
}

#[test]
fn the_shipped_lexicon_covers_every_category_with_250_forms() {
    let lexicon = Lexicon::builtin().unwrap();
    assert!(
        lexicon.surface_forms() >= 250,
        "only {} surface forms",
        lexicon.surface_forms()
    );
    for cat in Category::LEXICAL {
        let n = lexicon.rules().iter().filter(|r| r.category == cat).count();
        assert!(n >= 3, "category {cat} has only {n} rules");
    }
}

/// A message that must not be flagged at warn or above: a false-positive guard.
macro_rules! guard {
    ($($name:ident: $text:expr;)*) => {$(
        #[test]
        fn $name() {
            let f = flags($text);
            assert!(f.is_empty(), "{:?} was flagged: {:?}", $text,
                f.iter().map(|f| (&f.rule, &f.matched)).collect::<Vec<_>>());
        }
    )*};
}

/// A message written to get past a filter that must still be flagged in `category`, with the span
/// covering exactly `span` of the original text.
macro_rules! evasion {
    ($($name:ident: $text:expr => $category:ident, $span:expr;)*) => {$(
        #[test]
        fn $name() {
            let f = flags($text);
            let hit = f.iter().find(|f| f.category == Category::$category);
            let hit = hit.unwrap_or_else(|| panic!("{:?} not flagged as {:?}: {:?}",
                $text, Category::$category, f));
            assert_eq!(hit.matched, $span);
            assert_eq!(utf16_slice($text, hit.start, hit.end), $span);
        }
    )*};
}

guard! {
    guard_gun_in_scrolling: "屏幕滚动很流畅,反应也快";
    guard_gun_in_drum_washer: "滚筒洗衣机很安静";
    guard_gun_in_snowball: "滚雪球式的利息计算方式我给您解释一下";
    guard_tama_in_his_mother: "他妈妈来接他了";
    guard_mama_medical_card: "你妈妈的医保卡也可以一起办理";
    guard_kuaidian_across_words: "请您尽快点击短信里的链接";
    guard_kuaidian_across_comma: "这款车加速很快,点火也容易";
    guard_closing_time_stated_politely: "我们的下班时间是17点,您可以明天再来,也可以在网上办理";
    guard_referral_to_a_window: "请您到3号窗口办理";
    guard_referral_with_escort: "非常抱歉,这个业务需要到税务窗口办理,我带您过去";
    guard_warranty_period: "保修期三年,请保管好发票";
    guard_deposit: "保证金会在退租后原路退回";
    guard_own_commitment: "我保证在今天下班前给您回复";
    guard_neurosurgery: "神经外科今天有专家坐诊";
    guard_foolproof_operation: "傻瓜式操作,一键就能完成";
    guard_sick_note: "病假条需要医院盖章";
    guard_masked_phone: "您的手机号138****5678已验证";
    guard_hotline: "400-100-8888是我们的官方热线";
    guard_order_number: "订单号3026112900012346已为您记录";
    guard_emergency_number: "急救电话是120";
    guard_honest_not_knowing: "这个问题我确实不清楚,我请专业的同事来为您解答";
    guard_please_wait: "页面加载有点慢,请您稍等几秒";
    guard_asking_to_repeat: "请您再说一遍,我没听清楚";
    guard_forbidden_phrase_quoted_in_a_training_note: "培训内容包括服务忌语,例如不得对客户说\"快点,我要下班了\"。";
}

evasion! {
    evasion_spaces_between_characters: "快 点,我 要 下 班 了" => Impatience, "快 点,我 要 下 班 了";
    evasion_space_for_comma: "有牌子 自己看" => Deflection, "有牌子 自己看";
    evasion_traditional_characters: "下班了,明天再來" => Impatience, "下班了,明天再來";
    evasion_full_width_punctuation: "有牌子，自己看！" => Deflection, "有牌子，自己看";
    evasion_emoji_inside: "有牌子😊自己看" => Deflection, "有牌子😊自己看";
    evasion_zero_width_space: "快\u{200B}点,我要下班了" => Impatience, "快\u{200B}点,我要下班了";
    evasion_extra_punctuation: "有牌子!!!自己看" => Deflection, "有牌子!!!自己看";
    evasion_full_width_letters: "你是ＳＢ吗" => Profanity, "ＳＢ";
}

#[test]
fn spans_are_exact_in_bytes_and_utf16_around_astral_characters() {
    let text = "😀😀 快点,我要下班了 😀";
    for f in checker().check(text) {
        assert_eq!(&text[f.bytes.clone()], f.matched);
        assert_eq!(utf16_slice(text, f.start, f.end), f.matched);
    }
    assert!(!flags(text).is_empty());
}

#[test]
fn privacy_findings_suggest_the_masked_number() {
    let f = flags("这是另一位用户的电话:13600001234");
    let p = f.iter().find(|f| f.rule == "privacy.mobile").unwrap();
    assert_eq!(p.matched, "13600001234");
    assert_eq!(p.fix.as_deref(), Some("136****1234"));
    assert_eq!(p.suggestions[0], "136****1234");
}

#[test]
fn empty_and_punctuation_only_messages_have_no_findings() {
    assert!(checker().check("").is_empty());
    assert!(checker().check("  ，。！？😀\u{200B}").is_empty());
}

#[test]
fn a_one_megabyte_message_is_checked_whole() {
    let mut text = "您好,很高兴为您服务。".repeat(40_000);
    text.push_str("有牌子,自己看");
    assert!(text.len() > 1_000_000);
    let f = flags(&text);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].matched, "有牌子,自己看");
    assert_eq!(&text[f[0].bytes.clone()], "有牌子,自己看");
}

#[test]
fn a_long_document_finds_what_its_lines_find_at_the_same_places() {
    // 2,000 chat lines pasted as one text: every finding of a line alone is found in the whole, at
    // the line's offset (in UTF-16 units, as a console indexes). Long texts have thousands of near
    // terms and overlapping findings, the cases that once made the check quadratic.
    let text = std::fs::read_to_string(repo("benches/data/chat.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let whole = lines.join("\n");
    let found: HashSet<(String, usize, usize)> = checker()
        .check(&whole)
        .into_iter()
        .map(|f| (f.rule, f.start, f.end))
        .collect();
    let (mut offset, mut expected) = (0, 0);
    for line in &lines {
        let len = line.encode_utf16().count();
        // A pattern may be anchored at the message's start or end (`^`, `$`), which a line inside
        // the document is not: those findings are not expected in it.
        for f in checker()
            .check(line)
            .into_iter()
            .filter(|f| f.start > 0 && f.end < len)
        {
            expected += 1;
            let at = (f.rule.clone(), f.start + offset, f.end + offset);
            assert!(
                found.contains(&at),
                "{line:?}: {f:?} not found in the whole text"
            );
        }
        offset += len + 1;
    }
    assert!(expected >= 30, "{expected}");
}

#[test]
fn one_checker_serves_many_threads() {
    let c: &'static Checker = checker();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..200)
                    .map(|_| c.check("快点,我要下班了").len())
                    .sum::<usize>()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() >= 200);
    }
}

#[test]
fn quoting_a_forbidden_phrase_to_apologise_is_not_a_violation() {
    let text = "您说同事跟您讲“下班了,明天再来”,这确实不应该,我代表我们向您道歉";
    assert!(flags(text).is_empty(), "{:?}", flags(text));
    // Still visible to a reviewer, at info.
    assert!(checker()
        .check(text)
        .iter()
        .any(|f| f.matched == "下班了,明天再来"));
    // Unbalanced or absent quotes change nothing.
    assert!(!flags("“下班了,明天再来").is_empty());
}
