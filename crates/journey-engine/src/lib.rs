//! The journey engine: a durable runtime that runs journeys (no Kubernetes
//! imports; the controller translates between the Journey resource and these
//! types).
//!
//! ```no_run
//! use std::sync::Arc;
//! use journey_engine::{Engine, EngineConfig, SystemClock};
//! use journey_store_sqlite::SqliteStore;
//! let engine = Engine::new(
//!     SqliteStore::open("/var/lib/journey/engine.db").expect("open"),
//!     Arc::new(SystemClock),
//!     EngineConfig::default(),
//! ).expect("engine");
//! ```

pub mod api;
pub mod clock;
mod control;
pub mod core;
pub mod credentials;
pub mod declare;
pub mod definition;
mod defs;
pub mod destinations;
pub mod hold;
mod ingest;
mod pause_mode;
mod render;
mod scheduler;
pub mod template;
/// The one duration parser lives in the model crate.
pub use journey_model::duration;
pub mod error;
pub mod expr;
pub mod feed;
pub mod lifecycle;
pub mod schedule;
pub mod stats;
/// The store contract (its own crate, so backends depend on it and not on the engine).
pub use journey_store as store;
mod wakes;
pub mod webhook;

pub use api::{BoxFuture, Change, ChangeCause, DataPlane, JourneyEngine, NewEvent};
pub use clock::{Clock, Millis, SystemClock, VirtualClock};
pub use core::{Engine, EngineConfig, EnrollmentView, TickReport};
pub use declare::{Declaration, Declared, RequestResult, Requests};
pub use definition::{Definition, OnExpiry, PauseEntries, PauseMode, PauseWaits};
pub use destinations::{DestinationConfig, WebhookDestination};
pub use error::{EngineError, Result};
pub use feed::{FeedChange, FeedPage};
pub use lifecycle::{
    Actor, AppliedVersion, DesiredLifecycle, FilterMatches, Hold, LifecycleCommand, PauseOptions,
    Phase, ProfileCounts, RequestKind, RequestOutcome, StatusSnapshot,
};
pub use stats::EngineStats;
pub use store::{Delivery, DeliveryStatus, EnrollmentState, Store, StoreTx};
