use journey_operator::engine::{DesiredLifecycle, Phase, RequestKind, RequestOutcome};
use serde_json::json;

use crate::engine::common::*;
use crate::engine::under_test::{EngineUnderTest, both_ways, seed_profiles};

fn read_journey(h: &EngineUnderTest, incremental: bool) {
    h.apply(
        "ns/r",
        json!({"entry": {"audience": {"condition": "profile.ok", "mode": "Read",
                 "schedule": {"cron": "0 0 1 1 *"}, "incremental": incremental}},
               "steps": [{"id": "a", "action": {"channel": "email", "message": {}}}]}),
    );
}

/// Run controls (001): run now (one audience read now), full run (ignores the
/// incremental state), run history (start, end, entered, outcome).
fn run_now_full_run_and_history(h: &EngineUnderTest) {
    read_journey(h, true);
    seed_profiles(h, 3, |_| json!({"ok": true}));
    h.publish("ns/r");
    let out = h.request("ns/r", RequestKind::RunNow, "r1");
    assert!(matches!(out, RequestOutcome::Started { run_id: Some(_) }));
    h.run();
    assert_eq!(h.enrollments("ns/r").len(), 3);
    h.profile("new", json!({"ok": true}));
    h.request("ns/r", RequestKind::RunNow, "r2");
    h.run();
    assert_eq!(
        h.enrollments("ns/r").len(),
        4,
        "incremental: only the new profile"
    );
    h.request("ns/r", RequestKind::FullRun, "f1");
    h.run();
    let runs = h.run_history("ns/r");
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].kind, "FullRun");
    assert_eq!(runs[0].entered, 0, "everyone read, nobody may re-enter");
    assert_eq!((runs[1].kind.as_str(), runs[1].entered), ("RunNow", 1));
    assert_eq!((runs[2].kind.as_str(), runs[2].entered), ("RunNow", 3));
    assert!(
        runs.iter()
            .all(|r| r.outcome == "Succeeded" && r.ended_at.is_some())
    );
    let s = h.status("ns/r");
    assert_eq!(s.last_handled_run_request.as_deref(), Some("r2"));
    assert_eq!(s.last_handled_full_run_request.as_deref(), Some("f1"));
}

/// Run controls (001): a run requested while paused is deferred to the resume and says so.
fn run_while_paused_is_deferred_to_resume(h: &EngineUnderTest) {
    read_journey(h, false);
    h.publish("ns/r");
    h.pause("ns/r", hold());
    h.profile("p", json!({"ok": true}));
    let out = h.request("ns/r", RequestKind::RunNow, "r1");
    assert_eq!(out, RequestOutcome::DeferredUntilResume);
    assert_eq!(
        h.status("ns/r").deferred_run,
        Some(journey_operator::engine::lifecycle::RunKind::RunNow)
    );
    h.run();
    assert!(h.enrollments("ns/r").is_empty());
    h.publish("ns/r");
    h.run();
    assert_eq!(h.enrollments("ns/r").len(), 1);
}

/// Tokens are handled exactly once, and survive a deleted and re-created
/// journey (a restored status never replays a restart).
fn tokens_handled_exactly_once(h: &EngineUnderTest) {
    read_journey(h, false);
    h.publish("ns/r");
    let first = h.request("ns/r", RequestKind::Restart, "x");
    assert!(matches!(first, RequestOutcome::Started { .. }));
    let again = h.request("ns/r", RequestKind::Restart, "x");
    assert_eq!(again, RequestOutcome::AlreadyHandled);
    assert_eq!(h.status("ns/r").epoch, 1);
    h.delete("ns/r");
    read_journey(h, false);
    h.publish("ns/r");
    let replay = h.request("ns/r", RequestKind::Restart, "x");
    assert_eq!(replay, RequestOutcome::AlreadyHandled);
    assert_eq!(h.status("ns/r").epoch, 0);
}

/// Restart (003): a new epoch; every eligible contact begins again from the
/// entry; messages are sent again by design (new epoch, new keys).
fn restart_begins_again_with_new_keys(h: &EngineUnderTest) {
    read_journey(h, true);
    seed_profiles(h, 2, |_| json!({"ok": true}));
    h.publish("ns/r");
    h.request("ns/r", RequestKind::RunNow, "r1");
    h.run();
    assert_eq!(h.deliveries("ns/r").len(), 2);
    let out = h.request("ns/r", RequestKind::Restart, "restart-1");
    assert!(matches!(out, RequestOutcome::Started { run_id: Some(_) }));
    h.run();
    let d = h.deliveries("ns/r");
    assert_eq!(d.len(), 4);
    assert_eq!(d.iter().filter(|x| x.epoch == 1).count(), 2);
    let s = h.status("ns/r");
    assert_eq!((s.epoch, s.phase, s.profiles.entered), (1, Phase::Live, 2));
    // restart is refused once stopped (terminal)
    h.set("ns/r", DesiredLifecycle::Stopped);
    let out = h.request("ns/r", RequestKind::Restart, "restart-2");
    assert!(matches!(out, RequestOutcome::Refused { .. }));
}

/// Restart (003) of an audience-qualification journey: every profile that
/// currently matches begins again from the entry.
fn restart_qualification_journey_reenrolls_matching_profiles(h: &EngineUnderTest) {
    h.apply(
        "ns/q",
        json!({"entry": {"audience": {"condition": "has(profile.gold) && profile.gold", "mode": "Qualification"}},
               "steps": [{"id": "welcome", "action": {"channel": "email", "message": {}}}]}),
    );
    h.publish("ns/q");
    h.profile("a", json!({"gold": true}));
    h.profile("b", json!({"gold": false}));
    assert_eq!(h.deliveries("ns/q").len(), 1);
    h.request("ns/q", RequestKind::Restart, "r");
    h.run();
    let d = h.deliveries("ns/q");
    assert_eq!(d.len(), 2);
    assert_eq!((d[1].profile_id.as_str(), d[1].epoch), ("a", 1));
    // run now on a qualification journey reads the audience too (nobody new here)
    let out = h.request("ns/q", RequestKind::RunNow, "n");
    assert!(matches!(out, RequestOutcome::Started { .. }));
    h.run();
    assert_eq!(h.deliveries("ns/q").len(), 2);
}

/// Restart (003) of an event-triggered journey: everyone who entered the epoch, finished or
/// not, begins again at the first step now, in the new epoch, and is sent its messages again
/// under new idempotency keys.
fn restart_event_journey_starts_everyone_again(h: &EngineUnderTest) {
    let mut spec = action_first();
    spec["exit"] = json!([{"event": {"name": "Leave"}}]);
    h.apply("ns/e", spec);
    h.publish("ns/e");
    h.event("done", "Go", json!({}));
    h.advance(H + M);
    h.event("waiting", "Go", json!({}));
    h.event("left", "Go", json!({}));
    h.event("left", "Leave", json!({}));
    let before = h.status("ns/e").profiles;
    assert_eq!((before.completed, before.waiting, before.exited), (1, 1, 1));
    let first: Vec<String> = h
        .deliveries("ns/e")
        .iter()
        .map(|d| d.idempotency_key())
        .collect();
    assert_eq!(first.len(), 4, "hello x3, followup x1");
    let out = h.request("ns/e", RequestKind::Restart, "restart-1");
    assert_eq!(out, RequestOutcome::Started { run_id: None });
    h.run();
    let again: Vec<_> = h
        .deliveries("ns/e")
        .into_iter()
        .filter(|d| d.epoch == 1)
        .collect();
    let mut who: Vec<_> = again.iter().map(|d| d.profile_id.as_str()).collect();
    who.sort_unstable();
    assert_eq!(who, vec!["done", "left", "waiting"]);
    assert!(again.iter().all(|d| d.step_id == "hello"));
    assert!(
        again.iter().all(|d| !first.contains(&d.idempotency_key())),
        "new epoch, new keys"
    );
    let s = h.status("ns/e");
    assert_eq!((s.epoch, s.profiles.entered, s.profiles.waiting), (1, 3, 3));
}

/// Restart of an event-triggered journey while paused: everyone waits in the queue and
/// begins again at resume.
fn restart_event_journey_while_paused_queues_until_resume(h: &EngineUnderTest) {
    h.apply("ns/e", action_first());
    h.publish("ns/e");
    h.event("a", "Go", json!({}));
    h.event("b", "Go", json!({}));
    h.pause("ns/e", hold());
    h.request("ns/e", RequestKind::Restart, "restart-1");
    h.run();
    let s = h.status("ns/e");
    assert_eq!((s.epoch, s.profiles.queued), (1, 2));
    h.publish("ns/e");
    h.run();
    let again = h
        .deliveries("ns/e")
        .into_iter()
        .filter(|d| d.epoch == 1)
        .count();
    assert_eq!(again, 2);
}

both_ways!(
    run_now_full_run_and_history,
    run_while_paused_is_deferred_to_resume,
    tokens_handled_exactly_once,
    restart_begins_again_with_new_keys,
    restart_qualification_journey_reenrolls_matching_profiles,
    restart_event_journey_starts_everyone_again,
    restart_event_journey_while_paused_queues_until_resume,
);
