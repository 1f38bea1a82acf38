//! Google Drive: a folder per user under a root folder (Shared Drives included, with
//! `supportsAllDrives=true`), resumable uploads in chunks of a multiple of 256 KiB that resume
//! after a dropped connection from the offset the server confirms, and the `webViewLink`.

pub mod auth;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use auth::{AccessTokenSource, BACKEND_NAME};
pub use auth::{GoogleDriveCredentials, ServiceAccountKey};

use crate::error::{StorageError, describe_reqwest_error};
use crate::layout;
use crate::metadata::{PartMetadata, RemoteLocation};

pub const DEFAULT_API_BASE_URL: &str = "https://www.googleapis.com";
/// Drive wants every chunk but the last to be a multiple of this.
pub const CHUNK_GRANULARITY_BYTES: usize = 256 * 1024;
pub const DEFAULT_CHUNK_SIZE_BYTES: usize = 8 * 1024 * 1024;
const FOLDER_MIME_TYPE: &str = "application/vnd.google-apps.folder";
/// Drive's own limit for one file.
const DRIVE_FILE_SIZE_LIMIT_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct GoogleDriveConfig {
    pub credentials: GoogleDriveCredentials,
    /// The folder (in My Drive or a Shared Drive) that holds the per-user folders. `root` is the
    /// account's My Drive.
    pub root_folder_id: String,
    /// `https://www.googleapis.com`; tests point it at a fake server.
    pub api_base_url: String,
    /// None: Google's token endpoint (or the service account's `token_uri`).
    pub token_url: Option<String>,
    /// Rounded down to a multiple of 256 KiB (at least 256 KiB).
    pub chunk_size_bytes: usize,
    /// For one request (one chunk).
    pub request_timeout: Duration,
    /// Interruptions (dropped connections, 5xx) one upload attempt survives by resuming.
    pub max_resumes_per_attempt: u32,
    /// Pause before asking the server where an interrupted upload stands.
    pub resume_pause: Duration,
}

impl GoogleDriveConfig {
    pub fn new(credentials: GoogleDriveCredentials, root_folder_id: impl Into<String>) -> Self {
        GoogleDriveConfig {
            credentials,
            root_folder_id: root_folder_id.into(),
            api_base_url: DEFAULT_API_BASE_URL.to_string(),
            token_url: None,
            chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
            request_timeout: Duration::from_secs(300),
            max_resumes_per_attempt: 8,
            resume_pause: Duration::from_millis(500),
        }
    }

    pub fn effective_chunk_size_bytes(&self) -> usize {
        (self.chunk_size_bytes / CHUNK_GRANULARITY_BYTES).max(1) * CHUNK_GRANULARITY_BYTES
    }
}

#[derive(Debug, Deserialize)]
struct DriveFile {
    id: String,
    #[serde(default, rename = "webViewLink")]
    web_view_link: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DriveFileList {
    #[serde(default)]
    files: Vec<DriveFile>,
}

/// Where a resumable upload stands after a status query.
#[derive(Debug, PartialEq)]
enum UploadStatus {
    /// The server holds this many bytes; send from here.
    Incomplete {
        confirmed_bytes: u64,
    },
    Complete(RemoteLocation),
    /// The session is gone (404/410): start a new one.
    SessionExpired,
}

#[derive(Debug)]
pub struct GoogleDriveStore {
    config: GoogleDriveConfig,
    client: reqwest::Client,
    tokens: AccessTokenSource,
    folder_ids_by_user: tokio::sync::Mutex<HashMap<i64, String>>,
}

impl GoogleDriveStore {
    pub fn new(config: GoogleDriveConfig) -> Result<Self, StorageError> {
        let client = crate::error::build_http_client(BACKEND_NAME, config.request_timeout)?;
        let tokens = AccessTokenSource::new(config.credentials.clone(), config.token_url.clone());
        Ok(GoogleDriveStore {
            config,
            client,
            tokens,
            folder_ids_by_user: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn size_limit_bytes(&self) -> u64 {
        DRIVE_FILE_SIZE_LIMIT_BYTES
    }

    /// Every error of this backend leaves without the credentials' secrets.
    fn redacted(&self, error: StorageError) -> StorageError {
        error.redact_secrets(&self.config.credentials.secrets())
    }

    /// One upload attempt of a local part: find or create the user's folder, open a resumable
    /// session, send the chunks, resume after interruptions.
    pub async fn upload_part(
        &self,
        local_path: &Path,
        local_file_name: &str,
        metadata: &PartMetadata,
    ) -> Result<RemoteLocation, StorageError> {
        self.upload_part_unredacted(local_path, local_file_name, metadata)
            .await
            .map_err(|error| self.redacted(error))
    }

    async fn upload_part_unredacted(
        &self,
        local_path: &Path,
        local_file_name: &str,
        metadata: &PartMetadata,
    ) -> Result<RemoteLocation, StorageError> {
        let total_bytes = crate::local::local_file_size(local_path).await?;
        let folder_id = self.user_folder_id(metadata.user_id).await?;
        let remote_name = layout::remote_file_name(metadata.job_id, local_file_name);
        let mut session_uri = self
            .start_resumable_session(&remote_name, &folder_id, total_bytes, metadata)
            .await?;
        let mut file = tokio::fs::File::open(local_path)
            .await
            .map_err(|error| StorageError::io("could not open", local_path, error))?;
        let chunk_size = self.config.effective_chunk_size_bytes() as u64;
        let mut offset = 0u64;
        let mut interruptions = 0u32;
        let mut chunk_buffer = Vec::new();
        // Bounded: each pass either advances the offset, finishes, or counts an interruption.
        let max_passes =
            total_bytes / chunk_size + 2 + u64::from(self.config.max_resumes_per_attempt) * 2;
        for _ in 0..max_passes {
            let chunk_end = (offset + chunk_size).min(total_bytes);
            let outcome = if total_bytes == 0 {
                self.query_upload_status(&session_uri, 0).await
            } else {
                read_chunk(&mut file, local_path, offset, chunk_end, &mut chunk_buffer).await?;
                self.put_chunk(&session_uri, offset, total_bytes, &chunk_buffer)
                    .await
            };
            let interruption = match outcome {
                Ok(UploadStatus::Complete(location)) => return Ok(location),
                Ok(UploadStatus::Incomplete { confirmed_bytes }) => {
                    if confirmed_bytes > total_bytes {
                        return Err(StorageError::InvalidResponse {
                            backend: BACKEND_NAME,
                            detail: format!(
                                "the server confirms {confirmed_bytes} of {total_bytes} bytes"
                            ),
                        });
                    }
                    if confirmed_bytes > offset {
                        offset = confirmed_bytes;
                        continue;
                    }
                    StorageError::InvalidResponse {
                        backend: BACKEND_NAME,
                        detail: format!("the upload made no progress at byte {offset}"),
                    }
                }
                Ok(UploadStatus::SessionExpired) => StorageError::HttpStatus {
                    backend: BACKEND_NAME,
                    status: 404,
                    detail: "the upload session expired".to_string(),
                },
                Err(error) if error.is_retryable() => error,
                Err(error) => return Err(error),
            };
            interruptions += 1;
            if interruptions > self.config.max_resumes_per_attempt {
                return Err(interruption);
            }
            tracing::warn!(
                offset,
                total_bytes,
                interruptions,
                error = %interruption,
                "Drive upload interrupted; asking the server where it stands"
            );
            tokio::time::sleep(self.config.resume_pause * interruptions).await;
            match self
                .query_upload_status_patiently(&session_uri, total_bytes)
                .await
            {
                Ok(UploadStatus::Complete(location)) => return Ok(location),
                Ok(UploadStatus::Incomplete { confirmed_bytes })
                    if confirmed_bytes <= total_bytes =>
                {
                    offset = confirmed_bytes;
                }
                Ok(UploadStatus::Incomplete { confirmed_bytes }) => {
                    return Err(StorageError::InvalidResponse {
                        backend: BACKEND_NAME,
                        detail: format!(
                            "the server confirms {confirmed_bytes} of {total_bytes} bytes"
                        ),
                    });
                }
                Ok(UploadStatus::SessionExpired) => {
                    session_uri = self
                        .start_resumable_session(&remote_name, &folder_id, total_bytes, metadata)
                        .await?;
                    offset = 0;
                }
                Err(error) => return Err(error),
            }
        }
        Err(StorageError::Network {
            backend: BACKEND_NAME,
            detail: format!("the upload did not finish within {max_passes} requests"),
        })
    }

    /// Deletes a file; one that is already gone counts as deleted.
    pub async fn delete_file(&self, file_id: &str) -> Result<(), StorageError> {
        self.delete_file_unredacted(file_id)
            .await
            .map_err(|error| self.redacted(error))
    }

    async fn delete_file_unredacted(&self, file_id: &str) -> Result<(), StorageError> {
        let url = format!(
            "{}/drive/v3/files/{}",
            self.config.api_base_url.trim_end_matches('/'),
            percent_encode_path_segment(file_id)
        );
        let response = self
            .authorized(|client| client.delete(&url).query(&[("supportsAllDrives", "true")]))
            .await?;
        let status = response.status().as_u16();
        if response.status().is_success() || status == 404 {
            Ok(())
        } else {
            Err(error_from_response(response).await)
        }
    }

    /// The id of `user_<id>` under the root folder, created when missing; cached.
    pub async fn user_folder_id(&self, user_id: i64) -> Result<String, StorageError> {
        let mut folder_ids = self.folder_ids_by_user.lock().await;
        if let Some(folder_id) = folder_ids.get(&user_id) {
            return Ok(folder_id.clone());
        }
        let folder_name = layout::user_directory_name(user_id);
        let folder_id = match self.find_folder(&folder_name).await? {
            Some(folder_id) => folder_id,
            None => self.create_folder(&folder_name).await?,
        };
        folder_ids.insert(user_id, folder_id.clone());
        Ok(folder_id)
    }

    async fn find_folder(&self, folder_name: &str) -> Result<Option<String>, StorageError> {
        let query = format!(
            "name = '{}' and mimeType = '{FOLDER_MIME_TYPE}' and '{}' in parents and trashed = false",
            escape_query_literal(folder_name),
            escape_query_literal(&self.config.root_folder_id)
        );
        let url = format!(
            "{}/drive/v3/files",
            self.config.api_base_url.trim_end_matches('/')
        );
        let response = self
            .authorized(|client| {
                client.get(&url).query(&[
                    ("q", query.as_str()),
                    ("fields", "files(id,name)"),
                    ("supportsAllDrives", "true"),
                    ("includeItemsFromAllDrives", "true"),
                    ("corpora", "allDrives"),
                    ("pageSize", "10"),
                ])
            })
            .await?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        let list: DriveFileList = parse_json_response(response).await?;
        Ok(list.files.into_iter().next().map(|file| file.id))
    }

    async fn create_folder(&self, folder_name: &str) -> Result<String, StorageError> {
        let url = format!(
            "{}/drive/v3/files",
            self.config.api_base_url.trim_end_matches('/')
        );
        let body = serde_json::json!({
            "name": folder_name,
            "mimeType": FOLDER_MIME_TYPE,
            "parents": [self.config.root_folder_id],
        });
        let response = self
            .authorized(|client| {
                client
                    .post(&url)
                    .query(&[("supportsAllDrives", "true"), ("fields", "id")])
                    .json(&body)
            })
            .await?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        let folder: DriveFile = parse_json_response(response).await?;
        tracing::info!(folder_name, folder_id = %folder.id, "Drive folder created");
        Ok(folder.id)
    }

    async fn start_resumable_session(
        &self,
        remote_name: &str,
        folder_id: &str,
        total_bytes: u64,
        metadata: &PartMetadata,
    ) -> Result<String, StorageError> {
        let url = format!(
            "{}/upload/drive/v3/files",
            self.config.api_base_url.trim_end_matches('/')
        );
        let body = serde_json::json!({
            "name": remote_name,
            "parents": [folder_id],
            "description": metadata.caption(),
        });
        let content_type = layout::content_type_for(remote_name);
        let response = self
            .authorized(|client| {
                client
                    .post(&url)
                    .query(&[
                        ("uploadType", "resumable"),
                        ("supportsAllDrives", "true"),
                        ("fields", "id,webViewLink"),
                    ])
                    .header("X-Upload-Content-Type", content_type)
                    .header("X-Upload-Content-Length", total_bytes.to_string())
                    .json(&body)
            })
            .await?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| StorageError::InvalidResponse {
                backend: BACKEND_NAME,
                detail: "the resumable upload answer has no Location header".to_string(),
            })?;
        Ok(location.to_string())
    }

    async fn put_chunk(
        &self,
        session_uri: &str,
        offset: u64,
        total_bytes: u64,
        chunk: &[u8],
    ) -> Result<UploadStatus, StorageError> {
        let last_byte = offset + chunk.len() as u64 - 1;
        let content_range = format!("bytes {offset}-{last_byte}/{total_bytes}");
        self.send_to_session(
            session_uri,
            content_range,
            bytes::Bytes::copy_from_slice(chunk),
        )
        .await
    }

    /// A PUT to the upload session: a chunk, or (empty, `bytes */TOTAL`) a status query.
    async fn send_to_session(
        &self,
        session_uri: &str,
        content_range: String,
        body: bytes::Bytes,
    ) -> Result<UploadStatus, StorageError> {
        let response = self
            .client
            .put(session_uri)
            .header(reqwest::header::CONTENT_RANGE, content_range)
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .map_err(|error| StorageError::network(BACKEND_NAME, error))?;
        upload_status_from_response(response).await
    }

    /// The status query, asked up to three times while the network is unwell.
    async fn query_upload_status_patiently(
        &self,
        session_uri: &str,
        total_bytes: u64,
    ) -> Result<UploadStatus, StorageError> {
        let mut last_error = None;
        for query_attempt in 1..=3u32 {
            match self.query_upload_status(session_uri, total_bytes).await {
                Ok(status) => return Ok(status),
                Err(error) if error.is_retryable() => {
                    last_error = Some(error);
                    tokio::time::sleep(self.config.resume_pause * query_attempt).await;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(StorageError::Network {
            backend: BACKEND_NAME,
            detail: "the upload status query failed".to_string(),
        }))
    }

    async fn query_upload_status(
        &self,
        session_uri: &str,
        total_bytes: u64,
    ) -> Result<UploadStatus, StorageError> {
        self.send_to_session(
            session_uri,
            format!("bytes */{total_bytes}"),
            bytes::Bytes::new(),
        )
        .await
    }

    /// Sends a request with the access token; after a 401 the token is renewed and the request
    /// sent once more.
    async fn authorized(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, StorageError> {
        for attempt in 0..2 {
            let token = self.tokens.access_token(&self.client).await?;
            let response = build(&self.client)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|error| StorageError::network(BACKEND_NAME, error))?;
            if response.status().as_u16() == 401 && attempt == 0 {
                self.tokens.invalidate().await;
                continue;
            }
            return Ok(response);
        }
        Err(StorageError::Authentication {
            backend: BACKEND_NAME,
            detail: "Drive refused a freshly renewed access token".to_string(),
        })
    }
}

async fn read_chunk(
    file: &mut tokio::fs::File,
    local_path: &Path,
    offset: u64,
    chunk_end: u64,
    chunk_buffer: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let length = (chunk_end - offset) as usize;
    chunk_buffer.resize(length, 0);
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|error| StorageError::io("could not seek in", local_path, error))?;
    file.read_exact(chunk_buffer)
        .await
        .map_err(|error| StorageError::io("could not read", local_path, error))?;
    Ok(())
}

async fn upload_status_from_response(
    response: reqwest::Response,
) -> Result<UploadStatus, StorageError> {
    let status = response.status().as_u16();
    match status {
        200 | 201 => {
            let file: DriveFile = parse_json_response(response).await?;
            Ok(UploadStatus::Complete(RemoteLocation::GoogleDrive {
                file_id: file.id,
                web_view_link: file.web_view_link,
            }))
        }
        308 => {
            let range = response
                .headers()
                .get(reqwest::header::RANGE)
                .and_then(|value| value.to_str().ok());
            let confirmed_bytes = match range {
                None => 0,
                Some(text) => confirmed_bytes_from_range(text).ok_or_else(|| {
                    StorageError::InvalidResponse {
                        backend: BACKEND_NAME,
                        detail: format!("unreadable Range header {text:?}"),
                    }
                })?,
            };
            Ok(UploadStatus::Incomplete { confirmed_bytes })
        }
        404 | 410 => Ok(UploadStatus::SessionExpired),
        _ => Err(error_from_response(response).await),
    }
}

/// `bytes=0-524287` → 524288: the server holds bytes 0..=524287.
pub fn confirmed_bytes_from_range(range_header: &str) -> Option<u64> {
    let range = range_header.trim().strip_prefix("bytes=")?;
    let (first, last) = range.split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    last.trim().parse::<u64>().ok()?.checked_add(1)
}

async fn parse_json_response<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, StorageError> {
    let body = response
        .bytes()
        .await
        .map_err(|error| StorageError::network(BACKEND_NAME, error))?;
    serde_json::from_slice(&body).map_err(|error| StorageError::InvalidResponse {
        backend: BACKEND_NAME,
        detail: format!(
            "{error}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ),
    })
}

async fn error_from_response(response: reqwest::Response) -> StorageError {
    let status = response.status().as_u16();
    let body = match response.bytes().await {
        Ok(body) => String::from_utf8_lossy(&body)
            .chars()
            .take(300)
            .collect::<String>(),
        Err(error) => describe_reqwest_error(error),
    };
    match status {
        401 | 403
            if !body.contains("rateLimitExceeded") && !body.contains("userRateLimitExceeded") =>
        {
            StorageError::Authentication {
                backend: BACKEND_NAME,
                detail: format!("HTTP {status}: {body}"),
            }
        }
        // Drive says "slow down" with 403 rateLimitExceeded as well as 429.
        403 => StorageError::HttpStatus {
            backend: BACKEND_NAME,
            status: 429,
            detail: body,
        },
        _ => StorageError::HttpStatus {
            backend: BACKEND_NAME,
            status,
            detail: body,
        },
    }
}

/// Single quotes and backslashes escaped for a Drive `q` string literal.
fn escape_query_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

fn percent_encode_path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers_give_the_confirmed_byte_count() {
        assert_eq!(confirmed_bytes_from_range("bytes=0-262143"), Some(262_144));
        assert_eq!(confirmed_bytes_from_range("bytes=0-0"), Some(1));
        assert_eq!(confirmed_bytes_from_range("bytes=5-9"), None);
        assert_eq!(confirmed_bytes_from_range("0-9"), None);
    }

    #[test]
    fn chunks_are_multiples_of_256_kib() {
        let credentials = GoogleDriveCredentials::OAuthRefreshToken {
            client_id: "id".to_string(),
            client_secret: "secret".to_string(),
            refresh_token: "refresh".to_string(),
        };
        let mut config = GoogleDriveConfig::new(credentials, "root");
        config.chunk_size_bytes = 1_000_000;
        assert_eq!(config.effective_chunk_size_bytes(), 786_432);
        config.chunk_size_bytes = 1;
        assert_eq!(config.effective_chunk_size_bytes(), CHUNK_GRANULARITY_BYTES);
    }

    #[test]
    fn query_literals_and_path_segments_are_escaped() {
        assert_eq!(escape_query_literal("a'b\\c"), "a\\'b\\\\c");
        assert_eq!(percent_encode_path_segment("ab/c d"), "ab%2Fc%20d");
    }
}
