//! Emergency holds: a pause laid over whatever the declared state says, lifted only by
//! declaring no hold. The declared state keeps its own meaning underneath: a Published journey
//! resumes when its last hold goes, a Paused one stays paused with its own options, and the
//! declared pause's expiry clock stands still while a hold applies.

use super::clock::Millis;
use super::core::*;
use super::definition::CompiledDefinition;
use super::error::Result;
use super::lifecycle::{DesiredLifecycle, Hold, PauseOptions, Phase, Runtime, TransitionReason};
use super::store::{Store, StoreTx};

/// A hold applies in these phases; Draft, Closing, Completed and Stopped journeys are left as
/// they are.
pub fn holdable(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Scheduled | Phase::Live | Phase::Resuming | Phase::Paused
    )
}

/// The options of a pause under `hold`: the declared pause's own (when the declared state owns
/// the pause) with the stricter of the two modes, or the hold's alone.
fn held_options(
    declared: Option<&PauseOptions>,
    hold: &Hold,
    filter: Option<String>,
) -> PauseOptions {
    match declared {
        Some(own) => PauseOptions {
            mode: own.mode.strictest(hold.mode),
            reason: Some(hold.reason.clone()),
            ..own.clone()
        },
        None => PauseOptions {
            mode: hold.mode,
            reason: Some(hold.reason.clone()),
            global_filter: filter,
            ..PauseOptions::default()
        },
    }
}

/// The declared pause's options, when the declared state owns the journey's pause.
fn declared_pause(rt: &Runtime) -> Option<PauseOptions> {
    match (&rt.desired, &rt.pause) {
        (DesiredLifecycle::Paused(o), Some(p)) if !p.by_hold => Some(o.clone()),
        _ => None,
    }
}

impl<S: Store> Engine<S> {
    /// Brings the journey to `hold` (after its declared lifecycle has been applied).
    /// Re-declaring the same hold changes nothing.
    pub(crate) fn apply_hold(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        hold: Option<&Hold>,
        now: Millis,
    ) -> Result<()> {
        match hold.filter(|_| holdable(rt.phase)) {
            Some(h) if rt.phase != Phase::Paused => {
                let opts = held_options(None, h, rt.global_filter.clone());
                self.pause(tx, jid, rt, &opts, now, TransitionReason::EmergencyHold)?;
                if let Some(p) = rt.pause.as_mut() {
                    p.by_hold = true;
                    p.held_since = Some(now);
                }
            }
            Some(h) => {
                let declared = declared_pause(rt);
                let mut was = None;
                if let Some(p) = rt.pause.as_mut() {
                    let filter = p.options.global_filter.clone();
                    let opts = held_options(declared.as_ref(), h, filter);
                    was = Some(p.options.mode);
                    p.options = opts;
                    p.held_since.get_or_insert(now);
                }
                if let Some(was) = was {
                    self.switch_pause_mode(tx, jid, rt, def, was, now)?;
                }
            }
            None => {
                let declared = declared_pause(rt);
                let released = rt
                    .pause
                    .as_mut()
                    .filter(|_| rt.phase == Phase::Paused)
                    .and_then(|p| p.held_since.take().map(|since| (p, since)));
                if let Some((p, since)) = released {
                    p.held_ms += (now - since).max(0);
                    match declared {
                        Some(own) => {
                            p.expires_at = p.since
                                + p.held_ms
                                + own
                                    .max_duration_ms
                                    .clamp(0, super::definition::MAX_PAUSE_MS);
                            let was = p.options.mode;
                            p.options = own;
                            self.switch_pause_mode(tx, jid, rt, def, was, now)?;
                        }
                        None => self.end_pause(
                            tx,
                            jid,
                            rt,
                            def,
                            now,
                            TransitionReason::HoldReleased,
                            false,
                        )?,
                    }
                }
            }
        }
        rt.hold = hold.cloned();
        Ok(())
    }
}

impl<S: Store> Engine<S> {
    /// [`Engine::apply_hold`] on the stored journey; a journey without a definition yet has
    /// nothing to hold.
    pub(crate) fn set_hold_in(
        &self,
        tx: &mut dyn StoreTx,
        key: &str,
        hold: Option<&Hold>,
        now: Millis,
    ) -> Result<()> {
        let Some(row) = tx.journey_for_update(key)? else {
            return Ok(());
        };
        let mut rt = load_rt(&row)?;
        if hold.is_none() && rt.hold.is_none() {
            return Ok(());
        }
        let Some(def) = self.cur_def(tx, row.id, &rt)? else {
            return Ok(());
        };
        self.apply_hold(tx, row.id, &mut rt, &def, hold, now)?;
        save_rt(tx, row.id, &rt)
    }
}
