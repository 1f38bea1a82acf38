//! The one file-system helper every crate may use (std only, no tokio: callers in async code run
//! it as they run any short blocking write): a whole file replaced atomically, and the size of a
//! directory tree. It is the only IO in `core`.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The suffix of the temporary file `write_file_atomically` writes first; listings skip names
/// that end with it.
pub const TEMPORARY_FILE_SUFFIX: &str = ".tmp";

/// The most directory entries `directory_size_bytes` looks at, so one walk stays short.
pub const MAXIMUM_ENTRIES_WALKED: usize = 1_000_000;

/// A step of a file operation that failed, with the path it was done on.
#[derive(Debug, thiserror::Error)]
#[error("could not {action} {path}: {source}")]
pub struct LocalFileError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl LocalFileError {
    fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        LocalFileError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Replaces `path` with `contents` so that a reader sees the old file or the new one, never a
/// part, even across a crash: written to `<name>.tmp` beside it, fsync'd, renamed over `path`,
/// then the directory fsync'd. The temporary file is removed when a step fails.
pub fn write_file_atomically(path: &Path, contents: &[u8]) -> Result<(), LocalFileError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(LocalFileError::new(
            "name a file at",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    };
    let mut temporary_name = file_name.to_os_string();
    temporary_name.push(TEMPORARY_FILE_SUFFIX);
    let temporary_path = directory.join(temporary_name);
    let written = write_and_sync(&temporary_path, contents).and_then(|()| {
        std::fs::rename(&temporary_path, path)
            .map_err(|error| LocalFileError::new("rename into place", path, error))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary_path);
    }
    written?;
    sync_directory(directory)
}

/// `value` as pretty JSON, written with `write_file_atomically`.
pub fn write_json_atomically<T: serde::Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> Result<(), LocalFileError> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|error| LocalFileError::new("encode JSON for", path, error.into()))?;
    write_file_atomically(path, &text)
}

fn write_and_sync(path: &Path, contents: &[u8]) -> Result<(), LocalFileError> {
    let mut file =
        File::create(path).map_err(|error| LocalFileError::new("create", path, error))?;
    file.write_all(contents)
        .map_err(|error| LocalFileError::new("write", path, error))?;
    file.sync_all()
        .map_err(|error| LocalFileError::new("sync", path, error))
}

/// Makes a rename in `directory` durable (a no-op where directories cannot be opened).
fn sync_directory(directory: &Path) -> Result<(), LocalFileError> {
    if cfg!(unix) {
        File::open(directory)
            .and_then(|handle| handle.sync_all())
            .map_err(|error| LocalFileError::new("sync the directory", directory, error))
    } else {
        Ok(())
    }
}

/// Total size of the regular files under `directory`, `max_depth` levels down at most (1: its
/// own files only), at most `MAXIMUM_ENTRIES_WALKED` entries. A missing directory is empty;
/// links are not followed.
pub fn directory_size_bytes(directory: &Path, max_depth: u32) -> Result<u64, LocalFileError> {
    let mut entries_left = MAXIMUM_ENTRIES_WALKED;
    size_below(directory, max_depth, &mut entries_left)
}

fn size_below(
    directory: &Path,
    max_depth: u32,
    entries_left: &mut usize,
) -> Result<u64, LocalFileError> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(LocalFileError::new("list", directory, error)),
    };
    let mut total_bytes = 0u64;
    for entry in entries {
        if *entries_left == 0 {
            break;
        }
        *entries_left -= 1;
        let entry = entry.map_err(|error| LocalFileError::new("list", directory, error))?;
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_file() {
            let length = entry.metadata().map(|metadata| metadata.len()).unwrap_or(0);
            total_bytes = total_bytes.saturating_add(length);
        } else if file_type.is_dir() && max_depth > 1 {
            let inner = size_below(&entry.path(), max_depth - 1, entries_left)?;
            total_bytes = total_bytes.saturating_add(inner);
        }
    }
    Ok(total_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_directory() -> tempfile::TempDir {
        tempfile::tempdir().expect("scratch directory")
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_file() {
        let scratch = scratch_directory();
        let directory = scratch.path();
        let path = directory.join("finalized.json");
        write_file_atomically(&path, b"first").expect("first write");
        write_json_atomically(&path, &serde_json::json!({"files": 2})).expect("second write");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert!(text.contains("\"files\": 2"), "{text}");
        let names: Vec<_> = std::fs::read_dir(directory)
            .expect("list")
            .flatten()
            .map(|entry| entry.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("finalized.json")]);
    }

    #[test]
    fn an_atomic_write_into_a_missing_directory_is_an_error_that_names_the_path() {
        let scratch = scratch_directory();
        let directory = scratch.path();
        let path = directory.join("absent").join("stored.json");
        let error = write_file_atomically(&path, b"x").expect_err("no directory");
        assert_eq!(error.action, "create");
        assert!(error.to_string().contains("stored.json.tmp"), "{error}");
    }

    #[test]
    fn directory_size_counts_files_down_to_the_depth_asked() {
        let scratch = scratch_directory();
        let directory = scratch.path();
        std::fs::write(directory.join("top"), [0u8; 10]).expect("top file");
        std::fs::create_dir_all(directory.join("job/inner")).expect("nested");
        std::fs::write(directory.join("job/part"), [0u8; 100]).expect("part");
        std::fs::write(directory.join("job/inner/deep"), [0u8; 1000]).expect("deep");
        assert_eq!(directory_size_bytes(directory, 1).expect("depth 1"), 10);
        assert_eq!(directory_size_bytes(directory, 2).expect("depth 2"), 110);
        assert_eq!(directory_size_bytes(directory, 3).expect("depth 3"), 1110);
        assert_eq!(
            directory_size_bytes(&directory.join("nothing"), 3).expect("missing"),
            0
        );
    }
}
