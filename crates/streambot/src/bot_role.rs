//! The Telegram bot's settings and role: `streambot bot` alone, or inside `streambot run`.
//!
//! Settings: `TELEGRAM_BOT_TOKEN` (required), `TELEGRAM_ADMIN_IDS` (comma-separated user ids),
//! `TELEGRAM_API_URL` (a local Bot API server: uploads up to 2000 MB instead of 50 MB),
//! `MAX_CONCURRENT_JOBS_PER_USER` (3), `MAX_CONCURRENT_JOBS_PER_VIP` (6), `USER_DISK_QUOTA_GB`
//! (unset: none), `RATE_LIMIT_PER_MINUTE` (20), `STALL_TIMEOUT` (2m), `TELEGRAM_WEBHOOK_URL`
//! (webhook mode instead of long polling), `TELEGRAM_WEBHOOK_BIND` (0.0.0.0:8443),
//! `TELEGRAM_WEBHOOK_SECRET` (random when unset; a guessable one refused: 16 characters, 8 different), `FFMPEG_DEFAULT_TIMEOUT` (seconds, 7200: the
//! longest recording; a job without a duration stops there, only admins may ask for longer).

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use streambot_bot::{BotBackend, BotSettings, run_bot};
use tokio_util::sync::CancellationToken;

use crate::roles::JobsSettings;
use crate::settings::{EnvironmentValues, SettingError, invalid};

fn count_setting(
    variable: &'static str,
    value: Option<&str>,
    default: usize,
    allowed: &'static str,
) -> Result<usize, SettingError> {
    match value {
        None => Ok(default),
        Some(value) => match value.parse::<usize>() {
            Ok(count) if (1..=1000).contains(&count) => Ok(count),
            _ => Err(invalid(variable, value, allowed)),
        },
    }
}

/// Telegram's upload limit for the configured API (`TELEGRAM_API_URL`): where parts are cut.
pub fn upload_limit_bytes(values: &EnvironmentValues) -> u64 {
    let api_url = values
        .telegram_api_url
        .as_deref()
        .and_then(|text| url::Url::parse(text).ok());
    streambot_core::telegram_upload_limit_bytes(api_url.as_ref().and_then(|url| url.host_str()))
}

/// Reads and checks the bot's settings.
pub fn bot_settings_from_values(
    values: &EnvironmentValues,
    jobs: &JobsSettings,
) -> Result<BotSettings, SettingError> {
    let token = values.telegram_bot_token.clone().ok_or_else(|| {
        invalid(
            "TELEGRAM_BOT_TOKEN",
            "",
            "the token @BotFather gave you, like 123456:ABC-DEF (put it in .env)",
        )
    })?;
    let token_looks_right = token.split_once(':').is_some_and(|(id, secret)| {
        id.bytes().all(|byte| byte.is_ascii_digit()) && !id.is_empty() && secret.len() >= 5
    });
    if !token_looks_right {
        return Err(invalid(
            "TELEGRAM_BOT_TOKEN",
            "(hidden)",
            "the token @BotFather gave you, like 123456:ABC-DEF",
        ));
    }
    let mut settings = BotSettings::new(
        &token,
        jobs.recordings_directory.clone(),
        &jobs.data_directory,
    );
    settings.allow_private_networks = jobs.allow_private_networks;
    // With Redis, every bot process shares one rate-limit window per user.
    settings.redis_url = jobs.redis_url.clone();
    settings.redis_key_prefix = jobs.redis_key_prefix.clone();
    if let Some(url) = values.telegram_api_url.clone() {
        let parsed = url::Url::parse(&url)
            .ok()
            .filter(|parsed| matches!(parsed.scheme(), "http" | "https"));
        match parsed {
            Some(parsed) => settings.api_url = Some(parsed),
            None => {
                return Err(invalid(
                    "TELEGRAM_API_URL",
                    &url,
                    "an http(s) URL of a Bot API server, e.g. http://127.0.0.1:8081",
                ));
            }
        }
    }
    let mut admins = HashSet::new();
    if let Some(list) = values.telegram_admin_ids.clone() {
        for item in list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            match item.parse::<i64>() {
                Ok(id) => {
                    admins.insert(id);
                }
                Err(_) => {
                    return Err(invalid(
                        "TELEGRAM_ADMIN_IDS",
                        &list,
                        "comma-separated numeric Telegram user ids, e.g. 12345,67890",
                    ));
                }
            }
        }
    }
    settings.admin_user_ids = admins;
    settings.maximum_concurrent_jobs_per_user = count_setting(
        "MAX_CONCURRENT_JOBS_PER_USER",
        values.max_concurrent_jobs_per_user.as_deref(),
        3,
        "a whole number from 1 to 1000",
    )?;
    settings.maximum_concurrent_jobs_per_vip = count_setting(
        "MAX_CONCURRENT_JOBS_PER_VIP",
        values.max_concurrent_jobs_per_vip.as_deref(),
        6,
        "a whole number from 1 to 1000",
    )?;
    settings.rate_limit.maximum_messages = count_setting(
        "RATE_LIMIT_PER_MINUTE",
        values.rate_limit_per_minute.as_deref(),
        20,
        "a whole number from 1 to 1000",
    )?;
    // Decimal gigabytes and 0 for "no quota", as the storage crate reads the same setting.
    if let Some(value) = values.user_disk_quota_gb.clone() {
        match value.parse::<f64>() {
            Ok(0.0) => settings.user_disk_quota_bytes = None,
            Ok(gigabytes) if gigabytes > 0.0 && gigabytes.is_finite() && gigabytes < 1e9 => {
                settings.user_disk_quota_bytes = Some((gigabytes * 1e9).round() as u64);
            }
            _ => {
                return Err(invalid(
                    "USER_DISK_QUOTA_GB",
                    &value,
                    "a number of gigabytes, like 5 or 0.5 (0: no quota)",
                ));
            }
        }
    }
    // The seed's "max recording duration": the cap of every job without a duration
    // (`FFMPEG_DEFAULT_TIMEOUT`, parsed with the jobs settings).
    settings.default_maximum_duration = Some(jobs.maximum_recording_duration);
    // `DEFAULT_TIMEZONE` and `SCHEDULE_LEAD`, read once with the scheduler's settings.
    let schedule_settings = crate::schedule_settings::ScheduleSettings::from_values(values)?;
    settings.default_time_zone = schedule_settings.default_time_zone;
    settings.schedule_lead = schedule_settings.schedule_lead;
    if let Some(value) = values.stall_timeout.clone() {
        match streambot_core::parse_duration_text(&value) {
            Ok(duration) if duration >= Duration::from_secs(10) => {
                settings.stall_timeout = duration
            }
            _ => {
                return Err(invalid(
                    "STALL_TIMEOUT",
                    &value,
                    "a duration of at least 10 s, e.g. 2m or 90s",
                ));
            }
        }
    }
    if let Some(url) = values.telegram_webhook_url.clone() {
        let public_url = url::Url::parse(&url)
            .ok()
            .filter(|parsed| matches!(parsed.scheme(), "http" | "https"))
            .ok_or_else(|| {
                invalid(
                    "TELEGRAM_WEBHOOK_URL",
                    &url,
                    "the public https URL Telegram posts updates to, e.g. https://bot.example.com/telegram",
                )
            })?;
        let bind_text = values
            .telegram_webhook_bind
            .clone()
            .unwrap_or_else(|| "0.0.0.0:8443".to_string());
        let bind_address = bind_text.parse::<std::net::SocketAddr>().map_err(|_| {
            invalid(
                "TELEGRAM_WEBHOOK_BIND",
                &bind_text,
                "an address and port to listen on, e.g. 127.0.0.1:8443",
            )
        })?;
        let secret_token = values.telegram_webhook_secret.clone();
        // Whoever knows the secret can post updates as any user, an admin too: a guessable one
        // is refused like a weak DASHBOARD_SECRET (unset, a random one is made at each start).
        if let Some(secret) = &secret_token
            && !webhook_secret_is_acceptable(secret)
        {
            return Err(invalid(
                "TELEGRAM_WEBHOOK_SECRET",
                "(hidden)",
                "16 to 256 characters of A-Z, a-z, 0-9, _ and -, at least 8 of them different (or leave it unset for a random one)",
            ));
        }
        settings.webhook = Some(streambot_bot::WebhookSettings {
            public_url,
            bind_address,
            secret_token,
        });
    }
    Ok(settings)
}

/// A webhook secret Telegram accepts (A-Z, a-z, 0-9, `_`, `-`, at most 256) that is not
/// guessable: the dashboard's rule (16 characters at least, 8 of them different).
fn webhook_secret_is_acceptable(secret: &str) -> bool {
    use streambot_dashboard::settings::{
        MINIMUM_DISTINCT_SECRET_CHARACTERS, MINIMUM_SECRET_CHARACTERS,
    };
    let distinct: std::collections::BTreeSet<u8> = secret.bytes().collect();
    secret.len() <= 256
        && secret.len() >= MINIMUM_SECRET_CHARACTERS
        && distinct.len() >= MINIMUM_DISTINCT_SECRET_CHARACTERS
        && secret
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// Runs the bot on `backend` until `shutdown`.
pub async fn run_bot_role<B: BotBackend>(
    settings: BotSettings,
    backend: B,
    shutdown: CancellationToken,
) -> Result<(), String> {
    run_bot(settings, backend, shutdown)
        .await
        .map_err(|error| error.to_string())
}

/// One-line start-up failure for a bad bot setting.
pub fn report_setting_error(error: &SettingError) -> ExitCode {
    eprintln!("streambot: {error}");
    ExitCode::from(2)
}
