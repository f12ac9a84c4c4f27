//! The basic lifecycle, against whichever operator serves `client`'s cluster (an in-cluster
//! operator in a container or on a real node): Draft → Published (Live) → Paused by a
//! JourneyHold → Published again once the hold is gone → Live.

use journey_operator::api::hold::JourneyHold;
use journey_operator::api::{Journey, Phase};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::builders::{Spec, object};
use crate::controller_support::{and, has_condition, in_phase, wait_for};
use crate::support::{FIELD_MANAGER, WAIT};

fn journey(ns: &str, state: &str) -> Value {
    let spec = Spec::on_event("Signup")
        .state(state)
        .wait("wait", "1h")
        .action("send", "record", None)
        .build();
    let mut j = object("basic", Some(ns), &spec);
    j["metadata"]["labels"] = json!({"team": "basic"});
    j
}

async fn apply(api: &Api<Journey>, body: Value) {
    api.patch(
        "basic",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .expect("applying journey basic");
}

pub async fn basic_lifecycle(client: &kube::Client, ns: &str) {
    let api: Api<Journey> = Api::namespaced(client.clone(), ns);
    apply(&api, journey(ns, "Draft")).await;
    let ready = || has_condition("Ready", "True");
    wait_for(
        &api,
        "basic",
        "Draft",
        WAIT,
        and(in_phase(Phase::Draft), ready()),
    )
    .await;

    apply(&api, journey(ns, "Published")).await;
    wait_for(&api, "basic", "Live", WAIT, in_phase(Phase::Live)).await;

    let holds: Api<JourneyHold> = Api::namespaced(client.clone(), ns);
    let hold = json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "JourneyHold",
        "metadata": {"name": "basic-hold", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"team": "basic"}},
                 "reason": "basic lifecycle", "duration": "1h"},
    });
    holds
        .patch(
            "basic-hold",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(hold),
        )
        .await
        .expect("applying the hold");
    wait_for(
        &api,
        "basic",
        "Paused by the hold",
        WAIT,
        and(in_phase(Phase::Paused), has_condition("Held", "True")),
    )
    .await;

    holds
        .delete("basic-hold", &DeleteParams::default())
        .await
        .expect("deleting the hold");
    wait_for(
        &api,
        "basic",
        "Live after the hold",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Held", "False")),
    )
    .await;
}
