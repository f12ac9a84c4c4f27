//! The data plane is bound before this replica knows whether it leads; the engine opens only
//! once it holds the lease (two replicas never open one SQLite file). Until then the serving
//! gate answers 503 and this wrapper is never reached; if it were, it would refuse.

use std::sync::{Arc, OnceLock};

use crate::engine::store::RunRecord;
use crate::engine::{
    BoxFuture, DataPlane, Declaration, Declared, Delivery, EngineError, EnrollmentView, FeedPage,
    FilterMatches, JourneyEngine, NewEvent, StatusSnapshot,
};

#[derive(Default, Clone)]
pub struct LazyDataPlane {
    inner: Arc<OnceLock<Arc<dyn DataPlane>>>,
}

impl LazyDataPlane {
    pub fn set(&self, engine: Arc<dyn DataPlane>) {
        let _ = self.inner.set(engine);
    }

    fn get(&self) -> Result<&Arc<dyn DataPlane>, EngineError> {
        self.inner
            .get()
            .ok_or_else(|| EngineError::Task("this replica does not hold the lease".into()))
    }
}

fn refused<T: Send + 'static>(e: EngineError) -> BoxFuture<Result<T, EngineError>> {
    Box::pin(async move { Err(e) })
}

impl DataPlane for LazyDataPlane {
    fn upsert_profile(
        &self,
        id: &str,
        attributes: serde_json::Value,
    ) -> BoxFuture<Result<(), EngineError>> {
        match self.get() {
            Ok(e) => e.upsert_profile(id, attributes),
            Err(err) => refused(err),
        }
    }

    fn ingest_event(
        &self,
        profile_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> BoxFuture<Result<(), EngineError>> {
        match self.get() {
            Ok(e) => e.ingest_event(profile_id, name, payload),
            Err(err) => refused(err),
        }
    }

    fn list_deliveries(
        &self,
        key: Option<&str>,
        profile_id: Option<&str>,
        limit: Option<i64>,
    ) -> BoxFuture<Result<Vec<Delivery>, EngineError>> {
        match self.get() {
            Ok(e) => e.list_deliveries(key, profile_id, limit),
            Err(err) => refused(err),
        }
    }

    fn ingest_events(&self, events: Vec<NewEvent>) -> BoxFuture<Result<(), EngineError>> {
        match self.get() {
            Ok(e) => e.ingest_events(events),
            Err(err) => refused(err),
        }
    }

    fn run_history(&self, key: &str, limit: i64) -> BoxFuture<Result<Vec<RunRecord>, EngineError>> {
        match self.get() {
            Ok(e) => e.run_history(key, limit),
            Err(err) => refused(err),
        }
    }

    fn enrollments(
        &self,
        key: &str,
        profile: Option<&str>,
        after: i64,
        limit: i64,
    ) -> BoxFuture<Result<Vec<EnrollmentView>, EngineError>> {
        match self.get() {
            Ok(e) => e.enrollments(key, profile, after, limit),
            Err(err) => refused(err),
        }
    }

    fn filter_matches(
        &self,
        key: &str,
        filter: &str,
    ) -> BoxFuture<Result<FilterMatches, EngineError>> {
        match self.get() {
            Ok(e) => e.filter_matches(key, filter),
            Err(err) => refused(err),
        }
    }
}

/// The engine API's side of the same: bound before the lease is held, the engine reached only
/// once this replica opened it.
#[derive(Default, Clone)]
pub struct LazyJourneyEngine {
    inner: Arc<OnceLock<Arc<dyn JourneyEngine>>>,
}

impl LazyJourneyEngine {
    pub fn set(&self, engine: Arc<dyn JourneyEngine>) {
        let _ = self.inner.set(engine);
    }

    fn get(&self) -> Result<&Arc<dyn JourneyEngine>, EngineError> {
        self.inner
            .get()
            .ok_or_else(|| EngineError::Unavailable("this replica does not hold the lease".into()))
    }
}

impl JourneyEngine for LazyJourneyEngine {
    fn declare(
        &self,
        key: &str,
        declaration: Declaration,
    ) -> BoxFuture<Result<Declared, EngineError>> {
        match self.get() {
            Ok(e) => e.declare(key, declaration),
            Err(err) => refused(err),
        }
    }

    fn status(&self, key: &str) -> BoxFuture<Result<Option<StatusSnapshot>, EngineError>> {
        match self.get() {
            Ok(e) => e.status(key),
            Err(err) => refused(err),
        }
    }

    fn delete(&self, key: &str) -> BoxFuture<Result<bool, EngineError>> {
        match self.get() {
            Ok(e) => e.delete(key),
            Err(err) => refused(err),
        }
    }

    fn changes_since(
        &self,
        since: i64,
        wait: std::time::Duration,
    ) -> BoxFuture<Result<FeedPage, EngineError>> {
        match self.get() {
            Ok(e) => e.changes_since(since, wait),
            Err(err) => refused(err),
        }
    }

    fn feed_revision(&self) -> BoxFuture<Result<i64, EngineError>> {
        match self.get() {
            Ok(e) => e.feed_revision(),
            Err(err) => refused(err),
        }
    }

    fn claim_cluster(&self, id: &str) -> BoxFuture<Result<(), EngineError>> {
        match self.get() {
            Ok(e) => e.claim_cluster(id),
            Err(err) => refused(err),
        }
    }
}
