//! Proof that the control plane is real: behaviours a fake API server would not show.

use std::time::Duration;

use futures::StreamExt;
use journey_operator::api::Journey;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use xtask::control_plane::{mint_client_cert, write_kubeconfig_for};

use crate::builders::Spec;
use crate::support::{self, kubectl};

fn journey(name: &str, state: &str) -> Journey {
    let spec = Spec::on_event("SignedUp")
        .state(state)
        .action(
            "welcome",
            "email",
            Some(serde_json::json!({"template": "welcome"})),
        )
        .build();
    serde_json::from_value(crate::builders::object(name, None, &spec)).expect("journey")
}

#[tokio::test]
async fn apiserver_reports_the_version_it_was_built_as() {
    let client = support::client().await;
    let info = client.apiserver_version().await.expect("/version");
    assert_eq!(info.major, "1");
    assert_eq!(
        info.minor, "37",
        "k8s-openapi's v1_37 feature needs a 1.37 apiserver"
    );
    assert!(
        info.git_version.starts_with("v1.37."),
        "{}",
        info.git_version
    );
    assert_eq!(info.git_tree_state, "clean");
}

#[tokio::test]
async fn cel_transition_rule_is_enforced_for_the_client_and_for_kubectl() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "cel-rule").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &journey("welcome", "Published"))
        .await
        .expect("create a published journey");

    // Through kube::Client: the oldSelf rule rejects Published → Draft with its message.
    let back_to_draft = serde_json::json!({
        "apiVersion": "journey.dev/v1alpha1", "kind": "Journey",
        "metadata": {"name": "welcome"},
        "spec": {"state": "Draft"}
    });
    let err = api
        .patch(
            "welcome",
            &PatchParams::apply("cel-test").force(),
            &Patch::Apply(&back_to_draft),
        )
        .await
        .expect_err("the apiserver must reject Published → Draft");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("cannot return to Draft"),
                "{}",
                status.message
            );
        }
        other => panic!("unexpected error {other:?}"),
    }

    // Through the real kubectl, as a user types it: the same message on stderr.
    let manifest = serde_yaml::to_string(&journey("welcome", "Draft")).expect("yaml");
    let out = kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&manifest));
    assert!(!out.success, "kubectl apply must fail: {out:?}");
    assert!(
        out.stderr.contains("spec.state: Forbidden")
            && out.stderr.contains("cannot return to Draft"),
        "stderr: {}",
        out.stderr
    );
}

#[tokio::test]
async fn a_watch_sees_an_update_made_with_kubectl() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "watch").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &journey("watched", "Draft"))
        .await
        .expect("create");

    let mut events = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    // The initial listing delivers the object as it is now.
    let first = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("initial event in time")
        .expect("stream open")
        .expect("watch ok");
    assert!(first.metadata.labels.is_none());

    let out = kubectl(
        &["label", "-n", &ns, "journey/watched", "team=growth"],
        None,
    );
    assert!(out.success, "{out:?}");
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.next().await {
            let obj = event.expect("watch ok");
            if obj
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("team"))
                .is_some_and(|v| v == "growth")
            {
                return obj;
            }
        }
        panic!("watch ended")
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no watch event for kubectl's label\n{}",
            support::dump_journeys(&ns)
        )
    });
    assert_eq!(seen.metadata.name.as_deref(), Some("watched"));
}

#[tokio::test]
async fn status_written_by_server_side_apply_is_owned_by_its_field_manager() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "status-ssa").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &journey("owned", "Published"))
        .await
        .expect("create");

    let status = serde_json::json!({
        "apiVersion": "journey.dev/v1alpha1", "kind": "Journey",
        "metadata": {"name": "owned"},
        "status": {"phase": "Live", "observedGeneration": 1}
    });
    api.patch_status(
        "owned",
        &PatchParams::apply("status-writer-test").force(),
        &Patch::Apply(&status),
    )
    .await
    .expect("status apply");

    let obj = api.get("owned").await.expect("get");
    assert_eq!(
        obj.status.as_ref().and_then(|s| s.phase),
        Some(journey_operator::api::Phase::Live)
    );
    let managed = obj.metadata.managed_fields.unwrap_or_default();
    let entry = managed
        .iter()
        .find(|m| m.manager.as_deref() == Some("status-writer-test"))
        .unwrap_or_else(|| panic!("no managedFields entry for the manager: {managed:?}"));
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    let fields = serde_json::to_string(&entry.fields_v1).expect("fields");
    assert!(fields.contains("f:phase"), "{fields}");
}

#[tokio::test]
async fn rbac_forbids_an_identity_it_grants_nothing() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "rbac").await;
    let dir = support::control_plane_dir();
    let server = support::server_url();
    let cert = mint_client_cert(&dir, "test-nobody", None).expect("mint");
    let kubeconfig =
        write_kubeconfig_for(&dir, &server, &format!("nobody-{ns}"), &cert).expect("kubeconfig");

    let nobody = support::client_for(&kubeconfig).await;
    let api: Api<Journey> = Api::namespaced(nobody, &ns);
    match api.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains("test-nobody"), "{}", status.message);
        }
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
    // Authentication itself worked: the certificate is trusted, only authorization says no.
    let out = support::kubectl_as(
        &kubeconfig,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    );
    assert!(out.success, "{out:?}");
    assert_eq!(out.stdout, "test-nobody");
}

#[tokio::test]
async fn the_audit_log_records_verb_and_user_of_each_request() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "audit").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &journey("audited", "Draft"))
        .await
        .expect("create");
    let path = support::control_plane_dir().join("audit.log");
    let found = (0..100).any(|_| {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let hit = text.lines().any(|line| {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                return false;
            };
            event["verb"] == "create"
                && event["user"]["username"] == "journey-admin"
                && event["objectRef"]["resource"] == "journeys"
                && event["objectRef"]["namespace"] == ns.as_str()
        });
        if !hit {
            std::thread::sleep(Duration::from_millis(50));
        }
        hit
    });
    assert!(found, "no audit event for the create in {}", path.display());
}
