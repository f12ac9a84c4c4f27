//! Engine errors.

use thiserror::Error;

/// Every error the engine returns. Variants carry enough context (journey key,
/// field path, expression) to be shown to a user as is.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("invalid definition: {0}")]
    InvalidDefinition(String),
    #[error("invalid duration {value:?}: expected Go-style ^([0-9]+(h|m|s))+$")]
    InvalidDuration { value: String },
    #[error(
        "invalid CEL expression {:?}: {message}",
        journey_model::expr::excerpt(expr)
    )]
    CelCompile { expr: String, message: String },
    #[error(
        "CEL evaluation of {:?} failed: {message}",
        journey_model::expr::excerpt(expr)
    )]
    CelEval { expr: String, message: String },
    #[error("invalid cron schedule {cron:?} in time zone {tz:?}: {message}")]
    InvalidSchedule {
        cron: String,
        tz: String,
        message: String,
    },
    #[error("journey {0:?} not found")]
    NotFound(String),
    #[error("journey {key:?} has no published definition")]
    NoDefinition { key: String },
    #[error("illegal lifecycle transition for {key:?}: {from} -> {to}: {why}")]
    IllegalTransition {
        key: String,
        from: String,
        to: String,
        /// The rule of the lifecycle table that refused it.
        rule: journey_model::lifecycle::Rule,
        why: String,
    },
    #[error(
        "journey {key:?} changed since revision {expected} (it is at revision {actual}): read it again and retry"
    )]
    RevisionConflict {
        key: String,
        expected: i64,
        actual: i64,
    },
    #[error(
        "this engine serves cluster {serving:?}, not {asked:?}: one engine serves one cluster (journeys are keyed namespace/name); give this cluster an engine of its own"
    )]
    WrongCluster { serving: String, asked: String },
    /// The engine could not be reached or answered a failure it could not describe (a remote
    /// engine: connection refused, timeout, TLS failure, 5xx).
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "the change feed no longer covers revision {since} (it keeps revisions {oldest}..{head}): list every journey again"
    )]
    ResyncRequired { since: i64, oldest: i64, head: i64 },
    #[error("unknown destination {name:?} in step {step:?}")]
    UnknownDestination { step: String, name: String },
    #[error("invalid destination configuration: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Store(#[from] journey_store::StoreError),
    #[error("corrupt stored data ({context}): {message}")]
    Corrupt {
        context: &'static str,
        message: String,
    },
    #[error("json error ({context}): {source}")]
    Json {
        context: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("background task failed: {0}")]
    Task(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

pub(crate) fn json_err(context: &'static str) -> impl FnOnce(serde_json::Error) -> EngineError {
    move |source| EngineError::Json { context, source }
}

impl EngineError {
    /// Another writer holds the store: the same call can succeed in a moment.
    pub fn is_busy(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_busy(),
            _ => false,
        }
    }
}

impl From<journey_model::duration::InvalidDuration> for EngineError {
    fn from(e: journey_model::duration::InvalidDuration) -> Self {
        EngineError::InvalidDuration { value: e.value }
    }
}
