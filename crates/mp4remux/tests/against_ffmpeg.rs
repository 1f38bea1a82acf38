//! The native remux against ffmpeg's own `-c copy` remux of the same part, with real tools:
//! ffprobe reads the output (streams, frame counts, durations), `ffmpeg -f null` decodes it with
//! no error, the index is before the media, and the packets (`ffprobe -show_packets`: pts, dts,
//! duration, size, flags, CRC of the data) are the same as ffmpeg's. ffmpeg keeps access unit
//! delimiters and in-band SPS/PPS in the samples and this remuxer does not, so the reference is
//! made with `-bsf:v filter_units=remove_types=7|8|9`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use streambot_mp4remux::{
    Brand, InputRole, Limits, RemuxInput, estimated_index_bytes, remux_to_mp4,
    remux_to_mp4_in_one_pass,
};

fn tools_available() -> bool {
    let available = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !available && std::env::var_os("STREAMBOT_REQUIRE_ALL").is_some() {
        panic!("ffmpeg is required (STREAMBOT_REQUIRE_ALL is set)");
    }
    available
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the tool runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn make_part(path: &Path, lavfi_inputs: &[&str], encode: &[&str]) {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-y"]);
    for input in lavfi_inputs {
        command.args(["-f", "lavfi", "-i", input]);
    }
    command.args(encode).args(["-f", "mpegts"]).arg(path);
    run(&mut command);
}

fn ffmpeg_reference(inputs: &[&Path], maps: &[&str], output: &Path) {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-y"]);
    for input in inputs {
        command.args(["-f", "mpegts", "-i"]).arg(input);
    }
    for map in maps {
        command.args(["-map", map]);
    }
    command
        .args(["-c", "copy", "-bsf:a", "aac_adtstoasc"])
        .args(["-bsf:v", "filter_units=remove_types=7|8|9"])
        .args(["-avoid_negative_ts", "make_zero", "-f", "mp4"])
        .arg(output);
    run(&mut command);
}

/// Per stream, in order: "pts,dts,duration,size,flags,crc".
fn packets(path: &Path) -> Vec<Vec<String>> {
    let text = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("packet=stream_index,pts,dts,duration,size,flags,data_hash")
        .args(["-show_data_hash", "CRC32", "-of", "csv=p=0"])
        .arg(path));
    let mut streams: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        let (index, rest) = line.split_once(',').expect("a packet line");
        let index: usize = index.parse().expect("stream index");
        if streams.len() <= index {
            streams.resize(index + 1, Vec::new());
        }
        streams[index].push(rest.to_owned());
    }
    streams
}

/// (codec, frames, duration seconds, start seconds) per stream.
fn streams(path: &Path) -> Vec<(String, u64, f64, f64)> {
    let text = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_name,nb_frames,duration,start_time")
        .args(["-of", "csv=p=0"])
        .arg(path));
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (
                fields[0].to_owned(),
                fields[3].parse().expect("frames"),
                fields[2].parse().expect("duration"),
                fields[1].parse().expect("start"),
            )
        })
        .collect()
}

fn decodes_cleanly(path: &Path) {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success());
    assert!(
        output.stderr.is_empty(),
        "decode errors: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn moov_before_mdat(path: &Path) -> bool {
    let bytes = std::fs::read(path).expect("read");
    let find = |name: &[u8]| bytes.windows(4).position(|window| window == name);
    matches!((find(b"moov"), find(b"mdat")), (Some(moov), Some(mdat)) if moov < mdat)
}

struct Case {
    directory: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Case {
            directory: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// The one-pass remux (index reserved for a minute), checked against the two-pass one: the
    /// same packets, whichever way the chunks were laid out.
    fn native(&self, inputs: &[(&Path, InputRole)], brand: Brand) -> PathBuf {
        let output = self.path("native.mp4");
        let two_pass = self.path("native-two-pass.mp4");
        let inputs: Vec<RemuxInput> = inputs
            .iter()
            .map(|(path, role)| RemuxInput {
                path: path.to_path_buf(),
                role: *role,
            })
            .collect();
        let not_cancelled = AtomicBool::new(false);
        remux_to_mp4_in_one_pass(
            &inputs,
            &output,
            brand,
            Limits::default(),
            estimated_index_bytes(60.0),
            &not_cancelled,
        )
        .expect("remuxed natively in one pass");
        remux_to_mp4(&inputs, &two_pass, brand, Limits::default(), &not_cancelled)
            .expect("remuxed natively in two passes");
        assert!(moov_before_mdat(&two_pass));
        assert_eq!(packets(&output), packets(&two_pass));
        output
    }
}

const MAIN: InputRole = InputRole::Main { take_audio: true };
const MP4: Brand = Brand::Mp4;

/// Everything equal to ffmpeg's remux: packets, streams; decodes; index first.
fn assert_same_as_ffmpeg(case: &Case, part: &Path) {
    let native = case.native(&[(part, MAIN)], MP4);
    let reference = case.path("reference.mp4");
    ffmpeg_reference(&[part], &["0:v?", "0:a?"], &reference);
    assert!(moov_before_mdat(&native));
    decodes_cleanly(&native);
    assert_eq!(streams(&native), streams(&reference));
    assert_eq!(packets(&native), packets(&reference));
}

#[test]
fn b_frames_and_44_1_khz_audio_match_ffmpeg_sample_for_sample() {
    if !tools_available() {
        return;
    }
    let case = Case::new();
    let part = case.path("main-0001.ts");
    make_part(
        &part,
        &["testsrc2=size=192x108:rate=25", "sine=sample_rate=44100"],
        &["-t", "6", "-c:v", "libx264", "-g", "50", "-c:a", "aac"],
    );
    assert_same_as_ffmpeg(&case, &part);
}

#[test]
fn no_b_frames_and_48_khz_stereo_match_ffmpeg() {
    if !tools_available() {
        return;
    }
    let case = Case::new();
    let part = case.path("main-0001.ts");
    make_part(
        &part,
        &["testsrc2=size=192x108:rate=30", "sine=sample_rate=48000"],
        &[
            "-t", "5", "-c:v", "libx264", "-bf", "0", "-g", "60", "-c:a", "aac", "-ac", "2",
        ],
    );
    assert_same_as_ffmpeg(&case, &part);
}

#[test]
fn video_only_and_audio_only_parts_match_ffmpeg() {
    if !tools_available() {
        return;
    }
    let case = Case::new();
    let video = case.path("video-0001.ts");
    make_part(
        &video,
        &["testsrc2=size=192x108:rate=25"],
        &["-t", "4", "-c:v", "libx264"],
    );
    assert_same_as_ffmpeg(&case, &video);
    let audio = case.path("audio-0001.ts");
    make_part(
        &audio,
        &["sine=sample_rate=44100"],
        &["-t", "4", "-c:a", "aac"],
    );
    let native = case.native(&[(&audio, MAIN)], Brand::M4a);
    let reference = case.path("reference.mp4");
    ffmpeg_reference(&[&audio], &["0:a?"], &reference);
    decodes_cleanly(&native);
    assert!(moov_before_mdat(&native));
    assert_eq!(packets(&native), packets(&reference));
}

#[test]
fn timestamps_across_the_33_bit_wrap_match_ffmpeg() {
    if !tools_available() {
        return;
    }
    let case = Case::new();
    let part = case.path("main-0001.ts");
    make_part(
        &part,
        &["testsrc2=size=192x108:rate=25", "sine"],
        &[
            "-t",
            "8",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-output_ts_offset",
            "95440",
        ],
    );
    assert_same_as_ffmpeg(&case, &part);
}

/// A real HLS segment (the corpus's only TS): same samples; ffmpeg gives its last video sample
/// no duration (the stream has no frame rate in its SPS), the native remux the previous one's.
#[test]
fn a_real_hls_segment_matches_ffmpeg_but_the_last_video_duration() {
    if !tools_available() {
        return;
    }
    let case = Case::new();
    let part = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/exoplayer-cea608-sd-hls0000000000.ts");
    let native = case.native(&[(&part, MAIN)], MP4);
    let reference = case.path("reference.mp4");
    ffmpeg_reference(&[&part], &["0:v?", "0:a?"], &reference);
    decodes_cleanly(&native);
    assert!(moov_before_mdat(&native));
    let mut native_packets = packets(&native);
    let mut reference_packets = packets(&reference);
    let strip_last_duration = |stream: &mut Vec<String>| {
        if let Some(last) = stream.last_mut() {
            let mut fields: Vec<String> = last.split(',').map(str::to_owned).collect();
            fields[2] = String::new();
            *last = fields.join(",");
        }
    };
    strip_last_duration(&mut native_packets[0]);
    strip_last_duration(&mut reference_packets[0]);
    assert_eq!(native_packets, reference_packets);
    let native_streams = streams(&native);
    let reference_streams = streams(&reference);
    assert_eq!(native_streams.len(), 2);
    for (native, reference) in native_streams.iter().zip(&reference_streams) {
        assert_eq!(
            (&native.0, native.1, native.3),
            (&reference.0, reference.1, reference.3)
        );
        assert!(
            (native.2 - reference.2).abs() <= 0.05,
            "{native:?} {reference:?}"
        );
    }
}

/// The part and a separately recorded audio rendition (the audio starts 0.3 s later on the
/// stream clock): the video is ffmpeg's sample for sample, the audio frames are ffmpeg's, and
/// the audio keeps its place on the common clock (ffmpeg moves each input to zero on its own).
#[test]
fn an_audio_rendition_keeps_its_place_on_the_common_clock() {
    if !tools_available() {
        return;
    }
    let case = Case::new();
    let video = case.path("main-0001.ts");
    make_part(
        &video,
        &["testsrc2=size=192x108:rate=25"],
        &["-t", "6", "-c:v", "libx264"],
    );
    let audio = case.path("audio-0001.ts");
    make_part(
        &audio,
        &["sine=sample_rate=48000"],
        &["-t", "6", "-c:a", "aac", "-output_ts_offset", "0.3"],
    );
    let native = case.native(
        &[
            (&video, InputRole::Main { take_audio: false }),
            (&audio, InputRole::AudioRendition),
        ],
        MP4,
    );
    let reference = case.path("reference.mp4");
    ffmpeg_reference(&[&video, &audio], &["0:v", "1:a"], &reference);
    decodes_cleanly(&native);
    assert!(moov_before_mdat(&native));
    let native_packets = packets(&native);
    let reference_packets = packets(&reference);
    assert_eq!(native_packets[0], reference_packets[0]);
    let sizes_and_data = |stream: &[String]| -> Vec<String> {
        stream
            .iter()
            .map(|packet| {
                let fields: Vec<&str> = packet.split(',').collect();
                format!("{},{}", fields[3], fields[5])
            })
            .collect()
    };
    assert_eq!(
        sizes_and_data(&native_packets[1]),
        sizes_and_data(&reference_packets[1])
    );
    // On the stream clock: video's first PTS 1.4 s (ffmpeg's mpegts default), audio's first
    // 1.7 s less AAC's 1024-sample priming; the video starts at its first DTS (B-frames: 2
    // frames earlier), so audio − video in the output = the same difference.
    let clock = |path: &Path, stream: &str| -> f64 {
        run(Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", stream, "-show_entries"])
            .args(["stream=start_time", "-of", "default=nw=1:nk=1"])
            .arg(path))
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("start time")
    };
    let input_difference = clock(&audio, "a") - clock(&video, "v");
    let output_difference = clock(&native, "a") - clock(&native, "v");
    assert!(
        (input_difference - output_difference).abs() < 0.002,
        "input {input_difference}, output {output_difference}"
    );
}

/// A reservation too small for the index: the one-pass remux falls back to two passes, and the
/// file is the same.
#[test]
fn a_reservation_too_small_falls_back_to_two_passes() {
    if !tools_available() {
        return;
    }
    let case = Case::new();
    let part = case.path("main-0001.ts");
    make_part(
        &part,
        &["testsrc2=size=192x108:rate=25", "sine"],
        &["-t", "20", "-c:v", "libx264", "-c:a", "aac"],
    );
    let output = case.path("small.mp4");
    let inputs = [RemuxInput {
        path: part.clone(),
        role: MAIN,
    }];
    remux_to_mp4_in_one_pass(
        &inputs,
        &output,
        MP4,
        Limits::default(),
        2048,
        &AtomicBool::new(false),
    )
    .expect("remuxed");
    assert!(moov_before_mdat(&output));
    let bytes = std::fs::read(&output).expect("read");
    assert!(
        !bytes.windows(4).any(|window| window == b"free"),
        "two-pass layout"
    );
    let reference = case.native(&[(&part, MAIN)], MP4);
    assert_eq!(packets(&output), packets(&reference));
}
