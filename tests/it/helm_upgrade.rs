//! `helm install`, then `helm upgrade` to a chart whose CRD changed, on a control plane of this
//! test's own: changing CRDs and cluster-scoped RBAC on the shared one would disturb the other
//! tests (install.rs applies the same cluster-scoped names there). Nothing runs pods here (no
//! node): the assertions are on the objects the apiserver keeps.

use std::path::{Path, PathBuf};

use serde_json::Value;
use xtask::control_plane::{ControlPlaneConfig, LocalControlPlane, vendored_etcd};

use crate::helm::{CHART, helm, parse_docs};
use crate::support::{self, kubectl_as};

const CRD: &str = "journeys.journey.dev";

/// A copy of the chart as its next release would be: version and appVersion 0.2.0 (a new
/// image tag), one more rule in the controller's ClusterRole, and a new printer column in the
/// Journey CRD.
fn next_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("journey-operator");
    copy_dir(Path::new(CHART), &chart);
    let meta = chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&meta).expect("Chart.yaml");
    let text = text
        .replace("version: 0.1.0", "version: 0.2.0")
        .replace("appVersion: 0.1.0", "appVersion: 0.2.0");
    std::fs::write(&meta, text).expect("writing Chart.yaml");

    let rbac = chart.join("files/rbac.yaml");
    let text = std::fs::read_to_string(&rbac).expect("files/rbac.yaml");
    let text = text.replace(
        "rules:\n",
        "rules:\n  - apiGroups: [\"\"]\n    resources: [\"configmaps\"]\n    verbs: [\"get\"]\n",
    );
    std::fs::write(&rbac, text).expect("writing files/rbac.yaml");

    let crds = chart.join("crds/journey.dev.yaml");
    let mut docs = parse_docs(&std::fs::read_to_string(&crds).expect("crds"));
    let journeys = docs
        .iter_mut()
        .find(|d| d["metadata"]["name"] == CRD)
        .expect("the Journey CRD");
    journeys["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array_mut()
        .expect("printer columns")
        .push(serde_json::json!({
            "name": "Owner", "type": "string",
            "jsonPath": ".metadata.labels.team", "priority": 1
        }));
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).expect("yaml")))
        .collect();
    std::fs::write(&crds, text).expect("writing the changed CRD");
    chart
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn get_json(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = kubectl_as(kubeconfig, &all, None);
    assert!(out.success, "kubectl {all:?}: {out:?}");
    serde_json::from_str(&out.stdout).expect("kubectl's JSON")
}

fn columns(crd: &Value) -> Vec<String> {
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect()
}

/// What the release and the cluster hold, for a failing assertion.
fn dump(kubeconfig: &Path) -> String {
    let status = helm(
        &["status", "journey-operator", "-n", "journey-operator"],
        Some(kubeconfig),
    );
    let objects = kubectl_as(
        kubeconfig,
        &[
            "get",
            "deployments,services,pvc,serviceaccounts,clusterroles,clusterrolebindings,crds",
            "-A",
            "-o",
            "yaml",
        ],
        None,
    );
    format!(
        "--- helm status:\n{}{}\n--- objects:\n{}{}",
        status.stdout, status.stderr, objects.stdout, objects.stderr
    )
}

// A plain test: LocalControlPlane::start runs a runtime of its own, on this thread, which the
// control plane's children are tied to (parent-death signal).
#[test]
fn helm_install_then_upgrade_leaves_crds_to_server_side_apply() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let config = ControlPlaneConfig::loopback(
        scratch.path().join("control-plane"),
        PathBuf::from(support::env("KUBE_APISERVER")),
        vendored_etcd().expect("etcd"),
    );
    // Dropped at the end of the test (or when it panics): etcd and the apiserver stop.
    let plane = LocalControlPlane::start(&config).expect("starting a control plane of our own");
    let kc = plane.kubeconfig.clone();
    let ns = ["-n", "journey-operator"];

    // Install: Helm creates the CRDs of crds/ first, then the release.
    let out = helm(
        &[
            "install",
            "journey-operator",
            CHART,
            ns[0],
            ns[1],
            "--create-namespace",
        ],
        Some(&kc),
    );
    assert!(out.success, "helm install: {out:?}\n{}", dump(&kc));
    let installed = get_json(&kc, &["crd", CRD]);
    assert!(!columns(&installed).contains(&"Owner".to_string()));
    for crd in [
        "journeyholds.journey.dev",
        "clusterjourneyholds.journey.dev",
    ] {
        get_json(&kc, &["crd", crd]);
    }
    let deployment = get_json(&kc, &["deployment", "journey-operator", ns[0], ns[1]]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/journey-dev/journey-operator:0.1.0"
    );

    // Upgrade to the next chart: the release's objects change, the CRD does not.
    let next = next_chart(scratch.path());
    let next_str = next.to_str().expect("path");
    let out = helm(
        &["upgrade", "journey-operator", next_str, ns[0], ns[1]],
        Some(&kc),
    );
    assert!(out.success, "helm upgrade: {out:?}\n{}", dump(&kc));
    let deployment = get_json(&kc, &["deployment", "journey-operator", ns[0], ns[1]]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/journey-dev/journey-operator:0.2.0",
        "{}",
        dump(&kc)
    );
    let role = get_json(&kc, &["clusterrole", "journey-operator"]);
    assert!(
        role["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|r| r["resources"] == serde_json::json!(["configmaps"])),
        "helm upgrade changes the release's RBAC: {role}"
    );
    let after_upgrade = get_json(&kc, &["crd", CRD]);
    assert_eq!(
        after_upgrade["metadata"]["resourceVersion"], installed["metadata"]["resourceVersion"],
        "helm upgrade must leave the CRD as it was (Helm never upgrades crds/)"
    );
    assert!(!columns(&after_upgrade).contains(&"Owner".to_string()));

    // The documented path: server-side apply of the new chart's crds/. Helm created the CRDs
    // with its own field manager, so taking over the fields it set needs --force-conflicts.
    let crds = next.join("crds");
    let crds_str = crds.to_str().expect("path");
    let plain = kubectl_as(&kc, &["apply", "--server-side", "-f", crds_str], None);
    assert!(
        !plain.success && plain.stderr.contains("conflict"),
        "without --force-conflicts the apply conflicts with helm's field manager: {plain:?}"
    );
    let out = kubectl_as(
        &kc,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crds_str,
        ],
        None,
    );
    assert!(
        out.success,
        "kubectl apply --server-side --force-conflicts: {out:?}"
    );
    let out = kubectl_as(
        &kc,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{CRD}"),
        ],
        None,
    );
    assert!(out.success, "{out:?}");
    let upgraded = get_json(&kc, &["crd", CRD]);
    assert!(
        columns(&upgraded).contains(&"Owner".to_string()),
        "the server-side apply upgrades the CRD: {:?}",
        columns(&upgraded)
    );
    // kubectl shows the new column (priority 1: with -o wide) on a journey.
    let journey = "apiVersion: journey.dev/v1alpha1\nkind: Journey\nmetadata:\n  name: j\n  labels: {team: growth}\nspec:\n  entry: {event: {name: SignedUp}}\n  steps: [{id: done, exit: {}}]\n";
    let out = kubectl_as(&kc, &["apply", "-n", "default", "-f", "-"], Some(journey));
    assert!(out.success, "{out:?}");
    // The apiserver serves a changed CRD's columns a moment after it is Established.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(support::eventually(
        "the new printer column in kubectl get -o wide",
        async || {
            let out = kubectl_as(
                &kc,
                &["get", "jny", "j", "-n", "default", "-o", "wide"],
                None,
            );
            let shown =
                out.success && out.stdout.contains("OWNER") && out.stdout.contains("growth");
            if !shown {
                eprintln!("not yet: {out:?}");
            }
            shown
        },
    ));

    // helm uninstall removes the release and leaves the CRDs (and so every journey) alone.
    let out = helm(&["uninstall", "journey-operator", ns[0], ns[1]], Some(&kc));
    assert!(out.success, "helm uninstall: {out:?}");
    let gone = kubectl_as(
        &kc,
        &["get", "deployment", "journey-operator", ns[0], ns[1]],
        None,
    );
    assert!(
        !gone.success && gone.stderr.contains("NotFound"),
        "{gone:?}"
    );
    get_json(&kc, &["crd", CRD]);
    get_json(&kc, &["jny", "j", "-n", "default"]);
    drop(plane);
}
