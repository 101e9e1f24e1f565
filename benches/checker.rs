//! How close is liyu's checker to the cost of just finding the forms, and how far ahead of the naive
//! design?
//!
//! On a corpus of chat messages (`benches/data/chat.txt`, mostly clean, a few per cent breaking rules),
//! in one run:
//! - `liyu`: `Checker::check` with the full shipped lexicon (normalisation, matching, word boundaries,
//!   near chains, unless, privacy, spans);
//! - `raw-ac` (the ceiling): one Aho-Corasick overlapping scan with the same literal forms over text
//!   that was normalised beforehand, counting matches and nothing else;
//! - `naive`: jieba cuts every message and every word is looked up in a set of the forms.
//!
//! Each runs on three corpora: the clean messages, all messages (mixed), and the messages joined into
//! ~4 KB paragraphs (long). After criterion's own report, a table prints ns/message, MB/s and the
//! ratios, and how long building the full lexicon takes.

use std::collections::HashSet;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use criterion::{Criterion, Throughput};
use jieba_rs::Jieba;
use liyu::check::normalize::{normalize_into, Normalized};
use liyu::{Checker, Lexicon};

struct Corpus {
    name: &'static str,
    messages: Vec<String>,
    normalized: Vec<String>,
    bytes: usize,
}

impl Corpus {
    fn new(name: &'static str, messages: Vec<String>) -> Corpus {
        let normalized = messages
            .iter()
            .map(|m| Normalized::new(m).as_str().to_string())
            .collect();
        let bytes = messages.iter().map(String::len).sum();
        Corpus {
            name,
            messages,
            normalized,
            bytes,
        }
    }
}

fn corpora(checker: &Checker) -> Vec<Corpus> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/chat.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let all: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let clean: Vec<String> = all
        .iter()
        .filter(|m| checker.check(m).is_empty())
        .cloned()
        .collect();
    let mut long = Vec::new();
    let mut para = String::new();
    for m in &all {
        para.push_str(m);
        para.push('\n');
        if para.len() >= 4096 {
            long.push(std::mem::take(&mut para));
        }
    }
    vec![
        Corpus::new("clean", clean),
        Corpus::new("mixed", all),
        Corpus::new("long", long),
    ]
}

/// Every literal form of the lexicon, normalised, as the checker's automaton holds them.
fn literal_forms(lexicon: &Lexicon) -> Vec<String> {
    let mut forms = HashSet::new();
    for r in lexicon.rules() {
        let f = &r.forms;
        for l in f.phrases.iter().chain(&f.words).chain(&f.unless) {
            forms.insert(l.value.clone());
        }
        for group in &f.near {
            for alternatives in &group.value {
                forms.extend(alternatives.iter().cloned());
            }
        }
    }
    let mut forms: Vec<String> = forms.into_iter().collect();
    forms.sort();
    forms
}

fn main() {
    let lexicon = Lexicon::builtin().expect("built-in lexicon");
    let forms = literal_forms(&lexicon);
    let checker = Checker::new(lexicon.clone()).expect("checker");
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&forms)
        .expect("automaton");
    let jieba = Jieba::new();
    let form_set: HashSet<&str> = forms.iter().map(String::as_str).collect();
    let corpora = corpora(&checker);

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for corpus in &corpora {
        let mut g = c.benchmark_group(corpus.name);
        g.throughput(Throughput::Bytes(corpus.bytes as u64));
        g.bench_function("liyu", |b| {
            b.iter(|| {
                let mut n = 0;
                for m in &corpus.messages {
                    n += checker.check(black_box(m)).len();
                }
                n
            })
        });
        g.bench_function("raw-ac", |b| {
            b.iter(|| {
                let mut n = 0;
                for m in &corpus.normalized {
                    n += ac.find_overlapping_iter(black_box(m.as_str())).count();
                }
                n
            })
        });
        g.bench_function("normalise-only", |b| {
            let mut view = String::new();
            b.iter(|| {
                let mut n = 0;
                for m in &corpus.messages {
                    normalize_into(black_box(m), &mut view);
                    n += view.len();
                }
                n
            })
        });
        g.bench_function("naive", |b| {
            b.iter(|| {
                let mut n = 0;
                for m in &corpus.messages {
                    let view = Normalized::new(black_box(m));
                    n += jieba
                        .cut(view.as_str(), true)
                        .iter()
                        .filter(|t| form_set.contains(t.word))
                        .count();
                }
                n
            })
        });
        g.finish();
    }
    c.bench_function("build/full-lexicon", |b| {
        b.iter(|| Checker::new(black_box(lexicon.clone())).unwrap())
    });
    c.final_summary();
    summary(&corpora, &checker, &ac, &jieba, &form_set, &lexicon);
}

/// Median ns per pass of `f` over a corpus, from a few quick repeats (criterion's report above has
/// the careful figures; this gives the ratios in one table).
fn median_ns(mut f: impl FnMut() -> usize) -> f64 {
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_nanos() as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn summary(
    corpora: &[Corpus],
    checker: &Checker,
    ac: &AhoCorasick,
    jieba: &Jieba,
    form_set: &HashSet<&str>,
    lexicon: &Lexicon,
) {
    println!();
    println!(
        "lexicon: {} rules, {} surface forms, {} literal needles",
        lexicon.rules().len(),
        lexicon.surface_forms(),
        form_set.len()
    );
    println!(
        "{:<6} {:>6} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9} {:>10} {:>10}",
        "corpus",
        "msgs",
        "liyu ns/msg",
        "MB/s",
        "raw ns/msg",
        "MB/s",
        "naive ns/msg",
        "MB/s",
        "liyu/raw",
        "liyu/naive"
    );
    for corpus in corpora {
        let n = corpus.messages.len() as f64;
        let liyu = median_ns(|| corpus.messages.iter().map(|m| checker.check(m).len()).sum());
        let raw = median_ns(|| {
            corpus
                .normalized
                .iter()
                .map(|m| ac.find_overlapping_iter(m.as_str()).count())
                .sum()
        });
        let naive = median_ns(|| {
            corpus
                .messages
                .iter()
                .map(|m| {
                    let view = Normalized::new(m);
                    jieba
                        .cut(view.as_str(), true)
                        .iter()
                        .filter(|t| form_set.contains(t.word))
                        .count()
                })
                .sum()
        });
        let mbs = |ns: f64| corpus.bytes as f64 / ns * 1e9 / 1e6;
        println!(
            "{:<6} {:>6} {:>12.0} {:>9.1} {:>12.0} {:>9.1} {:>12.0} {:>9.1} {:>9.2}x {:>9.1}x",
            corpus.name,
            corpus.messages.len(),
            liyu / n,
            mbs(liyu),
            raw / n,
            mbs(raw),
            naive / n,
            mbs(naive),
            raw / liyu,
            naive / liyu
        );
    }
    let build = median_ns(|| Checker::new(lexicon.clone()).map_or(0, |c| c.rules().len()));
    println!(
        "build full lexicon: {:.1} ms (jieba's dictionary is loaded once per process, before this)",
        build / 1e6
    );
    println!("liyu/raw is the share of the ceiling's speed (target >= 0.25); liyu/naive is how many times faster than jieba-cutting every message (target >= 10)");
}
