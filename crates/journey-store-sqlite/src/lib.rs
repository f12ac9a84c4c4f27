//! journey-operator's SQLite store, the engine's embedded default: one file, WAL journal, one
//! writer connection and one reader connection. It implements `journey_store::Store` and runs
//! `journey-store-conformance` in its tests.

mod error;
mod feed;
pub mod migrations;
mod store;

pub use store::*;
