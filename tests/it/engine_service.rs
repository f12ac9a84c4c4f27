//! `journey-operator engine` as its own process over TLS: the v1 engine API through the
//! controller's own client (`EngineClient`), the data plane, credentials that cannot stand in
//! for each other, bad input refused with the field named and nothing changed, and the engine's
//! semantics (lifecycle, pause, resume, runs) driven entirely through HTTP on a virtual clock.

use std::collections::HashMap;

use journey_engine_api::v1::ErrorCode;
use journey_model::lifecycle::{JourneyState, Phase};
use journey_operator::engine::{
    Declaration, EngineError, JourneyEngine, RequestKind, RequestOutcome, Requests,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::engine::common::{action_first, definition};
use crate::engine_process::{DATA_PLANE_TOKEN, ENGINE_TOKEN, EngineProcess};
use crate::support::eventually;

fn declaration(spec: Value, state: JourneyState) -> Declaration {
    Declaration {
        definition: definition(spec),
        state,
        requests: Requests::default(),
        expected_revision: None,
        hold: None,
        actor: None,
    }
}

fn paused(mut spec: Value) -> Value {
    spec["pause"] = json!({"mode": "Hold", "entries": "Discard"});
    spec
}

async fn status(engine: &EngineProcess, key: &str) -> journey_operator::engine::StatusSnapshot {
    engine
        .client()
        .status(key)
        .await
        .expect("status")
        .expect("the journey exists")
}

async fn wait_for_phase(engine: &EngineProcess, key: &str, phase: Phase) {
    eventually(&format!("{key} to be {phase}"), async || {
        status(engine, key).await.phase == phase
    })
    .await;
}

fn steps_by_profile(deliveries: &[Value]) -> HashMap<(String, String), usize> {
    let mut n = HashMap::new();
    for d in deliveries {
        let key = (
            d["profileId"].as_str().unwrap_or_default().to_string(),
            d["stepId"].as_str().unwrap_or_default().to_string(),
        );
        *n.entry(key).or_insert(0) += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_needs_the_engines_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start(dir.path()).await;
    // The system roots do not know the engine's CA: the handshake fails.
    let untrusting = journey_operator::tls::http_client_builder()
        .build()
        .expect("client");
    let err = untrusting
        .get(engine.api_url("/openapi.json"))
        .send()
        .await
        .expect_err("no handshake without the CA");
    assert!(err.is_connect(), "{err:?}");
    // Plain HTTP to a TLS listener gets nothing useful either.
    let plain = untrusting
        .get(format!("http://127.0.0.1:{}/openapi.json", engine.api))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // With the CA: the document, generated from the wire types.
    let doc: Value = engine
        .https()
        .get(engine.api_url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(
        doc["components"]["schemas"]["JourneyPut"].is_object(),
        "{doc}"
    );
    // And the controller's client reaches the engine.
    assert!(engine.client().feed_revision().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_plane_refuses_the_other_planes_credential() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start(dir.path()).await;
    let http = engine.https();
    let put = json!({
        "definition": {"entry": {"event": {"name": "Go"}}, "steps": [{"id": "w", "wait": {"duration": "1h"}}]},
        "lifecycle": {"state": "Published"}
    });
    let url = engine.api_url("/v1/journeys/team/j");
    // A lifecycle PUT with the data-plane token: 403, saying why.
    let r = http
        .put(&url)
        .bearer_auth(DATA_PLANE_TOKEN)
        .json(&put)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], json!("Forbidden"));
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("data-plane token"),
        "{body}"
    );
    // No token, or a wrong one: 401.
    for token in [None, Some("nope")] {
        let mut req = http.put(&url).json(&put);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("put");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    // Nothing was declared.
    assert!(
        engine
            .client()
            .status("team/j")
            .await
            .expect("status")
            .is_none()
    );
    // A data-plane call with the engine credential: 403.
    let r = http
        .post(engine.data_plane_url("/v1/events"))
        .bearer_auth(ENGINE_TOKEN)
        .json(&json!({"profileId": "p", "name": "Go"}))
        .send()
        .await
        .expect("event");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("engine API's token"), "{text}");
    // The right credentials work.
    let r = http
        .put(&url)
        .bearer_auth(ENGINE_TOKEN)
        .json(&put)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        engine
            .ingest("/v1/events", &json!({"profileId": "p", "name": "Go"}))
            .await,
        StatusCode::ACCEPTED
    );
    // The engine's /metrics counts its API's answers by route template and status.
    let metrics = crate::operator_process::http()
        .get(format!("http://127.0.0.1:{}/metrics", engine.ops))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let route = "route=\"/v1/journeys/{namespace}/{name}\"";
    for (status, n) in [("403", 1), ("401", 2), ("200", 1)] {
        let line = format!(
            "journey_http_requests_total{{api=\"engine\",{route},status=\"{status}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // And the data plane's, the engine credential's 403 among them.
    for (status, n) in [("403", 1), ("202", 1)] {
        let line = format!(
            "journey_http_requests_total{{api=\"data-plane\",route=\"/v1/events\",status=\"{status}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // The engine's own gauges. A virtual-clock engine runs nothing until told: the event's
    // entrance is due and not advanced; once the clock is told to run, nothing is.
    let scrape = async || {
        crate::operator_process::http()
            .get(format!("http://127.0.0.1:{}/metrics", engine.ops))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default()
    };
    eventually("a due backlog of one", async || {
        scrape().await.contains("journey_engine_due_backlog 1")
    })
    .await;
    assert!(scrape().await.contains("journey_engine_tick_lag_seconds "));
    engine.advance(0).await;
    eventually("no due backlog once the engine ran", async || {
        let text = scrape().await;
        text.contains("journey_engine_due_backlog 0")
            && text.contains("journey_engine_tick_lag_seconds 0")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_the_field_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start(dir.path()).await;
    let http = engine.https();
    let good = json!({
        "definition": {"entry": {"event": {"name": "Go"}}, "steps": [{"id": "w", "wait": {"duration": "1h"}}]},
        "lifecycle": {"state": "Published"}
    });
    let mut unknown = good.clone();
    unknown["definition"]["steps"][0]["wait"]["durration"] = json!("2h");
    let mut wrong_type = good.clone();
    wrong_type["lifecycle"]["state"] = json!(5);
    let mut not_compiling = good.clone();
    not_compiling["definition"]["steps"][0]["wait"]["duration"] = json!("1d");
    let mut bad_filter = good.clone();
    bad_filter["lifecycle"]["state"] = json!("Paused");
    bad_filter["lifecycle"]["globalFilter"] = json!("profile.a ==");
    let mut unknown_top = good.clone();
    unknown_top["lifecycel"] = json!({});
    let huge = json!({"definition": {"entry": {"event": {"name": "x".repeat(journey_engine_api::server::MAX_BODY_BYTES + 1)}}, "steps": []}, "lifecycle": {"state": "Published"}});
    /// (what, key, body, status, code, field the answer names)
    type Case<'a> = (
        &'a str,
        String,
        Value,
        StatusCode,
        ErrorCode,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown field",
            "team/j".into(),
            unknown,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            Some("definition.steps[0].wait"),
        ),
        (
            "unknown top-level field",
            "team/j".into(),
            unknown_top,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            Some("lifecycel"),
        ),
        (
            "wrong type",
            "team/j".into(),
            wrong_type,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            Some("lifecycle.state"),
        ),
        (
            "does not compile",
            "team/j".into(),
            not_compiling,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDefinition,
            Some("definition.steps[0].wait.duration"),
        ),
        (
            "bad filter",
            "team/j".into(),
            bad_filter,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDefinition,
            None,
        ),
        (
            "oversized",
            "team/j".into(),
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            None,
        ),
        (
            "bad name",
            "Team/j".into(),
            good.clone(),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            Some("path.namespace"),
        ),
    ];
    for (what, key, body, status, code, field) in cases {
        // The server answers 413 without reading an oversized body and closes the connection,
        // so the client can meet a broken pipe while still writing it: only then, send again.
        let mut attempts = 0;
        let r = loop {
            attempts += 1;
            match http
                .put(engine.api_url(&format!("/v1/journeys/{key}")))
                .bearer_auth(ENGINE_TOKEN)
                .json(&body)
                .send()
                .await
            {
                Ok(r) => break r,
                Err(e) if e.is_request() && attempts < 5 => continue,
                Err(e) => panic!("{what}: {e:?}"),
            }
        };
        assert_eq!(r.status(), status, "{what}");
        let text = r.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(answer["code"], json!(code), "{what}: {text}");
        if let Some(field) = field {
            assert!(
                answer["field"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(field),
                "{what}: {text}"
            );
        }
        assert!(
            engine
                .client()
                .status("team/j")
                .await
                .expect("status")
                .is_none(),
            "{what} changed nothing"
        );
    }
    // A wrong query on the feed names the parameter.
    let r = http
        .get(engine.api_url("/v1/changes?since=abc"))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .expect("changes");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Lifecycle through HTTP: publish, a refused return to Draft with the table's message, stop,
/// a refused restart, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_through_the_engine_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start(dir.path()).await;
    let client = engine.client();
    let key = "team/life";
    let d = client
        .declare(key, declaration(action_first(), JourneyState::Published))
        .await
        .expect("publish");
    assert_eq!(d.status.phase, Phase::Live);
    match client
        .declare(key, declaration(action_first(), JourneyState::Draft))
        .await
    {
        Err(EngineError::IllegalTransition { why, .. }) => {
            assert!(
                why.starts_with("a published journey cannot return to Draft"),
                "{why}"
            )
        }
        other => panic!("expected IllegalTransition, got {other:?}"),
    }
    // Entry locked while published.
    let mut changed = action_first();
    changed["entry"]["event"]["name"] = json!("Other");
    match client
        .declare(key, declaration(changed, JourneyState::Published))
        .await
    {
        Err(EngineError::IllegalTransition { why, .. }) => {
            assert!(why.contains("entry and exit rules are locked"), "{why}")
        }
        other => panic!("expected a lock refusal, got {other:?}"),
    }
    let d = client
        .declare(key, declaration(action_first(), JourneyState::Stopped))
        .await
        .expect("stop");
    assert_eq!(d.status.phase, Phase::Stopped);
    assert!(matches!(
        client
            .declare(key, declaration(action_first(), JourneyState::Published))
            .await,
        Err(EngineError::IllegalTransition { .. })
    ));
    assert!(client.delete(key).await.expect("delete"));
    assert!(client.status(key).await.expect("status").is_none());
    assert!(!client.delete(key).await.expect("delete again"));
}

/// Seed 002 through HTTP: entrances, Hold (nothing delivered while paused, fresh entrances
/// dropped), resume at a rate, every held profile delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_through_the_engine_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start(dir.path()).await;
    let client = engine.client();
    let key = "team/cart";
    let mut spec = action_first();
    spec["resume"] = json!({"rate": 2});
    client
        .declare(key, declaration(spec.clone(), JourneyState::Published))
        .await
        .expect("publish");
    for i in 0..6 {
        let s = engine
            .ingest(
                "/v1/events",
                &json!({"profileId": format!("p{i}"), "name": "Go"}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    engine.advance(0).await;
    eventually("six hello deliveries", async || {
        engine.deliveries(key).await.len() == 6
    })
    .await;
    let d = client
        .declare(key, declaration(paused(spec.clone()), JourneyState::Paused))
        .await
        .expect("pause");
    assert_eq!(d.status.phase, Phase::Paused);
    // A fresh entrance while paused is dropped; an hour later everyone is held at followup.
    engine
        .ingest("/v1/events", &json!({"profileId": "late", "name": "Go"}))
        .await;
    engine.advance(61 * 60 * 1000).await;
    eventually("six held profiles", async || {
        status(&engine, key).await.profiles.held == 6
    })
    .await;
    assert_eq!(
        engine.deliveries(key).await.len(),
        6,
        "nothing is sent while paused"
    );
    assert!(status(&engine, key).await.profiles.discarded >= 1);

    let d = client
        .declare(key, declaration(spec.clone(), JourneyState::Published))
        .await
        .expect("resume");
    assert_eq!(d.status.phase, Phase::Resuming);
    for _ in 0..5 {
        engine.advance(1000).await;
    }
    wait_for_phase(&engine, key, Phase::Live).await;
    eventually("twelve deliveries", async || {
        engine.deliveries(key).await.len() == 12
    })
    .await;
    let counts = steps_by_profile(&engine.deliveries(key).await);
    for i in 0..6 {
        for step in ["hello", "followup"] {
            assert_eq!(
                counts.get(&(format!("p{i}"), step.to_string())),
                Some(&1),
                "p{i} {step}"
            );
        }
    }
    assert!(!counts.keys().any(|(p, _)| p == "late"));
}

/// Runs through HTTP: a run token on an audience journey starts a read; one sent while paused
/// is deferred until resume; a handled token is not handled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_through_the_engine_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start(dir.path()).await;
    let client = engine.client();
    let key = "team/news";
    let spec = json!({
        "entry": {"audience": {"condition": "has(profile.ok) && profile.ok", "mode": "Read",
                  "schedule": {"cron": "0 0 1 1 *"}}},
        "steps": [{"id": "a", "action": {"channel": "email", "message": {}}}]
    });
    for i in 0..3 {
        let r = engine
            .https()
            .put(engine.data_plane_url(&format!("/v1/profiles/r{i}")))
            .bearer_auth(DATA_PLANE_TOKEN)
            .json(&json!({"attributes": {"ok": true}}))
            .send()
            .await
            .expect("profile");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    client
        .declare(key, declaration(spec.clone(), JourneyState::Published))
        .await
        .expect("publish");
    let mut with_run = declaration(spec.clone(), JourneyState::Published);
    with_run.requests.run = Some("run-1".into());
    let d = client.declare(key, with_run.clone()).await.expect("run");
    assert_eq!(d.requests.len(), 1);
    assert_eq!(d.requests[0].kind, RequestKind::RunNow);
    assert!(
        matches!(d.requests[0].outcome, RequestOutcome::Started { .. }),
        "{:?}",
        d.requests
    );
    engine.advance(0).await;
    eventually("three deliveries", async || {
        engine.deliveries(key).await.len() == 3
    })
    .await;
    let again = client.declare(key, with_run).await.expect("again");
    assert_eq!(again.requests[0].outcome, RequestOutcome::AlreadyHandled);

    let mut paused_run = declaration(paused(spec.clone()), JourneyState::Paused);
    paused_run.requests.run = Some("run-2".into());
    let d = client.declare(key, paused_run).await.expect("paused run");
    assert_eq!(d.requests[0].outcome, RequestOutcome::DeferredUntilResume);
    let d = client
        .declare(key, declaration(spec, JourneyState::Published))
        .await
        .expect("resume");
    assert_ne!(d.status.phase, Phase::Paused);
    assert!(
        d.status.last_runs.len() >= 2,
        "the deferred run started at resume: {:?}",
        d.status.last_runs
    );
}

/// A rotated certificate (a Secret mount updated in place) is served without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineProcess::start(dir.path()).await;
    let trusting = |ca: &std::path::Path| {
        let pem = std::fs::read(ca).expect("ca");
        journey_operator::tls::http_client_builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
            .build()
            .expect("client")
    };
    std::fs::copy(dir.path().join("ca.crt"), dir.path().join("old-ca.crt")).expect("keep");
    assert!(
        trusting(&dir.path().join("old-ca.crt"))
            .get(engine.api_url("/openapi.json"))
            .send()
            .await
            .is_ok()
    );

    let next = dir.path().join("next");
    std::fs::create_dir_all(&next).expect("dir");
    crate::engine_process::write_certificates(&next);
    for file in ["tls.key", "tls.crt"] {
        std::fs::copy(next.join(file), dir.path().join(file)).expect("rotate");
    }
    let new_trust = trusting(&next.join("ca.crt"));
    eventually("the new certificate served", async || {
        new_trust
            .get(engine.api_url("/openapi.json"))
            .send()
            .await
            .is_ok()
    })
    .await;
    // A new client that trusts only the old CA gets no handshake any more.
    let err = trusting(&dir.path().join("old-ca.crt"))
        .get(engine.api_url("/openapi.json"))
        .send()
        .await
        .expect_err("the old CA no longer matches");
    assert!(err.is_connect(), "{err:?}");
}

/// One engine serves one cluster: the first cluster id it hears is kept, across restarts, and
/// a controller of another cluster is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_serves_one_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = EngineProcess::start_real(dir.path()).await;
    let ours = engine.client();
    ours.declare(
        "team/j",
        declaration(action_first(), JourneyState::Published),
    )
    .await
    .expect("our cluster declares");
    let mut other = engine.client_config();
    other.cluster_id = Some("another-cluster".into());
    let theirs = journey_engine_api::EngineClient::new(&other).expect("client");
    match theirs.status("team/j").await {
        Err(EngineError::WrongCluster { serving, asked }) => {
            assert_eq!(serving, "test-cluster");
            assert_eq!(asked, "another-cluster");
        }
        other => panic!("expected WrongCluster, got {other:?}"),
    }
    engine.restart().await;
    assert!(matches!(
        theirs.feed_revision().await,
        Err(EngineError::WrongCluster { .. })
    ));
    assert!(
        engine
            .client()
            .status("team/j")
            .await
            .expect("ours")
            .is_some()
    );
}
