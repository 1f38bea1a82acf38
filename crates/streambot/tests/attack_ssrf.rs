//! Attack (issue 11): links that name this machine in every spelling, with private networks NOT
//! allowed. The origin counts its hits: not one request may reach it, and the user is told why.

mod attack_support;

use std::time::Duration;

use attack_support::{HostileServer, Reply, record, run_streambot, vod_playlist};

async fn counting_origin() -> HostileServer {
    HostileServer::start(|path| {
        if path.contains(".m3u8") {
            Reply::playlist(vod_playlist("", &["/seg-0.ts".to_string()]))
        } else {
            Reply::ts(vec![0x47; 188])
        }
    })
    .await
}

/// Every spelling of 127.0.0.1 / ::1 / localhost the URL parser accepts.
fn loopback_spellings(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "127.1",
        "0x7f000001",
        "0x7f.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "017700000001",
        "%31%32%37.0.0.1",
        "127\u{3002}0\u{3002}0\u{3002}1",
        "\u{ff11}\u{ff12}\u{ff17}.0.0.1",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        // Round 2: v6 forms that embed v4 (IPv4-compatible, SIIT, local-use NAT64, 6to4).
        "[::127.0.0.1]",
        "[::ffff:0:127.0.0.1]",
        "[64:ff9b:1::7f00:1]",
        "[2002:7f00:1::]",
        "0.0.0.0",
        "0",
        "localhost",
        "LocalHost",
        "foo.localhost",
        "a.b.localhost",
        "u:p@127.0.0.1",
        "127.0.0.1\u{00ad}",
    ]
    .iter()
    .map(|host| format!("http://{host}:{port}/live.m3u8"))
    .collect()
}

#[tokio::test]
async fn record_refuses_every_spelling_of_loopback_without_one_request() {
    let origin = counting_origin().await;
    let directory = tempfile::tempdir().expect("tempdir");
    for url in loopback_spellings(origin.port()) {
        let output = directory.path().join("out");
        let run = record(
            &url,
            "5s",
            &output,
            &["--no-finalize"],
            false,
            Duration::from_secs(20),
        )
        .await;
        assert!(!run.timed_out, "{url}: hung\n{}", run.stderr);
        assert!(!run.panicked(), "{url}: panicked\n{}", run.stderr);
        assert_ne!(run.exit_code, Some(0), "{url}: exit 0\n{}", run.stderr);
        assert!(
            run.stderr.contains("refused for safety"),
            "{url}: the user is not told it is refused\n{}",
            run.stderr
        );
    }
    assert!(
        origin.hits().is_empty(),
        "requests reached the origin: {:?}",
        origin.hits()
    );
}

#[tokio::test]
async fn probe_refuses_loopback_names_and_literals_without_one_request() {
    let origin = counting_origin().await;
    let port = origin.port();
    for url in [
        format!("http://127.1:{port}/a.m3u8"),
        format!("http://[::1]:{port}/a.m3u8"),
        format!("http://localhost:{port}/a.m3u8"),
        format!("http://x.localhost:{port}/a.m3u8"),
        format!("http://2130706433:{port}/a.m3u8"),
    ] {
        let run = run_streambot(&["probe", &url], false, Duration::from_secs(20)).await;
        assert!(!run.timed_out && !run.panicked(), "{url}\n{}", run.stderr);
        assert_ne!(run.exit_code, Some(0), "{url}\n{}", run.stderr);
        assert!(
            run.stderr.contains("refused for safety"),
            "{url}\n{}",
            run.stderr
        );
    }
    assert!(origin.hits().is_empty(), "{:?}", origin.hits());
}

/// The ffmpeg engine's links (`.ts`, `.flv`, `.mp4`) are checked the same way.
#[tokio::test]
async fn ffmpeg_engine_links_to_loopback_are_refused_without_one_request() {
    let origin = counting_origin().await;
    let port = origin.port();
    let directory = tempfile::tempdir().expect("tempdir");
    for url in [
        format!("http://127.0.0.1:{port}/live.ts"),
        format!("http://localhost:{port}/live.flv"),
        format!("http://[::ffff:127.0.0.1]:{port}/live.mp4"),
        format!("http://0x7f000001:{port}/live.mkv"),
    ] {
        for engine in ["auto", "ffmpeg"] {
            let run = record(
                &url,
                "5s",
                &directory.path().join("out"),
                &["--engine", engine],
                false,
                Duration::from_secs(20),
            )
            .await;
            assert!(!run.timed_out && !run.panicked(), "{url}\n{}", run.stderr);
            assert_ne!(run.exit_code, Some(0), "{url}\n{}", run.stderr);
            assert!(
                run.stderr.contains("refused for safety"),
                "{url}\n{}",
                run.stderr
            );
        }
    }
    assert!(origin.hits().is_empty(), "{:?}", origin.hits());
}

/// Hostnames from /etc/hosts that name this machine: the machine's own name (Debian maps it to
/// 127.0.1.1 or the like) must be refused at resolve time.
#[tokio::test]
async fn the_machines_own_hostname_is_refused_at_resolve_time() {
    let origin = counting_origin().await;
    let Ok(hostname) = std::fs::read_to_string("/etc/hostname") else {
        return;
    };
    let hostname = hostname.trim().to_string();
    if hostname.is_empty() {
        return;
    }
    let url = format!("http://{hostname}:{}/a.m3u8", origin.port());
    let run = run_streambot(&["probe", &url], false, Duration::from_secs(20)).await;
    assert!(!run.timed_out && !run.panicked(), "{}", run.stderr);
    assert_ne!(run.exit_code, Some(0), "{}", run.stderr);
    assert!(origin.hits().is_empty(), "{:?}", origin.hits());
}
