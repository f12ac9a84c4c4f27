//! Declarations: one transaction for the definition, the state and the request tokens; a
//! refused declaration changes nothing; `expected_revision` guards against lost updates.

use journey_model::lifecycle::JourneyState;
use journey_operator::engine::{Declaration, EngineError, Phase};
use serde_json::json;

use super::common::*;

fn declaration(spec: serde_json::Value, state: JourneyState) -> Declaration {
    Declaration {
        definition: definition(spec),
        state,
        requests: Default::default(),
        expected_revision: None,
        hold: None,
        actor: None,
    }
}

#[test]
fn a_refused_declaration_changes_nothing() {
    let h = Harness::new();
    let d = h
        .engine
        .declare_blocking(
            "ns/j",
            &declaration(action_first(), JourneyState::Published),
        )
        .expect("publish");
    let before = h.status("ns/j");
    assert_eq!(before.version, Some(1));
    // A new step and a changed entry in one declaration: the entry lock refuses the whole of
    // it, so the step does not become version 2 either.
    let mut changed = action_first();
    changed["entry"]["event"]["name"] = json!("Other");
    changed["steps"][1]["wait"]["duration"] = json!("2h");
    let refused = h.engine.declare_blocking(
        "ns/j",
        &declaration(changed.clone(), JourneyState::Published),
    );
    assert!(
        matches!(refused, Err(EngineError::IllegalTransition { .. })),
        "{refused:?}"
    );
    let after = h.status("ns/j");
    assert_eq!(after.version, before.version);
    assert_eq!(after.revision, d.status.revision, "not even the feed moved");
    // With the pause in the same declaration it is allowed, as the CRD allows it.
    let mut paused = changed;
    paused["pause"] = json!({"mode": "Hold"});
    let d = h
        .engine
        .declare_blocking("ns/j", &declaration(paused, JourneyState::Paused))
        .expect("pause with the change");
    assert_eq!(d.status.phase, Phase::Paused);
    assert_eq!(d.status.version, Some(2));
}

#[test]
fn expected_revision_refuses_a_declaration_made_on_a_stale_read() {
    let h = Harness::new();
    let mut first = declaration(action_first(), JourneyState::Published);
    first.expected_revision = Some(0);
    let d = h.engine.declare_blocking("ns/j", &first).expect("create");
    // Someone else changes it (an event enters a profile: the engine's own change).
    h.event("p1", "Go", json!({}));
    let mut stale = declaration(action_first(), JourneyState::Closed);
    stale.expected_revision = Some(d.status.revision);
    match h.engine.declare_blocking("ns/j", &stale) {
        Err(EngineError::RevisionConflict {
            expected, actual, ..
        }) => {
            assert_eq!(expected, d.status.revision);
            assert!(actual > expected);
        }
        other => panic!("expected RevisionConflict, got {other:?}"),
    }
    assert_eq!(h.status("ns/j").phase, Phase::Live, "nothing changed");
    stale.expected_revision = Some(h.status("ns/j").revision);
    let d = h.engine.declare_blocking("ns/j", &stale).expect("current");
    assert_ne!(d.status.phase, Phase::Live);
    // 0 means "must not exist yet".
    assert!(matches!(
        h.engine.declare_blocking("ns/j", &first),
        Err(EngineError::RevisionConflict { .. })
    ));
}
