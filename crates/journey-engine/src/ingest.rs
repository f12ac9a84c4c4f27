//! Ingest: profile upserts and events, and the reads the data plane serves (deliveries, runs,
//! enrollments, filter matches).

use super::api::{ChangeCause, NewEvent};
use super::clock::Millis;
use super::definition::{CEntry, CStepKind, CompiledDefinition, PauseEntries};
use super::defs::EntryKind;
use super::error::{EngineError, Result};
use super::expr::{self, Vars};
use super::lifecycle::*;
use super::store::{
    Delivery, DeliveryFilter, Enrollment, EnrollmentState as ES, RunRecord, Store, StoreTx,
};

use super::core::*;

/// Enrollments per read transaction when evaluating a candidate global filter.
const FILTER_PAGE: i64 = 5_000;

pub(crate) enum Enter {
    Entered,
    Queued,
    Dropped,
    Refused,
}

impl<S: Store> Engine<S> {
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
                        self.try_enter(tx, row.id, rt, def, profile.seq, None, now)?;
                        *dirty = true;
                    }
                }
            }
            for (row, rt, _, dirty) in &journeys {
                if *dirty {
                    save_rt(tx, row.id, rt)?;
                    tx.record_change(&row.key, ChangeCause::Engine)?;
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

    /// `event_id` is the event that enrolls the profile (its templates' `event`), if any.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn try_enter(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        profile_seq: i64,
        event_id: Option<i64>,
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
            event_id,
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
            touched.sort_unstable();
            touched.dedup();
            for key in &touched {
                tx.record_change(key, ChangeCause::Engine)?;
            }
            Ok(())
        })?;
        for k in touched {
            self.notify(&k, ChangeCause::Engine);
        }
        Ok(())
    }

    /// One event inside an ingest transaction; the keys of the journeys it changed go to
    /// `touched`.
    pub(crate) fn ingest_in(
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
            let event_id = tx.insert_event(profile_id, name, payload, now)?;
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
                        // What the next messages' templates read as `event`.
                        e.event_id = Some(event_id);
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
                    self.try_enter(tx, row.id, &mut rt, &def, profile.seq, Some(event_id), now)?;
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
        self.read(|tx| {
            let journey_id = match key {
                Some(k) => match tx.journey_for_update(k)? {
                    Some(r) => Some(r.id),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            Ok(tx.list_deliveries(&DeliveryFilter {
                journey_id,
                profile_id: profile_id.map(str::to_string),
                limit,
            })?)
        })
    }

    /// Evaluates a candidate global filter over the journey's in-flight profiles (current
    /// epoch, non-terminal) with their attributes as stored now. Read-only; pages of
    /// [`FILTER_PAGE`] enrollments each get their own short read transaction so the scheduler
    /// is never blocked behind a scan of millions, which also means the counts are a
    /// near-instant picture, not one snapshot.
    pub fn filter_matches_blocking(&self, key: &str, filter: &str) -> Result<FilterMatches> {
        let candidate = expr::compile(filter, Vars::Profile)?;
        let (journey_id, epoch) = self.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            Ok((row.id, load_rt(&row)?.epoch))
        })?;
        let mut out = FilterMatches::default();
        for state in [ES::Active, ES::Waiting, ES::Held, ES::Queued] {
            let mut after = 0;
            loop {
                let page = self.read(|tx| {
                    Ok(tx.inflight_attrs_page(journey_id, epoch, state, after, FILTER_PAGE)?)
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
        self.enrollments_page_blocking(key, None, 0, i64::MAX)
    }

    /// One page of a journey's enrollments, oldest first, after enrollment `after` (the last
    /// page's last `id`), at most `limit`, only `profile`'s when given.
    pub fn enrollments_page_blocking(
        &self,
        key: &str,
        profile: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EnrollmentView>> {
        self.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            let mut out = Vec::new();
            for (e, profile_id) in tx.list_enrollments(row.id, profile, after, limit)? {
                let def = self.def(tx, row.id, e.version)?;
                out.push(EnrollmentView {
                    id: e.id,
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
        self.read(|tx| {
            let row = tx
                .journey_for_update(key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            Ok(tx.list_runs(row.id, limit)?)
        })
    }
}
