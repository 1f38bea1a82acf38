//! The periodic fsync of every recording of the process as one group commit.
//!
//! Each [`crate::ledger::PartWriter`] asks for its part and ledger to reach the disk once its
//! `fsync_interval` has passed. Asked one by one, a worker with hundreds of recordings ran two
//! `fdatasync`s per recording per interval, each writing its file's pages and inode and flushing
//! the disk's cache on a blocking thread of its own (a tenth of the worker's CPU at 100
//! recordings). Here one thread of the process takes every request queued at that moment and
//! makes them durable together: one `syncfs` per filesystem, which writes every dirty page and
//! inode of that filesystem (the writeback itself runs in the kernel's flusher threads) and
//! flushes the disk once. A request is answered only by a `syncfs` that started after it was
//! queued, so every byte written before the request is on the disk when it is answered.
//!
//! What it changes: inside one `syncfs` the kernel does not promise to write a part's pages
//! before its ledger's (as its own background writeback never did between two fsyncs), so a
//! crash of the machine *during* the call may leave a ledger line whose bytes did not reach the
//! part; a `kill -9` loses nothing either way (the page cache outlives the process). On a FUSE
//! filesystem (rclone, sshfs mounts) `syncfs` may do nothing, and where the call is refused, the
//! request's files are `fdatasync`ed one by one, part before ledger, as before.
//!
//! The thread is started by the first request and lives as long as the process; a filesystem
//! that hangs in `syncfs` holds the requests of every filesystem behind it (each writer has at
//! most one request in flight, so nothing piles up and no recording waits for it).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

/// A failed sync: the file it was reported for and the error.
pub(crate) type SyncFailure = (PathBuf, std::io::Error);

/// One writer's request: its files in the order they must reach the disk (part, then ledger),
/// where its answer goes, and the flag that says one is in flight.
pub(crate) struct SyncRequest {
    pub files: Vec<(PathBuf, File)>,
    pub in_flight: Arc<AtomicBool>,
    pub failure: Arc<Mutex<Option<SyncFailure>>>,
}

/// How the files of one filesystem are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncMethod {
    /// One `syncfs` for every request on the filesystem.
    WholeFilesystem,
    /// `fdatasync` of each file, in each request's order.
    EachFile,
}

/// The method for a filesystem of type `filesystem_type` (`statfs`'s `f_type`): FUSE servers
/// may not implement `syncfs` (the kernel then reports success having written nothing).
pub(crate) fn sync_method_for(filesystem_type: Option<i64>) -> SyncMethod {
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    match filesystem_type {
        Some(FUSE_SUPER_MAGIC) | None => SyncMethod::EachFile,
        Some(_) => SyncMethod::WholeFilesystem,
    }
}

struct Queue {
    requests: Mutex<Vec<SyncRequest>>,
    arrived: Condvar,
    /// `syncfs` calls made (for tests: requests are grouped).
    filesystem_syncs: AtomicU64,
    /// False when the thread could not be started: requests are served where they are made.
    thread_running: AtomicBool,
}

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<&'static Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let queue: &'static Queue = Box::leak(Box::new(Queue {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            filesystem_syncs: AtomicU64::new(0),
            thread_running: AtomicBool::new(true),
        }));
        let started = std::thread::Builder::new()
            .name("streambot-fsync".to_string())
            .spawn(move || serve(queue));
        if let Err(error) = started {
            queue.thread_running.store(false, Ordering::Release);
            tracing::error!(%error, "the fsync thread could not start; syncing in place");
        }
        queue
    })
}

/// Queues `request`; its answer (success, or the failure in its slot) comes from the fsync
/// thread. Without that thread the request is served here.
pub(crate) fn request_sync(request: SyncRequest) {
    let queue = queue();
    if !queue.thread_running.load(Ordering::Acquire) {
        sync_batch(vec![request], &queue.filesystem_syncs);
        return;
    }
    let mut requests = queue
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    requests.push(request);
    queue.arrived.notify_one();
}

/// `syncfs` calls made by this process so far.
#[cfg(test)]
pub(crate) fn filesystem_syncs_so_far() -> u64 {
    queue().filesystem_syncs.load(Ordering::Acquire)
}

fn serve(queue: &'static Queue) {
    loop {
        let batch = {
            let mut requests = queue
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while requests.is_empty() {
                requests = queue
                    .arrived
                    .wait(requests)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::take(&mut *requests)
        };
        sync_batch(batch, &queue.filesystem_syncs);
    }
}

/// Makes every request of `batch` durable: grouped by filesystem, one `syncfs` each where that
/// works, else each request's files in order.
fn sync_batch(batch: Vec<SyncRequest>, filesystem_syncs: &AtomicU64) {
    // A request whose filesystem cannot be told (its `fstat` failed) is synced file by file.
    let mut by_device: HashMap<Option<u64>, Vec<SyncRequest>> = HashMap::new();
    for request in batch {
        let device = request
            .files
            .first()
            .and_then(|(_, file)| file.metadata().ok())
            .map(|metadata| metadata.dev());
        by_device.entry(device).or_default().push(request);
    }
    for (device, requests) in by_device {
        let representative = requests
            .iter()
            .find_map(|request| request.files.first())
            .map(|(_, file)| file);
        let method = match (device, representative) {
            (Some(_), Some(file)) => sync_method_for(filesystem_type(file)),
            _ => SyncMethod::EachFile,
        };
        let whole = match (method, representative) {
            (SyncMethod::WholeFilesystem, Some(file)) => {
                filesystem_syncs.fetch_add(1, Ordering::AcqRel);
                Some(nix::unistd::syncfs(file).map_err(std::io::Error::from))
            }
            _ => None,
        };
        for request in requests {
            let outcome = match &whole {
                Some(Ok(())) => Ok(()),
                // Reported against the request's own file (its part), not another track's.
                Some(Err(error)) => Err((
                    request
                        .files
                        .first()
                        .map(|(path, _)| path.clone())
                        .unwrap_or_default(),
                    std::io::Error::new(error.kind(), error.to_string()),
                )),
                None => sync_each_file(&request.files),
            };
            if let Err(failure) = outcome {
                *request
                    .failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(failure);
            }
            request.in_flight.store(false, Ordering::Release);
        }
    }
}

/// `fdatasync` of each file in order; the first failure stops it.
fn sync_each_file(files: &[(PathBuf, File)]) -> Result<(), SyncFailure> {
    for (path, file) in files {
        file.sync_data().map_err(|error| (path.clone(), error))?;
    }
    Ok(())
}

// `f_type`'s width differs between C libraries (a `long` on glibc).
#[allow(clippy::unnecessary_cast)]
fn filesystem_type(file: &File) -> Option<i64> {
    nix::sys::statfs::fstatfs(file)
        .ok()
        .map(|statistics| statistics.filesystem_type().0 as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    #[test]
    fn fuse_and_unknown_filesystems_are_synced_file_by_file() {
        assert_eq!(sync_method_for(Some(0x6573_5546)), SyncMethod::EachFile);
        assert_eq!(sync_method_for(None), SyncMethod::EachFile);
        assert_eq!(
            sync_method_for(Some(0xEF53)),
            SyncMethod::WholeFilesystem,
            "ext4"
        );
        assert_eq!(
            sync_method_for(Some(0x5846_5342)),
            SyncMethod::WholeFilesystem,
            "xfs"
        );
    }

    #[test]
    fn the_requests_queued_together_are_answered_by_one_filesystem_sync_each_round() {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut flags = Vec::new();
        let before = filesystem_syncs_so_far();
        // Queued while the thread is held (the queue's lock taken): one round serves them all.
        {
            let queue = queue();
            let mut held = queue.requests.lock().expect("lock");
            for index in 0..50 {
                let path = directory.path().join(format!("part-{index}.ts"));
                let mut file = File::create(&path).expect("create");
                file.write_all(&[0x47; 188]).expect("write");
                let in_flight = Arc::new(AtomicBool::new(true));
                let failure = Arc::new(Mutex::new(None));
                flags.push((Arc::clone(&in_flight), Arc::clone(&failure)));
                held.push(SyncRequest {
                    files: vec![(path, file)],
                    in_flight,
                    failure,
                });
            }
            queue.arrived.notify_one();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while flags
            .iter()
            .any(|(in_flight, _)| in_flight.load(Ordering::Acquire))
        {
            assert!(Instant::now() < deadline, "every request is answered");
            std::thread::sleep(Duration::from_millis(5));
        }
        for (_, failure) in &flags {
            assert!(failure.lock().expect("lock").is_none());
        }
        let method = sync_method_for(filesystem_type(
            &File::open(directory.path()).expect("open directory"),
        ));
        let syncs = filesystem_syncs_so_far() - before;
        match method {
            // Other tests of this binary may have queued theirs meanwhile: a few rounds at most.
            SyncMethod::WholeFilesystem => assert!((1..=5).contains(&syncs), "{syncs} syncfs"),
            SyncMethod::EachFile => assert_eq!(syncs, 0),
        }
    }
}
