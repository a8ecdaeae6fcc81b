//! Single-statement reads for the device hot path. sqlx runs each SQLite connection on a
//! thread of its own that every statement hops to and back from; on a SQLite file the reads
//! here run on the calling thread instead (rusqlite, same bundled SQLite), bounded in time,
//! and hand back the same `AnyRow`s, so call sites do not know which path answered. Whatever
//! the fast path cannot answer at once goes to the pool; on PostgreSQL every read does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{Null, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sqlx::query::Query;
use sqlx::{Any, Execute};
use sqlx_core::any::{
    AnyArguments, AnyColumn, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind,
};
use sqlx_core::ext::ustr::UStr;

use super::{Backend, Db};

/// How long one read may hold the calling thread (an async runtime worker) before it is
/// interrupted and retried on the pool. A point read takes tens of microseconds; a long
/// listing is better off on sqlx's own thread than stalling every task behind it.
const READ_BUDGET: Duration = Duration::from_millis(2);

/// How many statements' column names a connection remembers (as many as its statement
/// cache holds); SQL built at run time could otherwise grow the map without end.
const REMEMBERED_STATEMENTS: usize = 64;

/// How many SQLite VM instructions run between two looks at the clock.
const PROGRESS_STEPS: i32 = 2_000;

/// The read connections of one SQLite database file, opened on first use.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Reader>>,
    /// How many idle connections are kept; more than the threads that read at once is waste.
    keep: usize,
    closed: AtomicBool,
    /// Reads answered on the calling thread.
    pub(super) answered: AtomicU64,
    /// Reads the fast path handed to the pool (busy file, over budget, or an error to report
    /// in sqlx's own terms). Rare; counted so tests and operators can see it.
    pub(super) fallbacks: AtomicU64,
    /// The clock the connections' deadlines are measured on.
    epoch: Instant,
}

/// One read connection and what it remembers per statement.
struct Reader {
    conn: Connection,
    /// Nanoseconds past `Readers::epoch` after which the running statement is interrupted.
    deadline: Arc<AtomicU64>,
    /// Each statement's column names, shared by every row it returns (as sqlx's rows do).
    columns: HashMap<String, Columns>,
}

#[derive(Clone)]
struct Columns {
    by_name: Arc<sqlx_core::HashMap<UStr, usize>>,
    names: Arc<[UStr]>,
}

/// What the fast path made of a read.
enum Fast {
    Rows(Vec<AnyRow>),
    /// Ask the pool: it waits out a busy file, has no time budget and reports errors as sqlx
    /// errors.
    Pool,
    Closed,
}

impl Readers {
    pub(super) fn new(path: PathBuf, keep: u32) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1) as usize,
            closed: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Refuse further reads and close the idle connections.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let idle = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        drop(idle);
    }

    fn open(&self) -> rusqlite::Result<Reader> {
        // No CREATE: the pool made the file and its schema. Read-write so the WAL index can
        // be used; `query_only` keeps this connection from ever writing.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A busy file is the pool's to wait for, never this thread's.
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(REMEMBERED_STATEMENTS);
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let (watch, epoch) = (deadline.clone(), self.epoch);
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || epoch.elapsed().as_nanos() as u64 > watch.load(Ordering::Relaxed)),
        );
        Ok(Reader {
            conn,
            deadline,
            columns: HashMap::new(),
        })
    }

    /// Run one statement to at most `limit` rows on this thread.
    fn read(&self, sql: &str, args: &[AnyValueKind<'_>], limit: usize) -> Fast {
        if self.closed.load(Ordering::SeqCst) {
            return Fast::Closed;
        }
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut reader = match idle.map(Ok).unwrap_or_else(|| self.open()) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "opening a read connection; reading on the pool");
                return self.to_pool();
            }
        };
        let budget = (self.epoch.elapsed() + READ_BUDGET).as_nanos() as u64;
        reader.deadline.store(budget, Ordering::Relaxed);
        let out = reader.read(sql, args, limit);
        reader.deadline.store(u64::MAX, Ordering::Relaxed);
        // A statement that failed was reset when it dropped; the connection stays usable.
        if let Ok(mut v) = self.idle.lock()
            && v.len() < self.keep
            && !self.closed.load(Ordering::SeqCst)
        {
            v.push(reader);
        }
        match out {
            Ok(rows) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                Fast::Rows(rows)
            }
            Err(e) => {
                tracing::debug!(error = %e, "fast read declined; reading on the pool");
                self.to_pool()
            }
        }
    }

    fn to_pool(&self) -> Fast {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        Fast::Pool
    }
}

/// Why the fast path declined a statement (the pool then runs it).
#[derive(Debug, thiserror::Error)]
enum Decline {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("parameter {0:?} is not ?NNN or $NNN")]
    ParameterName(String),
    #[error("parameter {0} has no bound value")]
    Unbound(usize),
    #[error("a value of a kind this path does not bind")]
    UnknownKind,
    #[error("more than one statement")]
    Several,
    #[error("text that is not UTF-8")]
    NotUtf8(#[from] std::str::Utf8Error),
}

impl Reader {
    fn read(
        &mut self,
        sql: &str,
        args: &[AnyValueKind<'_>],
        limit: usize,
    ) -> Result<Vec<AnyRow>, Decline> {
        // rusqlite prepares only the first statement of a string, where sqlx runs them all
        // (a `;` inside a literal sends a read to the pool too: slower, still right).
        if sql.trim_end().trim_end_matches(';').contains(';') {
            return Err(Decline::Several);
        }
        let mut stmt = self.conn.prepare_cached(sql)?;
        // Bound as sqlx's SQLite driver binds: `?NNN` and `$NNN` name their argument, a bare
        // `?` takes the next one.
        let mut next = 0;
        for param in 1..=stmt.parameter_count() {
            let n = match stmt.parameter_name(param) {
                Some(name) => name
                    .strip_prefix(['?', '$'])
                    .and_then(|d| d.parse::<usize>().ok())
                    .ok_or_else(|| Decline::ParameterName(name.to_string()))?,
                None => {
                    next += 1;
                    next
                }
            };
            let value = n
                .checked_sub(1)
                .and_then(|i| args.get(i))
                .ok_or(Decline::Unbound(n))?;
            match value {
                AnyValueKind::Null(_) => stmt.raw_bind_parameter(param, Null)?,
                AnyValueKind::Bool(b) => stmt.raw_bind_parameter(param, i64::from(*b))?,
                AnyValueKind::SmallInt(i) => stmt.raw_bind_parameter(param, i64::from(*i))?,
                AnyValueKind::Integer(i) => stmt.raw_bind_parameter(param, i64::from(*i))?,
                AnyValueKind::BigInt(i) => stmt.raw_bind_parameter(param, *i)?,
                AnyValueKind::Real(r) => stmt.raw_bind_parameter(param, f64::from(*r))?,
                AnyValueKind::Double(d) => stmt.raw_bind_parameter(param, *d)?,
                AnyValueKind::Text(t) => stmt.raw_bind_parameter(param, t.as_ref())?,
                AnyValueKind::Blob(b) => stmt.raw_bind_parameter(param, b.as_ref())?,
                _ => return Err(Decline::UnknownKind),
            }
        }
        let columns = match self.columns.get(sql) {
            Some(c) => c.clone(),
            None => {
                let names: Arc<[UStr]> = stmt.column_names().into_iter().map(UStr::new).collect();
                let by_name = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), i))
                    .collect();
                let c = Columns {
                    by_name: Arc::new(by_name),
                    names,
                };
                if self.columns.len() >= REMEMBERED_STATEMENTS {
                    self.columns.clear();
                }
                self.columns.insert(sql.to_string(), c.clone());
                c
            }
        };
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next()? else { break };
            out.push(any_row(row, &columns)?);
        }
        Ok(out)
    }
}

/// One row as sqlx's `Any` driver would have built it from SQLite: each value typed by what
/// it holds (integers as `BigInt`, reals as `Double`), not by its column's declared type.
fn any_row(row: &rusqlite::Row<'_>, columns: &Columns) -> Result<AnyRow, Decline> {
    let n = columns.names.len();
    let mut out = AnyRow {
        column_names: columns.by_name.clone(),
        columns: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
    };
    for (i, name) in columns.names.iter().enumerate() {
        let kind = match row.get_ref(i)? {
            ValueRef::Null => AnyValueKind::Null(AnyTypeInfoKind::Null),
            ValueRef::Integer(v) => AnyValueKind::BigInt(v),
            ValueRef::Real(v) => AnyValueKind::Double(v),
            ValueRef::Text(t) => AnyValueKind::Text(Cow::Owned(std::str::from_utf8(t)?.into())),
            ValueRef::Blob(b) => AnyValueKind::Blob(Cow::Owned(b.to_vec())),
        };
        out.columns.push(AnyColumn {
            ordinal: i,
            name: name.clone(),
            type_info: AnyTypeInfo {
                kind: kind_of(&kind),
            },
        });
        out.values.push(AnyValue { kind });
    }
    Ok(out)
}

fn kind_of(v: &AnyValueKind<'_>) -> AnyTypeInfoKind {
    match v {
        AnyValueKind::BigInt(_) => AnyTypeInfoKind::BigInt,
        AnyValueKind::Double(_) => AnyTypeInfoKind::Double,
        AnyValueKind::Text(_) => AnyTypeInfoKind::Text,
        AnyValueKind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}

impl Db {
    /// Reads answered on the calling thread and reads handed to the pool, since start (a
    /// SQLite file only; every PostgreSQL read is a pool read).
    pub fn fast_reads(&self) -> Option<(u64, u64)> {
        let r = self.readers.as_ref()?;
        Some((
            r.answered.load(Ordering::Relaxed),
            r.fallbacks.load(Ordering::Relaxed),
        ))
    }

    /// Up to `limit` rows of a read-only statement: on the calling thread where it can be,
    /// on the pool otherwise.
    async fn read_rows<'q>(
        &self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
        limit: usize,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let (Some(readers), Backend::Sqlite) = (&self.readers, self.backend) else {
            return pooled(query, limit, &self.pool).await;
        };
        let sql = query.sql();
        let args = query
            .take_arguments()
            .map_err(sqlx::Error::Encode)?
            .unwrap_or_default();
        match readers.read(sql, &args.values.0, limit) {
            Fast::Rows(rows) => Ok(rows),
            Fast::Closed => Err(sqlx::Error::PoolClosed),
            Fast::Pool => pooled(sqlx::query_with(sql, args), limit, &self.pool).await,
        }
    }

    /// At most one row of a read-only statement.
    pub async fn read_optional<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        Ok(self.read_rows(query, 1).await?.pop())
    }

    /// Every row of a read-only statement.
    pub async fn read_all<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        self.read_rows(query, usize::MAX).await
    }

    /// Exactly one row of a read-only statement (`RowNotFound` otherwise).
    pub async fn read_one<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<AnyRow, sqlx::Error> {
        self.read_optional(query)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

async fn pooled<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    limit: usize,
    pool: &sqlx::AnyPool,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    if limit == 1 {
        Ok(query.fetch_optional(pool).await?.into_iter().collect())
    } else {
        query.fetch_all(pool).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use sqlx::Row;

    use super::super::Db;

    async fn file_db(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        Db::connect(&url, Some(2)).await.unwrap()
    }

    #[tokio::test]
    async fn reads_answer_as_the_pool_would() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        sqlx::query("CREATE TABLE t (id INTEGER, name TEXT, score REAL, raw BLOB, gone TEXT)")
            .execute(db.pool())
            .await
            .unwrap();
        for (id, name) in [(1i64, "one"), (2, "two"), (3, "three")] {
            sqlx::query("INSERT INTO t (id, name, score, raw) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(name)
                .bind(id as f64 / 2.0)
                .bind(vec![id as u8; 3])
                .execute(db.pool())
                .await
                .unwrap();
        }
        let readers = db
            .readers
            .clone()
            .expect("a SQLite file has read connections");
        // `$2` before `$1`: arguments are bound by their number, not their position.
        let sql =
            "SELECT id, name, score, raw, gone FROM t WHERE name <> $2 AND id >= $1 ORDER BY id";
        let fast = db
            .read_all(sqlx::query(sql).bind(2i64).bind("three"))
            .await
            .unwrap();
        let slow = sqlx::query(sql)
            .bind(2i64)
            .bind("three")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(fast.len(), 1);
        assert_eq!(
            readers.fallbacks.load(Ordering::Relaxed),
            0,
            "answered on this thread"
        );
        for (a, b) in fast.iter().zip(&slow) {
            assert_eq!(a.get::<i64, _>("id"), b.get::<i64, _>("id"));
            assert_eq!(a.get::<i32, _>(0), 2);
            assert_eq!(a.get::<String, _>("name"), b.get::<String, _>("name"));
            assert_eq!(a.get::<f64, _>("score"), b.get::<f64, _>("score"));
            assert_eq!(a.get::<Vec<u8>, _>("raw"), b.get::<Vec<u8>, _>("raw"));
            assert_eq!(a.get::<Option<String>, _>("gone"), None);
            assert_eq!(b.get::<Option<String>, _>("gone"), None);
        }
        // A write committed on the pool is seen by the next read on the same connection.
        sqlx::query("UPDATE t SET name = 'deux' WHERE id = 2")
            .execute(db.pool())
            .await
            .unwrap();
        let row = db
            .read_one(sqlx::query("SELECT name FROM t WHERE id = ?").bind(2i64))
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>(0), "deux");
        assert!(
            db.read_optional(sqlx::query("SELECT name FROM t WHERE id = 9"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            readers.idle.lock().unwrap().len(),
            1,
            "one connection, reused"
        );
        assert_eq!(db.fast_reads(), Some((3, 0)), "all three answered here");
    }

    #[tokio::test]
    async fn what_the_fast_path_declines_the_pool_answers_in_its_own_terms() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let readers = db.readers.clone().unwrap();
        // An error comes back as sqlx reports it.
        let Err(err) = db.read_all(sqlx::query("SELECT nope FROM missing")).await else {
            panic!("a missing table reads")
        };
        assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
        assert_eq!(readers.fallbacks.load(Ordering::Relaxed), 1);
        // A statement past the time budget is interrupted and finished on the pool.
        let long = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
                    SELECT count(*) FROM n";
        let row = db.read_one(sqlx::query(long)).await.unwrap();
        assert_eq!(row.get::<i64, _>(0), 1_000_000);
        assert_eq!(readers.fallbacks.load(Ordering::Relaxed), 2);
        // rusqlite would run only the first of several statements; the pool runs them all.
        let rows = db
            .read_all(sqlx::query("SELECT 1; SELECT 2;"))
            .await
            .unwrap();
        assert!(!rows.is_empty());
        assert_eq!(readers.fallbacks.load(Ordering::Relaxed), 3);
        // The interrupted connection still reads.
        let row = db.read_one(sqlx::query("SELECT 5")).await.unwrap();
        assert_eq!(row.get::<i64, _>(0), 5);
        assert_eq!(readers.fallbacks.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_read_connection_never_writes_and_closing_stops_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(db.pool())
            .await
            .unwrap();
        let readers = db.readers.clone().unwrap();
        let mut reader = readers.open().unwrap();
        assert!(reader.read("INSERT INTO t (v) VALUES (1)", &[], 1).is_err());
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
        db.close().await;
        assert!(matches!(
            db.read_optional(sqlx::query("SELECT v FROM t")).await,
            Err(sqlx::Error::PoolClosed)
        ));
    }

    #[tokio::test]
    async fn in_memory_databases_read_through_the_pool() {
        let db = Db::connect("sqlite::memory:", Some(1)).await.unwrap();
        assert!(db.readers.is_none());
        let row = db.read_one(sqlx::query("SELECT 1")).await.unwrap();
        assert_eq!(sqlx::Row::get::<i64, _>(&row, 0), 1);
    }
}
