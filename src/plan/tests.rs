//! Table tests of the plan: before/after pairs, transitions, definition changes, verdicts and
//! warnings.

use serde_json::{Value, json};

use super::*;

fn journey(spec: Value) -> (String, Value) {
    (
        "team/cart".into(),
        json!({"apiVersion": "journey.dev/v1alpha1", "kind": "Journey",
               "metadata": {"name": "cart", "namespace": "team"}, "spec": spec}),
    )
}

fn base(state: &str) -> Value {
    json!({
        "state": state,
        "entry": {"event": {"name": "AddToCart"}},
        "steps": [
            {"id": "wait", "wait": {"duration": "1h"}},
            {"id": "send", "action": {"channel": "email"}}
        ]
    })
}

fn one(before: Option<Value>, after: Option<Value>) -> JourneyChange {
    let base: Vec<_> = before.map(journey).into_iter().collect();
    let head: Vec<_> = after.map(journey).into_iter().collect();
    let mut p = plan(&base, &head, &ValidationContext::default());
    assert_eq!(p.changes.len(), 1, "{p:?}");
    p.changes.remove(0)
}

#[test]
fn a_pause_is_described_and_admissible() {
    let mut paused = base("Paused");
    paused["pause"] = json!({"mode": "Hold"});
    let c = one(Some(base("Published")), Some(paused));
    assert_eq!(
        c.transition.as_deref(),
        Some("Published → Paused (Hold, entries Discard)")
    );
    assert!(!c.new_version);
    assert!(c.admissible(), "{c:?}");
}

#[test]
fn illegal_transitions_are_rejected_with_the_apiservers_message() {
    let c = one(Some(base("Published")), Some(base("Draft")));
    assert!(!c.admissible());
    assert!(
        c.rejections
            .iter()
            .any(|r| r.contains("cannot return to Draft")),
        "{c:?}"
    );
    let mut filtered = base("Published");
    filtered["globalFilter"] = json!("profile.vip");
    let c = one(Some(base("Published")), Some(filtered));
    assert!(
        c.rejections
            .iter()
            .any(|r| r.contains("only while the journey is Paused")),
        "{c:?}"
    );
}

#[test]
fn schema_and_validation_problems_are_found() {
    let mut bad = base("Draft");
    bad["steps"][0]["wait"]["duration"] = json!("5 minutes");
    let c = one(None, Some(bad));
    assert!(
        c.rejections.iter().any(|r| r.contains("should match")),
        "{c:?}"
    );
    let mut stalls = base("Published");
    stalls["entry"]["event"]["condition"] = json!("event.total >");
    let c = one(None, Some(stalls));
    assert!(
        c.problems
            .iter()
            .any(|p| p.contains("spec.entry.event.condition")),
        "{c:?}"
    );
    // A message template that does not compile is found before merge too, with its path.
    let mut template = base("Published");
    template["steps"]
        .as_array_mut()
        .expect("steps")
        .push(json!({"id": "mail", "action": {"channel": "email", "message": {"subject": "{{ customer.name }}"}}}));
    let c = one(None, Some(template));
    assert!(
        c.problems
            .iter()
            .any(|p| p.contains(".action.message.subject: unknown variable customer")),
        "{c:?}"
    );
}

#[test]
fn definition_changes_name_the_steps() {
    let mut changed = base("Published");
    changed["steps"][0]["wait"]["duration"] = json!("2h");
    changed["steps"]
        .as_array_mut()
        .expect("steps")
        .push(json!({"id": "bye", "exit": {}}));
    let c = one(Some(base("Published")), Some(changed));
    assert!(c.new_version);
    assert_eq!(c.steps_changed, vec!["wait".to_string()]);
    assert_eq!(c.steps_added, vec!["bye".to_string()]);
}

#[test]
fn risky_but_legal_changes_warn() {
    let mut immediate = base("Published");
    immediate["steps"] = json!([{"id": "send", "action": {"channel": "email"}}]);
    assert!(
        one(None, Some(immediate))
            .warnings
            .iter()
            .any(|w| w.contains("add a wait"))
    );
    let mut fast = base("Published");
    fast["resume"] = json!({"rate": 0});
    let mut paused = base("Paused");
    paused["resume"] = json!({"rate": 0});
    assert!(
        one(Some(paused), Some(fast))
            .warnings
            .iter()
            .any(|w| w.contains("rate 0"))
    );
    assert!(
        one(Some(base("Published")), Some(base("Stopped")))
            .warnings
            .iter()
            .any(|w| w.contains("irreversible"))
    );
    let (_, mut restarted) = journey(base("Published"));
    restarted["metadata"]["annotations"] = json!({"journey.dev/restart-requested-at": "t1"});
    let p = plan(
        &[journey(base("Published"))],
        &[("team/cart".into(), restarted)],
        &ValidationContext::default(),
    );
    assert!(
        p.changes[0]
            .warnings
            .iter()
            .any(|w| w.contains("messages are sent again"))
    );
}

#[test]
fn renders_text_markdown_and_json() {
    let p = plan(
        &[journey(base("Published"))],
        &[journey(base("Draft"))],
        &ValidationContext::default(),
    );
    assert!(!p.admissible());
    assert!(render::text(&p).contains("team/cart (changed): REJECTED"));
    assert!(render::markdown(&p).contains("| `team/cart` | changed | Published → Draft |"));
    let json: Value = serde_json::from_str(&render::json(&p)).expect("json");
    assert_eq!(json["changes"][0]["key"], "team/cart");
}
