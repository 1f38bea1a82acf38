//! A fake Google Drive on 127.0.0.1 for the storage tests and the upload benchmark: the OAuth
//! token endpoint (refresh token and service-account JWT, the signature checked), folder search
//! and creation, resumable upload sessions (chunks, `bytes */N` status queries, 308 + Range) with
//! an injectable dropped connection, deletion, and a plain PUT endpoint for comparison.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use serde_json::{Value, json};

pub const FAKE_CLIENT_ID: &str = "fake-client-id";
pub const FAKE_CLIENT_SECRET: &str = "fake-client-secret";
pub const FAKE_REFRESH_TOKEN: &str = "fake-refresh-token";

/// Faults and modes, set before the upload.
#[derive(Debug, Clone, Default)]
pub struct FakeDriveBehaviour {
    /// Drop the connection (no response) while receiving this upload chunk PUT (1-based, counted
    /// over all sessions), after keeping this many of its bytes.
    pub drop_connection_on_chunk: Option<(u32, usize)>,
    /// Answer these chunk PUTs (1-based) with 503 without keeping any bytes.
    pub fail_chunks_with_503: Vec<u32>,
    /// Answer every session start with 503.
    pub refuse_all_sessions: bool,
    /// Count the bytes but do not keep them (the benchmark).
    pub discard_bytes: bool,
    /// The service account's public key (PKCS#1 DER); a JWT assertion must verify with it.
    pub service_account_public_key: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct UploadSession {
    pub name: String,
    pub parents: Vec<String>,
    pub total_bytes: u64,
    pub received_bytes: u64,
    pub bytes: Vec<u8>,
    pub file_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct FakeDriveState {
    pub behaviour: FakeDriveBehaviour,
    pub token_requests: Vec<HashMap<String, String>>,
    pub issued_tokens: Vec<String>,
    /// folder id → (name, parent)
    pub folders: HashMap<String, (String, String)>,
    pub folder_searches: u32,
    pub sessions: HashMap<String, UploadSession>,
    /// file id → session id
    pub files: HashMap<String, String>,
    pub deleted_file_ids: Vec<String>,
    pub chunk_puts: u32,
    /// The first byte offset of every chunk PUT, in order.
    pub chunk_first_offsets: Vec<u64>,
    pub status_queries: u32,
    pub dropped_connections: u32,
    /// Every request's query had `supportsAllDrives=true` (checked on Drive API calls).
    pub requests_without_all_drives: Vec<String>,
    pub plain_upload_bytes: u64,
    next_id: u64,
}

impl FakeDriveState {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:06}", self.next_id)
    }

    /// The bytes of the one completed file named `name`.
    pub fn file_bytes_named(&self, name: &str) -> Option<&[u8]> {
        self.sessions
            .values()
            .find(|session| session.name == name && session.file_id.is_some())
            .map(|session| session.bytes.as_slice())
    }
}

#[derive(Clone)]
struct Shared {
    base_url: String,
    state: Arc<Mutex<FakeDriveState>>,
}

pub struct FakeDrive {
    pub base_url: String,
    pub token_url: String,
    pub local_address: SocketAddr,
    state: Arc<Mutex<FakeDriveState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDrive {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeDrive {
    pub async fn start(behaviour: FakeDriveBehaviour) -> FakeDrive {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Drive");
        let local_address = listener.local_addr().expect("local address");
        let base_url = format!("http://{local_address}");
        let state = Arc::new(Mutex::new(FakeDriveState {
            behaviour,
            ..FakeDriveState::default()
        }));
        let shared = Shared {
            base_url: base_url.clone(),
            state: state.clone(),
        };
        let router = Router::new()
            .route("/token", post(token))
            .route("/drive/v3/files", post(create_folder).get(search_folders))
            .route("/drive/v3/files/{file_id}", delete(delete_file))
            .route("/upload/drive/v3/files", post(start_session))
            .route("/upload/session/{session_id}", put(session_put))
            .route("/plain-upload", put(plain_upload))
            .layer(axum::extract::DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeDrive {
            token_url: format!("{base_url}/token"),
            base_url,
            local_address,
            state,
            server,
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeDriveState> {
        self.state.lock().expect("fake Drive state")
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return false;
    };
    let state = shared.state.lock().expect("state");
    state.issued_tokens.iter().any(|issued| issued == token)
}

fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"error": {"code": 401, "message": "Invalid Credentials"}}),
    )
}

fn note_all_drives(shared: &Shared, what: &str, query: &HashMap<String, String>) {
    if query.get("supportsAllDrives").map(String::as_str) != Some("true") {
        let mut state = shared.state.lock().expect("state");
        state.requests_without_all_drives.push(what.to_string());
    }
}

async fn token(State(shared): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut state = shared.state.lock().expect("state");
    state.token_requests.push(form.clone());
    let accepted = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            form.get("client_id").map(String::as_str) == Some(FAKE_CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(FAKE_CLIENT_SECRET)
                && form.get("refresh_token").map(String::as_str) == Some(FAKE_REFRESH_TOKEN)
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            match (
                &state.behaviour.service_account_public_key,
                form.get("assertion"),
            ) {
                (Some(public_key), Some(assertion)) => {
                    jwt_verifies(public_key, assertion, &format!("{}/token", shared.base_url))
                }
                _ => false,
            }
        }
        _ => false,
    };
    if !accepted {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": "Bad Request"}),
        );
    }
    let access_token = state.new_id("fake-access-token-");
    state.issued_tokens.push(access_token.clone());
    json_response(
        StatusCode::OK,
        json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn jwt_verifies(public_key: &[u8], assertion: &str, expected_audience: &str) -> bool {
    let pieces: Vec<&str> = assertion.split('.').collect();
    if pieces.len() != 3 {
        return false;
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(pieces[2]) else {
        return false;
    };
    let signed = format!("{}.{}", pieces[0], pieces[1]);
    let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key);
    if key.verify(signed.as_bytes(), &signature).is_err() {
        return false;
    }
    let Ok(claims_bytes) = URL_SAFE_NO_PAD.decode(pieces[1]) else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<Value>(&claims_bytes) else {
        return false;
    };
    claims["aud"] == expected_audience && claims["scope"] == "https://www.googleapis.com/auth/drive"
}

/// The value of `name = '...'` and `'...' in parents` in a Drive query.
fn query_literal_after<'text>(query: &'text str, marker: &str) -> Option<&'text str> {
    let start = query.find(marker)? + marker.len();
    let end = start + query[start..].find('\'')?;
    Some(&query[start..end])
}

async fn search_folders(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    note_all_drives(&shared, "files.list", &query);
    let q = query.get("q").cloned().unwrap_or_default();
    let name = query_literal_after(&q, "name = '")
        .unwrap_or_default()
        .to_string();
    let parent = q
        .split(" and ")
        .find(|clause| clause.ends_with("in parents"))
        .and_then(|clause| query_literal_after(clause, "'"))
        .unwrap_or_default()
        .to_string();
    let mut state = shared.state.lock().expect("state");
    state.folder_searches += 1;
    let files: Vec<Value> = state
        .folders
        .iter()
        .filter(|(_, (folder_name, folder_parent))| {
            *folder_name == name && *folder_parent == parent
        })
        .map(|(id, (folder_name, _))| json!({"id": id, "name": folder_name}))
        .collect();
    json_response(StatusCode::OK, json!({"files": files}))
}

async fn create_folder(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    note_all_drives(&shared, "files.create", &query);
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let parent = body["parents"][0].as_str().unwrap_or_default().to_string();
    let mut state = shared.state.lock().expect("state");
    let id = state.new_id("folder-");
    state.folders.insert(id.clone(), (name, parent));
    json_response(StatusCode::OK, json!({"id": id}))
}

async fn delete_file(
    State(shared): State<Shared>,
    Path(file_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    note_all_drives(&shared, "files.delete", &query);
    let mut state = shared.state.lock().expect("state");
    if state.files.remove(&file_id).is_none() {
        return json_response(StatusCode::NOT_FOUND, json!({"error": {"code": 404}}));
    }
    state.deleted_file_ids.push(file_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn start_session(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    note_all_drives(&shared, "files.create (upload)", &query);
    if query.get("uploadType").map(String::as_str) != Some("resumable") {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "uploadType"}));
    }
    let total_bytes = headers
        .get("X-Upload-Content-Length")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    let mut state = shared.state.lock().expect("state");
    if state.behaviour.refuse_all_sessions {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "backendError"}),
        );
    }
    let session_id = state.new_id("session-");
    state.sessions.insert(
        session_id.clone(),
        UploadSession {
            name: body["name"].as_str().unwrap_or_default().to_string(),
            parents: body["parents"]
                .as_array()
                .map(|parents| {
                    parents
                        .iter()
                        .filter_map(|parent| parent.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            total_bytes,
            ..UploadSession::default()
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::LOCATION,
            format!("{}/upload/session/{session_id}", shared.base_url),
        )
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

enum ContentRange {
    Status { total: u64 },
    Chunk { first: u64, last: u64, total: u64 },
}

fn parse_content_range(text: &str) -> Option<ContentRange> {
    let rest = text.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total: u64 = total.parse().ok()?;
    if range == "*" {
        return Some(ContentRange::Status { total });
    }
    let (first, last) = range.split_once('-')?;
    Some(ContentRange::Chunk {
        first: first.parse().ok()?,
        last: last.parse().ok()?,
        total,
    })
}

/// 308 with the Range the server holds, or 200 with the file once complete.
fn session_state_response(
    shared: &Shared,
    state: &mut FakeDriveState,
    session_id: &str,
) -> Response {
    let Some(session) = state.sessions.get(session_id) else {
        return json_response(StatusCode::NOT_FOUND, json!({"error": "no such session"}));
    };
    if session.received_bytes == session.total_bytes {
        let file_id = match &session.file_id {
            Some(file_id) => file_id.clone(),
            None => {
                let file_id = state.new_id("file-");
                state.files.insert(file_id.clone(), session_id.to_string());
                if let Some(session) = state.sessions.get_mut(session_id) {
                    session.file_id = Some(file_id.clone());
                }
                file_id
            }
        };
        return json_response(
            StatusCode::OK,
            json!({
                "id": file_id,
                "webViewLink": format!("{}/file/d/{file_id}/view", shared.base_url),
            }),
        );
    }
    let mut response = Response::builder().status(StatusCode::PERMANENT_REDIRECT);
    if session.received_bytes > 0 {
        response = response.header(
            header::RANGE,
            format!("bytes=0-{}", session.received_bytes - 1),
        );
    }
    response
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn session_put(
    State(shared): State<Shared>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(content_range) = headers
        .get(header::CONTENT_RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_content_range)
    else {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "Content-Range"}));
    };
    let mut state = shared.state.lock().expect("state");
    match content_range {
        ContentRange::Status { .. } => {
            state.status_queries += 1;
            session_state_response(&shared, &mut state, &session_id)
        }
        ContentRange::Chunk { first, last, total } => {
            state.chunk_puts += 1;
            state.chunk_first_offsets.push(first);
            let chunk_number = state.chunk_puts;
            if state.behaviour.fail_chunks_with_503.contains(&chunk_number) {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "backendError"}),
                );
            }
            let drop_after = match state.behaviour.drop_connection_on_chunk {
                Some((drop_chunk, kept_bytes)) if drop_chunk == chunk_number => Some(kept_bytes),
                _ => None,
            };
            let discard_bytes = state.behaviour.discard_bytes;
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return json_response(StatusCode::NOT_FOUND, json!({"error": "no such session"}));
            };
            if total != session.total_bytes
                || last + 1 - first != body.len() as u64
                || first > session.received_bytes
            {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("bad range {first}-{last}/{total}, have {}", session.received_bytes)}),
                );
            }
            let usable_length = match drop_after {
                Some(kept_bytes) => kept_bytes.min(body.len()),
                None => body.len(),
            };
            // Bytes the server already holds are skipped, as Drive does.
            let skip = (session.received_bytes - first) as usize;
            if skip < usable_length {
                if !discard_bytes {
                    session.bytes.extend_from_slice(&body[skip..usable_length]);
                }
                session.received_bytes = first + usable_length as u64;
            }
            if drop_after.is_some() {
                state.dropped_connections += 1;
                drop(state);
                // Ends the connection's task without a response (and without the panic hook's
                // message): the client sees the connection close mid-request.
                std::panic::resume_unwind(Box::new("the fake Drive drops the connection"));
            }
            session_state_response(&shared, &mut state, &session_id)
        }
    }
}

async fn plain_upload(State(shared): State<Shared>, body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let mut received_bytes = 0u64;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(piece) => received_bytes += piece.len() as u64,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    shared.state.lock().expect("state").plain_upload_bytes += received_bytes;
    json_response(StatusCode::OK, json!({"size": received_bytes}))
}
