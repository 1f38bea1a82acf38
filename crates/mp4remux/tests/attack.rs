//! Attacks on the native remuxer (hostile parts): each test is an input that once gave a file
//! different from ffmpeg's `-c copy` remux, or cost too much, or endangered the part; the remuxer
//! now declines it (ffmpeg remuxes) or handles it as ffmpeg does.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use streambot_mp4remux::h264::{ParameterSets, parse_sps};
use streambot_mp4remux::scan::{VideoSample, VideoScan};
use streambot_mp4remux::{
    Brand, InputRole, InputSummary, Limits, RemuxError, RemuxInput, Unsupported,
    estimated_index_bytes, plan_output, remux_bytes, remux_to_mp4, remux_to_mp4_in_one_pass,
};

const FIXTURE: &[u8] = include_bytes!("fixtures/exoplayer-cea608-sd-hls0000000000.ts");
const MAIN: InputRole = InputRole::Main { take_audio: true };
/// The fixture's program: video on 0x101, AAC on 0x102.
const VIDEO: u16 = 0x101;
const AUDIO: u16 = 0x102;

fn remux(bytes: &[u8]) -> Result<Vec<u8>, Unsupported> {
    remux_bytes(&[(bytes, MAIN)], Brand::Mp4, Limits::default())
}

fn declined_because(bytes: &[u8], reason: &str) {
    let refusal = remux(bytes).expect_err("declined");
    assert!(refusal.reason.contains(reason), "{refusal}");
}

// --- A small MPEG-TS toolkit over whole 188-byte packets. ---

fn pid_of(packet: &[u8]) -> u16 {
    (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2])
}

fn starts_a_unit(packet: &[u8]) -> bool {
    packet[1] & 0x40 != 0
}

fn payload_offset(packet: &[u8]) -> usize {
    if packet[3] & 0x20 != 0 {
        5 + usize::from(packet[4])
    } else {
        4
    }
}

fn split_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.chunks_exact(188).map(<[u8]>::to_vec).collect()
}

/// The PES packets of `pid`: (index of the first packet, indices of all its packets, bytes).
fn pes_packets(packets: &[Vec<u8>], pid: u16) -> Vec<(usize, Vec<usize>, Vec<u8>)> {
    let mut found: Vec<(usize, Vec<usize>, Vec<u8>)> = Vec::new();
    for (index, packet) in packets.iter().enumerate() {
        if pid_of(packet) != pid || packet[3] & 0x10 == 0 {
            continue;
        }
        let payload = &packet[payload_offset(packet)..];
        if starts_a_unit(packet) {
            found.push((index, vec![index], payload.to_vec()));
        } else if let Some(last) = found.last_mut() {
            last.1.push(index);
            last.2.extend_from_slice(payload);
        }
    }
    found
}

/// Packets of one PES packet (stuffing in an adaptation field of the last one).
fn packetize(pid: u16, pes: &[u8], continuity: &mut u8) -> Vec<Vec<u8>> {
    packetize_in_chunks(pid, pes, continuity, 184)
}

/// Packets of one PES packet carrying `chunk` bytes each (the rest adaptation field stuffing:
/// 183 bytes make an adaptation field of length 0, 1 byte one of length 182).
fn packetize_in_chunks(pid: u16, pes: &[u8], continuity: &mut u8, chunk: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    for (number, chunk) in pes.chunks(chunk).enumerate() {
        let mut packet = vec![
            0x47,
            (if number == 0 { 0x40 } else { 0 }) | (pid >> 8) as u8,
            pid as u8,
            0x10 | (*continuity & 0x0F),
        ];
        *continuity = continuity.wrapping_add(1);
        if chunk.len() < 184 {
            packet[3] |= 0x20;
            let stuffing = 184 - chunk.len();
            packet.push((stuffing - 1) as u8);
            if stuffing >= 2 {
                packet.push(0);
                packet.resize(4 + stuffing, 0xFF);
            }
        }
        packet.extend_from_slice(chunk);
        packets.push(packet);
    }
    packets
}

/// Rewrite every PES packet of `pid` with `change(index, pes)` (`None` drops it), packets
/// renumbered; everything else kept in place.
fn rewrite_pes(
    bytes: &[u8],
    pid: u16,
    mut change: impl FnMut(usize, Vec<u8>) -> Option<Vec<u8>>,
) -> Vec<u8> {
    repacketize(bytes, pid, |number, pes, continuity| {
        change(number, pes).map(|new_pes| packetize(pid, &new_pes, continuity))
    })
}

/// Replace the packets of every PES packet of `pid` with `packets(index, pes, continuity)`.
fn repacketize(
    bytes: &[u8],
    pid: u16,
    mut packets_of: impl FnMut(usize, Vec<u8>, &mut u8) -> Option<Vec<Vec<u8>>>,
) -> Vec<u8> {
    let packets = split_packets(bytes);
    let mut replaced = vec![false; packets.len()];
    let mut inserted: Vec<Option<Vec<Vec<u8>>>> = vec![None; packets.len()];
    let mut continuity = 0u8;
    for (number, (first, indices, pes)) in pes_packets(&packets, pid).into_iter().enumerate() {
        for index in indices {
            replaced[index] = true;
        }
        inserted[first] = packets_of(number, pes, &mut continuity);
    }
    let mut output = Vec::new();
    for (index, packet) in packets.iter().enumerate() {
        if let Some(new_packets) = &inserted[index] {
            new_packets
                .iter()
                .for_each(|new| output.extend_from_slice(new));
        }
        if !replaced[index] {
            output.extend_from_slice(packet);
        }
    }
    output
}

fn elementary_stream(pes: &[u8]) -> &[u8] {
    &pes[9 + usize::from(pes[8])..]
}

fn read_timestamp(bytes: &[u8]) -> u64 {
    (u64::from(bytes[0] >> 1) & 7) << 30
        | u64::from(bytes[1]) << 22
        | u64::from(bytes[2] >> 1) << 15
        | u64::from(bytes[3]) << 7
        | u64::from(bytes[4] >> 1)
}

fn write_timestamp(bytes: &mut [u8], value: u64) {
    let value = value & ((1 << 33) - 1);
    bytes[0] = (bytes[0] & 0xF0) | (((value >> 30) as u8 & 7) << 1) | 1;
    bytes[1] = (value >> 22) as u8;
    bytes[2] = (((value >> 15) as u8) << 1) | 1;
    bytes[3] = (value >> 7) as u8;
    bytes[4] = ((value as u8) << 1) | 1;
}

/// Every PTS (and DTS) of `pid` moved by `offset` ticks of 90 kHz (mod 2^33).
fn shift_timestamps(bytes: &[u8], pid: u16, offset: u64) -> Vec<u8> {
    rewrite_pes(bytes, pid, |_, mut pes| {
        let flags = pes[7] >> 6;
        for (present, position) in [(flags & 2 != 0, 9), (flags == 3, 14)] {
            if present {
                let value = read_timestamp(&pes[position..]).wrapping_add(offset);
                write_timestamp(&mut pes[position..position + 5], value);
            }
        }
        Some(pes)
    })
}

#[test]
fn the_toolkit_rewrites_the_fixture_without_changing_the_remux() {
    let original = remux(FIXTURE).expect("remuxed");
    let rewritten = rewrite_pes(FIXTURE, VIDEO, |_, pes| Some(pes));
    let rewritten = rewrite_pes(&rewritten, AUDIO, |_, pes| Some(pes));
    assert_eq!(remux(&rewritten).expect("remuxed"), original);
}

// --- Finding: two pictures in one PES packet. ---

/// ffmpeg's parser splits a PES packet holding two access units into two samples; the remuxer
/// made one sample of two pictures (decode errors, a frame fewer). Declined now.
#[test]
fn two_pictures_in_one_pes_packet_are_declined() {
    let mut held: Option<Vec<u8>> = None;
    let merged = rewrite_pes(FIXTURE, VIDEO, |index, pes| match index {
        10 => {
            held = Some(pes);
            None
        }
        11 => {
            let mut first = held.take().expect("held");
            first.extend_from_slice(elementary_stream(&pes));
            first[4] = 0;
            first[5] = 0;
            Some(first)
        }
        _ => Some(pes),
    });
    declined_because(&merged, "more than one picture");
    // An SEI (or an access unit delimiter) after the slices starts the next access unit too.
    for trailer in [
        &[0, 0, 1, 0x06, 0x05, 0x01, 0x00, 0x80][..],
        &[0, 0, 1, 0x09, 0xF0],
    ] {
        let trailing = rewrite_pes(FIXTURE, VIDEO, |index, mut pes| {
            if index == 10 {
                pes.extend_from_slice(trailer);
                pes[4] = 0;
                pes[5] = 0;
            }
            Some(pes)
        });
        declined_because(&trailing, "more than one picture");
    }
    // A slice whose first macroblock is not after the previous slice's starts a picture too
    // (ffmpeg's parser): slices at macroblocks 0, 5, then 3.
    let reordered = rewrite_pes(FIXTURE, VIDEO, |index, mut pes| {
        if index == 10 {
            pes.extend_from_slice(&[0, 0, 1, 0x41, 0x30, 0x80, 0, 0, 1, 0x41, 0x20, 0x80]);
            pes[4] = 0;
            pes[5] = 0;
        }
        Some(pes)
    });
    declined_because(&reordered, "more than one picture");
    // Filler data and an end of sequence after the slices belong to the access unit.
    let filler = rewrite_pes(FIXTURE, VIDEO, |_, mut pes| {
        pes.extend_from_slice(&[0, 0, 1, 0x0C, 0xFF, 0xFF, 0x80, 0, 0, 1, 0x0A]);
        pes[4] = 0;
        pes[5] = 0;
        Some(pes)
    });
    remux(&filler).expect("remuxed");
}

// --- Finding: a packet repeating the continuity counter with other bytes. ---

/// The standard allows a packet to be sent twice (same counter, same bytes): the copy is
/// dropped. A packet with the counter of the one before it but other bytes was silently dropped
/// too (ffmpeg keeps its bytes): data lost without a word. Declined now.
#[test]
fn a_repeated_counter_with_other_bytes_is_declined_an_exact_duplicate_is_dropped() {
    let packets = split_packets(FIXTURE);
    let (_, indices, _) = pes_packets(&packets, VIDEO)
        .into_iter()
        .find(|(_, indices, _)| indices.len() > 3)
        .expect("a long video PES");
    let target = indices[1];
    let with = |extra: Vec<u8>| -> Vec<u8> {
        let mut output = Vec::new();
        for (index, packet) in packets.iter().enumerate() {
            output.extend_from_slice(packet);
            if index == target {
                output.extend_from_slice(&extra);
            }
        }
        output
    };
    let duplicate = with(packets[target].clone());
    assert_eq!(
        remux(&duplicate).expect("remuxed"),
        remux(FIXTURE).expect("remuxed")
    );
    let mut impostor = packets[target].clone();
    impostor[100] ^= 0xFF;
    declined_because(&with(impostor), "repeated continuity counter");
}

// --- Finding: many streams multiplied the PES buffer. ---

fn program_with_streams(streams: &[(u8, u16)]) -> Vec<u8> {
    let pat = [
        0x00, 0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0, 0, 0, 0,
    ];
    let mut pmt = vec![
        0x00, 0x02, 0xB0, 0, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00,
    ];
    for &(stream_type, pid) in streams {
        pmt.extend_from_slice(&[stream_type, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0x00]);
    }
    pmt[3] = (pmt.len() - 4 + 4) as u8;
    pmt.extend_from_slice(&[0, 0, 0, 0]);
    let mut bytes = Vec::new();
    for (pid, section) in [(0u16, &pat[..]), (0x1000, &pmt[..])] {
        let mut packet = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10];
        packet.extend_from_slice(section);
        packet.resize(188, 0xFF);
        bytes.extend(packet);
    }
    bytes
}

/// A program map of 32 video/audio streams, each with a PES packet just under the 8 MiB limit,
/// interleaved: 256 MiB held (265 MB resident measured). All PES packets being assembled now
/// share one bound.
#[test]
fn many_streams_share_one_pes_buffer_bound() {
    let pids: Vec<u16> = (0..32).map(|index| 0x100 + index).collect();
    let streams: Vec<(u8, u16)> = pids
        .iter()
        .enumerate()
        .map(|(index, &pid)| (if index % 2 == 0 { 0x1B } else { 0x0F }, pid))
        .collect();
    let mut bytes = program_with_streams(&streams);
    let packets_per_stream = 2 * 1024 * 1024 / 184;
    for round in 0..packets_per_stream {
        for (index, &pid) in pids.iter().enumerate() {
            let mut packet = vec![
                0x47,
                (pid >> 8) as u8,
                pid as u8,
                0x10 | (round & 0x0F) as u8,
            ];
            if round == 0 {
                packet[1] |= 0x40;
                let stream_id = if index % 2 == 0 { 0xE0 } else { 0xC0 };
                packet.extend_from_slice(&[0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5]);
                packet.extend_from_slice(&[0x21, 0, 1, 0, 1]);
            }
            packet.resize(188, 0);
            bytes.extend(packet);
        }
    }
    declined_because(&bytes, "together");
}

// --- Finding: audio and video hours apart. ---

/// ffmpeg moves an input's clock when a stream's first packet is more than 10 s away from the
/// input's last one ("inter stream timestamp discontinuity"): audio written 5 hours (or half the
/// 33-bit range) after the video comes out next to it. The remuxer kept the timestamps: a file
/// of 5 (or 13) hours with an empty edit, the picture or the sound at its very end. Declined now.
#[test]
fn audio_and_video_hours_apart_are_declined() {
    const HOUR: u64 = 3600 * 90_000;
    for (pid, offset) in [
        (AUDIO, 5 * HOUR),
        (AUDIO, (1 << 33) - 5 * HOUR),
        (AUDIO, 1 << 32),
        (VIDEO, 20 * 90_000),
    ] {
        let shifted = shift_timestamps(FIXTURE, pid, offset);
        declined_because(&shifted, "away from the others");
    }
    // 9 s apart: ffmpeg keeps that too.
    remux(&shift_timestamps(FIXTURE, AUDIO, 9 * 90_000)).expect("remuxed");
}

// --- Finding: an output path that is the part. ---

/// Both ways of writing a file: two passes, and one pass with the index reserved.
fn remux_file(input: &Path, output: &Path, one_pass: bool) -> Result<(), RemuxError> {
    let inputs = [RemuxInput {
        path: input.to_path_buf(),
        role: MAIN,
    }];
    let not_cancelled = AtomicBool::new(false);
    if one_pass {
        remux_to_mp4_in_one_pass(
            &inputs,
            output,
            Brand::Mp4,
            Limits::default(),
            estimated_index_bytes(60.0),
            &not_cancelled,
        )
    } else {
        remux_to_mp4(
            &inputs,
            output,
            Brand::Mp4,
            Limits::default(),
            &not_cancelled,
        )
    }
    .map(|_| ())
}

/// The output was opened with truncation after the first pass (following a symbolic link), and
/// removed on failure: an output path naming the part (itself, a link to it, a hard link)
/// emptied the part and then deleted it. Now refused before anything is opened for writing,
/// and an existing link at the output path is replaced, not written through.
#[test]
fn an_output_path_naming_the_part_leaves_the_part_intact() {
    for one_pass in [false, true] {
        output_path_checks(one_pass);
    }
}

fn output_path_checks(one_pass: bool) {
    let directory = tempfile::tempdir().expect("tempdir");
    let part = directory.path().join("part.ts");
    std::fs::write(&part, FIXTURE).expect("write");
    let symbolic = directory.path().join("part.mp4.partial");
    std::os::unix::fs::symlink(&part, &symbolic).expect("symlink");
    let hard = directory.path().join("hard.mp4");
    std::fs::hard_link(&part, &hard).expect("hard link");
    for output in [&part, &symbolic, &hard] {
        let error = remux_file(&part, output, one_pass).expect_err("refused");
        assert!(
            error.to_string().contains("output path is an input"),
            "{error}"
        );
        assert_eq!(std::fs::read(&part).expect("read"), FIXTURE);
    }
    // A link to another file: the link is replaced by the output, its target left alone.
    let other = directory.path().join("other.txt");
    std::fs::write(&other, b"keep").expect("write");
    let link = directory.path().join("linked.mp4");
    std::os::unix::fs::symlink(&other, &link).expect("symlink");
    remux_file(&part, &link, one_pass).expect("remuxed");
    assert_eq!(std::fs::read(&other).expect("read"), b"keep");
    assert!(
        !std::fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(&std::fs::read(&link).expect("read")[4..8], b"ftyp");
    // A failed remux removes only what it created: an existing output named by a failing
    // input is not deleted before the remux begins writing (two passes; one pass writes from
    // the start).
    if one_pass {
        return;
    }
    let garbage = directory.path().join("garbage.ts");
    std::fs::write(&garbage, [0u8; 188 * 4]).expect("write");
    let kept = directory.path().join("kept.mp4");
    std::fs::write(&kept, b"previous").expect("write");
    remux_file(&garbage, &kept, one_pass).expect_err("refused");
    assert_eq!(std::fs::read(&kept).expect("read"), b"previous");
}

// --- Offsets over 4 GiB (co64), planned without writing anything. ---

fn video_summary(samples: usize, sample_bytes: u32) -> InputSummary {
    // 160x90 High profile SPS of a libx264 stream, and a PPS.
    let sps: Vec<u8> = (0..25)
        .map(|index| {
            u8::from_str_radix(
                &"6764000bacd9428df93011000003000100000300320f142996"[index * 2..index * 2 + 2],
                16,
            )
            .expect("hex")
        })
        .collect();
    let parameter_sets = ParameterSets {
        sequence: Some(parse_sps(&sps).expect("sps")),
        sps: Some(sps),
        pps: vec![(0, vec![0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0])],
    };
    InputSummary {
        role: MAIN,
        video: Some(VideoScan {
            pid: 0x100,
            parameter_sets,
            samples: (0..samples)
                .map(|index| VideoSample {
                    dts: 3000 * index as i64,
                    composition_offset: 0,
                    size: sample_bytes,
                    sync: index % 60 == 0,
                })
                .collect(),
            dropped_leading: 0,
        }),
        audio: None,
        start_time: Some(0),
        packets: 0,
    }
}

fn find_box<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let position = bytes.windows(4).position(|window| window == kind)?;
    let size = u32::from_be_bytes(bytes[position - 4..position].try_into().ok()?) as usize;
    bytes.get(position - 4..position - 4 + size)
}

#[test]
fn offsets_past_4_gib_use_co64_and_a_64_bit_mdat() {
    // 2,200 samples of 2 MB: 4.4 GB of media.
    let plan = plan_output(&[video_summary(2_200, 2_000_000)], Brand::Mp4).expect("planned");
    assert!(plan.use_64_bit_offsets);
    let header = &plan.header;
    assert!(find_box(header, b"stco").is_none());
    let co64 = find_box(header, b"co64").expect("co64");
    let chunks = &plan.tracks[0].chunks;
    assert_eq!(
        u32::from_be_bytes(co64[12..16].try_into().expect("count")) as usize,
        chunks.len()
    );
    let mut expected = header.len() as u64;
    for (index, chunk) in chunks.iter().enumerate() {
        let written =
            u64::from_be_bytes(co64[16 + 8 * index..24 + 8 * index].try_into().expect("8"));
        assert_eq!(written, chunk.offset);
        assert_eq!(chunk.offset, expected);
        expected += chunk.bytes;
    }
    assert_eq!(plan.total_bytes, expected);
    assert!(plan.total_bytes > u64::from(u32::MAX));
    // The mdat header: size 1, then the 64-bit size of the box (header included).
    let mdat = &header[header.len() - 16..];
    assert_eq!(&mdat[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
    assert_eq!(
        u64::from_be_bytes(mdat[8..16].try_into().expect("8")),
        plan.total_bytes - (header.len() as u64 - 16)
    );
    // Just under 4 GiB: 32-bit offsets and mdat size.
    let plan = plan_output(&[video_summary(2_000, 2_000_000)], Brand::Mp4).expect("planned");
    assert!(!plan.use_64_bit_offsets);
    assert!(find_box(&plan.header, b"stco").is_some());
    let mdat = &plan.header[plan.header.len() - 8..];
    assert_eq!(&mdat[4..8], b"mdat");
    assert_eq!(
        u64::from(u32::from_be_bytes(mdat[..4].try_into().expect("4"))),
        plan.total_bytes - (plan.header.len() as u64 - 8)
    );
}

// --- Checked, no finding: odd adaptation fields, program map changes. ---

/// Adaptation fields of length 0 (a packet of 183 payload bytes), 182 (1 byte), and 183 (no
/// payload at all) around the payload: the samples are the same. Longer than the packet: declined.
#[test]
fn adaptation_fields_of_any_length_leave_the_samples_alone() {
    let original = remux(FIXTURE).expect("remuxed");
    for chunk in [183, 1, 97] {
        let output = repacketize(FIXTURE, VIDEO, |_, pes, continuity| {
            let mut new_packets = packetize_in_chunks(VIDEO, &pes, continuity, chunk);
            // And a packet of adaptation field only (length 183, no payload) in between: it does
            // not count for the continuity counter.
            let mut empty = vec![
                0x47,
                (VIDEO >> 8) as u8,
                VIDEO as u8,
                0x20 | (*continuity & 0x0F),
                183,
            ];
            empty.resize(188, 0xFF);
            new_packets.insert(1.min(new_packets.len()), empty);
            Some(new_packets)
        });
        assert_eq!(
            remux(&output).expect("remuxed"),
            original,
            "chunks of {chunk}"
        );
    }
    // An adaptation field of 184 bytes (past the packet's end) on a payload packet.
    let mut packets = split_packets(FIXTURE);
    let (_, indices, _) = pes_packets(&packets, VIDEO)
        .into_iter()
        .find(|(_, indices, _)| indices.len() > 1)
        .expect("a video PES of two packets");
    let packet = &mut packets[indices[1]];
    packet[3] |= 0x20;
    packet[4] = 184;
    declined_because(&packets.concat(), "adaptation field longer");
}

/// A program map that changes mid-part (the video becomes HEVC, a stream is added) is declined:
/// ffmpeg follows it.
#[test]
fn a_program_map_that_changes_mid_part_is_declined() {
    let mut bytes = FIXTURE.to_vec();
    let half = bytes.len() / 188 / 2 * 188;
    let map = |video_type: u8, extra: Option<(u8, u16)>| -> Vec<u8> {
        let mut streams = vec![(video_type, VIDEO), (0x0F, AUDIO)];
        streams.extend(extra);
        // The program map packet of `program_with_streams` (PID 0x1000 there; the fixture's is 0x100).
        let mut packet = program_with_streams(&streams)[188..].to_vec();
        packet[1] = 0x40 | 0x01;
        packet[2] = 0x00;
        packet[3] = 0x10 | 0x05;
        packet
    };
    let mut hevc = bytes.clone();
    hevc.splice(half..half, map(0x24, None));
    declined_because(&hevc, "HEVC");
    bytes.splice(half..half, map(0x1B, Some((0x0F, 0x103))));
    declined_because(&bytes, "program map changed");
}

// --- Finding: what ffmpeg's parser gives to the access unit before. ---

/// ffmpeg's H.264 parser splits the stream at start codes, not at PES packets: bytes before a
/// PES packet's first start code, or a first NAL unit that does not begin an access unit (end of
/// sequence, filler, a slice that is not the picture's first), go to the previous sample. The
/// remuxer dropped the bytes or kept the unit in this sample (samples a few bytes off
/// ffmpeg's, found by corrupting parts at random). Declined now.
#[test]
fn a_pes_packet_that_does_not_begin_an_access_unit_is_declined() {
    let es_start = |pes: &[u8]| 9 + usize::from(pes[8]);
    let garbage = rewrite_pes(FIXTURE, VIDEO, |index, mut pes| {
        if index == 7 {
            let start = es_start(&pes);
            pes.insert(start, 0x7E);
        }
        Some(pes)
    });
    declined_because(&garbage, "before the first start code");
    for first_unit in [
        &[0, 0, 0, 1, 0x0A][..],
        &[0, 0, 0, 1, 0x0C, 0xFF, 0x80],
        &[0, 0, 1, 0x0E, 0x80, 1],
    ] {
        let leading = rewrite_pes(FIXTURE, VIDEO, |index, mut pes| {
            if index == 7 {
                let start = es_start(&pes);
                pes.splice(start..start, first_unit.iter().copied());
            }
            Some(pes)
        });
        declined_because(&leading, "does not begin an access unit");
    }
    // Leading zero bytes are part of a start code.
    let zeros = rewrite_pes(FIXTURE, VIDEO, |_, mut pes| {
        let start = es_start(&pes);
        pes.splice(start..start, [0, 0, 0]);
        Some(pes)
    });
    assert_eq!(
        remux(&zeros).expect("remuxed"),
        remux(FIXTURE).expect("remuxed")
    );
}

// --- Finding: a PES packet longer than its declared length. ---

/// A PES packet whose declared length ends inside a packet's payload was cut there (the rest of
/// the access unit, or the last AAC frame, dropped); ffmpeg keeps those bytes (as the start of
/// another PES packet its parser joins to this one). Declined now. Ending exactly at a packet's
/// end is still followed (ffmpeg skips what comes after, as the remuxer does).
#[test]
fn a_pes_packet_longer_than_its_declared_length_is_declined() {
    let declare = |pes: &mut Vec<u8>, length: usize| {
        pes[4] = (length >> 8) as u8;
        pes[5] = length as u8;
    };
    for (pid, cut) in [(VIDEO, 97usize), (VIDEO, 300), (AUDIO, 20)] {
        let shortened = rewrite_pes(FIXTURE, pid, |index, mut pes| {
            if index == 5 && pes.len() > cut + 6 {
                let length = pes.len() - 6 - cut;
                declare(&mut pes, length);
            }
            Some(pes)
        });
        declined_because(&shortened, "longer than its declared length");
    }
    let exact = rewrite_pes(FIXTURE, VIDEO, |_, mut pes| {
        let length = pes.len() - 6;
        if length < 65_536 {
            declare(&mut pes, length);
        }
        Some(pes)
    });
    assert_eq!(
        remux(&exact).expect("remuxed"),
        remux(FIXTURE).expect("remuxed")
    );
}

// --- Finding: PES packets before the program map. ---

/// ffmpeg looks for the program map first and then demuxes the input from its start, so a PES
/// packet that begins before the map (a map that comes late, or whose first copy is damaged) is
/// in its remux; the remuxer started at the map and left those seconds out (found by damaging a
/// part's first PMT at random). Declined now. Continuation packets before the map (a part that
/// starts inside a PES packet) are left out by both.
#[test]
fn a_pes_packet_before_the_program_map_is_declined() {
    let packets = split_packets(FIXTURE);
    let (program, media): (Vec<usize>, Vec<usize>) =
        (0..packets.len()).partition(|&index| matches!(pid_of(&packets[index]), 0 | 0x100));
    let late_map: Vec<u8> = media[..20]
        .iter()
        .chain(&program)
        .chain(&media[20..])
        .flat_map(|&index| packets[index].clone())
        .collect();
    declined_because(&late_map, "before the program map");
    let continuation = packets
        .iter()
        .find(|packet| pid_of(packet) == VIDEO && !starts_a_unit(packet))
        .expect("a continuation packet");
    let mut early_continuation = continuation.clone();
    early_continuation.extend_from_slice(FIXTURE);
    assert_eq!(
        remux(&early_continuation).expect("remuxed"),
        remux(FIXTURE).expect("remuxed")
    );
}
