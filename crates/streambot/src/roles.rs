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

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use streambot_core::JobPriority;
use streambot_store::{RedisBackend, SqliteBackend};
use streambot_worker::{
    NativeHlsEngine, ScheduleRunnerConfig, SchedulerConfig, WorkerConfig, run_schedule_runner,
    run_scheduler, run_worker,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::settings::SettingError;
use crate::settings::{EnvironmentValues, invalid, keep_or_note};

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
    /// `MAX_PART_SIZE_MB`: recordings are cut into files of at most this many bytes (never over
    /// the upload limit); `None`: the upload limit.
    pub maximum_part_bytes: Option<u64>,
    pub retention: Option<Duration>,
    pub allow_private_networks: bool,
    /// `FFMPEG_DEFAULT_TIMEOUT`: the longest a job with no duration records (default 7200 s).
    pub maximum_recording_duration: Duration,
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
    /// Parses the jobs settings; every bad value is reported (start-up shows the first).
    pub fn from_values(values: &EnvironmentValues) -> Result<Self, Vec<SettingError>> {
        let mut problems = Vec::new();
        let redis_url =
            keep_or_note(parse_redis_url(values.redis_url.as_deref()), &mut problems).flatten();
        let redis_key_prefix = keep_or_note(
            parse_redis_key_prefix(values.redis_key_prefix.as_deref()),
            &mut problems,
        );
        let data_directory = PathBuf::from(values.data_dir.as_deref().unwrap_or("data"));
        let recordings_directory = values
            .local_storage_path
            .as_deref()
            .map(PathBuf::from)
            .unwrap_or_else(|| data_directory.join("recordings"));
        let worker_concurrency = keep_or_note(
            parse_pool_size(
                "WORKER_CONCURRENCY",
                values.worker_concurrency.as_deref(),
                "auto (sized from memory and open files) or a whole number from 1 to 100000",
            ),
            &mut problems,
        );
        let transcode_concurrency = keep_or_note(
            parse_pool_size(
                "TRANSCODE_CONCURRENCY",
                values.transcode_concurrency.as_deref(),
                "auto (half the cores) or a whole number from 1 to 100000",
            ),
            &mut problems,
        );
        let finalize_concurrency = keep_or_note(
            parse_pool_size(
                "FINALIZE_CONCURRENCY",
                values.finalize_concurrency.as_deref(),
                "auto (one per core) or a whole number from 1 to 100000",
            ),
            &mut problems,
        );
        let worker_id = keep_or_note(parse_worker_id(values.worker_id.as_deref()), &mut problems);
        let maximum_disk_bytes = keep_or_note(
            parse_maximum_disk_bytes(values.max_disk_usage_gb.as_deref()),
            &mut problems,
        )
        .flatten();
        let maximum_part_bytes = keep_or_note(
            parse_maximum_part_bytes(values.max_part_size_mb.as_deref()),
            &mut problems,
        )
        .flatten();
        let retention = keep_or_note(
            parse_retention(values.file_retention_hours.as_deref()),
            &mut problems,
        );
        let allow_private_networks =
            keep_or_note(values.boolean("ALLOW_PRIVATE_NETWORKS"), &mut problems);
        let maximum_recording_duration = keep_or_note(
            parse_maximum_recording_duration(values.ffmpeg_default_timeout.as_deref()),
            &mut problems,
        );
        match (
            redis_key_prefix,
            worker_concurrency,
            transcode_concurrency,
            finalize_concurrency,
            worker_id,
            retention,
            allow_private_networks,
            maximum_recording_duration,
        ) {
            (
                Some(redis_key_prefix),
                Some(worker_concurrency),
                Some(transcode_concurrency),
                Some(finalize_concurrency),
                Some(worker_id),
                Some(retention),
                Some(allow_private_networks),
                Some(maximum_recording_duration),
            ) if problems.is_empty() => Ok(JobsSettings {
                redis_url,
                redis_key_prefix,
                data_directory,
                recordings_directory,
                worker_concurrency,
                transcode_concurrency,
                finalize_concurrency,
                worker_id,
                maximum_disk_bytes,
                maximum_part_bytes,
                retention,
                allow_private_networks,
                maximum_recording_duration,
            }),
            _ => Err(problems),
        }
    }
}

fn parse_redis_url(value: Option<&str>) -> Result<Option<String>, SettingError> {
    match value {
        None => Ok(None),
        Some(url)
            if ["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|scheme| url.starts_with(scheme)) =>
        {
            Ok(Some(url.to_string()))
        }
        Some(url) => Err(invalid(
            "REDIS_URL",
            url,
            "a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0",
        )),
    }
}

fn parse_redis_key_prefix(value: Option<&str>) -> Result<String, SettingError> {
    let prefix = value.unwrap_or("streambot:");
    if prefix.chars().any(char::is_whitespace) {
        return Err(invalid(
            "REDIS_KEY_PREFIX",
            prefix,
            "a key prefix without spaces, e.g. streambot:",
        ));
    }
    Ok(prefix.to_string())
}

/// A pool size: `auto` (or unset) lets the worker size it from the machine.
fn parse_pool_size(
    variable: &'static str,
    value: Option<&str>,
    allowed: &'static str,
) -> Result<Option<usize>, SettingError> {
    match value {
        None => Ok(None),
        Some(value) if value.trim().eq_ignore_ascii_case("auto") => Ok(None),
        Some(value) => match value.trim().parse::<usize>() {
            Ok(count) if (1..=100_000).contains(&count) => Ok(Some(count)),
            _ => Err(invalid(variable, value, allowed)),
        },
    }
}

fn parse_worker_id(value: Option<&str>) -> Result<String, SettingError> {
    match value {
        None => Ok(default_worker_id()),
        Some(value)
            if value.len() <= 64
                && value.chars().all(|character| {
                    character.is_ascii_alphanumeric() || "-_.".contains(character)
                }) =>
        {
            Ok(value.to_string())
        }
        Some(value) => Err(invalid(
            "WORKER_ID",
            value,
            "up to 64 letters, digits, '-', '_' or '.'",
        )),
    }
}

fn parse_maximum_disk_bytes(value: Option<&str>) -> Result<Option<u64>, SettingError> {
    match value {
        None => Ok(None),
        Some(value) => match value.parse::<f64>() {
            Ok(gigabytes) if gigabytes > 0.0 && gigabytes.is_finite() => {
                Ok(Some((gigabytes * 1024.0 * 1024.0 * 1024.0) as u64))
            }
            _ => Err(invalid(
                "MAX_DISK_USAGE_GB",
                value,
                "a number of gigabytes greater than 0, e.g. 50",
            )),
        },
    }
}

/// `MAX_PART_SIZE_MB`: decimal megabytes (as Telegram's limits are written), fractions allowed.
fn parse_maximum_part_bytes(value: Option<&str>) -> Result<Option<u64>, SettingError> {
    match value {
        None => Ok(None),
        Some(value) => match value.trim().parse::<f64>() {
            Ok(megabytes) if (0.01..=1_000_000.0).contains(&megabytes) => {
                Ok(Some((megabytes * 1e6).round() as u64))
            }
            _ => Err(invalid(
                "MAX_PART_SIZE_MB",
                value,
                "a number of megabytes from 0.01 up, e.g. 20 (unset: the upload limit, 50 MB for Telegram)",
            )),
        },
    }
}

/// `FILE_RETENTION_HOURS`: hours, fractions allowed (0.5 = 30 minutes), as the storage settings
/// read it; 0 keeps recordings forever (None).
fn parse_retention(value: Option<&str>) -> Result<Option<Duration>, SettingError> {
    match value {
        None => Ok(Some(Duration::from_secs(72 * 3600))),
        Some(value) => match value.parse::<f64>() {
            Ok(0.0) => Ok(None),
            Ok(hours) if hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0 * 10.0 => {
                Ok(Some(Duration::from_secs_f64(hours * 3600.0)))
            }
            _ => Err(invalid(
                "FILE_RETENTION_HOURS",
                value,
                "a number of hours, like 72 or 0.5 (0 keeps recordings forever)",
            )),
        },
    }
}

/// `FFMPEG_DEFAULT_TIMEOUT`: the longest a job with no duration records (default 7200 s).
pub(crate) fn parse_maximum_recording_duration(
    value: Option<&str>,
) -> Result<Duration, SettingError> {
    match value {
        None => Ok(streambot_worker::DEFAULT_MAXIMUM_RECORDING_DURATION),
        Some(value) => match value.parse::<u64>() {
            Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
            _ => Err(invalid(
                "FFMPEG_DEFAULT_TIMEOUT",
                value,
                "a whole number of seconds greater than 0, e.g. 7200",
            )),
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

/// [`open_backend`], or its failure as one line (`prefix: …`) and exit code 2.
pub(crate) async fn open_backend_or_exit(
    settings: &JobsSettings,
    prefix: &str,
) -> Result<ConfiguredBackend, ExitCode> {
    open_backend(settings).await.map_err(|error| {
        eprintln!("{prefix}: {error:#}");
        ExitCode::from(2)
    })
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

/// Cancels `token` on the first Ctrl-C or SIGTERM (every role winds down: segments in flight are
/// committed, jobs given back); a second one exits at once with status 130, whatever is running.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let mut signals = ShutdownSignals::install();
        signals.next().await;
        tracing::info!("shutting down: finishing the segments in flight");
        eprintln!(
            "streambot: shutting down (finishing the segments in flight); send the signal again to exit at once"
        );
        token.cancel();
        signals.next().await;
        eprintln!(
            "streambot: second signal: exiting at once; unfinished jobs resume on the next start"
        );
        std::process::exit(130);
    });
}

/// SIGINT (Ctrl-C) and SIGTERM, as one stream of "a signal came"; registered once, so a signal
/// between two waits is not lost.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
async fn next_of(stream: &mut Option<tokio::signal::unix::Signal>) {
    match stream.as_mut() {
        Some(stream) => {
            stream.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

impl ShutdownSignals {
    fn install() -> ShutdownSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            ShutdownSignals {
                terminate: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = next_of(&mut self.terminate) => {}
            _ = next_of(&mut self.interrupt) => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The jobs settings of this process; the first bad one is one line and exit code 2.
pub(crate) fn load_settings() -> Result<JobsSettings, ExitCode> {
    JobsSettings::from_values(crate::settings::environment()).map_err(|problems| {
        for problem in problems.iter().take(1) {
            eprintln!("streambot: {problem}");
        }
        ExitCode::from(2)
    })
}

/// The storage settings (`STORAGE_BACKEND` and its settings), rooted at the recordings
/// directory.
fn storage_settings_from_environment(
    settings: &JobsSettings,
) -> Result<streambot_storage::StorageSettings, ExitCode> {
    let mut values = crate::settings::environment().to_map();
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
    config.shutdown_deadline = WORKER_SHUTDOWN_DEADLINE;
    // Parts are cut to fit the delivery's upload limit (Telegram: 50 MB, 2000 MB with a local
    // Bot API server), or smaller files when `MAX_PART_SIZE_MB` asks for them.
    let upload_limit = crate::bot_role::upload_limit_bytes(crate::settings::environment());
    config.maximum_part_bytes = Some(
        settings
            .maximum_part_bytes
            .map_or(upload_limit, |asked| asked.min(upload_limit)),
    );
    let storage = storage_from_environment(settings)?;
    config.user_disk_quota_bytes = storage.local.user_quota_bytes();
    config.storage = Some(storage);
    config.default_maximum_duration = Some(settings.maximum_recording_duration);
    config.default_wait_for_live = crate::schedule_settings::ScheduleSettings::from_environment()
        .map_err(|error| {
            eprintln!("streambot: {error}");
            ExitCode::from(2)
        })?
        .wait_for_live;
    config.maximum_disk_bytes = settings.maximum_disk_bytes;
    // Admins have no quota (as when the bot accepts their link); the bot role validates the list.
    config.quota_exempt_user_ids = crate::settings::environment()
        .telegram_admin_ids
        .as_deref()
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
    let runner = crate::ffmpeg_settings::ffmpeg_runner(crate::settings::environment());
    if let Err(error) = runner.versions().await {
        eprintln!(
            "streambot: warning: {} Recordings will be kept as TS parts and not remuxed to mp4.",
            error.user_message()
        );
    }
    let backend = open_backend_or_exit(settings, "streambot").await?;
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

/// [`start`], or a clean exit (status 0) when shutdown is asked while it runs (a slow ffmpeg
/// check, a store that takes long to open).
async fn start_unless_stopped(
    settings: &JobsSettings,
    shutdown: &CancellationToken,
) -> Result<(ConfiguredBackend, NativeHlsEngine), ExitCode> {
    tokio::select! {
        started = start(settings) => started,
        _ = shutdown.cancelled() => Err(ExitCode::SUCCESS),
    }
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

/// The bot's sender of finished parts for a worker: with `TELEGRAM_BOT_TOKEN` the worker that
/// holds a job's files sends them to the owner; without it (CLI-only use) they stay in storage.
/// The summary says when `FILE_RETENTION_HOURS` deletes the files.
fn telegram_sender_from_environment<B: streambot_store::JobBackend>(
    settings: &JobsSettings,
    backend: &B,
) -> Result<Option<std::sync::Arc<streambot_bot::TelegramPartSender<B>>>, ExitCode> {
    let values = crate::settings::environment();
    if values.telegram_bot_token.is_none() {
        return Ok(None);
    }
    let bot_settings = crate::bot_role::bot_settings_from_values(values, settings)
        .map_err(|error| crate::bot_role::report_setting_error(&error))?;
    let sender = streambot_bot::TelegramPartSender::new(&bot_settings, backend.clone())
        .map_err(|error| {
            eprintln!("streambot: {error}");
            ExitCode::from(2)
        })?
        .with_file_retention(settings.retention);
    Ok(Some(std::sync::Arc::new(sender)))
}

fn part_sender_from_environment<B: streambot_store::JobBackend>(
    settings: &JobsSettings,
    backend: &B,
) -> Result<Option<streambot_worker::PartSenderHandle>, ExitCode> {
    Ok(telegram_sender_from_environment(settings, backend)?
        .map(|sender| streambot_worker::PartSenderHandle(sender)))
}

/// The disk guard tells `TELEGRAM_ADMIN_IDS` through the same sender (with a token).
fn admin_notifier_from_environment<B: streambot_store::JobBackend>(
    settings: &JobsSettings,
    backend: &B,
) -> Result<Option<streambot_worker::AdminNotifierHandle>, ExitCode> {
    Ok(telegram_sender_from_environment(settings, backend)?
        .map(|sender| streambot_worker::AdminNotifierHandle(sender)))
}

/// `streambot worker`.
pub async fn run_worker_role(arguments: WorkerArguments) -> ExitCode {
    worker_role(arguments).await.unwrap_or_else(|code| code)
}

async fn worker_role(arguments: WorkerArguments) -> Result<ExitCode, ExitCode> {
    let (shutdown, settings) = begin_a_role()?;
    let (backend, engine) = start_unless_stopped(&settings, &shutdown).await?;
    let mut queues = Vec::new();
    for queue in arguments.queues {
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    let mut config = worker_config(&settings, queues)?;
    let result = with_backend!(backend, backend => {
        config.part_sender = part_sender_from_environment(&settings, &backend)?;
        run_worker(backend, engine, config, shutdown).await
    });
    Ok(exit_code(result, "worker"))
}

/// `streambot scheduler`.
pub async fn run_scheduler_role() -> ExitCode {
    scheduler_role().await.unwrap_or_else(|code| code)
}

async fn scheduler_role() -> Result<ExitCode, ExitCode> {
    let (shutdown, settings) = begin_a_role()?;
    let (backend, _) = start_unless_stopped(&settings, &shutdown).await?;
    let mut config = scheduler_config(&settings)?;
    let result = with_backend!(backend, backend => {
        config.admin_notifier = admin_notifier_from_environment(&settings, &backend)?;
        // Scheduled recordings start from here too (any number of runners is safe).
        let runner = tokio::spawn(run_schedule_runner(
            backend.clone(),
            ScheduleRunnerConfig::default(),
            shutdown.clone(),
        ));
        let result = run_scheduler(backend, config, shutdown.clone()).await;
        shutdown.cancel();
        let _ = runner.await;
        result
    });
    Ok(exit_code(result, "scheduler"))
}

/// The bot's settings, with the storage `/delete` goes through.
fn bot_settings_with_storage(
    settings: &JobsSettings,
) -> Result<streambot_bot::BotSettings, ExitCode> {
    let mut bot_settings =
        crate::bot_role::bot_settings_from_values(crate::settings::environment(), settings)
            .map_err(|error| crate::bot_role::report_setting_error(&error))?;
    bot_settings.storage = Some(storage_from_environment(settings)?);
    Ok(bot_settings)
}

/// How every role begins: the signal handler first of all (a SIGTERM during start-up, a slow
/// store or Telegram retried, is a clean stop), then the settings.
fn begin_a_role() -> Result<(CancellationToken, JobsSettings), ExitCode> {
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let settings = load_settings()?;
    Ok((shutdown, settings))
}

/// How `run` and `bot` begin: [`begin_a_role`], then the bot's settings.
fn begin_a_role_with_the_bot()
-> Result<(CancellationToken, JobsSettings, streambot_bot::BotSettings), ExitCode> {
    let (shutdown, settings) = begin_a_role()?;
    let bot_settings = bot_settings_with_storage(&settings)?;
    Ok((shutdown, settings, bot_settings))
}

/// `streambot run`: the bot, a worker and the scheduler in one process.
pub async fn run_all_in_one() -> ExitCode {
    let (shutdown, settings, bot_settings) = match begin_a_role_with_the_bot() {
        Ok(begun) => begun,
        Err(code) => return code,
    };
    let (backend, engine) = match start_unless_stopped(&settings, &shutdown).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let tracker = TaskTracker::new();
    let mut worker_config =
        match worker_config(&settings, vec![JobPriority::Priority, JobPriority::Normal]) {
            Ok(config) => config,
            Err(code) => return code,
        };
    let mut scheduler_config = match scheduler_config(&settings) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let dashboard = match crate::dashboard_role::prepare_dashboard_if_enabled(&settings).await {
        Ok(dashboard) => dashboard,
        Err(code) => return code,
    };
    with_backend!(backend, backend => {
        worker_config.part_sender = match part_sender_from_environment(&settings, &backend) {
            Ok(sender) => sender,
            Err(code) => return code,
        };
        scheduler_config.admin_notifier = match admin_notifier_from_environment(&settings, &backend) {
            Ok(notifier) => notifier,
            Err(code) => return code,
        };
        let dashboard_task = dashboard.map(|prepared| {
            tracker.spawn(crate::dashboard_role::serve_prepared_dashboard(prepared, backend.clone(), shutdown.clone()))
        });
        let mut roles = Vec::new();
        let role_failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = RoleWatcher { tracker: &tracker, shutdown: &shutdown, role_failed: &role_failed };
        let scheduler_backend = backend.clone();
        let scheduler_shutdown = shutdown.clone();
        roles.push(watcher.watch("scheduler", async move {
            run_scheduler(scheduler_backend, scheduler_config, scheduler_shutdown).await.map_err(|error| error.to_string())
        }));
        roles.push(watcher.watch("schedule runner", {
            let runner = run_schedule_runner(backend.clone(), ScheduleRunnerConfig::default(), shutdown.clone());
            async move { runner.await.map_err(|error| error.to_string()) }
        }));
        let bot_backend = backend.clone();
        let bot_shutdown = shutdown.clone();
        roles.push(watcher.watch("bot", async move {
            crate::bot_role::run_bot_role(bot_settings, bot_backend, bot_shutdown).await
        }));
        roles.push(watcher.watch("worker", {
            let worker = run_worker(backend, engine, worker_config, shutdown.clone());
            async move { worker.await.map_err(|error| error.to_string()) }
        }));
        tracker.close();
        let every_role_ended = async {
            let mut healthy = true;
            for role in roles {
                healthy &= role.await.unwrap_or(false);
            }
            if let Some(dashboard_task) = dashboard_task {
                let _ = dashboard_task.await;
            }
            healthy
        };
        let healthy = within_shutdown_bound(&shutdown, "streambot run", every_role_ended)
            .await
            .unwrap_or(!role_failed.load(std::sync::atomic::Ordering::SeqCst));
        if healthy { ExitCode::SUCCESS } else { ExitCode::from(1) }
    })
}

/// `work` to its end, but once `shutdown` was asked at most [`SHUTDOWN_BOUND`] more: `None`
/// (with a warning) when the bound cut it short. The jobs were given back before (the worker's
/// own wind-down is shorter); what is cut is the bot's last status edits.
async fn within_shutdown_bound<T>(
    shutdown: &CancellationToken,
    what: &str,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let bound = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_BOUND).await;
    };
    tokio::select! {
        output = work => Some(output),
        _ = bound => {
            tracing::warn!(
                bound_seconds = SHUTDOWN_BOUND.as_secs(),
                "{what}: still winding down after the shutdown bound; exiting (unsent status messages are dropped, jobs resume on the next start)"
            );
            None
        }
    }
}

/// The longest `streambot run` and `streambot bot` take to exit once shutdown was asked (Docker
/// sends SIGKILL after 10 s); the worker's own wind-down is bounded by
/// [`WORKER_SHUTDOWN_DEADLINE`] within it.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(9);

/// How long a worker waits for its jobs to wind down (segments in flight committed, jobs given
/// back) before it returns anyway; their leases lapse and another worker resumes them.
const WORKER_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(8);

/// Where `streambot run` watches its roles.
struct RoleWatcher<'a> {
    tracker: &'a TaskTracker,
    shutdown: &'a CancellationToken,
    role_failed: &'a std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RoleWatcher<'_> {
    /// Runs one role of `streambot run` on the tracker. A role that ends on its own (an error,
    /// a panic, or simply returning before shutdown was asked) takes the whole process down: it
    /// says so in one line, marks the run failed and cancels `shutdown`, and the watcher answers
    /// `false` (exit status 1, so systemd or Docker start it again). Ended by shutdown without
    /// an error: `true`.
    fn watch(
        &self,
        name: &'static str,
        role: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) -> tokio::task::JoinHandle<bool> {
        let running = self.tracker.spawn(role);
        let shutdown = self.shutdown.clone();
        let role_failed = self.role_failed.clone();
        self.tracker.spawn(async move {
            let outcome = running.await;
            let asked_to_stop = shutdown.is_cancelled();
            let problem = match outcome {
                Ok(Ok(())) if asked_to_stop => None,
                Ok(Ok(())) => Some("it ended on its own".to_string()),
                Ok(Err(error)) => Some(error),
                Err(join_error) if join_error.is_panic() => {
                    Some("it crashed (internal error)".to_string())
                }
                Err(join_error) => Some(join_error.to_string()),
            };
            match problem {
                None => true,
                Some(problem) => {
                    eprintln!(
                        "streambot run: the {name} stopped: {problem}; stopping the other roles"
                    );
                    tracing::error!(role = name, %problem, "a role stopped; the process stops with it");
                    role_failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    shutdown.cancel();
                    false
                }
            }
        })
    }
}

/// `streambot bot`: the Telegram bot alone (workers run elsewhere, sharing Redis and the
/// recordings volume).
pub async fn run_bot_only() -> ExitCode {
    let (shutdown, settings, bot_settings) = match begin_a_role_with_the_bot() {
        Ok(begun) => begun,
        Err(code) => return code,
    };
    let backend = match open_backend_or_exit(&settings, "streambot").await {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    let result = with_backend!(backend, backend => {
        let bot = crate::bot_role::run_bot_role(bot_settings, backend, shutdown.clone());
        within_shutdown_bound(&shutdown, "streambot bot", bot).await.unwrap_or(Ok(()))
    });
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
    fn every_bad_jobs_setting_is_reported_with_the_same_message() {
        let map: std::collections::HashMap<&str, &str> = [
            ("WORKER_CONCURRENCY", "zero"),
            ("FFMPEG_DEFAULT_TIMEOUT", "soon"),
            ("REDIS_URL", "http://x"),
        ]
        .into_iter()
        .collect();
        let values = EnvironmentValues::from_lookup(|name| map.get(name).map(|v| v.to_string()));
        let problems = JobsSettings::from_values(&values).expect_err("bad");
        let variables: Vec<&str> = problems.iter().map(|problem| problem.variable).collect();
        assert_eq!(
            variables,
            ["REDIS_URL", "WORKER_CONCURRENCY", "FFMPEG_DEFAULT_TIMEOUT"]
        );
        assert_eq!(
            problems[1].to_string(),
            "WORKER_CONCURRENCY=\"zero\" is not allowed: auto (sized from memory and open files) or a whole number from 1 to 100000"
        );
        let defaults = JobsSettings::from_values(&EnvironmentValues::default()).expect("valid");
        assert_eq!(defaults.worker_concurrency, None, "auto by default");
        assert_eq!(
            defaults.recordings_directory,
            PathBuf::from("data/recordings")
        );
        assert_eq!(defaults.retention, Some(Duration::from_secs(72 * 3600)));
    }
}
