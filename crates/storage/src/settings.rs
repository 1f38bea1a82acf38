//! Storage settings from the environment (`STORAGE_BACKEND`, `LOCAL_STORAGE_PATH`, `GDRIVE_*`,
//! `TELEGRAM_*`, `FILE_RETENTION_HOURS`, `USER_DISK_QUOTA_GB`), validated with one line per bad
//! value naming the variable, the value and what is allowed; and the `Storage` they describe.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::StorageError;
use crate::gdrive::{
    DEFAULT_API_BASE_URL, GoogleDriveConfig, GoogleDriveCredentials, GoogleDriveStore,
    ServiceAccountKey,
};
use crate::local::LocalStore;
use crate::store::{Storage, StorageBackend};
use crate::telegram::{DEFAULT_API_URL, TelegramChannelConfig, TelegramChannelStore};

pub const DEFAULT_LOCAL_STORAGE_PATH: &str = "data/recordings";
pub const DEFAULT_FILE_RETENTION_HOURS: u64 = 72;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {allowed}")]
pub struct SettingError {
    pub variable: &'static str,
    /// The value as given; secrets are masked.
    pub value: String,
    pub allowed: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Local,
    GoogleDrive,
    TelegramChannel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoogleDriveAuthSettings {
    RefreshToken {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
    ServiceAccountFile(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleDriveSettings {
    pub auth: GoogleDriveAuthSettings,
    pub root_folder_id: String,
    pub keep_local_copy: bool,
    pub api_base_url: String,
    pub token_url: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct TelegramChannelSettings {
    pub api_base_url: String,
    pub bot_token: String,
    pub channel_id: String,
    pub keep_local_copy: bool,
}

impl std::fmt::Debug for TelegramChannelSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TelegramChannelSettings")
            .field("api_base_url", &self.api_base_url)
            .field("channel_id", &self.channel_id)
            .field("keep_local_copy", &self.keep_local_copy)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageSettings {
    pub backend: BackendKind,
    pub local_storage_path: PathBuf,
    /// None: no quota.
    pub user_disk_quota_bytes: Option<u64>,
    /// None: files are kept forever (`FILE_RETENTION_HOURS=0`).
    pub file_retention: Option<Duration>,
    /// `FILE_RETENTION_DELETE_REMOTE`: retention deletes remote copies too.
    pub retention_deletes_remote_copies: bool,
    pub google_drive: Option<GoogleDriveSettings>,
    pub telegram_channel: Option<TelegramChannelSettings>,
}

struct Environment<'map> {
    values: &'map HashMap<String, String>,
}

impl Environment<'_> {
    /// The trimmed value; an empty one counts as unset.
    fn get(&self, variable: &str) -> Option<&str> {
        self.values
            .get(variable)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn required(&self, variable: &'static str, why: &str) -> Result<String, SettingError> {
        self.get(variable)
            .map(str::to_string)
            .ok_or_else(|| SettingError {
                variable,
                value: String::new(),
                allowed: format!("required {why}"),
            })
    }

    fn boolean(&self, variable: &'static str, default: bool) -> Result<bool, SettingError> {
        match self.get(variable).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(SettingError {
                variable,
                value: other.to_string(),
                allowed: "true or false".to_string(),
            }),
        }
    }

    fn http_url(&self, variable: &'static str, default: &str) -> Result<String, SettingError> {
        let Some(value) = self.get(variable) else {
            return Ok(default.to_string());
        };
        match url::Url::parse(value) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() =>
            {
                Ok(value.trim_end_matches('/').to_string())
            }
            _ => Err(SettingError {
                variable,
                value: value.to_string(),
                allowed: "an http:// or https:// URL".to_string(),
            }),
        }
    }
}

impl StorageSettings {
    pub fn from_env_map(values: &HashMap<String, String>) -> Result<Self, SettingError> {
        let environment = Environment { values };
        let backend = match environment
            .get("STORAGE_BACKEND")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("local") => BackendKind::Local,
            Some("gdrive" | "google_drive" | "googledrive") => BackendKind::GoogleDrive,
            Some("telegram") => BackendKind::TelegramChannel,
            Some(other) => {
                return Err(SettingError {
                    variable: "STORAGE_BACKEND",
                    value: other.to_string(),
                    allowed: "local, gdrive or telegram".to_string(),
                });
            }
        };
        let local_storage_path = PathBuf::from(
            environment
                .get("LOCAL_STORAGE_PATH")
                .unwrap_or(DEFAULT_LOCAL_STORAGE_PATH),
        );
        let user_disk_quota_bytes = match environment.get("USER_DISK_QUOTA_GB") {
            None => None,
            Some(text) => match text.parse::<f64>() {
                Ok(0.0) => None,
                Ok(gigabytes) if gigabytes.is_finite() && gigabytes > 0.0 && gigabytes < 1e9 => {
                    Some((gigabytes * 1e9).round() as u64)
                }
                _ => {
                    return Err(SettingError {
                        variable: "USER_DISK_QUOTA_GB",
                        value: text.to_string(),
                        allowed: "a number of gigabytes, like 5 or 0.5 (0: no quota)".to_string(),
                    });
                }
            },
        };
        let file_retention = match environment.get("FILE_RETENTION_HOURS") {
            None => Some(Duration::from_secs(DEFAULT_FILE_RETENTION_HOURS * 3600)),
            Some(text) => match text.parse::<f64>() {
                Ok(0.0) => None,
                Ok(hours) if hours.is_finite() && hours > 0.0 && hours < 1e6 => {
                    Some(Duration::from_secs_f64(hours * 3600.0))
                }
                _ => {
                    return Err(SettingError {
                        variable: "FILE_RETENTION_HOURS",
                        value: text.to_string(),
                        allowed: "a number of hours, like 72 (0: keep files forever)".to_string(),
                    });
                }
            },
        };
        let retention_deletes_remote_copies =
            environment.boolean("FILE_RETENTION_DELETE_REMOTE", false)?;
        let google_drive = if backend == BackendKind::GoogleDrive {
            Some(google_drive_settings(&environment)?)
        } else {
            None
        };
        let telegram_channel = if backend == BackendKind::TelegramChannel {
            Some(telegram_channel_settings(&environment)?)
        } else {
            None
        };
        Ok(StorageSettings {
            backend,
            local_storage_path,
            user_disk_quota_bytes,
            file_retention,
            retention_deletes_remote_copies,
            google_drive,
            telegram_channel,
        })
    }

    /// The storage these settings describe. Reads the service account key file.
    pub fn build_storage(&self) -> Result<Storage, StorageError> {
        let local = LocalStore::new(&self.local_storage_path, self.user_disk_quota_bytes);
        let (backend, keep_local_copy) = match self.backend {
            BackendKind::Local => (StorageBackend::Local, true),
            BackendKind::GoogleDrive => {
                let settings = self
                    .google_drive
                    .as_ref()
                    .ok_or_else(|| missing("Google Drive"))?;
                let credentials = match &settings.auth {
                    GoogleDriveAuthSettings::RefreshToken {
                        client_id,
                        client_secret,
                        refresh_token,
                    } => GoogleDriveCredentials::OAuthRefreshToken {
                        client_id: client_id.clone(),
                        client_secret: client_secret.clone(),
                        refresh_token: refresh_token.clone(),
                    },
                    GoogleDriveAuthSettings::ServiceAccountFile(path) => {
                        let text = std::fs::read_to_string(path).map_err(|error| {
                            StorageError::Credentials {
                                backend: "Google Drive",
                                detail: format!(
                                    "GDRIVE_SERVICE_ACCOUNT_JSON={}: {error}",
                                    path.display()
                                ),
                            }
                        })?;
                        GoogleDriveCredentials::ServiceAccount(ServiceAccountKey::from_json(&text)?)
                    }
                };
                let mut config = GoogleDriveConfig::new(credentials, &settings.root_folder_id);
                config.api_base_url = settings.api_base_url.clone();
                config.token_url = settings.token_url.clone();
                (
                    StorageBackend::GoogleDrive(Box::new(GoogleDriveStore::new(config)?)),
                    settings.keep_local_copy,
                )
            }
            BackendKind::TelegramChannel => {
                let settings = self
                    .telegram_channel
                    .as_ref()
                    .ok_or_else(|| missing("Telegram"))?;
                let mut config =
                    TelegramChannelConfig::new(&settings.bot_token, &settings.channel_id);
                config.api_base_url = settings.api_base_url.clone();
                (
                    StorageBackend::TelegramChannel(TelegramChannelStore::new(config)?),
                    settings.keep_local_copy,
                )
            }
        };
        Ok(Storage::new(local, backend, keep_local_copy))
    }
}

fn missing(backend: &'static str) -> StorageError {
    StorageError::Credentials {
        backend,
        detail: "no settings for the selected backend".to_string(),
    }
}

fn google_drive_settings(
    environment: &Environment<'_>,
) -> Result<GoogleDriveSettings, SettingError> {
    let why = "when STORAGE_BACKEND=gdrive without GDRIVE_SERVICE_ACCOUNT_JSON";
    let auth = match environment.get("GDRIVE_SERVICE_ACCOUNT_JSON") {
        Some(path) => GoogleDriveAuthSettings::ServiceAccountFile(PathBuf::from(path)),
        None => GoogleDriveAuthSettings::RefreshToken {
            client_id: environment.required("GDRIVE_CLIENT_ID", why)?,
            client_secret: environment.required("GDRIVE_CLIENT_SECRET", why)?,
            refresh_token: environment.required("GDRIVE_REFRESH_TOKEN", why)?,
        },
    };
    let root_folder_id = environment.get("GDRIVE_ROOT_FOLDER_ID").unwrap_or("root");
    if !root_folder_id
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err(SettingError {
            variable: "GDRIVE_ROOT_FOLDER_ID",
            value: root_folder_id.to_string(),
            allowed: "a Drive folder id (letters, digits, - and _), or root".to_string(),
        });
    }
    Ok(GoogleDriveSettings {
        auth,
        root_folder_id: root_folder_id.to_string(),
        keep_local_copy: environment.boolean("GDRIVE_KEEP_LOCAL_COPY", false)?,
        api_base_url: environment.http_url("GDRIVE_API_URL", DEFAULT_API_BASE_URL)?,
        token_url: match environment.get("GDRIVE_TOKEN_URL") {
            Some(_) => Some(environment.http_url("GDRIVE_TOKEN_URL", "")?),
            None => None,
        },
    })
}

fn telegram_channel_settings(
    environment: &Environment<'_>,
) -> Result<TelegramChannelSettings, SettingError> {
    let why = "when STORAGE_BACKEND=telegram";
    let bot_token = environment.required("TELEGRAM_BOT_TOKEN", why)?;
    let token_is_plausible = bot_token.split_once(':').is_some_and(|(bot_id, secret)| {
        !bot_id.is_empty() && bot_id.bytes().all(|byte| byte.is_ascii_digit()) && !secret.is_empty()
    });
    if !token_is_plausible {
        return Err(SettingError {
            variable: "TELEGRAM_BOT_TOKEN",
            value: "<hidden>".to_string(),
            allowed: "a bot token from @BotFather, like 123456:ABC-DEF…".to_string(),
        });
    }
    let channel_id = environment.required("TELEGRAM_STORAGE_CHANNEL_ID", why)?;
    let channel_id_is_valid = match channel_id.strip_prefix('@') {
        Some(username) => {
            username.len() >= 4
                && username
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        }
        None => channel_id.parse::<i64>().is_ok_and(|id| id < 0),
    };
    if !channel_id_is_valid {
        return Err(SettingError {
            variable: "TELEGRAM_STORAGE_CHANNEL_ID",
            value: channel_id,
            allowed: "a channel id like -1001234567890, or @channelname".to_string(),
        });
    }
    Ok(TelegramChannelSettings {
        api_base_url: environment.http_url("TELEGRAM_API_URL", DEFAULT_API_URL)?,
        bot_token,
        channel_id,
        keep_local_copy: environment.boolean("TELEGRAM_KEEP_LOCAL_COPY", false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn defaults_give_local_storage_with_retention_and_no_quota() {
        let settings = StorageSettings::from_env_map(&HashMap::new()).expect("valid");
        assert_eq!(settings.backend, BackendKind::Local);
        assert_eq!(
            settings.local_storage_path,
            PathBuf::from(DEFAULT_LOCAL_STORAGE_PATH)
        );
        assert_eq!(settings.user_disk_quota_bytes, None);
        assert_eq!(
            settings.file_retention,
            Some(Duration::from_secs(72 * 3600))
        );
        assert!(settings.build_storage().is_ok());
    }

    #[test]
    fn google_drive_needs_a_refresh_token_or_a_service_account() {
        let error = StorageSettings::from_env_map(&map(&[
            ("STORAGE_BACKEND", "gdrive"),
            ("GDRIVE_CLIENT_ID", "id"),
        ]))
        .expect_err("incomplete");
        assert_eq!(error.variable, "GDRIVE_CLIENT_SECRET");
        let settings = StorageSettings::from_env_map(&map(&[
            ("STORAGE_BACKEND", "gdrive"),
            ("GDRIVE_SERVICE_ACCOUNT_JSON", "/etc/streambot/sa.json"),
            ("GDRIVE_ROOT_FOLDER_ID", "0ABcdEF-12_x"),
            ("GDRIVE_KEEP_LOCAL_COPY", "yes"),
            ("USER_DISK_QUOTA_GB", "2.5"),
        ]))
        .expect("valid");
        let drive = settings.google_drive.expect("drive settings");
        assert_eq!(
            drive.auth,
            GoogleDriveAuthSettings::ServiceAccountFile(PathBuf::from("/etc/streambot/sa.json"))
        );
        assert!(drive.keep_local_copy);
        assert_eq!(settings.user_disk_quota_bytes, Some(2_500_000_000));
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_what_is_allowed() {
        let cases = [
            (
                vec![("STORAGE_BACKEND", "s3")],
                "STORAGE_BACKEND=\"s3\" is not valid: local, gdrive or telegram",
            ),
            (
                vec![("USER_DISK_QUOTA_GB", "-1")],
                "USER_DISK_QUOTA_GB=\"-1\"",
            ),
            (
                vec![("FILE_RETENTION_HOURS", "soon")],
                "FILE_RETENTION_HOURS=\"soon\"",
            ),
            (
                vec![
                    ("STORAGE_BACKEND", "telegram"),
                    ("TELEGRAM_BOT_TOKEN", "123:abc"),
                    ("TELEGRAM_STORAGE_CHANNEL_ID", "12345"),
                ],
                "TELEGRAM_STORAGE_CHANNEL_ID=\"12345\"",
            ),
            (
                vec![
                    ("STORAGE_BACKEND", "telegram"),
                    ("TELEGRAM_BOT_TOKEN", "not-a-token"),
                ],
                "TELEGRAM_BOT_TOKEN=\"<hidden>\"",
            ),
            (
                vec![
                    ("STORAGE_BACKEND", "telegram"),
                    ("TELEGRAM_BOT_TOKEN", "123:abc"),
                    ("TELEGRAM_STORAGE_CHANNEL_ID", "-100123"),
                    ("TELEGRAM_API_URL", "ftp://x"),
                ],
                "TELEGRAM_API_URL=\"ftp://x\"",
            ),
            (
                vec![
                    ("STORAGE_BACKEND", "gdrive"),
                    ("GDRIVE_SERVICE_ACCOUNT_JSON", "/x"),
                    ("GDRIVE_ROOT_FOLDER_ID", "a' or '1"),
                ],
                "GDRIVE_ROOT_FOLDER_ID",
            ),
        ];
        for (pairs, expected_start) in cases {
            let error = StorageSettings::from_env_map(&map(&pairs)).expect_err("invalid");
            let line = error.to_string();
            assert!(line.starts_with(expected_start), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn telegram_settings_default_to_the_cloud_api() {
        let settings = StorageSettings::from_env_map(&map(&[
            ("STORAGE_BACKEND", "telegram"),
            ("TELEGRAM_BOT_TOKEN", "123456:ABC-def"),
            ("TELEGRAM_STORAGE_CHANNEL_ID", "-1001234567890"),
            ("FILE_RETENTION_HOURS", "0"),
        ]))
        .expect("valid");
        let channel = settings
            .telegram_channel
            .clone()
            .expect("telegram settings");
        assert_eq!(channel.api_base_url, DEFAULT_API_URL);
        assert_eq!(settings.file_retention, None);
        let storage = settings.build_storage().expect("builds");
        use crate::store::Store;
        assert_eq!(storage.size_limit_bytes(), 50_000_000);
    }
}
