//! The roles of the binary and their settings: `run` (bot + worker + scheduler), `bot`, `worker`,
//! `scheduler`, and the backend every role and `streambot jobs` use: Redis when `REDIS_URL` is
//! set, else the embedded SQLite store under `DATA_DIR`.
//!
//! Settings (environment or `.env`): `REDIS_URL`, `REDIS_KEY_PREFIX` (default `streambot:`),
//! `DATA_DIR` (default `./data`), `LOCAL_STORAGE_PATH` (default `DATA_DIR/recordings`),
//! `WORKER_CONCURRENCY` (default `auto`: sized from memory and open files),
//! `TRANSCODE_CONCURRENCY` (default half the cores), `FINALIZE_CONCURRENCY` (default the cores),
//! `WORKER_ID` (default host-pid), `MAX_DISK_USAGE_GB`
//! (unset: no disk guard), `FILE_RETENTION_HOURS` (default 72, fractions allowed; 0 keeps
//! recordings forever), `FFMPEG_DEFAULT_TIMEOUT` (the maximum recording duration, 7200 s),
//! `ALLOW_PRIVATE_NETWORKS`. A bad one stops start-up with one line naming the variable, the value
//! and what is allowed.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use streambot_core::JobPriority;
use streambot_store::{RedisBackend, SqliteBackend};
use streambot_worker::{NativeHlsEngine, SchedulerConfig, WorkerConfig, run_scheduler, run_worker};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A setting that stops start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub variable: &'static str,
    pub value: String,
    pub allowed: &'static str,
}

impl fmt::Display for SettingError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            return write!(formatter, "{} is not set: {}", self.variable, self.allowed);
        }
        write!(
            formatter,
            "{}={:?} is not allowed: {}",
            self.variable, self.value, self.allowed
        )
    }
}

impl std::error::Error for SettingError {}

#[derive(Debug, Clone)]
pub struct JobsSettings {
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    pub data_directory: PathBuf,
    pub recordings_directory: PathBuf,
    /// Recordings at once; `None` (`auto`) sizes them from the machine at worker start.
    pub worker_concurrency: Option<usize>,
    /// Re-encoding finalizes at once; `None`: half the cores.
    pub transcode_concurrency: Option<usize>,
    /// Finalize remuxes at once; `None`: the cores.
    pub finalize_concurrency: Option<usize>,
    pub worker_id: String,
    pub maximum_disk_bytes: Option<u64>,
    pub retention: Option<Duration>,
    pub allow_private_networks: bool,
    /// `FFMPEG_DEFAULT_TIMEOUT`: the longest a job with no duration records (default 7200 s).
    pub maximum_recording_duration: Duration,
}

pub(crate) fn setting(variable: &'static str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

pub(crate) fn invalid(variable: &'static str, value: &str, allowed: &'static str) -> SettingError {
    SettingError {
        variable,
        value: value.to_string(),
        allowed,
    }
}

pub fn parse_boolean_setting(variable: &'static str) -> Result<bool, SettingError> {
    match setting(variable) {
        None => Ok(false),
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(invalid(variable, &value, "true or false")),
        },
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

impl JobsSettings {
    pub fn from_environment() -> Result<Self, SettingError> {
        let redis_url = match setting("REDIS_URL") {
            None => None,
            Some(url)
                if ["redis://", "rediss://", "unix://", "redis+unix://"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme)) =>
            {
                Some(url)
            }
            Some(url) => {
                return Err(invalid(
                    "REDIS_URL",
                    &url,
                    "a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0",
                ));
            }
        };
        let redis_key_prefix = setting("REDIS_KEY_PREFIX").unwrap_or_else(|| "streambot:".into());
        if redis_key_prefix.chars().any(char::is_whitespace) {
            return Err(invalid(
                "REDIS_KEY_PREFIX",
                &redis_key_prefix,
                "a key prefix without spaces, e.g. streambot:",
            ));
        }
        let data_directory = PathBuf::from(setting("DATA_DIR").unwrap_or_else(|| "data".into()));
        let recordings_directory = setting("LOCAL_STORAGE_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_directory.join("recordings"));
        let worker_concurrency = parse_pool_size(
            "WORKER_CONCURRENCY",
            "auto (sized from memory and open files) or a whole number from 1 to 100000",
        )?;
        let transcode_concurrency = parse_pool_size(
            "TRANSCODE_CONCURRENCY",
            "auto (half the cores) or a whole number from 1 to 100000",
        )?;
        let finalize_concurrency = parse_pool_size(
            "FINALIZE_CONCURRENCY",
            "auto (one per core) or a whole number from 1 to 100000",
        )?;
        let worker_id = match setting("WORKER_ID") {
            None => default_worker_id(),
            Some(value)
                if value.len() <= 64
                    && value.chars().all(|character| {
                        character.is_ascii_alphanumeric() || "-_.".contains(character)
                    }) =>
            {
                value
            }
            Some(value) => {
                return Err(invalid(
                    "WORKER_ID",
                    &value,
                    "up to 64 letters, digits, '-', '_' or '.'",
                ));
            }
        };
        let maximum_disk_bytes = match setting("MAX_DISK_USAGE_GB") {
            None => None,
            Some(value) => match value.parse::<f64>() {
                Ok(gigabytes) if gigabytes > 0.0 && gigabytes.is_finite() => {
                    Some((gigabytes * 1024.0 * 1024.0 * 1024.0) as u64)
                }
                _ => {
                    return Err(invalid(
                        "MAX_DISK_USAGE_GB",
                        &value,
                        "a number of gigabytes greater than 0, e.g. 50",
                    ));
                }
            },
        };
        // Hours, fractions allowed (0.5 = 30 minutes), as the storage settings read it.
        let retention = match setting("FILE_RETENTION_HOURS") {
            None => Some(Duration::from_secs(72 * 3600)),
            Some(value) => match value.parse::<f64>() {
                Ok(0.0) => None,
                Ok(hours) if hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0 * 10.0 => {
                    Some(Duration::from_secs_f64(hours * 3600.0))
                }
                _ => {
                    return Err(invalid(
                        "FILE_RETENTION_HOURS",
                        &value,
                        "a number of hours, like 72 or 0.5 (0 keeps recordings forever)",
                    ));
                }
            },
        };
        Ok(JobsSettings {
            redis_url,
            redis_key_prefix,
            data_directory,
            recordings_directory,
            worker_concurrency,
            transcode_concurrency,
            finalize_concurrency,
            worker_id,
            maximum_disk_bytes,
            retention,
            allow_private_networks: parse_boolean_setting("ALLOW_PRIVATE_NETWORKS")?,
            maximum_recording_duration: match setting("FFMPEG_DEFAULT_TIMEOUT") {
                None => streambot_worker::DEFAULT_MAXIMUM_RECORDING_DURATION,
                Some(value) => match value.parse::<u64>() {
                    Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
                    _ => {
                        return Err(invalid(
                            "FFMPEG_DEFAULT_TIMEOUT",
                            &value,
                            "a whole number of seconds greater than 0, e.g. 7200",
                        ));
                    }
                },
            },
        })
    }
}

/// A pool size setting: unset or `auto` is `None` (sized at start), else 1 to 100,000.
fn parse_pool_size(
    variable: &'static str,
    allowed: &'static str,
) -> Result<Option<usize>, SettingError> {
    match setting(variable) {
        None => Ok(None),
        Some(value) if value.trim().eq_ignore_ascii_case("auto") => Ok(None),
        Some(value) => match value.trim().parse::<usize>() {
            Ok(count) if (1..=100_000).contains(&count) => Ok(Some(count)),
            _ => Err(invalid(variable, &value, allowed)),
        },
    }
}

/// The backend the settings choose.
#[derive(Clone)]
pub enum ConfiguredBackend {
    Embedded(SqliteBackend),
    Redis(RedisBackend),
}

/// Runs `$body` with `$name` bound to the concrete backend.
#[macro_export]
macro_rules! with_backend {
    ($backend:expr, $name:ident => $body:expr) => {
        match $backend {
            $crate::roles::ConfiguredBackend::Embedded($name) => $body,
            $crate::roles::ConfiguredBackend::Redis($name) => $body,
        }
    };
}

pub async fn open_backend(settings: &JobsSettings) -> anyhow::Result<ConfiguredBackend> {
    match &settings.redis_url {
        Some(url) => {
            let backend = RedisBackend::connect(url, &settings.redis_key_prefix)
                .await
                .map_err(|error| {
                    anyhow::anyhow!("could not connect to Redis at REDIS_URL: {error}")
                })?;
            Ok(ConfiguredBackend::Redis(backend))
        }
        None => {
            let backend = SqliteBackend::open_in_data_directory(&settings.data_directory)
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "could not open the job store in DATA_DIR={}: {error}",
                        settings.data_directory.display()
                    )
                })?;
            Ok(ConfiguredBackend::Embedded(backend))
        }
    }
}

fn parse_queue_name(text: &str) -> Result<JobPriority, String> {
    text.trim().parse()
}

#[derive(Debug, clap::Args)]
pub struct WorkerArguments {
    /// Queues this worker serves, e.g. `priority` to keep capacity for priority jobs.
    #[arg(long, value_delimiter = ',', default_value = "priority,normal", value_parser = parse_queue_name)]
    pub queues: Vec<JobPriority>,
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("shutting down: finishing the segments in flight");
        token.cancel();
    });
}

fn load_settings() -> Result<JobsSettings, ExitCode> {
    let settings = JobsSettings::from_environment().map_err(|error| {
        eprintln!("streambot: {error}");
        ExitCode::from(2)
    })?;
    Ok(settings)
}

/// The storage settings (`STORAGE_BACKEND` and its settings), rooted at the recordings
/// directory.
fn storage_settings_from_environment(
    settings: &JobsSettings,
) -> Result<streambot_storage::StorageSettings, ExitCode> {
    let mut values: std::collections::HashMap<String, String> = std::env::vars().collect();
    values.insert(
        "LOCAL_STORAGE_PATH".to_string(),
        settings.recordings_directory.to_string_lossy().into_owned(),
    );
    streambot_storage::StorageSettings::from_env_map(&values).map_err(|error| {
        eprintln!("streambot: {error}");
        ExitCode::from(2)
    })
}

/// The storage finished files go to (`STORAGE_BACKEND` and its settings), rooted at the
/// recordings directory.
pub(crate) fn storage_from_environment(
    settings: &JobsSettings,
) -> Result<std::sync::Arc<streambot_storage::Storage>, ExitCode> {
    let storage_settings = storage_settings_from_environment(settings)?;
    let storage = storage_settings.build_storage().map_err(|error| {
        eprintln!("streambot: storage: {error}");
        ExitCode::from(2)
    })?;
    Ok(std::sync::Arc::new(storage))
}

fn worker_config(
    settings: &JobsSettings,
    queues: Vec<JobPriority>,
) -> Result<WorkerConfig, ExitCode> {
    // Before sizing: the open-file limit counts in `auto`, and 1,000 recordings need more than
    // the usual 1,024.
    let open_file_limit = streambot_worker::slots::raise_open_file_limit();
    let machine = streambot_worker::slots::measure_machine();
    let sizing = streambot_worker::slots::automatic_recording_slots(
        machine,
        streambot_worker::slots::RecordingCost::default(),
    );
    let transcode = settings
        .transcode_concurrency
        .unwrap_or_else(|| streambot_worker::slots::default_transcode_concurrency(machine.cores));
    let finalize = settings
        .finalize_concurrency
        .unwrap_or_else(|| streambot_worker::slots::default_finalize_concurrency(machine.cores));
    let mut config = WorkerConfig::new(&settings.worker_id, settings.recordings_directory.clone())
        .with_transcode_concurrency(transcode)
        .with_finalize_concurrency(finalize);
    config.concurrency = match settings.worker_concurrency {
        Some(count) => count,
        None => {
            tracing::info!(
                slots = sizing.slots,
                limited_by = sizing.limited_by,
                by_memory = ?sizing.by_memory,
                by_open_files = ?sizing.by_descriptors,
                available_memory_bytes = ?machine.available_memory_bytes,
                open_file_limit = ?open_file_limit,
                "WORKER_CONCURRENCY=auto"
            );
            sizing.slots
        }
    };
    config.queues = queues;
    // Parts are cut to fit the delivery's upload limit (Telegram: 50 MB, 2000 MB with a local
    // Bot API server).
    config.maximum_part_bytes = Some(crate::bot_role::upload_limit_bytes_from_environment());
    let storage = storage_from_environment(settings)?;
    config.user_disk_quota_bytes = storage.local.user_quota_bytes();
    config.storage = Some(storage);
    config.default_maximum_duration = Some(settings.maximum_recording_duration);
    config.maximum_disk_bytes = settings.maximum_disk_bytes;
    // Admins have no quota (as when the bot accepts their link); the bot role validates the list.
    config.quota_exempt_user_ids = setting("TELEGRAM_ADMIN_IDS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|item| item.trim().parse::<i64>().ok())
        .collect();
    Ok(config)
}

/// Retention and the disk guard work on the working directories and on the finished files
/// storage filed (`FILE_RETENTION_DELETE_REMOTE`: their remote copies too).
fn scheduler_config(settings: &JobsSettings) -> Result<SchedulerConfig, ExitCode> {
    let mut config =
        SchedulerConfig::new(&settings.worker_id, settings.recordings_directory.clone());
    config.retention = settings.retention;
    config.maximum_disk_bytes = settings.maximum_disk_bytes;
    config.retention_deletes_remote_copies =
        storage_settings_from_environment(settings)?.retention_deletes_remote_copies;
    config.storage = Some(storage_from_environment(settings)?);
    Ok(config)
}

async fn start(settings: &JobsSettings) -> Result<(ConfiguredBackend, NativeHlsEngine), ExitCode> {
    // Without ffmpeg, recordings still complete but stay as TS/fMP4 parts: say so once, up front.
    let runner = crate::ffmpeg_settings::ffmpeg_runner_from_environment();
    if let Err(error) = runner.versions().await {
        eprintln!(
            "streambot: warning: {} Recordings will be kept as TS parts and not remuxed to mp4.",
            error.user_message()
        );
    }
    let backend = open_backend(settings).await.map_err(|error| {
        eprintln!("streambot: {error:#}");
        ExitCode::from(2)
    })?;
    let engine = NativeHlsEngine::new(streambot_recorder::network_policy(
        settings.allow_private_networks,
    ))
    .map_err(|error| {
        eprintln!("streambot: {error}");
        ExitCode::from(2)
    })?
    .with_finalizer(runner);
    Ok((backend, engine))
}

fn exit_code(result: Result<(), streambot_store::JobsError>, role: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("streambot {role}: {error}");
            ExitCode::from(1)
        }
    }
}

/// `streambot worker`.
pub async fn run_worker_role(arguments: WorkerArguments) -> ExitCode {
    let settings = match load_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let (backend, engine) = match start(&settings).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let mut queues = Vec::new();
    for queue in arguments.queues {
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    let config = match worker_config(&settings, queues) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let result =
        with_backend!(backend, backend => run_worker(backend, engine, config, shutdown).await);
    exit_code(result, "worker")
}

/// `streambot scheduler`.
pub async fn run_scheduler_role() -> ExitCode {
    let settings = match load_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let (backend, _) = match start(&settings).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let config = match scheduler_config(&settings) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let result = with_backend!(backend, backend => run_scheduler(backend, config, shutdown).await);
    exit_code(result, "scheduler")
}

/// The bot's settings, with the storage `/delete` goes through.
fn bot_settings_with_storage(
    settings: &JobsSettings,
) -> Result<streambot_bot::BotSettings, ExitCode> {
    let mut bot_settings = crate::bot_role::bot_settings_from_environment(settings)
        .map_err(|error| crate::bot_role::report_setting_error(&error))?;
    bot_settings.storage = Some(storage_from_environment(settings)?);
    Ok(bot_settings)
}

/// `streambot run`: the bot, a worker and the scheduler in one process.
pub async fn run_all_in_one() -> ExitCode {
    let settings = match load_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let bot_settings = match bot_settings_with_storage(&settings) {
        Ok(bot_settings) => bot_settings,
        Err(code) => return code,
    };
    let (backend, engine) = match start(&settings).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let tracker = TaskTracker::new();
    let worker_config =
        match worker_config(&settings, vec![JobPriority::Priority, JobPriority::Normal]) {
            Ok(config) => config,
            Err(code) => return code,
        };
    let scheduler_config = match scheduler_config(&settings) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let dashboard = match crate::dashboard_role::prepare_dashboard_if_enabled(&settings).await {
        Ok(dashboard) => dashboard,
        Err(code) => return code,
    };
    with_backend!(backend, backend => {
        let dashboard_task = dashboard.map(|prepared| {
            tracker.spawn(crate::dashboard_role::serve_prepared_dashboard(prepared, backend.clone(), shutdown.clone()))
        });
        let scheduler_backend = backend.clone();
        let scheduler_shutdown = shutdown.clone();
        let scheduler = tracker.spawn(async move {
            run_scheduler(scheduler_backend, scheduler_config, scheduler_shutdown).await
        });
        let bot_backend = backend.clone();
        let bot_shutdown = shutdown.clone();
        let bot = tracker.spawn(async move {
            let result = crate::bot_role::run_bot_role(bot_settings, bot_backend, bot_shutdown.clone()).await;
            // Without the bot there is no one to talk to: stop the other roles too.
            bot_shutdown.cancel();
            result
        });
        let worker = tracker.spawn(run_worker(backend, engine, worker_config, shutdown.clone()));
        tracker.close();
        let worker_result = worker.await;
        shutdown.cancel();
        let scheduler_result = scheduler.await;
        let bot_result = bot.await;
        if let Some(dashboard_task) = dashboard_task {
            let _ = dashboard_task.await;
        }
        if let Ok(Err(error)) = &bot_result {
            eprintln!("streambot run: the bot stopped: {error}");
            return ExitCode::from(1);
        }
        match (worker_result, scheduler_result) {
            (Ok(Ok(())), Ok(Ok(()))) => ExitCode::SUCCESS,
            (Ok(Err(error)), _) | (_, Ok(Err(error))) => {
                eprintln!("streambot run: {error}");
                ExitCode::from(1)
            }
            _ => {
                eprintln!("streambot run: a role's task failed");
                ExitCode::from(1)
            }
        }
    })
}

/// `streambot bot`: the Telegram bot alone (workers run elsewhere, sharing Redis and the
/// recordings volume).
pub async fn run_bot_only() -> ExitCode {
    let settings = match load_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let bot_settings = match bot_settings_with_storage(&settings) {
        Ok(bot_settings) => bot_settings,
        Err(code) => return code,
    };
    let backend = match open_backend(&settings).await {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("streambot: {error:#}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let result = with_backend!(backend, backend => crate::bot_role::run_bot_role(bot_settings, backend, shutdown).await);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("streambot bot: {error}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct WorkerCommandLine {
        #[command(flatten)]
        worker: WorkerArguments,
    }

    #[test]
    fn queues_argument_parses() {
        use clap::Parser;
        let parse = |arguments: &[&str]| {
            WorkerCommandLine::try_parse_from(
                std::iter::once("worker").chain(arguments.iter().copied()),
            )
            .map(|line| line.worker.queues)
        };
        assert_eq!(
            parse(&[]).expect("default"),
            vec![JobPriority::Priority, JobPriority::Normal]
        );
        assert_eq!(
            parse(&["--queues", "priority"]).expect("one"),
            vec![JobPriority::Priority]
        );
        assert_eq!(
            parse(&["--queues", "normal,priority"]).expect("two"),
            vec![JobPriority::Normal, JobPriority::Priority]
        );
        assert!(parse(&["--queues", "urgent"]).is_err());
    }

    #[test]
    fn a_setting_error_is_one_line_naming_variable_value_and_allowed() {
        let error = invalid("WORKER_CONCURRENCY", "zero", "a whole number from 1 to 64");
        assert_eq!(
            error.to_string(),
            "WORKER_CONCURRENCY=\"zero\" is not allowed: a whole number from 1 to 64"
        );
    }
}
