//! The dashboard's API over real HTTP on 127.0.0.1, against the real SQLite store and (when Redis
//! answers) the real Redis store.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use streambot_core::{
    DesiredJobState, FailureKind, Job, JobEvent, JobId, JobPriority, JobState, NewJob,
    RecordingProgress, UserPreferences,
};
use streambot_dashboard::{DashboardError, DashboardSettings};
use streambot_store::{
    JobFilter, JobStateCounts, JobStore, JobsError, Lease, Queue, RetryDecision, SqliteBackend,
};
use tokio::sync::broadcast;

use common::*;

/// Each part of the API contract, run against both stores (Redis under its own prefix per test).
macro_rules! api_contract_tests {
    ($($part:ident => $sqlite:ident, $redis:ident;)*) => {
        $(
            #[tokio::test]
            async fn $sqlite() {
                let (backend, directory) = sqlite_backend_for_test().await;
                $part(backend, directory.path().join("recordings")).await;
            }

            #[tokio::test]
            async fn $redis() {
                let Some(backend) = redis_backend_for_test().await else {
                    return;
                };
                let directory = tempfile::tempdir().expect("tempdir");
                $part(backend, directory.path().join("recordings")).await;
            }
        )*
    };
}

api_contract_tests! {
    api_contract_authentication =>
        authentication_holds_on_the_sqlite_store, authentication_holds_on_the_redis_store;
    api_contract_listing =>
        listing_holds_on_the_sqlite_store, listing_holds_on_the_redis_store;
    api_contract_job_detail =>
        job_detail_holds_on_the_sqlite_store, job_detail_holds_on_the_redis_store;
    api_contract_control =>
        control_holds_on_the_sqlite_store, control_holds_on_the_redis_store;
    api_contract_stats_metrics_history =>
        stats_metrics_and_history_hold_on_the_sqlite_store,
        stats_metrics_and_history_hold_on_the_redis_store;
}

/// More than a thousand jobs in SQLite: a page never holds more than the maximum (500), a larger
/// limit is refused, and walking the pages (offset, `has_more`) shows every job exactly once.
#[tokio::test]
async fn paging_through_1100_jobs_shows_each_once_within_the_page_bound() {
    const JOBS: usize = 1_100;
    let (backend, directory) = sqlite_backend_for_test().await;
    let mut created = std::collections::BTreeSet::new();
    for number in 0..JOBS {
        let job = streambot_store::submit_job(&backend, new_job_request(1 + (number % 40) as i64))
            .await
            .expect("submit");
        created.insert(job.id.to_string());
    }
    let dashboard =
        TestDashboard::start(backend, settings_for_test(directory.path().join("r"))).await;

    let (status, first) = dashboard.get_json("/jobs").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        job_ids(&first).len(),
        streambot_dashboard::api::DEFAULT_PAGE_SIZE
    );
    assert_eq!(first["has_more"], true);
    let (status, refused) = dashboard
        .get_json(&format!(
            "/jobs?limit={}",
            streambot_dashboard::api::MAXIMUM_PAGE_SIZE + 1
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    for page_size in [streambot_dashboard::api::MAXIMUM_PAGE_SIZE, 97] {
        let mut seen = std::collections::BTreeSet::new();
        let mut offset = 0;
        let mut pages = 0;
        loop {
            let (status, page) = dashboard
                .get_json(&format!("/jobs?limit={page_size}&offset={offset}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let ids = job_ids(&page);
            assert!(
                ids.len() <= page_size,
                "{} jobs on a page of {page_size}",
                ids.len()
            );
            for id in &ids {
                assert!(
                    seen.insert(id.clone()),
                    "job {id} on two pages (size {page_size})"
                );
            }
            pages += 1;
            assert!(pages <= JOBS / page_size + 1, "more pages than jobs allow");
            if page["has_more"] != true {
                break;
            }
            assert_eq!(ids.len(), page_size, "a page before the last is full");
            offset += ids.len();
        }
        assert_eq!(seen, created, "page size {page_size}: every job once");
    }
    dashboard.stop().await;
}

#[test]
fn a_short_secret_is_refused_with_one_line() {
    for secret in ["", "short", "fifteen-chars!!"] {
        let error = DashboardSettings::new(secret, "recordings".into()).expect_err("refused");
        assert!(matches!(
            error,
            DashboardError::InvalidSetting {
                variable: "DASHBOARD_SECRET",
                ..
            }
        ));
        let line = error.to_string();
        assert!(!line.contains('\n'));
        assert!(secret.is_empty() || !line.contains(secret), "{line}");
    }
    assert!(DashboardSettings::new("sixteen-chars!!!", "recordings".into()).is_ok());
}

#[tokio::test]
async fn a_job_shows_its_parts_ledger_gaps_and_finished_files() {
    let (backend, directory) = sqlite_backend_for_test().await;
    let recordings = directory.path().join("recordings");
    let (job, _lease) = recording_job(&backend, 7, "worker-b").await;
    let job_directory = streambot_core::job_directory(&recordings, job.id);
    std::fs::create_dir_all(&job_directory).expect("job directory");
    std::fs::write(job_directory.join("main-0001.ts"), vec![0u8; 376]).expect("part 1");
    std::fs::write(job_directory.join("main-0002.ts"), vec![0u8; 188]).expect("part 2");
    let line = |part: u32, sequence: u64, state: &str, bytes: u64| {
        serde_json::json!({
            "track": "main", "part": part, "epoch": 0, "discontinuity_sequence": 0,
            "media_sequence": sequence, "duration_seconds": 2.0, "bytes": bytes,
            "offset_in_part": 0, "state": state, "wall_time": "2026-01-01T00:00:00Z",
            "failed_attempts": 0, "uri": format!("segment{sequence}.ts")
        })
        .to_string()
    };
    let ledger = [
        line(1, 10, "ok", 188),
        line(1, 11, "ok", 188),
        line(1, 12, "gap", 0),
        line(1, 13, "gap", 0),
        line(2, 14, "ok", 188),
        line(2, 15, "pause", 0),
        line(2, 16, "gap", 0),
    ]
    .join("\n");
    std::fs::write(job_directory.join("main-ledger.jsonl"), ledger + "\n").expect("ledger");
    let finalized = serde_json::json!({
        "files": [{
            "part_number": 1, "path": job_directory.join("recording-0001.mp4"), "size_bytes": 1234,
            "duration_seconds": 4.0, "width": 1280, "height": 720, "has_audio": true,
            "thumbnail": null, "transcoded": false
        }],
        "failures": [{
            "part_number": 2, "kept_part": job_directory.join("main-0002.ts"),
            "message": "ffmpeg failed", "detail": "tail"
        }]
    });
    std::fs::write(job_directory.join("finalized.json"), finalized.to_string()).expect("report");

    let dashboard = TestDashboard::start(backend, settings_for_test(recordings)).await;
    let (status, detail) = dashboard.get_json(&format!("/jobs/{}", job.id)).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let files = &detail["files"];
    assert_eq!(files["directory_exists"], true);
    let part_names: Vec<&str> = files["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|part| part["name"].as_str().expect("name"))
        .collect();
    assert_eq!(part_names, vec!["main-0001.ts", "main-0002.ts"]);
    let summary = &files["ledgers"][0];
    assert_eq!(summary["track"], "main");
    assert_eq!(summary["ok_segments"], 3);
    assert_eq!(summary["gap_segments"], 3);
    assert_eq!(summary["pause_segments"], 1);
    assert_eq!(summary["bytes"], 564);
    assert_eq!(summary["parts"], 2);
    let gaps = files["gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 2);
    assert_eq!(
        (
            gaps[0]["first_media_sequence"].as_u64(),
            gaps[0]["last_media_sequence"].as_u64()
        ),
        (Some(12), Some(13))
    );
    assert_eq!(gaps[1]["first_media_sequence"], 16);
    assert_eq!(files["finished_files"][0]["name"], "recording-0001.mp4");
    assert_eq!(files["finished_files"][0]["height"], 720);
    assert_eq!(files["finalize_failures"][0]["part_number"], 2);
    assert!(files["warnings"].as_array().expect("warnings").is_empty());
    dashboard.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_valid_json_listing_every_path() {
    let (backend, directory) = sqlite_backend_for_test().await;
    let dashboard =
        TestDashboard::start(backend, settings_for_test(directory.path().join("r"))).await;
    // Public: the document holds no secret.
    let response = dashboard.get_anonymous("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.expect("valid JSON");
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(document["info"]["title"].is_string());
    let paths = document["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/jobs", "get"),
        ("/jobs/{id}", "get"),
        ("/jobs/{id}/stop", "post"),
        ("/jobs/{id}/pause", "post"),
        ("/jobs/{id}/resume", "post"),
        ("/stats", "get"),
        ("/stats/history", "get"),
        ("/metrics", "get"),
        ("/health", "get"),
    ] {
        let operation = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(operation.is_object(), "{method} {path}");
        assert!(
            operation["responses"]["200"].is_object(),
            "{method} {path} has no 200"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every schema reference resolves.
    let text = document.to_string();
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().expect("name");
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
    // Swagger UI is served from the binary (vendored assets).
    let docs = dashboard.get_anonymous("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"));
    let bundle = dashboard.get_anonymous("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), StatusCode::OK);
    // And the page with its assets.
    for (path, content_type) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let response = dashboard.get_anonymous(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        assert!(header.starts_with(content_type), "{path}: {header}");
    }
    dashboard.stop().await;
}

#[tokio::test]
async fn requests_over_the_rate_limit_or_the_body_limit_are_refused() {
    let (backend, directory) = sqlite_backend_for_test().await;
    let mut settings = settings_for_test(directory.path().join("r"));
    settings.rate_limit_per_second = 1;
    settings.rate_limit_burst = 5;
    let dashboard = TestDashboard::start(backend, settings).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(dashboard.get("/jobs").await.status());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count(),
        5,
        "{statuses:?}"
    );
    let (status, body) = dashboard.get_json("/stats").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // Health is never limited.
    let health = dashboard.get_anonymous("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    dashboard.stop().await;

    let (backend, directory) = sqlite_backend_for_test().await;
    let dashboard =
        TestDashboard::start(backend, settings_for_test(directory.path().join("r"))).await;
    let response = dashboard
        .client
        .post(dashboard.url("/jobs/0000ABCD/stop"))
        .bearer_auth(TEST_SECRET)
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "payload_too_large");
    dashboard.stop().await;
}

/// The SQLite store, failing on demand: for `/health`'s 503.
#[derive(Clone)]
struct SwitchableBackend {
    inner: SqliteBackend,
    failing: Arc<AtomicBool>,
}

impl SwitchableBackend {
    fn check(&self) -> Result<(), JobsError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(JobsError::Setup {
                message: "the store is down (test)".to_string(),
            })
        } else {
            Ok(())
        }
    }
}

impl JobStore for SwitchableBackend {
    async fn create_job(&self, request: NewJob) -> Result<Job, JobsError> {
        self.check()?;
        self.inner.create_job(request).await
    }
    async fn get_job(&self, job_id: JobId) -> Result<Option<Job>, JobsError> {
        self.check()?;
        self.inner.get_job(job_id).await
    }
    async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<Job>, JobsError> {
        self.check()?;
        self.inner.list_jobs(filter).await
    }
    async fn count_jobs_by_state(&self) -> Result<JobStateCounts, JobsError> {
        self.check()?;
        self.inner.count_jobs_by_state().await
    }
    async fn transition_job(
        &self,
        job_id: JobId,
        expected: JobState,
        to: JobState,
        fence: Option<&Lease>,
        error: Option<String>,
    ) -> Result<Job, JobsError> {
        self.check()?;
        self.inner
            .transition_job(job_id, expected, to, fence, error)
            .await
    }
    async fn set_desired_state(
        &self,
        job_id: JobId,
        desired: DesiredJobState,
    ) -> Result<Job, JobsError> {
        self.check()?;
        self.inner.set_desired_state(job_id, desired).await
    }
    async fn update_progress(
        &self,
        lease: &Lease,
        progress: RecordingProgress,
    ) -> Result<(), JobsError> {
        self.check()?;
        self.inner.update_progress(lease, progress).await
    }
    async fn set_waiting_for_live(
        &self,
        lease: &Lease,
        waiting: Option<streambot_core::WaitingForLive>,
    ) -> Result<(), JobsError> {
        self.check()?;
        self.inner.set_waiting_for_live(lease, waiting).await
    }
    fn subscribe_events(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.subscribe_events()
    }
    async fn publish_event(&self, event: JobEvent) -> Result<(), JobsError> {
        self.check()?;
        self.inner.publish_event(event).await
    }
    async fn get_user_preferences(&self, user_id: i64) -> Result<UserPreferences, JobsError> {
        self.check()?;
        self.inner.get_user_preferences(user_id).await
    }
    async fn set_user_preferences(
        &self,
        user_id: i64,
        preferences: UserPreferences,
    ) -> Result<(), JobsError> {
        self.check()?;
        self.inner.set_user_preferences(user_id, preferences).await
    }
    async fn fail_job(
        &self,
        job_id: JobId,
        expected: JobState,
        fence: Option<&Lease>,
        message: String,
        failure: FailureKind,
    ) -> Result<Job, JobsError> {
        self.check()?;
        self.inner
            .fail_job(job_id, expected, fence, message, failure)
            .await
    }
    async fn record_delivery(
        &self,
        lease: &Lease,
        delivery: streambot_core::JobDelivery,
    ) -> Result<Job, JobsError> {
        self.check()?;
        self.inner.record_delivery(lease, delivery).await
    }
    async fn set_status_message(
        &self,
        job_id: JobId,
        status_message: Option<streambot_core::StatusMessageRef>,
    ) -> Result<Job, JobsError> {
        self.check()?;
        self.inner.set_status_message(job_id, status_message).await
    }
    async fn request_redelivery(
        &self,
        job_id: JobId,
    ) -> Result<(Job, streambot_core::RedeliveryOutcome), JobsError> {
        self.check()?;
        self.inner.request_redelivery(job_id).await
    }
    async fn record_recording_deleted(
        &self,
        job_id: JobId,
        reason: String,
    ) -> Result<Job, JobsError> {
        self.check()?;
        self.inner.record_recording_deleted(job_id, reason).await
    }
}

impl Queue for SwitchableBackend {
    async fn create_queued_job(&self, request: NewJob) -> Result<Job, JobsError> {
        self.check()?;
        self.inner.create_queued_job(request).await
    }
    async fn push(&self, job_id: JobId, priority: JobPriority) -> Result<(), JobsError> {
        self.check()?;
        self.inner.push(job_id, priority).await
    }
    async fn claim(
        &self,
        worker_id: &str,
        queues: &[JobPriority],
        lease_duration: Duration,
        wait: Duration,
    ) -> Result<Option<(Job, Lease)>, JobsError> {
        self.check()?;
        self.inner
            .claim(worker_id, queues, lease_duration, wait)
            .await
    }
    async fn renew_lease(&self, lease: &Lease, lease_duration: Duration) -> Result<Job, JobsError> {
        self.check()?;
        self.inner.renew_lease(lease, lease_duration).await
    }
    async fn renew_leases(
        &self,
        renewals: &[streambot_store::backend::LeaseRenewal],
        lease_duration: Duration,
    ) -> Vec<Result<Job, JobsError>> {
        if self.check().is_err() {
            return renewals
                .iter()
                .map(|_| {
                    Err(JobsError::Setup {
                        message: "the store is down (test)".to_string(),
                    })
                })
                .collect();
        }
        self.inner.renew_leases(renewals, lease_duration).await
    }
    async fn complete(&self, lease: &Lease) -> Result<(), JobsError> {
        self.check()?;
        self.inner.complete(lease).await
    }
    async fn retry(
        &self,
        lease: &Lease,
        error: String,
        failure: FailureKind,
        backoff: Duration,
    ) -> Result<RetryDecision, JobsError> {
        self.check()?;
        self.inner.retry(lease, error, failure, backoff).await
    }
    async fn release(&self, lease: &Lease) -> Result<(), JobsError> {
        self.check()?;
        self.inner.release(lease).await
    }
    async fn reap_expired_leases(&self) -> Result<Vec<JobId>, JobsError> {
        self.check()?;
        self.inner.reap_expired_leases().await
    }
    async fn dead_letters(&self) -> Result<Vec<JobId>, JobsError> {
        self.check()?;
        self.inner.dead_letters().await
    }
    async fn try_acquire_lock(
        &self,
        name: &str,
        holder: &str,
        time_to_live: Duration,
    ) -> Result<bool, JobsError> {
        self.check()?;
        self.inner
            .try_acquire_lock(name, holder, time_to_live)
            .await
    }
}

#[tokio::test]
async fn health_is_503_while_the_store_does_not_answer() {
    let (inner, directory) = sqlite_backend_for_test().await;
    let failing = Arc::new(AtomicBool::new(false));
    let backend = SwitchableBackend {
        inner,
        failing: Arc::clone(&failing),
    };
    let dashboard =
        TestDashboard::start(backend, settings_for_test(directory.path().join("r"))).await;
    let health = |dashboard: &TestDashboard| {
        let request = dashboard.client.get(dashboard.url("/health"));
        async move { request.send().await.expect("request") }
    };
    assert_eq!(health(&dashboard).await.status(), StatusCode::OK);
    failing.store(true, Ordering::SeqCst);
    let down = health(&dashboard).await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = down.json().await.expect("json");
    assert_eq!(error_code(&body), "store_unavailable");
    assert!(
        !body.to_string().contains("(test)"),
        "the store's detail is not shown: {body}"
    );
    let (status, body) = dashboard.get_json("/jobs").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    failing.store(false, Ordering::SeqCst);
    assert_eq!(health(&dashboard).await.status(), StatusCode::OK);
    dashboard.stop().await;
}

#[tokio::test]
async fn progress_events_feed_the_counters() {
    let (backend, directory) = sqlite_backend_for_test().await;
    let dashboard = TestDashboard::start(
        backend.clone(),
        settings_for_test(directory.path().join("r")),
    )
    .await;
    let (_job, lease) = recording_job(&backend, 5, "worker-c").await;
    let progress_at = |segments: u64| RecordingProgress {
        segments_written: segments,
        bytes_written: segments * 1000,
        gap_segments: segments / 5,
        gap_seconds: (segments / 5) as f64 * 2.0,
        media_seconds: segments as f64 * 2.0,
        current_part: 1,
        ..RecordingProgress::default()
    };
    for segments in [2u64, 5] {
        backend
            .update_progress(&lease, progress_at(segments))
            .await
            .expect("progress");
    }
    // The dashboard may subscribe to the events after the first reports: the latest progress is
    // sent again until it is counted (progress is cumulative, so a repeat adds nothing).
    let mut last_text = String::new();
    for _ in 0..200 {
        last_text = dashboard.get("/metrics").await.text().await.expect("text");
        let samples = parse_metrics(&last_text);
        let value = |name: &str| MetricSample::find(&samples, name, &[]);
        if value("streambot_segments_fetched_total") == Some(5.0) {
            assert_eq!(value("streambot_bytes_recorded_total"), Some(5000.0));
            assert_eq!(value("streambot_segments_lost_total"), Some(1.0));
            assert_eq!(value("streambot_gap_seconds_total"), Some(2.0));
            assert_eq!(value("streambot_store_segments_written"), Some(5.0));
            dashboard.stop().await;
            return;
        }
        backend
            .update_progress(&lease, progress_at(5))
            .await
            .expect("progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the counters never reached the progress:\n{last_text}");
}

/// A client whose connections come from `source` (127.0.0.1 and 127.0.0.2 are both loopback).
fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(source))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Issue 11 item 8: an unauthenticated flood from one address is refused without making the
/// admin's own requests from another address 429.
#[tokio::test]
async fn a_flood_from_one_address_does_not_limit_another() {
    let (backend, directory) = sqlite_backend_for_test().await;
    let mut settings = settings_for_test(directory.path().join("r"));
    settings.rate_limit_per_second = 1;
    settings.rate_limit_burst = 5;
    let dashboard = TestDashboard::start(backend, settings).await;
    let attacker = client_from([127, 0, 0, 2]);
    let admin = client_from([127, 0, 0, 1]);
    let mut flood = Vec::new();
    for _ in 0..30 {
        let response = attacker
            .get(dashboard.url("/stats"))
            .send()
            .await
            .expect("request");
        flood.push(response.status());
    }
    assert!(
        flood.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the flood was limited: {flood:?}"
    );
    for _ in 0..5 {
        let response = admin
            .get(dashboard.url("/jobs"))
            .bearer_auth(TEST_SECRET)
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the admin's address has its own bucket"
        );
    }
    dashboard.stop().await;
}

/// Failed logins are counted per address: after the free ones the address is locked out (429
/// `too_many_failed_logins`, `Retry-After`), even with the right secret, and no other address is.
#[tokio::test]
async fn failed_logins_lock_out_their_address_only() {
    let (backend, directory) = sqlite_backend_for_test().await;
    let mut settings = settings_for_test(directory.path().join("r"));
    settings.free_failed_logins = streambot_dashboard::client_limits::FREE_FAILED_LOGINS;
    let dashboard = TestDashboard::start(backend, settings).await;
    let guesser = client_from([127, 0, 0, 2]);
    let admin = client_from([127, 0, 0, 1]);
    let mut statuses = Vec::new();
    for attempt in 0..(streambot_dashboard::client_limits::FREE_FAILED_LOGINS + 2) {
        let response = guesser
            .get(dashboard.url("/jobs"))
            .bearer_auth(format!("guess-number-{attempt:04}"))
            .send()
            .await
            .expect("request");
        statuses.push(response.status());
    }
    let free = streambot_dashboard::client_limits::FREE_FAILED_LOGINS as usize;
    assert!(
        statuses[..free]
            .iter()
            .all(|status| *status == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let locked = guesser
        .get(dashboard.url("/jobs"))
        .bearer_auth(TEST_SECRET)
        .send()
        .await
        .expect("request");
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().get("retry-after").is_some());
    let body: Value = locked.json().await.expect("json");
    assert_eq!(error_code(&body), "too_many_failed_logins");
    let other = admin
        .get(dashboard.url("/jobs"))
        .bearer_auth(TEST_SECRET)
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), StatusCode::OK);
    dashboard.stop().await;
}

#[test]
fn a_low_entropy_secret_stops_start_up_with_the_reason() {
    for (secret, reason) in [
        ("aaaaaaaaaaaaaaaa", "not one character repeated"),
        ("abababababababababab", "at least 8 different"),
    ] {
        let error =
            DashboardSettings::new(secret, std::path::PathBuf::from("r")).expect_err("refused");
        let line = error.to_string();
        assert!(line.starts_with("DASHBOARD_SECRET="), "{line}");
        assert!(line.contains(reason), "{line}");
        assert!(!line.contains(secret), "{line}");
    }
}
