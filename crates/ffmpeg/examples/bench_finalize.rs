//! `bench_finalize`: the finalize remux of one TS part against a plain copy of the same bytes, in
//! the same run (issue 3 item 9; driven by `scripts/bench-finalize.sh`).
//!
//! ```text
//! bench_finalize --input PART.ts [--runs 3]
//! ```
//!
//! Per run it measures, each written beside the input and removed afterwards:
//! - `copy`: `std::fs::copy` of the input, then `sync_all` of the copy (the bytes reach the disk);
//! - `remux`: [`FfmpegRunner::remux`] to mp4 with the options `finalize` uses (`-c copy`,
//!   `+faststart`, `-avoid_negative_ts make_zero`, `aac_adtstoasc` when the probe says ADTS AAC,
//!   protocol whitelist `file,pipe`), then `sync_all` of the mp4;
//! - `remux-nofs`: the same without `+faststart`, to show what its second pass costs.
//!
//! The order alternates run by run (copy, remux, remux-nofs; then the reverse; ...). Before each
//! measurement the page cache is dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) when that is
//! allowed (root), otherwise the input's cached pages are evicted with `posix_fadvise(DONTNEED)`;
//! the output says which. Prints every measurement, a table of medians with the ratio to `copy`,
//! and one JSON line.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
use serde_json::json;
use streambot_ffmpeg::{
    FfmpegBinaries, FfmpegRunner, OperationTimeouts, OutputContainer, RemuxOptions,
};

const USAGE: &str = "usage: bench_finalize --input PART.ts [--runs 3]";
/// The target of issue 3 item 9: the finalize remux within this factor of the copy.
const TARGET_RATIO: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Copy,
    Remux,
    RemuxNoFaststart,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Copy, Variant::Remux, Variant::RemuxNoFaststart];

    fn name(self) -> &'static str {
        match self {
            Variant::Copy => "copy",
            Variant::Remux => "remux",
            Variant::RemuxNoFaststart => "remux-nofs",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Variant::Copy => "std::fs::copy + fsync",
            Variant::Remux => "remux to mp4, +faststart (finalize) + fsync",
            Variant::RemuxNoFaststart => "remux to mp4, no faststart + fsync",
        }
    }
}

/// How cached pages were dropped before each measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheDrop {
    /// `echo 3 > /proc/sys/vm/drop_caches` (root).
    DropCaches,
    /// `posix_fadvise(DONTNEED)` on the input only.
    FadviseInput,
    Nothing,
}

impl CacheDrop {
    fn name(self) -> &'static str {
        match self {
            CacheDrop::DropCaches => "drop_caches",
            CacheDrop::FadviseInput => "fadvise_dontneed_input",
            CacheDrop::Nothing => "none",
        }
    }
}

struct Measurement {
    run: usize,
    position: usize,
    variant: Variant,
    seconds: f64,
    /// CPU seconds (user + system) of the ffmpeg child (remux only).
    child_cpu_seconds: Option<f64>,
    output_bytes: u64,
    cache: CacheDrop,
}

struct CommandLine {
    input: PathBuf,
    runs: usize,
}

fn parse_command_line(arguments: &[String]) -> Result<CommandLine, String> {
    let mut input = None;
    let mut runs = 3;
    let mut remaining = arguments.iter();
    while let Some(flag) = remaining.next() {
        match flag.as_str() {
            "--input" => {
                input = Some(PathBuf::from(
                    remaining.next().ok_or("--input needs a value")?,
                ));
            }
            "--runs" => {
                let text = remaining.next().ok_or("--runs needs a value")?;
                runs = text
                    .parse::<usize>()
                    .ok()
                    .filter(|runs| *runs >= 1)
                    .ok_or_else(|| format!("--runs wants a whole number >= 1, got {text:?}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let input = input.ok_or_else(|| format!("--input is required\n{USAGE}"))?;
    Ok(CommandLine { input, runs })
}

/// Drop the page cache if allowed, else evict the input's pages; says which worked.
fn drop_cache(input: &Path) -> CacheDrop {
    nix::unistd::sync();
    if std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok() {
        return CacheDrop::DropCaches;
    }
    match File::open(input) {
        Ok(file) if posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).is_ok() => {
            CacheDrop::FadviseInput
        }
        _ => CacheDrop::Nothing,
    }
}

fn sync_file(path: &Path) -> io::Result<u64> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// CPU seconds (user + system) of this process's waited-for children, from `/proc/self/stat`
/// (`cutime`, `cstime`, in USER_HZ = 100 ticks per second on Linux).
fn children_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 ("state").
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 overall, i.e. 13 and 14 after field 2.
    let cutime: f64 = fields.get(13)?.parse().ok()?;
    let cstime: f64 = fields.get(14)?.parse().ok()?;
    Some((cutime + cstime) / 100.0)
}

fn remove_if_present(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        eprintln!(
            "bench_finalize: could not remove {}: {error}",
            path.display()
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
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
    copy_path: PathBuf,
    mp4_path: PathBuf,
    audio_is_adts_aac: bool,
}

impl Bench {
    async fn measure(&self, variant: Variant) -> Result<(f64, Option<f64>, u64), String> {
        let cpu_before = children_cpu_seconds();
        let started = Instant::now();
        let output = match variant {
            Variant::Copy => {
                std::fs::copy(&self.input, &self.copy_path)
                    .map_err(|error| format!("copying: {error}"))?;
                &self.copy_path
            }
            Variant::Remux | Variant::RemuxNoFaststart => {
                let mut options = RemuxOptions::new(OutputContainer::Mp4);
                options.audio_is_adts_aac = self.audio_is_adts_aac;
                options.faststart = variant == Variant::Remux;
                self.runner
                    .remux(&self.input, &self.mp4_path, &options, None)
                    .await
                    .map_err(|error| format!("remux: {error}"))?;
                &self.mp4_path
            }
        };
        let bytes = sync_file(output).map_err(|error| format!("fsync: {error}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let child_cpu = match (variant, cpu_before, children_cpu_seconds()) {
            (Variant::Copy, _, _) => None,
            (_, Some(before), Some(after)) => Some(after - before),
            _ => None,
        };
        remove_if_present(output);
        Ok((seconds, child_cpu, bytes))
    }

    fn clean_up(&self) {
        remove_if_present(&self.copy_path);
        remove_if_present(&self.mp4_path);
        remove_if_present(&streambot_ffmpeg::run::partial_path(&self.mp4_path));
    }
}

fn sibling(input: &Path, suffix: &str) -> PathBuf {
    let mut name = input
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    input.with_file_name(name)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let command_line = match parse_command_line(&arguments) {
        Ok(command_line) => command_line,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(command_line).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench_finalize: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command_line: CommandLine) -> Result<(), String> {
    let CommandLine { input, runs } = command_line;
    let runner = FfmpegRunner::new(FfmpegBinaries::default())
        .with_timeouts(OperationTimeouts::all(Duration::from_secs(3600)));
    let versions = runner
        .versions()
        .await
        .map_err(|error| format!("ffmpeg: {error}"))?;
    let probe_started = Instant::now();
    let info = runner
        .probe(&input)
        .await
        .map_err(|error| format!("probing {}: {error}", input.display()))?;
    let probe_seconds = probe_started.elapsed().as_secs_f64();
    let input_bytes = std::fs::metadata(&input)
        .map_err(|error| format!("{}: {error}", input.display()))?
        .len();
    let duration_seconds = info.duration.map(|duration| duration.as_secs_f64());
    let bench = Bench {
        runner,
        copy_path: sibling(&input, ".bench-copy"),
        mp4_path: sibling(&input, ".bench-remux.mp4"),
        audio_is_adts_aac: info.audio_is_adts_aac(),
        input,
    };
    println!("{}", versions.ffmpeg);
    println!(
        "input {}: {:.1} MB, {} s, {} kbit/s, video {}, audio {} (ADTS AAC: {}); probe {:.2} s",
        bench.input.display(),
        input_bytes as f64 / 1e6,
        duration_seconds.map_or("?".to_owned(), |seconds| format!("{seconds:.1}")),
        info.bit_rate
            .map_or("?".to_owned(), |rate| (rate / 1000).to_string()),
        info.video.as_ref().map_or("none", |video| &video.codec),
        info.audio.as_ref().map_or("none", |audio| &audio.codec),
        bench.audio_is_adts_aac,
        probe_seconds,
    );

    let mut measurements = Vec::new();
    let mut failure = None;
    'runs: for run in 1..=runs {
        let mut order = Variant::ALL;
        if run % 2 == 0 {
            order.reverse();
        }
        for (position, variant) in order.into_iter().enumerate() {
            let cache = drop_cache(&bench.input);
            match bench.measure(variant).await {
                Ok((seconds, child_cpu_seconds, output_bytes)) => {
                    println!(
                        "run {run} #{} {:<10} {seconds:>8.2} s{}  out {:.1} MB  cache {}",
                        position + 1,
                        variant.name(),
                        child_cpu_seconds
                            .map_or(String::new(), |cpu| format!("  ffmpeg cpu {cpu:.2} s")),
                        output_bytes as f64 / 1e6,
                        cache.name(),
                    );
                    measurements.push(Measurement {
                        run,
                        position: position + 1,
                        variant,
                        seconds,
                        child_cpu_seconds,
                        output_bytes,
                        cache,
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
    if let Some(message) = failure {
        return Err(message);
    }

    let seconds_of = |variant: Variant| -> Vec<f64> {
        measurements
            .iter()
            .filter(|measurement| measurement.variant == variant)
            .map(|measurement| measurement.seconds)
            .collect()
    };
    let median_of = |variant: Variant| median(&mut seconds_of(variant));
    let cpu_median_of = |variant: Variant| -> Option<f64> {
        let mut cpu: Vec<f64> = measurements
            .iter()
            .filter(|measurement| measurement.variant == variant)
            .filter_map(|measurement| measurement.child_cpu_seconds)
            .collect();
        (!cpu.is_empty()).then(|| median(&mut cpu))
    };
    let copy_median = median_of(Variant::Copy);
    let remux_ratio = median_of(Variant::Remux) / copy_median;
    let caches: Vec<&str> = {
        let mut names: Vec<&str> = measurements.iter().map(|m| m.cache.name()).collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    let could_drop = measurements
        .iter()
        .all(|measurement| measurement.cache == CacheDrop::DropCaches);

    println!();
    println!(
        "page cache before each measurement: {} ({})",
        caches.join(", "),
        if could_drop {
            "dropped: running as root"
        } else {
            "could NOT drop the whole page cache (not root): only the input's pages were evicted"
        }
    );
    println!(
        "{:<11} {:<46} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10}",
        "variant", "what", "median s", "min s", "max s", "MB/s", "x copy", "ffmpeg cpu"
    );
    let mut medians = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    let mut samples = serde_json::Map::new();
    for variant in Variant::ALL {
        let values = seconds_of(variant);
        let median_seconds = median_of(variant);
        let minimum = values.iter().copied().fold(f64::INFINITY, f64::min);
        let maximum = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ratio = median_seconds / copy_median;
        println!(
            "{:<11} {:<46} {:>9.2} {:>9.2} {:>9.2} {:>8.1} {:>8.2} {:>10}",
            variant.name(),
            variant.description(),
            median_seconds,
            minimum,
            maximum,
            input_bytes as f64 / 1e6 / median_seconds,
            ratio,
            cpu_median_of(variant).map_or("-".to_owned(), |cpu| format!("{cpu:.2} s")),
        );
        medians.insert(variant.name().to_owned(), json!(median_seconds));
        ratios.insert(variant.name().to_owned(), json!(ratio));
        samples.insert(variant.name().to_owned(), json!(values));
    }
    let faststart_extra = median_of(Variant::Remux) - median_of(Variant::RemuxNoFaststart);
    let target_met = remux_ratio <= TARGET_RATIO;
    println!(
        "finalize remux / copy = {remux_ratio:.2} (target <= {TARGET_RATIO}): {}; faststart's \
         second pass adds {faststart_extra:.2} s to the median",
        if target_met { "MET" } else { "NOT met" },
    );
    let json_line = json!({
        "bench": "finalize",
        "ffmpeg": versions.ffmpeg,
        "input": bench.input,
        "input_bytes": input_bytes,
        "input_duration_seconds": duration_seconds,
        "input_bit_rate": info.bit_rate,
        "audio_is_adts_aac": bench.audio_is_adts_aac,
        "probe_seconds": probe_seconds,
        "runs": runs,
        "page_cache": caches,
        "page_cache_dropped": could_drop,
        "measurements": measurements.iter().map(|measurement| json!({
            "run": measurement.run,
            "position": measurement.position,
            "variant": measurement.variant.name(),
            "seconds": measurement.seconds,
            "ffmpeg_cpu_seconds": measurement.child_cpu_seconds,
            "output_bytes": measurement.output_bytes,
        })).collect::<Vec<_>>(),
        "seconds": samples,
        "median_seconds": medians,
        "ratio_to_copy": ratios,
        "ffmpeg_cpu_median_seconds": {
            "remux": cpu_median_of(Variant::Remux),
            "remux-nofs": cpu_median_of(Variant::RemuxNoFaststart),
        },
        "faststart_extra_seconds": faststart_extra,
        "target_ratio": TARGET_RATIO,
        "target_met": target_met,
    });
    println!("{json_line}");
    Ok(())
}
