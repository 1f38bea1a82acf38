//! Fuzz target for the native MPEG-TS → MP4 remuxer (`streambot_mp4remux`): any bytes as a part
//! (as they are, and with a sync byte forced at every 188-byte boundary so the demuxer goes past
//! the packet check), alone and as the audio rendition of a second input, within small limits. A
//! panic, an output whose size is not what the plan said, or an output without `moov` before
//! `mdat` is a bug: add the input as a test in `crates/mp4remux/tests/hostile.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streambot_mp4remux::{Brand, InputRole, Limits, remux_bytes};

fn check(output: &[u8]) {
    let find = |name: &[u8]| output.windows(4).position(|window| window == name);
    assert_eq!(output.get(4..8), Some(&b"ftyp"[..]));
    let moov = find(b"moov").expect("a moov");
    let mdat = find(b"mdat").expect("an mdat");
    assert!(moov < mdat);
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        maximum_samples: 5_000,
        ..Limits::default()
    };
    let mut synced = data.to_vec();
    for packet in synced.chunks_mut(188) {
        packet[0] = 0x47;
    }
    for bytes in [data, synced.as_slice()] {
        let main = InputRole::Main { take_audio: true };
        if let Ok(output) = remux_bytes(&[(bytes, main)], Brand::Mp4, limits) {
            check(&output);
        }
        if let Ok(output) = remux_bytes(&[(bytes, InputRole::AudioRendition)], Brand::M4a, limits) {
            check(&output);
        }
        let (first, second) = bytes.split_at(bytes.len() / 376 * 188);
        let video = InputRole::Main { take_audio: false };
        if let Ok(output) = remux_bytes(
            &[(first, video), (second, InputRole::AudioRendition)],
            Brand::Mp4,
            limits,
        ) {
            check(&output);
        }
    }
});
