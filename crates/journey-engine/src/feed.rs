//! The change feed: every journey whose status changed after a revision, and why.
//!
//! The revision is one engine-wide counter, advanced inside the transaction that makes the
//! change, so a change is durable exactly when it is in the feed. A reader that keeps the last
//! revision it saw and asks again from there misses nothing, across its own restarts and the
//! engine's. Deleted journeys stay in the feed as tombstones for [`TOMBSTONES_KEPT_MS`]; a
//! cursor older than that (or newer than the engine has ever been: a restored database) gets
//! [`super::EngineError::ResyncRequired`] and must list everything again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::BoxFuture;
use super::clock::{HOUR, Millis};
use super::core::Engine;
use super::error::{EngineError, Result};
use super::store::Store;

/// How long a deletion stays in the feed.
pub const TOMBSTONES_KEPT_MS: Millis = 24 * HOUR;

/// Most changes one page carries; the page's `revision` says where to continue.
pub const PAGE_LIMIT: i64 = 1_000;

pub use journey_store::feed::{ChangeCause, FeedChange};

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedPage {
    /// Oldest first; each journey at most once, at its latest change.
    pub changes: Vec<FeedChange>,
    /// Where to continue from: everything up to this revision has been returned.
    pub revision: i64,
}

impl<S: Store> Engine<S> {
    /// The changes after `since`, at most [`PAGE_LIMIT`].
    pub fn changes_since_blocking(&self, since: i64) -> Result<FeedPage> {
        self.read(|tx| {
            let (floor, head) = tx.feed_bounds()?;
            if since < floor || since > head {
                return Err(EngineError::ResyncRequired {
                    since,
                    oldest: floor,
                    head,
                });
            }
            let changes = tx.changes_since(since, PAGE_LIMIT)?;
            let revision = if changes.len() as i64 == PAGE_LIMIT {
                changes.last().map_or(head, |c| c.revision)
            } else {
                head
            };
            Ok(FeedPage { changes, revision })
        })
    }

    /// Binds the engine to the cluster its controllers declare: the first id claimed is kept,
    /// and any other is refused with [`EngineError::WrongCluster`].
    pub fn claim_cluster_blocking(&self, id: &str) -> Result<()> {
        self.write_batch(|tx| match tx.engine_meta("cluster_id")? {
            None => Ok(tx.set_engine_meta("cluster_id", id)?),
            Some(serving) if serving == id => Ok(()),
            Some(serving) => Err(EngineError::WrongCluster {
                serving,
                asked: id.to_string(),
            }),
        })
    }

    /// The feed's current revision: a reader that has just listed everything starts here.
    pub fn feed_revision_blocking(&self) -> Result<i64> {
        self.read(|tx| Ok(tx.feed_bounds()?.1))
    }

    /// Long poll: the changes after `since`, waiting up to `wait` for the first one.
    pub fn wait_for_changes(&self, since: i64, wait: Duration) -> BoxFuture<Result<FeedPage>> {
        let engine = self.clone();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                // Subscribed before reading, so a change committed in between wakes us.
                let mut woken = engine.subscribe();
                let e = engine.clone();
                let page = tokio::task::spawn_blocking(move || e.changes_since_blocking(since))
                    .await
                    .map_err(|e| EngineError::Task(e.to_string()))??;
                if !page.changes.is_empty() {
                    return Ok(page);
                }
                tokio::select! {
                    _ = woken.recv() => {}
                    _ = tokio::time::sleep_until(deadline) => return Ok(page),
                }
            }
        })
    }
}
