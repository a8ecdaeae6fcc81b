//! The change feed that keeps every replica's active-campaign cache (running campaigns and
//! their attributes) honest. A replica that changes a product's campaigns drops its own
//! cache entries and, on PostgreSQL, announces the product on the `ota_campaigns` channel
//! (`NOTIFY`); every replica follows that channel and drops them too. While a replica follows the feed its entries may live long (they are
//! exact); without a feed (SQLite, or while reconnecting) they live only [`SHORT_TTL`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::Rollout;
use crate::storage::Backend;

/// The PostgreSQL channel changes are announced on.
pub const CHANNEL: &str = "ota_campaigns";

/// Entry lifetime without a feed: how stale another replica's change may look.
pub const SHORT_TTL: Duration = Duration::from_secs(2);

/// Entry lifetime while the feed is followed: a safety net only.
pub const LONG_TTL: Duration = Duration::from_secs(60);

/// Whether this process currently follows the feed.
#[derive(Default)]
pub struct Following(AtomicBool);

impl Following {
    pub fn ttl(&self) -> Duration {
        if self.0.load(Ordering::Acquire) {
            LONG_TTL
        } else {
            SHORT_TTL
        }
    }

    fn set(&self, on: bool) {
        self.0.store(on, Ordering::Release);
    }
}

impl Rollout {
    /// A product's active campaigns changed here: drop the local entry and tell the others.
    /// `None` means every product (a scheduler pass that touched many).
    pub(crate) async fn changed(&self, product_id: Option<i64>) {
        self.forget(product_id);
        if self.db.backend() == Backend::Postgres {
            let payload = product_id.map_or_else(|| "*".to_string(), |p| p.to_string());
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(self.db.pool())
                .await;
            if let Err(e) = sent {
                // Others still see the change within their safety-net lifetime.
                tracing::warn!(error = %e, "could not announce a campaign change");
            }
        }
    }

    /// Whether this process currently follows other replicas' announcements.
    pub fn follows_changes(&self) -> bool {
        self.following.0.load(Ordering::Acquire)
    }

    fn forget(&self, product_id: Option<i64>) {
        if let Ok(mut m) = self.active.0.lock() {
            let of_it = |product: &i64| product_id.is_none_or(|p| p == *product);
            m.lists.forget(|product, _| of_it(product));
            m.attributes.forget(|_, (product, _)| of_it(product));
        }
    }

    /// Follow other replicas' announcements until `shutdown` (PostgreSQL only; returns at
    /// once on SQLite). Whenever the connection is lost, everything cached is dropped, since
    /// announcements may have been missed, and short lifetimes apply until it is back.
    pub async fn follow_changes(&self, shutdown: CancellationToken) {
        if self.db.backend() != Backend::Postgres {
            return;
        }
        while !shutdown.is_cancelled() {
            match self.listen(&shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    self.following.set(false);
                    self.forget(None);
                    tracing::warn!(error = %e, "campaign change feed lost; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        self.following.set(false);
    }

    async fn listen(&self, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect(self.db.url()).await?;
        listener.listen(CHANNEL).await?;
        // Anything cached before listening may have missed a change.
        self.forget(None);
        self.following.set(true);
        loop {
            let note = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                n = listener.try_recv() => n?,
            };
            match note {
                Some(note) => self.forget(note.payload().parse::<i64>().ok()),
                // The connection dropped (the listener reconnects on the next call):
                // announcements may have been missed meanwhile.
                None => {
                    self.following.set(false);
                    self.forget(None);
                    listener.listen(CHANNEL).await?;
                    self.following.set(true);
                }
            }
        }
    }
}
