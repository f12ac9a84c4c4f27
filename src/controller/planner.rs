//! The pure heart of the controller: (spec, annotations, observed engine state) → engine
//! commands, then (spec, engine state after them) → the status the resource should show.
//! No I/O here; `reconciler.rs` executes the plan.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::reasons as r;
use super::translate;
use crate::api::journey::JourneySpec;
use crate::api::status::{JourneyStatus, PauseStatus, Phase, ResumeStatus, condition_types as ct};
use crate::api::validate::Problem;
use crate::engine::{self, DesiredLifecycle, RequestKind, StatusSnapshot};
use journey_model::lifecycle::JourneyState;
use journey_model::lifecycle::TransitionReason;

/// What the engine says about the journey.
#[derive(Debug, Clone, Copy)]
pub enum EngineView<'a> {
    /// The engine could not be asked.
    Unavailable(&'a str),
    /// The engine has never seen the journey.
    Unknown,
    Known(&'a StatusSnapshot),
}

/// Tokens from the run/restart annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    pub run: Option<String>,
    pub full_run: Option<String>,
    pub restart: Option<String>,
}

/// Everything the planner needs about one journey.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub spec: &'a JourneySpec,
    pub tokens: &'a Tokens,
    /// Problems from `api::validate`; any problem means the engine is left untouched.
    pub problems: &'a [Problem],
    /// The engine definition and its content hash, when the spec translates.
    pub definition_hash: Option<&'a str>,
    pub engine: EngineView<'a>,
    /// The emergency holds over the journey, merged (`holds::merge`); `None`: not held.
    pub hold: Option<&'a engine::Hold>,
}

/// Why the planner leaves the engine alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Invalid(String),
    /// The engine refused the lifecycle change its table does not allow from where the
    /// engine journey is (e.g. a resource re-created as Draft over a published engine
    /// journey); the message is the engine's rule.
    IllegalTransition(String),
    /// The engine journey is stopped; only `state: Stopped` matches it.
    EngineStopped {
        by_pause_expiry: bool,
    },
    /// The pause expired in the engine while the spec still says Paused, and the spec changed
    /// something only a pause allows.
    ChangeRequiresPause,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ApplyDefinition,
    SetLifecycle(DesiredLifecycle),
    /// Declare the holds over the journey (every declaration carries them; this one is sent
    /// for them alone).
    SetHold,
    Request(RequestKind, String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub commands: Vec<Command>,
    pub block: Option<Block>,
    /// A restart token the engine is not asked about (no engine journey): echoed with a warning.
    pub restart_refused_locally: Option<String>,
}

/// The pause ended in the engine by expiry while the spec still declares that pause.
pub fn pause_expired(spec: &JourneySpec, snapshot: &StatusSnapshot) -> bool {
    spec.state == JourneyState::Paused
        && matches!(snapshot.desired, DesiredLifecycle::Paused(_))
        && snapshot.phase != engine::Phase::Paused
        && snapshot.pause.is_none()
}

fn stopped_by_pause_expiry(snapshot: &StatusSnapshot) -> bool {
    snapshot
        .history
        .last()
        .is_some_and(|t| t.reason == TransitionReason::StoppedByPauseExpiry)
}

/// Step one: the engine commands that bring the engine to the spec.
pub fn plan(observed: &Observed<'_>) -> Plan {
    let spec = observed.spec;
    let mut plan = Plan::default();
    if !observed.problems.is_empty() {
        let text = observed
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        plan.block = Some(Block::Invalid(text));
        return plan;
    }
    let snapshot = match observed.engine {
        EngineView::Unavailable(_) => return plan,
        EngineView::Unknown => None,
        EngineView::Known(s) => Some(s),
    };
    let hold_changed = snapshot.is_some_and(|s| s.hold.as_ref() != observed.hold);
    if let Some(s) = snapshot {
        if s.phase == engine::Phase::Stopped && spec.state != JourneyState::Stopped {
            plan.block = Some(Block::EngineStopped {
                by_pause_expiry: stopped_by_pause_expiry(s),
            });
            return plan;
        }
        if pause_expired(spec, s) {
            let desired = match translate::desired_lifecycle(spec) {
                Ok(d) => d,
                Err(e) => {
                    plan.block = Some(Block::Invalid(e.to_string()));
                    return plan;
                }
            };
            let filter_changed = match &desired {
                DesiredLifecycle::Paused(o) => o.global_filter != s.global_filter,
                _ => false,
            };
            let definition_changed = observed.definition_hash != s.definition_hash.as_deref();
            if filter_changed || definition_changed {
                plan.block = Some(Block::ChangeRequiresPause);
            } else if hold_changed {
                plan.commands.push(Command::SetHold);
            }
            // Never pause again: only a new transition into Paused starts a new pause.
            return plan;
        }
    }

    if spec.state == JourneyState::Draft && snapshot.is_none() {
        // Nothing runs in Draft: the engine first hears of a journey when it is published.
        if let Some(token) = &observed.tokens.restart {
            plan.restart_refused_locally = Some(token.clone());
        }
        return plan;
    }
    let engine_hash = snapshot.and_then(|s| s.definition_hash.as_deref());
    let needs_definition = matches!(
        spec.state,
        JourneyState::Published | JourneyState::Paused | JourneyState::Closed
    );
    if needs_definition && engine_hash != observed.definition_hash {
        plan.commands.push(Command::ApplyDefinition);
    }
    let desired = match translate::desired_lifecycle(spec) {
        Ok(d) => d,
        Err(e) => {
            plan.block = Some(Block::Invalid(e.to_string()));
            plan.commands.clear();
            return plan;
        }
    };
    if snapshot.is_none_or(|s| s.desired != desired) {
        plan.commands.push(Command::SetLifecycle(desired));
    } else if hold_changed {
        plan.commands.push(Command::SetHold);
    }
    let handled = |kind: RequestKind| {
        snapshot.and_then(|s| match kind {
            RequestKind::RunNow => s.last_handled_run_request.clone(),
            RequestKind::FullRun => s.last_handled_full_run_request.clone(),
            RequestKind::Restart => s.last_handled_restart_request.clone(),
        })
    };
    for (kind, token) in [
        (RequestKind::RunNow, &observed.tokens.run),
        (RequestKind::FullRun, &observed.tokens.full_run),
        (RequestKind::Restart, &observed.tokens.restart),
    ] {
        if let Some(token) = token
            && handled(kind).as_deref() != Some(token.as_str())
        {
            plan.commands.push(Command::Request(kind, token.clone()));
        }
    }
    plan
}

/// Inputs of step two.
#[derive(Debug, Clone, Copy)]
pub struct StatusInput<'a> {
    pub spec: &'a JourneySpec,
    pub generation: Option<i64>,
    pub engine: EngineView<'a>,
    pub block: Option<&'a Block>,
    /// A restart token refused without asking the engine.
    pub restart_refused_locally: Option<&'a str>,
    pub previous: Option<&'a JourneyStatus>,
    pub now: &'a Time,
    /// The ids of the active holds whose selectors match the journey (held or not).
    pub matching_holds: &'a [String],
}

struct Cond {
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: String,
}

fn cond(
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: impl Into<String>,
) -> Cond {
    Cond {
        type_,
        status,
        reason,
        message: bounded(message.into()),
    }
}

/// A condition message is at most this long: a journey with many problems (or a library that
/// quotes its input at length) must not make the status too large to write.
pub const MAX_CONDITION_MESSAGE: usize = 8 * 1024;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_CONDITION_MESSAGE {
        let mut end = MAX_CONDITION_MESSAGE - 40;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let total = message.len();
        message.truncate(end);
        message.push_str(&format!("… ({total} bytes in all)"));
    }
    message
}

/// The phase the spec asks for, when the engine has settled.
fn settled(spec: &JourneySpec, phase: Phase) -> bool {
    phase.settles(spec.state)
}

/// Step two: the status the resource should show.
pub fn desired_status(input: &StatusInput<'_>) -> JourneyStatus {
    let spec = input.spec;
    let previous = input.previous;
    let snapshot = match input.engine {
        EngineView::Known(s) => Some(s),
        _ => None,
    };
    let phase = match (snapshot, input.engine) {
        (Some(s), _) => s.phase,
        (None, EngineView::Unavailable(_)) => {
            previous.and_then(|p| p.phase).unwrap_or(Phase::Draft)
        }
        (None, _) => Phase::Draft,
    };
    let mut status = JourneyStatus {
        observed_generation: input.generation,
        phase: Some(phase),
        ..JourneyStatus::default()
    };
    if let Some(s) = snapshot {
        status.version = s.version;
        status.definition_hash = s.definition_hash.clone();
        status.profiles = Some(translate::profiles(&s.profiles));
        status.pause = s.pause.as_ref().map(|p| PauseStatus {
            since: translate::time(p.since),
            mode: translate::pause_mode(p.mode),
            reason: p.reason.clone(),
            expires_at: translate::time(p.expires_at),
            held_by: p.held_by.clone(),
            actor: None,
            change_ref: None,
        });
        // Who paused it: the last transition into Paused, or the holds' creators while held.
        if let Some(pause) = status.pause.as_mut() {
            let into_paused = s
                .history
                .iter()
                .rev()
                .find(|t| t.to == engine::Phase::Paused)
                .and_then(|t| t.actor.as_ref());
            let holders = s.hold.as_ref().and_then(|h| h.actor.clone());
            match (pause.held_by.is_empty(), holders, into_paused) {
                (false, Some(holders), _) => pause.actor = Some(holders),
                (_, _, Some(a)) => {
                    pause.actor = Some(a.by.clone());
                    pause.change_ref = a.change_ref.clone();
                }
                _ => {}
            }
        }
        status.resume = s.resume.as_ref().map(|r| ResumeStatus {
            started_at: translate::time(r.started_at),
            total: r.total,
            released: r.released,
        });
        status.last_run = translate::last_run(s);
        status.last_handled_run_request = s.last_handled_run_request.clone();
        status.last_handled_full_run_request = s.last_handled_full_run_request.clone();
        status.last_handled_restart_request = s.last_handled_restart_request.clone();
        status.history = translate::history(s);
    } else if let EngineView::Unavailable(_) = input.engine
        && let Some(prev) = previous
    {
        // Keep what was last known rather than blanking it while the engine is away.
        status = JourneyStatus {
            observed_generation: input.generation,
            conditions: Vec::new(),
            ..prev.clone()
        };
    }
    if let Some(token) = input.restart_refused_locally {
        status.last_handled_restart_request = Some(token.to_string());
    }

    let expired = snapshot.is_some_and(|s| pause_expired(spec, s));
    // A held journey is where it should be: the hold is declared intent, not a failure, so
    // kstatus stays Current.
    let held_by = status
        .pause
        .as_ref()
        .map(|p| p.held_by.clone())
        .unwrap_or_default();
    let held = phase == Phase::Paused && !held_by.is_empty();
    let stalled = match input.block {
        Some(Block::Invalid(text)) => {
            Some(cond(ct::STALLED, true, r::INVALID_DEFINITION, text.clone()))
        }
        Some(Block::IllegalTransition(text)) => {
            Some(cond(ct::STALLED, true, r::ILLEGAL_TRANSITION, text.clone()))
        }
        Some(Block::EngineStopped { .. }) => Some(cond(
            ct::STALLED,
            true,
            r::JOURNEY_STOPPED,
            "the journey is stopped in the engine and can never run again; set state: Stopped, or copy it under a new name",
        )),
        Some(Block::ChangeRequiresPause) => Some(cond(
            ct::STALLED,
            true,
            r::CHANGE_REQUIRES_PAUSE,
            "the pause expired and the journey resumed; this change needs a pause: set state Published, then Paused again with the change",
        )),
        None => None,
    };
    let reconciling = match (input.engine, stalled.is_some()) {
        (_, true) => None,
        (EngineView::Unavailable(why), _) => Some(cond(
            ct::RECONCILING,
            true,
            r::ENGINE_UNAVAILABLE,
            format!("the journey engine is unavailable, retrying: {why}"),
        )),
        _ if phase == Phase::Resuming => Some(cond(
            ct::RECONCILING,
            true,
            r::RESUMING,
            resume_message(&status),
        )),
        _ if !expired && !held && !settled(spec, phase) => Some(cond(
            ct::RECONCILING,
            true,
            r::APPLYING,
            format!("moving the engine from {phase:?} to {}", spec.state),
        )),
        _ => None,
    };

    let mut conditions = Vec::new();
    let ready = stalled.is_none() && reconciling.is_none();
    conditions.push(if ready {
        cond(
            ct::READY,
            true,
            r::RECONCILED,
            format!("{phase:?} as declared"),
        )
    } else if let Some(c) = stalled.as_ref().or(reconciling.as_ref()) {
        cond(ct::READY, false, c.reason, c.message.clone())
    } else {
        cond(ct::READY, false, r::NOT_RECONCILED, "")
    });
    conditions
        .push(reconciling.unwrap_or_else(|| cond(ct::RECONCILING, false, r::NOT_RECONCILING, "")));
    conditions.push(stalled.unwrap_or_else(|| cond(ct::STALLED, false, r::NOT_STALLED, "")));
    conditions.push(match phase {
        Phase::Draft => cond(ct::PUBLISHED, false, r::DRAFT, "not published"),
        Phase::Scheduled => cond(ct::PUBLISHED, true, r::SCHEDULED, version_message(&status)),
        Phase::Stopped | Phase::Completed => cond(
            ct::PUBLISHED,
            false,
            phase_reason(phase),
            "no longer running",
        ),
        _ => cond(ct::PUBLISHED, true, r::PUBLISHED, version_message(&status)),
    });
    conditions.push(if phase == Phase::Paused {
        cond(ct::PAUSED, true, r::PAUSED, pause_message(&status))
    } else if expired {
        cond(
            ct::PAUSED,
            false,
            r::PAUSE_EXPIRED,
            "the pause reached maxDuration and the engine resumed the journey; set state: Published in Git (or Paused again to start a new pause)",
        )
    } else {
        cond(ct::PAUSED, false, r::NOT_PAUSED, "")
    });
    conditions.push(if phase == Phase::Resuming {
        cond(
            ct::RESUMING,
            true,
            r::RELEASING_HELD_PROFILES,
            resume_message(&status),
        )
    } else {
        cond(ct::RESUMING, false, r::NOT_RESUMING, "")
    });
    conditions.push(if phase == Phase::Completed {
        cond(
            ct::COMPLETED,
            true,
            r::DRAINED,
            "every profile has finished",
        )
    } else {
        cond(ct::COMPLETED, false, r::NOT_COMPLETED, "")
    });
    conditions.push(if phase == Phase::Stopped {
        let by_expiry = snapshot.is_some_and(stopped_by_pause_expiry);
        if by_expiry {
            cond(
                ct::STOPPED,
                true,
                r::STOPPED_BY_PAUSE_EXPIRY,
                "the pause reached maxDuration with onExpiry: Stop",
            )
        } else {
            cond(
                ct::STOPPED,
                true,
                r::STOPPED,
                "entrance, movement and delivery halted",
            )
        }
    } else {
        cond(ct::STOPPED, false, r::NOT_STOPPED, "")
    });
    conditions.push(if held {
        cond(ct::HELD, true, r::EMERGENCY_HOLD, held_message(&status))
    } else if input.matching_holds.is_empty() {
        cond(ct::HELD, false, r::NOT_HELD, "")
    } else {
        cond(
            ct::HELD,
            false,
            r::NOT_HELD,
            format!(
                "{} matches, but a {phase:?} journey is not held (holds pause Scheduled, Live, Resuming and Paused journeys)",
                input.matching_holds.join(", ")
            ),
        )
    });

    status.conditions = conditions
        .into_iter()
        .map(|c| {
            let status_text = if c.status { "True" } else { "False" };
            let previous_condition =
                previous.and_then(|p| p.conditions.iter().find(|pc| pc.type_ == c.type_));
            // The transition time moves only when the status flips.
            let since = match previous_condition {
                Some(pc) if pc.status == status_text => pc.last_transition_time.clone(),
                _ => input.now.clone(),
            };
            Condition {
                type_: c.type_.to_string(),
                status: status_text.to_string(),
                reason: c.reason.to_string(),
                message: c.message,
                observed_generation: input.generation,
                last_transition_time: since,
            }
        })
        .collect();
    status
}

fn phase_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::Stopped => r::STOPPED,
        _ => r::DRAINED,
    }
}

fn version_message(status: &JourneyStatus) -> String {
    match status.version {
        Some(v) => format!("version {v}"),
        None => String::new(),
    }
}

fn pause_message(status: &JourneyStatus) -> String {
    match &status.pause {
        Some(p) => format!(
            "mode {:?} since {}{}; expires at {}",
            p.mode,
            p.since.0,
            p.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            p.expires_at.0
        ),
        None => String::new(),
    }
}

fn held_message(status: &JourneyStatus) -> String {
    match &status.pause {
        Some(p) => format!(
            "held by {} in mode {:?}{}; delete the hold (kubectl journey hold release) to release it",
            p.held_by.join(", "),
            p.mode,
            p.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
        ),
        None => String::new(),
    }
}

fn resume_message(status: &JourneyStatus) -> String {
    match &status.resume {
        Some(r) => format!("released {}/{} held profiles", r.released, r.total),
        None => "releasing held profiles".into(),
    }
}
