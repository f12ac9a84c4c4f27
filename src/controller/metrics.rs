//! Prometheus metrics. Labels are bounded (reasons, phases, states), never object names.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The controller's counters; one per controller instance.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    status_writes: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn record_reconcile(&self) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_status_write(&self) {
        self.status_writes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_error(&self, reason: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry(reason).or_insert(0) += 1;
    }

    pub fn reconciles(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    pub fn status_writes(&self) -> u64 {
        self.status_writes.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP journey_reconciles_total Reconciles completed.");
        let _ = writeln!(out, "# TYPE journey_reconciles_total counter");
        let _ = writeln!(out, "journey_reconciles_total {}", self.reconciles());
        let _ = writeln!(
            out,
            "# HELP journey_status_writes_total Status writes to the API server."
        );
        let _ = writeln!(out, "# TYPE journey_status_writes_total counter");
        let _ = writeln!(out, "journey_status_writes_total {}", self.status_writes());
        let _ = writeln!(
            out,
            "# HELP journey_reconcile_errors_total Failed reconciles by reason."
        );
        let _ = writeln!(out, "# TYPE journey_reconcile_errors_total counter");
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        for (reason, count) in errors.iter() {
            let _ = writeln!(
                out,
                "journey_reconcile_errors_total{{reason=\"{reason}\"}} {count}"
            );
        }
        out
    }
}
