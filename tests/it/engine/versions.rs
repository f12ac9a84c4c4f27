use journey_operator::engine::{EnrollmentState as ES, Phase};
use serde_json::json;

use crate::engine::common::*;
use crate::engine::under_test::{EngineUnderTest, both_ways};

/// Versions (001, 002, AJO): a changed definition while live creates the next
/// version; profiles inside finish on their version; new entrants use the newest.
#[test]
fn live_change_creates_version_insiders_stay() {
    let h = Harness::new();
    assert_eq!(h.apply("ns/j", ajo_sample()).version, 1);
    h.publish("ns/j");
    h.event("old", "AddToCart", json!({}));
    h.run();
    let mut v2 = ajo_sample();
    v2["steps"][3]["action"]["message"] = json!({"subject": "v2"});
    let a = h.apply("ns/j", v2.clone());
    assert_eq!((a.version, a.created), (2, true));
    assert!(!h.apply("ns/j", v2).created, "idempotent on content");
    h.event("new", "AddToCart", json!({}));
    h.advance(H);
    assert_eq!(
        h.deliveries_to("ns/j", "old")[0].message,
        json!({"subject": "v1"})
    );
    assert_eq!(
        h.deliveries_to("ns/j", "new")[0].message,
        json!({"subject": "v2"})
    );
    assert_eq!(h.enrollment("ns/j", "old").version, 1);
    assert_eq!(h.status("ns/j").version, Some(2));
}

/// Versions: a definition changed while paused (002: "perform all changes
/// needed") moves held and waiting profiles to the new version by step id at
/// resume; a profile on a removed step exits with reason StepRemoved.
#[test]
fn paused_change_migrates_by_step_id_and_removed_step_exits() {
    let h = Harness::new();
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.profile("vip", json!({"vip": true}));
    h.event("vip", "AddToCart", json!({}));
    h.event("std", "AddToCart", json!({}));
    h.advance(30 * M);
    h.event("waiter2", "AddToCart", json!({}));
    h.pause("ns/j", hold());
    h.advance(30 * M); // vip/std reach their actions and are held, waiter2 still waits
    assert_eq!(h.status("ns/j").profiles.held, 2);
    assert_eq!(h.state_of("ns/j", "waiter2").0, ES::Waiting);
    // fix the email content, remove the push step (vip's held step)
    let mut v2 = ajo_sample();
    v2["steps"][3]["action"]["message"] = json!({"subject": "fixed"});
    let steps = v2["steps"].as_array_mut().expect("steps");
    steps.remove(2);
    steps[1]["condition"]["branches"][0]["next"] = json!("email");
    assert_eq!(h.apply("ns/j", v2).version, 2);
    assert_eq!(h.publish("ns/j").phase, Phase::Resuming);
    h.advance(H);
    let vip = h.enrollment("ns/j", "vip");
    assert_eq!(
        (vip.state, vip.reason.as_deref()),
        (ES::Exited, Some("StepRemoved"))
    );
    assert_eq!(
        h.deliveries_to("ns/j", "std")[0].message,
        json!({"subject": "fixed"})
    );
    assert_eq!(
        h.deliveries_to("ns/j", "waiter2")[0].message,
        json!({"subject": "fixed"})
    );
    assert!(
        h.enrollments("ns/j")
            .iter()
            .filter(|e| !e.state_is_terminal())
            .all(|e| e.version == 2)
    );
}

trait Term {
    fn state_is_terminal(&self) -> bool;
}
impl Term for journey_operator::engine::EnrollmentView {
    fn state_is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

fn wait_then_hello(wait: &str) -> serde_json::Value {
    json!({"entry": {"event": {"name": "Go"}},
           "steps": [{"id": "wait", "wait": {"duration": wait}},
                     {"id": "hello", "action": {"channel": "email", "message": {}}}]})
}

/// Versions (001): a wait changed from 1h to 2h while live: profiles already waiting keep
/// their 1h (version 1), new entrants wait 2h (version 2), the status shows version 2.
fn live_wait_change_applies_to_new_entrants_only(h: &EngineUnderTest) {
    h.apply("ns/j", wait_then_hello("1h"));
    h.publish("ns/j");
    h.event("old", "Go", json!({}));
    assert_eq!(h.state_of("ns/j", "old"), (ES::Waiting, "wait".into()));
    let s = h.apply("ns/j", wait_then_hello("2h"));
    assert_eq!((s.version, s.phase), (Some(2), Phase::Live));
    h.event("new", "Go", json!({}));
    h.advance(H + M);
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "old")), vec!["hello"]);
    assert_eq!(h.state_of("ns/j", "new"), (ES::Waiting, "wait".into()));
    h.advance(H);
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "new")), vec!["hello"]);
    assert_eq!(h.enrollment("ns/j", "old").version, 1);
    assert_eq!(h.enrollment("ns/j", "new").version, 2);
    assert_eq!(h.status("ns/j").version, Some(2));
}

both_ways!(live_wait_change_applies_to_new_entrants_only);
