//! `journey-operator plan`: what a change to journey manifests will do, before it merges —
//! the lifecycle transition, the definition change, and whether the apiserver would reject it
//! (the CRD's own CEL rules and schema, evaluated offline) or the controller would stall.

pub mod live;
pub mod load;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::api::JourneySpec;
use crate::api::admission::{Violation, cel_violations};
use crate::api::annotations::RESTART_REQUESTED_AT;
use crate::api::schema_check::schema_violations;
use crate::api::validate::{ValidationContext, validate};
use crate::controller::translate;
use journey_model::lifecycle::JourneyState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    Unchanged,
}

/// What one journey's change does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneyChange {
    pub key: String,
    pub kind: ChangeKind,
    /// e.g. `Published → Paused (Hold, entries Discard)`.
    pub transition: Option<String>,
    /// A new engine version (the versioned definition changed).
    pub new_version: bool,
    pub steps_added: Vec<String>,
    pub steps_removed: Vec<String>,
    pub steps_changed: Vec<String>,
    /// What the apiserver would reject, with its messages.
    pub rejections: Vec<String>,
    /// What the controller would report as Stalled (InvalidDefinition).
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// The global filter this change sets (added or changed; `None` when unchanged or
    /// removed): `--cluster` counts the in-flight profiles it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_global_filter: Option<String>,
    /// With `--cluster`: what is inside the journey now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<live::LiveImpact>,
}

impl JourneyChange {
    pub fn admissible(&self) -> bool {
        self.rejections.is_empty() && self.problems.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub changes: Vec<JourneyChange>,
}

impl Plan {
    pub fn admissible(&self) -> bool {
        self.changes.iter().all(JourneyChange::admissible)
    }
}

fn spec_of(object: &Value) -> Option<JourneySpec> {
    object
        .get("spec")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}

fn describe_state(spec: &JourneySpec) -> String {
    match (spec.state, &spec.pause) {
        (JourneyState::Paused, pause) => {
            let pause = pause.clone().unwrap_or_default();
            format!("Paused ({:?}, entries {:?})", pause.mode, pause.entries)
        }
        (state, _) => state.to_string(),
    }
}

fn steps_by_id(spec: &JourneySpec) -> BTreeMap<String, Value> {
    spec.steps
        .iter()
        .map(|s| (s.id.clone(), serde_json::to_value(s).unwrap_or(Value::Null)))
        .collect()
}

fn messages(violations: Vec<Violation>) -> Vec<String> {
    violations
        .into_iter()
        .map(|v| format!("{}: {}", v.field, v.message))
        .collect()
}

/// An action step a profile reaches from the entry without waiting (seed 001: "Add a Wait
/// before the first Activate unless immediate activation is truly intended").
fn immediate_action(spec: &JourneySpec) -> Option<String> {
    let index = |id: &str| spec.steps.iter().position(|s| s.id == id);
    let mut stack = vec![0usize];
    let mut seen = BTreeSet::new();
    while let Some(i) = stack.pop() {
        let Some(step) = spec.steps.get(i) else {
            continue;
        };
        if !seen.insert(i)
            || step.wait.is_some()
            || step.wait_for_event.is_some()
            || step.exit.is_some()
        {
            continue;
        }
        if step.action.is_some() {
            return Some(step.id.clone());
        }
        if let Some(condition) = &step.condition {
            stack.extend(condition.branches.iter().filter_map(|b| index(&b.next)));
            stack.extend(index(&condition.otherwise));
            continue;
        }
        match &step.next {
            Some(next) => stack.extend(index(next)),
            None => stack.push(i + 1),
        }
    }
    None
}

fn warnings(old: Option<(&Value, &JourneySpec)>, new: &Value, spec: &JourneySpec) -> Vec<String> {
    let mut out = Vec::new();
    let old_state = old.map(|(_, s)| s.state);
    if let Some(step) = immediate_action(spec)
        && spec.state != JourneyState::Draft
    {
        out.push(format!(
            "step {step:?} sends a message as soon as a profile enters: add a wait before the first action unless that is intended"
        ));
    }
    if old_state == Some(JourneyState::Paused)
        && spec.state == JourneyState::Published
        && spec.resume.as_ref().is_some_and(|r| r.rate == 0)
    {
        out.push("resume.rate 0 releases every held profile as fast as the engine can".into());
    }
    if spec.state == JourneyState::Stopped && old_state != Some(JourneyState::Stopped) {
        out.push("stopping is irreversible: the journey can never run again".into());
    }
    let token = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(RESTART_REQUESTED_AT))
            .cloned()
    };
    let new_token = token(new);
    if new_token.is_some() && old.map(|(o, _)| token(o)) != Some(new_token.clone()) {
        out.push("restart: every profile begins again and messages are sent again".into());
    }
    out
}

/// Compares two sets of manifests.
pub fn plan(
    base: &[(String, Value)],
    head: &[(String, Value)],
    context: &ValidationContext<'_>,
) -> Plan {
    let base: BTreeMap<&str, &Value> = base.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let head: BTreeMap<&str, &Value> = head.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let keys: BTreeSet<&str> = base.keys().chain(head.keys()).copied().collect();
    let mut changes = Vec::new();
    for key in keys {
        let old = base.get(key).copied();
        let new = head.get(key).copied();
        let mut change = JourneyChange {
            key: key.to_string(),
            kind: ChangeKind::Unchanged,
            transition: None,
            new_version: false,
            steps_added: Vec::new(),
            steps_removed: Vec::new(),
            steps_changed: Vec::new(),
            rejections: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            new_global_filter: None,
            live: None,
        };
        let Some(new) = new else {
            change.kind = ChangeKind::Removed;
            if let Some(spec) = old.and_then(spec_of) {
                change.transition = Some(format!("{} → deleted", describe_state(&spec)));
                if spec.deletion_policy == crate::api::journey::DeletionPolicy::Stop {
                    change.warnings.push(
                        "deletionPolicy Stop: the engine journey is stopped and removed".into(),
                    );
                }
            }
            changes.push(change);
            continue;
        };
        if old == Some(new) {
            changes.push(change);
            continue;
        }
        change.kind = if old.is_some() {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        change.rejections = messages(schema_violations(new));
        change.rejections.extend(messages(cel_violations(new, old)));
        let Some(spec) = spec_of(new) else {
            if change.rejections.is_empty() {
                change
                    .rejections
                    .push("spec: does not match the Journey schema".into());
            }
            changes.push(change);
            continue;
        };
        change.problems = validate(&spec, context)
            .iter()
            .map(ToString::to_string)
            .collect();
        let old_spec = old.and_then(spec_of);
        change.transition = Some(match &old_spec {
            Some(o) if o.state == spec.state && o.pause == spec.pause => describe_state(&spec),
            Some(o) => format!("{} → {}", describe_state(o), describe_state(&spec)),
            None => format!("created as {}", describe_state(&spec)),
        });
        let hash = |s: &JourneySpec| {
            translate::definition(s)
                .ok()
                .and_then(|d| d.content_hash().ok())
        };
        change.new_version = match &old_spec {
            Some(o) => hash(o) != hash(&spec),
            None => true,
        };
        let new_steps = steps_by_id(&spec);
        let old_steps = old_spec.as_ref().map(steps_by_id).unwrap_or_default();
        for (id, step) in &new_steps {
            match old_steps.get(id) {
                None if old_spec.is_some() => change.steps_added.push(id.clone()),
                Some(o) if o != step => change.steps_changed.push(id.clone()),
                _ => {}
            }
        }
        change.steps_removed = old_steps
            .keys()
            .filter(|id| !new_steps.contains_key(*id))
            .cloned()
            .collect();
        change.new_global_filter = spec
            .global_filter
            .clone()
            .filter(|f| old_spec.as_ref().and_then(|o| o.global_filter.as_ref()) != Some(f));
        change.warnings = warnings(old.zip(old_spec.as_ref()), new, &spec);
        changes.push(change);
    }
    changes.retain(|c| c.kind != ChangeKind::Unchanged);
    Plan { changes }
}

#[cfg(test)]
mod tests;

/// The state (and pause mode) each journey of `head` declares, for live impact.
pub fn head_states(
    head: &[(String, Value)],
) -> Vec<(String, JourneyState, Option<crate::api::journey::PauseMode>)> {
    head.iter()
        .filter_map(|(k, v)| {
            spec_of(v).map(|s| {
                (
                    k.clone(),
                    s.state,
                    s.pause
                        .map(|p| p.mode)
                        .or(Some(crate::api::journey::PauseMode::Hold)),
                )
            })
        })
        .collect()
}
