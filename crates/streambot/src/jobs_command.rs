//! `streambot jobs add|list|show|stop|pause|resume|schedules|unschedule`: the operator's way to record and act without
//! Telegram, against whichever backend the settings choose (Redis when `REDIS_URL` is set, the
//! embedded store under `DATA_DIR` otherwise).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use streambot_core::{
    DesiredJobState, Job, JobId, JobOwner, JobPriority, JobState, NewJob, OutputFormat, Quality,
    RecordingOptions,
};
use streambot_store::{JobFilter, submit_job};

use crate::roles::{JobsSettings, open_backend_or_exit};
use crate::with_backend;

#[derive(Debug, clap::Args)]
pub struct JobsArguments {
    #[command(subcommand)]
    pub action: JobsAction,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Queue a recording. Prints the job id on stdout.
    Add(AddArguments),
    /// List jobs, newest first.
    List(ListArguments),
    /// Show one job.
    Show(JobArgument),
    /// Stop a recording (it keeps what it has); a queued job is cancelled.
    Stop(JobArgument),
    /// Pause a recording (the paused span is absent from the recording).
    Pause(JobArgument),
    /// Resume a paused recording (as a new part).
    Resume(JobArgument),
    /// List scheduled and recurring recordings (`jobs add … --at`).
    Schedules(SchedulesArguments),
    /// Cancel a schedule (its jobs already started keep going).
    Unschedule(ScheduleArgument),
}

#[derive(Debug, clap::Args)]
pub struct SchedulesArguments {
    /// Only this user's active schedules.
    #[arg(long = "user")]
    pub user_id: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ScheduleArgument {
    /// The schedule id (8 hexadecimal characters).
    #[arg(value_parser = parse_job_id_argument)]
    pub schedule_id: JobId,
}

#[derive(Debug, clap::Args)]
pub struct AddArguments {
    /// The HLS link (http or https).
    pub url: String,
    /// The Telegram user the job belongs to (0: the operator).
    #[arg(long = "user", default_value_t = 0)]
    pub user_id: i64,
    /// The chat to report to (defaults to the user).
    #[arg(long = "chat")]
    pub chat_id: Option<i64>,
    /// Stop after this long, e.g. 2h, 90m.
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::parse_duration_argument)]
    pub maximum_duration: Option<Duration>,
    #[arg(long, default_value = "best", value_parser = crate::parse_quality_argument)]
    pub quality: Quality,
    #[arg(long, default_value = "mp4", value_parser = crate::parse_format_argument)]
    pub format: OutputFormat,
    /// Put the job in the priority queue.
    #[arg(long)]
    pub priority: bool,
    /// If the stream is not live yet, keep checking this long (default: WAIT_FOR_LIVE).
    #[arg(long = "wait", value_name = "DURATION", value_parser = crate::parse_duration_argument)]
    pub wait_for_live: Option<Duration>,
    /// Record later instead: the local time, "2026-12-05 20:00" or "20:00" (needs --for).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// With --at: repeat every day, or on weekdays ("friday", "mon,wed").
    #[arg(long, value_name = "DAYS", requires = "at", value_parser = crate::schedule_command::parse_every_argument)]
    pub every: Option<streambot_core::Recurrence>,
    /// With --at: the time zone of the time (default: DEFAULT_TIMEZONE).
    #[arg(long = "tz", value_name = "ZONE", requires = "at")]
    pub time_zone: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ListArguments {
    /// Only this user's jobs.
    #[arg(long = "user")]
    pub user_id: Option<i64>,
    /// Only jobs in this state (queued, recording, paused, completed, failed, …).
    #[arg(long, value_parser = parse_state_argument)]
    pub state: Option<JobState>,
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct JobArgument {
    /// The job id (8 hexadecimal characters).
    #[arg(value_parser = parse_job_id_argument)]
    pub job_id: JobId,
    /// Print the job as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_state_argument(text: &str) -> Result<JobState, String> {
    text.parse::<JobState>().map_err(|error| error.to_string())
}

fn parse_job_id_argument(text: &str) -> Result<JobId, String> {
    text.parse::<JobId>().map_err(|error| error.to_string())
}

pub async fn run_jobs_command(arguments: JobsArguments) -> ExitCode {
    let settings = match crate::roles::load_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let backend = match open_backend_or_exit(&settings, "streambot jobs").await {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    let outcome =
        with_backend!(backend, backend => run_action(&backend, &settings, arguments.action).await);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("streambot jobs: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run_action<B: streambot_store::JobBackend + streambot_store::ScheduleStore>(
    backend: &B,
    settings: &JobsSettings,
    action: JobsAction,
) -> anyhow::Result<()> {
    match action {
        JobsAction::Add(arguments) => {
            let policy = streambot_recorder::network_policy(settings.allow_private_networks);
            let url = streambot_hls::url_safety::parse_and_check_url(&arguments.url, policy)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            let schedule_settings = crate::schedule_settings::ScheduleSettings::from_environment()?;
            let owner = JobOwner {
                user_id: arguments.user_id,
                chat_id: arguments.chat_id.unwrap_or(arguments.user_id),
            };
            let priority = if arguments.priority {
                JobPriority::Priority
            } else {
                JobPriority::Normal
            };
            let wait_for_live = arguments
                .wait_for_live
                .unwrap_or(schedule_settings.wait_for_live);
            if let Some(at) = &arguments.at {
                let options = RecordingOptions {
                    quality: arguments.quality,
                    format: arguments.format,
                    wait_for_live,
                    ..RecordingOptions::default()
                };
                return crate::schedule_command::add_schedule(
                    backend,
                    &schedule_settings,
                    owner,
                    url.to_string(),
                    options,
                    priority,
                    at,
                    arguments.every,
                    arguments.time_zone.as_deref(),
                    arguments.maximum_duration,
                )
                .await;
            }
            let request = NewJob {
                owner,
                url: url.to_string(),
                options: RecordingOptions {
                    // No duration: the maximum recording duration (FFMPEG_DEFAULT_TIMEOUT).
                    maximum_duration: Some(
                        arguments
                            .maximum_duration
                            .unwrap_or(settings.maximum_recording_duration),
                    ),
                    quality: arguments.quality,
                    format: arguments.format,
                    wait_for_live,
                    ..RecordingOptions::default()
                },
                priority,
            };
            let job = submit_job(backend, request)
                .await
                .map_err(|error| anyhow::anyhow!(error.user_message()))?;
            println!("{}", job.id);
            eprintln!("queued {} in the {} queue", job.id, job.priority);
        }
        JobsAction::List(arguments) => {
            let jobs = backend
                .list_jobs(JobFilter {
                    states: arguments.state.into_iter().collect(),
                    owner_user_id: arguments.user_id,
                    limit: Some(arguments.limit),
                })
                .await
                .map_err(|error| anyhow::anyhow!(error.user_message()))?;
            if arguments.json {
                for job in &jobs {
                    println!("{}", serde_json::to_string(job)?);
                }
            } else {
                println!(
                    "{:<8}  {:<10}  {:<7}  {:<8}  {:>7}  {:>5}  {:>9}  {:>4}  {:<16}  url",
                    "id", "state", "wants", "queue", "attempt", "parts", "media", "gaps", "worker"
                );
                for job in &jobs {
                    println!("{}", list_line(job));
                }
            }
        }
        JobsAction::Show(argument) => {
            let job = backend
                .get_job(argument.job_id)
                .await
                .map_err(|error| anyhow::anyhow!(error.user_message()))?
                .ok_or_else(|| anyhow::anyhow!("there is no job {}", argument.job_id))?;
            if argument.json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print!("{}", describe(&job, settings));
            }
        }
        JobsAction::Stop(argument) => set_desired(backend, argument, DesiredJobState::Stop).await?,
        JobsAction::Pause(argument) => {
            set_desired(backend, argument, DesiredJobState::Pause).await?
        }
        JobsAction::Resume(argument) => {
            set_desired(backend, argument, DesiredJobState::Record).await?
        }
        JobsAction::Schedules(arguments) => {
            crate::schedule_command::list_schedules(backend, arguments.user_id, arguments.json)
                .await?
        }
        JobsAction::Unschedule(argument) => {
            crate::schedule_command::unschedule(backend, argument.schedule_id).await?
        }
    }
    Ok(())
}

async fn set_desired<B: streambot_store::JobBackend>(
    backend: &B,
    argument: JobArgument,
    desired: DesiredJobState,
) -> anyhow::Result<()> {
    let job = backend
        .set_desired_state(argument.job_id, desired)
        .await
        .map_err(|error| anyhow::anyhow!(error.user_message()))?;
    if argument.json {
        println!("{}", serde_json::to_string(&job)?);
    } else {
        println!("{}: {} (wants {})", job.id, job.state, job.desired_state);
    }
    Ok(())
}

fn list_line(job: &Job) -> String {
    format!(
        "{:<8}  {:<10}  {:<7}  {:<8}  {:>7}  {:>5}  {:>9}  {:>4}  {:<16}  {}",
        job.id,
        job.state.as_str(),
        job.desired_state.to_string(),
        job.priority.queue_name(),
        job.attempt,
        job.parts,
        streambot_core::quantity_text::format_clock_duration(job.progress.media_seconds),
        job.progress.gap_segments,
        job.worker_id().unwrap_or("-"),
        job.url
    )
}

fn describe(job: &Job, settings: &JobsSettings) -> String {
    let progress = &job.progress;
    let mut text = String::new();
    let mut line = |label: &str, value: String| {
        text.push_str(&format!("{label:<12} {value}\n"));
    };
    line("job", job.id.to_string());
    line(
        "state",
        format!("{} (wants {})", job.state, job.desired_state),
    );
    line("url", job.url.clone());
    line(
        "owner",
        format!("user {} chat {}", job.owner.user_id, job.owner.chat_id),
    );
    line(
        "options",
        format!(
            "quality {}, format {}, for {}",
            job.options.quality,
            job.options.format,
            job.options
                .maximum_duration
                .map(|duration| {
                    streambot_core::format_duration_with_units(
                        duration,
                        streambot_core::duration_text::ENGLISH_DURATION_UNITS,
                    )
                })
                .unwrap_or_else(|| "until the stream ends".to_string())
        ),
    );
    line("queue", job.priority.to_string());
    line(
        "attempts",
        format!(
            "{} failed of {}",
            job.attempt,
            streambot_store::MAXIMUM_FAILED_ATTEMPTS
        ),
    );
    line(
        "recorded",
        format!(
            "{} of media, {}, {} segments, part {}",
            streambot_core::quantity_text::format_clock_duration(progress.media_seconds),
            streambot_core::quantity_text::format_size(progress.bytes_written),
            progress.segments_written,
            job.parts
        ),
    );
    line(
        "gaps",
        format!(
            "{} segments ({:.1} s)",
            progress.gap_segments, progress.gap_seconds
        ),
    );
    if let Some(lease) = &job.lease {
        line(
            "worker",
            format!(
                "{} (epoch {}, lease until {})",
                lease.worker_id, lease.fencing_epoch, lease.expires_at
            ),
        );
    }
    if let Some(error) = &job.error {
        line("error", error.clone());
    }
    line("created", job.created_at.to_string());
    if let Some(finished_at) = job.finished_at {
        line("finished", finished_at.to_string());
    }
    line(
        "directory",
        streambot_core::job_directory(&settings.recordings_directory, job.id)
            .display()
            .to_string(),
    );
    text
}
