//! `JourneyHold` and `ClusterJourneyHold`: emergency holds over many journeys. A hold is its
//! own object, so restoring a Journey's spec from Git (Argo CD self-heal, a Flux sync) cannot
//! undo it; deleting the hold or reaching its expiry releases the journeys.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::journey::PauseMode;

/// The longest a hold may last: the seeds' 14-day guardrail, as for `pause.maxDuration`.
pub const MAX_HOLD: &str = "336h";
/// At most this many journey names are listed in a hold's status (the counts stay exact).
pub const MAX_LISTED: usize = 50;

/// A hold over the Journeys of its namespace that match `selector`: each one in phase
/// Scheduled, Live, Resuming or Paused is paused in the engine with `mode`, whatever its spec
/// says, until the hold is deleted or expires.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "journey.dev",
    version = "v1alpha1",
    kind = "JourneyHold",
    namespaced,
    plural = "journeyholds",
    shortname = "jhold",
    status = "HoldStatus",
    derive = "PartialEq",
    doc = "An emergency hold: pauses every matching Journey of the namespace until it is deleted or expires; Git cannot revert it.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Held","type":"integer","jsonPath":".status.matched","description":"Journeys held now"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason"}"#,
    printcolumn = r#"{"name":"By","type":"string","jsonPath":".status.createdBy","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.selector)").message("spec.selector is required: {} holds every Journey of the namespace, matchLabels: {team: growth} only those labelled so"))]
#[x_kube(validation = Rule::new("has(self.reason) && size(self.reason) > 0").message("spec.reason is required: say why you hold these journeys (it is shown on every held journey, e.g. \"incident 4711: wrong coupon\")"))]
#[x_kube(validation = Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
pub struct JourneyHoldSpec {
    /// Which Journeys of the namespace are held (a label selector; `{}` holds them all).
    /// Journeys that start matching later are held too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<HoldSelector>,
    /// Hold (default): profiles wait at their next action step. Discard: they are dropped
    /// there. EntryOnly: only entrance stops. With several holds and a paused spec, the
    /// strictest mode wins: Discard > Hold > EntryOnly.
    #[serde(default)]
    pub mode: PauseMode,
    /// Why; shown on every held journey, in events and by `kubectl journey get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
    /// How long the hold lasts from its creation (Go-style duration, at most 336h); then the
    /// journeys are released. Extend it by editing this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(crate::api::duration::DURATION_PATTERN))]
    pub duration: Option<String>,
}

/// A hold over the Journeys of every namespace that `namespaceSelector` matches, for incidents
/// across teams.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "journey.dev",
    version = "v1alpha1",
    kind = "ClusterJourneyHold",
    plural = "clusterjourneyholds",
    shortname = "cjhold",
    status = "HoldStatus",
    derive = "PartialEq",
    doc = "An emergency hold across namespaces: pauses every matching Journey of the matching namespaces until it is deleted or expires.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Held","type":"integer","jsonPath":".status.matched","description":"Journeys held now"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason"}"#,
    printcolumn = r#"{"name":"By","type":"string","jsonPath":".status.createdBy","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.selector)").message("spec.selector is required: {} holds every Journey of the selected namespaces, matchLabels: {team: growth} only those labelled so"))]
#[x_kube(validation = Rule::new("has(self.namespaceSelector)").message("spec.namespaceSelector is required: {} holds journeys in every namespace, matchLabels: {tier: production} only in namespaces labelled so"))]
#[x_kube(validation = Rule::new("has(self.reason) && size(self.reason) > 0").message("spec.reason is required: say why you hold these journeys (it is shown on every held journey, e.g. \"incident 4711: wrong coupon\")"))]
#[x_kube(validation = Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
pub struct ClusterJourneyHoldSpec {
    /// Which namespaces (a label selector over Namespaces; `{}`: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<HoldSelector>,
    /// Which Journeys of those namespaces (`{}`: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<HoldSelector>,
    /// As for `JourneyHold`: Hold (default), Discard or EntryOnly; the strictest mode wins.
    #[serde(default)]
    pub mode: PauseMode,
    /// Why; shown on every held journey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
    /// How long the hold lasts from its creation (Go-style duration, at most 336h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(crate::api::duration::DURATION_PATTERN))]
    pub duration: Option<String>,
}

const DURATION_RULE: &str = "has(self.duration) && size(self.duration) > 0 && duration(self.duration) > duration('0s') && duration(self.duration) <= duration('336h')";
const DURATION_MESSAGE: &str = "spec.duration is required: a positive duration of at most 336h (14 days), e.g. 2h or 30m; to hold longer, extend it before it expires or create a new hold";

/// A Kubernetes label selector (`metav1.LabelSelector`'s shape), bounded so the apiserver can
/// check it at admission: the operator and the values are checked there, not at reconcile.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HoldSelector {
    /// Labels that must all be equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One requirement of a label selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)").message("In and NotIn need values; Exists and DoesNotExist take none (e.g. {key: team, operator: In, values: [growth]})"))]
pub struct SelectorRequirement {
    #[schemars(length(min = 1, max = 317))]
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub values: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl HoldSelector {
    /// Whether labels satisfy the selector (`{}` matches everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator {
                    SelectorOperator::In => value.is_some_and(|v| e.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }

    /// The selector in `kubectl -l` syntax, for messages and the plugin.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.match_expressions {
            parts.push(match e.operator {
                SelectorOperator::In => format!("{} in ({})", e.key, e.values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", e.key, e.values.join(",")),
                SelectorOperator::Exists => e.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", e.key),
            });
        }
        parts.join(",")
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldPhase {
    /// The hold applies.
    Active,
    /// The hold reached `expiresAt` and released its journeys; delete it when done.
    Expired,
}

/// What the hold is doing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HoldStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<HoldPhase>,
    /// Creation plus `duration`: the journeys are released then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Journeys held now.
    #[serde(default)]
    pub matched: i64,
    /// The first 50 held journeys, by name (`namespace/name` for a ClusterJourneyHold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// Matching journeys the hold leaves alone (Draft, Closing, Completed, Stopped), first 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedJourney>,
    /// Matching journeys the hold leaves alone, counted.
    #[serde(default)]
    pub skipped_count: i64,
    /// Who created the hold (the `journey.dev/created-by` annotation the admission policy
    /// stamps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Ready (kstatus) and Active.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SkippedJourney {
    pub name: String,
    /// Its phase, which a hold does not pause.
    pub phase: String,
}

/// Admission requires the selectors; a missing one (an object admission never saw) selects
/// nothing rather than everything.
static NOTHING: std::sync::LazyLock<HoldSelector> = std::sync::LazyLock::new(|| HoldSelector {
    match_expressions: vec![SelectorRequirement {
        key: "journey.dev/no-selector".into(),
        operator: SelectorOperator::Exists,
        values: vec![],
    }],
    ..HoldSelector::default()
});

/// What the two kinds share, for the code that applies them.
pub trait HoldObject {
    fn selector(&self) -> &HoldSelector;
    fn namespace_selector(&self) -> Option<&HoldSelector>;
    fn mode(&self) -> PauseMode;
    fn reason(&self) -> &str;
    fn duration(&self) -> &str;
}

impl HoldObject for JourneyHold {
    fn selector(&self) -> &HoldSelector {
        self.spec.selector.as_ref().unwrap_or(&NOTHING)
    }
    fn namespace_selector(&self) -> Option<&HoldSelector> {
        None
    }
    fn mode(&self) -> PauseMode {
        self.spec.mode
    }
    fn reason(&self) -> &str {
        self.spec.reason.as_deref().unwrap_or_default()
    }
    fn duration(&self) -> &str {
        self.spec.duration.as_deref().unwrap_or_default()
    }
}

impl HoldObject for ClusterJourneyHold {
    fn selector(&self) -> &HoldSelector {
        self.spec.selector.as_ref().unwrap_or(&NOTHING)
    }
    fn namespace_selector(&self) -> Option<&HoldSelector> {
        Some(self.spec.namespace_selector.as_ref().unwrap_or(&NOTHING))
    }
    fn mode(&self) -> PauseMode {
        self.spec.mode
    }
    fn reason(&self) -> &str {
        self.spec.reason.as_deref().unwrap_or_default()
    }
    fn duration(&self) -> &str {
        self.spec.duration.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_kubernetes_label_selectors_do() {
        let all = HoldSelector::default();
        assert!(all.matches(&labels(&[])));
        let growth = HoldSelector {
            match_labels: labels(&[("team", "growth")]),
            match_expressions: vec![SelectorRequirement {
                key: "tier".into(),
                operator: SelectorOperator::NotIn,
                values: vec!["test".into()],
            }],
        };
        assert!(growth.matches(&labels(&[("team", "growth")])));
        assert!(growth.matches(&labels(&[("team", "growth"), ("tier", "prod")])));
        assert!(!growth.matches(&labels(&[("team", "growth"), ("tier", "test")])));
        assert!(!growth.matches(&labels(&[("team", "billing")])));
        assert_eq!(growth.to_query(), "team=growth,tier notin (test)");
        let exists = HoldSelector {
            match_expressions: vec![SelectorRequirement {
                key: "campaign".into(),
                operator: SelectorOperator::Exists,
                values: vec![],
            }],
            ..HoldSelector::default()
        };
        assert!(exists.matches(&labels(&[("campaign", "x")])));
        assert!(!exists.matches(&labels(&[])));
    }
}
