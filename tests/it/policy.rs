//! The optional lifecycle-permission policy (manifests/policy/): only the publishers' group may
//! publish, pause, resume, close or stop, request runs and restarts, change how a published
//! journey resumes or is deleted, and delete it; editors may still change content and own
//! their Drafts. Both identities hold the ClusterRoles of manifests/roles.yaml.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use xtask::control_plane::{mint_client_cert, write_kubeconfig_for};

use crate::controller_support::manifest;
use crate::support::{self, KubectlOutput, kubectl, kubectl_as};

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

/// A namespace where the policy is enforced, with an editor (group journey-editors) and a
/// publisher (group journey-publishers), both allowed by RBAC to write journeys.
struct Enforced {
    ns: String,
    editor: PathBuf,
    publisher: PathBuf,
}

async fn enforced_namespace(prefix: &str) -> Enforced {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, prefix).await;
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "manifests/namespace.yaml",
        "manifests/roles.yaml",
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
    // RBAC lets both write journeys (the publish role has the edit role's verbs); the policy
    // tells them apart.
    let binding = |name: &str, role: &str, group: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects:
- {{kind: Group, name: {group}, apiGroup: rbac.authorization.k8s.io}}
"
        )
    };
    let rbac = [
        binding("editors-view", "journey-operator-view", "journey-editors"),
        binding("editors-edit", "journey-operator-edit", "journey-editors"),
        binding(
            "publishers-view",
            "journey-operator-view",
            "journey-publishers",
        ),
        binding(
            "publishers-publish",
            "journey-operator-publish",
            "journey-publishers",
        ),
    ]
    .join("---\n");
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

    // The apiserver applies a new policy and bindings after its informers sync: wait until an
    // editor's server-side dry run of a Published create is refused by the policy.
    support::eventually("the lifecycle policy in effect", async || {
        let probe = kubectl_as(
            &editor,
            &["apply", "-n", &ns, "--dry-run=server", "-f", "-"],
            Some(&manifest("policy-probe", spec("Published", "1h"))),
        );
        !probe.success && probe.stderr.contains("journey-publishers")
    })
    .await;
    Enforced {
        ns,
        editor,
        publisher,
    }
}

impl Enforced {
    /// `kubectl apply` of a whole Journey object as `who`.
    fn apply(&self, who: &Path, object: &Value) -> KubectlOutput {
        let yaml = serde_yaml::to_string(object).expect("yaml");
        kubectl_as(who, &["apply", "-n", &self.ns, "-f", "-"], Some(&yaml))
    }

    fn delete(&self, who: &Path, name: &str) -> KubectlOutput {
        kubectl_as(
            who,
            &["delete", "journey", name, "-n", &self.ns, "--wait=false"],
            None,
        )
    }

    /// No controller runs here: the admin takes the finalizer off, as the controller would
    /// (an update that changes nothing the policy gates).
    fn release(&self, name: &str) {
        let out = kubectl(
            &[
                "patch",
                "journey",
                name,
                "-n",
                &self.ns,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            None,
        );
        assert!(out.success, "{out:?}");
    }

    fn exists(&self, name: &str) -> bool {
        kubectl(&["get", "journey", name, "-n", &self.ns], None).success
    }
}

fn object(name: &str, spec: Value) -> Value {
    crate::builders::object(name, None, &spec)
}

#[track_caller]
fn denied(out: &KubectlOutput, what: &str, message: &str) {
    assert!(!out.success, "{what} must be denied: {out:?}");
    assert!(
        out.stderr.contains(message),
        "{what}: expected {message:?} in {}",
        out.stderr
    );
}

#[track_caller]
fn allowed(out: &KubectlOutput, what: &str) {
    assert!(out.success, "{what} must be allowed: {out:?}");
}

#[tokio::test]
async fn only_publishers_change_the_lifecycle() {
    let t = enforced_namespace("policy").await;
    let (editor, publisher) = (&t.editor, &t.publisher);
    let apply_as = |who: &Path, state: &str, wait: &str| {
        kubectl_as(
            who,
            &["apply", "-n", &t.ns, "-f", "-"],
            Some(&manifest("welcome", spec(state, wait))),
        )
    };

    // Editors create drafts and change content.
    let out = apply_as(editor, "Draft", "1h");
    assert!(out.success, "an editor creates a Draft: {out:?}");
    let out = apply_as(editor, "Draft", "2h");
    assert!(out.success, "an editor edits content: {out:?}");
    // Publishing is the publishers' call.
    let out = apply_as(editor, "Published", "2h");
    assert!(!out.success, "an editor may not publish: {out:?}");
    assert!(
        out.stderr
            .contains("only members of group journey-publishers may change spec.state"),
        "a clear message: {}",
        out.stderr
    );
    let out = apply_as(publisher, "Published", "2h");
    assert!(out.success, "a publisher publishes: {out:?}");
    // Content stays open to editors after publishing; pausing does not.
    let out = apply_as(editor, "Published", "3h");
    assert!(
        out.success,
        "an editor edits a published journey's content: {out:?}"
    );
    let out = apply_as(editor, "Paused", "3h");
    assert!(
        !out.success && out.stderr.contains("journey-publishers"),
        "an editor may not pause: {out:?}"
    );
    let out = apply_as(publisher, "Paused", "3h");
    assert!(out.success, "a publisher pauses: {out:?}");
}

#[tokio::test]
async fn only_publishers_request_restarts_change_resume_and_deletion_and_delete() {
    let t = enforced_namespace("policy-actions").await;
    let (editor, publisher) = (&t.editor, &t.publisher);
    // Every apply carries the whole object: kubectl apply removes what it applied before and
    // leaves out now.
    let mut journey = object("welcome", spec("Published", "1h"));
    allowed(&t.apply(publisher, &journey), "a publisher publishes");

    // A restart request.
    journey["metadata"]["annotations"] = json!({"journey.dev/restart-requested-at": "t1"});
    denied(
        &t.apply(editor, &journey),
        "an editor's restart request",
        "only members of group journey-publishers may request a run, a full run or a restart",
    );
    allowed(
        &t.apply(publisher, &journey),
        "a publisher's restart request",
    );
    journey["metadata"]["annotations"] = json!({"journey.dev/restart-requested-at": "t2"});
    denied(
        &t.apply(editor, &journey),
        "an editor's new restart token",
        "ask a member of journey-publishers to set it",
    );
    journey["metadata"]["annotations"] = json!({"journey.dev/restart-requested-at": "t1"});

    // How held profiles are released on resume.
    journey["spec"]["resume"] = json!({"rate": 100});
    denied(
        &t.apply(editor, &journey),
        "an editor's spec.resume change",
        "only members of group journey-publishers may change spec.resume",
    );
    allowed(
        &t.apply(publisher, &journey),
        "a publisher's spec.resume change",
    );

    // What deleting does in the engine.
    journey["spec"]["deletionPolicy"] = json!("Orphan");
    denied(
        &t.apply(editor, &journey),
        "an editor's spec.deletionPolicy change",
        "only members of group journey-publishers may change spec.deletionPolicy",
    );
    allowed(
        &t.apply(publisher, &journey),
        "a publisher's spec.deletionPolicy change",
    );

    // With all of that in place an editor still changes content, request annotation untouched.
    journey["spec"]["steps"][0]["wait"]["duration"] = json!("2h");
    allowed(
        &t.apply(editor, &journey),
        "an editor's content change of a published journey",
    );

    // Deleting a published journey.
    denied(
        &t.delete(editor, "welcome"),
        "an editor's delete of a published journey",
        "only members of group journey-publishers may delete a journey that is not a Draft",
    );
    assert!(t.exists("welcome"), "{}", support::dump_journeys(&t.ns));
    allowed(
        &t.delete(publisher, "welcome"),
        "a publisher's delete of a published journey",
    );
    t.release("welcome");
    support::eventually("the published journey gone", async || !t.exists("welcome")).await;

    // Deleting the namespace deletes its journeys: the namespace controller is no publisher,
    // and the namespace must not hang in Terminating. (No controller-manager runs here; the
    // editor stands in for the namespace controller.)
    let kept = object("kept", spec("Published", "1h"));
    allowed(&t.apply(publisher, &kept), "a publisher publishes another");
    let out = kubectl(&["delete", "namespace", &t.ns, "--wait=false"], None);
    assert!(out.success, "{out:?}");
    support::eventually(
        "a journey deletable in a terminating namespace",
        async || t.delete(editor, "kept").success,
    )
    .await;
}

#[tokio::test]
async fn editors_shape_and_delete_their_drafts() {
    let t = enforced_namespace("policy-drafts").await;
    let editor = &t.editor;
    let mut draft = object("draft", spec("Draft", "1h"));
    draft["metadata"]["annotations"] =
        json!({"journey.dev/change-ref": "https://example.com/pr/7"});
    allowed(&t.apply(editor, &draft), "an editor creates a Draft");
    draft["spec"]["steps"][0]["wait"]["duration"] = json!("2h");
    draft["spec"]["resume"] = json!({"rate": 10});
    draft["spec"]["deletionPolicy"] = json!("Orphan");
    allowed(
        &t.apply(editor, &draft),
        "an editor shapes a Draft (content, resume, deletionPolicy)",
    );
    // A run request is an action, even on a Draft.
    draft["metadata"]["annotations"]["journey.dev/run-requested-at"] = json!("r1");
    denied(
        &t.apply(editor, &draft),
        "an editor's run request",
        "may request a run, a full run or a restart",
    );
    allowed(&t.delete(editor, "draft"), "an editor deletes a Draft");
    t.release("draft");
    support::eventually("the draft gone", async || !t.exists("draft")).await;
}
