//! Do the team leads' queries stay fast on a big store?
//!
//! A SQLite store with 1,000,000 findings (30 days, 60 agents, every rule and category, 5 % reviewed)
//! plus the matching per-hour message counts and 300,000 reply times; then, with criterion, the
//! queries the dashboard makes: `GET /v1/findings` with filters (newest page, by agent, by
//! category and time range, by rule, text search, a later page by cursor) and `GET /v1/stats` by
//! agent, rule, category, hour and day over the last 7 days. Target: every median under 50 ms.
//!
//! The store is built once into `target/liyu-bench-store/` and reused while it has the expected
//! rows (`LIYU_BENCH_ROWS` changes the size; a smaller size builds a separate file).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use liyu::check::{Category, Finding, Severity};
use liyu::proxy::Action;
use liyu::store::{self, Filter, Group, StoreEvent};

const DAY_MS: u64 = 86_400_000;
/// The data's last instant (fixed, so a rebuilt store is the same store).
const END_MS: u64 = 1_764_374_400_000;

/// A small deterministic generator (xorshift64*), so the store is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rules() -> Vec<(String, Category, Severity)> {
    let checker = liyu::Checker::builtin().unwrap();
    checker
        .rules()
        .iter()
        .map(|r| (r.id.clone(), r.category, r.severity))
        .collect()
}

const TEXTS: &[&str] = &[
    "您好,有牌子,自己看",
    "下班了,明天再来吧",
    "快点,我要下班了",
    "已经告诉你一遍了,还不懂",
    "没看我正忙着吗",
    "这个不归我们管,你去别处问问",
    "我保证百分之百能退款成功",
    "您的手机号是138****5678,没错吧",
];

fn build(path: &PathBuf, rows: u64) {
    let _ = std::fs::remove_file(path);
    let url = format!("sqlite:{}", path.display());
    let mut b = store::open(&url).expect("store opens");
    let rules = rules();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = END_MS - 30 * DAY_MS;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(5_000);
    for i in 0..rows {
        let at_ms = start + (i * 30 * DAY_MS) / rows;
        let agent = format!("agent-{:02}", rng.below(60));
        let (rule, category, severity) = &rules[rng.below(rules.len() as u64) as usize];
        let text = TEXTS[rng.below(TEXTS.len() as u64) as usize];
        batch.push(StoreEvent::Findings {
            at_ms,
            conversation: Some(format!("c{}", i / 4)),
            agent: Some(agent.clone()),
            message_id: Some(i.to_string()),
            text: text.to_string(),
            action: if *severity == Severity::Block && rng.below(2) == 0 {
                Action::Blocked
            } else {
                Action::Delivered
            },
            findings: vec![Finding {
                rule: rule.clone(),
                category: *category,
                severity: *severity,
                start: 0,
                end: 2,
                matched: text.chars().take(2).collect(),
                message: "基准测试".into(),
                suggestions: vec!["请稍等".into()],
                fix: None,
                bytes: 0..0,
            }],
            context: Vec::new(),
        });
        // Every finding stands for ~30 checked messages and one reply in three.
        batch.push(StoreEvent::Checked {
            at_ms,
            agent: agent.clone(),
        });
        if i % 3 == 0 {
            batch.push(StoreEvent::Reply {
                at_ms,
                agent,
                wait_ms: 2_000 + rng.below(90_000),
            });
        }
        if batch.len() >= 5_000 {
            b.write(&batch).expect("write");
            batch.clear();
        }
    }
    b.write(&batch).expect("write");
    // Messages checked: ~30 per finding, spread over the agents and hours.
    let mut counts = Vec::new();
    for h in 0..(30 * 24) {
        for a in 0..60 {
            for _ in 0..(rows * 30 / (30 * 24 * 60)).min(50) {
                counts.push(StoreEvent::Checked {
                    at_ms: start + h * 3_600_000,
                    agent: format!("agent-{a:02}"),
                });
            }
        }
        if counts.len() > 20_000 {
            b.write(&counts).expect("write");
            counts.clear();
        }
    }
    b.write(&counts).expect("write");
    // Reviews on 5 % of the findings.
    for id in (1..=rows as i64).step_by(20) {
        let verdict = if id % 3 == 0 {
            "false_positive"
        } else {
            "confirmed"
        };
        b.review(id, verdict, None, END_MS).expect("review");
    }
    eprintln!(
        "built a store of {rows} findings in {:.1} s at {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
}

fn main() {
    let rows: u64 = std::env::var("LIYU_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/liyu-bench-store");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("findings-{rows}.db"));
    let url = format!("sqlite:{}", path.display());
    let have = store::open(&url)
        .ok()
        .and_then(|mut b| {
            b.findings(&Filter {
                limit: Some(1),
                ..Filter::default()
            })
            .ok()
        })
        .and_then(|p| p.items.first().map(|f| f.id as u64));
    if have != Some(rows) {
        build(&path, rows);
    }
    let mut b = store::open(&url).unwrap();
    let week = Some(END_MS - 7 * DAY_MS);
    let later_page = b
        .findings(&Filter {
            agent: Some("agent-07".into()),
            limit: Some(50),
            ..Filter::default()
        })
        .unwrap()
        .next_cursor;

    let queries: Vec<(&str, Filter)> = vec![
        ("newest-page", Filter::default()),
        (
            "by-agent",
            Filter {
                agent: Some("agent-07".into()),
                ..Filter::default()
            },
        ),
        (
            "by-agent-page-2",
            Filter {
                agent: Some("agent-07".into()),
                cursor: later_page,
                ..Filter::default()
            },
        ),
        (
            "by-category-last-week",
            Filter {
                category: Some("deflection".into()),
                since: week,
                ..Filter::default()
            },
        ),
        (
            "by-rule",
            Filter {
                rule: Some("impatience.cant-you-see-im-busy".into()),
                ..Filter::default()
            },
        ),
        (
            "false-positives",
            Filter {
                reviewed: Some("false_positive".into()),
                ..Filter::default()
            },
        ),
        (
            "text-search-last-day",
            Filter {
                q: Some("下班".into()),
                since: Some(END_MS - DAY_MS),
                ..Filter::default()
            },
        ),
    ];
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    let mut g = c.benchmark_group(format!("findings-{rows}"));
    for (name, filter) in &queries {
        g.bench_function(*name, |bench| {
            bench.iter(|| b.findings(black_box(filter)).unwrap().items.len())
        });
    }
    g.finish();
    let mut g = c.benchmark_group(format!("stats-{rows}-last-week"));
    for group in [
        Group::Agent,
        Group::Rule,
        Group::Category,
        Group::Hour,
        Group::Day,
    ] {
        g.bench_function(format!("{group:?}").to_lowercase(), |bench| {
            bench.iter(|| b.stats(black_box(group), week, None).unwrap().len())
        });
    }
    g.finish();
    c.final_summary();

    // One table of medians for the README.
    println!("\nmedian of 15 runs, {rows} findings on SQLite (target < 50 ms):");
    let median = |f: &mut dyn FnMut()| {
        let mut t: Vec<f64> = (0..15)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[7]
    };
    for (name, filter) in &queries {
        let ms = median(&mut || {
            black_box(b.findings(filter).unwrap());
        });
        println!("  GET /v1/findings {name:<24} {ms:>8.2} ms");
    }
    for group in [
        Group::Agent,
        Group::Rule,
        Group::Category,
        Group::Hour,
        Group::Day,
    ] {
        let ms = median(&mut || {
            black_box(b.stats(group, week, None).unwrap());
        });
        println!(
            "  GET /v1/stats group={:<18} {ms:>8.2} ms",
            format!("{group:?}").to_lowercase()
        );
    }
}
