//! Serving the v1 engine API (`journey_engine_api`) from this process: its own listener, its
//! own credential (`--engine-token-file`, distinct from the data-plane tokens, so a data feeder
//! can never drive the lifecycle), TLS like every listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use journey_engine_api::server::{Authorization, Authorizer, ClockAdvancer, ServerOptions};
use tokio::sync::watch;

use crate::dataplane::{BearerToken, DataPlaneError};
use crate::engine::JourneyEngine;
use crate::serving::{Bound, ServeError, Transport};

/// Default address of the engine API.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8091";

#[derive(Clone)]
pub struct EngineApiConfig {
    pub listen: SocketAddr,
    pub token_file: PathBuf,
    pub transport: Transport,
    /// The data plane's token file, when this process serves it too: that token is refused
    /// here with 403.
    pub data_plane_token_file: Option<PathBuf>,
    /// `POST /v1/test/clock/advance`, only for an engine on a virtual clock.
    pub clock: Option<ClockAdvancer>,
    /// Counts the answered requests (`journey_http_requests_total{api="engine"}`).
    pub metrics: Option<Arc<crate::controller::metrics::Metrics>>,
}

impl std::fmt::Debug for EngineApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineApiConfig")
            .field("listen", &self.listen)
            .field("token_file", &self.token_file)
            .field("transport", &self.transport)
            .field("virtual_clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineApiError {
    #[error("engine API token: {0}")]
    Token(#[from] DataPlaneError),
    #[error(
        "the engine API token ({engine}) and the data-plane token ({data_plane}) are the same: give the engine API its own credential"
    )]
    SameToken {
        engine: PathBuf,
        data_plane: PathBuf,
    },
    #[error(transparent)]
    Listen(#[from] ServeError),
    #[error("engine API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

fn authorizer(engine: BearerToken, data_plane: Option<BearerToken>) -> Authorizer {
    Arc::new(move |presented: Option<&str>| {
        let Some(token) = presented else {
            return Authorization::Unauthorized(
                "missing Authorization: Bearer <engine token>".into(),
            );
        };
        match engine.check(token) {
            Ok(true) => Authorization::Allowed,
            Ok(false) if data_plane.as_ref().is_some_and(|d| d.matches(token)) => {
                Authorization::Forbidden(
                    "this is the data-plane token: it feeds events and profiles and cannot drive the lifecycle; the engine API takes the engine token (--engine-token-file)".into(),
                )
            }
            Ok(false) => Authorization::Unauthorized("invalid engine token".into()),
            Err(e) => {
                tracing::error!(error = %e, "the engine API token file cannot be read");
                Authorization::Unavailable(
                    "the engine API cannot read its token file; see the engine's log".into(),
                )
            }
        }
    })
}

/// The engine API, bound and ready to serve.
pub struct EngineApiServer {
    bound: Bound,
    router: axum::Router,
}

impl EngineApiServer {
    pub async fn bind(
        config: &EngineApiConfig,
        engine: Arc<dyn JourneyEngine>,
        serving: watch::Receiver<bool>,
    ) -> Result<Self, EngineApiError> {
        let token = BearerToken::from_file(&config.token_file)?;
        let data_plane = match &config.data_plane_token_file {
            Some(path) => {
                let dp = BearerToken::from_file(path)?;
                let engine_text = crate::dataplane::read_token_file(&config.token_file)?;
                if dp.matches(&engine_text) {
                    return Err(EngineApiError::SameToken {
                        engine: config.token_file.clone(),
                        data_plane: path.clone(),
                    });
                }
                Some(dp)
            }
            None => None,
        };
        let bound = Bound::bind("engine API", config.listen, &config.transport).await?;
        let router = journey_engine_api::router(
            engine,
            ServerOptions {
                authorizer: authorizer(token, data_plane),
                observer: config.metrics.clone().map(|metrics| {
                    Arc::new(move |route: &str, status: u16| {
                        metrics.record_http("engine", route, status)
                    }) as journey_engine_api::server::RequestObserver
                }),
                serving,
                clock: config.clock.clone(),
            },
        );
        Ok(EngineApiServer { bound, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), EngineApiError> {
        self.bound
            .serve(self.router, shutdown)
            .await
            .map_err(EngineApiError::Serve)
    }
}
