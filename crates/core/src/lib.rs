//! Domain types of streambot. No tokio, and no IO but `local_files` (the one atomic write and
//! directory-size walk, std only): everything else is plain data and pure functions, so every
//! other crate (and the bot's parser) can share one vocabulary.

pub mod backoff;
pub mod delivery;
pub mod duration_text;
pub mod failure;
pub mod job;
pub mod job_files;
pub mod job_id;
pub mod local_files;
pub mod options;
pub mod progress;
pub mod quantity_text;
pub mod schedule;
pub mod telegram_limits;
pub mod url_redaction;
pub mod user;

pub use delivery::{
    AdminNotice, AdminNotifier, ClipProblem, JobDelivery, PartDelivery, PartDeliveryState,
    PartSendError, PartSender, RecordingDeletion, RedeliveryOutcome, SentPart, StatusMessageRef,
};
pub use duration_text::{
    DurationTextError, DurationUnits, TimeMeaning, TimeOfDay, TimePhrase, find_time_phrases,
    format_duration_with_units, parse_duration_text,
};
pub use failure::FailureKind;
pub use job::{
    DEFAULT_CLIP_DURATION, DesiredJobState, DiskUsageLevel, Job, JobEvent, JobLease, JobOwner,
    JobPriority, JobState, JobStateParseError, JobTransitionError, MAXIMUM_CLIP_DURATION, NewJob,
    check_transition,
};
pub use job_files::job_directory;
pub use job_id::{JobId, JobIdError};
pub use options::{
    OutputFormat, Quality, QualityParseError, RecordingOptions, SubtitleChoice,
    SubtitleChoiceParseError, language_code_from_name, parse_language_tag,
};
pub use progress::{RecordingEndReason, RecordingProgress};
pub use schedule::{
    DEFAULT_MAXIMUM_SCHEDULES_PER_USER, DEFAULT_SCHEDULE_LEAD, DueOccurrences, NewSchedule,
    Recurrence, Schedule, ScheduleError, ScheduleId, ScheduleRule, ScheduleWords,
    ScheduledOccurrence, WaitingForLive, find_schedule_words, parse_time_zone, rule_from_words,
};
pub use telegram_limits::{
    CLOUD_BOT_API_UPLOAD_LIMIT_BYTES, LOCAL_BOT_API_UPLOAD_LIMIT_BYTES, telegram_upload_limit_bytes,
};
pub use user::UserPreferences;
