//! Settings of scheduled recordings and of waiting for a stream to go live: `WAIT_FOR_LIVE`
//! (default 2 h: how long a job whose link is not live yet keeps checking), `SCHEDULE_LEAD`
//! (default 1 min: a scheduled job starts this long before its time), `DEFAULT_TIMEZONE`
//! (default UTC: the zone of users who never set `/timezone`, and of `jobs add --at`).

use std::time::Duration;

use streambot_core::schedule::Tz;
use streambot_core::{DEFAULT_SCHEDULE_LEAD, parse_duration_text, parse_time_zone};

use crate::settings::{EnvironmentValues, SettingError, invalid};

pub const DEFAULT_WAIT_FOR_LIVE: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub wait_for_live: Duration,
    pub schedule_lead: Duration,
    pub default_time_zone: Tz,
}

fn duration_setting(
    values: &EnvironmentValues,
    variable: &'static str,
    default: Duration,
    allowed: &'static str,
) -> Result<Duration, SettingError> {
    match values.get(variable).map(str::to_string) {
        None => Ok(default),
        Some(value) if value == "0" => Ok(Duration::ZERO),
        Some(value) => parse_duration_text(&value).map_err(|_| invalid(variable, &value, allowed)),
    }
}

impl ScheduleSettings {
    /// From this process's settings (the one read of the environment).
    pub fn from_environment() -> Result<Self, SettingError> {
        Self::from_values(crate::settings::environment())
    }

    pub fn from_values(values: &EnvironmentValues) -> Result<Self, SettingError> {
        let wait_for_live = duration_setting(
            values,
            "WAIT_FOR_LIVE",
            DEFAULT_WAIT_FOR_LIVE,
            "a duration like 2h, 30m or 0 (do not wait)",
        )?;
        let schedule_lead = duration_setting(
            values,
            "SCHEDULE_LEAD",
            DEFAULT_SCHEDULE_LEAD,
            "a duration like 1m, 30s or 0",
        )?;
        let default_time_zone = match values.get("DEFAULT_TIMEZONE").map(str::to_string) {
            None => Tz::UTC,
            Some(value) => parse_time_zone(&value).map_err(|_| {
                invalid(
                    "DEFAULT_TIMEZONE",
                    &value,
                    "an IANA time zone like Europe/Berlin, America/New_York or UTC",
                )
            })?,
        };
        Ok(ScheduleSettings {
            wait_for_live,
            schedule_lead,
            default_time_zone,
        })
    }
}
