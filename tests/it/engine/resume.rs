use journey_operator::engine::{
    EngineConfig, EnrollmentState as ES, PauseEntries, PauseOptions, Phase,
};
use serde_json::json;

use crate::engine::common::*;
use crate::engine::under_test::{EngineUnderTest, both_ways};

fn held_journey(h: &EngineUnderTest, n: usize, rate: u64) {
    let mut spec = action_first();
    spec["resume"] = json!({"rate": rate});
    h.apply("ns/j", spec);
    h.publish("ns/j");
    h.pause(
        "ns/j",
        PauseOptions {
            entries: PauseEntries::Queue,
            ..hold()
        },
    );
    for i in 0..n {
        h.event(&format!("p{i:03}"), "Go", json!({}));
    }
    h.publish("ns/j"); // admits the queued entrances
    h.pause("ns/j", hold());
    h.run();
    assert_eq!(h.status("ns/j").profiles.held, n as i64);
}

/// Resume (002, 003): Resuming, held profiles released in entry order at
/// `resume.rate` per second (token bucket), continue into the action they were
/// held on; Live when all are released.
fn resume_releases_held_in_entry_order_at_rate(h: &EngineUnderTest) {
    held_journey(h, 25, 10);
    let s = h.publish("ns/j");
    assert_eq!(s.phase, Phase::Resuming);
    assert_eq!(s.resume.as_ref().map(|r| r.total), Some(25));
    h.run();
    let first: Vec<String> = h
        .deliveries("ns/j")
        .iter()
        .map(|d| d.profile_id.clone())
        .collect();
    assert_eq!(first.len(), 10, "one second of tokens");
    assert_eq!(
        first,
        (0..10).map(|i| format!("p{i:03}")).collect::<Vec<_>>(),
        "entry order"
    );
    h.advance(S);
    assert_eq!(h.deliveries("ns/j").len(), 20);
    assert_eq!(h.status("ns/j").phase, Phase::Resuming);
    h.advance(S);
    let s = h.status("ns/j");
    assert_eq!(
        (s.phase, s.resume.map(|r| r.released)),
        (Phase::Live, Some(25))
    );
    assert_eq!(h.deliveries("ns/j").len(), 25);
}

/// Resume with rate 0: unthrottled.
#[test]
fn resume_rate_zero_is_unthrottled() {
    let h = EngineUnderTest::in_process_with(EngineConfig {
        release_batch: 7,
        ..EngineConfig::default()
    });
    held_journey(&h, 30, 0);
    h.publish("ns/j");
    h.run();
    assert_eq!(h.deliveries("ns/j").len(), 30);
    assert_eq!(h.status("ns/j").phase, Phase::Live);
}

/// Resume (002): fresh entrances are admitted at once while Resuming.
fn fresh_entrances_admitted_while_resuming(h: &EngineUnderTest) {
    held_journey(h, 20, 1);
    h.publish("ns/j");
    h.event("fresh", "Go", json!({}));
    h.run();
    assert_eq!(h.status("ns/j").phase, Phase::Resuming);
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "fresh")), vec!["hello"]);
}

/// No profile receives a message twice because of a pause/resume cycle (003).
fn no_duplicate_message_across_pause_resume_cycles(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    for i in 0..10 {
        h.event(&format!("p{i}"), "AddToCart", json!({}));
    }
    h.run();
    for _ in 0..3 {
        h.pause("ns/j", hold());
        h.advance(2 * H);
        h.publish("ns/j");
        h.advance(30 * M);
    }
    h.advance(3 * D);
    let d = h.deliveries("ns/j");
    let mut keys: Vec<String> = d.iter().map(|d| d.idempotency_key()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), d.len());
    for i in 0..10 {
        assert_eq!(
            steps_of(&h.deliveries_to("ns/j", &format!("p{i}"))),
            vec!["email", "late", "thanks"]
        );
    }
}

/// Close while paused (AJO close): held profiles are released at resume.rate, then Completed.
fn close_from_pause_releases_held_then_completes(h: &EngineUnderTest) {
    held_journey(h, 5, 0);
    let s = h.set("ns/j", journey_operator::engine::DesiredLifecycle::Closed);
    assert_eq!(s.phase, Phase::Closing);
    h.event("fresh", "Go", json!({}));
    h.run();
    assert!(
        h.deliveries_to("ns/j", "fresh").is_empty(),
        "entrance closed"
    );
    assert_eq!(h.deliveries("ns/j").len(), 5);
    assert_eq!(
        h.status("ns/j").phase,
        Phase::Closing,
        "profiles still waiting"
    );
    h.advance(H);
    assert_eq!(h.status("ns/j").phase, Phase::Completed);
    assert!(
        h.enrollments("ns/j")
            .iter()
            .all(|e| e.state == ES::Completed)
    );
}

both_ways!(
    resume_releases_held_in_entry_order_at_rate,
    fresh_entrances_admitted_while_resuming,
    no_duplicate_message_across_pause_resume_cycles,
    close_from_pause_releases_held_then_completes,
);
