use journey_operator::engine::{EnrollmentState as ES, PauseOptions};
use serde_json::json;

use crate::engine::common::*;

/// Steps: wait -> condition (branches/otherwise) -> action (seed 002 sample).
#[test]
fn wait_condition_action() {
    let h = Harness::new();
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.profile("vip", json!({"vip": true}));
    h.profile("std", json!({}));
    h.event("vip", "AddToCart", json!({}));
    h.event("std", "AddToCart", json!({}));
    h.run();
    assert!(h.deliveries("ns/j").is_empty());
    h.advance(H);
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "vip")), vec!["push"]);
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "std")), vec!["email"]);
    assert_eq!(h.state_of("ns/j", "vip"), (ES::Waiting, "react".into()));
}

/// Steps: wait until an absolute time.
#[test]
fn wait_until() {
    let h = Harness::new();
    h.apply(
        "ns/u",
        json!({"entry": {"event": {"name": "Go"}},
               "steps": [{"id": "w", "wait": {"until": "2026-01-03T00:00:00Z"}},
                         {"id": "a", "action": {"channel": "sms", "message": {}}}]}),
    );
    h.publish("ns/u");
    h.event("p", "Go", json!({}));
    h.advance(D);
    assert!(h.deliveries("ns/u").is_empty());
    h.advance(D);
    assert_eq!(h.deliveries("ns/u").len(), 1);
}

/// Steps: waitForEvent consumes the event, or takes the timeout branch.
#[test]
fn wait_for_event_and_timeout_branch() {
    let h = Harness::new();
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("opens", "AddToCart", json!({}));
    h.event("silent", "AddToCart", json!({}));
    h.advance(H);
    h.event("opens", "Open", json!({}));
    h.run();
    assert_eq!(
        steps_of(&h.deliveries_to("ns/j", "opens")),
        vec!["email", "thanks"]
    );
    assert_eq!(h.state_of("ns/j", "opens").0, ES::Completed);
    h.advance(48 * H);
    assert_eq!(
        steps_of(&h.deliveries_to("ns/j", "silent")),
        vec!["email", "late", "thanks"]
    );
}

/// Steps: an exit step exits the profile.
#[test]
fn exit_step() {
    let h = Harness::new();
    h.apply(
        "ns/x",
        json!({"entry": {"event": {"name": "Go"}},
               "steps": [{"id": "out", "exit": {}}, {"id": "never", "action": {"channel": "sms", "message": {}}}]}),
    );
    h.publish("ns/x");
    h.event("p", "Go", json!({}));
    h.run();
    let e = h.enrollment("ns/x", "p");
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (ES::Exited, Some("ExitStep"))
    );
    assert!(h.deliveries("ns/x").is_empty());
}

/// Exit criteria events remove the profile from any step.
#[test]
fn exit_criteria_remove_profile_from_any_step() {
    let h = Harness::new();
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("a", "AddToCart", json!({}));
    h.event("b", "AddToCart", json!({}));
    h.run();
    h.event("a", "Purchase", json!({}));
    h.advance(H);
    h.event("b", "Purchase", json!({}));
    h.advance(3 * D);
    let a = h.enrollment("ns/j", "a");
    assert_eq!(
        (a.state, a.step.as_str(), a.reason.as_deref()),
        (ES::Exited, "wait", Some("ExitCriteria"))
    );
    let b = h.enrollment("ns/j", "b");
    assert_eq!((b.state, b.step.as_str()), (ES::Exited, "react"));
    assert!(h.deliveries_to("ns/j", "a").is_empty());
    assert_eq!(h.deliveries_to("ns/j", "b").len(), 1);
}

/// The global timeout removes profiles, even while paused (seed 002 guardrails).
#[test]
fn global_timeout_applies_even_while_paused() {
    let h = Harness::new();
    let mut spec = ajo_sample();
    spec["timeout"] = json!("2184h");
    spec["steps"][0]["wait"]["duration"] = json!("2000h");
    h.apply("ns/j", spec);
    h.publish("ns/j");
    h.event("p", "AddToCart", json!({}));
    h.run();
    h.advance(80 * D);
    h.pause(
        "ns/j",
        PauseOptions {
            max_duration_ms: 336 * H,
            ..hold()
        },
    );
    h.advance(11 * D + H);
    let e = h.enrollment("ns/j", "p");
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (ES::Exited, Some("Timeout"))
    );
    assert_eq!(
        h.status("ns/j").phase,
        journey_operator::engine::Phase::Paused
    );
}

/// A loop that passes the same action again in one entry records a delivery each time, each
/// under its own idempotency key (the visit number is part of it).
#[test]
fn a_loop_through_an_action_delivers_every_pass() {
    let h = Harness::new();
    h.apply(
        "ns/loop",
        json!({
            "entry": {"event": {"name": "Go"}},
            "steps": [
                {"id": "remind", "action": {"channel": "email", "message": {"subject": "still there?"}}},
                {"id": "wait", "wait": {"duration": "1h"}},
                {"id": "check", "condition": {
                    "branches": [{"when": "has(profile.done) && profile.done", "next": "bye"}],
                    "otherwise": "remind"}},
                {"id": "bye", "exit": {}}
            ]
        }),
    );
    h.publish("ns/loop");
    h.event("p", "Go", json!({}));
    h.advance(3 * H + M);
    let sent = h.deliveries_to("ns/loop", "p");
    assert_eq!(steps_of(&sent), ["remind", "remind", "remind", "remind"]);
    let mut keys: Vec<String> = sent.iter().map(|d| d.idempotency_key()).collect();
    assert_eq!(
        sent[0].visit, 0,
        "the first pass keeps the key form of before visits"
    );
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "one key per pass");
    assert_eq!(h.enrollments("ns/loop").len(), 1, "all in one entry");
    h.profile("p", json!({"done": true}));
    h.advance(H);
    assert_eq!(h.deliveries_to("ns/loop", "p").len(), 4);
    assert_eq!(h.state_of("ns/loop", "p").0, ES::Exited);
}
