//! The remaining lifecycle semantics of the controller issue, driven through the custom resource
//! with the real kubectl against the real apiserver.

use futures::StreamExt;
use journey_operator::api::{Journey, Phase};
use journey_operator::engine::{DataPlane, JourneyEngine};
use serde_json::{Value, json};

use crate::controller_support::{
    TestController, and, apply, condition, has_condition, in_phase, setup, wait_for,
};
use crate::support::kubectl;

use crate::support::WAIT;

fn annotate(ns: &str, name: &str, annotation: &str, token: &str) {
    let out = kubectl(
        &[
            "annotate",
            "--overwrite",
            "-n",
            ns,
            &format!("journey/{name}"),
            &format!("{annotation}={token}"),
        ],
        None,
    );
    assert!(out.success, "{out:?}");
}

async fn feed_many(
    engine: &impl DataPlane,
    prefix: &str,
    n: usize,
    attributes: impl Fn(usize) -> Value,
    event: &str,
) {
    futures::stream::iter(0..n)
        .map(|i| {
            let attrs = attributes(i);
            async move {
                let id = format!("{prefix}{i}");
                engine.upsert_profile(&id, attrs).await.expect("upsert");
                engine
                    .ingest_event(&id, event, json!({}))
                    .await
                    .expect("ingest");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

fn counts(j: Option<&Journey>) -> journey_operator::api::status::ProfileCounts {
    j.and_then(|j| j.status.as_ref())
        .and_then(|s| s.profiles.clone())
        .unwrap_or_default()
}

/// wait → action: the shape most semantics need.
fn wait_then_send(state: &str, wait: &str, extra: Value) -> Value {
    let mut spec = json!({
        "state": state,
        "entry": {"event": {"name": "Go"}},
        "steps": [
            {"id": "wait", "wait": {"duration": wait}},
            {"id": "send", "action": {"channel": "record", "message": {"template": "t"}}}
        ]
    });
    if let (Some(map), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    spec
}

async fn deliveries(
    controller: &TestController,
    key: &str,
) -> Vec<journey_operator::engine::Delivery> {
    controller
        .engine
        .list_deliveries(Some(key), None, Some(10_000))
        .await
        .expect("deliveries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_discard_drops_profiles_at_their_action_step() {
    let (ns, api, controller) = setup("discard").await;
    apply(&ns, "j", wait_then_send("Published", "3s", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    feed_many(&controller.engine, "d", 10, |_| json!({}), "Go").await;
    apply(
        &ns,
        "j",
        wait_then_send("Paused", "3s", json!({"pause": {"mode": "Discard"}})),
    );
    wait_for(&api, "j", "10 discarded", WAIT, |j: Option<&Journey>| {
        counts(j).discarded == 10
    })
    .await;
    apply(&ns, "j", wait_then_send("Published", "3s", json!({})));
    wait_for(
        &api,
        "j",
        "Live",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Ready", "True")),
    )
    .await;
    assert!(deliveries(&controller, &format!("{ns}/j")).await.is_empty());
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_entry_only_keeps_profiles_moving_and_closes_entrance() {
    let (ns, api, controller) = setup("entryonly").await;
    apply(&ns, "j", wait_then_send("Published", "2s", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    feed_many(&controller.engine, "e", 5, |_| json!({}), "Go").await;
    apply(
        &ns,
        "j",
        wait_then_send("Paused", "2s", json!({"pause": {"mode": "EntryOnly"}})),
    );
    wait_for(&api, "j", "Paused", WAIT, in_phase(Phase::Paused)).await;
    feed_many(&controller.engine, "late", 3, |_| json!({}), "Go").await;
    wait_for(
        &api,
        "j",
        "inside profiles completed",
        WAIT,
        |j: Option<&Journey>| {
            let c = counts(j);
            c.completed == 5 && c.discarded == 3
        },
    )
    .await;
    let sent = deliveries(&controller, &format!("{ns}/j")).await;
    assert_eq!(sent.len(), 5, "profiles inside kept receiving messages");
    assert!(sent.iter().all(|d| d.profile_id.starts_with('e')));
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_filter_added_while_paused_is_enforced_after_resume() {
    let (ns, api, controller) = setup("filter").await;
    apply(&ns, "j", wait_then_send("Published", "2s", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    feed_many(
        &controller.engine,
        "f",
        10,
        |i| json!({"country": if i % 2 == 0 { "FR" } else { "NL" }}),
        "Go",
    )
    .await;
    let filter = json!({"pause": {"mode": "Hold"}, "globalFilter": "has(profile.country) && profile.country == \"FR\""});
    apply(&ns, "j", wait_then_send("Paused", "2s", filter.clone()));
    wait_for(&api, "j", "Paused", WAIT, in_phase(Phase::Paused)).await;
    let mut resumed = filter;
    resumed.as_object_mut().map(|m| m.remove("pause"));
    apply(&ns, "j", wait_then_send("Published", "2s", resumed));
    wait_for(
        &api,
        "j",
        "five excluded, five completed",
        WAIT,
        |j: Option<&Journey>| {
            let c = counts(j);
            c.excluded == 5 && c.completed == 5
        },
    )
    .await;
    // A new French entrant is excluded too.
    feed_many(
        &controller.engine,
        "new-fr",
        1,
        |_| json!({"country": "FR"}),
        "Go",
    )
    .await;
    wait_for(
        &api,
        "j",
        "the new entrant excluded",
        WAIT,
        |j: Option<&Journey>| counts(j).excluded == 6,
    )
    .await;
    let sent = deliveries(&controller, &format!("{ns}/j")).await;
    assert_eq!(sent.len(), 5);
    for d in &sent {
        let i: usize = d.profile_id.trim_start_matches('f').parse().expect("id");
        assert_eq!(i % 2, 1, "only NL profiles get messages: {}", d.profile_id);
    }
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_completes_after_the_last_profile_finishes() {
    let (ns, api, controller) = setup("closed").await;
    apply(&ns, "j", wait_then_send("Published", "2s", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    feed_many(&controller.engine, "c", 4, |_| json!({}), "Go").await;
    apply(&ns, "j", wait_then_send("Closed", "2s", json!({})));
    let closing = wait_for(&api, "j", "Closing", WAIT, in_phase(Phase::Closing)).await;
    let ready = closing
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    assert_eq!(
        ready.as_deref(),
        Some("True"),
        "Closing is the declared state"
    );
    feed_many(&controller.engine, "late", 2, |_| json!({}), "Go").await;
    let done = wait_for(
        &api,
        "j",
        "Completed",
        WAIT,
        and(
            in_phase(Phase::Completed),
            has_condition("Completed", "True"),
        ),
    )
    .await;
    assert_eq!(counts(Some(&done)).completed, 4);
    assert_eq!(
        deliveries(&controller, &format!("{ns}/j")).await.len(),
        4,
        "no late entrant got in"
    );
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_start_and_end() {
    let (ns, api, controller) = setup("schedule").await;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let at = |s: i64| {
        k8s_openapi::jiff::Timestamp::from_second(now + s)
            .expect("time")
            .to_string()
    };
    let spec = wait_then_send(
        "Published",
        "1s",
        json!({"schedule": {"startAt": at(4), "endAt": at(8)}}),
    );
    apply(&ns, "j", spec);
    wait_for(
        &api,
        "j",
        "Scheduled",
        WAIT,
        and(in_phase(Phase::Scheduled), has_condition("Ready", "True")),
    )
    .await;
    wait_for(&api, "j", "Live at startAt", WAIT, in_phase(Phase::Live)).await;
    feed_many(&controller.engine, "s", 2, |_| json!({}), "Go").await;
    wait_for(
        &api,
        "j",
        "Completed after endAt",
        WAIT,
        in_phase(Phase::Completed),
    )
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_expiry_resumes_and_is_never_reapplied() {
    let (ns, api, controller) = setup("expiry").await;
    apply(&ns, "j", wait_then_send("Published", "1s", json!({})));
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    let paused = json!({"pause": {"mode": "Hold", "maxDuration": "3s"}});
    apply(&ns, "j", wait_then_send("Paused", "1s", paused.clone()));
    wait_for(&api, "j", "Paused", WAIT, in_phase(Phase::Paused)).await;
    let expired = wait_for(&api, "j", "PauseExpired", WAIT, |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref()).is_some_and(|s| {
            s.phase == Some(Phase::Live)
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Paused" && c.reason == "PauseExpired")
        })
    })
    .await;
    assert_eq!(
        expired.spec.state,
        journey_operator::api::JourneyState::Paused,
        "Git still says Paused"
    );
    let events = kubectl(
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "reason=PauseExpired",
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        !events.stdout.trim().is_empty(),
        "an event tells the user to update Git"
    );

    // A filter change that only a pause allows is not applied.
    let mut with_filter = paused.clone();
    with_filter["globalFilter"] = json!("has(profile.vip) && profile.vip");
    apply(&ns, "j", wait_then_send("Paused", "1s", with_filter));
    let stalled = wait_for(
        &api,
        "j",
        "ChangeRequiresPause",
        WAIT,
        has_condition("Stalled", "True"),
    )
    .await;
    let reason = condition(&stalled, "Stalled").map(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("ChangeRequiresPause"));
    let snapshot = controller
        .engine
        .status(&format!("{ns}/j"))
        .await
        .expect("status")
        .expect("known");
    assert_eq!(snapshot.global_filter, None, "the filter was not applied");
    assert_eq!(snapshot.phase.name(), "Live", "not paused again");

    // Published in Git clears it (the filter removal is allowed together with nothing else only
    // when paused, so drop it back first).
    apply(&ns, "j", wait_then_send("Paused", "1s", paused));
    apply(&ns, "j", wait_then_send("Published", "1s", json!({})));
    wait_for(
        &api,
        "j",
        "Live and Ready",
        WAIT,
        and(in_phase(Phase::Live), has_condition("Stalled", "False")),
    )
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_expiry_with_on_expiry_stop_stops_the_journey() {
    let (ns, api, controller) = setup("expiry-stop").await;
    apply(
        &ns,
        "j",
        wait_then_send(
            "Paused",
            "1s",
            json!({"pause": {"maxDuration": "2s", "onExpiry": "Stop"}}),
        ),
    );
    let stopped = wait_for(&api, "j", "Stopped", WAIT, in_phase(Phase::Stopped)).await;
    let reason = stopped
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stopped"))
        .map(|c| c.reason.clone());
    assert_eq!(reason.as_deref(), Some("StoppedByPauseExpiry"));
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_and_restart_tokens_are_handled_once() {
    let (ns, api, controller) = setup("tokens").await;
    let spec = json!({
        "state": "Published",
        "entry": {"audience": {"condition": "has(profile.vip) && profile.vip", "mode": "Read"}},
        "steps": [{"id": "send", "action": {"channel": "record"}}]
    });
    apply(&ns, "j", spec);
    wait_for(&api, "j", "Live", WAIT, in_phase(Phase::Live)).await;
    for i in 0..3 {
        controller
            .engine
            .upsert_profile(&format!("v{i}"), json!({"vip": true}))
            .await
            .expect("upsert");
    }
    annotate(&ns, "j", "journey.dev/run-requested-at", "run-1");
    let ran = wait_for(&api, "j", "run handled", WAIT, |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref()).is_some_and(|s| {
            s.last_handled_run_request.as_deref() == Some("run-1")
                && s.profiles.as_ref().is_some_and(|p| p.completed == 3)
        })
    })
    .await;
    assert!(
        ran.status
            .as_ref()
            .and_then(|s| s.last_run.as_ref())
            .is_some()
    );
    // Re-applying the same token does nothing.
    annotate(&ns, "j", "journey.dev/run-requested-at", "run-1");
    annotate(&ns, "j", "unrelated", "poke");
    let key = format!("{ns}/j");
    let runs = controller.engine.run_history(&key, 10).await.expect("runs");
    let run_now = runs.iter().filter(|r| r.kind == "RunNow").count();
    assert_eq!(run_now, 1, "one run for one token: {runs:?}");
    assert_eq!(deliveries(&controller, &key).await.len(), 3);

    annotate(&ns, "j", "journey.dev/restart-requested-at", "restart-1");
    wait_for(&api, "j", "restart handled", WAIT, |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.last_handled_restart_request.as_deref() == Some("restart-1"))
    })
    .await;
    annotate(&ns, "j", "journey.dev/restart-requested-at", "restart-1");
    let snapshot = controller
        .engine
        .status(&key)
        .await
        .expect("status")
        .expect("known");
    assert_eq!(snapshot.epoch, 1, "one restart, one new epoch");
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_token_on_a_draft_is_echoed_with_a_warning() {
    let (ns, api, controller) = setup("restart-draft").await;
    apply(&ns, "j", wait_then_send("Draft", "1s", json!({})));
    wait_for(&api, "j", "Draft", WAIT, in_phase(Phase::Draft)).await;
    annotate(&ns, "j", "journey.dev/restart-requested-at", "r1");
    wait_for(&api, "j", "token echoed", WAIT, |j: Option<&Journey>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.last_handled_restart_request.as_deref() == Some("r1"))
    })
    .await;
    let events = kubectl(
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "reason=RestartNotAllowed",
            "-o",
            "jsonpath={.items[*].type}",
        ],
        None,
    );
    assert!(events.stdout.contains("Warning"), "{events:?}");
    assert!(
        controller
            .engine
            .status(&format!("{ns}/j"))
            .await
            .expect("status")
            .is_none()
    );

    // The same warning again is the same event, patched into a series (events.k8s.io).
    annotate(&ns, "j", "journey.dev/restart-requested-at", "r2");
    wait_for(
        &api,
        "j",
        "second token echoed",
        WAIT,
        |j: Option<&Journey>| {
            j.and_then(|j| j.status.as_ref())
                .is_some_and(|s| s.last_handled_restart_request.as_deref() == Some("r2"))
        },
    )
    .await;
    let series = kubectl(
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            &ns,
            "--field-selector",
            "reason=RestartNotAllowed",
            "-o",
            "jsonpath={range .items[*]}{.series.count}/{.note};{end}",
        ],
        None,
    );
    let items: Vec<&str> = series.stdout.split(';').filter(|s| !s.is_empty()).collect();
    assert_eq!(items.len(), 1, "one event, not two: {series:?}");
    assert!(
        items[0].starts_with("2/") && items[0].contains("\"r1\""),
        "a series of 2 (the note of an event is immutable): {series:?}"
    );
    controller.stop().await;
}
