//! Bearer-token authentication: the token is read from a file (a mounted Secret key) and
//! compared in constant time. The token never appears in logs or `Debug` output.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::{ApiError, DataPlaneError};
use super::routes::AppState;

/// Reads a bearer token file (a mounted Secret key): the trimmed text, with a clear error when
/// the file is missing, unreadable, not text or empty. The server and the clients (the demo,
/// `plan --data-plane`) read the same file format through this.
pub fn read_token_file(path: &Path) -> Result<String, DataPlaneError> {
    let bytes = std::fs::read(path).map_err(|source| DataPlaneError::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| DataPlaneError::TokenFileNotText {
        path: path.to_path_buf(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(DataPlaneError::TokenFileEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

/// The bearer token clients must present. Only its SHA-256 digest is kept.
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token from its text; `None` when it is empty or only whitespace (surrounding
    /// whitespace is ignored, so a trailing newline in a file does not matter).
    pub fn new(token: &str) -> Option<Self> {
        let t = token.trim();
        if t.is_empty() {
            return None;
        }
        Some(Self {
            digest: Sha256::digest(t.as_bytes()).into(),
        })
    }

    /// Reads the token from a file (e.g. a Secret mounted into the pod), with a clear error
    /// when the file is missing, unreadable, not text or empty.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, DataPlaneError> {
        let text = read_token_file(path.as_ref())?;
        Self::new(&text).ok_or_else(|| DataPlaneError::TokenFileEmpty {
            path: path.as_ref().to_path_buf(),
        })
    }

    /// Constant-time check of a presented token: both sides are hashed to 32 bytes first,
    /// so neither the content nor the length of the secret leaks through timing.
    pub fn matches(&self, presented: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let diff = self
            .digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

const CHALLENGE: &str = "Bearer realm=\"journey-dataplane\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"journey-dataplane\", error=\"invalid_token\"";

/// Middleware: 401 with `WWW-Authenticate: Bearer` unless `Authorization: Bearer <token>`
/// carries the configured token.
pub(crate) async fn require_bearer(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return ApiError::unauthorized("missing Authorization: Bearer token", CHALLENGE)
            .into_response();
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if state.token.matches(token) => next.run(req).await,
        Some(_) => {
            ApiError::unauthorized("invalid bearer token", CHALLENGE_INVALID).into_response()
        }
        None => ApiError::unauthorized(
            "the Authorization header must be \"Bearer <token>\"",
            CHALLENGE,
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself() {
        let t = BearerToken::new("s3cret\n").expect("token");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret2"));
        assert!(!t.matches(""));
        assert!(BearerToken::new(" \n").is_none());
        assert_eq!(format!("{t:?}"), "BearerToken(<redacted>)");
    }

    #[test]
    fn token_file_errors_are_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let e = BearerToken::from_file(&missing).expect_err("missing file");
        assert!(matches!(e, DataPlaneError::TokenFile { .. }), "{e}");
        assert!(e.to_string().contains("missing"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").expect("write");
        let e = BearerToken::from_file(&empty).expect_err("empty file");
        assert!(matches!(e, DataPlaneError::TokenFileEmpty { .. }), "{e}");
        let ok = dir.path().join("token");
        std::fs::write(&ok, "abc\n").expect("write");
        assert!(BearerToken::from_file(&ok).expect("token").matches("abc"));
    }
}
