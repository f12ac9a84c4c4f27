//! The test kit's journey builders: one way to write a Journey spec or object in a test, so a
//! field renamed in the API changes here once.

use serde_json::{Value, json};

/// A Journey `spec` under construction, entered by an event.
#[derive(Debug, Clone)]
pub struct Spec(Value);

impl Spec {
    /// `entry: {event: {name}}` and no steps yet.
    pub fn on_event(name: &str) -> Spec {
        Spec(json!({"entry": {"event": {"name": name}}, "steps": []}))
    }

    pub fn state(mut self, state: &str) -> Spec {
        self.0["state"] = json!(state);
        self
    }

    /// An exit criterion on an event.
    pub fn exit_on(mut self, event: &str) -> Spec {
        self.0["exit"] = json!([{"event": {"name": event}}]);
        self
    }

    pub fn wait(self, id: &str, duration: &str) -> Spec {
        self.step(json!({"id": id, "wait": {"duration": duration}}))
    }

    /// An action step on `channel`; `message: None` leaves the message out.
    pub fn action(self, id: &str, channel: &str, message: Option<Value>) -> Spec {
        let mut action = json!({"channel": channel});
        if let Some(m) = message {
            action["message"] = m;
        }
        self.step(json!({"id": id, "action": action}))
    }

    pub fn step(mut self, step: Value) -> Spec {
        if let Some(steps) = self.0["steps"].as_array_mut() {
            steps.push(step);
        }
        self
    }

    /// Top-level fields of `extra` replace the spec's (`pause`, `resume`, `globalFilter`...).
    pub fn with(mut self, extra: Value) -> Spec {
        if let (Some(map), Some(extra)) = (self.0.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        self
    }

    pub fn build(self) -> Value {
        self.0
    }
}

/// A Journey object around `spec` (`namespace: None` leaves it to the request).
pub fn object(name: &str, namespace: Option<&str>, spec: &Value) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "Journey",
        "metadata": metadata,
        "spec": spec
    })
}
