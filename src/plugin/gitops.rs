//! Whether a journey is managed by Argo CD or Flux: then a spec edit lasts only until the next
//! sync, and a hold (its own object, not in Git) is the emergency path.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const ARGOCD_INSTANCE: &str = "argocd.argoproj.io/instance";
pub const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
pub const APP_INSTANCE: &str = "app.kubernetes.io/instance";
pub const FLUX_KUSTOMIZATION: &str = "kustomize.toolkit.fluxcd.io/name";
pub const FLUX_HELM_RELEASE: &str = "helm.toolkit.fluxcd.io/name";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    ArgoCd,
    Flux,
}

impl Manager {
    pub fn name(&self) -> &'static str {
        match self {
            Manager::ArgoCd => "Argo CD",
            Manager::Flux => "Flux",
        }
    }
}

/// The GitOps tool managing the object, from its labels, annotations and field managers.
pub fn detect(meta: &ObjectMeta) -> Option<Manager> {
    let labels = meta.labels.as_ref();
    let annotations = meta.annotations.as_ref();
    let has_label = |k: &str| labels.is_some_and(|l| l.contains_key(k));
    let has_annotation = |k: &str| annotations.is_some_and(|a| a.contains_key(k));
    if has_label(ARGOCD_INSTANCE) || has_annotation(ARGOCD_TRACKING_ID) {
        return Some(Manager::ArgoCd);
    }
    if has_label(FLUX_KUSTOMIZATION) || has_label(FLUX_HELM_RELEASE) {
        return Some(Manager::Flux);
    }
    let managers = meta.managed_fields.iter().flatten();
    for entry in managers {
        match entry.manager.as_deref() {
            Some("argocd-controller") | Some("argocd-application-controller") => {
                return Some(Manager::ArgoCd);
            }
            Some("kustomize-controller") | Some("helm-controller") => return Some(Manager::Flux),
            _ => {}
        }
    }
    None
}

/// A selector for the hold the warning suggests: the journey's own labels (without the GitOps
/// tracking ones), else the tracking label (every journey of the application), else a
/// placeholder.
pub fn suggested_selector(labels: Option<&BTreeMap<String, String>>) -> String {
    let labels = labels.cloned().unwrap_or_default();
    let tracking = [
        ARGOCD_INSTANCE,
        APP_INSTANCE,
        FLUX_KUSTOMIZATION,
        FLUX_HELM_RELEASE,
        "kustomize.toolkit.fluxcd.io/namespace",
        "helm.toolkit.fluxcd.io/namespace",
    ];
    let own: Vec<String> = labels
        .iter()
        .filter(|(k, _)| !tracking.contains(&k.as_str()) && !k.starts_with("journey.dev/"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !own.is_empty() {
        return own.join(",");
    }
    tracking
        .iter()
        .find_map(|k| labels.get(*k).map(|v| format!("{k}={v}")))
        .unwrap_or_else(|| "<label>=<value>".into())
}

/// The warning printed before a spec edit of a GitOps-managed journey.
pub fn warning(namespace: &str, name: &str, meta: &ObjectMeta, manager: &Manager) -> String {
    let when = match manager {
        Manager::ArgoCd => "at the next sync",
        Manager::Flux => "at the next reconciliation",
    };
    format!(
        "warning: {namespace}/{name} is managed by {}; Git will revert this change {when}. \
         For an emergency use: kubectl journey hold create {name}-hold -n {namespace} -l {} \
         --reason ... --duration 2h",
        manager.name(),
        suggested_selector(meta.labels.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;

    fn meta(
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        managers: &[&str],
    ) -> ObjectMeta {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
        };
        ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            managed_fields: (!managers.is_empty()).then(|| {
                managers
                    .iter()
                    .map(|m| ManagedFieldsEntry {
                        manager: Some(m.to_string()),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn argocd_and_flux_are_detected_from_labels_annotations_and_field_managers() {
        let argo_label = meta(&[(ARGOCD_INSTANCE, "shop")], &[], &[]);
        assert_eq!(detect(&argo_label), Some(Manager::ArgoCd));
        let argo_annotation = meta(
            &[(APP_INSTANCE, "shop")],
            &[(ARGOCD_TRACKING_ID, "shop:journey.dev/Journey:ns/j")],
            &[],
        );
        assert_eq!(detect(&argo_annotation), Some(Manager::ArgoCd));
        let argo_manager = meta(
            &[],
            &[],
            &["kubectl-client-side-apply", "argocd-controller"],
        );
        assert_eq!(detect(&argo_manager), Some(Manager::ArgoCd));
        assert_eq!(
            detect(&meta(&[(FLUX_KUSTOMIZATION, "apps")], &[], &[])),
            Some(Manager::Flux)
        );
        assert_eq!(
            detect(&meta(&[(FLUX_HELM_RELEASE, "shop")], &[], &[])),
            Some(Manager::Flux)
        );
        assert_eq!(
            detect(&meta(&[], &[], &["kustomize-controller"])),
            Some(Manager::Flux)
        );
        assert_eq!(
            detect(&meta(&[], &[], &["helm-controller"])),
            Some(Manager::Flux)
        );
        // Helm alone (app.kubernetes.io/instance without Argo CD's tracking) is not GitOps.
        assert_eq!(
            detect(&meta(&[(APP_INSTANCE, "shop")], &[], &["helm"])),
            None
        );
        assert_eq!(
            detect(&meta(&[("team", "growth")], &[], &["kubectl"])),
            None
        );
        assert_eq!(detect(&ObjectMeta::default()), None);
    }

    #[test]
    fn the_warning_names_the_tool_and_suggests_a_hold_over_the_journeys_labels() {
        let m = meta(&[(ARGOCD_INSTANCE, "shop"), ("team", "growth")], &[], &[]);
        let w = warning("ns", "welcome", &m, &Manager::ArgoCd);
        assert!(
            w.starts_with("warning: ns/welcome is managed by Argo CD; Git will revert"),
            "{w}"
        );
        assert!(
            w.contains("kubectl journey hold create welcome-hold -n ns -l team=growth"),
            "{w}"
        );
        let only_tracking = meta(&[(FLUX_KUSTOMIZATION, "apps")], &[], &[]);
        let w = warning("ns", "welcome", &only_tracking, &Manager::Flux);
        assert!(w.contains("managed by Flux"), "{w}");
        assert!(w.contains(&format!("-l {FLUX_KUSTOMIZATION}=apps")), "{w}");
        assert_eq!(suggested_selector(None), "<label>=<value>");
    }
}
