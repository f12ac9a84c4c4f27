//! The real node (`xtask node`, started by hack/test.sh with a control plane of its own):
//! the image imported into containerd, `kubectl apply --server-side -k manifests/` exactly as a
//! user runs it, and the Deployment running as a real pod — Ready through its probes, its
//! claim bound to the test's PersistentVolume, Recreate honoured on a rollout, the metrics
//! Service answering through kube-proxy, and the basic lifecycle passing against the
//! in-cluster operator.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::basic_lifecycle::basic_lifecycle;
use crate::pod_watch::watch_pods;
use crate::support::{self, KubectlOutput};

const NS: &str = "journey-operator";
const SELECTOR: &str = "app.kubernetes.io/name=journey-operator";
const PV: &str = "journey-operator-data-node1";

/// An env var hack/test.sh exports for the node test.
fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with hack/test.sh, which starts the real node \
             (start_node) and builds the image (JOURNEY_IMAGE, JOURNEY_IMAGE_ARCHIVE)"
        )
    })
}

fn node_kubeconfig() -> PathBuf {
    PathBuf::from(env("NODE_KUBECONFIG"))
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    support::kubectl_as(&node_kubeconfig(), args, stdin)
}

fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(out.success, "kubectl {}: {out:?}", args.join(" "));
    out.stdout
}

fn apply_json(body: &Value) {
    kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&body.to_string()),
    );
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Prints what a failing node test needs (the pods' YAML and description, the operator's
/// logs, the kubelet's and containerd's log tails) when it is dropped during a panic.
struct Diagnostics;

impl Drop for Diagnostics {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let dir = PathBuf::from(env("NODE_DIR"));
        let show = |args: &[&str]| {
            let out = kubectl(args, None);
            eprintln!(
                "--- kubectl {}:\n{}{}",
                args.join(" "),
                out.stdout,
                out.stderr
            );
        };
        show(&["get", "pods", "-A", "-o", "yaml"]);
        show(&["describe", "pods", "-n", NS]);
        show(&["get", "pvc,pv", "-A", "-o", "wide"]);
        show(&["get", "events", "-A"]);
        show(&[
            "logs",
            "-n",
            NS,
            "-l",
            SELECTOR,
            "--tail=100",
            "--all-containers",
        ]);
        for log in [
            "kubelet",
            "containerd",
            "kube-controller-manager",
            "kube-proxy",
        ] {
            eprintln!(
                "--- {log}.log:\n{}",
                tail(&dir.join(format!("{log}.log")), 60)
            );
        }
    }
}

fn import_image() {
    let out = Command::new("ctr")
        .args([
            "--address",
            &env("NODE_CONTAINERD_ADDRESS"),
            "--namespace",
            "k8s.io",
        ])
        .args(["images", "import", &env("JOURNEY_IMAGE_ARCHIVE")])
        .output()
        .expect("running ctr");
    assert!(
        out.status.success(),
        "ctr images import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Secrets the Deployment mounts: the data-plane token and a serving certificate.
fn create_secrets() {
    let certs = tempfile::tempdir().expect("tempdir");
    xtask::control_plane::write_serving_certificates(certs.path()).expect("certificates");
    let p = |name: &str| certs.path().join(name).display().to_string();
    let secret = |args: &[&str]| {
        let yaml = kubectl_ok(args, None);
        kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&yaml));
    };
    secret(&[
        "create",
        "secret",
        "generic",
        "journey-operator-data-plane",
        "-n",
        NS,
        "--from-literal=token=node-test-token",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    let cert = format!("--cert={}", p("tls.crt"));
    let key = format!("--key={}", p("tls.key"));
    secret(&[
        "create",
        "secret",
        "tls",
        "journey-operator-tls",
        "-n",
        NS,
        &cert,
        &key,
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
}

/// A hostPath PersistentVolume on the node, pre-bound to the manifests' claim. The claim names
/// no storageClassName and the node's cluster has no default StorageClass, so it stays
/// class-less and binds to this class-less volume.
fn create_volume() {
    let path = PathBuf::from(env("NODE_DIR")).join("pv/journey-operator-data");
    std::fs::create_dir_all(&path).expect("creating the volume's directory");
    // hostPath volumes get no fsGroup ownership: the directory is the operator's uid's.
    std::os::unix::fs::chown(&path, Some(65532), Some(65532)).expect("chown");
    apply_json(&json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": PV},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": NS, "name": "journey-operator-data"},
            "hostPath": {"path": path.display().to_string(), "type": "Directory"},
        },
    }));
    let classes = kubectl_ok(&["get", "storageclass", "-o", "name"], None);
    assert!(
        classes.trim().is_empty(),
        "unexpected StorageClasses: {classes}"
    );
}

fn pods() -> Vec<Value> {
    let out = kubectl_ok(
        &["get", "pods", "-n", NS, "-l", SELECTOR, "-o", "json"],
        None,
    );
    let list: Value = serde_json::from_str(&out).expect("pod list");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Waits until exactly one operator pod exists, runs on node1 and is Ready; returns it.
async fn ready_pod(other_than: Option<&str>) -> Value {
    support::eventually("the operator pod Ready on node1", async || {
        let pods = pods();
        pods.len() == 1
            && is_ready(&pods[0])
            && Some(pods[0]["metadata"]["uid"].as_str().unwrap_or_default()) != other_than
    })
    .await;
    let pod = pods().remove(0);
    assert_eq!(pod["spec"]["nodeName"], env("NODE_NAME"), "{pod}");
    pod
}

async fn metrics_through_kube_proxy() {
    let ip = kubectl_ok(
        &[
            "get",
            "service",
            "journey-operator",
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        None,
    );
    let url = format!("http://{}:8080/metrics", ip.trim());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    support::eventually(&format!("journey_ metrics at {url}"), async || {
        match http.get(&url).send().await {
            Ok(r) => r.text().await.is_ok_and(|body| body.contains("journey_")),
            Err(_) => false,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_run_the_operator_as_a_real_pod_on_a_real_node() {
    let _diagnostics = Diagnostics;
    let client = support::client_for(&node_kubeconfig()).await;
    import_image();
    // The Secrets and the volume exist before the Deployment, as an installation prepares
    // them, so the time to Ready is the pod's own.
    kubectl_ok(&["create", "namespace", NS], None);
    create_secrets();
    create_volume();

    let started = Instant::now();
    kubectl_ok(&["apply", "--server-side", "-k", "manifests/"], None);
    let pod = ready_pod(None).await;
    eprintln!(
        "node: pod start to Ready {} ms (from kubectl apply -k)",
        started.elapsed().as_millis()
    );
    let image = pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        image,
        env("JOURNEY_IMAGE"),
        "the Deployment runs the built image"
    );

    let pvc = kubectl_ok(
        &[
            "get",
            "pvc",
            "journey-operator-data",
            "-n",
            NS,
            "-o",
            "json",
        ],
        None,
    );
    let pvc: Value = serde_json::from_str(&pvc).expect("pvc");
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    assert_eq!(pvc["spec"]["volumeName"], PV, "{pvc}");

    // Recreate: the old pod is gone before the new one starts.
    let (seen, watch) = watch_pods(client.clone(), NS, SELECTOR);
    support::eventually("the pod watch to see the running pod", async || {
        seen.lock().expect("seen").most_running == 1
    })
    .await;
    let old_uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let started = Instant::now();
    kubectl_ok(
        &[
            "rollout",
            "restart",
            "deployment/journey-operator",
            "-n",
            NS,
        ],
        None,
    );
    let status = kubectl(
        &[
            "rollout",
            "status",
            "deployment/journey-operator",
            "-n",
            NS,
            "--timeout=120s",
        ],
        None,
    );
    assert!(status.success, "{status:?}");
    let new_pod = ready_pod(Some(&old_uid)).await;
    eprintln!(
        "node: rollout restart to the new pod Ready {} ms",
        started.elapsed().as_millis()
    );
    let new_uid = new_pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    support::eventually("the pod watch to see the new pod", async || {
        seen.lock().expect("seen").uids.contains(&new_uid)
    })
    .await;
    watch.abort();
    {
        let seen = seen.lock().expect("seen");
        assert!(seen.uids.contains(&old_uid), "{seen:?}");
        assert_eq!(
            seen.most_running, 1,
            "two pods ran at once during the rollout: {seen:?}"
        );
    }

    metrics_through_kube_proxy().await;

    let ns = support::namespace(&client, "node").await;
    basic_lifecycle(&client, &ns).await;
}
