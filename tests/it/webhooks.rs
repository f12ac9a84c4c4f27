//! Webhook destinations for real: the engine's outbox, the operator's HTTP transport and sender
//! loop, and a real HTTP server on loopback receiving the POSTs. No Kubernetes involved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use journey_operator::controller::webhooks::{HttpTransport, spawn_sender};
use journey_operator::engine::{
    DataPlane, DestinationConfig, Engine, EngineConfig, JourneyEngine, SqliteStore, SystemClock,
    WebhookDestination,
};
use serde_json::{Value, json};

#[derive(Default)]
struct Received {
    /// Idempotency key → attempts seen.
    attempts: HashMap<String, u32>,
    authorized: bool,
    bodies: Vec<Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_are_posted_once_each_with_their_idempotency_key() {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let state = state.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let mut r = state.lock().expect("lock");
                r.authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer s3cret");
                let n = r.attempts.entry(key).or_insert(0);
                *n += 1;
                // Every delivery's first attempt fails: the sender must retry under the same key.
                if *n == 1 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                r.bodies.push(body.0);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = dir.path().join("token");
    std::fs::write(&credentials, "s3cret\n").expect("token");
    let mut destinations = DestinationConfig::default();
    destinations.webhooks.insert(
        "crm".into(),
        WebhookDestination {
            url: format!("http://{addr}/hook"),
            rate_limit: Some(50),
            credentials_file: Some(credentials.display().to_string()),
        },
    );
    let engine = Engine::new(
        SqliteStore::open(dir.path().join("engine.db")).expect("sqlite"),
        Arc::new(SystemClock),
        EngineConfig {
            destinations,
            ..EngineConfig::default()
        },
    )
    .expect("engine");
    let scheduler = engine.spawn_scheduler(Duration::from_millis(20));
    let transport = HttpTransport::new(Duration::from_secs(5)).expect("client");
    let sender = spawn_sender(
        engine.clone(),
        Arc::new(transport),
        Duration::from_millis(20),
        Arc::new(journey_operator::controller::metrics::Metrics::default()),
        None,
    );

    let definition = serde_json::from_value(json!({
        "entry": {"event": {"name": "Signup"}},
        "steps": [{"id": "notify", "action": {"channel": "webhook", "destination": "crm", "message": {"template": "hello"}}}]
    }))
    .expect("definition");
    engine
        .declare(
            "ns/hook",
            journey_operator::engine::Declaration {
                definition,
                state: journey_model::lifecycle::JourneyState::Published,
                requests: Default::default(),
                expected_revision: None,
                hold: None,
                actor: None,
            },
        )
        .await
        .expect("publish");
    for i in 0..10 {
        engine
            .ingest_event(&format!("w{i}"), "Signup", json!({}))
            .await
            .expect("ingest");
    }

    // Retries back off (1 s after the first failure).
    crate::support::eventually("10 webhooks delivered", async || {
        received.lock().expect("lock").bodies.len() >= 10
    })
    .await;
    // Give a duplicate a chance to show up before judging.
    let settle = engine
        .list_deliveries(Some("ns/hook"), None, None)
        .await
        .expect("deliveries");
    assert_eq!(settle.len(), 10);
    let r = received.lock().expect("lock");
    assert!(r.authorized, "the credentials file becomes a bearer token");
    assert_eq!(r.attempts.len(), 10, "one idempotency key per delivery");
    assert!(
        r.attempts.values().all(|n| *n == 2),
        "one failed attempt, one success: {:?}",
        r.attempts
    );
    let profiles: std::collections::BTreeSet<&str> = r
        .bodies
        .iter()
        .filter_map(|b| b["profileId"].as_str())
        .collect();
    assert_eq!(profiles.len(), 10);
    assert!(r.bodies.iter().all(|b| b["message"]["template"] == "hello"));
    drop(r);
    sender.abort();
    scheduler.abort();
    server.abort();
}
