//! A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests of the bot.
//!
//! It speaks the real HTTP API (`/bot<token>/<method>`, JSON or multipart bodies, `{"ok":..}`
//! replies): `getUpdates` long polling with offsets, `sendMessage`, `editMessageText`,
//! `answerCallbackQuery`, `sendVideo` / `sendAudio` / `sendDocument` (multipart recorded with the
//! file bytes), `setMyCommands`, `getMe`, `deleteWebhook`, `deleteMessage`. Tests push updates
//! (text messages, button presses), read every call back, and inject failures: 429 with
//! `retry_after`, 403 (bot blocked), 413 (file too large), 5xx.
//!
//! It enforces Telegram's sending limits as sliding windows ([`BotApiLimits`]: 30 requests a
//! second in all, 1 a second per private chat, 20 a minute per group or channel) and answers 429
//! with `retry_after` past them, counting the 429s it sent; `set_limits(None)` turns that off.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The fake bot's own identity.
pub const FAKE_BOT_USER_ID: i64 = 7_000_000_001;
pub const FAKE_BOT_USERNAME: &str = "streambot_test_bot";

/// A file uploaded in a multipart call.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub field: String,
    pub file_name: Option<String>,
    pub bytes: Bytes,
}

/// One call the bot made.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub method: String,
    /// The parameters: the JSON body, or the multipart text fields as strings.
    pub parameters: Value,
    pub files: Vec<UploadedFile>,
    pub http_status: u16,
    pub at: Duration,
}

impl RecordedCall {
    pub fn chat_id(&self) -> Option<i64> {
        value_as_i64(self.parameters.get("chat_id")?)
    }

    pub fn text(&self) -> Option<&str> {
        self.parameters.get("text").and_then(Value::as_str)
    }
}

fn value_as_i64(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// A failure to inject into the next calls of a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectedFailure {
    /// 429 Too Many Requests with `parameters.retry_after`.
    TooManyRequests { retry_after_seconds: u64 },
    /// 403 Forbidden: bot was blocked by the user.
    BotBlocked,
    /// 413 Request Entity Too Large.
    TooLarge,
    /// 5xx with a generic description.
    ServerError { status: u16 },
}

/// Telegram's sending limits, enforced by the fake: at most `*_requests` in any `*_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotApiLimits {
    pub global_requests: usize,
    pub global_window: Duration,
    pub private_chat_requests: usize,
    pub private_chat_window: Duration,
    pub group_chat_requests: usize,
    pub group_chat_window: Duration,
}

impl Default for BotApiLimits {
    fn default() -> Self {
        BotApiLimits {
            global_requests: 30,
            global_window: Duration::from_secs(1),
            private_chat_requests: 1,
            private_chat_window: Duration::from_secs(1),
            group_chat_requests: 20,
            group_chat_window: Duration::from_secs(60),
        }
    }
}

/// Methods that count against the limits: those that post to a chat (and button answers, which
/// count in the global window only).
const LIMITED_METHODS: [&str; 9] = [
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "sendVideo",
    "sendDocument",
    "sendAudio",
    "deleteMessage",
    "sendChatAction",
    "answerCallbackQuery",
];

/// Arrival times in a sliding window.
#[derive(Debug, Default)]
struct ArrivalWindow {
    arrivals: VecDeque<Instant>,
}

impl ArrivalWindow {
    /// How long until one more request fits; zero when it fits now.
    fn wait_needed(&mut self, now: Instant, requests: usize, window: Duration) -> Duration {
        while self
            .arrivals
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            self.arrivals.pop_front();
        }
        if self.arrivals.len() < requests {
            return Duration::ZERO;
        }
        let index = self.arrivals.len() - requests.max(1);
        self.arrivals.get(index).map_or(Duration::ZERO, |at| {
            (*at + window).saturating_duration_since(now)
        })
    }
}

#[derive(Debug)]
struct SentMessage {
    chat_id: i64,
    text: String,
    reply_markup: Option<Value>,
}

#[derive(Default)]
struct FakeState {
    next_update_id: i64,
    pending_updates: VecDeque<Value>,
    next_message_id: i64,
    messages: HashMap<i64, SentMessage>,
    calls: Vec<RecordedCall>,
    failures: HashMap<String, VecDeque<InjectedFailure>>,
    blocked_chats: Vec<i64>,
    started: Option<Instant>,
    limits: Option<BotApiLimits>,
    global_arrivals: ArrivalWindow,
    chat_arrivals: HashMap<i64, ArrivalWindow>,
    too_many_requests_sent: u64,
    /// Calls received per method (counted before they are answered).
    received_counts: HashMap<String, usize>,
    /// (method, nth call of it from 1) → how long to wait before answering it.
    answer_delays: HashMap<(String, usize), Duration>,
    /// chat id → the users `getChatMember` calls administrators there (the others are members).
    chat_administrators: HashMap<i64, Vec<i64>>,
    /// Group ids that became supergroups: old id → new id.
    migrated_chats: HashMap<i64, i64>,
}

impl FakeState {
    /// The 429 to answer when this request goes past the limits; records it when it fits.
    fn check_limits(&mut self, method: &str, chat_id: Option<i64>) -> Option<Response> {
        let limits = self.limits?;
        if !LIMITED_METHODS.contains(&method) {
            return None;
        }
        let now = Instant::now();
        let mut wait =
            self.global_arrivals
                .wait_needed(now, limits.global_requests, limits.global_window);
        if let Some(chat) = chat_id.filter(|_| method != "answerCallbackQuery") {
            let (requests, window) = if chat < 0 {
                (limits.group_chat_requests, limits.group_chat_window)
            } else {
                (limits.private_chat_requests, limits.private_chat_window)
            };
            let chat_wait = self
                .chat_arrivals
                .entry(chat)
                .or_default()
                .wait_needed(now, requests, window);
            wait = wait.max(chat_wait);
        }
        if wait > Duration::ZERO {
            self.too_many_requests_sent += 1;
            let retry_after_seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Some(error_response(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too Many Requests: retry after {retry_after_seconds}"),
                Some(json!({"retry_after": retry_after_seconds})),
            ));
        }
        self.global_arrivals.arrivals.push_back(now);
        if let Some(chat) = chat_id.filter(|_| method != "answerCallbackQuery") {
            self.chat_arrivals
                .entry(chat)
                .or_default()
                .arrivals
                .push_back(now);
        }
        None
    }
}

#[derive(Clone)]
struct Shared {
    token: String,
    state: Arc<Mutex<FakeState>>,
    updates_arrived: Arc<Notify>,
    calls_arrived: Arc<Notify>,
}

/// A running fake Bot API. Shuts down when dropped.
pub struct FakeTelegram {
    /// Base URL to give the bot (`TELEGRAM_API_URL`), no trailing slash.
    pub api_url: String,
    pub token: String,
    pub local_address: SocketAddr,
    shared: Shared,
    shutdown: CancellationToken,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn chat_json(chat_id: i64) -> Value {
    if chat_id < 0 {
        json!({"id": chat_id, "type": "supergroup", "title": "Test group"})
    } else {
        json!({"id": chat_id, "type": "private", "first_name": format!("User{chat_id}")})
    }
}

fn user_json(user_id: i64) -> Value {
    json!({"id": user_id, "is_bot": false, "first_name": format!("User{user_id}"), "language_code": "en"})
}

fn bot_user_json() -> Value {
    json!({"id": FAKE_BOT_USER_ID, "is_bot": true, "first_name": "StreamBot Test", "username": FAKE_BOT_USERNAME})
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs() as i64)
}

fn ok(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

/// A string parameter of a request, empty when absent.
fn text_parameter(parameters: &Value, name: &str) -> String {
    parameters
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn error_response(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    (status, axum::Json(body)).into_response()
}

impl FakeTelegram {
    /// Starts on 127.0.0.1:0.
    pub async fn start() -> std::io::Result<FakeTelegram> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        FakeTelegram::serve(listener, CancellationToken::new()).await
    }

    /// Serves on `listener` until `shutdown` (or drop).
    pub async fn serve(
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<FakeTelegram> {
        let local_address = listener.local_addr()?;
        let token = "123456:TEST-token".to_string();
        let shared = Shared {
            token: token.clone(),
            state: Arc::new(Mutex::new(FakeState {
                next_update_id: 1000,
                next_message_id: 1,
                started: Some(Instant::now()),
                limits: Some(BotApiLimits::default()),
                ..FakeState::default()
            })),
            updates_arrived: Arc::new(Notify::new()),
            calls_arrived: Arc::new(Notify::new()),
        };
        let router = Router::new()
            .route("/{bot_token}/{method}", any(handle_method))
            .with_state(shared.clone())
            .layer(axum::extract::DefaultBodyLimit::max(2100 * 1024 * 1024));
        crate::serve_until_cancelled(listener, router, &shutdown);
        Ok(FakeTelegram {
            api_url: format!("http://{local_address}"),
            token,
            local_address,
            shared,
            shutdown,
        })
    }

    fn with_state<T>(&self, action: impl FnOnce(&mut FakeState) -> T) -> T {
        let mut state = match self.shared.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        action(&mut state)
    }

    fn push_update(&self, build: impl FnOnce(i64) -> Value) -> i64 {
        let update_id = self.with_state(|state| {
            let update_id = state.next_update_id;
            state.next_update_id += 1;
            state.pending_updates.push_back(build(update_id));
            update_id
        });
        self.shared.updates_arrived.notify_waiters();
        update_id
    }

    /// A user writes `text` in a private chat (chat id = user id). Returns the update id.
    pub fn send_text_from_user(&self, user_id: i64, text: &str) -> i64 {
        self.send_text_in_chat(user_id, user_id, text)
    }

    /// A user writes `text` in a chat.
    pub fn send_text_in_chat(&self, user_id: i64, chat_id: i64, text: &str) -> i64 {
        let message_id = self.with_state(|state| {
            let id = state.next_message_id;
            state.next_message_id += 1;
            id
        });
        let text = text.to_string();
        self.push_update(move |update_id| {
            let mut message = json!({
                "message_id": message_id,
                "from": user_json(user_id),
                "chat": chat_json(chat_id),
                "date": unix_now(),
                "text": text,
            });
            if text.starts_with('/') {
                let length = text.find(' ').unwrap_or(text.len());
                message["entities"] =
                    json!([{"type": "bot_command", "offset": 0, "length": length}]);
            }
            json!({"update_id": update_id, "message": message})
        })
    }

    /// A user presses an inline button with `data` under the bot's message `message_id`.
    pub fn press_button(&self, user_id: i64, chat_id: i64, message_id: i64, data: &str) -> i64 {
        let text = self.with_state(|state| {
            state
                .messages
                .get(&message_id)
                .map(|message| message.text.clone())
                .unwrap_or_default()
        });
        let data = data.to_string();
        self.push_update(move |update_id| {
            json!({
                "update_id": update_id,
                "callback_query": {
                    "id": format!("cbq-{update_id}"),
                    "from": user_json(user_id),
                    "chat_instance": format!("instance-{chat_id}"),
                    "data": data,
                    "message": {
                        "message_id": message_id,
                        "from": bot_user_json(),
                        "chat": chat_json(chat_id),
                        "date": unix_now(),
                        "text": text,
                    }
                }
            })
        })
    }

    /// Pushes a raw update (the `update_id` is replaced).
    pub fn push_raw_update(&self, mut update: Value) -> i64 {
        self.push_update(move |update_id| {
            update["update_id"] = json!(update_id);
            update
        })
    }

    /// The next `count` calls of `method` fail this way.
    pub fn inject_failures(&self, method: &str, failure: InjectedFailure, count: usize) {
        self.with_state(|state| {
            let queue = state.failures.entry(method.to_string()).or_default();
            for _ in 0..count {
                queue.push_back(failure.clone());
            }
        });
    }

    /// The sending limits to enforce; `None` turns enforcement off (on with the defaults at
    /// start).
    pub fn set_limits(&self, limits: Option<BotApiLimits>) {
        self.with_state(|state| state.limits = limits);
    }

    /// 429 answers sent so far, injected or for going past the limits.
    pub fn too_many_requests_sent(&self) -> u64 {
        self.with_state(|state| state.too_many_requests_sent)
    }

    /// `getChatMember` answers `administrator` for these users in `chat_id` (`member` for
    /// everyone else).
    pub fn set_chat_administrators(&self, chat_id: i64, user_ids: &[i64]) {
        self.with_state(|state| {
            state.chat_administrators.insert(chat_id, user_ids.to_vec());
        });
    }

    /// The group `old_chat_id` became the supergroup `new_chat_id`: every call to the old id is
    /// answered 400 "group chat was upgraded to a supergroup chat" with `migrate_to_chat_id`,
    /// as Telegram does.
    pub fn migrate_chat(&self, old_chat_id: i64, new_chat_id: i64) {
        self.with_state(|state| {
            state.migrated_chats.insert(old_chat_id, new_chat_id);
        });
    }

    /// The user unblocked the bot: calls to this chat are answered again.
    pub fn unblock_bot_in_chat(&self, chat_id: i64) {
        self.with_state(|state| state.blocked_chats.retain(|blocked| *blocked != chat_id));
    }

    /// Every call to this chat fails with 403 from now on (the user blocked the bot).
    pub fn block_bot_in_chat(&self, chat_id: i64) {
        self.with_state(|state| state.blocked_chats.push(chat_id));
    }

    /// The `nth` call (from 1) of `method` is answered only after `delay` (a slow upload): a
    /// client that goes away meanwhile leaves no message, as Telegram does with a cut upload.
    pub fn delay_answer(&self, method: &str, nth: usize, delay: Duration) {
        self.with_state(|state| {
            state.answer_delays.insert((method.to_string(), nth), delay);
        });
    }

    /// How many calls of `method` arrived (answered or not yet).
    pub fn received_count(&self, method: &str) -> usize {
        self.with_state(|state| state.received_counts.get(method).copied().unwrap_or(0))
    }

    /// Waits (bounded) until `count` calls of `method` arrived.
    pub async fn wait_for_received(&self, method: &str, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.calls_arrived.notified();
            if self.received_count(method) >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.received_count(method) >= count;
            }
        }
    }

    /// The files this chat received (answered 200), by file name, with how many times each.
    pub fn files_received_in_chat(
        &self,
        chat_id: i64,
    ) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for call in self.calls() {
            if matches!(
                call.method.as_str(),
                "sendVideo" | "sendDocument" | "sendAudio"
            ) && call.http_status == 200
                && call.chat_id() == Some(chat_id)
            {
                let name = call
                    .files
                    .iter()
                    .find(|file| file.field != "thumbnail")
                    .and_then(|file| file.file_name.clone())
                    .unwrap_or_default();
                *counts.entry(name).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.with_state(|state| state.calls.clone())
    }

    /// Calls of one method so far.
    pub fn calls_of(&self, method: &str) -> Vec<RecordedCall> {
        self.with_state(|state| {
            state
                .calls
                .iter()
                .filter(|call| call.method.eq_ignore_ascii_case(method))
                .cloned()
                .collect()
        })
    }

    /// The current text and inline keyboard of a message the bot sent.
    pub fn message_text(&self, message_id: i64) -> Option<String> {
        self.with_state(|state| {
            state
                .messages
                .get(&message_id)
                .map(|message| message.text.clone())
        })
    }

    pub fn message_keyboard(&self, message_id: i64) -> Option<Value> {
        self.with_state(|state| {
            state
                .messages
                .get(&message_id)
                .and_then(|message| message.reply_markup.clone())
        })
    }

    /// Waits (bounded) until a call matches; returns it.
    pub async fn wait_for_call(
        &self,
        timeout: Duration,
        matches: impl Fn(&RecordedCall) -> bool,
    ) -> Option<RecordedCall> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = 0;
        loop {
            let notified = self.shared.calls_arrived.notified();
            let found = self.with_state(|state| {
                let found = state.calls[seen..]
                    .iter()
                    .find(|call| matches(call))
                    .cloned();
                seen = state.calls.len();
                found
            });
            if found.is_some() {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Waits (bounded) for a message delivered to `chat_id` whose text contains `fragment`.
    pub async fn wait_for_text(
        &self,
        chat_id: i64,
        fragment: &str,
        timeout: Duration,
    ) -> Option<RecordedCall> {
        self.wait_for_call(timeout, |call| {
            matches!(call.method.as_str(), "sendMessage" | "editMessageText")
                && call.http_status == 200
                && call.chat_id() == Some(chat_id)
                && call.text().is_some_and(|text| text.contains(fragment))
        })
        .await
    }
}

async fn read_parameters(request: Request) -> (Value, Vec<UploadedFile>) {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    if content_type.starts_with("multipart/form-data") {
        let mut fields = serde_json::Map::new();
        let mut files = Vec::new();
        let Ok(mut multipart) =
            <Multipart as axum::extract::FromRequest<()>>::from_request(request, &()).await
        else {
            return (Value::Object(fields), files);
        };
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or("").to_string();
            let file_name = field.file_name().map(str::to_string);
            let Ok(bytes) = field.bytes().await else {
                break;
            };
            if file_name.is_some() {
                files.push(UploadedFile {
                    field: name,
                    file_name,
                    bytes,
                });
            } else {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                // Nested JSON (reply_markup, commands) stays JSON.
                let value = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(|value| value.is_object() || value.is_array())
                    .unwrap_or(Value::String(text));
                fields.insert(name, value);
            }
        }
        // `"video": "attach://<name>"` names the file part `<name>`: file it under `video`.
        for (parameter, value) in &fields {
            if let Some(attached) = value
                .as_str()
                .and_then(|text| text.strip_prefix("attach://"))
                && let Some(file) = files.iter_mut().find(|file| file.field == attached)
            {
                file.field = parameter.clone();
            }
        }
        return (Value::Object(fields), files);
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), 16 * 1024 * 1024).await else {
        return (json!({}), Vec::new());
    };
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let mut fields = serde_json::Map::new();
        for pair in String::from_utf8_lossy(&body).split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                fields.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
        return (Value::Object(fields), Vec::new());
    }
    let value = serde_json::from_slice::<Value>(&body).unwrap_or_else(|_| json!({}));
    (value, Vec::new())
}

async fn handle_method(
    State(shared): State<Shared>,
    Path((bot_token, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot_token != format!("bot{}", shared.token) {
        return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    let (parameters, files) = read_parameters(request).await;
    // Telegram's method names are case-insensitive (teloxide sends `GetMe`): record the canonical one.
    let method = canonical_method_name(&method);
    if method == "getUpdates" {
        return get_updates(&shared, &parameters).await;
    }
    let delay = {
        let mut state = match shared.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let count = state.received_counts.entry(method.clone()).or_insert(0);
        *count += 1;
        let nth = *count;
        state.answer_delays.remove(&(method.clone(), nth))
    };
    shared.calls_arrived.notify_waiters();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let response = answer_method(&shared, &method, &parameters, &files);
    let status = response.status().as_u16();
    {
        let mut state = match shared.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let at = state
            .started
            .map_or(Duration::ZERO, |started| started.elapsed());
        state.calls.push(RecordedCall {
            method: method.clone(),
            parameters,
            files,
            http_status: status,
            at,
        });
    }
    shared.calls_arrived.notify_waiters();
    response
}

const KNOWN_METHODS: [&str; 17] = [
    "getUpdates",
    "getChatMember",
    "getMe",
    "deleteWebhook",
    "setWebhook",
    "setMyCommands",
    "getMyCommands",
    "answerCallbackQuery",
    "deleteMessage",
    "sendChatAction",
    "sendMessage",
    "editMessageText",
    "sendVideo",
    "sendDocument",
    "sendAudio",
    "editMessageReplyMarkup",
    "getFile",
];

fn canonical_method_name(method: &str) -> String {
    KNOWN_METHODS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(method))
        .map_or_else(|| method.to_string(), |known| known.to_string())
}

async fn get_updates(shared: &Shared, parameters: &Value) -> Response {
    let offset = parameters.get("offset").and_then(value_as_i64).unwrap_or(0);
    let timeout_seconds = parameters
        .get("timeout")
        .and_then(value_as_i64)
        .unwrap_or(0)
        .clamp(0, 50) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_seconds);
    loop {
        let notified = shared.updates_arrived.notified();
        let updates: Vec<Value> = {
            let mut state = match shared.state.lock() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            // Confirmed updates (id < offset) are forgotten, as Telegram does.
            while state
                .pending_updates
                .front()
                .and_then(|update| update.get("update_id").and_then(Value::as_i64))
                .is_some_and(|update_id| update_id < offset)
            {
                state.pending_updates.pop_front();
            }
            state.pending_updates.iter().cloned().collect()
        };
        if !updates.is_empty() {
            return ok(Value::Array(updates));
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok(json!([]));
        }
    }
}

fn answer_method(
    shared: &Shared,
    method: &str,
    parameters: &Value,
    files: &[UploadedFile],
) -> Response {
    let mut state = match shared.state.lock() {
        Ok(state) => state,
        Err(poisoned) => poisoned.into_inner(),
    };
    let chat_id = parameters.get("chat_id").and_then(value_as_i64);
    if let Some(chat) = chat_id
        && state.blocked_chats.contains(&chat)
    {
        return error_response(
            StatusCode::FORBIDDEN,
            "Forbidden: bot was blocked by the user",
            None,
        );
    }
    if let Some(new_chat_id) = chat_id.and_then(|chat| state.migrated_chats.get(&chat).copied()) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Bad Request: group chat was upgraded to a supergroup chat",
            Some(json!({"migrate_to_chat_id": new_chat_id})),
        );
    }
    if let Some(failure) = state.failures.get_mut(method).and_then(VecDeque::pop_front) {
        return match failure {
            InjectedFailure::TooManyRequests {
                retry_after_seconds,
            } => {
                state.too_many_requests_sent += 1;
                error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Too Many Requests: retry after {retry_after_seconds}"),
                    Some(json!({"retry_after": retry_after_seconds})),
                )
            }
            InjectedFailure::BotBlocked => error_response(
                StatusCode::FORBIDDEN,
                "Forbidden: bot was blocked by the user",
                None,
            ),
            InjectedFailure::TooLarge => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
                None,
            ),
            InjectedFailure::ServerError { status } => error_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Internal Server Error",
                None,
            ),
        };
    }
    if let Some(too_many) = state.check_limits(method, chat_id) {
        return too_many;
    }
    let new_message =
        |state: &mut FakeState, chat_id: i64, text: String, reply_markup: Option<Value>| {
            let message_id = state.next_message_id;
            state.next_message_id += 1;
            state.messages.insert(
                message_id,
                SentMessage {
                    chat_id,
                    text: text.clone(),
                    reply_markup,
                },
            );
            message_id
        };
    match method {
        "getMe" => {
            let mut me = bot_user_json();
            me["can_join_groups"] = json!(true);
            me["can_read_all_group_messages"] = json!(false);
            me["supports_inline_queries"] = json!(false);
            me["can_connect_to_business"] = json!(false);
            me["has_main_web_app"] = json!(false);
            ok(me)
        }
        "deleteWebhook"
        | "setMyCommands"
        | "answerCallbackQuery"
        | "deleteMessage"
        | "setWebhook"
        | "sendChatAction" => ok(json!(true)),
        "getMyCommands" => ok(json!([])),
        "getChatMember" => {
            let user_id = parameters
                .get("user_id")
                .and_then(value_as_i64)
                .unwrap_or(0);
            let is_administrator = chat_id.is_some_and(|chat| {
                state
                    .chat_administrators
                    .get(&chat)
                    .is_some_and(|administrators| administrators.contains(&user_id))
            });
            if is_administrator {
                // The fields the Bot API sends for an administrator.
                ok(json!({
                    "status": "administrator",
                    "user": user_json(user_id),
                    "can_be_edited": false,
                    "is_anonymous": false,
                    "can_manage_chat": true,
                    "can_delete_messages": true,
                    "can_manage_video_chats": true,
                    "can_restrict_members": true,
                    "can_promote_members": false,
                    "can_change_info": true,
                    "can_invite_users": true,
                    "can_post_stories": false,
                    "can_edit_stories": false,
                    "can_delete_stories": false,
                }))
            } else {
                ok(json!({"status": "member", "user": user_json(user_id)}))
            }
        }
        "sendMessage" => {
            let Some(chat_id) = chat_id else {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: chat_id is empty",
                    None,
                );
            };
            let text = text_parameter(parameters, "text");
            if text.is_empty() {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message text is empty",
                    None,
                );
            }
            let reply_markup = parameters.get("reply_markup").cloned();
            let message_id = new_message(&mut state, chat_id, text.clone(), reply_markup);
            ok(json!({
                "message_id": message_id,
                "from": bot_user_json(),
                "chat": chat_json(chat_id),
                "date": unix_now(),
                "text": text,
            }))
        }
        "editMessageText" => {
            let message_id = parameters
                .get("message_id")
                .and_then(value_as_i64)
                .unwrap_or(0);
            let text = text_parameter(parameters, "text");
            let reply_markup = parameters.get("reply_markup").cloned();
            let Some(message) = state.messages.get_mut(&message_id) else {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message to edit not found",
                    None,
                );
            };
            if message.text == text && message.reply_markup == reply_markup {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                    None,
                );
            }
            message.text = text.clone();
            message.reply_markup = reply_markup;
            let chat_id = message.chat_id;
            ok(json!({
                "message_id": message_id,
                "from": bot_user_json(),
                "chat": chat_json(chat_id),
                "date": unix_now(),
                "edit_date": unix_now(),
                "text": text,
            }))
        }
        "sendVideo" | "sendDocument" | "sendAudio" => {
            let Some(chat_id) = chat_id else {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: chat_id is empty",
                    None,
                );
            };
            let field = match method {
                "sendVideo" => "video",
                "sendAudio" => "audio",
                _ => "document",
            };
            let Some(file) = files.iter().find(|file| file.field == field) else {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: there is no file in the request",
                    None,
                );
            };
            let caption = text_parameter(parameters, "caption");
            let message_id = new_message(&mut state, chat_id, caption.clone(), None);
            let file_object = json!({
                "file_id": format!("FILE-{message_id}"),
                "file_unique_id": format!("U{message_id}"),
                "file_name": file.file_name.clone().unwrap_or_default(),
                "file_size": file.bytes.len(),
                "width": parameters.get("width").and_then(value_as_i64).unwrap_or(0),
                "height": parameters.get("height").and_then(value_as_i64).unwrap_or(0),
                "duration": parameters.get("duration").and_then(value_as_i64).unwrap_or(0),
                "mime_type": "video/mp4",
            });
            let mut message = json!({
                "message_id": message_id,
                "from": bot_user_json(),
                "chat": chat_json(chat_id),
                "date": unix_now(),
                "caption": caption,
            });
            message[field] = file_object;
            ok(message)
        }
        _ => error_response(StatusCode::NOT_FOUND, "Not Found: method not found", None),
    }
}
