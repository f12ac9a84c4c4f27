//! The v1 wire types. Unknown fields are refused everywhere, so a misspelt field is an error
//! naming it, never a silently ignored setting.

use journey_engine::definition::{Entry, ExitCriterion, PauseSpec, ResumeSpec, ScheduleSpec, Step};
use journey_engine::lifecycle::Actor;
use journey_engine::{Definition, FeedPage, Hold, RequestResult, StatusSnapshot};
use journey_model::lifecycle::JourneyState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The header that names the cluster a caller speaks for; an engine serves one cluster.
pub const CLUSTER_HEADER: &str = "journey-cluster-id";

/// A journey's definition: what runs (the lifecycle settings are in [`Lifecycle`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JourneyDefinition {
    pub entry: Entry,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit: Vec<ExitCriterion>,
    /// Go-style duration (`2184h`): a profile still inside after it leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
}

/// The declared lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lifecycle {
    pub state: JourneyState,
    /// How a pause behaves (used when `state` is Paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseSpec>,
    /// CEL over `profile`: matching profiles are excluded at their next action step. May be
    /// added, changed or removed only in a declaration whose state is Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_filter: Option<String>,
    /// How held profiles are released when a pause ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeSpec>,
    /// An emergency hold: the journey is paused (Scheduled, Live, Resuming or Paused ones)
    /// whatever `state` says, until a declaration without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// Run-control request tokens: each is handled exactly once; sending a handled token again
/// answers `AlreadyHandled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requests {
    /// Read the audience now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Read the whole audience now, ignoring incremental progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_run: Option<String>,
    /// Every profile begins again (messages are sent again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
}

/// `PUT /v1/journeys/{namespace}/{name}`: the whole declared journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JourneyPut {
    pub definition: JourneyDefinition,
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub requests: Requests,
    /// Refuse with `RevisionConflict` unless the journey's latest change is this revision
    /// (0: the journey must not exist yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<i64>,
    /// Who declares it: recorded on the transitions it causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// The answer to a `PUT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JourneyPutResponse {
    pub status: StatusSnapshot,
    /// The journey's revision after this declaration.
    pub revision: i64,
    /// What became of each request token sent.
    pub requests: Vec<RequestResult>,
}

/// `GET /v1/journeys/{namespace}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JourneyGetResponse {
    pub status: StatusSnapshot,
    pub revision: i64,
}

/// `DELETE /v1/journeys/{namespace}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JourneyDeleteResponse {
    /// The engine knew the journey (it is now stopped and removed).
    pub deleted: bool,
}

/// `GET /v1/changes?since=…`: a page of the change feed.
pub type ChangesResponse = FeedPage;

/// `GET /v1/changes/revision`: where a reader that has just listed everything starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedRevision {
    pub revision: i64,
}

/// `POST /v1/test/clock/advance` (only with `--virtual-clock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClockAdvance {
    /// Milliseconds to move the engine's clock forward (at most 400 days at once).
    pub millis: i64,
}

/// The engine's clock after an advance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClockNow {
    pub now: i64,
}

/// Why a request was refused: a stable code to branch on, and a message for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ErrorCode {
    /// The lifecycle table does not allow this change of state from where the journey is.
    IllegalTransition,
    /// The definition does not compile (a duration, an expression, a schedule, a step graph).
    InvalidDefinition,
    /// Entry, exit or the global filter changed while the journey runs: pause it first (or in
    /// the same declaration).
    ChangeRequiresPause,
    /// A stopped journey cannot change.
    JourneyStopped,
    /// An action names a destination this engine does not have.
    UnknownDestination,
    /// The state needs a definition the engine does not have.
    NoDefinition,
    NotFound,
    /// `expectedRevision` is not the journey's revision.
    RevisionConflict,
    /// The change feed no longer covers the cursor: list everything again.
    ResyncRequired,
    /// Malformed request: bad JSON, wrong type, unknown field, bad path or query.
    InvalidRequest,
    PayloadTooLarge,
    /// Missing or wrong credential.
    Unauthorized,
    /// A valid credential for something else (the data-plane token on the engine API).
    Forbidden,
    /// The engine already serves another cluster (`Journey-Cluster-Id`).
    WrongCluster,
    /// The engine cannot serve now (its store is busy, a token file unreadable); retry.
    Unavailable,
    /// An engine failure (details in the engine's log).
    Internal,
}

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub error: String,
    /// The offending input as a path (`definition.steps[2].wait.duration`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a refused lifecycle change: the rule's own message (the one the CRD's CEL gives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl JourneyPut {
    /// The engine's view of the declaration.
    pub fn into_declaration(self) -> journey_engine::Declaration {
        let JourneyPut {
            definition,
            lifecycle,
            requests,
            expected_revision,
            actor,
        } = self;
        journey_engine::Declaration {
            definition: Definition {
                entry: definition.entry,
                exit: definition.exit,
                timeout: definition.timeout,
                steps: definition.steps,
                schedule: definition.schedule,
                global_filter: lifecycle.global_filter,
                resume: lifecycle.resume,
                pause: lifecycle.pause,
            },
            state: lifecycle.state,
            hold: lifecycle.hold,
            actor,
            requests: journey_engine::Requests {
                run: requests.run,
                full_run: requests.full_run,
                restart: requests.restart,
            },
            expected_revision,
        }
    }

    /// The wire form of an engine declaration.
    pub fn from_declaration(d: journey_engine::Declaration) -> Self {
        let journey_engine::Declaration {
            definition,
            state,
            requests,
            expected_revision,
            hold,
            actor,
        } = d;
        JourneyPut {
            definition: JourneyDefinition {
                entry: definition.entry,
                exit: definition.exit,
                timeout: definition.timeout,
                steps: definition.steps,
                schedule: definition.schedule,
            },
            lifecycle: Lifecycle {
                state,
                pause: definition.pause,
                global_filter: definition.global_filter,
                resume: definition.resume,
                hold,
            },
            requests: Requests {
                run: requests.run,
                full_run: requests.full_run,
                restart: requests.restart,
            },
            expected_revision,
            actor,
        }
    }
}
