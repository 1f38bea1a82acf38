//! Hostile input: no byte sequence panics the remuxer; every failure is a clean refusal; the
//! index is bounded.

use rand::{Rng, SeedableRng, rngs::StdRng};
use streambot_mp4remux::{Brand, InputRole, Limits, remux_bytes};

const FIXTURE: &[u8] = include_bytes!("fixtures/exoplayer-cea608-sd-hls0000000000.ts");
const MAIN: InputRole = InputRole::Main { take_audio: true };
const MP4: Brand = Brand::Mp4;

fn remux(bytes: &[u8]) -> Result<Vec<u8>, streambot_mp4remux::Unsupported> {
    remux_bytes(&[(bytes, MAIN)], MP4, Limits::default())
}

#[test]
fn the_fixture_remuxes() {
    let output = remux(FIXTURE).expect("remuxed");
    assert_eq!(&output[4..8], b"ftyp");
    assert!(
        output.windows(4).position(|w| w == b"moov") < output.windows(4).position(|w| w == b"mdat")
    );
}

#[test]
fn empty_random_and_garbage_inputs_are_refused() {
    assert!(remux(&[]).is_err());
    assert!(remux(&[0x47; 187]).is_err());
    assert!(remux(&[0x47; 188 * 4]).is_err());
    let mut random = StdRng::seed_from_u64(18);
    for length in [1usize, 188, 188 * 3, 5000, 188 * 100] {
        let bytes: Vec<u8> = (0..length).map(|_| random.random()).collect();
        assert!(remux(&bytes).is_err());
        // Random packets with sync bytes.
        let mut synced = bytes.clone();
        for packet in synced.chunks_mut(188) {
            packet[0] = 0x47;
        }
        let _ = remux(&synced);
    }
}

#[test]
fn truncations_and_corruptions_never_panic() {
    let mut random = StdRng::seed_from_u64(0x5EED);
    for _ in 0..200 {
        let cut = random.random_range(0..FIXTURE.len());
        let _ = remux(&FIXTURE[..cut]);
    }
    for round in 0..300 {
        let mut bytes = FIXTURE.to_vec();
        let flips = 1 + round % 20;
        for _ in 0..flips {
            let position = random.random_range(0..bytes.len());
            bytes[position] = random.random();
        }
        let _ = remux(&bytes);
        // Corrupt only payloads (keep sync): the parser goes deeper.
        let mut deep = FIXTURE.to_vec();
        for _ in 0..flips {
            let packet = random.random_range(0..deep.len() / 188);
            let offset = random.random_range(4..188);
            deep[packet * 188 + offset] = random.random();
        }
        let _ = remux(&deep);
        // Shuffle two packets.
        let mut swapped = FIXTURE.to_vec();
        let a = random.random_range(0..swapped.len() / 188) * 188;
        let b = random.random_range(0..swapped.len() / 188) * 188;
        for index in 0..188 {
            swapped.swap(a + index, b + index);
        }
        let _ = remux(&swapped);
    }
}

/// A TS packet with a payload on `pid`.
fn packet(pid: u16, start: bool, continuity: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![
        0x47,
        (if start { 0x40 } else { 0 }) | (pid >> 8) as u8,
        pid as u8,
        0x10 | (continuity & 0x0F),
    ];
    bytes.extend_from_slice(&payload[..payload.len().min(184)]);
    bytes.resize(188, 0xFF);
    bytes
}

fn pat_and_pmt(stream_type: u8) -> Vec<u8> {
    let pat = [
        0x00, 0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0, 0, 0, 0,
    ];
    let pmt = [
        0x00,
        0x02,
        0xB0,
        0x12,
        0x00,
        0x01,
        0xC1,
        0x00,
        0x00,
        0xE1,
        0x00,
        0xF0,
        0x00,
        stream_type,
        0xE1,
        0x00,
        0xF0,
        0x00,
        0,
        0,
        0,
        0,
    ];
    let mut bytes = packet(0, true, 0, &pat);
    bytes.extend(packet(0x1000, true, 0, &pmt));
    bytes
}

#[test]
fn unsupported_codecs_and_missing_program_maps_are_refused_with_a_reason() {
    let hevc = pat_and_pmt(0x24);
    let refusal = remux(&hevc).expect_err("refused");
    assert!(refusal.reason.contains("HEVC"), "{refusal}");
    let mp3 = pat_and_pmt(0x03);
    assert!(remux(&mp3).expect_err("refused").reason.contains("MP3"));
    // The fixture without its PAT: no program map is ever found.
    let without_pat: Vec<u8> = FIXTURE
        .chunks(188)
        .filter(|packet| {
            packet.len() == 188 && ((u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2])) != 0
        })
        .flatten()
        .copied()
        .collect();
    assert!(
        remux(&without_pat)
            .expect_err("refused")
            .reason
            .contains("program map")
    );
}

#[test]
fn a_huge_pes_is_refused_not_buffered() {
    let mut bytes = pat_and_pmt(0x1B);
    // A video PES that never ends: 9 MiB of continuation packets.
    let header = [
        0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1, 0, 0, 0, 1, 0x65,
    ];
    bytes.extend(packet(0x100, true, 0, &header));
    for index in 0..(9 * 1024 * 1024 / 184) {
        bytes.extend(packet(0x100, false, (index + 1) as u8, &[0x11; 184]));
    }
    let refusal = remux(&bytes).expect_err("refused");
    assert!(refusal.reason.contains("PES packet over"), "{refusal}");
}

#[test]
fn absurd_timestamps_are_refused() {
    // Rewrite every video PES's PTS in the fixture to jump by ~1 hour halfway through.
    let mut bytes = FIXTURE.to_vec();
    let packets = bytes.len() / 188;
    for index in packets / 2..packets {
        let packet = &mut bytes[index * 188..index * 188 + 188];
        let pid = (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]);
        if packet[1] & 0x40 == 0 || pid == 0 {
            continue;
        }
        let mut offset = 4;
        if packet[3] & 0x20 != 0 {
            offset += 1 + usize::from(packet[4]);
        }
        if offset + 14 > 188 || packet[offset..offset + 3] != [0, 0, 1] {
            continue;
        }
        // Bump the top bits of the PTS (and DTS when present).
        packet[offset + 9] ^= 0x08;
        if packet[offset + 7] >> 6 == 3 {
            packet[offset + 14] ^= 0x08;
        }
    }
    let refusal = remux(&bytes).expect_err("refused");
    assert!(refusal.reason.contains("jump"), "{refusal}");
}

#[test]
fn the_index_is_capped() {
    let limits = Limits {
        maximum_samples: 10,
        ..Limits::default()
    };
    let refusal = remux_bytes(&[(FIXTURE, MAIN)], MP4, limits).expect_err("refused");
    assert!(refusal.reason.contains("index cap"), "{refusal}");
}

/// A cancelled remux stops between two reads and leaves no output; the input is untouched.
#[test]
fn a_cancelled_remux_leaves_nothing() {
    use std::sync::atomic::AtomicBool;
    use streambot_mp4remux::{RemuxError, RemuxInput, remux_to_mp4, remux_to_mp4_in_one_pass};
    let directory = tempfile::tempdir().expect("tempdir");
    let part = directory.path().join("main-0001.ts");
    std::fs::write(&part, FIXTURE).expect("part");
    let output = directory.path().join("recording-0001.mp4.partial");
    let inputs = [RemuxInput {
        path: part.clone(),
        role: MAIN,
    }];
    let cancelled = AtomicBool::new(true);
    let one_pass =
        remux_to_mp4_in_one_pass(&inputs, &output, MP4, Limits::default(), 65536, &cancelled);
    assert!(
        matches!(one_pass, Err(RemuxError::Cancelled)),
        "{one_pass:?}"
    );
    assert!(!output.exists());
    let two_pass = remux_to_mp4(&inputs, &output, MP4, Limits::default(), &cancelled);
    assert!(
        matches!(two_pass, Err(RemuxError::Cancelled)),
        "{two_pass:?}"
    );
    assert!(!output.exists());
    assert_eq!(std::fs::read(&part).expect("part"), FIXTURE);
    // Not cancelled: written, and an input that is not media leaves no output either.
    let running = AtomicBool::new(false);
    remux_to_mp4_in_one_pass(&inputs, &output, MP4, Limits::default(), 65536, &running)
        .expect("remuxed");
    assert!(output.exists());
    std::fs::write(&part, b"#EXTM3U\n").expect("not media");
    let refused =
        remux_to_mp4_in_one_pass(&inputs, &output, MP4, Limits::default(), 65536, &running);
    assert!(
        matches!(refused, Err(RemuxError::Unsupported(_))),
        "{refused:?}"
    );
    assert!(!output.exists());
}
