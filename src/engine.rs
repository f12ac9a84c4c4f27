//! The engine as the operator reaches it: the engine crate (which must never know Kubernetes)
//! and the SQLite store crate it opens the engine on.

pub use journey_engine::*;
pub use journey_store_sqlite::{SqliteOptions, SqliteStore};
