//! A watch over a workload's pods that records how many of them ran at once: how a test proves
//! a Recreate rollout never overlaps an old and a new pod (a poll could miss a short overlap;
//! the watch sees every state change the apiserver stores, in order).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;

/// Running: the kubelet reports the pod Running or any of its containers running.
fn running(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        || status
            .container_statuses
            .iter()
            .flatten()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

/// What the rollout's pod watch saw: every pod's uid, and the most pods running at once.
#[derive(Default, Debug)]
pub struct Seen {
    pub running: BTreeMap<String, bool>,
    pub uids: BTreeSet<String>,
    pub most_running: usize,
}

/// Watches the pods `selector` matches and records how many ran at once, until the task is aborted.
pub fn watch_pods(
    client: kube::Client,
    namespace: &str,
    selector: &str,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().labels(selector);
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).boxed();
        while let Some(event) = events.next().await {
            let mut seen = record.lock().expect("seen");
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    seen.uids.insert(uid.clone());
                    seen.running.insert(uid, running(&pod));
                }
                Ok(watcher::Event::Delete(pod)) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    seen.running.remove(&uid);
                }
                _ => {}
            }
            let now = seen.running.values().filter(|r| **r).count();
            seen.most_running = seen.most_running.max(now);
        }
    });
    (seen, task)
}
