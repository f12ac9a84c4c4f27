//! Panics caught and turned into an error for one object or one request instead of taking the
//! process down: a bug found by one journey or one request must not stop every other one.
//! Counted by where they happened, on `/metrics` as `journey_panics_total{where}`.
//!
//! (A stack overflow is not a panic and cannot be caught: user expressions are bounded before
//! the recursive CEL code runs, see `journey_model::expr::limits`.)

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;

/// Where a panic was caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// One reconcile of one journey (it fails with `ReconcilePanicked` and is retried).
    Reconcile,
    /// One data-plane request (it answers 500).
    DataPlane,
}

impl Place {
    pub const ALL: [Place; 2] = [Place::Reconcile, Place::DataPlane];

    /// The `where` label.
    pub fn label(self) -> &'static str {
        match self {
            Place::Reconcile => "reconcile",
            Place::DataPlane => "data-plane",
        }
    }
}

// Process-wide like the panics themselves: every controller and data-plane server of the
// process reports the same counts.
static COUNTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Counts a caught panic and returns its message.
pub fn record(place: Place, payload: &(dyn Any + Send)) -> String {
    COUNTS[place as usize].fetch_add(1, Ordering::Relaxed);
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    tracing::error!(place = place.label(), %message, "caught a panic");
    message
}

/// How many panics were caught at `place` since the process started.
pub fn count(place: Place) -> u64 {
    COUNTS[place as usize].load(Ordering::Relaxed)
}

/// Runs `work`; a panic inside it is counted and returned as its message.
pub async fn catching<T>(place: Place, work: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|payload| record(place, payload.as_ref()))
}

/// The Prometheus exposition of the counts.
pub fn render(out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP journey_panics_total Panics caught and turned into an error for one reconcile or one request.\n# TYPE journey_panics_total counter"
    );
    for place in Place::ALL {
        let _ = writeln!(
            out,
            "journey_panics_total{{where=\"{}\"}} {}",
            place.label(),
            count(place)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message_and_is_counted() {
        let before = count(Place::Reconcile);
        let caught = catching(Place::Reconcile, async {
            let items: Vec<u8> = Vec::new();
            items[3] // an index out of bounds, as a bug would
        })
        .await;
        let message = caught.expect_err("the panic is caught");
        assert!(message.contains("index out of bounds"), "{message}");
        assert!(count(Place::Reconcile) > before);
        assert_eq!(catching(Place::Reconcile, async { 7 }).await, Ok(7));
        let mut rendered = String::new();
        render(&mut rendered);
        assert!(rendered.contains("journey_panics_total{where=\"reconcile\"}"));
        assert!(rendered.contains("journey_panics_total{where=\"data-plane\"}"));
    }
}
