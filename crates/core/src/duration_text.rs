//! Durations as people write them: `2h`, `90m`, `90 min`, `1h30m`, `1.5 hours`, `45s`, `2 hours`.
//! Shared by the CLI (`--for`) and the bot's command parser.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationTextError {
    #[error("{given:?} is not a duration; write it like 2h, 90m, 1h30m or 45s")]
    Unrecognised { given: String },
    #[error("a duration must be more than zero; got {given:?}")]
    Zero { given: String },
    #[error("{given:?} is longer than the longest allowed recording ({maximum_hours} hours)")]
    TooLong { given: String, maximum_hours: u64 },
}

/// The longest duration accepted anywhere: a week. Longer inputs are almost surely typos.
pub const MAXIMUM_DURATION_HOURS: u64 = 24 * 7;

fn unit_seconds(unit: &str) -> Option<f64> {
    match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1.0),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60.0),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600.0),
        "d" | "day" | "days" => Some(86400.0),
        _ => None,
    }
}

/// Parses a duration. A bare number is minutes (`/record URL 90` means 90 minutes).
pub fn parse_duration_text(given: &str) -> Result<Duration, DurationTextError> {
    let unrecognised = || DurationTextError::Unrecognised {
        given: given.to_string(),
    };
    let text = given.trim().to_ascii_lowercase();
    if text.is_empty() {
        return Err(unrecognised());
    }
    // hh:mm:ss or mm:ss
    if text.contains(':') {
        let mut total_seconds: f64 = 0.0;
        let pieces: Vec<&str> = text.split(':').collect();
        if pieces.len() > 3 {
            return Err(unrecognised());
        }
        for piece in pieces {
            let value: u64 = piece.parse().map_err(|_| unrecognised())?;
            total_seconds = total_seconds * 60.0 + value as f64;
        }
        return finish(given, total_seconds);
    }
    let characters: Vec<char> = text.chars().collect();
    let mut index = 0;
    let mut total_seconds = 0.0;
    let mut saw_any_number = false;
    while index < characters.len() {
        while index < characters.len() && characters[index].is_whitespace() {
            index += 1;
        }
        if index >= characters.len() {
            break;
        }
        let number_start = index;
        while index < characters.len()
            && (characters[index].is_ascii_digit() || characters[index] == '.')
        {
            index += 1;
        }
        if number_start == index {
            return Err(unrecognised());
        }
        let number_text: String = characters[number_start..index].iter().collect();
        let number: f64 = number_text.parse().map_err(|_| unrecognised())?;
        if !number.is_finite() {
            return Err(unrecognised());
        }
        while index < characters.len() && characters[index].is_whitespace() {
            index += 1;
        }
        let unit_start = index;
        while index < characters.len() && characters[index].is_ascii_alphabetic() {
            index += 1;
        }
        let unit: String = characters[unit_start..index].iter().collect();
        let multiplier = if unit.is_empty() {
            60.0
        } else {
            unit_seconds(&unit).ok_or_else(unrecognised)?
        };
        total_seconds += number * multiplier;
        saw_any_number = true;
    }
    if !saw_any_number {
        return Err(unrecognised());
    }
    finish(given, total_seconds)
}

fn finish(given: &str, total_seconds: f64) -> Result<Duration, DurationTextError> {
    if total_seconds < 1.0 {
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
    Ok(Duration::from_secs_f64(total_seconds.round()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_spellings_parse() {
        let cases = [
            ("2h", 7200),
            ("90m", 5400),
            ("90 min", 5400),
            ("90", 5400),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("1.5 hours", 5400),
            ("2 hours", 7200),
            ("45s", 45),
            ("1:30:00", 5400),
            ("10:00", 600),
            ("1 day", 86400),
            ("  2H ", 7200),
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
        assert!(matches!(
            parse_duration_text("soon"),
            Err(DurationTextError::Unrecognised { .. })
        ));
        assert!(matches!(
            parse_duration_text("0h"),
            Err(DurationTextError::Zero { .. })
        ));
        assert!(matches!(
            parse_duration_text("9999h"),
            Err(DurationTextError::TooLong { .. })
        ));
        assert!(matches!(
            parse_duration_text("2 fortnights"),
            Err(DurationTextError::Unrecognised { .. })
        ));
        assert!(parse_duration_text("").is_err());
        assert!(parse_duration_text("1:2:3:4").is_err());
    }
}
