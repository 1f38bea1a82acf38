//! The orphan-ffmpeg watchdog.
//!
//! ffmpeg runs in its own process group (the `ffmpeg` crate), so a worker killed with SIGKILL
//! leaves its ffmpeg behind, still writing into the job's directory. The watchdog finds such
//! processes and ends them:
//!
//! - It scans `/proc/*/cmdline` (by hand, no procfs crate), only processes of our own user, and
//!   keeps those whose program is `ffmpeg` and one of whose output arguments (any argument that
//!   is not the value of `-i`) is a path under the recordings directory, in a job's directory
//!   `<recordings>/<JOB ID>/…`. Relative paths are resolved against the process's working
//!   directory.
//! - Such a process is an orphan when none of the jobs it writes into is running, as the caller
//!   says ([`select_orphans`] is pure: fixtures in, pids out).
//! - An orphan gets SIGTERM, then SIGKILL after a grace period. Before each signal the process's
//!   start time (`/proc/<pid>/stat` field 22) is checked again, so a reused pid is never hit.
//!
//! What "running" means is the caller's choice; the scheduler's is in [`run_orphan_watchdog`].

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use streambot_core::JobId;

use streambot_store::JobsError;
use streambot_store::backend::JobBackend;

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    /// Clock ticks since boot (`/proc/<pid>/stat` field 22): with the pid, the process's identity.
    pub start_time: u64,
    /// The working directory, for relative paths; `None` when it could not be read.
    pub working_directory: Option<PathBuf>,
    pub arguments: Vec<String>,
}

/// An ffmpeg to end, and the job directory it writes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanProcess {
    pub pid: i32,
    pub start_time: u64,
    pub job_id: JobId,
}

/// `/proc/<pid>/cmdline`: arguments separated (and ended) by NUL bytes.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|byte| *byte == 0)
        .map(|argument| String::from_utf8_lossy(argument).into_owned())
        .collect()
}

/// The start time from `/proc/<pid>/stat` (field 22, counted after the parenthesised name,
/// which may itself hold spaces and parentheses), and whether the process is a zombie.
pub fn parse_stat(text: &str) -> Option<(u64, bool)> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 is fields[19].
    let state = *fields.first()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some((start_time, state == "Z" || state == "X"))
}

fn is_ffmpeg(arguments: &[String]) -> bool {
    arguments.first().is_some_and(|program| {
        Path::new(program)
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name == "ffmpeg")
    })
}

/// `path` made absolute against `base` with `.` and `..` removed, without touching the disk.
fn lexically_absolute(path: &Path, base: Option<&Path>) -> Option<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base?.join(path)
    };
    let mut normal = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other.as_os_str()),
        }
    }
    Some(normal)
}

/// The recordings directory as paths an argument may start with: its absolute form and, when it
/// exists, its canonical one (symbolic links resolved).
pub fn recordings_roots(recordings_directory: &Path) -> Vec<PathBuf> {
    // The working directory, as getcwd reports it (physical).
    let current = Path::new(".").canonicalize().ok();
    let mut roots = Vec::new();
    if let Some(absolute) = lexically_absolute(recordings_directory, current.as_deref()) {
        roots.push(absolute);
    }
    if let Ok(canonical) = std::fs::canonicalize(recordings_directory)
        && !roots.contains(&canonical)
    {
        roots.push(canonical);
    }
    roots
}

/// The jobs whose directories an ffmpeg command line writes into.
pub fn output_job_ids(
    arguments: &[String],
    working_directory: Option<&Path>,
    roots: &[PathBuf],
) -> BTreeSet<JobId> {
    let mut jobs = BTreeSet::new();
    if !is_ffmpeg(arguments) {
        return jobs;
    }
    for (index, argument) in arguments.iter().enumerate().skip(1) {
        if arguments[index - 1] == "-i" || argument.starts_with('-') {
            continue;
        }
        let text = argument.strip_prefix("file:").unwrap_or(argument);
        let Some(path) = lexically_absolute(Path::new(text), working_directory) else {
            continue;
        };
        for root in roots {
            let Ok(inside) = path.strip_prefix(root) else {
                continue;
            };
            let mut components = inside.components();
            let (Some(Component::Normal(first)), Some(_)) = (components.next(), components.next())
            else {
                continue;
            };
            if let Some(job_id) = first.to_str().and_then(|name| name.parse::<JobId>().ok()) {
                jobs.insert(job_id);
            }
        }
    }
    jobs
}

/// The ffmpeg processes that write into the directory of a job not in `running` (pure).
/// `own_pid` is never selected.
pub fn select_orphans(
    processes: &[ProcessInfo],
    roots: &[PathBuf],
    running: &HashSet<JobId>,
    own_pid: i32,
) -> Vec<OrphanProcess> {
    processes
        .iter()
        .filter(|process| process.pid != own_pid)
        .filter_map(|process| {
            let jobs = output_job_ids(
                &process.arguments,
                process.working_directory.as_deref(),
                roots,
            );
            if jobs.iter().any(|job_id| running.contains(job_id)) {
                return None;
            }
            jobs.first().map(|job_id| OrphanProcess {
                pid: process.pid,
                start_time: process.start_time,
                job_id: *job_id,
            })
        })
        .collect()
}

/// Our user's processes from `/proc` (those that vanish or cannot be read are skipped).
pub fn scan_processes() -> Vec<ProcessInfo> {
    use std::os::unix::fs::MetadataExt;
    // `/proc/self` belongs to our effective user, as `/proc/<pid>` belongs to the process's.
    let Ok(our_user) = std::fs::metadata("/proc/self").map(|metadata| metadata.uid()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut processes = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let directory = entry.path();
        if !std::fs::metadata(&directory).is_ok_and(|metadata| metadata.uid() == our_user) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(directory.join("cmdline")) else {
            continue;
        };
        let arguments = parse_cmdline(&cmdline);
        if !is_ffmpeg(&arguments) {
            continue;
        }
        let Some((start_time, false)) = std::fs::read_to_string(directory.join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        else {
            continue;
        };
        processes.push(ProcessInfo {
            pid,
            start_time,
            working_directory: std::fs::read_link(directory.join("cwd")).ok(),
            arguments,
        });
    }
    processes
}

/// Whether the process is still the one that was found (same start time) and not a zombie.
fn still_alive(orphan: &OrphanProcess) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", orphan.pid))
        .ok()
        .as_deref()
        .and_then(parse_stat)
        .is_some_and(|(start_time, zombie)| start_time == orphan.start_time && !zombie)
}

/// SIGTERM, then SIGKILL to those still alive after `grace`. Returns the orphans that were
/// signalled.
pub async fn terminate_orphans(orphans: Vec<OrphanProcess>, grace: Duration) -> Vec<OrphanProcess> {
    let mut signalled = Vec::new();
    for orphan in orphans {
        if !still_alive(&orphan) {
            continue;
        }
        match kill(Pid::from_raw(orphan.pid), Signal::SIGTERM) {
            Ok(()) => {
                tracing::warn!(pid = orphan.pid, job_id = %orphan.job_id, "orphan ffmpeg: sent SIGTERM");
                signalled.push(orphan);
            }
            Err(errno) => {
                tracing::warn!(pid = orphan.pid, job_id = %orphan.job_id, %errno, "orphan ffmpeg: SIGTERM refused")
            }
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let alive: Vec<&OrphanProcess> = signalled.iter().filter(|o| still_alive(o)).collect();
        if alive.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for orphan in alive {
                tracing::warn!(pid = orphan.pid, job_id = %orphan.job_id, "orphan ffmpeg: still alive after the grace; sent SIGKILL");
                let _ = kill(Pid::from_raw(orphan.pid), Signal::SIGKILL);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signalled
}

/// One watchdog pass for `recordings_directory`.
///
/// "Running" is decided from the job store, not from this process: a job is running when its
/// state is one a worker holds (`Starting` … `Uploading`, `JobState::is_running`), whichever
/// worker holds it. The scheduler may be a process of its own (`streambot scheduler`) beside
/// workers that share the recordings directory, so it cannot tell "its" workers from others;
/// sparing every held job means it never kills a live recording's or a finalize's ffmpeg. It
/// kills ffmpegs writing for jobs that are queued, finished, failed, cancelled or unknown. The
/// processes are read before the jobs, so an ffmpeg started after its job was claimed is never
/// taken for an orphan. Limit: the ffmpeg left by a worker killed with SIGKILL, while its job
/// runs again on another worker, is spared until that job leaves the running states.
pub async fn run_orphan_watchdog<B: JobBackend>(
    backend: &B,
    recordings_directory: &Path,
    grace: Duration,
) -> Result<Vec<OrphanProcess>, JobsError> {
    let processes = tokio::task::spawn_blocking(scan_processes)
        .await
        .unwrap_or_default();
    let roots = recordings_roots(recordings_directory);
    let mut mentioned = BTreeSet::new();
    for process in &processes {
        mentioned.extend(output_job_ids(
            &process.arguments,
            process.working_directory.as_deref(),
            &roots,
        ));
    }
    if mentioned.is_empty() {
        return Ok(Vec::new());
    }
    let mut running = HashSet::new();
    for job_id in mentioned {
        if let Some(job) = backend.get_job(job_id).await?
            && job.state.is_running()
        {
            running.insert(job_id);
        }
    }
    let orphans = select_orphans(&processes, &roots, &running, std::process::id() as i32);
    Ok(terminate_orphans(orphans, grace).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(text: &str) -> JobId {
        text.parse().expect("job id")
    }

    fn process(pid: i32, working_directory: Option<&str>, arguments: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid,
            start_time: 1000 + pid as u64,
            working_directory: working_directory.map(PathBuf::from),
            arguments: arguments.iter().map(|text| text.to_string()).collect(),
        }
    }

    #[test]
    fn cmdline_and_stat_are_parsed() {
        assert_eq!(
            parse_cmdline(b"/usr/bin/ffmpeg\0-i\0in.ts\0out dir/x.ts\0"),
            vec!["/usr/bin/ffmpeg", "-i", "in.ts", "out dir/x.ts"]
        );
        assert!(parse_cmdline(b"").is_empty());
        let stat =
            "4242 (ff) mp)eg) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some((987654, false)));
        let zombie = "7 (ffmpeg) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert_eq!(parse_stat(zombie), Some((55, true)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn selects_only_ffmpegs_writing_for_jobs_not_running() {
        let roots = vec![PathBuf::from("/srv/recordings")];
        let running: HashSet<JobId> = [job("0000000A")].into_iter().collect();
        let processes = vec![
            // Writes for a job that runs: kept.
            process(
                10,
                None,
                &[
                    "ffmpeg",
                    "-i",
                    "http://x/a.m3u8",
                    "/srv/recordings/0000000A/part-0001.ts",
                ],
            ),
            // Writes for a job that does not run: orphan.
            process(
                11,
                None,
                &[
                    "/usr/bin/ffmpeg",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc",
                    "-f",
                    "mpegts",
                    "/srv/recordings/0000000B/part-0001.ts",
                ],
            ),
            // Relative output, resolved against the working directory: orphan.
            process(
                12,
                Some("/srv/recordings/0000000C"),
                &["ffmpeg", "-i", "main-0001.ts", "-c", "copy", "final.mp4"],
            ),
            // Elsewhere: not ours.
            process(
                13,
                None,
                &["ffmpeg", "-i", "x", "/tmp/0000000D/part-0001.ts"],
            ),
            // Only reads from the recordings directory (the input of -i): not counted.
            process(
                14,
                None,
                &[
                    "ffmpeg",
                    "-i",
                    "/srv/recordings/0000000E/main-0001.ts",
                    "/tmp/thumb.jpg",
                ],
            ),
            // Not ffmpeg.
            process(
                15,
                None,
                &["ffprobe", "/srv/recordings/0000000F/main-0001.ts"],
            ),
            // A directory that is not a job id, and `..` escaping the root.
            process(
                16,
                None,
                &[
                    "ffmpeg",
                    "-i",
                    "x",
                    "/srv/recordings/not-a-job/part-0001.ts",
                ],
            ),
            process(
                17,
                None,
                &[
                    "ffmpeg",
                    "-i",
                    "x",
                    "/srv/recordings/../0000000B/part-0001.ts",
                ],
            ),
            // The job directory itself, not a file in it.
            process(18, None, &["ffmpeg", "-i", "x", "/srv/recordings/0000000B"]),
            // file: prefix and `.` components.
            process(
                19,
                None,
                &[
                    "ffmpeg",
                    "-i",
                    "x",
                    "file:/srv/./recordings/0000001A/out.mkv",
                ],
            ),
            // Ourselves, never.
            process(
                99,
                None,
                &["ffmpeg", "-i", "x", "/srv/recordings/0000000B/part-0002.ts"],
            ),
        ];
        let orphans = select_orphans(&processes, &roots, &running, 99);
        let found: Vec<(i32, JobId)> = orphans.iter().map(|o| (o.pid, o.job_id)).collect();
        assert_eq!(
            found,
            vec![
                (11, job("0000000B")),
                (12, job("0000000C")),
                (19, job("0000001A"))
            ]
        );
        assert_eq!(orphans[0].start_time, 1011);
    }

    #[test]
    fn a_relative_output_without_a_working_directory_is_ignored() {
        let roots = vec![PathBuf::from("/srv/recordings")];
        let processes = vec![process(
            5,
            None,
            &["ffmpeg", "-i", "x", "0000000B/part-0001.ts"],
        )];
        assert!(select_orphans(&processes, &roots, &HashSet::new(), 1).is_empty());
    }
}

/// The watchdog on real processes, through the scheduler pass.
#[cfg(test)]
mod process_tests {
    use std::process::{Child, Command, Stdio};

    use streambot_core::{JobOwner, JobPriority, NewJob};

    use crate::scheduler::{SchedulerConfig, run_scheduler_pass};
    use crate::worker::job_directory;
    use streambot_store::SqliteBackend;
    use streambot_store::backend::{JobStore, Queue, submit_job};

    use super::*;

    /// Kills and reaps the child when the test ends, however it ends.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Reaped {
        fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
            let deadline = std::time::Instant::now() + limit;
            loop {
                if let Ok(Some(status)) = self.0.try_wait() {
                    return Some(status);
                }
                if std::time::Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        fn running(&mut self) -> bool {
            matches!(self.0.try_wait(), Ok(None))
        }
    }

    fn stray_ffmpeg(output: &Path) -> Reaped {
        std::fs::create_dir_all(output.parent().expect("parent")).expect("mkdir");
        Reaped(
            Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
                .arg("testsrc=size=64x48:rate=5")
                .args(["-f", "mpegts", "-y"])
                .arg(output)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ffmpeg"),
        )
    }

    /// Named `ffmpeg`, deaf to SIGTERM (an ignored signal stays ignored across exec).
    fn stubborn_ffmpeg(output: &Path) -> Reaped {
        std::fs::create_dir_all(output.parent().expect("parent")).expect("mkdir");
        std::fs::write(output, b"").expect("touch");
        Reaped(
            Command::new("bash")
                .arg("-c")
                .arg("trap '' TERM; exec -a ffmpeg tail -f \"$0\"")
                .arg(output)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the stubborn process"),
        )
    }

    fn request() -> NewJob {
        NewJob {
            owner: JobOwner::default(),
            url: "https://example.com/live.m3u8".to_string(),
            options: Default::default(),
            priority: JobPriority::Normal,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scheduler_pass_kills_stray_ffmpegs_and_spares_running_jobs() {
        if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
            return;
        }
        let data = tempfile::tempdir().expect("tempdir");
        let recordings = data.path().join("recordings");
        let backend = SqliteBackend::open_in_data_directory(data.path())
            .await
            .expect("store");
        // A job a worker holds (Starting): its ffmpeg is spared.
        let held = submit_job(&backend, request()).await.expect("submit");
        let (claimed, _lease) = backend
            .claim(
                "worker-here",
                &[JobPriority::Normal],
                Duration::from_secs(60),
                Duration::from_secs(1),
            )
            .await
            .expect("claim")
            .expect("a job");
        assert_eq!(claimed.id, held.id);
        // A queued job nobody runs, and a job id the store does not know: orphans.
        let queued = submit_job(&backend, request()).await.expect("submit");
        let unknown: JobId = "0000ABCD".parse().expect("id");
        assert!(backend.get_job(unknown).await.expect("get").is_none());

        let mut spared = stray_ffmpeg(&job_directory(&recordings, held.id).join("part-0001.ts"));
        let mut stray = stray_ffmpeg(&job_directory(&recordings, unknown).join("part-0001.ts"));
        let mut stubborn =
            stubborn_ffmpeg(&job_directory(&recordings, queued.id).join("part-0001.ts"));
        // Let exec happen, so /proc shows the final command lines.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let mut config = SchedulerConfig::new("scheduler-test", recordings.clone());
        config.orphan_grace = Duration::from_secs(1);
        let started = std::time::Instant::now();
        let report = tokio::time::timeout(
            Duration::from_secs(20),
            run_scheduler_pass(&backend, &config),
        )
        .await
        .expect("the pass ends")
        .expect("pass");
        let took = started.elapsed();

        let mut killed: Vec<(i32, JobId)> = report
            .orphans_killed
            .iter()
            .map(|orphan| (orphan.pid, orphan.job_id))
            .collect();
        killed.sort();
        let mut expected = vec![
            (stray.0.id() as i32, unknown),
            (stubborn.0.id() as i32, queued.id),
        ];
        expected.sort();
        assert_eq!(killed, expected);

        let status = stray
            .exited_within(Duration::from_secs(5))
            .expect("the stray ffmpeg ended");
        assert!(!status.success() || status.code().is_some());
        let status = stubborn
            .exited_within(Duration::from_secs(5))
            .expect("the SIGTERM-deaf process ended");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "it took SIGKILL after the grace");
        assert!(
            took >= Duration::from_secs(1),
            "the grace was given: {took:?}"
        );
        assert!(spared.running(), "the held job's ffmpeg is left alone");

        // A second pass finds nothing more to do.
        let report = run_scheduler_pass(&backend, &config).await.expect("pass");
        assert!(report.orphans_killed.is_empty());
        assert!(spared.running());
    }
}
