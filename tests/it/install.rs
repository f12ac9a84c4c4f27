//! The deployable manifests: `kubectl apply --server-side -k manifests/` works, and the
//! controller runs with nothing but the ServiceAccount's least-privilege RBAC.

use journey_operator::api::{Journey, Phase};
use kube::Api;
use serde_json::json;

use crate::controller_support::{
    Options, TestController, and, apply, has_condition, in_phase, wait_for,
};
use crate::support::{self, kubectl};

use crate::support::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_with_only_its_service_account_rbac() {
    support::install_crds().await;
    let out = kubectl(
        &[
            "apply",
            "--server-side",
            "-k",
            concat!(env!("CARGO_MANIFEST_DIR"), "/manifests"),
        ],
        None,
    );
    assert!(
        out.success,
        "kubectl apply --server-side -k manifests/: {out:?}"
    );
    for expected in [
        "customresourcedefinition.apiextensions.k8s.io/journeys.journey.dev",
        "clusterrole.rbac.authorization.k8s.io/journey-operator",
        "deployment.apps/journey-operator",
    ] {
        assert!(out.stdout.contains(expected), "{}", out.stdout);
    }

    // A token for the manifests' ServiceAccount, through the TokenRequest API.
    let token = support::service_account_token();
    let cp = support::control_plane_dir();
    let server = support::server_url();
    let client = support::client().await;
    let ns = support::namespace(&client, "least-privilege").await;
    let kubeconfig = cp.join(format!("sa-{ns}.kubeconfig"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: local\n  context: {{cluster: local, user: sa}}\ncurrent-context: local\n",
            cp.join("ca.crt").display(),
            token
        ),
    )
    .expect("kubeconfig");
    let identity = "system:serviceaccount:journey-operator:journey-operator".to_string();

    // Denied what it should not have.
    let secrets = support::kubectl_as(&kubeconfig, &["get", "secrets", "-n", &ns], None);
    assert!(
        !secrets.success && secrets.stderr.contains("Forbidden"),
        "{secrets:?}"
    );
    let pods = support::kubectl_as(&kubeconfig, &["get", "pods", "-n", &ns], None);
    assert!(
        !pods.success && pods.stderr.contains("Forbidden"),
        "{pods:?}"
    );
    // Exactly the verbs the controller uses, as the apiserver's authorizer answers them.
    for (verb, resource, subresource, allowed) in [
        ("patch", "journeys", "", true),
        ("patch", "journeys", "status", true),
        ("update", "journeys", "finalizers", true),
        ("create", "events.events.k8s.io", "", true),
        ("delete", "journeys", "", false),
        ("update", "journeys", "", false),
        ("create", "journeys", "", false),
        ("update", "journeys", "status", false),
        ("list", "secrets", "", false),
        ("delete", "events.events.k8s.io", "", false),
        ("watch", "journeyholds", "", true),
        ("patch", "journeyholds", "status", true),
        ("watch", "clusterjourneyholds", "", true),
        ("create", "journeyholds", "", false),
        ("delete", "journeyholds", "", false),
        ("watch", "namespaces", "", true),
        ("patch", "namespaces", "", false),
    ] {
        let sub = format!("--subresource={subresource}");
        let mut args = vec!["auth", "can-i", verb, resource, "-n", &ns];
        if !subresource.is_empty() {
            args.push(&sub);
        }
        let can = support::kubectl_as(&kubeconfig, &args, None);
        assert_eq!(
            can.stdout.trim() == "yes",
            allowed,
            "can-i {verb} {resource} {subresource}: {can:?}"
        );
    }

    // The basic lifecycle with only that identity.
    let controller = TestController::start_with(
        &ns,
        Options {
            identity: Some((identity.clone(), kubeconfig.clone())),
            ..Options::default()
        },
    )
    .await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let spec = |state: &str| {
        json!({
            "state": state,
            "entry": {"event": {"name": "SignedUp"}},
            "steps": [{"id": "welcome", "action": {"channel": "record"}}]
        })
    };
    apply(&ns, "j", spec("Draft"));
    wait_for(
        &api,
        "j",
        "Draft",
        WAIT,
        and(in_phase(Phase::Draft), has_condition("Ready", "True")),
    )
    .await;
    apply(&ns, "j", spec("Published"));
    wait_for(
        &api,
        "j",
        "Live",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Ready", "True")),
    )
    .await;
    let events = kubectl(
        &[
            "get",
            "events",
            "-n",
            &ns,
            "-o",
            "jsonpath={.items[*].reason}",
        ],
        None,
    );
    assert!(
        events.stdout.contains("Published"),
        "events were recorded: {events:?}"
    );
    // An emergency hold, held and released with only that identity (its finalizer and status
    // included).
    let hold = format!(
        "apiVersion: journey.dev/v1alpha1\nkind: JourneyHold\nmetadata: {{name: incident, namespace: {ns}}}\nspec: {{selector: {{}}, reason: least privilege, duration: 1h}}\n"
    );
    let out = kubectl(&["apply", "-f", "-"], Some(&hold));
    assert!(out.success, "{out:?}");
    wait_for(&api, "j", "Held", WAIT, has_condition("Held", "True")).await;
    crate::support::eventually("the hold's status written", async || {
        let out = kubectl(
            &[
                "get",
                "journeyhold",
                "incident",
                "-n",
                &ns,
                "-o",
                "jsonpath={.status.matched}",
            ],
            None,
        );
        out.stdout.trim() == "1"
    })
    .await;
    let out = kubectl(&["delete", "journeyhold", "incident", "-n", &ns], None);
    assert!(out.success, "{out:?}");
    wait_for(&api, "j", "released", WAIT, has_condition("Held", "False")).await;
    apply(&ns, "j", spec("Paused"));
    wait_for(&api, "j", "Paused", WAIT, in_phase(Phase::Paused)).await;
    let out = kubectl(&["delete", "journey", "j", "-n", &ns, "--wait=false"], None);
    assert!(out.success, "{out:?}");
    crate::support::eventually(
        "the finalizer released with only the ServiceAccount's rights",
        async || api.get_opt("j").await.ok().flatten().is_none(),
    )
    .await;
    controller.stop().await;
}
