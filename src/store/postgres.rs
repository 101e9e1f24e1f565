//! The PostgreSQL backend (the synchronous `postgres` crate, no TLS), for several liyu instances
//! sharing one store.
//!
//! The SQL, the migrations and the row mapping are the SQLite backend's ([`super::sqlite`]): this
//! file only runs statements. The `postgres` crate drives its own tokio runtime, so call it from a
//! plain or blocking thread (the store does, through `spawn_blocking`), never from an async task.
//!
//! A schema other than `public` can be chosen in the URL:
//! `postgres://liyu@host/db?options=-c%20search_path%3Dliyu`.

use std::collections::HashMap;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};

use super::sqlite::{self, Conn, Dialect, Param, Row};
use super::{Backend, Filter, Group, Page, StatRow, StoreError, StoreEvent, StoredFinding};

/// Prepared statements kept per connection (the findings filters make a few hundred shapes at most).
const STATEMENT_CACHE: usize = 256;

/// The PostgreSQL backend: one connection.
pub struct Postgres {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/db?options=…`) and runs the
    /// migrations.
    pub fn connect(url: &str) -> Result<Postgres, StoreError> {
        let client = Client::connect(url, NoTls).map_err(db)?;
        let mut store = Postgres {
            client,
            statements: HashMap::new(),
        };
        sqlite::migrate(&mut store)?;
        Ok(store)
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(db)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// Converts parameters to the types the server inferred for them (INTEGER columns take an `i32`,
/// BIGINT ones an `i64`).
///
/// Nothing a batch holds may make its write fail every time (the writer would retry it forever):
/// integers too large for an INTEGER column are clamped (a span of over 2^31 UTF-16 units), and NUL
/// characters, which PostgreSQL text cannot hold, become U+FFFD (one UTF-16 unit too, so spans
/// stay valid).
fn bind(stmt: &Statement, params: &[Param]) -> Result<Vec<Box<dyn ToSql + Sync>>, StoreError> {
    if stmt.params().len() != params.len() {
        return Err(StoreError::Db(format!(
            "statement has {} parameters, {} given",
            stmt.params().len(),
            params.len()
        )));
    }
    stmt.params()
        .iter()
        .zip(params)
        .map(|(ty, p)| -> Result<Box<dyn ToSql + Sync>, StoreError> {
            Ok(match (p, ty) {
                (Param::Int(v), &Type::INT8) => Box::new(*v),
                (Param::Int(v), &Type::INT4) => {
                    Box::new((*v).clamp(i32::MIN.into(), i32::MAX.into()) as i32)
                }
                (Param::Int(v), &Type::INT2) => {
                    Box::new((*v).clamp(i16::MIN.into(), i16::MAX.into()) as i16)
                }
                (Param::Int(_), _) => {
                    return Err(StoreError::Db(format!(
                        "integer parameter for a {ty} column"
                    )))
                }
                (Param::Text(s), _) if s.contains('\0') => Box::new(s.replace('\0', "\u{FFFD}")),
                (Param::Text(s), _) => Box::new(s.clone()),
                (Param::Null, &Type::INT8) => Box::new(None::<i64>),
                (Param::Null, &Type::INT4) => Box::new(None::<i32>),
                (Param::Null, &Type::INT2) => Box::new(None::<i16>),
                (Param::Null, _) => Box::new(None::<String>),
            })
        })
        .collect()
}

impl Conn for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        let stmt = self.statement(sql)?;
        let values = bind(&stmt, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        self.client.execute(&stmt, &refs).map_err(db)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Param],
        f: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let stmt = self.statement(sql)?;
        let values = bind(&stmt, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        for row in self.client.query(&stmt, &refs).map_err(db)? {
            f(&PgRow(row))?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("BEGIN").map_err(db)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("COMMIT").map_err(db)
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }
}

struct PgRow(postgres::Row);

impl Row for PgRow {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        let column = self
            .0
            .columns()
            .get(i)
            .ok_or_else(|| StoreError::Db(format!("no column {i}")))?;
        match *column.type_() {
            Type::INT8 => self.0.try_get::<_, Option<i64>>(i).map_err(db),
            Type::INT4 => Ok(self
                .0
                .try_get::<_, Option<i32>>(i)
                .map_err(db)?
                .map(i64::from)),
            Type::INT2 => Ok(self
                .0
                .try_get::<_, Option<i16>>(i)
                .map_err(db)?
                .map(i64::from)),
            ref other => Err(StoreError::Db(format!(
                "column {i}: expected an integer, found {other}"
            ))),
        }
    }

    fn str(&self, i: usize) -> Result<Option<&str>, StoreError> {
        self.0.try_get::<_, Option<&str>>(i).map_err(db)
    }
}

fn db(e: postgres::Error) -> StoreError {
    // The server's message (and code) when there is one; the plain Display says only "db error".
    match e.as_db_error() {
        // SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation) refuse the
        // data themselves; the others (connection, resources, serialization, …) may pass on retry.
        Some(d) if matches!(d.code().code().get(..2), Some("22" | "23")) => {
            StoreError::Rejected(format!("{} ({})", d.message(), d.code().code()))
        }
        Some(d) => StoreError::Db(format!("{} ({})", d.message(), d.code().code())),
        None => StoreError::Db(e.to_string()),
    }
}

impl Backend for Postgres {
    fn write(&mut self, batch: &[StoreEvent]) -> Result<(), StoreError> {
        sqlite::write(self, batch)
    }
    fn findings(&mut self, filter: &Filter) -> Result<Page, StoreError> {
        sqlite::findings(self, filter)
    }
    fn finding(&mut self, id: i64) -> Result<StoredFinding, StoreError> {
        sqlite::finding(self, id)
    }
    fn review(
        &mut self,
        id: i64,
        verdict: &str,
        note: Option<&str>,
        at_ms: u64,
    ) -> Result<StoredFinding, StoreError> {
        sqlite::review(self, id, verdict, note, at_ms)
    }
    fn stats(
        &mut self,
        group: Group,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<Vec<StatRow>, StoreError> {
        sqlite::stats(self, group, since, until)
    }
}
