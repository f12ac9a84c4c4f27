//! The data plane over HTTP: a real SQLite engine on a temporary file, the real server on
//! 127.0.0.1:0 and a real HTTP client. No Kubernetes control plane is needed.

use std::sync::Arc;

use journey_model::lifecycle::JourneyState;
use journey_operator::dataplane::{
    DataPlaneConfig, DataPlaneError, DataPlaneServer, Limits, RETRY_AFTER_SECS, ROUTES,
};
use journey_operator::engine::store::Profile;
use journey_operator::engine::{
    DataPlane, Declaration, Engine, EngineConfig, JourneyEngine, RequestKind, SqliteStore, Store,
    VirtualClock,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const TOKEN: &str = "test-token-5f2a";
const JOURNEY: &str = "shop/add-to-cart";

/// A running data plane over a fresh engine.
struct Plane {
    engine: Engine<SqliteStore>,
    clock: VirtualClock,
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
    serving: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), DataPlaneError>>>,
}

impl Plane {
    async fn start() -> Self {
        Self::with_limits(Limits::default()).await
    }

    async fn with_limits(limits: Limits) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = VirtualClock::at_default_epoch();
        let store = SqliteStore::open(dir.path().join("engine.db")).expect("open store");
        let engine =
            Engine::new(store, Arc::new(clock.clone()), EngineConfig::default()).expect("engine");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
        let mut config = DataPlaneConfig::new("127.0.0.1:0".parse().expect("addr"), token_file);
        config.limits = limits;
        let (serving, serving_rx) = watch::channel(true);
        let dp: Arc<dyn DataPlane> = Arc::new(engine.clone());
        let server = DataPlaneServer::bind(&config, dp, serving_rx)
            .await
            .expect("bind the data plane");
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            engine,
            clock,
            _dir: dir,
            base,
            http: journey_operator::tls::http_client_builder()
                .build()
                .expect("http client"),
            serving,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {status} {text:?}"))
        };
        (status, headers, body)
    }

    /// An authenticated request with a raw JSON body.
    async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let (s, _, b) = self
            .send(
                self.http
                    .request(method, self.url(path))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        (s, b)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_raw(reqwest::Method::POST, path, &body.to_string())
            .await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_raw(reqwest::Method::PUT, path, &body.to_string())
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self
            .send(self.http.get(self.url(path)).bearer_auth(TOKEN))
            .await;
        (s, b)
    }

    /// Applies a definition and publishes it through the engine's control-plane API.
    async fn publish(&self, key: &str, spec: Value) {
        let declaration = Declaration {
            definition: crate::engine::common::definition(spec),
            state: JourneyState::Published,
            requests: Default::default(),
            expected_revision: None,
            hold: None,
            actor: None,
        };
        JourneyEngine::declare(&self.engine, key, declaration)
            .await
            .expect("declare");
    }

    /// Drives the engine's scheduler until nothing is due (the clock is virtual).
    async fn run_engine(&self) {
        let e = self.engine.clone();
        tokio::task::spawn_blocking(move || e.run_until_idle())
            .await
            .expect("join")
            .expect("tick");
    }

    fn profile(&self, id: &str) -> Option<Profile> {
        self.engine
            .store()
            .read(|tx| tx.profile_by_id(id))
            .expect("read profile")
    }

    fn profile_count(&self) -> i64 {
        self.engine
            .store()
            .read(|tx| tx.max_profile_seq())
            .expect("profiles")
    }

    /// Every delivery (after running the engine), straight from the engine.
    async fn all_deliveries(&self) -> usize {
        self.run_engine().await;
        DataPlane::list_deliveries(&self.engine, None, None, None)
            .await
            .expect("deliveries")
            .len()
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("server stopped cleanly");
        }
    }
}

/// Entry on AddToCart, one action step on the `record` channel.
fn add_to_cart() -> Value {
    json!({
        "state": "Published",
        "entry": {"event": {"name": "AddToCart"}},
        "steps": [
            {"id": "remind", "action": {"channel": "record", "message": {"title": "Still thinking about it?"}}}
        ]
    })
}

fn event(profile: &str) -> Value {
    json!({"profileId": profile, "name": "AddToCart", "payload": {"sku": "A-1", "value": 3}})
}

fn assert_error(body: &Value, field: Option<&str>) {
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "no error message: {body}"
    );
    assert_eq!(body["field"].as_str(), field, "{body}");
}

#[tokio::test]
async fn requests_without_the_right_bearer_token_get_401() {
    let p = Plane::start().await;
    let url = p.url("/v1/events");
    let body = event("p1").to_string();
    let attempts = [
        p.http.post(&url).body(body.clone()),
        p.http.post(&url).bearer_auth("wrong").body(body.clone()),
        p.http
            .post(&url)
            .bearer_auth(format!("{TOKEN}x"))
            .body(body.clone()),
        p.http
            .post(&url)
            .header("authorization", format!("Basic {TOKEN}"))
            .body(body.clone()),
        p.http.get(p.url("/v1/deliveries")),
        p.http.get(p.url("/v1/deliveries")).bearer_auth(""),
    ];
    for req in attempts {
        let (status, headers, body) = p.send(req.header("content-type", "application/json")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let challenge = headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
        assert_error(&body, None);
        assert!(!body.to_string().contains(TOKEN), "the token is not echoed");
    }
    assert_eq!(p.profile_count(), 0, "nothing was ingested");
    // The right token passes; the OpenAPI document is public.
    assert_eq!(
        p.post("/v1/events", event("p1")).await.0,
        StatusCode::ACCEPTED
    );
    let (s, _, _) = p.send(p.http.get(p.url("/openapi.json"))).await;
    assert_eq!(s, StatusCode::OK);
    p.shutdown().await;
}

#[tokio::test]
async fn an_event_over_http_enters_a_published_journey_and_its_delivery_is_visible() {
    let p = Plane::start().await;
    p.publish(JOURNEY, add_to_cart()).await;
    let (s, b) = p
        .put(
            "/v1/profiles/alice",
            json!({"attributes": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = p.post("/v1/events", event("alice")).await;
    assert_eq!((s, &b), (StatusCode::ACCEPTED, &json!({"accepted": 1})));
    // Another event name does not enter.
    let (s, _) = p
        .post(
            "/v1/events",
            json!({"profileId": "bob", "name": "PageView"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    p.run_engine().await;

    let (s, b) = p.get(&format!("/v1/deliveries?journey={JOURNEY}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let list = b["deliveries"].as_array().expect("deliveries");
    assert_eq!(list.len(), 1, "{b}");
    let d = &list[0];
    assert_eq!(d["profileId"], "alice");
    assert_eq!(d["stepId"], "remind");
    assert_eq!(d["channel"], "record");
    assert_eq!(d["destination"], "record");
    assert_eq!(d["status"], "Recorded");
    assert_eq!(d["message"], json!({"title": "Still thinking about it?"}));
    assert_eq!(d["entryNo"], 1);
    assert!(d["idempotencyKey"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(d["createdAt"].as_i64().is_some());

    // Filters: by profile, by an unknown journey, and the limit.
    let (_, b) = p.get("/v1/deliveries?profile=alice").await;
    assert_eq!(b["deliveries"].as_array().map(Vec::len), Some(1));
    let (_, b) = p.get("/v1/deliveries?profile=bob").await;
    assert_eq!(b["deliveries"], json!([]));
    let (s, b) = p.get("/v1/deliveries?journey=shop/unknown").await;
    assert_eq!((s, &b["deliveries"]), (StatusCode::OK, &json!([])));
    let (s, b) = p.get("/v1/deliveries?limit=1001").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("limit"));
    let (s, b) = p.get("/v1/deliveries?journey=no-slash").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("journey"));
    let (s, b) = p.get("/v1/deliveries?jorney=shop/add-to-cart").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("jorney"));
    p.shutdown().await;
}

#[tokio::test]
async fn profiles_are_upserted_with_percent_encoded_ids_and_replaced_whole() {
    let p = Plane::start().await;
    let (s, b) = p
        .put(
            "/v1/profiles/crm%2F42%40example.com",
            json!({"attributes": {"a": 1, "b": 2}}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _) = p
        .put(
            "/v1/profiles/crm%2F42%40example.com",
            json!({"attributes": {"b": 3}}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let stored = p.profile("crm/42@example.com").expect("profile stored");
    assert_eq!(stored.attrs, json!({"b": 3}));
    p.shutdown().await;
}

#[tokio::test]
async fn a_batch_with_one_malformed_item_writes_nothing() {
    let p = Plane::with_limits(Limits {
        max_batch_events: 3,
        ..Limits::default()
    })
    .await;
    p.publish(JOURNEY, add_to_cart()).await;
    let bad = json!({"events": [
        event("a"),
        event("b"),
        {"profileId": "c", "name": 42},
        event("d")
    ]});
    // Four items exceed the limit of three before anything else is looked at.
    let (s, b) = p.post("/v1/events/batch", bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("events"));

    let bad = json!({"events": [event("a"), event("b"), {"profileId": "c", "name": 42}]});
    let (s, b) = p.post("/v1/events/batch", bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_error(&b, Some("events[2].name"));
    assert_eq!(b["index"], 2);
    let bad = json!({"events": [event("a"), "not an object"]});
    let (s, b) = p.post("/v1/events/batch", bad).await;
    assert_eq!((s, &b["index"]), (StatusCode::BAD_REQUEST, &json!(1)));
    assert_error(&b, Some("events[1]"));
    let (s, b) = p.post("/v1/events/batch", json!({"events": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("events"));

    assert_eq!(
        p.profile_count(),
        0,
        "no item of a rejected batch was ingested"
    );
    assert!(p.profile("a").is_none());
    assert_eq!(p.all_deliveries().await, 0);

    let good = json!({"events": [event("a"), event("b"), event("c")]});
    let (s, b) = p.post("/v1/events/batch", good).await;
    assert_eq!((s, &b), (StatusCode::ACCEPTED, &json!({"accepted": 3})));
    assert_eq!(p.all_deliveries().await, 3);
    p.shutdown().await;
}

#[tokio::test]
async fn an_oversize_body_gets_413_and_changes_nothing() {
    // The default limit (1 MiB) ...
    let p = Plane::start().await;
    let big = "x".repeat(1024 * 1024);
    let body = json!({"profileId": "p", "name": "AddToCart", "payload": {"blob": big}});
    let (s, b) = p.post("/v1/events", body).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_error(&b, None);
    assert!(b["error"].as_str().unwrap_or_default().contains("1048576"));
    assert_eq!(p.profile_count(), 0);
    p.shutdown().await;

    // ... and a configured one, for every body-carrying endpoint.
    let p = Plane::with_limits(Limits {
        max_body_bytes: 512,
        ..Limits::default()
    })
    .await;
    let pad = "y".repeat(600);
    for (method, path, body) in [
        (
            "POST",
            "/v1/events",
            json!({"profileId": "p", "name": "N", "payload": {"pad": pad}}),
        ),
        (
            "POST",
            "/v1/events/batch",
            json!({"events": [{"profileId": "p", "name": "N", "payload": {"pad": pad}}]}),
        ),
        ("PUT", "/v1/profiles/p", json!({"attributes": {"pad": pad}})),
    ] {
        let (s, b) = p
            .send_raw(method.parse().expect("method"), path, &body.to_string())
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{method} {path}: {b}");
        assert_error(&b, None);
    }
    assert_eq!(p.profile_count(), 0);
    // Under the limit it works.
    assert_eq!(
        p.post("/v1/events", json!({"profileId": "p", "name": "N"}))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    p.shutdown().await;
}

#[tokio::test]
async fn malformed_input_gets_400_and_changes_nothing() {
    let p = Plane::start().await;
    p.publish(JOURNEY, add_to_cart()).await;
    assert_eq!(
        p.put("/v1/profiles/alice", json!({"attributes": {"vip": true}}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        p.post("/v1/events", event("alice")).await.0,
        StatusCode::ACCEPTED
    );
    let deliveries = p.all_deliveries().await;
    assert_eq!(deliveries, 1);
    let profiles = p.profile_count();

    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        (
            "POST",
            "/v1/events",
            r#"{"profileId": "bob", "name": "AddToCart""#,
            None,
        ),
        ("POST", "/v1/events", "not json", None),
        ("POST", "/v1/events", "[1, 2]", None),
        ("POST", "/v1/events", "", None),
        (
            "POST",
            "/v1/events",
            r#"{"profileId": "", "name": "AddToCart"}"#,
            Some("profileId"),
        ),
        (
            "POST",
            "/v1/events",
            r#"{"profileId": "  ", "name": "AddToCart"}"#,
            Some("profileId"),
        ),
        (
            "POST",
            "/v1/events",
            r#"{"profileId": 7, "name": "AddToCart"}"#,
            Some("profileId"),
        ),
        (
            "POST",
            "/v1/events",
            r#"{"name": "AddToCart"}"#,
            Some("profileId"),
        ),
        (
            "POST",
            "/v1/events",
            r#"{"profileId": "bob", "name": ""}"#,
            Some("name"),
        ),
        (
            "POST",
            "/v1/events",
            r#"{"profileId": "bob", "name": "AddToCart", "payload": "x"}"#,
            Some("payload"),
        ),
        (
            "POST",
            "/v1/events",
            r#"{"profile_id": "bob", "name": "AddToCart"}"#,
            Some("profile_id"),
        ),
        (
            "POST",
            "/v1/events/batch",
            r#"{"events": {"profileId": "bob"}}"#,
            Some("events"),
        ),
        (
            "PUT",
            "/v1/profiles/alice",
            r#"{"attributes": 3}"#,
            Some("attributes"),
        ),
        (
            "PUT",
            "/v1/profiles/alice",
            r#"{"attributes": null}"#,
            Some("attributes"),
        ),
        ("PUT", "/v1/profiles/alice", r#"{}"#, Some("attributes")),
        (
            "PUT",
            "/v1/profiles/alice",
            r#"{"attributes": {"vip": false}, "extra": 1}"#,
            Some("extra"),
        ),
        (
            "PUT",
            "/v1/profiles/alice",
            r#"{"attributes": {"vip": false"#,
            None,
        ),
        (
            "PUT",
            "/v1/profiles/%20",
            r#"{"attributes": {}}"#,
            Some("profileId"),
        ),
    ];
    for (method, path, body, field) in cases {
        let (s, b) = p
            .send_raw(method.parse().expect("method"), path, body)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path} {body}: {b}");
        assert_error(&b, *field);
    }
    // Not JSON at all: 415.
    let (s, _, b) = p
        .send(
            p.http
                .post(p.url("/v1/events"))
                .bearer_auth(TOKEN)
                .header("content-type", "text/plain")
                .body(event("bob").to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
    assert_error(&b, None);

    assert_eq!(p.profile_count(), profiles, "no profile was created");
    assert!(p.profile("bob").is_none());
    assert_eq!(
        p.profile("alice").expect("alice").attrs,
        json!({"vip": true}),
        "alice is unchanged"
    );
    assert_eq!(
        p.all_deliveries().await,
        deliveries,
        "no delivery was added"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn a_standby_replica_answers_503_and_writes_nothing() {
    let p = Plane::start().await;
    p.publish(JOURNEY, add_to_cart()).await;
    p.serving.send_replace(false);
    let requests = [
        ("POST", "/v1/events", event("a").to_string()),
        (
            "POST",
            "/v1/events/batch",
            json!({"events": [event("a")]}).to_string(),
        ),
        (
            "PUT",
            "/v1/profiles/a",
            json!({"attributes": {}}).to_string(),
        ),
        ("GET", "/v1/deliveries", String::new()),
        ("GET", "/v1/journeys/shop/add-to-cart/runs", String::new()),
        (
            "GET",
            "/v1/journeys/shop/add-to-cart/enrollments",
            String::new(),
        ),
    ];
    for (method, path, body) in &requests {
        let (s, h, b) = p
            .send(
                p.http
                    .request(method.parse().expect("method"), p.url(path))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}: {b}");
        assert_eq!(
            h.get("retry-after").and_then(|v| v.to_str().ok()),
            Some(RETRY_AFTER_SECS.to_string().as_str())
        );
        assert_error(&b, None);
    }
    // Authentication still comes first on a standby.
    let (s, _, _) = p.send(p.http.get(p.url("/v1/deliveries"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(p.profile_count(), 0);
    assert_eq!(p.all_deliveries().await, 0);
    // The document stays public.
    assert_eq!(p.get("/openapi.json").await.0, StatusCode::OK);

    // Taking the lease opens the gate.
    p.serving.send_replace(true);
    assert_eq!(
        p.post("/v1/events", event("a")).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(p.all_deliveries().await, 1);
    p.shutdown().await;
}

#[tokio::test]
async fn run_history_of_a_journey() {
    let p = Plane::start().await;
    let read = json!({
        "entry": {"audience": {"condition": "has(profile.ok) && profile.ok", "mode": "Read",
                               "schedule": {"cron": "0 0 1 1 *"}}},
        "steps": [{"id": "a", "action": {"channel": "email", "message": {}}}]
    });
    p.publish("shop/newsletter", read).await;
    for id in ["p1", "p2"] {
        let (s, _) = p
            .put(
                &format!("/v1/profiles/{id}"),
                json!({"attributes": {"ok": true}}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let engine = p.engine.clone();
    tokio::task::spawn_blocking(move || {
        engine.request_blocking("shop/newsletter", RequestKind::RunNow, "run-1")
    })
    .await
    .expect("join")
    .expect("run now");
    p.run_engine().await;

    let (s, b) = p.get("/v1/journeys/shop/newsletter/runs").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let runs = b["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{b}");
    assert_eq!(runs[0]["kind"], "RunNow");
    assert_eq!(runs[0]["entered"], 2);
    assert_eq!(runs[0]["outcome"], "Succeeded");
    assert!(runs[0]["startedAt"].as_i64().is_some());
    let (s, b) = p.get("/v1/journeys/shop/newsletter/runs?limit=1").await;
    assert_eq!(
        (s, b["runs"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );

    let (s, b) = p.get("/v1/journeys/shop/unknown/runs").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or_default()
            .contains("shop/unknown")
    );
    let (s, b) = p.get("/v1/journeys/shop/newsletter/runs?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("limit"));
    p.shutdown().await;
}

/// Where profiles are in a journey: each entry's step and state, keyset-paged, one profile's
/// entries on their own; bad paging parameters get 400 naming the parameter.
#[tokio::test]
async fn enrollments_show_where_each_profile_is() {
    let p = Plane::start().await;
    p.publish(JOURNEY, add_to_cart()).await;
    for id in ["alice", "bob", "carol"] {
        let (s, _) = p.post("/v1/events", event(id)).await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    p.run_engine().await;
    let path = "/v1/journeys/shop/add-to-cart/enrollments";
    let (s, b) = p.get(&format!("{path}?limit=2")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let page = b["enrollments"].as_array().expect("enrollments");
    assert_eq!(page.len(), 2, "{b}");
    assert_eq!(page[0]["profileId"], "alice");
    assert!(page[0]["step"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(page[0]["state"].as_str().is_some());
    let after = b["nextAfter"].as_i64().expect("a next page");
    let (_, b) = p.get(&format!("{path}?limit=2&after={after}")).await;
    let rest = b["enrollments"].as_array().expect("enrollments");
    assert_eq!(rest.len(), 1, "{b}");
    assert_eq!(rest[0]["profileId"], "carol");
    assert!(b.get("nextAfter").is_none(), "the last page: {b}");
    let (_, b) = p.get(&format!("{path}?profile=bob")).await;
    let bob = b["enrollments"].as_array().expect("enrollments");
    assert_eq!(
        (bob.len(), &bob[0]["profileId"], &bob[0]["entryNo"]),
        (1, &json!("bob"), &json!(1))
    );
    for (query, field) in [
        ("after=-1", "after"),
        ("limit=0", "limit"),
        ("step=x", "step"),
    ] {
        let (s, b) = p.get(&format!("{path}?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {b}");
        assert_error(&b, Some(field));
    }
    let (s, _) = p.get("/v1/journeys/shop/unknown/enrollments").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    p.shutdown().await;
}

/// `plan --cluster`'s question, answered by the engine: how many in-flight profiles a new
/// global filter would exclude. Terminal enrollments do not count, held ones do, a missing
/// attribute is an evaluation error (not a match), and asking changes nothing.
#[tokio::test]
async fn a_candidate_global_filter_is_counted_over_in_flight_profiles_and_changes_nothing() {
    let p = Plane::start().await;
    let wait_then_send = json!({
        "state": "Published",
        "entry": {"event": {"name": "AddToCart"}},
        "steps": [
            {"id": "wait", "wait": {"duration": "1h"}},
            {"id": "send", "action": {"channel": "record", "message": {}}}
        ]
    });
    p.publish(JOURNEY, wait_then_send).await;
    let countries = [
        ("fr-1", json!({"country": "FR"})),
        ("fr-2", json!({"country": "FR"})),
        ("de-1", json!({"country": "DE"})),
        ("unknown", json!({})),
    ];
    for (id, attrs) in &countries {
        let (s, b) = p
            .put(&format!("/v1/profiles/{id}"), json!({"attributes": attrs}))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        assert_eq!(
            p.post("/v1/events", event(id)).await.0,
            StatusCode::ACCEPTED
        );
    }
    p.run_engine().await;
    let path = "/v1/journeys/shop/add-to-cart/filter-matches";
    let (s, b) = p
        .post(path, json!({"filter": "profile.country == 'FR'"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"inFlight": 4, "matching": 2, "evaluationErrors": 1})
    );
    let (s, b) = p
        .post(
            path,
            json!({"filter": "has(profile.country) && profile.country != 'DE'"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"inFlight": 4, "matching": 2, "evaluationErrors": 0})
    );

    // Asking excluded or sent nothing.
    let enrollments = |e: &Engine<SqliteStore>| {
        e.enrollments_blocking(JOURNEY)
            .expect("enrollments")
            .into_iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
    };
    let before = enrollments(&p.engine);
    p.post(path, json!({"filter": "true"})).await;
    assert_eq!(enrollments(&p.engine), before, "asking changed enrollments");
    assert_eq!(p.all_deliveries().await, 0);

    // Only in-flight profiles count: once they went through the action they are completed.
    p.clock.advance(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(p.all_deliveries().await, 4);
    let (s, b) = p.post(path, json!({"filter": "true"})).await;
    assert_eq!(
        (s, b),
        (
            StatusCode::OK,
            json!({"inFlight": 0, "matching": 0, "evaluationErrors": 0})
        )
    );

    // Bad input: 400 naming the field, CEL that does not compile, 404 for an unknown journey.
    let (s, b) = p.post(path, json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("filter"));
    let (s, b) = p.post(path, json!({"filter": "profile.("})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or_default()
            .contains("profile.("),
        "{b}"
    );
    let (s, b) = p.post(path, json!({"filter": "event.total > 1"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = p.post(path, json!({"filter": "true", "extra": 1})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, Some("extra"));
    let (s, b) = p
        .post(
            "/v1/journeys/shop/unknown/filter-matches",
            json!({"filter": "true"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    p.shutdown().await;
}

/// Concrete request paths for the route templates.
fn concrete(path: &str) -> String {
    path.replace("{profileId}", "someone")
        .replace("{namespace}", "shop")
        .replace("{name}", "add-to-cart")
}

#[tokio::test]
async fn the_openapi_document_lists_every_served_route() {
    let p = Plane::start().await;
    p.publish(JOURNEY, add_to_cart()).await;
    let (s, h, doc) = p.send(p.http.get(p.url("/openapi.json"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");

    // Every served route is documented, and every documented operation is served: a real
    // request reaches a handler (not the 404 / 405 fallbacks).
    for (method, path) in ROUTES {
        assert!(
            paths
                .get(*path)
                .is_some_and(|ops| ops.get(method.to_lowercase()).is_some()),
            "{method} {path} is served but not in /openapi.json"
        );
    }
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            let body = match path.as_str() {
                "/v1/events" => event("x").to_string(),
                "/v1/events/batch" => json!({"events": [event("x")]}).to_string(),
                "/v1/profiles/{profileId}" => json!({"attributes": {}}).to_string(),
                "/v1/journeys/{namespace}/{name}/filter-matches" => {
                    json!({"filter": "true"}).to_string()
                }
                _ => String::new(),
            };
            let (s, b) = p
                .send_raw(
                    method.to_uppercase().parse().expect("method"),
                    &concrete(path),
                    &body,
                )
                .await;
            assert!(
                s.is_success(),
                "{method} {path} is documented but answers {s}: {b}"
            );
        }
    }

    // Unknown routes and wrong methods: JSON 404 / 405.
    let (s, b) = p.get("/v1/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&b, None);
    let (s, h, b) = p
        .send(p.http.delete(p.url("/v1/events")).bearer_auth(TOKEN))
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
    assert_error(&b, None);
    assert_eq!(h.get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let (s, _, b) = p.send(p.http.post(p.url("/openapi.json"))).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&b, None);
    p.shutdown().await;
}

#[tokio::test]
async fn the_token_file_must_exist_and_hold_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("engine.db")).expect("store");
    let engine = Engine::new(
        store,
        Arc::new(VirtualClock::at_default_epoch()),
        EngineConfig::default(),
    )
    .expect("engine");
    let dp: Arc<dyn DataPlane> = Arc::new(engine);
    let (_tx, rx) = watch::channel(true);
    let addr = "127.0.0.1:0".parse().expect("addr");

    let missing = DataPlaneConfig::new(addr, dir.path().join("absent"));
    let err = DataPlaneServer::bind(&missing, dp.clone(), rx.clone())
        .await
        .expect_err("missing token file");
    assert!(matches!(err, DataPlaneError::TokenFile { .. }), "{err}");
    assert!(err.to_string().contains("absent"), "{err}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let err = DataPlaneServer::bind(&DataPlaneConfig::new(addr, &empty), dp.clone(), rx.clone())
        .await
        .expect_err("empty token file");
    assert!(
        matches!(err, DataPlaneError::TokenFileEmpty { .. }),
        "{err}"
    );

    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("write");
    let mut zero = DataPlaneConfig::new(addr, &token);
    zero.limits.max_batch_events = 0;
    let err = DataPlaneServer::bind(&zero, dp, rx)
        .await
        .expect_err("zero batch size");
    assert!(matches!(err, DataPlaneError::InvalidConfig(_)), "{err}");
}

/// A `MakeWriter` collecting log output in memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

const LOG_CHILD: &str = "JOURNEY_DATAPLANE_LOG_TEST_CHILD";
const LOG_TEST: &str = "dataplane::requests_are_traced_without_tokens_or_payloads";

/// One span per request with method and route; never the token, profile ids or payloads.
///
/// tracing caches each call site's interest process-wide, so a subscriber installed by one
/// test misses call sites that tests on other threads reached first. The test therefore runs
/// itself again, alone, in a child process with a global subscriber.
#[tokio::test]
async fn requests_are_traced_without_tokens_or_payloads() {
    if std::env::var_os(LOG_CHILD).is_none() {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([LOG_TEST, "--exact", "--test-threads=1"])
            .env(LOG_CHILD, "1")
            .output()
            .expect("run the logging test in a child process");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber here");

    let p = Plane::start().await;
    let secret_payload = "payload-marker-93b1";
    let profile = "profile-marker-77c4";
    let (s, _) = p
        .post(
            "/v1/events",
            json!({"profileId": profile, "name": "AddToCart", "payload": {"card": secret_payload}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _) = p
        .post(
            "/v1/events",
            json!({"profileId": profile, "name": 1, "payload": {"card": secret_payload}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = p.get(&format!("/v1/deliveries?profile={profile}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = p
        .send(
            p.http
                .get(p.url("/v1/deliveries"))
                .bearer_auth("wrong-token-marker"),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    p.shutdown().await;

    let text = logs.text();
    assert!(text.contains("dataplane_request"), "{text}");
    assert!(
        text.contains("method=POST") && text.contains("route=/v1/events"),
        "{text}"
    );
    assert!(
        text.contains("route=/v1/deliveries") && text.contains("status=401"),
        "{text}"
    );
    for secret in [TOKEN, "wrong-token-marker", secret_payload, profile] {
        assert!(!text.contains(secret), "{secret:?} was logged:\n{text}");
    }
}

/// Concurrent writers are serialized by the engine: every request succeeds, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_events_are_all_ingested() {
    let p = Arc::new(Plane::start().await);
    p.publish(JOURNEY, add_to_cart()).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.post("/v1/events", event(&format!("c{i}"))).await.0 })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("join"), StatusCode::ACCEPTED);
    }
    assert_eq!(p.all_deliveries().await, 40);
    let (_, b) = p
        .get(&format!("/v1/deliveries?journey={JOURNEY}&limit=1000"))
        .await;
    assert_eq!(b["deliveries"].as_array().map(Vec::len), Some(40));
    if let Ok(p) = Arc::try_unwrap(p) {
        p.shutdown().await;
    }
}

/// A data plane with a bug in every call: what a panic inside one request does to the server.
struct Buggy;

impl DataPlane for Buggy {
    fn ingest_events(
        &self,
        _: Vec<journey_operator::engine::NewEvent>,
    ) -> journey_operator::engine::BoxFuture<journey_operator::engine::Result<()>> {
        Box::pin(async { panic!("a bug in ingest_events") })
    }
    fn upsert_profile(
        &self,
        _: &str,
        _: Value,
    ) -> journey_operator::engine::BoxFuture<journey_operator::engine::Result<()>> {
        Box::pin(async { panic!("a bug in upsert_profile") })
    }
    fn ingest_event(
        &self,
        _: &str,
        _: &str,
        _: Value,
    ) -> journey_operator::engine::BoxFuture<journey_operator::engine::Result<()>> {
        Box::pin(async { panic!("a bug in ingest_event") })
    }
    fn list_deliveries(
        &self,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<i64>,
    ) -> journey_operator::engine::BoxFuture<
        journey_operator::engine::Result<Vec<journey_operator::engine::Delivery>>,
    > {
        Box::pin(async { panic!("a bug in list_deliveries") })
    }
    fn run_history(
        &self,
        _: &str,
        _: i64,
    ) -> journey_operator::engine::BoxFuture<
        journey_operator::engine::Result<Vec<journey_operator::engine::store::RunRecord>>,
    > {
        Box::pin(async { panic!("a bug in run_history") })
    }
    fn enrollments(
        &self,
        _: &str,
        _: Option<&str>,
        _: i64,
        _: i64,
    ) -> journey_operator::engine::BoxFuture<
        journey_operator::engine::Result<Vec<journey_operator::engine::EnrollmentView>>,
    > {
        Box::pin(async { panic!("a bug in enrollments") })
    }
    fn filter_matches(
        &self,
        _: &str,
        _: &str,
    ) -> journey_operator::engine::BoxFuture<
        journey_operator::engine::Result<journey_operator::engine::FilterMatches>,
    > {
        Box::pin(async { panic!("a bug in filter_matches") })
    }
}

#[tokio::test]
async fn a_panic_in_one_request_answers_500_and_the_server_goes_on() {
    use journey_operator::panics::{Place, count};
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("write token");
    let config = DataPlaneConfig::new("127.0.0.1:0".parse().expect("addr"), token_file);
    let (_serving, serving_rx) = watch::channel(true);
    let server = DataPlaneServer::bind(&config, Arc::new(Buggy), serving_rx)
        .await
        .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let http = journey_operator::tls::http_client_builder()
        .build()
        .expect("http client");
    let before = count(Place::DataPlane);
    for _ in 0..3 {
        let res = http
            .post(format!("{base}/v1/events"))
            .bearer_auth(TOKEN)
            .json(&json!({"profileId": "p", "name": "Go"}))
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = res.json().await.expect("json body");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("internal error")),
            "{body}"
        );
    }
    assert!(count(Place::DataPlane) >= before + 3);
    // The server still answers what does not reach the bug.
    let res = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(res.status(), StatusCode::OK);
    let _ = stop.send(());
    task.await.expect("join").expect("served");
}

/// A rotated token file takes effect without a restart; while it cannot be read, nothing is
/// accepted (503: the client is not at fault).
#[tokio::test]
async fn a_rotated_token_file_takes_effect_without_a_restart() {
    let plane = Plane::start().await;
    let status_with = |token: &'static str| {
        let req = plane
            .http
            .get(plane.url("/v1/deliveries"))
            .bearer_auth(token);
        async move { req.send().await.expect("request").status() }
    };
    assert_eq!(status_with(TOKEN).await, StatusCode::OK);
    let path = plane._dir.path().join("token");
    let next = plane._dir.path().join("token.next");
    std::fs::write(&next, "rotated-token-9c1e\n").expect("write");
    std::fs::rename(&next, &path).expect("rotate");
    crate::support::eventually("the rotated token accepted", async || {
        status_with("rotated-token-9c1e").await == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(TOKEN).await, StatusCode::UNAUTHORIZED);

    std::fs::remove_file(&path).expect("remove");
    crate::support::eventually("an unreadable token file refusing everything", async || {
        status_with("rotated-token-9c1e").await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
}
