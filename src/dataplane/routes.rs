//! The endpoints: routing table, handlers, the serving gate and the per-request span.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use super::auth::{BearerToken, require_bearer};
use super::config::{
    DEFAULT_DELIVERIES_LIMIT, DEFAULT_ENROLLMENTS_LIMIT, DEFAULT_RUNS_LIMIT, Limits,
    MAX_DELIVERIES_LIMIT, MAX_ENROLLMENTS_LIMIT, MAX_RUNS_LIMIT,
};
use super::error::{ApiError, engine_error};
use super::input::{self, QueryParams};
use super::openapi;
use super::wire::{Accepted, DeliveryList, DeliveryOut, EnrollmentList, RunList};
use crate::engine::{DataPlane, EngineError, NewEvent};

pub const EVENTS: &str = "/v1/events";
pub const EVENTS_BATCH: &str = "/v1/events/batch";
pub const PROFILE: &str = "/v1/profiles/{profileId}";
pub const DELIVERIES: &str = "/v1/deliveries";
pub const RUNS: &str = "/v1/journeys/{namespace}/{name}/runs";
pub const ENROLLMENTS: &str = "/v1/journeys/{namespace}/{name}/enrollments";
pub const FILTER_MATCHES: &str = "/v1/journeys/{namespace}/{name}/filter-matches";
pub const OPENAPI: &str = "/openapi.json";

/// Every route [`super::router`] serves, as (method, path template). The OpenAPI document
/// describes exactly these (a test checks both directions).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", EVENTS),
    ("POST", EVENTS_BATCH),
    ("PUT", PROFILE),
    ("GET", DELIVERIES),
    ("GET", RUNS),
    ("GET", ENROLLMENTS),
    ("POST", FILTER_MATCHES),
    ("GET", OPENAPI),
];

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) dataplane: Arc<dyn DataPlane>,
    pub(crate) serving: watch::Receiver<bool>,
    pub(crate) token: BearerToken,
    /// The engine API's token, recognised only to refuse it with 403.
    pub(crate) engine_token: Option<BearerToken>,
    /// Counts the answered requests (`journey_http_requests_total{api="data-plane"}`).
    pub(crate) metrics: Option<Arc<crate::controller::metrics::Metrics>>,
    pub(crate) limits: Limits,
    openapi: Bytes,
}

pub(crate) fn build(
    dataplane: Arc<dyn DataPlane>,
    serving: watch::Receiver<bool>,
    token: BearerToken,
    engine_token: Option<BearerToken>,
    metrics: Option<Arc<crate::controller::metrics::Metrics>>,
    limits: Limits,
) -> Router {
    let openapi = Bytes::from(openapi::document(&limits).to_string());
    let state = AppState {
        dataplane,
        serving,
        token,
        engine_token,
        metrics,
        limits,
        openapi,
    };
    // Data endpoints: authentication first, then the serving gate. The 405 fallback is set
    // before the layers so a wrong method is authenticated like the right one.
    let data = Router::new()
        .route(EVENTS, post(ingest_event))
        .route(EVENTS_BATCH, post(ingest_batch))
        .route(PROFILE, put(upsert_profile))
        .route(DELIVERIES, get(list_deliveries))
        .route(RUNS, get(run_history))
        .route(ENROLLMENTS, get(list_enrollments))
        .route(FILTER_MATCHES, post(filter_matches))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_serving,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ));
    let public = Router::new()
        .route(OPENAPI, get(openapi_json))
        .method_not_allowed_fallback(method_not_allowed);
    data.merge(public)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), trace))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// A bug hit by one request answers 500 for that request alone (counted in
/// `journey_panics_total{where="data-plane"}`); the server and every other request go on.
fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    crate::panics::record(crate::panics::Place::DataPlane, payload.as_ref());
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error while handling the request; see the operator's log",
    )
    .into_response()
}

/// One span per request with the method and the route template (never the concrete path,
/// query, headers or body: they carry profile ids, payloads and the token).
async fn trace(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_string(), |p| p.as_str().to_string());
    let span = tracing::info_span!(
        "dataplane_request",
        method = %req.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    let start = Instant::now();
    async move {
        let res = next.run(req).await;
        tracing::Span::current().record("status", res.status().as_u16());
        if let Some(metrics) = &state.metrics {
            metrics.record_http("data-plane", &route, res.status().as_u16());
        }
        let elapsed_ms = start.elapsed().as_millis();
        if res.status().is_server_error() {
            tracing::warn!(elapsed_ms, "request failed");
        } else {
            tracing::debug!(elapsed_ms, "request done");
        }
        res
    }
    .instrument(span)
    .await
}

/// 503 + `Retry-After` on a standby replica (no leader lease): only the leader writes.
async fn require_serving(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !*state.serving.borrow() {
        return standby().into_response();
    }
    next.run(req).await
}

fn standby() -> ApiError {
    ApiError::unavailable(
        "this replica is a standby without the leader lease; retry (the leader serves the data plane)",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; GET /openapi.json lists the endpoints",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route (see the Allow header)",
    )
}

async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi.clone(),
    )
        .into_response()
}

fn body_rejection(r: BytesRejection, limits: &Limits) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} bytes",
                limits.max_body_bytes
            ),
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "could not read the request body")
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("invalid path parameter: {}", r.body_text()),
    )
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("invalid query string: {}", r.body_text()),
    )
}

/// Reads a JSON-object body: 415 for another content type, 413 when too large, 400 when
/// malformed.
fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limits: &Limits,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let body = body.map_err(|r| body_rejection(r, limits))?;
    input::require_json(headers)?;
    input::json_object(&body)
}

/// `POST /v1/events`: 202 `{"accepted": 1}` once the event is stored and matched against
/// every journey (entries, exits, waits); deliveries follow as the scheduler advances.
async fn ingest_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let e = input::event(json_body(&headers, body, &state.limits)?, "")?;
    state
        .dataplane
        .ingest_event(&e.profile_id, &e.name, e.payload)
        .await
        .map_err(engine_error)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: 1 })))
}

/// `POST /v1/events/batch`: every item is validated before any is ingested; then the events
/// are ingested in order in one transaction. An engine failure answers 5xx and nothing of the
/// batch was written.
async fn ingest_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let events = input::batch(
        json_body(&headers, body, &state.limits)?,
        state.limits.max_batch_events,
    )?;
    let total = events.len();
    let events = events
        .into_iter()
        .map(|e| NewEvent {
            profile_id: e.profile_id,
            name: e.name,
            payload: e.payload,
        })
        .collect();
    // One transaction: the batch is ingested whole or not at all, so a failed batch is
    // simply sent again.
    state
        .dataplane
        .ingest_events(events)
        .await
        .map_err(engine_error)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: total })))
}

/// `PUT /v1/profiles/{profileId}`: 204; the attributes replace the stored ones.
async fn upsert_profile(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(path_rejection)?;
    input::identifier(&id, "profileId")?;
    let attributes = input::profile_attributes(json_body(&headers, body, &state.limits)?)?;
    state
        .dataplane
        .upsert_profile(&id, attributes)
        .await
        .map_err(engine_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/deliveries?journey=ns/name&profile=id&limit=n`: oldest first.
async fn list_deliveries(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<DeliveryList>, ApiError> {
    let Query(pairs) = query.map_err(query_rejection)?;
    let q = QueryParams::new(&pairs, &["journey", "profile", "limit"])?;
    let journey = q
        .get("journey")
        .map(|j| input::journey_key(j, "journey"))
        .transpose()?;
    let profile = q.get("profile");
    if let Some(p) = profile {
        input::identifier(p, "profile")?;
    }
    let limit = input::limit(
        q.get("limit"),
        DEFAULT_DELIVERIES_LIMIT,
        MAX_DELIVERIES_LIMIT,
    )?;
    let deliveries = state
        .dataplane
        .list_deliveries(journey.as_deref(), profile, Some(limit))
        .await
        .map_err(engine_error)?;
    Ok(Json(DeliveryList {
        deliveries: deliveries.into_iter().map(DeliveryOut::from).collect(),
    }))
}

/// `GET /v1/journeys/{namespace}/{name}/runs?limit=n`: newest first; 404 for an unknown journey.
async fn run_history(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Path((namespace, name)) = path.map_err(path_rejection)?;
    let key = input::journey_key(&format!("{namespace}/{name}"), "journey")?;
    let Query(pairs) = query.map_err(query_rejection)?;
    let q = QueryParams::new(&pairs, &["limit"])?;
    let limit = input::limit(q.get("limit"), DEFAULT_RUNS_LIMIT, MAX_RUNS_LIMIT)?;
    let runs = state
        .dataplane
        .run_history(&key, limit)
        .await
        .map_err(engine_error)?;
    Ok(Json(RunList { runs }))
}

/// `GET /v1/journeys/{namespace}/{name}/enrollments?profile=id&after=n&limit=n`: where each
/// profile is in the journey (step, state, due time), oldest entry first, keyset-paged.
async fn list_enrollments(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<EnrollmentList>, ApiError> {
    let Path((namespace, name)) = path.map_err(path_rejection)?;
    let key = input::journey_key(&format!("{namespace}/{name}"), "journey")?;
    let Query(pairs) = query.map_err(query_rejection)?;
    let q = QueryParams::new(&pairs, &["profile", "after", "limit"])?;
    let profile = q.get("profile");
    if let Some(p) = profile {
        input::identifier(p, "profile")?;
    }
    let after = input::cursor(q.get("after"), "after")?;
    let limit = input::limit(
        q.get("limit"),
        DEFAULT_ENROLLMENTS_LIMIT,
        MAX_ENROLLMENTS_LIMIT,
    )?;
    let enrollments = state
        .dataplane
        .enrollments(&key, profile, after, limit)
        .await
        .map_err(engine_error)?;
    let next_after = (enrollments.len() as i64 == limit)
        .then(|| enrollments.last().map(|e| e.id))
        .flatten();
    Ok(Json(EnrollmentList {
        enrollments,
        next_after,
    }))
}

/// `POST /v1/journeys/{namespace}/{name}/filter-matches` with `{"filter": "..."}`: how many of
/// the journey's in-flight profiles the candidate global filter matches right now (what
/// `plan --cluster` reports before a pull request sets it). Read-only; 400 with `field:
/// "filter"` when the filter is refused (too deep or too large for the expression limits, a
/// syntax error, a variable other than `profile`, a result that is never a boolean), 404 for
/// an unknown journey.
async fn filter_matches(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::engine::FilterMatches>, ApiError> {
    let Path((namespace, name)) = path.map_err(path_rejection)?;
    let key = input::journey_key(&format!("{namespace}/{name}"), "journey")?;
    let filter = input::filter(json_body(&headers, body, &state.limits)?)?;
    let matches = state
        .dataplane
        .filter_matches(&key, &filter)
        .await
        .map_err(|e| match e {
            EngineError::CelCompile { .. } => ApiError::bad_field("filter", e.to_string()),
            e => engine_error(e),
        })?;
    Ok(Json(matches))
}
