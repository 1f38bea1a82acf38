//! Issue 11, second attack round on the dashboard: what the API and the page show of a user's
//! link. A stream URL may carry a password (`https://viewer:PASSWORD@host/…`) or a token in its
//! query (`?token=…`): the operator's page and API show the link without them.

mod common;

use common::*;
use streambot_core::{JobOwner, JobPriority, NewJob};
use streambot_store::submit_job;

const URL_PASSWORD: &str = "hunter2-url-password";
const QUERY_TOKEN: &str = "query-token-5f1c0e";

#[tokio::test]
async fn stream_url_passwords_never_reach_the_dashboard() {
    let (backend, directory) = sqlite_backend_for_test().await;
    let job = submit_job(
        &backend,
        NewJob {
            owner: JobOwner {
                user_id: 4242,
                chat_id: 4242,
            },
            url: format!(
                "https://viewer:{URL_PASSWORD}@cdn.example.test/live/index.m3u8?token={QUERY_TOKEN}&quality=hd"
            ),
            options: Default::default(),
            priority: JobPriority::Normal,
        },
    )
    .await
    .expect("submit");
    let dashboard = TestDashboard::start(
        backend,
        settings_for_test(directory.path().join("recordings")),
    )
    .await;
    for path in ["/jobs", &format!("/jobs/{}", job.id), "/metrics", "/stats"] {
        let response = dashboard.get(path).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let body = response.text().await.expect("body");
        assert!(
            !body.contains(URL_PASSWORD) && !body.contains(QUERY_TOKEN),
            "{path} shows the link's secrets: {body}"
        );
        if path == "/jobs" {
            // The link is still recognisable: host and path stay.
            assert!(body.contains("cdn.example.test/live/index.m3u8"), "{body}");
        }
    }
    dashboard.stop().await;
}
