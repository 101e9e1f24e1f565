//! The findings store against real databases: every test runs twice, on a fresh SQLite file in a
//! temporary directory (`store::sqlite::…`) and on a fresh schema of the PostgreSQL server named by
//! `LIYU_TEST_POSTGRES` (`store::pg::…`; tests/run.sh starts one and sets it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use liyu::proxy::Action;
use liyu::store::{
    self, Backend, ContextMessage, Filter, Group, StatRow, StoreError, StoreEvent, StoredFinding,
};
use liyu::{Category, Finding, Severity};

// --- Fresh stores -----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty store; removed (the directory, or the schema) when dropped.
struct Fresh {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Schema { base: String, schema: String },
}

impl Drop for Fresh {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { base, schema } => {
                if let Ok(mut client) = ::postgres::Client::connect(base, ::postgres::NoTls) {
                    let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
                }
            }
        }
    }
}

impl Fresh {
    fn new(kind: Kind) -> Fresh {
        static N: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("liyu-store-{unique}"));
                std::fs::create_dir_all(&dir).unwrap();
                Fresh {
                    url: format!("sqlite:{}", dir.join("findings.db").display()),
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Kind::Postgres => {
                let base = std::env::var("LIYU_TEST_POSTGRES").unwrap_or_default();
                assert!(
                    !base.is_empty(),
                    "LIYU_TEST_POSTGRES is not set: the PostgreSQL store tests need a server. Run \
                     tests/run.sh (it starts a throwaway one and sets the variable), or set it to \
                     a URL such as postgres://liyu@127.0.0.1:55432/liyu_test"
                );
                let schema = format!("liyu_test_{unique}");
                let mut client = ::postgres::Client::connect(&base, ::postgres::NoTls)
                    .unwrap_or_else(|e| panic!("cannot connect to LIYU_TEST_POSTGRES={base}: {e}"));
                client
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                Fresh {
                    url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    cleanup: Cleanup::Schema { base, schema },
                }
            }
        }
    }

    fn open(&self) -> Box<dyn Backend> {
        store::open(&self.url).unwrap_or_else(|e| panic!("cannot open {}: {e}", self.url))
    }

    /// Runs statements directly, not through liyu.
    fn raw(&self, sql: &str) {
        match &self.cleanup {
            Cleanup::Dir(_) => {
                let path = self.url.strip_prefix("sqlite:").unwrap();
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Cleanup::Schema { .. } => {
                let mut client = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
                client.batch_execute(sql).unwrap();
            }
        }
    }

    /// Rows of the migrations table (read directly, not through liyu).
    fn migrations(&self) -> i64 {
        const SQL: &str = "SELECT COUNT(*) FROM liyu_migrations";
        match &self.cleanup {
            Cleanup::Dir(_) => {
                let path = self.url.strip_prefix("sqlite:").unwrap();
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(SQL, [], |r| r.get(0)).unwrap()
            }
            Cleanup::Schema { .. } => {
                let mut client = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
                client.query_one(SQL, &[]).unwrap().get(0)
            }
        }
    }
}

/// Every test below, once per backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Kind::Sqlite)
            })*
        }
        mod pg {
            $(#[test]
            fn $name() {
                super::$name(super::Kind::Postgres)
            })*
        }
    };
}

both!(
    a_finding_reads_back_with_every_field_and_its_context,
    every_filter_alone_and_combined,
    pages_follow_the_cursor,
    rare_rows_are_found_past_the_newest_twenty_thousand,
    reviews_are_recorded_and_filterable,
    stats_for_every_group,
    stats_over_a_range_count_overlapping_hours,
    injection_strings_match_nothing_and_harm_nothing,
    reopening_keeps_data_and_migrations_run_once,
    concurrent_opens_migrate_once,
    a_refused_event_is_dropped_and_the_rest_written,
);

// --- Builders ---------------------------------------------------------------------------------------

fn finding(
    rule: &str,
    category: Category,
    severity: Severity,
    start: usize,
    end: usize,
) -> Finding {
    Finding {
        rule: rule.to_owned(),
        category,
        severity,
        start,
        end,
        matched: format!("m{start}"),
        message: format!("{rule}: 服务忌语"),
        suggestions: vec!["请稍等".to_owned(), format!("\"quoted\" {rule}")],
        fix: (start % 2 == 1).then(|| "您好".to_owned()),
        bytes: 0..0,
    }
}

struct Msg<'a> {
    at_ms: u64,
    agent: Option<&'a str>,
    conversation: Option<&'a str>,
    text: &'a str,
    action: Action,
    findings: Vec<Finding>,
}

impl Msg<'_> {
    fn event(self) -> StoreEvent {
        StoreEvent::Findings {
            at_ms: self.at_ms,
            conversation: self.conversation.map(str::to_owned),
            agent: self.agent.map(str::to_owned),
            message_id: Some(format!("msg-{}", self.at_ms)),
            text: self.text.to_owned(),
            action: self.action,
            findings: self.findings,
            context: vec![ContextMessage {
                at_ms: self.at_ms.saturating_sub(1000),
                role: "customer".to_owned(),
                text: "你好".to_owned(),
            }],
        }
    }
}

fn one(at_ms: u64, agent: Option<&str>, rule: &str, category: Category) -> StoreEvent {
    Msg {
        at_ms,
        agent,
        conversation: Some("conv"),
        text: "下班了,明天再来",
        action: Action::Delivered,
        findings: vec![finding(rule, category, Severity::Warn, 0, 3)],
    }
    .event()
}

fn checked(at_ms: u64, agent: &str) -> StoreEvent {
    StoreEvent::Checked {
        at_ms,
        agent: agent.to_owned(),
    }
}

fn reply(at_ms: u64, agent: &str, wait_ms: u64) -> StoreEvent {
    StoreEvent::Reply {
        at_ms,
        agent: agent.to_owned(),
        wait_ms,
    }
}

/// Every stored finding, newest first.
fn all(b: &mut dyn Backend) -> Vec<StoredFinding> {
    let page = b
        .findings(&Filter {
            limit: Some(500),
            ..Filter::default()
        })
        .unwrap();
    assert!(page.next_cursor.is_none(), "more than 500 rows");
    page.items
}

fn ids(rows: &[StoredFinding]) -> Vec<i64> {
    rows.iter().map(|f| f.id).collect()
}

const MINUTE: u64 = 60_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 86_400_000;
/// A UTC midnight.
const D: u64 = 19_700 * DAY;

// --- Tests ------------------------------------------------------------------------------------------

fn a_finding_reads_back_with_every_field_and_its_context(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    let text = "请稍等,Ünïcode 😀 下班了,明天再来 'quote' \"double\" \\ %_";
    let context = vec![
        ContextMessage {
            at_ms: D + 1,
            role: "customer".to_owned(),
            text: "我的手机号是 138****0000".to_owned(),
        },
        ContextMessage {
            at_ms: D + 2,
            role: "agent".to_owned(),
            text: "请稍等".to_owned(),
        },
    ];
    let f1 = Finding {
        rule: "impatience.off-duty".to_owned(),
        category: Category::Impatience,
        severity: Severity::Block,
        start: 20,
        end: 23,
        matched: "下班了".to_owned(),
        message: "不得以下班为由推脱".to_owned(),
        suggestions: vec![
            "请您稍等,我马上为您办理".to_owned(),
            "\"引号\" \\ ' ".to_owned(),
        ],
        fix: Some("请稍等".to_owned()),
        bytes: 0..0,
    };
    let f2 = Finding {
        rule: "privacy.phone".to_owned(),
        category: Category::Privacy,
        severity: Severity::Info,
        start: 0,
        end: 3,
        matched: "请稍等".to_owned(),
        message: "m".to_owned(),
        suggestions: vec![],
        fix: None,
        bytes: 0..0,
    };
    b.write(&[
        StoreEvent::Findings {
            at_ms: D + 3,
            conversation: Some("conv-1".to_owned()),
            agent: Some("agent-7".to_owned()),
            message_id: Some("m-42".to_owned()),
            text: text.to_owned(),
            action: Action::Blocked,
            findings: vec![f1.clone(), f2.clone()],
            context: context.clone(),
        },
        StoreEvent::Findings {
            at_ms: D + 4,
            conversation: None,
            agent: None,
            message_id: None,
            text: "x".to_owned(),
            action: Action::Recorded,
            findings: vec![finding(
                "slow_reply",
                Category::SlowReply,
                Severity::Warn,
                0,
                0,
            )],
            context: vec![],
        },
        // An event without findings writes no row.
        Msg {
            at_ms: D + 5,
            agent: Some("agent-7"),
            conversation: None,
            text: "好的",
            action: Action::Delivered,
            findings: vec![],
        }
        .event(),
    ])
    .unwrap();

    let rows = all(b.as_mut());
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0].id > rows[1].id && rows[1].id > rows[2].id,
        "newest first: {rows:?}"
    );
    let expected = |f: &Finding, id: i64, context: Vec<ContextMessage>| StoredFinding {
        id,
        at_ms: D + 3,
        conversation: Some("conv-1".to_owned()),
        agent: Some("agent-7".to_owned()),
        message_id: Some("m-42".to_owned()),
        action: "blocked".to_owned(),
        rule: f.rule.clone(),
        category: f.category.as_str().to_owned(),
        severity: f.severity.as_str().to_owned(),
        start: f.start,
        end: f.end,
        matched: f.matched.clone(),
        text: text.to_owned(),
        message: f.message.clone(),
        suggestions: f.suggestions.clone(),
        fix: f.fix.clone(),
        verdict: None,
        note: None,
        reviewed_at_ms: None,
        context,
    };
    // Pages leave the context out; one finding has it.
    assert_eq!(rows[2], expected(&f1, rows[2].id, vec![]));
    assert_eq!(rows[1], expected(&f2, rows[1].id, vec![]));
    assert_eq!(
        b.finding(rows[2].id).unwrap(),
        expected(&f1, rows[2].id, context.clone())
    );
    assert_eq!(
        b.finding(rows[1].id).unwrap(),
        expected(&f2, rows[1].id, context)
    );

    let bare = b.finding(rows[0].id).unwrap();
    assert_eq!(bare.action, "recorded");
    assert_eq!(bare.category, "slow_reply");
    assert_eq!(
        (bare.conversation, bare.agent, bare.message_id),
        (None, None, None)
    );
    assert_eq!(bare.fix, None);
    assert!(bare.context.is_empty());

    assert!(
        matches!(b.finding(rows[0].id + 100), Err(StoreError::NotFound(id)) if id == rows[0].id + 100)
    );
    // An empty batch is fine.
    b.write(&[]).unwrap();
}

/// The filter data set: 72 findings over 60 messages, attributes cycling at different periods, at_ms
/// not in id order.
fn seed_filters(b: &mut dyn Backend) -> Vec<StoredFinding> {
    const TEXTS: [&str; 8] = [
        "Hello World 100%_done",
        "hello WORLD",
        "100 percent",
        "a_b c",
        "下班了,明天再来",
        "有牌子,自己看",
        "back\\slash",
        "请稍等",
    ];
    const RULES: [(&str, Category); 5] = [
        ("impatience.off-duty", Category::Impatience),
        ("deflection.ask-others", Category::Deflection),
        ("profanity.1", Category::Profanity),
        ("impatience.hurry", Category::Impatience),
        ("condescension.sign", Category::Condescension),
    ];
    let agents = [Some("ann"), Some("bob"), Some("cy"), None];
    let actions = [
        Action::Delivered,
        Action::Blocked,
        Action::Overridden,
        Action::Recorded,
    ];
    let severities = [Severity::Warn, Severity::Block, Severity::Info];
    let events: Vec<StoreEvent> = (0..60usize)
        .map(|i| {
            let (rule, category) = RULES[i % 5];
            let mut findings = vec![finding(rule, category, severities[i % 7 % 3], i, i + 2)];
            if i % 5 == 0 {
                let (rule, category) = RULES[(i / 5) % 5];
                findings.push(finding(rule, category, severities[i % 3], i + 1, i + 3));
            }
            Msg {
                at_ms: D + ((i * 37) % 60) as u64 * MINUTE,
                agent: agents[i % 4],
                conversation: Some(["c0", "c1", "c2"][i % 3]),
                text: TEXTS[i % 8],
                action: actions[i % 6 % 4],
                findings,
            }
            .event()
        })
        .collect();
    // Two batches.
    b.write(&events[..25]).unwrap();
    b.write(&events[25..]).unwrap();
    let rows = all(b);
    assert_eq!(rows.len(), 72);
    rows
}

/// The page for `filter` (limit 500) is exactly the rows matching `pred`, newest first.
fn check(
    b: &mut dyn Backend,
    rows: &[StoredFinding],
    filter: Filter,
    pred: impl Fn(&StoredFinding) -> bool,
) {
    let page = b
        .findings(&Filter {
            limit: Some(500),
            ..filter.clone()
        })
        .unwrap_or_else(|e| panic!("{filter:?}: {e}"));
    let expected: Vec<&StoredFinding> = rows.iter().filter(|f| pred(f)).collect();
    // The data set is made so that every filter below matches something, except on purpose.
    let on_purpose = filter.q.is_some() || filter.agent.as_deref() == Some("nobody");
    assert!(
        !expected.is_empty() || on_purpose,
        "a filter that matches nothing: {filter:?}"
    );
    assert_eq!(
        page.items.iter().collect::<Vec<_>>(),
        expected,
        "filter {filter:?}"
    );
    assert_eq!(page.next_cursor, None);
}

fn every_filter_alone_and_combined(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    let b = b.as_mut();
    let rows = seed_filters(b);
    // Some reviews, to filter on.
    for (n, f) in rows.iter().enumerate() {
        if n % 4 == 1 {
            let verdict = if n % 8 == 1 {
                "confirmed"
            } else {
                "false_positive"
            };
            b.review(f.id, verdict, None, D + DAY).unwrap();
        }
    }
    let rows = all(b);
    let s = |v: &str| Some(v.to_owned());

    check(b, &rows, Filter::default(), |_| true);
    check(
        b,
        &rows,
        Filter {
            agent: s("ann"),
            ..Filter::default()
        },
        |f| f.agent.as_deref() == Some("ann"),
    );
    check(
        b,
        &rows,
        Filter {
            agent: s("nobody"),
            ..Filter::default()
        },
        |_| false,
    );
    check(
        b,
        &rows,
        Filter {
            category: s("impatience"),
            ..Filter::default()
        },
        |f| f.category == "impatience",
    );
    check(
        b,
        &rows,
        Filter {
            rule: s("profanity.1"),
            ..Filter::default()
        },
        |f| f.rule == "profanity.1",
    );
    check(
        b,
        &rows,
        Filter {
            severity: s("block"),
            ..Filter::default()
        },
        |f| f.severity == "block",
    );
    check(
        b,
        &rows,
        Filter {
            action: s("overridden"),
            ..Filter::default()
        },
        |f| f.action == "overridden",
    );
    check(
        b,
        &rows,
        Filter {
            conversation: s("c1"),
            ..Filter::default()
        },
        |f| f.conversation.as_deref() == Some("c1"),
    );
    check(
        b,
        &rows,
        Filter {
            since: Some(D + 20 * MINUTE),
            ..Filter::default()
        },
        |f| f.at_ms >= D + 20 * MINUTE,
    );
    check(
        b,
        &rows,
        Filter {
            until: Some(D + 20 * MINUTE),
            ..Filter::default()
        },
        |f| f.at_ms < D + 20 * MINUTE,
    );
    check(
        b,
        &rows,
        Filter {
            reviewed: s("true"),
            ..Filter::default()
        },
        |f| f.verdict.is_some(),
    );
    check(
        b,
        &rows,
        Filter {
            reviewed: s("false"),
            ..Filter::default()
        },
        |f| f.verdict.is_none(),
    );
    check(
        b,
        &rows,
        Filter {
            reviewed: s("confirmed"),
            ..Filter::default()
        },
        |f| f.verdict.as_deref() == Some("confirmed"),
    );
    check(
        b,
        &rows,
        Filter {
            reviewed: s("false_positive"),
            ..Filter::default()
        },
        |f| f.verdict.as_deref() == Some("false_positive"),
    );
    // Text search: case-insensitive, LIKE's wildcards and the escape character taken literally.
    for (q, pred) in [
        (
            "world",
            (|t: &str| t.to_lowercase().contains("world")) as fn(&str) -> bool,
        ),
        ("WoRlD", |t| t.to_lowercase().contains("world")),
        ("%", |t| t.contains('%')),
        ("_", |t| t.contains('_')),
        ("0%_d", |t| t.contains("0%_d")),
        ("\\", |t| t.contains('\\')),
        ("明天", |t| t.contains("明天")),
        ("no such text", |_| false),
    ] {
        check(
            b,
            &rows,
            Filter {
                q: s(q),
                ..Filter::default()
            },
            |f| pred(&f.text),
        );
    }
    let cursor = rows[10].id;
    check(
        b,
        &rows,
        Filter {
            cursor: Some(cursor),
            ..Filter::default()
        },
        |f| f.id < cursor,
    );

    // Combined.
    check(
        b,
        &rows,
        Filter {
            agent: s("bob"),
            category: s("impatience"),
            since: Some(D + 10 * MINUTE),
            until: Some(D + 50 * MINUTE),
            ..Filter::default()
        },
        |f| {
            f.agent.as_deref() == Some("bob")
                && f.category == "impatience"
                && (D + 10 * MINUTE..D + 50 * MINUTE).contains(&f.at_ms)
        },
    );
    check(
        b,
        &rows,
        Filter {
            rule: s("impatience.off-duty"),
            severity: s("warn"),
            reviewed: s("false"),
            ..Filter::default()
        },
        |f| f.rule == "impatience.off-duty" && f.severity == "warn" && f.verdict.is_none(),
    );
    check(
        b,
        &rows,
        Filter {
            conversation: s("c0"),
            action: s("delivered"),
            q: s("HELLO"),
            ..Filter::default()
        },
        |f| {
            f.conversation.as_deref() == Some("c0")
                && f.action == "delivered"
                && f.text.to_lowercase().contains("hello")
        },
    );
    check(
        b,
        &rows,
        Filter {
            agent: s("cy"),
            reviewed: s("true"),
            cursor: Some(rows[5].id),
            ..Filter::default()
        },
        |f| f.agent.as_deref() == Some("cy") && f.verdict.is_some() && f.id < rows[5].id,
    );

    let bad = b.findings(&Filter {
        reviewed: s("maybe"),
        ..Filter::default()
    });
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
}

fn pages_follow_the_cursor(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    let events: Vec<StoreEvent> = (0..120u64)
        .map(|i| {
            let agent = if i % 3 == 0 { "ann" } else { "bob" };
            one(
                D + i * MINUTE,
                Some(agent),
                "impatience.off-duty",
                Category::Impatience,
            )
        })
        .collect();
    b.write(&events).unwrap();
    let everything = ids(&all(b.as_mut()));
    assert_eq!(everything.len(), 120);

    // Walks all pages of `filter`; the page sizes and the ids, in order.
    let mut walk = |filter: Filter| {
        let mut sizes = Vec::new();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = b
                .findings(&Filter {
                    cursor,
                    ..filter.clone()
                })
                .unwrap();
            sizes.push(page.items.len());
            seen.extend(ids(&page.items));
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(Some(c), page.items.last().map(|f| f.id));
                    cursor = Some(c);
                }
                None => break,
            }
            assert!(sizes.len() < 200, "the cursor does not advance");
        }
        (sizes, seen)
    };

    // The default page size is 50.
    let (sizes, seen) = walk(Filter::default());
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(seen, everything);

    let (sizes, seen) = walk(Filter {
        limit: Some(40),
        ..Filter::default()
    });
    // 120 = 3 full pages: the third has a cursor, the fourth is empty.
    assert_eq!(sizes, [40, 40, 40, 0]);
    assert_eq!(seen, everything);

    let (sizes, seen) = walk(Filter {
        agent: Some("ann".to_owned()),
        limit: Some(15),
        ..Filter::default()
    });
    assert_eq!(sizes, [15, 15, 10]);
    let anns: Vec<i64> = all(b.as_mut())
        .into_iter()
        .filter(|f| f.agent.as_deref() == Some("ann"))
        .map(|f| f.id)
        .collect();
    assert_eq!(seen, anns);

    // Limits are clamped to 1..=500.
    let page = b
        .findings(&Filter {
            limit: Some(10_000),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (120, None));
    let page = b
        .findings(&Filter {
            limit: Some(0),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(ids(&page.items), &everything[..1]);
    assert_eq!(page.next_cursor, Some(everything[0]));
}

/// A page first looks among the newest 20,000 rows below the cursor, then past them: rows that
/// match only further back are found, in order, on both sides of that seam.
fn rare_rows_are_found_past_the_newest_twenty_thousand(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    // 120 old rows of agent "old" (at_ms 0..120 min), then 20,100 of "new".
    let events: Vec<StoreEvent> = (0..20_220u64)
        .map(|i| {
            let agent = if i < 120 { "old" } else { "new" };
            one(D + i * MINUTE, Some(agent), "r1", Category::Impatience)
        })
        .collect();
    b.write(&events).unwrap();
    let newest = b.findings(&Filter::default()).unwrap().items[0].id;
    // Ids are given in order: the i-th event's row is `newest - 20_219 + i`.
    let id = |i: i64| newest - 20_219 + i;
    let walk = |b: &mut Box<dyn Backend>, filter: Filter| {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = b
                .findings(&Filter {
                    cursor,
                    ..filter.clone()
                })
                .unwrap();
            seen.extend(ids(&page.items));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return seen,
            }
        }
    };
    let old: Vec<i64> = (0..120).rev().map(id).collect();
    let by_agent = Filter {
        agent: Some("old".to_owned()),
        limit: Some(50),
        ..Filter::default()
    };
    assert_eq!(walk(&mut b, by_agent.clone()), old);
    let by_time = Filter {
        until: Some(D + 120 * MINUTE),
        limit: Some(50),
        ..Filter::default()
    };
    assert_eq!(walk(&mut b, by_time), old);
    // A page that starts inside the window (the 20,000 rows below the cursor: events 110..20_110)
    // and ends past it.
    let page = b
        .findings(&Filter {
            since: Some(D + 80 * MINUTE),
            until: Some(D + 130 * MINUTE),
            cursor: Some(id(20_110)),
            limit: Some(50),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        ids(&page.items),
        (80..130).rev().map(id).collect::<Vec<_>>()
    );
    assert_eq!(page.next_cursor, Some(id(80)));
    // From a cursor deep in the table.
    let page = b
        .findings(&Filter {
            cursor: Some(id(60)),
            ..by_agent
        })
        .unwrap();
    assert_eq!(ids(&page.items), (10..60).rev().map(id).collect::<Vec<_>>());
}

fn reviews_are_recorded_and_filterable(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    b.write(&[
        one(D, Some("ann"), "r1", Category::Impatience),
        one(D + 1, Some("ann"), "r1", Category::Impatience),
        one(D + 2, Some("bob"), "r2", Category::Deflection),
    ])
    .unwrap();
    let rows = all(b.as_mut());
    let (a, c) = (rows[2].id, rows[0].id);

    let reviewed = b.review(a, "confirmed", Some("说了两次"), D + DAY).unwrap();
    assert_eq!(reviewed.verdict.as_deref(), Some("confirmed"));
    assert_eq!(reviewed.note.as_deref(), Some("说了两次"));
    assert_eq!(reviewed.reviewed_at_ms, Some(D + DAY));
    assert_eq!(
        reviewed.context.len(),
        1,
        "the returned row has its context"
    );
    assert_eq!(
        StoredFinding {
            verdict: None,
            note: None,
            reviewed_at_ms: None,
            context: vec![],
            ..reviewed.clone()
        },
        rows[2]
    );
    assert_eq!(b.finding(a).unwrap(), reviewed);

    // A second review replaces the first, note included.
    let again = b.review(a, "false_positive", None, D + DAY + 1).unwrap();
    assert_eq!(
        (
            again.verdict.as_deref(),
            again.note.as_deref(),
            again.reviewed_at_ms
        ),
        (Some("false_positive"), None, Some(D + DAY + 1))
    );
    b.review(c, "confirmed", Some("x"), D + DAY + 2).unwrap();

    let page = |b: &mut Box<dyn Backend>, reviewed: &str| {
        ids(&b
            .findings(&Filter {
                reviewed: Some(reviewed.to_owned()),
                ..Filter::default()
            })
            .unwrap()
            .items)
    };
    assert_eq!(page(&mut b, "true"), [c, a]);
    assert_eq!(page(&mut b, "false"), [rows[1].id]);
    assert_eq!(page(&mut b, "confirmed"), [c]);
    assert_eq!(page(&mut b, "false_positive"), [a]);

    for verdict in ["", "true", "Confirmed", "false positive", "' OR 1=1 --"] {
        let r = b.review(a, verdict, None, 0);
        assert!(
            matches!(r, Err(StoreError::Invalid(_))),
            "{verdict:?}: {r:?}"
        );
    }
    assert!(matches!(
        b.review(c + 1000, "confirmed", None, 0),
        Err(StoreError::NotFound(_))
    ));
    // The failed reviews changed nothing.
    assert_eq!(b.finding(a).unwrap(), again);
    // Statistics count each finding's last verdict once.
    let counts = |rows: Vec<StatRow>| {
        rows.into_iter()
            .map(|r| (r.key, r.findings, r.reviews, r.false_positives))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(b.stats(Group::Agent, None, None).unwrap()),
        [("ann".to_owned(), 2, 1, 1), ("bob".to_owned(), 1, 1, 0)]
    );
    assert_eq!(
        counts(b.stats(Group::Day, Some(D), Some(D + 1)).unwrap()),
        [(D.to_string(), 1, 1, 1)]
    );
}

/// The stats data set (see `stats_for_every_group` for the numbers).
fn seed_stats(b: &mut dyn Backend) -> [i64; 5] {
    let (h9, h10, e) = (D + 9 * HOUR, D + 10 * HOUR, D + DAY + 9 * HOUR);
    let mut messages = Vec::new();
    for i in 0..10 {
        messages.push(checked(h9 + i * MINUTE, "ann"));
        messages.push(checked(h10 + i * MINUTE, "ann"));
    }
    for i in 0..20 {
        messages.push(checked(h9 + 30 * MINUTE + i, "bob"));
    }
    for i in 0..5 {
        messages.push(checked(e + i, "cy"));
    }
    messages.push(checked(e + 59 * MINUTE, "dee"));
    // Counts are upserted across batches as well as summed within one.
    let (first, second) = messages.split_at(17);
    b.write(first).unwrap();
    b.write(second).unwrap();
    b.write(&[
        one(
            h9 + 5 * MINUTE,
            Some("ann"),
            "impatience.off-duty",
            Category::Impatience,
        ),
        one(
            h9 + 10 * MINUTE,
            Some("ann"),
            "deflection.ask-others",
            Category::Deflection,
        ),
        one(
            h10 + 5 * MINUTE,
            Some("ann"),
            "impatience.off-duty",
            Category::Impatience,
        ),
        one(
            h9 + 20 * MINUTE,
            Some("bob"),
            "impatience.off-duty",
            Category::Impatience,
        ),
        one(
            e + MINUTE,
            None,
            "deflection.ask-others",
            Category::Deflection,
        ),
        reply(h9 + MINUTE, "ann", 1000),
        reply(h9 + 2 * MINUTE, "ann", 3000),
        reply(h10 + MINUTE, "ann", 2000),
        reply(h10 + 2 * MINUTE, "ann", 8000),
        reply(h9 + 3 * MINUTE, "bob", 500),
        reply(e + 2 * MINUTE, "cy", 700),
        reply(e + 3 * MINUTE, "cy", 100),
        reply(e + 4 * MINUTE, "cy", 400),
        reply(e + 5 * MINUTE, "dee", 3),
        reply(e + 6 * MINUTE, "dee", 4),
    ])
    .unwrap();
    let mut rows = ids(&all(b));
    rows.reverse();
    let f: [i64; 5] = rows.try_into().unwrap();
    b.review(f[0], "confirmed", None, e).unwrap();
    b.review(f[1], "false_positive", None, e).unwrap();
    b.review(f[3], "false_positive", Some("quoting"), e)
        .unwrap();
    f
}

fn row(
    key: &str,
    findings: u64,
    messages: u64,
    median: Option<u64>,
    reviews: u64,
    false_positives: u64,
) -> StatRow {
    StatRow {
        key: key.to_owned(),
        findings,
        messages,
        rate_per_100: if messages == 0 {
            0.0
        } else {
            findings as f64 * 100.0 / messages as f64
        },
        median_reply_ms: median,
        reviews,
        false_positives,
        false_positive_share: (reviews > 0).then(|| false_positives as f64 / reviews as f64),
    }
}

fn stats_for_every_group(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    seed_stats(b.as_mut());
    let (h9, h10, e) = (D + 9 * HOUR, D + 10 * HOUR, D + DAY + 9 * HOUR);

    let agents = b.stats(Group::Agent, None, None).unwrap();
    assert_eq!(
        agents,
        [
            // 3 findings in 20 messages; median of 1000, 2000, 3000, 8000.
            row("ann", 3, 20, Some(2500), 2, 1),
            // Findings without an agent; ties are ordered by key.
            row("", 1, 0, None, 0, 0),
            row("bob", 1, 20, Some(500), 1, 1),
            // Agents with messages but no findings are listed too.
            row("cy", 0, 5, Some(400), 0, 0),
            // An even count's median is the mean of the middle two, rounded down.
            row("dee", 0, 1, Some(3), 0, 0),
        ]
    );
    assert_eq!(agents[0].rate_per_100, 15.0);
    assert_eq!(agents[0].false_positive_share, Some(0.5));

    // Rules and categories: the rate is over every message checked (46).
    let rules = b.stats(Group::Rule, None, None).unwrap();
    assert_eq!(
        rules,
        [
            row("impatience.off-duty", 3, 46, None, 2, 1),
            row("deflection.ask-others", 2, 46, None, 1, 1),
        ]
    );
    let categories = b.stats(Group::Category, None, None).unwrap();
    assert_eq!(
        categories,
        [
            row("impatience", 3, 46, None, 2, 1),
            row("deflection", 2, 46, None, 1, 1),
        ]
    );

    let hours = b.stats(Group::Hour, None, None).unwrap();
    assert_eq!(
        hours,
        [
            row(&h9.to_string(), 3, 30, Some(1000), 3, 2),
            row(&h10.to_string(), 1, 10, Some(5000), 0, 0),
            row(&e.to_string(), 1, 6, Some(100), 0, 0),
        ]
    );
    assert_eq!(hours[0].rate_per_100, 10.0);
    let days = b.stats(Group::Day, None, None).unwrap();
    assert_eq!(
        days,
        [
            row(&D.to_string(), 4, 40, Some(2000), 3, 2),
            row(&(D + DAY).to_string(), 1, 6, Some(100), 0, 0),
        ]
    );

    // An empty range, and an empty store.
    for group in [
        Group::Agent,
        Group::Rule,
        Group::Category,
        Group::Hour,
        Group::Day,
    ] {
        assert_eq!(b.stats(group, Some(D + 5 * DAY), None).unwrap(), []);
        assert_eq!(b.stats(group, Some(h10), Some(h10)).unwrap(), []);
        assert_eq!(
            Fresh::new(kind).open().stats(group, None, None).unwrap(),
            []
        );
    }
}

fn stats_over_a_range_count_overlapping_hours(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    seed_stats(b.as_mut());
    let (h9, h10, e) = (D + 9 * HOUR, D + 10 * HOUR, D + DAY + 9 * HOUR);

    // [h10, e): ann's h10 finding and messages; bob's hour and the next day are out.
    assert_eq!(
        b.stats(Group::Agent, Some(h10), Some(e)).unwrap(),
        [row("ann", 1, 10, Some(5000), 0, 0)]
    );
    assert_eq!(
        b.stats(Group::Hour, Some(h10), Some(e)).unwrap(),
        [row(&h10.to_string(), 1, 10, Some(5000), 0, 0)]
    );
    assert_eq!(
        b.stats(Group::Rule, Some(h10), Some(e)).unwrap(),
        [row("impatience.off-duty", 1, 10, None, 0, 0)]
    );

    // From the middle of h9: findings and replies from then on, messages of the whole hour h9 (the
    // hour buckets that overlap the range).
    let since = h9 + 15 * MINUTE;
    assert_eq!(
        b.stats(Group::Agent, Some(since), Some(e)).unwrap(),
        [
            row("ann", 1, 20, Some(5000), 0, 0),
            row("bob", 1, 20, None, 1, 1),
        ]
    );
    assert_eq!(
        b.stats(Group::Hour, Some(since), Some(e)).unwrap(),
        [
            row(&h9.to_string(), 1, 30, None, 1, 1),
            row(&h10.to_string(), 1, 10, Some(5000), 0, 0),
        ]
    );
    assert_eq!(
        b.stats(Group::Day, Some(since), None).unwrap(),
        [
            row(&D.to_string(), 2, 40, Some(5000), 1, 1),
            row(&(D + DAY).to_string(), 1, 6, Some(100), 0, 0),
        ]
    );
    assert_eq!(
        b.stats(Group::Category, Some(since), None).unwrap(),
        [
            row("impatience", 2, 46, None, 1, 1),
            row("deflection", 1, 46, None, 0, 0),
        ]
    );
}

const INJECTIONS: [&str; 5] = [
    "' OR 1=1 --",
    "\"; DROP TABLE findings; --",
    "x'); DROP TABLE findings; --",
    "$1",
    "%' OR '%'='",
];

fn injection_strings_match_nothing_and_harm_nothing(kind: Kind) {
    let fresh = Fresh::new(kind);
    let mut b = fresh.open();
    b.write(&[
        one(D, Some("ann"), "r1", Category::Impatience),
        one(D + 1, Some("bob"), "r2", Category::Deflection),
        checked(D, "ann"),
        reply(D, "ann", 10),
    ])
    .unwrap();
    let before = all(b.as_mut());
    let stats_before = b.stats(Group::Agent, None, None).unwrap();

    for s in INJECTIONS {
        let v = Some(s.to_owned());
        let filters = [
            Filter {
                agent: v.clone(),
                ..Filter::default()
            },
            Filter {
                category: v.clone(),
                ..Filter::default()
            },
            Filter {
                rule: v.clone(),
                ..Filter::default()
            },
            Filter {
                severity: v.clone(),
                ..Filter::default()
            },
            Filter {
                action: v.clone(),
                ..Filter::default()
            },
            Filter {
                conversation: v.clone(),
                ..Filter::default()
            },
            Filter {
                q: v.clone(),
                ..Filter::default()
            },
            Filter {
                agent: v.clone(),
                category: v.clone(),
                rule: v.clone(),
                severity: v.clone(),
                action: v.clone(),
                conversation: v.clone(),
                q: v.clone(),
                ..Filter::default()
            },
        ];
        for filter in filters {
            let page = b
                .findings(&filter)
                .unwrap_or_else(|e| panic!("{filter:?}: {e}"));
            assert!(page.items.is_empty(), "{filter:?} matched {:?}", page.items);
        }
        let r = b.findings(&Filter {
            reviewed: v.clone(),
            ..Filter::default()
        });
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
        // Stored as given, read back as given.
        let reviewed = b.review(before[0].id, "confirmed", Some(s), D).unwrap();
        assert_eq!(reviewed.note.as_deref(), Some(s));
    }
    // Text stored with the same strings reads back literally and is found literally.
    b.write(&[Msg {
        at_ms: D + 2,
        agent: Some(INJECTIONS[0]),
        conversation: Some(INJECTIONS[1]),
        text: INJECTIONS[4],
        action: Action::Delivered,
        findings: vec![finding(
            INJECTIONS[2],
            Category::Profanity,
            Severity::Warn,
            0,
            1,
        )],
    }
    .event()])
        .unwrap();
    let page = b
        .findings(&Filter {
            agent: Some(INJECTIONS[0].to_owned()),
            conversation: Some(INJECTIONS[1].to_owned()),
            rule: Some(INJECTIONS[2].to_owned()),
            q: Some(INJECTIONS[4].to_owned()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].text, INJECTIONS[4]);

    // A NUL character (PostgreSQL text cannot hold one) does not make the write fail: it is kept
    // (SQLite) or replaced (PostgreSQL) without moving the spans.
    b.write(&[Msg {
        at_ms: D + 3,
        agent: Some("nul\0agent"),
        conversation: None,
        text: "a\0b",
        action: Action::Delivered,
        findings: vec![finding("r\0", Category::Profanity, Severity::Warn, 2, 3)],
    }
    .event()])
        .unwrap();
    let nul = all(b.as_mut()).remove(0);
    assert!(
        ["a\0b", "a\u{FFFD}b"].contains(&nul.text.as_str()),
        "{:?}",
        nul.text
    );
    assert_eq!((nul.start, nul.end), (2, 3));

    // The tables are intact.
    let after = all(b.as_mut());
    let after = &after[1..];
    assert_eq!(after.len(), 3);
    assert_eq!(ids(&after[1..]), ids(&before));
    assert_eq!(after[1..][1], before[1]);
    let stats = b.stats(Group::Agent, None, None).unwrap();
    assert_eq!(stats.len(), 4);
    let ann = |rows: &[StatRow]| rows.iter().find(|r| r.key == "ann").cloned();
    assert_eq!(ann(&stats), ann(&stats_before));
    assert_eq!(
        ann(&stats).map(|r| (r.messages, r.median_reply_ms)),
        Some((1, Some(10)))
    );
}

/// The schema versions there are so far.
const VERSIONS: i64 = 2;

const GROUPS: [Group; 5] = [
    Group::Agent,
    Group::Rule,
    Group::Category,
    Group::Hour,
    Group::Day,
];

fn reopening_keeps_data_and_migrations_run_once(kind: Kind) {
    let fresh = Fresh::new(kind);
    let first = {
        let mut b = fresh.open();
        seed_stats(b.as_mut());
        all(b.as_mut())
    };
    let ranges = [
        (None, None),
        (Some(D + 9 * HOUR + 15 * MINUTE), None),
        (Some(D + 10 * HOUR), Some(D + DAY + 9 * HOUR + 30 * MINUTE)),
    ];
    let stats = |b: &mut Box<dyn Backend>| {
        let mut out = Vec::new();
        for group in GROUPS {
            for (since, until) in ranges {
                out.push(b.stats(group, since, until).unwrap());
            }
        }
        out
    };
    let expected = stats(&mut fresh.open());
    for _ in 0..3 {
        let mut b = fresh.open();
        assert_eq!(all(b.as_mut()), first);
        assert_eq!(stats(&mut b), expected);
    }
    // Each schema version recorded once, however often the store was opened.
    assert_eq!(fresh.migrations(), VERSIONS);

    // A store of version 1 (before the hourly counts) is brought up to date: the counts are made
    // from the findings, reviews included.
    fresh.raw("DROP TABLE finding_counts; DELETE FROM liyu_migrations WHERE version = 2");
    assert_eq!(fresh.migrations(), 1);
    let mut b = fresh.open();
    assert_eq!(fresh.migrations(), VERSIONS);
    assert_eq!(all(b.as_mut()), first);
    assert_eq!(stats(&mut b), expected);

    if let Kind::Sqlite = kind {
        let path = fresh.url.strip_prefix("sqlite:").unwrap();
        let conn = rusqlite::Connection::open(path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // A plain path works as a URL too.
        let mut b = store::open(path).unwrap();
        assert_eq!(all(b.as_mut()), first);
    }
}

fn concurrent_opens_migrate_once(kind: Kind) {
    let fresh = Fresh::new(kind);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let fresh = &fresh;
                s.spawn(move || {
                    let mut b = fresh.open();
                    b.write(&[
                        one(D + i, Some("ann"), "r1", Category::Impatience),
                        checked(D, "ann"),
                    ])
                    .unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(fresh.migrations(), VERSIONS);
    let mut b = fresh.open();
    assert_eq!(all(b.as_mut()).len(), 6);
    assert_eq!(b.stats(Group::Agent, None, None).unwrap()[0].messages, 6);
}

#[test]
fn an_unreachable_postgres_is_an_error() {
    // Port 1 refuses at once.
    match store::open("postgres://liyu@127.0.0.1:1/nothing?connect_timeout=2") {
        Err(StoreError::Db(_)) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected to port 1"),
    }
}

// --- The writer and data the database refuses ---------------------------------------------------------

/// An event the database refuses for what it holds (here a trigger, as a site's own constraint or
/// audit rule would) is dropped, counted and logged; the events queued with it in the same batch are
/// written, and the writer goes on with later ones instead of retrying that batch forever.
fn a_refused_event_is_dropped_and_the_rest_written(kind: Kind) {
    let fresh = Fresh::new(kind);
    drop(fresh.open()); // creates the tables
    fresh.raw(match kind {
        Kind::Sqlite => {
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON findings
             WHEN NEW.conversation = 'poison'
             BEGIN SELECT RAISE(ABORT, 'refused by site policy'); END;"
        }
        Kind::Postgres => {
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
             BEGIN
                 IF NEW.conversation = 'poison' THEN
                     RAISE EXCEPTION 'refused by site policy' USING ERRCODE = 'check_violation';
                 END IF;
                 RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON findings
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison();"
        }
    });
    let event = |at_ms: u64, conversation: &str| {
        Msg {
            at_ms,
            agent: Some("a1"),
            conversation: Some(conversation),
            text: "有牌子,自己看",
            action: Action::Delivered,
            findings: vec![finding(
                "deflection.sign",
                Category::Deflection,
                Severity::Warn,
                0,
                7,
            )],
        }
        .event()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let metrics = runtime.block_on(async {
        let store = store::StoreHandle::start(&fresh.url).await.unwrap();
        let settled = |written: u64, rejected: u64| {
            let m = store.metrics.clone();
            async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while m.written.load(Ordering::Relaxed) < written
                    || m.rejected.load(Ordering::Relaxed) < rejected
                {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "writer stuck: {} written, {} rejected",
                        m.written.load(Ordering::Relaxed),
                        m.rejected.load(Ordering::Relaxed)
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        // Queued together: one batch, with the refused event in the middle.
        store.submit(event(1_000, "before"));
        store.submit(event(2_000, "poison"));
        store.submit(event(3_000, "after"));
        store.submit(StoreEvent::Checked {
            at_ms: 3_000,
            agent: "a1".into(),
        });
        settled(3, 1).await;
        // A refused event alone in its batch, then the writer carries on.
        store.submit(event(4_000, "poison"));
        settled(3, 2).await;
        store.submit(event(5_000, "later"));
        settled(4, 2).await;
        store.metrics.clone()
    });
    assert_eq!(metrics.written.load(Ordering::Relaxed), 4);
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 2);
    let mut conversations: Vec<String> = fresh
        .open()
        .findings(&Filter::default())
        .unwrap()
        .items
        .into_iter()
        .filter_map(|f| f.conversation)
        .collect();
    conversations.sort();
    assert_eq!(conversations, ["after", "before", "later"]);
}
