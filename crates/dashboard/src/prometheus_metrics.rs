//! `/metrics` in the Prometheus text format (0.0.4), encoded by the `prometheus-client` crate:
//! on each scrape the gauges are computed from the store and the machine, the counters read from
//! the store's events, registered in a fresh `Registry` and encoded (escaping, `+Inf`/`-Inf`/`NaN`
//! and the `_total` suffix of counters are the crate's).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeCounterValue, EncodeGaugeValue};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use streambot_core::Job;

use crate::observe::{EventCounters, StoreSnapshot, SystemSnapshot};

/// The content type of the exposition.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A labelled gauge family: one label, its value per series.
type LabelledGauge = Family<[(&'static str, String); 1], Gauge<f64, AtomicU64>>;

/// The registry of one scrape. Names are given as they are exposed; help texts end with a period
/// (the crate adds it).
struct Scrape {
    registry: Registry,
}

impl Scrape {
    fn gauge<Value>(&mut self, name: &str, help: &str, value: Value)
    where
        Value: EncodeGaugeValue + Send + Sync + std::fmt::Debug + 'static,
    {
        self.registry
            .register(name, without_period(help), ConstGauge::new(value));
    }

    /// `name` ends with `_total`; the crate writes that suffix itself.
    fn counter<Value>(&mut self, name: &str, help: &str, value: Value)
    where
        Value: EncodeCounterValue + Send + Sync + std::fmt::Debug + 'static,
    {
        let base_name = name.strip_suffix("_total").unwrap_or(name);
        self.registry
            .register(base_name, without_period(help), ConstCounter::new(value));
    }

    fn labelled_gauge(
        &mut self,
        name: &str,
        help: &str,
        label: &'static str,
        series: impl IntoIterator<Item = (String, f64)>,
    ) {
        let family = LabelledGauge::default();
        for (label_value, value) in series {
            family.get_or_create(&[(label, label_value)]).set(value);
        }
        self.registry.register(name, without_period(help), family);
    }
}

fn without_period(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
}

/// The whole exposition; the segment, gap and byte sums are over `live_jobs` (the jobs not
/// finished: the store's history is not read for a scrape).
pub fn render_metrics(
    live_jobs: &[Job],
    store: &StoreSnapshot,
    system: &SystemSnapshot,
    counters: &EventCounters,
) -> String {
    let mut scrape = Scrape {
        registry: Registry::default(),
    };
    scrape.labelled_gauge(
        "streambot_jobs",
        "Jobs in the store by state.",
        "state",
        store
            .jobs_by_state
            .iter()
            .map(|(state, count)| (state.clone(), *count as f64)),
    );
    let (mut segments, mut gap_segments, mut bytes, mut gap_seconds) = (0u64, 0u64, 0u64, 0f64);
    for job in live_jobs {
        segments = segments.saturating_add(job.progress.segments_written);
        gap_segments = gap_segments.saturating_add(job.progress.gap_segments);
        bytes = bytes.saturating_add(job.progress.bytes_written);
        gap_seconds += job.progress.gap_seconds;
    }
    let whole_gauges: [(&str, &str, u64); 11] = [
        (
            "streambot_recordings_active",
            "Jobs in the recording state.",
            store.active_recordings,
        ),
        (
            "streambot_queue_depth",
            "Jobs waiting in the queues.",
            store.queue_depth,
        ),
        (
            "streambot_store_segments_written",
            "Segments written, summed over the live (not finished) jobs.",
            segments,
        ),
        (
            "streambot_store_gap_segments",
            "Segments lost (gaps), summed over the live (not finished) jobs.",
            gap_segments,
        ),
        (
            "streambot_store_bytes_written",
            "Bytes recorded, summed over the live (not finished) jobs.",
            bytes,
        ),
        (
            "streambot_disk_recordings_bytes",
            "Bytes under the recordings directory.",
            system.recordings_bytes,
        ),
        (
            "streambot_disk_free_bytes",
            "Free bytes on the file system of the recordings directory.",
            system.filesystem_free_bytes,
        ),
        (
            "streambot_disk_total_bytes",
            "Size of the file system of the recordings directory.",
            system.filesystem_total_bytes,
        ),
        (
            "streambot_cpu_cores",
            "CPU cores of the machine.",
            system.cpu_cores as u64,
        ),
        (
            "streambot_memory_used_bytes",
            "Memory used on the machine.",
            system.memory_used_bytes,
        ),
        (
            "streambot_memory_total_bytes",
            "Memory of the machine.",
            system.memory_total_bytes,
        ),
    ];
    for (name, help, value) in whole_gauges {
        scrape.gauge(name, help, value);
    }
    scrape.gauge(
        "streambot_dashboard_resident_bytes",
        "Resident memory of the dashboard's process.",
        system.process_resident_bytes,
    );
    scrape.gauge(
        "streambot_store_gap_seconds",
        "Media seconds lost in gaps, summed over the jobs in the store.",
        gap_seconds,
    );
    scrape.gauge(
        "streambot_cpu_usage_percent",
        "CPU usage of the machine, all cores.",
        f64::from(system.cpu_usage_percent),
    );
    let count = |value: &AtomicU64| value.load(Ordering::Relaxed);
    let seen = "from progress events seen by this dashboard";
    let whole_counters: [(&str, String, &AtomicU64); 8] = [
        (
            "streambot_segments_fetched_total",
            format!("Segments fetched, {seen}."),
            &counters.segments_fetched,
        ),
        (
            "streambot_segments_lost_total",
            format!("Segments lost (gaps), {seen}."),
            &counters.segments_lost,
        ),
        (
            "streambot_bytes_recorded_total",
            format!("Bytes recorded, {seen}."),
            &counters.bytes_recorded,
        ),
        (
            "streambot_uploads_total",
            "Jobs that entered the uploading state.".into(),
            &counters.uploads,
        ),
        (
            "streambot_jobs_created_total",
            "Jobs created.".into(),
            &counters.jobs_created,
        ),
        (
            "streambot_jobs_completed_total",
            "Jobs completed.".into(),
            &counters.jobs_completed,
        ),
        (
            "streambot_jobs_failed_total",
            "Jobs failed for good.".into(),
            &counters.jobs_failed,
        ),
        (
            "streambot_events_missed_total",
            "Store events this dashboard fell behind on (its counters undercount by them).".into(),
            &counters.events_missed,
        ),
    ];
    for (name, help, value) in whole_counters {
        scrape.counter(name, &help, count(value));
    }
    scrape.counter(
        "streambot_gap_seconds_total",
        &format!("Media seconds lost in gaps, {seen}."),
        count(&counters.gap_milliseconds) as f64 / 1000.0,
    );
    scrape.labelled_gauge(
        "streambot_worker_heartbeat_age_seconds",
        "Seconds since the worker's least recent lease renewal.",
        "worker_id",
        store
            .workers
            .iter()
            .map(|worker| (worker.worker_id.clone(), worker.heartbeat_age_seconds)),
    );
    scrape.labelled_gauge(
        "streambot_worker_jobs",
        "Jobs a worker holds a lease on.",
        "worker_id",
        store
            .workers
            .iter()
            .map(|worker| (worker.worker_id.clone(), worker.jobs as f64)),
    );
    let mut text = String::with_capacity(4096);
    if let Err(error) =
        prometheus_client::encoding::prometheus_text::encode(&mut text, &scrape.registry)
    {
        tracing::warn!(%error, "could not encode the metrics");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::WorkerLoad;

    /// (name, labels, value) of every sample line; the value parsed as Prometheus writes it.
    fn samples(text: &str) -> Vec<(String, String, f64)> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a value");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    "NaN" => f64::NAN,
                    number => number.parse().expect("a number"),
                };
                let (name, labels) = series.split_once('{').unwrap_or((series, ""));
                (
                    name.to_string(),
                    labels.trim_end_matches('}').to_string(),
                    value,
                )
            })
            .collect()
    }

    fn snapshot_with_workers(workers: Vec<WorkerLoad>) -> StoreSnapshot {
        StoreSnapshot {
            jobs_by_state: [("queued".to_string(), 2), ("recording".to_string(), 1)]
                .into_iter()
                .collect(),
            total_jobs: 3,
            active_recordings: 1,
            queue_depth: 2,
            workers,
        }
    }

    fn worker(worker_id: &str, heartbeat_age_seconds: f64) -> WorkerLoad {
        WorkerLoad {
            worker_id: worker_id.to_string(),
            jobs: 1,
            recording: 1,
            heartbeat_age_seconds,
        }
    }

    #[test]
    fn every_metric_name_is_exposed_with_help_type_and_a_parsable_sample() {
        let store = snapshot_with_workers(vec![worker("worker-a", 1.5)]);
        let counters = EventCounters::default();
        counters.gap_milliseconds.store(2500, Ordering::Relaxed);
        counters.segments_fetched.store(7, Ordering::Relaxed);
        let text = render_metrics(&[], &store, &SystemSnapshot::default(), &counters);
        let samples = samples(&text);
        let names = [
            ("streambot_jobs", "gauge"),
            ("streambot_recordings_active", "gauge"),
            ("streambot_queue_depth", "gauge"),
            ("streambot_store_segments_written", "gauge"),
            ("streambot_store_gap_segments", "gauge"),
            ("streambot_store_gap_seconds", "gauge"),
            ("streambot_store_bytes_written", "gauge"),
            ("streambot_segments_fetched_total", "counter"),
            ("streambot_segments_lost_total", "counter"),
            ("streambot_bytes_recorded_total", "counter"),
            ("streambot_gap_seconds_total", "counter"),
            ("streambot_uploads_total", "counter"),
            ("streambot_jobs_created_total", "counter"),
            ("streambot_jobs_completed_total", "counter"),
            ("streambot_jobs_failed_total", "counter"),
            ("streambot_events_missed_total", "counter"),
            ("streambot_disk_recordings_bytes", "gauge"),
            ("streambot_disk_free_bytes", "gauge"),
            ("streambot_disk_total_bytes", "gauge"),
            ("streambot_cpu_usage_percent", "gauge"),
            ("streambot_cpu_cores", "gauge"),
            ("streambot_memory_used_bytes", "gauge"),
            ("streambot_memory_total_bytes", "gauge"),
            ("streambot_dashboard_resident_bytes", "gauge"),
            ("streambot_worker_heartbeat_age_seconds", "gauge"),
            ("streambot_worker_jobs", "gauge"),
        ];
        for (name, kind) in names {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}:\n{text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(
                samples.iter().any(|(sample, _, _)| sample == name),
                "{name}:\n{text}"
            );
        }
        assert!(!text.contains(".."), "one period per help text:\n{text}");
        let value = |name: &str, labels: &str| {
            samples
                .iter()
                .find(|(sample, sample_labels, _)| sample == name && sample_labels == labels)
                .map(|(_, _, value)| *value)
        };
        assert_eq!(value("streambot_jobs", "state=\"queued\""), Some(2.0));
        assert_eq!(value("streambot_queue_depth", ""), Some(2.0));
        assert_eq!(value("streambot_segments_fetched_total", ""), Some(7.0));
        assert_eq!(value("streambot_gap_seconds_total", ""), Some(2.5));
        assert_eq!(
            value(
                "streambot_worker_heartbeat_age_seconds",
                "worker_id=\"worker-a\""
            ),
            Some(1.5)
        );
    }

    #[test]
    fn infinite_and_unknown_values_are_written_as_prometheus_reads_them() {
        let store = snapshot_with_workers(vec![
            worker("never-renewed", f64::INFINITY),
            worker("unknown", f64::NAN),
            worker("quote\"back\\slash\nline", 0.0),
        ]);
        let text = render_metrics(
            &[],
            &store,
            &SystemSnapshot::default(),
            &EventCounters::default(),
        );
        assert!(
            text.contains(
                "streambot_worker_heartbeat_age_seconds{worker_id=\"never-renewed\"} +Inf\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("streambot_worker_heartbeat_age_seconds{worker_id=\"unknown\"} NaN\n"),
            "{text}"
        );
        assert!(
            text.contains("worker_id=\"quote\\\"back\\\\slash\\nline\""),
            "label values are escaped:\n{text}"
        );
        let values: Vec<f64> = samples(&text)
            .into_iter()
            .filter(|(name, _, _)| name == "streambot_worker_heartbeat_age_seconds")
            .map(|(_, _, value)| value)
            .collect();
        assert_eq!(values.len(), 3, "{text}");
        assert!(values.contains(&f64::INFINITY));
        assert!(values.iter().any(|value| value.is_nan()));
    }
}
