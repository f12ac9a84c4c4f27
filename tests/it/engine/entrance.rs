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

/// A batch of events is one transaction: when one event of it fails in the engine, none of
/// the batch is written (no entrance, no stored event), so the sender can resend it whole.
#[test]
fn a_batch_that_fails_part_way_writes_nothing() {
    use journey_operator::engine::NewEvent;
    let h = Harness::new();
    h.apply("ns/broken", action_first());
    h.publish("ns/broken");
    h.apply(
        "ns/fine",
        json!({
            "entry": {"event": {"name": "Signup"}},
            "steps": [{"id": "hello", "action": {"channel": "email", "message": {"subject": "hi"}}}]
        }),
    );
    h.publish("ns/fine");
    h.event("victim", "Go", json!({}));
    // A second version for newcomers; the victim stays on version 1.
    let mut v2 = action_first();
    v2["steps"][0]["action"]["message"]["subject"] = json!("hello again");
    h.apply("ns/broken", v2);
    // Version 1 is now stored as the engine cannot compile it (as an engine from before the
    // expression limits could have stored it): an event for the victim fails in the engine,
    // an event for anyone else does not.
    let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
    let db = rusqlite::Connection::open(h.db()).expect("open");
    db.execute(
        "UPDATE versions SET definition = json_set(definition, '$.entry.event.condition', ?1)
         WHERE journey_id = (SELECT id FROM journeys WHERE key = 'ns/broken') AND version = 1",
        [&deep],
    )
    .expect("tamper");
    let events_before: i64 = db
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .expect("count");
    drop(db);
    let h = h.reopen();
    let event = |profile: &str, name: &str| NewEvent {
        profile_id: profile.into(),
        name: name.into(),
        payload: json!({}),
    };
    let batch = [event("newcomer", "Signup"), event("victim", "Open")];
    let failed = h
        .engine
        .ingest_events_blocking(&batch)
        .expect_err("the batch fails");
    assert!(
        failed.to_string().contains("entry.event.condition"),
        "{failed}"
    );
    h.run();
    assert!(
        h.deliveries("ns/fine").is_empty(),
        "the first event did not count"
    );
    let db = rusqlite::Connection::open(h.db()).expect("open");
    let events_after: i64 = db
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        events_after, events_before,
        "no event of the batch was stored"
    );
    // The same batch without the failing event goes through.
    h.engine
        .ingest_events_blocking(&batch[..1])
        .expect("ingest");
    h.run();
    assert_eq!(steps_of(&h.deliveries("ns/fine")), ["hello"]);
}
