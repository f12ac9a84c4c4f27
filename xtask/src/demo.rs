//! `xtask demo`: feeds simulated profiles and events into the engine's data plane so
//! the example journeys visibly move, and prints a live status table until interrupted.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use journey_operator::api::Journey;

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub namespace: String,
    /// Base URL of the data plane, e.g. http://127.0.0.1:8090
    pub data_plane: String,
    pub token_file: PathBuf,
    pub interval: Duration,
    /// Events posted per interval.
    pub events_per_tick: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Token(#[from] journey_operator::dataplane::DataPlaneError),
    #[error("talking to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("talking to the data plane: {0}")]
    Http(#[from] reqwest::Error),
}

/// Run now (seed 001) for every audience-read journey, through its annotation, once the
/// simulated audience exists.
async fn request_runs(journeys: &Api<Journey>, token: u64) -> Result<(), DemoError> {
    for j in journeys.list(&ListParams::default()).await?.items {
        let reads = j
            .spec
            .entry
            .audience
            .as_ref()
            .is_some_and(|a| a.mode == journey_operator::api::journey::AudienceMode::Read);
        if reads {
            let patch = json!({"metadata": {"annotations": {journey_operator::api::annotations::RUN_REQUESTED_AT: format!("demo-{token}")}}});
            journeys
                .patch(
                    &j.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            println!(
                "requested a run of {} (journey.dev/run-requested-at)",
                j.name_any()
            );
        }
    }
    Ok(())
}

/// A small deterministic generator: the demo needs variety, not cryptographic randomness.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn simulated_batch(rng: &mut Lcg, n: usize) -> (Vec<(String, Value)>, Vec<Value>) {
    const COUNTRIES: [&str; 4] = ["FR", "NL", "DE", "ES"];
    let mut profiles = Vec::new();
    let mut events = Vec::new();
    for _ in 0..n {
        let id = format!("customer-{}", rng.below(500));
        let attributes = json!({
            "country": COUNTRIES[rng.below(4) as usize],
            "pushToken": if rng.below(2) == 0 { Value::Null } else { json!("tok") },
            "daysSinceLastOrder": rng.below(120),
        });
        let mut attrs = attributes;
        if attrs["pushToken"].is_null() {
            attrs.as_object_mut().map(|m| m.remove("pushToken"));
        }
        profiles.push((id.clone(), attrs));
        let event = match rng.below(10) {
            0..=3 => {
                json!({"profileId": id, "name": "AddToCart", "payload": {"value": rng.below(200) + 1}})
            }
            4 | 5 => json!({"profileId": id, "name": "ViewedSaleBanner"}),
            6 => json!({"profileId": id, "name": "SignedUp"}),
            7 => json!({"profileId": id, "name": "Purchase"}),
            8 => json!({"profileId": id, "name": "Activated"}),
            _ => json!({"profileId": id, "name": "VisitedStore"}),
        };
        events.push(event);
    }
    (profiles, events)
}

pub async fn run(config: DemoConfig) -> Result<(), DemoError> {
    let token = journey_operator::dataplane::read_token_file(&config.token_file)?;
    let http = journey_operator::tls::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let client = Client::try_default().await?;
    let journeys: Api<Journey> = Api::namespaced(client, &config.namespace);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let mut rng = Lcg(seed);
    let mut posted: u64 = 0;
    let mut requested_runs = false;
    loop {
        let (profiles, events) = simulated_batch(&mut rng, config.events_per_tick);
        for (id, attributes) in &profiles {
            let url = format!("{}/v1/profiles/{id}", config.data_plane);
            let _ = http
                .put(url)
                .bearer_auth(&token)
                .json(&json!({"attributes": attributes}))
                .send()
                .await;
        }
        let url = format!("{}/v1/events/batch", config.data_plane);
        if let Ok(response) = http
            .post(url)
            .bearer_auth(&token)
            .json(&json!({"events": events}))
            .send()
            .await
            && response.status().is_success()
        {
            posted += events.len() as u64;
        }

        if !requested_runs && posted > 0 {
            requested_runs = true;
            request_runs(&journeys, seed).await?;
        }

        let mut table = String::new();
        let _ = writeln!(table, "\n{posted} simulated events posted (Ctrl-C to stop)");
        let _ = writeln!(
            table,
            "{:<16} {:<10} {:>7} {:>7} {:>7} {:>9} {:>11}",
            "JOURNEY", "PHASE", "VERSION", "ACTIVE", "HELD", "COMPLETED", "DELIVERIES"
        );
        for j in journeys.list(&ListParams::default()).await?.items {
            let status = j.status.clone().unwrap_or_default();
            let counts = status.profiles.clone().unwrap_or_default();
            let key = format!("{}/{}", config.namespace, j.name_any());
            let url = format!(
                "{}/v1/deliveries?journey={key}&limit=1000",
                config.data_plane
            );
            let deliveries = match http.get(url).bearer_auth(&token).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["deliveries"].as_array().map(Vec::len)),
                Err(_) => None,
            };
            let deliveries = match deliveries {
                Some(1000) => "1000+".to_string(),
                Some(n) => n.to_string(),
                None => "?".to_string(),
            };
            let _ = writeln!(
                table,
                "{:<16} {:<10} {:>7} {:>7} {:>7} {:>9} {:>11}",
                j.name_any(),
                status
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "-".into()),
                status
                    .version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                counts.active + counts.waiting,
                counts.held,
                counts.completed + counts.exited,
                deliveries
            );
        }
        print!("{table}");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}
