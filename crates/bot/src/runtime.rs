//! The running bot: its settings, the shared context of the handlers, and start-up (the token is
//! checked with getMe before the dispatcher starts; a rejected token is one clear error, an
//! unreachable Telegram is retried with backoff). Handlers live in `handlers`, button presses in
//! `callbacks`, admin commands in `admin`, status messages in `status_messages`, keyboards in
//! `keyboards`; finished files are sent by the worker through `part_sender`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streambot_core::JobId;
use streambot_core::UserPreferences;
use streambot_core::job::Job;
use streambot_store::{JobBackend, JobsError, ScheduleStore};
use teloxide::dispatching::{Dispatcher, UpdateFilterExt};
use teloxide::dptree;
use teloxide::prelude::*;
use teloxide::types::{BotCommand as TelegramCommand, Update};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalogue::Language;
use crate::messages::Words;
use crate::outbound::OutboundLimits;
use crate::rate_limit::{RateLimitDecision, RateLimitRule, RateLimiter};
use crate::status_messages::StatusMessage;
use crate::telegram_api::{TelegramApi, redact_secret};
use crate::unreadable_updates::{ReadableUpdatesOnly, UnreadableHandler, UnreadableUpdate};

pub use streambot_core::{CLOUD_BOT_API_UPLOAD_LIMIT_BYTES, LOCAL_BOT_API_UPLOAD_LIMIT_BYTES};
/// The longest recording of a job that names no duration, out of the box (the seed's
/// `FFMPEG_DEFAULT_TIMEOUT`, 7200 s).
pub const DEFAULT_MAXIMUM_RECORDING: Duration = Duration::from_secs(7200);

/// Everything the bot needs to know, read from the settings by the binary.
#[derive(Debug, Clone)]
pub struct BotSettings {
    pub token: String,
    /// `TELEGRAM_API_URL`: a local Bot API server; the cloud API when `None`.
    pub api_url: Option<url::Url>,
    pub admin_user_ids: HashSet<i64>,
    pub maximum_concurrent_jobs_per_user: usize,
    pub maximum_concurrent_jobs_per_vip: usize,
    pub rate_limit: RateLimitRule,
    /// Redis for the rate limit, shared by every bot process; in memory when `None`.
    pub redis_url: Option<String>,
    /// Prefix of the rate-limit keys in Redis.
    pub redis_key_prefix: String,
    /// Where the workers record (`LOCAL_STORAGE_PATH`); finished files are sent from here.
    pub recordings_directory: PathBuf,
    /// Per-user disk quota; `None` for no quota.
    pub user_disk_quota_bytes: Option<u64>,
    /// The longest recording (`FFMPEG_DEFAULT_TIMEOUT`): a job without a duration stops there,
    /// and only admins may ask for longer. `None`: no cap.
    pub default_maximum_duration: Option<Duration>,
    pub status_edit_interval: Duration,
    pub stall_timeout: Duration,
    pub allow_private_networks: bool,
    /// Timeout of requests to Telegram, uploads included.
    pub request_timeout: Duration,
    /// Webhook mode (`TELEGRAM_WEBHOOK_URL`); long polling when `None`.
    pub webhook: Option<WebhookSettings>,
    /// Where finished files are stored, for `/delete`; `None` deletes only the job's directory.
    pub storage: Option<Arc<streambot_storage::Storage>>,
    /// Longest wait between two getMe attempts while Telegram cannot be reached at start-up.
    pub startup_retry_ceiling: Duration,
    /// Telegram's sending limits and the outbound queue's bounds.
    pub outbound: OutboundLimits,
    /// `DEFAULT_TIMEZONE`: the zone of users who never set `/timezone`.
    pub default_time_zone: streambot_core::schedule::Tz,
    /// `SCHEDULE_LEAD`: how long before its time a scheduled job starts.
    pub schedule_lead: Duration,
    /// Active schedules a user may keep (admins: no cap).
    pub maximum_schedules_per_user: usize,
}

/// Where Telegram delivers updates in webhook mode.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The public HTTPS URL Telegram posts to (`TELEGRAM_WEBHOOK_URL`).
    pub public_url: url::Url,
    /// The local address the webhook server listens on (`TELEGRAM_WEBHOOK_BIND`).
    pub bind_address: std::net::SocketAddr,
    /// Checked on every request (`X-Telegram-Bot-Api-Secret-Token`); random when `None`.
    pub secret_token: Option<String>,
}

impl BotSettings {
    /// Defaults; `_data_directory` is where bot state used to be kept (now in the store).
    pub fn new(token: &str, recordings_directory: PathBuf, _data_directory: &Path) -> Self {
        BotSettings {
            token: token.to_string(),
            api_url: None,
            admin_user_ids: HashSet::new(),
            maximum_concurrent_jobs_per_user: 3,
            maximum_concurrent_jobs_per_vip: 6,
            rate_limit: RateLimitRule::default(),
            redis_url: None,
            redis_key_prefix: "streambot:".to_string(),
            recordings_directory,
            user_disk_quota_bytes: None,
            default_maximum_duration: Some(DEFAULT_MAXIMUM_RECORDING),
            status_edit_interval: Duration::from_secs(5),
            stall_timeout: streambot_core::options::DEFAULT_STALL_TIMEOUT,
            allow_private_networks: false,
            request_timeout: Duration::from_secs(30 * 60),
            webhook: None,
            storage: None,
            startup_retry_ceiling: Duration::from_secs(60),
            outbound: OutboundLimits::default(),
            default_time_zone: streambot_core::schedule::Tz::UTC,
            schedule_lead: streambot_core::DEFAULT_SCHEDULE_LEAD,
            maximum_schedules_per_user: streambot_core::DEFAULT_MAXIMUM_SCHEDULES_PER_USER,
        }
    }

    pub fn upload_limit_bytes(&self) -> u64 {
        streambot_core::telegram_upload_limit_bytes(
            self.api_url.as_ref().and_then(|url| url.host_str()),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("the Telegram bot token is missing or malformed (TELEGRAM_BOT_TOKEN)")]
    BadToken,
    #[error(
        "Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): copy the token from @BotFather again"
    )]
    TokenRejected,
    #[error("could not build the HTTP client for Telegram: {0}")]
    Client(String),
    #[error("could not set the webhook (TELEGRAM_WEBHOOK_URL): {0}")]
    Webhook(String),
    #[error("Telegram refused to start the bot: {0}")]
    Telegram(String),
}

impl BotError {
    /// Worth running again as is (a network problem), as opposed to a setting to fix.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BotError::Telegram(_))
    }

    pub fn user_message(&self) -> String {
        self.to_string()
    }
}

/// A link offered on a button, kept until pressed (bounded: the oldest go first).
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub owner_id: i64,
    pub chat_id: i64,
    pub url: String,
}

#[derive(Debug, Default)]
pub(crate) struct OfferBook {
    next_number: u64,
    offers: BTreeMap<u64, Offer>,
}

const MAXIMUM_OFFERS_KEPT: usize = 2000;
/// How long a user's preferences (language, VIP) are used before the store is asked again.
const PREFERENCES_CACHE_TIME: Duration = Duration::from_secs(30);
/// Cached preferences kept at most (the oldest are dropped first).
const MAXIMUM_CACHED_PREFERENCES: usize = 100_000;

/// Offers one owner may have at once: past it their oldest goes, so one user sending links
/// without end cannot push everyone else's offers out of the book.
const MAXIMUM_OFFERS_PER_OWNER: usize = 50;

impl OfferBook {
    fn add(&mut self, offer: Offer) -> u64 {
        let owner_id = offer.owner_id;
        self.next_number += 1;
        self.offers.insert(self.next_number, offer);
        let owners_offers: Vec<u64> = self
            .offers
            .iter()
            .filter(|(_, kept)| kept.owner_id == owner_id)
            .map(|(number, _)| *number)
            .collect();
        for number in owners_offers
            .iter()
            .take(owners_offers.len().saturating_sub(MAXIMUM_OFFERS_PER_OWNER))
        {
            self.offers.remove(number);
        }
        while self.offers.len() > MAXIMUM_OFFERS_KEPT {
            self.offers.pop_first();
        }
        self.next_number
    }
}

#[cfg(test)]
mod offer_book_tests {
    use super::*;

    fn offer(owner_id: i64) -> Offer {
        Offer {
            owner_id,
            chat_id: owner_id,
            url: "https://example.com/live.m3u8".to_string(),
        }
    }

    /// One user sending links without end (10 a message, 20 messages a minute) pushed every
    /// other user's "Record this link" buttons out of the book (2,000 offers in all): they
    /// answered "expired". Each owner now keeps at most their own 50.
    #[test]
    fn one_owner_cannot_push_out_the_offers_of_others() {
        let mut book = OfferBook::default();
        let others: Vec<u64> = (0..100)
            .map(|owner| book.add(offer(1_000 + owner)))
            .collect();
        let mut flooder_numbers = Vec::new();
        for _ in 0..5_000 {
            flooder_numbers.push(book.add(offer(42)));
        }
        for number in &others {
            assert!(
                book.offers.contains_key(number),
                "offer {number} was pushed out"
            );
        }
        let flooder_kept = book
            .offers
            .values()
            .filter(|kept| kept.owner_id == 42)
            .count();
        assert_eq!(flooder_kept, MAXIMUM_OFFERS_PER_OWNER);
        // The newest of the flooder's are the ones kept.
        assert!(
            book.offers
                .contains_key(&flooder_numbers[flooder_numbers.len() - 1])
        );
        assert!(!book.offers.contains_key(&flooder_numbers[0]));
    }
}

/// What the bot needs of the store: jobs, the queue and schedules.
pub trait BotBackend: JobBackend + ScheduleStore {}
impl<T: JobBackend + ScheduleStore> BotBackend for T {}

/// How many people's Telegram language the bot keeps in memory before it starts again.
const MAXIMUM_SEEN_LANGUAGES: usize = 100_000;

pub(crate) struct BotContext<B: JobBackend> {
    pub backend: B,
    pub settings: BotSettings,
    pub api: TelegramApi,
    pub rate_limiter: RateLimiter,
    /// When each user was last told they hit the rate limit.
    pub rate_limit_notices: crate::limit_notices::LimitNotices,
    /// Button presses per user: [`PRESSES_PER_MESSAGE`] times the message limit, same window.
    pub press_limiter: RateLimiter,
    /// When each user was last told to press more slowly.
    pub press_limit_notices: crate::limit_notices::LimitNotices,
    pub status_messages: Mutex<HashMap<JobId, StatusMessage>>,
    /// Jobs whose first status message is on its way (sent by a task of the status updater).
    pub status_messages_being_sent: Mutex<HashSet<JobId>>,
    /// Preferences read from (or written to) the store, by owner, with when they were read: other
    /// bot processes may change them, so they are read again after `PREFERENCES_CACHE_TIME`.
    pub preferences: Mutex<HashMap<i64, (Instant, UserPreferences)>>,
    /// Telegram's `language_code` of each user, as last seen.
    pub seen_languages: Mutex<HashMap<i64, Language>>,
    pub bot_username: Mutex<Option<String>>,
    /// Links offered on buttons, by number.
    pub offers: Mutex<OfferBook>,
    /// (chat, user) → whether the user administers the chat, with when Telegram said so.
    pub chat_administrators: Mutex<HashMap<(i64, i64), (Instant, bool)>>,
    pub tasks: TaskTracker,
}

/// Presses allowed per message allowed by the rate limit (paging a list, pickers and a status
/// refresh take a few presses where a message takes one).
pub(crate) const PRESSES_PER_MESSAGE: usize = 3;

/// How long Telegram's answer to "does this person administer the chat?" is kept.
const CHAT_ADMINISTRATOR_CACHE_TIME: Duration = Duration::from_secs(60);
/// Answers kept at most (the cache is emptied past it).
const MAXIMUM_CACHED_CHAT_ADMINISTRATORS: usize = 10_000;

/// May someone who pressed a button act for the owner of a job, a schedule or an offer?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActingDecision {
    /// As this identity (the owner's id, or their own as an admin of the bot).
    As(i64),
    /// Someone else's.
    NotYours,
    /// A chat owns it and this person does not administer that chat (or Telegram could not
    /// say).
    ChatAdministratorsOnly,
}

impl<B: JobBackend> BotContext<B> {
    pub fn add_offer(&self, offer: Offer) -> Option<u64> {
        self.offers.lock().ok().map(|mut book| book.add(offer))
    }

    pub fn take_offer(&self, number: u64) -> Option<Offer> {
        self.offers.lock().ok()?.offers.remove(&number)
    }

    /// An offer taken by a press that may not use it goes back under its number.
    pub fn put_back_offer(&self, number: u64, offer: Offer) {
        if let Ok(mut book) = self.offers.lock() {
            book.offers.insert(number, offer);
        }
    }

    pub fn is_admin(&self, owner_id: i64) -> bool {
        self.settings.admin_user_ids.contains(&owner_id)
    }

    /// Who a button press acts as. The owner (or an admin of the bot) acts as themselves. A
    /// thing a chat owns (a channel post, a group's anonymous admin, a post as a channel; its
    /// owner id is the chat's negative id) may be acted on from the chat it was asked in, and
    /// only by an administrator of the owning chat: a channel's subscribers and a group's
    /// members see its buttons too, and are not that identity (issue 11).
    pub async fn acting_identity(
        &self,
        owner_id: i64,
        owner_chat_id: i64,
        user_id: i64,
        pressed_in_chat_id: i64,
    ) -> ActingDecision {
        if owner_id == user_id || self.is_admin(user_id) {
            return ActingDecision::As(user_id);
        }
        if owner_id >= 0 || owner_chat_id != pressed_in_chat_id {
            return ActingDecision::NotYours;
        }
        if self.administers_chat(owner_id, user_id).await {
            ActingDecision::As(owner_id)
        } else {
            ActingDecision::ChatAdministratorsOnly
        }
    }

    /// Whether `user_id` is an administrator or the creator of `chat_id`, from Telegram
    /// (cached for a minute); `false` when Telegram cannot say.
    async fn administers_chat(&self, chat_id: i64, user_id: i64) -> bool {
        let cached = self.chat_administrators.lock().ok().and_then(|cache| {
            cache
                .get(&(chat_id, user_id))
                .filter(|(asked_at, _)| asked_at.elapsed() < CHAT_ADMINISTRATOR_CACHE_TIME)
                .map(|(_, administers)| *administers)
        });
        if let Some(administers) = cached {
            return administers;
        }
        match self.api.is_chat_administrator(chat_id, user_id).await {
            Ok(administers) => {
                if let Ok(mut cache) = self.chat_administrators.lock() {
                    if cache.len() >= MAXIMUM_CACHED_CHAT_ADMINISTRATORS {
                        cache.clear();
                    }
                    cache.insert((chat_id, user_id), (Instant::now(), administers));
                }
                administers
            }
            Err(error) => {
                tracing::info!(chat_id, user_id, %error, "could not ask Telegram who administers a chat; the press is refused");
                false
            }
        }
    }

    /// Saved preferences (cached; the defaults when the store cannot say).
    pub async fn preferences_of(&self, owner_id: i64) -> UserPreferences {
        if let Some(cached) = self.preferences.lock().ok().and_then(|cache| {
            cache
                .get(&owner_id)
                .filter(|(read_at, _)| read_at.elapsed() < PREFERENCES_CACHE_TIME)
                .map(|(_, preferences)| preferences.clone())
        }) {
            return cached;
        }
        match self.backend.get_user_preferences(owner_id).await {
            Ok(mut preferences) => {
                // A store that keeps nothing yet answers the defaults: what this process was
                // told stays, rather than being forgotten after the cache time.
                if preferences == UserPreferences::default()
                    && let Some((_, known)) = self
                        .preferences
                        .lock()
                        .ok()
                        .and_then(|cache| cache.get(&owner_id).cloned())
                {
                    preferences = known;
                }
                self.cache_preferences(owner_id, &preferences);
                preferences
            }
            Err(error) => {
                tracing::warn!(owner_id, %error, "could not read a user's preferences");
                UserPreferences::default()
            }
        }
    }

    pub async fn update_preferences(
        &self,
        owner_id: i64,
        change: impl FnOnce(&mut UserPreferences),
    ) -> Result<(), JobsError> {
        let mut preferences = self.preferences_of(owner_id).await;
        change(&mut preferences);
        self.cache_preferences(owner_id, &preferences);
        self.backend
            .set_user_preferences(owner_id, preferences)
            .await
    }

    fn cache_preferences(&self, owner_id: i64, preferences: &UserPreferences) {
        if let Ok(mut cache) = self.preferences.lock() {
            if cache.len() >= MAXIMUM_CACHED_PREFERENCES {
                cache.retain(|_, (read_at, _)| read_at.elapsed() < PREFERENCES_CACHE_TIME);
            }
            cache.insert(owner_id, (Instant::now(), preferences.clone()));
        }
    }

    pub async fn is_vip(&self, owner_id: i64) -> bool {
        self.preferences_of(owner_id).await.vip
    }

    pub async fn concurrent_job_limit(&self, owner_id: i64) -> Option<usize> {
        if self.is_admin(owner_id) {
            None
        } else if self.is_vip(owner_id).await {
            Some(self.settings.maximum_concurrent_jobs_per_vip)
        } else {
            Some(self.settings.maximum_concurrent_jobs_per_user)
        }
    }

    pub fn remember_language_code(&self, owner_id: i64, language_code: Option<&str>) {
        if let Some(language) = language_code.and_then(Language::from_code)
            && let Ok(mut seen) = self.seen_languages.lock()
        {
            // Bounded: a flood of distinct senders starts it again (a forgotten language is
            // seen again on the person's next message; `/language` choices live in the store).
            if seen.len() >= MAXIMUM_SEEN_LANGUAGES && !seen.contains_key(&owner_id) {
                seen.clear();
            }
            seen.insert(owner_id, language);
        }
    }

    /// The words for someone: their `/language`, else their Telegram language, else English.
    pub async fn words_for(&self, owner_id: i64) -> Words {
        let preferences = self.preferences_of(owner_id).await;
        self.words_in(owner_id, &preferences)
    }

    /// The words for a progress edit of a status message: from this process's cached
    /// preferences however old (they are read at once when not cached), so the status scan's
    /// edits of 1,000 live jobs read no preferences; state changes and button presses use
    /// `words_for` (fresh within `PREFERENCES_CACHE_TIME`). This process's own changes are
    /// cached when made.
    pub async fn words_for_progress_edit(&self, owner_id: i64) -> Words {
        let cached = self.preferences.lock().ok().and_then(|cache| {
            cache
                .get(&owner_id)
                .map(|(_, preferences)| preferences.clone())
        });
        match cached {
            Some(preferences) => self.words_in(owner_id, &preferences),
            None => self.words_for(owner_id).await,
        }
    }

    fn words_in(&self, owner_id: i64, preferences: &UserPreferences) -> Words {
        let chosen = preferences
            .language
            .as_deref()
            .and_then(Language::from_code);
        let seen = || {
            self.seen_languages
                .lock()
                .ok()
                .and_then(|seen| seen.get(&owner_id).copied())
        };
        Words::new(chosen.or_else(seen).unwrap_or_default())
    }

    pub async fn reply(&self, chat_id: i64, text: &str) {
        if let Err(error) = self.api.send_text(chat_id, text, None).await {
            tracing::warn!(chat_id, %error, "could not answer");
        }
    }

    /// A job someone may act on: their own, or any for an admin.
    pub async fn owned_job(&self, owner_id: i64, job_id: JobId) -> Result<Option<Job>, JobsError> {
        let job = self.backend.get_job(job_id).await?;
        Ok(job.filter(|job| job.owner.user_id == owner_id || self.is_admin(owner_id)))
    }

    pub async fn live_jobs_of(&self, owner_id: i64) -> Result<Vec<Job>, JobsError> {
        let jobs = self.backend.list_jobs_for_user(owner_id, 200).await?;
        Ok(jobs
            .into_iter()
            .filter(|job| !job.state.is_terminal())
            .collect())
    }
}

/// Logs the update listener's errors with the token taken out (teloxide's own handler prints
/// reqwest errors, whose text holds the request URL and so the token).
struct RedactingErrorHandler {
    token: String,
}

impl<E: std::fmt::Debug + Send + 'static> teloxide::error_handlers::ErrorHandler<E>
    for RedactingErrorHandler
{
    fn handle_error(self: Arc<Self>, error: E) -> futures_like::BoxFuture<'static, ()> {
        let text = redact_secret(&format!("{error:?}"), &self.token);
        Box::pin(async move {
            tracing::warn!(error = %text, "receiving updates from Telegram failed; retrying");
        })
    }
}

mod futures_like {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// Runs the bot until `shutdown`. Handlers never block on a recording.
pub async fn run_bot<B: BotBackend>(
    settings: BotSettings,
    backend: B,
    shutdown: CancellationToken,
) -> Result<(), BotError> {
    if settings.token.trim().is_empty() || !settings.token.contains(':') {
        return Err(BotError::BadToken);
    }
    let client = teloxide::net::default_reqwest_settings()
        .timeout(settings.request_timeout)
        .build()
        .map_err(|error| BotError::Client(redact_secret(&error.to_string(), &settings.token)))?;
    let mut bot = Bot::with_client(settings.token.clone(), client);
    if let Some(api_url) = &settings.api_url {
        bot = bot.set_api_url(api_url.clone());
    }
    let Some(me) =
        crate::startup::check_token(&bot, settings.startup_retry_ceiling, &shutdown).await?
    else {
        return Ok(());
    };
    let tasks = TaskTracker::new();
    let api = TelegramApi::start(bot.clone(), settings.outbound, shutdown.clone(), &tasks);
    let context = Arc::new(BotContext {
        backend,
        api,
        rate_limiter: RateLimiter::from_settings(
            settings.rate_limit,
            settings.redis_url.as_deref(),
            &settings.redis_key_prefix,
        ),
        rate_limit_notices: Default::default(),
        press_limiter: RateLimiter::from_settings(
            RateLimitRule {
                maximum_messages: settings
                    .rate_limit
                    .maximum_messages
                    .saturating_mul(PRESSES_PER_MESSAGE),
                window: settings.rate_limit.window,
            },
            settings.redis_url.as_deref(),
            &format!("{}presses:", settings.redis_key_prefix),
        ),
        press_limit_notices: Default::default(),
        status_messages: Mutex::new(HashMap::new()),
        status_messages_being_sent: Mutex::new(HashSet::new()),
        preferences: Mutex::new(HashMap::new()),
        seen_languages: Mutex::new(HashMap::new()),
        bot_username: Mutex::new(me.user.username.clone()),
        offers: Mutex::new(OfferBook::default()),
        chat_administrators: Mutex::new(HashMap::new()),
        tasks,
        settings,
    });

    register_commands(&bot).await;

    let updater = tokio::spawn(crate::status_messages::run_status_updater(
        Arc::clone(&context),
        shutdown.clone(),
    ));

    let handler = dptree::entry()
        .branch(Update::filter_message().endpoint(crate::handlers::handle_message::<B>))
        .branch(Update::filter_channel_post().endpoint(crate::handlers::handle_message::<B>))
        .branch(
            Update::filter_edited_message().endpoint(crate::handlers::handle_edited_message::<B>),
        )
        .branch(Update::filter_callback_query().endpoint(crate::callbacks::handle_callback::<B>));
    let mut dispatcher = Dispatcher::builder(bot.clone(), handler)
        .dependencies(dptree::deps![Arc::clone(&context)])
        .default_handler(|_| async {})
        .build();
    let shutdown_token = dispatcher.shutdown_token();
    let dispatcher_shutdown = shutdown.clone();
    tokio::spawn(async move {
        dispatcher_shutdown.cancelled().await;
        // The dispatcher may not be running yet; try until it takes the request.
        for _ in 0..50 {
            match shutdown_token.shutdown() {
                Ok(done) => {
                    done.await;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    // Updates teloxide cannot read never reach its dispatcher (which would log them whole).
    let unreadable_context = Arc::clone(&context);
    let on_unreadable: UnreadableHandler = Arc::new(move |unreadable: UnreadableUpdate| {
        let Some((chat_id, language_code)) = unreadable.private_sender else {
            return;
        };
        let context = Arc::clone(&unreadable_context);
        unreadable_context.tasks.spawn(async move {
            if let RateLimitDecision::Refused { .. } = context.rate_limiter.check(chat_id).await {
                return;
            }
            context.remember_language_code(chat_id, language_code.as_deref());
            let words = context.words_for(chat_id).await;
            context.reply(chat_id, &words.unreadable_message()).await;
        });
    });
    let error_handler = Arc::new(RedactingErrorHandler {
        token: context.settings.token.clone(),
    });
    let dispatched = match &context.settings.webhook {
        None => {
            tracing::info!("the Telegram bot is running (long polling)");
            let listener = ReadableUpdatesOnly::new(
                teloxide::update_listeners::polling_default(bot.clone()).await,
                Arc::clone(&on_unreadable),
            );
            dispatcher
                .try_dispatch_with_listener(listener, error_handler)
                .await
        }
        Some(webhook) => {
            let mut options = teloxide::update_listeners::webhooks::Options::new(
                webhook.bind_address,
                webhook.public_url.clone(),
            );
            if let Some(secret) = &webhook.secret_token {
                options = options.secret_token(secret.clone());
            }
            // teloxide panics when it cannot listen: try the address first, so a taken or
            // wrong TELEGRAM_WEBHOOK_BIND is one clear error.
            if let Err(error) = std::net::TcpListener::bind(webhook.bind_address) {
                shutdown.cancel();
                let _ = updater.await;
                return Err(BotError::Webhook(format!(
                    "cannot listen on TELEGRAM_WEBHOOK_BIND={}: {error}",
                    webhook.bind_address
                )));
            }
            let listener =
                match teloxide::update_listeners::webhooks::axum(bot.clone(), options).await {
                    Ok(listener) => ReadableUpdatesOnly::new(listener, Arc::clone(&on_unreadable)),
                    Err(error) => {
                        shutdown.cancel();
                        let _ = updater.await;
                        return Err(BotError::Webhook(redact_secret(
                            &error.to_string(),
                            &context.settings.token,
                        )));
                    }
                };
            tracing::info!(url = %webhook.public_url, bind = %webhook.bind_address, "the Telegram bot is running (webhook)");
            dispatcher
                .try_dispatch_with_listener(listener, error_handler)
                .await
        }
    };
    shutdown.cancel();
    let _ = updater.await;
    context.tasks.close();
    // Within the process's shutdown bound (Docker sends SIGKILL 10 s after SIGTERM): the last
    // status messages get what is left of it.
    let _ = tokio::time::timeout(Duration::from_secs(6), context.tasks.wait()).await;
    dispatched.map_err(|error| {
        BotError::Telegram(redact_secret(&error.to_string(), &context.settings.token))
    })
}

/// The command menu, in every language of the catalogue (English is also the default).
async fn register_commands(bot: &Bot) {
    use crate::catalogue::{Key, render_plain};
    let entries = [
        ("record", Key::MenuRecord),
        ("stop", Key::MenuStop),
        ("pause", Key::MenuPause),
        ("resume", Key::MenuResume),
        ("status", Key::MenuStatus),
        ("list", Key::MenuList),
        ("cancel", Key::MenuCancel),
        ("delete", Key::MenuDelete),
        ("language", Key::MenuLanguage),
        ("help", Key::MenuHelp),
        ("schedule", Key::MenuSchedule),
        ("timezone", Key::MenuTimeZone),
        ("clip", Key::MenuClip),
    ];
    for language in Language::ALL {
        let commands: Vec<TelegramCommand> = entries
            .iter()
            .map(|(command, key)| TelegramCommand::new(*command, render_plain(language, *key, &[])))
            .collect();
        let request = bot.set_my_commands(commands);
        let result = if language == Language::English {
            request.await
        } else {
            request.language_code(language.code()).await
        };
        if let Err(error) = result {
            let text = redact_secret(&error.to_string(), bot.token());
            tracing::warn!(error = %text, language = language.code(), "could not register the command list");
        }
    }
}
