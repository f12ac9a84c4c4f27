//! The reconcile loop: read, plan, execute, write status only when it changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::cache::{CacheError, CachedJourney};
use super::events::EventRecorder;
use super::holds::{self, HoldIndex};
use super::planner::{self, Block, Command, EngineView, Observed, StatusInput, Tokens};
use super::reasons as r;
use super::translate;
use super::written::WrittenStatuses;
use crate::api::annotations;
use crate::api::journey::{DeletionPolicy, Journey};
use crate::api::status::{JourneyStatus, Phase};
use crate::api::validate::{Problem, ValidationContext, validate};
use crate::engine::{
    Actor, Declaration, EngineError, JourneyEngine, RequestKind, RequestOutcome, RequestResult,
    Requests,
};
use crate::panics::Place;

pub const FINALIZER: &str = "journey.dev/engine";
pub const FIELD_MANAGER: &str = "journey-operator";

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Safety-net resync; the engine's change stream drives normal reactions.
    pub resync: Duration,
    /// Profile counts are refreshed at most this often.
    pub counts_refresh: Duration,
    /// Destination names the engine is configured with.
    pub destinations: Option<BTreeSet<String>>,
}

pub struct Context {
    pub client: Client,
    pub engine: Arc<dyn JourneyEngine>,
    pub recorder: EventRecorder,
    pub config: ControllerConfig,
    pub metrics: Arc<super::metrics::Metrics>,
    /// Statuses written that the watch cache may not hold yet.
    pub written: Arc<WrittenStatuses>,
    /// The emergency holds (empty unless the controller watches them).
    pub holds: HoldIndex,
    /// Tells the holds' status loop which holds gained or lost a journey.
    pub hold_nudges: Option<futures::channel::mpsc::UnboundedSender<String>>,
    counts_written: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        engine: Arc<dyn JourneyEngine>,
        recorder: EventRecorder,
        config: ControllerConfig,
        metrics: Arc<super::metrics::Metrics>,
        written: Arc<WrittenStatuses>,
    ) -> Self {
        Context {
            client,
            engine,
            recorder,
            config,
            metrics,
            written,
            holds: HoldIndex::default(),
            hold_nudges: None,
            counts_written: Mutex::default(),
            failures: Mutex::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{reason}: {source}")]
    Kube {
        reason: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("EngineUnavailable: {0}")]
    Engine(#[source] EngineError),
    #[error("FinalizerFailed: {0}")]
    Finalizer(String),
    #[error("the object has no namespace")]
    NoNamespace,
    #[error("CacheUnreadable: {0}")]
    Cache(#[from] CacheError),
    /// A bug hit while reconciling this journey: it fails alone and is retried with backoff.
    #[error("ReconcilePanicked: {0}")]
    Panicked(String),
}

impl ReconcileError {
    /// The reason label shared by the condition, the event and the metric.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube { reason, .. } => reason,
            ReconcileError::Engine(_) => r::ENGINE_UNAVAILABLE,
            ReconcileError::Finalizer(_) | ReconcileError::NoNamespace => r::FINALIZER_FAILED,
            ReconcileError::Cache(_) => r::CACHE_UNREADABLE,
            ReconcileError::Panicked(_) => r::RECONCILE_PANICKED,
        }
    }
}

/// Engine errors a user must fix, as opposed to the engine being unreachable or failing.
fn permanent(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::InvalidDefinition(_)
            | EngineError::InvalidDuration { .. }
            | EngineError::CelCompile { .. }
            | EngineError::InvalidSchedule { .. }
            | EngineError::IllegalTransition { .. }
            | EngineError::UnknownDestination { .. }
            | EngineError::NoDefinition { .. }
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_seconds() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn tokens(journey: &Journey) -> Tokens {
    let get = |k: &str| {
        journey
            .annotations()
            .get(k)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Tokens {
        run: get(annotations::RUN_REQUESTED_AT),
        full_run: get(annotations::FULL_RUN_REQUESTED_AT),
        restart: get(annotations::RESTART_REQUESTED_AT),
    }
}

#[tracing::instrument(skip_all, fields(namespace = cached.namespace().unwrap_or_default(), name = cached.name_any()))]
pub async fn reconcile(
    cached: Arc<CachedJourney>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let journey = cached.unpack()?;
    let result = crate::panics::catching(Place::Reconcile, reconcile_journey(journey, &ctx))
        .await
        .unwrap_or_else(|message| Err(ReconcileError::Panicked(message)));
    ctx.metrics.record_reconcile(started.elapsed());
    if result.is_ok() {
        let key =
            translate::engine_key(&cached.namespace().unwrap_or_default(), &cached.name_any());
        lock(&ctx.failures).remove(&key);
    }
    result
}

/// The finalizer protocol (kube-runtime's `finalizer` helper does the same, but returns after
/// adding the finalizer and leaves the first apply to the next reconcile): a journey being
/// deleted is cleaned up, then released; a new one gets the finalizer and is applied in the
/// same pass, so a cold start costs one reconcile per journey, not two.
async fn reconcile_journey(mut journey: Journey, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = journey.namespace().ok_or(ReconcileError::NoNamespace)?;
    let api: Api<Journey> = Api::namespaced(ctx.client.clone(), &ns);
    let name = journey.name_any();
    let position = journey.finalizers().iter().position(|f| f == FINALIZER);
    match (journey.metadata.deletion_timestamp.is_some(), position) {
        (true, None) => Ok(Action::await_change()),
        (true, Some(i)) => {
            let action = cleanup(&journey, ctx).await?;
            let patch = finalizer_patch(json!([
                {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FINALIZER},
                {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
            ]))?;
            api.patch(&name, &PatchParams::default(), &patch)
                .await
                .map_err(|e| ReconcileError::Finalizer(format!("removing {FINALIZER}: {e}")))?;
            Ok(action)
        }
        (false, None) => {
            // `test` makes the patch fail rather than drop a finalizer someone else added
            // since the cache saw the object.
            let patch = if journey.finalizers().is_empty() {
                finalizer_patch(json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
                ]))?
            } else {
                finalizer_patch(json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": journey.finalizers()},
                    {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
                ]))?
            };
            let updated = api
                .patch(&name, &PatchParams::default(), &patch)
                .await
                .map_err(|e| ReconcileError::Finalizer(format!("adding {FINALIZER}: {e}")))?;
            // The response is newer than the cache; a spec edited meanwhile is applied too.
            journey = updated;
            apply(&journey, &api, ctx).await
        }
        (false, Some(_)) => apply(&journey, &api, ctx).await,
    }
}

fn finalizer_patch(ops: serde_json::Value) -> Result<Patch<()>, ReconcileError> {
    serde_json::from_value(ops)
        .map(|ops| Patch::Json(json_patch::Patch(ops)))
        .map_err(|e| ReconcileError::Finalizer(e.to_string()))
}

/// Per-object exponential backoff (1 s doubling to 5 min): no hot loop, bounded.
pub fn error_policy(
    journey: Arc<CachedJourney>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let key = translate::engine_key(
        &journey.namespace().unwrap_or_default(),
        &journey.name_any(),
    );
    let failures = {
        let mut map = lock(&ctx.failures);
        let n = map.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = Duration::from_secs(1u64 << failures.min(9).saturating_sub(1))
        .min(Duration::from_secs(300));
    warn!(journey = %key, reason = error.reason(), %error, retry_in = ?delay, "reconcile failed");
    ctx.metrics.record_error(error.reason());
    // Every error gets an event too (the recorder folds repeats into a series).
    let note = format!("{error}; retrying in {}s", delay.as_secs());
    let reason = error.reason();
    tokio::spawn(async move {
        publish(&ctx, journey.as_ref(), EventType::Warning, reason, note).await;
    });
    Action::requeue(delay)
}

async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    journey: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &journey.object_ref(&())).await {
        warn!(%e, reason, "could not publish event");
    }
}

async fn apply(
    journey: &Journey,
    api: &Api<Journey>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let ns = journey.namespace().unwrap_or_default();
    let name = journey.name_any();
    let key = translate::engine_key(&ns, &name);
    let spec = &journey.spec;
    let tokens = tokens(journey);

    let mut problems = validate(
        spec,
        &ValidationContext {
            destinations: ctx.config.destinations.as_ref(),
        },
    );
    let definition = match translate::definition(spec) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(Problem {
                field: "spec".into(),
                message: e.to_string(),
            });
            None
        }
    };
    let hash = match definition.as_ref().map(|d| d.content_hash()) {
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            problems.push(Problem {
                field: "spec".into(),
                message: e.to_string(),
            });
            None
        }
        None => None,
    };

    let matching = ctx.holds.matching(&ns, journey.labels(), Timestamp::now());
    let hold = holds::merge(&matching);
    let mut snapshot_result = ctx.engine.status(&key).await;
    let (plan, engine_error) = {
        let view = engine_view(&snapshot_result);
        let plan = planner::plan(&Observed {
            spec,
            tokens: &tokens,
            problems: &problems,
            definition_hash: hash.as_deref(),
            engine: view,
            hold: hold.as_ref(),
        });
        (
            plan,
            snapshot_result.as_ref().err().map(ToString::to_string),
        )
    };

    let mut block = plan.block.clone();
    if engine_error.is_none() && !plan.commands.is_empty() {
        match declare(
            &plan.commands,
            &key,
            spec,
            definition.as_ref(),
            hold.as_ref(),
            ctx,
            journey,
        )
        .await
        {
            Ok(status) => snapshot_result = Ok(status),
            Err(e) => match blocked_by(&e) {
                Some(b) => {
                    block = Some(b);
                    snapshot_result = ctx.engine.status(&key).await;
                }
                None => snapshot_result = Err(e),
            },
        }
    }

    let written = ctx
        .written
        .newer_than_cache(&key, journey.metadata.resource_version.as_deref());
    let previous = written.as_ref().or(journey.status.as_ref());
    let now = now_seconds();
    let view = engine_view(&snapshot_result);
    let mut desired = planner::desired_status(&StatusInput {
        spec,
        generation: journey.metadata.generation,
        engine: view,
        block: block.as_ref(),
        restart_refused_locally: plan.restart_refused_locally.as_deref(),
        previous,
        now: &now,
        matching_holds: &matching.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
    });
    if let Some(token) = &plan.restart_refused_locally
        && previous.and_then(|p| p.last_handled_restart_request.as_deref()) != Some(token.as_str())
    {
        publish(
            ctx,
            journey,
            EventType::Warning,
            r::RESTART_NOT_ALLOWED,
            format!(
                "restart token {token:?} ignored: a {} journey cannot be restarted",
                spec.state
            ),
        )
        .await;
    }

    let requeue = throttle_counts(&key, previous, &mut desired, ctx);
    if previous != Some(&desired) {
        let patch = json!({
            "apiVersion": "journey.dev/v1alpha1",
            "kind": "Journey",
            "status": desired,
        });
        let stored = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| ReconcileError::Kube {
                reason: r::STATUS_WRITE_FAILED,
                source,
            })?;
        ctx.written
            .remember(&key, stored.metadata.resource_version.as_deref(), &desired);
        if desired.profiles != previous.and_then(|p| p.profiles.clone())
            || desired.resume != previous.and_then(|p| p.resume.clone())
        {
            lock(&ctx.counts_written).insert(key.clone(), Instant::now());
        }
        ctx.metrics.record_status_write();
        announce(ctx, journey, previous, &desired).await;
    }
    ctx.metrics.observe(&key, &desired);

    // The same test the planner makes (an engine that did not answer is unavailable), for
    // journey_engine_available.
    ctx.metrics.record_engine_available(snapshot_result.is_ok());
    if let Err(e) = snapshot_result {
        return Err(ReconcileError::Engine(e));
    }
    // Come back when the first hold expires, to release the journey then.
    let requeue = match (requeue, holds::next_expiry(&matching, Timestamp::now())) {
        (Some(a), Some(b)) => Some(a.min(b + Duration::from_millis(200))),
        (a, b) => a.or(b.map(|b| b + Duration::from_millis(200))),
    };
    Ok(match (requeue, &block) {
        (Some(after), _) => Action::requeue(after.min(ctx.config.resync)),
        // The user must act: nothing to retry until the spec (or the engine) changes, and both
        // trigger a reconcile.
        (None, Some(_)) => Action::await_change(),
        (None, None) => Action::requeue(ctx.config.resync),
    })
}

fn engine_view(
    result: &Result<Option<crate::engine::StatusSnapshot>, EngineError>,
) -> EngineView<'_> {
    match result {
        Ok(Some(s)) => EngineView::Known(s),
        Ok(None) => EngineView::Unknown,
        Err(_) => EngineView::Unavailable("the engine did not answer"),
    }
}

/// Keeps the previous profile counts and resume progress when only they changed and they were written recently,
/// so a busy journey does not write every second; returns when to come back for them.
fn throttle_counts(
    key: &str,
    previous: Option<&JourneyStatus>,
    desired: &mut JourneyStatus,
    ctx: &Context,
) -> Option<Duration> {
    let previous = previous?;
    let progress = |s: &JourneyStatus| s.resume.as_ref().map(|r| r.released);
    if previous.profiles == desired.profiles && progress(previous) == progress(desired) {
        return None;
    }
    let elapsed = lock(&ctx.counts_written).get(key)?.elapsed();
    if elapsed >= ctx.config.counts_refresh {
        return None;
    }
    let mut held_back = desired.clone();
    held_back.profiles = previous.profiles.clone();
    if let (Some(r), Some(old)) = (held_back.resume.as_mut(), previous.resume.as_ref()) {
        r.released = old.released;
    }
    if &held_back == previous {
        *desired = held_back;
        return Some(ctx.config.counts_refresh - elapsed);
    }
    // Something else changed too: the counts go out with it.
    None
}

/// A refusal the user must act on, as the block the status shows; `None` for errors worth
/// retrying (the engine unreachable or failing).
fn blocked_by(e: &EngineError) -> Option<Block> {
    match e {
        EngineError::IllegalTransition { .. } => Some(Block::IllegalTransition(format!(
            "the engine refused the change: {e}"
        ))),
        e if permanent(e) => Some(Block::Invalid(format!(
            "the engine rejected the change: {e}"
        ))),
        _ => None,
    }
}

/// Sends the planned change as one declaration (definition, state and the request tokens not
/// yet handled) and announces what became of each token.
async fn declare(
    commands: &[Command],
    key: &str,
    spec: &crate::api::JourneySpec,
    definition: Option<&crate::engine::Definition>,
    hold: Option<&crate::engine::Hold>,
    ctx: &Context,
    journey: &Journey,
) -> Result<Option<crate::engine::StatusSnapshot>, EngineError> {
    let Some(definition) = definition else {
        return Ok(None);
    };
    let mut requests = Requests::default();
    for command in commands {
        if let Command::Request(kind, token) = command {
            let slot = match kind {
                RequestKind::RunNow => &mut requests.run,
                RequestKind::FullRun => &mut requests.full_run,
                RequestKind::Restart => &mut requests.restart,
            };
            *slot = Some(token.clone());
        }
    }
    let declared = ctx
        .engine
        .declare(
            key,
            Declaration {
                definition: definition.clone(),
                state: spec.state,
                requests,
                // The controller owns its journeys: the apiserver already ordered its changes.
                expected_revision: None,
                hold: hold.cloned(),
                actor: journey
                    .annotations()
                    .get(annotations::LIFECYCLE_CHANGED_BY)
                    .map(|by| Actor {
                        by: by.clone(),
                        change_ref: journey.annotations().get(annotations::CHANGE_REF).cloned(),
                    }),
            },
        )
        .await?;
    if commands.contains(&Command::ApplyDefinition) {
        info!(
            journey = key,
            version = declared.status.version,
            "definition applied"
        );
    }
    for result in declared.requests {
        announce_request(ctx, journey, result).await;
    }
    Ok(Some(declared.status))
}

async fn announce_request(ctx: &Context, journey: &Journey, result: RequestResult) {
    let RequestResult {
        kind,
        token,
        outcome,
    } = result;
    let (type_, reason, note) = match (kind, outcome) {
        (_, RequestOutcome::AlreadyHandled) => return,
        (RequestKind::Restart, RequestOutcome::Refused { reason }) => (
            EventType::Warning,
            r::RESTART_NOT_ALLOWED,
            format!("restart token {token:?} ignored: {reason}"),
        ),
        (_, RequestOutcome::Refused { reason }) => (
            EventType::Warning,
            r::RUN_REFUSED,
            format!("run token {token:?} ignored: {reason}"),
        ),
        (_, RequestOutcome::DeferredUntilResume) => (
            EventType::Normal,
            r::RUN_DEFERRED,
            format!("run token {token:?} deferred until the journey resumes"),
        ),
        (RequestKind::Restart, RequestOutcome::Started { .. }) => (
            EventType::Normal,
            r::RESTARTED,
            format!(
                "restart token {token:?}: every profile begins again (messages are sent again)"
            ),
        ),
        (_, RequestOutcome::Started { run_id }) => (
            EventType::Normal,
            r::RUN_REQUESTED,
            format!(
                "run token {token:?} started run {}",
                run_id.unwrap_or_default()
            ),
        ),
    };
    publish(ctx, journey, type_, reason, note).await;
}

/// Events on every phase change and on newly stalled conditions.
async fn announce(
    ctx: &Context,
    journey: &Journey,
    previous: Option<&JourneyStatus>,
    desired: &JourneyStatus,
) {
    let old_phase = previous.and_then(|p| p.phase);
    if old_phase != desired.phase
        && let Some(phase) = desired.phase
    {
        let (reason, note) = phase_event(phase, desired);
        publish(ctx, journey, EventType::Normal, reason, note).await;
    }
    for condition in &desired.conditions {
        let was = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == condition.type_));
        let changed =
            was.is_none_or(|c| c.status != condition.status || c.reason != condition.reason);
        if !changed || condition.status != "True" {
            continue;
        }
        if condition.type_ == "Stalled" {
            publish(
                ctx,
                journey,
                EventType::Warning,
                &condition.reason,
                condition.message.clone(),
            )
            .await;
        }
    }
    announce_holds(ctx, journey, previous, desired).await;
    // PauseExpired is a False condition (Paused=False), so the loop above never sees it.
    if let Some(c) = desired
        .conditions
        .iter()
        .find(|c| c.type_ == "Paused" && c.reason == r::PAUSE_EXPIRED)
        && previous
            .and_then(|p| p.conditions.iter().find(|pc| pc.type_ == "Paused"))
            .is_none_or(|pc| pc.reason != r::PAUSE_EXPIRED)
    {
        publish(
            ctx,
            journey,
            EventType::Warning,
            r::PAUSE_EXPIRED,
            c.message.clone(),
        )
        .await;
    }
}

/// Events when holds start or stop holding the journey, and a nudge to each hold's status.
async fn announce_holds(
    ctx: &Context,
    journey: &Journey,
    previous: Option<&JourneyStatus>,
    desired: &JourneyStatus,
) {
    let held_by = |s: Option<&JourneyStatus>| {
        s.and_then(|s| s.pause.as_ref())
            .map(|p| p.held_by.clone())
            .unwrap_or_default()
    };
    let (before, now) = (held_by(previous), held_by(Some(desired)));
    if before == now {
        return;
    }
    if let Some(nudges) = &ctx.hold_nudges {
        for id in before.iter().chain(&now) {
            let _ = nudges.unbounded_send(id.clone());
        }
    }
    let reason = desired
        .pause
        .as_ref()
        .and_then(|p| p.reason.clone())
        .unwrap_or_default();
    if now.is_empty() {
        let rate = journey.spec.resume.as_ref().map_or(5000, |r| r.rate);
        let next = match desired.phase {
            Some(Phase::Paused) => "still paused by its spec".to_string(),
            _ => format!("resuming at {rate} held profiles/s"),
        };
        publish(
            ctx,
            journey,
            EventType::Normal,
            r::HOLD_RELEASED,
            format!(
                "released by {} (deleted or expired); {next}",
                before.join(", ")
            ),
        )
        .await;
    } else {
        publish(
            ctx,
            journey,
            EventType::Warning,
            r::EMERGENCY_HOLD,
            format!("held by {}: {reason}", now.join(", ")),
        )
        .await;
    }
}

fn phase_event(phase: Phase, status: &JourneyStatus) -> (&'static str, String) {
    let version = status
        .version
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default();
    match phase {
        Phase::Draft => (r::DRAFT, "draft".into()),
        Phase::Scheduled => (
            r::SCHEDULED,
            format!("published{version}, waiting for schedule.startAt"),
        ),
        Phase::Live => (r::PUBLISHED, format!("live{version}")),
        Phase::Paused => (r::PAUSED, "paused".into()),
        Phase::Resuming => (
            r::RELEASING_HELD_PROFILES,
            "resuming: releasing held profiles".into(),
        ),
        Phase::Closing => (
            "Closing",
            "closed to new entrances; profiles inside are finishing".into(),
        ),
        Phase::Completed => (r::DRAINED, "completed: every profile has finished".into()),
        Phase::Stopped => (
            r::STOPPED,
            "stopped: entrance, movement and delivery halted".into(),
        ),
    }
}

async fn cleanup(journey: &Journey, ctx: &Context) -> Result<Action, ReconcileError> {
    let key = translate::engine_key(
        &journey.namespace().unwrap_or_default(),
        &journey.name_any(),
    );
    match journey.spec.deletion_policy {
        DeletionPolicy::Orphan => {
            publish(
                ctx,
                journey,
                EventType::Normal,
                r::ORPHANED,
                format!("engine journey {key} left as it is"),
            )
            .await;
        }
        DeletionPolicy::Stop => {
            ctx.engine
                .delete(&key)
                .await
                .map_err(ReconcileError::Engine)?;
            publish(
                ctx,
                journey,
                EventType::Normal,
                r::DELETED,
                format!("engine journey {key} stopped and removed"),
            )
            .await;
        }
    }
    lock(&ctx.counts_written).remove(&key);
    ctx.written.forget(&key);
    ctx.metrics.forget(&key);
    Ok(Action::await_change())
}
