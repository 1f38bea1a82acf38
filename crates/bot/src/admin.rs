//! Admin commands (`/admin help`, overview, every job with owners, stop anyone's job, VIPs) and
//! `/delete` for everyone (asked with buttons first; the owner is told when an admin deletes).

use std::sync::Arc;

use streambot_core::JobId;
use streambot_core::job::JobState;
use streambot_core::job_directory;
use streambot_store::{JobBackend, JobFilter, JobsError};

use crate::handlers::{directory_size, job_list_page, live_first};
use crate::keyboards::delete_confirmation;
use crate::messages::ControlAction;
use crate::parser::{AdminCommand, JobTarget};
use crate::runtime::BotContext;

pub(crate) async fn run_admin_command<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    command: AdminCommand,
    actor_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(actor_id).await;
    match command {
        AdminCommand::Help => {
            context.reply(chat_id, &words.admin_help()).await;
        }
        AdminCommand::Overview => {
            // Counted by the store, not by reading every job it holds.
            let counts = context.backend.count_jobs_by_state().await?;
            let by_state: Vec<(JobState, usize)> = counts
                .by_state()
                .filter(|(_, count)| *count > 0)
                .map(|(state, count)| (state, usize::try_from(count).unwrap_or(usize::MAX)))
                .collect();
            let total = usize::try_from(counts.total()).unwrap_or(usize::MAX);
            context
                .reply(chat_id, &words.admin_overview(&by_state, total))
                .await;
        }
        AdminCommand::AllJobs => {
            let jobs = live_first(
                context
                    .backend
                    .list_jobs(JobFilter {
                        limit: Some(500),
                        ..JobFilter::default()
                    })
                    .await?,
            );
            let (text, keyboard) = job_list_page(&words, &jobs, 0, true);
            if let Err(error) = context.api.send_text(chat_id, &text, keyboard).await {
                tracing::warn!(%error, "could not send the admin list");
            }
        }
        AdminCommand::StopAny(job_id) => {
            let Some(job) = context.backend.get_job(job_id).await? else {
                context
                    .reply(chat_id, &words.admin_no_such_job(job_id))
                    .await;
                return Ok(());
            };
            let owner = job.owner.user_id;
            let outcome = crate::handlers::control_owned_job(
                context,
                &words,
                job,
                actor_id,
                ControlAction::Stop,
            )
            .await?;
            let text = if owner != actor_id && outcome.applied {
                words.admin_stopped(job_id, owner)
            } else {
                outcome.text
            };
            context.reply(chat_id, &text).await;
        }
        AdminCommand::AddVip(user_id) | AdminCommand::RemoveVip(user_id) => {
            let added = matches!(command, AdminCommand::AddVip(_));
            context
                .update_preferences(user_id, |preferences| preferences.vip = added)
                .await?;
            context
                .reply(
                    chat_id,
                    &words.vip_changed(
                        user_id,
                        added,
                        context.settings.maximum_concurrent_jobs_per_vip,
                    ),
                )
                .await;
        }
    }
    Ok(())
}

/// `/delete ID`: checks, then asks with "Delete" / "Keep" buttons.
pub(crate) async fn ask_to_delete<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    target: JobTarget,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let JobTarget::Id(job_id) = target else {
        context.reply(chat_id, &words.delete_needs_an_id()).await;
        return Ok(());
    };
    let Some(job) = context.owned_job(owner_id, job_id).await? else {
        context.reply(chat_id, &words.no_such_job(job_id)).await;
        return Ok(());
    };
    if !job.is_finished_for_its_owner() {
        context
            .reply(chat_id, &words.delete_while_live(job_id))
            .await;
        return Ok(());
    }
    if let Err(error) = context
        .api
        .send_text(
            chat_id,
            &words.delete_confirm(job_id),
            Some(delete_confirmation(&words, job_id)),
        )
        .await
    {
        tracing::warn!(%error, "could not ask to confirm a delete");
    }
    Ok(())
}

/// Deletes a finished recording's files (every copy, through storage) and the job's working
/// directory, for its owner or an admin; returns the sentence to show. The owner is told when an
/// admin did it.
pub(crate) async fn delete_recording<B: JobBackend>(
    context: &Arc<BotContext<B>>,
    job_id: JobId,
    actor_id: i64,
) -> Result<String, JobsError> {
    let words = context.words_for(actor_id).await;
    let Some(job) = context.owned_job(actor_id, job_id).await? else {
        return Ok(words.no_such_job(job_id));
    };
    if !job.is_finished_for_its_owner() {
        return Ok(words.delete_while_live(job_id));
    }
    let mut deleted_files = 0;
    let mut deleted_bytes = 0;
    let mut problems = Vec::new();
    if let Some(storage) = &context.settings.storage {
        use streambot_storage::Store;
        let requester = streambot_storage::Requester {
            user_id: actor_id,
            is_admin: context.is_admin(actor_id),
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
    tracing::info!(%job_id, actor_id, deleted_files, deleted_bytes, "recording deleted on request");
    if job.owner.user_id != actor_id {
        let owner_words = context.words_for(job.owner.user_id).await;
        context
            .reply(job.owner.chat_id, &owner_words.owner_told_deleted(job_id))
            .await;
    }
    Ok(if problems.is_empty() {
        words.deleted(job_id, deleted_files, deleted_bytes)
    } else {
        words.delete_failed(job_id, &problems.join("; "))
    })
}
