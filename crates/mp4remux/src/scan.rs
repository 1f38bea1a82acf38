//! The first pass: every input's packets in, per track the sample sizes and timestamps out
//! (a few bytes per sample, bounded by [`Limits`]), with every refusal decided here.

use crate::Unsupported;
use crate::adts::{self, AudioConfig, SAMPLES_PER_FRAME};
use crate::h264::{self, ParameterSets};
use crate::timeline::{TS_CLOCK, add_samples_stable, unwrap_timestamp};
use crate::ts::{StreamKind, TsDemuxer, TsEvent};

/// Bounds on what a remux may hold in memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Samples of all tracks together (the index costs ~16-24 bytes per sample while building).
    pub maximum_samples: usize,
    /// A timestamp step (DTS to DTS, or PTS after DTS) larger than this is a discontinuity.
    pub maximum_timestamp_step: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // ~6 hours of 60 fps video with 48 kHz AAC.
            maximum_samples: 2_500_000,
            // ffmpeg's own discontinuity threshold (`-dts_delta_threshold` 10 s).
            maximum_timestamp_step: 10 * TS_CLOCK,
        }
    }
}

/// What an input contributes to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRole {
    /// The recording's part: its video, and its audio unless another input carries it.
    Main { take_audio: bool },
    /// A separately recorded audio rendition: its audio only.
    AudioRendition,
}

impl InputRole {
    fn takes(self, kind: StreamKind) -> bool {
        match (self, kind) {
            (InputRole::Main { .. }, StreamKind::H264) => true,
            (InputRole::Main { take_audio }, StreamKind::AdtsAac) => take_audio,
            (InputRole::AudioRendition, StreamKind::AdtsAac) => true,
            _ => false,
        }
    }
}

/// One video sample (90 kHz timestamps, unwrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSample {
    pub dts: i64,
    /// PTS − DTS.
    pub composition_offset: u32,
    pub size: u32,
    pub sync: bool,
}

/// One audio sample (a raw AAC frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSample {
    pub dts: i64,
    pub size: u32,
}

#[derive(Debug, Clone, Default)]
pub struct VideoScan {
    pub pid: u16,
    pub parameter_sets: ParameterSets,
    pub samples: Vec<VideoSample>,
    /// Access units before the first sync sample, left out (as ffmpeg's stream copy does).
    pub dropped_leading: u64,
}

#[derive(Debug, Clone)]
pub struct AudioScan {
    pub pid: u16,
    pub config: AudioConfig,
    pub samples: Vec<AudioSample>,
}

/// The first pass over one input.
pub struct InputScanner {
    role: InputRole,
    limits: Limits,
    demuxer: TsDemuxer,
    state: ScanState,
}

#[derive(Default)]
struct ScanState {
    video: Option<VideoScan>,
    audio: Option<AudioScan>,
    audio_pids_seen: Vec<u16>,
    video_pids_seen: Vec<u16>,
    /// First PTS of each audio/video PID (for the input's start time), and of data PIDs.
    first_media_pts: Vec<(u16, i64)>,
    first_data_pts: Vec<(u16, i64)>,
    /// Timestamp unwrapping reference: the last timestamp seen on any stream.
    reference: Option<i64>,
    last_audio_dts: Option<i64>,
    /// The decoding time of the last mapped packet of the input (any stream, in packet order),
    /// and the mapped streams seen so far (ffmpeg's inter-stream discontinuity check).
    last_input_dts: Option<i64>,
    started_pids: Vec<u16>,
    total_samples: usize,
    /// Keep each accepted sample's bytes for [`InputScanner::drain_accepted`] (one-pass mode).
    keep_bytes: bool,
    accepted_bytes: Vec<u8>,
    accepted: Vec<AcceptedSample>,
}

/// A sample the scan accepted, in arrival order (one-pass mode): its bytes are the next
/// `bytes` bytes of the scanner's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedSample {
    pub is_video: bool,
    /// 90 kHz, unwrapped.
    pub dts: i64,
    pub bytes: usize,
}

/// The result of scanning one input.
#[derive(Debug, Clone)]
pub struct InputSummary {
    pub role: InputRole,
    pub video: Option<VideoScan>,
    pub audio: Option<AudioScan>,
    /// ffmpeg's start time of this input (90 kHz), from every stream's first PTS.
    pub start_time: Option<i64>,
    pub packets: u64,
}

impl ScanState {
    fn unwrap(&mut self, raw: u64) -> i64 {
        // Like ffmpeg's wrap reference: an input that starts within 60 s of the wrap counts its
        // timestamps from below zero, so the ones after the wrap keep their small values (the
        // audio interpolation rounds on absolute values).
        let reference = self.reference.unwrap_or_else(|| {
            let raw = (raw & ((1u64 << 33) - 1)) as i64;
            if raw >= (1i64 << 33) - 60 * TS_CLOCK {
                raw - (1i64 << 33)
            } else {
                raw
            }
        });
        let value = unwrap_timestamp(raw, reference);
        self.reference = Some(value);
        value
    }

    fn note_first(list: &mut Vec<(u16, i64)>, pid: u16, value: i64) {
        if !list.iter().any(|(known, _)| *known == pid) {
            list.push((pid, value));
        }
    }

    /// ffmpeg (`ts_discontinuity_detect`) compares the first packet of each mapped stream with
    /// the input's last packet: further apart than its `-dts_delta_threshold` (the step limit),
    /// it moves the whole input's clock (audio and video that start hours apart come out
    /// together). This remuxer keeps timestamps as written, so such an input is declined.
    fn follow_input_clock(
        &mut self,
        pid: u16,
        dts: i64,
        limits: &Limits,
    ) -> Result<(), Unsupported> {
        if !self.started_pids.contains(&pid) {
            self.started_pids.push(pid);
            if let Some(last) = self.last_input_dts
                && (dts - last).abs() > limits.maximum_timestamp_step
            {
                return Err(Unsupported::new(format!(
                    "a stream starting {} ticks away from the others (discontinuity)",
                    dts - last
                )));
            }
        }
        self.last_input_dts = Some(dts);
        Ok(())
    }

    fn count_sample(&mut self, limits: &Limits) -> Result<(), Unsupported> {
        self.total_samples += 1;
        if self.total_samples > limits.maximum_samples {
            return Err(Unsupported::new(format!(
                "more than {} samples (the index cap)",
                limits.maximum_samples
            )));
        }
        Ok(())
    }

    fn video_access_unit(
        &mut self,
        pid: u16,
        pts: Option<u64>,
        dts: Option<u64>,
        payload: &[u8],
        limits: &Limits,
    ) -> Result<(), Unsupported> {
        if !self.video_pids_seen.contains(&pid) {
            self.video_pids_seen.push(pid);
            if self.video_pids_seen.len() > 1 {
                return Err(Unsupported::new("more than one video stream".to_owned()));
            }
        }
        let Some(raw_pts) = pts else {
            return Err(Unsupported::new(
                "a video PES packet without a timestamp".to_owned(),
            ));
        };
        let pts = self.unwrap(raw_pts);
        let dts = match dts {
            Some(raw) => unwrap_timestamp(raw, pts),
            None => pts,
        };
        Self::note_first(&mut self.first_media_pts, pid, pts);
        self.follow_input_clock(pid, dts, limits)?;
        let video = self.video.get_or_insert_with(|| VideoScan {
            pid,
            ..VideoScan::default()
        });
        let summary = h264::summarize_access_unit(payload, &mut video.parameter_sets)?;
        if !summary.has_picture {
            return Err(Unsupported::new(
                "a video PES packet without a picture".to_owned(),
            ));
        }
        if video.samples.is_empty() && !summary.sync {
            video.dropped_leading += 1;
            return Ok(());
        }
        if video.samples.is_empty() && !video.parameter_sets.complete() {
            return Err(Unsupported::new(
                "the first keyframe comes without SPS/PPS".to_owned(),
            ));
        }
        if pts < dts || pts - dts > limits.maximum_timestamp_step {
            return Err(Unsupported::new(
                "a presentation time before its decoding time, or far after it".to_owned(),
            ));
        }
        if let Some(previous) = video.samples.last() {
            let step = dts - previous.dts;
            if step <= 0 || step > limits.maximum_timestamp_step {
                return Err(Unsupported::new(format!(
                    "a video timestamp jump of {step} ticks (discontinuity)"
                )));
            }
        }
        let size = u32::try_from(summary.sample_bytes)
            .map_err(|_| Unsupported::new("a sample over 4 GiB".to_owned()))?;
        if self.keep_bytes {
            let appended = h264::append_sample(payload, &mut self.accepted_bytes);
            self.accepted.push(AcceptedSample {
                is_video: true,
                dts,
                bytes: appended as usize,
            });
        }
        video.samples.push(VideoSample {
            dts,
            composition_offset: u32::try_from(pts - dts).unwrap_or(u32::MAX),
            size,
            sync: summary.sync,
        });
        self.count_sample(limits)
    }

    fn audio_packet(
        &mut self,
        pid: u16,
        pts: Option<u64>,
        payload: &[u8],
        limits: &Limits,
    ) -> Result<(), Unsupported> {
        if !self.audio_pids_seen.contains(&pid) {
            self.audio_pids_seen.push(pid);
            if self.audio_pids_seen.len() > 1 {
                return Err(Unsupported::new("more than one audio stream".to_owned()));
            }
        }
        let mut next_dts = match pts {
            Some(raw) => {
                let value = self.unwrap(raw);
                Self::note_first(&mut self.first_media_pts, pid, value);
                value
            }
            None => match (self.last_audio_dts, &self.audio) {
                (Some(last), Some(audio)) => add_samples_stable(
                    last,
                    i64::from(SAMPLES_PER_FRAME),
                    i64::from(audio.config.sample_rate()),
                ),
                _ => {
                    return Err(Unsupported::new(
                        "an audio PES packet without a timestamp".to_owned(),
                    ));
                }
            },
        };
        for frame in adts::frames(payload) {
            let (frame, raw) = frame?;
            self.follow_input_clock(pid, next_dts, limits)?;
            let audio = self.audio.get_or_insert_with(|| AudioScan {
                pid,
                config: frame.config,
                samples: Vec::new(),
            });
            if audio.config != frame.config {
                return Err(Unsupported::new(
                    "the AAC configuration changed mid-part".to_owned(),
                ));
            }
            if let Some(previous) = audio.samples.last() {
                let step = next_dts - previous.dts;
                if step <= 0 || step > limits.maximum_timestamp_step {
                    return Err(Unsupported::new(format!(
                        "an audio timestamp jump of {step} ticks (discontinuity)"
                    )));
                }
            }
            audio.samples.push(AudioSample {
                dts: next_dts,
                size: raw.len() as u32,
            });
            if self.keep_bytes {
                self.accepted_bytes.extend_from_slice(raw);
                self.accepted.push(AcceptedSample {
                    is_video: false,
                    dts: next_dts,
                    bytes: raw.len(),
                });
            }
            self.last_audio_dts = Some(next_dts);
            let sample_rate = i64::from(audio.config.sample_rate());
            next_dts = add_samples_stable(next_dts, i64::from(SAMPLES_PER_FRAME), sample_rate);
            self.count_sample(limits)?;
        }
        Ok(())
    }
}

impl InputScanner {
    pub fn new(role: InputRole, limits: Limits) -> Self {
        InputScanner {
            role,
            limits,
            demuxer: TsDemuxer::new(),
            state: ScanState::default(),
        }
    }

    /// Keep the bytes of every accepted sample (MP4 form) for [`Self::drain_accepted`].
    pub fn keeping_sample_bytes(mut self) -> Self {
        self.state.keep_bytes = true;
        self
    }

    /// The samples accepted since the last call, in order, with their bytes.
    pub fn drain_accepted(
        &mut self,
        mut each: impl FnMut(AcceptedSample, &[u8]) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        let mut position = 0usize;
        let mut result = Ok(());
        for sample in &self.state.accepted {
            let end = position + sample.bytes;
            if let Some(bytes) = self.state.accepted_bytes.get(position..end) {
                result = each(*sample, bytes);
                if result.is_err() {
                    break;
                }
            }
            position = end;
        }
        self.state.accepted.clear();
        self.state.accepted_bytes.clear();
        result
    }

    /// The latest accepted DTS (90 kHz), for reading two inputs in step.
    pub fn latest_dts(&self) -> Option<i64> {
        let video = self
            .state
            .video
            .as_ref()
            .and_then(|video| video.samples.last())
            .map(|sample| sample.dts);
        let audio = self
            .state
            .audio
            .as_ref()
            .and_then(|audio| audio.samples.last())
            .map(|sample| sample.dts);
        video.max(audio)
    }

    /// One 188-byte packet.
    pub fn push_packet(&mut self, packet: &[u8]) -> Result<(), Unsupported> {
        let role = self.role;
        let limits = self.limits;
        let state = &mut self.state;
        self.demuxer.push_packet(packet, &mut |event| {
            handle_event(role, &limits, state, event)
        })
    }

    /// The end of the input: the PES packets in progress are complete (their samples accepted).
    pub fn end_of_input(&mut self) -> Result<(), Unsupported> {
        let role = self.role;
        let limits = self.limits;
        let state = &mut self.state;
        self.demuxer
            .finish(&mut |event| handle_event(role, &limits, state, event))
    }

    /// The end of the input and the summary of what it holds.
    pub fn finish(mut self) -> Result<InputSummary, Unsupported> {
        self.end_of_input()?;
        let role = self.role;
        let Some(streams) = self.demuxer.streams() else {
            return Err(Unsupported::new("no program map".to_owned()));
        };
        // Every stream ffmpeg would map must have samples.
        for stream in streams {
            if !role.takes(stream.kind) {
                continue;
            }
            let present = match stream.kind {
                StreamKind::H264 => self
                    .state
                    .video
                    .as_ref()
                    .is_some_and(|v| !v.samples.is_empty()),
                StreamKind::AdtsAac => self
                    .state
                    .audio
                    .as_ref()
                    .is_some_and(|a| !a.samples.is_empty()),
                StreamKind::Data => true,
            };
            if !present {
                return Err(Unsupported::new(
                    "a stream of the program map has no samples".to_owned(),
                ));
            }
        }
        let media_first = self.state.first_media_pts.iter().map(|(_, pts)| *pts).min();
        let data_first = self.state.first_data_pts.iter().map(|(_, pts)| *pts).min();
        let summary = InputSummary {
            role,
            video: self.state.video.take(),
            audio: self.state.audio.take(),
            start_time: crate::timeline::input_start_time(media_first, data_first),
            packets: self.demuxer.packet_count(),
        };
        if summary.video.is_none() && summary.audio.is_none() {
            return Err(Unsupported::new("no audio or video samples".to_owned()));
        }
        Ok(summary)
    }
}

fn handle_event(
    role: InputRole,
    limits: &Limits,
    state: &mut ScanState,
    event: TsEvent<'_>,
) -> Result<(), Unsupported> {
    match event {
        TsEvent::DataTimestamp { pid, pts } => {
            let value = state.unwrap(pts);
            ScanState::note_first(&mut state.first_data_pts, pid, value);
            Ok(())
        }
        TsEvent::Pes {
            pid,
            kind,
            pts,
            dts,
            payload,
        } => {
            if !role.takes(kind) {
                // Not mapped, but its first timestamp is part of the input's start time.
                if let Some(raw) = pts {
                    let value = state.unwrap(raw);
                    ScanState::note_first(&mut state.first_media_pts, pid, value);
                }
                return Ok(());
            }
            match kind {
                StreamKind::H264 => state.video_access_unit(pid, pts, dts, payload, limits),
                StreamKind::AdtsAac => state.audio_packet(pid, pts, payload, limits),
                StreamKind::Data => Ok(()),
            }
        }
    }
}
