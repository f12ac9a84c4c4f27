//! The holds' own loop: a hold's status (phase, expiry, which journeys it holds and which it
//! leaves alone), its events, and its finalizer, which lets the hold announce its release when
//! it is deleted. Journeys are held by the journey reconciler, which reads the holds' cache;
//! this loop only reports.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::warn;

use super::cache::CachedJourney;
use super::events::EventRecorder;
use super::holds::{expires_at, hold_id};
use super::reasons as r;
use super::reconciler::FIELD_MANAGER;
use crate::api::annotations;
use crate::api::hold::{HoldObject, HoldPhase, HoldStatus, MAX_LISTED, SkippedJourney};
use crate::api::status::Phase;

/// Lets the hold say, once it is deleted, which journeys it released.
pub const HOLD_FINALIZER: &str = "journey.dev/hold";
/// An active hold's status is refreshed at least this often (journeys changing phase).
const REFRESH: Duration = Duration::from_secs(30);

pub struct HoldContext {
    pub client: Client,
    pub journeys: Store<CachedJourney>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub recorder: EventRecorder,
}

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("StatusWriteFailed: {0}")]
    Kube(#[from] kube::Error),
    #[error("FinalizerFailed: {0}")]
    Finalizer(String),
}

/// A kind of hold this loop reports on.
pub trait HoldKind:
    Resource<DynamicType = ()>
    + HoldObject
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    fn status(&self) -> Option<&HoldStatus>;
    fn api(client: Client, namespace: Option<&str>) -> Api<Self>;
}

impl HoldKind for crate::api::hold::JourneyHold {
    fn status(&self) -> Option<&HoldStatus> {
        self.status.as_ref()
    }
    fn api(client: Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or("default"))
    }
}

impl HoldKind for crate::api::hold::ClusterJourneyHold {
    fn status(&self) -> Option<&HoldStatus> {
        self.status.as_ref()
    }
    fn api(client: Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
}

/// Which journeys a hold covers: held by it now, and left alone for their phase.
#[derive(Debug, Default, PartialEq)]
struct Coverage {
    held: Vec<String>,
    skipped: Vec<SkippedJourney>,
}

fn coverage<H: HoldKind>(hold: &H, ctx: &HoldContext) -> Coverage {
    let id = hold_id(hold);
    let cluster = hold.namespace_selector();
    let mut out = Coverage::default();
    for cached in ctx.journeys.state() {
        let ns = cached.namespace().unwrap_or_default();
        let in_scope = match cluster {
            None => hold.meta().namespace.as_deref() == Some(ns.as_str()),
            Some(selector) => ctx
                .namespaces
                .get(&ObjectRef::new(&ns))
                .is_some_and(|n| selector.matches(n.labels())),
        };
        if !in_scope || !hold.selector().matches(cached.labels()) {
            continue;
        }
        let Ok(journey) = cached.unpack() else {
            continue;
        };
        let name = match cluster {
            None => journey.name_any(),
            Some(_) => format!("{ns}/{}", journey.name_any()),
        };
        let status = journey.status.as_ref();
        let held_by_this = status
            .and_then(|s| s.pause.as_ref())
            .is_some_and(|p| p.held_by.contains(&id));
        let phase = status.and_then(|s| s.phase).unwrap_or(Phase::Draft);
        if held_by_this {
            out.held.push(name);
        } else if !journey_engine::hold::holdable(phase) {
            out.skipped.push(SkippedJourney {
                name,
                phase: format!("{phase:?}"),
            });
        }
    }
    out.held.sort();
    out.skipped.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn condition(type_: &str, status: bool, reason: &str, message: String, now: &Time) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: None,
        last_transition_time: now.clone(),
    }
}

/// The status the hold should show.
fn desired_status<H: HoldKind>(hold: &H, ctx: &HoldContext, now: Timestamp) -> HoldStatus {
    let expiry = expires_at(hold);
    let active = expiry.is_some_and(|e| now < e);
    let cover = if active {
        coverage(hold, ctx)
    } else {
        Coverage::default()
    };
    let previous = hold.status();
    let now_time = Time(now);
    // Transition times move only when a condition flips.
    let keep_time = |mut c: Condition| {
        if let Some(old) = previous
            .and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_))
            .filter(|o| o.status == c.status)
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
        c.observed_generation = hold.meta().generation;
        c
    };
    let active_condition = if active {
        condition(
            "Active",
            true,
            "Holding",
            format!(
                "holding {} journeys{}",
                cover.held.len(),
                if cover.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; {} left alone for their phase", cover.skipped.len())
                }
            ),
            &now_time,
        )
    } else {
        condition(
            "Active",
            false,
            r::HOLD_EXPIRED,
            "the hold reached expiresAt and released its journeys; delete it, or raise spec.duration to hold again".into(),
            &now_time,
        )
    };
    HoldStatus {
        observed_generation: hold.meta().generation,
        phase: Some(if active {
            HoldPhase::Active
        } else {
            HoldPhase::Expired
        }),
        expires_at: expiry.map(Time),
        matched: cover.held.len() as i64,
        skipped_count: cover.skipped.len() as i64,
        held: cover.held.into_iter().take(MAX_LISTED).collect(),
        skipped: cover.skipped.into_iter().take(MAX_LISTED).collect(),
        created_by: hold.annotations().get(annotations::CREATED_BY).cloned(),
        conditions: vec![
            keep_time(condition(
                "Ready",
                true,
                "Reconciled",
                String::new(),
                &now_time,
            )),
            keep_time(active_condition),
        ],
    }
}

async fn publish<H: HoldKind>(ctx: &HoldContext, hold: &H, reason: &str, note: String) {
    let event = Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: "Release".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &hold.object_ref(&())).await {
        warn!(%e, reason, "could not publish the hold's event");
    }
}

fn finalizer_patch(ops: serde_json::Value) -> Result<Patch<()>, HoldError> {
    serde_json::from_value(ops)
        .map(|ops| Patch::Json(json_patch::Patch(ops)))
        .map_err(|e| HoldError::Finalizer(e.to_string()))
}

pub async fn reconcile<H: HoldKind>(
    hold: Arc<H>,
    ctx: Arc<HoldContext>,
) -> Result<Action, HoldError> {
    let api = H::api(ctx.client.clone(), hold.meta().namespace.as_deref());
    let name = hold.name_any();
    let position = hold.finalizers().iter().position(|f| f == HOLD_FINALIZER);
    if hold.meta().deletion_timestamp.is_some() {
        if let Some(i) = position {
            let released = hold.status().map_or(0, |s| s.matched);
            publish(
                &ctx,
                hold.as_ref(),
                r::HOLD_DELETED,
                format!("deleted: releasing {released} journeys"),
            )
            .await;
            let patch = finalizer_patch(json!([
                {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": HOLD_FINALIZER},
                {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
            ]))?;
            api.patch(&name, &PatchParams::default(), &patch).await?;
        }
        return Ok(Action::await_change());
    }
    if position.is_none() {
        let patch = if hold.finalizers().is_empty() {
            finalizer_patch(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [HOLD_FINALIZER]},
            ]))?
        } else {
            finalizer_patch(json!([
                {"op": "add", "path": "/metadata/finalizers/-", "value": HOLD_FINALIZER},
            ]))?
        };
        api.patch(&name, &PatchParams::default(), &patch).await?;
    }
    let now = Timestamp::now();
    let desired = desired_status(hold.as_ref(), &ctx, now);
    let previous = hold.status();
    let unchanged = previous == Some(&desired);
    if !unchanged {
        let patch = json!({
            "apiVersion": H::api_version(&()),
            "kind": H::kind(&()),
            "status": desired,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        let was_active = previous.is_none_or(|p| p.phase != Some(HoldPhase::Expired));
        if desired.phase == Some(HoldPhase::Expired) && was_active {
            let released = previous.map_or(0, |p| p.matched);
            publish(
                &ctx,
                hold.as_ref(),
                r::HOLD_EXPIRED,
                format!("reached expiresAt: releasing {released} journeys"),
            )
            .await;
        }
    }
    Ok(match desired.expires_at.as_ref().map(|t| t.0) {
        Some(at) if now < at => {
            let left = Duration::try_from(at.duration_since(now)).unwrap_or_default();
            Action::requeue(left.min(REFRESH) + Duration::from_millis(200))
        }
        _ => Action::await_change(),
    })
}

pub fn error_policy<H: HoldKind>(hold: Arc<H>, error: &HoldError, _: Arc<HoldContext>) -> Action {
    warn!(hold = %hold.name_any(), %error, "hold status failed; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}
