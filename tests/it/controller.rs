//! The controller against the real apiserver: users drive journeys with kubectl, the engine does
//! what the spec declares and the status says what really happened.

use std::collections::HashMap;

use futures::StreamExt;
use std::time::Duration;

use journey_operator::api::{Journey, Phase};
use journey_operator::engine::{DataPlane, JourneyEngine};
use kube::Api;
use serde_json::{Value, json};

use crate::controller_support::{
    and, apply, condition, has_condition, in_phase, kubectl_blocking, manifest, setup, wait_for,
};
use crate::support::{self, kubectl};

use crate::support::WAIT;

fn record_journey(state: &str) -> Value {
    json!({
        "state": state,
        "entry": {"event": {"name": "SignedUp"}},
        "steps": [{"id": "welcome", "action": {"channel": "record", "message": {"template": "welcome"}}}]
    })
}

async fn feed(engine: &impl DataPlane, profile: &str, attributes: Value, event: &str) {
    engine
        .upsert_profile(profile, attributes)
        .await
        .expect("upsert profile");
    engine
        .ingest_event(profile, event, json!({}))
        .await
        .expect("ingest event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft_to_published_to_live_with_kubectl_wait() {
    let (ns, api, controller) = setup("lifecycle").await;
    apply(&ns, "welcome", record_journey("Draft"));
    wait_for(
        &api,
        "welcome",
        "Draft and Ready",
        WAIT,
        and(in_phase(Phase::Draft), has_condition("Ready", "True")),
    )
    .await;

    apply(&ns, "welcome", record_journey("Published"));
    let out = kubectl_blocking(&[
        "wait",
        "-n",
        &ns,
        "--for=jsonpath={.status.phase}=Live",
        "journey/welcome",
        "--timeout=60s",
    ])
    .await;
    assert!(out.success, "{out:?}\n{}", support::dump_journeys(&ns));
    let out = kubectl_blocking(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Ready",
        "journey/welcome",
        "--timeout=60s",
    ])
    .await;
    assert!(out.success, "{out:?}");

    feed(
        &controller.engine,
        "p1",
        json!({"country": "NL"}),
        "SignedUp",
    )
    .await;
    let entered = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.profiles.as_ref())
            .is_some_and(|p| p.entered == 1 && p.completed == 1)
    };
    wait_for(&api, "welcome", "one profile through", WAIT, entered).await;
    let table = kubectl(&["get", "jny", "-n", &ns], None);
    let row: Vec<&str> = table
        .stdout
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..5],
        ["welcome", "Live", "1", "0", "0"],
        "{}",
        table.stdout
    );
    let deliveries = controller
        .engine
        .list_deliveries(Some(&format!("{ns}/welcome")), None, None)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    controller.stop().await;
}

/// Seed 002's end-to-end sample, driven through the custom resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_002_pause_hold_then_resume_delivers_each_message_once() {
    let (ns, api, controller) = setup("seed002").await;
    let spec = |state: &str, extra: Value| {
        let mut spec = json!({
            "state": state,
            "entry": {"event": {"name": "AddToCart"}},
            "steps": [
                {"id": "wait", "wait": {"duration": "15s"}},
                {"id": "has-app", "condition": {
                    "branches": [{"when": "has(profile.app) && profile.app", "next": "push"}],
                    "otherwise": "email"}},
                {"id": "push", "action": {"channel": "push", "message": {"title": "Your cart"}}, "next": "done"},
                {"id": "email", "action": {"channel": "email", "message": {"subject": "Your cart"}}, "next": "done"},
                {"id": "done", "exit": {}}
            ]
        });
        if let (Some(map), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        spec
    };
    apply(&ns, "cart", spec("Published", json!({})));
    wait_for(&api, "cart", "Live", WAIT, in_phase(Phase::Live)).await;

    const PROFILES: usize = 1500;
    futures::stream::iter(0..PROFILES)
        .map(|i| {
            let engine = controller.engine.clone();
            async move {
                feed(
                    &engine,
                    &format!("p{i}"),
                    json!({"app": i % 2 == 0}),
                    "AddToCart",
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    apply(
        &ns,
        "cart",
        spec(
            "Paused",
            json!({"pause": {"mode": "Hold", "reason": "fix the copy"}}),
        ),
    );
    wait_for(
        &api,
        "cart",
        "Paused and Ready",
        WAIT,
        and(in_phase(Phase::Paused), has_condition("Ready", "True")),
    )
    .await;

    // Profiles in the wait keep moving through the condition and are held at the action. (On
    // a loaded machine a few may have finished the wait before the pause landed; they got
    // their message then, and no delivery is recorded during the pause.)
    let key = format!("{ns}/cart");
    let delivered_before_pause = controller
        .engine
        .list_deliveries(Some(&key), None, Some(10_000))
        .await
        .expect("deliveries")
        .len();
    let all_held = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.profiles.as_ref())
            .is_some_and(|p| p.waiting + p.active == 0 && p.held > 1)
    };
    let paused = wait_for(&api, "cart", "the waiting profiles held", WAIT, all_held).await;
    let held = paused
        .status
        .as_ref()
        .and_then(|s| s.profiles.as_ref())
        .map(|p| p.held)
        .unwrap_or(0);
    assert_eq!(
        held as usize + delivered_before_pause,
        PROFILES,
        "every profile is held or was sent before the pause"
    );
    assert_eq!(
        controller
            .engine
            .list_deliveries(Some(&key), None, Some(10_000))
            .await
            .expect("deliveries")
            .len(),
        delivered_before_pause,
        "no delivery while paused"
    );
    // A fresh entrance during the pause is dropped and counted.
    feed(&controller.engine, "late", json!({}), "AddToCart").await;
    let discarded = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.profiles.as_ref())
            .is_some_and(|p| p.discarded >= 1)
    };
    wait_for(&api, "cart", "the late entrance discarded", WAIT, discarded).await;

    // Resume at 1000/s: Resuming with released growing, then Live.
    apply(
        &ns,
        "cart",
        spec("Published", json!({"resume": {"rate": 1000}})),
    );
    let resuming = wait_for(
        &api,
        "cart",
        "Resuming",
        WAIT,
        has_condition("Resuming", "True"),
    )
    .await;
    let first_released = resuming
        .status
        .as_ref()
        .and_then(|s| s.resume.as_ref())
        .map(|r| r.released);
    let grown = move |j: Option<&Journey>| {
        let status = j.and_then(|j| j.status.as_ref());
        let released = status.and_then(|s| s.resume.as_ref()).map(|r| r.released);
        released > first_released || status.and_then(|s| s.phase) == Some(Phase::Live)
    };
    wait_for(&api, "cart", "released growing", WAIT, grown).await;
    wait_for(
        &api,
        "cart",
        "Live again",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Resuming", "False")),
    )
    .await;

    let deliveries = controller
        .engine
        .list_deliveries(Some(&key), None, Some(10_000))
        .await
        .expect("deliveries");
    let mut per_profile: HashMap<String, usize> = HashMap::new();
    for d in &deliveries {
        *per_profile.entry(d.profile_id.clone()).or_default() += 1;
        let expected = if d
            .profile_id
            .trim_start_matches('p')
            .parse::<usize>()
            .is_ok_and(|i| i % 2 == 0)
        {
            "push"
        } else {
            "email"
        };
        assert_eq!(d.channel, expected, "{}", d.profile_id);
    }
    assert_eq!(
        per_profile.len(),
        PROFILES,
        "every held profile got its message"
    );
    assert!(per_profile.values().all(|n| *n == 1), "exactly once");
    assert!(
        !per_profile.contains_key("late"),
        "the discarded entrance got nothing"
    );
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_definition_stalls_and_leaves_the_engine_untouched() {
    let (ns, api, controller) = setup("invalid").await;
    let mut spec = record_journey("Published");
    spec["steps"] = json!([
        {"id": "choose", "condition": {"branches": [{"when": "profile.vip ==", "next": "welcome"}], "otherwise": "welcome"}},
        {"id": "welcome", "action": {"channel": "record"}}
    ]);
    apply(&ns, "broken", spec.clone());
    let stalled = wait_for(
        &api,
        "broken",
        "Stalled",
        WAIT,
        has_condition("Stalled", "True"),
    )
    .await;
    let stalled_condition = condition(&stalled, "Stalled").expect("Stalled");
    assert_eq!(stalled_condition.reason, "InvalidDefinition");
    assert!(
        stalled_condition
            .message
            .contains("spec.steps[0].condition.branches[0].when"),
        "{}",
        stalled_condition.message
    );
    // A message template that does not compile stalls the same way, naming its field.
    let mut templated = record_journey("Published");
    templated["steps"] = json!([
        {"id": "welcome", "action": {"channel": "email", "message": {"subject": "Hi {{ profile.first_name"}}}
    ]);
    apply(&ns, "bad-template", templated);
    let stalled = wait_for(
        &api,
        "bad-template",
        "Stalled",
        WAIT,
        has_condition("Stalled", "True"),
    )
    .await;
    let template_condition = condition(&stalled, "Stalled").expect("Stalled");
    assert_eq!(template_condition.reason, "InvalidDefinition");
    assert!(
        template_condition
            .message
            .contains("spec.steps[0].action.message.subject: template syntax error"),
        "{}",
        template_condition.message
    );
    assert!(
        controller
            .engine
            .status(&format!("{ns}/bad-template"))
            .await
            .expect("status")
            .is_none(),
        "engine untouched by the bad template"
    );
    let key = format!("{ns}/broken");
    assert!(
        controller
            .engine
            .status(&key)
            .await
            .expect("status")
            .is_none(),
        "engine untouched"
    );

    spec["steps"][0]["condition"]["branches"][0]["when"] = json!("has(profile.vip) && profile.vip");
    apply(&ns, "broken", spec);
    wait_for(
        &api,
        "broken",
        "fixed and Live",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Stalled", "False")),
    )
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_stops_and_removes_or_orphans_the_engine_journey() {
    let (ns, api, controller) = setup("deletion").await;
    apply(&ns, "stop-me", record_journey("Published"));
    let mut orphan = record_journey("Published");
    orphan["deletionPolicy"] = json!("Orphan");
    apply(&ns, "keep-me", orphan.clone());
    wait_for(&api, "stop-me", "Live", WAIT, in_phase(Phase::Live)).await;
    wait_for(&api, "keep-me", "Live", WAIT, in_phase(Phase::Live)).await;

    for name in ["stop-me", "keep-me"] {
        let out = kubectl_blocking(&["delete", "journey", name, "-n", &ns, "--timeout=60s"]).await;
        assert!(out.success, "{out:?}\n{}", support::dump_journeys(&ns));
    }
    assert!(
        controller
            .engine
            .status(&format!("{ns}/stop-me"))
            .await
            .expect("status")
            .is_none()
    );
    let kept = controller
        .engine
        .status(&format!("{ns}/keep-me"))
        .await
        .expect("status")
        .expect("orphaned journey kept");
    assert_eq!(kept.phase.name(), "Live");

    // Re-created with the same name, the resource adopts the orphaned engine journey.
    apply(&ns, "keep-me", orphan);
    let adopted = wait_for(&api, "keep-me", "Live", WAIT, in_phase(Phase::Live)).await;
    assert_eq!(adopted.status.as_ref().and_then(|s| s.version), Some(1));
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_is_terminal_and_halts_deliveries_at_once() {
    let (ns, api, controller) = setup("stopped").await;
    let spec = |state: &str| {
        json!({
            "state": state,
            "entry": {"event": {"name": "SignedUp"}},
            "steps": [
                {"id": "wait", "wait": {"duration": "2s"}},
                {"id": "welcome", "action": {"channel": "record"}}
            ]
        })
    };
    apply(&ns, "halt", spec("Published"));
    wait_for(&api, "halt", "Live", WAIT, in_phase(Phase::Live)).await;
    for i in 0..20 {
        feed(&controller.engine, &format!("s{i}"), json!({}), "SignedUp").await;
    }
    apply(&ns, "halt", spec("Stopped"));
    wait_for(
        &api,
        "halt",
        "Stopped",
        WAIT,
        and(in_phase(Phase::Stopped), has_condition("Stopped", "True")),
    )
    .await;
    let out = kubectl(
        &["apply", "-n", &ns, "-f", "-"],
        Some(&manifest("halt", spec("Published"))),
    );
    assert!(
        !out.success && out.stderr.contains("a stopped journey cannot be restarted"),
        "{out:?}"
    );
    // The wait has long passed for everyone: still no delivery.
    let stopped = controller
        .engine
        .status(&format!("{ns}/halt"))
        .await
        .expect("status")
        .expect("known");
    assert_eq!(stopped.profiles.active + stopped.profiles.waiting, 0);
    let deliveries = controller
        .engine
        .list_deliveries(Some(&format!("{ns}/halt")), None, None)
        .await
        .expect("deliveries");
    assert!(deliveries.is_empty(), "{deliveries:?}");
    controller.stop().await;
}

/// Steady state makes zero API writes: journeys in every phase idle for more than two
/// resyncs, and the apiserver's audit log shows no write by the controller's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_writes_at_steady_state() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "idle").await;
    let api: Api<Journey> = Api::namespaced(client, &ns);
    let controller = crate::controller_support::TestController::start_with(
        &ns,
        crate::controller_support::Options {
            resync: Duration::from_secs(1),
            counts_refresh: Duration::from_millis(500),
            identity: None,
        },
    )
    .await;

    let mut scheduled = record_journey("Published");
    scheduled["schedule"] = json!({"startAt": "2099-01-01T00:00:00Z"});
    let mut paused = record_journey("Paused");
    paused["pause"] = json!({"mode": "Hold", "reason": "idle test"});
    let mut invalid = record_journey("Published");
    invalid["steps"] = json!([
        {"id": "c", "condition": {"branches": [{"when": "profile.x ==", "next": "a"}], "otherwise": "a"}},
        {"id": "a", "action": {"channel": "record"}}
    ]);
    let journeys = [
        ("draft", record_journey("Draft")),
        ("live", record_journey("Published")),
        ("paused", paused),
        ("closed", record_journey("Closed")),
        ("stopped", record_journey("Stopped")),
        ("scheduled", scheduled),
        ("invalid", invalid),
    ];
    for (name, spec) in &journeys {
        apply(&ns, name, spec.clone());
    }
    let settled = |j: Option<&Journey>| {
        let Some(status) = j.and_then(|j| j.status.as_ref()) else {
            return false;
        };
        let current = status.observed_generation == j.and_then(|j| j.metadata.generation);
        let decided = status
            .conditions
            .iter()
            .any(|c| (c.type_ == "Ready" || c.type_ == "Stalled") && c.status == "True");
        current && decided
    };
    for (name, _) in &journeys {
        wait_for(&api, name, "settled", WAIT, settled).await;
    }
    // Let the controller's own first-round writes (finalizers, first status) finish.
    let writes_before = controller.metrics.status_writes();
    let reconciles_before = controller.metrics.reconciles();
    wait_until("a first resync round", || {
        controller.metrics.reconciles() >= reconciles_before + journeys.len() as u64
    })
    .await;
    assert_eq!(
        controller.metrics.status_writes(),
        writes_before,
        "status rewritten on resync"
    );

    let audit = support::control_plane_dir().join("audit.log");
    let start = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    let reconciles_at_start = controller.metrics.reconciles();
    // Two more full resync rounds.
    wait_until("two resync rounds", || {
        controller.metrics.reconciles() >= reconciles_at_start + 2 * journeys.len() as u64
    })
    .await;
    let text = std::fs::read(&audit).expect("audit log");
    let window = String::from_utf8_lossy(&text[start as usize..]);
    let writes: Vec<&str> = window
        .lines()
        .filter(|line| {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                return false;
            };
            event["user"]["username"] == controller.identity.as_str()
                && matches!(
                    event["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
        })
        .collect();
    assert!(
        writes.is_empty(),
        "{} writes by {} at steady state:\n{}",
        writes.len(),
        controller.identity,
        writes.join("\n")
    );
    // The window did see the controller at work (so the absence of writes means something).
    assert!(controller.metrics.reconciles() >= reconciles_at_start + 2 * journeys.len() as u64);
    controller.stop().await;
}

/// One reconcile per change: the engine notifies every status change, but those made by the
/// controller's own commands do not trigger another reconcile (the reconcile already read the
/// outcome). Before, each change below cost two reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_own_engine_commands_do_not_trigger_another_reconcile() {
    let (ns, api, controller) = setup("own-commands").await;
    let steps: [(&str, Value, Phase); 3] = [
        ("Draft", json!({}), Phase::Draft),
        ("Published", json!({}), Phase::Live),
        (
            "Paused",
            json!({"pause": {"mode": "Hold", "reason": "copy review"}}),
            Phase::Paused,
        ),
    ];
    for (reconciles, (state, extra, phase)) in (1u64..).zip(steps) {
        let mut spec = record_journey(state);
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        apply(&ns, "welcome", spec);
        wait_for(
            &api,
            "welcome",
            &format!("{state}, Ready and current"),
            WAIT,
            and(
                and(in_phase(phase), has_condition("Ready", "True")),
                observed_generation(reconciles as i64),
            ),
        )
        .await;
        // The count goes up when the reconcile returns, just after its status write.
        wait_until(&format!("{reconciles} reconciles"), || {
            controller.metrics.reconciles() >= reconciles
        })
        .await;
        assert_eq!(
            controller.metrics.reconciles(),
            reconciles,
            "after {state}\n{}",
            support::dump_journeys(&ns)
        );
    }
    controller.stop().await;
}

fn observed_generation(generation: i64) -> impl kube::runtime::wait::Condition<Journey> {
    move |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.observed_generation)
            == Some(generation)
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    crate::support::eventually(what, async || condition()).await;
}

/// A resource re-created as Draft over a published engine journey (deletionPolicy Orphan):
/// the engine refuses to go back to Draft, and the journey is Stalled `IllegalTransition`
/// with the engine's rule, the engine journey untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_the_engine_refuses_is_stalled_illegal_transition() {
    let (ns, api, controller) = setup("illegal").await;
    let mut spec = record_journey("Published");
    spec["deletionPolicy"] = json!("Orphan");
    apply(&ns, "j", spec);
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    let out = kubectl_blocking(&["delete", "journey", "j", "-n", &ns, "--timeout=60s"]).await;
    assert!(out.success, "{out:?}");

    apply(&ns, "j", record_journey("Draft"));
    let stalled = wait_for(&api, "j", "Stalled", WAIT, has_condition("Stalled", "True")).await;
    let condition = condition(&stalled, "Stalled").expect("Stalled");
    assert_eq!(condition.reason, "IllegalTransition", "{condition:?}");
    assert!(
        condition.message.contains("cannot return to Draft"),
        "{condition:?}"
    );
    let engine = controller
        .engine
        .status(&format!("{ns}/j"))
        .await
        .expect("status")
        .expect("known");
    assert_eq!(engine.phase.name(), "Live");
    controller.stop().await;
}

/// A resource re-created over a stopped engine journey cannot revive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_engine_journey_stays_stopped_whatever_a_new_resource_says() {
    let (ns, api, controller) = setup("stopped-adopt").await;
    let mut spec = record_journey("Stopped");
    spec["deletionPolicy"] = json!("Orphan");
    apply(&ns, "old", spec);
    wait_for(&api, "old", "Stopped", WAIT, in_phase(Phase::Stopped)).await;
    let out = kubectl_blocking(&["delete", "journey", "old", "-n", &ns, "--timeout=60s"]).await;
    assert!(out.success, "{out:?}");

    apply(&ns, "old", record_journey("Published"));
    let stalled = wait_for(
        &api,
        "old",
        "Stalled",
        WAIT,
        has_condition("Stalled", "True"),
    )
    .await;
    let reason = condition(&stalled, "Stalled").map(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("JourneyStopped"));
    assert_eq!(
        stalled.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Stopped)
    );
    let engine = controller
        .engine
        .status(&format!("{ns}/old"))
        .await
        .expect("status")
        .expect("known");
    assert_eq!(engine.phase.name(), "Stopped");
    controller.stop().await;
}

/// A wait changed from 1h to 2h on a live journey: version 2 on the real apiserver; profiles
/// already waiting keep 1h (version 1), new entrants wait 2h; `kubectl get jny` counts them
/// all as Inside while they wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_changed_on_a_live_journey_applies_to_new_entrants_only() {
    let (ns, api, controller) = setup("live-change").await;
    let spec = |wait: &str| {
        json!({
            "state": "Published",
            "entry": {"event": {"name": "SignedUp"}},
            "steps": [
                {"id": "wait", "wait": {"duration": wait}},
                {"id": "welcome", "action": {"channel": "record"}}
            ]
        })
    };
    apply(&ns, "welcome", spec("1h"));
    wait_for(&api, "welcome", "Live", WAIT, in_phase(Phase::Live)).await;
    feed(&controller.engine, "early", json!({}), "SignedUp").await;
    apply(&ns, "welcome", spec("2h"));
    let version_2 = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.version == Some(2))
    };
    wait_for(&api, "welcome", "version 2", WAIT, version_2).await;
    feed(&controller.engine, "late", json!({}), "SignedUp").await;
    let two_inside = |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.profiles.as_ref())
            .is_some_and(|p| p.inside == 2 && p.waiting == 2 && p.active == 0)
    };
    wait_for(&api, "welcome", "two waiting inside", WAIT, two_inside).await;
    let key = format!("{ns}/welcome");
    let views = controller
        .engine
        .enrollments_blocking(&key)
        .expect("enrollments");
    let of = |id: &str| {
        views
            .iter()
            .find(|e| e.profile_id == id)
            .unwrap_or_else(|| panic!("{id} not enrolled: {views:?}"))
    };
    let (early, late) = (of("early"), of("late"));
    assert_eq!((early.version, late.version), (1, 2));
    let waits =
        |e: &journey_operator::engine::EnrollmentView| e.due_at.expect("waiting") - e.entered_at;
    // The real clock: the wait starts a few milliseconds after the entrance.
    let about = |ms: i64, hours: i64| (hours * 3_600_000..hours * 3_600_000 + 60_000).contains(&ms);
    assert!(
        about(waits(early), 1),
        "the early profile keeps 1h: {early:?}"
    );
    assert!(about(waits(late), 2), "a new entrant waits 2h: {late:?}");
    // The default columns show who is inside; Active (moving right now) is wide-only.
    let table = kubectl(&["get", "jny", "-n", &ns], None);
    let mut lines = table.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        &header[..6],
        ["NAME", "PHASE", "VERSION", "INSIDE", "HELD", "HELDBY"],
        "{}",
        table.stdout
    );
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["welcome", "Live", "2", "2", "0"],
        "{}",
        table.stdout
    );
    let wide = kubectl(&["get", "jny", "-n", &ns, "-o", "wide"], None);
    assert!(
        wide.stdout.lines().next().unwrap_or("").contains("ACTIVE"),
        "{}",
        wide.stdout
    );
    controller.stop().await;
}
