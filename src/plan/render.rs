//! The plan as text, as Markdown for a pull-request comment, or as JSON for tools.

use std::fmt::Write;

use super::live::FilterImpact;
use super::{ChangeKind, JourneyChange, Plan};

fn kind(change: &JourneyChange) -> &'static str {
    match change.kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Changed => "changed",
        ChangeKind::Unchanged => "unchanged",
    }
}

fn definition(change: &JourneyChange) -> String {
    if change.kind == ChangeKind::Removed {
        return String::new();
    }
    let mut parts = Vec::new();
    for (label, ids) in [
        ("added", &change.steps_added),
        ("removed", &change.steps_removed),
        ("changed", &change.steps_changed),
    ] {
        if !ids.is_empty() {
            parts.push(format!("steps {label}: {}", ids.join(", ")));
        }
    }
    let version = if change.new_version {
        "new version"
    } else {
        "same version"
    };
    if parts.is_empty() {
        version.to_string()
    } else {
        format!("{version} ({})", parts.join("; "))
    }
}

fn filter_impact(f: &FilterImpact) -> String {
    match f {
        FilterImpact::Evaluated {
            filter,
            in_flight,
            matching,
            evaluation_errors,
        } => {
            let errors = if *evaluation_errors > 0 {
                format!(" ({evaluation_errors} could not be evaluated and would not be excluded)")
            } else {
                String::new()
            };
            format!(
                "{filter:?} matches {matching} of {in_flight} in-flight profiles now: they will be excluded at their next action{errors}"
            )
        }
        FilterImpact::NotEvaluated { filter, reason } => {
            format!("{filter:?}: not counted ({reason})")
        }
    }
}

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.changes.is_empty() {
        out.push_str("No journey changes.\n");
    }
    for c in &plan.changes {
        let verdict = if c.admissible() { "ok" } else { "REJECTED" };
        let _ = writeln!(out, "{} ({}): {verdict}", c.key, kind(c));
        if let Some(t) = &c.transition {
            let _ = writeln!(out, "  lifecycle:  {t}");
        }
        let d = definition(c);
        if !d.is_empty() {
            let _ = writeln!(out, "  definition: {d}");
        }
        if let Some(live) = &c.live {
            let _ = writeln!(
                out,
                "  live:       {} profiles inside ({}){}{}",
                live.inside,
                live.phase.as_deref().unwrap_or("no status"),
                if live.will_be_held > 0 {
                    format!("; {} will be held at their next action", live.will_be_held)
                } else {
                    String::new()
                },
                if live.will_be_discarded > 0 {
                    format!(
                        "; {} will be discarded at their next action",
                        live.will_be_discarded
                    )
                } else {
                    String::new()
                },
            );
        }
        if let Some(f) = c.live.as_ref().and_then(|l| l.global_filter.as_ref()) {
            let _ = writeln!(out, "  filter:     {}", filter_impact(f));
        }
        for r in &c.rejections {
            let _ = writeln!(out, "  rejected by the apiserver: {r}");
        }
        for p in &c.problems {
            let _ = writeln!(out, "  the controller would stall: {p}");
        }
        for w in &c.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
    }
    out
}

pub fn markdown(plan: &Plan) -> String {
    let mut out = String::from("### journey-operator plan\n\n");
    if plan.changes.is_empty() {
        out.push_str("No journey changes.\n");
        return out;
    }
    out.push_str("| journey | change | lifecycle | definition | verdict |\n| --- | --- | --- | --- | --- |\n");
    for c in &plan.changes {
        let verdict = if c.admissible() {
            "✅ admissible"
        } else {
            "❌ rejected"
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {verdict} |",
            c.key,
            kind(c),
            c.transition.as_deref().unwrap_or(""),
            definition(c)
        );
    }
    for c in &plan.changes {
        if c.rejections.is_empty()
            && c.problems.is_empty()
            && c.warnings.is_empty()
            && c.live.is_none()
        {
            continue;
        }
        let _ = writeln!(out, "\n**`{}`**", c.key);
        if let Some(live) = &c.live {
            let _ = writeln!(
                out,
                "- 📊 live: {} profiles inside ({}); {} will be held, {} discarded at their next action",
                live.inside,
                live.phase.as_deref().unwrap_or("no status"),
                live.will_be_held,
                live.will_be_discarded
            );
            if let Some(f) = &live.global_filter {
                let _ = writeln!(out, "- 🔎 global filter {}", filter_impact(f));
            }
        }
        for r in &c.rejections {
            let _ = writeln!(out, "- ❌ rejected by the apiserver: {r}");
        }
        for p in &c.problems {
            let _ = writeln!(out, "- ❌ the controller would stall: {p}");
        }
        for w in &c.warnings {
            let _ = writeln!(out, "- ⚠️ {w}");
        }
    }
    out
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
