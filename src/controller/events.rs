//! Kubernetes events (events.k8s.io/v1) for journeys: the first occurrence is created, a
//! repeat within [`SERIES_WINDOW`] patches the same event's `series` (count, last seen), as
//! kube's `Recorder` does — hence RBAC's `create` and `patch` on events.
//!
//! Why not kube's `Recorder`: it keeps every event it published, whole, for six minutes, in
//! one map shared by all journeys. heaptrack measured that map at ~9 MB with 2,000 journeys
//! after a cold start (one `Published` event each), so it alone would exceed the controller's
//! memory budget at 10,000. This recorder keeps only what a repeat needs (the event's name,
//! the count and when it was last seen: about 100 bytes), keyed by a hash of what makes two
//! events the same (type, action, reason and the journey's uid — not its resourceVersion,
//! which changes with every status write, so kube's keys rarely matched a repeat).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};

/// A repeat this long after the last occurrence starts a new event instead of a series.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Who reports the events (`reportingController`, `reportingInstance`).
#[derive(Debug, Clone)]
pub struct Reporter {
    pub controller: String,
    pub instance: String,
}

struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

pub struct EventRecorder {
    client: Client,
    reporter: Reporter,
    seen: Mutex<HashMap<u64, Seen>>,
    last_sweep: Mutex<Timestamp>,
}

fn key(ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    matches!(ev.type_, EventType::Warning).hash(&mut h);
    ev.action.hash(&mut h);
    ev.reason.hash(&mut h);
    regarding.uid.hash(&mut h);
    regarding.namespace.hash(&mut h);
    regarding.name.hash(&mut h);
    regarding.kind.hash(&mut h);
    h.finish()
}

fn within_window(last: Timestamp, now: Timestamp) -> bool {
    now.as_millisecond() - last.as_millisecond() < SERIES_WINDOW.as_millis() as i64
}

impl EventRecorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            seen: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Timestamp::UNIX_EPOCH),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Seen>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets events whose series window closed (at most once a minute).
    fn sweep(&self, now: Timestamp) {
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if now.as_second() - last.as_second() < 60 {
                return;
            }
            *last = now;
        }
        let mut seen = self.seen();
        seen.retain(|_, s| within_window(s.last, now));
        seen.shrink_to_fit();
    }

    /// How many events are remembered for series (tests and memory checks).
    pub fn remembered(&self) -> usize {
        self.seen().len()
    }

    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        self.sweep(now);
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let key = key(ev, regarding);
        let repeat = self
            .seen()
            .get(&key)
            .filter(|s| within_window(s.last, now))
            .map(|s| (s.name.clone(), s.count + 1));
        if let Some((name, count)) = repeat {
            // Only the series changes: an event's note is immutable, so a series keeps the
            // first occurrence's note (as with kube's Recorder).
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: MicroTime(now) },
            });
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.seen().insert(
                        key,
                        Seen {
                            name,
                            count,
                            last: now,
                        },
                    );
                    return Ok(());
                }
                // The event expired (the apiserver keeps events for an hour) or was deleted:
                // start a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: ev.note.clone(),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone()),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..K8sEvent::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.seen().insert(
            key,
            Seen {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str, rv: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Journey".into()),
            namespace: Some("ns".into()),
            name: Some("j".into()),
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[test]
    fn a_repeat_is_the_same_event_whatever_the_resource_version_or_note() {
        let a = key(&event("EngineUnavailable", "try 1"), &reference("u1", "1"));
        assert_eq!(
            a,
            key(&event("EngineUnavailable", "try 2"), &reference("u1", "2"))
        );
        assert_ne!(a, key(&event("Published", "x"), &reference("u1", "1")));
        // A journey deleted and created again under the same name is another object.
        assert_ne!(
            a,
            key(&event("EngineUnavailable", "try 1"), &reference("u2", "1"))
        );
    }

    #[test]
    fn the_series_window_is_six_minutes() {
        let t = Timestamp::from_second(1_000_000).expect("time");
        let later = |s: i64| Timestamp::from_second(1_000_000 + s).expect("time");
        assert!(within_window(t, later(359)));
        assert!(!within_window(t, later(360)));
    }
}
