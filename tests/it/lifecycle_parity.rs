//! One lifecycle table, three judges: every (from, to) pair of declared states and every lock
//! goes through the CRD's CEL rules (evaluated client-side, as the apiserver does), the engine's
//! declaration (`Engine::declare_blocking`, what the v1 engine API serves) and `plan`; each must
//! give the same verdict with the same message.
//!
//! CEL judges spec against spec; the engine judges where the journey is against what it is
//! asked. The engine side of each CEL "from" state is every phase a journey declared in that
//! state can be in:
//!
//! | CEL from  | engine phases                                      |
//! | --------- | -------------------------------------------------- |
//! | Draft     | Draft                                              |
//! | Published | Live, Scheduled (before `startAt`), Resuming      |
//! | Paused    | Paused, Live after a pause expired (`onExpiry: Resume`) |
//! | Closed    | Closing (profiles inside), Completed               |
//! | Stopped   | Stopped                                            |

use journey_model::lifecycle::{JourneyState, Phase};
use journey_operator::api::admission::cel_violations;
use journey_operator::api::validate::ValidationContext;
use journey_operator::engine::{Declaration, EngineError};
use journey_operator::plan::plan;
use serde_json::{Value, json};

use crate::engine::common::*;

const KEY: &str = "team/j";

/// The guarded part a case changes along with the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    None,
    GlobalFilter,
    RemoveGlobalFilter,
    Entry,
    Steps,
}

const EDITS: [Edit; 5] = [
    Edit::None,
    Edit::GlobalFilter,
    Edit::RemoveGlobalFilter,
    Edit::Entry,
    Edit::Steps,
];

fn base() -> Value {
    json!({
        "entry": {"event": {"name": "Go"}},
        "globalFilter": "has(profile.blocked)",
        "resume": {"rate": 1},
        "steps": [
            {"id": "wait", "wait": {"duration": "1m"}},
            {"id": "hello", "action": {"channel": "record", "message": {"body": "hi"}}},
            {"id": "later", "wait": {"duration": "1h"}}
        ]
    })
}

fn with_state(mut spec: Value, state: JourneyState) -> Value {
    spec["state"] = json!(state.as_str());
    spec
}

fn edited(spec: &Value, to: JourneyState, edit: Edit) -> Value {
    let mut s = with_state(spec.clone(), to);
    match edit {
        Edit::None => {}
        Edit::GlobalFilter => s["globalFilter"] = json!("has(profile.vip)"),
        Edit::RemoveGlobalFilter => {
            if let Some(m) = s.as_object_mut() {
                m.remove("globalFilter");
            }
        }
        Edit::Entry => s["entry"]["event"]["name"] = json!("Other"),
        Edit::Steps => s["steps"][2]["wait"]["duration"] = json!("2h"),
    }
    s
}

fn object(spec: &Value) -> Value {
    crate::builders::object("j", Some("team"), spec)
}

fn declare(h: &Harness, spec: &Value) -> Result<Phase, EngineError> {
    let state: JourneyState =
        serde_json::from_value(spec["state"].clone()).expect("the case has a state");
    let definition = definition(spec.clone());
    h.engine
        .declare_blocking(
            KEY,
            &Declaration {
                definition,
                state,
                requests: Default::default(),
                expected_revision: None,
                hold: None,
                actor: None,
            },
        )
        .map(|d| d.status.phase)
}

fn must(h: &Harness, spec: &Value) {
    declare(h, spec).unwrap_or_else(|e| panic!("setting up {spec}: {e}"));
}

/// A journey brought to one engine phase through declarations; returns the spec last declared
/// (the CEL "from" object).
struct Situation {
    name: &'static str,
    from: JourneyState,
    phase: Phase,
    setup: fn(&Harness) -> Value,
}

fn published(h: &Harness) -> Value {
    let spec = with_state(base(), JourneyState::Published);
    must(h, &spec);
    spec
}

fn paused_spec(spec: &Value) -> Value {
    let mut p = with_state(spec.clone(), JourneyState::Paused);
    p["pause"] = json!({"mode": "Hold", "maxDuration": "1h", "onExpiry": "Resume"});
    p
}

const SITUATIONS: &[Situation] = &[
    Situation {
        name: "draft",
        from: JourneyState::Draft,
        phase: Phase::Draft,
        setup: |h| {
            let spec = with_state(base(), JourneyState::Draft);
            must(h, &spec);
            spec
        },
    },
    Situation {
        name: "live",
        from: JourneyState::Published,
        phase: Phase::Live,
        setup: published,
    },
    Situation {
        name: "scheduled",
        from: JourneyState::Published,
        phase: Phase::Scheduled,
        setup: |h| {
            let mut spec = with_state(base(), JourneyState::Published);
            spec["schedule"] = json!({"startAt": "2100-01-01T00:00:00Z"});
            must(h, &spec);
            spec
        },
    },
    Situation {
        name: "resuming",
        from: JourneyState::Published,
        phase: Phase::Resuming,
        setup: |h| {
            let spec = published(h);
            for i in 0..3 {
                h.event(&format!("p{i}"), "Go", json!({}));
            }
            must(h, &paused_spec(&spec));
            h.advance(2 * M);
            must(h, &spec);
            spec
        },
    },
    Situation {
        name: "paused",
        from: JourneyState::Paused,
        phase: Phase::Paused,
        setup: |h| {
            let spec = paused_spec(&published(h));
            must(h, &spec);
            spec
        },
    },
    Situation {
        name: "live after an expired pause",
        from: JourneyState::Paused,
        phase: Phase::Live,
        setup: |h| {
            let spec = paused_spec(&published(h));
            must(h, &spec);
            h.advance(2 * H);
            spec
        },
    },
    Situation {
        name: "closing",
        from: JourneyState::Closed,
        phase: Phase::Closing,
        setup: |h| {
            published(h);
            h.event("p0", "Go", json!({}));
            let spec = with_state(base(), JourneyState::Closed);
            must(h, &spec);
            spec
        },
    },
    Situation {
        name: "completed",
        from: JourneyState::Closed,
        phase: Phase::Completed,
        setup: |h| {
            published(h);
            let spec = with_state(base(), JourneyState::Closed);
            must(h, &spec);
            h.run();
            spec
        },
    },
    Situation {
        name: "stopped",
        from: JourneyState::Stopped,
        phase: Phase::Stopped,
        setup: |h| {
            published(h);
            let spec = with_state(base(), JourneyState::Stopped);
            must(h, &spec);
            spec
        },
    },
];

fn cel_verdict(old: &Value, new: &Value) -> Result<(), String> {
    match cel_violations(&object(new), Some(&object(old))).first() {
        None => Ok(()),
        Some(v) => Err(v.message.clone()),
    }
}

fn plan_verdict(old: &Value, new: &Value) -> Result<(), Vec<String>> {
    let p = plan(
        &[(KEY.to_string(), object(old))],
        &[(KEY.to_string(), object(new))],
        &ValidationContext::default(),
    );
    // An unchanged journey is not listed: nothing to reject.
    let Some(change) = p.changes.first() else {
        return Ok(());
    };
    if change.rejections.is_empty() {
        Ok(())
    } else {
        Err(change.rejections.clone())
    }
}

#[test]
fn cel_the_engine_and_plan_give_every_change_the_same_verdict_and_message() {
    let mut checked = 0;
    for situation in SITUATIONS {
        // Every situation really is where the table says it is.
        let h = Harness::new();
        (situation.setup)(&h);
        assert_eq!(
            h.status(KEY).phase,
            situation.phase,
            "situation {:?}",
            situation.name
        );
        for to in JourneyState::ALL {
            for edit in EDITS {
                let h = Harness::new();
                let old = (situation.setup)(&h);
                assert_eq!(old["state"], json!(situation.from.as_str()));
                let new = edited(&old, to, edit);
                let case = format!(
                    "{} ({}) → {to} with {edit:?}",
                    situation.name, situation.from
                );
                let cel = cel_verdict(&old, &new);
                let engine = match declare(&h, &new) {
                    Ok(_) => Ok(()),
                    Err(EngineError::IllegalTransition { why, .. }) => Err(why),
                    Err(other) => panic!("{case}: the engine failed otherwise: {other}"),
                };
                assert_eq!(engine, cel, "{case}: engine vs CEL");
                match (&cel, plan_verdict(&old, &new)) {
                    (Ok(()), Ok(())) => {}
                    (Err(message), Err(rejections)) => assert!(
                        rejections.iter().any(|r| r.contains(message.as_str())),
                        "{case}: plan says {rejections:?}, CEL says {message:?}"
                    ),
                    (cel, plan) => panic!("{case}: plan says {plan:?}, CEL says {cel:?}"),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        SITUATIONS.len() * JourneyState::ALL.len() * EDITS.len()
    );
}
