//! Emergency holds in the engine: a pause laid over whatever the declared state says, lifted
//! only by declaring no hold; the strictest mode wins; the declared pause's expiry clock stands
//! still while held.

use journey_model::lifecycle::TransitionReason;
use journey_operator::engine::{
    EnrollmentState as ES, Hold, OnExpiry, PauseMode, PauseOptions, Phase,
};
use serde_json::json;

use crate::engine::common::*;
use crate::engine::under_test::{EngineUnderTest, both_ways};

fn incident(mode: PauseMode) -> Option<Hold> {
    Some(Hold {
        mode,
        reason: "incident 4711: wrong coupon (JourneyHold ns/incident)".into(),
        held_by: vec!["JourneyHold ns/incident".into()],
        actor: Some("alice (JourneyHold ns/incident)".into()),
    })
}

/// A hold pauses a Live journey at once: profiles are held at their next action, nothing is
/// sent; releasing it resumes the journey and the held profiles get their messages.
fn a_hold_pauses_a_live_journey_until_it_is_released(h: &EngineUnderTest) {
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    h.event("a", "Go", json!({}));
    h.run();
    assert_eq!(steps_of(&h.deliveries("ns/j")), vec!["hello"]);
    let s = h.hold("ns/j", incident(PauseMode::Hold));
    assert_eq!(s.phase, Phase::Paused);
    let pause = s.pause.expect("a pause");
    assert_eq!(pause.held_by, vec!["JourneyHold ns/incident".to_string()]);
    assert_eq!(pause.mode, PauseMode::Hold);
    assert_eq!(
        s.history.last().map(|t| t.reason.clone()),
        Some(TransitionReason::EmergencyHold)
    );
    // The declared state is still Published: the hold is laid over it, not instead of it.
    assert_eq!(
        s.desired.state(),
        journey_model::lifecycle::JourneyState::Published
    );
    h.advance(H + M);
    assert_eq!(h.state_of("ns/j", "a").0, ES::Held);
    assert_eq!(h.deliveries("ns/j").len(), 1, "nothing sent while held");
    // Re-declaring the same hold changes nothing.
    let before = h.status("ns/j").revision;
    let again = h.hold("ns/j", incident(PauseMode::Hold));
    assert_eq!(again.revision, before);
    let released = h.hold("ns/j", None);
    assert_eq!(released.phase, Phase::Resuming);
    assert_eq!(
        released.history.last().map(|t| t.reason.clone()),
        Some(TransitionReason::HoldReleased)
    );
    h.run();
    assert_eq!(steps_of(&h.deliveries("ns/j")), vec!["hello", "followup"]);
    assert_eq!(h.status("ns/j").phase, Phase::Live);
}

/// A spec change while held does not lift the hold: resuming the spec (Paused -> Published)
/// leaves the journey paused; pausing it (Published -> Paused) makes the pause the spec's.
fn state_changes_while_held_do_not_release_the_journey(h: &EngineUnderTest) {
    h.apply("ns/j", action_first());
    h.pause("ns/j", hold());
    h.hold("ns/j", incident(PauseMode::Hold));
    let s = h.publish("ns/j");
    assert_eq!(s.phase, Phase::Paused, "the hold keeps it paused");
    assert!(!s.pause.expect("pause").held_by.is_empty());
    let s = h.pause("ns/j", hold());
    assert_eq!(s.phase, Phase::Paused);
    // The spec now pauses it too: releasing the hold leaves the spec's pause.
    let s = h.hold("ns/j", None);
    assert_eq!(s.phase, Phase::Paused);
    assert!(s.pause.expect("pause").held_by.is_empty());
    assert_eq!(h.publish("ns/j").phase, Phase::Resuming);
}

/// The strictest mode wins (Discard > Hold > EntryOnly), the spec's own pause included, and
/// the spec's mode comes back when the hold goes.
fn the_strictest_mode_wins_and_the_spec_mode_comes_back(h: &EngineUnderTest) {
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    let entry_only = PauseOptions {
        mode: PauseMode::EntryOnly,
        ..hold()
    };
    h.pause("ns/j", entry_only);
    let s = h.hold("ns/j", incident(PauseMode::Hold));
    assert_eq!(s.pause.expect("pause").mode, PauseMode::Hold);
    let s = h.hold("ns/j", incident(PauseMode::EntryOnly));
    assert_eq!(s.pause.expect("pause").mode, PauseMode::EntryOnly);
    let s = h.hold("ns/j", incident(PauseMode::Discard));
    assert_eq!(s.pause.expect("pause").mode, PauseMode::Discard);
    let s = h.hold("ns/j", None);
    let pause = s.pause.expect("the spec's pause");
    assert_eq!((s.phase, pause.mode), (Phase::Paused, PauseMode::EntryOnly));
    assert_eq!(pause.reason, None, "the hold's reason goes with it");
}

/// While held, the spec pause's expiry clock stands still: `onExpiry: Stop` never stops a held
/// journey, and after the release the pause has the time it had left.
fn a_hold_suspends_the_spec_pause_expiry(h: &EngineUnderTest) {
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    let stop_after_an_hour = PauseOptions {
        max_duration_ms: H,
        on_expiry: OnExpiry::Stop,
        ..hold()
    };
    let paused = h.pause("ns/j", stop_after_an_hour);
    let expires = paused.pause.expect("pause").expires_at;
    h.advance(30 * M);
    h.hold("ns/j", incident(PauseMode::Hold));
    h.advance(3 * H);
    assert_eq!(
        h.status("ns/j").phase,
        Phase::Paused,
        "not stopped while held"
    );
    let s = h.hold("ns/j", None);
    let moved = s.pause.expect("pause").expires_at;
    assert_eq!(
        moved - expires,
        3 * H,
        "the expiry moved out by the held time"
    );
    h.advance(29 * M);
    assert_eq!(
        h.status("ns/j").phase,
        Phase::Paused,
        "half an hour was left"
    );
    h.advance(2 * M);
    assert_eq!(h.status("ns/j").phase, Phase::Stopped);
}

/// A hold over a journey whose spec pause already expired pauses it again; releasing it
/// resumes it (the expired spec pause is not revived).
fn a_hold_over_an_expired_spec_pause_resumes_at_release(h: &EngineUnderTest) {
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    let short = PauseOptions {
        max_duration_ms: H,
        ..hold()
    };
    h.pause("ns/j", short);
    h.advance(H + M);
    assert_eq!(
        h.status("ns/j").phase,
        Phase::Live,
        "the spec pause expired"
    );
    assert_eq!(
        h.hold("ns/j", incident(PauseMode::Hold)).phase,
        Phase::Paused
    );
    assert_eq!(h.hold("ns/j", None).phase, Phase::Resuming);
    h.run();
    assert_eq!(h.status("ns/j").phase, Phase::Live);
}

/// Draft, Closing, Completed and Stopped journeys are left as they are; a Draft journey
/// published under a hold starts held.
fn a_hold_leaves_other_phases_alone(h: &EngineUnderTest) {
    h.apply("ns/draft", action_first());
    assert_eq!(
        h.hold("ns/draft", incident(PauseMode::Hold)).phase,
        Phase::Draft
    );
    let s = h.publish("ns/draft");
    assert_eq!(
        s.phase,
        Phase::Paused,
        "published under the hold: held at once"
    );
    h.apply("ns/closed", action_first());
    h.publish("ns/closed");
    h.event("a", "Go", json!({}));
    h.run();
    h.set(
        "ns/closed",
        journey_operator::engine::DesiredLifecycle::Closed,
    );
    let s = h.hold("ns/closed", incident(PauseMode::Hold));
    assert_eq!(s.phase, Phase::Closing);
    assert!(s.pause.is_none());
    h.apply("ns/stopped", action_first());
    h.publish("ns/stopped");
    h.set(
        "ns/stopped",
        journey_operator::engine::DesiredLifecycle::Stopped,
    );
    assert_eq!(
        h.hold("ns/stopped", incident(PauseMode::Discard)).phase,
        Phase::Stopped
    );
}

both_ways!(
    a_hold_pauses_a_live_journey_until_it_is_released,
    state_changes_while_held_do_not_release_the_journey,
    the_strictest_mode_wins_and_the_spec_mode_comes_back,
    a_hold_suspends_the_spec_pause_expiry,
    a_hold_over_an_expired_spec_pause_resumes_at_release,
    a_hold_leaves_other_phases_alone,
);
