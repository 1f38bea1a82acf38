//! Time as people write it, in English and Russian: the one understanding of durations shared by
//! the CLI (`--for`) and the bot.
//!
//! Durations: `2h`, `90m`, `90 min`, `1h30m`, `2h15m`, `1h30`, `1.5 hours`, `1 hour 30 minutes`,
//! `1 hour and 30 minutes`, `an hour and a half`, `half an hour`, `45s`, `1:30:00`, `10:00`
//! (mm:ss), `на 10 секунд`, `2 часа`, `полтора часа`, `полчаса`, `1 ч 30 мин`; a bare number is
//! minutes. Times of day are told apart: `at 20:00`, `starts at 8pm`, `tomorrow 21:30`,
//! `в 20:00`, `завтра в 21:30`, `в 2 часа` (a time of day is never read as a duration).
//! `format_duration_with_units` writes durations (`1 h 30 min`, `45 s`) that read back to
//! themselves.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationTextError {
    #[error("{given:?} is not a duration; write it like 2h, 90m, 1h30m or 45s")]
    Unrecognised { given: String },
    #[error("a duration must be more than zero; got {given:?}")]
    Zero { given: String },
    #[error("{given:?} is longer than the longest allowed recording ({maximum_hours} hours)")]
    TooLong { given: String, maximum_hours: u64 },
    #[error("{given:?} is a time of day, not a duration; write how long to record, like 2h")]
    TimeOfDay { given: String },
}

/// The longest duration accepted anywhere: a week. Longer inputs are almost surely typos.
pub const MAXIMUM_DURATION_HOURS: u64 = 24 * 7;

/// A time of day someone wrote ("at 20:00", "tomorrow 21:30"), in their own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
    /// "tomorrow", "завтра".
    pub tomorrow: bool,
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// What a phrase of a message means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeMeaning {
    Duration(Duration),
    TimeOfDay(TimeOfDay),
    /// It is a duration, but not one that can be used (zero, too long).
    Invalid(DurationTextError),
}

/// A time phrase found in a message: the whitespace-separated words `first_word..end_word`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimePhrase {
    pub first_word: usize,
    pub end_word: usize,
    pub meaning: TimeMeaning,
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    /// Digits, with an optional decimal part (`1.5`, `1,5`).
    Number(f64),
    /// `1:30:00`, `20:00`.
    Clock(Vec<u64>),
    Word(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: TokenKind,
    /// Index of the whitespace-separated word this token came from.
    word: usize,
}

impl Token {
    fn word_is(&self, candidates: &[&str]) -> bool {
        matches!(&self.kind, TokenKind::Word(word) if candidates.contains(&word.as_str()))
    }

    fn text(&self) -> Option<&str> {
        match &self.kind {
            TokenKind::Word(word) => Some(word),
            _ => None,
        }
    }
}

const SECOND_UNITS: [&str; 11] = [
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "с",
    "сек",
    "секунд",
    "секунды",
    "секунду",
    "секунда",
];
const MINUTE_UNITS: [&str; 10] = [
    "m",
    "min",
    "mins",
    "minute",
    "minutes",
    "м",
    "мин",
    "минут",
    "минуты",
    "минуту",
];
const HOUR_UNITS: [&str; 9] = [
    "h",
    "hr",
    "hrs",
    "hour",
    "hours",
    "ч",
    "час",
    "часа",
    "часов",
];
const DAY_UNITS: [&str; 9] = [
    "d",
    "day",
    "days",
    "д",
    "день",
    "дня",
    "дней",
    "сутки",
    "суток",
];
/// Russian unit words that mean "one" of it on their own ("на час", "на минуту").
const SINGULAR_UNIT_WORDS: [&str; 6] = ["час", "минуту", "минута", "секунду", "день", "сутки"];
/// Words that say a clock reading is a time of day.
const DAY_WORDS: [&str; 8] = [
    "today",
    "tonight",
    "tomorrow",
    "сегодня",
    "завтра",
    "вечером",
    "утром",
    "днём",
];
const TOMORROW_WORDS: [&str; 2] = ["tomorrow", "завтра"];
/// Words that put a bare hour from 4 to 11 in the evening: "at 8 tonight", "в 8 вечера".
const EVENING_WORDS: [&str; 4] = ["tonight", "evening", "вечера", "вечером"];
/// Words that are a time of day on their own: "at noon", "в полночь".
const NAMED_TIMES: [(&str, u8); 4] = [
    ("noon", 12),
    ("midnight", 0),
    ("полдень", 12),
    ("полночь", 0),
];
const AT_WORDS: [&str; 5] = ["at", "@", "в", "from", "с"];
const CONNECTOR_WORDS: [&str; 2] = ["and", "и"];

fn unit_seconds(token: &Token) -> Option<f64> {
    let word = token.text()?;
    if SECOND_UNITS.contains(&word) {
        Some(1.0)
    } else if MINUTE_UNITS.contains(&word) || word == "минута" {
        Some(60.0)
    } else if HOUR_UNITS.contains(&word) {
        Some(3600.0)
    } else if DAY_UNITS.contains(&word) {
        Some(86400.0)
    } else {
        None
    }
}

fn number_word(word: &str) -> Option<f64> {
    let value = match word {
        "a" | "an" | "one" | "один" | "одна" | "одну" => 1.0,
        "two" | "два" | "две" => 2.0,
        "three" | "три" => 3.0,
        "four" | "четыре" => 4.0,
        "five" | "пять" => 5.0,
        "six" | "шесть" => 6.0,
        "seven" | "семь" => 7.0,
        "eight" | "восемь" => 8.0,
        "nine" | "девять" => 9.0,
        "ten" | "десять" => 10.0,
        "eleven" => 11.0,
        "twelve" => 12.0,
        "fifteen" | "пятнадцать" => 15.0,
        "twenty" | "двадцать" => 20.0,
        "thirty" | "тридцать" => 30.0,
        "forty" | "сорок" => 40.0,
        "fifty" | "пятьдесят" => 50.0,
        "ninety" | "девяносто" => 90.0,
        "полтора" | "полторы" => 1.5,
        _ => return None,
    };
    Some(value)
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for (word_index, raw) in text.split_whitespace().enumerate() {
        let characters: Vec<char> = raw.to_lowercase().chars().collect();
        let mut index = 0;
        while let Some(&character) = characters.get(index) {
            if character.is_ascii_digit() {
                let start = index;
                let mut groups: Vec<String> = vec![String::new()];
                let mut decimal = String::new();
                while let Some(&current) = characters.get(index) {
                    let next_is_digit = characters
                        .get(index + 1)
                        .is_some_and(|next| next.is_ascii_digit());
                    if current.is_ascii_digit() {
                        match groups.last_mut() {
                            Some(group) if decimal.is_empty() => group.push(current),
                            _ => decimal.push(current),
                        }
                    } else if current == ':' && next_is_digit && decimal.is_empty() {
                        groups.push(String::new());
                    } else if (current == '.' || current == ',')
                        && next_is_digit
                        && groups.len() == 1
                        && decimal.is_empty()
                    {
                        decimal.push('.');
                    } else {
                        break;
                    }
                    index += 1;
                }
                // "at 20.30", "в 20.30": a clock written with a dot after an "at" word.
                let after_at_word = tokens
                    .last()
                    .is_some_and(|previous: &Token| previous.word_is(&AT_WORDS));
                if after_at_word && groups.len() == 1 && decimal.len() == 3 {
                    groups.push(decimal.split_off(1));
                    decimal.clear();
                }
                let kind = if groups.len() > 1 {
                    let parsed: Option<Vec<u64>> =
                        groups.iter().map(|group| group.parse().ok()).collect();
                    parsed.map(TokenKind::Clock)
                } else {
                    let joined = format!("{}{decimal}", groups.concat());
                    joined
                        .parse::<f64>()
                        .ok()
                        .filter(|value| value.is_finite())
                        .map(TokenKind::Number)
                };
                let kind = kind
                    .unwrap_or_else(|| TokenKind::Word(characters[start..index].iter().collect()));
                tokens.push(Token {
                    kind,
                    word: word_index,
                });
            } else if character.is_alphabetic() || character == '@' {
                let start = index;
                while characters
                    .get(index)
                    .is_some_and(|current| current.is_alphabetic() || *current == '@')
                {
                    index += 1;
                }
                tokens.push(Token {
                    kind: TokenKind::Word(characters[start..index].iter().collect()),
                    word: word_index,
                });
            } else {
                index += 1;
            }
        }
    }
    tokens
}

fn sequence_at(tokens: &[Token], start: usize, words: &[&str]) -> bool {
    words.iter().enumerate().all(|(offset, word)| {
        tokens
            .get(start + offset)
            .is_some_and(|token| token.word_is(&[word]))
    })
}

/// A number (digits or words, "forty five" = 45, "one and a half" = 1.5) at `start`.
fn number_at(tokens: &[Token], start: usize) -> Option<(f64, usize)> {
    let token = tokens.get(start)?;
    let (mut value, mut next) = match &token.kind {
        TokenKind::Number(value) => (*value, start + 1),
        TokenKind::Word(word) => (number_word(word)?, start + 1),
        TokenKind::Clock(_) => return None,
    };
    let is_tens = matches!(&token.kind, TokenKind::Word(_)) && value >= 20.0 && value % 10.0 == 0.0;
    if is_tens
        && let Some(units) = tokens.get(next).and_then(Token::text).and_then(number_word)
        && (1.0..10.0).contains(&units)
        && units.fract() == 0.0
    {
        value += units;
        next += 1;
    }
    if sequence_at(tokens, next, &["and", "a", "half"]) {
        value += 0.5;
        next += 3;
    }
    Some((value, next))
}

/// One `<number> <unit>` term (or `half an hour`, `полчаса`, `час`): (seconds, next, unit).
fn term_at(tokens: &[Token], start: usize) -> Option<(f64, usize, f64)> {
    let token = tokens.get(start)?;
    match token.text() {
        Some("полчаса") => return Some((1800.0, start + 1, 3600.0)),
        Some("полминуты") => return Some((30.0, start + 1, 60.0)),
        Some("half" | "пол") => {
            let mut next = start + 1;
            if tokens
                .get(next)
                .is_some_and(|token| token.word_is(&["an", "a"]))
            {
                next += 1;
            }
            let unit = unit_seconds(tokens.get(next)?)?;
            return Some((unit / 2.0, next + 1, unit));
        }
        Some(word) if SINGULAR_UNIT_WORDS.contains(&word) => {
            let unit = unit_seconds(token)?;
            return Some((unit, start + 1, unit));
        }
        _ => {}
    }
    let (value, next) = number_at(tokens, start)?;
    let unit = unit_seconds(tokens.get(next)?)?;
    let mut seconds = value * unit;
    let mut after = next + 1;
    if sequence_at(tokens, after, &["and", "a", "half"]) {
        seconds += unit / 2.0;
        after += 3;
    }
    Some((seconds, after, unit))
}

fn is_word_start(tokens: &[Token], index: usize) -> bool {
    index == 0
        || match (tokens.get(index - 1), tokens.get(index)) {
            (Some(previous), Some(current)) => previous.word != current.word,
            _ => true,
        }
}

fn is_word_end(tokens: &[Token], end: usize) -> bool {
    end == 0
        || match (tokens.get(end - 1), tokens.get(end)) {
            (Some(previous), Some(next)) => previous.word != next.word,
            _ => true,
        }
}

/// The longest duration starting at `start`: (seconds, next token).
fn duration_at(tokens: &[Token], start: usize) -> Option<(f64, usize)> {
    let first = tokens.get(start)?;
    if let TokenKind::Clock(pieces) = &first.kind {
        if pieces.len() > 3 {
            return None;
        }
        let seconds = pieces
            .iter()
            .fold(0.0, |total, piece| total * 60.0 + *piece as f64);
        return Some((seconds, start + 1));
    }
    let mut index = start;
    let mut total = 0.0;
    let mut terms = 0;
    let mut last_unit = 0.0;
    loop {
        let mut candidate = index;
        if terms > 0
            && tokens
                .get(candidate)
                .is_some_and(|token| token.word_is(&CONNECTOR_WORDS))
        {
            candidate += 1;
        }
        if let Some((seconds, next, unit)) = term_at(tokens, candidate) {
            total += seconds;
            index = next;
            terms += 1;
            last_unit = unit;
            continue;
        }
        // "1h30", "1ч30": minutes glued to the hours.
        if terms > 0
            && last_unit == 3600.0
            && candidate == index
            && let Some(Token {
                kind: TokenKind::Number(minutes),
                word,
            }) = tokens.get(index)
            && index > 0
            && tokens.get(index - 1).is_some_and(|unit| unit.word == *word)
            && is_word_end(tokens, index + 1)
        {
            total += minutes * 60.0;
            index += 1;
            terms += 1;
            last_unit = 60.0;
            continue;
        }
        break;
    }
    if terms > 0 {
        return Some((total, index));
    }
    // A bare number, alone in its word, is minutes.
    if let TokenKind::Number(value) = first.kind
        && is_word_end(tokens, start + 1)
    {
        return Some((value * 60.0, start + 1));
    }
    None
}

/// A time of day starting at `start`: "at 20:00", "tomorrow 21:30", "8pm", "в 2 часа".
fn time_of_day_at(
    tokens: &[Token],
    start: usize,
    day_word_in_message: bool,
    evening_in_message: bool,
) -> Option<(TimeOfDay, usize)> {
    let mut index = start;
    let mut tomorrow = false;
    let mut marked = false;
    let mut russian_at = false;
    while let Some(token) = tokens.get(index) {
        if token.word_is(&DAY_WORDS) {
            tomorrow |= token.word_is(&TOMORROW_WORDS);
            marked = true;
        } else if token.word_is(&AT_WORDS) {
            russian_at |= token.word_is(&["в"]);
            marked = true;
        } else {
            break;
        }
        index += 1;
    }
    let reading = tokens.get(index)?;
    let meridiem_at = |position: usize| -> Option<bool> {
        let token = tokens.get(position)?;
        if token.word_is(&["pm"]) {
            Some(true)
        } else if token.word_is(&["am"]) {
            Some(false)
        } else {
            None
        }
    };
    if let Some(word) = reading.text()
        && let Some((_, hour)) = NAMED_TIMES.iter().find(|(name, _)| *name == word)
        && marked
    {
        return Some((
            TimeOfDay {
                hour: *hour,
                minute: 0,
                tomorrow,
            },
            index + 1,
        ));
    }
    let (mut hour, minute, mut next) = match &reading.kind {
        TokenKind::Clock(pieces) if pieces.len() == 2 => {
            (*pieces.first()?, *pieces.get(1)?, index + 1)
        }
        TokenKind::Number(value) if value.fract() == 0.0 && *value < 24.0 => {
            (*value as u64, 0, index + 1)
        }
        _ => return None,
    };
    // "at 20h", "в 20ч": the French and Russian way to write 20:00 after an "at" word.
    let glued_hour = marked
        && !russian_at_hours_word(tokens, next)
        && matches!(reading.kind, TokenKind::Number(_))
        && tokens.get(next).is_some_and(|unit| {
            unit.word == reading.word && unit.word_is(&["h", "ч"]) && is_word_end(tokens, next + 1)
        })
        && tokens
            .get(index.wrapping_sub(1))
            .is_some_and(|previous| previous.word_is(&["at", "@", "в"]));
    if glued_hour {
        next += 1;
    }
    let meridiem = meridiem_at(next);
    if let Some(afternoon) = meridiem {
        next += 1;
        if !(1..=12).contains(&hour) {
            return None;
        }
        hour = match (afternoon, hour) {
            (true, 12) => 12,
            (true, hour) => hour + 12,
            (false, 12) => 0,
            (false, hour) => hour,
        };
    } else if matches!(reading.kind, TokenKind::Number(_)) {
        // "в 2 часа" is two o'clock; "at 8" is eight o'clock; a bare "8" is a duration.
        let russian_hour = russian_at
            && tokens
                .get(next)
                .is_some_and(|token| token.word_is(&["час", "часа", "часов"]));
        if russian_hour {
            next += 1;
        } else if !glued_hour && (!marked || tokens.get(next).and_then(unit_seconds).is_some()) {
            return None;
        }
    } else if !marked && !day_word_in_message {
        return None;
    }
    if meridiem.is_none() && evening_in_message && (4..12).contains(&hour) {
        hour += 12;
    }
    if hour >= 24 || minute >= 60 {
        return None;
    }
    Some((
        TimeOfDay {
            hour: hour as u8,
            minute: minute as u8,
            tomorrow,
        },
        next,
    ))
}

fn russian_at_hours_word(tokens: &[Token], position: usize) -> bool {
    tokens
        .get(position)
        .is_some_and(|token| token.word_is(&["час", "часа", "часов"]))
}

fn checked_duration(given: &str, total_seconds: f64) -> Result<Duration, DurationTextError> {
    if !total_seconds.is_finite() || total_seconds < 1.0 {
        return Err(DurationTextError::Zero {
            given: given.to_string(),
        });
    }
    if total_seconds > (MAXIMUM_DURATION_HOURS * 3600) as f64 {
        return Err(DurationTextError::TooLong {
            given: given.to_string(),
            maximum_hours: MAXIMUM_DURATION_HOURS,
        });
    }
    Ok(Duration::from_secs(total_seconds.round() as u64))
}

fn words_text(text: &str, first_word: usize, end_word: usize) -> String {
    text.split_whitespace()
        .skip(first_word)
        .take(end_word.saturating_sub(first_word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every duration and time of day in a message, in order, by word position.
pub fn find_time_phrases(text: &str) -> Vec<TimePhrase> {
    let tokens = tokenize(text);
    let day_word_in_message = tokens.iter().any(|token| token.word_is(&DAY_WORDS));
    let evening_in_message = tokens.iter().any(|token| token.word_is(&EVENING_WORDS));
    // "at 20:00 tomorrow": the day word may come after the time.
    let tomorrow_in_message = tokens.iter().any(|token| token.word_is(&TOMORROW_WORDS));
    let mut phrases = Vec::new();
    let mut index = 0;
    while let Some(token) = tokens.get(index) {
        if is_word_start(&tokens, index) {
            let first_word = token.word;
            if let Some((time_of_day, next)) =
                time_of_day_at(&tokens, index, day_word_in_message, evening_in_message)
                && is_word_end(&tokens, next)
                && let Some(last) = tokens.get(next - 1)
            {
                phrases.push(TimePhrase {
                    first_word,
                    end_word: last.word + 1,
                    meaning: TimeMeaning::TimeOfDay(TimeOfDay {
                        tomorrow: time_of_day.tomorrow || tomorrow_in_message,
                        ..time_of_day
                    }),
                });
                index = next;
                continue;
            }
            if let Some((seconds, next)) = duration_at(&tokens, index)
                && is_word_end(&tokens, next)
                && let Some(last) = tokens.get(next - 1)
            {
                let end_word = last.word + 1;
                let given = words_text(text, first_word, end_word);
                let meaning = match checked_duration(&given, seconds) {
                    Ok(duration) => TimeMeaning::Duration(duration),
                    Err(error) => TimeMeaning::Invalid(error),
                };
                phrases.push(TimePhrase {
                    first_word,
                    end_word,
                    meaning,
                });
                index = next;
                continue;
            }
        }
        index += 1;
    }
    phrases
}

/// Parses a whole text as one duration (`--for`, settings). A bare number is minutes; a leading
/// "for"/"на" is allowed; a time of day is refused with its own error.
pub fn parse_duration_text(given: &str) -> Result<Duration, DurationTextError> {
    let unrecognised = || DurationTextError::Unrecognised {
        given: given.to_string(),
    };
    let tokens = tokenize(given);
    let start = usize::from(
        tokens
            .first()
            .is_some_and(|token| token.word_is(&["for", "на"])),
    );
    if tokens.len() <= start {
        return Err(unrecognised());
    }
    let day_word_in_message = tokens.iter().any(|token| token.word_is(&DAY_WORDS));
    if time_of_day_at(&tokens, start, day_word_in_message, false).is_some() {
        return Err(DurationTextError::TimeOfDay {
            given: given.to_string(),
        });
    }
    match duration_at(&tokens, start) {
        Some((seconds, next)) if next == tokens.len() => {
            let all_characters_read = given.chars().all(|character| {
                character.is_alphanumeric()
                    || character.is_whitespace()
                    || matches!(character, ':' | '.' | ',' | '-')
            });
            if !all_characters_read {
                return Err(unrecognised());
            }
            checked_duration(given, seconds)
        }
        _ => Err(unrecognised()),
    }
}

/// The names of hours, minutes and seconds a formatted duration uses (`h`, `min`, `s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationUnits {
    pub hours: &'static str,
    pub minutes: &'static str,
    pub seconds: &'static str,
}

pub const ENGLISH_DURATION_UNITS: DurationUnits = DurationUnits {
    hours: "h",
    minutes: "min",
    seconds: "s",
};

pub const RUSSIAN_DURATION_UNITS: DurationUnits = DurationUnits {
    hours: "ч",
    minutes: "мин",
    seconds: "с",
};

/// `1 h 30 min`, `45 s`, `2 h`, `0 s`: unambiguous, and read back to itself by
/// `parse_duration_text` (for every unit set above).
pub fn format_duration_with_units(duration: Duration, units: DurationUnits) -> String {
    let total = duration.as_secs();
    let hours = total / 3600;
    let minutes = (total / 60) % 60;
    let seconds = total % 60;
    let mut pieces = Vec::new();
    if hours > 0 {
        pieces.push(format!("{hours} {}", units.hours));
    }
    if minutes > 0 {
        pieces.push(format!("{minutes} {}", units.minutes));
    }
    if seconds > 0 || pieces.is_empty() {
        pieces.push(format!("{seconds} {}", units.seconds));
    }
    pieces.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_spellings_parse() {
        let cases = [
            ("2h", 7200),
            ("90m", 5400),
            ("90 min", 5400),
            ("90", 5400),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("1h30", 5400),
            ("2h15m", 8100),
            ("1.5 hours", 5400),
            ("2 hours", 7200),
            ("45s", 45),
            ("1:30:00", 5400),
            ("10:00", 600),
            ("1 day", 86400),
            ("  2H ", 7200),
            ("1 hour 30 minutes", 5400),
            ("2 hours 15 minutes", 8100),
            ("1 hour and 30 minutes", 5400),
            ("an hour and a half", 5400),
            ("one and a half hours", 5400),
            ("half an hour", 1800),
            ("for 90 min", 5400),
            ("forty five minutes", 2700),
            ("на 10 секунд", 10),
            ("2 часа", 7200),
            ("полтора часа", 5400),
            ("полчаса", 1800),
            ("1 ч 30 мин", 5400),
            ("1ч30мин", 5400),
            ("1,5 часа", 5400),
            ("на час", 3600),
            ("2 часа 15 минут", 8100),
            ("1 час и 30 минут", 5400),
            ("1 h 30 min", 5400),
        ];
        for (given, seconds) in cases {
            assert_eq!(
                parse_duration_text(given),
                Ok(Duration::from_secs(seconds)),
                "{given}"
            );
        }
    }

    #[test]
    fn bad_durations_say_why() {
        let why = |given: &str| match parse_duration_text(given) {
            Ok(_) => "accepted",
            Err(DurationTextError::Unrecognised { .. }) => "unrecognised",
            Err(DurationTextError::Zero { .. }) => "zero",
            Err(DurationTextError::TooLong { .. }) => "too long",
            Err(DurationTextError::TimeOfDay { .. }) => "a time of day",
        };
        let cases = [
            ("soon", "unrecognised"),
            ("0h", "zero"),
            ("9999h", "too long"),
            ("2 fortnights", "unrecognised"),
            ("at 20:00", "a time of day"),
        ];
        for (given, expected) in cases {
            assert_eq!(why(given), expected, "{given}");
        }
        assert!(parse_duration_text("").is_err());
        assert!(parse_duration_text("1:2:3:4").is_err());
        assert!(parse_duration_text("2h!!").is_err());
        assert!(parse_duration_text("99999999999999999999999999h").is_err());
    }

    fn meanings(text: &str) -> Vec<TimeMeaning> {
        find_time_phrases(text)
            .into_iter()
            .map(|phrase| phrase.meaning)
            .collect()
    }

    fn at(hour: u8, minute: u8, tomorrow: bool) -> TimeMeaning {
        TimeMeaning::TimeOfDay(TimeOfDay {
            hour,
            minute,
            tomorrow,
        })
    }

    fn lasting(seconds: u64) -> TimeMeaning {
        TimeMeaning::Duration(Duration::from_secs(seconds))
    }

    #[test]
    fn times_of_day_are_not_durations() {
        assert_eq!(
            meanings("Tonight live: LINK starts at 20:00!"),
            [at(20, 0, false)]
        );
        assert_eq!(meanings("tomorrow 21:30"), [at(21, 30, true)]);
        assert_eq!(meanings("starts at 8pm"), [at(20, 0, false)]);
        assert_eq!(
            meanings("at 8 pm for 2 hours"),
            [at(20, 0, false), lasting(7200)]
        );
        assert_eq!(meanings("завтра в 21:30"), [at(21, 30, true)]);
        assert_eq!(meanings("в 2 часа"), [at(2, 0, false)]);
        assert_eq!(meanings("на 2 часа"), [lasting(7200)]);
        assert_eq!(meanings("20:00"), [lasting(1200)]);
        assert_eq!(meanings("tonight 20:00"), [at(20, 0, false)]);
    }

    /// Finding (attack 16): "at 20:00 tomorrow" was read as today; the day word may follow.
    #[test]
    fn tomorrow_after_the_time_is_tomorrow() {
        assert_eq!(meanings("at 20:00 tomorrow"), [at(20, 0, true)]);
        assert_eq!(meanings("at 00:00 tomorrow"), [at(0, 0, true)]);
        assert_eq!(meanings("в 21:30 завтра"), [at(21, 30, true)]);
    }

    /// Finding (attack 16): "at 8 tonight", "в 8 вечера", "at 7 in the evening" were 08:00/07:00.
    #[test]
    fn evening_words_put_a_bare_hour_in_the_evening() {
        assert_eq!(meanings("at 8 tonight"), [at(20, 0, false)]);
        assert_eq!(meanings("tonight at 11:30"), [at(23, 30, false)]);
        assert_eq!(meanings("в 8 вечера"), [at(20, 0, false)]);
        assert_eq!(meanings("сегодня вечером в 9"), [at(21, 0, false)]);
        assert_eq!(meanings("at 7 in the evening"), [at(19, 0, false)]);
        // Already in the evening, or written with am, or the small hours: as written.
        assert_eq!(meanings("at 20:00 tonight"), [at(20, 0, false)]);
        assert_eq!(meanings("at 8am tonight"), [at(8, 0, false)]);
        assert_eq!(meanings("tonight at 1"), [at(1, 0, false)]);
        assert_eq!(meanings("at 8 in the morning"), [at(8, 0, false)]);
    }

    /// Finding (attack 16): "at 20.30" was a duration of 20.3 minutes and "at 20h" one of 20
    /// hours; after an "at" word they are the clock times they mean.
    #[test]
    fn clock_times_with_a_dot_or_an_h_after_at() {
        assert_eq!(meanings("at 20.30"), [at(20, 30, false)]);
        assert_eq!(
            meanings("в 20.30 на 2 часа"),
            [at(20, 30, false), lasting(7200)]
        );
        assert_eq!(meanings("at 20h"), [at(20, 0, false)]);
        assert_eq!(meanings("в 20ч"), [at(20, 0, false)]);
        // Elsewhere they stay durations.
        assert_eq!(meanings("for 1.5 hours"), [lasting(5400)]);
        assert_eq!(meanings("for 20h"), [lasting(72000)]);
        assert_eq!(meanings("в 2 часа"), [at(2, 0, false)]);
    }

    /// Finding (attack 16): "at noon", "at midnight" were ignored and the link recorded at once.
    #[test]
    fn noon_and_midnight_are_times_of_day() {
        assert_eq!(meanings("at noon"), [at(12, 0, false)]);
        assert_eq!(
            meanings("at midnight for 1h"),
            [at(0, 0, false), lasting(3600)]
        );
        assert_eq!(meanings("tomorrow at noon"), [at(12, 0, true)]);
        assert_eq!(meanings("в полночь"), [at(0, 0, false)]);
        assert!(meanings("noon").is_empty());
    }

    #[test]
    fn phrases_keep_their_word_positions() {
        let phrases = find_time_phrases("LINK for 1 hour 30 minutes 720p audio");
        assert_eq!(phrases.len(), 1);
        assert_eq!((phrases[0].first_word, phrases[0].end_word), (2, 6));
        assert_eq!(phrases[0].meaning, lasting(5400));
        // A height is not a bare number.
        assert!(find_time_phrases("720p").is_empty());
        assert!(find_time_phrases("record a stream").is_empty());
        assert_eq!(meanings("90 720p"), [lasting(5400)]);
        assert!(matches!(
            meanings("9999h").as_slice(),
            [TimeMeaning::Invalid(DurationTextError::TooLong { .. })]
        ));
    }

    #[test]
    fn formatted_durations_are_unambiguous() {
        let format = |seconds| {
            format_duration_with_units(Duration::from_secs(seconds), ENGLISH_DURATION_UNITS)
        };
        assert_eq!(format(5400), "1 h 30 min");
        assert_eq!(format(45), "45 s");
        assert_eq!(format(7200), "2 h");
        assert_eq!(format(3605), "1 h 5 s");
        assert_eq!(format(0), "0 s");
        assert_eq!(
            format_duration_with_units(Duration::from_secs(5400), RUSSIAN_DURATION_UNITS),
            "1 ч 30 мин"
        );
    }

    proptest! {
        #[test]
        fn every_formatted_duration_parses_back(seconds in 1u64..=MAXIMUM_DURATION_HOURS * 3600) {
            for units in [ENGLISH_DURATION_UNITS, RUSSIAN_DURATION_UNITS] {
                let text = format_duration_with_units(Duration::from_secs(seconds), units);
                prop_assert_eq!(parse_duration_text(&text), Ok(Duration::from_secs(seconds)), "{}", text);
                let found = find_time_phrases(&text);
                prop_assert_eq!(found.len(), 1);
                prop_assert_eq!(&found[0].meaning, &TimeMeaning::Duration(Duration::from_secs(seconds)));
            }
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_duration_text(&text);
            let _ = find_time_phrases(&text);
        }
    }
}
