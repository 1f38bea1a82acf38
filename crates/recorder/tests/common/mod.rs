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
