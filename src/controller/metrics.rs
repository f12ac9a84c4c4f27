//! Prometheus metrics. Labels are bounded (reasons, phases, states), never object names.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static RECONCILES: AtomicU64 = AtomicU64::new(0);
static STATUS_WRITES: AtomicU64 = AtomicU64::new(0);
static ERRORS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

pub fn record_reconcile() {
    RECONCILES.fetch_add(1, Ordering::Relaxed);
}

pub fn record_status_write() {
    STATUS_WRITES.fetch_add(1, Ordering::Relaxed);
}

pub fn record_error(reason: &'static str) {
    let mut errors = ERRORS.lock().unwrap_or_else(|p| p.into_inner());
    *errors.entry(reason).or_insert(0) += 1;
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP journey_reconciles_total Reconciles completed.");
    let _ = writeln!(out, "# TYPE journey_reconciles_total counter");
    let _ = writeln!(
        out,
        "journey_reconciles_total {}",
        RECONCILES.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP journey_status_writes_total Status writes to the API server."
    );
    let _ = writeln!(out, "# TYPE journey_status_writes_total counter");
    let _ = writeln!(
        out,
        "journey_status_writes_total {}",
        STATUS_WRITES.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP journey_reconcile_errors_total Failed reconciles by reason."
    );
    let _ = writeln!(out, "# TYPE journey_reconcile_errors_total counter");
    let errors = ERRORS.lock().unwrap_or_else(|p| p.into_inner());
    for (reason, count) in errors.iter() {
        let _ = writeln!(
            out,
            "journey_reconcile_errors_total{{reason=\"{reason}\"}} {count}"
        );
    }
    out
}
