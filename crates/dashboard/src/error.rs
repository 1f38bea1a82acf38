//! The one error enum of the dashboard: every failure a client can see has a stable code and an
//! HTTP status, and is answered as `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use streambot_store::JobsError;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A setting that stops start-up (one line: variable, value, what is allowed).
    #[error("{variable}={shown_value} is not allowed: {allowed}")]
    InvalidSetting {
        variable: &'static str,
        /// Already safe to print (a secret is never shown).
        shown_value: String,
        allowed: &'static str,
    },
    #[error("unauthorized")]
    Unauthorized,
    #[error("{given:?} is not a job id (8 hexadecimal characters, like A3F2B1C9)")]
    InvalidJobId { given: String },
    #[error("query parameter {parameter}: {reason}")]
    InvalidParameter {
        parameter: &'static str,
        reason: String,
    },
    #[error("no job {job_id}")]
    JobNotFound { job_id: String },
    #[error("{message}")]
    NotApplicable { message: String },
    #[error("the job changed while we wrote it; try again")]
    Conflict,
    #[error("the job store is not answering")]
    StoreUnavailable { detail: String },
    #[error("too many requests; slow down")]
    RateLimited,
    #[error("too many failed logins from this address; try again in {retry_after_seconds} s")]
    LoginLockedOut { retry_after_seconds: u64 },
    #[error("the request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("no such route")]
    RouteNotFound,
    #[error("could not bind or serve: {0}")]
    Io(#[from] std::io::Error),
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `invalid_job_id`, `invalid_parameter`,
    /// `job_not_found`, `not_applicable`, `conflict`, `store_unavailable`, `rate_limited`,
    /// `payload_too_large`, `route_not_found`, `too_many_failed_logins`, `internal`.
    pub code: String,
    pub message: String,
}

impl DashboardError {
    pub fn code(&self) -> &'static str {
        match self {
            DashboardError::InvalidSetting { .. } => "invalid_setting",
            DashboardError::Unauthorized => "unauthorized",
            DashboardError::InvalidJobId { .. } => "invalid_job_id",
            DashboardError::InvalidParameter { .. } => "invalid_parameter",
            DashboardError::JobNotFound { .. } => "job_not_found",
            DashboardError::NotApplicable { .. } => "not_applicable",
            DashboardError::Conflict => "conflict",
            DashboardError::StoreUnavailable { .. } => "store_unavailable",
            DashboardError::RateLimited => "rate_limited",
            DashboardError::LoginLockedOut { .. } => "too_many_failed_logins",
            DashboardError::PayloadTooLarge { .. } => "payload_too_large",
            DashboardError::RouteNotFound => "route_not_found",
            DashboardError::Io(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            DashboardError::Unauthorized => StatusCode::UNAUTHORIZED,
            DashboardError::InvalidJobId { .. } | DashboardError::InvalidParameter { .. } => {
                StatusCode::BAD_REQUEST
            }
            DashboardError::JobNotFound { .. } | DashboardError::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            DashboardError::NotApplicable { .. } | DashboardError::Conflict => StatusCode::CONFLICT,
            DashboardError::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            DashboardError::RateLimited | DashboardError::LoginLockedOut { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            DashboardError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DashboardError::InvalidSetting { .. } | DashboardError::Io(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// What the client is told: never a store's internal detail.
    fn client_message(&self) -> String {
        match self {
            DashboardError::StoreUnavailable { .. } => {
                "the job store is not answering; try again shortly".to_string()
            }
            DashboardError::Io(_) | DashboardError::InvalidSetting { .. } => {
                "internal error".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl From<JobsError> for DashboardError {
    fn from(error: JobsError) -> Self {
        match error {
            JobsError::JobNotFound { job_id } => DashboardError::JobNotFound {
                job_id: job_id.to_string(),
            },
            JobsError::NotApplicable { .. } | JobsError::InvalidTransition(_) => {
                DashboardError::NotApplicable {
                    message: error.user_message(),
                }
            }
            JobsError::StateConflict { .. }
            | JobsError::TooMuchContention { .. }
            | JobsError::LeaseLost { .. } => DashboardError::Conflict,
            other => DashboardError::StoreUnavailable {
                detail: other.to_string(),
            },
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let DashboardError::StoreUnavailable { detail } = &self {
            tracing::warn!(%detail, "dashboard: the job store failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.client_message(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let DashboardError::LoginLockedOut {
            retry_after_seconds,
        } = &self
            && let Ok(value) = header::HeaderValue::from_str(&retry_after_seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
