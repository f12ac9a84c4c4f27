use journey_model::lifecycle::{Lock, Rule, TransitionReason};
use journey_operator::engine::{DesiredLifecycle, EngineError, EnrollmentState as ES, Phase};
use serde_json::json;

use crate::engine::common::*;
use crate::engine::under_test::{EngineUnderTest, both_ways};

/// Close (AJO close, CleverTap completed): entrance stops, profiles inside finish, then Completed.
fn close_drains_then_completed(h: &EngineUnderTest) {
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    h.event("in", "Go", json!({}));
    h.run();
    assert_eq!(
        h.set("ns/j", DesiredLifecycle::Closed).phase,
        Phase::Closing
    );
    h.event("late", "Go", json!({}));
    h.advance(30 * M);
    assert_eq!(h.status("ns/j").phase, Phase::Closing);
    h.advance(31 * M);
    let s = h.status("ns/j");
    assert_eq!(s.phase, Phase::Completed);
    assert_eq!(steps_of(&h.deliveries("ns/j")), vec!["hello", "followup"]);
    assert!(matches!(
        h.try_set("ns/j", DesiredLifecycle::Published),
        Err(EngineError::IllegalTransition { .. })
    ));
}

/// Schedule: startAt keeps the journey Scheduled; endAt closes it like Close.
fn schedule_start_and_end(h: &EngineUnderTest) {
    let ts = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("ts")
            .to_rfc3339()
    };
    let mut spec = action_first();
    spec["schedule"] = json!({"startAt": ts(h.now() + H), "endAt": ts(h.now() + 3 * H)});
    h.apply("ns/s", spec);
    assert_eq!(h.publish("ns/s").phase, Phase::Scheduled);
    h.event("early", "Go", json!({}));
    h.advance(H);
    assert_eq!(h.status("ns/s").phase, Phase::Live);
    h.event("p", "Go", json!({}));
    h.advance(2 * H + M);
    assert_eq!(
        h.status("ns/s").phase,
        Phase::Completed,
        "endAt closes; p drained already"
    );
    h.event("after", "Go", json!({}));
    let ids: Vec<String> = h
        .enrollments("ns/s")
        .into_iter()
        .map(|e| e.profile_id)
        .collect();
    assert_eq!(ids, vec!["p"]);
    assert!(
        h.status("ns/s")
            .history
            .iter()
            .any(|t| t.reason == TransitionReason::EndAt)
    );
}

/// Stop (000, 004): entrance, movement and deliveries halt at once; every
/// profile inside exits with reason Stopped; terminal.
fn stop_halts_everything_and_is_terminal(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    for p in ["a", "b"] {
        h.event(p, "AddToCart", json!({}));
    }
    h.run();
    let s = h.set("ns/j", DesiredLifecycle::Stopped);
    assert_eq!((s.phase, s.profiles.exited), (Phase::Stopped, 2));
    assert!(
        h.enrollments("ns/j")
            .iter()
            .all(|e| e.state == ES::Exited && e.reason.as_deref() == Some("Stopped"))
    );
    h.event("c", "AddToCart", json!({}));
    h.advance(D);
    assert!(h.deliveries("ns/j").is_empty());
    for d in [
        DesiredLifecycle::Published,
        DesiredLifecycle::Draft,
        DesiredLifecycle::Closed,
    ] {
        assert!(h.try_set("ns/j", d).is_err());
    }
    let mut changed = ajo_sample();
    changed["timeout"] = json!("1h");
    assert!(
        matches!(
            h.try_apply("ns/j", changed),
            Err(EngineError::IllegalTransition {
                rule: Rule::Lock(Lock::StoppedFrozen),
                ..
            })
        ),
        "definition frozen"
    );
}

/// Lifecycle: no return to Draft once published; created as Closed = nothing enrolled;
/// created as Paused = published with entrance closed (Journey API issue).
fn lifecycle_rules_and_direct_creation(h: &EngineUnderTest) {
    h.apply("ns/a", action_first());
    h.publish("ns/a");
    assert!(h.try_set("ns/a", DesiredLifecycle::Draft).is_err());
    h.apply("ns/c", action_first());
    assert_eq!(
        h.set("ns/c", DesiredLifecycle::Closed).phase,
        Phase::Completed
    );
    h.event("p", "Go", json!({}));
    h.run();
    assert!(h.enrollments("ns/c").is_empty());
    h.apply("ns/p", action_first());
    let s = h.pause("ns/p", hold());
    assert_eq!(s.phase, Phase::Paused);
    assert_eq!(s.status_history_len(), 2);
}

trait HistLen {
    fn status_history_len(&self) -> usize;
}
impl HistLen for journey_operator::engine::StatusSnapshot {
    fn status_history_len(&self) -> usize {
        self.history.len()
    }
}

/// The change stream carries the keys of journeys whose status changed, and whether a
/// command (whose caller reads the outcome) or the engine itself changed it.
#[test]
fn change_stream_reports_keys_and_causes() {
    use journey_operator::engine::ChangeCause;
    let h = Harness::new();
    let mut rx = h.engine.subscribe();
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    let mut drain = || {
        let mut changes = Vec::new();
        while let Ok(c) = rx.try_recv() {
            changes.push(c);
        }
        changes
    };
    let by_commands = drain();
    assert_eq!(by_commands.len(), 2, "{by_commands:?}");
    assert!(
        by_commands
            .iter()
            .all(|c| c.key == "ns/j" && c.cause == ChangeCause::Command),
        "{by_commands:?}"
    );
    h.event("p", "Go", json!({}));
    h.run();
    let by_engine = drain();
    assert!(!by_engine.is_empty());
    assert!(
        by_engine
            .iter()
            .all(|c| c.key == "ns/j" && c.cause == ChangeCause::Engine),
        "{by_engine:?}"
    );
}

/// The async, object-safe API drives the same engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_api_is_object_safe() {
    use journey_operator::engine::{DataPlane, JourneyEngine};
    use std::sync::Arc;
    let h = Harness::new();
    let api: Arc<dyn JourneyEngine> = Arc::new(h.engine.clone());
    let data: Arc<dyn DataPlane> = Arc::new(h.engine.clone());
    let declaration = journey_operator::engine::Declaration {
        definition: definition(action_first()),
        state: journey_model::lifecycle::JourneyState::Published,
        requests: Default::default(),
        expected_revision: None,
        hold: None,
        actor: None,
    };
    let first = api
        .declare("ns/a", declaration.clone())
        .await
        .expect("declare");
    assert_eq!(first.status.version, Some(1));
    assert_eq!(first.status.phase, Phase::Live);
    let again = api.declare("ns/a", declaration).await.expect("declare");
    assert_eq!(
        again.status.version,
        Some(1),
        "the same content is the same version"
    );
    assert_eq!(
        again.status.revision, first.status.revision,
        "declaring what the engine has does not move the feed"
    );
    data.ingest_event("p", "Go", json!({}))
        .await
        .expect("event");
    h.run();
    assert_eq!(
        data.list_deliveries(Some("ns/a"), None, None)
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(api.delete("ns/a").await.expect("delete"));
    assert!(api.status("ns/a").await.expect("status").is_none());
}

both_ways!(
    close_drains_then_completed,
    schedule_start_and_end,
    stop_halts_everything_and_is_terminal,
    lifecycle_rules_and_direct_creation,
);
