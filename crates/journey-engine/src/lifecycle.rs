//! Lifecycle types: what the controller asks for ([`DesiredLifecycle`]), what
//! the engine reports ([`Phase`], [`StatusSnapshot`]), and the per-journey
//! runtime state persisted by the engine ([`Runtime`]).

use serde::{Deserialize, Serialize};

use super::clock::Millis;
use super::definition::{MAX_PAUSE_MS, OnExpiry, PauseEntries, PauseMode, PauseWaits};
use super::store::RunRecord;

/// Options of a pause (the Journey `spec.pause` plus the global filter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseOptions {
    pub mode: PauseMode,
    pub entries: PauseEntries,
    pub waits: PauseWaits,
    /// Milliseconds; capped at 336h (the default).
    pub max_duration_ms: i64,
    pub on_expiry: OnExpiry,
    pub reason: Option<String>,
    /// CEL over `profile`; profiles matching are excluded at their next action
    /// step. It can only change while paused and stays in force after resume
    /// until a later pause changes or removes it.
    pub global_filter: Option<String>,
}

impl Default for PauseOptions {
    fn default() -> Self {
        Self {
            mode: PauseMode::Hold,
            entries: PauseEntries::Discard,
            waits: PauseWaits::Continue,
            max_duration_ms: MAX_PAUSE_MS,
            on_expiry: OnExpiry::Resume,
            reason: None,
            global_filter: None,
        }
    }
}

impl PauseOptions {
    /// Builds the options from the Journey `spec.pause` and `spec.globalFilter`.
    pub fn from_spec(
        pause: Option<&super::definition::PauseSpec>,
        global_filter: Option<&str>,
    ) -> super::error::Result<Self> {
        let p = pause.cloned().unwrap_or_default();
        let max_duration_ms = match &p.max_duration {
            Some(d) => super::duration::parse_positive_duration_ms(d)?.min(MAX_PAUSE_MS),
            None => MAX_PAUSE_MS,
        };
        Ok(Self {
            mode: p.mode,
            entries: p.entries,
            waits: p.waits,
            max_duration_ms,
            on_expiry: p.on_expiry,
            reason: p.reason,
            global_filter: global_filter.map(str::to_string),
        })
    }
}

/// The lifecycle the controller sets (the Journey `spec.state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(tag = "state")]
pub enum DesiredLifecycle {
    #[default]
    Draft,
    Published,
    Paused(PauseOptions),
    Closed,
    Stopped,
}

impl DesiredLifecycle {
    /// Translates the Journey `spec.state` (`Draft`, `Published`, `Paused`,
    /// `Closed`, `Stopped`) plus the definition's `pause`/`globalFilter`.
    pub fn from_spec(
        state: &str,
        def: &super::definition::Definition,
    ) -> super::error::Result<Self> {
        Ok(match state {
            "Draft" | "" => Self::Draft,
            "Published" => Self::Published,
            "Paused" => Self::Paused(PauseOptions::from_spec(
                def.pause.as_ref(),
                def.global_filter.as_deref(),
            )?),
            "Closed" => Self::Closed,
            "Stopped" => Self::Stopped,
            other => {
                return Err(super::error::EngineError::InvalidDefinition(format!(
                    "state: unknown state {other:?}"
                )));
            }
        })
    }

    pub fn name(&self) -> &'static str {
        self.state().as_str()
    }

    /// The declared state, without the pause's options.
    pub fn state(&self) -> JourneyState {
        match self {
            Self::Draft => JourneyState::Draft,
            Self::Published => JourneyState::Published,
            Self::Paused(_) => JourneyState::Paused,
            Self::Closed => JourneyState::Closed,
            Self::Stopped => JourneyState::Stopped,
        }
    }
}

/// A lifecycle command (alias kept for the controller's vocabulary).
pub type LifecycleCommand = DesiredLifecycle;

/// The phase the engine reports, and why it moved: shared with the controller through the model.
pub use journey_model::lifecycle::{JourneyState, Phase, TransitionReason};

/// One pause, with its identity. Only a new transition into Paused creates one.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseInfo {
    pub pause_id: i64,
    pub since: Millis,
    pub expires_at: Millis,
    pub options: PauseOptions,
    /// Version in force when the pause began (profiles on it or later migrate at resume).
    pub version_at_pause: i64,
    pub ended_at: Option<Millis>,
    pub end_reason: Option<String>,
    /// The pause was started by an emergency hold, not by the declared state: releasing the
    /// hold resumes the journey.
    #[serde(default)]
    pub by_hold: bool,
    /// While a hold applies, the pause's own expiry clock stands still from this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since: Option<Millis>,
    /// Time spent under holds that have been released: the expiry moves out by it.
    #[serde(default)]
    pub held_ms: i64,
}

/// Release of held profiles (Resuming, or Closing after a pause).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeInfo {
    pub started_at: Millis,
    pub total: i64,
    pub released: i64,
    /// Profiles per second; 0 = unthrottled.
    pub rate: u64,
    pub finished_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
    pub at: Millis,
    pub reason: TransitionReason,
    /// Who made the declaration that caused it (none for the engine's own transitions:
    /// expiries, schedules, releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// Who declared a change, and why (Kubernetes: the `journey.dev/lifecycle-changed-by` and
/// `journey.dev/change-ref` annotations admission stamps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Actor {
    /// The authenticated user (e.g. `alice`, or Argo CD's service account).
    pub by: String,
    /// A pull-request URL or commit the change came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_ref: Option<String>,
}

/// Kind of an audience read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub enum RunKind {
    Scheduled,
    Single,
    RunNow,
    FullRun,
    Restart,
}

impl RunKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Single => "Single",
            Self::RunNow => "RunNow",
            Self::FullRun => "FullRun",
            Self::Restart => "Restart",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadProgress {
    pub run_id: i64,
    pub kind: RunKind,
    /// Last profile seq read.
    pub cursor: i64,
    /// Highest profile seq included in this read (fixed at its start).
    pub upto: i64,
    pub entered: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReadState {
    /// Next cron occurrence.
    pub next_at: Option<Millis>,
    /// Single execution (no cron) due at this time.
    pub single_due: Option<Millis>,
    pub in_progress: Option<ReadProgress>,
    /// Highest profile seq covered by the last completed read (incremental).
    pub last_completed_upto: i64,
    /// A run requested while paused, started at resume.
    pub deferred: Option<RunKind>,
}

/// Persisted per-journey runtime state.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    pub desired: DesiredLifecycle,
    pub phase: Phase,
    pub version: Option<i64>,
    pub hash: Option<String>,
    pub epoch: i64,
    pub global_filter: Option<String>,
    pub pause: Option<PauseInfo>,
    pub last_pause_id: i64,
    pub resume: Option<ResumeInfo>,
    pub discarded_entrances: i64,
    pub read: ReadState,
    pub history: Vec<Transition>,
    /// Deadlines up to this time have been swept (global timeout).
    #[serde(default)]
    pub deadline_swept_to: Millis,
    /// Ended pauses (identity, start, end, reason), newest last.
    #[serde(default)]
    pub past_pauses: Vec<PauseInfo>,
    /// What the last declaration said, for the lifecycle table's locks (absent for journeys
    /// stored before declarations were kept, and for those driven by the fine-grained commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<super::declare::DeclaredParts>,
    /// The emergency hold last declared (it applies while the journey is Scheduled, Live,
    /// Resuming or Paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// An emergency hold over the journey, declared besides its state (Kubernetes: one or more
/// `JourneyHold`s). It pauses the journey whatever its state says, and a state change cannot
/// lift it: only declaring no hold does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hold {
    /// How the held journey treats profiles (the strictest of the holds; the declared pause's
    /// own mode counts too: Discard > Hold > EntryOnly).
    pub mode: PauseMode,
    /// Why, shown in the pause and its transition.
    pub reason: String,
    /// Who holds it (e.g. `JourneyHold ns/name`), for status.
    #[serde(default)]
    pub held_by: Vec<String>,
    /// Who created the holds, for the transitions they cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl PauseMode {
    /// Discard > Hold > EntryOnly: how much a mode stops.
    pub fn strictness(self) -> u8 {
        match self {
            PauseMode::EntryOnly => 0,
            PauseMode::Hold => 1,
            PauseMode::Discard => 2,
        }
    }

    /// The stricter of two modes.
    pub fn strictest(self, other: PauseMode) -> PauseMode {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }
}

pub const HISTORY_KEPT: usize = 50;

impl Runtime {
    pub fn history_pause(&mut self, p: PauseInfo) {
        self.past_pauses.push(p);
        if self.past_pauses.len() > HISTORY_KEPT {
            self.past_pauses.remove(0);
        }
    }

    pub fn record(&mut self, to: Phase, at: Millis, reason: TransitionReason) {
        if self.phase == to {
            return;
        }
        self.history.push(Transition {
            from: self.phase,
            to,
            at,
            reason,
            actor: None,
        });
        if self.history.len() > HISTORY_KEPT {
            let cut = self.history.len() - HISTORY_KEPT;
            self.history.drain(..cut);
        }
        self.phase = to;
    }
}

/// Profile counts by state (current epoch). `discarded` includes fresh
/// entrances dropped during a pause.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, schemars::JsonSchema, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct ProfileCounts {
    pub entered: i64,
    pub active: i64,
    pub waiting: i64,
    pub held: i64,
    pub queued: i64,
    pub discarded: i64,
    pub excluded: i64,
    pub exited: i64,
    pub completed: i64,
}

/// How many of a journey's in-flight profiles a candidate global filter matches right now
/// (`plan --cluster`): what setting that filter would exclude at the next action steps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, schemars::JsonSchema, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct FilterMatches {
    /// Enrollments of the current epoch that are active, waiting, held or queued.
    pub in_flight: i64,
    /// Of those, how many the filter matches (would be excluded).
    pub matching: i64,
    /// Of those, how many the filter could not be evaluated on (e.g. a missing attribute
    /// without a `has()` guard): the engine treats them as not matching.
    pub evaluation_errors: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseStatus {
    pub pause_id: i64,
    pub since: Millis,
    pub mode: PauseMode,
    pub reason: Option<String>,
    /// When the declared pause's `onExpiry` happens; it does not come while a hold applies.
    pub expires_at: Millis,
    /// The holds that keep the journey paused (empty when only its declared state does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeStatus {
    pub started_at: Millis,
    pub total: i64,
    pub released: i64,
}

/// What the controller copies into the Journey status.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusSnapshot {
    pub key: String,
    /// The change feed's revision of the journey's latest change: a declaration may name it
    /// (`expected_revision`) to fail instead of overwriting a change it has not seen.
    pub revision: i64,
    pub phase: Phase,
    pub desired: DesiredLifecycle,
    pub version: Option<i64>,
    pub definition_hash: Option<String>,
    pub epoch: i64,
    pub profiles: ProfileCounts,
    pub pause: Option<PauseStatus>,
    pub resume: Option<ResumeStatus>,
    pub global_filter: Option<String>,
    /// The hold last declared, whether or not it applies in this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    pub last_runs: Vec<RunRecord>,
    /// The last 10 transitions, oldest first.
    pub history: Vec<Transition>,
    /// A run requested while paused, to start at resume (e.g. `RunNow`).
    pub deferred_run: Option<RunKind>,
    pub last_handled_run_request: Option<String>,
    pub last_handled_full_run_request: Option<String>,
    pub last_handled_restart_request: Option<String>,
}

/// Result of applying a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedVersion {
    pub version: i64,
    pub hash: String,
    /// False when the content was already the latest version (idempotent apply).
    pub created: bool,
}

/// A run-control request carried by an opaque token (annotation value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub enum RequestKind {
    RunNow,
    FullRun,
    Restart,
}

impl RequestKind {
    pub fn token_kind(self) -> &'static str {
        match self {
            Self::RunNow => "run",
            Self::FullRun => "full-run",
            Self::Restart => "restart",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub enum RequestOutcome {
    /// Handled now (a run started, or the restart happened).
    Started { run_id: Option<i64> },
    /// Requested while paused: handled at resume.
    DeferredUntilResume,
    /// The token was already handled; nothing done.
    AlreadyHandled,
    /// Not applicable (e.g. run on an event-triggered journey, or stopped).
    Refused { reason: String },
}
