//! The one settings path of the binary. The environment (and `.env`) is read once, at start-up,
//! into [`EnvironmentValues`]: one field per setting, generated with the list of every variable
//! streambot reads ([`EnvironmentValues::VARIABLES`], which a test holds against `.env.example`).
//! The typed settings (`roles::JobsSettings`, the bot's, the dashboard's, the storage's, ffmpeg's,
//! logging's) are parsed from these values by the same functions at start-up and in
//! `streambot config check`; the library crates get the parsed values and never read the
//! environment.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// A setting that stops start-up: names the variable, the value and what is allowed.
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
        // The value as `config check` shows it: a secret setting masked, a URL's password
        // replaced (REDIS_URL="http://:****@host"), so no error line carries a secret.
        write!(
            formatter,
            "{}={:?} is not allowed: {}",
            self.variable,
            crate::config_command::masked_value(self.variable, &self.value),
            self.allowed
        )
    }
}

impl std::error::Error for SettingError {}

pub(crate) fn invalid(variable: &'static str, value: &str, allowed: &'static str) -> SettingError {
    SettingError {
        variable,
        value: value.to_string(),
        allowed,
    }
}

/// The value, or None with the problem noted (to report every bad setting in one run).
pub(crate) fn keep_or_note<T>(
    result: Result<T, SettingError>,
    problems: &mut Vec<SettingError>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            problems.push(error);
            None
        }
    }
}

macro_rules! environment_values {
    ($($(#[$documentation:meta])* $field:ident = $name:literal,)*) => {
        /// Every setting streambot reads, as given (trimmed; empty counts as unset).
        #[derive(Clone, Default, PartialEq, Eq)]
        pub struct EnvironmentValues {
            $($(#[$documentation])* pub $field: Option<String>,)*
        }

        impl EnvironmentValues {
            /// The names of every variable streambot reads, in `.env.example` order.
            pub const VARIABLES: &'static [&'static str] = &[$($name,)*];

            /// Reads every variable through `lookup` (the environment in `main`, a map in tests).
            pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> EnvironmentValues {
                let read = |name: &str| {
                    lookup(name)
                        .map(|value| value.trim().to_string())
                        .filter(|value| !value.is_empty())
                };
                EnvironmentValues { $($field: read($name),)* }
            }

            /// The value of the variable `name` (None when unset or not a setting of streambot).
            pub fn get(&self, name: &str) -> Option<&str> {
                match name {
                    $($name => self.$field.as_deref(),)*
                    _ => None,
                }
            }
        }
    };
}

environment_values! {
    telegram_bot_token = "TELEGRAM_BOT_TOKEN",
    telegram_admin_ids = "TELEGRAM_ADMIN_IDS",
    telegram_api_url = "TELEGRAM_API_URL",
    telegram_webhook_url = "TELEGRAM_WEBHOOK_URL",
    telegram_webhook_bind = "TELEGRAM_WEBHOOK_BIND",
    telegram_webhook_secret = "TELEGRAM_WEBHOOK_SECRET",
    max_concurrent_jobs_per_user = "MAX_CONCURRENT_JOBS_PER_USER",
    max_concurrent_jobs_per_vip = "MAX_CONCURRENT_JOBS_PER_VIP",
    rate_limit_per_minute = "RATE_LIMIT_PER_MINUTE",
    stall_timeout = "STALL_TIMEOUT",
    user_disk_quota_gb = "USER_DISK_QUOTA_GB",
    redis_url = "REDIS_URL",
    redis_key_prefix = "REDIS_KEY_PREFIX",
    data_dir = "DATA_DIR",
    local_storage_path = "LOCAL_STORAGE_PATH",
    worker_concurrency = "WORKER_CONCURRENCY",
    transcode_concurrency = "TRANSCODE_CONCURRENCY",
    finalize_concurrency = "FINALIZE_CONCURRENCY",
    async_threads = "ASYNC_THREADS",
    worker_id = "WORKER_ID",
    max_disk_usage_gb = "MAX_DISK_USAGE_GB",
    max_part_size_mb = "MAX_PART_SIZE_MB",
    file_retention_hours = "FILE_RETENTION_HOURS",
    file_retention_delete_remote = "FILE_RETENTION_DELETE_REMOTE",
    allow_private_networks = "ALLOW_PRIVATE_NETWORKS",
    ffmpeg_path = "FFMPEG_PATH",
    ffprobe_path = "FFPROBE_PATH",
    ffmpeg_default_timeout = "FFMPEG_DEFAULT_TIMEOUT",
    storage_backend = "STORAGE_BACKEND",
    gdrive_client_id = "GDRIVE_CLIENT_ID",
    gdrive_client_secret = "GDRIVE_CLIENT_SECRET",
    gdrive_refresh_token = "GDRIVE_REFRESH_TOKEN",
    gdrive_service_account_json = "GDRIVE_SERVICE_ACCOUNT_JSON",
    gdrive_root_folder_id = "GDRIVE_ROOT_FOLDER_ID",
    gdrive_keep_local_copy = "GDRIVE_KEEP_LOCAL_COPY",
    gdrive_api_url = "GDRIVE_API_URL",
    gdrive_token_url = "GDRIVE_TOKEN_URL",
    telegram_storage_channel_id = "TELEGRAM_STORAGE_CHANNEL_ID",
    telegram_keep_local_copy = "TELEGRAM_KEEP_LOCAL_COPY",
    dashboard_enabled = "DASHBOARD_ENABLED",
    dashboard_secret = "DASHBOARD_SECRET",
    dashboard_bind = "DASHBOARD_BIND",
    dashboard_rate_limit = "DASHBOARD_RATE_LIMIT",
    log_level = "LOG_LEVEL",
    log_format = "LOG_FORMAT",
    wait_for_live = "WAIT_FOR_LIVE",
    schedule_lead = "SCHEDULE_LEAD",
    default_timezone = "DEFAULT_TIMEZONE",
}

impl fmt::Debug for EnvironmentValues {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values hold secrets.
        let set: Vec<&str> = EnvironmentValues::VARIABLES
            .iter()
            .copied()
            .filter(|name| self.get(name).is_some())
            .collect();
        formatter
            .debug_struct("EnvironmentValues")
            .field("set", &set)
            .finish()
    }
}

impl EnvironmentValues {
    /// The values as the map the storage crate parses (`StorageSettings::from_env_map`).
    pub fn to_map(&self) -> HashMap<String, String> {
        EnvironmentValues::VARIABLES
            .iter()
            .filter_map(|name| Some((name.to_string(), self.get(name)?.to_string())))
            .collect()
    }

    /// `variable` as a boolean: unset is false.
    pub fn boolean(&self, variable: &'static str) -> Result<bool, SettingError> {
        parse_boolean(variable, self.get(variable))
    }
}

/// `true/false`, `1/0`, `yes/no`, `on/off` (any case); unset is false.
pub fn parse_boolean(variable: &'static str, value: Option<&str>) -> Result<bool, SettingError> {
    match value {
        None => Ok(false),
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(invalid(variable, value, "true or false")),
        },
    }
}

/// `ASYNC_THREADS`: the threads that run streambot's async work (unset: 1). One thread runs
/// everything in turn (the runtime's current-thread flavour); more are a multi-thread runtime.
/// Blocking work (file copies, remuxes, fsync, SQLite) has threads of its own either way.
pub fn async_threads(values: &EnvironmentValues) -> Result<usize, SettingError> {
    const ALLOWED: &str = "a whole number from 1 to 64";
    match values.async_threads.as_deref() {
        None => Ok(1),
        Some(text) => match text.parse::<usize>() {
            Ok(threads) if (1..=64).contains(&threads) => Ok(threads),
            _ => Err(invalid("ASYNC_THREADS", text, ALLOWED)),
        },
    }
}

static PROCESS_ENVIRONMENT: OnceLock<EnvironmentValues> = OnceLock::new();

/// The settings of this process: the environment (with `.env` loaded by `main` first), read on
/// the first call and kept.
pub fn environment() -> &'static EnvironmentValues {
    PROCESS_ENVIRONMENT
        .get_or_init(|| EnvironmentValues::from_lookup(|name| std::env::var(name).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> EnvironmentValues {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        EnvironmentValues::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn async_threads_default_to_one_and_refuse_what_is_not_one_to_sixty_four() {
        assert_eq!(async_threads(&values(&[])), Ok(1));
        assert_eq!(async_threads(&values(&[("ASYNC_THREADS", "4")])), Ok(4));
        assert_eq!(async_threads(&values(&[("ASYNC_THREADS", " 64 ")])), Ok(64));
        for bad in ["0", "65", "-1", "two", "1.5", "99999999999999999999999"] {
            let error = async_threads(&values(&[("ASYNC_THREADS", bad)])).expect_err(bad);
            assert_eq!(error.variable, "ASYNC_THREADS");
            assert!(error.to_string().contains("1 to 64"), "{error}");
        }
    }

    fn storage_settings(pairs: &[(&str, &str)]) -> streambot_storage::StorageSettings {
        streambot_storage::StorageSettings::from_env_map(&values(pairs).to_map()).expect("valid")
    }

    /// The names `.env.example` lists (`NAME=value` or `# NAME=value` lines).
    fn names_in_env_example() -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for line in include_str!("../../../.env.example").lines() {
            let uncommented = line.trim().trim_start_matches('#').trim_start();
            if let Some((name, _)) = uncommented.split_once('=')
                && name.len() >= 3
                && name.chars().all(|character| {
                    character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_'
                })
                && !names.iter().any(|known| known == name)
            {
                names.push(name.to_string());
            }
        }
        names
    }

    #[test]
    fn env_example_lists_exactly_the_variables_the_settings_read() {
        let listed = names_in_env_example();
        let missing: Vec<&str> = EnvironmentValues::VARIABLES
            .iter()
            .copied()
            .filter(|name| !listed.iter().any(|listed| listed == name))
            .collect();
        assert!(
            missing.is_empty(),
            "settings read but not described in .env.example: {missing:?}"
        );
        let stale: Vec<&String> = listed
            .iter()
            .filter(|name| !EnvironmentValues::VARIABLES.contains(&name.as_str()))
            .collect();
        assert!(
            stale.is_empty(),
            ".env.example lists settings nothing reads: {stale:?}"
        );
    }

    #[test]
    fn every_variable_is_listed_once_and_reachable_by_name() {
        for (index, name) in EnvironmentValues::VARIABLES.iter().enumerate() {
            assert!(
                !EnvironmentValues::VARIABLES[..index].contains(name),
                "{name} twice"
            );
            let given = values(&[(name, " value ")]);
            assert_eq!(given.get(name), Some("value"), "{name}");
        }
        assert_eq!(values(&[("DATA_DIR", "   ")]).data_dir, None);
        assert_eq!(values(&[]).get("NOT_A_SETTING"), None);
    }

    #[test]
    fn the_storage_settings_see_every_storage_variable() {
        let storage = storage_settings(&[
            ("STORAGE_BACKEND", "gdrive"),
            ("GDRIVE_CLIENT_ID", "client"),
            ("GDRIVE_CLIENT_SECRET", "secret"),
            ("GDRIVE_REFRESH_TOKEN", "refresh"),
            ("GDRIVE_ROOT_FOLDER_ID", "folder"),
            ("GDRIVE_KEEP_LOCAL_COPY", "true"),
            ("GDRIVE_API_URL", "http://127.0.0.1:9/drive"),
            ("GDRIVE_TOKEN_URL", "http://127.0.0.1:9/token"),
            ("FILE_RETENTION_DELETE_REMOTE", "true"),
        ]);
        let drive = storage.google_drive.expect("drive");
        assert_eq!(drive.root_folder_id, "folder");
        assert!(drive.keep_local_copy);
        assert_eq!(drive.api_base_url, "http://127.0.0.1:9/drive");
        assert!(storage.retention_deletes_remote_copies);
        let storage = storage_settings(&[
            ("STORAGE_BACKEND", "telegram"),
            ("TELEGRAM_BOT_TOKEN", "123456:ABCDEF"),
            ("TELEGRAM_STORAGE_CHANNEL_ID", "-1001234567890"),
            ("TELEGRAM_KEEP_LOCAL_COPY", "true"),
        ]);
        let channel = storage.telegram_channel.expect("channel");
        assert_eq!(channel.channel_id, "-1001234567890");
        assert!(channel.keep_local_copy);
    }

    #[test]
    fn debug_shows_names_never_values() {
        let given = values(&[("TELEGRAM_BOT_TOKEN", "123456:SECRETPART")]);
        let shown = format!("{given:?}");
        assert!(shown.contains("TELEGRAM_BOT_TOKEN"), "{shown}");
        assert!(!shown.contains("SECRETPART"), "{shown}");
    }

    #[test]
    fn a_setting_error_is_one_line_naming_variable_value_and_allowed() {
        let error = invalid("WORKER_CONCURRENCY", "zero", "a whole number from 1 to 64");
        assert_eq!(
            error.to_string(),
            "WORKER_CONCURRENCY=\"zero\" is not allowed: a whole number from 1 to 64"
        );
        assert_eq!(
            parse_boolean("DASHBOARD_ENABLED", Some("maybe"))
                .expect_err("bad")
                .to_string(),
            "DASHBOARD_ENABLED=\"maybe\" is not allowed: true or false"
        );
    }
}
