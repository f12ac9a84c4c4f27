//! The scheduler: each tick visits the journeys with due work, runs their housekeeping (pause
//! expiry, schedule start and end, releases, audience reads, timeouts) and advances profiles.

use super::api::ChangeCause;
use super::clock::{Millis, SECOND};
use super::definition::{CEntry, CStepKind, CompiledDefinition, OnExpiry, PauseMode, PauseWaits};
use super::error::{EngineError, Result, json_err};
use super::lifecycle::*;
use super::render;
use super::store::{Delivery, DeliveryStatus, EnrollmentState as ES, Store, StoreTx, step_key};
use super::wakes::MAX_QUIET_MS;

use super::core::*;
use super::ingest::Enter;

const MAX_HOPS: usize = 256;

/// What one housekeeping transaction did, and when the journey next has time-based work.
pub(crate) struct Housekeeping {
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
pub(crate) fn next_wake(
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
    if releases(rt) && rt.resume.as_ref().is_some_and(|r| r.finished_at.is_none()) {
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

/// Whether held profiles are being released: after a pause (Resuming, or Closing from a
/// pause), or during one whose mode became EntryOnly while profiles were held.
fn releases(rt: &Runtime) -> bool {
    match rt.phase {
        Phase::Resuming | Phase::Closing => true,
        Phase::Paused => rt
            .pause
            .as_ref()
            .is_some_and(|p| p.options.mode == PauseMode::EntryOnly),
        _ => false,
    }
}

impl<S: Store> Engine<S> {
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
        self.purge_feed()?;
        for (jid, key) in self.visits(self.now())? {
            self.wakes().begin(&key);
            match self.visit(jid, &key) {
                Ok(r) => report.add(r),
                Err(e) => {
                    let retry_in = match e {
                        EngineError::Store(_) => SECOND,
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
    pub(crate) fn visit(&self, jid: i64, key: &str) -> Result<TickReport> {
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
        let id = self.read(|tx| {
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

    /// Drops the change feed's expired tombstones, at most once a minute.
    fn purge_feed(&self) -> Result<()> {
        let now = self.now();
        {
            let mut last = self
                .inner
                .feed_purged_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if now - *last < crate::clock::MINUTE {
                return Ok(());
            }
            *last = now;
        }
        self.write_batch(|tx| Ok(tx.purge_tombstones(now - crate::feed::TOMBSTONES_KEPT_MS)?))
            .map(drop)
    }

    /// Returns (report, more work pending now, runtime changed).
    pub(crate) fn housekeeping(&self, jid: i64) -> Result<Housekeeping> {
        let now = self.now();
        self.write_batch(|tx| {
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
                rt.record(Phase::Live, now, TransitionReason::StartAt);
                self.on_entrance_open(&mut rt, &def, now);
            }
            if matches!(rt.phase, Phase::Live | Phase::Resuming)
                && def.end_at.is_some_and(|e| e <= now)
            {
                self.close(tx, jid, &mut rt, now, TransitionReason::EndAt)?;
            }
            // A hold suspends the pause's own expiry: `onExpiry: Stop` never stops a held
            // journey.
            if rt.phase == Phase::Paused
                && let Some(p) = &rt.pause
                && p.held_since.is_none()
                && p.expires_at <= now
            {
                match p.options.on_expiry {
                    OnExpiry::Resume => self.end_pause(
                        tx,
                        jid,
                        &mut rt,
                        &def,
                        now,
                        TransitionReason::PauseExpired,
                        false,
                    )?,
                    OnExpiry::Stop => self.stop(
                        tx,
                        jid,
                        &mut rt,
                        now,
                        TransitionReason::StoppedByPauseExpiry,
                    )?,
                }
            }
            if rt.phase.moves() {
                rep.timed_out += tx.expire_deadlines(jid, rt.deadline_swept_to, now, "Timeout")?;
                rt.deadline_swept_to = now;
            }
            // release held profiles (token bucket; rate 0 = unthrottled)
            if releases(&rt)
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
                        rt.record(Phase::Live, now, TransitionReason::AllHeldReleased);
                    }
                } else if r.rate == 0 {
                    more = true;
                }
            }
            if rt.phase == Phase::Resuming
                && rt.resume.as_ref().is_none_or(|r| r.finished_at.is_some())
            {
                rt.record(Phase::Live, now, TransitionReason::AllHeldReleased);
            }
            if rt.phase == Phase::Closing
                && rt.resume.as_ref().is_none_or(|r| r.finished_at.is_some())
                && tx.count_nonterminal(jid)? == 0
            {
                rt.record(Phase::Completed, now, TransitionReason::Drained);
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
                            self.try_enter(tx, jid, &mut rt, &def, prof.seq, None, now)?
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
            if (changed && !swept_only) || !rep.is_idle() {
                tx.record_change(&row.key, ChangeCause::Engine)?;
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
    pub(crate) fn advance_batch(&self, jid: i64) -> Result<(TickReport, bool)> {
        let now = self.now();
        let batch = self.inner.config.batch_size;
        self.write_batch(|tx| {
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
                            template,
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
                            let mut d = Delivery {
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
                                event_id: e.event_id,
                                rendered: None,
                                attempts: 0,
                                last_error: None,
                                reason: None,
                            };
                            if !webhook {
                                // `record` renders now: the stored delivery is the message.
                                let a = match &attrs {
                                    Some(a) => a,
                                    None => attrs.insert(parse_attrs()?),
                                };
                                match render::render(tx, template, &d, &row.key, a)? {
                                    Ok(m) => d.rendered = Some(m),
                                    Err(err) => {
                                        d.status = DeliveryStatus::Failed;
                                        d.reason = Some(render::TEMPLATE_ERROR.into());
                                        d.last_error = Some(err.to_string());
                                        rep.template_errors += 1;
                                    }
                                }
                            }
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
            if !rep.is_idle() {
                tx.record_change(&row.key, ChangeCause::Engine)?;
            }
            Ok((rep, n == batch))
        })
    }

    pub(crate) fn held_estimate(&self, tx: &mut dyn StoreTx) -> Result<i64> {
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
