//! Helpers shared by the recorder's integration tests.

use std::path::Path;

/// The errors ffmpeg prints decoding `file` (`ffmpeg -v error -f null -`), one per line.
pub fn decode_errors(file: &Path) -> Vec<String> {
    let output = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// ffprobe's answer for `entries` of `file`, one value a line (`-of csv=p=0`).
#[allow(dead_code)]
pub fn ffprobe_values(file: &Path, entries: &str) -> Vec<String> {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}
