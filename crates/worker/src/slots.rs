//! How many recordings one worker runs: sized from what a recording costs (memory, open files)
//! against what the machine has, and the open-file guard that stops claims before descriptors
//! run out (a recording that hits `EMFILE` mid-segment would fail; a claim refused waits).
//!
//! The decisions are pure functions ([`automatic_recording_slots`], [`descriptors_refuse_claims`]);
//! [`measure_machine`], [`raise_open_file_limit`] and [`open_descriptor_count`] read the machine.

use std::path::Path;

/// What one copy recording costs, with a margin: the recorder holds at most a few segments in
/// flight (a 2 s segment at 8 Mbit/s is 2 MB) and its playlist; measured at well under 1 MB per
/// recording at rest (BENCHMARKS.md, issue 14), so 8 MiB leaves room for bursts.
pub const DEFAULT_MEMORY_PER_RECORDING_BYTES: u64 = 8 * 1024 * 1024;
/// Descriptors per copy recording: its connections (playlist and segments, kept alive, a few in
/// flight), the part file and the ledger, with room for a retry's new connection.
pub const DEFAULT_DESCRIPTORS_PER_RECORDING: u64 = 8;
/// Descriptors kept for the process itself (store connections, logs, the runtime, finalize).
pub const RESERVED_DESCRIPTORS: u64 = 128;
/// Memory kept for the process itself and the rest of the machine.
pub const RESERVED_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// What the machine offers a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineResources {
    /// `MemAvailable` (or the cgroup's limit when lower); `None` when unknown.
    pub available_memory_bytes: Option<u64>,
    /// The open-file soft limit after raising it; `None` when unknown.
    pub open_file_limit: Option<u64>,
    pub cores: usize,
}

/// What one recording costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingCost {
    pub memory_bytes: u64,
    pub descriptors: u64,
}

impl Default for RecordingCost {
    fn default() -> Self {
        RecordingCost {
            memory_bytes: DEFAULT_MEMORY_PER_RECORDING_BYTES,
            descriptors: DEFAULT_DESCRIPTORS_PER_RECORDING,
        }
    }
}

/// The automatic slot count and what bounded it (for the start-up log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSizing {
    pub slots: usize,
    pub by_memory: Option<usize>,
    pub by_descriptors: Option<usize>,
    pub limited_by: &'static str,
}

/// Recordings that fit: the smaller of (available memory − reserve) / memory per recording and
/// (open-file limit − reserve) / descriptors per recording; at least 1. With neither known, the
/// cores decide (16 per core, what a copy recording's CPU allows; see BENCHMARKS.md).
pub fn automatic_recording_slots(machine: MachineResources, cost: RecordingCost) -> SlotSizing {
    let by_memory = machine.available_memory_bytes.map(|available| {
        (available.saturating_sub(RESERVED_MEMORY_BYTES) / cost.memory_bytes.max(1)) as usize
    });
    let by_descriptors = machine.open_file_limit.map(|limit| {
        (limit.saturating_sub(RESERVED_DESCRIPTORS) / cost.descriptors.max(1)) as usize
    });
    let (slots, limited_by) = match (by_memory, by_descriptors) {
        (Some(memory), Some(descriptors)) if memory <= descriptors => (memory, "memory"),
        (Some(_), Some(descriptors)) => (descriptors, "open files"),
        (Some(memory), None) => (memory, "memory"),
        (None, Some(descriptors)) => (descriptors, "open files"),
        (None, None) => (
            machine.cores.max(1) * 16,
            "cores (memory and open files unknown)",
        ),
    };
    SlotSizing {
        slots: slots.max(1),
        by_memory,
        by_descriptors,
        limited_by,
    }
}

/// Why a worker takes no new job now for lack of descriptors, or `None` when it may: a new
/// recording needs `per_recording` more, and the reserve stays free for the running ones
/// (their retries, finalize, the store).
pub fn descriptors_refuse_claims(open: u64, limit: u64, per_recording: u64) -> Option<String> {
    let needed = open
        .saturating_add(per_recording)
        .saturating_add(RESERVED_DESCRIPTORS / 2);
    (needed > limit).then(|| {
        format!(
            "{open} of the {limit} open files allowed are in use; a new recording needs {per_recording} more"
        )
    })
}

/// How often the claim loop counts the process's open descriptors when there is room to spare.
pub const DESCRIPTOR_RECOUNT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the claim loop must count the open descriptors (list `/proc/self/fd`) before a claim:
/// always when the last count (`last_open`) left too little room for every recording after this
/// claim to use its whole allowance beside the reserve, else once every
/// [`DESCRIPTOR_RECOUNT_INTERVAL`]. Listing a few hundred descriptors once a second was a visible
/// share of an idle-claiming worker's CPU (BENCHMARKS.md, issue 14); with room to spare no count
/// can refuse the claim.
pub fn descriptor_recount_due(
    last_open: Option<u64>,
    limit: u64,
    recordings_after_claim: u64,
    per_recording: u64,
    since_last_count: std::time::Duration,
) -> bool {
    let Some(last_open) = last_open else {
        return true;
    };
    let worst_case = last_open
        .saturating_add(recordings_after_claim.saturating_mul(per_recording))
        .saturating_add(RESERVED_DESCRIPTORS);
    worst_case > limit || since_last_count >= DESCRIPTOR_RECOUNT_INTERVAL
}

/// The default pools: transcoding (re-encoding presets) half the cores, finalize remuxes one per
/// core; at least one each.
pub fn default_transcode_concurrency(cores: usize) -> usize {
    (cores / 2).max(1)
}

pub fn default_finalize_concurrency(cores: usize) -> usize {
    cores.max(1)
}

/// Raises the open-file soft limit to the hard limit; returns the soft limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The open-file soft limit now.
pub fn open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Descriptors this process has open (`/proc/self/fd`); `None` where that is not readable.
pub fn open_descriptor_count() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count() as u64)
}

/// Memory the worker may use: `MemAvailable`, capped by a cgroup v2 limit when there is one.
pub fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = parse_meminfo_available(&meminfo)?;
    let cgroup_limit = read_cgroup_memory_limit(Path::new("/sys/fs/cgroup/memory.max"));
    Some(cgroup_limit.map_or(available, |limit| limit.min(available)))
}

fn parse_meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes.saturating_mul(1024))
}

fn read_cgroup_memory_limit(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The machine as the worker sees it at start (after [`raise_open_file_limit`]).
pub fn measure_machine() -> MachineResources {
    MachineResources {
        available_memory_bytes: available_memory_bytes(),
        open_file_limit: open_file_limit(),
        cores: std::thread::available_parallelism()
            .map(|cores| cores.get())
            .unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn the_smaller_of_memory_and_open_files_decides() {
        let cost = RecordingCost::default();
        // 22 GiB and 20,000 files: (20000 - 128) / 8 = 2484 by files, 2784 by memory.
        let sizing = automatic_recording_slots(
            MachineResources {
                available_memory_bytes: Some(22 * GIB),
                open_file_limit: Some(20_000),
                cores: 2,
            },
            cost,
        );
        assert_eq!(sizing.slots, 2484);
        assert_eq!(sizing.limited_by, "open files");
        assert_eq!(sizing.by_memory, Some(2784));
        // 1 GiB: (1024 - 256) MiB / 8 MiB = 96 by memory.
        let small = automatic_recording_slots(
            MachineResources {
                available_memory_bytes: Some(GIB),
                open_file_limit: Some(1_048_576),
                cores: 2,
            },
            cost,
        );
        assert_eq!((small.slots, small.limited_by), (96, "memory"));
    }

    #[test]
    fn no_fixed_cap_and_never_zero() {
        let huge = automatic_recording_slots(
            MachineResources {
                available_memory_bytes: Some(1024 * GIB),
                open_file_limit: Some(1_048_576),
                cores: 64,
            },
            RecordingCost::default(),
        );
        assert!(huge.slots > 64_000, "{huge:?}");
        let starved = automatic_recording_slots(
            MachineResources {
                available_memory_bytes: Some(10),
                open_file_limit: Some(20),
                cores: 1,
            },
            RecordingCost::default(),
        );
        assert_eq!(starved.slots, 1);
        let unknown = automatic_recording_slots(
            MachineResources {
                available_memory_bytes: None,
                open_file_limit: None,
                cores: 2,
            },
            RecordingCost::default(),
        );
        assert_eq!(unknown.slots, 32);
    }

    #[test]
    fn claims_stop_before_the_descriptors_run_out() {
        assert_eq!(descriptors_refuse_claims(100, 1024, 8), None);
        // 1024 - 64 kept for the running recordings: a new one fits up to 952 open.
        assert_eq!(descriptors_refuse_claims(952, 1024, 8), None);
        assert!(
            descriptors_refuse_claims(953, 1024, 8)
                .is_some_and(|reason| reason.contains("open files"))
        );
        assert!(descriptors_refuse_claims(u64::MAX, 1024, 8).is_some());
    }

    #[test]
    fn the_pools_default_from_the_cores() {
        assert_eq!(default_transcode_concurrency(1), 1);
        assert_eq!(default_transcode_concurrency(2), 1);
        assert_eq!(default_transcode_concurrency(8), 4);
        assert_eq!(default_finalize_concurrency(0), 1);
        assert_eq!(default_finalize_concurrency(2), 2);
    }

    #[test]
    fn meminfo_available_is_read_in_bytes() {
        let text = "MemTotal:       24683792 kB\nMemFree:         5016312 kB\nMemAvailable:   22007092 kB\n";
        assert_eq!(parse_meminfo_available(text), Some(22_007_092 * 1024));
        assert_eq!(parse_meminfo_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_meminfo_available("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let raised = raise_open_file_limit().expect("a limit");
        let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .expect("getrlimit");
        assert_eq!(raised, hard);
        assert!(open_descriptor_count().is_some_and(|count| count >= 3));
    }

    #[test]
    fn descriptors_are_counted_again_only_near_the_limit_or_every_ten_seconds() {
        use std::time::Duration;
        let second = Duration::from_secs(1);
        // Never counted: count.
        assert!(descriptor_recount_due(None, 20_000, 1, 8, second));
        // 400 open, 101 recordings of 8 each and the reserve fit under 20,000: no count...
        assert!(!descriptor_recount_due(Some(400), 20_000, 101, 8, second));
        // ...until ten seconds passed.
        assert!(descriptor_recount_due(
            Some(400),
            20_000,
            101,
            8,
            DESCRIPTOR_RECOUNT_INTERVAL
        ));
        // Near the limit: every claim counts, as before.
        assert!(descriptor_recount_due(Some(400), 1_024, 101, 8, second));
        assert!(descriptor_recount_due(Some(19_200), 20_000, 101, 8, second));
        // Whenever a count would not refuse, skipping it cannot have let a refusal through.
        for open in (0..20_000).step_by(97) {
            for recordings in [1_u64, 10, 100, 1_000, 2_400] {
                if !descriptor_recount_due(Some(open), 20_000, recordings, 8, second) {
                    let worst_open = open + (recordings - 1) * 8;
                    assert_eq!(descriptors_refuse_claims(worst_open, 20_000, 8), None);
                }
            }
        }
        // No overflow.
        assert!(descriptor_recount_due(
            Some(u64::MAX),
            u64::MAX - 1,
            u64::MAX,
            u64::MAX,
            second
        ));
    }
}
