//! `streambot dashboard`, and the dashboard inside `streambot run` when `DASHBOARD_ENABLED=true`:
//! settings checked and the address bound before anything starts, then served until shutdown.
//!
//! Settings: `DASHBOARD_ENABLED`, `DASHBOARD_SECRET` (at least 16 characters, or the dashboard
//! refuses to start), `DASHBOARD_BIND` (default 127.0.0.1:8080), `DASHBOARD_RATE_LIMIT`.

use std::process::ExitCode;

use streambot_dashboard::{DashboardSettings, DashboardState, serve_dashboard};
use streambot_store::JobBackend;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::roles::{JobsSettings, cancel_on_signal, open_backend_or_exit};

/// Settings read and the listener bound: ready to serve.
pub struct PreparedDashboard {
    settings: DashboardSettings,
    listener: TcpListener,
}

/// Reads the dashboard's settings and binds its address; a problem is one line and exit code 2.
pub async fn prepare_dashboard(
    jobs_settings: &JobsSettings,
) -> Result<PreparedDashboard, ExitCode> {
    let values = crate::settings::environment();
    let settings = DashboardSettings::from_lookup(
        |name| values.get(name).map(str::to_string),
        jobs_settings.recordings_directory.clone(),
    )
    .map_err(|error| {
        eprintln!("streambot: {error}");
        ExitCode::from(2)
    })?;
    let listener = TcpListener::bind(settings.bind_address)
        .await
        .map_err(|error| {
            eprintln!(
                "streambot: the dashboard could not listen on DASHBOARD_BIND={}: {error}",
                settings.bind_address
            );
            ExitCode::from(2)
        })?;
    Ok(PreparedDashboard { settings, listener })
}

/// The dashboard for `streambot run`: prepared when `DASHBOARD_ENABLED=true`, else `None`.
pub async fn prepare_dashboard_if_enabled(
    jobs_settings: &JobsSettings,
) -> Result<Option<PreparedDashboard>, ExitCode> {
    match crate::settings::environment().boolean("DASHBOARD_ENABLED") {
        Ok(false) => Ok(None),
        Ok(true) => prepare_dashboard(jobs_settings).await.map(Some),
        Err(error) => {
            eprintln!("streambot: {error}");
            Err(ExitCode::from(2))
        }
    }
}

/// Serves until `shutdown`; a failure is logged, never taken down to the other roles.
pub async fn serve_prepared_dashboard<B: JobBackend>(
    prepared: PreparedDashboard,
    backend: B,
    shutdown: CancellationToken,
) -> Result<(), streambot_dashboard::DashboardError> {
    let state = DashboardState::new(backend, prepared.settings);
    let result = serve_dashboard(prepared.listener, state, shutdown).await;
    if let Err(error) = &result {
        tracing::error!(%error, "the dashboard stopped");
    }
    result
}

/// `streambot dashboard`: the dashboard alone, on the store the settings choose.
pub async fn run_dashboard_role() -> ExitCode {
    let jobs_settings = match crate::roles::load_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let prepared = match prepare_dashboard(&jobs_settings).await {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let backend = match open_backend_or_exit(&jobs_settings, "streambot").await {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let result = crate::with_backend!(backend, backend => serve_prepared_dashboard(prepared, backend, shutdown).await);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("streambot dashboard: {error}");
            ExitCode::from(1)
        }
    }
}
