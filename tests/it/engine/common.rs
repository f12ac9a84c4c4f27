#![allow(dead_code)]

use std::sync::Arc;

use journey_operator::engine::clock::{DAY, HOUR, MINUTE, SECOND};
use journey_operator::engine::{
    AppliedVersion, Definition, Delivery, DesiredLifecycle, Engine, EngineConfig, EnrollmentState,
    EnrollmentView, PauseOptions, SqliteStore, StatusSnapshot, VirtualClock,
};
use serde_json::{Value, json};

pub const S: i64 = SECOND;
pub const M: i64 = MINUTE;
pub const H: i64 = HOUR;
pub const D: i64 = DAY;

/// The engine definition of a Journey `spec` (test JSON often carries the resource's own
/// `state` and `deletionPolicy`, which the engine's definition refuses as unknown fields).
pub fn definition(mut spec: Value) -> Definition {
    if let Some(map) = spec.as_object_mut() {
        map.remove("state");
        map.remove("deletionPolicy");
    }
    Definition::from_json(spec).expect("definition parses")
}

pub struct Harness {
    pub engine: Engine<SqliteStore>,
    pub clock: VirtualClock,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    pub fn with_config(config: EngineConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = VirtualClock::at_default_epoch();
        let store = SqliteStore::open(dir.path().join("engine.db")).expect("open store");
        let engine = Engine::new(store, Arc::new(clock.clone()), config).expect("engine");
        Self { engine, clock, dir }
    }

    /// An engine on a copy of `db` (a fixture is never written to), its clock at `now`.
    pub fn open_copy(db: &std::path::Path, now: i64, config: EngineConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(db, dir.path().join("engine.db")).expect("copy the database");
        let clock = VirtualClock::new(now);
        let store = SqliteStore::open(dir.path().join("engine.db")).expect("open store");
        let engine = Engine::new(store, Arc::new(clock.clone()), config).expect("engine");
        Self { engine, clock, dir }
    }

    /// The engine stopped and opened again on the same file and clock (a process restart).
    pub fn reopen(self) -> Self {
        let Harness { engine, clock, dir } = self;
        drop(engine);
        let store = SqliteStore::open(dir.path().join("engine.db")).expect("open store");
        let engine =
            Engine::new(store, Arc::new(clock.clone()), EngineConfig::default()).expect("engine");
        Self { engine, clock, dir }
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("engine.db")
    }

    pub fn now(&self) -> i64 {
        self.engine.now()
    }

    pub fn apply(&self, key: &str, spec: Value) -> AppliedVersion {
        let def = definition(spec);
        self.engine
            .apply_definition_blocking(key, &def)
            .expect("apply definition")
    }

    pub fn set(&self, key: &str, d: DesiredLifecycle) -> StatusSnapshot {
        self.engine
            .set_lifecycle_blocking(key, d)
            .expect("set lifecycle")
    }

    pub fn publish(&self, key: &str) -> StatusSnapshot {
        self.set(key, DesiredLifecycle::Published)
    }

    pub fn pause(&self, key: &str, o: PauseOptions) -> StatusSnapshot {
        self.set(key, DesiredLifecycle::Paused(o))
    }

    pub fn status(&self, key: &str) -> StatusSnapshot {
        self.engine
            .status_blocking(key)
            .expect("status")
            .expect("journey exists")
    }

    pub fn run(&self) {
        self.engine.run_until_idle().expect("tick");
    }

    /// Advances the virtual clock in steps of at most `step` ms, ticking after each.
    pub fn advance(&self, ms: i64) {
        let step = 10 * M;
        let mut left = ms;
        while left > 0 {
            let d = left.min(step);
            self.clock.advance_ms(d);
            self.run();
            left -= d;
        }
    }

    pub fn profile(&self, id: &str, attrs: Value) {
        self.engine
            .upsert_profile_blocking(id, attrs)
            .expect("upsert profile");
        self.run();
    }

    pub fn event(&self, profile: &str, name: &str, payload: Value) {
        self.engine
            .ingest_event_blocking(profile, name, payload)
            .expect("ingest event");
        self.run();
    }

    pub fn deliveries(&self, key: &str) -> Vec<Delivery> {
        self.engine
            .list_deliveries_blocking(Some(key), None, None)
            .expect("deliveries")
    }

    pub fn deliveries_to(&self, key: &str, profile: &str) -> Vec<Delivery> {
        self.engine
            .list_deliveries_blocking(Some(key), Some(profile), None)
            .expect("deliveries")
    }

    pub fn enrollments(&self, key: &str) -> Vec<EnrollmentView> {
        self.engine.enrollments_blocking(key).expect("enrollments")
    }

    pub fn enrollment(&self, key: &str, profile: &str) -> EnrollmentView {
        self.enrollments(key)
            .into_iter()
            .rev()
            .find(|e| e.profile_id == profile)
            .expect("enrollment exists")
    }

    pub fn run_history(&self, key: &str) -> Vec<journey_operator::engine::store::RunRecord> {
        self.engine.run_history_blocking(key, 10).expect("runs")
    }

    pub fn state_of(&self, key: &str, profile: &str) -> (EnrollmentState, String) {
        let e = self.enrollment(key, profile);
        (e.state, e.step)
    }
}

/// The seed 002 end-to-end sample: AddToCart -> Wait -> Condition -> push/email
/// -> reaction (Open) -> thanks.
pub fn ajo_sample() -> Value {
    json!({
        "state": "Published",
        "deletionPolicy": "Stop",
        "entry": {"event": {"name": "AddToCart"}},
        "exit": [{"event": {"name": "Purchase"}}],
        "steps": [
            {"id": "wait", "wait": {"duration": "1h"}},
            {"id": "cond", "condition": {"branches": [{"when": "has(profile.vip) && profile.vip", "next": "push"}], "otherwise": "email"}},
            {"id": "push", "action": {"channel": "push", "message": {"body": "v1"}}, "next": "react"},
            {"id": "email", "action": {"channel": "email", "message": {"subject": "v1"}}, "next": "react"},
            {"id": "late", "action": {"channel": "email", "message": {"subject": "reminder"}}, "next": "thanks"},
            {"id": "react", "waitForEvent": {"name": "Open", "timeout": "48h", "onTimeout": "late"}},
            {"id": "thanks", "action": {"channel": "record", "message": {"body": "thanks"}}}
        ]
    })
}

/// A journey with an action first (entrance -> action -> wait 1h -> action).
pub fn action_first() -> Value {
    json!({
        "entry": {"event": {"name": "Go"}},
        "steps": [
            {"id": "hello", "action": {"channel": "email", "message": {"subject": "hello"}}},
            {"id": "wait", "wait": {"duration": "1h"}},
            {"id": "followup", "action": {"channel": "email", "message": {"subject": "followup"}}}
        ]
    })
}

pub fn hold() -> PauseOptions {
    PauseOptions::default()
}

/// A delivery as a test sees it, in-process ([`Delivery`]) or over HTTP
/// ([`super::under_test::Sent`]).
pub trait HasStep {
    fn step_id(&self) -> &str;
}

impl HasStep for Delivery {
    fn step_id(&self) -> &str {
        &self.step_id
    }
}

pub fn steps_of<D: HasStep>(d: &[D]) -> Vec<String> {
    d.iter().map(|x| x.step_id().to_string()).collect()
}

pub fn seed_profiles(h: &Harness, n: usize, attrs: impl Fn(usize) -> Value) {
    for i in 0..n {
        h.profile(&format!("p{i}"), attrs(i));
    }
}
