//! Where things live under `LOCAL_STORAGE_PATH`: `user_<id>/<job_id>/part-0001.mp4` and the job's
//! `remote.jsonl`. Paths are built only from ids and counters, never from user text. No IO here.

use std::path::{Path, PathBuf};

use streambot_core::JobId;

/// The file in each job directory that lists confirmed remote copies, one JSON line each.
pub use streambot_core::job_files::REMOTE_COPIES_FILE_NAME;

/// Extensions a stored part may have; anything else is stored as `.bin`.
pub const MEDIA_EXTENSIONS: [&str; 5] = ["mp4", "mkv", "ts", "m4a", "bin"];

pub fn user_directory(root: &Path, user_id: i64) -> PathBuf {
    root.join(user_directory_name(user_id))
}

pub fn user_directory_name(user_id: i64) -> String {
    format!("user_{user_id}")
}

pub fn job_directory(root: &Path, user_id: i64, job_id: JobId) -> PathBuf {
    user_directory(root, user_id).join(job_id.as_str())
}

/// `user_123` → 123. Anything else is not a user directory.
pub fn parse_user_directory_name(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("user_")?;
    let user_id: i64 = digits.parse().ok()?;
    // Refuse `user_+1`, `user_007` and the like: one spelling per id.
    (user_directory_name(user_id) == name).then_some(user_id)
}

/// `part-0007.mp4` for part 7 of a file whose extension is `mp4`.
pub fn part_file_name(part_number: u32, source_extension: Option<&str>) -> String {
    let extension = source_extension
        .map(|extension| extension.to_ascii_lowercase())
        .filter(|extension| MEDIA_EXTENSIONS.contains(&extension.as_str()))
        .unwrap_or_else(|| "bin".to_string());
    format!("part-{part_number:04}.{extension}")
}

/// The part number of a stored part's file name, or None when the name is not one we write.
pub fn parse_part_file_name(file_name: &str) -> Option<u32> {
    let (stem, extension) = file_name.rsplit_once('.')?;
    if !MEDIA_EXTENSIONS.contains(&extension) {
        return None;
    }
    let digits = stem.strip_prefix("part-")?;
    if digits.len() < 4 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The name a part gets in a remote store: `A3F2B1C9-part-0001.mp4`.
pub fn remote_file_name(job_id: JobId, local_file_name: &str) -> String {
    format!("{job_id}-{local_file_name}")
}

/// The MIME type of a stored part, by its extension.
pub fn content_type_for(file_name: &str) -> &'static str {
    match file_name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("mp4") => "video/mp4",
        Some("mkv") => "video/x-matroska",
        Some("ts") => "video/mp2t",
        Some("m4a") => "audio/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_ids() {
        let job_id = JobId::from_u32(0xA3F2_B1C9);
        assert_eq!(
            job_directory(Path::new("/data"), 42, job_id),
            PathBuf::from("/data/user_42/A3F2B1C9")
        );
        assert_eq!(part_file_name(3, Some("MP4")), "part-0003.mp4");
        assert_eq!(part_file_name(3, Some("../x")), "part-0003.bin");
        assert_eq!(part_file_name(12345, None), "part-12345.bin");
    }

    #[test]
    fn only_our_own_names_parse() {
        assert_eq!(parse_user_directory_name("user_42"), Some(42));
        assert_eq!(parse_user_directory_name("user_-5"), Some(-5));
        for refused in ["user_", "user_007", "user_+1", "42", "user_4 2", "USER_1"] {
            assert_eq!(parse_user_directory_name(refused), None, "{refused}");
        }
        assert_eq!(parse_part_file_name("part-0003.mp4"), Some(3));
        assert_eq!(parse_part_file_name("part-12345.ts"), Some(12345));
        for refused in [
            "part-3.mp4",
            "part-0003.exe",
            "remote.jsonl",
            "../part-0001.mp4",
        ] {
            assert_eq!(parse_part_file_name(refused), None, "{refused}");
        }
    }
}
