//! `plan --cluster`: live impact from the Journeys' status in the current cluster — how many
//! profiles are inside, how many a pause will hold or discard, a pause close to its expiry —
//! and, through the operator's data plane, how many in-flight profiles a new global filter
//! matches right now.

use std::path::PathBuf;

use kube::{Api, Client};
use serde::Serialize;

use super::{JourneyChange, Plan};
use crate::api::Journey;
use crate::api::journey::PauseMode;
use crate::engine::FilterMatches;
use journey_model::lifecycle::JourneyState;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LiveImpact {
    pub phase: Option<String>,
    /// Profiles inside now (active, waiting, held, queued).
    pub inside: i64,
    /// Profiles inside that a Hold pause will hold at their next action step.
    pub will_be_held: i64,
    /// Profiles inside that a Discard pause will drop at their next action step.
    pub will_be_discarded: i64,
    /// The new global filter's reach, when the change sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_filter: Option<FilterImpact>,
}

/// How many in-flight profiles a new global filter matches, or why that was not counted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(
    rename_all = "camelCase",
    tag = "result",
    rename_all_fields = "camelCase"
)]
pub enum FilterImpact {
    Evaluated {
        filter: String,
        in_flight: i64,
        matching: i64,
        evaluation_errors: i64,
    },
    NotEvaluated {
        filter: String,
        reason: String,
    },
}

/// Where the operator's data plane answers (`--data-plane`, `--data-plane-token-file`).
#[derive(Debug, Clone)]
pub struct DataPlaneAccess {
    pub url: String,
    pub token_file: PathBuf,
}

/// Errors that stop `--cluster` altogether (the data plane's are reported per journey).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("reading Journeys from the cluster: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Token(#[from] crate::dataplane::DataPlaneError),
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A client for the one data-plane call `plan` makes.
struct FilterProbe {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl FilterProbe {
    fn new(access: &DataPlaneAccess) -> Result<Self, LiveError> {
        let token = crate::dataplane::read_token_file(&access.token_file)?;
        let http = crate::tls::http_client_builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        Ok(Self {
            http,
            url: access.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn count(&self, namespace: &str, name: &str, filter: &str) -> FilterImpact {
        let not_evaluated = |reason: String| FilterImpact::NotEvaluated {
            filter: filter.to_string(),
            reason,
        };
        let url = format!(
            "{}/v1/journeys/{}/{}/filter-matches",
            self.url,
            percent(namespace),
            percent(name)
        );
        let response = match self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "filter": filter }))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return not_evaluated(format!("the data plane at {} failed: {e}", self.url)),
        };
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            return not_evaluated(format!("the data plane answered {status}: {message}"));
        }
        match serde_json::from_str::<FilterMatches>(&body) {
            Ok(m) => FilterImpact::Evaluated {
                filter: filter.to_string(),
                in_flight: m.in_flight,
                matching: m.matching,
                evaluation_errors: m.evaluation_errors,
            },
            Err(e) => not_evaluated(format!("unexpected answer from the data plane: {e}")),
        }
    }
}

/// Namespaces and names are DNS labels/subdomains; this only guards against anything else.
fn percent(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Adds live impact to every changed journey that exists in the cluster.
pub async fn annotate(
    plan: &mut Plan,
    client: &Client,
    head_states: &[(String, JourneyState, Option<PauseMode>)],
    data_plane: Option<&DataPlaneAccess>,
) -> Result<(), LiveError> {
    let probe = data_plane.map(FilterProbe::new).transpose()?;
    for change in &mut plan.changes {
        let Some((namespace, name)) = change.key.split_once('/') else {
            continue;
        };
        let api: Api<Journey> = Api::namespaced(client.clone(), namespace);
        let Some(live) = api.get_opt(name).await? else {
            continue;
        };
        let status = live.status.unwrap_or_default();
        let counts = status.profiles.clone().unwrap_or_default();
        let moving = counts.active + counts.waiting;
        let target = head_states.iter().find(|(k, _, _)| *k == change.key);
        let pausing = target.is_some_and(|(_, s, _)| *s == JourneyState::Paused)
            && status.phase.is_some_and(|p| p != crate::api::Phase::Paused);
        let mode = target.and_then(|(_, _, m)| *m);
        let global_filter = match (&change.new_global_filter, &probe) {
            (None, _) => None,
            (Some(filter), Some(probe)) => Some(probe.count(namespace, name, filter).await),
            (Some(filter), None) => Some(FilterImpact::NotEvaluated {
                filter: filter.clone(),
                reason: "pass --data-plane and --data-plane-token-file to count the in-flight profiles it matches".into(),
            }),
        };
        change.live = Some(LiveImpact {
            phase: status.phase.map(|p| format!("{p:?}")),
            inside: moving + counts.held + counts.queued,
            will_be_held: if pausing && mode == Some(PauseMode::Hold) {
                moving
            } else {
                0
            },
            will_be_discarded: if pausing && mode == Some(PauseMode::Discard) {
                moving
            } else {
                0
            },
            global_filter,
        });
        warn_near_expiry(change, &status);
    }
    Ok(())
}

fn warn_near_expiry(change: &mut JourneyChange, status: &crate::api::JourneyStatus) {
    let Some(pause) = &status.pause else { return };
    let total = pause.expires_at.0.as_second() - pause.since.0.as_second();
    let left = pause.expires_at.0.as_second() - k8s_openapi::jiff::Timestamp::now().as_second();
    if total > 0 && left < total / 10 {
        change.warnings.push(format!(
            "the pause expires at {} ({} min left): it will resume (or stop) by itself",
            pause.expires_at.0,
            left.max(0) / 60
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(percent("journeys-demo"), "journeys-demo");
        assert_eq!(percent("a/b c"), "a%2Fb%20c");
    }
}
