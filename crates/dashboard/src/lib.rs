//! The operator's dashboard: an axum admin API under bearer auth (`DASHBOARD_SECRET`), its
//! OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`, assets bundled), Prometheus
//! metrics (`/metrics`), and a live web page (`/`) served from the binary.
//!
//! - [`settings`]: `DASHBOARD_SECRET` (16 characters at least), `DASHBOARD_BIND`, rate limit.
//! - [`api`]: the handlers: jobs, job detail, stop/pause/resume, stats, history, metrics, health.
//! - [`job_files`]: a job's directory read for the API (parts, ledger summary, gaps, finished).
//! - [`observe`]: store snapshot, machine snapshot, event counters, the hour of history.
//! - [`prometheus_metrics`]: `/metrics` through the `prometheus-client` crate.
//!
//! [`serve_dashboard`] takes its listener and a shutdown token; it also runs the event counter
//! and the history sampler until the token is cancelled.

pub mod api;
pub mod client_limits;
pub mod error;
pub mod job_files;
pub mod observe;
pub mod prometheus_metrics;
pub mod settings;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use streambot_store::JobBackend;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

pub use error::DashboardError;
pub use settings::{
    DEFAULT_BIND_ADDRESS, DashboardSecret, DashboardSettings, parse_bind_address, parse_rate_limit,
};

use crate::client_limits::{Admission, ClientLimits};
use crate::observe::{
    EventCounters, HistorySample, StatsHistory, StoreSnapshot, SystemSampler, run_event_counter,
};

pub(crate) struct SharedState<B> {
    pub(crate) backend: B,
    pub(crate) settings: DashboardSettings,
    pub(crate) counters: Arc<EventCounters>,
    pub(crate) system: SystemSampler,
    pub(crate) history: Mutex<StatsHistory>,
    client_limits: ClientLimits,
}

/// Everything the handlers share.
pub struct DashboardState<B> {
    pub(crate) shared: Arc<SharedState<B>>,
}

impl<B> Clone for DashboardState<B> {
    fn clone(&self) -> Self {
        DashboardState {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: JobBackend> DashboardState<B> {
    pub fn new(backend: B, settings: DashboardSettings) -> DashboardState<B> {
        DashboardState {
            shared: Arc::new(SharedState {
                system: SystemSampler::new(settings.recordings_directory.clone()),
                history: Mutex::new(StatsHistory::for_one_hour(settings.history_sample_interval)),
                client_limits: ClientLimits::new(
                    settings.rate_limit_per_second,
                    settings.rate_limit_burst,
                    settings.free_failed_logins,
                ),
                counters: Arc::new(EventCounters::default()),
                backend,
                settings,
            }),
        }
    }

    pub fn settings(&self) -> &DashboardSettings {
        &self.shared.settings
    }
}

struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "streambot dashboard",
        description = "Admin API of streambot: jobs, control, stats, metrics. Every route but /health needs `Authorization: Bearer <DASHBOARD_SECRET>`."
    ),
    paths(
        api::list_jobs,
        api::get_job,
        api::stop_job,
        api::pause_job,
        api::resume_job,
        api::stats,
        api::stats_history,
        api::metrics,
        api::health,
    ),
    modifiers(&BearerSecurity),
    tags(
        (name = "jobs", description = "Recording jobs and their control"),
        (name = "stats", description = "Numbers for people and for Prometheus"),
        (name = "health", description = "Liveness of the store"),
    )
)]
pub struct ApiDocument;

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDocument::openapi()
}

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index_page() -> Response {
    let mut response = static_asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn app_script() -> Response {
    static_asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_sheet() -> Response {
    static_asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn route_not_found() -> DashboardError {
    DashboardError::RouteNotFound
}

/// The address the request came from (the TCP peer); `0.0.0.0` when the router is driven
/// without a connection (in-process tests).
fn client_address(request: &Request) -> std::net::IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// Bearer auth: `Authorization: Bearer <secret>`, compared in constant time. 401 without detail.
/// Failed attempts are counted per address; past the free ones the address is locked out for a
/// doubling window (429 with `Retry-After`), during which even the right secret is refused.
async fn require_bearer<B: JobBackend>(
    State(state): State<DashboardState<B>>,
    request: Request,
    next: Next,
) -> Response {
    let address = client_address(&request);
    let limits = &state.shared.client_limits;
    if let Admission::LockedOut { retry_after } = limits.admit_login(address, Instant::now()) {
        return DashboardError::LoginLockedOut {
            retry_after_seconds: retry_after.as_secs().max(1),
        }
        .into_response();
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(token) if state.shared.settings.secret.matches(token.as_bytes()) => {
            limits.record_successful_login(address, Instant::now());
            next.run(request).await
        }
        _ => {
            if let Some(lockout) = limits.record_failed_login(address, Instant::now()) {
                tracing::warn!(
                    target: "streambot_dashboard::access",
                    %address,
                    lockout_seconds = lockout.as_secs_f64(),
                    "repeated failed dashboard logins: address locked out"
                );
            }
            DashboardError::Unauthorized.into_response()
        }
    }
}

/// Refuses bodies over the limit (by `Content-Length`; extractors enforce it on the rest) and
/// requests over their address's rate limit (`/health` excepted).
async fn limit_requests<B: JobBackend>(
    State(state): State<DashboardState<B>>,
    request: Request,
    next: Next,
) -> Response {
    let limit_bytes = state.shared.settings.body_limit_bytes;
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit_bytes as u64) {
        return DashboardError::PayloadTooLarge { limit_bytes }.into_response();
    }
    if request.uri().path() != "/health"
        && state
            .shared
            .client_limits
            .admit_request(client_address(&request), Instant::now())
            == Admission::RateLimited
    {
        return DashboardError::RateLimited.into_response();
    }
    next.run(request).await
}

/// One line per request: method, path (no query, no headers: the token is never logged),
/// status and duration.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().chars().take(200).collect::<String>();
    let response = next.run(request).await;
    tracing::info!(
        target: "streambot_dashboard::access",
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "dashboard request"
    );
    response
}

/// The whole application.
pub fn dashboard_router<B: JobBackend>(state: DashboardState<B>) -> Router {
    let protected = Router::new()
        .route("/jobs", get(api::list_jobs::<B>))
        .route("/jobs/{id}", get(api::get_job::<B>))
        .route("/jobs/{id}/stop", post(api::stop_job::<B>))
        .route("/jobs/{id}/pause", post(api::pause_job::<B>))
        .route("/jobs/{id}/resume", post(api::resume_job::<B>))
        .route("/stats", get(api::stats::<B>))
        .route("/stats/history", get(api::stats_history::<B>))
        .route("/metrics", get(api::metrics::<B>))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer::<B>,
        ));
    let body_limit = state.shared.settings.body_limit_bytes;
    Router::new()
        .route("/", get(index_page))
        .route("/assets/app.js", get(app_script))
        .route("/assets/style.css", get(style_sheet))
        .route("/health", get(api::health::<B>))
        .merge(protected)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi_document()))
        .fallback(route_not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit_requests::<B>,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn take_history_sample<B: JobBackend>(state: &DashboardState<B>) {
    let now = Utc::now();
    let store = match StoreSnapshot::read(
        &state.shared.backend,
        now,
        state.shared.settings.worker_lease_duration,
    )
    .await
    {
        Ok((store, _)) => store,
        Err(error) => {
            tracing::warn!(%error, "dashboard: no history sample, the store failed");
            return;
        }
    };
    let shared = Arc::clone(&state.shared);
    let system = tokio::task::spawn_blocking(move || shared.system.snapshot())
        .await
        .unwrap_or_default();
    if let Ok(mut history) = state.shared.history.lock() {
        history.push(HistorySample {
            at: now,
            active_recordings: store.active_recordings,
            recordings_bytes: system.recordings_bytes,
            filesystem_free_bytes: system.filesystem_free_bytes,
            filesystem_total_bytes: system.filesystem_total_bytes,
        });
    }
}

async fn run_history_sampler<B: JobBackend>(state: DashboardState<B>, shutdown: CancellationToken) {
    let interval_length = state
        .shared
        .settings
        .history_sample_interval
        .max(Duration::from_secs(1));
    let mut interval = tokio::time::interval(interval_length);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => take_history_sample(&state).await,
        }
    }
}

/// Serves the dashboard on `listener` until `shutdown` is cancelled, with the event counter and
/// the history sampler beside it.
pub async fn serve_dashboard<B: JobBackend>(
    listener: TcpListener,
    state: DashboardState<B>,
    shutdown: CancellationToken,
) -> Result<(), DashboardError> {
    let local_address: Option<SocketAddr> = listener.local_addr().ok();
    let background = shutdown.child_token();
    let counter = tokio::spawn(run_event_counter(
        state.shared.backend.clone(),
        Arc::clone(&state.shared.counters),
        background.clone(),
    ));
    let sampler = tokio::spawn(run_history_sampler(state.clone(), background.clone()));
    if let Some(address) = local_address {
        tracing::info!(%address, "dashboard listening");
    }
    let application = dashboard_router(state);
    let served = axum::serve(
        listener,
        application.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await;
    background.cancel();
    let _ = counter.await;
    let _ = sampler.await;
    served.map_err(DashboardError::Io)
}
