//! Scheduled recordings (`record <link> at 20:00 for 2h`, `/schedule` with Cancel buttons), the
//! user's time zone (`/timezone`), the options a request names ("wait up to 6 h", "from the
//! start", subtitles, audio language) and clips of live jobs (`/clip`, the Clip button).
//!
//! Schedules are stored with `ScheduleStore` (the worker's schedule runner starts each
//! occurrence); a clip is asked for with a `JobEvent::ClipRequested` that the worker holding the
//! job answers (it has the files; see ARCHITECTURE.md).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use streambot_core::job::{JobEvent, JobOwner, JobPriority, JobState};
use streambot_core::schedule::{Tz, format_local_occurrence};
use streambot_core::{
    JobId, NewSchedule, RecordingOptions, Recurrence, Schedule, ScheduleError, ScheduleId,
    ScheduleRule, ScheduleWords, parse_time_zone, rule_from_words,
};
use streambot_hls::NetworkPolicy;
use streambot_hls::url_safety::parse_and_check_url;
use streambot_store::{JobsError, ScheduleCanceller, ScheduleCreation};
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, MessageId};

use crate::catalogue::Key;
use crate::handlers::strip_markdown;
use crate::messages::Words;
use crate::parser::{RecordRequest, RequestedStart};
use crate::runtime::{BotBackend, BotContext};

/// The options a request names, on top of `base`.
pub(crate) fn apply_request_options(base: &mut RecordingOptions, request: &RecordRequest) {
    base.quality = request.quality;
    if let Some(wait) = request.wait_for_live {
        base.wait_for_live = wait;
    }
    base.from_start = request.from_start;
    base.subtitles = request.subtitles.clone();
    base.audio_language = request.audio_language.clone();
    base.all_audio = request.all_audio;
}

/// The zone a user's times are read in: their `/timezone`, else the operator's default.
pub(crate) async fn user_time_zone<B: BotBackend>(context: &BotContext<B>, owner_id: i64) -> Tz {
    context
        .preferences_of(owner_id)
        .await
        .time_zone
        .as_deref()
        .and_then(|name| parse_time_zone(name).ok())
        .unwrap_or(context.settings.default_time_zone)
}

fn now_in(zone: Tz) -> String {
    format_local_occurrence(Utc::now(), zone)
}

/// "record <link> at 20:00 for 2h": a schedule in the store, answered with its next occurrence.
pub(crate) async fn schedule_recording<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    request: &RecordRequest,
    start: &RequestedStart,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let [url] = request.urls.as_slice() else {
        context
            .reply(chat_id, &words.schedule_needs_one_link())
            .await;
        return Ok(());
    };
    let policy = NetworkPolicy {
        allow_private_networks: context.settings.allow_private_networks,
    };
    if let Err(refusal) = parse_and_check_url(url, policy) {
        context
            .reply(chat_id, &words.refused_link(&refusal.to_string()))
            .await;
        return Ok(());
    }
    let zone = match &start.time_zone {
        Some(name) => match parse_time_zone(name) {
            Ok(zone) => zone,
            Err(_) => {
                context.reply(chat_id, &words.unknown_time_zone(name)).await;
                return Ok(());
            }
        },
        None => user_time_zone(context, owner_id).await,
    };
    let now = Utc::now();
    let schedule_words = ScheduleWords {
        hour: start.time.hour,
        minute: start.time.minute,
        tomorrow: start.time.tomorrow,
        recurrence: start.recurrence.clone(),
        duration: None,
        on_weekday: start.on_weekday,
        used_words: Vec::new(),
    };
    let rule = match rule_from_words(&schedule_words, zone, now) {
        Ok(rule) => rule,
        Err(_) => {
            context
                .reply(
                    chat_id,
                    &words.command_error(&crate::parser::CommandError::ImpossibleTime {
                        given: start.time.to_string(),
                    }),
                )
                .await;
            return Ok(());
        }
    };
    // "today at 20:00" (or "tonight") after 20:00: not silently tomorrow.
    let today = now.with_timezone(&zone).date_naive();
    let past_today =
        start.today && start.recurrence == Recurrence::Once && rule.start_date != today;
    let is_admin = context.is_admin(owner_id);
    let cap = context
        .settings
        .default_maximum_duration
        .unwrap_or(crate::runtime::DEFAULT_MAXIMUM_RECORDING);
    let (duration, capped) = match request.duration {
        Some(asked) if asked > cap && !is_admin => (cap, true),
        Some(asked) => (asked, false),
        None => (cap, true),
    };
    let mut options = RecordingOptions {
        maximum_duration: Some(duration),
        stall_timeout: context.settings.stall_timeout,
        ..RecordingOptions::default()
    };
    apply_request_options(&mut options, request);
    let priority = if is_admin || context.is_vip(owner_id).await {
        JobPriority::Priority
    } else {
        JobPriority::Normal
    };
    let new_schedule = NewSchedule {
        owner: JobOwner {
            user_id: owner_id,
            chat_id,
        },
        url: url.clone(),
        options,
        priority,
        rule,
        duration,
        lead: context.settings.schedule_lead,
    };
    // Checked here for a clear message; the store checks again.
    let checked = Schedule::new(ScheduleId::from_u32(0), new_schedule.clone(), now);
    if let Err(ScheduleError::UnknownTimeZone { given }) = &checked {
        context
            .reply(chat_id, &words.unknown_time_zone(given))
            .await;
        return Ok(());
    }
    if past_today
        || matches!(
            checked,
            Err(ScheduleError::InThePast | ScheduleError::NoWeekdays)
        )
    {
        context
            .reply(
                chat_id,
                &words.schedule_in_the_past(start.time, zone.name(), &now_in(zone)),
            )
            .await;
        return Ok(());
    }
    // Scheduled jobs are created by the store when due, past the per-user limit of recordings
    // at once: a schedule that would run beside more of the user's schedules than that limit
    // is refused here (issue 11: twenty schedules at 20:00 were twenty recordings at once).
    if let Some(concurrent_limit) = context.concurrent_job_limit(owner_id).await {
        let existing = active_schedules_of(context, owner_id).await?;
        let others: Vec<(&ScheduleRule, Duration)> = existing
            .iter()
            .map(|schedule| (&schedule.rule, schedule.duration))
            .collect();
        let at_once = most_recordings_at_once_with(&new_schedule.rule, duration, &others, now);
        if at_once > concurrent_limit {
            context
                .reply(
                    chat_id,
                    &words.schedule_overlaps_too_many(at_once, concurrent_limit),
                )
                .await;
            return Ok(());
        }
    }
    let limit = (!is_admin).then_some(context.settings.maximum_schedules_per_user);
    match context.backend.create_schedule(new_schedule, limit).await? {
        ScheduleCreation::Created(schedule) => {
            tracing::info!(schedule_id = %schedule.id, owner_id, "recording scheduled");
            let mut text = words.schedule_created(&schedule, zone);
            if capped {
                text.push('\n');
                text.push_str(&words.schedule_duration_capped(duration));
            }
            let options_line = words.options_line(&schedule.options);
            if !options_line.is_empty() {
                text.push('\n');
                text.push_str(&options_line);
            }
            context.reply(chat_id, &text).await;
        }
        ScheduleCreation::TooMany { limit } => {
            context
                .reply(chat_id, &words.schedule_too_many(limit))
                .await;
        }
    }
    Ok(())
}

/// Occurrences of the new schedule looked at: its first week and a day (every rule repeats
/// within a week), at most this many.
const OVERLAP_OCCURRENCES_CHECKED: usize = 16;
/// Occurrences of another schedule within one of the new one's, at most.
const OVERLAP_OTHERS_PER_OCCURRENCE: usize = 64;

/// The most recordings that would run at one instant with a new schedule (`rule` recording
/// `duration` each time) beside `others`: over the new schedule's occurrences in its first
/// eight days, the largest count of occurrences (its own included) recording at once. Pure.
pub(crate) fn most_recordings_at_once_with(
    rule: &ScheduleRule,
    duration: Duration,
    others: &[(&ScheduleRule, Duration)],
    now: chrono::DateTime<Utc>,
) -> usize {
    let Ok(length) = chrono::TimeDelta::from_std(duration) else {
        return 1;
    };
    let Some(first) = rule.next_occurrence_after(now) else {
        return 1;
    };
    let horizon = first + chrono::TimeDelta::days(8);
    let mut most = 1;
    let mut occurrence = Some(first);
    for _ in 0..OVERLAP_OCCURRENCES_CHECKED {
        let Some(start) = occurrence.filter(|start| *start <= horizon) else {
            break;
        };
        let end = start + length;
        // Each other occurrence that records during [start, end), cut to it: +1 at its
        // start, -1 at its end.
        let mut changes: Vec<(chrono::DateTime<Utc>, i32)> = Vec::new();
        for (other_rule, other_duration) in others {
            let Ok(other_length) = chrono::TimeDelta::from_std(*other_duration) else {
                continue;
            };
            let mut other = other_rule.next_occurrence_after(start - other_length);
            for _ in 0..OVERLAP_OTHERS_PER_OCCURRENCE {
                let Some(other_start) = other.filter(|other_start| *other_start < end) else {
                    break;
                };
                changes.push((other_start.max(start), 1));
                changes.push(((other_start + other_length).min(end), -1));
                other = other_rule.next_occurrence_after(other_start);
            }
        }
        // Ends before starts at the same instant: back to back is not at once.
        changes.sort_by_key(|(at, change)| (*at, *change));
        let mut running = 0i32;
        for (_, change) in changes {
            running += change;
            most = most.max(usize::try_from(running).unwrap_or(0) + 1);
        }
        occurrence = rule.next_occurrence_after(start);
    }
    most
}

/// The list's keyboard: one Cancel button per schedule.
fn schedule_keyboard(words: &Words, schedules: &[Schedule]) -> Option<InlineKeyboardMarkup> {
    (!schedules.is_empty()).then(|| {
        InlineKeyboardMarkup::new(
            schedules
                .iter()
                .map(|schedule| {
                    vec![InlineKeyboardButton::callback(
                        words.cancel_schedule_button(schedule.id),
                        format!("unschedule:{}", schedule.id),
                    )]
                })
                .collect::<Vec<_>>(),
        )
    })
}

/// Telegram allows 100 buttons; a user has at most the cap of schedules, but be safe.
const SCHEDULES_LISTED: usize = 50;

async fn active_schedules_of<B: BotBackend>(
    context: &BotContext<B>,
    owner_id: i64,
) -> Result<Vec<Schedule>, JobsError> {
    let mut schedules: Vec<Schedule> = context
        .backend
        .list_schedules_for_user(owner_id)
        .await?
        .into_iter()
        .filter(Schedule::is_active)
        .collect();
    schedules.sort_by_key(|schedule| schedule.next_occurrence_at);
    schedules.truncate(SCHEDULES_LISTED);
    Ok(schedules)
}

/// `/schedule`: the user's schedules with a Cancel button each.
pub(crate) async fn send_schedule_list<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let schedules = active_schedules_of(context, owner_id).await?;
    let zone = user_time_zone(context, owner_id).await;
    let text = words.schedule_list(&schedules, zone);
    if let Err(error) = context
        .api
        .send_text(chat_id, &text, schedule_keyboard(&words, &schedules))
        .await
    {
        tracing::warn!(%error, "could not send the schedule list");
    }
    Ok(())
}

/// The Cancel button of `/schedule`: only the schedule's owner (or, for a schedule a chat owns,
/// anyone in that chat) cancels it; a stale or forged button gets a toast.
pub(crate) async fn press_cancel_schedule<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    words: &Words,
    argument: &str,
    user_id: i64,
    chat_id: i64,
    message: Option<(i64, MessageId)>,
) -> String {
    let Ok(schedule_id) = argument.parse::<ScheduleId>() else {
        return words.label(Key::ToastExpired);
    };
    let schedule = match context.backend.get_schedule(schedule_id).await {
        Ok(Some(schedule)) => schedule,
        Ok(None) => return strip_markdown(&words.schedule_not_found(schedule_id)),
        Err(error) => {
            tracing::warn!(%error, "button: could not read the schedule");
            return words.label(Key::ToastTryAgain);
        }
    };
    // The schedule's owner, or for a schedule a chat owns, that chat's administrators.
    let owner_id = if schedule.owner.user_id == user_id {
        user_id
    } else {
        match context
            .acting_identity(
                schedule.owner.user_id,
                schedule.owner.chat_id,
                user_id,
                chat_id,
            )
            .await
        {
            // A bot admin cancels through /admin; a button acts for the owner only.
            crate::runtime::ActingDecision::As(_) if schedule.owner.user_id >= 0 => {
                return words.label(Key::ToastNotYours);
            }
            crate::runtime::ActingDecision::As(_) => schedule.owner.user_id,
            refused => return crate::callbacks::refusal_toast(words, refused),
        }
    };
    let cancelled = match context
        .backend
        .cancel_schedule(schedule_id, ScheduleCanceller::Owner(owner_id))
        .await
    {
        Ok(cancelled) => cancelled,
        Err(error) => {
            tracing::warn!(%error, "button: could not cancel the schedule");
            return words.label(Key::ToastTryAgain);
        }
    };
    if cancelled.is_none() {
        return strip_markdown(&words.schedule_not_found(schedule_id));
    }
    tracing::info!(%schedule_id, owner_id, "schedule cancelled");
    // The list shows what is left.
    if let Some((list_chat_id, message_id)) = message
        && let Ok(schedules) = active_schedules_of(context, owner_id).await
    {
        let zone = user_time_zone(context, owner_id).await;
        let text = format!(
            "{}\n\n{}",
            words.schedule_cancelled(schedule_id),
            words.schedule_list(&schedules, zone)
        );
        if let Err(error) = context
            .api
            .edit_text(
                list_chat_id,
                message_id,
                &text,
                schedule_keyboard(words, &schedules),
            )
            .await
        {
            tracing::debug!(%error, "could not update the schedule list");
        }
    }
    words.label(Key::ToastScheduleCancelled)
}

/// `/timezone [zone]`: shows or sets the zone the user's times are read in.
pub(crate) async fn choose_time_zone<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    choice: Option<String>,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let Some(choice) = choice else {
        let zone = user_time_zone(context, owner_id).await;
        context
            .reply(
                chat_id,
                &words.time_zone_current(zone.name(), &now_in(zone)),
            )
            .await;
        return Ok(());
    };
    let zone = match parse_time_zone(&choice) {
        Ok(zone) => zone,
        Err(_) => {
            context
                .reply(chat_id, &words.unknown_time_zone(&choice))
                .await;
            return Ok(());
        }
    };
    context
        .update_preferences(owner_id, |preferences| {
            preferences.time_zone = Some(zone.name().to_string());
        })
        .await?;
    context
        .reply(chat_id, &words.time_zone_set(zone.name(), &now_in(zone)))
        .await;
    Ok(())
}

/// Asks the worker holding `job_id` for a clip of its last `last`; `Err(text)` says why not.
pub(crate) async fn ask_for_clip<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    words: &Words,
    job_id: JobId,
    actor_id: i64,
    chat_id: i64,
    last: Duration,
) -> Result<Result<(), String>, JobsError> {
    let Some(job) = context.owned_job(actor_id, job_id).await? else {
        return Ok(Err(words.no_such_job(job_id)));
    };
    if !matches!(job.state, JobState::Recording | JobState::Paused) {
        return Ok(Err(words.clip_not_live(job_id, job.state)));
    }
    let last = last.clamp(
        Duration::from_secs(1),
        streambot_core::MAXIMUM_CLIP_DURATION,
    );
    context
        .backend
        .publish_event(JobEvent::ClipRequested {
            job_id,
            last,
            chat_id,
            at: Utc::now(),
        })
        .await?;
    tracing::info!(%job_id, seconds = last.as_secs(), "clip requested");
    Ok(Ok(()))
}

/// `/clip [ID] [5m]`.
pub(crate) async fn request_clip<B: BotBackend>(
    context: &Arc<BotContext<B>>,
    job_id: JobId,
    last: Duration,
    owner_id: i64,
    chat_id: i64,
) -> Result<(), JobsError> {
    let words = context.words_for(owner_id).await;
    let text = match ask_for_clip(context, &words, job_id, owner_id, chat_id, last).await? {
        Ok(()) => words.clip_requested(job_id, last),
        Err(refusal) => refusal,
    };
    context.reply(chat_id, &text).await;
    Ok(())
}

#[cfg(test)]
mod overlap_tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime, TimeZone};
    use streambot_core::schedule::Recurrence;

    fn rule(hour: u32, minute: u32, recurrence: Recurrence) -> ScheduleRule {
        ScheduleRule {
            time_zone: "UTC".to_string(),
            start_date: NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"),
            time_of_day: NaiveTime::from_hms_opt(hour, minute, 0).expect("time"),
            recurrence,
        }
    }

    #[test]
    fn schedules_that_record_at_once_are_counted() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 5, 12, 0, 0)
            .single()
            .expect("now");
        let hour = Duration::from_secs(3600);
        let daily_20 = rule(20, 0, Recurrence::Daily);
        let daily_2030 = rule(20, 30, Recurrence::Daily);
        let daily_21 = rule(21, 0, Recurrence::Daily);
        let once_2010 = rule(20, 10, Recurrence::Once);
        // Alone.
        assert_eq!(most_recordings_at_once_with(&daily_20, hour, &[], now), 1);
        // Two others at 20:00 and 20:30: three at 20:30.
        assert_eq!(
            most_recordings_at_once_with(
                &daily_20,
                hour,
                &[(&daily_20, hour), (&daily_2030, hour)],
                now
            ),
            3
        );
        // Back to back (20:00–21:00 then 21:00–22:00) is not at once.
        assert_eq!(
            most_recordings_at_once_with(&daily_21, hour, &[(&daily_20, hour)], now),
            1
        );
        // A one-time recording inside a daily one.
        assert_eq!(
            most_recordings_at_once_with(&once_2010, hour, &[(&daily_20, hour)], now),
            2
        );
        // Others that do not overlap each other: at most two at once.
        assert_eq!(
            most_recordings_at_once_with(
                &daily_2030,
                hour,
                &[(&daily_20, Duration::from_secs(1800)), (&daily_21, hour)],
                now
            ),
            2
        );
    }
}
