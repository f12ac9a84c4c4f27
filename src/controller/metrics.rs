//! Prometheus metrics. Labels are bounded (reasons, phases, states), never object names.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::api::status::{JourneyStatus, Phase, ProfileCounts};

/// Upper bounds of the reconcile-duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn record(&mut self, seconds: f64) {
        self.count += 1;
        self.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
    }

    /// `name_bucket`, `name_sum`, `name_count` lines, with `labels` (`k="v",` each) first.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = labels.trim_end_matches(',');
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// What the controller last reported for one journey.
#[derive(Debug, Clone)]
struct Reported {
    phase: Option<Phase>,
    profiles: ProfileCounts,
}

/// The controller's metrics; one set per controller instance.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    status_writes: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Webhook deliveries not sent because the destination's credentials file could not be
    /// read, by destination (operator-configured names: a bounded label).
    credential_errors: Mutex<BTreeMap<String, u64>>,
    durations: Mutex<Histogram>,
    /// The engine's gauges, read by the process that runs the engine (`None` elsewhere).
    engine: Mutex<Option<journey_engine::EngineStats>>,
    /// Webhook deliveries settled or retried, by destination and outcome.
    webhook_deliveries: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Webhook request latency by destination.
    webhook_latency: Mutex<BTreeMap<String, Histogram>>,
    /// HTTP requests served, by listener, route template (bounded: the routes of the code)
    /// and status.
    http: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    /// By a hash of the journey's key: 10,000 journeys' names would cost more than their
    /// gauges, and two keys sharing a 64-bit hash is beyond any real cluster.
    journeys: Mutex<HashMap<u64, Reported>>,
}

fn journey_id(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn record_reconcile(&self, took: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        lock(&self.durations).record(took.as_secs_f64());
    }

    /// The latest reading of the engine's gauges.
    pub fn set_engine_stats(&self, stats: journey_engine::EngineStats) {
        *lock(&self.engine) = Some(stats);
    }

    /// A sender pass's deliveries: outcome counts and request latency by destination.
    pub fn record_webhook_attempts(&self, attempts: &[journey_engine::webhook::Attempt]) {
        let mut counts = lock(&self.webhook_deliveries);
        let mut latency = lock(&self.webhook_latency);
        for a in attempts {
            *counts
                .entry((a.destination.clone(), a.outcome.as_str()))
                .or_insert(0) += 1;
            if let Some(seconds) = a.seconds {
                latency
                    .entry(a.destination.clone())
                    .or_default()
                    .record(seconds);
            }
        }
    }

    pub fn record_credential_error(&self, destination: &str) {
        *lock(&self.credential_errors)
            .entry(destination.to_string())
            .or_insert(0) += 1;
    }

    /// One HTTP request answered by `api` (`engine`, `data-plane`) on the route template
    /// `route` with `status`.
    pub fn record_http(&self, api: &'static str, route: &str, status: u16) {
        *lock(&self.http)
            .entry((api, route.to_string(), status))
            .or_insert(0) += 1;
    }

    pub fn record_status_write(&self) {
        self.status_writes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_error(&self, reason: &'static str) {
        *lock(&self.errors).entry(reason).or_insert(0) += 1;
    }

    /// Remembers the journey's phase and profile counts for the by-phase and by-state gauges.
    pub fn observe(&self, key: &str, status: &JourneyStatus) {
        lock(&self.journeys).insert(
            journey_id(key),
            Reported {
                phase: status.phase,
                profiles: status.profiles.clone().unwrap_or_default(),
            },
        );
    }

    pub fn forget(&self, key: &str) {
        lock(&self.journeys).remove(&journey_id(key));
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
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "journey_reconciles_total",
            "Reconciles completed.",
            self.reconciles(),
        );
        counter(
            "journey_status_writes_total",
            "Status writes to the API server.",
            self.status_writes(),
        );
        let _ = writeln!(
            out,
            "# HELP journey_reconcile_errors_total Failed reconciles by reason."
        );
        let _ = writeln!(out, "# TYPE journey_reconcile_errors_total counter");
        for (reason, count) in lock(&self.errors).iter() {
            let _ = writeln!(
                out,
                "journey_reconcile_errors_total{{reason=\"{reason}\"}} {count}"
            );
        }

        crate::panics::render(&mut out);
        let _ = writeln!(
            out,
            "# HELP journey_http_requests_total HTTP requests answered, by listener, route and status.\n# TYPE journey_http_requests_total counter"
        );
        for ((api, route, status), count) in lock(&self.http).iter() {
            let _ = writeln!(
                out,
                "journey_http_requests_total{{api=\"{api}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP journey_webhook_credential_errors_total Webhook deliveries not sent because the destination's credentials file could not be read.\n# TYPE journey_webhook_credential_errors_total counter"
        );
        for (destination, count) in lock(&self.credential_errors).iter() {
            let _ = writeln!(
                out,
                "journey_webhook_credential_errors_total{{destination=\"{destination}\"}} {count}"
            );
        }

        let _ = writeln!(
            out,
            "# HELP journey_reconcile_duration_seconds Time one reconcile took.\n# TYPE journey_reconcile_duration_seconds histogram"
        );
        lock(&self.durations).render(&mut out, "journey_reconcile_duration_seconds", "");
        self.render_engine(&mut out);

        let journeys = lock(&self.journeys);
        let mut by_phase: BTreeMap<String, u64> = [
            "Draft",
            "Scheduled",
            "Live",
            "Paused",
            "Resuming",
            "Closing",
            "Completed",
            "Stopped",
        ]
        .into_iter()
        .map(|p| (p.to_string(), 0))
        .collect();
        let mut by_state: BTreeMap<&'static str, i64> = BTreeMap::new();
        for reported in journeys.values() {
            if let Some(phase) = reported.phase {
                *by_phase.entry(format!("{phase:?}")).or_insert(0) += 1;
            }
            let p = &reported.profiles;
            for (state, n) in [
                ("active", p.active),
                ("waiting", p.waiting),
                ("held", p.held),
                ("queued", p.queued),
                ("discarded", p.discarded),
                ("excluded", p.excluded),
                ("exited", p.exited),
                ("completed", p.completed),
            ] {
                *by_state.entry(state).or_insert(0) += n;
            }
        }
        let _ = writeln!(out, "# HELP journey_journeys Journeys by phase.");
        let _ = writeln!(out, "# TYPE journey_journeys gauge");
        for (phase, n) in &by_phase {
            let _ = writeln!(out, "journey_journeys{{phase=\"{phase}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP journey_profiles Profiles by state, summed over journeys."
        );
        let _ = writeln!(out, "# TYPE journey_profiles gauge");
        for (state, n) in &by_state {
            let _ = writeln!(out, "journey_profiles{{state=\"{state}\"}} {n}");
        }
        out
    }
}

impl Metrics {
    /// The engine's own metrics: its gauges (when this process runs the engine) and what its
    /// webhook sender did.
    fn render_engine(&self, out: &mut String) {
        if let Some(stats) = lock(&self.engine).as_ref() {
            let _ = writeln!(
                out,
                "# HELP journey_engine_due_backlog Enrollments due now that the scheduler has not advanced yet.\n# TYPE journey_engine_due_backlog gauge\njourney_engine_due_backlog {}",
                stats.due_backlog
            );
            let _ = writeln!(
                out,
                "# HELP journey_engine_tick_lag_seconds How far behind the scheduler is: now minus the earliest due time not advanced (0 when none is overdue).\n# TYPE journey_engine_tick_lag_seconds gauge\njourney_engine_tick_lag_seconds {}",
                stats.tick_lag_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "# HELP journey_outbox_deliveries Webhook deliveries not settled yet, by destination and status (pending, held by a pause, sending).\n# TYPE journey_outbox_deliveries gauge"
            );
            for (destination, status, n) in &stats.outbox {
                let status = format!("{status:?}").to_lowercase();
                let _ = writeln!(
                    out,
                    "journey_outbox_deliveries{{destination=\"{destination}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP journey_webhook_deliveries_total Webhook deliveries by destination and outcome of their attempt (sent, retried, failed).\n# TYPE journey_webhook_deliveries_total counter"
        );
        for ((destination, outcome), n) in lock(&self.webhook_deliveries).iter() {
            let _ = writeln!(
                out,
                "journey_webhook_deliveries_total{{destination=\"{destination}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP journey_webhook_request_duration_seconds Time a webhook endpoint took to answer, by destination.\n# TYPE journey_webhook_request_duration_seconds histogram"
        );
        for (destination, h) in lock(&self.webhook_latency).iter() {
            h.render(
                out,
                "journey_webhook_request_duration_seconds",
                &format!("destination=\"{destination}\","),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bounded_labels_only() {
        let m = Metrics::default();
        m.record_reconcile(Duration::from_millis(20));
        m.record_error("EngineUnavailable");
        m.record_credential_error("crm");
        m.record_credential_error("crm");
        let status = JourneyStatus {
            phase: Some(Phase::Paused),
            profiles: Some(ProfileCounts {
                held: 7,
                ..ProfileCounts::default()
            }),
            ..JourneyStatus::default()
        };
        m.observe("secret-namespace/secret-name", &status);
        let text = m.render();
        assert!(text.contains("journey_reconciles_total 1"));
        assert!(text.contains("journey_reconcile_errors_total{reason=\"EngineUnavailable\"} 1"));
        assert!(text.contains("journey_reconcile_duration_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("journey_reconcile_duration_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("journey_journeys{phase=\"Paused\"} 1"));
        assert!(text.contains("journey_profiles{state=\"held\"} 7"));
        assert!(text.contains("journey_webhook_credential_errors_total{destination=\"crm\"} 2"));
        assert!(text.contains("journey_panics_total{where=\"data-plane\"}"));
        assert!(!text.contains("secret"), "object names never become labels");
        assert!(
            !text.contains("journey_engine_due_backlog"),
            "no engine in this process, no engine gauges"
        );
    }

    #[test]
    fn renders_the_engine_gauges_and_webhook_attempts() {
        use journey_engine::webhook::{Attempt, AttemptOutcome};
        let m = Metrics::default();
        m.set_engine_stats(journey_engine::EngineStats {
            now: 10_000,
            due_backlog: 4,
            tick_lag_ms: 1_500,
            outbox: vec![("crm".into(), journey_engine::DeliveryStatus::Pending, 3)],
        });
        m.record_webhook_attempts(&[
            Attempt {
                destination: "crm".into(),
                outcome: AttemptOutcome::Sent,
                seconds: Some(0.02),
            },
            Attempt {
                destination: "crm".into(),
                outcome: AttemptOutcome::Failed,
                seconds: None,
            },
        ]);
        let text = m.render();
        for line in [
            "journey_engine_due_backlog 4",
            "journey_engine_tick_lag_seconds 1.5",
            "journey_outbox_deliveries{destination=\"crm\",status=\"pending\"} 3",
            "journey_webhook_deliveries_total{destination=\"crm\",outcome=\"sent\"} 1",
            "journey_webhook_deliveries_total{destination=\"crm\",outcome=\"failed\"} 1",
            "journey_webhook_request_duration_seconds_bucket{destination=\"crm\",le=\"0.025\"} 1",
            "journey_webhook_request_duration_seconds_bucket{destination=\"crm\",le=\"0.01\"} 0",
            "journey_webhook_request_duration_seconds_count{destination=\"crm\"} 1",
            "journey_reconcile_duration_seconds_count 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_journey_counts_once_and_goes_when_forgotten() {
        let m = Metrics::default();
        let in_phase = |phase| JourneyStatus {
            phase: Some(phase),
            ..JourneyStatus::default()
        };
        m.observe("ns/a", &in_phase(Phase::Paused));
        m.observe("ns/a", &in_phase(Phase::Live));
        m.observe("ns/b", &in_phase(Phase::Live));
        let text = m.render();
        assert!(
            text.contains("journey_journeys{phase=\"Live\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("journey_journeys{phase=\"Paused\"} 0"),
            "{text}"
        );
        m.forget("ns/a");
        assert!(m.render().contains("journey_journeys{phase=\"Live\"} 1"));
    }
}
