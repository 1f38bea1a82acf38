//! When a waiting SQLite claimer needs to ask the table again.
//!
//! Jobs added by another process (`streambot jobs add`, a second worker) reach this one only
//! through the database file, so a waiting claimer polls. Asking the table costs two thread
//! hand-offs to sqlx's SQLite thread per look; at five looks a second, forever, that was a
//! noticeable share of an otherwise idle worker's CPU (BENCHMARKS.md, issue 14). The claimer now
//! looks at the database files first (one `stat` each, on the async thread): while neither the
//! database nor its write-ahead log changed since a look that found nothing, no job can have
//! become claimable except by time passing, and the earliest waiting job's time was read with
//! that look. A job submitted in this process wakes the claimer directly, as before.
//!
//! [`ClaimWatch::query_due`] is the decision, pure; [`DatabaseFiles::read`] the only IO.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The table is asked at least this often whatever the files say (a file system whose
/// modification times are coarse, a change that kept the size and the time).
pub(crate) const LONGEST_CLAIM_SILENCE: Duration = Duration::from_secs(5);

/// Size and modification time of one file; `None` when it does not exist or cannot be read.
type FileState = Option<(u64, Option<SystemTime>)>;

/// The database file and its write-ahead log, as seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseFiles {
    database: FileState,
    write_ahead_log: FileState,
}

impl DatabaseFiles {
    /// The write-ahead log's path for a database path (`streambot.db` → `streambot.db-wal`).
    pub(crate) fn write_ahead_log_path(database_path: &Path) -> PathBuf {
        let mut name = database_path.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    }

    /// Two `stat` calls: cheap enough for the async thread.
    pub(crate) fn read(database_path: &Path, write_ahead_log_path: &Path) -> DatabaseFiles {
        let state = |path: &Path| -> FileState {
            std::fs::metadata(path)
                .ok()
                .map(|metadata| (metadata.len(), metadata.modified().ok()))
        };
        DatabaseFiles {
            database: state(database_path),
            write_ahead_log: state(write_ahead_log_path),
        }
    }
}

/// What the last look that found nothing claimable saw.
#[derive(Debug, Clone)]
struct EmptyLook {
    /// The files as they were just before that look (a write during it shows as a change).
    files: DatabaseFiles,
    looked_at: Instant,
    /// The queues asked (a claimer for other queues asks for itself).
    queue_names: Vec<&'static str>,
    /// When the earliest job of those queues that was not yet due becomes due (ms since the
    /// epoch, the table's clock), if any.
    earliest_waiting_ms: Option<i64>,
}

/// The claimers' memory of their last empty look, shared by every claim of one backend.
#[derive(Debug, Default)]
pub(crate) struct ClaimWatch {
    last_empty_look: Option<EmptyLook>,
}

impl ClaimWatch {
    /// Whether the table must be asked now. `files_now` as read just now, `now` the monotonic
    /// clock, `now_ms` the table's clock.
    pub(crate) fn query_due(
        &self,
        files_now: &DatabaseFiles,
        queue_names: &[&'static str],
        now: Instant,
        now_ms: i64,
    ) -> bool {
        let Some(look) = &self.last_empty_look else {
            return true;
        };
        look.files != *files_now
            || look.queue_names != queue_names
            || now.saturating_duration_since(look.looked_at) >= LONGEST_CLAIM_SILENCE
            || look
                .earliest_waiting_ms
                .is_some_and(|due_ms| due_ms <= now_ms)
    }

    /// A look found nothing claimable.
    pub(crate) fn record_empty_look(
        &mut self,
        files_before: DatabaseFiles,
        queue_names: &[&'static str],
        looked_at: Instant,
        earliest_waiting_ms: Option<i64>,
    ) {
        self.last_empty_look = Some(EmptyLook {
            files: files_before,
            looked_at,
            queue_names: queue_names.to_vec(),
            earliest_waiting_ms,
        });
    }

    /// Something this process did may have made a job claimable: the next claim asks.
    pub(crate) fn forget(&mut self) {
        self.last_empty_look = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(database: u64, log: Option<u64>) -> DatabaseFiles {
        DatabaseFiles {
            database: Some((database, None)),
            write_ahead_log: log.map(|size| (size, None)),
        }
    }

    #[test]
    fn the_table_is_asked_only_when_a_file_changed_time_made_a_job_due_or_too_long_passed() {
        let start = Instant::now();
        let queues: &[&'static str] = &["priority", "normal"];
        let mut watch = ClaimWatch::default();
        // Never looked: ask.
        assert!(watch.query_due(&files(4096, Some(0)), queues, start, 1_000));
        watch.record_empty_look(files(4096, Some(0)), queues, start, None);
        // Nothing changed: do not ask, until the longest silence.
        let later = start + Duration::from_millis(200);
        assert!(!watch.query_due(&files(4096, Some(0)), queues, later, 1_200));
        assert!(watch.query_due(
            &files(4096, Some(0)),
            queues,
            start + LONGEST_CLAIM_SILENCE,
            6_000
        ));
        // Another process wrote (the log grew, or appeared, or the database changed): ask.
        assert!(watch.query_due(&files(4096, Some(4152)), queues, later, 1_200));
        assert!(watch.query_due(&files(8192, Some(0)), queues, later, 1_200));
        assert!(watch.query_due(&files(4096, None), queues, later, 1_200));
        // Other queues: ask.
        assert!(watch.query_due(&files(4096, Some(0)), &["priority"], later, 1_200));
        // A retry waiting until 1,500 ms: not before, then yes.
        watch.record_empty_look(files(4096, Some(0)), queues, start, Some(1_500));
        assert!(!watch.query_due(&files(4096, Some(0)), queues, later, 1_499));
        assert!(watch.query_due(&files(4096, Some(0)), queues, later, 1_500));
        // This process submitted or requeued: ask.
        watch.forget();
        assert!(watch.query_due(&files(4096, Some(0)), queues, later, 1_200));
    }

    #[test]
    fn a_modification_time_alone_is_a_change() {
        let start = Instant::now();
        let queues: &[&'static str] = &["normal"];
        let before = DatabaseFiles {
            database: Some((4096, Some(SystemTime::UNIX_EPOCH))),
            write_ahead_log: Some((4152, Some(SystemTime::UNIX_EPOCH))),
        };
        let rewritten_in_place = DatabaseFiles {
            database: Some((4096, Some(SystemTime::UNIX_EPOCH))),
            write_ahead_log: Some((4152, Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(1)))),
        };
        let mut watch = ClaimWatch::default();
        watch.record_empty_look(before.clone(), queues, start, None);
        assert!(!watch.query_due(&before, queues, start, 0));
        assert!(watch.query_due(&rewritten_in_place, queues, start, 0));
    }

    #[test]
    fn the_log_path_is_the_database_path_with_wal() {
        assert_eq!(
            DatabaseFiles::write_ahead_log_path(Path::new("/data/streambot.db")),
            PathBuf::from("/data/streambot.db-wal")
        );
    }
}
