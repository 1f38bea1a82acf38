//! The dashboard's settings: `DASHBOARD_SECRET` (at least 16 characters, at least 8 of them
//! different, or the dashboard refuses to start), `DASHBOARD_BIND` (default 127.0.0.1:8080),
//! `DASHBOARD_RATE_LIMIT` (requests per second and client address, default 50, with a burst of
//! twice that).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::error::DashboardError;

/// The shortest secret the dashboard accepts.
pub const MINIMUM_SECRET_CHARACTERS: usize = 16;
/// Different characters a secret must have (`aaaaaaaaaaaaaaaa` and `abababababababab` are not
/// secrets).
pub const MINIMUM_DISTINCT_SECRET_CHARACTERS: usize = 8;
pub const DEFAULT_BIND_ADDRESS: &str = "127.0.0.1:8080";
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 50;

/// The bearer secret. Never printed: `Debug` shows its length only.
#[derive(Clone)]
pub struct DashboardSecret(String);

impl DashboardSecret {
    /// Refuses secrets shorter than [`MINIMUM_SECRET_CHARACTERS`] (after trimming), one
    /// character repeated, and fewer than [`MINIMUM_DISTINCT_SECRET_CHARACTERS`] different ones;
    /// the error says which, never the secret.
    pub fn new(secret: &str) -> Result<DashboardSecret, DashboardError> {
        let trimmed = secret.trim();
        let length = trimmed.chars().count();
        let distinct = trimmed
            .chars()
            .collect::<std::collections::HashSet<char>>()
            .len();
        let refusal = if length < MINIMUM_SECRET_CHARACTERS {
            Some(
                "a secret of at least 16 characters (the dashboard does not start without one; e.g. openssl rand -hex 24)",
            )
        } else if distinct == 1 {
            Some(
                "a random secret, not one character repeated (the dashboard does not start with one; e.g. openssl rand -hex 24)",
            )
        } else if distinct < MINIMUM_DISTINCT_SECRET_CHARACTERS {
            Some(
                "a random secret with at least 8 different characters (the dashboard does not start with a guessable one; e.g. openssl rand -hex 24)",
            )
        } else {
            None
        };
        if let Some(allowed) = refusal {
            return Err(DashboardError::InvalidSetting {
                variable: "DASHBOARD_SECRET",
                shown_value: format!("<{length} characters, {distinct} different>"),
                allowed,
            });
        }
        Ok(DashboardSecret(trimmed.to_string()))
    }

    /// Compares in constant time (for equal lengths; a length mismatch is refused at once).
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented))
    }
}

impl fmt::Debug for DashboardSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "DashboardSecret(<{} bytes>)", self.0.len())
    }
}

#[derive(Debug, Clone)]
pub struct DashboardSettings {
    pub secret: DashboardSecret,
    pub bind_address: SocketAddr,
    /// `LOCAL_STORAGE_PATH`: where the jobs' directories are.
    pub recordings_directory: PathBuf,
    /// Sustained requests per second of one client address (`/health` is not limited).
    pub rate_limit_per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub rate_limit_burst: u32,
    /// Failed logins one address may make before it is locked out for a doubling window.
    pub free_failed_logins: u32,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// How often `/stats/history` takes a sample (kept for an hour).
    pub history_sample_interval: Duration,
    /// How long the store may take to answer `/health`.
    pub health_timeout: Duration,
    /// The workers' lease duration, to turn a lease's expiry into a heartbeat age.
    pub worker_lease_duration: Duration,
}

impl DashboardSettings {
    pub fn new(
        secret: &str,
        recordings_directory: PathBuf,
    ) -> Result<DashboardSettings, DashboardError> {
        let worker_lease_duration = streambot_store::DEFAULT_LEASE_DURATION;
        Ok(DashboardSettings {
            secret: DashboardSecret::new(secret)?,
            bind_address: DEFAULT_BIND_ADDRESS.parse().map_err(|_| {
                DashboardError::InvalidSetting {
                    variable: "DASHBOARD_BIND",
                    shown_value: DEFAULT_BIND_ADDRESS.to_string(),
                    allowed: "an address and port",
                }
            })?,
            recordings_directory,
            rate_limit_per_second: DEFAULT_RATE_LIMIT_PER_SECOND,
            rate_limit_burst: DEFAULT_RATE_LIMIT_PER_SECOND * 2,
            free_failed_logins: crate::client_limits::FREE_FAILED_LOGINS,
            body_limit_bytes: 16 * 1024,
            history_sample_interval: Duration::from_secs(15),
            health_timeout: Duration::from_secs(2),
            worker_lease_duration,
        })
    }

    /// Reads `DASHBOARD_SECRET`, `DASHBOARD_BIND` and `DASHBOARD_RATE_LIMIT` through `lookup`
    /// (the environment in the binary, a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        recordings_directory: PathBuf,
    ) -> Result<DashboardSettings, DashboardError> {
        let read = |variable: &str| {
            lookup(variable)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let secret = read("DASHBOARD_SECRET").unwrap_or_default();
        let mut settings = DashboardSettings::new(&secret, recordings_directory)?;
        if let Some(bind) = read("DASHBOARD_BIND") {
            settings.bind_address = parse_bind_address(&bind)?;
        }
        if let Some(rate) = read("DASHBOARD_RATE_LIMIT") {
            let per_second = parse_rate_limit(&rate)?;
            settings.rate_limit_per_second = per_second;
            settings.rate_limit_burst = per_second.saturating_mul(2);
        }
        Ok(settings)
    }
}

/// `DASHBOARD_BIND`: an IP address and port.
pub fn parse_bind_address(bind: &str) -> Result<SocketAddr, DashboardError> {
    bind.trim()
        .parse()
        .map_err(|_| DashboardError::InvalidSetting {
            variable: "DASHBOARD_BIND",
            shown_value: format!("{bind:?}"),
            allowed: "an IP address and port, e.g. 127.0.0.1:8080",
        })
}

/// `DASHBOARD_RATE_LIMIT`: requests per second, 1 to 1,000,000.
pub fn parse_rate_limit(rate: &str) -> Result<u32, DashboardError> {
    match rate.trim().parse::<u32>() {
        Ok(per_second) if (1..=1_000_000).contains(&per_second) => Ok(per_second),
        _ => Err(DashboardError::InvalidSetting {
            variable: "DASHBOARD_RATE_LIMIT",
            shown_value: format!("{rate:?}"),
            allowed: "requests per second, a whole number from 1 to 1000000",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_missing_secret_is_refused_with_one_line_that_does_not_show_it() {
        let error = DashboardSettings::new("short-secret", PathBuf::from("r")).expect_err("short");
        let line = error.to_string();
        assert!(line.starts_with("DASHBOARD_SECRET="), "{line}");
        assert!(!line.contains("short-secret"), "{line}");
        assert!(!line.contains('\n'));
        assert!(DashboardSettings::from_lookup(|_| None, PathBuf::from("r")).is_err());
    }

    #[test]
    fn low_entropy_secrets_are_refused_with_the_reason() {
        let repeated = DashboardSecret::new("aaaaaaaaaaaaaaaa").expect_err("one character");
        let line = repeated.to_string();
        assert!(line.contains("not one character repeated"), "{line}");
        assert!(!line.contains("aaaa"), "{line}");
        let few = DashboardSecret::new("abcabcabcabcabcabc").expect_err("three different");
        assert!(few.to_string().contains("at least 8 different"), "{few}");
        assert!(few.to_string().contains("3 different"), "{few}");
        assert!(DashboardSecret::new("abcdefgh-abcdefgh").is_ok());
        assert!(DashboardSecret::new("3f9a1c7e5b2d8a4f6c0e9b1d").is_ok());
    }

    #[test]
    fn the_secret_matches_only_itself() {
        let secret = DashboardSecret::new("0123456789abcdef").expect("long enough");
        assert!(secret.matches(b"0123456789abcdef"));
        assert!(!secret.matches(b"0123456789abcdeF"));
        assert!(!secret.matches(b"0123456789abcde"));
        assert!(!secret.matches(b""));
        assert!(!format!("{secret:?}").contains("0123"));
    }

    #[test]
    fn bind_and_rate_limit_are_read_and_checked() {
        let lookup = |name: &str| match name {
            "DASHBOARD_SECRET" => Some("0123456789abcdef".to_string()),
            "DASHBOARD_BIND" => Some("127.0.0.1:9999".to_string()),
            "DASHBOARD_RATE_LIMIT" => Some("7".to_string()),
            _ => None,
        };
        let settings = DashboardSettings::from_lookup(lookup, PathBuf::from("r")).expect("valid");
        assert_eq!(settings.bind_address.port(), 9999);
        assert_eq!(settings.rate_limit_per_second, 7);
        let default =
            DashboardSettings::new("0123456789abcdef", PathBuf::from("r")).expect("valid");
        assert_eq!(default.bind_address.to_string(), "127.0.0.1:8080");
        let bad_bind = |name: &str| match name {
            "DASHBOARD_SECRET" => Some("0123456789abcdef".to_string()),
            "DASHBOARD_BIND" => Some("everywhere".to_string()),
            _ => None,
        };
        let error = DashboardSettings::from_lookup(bad_bind, PathBuf::from("r")).expect_err("bad");
        assert!(error.to_string().starts_with("DASHBOARD_BIND="));
    }
}
