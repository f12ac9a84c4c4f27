//! Webhook delivery: the outbox sender.
//!
//! The sender claims pending webhook deliveries (status `Pending` -> `Sending`
//! in one transaction; a pause turns `Pending` into `Held` in its own
//! transaction, so nothing not yet handed to the endpoint is sent during a
//! pause), applies each destination's rate limit (token bucket), POSTs the
//! delivery as JSON with an `Idempotency-Key` header through a
//! [`WebhookTransport`], and records the outcome: `Sent`, a retry with
//! exponential backoff (1 s, 2 s, 4 s ... capped at 1 h), or `Failed` after
//! [`MAX_ATTEMPTS`] or on a permanent (4xx other than 408/429) error.
//!
//! A destination's credentials file is read once and again when it changes
//! ([`super::credentials`]); when it cannot be read the request is not sent at
//! all: the attempt is recorded with the reason and retried with backoff, so a
//! misconfigured or rotating Secret never sends a request without credentials.
//!
//! The HTTP transport is pluggable: the operator's is reqwest with rustls
//! (`controller/webhooks.rs`); tests also use an in-memory transport.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::clock::Millis;
use super::core::Engine;
use super::destinations::WebhookDestination;
use super::error::Result;
use super::render;
use super::store::{Delivery, DeliveryStatus, Store};

pub const MAX_ATTEMPTS: i64 = 10;
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// One HTTP POST.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookRequest {
    pub destination: String,
    pub url: String,
    /// Sent as the `Idempotency-Key` header.
    pub idempotency_key: String,
    /// Contents of the destination's credentials file (e.g. a bearer token), trimmed.
    pub credentials: Option<String>,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// Outcome of one attempt, as classified by the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// 2xx.
    Delivered,
    /// Network error, timeout, 408, 429 or 5xx: try again later.
    Retry(String),
    /// Other 4xx: do not retry.
    Permanent(String),
}

/// Sends one request. Implementations must not follow redirects to other hosts.
pub trait WebhookTransport: Send + Sync {
    fn post(&self, request: &WebhookRequest) -> SendOutcome;
}

/// Per-destination token buckets (capacity: one second of the rate).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Millis)>>,
}

impl RateLimiter {
    /// Takes one token for `name` at `now`; `None` rate = unlimited.
    pub fn try_take(&self, name: &str, rate: Option<u32>, now: Millis) -> bool {
        let Some(rate) = rate else {
            return true;
        };
        let rate = f64::from(rate);
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        let (tokens, last) = b.entry(name.to_string()).or_insert((rate, now));
        let elapsed = (now - *last).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn body(d: &Delivery) -> serde_json::Value {
    serde_json::json!({
        "idempotencyKey": d.idempotency_key(),
        "journeyId": d.journey_id,
        "epoch": d.epoch,
        "version": d.version,
        "step": d.step_id,
        "profileId": d.profile_id,
        "channel": d.channel,
        // The rendered message (stored at the first claim): a re-send sends the same bytes.
        "message": d.rendered.as_ref().unwrap_or(&d.message),
        "createdAt": d.created_at,
    })
}

/// Backoff before attempt `attempts + 1`.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    1000_i64.saturating_mul(1_i64 << exp).min(MAX_BACKOFF_MS)
}

/// What one sender pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Failed because the message's template could not be rendered (counted in `failed`).
    pub template_errors: usize,
    /// Claimed but not attempted because of the rate limit (back to Pending).
    pub throttled: usize,
    /// Not sent because the destination's credentials file could not be read (counted in
    /// `retried` or `failed` too).
    pub credential_errors: Vec<CredentialError>,
    /// Every delivery this pass settled or retried, with how long its request took.
    pub attempts: Vec<Attempt>,
}

/// A delivery not sent because its destination's credentials could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    /// The journey's key (`namespace/name`), when it still exists.
    pub journey: Option<String>,
    pub destination: String,
    /// Why the file could not be used (unreadable, empty), as the delivery records it.
    pub reason: String,
}

/// What became of one delivery in a sender pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Back to Pending with a backoff.
    Retried,
    /// Given up (attempts exhausted, a permanent error, or the destination removed).
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retried => "retried",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub destination: String,
    pub outcome: AttemptOutcome,
    /// The request's wall-clock duration; `None` when no request was made (credentials
    /// unreadable, destination removed).
    pub seconds: Option<f64>,
}

impl<S: Store> Engine<S> {
    /// Renders a claimed delivery from its step's templates with the profile as it is now and
    /// stores the rendering (once: this is the message every attempt sends).
    fn render_claimed(
        &self,
        d: &Delivery,
    ) -> Result<std::result::Result<serde_json::Value, render::TemplateError>> {
        self.write_batch(|tx| {
            let Some(row) = tx.journey_by_id(d.journey_id)? else {
                return Ok(Ok(d.message.clone()));
            };
            let def = self.def(tx, d.journey_id, d.version)?;
            let Some(template) = render::step_template(&def, &d.step_id) else {
                return Ok(Ok(d.message.clone()));
            };
            let profile = tx
                .profile_by_seq(d.profile_seq)?
                .map(|p| p.attrs)
                .unwrap_or(serde_json::Value::Null);
            let out = render::render(tx, template, d, &row.key, &profile)?;
            if let Ok(m) = &out {
                tx.set_rendered(d, Some(m), None)?;
            }
            Ok(out)
        })
    }

    /// Startup recovery: deliveries that were being sent when the process died
    /// go back to Pending (re-sent under the same idempotency key).
    pub fn recover_webhook_outbox(&self) -> Result<i64> {
        self.write_batch(|tx| Ok(tx.reset_sending()?))
    }

    /// One sender pass over at most `limit` due webhook deliveries.
    pub fn send_webhooks_once(
        &self,
        transport: &dyn WebhookTransport,
        limiter: &RateLimiter,
        limit: i64,
    ) -> Result<SendReport> {
        let now = self.now();
        let claimed = self.write_batch(|tx| Ok(tx.claim_webhook_deliveries(now, limit)?))?;
        let mut report = SendReport::default();
        let dests = &self.config().destinations;
        for mut d in claimed {
            if d.rendered.is_none() {
                match self.render_claimed(&d)? {
                    Ok(m) => d.rendered = Some(m),
                    Err(err) => {
                        // No half-rendered message is sent: the delivery fails as a whole.
                        let error = err.to_string();
                        self.write_batch(|tx| {
                            Ok(tx.set_rendered(&d, None, Some((render::TEMPLATE_ERROR, &error)))?)
                        })?;
                        report.failed += 1;
                        report.template_errors += 1;
                        report.attempts.push(Attempt {
                            destination: d.destination.clone(),
                            outcome: AttemptOutcome::Failed,
                            seconds: None,
                        });
                        continue;
                    }
                }
            }
            let dest: Option<&WebhookDestination> = dests.webhooks.get(&d.destination);
            let Some(dest) = dest else {
                self.write_batch(|tx| {
                    Ok(tx.finish_attempt(
                        &d,
                        DeliveryStatus::Failed,
                        now,
                        Some("destination no longer configured"),
                        true,
                    )?)
                })?;
                report.failed += 1;
                report.attempts.push(Attempt {
                    destination: d.destination.clone(),
                    outcome: AttemptOutcome::Failed,
                    seconds: None,
                });
                continue;
            };
            if !limiter.try_take(&d.destination, dest.rate_limit, now) {
                // back to Pending without counting an attempt
                self.write_batch(|tx| {
                    tx.finish_attempt(&d, DeliveryStatus::Pending, now, None, false)?;
                    Ok(())
                })?;
                report.throttled += 1;
                continue;
            }
            let credentials = match &dest.credentials_file {
                None => Ok(None),
                Some(path) => self
                    .inner
                    .credentials
                    .read(std::path::Path::new(path))
                    .map(Some),
            };
            let mut seconds = None;
            let outcome = match credentials {
                Ok(credentials) => {
                    // Wall time, not the engine's clock: this is the endpoint's latency.
                    let started = std::time::Instant::now();
                    let outcome = transport.post(&WebhookRequest {
                        destination: d.destination.clone(),
                        url: dest.url.clone(),
                        idempotency_key: d.idempotency_key(),
                        credentials,
                        body: body(&d),
                    });
                    seconds = Some(started.elapsed().as_secs_f64());
                    outcome
                }
                Err(reason) => {
                    tracing::warn!(destination = %d.destination, %reason, "webhook not sent");
                    let journey = self
                        .read(|tx| Ok(tx.journey_by_id(d.journey_id)?.map(|row| row.key)))
                        .unwrap_or(None);
                    report.credential_errors.push(CredentialError {
                        journey,
                        destination: d.destination.clone(),
                        reason: reason.clone(),
                    });
                    SendOutcome::Retry(reason)
                }
            };
            let settled = self.write_batch(|tx| {
                let attempts = tx.delivery_attempts(&d)? + 1;
                match &outcome {
                    SendOutcome::Delivered => {
                        tx.finish_attempt(&d, DeliveryStatus::Sent, now, None, true)?;
                        Ok(AttemptOutcome::Sent)
                    }
                    SendOutcome::Retry(e) if attempts < MAX_ATTEMPTS => {
                        tx.finish_attempt(
                            &d,
                            DeliveryStatus::Pending,
                            now + backoff_ms(attempts - 1),
                            Some(e),
                            true,
                        )?;
                        Ok(AttemptOutcome::Retried)
                    }
                    SendOutcome::Retry(e) | SendOutcome::Permanent(e) => {
                        tx.finish_attempt(&d, DeliveryStatus::Failed, now, Some(e), true)?;
                        Ok(AttemptOutcome::Failed)
                    }
                }
            })?;
            match settled {
                AttemptOutcome::Sent => report.sent += 1,
                AttemptOutcome::Retried => report.retried += 1,
                AttemptOutcome::Failed => report.failed += 1,
            }
            report.attempts.push(Attempt {
                destination: d.destination.clone(),
                outcome: settled,
                seconds,
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_and_backoff() {
        let l = RateLimiter::default();
        let taken = (0..20).filter(|_| l.try_take("crm", Some(10), 0)).count();
        assert_eq!(taken, 10);
        assert!(!l.try_take("crm", Some(10), 50));
        assert!(l.try_take("crm", Some(10), 100));
        assert!(l.try_take("other", None, 0));
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
    }
}
