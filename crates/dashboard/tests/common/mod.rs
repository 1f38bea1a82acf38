//! Shared by the dashboard's tests: backends (a fresh SQLite file; Redis under a random prefix),
//! a dashboard on 127.0.0.1:0, jobs in given states, and the API contract run against both stores.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use streambot_core::{DesiredJobState, Job, JobOwner, JobPriority, JobState, NewJob};
use streambot_dashboard::{DashboardSettings, DashboardState, serve_dashboard};
use streambot_store::{JobBackend, Lease, submit_job};
use tokio_util::sync::CancellationToken;

pub const TEST_SECRET: &str = "test-secret-0123456789";

#[path = "../../../store/tests/common/mod.rs"]
mod jobs_test_backends;
#[allow(unused_imports)]
pub use jobs_test_backends::{redis_backend_for_test, sqlite_backend_for_test};

pub fn settings_for_test(recordings_directory: PathBuf) -> DashboardSettings {
    let mut settings =
        DashboardSettings::new(TEST_SECRET, recordings_directory).expect("a long secret");
    settings.rate_limit_per_second = 1_000_000;
    settings.rate_limit_burst = 1_000_000;
    // The contract tries many wrong secrets from one address on purpose.
    settings.free_failed_logins = 1_000;
    settings.history_sample_interval = Duration::from_secs(1);
    settings
}

/// A dashboard serving on 127.0.0.1:0 until dropped.
pub struct TestDashboard {
    pub base_url: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestDashboard {
    pub async fn start<B: JobBackend>(backend: B, settings: DashboardSettings) -> TestDashboard {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        let state = DashboardState::new(backend, settings);
        let serve_shutdown = shutdown.clone();
        let task = tokio::spawn(async move {
            serve_dashboard(listener, state, serve_shutdown)
                .await
                .expect("the dashboard serves");
        });
        TestDashboard {
            base_url: format!("http://{address}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A GET without a token.
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(TEST_SECRET)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(TEST_SECRET)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn post_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.post(path).await;
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the dashboard stops on shutdown")
                .expect("the dashboard task");
        }
    }
}

impl Drop for TestDashboard {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn new_job_request(user_id: i64) -> NewJob {
    NewJob {
        owner: JobOwner {
            user_id,
            chat_id: user_id,
        },
        url: format!("https://example.test/{user_id}/live.m3u8"),
        options: Default::default(),
        priority: JobPriority::Normal,
    }
}

/// A job claimed by `worker_id` and moved to `Recording`, as a worker would (the queue must be
/// empty before).
pub async fn recording_job<B: JobBackend>(
    backend: &B,
    user_id: i64,
    worker_id: &str,
) -> (Job, Lease) {
    let submitted = submit_job(backend, new_job_request(user_id))
        .await
        .expect("submit");
    // The queue must hold only this job: a claim takes the oldest.
    let (claimed, lease) = backend
        .claim(
            worker_id,
            &[JobPriority::Normal, JobPriority::Priority],
            Duration::from_secs(60),
            Duration::from_millis(500),
        )
        .await
        .expect("claim")
        .expect("a queued job");
    assert_eq!(
        claimed.id, submitted.id,
        "another job was waiting in the queue"
    );
    let job = backend
        .transition_job(
            claimed.id,
            JobState::Starting,
            JobState::Recording,
            Some(&lease),
            None,
        )
        .await
        .expect("starting → recording");
    (job, lease)
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl MetricSample {
    /// The value of the first sample named `name` whose labels include `labels`.
    pub fn find(samples: &[MetricSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|sample| {
                sample.name == name
                    && labels.iter().all(|(key, value)| {
                        sample.labels.iter().any(|(sample_key, sample_value)| {
                            sample_key == key && sample_value == value
                        })
                    })
            })
            .map(|sample| sample.value)
    }
}

/// Parses Prometheus text: every sample line is `name{label="value",...} number`.
pub fn parse_metrics(text: &str) -> Vec<MetricSample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let inside = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = inside
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, quoted) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("label without '=': {line}"));
                        let unquoted = quoted
                            .strip_prefix('"')
                            .and_then(|text| text.strip_suffix('"'))
                            .unwrap_or_else(|| panic!("unquoted label value: {line}"));
                        (key.to_string(), unquoted.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || "_:".contains(character))
                && !name.starts_with(|character: char| character.is_ascii_digit()),
            "bad metric name in: {line}"
        );
        samples.push(MetricSample {
            name,
            labels,
            value,
        });
    }
    samples
}

pub fn job_ids(body: &Value) -> Vec<String> {
    body["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .map(|job| job["id"].as_str().expect("id").to_string())
        .collect()
}

/// Eight jobs: five of user 1001, three of user 1002; the first recording on worker-a (its
/// lease kept by the caller). Returns the recording job's id and every id, the recording first.
pub async fn eight_jobs<B: JobBackend>(backend: &B) -> (String, Vec<String>, Lease) {
    let (recording, lease) = recording_job(backend, 1001, "worker-a").await;
    let recording_id = recording.id.to_string();
    let mut created = vec![recording_id.clone()];
    for index in 0..7 {
        let user_id = if index < 4 { 1001 } else { 1002 };
        created.push(
            submit_job(backend, new_job_request(user_id))
                .await
                .expect("submit")
                .id
                .to_string(),
        );
    }
    (recording_id, created, lease)
}

/// The API contract, authentication: 401 without detail for every protected route; health is open.
pub async fn api_contract_authentication<B: JobBackend>(backend: B, recordings_directory: PathBuf) {
    let dashboard =
        TestDashboard::start(backend.clone(), settings_for_test(recordings_directory)).await;

    // Authentication: no token, a wrong token, another scheme: 401 without detail.
    let anonymous = dashboard.get_anonymous("/jobs").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous
            .headers()
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok()),
        Some("Bearer")
    );
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(error_code(&body), "unauthorized");
    assert_eq!(body["error"]["message"], "unauthorized");
    for authorization in [
        "Bearer wrong-secret-0123456789",
        "Bearer test-secret-012345678",
        "Basic dGVzdA==",
        TEST_SECRET,
    ] {
        let response = dashboard
            .client
            .post(dashboard.url("/jobs/0000ABCD/stop"))
            .header("authorization", authorization)
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization}"
        );
    }
    for path in ["/stats", "/stats/history", "/metrics", "/jobs/0000ABCD"] {
        let response = dashboard.get_anonymous(path).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    // Health needs no token.
    let health = dashboard.get_anonymous("/health").await;
    assert_eq!(health.status(), StatusCode::OK);

    dashboard.stop().await;
}

/// The API contract, listing: pages cover every job once, filters, bad parameters refused with a stable code.
pub async fn api_contract_listing<B: JobBackend>(backend: B, recordings_directory: PathBuf) {
    let dashboard =
        TestDashboard::start(backend.clone(), settings_for_test(recordings_directory)).await;

    let (recording_id, created, _lease) = eight_jobs(&backend).await;

    // Paging: pages of 3 cover all eight, newest first, without overlap.
    let mut seen = BTreeSet::new();
    let mut has_more_flags = Vec::new();
    for offset in [0, 3, 6] {
        let (status, page) = dashboard
            .get_json(&format!("/jobs?limit=3&offset={offset}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["offset"], offset);
        assert_eq!(page["limit"], 3);
        for id in job_ids(&page) {
            assert!(seen.insert(id), "a job on two pages");
        }
        has_more_flags.push(page["has_more"].as_bool().expect("has_more"));
    }
    assert_eq!(has_more_flags, vec![true, true, false]);
    assert_eq!(seen, created.iter().cloned().collect::<BTreeSet<_>>());
    let (_, past_the_end) = dashboard.get_json("/jobs?offset=50").await;
    assert!(job_ids(&past_the_end).is_empty());

    // Filters.
    let (_, by_user) = dashboard.get_json("/jobs?user=1002").await;
    assert_eq!(job_ids(&by_user).len(), 3);
    assert!(
        by_user["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|job| job["user_id"] == 1002)
    );
    let (_, by_state) = dashboard.get_json("/jobs?state=recording").await;
    assert_eq!(job_ids(&by_state), vec![recording_id.clone()]);
    assert_eq!(by_state["jobs"][0]["worker_id"], "worker-a");
    let (_, two_states) = dashboard
        .get_json("/jobs?state=recording,queued&user=1001")
        .await;
    assert_eq!(job_ids(&two_states).len(), 5);
    for bad in [
        "/jobs?state=sleeping",
        "/jobs?limit=0",
        "/jobs?limit=501",
        "/jobs?offset=-1",
        "/jobs?user=alice",
    ] {
        let (status, body) = dashboard.get_json(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(&body), "invalid_parameter", "{bad}");
    }

    dashboard.stop().await;
}

/// The API contract, one job: its detail with files, and stable codes for unknown and malformed ids.
pub async fn api_contract_job_detail<B: JobBackend>(backend: B, recordings_directory: PathBuf) {
    let dashboard =
        TestDashboard::start(backend.clone(), settings_for_test(recordings_directory)).await;

    let (recording_id, _created, _lease) = eight_jobs(&backend).await;

    // One job, with its files (none yet on disk).
    let (status, detail) = dashboard
        .get_json(&format!("/jobs/{}", recording_id.to_lowercase()))
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["job"]["id"], recording_id);
    assert_eq!(detail["job"]["state"], "recording");
    assert_eq!(detail["files"]["directory_exists"], false);

    // Unknown and malformed ids: stable codes.
    let (status, body) = dashboard.get_json("/jobs/0000ABCD").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "job_not_found")
    );
    let (status, body) = dashboard.post_json("/jobs/0000ABCD/stop").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "job_not_found")
    );
    let (status, body) = dashboard.get_json("/jobs/not-an-id").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_job_id")
    );
    let (status, body) = dashboard.get_json("/no/such/route").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "route_not_found")
    );

    dashboard.stop().await;
}

/// The API contract, control: pause, resume and stop change the desired state in the store; stopping a queued job cancels it.
pub async fn api_contract_control<B: JobBackend>(backend: B, recordings_directory: PathBuf) {
    let dashboard =
        TestDashboard::start(backend.clone(), settings_for_test(recordings_directory)).await;

    let (recording_id, created, _lease) = eight_jobs(&backend).await;

    // Control changes the desired state in the store.
    let desired = |job_id: String| {
        let backend = backend.clone();
        async move {
            let parsed = job_id.parse().expect("job id");
            backend
                .get_job(parsed)
                .await
                .expect("get")
                .expect("exists")
                .desired_state
        }
    };
    let (status, paused) = dashboard
        .post_json(&format!("/jobs/{recording_id}/pause"))
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["desired_state"], "pause");
    assert_eq!(desired(recording_id.clone()).await, DesiredJobState::Pause);
    let (status, resumed) = dashboard
        .post_json(&format!("/jobs/{recording_id}/resume"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resumed["desired_state"], "record");
    assert_eq!(desired(recording_id.clone()).await, DesiredJobState::Record);
    let (status, stopped) = dashboard
        .post_json(&format!("/jobs/{recording_id}/stop"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stopped["desired_state"], "stop");
    assert_eq!(
        stopped["state"], "recording",
        "the worker finishes the segment in flight"
    );
    assert_eq!(desired(recording_id.clone()).await, DesiredJobState::Stop);

    // Stopping a queued job cancels it; a cancelled job cannot be resumed.
    let queued_id = created[1].clone();
    let (status, cancelled) = dashboard
        .post_json(&format!("/jobs/{queued_id}/stop"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["state"], "cancelled");
    let (status, body) = dashboard
        .post_json(&format!("/jobs/{queued_id}/resume"))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "not_applicable")
    );

    dashboard.stop().await;
}

/// The API contract, numbers: stats by state and worker, Prometheus metrics, history samples.
pub async fn api_contract_stats_metrics_history<B: JobBackend>(
    backend: B,
    recordings_directory: PathBuf,
) {
    let dashboard =
        TestDashboard::start(backend.clone(), settings_for_test(recordings_directory)).await;

    let (_recording_id, created, _lease) = eight_jobs(&backend).await;

    // One queued job cancelled, so that every state the counters show has a number.
    let (status, _) = dashboard
        .post_json(&format!("/jobs/{}/stop", created[1]))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Stats: jobs by state and the worker's load from its lease.
    let (status, stats) = dashboard.get_json("/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["store"]["jobs_by_state"]["recording"], 1);
    assert_eq!(stats["store"]["jobs_by_state"]["queued"], 6);
    assert_eq!(stats["store"]["jobs_by_state"]["cancelled"], 1);
    assert_eq!(stats["store"]["jobs_by_state"]["completed"], 0);
    assert_eq!(stats["store"]["active_recordings"], 1);
    assert_eq!(stats["store"]["queue_depth"], 6);
    assert_eq!(stats["store"]["workers"][0]["worker_id"], "worker-a");
    assert_eq!(stats["store"]["workers"][0]["jobs"], 1);
    assert!(stats["system"]["cpu_cores"].as_u64().expect("cores") >= 1);
    assert!(
        stats["system"]["memory_total_bytes"]
            .as_u64()
            .expect("memory")
            > 0
    );
    assert!(
        stats["system"]["filesystem_total_bytes"]
            .as_u64()
            .expect("disk")
            > 0
    );

    // Metrics parse and carry the store's numbers.
    let response = dashboard.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/plain")),
    );
    let samples = parse_metrics(&response.text().await.expect("text"));
    let value_of = |name: &str, labels: &[(&str, &str)]| {
        MetricSample::find(&samples, name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    };
    assert_eq!(value_of("streambot_jobs", &[("state", "queued")]), 6.0);
    assert_eq!(value_of("streambot_recordings_active", &[]), 1.0);
    assert_eq!(value_of("streambot_queue_depth", &[]), 6.0);
    assert_eq!(
        value_of("streambot_worker_jobs", &[("worker_id", "worker-a")]),
        1.0
    );
    let heartbeat_age = value_of(
        "streambot_worker_heartbeat_age_seconds",
        &[("worker_id", "worker-a")],
    );
    assert!((0.0..120.0).contains(&heartbeat_age), "{heartbeat_age}");
    for name in [
        "streambot_segments_fetched_total",
        "streambot_segments_lost_total",
        "streambot_bytes_recorded_total",
        "streambot_gap_seconds_total",
        "streambot_uploads_total",
        "streambot_disk_recordings_bytes",
        "streambot_disk_free_bytes",
    ] {
        value_of(name, &[]);
    }

    // History: the sampler has taken at least its first sample.
    let (status, history) = dashboard.get_json("/stats/history").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!history["samples"].as_array().expect("samples").is_empty());

    dashboard.stop().await;
}
