//! The monitoring kit (manifests/monitoring/) against the real processes: every metric its
//! alerts and dashboard use is served by a running controller or engine service, every
//! expression parses (promql-parser), and the alerts fire, checked by `promtool test rules`,
//! on series captured from a real controller while a journey is Stalled, while a pause nears
//! its maxDuration and while reconciles fail, and stay quiet on a healthy capture.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use journey_operator::api::{Journey, Phase};
use kube::Api;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::{Value, json};

use crate::controller_support::{has_condition, in_phase, wait_for};
use crate::engine_process::EngineProcess;
use crate::operator_process::{Operator, WAIT, eventually, journey};
use crate::{promtool, support};

const RULES: &str = include_str!("../../manifests/monitoring/prometheusrule.yaml");
const DASHBOARD: &str = include_str!("../../manifests/monitoring/dashboard.json");
/// The `job` label Prometheus gives the controller's series (the ServiceMonitor's Service).
const JOB: &str = "job=\"journey-operator\"";
/// Between a capture's two scrapes: the window its counters' rates are measured over.
const WINDOW: Duration = Duration::from_secs(2);

/// The PrometheusRule's rule groups.
fn rule_groups() -> serde_yaml::Value {
    let rule: serde_yaml::Value = serde_yaml::from_str(RULES).expect("prometheusrule.yaml");
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    rule["spec"]["groups"].clone()
}

fn rule(alert: &str) -> serde_yaml::Value {
    rule_groups()
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .find(|r| r["alert"].as_str() == Some(alert))
        .unwrap_or_else(|| panic!("alert {alert} in prometheusrule.yaml"))
}

/// Every PromQL expression of the kit, with where it is.
fn expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in rule_groups().as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().or(rule["record"].as_str());
            out.push((
                format!("rule {}", name.expect("a named rule")),
                rule["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboard.json");
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        // Rows nest their panels.
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("dashboard panel {:?}", panel["title"]),
                target["expr"]
                    .as_str()
                    .expect("a target's expr")
                    .to_string(),
            ));
        }
    }
    out
}

/// The metric names an expression selects, from its syntax tree.
fn metric_names(expr: &Expr) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let selector = match e {
                Expr::VectorSelector(vs) => Some(vs),
                Expr::MatrixSelector(ms) => Some(&ms.vs),
                _ => None,
            };
            if let Some(vs) = selector {
                let name = vs.name.clone().ok_or("a selector without a metric name")?;
                self.0.insert(name);
            }
            Ok(true)
        }
    }
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, expr)?;
    Ok(names.0)
}

/// The metric names a scrape serves: its families (`# TYPE`, so a family with no series yet
/// counts; a histogram with its `_bucket`, `_sum`, `_count`) and its series.
fn served(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), kind) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == Some("histogram") {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            names.insert(name.to_string());
        }
    }
    names
}

/// A controller in remote mode and its engine service, each a real process.
struct Kit {
    ns: String,
    api: Api<Journey>,
    engine: EngineProcess,
    operator: Operator,
    _dir: tempfile::TempDir,
}

impl Kit {
    async fn start(prefix: &str) -> Kit {
        support::install_crds().await;
        let client = support::client().await;
        let ns = support::namespace(&client, prefix).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = EngineProcess::start(&dir.path().join("engine")).await;
        let operator = Operator::start_remote(
            &ns,
            "monitoring",
            &dir.path().join("controller"),
            &engine.url(),
            &engine,
            &[],
        );
        eventually("the controller ready", async || {
            operator.get("/readyz").await.0 == 200
        })
        .await;
        Kit {
            api: Api::namespaced(client, &ns),
            ns,
            engine,
            operator,
            _dir: dir,
        }
    }

    async fn metrics(&self) -> String {
        let (status, body) = self.operator.get("/metrics").await;
        assert_eq!(status, 200, "the controller's /metrics");
        body
    }

    async fn engine_metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.engine.ops);
        let r = crate::operator_process::http()
            .get(url)
            .send()
            .await
            .expect("the engine's /metrics");
        assert!(
            r.status().is_success(),
            "the engine's /metrics: {}",
            r.status()
        );
        r.text().await.expect("the engine's /metrics body")
    }

    /// Two scrapes [`WINDOW`] apart (the window the counters' rates are measured over, not a
    /// wait for a state) as promtool input series.
    async fn capture(&self) -> Vec<Value> {
        let first = self.metrics().await;
        let started = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let second = self.metrics().await;
        promtool::input_series(&first, &second, started.elapsed().as_secs_f64(), JOB)
    }

    /// The value of one series in a scrape of the controller (0 when absent).
    async fn value(&self, series: &str) -> f64 {
        let prefix = format!("{series} ");
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_and_the_dashboard_use_only_metrics_the_processes_serve() {
    let kit = Kit::start("monitoring-names").await;
    crate::controller_support::apply(&kit.ns, "ok", journey("Published", json!({})));
    wait_for(&kit.api, "ok", "Live", WAIT, in_phase(Phase::Live)).await;
    let controller = kit.metrics().await;
    let engine = kit.engine_metrics().await;
    let mut names = served(&controller);
    names.extend(served(&engine));

    let expressions = expressions();
    let rules = expressions
        .iter()
        .filter(|(w, _)| w.starts_with("rule"))
        .count();
    assert!(
        rules >= 8 && expressions.len() > rules + 8,
        "{expressions:?}"
    );
    let mut missing = Vec::new();
    for (place, text) in &expressions {
        let expr = parser::parse(text).unwrap_or_else(|e| panic!("{place}: {text:?}: {e}"));
        let used = metric_names(&expr).unwrap_or_else(|e| panic!("{place}: {text:?}: {e}"));
        assert!(!used.is_empty(), "{place} selects no metric: {text}");
        missing.extend(
            used.into_iter()
                .filter(|n| !names.contains(n))
                .map(|n| format!("{place}: {n}")),
        );
    }
    assert!(
        missing.is_empty(),
        "metrics the kit uses that no process serves: {missing:#?}\n--- controller:\n{controller}\n--- engine:\n{engine}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stalled_and_reconcile_error_alerts_fire_on_real_captures_and_not_on_a_healthy_one() {
    let mut kit = Kit::start("monitoring-alerts").await;
    let ns = kit.ns.clone();
    crate::controller_support::apply(&ns, "ok", journey("Published", json!({})));
    wait_for(&kit.api, "ok", "Live", WAIT, in_phase(Phase::Live)).await;
    let healthy = kit.capture().await;

    // A condition that does not compile: the controller reports Stalled InvalidDefinition.
    let broken = journey(
        "Published",
        json!({"steps": [
            {"id": "choose", "condition": {"branches": [{"when": "profile.vip ==", "next": "send"}], "otherwise": "send"}},
            {"id": "send", "action": {"channel": "record"}}
        ]}),
    );
    crate::controller_support::apply(&ns, "broken", broken);
    wait_for(
        &kit.api,
        "broken",
        "Stalled",
        WAIT,
        has_condition("Stalled", "True"),
    )
    .await;
    let stalled_series = format!(
        "journey_stalled{{namespace=\"{ns}\",journey=\"broken\",reason=\"InvalidDefinition\"}}"
    );
    eventually("the Stalled journey's gauge", async || {
        kit.value(&stalled_series).await == 1.0
    })
    .await;
    let stalled = kit.capture().await;

    // A pause of 10 s: past 90% of it, the near-expiry gauge reaches 0.9 (the engine's virtual
    // clock stands still, so onExpiry does not happen meanwhile).
    crate::controller_support::apply(
        &ns,
        "ok",
        journey(
            "Paused",
            json!({"pause": {"mode": "Hold", "maxDuration": "10s"}}),
        ),
    );
    let ratio = format!("journey_pause_elapsed_ratio{{namespace=\"{ns}\",journey=\"ok\"}}");
    eventually("the pause past 90% of its maxDuration", async || {
        kit.value(&ratio).await >= 0.9
    })
    .await;
    let pause = kit.capture().await;

    // The engine service gone: every reconcile that needs it fails (EngineUnavailable) and is
    // retried with backoff; a label change starts one.
    kit.engine.kill9();
    let out = support::kubectl(
        &[
            "label",
            "journey",
            "ok",
            "-n",
            &ns,
            "monitoring-test/poke=1",
            "--overwrite",
        ],
        None,
    );
    assert!(out.success, "kubectl label: {out:?}");
    let errors = "journey_reconcile_errors_total{reason=\"EngineUnavailable\"}";
    eventually("a reconcile failing with EngineUnavailable", async || {
        kit.value(errors).await >= 1.0
            && kit.value("journey_engine_available{mode=\"remote\"}").await == 0.0
    })
    .await;
    let first = kit.metrics().await;
    let started = Instant::now();
    let before = kit.value(errors).await;
    eventually("the failing reconcile retried", async || {
        kit.value(errors).await > before
    })
    .await;
    let second = kit.metrics().await;
    let failing = promtool::input_series(&first, &second, started.elapsed().as_secs_f64(), JOB);

    let fires = |alert: &str, labels: Value| {
        let annotations = promtool::annotations(&rule(alert), &labels);
        promtool::alert_test(alert, vec![(labels, annotations)])
    };
    let quiet = |alert: &str| promtool::alert_test(alert, vec![]);
    let tests = vec![
        json!({"name": "healthy", "interval": "1m", "input_series": healthy, "alert_rule_test": [
            quiet("JourneyStalled"), quiet("JourneyReconcileErrors"), quiet("JourneyEngineUnavailable"),
            quiet("JourneyPauseNearExpiry"),
        ]}),
        json!({"name": "pause near its expiry", "interval": "1m", "input_series": pause, "alert_rule_test": [
            fires("JourneyPauseNearExpiry", json!({"severity": "warning", "namespace": ns, "journey": "ok"})),
        ]}),
        json!({"name": "stalled", "interval": "1m", "input_series": stalled, "alert_rule_test": [
            fires("JourneyStalled", json!({"severity": "warning", "namespace": ns, "journey": "broken", "reason": "InvalidDefinition"})),
            quiet("JourneyReconcileErrors"),
        ]}),
        json!({"name": "reconciles failing", "interval": "1m", "input_series": failing, "alert_rule_test": [
            fires("JourneyReconcileErrors", json!({"severity": "warning", "reason": "EngineUnavailable"})),
            fires("JourneyEngineUnavailable", json!({"severity": "critical", "mode": "remote"})),
        ]}),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    promtool::check_and_test(dir.path(), &rule_groups(), tests);
}

/// `kubectl apply -k manifests/monitoring` against prometheus-operator's own CRDs on the real
/// apiserver: the kit's objects are valid ServiceMonitors, a PrometheusRule and a ConfigMap
/// (moved into the test's namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_applies_on_prometheus_operators_crds() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "monitoring-kit").await;
    let crds = support::prometheus_operator_crds();
    for kind in ["servicemonitors", "prometheusrules"] {
        let file = crds.join(format!("monitoring.coreos.com_{kind}.yaml"));
        let file = file.to_str().expect("a UTF-8 path");
        let out = support::kubectl(&["apply", "--server-side", "-f", file], None);
        assert!(out.success, "installing {file}: {out:?}");
        let crd = format!("crd/{kind}.monitoring.coreos.com");
        let out = crate::controller_support::kubectl_blocking(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &crd,
        ])
        .await;
        assert!(out.success, "{crd} established: {out:?}");
    }
    let dir = env!("CARGO_MANIFEST_DIR");
    let rendered = support::kubectl(&["kustomize", &format!("{dir}/manifests/monitoring")], None);
    assert!(rendered.success, "kubectl kustomize: {rendered:?}");
    let moved = rendered.stdout.replace(
        "namespace: journey-operator\n",
        &format!("namespace: {ns}\n"),
    );
    let out = support::kubectl(&["apply", "--server-side", "-f", "-"], Some(&moved));
    assert!(out.success, "applying the kit: {out:?}\n{moved}");
    for object in [
        "servicemonitor/journey-operator",
        "servicemonitor/journey-operator-engine",
        "prometheusrule/journey-operator",
        "configmap/journey-operator-dashboard",
    ] {
        let out = support::kubectl(&["get", "-n", &ns, object, "-o", "name"], None);
        assert!(out.success, "{object} in {ns}: {out:?}");
    }
}
