//! `/metrics` in the Prometheus text format (0.0.4), written by hand: gauges computed from the
//! store and the machine on each scrape, counters fed from the store's events.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use streambot_core::Job;

use crate::observe::{EventCounters, StoreSnapshot, SystemSnapshot};

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

struct MetricsWriter {
    text: String,
}

impl MetricsWriter {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, label_value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(label_value));
            }
            self.text.push('}');
        }
        if value.is_finite() {
            let _ = writeln!(self.text, " {value}");
        } else {
            let _ = writeln!(self.text, " NaN");
        }
    }
}

/// The whole exposition.
pub fn render_metrics(
    jobs: &[Job],
    store: &StoreSnapshot,
    system: &SystemSnapshot,
    counters: &EventCounters,
) -> String {
    let mut writer = MetricsWriter {
        text: String::with_capacity(4096),
    };
    writer.family("streambot_jobs", "gauge", "Jobs in the store by state.");
    for (state, count) in &store.jobs_by_state {
        writer.sample("streambot_jobs", &[("state", state)], *count as f64);
    }
    let (mut segments, mut gap_segments, mut bytes, mut gap_seconds) = (0u64, 0u64, 0u64, 0f64);
    for job in jobs {
        segments = segments.saturating_add(job.progress.segments_written);
        gap_segments = gap_segments.saturating_add(job.progress.gap_segments);
        bytes = bytes.saturating_add(job.progress.bytes_written);
        gap_seconds += job.progress.gap_seconds;
    }
    let counter = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed) as f64;
    let seen = "from progress events seen by this dashboard";
    // (name, type, help, value)
    let single_series: [(&str, &str, String, f64); 23] = [
        (
            "streambot_recordings_active",
            "gauge",
            "Jobs in the recording state.".into(),
            store.active_recordings as f64,
        ),
        (
            "streambot_queue_depth",
            "gauge",
            "Jobs waiting in the queues.".into(),
            store.queue_depth as f64,
        ),
        (
            "streambot_store_segments_written",
            "gauge",
            "Segments written, summed over the jobs in the store.".into(),
            segments as f64,
        ),
        (
            "streambot_store_gap_segments",
            "gauge",
            "Segments lost (gaps), summed over the jobs in the store.".into(),
            gap_segments as f64,
        ),
        (
            "streambot_store_gap_seconds",
            "gauge",
            "Media seconds lost in gaps, summed over the jobs in the store.".into(),
            gap_seconds,
        ),
        (
            "streambot_store_bytes_written",
            "gauge",
            "Bytes recorded, summed over the jobs in the store.".into(),
            bytes as f64,
        ),
        (
            "streambot_segments_fetched_total",
            "counter",
            format!("Segments fetched, {seen}."),
            counter(&counters.segments_fetched),
        ),
        (
            "streambot_segments_lost_total",
            "counter",
            format!("Segments lost (gaps), {seen}."),
            counter(&counters.segments_lost),
        ),
        (
            "streambot_bytes_recorded_total",
            "counter",
            format!("Bytes recorded, {seen}."),
            counter(&counters.bytes_recorded),
        ),
        (
            "streambot_gap_seconds_total",
            "counter",
            format!("Media seconds lost in gaps, {seen}."),
            counter(&counters.gap_milliseconds) / 1000.0,
        ),
        (
            "streambot_uploads_total",
            "counter",
            "Jobs that entered the uploading state.".into(),
            counter(&counters.uploads),
        ),
        (
            "streambot_jobs_created_total",
            "counter",
            "Jobs created.".into(),
            counter(&counters.jobs_created),
        ),
        (
            "streambot_jobs_completed_total",
            "counter",
            "Jobs completed.".into(),
            counter(&counters.jobs_completed),
        ),
        (
            "streambot_jobs_failed_total",
            "counter",
            "Jobs failed for good.".into(),
            counter(&counters.jobs_failed),
        ),
        (
            "streambot_events_missed_total",
            "counter",
            "Store events this dashboard fell behind on (its counters undercount by them).".into(),
            counter(&counters.events_missed),
        ),
        (
            "streambot_disk_recordings_bytes",
            "gauge",
            "Bytes under the recordings directory.".into(),
            system.recordings_bytes as f64,
        ),
        (
            "streambot_disk_free_bytes",
            "gauge",
            "Free bytes on the file system of the recordings directory.".into(),
            system.filesystem_free_bytes as f64,
        ),
        (
            "streambot_disk_total_bytes",
            "gauge",
            "Size of the file system of the recordings directory.".into(),
            system.filesystem_total_bytes as f64,
        ),
        (
            "streambot_cpu_usage_percent",
            "gauge",
            "CPU usage of the machine, all cores.".into(),
            f64::from(system.cpu_usage_percent),
        ),
        (
            "streambot_cpu_cores",
            "gauge",
            "CPU cores of the machine.".into(),
            system.cpu_cores as f64,
        ),
        (
            "streambot_memory_used_bytes",
            "gauge",
            "Memory used on the machine.".into(),
            system.memory_used_bytes as f64,
        ),
        (
            "streambot_memory_total_bytes",
            "gauge",
            "Memory of the machine.".into(),
            system.memory_total_bytes as f64,
        ),
        (
            "streambot_dashboard_resident_bytes",
            "gauge",
            "Resident memory of the dashboard's process.".into(),
            system.process_resident_bytes as f64,
        ),
    ];
    for (name, kind, help, value) in &single_series {
        writer.family(name, kind, help);
        writer.sample(name, &[], *value);
    }
    writer.family(
        "streambot_worker_heartbeat_age_seconds",
        "gauge",
        "Seconds since the worker's least recent lease renewal.",
    );
    for worker in &store.workers {
        writer.sample(
            "streambot_worker_heartbeat_age_seconds",
            &[("worker_id", &worker.worker_id)],
            worker.heartbeat_age_seconds,
        );
    }
    writer.family(
        "streambot_worker_jobs",
        "gauge",
        "Jobs a worker holds a lease on.",
    );
    for worker in &store.workers {
        writer.sample(
            "streambot_worker_jobs",
            &[("worker_id", &worker.worker_id)],
            worker.jobs as f64,
        );
    }
    writer.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
