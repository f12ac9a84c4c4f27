//! Which emergency holds apply to a journey: the holds' watch caches and the pure rules that
//! pick and merge them (the planner gets the result, never the caches).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::translate;
use crate::api::hold::{ClusterJourneyHold, HoldObject, JourneyHold};
use crate::engine::Hold;

/// One hold that applies to a journey now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHold {
    /// `JourneyHold ns/name` or `ClusterJourneyHold name`: what status and events show.
    pub id: String,
    pub mode: crate::api::journey::PauseMode,
    pub reason: String,
    pub expires_at: Timestamp,
    /// Who created it (`journey.dev/created-by`, stamped by admission).
    pub created_by: Option<String>,
}

/// How a hold object names itself in journeys' status and events.
pub fn hold_id<H: Resource<DynamicType = ()>>(hold: &H) -> String {
    match hold.meta().namespace.as_deref() {
        Some(ns) => format!(
            "{} {ns}/{}",
            H::kind(&()),
            hold.meta().name.as_deref().unwrap_or("")
        ),
        None => format!(
            "{} {}",
            H::kind(&()),
            hold.meta().name.as_deref().unwrap_or("")
        ),
    }
}

/// When a hold ends: its creation plus `duration` (`None` for a duration admission would have
/// refused, or an object without a creation time).
pub fn expires_at<H: Resource + HoldObject>(hold: &H) -> Option<Timestamp> {
    let created = hold.meta().creation_timestamp.as_ref()?.0;
    let length = crate::api::duration::parse_duration(hold.duration())?;
    let span = SignedDuration::try_from(length).ok()?;
    created.checked_add(span).ok()
}

/// The hold as it applies at `now`: `None` once it expired or while it is being deleted.
pub fn active<H: Resource<DynamicType = ()> + HoldObject>(
    hold: &H,
    now: Timestamp,
) -> Option<ActiveHold> {
    if hold.meta().deletion_timestamp.is_some() || hold.reason().is_empty() {
        return None;
    }
    let expires_at = expires_at(hold)?;
    (now < expires_at).then(|| ActiveHold {
        id: hold_id(hold),
        mode: hold.mode(),
        reason: hold.reason().to_string(),
        expires_at,
        created_by: hold
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::api::annotations::CREATED_BY))
            .cloned(),
    })
}

/// The engine's hold for a journey under `holds`: the strictest mode (Discard > Hold >
/// EntryOnly), every reason, every holder; `None` when no hold applies.
pub fn merge(holds: &[ActiveHold]) -> Option<Hold> {
    let first = holds.first()?;
    let mut mode = translate::engine_pause_mode(first.mode);
    for h in &holds[1..] {
        mode = mode.strictest(translate::engine_pause_mode(h.mode));
    }
    let reason = holds
        .iter()
        .map(|h| format!("{} ({})", h.reason, h.id))
        .collect::<Vec<_>>()
        .join("; ");
    let creators: Vec<String> = holds
        .iter()
        .map(|h| match &h.created_by {
            Some(by) => format!("{by} ({})", h.id),
            None => h.id.clone(),
        })
        .collect();
    Some(Hold {
        mode,
        reason,
        held_by: holds.iter().map(|h| h.id.clone()).collect(),
        actor: Some(creators.join(", ")),
    })
}

/// When the first of `holds` ends, from `now`.
pub fn next_expiry(holds: &[ActiveHold], now: Timestamp) -> Option<Duration> {
    holds
        .iter()
        .map(|h| h.expires_at)
        .min()
        .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or_default())
}

/// The controller's view of every hold and of the namespaces' labels (for
/// `ClusterJourneyHold.spec.namespaceSelector`).
#[derive(Clone)]
pub struct HoldIndex {
    pub holds: Store<JourneyHold>,
    pub cluster_holds: Store<ClusterJourneyHold>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
}

impl Default for HoldIndex {
    /// No holds at all (a controller started without the hold watches).
    fn default() -> Self {
        HoldIndex {
            holds: kube::runtime::reflector::store().0,
            cluster_holds: kube::runtime::reflector::store().0,
            namespaces: kube::runtime::reflector::store().0,
        }
    }
}

impl HoldIndex {
    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(&kube::runtime::reflector::ObjectRef::new(ns))
            .map(|n| n.labels().clone())
            .unwrap_or_default()
    }

    /// The active holds over a journey of namespace `ns` with `labels`, sorted by id.
    pub fn matching(
        &self,
        ns: &str,
        labels: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Vec<ActiveHold> {
        let mut found: Vec<ActiveHold> = self
            .holds
            .state()
            .iter()
            .filter(|h| h.namespace().as_deref() == Some(ns) && h.selector().matches(labels))
            .filter_map(|h| active(h.as_ref(), now))
            .collect();
        let cluster = self.cluster_holds.state();
        if !cluster.is_empty() {
            let ns_labels = self.namespace_labels(ns);
            found.extend(
                cluster
                    .iter()
                    .filter(|h| {
                        h.namespace_selector()
                            .is_some_and(|n| n.matches(&ns_labels))
                            && h.selector().matches(labels)
                    })
                    .filter_map(|h| active(h.as_ref(), now)),
            );
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::journey::PauseMode;

    fn hold(id: &str, mode: PauseMode) -> ActiveHold {
        ActiveHold {
            id: id.into(),
            mode,
            reason: format!("because of {id}"),
            expires_at: Timestamp::UNIX_EPOCH,
            created_by: None,
        }
    }

    #[test]
    fn the_strictest_mode_of_the_holds_wins() {
        assert_eq!(merge(&[]), None);
        let merged = merge(&[
            hold("JourneyHold ns/a", PauseMode::EntryOnly),
            hold("JourneyHold ns/b", PauseMode::Discard),
            hold("ClusterJourneyHold c", PauseMode::Hold),
        ])
        .expect("a hold");
        assert_eq!(merged.mode, crate::engine::PauseMode::Discard);
        assert_eq!(
            merged.held_by,
            [
                "JourneyHold ns/a",
                "JourneyHold ns/b",
                "ClusterJourneyHold c"
            ]
        );
        assert!(
            merged
                .reason
                .contains("because of JourneyHold ns/b (JourneyHold ns/b)")
        );
        let single = merge(&[hold("JourneyHold ns/a", PauseMode::EntryOnly)]).expect("a hold");
        assert_eq!(single.mode, crate::engine::PauseMode::EntryOnly);
    }

    #[test]
    fn a_hold_applies_from_its_creation_for_its_duration() {
        let created = Timestamp::from_second(1_000_000).expect("time");
        let h: JourneyHold = serde_json::from_value(serde_json::json!({
            "apiVersion": "journey.dev/v1alpha1", "kind": "JourneyHold",
            "metadata": {"name": "h", "namespace": "ns",
                         "creationTimestamp": created.to_string()},
            "spec": {"selector": {}, "reason": "incident", "duration": "2h"}
        }))
        .expect("hold");
        let at = |secs: i64| {
            created
                .checked_add(SignedDuration::from_secs(secs))
                .expect("t")
        };
        let a = active(&h, at(60)).expect("active");
        assert_eq!(a.id, "JourneyHold ns/h");
        assert_eq!(a.expires_at, at(7200));
        assert_eq!(active(&h, at(7200)), None);
        assert_eq!(next_expiry(&[a], at(7100)), Some(Duration::from_secs(100)));
        let mut deleting = h.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(1)));
        assert_eq!(active(&deleting, at(60)), None);
    }
}
