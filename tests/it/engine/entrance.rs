use journey_operator::engine::{EnrollmentState as ES, Phase};
use serde_json::json;

use crate::engine::common::*;

/// Entrance: event-triggered with a condition (seed 002 sample, AddToCart).
#[test]
fn event_entry_with_condition() {
    let h = Harness::new();
    let mut spec = ajo_sample();
    spec["entry"]["event"]["condition"] = json!("event.total > 10 && profile.country == 'DE'");
    h.apply("ns/j", spec);
    assert_eq!(h.publish("ns/j").phase, Phase::Live);
    h.profile("a", json!({"country": "DE"}));
    h.profile("b", json!({"country": "FR"}));
    h.event("a", "AddToCart", json!({"total": 11}));
    h.event("a", "Other", json!({"total": 11}));
    h.event("b", "AddToCart", json!({"total": 50}));
    h.event("c", "AddToCart", json!({"total": 5}));
    h.run();
    let e = h.enrollments("ns/j");
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].profile_id.as_str(), e[0].state, e[0].step.as_str()),
        ("a", ES::Waiting, "wait")
    );
    assert_eq!(h.status("ns/j").profiles.entered, 1);
}

/// Entrance: audience qualification enters when the profile *starts* matching.
#[test]
fn audience_qualification_enters_when_profile_starts_matching() {
    let h = Harness::new();
    h.apply(
        "ns/q",
        json!({"entry": {"audience": {"condition": "has(profile.tier) && profile.tier == 'gold'", "mode": "Qualification"}},
               "steps": [{"id": "welcome", "action": {"channel": "email", "message": {}}}]}),
    );
    h.profile("before", json!({"tier": "gold"}));
    h.publish("ns/q");
    h.profile("x", json!({"tier": "silver"}));
    h.run();
    assert!(
        h.enrollments("ns/q").is_empty(),
        "matching before publish or not matching: no entry"
    );
    h.profile("x", json!({"tier": "gold"}));
    h.profile("x", json!({"tier": "gold", "more": 1}));
    h.run();
    let e = h.enrollments("ns/q");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].state, ES::Completed);
    assert_eq!(steps_of(&h.deliveries("ns/q")), vec!["welcome"]);
}

/// Entrance: audience read on a cron schedule with a time zone; incremental
/// reads only profiles new since the last completed read (seed 003, seed 001).
#[test]
fn audience_read_cron_time_zone_and_incremental() {
    let h = Harness::new();
    // 2026-01-01T00:00Z start; 14:00 Europe/Paris = 13:00Z.
    h.apply(
        "ns/r",
        json!({"entry": {"audience": {"condition": "profile.optin", "mode": "Read",
                 "schedule": {"cron": "0 14 * * *", "timeZone": "Europe/Paris"}, "incremental": true}},
               "steps": [{"id": "mail", "action": {"channel": "email", "message": {}}}]}),
    );
    seed_profiles(&h, 3, |i| json!({"optin": i != 1}));
    h.publish("ns/r");
    h.advance(12 * H + 59 * M);
    assert!(h.enrollments("ns/r").is_empty(), "nothing before 13:00Z");
    h.advance(2 * M);
    assert_eq!(h.enrollments("ns/r").len(), 2);
    h.profile("late", json!({"optin": true}));
    h.advance(D);
    let e = h.enrollments("ns/r");
    assert_eq!(e.len(), 3, "only the new profile is read incrementally");
    assert_eq!(e[2].profile_id, "late");
    let runs = h.engine.run_history_blocking("ns/r", 10).expect("runs");
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.outcome == "Succeeded"));
    assert_eq!(runs[0].entered, 1);
    assert_eq!(runs[1].entered, 2);
}

/// Entrance: re-entry follows entry.reentry (allowed, after).
#[test]
fn reentry_rules() {
    let h = Harness::new();
    h.apply("ns/no", action_first());
    let mut spec = action_first();
    spec["entry"]["reentry"] = json!({"allowed": true, "after": "24h"});
    h.apply("ns/yes", spec);
    h.publish("ns/no");
    h.publish("ns/yes");
    h.event("p", "Go", json!({}));
    h.advance(2 * H);
    h.event("p", "Go", json!({}));
    h.run();
    assert_eq!(h.enrollments("ns/no").len(), 1, "no re-entry by default");
    assert_eq!(h.enrollments("ns/yes").len(), 1, "too soon");
    h.advance(23 * H);
    h.event("p", "Go", json!({}));
    h.run();
    assert_eq!(h.enrollments("ns/no").len(), 1);
    assert_eq!(h.enrollments("ns/yes").len(), 2);
    // a profile inside never enters twice at once
    h.event("p", "Go", json!({}));
    assert_eq!(h.enrollments("ns/yes").len(), 2);
}
