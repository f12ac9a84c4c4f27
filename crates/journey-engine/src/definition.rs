//! The journey definition the engine accepts: the JSON of the Journey `spec`
//! (see the Journey API issue). Unknown fields (`state`, `deletionPolicy`, ...)
//! are ignored. [`CompiledDefinition`] is the validated, compiled form (CEL
//! compiled once per version, durations parsed, step graph resolved).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::destinations::DestinationConfig;
use super::duration::parse_positive_duration_ms;
use super::error::{EngineError, Result};
use super::expr::{self, Expr, Vars};
use super::schedule::CronSchedule;
use super::template::MessageTemplate;

/// Default global per-profile timeout: 2184h (91 days).
pub const DEFAULT_TIMEOUT_MS: i64 = 2184 * 3_600_000;
/// Default and maximum pause duration: 336h (14 days).
pub const MAX_PAUSE_MS: i64 = 336 * 3_600_000;
/// Default resume rate (held profiles released per second).
pub const DEFAULT_RESUME_RATE: u64 = 5000;

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    pub entry: Entry,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit: Vec<ExitCriterion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Not versioned: the filter in force is the one carried by
    /// `DesiredLifecycle::Paused` (it may only change while paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Pause options are applied through `DesiredLifecycle::Paused`; parsed here
    /// so the spec JSON deserializes, not versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reentry: Option<Reentry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct EventMatch {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, Default,
)]
pub enum AudienceMode {
    #[default]
    Qualification,
    Read,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    pub condition: String,
    #[serde(default)]
    pub mode: AudienceMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<CronSpec>,
    #[serde(default)]
    pub incremental: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct CronSpec {
    pub cron: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Reentry {
    #[serde(default)]
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ExitCriterion {
    pub event: EventMatch,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_event: Option<WaitForEventSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct WaitSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct WaitForEventSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ConditionSpec {
    #[serde(default)]
    pub branches: Vec<Branch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Branch {
    pub when: String,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ActionSpec {
    #[serde(default = "default_channel")]
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default)]
    pub message: serde_json::Value,
}

fn default_channel() -> String {
    "record".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ResumeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, Default,
)]
pub enum PauseMode {
    #[default]
    Hold,
    Discard,
    EntryOnly,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, Default,
)]
pub enum PauseEntries {
    #[default]
    Discard,
    Queue,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, Default,
)]
pub enum PauseWaits {
    #[default]
    Continue,
    Extend,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, Default,
)]
pub enum OnExpiry {
    #[default]
    Resume,
    Stop,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct PauseSpec {
    #[serde(default)]
    pub mode: PauseMode,
    #[serde(default)]
    pub entries: PauseEntries,
    #[serde(default)]
    pub waits: PauseWaits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    #[serde(default)]
    pub on_expiry: OnExpiry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Definition {
    /// Parses the Journey `spec` JSON (as produced by `serde_json::to_value(spec)`).
    pub fn from_json(v: serde_json::Value) -> Result<Self> {
        serde_json::from_value(v).map_err(|e| EngineError::InvalidDefinition(e.to_string()))
    }

    /// The versioned part of the definition (without `globalFilter` and `pause`,
    /// which are lifecycle settings), in canonical JSON.
    pub fn versioned_json(&self) -> Result<String> {
        let mut d = self.clone();
        d.global_filter = None;
        d.pause = None;
        // serde_json::Value maps are sorted (BTreeMap) -> canonical.
        let v = serde_json::to_value(&d).map_err(super::error::json_err("definition"))?;
        serde_json::to_string(&v).map_err(super::error::json_err("definition"))
    }

    /// Content hash (sha256 hex) of the versioned part.
    pub fn content_hash(&self) -> Result<String> {
        let json = self.versioned_json()?;
        let mut h = Sha256::new();
        h.update(json.as_bytes());
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Parses an RFC 3339 timestamp to milliseconds.
pub fn parse_time(s: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| EngineError::InvalidDefinition(format!("invalid timestamp {s:?}: {e}")))
}

// ---------------------------------------------------------------------------
// Compiled form
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum CEntry {
    Event {
        name: String,
        condition: Option<Expr>,
    },
    Qualification {
        condition: Expr,
    },
    Read {
        condition: Expr,
        schedule: Option<Box<CronSchedule>>,
        incremental: bool,
    },
}

#[derive(Debug, Clone)]
pub enum CStepKind {
    WaitDuration(i64),
    WaitUntil(i64),
    WaitForEvent {
        name: String,
        condition: Option<Expr>,
        timeout_ms: Option<i64>,
        on_timeout: Option<usize>,
    },
    Condition {
        branches: Vec<(Expr, usize)>,
        otherwise: Option<usize>,
    },
    Action {
        channel: String,
        destination: String,
        message: serde_json::Value,
        /// `message` with its templates compiled (rendered once per delivery).
        template: MessageTemplate,
    },
    Exit,
}

#[derive(Debug, Clone)]
pub struct CStep {
    pub id: String,
    pub kind: CStepKind,
    /// Index of the next step; `None` = the profile completes.
    pub next: Option<usize>,
}

/// A validated definition with compiled expressions.
#[derive(Debug, Clone)]
pub struct CompiledDefinition {
    pub entry: CEntry,
    pub reentry_allowed: bool,
    pub reentry_after_ms: i64,
    pub exits: Vec<(String, Option<Expr>)>,
    pub timeout_ms: i64,
    pub steps: Vec<CStep>,
    pub index: HashMap<String, usize>,
    pub resume_rate: u64,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
}

impl CompiledDefinition {
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Event name and condition of the waitForEvent step that directly follows
    /// step `i`, if any.
    pub fn wait_for_event_after(&self, i: usize) -> Option<(&str, Option<&Expr>)> {
        let n = self.steps.get(i)?.next?;
        match &self.steps.get(n)?.kind {
            CStepKind::WaitForEvent {
                name, condition, ..
            } => Some((name.as_str(), condition.as_ref())),
            _ => None,
        }
    }

    /// Successor step indexes of step `i`.
    fn successors(&self, i: usize) -> Vec<usize> {
        let Some(s) = self.steps.get(i) else {
            return Vec::new();
        };
        let mut v: Vec<usize> = match &s.kind {
            CStepKind::Condition {
                branches,
                otherwise,
            } => branches.iter().map(|(_, t)| *t).chain(*otherwise).collect(),
            CStepKind::WaitForEvent { on_timeout, .. } => {
                on_timeout.iter().copied().chain(s.next).collect()
            }
            CStepKind::Exit => Vec::new(),
            _ => s.next.into_iter().collect(),
        };
        v.dedup();
        v
    }

    /// Step ids on a cycle that contains no wait step (it would never yield).
    pub fn waitless_cycle(&self) -> Option<Vec<String>> {
        let is_wait = |i: usize| {
            matches!(
                self.steps[i].kind,
                CStepKind::WaitDuration(_)
                    | CStepKind::WaitUntil(_)
                    | CStepKind::WaitForEvent { .. }
            )
        };
        // colour: 0 = new, 1 = on stack, 2 = done; DFS over non-wait steps only.
        let mut colour = vec![0u8; self.steps.len()];
        for start in 0..self.steps.len() {
            if colour[start] != 0 || is_wait(start) {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            colour[start] = 1;
            while let Some((node, k)) = stack.pop() {
                let succ: Vec<usize> = self
                    .successors(node)
                    .into_iter()
                    .filter(|&n| !is_wait(n))
                    .collect();
                if k < succ.len() {
                    stack.push((node, k + 1));
                    let n = succ[k];
                    if colour[n] == 1 {
                        let mut cycle: Vec<String> = stack
                            .iter()
                            .map(|(i, _)| self.steps[*i].id.clone())
                            .collect();
                        cycle.push(self.steps[n].id.clone());
                        return Some(cycle);
                    }
                    if colour[n] == 0 {
                        colour[n] = 1;
                        stack.push((n, 0));
                    }
                } else {
                    colour[node] = 2;
                }
            }
        }
        None
    }
}

/// Validates and compiles a definition. All problems are returned at once in
/// the error message, with their field paths.
pub fn compile(def: &Definition, dests: &DestinationConfig) -> Result<CompiledDefinition> {
    let mut problems: Vec<String> = Vec::new();
    let mut push = |p: String| problems.push(p);

    let mut index = HashMap::new();
    for (i, s) in def.steps.iter().enumerate() {
        if index.insert(s.id.clone(), i).is_some() {
            push(format!("steps[{i}].id: duplicate step id {:?}", s.id));
        }
    }
    if def.steps.is_empty() {
        push("steps: at least one step is required".into());
    }

    let entry = match (&def.entry.event, &def.entry.audience) {
        (Some(ev), None) => {
            let condition = match &ev.condition {
                Some(c) => match expr::compile(c, Vars::ProfileAndEvent) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        push(format!("entry.event.condition: {e}"));
                        None
                    }
                },
                None => None,
            };
            Some(CEntry::Event {
                name: ev.name.clone(),
                condition,
            })
        }
        (None, Some(a)) => match expr::compile(&a.condition, Vars::Profile) {
            Err(e) => {
                push(format!("entry.audience.condition: {e}"));
                None
            }
            Ok(condition) => match a.mode {
                AudienceMode::Qualification => Some(CEntry::Qualification { condition }),
                AudienceMode::Read => {
                    let schedule = match &a.schedule {
                        Some(s) => match CronSchedule::parse(&s.cron, s.time_zone.as_deref()) {
                            Ok(s) => Some(Box::new(s)),
                            Err(e) => {
                                push(format!("entry.audience.schedule: {e}"));
                                None
                            }
                        },
                        None => None,
                    };
                    Some(CEntry::Read {
                        condition,
                        schedule,
                        incremental: a.incremental,
                    })
                }
            },
        },
        _ => {
            push("entry: exactly one of event or audience is required".into());
            None
        }
    };

    let reentry = def.entry.reentry.clone().unwrap_or_default();
    let reentry_after_ms = match &reentry.after {
        Some(a) => parse_positive_duration_ms(a).unwrap_or_else(|e| {
            push(format!("entry.reentry.after: {e}"));
            0
        }),
        None => 0,
    };

    let mut exits = Vec::new();
    for (i, x) in def.exit.iter().enumerate() {
        let cond = match &x.event.condition {
            Some(c) => match expr::compile(c, Vars::ProfileAndEvent) {
                Ok(e) => Some(e),
                Err(e) => {
                    push(format!("exit[{i}].event.condition: {e}"));
                    None
                }
            },
            None => None,
        };
        exits.push((x.event.name.clone(), cond));
    }

    let timeout_ms = match &def.timeout {
        Some(t) => parse_positive_duration_ms(t).unwrap_or_else(|e| {
            push(format!("timeout: {e}"));
            DEFAULT_TIMEOUT_MS
        }),
        None => DEFAULT_TIMEOUT_MS,
    };

    let resolve = |path: String, id: &str, problems: &mut Vec<String>| -> Option<usize> {
        match index.get(id) {
            Some(i) => Some(*i),
            None => {
                problems.push(format!("{path}: unknown step {id:?}"));
                None
            }
        }
    };

    let mut steps = Vec::new();
    for (i, s) in def.steps.iter().enumerate() {
        let p = format!("steps[{i}]");
        let kinds = [
            s.wait.is_some(),
            s.wait_for_event.is_some(),
            s.condition.is_some(),
            s.action.is_some(),
            s.exit.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if kinds != 1 {
            problems.push(format!(
                "{p}: exactly one step kind is required, found {kinds}"
            ));
            continue;
        }
        let next = match &s.next {
            Some(n) => resolve(format!("{p}.next"), n, &mut problems),
            None => (i + 1 < def.steps.len()).then_some(i + 1),
        };
        let kind = if let Some(w) = &s.wait {
            match (&w.duration, &w.until) {
                (Some(d), None) => match parse_positive_duration_ms(d) {
                    Ok(ms) => CStepKind::WaitDuration(ms),
                    Err(e) => {
                        problems.push(format!("{p}.wait.duration: {e}"));
                        continue;
                    }
                },
                (None, Some(u)) => match parse_time(u) {
                    Ok(t) => CStepKind::WaitUntil(t),
                    Err(e) => {
                        problems.push(format!("{p}.wait.until: {e}"));
                        continue;
                    }
                },
                _ => {
                    problems.push(format!("{p}.wait: exactly one of duration or until"));
                    continue;
                }
            }
        } else if let Some(w) = &s.wait_for_event {
            let condition = match &w.condition {
                Some(c) => match expr::compile(c, Vars::ProfileAndEvent) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        problems.push(format!("{p}.waitForEvent.condition: {e}"));
                        None
                    }
                },
                None => None,
            };
            let timeout_ms = match &w.timeout {
                Some(t) => match parse_positive_duration_ms(t) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        problems.push(format!("{p}.waitForEvent.timeout: {e}"));
                        None
                    }
                },
                None => None,
            };
            let on_timeout = match &w.on_timeout {
                Some(t) => resolve(format!("{p}.waitForEvent.onTimeout"), t, &mut problems),
                None => None,
            };
            CStepKind::WaitForEvent {
                name: w.name.clone(),
                condition,
                timeout_ms,
                on_timeout,
            }
        } else if let Some(c) = &s.condition {
            let mut branches = Vec::new();
            for (b, br) in c.branches.iter().enumerate() {
                let target = resolve(
                    format!("{p}.condition.branches[{b}].next"),
                    &br.next,
                    &mut problems,
                );
                match expr::compile(&br.when, Vars::Profile) {
                    Ok(e) => {
                        if let Some(t) = target {
                            branches.push((e, t));
                        }
                    }
                    Err(e) => problems.push(format!("{p}.condition.branches[{b}].when: {e}")),
                }
            }
            let otherwise = match &c.otherwise {
                Some(o) => resolve(format!("{p}.condition.otherwise"), o, &mut problems),
                None => next,
            };
            CStepKind::Condition {
                branches,
                otherwise,
            }
        } else if let Some(a) = &s.action {
            let destination = a
                .destination
                .clone()
                .unwrap_or_else(|| "record".to_string());
            if let Err(e) = dests.check(&s.id, &a.channel, &destination) {
                problems.push(format!("{p}.action.destination: {e}"));
            }
            match MessageTemplate::compile(&format!("{p}.action.message"), &a.message) {
                Ok(template) => CStepKind::Action {
                    channel: a.channel.clone(),
                    destination,
                    message: a.message.clone(),
                    template,
                },
                Err(found) => {
                    problems.extend(found.iter().map(ToString::to_string));
                    CStepKind::Exit
                }
            }
        } else {
            CStepKind::Exit
        };
        steps.push(CStep {
            id: s.id.clone(),
            kind,
            next,
        });
    }

    let resume_rate = def
        .resume
        .as_ref()
        .and_then(|r| r.rate)
        .unwrap_or(DEFAULT_RESUME_RATE);
    let (mut start_at, mut end_at) = (None, None);
    if let Some(s) = &def.schedule {
        if let Some(t) = &s.start_at {
            start_at = parse_time(t)
                .map_err(|e| problems.push(format!("schedule.startAt: {e}")))
                .ok();
        }
        if let Some(t) = &s.end_at {
            end_at = parse_time(t)
                .map_err(|e| problems.push(format!("schedule.endAt: {e}")))
                .ok();
        }
        if let (Some(a), Some(b)) = (start_at, end_at)
            && b <= a
        {
            problems.push("schedule.endAt: must be after startAt".into());
        }
    }

    match entry {
        Some(entry) if problems.is_empty() => {
            let c = CompiledDefinition {
                entry,
                reentry_allowed: reentry.allowed,
                reentry_after_ms,
                exits,
                timeout_ms,
                steps,
                index,
                resume_rate,
                start_at,
                end_at,
            };
            if let Some(cycle) = c.waitless_cycle() {
                return Err(EngineError::InvalidDefinition(format!(
                    "steps: cycle without a wait step: {}",
                    cycle.join(" -> ")
                )));
            }
            Ok(c)
        }
        _ => Err(EngineError::InvalidDefinition(problems.join("; "))),
    }
}

/// Sorted map helper for deterministic output in tests.
pub fn step_ids(def: &CompiledDefinition) -> BTreeMap<usize, String> {
    def.steps
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({
            "entry": {"event": {"name": "AddToCart", "condition": "event.total > 10"},
                      "reentry": {"allowed": true, "after": "24h"}},
            "exit": [{"event": {"name": "Purchase"}}],
            "timeout": "2184h",
            "globalFilter": "profile.country == 'FR'",
            "resume": {"rate": 5000},
            "pause": {"mode": "Hold", "entries": "Queue", "waits": "Extend", "maxDuration": "336h", "onExpiry": "Stop", "reason": "x"},
            "steps": [
                {"id": "wait", "wait": {"duration": "1h"}},
                {"id": "cond", "condition": {"branches": [{"when": "profile.vip", "next": "push"}], "otherwise": "email"}},
                {"id": "push", "action": {"channel": "push", "message": {"body": "hi"}}, "next": "react"},
                {"id": "email", "action": {"channel": "email", "destination": "record", "message": {"subject": "s"}}, "next": "react"},
                {"id": "react", "waitForEvent": {"name": "Open", "timeout": "48h", "onTimeout": "bye"}},
                {"id": "bye", "exit": {}}
            ]
        })
    }

    #[test]
    fn parses_spec_json_and_refuses_unknown_fields() {
        for (path, value) in [
            ("/state", json!("Published")),
            ("/steps/0/wait/durration", json!("1h")),
            ("/entry/event/nmae", json!("x")),
        ] {
            let mut v = sample();
            let (parent, field) = path.rsplit_once('/').expect("a path");
            if let Some(obj) = v.pointer_mut(parent).and_then(|p| p.as_object_mut()) {
                obj.insert(field.to_string(), value);
            }
            let err = Definition::from_json(v).map(drop).expect_err(path);
            assert!(
                err.to_string()
                    .contains(&format!("unknown field `{field}`")),
                "{err}"
            );
        }
        let d = Definition::from_json(sample()).expect("parse");
        assert_eq!(d.steps.len(), 6);
        assert_eq!(d.pause.as_ref().map(|p| p.mode), Some(PauseMode::Hold));
        let c = compile(&d, &DestinationConfig::default()).expect("compile");
        assert_eq!(c.steps[0].next, Some(1));
        assert_eq!(c.wait_for_event_after(2).map(|x| x.0), Some("Open"));
        assert_eq!(c.reentry_after_ms, 24 * 3_600_000);
    }

    #[test]
    fn rejects_cycle_without_wait_but_allows_one_with_a_wait() {
        let bad = Definition::from_json(json!({
            "entry": {"event": {"name": "E"}},
            "steps": [
                {"id": "a", "action": {"channel": "email", "message": {}}},
                {"id": "b", "condition": {"branches": [{"when": "true", "next": "a"}]}}
            ]
        }))
        .expect("parse");
        let err = compile(&bad, &DestinationConfig::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("cycle without a wait step: a -> b -> a"),
            "{err}"
        );
        let ok = Definition::from_json(json!({
            "entry": {"event": {"name": "E"}},
            "steps": [
                {"id": "a", "action": {"channel": "email", "message": {}}},
                {"id": "w", "wait": {"duration": "24h"}, "next": "a"}
            ]
        }))
        .expect("parse");
        assert!(compile(&ok, &DestinationConfig::default()).is_ok());
    }

    #[test]
    fn hash_ignores_lifecycle_fields() {
        let a = Definition::from_json(sample()).expect("parse");
        let mut b = a.clone();
        b.global_filter = None;
        b.pause = None;
        assert_eq!(a.content_hash().ok(), b.content_hash().ok());
        b.timeout = Some("1h".into());
        assert_ne!(a.content_hash().ok(), b.content_hash().ok());
    }

    #[test]
    fn reports_all_problems() {
        let mut v = sample();
        v["steps"][0]["wait"]["duration"] = json!("1d");
        v["steps"][1]["condition"]["otherwise"] = json!("nowhere");
        v["steps"][2]["action"]["destination"] = json!("crm-hook");
        let d = Definition::from_json(v).expect("parse");
        let err = compile(&d, &DestinationConfig::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("steps[0].wait.duration"), "{err}");
        assert!(err.contains("nowhere"), "{err}");
        assert!(err.contains("crm-hook"), "{err}");
    }
}
