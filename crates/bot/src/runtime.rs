//! The running bot: a teloxide dispatcher whose handlers validate, enqueue and answer; a status
//! updater that keeps one message per job current and delivers the finished files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streambot_core::job::{
    DesiredJobState, Job, JobEvent, JobOwner, JobPriority, JobState, NewJob,
};
use streambot_core::{JobId, OutputFormat, RecordingOptions};
use streambot_hls::NetworkPolicy;
use streambot_hls::url_safety::parse_and_check_url;
use streambot_jobs::delivery::{DeliveredPart, read_delivered_parts};
use streambot_jobs::{JobBackend, JobFilter, JobsError, job_directory};
use streambot_recorder::finalize::FinalizeReport;
use teloxide::dispatching::{Dispatcher, UpdateFilterExt};
use teloxide::dptree;
use teloxide::prelude::*;
use teloxide::types::{
    BotCommand as TelegramCommand, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup,
    Message, MessageId, Update,
};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::messages;
use crate::parser::{
    AdminCommand, BotCommand, JobTarget, ParsedMessage, RecordRequest, parse_message_with_links,
};
use crate::rate_limit::{RateLimitDecision, RateLimitRule, RateLimiter};
use crate::telegram_api::{OutgoingFile, OutgoingFileKind, TelegramApi, TelegramSendError};

/// Upload limit of the cloud Bot API.
pub const CLOUD_BOT_API_UPLOAD_LIMIT_BYTES: u64 = 50 * 1024 * 1024;
/// Upload limit of a local Bot API server.
pub const LOCAL_BOT_API_UPLOAD_LIMIT_BYTES: u64 = 2000 * 1024 * 1024;

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
    /// Where the VIP list is kept.
    pub vip_registry_path: PathBuf,
    /// Per-user disk quota; `None` for no quota.
    pub user_disk_quota_bytes: Option<u64>,
    pub status_edit_interval: Duration,
    pub stall_timeout: Duration,
    pub allow_private_networks: bool,
    /// Timeout of requests to Telegram, uploads included.
    pub request_timeout: Duration,
    /// Webhook mode (`TELEGRAM_WEBHOOK_URL`); long polling when `None`.
    pub webhook: Option<WebhookSettings>,
    /// Where finished files are stored, for `/delete`; `None` deletes only the job's directory.
    pub storage: Option<Arc<streambot_storage::Storage>>,
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
    pub fn new(token: &str, recordings_directory: PathBuf, data_directory: &Path) -> Self {
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
            vip_registry_path: data_directory.join("vip-users.json"),
            user_disk_quota_bytes: None,
            status_edit_interval: Duration::from_secs(5),
            stall_timeout: streambot_core::options::DEFAULT_STALL_TIMEOUT,
            allow_private_networks: false,
            request_timeout: Duration::from_secs(30 * 60),
            webhook: None,
            storage: None,
        }
    }

    pub fn upload_limit_bytes(&self) -> u64 {
        match &self.api_url {
            Some(url) if url.host_str() != Some("api.telegram.org") => {
                LOCAL_BOT_API_UPLOAD_LIMIT_BYTES
            }
            _ => CLOUD_BOT_API_UPLOAD_LIMIT_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("the Telegram bot token is missing or malformed (TELEGRAM_BOT_TOKEN)")]
    BadToken,
    #[error("could not build the HTTP client for Telegram: {0}")]
    Client(String),
    #[error("could not set the webhook (TELEGRAM_WEBHOOK_URL): {0}")]
    Webhook(String),
}

#[derive(Debug, Clone)]
struct StatusMessage {
    chat_id: i64,
    message_id: MessageId,
    last_edit: Instant,
    last_text: String,
}

struct BotContext<B: JobBackend> {
    backend: B,
    settings: BotSettings,
    api: TelegramApi,
    rate_limiter: RateLimiter,
    /// When each user was last told they hit the rate limit.
    rate_limit_notices: Mutex<HashMap<i64, Instant>>,
    status_messages: Mutex<HashMap<JobId, StatusMessage>>,
    delivered_jobs: Mutex<HashSet<JobId>>,
    vip_user_ids: Mutex<HashSet<i64>>,
    bot_username: Mutex<Option<String>>,
    /// Links offered on buttons ("did you mean /record?", more links than free slots), by number.
    offers: Mutex<OfferBook>,
    tasks: TaskTracker,
}

/// A link offered on a button, kept until pressed (bounded: the oldest go first).
#[derive(Debug, Clone)]
struct Offer {
    user_id: i64,
    chat_id: i64,
    url: String,
}

#[derive(Debug, Default)]
struct OfferBook {
    next_number: u64,
    offers: std::collections::BTreeMap<u64, Offer>,
}

const MAXIMUM_OFFERS_KEPT: usize = 2000;

impl OfferBook {
    fn add(&mut self, offer: Offer) -> u64 {
        self.next_number += 1;
        self.offers.insert(self.next_number, offer);
        while self.offers.len() > MAXIMUM_OFFERS_KEPT {
            self.offers.pop_first();
        }
        self.next_number
    }
}

fn load_vips(path: &Path) -> HashSet<i64> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<i64>>(&bytes).ok())
        .map(|ids| ids.into_iter().collect())
        .unwrap_or_default()
}

fn save_vips(path: &Path, vips: &HashSet<i64>) {
    let mut ids: Vec<i64> = vips.iter().copied().collect();
    ids.sort_unstable();
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(text) = serde_json::to_vec(&ids) {
        let temporary = path.with_extension("json.tmp");
        if std::fs::write(&temporary, text).is_ok() {
            let _ = std::fs::rename(&temporary, path);
        }
    }
}

/// The control keyboard of a job in a given state.
pub fn job_keyboard(job_id: JobId, state: JobState) -> Option<InlineKeyboardMarkup> {
    let id = job_id.as_str();
    let status = InlineKeyboardButton::callback("Status", format!("status:{id}"));
    let stop = InlineKeyboardButton::callback("⏹ Stop", format!("stop:{id}"));
    let row = match state {
        JobState::Recording | JobState::Starting => vec![
            stop,
            InlineKeyboardButton::callback("⏸ Pause", format!("pause:{id}")),
            status,
        ],
        JobState::Paused => vec![
            stop,
            InlineKeyboardButton::callback("▶ Resume", format!("resume:{id}")),
            status,
        ],
        JobState::Queued => vec![
            InlineKeyboardButton::callback("✖ Cancel", format!("stop:{id}")),
            status,
        ],
        JobState::Finalizing | JobState::Uploading => vec![status],
        JobState::Completed | JobState::Failed | JobState::Cancelled => return None,
    };
    Some(InlineKeyboardMarkup::new(vec![row]))
}

fn user_id_of(message: &Message) -> Option<i64> {
    message.from.as_ref().map(|user| user.id.0 as i64)
}

/// Runs the bot until `shutdown`. Handlers never block on a recording.
pub async fn run_bot<B: JobBackend>(
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
        .map_err(|error| BotError::Client(error.to_string()))?;
    let mut bot = Bot::with_client(settings.token.clone(), client);
    if let Some(api_url) = &settings.api_url {
        bot = bot.set_api_url(api_url.clone());
    }
    let vips = load_vips(&settings.vip_registry_path);
    let context = Arc::new(BotContext {
        backend,
        api: TelegramApi::new(bot.clone()),
        rate_limiter: RateLimiter::from_settings(
            settings.rate_limit,
            settings.redis_url.as_deref(),
            &settings.redis_key_prefix,
        ),
        rate_limit_notices: Mutex::new(HashMap::new()),
        status_messages: Mutex::new(HashMap::new()),
        delivered_jobs: Mutex::new(HashSet::new()),
        vip_user_ids: Mutex::new(vips),
        bot_username: Mutex::new(None),
        offers: Mutex::new(OfferBook::default()),
        tasks: TaskTracker::new(),
        settings,
    });

    register_commands(&bot).await;
    if let Ok(me) = bot.get_me().await
        && let Ok(mut username) = context.bot_username.lock()
    {
        *username = me.user.username.clone();
    }

    let updater = tokio::spawn(run_status_updater(Arc::clone(&context), shutdown.clone()));

    let handler = dptree::entry()
        .branch(Update::filter_message().endpoint(handle_message::<B>))
        .branch(Update::filter_callback_query().endpoint(handle_callback::<B>));
    let mut dispatcher = Dispatcher::builder(bot, handler)
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
    match &context.settings.webhook {
        None => {
            tracing::info!("the Telegram bot is running (long polling)");
            dispatcher.dispatch().await;
        }
        Some(webhook) => {
            let mut options = teloxide::update_listeners::webhooks::Options::new(
                webhook.bind_address,
                webhook.public_url.clone(),
            );
            if let Some(secret) = &webhook.secret_token {
                options = options.secret_token(secret.clone());
            }
            let listener = match teloxide::update_listeners::webhooks::axum(
                context.api.bot().clone(),
                options,
            )
            .await
            {
                Ok(listener) => listener,
                Err(error) => {
                    shutdown.cancel();
                    let _ = updater.await;
                    return Err(BotError::Webhook(error.to_string()));
                }
            };
            tracing::info!(url = %webhook.public_url, bind = %webhook.bind_address, "the Telegram bot is running (webhook)");
            dispatcher
                .dispatch_with_listener(
                    listener,
                    teloxide::error_handlers::LoggingErrorHandler::with_custom_text(
                        "the webhook listener failed",
                    ),
                )
                .await;
        }
    }
    shutdown.cancel();
    let _ = updater.await;
    context.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), context.tasks.wait()).await;
    Ok(())
}

async fn register_commands(bot: &Bot) {
    let commands = vec![
        TelegramCommand::new("record", "record a stream: /record <link> [2h] [high]"),
        TelegramCommand::new("stop", "stop a recording and get the file"),
        TelegramCommand::new("pause", "pause a recording"),
        TelegramCommand::new("resume", "resume a paused recording"),
        TelegramCommand::new("status", "progress of a recording"),
        TelegramCommand::new("list", "your recordings"),
        TelegramCommand::new("cancel", "cancel a recording that has not started"),
        TelegramCommand::new("delete", "delete a finished recording's files"),
        TelegramCommand::new("help", "how to use the bot"),
    ];
    if let Err(error) = bot.set_my_commands(commands).await {
        tracing::warn!(%error, "could not register the command list");
    }
}

impl<B: JobBackend> BotContext<B> {
    /// A keyboard with one "Record <link>" button per link.
    fn offer_keyboard(&self, user_id: i64, chat_id: i64, urls: &[String]) -> InlineKeyboardMarkup {
        let rows = match self.offers.lock() {
            Ok(mut book) => urls
                .iter()
                .map(|url| {
                    let number = book.add(Offer {
                        user_id,
                        chat_id,
                        url: url.clone(),
                    });
                    vec![InlineKeyboardButton::callback(
                        messages::record_link_button(url),
                        format!("offer:{number}"),
                    )]
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        InlineKeyboardMarkup::new(rows)
    }

    fn take_offer(&self, number: u64) -> Option<Offer> {
        self.offers.lock().ok()?.offers.remove(&number)
    }

    fn is_admin(&self, user_id: i64) -> bool {
        self.settings.admin_user_ids.contains(&user_id)
    }

    fn is_vip(&self, user_id: i64) -> bool {
        self.vip_user_ids
            .lock()
            .map(|vips| vips.contains(&user_id))
            .unwrap_or(false)
    }

    fn concurrent_job_limit(&self, user_id: i64) -> Option<usize> {
        if self.is_admin(user_id) {
            None
        } else if self.is_vip(user_id) {
            Some(self.settings.maximum_concurrent_jobs_per_vip)
        } else {
            Some(self.settings.maximum_concurrent_jobs_per_user)
        }
    }

    async fn reply(&self, chat_id: i64, text: &str) {
        if let Err(error) = self.api.send_text(chat_id, text, None).await {
            tracing::warn!(chat_id, %error, "could not answer");
        }
    }

    /// A job the user may act on: their own, or any for an admin.
    async fn owned_job(&self, user_id: i64, job_id: JobId) -> Result<Option<Job>, JobsError> {
        let job = self.backend.get_job(job_id).await?;
        Ok(job.filter(|job| job.owner.user_id == user_id || self.is_admin(user_id)))
    }

    async fn live_jobs_of(&self, user_id: i64) -> Result<Vec<Job>, JobsError> {
        let jobs = self.backend.list_jobs_for_user(user_id, 200).await?;
        Ok(jobs
            .into_iter()
            .filter(|job| !job.state.is_terminal())
            .collect())
    }

    /// What a user's recordings take on this machine: the finished files storage filed under
    /// `user_<id>/` (the same count storage's own quota uses), plus the working directories of
    /// the jobs in `jobs` (parts being recorded, files storage refused or could not finalize).
    async fn user_disk_usage_bytes(&self, user_id: i64, jobs: &[Job]) -> u64 {
        let working_bytes: u64 = jobs
            .iter()
            .map(|job| directory_size(&job_directory(&self.settings.recordings_directory, job.id)))
            .sum();
        let stored_bytes = match &self.settings.storage {
            Some(storage) => storage.local.bytes_used_by_user(user_id).await.unwrap_or(0),
            None => 0,
        };
        working_bytes + stored_bytes
    }

    async fn send_status_message(&self, job: &Job, chat_id: i64) {
        let text = messages::job_status(job);
        match self
            .api
            .send_text(chat_id, &text, job_keyboard(job.id, job.state))
            .await
        {
            Ok(message_id) => {
                if let Ok(mut status_messages) = self.status_messages.lock() {
                    status_messages.insert(
                        job.id,
                        StatusMessage {
                            chat_id,
                            message_id,
                            last_edit: Instant::now(),
                            last_text: text,
                        },
                    );
                }
            }
            Err(error) => {
                tracing::warn!(job_id = %job.id, %error, "could not send the status message")
            }
        }
    }

    /// Edits the job's status message (or sends one); at most every `status_edit_interval` unless
    /// `force` (state changes).
    async fn refresh_status_message(&self, job: &Job, force: bool) {
        let existing = self
            .status_messages
            .lock()
            .ok()
            .and_then(|status_messages| status_messages.get(&job.id).cloned());
        let Some(existing) = existing else {
            if !self.api.is_blocked(job.owner.chat_id) {
                self.send_status_message(job, job.owner.chat_id).await;
            }
            return;
        };
        if !force && existing.last_edit.elapsed() < self.settings.status_edit_interval {
            return;
        }
        let text = messages::job_status(job);
        if text == existing.last_text && !force {
            return;
        }
        let result = self
            .api
            .edit_text(
                existing.chat_id,
                existing.message_id,
                &text,
                job_keyboard(job.id, job.state),
            )
            .await;
        if let Err(error) = result {
            tracing::debug!(job_id = %job.id, %error, "status edit failed");
        }
        if let Ok(mut status_messages) = self.status_messages.lock()
            && let Some(entry) = status_messages.get_mut(&job.id)
        {
            entry.last_edit = Instant::now();
            entry.last_text = text;
        }
    }
}

fn directory_size(directory: &Path) -> u64 {
    std::fs::read_dir(directory)
        .map(|listing| {
            listing
                .flatten()
                .filter_map(|entry| entry.metadata().ok())
                .filter(|metadata| metadata.is_file())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn handle_message<B: JobBackend>(
    message: Message,
    context: Arc<BotContext<B>>,
) -> Result<(), std::convert::Infallible> {
    let Some(user_id) = user_id_of(&message) else {
        return Ok(());
    };
    let chat_id = message.chat.id.0;
    let is_private = message.chat.is_private();
    // Text, or the caption of a photo, video or document (a forwarded channel post); links hidden
    // behind words (`text_link`) come from the entities.
    let linked_urls = linked_urls_of(&message);
    let Some(text) = message.text().or(message.caption()) else {
        if is_private && linked_urls.is_empty() {
            context.reply(chat_id, &messages::nothing_to_read()).await;
            return Ok(());
        }
        if linked_urls.is_empty() {
            return Ok(());
        }
        let parsed = parse_message_with_links("", &linked_urls, None);
        if let ParsedMessage::Command(command) = parsed {
            execute_command(&context, command, user_id, chat_id).await;
        }
        return Ok(());
    };
    let username = context
        .bot_username
        .lock()
        .ok()
        .and_then(|username| username.clone());
    // In a group, only commands and messages that mention the bot are for it; plain chatter is
    // neither answered nor counted against anyone's rate limit.
    let mention = username.as_deref().map(|name| format!("@{name}"));
    let mentioned = mention
        .as_deref()
        .is_some_and(|mention| text.to_lowercase().contains(&mention.to_lowercase()));
    if !is_private && !text.starts_with('/') && !mentioned {
        return Ok(());
    }
    let text_for_parser = match (&mention, mentioned && !text.starts_with('/')) {
        (Some(mention), true) => text.replace(mention.as_str(), " "),
        _ => text.to_string(),
    };
    let parsed = parse_message_with_links(&text_for_parser, &linked_urls, username.as_deref());
    if matches!(parsed, ParsedMessage::NotUnderstood) && !is_private {
        // A command for another bot, or something we cannot read: stay quiet in groups.
        return Ok(());
    }
    if let RateLimitDecision::Refused { retry_after } = context.rate_limiter.check(user_id).await {
        // Say it once per window, not once per message (that would spend Telegram's allowance).
        let window = context.settings.rate_limit.window;
        let should_notify = context
            .rate_limit_notices
            .lock()
            .map(|mut notices| {
                let now = Instant::now();
                let recently = notices
                    .get(&user_id)
                    .is_some_and(|noticed_at| now.duration_since(*noticed_at) < window);
                if !recently {
                    notices.insert(user_id, now);
                }
                !recently
            })
            .unwrap_or(true);
        if should_notify {
            context
                .reply(
                    chat_id,
                    &messages::rate_limited(
                        retry_after,
                        context.settings.rate_limit.maximum_messages,
                        window,
                    ),
                )
                .await;
        }
        return Ok(());
    }
    match parsed {
        ParsedMessage::Command(command) => {
            execute_command(&context, command, user_id, chat_id).await;
        }
        ParsedMessage::Invalid(error) => {
            context
                .reply(chat_id, &messages::command_error(&error))
                .await;
        }
        ParsedMessage::DidYouMean { command, urls } => {
            let keyboard =
                (!urls.is_empty()).then(|| context.offer_keyboard(user_id, chat_id, &urls));
            if let Err(error) = context
                .api
                .send_text(
                    chat_id,
                    &messages::did_you_mean(command, !urls.is_empty()),
                    keyboard,
                )
                .await
            {
                tracing::warn!(%error, "could not suggest a command");
            }
        }
        ParsedMessage::NotUnderstood => {
            context.reply(chat_id, &messages::not_understood()).await;
        }
    }
    Ok(())
}

/// Links carried by entities: `text_link` (a link behind words) and `url` (what Telegram saw as
/// a link, with or without a scheme), in the text or the caption.
fn linked_urls_of(message: &Message) -> Vec<String> {
    let mut urls = Vec::new();
    let entities = message
        .parse_entities()
        .into_iter()
        .flatten()
        .chain(message.parse_caption_entities().into_iter().flatten());
    for entity in entities {
        match entity.kind() {
            teloxide::types::MessageEntityKind::TextLink { url } => {
                urls.push(url.to_string());
            }
            teloxide::types::MessageEntityKind::Url => {
                if let Some(url) = crate::parser::link_in_token(entity.text()) {
                    urls.push(url);
                }
            }
            _ => {}
        }
    }
    urls
}

async fn execute_command<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    command: BotCommand,
    user_id: i64,
    chat_id: i64,
) {
    let result = match command {
        BotCommand::Start => {
            context.reply(chat_id, &messages::welcome()).await;
            Ok(())
        }
        BotCommand::Help => {
            context.reply(chat_id, &messages::help()).await;
            Ok(())
        }
        BotCommand::Record(request) => start_recording(context, request, user_id, chat_id).await,
        BotCommand::Stop(target) => {
            control_job(
                context,
                target,
                user_id,
                chat_id,
                DesiredJobState::Stop,
                "stop",
            )
            .await
        }
        BotCommand::Pause(target) => {
            control_job(
                context,
                target,
                user_id,
                chat_id,
                DesiredJobState::Pause,
                "pause",
            )
            .await
        }
        BotCommand::Resume(target) => {
            control_job(
                context,
                target,
                user_id,
                chat_id,
                DesiredJobState::Record,
                "resume",
            )
            .await
        }
        BotCommand::Cancel(target) => cancel_job(context, target, user_id, chat_id).await,
        BotCommand::Delete(target) => delete_recording(context, target, user_id, chat_id).await,
        BotCommand::Status(target) => show_status(context, target, user_id, chat_id).await,
        BotCommand::List => match context.backend.list_jobs_for_user(user_id, 20).await {
            Ok(jobs) => {
                context.reply(chat_id, &messages::job_list(&jobs)).await;
                Ok(())
            }
            Err(error) => Err(error),
        },
        BotCommand::Language(_) => {
            context.reply(chat_id, &messages::language_choice()).await;
            Ok(())
        }
        BotCommand::Admin(admin) => {
            if context.is_admin(user_id) {
                run_admin_command(context, admin, chat_id).await
            } else {
                context.reply(chat_id, &messages::admin_only()).await;
                Ok(())
            }
        }
    };
    if let Err(error) = result {
        tracing::warn!(user_id, %error, "command failed");
        context.reply(chat_id, &messages::internal_error()).await;
    }
}

/// One job per link within the user's limit; more links than free slots: a button per link.
async fn start_recording<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    request: RecordRequest,
    user_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    if request.urls.len() > 1 {
        let live_jobs = context.live_jobs_of(user_id).await?;
        let free_slots = context
            .concurrent_job_limit(user_id)
            .map_or(usize::MAX, |limit| limit.saturating_sub(live_jobs.len()));
        if request.urls.len() > free_slots {
            let keyboard = context.offer_keyboard(user_id, chat_id, &request.urls);
            if let Err(error) = context
                .api
                .send_text(
                    chat_id,
                    &messages::which_links(request.urls.len(), free_slots),
                    Some(keyboard),
                )
                .await
            {
                tracing::warn!(%error, "could not ask which links");
            }
            return Ok(());
        }
    }
    for url in &request.urls {
        start_one_recording(context, &request, url, user_id, chat_id).await?;
    }
    Ok(())
}

async fn start_one_recording<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    request: &RecordRequest,
    url: &str,
    user_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let policy = NetworkPolicy {
        allow_private_networks: context.settings.allow_private_networks,
    };
    if let Err(refusal) = parse_and_check_url(url, policy) {
        context
            .reply(chat_id, &messages::refused_link(&refusal.to_string()))
            .await;
        return Ok(());
    }
    let live_jobs = context.live_jobs_of(user_id).await?;
    if let Some(limit) = context.concurrent_job_limit(user_id)
        && live_jobs.len() >= limit
    {
        context
            .reply(chat_id, &messages::too_many_jobs(limit))
            .await;
        return Ok(());
    }
    if let Some(quota) = context.settings.user_disk_quota_bytes
        && !context.is_admin(user_id)
    {
        // Finished files filed by storage under `user_<id>/`, plus every working directory (a
        // part storage refused, or one kept after a failed finalize, stays there).
        let all_jobs = context.backend.list_jobs_for_user(user_id, 10_000).await?;
        let used = context.user_disk_usage_bytes(user_id, &all_jobs).await;
        if used >= quota {
            context
                .reply(chat_id, &messages::disk_quota_reached(used, quota))
                .await;
            return Ok(());
        }
    }
    let priority = if context.is_admin(user_id) || context.is_vip(user_id) {
        JobPriority::Priority
    } else {
        JobPriority::Normal
    };
    // Created, announced, then queued: the status message exists before a worker can claim the
    // job, so the status updater edits it instead of sending a second one.
    let job = context
        .backend
        .create_job(NewJob {
            owner: JobOwner { user_id, chat_id },
            url: url.to_string(),
            options: RecordingOptions {
                maximum_duration: request.duration,
                quality: request.quality,
                format: OutputFormat::Mp4,
                stall_timeout: context.settings.stall_timeout,
            },
            priority,
        })
        .await?;
    tracing::info!(job_id = %job.id, user_id, "recording requested");
    context
        .reply(
            chat_id,
            &messages::recording_queued(job.id, url, request.duration, request.quality),
        )
        .await;
    context.send_status_message(&job, chat_id).await;
    context.backend.push(job.id, job.priority).await?;
    Ok(())
}

/// Resolves "stop" without an id: the only live job, or a question with a button per job.
async fn resolve_target<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    user_id: i64,
    chat_id: i64,
    action: &str,
) -> Result<Option<JobId>, JobsError> {
    match target {
        JobTarget::Id(job_id) => Ok(Some(job_id)),
        JobTarget::Unspecified => {
            let live = context.live_jobs_of(user_id).await?;
            match live.as_slice() {
                [] => {
                    context.reply(chat_id, &messages::no_live_jobs()).await;
                    Ok(None)
                }
                [only] => Ok(Some(only.id)),
                several => {
                    let rows: Vec<Vec<InlineKeyboardButton>> = several
                        .iter()
                        .map(|job| {
                            vec![InlineKeyboardButton::callback(
                                format!("{} {}", job.id, messages::state_label(job.state)),
                                format!("{action}:{}", job.id),
                            )]
                        })
                        .collect();
                    if let Err(error) = context
                        .api
                        .send_text(
                            chat_id,
                            &messages::which_job(),
                            Some(InlineKeyboardMarkup::new(rows)),
                        )
                        .await
                    {
                        tracing::warn!(%error, "could not ask which job");
                    }
                    Ok(None)
                }
            }
        }
    }
}

async fn control_job<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    user_id: i64,
    chat_id: i64,
    desired: DesiredJobState,
    action: &str,
) -> Result<(), JobsError> {
    let Some(job_id) = resolve_target(context, target, user_id, chat_id, action).await? else {
        return Ok(());
    };
    let text = apply_control(context, job_id, user_id, desired, action).await?;
    context.reply(chat_id, &text).await;
    Ok(())
}

/// Applies a control; returns what to tell the user.
async fn apply_control<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    job_id: JobId,
    user_id: i64,
    desired: DesiredJobState,
    action: &str,
) -> Result<String, JobsError> {
    let Some(job) = context.owned_job(user_id, job_id).await? else {
        return Ok(messages::no_such_job(job_id));
    };
    let applicable = match desired {
        DesiredJobState::Stop => !job.state.is_terminal(),
        DesiredJobState::Pause => matches!(job.state, JobState::Recording | JobState::Starting),
        DesiredJobState::Record => matches!(job.state, JobState::Paused),
    };
    if !applicable {
        return Ok(messages::control_not_possible(job_id, job.state, action));
    }
    match context.backend.set_desired_state(job_id, desired).await {
        Ok(updated) => {
            let label = match desired {
                DesiredJobState::Stop => "Stopping; you'll get the recording in a moment",
                DesiredJobState::Pause => "Paused",
                DesiredJobState::Record => "Resumed",
            };
            context.refresh_status_message(&updated, true).await;
            Ok(messages::control_accepted(job_id, label))
        }
        Err(JobsError::NotApplicable { state, .. }) => {
            Ok(messages::control_not_possible(job_id, state, action))
        }
        Err(error) => Err(error),
    }
}

async fn cancel_job<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    user_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let Some(job_id) = resolve_target(context, target, user_id, chat_id, "stop").await? else {
        return Ok(());
    };
    let Some(job) = context.owned_job(user_id, job_id).await? else {
        context.reply(chat_id, &messages::no_such_job(job_id)).await;
        return Ok(());
    };
    if job.state != JobState::Queued {
        context
            .reply(chat_id, &messages::cancel_only_queued(job_id))
            .await;
        return Ok(());
    }
    let text = apply_control(context, job_id, user_id, DesiredJobState::Stop, "cancel").await?;
    context.reply(chat_id, &text).await;
    Ok(())
}

/// `/delete ID`: the finished files (every copy, through storage) and the job's working
/// directory. Only the owner or an admin; never a recording in progress.
async fn delete_recording<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    user_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let JobTarget::Id(job_id) = target else {
        context
            .reply(chat_id, &messages::delete_needs_an_id())
            .await;
        return Ok(());
    };
    let Some(job) = context.owned_job(user_id, job_id).await? else {
        context.reply(chat_id, &messages::no_such_job(job_id)).await;
        return Ok(());
    };
    if !job.state.is_terminal() {
        context
            .reply(chat_id, &messages::delete_while_live(job_id))
            .await;
        return Ok(());
    }
    let mut deleted_files = 0;
    let mut deleted_bytes = 0;
    let mut problems = Vec::new();
    if let Some(storage) = &context.settings.storage {
        use streambot_storage::Store;
        let requester = streambot_storage::Requester {
            user_id,
            is_admin: context.is_admin(user_id),
        };
        match storage.list_user_files(job.owner.user_id).await {
            Ok(files) => {
                for file in files.iter().filter(|file| file.job_id == job_id) {
                    match storage.delete(file, requester).await {
                        Ok(()) => {
                            deleted_files += 1;
                            deleted_bytes += file.size_bytes;
                        }
                        Err(error) => problems.push(error.user_message()),
                    }
                }
            }
            Err(error) => problems.push(error.user_message()),
        }
    }
    let working_directory = job_directory(&context.settings.recordings_directory, job_id);
    if working_directory.exists() {
        let bytes = directory_size(&working_directory);
        match std::fs::remove_dir_all(&working_directory) {
            Ok(()) => deleted_bytes += bytes,
            Err(error) => problems.push(error.to_string()),
        }
    }
    tracing::info!(%job_id, user_id, deleted_files, deleted_bytes, "recording deleted on request");
    let text = if problems.is_empty() {
        messages::deleted(job_id, deleted_files, deleted_bytes)
    } else {
        messages::delete_failed(job_id, &problems.join("; "))
    };
    context.reply(chat_id, &text).await;
    Ok(())
}

async fn show_status<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    user_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let Some(job_id) = resolve_target(context, target, user_id, chat_id, "status").await? else {
        return Ok(());
    };
    match context.owned_job(user_id, job_id).await? {
        Some(job) => context.send_status_message(&job, chat_id).await,
        None => context.reply(chat_id, &messages::no_such_job(job_id)).await,
    }
    Ok(())
}

async fn run_admin_command<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    command: AdminCommand,
    chat_id: i64,
) -> Result<(), JobsError> {
    match command {
        AdminCommand::Help => {
            context.reply(chat_id, &messages::admin_help()).await;
        }
        AdminCommand::Overview => {
            let jobs = context.backend.list_jobs(JobFilter::default()).await?;
            let by_state: Vec<(JobState, usize)> = JobState::ALL
                .iter()
                .map(|state| {
                    (
                        *state,
                        jobs.iter().filter(|job| job.state == *state).count(),
                    )
                })
                .filter(|(_, count)| *count > 0)
                .collect();
            context
                .reply(chat_id, &messages::admin_overview(&by_state, jobs.len()))
                .await;
        }
        AdminCommand::AllJobs => {
            let jobs = context
                .backend
                .list_jobs(JobFilter {
                    limit: Some(50),
                    ..JobFilter::default()
                })
                .await?;
            context.reply(chat_id, &messages::job_list(&jobs)).await;
        }
        AdminCommand::StopAny(job_id) => {
            let text = match context
                .backend
                .set_desired_state(job_id, DesiredJobState::Stop)
                .await
            {
                Ok(_) => messages::control_accepted(job_id, "Stopping"),
                Err(JobsError::JobNotFound { .. }) => messages::no_such_job(job_id),
                Err(JobsError::NotApplicable { state, .. }) => {
                    messages::control_not_possible(job_id, state, "stop")
                }
                Err(error) => return Err(error),
            };
            context.reply(chat_id, &text).await;
        }
        AdminCommand::AddVip(user_id) | AdminCommand::RemoveVip(user_id) => {
            let added = matches!(command, AdminCommand::AddVip(_));
            if let Ok(mut vips) = context.vip_user_ids.lock() {
                if added {
                    vips.insert(user_id);
                } else {
                    vips.remove(&user_id);
                }
                save_vips(&context.settings.vip_registry_path, &vips);
            }
            context
                .reply(chat_id, &messages::vip_changed(user_id, added))
                .await;
        }
    }
    Ok(())
}

async fn handle_callback<B: JobBackend>(
    query: CallbackQuery,
    context: Arc<BotContext<B>>,
) -> Result<(), std::convert::Infallible> {
    let user_id = query.from.id.0 as i64;
    let data = query.data.clone().unwrap_or_default();
    let Some((action, id_text)) = data.split_once(':') else {
        context.api.answer_callback(&query.id.0, None).await;
        return Ok(());
    };
    if action == "offer" {
        let offer = id_text
            .parse::<u64>()
            .ok()
            .and_then(|number| context.take_offer(number))
            .filter(|offer| offer.user_id == user_id);
        let toast = match offer {
            Some(offer) => {
                let request = RecordRequest {
                    urls: vec![offer.url.clone()],
                    duration: None,
                    quality: streambot_core::Quality::Best,
                    starts_at: None,
                };
                if let Err(error) =
                    start_recording(&context, request, offer.user_id, offer.chat_id).await
                {
                    tracing::warn!(%error, "recording an offered link failed");
                }
                messages::toast_starting()
            }
            None => messages::toast_offer_expired(),
        };
        context.api.answer_callback(&query.id.0, Some(toast)).await;
        return Ok(());
    }
    let Ok(job_id) = id_text.parse::<JobId>() else {
        context
            .api
            .answer_callback(&query.id.0, Some("Unknown recording".to_string()))
            .await;
        return Ok(());
    };
    let chat_id = query
        .message
        .as_ref()
        .map_or(user_id, |message| message.chat().id.0);
    let desired = match action {
        "stop" => Some((DesiredJobState::Stop, "stop")),
        "pause" => Some((DesiredJobState::Pause, "pause")),
        "resume" => Some((DesiredJobState::Record, "resume")),
        _ => None,
    };
    let answer = match desired {
        Some((desired, label)) => {
            match apply_control(&context, job_id, user_id, desired, label).await {
                Ok(text) => {
                    // The answer is a short plain toast; the full text goes to the chat.
                    context.reply(chat_id, &text).await;
                    Some(format!("{label}: {job_id}"))
                }
                Err(error) => {
                    tracing::warn!(%error, "button action failed");
                    Some("Something went wrong; try again".to_string())
                }
            }
        }
        None => match context.owned_job(user_id, job_id).await {
            Ok(Some(job)) => {
                context.refresh_status_message(&job, true).await;
                Some(messages::state_label(job.state).to_string())
            }
            Ok(None) => Some("Not your recording".to_string()),
            Err(_) => Some("Something went wrong; try again".to_string()),
        },
    };
    context.api.answer_callback(&query.id.0, answer).await;
    Ok(())
}

/// Follows job events: status messages, final messages, delivery.
async fn run_status_updater<B: JobBackend>(
    context: Arc<BotContext<B>>,
    shutdown: CancellationToken,
) {
    let mut events = context.backend.subscribe_events();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "status updater lagged; continuing");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let (job_id, force) = match &event {
            JobEvent::StateChanged { job_id, .. } => (*job_id, true),
            JobEvent::Progress { job_id, .. } => (*job_id, false),
            JobEvent::DesiredStateChanged { job_id, .. } => (*job_id, true),
            _ => continue,
        };
        let job = match context.backend.get_job(job_id).await {
            Ok(Some(job)) => job,
            _ => continue,
        };
        // Only jobs this bot knows about get edits from progress ticks; state changes of any job
        // reach its owner.
        let known = context
            .status_messages
            .lock()
            .map(|status_messages| status_messages.contains_key(&job_id))
            .unwrap_or(false);
        if !known && !force {
            continue;
        }
        context.refresh_status_message(&job, force).await;
        match job.state {
            JobState::Completed => {
                let delivering = context
                    .delivered_jobs
                    .lock()
                    .map(|mut delivered| delivered.insert(job_id))
                    .unwrap_or(false);
                if delivering {
                    let task_context = Arc::clone(&context);
                    context.tasks.spawn(async move {
                        deliver_recording(&task_context, &job).await;
                    });
                }
            }
            JobState::Failed => {
                let first = context
                    .delivered_jobs
                    .lock()
                    .map(|mut delivered| delivered.insert(job_id))
                    .unwrap_or(false);
                if first {
                    context
                        .reply(job.owner.chat_id, &messages::job_failed(&job))
                        .await;
                    // Whatever was recorded before the failure is still worth sending.
                    let task_context = Arc::clone(&context);
                    context.tasks.spawn(async move {
                        deliver_files(&task_context, &job).await;
                    });
                }
            }
            _ => {}
        }
    }
}

/// The finished parts of a job: where the worker stored them (`stored.json`), or, before storage
/// ran, what finalize wrote (`finalized.json`).
fn finished_parts(directory: &Path) -> Vec<DeliveredPart> {
    if let Some(delivered) = read_delivered_parts(directory) {
        return delivered.parts;
    }
    let Ok(bytes) = std::fs::read(directory.join("finalized.json")) else {
        return Vec::new();
    };
    let Ok(report) = serde_json::from_slice::<FinalizeReport>(&bytes) else {
        return Vec::new();
    };
    let part_count = report.files.len() as u32;
    report
        .files
        .iter()
        .enumerate()
        .map(|(index, file)| DeliveredPart::from_finished_file(file, index as u32 + 1, part_count))
        .collect()
}

fn kind_of(path: &Path) -> OutgoingFileKind {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("mp4") => OutgoingFileKind::Video,
        Some("m4a") | Some("mp3") | Some("aac") => OutgoingFileKind::Audio,
        _ => OutgoingFileKind::Document,
    }
}

/// Sends every finished part; returns (sent, names kept on the server).
async fn deliver_files<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    job: &Job,
) -> (usize, Vec<String>) {
    let directory = job_directory(&context.settings.recordings_directory, job.id);
    let parts = finished_parts(&directory);
    let limit = context.settings.upload_limit_bytes();
    let chat_id = job.owner.chat_id;
    let mut sent = 0;
    let mut kept_on_server = Vec::new();
    for part in &parts {
        let caption = messages::part_caption(
            job.id,
            part.part_number as usize,
            part.part_count as usize,
            Duration::from_secs_f64(part.duration_seconds.max(0.0)),
        );
        if let Some(link) = &part.link {
            context
                .reply(chat_id, &messages::part_link(&caption, link))
                .await;
            sent += 1;
            continue;
        }
        let Some(path) = part.local_path.as_deref().filter(|path| path.exists()) else {
            kept_on_server.push(format!("part {}", part.part_number));
            continue;
        };
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if part.size_bytes > limit {
            kept_on_server.push(name);
            continue;
        }
        let outgoing = OutgoingFile {
            path,
            kind: kind_of(path),
            caption,
            thumbnail: part
                .thumbnail
                .as_deref()
                .filter(|thumbnail| thumbnail.exists()),
            width: part.width,
            height: part.height,
            duration_seconds: Some(part.duration_seconds.round().max(0.0) as u32),
        };
        match context.api.send_file(chat_id, &outgoing).await {
            Ok(()) => sent += 1,
            Err(TelegramSendError::FileTooLarge) => kept_on_server.push(name),
            Err(TelegramSendError::ChatBlocked) => return (sent, kept_on_server),
            Err(error) => {
                tracing::warn!(job_id = %job.id, %error, "could not send a finished file");
                context
                    .reply(chat_id, &messages::upload_failed(&name))
                    .await;
            }
        }
    }
    (sent, kept_on_server)
}

async fn deliver_recording<B: JobBackend>(context: &Arc<BotContext<B>>, job: &Job) {
    let (sent, too_large) = deliver_files(context, job).await;
    context
        .reply(
            job.owner.chat_id,
            &messages::final_summary(job, sent, &too_large),
        )
        .await;
}
