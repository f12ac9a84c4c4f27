//! Argo CD and kstatus read the truth: the Argo CD health check (manifests/argocd/health.lua),
//! run in gopher-lua — the Lua VM Argo CD uses — and the kstatus computation of
//! sigs.k8s.io/cli-utils (what Flux and kpt use), over Journeys captured live from the real
//! controller, one per phase.

use std::io::Write;
use std::process::{Command, Stdio};

use journey_operator::api::{Journey, Phase};
use journey_operator::engine::DataPlane;
use serde_json::{Value, json};

use crate::controller_support::{apply, has_condition, in_phase, setup, wait_for};
use crate::support::kubectl;

use crate::builders::Spec;
use crate::support::WAIT;

pub(crate) fn health(object: &Value) -> (String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/argocd/health.lua");
    run_helper("ARGOCD_HEALTH", &[script], object)
}

pub(crate) fn kstatus(object: &Value) -> (String, String) {
    run_helper("KSTATUS", &[], object)
}

/// Runs one of the Go helpers hack/test.sh builds (its path in `env`) over `object`.
fn run_helper(env: &str, args: &[&str], object: &Value) -> (String, String) {
    let helper = std::env::var(env).unwrap_or_else(|_| {
        panic!("{env} is not set: run the tests with hack/test.sh, which builds the Go helpers")
    });
    let mut child = Command::new(helper)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("argocd-health helper");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(object.to_string().as_bytes())
        .expect("write object");
    let out = child.wait_with_output().expect("helper output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("helper json");
    (
        result["status"].as_str().unwrap_or_default().to_string(),
        result["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The live object as Argo CD would see it, saved beside the build for inspection.
fn capture(ns: &str, name: &str, label: &str) -> Value {
    let out = kubectl(&["get", "journey", name, "-n", ns, "-o", "json"], None);
    assert!(out.success, "{out:?}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-fixtures");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{label}.json")), &out.stdout);
    serde_json::from_str(&out.stdout).expect("json")
}

fn spec(state: &str, wait: &str, extra: Value) -> Value {
    Spec::on_event("Go")
        .state(state)
        .wait("wait", wait)
        .action("send", "record", None)
        .with(extra)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_health_of_journeys_in_every_phase() {
    let (ns, api, controller) = setup("argocd").await;
    let mut cases: Vec<(&str, Value, &str, &str)> = Vec::new();

    apply(&ns, "draft", spec("Draft", "1h", json!({})));
    apply(&ns, "live", spec("Published", "1h", json!({})));
    apply(
        &ns,
        "scheduled",
        spec(
            "Published",
            "1h",
            json!({"schedule": {"startAt": "2099-01-01T00:00:00Z"}}),
        ),
    );
    apply(
        &ns,
        "paused",
        spec(
            "Paused",
            "1h",
            json!({"pause": {"mode": "Hold", "reason": "copy review"}}),
        ),
    );
    apply(&ns, "completed", spec("Closed", "1h", json!({})));
    apply(&ns, "stopped", spec("Stopped", "1h", json!({})));
    let mut invalid = spec("Published", "1h", json!({}));
    invalid["steps"][1] = json!({"id": "send", "condition": {"branches": [{"when": "profile.x ==", "next": "wait"}], "otherwise": "wait"}});
    apply(&ns, "stalled", invalid);
    apply(
        &ns,
        "closing",
        spec(
            "Published",
            "1h",
            json!({"entry": {"event": {"name": "Close"}}}),
        ),
    );
    apply(
        &ns,
        "resuming",
        spec(
            "Published",
            "3s",
            json!({"entry": {"event": {"name": "Resume"}}}),
        ),
    );

    for (name, phase) in [
        ("draft", Phase::Draft),
        ("live", Phase::Live),
        ("scheduled", Phase::Scheduled),
        ("paused", Phase::Paused),
        ("completed", Phase::Completed),
        ("stopped", Phase::Stopped),
    ] {
        wait_for(&api, name, "its phase", WAIT, in_phase(phase)).await;
    }
    wait_for(
        &api,
        "stalled",
        "Stalled",
        WAIT,
        has_condition("Stalled", "True"),
    )
    .await;

    // Closing: a profile still inside a closed journey.
    wait_for(&api, "closing", "Live", WAIT, in_phase(Phase::Live)).await;
    controller
        .engine
        .ingest_event("c1", "Close", json!({}))
        .await
        .expect("ingest");
    apply(
        &ns,
        "closing",
        spec(
            "Closed",
            "1h",
            json!({"entry": {"event": {"name": "Close"}}}),
        ),
    );
    wait_for(&api, "closing", "Closing", WAIT, in_phase(Phase::Closing)).await;

    // Resuming: profiles that entered before the pause are held at the action, then released
    // at one per second.
    wait_for(&api, "resuming", "Live", WAIT, in_phase(Phase::Live)).await;
    for i in 0..20 {
        controller
            .engine
            .ingest_event(&format!("r{i}"), "Resume", json!({}))
            .await
            .expect("ingest");
    }
    apply(
        &ns,
        "resuming",
        spec(
            "Paused",
            "3s",
            json!({"entry": {"event": {"name": "Resume"}}, "pause": {"mode": "Hold"}}),
        ),
    );
    wait_for(&api, "resuming", "Paused", WAIT, in_phase(Phase::Paused)).await;
    let held = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.profiles.as_ref())
            .is_some_and(|p| p.held == 20)
    };
    wait_for(&api, "resuming", "20 held", WAIT, held).await;
    apply(
        &ns,
        "resuming",
        spec(
            "Published",
            "3s",
            json!({"entry": {"event": {"name": "Resume"}}, "resume": {"rate": 1}}),
        ),
    );
    wait_for(
        &api,
        "resuming",
        "Resuming",
        WAIT,
        in_phase(Phase::Resuming),
    )
    .await;

    cases.push(("draft", capture(&ns, "draft", "draft"), "Healthy", "Draft"));
    cases.push(("live", capture(&ns, "live", "live"), "Healthy", "Live"));
    cases.push((
        "scheduled",
        capture(&ns, "scheduled", "scheduled"),
        "Healthy",
        "Scheduled",
    ));
    cases.push((
        "paused",
        capture(&ns, "paused", "paused"),
        "Suspended",
        "Paused (Hold) since",
    ));
    cases.push((
        "closing",
        capture(&ns, "closing", "closing"),
        "Healthy",
        "Closing",
    ));
    cases.push((
        "completed",
        capture(&ns, "completed", "completed"),
        "Healthy",
        "Completed",
    ));
    cases.push((
        "stopped",
        capture(&ns, "stopped", "stopped"),
        "Healthy",
        "Stopped",
    ));
    cases.push((
        "stalled",
        capture(&ns, "stalled", "stalled"),
        "Degraded",
        "InvalidDefinition: ",
    ));
    cases.push((
        "resuming",
        capture(&ns, "resuming", "resuming"),
        "Progressing",
        "Resuming: released ",
    ));
    // Not yet observed: a captured object whose generation moved past observedGeneration.
    let mut behind = capture(&ns, "live", "live-behind");
    let generation = behind["metadata"]["generation"].as_i64().unwrap_or(1);
    behind["metadata"]["generation"] = json!(generation + 1);
    cases.push((
        "behind",
        behind,
        "Progressing",
        "Waiting for the controller",
    ));
    let mut no_status = capture(&ns, "live", "no-status");
    no_status.as_object_mut().map(|o| o.remove("status"));
    cases.push((
        "no status",
        no_status,
        "Progressing",
        "Waiting for the controller",
    ));

    for (name, object, status, message) in &cases {
        let (got_status, got_message) = health(object);
        assert_eq!(&got_status, status, "{name}: {got_message}");
        assert!(
            got_message.starts_with(message),
            "{name}: {got_message:?} should start with {message:?}"
        );
    }
    // kstatus: Current when Ready, InProgress while Resuming or not yet observed, Failed when
    // Stalled.
    for (name, object, _, _) in &cases {
        let expected = match *name {
            "resuming" | "behind" => "InProgress",
            "stalled" => "Failed",
            _ => "Current",
        };
        let (got, message) = kstatus(object);
        assert_eq!(got, expected, "kstatus of {name}: {message}");
    }
    let paused = health(&capture(&ns, "paused", "paused")).1;
    assert!(paused.contains("copy review"), "{paused}");
    controller.stop().await;
}
