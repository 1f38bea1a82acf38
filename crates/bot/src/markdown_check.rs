//! Test only: a MarkdownV2 validator written to the Bot API's rules
//! (<https://core.telegram.org/bots/api#markdownv2-style>), and a test that renders every
//! message of the catalogue, in every language, with hostile text (every reserved character,
//! long URLs, Cyrillic, emoji, backslashes) and checks each one with it.
//!
//! The rules checked: outside entities each of `_*[]()~`>#+-=|{}.!` must be escaped with `\`;
//! any character from 1 to 126 may be escaped, nothing else may follow a `\`; inside `code` and
//! ```pre``` only `` ` `` and `\` are escaped (and must be); inside a link's `(…)` only `)` and
//! `\`; `*bold*`, `_italic_`, `__underline__`, `~strike~`, `||spoiler||` must be closed and
//! properly nested; `>` starts a quote only at the start of a line; the text left after the
//! markup is at most 4096 characters (UTF-16 code units, as Telegram counts).

use std::time::Duration;

const RESERVED: &str = "_*[]()~`>#+-=|{}.!";
/// Telegram's longest message.
pub use crate::messages::MAXIMUM_MESSAGE_LENGTH;

#[derive(Debug, PartialEq, Eq)]
pub struct MarkdownProblem(pub String);

/// Checks `text` against the MarkdownV2 rules; returns the visible text's length.
pub fn validate_markdown_v2(text: &str) -> Result<usize, MarkdownProblem> {
    let problem =
        |at: usize, what: &str| MarkdownProblem(format!("{what} at char {at} in {text:?}"));
    let characters: Vec<char> = text.chars().collect();
    let mut open: Vec<&'static str> = Vec::new();
    let mut visible_utf16 = 0usize;
    let mut index = 0;
    let mut line_start = true;
    while let Some(&character) = characters.get(index) {
        let next = characters.get(index + 1).copied();
        match character {
            '\\' => {
                let Some(escaped) = next else {
                    return Err(problem(index, "a backslash ends the text"));
                };
                if !(1..=126).contains(&(escaped as u32)) {
                    return Err(problem(index, "only characters 1-126 may be escaped"));
                }
                visible_utf16 += escaped.len_utf16();
                index += 2;
                line_start = false;
                continue;
            }
            '`' => {
                let is_pre = next == Some('`') && characters.get(index + 2) == Some(&'`');
                let fence = if is_pre { 3 } else { 1 };
                index += fence;
                loop {
                    let Some(&inner) = characters.get(index) else {
                        return Err(problem(index, "an unclosed code span"));
                    };
                    if inner == '\\' {
                        match characters.get(index + 1) {
                            Some('\\' | '`') => {
                                visible_utf16 += 1;
                                index += 2;
                                continue;
                            }
                            _ => return Err(problem(index, "a lone backslash inside code")),
                        }
                    }
                    if inner == '`' {
                        if is_pre {
                            if characters.get(index + 1) == Some(&'`')
                                && characters.get(index + 2) == Some(&'`')
                            {
                                index += 3;
                                break;
                            }
                            return Err(problem(index, "an unescaped ` inside pre"));
                        }
                        index += 1;
                        break;
                    }
                    visible_utf16 += inner.len_utf16();
                    index += 1;
                }
                line_start = false;
                continue;
            }
            '[' => {
                // [text](url): the text is ordinary markup; find the closing ](.
                open.push("]");
                index += 1;
                line_start = false;
                continue;
            }
            ']' => {
                if open.last() != Some(&"]") || next != Some('(') {
                    return Err(problem(index, "an unescaped ]"));
                }
                open.pop();
                index += 2;
                loop {
                    let Some(&inner) = characters.get(index) else {
                        return Err(problem(index, "an unclosed link address"));
                    };
                    if inner == '\\' {
                        match characters.get(index + 1) {
                            Some(')' | '\\') => {
                                index += 2;
                                continue;
                            }
                            _ => return Err(problem(index, "a lone backslash in a link address")),
                        }
                    }
                    index += 1;
                    if inner == ')' {
                        break;
                    }
                }
                continue;
            }
            '*' | '~' => {
                let mark: &'static str = if character == '*' { "*" } else { "~" };
                toggle(&mut open, mark).map_err(|what| problem(index, what))?;
                index += 1;
                line_start = false;
                continue;
            }
            '_' => {
                let mark: &'static str = if next == Some('_') { "__" } else { "_" };
                toggle(&mut open, mark).map_err(|what| problem(index, what))?;
                index += mark.len();
                line_start = false;
                continue;
            }
            '|' => {
                if next != Some('|') {
                    return Err(problem(index, "an unescaped |"));
                }
                toggle(&mut open, "||").map_err(|what| problem(index, what))?;
                index += 2;
                line_start = false;
                continue;
            }
            '>' if line_start => {
                // A block quote line.
                index += 1;
                line_start = false;
                continue;
            }
            '\n' => {
                visible_utf16 += 1;
                index += 1;
                line_start = true;
                continue;
            }
            other if RESERVED.contains(other) => {
                return Err(problem(index, &format!("an unescaped {other:?}")));
            }
            other => {
                visible_utf16 += other.len_utf16();
                index += 1;
                line_start = false;
            }
        }
    }
    if let Some(unclosed) = open.last() {
        return Err(MarkdownProblem(format!(
            "{unclosed:?} is never closed in {text:?}"
        )));
    }
    if visible_utf16 > MAXIMUM_MESSAGE_LENGTH {
        return Err(MarkdownProblem(format!(
            "{visible_utf16} characters, more than Telegram's {MAXIMUM_MESSAGE_LENGTH}"
        )));
    }
    if visible_utf16 == 0 {
        return Err(MarkdownProblem("an empty message".to_string()));
    }
    Ok(visible_utf16)
}

fn toggle(open: &mut Vec<&'static str>, mark: &'static str) -> Result<(), &'static str> {
    if open.last() == Some(&mark) {
        open.pop();
        return Ok(());
    }
    if open.contains(&mark) {
        return Err("entities overlap");
    }
    open.push(mark);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Key, Language, placeholders, render, render_plain, template};
    use crate::messages::{ControlAction, DeliveryProgress, StatusView, Words, bold, code, plain};
    use crate::parser::CommandError;
    use streambot_core::job::{Job, JobOwner, JobPriority, JobState, NewJob};
    use streambot_core::{
        DurationTextError, FailureKind, JobId, Quality, RecordingOptions, TimeOfDay,
    };

    #[test]
    fn the_validator_knows_the_rules() {
        for good in [
            "plain",
            "a\\.b \\(c\\) \\\\ \\!",
            "*bold* _italic_ __under__ ~strike~ ||spoiler||",
            "`code with * and _ and \\` and \\\\`",
            "```\npre . ! *\n```",
            "[link](https://x.example/a_(b\\))",
            "> quoted\n>again",
            "Привет 👋 \\- emoji",
        ] {
            assert!(validate_markdown_v2(good).is_ok(), "{good}");
        }
        for bad in [
            "a.b",
            "1 - 2",
            "*open",
            "`open",
            "ends with \\",
            "\\П",
            "`lone \\ backslash`",
            "a > b",
            "x|y",
            "*a _b* c_",
            "",
        ] {
            assert!(validate_markdown_v2(bad).is_err(), "{bad}");
        }
        assert!(validate_markdown_v2(&"a".repeat(4097)).is_err());
        assert!(validate_markdown_v2(&"a".repeat(4096)).is_ok());
    }

    const HOSTILE_TEXTS: [&str; 5] = [
        "_*[]()~`>#+-=|{}.!\\ \\\\ ` `` ```",
        "https://evil.example/a_b*c[d](e)~f`g>h#i+j-k=l|m{n}o.p!q\\r?s=t&u=v#frag",
        "Прямой эфир: матч «Зенит» — «Спартак», 20:00 МСК!",
        "🎥🔴 live ⚽️ 👨‍👩‍👧 \u{200d}\u{2028}",
        "*bold?* _it_ __u__ ||s|| [x](y)",
    ];

    fn long_url() -> String {
        format!(
            "https://cdn.example/{}/index.m3u8?token={}",
            "a_b.c-d".repeat(600),
            "x".repeat(2000)
        )
    }

    fn hostile_job(url: &str, state: JobState, error: &str) -> Job {
        let mut job = Job::new(
            JobId::from_u32(0xA3F2_B1C9),
            NewJob {
                owner: JobOwner {
                    user_id: 42,
                    chat_id: 42,
                },
                url: url.to_string(),
                options: RecordingOptions {
                    maximum_duration: Some(Duration::from_secs(7200)),
                    quality: Quality::Height(720),
                    ..RecordingOptions::default()
                },
                priority: JobPriority::Normal,
            },
            chrono::Utc::now(),
        );
        job.state = state;
        job.error = Some(error.to_string());
        job.progress.media_seconds = f64::NAN;
        job.progress.gap_segments = 3;
        job.progress.gap_seconds = f64::INFINITY;
        job.progress.segments_written = 10;
        job.progress.bytes_written = u64::MAX;
        job.progress.current_part = 2;
        job.progress.elapsed = Duration::from_secs(3605);
        job
    }

    fn check(text: &str, what: &str) {
        if let Err(problem) = validate_markdown_v2(text) {
            panic!(
                "{what}: {} in {:?}",
                problem.0,
                text.chars().take(300).collect::<String>()
            );
        }
    }

    /// Every catalogue entry, every language, every argument hostile (as plain, code or bold).
    #[test]
    fn every_template_renders_valid_markdown_with_hostile_arguments() {
        let long = long_url();
        let mut hostile: Vec<String> = HOSTILE_TEXTS.iter().map(|text| text.to_string()).collect();
        hostile.push(long.chars().take(500).collect());
        for language in Language::ALL {
            for key in Key::ALL {
                let names = placeholders(template(language, *key));
                for text in &hostile {
                    for wrap in [plain, code, bold] {
                        let arguments: Vec<(&str, String)> = names
                            .iter()
                            .map(|name| (name.as_str(), wrap(text)))
                            .collect();
                        check(
                            &render(language, *key, &arguments),
                            &format!("{key:?} {language:?}"),
                        );
                        // Buttons and toasts are plain text: just never empty.
                        assert!(!render_plain(language, *key, &arguments).trim().is_empty());
                    }
                }
            }
        }
    }

    /// Every message the bot builds, with hostile jobs, links, errors and names.
    /// Finding (attack 16): twenty schedules with long links made a /schedule list longer than
    /// Telegram's 4096 characters, so the user got nothing at all.
    #[test]
    fn a_long_schedule_list_fits_in_one_message() {
        let zone = streambot_core::parse_time_zone("Europe/Berlin").expect("zone");
        let schedules: Vec<streambot_core::Schedule> = (0..50u32)
            .map(|number| {
                streambot_core::Schedule::new(
                    streambot_core::JobId::from_u32(number),
                    streambot_core::NewSchedule {
                        owner: streambot_core::JobOwner {
                            user_id: 1,
                            chat_id: 1,
                        },
                        url: format!("https://cdn.example/{}/live.m3u8", "_".repeat(400)),
                        options: streambot_core::RecordingOptions::default(),
                        priority: streambot_core::JobPriority::Normal,
                        rule: streambot_core::ScheduleRule {
                            time_zone: "America/Argentina/ComodRivadavia".into(),
                            start_date: chrono::NaiveDate::from_ymd_opt(2030, 1, 4)
                                .unwrap_or_default(),
                            time_of_day: chrono::NaiveTime::from_hms_opt(20, 0, 0)
                                .unwrap_or_default(),
                            recurrence: streambot_core::Recurrence::Weekly {
                                weekdays: streambot_core::schedule::WORKING_DAYS.to_vec(),
                            },
                        },
                        duration: Duration::from_secs(5400),
                        lead: Duration::from_secs(60),
                    },
                    chrono::Utc::now(),
                )
                .expect("a schedule in the future")
            })
            .collect();
        for language in [Language::English, Language::Russian] {
            let words = Words::new(language);
            let list = words.schedule_list(&schedules, zone);
            assert!(validate_markdown_v2(&list).is_ok(), "{list}");
            assert!(list.contains("50"), "the title counts them all");
            let after_cancel = format!("{}\n\n{list}", words.schedule_cancelled(schedules[0].id));
            assert!(validate_markdown_v2(&after_cancel).is_ok());
        }
    }

    #[test]
    fn every_message_is_valid_markdown_with_hostile_text() {
        let long = long_url();
        let mut links: Vec<String> = HOSTILE_TEXTS.iter().map(|text| text.to_string()).collect();
        links.push(long.clone());
        for language in Language::ALL {
            let words = Words::new(language);
            let job_id = JobId::from_u32(0xDEAD_BEEF);
            let mut texts = vec![
                words.welcome(),
                words.help(),
                words.not_understood(),
                words.nothing_to_read(),
                words.did_you_mean("record", true),
                words.did_you_mean("stop", false),
                words.which_links(5, 2),
                words.rate_limited(Duration::from_secs(12), 20, Duration::from_secs(60)),
                words.too_many_jobs(3),
                words.disk_quota_reached(5 << 30, 4 << 30),
                words.no_such_job(job_id),
                words.admin_no_such_job(job_id),
                words.no_live_jobs(),
                words.which_job(),
                words.cancel_only_queued(job_id),
                words.internal_error(),
                words.plan_line(None, Some(Duration::from_secs(7200))),
                words.plan_line(
                    Some(Duration::from_secs(5400)),
                    Some(Duration::from_secs(7200)),
                ),
                words.plan_line(
                    Some(Duration::from_secs(9000)),
                    Some(Duration::from_secs(7200)),
                ),
                words.start_time_not_supported(TimeOfDay {
                    hour: 20,
                    minute: 0,
                    tomorrow: false,
                }),
                words.start_time_not_supported(TimeOfDay {
                    hour: 21,
                    minute: 30,
                    tomorrow: true,
                }),
                words.files_sent(1),
                words.files_sent(3),
                words.files_sent(25),
                words.failed_with_recording(),
                words.delete_needs_an_id(),
                words.delete_while_live(job_id),
                words.delete_confirm(job_id),
                words.deleted(job_id, 1, 1234),
                words.deleted(job_id, 22, 1 << 40),
                words.delete_kept(job_id),
                words.admin_only(),
                words.admin_help(),
                words.admin_overview(&[(JobState::Recording, 3), (JobState::Failed, 1)], 4),
                words.admin_stopped(job_id, -100123),
                words.owner_told_stopped(job_id),
                words.owner_told_deleted(job_id),
                words.vip_changed(7, true, 6),
                words.vip_changed(7, false, 6),
                words.language_choice(),
                words.language_set(),
                words.language_unknown(),
                words.sender_refused(),
                words.unknown_time_zone(HOSTILE_TEXTS[0]),
                words.schedule_too_many(20),
                words.schedule_needs_one_link(),
                words.schedule_duration_capped(Duration::from_secs(7200)),
                words.schedule_list(&[], streambot_core::schedule::Tz::UTC),
                words.schedule_cancelled(job_id),
                words.schedule_not_found(job_id),
                words.time_zone_current("Europe/Berlin", "Fri 04 Dec 20:00"),
                words.time_zone_set("America/New_York", "Fri 04 Dec 20:00"),
                words.clip_requested(job_id, Duration::from_secs(300)),
                words.clip_not_live(job_id, JobState::Completed),
                words.clip_problem(job_id, &streambot_core::ClipProblem::Busy),
                words.clip_problem(job_id, &streambot_core::ClipProblem::NothingYet),
                words.clip_problem(
                    job_id,
                    &streambot_core::ClipProblem::Failed {
                        reason: HOSTILE_TEXTS[1].into(),
                    },
                ),
                words.schedule_in_the_past(
                    streambot_core::TimeOfDay {
                        hour: 20,
                        minute: 0,
                        tomorrow: false,
                    },
                    "Europe/Berlin",
                    "Fri 04 Dec 21:00",
                ),
                words.options_line(&streambot_core::RecordingOptions {
                    from_start: true,
                    subtitles: streambot_core::SubtitleChoice::Language("de-DE".into()),
                    audio_language: Some("de".into()),
                    all_audio: true,
                    wait_for_live: Duration::from_secs(3600),
                    ..streambot_core::RecordingOptions::default()
                }),
            ];
            for link in &links {
                let schedule = streambot_core::Schedule::new(
                    job_id,
                    streambot_core::NewSchedule {
                        owner: streambot_core::JobOwner {
                            user_id: 1,
                            chat_id: 1,
                        },
                        url: link.clone(),
                        options: streambot_core::RecordingOptions::default(),
                        priority: streambot_core::JobPriority::Normal,
                        rule: streambot_core::ScheduleRule {
                            time_zone: "Europe/Berlin".into(),
                            start_date: chrono::NaiveDate::from_ymd_opt(2030, 1, 4)
                                .unwrap_or_default(),
                            time_of_day: chrono::NaiveTime::from_hms_opt(20, 0, 0)
                                .unwrap_or_default(),
                            recurrence: streambot_core::Recurrence::Weekly {
                                weekdays: vec![chrono::Weekday::Fri, chrono::Weekday::Mon],
                            },
                        },
                        duration: Duration::from_secs(5400),
                        lead: Duration::from_secs(60),
                    },
                    chrono::Utc::now(),
                )
                .expect("a schedule in the future");
                let zone = streambot_core::parse_time_zone("Europe/Berlin").expect("zone");
                texts.push(words.schedule_created(&schedule, zone));
                texts.push(words.schedule_list(std::slice::from_ref(&schedule), zone));
                let listed = words.schedule_list(std::slice::from_ref(&schedule), zone);
                assert!(
                    !link.contains("token=x") || !listed.contains("token=x"),
                    "a schedule list shows a secret"
                );
            }
            for action in [
                ControlAction::Stop,
                ControlAction::Cancel,
                ControlAction::Pause,
                ControlAction::Resume,
            ] {
                texts.push(words.control_done(action, job_id));
                texts.push(words.control_not_possible(action, job_id, JobState::Completed));
            }
            for error in [
                CommandError::RecordWithoutUrl,
                CommandError::BadDuration(DurationTextError::Zero { given: "0h".into() }),
                CommandError::BadDuration(DurationTextError::TooLong {
                    given: HOSTILE_TEXTS[0].into(),
                    maximum_hours: 168,
                }),
                CommandError::BadDuration(DurationTextError::Unrecognised {
                    given: HOSTILE_TEXTS[1].into(),
                }),
                CommandError::BadQuality {
                    given: HOSTILE_TEXTS[0].into(),
                },
                CommandError::BadJobId {
                    given: HOSTILE_TEXTS[2].into(),
                },
                CommandError::BadUserId {
                    given: HOSTILE_TEXTS[3].into(),
                },
                CommandError::UnknownAdminCommand {
                    given: HOSTILE_TEXTS[4].into(),
                },
                CommandError::ImpossibleTime {
                    given: HOSTILE_TEXTS[0].into(),
                },
                CommandError::UnknownTimeZone {
                    given: HOSTILE_TEXTS[1].into(),
                },
                CommandError::RepeatWithoutTime,
                CommandError::DayWithoutTime {
                    given: HOSTILE_TEXTS[2].into(),
                },
                CommandError::Contradiction {
                    first: HOSTILE_TEXTS[3].into(),
                    second: HOSTILE_TEXTS[4].into(),
                },
                CommandError::ClipLength {
                    maximum_minutes: 60,
                },
                CommandError::RepeatNotUnderstood {
                    given: HOSTILE_TEXTS[0].into(),
                },
                CommandError::StartInNotSupported {
                    given: HOSTILE_TEXTS[1].into(),
                },
                CommandError::EndWithoutStart {
                    given: HOSTILE_TEXTS[2].into(),
                },
            ] {
                texts.push(words.command_error(&error));
            }
            for link in &links {
                texts.push(words.refused_link(link));
                texts.push(words.delivery_failed(link));
                texts.push(words.delete_failed(job_id, link));
                let caption = words.part_caption(
                    &hostile_job(link, JobState::Completed, link),
                    1,
                    2,
                    Duration::from_secs(61),
                );
                assert!(
                    caption.chars().count() <= 1024,
                    "caption too long: {caption}"
                );
                texts.push(words.part_link(&caption, link));
                texts.push(words.files_damaged(&[1, 3]));
                texts.push(words.resend_files_deleted(job_id));
                texts.push(words.recording_expires(chrono::Utc::now()));
                for notice in [
                    streambot_core::AdminNotice::DiskFilling {
                        used_bytes: 850,
                        limit_bytes: 1000,
                    },
                    streambot_core::AdminNotice::DiskFreed {
                        used_bytes_before: 960,
                        used_bytes_after: 800,
                        limit_bytes: 1000,
                        deleted_jobs: vec![job_id; 25],
                    },
                    streambot_core::AdminNotice::DiskFreed {
                        used_bytes_before: 960,
                        used_bytes_after: 960,
                        limit_bytes: 1000,
                        deleted_jobs: Vec::new(),
                    },
                ] {
                    texts.push(words.disk_notice(&notice));
                }
                let mut jobs = Vec::new();
                for state in JobState::ALL {
                    for failure in [
                        None,
                        Some(FailureKind::WebPage),
                        Some(FailureKind::NotFound),
                    ] {
                        let mut job = hostile_job(link, state, link);
                        job.failure = failure;
                        for delivery in [
                            DeliveryProgress::NotYet,
                            DeliveryProgress::Sending,
                            DeliveryProgress::Sent,
                            DeliveryProgress::Failed,
                        ] {
                            let view = StatusView {
                                delivery,
                                default_cap: Some(Duration::from_secs(7200)),
                            };
                            texts.push(words.job_status(&job, &view));
                        }
                        texts.push(words.failure_sentence(&job));
                        texts.push(words.final_summary(&job, 2, std::slice::from_ref(link)));
                        texts.push(words.final_summary(&job, 0, &[]));
                        jobs.push(job);
                    }
                }
                let page: Vec<Job> = jobs.iter().take(10).cloned().collect();
                texts.push(words.job_list(&page, true, jobs.len()));
                texts.push(words.job_list(&page, false, page.len()));
                texts.push(words.job_list(&[], false, 0));
            }
            for text in &texts {
                check(text, &format!("{language:?}"));
            }
        }
    }
}
