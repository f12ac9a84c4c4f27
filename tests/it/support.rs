//! Test support: the real control plane started by `hack/test.sh`, the real kubectl, a fresh
//! namespace per test, and diagnostics when a test fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use journey_operator::api::annotations::LIFECYCLE_CHANGED_BY;
use journey_operator::controller::reconciler::FINALIZER;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use tokio::sync::OnceCell;

pub const FIELD_MANAGER: &str = "journey-operator-tests";

/// How long a test waits for the system to reach what it expects before it fails (with the
/// objects' YAML and the logs). Generous: it only matters when something is wrong.
pub const WAIT: Duration = Duration::from_secs(90);

/// Polls `check` every 100 ms until it holds, failing after [`WAIT`] with `what`: the one
/// poller for everything that has no watch condition (HTTP endpoints, metrics, processes).
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The variable `hack/test.sh` exports, or a panic that says so.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with hack/test.sh, which starts the control plane")
    })
}

/// The control plane's directory (certificates, audit log).
pub fn control_plane_dir() -> PathBuf {
    PathBuf::from(env("CONTROL_PLANE_DIR"))
}

/// promtool, built by `hack/test.sh` (hack/lib.sh `ensure_promtool`).
pub fn promtool() -> PathBuf {
    PathBuf::from(env("PROMTOOL"))
}

/// prometheus-operator's CRD manifests (hack/lib.sh `ensure_prometheus_operator_crds`).
pub fn prometheus_operator_crds() -> PathBuf {
    PathBuf::from(env("PROMETHEUS_OPERATOR_CRDS"))
}

/// A token for the manifests' ServiceAccount (`journey-operator/journey-operator`, installed by
/// `kubectl apply -k manifests/`), through the TokenRequest API: what a pod of the Deployment gets.
pub fn service_account_token() -> String {
    let token = kubectl(
        &[
            "create",
            "token",
            "journey-operator",
            "-n",
            "journey-operator",
            "--duration=1h",
        ],
        None,
    );
    assert!(token.success, "{token:?}");
    token.stdout.trim().to_string()
}

pub fn kubeconfig() -> PathBuf {
    PathBuf::from(env("KUBECONFIG"))
}

/// The apiserver URL of the local control plane.
pub fn server_url() -> String {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).expect("kubeconfig");
    kc.clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .expect("server")
}

/// A client for the admin identity of the local control plane.
pub async fn client() -> Client {
    let _ = kubeconfig();
    Client::try_default()
        .await
        .expect("connecting to the local control plane")
}

/// A client for the identity of another kubeconfig file.
pub async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("reading kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs `crds/` and the admission policies (once per test process) and waits until the
/// apiserver serves and applies them.
pub async fn install_crds() {
    CRDS.get_or_init(|| async {
        let client = client().await;
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crds/journey.dev.yaml"
        ))
        .expect("reading crds/");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let crd: CustomResourceDefinition =
                serde::Deserialize::deserialize(doc).expect("parsing a CRD");
            let name = crd.name_any();
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("installing a CRD");
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .expect("CRD established in time")
            .expect("watching the CRD");
        }
        install_admission_policies(&client).await;
    })
    .await;
}

/// Installs `manifests/admission/` with kubectl, as the README does, and waits until the
/// apiserver applies it: a server-side dry-run create comes back with the finalizer and the
/// actor annotation.
async fn install_admission_policies(client: &Client) {
    let out = tokio::task::spawn_blocking(|| {
        kubectl(
            &[
                "apply",
                "--server-side",
                "--field-manager=journey-operator-tests",
                "-f",
                concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/admission/"),
            ],
            None,
        )
    })
    .await
    .expect("kubectl");
    assert!(out.success, "installing manifests/admission/: {out:?}");
    let api: Api<journey_operator::api::Journey> = Api::namespaced(client.clone(), "default");
    let probe: journey_operator::api::Journey = serde_json::from_value(serde_json::json!({
        "apiVersion": "journey.dev/v1alpha1", "kind": "Journey",
        "metadata": {"name": "finalizer-policy-probe"},
        "spec": {"entry": {"event": {"name": "E"}}, "steps": [{"id": "a", "exit": {}}]}
    }))
    .expect("probe journey");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    eventually("the admission policies in effect", async || {
        let created = api.create(&dry_run, &probe).await.expect("dry-run create");
        created.finalizers().iter().any(|f| f == FINALIZER)
            && created.annotations().contains_key(LIFECYCLE_CHANGED_BY)
    })
    .await;
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh namespace of its own for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}-{}-{n}", std::process::id());
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"journey.dev/test": prefix}}
    }))
    .expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("creating the test namespace");
    name
}

/// What a kubectl invocation printed.
#[derive(Debug)]
pub struct KubectlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real kubectl, as a user would type it, against the local control plane.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    kubectl_as(&kubeconfig(), args, stdin)
}

pub fn kubectl_as(
    kubeconfig: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> KubectlOutput {
    let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let mut child = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing kubectl's stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("kubectl output");
    KubectlOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Prints the namespace's Journeys as YAML: call before failing an assertion.
pub fn dump_journeys(namespace: &str) -> String {
    let out = kubectl(&["get", "journeys", "-n", namespace, "-o", "yaml"], None);
    format!("--- journeys in {namespace}:\n{}{}", out.stdout, out.stderr)
}
