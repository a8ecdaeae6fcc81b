//! Single-statement reads for the device hot path, on SQLite without the pool's second trip.
//! Each SQLite connection is a thread that every statement hops to and back from, and sqlx's
//! pool pings a connection whenever it gets it back, so a pooled read costs two hops. Hot
//! reads here use connections of their own instead, kept only while each statement finished
//! cleanly; on PostgreSQL they are ordinary pooled reads.

use std::sync::{Arc, Mutex};

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Connection, Executor};
use tokio::sync::Semaphore;

use super::{Backend, Db};

/// The read connections of one SQLite database, opened on first use.
pub(super) struct Readers {
    url: String,
    idle: Mutex<Vec<AnyConnection>>,
    /// One permit per connection that may exist at once.
    permits: Arc<Semaphore>,
}

impl Readers {
    pub(super) fn new(url: &str, connections: u32) -> Self {
        Readers {
            url: url.to_string(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(connections.max(1) as usize)),
        }
    }

    /// Refuse further reads and close the idle connections (one in use closes when its
    /// statement ends, since it cannot go back).
    pub(super) async fn close(&self) {
        self.permits.close();
        let idle = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for conn in idle {
            let _ = conn.close().await;
        }
    }

    async fn open(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect(&self.url).await?;
        // The same settings as the pool's connections (`Db::connect`); WAL is the file's.
        conn.execute("PRAGMA busy_timeout = 5000").await?;
        conn.execute("PRAGMA foreign_keys = ON").await?;
        Ok(conn)
    }

    /// Run one statement on an idle connection (or a new one). A connection goes back only
    /// when its statement completed: one abandoned midway (its request timed out) or that
    /// failed is closed, since it may still hold a half-read statement.
    async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match idle {
            Some(c) => c,
            None => self.open().await?,
        };
        let out = work(&mut conn).await?;
        if let Ok(mut v) = self.idle.lock()
            && !self.permits.is_closed()
        {
            v.push(conn);
        }
        Ok(out)
    }
}

impl Db {
    /// At most one row of a read-only statement.
    pub async fn read_optional<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        match (&self.readers, self.backend) {
            (Some(r), Backend::Sqlite) => r.run(async |c| query.fetch_optional(c).await).await,
            _ => query.fetch_optional(&self.pool).await,
        }
    }

    /// Every row of a read-only statement.
    pub async fn read_all<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        match (&self.readers, self.backend) {
            (Some(r), Backend::Sqlite) => r.run(async |c| query.fetch_all(c).await).await,
            _ => query.fetch_all(&self.pool).await,
        }
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

#[cfg(test)]
mod tests {
    use super::super::Db;

    #[tokio::test]
    async fn reads_reuse_their_connections_and_stop_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let db = Db::connect(&url, Some(2)).await.unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(db.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (v) VALUES (7)")
            .execute(db.pool())
            .await
            .unwrap();
        let readers = db
            .readers
            .clone()
            .expect("a SQLite file reads on its own connections");
        for _ in 0..3 {
            // A write committed on the pool is seen by the next read.
            let row = db.read_one(sqlx::query("SELECT v FROM t")).await.unwrap();
            assert_eq!(sqlx::Row::get::<i64, _>(&row, 0), 7);
        }
        assert_eq!(
            readers.idle.lock().unwrap().len(),
            1,
            "one connection, reused"
        );
        // A failed statement does not go back.
        assert!(
            db.read_all(sqlx::query("SELECT nope FROM t"))
                .await
                .is_err()
        );
        assert_eq!(readers.idle.lock().unwrap().len(), 0);
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
