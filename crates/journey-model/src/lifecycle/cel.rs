//! The CRD's CEL transition rules, generated from the table so the apiserver judges exactly what
//! the engine enforces.

use super::JourneyState;
use super::table::{LOCK_RULES, TRANSITIONS, change_allowed};

/// A CEL rule generated from the tables, with its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedRule {
    pub rule: String,
    pub message: &'static str,
    /// The spec field the rule reports, for `fieldPath`.
    pub field_path: Option<String>,
}

fn cel_set(states: impl IntoIterator<Item = JourneyState>) -> String {
    let items: Vec<String> = states
        .into_iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("[{}]", items.join(", "))
}

fn states_where(pred: impl Fn(JourneyState) -> bool) -> Vec<JourneyState> {
    JourneyState::ALL.into_iter().filter(|s| pred(*s)).collect()
}

/// Unchanged, including presence: a transition rule on the field itself would never fire when
/// the field is added or removed, so the comparison lives on `spec`.
fn cel_unchanged(field: &str) -> String {
    format!(
        "(has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field}))"
    )
}

/// CEL transition rules on `spec`, generated from [`TRANSITIONS`] and [`LOCK_RULES`].
/// `state` has a schema default, so it is always present after defaulting.
pub fn spec_transition_rules() -> Vec<GeneratedRule> {
    let mut rules = Vec::new();
    for row in TRANSITIONS {
        let allowed = std::iter::once(row.from).chain(row.to.iter().copied());
        rules.push(GeneratedRule {
            rule: format!(
                "oldSelf.state != '{}' || self.state in {}",
                row.from.as_str(),
                cel_set(allowed)
            ),
            message: row.message,
            field_path: Some(".state".into()),
        });
    }
    rules.retain(|r| !r.message.is_empty());
    for lock in LOCK_RULES {
        let unchanged: Vec<String> = lock.fields.iter().map(|f| cel_unchanged(f)).collect();
        // When a change is allowed at all, expressed over the old and new state.
        let free_from = states_where(|from| {
            JourneyState::ALL
                .into_iter()
                .all(|to| change_allowed(lock.lock, from, to))
        });
        let free_to = states_where(|to| {
            JourneyState::ALL
                .into_iter()
                .all(|from| change_allowed(lock.lock, from, to))
        });
        let mut allowed_when = Vec::new();
        if !free_from.is_empty() {
            allowed_when.push(format!("oldSelf.state in {}", cel_set(free_from)));
        }
        if !free_to.is_empty() {
            allowed_when.push(format!("self.state in {}", cel_set(free_to)));
        }
        let field_path = if lock.fields.len() == 1 {
            Some(format!(".{}", lock.fields[0]))
        } else {
            None
        };
        rules.push(GeneratedRule {
            rule: format!(
                "{} || ({})",
                allowed_when.join(" || "),
                unchanged.join(" && ")
            ),
            message: lock.message,
            field_path,
        });
    }
    rules
}
