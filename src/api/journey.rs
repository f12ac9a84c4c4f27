//! The `Journey` custom resource: the YAML people apply, review and sync.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lifecycle::JourneyState;
use super::status::JourneyStatus;

/// Maximum number of steps in one journey; keeps the CRD's CEL cost estimate bounded.
pub const MAX_STEPS: usize = 100;
/// Maximum length of a CEL expression in the spec: the CRD's `maxLength` says the same as the
/// limit every expression is checked against (a unit test keeps them equal).
pub const MAX_EXPRESSION_LENGTH: usize = journey_model::expr::MAX_BYTES;
/// Step ids and destination names.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A customer journey: how profiles enter, the steps they move through, and the lifecycle
/// (Draft, Published, Paused, Closed, Stopped) the operator drives the journey engine to.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "journey.dev",
    version = "v1alpha1",
    kind = "Journey",
    namespaced,
    plural = "journeys",
    shortname = "jny",
    status = "JourneyStatus",
    derive = "PartialEq",
    doc = "A customer journey run by the journey engine, with its declared lifecycle.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"What the engine is doing"}"#,
    printcolumn = r#"{"name":"Version","type":"integer","jsonPath":".status.version","description":"Engine version of the published definition"}"#,
    printcolumn = r#"{"name":"Inside","type":"integer","jsonPath":".status.profiles.inside","description":"Profiles inside the journey: active, waiting and held"}"#,
    printcolumn = r#"{"name":"Held","type":"integer","jsonPath":".status.profiles.held","description":"Profiles held at an action step by a pause"}"#,
    printcolumn = r#"{"name":"HeldBy","type":"string","jsonPath":".status.pause.heldBy[0]","description":"The emergency hold keeping the journey paused"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Active","type":"integer","jsonPath":".status.profiles.active","priority":1,"description":"Profiles moving between steps (not waiting, not held)"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".status.pause.mode","priority":1,"description":"Pause mode while paused"}"#,
    printcolumn = r#"{"name":"Filter","type":"string","jsonPath":".spec.globalFilter","priority":1,"description":"Global filter excluding profiles at action steps"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.steps.all(s, !has(s.next) || self.steps.exists(t, t.id == s.next))").message("every step's next must name a step of this journey"))]
#[x_kube(validation = Rule::new("self.steps.all(s, !has(s.condition) || (self.steps.exists(t, t.id == s.condition.otherwise) && s.condition.branches.all(b, self.steps.exists(t, t.id == b.next))))").message("every condition branch's next and otherwise must name a step of this journey"))]
#[x_kube(validation = Rule::new("self.steps.all(s, !has(s.waitForEvent) || !has(s.waitForEvent.onTimeout) || self.steps.exists(t, t.id == s.waitForEvent.onTimeout))").message("every waitForEvent onTimeout must name a step of this journey"))]
pub struct JourneySpec {
    /// Declared lifecycle. Draft (default): nothing runs. Published: live. Paused: halted as
    /// `pause` says. Closed: no new entrances, profiles inside finish, then Completed. Stopped:
    /// entrance, movement and delivery halt at once; terminal. Published, Paused and Closed never
    /// return to Draft; Closed can only become Stopped.
    #[serde(default)]
    pub state: JourneyState,

    /// How the journey behaves while `state` is Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseSpec>,

    /// A CEL expression over `profile` (its attributes). Profiles for which it is true are
    /// excluded at their next action step, new entrants included. Can be added, changed or
    /// removed only together with (or while) `state: Paused`. Use `has(profile.x)` for optional
    /// attributes: reading a missing one is an error. Expression limits: at most 4096 bytes and 32 levels of nesting, 3 nested comprehension macros (README, Expression limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub global_filter: Option<String>,

    /// How held profiles are released when a paused journey resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeSpec>,

    /// When the journey opens and closes to new entrances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,

    /// How profiles enter the journey: exactly one of `event` or `audience`. Locked once
    /// published; change it together with `state: Paused`.
    pub entry: EntrySpec,

    /// Exit criteria: events that remove a profile from the journey wherever it is. Locked once
    /// published; change them together with `state: Paused`.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub exit: Vec<ExitCriterion>,

    /// Global per-profile journey timeout; a profile still inside after this long exits. It
    /// still applies while paused. Go-style duration, default 2184h (91 days).
    #[serde(default = "default_timeout")]
    #[schemars(length(max = 32), pattern(crate::api::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("timeout must be a positive duration such as 2184h"))]
    pub timeout: String,

    /// The steps, in order. A step without `next` continues with the following one; after the
    /// last step the profile completes. Merged per step `id` by server-side apply.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    pub steps: Vec<Step>,

    /// What deleting this resource does to the journey in the engine. Stop (default): the
    /// journey is stopped and removed from the engine. Orphan: the engine journey is left as it
    /// is, and a resource created again with the same namespace/name adopts it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_timeout() -> String {
    "2184h".into()
}

/// How a paused journey treats profiles.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PauseSpec {
    /// Hold (default): profiles wait at their next action step until resume. Discard: profiles
    /// are dropped at their next action step. EntryOnly: only entrance stops; profiles inside
    /// keep moving and receiving messages.
    #[serde(default)]
    pub mode: PauseMode,

    /// Fresh entrances during the pause. Discard (default): dropped and counted. Queue: kept
    /// and admitted on resume.
    #[serde(default)]
    pub entries: PauseEntries,

    /// Wait steps during the pause. Continue (default): timers keep running. Extend: wait end
    /// times move out by the length of the pause.
    #[serde(default)]
    pub waits: PauseWaits,

    /// Longest the pause may last (Go-style duration, default and maximum 336h, 14 days).
    /// Then `onExpiry` happens.
    #[serde(default = "default_max_pause")]
    #[schemars(length(max = 32), pattern(crate::api::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('336h')").message("maxDuration must be a positive duration of at most 336h (14 days)"))]
    pub max_duration: String,

    /// What happens when the pause reaches `maxDuration`: Resume (default) or Stop.
    #[serde(default)]
    pub on_expiry: PauseExpiry,

    /// Why the journey is paused; shown in status and events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

impl Default for PauseSpec {
    fn default() -> Self {
        PauseSpec {
            mode: PauseMode::default(),
            entries: PauseEntries::default(),
            waits: PauseWaits::default(),
            max_duration: default_max_pause(),
            on_expiry: PauseExpiry::default(),
            reason: None,
        }
    }
}

fn default_max_pause() -> String {
    "336h".into()
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PauseMode {
    #[default]
    Hold,
    Discard,
    EntryOnly,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PauseEntries {
    #[default]
    Discard,
    Queue,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PauseWaits {
    #[default]
    Continue,
    Extend,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PauseExpiry {
    #[default]
    Resume,
    Stop,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    #[default]
    Stop,
    Orphan,
}

/// How held profiles are released on resume.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResumeSpec {
    /// Held profiles released per second (default 5000; 0 = as fast as the engine can).
    #[serde(default = "default_resume_rate")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub rate: i32,
}

fn default_resume_rate() -> i32 {
    5000
}

/// When the journey opens and closes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.startAt) || !has(self.endAt) || timestamp(self.endAt) > timestamp(self.startAt)").message("schedule.endAt must be after schedule.startAt"))]
pub struct ScheduleSpec {
    /// Before this time the journey is Scheduled and nobody enters (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub start_at: Option<String>,
    /// After this time entrance closes, profiles inside finish, then the journey is Completed
    /// (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub end_at: Option<String>,
}

/// How profiles enter: exactly one of `event` or `audience`, plus the re-entry policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.event) != has(self.audience)").message("entry needs exactly one of event or audience"))]
pub struct EntrySpec {
    /// Enter when this event arrives for a profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventTrigger>,
    /// Enter from an audience: when a profile starts matching, or by a (scheduled) batch read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<AudienceEntry>,
    /// Whether and how often one profile may enter again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reentry: Option<ReentrySpec>,
}

/// An event, optionally filtered by a CEL condition over `event` and `profile`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventTrigger {
    /// The event name, e.g. AddToCart.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// CEL over `event` (its payload) and `profile`; the event counts only when true.
    /// Expression limits: at most 4096 bytes and 32 levels of nesting, 3 nested comprehension macros (README, Expression limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub condition: Option<String>,
}

/// Audience entry.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AudienceEntry {
    /// CEL over `profile`: who belongs to the audience. Expression limits: at most 4096 bytes and 32 levels of nesting, 3 nested comprehension macros (README, Expression limits).
    #[schemars(length(min = 1, max = 4096))]
    pub condition: String,
    /// Qualification (default): a profile enters when it starts matching. Read: a batch read
    /// of everyone matching, now (run-requested-at annotation) or on `schedule`.
    #[serde(default)]
    pub mode: AudienceMode,
    /// When batch reads run (Read mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<CronSchedule>,
    /// Read only profiles new to the audience since the last completed read.
    #[serde(default)]
    pub incremental: bool,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AudienceMode {
    #[default]
    Qualification,
    Read,
}

/// A cron schedule, as in a CronJob.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CronSchedule {
    /// Five-field cron expression, e.g. `0 14 * * *`.
    #[schemars(length(min = 1, max = 128))]
    pub cron: String,
    /// IANA time zone name the cron expression is read in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub time_zone: Option<String>,
}

/// Re-entry policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReentrySpec {
    /// Whether a profile that left may enter again (default false).
    #[serde(default)]
    pub allowed: bool,
    /// Minimum time between two entries of one profile (Go-style duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(crate::api::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("reentry.after must be a positive duration"))]
    pub after: Option<String>,
}

/// An exit criterion: the event removes the profile from the journey wherever it is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExitCriterion {
    pub event: EventTrigger,
}

/// One step: an `id` and exactly one of `wait`, `waitForEvent`, `condition`, `action`, `exit`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.wait), has(self.waitForEvent), has(self.condition), has(self.action), has(self.exit)].filter(k, k).size() == 1").message("a step needs exactly one of wait, waitForEvent, condition, action or exit"))]
pub struct Step {
    /// Unique step id (a DNS label). Profiles keep their place by id across versions.
    #[schemars(
        length(min = 1, max = 63),
        pattern(crate::api::journey::DNS_LABEL_PATTERN)
    )]
    pub id: String,
    /// Wait a duration or until a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitStep>,
    /// Wait for an event (a reaction), with a timeout branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_event: Option<WaitForEventStep>,
    /// Branch on CEL conditions over `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionStep>,
    /// Send a message: one delivery per profile, recorded exactly once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionStep>,
    /// Leave the journey here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStep>,
    /// The step after this one (default: the following step; after the last, the profile
    /// completes). Not used by condition steps, which name their targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub next: Option<String>,
}

/// Wait for a duration or until a time: exactly one of them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.duration) != has(self.until)").message("wait needs exactly one of duration or until"))]
pub struct WaitStep {
    /// How long to wait (Go-style duration, e.g. 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(crate::api::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("wait.duration must be a positive duration"))]
    pub duration: Option<String>,
    /// Wait until this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub until: Option<String>,
}

/// Wait for an event for this profile.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WaitForEventStep {
    /// The event name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// CEL over `event` and `profile`; only a matching event counts. Expression limits: at most 4096 bytes and 32 levels of nesting, 3 nested comprehension macros (README, Expression limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub condition: Option<String>,
    /// How long to wait for the event (Go-style duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(crate::api::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("waitForEvent.timeout must be a positive duration"))]
    pub timeout: Option<String>,
    /// The step a profile goes to when the timeout passes (default: it exits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub on_timeout: Option<String>,
}

/// Branch on CEL conditions: the first branch whose `when` is true wins, else `otherwise`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionStep {
    #[schemars(length(min = 1, max = 16))]
    pub branches: Vec<Branch>,
    /// The step taken when no branch matches.
    #[schemars(length(min = 1, max = 63))]
    pub otherwise: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Branch {
    /// CEL over `profile`. Expression limits: at most 4096 bytes and 32 levels of nesting, 3 nested comprehension macros (README, Expression limits).
    #[schemars(length(min = 1, max = 4096))]
    pub when: String,
    /// The step taken when `when` is true.
    #[schemars(length(min = 1, max = 63))]
    pub next: String,
}

/// Send a message through a channel to a named destination.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.channel != 'webhook' || has(self.destination)").message("a webhook action needs a destination name from the operator's destination list"))]
pub struct ActionStep {
    pub channel: Channel,
    /// A destination *name* from the operator's configured allow-list (never a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        pattern(crate::api::journey::DNS_LABEL_PATTERN)
    )]
    pub destination: Option<String>,
    /// The message: template, subject, body… free-form, passed to the destination as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub message: Option<BTreeMap<String, Value>>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Push,
    Webhook,
    Record,
}

/// The profile leaves the journey here.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ExitStep {}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
