//! The CustomResourceDefinitions this project installs, generated from the types and the
//! lifecycle tables.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

use super::hold::{ClusterJourneyHold, JourneyHold};
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
    vec![
        journey_crd(),
        unwrap_descriptions(JourneyHold::crd()),
        unwrap_descriptions(ClusterJourneyHold::crd()),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every expression field of the CRD allows exactly what the expression limits allow, and
    /// `kubectl explain` says what those limits are.
    #[test]
    fn expression_fields_carry_the_expression_limits() {
        let crd = serde_json::to_value(journey_crd()).expect("json");
        let mut pending = vec![(String::new(), &crd)];
        let mut seen = Vec::new();
        while let Some((name, value)) = pending.pop() {
            if let Some(properties) = value.get("properties").and_then(|p| p.as_object()) {
                for (field, schema) in properties {
                    let is_expression = matches!(field.as_str(), "globalFilter" | "when")
                        || (field == "condition"
                            && schema.get("type").and_then(|t| t.as_str()) == Some("string"));
                    if is_expression {
                        assert_eq!(
                            schema["maxLength"],
                            serde_json::json!(crate::api::journey::MAX_EXPRESSION_LENGTH),
                            "{name}.{field}"
                        );
                        let says = schema["description"].as_str().unwrap_or_default();
                        let limit = format!("{} levels of nesting", journey_model::expr::MAX_DEPTH);
                        assert!(says.contains(&limit), "{name}.{field}: {says}");
                        seen.push(field.clone());
                    }
                    pending.push((format!("{name}.{field}"), schema));
                }
            }
            for key in ["items", "additionalProperties"] {
                if let Some(inner) = value.get(key) {
                    pending.push((name.clone(), inner));
                }
            }
            if let Some(versions) = value.pointer("/spec/versions").and_then(|v| v.as_array()) {
                for v in versions {
                    if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
                        pending.push(("spec".into(), schema));
                    }
                }
            }
        }
        // globalFilter, four conditions (event entry, audience, waitForEvent, exit shares the
        // event trigger's schema) and a branch's when.
        assert!(seen.len() >= 5, "{seen:?}");
    }
}
