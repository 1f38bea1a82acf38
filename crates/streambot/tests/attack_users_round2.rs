//! Issue 11, second attack round on the user side, through the real binary (`streambot run`,
//! `bot`, `worker`, `dashboard`, `config check`) and the fake Bot API server: what reaches the
//! process's output when Telegram sends updates the bot (or teloxide) cannot read, and when a
//! setting that carries a password is wrong; which webhook secrets start. No secret (a stream
//! URL's password, the bot token, REDIS_URL's password) may reach any output at any log level.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use streambot_testkit::telegram::FakeTelegram;
use support::{BINARY, send_signal};
use tokio::process::Command;

const URL_PASSWORD: &str = "hunter2-url-password";

fn message_with_text(user_id: i64, chat: serde_json::Value, text: &str) -> serde_json::Value {
    json!({
        "message_id": 700 + user_id,
        "from": {"id": user_id, "is_bot": false, "first_name": "Eve"},
        "chat": chat,
        "date": 1_700_000_000,
        "text": text,
    })
}

/// Updates teloxide 0.17 cannot read (a chat type it does not know, an update kind newer than
/// it): teloxide's dispatcher logged each one whole at ERROR ("Cannot parse an update … Value:
/// {…}"), the user's text with a link's password in it, and the sender got no answer. They are
/// now skipped with a line that names the update's kind and id only, and a private message is
/// answered with a sentence saying it could not be read. Readable updates the bot does not handle (an edited
/// message, an inline query) leave no trace of their text either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_the_bot_cannot_read_never_put_their_text_in_the_log() {
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    let directory = tempfile::tempdir().expect("tempdir");
    let child = Command::new(BINARY)
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATA_DIR", directory.path())
        .env("LOG_LEVEL", "debug")
        .env("TELEGRAM_BOT_TOKEN", &telegram.token)
        .env("TELEGRAM_API_URL", &telegram.api_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("streambot run starts");
    let link = format!("https://viewer:{URL_PASSWORD}@cdn.example.test/live/index.m3u8");
    let private_chat = |id: i64| json!({"id": id, "type": "private", "first_name": "Eve"});
    // A chat type teloxide does not know.
    telegram.push_raw_update(json!({
        "message": message_with_text(
            3001,
            json!({"id": -1_003_001, "type": "monoforum", "title": "Direct messages"}),
            &format!("/record {link} 1h"),
        ),
    }));
    // An update kind newer than teloxide.
    telegram.push_raw_update(json!({
        "guest_message": message_with_text(3002, private_chat(3002), &format!("/record {link}")),
    }));
    // A private message with a field in a shape teloxide does not expect: not read, but answered.
    let mut odd_private = message_with_text(3006, private_chat(3006), &format!("/record {link}"));
    odd_private["sender_business_bot"] = json!({"id": 5});
    telegram.push_raw_update(json!({ "message": odd_private }));
    // Readable, not handled by the bot.
    telegram.push_raw_update(json!({
        "edited_message": message_with_text(3003, private_chat(3003), &format!("/record {link}")),
    }));
    telegram.push_raw_update(json!({
        "inline_query": {
            "id": "iq-1",
            "from": {"id": 3004, "is_bot": false, "first_name": "Eve"},
            "query": link,
            "offset": "",
        },
    }));
    // Afterwards, an ordinary message is answered: the updates before it were dealt with.
    telegram.send_text_from_user(3005, "/start");
    telegram
        .wait_for_text(3005, "records live streams", Duration::from_secs(30))
        .await
        .expect("the bot goes on answering");
    telegram
        .wait_for_text(3006, "could not read that message", Duration::from_secs(30))
        .await
        .expect("a private message that cannot be read is answered");
    let process_id = child.id().expect("pid");
    assert!(send_signal(process_id, "TERM"), "kill -TERM {process_id}");
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("exits within 15 s of SIGTERM")
        .expect("output");
    let all_output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all_output.contains("panicked"), "{all_output}");
    // Nor the bot token, at debug level (reqwest and hyper log there too).
    let token_secret = telegram
        .token
        .split_once(':')
        .map_or(telegram.token.as_str(), |(_, secret)| secret)
        .to_string();
    let leaking: Vec<&str> = all_output
        .lines()
        .filter(|line| line.contains(URL_PASSWORD) || line.contains(&token_secret))
        .collect();
    assert!(leaking.is_empty(), "a secret reached the log: {leaking:#?}");
}

/// Settings that carry a password, given wrong (another scheme, a malformed URL) or pointing at
/// a Redis that is down: `run`, `worker`, `dashboard` and `config check` say which setting is
/// wrong and never print the password. A setting's error used to quote the whole value
/// (`REDIS_URL="http://:PASSWORD@host" is not allowed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_setting_with_a_password_is_named_without_the_password() {
    const REDIS_PASSWORD: &str = "hunter2-redis-password";
    const API_PASSWORD: &str = "hunter2-api-password";
    let directory = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, String)> = vec![
        (
            "REDIS_URL",
            format!("http://:{REDIS_PASSWORD}@127.0.0.1:6379/0"),
        ),
        ("REDIS_URL", format!("redis://:{REDIS_PASSWORD}@[::1/0")),
        // A Redis that does not answer (port 1 on loopback).
        (
            "REDIS_URL",
            format!("redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"),
        ),
        (
            "TELEGRAM_API_URL",
            format!("ftp://bot:{API_PASSWORD}@127.0.0.1:9/"),
        ),
        (
            "TELEGRAM_WEBHOOK_URL",
            format!("ftp://hook:{API_PASSWORD}@bot.example.test/telegram"),
        ),
    ];
    for (variable, value) in &cases {
        let roles: &[&[&str]] = if *variable == "REDIS_URL" {
            &[&["run"], &["worker"], &["dashboard"], &["config", "check"]]
        } else {
            &[&["run"], &["bot"], &["config", "check"]]
        };
        for arguments in roles {
            let mut child = Command::new(BINARY)
                .args(*arguments)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("DATA_DIR", directory.path())
                .env("LOG_LEVEL", "debug")
                .env("TELEGRAM_BOT_TOKEN", "123456:not-a-real-token-abcdef")
                .env("DASHBOARD_ENABLED", "true")
                .env("DASHBOARD_SECRET", "dashboard-secret-0123456789")
                .env("DASHBOARD_BIND", "127.0.0.1:0")
                .env(variable, value)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("runs");
            let readers = [
                tokio::spawn(read_all(child.stdout.take())),
                tokio::spawn(read_all(child.stderr.take())),
            ];
            // A wrong setting ends the process at once; a Redis that is down may be waited for
            // a while: what it printed meanwhile counts.
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                child.start_kill().expect("kill");
                let _ = child.wait().await;
            }
            let mut output = Vec::new();
            for reader in readers {
                output.extend(reader.await.expect("reader"));
            }
            let all_output = String::from_utf8_lossy(&output).to_string();
            assert!(!all_output.contains("panicked"), "{all_output}");
            for secret in [REDIS_PASSWORD, API_PASSWORD, "dashboard-secret-0123456789"] {
                assert!(
                    !all_output.contains(secret),
                    "{arguments:?} with {variable}={value:?} printed a secret: {all_output}"
                );
            }
        }
    }
}

async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes).await;
    }
    bytes
}

/// Whoever knows TELEGRAM_WEBHOOK_SECRET can post updates to the webhook as any user, an admin
/// too. A guessable one (`a`, `aaaaaaaaaaaaaaaaaaaa`, 12 characters) was accepted; it is refused
/// at start-up like a weak DASHBOARD_SECRET, and a good one still starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessable_webhook_secret_is_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let check = |secret: &str| {
        Command::new(BINARY)
            .args(["config", "check"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATA_DIR", directory.path())
            .env("TELEGRAM_BOT_TOKEN", "123456:not-a-real-token-abcdef")
            .env("TELEGRAM_WEBHOOK_URL", "https://bot.example.test/telegram")
            .env("TELEGRAM_WEBHOOK_SECRET", secret)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
    };
    for weak in [
        "a",
        "aaaaaaaaaaaaaaaaaaaa",
        "abcdefghijkl",
        "abababababababababab",
    ] {
        let output = check(weak).await.expect("runs");
        let all_output = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{weak:?} accepted: {all_output}");
        assert!(
            all_output.contains("TELEGRAM_WEBHOOK_SECRET"),
            "the setting is named: {all_output}"
        );
    }
    let output = check("Zq9-webhook_Secret-7fK2").await.expect("runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
