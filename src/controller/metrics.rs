//! Prometheus metrics. Labels are bounded (reasons, phases, states); object names appear only
//! on the per-journey gauges of journeys needing attention (Stalled, a pause that can expire, a
//! resume under way), which the alerts of manifests/monitoring/ must name.

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
    /// Only for a journey someone must look at (Stalled, paused towards its expiry, resuming):
    /// its alerts must name it, and such journeys are few, so their names as labels cost
    /// little; a healthy journey keeps no name here.
    attention: Option<Attention>,
}

/// The per-journey facts the alerts need, with the journey's namespace and name.
#[derive(Debug, Clone, PartialEq)]
struct Attention {
    namespace: String,
    name: String,
    /// The Stalled condition's reason while it is True.
    stalled: Option<String>,
    /// A pause that can expire (not held): since and expires-at, in Unix milliseconds.
    pause: Option<(i64, i64)>,
    /// A resume under way: held profiles to release, and released so far.
    resume: Option<(i64, i64)>,
}

impl Attention {
    fn of(key: &str, status: &JourneyStatus) -> Option<Attention> {
        let stalled = status
            .conditions
            .iter()
            .find(|c| c.type_ == crate::api::status::condition_types::STALLED && c.status == "True")
            .map(|c| c.reason.clone());
        // A held pause does not expire (its clock stands still), so it is not near its end.
        let pause = status
            .pause
            .as_ref()
            .filter(|p| p.held_by.is_empty())
            .map(|p| (p.since.0.as_millisecond(), p.expires_at.0.as_millisecond()));
        let resume = status.resume.as_ref().map(|r| (r.total, r.released));
        if stalled.is_none() && pause.is_none() && resume.is_none() {
            return None;
        }
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        Some(Attention {
            namespace: namespace.to_string(),
            name: name.to_string(),
            stalled,
            pause,
            resume,
        })
    }
}

/// How the controller last found its engine: the mode (`embedded`, `remote`) and whether the
/// last reconcile reached it.
#[derive(Debug, Default)]
struct EngineReach {
    mode: &'static str,
    available: Option<bool>,
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
    engine_reach: Mutex<EngineReach>,
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

    /// The controller's engine mode, `embedded` or `remote` (the label of
    /// `journey_engine_available`).
    pub fn set_engine_mode(&self, mode: &'static str) {
        lock(&self.engine_reach).mode = mode;
    }

    /// Whether a reconcile just reached the engine (succeeded) or found it unavailable.
    pub fn record_engine_available(&self, available: bool) {
        lock(&self.engine_reach).available = Some(available);
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
                attention: Attention::of(key, status),
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
        self.render_engine_reach(&mut out);

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
        let mut attention: Vec<&Attention> = journeys
            .values()
            .filter_map(|r| r.attention.as_ref())
            .collect();
        attention.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        render_attention(&mut out, &attention, now_millis());
        out
    }

    fn render_engine_reach(&self, out: &mut String) {
        let reach = lock(&self.engine_reach);
        let _ = writeln!(
            out,
            "# HELP journey_engine_available Whether the controller's last reconcile reached its journey engine (1) or found it unavailable (0), by engine mode (embedded, remote).\n# TYPE journey_engine_available gauge"
        );
        if let Some(available) = reach.available {
            let mode = if reach.mode.is_empty() {
                "embedded"
            } else {
                reach.mode
            };
            let _ = writeln!(
                out,
                "journey_engine_available{{mode=\"{mode}\"}} {}",
                u8::from(available)
            );
        }
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Label values are journey names and reasons: DNS-1123 names and reason words, but escaped
/// anyway as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The per-journey gauges of the journeys that need attention, at `now` (Unix ms).
fn render_attention(out: &mut String, journeys: &[&Attention], now: i64) {
    let labels = |a: &Attention| {
        format!(
            "namespace=\"{}\",journey=\"{}\"",
            escape(&a.namespace),
            escape(&a.name)
        )
    };
    let _ = writeln!(
        out,
        "# HELP journey_stalled Journeys whose Stalled condition is True (the user must act), by namespace, journey and reason.\n# TYPE journey_stalled gauge"
    );
    for a in journeys {
        if let Some(reason) = &a.stalled {
            let _ = writeln!(
                out,
                "journey_stalled{{{},reason=\"{}\"}} 1",
                labels(a),
                escape(reason)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP journey_pause_elapsed_ratio How much of a pause's maxDuration has passed (1 = onExpiry now), for pauses not held by an emergency hold.\n# TYPE journey_pause_elapsed_ratio gauge"
    );
    for a in journeys {
        if let Some((since, expires)) = a.pause {
            let ratio = if expires > since {
                (now - since).max(0) as f64 / (expires - since) as f64
            } else {
                1.0
            };
            let _ = writeln!(out, "journey_pause_elapsed_ratio{{{}}} {ratio}", labels(a));
        }
    }
    let _ = writeln!(
        out,
        "# HELP journey_resume_released_profiles Held profiles a resume under way has released so far.\n# TYPE journey_resume_released_profiles gauge"
    );
    for a in journeys {
        if let Some((_, released)) = a.resume {
            let _ = writeln!(
                out,
                "journey_resume_released_profiles{{{}}} {released}",
                labels(a)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP journey_resume_remaining_profiles Held profiles a resume under way has still to release.\n# TYPE journey_resume_remaining_profiles gauge"
    );
    for a in journeys {
        if let Some((total, released)) = a.resume {
            let _ = writeln!(
                out,
                "journey_resume_remaining_profiles{{{}}} {}",
                labels(a),
                (total - released).max(0)
            );
        }
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
    fn journeys_needing_attention_are_named_and_healthy_ones_are_not() {
        use crate::api::journey::PauseMode;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        use k8s_openapi::jiff::Timestamp;
        let m = Metrics::default();
        let stalled = JourneyStatus {
            conditions: vec![Condition {
                type_: "Stalled".into(),
                status: "True".into(),
                reason: "InvalidDefinition".into(),
                message: String::new(),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..JourneyStatus::default()
        };
        m.observe("team/broken", &stalled);
        let now = now_millis();
        let pause = |held_by: Vec<String>| JourneyStatus {
            pause: Some(crate::api::status::PauseStatus {
                since: Time(Timestamp::from_millisecond(now - 95_000).expect("time")),
                mode: PauseMode::Hold,
                reason: None,
                expires_at: Time(Timestamp::from_millisecond(now + 5_000).expect("time")),
                held_by,
                actor: None,
                change_ref: None,
            }),
            ..JourneyStatus::default()
        };
        m.observe("team/paused", &pause(vec![]));
        m.observe(
            "team/frozen",
            &pause(vec!["ClusterJourneyHold freeze".into()]),
        );
        m.observe(
            "team/resuming",
            &JourneyStatus {
                resume: Some(crate::api::status::ResumeStatus {
                    started_at: Time(Timestamp::UNIX_EPOCH),
                    total: 10,
                    released: 4,
                }),
                ..JourneyStatus::default()
            },
        );
        m.observe("team/healthy", &JourneyStatus::default());
        m.set_engine_mode("remote");
        m.record_engine_available(false);
        let text = m.render();
        for line in [
            "journey_stalled{namespace=\"team\",journey=\"broken\",reason=\"InvalidDefinition\"} 1",
            "journey_resume_released_profiles{namespace=\"team\",journey=\"resuming\"} 4",
            "journey_resume_remaining_profiles{namespace=\"team\",journey=\"resuming\"} 6",
            "journey_engine_available{mode=\"remote\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        let ratio: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "journey_pause_elapsed_ratio{namespace=\"team\",journey=\"paused\"} ",
                )
            })
            .expect("the pause ratio")
            .parse()
            .expect("a number");
        assert!((0.94..=0.96).contains(&ratio), "95 s of 100 s: {ratio}");
        assert!(
            !text.contains("frozen"),
            "a held pause does not expire: {text}"
        );
        assert!(!text.contains("healthy"), "healthy journeys stay unnamed");
        m.observe("team/broken", &JourneyStatus::default());
        assert!(
            !m.render().contains("broken"),
            "a fixed journey loses its series"
        );
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
