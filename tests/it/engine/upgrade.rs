//! An engine database written by an earlier release opens unchanged and goes on: every stored
//! journey, enrollment and delivery reads back as it was written, the idempotency keys of
//! deliveries in flight do not change, and the journeys continue where they were.
//!
//! `tests/fixtures/engine-migration-4.db` was written on 2026-12-02 by the engine of commit
//! 858f8a3, whose store is at migration 4 (the schema of every release since c86374a), on the
//! default virtual epoch, through the engine's API:
//! - `shop/paused` (action_first): published, p4 entered (hello recorded), paused with Hold,
//!   61 minutes later p4 is held at `followup`;
//! - `shop/cart` (action_first): published, p1, p2 and p3 entered (hello recorded), waiting;
//! - `shop/hook` (webhook `notify`, wait 1h, webhook `again`, destination `crm`): published, p3
//!   entered; its `notify` delivery is Pending (not sent yet);
//! - the clock then read 1767229260000.

use std::sync::Mutex;

use journey_operator::engine::webhook::{
    RateLimiter, SendOutcome, WebhookRequest, WebhookTransport,
};
use journey_operator::engine::{
    DeliveryStatus, DestinationConfig, EngineConfig, EnrollmentState, Phase, WebhookDestination,
};

use super::common::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/engine-migration-4.db"
);
const WRITTEN_AT: i64 = 1_767_229_260_000;

fn config() -> EngineConfig {
    let mut destinations = DestinationConfig::default();
    destinations.webhooks.insert(
        "crm".into(),
        WebhookDestination {
            url: "https://crm.example/hook".into(),
            rate_limit: None,
            credentials_file: None,
        },
    );
    EngineConfig {
        destinations,
        ..EngineConfig::default()
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl WebhookTransport for Recorder {
    fn post(&self, r: &WebhookRequest) -> SendOutcome {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(r.idempotency_key.clone());
        }
        SendOutcome::Delivered
    }
}

fn keys(h: &Harness, key: &str) -> Vec<(String, String, DeliveryStatus, String)> {
    h.deliveries(key)
        .into_iter()
        .map(|d| {
            (
                d.step_id.clone(),
                d.profile_id.clone(),
                d.status,
                d.idempotency_key(),
            )
        })
        .collect()
}

#[test]
fn a_database_at_migration_4_opens_unchanged_and_goes_on() {
    let h = Harness::open_copy(std::path::Path::new(FIXTURE), WRITTEN_AT, config());
    let s = |step: &str, profile: &str, status, key: &str| {
        (
            step.to_string(),
            profile.to_string(),
            status,
            key.to_string(),
        )
    };
    use DeliveryStatus::{Pending, Recorded, Sent};
    assert_eq!(
        keys(&h, "shop/paused"),
        vec![s("hello", "p4", Recorded, "1-0-1-52186c2340555e85-1")]
    );
    assert_eq!(
        keys(&h, "shop/cart"),
        vec![
            s("hello", "p1", Recorded, "2-0-2-52186c2340555e85-1"),
            s("hello", "p2", Recorded, "2-0-3-52186c2340555e85-1"),
            s("hello", "p3", Recorded, "2-0-4-52186c2340555e85-1"),
        ]
    );
    assert_eq!(
        keys(&h, "shop/hook"),
        vec![s("notify", "p3", Pending, "3-0-4-5460181edddd361e-1")]
    );
    assert_eq!(h.status("shop/paused").phase, Phase::Paused);
    assert_eq!(h.status("shop/cart").phase, Phase::Live);
    assert_eq!(
        h.state_of("shop/paused", "p4"),
        (EnrollmentState::Held, "followup".to_string())
    );
    for p in ["p1", "p2", "p3"] {
        assert_eq!(
            h.state_of("shop/cart", p),
            (EnrollmentState::Waiting, "wait".to_string())
        );
    }

    assert_eq!(h.engine.store().schema_version().expect("schema"), 7);

    // The delivery in flight goes out under the key it was created with.
    let transport = Recorder::default();
    let limiter = RateLimiter::default();
    let sent = h
        .engine
        .send_webhooks_once(&transport, &limiter, 100)
        .expect("send");
    assert_eq!(sent.sent, 1);
    assert_eq!(
        transport.0.lock().expect("lock").clone(),
        vec!["3-0-4-5460181edddd361e-1".to_string()]
    );

    // And everything continues where it was.
    h.advance(H);
    assert_eq!(
        steps_of(&h.deliveries("shop/cart")),
        [
            "hello", "hello", "hello", "followup", "followup", "followup"
        ]
    );
    assert_eq!(keys(&h, "shop/hook")[0].2, Sent);
    assert_eq!(steps_of(&h.deliveries("shop/hook")), ["notify", "again"]);
    h.publish("shop/paused");
    h.run();
    assert_eq!(
        steps_of(&h.deliveries("shop/paused")),
        ["hello", "followup"]
    );
}

/// The feed (migration 6) starts with every journey stored before it, each once, so a reader
/// starting from revision 0 misses none of them.
#[test]
fn journeys_stored_before_the_change_feed_are_in_it() {
    let h = Harness::open_copy(std::path::Path::new(FIXTURE), WRITTEN_AT, config());
    let page = h.engine.changes_since_blocking(0).expect("feed");
    let mut keys: Vec<&str> = page.changes.iter().map(|c| c.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["shop/cart", "shop/hook", "shop/paused"]);
    assert_eq!(
        page.revision,
        h.engine.feed_revision_blocking().expect("head")
    );
}
