//! The engine's data plane over HTTP: real systems feed journeys (events, profiles) and read
//! deliveries and run history. `journey-operator run` serves it on its own port.
//!
//! | method | path | answers |
//! | --- | --- | --- |
//! | `POST` | `/v1/events` | 202 `{"accepted":1}` |
//! | `POST` | `/v1/events/batch` | 202 `{"accepted":n}` (all items validated first, ingested in one transaction) |
//! | `PUT` | `/v1/profiles/{profileId}` | 204 |
//! | `GET` | `/v1/deliveries?journey=ns/name&profile=id&limit=n` | 200 `{"deliveries":[...]}` |
//! | `GET` | `/v1/journeys/{namespace}/{name}/runs?limit=n` | 200 `{"runs":[...]}`, 404 |
//! | `POST` | `/v1/journeys/{namespace}/{name}/filter-matches` | 200 `{"inFlight":n,"matching":m,"evaluationErrors":e}`, 404 (read-only) |
//! | `GET` | `/openapi.json` | 200, public (no token) |
//!
//! Every `/v1` endpoint needs `Authorization: Bearer <token>` (401 with `WWW-Authenticate:
//! Bearer` otherwise) and answers 503 with `Retry-After` while this replica does not hold the
//! leader lease (the `serving` gate is `false`), so two replicas never both write. Errors are
//! JSON `{"error": "...", "field": "..."}`: 400 malformed input (nothing is changed), 404
//! unknown route or journey, 405 wrong method, 413 body too large, 415 not JSON, 5xx only for
//! engine failures.
//!
//! TLS with rustls (`--tls-cert-file`/`--tls-key-file`, reloaded when the files change), or
//! plain HTTP only with `--insecure-plain-http`. The bearer token comes from a file (a mounted
//! Secret) and is read again when it changes; the engine API's token is refused with 403.
//!
//! ```no_run
//! use std::sync::Arc;
//! use journey_operator::dataplane::{DataPlaneConfig, DataPlaneServer};
//! use journey_operator::engine::{DataPlane, Engine, EngineConfig, SqliteStore, SystemClock};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(
//!     SqliteStore::open("/var/lib/journey/engine.db")?,
//!     Arc::new(SystemClock),
//!     EngineConfig::default(),
//! )?;
//! // `true` while this replica holds the leader lease (the leader election flips it).
//! let (serving_tx, serving) = tokio::sync::watch::channel(false);
//! let config = DataPlaneConfig::new(
//!     "0.0.0.0:8090".parse()?,
//!     "/etc/journey-operator/dataplane/token",
//! );
//! let server = DataPlaneServer::bind(&config, Arc::new(engine.clone()), serving).await?;
//! tracing::info!(addr = %server.local_addr(), "data plane listening");
//! // Any future ends it; with a tokio_util CancellationToken: `token.cancelled_owned()`.
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # drop(serving_tx); Ok(()) }
//! ```

mod auth;
mod config;
mod error;
mod input;
mod openapi;
mod routes;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth::{BearerToken, read_token_file};
pub use config::{
    DEFAULT_DELIVERIES_LIMIT, DEFAULT_LISTEN, DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_RUNS_LIMIT, DataPlaneConfig, Limits, MAX_DELIVERIES_LIMIT, MAX_FILTER_BYTES,
    MAX_ID_BYTES, MAX_RUNS_LIMIT, RETRY_AFTER_SECS,
};
pub use error::{ApiError, DataPlaneError, ErrorBody, engine_error};
pub use openapi::document as openapi_document;
pub use routes::ROUTES;

use crate::engine::DataPlane;

/// The data-plane router: the endpoints above over `dataplane`, gated by `serving` (`false` =
/// standby: every `/v1` endpoint answers 503 with `Retry-After`).
///
/// Use it to serve on a listener of your own or to merge it into another router; otherwise
/// [`DataPlaneServer`] does the binding and serving.
pub fn router(
    dataplane: Arc<dyn DataPlane>,
    serving: watch::Receiver<bool>,
    token: BearerToken,
    engine_token: Option<BearerToken>,
    metrics: Option<Arc<crate::controller::metrics::Metrics>>,
    limits: Limits,
) -> Router {
    routes::build(dataplane, serving, token, engine_token, metrics, limits)
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// the requests in flight finish (graceful shutdown). With a `CancellationToken`, pass
/// `token.cancelled_owned()`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DataPlaneError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(DataPlaneError::Serve)
}

/// A bound data-plane server: the tokens are loaded, the limits checked, the port taken and
/// the certificate loaded, so configuration errors surface before anything is served.
pub struct DataPlaneServer {
    bound: crate::serving::Bound,
    router: Router,
}

impl std::fmt::Debug for DataPlaneServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlaneServer")
            .field("addr", &self.bound.local_addr())
            .finish_non_exhaustive()
    }
}

impl DataPlaneServer {
    /// Loads the bearer token from `config.token_file` (error when missing or empty), checks
    /// the limits and binds `config.listen`.
    pub async fn bind(
        config: &DataPlaneConfig,
        dataplane: Arc<dyn DataPlane>,
        serving: watch::Receiver<bool>,
    ) -> Result<Self, DataPlaneError> {
        config.limits.validate()?;
        let token = BearerToken::from_file(&config.token_file)?;
        let engine_token = match &config.engine_token_file {
            Some(path) => Some(BearerToken::from_file(path)?),
            None => None,
        };
        let bound =
            crate::serving::Bound::bind("data plane", config.listen, &config.transport).await?;
        Ok(Self {
            bound,
            router: router(
                dataplane,
                serving,
                token,
                engine_token,
                config.metrics.clone(),
                config.limits,
            ),
        })
    }

    /// The address actually bound (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// Serves until `shutdown` completes (graceful: requests in flight finish).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DataPlaneError> {
        self.bound
            .serve(self.router, shutdown)
            .await
            .map_err(DataPlaneError::Serve)
    }
}
