//! Limits per client address (issue 11 item 8): each address has its own token bucket, so a
//! flood from one address is refused without touching anyone else's requests, and failed logins
//! are counted per address: after [`FREE_FAILED_LOGINS`] the address is locked out for a window
//! that doubles with every further failure (1 s, 2 s, 4 s … up to 15 min). A correct secret from
//! a locked-out address is refused too until the window ends, so guessing gains nothing.
//!
//! Addresses are grouped the way one party holds them: an IPv4 address, or the /64 of an IPv6
//! address (one host gets a whole /64). The table holds at most [`MAXIMUM_TRACKED_CLIENTS`]
//! entries; beyond that the longest-idle entry that is not locked out is forgotten.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins an address may make before the lockout starts.
pub const FREE_FAILED_LOGINS: u32 = 5;
/// The first lockout window; each further failure doubles it.
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(1);
/// The longest lockout window.
pub const LONGEST_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Client entries kept at most (memory stays bounded whatever the number of addresses).
pub const MAXIMUM_TRACKED_CLIENTS: usize = 10_000;
/// An entry unused this long, and not locked out, may be forgotten.
const IDLE_ENTRY_AGE: Duration = Duration::from_secs(10 * 60);

/// What may happen to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over the address's request rate.
    RateLimited,
    /// Too many failed logins from the address: wait this long.
    LockedOut {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone)]
struct ClientRecord {
    tokens: f64,
    refilled_at: Instant,
    failed_logins: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

/// The key an address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [first, second, third, fourth, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(first, second, third, fourth, 0, 0, 0, 0))
            }
        },
    }
}

/// The lockout after `failed_logins` failures when `free_failed_logins` are free, or none.
pub fn lockout_after(failed_logins: u32, free_failed_logins: u32) -> Option<Duration> {
    let beyond_free = failed_logins.checked_sub(free_failed_logins.max(1))?;
    let backoff = streambot_core::backoff::ExponentialBackoff::new(FIRST_LOCKOUT, LONGEST_LOCKOUT);
    Some(backoff.delay_after_failed_attempt(beyond_free.saturating_add(1)))
}

/// The per-address buckets and login counters.
pub struct ClientLimits {
    per_second: f64,
    burst: f64,
    free_failed_logins: u32,
    clients: Mutex<HashMap<IpAddr, ClientRecord>>,
}

impl ClientLimits {
    pub fn new(per_second: u32, burst: u32, free_failed_logins: u32) -> ClientLimits {
        ClientLimits {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            free_failed_logins,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn with_record<T>(
        &self,
        address: IpAddr,
        now: Instant,
        change: impl FnOnce(&mut ClientRecord) -> T,
    ) -> T {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = client_key(address);
        if !clients.contains_key(&key) && clients.len() >= MAXIMUM_TRACKED_CLIENTS {
            make_room(&mut clients, now);
        }
        let burst = self.burst;
        let record = clients.entry(key).or_insert_with(|| ClientRecord {
            tokens: burst,
            refilled_at: now,
            failed_logins: 0,
            locked_until: None,
            last_seen: now,
        });
        record.last_seen = now;
        change(record)
    }

    /// Takes one token from the address's bucket.
    pub fn admit_request(&self, address: IpAddr, now: Instant) -> Admission {
        let (per_second, burst) = (self.per_second, self.burst);
        self.with_record(address, now, |record| {
            let elapsed = now.saturating_duration_since(record.refilled_at);
            record.tokens = (record.tokens + elapsed.as_secs_f64() * per_second).min(burst);
            record.refilled_at = now;
            if record.tokens >= 1.0 {
                record.tokens -= 1.0;
                Admission::Allowed
            } else {
                Admission::RateLimited
            }
        })
    }

    /// Whether the address may try a login now.
    pub fn admit_login(&self, address: IpAddr, now: Instant) -> Admission {
        self.with_record(address, now, |record| match record.locked_until {
            Some(until) if until > now => Admission::LockedOut {
                retry_after: until - now,
            },
            _ => Admission::Allowed,
        })
    }

    /// Counts a wrong or missing secret; returns the lockout it started, if any.
    pub fn record_failed_login(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let free_failed_logins = self.free_failed_logins;
        self.with_record(address, now, |record| {
            record.failed_logins = record.failed_logins.saturating_add(1);
            let lockout = lockout_after(record.failed_logins, free_failed_logins);
            record.locked_until = lockout.map(|window| now + window);
            lockout
        })
    }

    /// A correct secret: the address starts again from zero failures.
    pub fn record_successful_login(&self, address: IpAddr, now: Instant) {
        self.with_record(address, now, |record| {
            record.failed_logins = 0;
            record.locked_until = None;
        });
    }

    pub fn tracked_clients(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

/// Forgets idle entries (never a live lockout); if none is idle, the longest-unused unlocked one.
fn make_room(clients: &mut HashMap<IpAddr, ClientRecord>, now: Instant) {
    let locked = |record: &ClientRecord| record.locked_until.is_some_and(|until| until > now);
    clients.retain(|_, record| {
        locked(record) || now.saturating_duration_since(record.last_seen) < IDLE_ENTRY_AGE
    });
    if clients.len() < MAXIMUM_TRACKED_CLIENTS {
        return;
    }
    let oldest = clients
        .iter()
        .filter(|(_, record)| !locked(record))
        .min_by_key(|(_, record)| record.last_seen)
        .map(|(key, _)| *key)
        .or_else(|| {
            clients
                .iter()
                .min_by_key(|(_, record)| record.last_seen)
                .map(|(key, _)| *key)
        });
    if let Some(key) = oldest {
        clients.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn address(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn each_address_has_its_own_bucket() {
        let limits = ClientLimits::new(1, 3, FREE_FAILED_LOGINS);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.admit_request(address(1), now), Admission::Allowed);
        }
        assert_eq!(
            limits.admit_request(address(1), now),
            Admission::RateLimited
        );
        assert_eq!(limits.admit_request(address(2), now), Admission::Allowed);
        // One token a second comes back.
        assert_eq!(
            limits.admit_request(address(1), now + Duration::from_millis(1100)),
            Admission::Allowed
        );
    }

    #[test]
    fn failed_logins_lock_out_with_a_doubling_window() {
        let free = FREE_FAILED_LOGINS;
        assert_eq!(lockout_after(free - 1, free), None);
        assert_eq!(lockout_after(free, free), Some(FIRST_LOCKOUT));
        assert_eq!(lockout_after(free + 3, free), Some(FIRST_LOCKOUT * 8));
        assert_eq!(lockout_after(u32::MAX, free), Some(LONGEST_LOCKOUT));

        let limits = ClientLimits::new(100, 100, free);
        let now = Instant::now();
        for _ in 0..FREE_FAILED_LOGINS - 1 {
            assert_eq!(limits.record_failed_login(address(9), now), None);
            assert_eq!(limits.admit_login(address(9), now), Admission::Allowed);
        }
        assert_eq!(
            limits.record_failed_login(address(9), now),
            Some(FIRST_LOCKOUT)
        );
        assert!(matches!(
            limits.admit_login(address(9), now),
            Admission::LockedOut { .. }
        ));
        assert_eq!(
            limits.admit_login(address(10), now),
            Admission::Allowed,
            "another address is not locked out"
        );
        let later = now + FIRST_LOCKOUT + Duration::from_millis(1);
        assert_eq!(limits.admit_login(address(9), later), Admission::Allowed);
        assert_eq!(
            limits.record_failed_login(address(9), later),
            Some(FIRST_LOCKOUT * 2)
        );
        limits.record_successful_login(address(9), later + FIRST_LOCKOUT * 3);
        assert_eq!(
            limits.admit_login(address(9), later + FIRST_LOCKOUT * 3),
            Admission::Allowed
        );
    }

    #[test]
    fn an_ipv6_host_is_one_client_per_64() {
        let first: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let second: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(client_key(first), client_key(second));
        assert_ne!(client_key(first), client_key(elsewhere));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("mapped");
        assert_eq!(client_key(mapped), address(1));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_lockouts() {
        let limits = ClientLimits::new(10, 10, FREE_FAILED_LOGINS);
        let now = Instant::now();
        let locked = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
        for _ in 0..FREE_FAILED_LOGINS + 4 {
            limits.record_failed_login(locked, now);
        }
        for index in 0..(MAXIMUM_TRACKED_CLIENTS as u32 + 500) {
            let [a, b, c, d] = (0x0B00_0000u32 + index).to_be_bytes();
            limits.admit_request(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), now);
        }
        assert!(limits.tracked_clients() <= MAXIMUM_TRACKED_CLIENTS);
        assert!(matches!(
            limits.admit_login(locked, now),
            Admission::LockedOut { .. }
        ));
    }
}
