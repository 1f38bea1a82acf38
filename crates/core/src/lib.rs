//! Domain types of streambot. No IO, no tokio: everything here is plain data and pure functions,
//! so every other crate (and the bot's parser) can share one vocabulary.

pub mod delivery;
pub mod duration_text;
pub mod failure;
pub mod job;
pub mod job_files;
pub mod job_id;
pub mod options;
pub mod progress;
pub mod user;

pub use delivery::{
    JobDelivery, PartDelivery, PartDeliveryState, PartSendError, PartSender, SentPart,
    StatusMessageRef,
};
pub use duration_text::{
    DurationTextError, DurationUnits, TimeMeaning, TimeOfDay, TimePhrase, find_time_phrases,
    format_duration_with_units, parse_duration_text,
};
pub use failure::FailureKind;
pub use job::{
    DesiredJobState, DiskUsageLevel, Job, JobEvent, JobLease, JobOwner, JobPriority, JobState,
    JobStateParseError, JobTransitionError, NewJob, check_transition,
};
pub use job_files::job_directory;
pub use job_id::{JobId, JobIdError};
pub use options::{OutputFormat, Quality, QualityParseError, RecordingOptions};
pub use progress::{RecordingEndReason, RecordingProgress};
pub use user::UserPreferences;
