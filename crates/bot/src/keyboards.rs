//! The inline keyboards: a job's controls, "which recording?" pickers, delete confirmation,
//! "send again", list pages. Callback data is `<action>:<argument>` (at most 64 bytes).

use streambot_core::JobId;
use streambot_core::job::{Job, JobState};
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use crate::catalogue::Key;
use crate::messages::{DeliveryProgress, Words};

/// The control keyboard of a job in a given state (`None`: no buttons any more).
pub fn job_keyboard(
    words: &Words,
    job_id: JobId,
    state: JobState,
    delivery: DeliveryProgress,
) -> Option<InlineKeyboardMarkup> {
    let id = job_id.as_str();
    let status =
        InlineKeyboardButton::callback(words.label(Key::ButtonStatus), format!("status:{id}"));
    let stop = InlineKeyboardButton::callback(words.label(Key::ButtonStop), format!("stop:{id}"));
    let row = match state {
        JobState::Recording => {
            return Some(InlineKeyboardMarkup::new(vec![
                vec![
                    stop,
                    InlineKeyboardButton::callback(
                        words.label(Key::ButtonPause),
                        format!("pause:{id}"),
                    ),
                    status,
                ],
                vec![InlineKeyboardButton::callback(
                    words.label(Key::ButtonClip),
                    format!("clip:{id}"),
                )],
            ]));
        }
        JobState::Starting => vec![stop, status],
        JobState::Paused => vec![
            stop,
            InlineKeyboardButton::callback(words.label(Key::ButtonResume), format!("resume:{id}")),
            status,
        ],
        JobState::Queued => vec![
            InlineKeyboardButton::callback(words.label(Key::ButtonCancel), format!("stop:{id}")),
            status,
        ],
        JobState::Finalizing | JobState::Uploading => vec![status],
        JobState::Completed if delivery == DeliveryProgress::Failed => {
            vec![InlineKeyboardButton::callback(
                words.label(Key::ButtonSendAgain),
                format!("resend:{id}"),
            )]
        }
        JobState::Completed | JobState::Failed | JobState::Cancelled => return None,
    };
    Some(InlineKeyboardMarkup::new(vec![row]))
}

/// One button per live job, for "stop" without an id.
pub fn job_picker(words: &Words, jobs: &[Job], action: &str) -> InlineKeyboardMarkup {
    let rows: Vec<Vec<InlineKeyboardButton>> = jobs
        .iter()
        .map(|job| {
            vec![InlineKeyboardButton::callback(
                format!(
                    "{} · {} · {}",
                    job.id,
                    words.state_label(job.state),
                    crate::messages::stream_name(&job.url)
                        .chars()
                        .take(24)
                        .collect::<String>()
                ),
                format!("pick-{action}:{}", job.id),
            )]
        })
        .collect();
    InlineKeyboardMarkup::new(rows)
}

/// "Delete" / "Keep" for `/delete ID`.
pub fn delete_confirmation(words: &Words, job_id: JobId) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(vec![vec![
        InlineKeyboardButton::callback(words.label(Key::ButtonDelete), format!("delete:{job_id}")),
        InlineKeyboardButton::callback(words.label(Key::ButtonKeep), format!("keep:{job_id}")),
    ]])
}

/// "Send again" for a delivery that failed.
pub fn send_again(words: &Words, job_id: JobId) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(vec![vec![InlineKeyboardButton::callback(
        words.label(Key::ButtonSendAgain),
        format!("resend:{job_id}"),
    )]])
}

/// "More ▸" under a list page.
pub fn list_more(words: &Words, callback_prefix: &str, next_page: usize) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(vec![vec![InlineKeyboardButton::callback(
        words.label(Key::ButtonMore),
        format!("{callback_prefix}:{next_page}"),
    )]])
}
