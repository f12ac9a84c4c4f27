//! Watches a namespace of Journeys and remembers when each (name, generation) was first seen
//! Ready and current: the clock of the apply-to-Ready figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use journey_operator::api::Journey;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn ready_and_current(j: &Journey) -> bool {
    let Some(status) = j.status.as_ref() else {
        return false;
    };
    status.observed_generation.is_some()
        && status.observed_generation == j.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Watches a namespace and remembers when each (name, generation) was first seen Ready.
#[derive(Default)]
struct TrackerState {
    current: HashMap<String, bool>,
    ready: usize,
    ready_at: HashMap<(String, i64), Instant>,
}

pub struct Tracker {
    state: Arc<Mutex<TrackerState>>,
    /// What "ready" means for this tracker (Ready and current, unless told otherwise).
    #[allow(dead_code)]
    predicate: fn(&Journey) -> bool,
    changed: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    pub fn start(client: &Client, ns: &str) -> Tracker {
        Self::counting(client, ns, ready_and_current)
    }

    /// Counts the journeys of `ns` for which `predicate` holds, as they change.
    pub fn counting(client: &Client, ns: &str, predicate: fn(&Journey) -> bool) -> Tracker {
        let api: Api<Journey> = Api::namespaced(client.clone(), ns);
        let state = Arc::new(Mutex::new(TrackerState::default()));
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                let Ok(j) = event else { continue };
                let now = Instant::now();
                let ok = predicate(&j);
                {
                    let mut s = shared.lock().expect("tracker");
                    let was = s.current.insert(j.name_any(), ok).unwrap_or(false);
                    match (was, ok) {
                        (false, true) => s.ready += 1,
                        (true, false) => s.ready -= 1,
                        _ => {}
                    }
                    if ok && let Some(g) = j.metadata.generation {
                        s.ready_at.entry((j.name_any(), g)).or_insert(now);
                    }
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Tracker {
            state,
            predicate,
            changed: rx,
            task,
        }
    }

    fn ready(&self) -> usize {
        self.state.lock().expect("tracker").ready
    }

    fn ready_at(&self, name: &str, generation: i64) -> Option<Instant> {
        let s = self.state.lock().expect("tracker");
        s.ready_at.get(&(name.to_string(), generation)).copied()
    }

    /// Waits until `n` journeys are Ready and current; returns when the last one was seen.
    pub async fn wait_ready(&mut self, n: usize, timeout: Duration) -> Res<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.ready() >= n {
                return Ok(Instant::now());
            }
            tokio::time::timeout_at(deadline, self.changed.changed())
                .await
                .map_err(|_| {
                    format!(
                        "only {} of {n} journeys Ready after {timeout:?}",
                        self.ready()
                    )
                })??;
        }
    }

    pub async fn wait_generation(&mut self, name: &str, g: i64, timeout: Duration) -> Res<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(at) = self.ready_at(name, g) {
                return Ok(at);
            }
            tokio::time::timeout_at(deadline, self.changed.changed())
                .await
                .map_err(|_| format!("{name} generation {g} not Ready after {timeout:?}"))??;
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
