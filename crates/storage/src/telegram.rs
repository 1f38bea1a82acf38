//! The Telegram channel backend: each part posted to `TELEGRAM_STORAGE_CHANNEL_ID` with a caption,
//! by `sendVideo` (thumbnail, size, duration, streaming) or `sendDocument` as the fallback, on an
//! upload client with a long timeout. Plain Bot API over reqwest multipart; no teloxide here.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::StorageError;
use crate::metadata::{PartMetadata, RemoteLocation};

pub(crate) const BACKEND_NAME: &str = "Telegram";
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
pub use streambot_core::{
    CLOUD_BOT_API_UPLOAD_LIMIT_BYTES as CLOUD_API_UPLOAD_LIMIT_BYTES,
    LOCAL_BOT_API_UPLOAD_LIMIT_BYTES as LOCAL_API_UPLOAD_LIMIT_BYTES,
};

#[derive(Clone)]
pub struct TelegramChannelConfig {
    /// `https://api.telegram.org`, or a local Bot API server.
    pub api_base_url: String,
    pub bot_token: String,
    /// `-1001234567890` or `@channelname`.
    pub channel_id: String,
    /// For one whole upload: a 2000 MB part takes minutes.
    pub upload_timeout: Duration,
}

impl std::fmt::Debug for TelegramChannelConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TelegramChannelConfig")
            .field("api_base_url", &self.api_base_url)
            .field("channel_id", &self.channel_id)
            .field("upload_timeout", &self.upload_timeout)
            .finish_non_exhaustive()
    }
}

impl TelegramChannelConfig {
    pub fn new(bot_token: impl Into<String>, channel_id: impl Into<String>) -> Self {
        TelegramChannelConfig {
            api_base_url: DEFAULT_API_URL.to_string(),
            bot_token: bot_token.into(),
            channel_id: channel_id.into(),
            upload_timeout: Duration::from_secs(60 * 60),
        }
    }

    /// 50 MB on the cloud Bot API, 2000 MB on a local Bot API server.
    pub fn upload_limit_bytes(&self) -> u64 {
        upload_limit_bytes_for(&self.api_base_url)
    }
}

pub fn upload_limit_bytes_for(api_base_url: &str) -> u64 {
    let parsed = url::Url::parse(api_base_url).ok();
    streambot_core::telegram_upload_limit_bytes(parsed.as_ref().and_then(|url| url.host_str()))
}

/// `https://t.me/c/1234567890/42` for a private channel `-1001234567890`, `https://t.me/name/42` for
/// `@name`; None for ids that have no message links (groups, users).
pub fn message_link(channel_id: &str, message_id: i64) -> Option<String> {
    if let Some(username) = channel_id.strip_prefix('@') {
        let valid = !username.is_empty()
            && username
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
        return valid.then(|| format!("https://t.me/{username}/{message_id}"));
    }
    let internal_id = channel_id.strip_prefix("-100")?;
    if internal_id.is_empty() || !internal_id.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(format!("https://t.me/c/{internal_id}/{message_id}"))
}

#[derive(Debug, Deserialize)]
struct BotApiResponse {
    ok: bool,
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    message_id: i64,
    #[serde(default)]
    video: Option<SentFile>,
    #[serde(default)]
    document: Option<SentFile>,
}

#[derive(Debug, Deserialize)]
struct SentFile {
    file_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendMethod {
    Video,
    Document,
}

impl SendMethod {
    fn api_method(self) -> &'static str {
        match self {
            SendMethod::Video => "sendVideo",
            SendMethod::Document => "sendDocument",
        }
    }

    fn file_field(self) -> &'static str {
        match self {
            SendMethod::Video => "video",
            SendMethod::Document => "document",
        }
    }
}

#[derive(Debug)]
pub struct TelegramChannelStore {
    config: TelegramChannelConfig,
    upload_client: reqwest::Client,
}

impl TelegramChannelStore {
    pub fn new(config: TelegramChannelConfig) -> Result<Self, StorageError> {
        let upload_client = crate::error::build_http_client(BACKEND_NAME, config.upload_timeout)?;
        Ok(TelegramChannelStore {
            config,
            upload_client,
        })
    }

    pub fn size_limit_bytes(&self) -> u64 {
        self.config.upload_limit_bytes()
    }

    /// The secret every error of this backend is cleaned of.
    fn redacted(&self, error: StorageError) -> StorageError {
        error.redact_secrets(&[&self.config.bot_token])
    }

    /// One upload attempt: `sendVideo` for mp4 parts, `sendDocument` for the rest and when
    /// Telegram refuses the file as a video.
    pub async fn upload_part(
        &self,
        local_path: &Path,
        local_file_name: &str,
        metadata: &PartMetadata,
    ) -> Result<RemoteLocation, StorageError> {
        let size_bytes = crate::local::local_file_size(local_path).await?;
        if size_bytes > self.size_limit_bytes() {
            return Err(StorageError::TooLarge {
                backend: BACKEND_NAME,
                path: local_path.to_path_buf(),
                size_bytes,
                limit_bytes: self.size_limit_bytes(),
            });
        }
        let is_video = local_file_name.ends_with(".mp4");
        let message = if is_video {
            match self
                .send_file(SendMethod::Video, local_path, local_file_name, metadata)
                .await
            {
                Err(StorageError::HttpStatus {
                    status: 400,
                    detail,
                    ..
                }) => {
                    tracing::info!(
                        detail,
                        "sendVideo refused the part; sending it as a document"
                    );
                    self.send_file(SendMethod::Document, local_path, local_file_name, metadata)
                        .await?
                }
                other => other?,
            }
        } else {
            self.send_file(SendMethod::Document, local_path, local_file_name, metadata)
                .await?
        };
        let file_id = message
            .video
            .or(message.document)
            .map(|sent_file| sent_file.file_id);
        Ok(RemoteLocation::TelegramChannel {
            chat_id: self.config.channel_id.clone(),
            message_id: message.message_id,
            file_id,
            link: message_link(&self.config.channel_id, message.message_id),
        })
    }

    /// Deletes a posted part; a message that is already gone counts as deleted.
    pub async fn delete_message(&self, chat_id: &str, message_id: i64) -> Result<(), StorageError> {
        self.delete_message_unredacted(chat_id, message_id)
            .await
            .map_err(|error| self.redacted(error))
    }

    async fn delete_message_unredacted(
        &self,
        chat_id: &str,
        message_id: i64,
    ) -> Result<(), StorageError> {
        let url = self.method_url("deleteMessage");
        let response = self
            .upload_client
            .post(&url)
            .form(&[
                ("chat_id", chat_id.to_string()),
                ("message_id", message_id.to_string()),
            ])
            .send()
            .await
            .map_err(|error| StorageError::network(BACKEND_NAME, error))?;
        match parse_bot_api_response(response).await {
            Ok(_) => Ok(()),
            Err(StorageError::HttpStatus {
                status: 400,
                detail,
                ..
            }) if detail.contains("not found") => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn method_url(&self, method: &str) -> String {
        format!(
            "{}/bot{}/{method}",
            self.config.api_base_url.trim_end_matches('/'),
            self.config.bot_token
        )
    }

    /// Sends the file; an error has the token removed.
    async fn send_file(
        &self,
        method: SendMethod,
        local_path: &Path,
        local_file_name: &str,
        metadata: &PartMetadata,
    ) -> Result<SentMessage, StorageError> {
        let sending = async {
            let remote_file_name =
                crate::layout::remote_file_name(metadata.job_id, local_file_name);
            let file_part = streamed_file_part(local_path)
                .await
                .map_err(|error| StorageError::io("could not open", local_path, error))?
                .file_name(remote_file_name);
            let mut form = reqwest::multipart::Form::new()
                .text("chat_id", self.config.channel_id.clone())
                .text("caption", metadata.caption())
                .part(method.file_field(), file_part);
            if let Some(thumbnail_path) = &metadata.thumbnail {
                match streamed_file_part(thumbnail_path).await {
                    Ok(thumbnail_part) => {
                        form = form.part("thumbnail", thumbnail_part.file_name("thumbnail.jpg"));
                    }
                    // A missing thumbnail is no reason to fail the upload.
                    Err(error) => tracing::warn!(
                        path = %thumbnail_path.display(),
                        error = %error,
                        "thumbnail not readable; sending without it"
                    ),
                }
            }
            if method == SendMethod::Video {
                if let Some(width) = metadata.width {
                    form = form.text("width", width.to_string());
                }
                if let Some(height) = metadata.height {
                    form = form.text("height", height.to_string());
                }
                if metadata.duration_seconds.is_finite() && metadata.duration_seconds > 0.0 {
                    form = form.text(
                        "duration",
                        (metadata.duration_seconds.round() as u64).to_string(),
                    );
                }
                form = form.text("supports_streaming", "true");
            }
            let response = self
                .upload_client
                .post(self.method_url(method.api_method()))
                .multipart(form)
                .send()
                .await
                .map_err(|error| StorageError::network(BACKEND_NAME, error))?;
            let result = match parse_bot_api_response(response).await {
                Err(StorageError::HttpStatus { status: 413, .. }) => {
                    let size_bytes = metadata.size_bytes;
                    return Err(StorageError::TooLarge {
                        backend: BACKEND_NAME,
                        path: local_path.to_path_buf(),
                        size_bytes,
                        limit_bytes: self.size_limit_bytes(),
                    });
                }
                other => other?,
            };
            serde_json::from_value(result).map_err(|error| StorageError::InvalidResponse {
                backend: BACKEND_NAME,
                detail: format!("{} result: {error}", method.api_method()),
            })
        };
        let sent: Result<SentMessage, StorageError> = sending.await;
        sent.map_err(|error| self.redacted(error))
    }
}

/// Reads of this size feed an upload (reqwest's own `Part::file` reads 4 KiB at a time, each a
/// blocking-pool hop: a quarter of the throughput on a local Bot API server; see BENCHMARKS.md).
const UPLOAD_READ_BUFFER_BYTES: usize = 1024 * 1024;

/// A multipart file part streamed from `path` in 1 MiB reads, with its length.
async fn streamed_file_part(path: &Path) -> std::io::Result<reqwest::multipart::Part> {
    let file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, UPLOAD_READ_BUFFER_BYTES);
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), length);
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    let mime_type = match crate::layout::content_type_for(file_name) {
        "application/octet-stream" if file_name.ends_with(".jpg") => "image/jpeg",
        known => known,
    };
    part.mime_str(mime_type).map_err(std::io::Error::other)
}

/// The `result` of a successful call, or the error Telegram described.
async fn parse_bot_api_response(
    response: reqwest::Response,
) -> Result<serde_json::Value, StorageError> {
    let http_status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|error| StorageError::network(BACKEND_NAME, error))?;
    let parsed: Option<BotApiResponse> = serde_json::from_slice(&body).ok();
    match parsed {
        Some(BotApiResponse {
            ok: true,
            result: Some(result),
            ..
        }) => Ok(result),
        Some(failure) => {
            let status = failure.error_code.unwrap_or(http_status);
            let detail = failure.description.unwrap_or_default();
            Err(bot_api_error(status, detail, failure.parameters))
        }
        None => Err(bot_api_error(
            http_status,
            String::from_utf8_lossy(&body).chars().take(200).collect(),
            None,
        )),
    }
}

fn bot_api_error(
    status: u16,
    detail: String,
    parameters: Option<ResponseParameters>,
) -> StorageError {
    match status {
        429 => StorageError::RateLimited {
            backend: BACKEND_NAME,
            retry_after: Duration::from_secs(
                parameters
                    .and_then(|parameters| parameters.retry_after)
                    .unwrap_or(5),
            ),
        },
        401 | 403 => StorageError::Authentication {
            backend: BACKEND_NAME,
            detail: format!("HTTP {status}: {detail}"),
        },
        _ => StorageError::HttpStatus {
            backend: BACKEND_NAME,
            status,
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_links_follow_the_channel_id() {
        assert_eq!(
            message_link("-1001234567890", 42).as_deref(),
            Some("https://t.me/c/1234567890/42")
        );
        assert_eq!(
            message_link("@streambot_parts", 7).as_deref(),
            Some("https://t.me/streambot_parts/7")
        );
        assert_eq!(message_link("-12345", 7), None);
        assert_eq!(message_link("12345", 7), None);
        assert_eq!(message_link("@bad/name", 7), None);
    }

    #[test]
    fn the_upload_limit_depends_on_the_api_server() {
        assert_eq!(
            upload_limit_bytes_for("https://api.telegram.org"),
            CLOUD_API_UPLOAD_LIMIT_BYTES
        );
        assert_eq!(
            upload_limit_bytes_for("http://127.0.0.1:8081"),
            LOCAL_API_UPLOAD_LIMIT_BYTES
        );
    }
}
