//! Emergency holds on the real apiserver: a `JourneyHold` over a label selector pauses the
//! matching journeys in the engine, Git (server-side apply by another field manager) cannot
//! release them, and shortening or deleting the hold releases them with events.

use std::time::{Duration, Instant};

use journey_operator::api::hold::{HoldPhase, JourneyHold};
use journey_operator::api::{Journey, Phase};
use kube::Api;
use serde_json::{Value, json};

use crate::argocd::{health, kstatus};
use crate::builders::Spec;
use crate::controller_support::{and, condition, has_condition, in_phase, setup, wait_for};
use crate::support::{self, WAIT, kubectl};

fn spec(state: &str) -> Value {
    Spec::on_event("Go")
        .state(state)
        .wait("wait", "1h")
        .action("send", "record", None)
        .build()
}

fn journey_yaml(name: &str, team: &str, spec: &Value) -> String {
    serde_yaml::to_string(&json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "Journey",
        "metadata": {"name": name, "labels": {"team": team}},
        "spec": spec,
    }))
    .expect("yaml")
}

/// `kubectl apply --server-side` as Argo CD syncs (its own field manager).
fn sync_as_argocd(ns: &str, name: &str, team: &str, spec: &Value) {
    let out = kubectl(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=argocd-controller",
            "-n",
            ns,
            "-f",
            "-",
        ],
        Some(&journey_yaml(name, team, spec)),
    );
    assert!(out.success, "sync {name}: {out:?}");
}

fn apply_hold(ns: &str, body: Value) -> support::KubectlOutput {
    let yaml = serde_yaml::to_string(&body).expect("yaml");
    kubectl(&["apply", "-n", ns, "-f", "-"], Some(&yaml))
}

fn hold(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "JourneyHold",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn held_by(j: &Journey) -> Vec<String> {
    j.status
        .as_ref()
        .and_then(|s| s.pause.as_ref())
        .map(|p| p.held_by.clone())
        .unwrap_or_default()
}

/// The notes of the events with `reason` regarding `kind/name`.
fn events(ns: &str, kind: &str, name: &str, reason: &str) -> Vec<String> {
    let out = kubectl(
        &["get", "events.events.k8s.io", "-n", ns, "-o", "json"],
        None,
    );
    assert!(out.success, "{out:?}");
    let list: Value = serde_json::from_str(&out.stdout).expect("events json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["regarding"]["kind"] == kind
                && e["regarding"]["name"] == name
                && e["reason"] == reason
        })
        .filter_map(|e| e["note"].as_str().map(String::from))
        .collect()
}

async fn wait_hold(
    api: &Api<JourneyHold>,
    name: &str,
    what: &str,
    check: impl Fn(&JourneyHold) -> bool,
) -> JourneyHold {
    let started = Instant::now();
    loop {
        if let Ok(h) = api.get(name).await
            && check(&h)
        {
            return h;
        }
        if started.elapsed() > WAIT {
            let out = kubectl(
                &[
                    "get",
                    "journeyholds",
                    "-o",
                    "yaml",
                    "-n",
                    &api_namespace(api),
                ],
                None,
            );
            panic!("hold {name} never reached {what}:\n{}", out.stdout);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn api_namespace(api: &Api<JourneyHold>) -> String {
    let url = api.resource_url();
    url.split('/')
        .skip_while(|s| *s != "namespaces")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_over_a_selector_holds_the_matching_journeys_until_it_expires() {
    let (ns, api, controller) = setup("hold").await;
    let client = support::client().await;
    let holds: Api<JourneyHold> = Api::namespaced(client, &ns);
    let growth = ["g1", "g2", "g3"];
    let billing = ["b1", "b2"];
    let published = spec("Published");
    for name in growth {
        sync_as_argocd(&ns, name, "growth", &published);
    }
    for name in billing {
        sync_as_argocd(&ns, name, "billing", &published);
    }
    // A matching Draft is left alone and listed as skipped.
    sync_as_argocd(&ns, "g-draft", "growth", &spec("Draft"));
    for name in growth.iter().chain(&billing) {
        wait_for(&api, name, "Live", WAIT, in_phase(Phase::Live)).await;
    }

    let started = Instant::now();
    let out = apply_hold(
        &ns,
        hold(
            "incident",
            json!({"selector": {"matchLabels": {"team": "growth"}},
                   "reason": "incident 4711: wrong coupon", "duration": "2h"}),
        ),
    );
    assert!(out.success, "{out:?}");
    for name in growth {
        let j = wait_for(
            &api,
            name,
            "Held",
            WAIT,
            and(has_condition("Held", "True"), in_phase(Phase::Paused)),
        )
        .await;
        assert_eq!(held_by(&j), vec![format!("JourneyHold {ns}/incident")]);
        let held = condition(&j, "Held").expect("Held");
        assert_eq!(held.reason, "EmergencyHold");
        assert!(
            held.message.contains("incident 4711: wrong coupon"),
            "{}",
            held.message
        );
        assert_eq!(
            condition(&j, "Paused").map(|c| c.status).as_deref(),
            Some("True")
        );
        assert_eq!(
            condition(&j, "Ready").map(|c| c.status).as_deref(),
            Some("True")
        );
    }
    eprintln!(
        "hold latency: {} ms from kubectl apply to Held on 3 journeys",
        started.elapsed().as_millis()
    );
    // The engine holds them, whatever their specs say.
    for name in growth {
        let s = controller
            .engine
            .status_blocking(&format!("{ns}/{name}"))
            .expect("status")
            .expect("known");
        assert_eq!(s.phase, journey_operator::engine::Phase::Paused, "{name}");
        assert_eq!(
            s.desired.state(),
            journey_model::lifecycle::JourneyState::Published
        );
    }
    for name in billing {
        let j = api.get(name).await.expect("get");
        assert_eq!(
            j.status.as_ref().and_then(|s| s.phase),
            Some(Phase::Live),
            "{name}"
        );
        assert_eq!(
            condition(&j, "Held").map(|c| c.status).as_deref(),
            Some("False")
        );
    }
    // Argo CD health is Suspended with the reason; kstatus stays Current.
    let live: Value = serde_json::from_str(
        &kubectl(&["get", "journey", "g1", "-n", &ns, "-o", "json"], None).stdout,
    )
    .expect("json");
    let (status, message) = health(&live);
    assert_eq!(status, "Suspended", "{message}");
    assert!(message.contains("incident 4711"), "{message}");
    assert_eq!(kstatus(&live).0, "Current");
    // The hold's status.
    let h = wait_hold(&holds, "incident", "3 matched", |h| {
        h.status
            .as_ref()
            .is_some_and(|s| s.matched == 3 && s.skipped_count == 1)
    })
    .await;
    let hs = h.status.expect("status");
    assert_eq!(hs.phase, Some(HoldPhase::Active));
    assert_eq!(hs.held, ["g1", "g2", "g3"]);
    assert_eq!(hs.skipped[0].name, "g-draft");
    assert!(hs.expires_at.is_some());
    // Admission stamped who created it (manifests/admission/lifecycle-actor.yaml).
    assert!(
        hs.created_by.as_deref().is_some_and(|by| !by.is_empty()),
        "{hs:?}"
    );

    // Git cannot release them: re-applying the original spec, and a later commit's change,
    // by Argo CD's field manager.
    for name in growth {
        sync_as_argocd(&ns, name, "growth", &published);
    }
    let changed = Spec::on_event("Go")
        .state("Published")
        .wait("wait", "2h")
        .action("send", "record", None)
        .build();
    sync_as_argocd(&ns, "g1", "growth", &changed);
    let g1 = api.get("g1").await.expect("get");
    let generation = g1.metadata.generation.expect("generation");
    let observed = move |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.observed_generation == Some(generation))
    };
    let g1 = wait_for(&api, "g1", "the new generation observed", WAIT, observed).await;
    assert_eq!(
        g1.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Paused)
    );
    assert_eq!(
        condition(&g1, "Held").map(|c| c.status).as_deref(),
        Some("True")
    );
    for name in ["g2", "g3"] {
        let j = api.get(name).await.expect("get");
        assert_eq!(
            condition(&j, "Held").map(|c| c.status).as_deref(),
            Some("True"),
            "{name}"
        );
    }

    // Shortening the hold to a second makes it expire now: the journeys are released.
    let out = kubectl(
        &[
            "patch",
            "journeyhold",
            "incident",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"duration":"1s"}}"#,
        ],
        None,
    );
    assert!(out.success, "{out:?}");
    for name in growth {
        wait_for(
            &api,
            name,
            "released",
            WAIT,
            and(has_condition("Held", "False"), in_phase(Phase::Live)),
        )
        .await;
    }
    wait_hold(&holds, "incident", "Expired", |h| {
        h.status.as_ref().and_then(|s| s.phase) == Some(HoldPhase::Expired)
    })
    .await;
    support::eventually(
        "release events on each journey and on the hold",
        async || {
            growth
                .iter()
                .all(|name| !events(&ns, "Journey", name, "HoldReleased").is_empty())
                && !events(&ns, "JourneyHold", "incident", "Expired").is_empty()
        },
    )
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strictest_hold_wins_and_deleting_the_last_one_releases() {
    let (ns, api, controller) = setup("holds-two").await;
    sync_as_argocd(&ns, "j", "growth", &spec("Published"));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    for (name, mode) in [("soft", "EntryOnly"), ("hard", "Discard")] {
        let out = apply_hold(
            &ns,
            hold(
                name,
                json!({"selector": {}, "mode": mode, "reason": format!("{name} hold"), "duration": "1h"}),
            ),
        );
        assert!(out.success, "{out:?}");
    }
    let both = |j: Option<&Journey>| j.is_some_and(|j| held_by(j).len() == 2);
    let j = wait_for(&api, "j", "held by both", WAIT, both).await;
    let pause = j.status.and_then(|s| s.pause).expect("pause");
    assert_eq!(
        format!("{:?}", pause.mode),
        "Discard",
        "Discard > Hold > EntryOnly"
    );
    let out = kubectl(
        &["delete", "journeyhold", "hard", "-n", &ns, "--wait=false"],
        None,
    );
    assert!(out.success, "{out:?}");
    let soft = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.pause.as_ref())
            .is_some_and(|p| p.held_by.len() == 1 && format!("{:?}", p.mode) == "EntryOnly")
    };
    wait_for(&api, "j", "held by the soft hold only", WAIT, soft).await;
    let out = kubectl(&["delete", "journeyhold", "soft", "-n", &ns], None);
    assert!(out.success, "{out:?}");
    wait_for(
        &api,
        "j",
        "released",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Held", "False")),
    )
    .await;
    support::eventually("the deleted holds say what they released", async || {
        !events(&ns, "JourneyHold", "soft", "Released").is_empty()
    })
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_hold_covers_the_namespaces_it_selects() {
    let (ns, api, controller) = setup("cluster-hold").await;
    sync_as_argocd(&ns, "j", "growth", &spec("Published"));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    let name = format!("{ns}-all");
    let body = json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "ClusterJourneyHold",
        "metadata": {"name": name},
        "spec": {
            // Only this test's namespace: other tests' journeys run beside it.
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "selector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["growth"]}]},
            "reason": "provider outage", "duration": "1h"
        }
    });
    let yaml = serde_yaml::to_string(&body).expect("yaml");
    let out = kubectl(&["apply", "-f", "-"], Some(&yaml));
    assert!(out.success, "{out:?}");
    let j = wait_for(&api, "j", "held", WAIT, has_condition("Held", "True")).await;
    assert_eq!(held_by(&j), vec![format!("ClusterJourneyHold {name}")]);
    // Journeys that start matching later are held too: a new one, and one relabelled.
    sync_as_argocd(&ns, "new", "growth", &spec("Published"));
    sync_as_argocd(&ns, "other", "billing", &spec("Published"));
    wait_for(
        &api,
        "new",
        "held at once",
        WAIT,
        has_condition("Held", "True"),
    )
    .await;
    wait_for(&api, "other", "Live", WAIT, in_phase(Phase::Live)).await;
    sync_as_argocd(&ns, "other", "growth", &spec("Published"));
    wait_for(
        &api,
        "other",
        "held once relabelled",
        WAIT,
        has_condition("Held", "True"),
    )
    .await;
    let out = kubectl(&["delete", "clusterjourneyhold", &name], None);
    assert!(out.success, "{out:?}");
    wait_for(
        &api,
        "j",
        "released",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Held", "False")),
    )
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_holds_are_rejected_at_admission_saying_what_to_do() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "hold-admission").await;
    let ok = json!({"selector": {}, "reason": "incident", "duration": "2h"});
    let with = |patch: Value| {
        let mut spec = ok.clone();
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                spec.as_object_mut().expect("object").remove(k);
            } else {
                spec[k] = v.clone();
            }
        }
        spec
    };
    let cases = [
        (
            "too-long",
            with(json!({"duration": "337h"})),
            "at most 336h",
        ),
        (
            "no-reason",
            with(json!({"reason": null})),
            "spec.reason is required",
        ),
        (
            "empty-reason",
            with(json!({"reason": ""})),
            "spec.reason is required",
        ),
        (
            "no-selector",
            with(json!({"selector": null})),
            "spec.selector is required",
        ),
        (
            "no-duration",
            with(json!({"duration": null})),
            "spec.duration is required",
        ),
        (
            "bad-duration",
            with(json!({"duration": "two hours"})),
            "spec.duration",
        ),
        (
            "bad-mode",
            with(json!({"mode": "Freeze"})),
            "supported values: \"Hold\", \"Discard\", \"EntryOnly\"",
        ),
        (
            "bad-operator",
            with(
                json!({"selector": {"matchExpressions": [{"key": "team", "operator": "Equals", "values": ["a"]}]}}),
            ),
            "supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
        ),
        (
            "in-without-values",
            with(json!({"selector": {"matchExpressions": [{"key": "team", "operator": "In"}]}})),
            "In and NotIn need values",
        ),
    ];
    for (name, spec, says) in cases {
        let out = apply_hold(&ns, hold(name, spec));
        assert!(!out.success, "{name} was accepted");
        assert!(
            out.stderr.contains(says),
            "{name}: {:?} should say {says:?}",
            out.stderr
        );
    }
    let out = apply_hold(&ns, hold("fine", ok));
    assert!(out.success, "{out:?}");
}
