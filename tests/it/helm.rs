//! The Helm chart `charts/journey-operator/`, with the real Helm (built from the Go module proxy
//! by `hack/lib.sh`): it lints, its values schema rejects what it should, it renders the
//! kustomize base object for object, and what it renders the real apiserver accepts. The
//! install and upgrade story (CRDs included) is in `helm_upgrade.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::support::{self, kubectl};

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/journey-operator");

/// What a helm invocation printed.
#[derive(Debug)]
pub struct HelmOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Scratch space of the chart tests, in the control plane's directory (removed with it).
fn scratch() -> PathBuf {
    let dir = support::control_plane_dir().join(format!("helm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the helm scratch directory");
    dir
}

/// Runs the real helm with its cache, config and data in a directory of this test process,
/// so nothing of the machine's own Helm setup (repositories, plugins) takes part.
pub fn helm(args: &[&str], kubeconfig: Option<&Path>) -> HelmOutput {
    let home = scratch();
    let mut command = Command::new(support::env("HELM"));
    command
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    let out = command.output().expect("running helm");
    HelmOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses a multi-document YAML stream into its objects (empty documents dropped).
pub fn parse_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("parsing YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `helm template` of the chart in `namespace` with `extra` arguments, parsed.
fn render(namespace: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "journey-operator", CHART, "-n", namespace];
    args.extend_from_slice(extra);
    let out = helm(&args, None);
    assert!(out.success, "helm {args:?}: {}", out.stderr);
    parse_docs(&out.stdout)
}

/// kind/namespace/name of an object, its identity in a comparison.
fn key(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?"),
    )
}

fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for object in objects {
        let k = key(&object);
        assert!(map.insert(k.clone(), object).is_none(), "{k} twice");
    }
    map
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", keys(objects)))
}

fn keys(objects: &[Value]) -> Vec<String> {
    objects.iter().map(key).collect()
}

/// The controller container's args.
fn args_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect()
}

/// The image of every container, taken out so the rest of the objects can be compared.
fn take_images(object: &mut Value) -> Vec<Value> {
    // pointer_mut, not indexing: IndexMut would add the path to objects that lack it.
    match object
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        Some(containers) => containers
            .iter_mut()
            .map(|c| c.as_object_mut().and_then(|c| c.remove("image")))
            .map(|i| i.unwrap_or(Value::Null))
            .collect(),
        None => Vec::new(),
    }
}

/// The paths where `a` and `b` differ, with both values.
fn differ(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let null = Value::Null;
                let p = format!("{path}/{key}");
                differ(
                    &p,
                    x.get(key).unwrap_or(&null),
                    y.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (a, b)) in x.iter().zip(y).enumerate() {
                differ(&format!("{path}[{i}]"), a, b, out);
            }
        }
        // kustomize writes 1000000.0 as 1000000: the same number.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

fn monitoring_kit_present() -> bool {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/monitoring")).is_dir()
}

/// Every option on, in one values file: the remote engine deployed by the chart, the policy,
/// the admission policies, the monitoring kit, storage and placement settings.
fn all_options_values(monitoring: bool) -> PathBuf {
    // One file per call: tests run in parallel, and a rewrite would truncate another's input.
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let n = CALLS.fetch_add(1, Ordering::SeqCst);
    let path = scratch().join(format!("all-options-{monitoring}-{n}.yaml"));
    let values = format!(
        r#"
image:
  repository: registry.example/journey-operator
  tag: "0.1.0"
  digest: sha256:{digest}
  pullPolicy: IfNotPresent
imagePullSecrets: [{{name: registry}}]
engine:
  mode: remote
  clusterId: 0b5a2a38-5d7c-4f7e-9a0e-1c2d3e4f5a6b
  caSecret: journey-engine-ca
  deploy: true
storage: {{size: 5Gi, storageClassName: fast}}
replicas: 2
extraArgs: [--resync=10m]
podAnnotations: {{example.com/team: growth}}
nodeSelector: {{kubernetes.io/os: linux}}
tolerations: [{{key: dedicated, operator: Equal, value: ops, effect: NoSchedule}}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {{matchLabels: {{app.kubernetes.io/name: journey-operator}}}}
policy: {{enabled: true, publishersGroup: shop-publishers}}
admission: {{enabled: true}}
monitoring: {{enabled: {monitoring}}}
"#,
        digest = "a".repeat(64)
    );
    std::fs::write(&path, values).expect("writing the values file");
    path
}

#[test]
fn the_charts_copies_of_crds_and_manifests_are_in_sync() {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/sync-chart.sh"))
        .arg("--check")
        .output()
        .expect("running hack/sync-chart.sh --check");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn helm_lint_strict_passes_with_defaults_and_with_every_option() {
    let out = helm(&["lint", "--strict", CHART], None);
    assert!(
        out.success,
        "helm lint --strict: {}{}",
        out.stdout, out.stderr
    );
    let values = all_options_values(monitoring_kit_present());
    let path = values.to_str().expect("path");
    let out = helm(&["lint", "--strict", CHART, "-f", path], None);
    assert!(
        out.success,
        "helm lint --strict -f all options: {}{}",
        out.stdout, out.stderr
    );
}

#[test]
fn the_default_chart_renders_the_kustomize_base_object_for_object() {
    let chart = by_key(render("journey-operator", &["--include-crds"]));
    let mut base = kustomize("");
    // The chart installs into the release's namespace (`helm install -n … --create-namespace`).
    assert!(base.remove("Namespace//journey-operator").is_some());
    assert_same_objects(chart, base);
}

/// `chart` and `base` hold the same objects, field for field, images aside (the chart's
/// controller image is its default, ghcr.io/journey-dev/journey-operator:0.1.0).
fn assert_same_objects(chart: BTreeMap<String, Value>, base: BTreeMap<String, Value>) {
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        base.keys().collect::<Vec<_>>(),
        "the chart and manifests/ must ship the same objects"
    );
    for (k, mut expected) in base {
        let mut rendered = chart[&k].clone();
        // The image is the one field allowed to differ: the chart names its published image
        // (values image.*), the base whatever kustomize `images:` makes of it.
        let images = take_images(&mut rendered);
        take_images(&mut expected);
        if k == "Deployment/journey-operator/journey-operator" {
            assert_eq!(
                images,
                vec![Value::from("ghcr.io/journey-dev/journey-operator:0.1.0")]
            );
        }
        let mut differences = Vec::new();
        differ("", &rendered, &expected, &mut differences);
        assert!(
            differences.is_empty(),
            "{k} differs between the chart and manifests/ (chart, then manifests):\n{}",
            differences.join("\n")
        );
    }
}

/// `kubectl kustomize` of a directory of manifests/, parsed.
fn kustomize(dir: &str) -> BTreeMap<String, Value> {
    let path = format!("{}/manifests/{dir}", env!("CARGO_MANIFEST_DIR"));
    let out = kubectl(&["kustomize", &path], None);
    assert!(out.success, "kubectl kustomize {path}: {out:?}");
    by_key(parse_docs(&out.stdout))
}

/// The monitoring kit in the chart is manifests/monitoring/ as kustomize builds it; without
/// the kit in the tree, the chart refuses to enable it and says why.
#[test]
fn the_charts_monitoring_kit_is_the_kustomize_one() {
    if !monitoring_kit_present() {
        let out = helm(
            &["template", "x", CHART, "--set", "monitoring.enabled=true"],
            None,
        );
        assert!(
            !out.success && out.stderr.contains("run hack/sync-chart.sh"),
            "{out:?}"
        );
        return;
    }
    let chart = by_key(render(
        "journey-operator",
        &[
            "--set",
            "monitoring.enabled=true",
            "--show-only",
            "templates/monitoring.yaml",
        ],
    ));
    assert_same_objects(chart, kustomize("monitoring"));
}

#[test]
fn every_option_renders_what_it_promises() {
    let monitoring = monitoring_kit_present();
    let values = all_options_values(monitoring);
    let path = values.to_str().expect("path");
    let objects = render("shop", &["-f", path]);

    let controller = find(&objects, "Deployment", "journey-operator");
    let args = args_of(controller);
    for expected in [
        "--engine-url=https://journey-operator-engine.shop.svc:8091",
        "--engine-token-file=/etc/journey-operator/engine/token",
        "--cluster-id=0b5a2a38-5d7c-4f7e-9a0e-1c2d3e4f5a6b",
        "--engine-ca=/etc/journey-operator/engine-ca/ca.crt",
        "--resync=10m",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--data-dir")),
        "a remote controller embeds nothing: {args:?}"
    );
    assert_eq!(controller["spec"]["replicas"], 2);
    let pod = &controller["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        format!(
            "registry.example/journey-operator:0.1.0@sha256:{}",
            "a".repeat(64)
        )
    );
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["imagePullSecrets"][0]["name"], "registry");
    assert!(pod["affinity"]["podAntiAffinity"].is_object(), "{pod}");
    assert_eq!(
        controller["spec"]["template"]["metadata"]["annotations"]["example.com/team"],
        "growth"
    );

    let engine = find(&objects, "Deployment", "journey-operator-engine");
    let engine_args = args_of(engine);
    assert_eq!(engine_args[0], "engine");
    assert!(
        engine_args.contains(&"--engine-token-file=/etc/journey-operator/engine/token".into()),
        "{engine_args:?}"
    );
    assert_eq!(engine["spec"]["strategy"]["type"], "Recreate");
    let claim = find(&objects, "PersistentVolumeClaim", "journey-operator-data");
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
    find(&objects, "Service", "journey-operator-engine");

    let params = find(&objects, "ConfigMap", "journey-publishers");
    assert_eq!(params["metadata"]["namespace"], "shop");
    assert_eq!(params["data"]["group"], "shop-publishers");
    let binding = find(
        &objects,
        "ValidatingAdmissionPolicyBinding",
        "journey-lifecycle-publishers",
    );
    assert_eq!(binding["spec"]["paramRef"]["namespace"], "shop");
    for name in [
        "journey-engine-finalizer",
        "journey-lifecycle-actor",
        "journey-hold-creator",
    ] {
        find(&objects, "MutatingAdmissionPolicy", name);
    }
    let crb = find(&objects, "ClusterRoleBinding", "journey-operator");
    assert_eq!(crb["subjects"][0]["namespace"], "shop");

    if monitoring {
        find(&objects, "ConfigMap", "journey-operator-dashboard");
        assert!(
            objects.iter().any(|o| o["kind"] == "ServiceMonitor")
                && objects.iter().any(|o| o["kind"] == "PrometheusRule"),
            "{:?}",
            keys(&objects)
        );
    }
}

#[test]
fn the_values_schema_rejects_bad_values_naming_the_field() {
    for (set, field, why) in [
        (
            "engine.mode=sidecar",
            "/engine/mode",
            "value must be one of",
        ),
        ("imagee.tag=1", "imagee", "additional properties"),
        (
            "image.pullPolicy=Sometimes",
            "/image/pullPolicy",
            "value must be one of",
        ),
        (
            "storage.size=lots",
            "/storage/size",
            "does not match pattern",
        ),
        ("replicas=2", "/replicas", "maximum"),
    ] {
        let out = helm(&["template", "x", CHART, "--set", set], None);
        assert!(!out.success, "--set {set} must be rejected: {out:?}");
        assert!(
            out.stderr.contains(field) && out.stderr.to_lowercase().contains(why),
            "--set {set}: the error must name {field} ({why}): {}",
            out.stderr
        );
    }
    // Remote mode without a cluster id is caught too.
    let out = helm(
        &["template", "x", CHART, "--set", "engine.mode=remote"],
        None,
    );
    assert!(
        !out.success && out.stderr.contains("/engine/clusterId"),
        "{out:?}"
    );
}

/// What the chart renders, the real apiserver accepts (server-side dry run: nothing persists).
#[tokio::test]
async fn the_rendered_chart_passes_a_server_side_dry_run() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "helm-dry-run").await;
    // The monitoring kit needs prometheus-operator's CRDs, which this control plane does not
    // serve: every other option is applied.
    let values = all_options_values(false);
    let path = values.to_str().expect("path");
    for extra in [vec![], vec!["-f", path]] {
        let mut args = vec!["template", "journey-operator", CHART, "-n", &ns];
        args.extend_from_slice(&extra);
        let rendered = helm(&args, None);
        assert!(rendered.success, "{rendered:?}");
        let out = kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&rendered.stdout),
        );
        assert!(
            out.success,
            "kubectl apply --dry-run=server of helm {args:?}: {out:?}\n{}",
            rendered.stdout
        );
        assert!(
            out.stdout.contains("deployment.apps/journey-operator")
                && out.stdout.contains("(server dry run)"),
            "{}",
            out.stdout
        );
    }
}
