//! Finalize with the real ffmpeg: recordings end as playable files with the index first, the audio
//! rendition muxed in, thumbnails Telegram accepts, split parts that add up to the whole, and
//! failures that keep the recorded part.

mod common;

use std::time::Duration;

use streambot_core::{OutputFormat, Quality, RecordingOptions};
use streambot_ffmpeg::{FfmpegBinaries, FfmpegRunner, moov_before_mdat};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::finalize::{FinalizeSettings, finalize_recording};
use streambot_recorder::{RecordingReport, RecordingSettings, record};
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};
use tokio::sync::{mpsc, watch};

fn ffmpeg_available() -> bool {
    // Missing: skipped, or a failure under STREAMBOT_REQUIRE_ALL=1.
    streambot_testkit::requirements::require_or_skip("ffmpeg")
}

async fn record_origin(
    config: OriginConfig,
    url_path: &str,
    quality: Quality,
    adjust: impl FnOnce(&mut RecordingSettings),
) -> (RecordingReport, tempfile::TempDir) {
    let origin = spawn_origin(config).await.expect("origin");
    let directory = tempfile::tempdir().expect("tempdir");
    let mut settings = RecordingSettings::new(directory.path().to_path_buf());
    adjust(&mut settings);
    let options = RecordingOptions {
        quality,
        stall_timeout: Duration::from_secs(20),
        ..RecordingOptions::default()
    };
    let client =
        HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client");
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        record(
            client,
            &origin.url(url_path),
            options,
            settings,
            control,
            events_sender,
        ),
    )
    .await
    .expect("ends");
    assert!(report.succeeded(), "{:?}", report.outcome);
    (report, directory)
}

fn runner() -> FfmpegRunner {
    FfmpegRunner::new(FfmpegBinaries::default())
}

#[tokio::test]
async fn a_recording_with_an_audio_rendition_ends_as_one_playable_mp4() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let config = OriginConfig::new(SegmentKind::MpegTs)
        .with_window_segments(10)
        .with_total_segments(17)
        .with_audio_rendition();
    let (report, directory) = record_origin(config, "/master.m3u8", Quality::Best, |_| {}).await;
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert_eq!(finalized.files.len(), 1);
    let file = &finalized.files[0];
    assert!(
        file.path
            .extension()
            .is_some_and(|extension| extension == "mp4")
    );
    assert!(
        moov_before_mdat(&file.path).expect("readable"),
        "moov must come before mdat"
    );
    assert!(file.has_audio, "the audio rendition is muxed in");
    assert!(
        file.remuxed_in_process,
        "H.264 + AAC in MPEG-TS: no ffmpeg remux"
    );
    let info = runner().probe(&file.path).await.expect("probe");
    assert!(info.has_video() && info.has_audio());
    let ledger_seconds = report.main.as_ref().expect("main").progress.media_seconds;
    assert!(
        (file.duration_seconds - ledger_seconds).abs() <= 1.5,
        "{} vs {ledger_seconds}",
        file.duration_seconds
    );
    let thumbnail = file.thumbnail.as_ref().expect("thumbnail");
    let bytes = std::fs::read(thumbnail).expect("thumbnail file");
    let (width, height) = streambot_ffmpeg::probe::jpeg_dimensions(&bytes).expect("a JPEG");
    assert!(width.max(height) <= 320);
    // The intermediate parts are gone once the check passed.
    assert!(!directory.path().join("main-0001.ts").exists());
    assert!(!directory.path().join("audio-0001.ts").exists());
}

#[tokio::test]
async fn fragmented_mp4_parts_finalize_to_mkv_on_request() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let config = OriginConfig::new(SegmentKind::Fmp4)
        .with_window_segments(10)
        .with_total_segments(14);
    let (report, _directory) =
        record_origin(config, "/live/media.m3u8", Quality::Best, |_| {}).await;
    let settings = FinalizeSettings::new(OutputFormat::Mkv, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert!(
        finalized.files[0]
            .path
            .extension()
            .is_some_and(|extension| extension == "mkv")
    );
}

#[tokio::test]
async fn audio_only_ends_as_m4a() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let config = OriginConfig::new(SegmentKind::MpegTs)
        .with_window_segments(10)
        .with_total_segments(14)
        .with_audio_rendition();
    let (report, _directory) = record_origin(config, "/master.m3u8", Quality::Audio, |_| {}).await;
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Audio);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    let file = &finalized.files[0];
    assert!(
        file.path
            .extension()
            .is_some_and(|extension| extension == "m4a")
    );
    assert!(file.remuxed_in_process, "AAC in MPEG-TS: no ffmpeg remux");
    assert!(moov_before_mdat(&file.path).expect("readable"));
    let info = runner().probe(&file.path).await.expect("probe");
    assert!(info.has_audio() && !info.has_video());
}

#[tokio::test]
async fn split_parts_add_up_to_the_whole_without_overlap() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let config = OriginConfig::new(SegmentKind::MpegTs)
        .with_window_segments(10)
        .with_total_segments(18);
    let (report, _directory) =
        record_origin(config, "/live/media.m3u8", Quality::Best, |settings| {
            settings.maximum_part_seconds = Some(3.0);
        })
        .await;
    let main = report.main.as_ref().expect("main");
    assert!(main.parts.len() >= 3, "{:?}", main.parts);
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert_eq!(finalized.files.len(), main.parts.len());
    let total: f64 = finalized
        .files
        .iter()
        .map(|file| file.duration_seconds)
        .sum();
    assert!(
        (total - main.progress.media_seconds).abs() <= 0.5 * finalized.files.len() as f64,
        "files add up to {total} s, the ledger says {} s",
        main.progress.media_seconds
    );
    for file in &finalized.files {
        assert!(
            file.duration_seconds <= 3.5,
            "{} s part",
            file.duration_seconds
        );
    }
}

#[tokio::test]
async fn a_corrupt_part_keeps_the_part_and_says_why() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let config = OriginConfig::new(SegmentKind::MpegTs)
        .with_window_segments(10)
        .with_total_segments(12);
    let (report, _directory) =
        record_origin(config, "/live/media.m3u8", Quality::Best, |_| {}).await;
    let part = &report.main.as_ref().expect("main").parts[0];
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&part.path, &garbage).expect("overwrite");
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.files.is_empty());
    assert_eq!(finalized.failures.len(), 1);
    assert!(part.path.exists(), "the part must be kept");
    assert_eq!(std::fs::read(&part.path).expect("part"), garbage);
    assert!(!finalized.failures[0].message.is_empty());
}

/// Issue 11: a "segment" whose bytes are a playlist or a manifest naming another job's file. The
/// part is refused before ffmpeg runs (its bytes are not the part's container), it is kept, the
/// failure says why, and no finished file is written.
#[tokio::test]
async fn a_part_that_is_a_playlist_or_manifest_never_reads_another_file() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let config = OriginConfig::new(SegmentKind::MpegTs)
        .with_window_segments(10)
        .with_total_segments(12);
    let (report, directory) =
        record_origin(config, "/live/media.m3u8", Quality::Best, |_| {}).await;
    let part = report.main.as_ref().expect("main").parts[0].clone();
    // Another user's recording, beside this job's directory (both are in the temporary directory).
    let other_directory = tempfile::tempdir().expect("other job");
    let other_file = other_directory.path().join("main-0001.ts");
    std::fs::copy(&part.path, &other_file).expect("other user's part");
    let relative = format!(
        "../{}/main-0001.ts",
        other_directory
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
    );
    let bodies = [
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile://{}\n#EXT-X-ENDLIST\n",
            other_file.display()
        ),
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{relative}\n#EXT-X-ENDLIST\n"),
        format!(
            "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" \
             mediaPresentationDuration=\"PT2S\"><Period><AdaptationSet><Representation id=\"1\" \
             bandwidth=\"1\"><BaseURL>file://{}</BaseURL></Representation></AdaptationSet></Period></MPD>\n",
            other_file.display()
        ),
    ];
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    for body in bodies {
        std::fs::write(&part.path, &body).expect("hostile part");
        let finalized = finalize_recording(&runner(), &report, &settings).await;
        assert!(finalized.files.is_empty(), "{:?}", finalized.files);
        assert_eq!(finalized.failures.len(), 1);
        let failure = &finalized.failures[0];
        assert!(failure.detail.contains("not media"), "{failure:?}");
        assert!(
            failure.message.contains("not audio or video"),
            "{failure:?}"
        );
        assert_eq!(std::fs::read_to_string(&part.path).expect("kept"), body);
        let finished: Vec<_> = std::fs::read_dir(directory.path())
            .expect("listing")
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("recording-")
            })
            .collect();
        assert!(finished.is_empty(), "no finished file: {finished:?}");
        let probe_error = runner()
            .probe(&part.path)
            .await
            .expect_err("a playlist is not probed");
        assert!(
            probe_error.to_string().contains("not media"),
            "{probe_error}"
        );
    }
}

/// Issue 17 item 2: a TS part of `seconds` of 25 fps test media at `size`, its timestamps starting
/// at `start_seconds` (as a part recorded after a pause or an encoder restart would).
fn make_ts_part(path: &std::path::Path, seconds: u32, size: &str, start_seconds: u32) -> u64 {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args([
            "-c:a",
            "aac",
            "-output_ts_offset",
            &start_seconds.to_string(),
        ])
        .args(["-f", "mpegts"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::metadata(path).expect("part").len()
}

fn report_of_parts(
    directory: &std::path::Path,
    parts: Vec<streambot_hls::ledger::PartSummary>,
) -> RecordingReport {
    RecordingReport::of_main_parts(directory, parts)
}

fn ts_part(
    directory: &std::path::Path,
    number: u32,
    size: &str,
    start_seconds: u32,
    reason: streambot_hls::ledger::PartStartReason,
) -> streambot_hls::ledger::PartSummary {
    let path = directory.join(format!("part-{number:04}.ts"));
    let bytes = make_ts_part(&path, 4, size, start_seconds);
    streambot_hls::ledger::PartSummary {
        number,
        path,
        reason,
        bytes,
        segments: 2,
        media_seconds: 4.0,
    }
}

/// (first part number, picture height, parts joined) of every finished file.
fn file_shapes(
    finalized: &streambot_recorder::finalize::FinalizeReport,
) -> Vec<(u32, Option<u32>, Vec<u32>)> {
    finalized
        .files
        .iter()
        .map(|file| {
            (
                file.part_number,
                file.height,
                file.joined_part_numbers.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn parts_with_the_same_streams_around_a_pause_end_as_one_file() {
    use streambot_hls::ledger::PartStartReason;
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    // Two 4 s parts, the second 30 s later on the stream's clock (a pause), then a third after
    // an encoder restart (timestamps from zero again).
    let parts = vec![
        ts_part(directory.path(), 1, "160x90", 10, PartStartReason::First),
        ts_part(directory.path(), 2, "160x90", 44, PartStartReason::Resume),
        ts_part(directory.path(), 3, "160x90", 0, PartStartReason::Restart),
    ];
    let report = report_of_parts(directory.path(), parts.clone());
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert_eq!(finalized.files.len(), 1, "{:?}", finalized.files);
    let file = &finalized.files[0];
    assert_eq!(file.joined_part_numbers, vec![1, 2, 3]);
    // Timestamps continuous: 12 s of media, not the 30 s pause or a restart's jump back.
    assert!(
        (file.duration_seconds - 12.0).abs() < 0.6,
        "{} s",
        file.duration_seconds
    );
    assert!(moov_before_mdat(&file.path).expect("mp4"));
    assert_eq!(common::decode_errors(&file.path), Vec::<String>::new());
    assert!(
        !file.damaged && finalized.all_ok(),
        "{:?}",
        file.decode_check
    );
    for part in &parts {
        assert!(
            !part.path.exists(),
            "the joined parts are removed once checked"
        );
    }
    assert!(!directory.path().join("joined-0001.ts").exists());
}

#[tokio::test]
async fn a_resolution_change_or_the_size_limit_splits_the_file() {
    use streambot_hls::ledger::PartStartReason;
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let parts = vec![
        ts_part(directory.path(), 1, "160x90", 0, PartStartReason::First),
        ts_part(directory.path(), 2, "320x180", 0, PartStartReason::Restart),
        ts_part(directory.path(), 3, "320x180", 4, PartStartReason::Resume),
        ts_part(directory.path(), 4, "320x180", 8, PartStartReason::Resume),
    ];
    let report = report_of_parts(directory.path(), parts.clone());
    let mut settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    // Room for two of the larger parts in one file, not three.
    settings.maximum_joined_bytes = Some(parts[2].bytes + parts[3].bytes + 1024);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    let shapes = file_shapes(&finalized);
    assert_eq!(
        shapes,
        vec![
            (1, Some(90), vec![]),
            (2, Some(180), vec![2, 3]),
            (4, Some(180), vec![]),
        ]
    );
}

/// Issue 17 item 4: a part whose video payload is damaged still remuxes (stream copy), but the
/// finished file does not decode cleanly: it is delivered and reported as damaged, with the count.
#[tokio::test]
async fn a_finished_file_that_does_not_decode_cleanly_is_reported_as_damaged() {
    use streambot_hls::ledger::PartStartReason;
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let clean = ts_part(directory.path(), 1, "160x90", 0, PartStartReason::First);
    let damaged = ts_part(directory.path(), 2, "320x180", 0, PartStartReason::Restart);
    let mut bytes = std::fs::read(&damaged.path).expect("part");
    let packets = bytes.len() / 188;
    // Scramble the payload (not the packet headers) of every other packet in the middle third.
    for packet in (packets / 3..packets * 2 / 3).step_by(2) {
        for byte in &mut bytes[packet * 188 + 12..packet * 188 + 188] {
            *byte = byte.wrapping_mul(31).wrapping_add(7);
        }
    }
    std::fs::write(&damaged.path, &bytes).expect("write");
    let report = report_of_parts(directory.path(), vec![clean, damaged]);
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert_eq!(finalized.files.len(), 2);
    let first = &finalized.files[0];
    assert!(!first.damaged, "{:?}", first.decode_check);
    assert_eq!(
        first.decode_check.as_ref().map(|check| check.error_count),
        Some(0)
    );
    let second = &finalized.files[1];
    assert!(second.damaged);
    let check = second.decode_check.as_ref().expect("checked");
    assert!(check.error_count > 0 && !check.sampled, "{check:?}");
    assert!(!check.first_errors.is_empty());
    assert!(!finalized.all_ok());
    assert_eq!(finalized.damaged_files().count(), 1);
}

/// Issue 17 item 2 for fMP4: one run of ffmpeg's HLS muxer in fMP4 mode (`size`, `seconds` of
/// 25 fps test media with a tone, 2 s segments): its init and segment files, in order.
fn fmp4_packager_run(
    directory: &std::path::Path,
    name: &str,
    size: &str,
    seconds: u32,
) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let folder = directory.join(name);
    std::fs::create_dir_all(&folder).expect("folder");
    let status = std::process::Command::new("ffmpeg")
        .current_dir(&folder)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine=sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
        .args(["-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac"])
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
        ])
        .args(["-hls_segment_filename", "segment-%d.m4s", "live.m3u8"])
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let segments = (0..seconds / 2)
        .map(|index| folder.join(format!("segment-{index}.m4s")))
        .filter(|path| path.exists())
        .collect();
    (folder.join("init.mp4"), segments)
}

/// A part as the recorder writes one from an fMP4 playlist: the init, then the segments.
fn fmp4_part(
    directory: &std::path::Path,
    number: u32,
    init: &std::path::Path,
    segments: &[std::path::PathBuf],
    reason: streambot_hls::ledger::PartStartReason,
) -> streambot_hls::ledger::PartSummary {
    let path = directory.join(format!("part-{number:04}.mp4"));
    let mut bytes = std::fs::read(init).expect("init");
    for segment in segments {
        bytes.extend(std::fs::read(segment).expect("segment"));
    }
    std::fs::write(&path, &bytes).expect("part");
    streambot_hls::ledger::PartSummary {
        number,
        path,
        reason,
        bytes: bytes.len() as u64,
        segments: segments.len() as u64,
        media_seconds: 2.0 * segments.len() as f64,
    }
}

/// The largest step between consecutive packet times of a stream of `file` (`v` or `a`).
fn largest_packet_step(file: &std::path::Path, stream: &str) -> f64 {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=dts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    let times: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().trim_end_matches(',').parse().ok())
        .collect();
    assert!(times.len() > 10, "{} packets", times.len());
    times
        .windows(2)
        .map(|pair| {
            assert!(pair[1] > pair[0], "timestamps go back: {pair:?}");
            pair[1] - pair[0]
        })
        .fold(0.0, f64::max)
}

/// fMP4 parts split by a pause and by a packager restart with the same settings (the same init
/// again, decode times from zero) end as one file with continuous timestamps; the parts after
/// a restart with another encode (another picture size: another init) stay a file of their own.
#[tokio::test]
async fn fmp4_parts_with_the_same_init_end_as_one_file_and_another_encode_splits() {
    use streambot_hls::ledger::PartStartReason;
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (first_init, first_run) = fmp4_packager_run(scratch.path(), "run1", "160x90", 16);
    let (second_init, second_run) = fmp4_packager_run(scratch.path(), "run2", "160x90", 6);
    let (third_init, third_run) = fmp4_packager_run(scratch.path(), "run3", "320x180", 6);
    assert_eq!(
        std::fs::read(&first_init).expect("init"),
        std::fs::read(&second_init).expect("init"),
        "a restart with the same settings writes the same init"
    );
    let parts = vec![
        // From 2 s on the packager's clock (a recording that started mid-stream) ...
        fmp4_part(
            directory.path(),
            1,
            &first_init,
            &first_run[1..3],
            PartStartReason::First,
        ),
        // ... a pause of 4 s ...
        fmp4_part(
            directory.path(),
            2,
            &first_init,
            &first_run[5..7],
            PartStartReason::Resume,
        ),
        // ... a restart with the same settings (decode times from zero again) ...
        fmp4_part(
            directory.path(),
            3,
            &second_init,
            &second_run[0..3],
            PartStartReason::Discontinuity,
        ),
        // ... and one with another encode.
        fmp4_part(
            directory.path(),
            4,
            &third_init,
            &third_run[0..3],
            PartStartReason::InitChanged,
        ),
    ];
    let report = report_of_parts(directory.path(), parts.clone());
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    let shapes = file_shapes(&finalized);
    assert_eq!(
        shapes,
        vec![(1, Some(90), vec![1, 2, 3]), (4, Some(180), vec![])]
    );
    let joined = &finalized.files[0];
    // 7 segments of 2 s: no pause, no jump back at the restart.
    assert!(
        (joined.duration_seconds - 14.0).abs() < 0.6,
        "{} s",
        joined.duration_seconds
    );
    assert!(largest_packet_step(&joined.path, "v") < 0.1);
    assert!(largest_packet_step(&joined.path, "a") < 0.1);
    assert!(moov_before_mdat(&joined.path).expect("mp4"));
    for file in &finalized.files {
        assert_eq!(common::decode_errors(&file.path), Vec::<String>::new());
    }
    assert!(finalized.all_ok(), "{:?}", finalized.files);
    for part in &parts {
        assert!(!part.path.exists(), "the parts are removed once checked");
    }
    assert!(!directory.path().join("joined-0001.mp4").exists());
}

/// An fMP4 part in which the packager restarted without the playlist saying so (the same init,
/// decode times from zero again in the middle of the part): its decode times are made continuous
/// before the remux, so the file has the whole duration and decodes cleanly (before, the remux
/// dropped what came after the jump back and the duration check failed).
#[tokio::test]
async fn an_fmp4_part_whose_decode_times_go_back_is_made_continuous() {
    use streambot_hls::ledger::PartStartReason;
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (init, first_run) = fmp4_packager_run(scratch.path(), "run1", "160x90", 12);
    let (_, second_run) = fmp4_packager_run(scratch.path(), "run2", "160x90", 6);
    let segments: Vec<std::path::PathBuf> = first_run[2..5]
        .iter()
        .chain(&second_run[0..3])
        .cloned()
        .collect();
    let part = fmp4_part(
        directory.path(),
        1,
        &init,
        &segments,
        PartStartReason::First,
    );
    let report = report_of_parts(directory.path(), vec![part]);
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert_eq!(finalized.files.len(), 1);
    let file = &finalized.files[0];
    assert!(
        (file.duration_seconds - 12.0).abs() < 0.6,
        "{} s",
        file.duration_seconds
    );
    assert!(largest_packet_step(&file.path, "v") < 0.1);
    assert!(largest_packet_step(&file.path, "a") < 0.1);
    assert_eq!(common::decode_errors(&file.path), Vec::<String>::new());
    assert!(finalized.all_ok(), "{:?}", file.decode_check);
}

/// A TS part of 4 s with the given codecs (ffmpeg encoder names).
fn make_part_with_codecs(path: &std::path::Path, video: &str, audio: &str) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=192x108:rate=25"])
        .args(["-f", "lavfi", "-i", "sine", "-t", "4"])
        .args(["-c:v", video, "-preset", "ultrafast", "-c:a", audio])
        .args(["-x265-params", "log-level=error", "-f", "mpegts"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
}

/// Issue 18: H.264 + AAC parts are remuxed in process into the same streams and frame counts as
/// ffmpeg makes of them; HEVC or MP3 parts are refused by the native remuxer and ffmpeg remuxes
/// them, as before.
#[tokio::test]
async fn h264_aac_parts_are_remuxed_in_process_and_others_by_ffmpeg() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("libx264", "aac", true),
        ("libx265", "aac", false),
        ("libx264", "libmp3lame", false),
    ];
    for (video, audio, in_process) in cases {
        let mut frames: Vec<Vec<(String, String, String)>> = Vec::new();
        for native_remux in [true, false] {
            let path = directory.path().join("part-0001.ts");
            make_part_with_codecs(&path, video, audio);
            let part = streambot_hls::ledger::PartSummary {
                number: 1,
                bytes: std::fs::metadata(&path).expect("part").len(),
                path,
                reason: streambot_hls::ledger::PartStartReason::First,
                segments: 2,
                media_seconds: 4.0,
            };
            let report = report_of_parts(directory.path(), vec![part]);
            let mut settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
            settings.native_remux = native_remux;
            let finalized = finalize_recording(&runner(), &report, &settings).await;
            assert!(
                finalized.all_ok(),
                "{video}/{audio}: {:?}",
                finalized.failures
            );
            let file = &finalized.files[0];
            assert_eq!(
                file.remuxed_in_process,
                native_remux && in_process,
                "{video}/{audio}"
            );
            assert!(moov_before_mdat(&file.path).expect("readable"));
            let output = std::process::Command::new("ffprobe")
                .args(["-v", "error", "-count_packets", "-show_entries"])
                .args([
                    "stream=codec_name,nb_read_packets,start_time",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&file.path)
                .output()
                .expect("ffprobe");
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            frames.push(
                text.lines()
                    .map(|line| {
                        let fields: Vec<&str> = line.split(',').collect();
                        (
                            fields[0].to_owned(),
                            fields[1].to_owned(),
                            fields[2].to_owned(),
                        )
                    })
                    .collect(),
            );
            let _ = std::fs::remove_file(&file.path);
        }
        assert_eq!(frames[0], frames[1], "{video}/{audio}: native vs ffmpeg");
        assert_eq!(frames[0].len(), 2);
    }
}

/// A file the in-process remux made that fails the check is not the end: it is removed and
/// ffmpeg remuxes the part; when ffmpeg's fails the same check, the part is reported failed and
/// kept as it was (here the ledger says 40 s of a 4 s part: both files fail the duration check).
#[tokio::test]
async fn a_native_file_that_fails_the_check_goes_to_ffmpeg_and_the_part_is_kept() {
    use streambot_hls::ledger::PartStartReason;
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let mut part = ts_part(directory.path(), 1, "160x90", 0, PartStartReason::First);
    part.media_seconds = 40.0;
    let before = std::fs::read(&part.path).expect("part");
    let report = report_of_parts(directory.path(), vec![part.clone()]);
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    assert!(finalized.files.is_empty(), "{:?}", finalized.files);
    assert_eq!(finalized.failures.len(), 1, "{:?}", finalized.failures);
    assert_eq!(std::fs::read(&part.path).expect("part kept"), before);
    let left: Vec<_> = std::fs::read_dir(directory.path())
        .expect("directory")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".mp4") || name.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "no half-made file left: {left:?}");
}

/// Hostile or broken fMP4 parts (cut anywhere, bytes flipped in the boxes) are never joined
/// wrongly and never panic: the join and the continuity pass answer an error or a file, and
/// finalize keeps a part it cannot join on its own.
#[tokio::test]
async fn broken_fmp4_parts_are_refused_by_the_join_without_panicking() {
    use streambot_hls::ledger::PartStartReason;
    use streambot_recorder::fmp4_join::{
        join_fragmented_parts, make_decode_times_continuous, read_fmp4_identity,
    };
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let (init, run) = fmp4_packager_run(scratch.path(), "run", "160x90", 8);
    let good = fmp4_part(scratch.path(), 1, &init, &run, PartStartReason::First);
    let bytes = std::fs::read(&good.path).expect("part");
    let broken_path = scratch.path().join("broken.mp4");
    let output = scratch.path().join("joined.mp4");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for attempt in 0..200 {
        let mut broken = bytes.clone();
        if attempt % 2 == 0 {
            broken.truncate((next() as usize) % bytes.len());
        } else {
            for _ in 0..8 {
                let at = (next() as usize) % broken.len();
                broken[at] = next() as u8;
            }
        }
        std::fs::write(&broken_path, &broken).expect("write");
        let _ = read_fmp4_identity(&broken_path);
        let _ = join_fragmented_parts(&[good.path.as_path(), broken_path.as_path()], &output);
        let _ = make_decode_times_continuous(&broken_path);
    }
    // A part cut in the middle of a fragment beside a good one: never joined; the good part is
    // still finalized.
    let directory = tempfile::tempdir().expect("tempdir");
    let first = fmp4_part(directory.path(), 1, &init, &run, PartStartReason::First);
    let mut second = fmp4_part(
        directory.path(),
        2,
        &init,
        &run,
        PartStartReason::Discontinuity,
    );
    let cut = std::fs::read(&second.path).expect("part");
    std::fs::write(&second.path, &cut[..cut.len() - 1000]).expect("cut");
    second.bytes -= 1000;
    let report = report_of_parts(directory.path(), vec![first, second]);
    let settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
    let finalized = finalize_recording(&runner(), &report, &settings).await;
    let first_file = finalized
        .files
        .iter()
        .find(|file| file.part_number == 1)
        .expect("the good part is finalized");
    assert!(first_file.joined_part_numbers.is_empty());
    assert_eq!(
        common::decode_errors(&first_file.path),
        Vec::<String>::new()
    );
}
