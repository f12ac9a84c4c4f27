//! What the schema and CEL cannot check: every expression compiles, reads only the variables it
//! is given and yields a boolean; cron schedules and time zones parse; every step is reachable;
//! no loop runs without a wait; destinations are known. All problems are returned at once, each
//! with its field path. The controller reports them (Stalled) and the `plan` command prints them.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::json;

use super::journey::{AudienceMode, Channel, JourneySpec, Step};
use crate::engine::expr::{self, Vars};
use crate::engine::schedule::CronSchedule;
use crate::engine::template::MessageTemplate;

/// One problem, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// e.g. `spec.steps[2].condition.branches[0].when`
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What validation knows about the operator it runs in.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext<'a> {
    /// Destination names the operator is configured with; `None` skips the check (e.g. `plan`
    /// without the operator's configuration).
    pub destinations: Option<&'a BTreeSet<String>>,
}

/// Validates a spec; an empty list means valid.
pub fn validate(spec: &JourneySpec, context: &ValidationContext<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| problems.push(Problem { field, message });

    if let Some(filter) = &spec.global_filter {
        check_expression(filter, Vars::Profile, "spec.globalFilter", &mut problem);
    }
    if let Some(event) = &spec.entry.event
        && let Some(condition) = &event.condition
    {
        check_expression(
            condition,
            Vars::ProfileAndEvent,
            "spec.entry.event.condition",
            &mut problem,
        );
    }
    if let Some(audience) = &spec.entry.audience {
        check_expression(
            &audience.condition,
            Vars::Profile,
            "spec.entry.audience.condition",
            &mut problem,
        );
        match (&audience.schedule, audience.mode) {
            (Some(schedule), AudienceMode::Read) => {
                if let Err(e) = CronSchedule::parse(&schedule.cron, schedule.time_zone.as_deref()) {
                    problem("spec.entry.audience.schedule".into(), e.to_string());
                }
            }
            (Some(_), AudienceMode::Qualification) => problem(
                "spec.entry.audience.schedule".into(),
                "a schedule needs mode Read: qualification enters profiles as they start matching"
                    .into(),
            ),
            (None, _) => {}
        }
        if audience.incremental && audience.mode == AudienceMode::Qualification {
            problem(
                "spec.entry.audience.incremental".into(),
                "incremental applies to mode Read only".into(),
            );
        }
    }
    for (i, exit) in spec.exit.iter().enumerate() {
        if let Some(condition) = &exit.event.condition {
            check_expression(
                condition,
                Vars::ProfileAndEvent,
                &format!("spec.exit[{i}].event.condition"),
                &mut problem,
            );
        }
    }
    if let Some(schedule) = &spec.schedule {
        for (field, value) in [("startAt", &schedule.start_at), ("endAt", &schedule.end_at)] {
            if let Some(text) = value {
                check_timestamp(text, &format!("spec.schedule.{field}"), &mut problem);
            }
        }
    }

    for (i, step) in spec.steps.iter().enumerate() {
        let at = format!("spec.steps[{i}]");
        if let Some(wait) = &step.wait
            && let Some(until) = &wait.until
        {
            check_timestamp(until, &format!("{at}.wait.until"), &mut problem);
        }
        if let Some(wait) = &step.wait_for_event {
            if let Some(condition) = &wait.condition {
                check_expression(
                    condition,
                    Vars::ProfileAndEvent,
                    &format!("{at}.waitForEvent.condition"),
                    &mut problem,
                );
            }
            if wait.on_timeout.is_some() && wait.timeout.is_none() {
                problem(
                    format!("{at}.waitForEvent.onTimeout"),
                    "onTimeout needs a timeout".into(),
                );
            }
        }
        if let Some(condition) = &step.condition {
            for (j, branch) in condition.branches.iter().enumerate() {
                check_expression(
                    &branch.when,
                    Vars::Profile,
                    &format!("{at}.condition.branches[{j}].when"),
                    &mut problem,
                );
            }
            if step.next.is_some() {
                problem(
                    format!("{at}.next"),
                    "a condition step names its targets in branches and otherwise; remove next"
                        .into(),
                );
            }
        }
        if step.exit.is_some() && step.next.is_some() {
            problem(
                format!("{at}.next"),
                "an exit step has no next step; remove next".into(),
            );
        }
        if let (Some(action), Some(known)) = (&step.action, context.destinations)
            && let Some(destination) = &action.destination
            && !known.contains(destination)
        {
            problem(
                format!("{at}.action.destination"),
                format!(
                    "unknown destination {destination:?}; the operator knows: {}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if let Some(action) = &step.action
            && let Some(message) = &action.message
        {
            let message = serde_json::to_value(message).unwrap_or_default();
            if let Err(found) = MessageTemplate::compile(&format!("{at}.action.message"), &message)
            {
                for p in found {
                    problem(p.field, p.message);
                }
            }
        }
        if let Some(action) = &step.action
            && action.channel == Channel::Webhook
            && action.destination.is_none()
        {
            problem(
                format!("{at}.action.destination"),
                "a webhook action needs a destination".into(),
            );
        }
    }
    check_graph(&spec.steps, &mut problem);
    problems
}

fn check_expression(
    source: &str,
    vars: Vars,
    field: &str,
    problem: &mut impl FnMut(String, String),
) {
    let compiled = match expr::compile(source, vars) {
        Ok(compiled) => compiled,
        Err(e) => return problem(field.to_string(), e.to_string()),
    };
    // A sample with no attributes: a missing attribute is an error the author guards with
    // has(), so only errors that no profile could avoid are reported.
    let sample = json!({});
    let event = (vars == Vars::ProfileAndEvent).then_some(&sample);
    if let Err(e) = compiled.eval_bool(&sample, event) {
        let message = e.to_string();
        if !message.contains("No such key") {
            problem(field.to_string(), message);
        }
    }
}

fn check_timestamp(text: &str, field: &str, problem: &mut impl FnMut(String, String)) {
    if chrono::DateTime::parse_from_rfc3339(text).is_err() {
        problem(
            field.to_string(),
            format!("{text:?} is not an RFC 3339 time such as 2027-01-01T09:00:00Z"),
        );
    }
}

/// The steps a profile can go to from step `i`.
fn successors(steps: &[Step], i: usize) -> Vec<usize> {
    let index = |id: &str| steps.iter().position(|s| s.id == id);
    let step = &steps[i];
    if step.exit.is_some() {
        return Vec::new();
    }
    if let Some(condition) = &step.condition {
        return condition
            .branches
            .iter()
            .map(|b| b.next.as_str())
            .chain(std::iter::once(condition.otherwise.as_str()))
            .filter_map(index)
            .collect();
    }
    let mut out: Vec<usize> = match &step.next {
        Some(next) => index(next).into_iter().collect(),
        None if i + 1 < steps.len() => vec![i + 1],
        None => Vec::new(),
    };
    if let Some(target) = step
        .wait_for_event
        .as_ref()
        .and_then(|w| w.on_timeout.as_deref())
        .and_then(index)
    {
        out.push(target);
    }
    out
}

fn check_graph(steps: &[Step], problem: &mut impl FnMut(String, String)) {
    if steps.is_empty() {
        return;
    }
    let mut reached = vec![false; steps.len()];
    let mut stack = vec![0];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        stack.extend(successors(steps, i));
    }
    for (i, step) in steps.iter().enumerate() {
        if !reached[i] {
            problem(
                format!("spec.steps[{i}]"),
                format!("step {:?} is unreachable: no step leads to it", step.id),
            );
        }
    }

    // A loop made only of steps that take no time would spin forever.
    let takes_time = |s: &Step| s.wait.is_some() || s.wait_for_event.is_some();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; steps.len()];
    let mut reported = BTreeSet::new();
    for start in 0..steps.len() {
        if marks[start] != Mark::New || takes_time(&steps[start]) {
            continue;
        }
        // Iterative DFS keeping the path, so the loop can be named.
        let mut path: Vec<(usize, Vec<usize>)> = vec![(start, successors(steps, start))];
        marks[start] = Mark::Open;
        while let Some((node, pending)) = path.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) if takes_time(&steps[next]) => {}
                Some(next) => match marks[next] {
                    Mark::New => {
                        marks[next] = Mark::Open;
                        path.push((next, successors(steps, next)));
                    }
                    Mark::Open => {
                        let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let cycle: Vec<&str> = path[from..]
                            .iter()
                            .map(|(n, _)| steps[*n].id.as_str())
                            .chain(std::iter::once(steps[next].id.as_str()))
                            .collect();
                        if reported.insert(next) {
                            problem(
                                format!("spec.steps[{next}]"),
                                format!(
                                    "steps {} form a loop with no wait or waitForEvent step",
                                    cycle.join(" → ")
                                ),
                            );
                        }
                    }
                    Mark::Done => {}
                },
                None => {
                    marks[node] = Mark::Done;
                    path.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn spec(mut patch: impl FnMut(&mut Value)) -> JourneySpec {
        let mut value = json!({
            "state": "Published",
            "entry": {"event": {"name": "AddToCart"}},
            "steps": [
                {"id": "wait", "wait": {"duration": "1h"}},
                {"id": "choose", "condition": {
                    "branches": [{"when": "has(profile.app) && profile.app", "next": "push"}],
                    "otherwise": "email"}},
                {"id": "push", "action": {"channel": "push"}, "next": "done"},
                {"id": "email", "action": {"channel": "email"}},
                {"id": "done", "exit": {}}
            ]
        });
        patch(&mut value);
        serde_json::from_value(value).expect("spec")
    }

    fn problems(spec: &JourneySpec) -> Vec<String> {
        validate(spec, &ValidationContext::default())
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn a_sound_journey_has_no_problems() {
        assert_eq!(problems(&spec(|_| {})), Vec::<String>::new());
    }

    #[test]
    fn each_problem_kind_is_reported_with_its_field() {
        type Edit = Box<dyn Fn(&mut Value)>;
        let table: Vec<(&str, Edit, &str)> = vec![
            (
                "template syntax error",
                Box::new(|v| {
                    v["steps"][3]["action"]["message"] = json!({"subject": "Hi {{ profile.name"})
                }),
                "spec.steps[3].action.message.subject: template syntax error",
            ),
            (
                "unknown template variable",
                Box::new(|v| {
                    v["steps"][2]["action"]["message"] =
                        json!({"body": {"title": "{{ user.name }}"}})
                }),
                "spec.steps[2].action.message.body.title: unknown variable user",
            ),
            (
                "unparsable filter",
                Box::new(|v| v["globalFilter"] = json!("profile.country ==")),
                "spec.globalFilter:",
            ),
            (
                "unknown variable",
                Box::new(|v| v["globalFilter"] = json!("user.country == 'FR'")),
                "unknown variable \"user\"",
            ),
            (
                "event outside event conditions",
                Box::new(|v| {
                    v["steps"][1]["condition"]["branches"][0]["when"] = json!("event.total > 1")
                }),
                "spec.steps[1].condition.branches[0].when: ",
            ),
            (
                "not a boolean",
                Box::new(|v| v["entry"]["event"]["condition"] = json!("1 + 2")),
                "spec.entry.event.condition: ",
            ),
            (
                "undeclared function",
                Box::new(|v| {
                    v["exit"] = json!([{"event": {"name": "X", "condition": "frobnicate(event)"}}])
                }),
                "spec.exit[0].event.condition: ",
            ),
            (
                "bad cron",
                Box::new(
                    |v| v["entry"] = json!({"audience": {"condition": "true", "mode": "Read", "schedule": {"cron": "every day"}}}),
                ),
                "spec.entry.audience.schedule: ",
            ),
            (
                "bad time zone",
                Box::new(
                    |v| v["entry"] = json!({"audience": {"condition": "true", "mode": "Read", "schedule": {"cron": "0 14 * * *", "timeZone": "Mars/Olympus"}}}),
                ),
                "spec.entry.audience.schedule: ",
            ),
            (
                "schedule without Read",
                Box::new(|v| {
                    v["entry"] = json!({"audience": {"condition": "true", "schedule": {"cron": "0 14 * * *"}}})
                }),
                "a schedule needs mode Read",
            ),
            (
                "bad timestamp",
                Box::new(|v| v["steps"][0]["wait"] = json!({"until": "tomorrow"})),
                "spec.steps[0].wait.until: \"tomorrow\" is not an RFC 3339 time",
            ),
            (
                "unreachable step",
                Box::new(|v| v["steps"][0]["next"] = json!("email")),
                "step \"choose\" is unreachable",
            ),
            (
                "loop without wait",
                Box::new(|v| v["steps"][3]["next"] = json!("choose")),
                "form a loop with no wait or waitForEvent step",
            ),
            (
                "onTimeout without timeout",
                Box::new(|v| {
                    v["steps"][0] = json!({"id": "wait", "waitForEvent": {"name": "Click", "onTimeout": "email"}})
                }),
                "onTimeout needs a timeout",
            ),
            (
                "next on a condition",
                Box::new(|v| v["steps"][1]["next"] = json!("email")),
                "remove next",
            ),
        ];
        for (name, patch, expected) in table {
            let found = problems(&spec(|v| patch(v)));
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{name}: expected {expected:?} in {found:?}"
            );
        }
    }

    #[test]
    fn a_loop_through_a_wait_is_fine() {
        let looping = spec(|v| v["steps"][3]["next"] = json!("wait"));
        assert_eq!(problems(&looping), Vec::<String>::new());
    }

    #[test]
    fn all_problems_come_at_once() {
        let many = spec(|v| {
            v["globalFilter"] = json!("nope(");
            v["steps"][0]["wait"] = json!({"until": "soon"});
            v["steps"][3]["next"] = json!("choose");
        });
        assert!(problems(&many).len() >= 3, "{:?}", problems(&many));
    }

    #[test]
    fn unknown_destinations_are_named() {
        let known: BTreeSet<String> = ["crm-hook".to_string()].into();
        let with_destination = spec(|v| {
            v["steps"][2]["action"] = json!({"channel": "webhook", "destination": "evil-hook"})
        });
        let found = validate(
            &with_destination,
            &ValidationContext {
                destinations: Some(&known),
            },
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "spec.steps[2].action.destination");
        assert!(found[0].message.contains("crm-hook"));
    }

    /// Every generated worst case at the CRD's maximum length, in every field that holds an
    /// expression: refused with that field's path and the limit (or accepted, for the shapes
    /// that are valid and shallow), never a crash.
    #[test]
    fn worst_case_expressions_are_refused_in_every_field_with_its_path() {
        use journey_model::expr::worst_cases::{Verdict, at_length};
        type Place = Box<dyn Fn(&mut Value, &str)>;
        let fields: Vec<(&str, Place)> = vec![
            (
                "spec.globalFilter",
                Box::new(|v, e| {
                    v["state"] = json!("Paused");
                    v["globalFilter"] = json!(e);
                }),
            ),
            (
                "spec.entry.event.condition",
                Box::new(|v, e| v["entry"]["event"]["condition"] = json!(e)),
            ),
            (
                "spec.entry.audience.condition",
                Box::new(|v, e| v["entry"] = json!({"audience": {"condition": e}})),
            ),
            (
                "spec.exit[0].event.condition",
                Box::new(|v, e| v["exit"] = json!([{"event": {"name": "Bought", "condition": e}}])),
            ),
            (
                "spec.steps[1].condition.branches[0].when",
                Box::new(|v, e| v["steps"][1]["condition"]["branches"][0]["when"] = json!(e)),
            ),
            (
                "spec.steps[0].waitForEvent.condition",
                Box::new(|v, e| {
                    v["steps"][0] = json!({"id": "wait", "waitForEvent":
                        {"name": "Opened", "condition": e, "timeout": "1h"}});
                }),
            ),
        ];
        let cases = at_length(crate::api::journey::MAX_EXPRESSION_LENGTH);
        for case in &cases {
            for (field, edit) in &fields {
                let found = problems(&spec(|v| edit(v, &case.source)));
                let here: Vec<&String> = found
                    .iter()
                    .filter(|p| p.starts_with(&format!("{field}:")))
                    .collect();
                match case.verdict {
                    Verdict::Accepted => assert!(here.is_empty(), "{}: {here:?}", case.name),
                    Verdict::SyntaxError => assert_eq!(here.len(), 1, "{}: {found:?}", case.name),
                    Verdict::TooDeep => {
                        assert_eq!(here.len(), 1, "{} in {field}: {found:?}", case.name);
                        let limit =
                            format!("the limit is {} levels", journey_model::expr::MAX_DEPTH);
                        assert!(here[0].contains(&limit), "{}", here[0]);
                        assert!(here[0].len() < 600, "an excerpt, not 4 KB: {}", here[0]);
                    }
                }
            }
        }
    }
}
