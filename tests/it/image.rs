//! The container image `hack/image.sh` builds: its assembly is reproducible, and it runs the way
//! a kubelet runs it (podman: read-only root, uid 65532, no capabilities, the ServiceAccount's
//! token and CA mounted, in-cluster configuration) and passes the basic lifecycle.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::basic_lifecycle::basic_lifecycle;
use crate::operator_process::{free_port, http};
use crate::support::{self, env, eventually, kubectl};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `hack/image.sh --binary BINARY --out OUT` and returns the digest it wrote.
fn assemble(binary: &str, out: &Path) -> String {
    let run = Command::new(Path::new(REPO).join("hack/image.sh"))
        .args(["--binary", binary, "--out"])
        .arg(out)
        .output()
        .expect("running hack/image.sh");
    assert!(
        run.status.success(),
        "hack/image.sh failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out.join("digest"))
        .expect("the digest file")
        .trim()
        .to_string()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("reading JSON"))
        .expect("parsing JSON")
}

#[test]
fn the_image_assembled_twice_from_one_binary_has_one_digest() {
    let binary = env("JOURNEY_DIST_BINARY");
    let dir = tempfile::tempdir().expect("tempdir");
    let first = assemble(&binary, &dir.path().join("a"));
    let second = assemble(&binary, &dir.path().join("b"));
    assert!(first.starts_with("sha256:"), "{first}");
    assert_eq!(first, second, "two assemblies of one binary differ");

    let layout = dir.path().join("a/oci");
    let index = json_file(&layout.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], first.as_str());
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        env!("CARGO_PKG_VERSION"),
        "the layout is tagged with the version: {index}"
    );
    let manifest = json_file(&blob(&layout, &first));
    let config = json_file(&blob(
        &layout,
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    ));
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "{config}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["journey-operator"]));
    let labels = &c["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    let revision = Command::new("git")
        .args(["-C", REPO, "rev-parse", "HEAD"])
        .output()
        .expect("git");
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        String::from_utf8_lossy(&revision.stdout).trim()
    );
    assert_eq!(
        labels["org.opencontainers.image.created"], config["created"],
        "{config}"
    );

    // One layer, FROM scratch, with exactly what the binary needs to start.
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    let listing = Command::new("tar")
        .arg("tzf")
        .arg(blob(&layout, layers[0]["digest"].as_str().expect("digest")))
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in [
        "usr/local/bin/journey-operator",
        "lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libc.so.6",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "etc/group",
    ] {
        assert!(
            listing.lines().any(|l| l.trim_start_matches('/') == path),
            "{path} is not in the layer:\n{listing}"
        );
    }
}

/// A podman container, removed when dropped; its log printed when the test failed.
struct Container {
    podman: String,
    name: String,
    namespace: String,
}

impl Container {
    fn logs(&self) -> String {
        let out = Command::new(&self.podman)
            .args(["logs", &self.name])
            .output()
            .expect("podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- podman logs {} ---\n{}\n--- journeys ---\n{}",
                self.name,
                self.logs(),
                support::dump_journeys(&self.namespace)
            );
        }
        let _ = Command::new(&self.podman)
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}

/// The Deployment's ServiceAccount token (TokenRequest), the cluster CA and the namespace, as
/// the kubelet projects them into a pod.
fn service_account_dir(ns: &str) -> PathBuf {
    let token = support::service_account_token();
    let dir = support::control_plane_dir().join(format!("serviceaccount-{ns}"));
    std::fs::create_dir_all(&dir).expect("service account dir");
    std::fs::write(dir.join("token"), &token).expect("token");
    std::fs::copy(
        support::control_plane_dir().join("ca.crt"),
        dir.join("ca.crt"),
    )
    .expect("ca");
    std::fs::write(dir.join("namespace"), "journey-operator").expect("namespace");
    // Readable by uid 65532, as the kubelet's projected volume is.
    for file in ["token", "ca.crt", "namespace"] {
        std::fs::set_permissions(
            dir.join(file),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .expect("chmod");
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_like_a_pod_in_podman_with_its_service_account() {
    let podman = env("PODMAN");
    let archive = env("JOURNEY_IMAGE_ARCHIVE");
    let image = env("JOURNEY_IMAGE");
    let load = Command::new(&podman)
        .args(["load", "-q", "-i", &archive])
        .output()
        .expect("podman load");
    assert!(
        load.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&load.stderr)
    );

    support::install_crds().await;
    let out = kubectl(
        &["apply", "--server-side", "-k", &format!("{REPO}/manifests")],
        None,
    );
    assert!(out.success, "kubectl apply -k manifests/: {out:?}");
    let client = support::client().await;
    let ns = support::namespace(&client, "image").await;
    let sa = service_account_dir(&ns);
    let port = reqwest::Url::parse(&support::server_url())
        .expect("server URL")
        .port()
        .expect("the apiserver's port");
    let (ops, data_plane, engine_api) = (free_port(), free_port(), free_port());

    let container = Container {
        podman: podman.clone(),
        name: format!("journey-{ns}"),
        namespace: ns.clone(),
    };
    // What the Deployment asks of the kubelet, as podman flags. The ulimits are this host's:
    // the sandbox cannot raise them (no CAP_SYS_RESOURCE). The apiserver listens on 127.0.0.1
    // only (no Service endpoints), hence the host network.
    let started = std::time::Instant::now();
    let run = Command::new(&podman)
        .args([
            "run",
            "--detach",
            "--name",
            &container.name,
            "--read-only",
            "--user",
            "65532:65532",
            "--cap-drop=ALL",
            "--security-opt",
            "no-new-privileges",
            "--network=host",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
            "--tmpfs",
            "/var/lib/journey-operator:rw,mode=1777",
            "--volume",
            &format!(
                "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
                sa.display()
            ),
            "--env",
            "KUBERNETES_SERVICE_HOST=127.0.0.1",
            "--env",
            &format!("KUBERNETES_SERVICE_PORT={port}"),
            "--env",
            &format!("POD_NAME={}", container.name),
            &image,
            "run",
            &format!("--namespace={ns}"),
            "--data-dir=/var/lib/journey-operator",
            "--leader-election",
            &format!("--lease-namespace={ns}"),
            "--log-format=json",
            &format!("--ops-addr=127.0.0.1:{ops}"),
            &format!("--data-plane-addr=127.0.0.1:{data_plane}"),
            &format!("--engine-api-addr=127.0.0.1:{engine_api}"),
        ])
        .output()
        .expect("podman run");
    assert!(
        run.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    let http = http();
    for probe in ["healthz", "readyz"] {
        let url = format!("http://127.0.0.1:{ops}/{probe}");
        eventually(&format!("/{probe} answering 200"), async || {
            http.get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }
    // hack/bench-image.sh reads this line.
    eprintln!(
        "podman start to /readyz: {} ms",
        started.elapsed().as_millis()
    );
    let log = container.logs();
    assert!(
        log.contains(r#""source":"in-cluster""#),
        "the operator used its in-cluster configuration:\n{log}"
    );
    assert!(!log.contains(r#""source":"kubeconfig""#), "{log}");

    basic_lifecycle(&client, &ns).await;
}
