//! What a test needs from the machine (ffmpeg, a Redis, chromium, shellcheck, the corpus…), and
//! the one place that decides what happens when it is missing: the test is skipped with a
//! `skipped: … missing` line, or, with `STREAMBOT_REQUIRE_ALL=1` (set by `scripts/test.sh`, so
//! in CI), it fails. A green CI run therefore ran every test.
//!
//! Plain `std` only, so that the tests of crates without this crate as a dependency can include
//! this file with `#[path]` (as they do `redis.rs`).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

/// Set to `1` (or `true`): every missing requirement fails its test instead of skipping it.
pub const REQUIRE_ALL_VARIABLE: &str = "STREAMBOT_REQUIRE_ALL";
/// Comma-separated requirements that may still skip under `STREAMBOT_REQUIRE_ALL=1`, named
/// exactly as the skip line names them (`docker compose`): an explicit, visible exemption.
pub const ALLOWED_MISSING_VARIABLE: &str = "STREAMBOT_ALLOW_MISSING";

/// Whether `STREAMBOT_REQUIRE_ALL` asks for every test to run.
pub fn everything_is_required() -> bool {
    std::env::var(REQUIRE_ALL_VARIABLE).is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes"
        )
    })
}

/// A test cannot run because `missing` is not here (`how_to_get_it`: the command that installs
/// it). Prints `skipped: …` and returns, or panics with the same words when everything is
/// required. Call it where the test returns early.
pub fn skip_or_fail(missing: &str, how_to_get_it: &str) {
    let line = format!("skipped: {missing} missing ({how_to_get_it})");
    let exempt = std::env::var(ALLOWED_MISSING_VARIABLE).is_ok_and(|list| {
        list.split(',')
            .any(|allowed| !allowed.trim().is_empty() && allowed.trim() == missing)
    });
    if everything_is_required() && !exempt {
        panic!("{line}, and {REQUIRE_ALL_VARIABLE}=1 requires every test to run");
    }
    eprintln!("{line}");
}

/// Whether `program` runs (`program ARGUMENTS` exits 0, output discarded).
pub fn program_runs(program: &str, arguments: &[&str]) -> bool {
    Command::new(program)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `true` when `program` answers `program -version`/`--version` (`nginx -v`); otherwise
/// [`skip_or_fail`] and `false`. For ffmpeg, ffprobe, redis-server, chromium, shellcheck, nginx,
/// gst-launch-1.0.
pub fn require_or_skip(program: &str) -> bool {
    let version_flag = match program {
        "ffmpeg" | "ffprobe" => "-version",
        "nginx" => "-v",
        _ => "--version",
    };
    if program_runs(program, &[version_flag]) {
        return true;
    }
    skip_or_fail(
        program,
        &format!("apt-get install -y {}", package_of(program)),
    );
    false
}

/// `true` when `path` exists (a corpus, a fixture directory); otherwise [`skip_or_fail`].
pub fn require_path_or_skip(path: &Path, what: &str, how_to_get_it: &str) -> bool {
    if path.exists() {
        return true;
    }
    skip_or_fail(&format!("{what} ({})", path.display()), how_to_get_it);
    false
}

/// The Debian package that provides `program`.
fn package_of(program: &str) -> &str {
    match program {
        "ffprobe" => "ffmpeg",
        "redis-server" | "redis-cli" => "redis-server",
        "gst-launch-1.0" => "gstreamer1.0-tools",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_runs_is_found_and_one_that_does_not_is_not() {
        assert!(program_runs("sh", &["-c", "exit 0"]));
        assert!(!program_runs("streambot-no-such-program", &[]));
        assert_eq!(package_of("ffprobe"), "ffmpeg");
        assert_eq!(package_of("shellcheck"), "shellcheck");
    }
}
