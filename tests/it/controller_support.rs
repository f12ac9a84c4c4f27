//! An in-process controller per test namespace, with its own engine on a real SQLite file,
//! acting under its own client-certificate identity (so the audit log can single out its
//! requests).

use std::sync::Arc;
use std::time::Duration;

use journey_operator::api::Journey;
use journey_operator::controller::metrics::Metrics;
use journey_operator::controller::reconciler::ControllerConfig;
use journey_operator::controller::runner::{RunConfig, run_controller};
use journey_operator::engine::{Engine, EngineConfig, JourneyEngine, SqliteStore, SystemClock};
use kube::Api;
use kube::runtime::wait::{Condition, await_condition};
use tokio::sync::oneshot;
use xtask::control_plane::{mint_client_cert, write_kubeconfig_for};

use crate::support;

pub struct TestController {
    pub engine: Engine<SqliteStore>,
    pub metrics: Arc<Metrics>,
    /// The user name the controller's requests carry.
    pub identity: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    scheduler: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

pub struct Options {
    pub resync: Duration,
    pub counts_refresh: Duration,
    /// Act as this identity (user name, kubeconfig) instead of a freshly minted admin.
    pub identity: Option<(String, std::path::PathBuf)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resync: Duration::from_secs(300),
            counts_refresh: Duration::from_millis(500),
            identity: None,
        }
    }
}

impl TestController {
    pub async fn start(namespace: &str) -> Self {
        Self::start_with(namespace, Options::default()).await
    }

    pub async fn start_with(namespace: &str, options: Options) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("engine.db")).expect("sqlite");
        let engine =
            Engine::new(store, Arc::new(SystemClock), EngineConfig::default()).expect("engine");
        let scheduler = engine.spawn_scheduler(Duration::from_millis(50));

        let (identity, kubeconfig) = match options.identity {
            Some(given) => given,
            None => {
                // The controller acts as its own user, an admin, so its requests are
                // identifiable in the audit log.
                let identity = format!("journey-controller-{namespace}");
                let cp = support::control_plane_dir();
                let cert = mint_client_cert(&cp, &identity, Some("system:masters")).expect("cert");
                let server = support::server_url();
                let kubeconfig =
                    write_kubeconfig_for(&cp, &server, &identity, &cert).expect("kubeconfig");
                (identity, kubeconfig)
            }
        };
        let client = support::client_for(&kubeconfig).await;

        let config = RunConfig {
            data_dir: dir.path().to_path_buf(),
            engine_cache_mib: 8,
            namespace: Some(namespace.to_string()),
            controller: ControllerConfig {
                resync: options.resync,
                counts_refresh: options.counts_refresh,
                destinations: None,
            },
            scheduler_idle: Duration::from_millis(50),
            engine_metrics_refresh: Some(Duration::from_secs(1)),
            instance: Some(identity.clone()),
            ops_addr: None,
            data_plane: None,
            leader: None,
            destinations: Default::default(),
            engine_api: None,
            remote: None,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let shared: Arc<dyn JourneyEngine> = Arc::new(engine.clone());
        let metrics = Arc::new(Metrics::default());
        let task_metrics = metrics.clone();
        let task = tokio::spawn(async move {
            run_controller(client, shared, &config, task_metrics, async move {
                let _ = rx.await;
            })
            .await;
        });
        TestController {
            engine,
            metrics,
            identity,
            shutdown: Some(tx),
            task: Some(task),
            scheduler,
            _dir: dir,
        }
    }

    /// Stops the controller (graceful shutdown) and the engine scheduler.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.scheduler.abort();
    }
}

impl Drop for TestController {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        self.scheduler.abort();
    }
}

/// Waits until `condition` holds for the journey, or fails with its YAML.
pub async fn wait_for(
    api: &Api<Journey>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Condition<Journey>,
) -> Journey {
    let ns = api.namespace_hint();
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(j))) => j,
        other => panic!(
            "journey {name} never reached {what} ({other:?})\n{}",
            support::dump_journeys(&ns)
        ),
    }
}

/// The journey's status condition `type_`, if it has one.
pub fn condition(
    journey: &Journey,
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    journey
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .cloned()
}

/// The status condition `type_` has status `value`.
pub fn has_condition(type_: &'static str, value: &'static str) -> impl Condition<Journey> {
    move |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == value)
        })
    }
}

/// The status phase is `phase`.
pub fn in_phase(phase: journey_operator::api::Phase) -> impl Condition<Journey> {
    move |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref()).and_then(|s| s.phase) == Some(phase)
    }
}

/// Both hold.
pub fn and(a: impl Condition<Journey>, b: impl Condition<Journey>) -> impl Condition<Journey> {
    move |j: Option<&Journey>| a.matches_object(j) && b.matches_object(j)
}

trait NamespaceHint {
    fn namespace_hint(&self) -> String;
}

impl NamespaceHint for Api<Journey> {
    fn namespace_hint(&self) -> String {
        // Api does not expose its namespace; the URL path carries it.
        let url = self.resource_url();
        url.split('/')
            .skip_while(|s| *s != "namespaces")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }
}

/// A Journey manifest as a user would write it.
pub fn manifest(name: &str, spec: serde_json::Value) -> String {
    serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "Journey",
        "metadata": {"name": name},
        "spec": spec
    }))
    .expect("yaml")
}

/// `kubectl apply` of a Journey, which must be accepted.
pub fn apply(ns: &str, name: &str, spec: serde_json::Value) {
    let out = support::kubectl(&["apply", "-n", ns, "-f", "-"], Some(&manifest(name, spec)));
    assert!(
        out.success,
        "kubectl apply {name}: {out:?}\n{}",
        support::dump_journeys(ns)
    );
}

/// A fresh namespace with its own in-process controller.
pub async fn setup(prefix: &str) -> (String, Api<Journey>, TestController) {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, prefix).await;
    let controller = TestController::start(&ns).await;
    (ns.clone(), Api::namespaced(client, &ns), controller)
}

/// kubectl commands that block until the controller acts (wait, delete) must not block the
/// runtime the controller runs on.
pub async fn kubectl_blocking(args: &[&str]) -> support::KubectlOutput {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        support::kubectl(&refs, None)
    })
    .await
    .expect("kubectl task")
}
