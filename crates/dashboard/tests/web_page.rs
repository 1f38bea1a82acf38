//! The web page driven in headless Chromium over the DevTools protocol: log in, see a running job,
//! press Stop, see the store's desired state become stop and the row follow the job to its end.
//! Skips with a message when `/usr/bin/chromium` is not installed (`apt-get install chromium`).

mod common;

// By path: the dashboard's tests do not depend on streambot-testkit.
#[path = "../../testkit/src/requirements.rs"]
mod requirements;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use streambot_core::{DesiredJobState, JobState};
use streambot_store::JobStore;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A tiny DevTools protocol client: one page, commands answered in order.
struct DevToolsPage {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl DevToolsPage {
    async fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::Text(message.into()))
            .await
            .expect("send a DevTools command");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let received = tokio::time::timeout(Duration::from_secs(20), self.socket.next())
                .await
                .expect("DevTools answers in time")
                .expect("the DevTools socket stays open")
                .expect("a DevTools message");
            let Message::Text(text) = received else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if value["id"] == id {
                assert!(value["error"].is_null(), "{method} failed: {value}");
                return value["result"].clone();
            }
        }
        panic!("no answer to {method}");
    }

    /// Evaluates `expression` in the page and returns its value.
    async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression} threw: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it returns `expected` (bounded).
    async fn wait_for(&mut self, expression: &str, expected: Value, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.evaluate(expression).await;
            if last == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{what}: {expression} stayed {last}, wanted {expected}");
    }
}

async fn wait_for_devtools_port(user_data_directory: &Path) -> u16 {
    let file = user_data_directory.join("DevToolsActivePort");
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some(port) = text
                .lines()
                .next()
                .and_then(|line| line.trim().parse().ok())
        {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromium did not write {}", file.display());
}

#[tokio::test]
async fn the_page_logs_in_shows_a_running_job_and_stops_it() {
    if !Path::new(CHROMIUM).exists() {
        requirements::skip_or_fail(CHROMIUM, "apt-get install -y chromium");
        return;
    }
    let (backend, directory) = sqlite_backend_for_test().await;
    let (job, lease) = recording_job(&backend, 4242, "worker-web").await;
    let job_id = job.id.to_string();
    let dashboard = TestDashboard::start(
        backend.clone(),
        settings_for_test(directory.path().join("r")),
    )
    .await;

    let profile = tempfile::tempdir().expect("profile directory");
    let mut chromium = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromium");
    let port = wait_for_devtools_port(profile.path()).await;
    let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await
        .expect("DevTools target list")
        .json()
        .await
        .expect("target list JSON");
    let page_socket_url = targets
        .as_array()
        .expect("targets")
        .iter()
        .find(|target| target["type"] == "page")
        .and_then(|target| target["webSocketDebuggerUrl"].as_str())
        .expect("a page target")
        .to_string();
    let (socket, _) = tokio_tungstenite::connect_async(page_socket_url)
        .await
        .expect("connect to the page");
    let mut page = DevToolsPage { socket, next_id: 0 };
    page.command("Runtime.enable", json!({})).await;

    // A wrong secret in the fragment: back to the login form, with a message.
    page.command(
        "Page.navigate",
        json!({ "url": dashboard.url("/#secret=wrong-secret-0123456789") }),
    )
    .await;
    page.wait_for(
        "document.getElementById('login-section') && !document.getElementById('login-section').hidden && document.getElementById('login-message').textContent.length > 0",
        json!(true),
        "a wrong secret shows the login form",
    )
    .await;
    page.wait_for(
        "window.location.hash",
        json!(""),
        "the secret is cleared from the address bar",
    )
    .await;

    // Log in through the form.
    let login = format!(
        "document.getElementById('secret-input').value = {}; document.getElementById('login-form').requestSubmit(); true",
        json!(TEST_SECRET)
    );
    page.evaluate(&login).await;
    let row_state = format!(
        "(document.querySelector('tr[data-job-id=\"{job_id}\"]') || {{dataset: {{}}}}).dataset.state || ''"
    );
    page.wait_for(&row_state, json!("recording"), "the running job is listed")
        .await;
    page.wait_for(
        "document.getElementById('card-active').textContent",
        json!("1"),
        "one active recording",
    )
    .await;
    page.wait_for(
        "sessionStorage.getItem('streambotDashboardSecret') !== null && !document.getElementById('app-section').hidden",
        json!(true),
        "logged in",
    )
    .await;
    page.wait_for(
        "Number(document.getElementById('chart-active').dataset.sampleCount || 0) > 0",
        json!(true),
        "the chart has samples",
    )
    .await;
    if let Ok(path) = std::env::var("DASHBOARD_SCREENSHOT") {
        let shot = page
            .command("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let bytes = base64_decode(shot["data"].as_str().expect("png data"));
        std::fs::write(&path, bytes).expect("write the screenshot");
    }

    // Press Stop.
    let press = format!(
        "(() => {{ const button = document.querySelector('button[data-action=\"stop\"][data-job-id=\"{job_id}\"]'); if (!button) return 'no button'; button.click(); return 'pressed'; }})()"
    );
    assert_eq!(page.evaluate(&press).await, json!("pressed"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = backend
            .get_job(job.id)
            .await
            .expect("get")
            .expect("the job");
        if stored.desired_state == DesiredJobState::Stop {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store's desired state stayed {}",
            stored.desired_state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row_desired = format!(
        "(document.querySelector('tr[data-job-id=\"{job_id}\"]') || {{dataset: {{}}}}).dataset.desired || ''"
    );
    page.wait_for(&row_desired, json!("stop"), "the row shows the stop")
        .await;

    // The worker's part, played here: it finishes and the page follows.
    for (from, to) in [
        (JobState::Recording, JobState::Finalizing),
        (JobState::Finalizing, JobState::Uploading),
        (JobState::Uploading, JobState::Completed),
    ] {
        backend
            .transition_job(job.id, from, to, Some(&lease), None)
            .await
            .expect("the worker's transition");
    }
    page.wait_for(&row_state, json!("completed"), "the job is shown stopped")
        .await;
    let stop_buttons =
        format!("document.querySelectorAll('button[data-job-id=\"{job_id}\"]').length");
    assert_eq!(page.evaluate(&stop_buttons).await, json!(0));

    let _ = chromium.kill().await;
    dashboard.stop().await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for character in text.bytes() {
        let Some(value) = ALPHABET
            .iter()
            .position(|candidate| *candidate == character)
        else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
        }
    }
    bytes
}
