//! `bench_finalize`: finalize of one part against a plain copy of its bytes, in the same run
//! (issue 18; driven by `scripts/bench-finalize.sh`).
//!
//! ```text
//! bench_finalize --input PART.ts [--runs 3] [--warm]
//! ```
//!
//! `--warm` keeps the page cache (a busy worker's ffmpeg libraries and fresh parts are in it): for
//! the CPU per short part; without it the cache is dropped (for the 1-hour part against copy).
//!
//! Per run, each variant writes beside the input (removed afterwards) and fsyncs what it wrote:
//! - `copy`: `std::fs::copy` + `sync_all`;
//! - `seed`: finalize as it was before issue 18, four processes: ffprobe of the part, remux with
//!   `+faststart` (a second pass rewrites the file), ffprobe of the result, thumbnail;
//! - `frag`: one remux pass to fragmented mp4 (`+frag_keyframe+empty_moov+default_base_moof`),
//!   no check, no thumbnail: the alternative to the reserved index;
//! - `finalize`: `streambot_recorder::finalize::finalize_recording` with the in-process remux
//!   off (`native_remux: false`): streams read in process, one ffmpeg remux pass with the index
//!   reserved (`-moov_size`), the index checked in process, thumbnail from the same pass;
//! - `native`: `finalize_recording` as the worker runs it now: the part remuxed in process by
//!   `streambot_mp4remux` (two reads of the part, one write, fsync), the index checked in
//!   process, no thumbnail (`thumbnails_for_native_remux: false`: Telegram makes its own);
//! - `native+jpg`: the same with the thumbnail (one ffmpeg run on the first keyframe).
//!
//! All finalize variants run with `check_decoding: false`: the decode check (issue 17) decodes
//! the file whatever remuxed it and is measured apart (BENCHMARKS.md).
//!
//! The order alternates run by run. Before each measurement the page cache is dropped
//! (`sync; echo 3 > /proc/sys/vm/drop_caches`) when allowed (root); the output says whether it
//! was. Prints each measurement (wall seconds, CPU seconds of the children and of this process),
//! a table of medians with the ratio to `copy`, and one JSON line.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use streambot_core::{OutputFormat, Quality, RecordingEndReason};
use streambot_ffmpeg::argv::remux_arguments;
use streambot_ffmpeg::run::run_ffmpeg;
use streambot_ffmpeg::{
    FfmpegBinaries, FfmpegRunner, InputFormat, MediaInput, OperationTimeouts, OutputContainer,
    RemuxOptions,
};
use streambot_hls::ledger::{PartStartReason, PartSummary};
use streambot_recorder::finalize::{FinalizeSettings, finalize_recording};
use streambot_recorder::{RecordingOutcome, RecordingReport, TrackReport};

const USAGE: &str = "usage: bench_finalize --input PART.ts [--runs 3] [--warm]";
/// Issue 18's targets: finalize within this factor of copy + fsync (1-hour part), and this many
/// CPU seconds per 45-second part.
const TARGET_RATIO: f64 = 1.5;
const TARGET_CPU_SECONDS_PER_45_SECONDS: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Copy,
    Seed,
    Fragmented,
    Finalize,
    Native,
    NativeWithThumbnail,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::Copy,
        Variant::Seed,
        Variant::Fragmented,
        Variant::Finalize,
        Variant::Native,
        Variant::NativeWithThumbnail,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Copy => "copy",
            Variant::Seed => "seed",
            Variant::Fragmented => "frag",
            Variant::Finalize => "finalize",
            Variant::Native => "native",
            Variant::NativeWithThumbnail => "native+jpg",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Variant::Copy => "std::fs::copy + fsync",
            Variant::Seed => "probe, remux +faststart, probe, thumb + fsync",
            Variant::Fragmented => "one pass, fragmented mp4 + fsync",
            Variant::Finalize => "ffmpeg finalize: one pass -moov_size + fsync",
            Variant::Native => "in-process remux, index check, fsync",
            Variant::NativeWithThumbnail => "in-process remux + ffmpeg thumbnail + fsync",
        }
    }
}

struct Measurement {
    variant: Variant,
    seconds: f64,
    /// User + system CPU of the children (ffmpeg, ffprobe) and of this process.
    cpu_seconds: f64,
    output_bytes: u64,
}

/// (children, self) CPU seconds from `/proc/self/stat` (USER_HZ = 100).
fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    let Some(after_name) = stat.rfind(')').and_then(|end| stat.get(end + 2..)) else {
        return (0.0, 0.0);
    };
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    let field = |index: usize| fields.get(index).copied().unwrap_or(0.0) / 100.0;
    // utime, stime are fields 14, 15 overall (11, 12 here); cutime, cstime 16, 17 (13, 14).
    (field(13) + field(14), field(11) + field(12))
}

fn drop_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn sync_file(path: &Path) -> io::Result<u64> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

struct Bench {
    runner: FfmpegRunner,
    input: PathBuf,
    media_seconds: f64,
    work: PathBuf,
}

impl Bench {
    fn report(&self, part: &Path) -> RecordingReport {
        RecordingReport {
            outcome: RecordingOutcome::Finished {
                reason: RecordingEndReason::StreamEnded,
            },
            source: None,
            main: Some(TrackReport {
                track_name: "main".to_owned(),
                ended: "bench".to_owned(),
                error: None,
                parts: vec![PartSummary {
                    number: 1,
                    path: part.to_path_buf(),
                    reason: PartStartReason::First,
                    bytes: 0,
                    segments: 1,
                    media_seconds: self.media_seconds,
                }],
                progress: Default::default(),
                ledger_path: self.work.join("none"),
                first_media_sequence: None,
                last_media_sequence: None,
                maximum_part_bytes: None,
            }),
            audio: None,
            output_directory: self.work.clone(),
        }
    }

    async fn run_variant(&self, variant: Variant) -> Result<PathBuf, String> {
        let part = self.work.join("main-0001.ts");
        let output = self.work.join("recording-0001.mp4");
        match variant {
            Variant::Copy => {
                std::fs::copy(&self.input, &part).map_err(|error| format!("copy: {error}"))?;
                Ok(part)
            }
            Variant::Seed => {
                let info = self
                    .runner
                    .probe(&self.input)
                    .await
                    .map_err(|error| format!("probe: {error}"))?;
                let mut options = RemuxOptions::new(OutputContainer::Mp4);
                options.audio_is_adts_aac = info.audio_is_adts_aac();
                self.runner
                    .remux(&self.input, &output, &options, None)
                    .await
                    .map_err(|error| format!("remux: {error}"))?;
                self.runner
                    .probe(&output)
                    .await
                    .map_err(|error| format!("probe: {error}"))?;
                self.runner
                    .thumbnail(&output, &output.with_extension("jpg"))
                    .await
                    .map_err(|error| format!("thumbnail: {error}"))?;
                Ok(output)
            }
            Variant::Fragmented => {
                let options = RemuxOptions {
                    faststart: false,
                    audio_is_adts_aac: true,
                    ..RemuxOptions::new(OutputContainer::Mp4)
                };
                let mut arguments = remux_arguments(
                    &MediaInput::new(&self.input, InputFormat::MpegTs),
                    &output,
                    &options,
                );
                let muxer_position = arguments.len().saturating_sub(3);
                arguments.splice(
                    muxer_position..muxer_position,
                    [
                        OsString::from("-movflags"),
                        OsString::from("+frag_keyframe+empty_moov+default_base_moof"),
                    ],
                );
                let (finished, _) = run_ffmpeg(
                    &self.runner.binaries().ffmpeg,
                    &arguments,
                    "fragmented remux",
                    Duration::from_secs(3600),
                    None,
                )
                .await
                .map_err(|error| format!("frag: {error}"))?;
                if !finished.success() {
                    return Err(format!("frag: {}", finished.stderr_tail));
                }
                Ok(output)
            }
            Variant::Finalize | Variant::Native | Variant::NativeWithThumbnail => {
                // The worker finalizes the part in place; a hard link stands in for it (no copy).
                std::fs::hard_link(&self.input, &part).map_err(|error| format!("link: {error}"))?;
                let mut settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Best);
                settings.keep_intermediate_parts = true;
                settings.check_decoding = false;
                settings.native_remux = variant != Variant::Finalize;
                settings.thumbnails_for_native_remux = variant == Variant::NativeWithThumbnail;
                let finalized =
                    finalize_recording(&self.runner, &self.report(&part), &settings).await;
                let _ = std::fs::remove_file(&part);
                match finalized.files.first() {
                    Some(file) if file.remuxed_in_process != (variant == Variant::Finalize) => {
                        Ok(file.path.clone())
                    }
                    Some(_) => Err(format!(
                        "finalize: remuxed_in_process is not what {} asks",
                        variant.name()
                    )),
                    None => Err(format!("finalize: {:?}", finalized.failures)),
                }
            }
        }
    }

    async fn measure(&self, variant: Variant) -> Result<(f64, f64, u64), String> {
        let (children_before, self_before) = cpu_seconds();
        let started = Instant::now();
        let output = self.run_variant(variant).await?;
        let bytes = sync_file(&output).map_err(|error| format!("fsync: {error}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let (children_after, self_after) = cpu_seconds();
        self.clean_up();
        Ok((
            seconds,
            (children_after - children_before) + (self_after - self_before),
            bytes,
        ))
    }

    fn clean_up(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.work) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let mut input = None;
    let mut runs = 3usize;
    let warm = arguments.iter().any(|argument| argument == "--warm");
    let mut remaining = arguments.iter().filter(|argument| *argument != "--warm");
    while let Some(flag) = remaining.next() {
        match (flag.as_str(), remaining.next()) {
            ("--input", Some(value)) => input = Some(PathBuf::from(value)),
            ("--runs", Some(value)) => match value.parse::<usize>() {
                Ok(value) if value >= 1 => runs = value,
                _ => {
                    eprintln!("--runs wants a whole number >= 1\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(input) = input else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(input, runs, warm).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench_finalize: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(input: PathBuf, runs: usize, warm: bool) -> Result<(), String> {
    let runner = FfmpegRunner::new(FfmpegBinaries::default())
        .with_timeouts(OperationTimeouts::for_operations(Duration::from_secs(3600)));
    let versions = runner
        .versions()
        .await
        .map_err(|error| format!("ffmpeg: {error}"))?;
    let info = runner
        .probe(&input)
        .await
        .map_err(|error| format!("probing {}: {error}", input.display()))?;
    let media_seconds = info.duration.map_or(0.0, |duration| duration.as_secs_f64());
    let input_bytes = std::fs::metadata(&input)
        .map_err(|error| format!("{}: {error}", input.display()))?
        .len();
    let work = input.with_file_name(format!("bench-finalize-work-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|error| format!("{}: {error}", work.display()))?;
    let bench = Bench {
        runner,
        input: input.clone(),
        media_seconds,
        work: work.clone(),
    };
    println!("{}", versions.ffmpeg);
    println!(
        "input {}: {:.1} MB, {media_seconds:.1} s, {} kbit/s",
        input.display(),
        input_bytes as f64 / 1e6,
        info.bit_rate
            .map_or("?".to_owned(), |rate| (rate / 1000).to_string()),
    );
    let mut measurements = Vec::new();
    let mut cache_dropped = true;
    let mut failure = None;
    'runs: for run in 1..=runs {
        let mut order = Variant::ALL;
        if run % 2 == 0 {
            order.reverse();
        }
        for variant in order {
            cache_dropped &= !warm && drop_cache();
            match bench.measure(variant).await {
                Ok((seconds, cpu_seconds, output_bytes)) => {
                    println!(
                        "run {run} {:<10} {seconds:>8.3} s  cpu {cpu_seconds:>6.3} s  out {:.1} MB",
                        variant.name(),
                        output_bytes as f64 / 1e6
                    );
                    measurements.push(Measurement {
                        variant,
                        seconds,
                        cpu_seconds,
                        output_bytes,
                    });
                }
                Err(message) => {
                    failure = Some(format!("run {run}, {}: {message}", variant.name()));
                    break 'runs;
                }
            }
        }
    }
    bench.clean_up();
    let _ = std::fs::remove_dir(&work);
    if let Some(message) = failure {
        return Err(message);
    }
    let values = |variant: Variant, cpu: bool| -> Vec<f64> {
        measurements
            .iter()
            .filter(|measurement| measurement.variant == variant)
            .map(|measurement| {
                if cpu {
                    measurement.cpu_seconds
                } else {
                    measurement.seconds
                }
            })
            .collect()
    };
    let copy_median = median(&mut values(Variant::Copy, false));
    println!();
    println!(
        "page cache dropped before every measurement: {}",
        if cache_dropped {
            "yes (root)"
        } else if warm {
            "no (--warm)"
        } else {
            "NO (not root)"
        }
    );
    println!(
        "{:<10} {:<48} {:>9} {:>8} {:>10} {:>14}",
        "variant", "what", "median s", "x copy", "median cpu", "cpu per 45 s"
    );
    let mut summary = serde_json::Map::new();
    for variant in Variant::ALL {
        let wall = median(&mut values(variant, false));
        let cpu = median(&mut values(variant, true));
        let cpu_per_45 = cpu * 45.0 / media_seconds.max(1.0);
        println!(
            "{:<10} {:<48} {:>9.3} {:>8.2} {:>10.3} {:>14.4}",
            variant.name(),
            variant.description(),
            wall,
            wall / copy_median,
            cpu,
            cpu_per_45
        );
        summary.insert(
            variant.name().to_owned(),
            json!({
                "median_seconds": wall,
                "ratio_to_copy": wall / copy_median,
                "median_cpu_seconds": cpu,
                "cpu_seconds_per_45_seconds_of_media": cpu_per_45,
                "output_bytes": measurements.iter().find(|m| m.variant == variant).map(|m| m.output_bytes),
            }),
        );
    }
    let finalize_ratio = median(&mut values(Variant::Native, false)) / copy_median;
    let finalize_cpu_per_45 =
        median(&mut values(Variant::Native, true)) * 45.0 / media_seconds.max(1.0);
    println!(
        "native finalize / copy = {finalize_ratio:.2} (target <= {TARGET_RATIO}); native finalize cpu per 45 s of media = {finalize_cpu_per_45:.3} s (target <= {TARGET_CPU_SECONDS_PER_45_SECONDS})"
    );
    println!(
        "{}",
        json!({
            "bench": "finalize",
            "ffmpeg": versions.ffmpeg,
            "input": input,
            "input_bytes": input_bytes,
            "media_seconds": media_seconds,
            "runs": runs,
            "page_cache_dropped": cache_dropped,
            "variants": summary,
            "finalize_ratio_to_copy": finalize_ratio,
            "finalize_cpu_seconds_per_45_seconds": finalize_cpu_per_45,
        })
    );
    Ok(())
}
