//! Issue 11 item 5: the bot token never reaches an error or a log line of the Telegram-channel
//! backend (reqwest's error text carries the request URL, which carries the token), and Google
//! Drive's client secret and refresh token likewise. Every log line of the failing uploads is
//! captured by a tracing subscriber writing into a buffer.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streambot_core::JobId;
use streambot_storage::{
    GoogleDriveConfig, GoogleDriveCredentials, GoogleDriveStore, LocalStore, PartMetadata,
    RetryPolicy, Storage, StorageBackend, Store, TelegramChannelConfig, TelegramChannelStore,
    redact_secrets_in_text,
};
use streambot_testkit::telegram::{FakeTelegram, InjectedFailure};

/// Looks like a real token: digits, a colon, 35 characters.
const BOT_TOKEN: &str = "7012345678:AAH-secretTokenBody_0123456789abcdef";
const CLIENT_SECRET: &str = "GOCSPX-client-secret-value-0123";
const REFRESH_TOKEN: &str = "1//0refresh-token-value-abcdefghijkl";

#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|poison| poison.into_inner()))
            .into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every event at every level, with its fields, into the buffer (for this thread).
fn capture_logs() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        max_rate_limit_wait: Duration::from_secs(1),
    }
}

fn metadata() -> PartMetadata {
    PartMetadata {
        job_id: JobId::from_u32(0x5EC2_E701),
        user_id: 77,
        part_number: 1,
        part_count: 1,
        duration_seconds: 10.0,
        size_bytes: 4,
        thumbnail: None,
        width: None,
        height: None,
    }
}

fn part_file(directory: &Path) -> std::path::PathBuf {
    let path = directory.join("part.mp4");
    std::fs::write(&path, b"\x00\x00\x00\x18ftypmp42").expect("write part");
    path
}

fn channel_storage(root: &Path, api_base_url: String, token: &str) -> Storage {
    let mut config = TelegramChannelConfig::new(token, "-1001234567890");
    config.api_base_url = api_base_url;
    config.upload_timeout = Duration::from_secs(5);
    let mut storage = Storage::new(
        LocalStore::new(root, None),
        StorageBackend::TelegramChannel(TelegramChannelStore::new(config).expect("client")),
        false,
    );
    storage.retry_policy = fast_retries();
    storage
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows a secret ({secret}):\n{text}"
        );
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        assert!(
            !text.contains(&encoded),
            "{what} shows a URL-encoded secret:\n{text}"
        );
    }
}

/// A server that accepts connections and closes each at once: reqwest fails with a connection
/// error whose text names the URL (with the token in it).
async fn connection_dropping_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let handle = tokio::spawn(async move {
        for _ in 0..20 {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            drop(socket);
        }
    });
    (format!("http://{address}"), handle)
}

#[tokio::test]
async fn a_dropped_connection_shows_no_token() {
    let (logs, _guard) = capture_logs();
    let (api_url, server) = connection_dropping_server().await;
    let recordings = tempfile::tempdir().expect("tempdir");
    let incoming = tempfile::tempdir().expect("tempdir");
    let storage = channel_storage(recordings.path(), api_url, BOT_TOKEN);

    let error = storage
        .put_part(&part_file(incoming.path()), &metadata())
        .await
        .expect_err("the server drops every connection");
    server.abort();

    let logged = logs.text();
    assert!(
        logged.contains("upload attempt failed"),
        "the failure was logged: {logged}"
    );
    assert_clean("the log", &logged, &[BOT_TOKEN]);
    assert_clean("the error", &error.to_string(), &[BOT_TOKEN]);
    assert_clean("the error (Debug)", &format!("{error:?}"), &[BOT_TOKEN]);
    assert_clean("the user's message", &error.user_message(), &[BOT_TOKEN]);
}

#[tokio::test]
async fn server_errors_that_echo_the_token_show_no_token() {
    let (logs, _guard) = capture_logs();
    let telegram = FakeTelegram::start().await.expect("fake Bot API");
    telegram.inject_failures(
        "sendVideo",
        InjectedFailure::ServerError { status: 500 },
        10,
    );
    telegram.inject_failures(
        "sendDocument",
        InjectedFailure::ServerError { status: 500 },
        10,
    );
    let recordings = tempfile::tempdir().expect("tempdir");
    let incoming = tempfile::tempdir().expect("tempdir");
    let storage = channel_storage(recordings.path(), telegram.api_url.clone(), &telegram.token);

    let error = storage
        .put_part(&part_file(incoming.path()), &metadata())
        .await
        .expect_err("500 every time");
    assert!(error.to_string().contains("500"), "{error}");
    let logged = logs.text();
    assert_clean("the log", &logged, &[&telegram.token]);
    assert_clean(
        "the error",
        &format!("{error} {error:?}"),
        &[&telegram.token],
    );
}

/// An answer that quotes the request URL back (a misconfigured proxy does) is cleaned too: the
/// token is redacted wherever it appears, not only where reqwest puts it.
#[tokio::test]
async fn an_answer_quoting_the_url_shows_no_token() {
    let (logs, _guard) = capture_logs();
    let router = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        (
            axum::http::StatusCode::BAD_GATEWAY,
            format!("upstream failed for {uri}"),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let recordings = tempfile::tempdir().expect("tempdir");
    let incoming = tempfile::tempdir().expect("tempdir");
    let storage = channel_storage(recordings.path(), format!("http://{address}"), BOT_TOKEN);

    let error = storage
        .put_part(&part_file(incoming.path()), &metadata())
        .await
        .expect_err("502 every time");
    server.abort();
    let shown = format!("{error} {error:?}");
    // The server answers before reading the upload, so the client sees either its answer (which
    // quotes the URL: redacted) or a broken connection (no answer to quote).
    assert!(
        shown.contains("[redacted]") || shown.contains("Network"),
        "{shown}"
    );
    assert_clean("the error", &shown, &[BOT_TOKEN]);
    assert_clean("the log", &logs.text(), &[BOT_TOKEN]);
}

#[tokio::test]
async fn drive_secrets_stay_out_of_errors_and_logs() {
    let (logs, _guard) = capture_logs();
    // A token endpoint that echoes the form it was sent (secrets included) with a 400.
    let router = axum::Router::new().fallback(|body: String| async move {
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!(
                "{{\"error\":\"invalid_grant\",\"error_description\":\"bad request: {body}\"}}"
            ),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let mut config = GoogleDriveConfig::new(
        GoogleDriveCredentials::OAuthRefreshToken {
            client_id: "client-id.apps.googleusercontent.com".to_string(),
            client_secret: CLIENT_SECRET.to_string(),
            refresh_token: REFRESH_TOKEN.to_string(),
        },
        "root-folder",
    );
    config.token_url = Some(format!("http://{address}/token"));
    config.api_base_url = format!("http://{address}");
    let recordings = tempfile::tempdir().expect("tempdir");
    let incoming = tempfile::tempdir().expect("tempdir");
    let mut storage = Storage::new(
        LocalStore::new(recordings.path(), None),
        StorageBackend::GoogleDrive(Box::new(GoogleDriveStore::new(config).expect("client"))),
        false,
    );
    storage.retry_policy = fast_retries();
    let error = storage
        .put_part(&part_file(incoming.path()), &metadata())
        .await
        .expect_err("the token endpoint refuses");
    server.abort();
    let shown = format!("{error} {error:?} {}", error.user_message());
    assert_clean("the error", &shown, &[CLIENT_SECRET, REFRESH_TOKEN]);
    assert_clean("the log", &logs.text(), &[CLIENT_SECRET, REFRESH_TOKEN]);
}

#[test]
fn redaction_replaces_every_occurrence_and_leaves_short_values() {
    let text = format!("a {BOT_TOKEN} b {BOT_TOKEN} c");
    assert_eq!(
        redact_secrets_in_text(&text, &[BOT_TOKEN]),
        "a [redacted] b [redacted] c"
    );
    assert_eq!(redact_secrets_in_text("a b c", &["", "b"]), "a b c");
}
