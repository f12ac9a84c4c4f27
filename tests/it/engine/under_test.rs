//! The engine under test, reached the two ways users reach it: in-process through the
//! `JourneyEngine`/`DataPlane` traits (the embedded mode), or as a `journey-operator engine`
//! process over TLS through `EngineClient` (the controller's own client) and the data plane's
//! HTTPS routes (the remote mode). Both go through declarations (`PUT /v1/journeys/…`), as the
//! controller does; the clock is virtual either way, and `run`/`advance` return once the engine
//! has run everything due, so the same test body gives the same result over both.
//!
//! [`both_ways!`] turns each `fn name(h: &EngineUnderTest)` into `name::in_process` and
//! `name::over_tls`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use journey_model::lifecycle::JourneyState;
use journey_operator::engine::definition::PauseSpec;
use journey_operator::engine::store::RunRecord;
use journey_operator::engine::{
    DataPlane, Declaration, DeliveryStatus, DesiredLifecycle, EngineConfig, EngineError,
    EnrollmentState, EnrollmentView, JourneyEngine, PauseOptions, RequestKind, RequestOutcome,
    StatusSnapshot,
};
use serde_json::{Value, json};

use super::common::{Harness, M, definition};
use crate::engine_process::{DATA_PLANE_TOKEN, EngineProcess};

/// Both ways of reaching the engine for each named test body.
macro_rules! both_ways {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn in_process() {
                    super::$name(&$crate::engine::under_test::EngineUnderTest::in_process());
                }
                #[test]
                fn over_tls() {
                    super::$name(&$crate::engine::under_test::EngineUnderTest::over_tls());
                }
            }
        )+
    };
}
pub(crate) use both_ways;

/// A delivery as both ways report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub idempotency_key: String,
    pub epoch: i64,
    pub step_id: String,
    pub profile_id: String,
    pub channel: String,
    pub status: DeliveryStatus,
}

impl super::common::HasStep for Sent {
    fn step_id(&self) -> &str {
        &self.step_id
    }
}

impl Sent {
    pub fn idempotency_key(&self) -> String {
        self.idempotency_key.clone()
    }
}

enum Transport {
    InProcess(Harness),
    Tls {
        engine: EngineProcess,
        https: reqwest::Client,
        _dir: tempfile::TempDir,
    },
}

pub struct EngineUnderTest {
    transport: Transport,
    control: Arc<dyn JourneyEngine>,
    /// The last accepted declaration of each journey: the next one changes only what the test
    /// changes, as a user edits one field of a resource.
    declared: Mutex<HashMap<String, Declaration>>,
    rt: tokio::runtime::Runtime,
}

impl EngineUnderTest {
    pub fn in_process() -> Self {
        Self::in_process_with(EngineConfig::default())
    }

    /// In-process with engine settings the process does not take as flags (batch sizes).
    pub fn in_process_with(config: EngineConfig) -> Self {
        let harness = Harness::with_config(config);
        let control: Arc<dyn JourneyEngine> = Arc::new(harness.engine.clone());
        Self::new(Transport::InProcess(harness), control, runtime())
    }

    pub fn over_tls() -> Self {
        let rt = runtime();
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = rt.block_on(EngineProcess::start(dir.path()));
        let control: Arc<dyn JourneyEngine> = Arc::new(engine.client());
        let https = engine.https();
        let transport = Transport::Tls {
            engine,
            https,
            _dir: dir,
        };
        Self::new(transport, control, rt)
    }

    fn new(
        transport: Transport,
        control: Arc<dyn JourneyEngine>,
        rt: tokio::runtime::Runtime,
    ) -> Self {
        Self {
            transport,
            control,
            declared: Mutex::new(HashMap::new()),
            rt,
        }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The engine itself when it runs in this process (inspections no route serves).
    pub fn engine(
        &self,
    ) -> Option<&journey_operator::engine::Engine<journey_operator::engine::SqliteStore>> {
        match &self.transport {
            Transport::InProcess(h) => Some(&h.engine),
            Transport::Tls { .. } => None,
        }
    }

    fn data(&self) -> Option<Arc<dyn DataPlane>> {
        match &self.transport {
            Transport::InProcess(h) => Some(Arc::new(h.engine.clone())),
            Transport::Tls { .. } => None,
        }
    }

    /// The engine's time (the virtual clock).
    pub fn now(&self) -> i64 {
        match &self.transport {
            Transport::InProcess(h) => h.now(),
            Transport::Tls { .. } => self.clock(0),
        }
    }

    fn clock(&self, millis: i64) -> i64 {
        let Transport::Tls { engine, https, .. } = &self.transport else {
            unreachable!("only over TLS")
        };
        self.block_on(async {
            let r = https
                .post(engine.api_url("/v1/test/clock/advance"))
                .bearer_auth(crate::engine_process::ENGINE_TOKEN)
                .json(&json!({ "millis": millis }))
                .send()
                .await
                .expect("advance the clock");
            assert!(r.status().is_success(), "advance: {}", r.status());
            let body: Value = r.json().await.expect("clock json");
            body["now"].as_i64().expect("now")
        })
    }

    // ---- control: declarations ----

    /// Declares `d` with the last declaration's other fields; `Err` when the engine refuses
    /// (then nothing is remembered, as nothing changed).
    fn declare(
        &self,
        key: &str,
        change: impl FnOnce(&mut Declaration),
    ) -> Result<journey_operator::engine::Declared, EngineError> {
        let mut d = self
            .declared
            .lock()
            .expect("lock")
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key}: apply a definition first"));
        d.requests = Default::default();
        change(&mut d);
        let out = self.block_on(self.control.declare(key, d.clone()))?;
        d.requests = Default::default();
        self.declared.lock().expect("lock").insert(key.into(), d);
        Ok(out)
    }

    /// Declares a new definition (`spec` as a Journey spec) in the journey's declared state
    /// (Draft for a new journey).
    pub fn try_apply(&self, key: &str, spec: Value) -> Result<StatusSnapshot, EngineError> {
        let mut def = definition(spec);
        let known = self.declared.lock().expect("lock").get(key).cloned();
        let Some(known) = known else {
            let d = Declaration {
                definition: def,
                state: JourneyState::Draft,
                requests: Default::default(),
                expected_revision: None,
                hold: None,
                actor: None,
            };
            let out = self.block_on(self.control.declare(key, d.clone()))?;
            self.declared.lock().expect("lock").insert(key.into(), d);
            return Ok(out.status);
        };
        // The lifecycle settings stay as declared unless the spec sets them.
        def.pause = def.pause.or(known.definition.pause);
        def.global_filter = def.global_filter.or(known.definition.global_filter);
        self.declare(key, |d| d.definition = def).map(|o| o.status)
    }

    pub fn apply(&self, key: &str, spec: Value) -> StatusSnapshot {
        self.try_apply(key, spec).expect("apply definition")
    }

    pub fn try_set(&self, key: &str, to: DesiredLifecycle) -> Result<StatusSnapshot, EngineError> {
        self.declare(key, |d| {
            d.state = to.state();
            if let DesiredLifecycle::Paused(o) = &to {
                d.definition.pause = Some(pause_spec(o));
                d.definition.global_filter = o.global_filter.clone();
            }
        })
        .map(|o| o.status)
    }

    pub fn set(&self, key: &str, to: DesiredLifecycle) -> StatusSnapshot {
        self.try_set(key, to).expect("set lifecycle")
    }

    pub fn publish(&self, key: &str) -> StatusSnapshot {
        self.set(key, DesiredLifecycle::Published)
    }

    pub fn pause(&self, key: &str, o: PauseOptions) -> StatusSnapshot {
        self.set(key, DesiredLifecycle::Paused(o))
    }

    /// Declares the emergency hold over the journey (`None`: released), state unchanged.
    pub fn hold(&self, key: &str, hold: Option<journey_operator::engine::Hold>) -> StatusSnapshot {
        self.declare(key, |d| d.hold = hold)
            .expect("declare a hold")
            .status
    }

    /// Declares a run-control request token and answers its outcome.
    pub fn request(&self, key: &str, kind: RequestKind, token: &str) -> RequestOutcome {
        let out = self
            .declare(key, |d| {
                let slot = match kind {
                    RequestKind::RunNow => &mut d.requests.run,
                    RequestKind::FullRun => &mut d.requests.full_run,
                    RequestKind::Restart => &mut d.requests.restart,
                };
                *slot = Some(token.to_string());
            })
            .expect("declare a request");
        out.requests
            .into_iter()
            .find(|r| r.kind == kind && r.token == token)
            .map(|r| r.outcome)
            .expect("the request's outcome")
    }

    pub fn status(&self, key: &str) -> StatusSnapshot {
        self.block_on(self.control.status(key))
            .expect("status")
            .expect("journey exists")
    }

    /// Stops and removes the journey (`DELETE`); the next `apply` creates it anew.
    pub fn delete(&self, key: &str) {
        assert!(
            self.block_on(self.control.delete(key)).expect("delete"),
            "{key} existed"
        );
        self.declared.lock().expect("lock").remove(key);
    }

    // ---- time ----

    /// Runs everything due now.
    pub fn run(&self) {
        match &self.transport {
            Transport::InProcess(h) => h.run(),
            Transport::Tls { .. } => {
                self.clock(0);
            }
        }
    }

    /// Moves the clock forward in steps of at most ten minutes, running what is due after each.
    pub fn advance(&self, ms: i64) {
        match &self.transport {
            Transport::InProcess(h) => h.advance(ms),
            Transport::Tls { .. } => {
                let mut left = ms;
                while left > 0 {
                    let d = left.min(10 * M);
                    self.clock(d);
                    left -= d;
                }
            }
        }
    }

    // ---- data ----

    pub fn profile(&self, id: &str, attrs: Value) {
        match self.data() {
            Some(data) => self
                .block_on(data.upsert_profile(id, attrs))
                .expect("upsert profile"),
            None => {
                let body = json!({ "attributes": attrs });
                let status = self.send(reqwest::Method::PUT, &format!("/v1/profiles/{id}"), body);
                assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "upsert profile");
            }
        }
        self.run();
    }

    pub fn event(&self, profile: &str, name: &str, payload: Value) {
        match self.data() {
            Some(data) => self
                .block_on(data.ingest_event(profile, name, payload))
                .expect("ingest event"),
            None => {
                let body = json!({"profileId": profile, "name": name, "payload": payload});
                let status = self.send(reqwest::Method::POST, "/v1/events", body);
                assert!(status.is_success(), "ingest event: {status}");
            }
        }
        self.run();
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::StatusCode {
        let Transport::Tls { engine, https, .. } = &self.transport else {
            unreachable!("only over TLS")
        };
        self.block_on(async {
            https
                .request(method, engine.data_plane_url(path))
                .bearer_auth(DATA_PLANE_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("data plane")
                .status()
        })
    }

    fn get(&self, path: &str) -> Value {
        let Transport::Tls { engine, https, .. } = &self.transport else {
            unreachable!("only over TLS")
        };
        self.block_on(async {
            let r = https
                .get(engine.data_plane_url(path))
                .bearer_auth(DATA_PLANE_TOKEN)
                .send()
                .await
                .expect("data plane");
            assert!(r.status().is_success(), "GET {path}: {}", r.status());
            r.json().await.expect("json")
        })
    }

    pub fn deliveries(&self, key: &str) -> Vec<Sent> {
        self.deliveries_of(key, None)
    }

    pub fn deliveries_to(&self, key: &str, profile: &str) -> Vec<Sent> {
        self.deliveries_of(key, Some(profile))
    }

    fn deliveries_of(&self, key: &str, profile: Option<&str>) -> Vec<Sent> {
        if let Some(data) = self.data() {
            return self
                .block_on(data.list_deliveries(Some(key), profile, Some(1000)))
                .expect("deliveries")
                .into_iter()
                .map(|d| Sent {
                    idempotency_key: d.idempotency_key(),
                    epoch: d.epoch,
                    step_id: d.step_id,
                    profile_id: d.profile_id,
                    channel: d.channel,
                    status: d.status,
                })
                .collect();
        }
        let mut path = format!("/v1/deliveries?journey={key}&limit=1000");
        if let Some(p) = profile {
            path.push_str(&format!("&profile={p}"));
        }
        let body = self.get(&path);
        let field = |d: &Value, name: &str| d[name].as_str().expect(name).to_string();
        body["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .map(|d| Sent {
                idempotency_key: field(d, "idempotencyKey"),
                epoch: d["epoch"].as_i64().expect("epoch"),
                step_id: field(d, "stepId"),
                profile_id: field(d, "profileId"),
                channel: field(d, "channel"),
                status: serde_json::from_value(d["status"].clone()).expect("status"),
            })
            .collect()
    }

    /// Every enrollment of the journey, oldest first (the data plane pages them).
    pub fn enrollments(&self, key: &str) -> Vec<EnrollmentView> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page: Vec<EnrollmentView> = match self.data() {
                Some(data) => self
                    .block_on(data.enrollments(key, None, after, 1000))
                    .expect("enrollments"),
                None => {
                    let body = self.get(&format!(
                        "/v1/journeys/{key}/enrollments?after={after}&limit=1000"
                    ));
                    serde_json::from_value(body["enrollments"].clone()).expect("enrollments")
                }
            };
            let Some(last) = page.last() else {
                return out;
            };
            after = last.id;
            let full = page.len() == 1000;
            out.extend(page);
            if !full {
                return out;
            }
        }
    }

    /// The profile's latest entry.
    pub fn enrollment(&self, key: &str, profile: &str) -> EnrollmentView {
        let page: Vec<EnrollmentView> = match self.data() {
            Some(data) => self
                .block_on(data.enrollments(key, Some(profile), 0, 1000))
                .expect("enrollments"),
            None => {
                let body = self.get(&format!(
                    "/v1/journeys/{key}/enrollments?profile={profile}&limit=1000"
                ));
                serde_json::from_value(body["enrollments"].clone()).expect("enrollments")
            }
        };
        page.into_iter().last().expect("enrollment exists")
    }

    pub fn state_of(&self, key: &str, profile: &str) -> (EnrollmentState, String) {
        let e = self.enrollment(key, profile);
        (e.state, e.step)
    }

    /// Runs of the journey, newest first.
    pub fn run_history(&self, key: &str) -> Vec<RunRecord> {
        match self.data() {
            Some(data) => self
                .block_on(data.run_history(key, 10))
                .expect("run history"),
            None => {
                let body = self.get(&format!("/v1/journeys/{key}/runs?limit=10"));
                serde_json::from_value(body["runs"].clone()).expect("runs")
            }
        }
    }
}

/// The Journey `spec.pause` that declares these options (the inverse of
/// `PauseOptions::from_spec`).
fn pause_spec(o: &PauseOptions) -> PauseSpec {
    assert_eq!(o.max_duration_ms % 1000, 0, "whole seconds");
    PauseSpec {
        mode: o.mode,
        entries: o.entries,
        waits: o.waits,
        max_duration: Some(format!("{}s", o.max_duration_ms / 1000)),
        on_expiry: o.on_expiry,
        reason: o.reason.clone(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Upserts `n` profiles `p0..` with `attrs(i)`.
pub fn seed_profiles(h: &EngineUnderTest, n: usize, attrs: impl Fn(usize) -> Value) {
    for i in 0..n {
        h.profile(&format!("p{i}"), attrs(i));
    }
}
