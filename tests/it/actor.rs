//! Who changed it (manifests/admission/lifecycle-actor.yaml): the apiserver stamps the
//! requester into journey.dev/lifecycle-changed-by on every lifecycle change, overwrites a
//! hand-set value, puts the old value back when a write changes no lifecycle field, and keeps
//! journey.dev/change-ref as the requester set it.

use std::path::Path;

use journey_operator::api::Journey;
use journey_operator::api::annotations::{CHANGE_REF, LIFECYCLE_CHANGED_BY};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use xtask::control_plane::{mint_client_cert, write_kubeconfig_for};

use crate::support::{self, kubectl, kubectl_as};

fn journey(state: &str, wait: &str, annotations: Value) -> Value {
    let spec = json!({
        "state": state,
        "entry": {"event": {"name": "SignedUp"}},
        "steps": [
            {"id": "wait", "wait": {"duration": wait}},
            {"id": "welcome", "action": {"channel": "record"}}
        ]
    });
    let mut object = crate::builders::object("welcome", None, &spec);
    object["metadata"]["annotations"] = annotations;
    object
}

/// Two client-certificate identities allowed to edit journeys in `ns`: alice and bob.
fn authors(ns: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = kubectl(
        &[
            "apply",
            "--server-side",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/roles.yaml"),
        ],
        None,
    );
    assert!(out.success, "{out:?}");
    let rbac = ["view", "edit"]
        .map(|role| {
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: authors-{role}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: journey-operator-{role}}}
subjects:
- {{kind: Group, name: journey-authors, apiGroup: rbac.authorization.k8s.io}}
"
            )
        })
        .join("---\n");
    let out = kubectl(&["apply", "-f", "-"], Some(&rbac));
    assert!(out.success, "{out:?}");
    let cp = support::control_plane_dir();
    let server = support::server_url();
    let identity = |user: &str| {
        let cert = mint_client_cert(&cp, user, Some("journey-authors")).expect("cert");
        write_kubeconfig_for(&cp, &server, &format!("{user}-{ns}"), &cert).expect("kubeconfig")
    };
    let alice = identity("alice-author");
    let bob = identity("bob-author");

    (alice, bob)
}

#[tokio::test]
async fn the_lifecycle_actor_is_whoever_the_apiserver_authenticated() {
    // install_crds installs manifests/admission/ and waits until it is in effect.
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "actor").await;
    let (alice, bob) = authors(&ns);
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let apply = async |who: &Path, object: Value| -> (Option<String>, Option<String>) {
        let yaml = serde_yaml::to_string(&object).expect("yaml");
        let out = kubectl_as(who, &["apply", "-n", &ns, "-f", "-"], Some(&yaml));
        assert!(out.success, "{out:?}\n{}", support::dump_journeys(&ns));
        let got = api.get("welcome").await.expect("get");
        let annotation = |key: &str| got.annotations().get(key).cloned();
        (annotation(LIFECYCLE_CHANGED_BY), annotation(CHANGE_REF))
    };
    let who = |name: &str| Some(name.to_string());

    // Each identity's state change names it.
    let (actor, _) = apply(&alice, journey("Draft", "1h", json!({}))).await;
    assert_eq!(actor, who("alice-author"), "the creator");
    let (actor, _) = apply(&bob, journey("Published", "1h", json!({}))).await;
    assert_eq!(actor, who("bob-author"), "the publisher");

    // A hand-set actor on a lifecycle change is overwritten; the change ref is carried.
    let pr = "https://github.com/example/journeys/pull/42";
    let (actor, change_ref) = apply(
        &alice,
        journey(
            "Paused",
            "1h",
            json!({LIFECYCLE_CHANGED_BY: "somebody-else", CHANGE_REF: pr}),
        ),
    )
    .await;
    assert_eq!(
        actor,
        who("alice-author"),
        "a hand-set actor is overwritten"
    );
    assert_eq!(change_ref.as_deref(), Some(pr), "change-ref kept as set");

    // A content-only change neither names its author nor lets a hand-set value stand.
    let (actor, change_ref) = apply(
        &bob,
        journey(
            "Paused",
            "2h",
            json!({LIFECYCLE_CHANGED_BY: "somebody-else", CHANGE_REF: pr}),
        ),
    )
    .await;
    assert_eq!(
        actor,
        who("alice-author"),
        "the last lifecycle change's actor"
    );
    assert_eq!(change_ref.as_deref(), Some(pr));
    let (actor, _) = apply(&bob, journey("Paused", "3h", json!({CHANGE_REF: pr}))).await;
    assert_eq!(actor, who("alice-author"), "not removed by leaving it out");

    // A request annotation is a lifecycle change.
    let (actor, change_ref) = apply(
        &bob,
        journey(
            "Paused",
            "3h",
            json!({"journey.dev/restart-requested-at": "t1", CHANGE_REF: "abc123"}),
        ),
    )
    .await;
    assert_eq!(actor, who("bob-author"), "the restart's requester");
    assert_eq!(change_ref.as_deref(), Some("abc123"));
}

/// The controller copies who changed the lifecycle, and the change ref, into the status:
/// `status.pause.actor`/`changeRef` and each history entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_says_who_published_and_who_paused() {
    let (ns, api, controller) = crate::controller_support::setup("actor-status").await;
    let (alice, bob) = authors(&ns);
    let apply = |who: &Path, object: Value| {
        let yaml = serde_yaml::to_string(&object).expect("yaml");
        let out = kubectl_as(who, &["apply", "-n", &ns, "-f", "-"], Some(&yaml));
        assert!(out.success, "{out:?}\n{}", support::dump_journeys(&ns));
    };
    apply(
        &alice,
        journey(
            "Published",
            "1h",
            json!({CHANGE_REF: "https://git.example/pr/1"}),
        ),
    );
    crate::controller_support::wait_for(
        &api,
        "welcome",
        "Live",
        crate::support::WAIT,
        crate::controller_support::in_phase(journey_operator::api::Phase::Live),
    )
    .await;
    apply(
        &bob,
        journey("Paused", "1h", json!({CHANGE_REF: "0f3c2ab"})),
    );
    let j = crate::controller_support::wait_for(
        &api,
        "welcome",
        "Paused",
        crate::support::WAIT,
        crate::controller_support::in_phase(journey_operator::api::Phase::Paused),
    )
    .await;
    let status = j.status.expect("status");
    let pause = status.pause.expect("pause");
    assert_eq!(pause.actor.as_deref(), Some("bob-author"));
    assert_eq!(pause.change_ref.as_deref(), Some("0f3c2ab"));
    let entry = |to: journey_operator::api::Phase| {
        status
            .history
            .iter()
            .rev()
            .find(|t| t.to == to)
            .unwrap_or_else(|| panic!("no transition to {to:?}: {:?}", status.history))
    };
    let live = entry(journey_operator::api::Phase::Live);
    assert_eq!(live.actor.as_deref(), Some("alice-author"));
    assert_eq!(live.change_ref.as_deref(), Some("https://git.example/pr/1"));
    let paused = entry(journey_operator::api::Phase::Paused);
    assert_eq!(paused.actor.as_deref(), Some("bob-author"));
    assert_eq!(paused.change_ref.as_deref(), Some("0f3c2ab"));
    controller.stop().await;
}
