//! `JobId`: eight upper-case hex characters, what a user types after `/stop`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job identifier: exactly eight upper-case hexadecimal characters (`A3F2B1C9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId([u8; 8]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobIdError {
    #[error("a job id is 8 hexadecimal characters, like A3F2B1C9; got {given:?}")]
    Malformed { given: String },
}

impl JobId {
    /// Builds the id from the low 32 bits of a random or counter value.
    pub fn from_u32(value: u32) -> Self {
        let text = format!("{value:08X}");
        let mut bytes = [b'0'; 8];
        bytes.copy_from_slice(text.as_bytes());
        JobId(bytes)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("00000000")
    }
}

impl FromStr for JobId {
    type Err = JobIdError;

    /// Case-insensitive: `a3f2b1c9` and `A3F2B1C9` are the same job.
    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let trimmed = given.trim();
        if trimmed.len() != 8 || !trimmed.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(JobIdError::Malformed {
                given: given.to_string(),
            });
        }
        let mut bytes = [b'0'; 8];
        for (slot, byte) in bytes.iter_mut().zip(trimmed.bytes()) {
            *slot = byte.to_ascii_uppercase();
        }
        Ok(JobId(bytes))
    }
}

impl TryFrom<String> for JobId {
    type Error = JobIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<JobId> for String {
    fn from(value: JobId) -> Self {
        value.as_str().to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_case_insensitive_and_printed_upper_case() {
        let lower: JobId = "a3f2b1c9".parse().expect("valid id");
        let upper: JobId = "A3F2B1C9".parse().expect("valid id");
        assert_eq!(lower, upper);
        assert_eq!(lower.to_string(), "A3F2B1C9");
    }

    #[test]
    fn malformed_job_ids_are_refused() {
        for given in ["", "A3F2B1C", "A3F2B1C9A", "G3F2B1C9", "A3F2 1C9"] {
            assert!(given.parse::<JobId>().is_err(), "{given:?} accepted");
        }
    }

    #[test]
    fn from_u32_round_trips() {
        let id = JobId::from_u32(0xDEAD_BEEF);
        assert_eq!(id.as_str(), "DEADBEEF");
        assert_eq!(id.as_str().parse::<JobId>(), Ok(id));
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, "\"DEADBEEF\"");
    }
}
