//! The null controller: the same client library (kube-rs) reacting to the same watch of
//! Journeys with one status write per new generation (Ready, observedGeneration) and nothing
//! else. Its apply→Ready latency is what the apiserver and the watch allow; the real
//! controller's figure reads as a ratio to it.

use futures::StreamExt;
use journey_operator::api::Journey;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const MANAGER: &str = "journey-bench-null-controller";

pub struct NullController {
    task: tokio::task::JoinHandle<()>,
}

impl NullController {
    pub fn start(client: &Client, ns: &str) -> NullController {
        let api: Api<Journey> = Api::namespaced(client.clone(), ns);
        let task = tokio::spawn(async move {
            let mut stream = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                let Ok(j) = event else { continue };
                let generation = j.metadata.generation;
                let observed = j.status.as_ref().and_then(|s| s.observed_generation);
                if generation.is_none() || observed == generation {
                    continue;
                }
                let status = json!({
                    "apiVersion": "journey.dev/v1alpha1",
                    "kind": "Journey",
                    "status": {
                        "observedGeneration": generation,
                        "conditions": [{
                            "type": "Ready",
                            "status": "True",
                            "reason": "Baseline",
                            "message": "null controller",
                            "observedGeneration": generation,
                            "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        }]
                    }
                });
                if let Err(e) = api
                    .patch_status(
                        &j.name_any(),
                        &PatchParams::apply(MANAGER).force(),
                        &Patch::Apply(status),
                    )
                    .await
                {
                    eprintln!("null controller: status of {}: {e}", j.name_any());
                }
            }
        });
        NullController { task }
    }
}

impl Drop for NullController {
    fn drop(&mut self) {
        self.task.abort();
    }
}
