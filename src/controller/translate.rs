//! Translation between the Journey resource and the engine's types: the only place that knows
//! both worlds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::journey::{JourneySpec, PauseMode};
use crate::api::status;
use crate::engine::{self, DesiredLifecycle};

/// The engine's key for a journey.
pub fn engine_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("the definition does not translate for the engine: {0}")]
    Definition(String),
}

/// The definition the engine versions, from the spec.
pub fn definition(spec: &JourneySpec) -> Result<engine::Definition, TranslateError> {
    let mut value =
        serde_json::to_value(spec).map_err(|e| TranslateError::Definition(e.to_string()))?;
    // The engine's definition refuses unknown fields; these two are the resource's alone.
    if let Some(map) = value.as_object_mut() {
        map.remove("state");
        map.remove("deletionPolicy");
    }
    serde_json::from_value(value).map_err(|e| TranslateError::Definition(e.to_string()))
}

/// The lifecycle the engine should be driven to: the engine's own reading of `spec.state`,
/// `spec.pause` and `spec.globalFilter`.
pub fn desired_lifecycle(spec: &JourneySpec) -> Result<DesiredLifecycle, TranslateError> {
    let def = definition(spec)?;
    DesiredLifecycle::from_spec(spec.state.as_str(), &def)
        .map_err(|e| TranslateError::Definition(e.to_string()))
}

pub fn pause_mode(m: engine::PauseMode) -> PauseMode {
    match m {
        engine::PauseMode::Hold => PauseMode::Hold,
        engine::PauseMode::Discard => PauseMode::Discard,
        engine::PauseMode::EntryOnly => PauseMode::EntryOnly,
    }
}

pub fn engine_pause_mode(m: PauseMode) -> engine::PauseMode {
    match m {
        PauseMode::Hold => engine::PauseMode::Hold,
        PauseMode::Discard => engine::PauseMode::Discard,
        PauseMode::EntryOnly => engine::PauseMode::EntryOnly,
    }
}

/// Engine milliseconds as a Kubernetes time, truncated to the second: status compares at
/// second precision, so sub-second jitter never causes a write.
pub fn time(ms: engine::Millis) -> Time {
    let seconds = ms.div_euclid(1000);
    Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
}

pub fn profiles(c: &engine::ProfileCounts) -> status::ProfileCounts {
    status::ProfileCounts {
        entered: c.entered,
        // Queued entrances are not inside yet: they enter when the pause ends.
        inside: c.active + c.waiting + c.held,
        active: c.active,
        waiting: c.waiting,
        held: c.held,
        queued: c.queued,
        discarded: c.discarded,
        excluded: c.excluded,
        exited: c.exited,
        completed: c.completed,
    }
}

pub fn history(snapshot: &engine::StatusSnapshot) -> Vec<status::Transition> {
    let items: Vec<status::Transition> = snapshot
        .history
        .iter()
        .map(|t| status::Transition {
            from: t.from,
            to: t.to,
            at: time(t.at),
            reason: t.reason.to_string(),
            actor: t.actor.as_ref().map(|a| a.by.clone()),
            change_ref: t.actor.as_ref().and_then(|a| a.change_ref.clone()),
        })
        .collect();
    let skip = items.len().saturating_sub(10);
    items.into_iter().skip(skip).collect()
}

pub fn last_run(snapshot: &engine::StatusSnapshot) -> Option<status::RunStatus> {
    snapshot.last_runs.last().map(|run| status::RunStatus {
        started_at: time(run.started_at),
        finished_at: run.ended_at.map(time),
        entered: run.entered,
        outcome: run.outcome.clone(),
    })
}
