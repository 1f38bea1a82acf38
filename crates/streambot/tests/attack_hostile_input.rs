//! Attacks (issue 11) on `streambot record` through hostile playlists and bodies, served by a
//! raw-socket origin on 127.0.0.1 (`attack_support`). Tests that pass are regression tests of a
//! defence; `#[ignore = "attack: …"]` tests reproduce a finding (they fail today).

mod attack_support;

use std::path::Path;
use std::time::Duration;

use attack_support::{
    HostileServer, Reply, contains, ffmpeg_available, ledger, part_bytes, record, ts_segments,
    vod_playlist,
};

/// 4 KiB from the middle of fixture segment 50: if this is in a part, another file got in.
fn victim_marker(segments: &[Vec<u8>]) -> Vec<u8> {
    segments[50][10_000..14_096].to_vec()
}

fn clean_segment_route(segments: &[Vec<u8>], path: &str) -> Option<Reply> {
    let rest = path.strip_prefix("/seg-")?;
    let index: usize = rest.split('.').next()?.parse().ok()?;
    segments
        .get(index % 40)
        .map(|bytes| Reply::ts(bytes.clone()))
}

fn assert_no_panic_and_bounded(run: &attack_support::Run, what: &str) {
    assert!(!run.panicked(), "{what}: panicked\n{}", run.stderr);
    assert!(
        !run.timed_out,
        "{what}: still running after {:?}\n{}",
        run.elapsed, run.stderr
    );
}

fn gap_reasons(directory: &Path) -> Vec<(u64, String)> {
    ledger(directory)
        .iter()
        .filter(|entry| entry["state"] == "gap")
        .map(|entry| {
            (
                entry["media_sequence"].as_u64().unwrap_or(u64::MAX),
                entry["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Segment URIs that are not http(s), or climb out of the path, or carry userinfo: nothing but
/// http reaches anything; no byte of a local file (the "other job's" part) reaches the part.
#[tokio::test]
async fn hostile_segment_uris_never_read_local_files() {
    let segments = ts_segments().await;
    let victim_directory = tempfile::tempdir().expect("tempdir");
    let victim = victim_directory.path().join("main-0001.ts");
    std::fs::write(&victim, &segments[50]).expect("victim part");
    let victim_text = victim.to_string_lossy().into_owned();
    let uris = vec![
        "/seg-0.ts".to_string(),
        format!("../../../../../../..{victim_text}"),
        format!("file://{victim_text}"),
        "data:video/mp2t;base64,R0AAEAAA".to_string(),
        "gopher://127.0.0.1:70/x".to_string(),
        "ftp://127.0.0.1/x.ts".to_string(),
        "javascript:alert(1)".to_string(),
        format!("file:{victim_text}"),
        "/seg-1.ts".to_string(),
        "/seg-2.ts".to_string(),
    ];
    let playlist = vod_playlist("", &uris);
    let route_segments = segments.clone();
    let origin = HostileServer::start(move |path| {
        if path == "/live.m3u8" {
            return Reply::playlist(playlist.clone());
        }
        if path.ends_with("/main-0001.ts") {
            // The `../` URI arrives here, as plain http to the origin: answer a clean segment.
            return Reply::ts(route_segments[3].clone());
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/live.m3u8"),
        "10s",
        output.path(),
        &["--no-finalize"],
        true,
        Duration::from_secs(45),
    )
    .await;
    assert_no_panic_and_bounded(&run, "hostile URIs");
    let part = part_bytes(output.path());
    assert!(
        !contains(&part, &victim_marker(&segments)),
        "the victim's bytes are in the part"
    );
    for clean in [0usize, 3, 1, 2] {
        assert!(
            contains(&part, &segments[clean][8_000..12_096]),
            "clean segment {clean} is not recorded\n{:?}\n{}",
            attack_support::ledger_states(output.path()),
            run.stderr
        );
    }
    assert_eq!(
        origin
            .hits()
            .iter()
            .filter(|hit| hit.path.ends_with("/main-0001.ts"))
            .count(),
        1,
        "{:?}",
        origin.hits()
    );
    let gaps = gap_reasons(output.path());
    for sequence in [2u64, 3, 4, 5, 6, 7] {
        let reason = gaps
            .iter()
            .find(|(gap, _)| *gap == sequence)
            .map(|(_, reason)| reason.clone())
            .unwrap_or_else(|| panic!("sequence {sequence} is not a gap: {gaps:?}"));
        assert!(
            reason.contains("only http and https"),
            "{sequence}: {reason}"
        );
    }
    for hit in origin.hits() {
        assert!(hit.user_agent.starts_with("streambot/"), "{hit:?}");
    }
}

/// Bodies that are not media, each served with 200 and `video/mp2t` between clean segments: each
/// is a gap "not media", none of their bytes reaches the part, the finished file is the clean
/// segments only.
#[tokio::test]
async fn non_media_bodies_are_gaps_and_never_reach_the_part() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let segments = ts_segments().await;
    let victim_directory = tempfile::tempdir().expect("tempdir");
    let victim = victim_directory.path().join("main-0001.ts");
    std::fs::write(&victim, &segments[50]).expect("victim part");
    let victim_text = victim.to_string_lossy().into_owned();
    let hls = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile://{victim_text}\n#EXT-X-ENDLIST\n"
    );
    let mut id3_then_hls = b"ID3\x04\x00\x00\x00\x00\x00\x0a".to_vec();
    id3_then_hls.extend_from_slice(&[0; 10]);
    id3_then_hls.extend_from_slice(hls.as_bytes());
    let mut huge_id3 = b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f".to_vec();
    huge_id3.extend_from_slice(hls.as_bytes());
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("hls", hls.clone().into_bytes()),
        ("bom-hls", [b"\xef\xbb\xbf".as_slice(), hls.as_bytes()].concat()),
        ("space-hls", [b"\r\n \t\n".as_slice(), hls.as_bytes()].concat()),
        ("ffconcat", format!("ffconcat version 1.0\nfile '{victim_text}'\n").into_bytes()),
        (
            "mpd",
            format!("<?xml version=\"1.0\"?><MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><BaseURL>file://{victim_text}</BaseURL></MPD>").into_bytes(),
        ),
        ("html", b"<!doctype html><html><body>Not found</body></html>".to_vec()),
        ("sdp", b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nm=video 5004 RTP/AVP 96\r\n".to_vec()),
        ("gzip", [b"\x1f\x8b\x08".as_slice(), &[0u8; 200]].concat()),
        ("empty", Vec::new()),
        ("one-byte", vec![0x47]),
        ("id3-hls", id3_then_hls),
        ("huge-id3", huge_id3),
        ("sync-then-hls", [b"\x47".as_slice(), hls.as_bytes()].concat()),
        ("ftyp-hls", [b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".as_slice(), hls.as_bytes()].concat()),
        ("three-packets-then-hls", [&segments[3][..564], hls.as_bytes(), &[b'\n'; 400]].concat()),
    ];
    // Clean first: a gap inside a part trips finalize's duration check (see the finding below).
    // `--for` counts the listed timeline, gaps included: 3 clean + the chunk's bodies.
    const CHUNK: usize = 8;
    let playlists: Vec<String> = bodies
        .chunks(CHUNK)
        .map(|chunk| {
            let mut uris = vec![
                "/seg-0.ts".to_string(),
                "/seg-1.ts".to_string(),
                "/seg-2.ts".to_string(),
            ];
            for (name, _) in chunk {
                uris.push(format!("/body-{name}.ts"));
            }
            vod_playlist("", &uris)
        })
        .collect();
    let route_segments = segments.clone();
    let route_bodies = bodies.clone();
    let route_playlists = playlists.clone();
    let origin = HostileServer::start(move |path| {
        if let Some(index) = path
            .strip_prefix("/live-")
            .and_then(|rest| rest.strip_suffix(".m3u8"))
            .and_then(|number| number.parse::<usize>().ok())
            && let Some(text) = route_playlists.get(index)
        {
            return Reply::playlist(text.clone());
        }
        if let Some(name) = path
            .strip_prefix("/body-")
            .and_then(|rest| rest.strip_suffix(".ts"))
            && let Some((_, body)) = route_bodies
                .iter()
                .find(|(candidate, _)| *candidate == name)
        {
            return Reply::ts(body.clone());
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    for (chunk_index, chunk) in bodies.chunks(CHUNK).enumerate() {
        let output = tempfile::tempdir().expect("tempdir");
        let run = record(
            &origin.url(&format!("/live-{chunk_index}.m3u8")),
            &format!("{}s", 3 + chunk.len()),
            output.path(),
            &["--keep-parts"],
            true,
            Duration::from_secs(28),
        )
        .await;
        assert_no_panic_and_bounded(&run, "non-media bodies");
        let gaps = gap_reasons(output.path());
        for (index, (name, _)) in chunk.iter().enumerate() {
            let sequence = index as u64 + 3;
            let reason = gaps
                .iter()
                .find(|(gap, _)| *gap == sequence)
                .map(|(_, reason)| reason.clone())
                .unwrap_or_else(|| panic!("{name} (sequence {sequence}) is not a gap: {gaps:?}"));
            assert!(reason.contains("not media"), "{name}: {reason}");
        }
        let part = part_bytes(output.path());
        for needle in [
            b"#EXTM3U".as_slice(),
            b"ffconcat",
            b"<MPD",
            b"<html",
            b"v=0\r\n",
        ] {
            assert!(
                !contains(&part, needle),
                "{:?} reached the part",
                String::from_utf8_lossy(needle)
            );
        }
        assert!(!contains(&part, &victim_marker(&segments)));
        let finished = output.path().join("recording-0001.mp4");
        let duration = attack_support_duration(&finished);
        assert!(
            (2.5..3.6).contains(&duration),
            "the finished file should hold the 3 clean seconds, not {duration}\n{}",
            run.stderr
        );
    }
}

fn attack_support_duration(path: &Path) -> f64 {
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output();
    output
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(-1.0)
}

/// Playlists with hostile numbers: EXTINF NaN/inf/negative/1e308, TARGETDURATION negative,
/// media sequence at and over u64::MAX, a negative one, discontinuity sequence u64::MAX, byte
/// ranges at u64::MAX. Never a panic, never past the deadline.
#[tokio::test]
async fn hostile_numbers_in_playlists_never_panic() {
    let segments = ts_segments().await;
    let clean = |range: std::ops::Range<u32>| -> String {
        range
            .map(|index| format!("#EXTINF:1.0,\n/seg-{index}.ts\n"))
            .collect()
    };
    let header = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n";
    let extinf_values = [
        "NaN",
        "inf",
        "-inf",
        "-1",
        "1e308",
        "-0",
        "1e-320",
        "0x10",
        "1,2",
        "",
        "18446744073709551616",
        "1e20",
    ];
    let mut extinf = format!("{header}#EXT-X-MEDIA-SEQUENCE:0\n");
    for (index, value) in extinf_values.iter().enumerate() {
        extinf.push_str(&format!("#EXTINF:{value},\n/seg-{index}.ts\n"));
    }
    extinf.push_str("#EXT-X-ENDLIST\n");
    let playlists: Vec<(&str, String)> = vec![
        ("extinf", extinf),
        (
            "target-negative",
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:-5\n#EXT-X-MEDIA-SEQUENCE:0\n{}#EXT-X-ENDLIST\n",
                clean(0..3)
            ),
        ),
        (
            "sequence-at-max",
            format!(
                "{header}#EXT-X-MEDIA-SEQUENCE:18446744073709551613\n{}#EXT-X-ENDLIST\n",
                clean(0..3)
            ),
        ),
        (
            "sequence-over-max",
            format!(
                "{header}#EXT-X-MEDIA-SEQUENCE:18446744073709551614\n{}#EXT-X-ENDLIST\n",
                clean(0..5)
            ),
        ),
        (
            "sequence-negative",
            format!(
                "{header}#EXT-X-MEDIA-SEQUENCE:-1\n{}#EXT-X-ENDLIST\n",
                clean(0..3)
            ),
        ),
        (
            "discontinuity-sequence-max",
            format!(
                "{header}#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:18446744073709551615\n#EXTINF:1,\n/seg-0.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1,\n/seg-1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1,\n/seg-2.ts\n#EXT-X-ENDLIST\n"
            ),
        ),
    ];
    let route_segments = segments.clone();
    let route_playlists = playlists.clone();
    let origin = HostileServer::start(move |path| {
        if let Some(name) = path.strip_prefix("/pl-")
            && let Some((_, text)) = route_playlists
                .iter()
                .find(|(candidate, _)| *candidate == name)
        {
            return Reply::playlist(text.clone());
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    for (name, _) in &playlists {
        let output = tempfile::tempdir().expect("tempdir");
        let run = record(
            &origin.url(&format!("/pl-{name}")),
            "6s",
            output.path(),
            &["--no-finalize"],
            true,
            Duration::from_secs(30),
        )
        .await;
        assert_no_panic_and_bounded(&run, name);
        assert!(
            run.peak_rss_kib < 300 * 1024,
            "{name}: peak RSS {} KiB",
            run.peak_rss_kib
        );
    }
}

/// EXT-X-BYTERANGE and EXT-X-MAP byte ranges at u64::MAX (offset + length overflows).
#[tokio::test]
async fn byte_ranges_at_u64_max_never_panic() {
    let segments = ts_segments().await;
    let header = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n";
    let playlists: Vec<(&str, String)> = vec![
        (
            "byterange",
            format!(
                "{header}#EXTINF:1,\n/seg-0.ts\n#EXTINF:1,\n#EXT-X-BYTERANGE:18446744073709551615@18446744073709551615\n/seg-1.ts\n#EXTINF:1,\n#EXT-X-BYTERANGE:10@18446744073709551610\n/seg-2.ts\n#EXTINF:1,\n#EXT-X-BYTERANGE:18446744073709551615\n/seg-3.ts\n#EXTINF:1,\n/seg-4.ts\n#EXT-X-ENDLIST\n"
            ),
        ),
        (
            "map",
            format!(
                "{header}#EXT-X-MAP:URI=\"/seg-0.ts\",BYTERANGE=\"18446744073709551615@18446744073709551615\"\n#EXTINF:1,\n/seg-1.ts\n#EXT-X-ENDLIST\n"
            ),
        ),
        (
            "map-beyond-file",
            format!(
                "{header}#EXT-X-MAP:URI=\"/seg-0.ts\",BYTERANGE=\"100000000@0\"\n#EXTINF:1,\n/seg-1.ts\n#EXT-X-ENDLIST\n"
            ),
        ),
    ];
    let route_segments = segments.clone();
    let route_playlists = playlists.clone();
    let origin = HostileServer::start(move |path| {
        if let Some(name) = path.strip_prefix("/pl-")
            && let Some((_, text)) = route_playlists
                .iter()
                .find(|(candidate, _)| *candidate == name)
        {
            return Reply::playlist(text.clone());
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    for (name, _) in &playlists {
        let output = tempfile::tempdir().expect("tempdir");
        let run = record(
            &origin.url(&format!("/pl-{name}")),
            "5s",
            output.path(),
            &["--no-finalize"],
            true,
            Duration::from_secs(30),
        )
        .await;
        assert_no_panic_and_bounded(&run, name);
        assert!(
            !run.stderr.contains("a segment download panicked"),
            "{name}\n{}",
            run.stderr
        );
    }
}

/// Masters that point at masters (a chain and a loop) are refused with the reason.
#[tokio::test]
async fn nested_and_looping_masters_are_refused() {
    let origin = HostileServer::start(|path| {
        let next = match path {
            "/m1.m3u8" => "/m2.m3u8",
            "/m2.m3u8" => "/m3.m3u8",
            "/m3.m3u8" => "/m1.m3u8",
            "/self.m3u8" => "/self.m3u8",
            _ => return Reply::status(404),
        };
        Reply::playlist(format!(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n{next}\n"
        ))
    })
    .await;
    for path in ["/m1.m3u8", "/self.m3u8"] {
        let output = tempfile::tempdir().expect("tempdir");
        let run = record(
            &origin.url(path),
            "5s",
            output.path(),
            &[],
            true,
            Duration::from_secs(20),
        )
        .await;
        assert_no_panic_and_bounded(&run, path);
        assert_ne!(run.exit_code, Some(0));
        assert!(run.stderr.contains("nested masters"), "{}", run.stderr);
    }
    assert!(origin.hits().len() <= 6, "{:?}", origin.hits());
}

/// A 50 MB playlist, a 10^6-variant master (72 MB), an endless playlist body and a 30 MB line:
/// refused at the playlist size limit, quickly, within memory.
#[tokio::test]
async fn huge_and_endless_playlists_are_refused_within_memory() {
    let mut big = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n");
    while big.len() < 50_000_000 {
        big.push_str(&format!("#EXTINF:1.0,{}\n/seg-0.ts\n", "t".repeat(500)));
    }
    let mut master = String::from("#EXTM3U\n");
    for index in 0..1_000_000u32 {
        master.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={}\n/v{index}.m3u8\n",
            index + 1
        ));
    }
    let long_line = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n/seg-0.ts?{}\n#EXT-X-ENDLIST\n",
        "a".repeat(30_000_000)
    );
    let big = std::sync::Arc::new(big.into_bytes());
    let master = std::sync::Arc::new(master.into_bytes());
    let long_line = std::sync::Arc::new(long_line.into_bytes());
    let origin = HostileServer::start(move |path| match path {
        "/big.m3u8" => Reply::ok("application/vnd.apple.mpegurl", big.as_ref().clone()),
        "/master.m3u8" => Reply::ok("application/vnd.apple.mpegurl", master.as_ref().clone()),
        "/line.m3u8" => Reply::ok("application/vnd.apple.mpegurl", long_line.as_ref().clone()),
        "/endless.m3u8" => Reply::Endless {
            content_type: "application/vnd.apple.mpegurl",
            chunk: [b"#EXTM3U\n".as_slice(), &[b'#'; 65_528]].concat(),
            max_bytes: 1 << 30,
        },
        _ => Reply::status(404),
    })
    .await;
    for path in ["/big.m3u8", "/master.m3u8", "/line.m3u8", "/endless.m3u8"] {
        let output = tempfile::tempdir().expect("tempdir");
        let run = record(
            &origin.url(path),
            "5s",
            output.path(),
            &[],
            true,
            Duration::from_secs(30),
        )
        .await;
        assert_no_panic_and_bounded(&run, path);
        assert_ne!(run.exit_code, Some(0), "{path}");
        assert!(
            run.stderr.contains("larger than the limit"),
            "{path}: {}",
            run.stderr
        );
        assert!(
            run.peak_rss_kib < 150 * 1024,
            "{path}: peak RSS {} KiB",
            run.peak_rss_kib
        );
    }
}

/// AES-128 keys that are empty, endless, or not http: gaps with the reason, no panic, quick.
#[tokio::test]
async fn hostile_keys_are_gaps() {
    let segments = ts_segments().await;
    let header = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n";
    let body = "#EXTINF:1,\n/seg-0.ts\n#EXTINF:1,\n/seg-1.ts\n#EXT-X-ENDLIST\n";
    let playlists: Vec<(&str, String)> = vec![
        (
            "empty",
            format!("{header}#EXT-X-KEY:METHOD=AES-128,URI=\"/key-empty\"\n{body}"),
        ),
        (
            "endless",
            format!("{header}#EXT-X-KEY:METHOD=AES-128,URI=\"/key-endless\"\n{body}"),
        ),
        (
            "file",
            format!("{header}#EXT-X-KEY:METHOD=AES-128,URI=\"file:///etc/passwd\"\n{body}"),
        ),
        (
            "megabyte",
            format!("{header}#EXT-X-KEY:METHOD=AES-128,URI=\"/key-megabyte\"\n{body}"),
        ),
    ];
    let route_segments = segments.clone();
    let route_playlists = playlists.clone();
    let origin = HostileServer::start(move |path| match path {
        "/key-empty" => Reply::ok("application/octet-stream", Vec::new()),
        "/key-megabyte" => Reply::ok("application/octet-stream", vec![7u8; 1 << 20]),
        "/key-endless" => Reply::Endless {
            content_type: "application/octet-stream",
            chunk: vec![1u8; 65_536],
            max_bytes: 1 << 30,
        },
        _ => {
            if let Some(name) = path.strip_prefix("/pl-")
                && let Some((_, text)) = route_playlists
                    .iter()
                    .find(|(candidate, _)| *candidate == name)
            {
                return Reply::playlist(text.clone());
            }
            clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
        }
    })
    .await;
    for (name, _) in &playlists {
        let output = tempfile::tempdir().expect("tempdir");
        let run = record(
            &origin.url(&format!("/pl-{name}")),
            "5s",
            output.path(),
            &["--no-finalize"],
            true,
            Duration::from_secs(30),
        )
        .await;
        assert_no_panic_and_bounded(&run, name);
        let states: Vec<String> = ledger(output.path())
            .iter()
            .map(|entry| entry["state"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(states, vec!["gap", "gap"], "{name}\n{}", run.stderr);
        assert!(
            run.peak_rss_kib < 150 * 1024,
            "{name}: {} KiB",
            run.peak_rss_kib
        );
        assert!(part_bytes(output.path()).is_empty(), "{name}");
    }
}

// Findings: reproductions that fail today.

/// A VOD (ENDLIST) where one segment is 404 for ever: the recording should end soon after the
/// other segments with one gap. Today every reload of the (unchanging) VOD playlist pushes that
/// segment's deadline out, so it is retried twice a second until the stall timeout (2 min by
/// default), and then ends as "the stream stalled" (exit 3) instead of "the stream ended".
#[tokio::test]
async fn vod_with_one_missing_segment_ends_soon_with_one_gap() {
    let segments = ts_segments().await;
    let playlist = vod_playlist(
        "",
        &[
            "/seg-0.ts".to_string(),
            "/missing.ts".to_string(),
            "/seg-2.ts".to_string(),
        ],
    );
    let route_segments = segments.clone();
    let origin = HostileServer::start(move |path| {
        if path == "/live.m3u8" {
            return Reply::playlist(playlist.clone());
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let output_text = output.path().to_string_lossy().into_owned();
    let run = attack_support::run_streambot(
        &[
            "record",
            &origin.url("/live.m3u8"),
            "-o",
            &output_text,
            "--no-finalize",
        ],
        true,
        Duration::from_secs(40),
    )
    .await;
    assert!(
        !run.timed_out,
        "a 3-segment VOD still recording after {:?}",
        run.elapsed
    );
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("stream ended"), "{}", run.stderr);
    assert!(
        origin.hits_of("/missing.ts") < 20,
        "{} attempts",
        origin.hits_of("/missing.ts")
    );
}

/// The ffmpeg engine's duration limit is ffmpeg's `-t` (media time): a `.ts` link that sends
/// MPEG-TS null packets for ever never reaches it, so `--for 5s` (and the worker's
/// FFMPEG_DEFAULT_TIMEOUT cap) never ends the recording; the link is downloaded without bound.
#[tokio::test]
async fn ffmpeg_engine_endless_null_packets_end_at_the_requested_duration() {
    let mut null_packet = vec![0x47, 0x1f, 0xff, 0x10];
    null_packet.resize(188, 0xff);
    let chunk: Vec<u8> = null_packet
        .iter()
        .copied()
        .cycle()
        .take(188 * 350)
        .collect();
    let origin = HostileServer::start(move |path| match path {
        "/live.ts" => Reply::Endless {
            content_type: "video/mp2t",
            chunk: chunk.clone(),
            max_bytes: 1 << 40,
        },
        _ => Reply::status(404),
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/live.ts"),
        "5s",
        output.path(),
        &[],
        true,
        Duration::from_secs(40),
    )
    .await;
    assert!(!run.panicked(), "{}", run.stderr);
    assert!(
        !run.timed_out,
        "--for 5s: still recording after {:?}\n{}",
        run.elapsed, run.stderr
    );
}

/// One valid TS packet followed by 94 bytes of playlist text (282 bytes, not a multiple of 188)
/// is accepted as MPEG-TS and committed whole: the text reaches the part, and the next segment
/// is misaligned by 94 bytes in it.
#[tokio::test]
async fn trailing_partial_packet_of_text_never_reaches_the_part() {
    let segments = ts_segments().await;
    let text =
        b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n";
    let body = [&segments[1][..188], text.as_slice()].concat();
    let playlist = vod_playlist(
        "",
        &[
            "/seg-0.ts".to_string(),
            "/odd.ts".to_string(),
            "/seg-2.ts".to_string(),
        ],
    );
    let route_segments = segments.clone();
    let origin = HostileServer::start(move |path| match path {
        "/live.m3u8" => Reply::playlist(playlist.clone()),
        "/odd.ts" => Reply::ts(body.clone()),
        _ => clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404)),
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/live.m3u8"),
        "6s",
        output.path(),
        &["--no-finalize"],
        true,
        Duration::from_secs(40),
    )
    .await;
    assert!(!run.panicked() && !run.timed_out, "{}", run.stderr);
    let part = part_bytes(output.path());
    assert!(!contains(&part, b"#EXTM3U"), "playlist text is in the part");
    assert_eq!(
        part.len() % 188,
        0,
        "the part is not whole TS packets: {} bytes",
        part.len()
    );
}

/// A discontinuity before every segment makes one part per segment: 200 parts for `--for 20s`
/// of a VOD of 1 ms segments, each finalized with ffmpeg runs one after another (minutes), into
/// 200 files (the bot would send 200 videos). Ctrl-C does not stop the finalize.
#[tokio::test]
async fn a_discontinuity_per_segment_does_not_make_hundreds_of_files() {
    if !ffmpeg_available() {
        return;
    }
    let segments = ts_segments().await;
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n",
    );
    for index in 0..3000 {
        playlist.push_str(&format!(
            "#EXT-X-DISCONTINUITY\n#EXTINF:0.001,\n/seg-{}.ts\n",
            index % 5
        ));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let route_segments = segments.clone();
    let origin = HostileServer::start(move |path| {
        if path == "/live.m3u8" {
            return Reply::playlist(playlist.clone());
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/live.m3u8"),
        "20s",
        output.path(),
        &[],
        true,
        // Recording ends at 20 s; finalize then joins up to the part limit (200) of parts, which
        // took ~60 s on a loaded 2-core machine. The guard is against a recording that never ends.
        Duration::from_secs(150),
    )
    .await;
    assert!(!run.panicked(), "{}", run.stderr);
    assert!(
        !run.timed_out,
        "--for 20s still running after {:?}",
        run.elapsed
    );
    let files = attack_support::files_under(output.path())
        .iter()
        .filter(|path| path.extension().is_some_and(|extension| extension == "mp4"))
        .count();
    assert!(
        files <= 20,
        "{files} finished files from one 20 s recording"
    );
}

/// A master whose best variant is a `file:` URI and whose next one is fine: the unusable variant
/// is skipped for the next candidate (it used to refuse the whole recording, naming a URI the user
/// never sent).
#[tokio::test]
async fn a_master_with_one_unusable_variant_records_the_others() {
    let segments = ts_segments().await;
    let media = vod_playlist("", &["/seg-0.ts".to_string(), "/seg-1.ts".to_string()]);
    let route_segments = segments.clone();
    let origin = HostileServer::start(move |path| match path {
        "/master.m3u8" => Reply::playlist(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=9000000\nfile:///etc/passwd\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n/media.m3u8\n",
        ),
        "/media.m3u8" => Reply::playlist(media.clone()),
        _ => clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404)),
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/master.m3u8"),
        "5s",
        output.path(),
        &["--no-finalize"],
        true,
        Duration::from_secs(30),
    )
    .await;
    assert!(!run.panicked() && !run.timed_out, "{}", run.stderr);
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
}

/// Segments with endless bodies: each download was buffered in memory up to the 128 MiB segment
/// limit before it was refused, so three at once (the default parallelism) took the process from
/// ~60 MB to ~330 MB. A body past 4 MiB now spills to a file in the track's directory (removed
/// when the segment is given up), so memory stays bounded whatever the segment size.
#[tokio::test]
async fn endless_segment_bodies_stay_within_a_memory_bound() {
    let segments = ts_segments().await;
    let uris: Vec<String> = (0..6).map(|index| format!("/endless-{index}.ts")).collect();
    let playlist = vod_playlist("", &[uris, vec!["/seg-1.ts".to_string()]].concat());
    let packet = segments[0][..188].to_vec();
    let chunk: Vec<u8> = packet.iter().copied().cycle().take(188 * 350).collect();
    let route_segments = segments.clone();
    let origin = HostileServer::start(move |path| {
        if path == "/live.m3u8" {
            return Reply::playlist(playlist.clone());
        }
        if path.starts_with("/endless-") {
            return Reply::Endless {
                content_type: "video/mp2t",
                chunk: chunk.clone(),
                max_bytes: 1 << 31,
            };
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/live.m3u8"),
        "10s",
        output.path(),
        &["--no-finalize"],
        true,
        Duration::from_secs(50),
    )
    .await;
    assert!(!run.panicked() && !run.timed_out, "{}", run.stderr);
    assert!(
        run.peak_rss_kib < 200 * 1024,
        "peak RSS {} KiB for one recording",
        run.peak_rss_kib
    );
}

/// Not even hostile: a 5-segment outage inside one part. The finished file keeps the stream's
/// timestamps, so it lasts 8 s while the ledger's recorded media is 3 s; finalize's duration
/// check (expected = recorded media seconds, tolerance 3 s) refuses it, and the user gets no
/// file at all ("The finished file is shorter or longer than what was recorded.", exit 4).
#[tokio::test]
async fn an_outage_inside_a_part_still_gives_a_finished_file() {
    if !ffmpeg_available() {
        return;
    }
    let segments = ts_segments().await;
    let mut uris = vec!["/seg-0.ts".to_string()];
    uris.extend((1..6).map(|index| format!("/missing-{index}.ts")));
    uris.push("/seg-6.ts".to_string());
    uris.push("/seg-7.ts".to_string());
    let playlist = vod_playlist("", &uris);
    let route_segments = segments.clone();
    let origin = HostileServer::start(move |path| {
        if path == "/live.m3u8" {
            return Reply::playlist(playlist.clone());
        }
        clean_segment_route(&route_segments, path).unwrap_or_else(|| Reply::status(404))
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/live.m3u8"),
        "8s",
        output.path(),
        &[],
        true,
        Duration::from_secs(50),
    )
    .await;
    assert!(!run.panicked() && !run.timed_out, "{}", run.stderr);
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert!(
        output.path().join("recording-0001.mp4").exists(),
        "{}",
        run.stderr
    );
}

/// A `.mp4` link whose body is `ftyp` + an mdat that never ends (the "index at the end" case):
/// the ffmpeg engine downloads it to a file before recording, up to the 8 GiB progressive-mp4
/// limit (on a disk of any size), and neither `--for` nor Ctrl-C ends that download. Here the
/// body is paced at ~1 MB/s (so the test writes little); `--for 5s` should end the job soon.
#[tokio::test]
async fn an_endless_progressive_mp4_ends_at_the_requested_duration() {
    let mut head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    head.extend_from_slice(b"\x00\x00\x00\x01mdat\x00\x00\x00\x01\x00\x00\x00\x00");
    let origin = HostileServer::start(move |path| match path {
        "/movie.mp4" => Reply::Paced {
            content_type: "video/mp4",
            head: head.clone(),
            chunk: vec![0u8; 100_000],
            step: Duration::from_millis(100),
            max_bytes: 200_000_000,
        },
        _ => Reply::status(404),
    })
    .await;
    let output = tempfile::tempdir().expect("tempdir");
    let run = record(
        &origin.url("/movie.mp4"),
        "5s",
        output.path(),
        &[],
        true,
        Duration::from_secs(40),
    )
    .await;
    assert!(!run.panicked(), "{}", run.stderr);
    assert!(
        !run.timed_out,
        "--for 5s: still downloading after {:?}\n{}",
        run.elapsed, run.stderr
    );
}
