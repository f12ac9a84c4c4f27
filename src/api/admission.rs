//! Offline admission: the CEL rules the CRD carries, evaluated client-side on a Journey after
//! the schema's defaults, as the apiserver would. Used by tests and the `plan` command; the
//! real apiserver stays the judge.

use std::sync::OnceLock;

use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde_json::Value;

use super::crd::journey_crd;

/// One rule the object breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where, e.g. `spec.state`.
    pub field: String,
    pub message: String,
    pub rule: String,
}

fn compiled() -> &'static (Validator, CompiledSchema) {
    static SCHEMA: OnceLock<(Validator, CompiledSchema)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = journey_crd();
        let schema = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        (Validator::new(), compile_schema(&schema))
    })
}

/// Evaluates the CRD's CEL rules on `object` (a whole Journey as JSON), as an update of `old`
/// when given (transition rules) or as a create. Schema-only checks (patterns, lengths,
/// list-map uniqueness) are not CEL and are not evaluated here.
pub fn cel_violations(object: &Value, old: Option<&Value>) -> Vec<Violation> {
    let (validator, schema) = compiled();
    match validator.validate_compiled(schema, object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| Violation {
                field: e.field_path,
                message: e.message,
                rule: e.rule,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use journey_model::lifecycle::{
        JourneyState, LOCK_RULES, Lock, change_allowed, spec_transition_rules, transition_allowed,
    };

    fn journey(state: JourneyState, filter: Option<&str>, entry_event: &str, wait: &str) -> Value {
        let mut spec = json!({
            "state": state.as_str(),
            "entry": {"event": {"name": entry_event}},
            "steps": [{"id": "w", "wait": {"duration": wait}}]
        });
        if let Some(f) = filter {
            spec["globalFilter"] = json!(f);
        }
        json!({"apiVersion": "journey.dev/v1alpha1", "kind": "Journey",
               "metadata": {"name": "j"}, "spec": spec})
    }

    #[test]
    fn the_crd_carries_exactly_the_rules_generated_from_the_transition_table() {
        let crd = journey_crd();
        let spec = &crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| s.properties.as_ref())
            .expect("schema")["spec"];
        let in_crd: Vec<(String, Option<String>)> = spec
            .x_kubernetes_validations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.rule.contains("oldSelf"))
            .map(|r| (r.rule, r.message))
            .collect();
        let generated: Vec<(String, Option<String>)> = spec_transition_rules()
            .into_iter()
            .map(|r| (r.rule, Some(r.message.to_string())))
            .collect();
        assert_eq!(in_crd, generated);
    }

    #[test]
    fn every_state_change_gets_the_verdict_of_the_transition_table() {
        for from in JourneyState::ALL {
            for to in JourneyState::ALL {
                let old = journey(from, None, "A", "1h");
                let new = journey(to, None, "A", "1h");
                let violations = cel_violations(&new, Some(&old));
                assert_eq!(
                    violations.is_empty(),
                    transition_allowed(from, to),
                    "{from} → {to}: {violations:?}"
                );
            }
        }
    }

    #[test]
    fn every_guarded_change_gets_the_verdict_of_the_lock_table() {
        for from in JourneyState::ALL {
            for to in JourneyState::ALL {
                if !transition_allowed(from, to) {
                    continue;
                }
                let old = journey(from, Some("profile.a == 1"), "A", "1h");
                let cases = [
                    (
                        Lock::GlobalFilterNeedsPause,
                        journey(to, Some("profile.a == 2"), "A", "1h"),
                    ),
                    (Lock::GlobalFilterNeedsPause, journey(to, None, "A", "1h")),
                    (
                        Lock::EntryExitNeedPause,
                        journey(to, Some("profile.a == 1"), "B", "1h"),
                    ),
                    (
                        Lock::StoppedFrozen,
                        journey(to, Some("profile.a == 1"), "A", "2h"),
                    ),
                ];
                for (lock, new) in cases {
                    // A change guarded by several locks is allowed only when all allow it.
                    let expected = LOCK_RULES
                        .iter()
                        .filter(|rule| rule.lock == lock || (rule.lock == Lock::StoppedFrozen))
                        .all(|rule| change_allowed(rule.lock, from, to));
                    let violations = cel_violations(&new, Some(&old));
                    assert_eq!(
                        violations.is_empty(),
                        expected,
                        "{lock:?} {from} → {to}: {violations:?}"
                    );
                }
            }
        }
    }
}
