//! Message templates on the real SQLite store: rendered once per delivery with the profile,
//! the enrolling (or resuming) event, the journey and the delivery's key; a bad template is
//! refused at validation with its field path; a render failure fails only that delivery.

use std::sync::Mutex;

use journey_operator::engine::webhook::{
    RateLimiter, SendOutcome, WebhookRequest, WebhookTransport,
};
use journey_operator::engine::{
    DeliveryStatus, DestinationConfig, EngineConfig, WebhookDestination,
};
use serde_json::json;

use crate::engine::common::*;

#[derive(Default)]
struct Seen(Mutex<Vec<WebhookRequest>>);

impl WebhookTransport for Seen {
    fn post(&self, r: &WebhookRequest) -> SendOutcome {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(r.clone());
        }
        SendOutcome::Retry("503 from the endpoint".into())
    }
}

#[test]
fn record_renders_profile_event_journey_and_key_once() {
    let h = Harness::new();
    h.apply(
        "shop/welcome",
        json!({"entry": {"event": {"name": "Bought"}},
               "steps": [
                 {"id": "thanks", "action": {"channel": "email", "message": {
                    "subject": "Thanks {{ profile.first_name }} for the {{ event.item }}",
                    "text": "{{ journey.namespace }}/{{ journey.name }} v{{ journey.version }} {{ delivery.idempotencyKey }}",
                    "plain": 3}},
                  "next": "wait"},
                 {"id": "wait", "waitForEvent": {"name": "Reviewed"}, "next": "again"},
                 {"id": "again", "action": {"channel": "email", "message": {"subject": "You gave {{ event.stars }} stars"}}}
               ]}),
    );
    h.publish("shop/welcome");
    h.profile("ann", json!({"first_name": "Ann"}));
    h.event("ann", "Bought", json!({"item": "teapot"}));
    h.run();
    let d = h.deliveries("shop/welcome");
    assert_eq!(d.len(), 1, "{d:?}");
    let rendered = d[0].rendered.clone().expect("rendered at creation");
    assert_eq!(rendered["subject"], "Thanks Ann for the teapot");
    assert_eq!(
        rendered["text"],
        format!("shop/welcome v1 {}", d[0].idempotency_key())
    );
    assert_eq!(rendered["plain"], 3);
    assert_eq!(
        d[0].message["subject"], "Thanks {{ profile.first_name }} for the {{ event.item }}",
        "the message stays the template"
    );
    // The profile changes later: the stored rendering does not.
    h.profile("ann", json!({"first_name": "Anna"}));
    h.event("ann", "Reviewed", json!({"stars": 5}));
    h.run();
    let d = h.deliveries("shop/welcome");
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].rendered_subject(), Some("Thanks Ann for the teapot"));
    assert_eq!(
        d[1].rendered_subject(),
        Some("You gave 5 stars"),
        "the resuming event is the `event` of later steps"
    );
}

#[test]
fn a_missing_attribute_fails_only_that_delivery() {
    let h = Harness::new();
    h.apply(
        "shop/hi",
        json!({"entry": {"event": {"name": "Go"}},
               "steps": [{"id": "hi", "action": {"channel": "email", "message": {"subject": "Hi {{ profile.first_name }}"}}}]}),
    );
    h.publish("shop/hi");
    h.profile("ann", json!({"first_name": "Ann"}));
    h.profile("bob", json!({}));
    h.event("ann", "Go", json!({}));
    h.event("bob", "Go", json!({}));
    h.run();
    let ann = h.deliveries_to("shop/hi", "ann");
    let bob = h.deliveries_to("shop/hi", "bob");
    assert_eq!(ann[0].status, DeliveryStatus::Recorded);
    assert_eq!(ann[0].rendered_subject(), Some("Hi Ann"));
    assert_eq!(bob[0].status, DeliveryStatus::Failed);
    assert_eq!(bob[0].reason.as_deref(), Some("TemplateError"));
    assert_eq!(bob[0].rendered, None, "nothing half-rendered is kept");
    let error = bob[0].last_error.clone().unwrap_or_default();
    assert!(
        error.starts_with("subject: undefined value"),
        "the error names the field: {error}"
    );
    // Bob moved on like Ann: a failed delivery does not hold the profile.
    assert_eq!(
        h.state_of("shop/hi", "bob").0,
        h.state_of("shop/hi", "ann").0
    );
}

#[test]
fn bad_templates_are_refused_with_their_field_path() {
    let h = Harness::new();
    let def = definition(json!({"entry": {"event": {"name": "Go"}},
    "steps": [
      {"id": "a", "action": {"channel": "email", "message": {"subject": "Hi {{ profile.name"}}},
      {"id": "b", "action": {"channel": "email", "message": {"body": {"title": "{{ customer.name }}"}}}}
    ]}));
    let err = h
        .engine
        .apply_definition_blocking("shop/bad", &def)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("steps[0].action.message.subject: template syntax error"),
        "{err}"
    );
    assert!(
        err.contains("steps[1].action.message.body.title: unknown variable customer"),
        "{err}"
    );
    assert!(
        h.engine
            .status_blocking("shop/bad")
            .expect("status")
            .is_none(),
        "nothing was created"
    );
}

/// A published journey `shop/sms` whose one step texts `Code {{ profile.code }}` through the
/// webhook destination `sms`.
fn sms_journey() -> Harness {
    let mut destinations = DestinationConfig::default();
    destinations.webhooks.insert(
        "sms".into(),
        WebhookDestination {
            url: "https://sms.example/send".into(),
            rate_limit: None,
            credentials_file: None,
        },
    );
    let h = Harness::with_config(EngineConfig {
        destinations,
        ..EngineConfig::default()
    });
    h.apply(
        "shop/sms",
        json!({"entry": {"event": {"name": "Go"}},
               "steps": [{"id": "text", "action": {"channel": "sms", "destination": "sms", "message": {"body": "Code {{ profile.code }}"}}}]}),
    );
    h.publish("shop/sms");
    h
}

#[test]
fn webhook_deliveries_render_at_the_first_claim_and_resend_the_same_bytes() {
    let h = sms_journey();
    h.profile("ann", json!({"code": "111"}));
    h.event("ann", "Go", json!({}));
    h.run();
    assert_eq!(
        h.deliveries("shop/sms")[0].rendered,
        None,
        "not rendered before it is claimed"
    );
    let seen = Seen::default();
    let limiter = RateLimiter::default();
    h.engine
        .send_webhooks_once(&seen, &limiter, 10)
        .expect("first attempt");
    // The profile changes between attempts: the retry sends what the first attempt sent.
    h.profile("ann", json!({"code": "222"}));
    h.advance(60 * S);
    h.engine
        .send_webhooks_once(&seen, &limiter, 10)
        .expect("second attempt");
    let seen = seen.0.lock().expect("lock");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body["message"]["body"], "Code 111");
    assert_eq!(seen[0].body, seen[1].body, "same bytes on every attempt");
    let d = h.deliveries("shop/sms");
    assert_eq!(d[0].attempts, 2);
    assert_eq!(d[0].last_error.as_deref(), Some("503 from the endpoint"));
}

#[test]
fn a_render_failure_at_send_time_sends_nothing() {
    let h = sms_journey();
    h.profile("bob", json!({}));
    h.event("bob", "Go", json!({}));
    h.run();
    let seen = Seen::default();
    let report = h
        .engine
        .send_webhooks_once(&seen, &RateLimiter::default(), 10)
        .expect("pass");
    assert_eq!((report.failed, report.template_errors), (1, 1));
    assert!(seen.0.lock().expect("lock").is_empty(), "nothing was sent");
    let d = h.deliveries("shop/sms");
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    assert_eq!(d[0].reason.as_deref(), Some("TemplateError"));
}
