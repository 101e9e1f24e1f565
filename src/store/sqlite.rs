//! The SQLite backend (rusqlite, one file, WAL), and the SQL and logic both backends share.
//!
//! Both backends speak one dialect: `$1, $2, …` placeholders (rusqlite binds them by name here, so
//! their order in a statement does not matter), `ON CONFLICT … DO UPDATE`, `CAST(… AS BIGINT)`. All
//! the queries, the migrations and the row mapping live in this file, once; a backend only implements
//! `Conn` (run a statement, read a row, begin/commit/rollback). [`crate::store::postgres`] uses them
//! from here.
//!
//! SQL is only ever assembled from the constants below; every value is a bound parameter.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;

use super::{
    Backend, ContextMessage, Filter, Group, Page, StatRow, StoreError, StoreEvent, StoredFinding,
};
use crate::proxy::Action;

/// The SQLite backend: one connection to one database file.
pub struct Sqlite {
    conn: Connection,
    /// Batches written since the planner's statistics were last looked at.
    batches: u32,
}

/// Batches between two `PRAGMA optimize` of a long-lived writer.
const OPTIMIZE_EVERY: u32 = 1000;

impl Sqlite {
    /// Opens (creating when missing) the database file at `path`, switches it to WAL and runs the
    /// migrations.
    pub fn open(path: &str) -> Result<Sqlite, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        // `journal_mode` answers with the mode it is in; WAL is persistent, so this is a no-op after
        // the first open ("memory" for `:memory:` databases, which cannot use WAL). Switching a new
        // file to WAL needs an exclusive lock, and SQLite answers "database is locked" at once,
        // without its busy handler, while another connection opening the same new file holds one:
        // the switch is retried for as long as the busy timeout.
        let _mode: String = retry_while_busy(Duration::from_secs(5), || {
            conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        })
        .map_err(db)?;
        // NORMAL is durable across crashes of liyu (not of the machine) in WAL mode. Reads go
        // through a memory map (shared by every connection) and a larger page cache.
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA mmap_size=1073741824; PRAGMA cache_size=-16384",
        )
        .map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = Sqlite { conn, batches: 0 };
        migrate(&mut store)?;
        // The planner's statistics: `optimize` analyzes only tables that changed a lot, and the
        // limit keeps that to a sample (milliseconds, not seconds, on a large table).
        store
            .conn
            .execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002")
            .map_err(db)?;
        Ok(store)
    }
}

impl Backend for Sqlite {
    fn write(&mut self, batch: &[StoreEvent]) -> Result<(), StoreError> {
        write(self, batch)?;
        self.batches += 1;
        if self.batches >= OPTIMIZE_EVERY {
            self.batches = 0;
            // The batch is written: a failure here must not make the writer write it again.
            if let Err(e) = self.conn.execute_batch("PRAGMA optimize") {
                tracing::warn!(error = %e, "PRAGMA optimize failed");
            }
        }
        Ok(())
    }
    fn findings(&mut self, filter: &Filter) -> Result<Page, StoreError> {
        findings(self, filter)
    }
    fn finding(&mut self, id: i64) -> Result<StoredFinding, StoreError> {
        finding(self, id)
    }
    fn review(
        &mut self,
        id: i64,
        verdict: &str,
        note: Option<&str>,
        at_ms: u64,
    ) -> Result<StoredFinding, StoreError> {
        review(self, id, verdict, note, at_ms)
    }
    fn stats(
        &mut self,
        group: Group,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<Vec<StatRow>, StoreError> {
        stats(self, group, since, until)
    }
}

impl Conn for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db)?;
        bind(&mut stmt, params)?;
        Ok(stmt.raw_execute().map_err(db)? as u64)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Param],
        f: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db)?;
        bind(&mut stmt, params)?;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(db)? {
            f(row)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a transaction
        // never fails half-way on a lock upgrade.
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").map_err(db)
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

/// Binds `params[k-1]` to every `$k` of the statement (by name: SQLite numbers named parameters in
/// order of first appearance, not by their digits).
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[Param]) -> Result<(), StoreError> {
    let count = stmt.parameter_count();
    if count != params.len() {
        return Err(StoreError::Db(format!(
            "statement has {count} parameters, {} given",
            params.len()
        )));
    }
    for i in 1..=count {
        let name = stmt.parameter_name(i).unwrap_or("");
        let k: usize = name
            .strip_prefix('$')
            .and_then(|d| d.parse().ok())
            .filter(|k| (1..=params.len()).contains(k))
            .ok_or_else(|| StoreError::Db(format!("unexpected SQL parameter {name:?}")))?;
        let value = match &params[k - 1] {
            Param::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Null => ToSqlOutput::Owned(Value::Null),
        };
        stmt.raw_bind_parameter(i, value).map_err(db)?;
    }
    Ok(())
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.get_ref(i).map_err(db)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            other => Err(StoreError::Db(format!(
                "column {i}: expected an integer, found {:?}",
                other.data_type()
            ))),
        }
    }

    fn str(&self, i: usize) -> Result<Option<&str>, StoreError> {
        match self.get_ref(i).map_err(db)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => Ok(Some(
                std::str::from_utf8(t).map_err(|e| StoreError::Db(format!("column {i}: {e}")))?,
            )),
            other => Err(StoreError::Db(format!(
                "column {i}: expected text, found {:?}",
                other.data_type()
            ))),
        }
    }
}

/// Runs `f` again while it fails with SQLITE_BUSY, for at most `limit`: for the statements whose
/// locks SQLite does not wait for through the busy handler.
fn retry_while_busy<T>(
    limit: Duration,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let started = std::time::Instant::now();
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < limit =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    // Refusals of the data (a constraint or trigger, a value too big or of the wrong type) fail
    // again however often they are retried; locks, a full disk and I/O errors may pass.
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig
            ) =>
        {
            StoreError::Rejected(e.to_string())
        }
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Rejected(e.to_string()),
        _ => StoreError::Db(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------------
// Shared with the PostgreSQL backend.
// ---------------------------------------------------------------------------------------------------

/// Which SQL dialect a connection speaks (only the DDL, the migration lock and [`hints`] differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Param {
    Int(i64),
    Text(String),
    Null,
}

impl Param {
    fn opt_text(s: Option<&str>) -> Param {
        s.map_or(Param::Null, |s| Param::Text(s.to_owned()))
    }
}

/// A result row: columns by position; integers are BIGINT (or INTEGER), texts TEXT.
pub(super) trait Row {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn str(&self, i: usize) -> Result<Option<&str>, StoreError>;

    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.str(i)?.map(str::to_owned))
    }

    fn req_int(&self, i: usize) -> Result<i64, StoreError> {
        self.int(i)?
            .ok_or_else(|| StoreError::Db(format!("column {i} is NULL")))
    }
    fn req_text(&self, i: usize) -> Result<String, StoreError> {
        self.text(i)?
            .ok_or_else(|| StoreError::Db(format!("column {i} is NULL")))
    }
}

/// What a backend provides to the shared logic.
pub(super) trait Conn {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError>;
    /// Runs a query, calling `f` for every row.
    fn query(
        &mut self,
        sql: &str,
        params: &[Param],
        f: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Starts a write transaction.
    fn begin(&mut self) -> Result<(), StoreError>;
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Rolls back (errors ignored: used on the way out of a failed transaction).
    fn rollback(&mut self);
}

/// Runs `f` in a transaction: committed when it succeeds, rolled back when it fails.
fn transaction<C: Conn + ?Sized, T>(
    c: &mut C,
    f: impl FnOnce(&mut C) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.begin()?;
    match f(c).and_then(|v| c.commit().map(|()| v)) {
        Ok(v) => Ok(v),
        Err(e) => {
            c.rollback();
            Err(e)
        }
    }
}

// --- Migrations -------------------------------------------------------------------------------------

/// The schema, one entry per version (version = index + 1). Never edit a released entry: append.
/// `{ID}` and `{WITHOUT_ROWID}` are replaced per dialect.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE findings (
        id {ID},
        at_ms BIGINT NOT NULL,
        conversation TEXT,
        agent TEXT,
        message_id TEXT,
        action TEXT NOT NULL,
        rule TEXT NOT NULL,
        category TEXT NOT NULL,
        severity TEXT NOT NULL,
        start_u16 INTEGER NOT NULL,
        end_u16 INTEGER NOT NULL,
        matched TEXT NOT NULL,
        text TEXT NOT NULL,
        message TEXT NOT NULL,
        suggestions TEXT NOT NULL,
        fix TEXT,
        context TEXT NOT NULL,
        verdict TEXT,
        note TEXT,
        reviewed_at_ms BIGINT
    )",
    // Every index a page or `stats` may use holds all the columns they filter on (but the message
    // text and the conversation), so a query never reads table rows to test a condition, only the
    // rows of the page it returns. The time index also answers `stats`.
    "CREATE INDEX findings_at ON findings
        (at_ms, agent, rule, category, severity, action, verdict)",
    "CREATE INDEX findings_agent ON findings
        (agent, at_ms, rule, category, severity, action, verdict)",
    "CREATE INDEX findings_rule ON findings
        (rule, at_ms, agent, category, severity, action, verdict)",
    "CREATE INDEX findings_category ON findings
        (category, at_ms, agent, rule, severity, action, verdict)",
    // Rows in id order: pages walk it (see `FindingsQuery`).
    "CREATE INDEX findings_walk ON findings
        (id, at_ms, agent, rule, category, severity, action, verdict)",
    "CREATE INDEX findings_conversation ON findings (conversation)",
    // Reviewed findings are few: a partial index finds them without a scan.
    "CREATE INDEX findings_reviewed ON findings (verdict) WHERE verdict IS NOT NULL",
    "CREATE TABLE checked (
        hour_ms BIGINT NOT NULL,
        agent TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (hour_ms, agent)
    ){WITHOUT_ROWID}",
    "CREATE TABLE replies (at_ms BIGINT NOT NULL, agent TEXT NOT NULL, wait_ms BIGINT NOT NULL)",
    "CREATE INDEX replies_agent ON replies (agent, at_ms)",
    // Covers the medians of `stats` over a time range.
    "CREATE INDEX replies_at ON replies (at_ms, agent, wait_ms)",
], &[
    // 2: findings counted per hour and agent, rule or category (`dim`), kept by `write` and
    // `review`: `stats` reads whole hours from here (a few rows per hour instead of every finding)
    // and only the partial hours at a range's ends from `findings`.
    "CREATE TABLE finding_counts (
        dim TEXT NOT NULL,
        hour_ms BIGINT NOT NULL,
        key TEXT NOT NULL,
        findings BIGINT NOT NULL,
        reviews BIGINT NOT NULL,
        false_positives BIGINT NOT NULL,
        PRIMARY KEY (dim, hour_ms, key)
    ){WITHOUT_ROWID}",
    "INSERT INTO finding_counts (dim, hour_ms, key, findings, reviews, false_positives)
        SELECT 'agent', (at_ms / 3600000) * 3600000, COALESCE(agent, ''), COUNT(*), COUNT(verdict),
            SUM(CASE WHEN verdict = 'false_positive' THEN 1 ELSE 0 END)
        FROM findings GROUP BY (at_ms / 3600000) * 3600000, COALESCE(agent, '')",
    "INSERT INTO finding_counts (dim, hour_ms, key, findings, reviews, false_positives)
        SELECT 'rule', (at_ms / 3600000) * 3600000, rule, COUNT(*), COUNT(verdict),
            SUM(CASE WHEN verdict = 'false_positive' THEN 1 ELSE 0 END)
        FROM findings GROUP BY (at_ms / 3600000) * 3600000, rule",
    "INSERT INTO finding_counts (dim, hour_ms, key, findings, reviews, false_positives)
        SELECT 'category', (at_ms / 3600000) * 3600000, category, COUNT(*), COUNT(verdict),
            SUM(CASE WHEN verdict = 'false_positive' THEN 1 ELSE 0 END)
        FROM findings GROUP BY (at_ms / 3600000) * 3600000, category",
]];

const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS liyu_migrations (
    version BIGINT PRIMARY KEY,
    applied_at_ms BIGINT NOT NULL
)";
const SCHEMA_VERSION: &str =
    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM liyu_migrations";
const RECORD_MIGRATION: &str =
    "INSERT INTO liyu_migrations (version, applied_at_ms) VALUES ($1, $2)";
/// Serialises concurrent migrations of several liyu instances (held until the transaction ends).
const PG_MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7461721195310562)";

fn schema_version<C: Conn + ?Sized>(c: &mut C) -> Result<i64, StoreError> {
    let mut v = 0;
    c.query(SCHEMA_VERSION, &[], &mut |r| {
        v = r.req_int(0)?;
        Ok(())
    })?;
    Ok(v)
}

/// Brings the schema up to date; idempotent, safe when several processes start at once.
pub(super) fn migrate<C: Conn + ?Sized>(c: &mut C) -> Result<(), StoreError> {
    let latest = MIGRATIONS.len() as i64;
    // The common case (already migrated) without taking a write lock; an error here is a missing
    // table (a new database), handled below.
    if matches!(schema_version(c), Ok(v) if v >= latest) {
        return Ok(());
    }
    let dialect = c.dialect();
    transaction(c, |c| {
        if dialect == Dialect::Postgres {
            c.query(PG_MIGRATION_LOCK, &[], &mut |_| Ok(()))?;
        }
        c.exec(CREATE_MIGRATIONS, &[])?;
        let current = schema_version(c)?;
        for (i, statements) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            for sql in *statements {
                let sql = match dialect {
                    Dialect::Sqlite => sql
                        .replace("{ID}", "INTEGER PRIMARY KEY AUTOINCREMENT")
                        .replace("{WITHOUT_ROWID}", " WITHOUT ROWID"),
                    Dialect::Postgres => sql
                        .replace("{ID}", "BIGSERIAL PRIMARY KEY")
                        .replace("{WITHOUT_ROWID}", ""),
                };
                c.exec(&sql, &[])?;
            }
            c.exec(
                RECORD_MIGRATION,
                &[Param::Int(version), Param::Int(now_ms())],
            )?;
        }
        Ok(())
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// --- Writing ----------------------------------------------------------------------------------------

const INSERT_FINDING: &str = "INSERT INTO findings (at_ms, conversation, agent, message_id, action,
    rule, category, severity, start_u16, end_u16, matched, text, message, suggestions, fix, context)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
const UPSERT_CHECKED: &str = "INSERT INTO checked (hour_ms, agent, n) VALUES ($1, $2, $3)
    ON CONFLICT (hour_ms, agent) DO UPDATE SET n = checked.n + excluded.n";
const INSERT_REPLY: &str = "INSERT INTO replies (at_ms, agent, wait_ms) VALUES ($1, $2, $3)";
const UPSERT_COUNT: &str = "INSERT INTO finding_counts
    (dim, hour_ms, key, findings, reviews, false_positives) VALUES ($1, $2, $3, $4, 0, 0)
    ON CONFLICT (dim, hour_ms, key) DO UPDATE SET findings = finding_counts.findings + excluded.findings";
/// The dimensions of `finding_counts`, in the order rows are locked.
const DIM_AGENT: &str = "agent";
const DIM_CATEGORY: &str = "category";
const DIM_RULE: &str = "rule";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// u64 → BIGINT (saturating: no time or count comes near it).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// BIGINT → u64 (negatives, which liyu never writes, read as 0).
fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn action_name(action: Action) -> String {
    match serde_json::to_value(action) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{action:?}").to_lowercase(),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Db(format!("cannot encode: {e}")))
}

pub(super) fn write<C: Conn + ?Sized>(c: &mut C, batch: &[StoreEvent]) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    transaction(c, |c| {
        // Counts are summed per (hour, agent) first: one upsert per bucket, in key order (so two
        // PostgreSQL writers lock the rows in the same order and cannot deadlock).
        let mut counts: BTreeMap<(i64, &str), i64> = BTreeMap::new();
        // Findings per (dimension, hour, key), likewise.
        let mut finding_counts: BTreeMap<(&str, i64, &str), i64> = BTreeMap::new();
        for event in batch {
            match event {
                StoreEvent::Findings {
                    at_ms,
                    conversation,
                    agent,
                    message_id,
                    text,
                    action,
                    findings,
                    context,
                } => {
                    let context = json(context)?;
                    let action = action_name(*action);
                    let hour = int(*at_ms) / HOUR_MS * HOUR_MS;
                    for f in findings {
                        for key in [
                            (DIM_AGENT, hour, agent.as_deref().unwrap_or("")),
                            (DIM_CATEGORY, hour, f.category.as_str()),
                            (DIM_RULE, hour, f.rule.as_str()),
                        ] {
                            *finding_counts.entry(key).or_default() += 1;
                        }
                        c.exec(
                            INSERT_FINDING,
                            &[
                                Param::Int(int(*at_ms)),
                                Param::opt_text(conversation.as_deref()),
                                Param::opt_text(agent.as_deref()),
                                Param::opt_text(message_id.as_deref()),
                                Param::Text(action.clone()),
                                Param::Text(f.rule.clone()),
                                Param::Text(f.category.as_str().to_owned()),
                                Param::Text(f.severity.as_str().to_owned()),
                                Param::Int(int(f.start as u64)),
                                Param::Int(int(f.end as u64)),
                                Param::Text(f.matched.clone()),
                                Param::Text(text.clone()),
                                Param::Text(f.message.clone()),
                                Param::Text(json(&f.suggestions)?),
                                Param::opt_text(f.fix.as_deref()),
                                Param::Text(context.clone()),
                            ],
                        )?;
                    }
                }
                StoreEvent::Checked { at_ms, agent } => {
                    let hour = int(*at_ms) / HOUR_MS * HOUR_MS;
                    *counts.entry((hour, agent.as_str())).or_default() += 1;
                }
                StoreEvent::Reply {
                    at_ms,
                    agent,
                    wait_ms,
                } => {
                    c.exec(
                        INSERT_REPLY,
                        &[
                            Param::Int(int(*at_ms)),
                            Param::Text(agent.clone()),
                            Param::Int(int(*wait_ms)),
                        ],
                    )?;
                }
            }
        }
        for ((dim, hour, key), n) in finding_counts {
            c.exec(
                UPSERT_COUNT,
                &[
                    Param::Text(dim.to_owned()),
                    Param::Int(hour),
                    Param::Text(key.to_owned()),
                    Param::Int(n),
                ],
            )?;
        }
        for ((hour, agent), n) in counts {
            c.exec(
                UPSERT_CHECKED,
                &[
                    Param::Int(hour),
                    Param::Text(agent.to_owned()),
                    Param::Int(n),
                ],
            )?;
        }
        Ok(())
    })
}

// --- Reading findings -------------------------------------------------------------------------------

/// The columns of a [`StoredFinding`], in the order [`read_finding`] reads them.
const COLUMNS: &str =
    "id, at_ms, conversation, agent, message_id, action, rule, category, severity,
    CAST(start_u16 AS BIGINT), CAST(end_u16 AS BIGINT), matched, text, message, suggestions, fix,
    verdict, note, reviewed_at_ms";
const FINDING: &str = "SELECT id, at_ms, conversation, agent, message_id, action, rule, category,
    severity, CAST(start_u16 AS BIGINT), CAST(end_u16 AS BIGINT), matched, text, message,
    suggestions, fix, verdict, note, reviewed_at_ms, context FROM findings WHERE id = $1";
const REVIEW: &str =
    "UPDATE findings SET verdict = $1, note = $2, reviewed_at_ms = $3 WHERE id = $4";
/// What a review changes in `finding_counts`; locked until the review commits (PostgreSQL: two
/// reviews of one finding at once must not both count it as newly reviewed).
const REVIEWED_FINDING: &str =
    "SELECT at_ms, agent, rule, category, verdict FROM findings WHERE id = $1{LOCK}";
const REVIEW_COUNT: &str = "UPDATE finding_counts
    SET reviews = reviews + $1, false_positives = false_positives + $2
    WHERE dim = $3 AND hour_ms = $4 AND key = $5";

/// Page sizes.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Filter conditions: the SQL (with `?` standing for the next placeholder) for each filter field.
const BY_AGENT: &str = "agent = ?";
const BY_CATEGORY: &str = "category = ?";
const BY_RULE: &str = "rule = ?";
const BY_SEVERITY: &str = "severity = ?";
const BY_ACTION: &str = "action = ?";
const BY_CONVERSATION: &str = "conversation = ?";
const REVIEWED: &str = "verdict IS NOT NULL";
const UNREVIEWED: &str = "verdict IS NULL";
const BY_VERDICT: &str = "verdict = ?";
const SINCE: &str = "at_ms >= ?";
const UNTIL: &str = "at_ms < ?";
const BY_TEXT: &str = "LOWER(text) LIKE LOWER(?) ESCAPE '!'";
const BEFORE: &str = "id < ?";
/// The same, kept from the planner (`+id` is no index's column), so that it picks an index for
/// the other conditions instead of walking the table's own (wide) rows back from the id.
const BEFORE_UNINDEXED: &str = "+id < ?";

/// Rows of the newest window a page is first looked for in (see [`FindingsQuery`]).
const WINDOW: i64 = 20_000;
/// The columns of the `findings_walk` index, which the window reads.
const WALK_COLUMNS: &str = "id, at_ms, agent, rule, category, severity, action, verdict";

/// How many of the newest `$2` rows below `$1` there are, and the oldest of them.
const WINDOW_EDGE: &str = "SELECT COUNT(*), MIN(id) FROM
    (SELECT id FROM findings{WALK} WHERE id < $1 ORDER BY id DESC LIMIT $2) AS recent";

/// Index hints, for SQLite only (PostgreSQL has none, and its planner does not need them): `{WALK}`
/// where a query walks rows back in id order (SQLite would rather read the table's own rows, all
/// the text, than the narrow `findings_walk` index); `{AT}` and `{REPLIES_AT}` where it reads a
/// time range (SQLite may rather skip-scan an index that leads with a column of few values).
///
/// And `{LOCK}`: PostgreSQL's row lock (SQLite's write transactions exclude each other anyway).
fn hints(dialect: Dialect, sql: &str) -> String {
    let [walk, at, replies_at, lock] = match dialect {
        Dialect::Sqlite => [
            " INDEXED BY findings_walk",
            " INDEXED BY findings_at",
            " INDEXED BY replies_at",
            "",
        ],
        Dialect::Postgres => ["", "", "", " FOR UPDATE"],
    };
    sql.replace("{WALK}", walk)
        .replace("{AT}", at)
        .replace("{REPLIES_AT}", replies_at)
        .replace("{LOCK}", lock)
}

/// The queries for one page of findings, built from the constants above; values are bound.
///
/// A page is the newest `limit` rows matching the filter with an id below the cursor. It is found
/// in up to two steps, so that neither depends on the planner guessing how selective a filter is:
/// 1. [`window`](Self::window): the filter applied to the newest [`WINDOW`] rows below the cursor,
///    walked in id order through the narrow `findings_walk` index (a few ms at most). Filters that
///    match more than one row in 400 are answered here, however many rows the table holds.
/// 2. [`indexed`](Self::indexed): when the window did not fill the page (and did not hold every
///    row), the rest below the window. The filter is rare among recent rows, so the planner's
///    choice of index (agent, rule, category, time, conversation, verdict) finds its rows; every
///    one of these indexes holds the filtered columns, so no table row is read to test one.
///
/// Both select ids in an inner query and read the page's rows once, by id.
pub(super) struct FindingsQuery {
    /// The filter's conditions, `$n` numbered into `params`.
    conds: Vec<String>,
    params: Vec<Param>,
    /// Whether the message text is searched (the window then reads table rows, not the index).
    text: bool,
    /// Whether the window is worth it (not for a conversation: its index is exact and small).
    use_window: bool,
    limit: usize,
    cursor: i64,
    /// The window's size: [`WINDOW`] (smaller in tests).
    window: i64,
}

impl FindingsQuery {
    pub(super) fn new(filter: &Filter) -> Result<FindingsQuery, StoreError> {
        let mut q = FindingsQuery {
            conds: Vec::new(),
            params: Vec::new(),
            text: false,
            use_window: filter.conversation.is_none(),
            limit: filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
            cursor: filter.cursor.unwrap_or(i64::MAX),
            window: WINDOW,
        };
        let fields = [
            (BY_AGENT, &filter.agent),
            (BY_CATEGORY, &filter.category),
            (BY_RULE, &filter.rule),
            (BY_SEVERITY, &filter.severity),
            (BY_ACTION, &filter.action),
            (BY_CONVERSATION, &filter.conversation),
        ];
        for (cond, value) in fields {
            if let Some(v) = value {
                q.add(cond, Some(Param::Text(v.clone())));
            }
        }
        match filter.reviewed.as_deref() {
            None => {}
            Some("true") => q.add(REVIEWED, None),
            Some("false") => q.add(UNREVIEWED, None),
            Some(v @ ("confirmed" | "false_positive")) => {
                q.add(BY_VERDICT, Some(Param::Text(v.into())))
            }
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "reviewed must be true, false, confirmed or false_positive, not {other:?}"
                )))
            }
        }
        if let Some(since) = filter.since {
            q.add(SINCE, Some(Param::Int(int(since))));
        }
        if let Some(until) = filter.until {
            q.add(UNTIL, Some(Param::Int(int(until))));
        }
        if let Some(text) = &filter.q {
            q.add(
                BY_TEXT,
                Some(Param::Text(format!("%{}%", like_escape(text)))),
            );
            q.text = true;
        }
        Ok(q)
    }

    fn add(&mut self, cond: &str, param: Option<Param>) {
        match param {
            Some(p) => {
                self.params.push(p);
                self.conds
                    .push(cond.replace('?', &format!("${}", self.params.len())));
            }
            None => self.conds.push(cond.to_owned()),
        }
    }

    /// The filter's parameters followed by `more`; and the placeholders of `more`.
    fn with(&self, more: &[Param]) -> (Vec<Param>, Vec<String>) {
        let mut params = self.params.clone();
        let mut names = Vec::new();
        for p in more {
            params.push(p.clone());
            names.push(format!("${}", params.len()));
        }
        (params, names)
    }

    /// ` WHERE` and the filter's conditions, and `extra`.
    fn where_(&self, extra: Option<String>) -> String {
        let conds: Vec<&str> = self
            .conds
            .iter()
            .map(String::as_str)
            .chain(extra.as_deref())
            .collect();
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// Step 1: the matches among the newest [`WINDOW`] rows below the cursor.
    pub(super) fn window(&self, dialect: Dialect) -> (String, Vec<Param>) {
        let (params, p) = self.with(&[
            Param::Int(self.cursor),
            Param::Int(self.window),
            Param::Int(self.limit as i64),
        ]);
        let (columns, walk) = if self.text {
            (", text", "")
        } else {
            ("", "{WALK}")
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM findings WHERE id IN (SELECT id FROM \
             (SELECT {WALK_COLUMNS}{columns} FROM findings{walk} WHERE {below} \
             ORDER BY id DESC LIMIT {window}) AS recent{conds} ORDER BY id DESC LIMIT {limit}) \
             ORDER BY id DESC",
            below = BEFORE.replace('?', &p[0]),
            window = p[1],
            conds = self.where_(None),
            limit = p[2],
        );
        (hints(dialect, &sql), params)
    }

    /// How many rows the window holds (fewer than [`WINDOW`]: every row below the cursor), and
    /// the oldest of them.
    pub(super) fn edge(&self, dialect: Dialect) -> (String, Vec<Param>) {
        let sql = hints(dialect, WINDOW_EDGE);
        (sql, vec![Param::Int(self.cursor), Param::Int(self.window)])
    }

    /// Step 2: the newest `n` matches with an id below `before`.
    pub(super) fn indexed(&self, before: i64, n: usize) -> (String, Vec<Param>) {
        let (params, p) = self.with(&[Param::Int(before), Param::Int(n as i64)]);
        let sql = format!(
            "SELECT {COLUMNS} FROM findings WHERE id IN (SELECT id FROM findings{conds} \
             ORDER BY id DESC LIMIT {limit}) ORDER BY id DESC",
            conds = self.where_(Some(BEFORE_UNINDEXED.replace('?', &p[0]))),
            limit = p[1],
        );
        (sql, params)
    }
}

/// Escapes LIKE's wildcards with `!`, the ESCAPE character of [`BY_TEXT`] (not `\`, which some
/// PostgreSQL configurations read as a string escape).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(ch);
    }
    out
}

fn read_finding(r: &dyn Row, with_context: bool) -> Result<StoredFinding, StoreError> {
    let suggestions: Vec<String> = serde_json::from_str(&r.req_text(14)?)
        .map_err(|e| StoreError::Db(format!("bad suggestions: {e}")))?;
    let context: Vec<ContextMessage> = if with_context {
        serde_json::from_str(&r.req_text(19)?)
            .map_err(|e| StoreError::Db(format!("bad context: {e}")))?
    } else {
        Vec::new()
    };
    Ok(StoredFinding {
        id: r.req_int(0)?,
        at_ms: uint(r.req_int(1)?),
        conversation: r.text(2)?,
        agent: r.text(3)?,
        message_id: r.text(4)?,
        action: r.req_text(5)?,
        rule: r.req_text(6)?,
        category: r.req_text(7)?,
        severity: r.req_text(8)?,
        start: uint(r.req_int(9)?) as usize,
        end: uint(r.req_int(10)?) as usize,
        matched: r.req_text(11)?,
        text: r.req_text(12)?,
        message: r.req_text(13)?,
        suggestions,
        fix: r.text(15)?,
        verdict: r.text(16)?,
        note: r.text(17)?,
        reviewed_at_ms: r.int(18)?.map(uint),
        context,
    })
}

pub(super) fn findings<C: Conn + ?Sized>(c: &mut C, filter: &Filter) -> Result<Page, StoreError> {
    page(c, &FindingsQuery::new(filter)?)
}

fn page<C: Conn + ?Sized>(c: &mut C, q: &FindingsQuery) -> Result<Page, StoreError> {
    let dialect = c.dialect();
    let mut items = Vec::new();
    let read = |c: &mut C, (sql, params): (String, Vec<Param>), items: &mut Vec<StoredFinding>| {
        c.query(&sql, &params, &mut |r| {
            items.push(read_finding(r, false)?);
            Ok(())
        })
    };
    // Below which id step 2 looks (None: no step 2).
    let mut before = Some(q.cursor);
    if q.use_window {
        read(c, q.window(dialect), &mut items)?;
        before = None;
        if items.len() < q.limit {
            let (sql, params) = q.edge(dialect);
            c.query(&sql, &params, &mut |r| {
                if r.req_int(0)? == q.window {
                    before = r.int(1)?;
                }
                Ok(())
            })?;
        }
    }
    if let Some(before) = before {
        read(c, q.indexed(before, q.limit - items.len()), &mut items)?;
    }
    let next_cursor = if items.len() == q.limit {
        items.last().map(|f| f.id)
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub(super) fn finding<C: Conn + ?Sized>(c: &mut C, id: i64) -> Result<StoredFinding, StoreError> {
    let mut found = None;
    c.query(FINDING, &[Param::Int(id)], &mut |r| {
        found = Some(read_finding(r, true)?);
        Ok(())
    })?;
    found.ok_or(StoreError::NotFound(id))
}

pub(super) fn review<C: Conn + ?Sized>(
    c: &mut C,
    id: i64,
    verdict: &str,
    note: Option<&str>,
    at_ms: u64,
) -> Result<StoredFinding, StoreError> {
    if !matches!(verdict, "confirmed" | "false_positive") {
        return Err(StoreError::Invalid(format!(
            "verdict must be confirmed or false_positive, not {verdict:?}"
        )));
    }
    let dialect = c.dialect();
    transaction(c, |c| {
        let mut old = None;
        c.query(
            &hints(dialect, REVIEWED_FINDING),
            &[Param::Int(id)],
            &mut |r| {
                old = Some((
                    r.req_int(0)? / HOUR_MS * HOUR_MS,
                    r.text(1)?.unwrap_or_default(),
                    r.req_text(2)?,
                    r.req_text(3)?,
                    r.text(4)?,
                ));
                Ok(())
            },
        )?;
        let (hour, agent, rule, category, was) = old.ok_or(StoreError::NotFound(id))?;
        c.exec(
            REVIEW,
            &[
                Param::Text(verdict.to_owned()),
                Param::opt_text(note),
                Param::Int(int(at_ms)),
                Param::Int(id),
            ],
        )?;
        let fp = |v: Option<&str>| i64::from(v == Some("false_positive"));
        let reviews = i64::from(was.is_none());
        let false_positives = fp(Some(verdict)) - fp(was.as_deref());
        if reviews != 0 || false_positives != 0 {
            for (dim, key) in [
                (DIM_AGENT, agent),
                (DIM_CATEGORY, category),
                (DIM_RULE, rule),
            ] {
                c.exec(
                    REVIEW_COUNT,
                    &[
                        Param::Int(reviews),
                        Param::Int(false_positives),
                        Param::Text(dim.to_owned()),
                        Param::Int(hour),
                        Param::Text(key),
                    ],
                )?;
            }
        }
        finding(c, id)
    })
}

// --- Statistics -------------------------------------------------------------------------------------

/// Findings in `[$1, $2)` (the partial hours at the ends of a range, or a range within one hour):
/// the group's column and the verdict. Read from the covering `findings_at` index and counted
/// here: faster than a GROUP BY (which sorts) or a CASE on the verdict.
const FINDINGS_AGENT: &str =
    "SELECT agent, verdict FROM findings{AT} WHERE at_ms >= $1 AND at_ms < $2";
const FINDINGS_RULE: &str =
    "SELECT rule, verdict FROM findings{AT} WHERE at_ms >= $1 AND at_ms < $2";
const FINDINGS_CATEGORY: &str =
    "SELECT category, verdict FROM findings{AT} WHERE at_ms >= $1 AND at_ms < $2";
const FINDINGS_TIME: &str =
    "SELECT at_ms, verdict FROM findings{AT} WHERE at_ms >= $1 AND at_ms < $2";

/// Findings of one dimension (`$1`) in the whole hours `[$2, $3)`: key, hour, counts.
const COUNTS: &str = "SELECT key, hour_ms, findings, reviews, false_positives FROM finding_counts
    WHERE dim = $1 AND hour_ms >= $2 AND hour_ms < $3";

/// Checked messages in the hour buckets that overlap the range: `$1` is the start of the hour
/// `since` falls in.
const MESSAGES_BY_AGENT: &str = "SELECT agent, n FROM checked WHERE hour_ms >= $1 AND hour_ms < $2";
const MESSAGES_BY_HOUR: &str =
    "SELECT hour_ms, n FROM checked WHERE hour_ms >= $1 AND hour_ms < $2";
const MESSAGES_TOTAL: &str = "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM checked
    WHERE hour_ms >= $1 AND hour_ms < $2";

/// Reply times in `[$1, $2)` (from the covering `replies_at` index).
const REPLIES_BY_AGENT: &str =
    "SELECT agent, wait_ms FROM replies{REPLIES_AT} WHERE at_ms >= $1 AND at_ms < $2";
const REPLIES_BY_TIME: &str =
    "SELECT at_ms, wait_ms FROM replies{REPLIES_AT} WHERE at_ms >= $1 AND at_ms < $2";

#[derive(Default)]
struct Acc {
    findings: u64,
    reviews: u64,
    false_positives: u64,
    messages: u64,
    waits: Vec<u64>,
}

/// The groups of `stats`, by text key (agent, rule, category) or by bucket start (hour, day).
#[derive(Default)]
struct Groups {
    /// The bucket width of a time group (0: text keys).
    width: i64,
    text: HashMap<String, Acc>,
    buckets: HashMap<i64, Acc>,
}

impl Groups {
    /// The group of row `r` (its key in column `i`); created when missing if `create`.
    fn get(&mut self, r: &dyn Row, i: usize, create: bool) -> Result<Option<&mut Acc>, StoreError> {
        if self.width == 0 {
            // Findings without an agent count as agent "" (what `Checked` uses for unknown).
            let key = r.str(i)?.unwrap_or("");
            if create && !self.text.contains_key(key) {
                self.text.insert(key.to_owned(), Acc::default());
            }
            Ok(self.text.get_mut(key))
        } else {
            let bucket = r.req_int(i)? / self.width * self.width;
            Ok(if create {
                Some(self.buckets.entry(bucket).or_default())
            } else {
                self.buckets.get_mut(&bucket)
            })
        }
    }
}

/// The median of `v` (the mean of the two middle values, rounded down, for an even count).
fn median(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        // Written so it cannot overflow.
        v[mid - 1] / 2 + v[mid] / 2 + (v[mid - 1] % 2 + v[mid] % 2) / 2
    })
}

pub(super) fn stats<C: Conn + ?Sized>(
    c: &mut C,
    group: Group,
    since: Option<u64>,
    until: Option<u64>,
) -> Result<Vec<StatRow>, StoreError> {
    let since = since.map_or(0, int);
    let until = until.map_or(i64::MAX, int);
    let range = [Param::Int(since), Param::Int(until)];
    let hours = [Param::Int(since / HOUR_MS * HOUR_MS), Param::Int(until)];
    let mut groups = Groups {
        // The bucket width of a time group (0: a text key).
        width: match group {
            Group::Hour => HOUR_MS,
            Group::Day => DAY_MS,
            Group::Agent | Group::Rule | Group::Category => 0,
        },
        ..Groups::default()
    };
    let dialect = c.dialect();

    // Findings: whole hours from `finding_counts`, the partial hours at either end from `findings`.
    let first_hour = since
        .checked_add(HOUR_MS - 1)
        .map_or(i64::MAX, |s| s / HOUR_MS * HOUR_MS);
    let last_hour = until / HOUR_MS * HOUR_MS;
    let raw = if first_hour < last_hour {
        let (dim, key_column) = match group {
            Group::Agent => (DIM_AGENT, 0),
            Group::Rule => (DIM_RULE, 0),
            // Every finding has one category: hours and days sum those rows.
            Group::Category => (DIM_CATEGORY, 0),
            Group::Hour | Group::Day => (DIM_CATEGORY, 1),
        };
        let params = [
            Param::Text(dim.to_owned()),
            Param::Int(first_hour),
            Param::Int(last_hour),
        ];
        c.query(COUNTS, &params, &mut |r| {
            if let Some(a) = groups.get(r, key_column, true)? {
                a.findings += uint(r.req_int(2)?);
                a.reviews += uint(r.req_int(3)?);
                a.false_positives += uint(r.req_int(4)?);
            }
            Ok(())
        })?;
        vec![(since, first_hour), (last_hour, until)]
    } else {
        vec![(since, until)]
    };
    let findings_sql = hints(
        dialect,
        match group {
            Group::Agent => FINDINGS_AGENT,
            Group::Rule => FINDINGS_RULE,
            Group::Category => FINDINGS_CATEGORY,
            Group::Hour | Group::Day => FINDINGS_TIME,
        },
    );
    for (from, to) in raw.into_iter().filter(|(from, to)| from < to) {
        c.query(
            &findings_sql,
            &[Param::Int(from), Param::Int(to)],
            &mut |r| {
                let Some(a) = groups.get(r, 0, true)? else {
                    return Ok(());
                };
                a.findings += 1;
                if let Some(verdict) = r.str(1)? {
                    a.reviews += 1;
                    if verdict == "false_positive" {
                        a.false_positives += 1;
                    }
                }
                Ok(())
            },
        )?;
    }

    if let Group::Rule | Group::Category = group {
        // The rate of a rule or category is over every message checked.
        let mut total = 0;
        c.query(MESSAGES_TOTAL, &hours, &mut |r| {
            total = uint(r.req_int(0)?);
            Ok(())
        })?;
        for a in groups.text.values_mut() {
            a.messages = total;
        }
    } else {
        // Agents and buckets with messages but no findings get a row too.
        let sql = if groups.width == 0 {
            MESSAGES_BY_AGENT
        } else {
            MESSAGES_BY_HOUR
        };
        c.query(sql, &hours, &mut |r| {
            if let Some(a) = groups.get(r, 0, true)? {
                a.messages += uint(r.req_int(1)?);
            }
            Ok(())
        })?;
        let sql = if groups.width == 0 {
            REPLIES_BY_AGENT
        } else {
            REPLIES_BY_TIME
        };
        c.query(&hints(c.dialect(), sql), &range, &mut |r| {
            // Only groups with findings or messages are reported.
            if let Some(a) = groups.get(r, 0, false)? {
                a.waits.push(uint(r.req_int(1)?));
            }
            Ok(())
        })?;
    }

    let row = |key: String, mut a: Acc| StatRow {
        key,
        findings: a.findings,
        messages: a.messages,
        rate_per_100: if a.messages == 0 {
            0.0
        } else {
            a.findings as f64 * 100.0 / a.messages as f64
        },
        median_reply_ms: median(&mut a.waits),
        reviews: a.reviews,
        false_positives: a.false_positives,
        false_positive_share: (a.reviews > 0).then(|| a.false_positives as f64 / a.reviews as f64),
    };
    // Time buckets in time order; the others by findings, most first, then by key.
    let mut buckets: Vec<(i64, Acc)> = groups.buckets.into_iter().collect();
    buckets.sort_by_key(|(b, _)| *b);
    let mut rows: Vec<StatRow> = buckets
        .into_iter()
        .map(|(b, a)| row(b.to_string(), a))
        .collect();
    let mut texts: Vec<StatRow> = groups.text.into_iter().map(|(k, a)| row(k, a)).collect();
    texts.sort_by(|a, b| b.findings.cmp(&a.findings).then_with(|| a.key.cmp(&b.key)));
    rows.extend(texts);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Category, Finding, Severity};

    fn matches(f: &StoredFinding, filter: &Filter) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&filter.agent, f.agent.as_deref())
            && eq(&filter.category, Some(&f.category))
            && eq(&filter.rule, Some(&f.rule))
            && eq(&filter.severity, Some(&f.severity))
            && eq(&filter.action, Some(&f.action))
            && eq(&filter.conversation, f.conversation.as_deref())
            && match filter.reviewed.as_deref() {
                None => true,
                Some("true") => f.verdict.is_some(),
                Some("false") => f.verdict.is_none(),
                Some(v) => f.verdict.as_deref() == Some(v),
            }
            && filter.since.is_none_or(|s| f.at_ms >= s)
            && filter.until.is_none_or(|u| f.at_ms < u)
            && filter
                .q
                .as_ref()
                .is_none_or(|q| f.text.to_lowercase().contains(&q.to_lowercase()))
            && filter.cursor.is_none_or(|c| f.id < c)
    }

    /// Pages found through windows of every size (so through both steps, and their seam) are the
    /// rows a plain scan finds.
    #[test]
    fn pages_are_the_same_whatever_the_window() {
        let mut db = Sqlite::open(":memory:").unwrap();
        let agents = [Some("ann"), Some("bob"), None];
        let rules = [
            ("r.a", Category::Impatience),
            ("r.b", Category::Deflection),
            ("r.c", Category::Impatience),
        ];
        let actions = [Action::Delivered, Action::Blocked, Action::Recorded];
        let severities = [Severity::Warn, Severity::Block, Severity::Info];
        let events: Vec<StoreEvent> = (0..300u64)
            .map(|i| {
                let (rule, category) = rules[(i % 7 % 3) as usize];
                StoreEvent::Findings {
                    at_ms: 1_000 + (i * 7919) % 300,
                    conversation: Some(format!("c{}", i % 11)),
                    agent: agents[(i % 3) as usize].map(str::to_owned),
                    message_id: None,
                    text: if i % 13 == 0 { "Rare TEXT" } else { "plain" }.to_owned(),
                    action: actions[(i % 5 % 3) as usize],
                    findings: vec![Finding {
                        rule: rule.to_owned(),
                        category,
                        severity: severities[(i % 4 % 3) as usize],
                        start: 0,
                        end: 1,
                        matched: "x".to_owned(),
                        message: "m".to_owned(),
                        suggestions: vec![],
                        fix: None,
                        bytes: 0..0,
                    }],
                    context: vec![],
                }
            })
            .collect();
        db.write(&events).unwrap();
        for id in (1..=300).step_by(17) {
            let verdict = if id % 2 == 0 {
                "confirmed"
            } else {
                "false_positive"
            };
            db.review(id, verdict, None, 5).unwrap();
        }
        let all = db
            .findings(&Filter {
                limit: Some(500),
                ..Filter::default()
            })
            .unwrap()
            .items;
        assert_eq!(all.len(), 300);

        let s = |v: &str| Some(v.to_owned());
        let filters = [
            Filter::default(),
            Filter {
                agent: s("ann"),
                ..Filter::default()
            },
            Filter {
                agent: s("bob"),
                rule: s("r.c"),
                ..Filter::default()
            },
            Filter {
                category: s("impatience"),
                severity: s("block"),
                ..Filter::default()
            },
            Filter {
                action: s("recorded"),
                reviewed: s("false"),
                ..Filter::default()
            },
            Filter {
                reviewed: s("true"),
                ..Filter::default()
            },
            Filter {
                reviewed: s("confirmed"),
                agent: s("bob"),
                ..Filter::default()
            },
            Filter {
                since: Some(1_100),
                until: Some(1_150),
                ..Filter::default()
            },
            Filter {
                until: Some(1_010),
                ..Filter::default()
            },
            Filter {
                q: s("rare text"),
                ..Filter::default()
            },
            Filter {
                q: s("rare"),
                since: Some(1_200),
                ..Filter::default()
            },
            Filter {
                conversation: s("c3"),
                ..Filter::default()
            },
            Filter {
                agent: s("nobody"),
                ..Filter::default()
            },
        ];
        for filter in filters {
            let expected: Vec<i64> = all
                .iter()
                .filter(|f| matches(f, &filter))
                .map(|f| f.id)
                .collect();
            for window in [1, 2, 7, 40, 299, 300, 301, 20_000] {
                for limit in [1, 4, 50] {
                    let mut seen = Vec::new();
                    let mut cursor = None;
                    loop {
                        let mut q = FindingsQuery::new(&Filter {
                            limit: Some(limit),
                            cursor,
                            ..filter.clone()
                        })
                        .unwrap();
                        q.window = window;
                        let page = page(&mut db, &q).unwrap();
                        assert!(page.items.len() <= limit);
                        for f in &page.items {
                            assert_eq!(Some(f), all.iter().find(|a| a.id == f.id));
                        }
                        seen.extend(page.items.iter().map(|f| f.id));
                        match page.next_cursor {
                            Some(c) => {
                                assert_eq!(page.items.len(), limit);
                                cursor = Some(c);
                            }
                            None => break,
                        }
                    }
                    assert_eq!(seen, expected, "{filter:?}, window {window}, limit {limit}");
                }
            }
        }
    }

    /// Statistics read whole hours from `finding_counts` and the ends of a range from `findings`:
    /// whatever the range, and however often findings were reviewed, they count what a scan of
    /// the findings counts.
    #[test]
    fn stats_counts_are_those_of_a_scan() {
        let mut db = Sqlite::open(":memory:").unwrap();
        let h = HOUR_MS as u64;
        let base = 20_000 * DAY_MS as u64;
        let events: Vec<StoreEvent> = (0..400u64)
            .map(|i| StoreEvent::Findings {
                // Over three days, out of order.
                at_ms: base + (i * 7_777_777) % (3 * 24 * h),
                conversation: None,
                agent: [Some("ann"), Some("bob"), None][(i % 3) as usize].map(str::to_owned),
                message_id: None,
                text: "t".to_owned(),
                action: Action::Delivered,
                findings: vec![Finding {
                    rule: ["r.a", "r.b", "r.c", "r.d"][(i % 4) as usize].to_owned(),
                    category: [Category::Impatience, Category::Deflection][(i % 5 % 2) as usize],
                    severity: Severity::Warn,
                    start: 0,
                    end: 1,
                    matched: "x".to_owned(),
                    message: "m".to_owned(),
                    suggestions: vec![],
                    fix: None,
                    bytes: 0..0,
                }],
                context: vec![],
            })
            .collect();
        db.write(&events[..150]).unwrap();
        db.write(&events[150..]).unwrap();
        // Reviews, re-reviews that change the verdict, and one that does not.
        for id in (1..=400).step_by(3) {
            db.review(id, "confirmed", None, 0).unwrap();
        }
        for id in (1..=400).step_by(6) {
            db.review(id, "false_positive", Some("n"), 0).unwrap();
        }
        for id in (1..=400).step_by(12) {
            db.review(id, "confirmed", None, 0).unwrap();
            db.review(id, "confirmed", None, 0).unwrap();
        }
        for id in (2..=400).step_by(9) {
            db.review(id, "false_positive", None, 0).unwrap();
        }
        let all = db
            .findings(&Filter {
                limit: Some(500),
                ..Filter::default()
            })
            .unwrap()
            .items;
        let ranges = [
            (None, None),
            (Some(base), Some(base + 3 * 24 * h)),
            (Some(base + 5 * h + 17), None),
            (None, Some(base + 40 * h + 1)),
            (Some(base + 5 * h + 17), Some(base + 40 * h + 1)),
            (Some(base + 7 * h), Some(base + 7 * h + 1_000_000)),
            (Some(base + 7 * h + 5), Some(base + 7 * h + 1_000_000)),
            (Some(base + 7 * h + 5), Some(base + 8 * h)),
            (Some(base + 7 * h + 5), Some(base + 8 * h + 5)),
        ];
        for group in [
            Group::Agent,
            Group::Rule,
            Group::Category,
            Group::Hour,
            Group::Day,
        ] {
            for (since, until) in ranges {
                let mut expected: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
                for f in &all {
                    if since.is_some_and(|s| f.at_ms < s) || until.is_some_and(|u| f.at_ms >= u) {
                        continue;
                    }
                    let key = match group {
                        Group::Agent => f.agent.clone().unwrap_or_default(),
                        Group::Rule => f.rule.clone(),
                        Group::Category => f.category.clone(),
                        Group::Hour => (f.at_ms / h * h).to_string(),
                        Group::Day => (f.at_ms / (24 * h) * (24 * h)).to_string(),
                    };
                    let e = expected.entry(key).or_default();
                    e.0 += 1;
                    e.1 += u64::from(f.verdict.is_some());
                    e.2 += u64::from(f.verdict.as_deref() == Some("false_positive"));
                }
                let got: BTreeMap<String, (u64, u64, u64)> = db
                    .stats(group, since, until)
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.key, (r.findings, r.reviews, r.false_positives)))
                    .collect();
                assert_eq!(got, expected, "{group:?} {since:?}..{until:?}");
            }
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5]), Some(5));
        assert_eq!(median(&mut [9, 1, 5]), Some(5));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2));
        assert_eq!(median(&mut [u64::MAX, u64::MAX]), Some(u64::MAX));
        assert_eq!(median(&mut [u64::MAX, u64::MAX - 1]), Some(u64::MAX - 1));
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape(r"50%_a!b\c"), r"50!%!_a!!b\c");
    }
}
