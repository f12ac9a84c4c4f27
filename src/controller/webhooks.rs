//! Webhook deliveries over HTTP: the engine decides what is due (rate limits, backoff, pause
//! holds); this transport POSTs it, and the sender loop runs it while this replica leads.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use reqwest::redirect::Policy;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::warn;

use super::metrics::Metrics;
use crate::engine::Engine;
use crate::engine::store::Store;
use crate::engine::webhook::{
    CredentialError, RateLimiter, SendOutcome, WebhookRequest, WebhookTransport,
};

/// HTTP(S) POST of the delivery's JSON with an `Idempotency-Key` header. Redirects are
/// not followed: a destination is exactly the URL the operator configured. The engine's sender
/// is synchronous and runs on the blocking pool, so each post is driven on the runtime from
/// there.
pub struct HttpTransport {
    client: Client,
    runtime: Handle,
}

impl HttpTransport {
    /// Must be called within the tokio runtime that will drive the requests.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = crate::tls::http_client_builder()
            .timeout(timeout)
            .redirect(Policy::none())
            .build()?;
        Ok(HttpTransport {
            client,
            runtime: Handle::current(),
        })
    }
}

impl WebhookTransport for HttpTransport {
    fn post(&self, request: &WebhookRequest) -> SendOutcome {
        let mut call = self
            .client
            .post(&request.url)
            .header("Idempotency-Key", &request.idempotency_key)
            .json(&request.body);
        if let Some(token) = &request.credentials {
            call = call.bearer_auth(token);
        }
        match self.runtime.block_on(call.send()) {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    SendOutcome::Delivered
                } else if status.as_u16() == 408
                    || status.as_u16() == 429
                    || status.is_server_error()
                {
                    SendOutcome::Retry(format!("HTTP {status}"))
                } else {
                    SendOutcome::Permanent(format!("HTTP {status}"))
                }
            }
            Err(e) => SendOutcome::Retry(e.to_string()),
        }
    }
}

/// Sends due webhook deliveries until aborted: recovers the outbox first (deliveries that were
/// being sent when the process died go out again under the same idempotency key). Deliveries
/// not sent for unreadable credentials are counted, and told to `credential_failures` when
/// given (the embedded controller turns them into Warning events on the journey).
pub fn spawn_sender<S: Store>(
    engine: Engine<S>,
    transport: Arc<dyn WebhookTransport>,
    idle: Duration,
    metrics: Arc<Metrics>,
    credential_failures: Option<tokio::sync::mpsc::UnboundedSender<CredentialError>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let recovering = engine.clone();
        match tokio::task::spawn_blocking(move || recovering.recover_webhook_outbox()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(%e, "webhook outbox recovery failed"),
            Err(e) => warn!(%e, "webhook outbox recovery task failed"),
        }
        let limiter = Arc::new(RateLimiter::default());
        loop {
            let (e, t, l) = (engine.clone(), transport.clone(), limiter.clone());
            let pass =
                tokio::task::spawn_blocking(move || e.send_webhooks_once(t.as_ref(), &l, 500))
                    .await;
            let busy = match pass {
                Ok(Ok(report)) => {
                    for failure in report.credential_errors {
                        metrics.record_credential_error(&failure.destination);
                        if let Some(tx) = &credential_failures {
                            let _ = tx.send(failure);
                        }
                    }
                    metrics.record_webhook_attempts(&report.attempts);
                    report.sent + report.retried + report.failed > 0
                }
                Ok(Err(e)) => {
                    warn!(%e, "webhook sender pass failed");
                    false
                }
                Err(e) => {
                    warn!(%e, "webhook sender task failed");
                    false
                }
            };
            if !busy {
                tokio::time::sleep(idle).await;
            }
        }
    })
}
