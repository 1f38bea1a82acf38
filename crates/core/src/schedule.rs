//! Scheduled and recurring recordings, as plain data and pure functions.
//!
//! A schedule says: record this link at this time of day in this time zone, once, every day or
//! on some weekdays, for this long. Occurrences are computed in the user's zone (chrono-tz), so
//! 20:00 local stays 20:00 across a DST change; a local time that does not exist that day (the
//! spring-forward gap) is moved forward by the length of the gap (02:30 → 03:30, as RFC 5545
//! does), an ambiguous one (the autumn overlap) takes the first of its two instants.
//!
//! [`Schedule::take_due`] is the one decision the stores apply atomically: which occurrence to
//! start now, which ones are too late (more than the duration past their time: skipped), and the
//! next occurrence to wait for.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::duration_text::{TimeMeaning, find_time_phrases};
use crate::job::{JobOwner, JobPriority, NewJob};
use crate::job_id::JobId;
use crate::options::RecordingOptions;

/// Schedules are named like jobs: eight hexadecimal characters.
pub type ScheduleId = JobId;

/// How long before an occurrence its job is started, unless the operator sets `SCHEDULE_LEAD`.
pub const DEFAULT_SCHEDULE_LEAD: Duration = Duration::from_secs(60);
/// How many schedules a user may keep active (admins exempt).
pub const DEFAULT_MAXIMUM_SCHEDULES_PER_USER: usize = 20;
/// Occurrence instants remembered as skipped in one decision (the count is exact).
const SKIPPED_INSTANTS_KEPT: usize = 10;
/// Occurrences stepped through in one decision before jumping ahead (a schedule years overdue).
const MAXIMUM_OCCURRENCE_STEPS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{given:?} is not a time zone; use a name like Europe/Berlin, America/New_York or UTC")]
    UnknownTimeZone { given: String },
    #[error("that time has already passed")]
    InThePast,
    #[error("a weekly schedule needs at least one weekday")]
    NoWeekdays,
}

/// Parses an IANA zone name (`Europe/Berlin`), case-insensitively; also a city alone (`Moscow`,
/// `new_york`) and a whole-hour offset from UTC (`UTC+3`, `GMT-5`, `+03:00`: the `Etc/GMT-3`
/// zone, whose name has the sign reversed by POSIX convention).
pub fn parse_time_zone(given: &str) -> Result<Tz, ScheduleError> {
    let trimmed = given.trim();
    trimmed
        .parse::<Tz>()
        .or_else(|_| Tz::from_str_insensitive(trimmed))
        .ok()
        .or_else(|| time_zone_of_offset(trimmed))
        .or_else(|| time_zone_of_city(trimmed))
        .ok_or_else(|| ScheduleError::UnknownTimeZone {
            given: trimmed.chars().take(64).collect(),
        })
}

/// A zone's name as people read it: `Etc/GMT-3` (POSIX signs, reversed) is shown as `UTC+3`.
pub fn time_zone_label(name: &str) -> String {
    let Some(offset) = name.strip_prefix("Etc/GMT") else {
        return name.to_string();
    };
    match offset.split_at_checked(1) {
        Some(("-", hours)) => format!("UTC+{hours}"),
        Some(("+", hours)) => format!("UTC-{hours}"),
        _ => "UTC".to_string(),
    }
}

/// `UTC+3`, `GMT-5`, `+03:00`, `utc+03`: the `Etc/GMT∓N` zone; half hours have no such zone.
fn time_zone_of_offset(given: &str) -> Option<Tz> {
    let lowered = given.to_ascii_lowercase();
    let signed = lowered
        .strip_prefix("utc")
        .or_else(|| lowered.strip_prefix("gmt"))
        .unwrap_or(&lowered);
    let (east, digits) = match signed.split_at_checked(1)? {
        ("+", rest) => (true, rest),
        ("-" | "−", rest) => (false, rest),
        _ => return None,
    };
    let hours_text = digits
        .strip_suffix(":00")
        .or_else(|| digits.strip_suffix("00").filter(|hours| hours.len() == 2))
        .unwrap_or(digits);
    if hours_text.is_empty()
        || hours_text.len() > 2
        || !hours_text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let hours: u8 = hours_text.parse().ok()?;
    let name = match (east, hours) {
        (_, 0) => "Etc/GMT".to_string(),
        (true, 1..=14) => format!("Etc/GMT-{hours}"),
        (false, 1..=12) => format!("Etc/GMT+{hours}"),
        _ => return None,
    };
    name.parse::<Tz>().ok()
}

/// `Moscow`, `new_york`, `Sao_Paulo`: the one zone whose last part is that city.
fn time_zone_of_city(given: &str) -> Option<Tz> {
    if given.is_empty() || given.contains('/') {
        return None;
    }
    let wanted = given.replace(' ', "_").to_lowercase();
    let mut found = chrono_tz::TZ_VARIANTS.iter().filter(|zone| {
        let name = zone.name();
        name.contains('/')
            && !name.starts_with("Etc/")
            && name
                .rsplit('/')
                .next()
                .is_some_and(|city| city.to_lowercase() == wanted)
    });
    let first = found.next()?;
    // Several zones with one city name (none today, but the database grows): not a guess.
    found.next().is_none().then_some(*first)
}

/// How often a schedule repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "every")]
pub enum Recurrence {
    Once,
    Daily,
    Weekly { weekdays: Vec<Weekday> },
}

impl Recurrence {
    fn includes(&self, date: NaiveDate) -> bool {
        match self {
            Recurrence::Once | Recurrence::Daily => true,
            Recurrence::Weekly { weekdays } => weekdays.contains(&date.weekday()),
        }
    }

    /// "every Friday", "every day", "once".
    pub fn describe(&self) -> String {
        match self {
            Recurrence::Once => "once".to_string(),
            Recurrence::Daily => "every day".to_string(),
            Recurrence::Weekly { weekdays } => format!(
                "every {}",
                weekdays
                    .iter()
                    .map(|day| english_weekday(*day))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

pub fn english_weekday(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// Monday to Friday ("every weekday", "по будням").
pub const WORKING_DAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];
/// Saturday and Sunday ("every weekend", "каждые выходные").
pub const WEEKEND_DAYS: [Weekday; 2] = [Weekday::Sat, Weekday::Sun];

/// When a schedule's occurrences are: a local time of day in a zone, from a first date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRule {
    /// An IANA zone name, checked when the schedule is made.
    pub time_zone: String,
    /// No occurrence before this local date; the only one for `Once`.
    pub start_date: NaiveDate,
    pub time_of_day: NaiveTime,
    pub recurrence: Recurrence,
}

/// The instant of `local` in `zone`: the first of two when ambiguous, moved forward by the gap
/// when it does not exist.
pub fn resolve_local_time(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(instant) => instant.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // In a gap: read the wall clock with the offset in force just before the gap.
            let mut probe = local;
            for _ in 0..(48 * 60) {
                probe += chrono::Duration::minutes(1);
                if let Some(after_gap) = zone.from_local_datetime(&probe).earliest() {
                    let before_gap = after_gap.with_timezone(&Utc) - chrono::Duration::seconds(1);
                    let offset = before_gap.with_timezone(&zone).offset().fix_offset();
                    return Utc.from_utc_datetime(&(local - offset));
                }
            }
            // No zone has a gap of two days; read it as UTC rather than fail.
            Utc.from_utc_datetime(&local)
        }
    }
}

trait FixOffset {
    fn fix_offset(&self) -> chrono::Duration;
}

impl<O: chrono::Offset> FixOffset for O {
    fn fix_offset(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.fix().local_minus_utc()))
    }
}

impl ScheduleRule {
    pub fn zone(&self) -> Result<Tz, ScheduleError> {
        parse_time_zone(&self.time_zone)
    }

    /// The occurrence on a local date, when the rule has one that day.
    pub fn occurrence_on(&self, zone: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
        let matches = match self.recurrence {
            Recurrence::Once => date == self.start_date,
            _ => date >= self.start_date && self.recurrence.includes(date),
        };
        matches.then(|| resolve_local_time(zone, date.and_time(self.time_of_day)))
    }

    /// The first occurrence strictly after `after`; `None` when there is none (a past `Once`,
    /// an unknown zone, a weekly rule without weekdays).
    pub fn next_occurrence_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let zone = self.zone().ok()?;
        if let Recurrence::Once = self.recurrence {
            return self
                .occurrence_on(zone, self.start_date)
                .filter(|occurrence| *occurrence > after);
        }
        let local_date = after.with_timezone(&zone).date_naive();
        let mut date = local_date
            .pred_opt()
            .unwrap_or(local_date)
            .max(self.start_date);
        // A week and two days cover every weekday whatever the offsets.
        for _ in 0..9 {
            if let Some(occurrence) = self.occurrence_on(zone, date)
                && occurrence > after
            {
                return Some(occurrence);
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// One occurrence a job was started for; kept on the job for its status message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledOccurrence {
    pub schedule_id: ScheduleId,
    pub scheduled_at: DateTime<Utc>,
    /// How late the job was created (after a restart); zero when on time.
    #[serde(default)]
    pub late_by: Duration,
}

/// The recorder is waiting for the stream to go live (`RecordingOptions::wait_for_live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingForLive {
    pub next_check_at: DateTime<Utc>,
}

/// What is needed to create a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSchedule {
    pub owner: JobOwner,
    pub url: String,
    /// The options each occurrence's job records with (its duration is set per occurrence).
    pub options: RecordingOptions,
    pub priority: JobPriority,
    pub rule: ScheduleRule,
    /// How long each occurrence records.
    pub duration: Duration,
    /// How long before the occurrence its job starts.
    pub lead: Duration,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: ScheduleId,
    pub owner: JobOwner,
    pub url: String,
    pub options: RecordingOptions,
    pub priority: JobPriority,
    pub rule: ScheduleRule,
    pub duration: Duration,
    pub lead: Duration,
    /// The next occurrence to start; `None` once a one-time schedule ran (or was skipped).
    pub next_occurrence_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Jobs started so far, and the latest one.
    pub occurrences_started: u64,
    pub last_job_id: Option<JobId>,
    /// Occurrences missed by more than their duration (the service was down).
    pub occurrences_skipped: u64,
}

/// What [`Schedule::take_due`] decided at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct DueOccurrences {
    /// The occurrence to start now, with how late it is.
    pub start: Option<ScheduledOccurrence>,
    /// The first few occurrences skipped as too late, and how many in all.
    pub skipped: Vec<DateTime<Utc>>,
    pub skipped_count: u64,
    /// The schedule's next occurrence after this decision.
    pub next_occurrence_at: Option<DateTime<Utc>>,
}

fn std_to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl Schedule {
    /// A fresh schedule; refused when it has no occurrence after `now`.
    pub fn new(
        id: ScheduleId,
        request: NewSchedule,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        request.rule.zone()?;
        if let Recurrence::Weekly { weekdays } = &request.rule.recurrence
            && weekdays.is_empty()
        {
            return Err(ScheduleError::NoWeekdays);
        }
        let next = request
            .rule
            .next_occurrence_after(now)
            .ok_or(ScheduleError::InThePast)?;
        Ok(Schedule {
            id,
            owner: request.owner,
            url: request.url,
            options: request.options,
            priority: request.priority,
            rule: request.rule,
            duration: request.duration,
            lead: request.lead,
            next_occurrence_at: Some(next),
            created_at: now,
            cancelled_at: None,
            occurrences_started: 0,
            last_job_id: None,
            occurrences_skipped: 0,
        })
    }

    pub fn is_active(&self) -> bool {
        self.cancelled_at.is_none() && self.next_occurrence_at.is_some()
    }

    /// When its next job is to be created (the occurrence minus the lead).
    pub fn next_start_at(&self) -> Option<DateTime<Utc>> {
        self.next_occurrence_at
            .filter(|_| self.cancelled_at.is_none())
            .map(|occurrence| occurrence - std_to_chrono(self.lead))
    }

    /// What to do at `now`: `None` when nothing is due. An occurrence is due from its time minus
    /// the lead; it is started while it is less than its duration late, else skipped. When
    /// several are due, the latest startable one is started and the earlier ones are skipped.
    pub fn take_due(&self, now: DateTime<Utc>) -> Option<DueOccurrences> {
        let start_at = self.next_start_at()?;
        if start_at > now {
            return None;
        }
        let lead = std_to_chrono(self.lead);
        let duration = std_to_chrono(self.duration);
        let mut occurrence = self.next_occurrence_at?;
        let mut start: Option<DateTime<Utc>> = None;
        let mut skipped = Vec::new();
        let mut skipped_count = 0u64;
        let mut skip = |instant: DateTime<Utc>| {
            skipped_count += 1;
            if skipped.len() < SKIPPED_INSTANTS_KEPT {
                skipped.push(instant);
            }
        };
        let mut next = None;
        for step in 0..=MAXIMUM_OCCURRENCE_STEPS {
            if occurrence - lead > now {
                next = Some(occurrence);
                break;
            }
            if step == MAXIMUM_OCCURRENCE_STEPS {
                // Years overdue: count what is left as one skip and jump to the present.
                skip(occurrence);
                next = self.rule.next_occurrence_after(now - duration);
                if let Some(candidate) = next
                    && candidate - lead <= now
                {
                    start = Some(candidate);
                    next = self.rule.next_occurrence_after(candidate);
                }
                break;
            }
            if now - occurrence >= duration {
                skip(occurrence);
            } else {
                if let Some(earlier) = start.replace(occurrence) {
                    skip(earlier);
                }
            }
            match self.rule.next_occurrence_after(occurrence) {
                Some(following) => occurrence = following,
                None => break,
            }
        }
        Some(DueOccurrences {
            start: start.map(|scheduled_at| ScheduledOccurrence {
                schedule_id: self.id,
                scheduled_at,
                late_by: (now - scheduled_at).to_std().unwrap_or_default(),
            }),
            skipped,
            skipped_count,
            next_occurrence_at: next,
        })
    }

    /// The schedule after `decision` was applied (with the job started for it, if any).
    pub fn advanced(&self, decision: &DueOccurrences, started_job: Option<JobId>) -> Schedule {
        let mut advanced = self.clone();
        advanced.next_occurrence_at = decision.next_occurrence_at;
        advanced.occurrences_skipped += decision.skipped_count;
        if let Some(job_id) = started_job {
            advanced.occurrences_started += 1;
            advanced.last_job_id = Some(job_id);
        }
        advanced
    }

    /// The job for an occurrence: it records until the occurrence's end (its duration, less
    /// how late it starts), and waits for the stream to go live up to that end (the lead plus
    /// what remains), or longer when its options say so.
    pub fn job_for(&self, occurrence: &ScheduledOccurrence) -> NewJob {
        let mut options = self.options.clone();
        let remaining = self.duration.saturating_sub(occurrence.late_by);
        options.maximum_duration = Some(remaining.max(Duration::from_secs(1)));
        options.wait_for_live = options
            .wait_for_live
            .max(self.lead.saturating_add(remaining));
        NewJob {
            owner: self.owner,
            url: self.url.clone(),
            options,
            priority: self.priority,
        }
    }
}

/// What a message or a command line says about when to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleWords {
    pub hour: u8,
    pub minute: u8,
    pub tomorrow: bool,
    pub recurrence: Recurrence,
    pub duration: Option<Duration>,
    /// "on Friday at 20:00", "в пятницу в 20:00": once, on the next such day.
    pub on_weekday: Option<Weekday>,
    /// Word positions (whitespace-separated) that were read, so the rest can be parsed as usual.
    pub used_words: Vec<usize>,
}

fn clean_word(word: &str) -> String {
    word.trim_matches(|character: char| !character.is_alphanumeric())
        .to_lowercase()
}

/// A weekday in English or Russian, singular, plural or in the accusative ("пятницу").
pub fn parse_weekday(word: &str) -> Option<Weekday> {
    let word = clean_word(word);
    let english = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];
    let full_english = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    for ((short, day), full) in english.iter().zip(full_english) {
        if word == *short || word == full || word.strip_suffix('s') == Some(full) {
            return Some(*day);
        }
    }
    let russian = [
        ("понедельник", Weekday::Mon),
        ("вторник", Weekday::Tue),
        ("сред", Weekday::Wed),
        ("четверг", Weekday::Thu),
        ("пятниц", Weekday::Fri),
        ("суббот", Weekday::Sat),
        ("воскресень", Weekday::Sun),
    ];
    russian
        .iter()
        .find(|(stem, _)| word.starts_with(stem))
        .map(|(_, day)| *day)
}

const EVERY_WORDS: [&str; 8] = [
    "every",
    "each",
    "каждый",
    "каждую",
    "каждое",
    "каждая",
    "по",
    "каждые",
];
/// "every weekday", "по будням": Monday to Friday.
pub const WORKING_DAY_WORDS: [&str; 5] = ["weekday", "weekdays", "будням", "будние", "будний"];
/// "every weekend", "по выходным": Saturday and Sunday.
pub const WEEKEND_WORDS: [&str; 4] = ["weekend", "weekends", "выходные", "выходным"];
const DAY_WORDS: [&str; 3] = ["day", "день", "дням"];
const DAILY_WORDS: [&str; 3] = ["daily", "ежедневно", "everyday"];

/// Reads "at 20:00 for 2h", "tomorrow 21:30 for 90 min", "every Friday at 20:00 for 2 hours",
/// "every day at 7:00", "в 20:00", "завтра в 21:30", "каждую пятницу в 20:00". `None` when the
/// text names no time of day.
pub fn find_schedule_words(text: &str) -> Option<ScheduleWords> {
    let phrases = find_time_phrases(text);
    let mut time_of_day = None;
    let mut duration = None;
    let mut used_words = Vec::new();
    for phrase in &phrases {
        match &phrase.meaning {
            TimeMeaning::TimeOfDay(found) if time_of_day.is_none() => {
                time_of_day = Some(*found);
                used_words.extend(phrase.first_word..phrase.end_word);
            }
            TimeMeaning::Duration(found) if duration.is_none() => {
                duration = Some(*found);
                used_words.extend(phrase.first_word..phrase.end_word);
                // "for 2h", "на 2 часа": the preposition belongs to the duration.
                if let Some(before) = phrase.first_word.checked_sub(1)
                    && let Some(word) = text.split_whitespace().nth(before)
                    && ["for", "на"].contains(&clean_word(word).as_str())
                {
                    used_words.push(before);
                }
            }
            _ => {}
        }
    }
    let time_of_day = time_of_day?;
    let words: Vec<String> = text.split_whitespace().map(clean_word).collect();
    let mut weekdays = Vec::new();
    let mut daily = false;
    for (position, word) in words.iter().enumerate() {
        if used_words.contains(&position) {
            continue;
        }
        if DAILY_WORDS.contains(&word.as_str()) {
            daily = true;
            used_words.push(position);
        } else if EVERY_WORDS.contains(&word.as_str()) {
            let Some(following) = words.get(position + 1) else {
                continue;
            };
            let group: &[Weekday] = if WORKING_DAY_WORDS.contains(&following.as_str()) {
                &WORKING_DAYS
            } else if WEEKEND_WORDS.contains(&following.as_str()) {
                &WEEKEND_DAYS
            } else {
                &[]
            };
            if !group.is_empty() {
                for day in group {
                    if !weekdays.contains(day) {
                        weekdays.push(*day);
                    }
                }
                used_words.extend([position, position + 1]);
            } else if DAY_WORDS.contains(&following.as_str()) {
                daily = true;
                used_words.extend([position, position + 1]);
            } else if let Some(day) = parse_weekday(following) {
                if !weekdays.contains(&day) {
                    weekdays.push(day);
                }
                used_words.extend([position, position + 1]);
                // "every Monday and Friday", "каждый понедельник и пятницу".
                let mut index = position + 2;
                while let Some(word) = words.get(index) {
                    if ["and", "и", ""].contains(&word.as_str()) {
                        index += 1;
                        continue;
                    }
                    let Some(day) = parse_weekday(word) else {
                        break;
                    };
                    if !weekdays.contains(&day) {
                        weekdays.push(day);
                    }
                    used_words.extend(position + 2..=index);
                    index += 1;
                }
            }
        }
    }
    // A weekday without "every": once, on that day (full names only: "sun" may be a title).
    let mut on_weekday = None;
    if weekdays.is_empty() && !daily {
        for (position, word) in words.iter().enumerate() {
            if used_words.contains(&position) || word.chars().count() <= 3 {
                continue;
            }
            if let Some(day) = parse_weekday(word) {
                on_weekday.get_or_insert(day);
                used_words.push(position);
            }
        }
    }
    used_words.sort_unstable();
    used_words.dedup();
    weekdays.sort_by_key(|day| day.num_days_from_monday());
    let recurrence = if daily {
        Recurrence::Daily
    } else if weekdays.is_empty() {
        Recurrence::Once
    } else {
        Recurrence::Weekly { weekdays }
    };
    Some(ScheduleWords {
        hour: time_of_day.hour,
        minute: time_of_day.minute,
        tomorrow: time_of_day.tomorrow,
        recurrence,
        duration,
        on_weekday,
        used_words,
    })
}

/// The rule for what someone wrote, at `now` in `zone`: a one-time "at 20:00" is today, or
/// tomorrow when 20:00 has passed; "tomorrow 21:30" is tomorrow; recurring ones start today.
pub fn rule_from_words(
    words: &ScheduleWords,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<ScheduleRule, ScheduleError> {
    let time_of_day = NaiveTime::from_hms_opt(u32::from(words.hour), u32::from(words.minute), 0)
        .ok_or(ScheduleError::InThePast)?;
    let today = now.with_timezone(&zone).date_naive();
    let mut start_date = if words.tomorrow {
        today.succ_opt().unwrap_or(today)
    } else {
        today
    };
    if words.recurrence == Recurrence::Once
        && resolve_local_time(zone, start_date.and_time(time_of_day)) <= now
    {
        start_date = start_date.succ_opt().unwrap_or(start_date);
    }
    if let (Recurrence::Once, Some(day)) = (&words.recurrence, words.on_weekday) {
        // The first such day from here on whose time is still ahead (at most a week and a day).
        for _ in 0..8 {
            if start_date.weekday() == day
                && resolve_local_time(zone, start_date.and_time(time_of_day)) > now
            {
                break;
            }
            start_date = start_date.succ_opt().unwrap_or(start_date);
        }
    }
    Ok(ScheduleRule {
        time_zone: zone.name().to_string(),
        start_date,
        time_of_day,
        recurrence: words.recurrence.clone(),
    })
}

/// "Fri 11 Dec 20:00" in the schedule's zone.
pub fn format_local_occurrence(instant: DateTime<Utc>, zone: Tz) -> String {
    instant
        .with_timezone(&zone)
        .format("%a %d %b %H:%M")
        .to_string()
}

/// "every Friday at 20:00 (Europe/Berlin)", "once at 20:00 (UTC)".
pub fn describe_rule(rule: &ScheduleRule) -> String {
    format!(
        "{} at {} ({})",
        rule.recurrence.describe(),
        rule.time_of_day.format("%H:%M"),
        rule.time_zone
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use proptest::prelude::*;

    fn berlin() -> Tz {
        parse_time_zone("Europe/Berlin").expect("zone")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn weekly_rule(day: Weekday, hour: u32, minute: u32, start: &str) -> ScheduleRule {
        ScheduleRule {
            time_zone: "Europe/Berlin".to_string(),
            start_date: start.parse().expect("date"),
            time_of_day: NaiveTime::from_hms_opt(hour, minute, 0).expect("time"),
            recurrence: Recurrence::Weekly {
                weekdays: vec![day],
            },
        }
    }

    fn schedule(rule: ScheduleRule, duration_seconds: u64, now: DateTime<Utc>) -> Schedule {
        Schedule::new(
            JobId::from_u32(1),
            NewSchedule {
                owner: JobOwner {
                    user_id: 1,
                    chat_id: 1,
                },
                url: "https://example.com/live.m3u8".to_string(),
                options: RecordingOptions::default(),
                priority: JobPriority::Normal,
                rule,
                duration: Duration::from_secs(duration_seconds),
                lead: DEFAULT_SCHEDULE_LEAD,
            },
            now,
        )
        .expect("schedule")
    }

    #[test]
    fn phrases_become_schedules() {
        let words = find_schedule_words("https://x.tv/a.m3u8 at 20:00 for 2h").expect("words");
        assert_eq!((words.hour, words.minute), (20, 0));
        assert_eq!(words.recurrence, Recurrence::Once);
        assert_eq!(words.duration, Some(Duration::from_secs(7200)));
        assert_eq!(words.used_words, vec![1, 2, 3, 4]);

        let words = find_schedule_words("link tomorrow 21:30 for 90 min").expect("words");
        assert!(words.tomorrow);
        assert_eq!(words.duration, Some(Duration::from_secs(5400)));

        let words = find_schedule_words("link every Friday at 20:00 for 2 hours").expect("words");
        assert_eq!(
            words.recurrence,
            Recurrence::Weekly {
                weekdays: vec![Weekday::Fri]
            }
        );
        assert_eq!(words.used_words, vec![1, 2, 3, 4, 5, 6, 7]);

        let words = find_schedule_words("link every day at 7:00 for 30 min").expect("words");
        assert_eq!(words.recurrence, Recurrence::Daily);
        assert_eq!((words.hour, words.minute), (7, 0));
        assert_eq!(words.duration, Some(Duration::from_secs(1800)));

        let words = find_schedule_words("ссылка в 20:00 на 2 часа").expect("words");
        assert_eq!((words.hour, words.minute, words.tomorrow), (20, 0, false));
        assert_eq!(words.duration, Some(Duration::from_secs(7200)));

        let words = find_schedule_words("ссылка завтра в 21:30").expect("words");
        assert!(words.tomorrow);
        assert_eq!(words.duration, None);

        let words = find_schedule_words("ссылка каждую пятницу в 20:00 на 2 часа").expect("words");
        assert_eq!(
            words.recurrence,
            Recurrence::Weekly {
                weekdays: vec![Weekday::Fri]
            }
        );
        let words = find_schedule_words("link every monday and friday at 8pm").expect("words");
        assert_eq!(
            words.recurrence,
            Recurrence::Weekly {
                weekdays: vec![Weekday::Mon, Weekday::Fri]
            }
        );
        assert_eq!(words.hour, 20);
        assert!(find_schedule_words("link for 2h").is_none());
    }

    /// Finding (attack 16): "/timezone UTC+3" and "/timezone Moscow" were refused; "at 20:00
    /// UTC+3" in a message was ignored. Offsets and cities are zones; nonsense still is not.
    #[test]
    fn offsets_and_cities_are_time_zones() {
        for (given, expected) in [
            ("UTC+3", "Etc/GMT-3"),
            ("utc+03:00", "Etc/GMT-3"),
            ("GMT-5", "Etc/GMT+5"),
            ("+0300", "Etc/GMT-3"),
            ("UTC+0", "Etc/GMT"),
            ("UTC+14", "Etc/GMT-14"),
            ("Moscow", "Europe/Moscow"),
            ("new_york", "America/New_York"),
            ("Europe/Berlin", "Europe/Berlin"),
        ] {
            assert_eq!(
                parse_time_zone(given).map(|zone| zone.name()),
                Ok(expected),
                "{given}"
            );
        }
        // Shown the way it was written, not with the POSIX sign.
        assert_eq!(time_zone_label("Etc/GMT-3"), "UTC+3");
        assert_eq!(time_zone_label("Etc/GMT+5"), "UTC-5");
        assert_eq!(time_zone_label("Etc/GMT"), "UTC");
        assert_eq!(time_zone_label("Europe/Berlin"), "Europe/Berlin");
        for given in [
            "UTC+5:30",
            "UTC+15",
            "UTC-13",
            "UTC+",
            "+",
            "../../etc/passwd",
            "Atlantis",
            "",
            "UTC+999999999999999999999",
        ] {
            assert!(parse_time_zone(given).is_err(), "{given}");
        }
    }

    /// Finding (attack 16): "on Friday at 20:00" / "в пятницу в 20:00" was scheduled today.
    #[test]
    fn a_named_day_without_every_is_once_on_that_day() {
        let words = find_schedule_words("link on Friday at 20:00 for 2h").expect("words");
        assert_eq!(words.recurrence, Recurrence::Once);
        assert_eq!(words.on_weekday, Some(Weekday::Fri));
        // Saturday 5 Dec 2026, 10:00 in Berlin: the next Friday is the 11th.
        let now = utc("2026-12-05T09:00:00Z");
        let rule = rule_from_words(&words, berlin(), now).expect("rule");
        assert_eq!(rule.start_date.to_string(), "2026-12-11");
        // Saturday itself, before the time: today; after it: a week later.
        let words = find_schedule_words("ссылка в субботу в 20:00").expect("words");
        let rule = rule_from_words(&words, berlin(), now).expect("rule");
        assert_eq!(rule.start_date.to_string(), "2026-12-05");
        let late = utc("2026-12-05T20:00:00Z");
        let rule = rule_from_words(&words, berlin(), late).expect("rule");
        assert_eq!(rule.start_date.to_string(), "2026-12-12");
        // Short forms are not read alone ("Sun" may be a title).
        let words = find_schedule_words("Sun live at 20:00").expect("words");
        assert_eq!(words.on_weekday, None);
    }

    /// Finding (attack 16): "every weekday at 20:00", "every weekend", "по будням",
    /// "каждые выходные" were read as once (today).
    #[test]
    fn weekdays_and_weekends_repeat() {
        let working = Recurrence::Weekly {
            weekdays: WORKING_DAYS.to_vec(),
        };
        let weekend = Recurrence::Weekly {
            weekdays: vec![Weekday::Sat, Weekday::Sun],
        };
        for (text, expected) in [
            ("link every weekday at 20:00 for 2h", &working),
            ("link every weekdays at 20:00", &working),
            ("ссылка по будням в 20:00", &working),
            ("link every weekend at 20:00", &weekend),
            ("ссылка каждые выходные в 20:00", &weekend),
            ("ссылка по выходным в 20:00", &weekend),
        ] {
            let words = find_schedule_words(text).expect("words");
            assert_eq!(&words.recurrence, expected, "{text}");
        }
    }

    #[test]
    fn a_past_time_today_is_tomorrow() {
        let words = find_schedule_words("at 20:00").expect("words");
        let now = utc("2026-12-04T20:30:00Z"); // 21:30 in Berlin
        let rule = rule_from_words(&words, berlin(), now).expect("rule");
        assert_eq!(
            rule.start_date,
            "2026-12-05".parse::<NaiveDate>().expect("date")
        );
        let now = utc("2026-12-04T10:00:00Z");
        let rule = rule_from_words(&words, berlin(), now).expect("rule");
        assert_eq!(
            rule.next_occurrence_after(now),
            Some(utc("2026-12-04T19:00:00Z"))
        );
    }

    #[test]
    fn weekly_occurrences_keep_local_time_across_dst() {
        // Sunday 20:00 Berlin: CEST (+2) before 25 Oct 2026, CET (+1) after.
        let rule = weekly_rule(Weekday::Sun, 20, 0, "2026-10-01");
        let first = rule
            .next_occurrence_after(utc("2026-10-17T00:00:00Z"))
            .expect("next");
        assert_eq!(first, utc("2026-10-18T18:00:00Z"));
        let second = rule.next_occurrence_after(first).expect("next");
        assert_eq!(second, utc("2026-10-25T19:00:00Z"));
        assert_eq!(second.with_timezone(&berlin()).hour(), 20);
    }

    #[test]
    fn a_missing_local_time_moves_forward_and_an_ambiguous_one_takes_the_first() {
        // 29 March 2026: 02:00 → 03:00 in Berlin.
        let missing = resolve_local_time(
            berlin(),
            "2026-03-29T02:30:00"
                .parse::<NaiveDateTime>()
                .expect("time"),
        );
        assert_eq!(missing, utc("2026-03-29T01:30:00Z")); // 03:30 CEST
        // 25 October 2026: 02:30 happens twice; the first is CEST.
        let ambiguous = resolve_local_time(
            berlin(),
            "2026-10-25T02:30:00"
                .parse::<NaiveDateTime>()
                .expect("time"),
        );
        assert_eq!(ambiguous, utc("2026-10-25T00:30:00Z"));
    }

    #[test]
    fn due_occurrences_start_late_within_the_duration_and_skip_older_ones() {
        let rule = ScheduleRule {
            recurrence: Recurrence::Daily,
            ..weekly_rule(Weekday::Mon, 20, 0, "2026-12-01")
        };
        let created = utc("2026-12-01T12:00:00Z");
        let daily = schedule(rule, 3600, created);
        assert_eq!(daily.next_occurrence_at, Some(utc("2026-12-01T19:00:00Z")));
        assert!(daily.take_due(utc("2026-12-01T18:58:59Z")).is_none());
        let on_time = daily.take_due(utc("2026-12-01T18:59:00Z")).expect("due");
        let started = on_time.start.clone().expect("start");
        assert_eq!(started.late_by, Duration::ZERO);
        assert_eq!(
            on_time.next_occurrence_at,
            Some(utc("2026-12-02T19:00:00Z"))
        );
        // Down for three days; back at 19:30 UTC on the 4th: two skipped, the 4th's started late.
        let late = daily.take_due(utc("2026-12-04T19:30:00Z")).expect("due");
        assert_eq!(late.skipped_count, 3);
        let started = late.start.clone().expect("start");
        assert_eq!(started.scheduled_at, utc("2026-12-04T19:00:00Z"));
        assert_eq!(started.late_by, Duration::from_secs(1800));
        let job = daily.job_for(&started);
        assert_eq!(
            job.options.maximum_duration,
            Some(Duration::from_secs(1800))
        );
        assert_eq!(job.options.wait_for_live, Duration::from_secs(1800 + 60));
        let advanced = daily.advanced(&late, Some(JobId::from_u32(9)));
        assert_eq!(advanced.occurrences_skipped, 3);
        assert!(advanced.take_due(utc("2026-12-04T19:30:00Z")).is_none());
    }

    #[test]
    fn a_one_time_schedule_ends_after_its_occurrence() {
        let rule = ScheduleRule {
            recurrence: Recurrence::Once,
            ..weekly_rule(Weekday::Mon, 20, 0, "2026-12-01")
        };
        let once = schedule(rule, 60, utc("2026-12-01T12:00:00Z"));
        let decision = once.take_due(utc("2026-12-01T19:00:00Z")).expect("due");
        assert!(decision.start.is_some());
        assert_eq!(decision.next_occurrence_at, None);
        assert!(!once.advanced(&decision, None).is_active());
        let skipped = once.take_due(utc("2026-12-02T19:00:00Z")).expect("due");
        assert!(skipped.start.is_none());
        assert_eq!(skipped.skipped_count, 1);
    }

    #[test]
    fn unknown_zones_are_refused_and_names_are_case_insensitive() {
        assert!(parse_time_zone("europe/berlin").is_ok());
        assert!(parse_time_zone("Mars/Olympus").is_err());
        assert!(parse_time_zone("").is_err());
    }

    proptest! {
        /// Whatever follows /timezone, or whatever a message says, nothing panics.
        #[test]
        fn zones_and_schedule_words_never_panic(
            text in "\\PC{0,60}",
            offset in "(UTC|GMT|utc|)[+\\-−][0-9:]{0,8}",
            minutes in 0i64..(3 * 366 * 24 * 60),
        ) {
            let _ = parse_time_zone(&text);
            let _ = parse_time_zone(&offset);
            if let Some(words) = find_schedule_words(&text) {
                let now = utc("2026-01-01T00:00:00Z") + chrono::Duration::minutes(minutes);
                let _ = rule_from_words(&words, berlin(), now);
            }
        }

        #[test]
        fn next_occurrence_is_after_and_at_the_local_time(
            days in 0i64..800,
            minute_of_day in 0u32..1440,
            start_hour in 0u32..24,
            start_minute in 0u32..60,
            zone_index in 0usize..4,
            weekday_mask in 1u8..128,
        ) {
            let zones = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"];
            let zone = parse_time_zone(zones[zone_index]).expect("zone");
            let weekdays: Vec<Weekday> = (0..7u8)
                .filter(|bit| weekday_mask & (1 << bit) != 0)
                .filter_map(|bit| Weekday::try_from(bit).ok())
                .collect();
            let rule = ScheduleRule {
                time_zone: zones[zone_index].to_string(),
                start_date: "2026-01-01".parse().expect("date"),
                time_of_day: NaiveTime::from_hms_opt(start_hour, start_minute, 0).expect("time"),
                recurrence: Recurrence::Weekly { weekdays: weekdays.clone() },
            };
            let after = utc("2026-01-01T00:00:00Z")
                + chrono::Duration::days(days)
                + chrono::Duration::minutes(i64::from(minute_of_day));
            let next = rule.next_occurrence_after(after).expect("an occurrence within a week");
            prop_assert!(next > after);
            prop_assert!(next - after <= chrono::Duration::days(8));
            let local = next.with_timezone(&zone);
            prop_assert!(weekdays.contains(&local.weekday()));
            // Exactly the wall-clock time, unless it fell in a gap (then moved forward).
            let wanted = rule.time_of_day;
            let exists = zone.from_local_datetime(&local.date_naive().and_time(wanted)).earliest();
            match exists {
                Some(instant) => prop_assert_eq!(instant.with_timezone(&Utc), next),
                None => prop_assert!(local.time() > wanted),
            }
            // Nothing was jumped: no occurrence between `after` and `next`.
            let mut probe = after;
            while let Some(candidate) = rule.next_occurrence_after(probe) {
                if candidate >= next { break; }
                prop_assert!(false, "skipped {candidate}");
                probe = candidate;
            }
        }

        #[test]
        fn take_due_starts_each_occurrence_at_most_once(
            step_minutes in prop::collection::vec(1i64..3000, 1..40),
        ) {
            let rule = ScheduleRule {
                recurrence: Recurrence::Daily,
                ..weekly_rule(Weekday::Mon, 20, 0, "2026-03-20")
            };
            let mut now = utc("2026-03-20T00:00:00Z");
            let mut current = schedule(rule, 3600, now);
            let mut started = Vec::new();
            for step in step_minutes {
                now += chrono::Duration::minutes(step);
                if let Some(decision) = current.take_due(now) {
                    if let Some(occurrence) = &decision.start {
                        prop_assert!(occurrence.late_by < Duration::from_secs(3600));
                        prop_assert!(!started.contains(&occurrence.scheduled_at));
                        started.push(occurrence.scheduled_at);
                    }
                    current = current.advanced(&decision, None);
                    prop_assert!(current.next_start_at().is_some_and(|at| at > now));
                }
            }
        }
    }
}
