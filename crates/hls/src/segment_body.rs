//! A segment body in memory up to a small threshold, beyond it in a temporary file in the
//! track's output directory: a track's memory stays bounded by a few MiB per download whatever
//! the segment size (issue 11: endless bodies were buffered whole, 128 MiB each). The file is
//! removed when the body is dropped (committed or given up); after a `kill -9` the next run of the
//! track removes what is left ([`remove_leftover_spill_files`]). The bytes a track's spill files
//! hold at once are bounded by its [`SpillBudget`]: the disk a recording takes between two quota
//! checks of the worker is its parts plus this, not parallel downloads x buffered segments x the
//! segment size limit (x 2 while decrypting).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};

/// Where and from which size a body spills to disk.
#[derive(Debug, Clone)]
pub struct SpillTarget {
    pub directory: PathBuf,
    /// Names the files: `.{file_prefix}-spill-XXXXXX`.
    pub file_prefix: String,
    /// Most bytes of one body kept in memory; a body that grows past it moves to a file.
    pub in_memory_limit: u64,
    /// The bytes every spill file of the track may hold together.
    pub budget: SpillBudget,
    /// The download's place in the commit order: the head of that order is never refused by
    /// the budget (it would be starved by the bodies waiting behind it).
    pub head: Option<SpillHead>,
}

/// Which download is the head of the commit order now, and this one's key.
#[derive(Debug, Clone)]
pub struct SpillHead {
    pub head: tokio::sync::watch::Receiver<Option<(u32, u64)>>,
    pub own_key: (u32, u64),
}

impl SpillTarget {
    /// This download is the head of the commit order now.
    fn is_head(&self) -> bool {
        self.head
            .as_ref()
            .is_some_and(|head| *head.head.borrow() == Some(head.own_key))
    }

    /// Waits until `bytes` more fit in the budget or this download is the head (a download
    /// behind waits for the bodies before it to be committed instead of failing).
    pub async fn wait_for_room(&self, bytes: u64) {
        loop {
            if self.is_head() || self.budget.has_room_for(bytes) {
                return;
            }
            let released = self.budget.state.released.notified();
            tokio::select! {
                _ = released => {}
                // The head may have moved to this download without a release.
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        }
    }
}

/// Bytes a track's spill files may hold together (shared by its downloads, their decrypted
/// copies and slices). A download behind the head of the commit order waits for room
/// ([`SpillTarget::wait_for_room`]); a write past it fails with [`SpillBudgetExceeded`] (retried,
/// a gap at its deadline). The head is never refused, so a track has at most this plus the
/// head's body (twice while it is decrypted) on disk outside its parts.
#[derive(Debug, Clone)]
pub struct SpillBudget {
    state: Arc<SpillBudgetState>,
}

#[derive(Debug)]
struct SpillBudgetState {
    limit_bytes: u64,
    used_bytes: AtomicU64,
    /// Told on every release (downloads waiting for room look again).
    released: tokio::sync::Notify,
}

impl SpillBudget {
    pub fn new(limit_bytes: u64) -> Self {
        SpillBudget {
            state: Arc::new(SpillBudgetState {
                limit_bytes,
                used_bytes: AtomicU64::new(0),
                released: tokio::sync::Notify::new(),
            }),
        }
    }

    /// No bound (a fetch whose body never spills).
    pub fn unbounded() -> Self {
        SpillBudget::new(u64::MAX)
    }

    pub fn limit_bytes(&self) -> u64 {
        self.state.limit_bytes
    }

    /// Bytes the track's spill files hold now.
    pub fn used_bytes(&self) -> u64 {
        self.state.used_bytes.load(Ordering::SeqCst)
    }

    fn has_room_for(&self, bytes: u64) -> bool {
        self.used_bytes()
            .checked_add(bytes)
            .is_some_and(|total| total <= self.state.limit_bytes)
    }

    /// Reserves `bytes` when they fit, or whatever the budget holds when `always`.
    fn try_reserve(&self, bytes: u64, always: bool) -> bool {
        self.state
            .used_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                let total = used.saturating_add(bytes);
                (always || total <= self.state.limit_bytes).then_some(total)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .state
            .used_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(bytes))
            });
        self.state.released.notify_waiters();
    }
}

/// Bytes reserved in a [`SpillBudget`] by one spill file, given back when it is dropped.
#[derive(Debug)]
struct SpillReservation {
    budget: SpillBudget,
    bytes: u64,
}

impl SpillReservation {
    /// Reserves `bytes` more; the head of the commit order (`is_head`) always gets them.
    fn grow(&mut self, bytes: u64, is_head: bool) -> std::io::Result<()> {
        if self.budget.try_reserve(bytes, is_head) {
            self.bytes = self.bytes.saturating_add(bytes);
            Ok(())
        } else {
            Err(std::io::Error::other(SpillBudgetExceeded {
                limit_bytes: self.budget.limit_bytes(),
            }))
        }
    }
}

impl Drop for SpillReservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// The error (inside a `std::io::Error`) of a spill write past the track's [`SpillBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the track's spill files would hold more than {limit_bytes} bytes")]
pub struct SpillBudgetExceeded {
    pub limit_bytes: u64,
}

/// The HLS error of a failed spill write: [`crate::HlsError::SpillBudget`] when it went past the
/// budget, else an IO error on `directory`.
pub(crate) fn spill_error(
    source: std::io::Error,
    directory: &Path,
    url: &url::Url,
) -> crate::error::HlsError {
    let exceeded = source
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<SpillBudgetExceeded>())
        .copied();
    match exceeded {
        Some(exceeded) => crate::error::HlsError::SpillBudget {
            url: crate::url_safety::redact_url(url),
            limit_bytes: exceeded.limit_bytes,
        },
        None => crate::error::HlsError::Io {
            path: directory.to_path_buf(),
            source,
        },
    }
}

impl SpillTarget {
    fn spill_file_prefix(&self) -> String {
        spill_file_prefix(&self.file_prefix)
    }

    fn new_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix(&self.spill_file_prefix())
            .suffix(".tmp")
            .tempfile_in(&self.directory)
    }
}

fn spill_file_prefix(track_prefix: &str) -> String {
    format!(".{track_prefix}-spill-")
}

/// Removes the spill files a killed run of track `track_prefix` left in `directory`.
pub fn remove_leftover_spill_files(directory: &Path, track_prefix: &str) {
    let prefix = spill_file_prefix(track_prefix);
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A whole segment body.
#[derive(Debug)]
pub enum SegmentBody {
    Memory(Bytes),
    Spilled(SpilledBody),
}

/// A body in a temporary file (deleted on drop, its bytes given back to the budget).
#[derive(Debug)]
pub struct SpilledBody {
    file: tempfile::NamedTempFile,
    length: u64,
    _reservation: SpillReservation,
}

impl SegmentBody {
    pub fn len(&self) -> u64 {
        match self {
            SegmentBody::Memory(bytes) => bytes.len() as u64,
            SegmentBody::Spilled(spilled) => spilled.length,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of this body held in memory.
    pub fn memory_bytes(&self) -> u64 {
        match self {
            SegmentBody::Memory(bytes) => bytes.len() as u64,
            SegmentBody::Spilled(_) => 0,
        }
    }

    /// Reads the body from its start (a file is rewound).
    pub fn reader(&mut self) -> std::io::Result<Box<dyn Read + '_>> {
        match self {
            SegmentBody::Memory(bytes) => Ok(Box::new(std::io::Cursor::new(bytes.clone()))),
            SegmentBody::Spilled(spilled) => {
                let file = spilled.file.as_file_mut();
                file.seek(SeekFrom::Start(0))?;
                Ok(Box::new(file.take(spilled.length)))
            }
        }
    }

    /// The spilled file, rewound, for a check that reads it in windows.
    pub fn spilled_file(&mut self) -> Option<std::io::Result<&mut File>> {
        match self {
            SegmentBody::Memory(_) => None,
            SegmentBody::Spilled(spilled) => {
                let file = spilled.file.as_file_mut();
                Some(file.seek(SeekFrom::Start(0)).map(|_| file))
            }
        }
    }

    /// Bytes `start..end` of this body (a new file for a spilled one).
    pub fn slice(self, start: u64, end: u64, spill: &SpillTarget) -> std::io::Result<SegmentBody> {
        match self {
            SegmentBody::Memory(bytes) => {
                let end = (end as usize).min(bytes.len());
                let start = (start as usize).min(end);
                Ok(SegmentBody::Memory(bytes.slice(start..end)))
            }
            SegmentBody::Spilled(mut spilled) => {
                let end = end.min(spilled.length);
                let start = start.min(end);
                let source = spilled.file.as_file_mut();
                source.seek(SeekFrom::Start(start))?;
                let mut accumulator = BodyAccumulator::new(Some(spill.clone()));
                let mut reader = source.take(end - start);
                let mut buffer = vec![0u8; 256 * 1024];
                loop {
                    let read = reader.read(&mut buffer)?;
                    if read == 0 {
                        break;
                    }
                    accumulator.push(buffer.get(..read).unwrap_or_default())?;
                }
                accumulator.finish()
            }
        }
    }
}

/// Collects a body chunk by chunk: in memory until the spill threshold, then in a file.
#[derive(Debug)]
pub struct BodyAccumulator {
    spill: Option<SpillTarget>,
    memory: BytesMut,
    file: Option<(tempfile::NamedTempFile, SpillReservation)>,
    length: u64,
}

impl BodyAccumulator {
    /// Without a spill target everything stays in memory.
    pub fn new(spill: Option<SpillTarget>) -> Self {
        BodyAccumulator {
            spill,
            memory: BytesMut::new(),
            file: None,
            length: 0,
        }
    }

    /// With room reserved for `capacity` bytes in memory (never past the spill threshold).
    pub fn with_capacity(spill: Option<SpillTarget>, capacity: usize) -> Self {
        let capacity = match &spill {
            Some(target) => capacity.min(usize::try_from(target.in_memory_limit).unwrap_or(0)),
            None => capacity,
        };
        BodyAccumulator {
            memory: BytesMut::with_capacity(capacity),
            ..BodyAccumulator::new(spill)
        }
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The body is in a file already.
    pub fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    /// True when the next `additional` bytes go to memory (they are charged to the budget then).
    pub fn keeps_in_memory(&self, additional: usize) -> bool {
        match &self.spill {
            None => true,
            Some(target) => {
                self.file.is_none()
                    && self.length.saturating_add(additional as u64) <= target.in_memory_limit
            }
        }
    }

    /// Keeps `chunk`; an error when a file cannot be written or the track's spill budget has no
    /// room for it ([`SpillBudgetExceeded`] inside).
    pub fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if !self.keeps_in_memory(chunk.len())
            && self.file.is_none()
            && let Some(target) = &self.spill
        {
            let mut reservation = SpillReservation {
                budget: target.budget.clone(),
                bytes: 0,
            };
            reservation.grow(self.memory.len() as u64, target.is_head())?;
            let mut file = target.new_file()?;
            file.write_all(&self.memory)?;
            self.memory = BytesMut::new();
            self.file = Some((file, reservation));
        }
        let is_head = self.spill.as_ref().is_some_and(SpillTarget::is_head);
        match &mut self.file {
            Some((file, reservation)) => {
                reservation.grow(chunk.len() as u64, is_head)?;
                file.write_all(chunk)?
            }
            None => self.memory.extend_from_slice(chunk),
        }
        self.length += chunk.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<SegmentBody> {
        match self.file {
            None => Ok(SegmentBody::Memory(self.memory.freeze())),
            Some((mut file, reservation)) => {
                file.flush()?;
                Ok(SegmentBody::Spilled(SpilledBody {
                    file,
                    length: self.length,
                    _reservation: reservation,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(body: &mut SegmentBody) -> Vec<u8> {
        let mut bytes = Vec::new();
        body.reader()
            .expect("reader")
            .read_to_end(&mut bytes)
            .expect("read");
        bytes
    }

    #[test]
    fn a_body_past_the_threshold_spills_and_its_file_goes_with_it() {
        let directory = tempfile::tempdir().expect("tempdir");
        let target = SpillTarget {
            directory: directory.path().to_path_buf(),
            file_prefix: "main".to_string(),
            in_memory_limit: 10,
            budget: SpillBudget::unbounded(),
            head: None,
        };
        let mut small = BodyAccumulator::new(Some(target.clone()));
        small.push(b"0123456789").expect("push");
        let small = small.finish().expect("finish");
        assert!(matches!(small, SegmentBody::Memory(_)));

        let mut large = BodyAccumulator::with_capacity(Some(target.clone()), 1 << 30);
        for _ in 0..5 {
            large.push(b"abcdefgh").expect("push");
        }
        let mut large = large.finish().expect("finish");
        assert_eq!(large.len(), 40);
        assert_eq!(large.memory_bytes(), 0);
        assert_eq!(read_all(&mut large), b"abcdefgh".repeat(5));
        let count_files = || std::fs::read_dir(directory.path()).expect("dir").count();
        assert_eq!(count_files(), 1);
        let mut sliced = large.slice(3, 13, &target).expect("slice");
        assert_eq!(read_all(&mut sliced), b"defghabcde");
        drop(sliced);
        assert_eq!(count_files(), 0, "both files are removed on drop");

        // What a killed run left is removed at the next start; other files stay.
        std::fs::write(directory.path().join(".main-spill-abc.tmp"), b"x").expect("write");
        std::fs::write(directory.path().join("main-0001.ts"), b"x").expect("write");
        remove_leftover_spill_files(directory.path(), "main");
        assert_eq!(count_files(), 1);
    }

    /// The track's spill budget bounds the bytes its spill files hold together: a body behind
    /// the head is refused past it (`SpillBudgetExceeded` inside the IO error), the head never;
    /// the bytes come back when a body is dropped.
    #[test]
    fn the_spill_budget_bounds_the_files_together_except_for_the_head() {
        let directory = tempfile::tempdir().expect("tempdir");
        let budget = SpillBudget::new(100);
        let (head_sender, head_receiver) = tokio::sync::watch::channel(Some((0u32, 1u64)));
        let target_of = |own_key: u64| SpillTarget {
            directory: directory.path().to_path_buf(),
            file_prefix: "main".to_string(),
            in_memory_limit: 10,
            budget: budget.clone(),
            head: Some(SpillHead {
                head: head_receiver.clone(),
                own_key: (0, own_key),
            }),
        };
        let spilled = |own_key: u64, bytes: usize| -> std::io::Result<SegmentBody> {
            let mut body = BodyAccumulator::new(Some(target_of(own_key)));
            for _ in 0..bytes / 10 {
                body.push(b"0123456789")?;
            }
            body.finish()
        };
        let second = spilled(2, 60).expect("fits");
        assert_eq!(budget.used_bytes(), 60);
        let refused = spilled(3, 60).expect_err("past the budget");
        let inner = refused
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<SpillBudgetExceeded>())
            .copied();
        assert_eq!(inner, Some(SpillBudgetExceeded { limit_bytes: 100 }));
        assert_eq!(
            budget.used_bytes(),
            60,
            "a refused body gives back what it took"
        );
        let head = spilled(1, 60).expect("the head is never refused");
        assert_eq!(budget.used_bytes(), 120);
        drop(head);
        drop(second);
        assert_eq!(budget.used_bytes(), 0);
        head_sender.send_replace(Some((0, 3)));
        assert!(spilled(3, 60).is_ok());
        assert_eq!(budget.used_bytes(), 0);
        assert_eq!(std::fs::read_dir(directory.path()).expect("dir").count(), 0);
    }
}
