//! The webhook outbox sender's decisions with an in-memory transport (the real HTTP
//! transport is tested against a local server in `tests/it/webhooks.rs`).

use std::sync::Mutex;

use journey_operator::engine::webhook::{
    RateLimiter, SendOutcome, WebhookRequest, WebhookTransport,
};
use journey_operator::engine::{
    DeliveryStatus, DestinationConfig, EngineConfig, PauseMode, PauseOptions, WebhookDestination,
};
use serde_json::json;

use crate::engine::common::*;

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<WebhookRequest>>,
    fail_first: Mutex<usize>,
}

impl WebhookTransport for Fake {
    fn post(&self, r: &WebhookRequest) -> SendOutcome {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(r.clone());
        }
        if let Ok(mut f) = self.fail_first.lock()
            && *f > 0
        {
            *f -= 1;
            return SendOutcome::Retry("503".into());
        }
        SendOutcome::Delivered
    }
}

fn harness(rate: Option<u32>) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cred = dir.path().join("token");
    std::fs::write(&cred, "s3cret\n").expect("write");
    let mut destinations = DestinationConfig::default();
    destinations.webhooks.insert(
        "crm".into(),
        WebhookDestination {
            url: "https://crm.example/hook".into(),
            rate_limit: rate,
            credentials_file: Some(cred.to_string_lossy().into_owned()),
        },
    );
    let h = Harness::with_config(EngineConfig {
        destinations,
        ..EngineConfig::default()
    });
    h.apply(
        "ns/w",
        json!({"entry": {"event": {"name": "Go"}},
               "steps": [{"id": "hook", "action": {"channel": "webhook", "destination": "crm", "message": {"x": 1}}}]}),
    );
    h.publish("ns/w");
    (h, dir)
}

/// Deliveries are POSTed once with their idempotency key and credentials.
#[test]
fn webhook_sent_once_with_idempotency_key() {
    let (h, _dir) = harness(None);
    let t = Fake::default();
    let l = RateLimiter::default();
    h.event("p", "Go", json!({}));
    let r = h.engine.send_webhooks_once(&t, &l, 100).expect("send");
    assert_eq!(r.sent, 1);
    // What the metrics count: the outcome and the request's latency, by destination.
    assert_eq!(r.attempts.len(), 1);
    let a = &r.attempts[0];
    assert_eq!(
        (a.destination.as_str(), a.outcome),
        (
            "crm",
            journey_operator::engine::webhook::AttemptOutcome::Sent
        )
    );
    assert!(a.seconds.is_some_and(|s| s >= 0.0));
    let again = h.engine.send_webhooks_once(&t, &l, 100).expect("send");
    assert_eq!(again.sent, 0);
    let seen = t.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let d = h.deliveries("ns/w");
    assert_eq!(d[0].status, DeliveryStatus::Sent);
    assert_eq!(seen[0].idempotency_key, d[0].idempotency_key());
    assert_eq!(seen[0].credentials.as_deref(), Some("s3cret"));
    assert_eq!(seen[0].body["message"], json!({"x": 1}));
}

/// Held during a Hold pause (002), sent under the same key after resume.
#[test]
fn webhook_not_sent_while_paused() {
    let (h, _dir) = harness(None);
    let t = Fake::default();
    let l = RateLimiter::default();
    h.event("p", "Go", json!({}));
    h.pause("ns/w", hold());
    assert_eq!(
        h.engine.send_webhooks_once(&t, &l, 100).expect("send").sent,
        0
    );
    h.publish("ns/w");
    assert_eq!(
        h.engine.send_webhooks_once(&t, &l, 100).expect("send").sent,
        1
    );
    // Discard pause cancels what is not yet sent
    h.event("q", "Go", json!({}));
    h.pause(
        "ns/w",
        PauseOptions {
            mode: PauseMode::Discard,
            ..hold()
        },
    );
    h.publish("ns/w");
    assert_eq!(
        h.engine.send_webhooks_once(&t, &l, 100).expect("send").sent,
        0
    );
}

/// Retries with backoff, then succeeds; a crash mid-send is recovered.
#[test]
fn webhook_retries_with_backoff_and_recovers() {
    let (h, _dir) = harness(None);
    let t = Fake {
        fail_first: Mutex::new(2),
        ..Fake::default()
    };
    let l = RateLimiter::default();
    h.event("p", "Go", json!({}));
    assert_eq!(
        h.engine
            .send_webhooks_once(&t, &l, 100)
            .expect("send")
            .retried,
        1
    );
    assert_eq!(
        h.engine.send_webhooks_once(&t, &l, 100).expect("send"),
        Default::default(),
        "backoff 1s"
    );
    h.clock.advance_ms(S);
    assert_eq!(
        h.engine
            .send_webhooks_once(&t, &l, 100)
            .expect("send")
            .retried,
        1
    );
    h.clock.advance_ms(S);
    assert_eq!(
        h.engine
            .send_webhooks_once(&t, &l, 100)
            .expect("send")
            .retried,
        0,
        "backoff 2s"
    );
    h.clock.advance_ms(S);
    assert_eq!(
        h.engine.send_webhooks_once(&t, &l, 100).expect("send").sent,
        1
    );
    assert_eq!(h.engine.recover_webhook_outbox().expect("recover"), 0);
}

/// Per-destination rate limit.
#[test]
fn webhook_rate_limit() {
    let (h, _dir) = harness(Some(5));
    let t = Fake::default();
    let l = RateLimiter::default();
    for i in 0..12 {
        h.event(&format!("p{i}"), "Go", json!({}));
    }
    let r = h.engine.send_webhooks_once(&t, &l, 100).expect("send");
    assert_eq!((r.sent, r.throttled), (5, 7));
    h.clock.advance_ms(S);
    assert_eq!(
        h.engine.send_webhooks_once(&t, &l, 100).expect("send").sent,
        5
    );
}

/// An unreadable credentials file fails closed: nothing is sent (never a request without
/// credentials), the attempt is recorded with the reason and retried with backoff; once the
/// file is readable the delivery goes out with it.
#[test]
fn webhook_not_sent_without_its_credentials() {
    let (h, dir) = harness(None);
    let token = dir.path().join("token");
    std::fs::remove_file(&token).expect("remove the credentials");
    let t = Fake::default();
    let l = RateLimiter::default();
    h.event("p", "Go", json!({}));
    let r = h.engine.send_webhooks_once(&t, &l, 100).expect("send");
    assert_eq!((r.sent, r.retried), (0, 1));
    assert_eq!(r.credential_errors.len(), 1);
    let e = &r.credential_errors[0];
    assert_eq!(
        (e.journey.as_deref(), e.destination.as_str()),
        (Some("ns/w"), "crm")
    );
    assert!(!e.reason.is_empty());
    assert!(t.seen.lock().expect("lock").is_empty(), "no request at all");
    let d = h.deliveries("ns/w");
    assert_eq!(d[0].status, DeliveryStatus::Pending);

    std::fs::write(&token, "rotated\n").expect("write");
    h.clock.advance_ms(S);
    let r = h.engine.send_webhooks_once(&t, &l, 100).expect("send");
    assert_eq!(r.sent, 1);
    let seen = t.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].credentials.as_deref(), Some("rotated"));
}
