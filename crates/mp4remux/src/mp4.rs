//! MP4 box writing: `ftyp`, the `moov` of a [`Plan`], the `mdat` header. Pure (bytes in memory).

use crate::adts::AudioConfig;
use crate::h264::SequenceParameters;
use crate::plan::{Brand, Plan, TrackMedia, TrackPlan};
use crate::timeline::MOVIE_TIMESCALE;

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

struct BoxWriter {
    bytes: Vec<u8>,
}

impl BoxWriter {
    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }
    fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    fn bytes(&mut self, value: &[u8]) {
        self.bytes.extend_from_slice(value);
    }
    fn zeros(&mut self, count: usize) {
        self.bytes.resize(self.bytes.len() + count, 0);
    }

    /// A box: size placeholder, type, the body `write` adds, size patched.
    fn boxed(&mut self, kind: &[u8; 4], write: impl FnOnce(&mut BoxWriter)) {
        let start = self.bytes.len();
        self.u32(0);
        self.bytes(kind);
        write(self);
        let size = u32::try_from(self.bytes.len() - start).unwrap_or(u32::MAX);
        self.bytes[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    fn full_box(
        &mut self,
        kind: &[u8; 4],
        version: u8,
        flags: u32,
        write: impl FnOnce(&mut BoxWriter),
    ) {
        self.boxed(kind, |writer| {
            writer.u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
            write(writer);
        });
    }

    /// An MPEG-4 descriptor with ffmpeg's 4-byte length form.
    fn descriptor(&mut self, tag: u8, write: impl FnOnce(&mut BoxWriter)) {
        self.u8(tag);
        let start = self.bytes.len();
        self.u32(0);
        write(self);
        let length = (self.bytes.len() - start - 4) as u32;
        let encoded = [
            0x80 | ((length >> 21) & 0x7F) as u8,
            0x80 | ((length >> 14) & 0x7F) as u8,
            0x80 | ((length >> 7) & 0x7F) as u8,
            (length & 0x7F) as u8,
        ];
        self.bytes[start..start + 4].copy_from_slice(&encoded);
    }
}

/// The `ftyp` box for the brand.
pub fn file_type_box(brand: Brand, has_video: bool) -> Vec<u8> {
    let mut writer = BoxWriter { bytes: Vec::new() };
    writer.boxed(b"ftyp", |writer| match brand {
        Brand::Mp4 => {
            writer.bytes(b"isom");
            writer.u32(512);
            writer.bytes(b"isomiso2");
            if has_video {
                writer.bytes(b"avc1");
            }
            writer.bytes(b"mp41");
        }
        Brand::M4a => {
            writer.bytes(b"M4A ");
            writer.u32(512);
            writer.bytes(b"M4A isomiso2");
        }
    });
    writer.bytes
}

/// The `mdat` header for `payload_bytes` of samples (64-bit size when needed).
pub fn media_data_header(payload_bytes: u64) -> Vec<u8> {
    let mut writer = BoxWriter { bytes: Vec::new() };
    if payload_bytes + 8 <= u64::from(u32::MAX) {
        writer.u32((payload_bytes + 8) as u32);
        writer.bytes(b"mdat");
    } else {
        writer.u32(1);
        writer.bytes(b"mdat");
        writer.u64(payload_bytes + 16);
    }
    writer.bytes
}

/// The `moov` of a plan (chunk offsets as the plan has them).
pub fn movie_box(plan: &Plan) -> Vec<u8> {
    let mut writer = BoxWriter { bytes: Vec::new() };
    writer.boxed(b"moov", |writer| {
        let duration = plan
            .tracks
            .iter()
            .map(|track| track.movie_duration)
            .max()
            .unwrap_or(0);
        let long = duration > u64::from(u32::MAX);
        writer.full_box(b"mvhd", u8::from(long), 0, |writer| {
            if long {
                writer.u64(0);
                writer.u64(0);
                writer.u32(MOVIE_TIMESCALE as u32);
                writer.u64(duration);
            } else {
                writer.u32(0);
                writer.u32(0);
                writer.u32(MOVIE_TIMESCALE as u32);
                writer.u32(duration as u32);
            }
            writer.u32(0x0001_0000);
            writer.u16(0x0100);
            writer.zeros(10);
            for value in MATRIX {
                writer.u32(value);
            }
            writer.zeros(24);
            writer.u32(plan.tracks.len() as u32 + 1);
        });
        for track in &plan.tracks {
            track_box(writer, track, plan.use_64_bit_offsets);
        }
    });
    writer.bytes
}

fn track_box(writer: &mut BoxWriter, track: &TrackPlan, use_64_bit_offsets: bool) {
    let is_video = matches!(track.media, TrackMedia::Video { .. });
    writer.boxed(b"trak", |writer| {
        let long = track.movie_duration > u64::from(u32::MAX);
        writer.full_box(b"tkhd", u8::from(long), 3, |writer| {
            if long {
                writer.u64(0);
                writer.u64(0);
                writer.u32(track.track_id);
                writer.u32(0);
                writer.u64(track.movie_duration);
            } else {
                writer.u32(0);
                writer.u32(0);
                writer.u32(track.track_id);
                writer.u32(0);
                writer.u32(track.movie_duration as u32);
            }
            writer.zeros(8);
            writer.u16(0);
            writer.u16(if is_video { 0 } else { 1 });
            writer.u16(if is_video { 0 } else { 0x0100 });
            writer.u16(0);
            for value in MATRIX {
                writer.u32(value);
            }
            match &track.media {
                TrackMedia::Video { sequence, .. } => {
                    let (display_width, height) = display_size(sequence);
                    writer.u32(display_width);
                    writer.u32(height << 16);
                }
                TrackMedia::Audio { .. } => {
                    writer.u32(0);
                    writer.u32(0);
                }
            }
        });
        if let Some(edit) = &track.edit {
            writer.boxed(b"edts", |writer| {
                let long = edit.duration > u64::from(u32::MAX) || edit.delay > u64::from(u32::MAX);
                let entries = 1 + u32::from(edit.delay > 0);
                writer.full_box(b"elst", u8::from(long), 0, |writer| {
                    writer.u32(entries);
                    let entry = |writer: &mut BoxWriter, duration: u64, media_time: i64| {
                        if long {
                            writer.u64(duration);
                            writer.u64(media_time as u64);
                        } else {
                            writer.u32(duration as u32);
                            writer.u32(media_time as i32 as u32);
                        }
                        writer.u32(0x0001_0000);
                    };
                    if edit.delay > 0 {
                        entry(writer, edit.delay, -1);
                    }
                    entry(writer, edit.duration, edit.media_time);
                });
            });
        }
        writer.boxed(b"mdia", |writer| {
            let long = track.media_duration > u64::from(u32::MAX);
            writer.full_box(b"mdhd", u8::from(long), 0, |writer| {
                if long {
                    writer.u64(0);
                    writer.u64(0);
                    writer.u32(track.timescale);
                    writer.u64(track.media_duration);
                } else {
                    writer.u32(0);
                    writer.u32(0);
                    writer.u32(track.timescale);
                    writer.u32(track.media_duration as u32);
                }
                writer.u16(0x55C4); // "und"
                writer.u16(0);
            });
            writer.full_box(b"hdlr", 0, 0, |writer| {
                writer.u32(0);
                writer.bytes(if is_video { b"vide" } else { b"soun" });
                writer.zeros(12);
                writer.bytes(if is_video {
                    b"VideoHandler\0".as_slice()
                } else {
                    b"SoundHandler\0".as_slice()
                });
            });
            writer.boxed(b"minf", |writer| {
                if is_video {
                    writer.full_box(b"vmhd", 0, 1, |writer| writer.zeros(8));
                } else {
                    writer.full_box(b"smhd", 0, 0, |writer| writer.zeros(4));
                }
                writer.boxed(b"dinf", |writer| {
                    writer.full_box(b"dref", 0, 0, |writer| {
                        writer.u32(1);
                        writer.full_box(b"url ", 0, 1, |_| {});
                    });
                });
                sample_table_box(writer, track, use_64_bit_offsets);
            });
        });
    });
}

/// Width (16.16, stretched by the sample aspect ratio as ffmpeg writes it) and height in pixels.
fn display_size(sequence: &SequenceParameters) -> (u32, u32) {
    let width = u64::from(sequence.width) << 16;
    let display = match sequence.sample_aspect_ratio {
        Some((numerator, denominator)) if numerator > 0 && denominator > 0 => {
            (width * u64::from(numerator) + u64::from(denominator) / 2) / u64::from(denominator)
        }
        _ => width,
    };
    (u32::try_from(display).unwrap_or(u32::MAX), sequence.height)
}

fn sample_entry(writer: &mut BoxWriter, track: &TrackPlan) {
    match &track.media {
        TrackMedia::Video {
            sequence,
            configuration_record,
        } => writer.boxed(b"avc1", |writer| {
            writer.zeros(6);
            writer.u16(1);
            writer.zeros(16);
            writer.u16(sequence.width as u16);
            writer.u16(sequence.height as u16);
            writer.u32(0x0048_0000);
            writer.u32(0x0048_0000);
            writer.u32(0);
            writer.u16(1);
            writer.zeros(32);
            writer.u16(0x0018);
            writer.u16(0xFFFF);
            writer.boxed(b"avcC", |writer| writer.bytes(configuration_record));
            if let Some((numerator, denominator)) = sequence.sample_aspect_ratio
                && numerator > 0
                && denominator > 0
            {
                writer.boxed(b"pasp", |writer| {
                    writer.u32(numerator);
                    writer.u32(denominator);
                });
            }
        }),
        TrackMedia::Audio {
            config,
            maximum_sample_bytes,
            average_bitrate,
            maximum_bitrate,
        } => writer.boxed(b"mp4a", |writer| {
            writer.zeros(6);
            writer.u16(1);
            writer.zeros(8);
            // ISO/IEC 14496-14: reserved, 2 (the channels are in the AudioSpecificConfig).
            writer.u16(2);
            writer.u16(16);
            writer.u16(0);
            writer.u16(0);
            writer.u32(config.sample_rate() << 16);
            elementary_stream_descriptor(
                writer,
                track.track_id,
                config,
                *maximum_sample_bytes,
                *average_bitrate,
                *maximum_bitrate,
            );
        }),
    }
}

fn elementary_stream_descriptor(
    writer: &mut BoxWriter,
    track_id: u32,
    config: &AudioConfig,
    maximum_sample_bytes: u32,
    average_bitrate: u32,
    maximum_bitrate: u32,
) {
    writer.full_box(b"esds", 0, 0, |writer| {
        writer.descriptor(0x03, |writer| {
            writer.u16(track_id as u16);
            writer.u8(0);
            writer.descriptor(0x04, |writer| {
                writer.u8(0x40);
                writer.u8(0x15);
                writer.u8((maximum_sample_bytes >> 16) as u8);
                writer.u16(maximum_sample_bytes as u16);
                writer.u32(maximum_bitrate);
                writer.u32(average_bitrate);
                writer.descriptor(0x05, |writer| writer.bytes(&config.audio_specific_config()));
            });
            writer.descriptor(0x06, |writer| writer.u8(0x02));
        });
    });
}

/// Runs of equal values: (count, value).
fn runs(values: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for value in values {
        match runs.last_mut() {
            Some((count, last)) if *last == value => *count += 1,
            _ => runs.push((1, value)),
        }
    }
    runs
}

fn sample_table_box(writer: &mut BoxWriter, track: &TrackPlan, use_64_bit_offsets: bool) {
    writer.boxed(b"stbl", |writer| {
        writer.full_box(b"stsd", 0, 0, |writer| {
            writer.u32(1);
            sample_entry(writer, track);
        });
        let durations = runs(track.sample_durations.iter().copied());
        writer.full_box(b"stts", 0, 0, |writer| {
            writer.u32(durations.len() as u32);
            for (count, duration) in &durations {
                writer.u32(*count);
                writer.u32(*duration);
            }
        });
        if let Some(sync_samples) = &track.sync_samples {
            writer.full_box(b"stss", 0, 0, |writer| {
                writer.u32(sync_samples.len() as u32);
                for number in sync_samples {
                    writer.u32(*number);
                }
            });
        }
        if let Some(offsets) = &track.composition_offsets {
            let offsets = runs(offsets.iter().copied());
            writer.full_box(b"ctts", 0, 0, |writer| {
                writer.u32(offsets.len() as u32);
                for (count, offset) in &offsets {
                    writer.u32(*count);
                    writer.u32(*offset);
                }
            });
        }
        let per_chunk = runs(track.chunks.iter().map(|chunk| chunk.sample_count));
        writer.full_box(b"stsc", 0, 0, |writer| {
            writer.u32(per_chunk.len() as u32);
            let mut first_chunk = 1u32;
            for (count, samples) in &per_chunk {
                writer.u32(first_chunk);
                writer.u32(*samples);
                writer.u32(1);
                first_chunk += count;
            }
        });
        writer.full_box(b"stsz", 0, 0, |writer| {
            let first = track.sample_sizes.first().copied().unwrap_or(0);
            if track.sample_sizes.iter().all(|size| *size == first) && first > 0 {
                writer.u32(first);
                writer.u32(track.sample_sizes.len() as u32);
            } else {
                writer.u32(0);
                writer.u32(track.sample_sizes.len() as u32);
                for size in &track.sample_sizes {
                    writer.u32(*size);
                }
            }
        });
        if use_64_bit_offsets {
            writer.full_box(b"co64", 0, 0, |writer| {
                writer.u32(track.chunks.len() as u32);
                for chunk in &track.chunks {
                    writer.u64(chunk.offset);
                }
            });
        } else {
            writer.full_box(b"stco", 0, 0, |writer| {
                writer.u32(track.chunks.len() as u32);
                for chunk in &track.chunks {
                    writer.u32(chunk.offset as u32);
                }
            });
        }
    });
}
