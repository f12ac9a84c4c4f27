//! Bearer-token authentication: the token is read from a file (a mounted Secret key), read
//! again when the file changes (a rotated Secret takes effect without a restart), and compared
//! in constant time. The token never appears in logs or `Debug` output; only its digest is
//! kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// Where the token comes from when it follows a file.
    file: Option<Arc<TokenFile>>,
}

/// A token file and the digest of what it said when last read.
struct TokenFile {
    path: PathBuf,
    state: Mutex<Watched>,
}

struct Watched {
    checked: Instant,
    stamp: Option<journey_engine::credentials::Stamp>,
    /// `None` after a read failed: nothing is accepted until the file is readable again.
    digest: Option<[u8; 32]>,
}

impl TokenFile {
    /// The digest of the file's token, read again when the file changed (looked at at most
    /// once a second); an error when the file cannot be read now.
    fn digest_at(&self, now: Instant) -> Result<[u8; 32], DataPlaneError> {
        use journey_engine::credentials::{RECHECK, Stamp};
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(digest) = w.digest {
            if now.duration_since(w.checked) < RECHECK {
                return Ok(digest);
            }
            if let Ok(stamp) = Stamp::of(&self.path)
                && w.stamp.as_ref() == Some(&stamp)
            {
                w.checked = now;
                return Ok(digest);
            }
        }
        w.checked = now;
        w.digest = None;
        w.stamp = Stamp::of(&self.path).ok();
        let text = read_token_file(&self.path)?;
        let digest = Sha256::digest(text.as_bytes()).into();
        w.digest = Some(digest);
        Ok(digest)
    }
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
            file: None,
        })
    }

    /// Reads the token from a file (e.g. a Secret mounted into the pod), with a clear error
    /// when the file is missing, unreadable, not text or empty. The token follows the file:
    /// when it changes on disk, the new token is the one accepted (checked at most once a
    /// second); while it cannot be read, no token is.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, DataPlaneError> {
        let file = TokenFile {
            path: path.as_ref().to_path_buf(),
            state: Mutex::new(Watched {
                checked: Instant::now(),
                stamp: None,
                digest: None,
            }),
        };
        let digest = file.digest_at(Instant::now())?;
        Ok(Self {
            digest,
            file: Some(Arc::new(file)),
        })
    }

    /// The digest to compare with now: the fixed one, or the file's current one.
    fn current_at(&self, now: Instant) -> Result<[u8; 32], DataPlaneError> {
        match &self.file {
            None => Ok(self.digest),
            Some(file) => file.digest_at(now),
        }
    }

    /// Constant-time check of a presented token: both sides are hashed to 32 bytes first,
    /// so neither the content nor the length of the secret leaks through timing. A token
    /// file that cannot be read now accepts nothing.
    pub fn matches(&self, presented: &str) -> bool {
        self.check_at(presented, Instant::now()).unwrap_or(false)
    }

    /// [`BearerToken::matches`], with the reason when the token file cannot be read.
    pub fn check(&self, presented: &str) -> Result<bool, DataPlaneError> {
        self.check_at(presented, Instant::now())
    }

    fn check_at(&self, presented: &str, now: Instant) -> Result<bool, DataPlaneError> {
        let expected = self.current_at(now)?;
        let other: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let diff = expected
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        Ok(std::hint::black_box(diff) == 0)
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
    match presented.map(|token| (token, state.token.check_at(token, Instant::now()))) {
        Some((_, Ok(true))) => next.run(req).await,
        Some((token, Ok(false))) => {
            if state
                .engine_token
                .as_ref()
                .is_some_and(|engine| engine.matches(token))
            {
                return ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "this is the engine API's token: the data plane takes the data-plane token (a data feeder never holds the engine credential)",
                )
                .into_response();
            }
            ApiError::unauthorized("invalid bearer token", CHALLENGE_INVALID).into_response()
        }
        Some((_, Err(e))) => {
            // A server-side problem (a Secret being rotated, a broken mount): the client is
            // not at fault, and nothing is accepted until the file is readable again.
            tracing::error!(error = %e, "the data-plane token file cannot be read");
            ApiError::unavailable(
                "the data plane cannot read its token file; see the operator's log",
            )
            .into_response()
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

    #[test]
    fn a_token_file_is_followed_when_it_changes_and_fails_closed() {
        use journey_engine::credentials::RECHECK;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").expect("write");
        let token = BearerToken::from_file(&path).expect("token");
        let start = Instant::now();
        let later = |n: u32| start + RECHECK * n + std::time::Duration::from_millis(1);
        assert_eq!(token.check_at("first", start).ok(), Some(true));

        // A rotation writes a new file and swaps it in, as a Secret mount does.
        let next = dir.path().join("token.next");
        std::fs::write(&next, "second").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        assert_eq!(token.check_at("second", later(1)).ok(), Some(true));
        assert_eq!(token.check_at("first", later(1)).ok(), Some(false));

        std::fs::remove_file(&path).expect("remove");
        let e = token.check_at("second", later(2)).expect_err("unreadable");
        assert!(matches!(e, DataPlaneError::TokenFile { .. }), "{e}");
        assert!(!token.matches("second"), "nothing is accepted meanwhile");
        std::fs::write(&path, "third").expect("write");
        assert_eq!(token.check_at("third", later(3)).ok(), Some(true));
    }
}
