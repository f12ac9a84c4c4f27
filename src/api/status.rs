//! What the operator observed: written by the controller only, through the status subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::journey::PauseMode;

/// What the journey engine is really doing: the engine's own enum, shared through the model crate.
pub use journey_model::lifecycle::Phase;

/// Condition types, always all present with an explicit status.
pub mod condition_types {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const PUBLISHED: &str = "Published";
    pub const PAUSED: &str = "Paused";
    pub const RESUMING: &str = "Resuming";
    pub const COMPLETED: &str = "Completed";
    pub const STOPPED: &str = "Stopped";
    pub const HELD: &str = "Held";
    pub const ALL: [&str; 9] = [
        READY,
        RECONCILING,
        STALLED,
        PUBLISHED,
        PAUSED,
        RESUMING,
        COMPLETED,
        STOPPED,
        HELD,
    ];
}

/// Observed state of a Journey.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JourneyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Engine version number of the published definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Content hash of the published definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_hash: Option<String>,
    /// Ready, Reconciling, Stalled (kstatus) and Published, Paused, Resuming, Completed,
    /// Stopped; all always present.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<ProfileCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunStatus>,
    /// The last `journey.dev/run-requested-at` token handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_run_request: Option<String>,
    /// The last `journey.dev/full-run-requested-at` token handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_full_run_request: Option<String>,
    /// The last `journey.dev/restart-requested-at` token handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_restart_request: Option<String>,
    /// The last 10 lifecycle transitions, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Transition>,
}

/// Profiles by state, for the journey's current epoch.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileCounts {
    pub entered: i64,
    /// Profiles inside the journey now: active, waiting and held (queued entrances are not
    /// inside yet). What the `Inside` column shows.
    #[serde(default)]
    pub inside: i64,
    /// Profiles moving between steps (not waiting, not held).
    pub active: i64,
    pub waiting: i64,
    pub held: i64,
    pub queued: i64,
    pub discarded: i64,
    pub excluded: i64,
    pub exited: i64,
    pub completed: i64,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PauseStatus {
    pub since: Time,
    pub mode: PauseMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When `onExpiry` happens. While a hold applies this clock stands still; it moves out by
    /// the held time when the last hold goes.
    pub expires_at: Time,
    /// The emergency holds keeping the journey paused (`JourneyHold ns/name`,
    /// `ClusterJourneyHold name`); empty when only the spec pauses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
    /// Who paused it (or, while held, who created the holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The pull request or commit the pause came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_ref: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResumeStatus {
    pub started_at: Time,
    /// Held profiles to release.
    pub total: i64,
    pub released: i64,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    pub entered: i64,
    /// Succeeded, Running, Skipped or Failed.
    pub outcome: String,
}

/// One lifecycle transition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
    pub at: Time,
    pub reason: String,
    /// Who made the change (`journey.dev/lifecycle-changed-by`, stamped by admission; a hold's
    /// creator for a hold's transitions); absent for the engine's own transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The pull request or commit it came from (`journey.dev/change-ref`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_ref: Option<String>,
}
