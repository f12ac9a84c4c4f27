//! `plan --cluster`: live impact from the Journeys' status in the current cluster — how many
//! profiles are inside, how many a pause will hold or discard, and a pause close to its expiry.

use kube::{Api, Client};
use serde::Serialize;

use super::{JourneyChange, Plan};
use crate::api::Journey;
use crate::api::journey::PauseMode;
use crate::api::lifecycle::JourneyState;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LiveImpact {
    pub phase: Option<String>,
    /// Profiles inside now (active, waiting, held, queued).
    pub inside: i64,
    /// Profiles inside that a Hold pause will hold at their next action step.
    pub will_be_held: i64,
    /// Profiles inside that a Discard pause will drop at their next action step.
    pub will_be_discarded: i64,
}

/// Adds live impact to every changed journey that exists in the cluster.
pub async fn annotate(
    plan: &mut Plan,
    client: &Client,
    head_states: &[(String, JourneyState, Option<PauseMode>)],
) -> Result<(), kube::Error> {
    for change in &mut plan.changes {
        let Some((namespace, name)) = change.key.split_once('/') else {
            continue;
        };
        let api: Api<Journey> = Api::namespaced(client.clone(), namespace);
        let Some(live) = api.get_opt(name).await? else {
            continue;
        };
        let status = live.status.unwrap_or_default();
        let counts = status.profiles.clone().unwrap_or_default();
        let moving = counts.active + counts.waiting;
        let target = head_states.iter().find(|(k, _, _)| *k == change.key);
        let pausing = target.is_some_and(|(_, s, _)| *s == JourneyState::Paused)
            && status.phase.is_some_and(|p| p != crate::api::Phase::Paused);
        let mode = target.and_then(|(_, _, m)| *m);
        change.live = Some(LiveImpact {
            phase: status.phase.map(|p| format!("{p:?}")),
            inside: moving + counts.held + counts.queued,
            will_be_held: if pausing && mode == Some(PauseMode::Hold) {
                moving
            } else {
                0
            },
            will_be_discarded: if pausing && mode == Some(PauseMode::Discard) {
                moving
            } else {
                0
            },
        });
        warn_near_expiry(change, &status);
    }
    Ok(())
}

fn warn_near_expiry(change: &mut JourneyChange, status: &crate::api::JourneyStatus) {
    let Some(pause) = &status.pause else { return };
    let total = pause.expires_at.0.as_second() - pause.since.0.as_second();
    let left = pause.expires_at.0.as_second() - k8s_openapi::jiff::Timestamp::now().as_second();
    if total > 0 && left < total / 10 {
        change.warnings.push(format!(
            "the pause expires at {} ({} min left): it will resume (or stop) by itself",
            pause.expires_at.0,
            left.max(0) / 60
        ));
    }
}
