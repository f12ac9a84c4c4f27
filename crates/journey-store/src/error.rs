//! The store's errors: what a backend reports, with the one fact the engine acts on (another
//! writer holds the store: retry in a moment) decided by the backend that knows its codes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend failed (I/O, constraint, lock); `busy`: another writer holds the store and
    /// the same call can succeed in a moment.
    #[error("storage error during {context}: {source}")]
    Backend {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        busy: bool,
    },
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
    /// The store cannot serve this process any more (a poisoned connection lock).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Another writer holds the store: the same call can succeed in a moment.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Backend { busy: true, .. })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
