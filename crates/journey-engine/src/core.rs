//! The engine core: its configuration, shared state and the helpers every job uses. The jobs
//! are split by module: control commands (`control`), ingest (`ingest`), the scheduler
//! (`scheduler`) and the outbox (`webhook`); the async
//! [`super::api`] traits wrap these with `spawn_blocking`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast};

use super::api::{Change, ChangeCause};
use super::clock::{Clock, Millis};
use super::definition::{CompiledDefinition, Definition, compile};
use super::defs::{COMPILED_DEFINITIONS_KEPT, DefinitionCache, EntryKind};
use super::destinations::DestinationConfig;
use super::error::{EngineError, Result, json_err};
use super::expr::{self, Expr, Vars};
use super::lifecycle::*;
use super::store::{EnrollmentState as ES, JourneyRow, Store, StoreTx};
use super::wakes::Wakes;
use journey_model::lifecycle as lifecycle_table;

/// Engine-wide configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Engine-wide cap on held profiles (seed 002: 10M per organisation).
    pub held_cap: i64,
    /// Enrollments advanced per transaction.
    pub batch_size: i64,
    /// Profiles read per transaction by an audience read.
    pub read_batch: i64,
    /// Held profiles released per transaction (upper bound; the rate decides).
    pub release_batch: i64,
    pub destinations: DestinationConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            held_cap: 10_000_000,
            batch_size: 5_000,
            read_batch: 5_000,
            release_batch: 100_000,
            destinations: DestinationConfig::default(),
        }
    }
}

/// An enrollment as shown to operators and tests.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentView {
    /// The enrollment's id: the cursor of the next page (`after`).
    pub id: i64,
    pub profile_id: String,
    pub epoch: i64,
    pub version: i64,
    pub entry_no: i64,
    pub step: String,
    pub state: ES,
    pub due_at: Option<Millis>,
    pub entered_at: Millis,
    pub reason: Option<String>,
}

/// What one [`Engine::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    pub advanced: i64,
    pub deliveries: i64,
    pub released: i64,
    pub entered: i64,
    pub timed_out: i64,
    /// Deliveries failed because their message's template could not be rendered.
    pub template_errors: i64,
}

impl TickReport {
    pub fn is_idle(&self) -> bool {
        *self == Self::default()
    }
    pub(crate) fn add(&mut self, o: TickReport) {
        self.advanced += o.advanced;
        self.deliveries += o.deliveries;
        self.released += o.released;
        self.entered += o.entered;
        self.timed_out += o.timed_out;
        self.template_errors += o.template_errors;
    }
}

pub(crate) struct Inner<S: Store> {
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    pub(crate) defs: Mutex<DefinitionCache>,
    filters: Mutex<HashMap<String, Arc<Expr>>>,
    pub(crate) changes: broadcast::Sender<Change>,
    pub(crate) wake: Notify,
    /// Control-plane and data-plane writers waiting for the writer lock; the
    /// scheduler yields between batches while this is non-zero, so a pause
    /// call waits for at most one batch.
    priority: std::sync::atomic::AtomicUsize,
    /// Engine-wide held count for the guardrail: (measured at, count). Re-counted
    /// at most once per second (seed 002 checks every 30 minutes) and kept up to
    /// date with the holds this process makes in between (conservative: releases
    /// are only seen at the next count).
    pub(crate) held_cache: Mutex<Option<(std::time::Instant, i64)>>,
    /// Which journeys the scheduler may skip, so an idle tick costs O(changed journeys), not
    /// one write transaction per journey.
    wakes: Mutex<Wakes>,
    /// When the scheduler last dropped expired tombstones from the change feed.
    pub(crate) feed_purged_at: Mutex<Millis>,
    /// Destination credentials, read again when their files change.
    pub(crate) credentials: super::credentials::CredentialFiles,
}

/// The journey engine. Cheap to clone (shared state).
///
/// Construct with a store and a clock:
/// `Engine::new(SqliteStore::open(path)?, Arc::new(SystemClock), EngineConfig::default())`.
pub struct Engine<S: Store> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) fn load_rt(row: &JourneyRow) -> Result<Runtime> {
    serde_json::from_str(&row.runtime).map_err(json_err("journey runtime"))
}

pub(crate) fn save_rt(tx: &mut dyn StoreTx, id: i64, rt: &Runtime) -> Result<()> {
    let s = serde_json::to_string(rt).map_err(json_err("journey runtime"))?;
    Ok(tx.save_runtime(id, &s)?)
}

/// A change the lifecycle table refuses, with the rule's own message (the one the CRD's CEL
/// gives).
pub(crate) fn refused(
    key: &str,
    from: Phase,
    to: &DesiredLifecycle,
    refusal: lifecycle_table::Refusal,
) -> EngineError {
    EngineError::IllegalTransition {
        key: key.to_string(),
        from: from.name().to_string(),
        to: to.name().to_string(),
        rule: refusal.rule,
        why: refusal.message.to_string(),
    }
}

impl<S: Store> Engine<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>, config: EngineConfig) -> Result<Self> {
        config.destinations.validate()?;
        let (changes, _) = broadcast::channel(4096);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                defs: Mutex::new(DefinitionCache::new(COMPILED_DEFINITIONS_KEPT)),
                filters: Mutex::new(HashMap::new()),
                changes,
                wake: Notify::new(),
                priority: std::sync::atomic::AtomicUsize::new(0),
                held_cache: Mutex::new(None),
                wakes: Mutex::new(Wakes::default()),
                feed_purged_at: Mutex::new(0),
                credentials: Default::default(),
            }),
        })
    }

    pub fn store(&self) -> &S {
        &self.inner.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Wakes the scheduler now (after a virtual clock moved, say).
    pub fn wake_scheduler(&self) {
        self.inner.wake.notify_one();
    }

    /// Subscribes to the change stream: the journeys whose status changed, and why.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// A read snapshot, the engine's errors out.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&mut dyn StoreTx) -> Result<R>) -> Result<R> {
        self.inner.store.read(f)
    }

    /// A write at the scheduler's own priority (batches; no precedence).
    pub(crate) fn write_batch<R>(
        &self,
        f: impl FnOnce(&mut dyn StoreTx) -> Result<R>,
    ) -> Result<R> {
        self.inner.store.write(f)
    }

    /// A write that takes precedence over the scheduler's batches.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut dyn StoreTx) -> Result<R>) -> Result<R> {
        use std::sync::atomic::Ordering;
        self.inner.priority.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.store.write(f);
        self.inner.priority.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// Scheduler side: let waiting priority writers go first.
    pub(crate) fn yield_to_priority(&self) {
        use std::sync::atomic::Ordering;
        while self.inner.priority.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    pub(crate) fn notify(&self, key: &str, cause: ChangeCause) {
        self.wakes().touch(key);
        let _ = self.inner.changes.send(Change {
            key: key.to_string(),
            cause,
        });
        self.inner.wake.notify_one();
    }

    pub(crate) fn wakes(&self) -> std::sync::MutexGuard<'_, Wakes> {
        self.inner
            .wakes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The journeys this tick visits: all of them at the first tick, then the touched ones
    /// and those whose time-based work is due.
    pub(crate) fn visits(&self, now: Millis) -> Result<Vec<(i64, std::sync::Arc<str>)>> {
        let due = self.wakes().due(now);
        let Some(due) = due else {
            let all = self.read(|tx| Ok(tx.list_journey_keys()?))?;
            return Ok(self.wakes().listed(&all));
        };
        let mut visits = due.known;
        for key in due.unknown {
            match self.read(|tx| Ok(tx.journey_for_update(&key)?))? {
                Some(row) => {
                    self.wakes().learn(&key, row.id);
                    visits.push((row.id, key));
                }
                None => self.wakes().forget(&key),
            }
        }
        Ok(visits)
    }

    pub(crate) fn def(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        version: i64,
    ) -> Result<Arc<CompiledDefinition>> {
        if let Ok(mut m) = self.inner.defs.lock()
            && let Some(d) = m.get((jid, version))
        {
            return Ok(d);
        }
        let json = tx
            .version_definition(jid, version)?
            .ok_or(EngineError::Corrupt {
                context: "version",
                message: format!("journey {jid} has no version {version}"),
            })?;
        let def: Definition = serde_json::from_str(&json).map_err(json_err("stored definition"))?;
        let c = Arc::new(compile(&def, &self.inner.config.destinations)?);
        if let Ok(mut m) = self.inner.defs.lock() {
            m.insert((jid, version), c.clone());
        }
        Ok(c)
    }

    /// The kind of entry of the journey's current version, compiling that version only when
    /// the cache has never seen it.
    pub(crate) fn cur_entry(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &Runtime,
    ) -> Result<Option<EntryKind>> {
        let Some(version) = rt.version else {
            return Ok(None);
        };
        let known = self
            .inner
            .defs
            .lock()
            .ok()
            .and_then(|m| m.entry((jid, version)));
        match known {
            Some(entry) => Ok(Some(entry)),
            None => Ok(Some(EntryKind::of(&*self.def(tx, jid, version)?))),
        }
    }

    pub(crate) fn cur_def(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &Runtime,
    ) -> Result<Option<Arc<CompiledDefinition>>> {
        match rt.version {
            Some(v) => self.def(tx, jid, v).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn filter(&self, src: &str) -> Result<Arc<Expr>> {
        if let Ok(m) = self.inner.filters.lock()
            && let Some(e) = m.get(src)
        {
            return Ok(e.clone());
        }
        let e = Arc::new(expr::compile(src, Vars::Profile)?);
        if let Ok(mut m) = self.inner.filters.lock() {
            m.insert(src.to_string(), e.clone());
        }
        Ok(e)
    }
}
