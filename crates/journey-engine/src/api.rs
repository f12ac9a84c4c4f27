//! The async API the controller (and later the HTTP data plane) uses.
//!
//! Both traits are object safe: every method returns a boxed `'static`
//! future ([`BoxFuture`]), so the controller can hold an
//! `Arc<dyn JourneyEngine>` and swap the SQLite-backed engine for a
//! PostgreSQL-backed one (or a fake in tests) without generics. The futures
//! run the synchronous store work on tokio's blocking pool.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::core::{Engine, EnrollmentView};
use super::declare::{Declaration, Declared};
use super::error::{EngineError, Result};
use super::feed::FeedPage;
use super::lifecycle::{FilterMatches, StatusSnapshot};
use super::store::{Delivery, RunRecord, Store};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub use super::feed::ChangeCause;

/// One notification of the change stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The journey's key.
    pub key: String,
    pub cause: ChangeCause,
}

/// Control-plane API used by the controller. Journeys are identified by a key
/// (the operator uses `"namespace/name"`).
pub trait JourneyEngine: Send + Sync {
    /// Declares the journey (definition, state and request tokens) in one transaction and
    /// answers its status: the one call a reconcile makes when something differs.
    fn declare(&self, key: &str, declaration: Declaration) -> BoxFuture<Result<Declared>>;
    /// Status snapshot, or `None` when the engine does not know the key.
    fn status(&self, key: &str) -> BoxFuture<Result<Option<StatusSnapshot>>>;
    /// Stops the journey (nothing more is sent) and removes it with its data; `false` when
    /// the engine did not know it.
    fn delete(&self, key: &str) -> BoxFuture<Result<bool>>;
    /// The change feed after revision `since`, waiting up to `wait` for the first change
    /// (`crate::feed`). A cursor the feed no longer covers gets `EngineError::ResyncRequired`.
    fn changes_since(&self, since: i64, wait: Duration) -> BoxFuture<Result<FeedPage>>;
    /// The feed's current revision.
    fn feed_revision(&self) -> BoxFuture<Result<i64>>;
    /// Binds the engine to one cluster (`EngineError::WrongCluster` when it serves another).
    fn claim_cluster(&self, id: &str) -> BoxFuture<Result<()>>;
}

/// One event to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub profile_id: String,
    pub name: String,
    pub payload: serde_json::Value,
}

/// Data-plane API.
pub trait DataPlane: Send + Sync {
    /// Ingests the events in order in one transaction: all, or none when one fails.
    fn ingest_events(&self, events: Vec<NewEvent>) -> BoxFuture<Result<()>>;
    fn upsert_profile(&self, id: &str, attributes: serde_json::Value) -> BoxFuture<Result<()>>;
    fn ingest_event(
        &self,
        profile_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> BoxFuture<Result<()>>;
    fn list_deliveries(
        &self,
        key: Option<&str>,
        profile_id: Option<&str>,
        limit: Option<i64>,
    ) -> BoxFuture<Result<Vec<Delivery>>>;
    fn run_history(&self, key: &str, limit: i64) -> BoxFuture<Result<Vec<RunRecord>>>;
    /// A page of a journey's enrollments after enrollment id `after` (only `profile`'s when
    /// given): where each profile is in the journey.
    fn enrollments(
        &self,
        key: &str,
        profile: Option<&str>,
        after: i64,
        limit: i64,
    ) -> BoxFuture<Result<Vec<EnrollmentView>>>;
    /// How many in-flight profiles a candidate global filter matches right now (read-only).
    fn filter_matches(&self, key: &str, filter: &str) -> BoxFuture<Result<FilterMatches>>;
}

fn blocking<T, F>(f: F) -> BoxFuture<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    })
}

impl<S: Store> JourneyEngine for Engine<S> {
    fn declare(&self, key: &str, declaration: Declaration) -> BoxFuture<Result<Declared>> {
        let (e, k) = (self.clone(), key.to_string());
        blocking(move || e.declare_blocking(&k, &declaration))
    }
    fn status(&self, key: &str) -> BoxFuture<Result<Option<StatusSnapshot>>> {
        let (e, k) = (self.clone(), key.to_string());
        blocking(move || e.status_blocking(&k))
    }
    fn delete(&self, key: &str) -> BoxFuture<Result<bool>> {
        let (e, k) = (self.clone(), key.to_string());
        blocking(move || e.stop_and_delete_blocking(&k))
    }
    fn changes_since(&self, since: i64, wait: Duration) -> BoxFuture<Result<FeedPage>> {
        self.wait_for_changes(since, wait)
    }
    fn feed_revision(&self) -> BoxFuture<Result<i64>> {
        let e = self.clone();
        blocking(move || e.feed_revision_blocking())
    }
    fn claim_cluster(&self, id: &str) -> BoxFuture<Result<()>> {
        let (e, id) = (self.clone(), id.to_string());
        blocking(move || e.claim_cluster_blocking(&id))
    }
}

impl<S: Store> DataPlane for Engine<S> {
    fn upsert_profile(&self, id: &str, attributes: serde_json::Value) -> BoxFuture<Result<()>> {
        let (e, id) = (self.clone(), id.to_string());
        blocking(move || e.upsert_profile_blocking(&id, attributes))
    }
    fn ingest_event(
        &self,
        profile_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> BoxFuture<Result<()>> {
        let (e, p, n) = (self.clone(), profile_id.to_string(), name.to_string());
        blocking(move || e.ingest_event_blocking(&p, &n, payload))
    }
    fn list_deliveries(
        &self,
        key: Option<&str>,
        profile_id: Option<&str>,
        limit: Option<i64>,
    ) -> BoxFuture<Result<Vec<Delivery>>> {
        let (e, k, p) = (
            self.clone(),
            key.map(str::to_string),
            profile_id.map(str::to_string),
        );
        blocking(move || e.list_deliveries_blocking(k.as_deref(), p.as_deref(), limit))
    }
    fn run_history(&self, key: &str, limit: i64) -> BoxFuture<Result<Vec<RunRecord>>> {
        let (e, k) = (self.clone(), key.to_string());
        blocking(move || e.run_history_blocking(&k, limit))
    }
    fn enrollments(
        &self,
        key: &str,
        profile: Option<&str>,
        after: i64,
        limit: i64,
    ) -> BoxFuture<Result<Vec<EnrollmentView>>> {
        let (e, k, p) = (self.clone(), key.to_string(), profile.map(str::to_string));
        blocking(move || e.enrollments_page_blocking(&k, p.as_deref(), after, limit))
    }
    fn filter_matches(&self, key: &str, filter: &str) -> BoxFuture<Result<FilterMatches>> {
        let (e, k, f) = (self.clone(), key.to_string(), filter.to_string());
        blocking(move || e.filter_matches_blocking(&k, &f))
    }
    fn ingest_events(&self, events: Vec<NewEvent>) -> BoxFuture<Result<()>> {
        let e = self.clone();
        blocking(move || e.ingest_events_blocking(&events))
    }
}

impl<S: Store> Engine<S> {
    /// Spawns the background scheduler: ticks whenever woken by a mutation or
    /// every `idle_interval`, until the handle is aborted. Use with a real
    /// clock; tests drive [`Engine::tick`] by hand with a virtual clock.
    pub fn spawn_scheduler(&self, idle_interval: Duration) -> JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                let e = engine.clone();
                let r = tokio::task::spawn_blocking(move || e.tick()).await;
                let busy = match r {
                    Ok(Ok(rep)) => !rep.is_idle(),
                    Ok(Err(err)) => {
                        tracing::error!(%err, "scheduler tick failed");
                        false
                    }
                    Err(err) => {
                        tracing::error!(%err, "scheduler task failed");
                        false
                    }
                };
                if !busy {
                    tokio::select! {
                        _ = engine.inner.wake.notified() => {}
                        _ = tokio::time::sleep(idle_interval) => {}
                    }
                }
            }
        })
    }
}
