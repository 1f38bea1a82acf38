//! The configuration reference (`.env.example`) lists every setting the code reads, and
//! `streambot config check` validates a configuration and prints it with the secrets masked.
//!
//! The scan reads every `crates/*/src/**/*.rs` with a small Rust lexer (strings, raw strings,
//! chars, comments) and collects the upper-case string literals (`^[A-Z][A-Z0-9_]{2,}$`) that are
//! - the first argument of a call whose function name looks like a setting reader (`var`,
//!   `var_os`, `setting`, `count_setting`, `get`, `required`, `boolean`, `http_url`,
//!   `binary_from_environment`, …: any name containing var, setting, env, get, required, boolean,
//!   url or invalid), also through a `const NAME: &str = "…"`;
//! - clap's `env = "NAME"`;
//! - a `variable: "NAME"` field (the setting errors name their variable so).
//!
//! `#[cfg(test)]` modules are skipped. Literals that are not settings (HLS attribute names read
//! with `attributes.get("…")`, variables of the OS, test-only variables) are listed below with why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// Names the scan finds that are not settings of streambot.
fn is_ignored(name: &str) -> bool {
    const TEST_ONLY: &[&str] = &[
        "STREAMBOT_CORPUS_DIR",
        "STREAMBOT_FIXTURE_CACHE",
        "STREAMBOT_REQUIRE_ALL",
        "STREAMBOT_ALLOW_MISSING",
        "STREAMBOT_ALLOW_MISSING",
        "STREAMBOT_SURELY_UNSET_VARIABLE",
    ];
    // Set by the operating system or the shell, not by the operator for streambot.
    const SYSTEM: &[&str] = &["HOSTNAME", "PATH", "HOME", "TMPDIR", "USER"];
    // HLS tag attributes (crates/hls reads them from playlists with `attributes.get`).
    const HLS_ATTRIBUTES: &[&str] = &[
        "VALUE",
        "RESOLUTION",
        "BANDWIDTH",
        "AVERAGE-BANDWIDTH",
        "CODECS",
        "AUDIO",
        "VIDEO",
        "SUBTITLES",
        "NAME",
        "TYPE",
        "URI",
        "METHOD",
        "KEYFORMAT",
        "KEYFORMATVERSIONS",
        "BYTERANGE",
        "GROUP-ID",
        "LANGUAGE",
        "DEFAULT",
        "AUTOSELECT",
        "CHANNELS",
        "FRAME-RATE",
        "IMPORT",
        "QUERYPARAM",
        "DURATION",
        "PROGRAM-ID",
    ];
    name.starts_with("CARGO_")
        || TEST_ONLY.contains(&name)
        || SYSTEM.contains(&name)
        || HLS_ATTRIBUTES.contains(&name)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    Text(String),
    Punctuation(char),
}

/// Just enough of Rust's lexical grammar: identifiers, string literals (plain, byte, raw), char
/// literals and lifetimes, comments; everything else is one punctuation character at a time.
fn tokenize(source: &str) -> Vec<Token> {
    let characters: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        let next = characters.get(index + 1).copied();
        if character.is_whitespace() {
            index += 1;
        } else if character == '/' && next == Some('/') {
            while index < characters.len() && characters[index] != '\n' {
                index += 1;
            }
        } else if character == '/' && next == Some('*') {
            let mut depth = 0;
            while index < characters.len() {
                if characters[index] == '/' && characters.get(index + 1) == Some(&'*') {
                    depth += 1;
                    index += 2;
                } else if characters[index] == '*' && characters.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    index += 1;
                }
            }
        } else if character == '"' {
            let mut text = String::new();
            index += 1;
            while index < characters.len() && characters[index] != '"' {
                if characters[index] == '\\' {
                    if let Some(&escaped) = characters.get(index + 1) {
                        text.push('\\');
                        text.push(escaped);
                    }
                    index += 2;
                } else {
                    text.push(characters[index]);
                    index += 1;
                }
            }
            index += 1;
            tokens.push(Token::Text(text));
        } else if (character == 'r' || (character == 'b' && next == Some('r'))) && {
            let start = if character == 'b' {
                index + 2
            } else {
                index + 1
            };
            let mut hashes = start;
            while characters.get(hashes) == Some(&'#') {
                hashes += 1;
            }
            characters.get(hashes) == Some(&'"')
        } {
            let mut position = if character == 'b' {
                index + 2
            } else {
                index + 1
            };
            let mut hashes = 0;
            while characters[position] == '#' {
                hashes += 1;
                position += 1;
            }
            position += 1;
            let mut text = String::new();
            loop {
                if position >= characters.len() {
                    break;
                }
                if characters[position] == '"'
                    && (0..hashes).all(|offset| characters.get(position + 1 + offset) == Some(&'#'))
                {
                    position += 1 + hashes;
                    break;
                }
                text.push(characters[position]);
                position += 1;
            }
            index = position;
            tokens.push(Token::Text(text));
        } else if character == 'b' && next == Some('"') {
            index += 1; // the string itself is read on the next turn
        } else if character == '\'' {
            // A char literal ('x', '\n', '\u{..}', '"') or a lifetime ('a).
            if next == Some('\\') {
                index += 2;
                while index < characters.len() && characters[index] != '\'' {
                    index += 1;
                }
                index += 1;
            } else if characters.get(index + 2) == Some(&'\'') {
                index += 3;
            } else {
                index += 1;
                while index < characters.len()
                    && (characters[index].is_alphanumeric() || characters[index] == '_')
                {
                    index += 1;
                }
            }
        } else if character.is_alphanumeric() || character == '_' {
            let start = index;
            while index < characters.len()
                && (characters[index].is_alphanumeric() || characters[index] == '_')
            {
                index += 1;
            }
            tokens.push(Token::Identifier(characters[start..index].iter().collect()));
        } else {
            tokens.push(Token::Punctuation(character));
            index += 1;
        }
    }
    tokens
}

/// The tokens without `#[cfg(test)] mod … { … }` blocks.
fn without_test_modules(tokens: Vec<Token>) -> Vec<Token> {
    let identifier = |name: &str| Token::Identifier(name.to_string());
    let punctuation = Token::Punctuation;
    let attribute = [
        punctuation('#'),
        punctuation('['),
        identifier("cfg"),
        punctuation('('),
        identifier("test"),
        punctuation(')'),
        punctuation(']'),
    ];
    let mut kept = Vec::with_capacity(tokens.len());
    let mut index = 0;
    while index < tokens.len() {
        if tokens[index..].starts_with(&attribute)
            && tokens.get(index + attribute.len()) == Some(&identifier("mod"))
        {
            // Skip to the module's opening brace, then to its matching closing brace.
            let mut position = index + attribute.len();
            while position < tokens.len() && tokens[position] != punctuation('{') {
                if tokens[position] == punctuation(';') {
                    break;
                }
                position += 1;
            }
            let mut depth = 0usize;
            while position < tokens.len() {
                match &tokens[position] {
                    Token::Punctuation('{') => depth += 1,
                    Token::Punctuation('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Punctuation(';') if depth == 0 => break,
                    _ => {}
                }
                position += 1;
            }
            index = position + 1;
            continue;
        }
        kept.push(tokens[index].clone());
        index += 1;
    }
    kept
}

fn is_setting_name(text: &str) -> bool {
    let mut characters = text.chars();
    text.len() >= 3
        && characters
            .next()
            .is_some_and(|first| first.is_ascii_uppercase())
        && characters.all(|character| {
            character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_'
        })
}

fn looks_like_a_setting_reader(function: &str) -> bool {
    let function = function.to_ascii_lowercase();
    [
        "var", "setting", "env", "get", "required", "boolean", "url", "invalid",
    ]
    .iter()
    .any(|word| function.contains(word))
}

/// The setting names one source file reads.
fn settings_read_in(source: &str) -> BTreeSet<String> {
    let tokens = without_test_modules(tokenize(source));
    // `const NAME: &str = "VALUE";`
    let mut constants: HashMap<String, String> = HashMap::new();
    for (index, token) in tokens.iter().enumerate() {
        if *token != Token::Identifier("const".into()) {
            continue;
        }
        let Some(Token::Identifier(name)) = tokens.get(index + 1) else {
            continue;
        };
        let statement: Vec<&Token> = tokens[index..]
            .iter()
            .take_while(|token| **token != Token::Punctuation(';'))
            .take(12)
            .collect();
        let texts: Vec<&String> = statement
            .iter()
            .filter_map(|token| match token {
                Token::Text(text) => Some(text),
                _ => None,
            })
            .collect();
        if texts.len() == 1 && statement.contains(&&Token::Identifier("str".into())) {
            constants.insert(name.clone(), texts[0].clone());
        }
    }
    let mut found = BTreeSet::new();
    for (index, token) in tokens.iter().enumerate() {
        match token {
            // function( [&] "NAME" | CONSTANT
            Token::Identifier(function)
                if tokens.get(index + 1) == Some(&Token::Punctuation('('))
                    && looks_like_a_setting_reader(function) =>
            {
                let mut argument = index + 2;
                if tokens.get(argument) == Some(&Token::Punctuation('&')) {
                    argument += 1;
                }
                let name = match tokens.get(argument) {
                    Some(Token::Text(text)) => Some(text.clone()),
                    Some(Token::Identifier(constant)) => constants.get(constant).cloned(),
                    _ => None,
                };
                if let Some(name) = name.filter(|name| is_setting_name(name)) {
                    found.insert(name);
                }
            }
            // env = "NAME" (clap) and variable: "NAME" (setting errors)
            Token::Identifier(keyword) if keyword == "env" || keyword == "variable" => {
                let separator = if keyword == "env" { '=' } else { ':' };
                if tokens.get(index + 1) == Some(&Token::Punctuation(separator))
                    && let Some(Token::Text(name)) = tokens.get(index + 2)
                    && is_setting_name(name)
                {
                    found.insert(name.clone());
                }
            }
            _ => {}
        }
    }
    found
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

/// Every setting read by the crates' sources, with the files that read it.
fn settings_read_by_the_code() -> BTreeMap<String, BTreeSet<String>> {
    let root = workspace_root();
    let mut files = Vec::new();
    for crate_directory in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        rust_files_under(&crate_directory.path().join("src"), &mut files);
    }
    assert!(files.len() > 20, "the scan found only {files:?}");
    let mut settings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("readable source");
        let relative = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for name in settings_read_in(&source) {
            if !is_ignored(&name) {
                settings.entry(name).or_default().insert(relative.clone());
            }
        }
    }
    settings
}

/// The names `.env.example` lists (`NAME=…` or `# NAME=…`).
fn settings_in_env_example() -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join(".env.example"))
        .expect(".env.example at the workspace root");
    text.lines()
        .filter_map(|line| {
            let uncommented = line.trim().trim_start_matches('#').trim_start();
            uncommented
                .split_once('=')
                .map(|(name, _)| name.to_string())
                .filter(|name| is_setting_name(name))
        })
        .collect()
}

#[test]
fn the_scan_finds_each_way_a_setting_is_read() {
    let source = r##"
        const CACHE_VARIABLE: &str = "FROM_CONSTANT";
        fn f() {
            let _ = std::env::var("PLAIN_VAR");
            let _ = std::env::var_os(CACHE_VARIABLE);
            let _ = setting("VIA_SETTING");
            let _ = count_setting(
                "MULTI_LINE",
                3,
                "a whole number",
            );
            let _ = environment.get("MAP_KEY").unwrap_or("DEFAULT_VALUE_IS_NOT_A_NAME");
            let _ = environment.boolean("BOOLEAN_KEY", false);
            let _ = binary_from_environment("BINARY_PATH", "ffmpeg");
            let _ = SettingError { variable: "IN_AN_ERROR", value: x, allowed: "y".into() };
            let _ = redis::cmd("XGROUP").arg("CREATE"); // not settings
            let _ = format!("{}", "NOT_AN_ARGUMENT_OF_A_READER");
            let _ = '"'; let _ = 'a'; let _: &'static str = "x";
            let _ = r#"raw "quoted" text with setting("IN_RAW_STRING")"#;
            // std::env::var("IN_A_COMMENT")
        }
        struct Arguments {
            #[arg(long, env = "CLAP_ENV", default_value_t = false)]
            flag: bool,
        }
        #[cfg(test)]
        mod tests {
            fn g() { let _ = std::env::var("ONLY_IN_TESTS"); let _ = "}"; }
        }
        fn after() { let _ = std::env::var("AFTER_TESTS"); }
    "##;
    let found: Vec<String> = settings_read_in(source).into_iter().collect();
    assert_eq!(
        found,
        [
            "AFTER_TESTS",
            "BINARY_PATH",
            "BOOLEAN_KEY",
            "CLAP_ENV",
            "FROM_CONSTANT",
            "IN_AN_ERROR",
            "MAP_KEY",
            "MULTI_LINE",
            "PLAIN_VAR",
            "VIA_SETTING",
        ]
    );
}

#[test]
fn the_scan_finds_the_known_settings() {
    let read = settings_read_by_the_code();
    for name in [
        "TELEGRAM_BOT_TOKEN",
        "REDIS_URL",
        "LOCAL_STORAGE_PATH",
        "FILE_RETENTION_HOURS",
        "FFMPEG_DEFAULT_TIMEOUT",
        "FFMPEG_PATH",
        "STORAGE_BACKEND",
        "GDRIVE_CLIENT_SECRET",
        "ALLOW_PRIVATE_NETWORKS",
        "LOG_FORMAT",
    ] {
        assert!(
            read.contains_key(name),
            "{name} not found by the scan: {read:?}"
        );
    }
}

#[test]
fn every_setting_the_code_reads_is_in_env_example() {
    let listed = settings_in_env_example();
    let missing: Vec<String> = settings_read_by_the_code()
        .into_iter()
        .filter(|(name, _)| !listed.contains(name))
        .map(|(name, files)| {
            format!(
                "{name} (read in {})",
                files.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "settings read by the code but missing from .env.example (add each with a one-line \
         description and \"Default: …\"; or, when it is not a setting, to is_ignored in this \
         test):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_setting_in_env_example_is_read_by_the_code() {
    let read = settings_read_by_the_code();
    let stale: Vec<String> = settings_in_env_example()
        .into_iter()
        .filter(|name| !read.contains_key(name))
        .collect();
    assert!(
        stale.is_empty(),
        ".env.example lists settings nothing reads (remove them, or read them): {stale:?}"
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
