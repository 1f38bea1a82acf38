//! The handlers of the JSON API, each with its OpenAPI description.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use streambot_core::url_redaction::redact_url_text;
use streambot_core::{DesiredJobState, Job, JobId, JobState};
use streambot_store::{JobBackend, JobFilter};
use utoipa::{IntoParams, ToSchema};

use crate::DashboardState;
use crate::error::{DashboardError, ErrorBody};
use crate::job_files::{JobFiles, read_job_files};
use crate::observe::{HistorySample, StoreSnapshot, SystemSnapshot};
use crate::prometheus_metrics::{METRICS_CONTENT_TYPE, render_metrics};

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAXIMUM_PAGE_SIZE: usize = 500;
pub const MAXIMUM_OFFSET: usize = 1_000_000;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    /// queued, starting, recording, paused, finalizing, uploading, completed, failed, cancelled
    pub state: String,
    /// record, pause or stop: what the owner asked for.
    pub desired_state: String,
    pub user_id: i64,
    pub chat_id: i64,
    /// The link without its userinfo (`user:password@`) and secret-looking query values.
    pub url: String,
    pub priority: String,
    pub attempt: u32,
    pub parts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Since the job started (to its end when finished); 0 while queued.
    pub elapsed_seconds: f64,
    pub media_seconds: f64,
    pub bytes_written: u64,
    pub bitrate_bits_per_second: f64,
    pub segments_written: u64,
    pub gap_segments: u64,
    pub gap_seconds: f64,
    /// The worker holding the job's lease.
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl JobView {
    pub fn from_job(job: &Job, now: DateTime<Utc>) -> JobView {
        let elapsed_seconds = match job.started_at {
            Some(started_at) => {
                let end = job.finished_at.unwrap_or(now);
                ((end - started_at).num_milliseconds().max(0) as f64) / 1000.0
            }
            None => 0.0,
        };
        JobView {
            id: job.id.to_string(),
            state: job.state.as_str().to_string(),
            desired_state: job.desired_state.to_string(),
            user_id: job.owner.user_id,
            chat_id: job.owner.chat_id,
            // The operator sees the link without its password or token (issue 11).
            url: redact_url_text(&job.url),
            priority: job.priority.queue_name().to_string(),
            attempt: job.attempt,
            parts: job.parts,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            elapsed_seconds,
            media_seconds: job.progress.media_seconds,
            bytes_written: job.progress.bytes_written,
            bitrate_bits_per_second: job.progress.bitrate_bits_per_second(),
            segments_written: job.progress.segments_written,
            gap_segments: job.progress.gap_segments,
            gap_seconds: job.progress.gap_seconds,
            worker_id: job.worker_id().map(str::to_string),
            lease_expires_at: job.lease.as_ref().map(|lease| lease.expires_at),
            error: job.error.as_deref().map(redact_url_text),
        }
    }
}

/// `GET /jobs` parameters (all optional).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListJobsQuery {
    /// One state or several separated by commas, e.g. `recording,paused`.
    pub state: Option<String>,
    /// The owner's Telegram user id.
    pub user: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<String>,
    /// Jobs to skip, newest first (default 0).
    pub offset: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobListResponse {
    pub jobs: Vec<JobView>,
    pub offset: usize,
    pub limit: usize,
    /// Whether there are jobs past this page.
    pub has_more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetailResponse {
    pub job: JobView,
    pub files: JobFiles,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub generated_at: DateTime<Utc>,
    pub store: StoreSnapshot,
    pub system: SystemSnapshot,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub sample_interval_seconds: u64,
    /// Oldest first, up to one hour.
    pub samples: Vec<HistorySample>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`
    pub status: String,
}

fn parse_job_id(text: &str) -> Result<JobId, DashboardError> {
    text.parse::<JobId>()
        .map_err(|_| DashboardError::InvalidJobId {
            given: text.chars().take(32).collect(),
        })
}

fn parse_count(
    parameter: &'static str,
    text: Option<&str>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, DashboardError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.trim().parse::<usize>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(DashboardError::InvalidParameter {
            parameter,
            reason: format!("a whole number from {} to {}", range.start(), range.end()),
        }),
    }
}

/// The filter and page a `GET /jobs` query asks for.
pub fn parse_list_query(
    query: &ListJobsQuery,
) -> Result<(JobFilter, usize, usize), DashboardError> {
    let mut states = Vec::new();
    if let Some(text) = &query.state {
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let state = name
                .parse::<JobState>()
                .map_err(|_| DashboardError::InvalidParameter {
                    parameter: "state",
                    reason: "one or more of queued, starting, recording, paused, finalizing, uploading, completed, failed, cancelled".to_string(),
                })?;
            if !states.contains(&state) {
                states.push(state);
            }
        }
    }
    let owner_user_id = match &query.user {
        None => None,
        Some(text) => {
            Some(
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| DashboardError::InvalidParameter {
                        parameter: "user",
                        reason: "a Telegram user id (a whole number)".to_string(),
                    })?,
            )
        }
    };
    let limit = parse_count(
        "limit",
        query.limit.as_deref(),
        DEFAULT_PAGE_SIZE,
        1..=MAXIMUM_PAGE_SIZE,
    )?;
    let offset = parse_count("offset", query.offset.as_deref(), 0, 0..=MAXIMUM_OFFSET)?;
    let filter = JobFilter {
        states,
        owner_user_id,
        // One more than the page, to tell whether there is a next one.
        limit: Some(offset + limit + 1),
    };
    Ok((filter, limit, offset))
}

/// Lists jobs, newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    params(ListJobsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of jobs", body = JobListResponse),
        (status = 400, description = "A bad parameter (invalid_parameter)", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token (unauthorized)", body = ErrorBody),
        (status = 503, description = "The store is not answering (store_unavailable)", body = ErrorBody),
    )
)]
pub async fn list_jobs<B: JobBackend>(
    State(state): State<DashboardState<B>>,
    Query(query): Query<ListJobsQuery>,
) -> Result<Json<JobListResponse>, DashboardError> {
    let (filter, limit, offset) = parse_list_query(&query)?;
    let jobs = state.shared.backend.list_jobs(filter).await?;
    let now = Utc::now();
    let has_more = jobs.len() > offset + limit;
    let page = jobs
        .iter()
        .skip(offset)
        .take(limit)
        .map(|job| JobView::from_job(job, now))
        .collect();
    Ok(Json(JobListResponse {
        jobs: page,
        offset,
        limit,
        has_more,
    }))
}

/// One job with what it left on disk: parts, ledger summary, gaps, finished files.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id, 8 hexadecimal characters")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = JobDetailResponse),
        (status = 400, description = "Not a job id (invalid_job_id)", body = ErrorBody),
        (status = 401, description = "Unauthorized", body = ErrorBody),
        (status = 404, description = "No such job (job_not_found)", body = ErrorBody),
    )
)]
pub async fn get_job<B: JobBackend>(
    State(state): State<DashboardState<B>>,
    Path(id): Path<String>,
) -> Result<Json<JobDetailResponse>, DashboardError> {
    let job_id = parse_job_id(&id)?;
    let job =
        state
            .shared
            .backend
            .get_job(job_id)
            .await?
            .ok_or_else(|| DashboardError::JobNotFound {
                job_id: job_id.to_string(),
            })?;
    let directory =
        streambot_core::job_directory(&state.shared.settings.recordings_directory, job_id);
    let files = tokio::task::spawn_blocking(move || read_job_files(&directory))
        .await
        .unwrap_or_default();
    Ok(Json(JobDetailResponse {
        job: JobView::from_job(&job, Utc::now()),
        files,
    }))
}

async fn set_desired<B: JobBackend>(
    state: &DashboardState<B>,
    id: &str,
    desired: DesiredJobState,
) -> Result<Json<JobView>, DashboardError> {
    let job_id = parse_job_id(id)?;
    let job = state
        .shared
        .backend
        .set_desired_state(job_id, desired)
        .await?;
    tracing::info!(job_id = %job_id, desired = %desired, "dashboard: desired state set");
    Ok(Json(JobView::from_job(&job, Utc::now())))
}

/// Asks the job to stop: the worker finishes the segment in flight and finalizes. A queued job
/// is cancelled.
#[utoipa::path(
    post,
    path = "/jobs/{id}/stop",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job, desired state stop", body = JobView),
        (status = 401, description = "Unauthorized", body = ErrorBody),
        (status = 404, description = "No such job (job_not_found)", body = ErrorBody),
        (status = 409, description = "The job is finished (not_applicable)", body = ErrorBody),
    )
)]
pub async fn stop_job<B: JobBackend>(
    State(state): State<DashboardState<B>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, DashboardError> {
    set_desired(&state, &id, DesiredJobState::Stop).await
}

/// Asks the job to pause (the paused span is absent from the recording).
#[utoipa::path(
    post,
    path = "/jobs/{id}/pause",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job, desired state pause", body = JobView),
        (status = 401, description = "Unauthorized", body = ErrorBody),
        (status = 404, description = "No such job (job_not_found)", body = ErrorBody),
        (status = 409, description = "The job is finished (not_applicable)", body = ErrorBody),
    )
)]
pub async fn pause_job<B: JobBackend>(
    State(state): State<DashboardState<B>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, DashboardError> {
    set_desired(&state, &id, DesiredJobState::Pause).await
}

/// Asks a paused job to record again (a new part).
#[utoipa::path(
    post,
    path = "/jobs/{id}/resume",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job, desired state record", body = JobView),
        (status = 401, description = "Unauthorized", body = ErrorBody),
        (status = 404, description = "No such job (job_not_found)", body = ErrorBody),
        (status = 409, description = "The job is finished (not_applicable)", body = ErrorBody),
    )
)]
pub async fn resume_job<B: JobBackend>(
    State(state): State<DashboardState<B>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, DashboardError> {
    set_desired(&state, &id, DesiredJobState::Record).await
}

async fn system_snapshot<B: JobBackend>(state: &DashboardState<B>) -> SystemSnapshot {
    let shared = Arc::clone(&state.shared);
    tokio::task::spawn_blocking(move || shared.system.snapshot())
        .await
        .unwrap_or_default()
}

/// Jobs by state, active recordings, queue depth, per-worker load, disk, CPU and memory.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "stats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The numbers", body = StatsResponse),
        (status = 401, description = "Unauthorized", body = ErrorBody),
        (status = 503, description = "The store is not answering", body = ErrorBody),
    )
)]
pub async fn stats<B: JobBackend>(
    State(state): State<DashboardState<B>>,
) -> Result<Json<StatsResponse>, DashboardError> {
    let now = Utc::now();
    let (store, _) = StoreSnapshot::read(
        &state.shared.backend,
        now,
        state.shared.settings.worker_lease_duration,
    )
    .await?;
    let system = system_snapshot(&state).await;
    Ok(Json(StatsResponse {
        generated_at: now,
        store,
        system,
    }))
}

/// Samples of active recordings and disk usage over the last hour, for the charts.
#[utoipa::path(
    get,
    path = "/stats/history",
    tag = "stats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Oldest first", body = HistoryResponse),
        (status = 401, description = "Unauthorized", body = ErrorBody),
    )
)]
pub async fn stats_history<B: JobBackend>(
    State(state): State<DashboardState<B>>,
) -> Json<HistoryResponse> {
    let samples = state
        .shared
        .history
        .lock()
        .map(|history| history.samples())
        .unwrap_or_default();
    Json(HistoryResponse {
        sample_interval_seconds: state.shared.settings.history_sample_interval.as_secs(),
        samples,
    })
}

/// Prometheus text format: jobs by state, active recordings, queue depth, segments, gaps, bytes,
/// uploads, disk, worker heartbeat age.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "stats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "text/plain; version=0.0.4", body = String, content_type = "text/plain"),
        (status = 401, description = "Unauthorized", body = ErrorBody),
    )
)]
pub async fn metrics<B: JobBackend>(
    State(state): State<DashboardState<B>>,
) -> Result<Response, DashboardError> {
    let (store, live_jobs) = StoreSnapshot::read(
        &state.shared.backend,
        Utc::now(),
        state.shared.settings.worker_lease_duration,
    )
    .await?;
    let system = system_snapshot(&state).await;
    let text = render_metrics(&live_jobs, &store, &system, &state.shared.counters);
    Ok((
        [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        text,
    )
        .into_response())
}

/// 200 when the job store answers, else 503. No authentication.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "The store answers", body = HealthResponse),
        (status = 503, description = "The store does not answer (store_unavailable)", body = ErrorBody),
    )
)]
pub async fn health<B: JobBackend>(State(state): State<DashboardState<B>>) -> Response {
    // A point lookup of an id that is never issued: one round trip, whatever the store's size.
    let probe = state.shared.backend.get_job(JobId::from_u32(0));
    match tokio::time::timeout(state.shared.settings.health_timeout, probe).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            Json(HealthResponse {
                status: "ok".to_string(),
            }),
        )
            .into_response(),
        Ok(Err(error)) => DashboardError::StoreUnavailable {
            detail: error.to_string(),
        }
        .into_response(),
        Err(_) => DashboardError::StoreUnavailable {
            detail: "timed out".to_string(),
        }
        .into_response(),
    }
}
