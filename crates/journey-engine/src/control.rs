//! Control commands: definitions, lifecycle, run requests, removal and status reads. Each is
//! one write transaction; the lifecycle table (`journey_model::lifecycle`) judges every change.

use std::sync::Arc;

use super::api::ChangeCause;
use super::clock::Millis;
use super::definition::{
    CEntry, CStepKind, CompiledDefinition, Definition, PauseMode, PauseWaits, compile,
};
use super::error::{EngineError, Result, json_err};
use super::expr::{self, Vars};
use super::lifecycle::*;
use super::store::{DeliveryStatus, EnrollmentState as ES, Store, StoreTx};
use journey_model::lifecycle as lifecycle_table;

use super::core::*;

/// A definition compiled and hashed, ready to store.
pub(crate) struct Prepared {
    pub(crate) compiled: CompiledDefinition,
    pub(crate) hash: String,
    pub(crate) json: String,
}

/// A global filter that does not compile is refused before any transaction.
pub(crate) fn check_filter(desired: &DesiredLifecycle) -> Result<()> {
    if let DesiredLifecycle::Paused(o) = desired
        && let Some(f) = &o.global_filter
    {
        expr::compile(f, Vars::Profile)?;
    }
    Ok(())
}

impl<S: Store> Engine<S> {
    // ------------------------------------------------------------------
    // Control plane
    // ------------------------------------------------------------------

    /// Stores a definition. Idempotent on content: the same content returns the
    /// current version with `created: false`. A changed definition creates the
    /// next version; profiles inside stay on theirs (or migrate at resume when
    /// the change was made while paused).
    pub fn apply_definition_blocking(&self, key: &str, def: &Definition) -> Result<AppliedVersion> {
        let prepared = self.prepare(def)?;
        let now = self.now();
        let out = self.write(|tx| {
            let out = self.apply_definition_in(tx, key, &prepared, now)?;
            tx.record_change(key, ChangeCause::Command)?;
            Ok(out)
        })?;
        self.notify(key, ChangeCause::Command);
        Ok(out)
    }

    /// Compiles a definition (outside any transaction: it is CPU work) and computes what
    /// storing it needs.
    pub(crate) fn prepare(&self, def: &Definition) -> Result<Prepared> {
        Ok(Prepared {
            compiled: compile(def, &self.inner.config.destinations)?,
            hash: def.content_hash()?,
            json: def.versioned_json()?,
        })
    }

    pub(crate) fn apply_definition_in(
        &self,
        tx: &mut dyn StoreTx,
        key: &str,
        prepared: &Prepared,
        now: Millis,
    ) -> Result<AppliedVersion> {
        let Prepared {
            compiled,
            hash,
            json,
        } = prepared;
        {
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
                && h == hash
            {
                return Ok(AppliedVersion {
                    version: *v,
                    hash: hash.clone(),
                    created: false,
                });
            }
            if rt.phase == Phase::Stopped {
                let mut change = lifecycle_table::Change::state(
                    lifecycle_table::JourneyState::Stopped,
                    lifecycle_table::JourneyState::Stopped,
                );
                change.other_definition = true;
                if let Err(refusal) = lifecycle_table::judge(&change) {
                    return Err(refused(key, rt.phase, &rt.desired, refusal));
                }
            }
            let v = latest.map(|(v, _)| v + 1).unwrap_or(1);
            tx.insert_version(jid, v, hash, json, now)?;
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
        }
    }

    /// Sets the desired lifecycle. Re-sending the same desired lifecycle is a
    /// no-op; in particular a `Paused` that already expired is never re-applied
    /// (only a new transition into Paused starts a new pause).
    pub fn set_lifecycle_blocking(
        &self,
        key: &str,
        desired: DesiredLifecycle,
    ) -> Result<StatusSnapshot> {
        check_filter(&desired)?;
        let now = self.now();
        self.write(|tx| {
            self.set_lifecycle_in(tx, key, &desired, now)?;
            tx.record_change(key, ChangeCause::Command)?;
            Ok(())
        })?;
        self.notify(key, ChangeCause::Command);
        self.status_blocking(key)?
            .ok_or_else(|| EngineError::NotFound(key.to_string()))
    }

    pub(crate) fn set_lifecycle_in(
        &self,
        tx: &mut dyn StoreTx,
        key: &str,
        desired: &DesiredLifecycle,
        now: Millis,
    ) -> Result<()> {
        {
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
            let to = desired.state();
            let from = lifecycle_table::engine_from(phase, rt.desired.state(), to);
            if let Err(refusal) = lifecycle_table::judge(&lifecycle_table::Change::state(from, to))
            {
                return Err(refused(key, phase, desired, refusal));
            }
            // The table allowed the change; what remains is doing it from where the journey is.
            match desired {
                DesiredLifecycle::Draft => {}
                DesiredLifecycle::Published => match phase {
                    Phase::Draft => {
                        let d = need_def(&def)?;
                        self.go_live(&mut rt, &d, now, TransitionReason::Published);
                    }
                    // Resumed while a hold applies: the pause is the hold's now, and ends
                    // when the hold does.
                    Phase::Paused if rt.pause.as_ref().is_some_and(|p| p.held_since.is_some()) => {
                        if let Some(p) = rt.pause.as_mut() {
                            p.by_hold = true;
                        }
                    }
                    Phase::Paused => {
                        let d = need_def(&def)?;
                        self.end_pause(
                            tx,
                            jid,
                            &mut rt,
                            &d,
                            now,
                            TransitionReason::Resumed,
                            false,
                        )?;
                    }
                    // Re-declared after `schedule.endAt` closed it: nothing to do.
                    Phase::Closing | Phase::Completed | Phase::Stopped => {}
                    Phase::Scheduled | Phase::Live | Phase::Resuming => {}
                },
                DesiredLifecycle::Paused(opts) => match phase {
                    Phase::Closing | Phase::Completed | Phase::Stopped => {}
                    Phase::Paused => {
                        // Same pause: update its options in place. A pause a hold started
                        // becomes the declared one (the hold's mode is laid over it again
                        // after this, while the hold lasts).
                        let adopted = !matches!(rt.desired, DesiredLifecycle::Paused(_));
                        let was = rt.pause.as_ref().map(|p| p.options.mode);
                        if let Some(p) = rt.pause.as_mut() {
                            p.options = opts.clone();
                            p.by_hold &= !adopted;
                            p.expires_at = p.since
                                + p.held_ms
                                + opts
                                    .max_duration_ms
                                    .clamp(0, super::definition::MAX_PAUSE_MS);
                        }
                        rt.global_filter = opts.global_filter.clone();
                        if let Some(was) = was {
                            let d = need_def(&def)?;
                            self.switch_pause_mode(tx, jid, &mut rt, &d, was, now)?;
                        }
                    }
                    _ => {
                        let already = matches!(rt.desired, DesiredLifecycle::Paused(_));
                        if !already {
                            let d = need_def(&def)?;
                            if phase == Phase::Draft {
                                self.go_live(&mut rt, &d, now, TransitionReason::Published);
                            }
                            let reason = opts
                                .reason
                                .clone()
                                .map_or(TransitionReason::Paused, TransitionReason::Other);
                            self.pause(tx, jid, &mut rt, opts, now, reason)?;
                        }
                    }
                },
                DesiredLifecycle::Closed => match phase {
                    Phase::Draft => {
                        rt.record(Phase::Completed, now, TransitionReason::ClosedBeforePublish)
                    }
                    Phase::Closing | Phase::Completed | Phase::Stopped => {}
                    Phase::Paused => {
                        let d = need_def(&def)?;
                        self.end_pause(tx, jid, &mut rt, &d, now, TransitionReason::Closed, true)?;
                    }
                    Phase::Scheduled | Phase::Live | Phase::Resuming => {
                        self.close(tx, jid, &mut rt, now, TransitionReason::Closed)?;
                    }
                },
                DesiredLifecycle::Stopped => {
                    if phase != Phase::Stopped {
                        self.stop(tx, jid, &mut rt, now, TransitionReason::Stopped)?;
                    }
                }
            }
            rt.desired = desired.clone();
            save_rt(tx, jid, &rt)?;
            Ok(())
        }
    }

    pub(crate) fn go_live(
        &self,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        now: Millis,
        reason: TransitionReason,
    ) {
        if def.start_at.is_some_and(|s| s > now) {
            rt.record(Phase::Scheduled, now, reason);
            return;
        }
        rt.record(Phase::Live, now, reason);
        self.on_entrance_open(rt, def, now);
    }

    pub(crate) fn on_entrance_open(&self, rt: &mut Runtime, def: &CompiledDefinition, now: Millis) {
        if let CEntry::Read { schedule, .. } = &def.entry {
            match schedule {
                Some(s) => rt.read.next_at = s.next_after(now),
                None => rt.read.single_due = Some(now),
            }
        }
    }

    pub(crate) fn abort_read(
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

    pub(crate) fn pause(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        opts: &PauseOptions,
        now: Millis,
        reason: TransitionReason,
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
            by_hold: false,
            held_since: None,
            held_ms: 0,
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
        rt.record(Phase::Paused, now, reason);
        Ok(())
    }

    /// Ends the current pause: resume (-> Resuming) or close (-> Closing).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn end_pause(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        now: Millis,
        reason: TransitionReason,
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

    pub(crate) fn close(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        now: Millis,
        reason: TransitionReason,
    ) -> Result<()> {
        self.abort_read(tx, rt, now, "Aborted: journey closed")?;
        tx.transition_all(jid, &[ES::Queued], ES::Discarded, "Closed", now)?;
        rt.read.next_at = None;
        rt.read.single_due = None;
        rt.read.deferred = None;
        rt.record(Phase::Closing, now, reason);
        Ok(())
    }

    pub(crate) fn stop(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        now: Millis,
        reason: TransitionReason,
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

    pub(crate) fn start_read(
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
            let out = self.request_in(tx, key, kind, token, now)?;
            tx.record_change(key, ChangeCause::Command)?;
            Ok(out)
        })?;
        self.notify(key, ChangeCause::Command);
        Ok(out)
    }

    pub(crate) fn request_in(
        &self,
        tx: &mut dyn StoreTx,
        key: &str,
        kind: RequestKind,
        token: &str,
        now: Millis,
    ) -> Result<RequestOutcome> {
        {
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
                        let old_epoch = rt.epoch;
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
                        } else if let Some(version) = rt.version {
                            // An event journey has no audience to read again: "begins again
                            // for every contact" (003) means everyone who entered the old
                            // epoch. While paused they wait in the queue, as an audience
                            // restart waits for the resume, and are admitted at resume.
                            let state = if rt.phase == Phase::Paused {
                                ES::Queued
                            } else {
                                ES::Active
                            };
                            tx.reenroll_epoch(
                                jid,
                                old_epoch,
                                rt.epoch,
                                version,
                                state,
                                now,
                                def.timeout_ms,
                            )?;
                        }
                        RequestOutcome::Started { run_id }
                    }
                },
            };
            save_rt(tx, jid, &rt)?;
            Ok(out)
        }
    }

    /// Deletes a journey and everything it owns (handled tokens are kept).
    /// Stops the journey first (so nothing is sent between the answer and the removal), then
    /// removes it. A journey that is unknown, has no definition or is already stopped needs no
    /// stop.
    pub fn stop_and_delete_blocking(&self, key: &str) -> Result<bool> {
        if self.phase_blocking(key)?.is_none() {
            return Ok(false);
        }
        match self.set_lifecycle_blocking(key, DesiredLifecycle::Stopped) {
            Ok(_)
            | Err(EngineError::NotFound(_))
            | Err(EngineError::NoDefinition { .. })
            | Err(EngineError::IllegalTransition { .. }) => {}
            Err(e) => return Err(e),
        }
        self.delete_blocking(key)
    }

    pub fn delete_blocking(&self, key: &str) -> Result<bool> {
        let now = self.now();
        let found = self.write_batch(|tx| match tx.journey_for_update(key)? {
            Some(row) => {
                tx.delete_journey(row.id)?;
                tx.record_deletion(key, ChangeCause::Command, now)?;
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
        self.read(|tx| self.status_in(tx, key))
    }

    pub(crate) fn status_in(
        &self,
        tx: &mut dyn StoreTx,
        key: &str,
    ) -> Result<Option<StatusSnapshot>> {
        {
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
                revision: tx.journey_revision(key)?.unwrap_or_default(),
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
                    held_by: match (&rt.hold, x.held_since) {
                        (Some(h), Some(_)) => h.held_by.clone(),
                        _ => Vec::new(),
                    },
                }),
                resume: rt.resume.as_ref().map(|r| ResumeStatus {
                    started_at: r.started_at,
                    total: r.total,
                    released: r.released,
                }),
                global_filter: rt.global_filter.clone(),
                hold: rt.hold.clone(),
                last_runs: tx.list_runs(row.id, 5)?,
                history,
                deferred_run: rt.read.deferred,
                last_handled_run_request: tx.handled_token(key, "run")?,
                last_handled_full_run_request: tx.handled_token(key, "full-run")?,
                last_handled_restart_request: tx.handled_token(key, "restart")?,
            }))
        }
    }

    /// The phase only (no counting): cheap, for polling loops.
    pub fn phase_blocking(&self, key: &str) -> Result<Option<Phase>> {
        self.read(|tx| match tx.journey_for_update(key)? {
            Some(row) => Ok(Some(load_rt(&row)?.phase)),
            None => Ok(None),
        })
    }

    /// Past pauses of a journey with their identity (newest last).
    pub fn pause_history_blocking(&self, key: &str) -> Result<Vec<PauseInfo>> {
        self.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            let rt = load_rt(&row)?;
            let mut v = rt.past_pauses.clone();
            v.extend(rt.pause.clone());
            Ok(v)
        })
    }
}
