//! `streambot jobs add URL --at … [--every …] --for …` (a scheduled or recurring recording),
//! `streambot jobs schedules` and `streambot jobs unschedule ID`.

use std::time::Duration;

use chrono::{NaiveDateTime, NaiveTime, Timelike, Utc};
use streambot_core::schedule::{Tz, describe_rule, format_local_occurrence, parse_weekday};
use streambot_core::{
    NewSchedule, Recurrence, Schedule, ScheduleId, ScheduleRule, ScheduleWords, parse_time_zone,
    rule_from_words,
};
use streambot_store::{ScheduleCanceller, ScheduleCreation, ScheduleStore};

use crate::schedule_settings::ScheduleSettings;

/// `--every`: `day` (or `daily`), or weekdays separated by commas (`friday`, `mon,wed`).
pub fn parse_every_argument(text: &str) -> Result<Recurrence, String> {
    let lowered = text.trim().to_lowercase();
    if ["day", "daily", "every day", "days"].contains(&lowered.as_str()) {
        return Ok(Recurrence::Daily);
    }
    let mut weekdays = Vec::new();
    for word in lowered.split([',', ' ']).filter(|word| !word.is_empty()) {
        let day = parse_weekday(word).ok_or_else(|| {
            format!("{word:?} is not a weekday; use day, or weekdays like friday or mon,wed")
        })?;
        if !weekdays.contains(&day) {
            weekdays.push(day);
        }
    }
    if weekdays.is_empty() {
        return Err("name day, or weekdays like friday or mon,wed".to_string());
    }
    weekdays.sort_by_key(|day| day.num_days_from_monday());
    Ok(Recurrence::Weekly { weekdays })
}

/// The rule of `--at` (`2026-12-05 20:00`, or `20:00`: today, or tomorrow when it has passed)
/// with `--every`, in `zone`.
pub fn rule_from_arguments(
    at: &str,
    every: Option<Recurrence>,
    zone: Tz,
    now: chrono::DateTime<Utc>,
) -> Result<ScheduleRule, String> {
    let text = at.trim();
    let recurrence = every.unwrap_or(Recurrence::Once);
    if let Ok(local) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M") {
        return Ok(ScheduleRule {
            time_zone: zone.name().to_string(),
            start_date: local.date(),
            time_of_day: local.time(),
            recurrence,
        });
    }
    let time = NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
        format!("--at {text:?}: write the local time as \"2026-12-05 20:00\" or \"20:00\"")
    })?;
    let words = ScheduleWords {
        hour: time.hour() as u8,
        minute: time.minute() as u8,
        tomorrow: false,
        recurrence,
        duration: None,
        on_weekday: None,
        used_words: Vec::new(),
    };
    rule_from_words(&words, zone, now).map_err(|error| error.to_string())
}

/// One line for a schedule: id, rule, duration, next occurrence, counts.
pub fn schedule_line(schedule: &Schedule) -> String {
    let zone = parse_time_zone(&schedule.rule.time_zone).unwrap_or(Tz::UTC);
    let next = match (schedule.cancelled_at, schedule.next_occurrence_at) {
        (Some(_), _) => "cancelled".to_string(),
        (None, Some(next)) => format!("next {}", format_local_occurrence(next, zone)),
        (None, None) => "over".to_string(),
    };
    format!(
        "{}  user {}  {} for {}  {}  started {} skipped {}  {}",
        schedule.id,
        schedule.owner.user_id,
        describe_rule(&schedule.rule),
        streambot_core::format_duration_with_units(
            schedule.duration,
            streambot_core::duration_text::ENGLISH_DURATION_UNITS
        ),
        next,
        schedule.occurrences_started,
        schedule.occurrences_skipped,
        schedule.url
    )
}

#[allow(clippy::too_many_arguments)]
pub async fn add_schedule<B: ScheduleStore>(
    backend: &B,
    schedule_settings: &ScheduleSettings,
    owner: streambot_core::JobOwner,
    url: String,
    options: streambot_core::RecordingOptions,
    priority: streambot_core::JobPriority,
    at: &str,
    every: Option<Recurrence>,
    time_zone: Option<&str>,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let zone = match time_zone {
        Some(name) => parse_time_zone(name).map_err(|error| anyhow::anyhow!("{error}"))?,
        None => schedule_settings.default_time_zone,
    };
    let duration = duration.ok_or_else(|| {
        anyhow::anyhow!("a scheduled recording needs --for, how long each one records (e.g. 2h)")
    })?;
    let rule = rule_from_arguments(at, every, zone, Utc::now()).map_err(anyhow::Error::msg)?;
    let request = NewSchedule {
        owner,
        url,
        options,
        priority,
        rule,
        duration,
        lead: schedule_settings.schedule_lead,
    };
    // Checked here for a clear message; the store checks again.
    Schedule::new(ScheduleId::from_u32(0), request.clone(), Utc::now())
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    // The operator has no cap.
    match backend
        .create_schedule(request, None)
        .await
        .map_err(|error| anyhow::anyhow!(error.user_message()))?
    {
        ScheduleCreation::Created(schedule) => {
            println!("{}", schedule.id);
            eprintln!("scheduled: {}", schedule_line(&schedule));
            Ok(())
        }
        ScheduleCreation::TooMany { limit } => {
            anyhow::bail!("this user has {limit} schedules already")
        }
    }
}

pub async fn list_schedules<B: ScheduleStore>(
    backend: &B,
    user_id: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let schedules = match user_id {
        Some(user_id) => backend.list_schedules_for_user(user_id).await,
        None => backend.list_schedules(1000).await,
    }
    .map_err(|error| anyhow::anyhow!(error.user_message()))?;
    for schedule in &schedules {
        if json {
            println!("{}", serde_json::to_string(schedule)?);
        } else {
            println!("{}", schedule_line(schedule));
        }
    }
    Ok(())
}

pub async fn unschedule<B: ScheduleStore>(
    backend: &B,
    schedule_id: ScheduleId,
) -> anyhow::Result<()> {
    match backend
        .cancel_schedule(schedule_id, ScheduleCanceller::Admin)
        .await
        .map_err(|error| anyhow::anyhow!(error.user_message()))?
    {
        Some(schedule) => {
            eprintln!("cancelled: {}", schedule_line(&schedule));
            Ok(())
        }
        None => anyhow::bail!("there is no active schedule {schedule_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Weekday};

    #[test]
    fn every_and_at_arguments() {
        assert_eq!(parse_every_argument("day"), Ok(Recurrence::Daily));
        assert_eq!(
            parse_every_argument("fri,mon"),
            Ok(Recurrence::Weekly {
                weekdays: vec![Weekday::Mon, Weekday::Fri]
            })
        );
        assert!(parse_every_argument("someday").is_err());
        let zone = parse_time_zone("Europe/Berlin").expect("zone");
        let now = "2026-12-04T21:00:00Z".parse().expect("now");
        let rule = rule_from_arguments(
            "2026-12-05 20:00",
            Some(Recurrence::Weekly {
                weekdays: vec![Weekday::Fri],
            }),
            zone,
            now,
        )
        .expect("rule");
        assert_eq!(
            rule.next_occurrence_after(now),
            Some("2026-12-11T19:00:00Z".parse().expect("next"))
        );
        let tomorrow = rule_from_arguments("20:00", None, zone, now).expect("rule");
        assert_eq!(
            tomorrow.start_date,
            "2026-12-05".parse::<NaiveDate>().expect("date")
        );
        assert!(rule_from_arguments("8 pm", None, zone, now).is_err());
    }
}
