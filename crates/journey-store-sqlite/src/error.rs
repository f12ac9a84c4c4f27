//! rusqlite's errors as the store's: the context of the failed step, and whether another
//! writer held the database (the engine retries those in a moment).

use journey_store::{Result, StoreError};

/// Attaches a context string to a rusqlite error.
pub(crate) trait SqlCtx<T> {
    fn ctx(self, context: &'static str) -> Result<T>;
}

impl<T> SqlCtx<T> for std::result::Result<T, rusqlite::Error> {
    fn ctx(self, context: &'static str) -> Result<T> {
        self.map_err(|source| backend(context, source))
    }
}

pub(crate) fn backend(context: &'static str, source: rusqlite::Error) -> StoreError {
    let busy = matches!(
        source.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    StoreError::Backend {
        context,
        source: Box::new(source),
        busy,
    }
}

pub(crate) fn json_err(context: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |source| StoreError::Json { context, source }
}
