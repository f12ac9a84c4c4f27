//! The simulated traffic: profiles and events posted to the data plane each tick, and the
//! data-plane reads the demo shows (deliveries per journey).

use std::time::Duration;

use serde_json::{Value, json};

/// Deliveries are counted up to the data plane's page limit; more shows as "1000+".
pub const DELIVERIES_LIMIT: usize = 1000;

/// The data plane of the running operator, with its bearer token.
#[derive(Clone)]
pub struct DataPlane {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl DataPlane {
    pub fn new(base: &str, token: String) -> Result<Self, reqwest::Error> {
        let http = journey_operator::tls::http_client_builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(DataPlane {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Upserts the batch's profiles and posts its events; the number of events accepted.
    pub async fn post(&self, batch: &Batch) -> u64 {
        for (id, attributes) in &batch.profiles {
            let url = format!("{}/v1/profiles/{id}", self.base);
            let _ = self
                .http
                .put(url)
                .bearer_auth(&self.token)
                .json(&json!({"attributes": attributes}))
                .send()
                .await;
        }
        let url = format!("{}/v1/events/batch", self.base);
        match self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(&json!({"events": batch.events}))
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => batch.events.len() as u64,
            _ => 0,
        }
    }

    /// Deliveries recorded for `namespace/name` (`GET /v1/deliveries?journey=…`), counted up
    /// to [`DELIVERIES_LIMIT`]; `None` when the data plane does not answer.
    pub async fn deliveries(&self, namespace: &str, name: &str) -> Option<usize> {
        let url = format!(
            "{}/v1/deliveries?journey={namespace}/{name}&limit={DELIVERIES_LIMIT}",
            self.base
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.json::<Value>().await.ok()?;
        body["deliveries"].as_array().map(Vec::len)
    }
}

/// A small deterministic generator: the demo needs variety, not cryptographic randomness.
pub struct Lcg(pub u64);

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

/// One tick of traffic: profile upserts (id, attributes) and events.
pub struct Batch {
    pub profiles: Vec<(String, Value)>,
    pub events: Vec<Value>,
}

/// The simulated profiles have `country` (FR, NL, DE or ES), `daysSinceLastOrder` and, for
/// about half of them, `pushToken`.
pub fn simulated_batch(rng: &mut Lcg, n: usize) -> Batch {
    const COUNTRIES: [&str; 4] = ["FR", "NL", "DE", "ES"];
    let mut profiles = Vec::new();
    let mut events = Vec::new();
    for _ in 0..n {
        let id = format!("customer-{}", rng.below(500));
        let mut attributes = json!({
            "country": COUNTRIES[rng.below(4) as usize],
            "daysSinceLastOrder": rng.below(120),
        });
        if rng.below(2) == 1 {
            attributes["pushToken"] = json!("tok");
        }
        profiles.push((id.clone(), attributes));
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
    Batch { profiles, events }
}
