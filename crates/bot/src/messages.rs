//! Every sentence the bot says, in one place, as Telegram MarkdownV2. Each piece of text goes
//! through `plain`, `bold` or `code`, which escape it, so neither our punctuation nor a user's URL
//! can break a message.

use std::time::Duration;

use streambot_core::job::{Job, JobState};
use streambot_core::{JobId, Quality, RecordingProgress};

use crate::markdown::{escape_markdown_v2, escape_markdown_v2_code};
use crate::parser::CommandError;

pub fn plain(text: &str) -> String {
    escape_markdown_v2(text)
}

pub fn bold(text: &str) -> String {
    format!("*{}*", escape_markdown_v2(text))
}

pub fn code(text: &str) -> String {
    format!("`{}`", escape_markdown_v2_code(text))
}

pub fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let hours = total / 3600;
    let minutes = (total / 60) % 60;
    let seconds = total % 60;
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

pub fn format_size(bytes: u64) -> String {
    let value = bytes as f64;
    if value >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GB", value / (1024.0 * 1024.0 * 1024.0))
    } else if value >= 1024.0 * 1024.0 {
        format!("{:.1} MB", value / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KB", value / 1024.0)
    }
}

pub fn format_bitrate(bits_per_second: f64) -> String {
    if bits_per_second >= 1_000_000.0 {
        format!("{:.2} Mbit/s", bits_per_second / 1_000_000.0)
    } else {
        format!("{:.0} kbit/s", bits_per_second / 1000.0)
    }
}

pub fn welcome() -> String {
    [
        bold("StreamBot records live streams (HLS / .m3u8 links)."),
        String::new(),
        plain("Send a link, or for example:"),
        code("/record https://example.com/live.m3u8 2h high"),
        code("record https://example.com/live.m3u8 for 90 minutes audio only"),
        String::new(),
        plain("Then /list, /status ID, /pause ID, /resume ID, /stop ID. /help for more."),
    ]
    .join("\n")
}

pub fn help() -> String {
    [
        bold("Commands"),
        format!("{} {}", code("/record <link> [duration] [quality]"), plain("– start recording. Duration like 2h, 90m, 1h30m; quality best, high, medium, low, worst, 720p or audio.")),
        format!("{} {}", code("/stop [ID]"), plain("– stop and receive the recording.")),
        format!("{} {}", code("/pause [ID]"), plain("– pause (the paused time is not recorded).")),
        format!("{} {}", code("/resume [ID]"), plain("– resume.")),
        format!("{} {}", code("/status [ID]"), plain("– progress of a recording.")),
        format!("{} {}", code("/list"), plain("– your recordings.")),
        format!("{} {}", code("/cancel [ID]"), plain("– cancel a recording that has not started yet.")),
        format!("{} {}", code("/delete ID"), plain("– delete a finished recording's files.")),
        String::new(),
        plain("Plain English works too: \"record <link> for 2 hours high quality\", \"pause it\", \"what's recording?\"."),
    ]
    .join("\n")
}

pub fn not_understood() -> String {
    format!(
        "{}\n{}",
        plain("I didn't understand that. To record, send a link, for example:"),
        code("/record https://example.com/live.m3u8 2h")
    )
}

pub fn nothing_to_read() -> String {
    format!(
        "{}\n{}",
        plain(
            "I record live streams from links. Send me a link (a .m3u8 playlist or a live video link), for example:"
        ),
        code("https://example.com/live.m3u8 2h")
    )
}

pub fn did_you_mean(command: &str, with_links: bool) -> String {
    let mut text = plain(&format!("Did you mean /{command}?"));
    if with_links {
        text.push(' ');
        text.push_str(&plain("Tap the link below to record it."));
    }
    text
}

pub fn which_links(link_count: usize, free_slots: usize) -> String {
    plain(&format!(
        "You sent {link_count} links, and {free_slots} more recordings fit in your limit. Tap the ones to record."
    ))
}

pub fn record_link_button(url: &str) -> String {
    let shown = url.split_once("://").map_or(url, |(_, rest)| rest);
    let shortened: String = shown.chars().take(40).collect();
    format!("⏺ {shortened}")
}

pub fn toast_starting() -> String {
    "Starting…".to_string()
}

pub fn toast_offer_expired() -> String {
    "This button has expired; send the link again".to_string()
}

pub fn language_choice() -> String {
    plain("Languages: English (/language en), Русский (/language ru).")
}

pub fn admin_help() -> String {
    [
        bold("Admin commands"),
        format!("{} {}", code("/admin"), plain("– jobs by state.")),
        format!(
            "{} {}",
            code("/admin jobs"),
            plain("– every user's jobs, with owners.")
        ),
        format!(
            "{} {}",
            code("/admin stop ID"),
            plain("– stop anyone's job (the owner is told).")
        ),
        format!(
            "{} {}",
            code("/admin vip USER_ID"),
            plain("– more recordings at once for a user.")
        ),
        format!(
            "{} {}",
            code("/admin unvip USER_ID"),
            plain("– back to the normal limit.")
        ),
    ]
    .join("\n")
}

pub fn command_error(error: &CommandError) -> String {
    match error {
        CommandError::RecordWithoutUrl => format!(
            "{}\n{}",
            plain("Which stream? Send the link with it, for example:"),
            code("/record https://example.com/live.m3u8 2h high")
        ),
        other => plain(&format!("{other}.")),
    }
}

pub fn recording_queued(
    job_id: JobId,
    url: &str,
    duration: Option<Duration>,
    quality: Quality,
) -> String {
    let duration_text = duration.map_or("until the stream ends".to_string(), |duration| {
        format!("for {}", format_duration(duration))
    });
    format!(
        "{} {}\n{}\n{}",
        plain("Recording"),
        code(job_id.as_str()),
        plain(&format!("{duration_text}, quality {quality}")),
        plain(url)
    )
}

pub fn refused_link(reason: &str) -> String {
    plain(&format!("I can't record that link: {reason}"))
}

pub fn rate_limited(retry_after: Duration, maximum_messages: usize, window: Duration) -> String {
    plain(&format!(
        "You're sending messages too fast (limit: {maximum_messages} in {} s). Try again in {} s.",
        window.as_secs().max(1),
        retry_after.as_secs_f64().ceil().max(1.0) as u64
    ))
}

pub fn too_many_jobs(limit: usize) -> String {
    plain(&format!(
        "You already have {limit} recordings running, your limit. Stop one (/list shows them) and try again; a slot frees up as soon as one finishes."
    ))
}

pub fn disk_quota_reached(used_bytes: u64, limit_bytes: u64) -> String {
    plain(&format!(
        "Your storage is full: {} of {} used. Delete old recordings or wait until they expire, then try again.",
        format_size(used_bytes),
        format_size(limit_bytes)
    ))
}

pub fn no_such_job(job_id: JobId) -> String {
    format!(
        "{} {} {}",
        plain("No recording"),
        code(job_id.as_str()),
        plain("of yours. /list shows your recordings.")
    )
}

pub fn no_live_jobs() -> String {
    plain("You have no recording running. Send a link to start one.")
}

pub fn which_job() -> String {
    plain("Which recording?")
}

pub fn control_accepted(job_id: JobId, action: &str) -> String {
    format!("{} {}", plain(&format!("{action}:")), code(job_id.as_str()))
}

pub fn control_not_possible(job_id: JobId, state: JobState, action: &str) -> String {
    format!(
        "{} {} {}",
        plain(&format!("Can't {action}")),
        code(job_id.as_str()),
        plain(&format!("– it is {}.", state_label(state)))
    )
}

pub fn cancel_only_queued(job_id: JobId) -> String {
    format!(
        "{} {} {}",
        plain("Recording"),
        code(job_id.as_str()),
        plain("has already started; /stop keeps what was recorded and sends it to you.")
    )
}

pub fn internal_error() -> String {
    plain(
        "Something went wrong on my side; nothing you recorded is lost. Please try again in a minute.",
    )
}

pub fn state_label(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "waiting for a worker",
        JobState::Starting => "starting",
        JobState::Recording => "recording",
        JobState::Paused => "paused",
        JobState::Finalizing => "finalizing",
        JobState::Uploading => "uploading",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
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

fn progress_lines(progress: &RecordingProgress) -> Vec<String> {
    let mut lines = vec![plain(&format!(
        "Recorded {} · {} · {}",
        format_duration(Duration::from_secs_f64(progress.media_seconds.max(0.0))),
        format_size(progress.bytes_written),
        format_bitrate(progress.bitrate_bits_per_second())
    ))];
    if progress.elapsed > Duration::ZERO {
        lines.push(plain(&format!(
            "Running for {}",
            format_duration(progress.elapsed)
        )));
    }
    if progress.gap_segments > 0 {
        lines.push(plain(&format!(
            "⚠ {} segments lost ({:.0} s) when the stream could not be reached",
            progress.gap_segments, progress.gap_seconds
        )));
    } else if progress.segments_written > 0 {
        lines.push(plain("No gaps"));
    }
    if progress.current_part > 1 {
        lines.push(plain(&format!("Part {}", progress.current_part)));
    }
    lines
}

/// The one status message of a job, edited as it goes.
pub fn job_status(job: &Job) -> String {
    let mut lines = vec![format!(
        "{} {} {}",
        plain(state_icon(job.state)),
        code(job.id.as_str()),
        bold(state_label(job.state))
    )];
    lines.push(plain(&job.url));
    lines.extend(progress_lines(&job.progress));
    if let Some(error) = &job.error
        && matches!(job.state, JobState::Failed)
    {
        lines.push(plain(&format!("Reason: {error}")));
    }
    lines.join("\n")
}

/// One line per job for /list.
pub fn job_list(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return plain("You have no recordings yet. Send a link to start one.");
    }
    let mut lines = vec![bold("Your recordings")];
    for job in jobs {
        lines.push(format!(
            "{} {} {} {}",
            plain(state_icon(job.state)),
            code(job.id.as_str()),
            plain(state_label(job.state)),
            plain(&format!(
                "· {} · {}",
                format_duration(Duration::from_secs_f64(job.progress.media_seconds.max(0.0))),
                format_size(job.progress.bytes_written)
            ))
        ));
    }
    lines.join("\n")
}

/// The final summary after delivery.
pub fn final_summary(job: &Job, files_sent: usize, files_too_large: &[String]) -> String {
    let progress = &job.progress;
    let completeness = if progress.gap_segments == 0 {
        "complete, no gaps".to_string()
    } else {
        let total = progress.segments_written + progress.gap_segments;
        format!(
            "{:.1} % complete: {} of {} segments lost ({:.0} s)",
            100.0 * progress.segments_written as f64 / total.max(1) as f64,
            progress.gap_segments,
            total,
            progress.gap_seconds
        )
    };
    let mut lines = vec![
        format!(
            "{} {} {}",
            plain("Recording"),
            code(job.id.as_str()),
            bold("finished")
        ),
        plain(&format!(
            "{} · {} · {}",
            format_duration(Duration::from_secs_f64(progress.media_seconds.max(0.0))),
            format_size(progress.bytes_written),
            completeness
        )),
        plain(&format!("{files_sent} file(s) sent.")),
    ];
    for name in files_too_large {
        lines.push(plain(&format!(
            "{name} could not be sent here (too large, or not stored on this machine); it is kept on the server."
        )));
    }
    lines.join("\n")
}

pub fn job_failed(job: &Job) -> String {
    format!(
        "{} {} {}\n{}",
        plain("Recording"),
        code(job.id.as_str()),
        bold("failed"),
        plain(job.error.as_deref().unwrap_or("for an unknown reason"))
    )
}

pub fn part_link(caption: &str, link: &str) -> String {
    format!("{}\n{}", plain(caption), plain(link))
}

pub fn upload_failed(file_name: &str) -> String {
    plain(&format!(
        "I couldn't send {file_name}; it is kept on the server. Ask the operator for it."
    ))
}

pub fn part_caption(job_id: JobId, part: usize, part_count: usize, duration: Duration) -> String {
    format!(
        "{job_id} · part {part}/{part_count} · {}",
        format_duration(duration)
    )
}

pub fn delete_needs_an_id() -> String {
    format!(
        "{}\n{}",
        plain("Which recording? Deleting needs its id, for example:"),
        code("/delete A3F2B1C9")
    )
}

pub fn delete_while_live(job_id: JobId) -> String {
    format!(
        "{} {} {}",
        plain("Recording"),
        code(job_id.as_str()),
        plain("is still running; /stop it first.")
    )
}

pub fn deleted(job_id: JobId, files: usize, bytes: u64) -> String {
    format!(
        "{} {} {}",
        plain("Deleted recording"),
        code(job_id.as_str()),
        plain(&format!("({files} file(s), {}).", format_size(bytes)))
    )
}

pub fn delete_failed(job_id: JobId, reason: &str) -> String {
    format!(
        "{} {} {}",
        plain("Could not delete"),
        code(job_id.as_str()),
        plain(&format!("completely: {reason}"))
    )
}

pub fn admin_only() -> String {
    plain("That command is for admins.")
}

pub fn admin_overview(by_state: &[(JobState, usize)], total: usize) -> String {
    let mut lines = vec![bold(&format!("{total} jobs"))];
    for (state, count) in by_state {
        lines.push(plain(&format!("{}: {count}", state_label(*state))));
    }
    lines.join("\n")
}

pub fn vip_changed(user_id: i64, added: bool) -> String {
    plain(&if added {
        format!("User {user_id} is now VIP (6 recordings at once).")
    } else {
        format!("User {user_id} is no longer VIP.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message must be valid MarkdownV2: no reserved character unescaped outside markup.
    fn assert_valid_markdown_v2(text: &str) {
        let reserved = [
            '_', '[', ']', '(', ')', '~', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!',
        ];
        let mut characters = text.chars().peekable();
        let mut in_code = false;
        while let Some(character) = characters.next() {
            if character == '\\' {
                characters.next();
                continue;
            }
            if character == '`' {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                assert!(
                    !reserved.contains(&character),
                    "unescaped {character:?} in {text:?}"
                );
            }
        }
        assert!(!in_code, "unclosed code span in {text:?}");
    }

    #[test]
    fn fixed_messages_are_valid_markdown() {
        for text in [
            welcome(),
            help(),
            not_understood(),
            command_error(&CommandError::RecordWithoutUrl),
            rate_limited(Duration::from_secs(12), 20, Duration::from_secs(60)),
            too_many_jobs(3),
            disk_quota_reached(5 << 30, 4 << 30),
            no_live_jobs(),
            internal_error(),
            recording_queued(
                JobId::from_u32(0xA3F2_B1C9),
                "https://x.example/a_b(1).m3u8?x=[y]",
                Some(Duration::from_secs(7200)),
                Quality::Height(720),
            ),
            refused_link("only http and https links can be recorded; \"ftp://x\" uses \"ftp\""),
        ] {
            assert_valid_markdown_v2(&text);
        }
    }
}
