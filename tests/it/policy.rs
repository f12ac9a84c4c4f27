//! The optional lifecycle-permission policy (manifests/policy/): only the publishers' group may
//! publish, pause, resume, close or stop; editors may still change content.

use serde_json::{Value, json};
use xtask::control_plane::{mint_client_cert, write_kubeconfig_for};

use crate::controller_support::manifest;
use crate::support::{self, kubectl, kubectl_as};

fn spec(state: &str, wait: &str) -> Value {
    json!({
        "state": state,
        "entry": {"event": {"name": "SignedUp"}},
        "steps": [
            {"id": "wait", "wait": {"duration": wait}},
            {"id": "welcome", "action": {"channel": "record"}}
        ]
    })
}

#[tokio::test]
async fn only_publishers_change_the_lifecycle() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "policy").await;
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "manifests/namespace.yaml",
        "manifests/policy/lifecycle-publishers.yaml",
    ] {
        let out = kubectl(
            &["apply", "--server-side", "-f", &format!("{root}/{file}")],
            None,
        );
        assert!(out.success, "{file}: {out:?}");
    }
    let out = kubectl(
        &[
            "label",
            "namespace",
            &ns,
            "journey.dev/lifecycle-policy=enforced",
        ],
        None,
    );
    assert!(out.success, "{out:?}");
    // Both identities may edit journeys in the namespace; the policy tells them apart.
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: journey-editor, namespace: {ns}}}
rules:
- apiGroups: [journey.dev]
  resources: [journeys]
  verbs: [get, list, watch, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: journey-editors, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: journey-editor}}
subjects:
- {{kind: Group, name: journey-editors, apiGroup: rbac.authorization.k8s.io}}
- {{kind: Group, name: journey-publishers, apiGroup: rbac.authorization.k8s.io}}
"
    );
    let out = kubectl(&["apply", "-f", "-"], Some(&rbac));
    assert!(out.success, "{out:?}");

    let cp = support::control_plane_dir();
    let server = support::server_url();
    let identity = |user: &str, group: &str| {
        let cert = mint_client_cert(&cp, user, Some(group)).expect("cert");
        write_kubeconfig_for(&cp, &server, &format!("{user}-{ns}"), &cert).expect("kubeconfig")
    };
    let editor = identity("erin-editor", "journey-editors");
    let publisher = identity("pat-publisher", "journey-publishers");
    let apply_as = |who: &std::path::Path, state: &str, wait: &str| {
        kubectl_as(
            who,
            &["apply", "-n", &ns, "-f", "-"],
            Some(&manifest("welcome", spec(state, wait))),
        )
    };

    // The apiserver applies a new policy and binding after its informers sync: wait until an
    // editor's server-side dry run of a Published create is refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let probe = kubectl_as(
            &editor,
            &["apply", "-n", &ns, "--dry-run=server", "-f", "-"],
            Some(&manifest("policy-probe", spec("Published", "1h"))),
        );
        if !probe.success && probe.stderr.contains("journey-publishers") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lifecycle policy was not in effect after 30s: {probe:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Editors create drafts and change content.
    let out = apply_as(&editor, "Draft", "1h");
    assert!(out.success, "an editor creates a Draft: {out:?}");
    let out = apply_as(&editor, "Draft", "2h");
    assert!(out.success, "an editor edits content: {out:?}");
    // Publishing is the publishers' call.
    let out = apply_as(&editor, "Published", "2h");
    assert!(!out.success, "an editor may not publish: {out:?}");
    assert!(
        out.stderr
            .contains("only members of group journey-publishers may change spec.state"),
        "a clear message: {}",
        out.stderr
    );
    let out = apply_as(&publisher, "Published", "2h");
    assert!(out.success, "a publisher publishes: {out:?}");
    // Content stays open to editors after publishing; pausing does not.
    let out = apply_as(&editor, "Published", "3h");
    assert!(
        out.success,
        "an editor edits a published journey's content: {out:?}"
    );
    let out = apply_as(&editor, "Paused", "3h");
    assert!(
        !out.success && out.stderr.contains("journey-publishers"),
        "an editor may not pause: {out:?}"
    );
    let out = apply_as(&publisher, "Paused", "3h");
    assert!(out.success, "a publisher pauses: {out:?}");
}
