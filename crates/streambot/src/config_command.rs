//! `streambot config check`: validates the whole configuration (environment and `.env`) with the
//! same validators the roles use at start-up, checks what the roles need from the machine (ffmpeg
//! and ffprobe, a reachable Redis when `REDIS_URL` is set, writable `DATA_DIR` and
//! `LOCAL_STORAGE_PATH`), and prints every setting of `.env.example` with the secrets masked.
//!
//! Exit status: 0 when valid; 2 with one line per problem on stderr otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use streambot_storage::{BackendKind, StorageSettings};

use crate::roles::JobsSettings;
use crate::settings::{EnvironmentValues, SettingError};

/// The configuration reference: every setting, its description and default.
const CONFIGURATION_REFERENCE: &str = include_str!("../../../.env.example");

/// Settings prefixes of streambot: an unknown variable with one of them is probably a typo.
const SETTING_PREFIXES: &[&str] = &[
    "TELEGRAM_",
    "REDIS_",
    "GDRIVE_",
    "DASHBOARD_",
    "FFMPEG_",
    "FFPROBE_",
    "WORKER_",
    "STORAGE_",
    "FILE_RETENTION",
    "MAX_CONCURRENT",
    "MAX_DISK",
    "LOG_",
];

const REDIS_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct ConfigArguments {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with secrets masked (exit 2 when invalid).
    Check(CheckArguments),
}

#[derive(Debug, clap::Args)]
struct CheckArguments {
    /// Check what this role needs: run (everything), bot, worker, scheduler or dashboard.
    #[arg(long, default_value = "run", value_parser = ["run", "bot", "worker", "scheduler", "dashboard"])]
    role: String,
    /// Print only the problems (for health checks).
    #[arg(long, short)]
    quiet: bool,
    /// Skip the checks that reach out: connecting to Redis.
    #[arg(long)]
    offline: bool,
}

/// One setting of the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceEntry {
    pub name: String,
    pub description: String,
    pub default: String,
}

/// The settings listed in `.env.example`, in order: `NAME=value` or `# NAME=value` lines, each
/// after its description comment, whose "Default: ..." is the default.
pub fn parse_reference(text: &str) -> Vec<ReferenceEntry> {
    let mut entries: Vec<ReferenceEntry> = Vec::new();
    let mut description: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            description.clear();
            continue;
        }
        let uncommented = trimmed.trim_start_matches('#').trim_start();
        if let Some((name, _)) = uncommented.split_once('=')
            && is_setting_name(name)
        {
            if !entries.iter().any(|entry| entry.name == name) {
                let description_text = description.join(" ");
                let default = description_text
                    .rsplit_once("Default:")
                    .map(|(_, default)| default.trim().trim_end_matches('.').to_string())
                    .unwrap_or_default();
                entries.push(ReferenceEntry {
                    name: name.to_string(),
                    description: description_text,
                    default,
                });
            }
            continue;
        }
        if trimmed.starts_with('#') && !trimmed.starts_with("# ---") {
            description.push(uncommented.to_string());
        }
    }
    entries
}

fn is_setting_name(name: &str) -> bool {
    let mut characters = name.chars();
    name.len() >= 3
        && characters
            .next()
            .is_some_and(|first| first.is_ascii_uppercase())
        && characters.all(|character| {
            character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_'
        })
}

fn is_secret(name: &str) -> bool {
    ["TOKEN", "SECRET", "PASSWORD", "PRIVATE_KEY", "API_KEY"]
        .iter()
        .any(|word| name.contains(word))
}

/// The value as it may be shown: secrets masked, and the password of any URL.
pub fn masked_value(name: &str, value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    if is_secret(name) {
        // A bot token's id part (before ':') is public: it is the bot's user id.
        return match value.split_once(':') {
            Some((id, _)) if !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_digit()) => {
                format!("{id}:****")
            }
            _ => "****".to_string(),
        };
    }
    mask_url_passwords(value)
}

/// Replaces the password of every URL in `text` (`redis://:pw@host` → `redis://:****@host`).
pub fn mask_url_passwords(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (before, after) = rest.split_at(scheme_end + 3);
        result.push_str(before);
        let authority_end = after
            .find(|character: char| {
                matches!(character, '/' | '?' | '#') || character.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => result.push_str(&format!("{user}:****")),
                    None if userinfo.is_empty() => {}
                    // `redis://password@host` is how some write a password alone.
                    None => result.push_str("****"),
                }
                result.push_str(&authority[at..]);
            }
            None => result.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    result.push_str(rest);
    result
}

fn setting_problem(error: &SettingError) -> String {
    format!(
        "{}={:?} is not allowed: {}",
        error.variable,
        masked_value(error.variable, &error.value),
        error.allowed
    )
}

/// `path` is a directory we can write to, or can be made (its nearest existing ancestor is one).
fn check_writable_directory(variable: &str, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let mut existing: PathBuf = path.to_path_buf();
    while !existing.as_os_str().is_empty() && !existing.exists() {
        existing = existing.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    if existing.as_os_str().is_empty() {
        existing = PathBuf::from(".");
    }
    if !existing.is_dir() {
        return Err(format!(
            "{variable}={shown:?} is not usable: {} is not a directory",
            existing.display()
        ));
    }
    let probe = existing.join(format!(".streambot-config-check-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(error) => Err(format!(
            "{variable}={shown:?} is not writable: {} ({error})",
            existing.display()
        )),
    }
}

/// Where `program` would be found: itself when it names a path, else the first match on PATH.
/// (Only the ffmpeg crate runs ffmpeg: this looks for the file, it does not start it.)
fn find_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |path: &Path| {
        std::fs::metadata(path)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return is_executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(program))
        .find(|candidate| is_executable(candidate))
}

struct Report {
    problems: Vec<String>,
    warnings: Vec<String>,
    summary: Vec<String>,
}

async fn check(arguments: &CheckArguments, values: &EnvironmentValues) -> Report {
    let role = arguments.role.as_str();
    let mut report = Report {
        problems: Vec::new(),
        warnings: Vec::new(),
        summary: Vec::new(),
    };

    // Jobs, queue and workers: every role reads these (every bad one is reported).
    let jobs = match JobsSettings::from_values(values) {
        Ok(jobs) => Some(jobs),
        Err(problems) => {
            report.problems.extend(problems.iter().map(setting_problem));
            None
        }
    };
    // The other validators need the jobs settings; go on with the defaults so that every
    // problem is reported in one run.
    let fallback_jobs = JobsSettings {
        redis_url: None,
        redis_key_prefix: "streambot:".into(),
        data_directory: PathBuf::from("data"),
        recordings_directory: PathBuf::from("data/recordings"),
        worker_concurrency: None,
        transcode_concurrency: None,
        finalize_concurrency: None,
        worker_id: "check".into(),
        maximum_disk_bytes: None,
        maximum_part_bytes: None,
        retention: None,
        allow_private_networks: false,
        maximum_recording_duration: streambot_worker::DEFAULT_MAXIMUM_RECORDING_DURATION,
    };
    let jobs_or_fallback = jobs.as_ref().unwrap_or(&fallback_jobs);
    if let Err(error) = crate::settings::async_threads(values) {
        report.problems.push(setting_problem(&error));
    }

    if matches!(role, "run" | "bot")
        && let Err(error) = crate::bot_role::bot_settings_from_values(values, jobs_or_fallback)
    {
        report.problems.push(setting_problem(&error));
    }

    // Storage: the whole environment as a map, as the storage crate reads it.
    let mut environment = values.to_map();
    environment
        .entry("LOCAL_STORAGE_PATH".into())
        .or_insert_with(|| jobs_or_fallback.recordings_directory.display().to_string());
    match StorageSettings::from_env_map(&environment) {
        Ok(storage) => {
            let backend = match storage.backend {
                BackendKind::Local => "local".to_string(),
                BackendKind::GoogleDrive => "Google Drive (gdrive)".to_string(),
                BackendKind::TelegramChannel => "Telegram channel".to_string(),
            };
            report.summary.push(format!(
                "storage: {backend}; local files in {}",
                storage.local_storage_path.display()
            ));
            if let Err(error) = storage.build_storage() {
                report.problems.push(format!(
                    "STORAGE_BACKEND: {}",
                    mask_url_passwords(&error.to_string())
                ));
            }
        }
        Err(error) => report.problems.push(format!(
            "{}={:?} is not allowed: {}",
            error.variable,
            masked_value(error.variable, &error.value),
            error.allowed
        )),
    }

    if matches!(role, "run" | "worker") {
        let binaries = crate::ffmpeg_settings::ffmpeg_binaries(values);
        for (variable, program) in [
            ("FFMPEG_PATH", &binaries.ffmpeg),
            ("FFPROBE_PATH", &binaries.ffprobe),
        ] {
            match find_program(program) {
                Some(found) => report
                    .summary
                    .push(format!("{}: {}", program.display(), found.display())),
                None => report.problems.push(format!(
                    "{variable}={:?} is not usable: no such executable (on PATH); install ffmpeg (apt-get install ffmpeg) or set {variable}",
                    program.display().to_string()
                )),
            }
        }
    }

    // Dashboard.
    let dashboard_enabled = match values.boolean("DASHBOARD_ENABLED") {
        Ok(enabled) => enabled,
        Err(error) => {
            report.problems.push(setting_problem(&error));
            false
        }
    };
    if (dashboard_enabled && role == "run") || role == "dashboard" {
        // The dashboard's own validator (length, one repeated character, too few different
        // ones): the reason it gives is the one start-up gives; it never shows the secret.
        // The dashboard's own validators, each on its own so that every problem is reported.
        let secret = values.dashboard_secret.as_deref().unwrap_or_default();
        if let Err(error) = streambot_dashboard::DashboardSecret::new(secret) {
            report.problems.push(error.to_string());
        }
        if let Some(rate) = values.dashboard_rate_limit.as_deref()
            && let Err(error) = streambot_dashboard::parse_rate_limit(rate)
        {
            report.problems.push(error.to_string());
        }
        let bind = values
            .dashboard_bind
            .as_deref()
            .unwrap_or(streambot_dashboard::DEFAULT_BIND_ADDRESS);
        match streambot_dashboard::parse_bind_address(bind) {
            Ok(address) => {
                report.summary.push(format!("dashboard: on {address}"));
                if !address.ip().is_loopback() {
                    report.warnings.push(format!(
                        "DASHBOARD_BIND={bind}: the dashboard is reachable from other machines; put it behind TLS"
                    ));
                }
            }
            Err(error) => report.problems.push(error.to_string()),
        }
    } else {
        report.summary.push("dashboard: off".into());
    }

    // The store and the directories.
    if let Some(jobs) = &jobs {
        match &jobs.redis_url {
            Some(url) => {
                let shown = mask_url_passwords(url);
                report.summary.push(format!("job store: Redis at {shown}"));
                if !arguments.offline {
                    let connected = tokio::time::timeout(
                        REDIS_CHECK_TIMEOUT,
                        streambot_store::RedisBackend::connect(url, &jobs.redis_key_prefix),
                    )
                    .await;
                    match connected {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => report.problems.push(format!(
                            "REDIS_URL={shown:?} could not be reached: {}",
                            mask_url_passwords(&error.to_string())
                        )),
                        Err(_) => report.problems.push(format!(
                            "REDIS_URL={shown:?} could not be reached: no answer within {} s",
                            REDIS_CHECK_TIMEOUT.as_secs()
                        )),
                    }
                }
            }
            None => report.summary.push(format!(
                "job store: embedded SQLite in {} (one machine; set REDIS_URL to scale out)",
                jobs.data_directory.join("streambot.db").display()
            )),
        }
        if let Err(problem) = check_writable_directory("DATA_DIR", &jobs.data_directory) {
            report.problems.push(problem);
        }
        if matches!(role, "run" | "bot" | "worker" | "scheduler")
            && let Err(problem) =
                check_writable_directory("LOCAL_STORAGE_PATH", &jobs.recordings_directory)
        {
            report.problems.push(problem);
        }
    }

    // Unknown variables that look like ours: probably typos.
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            SETTING_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
                && !EnvironmentValues::VARIABLES.contains(&name.as_str())
        })
        .collect();
    unknown.sort();
    for name in unknown {
        report.warnings.push(format!(
            "{name} is set but streambot does not read it (a typo? see .env.example)"
        ));
    }
    report
}

fn print_configuration(role: &str, report: &Report, values: &EnvironmentValues) {
    println!("# streambot configuration for `streambot {role}` (secrets masked)");
    let entries = parse_reference(CONFIGURATION_REFERENCE);
    let width = entries
        .iter()
        .map(|entry| entry.name.len())
        .max()
        .unwrap_or(0);
    for entry in &entries {
        match values.get(&entry.name) {
            Some(value) => println!(
                "{:width$} = {}",
                entry.name,
                masked_value(&entry.name, value)
            ),
            None => println!("{:width$}   (default: {})", entry.name, entry.default),
        }
    }
    for line in &report.summary {
        println!("# {line}");
    }
}

/// `streambot config …`.
pub async fn run_config_command(arguments: ConfigArguments) -> ExitCode {
    match arguments.command {
        ConfigCommand::Check(arguments) => {
            let values = crate::settings::environment();
            let report = check(&arguments, values).await;
            if !arguments.quiet {
                print_configuration(&arguments.role, &report, values);
            }
            for warning in &report.warnings {
                eprintln!("streambot config: warning: {warning}");
            }
            if report.problems.is_empty() {
                if !arguments.quiet {
                    println!("# configuration is valid");
                }
                ExitCode::SUCCESS
            } else {
                for problem in &report.problems {
                    eprintln!("streambot config: {problem}");
                }
                ExitCode::from(2)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            mask_url_passwords("redis://:hunter2@redis:6379/0"),
            "redis://:****@redis:6379/0"
        );
        assert_eq!(
            mask_url_passwords("rediss://user:pw@host/1?x=y"),
            "rediss://user:****@host/1?x=y"
        );
        assert_eq!(
            mask_url_passwords("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            mask_url_passwords("error at redis://secret@host: refused"),
            "error at redis://****@host: refused"
        );
    }

    #[test]
    fn secrets_are_masked() {
        assert_eq!(
            masked_value("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF1234"),
            "123456:****"
        );
        assert_eq!(
            masked_value("DASHBOARD_SECRET", "a-long-secret-value"),
            "****"
        );
        assert_eq!(masked_value("GDRIVE_CLIENT_SECRET", "x:y"), "****");
        assert_eq!(masked_value("DATA_DIR", "/data"), "/data");
        assert_eq!(masked_value("REDIS_KEY_PREFIX", "streambot:"), "streambot:");
    }

    #[test]
    fn the_reference_has_a_default_for_every_setting() {
        let entries = parse_reference(CONFIGURATION_REFERENCE);
        assert!(entries.len() > 20, "{entries:?}");
        for entry in &entries {
            assert!(
                !entry.default.is_empty(),
                "{} has no \"Default:\" in its description",
                entry.name
            );
        }
        let token = entries
            .iter()
            .find(|entry| entry.name == "TELEGRAM_BOT_TOKEN")
            .expect("token listed");
        assert_eq!(token.default, "none");
    }
}
