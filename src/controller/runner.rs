//! `journey-operator run`: the controller with the engine embedded in the same process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;

use super::cache::CachedJourney;
use super::events::{EventRecorder, Reporter};
use super::hold_status::{self, HoldContext};
use super::holds::HoldIndex;
use super::lazy_engine::{LazyDataPlane, LazyJourneyEngine};
use super::reconciler::{self, Context, ControllerConfig};
use super::webhooks::{HttpTransport, spawn_sender};
use super::written::WrittenStatuses;
use crate::api::hold::{ClusterJourneyHold, JourneyHold};
use crate::dataplane::{DataPlaneConfig, DataPlaneError, DataPlaneServer};
use crate::engine::DestinationConfig;
use crate::engine::SqliteOptions;
use crate::engine::webhook::CredentialError;
use crate::engine::{
    ChangeCause, Engine, EngineConfig, EngineError, FeedChange, JourneyEngine, SqliteStore,
    SystemClock,
};

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The embedded engine's SQLite file lives here.
    pub data_dir: PathBuf,
    /// The embedded engine's SQLite page cache per connection (two connections), in MiB.
    pub engine_cache_mib: u32,
    /// Watch only this namespace.
    pub namespace: Option<String>,
    pub controller: ControllerConfig,
    /// How often the engine's scheduler looks for due work when nothing woke it.
    pub scheduler_idle: Duration,
    /// How often the engine's gauges are read for `/metrics` (`None`: never).
    pub engine_metrics_refresh: Option<Duration>,
    /// Reporting instance for events (pod name).
    pub instance: Option<String>,
    /// `/healthz`, `/readyz` and `/metrics` are served here.
    pub ops_addr: Option<SocketAddr>,
    /// The engine's data plane over HTTP; `None` serves none.
    pub data_plane: Option<DataPlaneConfig>,
    /// Leader election on a Lease; `None` runs as the only writer.
    pub leader: Option<LeaderConfig>,
    /// The named webhook destinations journeys may send to.
    pub destinations: DestinationConfig,
    /// The v1 engine API over the embedded engine; `None` serves none.
    pub engine_api: Option<crate::engine_api::EngineApiConfig>,
    /// Remote mode: the engine is a separate `journey-operator engine` reached over its API;
    /// nothing is embedded (no SQLite, no data plane, no engine API here).
    pub remote: Option<journey_engine_api::ClientConfig>,
}

#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    /// Seconds a lease stays valid without renewal.
    pub duration: u64,
    /// Seconds before expiry the holder renews.
    pub grace: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("connecting to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("no Kubernetes configuration: kubeconfig: {kubeconfig}; in-cluster: {in_cluster}")]
    NoConfig {
        kubeconfig: kube::config::KubeconfigError,
        in_cluster: kube::config::InClusterError,
    },
    #[error("opening the engine in {dir}: {source}")]
    Engine {
        dir: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error("creating the data directory {dir}: {source}")]
    DataDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the data plane: {0}")]
    DataPlane(#[from] DataPlaneError),
    #[error("serving the operational endpoints on {addr}: {source}")]
    Ops {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Lease(String),
    #[error("the engine API: {0}")]
    EngineApi(String),
    #[error("the webhook HTTP client: {0}")]
    Webhooks(String),
    #[error("lost the leader lease; exiting so that only one replica ever writes")]
    LeadershipLost,
}

/// Reconciles in flight at once. kube-runtime's default is unbounded: on a cold start with
/// thousands of journeys every reconcile sends its finalizer patch at the same moment, the
/// apiserver answers most of them with 504 after ~34 s, and each failure backs off
/// exponentially (hack/bench-controller.sh measured under 1 journey/s that way on 2 cores).
const MAX_CONCURRENT_RECONCILES: u16 = 16;

/// What a reconcile acts on besides the engine: the spec (`generation`), deletion, finalizers,
/// the labels (holds select by them) and the `journey.dev/` request annotations. Watch events that change none of them — above
/// all the echo of the controller's own status writes — do not start a reconcile; the
/// periodic resync still re-checks the status of every journey.
pub(crate) fn reconcile_inputs(journey: &CachedJourney) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    journey.meta().generation.hash(&mut hasher);
    journey
        .meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond())
        .hash(&mut hasher);
    journey.meta().finalizers.hash(&mut hasher);
    journey.meta().labels.hash(&mut hasher);
    journey
        .annotations()
        .iter()
        .filter(|(k, _)| k.starts_with("journey.dev/"))
        .for_each(|kv| kv.hash(&mut hasher));
    Some(hasher.finish())
}

/// How long one long poll of the change feed waits for a change.
const FEED_WAIT: Duration = Duration::from_secs(30);

/// The engine's change feed as reconcile triggers for the journeys it names, from the feed's
/// revision when the controller starts (the watch's initial list reconciles everything before
/// that). The cursor survives an engine that is down or restarting: the controller continues
/// where it stopped and misses nothing. A cursor the feed no longer covers asks `resync` to
/// reconcile every journey, then continues from the feed's head.
///
/// Changes made by a command are left out: only reconciles send commands, and a reconcile
/// reads the engine's answer to its own declaration, so a trigger would only repeat it.
fn engine_triggers(
    engine: Arc<dyn JourneyEngine>,
    resync: futures::channel::mpsc::UnboundedSender<()>,
) -> impl futures::Stream<Item = ObjectRef<CachedJourney>> + Send + 'static {
    struct Feed {
        engine: Arc<dyn JourneyEngine>,
        cursor: Option<i64>,
        pending: std::collections::VecDeque<ObjectRef<CachedJourney>>,
        failures: u32,
        resync: futures::channel::mpsc::UnboundedSender<()>,
    }
    let feed = Feed {
        engine,
        cursor: None,
        pending: Default::default(),
        failures: 0,
        resync,
    };
    futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(next) = feed.pending.pop_front() {
                return Some((next, feed));
            }
            let result = match feed.cursor {
                None => feed.engine.feed_revision().await.map(|head| {
                    feed.cursor = Some(head);
                }),
                Some(since) => match feed.engine.changes_since(since, FEED_WAIT).await {
                    Ok(page) => {
                        feed.cursor = Some(page.revision);
                        feed.pending
                            .extend(page.changes.iter().filter_map(trigger_for));
                        Ok(())
                    }
                    Err(e @ EngineError::ResyncRequired { .. }) => {
                        warn!(%e, "engine change feed: reconciling every journey");
                        feed.cursor = None;
                        if feed.resync.unbounded_send(()).is_err() {
                            return None;
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(()) => feed.failures = 0,
                Err(e) => {
                    feed.failures = feed.failures.saturating_add(1);
                    let delay = Duration::from_millis(500 << feed.failures.min(6));
                    warn!(%e, retry_in = ?delay, "engine change feed unavailable");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    })
}

fn trigger_for(change: &FeedChange) -> Option<ObjectRef<CachedJourney>> {
    if change.cause == ChangeCause::Command {
        return None;
    }
    let (ns, name) = change.key.split_once('/')?;
    Some(ObjectRef::new(name).within(ns))
}

pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
}

/// Waits until this replica holds the lease; returns a receiver that reports losing it.
async fn acquire_lease(
    client: &Client,
    leader: &LeaderConfig,
) -> Result<watch::Receiver<bool>, RunError> {
    let manager = LeaseManagerBuilder::new(client.clone(), leader.lease_name.clone())
        .with_namespace(leader.namespace.clone())
        .with_identity(leader.identity.clone())
        .with_duration(leader.duration)
        .with_grace(leader.grace)
        .build()
        .await
        .map_err(|e| RunError::Lease(e.to_string()))?;
    let (mut rx, _task) = manager.watch().await;
    info!(lease = %leader.lease_name, identity = %leader.identity, "standby: waiting for the leader lease");
    while !*rx.borrow_and_update() {
        rx.changed()
            .await
            .map_err(|_| RunError::Lease("lease manager stopped".into()))?;
    }
    info!(lease = %leader.lease_name, "leader: holding the lease");
    Ok(rx)
}

/// The apiserver client as `Client::try_default` infers it (a kubeconfig, else the pod's
/// ServiceAccount), logging which one: an operator that picked up a stray kubeconfig would act
/// with another identity than the one its RBAC was written for.
async fn connect() -> Result<Client, RunError> {
    let (mut config, source) =
        match kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default()).await {
            Ok(config) => (config, "kubeconfig"),
            Err(kubeconfig) => match kube::Config::incluster() {
                Ok(config) => (config, "in-cluster"),
                Err(in_cluster) => {
                    return Err(RunError::NoConfig {
                        kubeconfig,
                        in_cluster,
                    });
                }
            },
        };
    config.apply_debug_overrides();
    info!(source, cluster_url = %config.cluster_url, "connecting to the apiserver");
    Ok(Client::try_from(config)?)
}

pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let client = connect().await?;
    let metrics = Arc::new(super::metrics::Metrics::default());
    metrics.set_engine_mode(if config.remote.is_some() {
        "remote"
    } else {
        "embedded"
    });
    let (serving_tx, serving_rx) = watch::channel(false);
    let stop = CancellationToken::new();

    if let Some(addr) = config.ops_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Ops { addr, source })?;
        let ops = super::ops::router(metrics.clone(), serving_rx.clone());
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, ops)
                .with_graceful_shutdown(stopped)
                .await
            {
                warn!(%e, "operational endpoints stopped");
            }
        });
        info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    let lazy = LazyDataPlane::default();
    let lazy_engine = LazyJourneyEngine::default();
    if config.remote.is_none()
        && let Some(api) = &config.engine_api
    {
        let api = crate::engine_api::EngineApiConfig {
            metrics: Some(metrics.clone()),
            ..api.clone()
        };
        let server = crate::engine_api::EngineApiServer::bind(
            &api,
            Arc::new(lazy_engine.clone()),
            serving_rx.clone(),
        )
        .await
        .map_err(|e| RunError::EngineApi(e.to_string()))?;
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(e) = server.serve(stopped).await {
                warn!(%e, "engine API stopped");
            }
        });
    }
    if let Some(dp) = config
        .data_plane
        .as_ref()
        .filter(|_| config.remote.is_none())
    {
        let dp = crate::dataplane::DataPlaneConfig {
            metrics: Some(metrics.clone()),
            ..dp.clone()
        };
        let server = DataPlaneServer::bind(&dp, Arc::new(lazy.clone()), serving_rx.clone()).await?;
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(e) = server.serve(stopped).await {
                warn!(%e, "data plane stopped");
            }
        });
    }

    let lease = match &config.leader {
        Some(leader) => {
            tokio::select! {
                held = acquire_lease(&client, leader) => Some(held?),
                _ = shutdown_signal() => {
                    stop.cancel();
                    return Ok(());
                }
            }
        }
        None => None,
    };

    let (engine, background): (Arc<dyn JourneyEngine>, Vec<tokio::task::JoinHandle<()>>) =
        match &config.remote {
            Some(remote) => {
                crate::tls::ensure_crypto_provider();
                let client = journey_engine_api::EngineClient::new(remote)
                    .map_err(|e| RunError::EngineApi(e.to_string()))?;
                let _ = serving_tx.send(true);
                info!(engine = %remote.url, "remote engine; reconciling");
                (Arc::new(client), Vec::new())
            }
            None => {
                let setup = EngineSetup {
                    data_dir: config.data_dir.clone(),
                    cache_mib: config.engine_cache_mib,
                    destinations: config.destinations.clone(),
                    scheduler_idle: Some(config.scheduler_idle),
                    engine_metrics_refresh: config.engine_metrics_refresh,
                };
                let (failures, failed) = tokio::sync::mpsc::unbounded_channel();
                let (engine, mut tasks) =
                    open_engine(&setup, Arc::new(SystemClock), &metrics, Some(failures))?;
                tasks.push(spawn_credential_events(client.clone(), &config, failed));
                lazy.set(Arc::new(engine.clone()));
                lazy_engine.set(Arc::new(engine.clone()));
                let _ = serving_tx.send(true);
                (Arc::new(engine), tasks)
            }
        };

    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lost_flag = lost.clone();
    let shutdown = async move {
        match lease {
            Some(mut rx) => {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = async {
                        while rx.changed().await.is_ok() {
                            if !*rx.borrow() { break; }
                        }
                    } => {
                        lost_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
            None => shutdown_signal().await,
        }
    };
    run_controller(client, engine, &config, metrics, shutdown).await;
    let _ = serving_tx.send(false);
    for task in background {
        task.abort();
    }
    stop.cancel();
    if lost.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(RunError::LeadershipLost);
    }
    info!("controller stopped");
    Ok(())
}

/// Where and how an engine process opens its engine.
#[derive(Debug, Clone)]
pub struct EngineSetup {
    pub data_dir: PathBuf,
    pub cache_mib: u32,
    pub destinations: DestinationConfig,
    /// How long the scheduler sleeps when nothing is due; `None`: no scheduler runs, and the
    /// engine moves only when asked (a virtual-clock engine, whose time moves only on request).
    pub scheduler_idle: Option<Duration>,
    /// How often the engine's gauges are read for `/metrics` (`None`: never).
    pub engine_metrics_refresh: Option<Duration>,
}

/// Opens the engine on SQLite in `setup.data_dir`, with its scheduler and outbox sender
/// running (the embedded engine of `run`, and `journey-operator engine`).
pub fn open_engine(
    setup: &EngineSetup,
    clock: Arc<dyn crate::engine::Clock>,
    metrics: &Arc<super::metrics::Metrics>,
    credential_failures: Option<tokio::sync::mpsc::UnboundedSender<CredentialError>>,
) -> Result<(Engine<SqliteStore>, Vec<tokio::task::JoinHandle<()>>), RunError> {
    std::fs::create_dir_all(&setup.data_dir).map_err(|source| RunError::DataDir {
        dir: setup.data_dir.display().to_string(),
        source,
    })?;
    let db = setup.data_dir.join("engine.db");
    let engine_error = |source| RunError::Engine {
        dir: setup.data_dir.display().to_string(),
        source: Box::new(source),
    };
    let store = SqliteStore::open_with(
        &db,
        SqliteOptions {
            cache_mib: Some(setup.cache_mib),
            ..SqliteOptions::default()
        },
    )
    .map_err(|e| engine_error(EngineError::from(e)))?;
    let engine_config = EngineConfig {
        destinations: setup.destinations.clone(),
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, clock, engine_config).map_err(engine_error)?;
    let mut tasks = Vec::new();
    if let Some(idle) = setup.scheduler_idle {
        tasks.push(engine.spawn_scheduler(idle));
    }
    let transport = HttpTransport::new(Duration::from_secs(10))
        .map_err(|e| RunError::Webhooks(e.to_string()))?;
    let sender = spawn_sender(
        engine.clone(),
        Arc::new(transport),
        Duration::from_millis(200),
        metrics.clone(),
        credential_failures,
    );
    tasks.push(sender);
    if let Some(every) = setup.engine_metrics_refresh {
        tasks.push(spawn_stats(engine.clone(), metrics.clone(), every));
    }
    info!(db = %db.display(), "engine open; serving");
    Ok((engine, tasks))
}

/// Deliveries not sent for unreadable credentials become Warning events on their journey
/// (`WebhookCredentialsUnreadable`); the recorder folds the retries of one journey and
/// destination into one event's series.
fn spawn_credential_events(
    client: Client,
    config: &RunConfig,
    mut failed: tokio::sync::mpsc::UnboundedReceiver<CredentialError>,
) -> tokio::task::JoinHandle<()> {
    let recorder = EventRecorder::new(client, reporter(config));
    tokio::spawn(async move {
        while let Some(failure) = failed.recv().await {
            let Some((namespace, name)) =
                failure.journey.as_deref().and_then(|k| k.split_once('/'))
            else {
                continue;
            };
            let regarding = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("journey.dev/v1alpha1".into()),
                kind: Some("Journey".into()),
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            };
            let event = kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Warning,
                reason: super::reasons::WEBHOOK_CREDENTIALS_UNREADABLE.into(),
                note: Some(format!(
                    "webhook deliveries to destination {:?} are not sent: {}; they are retried with backoff and go out once the credentials file is readable",
                    failure.destination, failure.reason
                )),
                action: "Deliver".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &regarding).await {
                warn!(%e, "could not publish the credentials event");
            }
        }
    })
}

fn reporter(config: &RunConfig) -> Reporter {
    Reporter {
        controller: "journey-operator".into(),
        instance: config
            .instance
            .clone()
            .unwrap_or_else(|| "journey-operator".into()),
    }
}

/// Reads the engine's gauges (due backlog, tick lag, outbox backlog) for `/metrics` every
/// `every`: each reading is one read transaction, O(journeys + backlog).
fn spawn_stats(
    engine: Engine<SqliteStore>,
    metrics: Arc<super::metrics::Metrics>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let e = engine.clone();
            match tokio::task::spawn_blocking(move || e.stats_blocking()).await {
                Ok(Ok(stats)) => metrics.set_engine_stats(stats),
                Ok(Err(e)) => warn!(%e, "reading the engine's gauges failed"),
                Err(e) => warn!(%e, "the engine's gauges task failed"),
            }
            tokio::time::sleep(every).await;
        }
    })
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
    let api: Api<CachedJourney> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let recorder = EventRecorder::new(client.clone(), reporter(config));
    let written = Arc::new(WrittenStatuses::default());
    let mut context = Context::new(
        client.clone(),
        engine.clone(),
        recorder,
        config.controller.clone(),
        metrics,
        written.clone(),
    );

    // The holds: one watch each fills the cache the journey reconciler reads and triggers the
    // journeys a change may cover; the holds' status loop watches them on its own.
    let hold_api: Api<JourneyHold> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let cluster_hold_api: Api<ClusterJourneyHold> = Api::all(client.clone());
    let (hold_store, hold_writer) = reflector::store();
    let hold_changes = watcher(hold_api.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(hold_writer)
        .touched_objects();
    let (cluster_hold_store, cluster_hold_writer) = reflector::store();
    let cluster_hold_changes = watcher(cluster_hold_api.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(cluster_hold_writer)
        .touched_objects();
    let (namespaces, namespace_writer) = reflector::store();
    let namespace_changes = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(namespace_writer)
    .touched_objects()
    .predicate_filter(
        |n: &PartialObjectMeta<Namespace>| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            n.labels().hash(&mut h);
            Some(h.finish())
        },
        Default::default(),
    );
    context.holds = HoldIndex {
        holds: hold_store,
        cluster_holds: cluster_hold_store,
        namespaces: namespaces.clone(),
    };
    let (nudge_tx, nudges) = futures::channel::mpsc::unbounded::<String>();
    context.hold_nudges = Some(nudge_tx);
    let ctx = Arc::new(context);

    let (resync_tx, resync_rx) = futures::channel::mpsc::unbounded();
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .inspect_ok(move |journey| {
            let key = crate::controller::translate::engine_key(
                &journey.namespace().unwrap_or_default(),
                &journey.name_any(),
            );
            written.observe(&key, journey.meta().resource_version.as_deref());
        })
        .predicate_filter(reconcile_inputs, Default::default());
    info!(
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        "controller starting"
    );
    let stop = CancellationToken::new();
    let hold_context = Arc::new(HoldContext {
        client: client.clone(),
        journeys: reader.clone(),
        namespaces,
        recorder: EventRecorder::new(client.clone(), reporter(config)),
    });
    let (hold_nudges, cluster_hold_nudges) = split_nudges(nudges);
    let holds = Controller::new(hold_api, watcher::Config::default())
        .reconcile_on(hold_nudges)
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(
            hold_status::reconcile,
            hold_status::error_policy,
            hold_context.clone(),
        )
        .for_each(|_| async {});
    // A ClusterJourneyHold's status counts journeys of every namespace: only a controller that
    // watches them all reports it (one watching a namespace still honours the hold).
    let cluster_holds = config.namespace.is_none().then(|| {
        Controller::new(cluster_hold_api, watcher::Config::default())
            .reconcile_on(cluster_hold_nudges)
            .graceful_shutdown_on(stop.clone().cancelled_owned())
            .run(
                hold_status::reconcile,
                hold_status::error_policy,
                hold_context,
            )
            .for_each(|_| async {})
    });
    let cluster_holds = async move {
        if let Some(run) = cluster_holds {
            run.await;
        }
    };
    let in_namespace = journeys_in(reader.clone());
    let in_namespace_of_hold = in_namespace.clone();
    let everywhere = journeys_in(reader.clone());
    let journeys = Controller::for_stream(stream, reader)
        .with_config(controller::Config::default().concurrency(MAX_CONCURRENT_RECONCILES))
        .reconcile_on(engine_triggers(engine.clone(), resync_tx))
        .reconcile_all_on(resync_rx)
        .watches_stream(hold_changes, move |h: JourneyHold| {
            in_namespace_of_hold(h.namespace().as_deref())
        })
        .watches_stream(cluster_hold_changes, move |_: ClusterJourneyHold| {
            everywhere(None)
        })
        .watches_stream(namespace_changes, move |n: PartialObjectMeta<Namespace>| {
            in_namespace(Some(n.name_any().as_str()))
        })
        .graceful_shutdown_on(async move {
            shutdown.await;
            stop.cancel();
        })
        .run(reconciler::reconcile, reconciler::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(%e, "reconcile loop");
            }
        });
    futures::join!(journeys, holds, cluster_holds);
}

type JourneysIn = Arc<dyn Fn(Option<&str>) -> Vec<ObjectRef<CachedJourney>> + Send + Sync>;

/// The journeys of one namespace (`None`: all of them), as reconcile triggers: what a change
/// to a hold or to a namespace's labels may cover.
fn journeys_in(journeys: reflector::Store<CachedJourney>) -> JourneysIn {
    Arc::new(move |namespace| {
        journeys
            .state()
            .iter()
            .filter(|j| namespace.is_none() || j.namespace().as_deref() == namespace)
            .map(|j| ObjectRef::from_obj(j.as_ref()))
            .collect()
    })
}

/// Routes the journey reconciler's nudges (`JourneyHold ns/name`, `ClusterJourneyHold name`)
/// to the status loop of each kind.
#[allow(clippy::type_complexity)]
fn split_nudges(
    nudges: futures::channel::mpsc::UnboundedReceiver<String>,
) -> (
    futures::channel::mpsc::UnboundedReceiver<ObjectRef<JourneyHold>>,
    futures::channel::mpsc::UnboundedReceiver<ObjectRef<ClusterJourneyHold>>,
) {
    let (namespaced_tx, namespaced) = futures::channel::mpsc::unbounded();
    let (cluster_tx, cluster) = futures::channel::mpsc::unbounded();
    tokio::spawn(nudges.for_each(move |id| {
        if let Some(rest) = id.strip_prefix("JourneyHold ")
            && let Some((ns, name)) = rest.split_once('/')
        {
            let _ = namespaced_tx.unbounded_send(ObjectRef::new(name).within(ns));
        } else if let Some(name) = id.strip_prefix("ClusterJourneyHold ") {
            let _ = cluster_tx.unbounded_send(ObjectRef::new(name));
        }
        async {}
    }));
    (namespaced, cluster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::journey::Journey;

    #[test]
    fn only_changes_the_engine_made_itself_trigger_reconciles() {
        let change = |key: &str, cause| FeedChange {
            key: key.into(),
            revision: 1,
            cause,
            deleted: false,
        };
        assert_eq!(
            trigger_for(&change("ns/j", ChangeCause::Engine)),
            Some(ObjectRef::new("j").within("ns"))
        );
        assert_eq!(trigger_for(&change("ns/j", ChangeCause::Command)), None);
        assert_eq!(
            trigger_for(&change("no-namespace", ChangeCause::Engine)),
            None
        );
    }

    #[test]
    fn status_echoes_do_not_count_as_reconcile_inputs() {
        let base: Journey = serde_json::from_value(serde_json::json!({
            "apiVersion": "journey.dev/v1alpha1", "kind": "Journey",
            "metadata": {"name": "j", "namespace": "ns", "generation": 1,
                         "annotations": {"argocd.argoproj.io/tracking-id": "a"}},
            "spec": {"entry": {"event": {"name": "E"}}, "steps": [{"id": "a", "exit": {}}]}
        }))
        .expect("journey");
        let inputs = |f: &dyn Fn(&mut Journey)| {
            let mut j = base.clone();
            f(&mut j);
            reconcile_inputs(&CachedJourney::pack(&j).expect("pack"))
        };
        let same = inputs(&|_| {});
        assert_eq!(inputs(&|j| j.status = Some(Default::default())), same);
        assert_eq!(
            inputs(&|j| {
                j.annotations_mut()
                    .insert("argocd.argoproj.io/tracking-id".into(), "b".into());
            }),
            same
        );
        assert_ne!(inputs(&|j| j.metadata.generation = Some(2)), same);
        assert_ne!(
            inputs(&|j| j.finalizers_mut().push("journey.dev/engine".into())),
            same
        );
        assert_ne!(
            inputs(&|j| {
                j.annotations_mut().insert(
                    crate::api::annotations::RESTART_REQUESTED_AT.into(),
                    "t".into(),
                );
            }),
            same
        );
        assert_ne!(
            inputs(&|j| {
                j.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    ));
            }),
            same
        );
    }
}
