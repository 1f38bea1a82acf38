//! The one way this project starts ffmpeg or ffprobe, and controls it while it runs.
//!
//! Modelled on pict-rs `src/process.rs` and ripgrep `crates/cli/src/process.rs`:
//! - `tokio::process::Command` with `kill_on_drop(true)`, in its own process group (`process_group(0)`),
//!   so signals reach ffmpeg and anything it might start, and never the bot itself;
//! - stdin piped (ffmpeg stops cleanly on `q`), stdout piped (`-progress pipe:1`) or null;
//! - stderr drained concurrently into a bounded ring (the last 40 lines / 8 KiB), carried in errors;
//! - every wait wrapped in a timeout.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::error::{FfmpegError, FfmpegResult, INSTALL_HINT};

/// Lines kept from a program's stderr.
pub const STDERR_TAIL_MAX_LINES: usize = 40;
/// Bytes kept from a program's stderr.
pub const STDERR_TAIL_MAX_BYTES: usize = 8 * 1024;
/// A single stderr line longer than this is cut.
const STDERR_LINE_MAX_BYTES: usize = 1024;
/// How long to wait for the stderr reader to see end-of-file once the process has exited.
const STDERR_DRAIN_AFTER_EXIT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the kernel to hand back a process after SIGKILL.
const REAP_AFTER_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the ffmpeg and ffprobe binaries are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfmpegBinaries {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl FfmpegBinaries {
    pub fn new(ffmpeg: impl Into<PathBuf>, ffprobe: impl Into<PathBuf>) -> Self {
        FfmpegBinaries {
            ffmpeg: ffmpeg.into(),
            ffprobe: ffprobe.into(),
        }
    }

    /// The configured paths, each falling back to its bare name (found on `PATH` when started)
    /// when absent or empty. The binary crate passes `FFMPEG_PATH` / `FFPROBE_PATH` here.
    pub fn from_settings(ffmpeg: Option<PathBuf>, ffprobe: Option<PathBuf>) -> Self {
        let or_name = |configured: Option<PathBuf>, name: &str| match configured {
            Some(path) if !path.as_os_str().is_empty() => path,
            _ => PathBuf::from(name),
        };
        FfmpegBinaries {
            ffmpeg: or_name(ffmpeg, "ffmpeg"),
            ffprobe: or_name(ffprobe, "ffprobe"),
        }
    }
}

impl Default for FfmpegBinaries {
    /// `ffmpeg` and `ffprobe`, found on `PATH` when started.
    fn default() -> Self {
        FfmpegBinaries::from_settings(None, None)
    }
}

/// What to do with the child's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutMode {
    /// Piped, for `-progress pipe:1` or ffprobe's JSON; take it with [`FfmpegProcess::take_stdout`]
    /// and read it, or the child blocks once the pipe is full.
    Piped,
    Null,
}

/// A bounded ring of the last lines a program wrote to stderr.
#[derive(Debug, Clone)]
pub struct StderrTail {
    lines: VecDeque<String>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl Default for StderrTail {
    fn default() -> Self {
        StderrTail::new(STDERR_TAIL_MAX_LINES, STDERR_TAIL_MAX_BYTES)
    }
}

impl StderrTail {
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        StderrTail {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    pub fn push_line(&mut self, line: &str) {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        let line = truncate_to_char_boundary(line, STDERR_LINE_MAX_BYTES.min(self.max_bytes));
        self.bytes += line.len();
        self.lines.push_back(line.to_owned());
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            match self.lines.pop_front() {
                Some(removed) => self.bytes -= removed.len(),
                None => break,
            }
        }
    }

    /// The kept lines, joined by newlines.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.bytes + self.lines.len());
        for (index, line) in self.lines.iter().enumerate() {
            if index > 0 {
                text.push('\n');
            }
            text.push_str(line);
        }
        text
    }

    pub fn line_count(&self) -> usize {
        self.lines.len()
    }
}

fn truncate_to_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How a process came to an end in [`FfmpegProcess::graceful_stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoppedBy {
    /// It had already exited before anything was sent.
    AlreadyExited,
    /// It read `q` on stdin and finished its output.
    Quit,
    /// It needed SIGTERM.
    Terminate,
    /// It needed SIGKILL; its output may lack a trailer.
    Kill,
}

/// The result of [`FfmpegProcess::graceful_stop`].
#[derive(Debug, Clone)]
pub struct StopOutcome {
    pub stopped_by: StoppedBy,
    pub exit_status: ExitStatus,
    /// Exit 0, or exit 255 after SIGTERM (ffmpeg's "received signal 15, exiting normally").
    pub clean: bool,
    pub stderr_tail: String,
}

/// A program that has exited.
#[derive(Debug, Clone)]
pub struct FinishedProcess {
    pub exit_status: ExitStatus,
    pub stderr_tail: String,
}

impl FinishedProcess {
    pub fn success(&self) -> bool {
        self.exit_status.success()
    }
}

/// A running ffmpeg or ffprobe in its own process group.
///
/// Dropping it kills the whole group unless the process has already been reaped.
#[derive(Debug)]
pub struct FfmpegProcess {
    child: Child,
    program: String,
    process_group: Option<Pid>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr_tail: Arc<Mutex<StderrTail>>,
    stderr_drain: Option<JoinHandle<()>>,
    exit_status: Option<ExitStatus>,
    paused: bool,
}

impl FfmpegProcess {
    /// Start `binary` with `arguments`. A missing binary is [`FfmpegError::BinaryNotFound`].
    pub fn spawn(
        binary: &Path,
        arguments: &[OsString],
        stdout_mode: StdoutMode,
    ) -> FfmpegResult<FfmpegProcess> {
        let mut command = Command::new(binary);
        command
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(match stdout_mode {
                StdoutMode::Piped => Stdio::piped(),
                StdoutMode::Null => Stdio::null(),
            })
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command.spawn().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => FfmpegError::BinaryNotFound {
                binary: binary.to_path_buf(),
                hint: INSTALL_HINT,
            },
            _ => FfmpegError::SpawnFailed {
                binary: binary.to_path_buf(),
                source,
            },
        })?;
        let program = program_label(binary);
        let process_group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let stderr_tail = Arc::new(Mutex::new(StderrTail::default()));
        let stderr_drain = child.stderr.take().map(|stderr| {
            tokio::spawn(drain_stderr(
                stderr,
                Arc::clone(&stderr_tail),
                program.clone(),
            ))
        });
        tracing::debug!(
            program = %program,
            pid = ?child.id(),
            arguments = ?arguments,
            "started"
        );
        Ok(FfmpegProcess {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            child,
            program,
            process_group,
            stderr_tail,
            stderr_drain,
            exit_status: None,
            paused: false,
        })
    }

    /// The process id (also the process group id), until the process has been reaped.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// "ffmpeg" or "ffprobe" (the binary's file name).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Stdout, when started with [`StdoutMode::Piped`]; must be read until end-of-file.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Stdin, for a run that reads its input from it ([`crate::argv::EngineInput::Pipe`]); once
    /// taken, [`Self::graceful_stop`] cannot send `q`: closing it (end of input) is the clean stop.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The last lines of stderr seen so far.
    pub fn stderr_tail(&self) -> String {
        lock_tail(&self.stderr_tail).text()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The exit status, if the process has exited (reaps it without blocking).
    pub fn try_exit_status(&mut self) -> FfmpegResult<Option<ExitStatus>> {
        if let Some(exit_status) = self.exit_status {
            return Ok(Some(exit_status));
        }
        let exit_status = self
            .child
            .try_wait()
            .map_err(|source| FfmpegError::io(format!("checking on {}", self.program), source))?;
        self.exit_status = exit_status;
        Ok(exit_status)
    }

    /// SIGSTOP to the process group: ffmpeg stops reading and writing until [`Self::resume`].
    pub fn pause(&mut self) -> FfmpegResult<()> {
        self.signal_group(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT to the process group.
    pub fn resume(&mut self) -> FfmpegResult<()> {
        self.signal_group(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// Wait for the process to exit. After `timeout` it is killed (whole group) and the result is
    /// [`FfmpegError::TimedOut`] naming `operation`.
    pub async fn wait_with_timeout(
        &mut self,
        timeout: Duration,
        operation: &str,
    ) -> FfmpegResult<FinishedProcess> {
        match self.wait_for_exit(timeout).await? {
            Some(exit_status) => Ok(self.finished(exit_status).await),
            None => {
                let killed = self.kill().await;
                let stderr_tail = match killed {
                    Ok(finished) => finished.stderr_tail,
                    Err(_) => self.stderr_tail(),
                };
                Err(FfmpegError::TimedOut {
                    program: self.program.clone(),
                    operation: operation.to_owned(),
                    timeout,
                    stderr_tail,
                })
            }
        }
    }

    /// SIGKILL to the process group, then reap (bounded).
    pub async fn kill(&mut self) -> FfmpegResult<FinishedProcess> {
        if let Some(exit_status) = self.try_exit_status()? {
            return Ok(self.finished(exit_status).await);
        }
        self.signal_group_ignoring_gone(Signal::SIGKILL)?;
        match self.wait_for_exit(REAP_AFTER_KILL_TIMEOUT).await? {
            Some(exit_status) => Ok(self.finished(exit_status).await),
            None => Err(FfmpegError::TimedOut {
                program: self.program.clone(),
                operation: "exit after SIGKILL".to_owned(),
                timeout: REAP_AFTER_KILL_TIMEOUT,
                stderr_tail: self.stderr_tail(),
            }),
        }
    }

    /// Stop the way ffmpeg likes best: `q` on stdin, wait `grace`; SIGTERM to the group, wait
    /// `grace`; SIGKILL. A paused process is resumed first (a stopped process reads no `q`).
    pub async fn graceful_stop(&mut self, grace: Duration) -> FfmpegResult<StopOutcome> {
        if let Some(exit_status) = self.try_exit_status()? {
            return Ok(self
                .stop_outcome(StoppedBy::AlreadyExited, exit_status)
                .await);
        }
        if self.paused {
            self.resume()?;
        }

        self.send_quit().await;
        if let Some(exit_status) = self.wait_for_exit(grace).await? {
            return Ok(self.stop_outcome(StoppedBy::Quit, exit_status).await);
        }

        tracing::info!(program = %self.program, pid = ?self.id(), "did not quit on q, sending SIGTERM");
        self.signal_group_ignoring_gone(Signal::SIGTERM)?;
        if let Some(exit_status) = self.wait_for_exit(grace).await? {
            return Ok(self.stop_outcome(StoppedBy::Terminate, exit_status).await);
        }

        tracing::warn!(program = %self.program, pid = ?self.id(), "did not exit on SIGTERM, sending SIGKILL");
        let finished = self.kill().await?;
        Ok(StopOutcome {
            stopped_by: StoppedBy::Kill,
            exit_status: finished.exit_status,
            clean: false,
            stderr_tail: finished.stderr_tail,
        })
    }

    async fn send_quit(&mut self) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        let write = async {
            stdin.write_all(b"q\n").await?;
            stdin.flush().await
        };
        match tokio::time::timeout(Duration::from_secs(1), write).await {
            Ok(Ok(())) => {}
            // A broken pipe means it is already on its way out; the waits below see to the rest.
            Ok(Err(error)) => {
                tracing::debug!(program = %self.program, %error, "could not write q to stdin")
            }
            Err(_) => tracing::debug!(program = %self.program, "writing q to stdin timed out"),
        }
    }

    async fn stop_outcome(
        &mut self,
        stopped_by: StoppedBy,
        exit_status: ExitStatus,
    ) -> StopOutcome {
        let clean = match stopped_by {
            StoppedBy::AlreadyExited | StoppedBy::Quit => exit_status.success(),
            StoppedBy::Terminate => exit_status.success() || exit_status.code() == Some(255),
            StoppedBy::Kill => false,
        };
        let finished = self.finished(exit_status).await;
        StopOutcome {
            stopped_by,
            exit_status,
            clean,
            stderr_tail: finished.stderr_tail,
        }
    }

    /// `Ok(None)` when `timeout` passed first.
    async fn wait_for_exit(&mut self, timeout: Duration) -> FfmpegResult<Option<ExitStatus>> {
        if let Some(exit_status) = self.exit_status {
            return Ok(Some(exit_status));
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(exit_status)) => {
                self.exit_status = Some(exit_status);
                self.paused = false;
                Ok(Some(exit_status))
            }
            Ok(Err(source)) => Err(FfmpegError::io(
                format!("waiting for {}", self.program),
                source,
            )),
            Err(_) => Ok(None),
        }
    }

    /// After exit: let the stderr reader reach end-of-file (bounded), then take the tail.
    async fn finished(&mut self, exit_status: ExitStatus) -> FinishedProcess {
        if let Some(mut drain) = self.stderr_drain.take()
            && tokio::time::timeout(STDERR_DRAIN_AFTER_EXIT_TIMEOUT, &mut drain)
                .await
                .is_err()
        {
            drain.abort();
        }
        let stderr_tail = self.stderr_tail();
        tracing::debug!(program = %self.program, %exit_status, "exited");
        FinishedProcess {
            exit_status,
            stderr_tail,
        }
    }

    fn signal_group(&self, signal: Signal) -> FfmpegResult<()> {
        let process_group = self.live_process_group().ok_or_else(|| {
            FfmpegError::io(
                format!("sending {signal} to {}", self.program),
                io::Error::new(io::ErrorKind::NotFound, "the process has already exited"),
            )
        })?;
        killpg(process_group, signal).map_err(|errno| {
            FfmpegError::io(
                format!("sending {signal} to {}", self.program),
                io::Error::from(errno),
            )
        })
    }

    fn signal_group_ignoring_gone(&self, signal: Signal) -> FfmpegResult<()> {
        let Some(process_group) = self.live_process_group() else {
            return Ok(());
        };
        match killpg(process_group, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(errno) => Err(FfmpegError::io(
                format!("sending {signal} to {}", self.program),
                io::Error::from(errno),
            )),
        }
    }

    /// The process group, only while the leader has not been reaped (so the id cannot be reused).
    fn live_process_group(&self) -> Option<Pid> {
        if self.exit_status.is_some() {
            return None;
        }
        self.process_group
    }
}

impl Drop for FfmpegProcess {
    fn drop(&mut self) {
        if let Some(process_group) = self.live_process_group() {
            // kill_on_drop reaches only the leader; this reaches the group, stopped or not.
            let _ = killpg(process_group, Signal::SIGKILL);
        }
    }
}

fn program_label(binary: &Path) -> String {
    binary
        .file_name()
        .unwrap_or_else(|| OsStr::new("ffmpeg"))
        .to_string_lossy()
        .into_owned()
}

fn lock_tail(tail: &Mutex<StderrTail>) -> std::sync::MutexGuard<'_, StderrTail> {
    // A panic while holding the lock leaves the ring consistent enough to read.
    tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read stderr to end-of-file, splitting on `\n` and `\r`, keeping the tail.
async fn drain_stderr(
    mut stderr: impl AsyncRead + Unpin,
    tail: Arc<Mutex<StderrTail>>,
    program: String,
) {
    let mut buffer = [0u8; 4096];
    let mut current_line: Vec<u8> = Vec::new();
    let finish_line = |line: &mut Vec<u8>| {
        if !line.is_empty() {
            let text = String::from_utf8_lossy(line);
            tracing::debug!(target: "streambot_ffmpeg::stderr", program = %program, "{text}");
            lock_tail(&tail).push_line(&text);
            line.clear();
        }
    };
    loop {
        let read = match stderr.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        for &byte in &buffer[..read] {
            if byte == b'\n' || byte == b'\r' {
                finish_line(&mut current_line);
            } else if current_line.len() < STDERR_LINE_MAX_BYTES {
                current_line.push(byte);
            }
        }
    }
    finish_line(&mut current_line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let mut tail = StderrTail::new(3, 1000);
        for index in 0..10 {
            tail.push_line(&format!("line {index}"));
        }
        assert_eq!(tail.text(), "line 7\nline 8\nline 9");
    }

    #[test]
    fn stderr_tail_keeps_at_most_max_bytes() {
        let mut tail = StderrTail::new(100, 25);
        for index in 0..10 {
            tail.push_line(&format!("line number {index}"));
        }
        assert!(tail.text().len() <= 25, "{:?}", tail.text());
        assert!(tail.text().ends_with("line number 9"));
    }

    #[test]
    fn stderr_tail_cuts_long_lines_on_char_boundaries() {
        let mut tail = StderrTail::new(5, 10);
        tail.push_line("ééééééééééééé");
        assert!(tail.text().len() <= 10);
        assert!(tail.text().starts_with('é'));
        tail.push_line("   \n");
        assert_eq!(tail.line_count(), 1);
    }

    #[test]
    fn binaries_come_from_settings_or_path() {
        let binaries = FfmpegBinaries::new("/opt/ffmpeg", "/opt/ffprobe");
        assert_eq!(binaries.ffmpeg, PathBuf::from("/opt/ffmpeg"));
        let configured =
            FfmpegBinaries::from_settings(Some(PathBuf::from("/opt/ff")), Some(PathBuf::new()));
        assert_eq!(configured.ffmpeg, PathBuf::from("/opt/ff"));
        assert_eq!(configured.ffprobe, PathBuf::from("ffprobe"));
        assert_eq!(FfmpegBinaries::default().ffmpeg, PathBuf::from("ffmpeg"));
    }

    #[tokio::test]
    async fn stderr_is_drained_and_split_on_carriage_returns() {
        let tail = Arc::new(Mutex::new(StderrTail::default()));
        let input: &[u8] = b"first\rsecond\nthird";
        drain_stderr(input, Arc::clone(&tail), "ffmpeg".to_owned()).await;
        assert_eq!(lock_tail(&tail).text(), "first\nsecond\nthird");
    }
}
