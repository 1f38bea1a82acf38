//! One parser for commands and plain English. Pure: text in, intent out.
//!
//! `/record https://x/live.m3u8 2h high`, `record https://x/live.m3u8 for 2 hours high quality`,
//! `start recording https://… audio only`, `stop A3F2B1C9`, `pause it`, `what's recording?` and a
//! bare link all land here. Anything it cannot understand gets `NotUnderstood`, which the bot
//! answers with a hint and an example, never silence.

use std::time::Duration;

use streambot_core::{JobId, Quality, parse_duration_text};

/// Which job a control command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTarget {
    /// The user named it.
    Id(JobId),
    /// "stop", "pause it": the user's only live job, or ask which.
    Unspecified,
}

/// A recording request as the user phrased it (the URL is checked later, by the recorder's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRequest {
    pub url: String,
    pub duration: Option<Duration>,
    pub quality: Quality,
}

/// Admin-only commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    Overview,
    AllJobs,
    StopAny(JobId),
    AddVip(i64),
    RemoveVip(i64),
}

/// What the user wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotCommand {
    Start,
    Help,
    Record(RecordRequest),
    Stop(JobTarget),
    Pause(JobTarget),
    Resume(JobTarget),
    Status(JobTarget),
    List,
    Cancel(JobTarget),
    /// Delete a finished recording's files (local and remote copies).
    Delete(JobTarget),
    Admin(AdminCommand),
}

/// Why a message that looked like a command could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("record needs a link")]
    RecordWithoutUrl,
    #[error("{0}")]
    BadDuration(String),
    #[error("{0}")]
    BadQuality(String),
    #[error("{given:?} is not a job id; job ids are 8 characters like A3F2B1C9")]
    BadJobId { given: String },
    #[error("{given:?} is not a Telegram user id")]
    BadUserId { given: String },
    #[error("unknown admin command {given:?}")]
    UnknownAdminCommand { given: String },
}

/// The result of reading one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedMessage {
    Command(BotCommand),
    /// It was a command, but something in it is wrong: say what.
    Invalid(CommandError),
    /// Not a command at all: answer with a hint.
    NotUnderstood,
}

const RECORD_WORDS: [&str; 8] = [
    "record", "rec", "capture", "save", "grab", "start", "download", "tape",
];
const STOP_WORDS: [&str; 4] = ["stop", "end", "finish", "halt"];
const PAUSE_WORDS: [&str; 2] = ["pause", "hold"];
const RESUME_WORDS: [&str; 4] = ["resume", "continue", "unpause", "restart"];
const STATUS_WORDS: [&str; 3] = ["status", "progress", "info"];
const LIST_WORDS: [&str; 3] = ["list", "jobs", "recordings"];

/// Splits off a leading `/command` (with an optional `@botname`) in lower case.
fn split_slash_command<'a>(text: &'a str, bot_username: Option<&str>) -> Option<(String, &'a str)> {
    let rest = text.strip_prefix('/')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, arguments) = rest.split_at(end);
    let (name, addressed_to) = match word.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (word, None),
    };
    if let (Some(target), Some(username)) = (addressed_to, bot_username)
        && !target.eq_ignore_ascii_case(username.trim_start_matches('@'))
    {
        // A command for another bot in a group.
        return Some((String::new(), arguments));
    }
    Some((name.to_ascii_lowercase(), arguments))
}

fn looks_like_url(token: &str) -> bool {
    let lowered = token.to_ascii_lowercase();
    lowered.starts_with("http://") || lowered.starts_with("https://") || lowered.contains("://")
}

fn trim_punctuation(token: &str) -> &str {
    token.trim_matches(|character: char| {
        matches!(
            character,
            ',' | '!' | '?' | ';' | '"' | '\'' | '(' | ')' | '<' | '>'
        )
    })
}

/// Words of a message, lower-cased, punctuation trimmed, contractions split ("what's" → "what").
fn words_of(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|token| {
            let trimmed = trim_punctuation(token);
            let lowered = trimmed.to_lowercase();
            match lowered.split_once('\'') {
                Some((head, _)) => head.to_string(),
                None => match lowered.split_once('’') {
                    Some((head, _)) => head.to_string(),
                    None => lowered,
                },
            }
        })
        .filter(|word| !word.is_empty())
        .collect()
}

/// Reads duration and quality out of the words around a link. Returns the leftovers too.
fn read_recording_options(
    words: &[String],
) -> Result<(Option<Duration>, Quality, Vec<String>), CommandError> {
    let mut duration: Option<Duration> = None;
    let mut quality = Quality::Best;
    let mut leftovers = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let word = words[index].as_str();
        let next = words.get(index + 1).map(String::as_str);
        // "audio only", "sound only", "audio"
        if matches!(
            word,
            "audio" | "sound" | "music" | "audio-only" | "audioonly"
        ) {
            quality = Quality::Audio;
            index += if next == Some("only") { 2 } else { 1 };
            continue;
        }
        if word == "only" {
            index += 1;
            continue;
        }
        // "high quality", "720p", "best"
        if let Ok(parsed) = word.parse::<Quality>() {
            // A bare number is a duration (minutes), not a height, unless it ends in `p`.
            let is_bare_number = word.bytes().all(|byte| byte.is_ascii_digit());
            if !is_bare_number {
                quality = parsed;
                index += 1;
                continue;
            }
        }
        // Durations: "2h", "90 min", "1h30m", "1.5 hours", "2 hours", "1:30:00", bare "90".
        let starts_with_digit = word
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_digit());
        if starts_with_digit {
            let two_word = next.map(|unit| format!("{word} {unit}"));
            if let Some(candidate) = two_word.as_deref()
                && next.is_some_and(|unit| unit.chars().all(|c| c.is_ascii_alphabetic()))
                && let Ok(parsed) = parse_duration_text(candidate)
            {
                duration = Some(parsed);
                index += 2;
                continue;
            }
            match parse_duration_text(word) {
                Ok(parsed) => {
                    duration = Some(parsed);
                    index += 1;
                    continue;
                }
                Err(error) => {
                    let is_quality_like = word.ends_with('p');
                    if is_quality_like {
                        return Err(CommandError::BadQuality(format!(
                            "{word:?} is not a quality; use best, high, medium, low, worst, audio or a height like 720p"
                        )));
                    }
                    return Err(CommandError::BadDuration(error.to_string()));
                }
            }
        }
        if word == "an" && next == Some("hour") {
            duration = Some(Duration::from_secs(3600));
            index += 2;
            continue;
        }
        if word == "half"
            && next == Some("an")
            && words.get(index + 2).map(String::as_str) == Some("hour")
        {
            duration = Some(Duration::from_secs(1800));
            index += 3;
            continue;
        }
        leftovers.push(word.to_string());
        index += 1;
    }
    Ok((duration, quality, leftovers))
}

fn parse_job_target(words: &[String]) -> Result<JobTarget, CommandError> {
    for word in words {
        if let Ok(id) = word.parse::<JobId>() {
            return Ok(JobTarget::Id(id));
        }
    }
    // A word that looks like an attempt at an id (8 chars with digits) is a mistake worth naming.
    if let Some(attempt) = words.iter().find(|word| {
        word.len() >= 6 && word.len() <= 10 && word.chars().any(|c| c.is_ascii_digit())
    }) {
        return Err(CommandError::BadJobId {
            given: attempt.to_uppercase(),
        });
    }
    Ok(JobTarget::Unspecified)
}

fn parse_record(text_after_command: &str) -> ParsedMessage {
    let tokens: Vec<&str> = text_after_command.split_whitespace().collect();
    let Some(url_token) = tokens
        .iter()
        .find(|token| looks_like_url(trim_punctuation(token)))
    else {
        return ParsedMessage::Invalid(CommandError::RecordWithoutUrl);
    };
    let url = trim_punctuation(url_token).to_string();
    let rest: String = tokens
        .iter()
        .filter(|token| *token != url_token)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    match read_recording_options(&words_of(&rest)) {
        Ok((duration, quality, _)) => ParsedMessage::Command(BotCommand::Record(RecordRequest {
            url,
            duration,
            quality,
        })),
        Err(error) => ParsedMessage::Invalid(error),
    }
}

fn control(words: &[String], make: fn(JobTarget) -> BotCommand) -> ParsedMessage {
    match parse_job_target(words) {
        Ok(target) => ParsedMessage::Command(make(target)),
        Err(error) => ParsedMessage::Invalid(error),
    }
}

fn parse_admin(words: &[String]) -> ParsedMessage {
    let subcommand = words.first().map(String::as_str).unwrap_or("");
    let argument = words.get(1).map(String::as_str).unwrap_or("");
    let user_id = || {
        argument
            .parse::<i64>()
            .map_err(|_| CommandError::BadUserId {
                given: argument.to_string(),
            })
    };
    let command = match subcommand {
        "" | "stats" | "overview" => Ok(AdminCommand::Overview),
        "jobs" | "all" | "list" => Ok(AdminCommand::AllJobs),
        "stop" => argument
            .parse::<JobId>()
            .map(AdminCommand::StopAny)
            .map_err(|_| CommandError::BadJobId {
                given: argument.to_uppercase(),
            }),
        "vip" | "addvip" | "add-vip" => user_id().map(AdminCommand::AddVip),
        "unvip" | "removevip" | "remove-vip" => user_id().map(AdminCommand::RemoveVip),
        other => Err(CommandError::UnknownAdminCommand {
            given: other.to_string(),
        }),
    };
    match command {
        Ok(command) => ParsedMessage::Command(BotCommand::Admin(command)),
        Err(error) => ParsedMessage::Invalid(error),
    }
}

/// Reads one message. `bot_username` lets `/stop@OtherBot` in a group be ignored.
pub fn parse_message(text: &str, bot_username: Option<&str>) -> ParsedMessage {
    let text = text.trim();
    if text.is_empty() {
        return ParsedMessage::NotUnderstood;
    }
    if let Some((name, arguments)) = split_slash_command(text, bot_username) {
        let words = words_of(arguments);
        return match name.as_str() {
            "" => ParsedMessage::NotUnderstood,
            "start" => ParsedMessage::Command(BotCommand::Start),
            "help" => ParsedMessage::Command(BotCommand::Help),
            "record" | "rec" => parse_record(arguments),
            "stop" => control(&words, BotCommand::Stop),
            "pause" => control(&words, BotCommand::Pause),
            "resume" => control(&words, BotCommand::Resume),
            "status" => control(&words, BotCommand::Status),
            "list" | "jobs" => ParsedMessage::Command(BotCommand::List),
            "cancel" => control(&words, BotCommand::Cancel),
            "delete" | "remove" => control(&words, BotCommand::Delete),
            "admin" => parse_admin(&words),
            _ => ParsedMessage::NotUnderstood,
        };
    }
    parse_plain_english(text)
}

fn parse_plain_english(text: &str) -> ParsedMessage {
    let words = words_of(text);
    let has_url = text
        .split_whitespace()
        .any(|token| looks_like_url(trim_punctuation(token)));
    let contains =
        |candidates: &[&str]| words.iter().any(|word| candidates.contains(&word.as_str()));
    let first_word = words.first().map(String::as_str).unwrap_or("");

    if has_url {
        // A link with or without "record": record it (a link is what people send to this bot).
        return parse_record(text);
    }
    // Questions about what is going on.
    let asks_what = contains(&["what", "which", "whats", "show"]);
    if (asks_what && contains(&["recording", "running", "jobs", "going"]))
        || (contains(&LIST_WORDS) && !contains(&STOP_WORDS))
    {
        return ParsedMessage::Command(BotCommand::List);
    }
    if STOP_WORDS.contains(&first_word) || (contains(&STOP_WORDS) && contains(&["recording", "it"]))
    {
        return control(&words, BotCommand::Stop);
    }
    if PAUSE_WORDS.iter().any(|word| contains(&[word])) {
        return control(&words, BotCommand::Pause);
    }
    if RESUME_WORDS.iter().any(|word| contains(&[word])) {
        return control(&words, BotCommand::Resume);
    }
    if STATUS_WORDS.iter().any(|word| contains(&[word]))
        || (contains(&["how"]) && contains(&["going", "doing"]))
    {
        return control(&words, BotCommand::Status);
    }
    if contains(&["help", "how", "commands"]) || contains(&["hi", "hello", "hey"]) {
        return ParsedMessage::Command(BotCommand::Help);
    }
    if first_word == "cancel" {
        return control(&words, BotCommand::Cancel);
    }
    if matches!(first_word, "delete" | "remove") {
        return control(&words, BotCommand::Delete);
    }
    if RECORD_WORDS.contains(&first_word) {
        return ParsedMessage::Invalid(CommandError::RecordWithoutUrl);
    }
    // A bare job id: its status.
    if words.len() == 1
        && let Ok(id) = first_word.parse::<JobId>()
    {
        return ParsedMessage::Command(BotCommand::Status(JobTarget::Id(id)));
    }
    ParsedMessage::NotUnderstood
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(url: &str, duration_seconds: Option<u64>, quality: Quality) -> ParsedMessage {
        ParsedMessage::Command(BotCommand::Record(RecordRequest {
            url: url.to_string(),
            duration: duration_seconds.map(Duration::from_secs),
            quality,
        }))
    }

    fn id(text: &str) -> JobId {
        text.parse().expect("valid id")
    }

    #[test]
    fn slash_commands() {
        let url = "https://x.example/live.m3u8";
        assert_eq!(
            parse_message(&format!("/record {url} 2h high"), None),
            record(url, Some(7200), Quality::High)
        );
        assert_eq!(
            parse_message(&format!("/record {url}"), None),
            record(url, None, Quality::Best)
        );
        assert_eq!(
            parse_message(
                &format!("/record@StreamBot {url} 90 720p"),
                Some("StreamBot")
            ),
            record(url, Some(5400), Quality::Height(720))
        );
        assert_eq!(
            parse_message(&format!("/record {url} audio"), None),
            record(url, None, Quality::Audio)
        );
        assert_eq!(
            parse_message("/record@OtherBot https://a/b.m3u8", Some("StreamBot")),
            ParsedMessage::NotUnderstood
        );
        assert_eq!(
            parse_message("/stop a3f2b1c9", None),
            ParsedMessage::Command(BotCommand::Stop(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("/stop", None),
            ParsedMessage::Command(BotCommand::Stop(JobTarget::Unspecified))
        );
        assert_eq!(
            parse_message("/pause A3F2B1C9", None),
            ParsedMessage::Command(BotCommand::Pause(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("/list", None),
            ParsedMessage::Command(BotCommand::List)
        );
        assert_eq!(
            parse_message("/start", None),
            ParsedMessage::Command(BotCommand::Start)
        );
        assert_eq!(
            parse_message("/help", None),
            ParsedMessage::Command(BotCommand::Help)
        );
        assert_eq!(
            parse_message("/admin vip 12345", None),
            ParsedMessage::Command(BotCommand::Admin(AdminCommand::AddVip(12345)))
        );
        assert_eq!(
            parse_message("/admin stop deadbeef", None),
            ParsedMessage::Command(BotCommand::Admin(AdminCommand::StopAny(id("DEADBEEF"))))
        );
    }

    #[test]
    fn plain_english() {
        let url = "https://x.example/live.m3u8";
        assert_eq!(
            parse_message(&format!("record {url} for 2 hours high quality"), None),
            record(url, Some(7200), Quality::High)
        );
        assert_eq!(
            parse_message(&format!("start recording {url} audio only"), None),
            record(url, None, Quality::Audio)
        );
        assert_eq!(
            parse_message(&format!("record {url} 90 min"), None),
            record(url, Some(5400), Quality::Best)
        );
        assert_eq!(
            parse_message(&format!("please record {url} for an hour in 720p"), None),
            record(url, Some(3600), Quality::Height(720))
        );
        assert_eq!(parse_message(url, None), record(url, None, Quality::Best));
        assert_eq!(
            parse_message(&format!("Record this: {url}, 1h30m, low"), None),
            record(url, Some(5400), Quality::Low)
        );
        assert_eq!(
            parse_message("stop A3F2B1C9", None),
            ParsedMessage::Command(BotCommand::Stop(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("pause it", None),
            ParsedMessage::Command(BotCommand::Pause(JobTarget::Unspecified))
        );
        assert_eq!(
            parse_message("resume it please", None),
            ParsedMessage::Command(BotCommand::Resume(JobTarget::Unspecified))
        );
        assert_eq!(
            parse_message("what's recording?", None),
            ParsedMessage::Command(BotCommand::List)
        );
        assert_eq!(
            parse_message("What is recording right now", None),
            ParsedMessage::Command(BotCommand::List)
        );
        assert_eq!(
            parse_message("how is A3F2B1C9 doing?", None),
            ParsedMessage::Command(BotCommand::Status(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("a3f2b1c9", None),
            ParsedMessage::Command(BotCommand::Status(JobTarget::Id(id("A3F2B1C9"))))
        );
        assert_eq!(
            parse_message("hello", None),
            ParsedMessage::Command(BotCommand::Help)
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse_message("/record", None),
            ParsedMessage::Invalid(CommandError::RecordWithoutUrl)
        );
        assert_eq!(
            parse_message("record the match tonight", None),
            ParsedMessage::Invalid(CommandError::RecordWithoutUrl)
        );
        assert!(matches!(
            parse_message("/record https://x/a.m3u8 99999h", None),
            ParsedMessage::Invalid(CommandError::BadDuration(_))
        ));
        assert!(matches!(
            parse_message("/record https://x/a.m3u8 5p", None),
            ParsedMessage::Invalid(CommandError::BadQuality(_))
        ));
        assert!(matches!(
            parse_message("/stop A3F2B1", None),
            ParsedMessage::Invalid(CommandError::BadJobId { .. })
        ));
        assert!(matches!(
            parse_message("/admin vip bob", None),
            ParsedMessage::Invalid(CommandError::BadUserId { .. })
        ));
        assert_eq!(
            parse_message("the weather is nice", None),
            ParsedMessage::NotUnderstood
        );
        assert_eq!(
            parse_message("/frobnicate", None),
            ParsedMessage::NotUnderstood
        );
        assert_eq!(parse_message("   ", None), ParsedMessage::NotUnderstood);
    }

    fn quality_strategy() -> impl Strategy<Value = Quality> {
        prop_oneof![
            Just(Quality::Best),
            Just(Quality::High),
            Just(Quality::Medium),
            Just(Quality::Low),
            Just(Quality::Worst),
            Just(Quality::Audio),
            (1u32..=9).prop_map(|index| Quality::Height(index * 120)),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let _ = parse_message(&text, Some("StreamBot"));
        }

        /// Whatever order a user puts link, duration and quality in, with either spelling of the
        /// command, the request comes out the same.
        #[test]
        fn record_requests_round_trip(
            path in "[a-z0-9]{1,12}",
            hours in 0u64..5,
            minutes in 0u64..60,
            quality in quality_strategy(),
            order in 0usize..3,
            slash in proptest::bool::ANY,
        ) {
            let url = format!("https://cdn.example/{path}/index.m3u8");
            let total_minutes = hours * 60 + minutes;
            let duration_text = if total_minutes == 0 { None } else if hours > 0 && minutes > 0 {
                Some(format!("{hours}h{minutes}m"))
            } else if hours > 0 { Some(format!("{hours}h")) } else { Some(format!("{minutes}min")) };
            let quality_text = quality.to_string();
            let mut pieces = vec![url.clone(), quality_text];
            if let Some(duration_text) = &duration_text { pieces.push(duration_text.clone()); }
            let piece_count = pieces.len();
            pieces.rotate_left(order % piece_count);
            let command = if slash { "/record" } else { "record" };
            let text = format!("{command} {}", pieces.join(" "));
            let expected = ParsedMessage::Command(BotCommand::Record(RecordRequest {
                url,
                duration: (total_minutes > 0).then(|| Duration::from_secs(total_minutes * 60)),
                quality,
            }));
            prop_assert_eq!(parse_message(&text, None), expected, "{}", text);
        }

        #[test]
        fn job_ids_in_any_case_are_understood(value in proptest::num::u32::ANY, upper in proptest::bool::ANY) {
            let job = JobId::from_u32(value);
            let written = if upper { job.to_string() } else { job.to_string().to_lowercase() };
            prop_assert_eq!(
                parse_message(&format!("/stop {written}"), None),
                ParsedMessage::Command(BotCommand::Stop(JobTarget::Id(job)))
            );
        }
    }
}
