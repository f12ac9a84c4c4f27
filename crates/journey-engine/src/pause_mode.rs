//! Changing `pause.mode` during a pause: the new mode applies to what the old one left behind,
//! as if the pause had begun in it, except that nothing discarded comes back.

use super::clock::Millis;
use super::definition::{CompiledDefinition, PauseMode};
use super::error::Result;
use super::lifecycle::{ResumeInfo, Runtime};
use super::store::{DeliveryStatus, EnrollmentState as ES, Store, StoreTx};

use super::core::*;

impl<S: Store> Engine<S> {
    /// Applies a mode change of the current pause, once its options hold the new mode
    /// (Paused -> Paused with new options); `from` is the mode it had.
    ///
    /// * to Discard: the held profiles are at their action step, which is where Discard
    ///   drops profiles, so they are discarded (`PauseDiscard`) and every unsent webhook
    ///   delivery (held or pending) is cancelled, as a Discard pause does when it begins.
    /// * to Hold: unsent webhook deliveries are held; profiles discarded so far stay so.
    /// * to EntryOnly: profiles move and messages go, so the held profiles are released at the
    ///   journey's resume rate (the scheduler's release, while still paused) and held
    ///   deliveries go back to the sender.
    pub(crate) fn switch_pause_mode(
        &self,
        tx: &mut dyn StoreTx,
        jid: i64,
        rt: &mut Runtime,
        def: &CompiledDefinition,
        from: PauseMode,
        now: Millis,
    ) -> Result<()> {
        let Some(to) = rt.pause.as_ref().map(|p| p.options.mode) else {
            return Ok(());
        };
        if from == to {
            return Ok(());
        }
        // A release begun under EntryOnly stops with it; the rest stay held until resume.
        rt.resume = None;
        match to {
            PauseMode::Hold => {
                tx.set_delivery_status(jid, DeliveryStatus::Pending, DeliveryStatus::Held)?;
            }
            PauseMode::Discard => {
                tx.transition_all(jid, &[ES::Held], ES::Discarded, "PauseDiscard", now)?;
                tx.set_delivery_status(jid, DeliveryStatus::Pending, DeliveryStatus::Cancelled)?;
                tx.set_delivery_status(jid, DeliveryStatus::Held, DeliveryStatus::Cancelled)?;
                // The engine-wide held estimate counted these; count again at the next hold.
                if let Ok(mut c) = self.inner.held_cache.lock() {
                    *c = None;
                }
            }
            PauseMode::EntryOnly => {
                tx.set_delivery_status(jid, DeliveryStatus::Held, DeliveryStatus::Pending)?;
                let held = tx
                    .count_states(jid, rt.epoch)?
                    .into_iter()
                    .find(|(s, _)| *s == ES::Held)
                    .map_or(0, |(_, n)| n);
                if held > 0 {
                    rt.resume = Some(ResumeInfo {
                        started_at: now,
                        total: held,
                        released: 0,
                        rate: def.resume_rate,
                        finished_at: None,
                    });
                }
            }
        }
        Ok(())
    }
}
