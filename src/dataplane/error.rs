//! Errors: [`DataPlaneError`] for starting and running the server, [`ApiError`] for the JSON
//! error bodies the endpoints answer, and the mapping of [`EngineError`] to HTTP statuses.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thiserror::Error;

use super::config::RETRY_AFTER_SECS;
use crate::engine::EngineError;

/// Why the data-plane server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum DataPlaneError {
    #[error("cannot read the data-plane bearer token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data-plane bearer token file {path} is empty (or only whitespace): put the token in it (e.g. mount a Secret key)"
    )]
    TokenFileEmpty { path: PathBuf },
    #[error("the data-plane bearer token file {path} is not UTF-8 text")]
    TokenFileNotText { path: PathBuf },
    #[error("invalid data-plane configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot listen on {addr} for the data plane: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("data-plane server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Listen(#[from] crate::serving::ServeError),
}

/// The JSON body of every error answer: `{"error": "...", "field": "..."}`.
///
/// `field` names the offending input (a JSON path such as `events[3].profileId`, a query
/// parameter or a path segment) when there is one; batch errors also carry the item `index`.
/// (A batch is ingested in one transaction: one that fails wrote nothing, so there is no
/// count of what was ingested before the failure.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    pub error: String,
    /// The offending input: a JSON path (`events[3].profileId`), a query parameter or a path
    /// segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Batch item at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// An error answer: a status, a JSON [`ErrorBody`] and the headers that go with the status
/// (`WWW-Authenticate` on 401, `Retry-After` on 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    www_authenticate: Option<&'static str>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                field: None,
                index: None,
            },
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// 400 about one input field.
    pub fn bad_field(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error).with_field(field)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn with_index(mut self, index: usize) -> Self {
        self.body.index = Some(index);
        self
    }

    /// 401 asking for a bearer token.
    pub fn unauthorized(error: &str, www_authenticate: &'static str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, error);
        e.www_authenticate = Some(www_authenticate);
        e
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(error: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, error);
        e.retry_after = Some(RETRY_AFTER_SECS);
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if let Some(v) = self.www_authenticate {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Maps an engine failure to an answer.
///
/// - `NotFound` → 404; `NoDefinition`, `IllegalTransition` → 409; `ResyncRequired` → 410.
/// - Validation-type errors (definition, duration, CEL, schedule, destination, config) → 400
///   with the engine's message (it names the journey field at fault). Through the data plane
///   they come from a journey's stored definition, not from the request; 400 says "retrying
///   the same request will not help".
/// - SQLite busy/locked → 503 with `Retry-After` (another writer holds the database).
/// - Other storage, corrupt data, JSON and task failures → 500 with a generic message; the
///   details go to the operator's log only.
pub fn engine_error(e: EngineError) -> ApiError {
    use EngineError as E;
    match &e {
        E::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        E::NoDefinition { .. } | E::IllegalTransition { .. } => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        E::ResyncRequired { .. } => ApiError::new(StatusCode::GONE, e.to_string()),
        E::RevisionConflict { .. } | E::WrongCluster { .. } => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        E::Unavailable(_) => ApiError::unavailable(e.to_string()),
        E::InvalidDefinition(_)
        | E::InvalidDuration { .. }
        | E::CelCompile { .. }
        | E::CelEval { .. }
        | E::InvalidSchedule { .. }
        | E::UnknownDestination { .. }
        | E::InvalidConfig(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        E::Store(_) if e.is_busy() => {
            tracing::warn!(error = %e, "engine store busy");
            ApiError::unavailable("the engine's store is busy; retry later")
        }
        E::Store(_) | E::Corrupt { .. } | E::Json { .. } | E::Task(_) => {
            tracing::error!(error = %e, "engine failure");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "engine failure; see the operator's log",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_statuses() {
        let s = |e| engine_error(e).status;
        assert_eq!(
            s(EngineError::NotFound("a/b".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            s(EngineError::NoDefinition { key: "a/b".into() }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            s(EngineError::InvalidDefinition("x".into())),
            StatusCode::BAD_REQUEST
        );
        let store = |busy| {
            EngineError::Store(journey_store::StoreError::Backend {
                context: "t",
                source: "database is locked".into(),
                busy,
            })
        };
        let e = engine_error(store(true));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(RETRY_AFTER_SECS));
        let e = engine_error(store(false));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.body.error.contains("t:"), "no internals in the body");
        assert_eq!(
            s(EngineError::Task("panicked".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
