//! The `journey.dev/engine` finalizer: `manifests/admission/` adds it when a journey is
//! created, so the controller's first reconcile writes the status only; without it (a cluster
//! without the policy, or someone removing the finalizer) the controller adds it itself.

use journey_operator::api::{Journey, Phase};
use journey_operator::controller::reconciler::FINALIZER;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::controller_support::{TestController, and, apply, in_phase, kubectl_blocking, wait_for};
use crate::support::{self, kubectl};

use crate::builders::Spec;
use crate::support::WAIT;

fn spec() -> Value {
    Spec::on_event("SignedUp")
        .state("Published")
        .action("welcome", "record", Some(json!({"template": "welcome"})))
        .build()
}

/// The controller's writes to `name` in the audit log: (verb, subresource).
fn controller_writes(identity: &str, ns: &str, name: &str) -> Vec<(String, String)> {
    let audit = support::control_plane_dir().join("audit.log");
    let text = std::fs::read_to_string(audit).expect("audit log");
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| {
            e["user"]["username"] == identity
                && e["objectRef"]["resource"] == "journeys"
                && e["objectRef"]["namespace"] == ns
                && e["objectRef"]["name"] == name
                && e["stage"] == "ResponseComplete"
                && matches!(e["verb"].as_str(), Some("create" | "update" | "patch"))
        })
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or_default().to_string(),
                e["objectRef"]["subresource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_arrives_with_the_journey_and_the_controller_restores_it() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "finalizer").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);

    // No controller yet: the admission policy alone puts the finalizer on a new journey.
    apply(&ns, "admitted", spec());
    let admitted = api.get("admitted").await.expect("get admitted");
    assert_eq!(admitted.finalizers(), [FINALIZER], "added at creation");

    // As on a cluster without the policy: a journey with no finalizer.
    apply(&ns, "bare", spec());
    let out = kubectl(
        &[
            "patch",
            "journey",
            "bare",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op": "remove", "path": "/metadata/finalizers"}]"#,
        ],
        None,
    );
    assert!(out.success, "{out:?}");
    assert!(
        api.get("bare")
            .await
            .expect("get bare")
            .finalizers()
            .is_empty()
    );

    let controller = TestController::start(&ns).await;
    let has_finalizer =
        |j: Option<&Journey>| j.is_some_and(|j| j.finalizers().iter().any(|f| f == FINALIZER));
    wait_for(
        &api,
        "bare",
        "finalizer restored and Live",
        WAIT,
        and(has_finalizer, in_phase(Phase::Live)),
    )
    .await;
    wait_for(&api, "admitted", "Live", WAIT, in_phase(Phase::Live)).await;

    let identity = controller.identity.clone();
    controller.stop().await;
    let admitted_writes = controller_writes(&identity, &ns, "admitted");
    assert_eq!(
        admitted_writes,
        [("patch".to_string(), "status".to_string())],
        "a journey admitted with its finalizer costs one write: its status"
    );
    let bare_writes = controller_writes(&identity, &ns, "bare");
    assert_eq!(
        bare_writes,
        [
            ("patch".to_string(), String::new()),
            ("patch".to_string(), "status".to_string())
        ],
        "without the policy: the finalizer patch, then the status"
    );
    // Deleting still goes through the controller's cleanup.
    let controller = TestController::start(&ns).await;
    for name in ["admitted", "bare"] {
        let out = kubectl_blocking(&["delete", "journey", name, "-n", &ns, "--timeout=60s"]).await;
        assert!(out.success, "{out:?}\n{}", support::dump_journeys(&ns));
    }
    controller.stop().await;
}
