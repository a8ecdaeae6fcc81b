//! The database handle every domain module shares: one sqlx `Any` pool over SQLite (default,
//! a WAL-mode file in the data dir) or PostgreSQL (by URL), with the schema migrations of the
//! matching backend embedded in the binary. Modules own their tables; this module owns only
//! the connection and the schema's evolution.

pub mod attributes;
mod reads;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

/// Storage failures, mapped to a 500 (or the dialect's server error) at the edge.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrating schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?} (use sqlite://... or postgres://...)")]
    UnsupportedUrl(String),
}

/// Which SQL backend is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A cloneable handle to the database.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Kept for connections outside the pool (PostgreSQL `LISTEN`); never logged.
    url: std::sync::Arc<str>,
    /// Hot-path read connections outside the pool (SQLite files only; see `reads.rs`).
    readers: Option<std::sync::Arc<reads::Readers>>,
}

impl std::fmt::Debug for Db {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

/// SQLite's default pool: more connections than cores only add threads to switch between
/// (bench `xlink` on 2 cores: 8 served repeat polls faster than 16, 4 or 2).
pub const SQLITE_CONNECTIONS: u32 = 8;

/// PostgreSQL's default pool: statements wait on the network, so more may be in flight.
pub const POSTGRES_CONNECTIONS: u32 = 16;

/// How long a PostgreSQL connection may sit idle and still be handed out without a ping.
const TRUST_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connect and bring the schema up to date, with `connections` in the pool [default:
    /// [`SQLITE_CONNECTIONS`] on SQLite, [`POSTGRES_CONNECTIONS`] on PostgreSQL].
    pub async fn connect(url: &str, connections: Option<u32>) -> Result<Self, StorageError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StorageError::UnsupportedUrl(url.to_string()));
        };
        let connections = connections.unwrap_or(match backend {
            Backend::Sqlite => SQLITE_CONNECTIONS,
            Backend::Postgres => POSTGRES_CONNECTIONS,
        });
        let mut opts = AnyPoolOptions::new().max_connections(connections.max(1));
        if backend == Backend::Sqlite {
            // Each SQLite connection is a thread of its own that every statement hops to and
            // back from; a ping before each checkout doubled those hops, and a local file
            // has no connection to go stale (bench `xlink`: repeat polls +10%).
            opts = opts.test_before_acquire(false).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers proceed during a write; the busy timeout makes
                    // concurrent writers wait for each other instead of failing.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        } else {
            // A network connection can go stale (a restarted server, a middlebox's idle
            // timeout), so sqlx pings each one before handing it out: a round trip per
            // statement under load. Only a connection idle for a while is pinged, as pools
            // commonly do (HikariCP's alive-bypass window); one that fails is dropped and
            // another taken.
            opts = opts
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= TRUST_IDLE_FOR {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                });
        }
        let pool = opts.connect(url).await?;
        match backend {
            Backend::Sqlite => SQLITE.run(&pool).await?,
            Backend::Postgres => POSTGRES.run(&pool).await?,
        }
        let mut db = Db {
            pool,
            backend,
            url: url.into(),
            readers: None,
        };
        // An in-memory database exists only inside its own connections.
        if let Some(file) = db.sqlite_file() {
            db.readers = Some(std::sync::Arc::new(reads::Readers::new(file, connections)));
        }
        Ok(db)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database's file, if it has one: the processes sharing it share a machine.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        sqlite_file(&self.url)
    }

    /// Whether an error is a unique-constraint violation (a conflict, not a failure).
    pub fn is_unique_violation(err: &sqlx::Error) -> bool {
        match err {
            sqlx::Error::Database(db) => {
                db.kind() == sqlx::error::ErrorKind::UniqueViolation
                    || db.message().contains("UNIQUE constraint failed")
                    || db.code().as_deref() == Some("23505")
            }
            _ => false,
        }
    }

    pub async fn close(&self) {
        if let Some(r) = &self.readers {
            r.close();
        }
        self.pool.close().await;
    }
}

/// The file a `sqlite:` URL names, read as sqlx reads it (its scheme prefixes trimmed, the
/// path percent-decoded, `:memory:` and `mode=memory` in memory). The read connections and
/// the revocation signal open this path, so it must be the very file the pool opened: a
/// URL read differently would have them read another database, or none. `None` for a
/// PostgreSQL URL.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = form_urlencoded::parse(params.as_bytes())
        .any(|(key, value)| key == "mode" && value == "memory");
    if path.is_empty() || path == ":memory:" || in_memory {
        return None;
    }
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    Some(path.as_ref().into())
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;
    use std::path::PathBuf;

    #[test]
    fn sqlite_urls_name_the_file_sqlx_opens() {
        assert_eq!(
            sqlite_file("sqlite://data/ota.db"),
            Some(PathBuf::from("data/ota.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:ota.db?mode=rwc"),
            Some(PathBuf::from("ota.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/ota.db"),
            Some(PathBuf::from("/var/lib/ota.db"))
        );
        // Percent-encoded, as a `?` or `#` in a file name must be.
        assert_eq!(
            sqlite_file("sqlite://my%20data/a%3Fb.db?mode=rwc"),
            Some(PathBuf::from("my data/a?b.db"))
        );
        for none in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite:ota.db?cache=shared&mode=memory",
            "sqlite://",
            "sqlite://bad%FF.db",
            "postgres://ota@localhost/ota",
        ] {
            assert_eq!(sqlite_file(none), None, "{none}");
        }
    }
}
