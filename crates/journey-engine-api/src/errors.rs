//! One mapping between the engine's errors and the wire: the status and [`ErrorCode`] the
//! server answers for each [`EngineError`], and the [`EngineError`] the client rebuilds from an
//! answer, so a caller branches on the same error whether the engine is embedded or remote.

use axum::http::StatusCode;
use journey_engine::EngineError;
use journey_model::lifecycle::{Lock, Rule};

use crate::v1::{ErrorBody, ErrorCode};

impl ErrorCode {
    /// The HTTP status that carries this code.
    pub fn status(self) -> StatusCode {
        use ErrorCode as C;
        match self {
            C::InvalidRequest => StatusCode::BAD_REQUEST,
            C::Unauthorized => StatusCode::UNAUTHORIZED,
            C::Forbidden => StatusCode::FORBIDDEN,
            C::NotFound => StatusCode::NOT_FOUND,
            C::IllegalTransition
            | C::ChangeRequiresPause
            | C::JourneyStopped
            | C::NoDefinition
            | C::RevisionConflict
            | C::WrongCluster => StatusCode::CONFLICT,
            C::ResyncRequired => StatusCode::GONE,
            C::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            C::InvalidDefinition | C::UnknownDestination => StatusCode::UNPROCESSABLE_ENTITY,
            C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the same request can succeed later without being changed.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::Internal)
    }
}

/// The code of a refused lifecycle change, by the rule that refused it.
pub fn rule_code(rule: Rule) -> ErrorCode {
    match rule {
        Rule::Transition => ErrorCode::IllegalTransition,
        Rule::Lock(Lock::StoppedFrozen) => ErrorCode::JourneyStopped,
        Rule::Lock(Lock::GlobalFilterNeedsPause | Lock::EntryExitNeedPause) => {
            ErrorCode::ChangeRequiresPause
        }
    }
}

/// A field path at the start of an engine message (`steps[0].wait.duration: …`).
fn leading_path(message: &str) -> Option<String> {
    let (head, _) = message.split_once(": ")?;
    let is_path = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_'));
    is_path.then(|| head.to_string())
}

/// The answer for an engine error. Storage and internal failures are logged here, with their
/// details, and answered without them.
pub fn to_wire(e: &EngineError) -> ErrorBody {
    use EngineError as E;
    let body = |code, field: Option<String>| ErrorBody {
        code,
        error: e.to_string(),
        field,
        rule: None,
    };
    match e {
        E::IllegalTransition { rule, why, .. } => ErrorBody {
            rule: Some(why.clone()),
            ..body(rule_code(*rule), Some("lifecycle.state".into()))
        },
        E::InvalidDefinition(message) => body(
            ErrorCode::InvalidDefinition,
            leading_path(message).map(|p| format!("definition.{p}")),
        ),
        E::InvalidDuration { .. }
        | E::CelCompile { .. }
        | E::CelEval { .. }
        | E::InvalidSchedule { .. }
        | E::InvalidConfig(_) => body(ErrorCode::InvalidDefinition, None),
        E::UnknownDestination { .. } => body(ErrorCode::UnknownDestination, None),
        E::NoDefinition { .. } => body(ErrorCode::NoDefinition, None),
        E::NotFound(_) => body(ErrorCode::NotFound, None),
        E::RevisionConflict { .. } => {
            body(ErrorCode::RevisionConflict, Some("expectedRevision".into()))
        }
        E::ResyncRequired { .. } => body(ErrorCode::ResyncRequired, Some("since".into())),
        E::Unavailable(_) => body(ErrorCode::Unavailable, None),
        E::WrongCluster { .. } => body(
            ErrorCode::WrongCluster,
            Some("header.journey-cluster-id".into()),
        ),
        E::Store(_) if e.is_busy() => {
            tracing::warn!(error = %e, "engine store busy");
            ErrorBody {
                error: "the engine's store is busy; retry later".into(),
                ..body(ErrorCode::Unavailable, None)
            }
        }
        E::Store(_) | E::Corrupt { .. } | E::Json { .. } | E::Task(_) => {
            tracing::error!(error = %e, "engine failure");
            ErrorBody {
                error: "engine failure; see the engine's log".into(),
                ..body(ErrorCode::Internal, None)
            }
        }
    }
}

/// The engine error an answer stands for (the client side of [`to_wire`]).
pub fn from_wire(key: &str, body: ErrorBody) -> EngineError {
    use ErrorCode as C;
    let ErrorBody {
        code, error, rule, ..
    } = body;
    match code {
        C::IllegalTransition | C::ChangeRequiresPause | C::JourneyStopped => {
            let rule_kind = match code {
                C::JourneyStopped => Rule::Lock(Lock::StoppedFrozen),
                C::ChangeRequiresPause if error.contains("globalFilter") => {
                    Rule::Lock(Lock::GlobalFilterNeedsPause)
                }
                C::ChangeRequiresPause => Rule::Lock(Lock::EntryExitNeedPause),
                _ => Rule::Transition,
            };
            EngineError::IllegalTransition {
                key: key.to_string(),
                from: String::new(),
                to: String::new(),
                rule: rule_kind,
                why: rule.unwrap_or(error),
            }
        }
        C::InvalidDefinition | C::UnknownDestination | C::InvalidRequest | C::PayloadTooLarge => {
            EngineError::InvalidDefinition(error)
        }
        C::WrongCluster => {
            // The message quotes both ids: `serves cluster "a", not "b": …`.
            let quoted: Vec<&str> = error.split('"').collect();
            EngineError::WrongCluster {
                serving: quoted.get(1).copied().unwrap_or_default().to_string(),
                asked: quoted.get(3).copied().unwrap_or_default().to_string(),
            }
        }
        C::NoDefinition => EngineError::NoDefinition {
            key: key.to_string(),
        },
        C::NotFound => EngineError::NotFound(key.to_string()),
        // Only a caller that sent `expectedRevision` gets it; it must read again before
        // retrying, which the message says.
        C::RevisionConflict => EngineError::Unavailable(error),
        C::ResyncRequired => EngineError::ResyncRequired {
            since: -1,
            oldest: -1,
            head: -1,
        },
        C::Unauthorized | C::Forbidden | C::Unavailable | C::Internal => {
            EngineError::Unavailable(format!("{code:?}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_error_and_a_status() {
        for code in [
            ErrorCode::IllegalTransition,
            ErrorCode::InvalidDefinition,
            ErrorCode::ChangeRequiresPause,
            ErrorCode::JourneyStopped,
            ErrorCode::UnknownDestination,
            ErrorCode::NoDefinition,
            ErrorCode::NotFound,
            ErrorCode::RevisionConflict,
            ErrorCode::ResyncRequired,
            ErrorCode::InvalidRequest,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::WrongCluster,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert!(code.status().is_client_error() || code.status().is_server_error());
            let _ = from_wire(
                "ns/j",
                ErrorBody {
                    code,
                    error: "x".into(),
                    field: None,
                    rule: None,
                },
            );
        }
    }

    #[test]
    fn a_refused_transition_keeps_its_rule_message_across_the_wire() {
        let e = EngineError::IllegalTransition {
            key: "ns/j".into(),
            from: "Live".into(),
            to: "Draft".into(),
            rule: Rule::Transition,
            why: "a published journey cannot return to Draft".into(),
        };
        let wire = to_wire(&e);
        assert_eq!(wire.code, ErrorCode::IllegalTransition);
        match from_wire("ns/j", wire) {
            EngineError::IllegalTransition { why, rule, .. } => {
                assert_eq!(why, "a published journey cannot return to Draft");
                assert_eq!(rule, Rule::Transition);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn engine_messages_name_their_field() {
        let e = EngineError::InvalidDefinition("steps[0].wait.duration: bad".into());
        assert_eq!(
            to_wire(&e).field.as_deref(),
            Some("definition.steps[0].wait.duration")
        );
    }
}
