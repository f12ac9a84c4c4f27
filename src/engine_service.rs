//! `journey-operator engine`: the engine in its own process, serving the v1 engine API and the
//! data plane, for controllers (`run --engine-url`) and tools that share it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::controller::metrics::Metrics;
use crate::controller::runner::{EngineSetup, RunError, open_engine, shutdown_signal};
use crate::dataplane::{DataPlaneConfig, DataPlaneServer};
use crate::engine::{BoxFuture, Clock, EngineError, SystemClock, VirtualClock};
use crate::engine_api::{EngineApiConfig, EngineApiServer};

#[derive(Debug, Clone)]
pub struct EngineServiceConfig {
    pub setup: EngineSetup,
    pub api: EngineApiConfig,
    pub data_plane: Option<DataPlaneConfig>,
    pub ops_addr: Option<SocketAddr>,
    /// Test only: the engine's clock stands still unless `POST /v1/test/clock/advance` moves it.
    pub virtual_clock: bool,
}

/// Runs the engine service until SIGTERM or Ctrl-C.
pub async fn serve(mut config: EngineServiceConfig) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let (serving_tx, serving) = watch::channel(false);
    let stop = CancellationToken::new();
    let virtual_clock = config
        .virtual_clock
        .then(|| VirtualClock::new(SystemClock.now()));
    let clock: Arc<dyn Clock> = match &virtual_clock {
        Some(v) => {
            warn!("the engine runs on a virtual clock (--virtual-clock): for tests only");
            Arc::new(v.clone())
        }
        None => Arc::new(SystemClock),
    };
    if virtual_clock.is_some() {
        // Time moves only by `POST /v1/test/clock/advance`, which runs what became due before
        // it answers: no scheduler runs in between, so tests over HTTP are deterministic.
        config.setup.scheduler_idle = None;
    }
    // No Kubernetes here: credential failures are counted and logged, not published as events.
    let (engine, tasks) = open_engine(&config.setup, clock, &metrics, None)?;
    config.api.metrics = Some(metrics.clone());
    if let Some(clock) = virtual_clock {
        let engine = engine.clone();
        let advance = move |millis: i64| -> BoxFuture<Result<i64, EngineError>> {
            clock.advance_ms(millis);
            let (engine, clock) = (engine.clone(), clock.clone());
            Box::pin(async move {
                tokio::task::spawn_blocking(move || engine.run_until_idle())
                    .await
                    .map_err(|e| EngineError::Task(e.to_string()))??;
                Ok(clock.now())
            })
        };
        config.api.clock = Some(Arc::new(advance));
    }

    if let Some(addr) = config.ops_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Ops { addr, source })?;
        let ops = crate::controller::ops::router(metrics.clone(), serving.clone());
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, ops)
                .with_graceful_shutdown(stopped)
                .await
            {
                warn!(%e, "operational endpoints stopped");
            }
        });
    }
    let api = EngineApiServer::bind(&config.api, Arc::new(engine.clone()), serving.clone())
        .await
        .map_err(|e| RunError::EngineApi(e.to_string()))?;
    info!(addr = %api.local_addr(), "engine API bound");
    let stopped = stop.clone().cancelled_owned();
    let api_task = tokio::spawn(async move {
        if let Err(e) = api.serve(stopped).await {
            warn!(%e, "engine API stopped");
        }
    });
    let mut data_plane_task = None;
    if let Some(dp) = &config.data_plane {
        let dp = DataPlaneConfig {
            metrics: Some(metrics.clone()),
            ..dp.clone()
        };
        let server = DataPlaneServer::bind(&dp, Arc::new(engine.clone()), serving.clone()).await?;
        info!(addr = %server.local_addr(), "data plane bound");
        let stopped = stop.clone().cancelled_owned();
        data_plane_task = Some(tokio::spawn(async move {
            if let Err(e) = server.serve(stopped).await {
                warn!(%e, "data plane stopped");
            }
        }));
    }
    let _ = serving_tx.send(true);
    info!("engine serving");
    shutdown_signal().await;
    info!("engine stopping");
    let _ = serving_tx.send(false);
    stop.cancel();
    let _ = api_task.await;
    if let Some(task) = data_plane_task {
        let _ = task.await;
    }
    for task in tasks {
        task.abort();
    }
    info!("engine stopped");
    Ok(())
}
