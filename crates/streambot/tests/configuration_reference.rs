//! The configuration reference (`.env.example`) and `streambot config check`.
//!
//! That `.env.example` lists exactly the variables the settings read is a unit test of the
//! binary (`settings::tests`, over `EnvironmentValues::VARIABLES`, the list generated with the
//! settings struct). Here: the reference's form (the seed's names, a description with its default
//! for each), that no library crate reads the environment, and `config check` run as a user runs
//! it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

fn is_setting_name(text: &str) -> bool {
    text.len() >= 3
        && text.starts_with(|character: char| character.is_ascii_uppercase())
        && text.chars().all(|character| {
            character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_'
        })
}

fn settings_in_env_example() -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join(".env.example")).expect("readable");
    text.lines()
        .filter_map(|line| {
            let uncommented = line.trim().trim_start_matches('#').trim_start();
            let (name, _) = uncommented.split_once('=')?;
            is_setting_name(name).then(|| name.to_string())
        })
        .collect()
}

fn rust_files_under(directory: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files_under(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// Library crates take their settings as values: only the binary (and the test kit) may read
/// the environment. `env!(…)` (compile time) is not reading it.
#[test]
fn no_library_crate_reads_the_environment() {
    let crates = workspace_root().join("crates");
    let mut offenders = Vec::new();
    let mut library_files = 0;
    for entry in std::fs::read_dir(&crates).expect("crates").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "streambot" || name == "testkit" {
            continue;
        }
        let mut files = Vec::new();
        rust_files_under(&entry.path().join("src"), &mut files);
        library_files += files.len();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            for (index, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if ["std::env", "env::var", "use std::{env", "dotenv"]
                    .iter()
                    .any(|pattern| code.contains(pattern))
                {
                    offenders.push(format!("{}:{}: {}", file.display(), index + 1, line.trim()));
                }
            }
        }
    }
    assert!(library_files > 50, "the scan found {library_files} files");
    assert!(
        offenders.is_empty(),
        "library crates read the environment (take the value as a setting from the binary):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_seed_names_are_kept() {
    let listed = settings_in_env_example();
    for name in [
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_ADMIN_IDS",
        "REDIS_URL",
        "LOCAL_STORAGE_PATH",
        "MAX_DISK_USAGE_GB",
        "FILE_RETENTION_HOURS",
        "MAX_CONCURRENT_JOBS_PER_USER",
        "FFMPEG_DEFAULT_TIMEOUT",
        "STORAGE_BACKEND",
        "DASHBOARD_ENABLED",
        "DASHBOARD_SECRET",
        "TELEGRAM_API_URL",
    ] {
        assert!(listed.contains(name), "{name} missing from .env.example");
    }
}

#[test]
fn every_setting_in_env_example_has_a_description_with_its_default() {
    let text = std::fs::read_to_string(workspace_root().join(".env.example")).expect("readable");
    let mut description = String::new();
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let uncommented = trimmed.trim_start_matches('#').trim_start();
        match uncommented.split_once('=') {
            Some((name, _)) if is_setting_name(name) => {
                if seen.insert(name.to_string()) {
                    assert!(
                        description.contains("Default:"),
                        "{name}: the comment above it must describe it and say \"Default: …\" \
                         (found {description:?})"
                    );
                }
                description.clear();
            }
            _ if trimmed.is_empty() => description.clear(),
            _ => {
                description.push_str(uncommented);
                description.push(' ');
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// streambot config check
// ------------------------------------------------------------------------------------------------

const TOKEN: &str = "123456:SECRETPARTofTHEtoken";

struct Sandbox {
    directory: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        // Stand-ins for ffmpeg and ffprobe: config check looks for them, it does not run them.
        let bin = directory.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        for program in ["ffmpeg", "ffprobe"] {
            let path = bin.join(program);
            std::fs::write(&path, "#!/bin/sh\nexit 0\n").expect("stub");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Sandbox { directory }
    }

    /// `streambot config check ARGS` with only `variables` (and PATH) in its environment, in an
    /// empty directory (no `.env`).
    fn check(&self, arguments: &[&str], variables: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_streambot"));
        command
            .args(["config", "check"])
            .args(arguments)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FFMPEG_PATH", self.directory.path().join("bin/ffmpeg"))
            .env("FFPROBE_PATH", self.directory.path().join("bin/ffprobe"))
            .env("DATA_DIR", self.directory.path().join("data"))
            .current_dir(self.directory.path());
        for (name, value) in variables {
            command.env(name, value);
        }
        command.output().expect("run streambot config check")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn everything(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

#[test]
fn a_valid_configuration_passes_and_the_token_is_masked() {
    let sandbox = Sandbox::new();
    let output = sandbox.check(
        &["--offline"],
        &[
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_ADMIN_IDS", "111,222"),
            ("FILE_RETENTION_HOURS", "24"),
            ("DASHBOARD_ENABLED", "true"),
            ("DASHBOARD_SECRET", "0123456789abcdef-dashboard"),
            ("REDIS_URL", "redis://:hunter2pw@redis.internal:6379/0"),
            ("GDRIVE_CLIENT_SECRET", "GOCSPX-leakcheckvalue"),
            ("GDRIVE_REFRESH_TOKEN", "1//0leakcheckrefresh"),
        ],
    );
    let all = everything(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(!all.contains("leakcheck"), "a Drive secret leaked: {all}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("123456:****"), "{stdout}");
    assert!(!all.contains("SECRETPART"), "the token leaked: {all}");
    assert!(
        !all.contains("0123456789abcdef"),
        "the secret leaked: {all}"
    );
    assert!(
        !all.contains("hunter2pw"),
        "the Redis password leaked: {all}"
    );
    assert!(
        stdout.contains("redis://:****@redis.internal:6379/0"),
        "{stdout}"
    );
    assert!(stdout.contains("FILE_RETENTION_HOURS"), "{stdout}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
}

#[test]
fn bad_values_exit_2_with_one_line_per_problem_naming_the_variable() {
    let sandbox = Sandbox::new();
    let output = sandbox.check(
        &["--offline"],
        &[
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("WORKER_CONCURRENCY", "zero"),
            ("STORAGE_BACKEND", "ftp"),
            ("DASHBOARD_ENABLED", "true"),
            ("DASHBOARD_SECRET", "short"),
            ("DASHBOARD_RATE_LIMIT", "unlimited"),
            ("FFMPEG_DEFAULT_TIMEOUT", "soon"),
            ("FFMPEG_PATH", "/nonexistent/ffmpeg"),
            ("MAX_PART_SIZE_MB", "big"),
        ],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{}", everything(&output));
    for variable in [
        "WORKER_CONCURRENCY",
        "STORAGE_BACKEND",
        "DASHBOARD_SECRET",
        "DASHBOARD_RATE_LIMIT",
        "FFMPEG_DEFAULT_TIMEOUT",
        "FFMPEG_PATH",
        "MAX_PART_SIZE_MB",
    ] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with(&format!("streambot config: {variable}")))
            .collect();
        assert_eq!(lines.len(), 1, "one line for {variable} in:\n{stderr}");
    }
    assert!(!everything(&output).contains("SECRETPART"));
}

/// Issue 11 item 8: `config check` refuses what start-up refuses, with the same reason.
#[test]
fn a_low_entropy_dashboard_secret_is_a_problem_with_its_reason() {
    let sandbox = Sandbox::new();
    for (secret, reason) in [
        ("aaaaaaaaaaaaaaaaaaaa", "not one character repeated"),
        ("abcabcabcabcabcabcabc", "at least 8 different characters"),
    ] {
        let output = sandbox.check(
            &["--offline", "--role", "dashboard"],
            &[("DASHBOARD_SECRET", secret)],
        );
        let all = everything(&output);
        assert_eq!(output.status.code(), Some(2), "{all}");
        let line = text(&output.stderr)
            .lines()
            .find(|line| line.starts_with("streambot config: DASHBOARD_SECRET"))
            .map(str::to_string)
            .unwrap_or_default();
        assert!(line.contains(reason), "{all}");
        assert!(!all.contains(secret), "the secret was shown: {all}");
    }
}

#[test]
fn a_missing_or_malformed_token_is_named_for_run_but_not_needed_by_a_worker() {
    let sandbox = Sandbox::new();
    let missing = sandbox.check(&["--offline"], &[]);
    assert_eq!(missing.status.code(), Some(2), "{}", everything(&missing));
    assert!(text(&missing.stderr).contains("TELEGRAM_BOT_TOKEN"));

    let malformed = sandbox.check(&["--offline"], &[("TELEGRAM_BOT_TOKEN", "not-a-token")]);
    assert_eq!(malformed.status.code(), Some(2));
    let stderr = text(&malformed.stderr);
    assert!(stderr.contains("TELEGRAM_BOT_TOKEN"), "{stderr}");
    assert!(!stderr.contains("not-a-token"), "{stderr}");

    let worker = sandbox.check(&["--offline", "--role", "worker"], &[]);
    assert_eq!(worker.status.code(), Some(0), "{}", everything(&worker));
}

#[test]
fn an_unreachable_redis_is_a_problem_and_its_password_stays_hidden() {
    let sandbox = Sandbox::new();
    // Port 1 on loopback: nothing listens there.
    let output = sandbox.check(
        &["--role", "worker"],
        &[("REDIS_URL", "redis://:hunter2pw@127.0.0.1:1/0")],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{}", everything(&output));
    assert!(
        stderr.contains("REDIS_URL=\"redis://:****@127.0.0.1:1/0\" could not be reached"),
        "{stderr}"
    );
    assert!(!everything(&output).contains("hunter2pw"));
}

#[test]
fn a_reachable_redis_passes_when_one_is_given() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        streambot_testkit::requirements::skip_or_fail(
            "REDIS_URL",
            "scripts/test.sh starts a private redis-server",
        );
        return;
    };
    let sandbox = Sandbox::new();
    let output = sandbox.check(
        &["--role", "worker"],
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_KEY_PREFIX", "streambot-config-check-test:"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", everything(&output));
}

#[test]
fn an_unwritable_data_directory_is_a_problem() {
    let sandbox = Sandbox::new();
    let file = sandbox.directory.path().join("a-file");
    std::fs::write(&file, b"").expect("file");
    let data_directory = file.join("data");
    let output = sandbox.check(
        &["--offline", "--role", "worker"],
        &[("DATA_DIR", data_directory.to_str().expect("utf-8"))],
    );
    assert_eq!(output.status.code(), Some(2), "{}", everything(&output));
    assert!(
        text(&output.stderr).contains("DATA_DIR="),
        "{}",
        everything(&output)
    );
}

#[test]
fn a_setting_that_looks_like_a_typo_is_warned_about() {
    let sandbox = Sandbox::new();
    let output = sandbox.check(
        &["--offline", "--role", "worker"],
        &[("TELEGRAM_BOT_TOKNE", "x")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", everything(&output));
    assert!(
        text(&output.stderr).contains("warning: TELEGRAM_BOT_TOKNE"),
        "{}",
        everything(&output)
    );
}
