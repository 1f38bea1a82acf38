//! The async operations with the real ffmpeg/ffprobe on media made at test time.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    arguments, assert_close, assert_duration_about, binaries, corpus_directory, make_test_media,
    make_test_ts,
};
use streambot_ffmpeg::argv::remux_arguments;
use streambot_ffmpeg::run::run_ffmpeg;
use streambot_ffmpeg::{
    AudioOnlyOptions, ConcatOptions, FfmpegBinaries, FfmpegError, FfmpegProcess, FfmpegRunner,
    InputFormat, MediaInput, OperationTimeouts, OutputContainer, OutputExpectations, RemuxOptions,
    SplitOptions, StdoutMode, TranscodeOptions, TranscodePreset, check_output, moov_before_mdat,
};
use tokio::sync::watch;

fn runner() -> FfmpegRunner {
    FfmpegRunner::new(binaries())
}

#[tokio::test]
async fn versions_of_both_binaries() {
    let versions = runner()
        .versions()
        .await
        .expect("ffmpeg and ffprobe installed");
    assert!(
        versions.ffmpeg.starts_with("ffmpeg version"),
        "{versions:?}"
    );
    assert!(
        versions.ffprobe.starts_with("ffprobe version"),
        "{versions:?}"
    );
}

#[tokio::test]
async fn remux_ts_to_faststart_mp4_that_plays() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = make_test_ts(directory.path(), "part-0001.ts").await;
    let runner = runner();
    let input_info = runner.probe(&input).await.expect("probe input");
    assert!(
        input_info.is_mpegts() && input_info.audio_is_adts_aac(),
        "{input_info:?}"
    );

    let output = directory.path().join("part-0001.mp4");
    let options = RemuxOptions {
        audio_is_adts_aac: input_info.audio_is_adts_aac(),
        ..RemuxOptions::new(OutputContainer::Mp4)
    };
    let (progress_sender, progress_receiver) = watch::channel(Default::default());
    let finished = runner
        .remux(&input, &output, &options, Some(&progress_sender))
        .await
        .expect("remux");
    assert_eq!(finished.path, output);
    assert!(finished.size_bytes > 10_000);
    assert!(
        progress_receiver.borrow().ended,
        "the last progress block is the end"
    );
    assert!(
        finished
            .last_progress
            .is_some_and(|progress| progress.ended)
    );
    assert!(!directory.path().join("part-0001.mp4.partial").exists());
    assert!(input.exists(), "the input is kept");

    let info = runner.probe(&output).await.expect("probe output");
    assert!(info.container_is("mp4"), "{info:?}");
    assert_eq!(
        info.video.as_ref().map(|video| video.codec.as_str()),
        Some("h264")
    );
    assert_eq!(
        info.video.as_ref().map(|video| (video.width, video.height)),
        Some((160, 90))
    );
    assert_eq!(
        info.audio.as_ref().map(|audio| audio.codec.as_str()),
        Some("aac")
    );
    assert_duration_about(&info, 4);
    check_output(
        &output,
        &info,
        &OutputExpectations {
            require_video: true,
            require_audio: true,
            expected_duration: Some(Duration::from_secs(4)),
            duration_tolerance: Duration::from_secs(1),
        },
    )
    .expect("passes the finalize check");
    assert!(moov_before_mdat(&output).expect("box walk"), "faststart");
}

#[tokio::test]
async fn remux_to_mkv_and_ts() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = make_test_ts(directory.path(), "in.ts").await;
    let runner = runner();
    for container in [OutputContainer::Mkv, OutputContainer::Ts] {
        let output = directory
            .path()
            .join(format!("out.{}", container.extension()));
        let options = RemuxOptions {
            audio_is_adts_aac: true,
            ..RemuxOptions::new(container)
        };
        runner
            .remux(&input, &output, &options, None)
            .await
            .expect("remux");
        let info = runner.probe(&output).await.expect("probe");
        assert!(
            info.has_video() && info.has_audio(),
            "{container:?}: {info:?}"
        );
        assert_duration_about(&info, 4);
    }
}

#[tokio::test]
async fn thumbnail_is_a_jpeg_of_at_most_320_pixels() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = make_test_ts(directory.path(), "in.ts").await;
    let runner = runner();
    let thumbnail = runner
        .thumbnail(&input, &directory.path().join("thumb.jpg"))
        .await
        .expect("thumbnail");
    assert_eq!(
        (thumbnail.width, thumbnail.height),
        (160, 90),
        "never upscaled"
    );
    let bytes = std::fs::read(&thumbnail.path).expect("read thumbnail");
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "JPEG magic");
    assert_eq!(thumbnail.size_bytes, bytes.len() as u64);

    // A large input is scaled down so that the long side is 320.
    let large_input = make_test_media(directory.path(), "large.ts", 1, "1280x720").await;
    let large_thumbnail = runner
        .thumbnail(&large_input, &directory.path().join("large.jpg"))
        .await
        .expect("thumbnail");
    assert_eq!((large_thumbnail.width, large_thumbnail.height), (320, 180));
}

#[tokio::test]
async fn transcode_to_90p_and_smaller() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = make_test_ts(directory.path(), "in.ts").await;
    let runner = runner();
    let mut preset = TranscodePreset::new(72, 30, 48);
    preset.preset = "ultrafast".to_owned();
    let output = directory.path().join("small.mp4");
    runner
        .transcode(
            &input,
            &output,
            &TranscodeOptions::new(OutputContainer::Mp4, preset),
            None,
        )
        .await
        .expect("transcode");
    let info = runner.probe(&output).await.expect("probe");
    let video = info.video.as_ref().expect("video");
    assert_eq!(
        (video.codec.as_str(), video.width, video.height),
        ("h264", 128, 72)
    );
    assert_eq!(
        info.audio.as_ref().map(|audio| audio.codec.as_str()),
        Some("aac")
    );

    // A cap above the source height keeps the source size (90p stays 90p).
    let same = directory.path().join("same.mp4");
    runner
        .transcode(
            &input,
            &same,
            &TranscodeOptions::new(OutputContainer::Mp4, TranscodePreset::low()),
            None,
        )
        .await
        .expect("transcode");
    let same_info = runner.probe(&same).await.expect("probe");
    assert_eq!(same_info.video.map(|video| video.height), Some(90));
    assert!(moov_before_mdat(&same).expect("box walk"));
}

#[tokio::test]
async fn audio_only_m4a_has_only_aac() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = make_test_ts(directory.path(), "in.ts").await;
    let runner = runner();
    let output = directory.path().join("audio.m4a");
    runner
        .audio_only(
            &input,
            &output,
            &AudioOnlyOptions {
                source_audio_is_adts: true,
                ..AudioOnlyOptions::default()
            },
            None,
        )
        .await
        .expect("audio only");
    let info = runner.probe(&output).await.expect("probe");
    assert!(!info.has_video(), "{info:?}");
    assert_eq!(info.stream_count, 1);
    assert_eq!(
        info.audio.as_ref().map(|audio| audio.codec.as_str()),
        Some("aac")
    );
    assert_duration_about(&info, 4);
}

#[tokio::test]
async fn corrupt_input_is_a_clear_error_and_the_source_is_kept() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = directory.path().join("part-0001.ts");
    // Deterministic noise, no sync bytes: not MPEG-TS, not anything.
    let noise: Vec<u8> = (0u32..200_000)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .map(|byte| if byte == 0x47 { 0x48 } else { byte })
        .collect();
    std::fs::write(&input, &noise).expect("write noise");
    let runner = runner();
    let output = directory.path().join("part-0001.mp4");
    let error = runner
        .remux(&input, &output, &RemuxOptions::default(), None)
        .await
        .expect_err("noise is not media");
    // Refused before ffmpeg runs: its first bytes are no known format.
    assert!(matches!(error, FfmpegError::NotMedia { .. }), "{error:?}");
    assert!(!error.is_retryable());
    // Garbage behind MPEG-TS sync bytes gets past the first look; ffmpeg then says why.
    let disguised = directory.path().join("part-0002.ts");
    let mut disguised_noise = noise.clone();
    for packet in disguised_noise.chunks_mut(188) {
        packet[0] = 0x47;
    }
    std::fs::write(&disguised, &disguised_noise).expect("write disguised noise");
    let error = runner
        .remux(&disguised, &output, &RemuxOptions::default(), None)
        .await
        .expect_err("noise is not media");
    assert!(
        matches!(error, FfmpegError::InvalidInput { .. }),
        "{error:?}"
    );
    assert!(
        error.user_message().contains("not valid media"),
        "{}",
        error.user_message()
    );
    assert!(!error.is_retryable());
    assert!(error.stderr_tail().is_some_and(|tail| !tail.is_empty()));
    assert_eq!(std::fs::read(&input).expect("source kept"), noise);
    assert!(!output.exists());
    assert!(!directory.path().join("part-0001.mp4.partial").exists());

    let probe_error = runner.probe(&input).await.expect_err("noise is not media");
    assert!(
        matches!(probe_error, FfmpegError::NotMedia { .. }),
        "{probe_error:?}"
    );
    let probe_error = runner
        .probe(&disguised)
        .await
        .expect_err("noise is not media");
    assert!(
        matches!(probe_error, FfmpegError::InvalidInput { .. }),
        "{probe_error:?}"
    );
}

#[tokio::test]
async fn missing_input_is_input_not_found() {
    let directory = tempfile::tempdir().expect("tempdir");
    let error = runner()
        .remux(
            &directory.path().join("gone.ts"),
            &directory.path().join("x.mp4"),
            &RemuxOptions::default(),
            None,
        )
        .await
        .expect_err("no input");
    assert!(
        matches!(error, FfmpegError::InputNotFound { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn missing_binary_is_binary_not_found() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = directory.path().join("in.ts");
    let mut one_packet = vec![0u8; 188];
    one_packet[0] = 0x47;
    std::fs::write(&input, one_packet).expect("write");
    let runner = FfmpegRunner::new(FfmpegBinaries::new(
        "/nonexistent/ffmpeg",
        "/nonexistent/ffprobe",
    ));
    let error = runner
        .remux(
            &input,
            &directory.path().join("out.mp4"),
            &RemuxOptions::default(),
            None,
        )
        .await
        .expect_err("no ffmpeg");
    match &error {
        FfmpegError::BinaryNotFound { binary, hint } => {
            assert_eq!(binary, &PathBuf::from("/nonexistent/ffmpeg"));
            assert!(hint.contains("apt-get install ffmpeg"));
        }
        other => panic!("expected BinaryNotFound, got {other:?}"),
    }
    assert!(error.to_string().contains("/nonexistent/ffmpeg"));
    let probe_error = runner.probe(&input).await.expect_err("no ffprobe");
    assert!(
        matches!(probe_error, FfmpegError::BinaryNotFound { .. }),
        "{probe_error:?}"
    );
    assert!(matches!(
        runner.versions().await,
        Err(FfmpegError::BinaryNotFound { .. })
    ));
}

#[tokio::test]
async fn killed_remux_leaves_the_input_untouched() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = make_test_ts(directory.path(), "part-0001.ts").await;
    let before = std::fs::read(&input).expect("read input");
    let output = directory.path().join("part-0001.mp4");
    let arguments = remux_arguments(
        &MediaInput::new(&input, InputFormat::MpegTs),
        &output,
        &RemuxOptions::default(),
    );
    let mut process =
        FfmpegProcess::spawn(&binaries().ffmpeg, &arguments, StdoutMode::Null).expect("spawn");
    // Stop it where it stands, then SIGKILL the group: whatever it was doing, it does no more.
    process.pause().expect("SIGSTOP");
    let killed = process.kill().await.expect("SIGKILL");
    assert!(!killed.success());
    assert_eq!(std::fs::read(&input).expect("input kept"), before);

    // Through the runner: a run that exceeds its time limit is killed; no half output remains.
    let impatient = FfmpegRunner::new(binaries())
        .with_timeouts(OperationTimeouts::all(Duration::from_millis(1)));
    let error = impatient
        .remux(&input, &output, &RemuxOptions::default(), None)
        .await
        .expect_err("1 ms is too short");
    assert!(matches!(error, FfmpegError::TimedOut { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(!output.exists());
    assert!(!directory.path().join("part-0001.mp4.partial").exists());
    assert_eq!(std::fs::read(&input).expect("input kept"), before);
}

#[tokio::test]
async fn concat_joins_ts_parts_without_loss() {
    let directory = tempfile::tempdir().expect("tempdir");
    let first = make_test_ts(directory.path(), "part-0001.ts").await;
    let second = make_test_ts(directory.path(), "part-0002.ts").await;
    let runner = runner();
    let output = directory.path().join("joined.mp4");
    let options = ConcatOptions {
        audio_is_adts_aac: true,
        ..ConcatOptions::new(OutputContainer::Mp4)
    };
    runner
        .concat(&[first, second], &output, &options, None)
        .await
        .expect("concat");
    let info = runner.probe(&output).await.expect("probe");
    assert!(info.has_video() && info.has_audio());
    assert_close(
        info.duration.expect("duration"),
        Duration::from_secs(8),
        Duration::from_millis(400),
    );
    assert!(
        !directory.path().join("joined.mp4.concat.txt").exists(),
        "list file removed"
    );
}

#[tokio::test]
async fn split_pieces_concatenate_back_to_the_whole() {
    let directory = tempfile::tempdir().expect("tempdir");
    let input = make_test_media(directory.path(), "recording.ts", 8, "160x90").await;
    let runner = runner();
    let options = SplitOptions {
        container: OutputContainer::Mp4,
        piece_seconds: 3,
        audio_is_adts_aac: true,
    };
    let pieces = runner
        .split(&input, directory.path(), "recording", &options, None)
        .await
        .expect("split");
    assert_eq!(pieces.len(), 3, "8 s in 3 s pieces: {pieces:?}");
    let mut total = Duration::ZERO;
    for piece in &pieces {
        let info = runner.probe(piece).await.expect("piece probes");
        assert!(info.has_video() && info.has_audio(), "{piece:?}: {info:?}");
        assert!(moov_before_mdat(piece).expect("box walk"), "{piece:?}");
        total += info.duration.expect("duration");
    }
    assert_close(total, Duration::from_secs(8), Duration::from_millis(400));

    let joined = directory.path().join("joined.mp4");
    runner
        .concat(
            &pieces,
            &joined,
            &ConcatOptions::new(OutputContainer::Mp4),
            None,
        )
        .await
        .expect("concat");
    let joined_info = runner.probe(&joined).await.expect("probe");
    assert_duration_about(&joined_info, 8);

    // A second split with longer pieces leaves no stale third piece behind.
    let longer = SplitOptions {
        piece_seconds: 5,
        ..options
    };
    let fewer = runner
        .split(&input, directory.path(), "recording", &longer, None)
        .await
        .expect("split again");
    assert_eq!(fewer.len(), 2, "{fewer:?}");
}

/// The CMAF media with separate audio from the corpus: video init + segments and audio init +
/// segments each joined into one file, then muxed together with `audio_input`.
#[tokio::test]
async fn cmaf_video_and_separate_audio_rendition_mux_into_one_mp4() {
    let Some(corpus) = corpus_directory() else {
        streambot_testkit::requirements::skip_or_fail(
            "the corpus",
            "set STREAMBOT_CORPUS_DIR to /work/shared/corpus",
        );
        return;
    };
    let media = corpus.join("media/exoplayer-media3/cmaf/multi-segment");
    if !media.join("video_init.mp4").is_file() || !media.join("audio_init.mp4").is_file() {
        streambot_testkit::requirements::skip_or_fail(
            "the corpus's CMAF media (media/exoplayer-media3/cmaf/multi-segment)",
            "set STREAMBOT_CORPUS_DIR to a full corpus",
        );
        return;
    }
    let started = Instant::now();
    let directory = tempfile::tempdir().expect("tempdir");
    let join_rendition = |prefix: &str| -> PathBuf {
        let mut bytes = std::fs::read(media.join(format!("{prefix}_init.mp4"))).expect("init");
        for number in 1.. {
            match std::fs::read(media.join(format!("{prefix}_{number}.m4s"))) {
                Ok(segment) => bytes.extend_from_slice(&segment),
                Err(_) => break,
            }
        }
        let path = directory.path().join(format!("{prefix}.mp4"));
        std::fs::write(&path, bytes).expect("write rendition");
        path
    };
    let video = join_rendition("video");
    let audio = join_rendition("audio");
    let runner = runner();
    let video_info = runner.probe(&video).await.expect("probe video");
    let audio_info = runner.probe(&audio).await.expect("probe audio");
    assert!(
        video_info.has_video() && !video_info.has_audio(),
        "{video_info:?}"
    );
    assert!(
        audio_info.has_audio() && !audio_info.has_video(),
        "{audio_info:?}"
    );

    let output = directory.path().join("muxed.mp4");
    let options = RemuxOptions {
        audio_input: Some(MediaInput::new(&audio, InputFormat::Mp4)),
        audio_is_adts_aac: audio_info.audio_is_adts_aac(),
        ..RemuxOptions::new(OutputContainer::Mp4)
    };
    runner
        .remux(&video, &output, &options, None)
        .await
        .expect("remux with audio input");
    let info = runner.probe(&output).await.expect("probe muxed");
    assert_eq!(info.stream_count, 2, "{info:?}");
    assert_eq!(
        info.video
            .as_ref()
            .map(|video| (video.codec.as_str(), video.width, video.height)),
        Some(("h264", 640, 360))
    );
    assert_eq!(
        info.audio.as_ref().map(|audio| audio.codec.as_str()),
        Some("aac")
    );
    let expected = video_info.duration.expect("video duration");
    assert_close(
        info.duration.expect("duration"),
        expected,
        Duration::from_millis(300),
    );
    assert!(moov_before_mdat(&output).expect("box walk"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// `-f framemd5` of the decoded first video stream of `file`: one hash per frame.
async fn frame_hashes(file: &Path, format_arguments: &[&str]) -> Vec<String> {
    let mut argv = arguments(&["-hide_banner", "-loglevel", "error"]);
    argv.extend(arguments(format_arguments));
    argv.extend(arguments(&["-i"]));
    argv.push(file.as_os_str().to_os_string());
    argv.extend(arguments(&["-map", "0:v:0", "-f", "framemd5", "pipe:1"]));
    let mut process =
        FfmpegProcess::spawn(&binaries().ffmpeg, &argv, StdoutMode::Piped).expect("spawn");
    let mut stdout = process.take_stdout().expect("stdout");
    let mut text = String::new();
    let (_, finished) = tokio::join!(
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text),
        process.wait_with_timeout(Duration::from_secs(30), "framemd5")
    );
    let _ = finished.expect("framemd5 runs");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit(',').next().map(|hash| hash.trim().to_owned()))
        .collect()
}

/// Issue 11: the attack itself, against the argv builders with the part's check bypassed. The
/// seed's argv (no input format) reads the other file through an HLS playlist; ours refuses.
#[tokio::test]
async fn a_playlist_part_cannot_pull_another_file_into_the_output() {
    let directory = tempfile::tempdir().expect("tempdir");
    let other_directory = directory.path().join("other");
    let job_directory = directory.path().join("job");
    std::fs::create_dir_all(&other_directory).expect("other");
    std::fs::create_dir_all(&job_directory).expect("job");
    let other = make_test_ts(&other_directory, "x.ts").await;
    let other_hashes = frame_hashes(&other, &[]).await;
    assert!(!other_hashes.is_empty());
    let part = job_directory.join("main-0001.ts");
    for body in [
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nfile://{}\n#EXT-X-ENDLIST\n",
            other.display()
        ),
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n../other/x.ts\n#EXT-X-ENDLIST\n".to_owned(),
    ] {
        std::fs::write(&part, &body).expect("hostile part");
        // Control: the seed's arguments (no -f) do read the other file.
        let seed_output = job_directory.join("seed.mp4");
        let seed_arguments = arguments(&[
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-protocol_whitelist",
            "file,pipe",
            "-i",
        ])
        .into_iter()
        .chain([format!("file:{}", part.display()).into()])
        .chain(arguments(&["-c", "copy", "-f", "mp4"]))
        .chain([seed_output.clone().into_os_string()])
        .collect::<Vec<_>>();
        let (_, _) = run_ffmpeg(
            &binaries().ffmpeg,
            &seed_arguments,
            "seed",
            Duration::from_secs(30),
            None,
        )
        .await
        .expect("runs");
        if seed_output.exists() {
            let stolen = frame_hashes(&seed_output, &[]).await;
            assert!(
                stolen.iter().any(|hash| other_hashes.contains(hash)),
                "the control should show the attack"
            );
            std::fs::remove_file(&seed_output).expect("remove");
        }

        // Ours: the part named as MPEG-TS, only the mpegts demuxer, only files.
        let output = job_directory.join("recording-0001.mp4");
        let ours = remux_arguments(
            &MediaInput::new(&part, InputFormat::MpegTs),
            &output,
            &RemuxOptions::default(),
        );
        let (finished, _) = run_ffmpeg(
            &binaries().ffmpeg,
            &ours,
            "remux",
            Duration::from_secs(30),
            None,
        )
        .await
        .expect("runs");
        assert!(!finished.success(), "{body}");
        if output.exists() {
            let hashes = frame_hashes(&output, &["-f", "mov"]).await;
            assert!(hashes.iter().all(|hash| !other_hashes.contains(hash)));
        }
        // And the runner refuses it before ffmpeg runs, with the reason.
        let runner = FfmpegRunner::new(binaries());
        let error = runner
            .remux(&part, &output, &RemuxOptions::default(), None)
            .await
            .expect_err("not media");
        assert!(matches!(error, FfmpegError::NotMedia { .. }), "{error:?}");
        let error = runner.probe(&part).await.expect_err("not media");
        assert!(error.to_string().contains("HLS playlist"), "{error}");
        assert_eq!(std::fs::read_to_string(&part).expect("kept"), body);
    }
}
