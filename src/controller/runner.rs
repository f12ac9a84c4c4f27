//! `journey-operator run`: the controller with the engine embedded in the same process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::reconciler::{self, Context, ControllerConfig};
use crate::api::journey::Journey;
use crate::engine::{Engine, EngineConfig, EngineError, JourneyEngine, SqliteStore, SystemClock};

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The embedded engine's SQLite file lives here.
    pub data_dir: PathBuf,
    /// Watch only this namespace.
    pub namespace: Option<String>,
    pub controller: ControllerConfig,
    /// How often the engine's scheduler looks for due work when nothing woke it.
    pub scheduler_idle: Duration,
    /// Reporting instance for events (pod name).
    pub instance: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("connecting to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("opening the engine in {dir}: {source}")]
    Engine {
        dir: String,
        #[source]
        source: EngineError,
    },
    #[error("creating the data directory {dir}: {source}")]
    DataDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// Removes what the controller never reads before objects enter the watch cache.
fn strip_for_cache(journey: &mut Journey) {
    journey.managed_fields_mut().clear();
    journey
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Engine change notifications as reconcile triggers for the journeys they name.
fn engine_triggers(
    engine: &dyn JourneyEngine,
) -> impl futures::Stream<Item = ObjectRef<Journey>> + Send + 'static {
    let receiver = engine.changes();
    futures::stream::unfold(receiver, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(key) => {
                    if let Some((ns, name)) = key.split_once('/') {
                        return Some((ObjectRef::new(name).within(ns), rx));
                    }
                }
                // The periodic resync catches what a lagging receiver missed.
                Err(RecvError::Lagged(missed)) => warn!(missed, "engine change stream lagged"),
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| RunError::DataDir {
        dir: config.data_dir.display().to_string(),
        source,
    })?;
    let db = config.data_dir.join("engine.db");
    let engine_error = |source| RunError::Engine {
        dir: config.data_dir.display().to_string(),
        source,
    };
    let store = SqliteStore::open(&db).map_err(engine_error)?;
    let engine =
        Engine::new(store, Arc::new(SystemClock), EngineConfig::default()).map_err(engine_error)?;
    let scheduler = engine.spawn_scheduler(config.scheduler_idle);
    info!(db = %db.display(), "engine open");
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    warn!(%e, "no SIGTERM handler; stopping on Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let metrics = Arc::new(super::metrics::Metrics::default());
    run_controller(client, Arc::new(engine), &config, metrics, shutdown).await;
    scheduler.abort();
    info!("controller stopped");
    Ok(())
}

/// Runs the controller against `engine` until `shutdown` completes. Tests call this directly
/// with an engine they also feed.
pub async fn run_controller(
    client: Client,
    engine: Arc<dyn JourneyEngine>,
    config: &RunConfig,
    metrics: Arc<super::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<Journey> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "journey-operator".into(),
            instance: config.instance.clone(),
        },
    );
    let ctx = Arc::new(Context::new(
        client,
        engine.clone(),
        recorder,
        config.controller.clone(),
        metrics,
    ));
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip_for_cache)
        .reflect(writer)
        .applied_objects();
    info!(
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        "controller starting"
    );
    Controller::for_stream(stream, reader)
        .reconcile_on(engine_triggers(engine.as_ref()))
        .graceful_shutdown_on(shutdown)
        .run(reconciler::reconcile, reconciler::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(%e, "reconcile loop");
            }
        })
        .await;
}
