//! The basic lifecycle, Draft → Published (Live) → Paused (Hold) → Published (Live), as one
//! function any test can run against whichever controller is reconciling the namespace: the
//! in-process one, the image in podman, or the pod on a real node.

use journey_operator::api::{Journey, Phase};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::builders::{Spec, object};
use crate::controller_support::{and, has_condition, in_phase, wait_for};
use crate::support::{FIELD_MANAGER, WAIT};

/// Drives one journey `basic` in `ns` through the lifecycle with server-side apply, waiting on
/// each phase (failing with the journeys' YAML). The CRDs must be installed and a controller
/// must watch `ns`.
pub async fn basic_lifecycle(client: &kube::Client, ns: &str) {
    let api: Api<Journey> = Api::namespaced(client.clone(), ns);
    let spec = |state: &str| {
        Spec::on_event("SignedUp")
            .state(state)
            .action("welcome", "record", None)
    };
    let apply = async |spec: Spec| {
        let journey = object("basic", Some(ns), &spec.build());
        api.patch(
            "basic",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&journey),
        )
        .await
        .expect("applying the journey");
    };

    apply(spec("Draft")).await;
    wait_for(
        &api,
        "basic",
        "Draft and Ready",
        WAIT,
        and(in_phase(Phase::Draft), has_condition("Ready", "True")),
    )
    .await;
    apply(spec("Published")).await;
    wait_for(
        &api,
        "basic",
        "Live and Ready",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Ready", "True")),
    )
    .await;
    apply(spec("Paused").with(json!({"pause": {"mode": "Hold", "reason": "copy review"}}))).await;
    wait_for(
        &api,
        "basic",
        "Paused and Ready",
        WAIT,
        and(in_phase(Phase::Paused), has_condition("Ready", "True")),
    )
    .await;
    apply(spec("Published")).await;
    wait_for(
        &api,
        "basic",
        "Live again",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Resuming", "False")),
    )
    .await;
}

/// The lifecycle against the in-process controller: the baseline the image and the node runs
/// are compared with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_basic_lifecycle_passes_with_the_in_process_controller() {
    let (ns, _api, controller) = crate::controller_support::setup("basic-lifecycle").await;
    basic_lifecycle(&crate::support::client().await, &ns).await;
    controller.stop().await;
}
