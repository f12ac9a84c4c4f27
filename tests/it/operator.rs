//! The real `journey-operator run` binary as a child process: leader election between two
//! replicas, and a kill in the middle of a resume. Journeys are fed through the HTTP data plane.

use journey_operator::api::{Journey, Phase};
use kube::Api;
use serde_json::{Value, json};

use crate::controller_support::{and, apply, has_condition, in_phase, wait_for};
use crate::operator_process::{Operator, WAIT, eventually, held, journey};
use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_only_the_lease_holder_reconciles() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "replicas").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    // Both replicas share one data directory, as two pods on one volume would.
    let data = dir.path().join("data");
    let mut first = Operator::start(&ns, "replica-a", &data, true);
    eventually("replica a ready", async || {
        first.get("/readyz").await.0 == 200
    })
    .await;
    let second = Operator::start(&ns, "replica-b", &data, true);
    eventually("replica b answering", async || {
        second.get("/healthz").await.0 == 200
    })
    .await;

    apply(&ns, "j", journey("Published", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    // The counter moves when the reconcile returns, just after its status write is visible.
    eventually("the leader's reconciles counted", async || {
        first.reconciles().await > 0
    })
    .await;
    assert_eq!(second.reconciles().await, 0, "the standby never reconciles");
    assert_eq!(
        second.get("/readyz").await.0,
        503,
        "the standby is not ready"
    );
    assert_eq!(
        second
            .post("/v1/events", &json!({"profileId": "p", "name": "Go"}))
            .await,
        503
    );

    // The leader dies; the standby takes over the lease and the engine.
    first.kill();
    eventually("replica b takes over", async || {
        second.get("/readyz").await.0 == 200
    })
    .await;
    apply(&ns, "j", journey("Paused", json!({})));
    wait_for(
        &api,
        "j",
        "Paused by the new leader",
        WAIT,
        in_phase(Phase::Paused),
    )
    .await;
    assert!(second.reconciles().await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_during_a_resume_releases_every_profile_once() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "kill").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut operator = Operator::start(&ns, "first", &data, false);
    eventually("ready", async || operator.get("/readyz").await.0 == 200).await;

    apply(&ns, "j", journey("Published", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    const PROFILES: usize = 1000;
    for chunk in (0..PROFILES).collect::<Vec<_>>().chunks(500) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"profileId": format!("k{i}"), "name": "Go"}))
            .collect();
        assert_eq!(
            operator
                .post("/v1/events/batch", &json!({"events": events}))
                .await,
            202
        );
    }
    apply(
        &ns,
        "j",
        journey("Paused", json!({"pause": {"mode": "Hold"}})),
    );
    // Everyone still in the wait when the pause landed is held at the action (on a loaded
    // machine a few may have been sent before it: each still gets exactly one message).
    wait_for(&api, "j", "the waiting profiles held", WAIT, held).await;

    apply(
        &ns,
        "j",
        journey("Published", json!({"resume": {"rate": 200}})),
    );
    let partly = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.resume.as_ref())
            .is_some_and(|r| r.released > 0 && r.released < r.total)
    };
    wait_for(&api, "j", "resume under way", WAIT, partly).await;
    operator.kill();

    let restarted = Operator::start(&ns, "second", &data, false);
    eventually("ready again", async || {
        restarted.get("/readyz").await.0 == 200
    })
    .await;
    let done = wait_for(
        &api,
        "j",
        "Live after the restart",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Resuming", "False")),
    )
    .await;
    let sent = restarted.deliveries(&format!("{ns}/j")).await;
    let mut profiles: Vec<&str> = sent
        .iter()
        .filter_map(|d| d["profileId"].as_str())
        .collect();
    let total = profiles.len();
    profiles.sort_unstable();
    profiles.dedup();
    assert_eq!(profiles.len(), PROFILES, "every held profile released");
    assert_eq!(total, PROFILES, "each exactly once");
    let counts = done
        .status
        .as_ref()
        .and_then(|s| s.profiles.clone())
        .unwrap_or_default();
    assert_eq!(counts.held, 0);
}

/// A webhook destination whose credentials file cannot be read: nothing is sent, and the
/// journey gets a Warning event `WebhookCredentialsUnreadable` naming the destination (the
/// retries fold into that event's series).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_webhook_credentials_become_a_warning_event_on_the_journey() {
    use k8s_openapi::api::events::v1::Event;
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "credentials").await;
    let api: Api<Journey> = Api::namespaced(client.clone(), &ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let destinations = dir.path().join("destinations.yaml");
    let missing = dir.path().join("no-such-token");
    std::fs::write(
        &destinations,
        format!(
            "webhooks:\n  crm:\n    url: http://127.0.0.1:9/hook\n    credentialsFile: {}\n",
            missing.display()
        ),
    )
    .expect("destinations");
    let operator = Operator::start_with(
        &ns,
        "credentials",
        &dir.path().join("data"),
        false,
        &[format!("--destinations={}", destinations.display())],
    );
    eventually("ready", async || operator.get("/readyz").await.0 == 200).await;
    let spec = json!({
        "state": "Published",
        "entry": {"event": {"name": "Go"}},
        "steps": [{"id": "notify", "action": {"channel": "webhook", "destination": "crm", "message": {"x": 1}}}]
    });
    apply(&ns, "hook", spec);
    wait_for(&api, "hook", "Live", WAIT, in_phase(Phase::Live)).await;
    assert_eq!(
        operator
            .post("/v1/events", &json!({"profileId": "p", "name": "Go"}))
            .await,
        202
    );
    let events: Api<Event> = Api::namespaced(client, &ns);
    let warned = async || {
        events
            .list(&Default::default())
            .await
            .map(|l| {
                l.items.into_iter().find(|e| {
                    e.reason.as_deref() == Some("WebhookCredentialsUnreadable")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hook")
                })
            })
            .ok()
            .flatten()
    };
    eventually(
        "a WebhookCredentialsUnreadable event on the journey",
        async || warned().await.is_some(),
    )
    .await;
    let event = warned().await.expect("the event");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(note.contains("\"crm\""), "{note}");
    assert!(
        operator.deliveries(&format!("{ns}/hook")).await[0]["status"] == "Pending",
        "not sent, retried"
    );
    let (_, metrics) = operator.get("/metrics").await;
    assert!(
        metrics.contains("journey_webhook_credential_errors_total{destination=\"crm\"}"),
        "{metrics}"
    );
}
