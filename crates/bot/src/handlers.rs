//! Messages: who sent it, what it says (text, caption, links behind words), the rate limit, and
//! the command it asks for. Handlers validate, enqueue and answer; they never wait on a recording
//! and never fetch the link (only its syntax is checked here; the worker checks the rest, and the
//! status message says what it found).

use std::sync::Arc;
use std::time::Instant;

use streambot_core::job::{DesiredJobState, Job, JobOwner, JobPriority, JobState, NewJob};
use streambot_core::job_directory;
use streambot_core::{JobId, OutputFormat, RecordingOptions};
use streambot_hls::NetworkPolicy;
use streambot_hls::url_safety::parse_and_check_url;
use streambot_store::{JobBackend, JobsError};
use teloxide::types::Message;

use crate::identity::{Sender, sender_of};
use crate::keyboards::{job_picker, list_more};
use crate::messages::{ControlAction, Words};
use crate::parser::{
    BotCommand, JobTarget, ParsedMessage, RecordRequest, parse_message_with_links,
};
use crate::rate_limit::RateLimitDecision;
use crate::runtime::{BotBackend, BotContext, Offer};

/// Jobs per page of `/list`.
pub(crate) const LIST_PAGE_SIZE: usize = 10;

/// Links carried by entities: `text_link` (a link behind words) and `url` (what Telegram saw as
/// a link, with or without a scheme), in the text or the caption. The entities' offsets are
/// read here, not by teloxide's `parse_entities` (which asserts on an offset inside a surrogate
/// pair and slices past the end of the text: a panic for an entity that does not fit); an
/// entity that does not fit the text is skipped.
fn linked_urls_of(message: &Message) -> Vec<String> {
    let mut urls = Vec::new();
    let sources = [
        (message.text(), message.entities()),
        (message.caption(), message.caption_entities()),
    ];
    for (text, entities) in sources {
        let (Some(text), Some(entities)) = (text, entities) else {
            continue;
        };
        for entity in entities {
            match &entity.kind {
                teloxide::types::MessageEntityKind::TextLink { url } => {
                    urls.push(url.to_string());
                }
                teloxide::types::MessageEntityKind::Url => {
                    if let Some(url) = utf16_span(text, entity.offset, entity.length)
                        .and_then(crate::parser::link_in_token)
                    {
                        urls.push(url);
                    }
                }
                _ => {}
            }
        }
    }
    urls
}

/// The part of `text` an entity covers: `offset` and `length` count UTF-16 code units, as
/// Telegram's do. `None` when the span ends past the text, or begins or ends inside a character
/// (half of a surrogate pair).
pub(crate) fn utf16_span(text: &str, offset: usize, length: usize) -> Option<&str> {
    let end = offset.checked_add(length)?;
    let mut start_byte = None;
    let mut end_byte = None;
    let mut units = 0usize;
    for (byte_index, character) in text
        .char_indices()
        .chain(std::iter::once((text.len(), '\0')))
    {
        if units == offset {
            start_byte = Some(byte_index);
        }
        if units == end {
            end_byte = Some(byte_index);
            break;
        }
        if units > end || byte_index == text.len() {
            break;
        }
        units += character.len_utf16();
    }
    text.get(start_byte?..end_byte?)
}

pub(crate) fn directory_size(directory: &std::path::Path) -> u64 {
    streambot_core::local_files::directory_size_bytes(directory, 1).unwrap_or(0)
}

/// Who owns what the message asks for (`identity::sender_of` over its raw fields).
fn sender_of_message(message: &Message) -> Sender {
    sender_of(
        message.from.as_ref().map(|user| user.id.0 as i64),
        message.sender_chat.as_ref().map(|chat| chat.id.0),
        message.is_automatic_forward(),
    )
}

pub(crate) async fn handle_message<B: BotBackend>(
    message: Message,
    context: Arc<BotContext<B>>,
) -> Result<(), std::convert::Infallible> {
    let sender = sender_of_message(&message);
    if sender == Sender::Nobody {
        return Ok(());
    }
    let chat_id = message.chat.id.0;
    context.api.chat_is_reachable(chat_id);
    let is_private = message.chat.is_private();
    if let Some(owner_id) = sender.owner_id() {
        context.remember_language_code(
            owner_id,
            message
                .from
                .as_ref()
                .and_then(|user| user.language_code.as_deref()),
        );
    }
    let words = match sender.owner_id() {
        Some(owner_id) => context.words_for(owner_id).await,
        None => Words::default(),
    };
    // Text, or the caption of a photo, video or document (a forwarded channel post); links hidden
    // behind words (`text_link`) come from the entities.
    let linked_urls = linked_urls_of(&message);
    let text = message.text().or(message.caption()).unwrap_or("");
    if text.trim().is_empty() && linked_urls.is_empty() {
        // A sticker, a photo without a caption, a voice note…: a hint, in private chats only.
        if is_private && sender.owner_id().is_some() {
            context.reply(chat_id, &words.nothing_to_read()).await;
        }
        return Ok(());
    }
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
    let is_command = text.trim_start().starts_with('/');
    if !is_private && !is_command && !mentioned {
        return Ok(());
    }
    let text_for_parser = match (&mention, mentioned && !is_command) {
        (Some(mention), true) => text.replace(mention.as_str(), " "),
        _ => text.to_string(),
    };
    let parsed = parse_message_with_links(&text_for_parser, &linked_urls, username.as_deref());
    if matches!(parsed, ParsedMessage::NotUnderstood) && !is_private {
        // A command for another bot, or something we cannot read: stay quiet in groups.
        return Ok(());
    }
    let Some(owner_id) = sender.owner_id() else {
        context.reply(chat_id, &words.sender_refused()).await;
        return Ok(());
    };
    if let RateLimitDecision::Refused { retry_after } = context.rate_limiter.check(owner_id).await {
        // Say it once per window, not once per message (that would spend Telegram's allowance).
        let window = context.settings.rate_limit.window;
        let should_notify =
            context
                .rate_limit_notices
                .first_in_window(owner_id, window, Instant::now(), true);
        if should_notify {
            context
                .reply(
                    chat_id,
                    &words.rate_limited(
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
            execute_command(&context, command, owner_id, chat_id).await;
        }
        ParsedMessage::Invalid(error) => {
            context.reply(chat_id, &words.command_error(&error)).await;
        }
        ParsedMessage::DidYouMean { command, urls } => {
            let keyboard = (!urls.is_empty())
                .then(|| offer_keyboard(&context, &words, owner_id, chat_id, &urls));
            if let Err(error) = context
                .api
                .send_text(
                    chat_id,
                    &words.did_you_mean(command, !urls.is_empty()),
                    keyboard,
                )
                .await
            {
                tracing::warn!(%error, "could not suggest a command");
            }
        }
        ParsedMessage::NotUnderstood => {
            context.reply(chat_id, &words.not_understood()).await;
        }
    }
    Ok(())
}

/// An edited message: never acted on (an edit would start a job again, or get around a limit);
/// in a private chat the sender is told to send it again. Groups stay quiet.
pub(crate) async fn handle_edited_message<B: BotBackend>(
    message: Message,
    context: Arc<BotContext<B>>,
) -> Result<(), std::convert::Infallible> {
    let sender = sender_of_message(&message);
    let Some(owner_id) = sender.owner_id() else {
        return Ok(());
    };
    if !message.chat.is_private() {
        return Ok(());
    }
    if let RateLimitDecision::Refused { .. } = context.rate_limiter.check(owner_id).await {
        return Ok(());
    }
    context.remember_language_code(
        owner_id,
        message
            .from
            .as_ref()
            .and_then(|user| user.language_code.as_deref()),
    );
    let words = context.words_for(owner_id).await;
    context
        .reply(message.chat.id.0, &words.edited_message_ignored())
        .await;
    Ok(())
}

/// A keyboard with one "⏺ <link>" button per link.
pub(crate) fn offer_keyboard<B: JobBackend>(
    context: &BotContext<B>,
    words: &Words,
    owner_id: i64,
    chat_id: i64,
    urls: &[String],
) -> teloxide::types::InlineKeyboardMarkup {
    let rows = urls
        .iter()
        .filter_map(|url| {
            let number = context.add_offer(Offer {
                owner_id,
                chat_id,
                url: url.clone(),
            })?;
            Some(vec![teloxide::types::InlineKeyboardButton::callback(
                words.record_link_button(url),
                format!("offer:{number}"),
            )])
        })
        .collect::<Vec<_>>();
    teloxide::types::InlineKeyboardMarkup::new(rows)
}

pub(crate) async fn execute_command<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    command: BotCommand,
    owner_id: i64,
    chat_id: i64,
) {
    let words = context.words_for(owner_id).await;
    let result = match command {
        BotCommand::Start => {
            context.reply(chat_id, &words.welcome()).await;
            Ok(())
        }
        BotCommand::Help => {
            context.reply(chat_id, &words.help()).await;
            Ok(())
        }
        BotCommand::Record(request) => start_recording(context, request, owner_id, chat_id).await,
        BotCommand::Stop(target) => {
            control_job(context, target, owner_id, chat_id, ControlAction::Stop).await
        }
        BotCommand::Pause(target) => {
            control_job(context, target, owner_id, chat_id, ControlAction::Pause).await
        }
        BotCommand::Resume(target) => {
            control_job(context, target, owner_id, chat_id, ControlAction::Resume).await
        }
        BotCommand::Cancel(target) => cancel_job(context, target, owner_id, chat_id).await,
        BotCommand::Delete(target) => {
            crate::admin::ask_to_delete(context, target, owner_id, chat_id).await
        }
        BotCommand::Status(target) => show_status(context, target, owner_id, chat_id).await,
        BotCommand::List => send_job_list(context, owner_id, chat_id).await,
        BotCommand::Language(choice) => choose_language(context, choice, owner_id, chat_id).await,
        BotCommand::Schedules => crate::dvr::send_schedule_list(context, owner_id, chat_id).await,
        BotCommand::TimeZone(choice) => {
            crate::dvr::choose_time_zone(context, choice, owner_id, chat_id).await
        }
        BotCommand::Clip { target, last } => {
            match resolve_target(context, target, owner_id, chat_id, "clip").await {
                Ok(Some(job_id)) => {
                    crate::dvr::request_clip(context, job_id, last, owner_id, chat_id).await
                }
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            }
        }
        BotCommand::Admin(admin) => {
            if context.is_admin(owner_id) {
                crate::admin::run_admin_command(context, admin, owner_id, chat_id).await
            } else {
                context.reply(chat_id, &words.admin_only()).await;
                Ok(())
            }
        }
    };
    if let Err(error) = result {
        tracing::warn!(owner_id, %error, "command failed");
        context.reply(chat_id, &words.internal_error()).await;
    }
}

async fn choose_language<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    choice: Option<String>,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let Some(choice) = choice else {
        let words = context.words_for(owner_id).await;
        context.reply(chat_id, &words.language_choice()).await;
        return Ok(());
    };
    let Some(language) = crate::catalogue::Language::from_code(&choice) else {
        let words = context.words_for(owner_id).await;
        context.reply(chat_id, &words.language_unknown()).await;
        return Ok(());
    };
    context
        .update_preferences(owner_id, |preferences| {
            preferences.language = Some(language.code().to_string());
        })
        .await?;
    context
        .reply(chat_id, &Words::new(language).language_set())
        .await;
    Ok(())
}

/// Live jobs first (newest first), then the finished ones.
pub(crate) fn live_first(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by(|left, right| {
        left.state
            .is_terminal()
            .cmp(&right.state.is_terminal())
            .then(right.created_at.cmp(&left.created_at))
    });
    jobs
}

/// One page of a job list: (text, "More" keyboard).
pub(crate) fn job_list_page(
    words: &Words,
    jobs: &[Job],
    page: usize,
    with_owners: bool,
) -> (String, Option<teloxide::types::InlineKeyboardMarkup>) {
    let callback_prefix = if with_owners { "admin-list" } else { "list" };
    // The page comes from a button's data, which anyone can forge (`list:18446744073709551615`):
    // past the last page is the last page, and no arithmetic here can overflow.
    let last_page = jobs.len().saturating_sub(1) / LIST_PAGE_SIZE;
    let page = page.min(last_page);
    let start = page * LIST_PAGE_SIZE;
    let shown_until = start.saturating_add(LIST_PAGE_SIZE).min(jobs.len());
    let page_jobs = jobs.get(start..shown_until).unwrap_or(&[]);
    let text = words.job_list(page_jobs, with_owners, jobs.len());
    let keyboard = (shown_until < jobs.len()).then(|| list_more(words, callback_prefix, page + 1));
    (text, keyboard)
}

async fn send_job_list<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let jobs = live_first(context.backend.list_jobs_for_user(owner_id, 200).await?);
    let (text, keyboard) = job_list_page(&words, &jobs, 0, false);
    if let Err(error) = context.api.send_text(chat_id, &text, keyboard).await {
        tracing::warn!(%error, "could not send the list");
    }
    Ok(())
}

/// One job per link within the user's limit; more links than free slots: a button per link.
pub(crate) async fn start_recording<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    request: RecordRequest,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    if let Some(start) = &request.start {
        return crate::dvr::schedule_recording(context, &request, start, owner_id, chat_id).await;
    }
    if request.urls.len() > 1 {
        let live_jobs = context.live_jobs_of(owner_id).await?;
        let free_slots = context
            .concurrent_job_limit(owner_id)
            .await
            .map_or(usize::MAX, |limit| limit.saturating_sub(live_jobs.len()));
        if request.urls.len() > free_slots {
            let keyboard = offer_keyboard(context, &words, owner_id, chat_id, &request.urls);
            if let Err(error) = context
                .api
                .send_text(
                    chat_id,
                    &words.which_links(request.urls.len(), free_slots),
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
        if !start_one_recording(context, &words, &request, url, owner_id, chat_id).await? {
            break;
        }
    }
    Ok(())
}

/// Creates, announces and queues one job; `false` when a limit refused it (stop trying others).
async fn start_one_recording<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    words: &Words,
    request: &RecordRequest,
    url: &str,
    owner_id: i64,
    chat_id: i64,
) -> Result<bool, JobsError> {
    let policy = NetworkPolicy {
        allow_private_networks: context.settings.allow_private_networks,
    };
    if let Err(refusal) = parse_and_check_url(url, policy) {
        context
            .reply(chat_id, &words.refused_link(&refusal.to_string()))
            .await;
        return Ok(true);
    }
    let live_jobs = context.live_jobs_of(owner_id).await?;
    if let Some(limit) = context.concurrent_job_limit(owner_id).await
        && live_jobs.len() >= limit
    {
        context.reply(chat_id, &words.too_many_jobs(limit)).await;
        return Ok(false);
    }
    let is_admin = context.is_admin(owner_id);
    if let Some(quota) = context.settings.user_disk_quota_bytes
        && !is_admin
    {
        // Finished files filed by storage under `user_<id>/`, plus every working directory (a
        // part storage refused, or one kept after a failed finalize, stays there).
        let all_jobs = context.backend.list_jobs_for_user(owner_id, 10_000).await?;
        let used = user_disk_usage_bytes(context, owner_id, &all_jobs).await;
        if used >= quota {
            context
                .reply(chat_id, &words.disk_quota_reached(used, quota))
                .await;
            return Ok(false);
        }
    }
    // Every job has an end: the asked duration, else the cap; only admins go past the cap.
    let cap = context.settings.default_maximum_duration;
    let maximum_duration = match (request.duration, cap) {
        (Some(asked), Some(cap)) if asked > cap && !is_admin => {
            context
                .reply(chat_id, &words.plan_line(Some(asked), Some(cap)))
                .await;
            Some(cap)
        }
        (Some(asked), _) => Some(asked),
        (None, cap) => cap,
    };
    let priority = if is_admin || context.is_vip(owner_id).await {
        JobPriority::Priority
    } else {
        JobPriority::Normal
    };
    let mut options = RecordingOptions {
        maximum_duration,
        format: OutputFormat::Mp4,
        stall_timeout: context.settings.stall_timeout,
        ..RecordingOptions::default()
    };
    crate::dvr::apply_request_options(&mut options, request);
    // Created, announced, then queued: the status message exists before a worker can claim the
    // job, so the status updater edits it instead of sending a second one.
    let job = context
        .backend
        .create_job(NewJob {
            owner: JobOwner {
                user_id: owner_id,
                chat_id,
            },
            url: url.to_string(),
            options,
            priority,
        })
        .await?;
    tracing::info!(job_id = %job.id, owner_id, "recording requested");
    let options_line = words.options_line(&job.options);
    if !options_line.is_empty() {
        context.reply(chat_id, &options_line).await;
    }
    context.send_status_message(&job, chat_id).await;
    context.backend.push(job.id, job.priority).await?;
    Ok(true)
}

/// What a user's recordings take on this machine: the finished files storage filed under
/// `user_<id>/` (the same count storage's own quota uses), plus the working directories of the
/// jobs in `jobs` (parts being recorded, files storage refused or could not finalize).
async fn user_disk_usage_bytes<B: JobBackend>(
    context: &BotContext<B>,
    owner_id: i64,
    jobs: &[Job],
) -> u64 {
    let working_bytes: u64 = jobs
        .iter()
        .map(|job| {
            directory_size(&job_directory(
                &context.settings.recordings_directory,
                job.id,
            ))
        })
        .sum();
    let stored_bytes = match &context.settings.storage {
        Some(storage) => storage
            .local
            .bytes_used_by_user(owner_id)
            .await
            .unwrap_or(0),
        None => 0,
    };
    working_bytes + stored_bytes
}

/// Resolves "stop" without an id: the only live job, or a picker with a button per job.
async fn resolve_target<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    owner_id: i64,
    chat_id: i64,
    action: &str,
) -> Result<Option<JobId>, JobsError> {
    let words = context.words_for(owner_id).await;
    match target {
        JobTarget::Id(job_id) => Ok(Some(job_id)),
        JobTarget::Unspecified => {
            let live = context.live_jobs_of(owner_id).await?;
            match live.as_slice() {
                [] => {
                    context.reply(chat_id, &words.no_live_jobs()).await;
                    Ok(None)
                }
                [only] => Ok(Some(only.id)),
                several => {
                    if let Err(error) = context
                        .api
                        .send_text(
                            chat_id,
                            &words.which_job(),
                            Some(job_picker(&words, several, action)),
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

fn action_name(action: ControlAction) -> &'static str {
    match action {
        ControlAction::Stop | ControlAction::Cancel => "stop",
        ControlAction::Pause => "pause",
        ControlAction::Resume => "resume",
    }
}

pub(crate) fn action_from_name(name: &str) -> Option<ControlAction> {
    match name {
        "stop" => Some(ControlAction::Stop),
        "pause" => Some(ControlAction::Pause),
        "resume" => Some(ControlAction::Resume),
        "status" => None,
        _ => None,
    }
}

async fn control_job<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    owner_id: i64,
    chat_id: i64,
    action: ControlAction,
) -> Result<(), JobsError> {
    let Some(job_id) =
        resolve_target(context, target, owner_id, chat_id, action_name(action)).await?
    else {
        return Ok(());
    };
    let outcome = apply_control(context, job_id, owner_id, action).await?;
    context.reply(chat_id, &outcome.text).await;
    Ok(())
}

/// What a control did: the sentence for the chat and the toast for a button.
pub(crate) struct ControlOutcome {
    pub text: String,
    pub toast: String,
    /// The control was taken (not refused for the job's state).
    pub applied: bool,
}

/// Applies a control on behalf of `actor_id` (the owner, or an admin: then the owner is told).
pub(crate) async fn apply_control<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    job_id: JobId,
    actor_id: i64,
    action: ControlAction,
) -> Result<ControlOutcome, JobsError> {
    let words = context.words_for(actor_id).await;
    let Some(job) = context.owned_job(actor_id, job_id).await? else {
        return Ok(ControlOutcome {
            text: words.no_such_job(job_id),
            toast: words.label(crate::catalogue::Key::ToastNotYours),
            applied: false,
        });
    };
    control_owned_job(context, &words, job, actor_id, action).await
}

/// Applies a control to a job the actor may act on.
pub(crate) async fn control_owned_job<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    words: &Words,
    job: Job,
    actor_id: i64,
    action: ControlAction,
) -> Result<ControlOutcome, JobsError> {
    let job_id = job.id;
    let effective = match action {
        ControlAction::Stop if job.state == JobState::Queued => ControlAction::Cancel,
        other => other,
    };
    let (applicable, desired) = match effective {
        ControlAction::Stop | ControlAction::Cancel => {
            (!job.state.is_terminal(), DesiredJobState::Stop)
        }
        ControlAction::Pause => (
            matches!(job.state, JobState::Recording | JobState::Starting),
            DesiredJobState::Pause,
        ),
        ControlAction::Resume => (job.state == JobState::Paused, DesiredJobState::Record),
    };
    if !applicable {
        let toast = if job.state.is_terminal() {
            words.label(crate::catalogue::Key::ToastAlreadyFinished)
        } else {
            strip_markdown(&words.control_not_possible(effective, job_id, job.state))
        };
        return Ok(ControlOutcome {
            text: words.control_not_possible(effective, job_id, job.state),
            toast,
            applied: false,
        });
    }
    match context.backend.set_desired_state(job_id, desired).await {
        Ok(updated) => {
            context.refresh_status_message(&updated, true).await;
            if job.owner.user_id != actor_id && matches!(desired, DesiredJobState::Stop) {
                let owner_words = context.words_for(job.owner.user_id).await;
                context
                    .reply(job.owner.chat_id, &owner_words.owner_told_stopped(job_id))
                    .await;
            }
            Ok(ControlOutcome {
                text: words.control_done(effective, job_id),
                toast: words.control_toast(effective),
                applied: true,
            })
        }
        Err(JobsError::NotApplicable { state, .. }) => Ok(ControlOutcome {
            text: words.control_not_possible(effective, job_id, state),
            toast: if state.is_terminal() {
                words.label(crate::catalogue::Key::ToastAlreadyFinished)
            } else {
                strip_markdown(&words.control_not_possible(effective, job_id, state))
            },
            applied: false,
        }),
        Err(error) => Err(error),
    }
}

/// MarkdownV2 to plain text (for a toast): escapes and marks removed.
pub(crate) fn strip_markdown(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => {
                if let Some(next) = characters.next() {
                    plain.push(next);
                }
            }
            '*' | '`' | '_' => {}
            other => plain.push(other),
        }
    }
    plain
}

async fn cancel_job<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let Some(job_id) = resolve_target(context, target, owner_id, chat_id, "stop").await? else {
        return Ok(());
    };
    let Some(job) = context.owned_job(owner_id, job_id).await? else {
        context.reply(chat_id, &words.no_such_job(job_id)).await;
        return Ok(());
    };
    if job.state != JobState::Queued {
        context
            .reply(chat_id, &words.cancel_only_queued(job_id))
            .await;
        return Ok(());
    }
    let outcome = control_owned_job(context, &words, job, owner_id, ControlAction::Cancel).await?;
    context.reply(chat_id, &outcome.text).await;
    Ok(())
}

/// `/status`: a fresh status message at the bottom of the chat; the old one loses its buttons.
async fn show_status<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let Some(job_id) = resolve_target(context, target, owner_id, chat_id, "status").await? else {
        return Ok(());
    };
    match context.owned_job(owner_id, job_id).await? {
        Some(job) => context.send_status_message(&job, chat_id).await,
        None => context.reply(chat_id, &words.no_such_job(job_id)).await,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::utf16_span;

    #[test]
    fn an_entity_that_does_not_fit_the_text_has_no_span() {
        let text = "😀😀 http://a.b/c 1h";
        // Each emoji is two UTF-16 units.
        assert_eq!(utf16_span(text, 5, 12), Some("http://a.b/c"));
        assert_eq!(utf16_span(text, 0, 2), Some("😀"));
        assert_eq!(utf16_span(text, 0, 0), Some(""));
        let length = text.encode_utf16().count();
        assert_eq!(utf16_span(text, length, 0), Some(""));
        assert_eq!(utf16_span(text, 0, length), Some(text));
        // Past the end, inside a surrogate pair, overflowing.
        assert_eq!(utf16_span(text, length + 10, 5), None);
        assert_eq!(utf16_span(text, 0, length + 1), None);
        assert_eq!(utf16_span(text, 1, 3), None);
        assert_eq!(utf16_span(text, 0, 3), None);
        assert_eq!(utf16_span(text, 2, usize::MAX), None);
        assert_eq!(utf16_span("", 0, 0), Some(""));
        assert_eq!(utf16_span("", 0, 1), None);
    }
}
