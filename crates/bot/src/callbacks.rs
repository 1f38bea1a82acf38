//! Button presses. Every press is answered with a short toast ("Stopping…", "Already
//! finished"); the chat gets a message only for a result. A status message's buttons refresh that
//! message; pickers and confirmations are replaced by their outcome (their buttons go).

use std::sync::Arc;

use streambot_core::JobId;
use streambot_core::delivery::RedeliveryOutcome;
use streambot_core::job::Job;
use streambot_store::JobBackend;
use teloxide::types::{CallbackQuery, MessageId};

use crate::catalogue::Key;
use crate::handlers::{
    action_from_name, control_owned_job, job_list_page, live_first, start_recording,
};
use crate::messages::{DeliveryProgress, Words, plain};
use crate::parser::RecordRequest;
use crate::rate_limit::RateLimitDecision;
use crate::runtime::{ActingDecision, BotBackend, BotContext};

pub(crate) async fn handle_callback<B: BotBackend>(
    query: CallbackQuery,
    context: Arc<BotContext<B>>,
) -> Result<(), std::convert::Infallible> {
    let user_id = query.from.id.0 as i64;
    // Pressing a button in a chat means the bot may write there again.
    if let Some(message) = &query.message {
        context.api.chat_is_reachable(message.chat().id.0);
    }
    context.remember_language_code(user_id, query.from.language_code.as_deref());
    // A script pressing a button hundreds of times must not spend the bot's sending allowance
    // (answers go first in the outbound queue): past the limit, one "slow down", then silence.
    if let RateLimitDecision::Refused { .. } = context.press_limiter.check(user_id).await {
        let window = context.settings.rate_limit.window;
        let should_notify = context.press_limit_notices.first_in_window(
            user_id,
            window,
            std::time::Instant::now(),
            false,
        );
        if should_notify {
            let words = context.words_for(user_id).await;
            context
                .api
                .answer_callback(&query.id.0, Some(words.label(Key::ToastSlowDown)))
                .await;
        }
        return Ok(());
    }
    let words = context.words_for(user_id).await;
    let data = query.data.clone().unwrap_or_default();
    let message = query
        .message
        .as_ref()
        .map(|message| (message.chat().id.0, message.id()));
    let chat_id = message.map_or(user_id, |(chat_id, _)| chat_id);
    let toast = answer(&context, &words, &data, user_id, chat_id, message).await;
    context.api.answer_callback(&query.id.0, toast).await;
    Ok(())
}

async fn answer<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    words: &Words,
    data: &str,
    user_id: i64,
    chat_id: i64,
    message: Option<(i64, MessageId)>,
) -> Option<String> {
    let (action, argument) = data.split_once(':')?;
    match action {
        "offer" => Some(press_offer(context, words, argument, user_id, chat_id).await),
        "unschedule" => Some(
            crate::dvr::press_cancel_schedule(context, words, argument, user_id, chat_id, message)
                .await,
        ),
        "list" | "admin-list" => {
            let page = argument.parse::<usize>().unwrap_or(0);
            let with_owners = action == "admin-list" && context.is_admin(user_id);
            let jobs = if with_owners {
                context
                    .backend
                    .list_jobs(streambot_store::JobFilter {
                        limit: Some(500),
                        ..streambot_store::JobFilter::default()
                    })
                    .await
            } else {
                context.backend.list_jobs_for_user(user_id, 200).await
            };
            let Ok(jobs) = jobs else {
                return Some(words.label(Key::ToastTryAgain));
            };
            let (text, keyboard) = job_list_page(words, &live_first(jobs), page, with_owners);
            if let Some((chat_id, message_id)) = message
                && let Err(error) = context
                    .api
                    .edit_text(chat_id, message_id, &text, keyboard)
                    .await
            {
                tracing::debug!(%error, "could not show a list page");
            }
            None
        }
        _ => {
            let job_id = argument.parse::<JobId>().ok();
            let Some(job_id) = job_id else {
                return Some(words.label(Key::ToastExpired));
            };
            Some(press_job_button(context, words, action, job_id, user_id, chat_id, message).await)
        }
    }
}

async fn press_offer<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    words: &Words,
    argument: &str,
    user_id: i64,
    chat_id: i64,
) -> String {
    let Ok(number_of_offer) = argument.parse::<u64>() else {
        return words.label(Key::ToastExpired);
    };
    let Some(offer) = context.take_offer(number_of_offer) else {
        return words.label(Key::ToastExpired);
    };
    match context
        .acting_identity(offer.owner_id, offer.chat_id, user_id, chat_id)
        .await
    {
        ActingDecision::As(_) => {}
        refused => {
            // Not taken: the button stays usable by the one it was offered to.
            context.put_back_offer(number_of_offer, offer);
            return refusal_toast(words, refused);
        }
    }
    let request = RecordRequest {
        urls: vec![offer.url.clone()],
        ..RecordRequest::default()
    };
    match start_recording(context, request, offer.owner_id, offer.chat_id).await {
        Ok(()) => words.label(Key::ToastStarting),
        Err(error) => {
            tracing::warn!(%error, "recording an offered link failed");
            words.label(Key::ToastTryAgain)
        }
    }
}

async fn press_job_button<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    words: &Words,
    action: &str,
    job_id: JobId,
    user_id: i64,
    chat_id: i64,
    message: Option<(i64, MessageId)>,
) -> String {
    let job = match context.backend.get_job(job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => return words.label(Key::ToastNotYours),
        Err(error) => {
            tracing::warn!(%error, "button: could not read the job");
            return words.label(Key::ToastTryAgain);
        }
    };
    let actor_id = match context
        .acting_identity(job.owner.user_id, job.owner.chat_id, user_id, chat_id)
        .await
    {
        ActingDecision::As(actor_id) => actor_id,
        refused => return refusal_toast(words, refused),
    };
    // The Clip button, and the picker of `/clip` without an id: the default length.
    if action == "clip" || action == "pick-clip" {
        return match crate::dvr::ask_for_clip(
            context,
            words,
            job_id,
            actor_id,
            chat_id,
            streambot_core::DEFAULT_CLIP_DURATION,
        )
        .await
        {
            Ok(Ok(())) => words.label(Key::ToastClipping),
            Ok(Err(refusal)) => crate::handlers::strip_markdown(&refusal),
            Err(error) => {
                tracing::warn!(%error, "clip button failed");
                words.label(Key::ToastTryAgain)
            }
        };
    }
    // A picker ("Which recording?"): act, then replace the picker by the outcome.
    if let Some(picked_action) = action.strip_prefix("pick-") {
        let (text, toast) = match action_from_name(picked_action) {
            Some(control) => {
                match control_owned_job(context, words, job, actor_id, control).await {
                    Ok(outcome) => (outcome.text, outcome.toast),
                    Err(error) => {
                        tracing::warn!(%error, "picker action failed");
                        return words.label(Key::ToastTryAgain);
                    }
                }
            }
            None => {
                context.send_status_message(&job, chat_id).await;
                (plain(job_id.as_str()), words.state_label(job.state))
            }
        };
        if let Some((chat_id, message_id)) = message
            && let Err(error) = context
                .api
                .edit_text(chat_id, message_id, &text, None)
                .await
        {
            tracing::debug!(%error, "could not replace a picker");
        }
        return toast;
    }
    match action {
        "stop" | "pause" | "resume" => {
            let Some(control) = action_from_name(action) else {
                return words.label(Key::ToastTryAgain);
            };
            adopt_pressed_message(context, &job, message).await;
            match control_owned_job(context, words, job.clone(), actor_id, control).await {
                Ok(outcome) => {
                    if !outcome.applied {
                        // Show the job as it is now, without stale buttons.
                        context.refresh_status_message(&job, true).await;
                    }
                    outcome.toast
                }
                Err(error) => {
                    tracing::warn!(%error, "button action failed");
                    words.label(Key::ToastTryAgain)
                }
            }
        }
        "status" => {
            adopt_pressed_message(context, &job, message).await;
            context.refresh_status_message(&job, true).await;
            if job.state.is_terminal()
                && crate::part_sender::delivery_progress(&job) != DeliveryProgress::Failed
            {
                words.label(Key::ToastAlreadyFinished)
            } else {
                words.state_label(job.state)
            }
        }
        "resend" => {
            // Recorded in the store: the job goes back to its queue and a worker sends the
            // failed parts (a restart loses nothing; a second tap while one is pending does
            // nothing more).
            match context.backend.request_redelivery(job.id).await {
                Ok((requested, RedeliveryOutcome::Requested)) => {
                    adopt_pressed_message(context, &requested, message).await;
                    context.refresh_status_message(&requested, true).await;
                    words.label(Key::ToastSending)
                }
                Ok((_, RedeliveryOutcome::AlreadyPending)) => words.label(Key::ToastAlreadySending),
                Ok((_, RedeliveryOutcome::FilesDeleted)) => {
                    if let Err(error) = context
                        .api
                        .send_text(chat_id, &words.resend_files_deleted(job.id), None)
                        .await
                    {
                        tracing::debug!(%error, "could not say the files are gone");
                    }
                    words.label(Key::ToastAlreadyFinished)
                }
                Ok((current, RedeliveryOutcome::NotFinished)) => words.state_label(current.state),
                Ok((_, RedeliveryOutcome::NothingToSendAgain)) => {
                    words.label(Key::ToastAlreadyFinished)
                }
                Err(error) => {
                    tracing::warn!(%error, "send again: could not record the request");
                    words.label(Key::ToastTryAgain)
                }
            }
        }
        "delete" => {
            let text = match crate::admin::delete_recording(context, job_id, actor_id).await {
                Ok(text) => text,
                Err(error) => {
                    tracing::warn!(%error, "delete failed");
                    words.internal_error()
                }
            };
            if let Some((chat_id, message_id)) = message {
                context
                    .api
                    .edit_text(chat_id, message_id, &text, None)
                    .await
                    .ok();
            }
            words.label(Key::ToastDeleting)
        }
        "keep" => {
            if let Some((chat_id, message_id)) = message {
                context
                    .api
                    .edit_text(chat_id, message_id, &words.delete_kept(job_id), None)
                    .await
                    .ok();
            }
            words.label(Key::ToastKept)
        }
        _ => words.label(Key::ToastExpired),
    }
}

/// A button was pressed on a message that is not the job's current status message (an old one):
/// that message becomes the status message, and the other one loses its buttons.
async fn adopt_pressed_message<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    job: &Job,
    message: Option<(i64, MessageId)>,
) {
    let Some((chat_id, message_id)) = message else {
        return;
    };
    if context.is_status_message(job, chat_id, message_id) {
        return;
    }
    let previous = context.current_status_message(job);
    context
        .adopt_status_message(job.id, chat_id, message_id, "")
        .await;
    if let Some(previous) = previous
        && !previous.last_text.is_empty()
    {
        context
            .api
            .remove_keyboard(previous.chat_id, previous.message_id, &previous.last_text);
    }
}

/// The toast of a press that may not act.
pub(crate) fn refusal_toast(words: &Words, decision: ActingDecision) -> String {
    match decision {
        ActingDecision::ChatAdministratorsOnly => words.label(Key::ToastChatAdministratorsOnly),
        ActingDecision::As(_) | ActingDecision::NotYours => words.label(Key::ToastNotYours),
    }
}
