//! The thin IO wrapper: read the inputs twice (1 MiB blocks of whole packets), write the header
//! and then each chunk at its offset, fsync. All decisions are in the pure modules.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Unsupported;
use crate::copy::{ChunkWrite, InputCopier};
use crate::plan::{Brand, ChunkRecorder, Plan, TrackMedia, plan_output, plan_recorded_output};
use crate::scan::{InputRole, InputScanner, Limits};
use crate::ts::TS_PACKET_BYTES;

const READ_BLOCK_PACKETS: usize = 5_577; // ~1 MiB
/// Block of each input when two are read in step (~64 KiB: 4 s of 128 kbit/s audio).
const STEP_BLOCK_PACKETS: usize = 348;

/// One input file and what it gives.
#[derive(Debug, Clone)]
pub struct RemuxInput {
    pub path: PathBuf,
    pub role: InputRole,
}

#[derive(Debug, thiserror::Error)]
pub enum RemuxError {
    /// Not for this remuxer: run ffmpeg.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// `cancelled` was set: stopped between two reads, the output removed.
    #[error("the remux was cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> RemuxError {
    let context = context.into();
    move |source| RemuxError::Io { context, source }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct RemuxSummary {
    pub bytes: u64,
    pub duration_seconds: f64,
    pub video_samples: usize,
    pub audio_samples: usize,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Where the first keyframe's access unit starts and its size in the output (for a
    /// thumbnail that decodes only that frame).
    pub first_keyframe: Option<(u64, u32)>,
}

/// Feed every whole 188-byte packet of `path` to `push` (a trailing partial packet is ignored,
/// as ffmpeg does).
fn for_each_packet(
    path: &Path,
    cancelled: &AtomicBool,
    mut push: impl FnMut(&[u8]) -> Result<(), Unsupported>,
) -> Result<(), RemuxError> {
    let mut file = File::open(path).map_err(io_error(format!("opening {}", path.display())))?;
    let mut buffer = vec![0u8; READ_BLOCK_PACKETS * TS_PACKET_BYTES];
    let mut filled = 0usize;
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(RemuxError::Cancelled);
        }
        let read = match file.read(&mut buffer[filled..]) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(io_error(format!("reading {}", path.display()))(error)),
        };
        filled += read;
        let whole = filled - filled % TS_PACKET_BYTES;
        if read == 0 || whole == buffer.len() {
            for packet in buffer[..whole].chunks_exact(TS_PACKET_BYTES) {
                push(packet)?;
            }
            buffer.copy_within(whole..filled, 0);
            filled -= whole;
            if read == 0 {
                return Ok(());
            }
        }
    }
}

/// Scan and plan `inputs` (main first) without writing anything.
pub fn plan_files(
    inputs: &[RemuxInput],
    brand: Brand,
    limits: Limits,
    cancelled: &AtomicBool,
) -> Result<Plan, RemuxError> {
    let mut summaries = Vec::with_capacity(inputs.len());
    for input in inputs {
        let mut scanner = InputScanner::new(input.role, limits);
        for_each_packet(&input.path, cancelled, |packet| scanner.push_packet(packet))?;
        summaries.push(scanner.finish()?);
    }
    if brand == Brand::M4a && summaries.iter().any(|summary| summary.video.is_some()) {
        return Err(Unsupported::new("video in an audio-only output".to_owned()).into());
    }
    Ok(plan_output(&summaries, brand)?)
}

/// Remux `inputs` into `output` (a new file: what was at that path, a file or a symbolic link, is
/// replaced, never written through), fsynced. On any error the output this call created is
/// removed; the inputs are only read, and an output that is one of them is refused. `cancelled`
/// is checked between reads of 1 MiB.
pub fn remux_to_mp4(
    inputs: &[RemuxInput],
    output: &Path,
    brand: Brand,
    limits: Limits,
    cancelled: &AtomicBool,
) -> Result<RemuxSummary, RemuxError> {
    let mut created = false;
    let result = write_output(inputs, output, brand, limits, cancelled, &mut created);
    if result.is_err() && created {
        let _ = std::fs::remove_file(output);
    }
    result
}

/// The output path must not name an input (itself or through a link): replacing it would lose
/// the part.
fn refuse_an_input_as_output(inputs: &[RemuxInput], output: &Path) -> Result<(), RemuxError> {
    use std::os::unix::fs::MetadataExt;
    let identity = |metadata: std::fs::Metadata| (metadata.dev(), metadata.ino());
    let mut existing = Vec::new();
    for metadata in [std::fs::metadata(output), std::fs::symlink_metadata(output)]
        .into_iter()
        .flatten()
    {
        existing.push(identity(metadata));
    }
    for input in inputs {
        let metadata = std::fs::metadata(&input.path)
            .map_err(io_error(format!("reading {}", input.path.display())))?;
        if existing.contains(&identity(metadata)) {
            return Err(Unsupported::new("the output path is an input".to_owned()).into());
        }
    }
    Ok(())
}

/// A new file at `output`: a file or link already there is removed first (not followed).
fn create_output(output: &Path) -> Result<File, RemuxError> {
    let context = format!("creating {}", output.display());
    if let Ok(metadata) = std::fs::symlink_metadata(output)
        && (metadata.is_file() || metadata.file_type().is_symlink())
    {
        std::fs::remove_file(output).map_err(io_error(context.clone()))?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
        .map_err(io_error(context))
}

fn write_output(
    inputs: &[RemuxInput],
    output: &Path,
    brand: Brand,
    limits: Limits,
    cancelled: &AtomicBool,
    created: &mut bool,
) -> Result<RemuxSummary, RemuxError> {
    refuse_an_input_as_output(inputs, output)?;
    let plan = plan_files(inputs, brand, limits, cancelled)?;
    let mut file = create_output(output)?;
    *created = true;
    let write_context = format!("writing {}", output.display());
    file.write_all(&plan.header)
        .map_err(io_error(write_context.clone()))?;
    let mut position = plan.header.len() as u64;
    let mut write_error: Option<io::Error> = None;
    for (index, input) in inputs.iter().enumerate() {
        let mut copier = InputCopier::new(&plan, index);
        let mut sink = |chunk: ChunkWrite<'_>| -> Result<(), Unsupported> {
            let result = (|| {
                if chunk.offset != position {
                    file.seek(SeekFrom::Start(chunk.offset))?;
                }
                file.write_all(chunk.bytes)?;
                position = chunk.offset + chunk.bytes.len() as u64;
                Ok(())
            })();
            result.map_err(|error: io::Error| {
                let message = error.to_string();
                write_error = Some(error);
                Unsupported::new(format!("write failed: {message}"))
            })
        };
        let copied = for_each_packet(&input.path, cancelled, |packet| {
            copier.push_packet(packet, &mut sink)
        })
        .and_then(|()| copier.finish(&mut sink).map_err(RemuxError::from));
        if let Some(error) = write_error.take() {
            return Err(io_error(write_context)(error));
        }
        copied?;
    }
    finish_output(&file, &plan, write_context)
}

/// A reservation larger than this is not made (a day of media needs ~160 MB).
const MAXIMUM_RESERVED_INDEX_BYTES: u64 = 256 * 1024 * 1024;

/// Whole packets of one input, a block at a time (for reading two inputs in step).
struct PacketReader {
    file: File,
    path: PathBuf,
    buffer: Vec<u8>,
    filled: usize,
    ended: bool,
}

impl PacketReader {
    fn open(path: &Path, block_packets: usize) -> Result<Self, RemuxError> {
        Ok(PacketReader {
            file: File::open(path).map_err(io_error(format!("opening {}", path.display())))?,
            path: path.to_path_buf(),
            buffer: vec![0u8; block_packets.max(1) * TS_PACKET_BYTES],
            filled: 0,
            ended: false,
        })
    }

    /// Read one block and feed its whole packets to `push`; `false` at the end of the file.
    fn next_block(
        &mut self,
        mut push: impl FnMut(&[u8]) -> Result<(), Unsupported>,
    ) -> Result<bool, RemuxError> {
        if self.ended {
            return Ok(false);
        }
        loop {
            match self.file.read(&mut self.buffer[self.filled..]) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(read) => {
                    self.filled += read;
                    if self.filled == self.buffer.len() {
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(io_error(format!("reading {}", self.path.display()))(error));
                }
            }
        }
        let whole = self.filled - self.filled % TS_PACKET_BYTES;
        for packet in self.buffer[..whole].chunks_exact(TS_PACKET_BYTES) {
            push(packet)?;
        }
        self.buffer.copy_within(whole..self.filled, 0);
        self.filled -= whole;
        Ok(!self.ended)
    }
}

/// Remux in one read of the inputs: the samples are written as they are read, after
/// `reserved_index_bytes` left for the header (`ftyp`, `moov`, `free`, `mdat` header), which is
/// written last (see [`crate::plan::estimated_index_bytes`]). Two inputs are read in step (the
/// one behind in time first), so their chunks interleave. When the index does not fit in the
/// reservation, the two-pass [`remux_to_mp4`] runs instead. The output is made as
/// [`remux_to_mp4`] makes it (an input as output refused, a link replaced, what this call created
/// removed on any error).
pub fn remux_to_mp4_in_one_pass(
    inputs: &[RemuxInput],
    output: &Path,
    brand: Brand,
    limits: Limits,
    reserved_index_bytes: u64,
    cancelled: &AtomicBool,
) -> Result<RemuxSummary, RemuxError> {
    let reserved = reserved_index_bytes.clamp(1024, MAXIMUM_RESERVED_INDEX_BYTES);
    let mut created = false;
    match write_in_one_pass(
        inputs,
        output,
        brand,
        limits,
        reserved,
        cancelled,
        &mut created,
    ) {
        Ok(Some(summary)) => Ok(summary),
        Ok(None) => remux_to_mp4(inputs, output, brand, limits, cancelled),
        Err(error) => {
            if created {
                let _ = std::fs::remove_file(output);
            }
            Err(error)
        }
    }
}

fn write_in_one_pass(
    inputs: &[RemuxInput],
    output: &Path,
    brand: Brand,
    limits: Limits,
    reserved: u64,
    cancelled: &AtomicBool,
    created: &mut bool,
) -> Result<Option<RemuxSummary>, RemuxError> {
    refuse_an_input_as_output(inputs, output)?;
    // Two inputs are read in smaller blocks, so that neither runs far ahead of the other (1 MiB
    // of a 128 kbit/s audio rendition is a minute).
    let block_packets = if inputs.len() > 1 {
        STEP_BLOCK_PACKETS
    } else {
        READ_BLOCK_PACKETS
    };
    let mut readers = inputs
        .iter()
        .map(|input| PacketReader::open(&input.path, block_packets))
        .collect::<Result<Vec<_>, _>>()?;
    let mut scanners: Vec<InputScanner> = inputs
        .iter()
        .map(|input| InputScanner::new(input.role, limits).keeping_sample_bytes())
        .collect();
    let mut file = create_output(output)?;
    *created = true;
    let write_context = format!("writing {}", output.display());
    let mut recorder = ChunkRecorder::new(reserved);
    let mut position = 0u64;
    let mut write_error: Option<io::Error> = None;
    let mut write = |offset: u64, bytes: &[u8]| -> Result<(), Unsupported> {
        let result = (|| {
            if offset != position {
                file.seek(SeekFrom::Start(offset))?;
            }
            file.write_all(bytes)?;
            position = offset + bytes.len() as u64;
            Ok(())
        })();
        result.map_err(|error: io::Error| {
            let message = error.to_string();
            write_error = Some(error);
            Unsupported::new(format!("write failed: {message}"))
        })
    };
    let mut reading = vec![true; inputs.len()];
    let outcome = (|| -> Result<(), RemuxError> {
        loop {
            if cancelled.load(Ordering::Relaxed) {
                return Err(RemuxError::Cancelled);
            }
            // The input that is behind (or has no samples yet) is read next.
            let next = (0..inputs.len())
                .filter(|&index| reading[index])
                .min_by_key(|&index| scanners[index].latest_dts().unwrap_or(i64::MIN));
            let Some(index) = next else { break };
            let scanner = &mut scanners[index];
            reading[index] = readers[index].next_block(|packet| scanner.push_packet(packet))?;
            if !reading[index] {
                scanner.end_of_input()?;
            }
            scanner
                .drain_accepted(|sample, bytes| recorder.add(index, sample, bytes, &mut write))?;
        }
        recorder.finish(&mut write)?;
        Ok(())
    })();
    if let Some(error) = write_error.take() {
        return Err(io_error(write_context)(error));
    }
    outcome?;
    let summaries = scanners
        .into_iter()
        .map(InputScanner::finish)
        .collect::<Result<Vec<_>, _>>()?;
    if brand == Brand::M4a && summaries.iter().any(|summary| summary.video.is_some()) {
        return Err(Unsupported::new("video in an audio-only output".to_owned()).into());
    }
    let Some(plan) = plan_recorded_output(&summaries, brand, &recorder, reserved)? else {
        return Ok(None);
    };
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&plan.header))
        .map_err(io_error(write_context.clone()))?;
    finish_output(&file, &plan, write_context).map(Some)
}

/// The written file is the planned size (else nothing of it is trusted) and on disk (fsync).
fn finish_output(
    file: &File,
    plan: &Plan,
    write_context: String,
) -> Result<RemuxSummary, RemuxError> {
    let length = file
        .metadata()
        .map_err(io_error(write_context.clone()))?
        .len();
    if length != plan.total_bytes {
        return Err(Unsupported::new("the output is not the planned size".to_owned()).into());
    }
    file.sync_all().map_err(io_error(write_context))?;
    Ok(summary_of(plan))
}

fn summary_of(plan: &Plan) -> RemuxSummary {
    let mut summary = RemuxSummary {
        bytes: plan.total_bytes,
        duration_seconds: plan.duration_seconds(),
        video_samples: 0,
        audio_samples: 0,
        width: None,
        height: None,
        first_keyframe: None,
    };
    for track in &plan.tracks {
        match &track.media {
            TrackMedia::Video { sequence, .. } => {
                summary.video_samples = track.sample_sizes.len();
                summary.width = Some(sequence.width);
                summary.height = Some(sequence.height);
                summary.first_keyframe = track
                    .chunks
                    .first()
                    .zip(track.sample_sizes.first())
                    .map(|(chunk, size)| (chunk.offset, *size));
            }
            TrackMedia::Audio { .. } => summary.audio_samples = track.sample_sizes.len(),
        }
    }
    summary
}
