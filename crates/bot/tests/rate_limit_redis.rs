//! The Redis sliding-window rate limit against a real Redis (at `REDIS_URL`, or 127.0.0.1:6379,
//! with a random key prefix per test; skipped with a message when no Redis answers), and its
//! fallback when Redis is unreachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streambot_bot::rate_limit::{
    RateLimitDecision, RateLimitRule, RateLimiter, RedisSlidingWindowRateLimiter,
};
use streambot_testkit::{random_key_prefix, redis_url_for_test};

fn limiter(url: &str, prefix: &str, rule: RateLimitRule) -> RateLimiter {
    RateLimiter::Redis(RedisSlidingWindowRateLimiter::new(url, prefix, rule).expect("redis url"))
}

/// One command on a connection of its own.
async fn query<T: redis::FromRedisValue>(url: &str, command: &redis::Cmd) -> T {
    let client = redis::Client::open(url).expect("client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    command.query_async(&mut connection).await.expect("query")
}

fn retry_after(decision: RateLimitDecision) -> Duration {
    match decision {
        RateLimitDecision::Refused { retry_after } => retry_after,
        RateLimitDecision::Allowed => panic!("expected a refusal"),
    }
}

#[tokio::test]
async fn twenty_allowed_then_refused_until_the_oldest_leaves() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    let limiter = limiter(&url, &random_key_prefix(), RateLimitRule::default());
    // The oldest message's time in Redis lies between the instants around its check (the first
    // check also connects, which can take long on a loaded machine), and so does the refusal's:
    // the wait is bounded by those four instants, whatever the round trips cost.
    let before_first = Instant::now();
    assert_eq!(limiter.check(7).await, RateLimitDecision::Allowed);
    let after_first = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    for message in 2..=20 {
        assert_eq!(
            limiter.check(7).await,
            RateLimitDecision::Allowed,
            "message {message}"
        );
    }
    let before_refusal = Instant::now();
    let refused = retry_after(limiter.check(7).await);
    let after_refusal = Instant::now();
    let window = Duration::from_secs(60);
    let shortest = (before_first + window).saturating_duration_since(after_refusal);
    let longest = (after_first + window).saturating_duration_since(before_refusal);
    // Redis keeps milliseconds: a few of rounding on either side.
    let rounding = Duration::from_millis(5);
    assert!(
        refused + rounding >= shortest && refused <= longest + rounding,
        "retry_after {refused:?}, expected between {shortest:?} and {longest:?}"
    );
    assert!(refused < Duration::from_millis(59_500), "{refused:?}");
    // A refused message is not counted: the wait does not grow.
    let again = retry_after(limiter.check(7).await);
    assert!(again <= refused, "{again:?} > {refused:?}");
}

#[tokio::test]
async fn the_window_slides_and_the_key_expires() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    let prefix = random_key_prefix();
    let rule = RateLimitRule {
        maximum_messages: 3,
        window: Duration::from_millis(800),
    };
    let limiter = limiter(&url, &prefix, rule);
    for _ in 0..3 {
        assert_eq!(limiter.check(1).await, RateLimitDecision::Allowed);
    }
    let wait = retry_after(limiter.check(1).await);
    assert!(wait <= Duration::from_millis(800), "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_eq!(limiter.check(1).await, RateLimitDecision::Allowed);
    // The sorted set expires with the window (no memory kept for idle users).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let exists: bool = query(
        &url,
        redis::cmd("EXISTS").arg(format!("{prefix}ratelimit:1")),
    )
    .await;
    assert!(!exists, "the window key outlived the window");
}

#[tokio::test]
async fn two_bot_processes_share_one_window() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    let prefix = random_key_prefix();
    let first = Arc::new(limiter(&url, &prefix, RateLimitRule::default()));
    let second = Arc::new(limiter(&url, &prefix, RateLimitRule::default()));
    for message in 0..20 {
        let limiter = if message % 2 == 0 { &first } else { &second };
        assert_eq!(limiter.check(42).await, RateLimitDecision::Allowed);
    }
    retry_after(first.check(42).await);
    retry_after(second.check(42).await);
    // Concurrent checks from both never let more than the maximum through.
    let mut checks = tokio::task::JoinSet::new();
    for index in 0..40 {
        let limiter = Arc::clone(if index % 2 == 0 { &first } else { &second });
        checks.spawn(async move { limiter.check(43).await });
    }
    let decisions = checks.join_all().await;
    let allowed = decisions
        .iter()
        .filter(|decision| **decision == RateLimitDecision::Allowed)
        .count();
    assert_eq!(allowed, 20);
    // A different prefix is a different deployment: not shared.
    let elsewhere = limiter(&url, &random_key_prefix(), RateLimitRule::default());
    assert_eq!(elsewhere.check(42).await, RateLimitDecision::Allowed);
}

#[tokio::test]
async fn users_have_separate_windows() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    let limiter = limiter(
        &url,
        &random_key_prefix(),
        RateLimitRule {
            maximum_messages: 2,
            window: Duration::from_secs(60),
        },
    );
    for _ in 0..2 {
        assert_eq!(limiter.check(1).await, RateLimitDecision::Allowed);
    }
    retry_after(limiter.check(1).await);
    for _ in 0..2 {
        assert_eq!(limiter.check(2).await, RateLimitDecision::Allowed);
    }
    retry_after(limiter.check(2).await);
    assert_eq!(limiter.check(-100_123).await, RateLimitDecision::Allowed);
}

#[tokio::test]
async fn an_unreachable_redis_allows_messages_quickly() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let redis = RedisSlidingWindowRateLimiter::new(&url, "streambot:", RateLimitRule::default())
        .expect("url");
    assert!(redis.try_check(1).await.is_err());
    let limiter = RateLimiter::Redis(redis);
    let started = Instant::now();
    for _ in 0..30 {
        assert_eq!(limiter.check(1).await, RateLimitDecision::Allowed);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "30 checks took {:?}",
        started.elapsed()
    );
    // A URL that does not parse keeps the limit in memory.
    let fallback =
        RateLimiter::from_settings(RateLimitRule::default(), Some("not a url"), "streambot:");
    assert!(matches!(fallback, RateLimiter::InMemory(_)));
}

/// The bot itself with `redis_url` set: another bot process (a second limiter on the same prefix)
/// filled the user's window, so this bot refuses the user's next message with the time to wait;
/// another user is answered.
#[tokio::test]
async fn the_bot_refuses_a_user_whose_window_another_process_filled() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    let prefix = random_key_prefix();
    let other_process = limiter(&url, &prefix, RateLimitRule::default());
    for _ in 0..20 {
        assert_eq!(other_process.check(501).await, RateLimitDecision::Allowed);
    }
    let telegram = streambot_testkit::telegram::FakeTelegram::start()
        .await
        .expect("fake telegram");
    let directory = tempfile::tempdir().expect("tempdir");
    let backend = streambot_store::SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("sqlite");
    let mut settings = streambot_bot::BotSettings::new(
        &telegram.token,
        directory.path().join("recordings"),
        directory.path(),
    );
    settings.api_url = Some(telegram.api_url.parse().expect("url"));
    settings.redis_url = Some(url.clone());
    settings.redis_key_prefix = prefix.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let bot = tokio::spawn(streambot_bot::run_bot(settings, backend, shutdown.clone()));

    telegram.send_text_from_user(501, "/help");
    let refused = telegram
        .wait_for_text(501, "too fast", Duration::from_secs(20))
        .await
        .expect("the refusal");
    assert!(
        refused.text().is_some_and(|text| ["58", "59", "60"]
            .iter()
            .any(|seconds| text.contains(&format!("Try again in {seconds} s")))),
        "{:?}",
        refused.text()
    );
    telegram.send_text_from_user(502, "/help");
    let answered = telegram
        .wait_for_call(Duration::from_secs(20), |call| {
            call.method == "sendMessage" && call.chat_id() == Some(502)
        })
        .await
        .expect("the other user is answered");
    assert!(
        answered
            .text()
            .is_some_and(|text| !text.contains("too fast")),
        "{:?}",
        answered.text()
    );
    // The bot's check went to Redis: user 502's window holds one entry.
    let entries: i64 = query(
        &url,
        redis::cmd("ZCARD").arg(format!("{prefix}ratelimit:502")),
    )
    .await;
    assert_eq!(entries, 1);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), bot).await;
}
