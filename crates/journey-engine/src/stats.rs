//! What the engine's own metrics report, read from the store at scrape time: the scheduler's
//! backlog and lag, and the outbox backlog by destination. Counters of what happened (webhook
//! attempts and their latency) are counted where they happen (`webhook::SendReport`).

use serde::Serialize;

use super::clock::Millis;
use super::core::Engine;
use super::error::Result;
use super::store::{DeliveryStatus, Store};

/// One reading of the engine's gauges.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EngineStats {
    /// The engine's time of the reading.
    pub now: Millis,
    /// Enrollments due at or before `now` that the scheduler has not advanced yet.
    pub due_backlog: i64,
    /// How far behind the scheduler is: `now` minus the earliest due time not yet advanced
    /// (0 when nothing is overdue).
    pub tick_lag_ms: i64,
    /// Unsettled webhook deliveries by (destination, status: Pending, Held or Sending).
    pub outbox: Vec<(String, DeliveryStatus, i64)>,
}

impl<S: Store> Engine<S> {
    /// Reads the gauges in one read transaction, two statements: O(journeys + backlog).
    pub fn stats_blocking(&self) -> Result<EngineStats> {
        let now = self.now();
        self.read(|tx| {
            let mut stats = EngineStats {
                now,
                ..EngineStats::default()
            };
            let (due, earliest) = tx.due_backlog(now)?;
            stats.due_backlog = due;
            stats.tick_lag_ms = earliest.map_or(0, |e| (now - e).max(0));
            stats.outbox = tx.outbox_backlog()?;
            Ok(stats)
        })
    }
}
