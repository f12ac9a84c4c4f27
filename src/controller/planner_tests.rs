//! Table tests of the planner: every lifecycle transition of the Journey API.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::planner::*;
use crate::api::journey::JourneySpec;
use crate::api::status::{JourneyStatus, Phase, condition_types as ct};
use crate::api::validate::Problem;
use crate::engine::lifecycle::{PauseStatus, ResumeStatus, Transition, TransitionReason};
use crate::engine::{self, DesiredLifecycle, PauseOptions, RequestKind, StatusSnapshot};

const HASH: &str = "h1";

fn spec(state: &str, extra: serde_json::Value) -> JourneySpec {
    let mut value = json!({
        "state": state,
        "entry": {"event": {"name": "AddToCart"}},
        "steps": [{"id": "a", "action": {"channel": "record"}}]
    });
    if let (Some(map), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).expect("spec")
}

fn snapshot(phase: engine::Phase, desired: DesiredLifecycle) -> StatusSnapshot {
    StatusSnapshot {
        revision: 1,
        key: "ns/j".into(),
        phase,
        desired,
        version: Some(1),
        definition_hash: Some(HASH.into()),
        epoch: 0,
        profiles: Default::default(),
        pause: None,
        resume: None,
        global_filter: None,
        hold: None,
        last_runs: Vec::new(),
        history: Vec::new(),
        last_handled_run_request: None,
        last_handled_full_run_request: None,
        last_handled_restart_request: None,
        deferred_run: None,
    }
}

fn paused_opts(mode: engine::PauseMode) -> DesiredLifecycle {
    DesiredLifecycle::Paused(PauseOptions {
        mode,
        ..PauseOptions::default()
    })
}

fn plan_for(spec: &JourneySpec, engine: EngineView<'_>, tokens: &Tokens, hash: &str) -> Plan {
    plan(&Observed {
        spec,
        tokens,
        problems: &[],
        definition_hash: Some(hash),
        engine,
        hold: None,
    })
}

fn status_for(spec: &JourneySpec, engine: EngineView<'_>, block: Option<&Block>) -> JourneyStatus {
    let now = Time(Timestamp::from_second(1_800_000_000).expect("time"));
    desired_status(&StatusInput {
        spec,
        generation: Some(3),
        engine,
        block,
        restart_refused_locally: None,
        previous: None,
        now: &now,
        matching_holds: &[],
    })
}

fn condition(status: &JourneyStatus, type_: &str) -> (String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone())
}

#[test]
fn draft_touches_nothing_and_reports_draft() {
    let s = spec("Draft", json!({}));
    let p = plan_for(&s, EngineView::Unknown, &Tokens::default(), HASH);
    assert_eq!(p.commands, vec![]);
    let st = status_for(&s, EngineView::Unknown, None);
    assert_eq!(st.phase, Some(Phase::Draft));
    assert_eq!(
        condition(&st, "Ready"),
        ("True".into(), "Reconciled".into())
    );
    assert_eq!(condition(&st, "Published").0, "False");
    assert_eq!(
        st.conditions.len(),
        ct::ALL.len(),
        "all conditions always present"
    );
}

#[test]
fn draft_to_published_applies_the_definition_then_publishes() {
    let s = spec("Published", json!({}));
    let p = plan_for(&s, EngineView::Unknown, &Tokens::default(), HASH);
    assert_eq!(
        p.commands,
        vec![
            Command::ApplyDefinition,
            Command::SetLifecycle(DesiredLifecycle::Published)
        ]
    );
    let live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
    assert_eq!(
        plan_for(&s, EngineView::Known(&live), &Tokens::default(), HASH).commands,
        vec![]
    );
    let st = status_for(&s, EngineView::Known(&live), None);
    assert_eq!(st.phase, Some(Phase::Live));
    assert_eq!(condition(&st, "Ready").0, "True");
    assert_eq!(
        condition(&st, "Published"),
        ("True".into(), "Published".into())
    );
    assert_eq!(st.observed_generation, Some(3));
}

#[test]
fn published_to_paused_in_each_mode_and_back() {
    for (mode, engine_mode) in [
        ("Hold", engine::PauseMode::Hold),
        ("Discard", engine::PauseMode::Discard),
        ("EntryOnly", engine::PauseMode::EntryOnly),
    ] {
        let s = spec("Paused", json!({"pause": {"mode": mode}}));
        let live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
        let p = plan_for(&s, EngineView::Known(&live), &Tokens::default(), HASH);
        assert_eq!(
            p.commands,
            vec![Command::SetLifecycle(paused_opts(engine_mode))],
            "{mode}"
        );

        let mut paused = snapshot(engine::Phase::Paused, paused_opts(engine_mode));
        paused.pause = Some(PauseStatus {
            pause_id: 1,
            since: 1_000,
            mode: engine_mode,
            reason: None,
            expires_at: 2_000,
            held_by: vec![],
        });
        let st = status_for(&s, EngineView::Known(&paused), None);
        assert_eq!(condition(&st, "Paused"), ("True".into(), "Paused".into()));
        assert_eq!(
            condition(&st, "Ready").0,
            "True",
            "paused as declared is Ready"
        );
        assert!(st.pause.is_some());

        // Resume: Published again → Resuming (Reconciling) → Live.
        let resume = spec("Published", json!({}));
        let p = plan_for(
            &resume,
            EngineView::Known(&paused),
            &Tokens::default(),
            HASH,
        );
        assert_eq!(
            p.commands,
            vec![Command::SetLifecycle(DesiredLifecycle::Published)]
        );
        let mut resuming = snapshot(engine::Phase::Resuming, DesiredLifecycle::Published);
        resuming.resume = Some(ResumeStatus {
            started_at: 3_000,
            total: 10,
            released: 4,
        });
        let st = status_for(&resume, EngineView::Known(&resuming), None);
        assert_eq!(
            condition(&st, "Resuming"),
            ("True".into(), "ReleasingHeldProfiles".into())
        );
        assert_eq!(
            condition(&st, "Reconciling"),
            ("True".into(), "Resuming".into())
        );
        assert_eq!(condition(&st, "Ready").0, "False");
        assert_eq!(st.resume.as_ref().map(|r| r.released), Some(4));
        let live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
        let st = status_for(&resume, EngineView::Known(&live), None);
        assert_eq!(condition(&st, "Resuming").0, "False");
        assert_eq!(condition(&st, "Ready").0, "True");
    }
}

#[test]
fn closed_is_ready_while_closing_then_completed() {
    let s = spec("Closed", json!({}));
    let live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
    assert_eq!(
        plan_for(&s, EngineView::Known(&live), &Tokens::default(), HASH).commands,
        vec![Command::SetLifecycle(DesiredLifecycle::Closed)]
    );
    let closing = snapshot(engine::Phase::Closing, DesiredLifecycle::Closed);
    let st = status_for(&s, EngineView::Known(&closing), None);
    assert_eq!(
        condition(&st, "Ready").0,
        "True",
        "Closing is the declared state"
    );
    assert_eq!(condition(&st, "Reconciling").0, "False");
    let done = snapshot(engine::Phase::Completed, DesiredLifecycle::Closed);
    let st = status_for(&s, EngineView::Known(&done), None);
    assert_eq!(
        condition(&st, "Completed"),
        ("True".into(), "Drained".into())
    );
}

#[test]
fn any_state_to_stopped_and_stopped_stays_stopped() {
    for phase in [
        engine::Phase::Live,
        engine::Phase::Paused,
        engine::Phase::Closing,
    ] {
        let s = spec("Stopped", json!({}));
        let snap = snapshot(phase, DesiredLifecycle::Published);
        assert_eq!(
            plan_for(&s, EngineView::Known(&snap), &Tokens::default(), HASH).commands,
            vec![Command::SetLifecycle(DesiredLifecycle::Stopped)]
        );
    }
    // A resource re-created over a stopped engine journey cannot revive it.
    let stopped = snapshot(engine::Phase::Stopped, DesiredLifecycle::Stopped);
    let s = spec("Published", json!({}));
    let p = plan_for(&s, EngineView::Known(&stopped), &Tokens::default(), HASH);
    assert_eq!(p.commands, vec![]);
    assert_eq!(
        p.block,
        Some(Block::EngineStopped {
            by_pause_expiry: false
        })
    );
    let st = status_for(&s, EngineView::Known(&stopped), p.block.as_ref());
    assert_eq!(
        condition(&st, "Stalled"),
        ("True".into(), "JourneyStopped".into())
    );
    assert_eq!(condition(&st, "Stopped"), ("True".into(), "Stopped".into()));
}

#[test]
fn schedule_start_shows_scheduled_and_ready() {
    let s = spec(
        "Published",
        json!({"schedule": {"startAt": "2030-01-01T00:00:00Z"}}),
    );
    let scheduled = snapshot(engine::Phase::Scheduled, DesiredLifecycle::Published);
    let st = status_for(&s, EngineView::Known(&scheduled), None);
    assert_eq!(st.phase, Some(Phase::Scheduled));
    assert_eq!(
        condition(&st, "Published"),
        ("True".into(), "Scheduled".into())
    );
    assert_eq!(condition(&st, "Ready").0, "True");
    // After endAt the engine closes by itself: Closing, then Completed, still Ready.
    let closing = snapshot(engine::Phase::Closing, DesiredLifecycle::Published);
    assert_eq!(
        condition(&status_for(&s, EngineView::Known(&closing), None), "Ready").0,
        "True"
    );
}

#[test]
fn pause_expiry_with_resume_is_never_paused_again() {
    let s = spec("Paused", json!({"pause": {"mode": "Hold"}}));
    let mut resumed = snapshot(engine::Phase::Live, paused_opts(engine::PauseMode::Hold));
    resumed.history.push(Transition {
        from: engine::Phase::Resuming,
        to: engine::Phase::Live,
        at: 1,
        reason: TransitionReason::PauseExpired,
        actor: None,
    });
    let p = plan_for(&s, EngineView::Known(&resumed), &Tokens::default(), HASH);
    assert_eq!(p.commands, vec![], "the expired pause is not re-applied");
    assert_eq!(p.block, None);
    let st = status_for(&s, EngineView::Known(&resumed), None);
    assert_eq!(
        condition(&st, "Paused"),
        ("False".into(), "PauseExpired".into())
    );
    assert_eq!(condition(&st, "Ready").0, "True");

    // A filter change that only a pause allows is not applied.
    let filtered = spec(
        "Paused",
        json!({"pause": {"mode": "Hold"}, "globalFilter": "profile.vip"}),
    );
    let p = plan_for(
        &filtered,
        EngineView::Known(&resumed),
        &Tokens::default(),
        HASH,
    );
    assert_eq!(p.commands, vec![]);
    assert_eq!(p.block, Some(Block::ChangeRequiresPause));
    let st = status_for(&filtered, EngineView::Known(&resumed), p.block.as_ref());
    assert_eq!(
        condition(&st, "Stalled"),
        ("True".into(), "ChangeRequiresPause".into())
    );
    // So is an entry change (a new definition hash).
    let p = plan_for(&s, EngineView::Known(&resumed), &Tokens::default(), "h2");
    assert_eq!(p.block, Some(Block::ChangeRequiresPause));
    // Setting Published in Git clears it.
    let published = spec("Published", json!({}));
    let p = plan_for(
        &published,
        EngineView::Known(&resumed),
        &Tokens::default(),
        HASH,
    );
    assert_eq!(
        p.commands,
        vec![Command::SetLifecycle(DesiredLifecycle::Published)]
    );
}

#[test]
fn pause_expiry_with_stop_reports_stopped_by_pause_expiry() {
    let s = spec("Paused", json!({"pause": {"onExpiry": "Stop"}}));
    let mut stopped = snapshot(engine::Phase::Stopped, DesiredLifecycle::Stopped);
    stopped.history.push(Transition {
        from: engine::Phase::Paused,
        to: engine::Phase::Stopped,
        at: 1,
        reason: TransitionReason::StoppedByPauseExpiry,
        actor: None,
    });
    let p = plan_for(&s, EngineView::Known(&stopped), &Tokens::default(), HASH);
    assert_eq!(
        p.block,
        Some(Block::EngineStopped {
            by_pause_expiry: true
        })
    );
    let st = status_for(&s, EngineView::Known(&stopped), p.block.as_ref());
    assert_eq!(
        condition(&st, "Stopped"),
        ("True".into(), "StoppedByPauseExpiry".into())
    );
}

#[test]
fn republishing_a_changed_definition_applies_a_new_version() {
    let s = spec("Published", json!({}));
    let live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
    assert_eq!(
        plan_for(&s, EngineView::Known(&live), &Tokens::default(), "h2").commands,
        vec![Command::ApplyDefinition]
    );
}

#[test]
fn tokens_are_handled_exactly_once() {
    let s = spec("Published", json!({}));
    let tokens = Tokens {
        run: Some("r1".into()),
        full_run: Some("f1".into()),
        restart: Some("x1".into()),
    };
    let mut live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
    assert_eq!(
        plan_for(&s, EngineView::Known(&live), &tokens, HASH).commands,
        vec![
            Command::Request(RequestKind::RunNow, "r1".into()),
            Command::Request(RequestKind::FullRun, "f1".into()),
            Command::Request(RequestKind::Restart, "x1".into()),
        ]
    );
    live.last_handled_run_request = Some("r1".into());
    live.last_handled_full_run_request = Some("f1".into());
    live.last_handled_restart_request = Some("x1".into());
    assert_eq!(
        plan_for(&s, EngineView::Known(&live), &tokens, HASH).commands,
        vec![]
    );
    let st = status_for(&s, EngineView::Known(&live), None);
    assert_eq!(st.last_handled_restart_request.as_deref(), Some("x1"));
}

#[test]
fn a_restart_token_on_a_draft_is_echoed_without_the_engine() {
    let s = spec("Draft", json!({}));
    let tokens = Tokens {
        restart: Some("x1".into()),
        ..Tokens::default()
    };
    let p = plan_for(&s, EngineView::Unknown, &tokens, HASH);
    assert_eq!(p.commands, vec![]);
    assert_eq!(p.restart_refused_locally.as_deref(), Some("x1"));
}

#[test]
fn invalid_definitions_leave_the_engine_untouched_and_stall() {
    let s = spec("Published", json!({}));
    let problems = [Problem {
        field: "spec.globalFilter".into(),
        message: "does not parse".into(),
    }];
    let p = plan(&Observed {
        spec: &s,
        tokens: &Tokens::default(),
        problems: &problems,
        definition_hash: Some(HASH),
        engine: EngineView::Unknown,
        hold: None,
    });
    assert_eq!(p.commands, vec![]);
    let st = status_for(&s, EngineView::Unknown, p.block.as_ref());
    let (status, reason) = condition(&st, "Stalled");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "InvalidDefinition")
    );
    let message = &st
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("stalled")
        .message;
    assert!(
        message.contains("spec.globalFilter: does not parse"),
        "{message}"
    );
    assert_eq!(condition(&st, "Ready").0, "False");
}

#[test]
fn engine_unavailable_is_reconciling_not_stalled() {
    let s = spec("Published", json!({}));
    let p = plan_for(
        &s,
        EngineView::Unavailable("down"),
        &Tokens::default(),
        HASH,
    );
    assert_eq!(p.commands, vec![]);
    let st = status_for(&s, EngineView::Unavailable("down"), None);
    assert_eq!(
        condition(&st, "Reconciling"),
        ("True".into(), "EngineUnavailable".into())
    );
    assert_eq!(
        condition(&st, "Ready"),
        ("False".into(), "EngineUnavailable".into())
    );
    assert_eq!(condition(&st, "Stalled").0, "False");
}

#[test]
fn transition_times_move_only_when_a_condition_flips() {
    let s = spec("Published", json!({}));
    let live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
    let first = status_for(&s, EngineView::Known(&live), None);
    let later = Time(Timestamp::from_second(1_900_000_000).expect("time"));
    let again = desired_status(&StatusInput {
        spec: &s,
        generation: Some(3),
        engine: EngineView::Known(&live),
        block: None,
        restart_refused_locally: None,
        previous: Some(&first),
        now: &later,
        matching_holds: &[],
    });
    assert_eq!(
        first, again,
        "steady state produces the identical status: zero writes"
    );
}

#[test]
fn a_huge_problem_list_is_cut_to_a_condition_message_that_can_be_written() {
    let s = spec("Published", json!({}));
    let huge = format!("spec.globalFilter: {}", "é".repeat(20_000));
    let status = status_for(&s, EngineView::Unknown, Some(&Block::Invalid(huge)));
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(stalled.status, "True");
    assert!(
        stalled.message.len() <= MAX_CONDITION_MESSAGE,
        "{}",
        stalled.message.len()
    );
    assert!(
        stalled.message.ends_with("bytes in all)"),
        "{}",
        &stalled.message[8000..]
    );
    assert!(stalled.message.starts_with("spec.globalFilter: é"));
}

#[test]
fn a_refused_transition_is_stalled_illegal_transition_not_invalid_definition() {
    let s = spec("Draft", json!({}));
    let rule =
        "the engine refused the change: a published journey cannot return to Draft".to_string();
    let status = status_for(
        &s,
        EngineView::Unknown,
        Some(&Block::IllegalTransition(rule.clone())),
    );
    assert_eq!(
        condition(&status, "Stalled"),
        ("True".to_string(), "IllegalTransition".to_string())
    );
    assert_eq!(
        condition(&status, "Ready"),
        ("False".to_string(), "IllegalTransition".to_string())
    );
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(stalled.message, rule);
}

fn incident() -> engine::Hold {
    engine::Hold {
        mode: engine::PauseMode::Hold,
        reason: "incident 4711 (JourneyHold ns/incident)".into(),
        held_by: vec!["JourneyHold ns/incident".into()],
        actor: Some("alice (JourneyHold ns/incident)".into()),
    }
}

#[test]
fn a_hold_is_declared_when_the_engine_does_not_have_it_yet() {
    let s = spec("Published", json!({}));
    let live = snapshot(engine::Phase::Live, DesiredLifecycle::Published);
    let hold = incident();
    let tokens = Tokens::default();
    let observed = |hold| Observed {
        spec: &s,
        tokens: &tokens,
        problems: &[],
        definition_hash: Some(HASH),
        engine: EngineView::Known(&live),
        hold,
    };
    assert_eq!(
        plan(&observed(Some(&hold))).commands,
        vec![Command::SetHold]
    );
    assert_eq!(plan(&observed(None)).commands, vec![]);
    let mut held = live.clone();
    held.hold = Some(hold.clone());
    let again = Observed {
        engine: EngineView::Known(&held),
        ..observed(Some(&hold))
    };
    assert_eq!(plan(&again).commands, vec![], "the engine has it");
    let released = Observed {
        engine: EngineView::Known(&held),
        ..observed(None)
    };
    assert_eq!(plan(&released).commands, vec![Command::SetHold]);
}

#[test]
fn a_held_journey_is_ready_paused_and_held_naming_the_hold() {
    let s = spec("Published", json!({}));
    let mut held = snapshot(engine::Phase::Paused, DesiredLifecycle::Published);
    held.hold = Some(incident());
    held.pause = Some(PauseStatus {
        pause_id: 1,
        since: 1_000,
        mode: engine::PauseMode::Hold,
        reason: Some(incident().reason),
        expires_at: 2_000,
        held_by: incident().held_by,
    });
    let st = status_for(&s, EngineView::Known(&held), None);
    assert_eq!(
        condition(&st, "Held"),
        ("True".into(), "EmergencyHold".into())
    );
    assert_eq!(condition(&st, "Paused").0, "True");
    // Declared intent, not a failure: kstatus stays Current.
    assert_eq!(
        condition(&st, "Ready"),
        ("True".into(), "Reconciled".into())
    );
    assert_eq!(condition(&st, "Reconciling").0, "False");
    let message = &st
        .conditions
        .iter()
        .find(|c| c.type_ == "Held")
        .expect("Held")
        .message;
    assert!(message.contains("JourneyHold ns/incident"), "{message}");
    assert!(message.contains("incident 4711"), "{message}");
    assert_eq!(
        st.pause.expect("pause").held_by,
        vec!["JourneyHold ns/incident".to_string()]
    );
}

#[test]
fn a_matching_hold_over_a_completed_journey_says_why_it_does_not_hold() {
    let s = spec("Closed", json!({}));
    let done = snapshot(engine::Phase::Completed, DesiredLifecycle::Closed);
    let now = Time(Timestamp::from_second(1_800_000_000).expect("time"));
    let ids = vec!["JourneyHold ns/incident".to_string()];
    let st = desired_status(&StatusInput {
        spec: &s,
        generation: Some(3),
        engine: EngineView::Known(&done),
        block: None,
        restart_refused_locally: None,
        previous: None,
        now: &now,
        matching_holds: &ids,
    });
    assert_eq!(condition(&st, "Held"), ("False".into(), "NotHeld".into()));
    let message = &st
        .conditions
        .iter()
        .find(|c| c.type_ == "Held")
        .expect("Held")
        .message;
    assert!(
        message.contains("Completed journey is not held"),
        "{message}"
    );
}
