//! The CustomResourceDefinitions this project installs, generated from the types and the
//! lifecycle tables.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

use super::journey::Journey;
use super::lifecycle::spec_transition_rules;

/// The Journey CRD: the derived schema plus the lifecycle transition rules on `spec`.
pub fn journey_crd() -> CustomResourceDefinition {
    let mut crd = Journey::crd();
    for version in &mut crd.spec.versions {
        let spec_schema = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|root| root.properties.as_mut())
            .and_then(|props| props.get_mut("spec"));
        if let Some(spec) = spec_schema {
            let rules = spec.x_kubernetes_validations.get_or_insert_with(Vec::new);
            for generated in spec_transition_rules() {
                rules.push(ValidationRule {
                    rule: generated.rule,
                    message: Some(generated.message.to_string()),
                    field_path: generated.field_path,
                    reason: Some("FieldValueForbidden".into()),
                    ..ValidationRule::default()
                });
            }
        }
    }
    unwrap_descriptions(crd)
}

/// Doc comments are wrapped at 100 columns; `kubectl explain` wraps again, so single line
/// breaks inside a paragraph are joined (paragraph breaks stay).
fn unwrap_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    match child {
                        serde_json::Value::String(text) if key == "description" => {
                            *text = text
                                .split("\n\n")
                                .map(|para| para.split('\n').collect::<Vec<_>>().join(" "))
                                .collect::<Vec<_>>()
                                .join("\n\n");
                        }
                        _ => walk(child),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

/// Every CRD of the project.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![journey_crd()]
}

/// All CRDs as one multi-document YAML stream: what `journey-operator crd` prints and what
/// `crds/` holds.
pub fn to_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
