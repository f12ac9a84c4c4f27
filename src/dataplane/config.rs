//! Configuration of the data-plane HTTP server: where it listens, where the bearer token
//! lives, and the request limits.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Default listen address: every IPv4 interface, port 8090 (plain HTTP, see the module docs).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8090";
/// Default maximum request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default maximum number of events in one batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 500;
/// Default and maximum `limit` of `GET /v1/deliveries`.
pub const DEFAULT_DELIVERIES_LIMIT: i64 = 100;
pub const MAX_DELIVERIES_LIMIT: i64 = 1000;
/// Default and maximum `limit` of `GET /v1/journeys/{namespace}/{name}/runs`.
pub const DEFAULT_RUNS_LIMIT: i64 = 50;
pub const MAX_RUNS_LIMIT: i64 = 1000;
pub const DEFAULT_ENROLLMENTS_LIMIT: i64 = 100;
pub const MAX_ENROLLMENTS_LIMIT: i64 = 1000;
/// Longest accepted profile id and event name, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Seconds a standby replica (or a busy store) asks clients to wait (`Retry-After`).
/// Longest candidate global filter (the Journey schema's `globalFilter` maxLength).
pub const MAX_FILTER_BYTES: usize = 4096;

pub const RETRY_AFTER_SECS: u64 = 5;

/// Everything `journey-operator run` needs to serve the data plane.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port; see [`super::DataPlaneServer::local_addr`]).
    pub listen: SocketAddr,
    /// File holding the bearer token clients must present (e.g. a mounted Secret key).
    /// Read once at start; leading and trailing whitespace is ignored.
    pub token_file: PathBuf,
    /// Request limits.
    pub limits: Limits,
    /// TLS, or plain HTTP.
    pub transport: crate::serving::Transport,
    /// The engine API's token file, when the same process serves it: a request that presents
    /// that token is refused with 403 (and a clear reason) instead of 401.
    pub engine_token_file: Option<PathBuf>,
    /// Counts the answered requests (`journey_http_requests_total{api="data-plane"}`).
    pub metrics: Option<std::sync::Arc<crate::controller::metrics::Metrics>>,
}

impl DataPlaneConfig {
    /// A configuration with the default [`Limits`], serving plain HTTP (tests, loopback).
    pub fn new(listen: SocketAddr, token_file: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            token_file: token_file.into(),
            limits: Limits::default(),
            transport: crate::serving::Transport::PlainHttp,
            engine_token_file: None,
            metrics: None,
        }
    }
}

/// Request limits of the data-plane router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body in bytes (larger bodies answer 413). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most events accepted by `POST /v1/events/batch`. Default 500.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
        }
    }
}

impl Limits {
    /// Checks the limits are usable (both positive).
    pub fn validate(&self) -> Result<(), super::DataPlaneError> {
        if self.max_body_bytes == 0 {
            return Err(super::DataPlaneError::InvalidConfig(
                "max_body_bytes must be positive".into(),
            ));
        }
        if self.max_batch_events == 0 {
            return Err(super::DataPlaneError::InvalidConfig(
                "max_batch_events must be positive".into(),
            ));
        }
        Ok(())
    }
}
