//! What the plugin prints: tables aligned as kubectl aligns them, and `describe`. Reads the
//! objects as JSON, so status fields added later (a history entry's `actor`, `changeRef`) show
//! when present and are skipped when not.

use serde_json::Value;

const NONE: &str = "<none>";

/// Columns padded to their widest cell, three spaces apart, as `kubectl get` prints.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => NONE.into(),
        Value::String(s) if s.is_empty() => NONE.into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn condition<'a>(journey: &'a Value, type_: &str) -> Option<&'a Value> {
    journey["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The pause's reason, else (held) the Held condition's message.
fn pause_reason(journey: &Value) -> String {
    let pause = &journey["status"]["pause"];
    if let Some(r) = pause["reason"].as_str().filter(|r| !r.is_empty()) {
        return r.to_string();
    }
    match condition(journey, "Held") {
        Some(c) if c["status"] == "True" => text(&c["message"]),
        _ => NONE.into(),
    }
}

fn held_by(journey: &Value) -> String {
    let list: Vec<&str> = journey["status"]["pause"]["heldBy"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        NONE.into()
    } else {
        list.join(", ")
    }
}

/// `kubectl journey get`.
pub fn journeys(items: &[Value], with_namespace: bool) -> String {
    let mut headers = vec!["NAME", "PHASE", "INSIDE", "HELD", "HELD-BY", "REASON"];
    if with_namespace {
        headers.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|j| {
            let status = &j["status"];
            let mut row = vec![
                text(&j["metadata"]["name"]),
                text(&status["phase"]),
                text(&status["profiles"]["inside"]),
                text(&status["profiles"]["held"]),
                held_by(j),
                pause_reason(j),
            ];
            if with_namespace {
                row.insert(0, text(&j["metadata"]["namespace"]));
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

/// `kubectl journey hold list`; `kind` is JourneyHold or ClusterJourneyHold.
pub fn holds(items: &[(String, Value)], with_namespace: bool) -> String {
    let mut headers = vec![
        "NAME", "PHASE", "MODE", "MATCHED", "EXPIRES", "REASON", "BY",
    ];
    if with_namespace {
        headers.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|(kind, h)| {
            let status = &h["status"];
            let name = text(&h["metadata"]["name"]);
            let mut row = vec![
                if kind == "ClusterJourneyHold" {
                    format!("{name} (cluster)")
                } else {
                    name
                },
                text(&status["phase"]),
                text(&h["spec"]["mode"]),
                text(&status["matched"]),
                text(&status["expiresAt"]),
                text(&h["spec"]["reason"]),
                text(&status["createdBy"]),
            ];
            if with_namespace {
                let ns = h["metadata"]["namespace"].as_str().unwrap_or("*");
                row.insert(0, ns.to_string());
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

fn indent(block: &str) -> String {
    block.lines().map(|l| format!("  {l}\n")).collect()
}

/// `kubectl journey describe`: the journey and its events (newest last).
pub fn describe(journey: &Value, events: &[Value], managed_by: Option<&str>) -> String {
    let meta = &journey["metadata"];
    let status = &journey["status"];
    let mut out = String::new();
    out.push_str(&format!("Name:        {}\n", text(&meta["name"])));
    out.push_str(&format!("Namespace:   {}\n", text(&meta["namespace"])));
    out.push_str(&format!(
        "State:       {} (spec)\n",
        text(&journey["spec"]["state"])
    ));
    out.push_str(&format!("Phase:       {}\n", text(&status["phase"])));
    out.push_str(&format!("Version:     {}\n", text(&status["version"])));
    if let Some(tool) = managed_by {
        out.push_str(&format!(
            "Managed by:  {tool} (spec edits are reverted at the next sync; use a hold in an emergency)\n"
        ));
    }

    out.push_str("Conditions:\n");
    let conditions: Vec<Vec<String>> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                text(&c["type"]),
                text(&c["status"]),
                text(&c["reason"]),
                text(&c["message"]),
            ]
        })
        .collect();
    if conditions.is_empty() {
        out.push_str("  <none>\n");
    } else {
        out.push_str(&indent(&table(
            &["TYPE", "STATUS", "REASON", "MESSAGE"],
            &conditions,
        )));
    }

    let pause = &status["pause"];
    if pause.is_object() {
        out.push_str("Pause:\n");
        out.push_str(&format!("  Mode:       {}\n", text(&pause["mode"])));
        out.push_str(&format!("  Since:      {}\n", text(&pause["since"])));
        out.push_str(&format!("  Expires At: {}\n", text(&pause["expiresAt"])));
        out.push_str(&format!("  Held By:    {}\n", held_by(journey)));
        out.push_str(&format!("  Reason:     {}\n", pause_reason(journey)));
        if let Some(actor) = pause["actor"].as_str() {
            out.push_str(&format!("  Actor:      {actor}\n"));
        }
    } else {
        out.push_str("Pause:       <none>\n");
    }

    out.push_str("Profiles:\n");
    match status["profiles"].as_object() {
        Some(counts) if !counts.is_empty() => {
            let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("  {}\n", line.join("  ")));
        }
        _ => out.push_str("  <none>\n"),
    }

    out.push_str("Timeline:\n");
    let history = status["history"].as_array().filter(|h| !h.is_empty());
    match history {
        None => out.push_str("  <none>\n"),
        Some(entries) => {
            for t in entries {
                let mut line = format!(
                    "  {} → {}  at {}  {}",
                    text(&t["from"]),
                    text(&t["to"]),
                    text(&t["at"]),
                    text(&t["reason"])
                );
                if let Some(actor) = t["actor"].as_str() {
                    line.push_str(&format!("  by {actor}"));
                }
                if let Some(change) = t["changeRef"].as_str() {
                    line.push_str(&format!("  ref {change}"));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
    }

    out.push_str("Events:\n");
    if events.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    event_time(e).unwrap_or_else(|| NONE.into()),
                    text(&e["type"]),
                    text(&e["reason"]),
                    text(&e["note"]),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&["TIME", "TYPE", "REASON", "NOTE"], &rows)));
    }
    out
}

/// When an events.k8s.io event last happened.
pub fn event_time(e: &Value) -> Option<String> {
    [
        &e["series"]["lastObservedTime"],
        &e["deprecatedLastTimestamp"],
        &e["eventTime"],
        &e["metadata"]["creationTimestamp"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().map(String::from))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn get_shows_phase_counts_holds_and_reason_with_missing_fields_as_none() {
        let held = json!({"metadata": {"name": "welcome", "namespace": "ns"},
            "status": {"phase": "Paused", "profiles": {"inside": 3, "held": 2},
                "pause": {"heldBy": ["JourneyHold ns/incident"], "reason": "incident 4711"}}});
        let fresh = json!({"metadata": {"name": "new"}});
        let out = journeys(&[held, fresh], true);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE   NAME"), "{out}");
        for word in [
            "welcome",
            "Paused",
            "3",
            "2",
            "JourneyHold ns/incident",
            "incident 4711",
        ] {
            assert!(lines[1].contains(word), "{out}");
        }
        assert!(lines[2].contains("new") && lines[2].contains(NONE), "{out}");
    }

    #[test]
    fn describe_reads_optional_history_fields_when_present() {
        let j = json!({"metadata": {"name": "w", "namespace": "ns"}, "spec": {"state": "Paused"},
            "status": {"phase": "Paused", "history": [
                {"from": "Draft", "to": "Live", "at": "2026-01-01T00:00:00Z", "reason": "Published"},
                {"from": "Live", "to": "Paused", "at": "2026-01-02T00:00:00Z", "reason": "Paused",
                 "actor": "alice", "changeRef": "https://git/pr/1"}]}});
        let out = describe(&j, &[], Some("Argo CD"));
        assert!(out.contains("Draft → Live"), "{out}");
        assert!(
            out.contains("by alice") && out.contains("ref https://git/pr/1"),
            "{out}"
        );
        assert_eq!(out.matches("by ").count(), 1, "{out}");
        assert!(out.contains("Managed by:  Argo CD"), "{out}");
    }
}
