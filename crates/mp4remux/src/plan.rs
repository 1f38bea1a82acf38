//! From the first pass's sample lists to the finished file's layout: ffmpeg-compatible sample
//! times and edit lists ([`crate::timeline`]), samples grouped into chunks of about a second per
//! track, interleaved by time, chunk offsets after `ftyp` + `moov` + the `mdat` header. Pure.

use crate::Unsupported;
use crate::adts::{AudioConfig, SAMPLES_PER_FRAME};
use crate::h264::{SequenceParameters, avc_configuration_record};
use crate::mp4::{file_type_box, media_data_header, movie_box};
use crate::scan::{AcceptedSample, InputSummary, VideoScan};
use crate::timeline::{MOVIE_TIMESCALE, Rounding, TS_CLOCK, rescale};

/// A chunk holds at most this much track time (in seconds) ...
const CHUNK_SECONDS: i64 = 1;
/// ... and at most this many bytes.
const MAXIMUM_CHUNK_BYTES: u64 = 2 * 1024 * 1024;
/// Inputs (the part and its audio rendition) whose first timestamps are further apart than this
/// are refused (10 s of the 90 kHz clock).
const MAXIMUM_INPUT_START_DIFFERENCE: i64 = 10 * TS_CLOCK;

/// The file type: `.mp4` (compatible with `avc1` when it has video), or `.m4a` (audio only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brand {
    Mp4,
    M4a,
}

#[derive(Debug, Clone)]
pub enum TrackMedia {
    Video {
        sequence: SequenceParameters,
        configuration_record: Vec<u8>,
    },
    Audio {
        config: AudioConfig,
        maximum_sample_bytes: u32,
        average_bitrate: u32,
        maximum_bitrate: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the chunk's first sample in the track.
    pub first_sample: u32,
    pub sample_count: u32,
    /// Byte offset in the output file.
    pub offset: u64,
    pub bytes: u64,
}

/// An edit list as ffmpeg writes it (movie timescale for durations, media timescale for the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    /// Empty edit first (the track starts later than the movie).
    pub delay: u64,
    pub duration: u64,
    pub media_time: i64,
}

/// Where a track's samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSource {
    pub input: usize,
    pub pid: u16,
    /// Video access units to skip before the first sample (before the first keyframe).
    pub skip_leading: u64,
}

#[derive(Debug, Clone)]
pub struct TrackPlan {
    pub track_id: u32,
    pub media: TrackMedia,
    pub source: TrackSource,
    pub timescale: u32,
    pub sample_sizes: Vec<u32>,
    pub sample_durations: Vec<u32>,
    pub composition_offsets: Option<Vec<u32>>,
    /// 1-based sync sample numbers, when not every sample is one.
    pub sync_samples: Option<Vec<u32>>,
    pub chunks: Vec<Chunk>,
    pub edit: Option<Edit>,
    /// `mdhd` duration (track timescale).
    pub media_duration: u64,
    /// `tkhd` duration (movie timescale).
    pub movie_duration: u64,
    /// Presentation time of the first sample and the end, in seconds (for checks and reports).
    pub start_seconds: f64,
    pub end_seconds: f64,
}

/// The whole output: header bytes (ftyp + moov + mdat header) then the chunks in offset order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub brand: Brand,
    pub tracks: Vec<TrackPlan>,
    pub use_64_bit_offsets: bool,
    /// `ftyp`, `moov` and the `mdat` header: the file's first bytes.
    pub header: Vec<u8>,
    pub total_bytes: u64,
}

impl Plan {
    pub fn duration_seconds(&self) -> f64 {
        self.tracks
            .iter()
            .map(|track| track.movie_duration as f64 / MOVIE_TIMESCALE as f64)
            .fold(0.0, f64::max)
    }

    pub fn sample_count(&self) -> usize {
        self.tracks
            .iter()
            .map(|track| track.sample_sizes.len())
            .sum()
    }
}

/// Timestamps of one track before the common offset (track timescale).
struct TrackTimes {
    timescale: i64,
    dts: Vec<i64>,
    pts_offsets: Vec<i64>,
    last_duration: i64,
}

fn video_times(video: &VideoScan, start: i64) -> TrackTimes {
    let dts: Vec<i64> = video
        .samples
        .iter()
        .map(|sample| sample.dts - start)
        .collect();
    let last_duration = match dts.as_slice() {
        [.., before, last] => last - before,
        _ => 1,
    };
    TrackTimes {
        timescale: TS_CLOCK,
        dts,
        pts_offsets: video
            .samples
            .iter()
            .map(|sample| i64::from(sample.composition_offset))
            .collect(),
        last_duration,
    }
}

/// The tracks of the output with their sample tables, times and edits (chunks of about a second
/// each, offsets not yet placed). `inputs` in order (main first).
fn track_plans(inputs: &[InputSummary]) -> Result<Vec<TrackPlan>, Unsupported> {
    struct Pending<'a> {
        media: TrackMedia,
        source: TrackSource,
        times: TrackTimes,
        sizes: Vec<u32>,
        sync: Vec<bool>,
        _input: &'a InputSummary,
    }
    // One clock for all inputs: an HLS audio rendition shares the video's timestamps, so the
    // earliest start of any input is zero and each keeps its place (ffmpeg would move each input
    // to zero on its own). Inputs that start far apart are not one recording's renditions.
    let starts: Vec<i64> = inputs.iter().filter_map(|input| input.start_time).collect();
    let common_start = starts.iter().copied().min().unwrap_or(0);
    let latest_start = starts.iter().copied().max().unwrap_or(0);
    if latest_start - common_start > MAXIMUM_INPUT_START_DIFFERENCE {
        return Err(Unsupported::new(format!(
            "the inputs start {:.1} s apart",
            (latest_start - common_start) as f64 / TS_CLOCK as f64
        )));
    }
    let mut pending: Vec<Pending<'_>> = Vec::new();
    // Video first (ffmpeg maps 0:v before the audio).
    for (index, input) in inputs.iter().enumerate() {
        let Some(video) = &input.video else { continue };
        let start = common_start;
        let sequence = video
            .parameter_sets
            .sequence
            .clone()
            .ok_or_else(|| Unsupported::new("no SPS".to_owned()))?;
        let configuration_record = avc_configuration_record(&video.parameter_sets)
            .ok_or_else(|| Unsupported::new("parameter sets too large for avcC".to_owned()))?;
        pending.push(Pending {
            media: TrackMedia::Video {
                sequence,
                configuration_record,
            },
            source: TrackSource {
                input: index,
                pid: video.pid,
                skip_leading: video.dropped_leading,
            },
            times: video_times(video, start),
            sizes: video.samples.iter().map(|sample| sample.size).collect(),
            sync: video.samples.iter().map(|sample| sample.sync).collect(),
            _input: input,
        });
    }
    for (index, input) in inputs.iter().enumerate() {
        let Some(audio) = &input.audio else { continue };
        let start = common_start;
        let sample_rate = i64::from(audio.config.sample_rate());
        let dts: Vec<i64> = audio
            .samples
            .iter()
            .map(|sample| rescale(sample.dts - start, sample_rate, TS_CLOCK, Rounding::Nearest))
            .collect();
        // The demuxer's packet duration (90 kHz, rounded down), then rescaled like the timestamps.
        let packet_duration = rescale(
            i64::from(SAMPLES_PER_FRAME),
            TS_CLOCK,
            sample_rate,
            Rounding::Down,
        );
        let sizes: Vec<u32> = audio.samples.iter().map(|sample| sample.size).collect();
        let total_bytes: u64 = sizes.iter().map(|&size| u64::from(size)).sum();
        let seconds = (audio.samples.len() as f64 * f64::from(SAMPLES_PER_FRAME)
            / sample_rate.max(1) as f64)
            .max(1e-3);
        let average_bitrate = ((total_bytes as f64 * 8.0) / seconds) as u32;
        let frames_per_second = (sample_rate as f64 / f64::from(SAMPLES_PER_FRAME)).ceil() as usize;
        let maximum_second_bytes = sizes
            .windows(frames_per_second.max(1).min(sizes.len().max(1)))
            .map(|window| window.iter().map(|&size| u64::from(size)).sum::<u64>())
            .max()
            .unwrap_or(0);
        pending.push(Pending {
            media: TrackMedia::Audio {
                config: audio.config,
                maximum_sample_bytes: sizes.iter().copied().max().unwrap_or(0),
                average_bitrate,
                maximum_bitrate: u32::try_from(maximum_second_bytes * 8)
                    .unwrap_or(u32::MAX)
                    .max(average_bitrate),
            },
            source: TrackSource {
                input: index,
                pid: audio.pid,
                skip_leading: 0,
            },
            times: TrackTimes {
                timescale: sample_rate,
                pts_offsets: vec![0; dts.len()],
                dts,
                last_duration: rescale(packet_duration, sample_rate, TS_CLOCK, Rounding::Nearest),
            },
            sync: vec![true; sizes.len()],
            sizes,
            _input: input,
        });
    }
    if pending.is_empty() {
        return Err(Unsupported::new("no tracks".to_owned()));
    }
    // `-avoid_negative_ts make_zero`: the first packet muxed (smallest DTS; the lower track on a
    // tie) starts at zero; every track moves by that offset, rounded up into its timescale.
    let mut first: Option<(usize, i64, i64)> = None;
    for (index, track) in pending.iter().enumerate() {
        let Some(&dts) = track.times.dts.first() else {
            return Err(Unsupported::new("an empty track".to_owned()));
        };
        let earlier = match first {
            None => true,
            Some((_, best_dts, best_timescale)) => {
                i128::from(dts) * i128::from(best_timescale)
                    < i128::from(best_dts) * i128::from(track.times.timescale)
            }
        };
        if earlier {
            first = Some((index, dts, track.times.timescale));
        }
    }
    let Some((_, first_dts, first_timescale)) = first else {
        return Err(Unsupported::new("no tracks".to_owned()));
    };
    let mut tracks = Vec::with_capacity(pending.len());
    for (index, track) in pending.into_iter().enumerate() {
        let timescale = track.times.timescale;
        let offset = rescale(-first_dts, timescale, first_timescale, Rounding::Up);
        let dts: Vec<i64> = track.times.dts.iter().map(|value| value + offset).collect();
        let start_dts = dts[0];
        let start_composition = track.times.pts_offsets[0];
        if start_dts < 0 {
            return Err(Unsupported::new(
                "a track would start before zero".to_owned(),
            ));
        }
        let mut durations = Vec::with_capacity(dts.len());
        for pair in dts.windows(2) {
            let step = pair[1] - pair[0];
            durations.push(
                u32::try_from(step)
                    .ok()
                    .filter(|&step| step > 0)
                    .ok_or_else(|| Unsupported::new("timestamps not increasing".to_owned()))?,
            );
        }
        durations.push(u32::try_from(track.times.last_duration.max(1)).unwrap_or(1));
        let end_pts = dts
            .iter()
            .zip(&track.times.pts_offsets)
            .zip(&durations)
            .map(|((dts, offset), duration)| dts + offset + i64::from(*duration))
            .max()
            .unwrap_or(start_dts);
        let has_composition_offsets = track.times.pts_offsets.iter().any(|&offset| offset != 0);
        let first_presentation = start_dts + start_composition;
        let presentation_duration = end_pts - first_presentation;
        let edit_duration = rescale(
            presentation_duration,
            MOVIE_TIMESCALE,
            timescale,
            Rounding::Up,
        )
        .max(0) as u64;
        let (edit, movie_duration) = if has_composition_offsets || start_dts != 0 {
            let delay = rescale(
                first_presentation,
                MOVIE_TIMESCALE,
                timescale,
                Rounding::Down,
            )
            .max(0) as u64;
            (
                Some(Edit {
                    delay,
                    duration: edit_duration,
                    media_time: start_composition,
                }),
                delay + edit_duration,
            )
        } else {
            (None, edit_duration)
        };
        let media_duration: u64 = durations.iter().map(|&duration| u64::from(duration)).sum();
        let sync_samples = if track.sync.iter().all(|&sync| sync) {
            None
        } else {
            Some(
                track
                    .sync
                    .iter()
                    .enumerate()
                    .filter(|(_, sync)| **sync)
                    .map(|(number, _)| number as u32 + 1)
                    .collect(),
            )
        };
        let chunks = chunk_track(&dts, &track.sizes, timescale);
        tracks.push(TrackPlan {
            track_id: index as u32 + 1,
            media: track.media,
            source: track.source,
            timescale: u32::try_from(timescale)
                .map_err(|_| Unsupported::new("a timescale over 32 bits".to_owned()))?,
            sample_sizes: track.sizes,
            sample_durations: durations,
            composition_offsets: has_composition_offsets.then(|| {
                track
                    .times
                    .pts_offsets
                    .iter()
                    .map(|&offset| offset as u32)
                    .collect()
            }),
            sync_samples,
            chunks,
            edit,
            media_duration,
            movie_duration,
            start_seconds: first_presentation as f64 / timescale as f64,
            end_seconds: end_pts as f64 / timescale as f64,
        });
    }
    Ok(tracks)
}

/// Build the plan of a two-pass remux: chunks of about a second per track, interleaved by time.
pub fn plan_output(inputs: &[InputSummary], brand: Brand) -> Result<Plan, Unsupported> {
    lay_out(brand, track_plans(inputs)?)
}

/// The plan of a one-pass remux: the chunks as [`ChunkRecorder`] wrote them from
/// `reserved_bytes` on; the header (`ftyp`, `moov`, a `free` box, the `mdat` header) must fit in
/// exactly `reserved_bytes`. `Ok(None)`: it does not (the caller remuxes in two passes).
pub fn plan_recorded_output(
    inputs: &[InputSummary],
    brand: Brand,
    recorder: &ChunkRecorder,
    reserved_bytes: u64,
) -> Result<Option<Plan>, Unsupported> {
    let mut tracks = track_plans(inputs)?;
    for track in &mut tracks {
        let is_video = matches!(track.media, TrackMedia::Video { .. });
        let chunks = recorder.chunks_of(track.source.input, is_video);
        let samples: u64 = chunks
            .iter()
            .map(|chunk| u64::from(chunk.sample_count))
            .sum();
        let bytes: u64 = chunks.iter().map(|chunk| chunk.bytes).sum();
        let planned_bytes: u64 = track.sample_sizes.iter().map(|&size| u64::from(size)).sum();
        if samples != track.sample_sizes.len() as u64 || bytes != planned_bytes {
            return Err(Unsupported::new(
                "the written chunks do not match the samples".to_owned(),
            ));
        }
        track.chunks = chunks;
    }
    let has_video = tracks
        .iter()
        .any(|track| matches!(track.media, TrackMedia::Video { .. }));
    let payload_bytes = recorder.payload_bytes();
    let use_64_bit_offsets = reserved_bytes + payload_bytes > u64::from(u32::MAX);
    let mut plan = Plan {
        brand,
        tracks,
        use_64_bit_offsets,
        header: Vec::new(),
        total_bytes: reserved_bytes + payload_bytes,
    };
    let file_type = file_type_box(brand, has_video);
    let movie = movie_box(&plan);
    let mdat_header = media_data_header(payload_bytes);
    let used = (file_type.len() + movie.len() + mdat_header.len()) as u64;
    if used + 8 > reserved_bytes {
        return Ok(None);
    }
    let free_bytes = reserved_bytes - used;
    if free_bytes > u64::from(u32::MAX) {
        return Ok(None);
    }
    let mut header = file_type;
    header.extend_from_slice(&movie);
    header.extend_from_slice(&u32::try_from(free_bytes).unwrap_or(u32::MAX).to_be_bytes());
    header.extend_from_slice(b"free");
    header.resize(header.len() + (free_bytes as usize - 8), 0);
    header.extend_from_slice(&mdat_header);
    if header.len() as u64 != reserved_bytes {
        return Ok(None);
    }
    plan.header = header;
    Ok(Some(plan))
}

/// A generous size for the index of `media_seconds` of H.264 + AAC (up to 60 fps video with
/// B-frames and 48 kHz audio: ~1.7 KB per second), for a one-pass remux's reservation.
pub fn estimated_index_bytes(media_seconds: f64) -> u64 {
    let seconds = if media_seconds.is_finite() {
        media_seconds.clamp(0.0, 86_400.0)
    } else {
        0.0
    };
    32 * 1024 + (seconds * 1_800.0) as u64
}

/// Where a [`ChunkRecorder`] puts a chunk: its offset in the output and its bytes.
pub type WriteAt<'a> = dyn FnMut(u64, &[u8]) -> Result<(), Unsupported> + 'a;

/// One-pass layout: chunks are formed as samples arrive (about a second or 2 MiB per track) and
/// each is placed right after the previous one, from `payload_start` on. Pure: the bytes go to
/// the caller's `write` with their offset.
pub struct ChunkRecorder {
    payload_start: u64,
    next_offset: u64,
    tracks: Vec<RecordingTrack>,
}

struct RecordingTrack {
    input: usize,
    is_video: bool,
    chunks: Vec<Chunk>,
    buffer: Vec<u8>,
    chunk_start_dts: i64,
    chunk_samples: u32,
    samples: u32,
}

impl ChunkRecorder {
    pub fn new(payload_start: u64) -> Self {
        ChunkRecorder {
            payload_start,
            next_offset: payload_start,
            tracks: Vec::new(),
        }
    }

    pub fn payload_bytes(&self) -> u64 {
        self.next_offset - self.payload_start
    }

    fn chunks_of(&self, input: usize, is_video: bool) -> Vec<Chunk> {
        self.tracks
            .iter()
            .find(|track| track.input == input && track.is_video == is_video)
            .map(|track| track.chunks.clone())
            .unwrap_or_default()
    }

    fn flush(
        next_offset: &mut u64,
        track: &mut RecordingTrack,
        write: &mut WriteAt<'_>,
    ) -> Result<(), Unsupported> {
        if track.chunk_samples == 0 {
            return Ok(());
        }
        let bytes = track.buffer.len() as u64;
        write(*next_offset, &track.buffer)?;
        track.chunks.push(Chunk {
            first_sample: track.samples - track.chunk_samples,
            sample_count: track.chunk_samples,
            offset: *next_offset,
            bytes,
        });
        *next_offset += bytes;
        track.buffer.clear();
        track.chunk_samples = 0;
        Ok(())
    }

    /// One accepted sample of `input`.
    pub fn add(
        &mut self,
        input: usize,
        sample: AcceptedSample,
        bytes: &[u8],
        write: &mut WriteAt<'_>,
    ) -> Result<(), Unsupported> {
        let index = match self
            .tracks
            .iter()
            .position(|track| track.input == input && track.is_video == sample.is_video)
        {
            Some(index) => index,
            None => {
                self.tracks.push(RecordingTrack {
                    input,
                    is_video: sample.is_video,
                    chunks: Vec::new(),
                    buffer: Vec::new(),
                    chunk_start_dts: sample.dts,
                    chunk_samples: 0,
                    samples: 0,
                });
                self.tracks.len() - 1
            }
        };
        let track = &mut self.tracks[index];
        if track.chunk_samples > 0
            && (sample.dts - track.chunk_start_dts >= CHUNK_SECONDS * TS_CLOCK
                || track.buffer.len() as u64 + bytes.len() as u64 > MAXIMUM_CHUNK_BYTES)
        {
            Self::flush(&mut self.next_offset, track, write)?;
        }
        if track.chunk_samples == 0 {
            track.chunk_start_dts = sample.dts;
        }
        track.buffer.extend_from_slice(bytes);
        track.chunk_samples += 1;
        track.samples += 1;
        Ok(())
    }

    /// Write every partial chunk.
    pub fn finish(&mut self, write: &mut WriteAt<'_>) -> Result<(), Unsupported> {
        for track in &mut self.tracks {
            Self::flush(&mut self.next_offset, track, write)?;
        }
        Ok(())
    }
}

/// Chunks of one track (offsets filled in by [`lay_out`]); `start` DTS per chunk in `starts`.
fn chunk_track(dts: &[i64], sizes: &[u32], timescale: i64) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut chunk_start_dts = 0i64;
    for (index, (&sample_dts, &size)) in dts.iter().zip(sizes).enumerate() {
        let starts_new = match chunks.last() {
            None => true,
            Some(chunk) => {
                sample_dts - chunk_start_dts >= CHUNK_SECONDS * timescale
                    || chunk.bytes + u64::from(size) > MAXIMUM_CHUNK_BYTES
            }
        };
        if starts_new {
            chunk_start_dts = sample_dts;
            chunks.push(Chunk {
                first_sample: index as u32,
                sample_count: 0,
                offset: 0,
                bytes: 0,
            });
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.sample_count += 1;
            chunk.bytes += u64::from(size);
        }
    }
    chunks
}

/// Interleave the chunks by their start time and give them offsets after the header.
fn lay_out(brand: Brand, mut tracks: Vec<TrackPlan>) -> Result<Plan, Unsupported> {
    // (start time as a fraction, track index, chunk index)
    let mut order: Vec<(i64, i64, usize, usize)> = Vec::new();
    for (track_index, track) in tracks.iter().enumerate() {
        let mut dts = 0i64;
        let mut sample = 0usize;
        for (chunk_index, chunk) in track.chunks.iter().enumerate() {
            while sample < chunk.first_sample as usize {
                dts += i64::from(track.sample_durations[sample]);
                sample += 1;
            }
            order.push((dts, i64::from(track.timescale), track_index, chunk_index));
        }
    }
    order.sort_by(|a, b| {
        (i128::from(a.0) * i128::from(b.1))
            .cmp(&(i128::from(b.0) * i128::from(a.1)))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    let payload_bytes: u64 = tracks
        .iter()
        .flat_map(|track| track.chunks.iter())
        .map(|chunk| chunk.bytes)
        .sum();
    let has_video = tracks
        .iter()
        .any(|track| matches!(track.media, TrackMedia::Video { .. }));
    let file_type = file_type_box(brand, has_video);
    let mdat_header = media_data_header(payload_bytes);
    let mut plan = Plan {
        brand,
        tracks: Vec::new(),
        use_64_bit_offsets: false,
        header: Vec::new(),
        total_bytes: 0,
    };
    for use_64_bit_offsets in [false, true] {
        plan.use_64_bit_offsets = use_64_bit_offsets;
        plan.tracks = std::mem::take(&mut tracks);
        let movie_bytes = movie_box(&plan).len() as u64;
        let mut offset = file_type.len() as u64 + movie_bytes + mdat_header.len() as u64;
        for &(_, _, track_index, chunk_index) in &order {
            if let Some(chunk) = plan.tracks[track_index].chunks.get_mut(chunk_index) {
                chunk.offset = offset;
                offset += chunk.bytes;
            }
        }
        let fits = plan
            .tracks
            .iter()
            .flat_map(|track| track.chunks.iter())
            .all(|chunk| chunk.offset <= u64::from(u32::MAX));
        if fits || use_64_bit_offsets {
            let mut header = file_type.clone();
            header.extend_from_slice(&movie_box(&plan));
            header.extend_from_slice(&mdat_header);
            plan.total_bytes = offset;
            plan.header = header;
            return Ok(plan);
        }
        tracks = std::mem::take(&mut plan.tracks);
    }
    Err(Unsupported::new("layout failed".to_owned()))
}
