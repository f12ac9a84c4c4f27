//! Declaring a journey: its definition, its declared state and its run requests in one call
//! and one transaction (the v1 engine API's `PUT`). The engine judges the change with the
//! lifecycle table itself — transitions, Stopped frozen, entry and exit locked while published,
//! the global filter changed only while paused — so a client that is not the apiserver cannot
//! get past the rules either.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::api::ChangeCause;
use super::core::*;
use super::definition::Definition;
use super::error::{EngineError, Result, json_err};
use super::lifecycle::{
    Actor, DesiredLifecycle, Hold, JourneyState, RequestKind, RequestOutcome, Runtime,
    StatusSnapshot, TransitionReason,
};
use super::store::{Store, StoreTx};
use journey_model::lifecycle::{self as table, Change};

use super::control::check_filter;

/// Everything a caller declares about one journey.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// The whole definition, with the pause options, the global filter and the resume options.
    pub definition: Definition,
    pub state: JourneyState,
    pub requests: Requests,
    /// Refuse with [`EngineError::RevisionConflict`] unless the journey's latest change is
    /// this revision (0: the journey must not exist yet).
    pub expected_revision: Option<i64>,
    /// An emergency hold over the journey (paused whatever `state` says), or none.
    pub hold: Option<Hold>,
    /// Who declares it: recorded on the transitions this declaration causes.
    pub actor: Option<Actor>,
}

/// Run-control request tokens; each token is handled once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    pub run: Option<String>,
    pub full_run: Option<String>,
    pub restart: Option<String>,
}

impl Requests {
    pub fn iter(&self) -> impl Iterator<Item = (RequestKind, &str)> {
        [
            (RequestKind::RunNow, self.run.as_deref()),
            (RequestKind::FullRun, self.full_run.as_deref()),
            (RequestKind::Restart, self.restart.as_deref()),
        ]
        .into_iter()
        .filter_map(|(kind, token)| token.filter(|t| !t.is_empty()).map(|t| (kind, t)))
    }
}

/// What happened to one request token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestResult {
    pub kind: RequestKind,
    pub token: String,
    pub outcome: RequestOutcome,
}

/// The outcome of a declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub status: StatusSnapshot,
    pub requests: Vec<RequestResult>,
}

/// What the lifecycle table's locks compare between two declarations: the engine's `oldSelf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredParts {
    pub state: JourneyState,
    /// Hash of `entry` and `exit`.
    pub entry_exit: String,
    pub global_filter: Option<String>,
    /// Hash of every other field the table freezes in Stopped.
    pub rest: String,
}

fn digest(value: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(value.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl DeclaredParts {
    pub fn of(definition: &Definition, state: JourneyState) -> Result<Self> {
        let json = serde_json::to_value(definition).map_err(json_err("definition"))?;
        let mut rest = json.clone();
        let mut entry_exit = serde_json::Map::new();
        if let Some(map) = rest.as_object_mut() {
            for field in ["entry", "exit"] {
                if let Some(v) = map.remove(field) {
                    entry_exit.insert(field.into(), v);
                }
            }
            map.remove("globalFilter");
        }
        Ok(DeclaredParts {
            state,
            entry_exit: digest(&serde_json::Value::Object(entry_exit)),
            global_filter: definition.global_filter.clone(),
            rest: digest(&rest),
        })
    }
}

impl<S: Store> Engine<S> {
    /// Declares a journey: stores the definition when the state runs it, moves the lifecycle,
    /// handles the request tokens, and answers the status, all in one transaction. A change the
    /// lifecycle table refuses changes nothing and fails with [`EngineError::IllegalTransition`]
    /// naming the rule.
    pub fn declare_blocking(&self, key: &str, declaration: &Declaration) -> Result<Declared> {
        let Declaration {
            definition,
            state,
            requests,
            expected_revision,
            hold,
            actor,
        } = declaration;
        let desired = DesiredLifecycle::from_spec(state.as_str(), definition)?;
        check_filter(&desired)?;
        let prepared = if state.is_published() {
            Some(self.prepare(definition)?)
        } else {
            None
        };
        let parts = DeclaredParts::of(definition, *state)?;
        let now = self.now();
        let declared = self.write(|tx| {
            if let Some(expected) = expected_revision {
                let actual = tx.journey_revision(key)?.unwrap_or(0);
                if actual != *expected {
                    return Err(EngineError::RevisionConflict {
                        key: key.to_string(),
                        expected: *expected,
                        actual,
                    });
                }
            }
            let mut last_before = None;
            let mut hold_before = None;
            if let Some(row) = &tx.journey_for_update(key)? {
                let rt = load_rt(row)?;
                judge(key, &rt, &desired, &parts)?;
                last_before = rt.history.last().cloned();
                hold_before = rt.hold.clone();
            }
            let before = self.status_in(tx, key)?;
            if let Some(prepared) = &prepared {
                self.apply_definition_in(tx, key, prepared, now)?;
            }
            let current = self.status_in(tx, key)?;
            if current.as_ref().is_none_or(|s| s.desired != desired) {
                self.set_lifecycle_in(tx, key, &desired, now)?;
            }
            self.set_hold_in(tx, key, hold.as_ref(), now)?;
            remember(tx, key, &parts)?;
            stamp(
                tx,
                key,
                last_before.as_ref(),
                actor.as_ref(),
                hold.as_ref().or(hold_before.as_ref()),
            )?;
            let mut results = Vec::new();
            for (kind, token) in requests.iter() {
                let outcome = self.request_in(tx, key, kind, token, now)?;
                results.push(RequestResult {
                    kind,
                    token: token.to_string(),
                    outcome,
                });
            }
            let mut status = self
                .status_in(tx, key)?
                .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
            // Declaring what the engine already has changes nothing, so the feed does not
            // move either: a tool may send the same declaration as often as it likes.
            let unchanged = before.is_some_and(|b| {
                StatusSnapshot {
                    revision: status.revision,
                    ..b
                } == status
            }) && results
                .iter()
                .all(|r| r.outcome == RequestOutcome::AlreadyHandled);
            if !unchanged {
                status.revision = tx.record_change(key, ChangeCause::Command)?;
            }
            Ok((
                Declared {
                    status,
                    requests: results,
                },
                !unchanged,
            ))
        })?;
        let (declared, changed) = declared;
        if changed {
            self.notify(key, ChangeCause::Command);
        }
        Ok(declared)
    }
}

/// The table's verdict on moving the journey from where it is to the declaration.
fn judge(key: &str, rt: &Runtime, desired: &DesiredLifecycle, parts: &DeclaredParts) -> Result<()> {
    let to = desired.state();
    let from = table::engine_from(rt.phase, rt.desired.state(), to);
    // The first declaration of a journey stored before declarations were kept is judged on
    // its state alone, as the apiserver judges a create.
    let change = match &rt.declared {
        Some(old) => Change {
            from,
            to,
            entry_exit: old.entry_exit != parts.entry_exit,
            global_filter: old.global_filter != parts.global_filter,
            other_definition: old.rest != parts.rest,
        },
        None => Change::state(from, to),
    };
    table::judge(&change).map_err(|refusal| refused(key, rt.phase, desired, refusal))
}

fn remember(tx: &mut dyn StoreTx, key: &str, parts: &DeclaredParts) -> Result<()> {
    let row = tx
        .journey_for_update(key)?
        .ok_or_else(|| EngineError::NotFound(key.to_string()))?;
    let mut rt = load_rt(&row)?;
    if rt.declared.as_ref() == Some(parts) {
        return Ok(());
    }
    rt.declared = Some(parts.clone());
    save_rt(tx, row.id, &rt)
}

/// Records who caused the transitions this declaration made (those after `last_before`): the
/// declaring actor, or for a hold's own transitions the hold's creator.
fn stamp(
    tx: &mut dyn StoreTx,
    key: &str,
    last_before: Option<&super::lifecycle::Transition>,
    actor: Option<&Actor>,
    hold: Option<&Hold>,
) -> Result<()> {
    let Some(row) = tx.journey_for_update(key)? else {
        return Ok(());
    };
    let mut rt = load_rt(&row)?;
    let start = match last_before {
        Some(last) => match rt.history.iter().rposition(|t| t == last) {
            Some(i) => i + 1,
            None => return Ok(()),
        },
        None => 0,
    };
    if start >= rt.history.len() {
        return Ok(());
    }
    for t in &mut rt.history[start..] {
        t.actor = match (&t.reason, hold) {
            (TransitionReason::EmergencyHold | TransitionReason::HoldReleased, Some(h)) => {
                Some(Actor {
                    by: h.actor.clone().unwrap_or_else(|| h.held_by.join(", ")),
                    change_ref: None,
                })
            }
            _ => actor.cloned(),
        };
    }
    save_rt(tx, row.id, &rt)
}
