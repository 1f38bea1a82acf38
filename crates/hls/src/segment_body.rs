//! A segment body in memory up to a small threshold, beyond it in a temporary file in the
//! track's output directory: a track's memory stays bounded by a few MiB per download whatever
//! the segment size (issue 11: endless bodies were buffered whole, 128 MiB each). The file is
//! removed when the body is dropped (committed or given up); after a `kill -9` the next run of the
//! track removes what is left ([`remove_leftover_spill_files`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

/// Where and from which size a body spills to disk.
#[derive(Debug, Clone)]
pub struct SpillTarget {
    pub directory: PathBuf,
    /// Names the files: `.{file_prefix}-spill-XXXXXX`.
    pub file_prefix: String,
    /// Most bytes of one body kept in memory; a body that grows past it moves to a file.
    pub in_memory_limit: u64,
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

/// A body in a temporary file (deleted on drop).
#[derive(Debug)]
pub struct SpilledBody {
    file: tempfile::NamedTempFile,
    length: u64,
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
    file: Option<tempfile::NamedTempFile>,
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

    pub fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if !self.keeps_in_memory(chunk.len())
            && self.file.is_none()
            && let Some(target) = &self.spill
        {
            let mut file = target.new_file()?;
            file.write_all(&self.memory)?;
            self.memory = BytesMut::new();
            self.file = Some(file);
        }
        match &mut self.file {
            Some(file) => file.write_all(chunk)?,
            None => self.memory.extend_from_slice(chunk),
        }
        self.length += chunk.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<SegmentBody> {
        match self.file {
            None => Ok(SegmentBody::Memory(self.memory.freeze())),
            Some(mut file) => {
                file.flush()?;
                Ok(SegmentBody::Spilled(SpilledBody {
                    file,
                    length: self.length,
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
}
