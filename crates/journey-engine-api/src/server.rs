//! The engine API's routes over any [`JourneyEngine`]:
//!
//! | method | path | answers |
//! | --- | --- | --- |
//! | `PUT` | `/v1/journeys/{namespace}/{name}` | 200 [`JourneyPutResponse`] |
//! | `GET` | `/v1/journeys/{namespace}/{name}` | 200 [`JourneyGetResponse`], 404 |
//! | `DELETE` | `/v1/journeys/{namespace}/{name}` | 200 [`JourneyDeleteResponse`] (stops, then removes) |
//! | `GET` | `/v1/changes?since=<revision>&waitSeconds=<0..60>` | 200 [`crate::v1::ChangesResponse`] (long poll), 410 `ResyncRequired` |
//! | `GET` | `/v1/changes/revision` | 200 [`FeedRevision`] |
//! | `POST` | `/v1/test/clock/advance` | 200 [`ClockNow`] (only on an engine started with a virtual clock) |
//! | `GET` | `/openapi.json` | 200, public |
//!
//! Every `/v1` route needs the engine credential ([`Authorizer`]); errors are
//! [`crate::v1::ErrorBody`] with a stable [`ErrorCode`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use journey_engine::{EngineError, JourneyEngine};
use serde::Deserialize;
use tokio::sync::watch;

use crate::errors::to_wire;
use crate::v1::{
    ClockAdvance, ClockNow, ErrorBody, ErrorCode, FeedRevision, JourneyDeleteResponse,
    JourneyGetResponse, JourneyPut, JourneyPutResponse,
};

/// Largest request body accepted (a journey definition is a few KiB; the CRD caps a Journey
/// far below this).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest a `GET /v1/changes` waits for a change.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// The routes, for `crate::openapi` and its test.
pub const ROUTES: &[(&str, &str)] = &[
    ("PUT", "/v1/journeys/{namespace}/{name}"),
    ("GET", "/v1/journeys/{namespace}/{name}"),
    ("DELETE", "/v1/journeys/{namespace}/{name}"),
    ("GET", "/v1/changes"),
    ("GET", "/v1/changes/revision"),
    ("POST", "/v1/test/clock/advance"),
    ("GET", "/openapi.json"),
];

/// The verdict on a presented credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Allowed,
    /// 401: no credential, or not one this server knows.
    Unauthorized(String),
    /// 403: a valid credential for something else (say which).
    Forbidden(String),
    /// 503: the server cannot check credentials now (its token file is unreadable).
    Unavailable(String),
}

/// Judges the bearer token of a request (`None`: no `Authorization: Bearer` header).
pub type Authorizer = Arc<dyn Fn(Option<&str>) -> Authorization + Send + Sync>;

/// Moves a virtual clock forward, runs the engine until nothing more is due, and returns the
/// new time (tests drive the engine's time through HTTP with it: when the answer comes, every
/// step due by then has run, so a test never waits on the scheduler's timing).
pub type ClockAdvancer = Arc<
    dyn Fn(i64) -> journey_engine::BoxFuture<std::result::Result<i64, EngineError>> + Send + Sync,
>;

/// Told of every answered request: the route template and the status (for metrics).
pub type RequestObserver = Arc<dyn Fn(&str, u16) + Send + Sync>;

pub struct ServerOptions {
    pub authorizer: Authorizer,
    pub observer: Option<RequestObserver>,
    /// `false`: this replica is a standby; every `/v1` route answers 503.
    pub serving: watch::Receiver<bool>,
    /// Only for an engine started with a virtual clock.
    pub clock: Option<ClockAdvancer>,
}

#[derive(Clone)]
struct AppState {
    observer: Option<RequestObserver>,
    /// The cluster id this engine was found or made to serve, once known: later requests are
    /// compared in memory instead of in a transaction.
    cluster: Arc<std::sync::OnceLock<String>>,
    engine: Arc<dyn JourneyEngine>,
    authorizer: Authorizer,
    serving: watch::Receiver<bool>,
    clock: Option<ClockAdvancer>,
}

/// An error answer.
pub struct ApiError(pub ErrorBody);

impl ApiError {
    pub fn new(code: ErrorCode, error: impl Into<String>, field: Option<&str>) -> Self {
        ApiError(ErrorBody {
            code,
            error: error.into(),
            field: field.map(str::to_string),
            rule: None,
        })
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError(to_wire(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.code.status();
        let mut res = (status, axum::Json(self.0)).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"journey-engine\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(1u32));
            }
            _ => {}
        }
        res
    }
}

/// The engine API router.
pub fn router(engine: Arc<dyn JourneyEngine>, options: ServerOptions) -> Router {
    let state = AppState {
        observer: options.observer,
        cluster: Arc::default(),
        engine,
        authorizer: options.authorizer,
        serving: options.serving,
        clock: options.clock,
    };
    let v1 = Router::new()
        .route(
            "/v1/journeys/{namespace}/{name}",
            get(get_journey).put(put_journey).delete(delete_journey),
        )
        .route("/v1/changes", get(changes))
        .route("/v1/changes/revision", get(revision))
        .route("/v1/test/clock/advance", post(advance_clock))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .merge(v1)
        .route("/openapi.json", get(openapi))
        // After routing, so the route template is known; around authentication, so refused
        // requests count too.
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn openapi() -> axum::Json<serde_json::Value> {
    axum::Json(crate::openapi::document())
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route", None)
}

async fn method_not_allowed() -> ApiError {
    ApiError(ErrorBody {
        code: ErrorCode::InvalidRequest,
        error: "method not allowed on this path".into(),
        field: None,
        rule: None,
    })
}

async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string());
    let response = next.run(req).await;
    if let (Some(observer), Some(route)) = (&state.observer, route) {
        observer(&route, response.status().as_u16());
    }
    response
}

async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    match (state.authorizer)(presented.as_deref()) {
        Authorization::Allowed => {}
        Authorization::Unauthorized(m) => {
            return ApiError::new(ErrorCode::Unauthorized, m, None).into_response();
        }
        Authorization::Forbidden(m) => {
            return ApiError::new(ErrorCode::Forbidden, m, None).into_response();
        }
        Authorization::Unavailable(m) => {
            return ApiError::new(ErrorCode::Unavailable, m, None).into_response();
        }
    }
    if !*state.serving.borrow() {
        return ApiError::new(
            ErrorCode::Unavailable,
            "this replica is a standby; the leader serves the engine API",
            None,
        )
        .into_response();
    }
    if let Some(id) = req
        .headers()
        .get(crate::v1::CLUSTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    {
        match state.cluster.get() {
            Some(serving) if *serving == id => {}
            Some(serving) => {
                return ApiError::from(EngineError::WrongCluster {
                    serving: serving.clone(),
                    asked: id,
                })
                .into_response();
            }
            None => match state.engine.claim_cluster(&id).await {
                Ok(()) => {
                    let _ = state.cluster.set(id);
                }
                Err(e) => return ApiError::from(e).into_response(),
            },
        }
    }
    next.run(req).await
}

/// A Kubernetes-style name: what `namespace/name` keys are made of.
fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{field} must be a lowercase DNS name (a-z, 0-9, '-', '.'), at most 253 characters; got {value:?}"
            ),
            Some(field),
        ))
    }
}

fn key_of(namespace: &str, name: &str) -> Result<String, ApiError> {
    check_name("path.namespace", namespace)?;
    check_name("path.name", name)?;
    Ok(format!("{namespace}/{name}"))
}

/// The body, or 413 when it is larger than [`MAX_BODY_BYTES`].
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                Some("body"),
            )
        } else {
            ApiError::new(ErrorCode::InvalidRequest, e.body_text(), Some("body"))
        }
    })
}

/// A JSON body read strictly: not JSON, a wrong type or an unknown field is a 400 naming the
/// exact field.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the body must be JSON (Content-Type: application/json)",
            Some("body"),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::new(
            ErrorCode::InvalidRequest,
            e.inner().to_string(),
            Some(&field),
        )
    })
}

async fn put_journey(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<JourneyPutResponse>, ApiError> {
    let key = key_of(&namespace, &name)?;
    let put: JourneyPut = json_body(&headers, &body_bytes(body)?)?;
    let declared = state.engine.declare(&key, put.into_declaration()).await?;
    Ok(axum::Json(JourneyPutResponse {
        revision: declared.status.revision,
        status: declared.status,
        requests: declared.requests,
    }))
}

async fn get_journey(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<axum::Json<JourneyGetResponse>, ApiError> {
    let key = key_of(&namespace, &name)?;
    match state.engine.status(&key).await? {
        Some(status) => Ok(axum::Json(JourneyGetResponse {
            revision: status.revision,
            status,
        })),
        None => Err(EngineError::NotFound(key).into()),
    }
}

async fn delete_journey(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<axum::Json<JourneyDeleteResponse>, ApiError> {
    let key = key_of(&namespace, &name)?;
    let deleted = state.engine.delete(&key).await?;
    Ok(axum::Json(JourneyDeleteResponse { deleted }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangesQuery {
    since: i64,
    #[serde(default)]
    wait_seconds: Option<u64>,
}

async fn changes(
    State(state): State<AppState>,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text(), Some("query")))?;
    let wait = query.wait_seconds.unwrap_or(30);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("waitSeconds must be at most {MAX_WAIT_SECONDS}"),
            Some("query.waitSeconds"),
        ));
    }
    let page = state
        .engine
        .changes_since(query.since, Duration::from_secs(wait))
        .await?;
    Ok(axum::Json(page).into_response())
}

async fn revision(State(state): State<AppState>) -> Result<axum::Json<FeedRevision>, ApiError> {
    Ok(axum::Json(FeedRevision {
        revision: state.engine.feed_revision().await?,
    }))
}

/// The most one advance may move the clock (400 days).
const MAX_ADVANCE_MS: i64 = 400 * 24 * 3_600_000;

async fn advance_clock(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<ClockNow>, ApiError> {
    let body = body_bytes(body)?;
    let Some(clock) = &state.clock else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "this engine runs on the system clock (start it with --virtual-clock to move time)",
            None,
        ));
    };
    let advance: ClockAdvance = json_body(&headers, &body)?;
    if !(0..=MAX_ADVANCE_MS).contains(&advance.millis) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("millis must be between 0 and {MAX_ADVANCE_MS}"),
            Some("millis"),
        ));
    }
    let now = clock(advance.millis).await?;
    Ok(axum::Json(ClockNow { now }))
}
