//! What a recorded part holds, read in process from its own first bytes, so finalize needs no
//! ffprobe of what the recorder wrote (issue 18): the MPEG-TS program map (stream types), an fMP4
//! part's init segment (`moov`: handlers, codecs, size), or the raw audio format.
//!
//! The answer is a [`StreamInfo`] like ffprobe's, with what the bytes cannot tell left empty
//! (a TS part's picture size is in the H.264 SPS, not read here: `width`/`height` are 0). `None`
//! when the bytes do not say (no PMT in the first bytes, an unknown stream type): then a probe is
//! still needed.

use std::path::Path;

use crate::input::{InputFormat, MediaInput, read_media_header};
use crate::mp4_index::{Mp4Index, parse_mp4_index};
use crate::probe::{AudioStreamInfo, StreamInfo, VideoStreamInfo};

const TS_PACKET_BYTES: usize = 188;

/// One elementary stream of a TS program map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsStream {
    pub stream_type: u8,
    pub pid: u16,
}

/// The codec an MPEG-TS `stream_type` carries, with its kind; `None` for types finalize does not
/// map (data, subtitles, private streams).
pub fn ts_stream_codec(stream_type: u8) -> Option<(&'static str, bool)> {
    // (ffprobe's codec name, is video)
    match stream_type {
        0x1B => Some(("h264", true)),
        0x24 => Some(("hevc", true)),
        0x02 => Some(("mpeg2video", true)),
        0x0F => Some(("aac", false)),
        0x11 => Some(("aac_latm", false)),
        0x03 | 0x04 => Some(("mp3", false)),
        0x81 => Some(("ac3", false)),
        0x87 => Some(("eac3", false)),
        _ => None,
    }
}

/// The payload of a TS packet (after its header and adaptation field), if it has one.
fn packet_payload(packet: &[u8]) -> Option<&[u8]> {
    if packet.len() < TS_PACKET_BYTES || packet[0] != 0x47 {
        return None;
    }
    let adaptation_control = (packet[3] >> 4) & 0x03;
    match adaptation_control {
        0x01 => packet.get(4..TS_PACKET_BYTES),
        0x03 => {
            let adaptation_length = usize::from(*packet.get(4)?);
            packet.get(5 + adaptation_length..TS_PACKET_BYTES)
        }
        _ => None,
    }
}

fn packet_pid(packet: &[u8]) -> Option<u16> {
    Some((u16::from(*packet.get(1)? & 0x1F) << 8) | u16::from(*packet.get(2)?))
}

fn payload_unit_start(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|byte| byte & 0x40 != 0)
}

/// The section starting in a payload-unit-start packet: after the pointer field, bounded by its
/// section length (only sections that fit in one packet; PAT and PMT almost always do).
fn section(payload: &[u8]) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let start = payload.get(1 + pointer..)?;
    let section_length =
        usize::from(u16::from(*start.get(1)? & 0x0F) << 8 | u16::from(*start.get(2)?));
    start.get(..3 + section_length)
}

/// The streams of the first program of a TS, from its PAT and PMT in `bytes` (the start of the
/// file). Leading ID3 tags are not skipped here: TS parts start with a packet.
pub fn ts_program_streams(bytes: &[u8]) -> Option<Vec<TsStream>> {
    let packets = || bytes.chunks_exact(TS_PACKET_BYTES);
    let pmt_pid = packets().find_map(|packet| {
        if packet_pid(packet)? != 0 || !payload_unit_start(packet) {
            return None;
        }
        let pat = section(packet_payload(packet)?)?;
        if *pat.first()? != 0x00 {
            return None;
        }
        // After the 8-byte header: 4-byte entries until the 4-byte CRC.
        let entries = pat.get(8..pat.len().checked_sub(4)?)?;
        entries.chunks_exact(4).find_map(|entry| {
            let program_number = u16::from_be_bytes([entry[0], entry[1]]);
            (program_number != 0).then(|| (u16::from(entry[2] & 0x1F) << 8) | u16::from(entry[3]))
        })
    })?;
    packets().find_map(|packet| {
        if packet_pid(packet)? != pmt_pid || !payload_unit_start(packet) {
            return None;
        }
        let pmt = section(packet_payload(packet)?)?;
        if *pmt.first()? != 0x02 {
            return None;
        }
        let program_info_length =
            usize::from(u16::from(*pmt.get(10)? & 0x0F) << 8 | u16::from(*pmt.get(11)?));
        let end = pmt.len().checked_sub(4)?;
        let mut offset = 12 + program_info_length;
        let mut streams = Vec::new();
        while offset + 5 <= end {
            let stream_type = pmt[offset];
            let pid = (u16::from(pmt[offset + 1] & 0x1F) << 8) | u16::from(pmt[offset + 2]);
            let info_length =
                usize::from(u16::from(pmt[offset + 3] & 0x0F) << 8 | u16::from(pmt[offset + 4]));
            streams.push(TsStream { stream_type, pid });
            offset += 5 + info_length;
        }
        Some(streams)
    })
}

fn stream_info(
    container: &str,
    video: Option<VideoStreamInfo>,
    audio: Option<AudioStreamInfo>,
    stream_count: usize,
) -> StreamInfo {
    StreamInfo {
        container: container.to_owned(),
        duration: None,
        size_bytes: None,
        bit_rate: None,
        video,
        audio,
        stream_count,
    }
}

fn video(codec: &str, width: u32, height: u32) -> VideoStreamInfo {
    VideoStreamInfo {
        codec: codec.to_owned(),
        width,
        height,
        frame_rate: None,
        bit_rate: None,
    }
}

fn audio(codec: &str) -> AudioStreamInfo {
    AudioStreamInfo {
        codec: codec.to_owned(),
        channels: None,
        sample_rate: None,
        bit_rate: None,
    }
}

/// The streams of a part from its first bytes (see the module doc).
pub fn known_streams_from_header(format: InputFormat, header: &[u8]) -> Option<StreamInfo> {
    known_streams_leaving_out(format, header, &[])
}

/// [`known_streams_from_header`] without the TS streams whose PIDs are in `left_out` (streams
/// that carry no packet: [`ts_streams_without_packets`]).
fn known_streams_leaving_out(
    format: InputFormat,
    header: &[u8],
    left_out: &[u16],
) -> Option<StreamInfo> {
    match format {
        InputFormat::MpegTs => {
            let mut streams = ts_program_streams(header)?;
            streams.retain(|stream| !left_out.contains(&stream.pid));
            let mut video_stream = None;
            let mut audio_stream = None;
            for stream in &streams {
                match ts_stream_codec(stream.stream_type) {
                    Some((codec, true)) if video_stream.is_none() => {
                        video_stream = Some(video(codec, 0, 0));
                    }
                    Some((codec, false)) if audio_stream.is_none() => {
                        audio_stream = Some(audio(codec));
                    }
                    _ => {}
                }
            }
            if video_stream.is_none() && audio_stream.is_none() {
                return None;
            }
            Some(stream_info(
                "mpegts",
                video_stream,
                audio_stream,
                streams.len(),
            ))
        }
        InputFormat::Mp4 => {
            let index = parse_mp4_index(header).ok()?;
            let info = stream_info_from_index(&index);
            (info.has_video() || info.has_audio()).then_some(info)
        }
        InputFormat::Adts => Some(stream_info("aac", None, Some(audio("aac")), 1)),
        InputFormat::Mp3 => Some(stream_info("mp3", None, Some(audio("mp3")), 1)),
        InputFormat::Ac3 => Some(stream_info("ac3", None, Some(audio("ac3")), 1)),
        InputFormat::Eac3 => Some(stream_info("eac3", None, Some(audio("eac3")), 1)),
        InputFormat::Matroska | InputFormat::Flv => None,
    }
}

/// ffprobe's codec name for an MP4 sample entry type.
fn codec_name(fourcc: &str) -> String {
    match fourcc {
        "avc1" | "avc3" => "h264",
        "hvc1" | "hev1" => "hevc",
        "mp4a" => "aac",
        "ac-3" => "ac3",
        "ec-3" => "eac3",
        "Opus" => "opus",
        other => other,
    }
    .to_owned()
}

/// An MP4 index as a [`StreamInfo`] (duration from `mvhd`, or the longest track).
pub fn stream_info_from_index(index: &Mp4Index) -> StreamInfo {
    let video_stream = index
        .video()
        .map(|track| video(&codec_name(&track.codec), track.width, track.height));
    let audio_stream = index.audio().map(|track| audio(&codec_name(&track.codec)));
    let duration = if index.duration.is_zero() {
        index.tracks.iter().map(|track| track.duration).max()
    } else {
        Some(index.duration)
    };
    let mut info = stream_info(
        "mov,mp4,m4a,3gp,3g2,mj2",
        video_stream,
        audio_stream,
        index.tracks.len(),
    );
    info.duration = duration.filter(|duration| !duration.is_zero());
    info
}

/// [`known_streams_from_header`] of a local part (reads its first bytes).
pub fn known_streams(input: &MediaInput) -> Option<StreamInfo> {
    let header = read_media_header(Path::new(&input.path)).ok()?;
    known_streams_from_header(input.format, &header)
}

/// Bytes of a TS part looked at for the packets of each declared stream: ffmpeg finds a stream's
/// parameters in its first 5 MB (`probesize`), so a stream with no packet here has none.
pub const STREAM_PACKETS_WINDOW_BYTES: u64 = 16 * 1024 * 1024;

/// The video and audio streams the program map of a TS declares (in `bytes`, the start of the
/// file) that begin no PES packet in `bytes`: a rendition that is off, or a hostile map. ffmpeg
/// cannot find their parameters, and an output with such a stream fails at its header ("sample
/// rate not set", "dimensions not set"): the whole part would be lost for a stream that holds
/// nothing. Empty when there is no program map or every stream has packets.
pub fn ts_streams_without_packets(bytes: &[u8]) -> Vec<TsStream> {
    let Some(declared) = ts_program_streams(bytes) else {
        return Vec::new();
    };
    let mut mapped: Vec<TsStream> = declared
        .into_iter()
        .filter(|stream| ts_stream_codec(stream.stream_type).is_some())
        .collect();
    mapped.dedup_by_key(|stream| stream.pid);
    for packet in bytes.chunks_exact(TS_PACKET_BYTES) {
        if mapped.is_empty() {
            break;
        }
        if !payload_unit_start(packet) || packet_payload(packet).is_none() {
            continue;
        }
        if let Some(pid) = packet_pid(packet) {
            mapped.retain(|stream| stream.pid != pid);
        }
    }
    mapped
}

/// What a part holds as finalize maps it ([`known_streams_with_packets`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartStreams {
    /// [`known_streams`] without the declared streams that carry no packet.
    pub known: Option<StreamInfo>,
    /// Ids (MPEG-TS PIDs) of the declared streams that carry no packet: left out of the maps.
    pub left_out: Vec<u16>,
    /// When streams are left out: the id of the first video stream that has packets (the
    /// thumbnail's; `v:0` could be an empty one).
    pub first_video_id: Option<u16>,
    /// When streams are left out: the id of the first audio stream that has packets (an extra
    /// audio track's; `a:0` could be an empty one).
    pub first_audio_id: Option<u16>,
}

/// [`PartStreams`] of a local part.
pub fn known_streams_with_packets(input: &MediaInput) -> PartStreams {
    let left_out: Vec<u16> = declared_streams_without_packets(input)
        .iter()
        .map(|stream| stream.pid)
        .collect();
    let header = read_media_header(Path::new(&input.path)).ok();
    let known = header
        .as_deref()
        .and_then(|header| known_streams_leaving_out(input.format, header, &left_out));
    let declared = if left_out.is_empty() {
        Vec::new()
    } else {
        header
            .as_deref()
            .and_then(ts_program_streams)
            .unwrap_or_default()
    };
    let first_with_packets = |want_video: bool| {
        declared
            .iter()
            .find(|stream| {
                !left_out.contains(&stream.pid)
                    && ts_stream_codec(stream.stream_type)
                        .is_some_and(|(_, video)| video == want_video)
            })
            .map(|stream| stream.pid)
    };
    PartStreams {
        first_video_id: first_with_packets(true),
        first_audio_id: first_with_packets(false),
        known,
        left_out,
    }
}

/// [`ts_streams_without_packets`] of a local part (its first [`STREAM_PACKETS_WINDOW_BYTES`]);
/// empty for other formats or when it cannot be read.
pub fn declared_streams_without_packets(input: &MediaInput) -> Vec<TsStream> {
    use std::io::Read;
    if input.format != InputFormat::MpegTs {
        return Vec::new();
    }
    let Ok(file) = std::fs::File::open(&input.path) else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    if file
        .take(STREAM_PACKETS_WINDOW_BYTES)
        .read_to_end(&mut bytes)
        .is_err()
    {
        return Vec::new();
    }
    ts_streams_without_packets(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TS packet with `payload` after a 4-byte header (no adaptation field), stuffed with 0xFF.
    fn packet(pid: u16, start: bool, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![
            0x47,
            ((pid >> 8) as u8 & 0x1F) | if start { 0x40 } else { 0 },
            pid as u8,
            0x10,
        ];
        bytes.extend_from_slice(payload);
        bytes.resize(TS_PACKET_BYTES, 0xFF);
        bytes
    }

    fn pat(pmt_pid: u16) -> Vec<u8> {
        // pointer, table 0, length 13, ts id, version, section numbers, program 1 → pmt_pid, CRC.
        let mut section = vec![0x00, 0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00];
        section.extend_from_slice(&[0x00, 0x01, 0xE0 | (pmt_pid >> 8) as u8, pmt_pid as u8]);
        section.extend_from_slice(&[0, 0, 0, 0]);
        section
    }

    fn pmt(streams: &[(u8, u16)]) -> Vec<u8> {
        let length = 9 + streams.len() * 5 + 4;
        let mut section = vec![0x00, 0x02, 0xB0 | (length >> 8) as u8, length as u8];
        section.extend_from_slice(&[0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00]);
        for (stream_type, pid) in streams {
            section.extend_from_slice(&[
                *stream_type,
                0xE0 | (pid >> 8) as u8,
                *pid as u8,
                0xF0,
                0x00,
            ]);
        }
        section.extend_from_slice(&[0, 0, 0, 0]);
        section
    }

    #[test]
    fn the_program_map_names_the_codecs() {
        let bytes = [
            packet(0, true, &pat(0x1000)),
            packet(
                0x1000,
                true,
                &pmt(&[(0x15, 0x102), (0x1B, 0x100), (0x0F, 0x101)]),
            ),
        ]
        .concat();
        let streams = ts_program_streams(&bytes).expect("streams");
        assert_eq!(streams.len(), 3);
        let info = known_streams_from_header(InputFormat::MpegTs, &bytes).expect("info");
        assert_eq!(
            info.video.as_ref().map(|video| video.codec.as_str()),
            Some("h264")
        );
        assert!(info.audio_is_adts_aac(), "{info:?}");
        assert_eq!(info.stream_count, 3);

        let audio_only = [
            packet(0, true, &pat(0x20)),
            packet(0x20, true, &pmt(&[(0x0F, 0x101)])),
        ]
        .concat();
        let info = known_streams_from_header(InputFormat::MpegTs, &audio_only).expect("info");
        assert!(!info.has_video() && info.has_audio());
    }

    /// Issue 11, round 2: a program map declaring streams that carry no packet (an AC-3 before
    /// the AAC that plays, a second video, data). Those mapped by finalize are named, and the
    /// streams finalize reads are the ones with packets.
    #[test]
    fn declared_streams_without_packets_are_found_and_left_out() {
        let bytes = [
            packet(0, true, &pat(0x1000)),
            packet(
                0x1000,
                true,
                &pmt(&[
                    (0x1B, 0x100),
                    (0x81, 0x103),
                    (0x0F, 0x101),
                    (0x1B, 0x104),
                    (0x15, 0x105),
                ]),
            ),
            packet(0x100, true, &[0, 0, 1, 0xE0]),
            packet(0x101, false, &[1, 2, 3]),
            packet(0x101, true, &[0, 0, 1, 0xC0]),
        ]
        .concat();
        let without: Vec<u16> = ts_streams_without_packets(&bytes)
            .iter()
            .map(|stream| stream.pid)
            .collect();
        assert_eq!(without, [0x103, 0x104]);
        let info = known_streams_leaving_out(InputFormat::MpegTs, &bytes, &without).expect("info");
        assert!(
            info.audio_is_adts_aac(),
            "the AAC with packets, not the empty AC-3: {info:?}"
        );
        assert_eq!(info.stream_count, 3);
        // Every stream has packets: nothing left out; no program map: nothing known.
        let clean = [
            packet(0, true, &pat(0x20)),
            packet(0x20, true, &pmt(&[(0x0F, 0x101)])),
            packet(0x101, true, &[0, 0, 1, 0xC0]),
        ]
        .concat();
        assert!(ts_streams_without_packets(&clean).is_empty());
        assert!(ts_streams_without_packets(&packet(0x100, true, &[0u8; 10])).is_empty());
    }

    #[test]
    fn no_program_map_means_ask_ffprobe() {
        assert!(
            known_streams_from_header(InputFormat::MpegTs, &packet(0x100, true, &[0u8; 10]))
                .is_none()
        );
        let only_data = [
            packet(0, true, &pat(0x20)),
            packet(0x20, true, &pmt(&[(0x15, 0x101)])),
        ]
        .concat();
        assert!(known_streams_from_header(InputFormat::MpegTs, &only_data).is_none());
        // Hostile lengths do not panic.
        for garbage in [
            packet(0, true, &[0xFF, 0x00]),
            packet(0, true, &[0x00, 0x00, 0xBF, 0xFF]),
            [
                packet(0, true, &pat(0x20)),
                packet(
                    0x20,
                    true,
                    &[0x00, 0x02, 0xBF, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
                ),
            ]
            .concat(),
        ] {
            let _ = known_streams_from_header(InputFormat::MpegTs, &garbage);
        }
        assert!(known_streams_from_header(InputFormat::Flv, b"FLV\x01").is_none());
        assert!(
            known_streams_from_header(InputFormat::Adts, b"")
                .is_some_and(|info| info.audio_is_adts_aac())
        );
    }
}
