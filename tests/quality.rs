//! The quality bar: labelled agent messages (the shared evaluation set and our own development set)
//! and ordinary text that must almost never be flagged.

use liyu::Severity;

use crate::util::{checker, flags, labelled, repo, shared, utf16_slice, Labelled};

struct Score {
    recall: f64,
    precision: f64,
    category: f64,
    errors: Vec<String>,
}

/// Scores like `../shared/eval/score.py`: a message is flagged when it has a warn or block finding;
/// a flagged message is in the right category when one of those findings' categories is acceptable.
fn score(set: &[Labelled]) -> Score {
    let (mut tp, mut fp, mut fn_, mut cat_ok) = (0.0, 0.0, 0.0, 0.0);
    let mut errors = Vec::new();
    for m in set {
        let all = checker().check(&m.text);
        for f in &all {
            assert_eq!(
                utf16_slice(&m.text, f.start, f.end),
                f.matched,
                "{}: bad span",
                m.id
            );
        }
        let hits: Vec<_> = all
            .iter()
            .filter(|f| f.severity >= Severity::Warn)
            .collect();
        match (m.flag, !hits.is_empty()) {
            (true, true) => {
                tp += 1.0;
                if hits
                    .iter()
                    .any(|f| m.categories.iter().any(|c| c == f.category.as_str()))
                {
                    cat_ok += 1.0;
                } else {
                    errors.push(format!(
                        "category {} {:?} {:?}",
                        m.id,
                        m.text,
                        hits.iter().map(|f| f.category.as_str()).collect::<Vec<_>>()
                    ));
                }
            }
            (true, false) => {
                fn_ += 1.0;
                errors.push(format!("missed {} {:?}", m.id, m.text));
            }
            (false, true) => {
                fp += 1.0;
                errors.push(format!(
                    "false positive {} {:?} {:?}",
                    m.id,
                    m.text,
                    hits.iter()
                        .map(|f| (&f.rule, &f.matched))
                        .collect::<Vec<_>>()
                ));
            }
            (false, false) => {}
        }
    }
    Score {
        recall: if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 1.0 },
        precision: if tp + fp > 0.0 { tp / (tp + fp) } else { 1.0 },
        category: if tp > 0.0 { cat_ok / tp } else { 0.0 },
        errors,
    }
}

fn assert_score(name: &str, s: &Score, recall: f64, precision: f64, category: f64) {
    eprintln!(
        "{name}: recall {:.3} precision {:.3} category {:.3}\n  {}",
        s.recall,
        s.precision,
        s.category,
        s.errors.join("\n  ")
    );
    assert!(
        s.recall >= recall && s.precision >= precision && s.category >= category,
        "{name}: recall {:.3} (min {recall}) precision {:.3} (min {precision}) category {:.3} (min {category})\n  {}",
        s.recall,
        s.precision,
        s.category,
        s.errors.join("\n  ")
    );
}

#[test]
fn shared_evaluation_set_meets_the_bar() {
    let path = shared("eval/messages.jsonl");
    let set = labelled(&path);
    assert!(
        set.len() >= 50,
        "{} has only {} messages",
        path.display(),
        set.len()
    );
    assert_score("shared eval", &score(&set), 0.95, 0.95, 0.95);
}

#[test]
fn development_set_generalises() {
    // Written separately from the rules, to see that they generalise beyond the shared set's wording.
    let set = labelled(&repo("tests/data/dev.jsonl"));
    assert_score("dev set", &score(&set), 0.90, 0.95, 0.90);
}

#[test]
fn ordinary_text_is_almost_never_flagged() {
    // News, product reviews, forum posts, friends' chat and polite replies: at most 1 line in 200
    // flagged at warn or above over all the files. ordinary2.txt (400 lines) and ordinary3.txt to
    // ordinary15.txt (300 each) were written later, without reading the rules: 0, 4, 5, 1, 7, 1, 6,
    // 4, 2, 1, 4, 5, 1 and 1 lines flagged on first measurement.
    let mut lines = 0;
    let mut flagged: Vec<String> = Vec::new();
    for file in [
        "tests/data/ordinary.txt",
        "tests/data/ordinary2.txt",
        "tests/data/ordinary3.txt",
        "tests/data/ordinary4.txt",
        "tests/data/ordinary5.txt",
        "tests/data/ordinary6.txt",
        "tests/data/ordinary7.txt",
        "tests/data/ordinary8.txt",
        "tests/data/ordinary9.txt",
        "tests/data/ordinary10.txt",
        "tests/data/ordinary11.txt",
        "tests/data/ordinary12.txt",
        "tests/data/ordinary13.txt",
        "tests/data/ordinary14.txt",
        "tests/data/ordinary15.txt",
    ] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            lines += 1;
            let f = flags(l);
            if !f.is_empty() {
                flagged.push(format!(
                    "{file}: {l:?} {:?}",
                    f.iter().map(|f| (&f.rule, &f.matched)).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(lines >= 4800, "{lines}");
    assert!(
        flagged.len() * 200 <= lines,
        "{} of {lines} ordinary lines flagged:\n{}",
        flagged.len(),
        flagged.join("\n")
    );
}

#[test]
fn held_out_sets_stay_above_their_measured_level() {
    // Written without seeing the rules. Their first scores (holdout 0.755 / 1.000, holdout2
    // 0.811 / 0.973, holdout3 0.750 / 0.989, holdout4 0.664 / 1.000, holdout5 0.547 / 1.000,
    // holdout6 0.685 / 0.984, holdout7 0.824 / 1.000, holdout8 0.657 / 0.985, holdout9 0.741 / 0.988,
    // holdout10 0.618 / 0.919, holdout11 0.856 / 1.000, holdout12 0.917 / 0.992, holdout13
    // 0.765 / 1.000, holdout14 0.831 / 1.000, holdout15 0.762 / 0.990, holdout16 0.742 / 1.000,
    // holdout17 0.682 / 0.989) were taken before
    // any rule was written from their misses; this guards against regressions, it does not measure
    // generalisation any more.
    for (file, recall) in [
        ("tests/data/holdout.jsonl", 0.95),
        ("tests/data/holdout2.jsonl", 0.95),
        ("tests/data/holdout3.jsonl", 0.95),
        ("tests/data/holdout4.jsonl", 0.95),
        ("tests/data/holdout5.jsonl", 0.95),
        ("tests/data/holdout6.jsonl", 0.95),
        ("tests/data/holdout7.jsonl", 0.95),
        ("tests/data/holdout8.jsonl", 0.95),
        ("tests/data/holdout9.jsonl", 0.95),
        ("tests/data/holdout10.jsonl", 0.95),
        ("tests/data/holdout11.jsonl", 0.95),
        ("tests/data/holdout12.jsonl", 0.95),
        ("tests/data/holdout13.jsonl", 0.95),
        ("tests/data/holdout14.jsonl", 0.95),
        ("tests/data/holdout15.jsonl", 0.95),
        ("tests/data/holdout16.jsonl", 0.95),
        ("tests/data/holdout17.jsonl", 0.95),
    ] {
        let set = labelled(&repo(file));
        assert_score(file, &score(&set), recall, 0.95, 0.95);
    }
}

#[test]
fn blind_sets_no_rule_was_written_from_keep_their_first_measurement() {
    // holdout18 and holdout19 were written blind like the others, in the shared set's own mix:
    // 0.817 / 0.991 and 0.908 / 1.000 on first measurement (after holdout16's rule families). No rule
    // has been written from them, so they stay an honest measure of how the rules carry to messages
    // nobody tuned them on: holdout17's 56 rule commits, which took it from 0.697 to 1.000, moved
    // neither; a privacy fix that a holdout18 miss showed (快递员电话) took it to 0.824. This guards
    // that level while it lasts.
    for (file, recall) in [
        ("tests/data/holdout18.jsonl", 0.82),
        ("tests/data/holdout19.jsonl", 0.90),
    ] {
        let set = labelled(&repo(file));
        assert_score(file, &score(&set), recall, 0.95, 0.95);
    }
}
