//! The engine core: synchronous operations over a [`Store`]. The async
//! [`super::api`] traits wrap these with `spawn_blocking`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast};

use super::api::{Change, ChangeCause, NewEvent};
use super::clock::{Clock, Millis, SECOND};
use super::definition::{
    CEntry, CStepKind, CompiledDefinition, Definition, OnExpiry, PauseEntries, PauseMode,
    PauseWaits, compile,
};
use super::defs::{COMPILED_DEFINITIONS_KEPT, DefinitionCache, EntryKind};
use super::destinations::DestinationConfig;
use super::error::{EngineError, Result, json_err};
use super::expr::{self, Expr, Vars};
use super::lifecycle::*;
use super::store::{
    Delivery, DeliveryFilter, DeliveryStatus, Enrollment, EnrollmentState as ES, JourneyRow,
    RunRecord, Store, StoreTx, step_key,
};
use super::wakes::{MAX_QUIET_MS, Wakes};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentView {
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
}

impl TickReport {
    pub fn is_idle(&self) -> bool {
        *self == Self::default()
    }
    fn add(&mut self, o: TickReport) {
        self.advanced += o.advanced;
        self.deliveries += o.deliveries;
        self.released += o.released;
        self.entered += o.entered;
        self.timed_out += o.timed_out;
    }
}

pub(crate) struct Inner<S: Store> {
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    defs: Mutex<DefinitionCache>,
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
    held_cache: Mutex<Option<(std::time::Instant, i64)>>,
    /// Which journeys the scheduler may skip, so an idle tick costs O(changed journeys), not
    /// one write transaction per journey.
    wakes: Mutex<Wakes>,
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

const MAX_HOPS: usize = 256;
/// Enrollments per read transaction when evaluating a candidate global filter.
const FILTER_PAGE: i64 = 5_000;

fn load_rt(row: &JourneyRow) -> Result<Runtime> {
    serde_json::from_str(&row.runtime).map_err(json_err("journey runtime"))
}

fn save_rt(tx: &mut dyn StoreTx, id: i64, rt: &Runtime) -> Result<()> {
    let s = serde_json::to_string(rt).map_err(json_err("journey runtime"))?;
    tx.save_runtime(id, &s)
}

fn illegal(key: &str, from: Phase, to: &DesiredLifecycle, why: &str) -> EngineError {
    EngineError::IllegalTransition {
        key: key.to_string(),
        from: from.name().to_string(),
        to: to.name().to_string(),
        why: why.to_string(),
    }
}

/// What one housekeeping transaction did, and when the journey next has time-based work.
struct Housekeeping {
    report: TickReport,
    /// More of the same work is waiting (a release or read chunk).
    more: bool,
    /// The runtime changed in a way the status shows.
    changed: bool,
    wake_at: Millis,
}

impl Housekeeping {
    /// Nothing to do (no such journey, or no version yet) until touched.
    fn idle(now: Millis) -> Self {
        Self {
            report: TickReport::default(),
            more: false,
            changed: false,
            wake_at: now + MAX_QUIET_MS,
        }
    }
}

/// The earliest time the journey can have scheduler work without being touched: every
/// time-based trigger housekeeping and `advance_batch` act on, capped at [`MAX_QUIET_MS`].
fn next_wake(
    tx: &mut dyn StoreTx,
    jid: i64,
    rt: &Runtime,
    def: &CompiledDefinition,
    now: Millis,
) -> Result<Millis> {
    let mut at = now + MAX_QUIET_MS;
    let mut consider = |t: Option<Millis>| {
        if let Some(t) = t {
            at = at.min(t.max(now));
        }
    };
    match rt.phase {
        Phase::Scheduled => consider(Some(def.start_at.unwrap_or(now))),
        Phase::Live | Phase::Resuming => consider(def.end_at),
        Phase::Paused => consider(rt.pause.as_ref().map(|p| p.expires_at)),
        _ => {}
    }
    if matches!(rt.phase, Phase::Resuming | Phase::Closing)
        && rt.resume.as_ref().is_some_and(|r| r.finished_at.is_none())
    {
        consider(Some(now));
    }
    consider(rt.read.single_due);
    consider(rt.read.next_at);
    if rt.read.in_progress.is_some() {
        consider(Some(now));
    }
    if rt.phase.moves() {
        let frozen = rt.phase == Phase::Paused
            && rt.pause.as_ref().is_some_and(|p| {
                p.options.waits == PauseWaits::Extend && p.options.mode != PauseMode::EntryOnly
            });
        consider(tx.next_due(jid, frozen)?);
        consider(tx.next_deadline(jid, rt.deadline_swept_to)?);
    }
    Ok(at)
}

enum Enter {
    Entered,
    Queued,
    Dropped,
    Refused,
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

    /// Subscribes to the change stream: the journeys whose status changed, and why.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// A write that takes precedence over the scheduler's batches.
    fn write<R>(&self, f: impl FnOnce(&mut dyn StoreTx) -> Result<R>) -> Result<R> {
        use std::sync::atomic::Ordering;
        self.inner.priority.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.store.write(f);
        self.inner.priority.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// Scheduler side: let waiting priority writers go first.
    fn yield_to_priority(&self) {
        use std::sync::atomic::Ordering;
        while self.inner.priority.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    fn notify(&self, key: &str, cause: ChangeCause) {
        self.wakes().touch(key);
        let _ = self.inner.changes.send(Change {
            key: key.to_string(),
            cause,
        });
        self.inner.wake.notify_one();
    }

    fn wakes(&self) -> std::sync::MutexGuard<'_, Wakes> {
        self.inner
            .wakes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The journeys this tick visits: all of them at the first tick, then the touched ones
    /// and those whose time-based work is due.
    fn visits(&self, now: Millis) -> Result<Vec<(i64, std::sync::Arc<str>)>> {
        let due = self.wakes().due(now);
        let Some(due) = due else {
            let all = self.inner.store.read(|tx| tx.list_journey_keys())?;
            return Ok(self.wakes().listed(&all));
        };
        let mut visits = due.known;
        for key in due.unknown {
            match self.inner.store.read(|tx| tx.journey_for_update(&key))? {
                Some(row) => {
                    self.wakes().learn(&key, row.id);
                    visits.push((row.id, key));
                }
                None => self.wakes().forget(&key),
            }
        }
        Ok(visits)
    }

    fn def(&self, tx: &mut dyn StoreTx, jid: i64, version: i64) -> Result<Arc<CompiledDefinition>> {
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
    fn cur_entry(&self, tx: &mut dyn StoreTx, jid: i64, rt: &Runtime) -> Result<Option<EntryKind>> {
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

    fn cur_def(
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

    fn filter(&self, src: &str) -> Result<Arc<Expr>> {
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

    // ------------------------------------------------------------------
    // Control plane
    // ------------------------------------------------------------------

    /// Stores a definition. Idempotent on content: the same content returns the
    /// current version with `created: false`. A changed definition creates the
    /// next version; profiles inside stay on theirs (or migrate at resume when
    /// the change was made while paused).
    pub fn apply_definition_blocking(&self, key: &str, def: &Definition) -> Result<AppliedVersion> {
        let compiled = compile(def, &self.inner.config.destinations)?;
        let hash = def.content_hash()?;
        let json = def.versioned_json()?;
        let now = self.now();
        let out = self.write(|tx| {
            let (jid, mut rt) = match tx.journey_for_update(key)? {
                Some(row) => (row.id, load_rt(&row)?),
                None => {
                    let rt = Runtime::default();
                    let s = serde_json::to_string(&rt).map_err(json_err("journey runtime"))?;
                    (tx.insert_journey(key, &s)?, rt)
                }
            };
            let latest = tx.latest_version(jid)?;
            if let Some((v, h)) = &latest
                && *h == hash
            {
                return Ok(AppliedVersion {
                    version: *v,
                    hash: hash.clone(),
                    created: false,
                });
            }
            if rt.phase == Phase::Stopped {
                return Err(illegal(
                    key,
                    rt.phase,
                    &rt.desired,
                    "a stopped journey is frozen; copy it under a new name",
                ));
            }
            let v = latest.map(|(v, _)| v + 1).unwrap_or(1);
            tx.insert_version(jid, v, &hash, &json, now)?;
            rt.version = Some(v);
            rt.hash = Some(hash.clone());
            if let CEntry::Read {
                schedule: Some(s), ..
            } = &compiled.entry
                && matches!(rt.phase, Phase::Live | Phase::Resuming | Phase::Paused)
            {
                rt.read.next_at = s.next_after(now);
            }
            save_rt(tx, jid, &rt)?;
            Ok(AppliedVersion {
                version: v,
                hash: hash.clone(),
                created: true,
            })
        })?;
        self.notify(key, ChangeCause::Command);
        Ok(out)
    }

    /// Sets the desired lifecycle. Re-sending the same desired lifecycle is a
    /// no-op; in particular a `Paused` that already expired is never re-applied
    /// (only a new transition into Paused starts a new pause).
    pub fn set_lifecycle_blocking(
        &self,
        key: &str,
        desired: DesiredLifecycle,
    ) -> Result<StatusSnapshot> {
        if let DesiredLifecycle::Paused(o) = &desired
            && let Some(f) = &o.global_filter
        {
            expr::compile(f, Vars::Profile)?;
        }
        let now = self.now();
        self.write(|tx| {
            let (jid, mut rt) = match tx.journey_for_update(key)? {
                Some(row) => (row.id, load_rt(&row)?),
                None => {
                    let rt = Runtime::default();
                    let s = serde_json::to_string(&rt).map_err(json_err("journey runtime"))?;
                    (tx.insert_journey(key, &s)?, rt)
                }
            };
            let def = self.cur_def(tx, jid, &rt)?;
            let need_def = |d: &Option<Arc<CompiledDefinition>>| {
                d.clone().ok_or_else(|| EngineError::NoDefinition {
                    key: key.to_string(),
                })
            };
            let phase = rt.phase;
            match &desired {
                DesiredLifecycle::Draft => {
                    if phase != Phase::Draft {
                        return Err(illegal(
                            key,
                            phase,
                            &desired,
                            "a published journey cannot return to Draft",
                        ));
                    }
                }
                DesiredLifecycle::Published => match phase {
                    Phase::Draft => {
                        let d = need_def(&def)?;
                        self.go_live(&mut rt, &d, now, "Published");
                    }
                    Phase::Paused => {
                        let d = need_def(&def)?;
                        self.end_pause(tx, jid, &mut rt, &d, now, "Resumed", false)?;
                    }
                    Phase::Closing | Phase::Completed => {
                        return Err(illegal(
                            key,
                            phase,
                            &desired,
                            "Closed can only move to Stopped",
                        ));
                    }
                    Phase::Stopped => {
                        return Err(illegal(
                            key,
                            phase,
                            &desired,
                            "a stopped journey cannot be restarted; copy it under a new name",
                        ));
                    }
                    Phase::Scheduled | Phase::Live | Phase::Resuming => {}
                },
                DesiredLifecycle::Paused(opts) => match phase {
                    Phase::Closing | Phase::Completed => {
                        return Err(illegal(
                            key,
                            phase,
                            &desired,
                            "Closed can only move to Stopped",
                        ));
                    }
                    Phase::Stopped => {
                        return Err(illegal(
                            key,
                            phase,
                            &desired,
                            "a stopped journey cannot change state",
                        ));
                    }
                    Phase::Paused => {
                        // Same pause: update its options in place.
                        if let Some(p) = rt.pause.as_mut() {
                            p.options = opts.clone();
                            p.expires_at = p.since
                                + opts
                                    .max_duration_ms
                                    .clamp(0, super::definition::MAX_PAUSE_MS);
                        }
                        rt.global_filter = opts.global_filter.clone();
                    }
                    _ => {
                        let already = matches!(rt.desired, DesiredLifecycle::Paused(_));
                        if !already {
                            let d = need_def(&def)?;
                            if phase == Phase::Draft {
                                self.go_live(&mut rt, &d, now, "Published");
                            }
                            self.pause(tx, jid, &mut rt, opts, now)?;
                        }
                    }
                },
                DesiredLifecycle::Closed => match phase {
                    Phase::Draft => rt.record(Phase::Completed, now, "ClosedBeforePublish"),
                    Phase::Stopped => {
                        return Err(illegal(
                            key,
                            phase,
                            &desired,
                            "a stopped journey cannot change state",
                        ));
                    }
                    Phase::Closing | Phase::Completed => {}
                    Phase::Paused => {
                        let d = need_def(&def)?;
                        self.end_pause(tx, jid, &mut rt, &d, now, "Closed", true)?;
                    }
                    Phase::Scheduled | Phase::Live | Phase::Resuming => {
                        self.close(tx, jid, &mut rt, now, "Closed")?;
                    }
                },
                DesiredLifecycle::Stopped => {
                    if phase != Phase::Stopped {
                        self.stop(tx, jid, &mut rt, now, "Stopped")?;
                    }
                }
            }
            rt.desired = desired.clone();
            save_rt(tx, jid, &rt)?;
            Ok(())
        })?;
        self.notify(key, ChangeCause::Command);
        self.status_blocking(key)?
            .ok_or_else(|| EngineError::NotFound(key.to_string()))
    }

    fn go_live(&self, rt: &mut Runtime, def: &CompiledDefinition, now: Millis, reason: &str) {
        if def.start_at.is_some_and(|s| s > now) {
            rt.record(Phase::Scheduled, now, reason);
            return;
        }
        rt.record(Phase::Live, now, reason);
        self.on_entrance_open(rt, def, now);
    }

    fn on_entrance_open(&self, rt: &mut Runtime, def: &CompiledDefinition, now: Millis) {
        if let CEntry::Read { schedule, .. } = &def.entry {
            match schedule {
                Some(s) => rt.read.next_at = s.next_after(now),
                None => rt.read.single_due = Some(now),
            }
        }
    }

    fn abort_read(
        &self,
        tx: &mut dyn StoreTx,
        rt: &mut Runtime,
        now: Millis,
        why: &str,
    ) -> Result<()> {
        if let Some(p) = rt.read.in_progress.take() {
            tx.update_run(p.run_id, Some(now), p.entered, why)?;
        }
        Ok(())
    }

    fn pause(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        opts: &PauseOptions,
        now: Millis,
    ) -> Result<()> {
        rt.last_pause_id += 1;
        let max = opts
            .max_duration_ms
            .clamp(0, super::definition::MAX_PAUSE_MS);
        rt.pause = Some(PauseInfo {
            pause_id: rt.last_pause_id,
            since: now,
            expires_at: now + max,
            options: opts.clone(),
            version_at_pause: rt.version.unwrap_or(0),
            ended_at: None,
            end_reason: None,
        });
        rt.global_filter = opts.global_filter.clone();
        rt.resume = None;
        self.abort_read(
            tx,
            rt,
            now,
            "Aborted: journey paused; remaining queue dropped",
        )?;
        match opts.mode {
            PauseMode::Hold => {
                tx.set_delivery_status(jid, DeliveryStatus::Pending, DeliveryStatus::Held)?;
            }
            PauseMode::Discard => {
                tx.set_delivery_status(jid, DeliveryStatus::Pending, DeliveryStatus::Cancelled)?;
            }
            PauseMode::EntryOnly => {}
        }
        let reason = opts.reason.clone().unwrap_or_else(|| "Paused".to_string());
        rt.record(Phase::Paused, now, &reason);
        Ok(())
    }

    /// Ends the current pause: resume (-> Resuming) or close (-> Closing).
    #[allow(clippy::too_many_arguments)]
    fn end_pause(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        now: Millis,
        reason: &str,
        closing: bool,
    ) -> Result<()> {
        let Some(mut pause) = rt.pause.take() else {
            rt.record(
                if closing { Phase::Closing } else { Phase::Live },
                now,
                reason,
            );
            return Ok(());
        };
        if pause.options.waits == PauseWaits::Extend && pause.options.mode != PauseMode::EntryOnly {
            tx.extend_waits(jid, pause.since, now)?;
        }
        // Definition changed while paused: migrate profiles by step id.
        if let Some(cur) = rt.version
            && cur > pause.version_at_pause
        {
            for v in tx.live_versions(jid)? {
                if v == cur {
                    continue;
                }
                let old = self.def(tx, jid, v)?;
                for (i, s) in old.steps.iter().enumerate() {
                    let to = def.step_index(&s.id);
                    let wait_event = to.and_then(|t| match &def.steps[t].kind {
                        CStepKind::WaitForEvent { name, .. } => Some(name.as_str()),
                        _ => None,
                    });
                    tx.migrate_step(
                        jid,
                        v,
                        i as i64,
                        cur,
                        to.map(|t| t as i64),
                        wait_event,
                        "StepRemoved",
                        now,
                    )?;
                }
            }
        }
        tx.set_delivery_status(jid, DeliveryStatus::Held, DeliveryStatus::Pending)?;
        if closing {
            tx.transition_all(jid, &[ES::Queued], ES::Discarded, "Closed", now)?;
        } else if let Some(v) = rt.version {
            tx.admit_queued(jid, now, def.timeout_ms, v)?;
        }
        // A single execution whose time passed during the pause is skipped.
        if let Some(due) = rt.read.single_due
            && due <= now
        {
            let run = tx.insert_run(jid, RunKind::Single.name(), due)?;
            tx.update_run(
                run,
                Some(now),
                0,
                "Skipped: scheduled time passed during the pause",
            )?;
            rt.read.single_due = None;
        }
        let held = tx
            .count_states(jid, rt.epoch)?
            .into_iter()
            .find(|(s, _)| *s == ES::Held)
            .map(|(_, n)| n)
            .unwrap_or(0);
        rt.resume = Some(ResumeInfo {
            started_at: now,
            total: held,
            released: 0,
            rate: def.resume_rate,
            finished_at: None,
        });
        pause.ended_at = Some(now);
        pause.end_reason = Some(reason.to_string());
        rt.history_pause(pause);
        if closing {
            rt.read.deferred = None;
            rt.record(Phase::Closing, now, reason);
        } else if def.start_at.is_some_and(|s| s > now) {
            rt.record(Phase::Scheduled, now, reason);
        } else {
            rt.record(Phase::Resuming, now, reason);
            if let Some(kind) = rt.read.deferred.take() {
                self.start_read(tx, jid, rt, def, kind, now)?;
            }
        }
        Ok(())
    }

    fn close(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        now: Millis,
        reason: &str,
    ) -> Result<()> {
        self.abort_read(tx, rt, now, "Aborted: journey closed")?;
        tx.transition_all(jid, &[ES::Queued], ES::Discarded, "Closed", now)?;
        rt.read.next_at = None;
        rt.read.single_due = None;
        rt.read.deferred = None;
        rt.record(Phase::Closing, now, reason);
        Ok(())
    }

    fn stop(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        now: Millis,
        reason: &str,
    ) -> Result<()> {
        tx.transition_all(
            jid,
            &[ES::Active, ES::Waiting, ES::Held, ES::Queued],
            ES::Exited,
            "Stopped",
            now,
        )?;
        tx.set_delivery_status(jid, DeliveryStatus::Pending, DeliveryStatus::Cancelled)?;
        tx.set_delivery_status(jid, DeliveryStatus::Held, DeliveryStatus::Cancelled)?;
        self.abort_read(tx, rt, now, "Aborted: journey stopped")?;
        if let Some(mut p) = rt.pause.take() {
            p.ended_at = Some(now);
            p.end_reason = Some(reason.to_string());
            rt.history_pause(p);
        }
        rt.resume = None;
        rt.read = ReadState::default();
        rt.record(Phase::Stopped, now, reason);
        Ok(())
    }

    fn start_read(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        kind: RunKind,
        now: Millis,
    ) -> Result<i64> {
        self.abort_read(tx, rt, now, "Superseded by a new run")?;
        let incremental =
            matches!(
                def.entry,
                CEntry::Read {
                    incremental: true,
                    ..
                }
            ) && matches!(kind, RunKind::Scheduled | RunKind::Single | RunKind::RunNow);
        let cursor = if incremental {
            rt.read.last_completed_upto
        } else {
            0
        };
        let upto = tx.max_profile_seq()?;
        let run_id = tx.insert_run(jid, kind.name(), now)?;
        rt.read.in_progress = Some(ReadProgress {
            run_id,
            kind,
            cursor,
            upto,
            entered: 0,
        });
        Ok(run_id)
    }

    /// Handles a run-control request carried by an opaque token, exactly once.
    pub fn request_blocking(
        &self,
        key: &str,
        kind: RequestKind,
        token: &str,
    ) -> Result<RequestOutcome> {
        let now = self.now();
        let out = self.write(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            let jid = row.id;
            let mut rt = load_rt(&row)?;
            if tx.handled_token(key, kind.token_kind())?.as_deref() == Some(token) {
                return Ok(RequestOutcome::AlreadyHandled);
            }
            tx.set_handled_token(key, kind.token_kind(), token)?;
            let Some(def) = self.cur_def(tx, jid, &rt)? else {
                return Ok(RequestOutcome::Refused {
                    reason: "no published definition".into(),
                });
            };
            let audience = matches!(
                def.entry,
                CEntry::Read { .. } | CEntry::Qualification { .. }
            );
            let out = match kind {
                RequestKind::RunNow | RequestKind::FullRun => {
                    let rk = if kind == RequestKind::RunNow {
                        RunKind::RunNow
                    } else {
                        RunKind::FullRun
                    };
                    if !audience {
                        RequestOutcome::Refused {
                            reason: "runs apply to audience journeys only".into(),
                        }
                    } else if rt.phase.admits() {
                        let id = self.start_read(tx, jid, &mut rt, &def, rk, now)?;
                        RequestOutcome::Started { run_id: Some(id) }
                    } else if rt.phase == Phase::Paused {
                        rt.read.deferred = Some(rk);
                        RequestOutcome::DeferredUntilResume
                    } else {
                        RequestOutcome::Refused {
                            reason: format!("journey is {}", rt.phase.name()),
                        }
                    }
                }
                RequestKind::Restart => match rt.phase {
                    Phase::Draft | Phase::Stopped | Phase::Closing | Phase::Completed => {
                        RequestOutcome::Refused {
                            reason: format!("journey is {}", rt.phase.name()),
                        }
                    }
                    _ => {
                        tx.transition_all(
                            jid,
                            &[ES::Active, ES::Waiting, ES::Held, ES::Queued],
                            ES::Exited,
                            "Restarted",
                            now,
                        )?;
                        self.abort_read(tx, &mut rt, now, "Aborted: restart")?;
                        rt.epoch += 1;
                        rt.discarded_entrances = 0;
                        rt.read.last_completed_upto = 0;
                        let mut run_id = None;
                        if audience {
                            if rt.phase.admits() {
                                run_id = Some(self.start_read(
                                    tx,
                                    jid,
                                    &mut rt,
                                    &def,
                                    RunKind::Restart,
                                    now,
                                )?);
                            } else if rt.phase == Phase::Paused {
                                rt.read.deferred = Some(RunKind::Restart);
                            }
                        }
                        RequestOutcome::Started { run_id }
                    }
                },
            };
            save_rt(tx, jid, &rt)?;
            Ok(out)
        })?;
        self.notify(key, ChangeCause::Command);
        Ok(out)
    }

    /// Deletes a journey and everything it owns (handled tokens are kept).
    pub fn delete_blocking(&self, key: &str) -> Result<bool> {
        let found = self
            .inner
            .store
            .write(|tx| match tx.journey_for_update(key)? {
                Some(row) => {
                    tx.delete_journey(row.id)?;
                    if let Ok(mut m) = self.inner.defs.lock() {
                        m.forget_journey(row.id);
                    }
                    Ok(true)
                }
                None => Ok(false),
            })?;
        self.notify(key, ChangeCause::Command);
        self.wakes().forget(key);
        Ok(found)
    }

    pub fn status_blocking(&self, key: &str) -> Result<Option<StatusSnapshot>> {
        self.inner.store.read(|tx| {
            let Some(row) = tx.journey_for_update(key)? else {
                return Ok(None);
            };
            let rt = load_rt(&row)?;
            let mut p = ProfileCounts::default();
            for (s, n) in tx.count_states(row.id, rt.epoch)? {
                match s {
                    ES::Active => p.active = n,
                    ES::Waiting => p.waiting = n,
                    ES::Held => p.held = n,
                    ES::Queued => p.queued = n,
                    ES::Discarded => p.discarded = n,
                    ES::Excluded => p.excluded = n,
                    ES::Exited => p.exited = n,
                    ES::Completed => p.completed = n,
                }
            }
            p.entered =
                p.active + p.waiting + p.held + p.discarded + p.excluded + p.exited + p.completed;
            p.discarded += rt.discarded_entrances;
            let history = rt.history[rt.history.len().saturating_sub(10)..].to_vec();
            Ok(Some(StatusSnapshot {
                key: key.to_string(),
                phase: rt.phase,
                desired: rt.desired.clone(),
                version: rt.version,
                definition_hash: rt.hash.clone(),
                epoch: rt.epoch,
                profiles: p,
                pause: rt.pause.as_ref().map(|x| PauseStatus {
                    pause_id: x.pause_id,
                    since: x.since,
                    mode: x.options.mode,
                    reason: x.options.reason.clone(),
                    expires_at: x.expires_at,
                }),
                resume: rt.resume.as_ref().map(|r| ResumeStatus {
                    started_at: r.started_at,
                    total: r.total,
                    released: r.released,
                }),
                global_filter: rt.global_filter.clone(),
                last_runs: tx.list_runs(row.id, 5)?,
                history,
                deferred_run: rt.read.deferred,
                last_handled_run_request: tx.handled_token(key, "run")?,
                last_handled_full_run_request: tx.handled_token(key, "full-run")?,
                last_handled_restart_request: tx.handled_token(key, "restart")?,
            }))
        })
    }

    /// The phase only (no counting): cheap, for polling loops.
    pub fn phase_blocking(&self, key: &str) -> Result<Option<Phase>> {
        self.inner
            .store
            .read(|tx| match tx.journey_for_update(key)? {
                Some(row) => Ok(Some(load_rt(&row)?.phase)),
                None => Ok(None),
            })
    }

    /// Past pauses of a journey with their identity (newest last).
    pub fn pause_history_blocking(&self, key: &str) -> Result<Vec<PauseInfo>> {
        self.inner.store.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            let rt = load_rt(&row)?;
            let mut v = rt.past_pauses.clone();
            v.extend(rt.pause.clone());
            Ok(v)
        })
    }

    // ------------------------------------------------------------------
    // Data plane
    // ------------------------------------------------------------------

    /// Inserts or updates a profile; audience-qualification journeys enrol it
    /// when it starts matching.
    pub fn upsert_profile_blocking(&self, id: &str, attrs: serde_json::Value) -> Result<()> {
        self.upsert_profiles_blocking(vec![(id.to_string(), attrs)])
    }

    /// Bulk form of [`Engine::upsert_profile_blocking`]: one transaction.
    pub fn upsert_profiles_blocking(
        &self,
        profiles: Vec<(String, serde_json::Value)>,
    ) -> Result<()> {
        let now = self.now();
        let mut touched = std::collections::BTreeSet::new();
        self.write(|tx| {
            let mut journeys = Vec::new();
            for row in tx.list_journeys()? {
                let rt = load_rt(&row)?;
                if !matches!(rt.phase, Phase::Live | Phase::Resuming | Phase::Paused)
                    || self.cur_entry(tx, row.id, &rt)? != Some(EntryKind::Qualification)
                {
                    continue;
                }
                let Some(def) = self.cur_def(tx, row.id, &rt)? else {
                    continue;
                };
                if matches!(def.entry, CEntry::Qualification { .. }) {
                    journeys.push((row, rt, def, false));
                }
            }
            for (id, attrs) in &profiles {
                let (profile, old) = tx.upsert_profile(id, attrs, now)?;
                for (row, rt, def, dirty) in journeys.iter_mut() {
                    let CEntry::Qualification { condition } = &def.entry else {
                        continue;
                    };
                    let was = old
                        .as_ref()
                        .map(|o| condition.eval_bool(o, None).unwrap_or(false))
                        .unwrap_or(false);
                    let is = condition.eval_bool(attrs, None).unwrap_or(false);
                    if !was && is {
                        self.try_enter(tx, row.id, rt, def, profile.seq, now)?;
                        *dirty = true;
                    }
                }
            }
            for (row, rt, _, dirty) in &journeys {
                if *dirty {
                    save_rt(tx, row.id, rt)?;
                    touched.insert(row.key.clone());
                }
            }
            Ok(())
        })?;
        for k in touched {
            self.notify(&k, ChangeCause::Engine);
        }
        Ok(())
    }

    fn try_enter(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        profile_seq: i64,
        now: Millis,
    ) -> Result<Enter> {
        let queue = match (rt.phase, &rt.pause) {
            (p, _) if p.admits() => false,
            (Phase::Paused, Some(pause)) if pause.options.entries == PauseEntries::Queue => true,
            (Phase::Paused, _) => {
                rt.discarded_entrances += 1;
                return Ok(Enter::Dropped);
            }
            _ => return Ok(Enter::Refused),
        };
        let Some(version) = rt.version else {
            return Ok(Enter::Refused);
        };
        let last = tx.last_entry(jid, rt.epoch, profile_seq)?;
        if let Some(l) = &last {
            if !l.state.is_terminal() {
                return Ok(Enter::Refused);
            }
            if !def.reentry_allowed || now - l.entered_at < def.reentry_after_ms {
                return Ok(Enter::Refused);
            }
        }
        let e = Enrollment {
            id: 0,
            journey_id: jid,
            epoch: rt.epoch,
            version,
            profile_seq,
            entry_no: last.map(|l| l.entry_no + 1).unwrap_or(1),
            step: 0,
            state: if queue { ES::Queued } else { ES::Active },
            due_at: if queue { None } else { Some(now) },
            wait_event: None,
            deadline_at: now + def.timeout_ms,
            entered_at: now,
            updated_at: now,
            reason: None,
            hops: 0,
        };
        tx.insert_enrollment(&e)?;
        Ok(if queue { Enter::Queued } else { Enter::Entered })
    }

    /// Ingests an event: exit criteria, waitForEvent steps, held-on-action
    /// discards (seed 002 sample point 5) and event entrances.
    pub fn ingest_event_blocking(
        &self,
        profile_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<()> {
        self.ingest_events_blocking(&[NewEvent {
            profile_id: profile_id.to_string(),
            name: name.to_string(),
            payload,
        }])
    }

    /// Ingests events in order in one transaction: all of them, or none when one fails.
    pub fn ingest_events_blocking(&self, events: &[NewEvent]) -> Result<()> {
        let now = self.now();
        let mut touched = Vec::new();
        self.write(|tx| {
            for event in events {
                self.ingest_in(tx, event, now, &mut touched)?;
            }
            Ok(())
        })?;
        touched.sort_unstable();
        touched.dedup();
        for k in touched {
            self.notify(&k, ChangeCause::Engine);
        }
        Ok(())
    }

    /// One event inside an ingest transaction; the keys of the journeys it changed go to
    /// `touched`.
    fn ingest_in(
        &self,
        tx: &mut dyn StoreTx,
        event: &NewEvent,
        now: Millis,
        touched: &mut Vec<String>,
    ) -> Result<()> {
        let (profile_id, name, payload) = (
            event.profile_id.as_str(),
            event.name.as_str(),
            &event.payload,
        );
        {
            let profile = match tx.profile_by_id(profile_id)? {
                Some(p) => p,
                None => {
                    tx.upsert_profile(profile_id, &serde_json::json!({}), now)?
                        .0
                }
            };
            tx.insert_event(profile_id, name, payload, now)?;
            for row in tx.list_journeys()? {
                let mut rt = load_rt(&row)?;
                if !rt.phase.moves() && rt.phase != Phase::Completed {
                    continue;
                }
                let mut changed = false;
                for mut e in tx.live_enrollments_of(row.id, rt.epoch, profile.seq)? {
                    let old_state = e.state;
                    let def = self.def(tx, row.id, e.version)?;
                    let exit = def.exits.iter().any(|(n, c)| {
                        n == name
                            && c.as_ref().is_none_or(|c| {
                                c.eval_bool(&profile.attrs, Some(payload)).unwrap_or(false)
                            })
                    });
                    if exit {
                        e.state = ES::Exited;
                        e.due_at = None;
                        e.reason = Some("ExitCriteria".into());
                    } else if e.state == ES::Held
                        && def
                            .wait_for_event_after(e.step as usize)
                            .is_some_and(|(n, c)| {
                                n == name
                                    && c.is_none_or(|c| {
                                        c.eval_bool(&profile.attrs, Some(payload)).unwrap_or(false)
                                    })
                            })
                    {
                        e.state = ES::Discarded;
                        e.due_at = None;
                        e.reason = Some("EventWhileHeld".into());
                    } else if e.state == ES::Waiting && e.wait_event.as_deref() == Some(name) {
                        let Some(step) = def.steps.get(e.step as usize) else {
                            continue;
                        };
                        let CStepKind::WaitForEvent { condition, .. } = &step.kind else {
                            continue;
                        };
                        if !condition.as_ref().is_none_or(|c| {
                            c.eval_bool(&profile.attrs, Some(payload)).unwrap_or(false)
                        }) {
                            continue;
                        }
                        e.wait_event = None;
                        match step.next {
                            Some(n) => {
                                e.step = n as i64;
                                e.hops += 1;
                                e.state = ES::Active;
                                e.due_at = Some(now);
                            }
                            None => {
                                e.state = ES::Completed;
                                e.due_at = None;
                            }
                        }
                    } else {
                        continue;
                    }
                    e.updated_at = now;
                    tx.update_enrollment(&e, old_state)?;
                    changed = true;
                }
                if matches!(self.cur_entry(tx, row.id, &rt)?, Some(EntryKind::Event(en)) if &*en == name)
                    && let Some(def) = self.cur_def(tx, row.id, &rt)?
                    && let CEntry::Event {
                        name: en,
                        condition,
                    } = &def.entry
                    && en == name
                    && condition
                        .as_ref()
                        .is_none_or(|c| c.eval_bool(&profile.attrs, Some(payload)).unwrap_or(false))
                {
                    self.try_enter(tx, row.id, &mut rt, &def, profile.seq, now)?;
                    save_rt(tx, row.id, &rt)?;
                    changed = true;
                }
                if changed {
                    touched.push(row.key.clone());
                }
            }
            Ok(())
        }
    }

    pub fn list_deliveries_blocking(
        &self,
        key: Option<&str>,
        profile_id: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<Delivery>> {
        self.inner.store.read(|tx| {
            let journey_id = match key {
                Some(k) => match tx.journey_for_update(k)? {
                    Some(r) => Some(r.id),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            tx.list_deliveries(&DeliveryFilter {
                journey_id,
                profile_id: profile_id.map(str::to_string),
                limit,
            })
        })
    }

    /// Evaluates a candidate global filter over the journey's in-flight profiles (current
    /// epoch, non-terminal) with their attributes as stored now. Read-only; pages of
    /// [`FILTER_PAGE`] enrollments each get their own short read transaction so the scheduler
    /// is never blocked behind a scan of millions, which also means the counts are a
    /// near-instant picture, not one snapshot.
    pub fn filter_matches_blocking(&self, key: &str, filter: &str) -> Result<FilterMatches> {
        let candidate = expr::compile(filter, Vars::Profile)?;
        let (journey_id, epoch) = self.inner.store.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            Ok((row.id, load_rt(&row)?.epoch))
        })?;
        let mut out = FilterMatches::default();
        for state in [ES::Active, ES::Waiting, ES::Held, ES::Queued] {
            let mut after = 0;
            loop {
                let page = self.inner.store.read(|tx| {
                    tx.inflight_attrs_page(journey_id, epoch, state, after, FILTER_PAGE)
                })?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                for (_, attrs) in &page {
                    out.in_flight += 1;
                    match candidate.eval_bool(attrs, None) {
                        Ok(true) => out.matching += 1,
                        Ok(false) => {}
                        Err(_) => out.evaluation_errors += 1,
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every enrollment of a journey, with step ids resolved (inspection and tests).
    pub fn enrollments_blocking(&self, key: &str) -> Result<Vec<EnrollmentView>> {
        self.inner.store.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            let mut out = Vec::new();
            for (e, profile_id) in tx.list_enrollments(row.id)? {
                let def = self.def(tx, row.id, e.version)?;
                out.push(EnrollmentView {
                    profile_id,
                    epoch: e.epoch,
                    version: e.version,
                    entry_no: e.entry_no,
                    step: def
                        .steps
                        .get(e.step as usize)
                        .map(|s| s.id.clone())
                        .unwrap_or_default(),
                    state: e.state,
                    due_at: e.due_at,
                    entered_at: e.entered_at,
                    reason: e.reason,
                });
            }
            Ok(out)
        })
    }

    pub fn run_history_blocking(&self, key: &str, limit: i64) -> Result<Vec<RunRecord>> {
        self.inner.store.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            tx.list_runs(row.id, limit)
        })
    }

    // ------------------------------------------------------------------
    // Scheduler
    // ------------------------------------------------------------------

    /// Runs one scheduler pass over every journey: time-based transitions,
    /// global timeout, releases, audience reads, then due enrollments in
    /// batches (one `BEGIN IMMEDIATE` transaction per batch, lifecycle re-read
    /// inside each). Restart-safe: all state is in the store.
    ///
    /// A journey whose visit fails (a stored definition that no longer compiles, a busy store)
    /// is logged and visited again later (after a second for the store, after
    /// [`MAX_QUIET_MS`] otherwise); the tick goes on with the others. Returning at the first
    /// failure would starve every journey after it: after a start they are listed once and
    /// not visited again until something touches them.
    pub fn tick(&self) -> Result<TickReport> {
        let mut report = TickReport::default();
        for (jid, key) in self.visits(self.now())? {
            self.wakes().begin(&key);
            match self.visit(jid, &key) {
                Ok(r) => report.add(r),
                Err(e) => {
                    let retry_in = match e {
                        EngineError::Sqlite { .. } => SECOND,
                        _ => MAX_QUIET_MS,
                    };
                    tracing::warn!(journey = %key, error = %e, retry_in_ms = retry_in, "scheduler visit failed");
                    self.wakes().quiet(&key, self.now() + retry_in);
                }
            }
        }
        Ok(report)
    }

    /// One journey's share of a tick: housekeeping, then its due enrollments.
    fn visit(&self, jid: i64, key: &str) -> Result<TickReport> {
        let mut r = TickReport::default();
        let mut changed = false;
        let mut wake_at;
        loop {
            self.yield_to_priority();
            let h = self.housekeeping(jid)?;
            r.add(h.report);
            changed |= h.changed;
            wake_at = h.wake_at;
            if !h.more {
                break;
            }
        }
        loop {
            self.yield_to_priority();
            let (b, more) = self.advance_batch(jid)?;
            r.add(b);
            if !more {
                break;
            }
        }
        if changed || !r.is_idle() {
            self.notify(key, ChangeCause::Engine);
        } else {
            self.wakes().quiet(key, wake_at);
        }
        Ok(r)
    }

    /// One housekeeping transaction for one journey (time-based transitions,
    /// one release chunk, one audience-read chunk), without advancing
    /// enrollments. For tests and tools that need to interleave commands with
    /// the scheduler deterministically.
    pub fn step_journey_housekeeping(&self, key: &str) -> Result<TickReport> {
        let id = self.inner.store.read(|tx| {
            tx.journey_for_update(key)?
                .map(|r| r.id)
                .ok_or_else(|| EngineError::NotFound(key.to_string()))
        })?;
        Ok(self.housekeeping(id)?.report)
    }

    /// Ticks until nothing is left to do at the current time.
    pub fn run_until_idle(&self) -> Result<TickReport> {
        let mut total = TickReport::default();
        for _ in 0..10_000 {
            let r = self.tick()?;
            if r.is_idle() {
                break;
            }
            total.add(r);
        }
        Ok(total)
    }

    /// Returns (report, more work pending now, runtime changed).
    fn housekeeping(&self, jid: i64) -> Result<Housekeeping> {
        let now = self.now();
        self.inner.store.write(|tx| {
            let mut rep = TickReport::default();
            let Some(row) = tx.journey_by_id(jid)? else {
                return Ok(Housekeeping::idle(now));
            };
            let mut rt = load_rt(&row)?;
            let before = rt.clone();
            let Some(def) = self.cur_def(tx, jid, &rt)? else {
                return Ok(Housekeeping::idle(now));
            };
            let mut more = false;
            // time-based transitions
            if rt.phase == Phase::Scheduled && def.start_at.is_none_or(|s| s <= now) {
                rt.record(Phase::Live, now, "StartAt");
                self.on_entrance_open(&mut rt, &def, now);
            }
            if matches!(rt.phase, Phase::Live | Phase::Resuming)
                && def.end_at.is_some_and(|e| e <= now)
            {
                self.close(tx, jid, &mut rt, now, "EndAt")?;
            }
            if rt.phase == Phase::Paused
                && let Some(p) = &rt.pause
                && p.expires_at <= now
            {
                match p.options.on_expiry {
                    OnExpiry::Resume => {
                        self.end_pause(tx, jid, &mut rt, &def, now, "PauseExpired", false)?
                    }
                    OnExpiry::Stop => self.stop(tx, jid, &mut rt, now, "StoppedByPauseExpiry")?,
                }
            }
            if rt.phase.moves() {
                rep.timed_out += tx.expire_deadlines(jid, rt.deadline_swept_to, now, "Timeout")?;
                rt.deadline_swept_to = now;
            }
            // release held profiles (token bucket; rate 0 = unthrottled)
            if matches!(rt.phase, Phase::Resuming | Phase::Closing)
                && let Some(r) = rt.resume.as_mut()
                && r.finished_at.is_none()
            {
                let cap = self.inner.config.release_batch;
                let allowed = if r.rate == 0 {
                    cap
                } else {
                    let rate = i64::try_from(r.rate).unwrap_or(i64::MAX);
                    let earned = rate
                        .saturating_mul((now - r.started_at).max(0))
                        .checked_div(1000)
                        .unwrap_or(0)
                        .saturating_add(rate);
                    (earned - r.released).clamp(0, cap)
                };
                let n = if allowed > 0 {
                    tx.release_held(jid, allowed, now)?
                } else {
                    0
                };
                r.released += n;
                rep.released += n;
                if n < allowed {
                    r.finished_at = Some(now);
                    if rt.phase == Phase::Resuming {
                        rt.record(Phase::Live, now, "AllHeldReleased");
                    }
                } else if r.rate == 0 {
                    more = true;
                }
            }
            if rt.phase == Phase::Resuming
                && rt.resume.as_ref().is_none_or(|r| r.finished_at.is_some())
            {
                rt.record(Phase::Live, now, "AllHeldReleased");
            }
            if rt.phase == Phase::Closing
                && rt.resume.as_ref().is_none_or(|r| r.finished_at.is_some())
                && tx.count_nonterminal(jid)? == 0
            {
                rt.record(Phase::Completed, now, "Drained");
            }
            // audience reads (scheduled, single, run now, full run, restart)
            let (read_condition, schedule) = match &def.entry {
                CEntry::Read {
                    condition,
                    schedule,
                    ..
                } => (Some(condition), schedule.as_deref()),
                CEntry::Qualification { condition } => (Some(condition), None),
                CEntry::Event { .. } => (None, None),
            };
            let open = rt.phase.admits();
            if let Some(due) = rt.read.single_due
                && due <= now
            {
                if open {
                    rt.read.single_due = None;
                    self.start_read(tx, jid, &mut rt, &def, RunKind::Single, now)?;
                } else if rt.phase == Phase::Paused {
                    rt.read.single_due = None;
                    let run = tx.insert_run(jid, RunKind::Single.name(), due)?;
                    tx.update_run(
                        run,
                        Some(now),
                        0,
                        "Skipped: scheduled time passed during the pause",
                    )?;
                }
            }
            if let (Some(next), Some(s)) = (rt.read.next_at, schedule)
                && next <= now
            {
                if open {
                    if rt.read.in_progress.is_none() {
                        self.start_read(tx, jid, &mut rt, &def, RunKind::Scheduled, now)?;
                    }
                } else if rt.phase == Phase::Paused {
                    let run = tx.insert_run(jid, RunKind::Scheduled.name(), next)?;
                    tx.update_run(run, Some(now), 0, "Skipped: journey paused")?;
                }
                if open || rt.phase == Phase::Paused {
                    rt.read.next_at = s.next_after(now);
                }
            }
            if open
                && let Some(condition) = read_condition
                && let Some(mut p) = rt.read.in_progress.take()
            {
                let profiles = tx.scan_profiles(p.cursor, p.upto, self.inner.config.read_batch)?;
                for prof in &profiles {
                    p.cursor = prof.seq;
                    if condition.eval_bool(&prof.attrs, None).unwrap_or(false)
                        && let Enter::Entered =
                            self.try_enter(tx, jid, &mut rt, &def, prof.seq, now)?
                    {
                        p.entered += 1;
                        rep.entered += 1;
                    }
                }
                if (profiles.len() as i64) < self.inner.config.read_batch {
                    tx.update_run(p.run_id, Some(now), p.entered, "Succeeded")?;
                    rt.read.last_completed_upto = rt.read.last_completed_upto.max(p.upto);
                } else {
                    tx.update_run(p.run_id, None, p.entered, "Running")?;
                    rt.read.in_progress = Some(p);
                    more = true;
                }
            }
            let swept_only = rt.deadline_swept_to != before.deadline_swept_to && {
                let mut b = before.clone();
                b.deadline_swept_to = rt.deadline_swept_to;
                b == rt
            };
            let changed = rt != before;
            if changed {
                save_rt(tx, jid, &rt)?;
            }
            let wake_at = if more {
                now
            } else {
                next_wake(tx, jid, &rt, &def, now)?
            };
            Ok(Housekeeping {
                report: rep,
                more,
                changed: changed && !swept_only,
                wake_at,
            })
        })
    }

    /// Advances one batch of due enrollments. Returns (report, more pending).
    fn advance_batch(&self, jid: i64) -> Result<(TickReport, bool)> {
        let now = self.now();
        let batch = self.inner.config.batch_size;
        self.inner.store.write(|tx| {
            let mut rep = TickReport::default();
            let Some(row) = tx.journey_by_id(jid)? else {
                return Ok((rep, false));
            };
            let rt = load_rt(&row)?;
            if !rt.phase.moves() {
                return Ok((rep, false));
            }
            let pause_mode = match (&rt.phase, &rt.pause) {
                (Phase::Paused, Some(p)) => Some(p.options.clone()),
                _ => None,
            };
            let frozen_waits = pause_mode
                .as_ref()
                .is_some_and(|o| o.waits == PauseWaits::Extend && o.mode != PauseMode::EntryOnly);
            let due = tx.due_enrollments(jid, now, frozen_waits, batch)?;
            if due.is_empty() {
                return Ok((rep, false));
            }
            let filter = match &rt.global_filter {
                Some(f) => Some(self.filter(f)?),
                None => None,
            };
            let holding = pause_mode.as_ref().is_some_and(|o| o.mode == PauseMode::Hold);
            let mut held_total = if holding { self.held_estimate(tx)? } else { 0 };
            let held_before = held_total;
            let n = due.len() as i64;
            for (mut e, attrs_json) in due {
                let old_state = e.state;
                let def = self.def(tx, jid, e.version)?;
                let mut attrs: Option<serde_json::Value> = None;
                let parse_attrs = || {
                    serde_json::from_str::<serde_json::Value>(&attrs_json)
                        .map_err(json_err("profile attributes"))
                };
                let mut hops = 0;
                loop {
                    hops += 1;
                    if hops > MAX_HOPS {
                        break;
                    }
                    let Some(step) = def.steps.get(e.step as usize) else {
                        e.state = ES::Exited;
                        e.due_at = None;
                        e.reason = Some("StepRemoved".into());
                        break;
                    };
                    let next = match &step.kind {
                        CStepKind::WaitDuration(ms) => {
                            if e.state == ES::Waiting {
                                step.next
                            } else {
                                e.state = ES::Waiting;
                                e.due_at = Some(now + ms);
                                break;
                            }
                        }
                        CStepKind::WaitUntil(t) => {
                            if e.state == ES::Waiting || *t <= now {
                                step.next
                            } else {
                                e.state = ES::Waiting;
                                e.due_at = Some(*t);
                                break;
                            }
                        }
                        CStepKind::WaitForEvent {
                            name,
                            timeout_ms,
                            on_timeout,
                            ..
                        } => {
                            if e.state == ES::Waiting {
                                e.wait_event = None;
                                on_timeout.or(step.next)
                            } else {
                                e.state = ES::Waiting;
                                e.wait_event = Some(name.clone());
                                e.due_at = timeout_ms.map(|t| now + t);
                                break;
                            }
                        }
                        CStepKind::Condition {
                            branches,
                            otherwise,
                        } => {
                            let a = match &attrs {
                                Some(a) => a,
                                None => attrs.insert(parse_attrs()?),
                            };
                            let mut target = *otherwise;
                            for (expr, t) in branches {
                                match expr.eval_bool(a, None) {
                                    Ok(true) => {
                                        target = Some(*t);
                                        break;
                                    }
                                    Ok(false) => {}
                                    Err(err) => tracing::debug!(%err, "condition branch error treated as false"),
                                }
                            }
                            target
                        }
                        CStepKind::Action {
                            channel,
                            destination,
                            message,
                        } => {
                            if let Some(o) = &pause_mode {
                                match o.mode {
                                    PauseMode::Hold => {
                                        e.due_at = None;
                                        if held_total >= self.inner.config.held_cap {
                                            e.state = ES::Discarded;
                                            e.reason = Some("HeldLimit".into());
                                        } else {
                                            e.state = ES::Held;
                                            held_total += 1;
                                        }
                                        break;
                                    }
                                    PauseMode::Discard => {
                                        e.state = ES::Discarded;
                                        e.due_at = None;
                                        e.reason = Some("PauseDiscard".into());
                                        break;
                                    }
                                    PauseMode::EntryOnly => {}
                                }
                            }
                            if let Some(f) = &filter {
                                let a = match &attrs {
                                    Some(a) => a,
                                    None => attrs.insert(parse_attrs()?),
                                };
                                if f.eval_bool(a, None).unwrap_or(false) {
                                    e.state = ES::Excluded;
                                    e.due_at = None;
                                    e.reason = Some("GlobalFilter".into());
                                    break;
                                }
                            }
                            let webhook = self.inner.config.destinations.is_webhook(destination);
                            let d = Delivery {
                                journey_id: jid,
                                epoch: e.epoch,
                                profile_seq: e.profile_seq,
                                step_key: step_key(&step.id),
                                entry_no: e.entry_no,
                                visit: e.hops,
                                version: e.version,
                                step_id: step.id.clone(),
                                profile_id: String::new(),
                                channel: channel.clone(),
                                destination: destination.clone(),
                                message: message.clone(),
                                status: if webhook {
                                    DeliveryStatus::Pending
                                } else {
                                    DeliveryStatus::Recorded
                                },
                                created_at: now,
                            };
                            if tx.insert_delivery(&d)? {
                                rep.deliveries += 1;
                            }
                            step.next
                        }
                        CStepKind::Exit => {
                            e.state = ES::Exited;
                            e.due_at = None;
                            e.reason = Some("ExitStep".into());
                            break;
                        }
                    };
                    match next {
                        Some(i) => {
                            e.step = i as i64;
                            e.hops += 1;
                            e.state = ES::Active;
                            e.due_at = Some(now);
                            rep.advanced += 1;
                        }
                        None => {
                            e.state = ES::Completed;
                            e.due_at = None;
                            rep.advanced += 1;
                            break;
                        }
                    }
                }
                e.updated_at = now;
                tx.update_enrollment(&e, old_state)?;
            }
            if holding && let Ok(mut c) = self.inner.held_cache.lock()
                && let Some((_, v)) = c.as_mut()
            {
                *v += held_total - held_before;
            }
            Ok((rep, n == batch))
        })
    }

    fn held_estimate(&self, tx: &mut dyn StoreTx) -> Result<i64> {
        if let Ok(c) = self.inner.held_cache.lock()
            && let Some((at, v)) = *c
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return Ok(v);
        }
        let v = tx.count_state_all_journeys(ES::Held)?;
        if let Ok(mut c) = self.inner.held_cache.lock() {
            *c = Some((std::time::Instant::now(), v));
        }
        Ok(v)
    }
}
