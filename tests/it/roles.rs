//! The users' ClusterRoles (manifests/roles.yaml): their aggregation labels, and what each
//! grants when bound directly. The local control plane runs no controller-manager, so the
//! built-in view/edit/admin roles are never aggregated here; the labels are checked as data.
//! The holds' resources are checked with the authorizer alone: their CRDs are not installed.

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::PostParams;

use crate::support::{self, kubectl};

const VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
const EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";

fn apply_roles() {
    let out = kubectl(
        &[
            "apply",
            "--server-side",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/roles.yaml"),
        ],
        None,
    );
    assert!(out.success, "manifests/roles.yaml: {out:?}");
}

#[tokio::test]
async fn the_roles_aggregate_to_view_edit_and_admin() {
    apply_roles();
    let api: Api<ClusterRole> = Api::all(support::client().await);
    for (role, expected) in [
        ("journey-operator-view", &[VIEW][..]),
        ("journey-operator-edit", &[EDIT, ADMIN][..]),
        // Not aggregated: editing a namespace does not make one a publisher.
        ("journey-operator-publish", &[][..]),
        // Holds are an incident tool: admins only.
        ("journey-operator-hold-admin", &[ADMIN][..]),
    ] {
        let got = api.get(role).await.expect(role);
        let labels = got.metadata.labels.unwrap_or_default();
        let aggregation: Vec<&str> = labels
            .iter()
            .filter(|(k, _)| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
            .map(|(k, v)| {
                assert_eq!(v, "true", "{role}: {k}");
                k.as_str()
            })
            .collect();
        let mut want = expected.to_vec();
        want.sort_unstable();
        assert_eq!(aggregation, want, "{role}'s aggregation labels");
    }
}

/// Asks the apiserver's authorizer, as `kubectl auth can-i --as` does, with a
/// SubjectAccessReview. Posted directly: `kubectl auth can-i` resolves the resource through
/// discovery first, and for a resource the apiserver does not serve yet (the holds' CRDs are
/// not installed here) it asks about `journeyholds.journey.dev` in the core group instead.
async fn can(
    client: &kube::Client,
    user: &str,
    verb: &str,
    resource: &str,
    ns: Option<&str>,
) -> bool {
    let (resource, group) = resource.split_once('.').expect("resource.group");
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {
            "user": user,
            "resourceAttributes": {
                "group": group, "resource": resource, "verb": verb, "namespace": ns.unwrap_or(""),
            }
        }
    }))
    .expect("review");
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview");
    answer.status.is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn each_role_grants_what_it_says_when_bound() {
    support::install_crds().await;
    apply_roles();
    let client = support::client().await;
    let ns = support::namespace(&client, "roles").await;
    let user = |role: &str| format!("{role}-{ns}");
    let mut bindings = String::new();
    for role in ["view", "edit", "publish", "hold-admin"] {
        bindings.push_str(&format!(
            "---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {role}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: journey-operator-{role}}}
subjects:
- {{kind: User, name: {user}, apiGroup: rbac.authorization.k8s.io}}
",
            user = user(role)
        ));
    }
    // Cluster-wide holds need a ClusterRoleBinding.
    let cluster_holder = format!("cluster-hold-admin-{ns}");
    bindings.push_str(&format!(
        "---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {cluster_holder}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: journey-operator-hold-admin}}
subjects:
- {{kind: User, name: {cluster_holder}, apiGroup: rbac.authorization.k8s.io}}
"
    ));
    let out = kubectl(&["apply", "-f", "-"], Some(&bindings));
    assert!(out.success, "{out:?}");

    let (viewer, editor, publisher, holder) = (
        user("view"),
        user("edit"),
        user("publish"),
        user("hold-admin"),
    );
    let n = Some(ns.as_str());
    // RBAC answers from its informers: wait until the last binding counts.
    support::eventually("the bindings in effect", async || {
        can(
            &client,
            &cluster_holder,
            "create",
            "clusterjourneyholds.journey.dev",
            None,
        )
        .await
            && can(&client, &holder, "create", "journeyholds.journey.dev", n).await
    })
    .await;

    let journeys = "journeys.journey.dev";
    for (who, verb, resource, expected) in [
        (&viewer, "get", journeys, true),
        (&viewer, "watch", journeys, true),
        (&viewer, "list", "journeyholds.journey.dev", true),
        (&viewer, "create", journeys, false),
        (&viewer, "delete", journeys, false),
        (&viewer, "create", "journeyholds.journey.dev", false),
        (&editor, "create", journeys, true),
        (&editor, "patch", journeys, true),
        (&editor, "delete", journeys, true),
        (&editor, "create", "journeyholds.journey.dev", false),
        (&publisher, "create", journeys, true),
        (&publisher, "update", journeys, true),
        (&publisher, "delete", journeys, true),
        (&holder, "create", "journeyholds.journey.dev", true),
        (&holder, "delete", "journeyholds.journey.dev", true),
        (&holder, "create", journeys, false),
    ] {
        assert_eq!(
            can(&client, who, verb, resource, n).await,
            expected,
            "{who} {verb} {resource}"
        );
    }
    // A RoleBinding grants the namespace's holds only, a ClusterRoleBinding the cluster's.
    for (who, verb, expected) in [
        (&holder, "create", false),
        (&cluster_holder, "delete", true),
        (&viewer, "get", false),
    ] {
        assert_eq!(
            can(&client, who, verb, "clusterjourneyholds.journey.dev", None).await,
            expected,
            "{who} {verb} clusterjourneyholds"
        );
    }

    // And real requests: the viewer's create is refused, the editor's goes through.
    let journey = crate::controller_support::manifest(
        "bound",
        serde_json::json!({
            "entry": {"event": {"name": "SignedUp"}},
            "steps": [{"id": "welcome", "action": {"channel": "record"}}]
        }),
    );
    let out = kubectl(
        &["create", "-n", &ns, "--as", &viewer, "-f", "-"],
        Some(&journey),
    );
    assert!(
        !out.success && out.stderr.contains("Forbidden"),
        "the viewer may not create: {out:?}"
    );
    let out = kubectl(
        &["create", "-n", &ns, "--as", &editor, "-f", "-"],
        Some(&journey),
    );
    assert!(out.success, "the editor creates: {out:?}");
    let out = kubectl(
        &["get", "journey", "bound", "-n", &ns, "--as", &viewer],
        None,
    );
    assert!(out.success, "the viewer reads it: {out:?}");
}
