//! The origin and the fixtures, tested over real loopback HTTP with reqwest.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use streambot_testkit::{
    EXPLICIT_IV_HIGH_BITS, FIXTURE_SEGMENT_COUNT, Fault, OriginConfig, OriginHandle, RequestKind,
    SegmentKind, decrypt_segment, media_fixtures, spawn_origin,
};

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

async fn start(config: OriginConfig) -> OriginHandle {
    spawn_origin(config).await.expect("origin starts")
}

async fn wait_until_elapsed(origin: &OriginHandle, target: Duration) {
    let remaining = target.saturating_sub(origin.elapsed());
    tokio::time::sleep(remaining).await;
}

async fn get_text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("request to {url} fails: {error:?}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn get_bytes(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("request to {url} fails: {error:?}"));
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

/// A parsed media playlist: media sequence, discontinuity number and URI of every segment.
#[derive(Debug, Clone, PartialEq)]
struct ParsedPlaylist {
    media_sequence: u64,
    discontinuity_sequence: u64,
    segments: Vec<(u64, u64, String)>,
    ended: bool,
    explicit_ivs: Vec<String>,
}

fn parse_playlist(text: &str) -> ParsedPlaylist {
    assert!(text.starts_with("#EXTM3U\n"), "not a playlist: {text}");
    let tag_value = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().parse().expect("numeric tag"))
    };
    let media_sequence = tag_value("#EXT-X-MEDIA-SEQUENCE:").expect("media sequence tag");
    let discontinuity_sequence = tag_value("#EXT-X-DISCONTINUITY-SEQUENCE:").unwrap_or(0);
    let mut segments = Vec::new();
    let mut next_sequence = media_sequence;
    let mut discontinuity = discontinuity_sequence;
    let mut explicit_ivs = Vec::new();
    for line in text.lines() {
        if line == "#EXT-X-DISCONTINUITY" {
            discontinuity += 1;
        } else if let Some(position) = line.find("IV=0x") {
            explicit_ivs.push(line[position + 5..].to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            segments.push((next_sequence, discontinuity, line.to_string()));
            next_sequence += 1;
        }
    }
    ParsedPlaylist {
        media_sequence,
        discontinuity_sequence,
        segments,
        ended: text.contains("#EXT-X-ENDLIST"),
        explicit_ivs,
    }
}

fn sequences(playlist: &ParsedPlaylist) -> Vec<u64> {
    playlist
        .segments
        .iter()
        .map(|(sequence, _, _)| *sequence)
        .collect()
}

fn ffprobe_entries(path: &std::path::Path) -> String {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe failed on {path:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

fn probed_duration(probe_output: &str) -> f64 {
    probe_output
        .lines()
        .find_map(|line| line.strip_prefix("duration="))
        .expect("duration line")
        .parse()
        .expect("duration number")
}

#[test]
fn fixtures_are_real_media_of_one_second_segments() {
    let started = Instant::now();
    let mut timings = Vec::new();
    for kind in SegmentKind::ALL {
        let kind_started = Instant::now();
        let media_set = media_fixtures(kind).expect("fixtures");
        timings.push((kind, kind_started.elapsed()));
        assert_eq!(media_set.segments.len(), FIXTURE_SEGMENT_COUNT);
        assert_eq!(media_set.segment_duration_seconds, 1.0);
        assert!(media_set.segments.iter().all(|segment| !segment.is_empty()));
        for duration in &media_set.segment_durations_seconds {
            assert!((duration - 1.0).abs() < 0.025, "{kind}: {duration}");
        }
    }
    eprintln!(
        "fixture timings (cold or cached): {timings:?}, total {:?}",
        started.elapsed()
    );

    let transport_stream = media_fixtures(SegmentKind::MpegTs).expect("ts");
    assert!(
        transport_stream
            .segment_durations_seconds
            .iter()
            .all(|duration| *duration == 1.0)
    );
    let probe = ffprobe_entries(&transport_stream.segment_path(5));
    assert!(probe.contains("codec_name=h264"), "{probe}");
    assert!(probe.contains("codec_name=aac"), "{probe}");
    let duration = probed_duration(&probe);
    assert!((duration - 1.0).abs() < 0.05, "segment lasts {duration}");
    assert_eq!(transport_stream.segments[5][0], 0x47, "MPEG-TS sync byte");

    let fragmented = media_fixtures(SegmentKind::Fmp4).expect("fmp4");
    let init_segment = fragmented.init_segment.as_ref().expect("init segment");
    let joined_path = std::env::temp_dir().join(format!(
        "streambot-testkit-test-{}-fmp4.mp4",
        std::process::id()
    ));
    let mut joined = init_segment.to_vec();
    joined.extend_from_slice(&fragmented.segments[5]);
    std::fs::write(&joined_path, joined).expect("write joined fMP4");
    let probe = ffprobe_entries(&joined_path);
    let _ignored = std::fs::remove_file(&joined_path);
    assert!(
        probe.contains("codec_name=h264") && probe.contains("codec_name=aac"),
        "{probe}"
    );

    let audio_only = media_fixtures(SegmentKind::AudioOnlyTs).expect("audio");
    let probe = ffprobe_entries(&audio_only.segment_path(5));
    assert!(
        probe.contains("codec_name=aac") && !probe.contains("h264"),
        "{probe}"
    );

    let encrypted = media_fixtures(SegmentKind::MpegTsAes128).expect("aes");
    let key = encrypted.aes_key.expect("key");
    let clear = decrypt_segment(&encrypted.segments[7], &key, 7).expect("decrypts with IV 7");
    assert_eq!(clear, transport_stream.segments[7]);
    assert_ne!(
        encrypted.segments[7][0..16],
        transport_stream.segments[7][0..16]
    );
}

#[tokio::test]
async fn window_advances_with_the_clock_and_segments_are_served() {
    let origin = start(OriginConfig::default().with_window_segments(4)).await;
    let client = client();
    let (status, text) = get_text(&client, &origin.media_playlist_url()).await;
    assert_eq!(status, 200);
    let first = parse_playlist(&text);
    assert_eq!(sequences(&first), vec![1000, 1001, 1002, 1003]);
    assert!(text.contains("#EXT-X-TARGETDURATION:1\n"));
    assert!(text.contains("#EXT-X-VERSION:3\n"));
    assert!(!first.ended);
    assert_eq!(first.segments[0].2, "seg-1000.ts");

    let fixtures = media_fixtures(SegmentKind::MpegTs).expect("fixtures");
    let (status, body) = get_bytes(&client, &origin.segment_url(1002)).await;
    assert_eq!(status, 200);
    assert_eq!(body, fixtures.segments[2].to_vec());
    let (status, _) = get_bytes(&client, &origin.segment_url(1006)).await;
    assert_eq!(status, 404, "not yet published");
    let (status, _) = get_bytes(&client, &format!("{}/live/nothing", origin.base_url)).await;
    assert_eq!(status, 404);

    wait_until_elapsed(&origin, seconds(2.2)).await;
    let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
    let later = parse_playlist(&text);
    assert_eq!(sequences(&later), vec![1002, 1003, 1004, 1005]);
    let (status, body) = get_bytes(&client, &origin.segment_url(1005)).await;
    assert_eq!(status, 200);
    assert_eq!(body, fixtures.segments[5].to_vec());

    let published = origin.sequences_published();
    assert_eq!(
        published.iter().copied().collect::<Vec<_>>(),
        (1000..=1005).collect::<Vec<_>>()
    );
    let served: Vec<u64> = origin.sequences_served_ok().into_iter().collect();
    assert_eq!(served, vec![1002, 1005]);
    let log = origin.served_log();
    let segment_entry = log
        .iter()
        .find(|entry| entry.media_sequence == Some(1002))
        .expect("logged");
    assert_eq!(segment_entry.kind, RequestKind::Segment);
    assert_eq!(segment_entry.status, 200);
    assert!(segment_entry.complete);
    assert_eq!(segment_entry.bytes_sent, fixtures.segments[2].len() as u64);
}

#[tokio::test]
async fn outage_closes_connections_without_a_response() {
    let origin = start(OriginConfig::default().with_fault(Fault::Outage {
        from: Duration::ZERO,
        to: seconds(1.5),
    }))
    .await;
    let client = client();
    let attempt = client.get(origin.media_playlist_url()).send().await;
    let error = attempt.expect_err("no response during the outage");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    let attempt = client.get(origin.segment_url(1001)).send().await;
    assert!(attempt.is_err(), "segments too");

    wait_until_elapsed(&origin, seconds(1.6)).await;
    let (status, _) = get_text(&client, &origin.media_playlist_url()).await;
    assert_eq!(status, 200);
    let log = origin.served_log();
    assert_eq!(log.iter().filter(|entry| entry.status == 0).count(), 2);
    assert!(
        log.iter()
            .any(|entry| entry.status == 200 && entry.kind == RequestKind::Playlist)
    );
    assert!(origin.sequences_served_ok().is_empty());
}

#[tokio::test]
async fn segment_status_bursts_and_every_nth_fails_once() {
    let origin = start(
        OriginConfig::default()
            .with_fault(Fault::SegmentHttpStatus {
                from: Duration::ZERO,
                to: seconds(1.0),
                status: 503,
            })
            .with_fault(Fault::EveryNthSegmentFailsOnce { n: 2 }),
    )
    .await;
    let client = client();
    let (status, _) = get_bytes(&client, &origin.segment_url(1001)).await;
    assert_eq!(status, 503, "burst");
    let (status, _) = get_text(&client, &origin.media_playlist_url()).await;
    assert_eq!(status, 200, "playlists are not hit by segment bursts");

    wait_until_elapsed(&origin, seconds(1.1)).await;
    let (status, _) = get_bytes(&client, &origin.segment_url(1001)).await;
    assert_eq!(status, 200, "odd sequence");
    let (status, _) = get_bytes(&client, &origin.segment_url(1002)).await;
    assert_eq!(status, 503, "first request of an even sequence");
    let (status, _) = get_bytes(&client, &origin.segment_url(1002)).await;
    assert_eq!(status, 200, "second request");
    assert_eq!(
        origin.sequences_served_ok().into_iter().collect::<Vec<_>>(),
        vec![1001, 1002]
    );
}

#[tokio::test]
async fn truncated_bodies_send_half_of_the_announced_length() {
    let origin = start(OriginConfig::default().with_fault(Fault::TruncatedBodies {
        from: Duration::ZERO,
        to: seconds(30.0),
    }))
    .await;
    let client = client();
    let fixtures = media_fixtures(SegmentKind::MpegTs).expect("fixtures");
    let mut response = client
        .get(origin.segment_url(1003))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(response.status().as_u16(), 200);
    let announced = response.content_length().expect("content length");
    assert_eq!(announced, fixtures.segments[3].len() as u64);
    let mut received = 0_u64;
    let mut body_failed = false;
    for _ in 0..10_000 {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len() as u64,
            Ok(None) => break,
            Err(_) => {
                body_failed = true;
                break;
            }
        }
    }
    assert!(body_failed, "the body must fail, not end cleanly");
    assert_eq!(received, announced / 2);
    let (status, text) = get_text(&client, &origin.media_playlist_url()).await;
    assert_eq!(status, 200, "playlists are whole: {text}");
    let entry = origin
        .served_log()
        .into_iter()
        .find(|entry| entry.media_sequence == Some(1003))
        .expect("logged");
    assert!(!entry.complete);
    assert_eq!(entry.bytes_sent, announced / 2);
    assert!(origin.sequences_served_ok().is_empty());
}

#[tokio::test]
async fn slow_bodies_are_paced() {
    let origin = start(OriginConfig::default().with_fault(Fault::SlowBodies {
        from: Duration::ZERO,
        to: seconds(30.0),
        bytes_per_second: 100_000,
    }))
    .await;
    let client = client();
    let size = media_fixtures(SegmentKind::MpegTs)
        .expect("fixtures")
        .segments[4]
        .len();
    let started = Instant::now();
    let (status, body) = get_bytes(&client, &origin.segment_url(1004)).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body.len(), size);
    let expected = size as f64 / 100_000.0;
    assert!(
        took.as_secs_f64() > expected * 0.7,
        "{took:?} for {size} bytes"
    );
}

#[tokio::test]
async fn playlist_stall_freezes_the_text_and_nothing_is_lost_after_it() {
    let origin = start(OriginConfig::default().with_window_segments(5).with_fault(
        Fault::PlaylistStall {
            from: seconds(0.5),
            to: seconds(2.5),
        },
    ))
    .await;
    let client = client();
    wait_until_elapsed(&origin, seconds(0.6)).await;
    let (_, frozen) = get_text(&client, &origin.media_playlist_url()).await;
    wait_until_elapsed(&origin, seconds(2.2)).await;
    let (_, still_frozen) = get_text(&client, &origin.media_playlist_url()).await;
    assert_eq!(frozen, still_frozen);
    assert_eq!(
        sequences(&parse_playlist(&frozen)),
        (1000..1005).collect::<Vec<_>>()
    );
    let (status, _) = get_bytes(&client, &origin.segment_url(1006)).await;
    assert_eq!(
        status, 200,
        "segments published during the stall are downloadable"
    );
    wait_until_elapsed(&origin, seconds(2.6)).await;
    let (_, thawed) = get_text(&client, &origin.media_playlist_url()).await;
    assert_eq!(
        sequences(&parse_playlist(&thawed)),
        (1002..1007).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn media_sequence_jump_never_publishes_the_skipped_segments() {
    let origin = start(OriginConfig::default().with_window_segments(5).with_fault(
        Fault::MediaSequenceJump {
            at: seconds(1.5),
            skipped_segments: 4,
        },
    ))
    .await;
    let client = client();
    let mut seen = std::collections::BTreeSet::new();
    let mut previous_first = 0;
    for _ in 0..12 {
        let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
        let parsed = parse_playlist(&text);
        assert!(
            parsed.media_sequence >= previous_first,
            "media sequence never goes back"
        );
        previous_first = parsed.media_sequence;
        seen.extend(sequences(&parsed));
        if origin.elapsed() > seconds(2.6) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seen: Vec<u64> = seen.into_iter().collect();
    assert_eq!(
        seen,
        vec![1000, 1001, 1002, 1003, 1004, 1005, 1010, 1011],
        "{seen:?}"
    );
    let (status, _) = get_bytes(&client, &origin.segment_url(1007)).await;
    assert_eq!(status, 404);
    let (status, _) = get_bytes(&client, &origin.segment_url(1010)).await;
    assert_eq!(status, 200);
    assert!(
        origin
            .sequences_published()
            .range(1006..1010)
            .next()
            .is_none()
    );
}

fn discontinuity_numbers(playlist: &ParsedPlaylist) -> BTreeMap<u64, u64> {
    playlist
        .segments
        .iter()
        .map(|(sequence, discontinuity, _)| (*sequence, *discontinuity))
        .collect()
}

#[tokio::test]
async fn discontinuities_at_wraps_and_on_request_keep_their_numbers_as_they_slide_out() {
    // Index 88 (media sequence 1088) is configured, index 90 is the fixture wrap.
    let origin = start(
        OriginConfig::default()
            .with_window_segments(4)
            .with_initial_segments(90)
            .with_fault(Fault::DiscontinuityAt {
                media_sequence: 1088,
            }),
    )
    .await;
    let client = client();
    let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
    let at_start = parse_playlist(&text);
    assert_eq!(sequences(&at_start), vec![1086, 1087, 1088, 1089]);
    assert_eq!(at_start.discontinuity_sequence, 0);
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    assert_eq!(discontinuity_numbers(&at_start)[&1088], 1);

    wait_until_elapsed(&origin, seconds(2.1)).await;
    let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
    let later = parse_playlist(&text);
    assert_eq!(sequences(&later), vec![1088, 1089, 1090, 1091]);
    assert_eq!(
        later.discontinuity_sequence, 1,
        "the tag before 1088 slid out: {text}"
    );
    let numbers = discontinuity_numbers(&later);
    assert_eq!(numbers[&1088], 1);
    assert_eq!(numbers[&1089], 1);
    assert_eq!(numbers[&1090], 2);
    let (status, body) = get_bytes(&client, &origin.segment_url(1090)).await;
    assert_eq!(status, 200);
    let fixtures = media_fixtures(SegmentKind::MpegTs).expect("fixtures");
    assert_eq!(
        body,
        fixtures.segments[0].to_vec(),
        "index 90 wraps to fixture 0"
    );
}

#[tokio::test]
async fn total_segments_end_the_playlist() {
    let origin = start(
        OriginConfig::default()
            .with_window_segments(5)
            .with_initial_segments(3)
            .with_total_segments(4),
    )
    .await;
    let client = client();
    let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
    let first = parse_playlist(&text);
    assert_eq!(sequences(&first), vec![1000, 1001, 1002]);
    assert!(!first.ended);
    wait_until_elapsed(&origin, seconds(2.1)).await;
    let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
    let last = parse_playlist(&text);
    assert_eq!(sequences(&last), vec![1000, 1001, 1002, 1003]);
    assert!(last.ended);
}

#[tokio::test]
async fn vod_serves_everything_at_once() {
    let origin = start(OriginConfig::default().as_vod().with_total_segments(20)).await;
    let (_, text) = get_text(&client(), &origin.media_playlist_url()).await;
    let parsed = parse_playlist(&text);
    assert_eq!(sequences(&parsed), (1000..1020).collect::<Vec<_>>());
    assert!(parsed.ended && text.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
}

#[tokio::test]
async fn master_playlist_lists_variants_and_the_audio_rendition() {
    let origin = start(OriginConfig::default().with_audio_rendition()).await;
    let client = client();
    let (status, master) = get_text(&client, &origin.master_playlist_url()).await;
    assert_eq!(status, 200);
    assert!(master.contains(
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,URI=\"/audio/media.m3u8\""
    ));
    assert_eq!(master.matches("#EXT-X-STREAM-INF:").count(), 3);
    assert!(master.contains("BANDWIDTH=3000000,RESOLUTION=1280x720"));
    assert!(master.contains("BANDWIDTH=400000,RESOLUTION=320x180"));
    assert_eq!(master.matches("AUDIO=\"aud\"").count(), 3);
    let (_, live) = get_text(&client, &origin.media_playlist_url()).await;
    for variant_index in 0..3 {
        let (status, variant) = get_text(
            &client,
            &format!("{}/v{variant_index}/media.m3u8", origin.base_url),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            sequences(&parse_playlist(&variant)),
            sequences(&parse_playlist(&live))
        );
    }
    let (status, _) = get_text(&client, &format!("{}/v3/media.m3u8", origin.base_url)).await;
    assert_eq!(status, 404);
    let (status, audio) = get_text(&client, &origin.audio_playlist_url()).await;
    assert_eq!(status, 200);
    let audio = parse_playlist(&audio);
    assert_eq!(sequences(&audio), sequences(&parse_playlist(&live)));
    let audio_fixtures = media_fixtures(SegmentKind::AudioOnlyTs).expect("audio fixtures");
    let (status, body) = get_bytes(
        &client,
        &format!("{}/audio/{}", origin.base_url, audio.segments[1].2),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, audio_fixtures.segments[1].to_vec());
}

#[tokio::test]
async fn aes_segments_decrypt_with_the_implicit_or_the_explicit_iv() {
    for explicit_iv in [false, true] {
        let mut config = OriginConfig::new(SegmentKind::MpegTsAes128);
        config.explicit_iv = explicit_iv;
        let origin = start(config).await;
        let client = client();
        let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
        let parsed = parse_playlist(&text);
        let (status, key) = get_bytes(&client, &origin.url("/live/key.bin")).await;
        assert_eq!(status, 200);
        let key: [u8; 16] = key.try_into().expect("16-byte key");
        let sequence = parsed.segments[3].0;
        let initialization_vector = if explicit_iv {
            assert_eq!(parsed.explicit_ivs.len(), parsed.segments.len());
            let written = u128::from_str_radix(&parsed.explicit_ivs[3], 16).expect("hex IV");
            assert_eq!(written >> 64, u128::from(EXPLICIT_IV_HIGH_BITS));
            written
        } else {
            assert!(text.contains("#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n"));
            u128::from(sequence)
        };
        let (status, body) = get_bytes(&client, &origin.segment_url(sequence)).await;
        assert_eq!(status, 200);
        let clear = decrypt_segment(&body, &key, initialization_vector).expect("decrypts");
        let fixtures = media_fixtures(SegmentKind::MpegTs).expect("clear fixtures");
        let fixture_index = ((sequence - 1000) % 90) as usize;
        assert_eq!(
            clear, fixtures.segments[fixture_index],
            "explicit_iv={explicit_iv}"
        );
    }
}

#[tokio::test]
async fn fmp4_playlists_carry_the_map_and_serve_the_init_segment() {
    let origin = start(OriginConfig::new(SegmentKind::Fmp4)).await;
    let client = client();
    let (_, text) = get_text(&client, &origin.media_playlist_url()).await;
    assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"));
    assert!(text.contains("#EXT-X-VERSION:7\n"));
    assert!(text.contains("seg-1000.m4s"));
    let fixtures = media_fixtures(SegmentKind::Fmp4).expect("fixtures");
    let (status, init) = get_bytes(&client, &origin.url("/live/init.mp4")).await;
    assert_eq!(status, 200);
    assert_eq!(Some(init.as_slice()), fixtures.init_segment.as_deref());
    let (status, _) = get_bytes(&client, &origin.segment_url(1001)).await;
    assert_eq!(status, 200);
    assert_eq!(origin.served_log()[1].kind, RequestKind::Init);
}

#[tokio::test]
async fn playlist_and_key_status_faults() {
    let origin = start(
        OriginConfig::new(SegmentKind::MpegTsAes128)
            .with_fault(Fault::PlaylistHttpStatus {
                from: Duration::ZERO,
                to: seconds(30.0),
                status: 404,
            })
            .with_fault(Fault::KeyHttpStatus {
                from: Duration::ZERO,
                to: seconds(30.0),
                status: 403,
            }),
    )
    .await;
    let client = client();
    let (status, _) = get_text(&client, &origin.media_playlist_url()).await;
    assert_eq!(status, 404);
    let (status, _) = get_text(&client, &origin.master_playlist_url()).await;
    assert_eq!(status, 404);
    let (status, _) = get_bytes(&client, &origin.url("/live/key.bin")).await;
    assert_eq!(status, 403);
    let (status, _) = get_bytes(&client, &origin.segment_url(1000)).await;
    assert_eq!(status, 200);
    assert!(
        origin.sequences_published().is_empty(),
        "a 404 playlist publishes nothing"
    );
}

#[test]
fn fault_specs_parse() {
    assert_eq!(
        Fault::parse_spec("outage:10-22").expect("outage"),
        Fault::Outage {
            from: seconds(10.0),
            to: seconds(22.0)
        }
    );
    assert_eq!(
        Fault::parse_spec("segment-status:1.5-7.5:503").expect("status"),
        Fault::SegmentHttpStatus {
            from: seconds(1.5),
            to: seconds(7.5),
            status: 503
        }
    );
    assert_eq!(
        Fault::parse_spec("jump:4:6").expect("jump"),
        Fault::MediaSequenceJump {
            at: seconds(4.0),
            skipped_segments: 6
        }
    );
    assert_eq!(
        Fault::parse_spec("slow:0-3:20000").expect("slow"),
        Fault::SlowBodies {
            from: Duration::ZERO,
            to: seconds(3.0),
            bytes_per_second: 20_000
        }
    );
    for bad in [
        "",
        "outage",
        "outage:1",
        "segment-status:1-2:999",
        "nth:x",
        "flood:1-2",
    ] {
        assert!(Fault::parse_spec(bad).is_err(), "{bad:?} must be refused");
    }
}

#[tokio::test]
async fn the_binary_announces_its_url_serves_and_stops_on_sigterm() {
    use std::io::BufRead;
    let log_path = std::env::temp_dir().join(format!(
        "streambot-testkit-test-{}-served.jsonl",
        std::process::id()
    ));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hls-origin"))
        .args([
            "--port", "0", "--window", "3", "--kind", "ts", "--total", "5",
        ])
        .args(["--fault", "discontinuity:1002", "--served-log"])
        .arg(&log_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hls-origin starts");
    let stdout = child.stdout.take().expect("stdout");
    let ready_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await
    .expect("reader task")
    .expect("READY line");
    let base_url = ready_line
        .trim()
        .strip_prefix("READY ")
        .expect("READY prefix")
        .to_string();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");
    let (status, text) = get_text(&client(), &format!("{base_url}/live/media.m3u8")).await;
    assert_eq!(status, 200);
    let parsed = parse_playlist(&text);
    assert_eq!(sequences(&parsed), vec![1000, 1001, 1002]);
    assert_eq!(discontinuity_numbers(&parsed)[&1002], 1, "{text}");

    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(terminated.success());
    let mut exit_status = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            exit_status = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(exit_status) = exit_status else {
        let _ignored = child.kill();
        panic!("hls-origin did not stop within 5 s of SIGTERM");
    };
    assert!(exit_status.success(), "{exit_status:?}");
    let served = std::fs::read_to_string(&log_path).expect("served log written");
    let _ignored = std::fs::remove_file(&log_path);
    assert_eq!(served.lines().count(), 1);
    assert!(served.contains("\"path\":\"/live/media.m3u8\""), "{served}");
}
