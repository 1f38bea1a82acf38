//! Every sentence the bot says, in the user's language, as Telegram MarkdownV2. The words are in
//! `catalogue` (one table keyed by message id); this module picks the sentence and fills its
//! arguments, each through `plain`, `bold` or `code`, which escape it, so neither our punctuation
//! nor a user's URL can break a message.

use std::time::Duration;

use streambot_core::duration_text::{DurationTextError, format_duration_with_units};
use streambot_core::job::{Job, JobState};
use streambot_core::schedule::time_zone_label;
use streambot_core::{FailureKind, JobId, Quality, RecordingProgress, TimeOfDay};

pub use streambot_core::quantity_text::{format_bitrate, format_size};

use crate::catalogue::{Key, Language, PluralForm, plural_form, render, render_plain};
use crate::markdown::{escape_markdown_v2, escape_markdown_v2_code};
use crate::parser::CommandError;

pub use crate::catalogue::Language as MessageLanguage;

pub fn plain(text: &str) -> String {
    escape_markdown_v2(text)
}

pub fn bold(text: &str) -> String {
    format!("*{}*", escape_markdown_v2(text))
}

pub fn code(text: &str) -> String {
    format!("`{}`", escape_markdown_v2_code(text))
}

/// At most `maximum` characters of `text` (a link, an error, something the user typed), with an
/// ellipsis when cut, so no message passes Telegram's 4096 characters.
pub fn shortened(text: &str, maximum: usize) -> String {
    if text.chars().count() <= maximum {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(maximum.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Telegram's longest message, in UTF-16 code units.
pub const MAXIMUM_MESSAGE_LENGTH: usize = 4096;

/// The longest link shown in a message.
const SHOWN_LINK_CHARACTERS: usize = 300;
/// The longest error, reason or user text shown in a message.
const SHOWN_TEXT_CHARACTERS: usize = 400;

fn seconds_of(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value.min(1e12))
    } else {
        Duration::ZERO
    }
}

/// A control a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    Stop,
    Cancel,
    Pause,
    Resume,
}

/// Where the bot is with sending a finished job's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryProgress {
    #[default]
    NotYet,
    Sending,
    Sent,
    Failed,
}

/// What the status message shows beside the job itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusView {
    pub delivery: DeliveryProgress,
    /// The cap a job without a duration was given: such a job says "up to …".
    pub default_cap: Option<Duration>,
}

/// The short stream name of a link, for captions and lists: host and path, no query.
pub fn stream_name(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_query = without_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or(without_scheme);
    let name: String = without_query.chars().take(60).collect();
    if without_query.chars().count() > 60 {
        format!("{name}…")
    } else {
        name
    }
}

/// A failure class read from the error text, for jobs whose worker did not record one.
pub fn failure_from_error_text(error: &str) -> Option<FailureKind> {
    let lowered = error.to_lowercase();
    let has = |needle: &str| lowered.contains(needle);
    if has("404") || has("410") || has("not found") {
        Some(FailureKind::NotFound)
    } else if has("403") || has("401") || has("forbidden") {
        Some(FailureKind::Forbidden)
    } else if has("html") || has("web page") || has("#extm3u") {
        Some(FailureKind::WebPage)
    } else if has("private") || has("local address") {
        Some(FailureKind::PrivateAddress)
    } else if has("drm") || has("sample-aes") || has("widevine") || has("fairplay") {
        Some(FailureKind::Protected)
    } else if has("dns") || has("connect") || has("unreachable") || has("timed out") {
        Some(FailureKind::Unreachable)
    } else if has(" 5") && has("server") {
        Some(FailureKind::ServerError)
    } else {
        None
    }
}

/// The words of one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Words {
    pub language: Language,
}

impl Words {
    pub fn new(language: Language) -> Words {
        Words { language }
    }

    fn say(&self, key: Key, arguments: &[(&str, String)]) -> String {
        render(self.language, key, arguments)
    }

    /// A label or toast: plain text.
    pub fn label(&self, key: Key) -> String {
        render_plain(self.language, key, &[])
    }

    pub fn duration(&self, duration: Duration) -> String {
        format_duration_with_units(duration, self.language.duration_units())
    }

    fn id(job_id: JobId) -> (&'static str, String) {
        ("id", code(job_id.as_str()))
    }

    pub fn welcome(&self) -> String {
        self.say(Key::Welcome, &[])
    }

    pub fn help(&self) -> String {
        self.say(Key::Help, &[])
    }

    pub fn not_understood(&self) -> String {
        self.say(Key::NotUnderstood, &[])
    }

    pub fn nothing_to_read(&self) -> String {
        self.say(Key::NothingToRead, &[])
    }

    pub fn edited_message_ignored(&self) -> String {
        self.say(Key::EditedMessageIgnored, &[])
    }

    pub fn unreadable_message(&self) -> String {
        self.say(Key::UnreadableMessage, &[])
    }

    pub fn did_you_mean(&self, command: &str, with_links: bool) -> String {
        let key = if with_links {
            Key::DidYouMeanWithLinks
        } else {
            Key::DidYouMean
        };
        self.say(key, &[("command", plain(&format!("/{command}")))])
    }

    pub fn which_links(&self, link_count: usize, free_slots: usize) -> String {
        self.say(
            Key::WhichLinks,
            &[
                ("links", plain(&link_count.to_string())),
                ("free", plain(&free_slots.to_string())),
            ],
        )
    }

    pub fn record_link_button(&self, url: &str) -> String {
        let shown: String = stream_name(url).chars().take(40).collect();
        format!("⏺ {shown}")
    }

    pub fn command_error(&self, error: &CommandError) -> String {
        let code = |given: &str| code(&shortened(given, 80));
        match error {
            CommandError::RecordWithoutUrl => self.say(Key::RecordWithoutUrl, &[]),
            CommandError::BadDuration(problem) => match problem {
                DurationTextError::Zero { .. } => self.say(Key::DurationZero, &[]),
                DurationTextError::TooLong {
                    given,
                    maximum_hours,
                } => self.say(
                    Key::DurationTooLong,
                    &[
                        ("given", code(given)),
                        ("hours", plain(&maximum_hours.to_string())),
                    ],
                ),
                DurationTextError::Unrecognised { given }
                | DurationTextError::TimeOfDay { given } => {
                    self.say(Key::DurationUnrecognised, &[("given", code(given))])
                }
            },
            CommandError::BadQuality { given } => {
                self.say(Key::BadQuality, &[("given", code(given))])
            }
            CommandError::BadJobId { given } => self.say(Key::BadJobId, &[("given", code(given))]),
            CommandError::BadUserId { given } => {
                self.say(Key::BadUserId, &[("given", code(given))])
            }
            CommandError::UnknownAdminCommand { given } => {
                self.say(Key::UnknownAdminCommand, &[("given", code(given))])
            }
            CommandError::ImpossibleTime { given } => {
                self.say(Key::ImpossibleTime, &[("given", code(given))])
            }
            CommandError::UnknownTimeZone { given } => self.unknown_time_zone(given),
            CommandError::RepeatWithoutTime => self.say(Key::RepeatWithoutTime, &[]),
            CommandError::DayWithoutTime { given } => {
                self.say(Key::DayWithoutTime, &[("given", code(given))])
            }
            CommandError::Contradiction { first, second } => self.say(
                Key::Contradiction,
                &[("first", code(first)), ("second", code(second))],
            ),
            CommandError::ClipLength { maximum_minutes } => self.say(
                Key::ClipLength,
                &[("minutes", plain(&maximum_minutes.to_string()))],
            ),
            CommandError::RepeatNotUnderstood { given } => {
                self.say(Key::RepeatNotUnderstood, &[("given", code(given))])
            }
            CommandError::StartInNotSupported { given } => {
                self.say(Key::StartInNotSupported, &[("given", code(given))])
            }
            CommandError::EndWithoutStart { given } => {
                self.say(Key::EndWithoutStart, &[("given", code(given))])
            }
        }
    }

    pub fn refused_link(&self, reason: &str) -> String {
        self.say(
            Key::RefusedLink,
            &[("reason", plain(&shortened(reason, SHOWN_TEXT_CHARACTERS)))],
        )
    }

    pub fn rate_limited(
        &self,
        retry_after: Duration,
        maximum_messages: usize,
        window: Duration,
    ) -> String {
        self.say(
            Key::RateLimited,
            &[
                ("maximum", plain(&maximum_messages.to_string())),
                ("window", plain(&window.as_secs().max(1).to_string())),
                (
                    "retry",
                    plain(&(retry_after.as_secs_f64().ceil().max(1.0) as u64).to_string()),
                ),
            ],
        )
    }

    pub fn too_many_jobs(&self, limit: usize) -> String {
        self.say(Key::TooManyJobs, &[("limit", plain(&limit.to_string()))])
    }

    pub fn disk_quota_reached(&self, used_bytes: u64, limit_bytes: u64) -> String {
        self.say(
            Key::DiskQuotaReached,
            &[
                ("used", plain(&format_size(used_bytes))),
                ("limit", plain(&format_size(limit_bytes))),
            ],
        )
    }

    pub fn no_such_job(&self, job_id: JobId) -> String {
        self.say(Key::NoSuchJob, &[Self::id(job_id)])
    }

    pub fn admin_no_such_job(&self, job_id: JobId) -> String {
        self.say(Key::AdminNoSuchJob, &[Self::id(job_id)])
    }

    pub fn no_live_jobs(&self) -> String {
        self.say(Key::NoLiveJobs, &[])
    }

    pub fn which_job(&self) -> String {
        self.say(Key::WhichJob, &[])
    }

    pub fn control_done(&self, action: ControlAction, job_id: JobId) -> String {
        let key = match action {
            ControlAction::Stop => Key::Stopping,
            ControlAction::Cancel => Key::CancelledNothingRecorded,
            ControlAction::Pause => Key::Paused,
            ControlAction::Resume => Key::Resumed,
        };
        self.say(key, &[Self::id(job_id)])
    }

    pub fn control_not_possible(
        &self,
        action: ControlAction,
        job_id: JobId,
        state: JobState,
    ) -> String {
        let key = match action {
            ControlAction::Stop | ControlAction::Cancel => Key::CantStop,
            ControlAction::Pause => Key::CantPause,
            ControlAction::Resume => Key::CantResume,
        };
        self.say(
            key,
            &[Self::id(job_id), ("state", plain(&self.state_label(state)))],
        )
    }

    pub fn control_toast(&self, action: ControlAction) -> String {
        self.label(match action {
            ControlAction::Stop => Key::ToastStopping,
            ControlAction::Cancel => Key::ToastCancelling,
            ControlAction::Pause => Key::ToastPausing,
            ControlAction::Resume => Key::ToastResuming,
        })
    }

    pub fn cancel_only_queued(&self, job_id: JobId) -> String {
        self.say(Key::CancelOnlyQueued, &[Self::id(job_id)])
    }

    pub fn internal_error(&self) -> String {
        self.say(Key::InternalError, &[])
    }

    /// The state in words (plain text).
    pub fn state_label(&self, state: JobState) -> String {
        self.label(match state {
            JobState::Queued => Key::StateQueued,
            JobState::Starting => Key::StateStarting,
            JobState::Recording => Key::StateRecording,
            JobState::Paused => Key::StatePaused,
            JobState::Finalizing => Key::StateFinalizing,
            JobState::Uploading => Key::StateUploading,
            JobState::Completed => Key::StateCompleted,
            JobState::Failed => Key::StateFailed,
            JobState::Cancelled => Key::StateCancelled,
        })
    }

    /// The headline of a job: its state, with what the bot knows about delivery.
    fn headline(&self, job: &Job, view: &StatusView) -> (&'static str, String) {
        let nothing_recorded =
            job.progress.segments_written == 0 && job.progress.bytes_written == 0;
        match (job.state, view.delivery) {
            (JobState::Completed, DeliveryProgress::NotYet | DeliveryProgress::Sending) => {
                ("📤", self.label(Key::StateSending))
            }
            (JobState::Completed, DeliveryProgress::Sent) => {
                ("✅", self.label(Key::StateDelivered))
            }
            (JobState::Completed, DeliveryProgress::Failed) => {
                ("⚠️", self.label(Key::StateDeliveryFailed))
            }
            (JobState::Cancelled, _) if !nothing_recorded => ("⏹", self.label(Key::StateStopped)),
            (state, _) => (state_icon(state), self.state_label(state)),
        }
    }

    /// What the job will do about its length: "Up to 2 h…", "For 1 h 30 min…".
    pub fn plan_line(&self, asked: Option<Duration>, cap: Option<Duration>) -> String {
        match (asked, cap) {
            (Some(asked), Some(cap)) if asked > cap => self.say(
                Key::PlanCapped,
                &[
                    ("asked", plain(&self.duration(asked))),
                    ("cap", plain(&self.duration(cap))),
                ],
            ),
            (Some(asked), _) => {
                self.say(Key::PlanFor, &[("duration", plain(&self.duration(asked)))])
            }
            (None, Some(cap)) => self.say(Key::PlanUpTo, &[("cap", plain(&self.duration(cap)))]),
            (None, None) => String::new(),
        }
    }

    pub fn start_time_not_supported(&self, time: TimeOfDay) -> String {
        let key = if time.tomorrow {
            Key::StartTimeTomorrowNotSupported
        } else {
            Key::StartTimeNotSupported
        };
        self.say(key, &[("time", plain(&time.to_string()))])
    }

    fn progress_lines(&self, progress: &RecordingProgress) -> Vec<String> {
        let mut lines = vec![self.say(
            Key::MediaRecorded,
            &[
                (
                    "media",
                    plain(&self.duration(seconds_of(progress.media_seconds))),
                ),
                ("size", plain(&format_size(progress.bytes_written))),
                (
                    "bitrate",
                    plain(&format_bitrate(progress.bitrate_bits_per_second())),
                ),
            ],
        )];
        if progress.elapsed > Duration::ZERO {
            lines.push(self.say(
                Key::TimeSinceStart,
                &[("elapsed", plain(&self.duration(progress.elapsed)))],
            ));
        }
        if progress.gap_segments > 0 {
            lines.push(self.say(
                Key::GapsLost,
                &[
                    ("segments", plain(&progress.gap_segments.to_string())),
                    (
                        "seconds",
                        plain(&self.duration(seconds_of(progress.gap_seconds))),
                    ),
                ],
            ));
        } else if progress.segments_written > 0 {
            lines.push(self.say(Key::NoGaps, &[]));
        }
        if progress.current_part > 1 {
            lines.push(self.say(
                Key::PartNumber,
                &[("part", plain(&progress.current_part.to_string()))],
            ));
        }
        lines
    }

    /// The sentence for a failed job, with a next step.
    pub fn failure_sentence(&self, job: &Job) -> String {
        let kind = job
            .failure
            .or_else(|| job.error.as_deref().and_then(failure_from_error_text));
        let key = match kind {
            Some(FailureKind::InvalidLink) => Key::FailureInvalidLink,
            Some(FailureKind::PrivateAddress) => Key::FailurePrivateAddress,
            Some(FailureKind::NotFound) => Key::FailureNotFound,
            Some(FailureKind::Forbidden) => Key::FailureForbidden,
            Some(FailureKind::ServerError) => Key::FailureServerError,
            Some(FailureKind::Unreachable) => Key::FailureUnreachable,
            Some(FailureKind::WebPage) => Key::FailureWebPage,
            Some(FailureKind::NotAPlaylist) => Key::FailureNotAPlaylist,
            Some(FailureKind::Protected) => Key::FailureProtected,
            Some(FailureKind::NotMedia) => Key::FailureNotMedia,
            Some(FailureKind::LimitReached) => Key::FailureLimitReached,
            Some(FailureKind::Stalled) => Key::FailureStalled,
            Some(FailureKind::Internal) => Key::FailureInternal,
            None => Key::FailureUnknown,
        };
        let mut text = self.say(key, &[]);
        if kind.is_none()
            && let Some(error) = &job.error
        {
            text.push('\n');
            text.push_str(&self.say(
                Key::FailureReason,
                &[("error", plain(&shortened(error, SHOWN_TEXT_CHARACTERS)))],
            ));
        }
        text
    }

    /// The one status message of a job, edited as it goes.
    pub fn job_status(&self, job: &Job, view: &StatusView) -> String {
        let (icon, headline) = self.headline(job, view);
        let mut lines = vec![format!(
            "{} {} {}",
            plain(icon),
            code(job.id.as_str()),
            bold(&headline)
        )];
        lines.push(plain(&shortened(&job.url, SHOWN_LINK_CHARACTERS)));
        let live = !job.state.is_terminal();
        if live {
            let plan = match (job.options.maximum_duration, view.default_cap) {
                (Some(duration), Some(cap)) if duration == cap => self.plan_line(None, Some(cap)),
                (asked, _) => self.plan_line(asked, None),
            };
            if !plan.is_empty() && matches!(job.state, JobState::Queued | JobState::Starting) {
                lines.push(plan);
            }
            if job.options.quality != Quality::Best {
                lines.push(self.say(
                    Key::QualityLine,
                    &[("quality", plain(&job.options.quality.to_string()))],
                ));
            }
        }
        if let Some(waiting) = &job.waiting_for_live
            && matches!(job.state, JobState::Queued | JobState::Starting)
        {
            lines.push(self.say(
                Key::WaitingForLiveLine,
                &[(
                    "time",
                    plain(&waiting.next_check_at.format("%H:%M").to_string()),
                )],
            ));
        }
        if job.desired_state == streambot_core::DesiredJobState::Stop && live {
            lines.push(self.say(Key::StoppingSoon, &[]));
        }
        let checking = matches!(job.state, JobState::Queued | JobState::Starting);
        let cancelled_empty = job.state == JobState::Cancelled && job.progress.bytes_written == 0;
        if !checking && !cancelled_empty {
            lines.extend(self.progress_lines(&job.progress));
        }
        if job.state == JobState::Failed {
            lines.push(self.failure_sentence(job));
        }
        lines.join("\n")
    }

    /// One line per job for /list and /admin jobs; live jobs first.
    pub fn job_list(&self, jobs: &[Job], with_owners: bool, total: usize) -> String {
        if jobs.is_empty() {
            return self.say(Key::JobListEmpty, &[]);
        }
        let title = if with_owners {
            Key::AdminJobListTitle
        } else {
            Key::JobListTitle
        };
        let mut lines = vec![self.say(title, &[])];
        for job in jobs {
            let mut line = format!(
                "{} {} {} {}",
                plain(state_icon(job.state)),
                code(job.id.as_str()),
                plain(&self.state_label(job.state)),
                plain(&format!(
                    "· {} · {} · {}",
                    self.duration(seconds_of(job.progress.media_seconds)),
                    format_size(job.progress.bytes_written),
                    stream_name(&job.url)
                ))
            );
            if with_owners {
                line.push(' ');
                line.push_str(&plain("· "));
                line.push_str(&self.say(
                    Key::JobOwner,
                    &[("owner", code(&job.owner.user_id.to_string()))],
                ));
            }
            lines.push(line);
        }
        if total > jobs.len() {
            lines.push(self.say(
                Key::JobListMore,
                &[
                    ("shown", plain(&jobs.len().to_string())),
                    ("total", plain(&total.to_string())),
                ],
            ));
        }
        lines.join("\n")
    }

    pub fn files_sent(&self, count: usize) -> String {
        let key = match plural_form(self.language, count as u64) {
            PluralForm::One => Key::FilesSentOne,
            PluralForm::Few => Key::FilesSentFew,
            PluralForm::Many => Key::FilesSentMany,
        };
        self.say(key, &[("count", plain(&count.to_string()))])
    }

    /// The final summary after delivery.
    pub fn final_summary(&self, job: &Job, files_sent: usize, files_kept: &[String]) -> String {
        let progress = &job.progress;
        let completeness = if progress.gap_segments == 0 {
            self.label(Key::CompleteNoGaps)
        } else {
            let total = progress.segments_written + progress.gap_segments;
            render_plain(
                self.language,
                Key::CompleteWithGaps,
                &[
                    (
                        "percent",
                        format!(
                            "{:.1}",
                            100.0 * progress.segments_written as f64 / total.max(1) as f64
                        ),
                    ),
                    ("lost", progress.gap_segments.to_string()),
                    ("total", total.to_string()),
                    ("seconds", self.duration(seconds_of(progress.gap_seconds))),
                ],
            )
        };
        let files = if files_sent == 0 && files_kept.is_empty() {
            self.say(Key::NothingToSend, &[])
        } else {
            self.files_sent(files_sent)
        };
        let mut lines = vec![self.say(
            Key::FinalSummary,
            &[
                Self::id(job.id),
                (
                    "media",
                    plain(&self.duration(seconds_of(progress.media_seconds))),
                ),
                ("size", plain(&format_size(progress.bytes_written))),
                ("completeness", plain(&completeness)),
                ("files", files),
            ],
        )];
        for name in files_kept {
            lines.push(self.say(
                Key::FileKeptOnServer,
                &[("name", code(&shortened(name, SHOWN_LINK_CHARACTERS)))],
            ));
        }
        lines.join("\n")
    }

    pub fn failed_with_recording(&self) -> String {
        self.say(Key::FailedWithRecording, &[])
    }

    pub fn delivery_failed(&self, file_name: &str) -> String {
        self.say(
            Key::DeliveryFailed,
            &[("name", code(&shortened(file_name, SHOWN_LINK_CHARACTERS)))],
        )
    }

    /// "Send again" on a recording whose files retention or the disk guard deleted.
    pub fn resend_files_deleted(&self, job_id: JobId) -> String {
        self.say(Key::ResendFilesDeleted, &[Self::id(job_id)])
    }

    /// After the summary: when retention deletes the files.
    pub fn recording_expires(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        self.say(
            Key::RecordingExpires,
            &[("time", plain(&at.format("%Y-%m-%d %H:%M UTC").to_string()))],
        )
    }

    /// What the disk guard tells an admin.
    pub fn disk_notice(&self, notice: &streambot_core::AdminNotice) -> String {
        /// Job ids named at most in one notice.
        const JOBS_NAMED: usize = 20;
        let percent = |used: u64, limit: u64| {
            plain(&format!(
                "{:.0} %",
                used as f64 * 100.0 / limit.max(1) as f64
            ))
        };
        match notice {
            streambot_core::AdminNotice::DiskFilling {
                used_bytes,
                limit_bytes,
            } => self.say(
                Key::DiskFilling,
                &[
                    ("percent", percent(*used_bytes, *limit_bytes)),
                    ("used", plain(&format_size(*used_bytes))),
                    ("limit", plain(&format_size(*limit_bytes))),
                ],
            ),
            streambot_core::AdminNotice::DiskFreed {
                used_bytes_before,
                limit_bytes,
                deleted_jobs,
                ..
            } if deleted_jobs.is_empty() => self.say(
                Key::DiskFullNothingToDelete,
                &[
                    ("percent", percent(*used_bytes_before, *limit_bytes)),
                    ("used", plain(&format_size(*used_bytes_before))),
                    ("limit", plain(&format_size(*limit_bytes))),
                ],
            ),
            streambot_core::AdminNotice::DiskFreed {
                used_bytes_before,
                used_bytes_after,
                limit_bytes,
                deleted_jobs,
            } => {
                let mut jobs = deleted_jobs
                    .iter()
                    .take(JOBS_NAMED)
                    .map(|job_id| code(job_id.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                if deleted_jobs.len() > JOBS_NAMED {
                    jobs.push_str(&plain(", …"));
                }
                self.say(
                    Key::DiskFreed,
                    &[
                        ("percent", percent(*used_bytes_before, *limit_bytes)),
                        ("before", plain(&format_size(*used_bytes_before))),
                        ("limit", plain(&format_size(*limit_bytes))),
                        ("count", plain(&deleted_jobs.len().to_string())),
                        ("jobs", jobs),
                        ("after", plain(&format_size(*used_bytes_after))),
                    ],
                )
            }
        }
    }

    /// Appended to the caption of a part that did not decode cleanly (plain text).
    pub fn damaged_caption_note(&self, error_count: usize) -> String {
        render_plain(
            self.language,
            Key::CaptionDamaged,
            &[("errors", error_count.to_string())],
        )
    }

    /// In the summary: recorded pieces finalize joined into one file (`joined`: each file's
    /// piece numbers, only files made of two or more).
    pub fn parts_joined(&self, joined: &[Vec<u32>]) -> String {
        let times: usize = joined
            .iter()
            .map(|pieces| pieces.len().saturating_sub(1))
            .sum();
        let pieces = joined
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.say(
            Key::PartsJoined,
            &[
                ("times", plain(&times.to_string())),
                ("pieces", plain(&pieces)),
            ],
        )
    }

    /// After the summary: which sent parts did not decode cleanly.
    pub fn files_damaged(&self, part_numbers: &[u32]) -> String {
        let parts = part_numbers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        self.say(Key::FilesDamaged, &[("parts", plain(&parts))])
    }

    /// A part's caption (plain text: captions are sent without markup).
    pub fn part_caption(
        &self,
        job: &Job,
        part: usize,
        part_count: usize,
        duration: Duration,
    ) -> String {
        let recorded_at = job.started_at.unwrap_or(job.created_at);
        let mut caption = render_plain(
            self.language,
            Key::Caption,
            &[
                ("stream", stream_name(&job.url)),
                ("date", recorded_at.format("%Y-%m-%d %H:%M UTC").to_string()),
                ("duration", self.duration(duration)),
                ("part", part.to_string()),
                ("parts", part_count.to_string()),
            ],
        );
        if job.progress.gap_segments > 0 {
            caption.push_str(" · ");
            caption.push_str(&render_plain(
                self.language,
                Key::CaptionGaps,
                &[(
                    "seconds",
                    self.duration(seconds_of(job.progress.gap_seconds)),
                )],
            ));
        }
        caption
    }

    pub fn part_link(&self, caption: &str, link: &str) -> String {
        format!(
            "{}\n{}",
            plain(caption),
            plain(&shortened(link, SHOWN_TEXT_CHARACTERS * 4))
        )
    }

    pub fn delete_needs_an_id(&self) -> String {
        self.say(Key::DeleteNeedsId, &[])
    }

    pub fn delete_while_live(&self, job_id: JobId) -> String {
        self.say(Key::DeleteWhileLive, &[Self::id(job_id)])
    }

    pub fn delete_confirm(&self, job_id: JobId) -> String {
        self.say(Key::DeleteConfirm, &[Self::id(job_id)])
    }

    pub fn deleted(&self, job_id: JobId, files: usize, bytes: u64) -> String {
        let files_key = match plural_form(self.language, files as u64) {
            PluralForm::One => Key::FileCountOne,
            PluralForm::Few => Key::FileCountFew,
            PluralForm::Many => Key::FileCountMany,
        };
        let files_text = render_plain(self.language, files_key, &[("count", files.to_string())]);
        self.say(
            Key::Deleted,
            &[
                Self::id(job_id),
                ("files", plain(&files_text)),
                ("size", plain(&format_size(bytes))),
            ],
        )
    }

    pub fn delete_failed(&self, job_id: JobId, reason: &str) -> String {
        self.say(
            Key::DeleteFailed,
            &[
                Self::id(job_id),
                ("reason", plain(&shortened(reason, SHOWN_TEXT_CHARACTERS))),
            ],
        )
    }

    pub fn delete_kept(&self, job_id: JobId) -> String {
        self.say(Key::DeleteKept, &[Self::id(job_id)])
    }

    pub fn admin_only(&self) -> String {
        self.say(Key::AdminOnly, &[])
    }

    pub fn admin_help(&self) -> String {
        self.say(Key::AdminHelp, &[])
    }

    pub fn admin_overview(&self, by_state: &[(JobState, usize)], total: usize) -> String {
        let mut lines = vec![self.say(Key::AdminOverview, &[("total", plain(&total.to_string()))])];
        for (state, count) in by_state {
            lines.push(plain(&format!("{}: {count}", self.state_label(*state))));
        }
        lines.join("\n")
    }

    pub fn admin_stopped(&self, job_id: JobId, owner_user_id: i64) -> String {
        self.say(
            Key::AdminStopped,
            &[
                Self::id(job_id),
                ("owner", code(&owner_user_id.to_string())),
            ],
        )
    }

    pub fn owner_told_stopped(&self, job_id: JobId) -> String {
        self.say(Key::OwnerToldStopped, &[Self::id(job_id)])
    }

    pub fn owner_told_deleted(&self, job_id: JobId) -> String {
        self.say(Key::OwnerToldDeleted, &[Self::id(job_id)])
    }

    pub fn vip_changed(&self, user_id: i64, added: bool, limit: usize) -> String {
        if added {
            self.say(
                Key::VipAdded,
                &[
                    ("user", code(&user_id.to_string())),
                    ("limit", plain(&limit.to_string())),
                ],
            )
        } else {
            self.say(Key::VipRemoved, &[("user", code(&user_id.to_string()))])
        }
    }

    pub fn language_choice(&self) -> String {
        self.say(Key::LanguageChoice, &[])
    }

    pub fn language_set(&self) -> String {
        self.say(Key::LanguageSet, &[])
    }

    pub fn language_unknown(&self) -> String {
        self.say(Key::LanguageUnknown, &[])
    }

    pub fn sender_refused(&self) -> String {
        self.say(Key::SenderRefused, &[])
    }
}

fn state_icon(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Starting => "⏳",
        JobState::Recording => "🔴",
        JobState::Paused => "⏸",
        JobState::Finalizing | JobState::Uploading => "⚙️",
        JobState::Completed => "✅",
        JobState::Failed => "❌",
        JobState::Cancelled => "⏹",
    }
}

/// The name a part is sent under: `<host>-<yyyy-mm-dd>-<hhmm>-part1.mp4`.
pub fn part_file_name(job: &Job, part: usize, extension: &str) -> String {
    let host = job
        .url
        .split_once("://")
        .map_or(job.url.as_str(), |(_, rest)| rest)
        .split(['/', '?', '#', ':'])
        .next()
        .unwrap_or("");
    let safe_host: String = host
        .chars()
        .filter(|character| character.is_ascii_alphanumeric() || matches!(character, '.' | '-'))
        .take(63)
        .collect();
    let safe_host = if safe_host.is_empty() {
        "stream".to_string()
    } else {
        safe_host.to_ascii_lowercase()
    };
    let recorded_at = job.started_at.unwrap_or(job.created_at);
    let safe_extension: String = extension
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!(
        "{safe_host}-{}-part{part}.{}",
        recorded_at.format("%Y-%m-%d-%H%M"),
        if safe_extension.is_empty() {
            "bin"
        } else {
            &safe_extension
        }
    )
}
/// A link as shown in schedule lists: passwords and secret query values removed, shortened.
pub fn redacted_link(url: &str) -> String {
    let redacted = match url::Url::parse(url) {
        Ok(parsed) => streambot_hls::url_safety::redact_url(&parsed),
        Err(_) => streambot_hls::url_safety::redact_url_text(url),
    };
    shortened(&redacted, SHOWN_LINK_CHARACTERS)
}

/// Scheduling, time zones, request options and clips (issue 16).
impl Words {
    pub fn unknown_time_zone(&self, given: &str) -> String {
        self.say(
            Key::UnknownTimeZone,
            &[("given", code(&shortened(given, 64)))],
        )
    }

    /// "Every Friday", "Every day", "Once", in this language.
    pub fn recurrence(&self, recurrence: &streambot_core::Recurrence) -> String {
        match recurrence {
            streambot_core::Recurrence::Once => self.label(Key::RecurrenceOnce),
            streambot_core::Recurrence::Daily => self.label(Key::RecurrenceDaily),
            streambot_core::Recurrence::Weekly { weekdays } => {
                let names = render_plain(self.language, Key::WeekdayNames, &[]);
                let names: Vec<&str> = names.split(',').collect();
                let days = weekdays
                    .iter()
                    .map(|day| {
                        names
                            .get(day.num_days_from_monday() as usize)
                            .copied()
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                render_plain(self.language, Key::RecurrenceWeekly, &[("days", days)])
            }
        }
    }

    /// An instant in a zone, as people read it: "Fri 11 Dec 20:00".
    pub fn local_time(
        &self,
        instant: chrono::DateTime<chrono::Utc>,
        zone: streambot_core::schedule::Tz,
    ) -> String {
        streambot_core::schedule::format_local_occurrence(instant, zone)
    }

    pub fn schedule_created(
        &self,
        schedule: &streambot_core::Schedule,
        zone: streambot_core::schedule::Tz,
    ) -> String {
        let next = schedule
            .next_occurrence_at
            .map(|next| self.local_time(next, zone))
            .unwrap_or_default();
        self.say(
            Key::ScheduleCreated,
            &[
                Self::id(schedule.id),
                ("link", plain(&redacted_link(&schedule.url))),
                (
                    "recurrence",
                    plain(&self.recurrence(&schedule.rule.recurrence)),
                ),
                (
                    "time",
                    plain(&schedule.rule.time_of_day.format("%H:%M").to_string()),
                ),
                ("zone", plain(&time_zone_label(&schedule.rule.time_zone))),
                ("duration", plain(&self.duration(schedule.duration))),
                ("next", plain(&next)),
            ],
        )
    }

    pub fn schedule_in_the_past(&self, time: TimeOfDay, zone: &str, now: &str) -> String {
        self.say(
            Key::ScheduleInThePast,
            &[
                ("time", plain(&time.to_string())),
                ("zone", plain(&time_zone_label(zone))),
                ("now", plain(now)),
            ],
        )
    }

    pub fn schedule_too_many(&self, limit: usize) -> String {
        self.say(
            Key::ScheduleTooMany,
            &[("limit", plain(&limit.to_string()))],
        )
    }

    pub fn schedule_overlaps_too_many(&self, count: usize, limit: usize) -> String {
        self.say(
            Key::ScheduleOverlapsTooMany,
            &[
                ("count", plain(&count.to_string())),
                ("limit", plain(&limit.to_string())),
            ],
        )
    }

    pub fn schedule_needs_one_link(&self) -> String {
        self.say(Key::ScheduleNeedsOneLink, &[])
    }

    pub fn schedule_duration_capped(&self, duration: Duration) -> String {
        self.say(
            Key::ScheduleDurationCapped,
            &[("duration", plain(&self.duration(duration)))],
        )
    }

    /// `/schedule`: a title and one entry per schedule (its rule in its own zone, the next time
    /// in the reader's zone).
    pub fn schedule_list(
        &self,
        schedules: &[streambot_core::Schedule],
        reader_zone: streambot_core::schedule::Tz,
    ) -> String {
        if schedules.is_empty() {
            return self.say(Key::ScheduleListEmpty, &[]);
        }
        let mut lines = vec![self.say(
            Key::ScheduleListTitle,
            &[("count", plain(&schedules.len().to_string()))],
        )];
        // Long links make twenty lines longer than one message: stop before Telegram would
        // refuse it (with room for the "cancelled" line the list gets after a Cancel).
        let budget = MAXIMUM_MESSAGE_LENGTH - 400;
        let mut length: usize = lines.iter().map(|line| line.encode_utf16().count()).sum();
        for (shown, schedule) in schedules.iter().enumerate() {
            let next = schedule
                .next_occurrence_at
                .map(|next| self.local_time(next, reader_zone))
                .unwrap_or_else(|| "–".to_string());
            let line = self.say(
                Key::ScheduleLine,
                &[
                    Self::id(schedule.id),
                    (
                        "recurrence",
                        plain(&self.recurrence(&schedule.rule.recurrence)),
                    ),
                    (
                        "time",
                        plain(&schedule.rule.time_of_day.format("%H:%M").to_string()),
                    ),
                    ("duration", plain(&self.duration(schedule.duration))),
                    ("next", plain(&next)),
                    (
                        "rule_zone",
                        plain(&time_zone_label(&schedule.rule.time_zone)),
                    ),
                    ("zone", plain(&time_zone_label(reader_zone.name()))),
                    ("link", plain(&redacted_link(&schedule.url))),
                ],
            );
            let line_length = line.encode_utf16().count() + 2;
            if length + line_length > budget {
                lines.push(self.say(
                    Key::ScheduleListMore,
                    &[("count", plain(&(schedules.len() - shown).to_string()))],
                ));
                break;
            }
            length += line_length;
            lines.push(line);
        }
        lines.join("\n\n")
    }

    pub fn schedule_cancelled(&self, schedule_id: JobId) -> String {
        self.say(Key::ScheduleCancelled, &[Self::id(schedule_id)])
    }

    pub fn schedule_not_found(&self, schedule_id: JobId) -> String {
        self.say(Key::ScheduleNotFound, &[Self::id(schedule_id)])
    }

    pub fn cancel_schedule_button(&self, schedule_id: JobId) -> String {
        render_plain(
            self.language,
            Key::ButtonCancelSchedule,
            &[("id", schedule_id.to_string())],
        )
    }

    pub fn time_zone_current(&self, zone: &str, now: &str) -> String {
        self.say(
            Key::TimeZoneCurrent,
            &[("zone", code(&time_zone_label(zone))), ("now", plain(now))],
        )
    }

    pub fn time_zone_set(&self, zone: &str, now: &str) -> String {
        self.say(
            Key::TimeZoneSet,
            &[("zone", code(&time_zone_label(zone))), ("now", plain(now))],
        )
    }

    /// "Options: from the start, subtitles en, …" for the options a request set (empty: none).
    pub fn options_line(&self, options: &streambot_core::RecordingOptions) -> String {
        let mut parts = Vec::new();
        if options.from_start {
            parts.push(render_plain(self.language, Key::OptionFromStart, &[]));
        }
        if options.subtitles != streambot_core::SubtitleChoice::None {
            parts.push(render_plain(
                self.language,
                Key::OptionSubtitles,
                &[("choice", options.subtitles.to_string())],
            ));
        }
        if let Some(language) = &options.audio_language {
            parts.push(render_plain(
                self.language,
                Key::OptionAudioLanguage,
                &[("language", language.clone())],
            ));
        }
        if options.all_audio {
            parts.push(render_plain(self.language, Key::OptionAllAudio, &[]));
        }
        if !options.wait_for_live.is_zero() {
            parts.push(render_plain(
                self.language,
                Key::OptionWaitForLive,
                &[("duration", self.duration(options.wait_for_live))],
            ));
        }
        if parts.is_empty() {
            return String::new();
        }
        self.say(Key::OptionsLine, &[("options", plain(&parts.join(", ")))])
    }

    pub fn clip_requested(&self, job_id: JobId, last: Duration) -> String {
        self.say(
            Key::ClipRequested,
            &[Self::id(job_id), ("duration", plain(&self.duration(last)))],
        )
    }

    pub fn clip_not_live(&self, job_id: JobId, state: JobState) -> String {
        self.say(
            Key::ClipNotLive,
            &[Self::id(job_id), ("state", plain(&self.state_label(state)))],
        )
    }

    /// Why a clip was not made, as the worker reports it.
    pub fn clip_problem(&self, job_id: JobId, problem: &streambot_core::ClipProblem) -> String {
        match problem {
            streambot_core::ClipProblem::Busy => self.say(Key::ClipBusy, &[Self::id(job_id)]),
            streambot_core::ClipProblem::NothingYet => {
                self.say(Key::ClipNothingYet, &[Self::id(job_id)])
            }
            streambot_core::ClipProblem::Failed { reason } => self.say(
                Key::ClipFailed,
                &[
                    Self::id(job_id),
                    ("reason", plain(&shortened(reason, SHOWN_TEXT_CHARACTERS))),
                ],
            ),
        }
    }

    /// A clip's caption (plain text).
    pub fn clip_caption(&self, job: &Job, last: Duration) -> String {
        render_plain(
            self.language,
            Key::ClipCaption,
            &[
                ("duration", self.duration(last)),
                ("id", job.id.to_string()),
                ("name", stream_name(&redacted_link(&job.url))),
            ],
        )
    }
}
