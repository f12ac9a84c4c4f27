//! Offline checks of the CRD's OpenAPI schema — types, enums, patterns, lengths, item counts,
//! required fields and list-map key uniqueness — the part of admission that is not CEL. With
//! `admission::cel_violations` it gives the apiserver's verdict without an apiserver.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::Value;

use super::admission::Violation;
use super::crd::journey_crd;

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        journey_crd()
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null)
    })
}

/// Schema violations of a whole Journey object (as JSON).
pub fn schema_violations(object: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(spec) = object.get("spec")
        && let Some(spec_schema) = schema().pointer("/properties/spec")
    {
        check(spec_schema, spec, "spec", &mut out);
    }
    out
}

fn violation(out: &mut Vec<Violation>, field: &str, message: String, rule: &str) {
    out.push(Violation {
        field: field.to_string(),
        message,
        rule: rule.to_string(),
    });
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        && schema.get("properties").is_none()
    {
        if schema.get("type").and_then(Value::as_str) == Some("object") && !value.is_object() {
            violation(
                out,
                path,
                format!("Invalid value: {value}: {path} must be of type object"),
                "type",
            );
        }
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let type_ok = match expected {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        _ => true,
    };
    if !type_ok {
        violation(
            out,
            path,
            format!(
                "Invalid value: {value}: {path} must be of type {}",
                expected.unwrap_or("?")
            ),
            "type",
        );
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        violation(
            out,
            path,
            format!(
                "Unsupported value: {value}: supported values: {}",
                names.join(", ")
            ),
            "enum",
        );
    }
    match value {
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                violation(
                    out,
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                    "maxLength",
                );
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                violation(
                    out,
                    path,
                    format!(
                        "Invalid value: {value}: {path} in body should be at least {min} chars long"
                    ),
                    "minLength",
                );
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && regex::Regex::new(pattern).is_ok_and(|re| !re.is_match(text))
            {
                violation(
                    out,
                    path,
                    format!("Invalid value: {value}: {path} in body should match '{pattern}'"),
                    "pattern",
                );
            }
        }
        Value::Number(n) => {
            if let (Some(min), Some(v)) =
                (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
                && v < min
            {
                violation(
                    out,
                    path,
                    format!(
                        "Invalid value: {v}: {path} in body should be greater than or equal to {min}"
                    ),
                    "minimum",
                );
            }
            if let (Some(max), Some(v)) =
                (schema.get("maximum").and_then(Value::as_f64), n.as_f64())
                && v > max
            {
                violation(
                    out,
                    path,
                    format!(
                        "Invalid value: {v}: {path} in body should be less than or equal to {max}"
                    ),
                    "maximum",
                );
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                violation(
                    out,
                    path,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                    "maxItems",
                );
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                violation(
                    out,
                    path,
                    format!("Invalid value: {path} in body should have at least {min} items"),
                    "minItems",
                );
            }
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !keys.is_empty() {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let key: Vec<String> = keys
                        .iter()
                        .map(|k| item.get(k).map(|v| v.to_string()).unwrap_or_default())
                        .collect();
                    if !seen.insert(key.clone()) {
                        violation(
                            out,
                            &format!("{path}[{i}]"),
                            format!("Duplicate value: {{{}}}", key.join(", ")),
                            "list-map-keys",
                        );
                    }
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for field in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(field) {
                        violation(
                            out,
                            &format!("{path}.{field}"),
                            "Required value".into(),
                            "required",
                        );
                    }
                }
            }
            if let Some(properties) = properties {
                for (key, child) in map {
                    // Unknown fields are pruned by the apiserver, not rejected.
                    if let Some(child_schema) = properties.get(key) {
                        check(child_schema, child, &format!("{path}.{key}"), out);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn journey(spec: Value) -> Value {
        json!({"apiVersion": "journey.dev/v1alpha1", "kind": "Journey", "metadata": {"name": "j"}, "spec": spec})
    }

    #[test]
    fn a_valid_spec_passes_and_each_schema_rule_is_found() {
        let ok = json!({"entry": {"event": {"name": "E"}}, "steps": [{"id": "a", "wait": {"duration": "1h"}}]});
        assert_eq!(schema_violations(&journey(ok.clone())), vec![]);
        let cases = [
            ("/steps/0/wait/duration", json!("5 minutes"), "should match"),
            ("/state", json!("Running"), "Unsupported value"),
            ("/steps/0/id", json!("Not_A_Label"), "should match"),
            ("/resume", json!({"rate": -1}), "greater than or equal to 0"),
            ("/steps", json!([]), "at least 1 items"),
            (
                "/steps",
                json!([{"id": "a", "exit": {}}, {"id": "a", "exit": {}}]),
                "Duplicate value",
            ),
            ("/entry", json!({"event": {}}), "Required value"),
            ("/globalFilter", json!("x".repeat(5000)), "Too long"),
        ];
        for (pointer, value, expected) in cases {
            let mut spec = ok.clone();
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            let target = if parent.is_empty() {
                &mut spec
            } else {
                spec.pointer_mut(parent).expect("parent")
            };
            match target {
                Value::Object(map) => {
                    map.insert(key.to_string(), value);
                }
                Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
                _ => unreachable!(),
            }
            let found = schema_violations(&journey(spec));
            assert!(
                found.iter().any(|v| v.message.contains(expected)),
                "{pointer}: {found:?}"
            );
        }
    }
}
