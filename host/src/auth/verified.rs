//! Verified API keys and access tokens kept in memory, so a device's poll (which verifies one
//! every time) skips that query, without weakening revocation. Every change that ends a
//! credential (a revoked key or token, a disabled account, a rotated product key) bumps one
//! row, `auth_epoch`, and drops this process's entries as soon as it commits; every process
//! reads that row a few times a second ([`Auth::follow_revocations`]) and drops its entries
//! when it moved. Entries are served only while that reading succeeds, so a process that
//! cannot see the database's revocations does not trust what it remembers. On SQLite, whose
//! processes share one machine, a change also touches a file beside the database that every
//! hit looks at (one `stat`), so a revocation from the command line holds at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Auth, AuthError, KeyIdentity, TokenIdentity};

/// How often a process reads the epoch: the longest another process's revocation stays
/// unseen here.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Entries are trusted this long after the last successful read of the epoch.
const TRUST_FOR: Duration = Duration::from_secs(1);

/// An entry's lifetime in any case: a safety net, not the way revocations arrive.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);

/// Entries kept at most; past this the cache starts over (a flood of distinct credentials
/// must not grow memory without bound).
const MAX_ENTRIES: usize = 200_000;

pub(super) struct Verified {
    state: Mutex<State>,
    /// The file a change touches on SQLite (`<database>-revoked`).
    signal: Option<std::path::PathBuf>,
    /// Lookups answered from memory, and not, for the metrics.
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What the signal file looked like: its modification time and length, if it exists.
type Signal = Option<(std::time::SystemTime, u64)>;

#[derive(Default)]
struct State {
    /// Bumped by every invalidation: an answer read from the database is kept only if none
    /// happened while it was read, so a revocation committed meanwhile is never hidden.
    generation: u64,
    /// The epoch last read, and until when entries are trusted.
    epoch: Option<i64>,
    trusted_until: Option<Instant>,
    /// The signal file as last seen.
    signal: Signal,
    keys: HashMap<String, (Instant, KeyIdentity)>,
    /// (realm, token hash) -> identity and the token's expiry (Unix milliseconds).
    tokens: HashMap<(String, String), (Instant, TokenIdentity, i64)>,
}

impl State {
    fn trusted(&self) -> bool {
        self.trusted_until.is_some_and(|t| Instant::now() < t)
    }

    fn forget(&mut self) {
        self.generation += 1;
        self.keys.clear();
        self.tokens.clear();
    }
}

fn fresh(at: Instant) -> bool {
    at.elapsed() < ENTRY_TTL
}

impl Verified {
    pub(super) fn new(db: &crate::storage::Db) -> Self {
        let signal = db.sqlite_file().map(|f| {
            let mut name = f.into_os_string();
            name.push("-revoked");
            std::path::PathBuf::from(name)
        });
        Verified {
            state: Default::default(),
            signal,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_signal(&self) -> Signal {
        let meta = std::fs::metadata(self.signal.as_ref()?).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// The state, trusted and with no change signalled since it was last looked at; else
    /// `None`, and a signalled change drops every entry.
    fn trusted_state(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        let signal = self.read_signal();
        let mut s = self.lock();
        if s.signal != signal {
            s.forget();
            s.signal = signal;
            return None;
        }
        s.trusted().then_some(s)
    }

    /// Tell the other processes on this machine's database that credentials ended.
    fn signal_change(&self) {
        if let Some(path) = &self.signal {
            let stamp = format!("{:?}\n", std::time::SystemTime::now());
            if let Err(e) = std::fs::write(path, stamp) {
                tracing::warn!(error = %e, file = %path.display(), "cannot signal a revocation to other processes; they see it within {FOLLOW_EVERY:?}");
            }
        }
    }

    /// The generation to pass back to [`Verified::keep_key`] / [`Verified::keep_token`].
    pub(super) fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub(super) fn key(&self, key_hash: &str) -> Option<KeyIdentity> {
        let found = self.trusted_state().and_then(|s| {
            s.keys
                .get(key_hash)
                .filter(|(at, _)| fresh(*at))
                .map(|(_, id)| id.clone())
        });
        self.counted(found)
    }

    pub(super) fn token(&self, realm: &str, hash: &str, now_millis: i64) -> Option<TokenIdentity> {
        let found = self.trusted_state().and_then(|s| {
            s.tokens
                .get(&(realm.to_string(), hash.to_string()))
                .filter(|(at, _, expires_at)| fresh(*at) && now_millis < *expires_at)
                .map(|(_, id, _)| id.clone())
        });
        self.counted(found)
    }

    fn counted<T>(&self, found: Option<T>) -> Option<T> {
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(super) fn keep_key(&self, generation: u64, key_hash: String, id: KeyIdentity) {
        let mut s = self.lock();
        if s.generation == generation && s.trusted() {
            if s.keys.len() >= MAX_ENTRIES {
                s.keys.clear();
            }
            s.keys.insert(key_hash, (Instant::now(), id));
        }
    }

    pub(super) fn keep_token(
        &self,
        generation: u64,
        realm: &str,
        hash: String,
        id: TokenIdentity,
        expires_at: i64,
    ) {
        let mut s = self.lock();
        if s.generation == generation && s.trusted() {
            if s.tokens.len() >= MAX_ENTRIES {
                s.tokens.clear();
            }
            s.tokens
                .insert((realm.to_string(), hash), (Instant::now(), id, expires_at));
        }
    }

    pub(super) fn forget(&self) {
        self.lock().forget();
    }

    /// The epoch as just read: entries survive only if it did not move.
    fn saw(&self, epoch: i64) {
        let mut s = self.lock();
        if s.epoch != Some(epoch) {
            s.forget();
            s.epoch = Some(epoch);
        }
        s.trusted_until = Some(Instant::now() + TRUST_FOR);
    }

    /// The epoch could not be read: nothing remembered is trusted until it can. Answers
    /// whether it was followed until now.
    fn lost(&self) -> bool {
        let mut s = self.lock();
        s.forget();
        s.trusted_until = None;
        s.epoch.take().is_some()
    }
}

impl Auth {
    /// Credentials died in a change just committed: tell every process (the epoch) and
    /// drop this one's entries at once.
    pub(super) async fn credentials_ended(&self) -> Result<(), AuthError> {
        let bumped = sqlx::query("UPDATE auth_epoch SET value = value + 1 WHERE id = 1")
            .execute(self.db.pool())
            .await;
        self.verified.forget();
        self.verified.signal_change();
        bumped?;
        Ok(())
    }

    /// Read the revocation epoch every [`FOLLOW_EVERY`] until `shutdown`, so verified
    /// credentials can be served from memory while it is followed.
    pub async fn follow_revocations(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let read: Result<i64, sqlx::Error> =
                sqlx::query_scalar("SELECT value FROM auth_epoch WHERE id = 1")
                    .fetch_one(self.db.pool())
                    .await;
            match read {
                Ok(epoch) => self.verified.saw(epoch),
                Err(e) => {
                    if self.verified.lost() {
                        tracing::warn!(error = %e, "cannot read the revocation epoch; verifying every credential against the database until it can");
                    }
                }
            }
        }
        self.verified.lost();
    }

    /// Credential lookups answered from memory and from the database, since start.
    pub fn cache_lookups(&self) -> (u64, u64) {
        (
            self.verified.hits.load(Ordering::Relaxed),
            self.verified.misses.load(Ordering::Relaxed),
        )
    }

    /// Whether verified credentials are served from memory now (the epoch is followed).
    pub fn remembers_credentials(&self) -> bool {
        self.verified.lock().trusted()
    }
}
