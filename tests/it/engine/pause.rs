use journey_model::lifecycle::TransitionReason;
use journey_operator::engine::{
    DeliveryStatus, DestinationConfig, EngineConfig, EnrollmentState as ES, PauseEntries,
    PauseMode, PauseOptions, PauseWaits, Phase, RequestKind, WebhookDestination,
};
use serde_json::json;

use crate::engine::common::*;
use crate::engine::under_test::{EngineUnderTest, both_ways};

/// Hold (seed 002): fresh entrances are dropped and counted.
fn hold_drops_and_counts_fresh_entrances(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.pause("ns/j", hold());
    h.event("a", "AddToCart", json!({}));
    h.event("b", "AddToCart", json!({}));
    h.run();
    assert!(h.enrollments("ns/j").is_empty());
    let s = h.status("ns/j");
    assert_eq!(
        (s.phase, s.profiles.discarded, s.profiles.entered),
        (Phase::Paused, 2, 0)
    );
}

/// Hold with `entries: Queue`: fresh entrances are kept and admitted on resume.
fn hold_entries_queue_admitted_on_resume(h: &EngineUnderTest) {
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    h.pause(
        "ns/j",
        PauseOptions {
            entries: PauseEntries::Queue,
            ..hold()
        },
    );
    h.event("a", "Go", json!({}));
    h.run();
    assert_eq!(h.status("ns/j").profiles.queued, 1);
    assert!(h.deliveries("ns/j").is_empty());
    h.publish("ns/j");
    h.run();
    assert_eq!(steps_of(&h.deliveries("ns/j")), vec!["hello"]);
    assert_eq!(h.status("ns/j").profiles.queued, 0);
}

/// Hold (002 sample points 2-4): profiles keep waiting and leave the wait,
/// conditions keep being evaluated, the profile is held at the action.
fn hold_waits_continue_conditions_run_and_action_holds(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.profile("vip", json!({"vip": true}));
    h.event("vip", "AddToCart", json!({}));
    h.event("std", "AddToCart", json!({}));
    h.run();
    h.pause("ns/j", hold());
    h.advance(H);
    assert_eq!(
        h.state_of("ns/j", "vip"),
        (ES::Held, "push".into()),
        "condition took the vip branch"
    );
    assert_eq!(h.state_of("ns/j", "std"), (ES::Held, "email".into()));
    assert!(h.deliveries("ns/j").is_empty(), "no message while paused");
    assert_eq!(h.status("ns/j").profiles.held, 2);
}

/// Hold with `waits: Extend`: wait end times move out by the pause length.
fn hold_waits_extend_by_pause_length(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("p", "AddToCart", json!({}));
    h.run();
    h.advance(30 * M);
    h.pause(
        "ns/j",
        PauseOptions {
            waits: PauseWaits::Extend,
            ..hold()
        },
    );
    h.advance(2 * H);
    assert_eq!(
        h.state_of("ns/j", "p"),
        (ES::Waiting, "wait".into()),
        "wait frozen during the pause"
    );
    h.publish("ns/j");
    h.advance(29 * M);
    assert_eq!(
        h.state_of("ns/j", "p").1,
        "wait",
        "30 min of the wait are left"
    );
    h.advance(2 * M);
    assert_eq!(steps_of(&h.deliveries("ns/j")), vec!["email"]);
}

/// Hold (002 sample point 5): an event that the waitForEvent step right after
/// the action would consume, arriving for a profile held on that action, is
/// discarded and so is the profile. (The seed's activity table mentions only
/// the event; we follow the end-to-end sample.)
fn hold_event_after_held_action_discards_profile(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("p", "AddToCart", json!({}));
    h.event("q", "AddToCart", json!({}));
    h.run();
    h.pause("ns/j", hold());
    h.advance(H);
    h.event("p", "Open", json!({}));
    h.event("q", "Unrelated", json!({}));
    let p = h.enrollment("ns/j", "p");
    assert_eq!(
        (p.state, p.reason.as_deref()),
        (ES::Discarded, Some("EventWhileHeld"))
    );
    assert_eq!(h.state_of("ns/j", "q").0, ES::Held);
    h.publish("ns/j");
    h.run();
    assert!(h.deliveries_to("ns/j", "p").is_empty());
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "q")), vec!["email"]);
}

/// Hold: exit criteria keep working exactly as when live (002 activity table).
fn hold_exit_criteria_work_as_live(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("held", "AddToCart", json!({}));
    h.event("waiting", "AddToCart", json!({}));
    h.run();
    h.advance(30 * M);
    h.pause("ns/j", hold());
    h.event("waiting", "Purchase", json!({}));
    h.advance(H);
    h.event("held", "Purchase", json!({}));
    for p in ["held", "waiting"] {
        let e = h.enrollment("ns/j", p);
        assert_eq!(
            (e.state, e.reason.as_deref()),
            (ES::Exited, Some("ExitCriteria")),
            "{p}"
        );
    }
}

/// Hold: an audience qualification at the first step during the pause is
/// consumed and counted as discarded, not re-evaluated at resume (002).
fn hold_audience_qualification_discarded_not_reevaluated(h: &EngineUnderTest) {
    h.apply(
        "ns/q",
        json!({"entry": {"audience": {"condition": "has(profile.gold) && profile.gold", "mode": "Qualification"}},
               "steps": [{"id": "welcome", "action": {"channel": "email", "message": {}}}]}),
    );
    h.publish("ns/q");
    h.pause("ns/q", hold());
    h.profile("x", json!({"gold": true}));
    h.run();
    assert_eq!(h.status("ns/q").profiles.discarded, 1);
    h.publish("ns/q");
    h.advance(H);
    assert!(
        h.enrollments("ns/q").is_empty(),
        "not re-evaluated at resume"
    );
    assert!(h.deliveries("ns/q").is_empty());
}

/// Hold: an audience read in progress stops and its remaining queue is dropped (002).
#[test]
fn hold_stops_read_in_progress_and_drops_queue() {
    let h = Harness::with_config(EngineConfig {
        read_batch: 10,
        ..EngineConfig::default()
    });
    h.apply(
        "ns/r",
        json!({"entry": {"audience": {"condition": "true", "mode": "Read", "incremental": true}},
               "steps": [{"id": "w", "wait": {"duration": "1h"}}, {"id": "a", "action": {"channel": "email", "message": {}}}]}),
    );
    seed_profiles(&h, 35, |_| json!({}));
    h.publish("ns/r");
    h.run(); // the single read at publish completes
    for i in 0..35 {
        h.profile(&format!("n{i}"), json!({}));
    }
    h.engine
        .request_blocking("ns/r", RequestKind::RunNow, "t1")
        .expect("run");
    h.engine
        .step_journey_housekeeping("ns/r")
        .expect("one read chunk");
    h.pause("ns/r", hold());
    h.run();
    let runs = h.run_history("ns/r");
    assert!(
        runs.iter()
            .any(|r| r.outcome.starts_with("Aborted: journey paused")),
        "{runs:?}"
    );
    let entered = h.enrollments("ns/r").len();
    assert!(
        entered > 35 && entered < 70,
        "remaining queue dropped ({entered})"
    );
    h.publish("ns/r");
    h.advance(2 * H);
    assert_eq!(
        h.enrollments("ns/r").len(),
        entered,
        "not resumed after the pause"
    );
}

/// Hold: scheduled reads inside the pause are skipped; the next occurrence
/// keeps its schedule and, incremental, includes everyone new since the last
/// completed read (002 read-audience point 3, 003).
fn hold_skips_scheduled_reads_and_incremental_catches_up(h: &EngineUnderTest) {
    h.apply(
        "ns/r",
        json!({"entry": {"audience": {"condition": "true", "mode": "Read",
                 "schedule": {"cron": "0 0 * * *", "timeZone": "UTC"}, "incremental": true}},
               "steps": [{"id": "a", "action": {"channel": "email", "message": {}}}]}),
    );
    h.profile("d0", json!({}));
    h.publish("ns/r");
    h.advance(D + M); // day 1 read: d0
    assert_eq!(h.enrollments("ns/r").len(), 1);
    h.pause("ns/r", hold());
    for day in 2..5 {
        h.profile(&format!("d{day}"), json!({}));
        h.advance(D);
    }
    let skipped = h.run_history("ns/r");
    assert_eq!(
        skipped
            .iter()
            .filter(|r| r.outcome == "Skipped: journey paused")
            .count(),
        3
    );
    h.publish("ns/r");
    h.advance(H);
    assert_eq!(
        h.enrollments("ns/r").len(),
        1,
        "no read fired late at resume"
    );
    h.advance(D);
    assert_eq!(
        h.enrollments("ns/r").len(),
        4,
        "next occurrence reads everyone new since the last completed read"
    );
}

/// Hold: a single-execution read whose time passed during the pause is skipped, not fired late (002).
fn hold_single_execution_passed_during_pause_is_skipped(h: &EngineUnderTest) {
    let start = h.now() + 2 * H;
    let start_s = chrono::DateTime::from_timestamp_millis(start)
        .expect("ts")
        .to_rfc3339();
    h.apply(
        "ns/once",
        json!({"entry": {"audience": {"condition": "true", "mode": "Read"}},
               "schedule": {"startAt": start_s},
               "steps": [{"id": "a", "action": {"channel": "email", "message": {}}}]}),
    );
    h.profile("p", json!({}));
    assert_eq!(h.publish("ns/once").phase, Phase::Scheduled);
    h.pause("ns/once", hold());
    h.advance(3 * H);
    h.publish("ns/once");
    h.advance(H);
    assert!(h.enrollments("ns/once").is_empty());
    let runs = h.run_history("ns/once");
    assert!(
        runs.iter().all(|r| r.outcome.starts_with("Skipped")),
        "{runs:?}"
    );
}

fn webhook_config() -> EngineConfig {
    let mut destinations = DestinationConfig::default();
    destinations.webhooks.insert(
        "crm".into(),
        WebhookDestination {
            url: "https://crm.example/hook".into(),
            rate_limit: Some(10),
            credentials_file: None,
        },
    );
    EngineConfig {
        destinations,
        ..EngineConfig::default()
    }
}

fn webhook_journey() -> serde_json::Value {
    json!({"entry": {"event": {"name": "Go"}},
           "steps": [{"id": "hook", "action": {"channel": "webhook", "destination": "crm", "message": {"x": 1}}}]})
}

/// Hold: deliveries in the outbox not yet handed to a webhook are held, and
/// released under the same idempotency key on resume (002).
#[test]
fn hold_outbox_webhook_deliveries_held_then_released_same_key() {
    let h = Harness::with_config(webhook_config());
    h.apply("ns/w", webhook_journey());
    h.publish("ns/w");
    h.event("p", "Go", json!({}));
    h.run();
    let before = h.deliveries("ns/w");
    assert_eq!(before[0].status, DeliveryStatus::Pending);
    h.pause("ns/w", hold());
    assert_eq!(h.deliveries("ns/w")[0].status, DeliveryStatus::Held);
    h.publish("ns/w");
    let after = h.deliveries("ns/w");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].status, DeliveryStatus::Pending);
    assert_eq!(after[0].idempotency_key(), before[0].idempotency_key());
}

/// Discard pause and Stop cancel outbox deliveries not yet sent (002).
#[test]
fn discard_and_stop_cancel_unsent_webhook_deliveries() {
    for stop in [false, true] {
        let h = Harness::with_config(webhook_config());
        h.apply("ns/w", webhook_journey());
        h.publish("ns/w");
        h.event("p", "Go", json!({}));
        h.run();
        if stop {
            h.set("ns/w", journey_operator::engine::DesiredLifecycle::Stopped);
        } else {
            h.pause(
                "ns/w",
                PauseOptions {
                    mode: PauseMode::Discard,
                    ..hold()
                },
            );
        }
        assert_eq!(h.deliveries("ns/w")[0].status, DeliveryStatus::Cancelled);
    }
}

/// Pause Discard (002): a profile reaching an action step is discarded.
fn discard_mode_discards_at_action(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("p", "AddToCart", json!({}));
    h.run();
    h.pause(
        "ns/j",
        PauseOptions {
            mode: PauseMode::Discard,
            ..hold()
        },
    );
    h.advance(30 * M);
    assert_eq!(h.state_of("ns/j", "p").0, ES::Waiting, "waits continue");
    h.advance(31 * M);
    let e = h.enrollment("ns/j", "p");
    assert_eq!(
        (e.state, e.step.as_str(), e.reason.as_deref()),
        (ES::Discarded, "email", Some("PauseDiscard"))
    );
    h.publish("ns/j");
    h.run();
    assert!(h.deliveries("ns/j").is_empty());
}

/// Pause EntryOnly (000, 004): only entrance stops; profiles inside move and receive messages.
fn entry_only_pause_keeps_profiles_moving(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("in", "AddToCart", json!({}));
    h.run();
    h.pause(
        "ns/j",
        PauseOptions {
            mode: PauseMode::EntryOnly,
            ..hold()
        },
    );
    h.event("new", "AddToCart", json!({}));
    h.advance(H);
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "in")), vec!["email"]);
    assert!(h.deliveries_to("ns/j", "new").is_empty());
    assert_eq!(h.status("ns/j").profiles.discarded, 1);
}

/// Global filter (002): set while paused, evaluated at every action step for
/// every profile (new entrants included), matching profiles excluded there,
/// attributes read fresh at resume.
fn global_filter_excludes_at_action_with_fresh_attributes(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.profile("fr", json!({"country": "DE"}));
    h.profile("de", json!({"country": "DE"}));
    h.event("fr", "AddToCart", json!({}));
    h.event("de", "AddToCart", json!({}));
    h.run();
    let filter = Some("has(profile.country) && profile.country == 'FR'".to_string());
    h.pause(
        "ns/j",
        PauseOptions {
            global_filter: filter.clone(),
            ..hold()
        },
    );
    h.advance(H);
    assert_eq!(h.status("ns/j").profiles.held, 2);
    h.profile("fr", json!({"country": "FR"})); // changed while held
    h.publish("ns/j");
    h.run();
    let fr = h.enrollment("ns/j", "fr");
    assert_eq!(
        (fr.state, fr.reason.as_deref()),
        (ES::Excluded, Some("GlobalFilter"))
    );
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "de")), vec!["email"]);
    // new entrants after resume are filtered too
    h.profile("newfr", json!({"country": "FR"}));
    h.event("newfr", "AddToCart", json!({}));
    h.advance(H);
    assert_eq!(h.state_of("ns/j", "newfr").0, ES::Excluded);
    assert_eq!(h.status("ns/j").global_filter, filter);
}

/// Pause expiry (002): at maxDuration the journey resumes by itself, the status
/// says so, and the expired pause is not re-applied by a repeated Paused.
fn pause_expiry_resumes_and_is_not_reapplied(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    let opts = PauseOptions {
        max_duration_ms: 14 * D,
        reason: Some("fix content".into()),
        ..hold()
    };
    let s = h.pause("ns/j", opts.clone());
    let p = s.pause.expect("pause info");
    assert_eq!(
        (p.pause_id, p.expires_at, p.reason.as_deref()),
        (1, h.now() + 14 * D, Some("fix content"))
    );
    h.advance(14 * D);
    let s = h.status("ns/j");
    assert_eq!(s.phase, Phase::Live);
    assert!(
        s.history
            .iter()
            .any(|t| t.to == Phase::Resuming && t.reason == TransitionReason::PauseExpired),
        "{:?}",
        s.history
    );
    // the controller re-sends the same desired state: no new pause
    let s = h.pause("ns/j", opts.clone());
    assert_eq!(s.phase, Phase::Live);
    // a new transition into Paused starts pause #2
    h.publish("ns/j");
    let s = h.pause("ns/j", opts);
    assert_eq!(s.pause.map(|p| p.pause_id), Some(2));
    // The pause history is an in-process inspection (no route serves it).
    if let Some(engine) = h.engine() {
        let past = engine.pause_history_blocking("ns/j").expect("pauses");
        assert_eq!(past.len(), 2);
        assert_eq!(past[0].end_reason.as_deref(), Some("PauseExpired"));
    }
}

/// Pause expiry with onExpiry: Stop (002 guardrail variant): the journey stops.
fn pause_expiry_stop(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("p", "AddToCart", json!({}));
    h.run();
    h.pause(
        "ns/j",
        PauseOptions {
            max_duration_ms: 2 * D,
            on_expiry: journey_operator::engine::OnExpiry::Stop,
            ..hold()
        },
    );
    h.advance(2 * D);
    let s = h.status("ns/j");
    assert_eq!(s.phase, Phase::Stopped);
    assert_eq!(
        s.history.last().map(|t| t.reason.as_str()),
        Some("StoppedByPauseExpiry")
    );
    assert_eq!(h.enrollment("ns/j", "p").reason.as_deref(), Some("Stopped"));
}

/// Held-profile guardrail (002): beyond the engine-wide cap, newly held profiles are discarded and counted.
#[test]
fn held_profile_guardrail() {
    let h = Harness::with_config(EngineConfig {
        held_cap: 3,
        ..EngineConfig::default()
    });
    h.apply("ns/j", action_first());
    h.publish("ns/j");
    h.pause(
        "ns/j",
        PauseOptions {
            entries: PauseEntries::Queue,
            ..hold()
        },
    );
    for i in 0..5 {
        h.event(&format!("p{i}"), "Go", json!({}));
    }
    // queued entrances are admitted at resume; pause again before they move
    h.publish("ns/j");
    h.pause("ns/j", hold());
    h.run();
    let s = h.status("ns/j");
    assert_eq!((s.profiles.held, s.profiles.discarded), (3, 2));
    let reasons: Vec<_> = h
        .enrollments("ns/j")
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert_eq!(reasons, vec!["HeldLimit", "HeldLimit"]);
}

/// A short wait, then an action, under a 2h global timeout.
fn wait_then_action_2h_timeout() -> serde_json::Value {
    json!({"entry": {"event": {"name": "Go"}},
           "timeout": "2h",
           "steps": [{"id": "wait", "wait": {"duration": "10m"}},
                     {"id": "hello", "action": {"channel": "email", "message": {}}}]})
}

/// Hold (002 guardrails): profiles held at their action reach the journey's global timeout
/// during the pause: they exit with reason Timeout and nothing is sent for them at resume.
fn held_profiles_time_out_during_the_pause(h: &EngineUnderTest) {
    h.apply("ns/j", wait_then_action_2h_timeout());
    h.publish("ns/j");
    h.event("a", "Go", json!({}));
    h.event("b", "Go", json!({}));
    h.pause("ns/j", hold());
    h.advance(20 * M);
    assert_eq!(h.status("ns/j").profiles.held, 2);
    h.advance(2 * H);
    for p in ["a", "b"] {
        let e = h.enrollment("ns/j", p);
        assert_eq!(
            (e.state, e.reason.as_deref()),
            (ES::Exited, Some("Timeout")),
            "{p}"
        );
    }
    let s = h.status("ns/j");
    assert_eq!(
        (s.phase, s.profiles.held, s.profiles.exited),
        (Phase::Paused, 0, 2)
    );
    h.publish("ns/j");
    h.advance(H);
    assert!(h.deliveries("ns/j").is_empty(), "nothing sent at resume");
    assert_eq!(h.status("ns/j").phase, Phase::Live);
}

fn discard() -> PauseOptions {
    PauseOptions {
        mode: PauseMode::Discard,
        ..hold()
    }
}

/// Changing the mode during a pause, Hold -> Discard: the held profiles are at their action
/// step, where Discard drops profiles; they are discarded and nothing of theirs goes at resume.
fn hold_to_discard_drops_the_held_profiles(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("a", "AddToCart", json!({}));
    h.event("b", "AddToCart", json!({}));
    h.pause("ns/j", hold());
    h.advance(H);
    assert_eq!(h.status("ns/j").profiles.held, 2);
    let s = h.pause("ns/j", discard());
    assert_eq!(
        (s.phase, s.profiles.held, s.profiles.discarded),
        (Phase::Paused, 0, 2)
    );
    let a = h.enrollment("ns/j", "a");
    assert_eq!(
        (a.state, a.step.as_str(), a.reason.as_deref()),
        (ES::Discarded, "email", Some("PauseDiscard"))
    );
    h.publish("ns/j");
    h.advance(H);
    assert!(h.deliveries("ns/j").is_empty(), "nothing sent at resume");
}

/// Changing the mode during a pause, Discard -> Hold: nobody discarded comes back; profiles
/// reaching an action afterwards are held and go at resume.
fn discard_to_hold_brings_nothing_back(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("early", "AddToCart", json!({}));
    h.advance(30 * M);
    h.event("late", "AddToCart", json!({}));
    h.pause("ns/j", discard());
    h.advance(31 * M);
    assert_eq!(h.state_of("ns/j", "early").0, ES::Discarded);
    h.pause("ns/j", hold());
    h.advance(30 * M);
    let s = h.status("ns/j");
    assert_eq!((s.profiles.held, s.profiles.discarded), (1, 1));
    h.publish("ns/j");
    h.run();
    assert!(h.deliveries_to("ns/j", "early").is_empty());
    assert_eq!(steps_of(&h.deliveries_to("ns/j", "late")), vec!["email"]);
}

/// Changing the mode during a pause, Hold -> EntryOnly: the held profiles are released (at
/// the resume rate) and move on while the journey stays paused.
fn hold_to_entry_only_releases_the_held(h: &EngineUnderTest) {
    h.apply("ns/j", ajo_sample());
    h.publish("ns/j");
    h.event("a", "AddToCart", json!({}));
    h.event("b", "AddToCart", json!({}));
    h.pause("ns/j", hold());
    h.advance(H);
    assert_eq!(h.status("ns/j").profiles.held, 2);
    h.pause(
        "ns/j",
        PauseOptions {
            mode: PauseMode::EntryOnly,
            ..hold()
        },
    );
    h.run();
    let s = h.status("ns/j");
    assert_eq!((s.phase, s.profiles.held), (Phase::Paused, 0));
    assert_eq!(steps_of(&h.deliveries("ns/j")), vec!["email", "email"]);
}

/// Hold -> Discard also cancels the webhook deliveries the pause held: nothing of them is
/// sent at resume.
#[test]
fn hold_to_discard_cancels_held_webhook_deliveries() {
    let h = Harness::with_config(webhook_config());
    h.apply("ns/w", webhook_journey());
    h.publish("ns/w");
    h.event("p", "Go", json!({}));
    h.pause("ns/w", hold());
    assert_eq!(h.deliveries("ns/w")[0].status, DeliveryStatus::Held);
    h.pause("ns/w", discard());
    assert_eq!(h.deliveries("ns/w")[0].status, DeliveryStatus::Cancelled);
    h.publish("ns/w");
    h.run();
    assert_eq!(h.deliveries("ns/w")[0].status, DeliveryStatus::Cancelled);
}

both_ways!(
    hold_drops_and_counts_fresh_entrances,
    hold_entries_queue_admitted_on_resume,
    hold_waits_continue_conditions_run_and_action_holds,
    hold_waits_extend_by_pause_length,
    hold_event_after_held_action_discards_profile,
    hold_exit_criteria_work_as_live,
    hold_audience_qualification_discarded_not_reevaluated,
    hold_skips_scheduled_reads_and_incremental_catches_up,
    hold_single_execution_passed_during_pause_is_skipped,
    discard_mode_discards_at_action,
    entry_only_pause_keeps_profiles_moving,
    global_filter_excludes_at_action_with_fresh_attributes,
    pause_expiry_resumes_and_is_not_reapplied,
    pause_expiry_stop,
    held_profiles_time_out_during_the_pause,
    hold_to_discard_drops_the_held_profiles,
    discard_to_hold_brings_nothing_back,
    hold_to_entry_only_releases_the_held,
);
