//! The one error enum of the storage boundary. Each error says whether trying again may help and
//! what to tell a user.

use std::path::PathBuf;
use std::time::Duration;

use streambot_core::quantity_text::format_size;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "user {user_id} would exceed the disk quota: {used_bytes} bytes used, {needed_bytes} more needed, quota {quota_bytes} bytes"
    )]
    QuotaExceeded {
        user_id: i64,
        used_bytes: u64,
        needed_bytes: u64,
        quota_bytes: u64,
    },
    #[error("{path} is {size_bytes} bytes; {backend} accepts at most {limit_bytes} bytes")]
    TooLarge {
        backend: &'static str,
        path: PathBuf,
        size_bytes: u64,
        limit_bytes: u64,
    },
    #[error("{what} was not found")]
    NotFound { what: String },
    #[error("user {requester_user_id} may not delete files of user {owner_user_id}")]
    Forbidden {
        requester_user_id: i64,
        owner_user_id: i64,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not reach {backend}: {detail}")]
    Network {
        backend: &'static str,
        detail: String,
    },
    #[error("{backend} answered HTTP {status}: {detail}")]
    HttpStatus {
        backend: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{backend} asks to wait {retry_after:?} before the next request")]
    RateLimited {
        backend: &'static str,
        retry_after: Duration,
    },
    #[error("{backend} refused the credentials: {detail}")]
    Authentication {
        backend: &'static str,
        detail: String,
    },
    #[error("{backend} sent an answer streambot cannot use: {detail}")]
    InvalidResponse {
        backend: &'static str,
        detail: String,
    },
    #[error("the {backend} credentials are unusable: {detail}")]
    Credentials {
        backend: &'static str,
        detail: String,
    },
    #[error(
        "uploading to {backend} failed after {attempts} attempts; the file stays at {local_path}: {last_error}"
    )]
    UploadFailed {
        backend: &'static str,
        attempts: u32,
        local_path: PathBuf,
        #[source]
        last_error: Box<StorageError>,
    },
}

impl StorageError {
    /// True when the same operation may succeed later (network trouble, 5xx, 429, 408).
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Network { .. } | StorageError::RateLimited { .. } => true,
            StorageError::HttpStatus { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            StorageError::QuotaExceeded { .. }
            | StorageError::TooLarge { .. }
            | StorageError::NotFound { .. }
            | StorageError::Forbidden { .. }
            | StorageError::Io { .. }
            | StorageError::Authentication { .. }
            | StorageError::InvalidResponse { .. }
            | StorageError::Credentials { .. }
            | StorageError::UploadFailed { .. } => false,
        }
    }

    /// A short, specific sentence for the person whose recording this is.
    pub fn user_message(&self) -> String {
        match self {
            StorageError::QuotaExceeded {
                used_bytes,
                needed_bytes,
                quota_bytes,
                ..
            } => format!(
                "Your storage is full: {} used of your {} quota, and this part needs {} more. Delete old recordings to make room.",
                format_size(*used_bytes),
                format_size(*quota_bytes),
                format_size(*needed_bytes)
            ),
            StorageError::TooLarge {
                backend,
                size_bytes,
                limit_bytes,
                ..
            } => format!(
                "The file is too large for {backend}: {} (the limit is {}).",
                format_size(*size_bytes),
                format_size(*limit_bytes)
            ),
            StorageError::NotFound { .. } => "That file was not found.".to_string(),
            StorageError::Forbidden { .. } => {
                "You can only delete your own recordings.".to_string()
            }
            StorageError::Io { .. } => {
                "The server could not read or write the recording on its disk.".to_string()
            }
            StorageError::Network { backend, .. } | StorageError::HttpStatus { backend, .. } => {
                format!("{backend} could not be reached; the upload will be tried again.")
            }
            StorageError::RateLimited {
                backend,
                retry_after,
            } => format!(
                "{backend} asked to slow down; trying again in {} s.",
                retry_after.as_secs().max(1)
            ),
            StorageError::Authentication { backend, .. }
            | StorageError::Credentials { backend, .. } => format!(
                "The bot's {backend} account is not set up correctly; an admin has to fix it."
            ),
            StorageError::InvalidResponse { backend, .. } => {
                format!("{backend} sent an unexpected answer.")
            }
            StorageError::UploadFailed {
                backend,
                attempts,
                local_path,
                last_error,
            } => format!(
                "The upload to {backend} failed ({} attempt{}: {}). The recording is kept on the server at {}.",
                attempts,
                if *attempts == 1 { "" } else { "s" },
                last_error.user_message().trim_end_matches('.'),
                local_path.display()
            ),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StorageError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn network(backend: &'static str, error: reqwest::Error) -> Self {
        StorageError::Network {
            backend,
            detail: describe_reqwest_error(error),
        }
    }

    /// The same error with every occurrence of each secret (a bot token, a client secret, a
    /// refresh token, a private key) replaced by `[redacted]`, in every text it carries.
    pub fn redact_secrets(self, secrets: &[&str]) -> Self {
        let clean = |text: String| redact_secrets_in_text(&text, secrets);
        match self {
            StorageError::NotFound { what } => StorageError::NotFound { what: clean(what) },
            StorageError::Network { backend, detail } => StorageError::Network {
                backend,
                detail: clean(detail),
            },
            StorageError::HttpStatus {
                backend,
                status,
                detail,
            } => StorageError::HttpStatus {
                backend,
                status,
                detail: clean(detail),
            },
            StorageError::Authentication { backend, detail } => StorageError::Authentication {
                backend,
                detail: clean(detail),
            },
            StorageError::InvalidResponse { backend, detail } => StorageError::InvalidResponse {
                backend,
                detail: clean(detail),
            },
            StorageError::Credentials { backend, detail } => StorageError::Credentials {
                backend,
                detail: clean(detail),
            },
            StorageError::UploadFailed {
                backend,
                attempts,
                local_path,
                last_error,
            } => StorageError::UploadFailed {
                backend,
                attempts,
                local_path,
                last_error: Box::new(last_error.redact_secrets(secrets)),
            },
            other @ (StorageError::QuotaExceeded { .. }
            | StorageError::TooLarge { .. }
            | StorageError::Forbidden { .. }
            | StorageError::Io { .. }
            | StorageError::RateLimited { .. }) => other,
        }
    }
}

/// Shortest secret that is replaced: anything shorter would turn ordinary words into
/// `[redacted]` and is no real credential anyway.
const MINIMUM_REDACTED_SECRET_LENGTH: usize = 6;

/// `text` with each secret (and its URL-encoded form) replaced by `[redacted]`.
pub fn redact_secrets_in_text(text: &str, secrets: &[&str]) -> String {
    let mut redacted = text.to_string();
    for secret in secrets {
        let secret = secret.trim();
        if secret.len() < MINIMUM_REDACTED_SECRET_LENGTH {
            continue;
        }
        redacted = redacted.replace(secret, "[redacted]");
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != secret {
            redacted = redacted.replace(&encoded, "[redacted]");
        }
    }
    redacted
}

/// The error and its sources in one line (reqwest's own Display hides the cause), without the
/// request's URL: a Bot API URL carries the token, a Drive session URL grants the upload.
pub(crate) fn describe_reqwest_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    let mut depth = 0;
    while let Some(cause) = source {
        if depth >= 5 {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    text
}

/// The HTTP client of a backend: a short connect timeout, a long one for the whole request.
pub(crate) fn build_http_client(
    backend: &'static str,
    request_timeout: std::time::Duration,
) -> Result<reqwest::Client, StorageError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(request_timeout)
        // Drive's resumable upload answers 308 without a Location: never a redirect to follow.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| StorageError::Credentials {
            backend,
            detail: format!("could not build the HTTP client: {error}"),
        })
}
