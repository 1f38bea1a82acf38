//! Async operations built from the argv builders and the process control: probe, remux, transcode,
//! audio only, concat, thumbnail (each with a timeout and a typed result), and the ffmpeg engine
//! ([`EngineRecording`]).
//!
//! Outputs are written under a temporary name (`<name>.partial` beside the output) and renamed
//! only when ffmpeg succeeded, so a killed or failed run never leaves a half file under the final
//! name. Inputs are never modified or removed here.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::argv::{
    AudioOnlyOptions, ConcatOptions, DecodeCheckSampling, EngineInput, EngineOptions, RemuxOptions,
    SplitOptions, TranscodeOptions, audio_only_arguments, concat_arguments, concat_list_contents,
    decode_check_arguments, decode_check_slices, engine_output_pattern, engine_record_arguments,
    probe_arguments, remux_arguments, split_arguments, split_output_pattern, thumbnail_arguments,
    transcode_arguments,
};
use crate::error::{FfmpegError, FfmpegResult, classify_failure};
use crate::input::MediaInput;
use crate::probe::{StreamInfo, jpeg_dimensions, parse_ffprobe_json};
use crate::process::{FfmpegBinaries, FfmpegProcess, FinishedProcess, StdoutMode, StopOutcome};
use crate::progress::{FfmpegProgress, ProgressParser};

/// ffprobe's JSON is small; more than this is not ffprobe talking.
const PROBE_OUTPUT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// ffprobe's own limit: a probe reads a few headers, so it is short whatever the longest remux or
/// recording may take (issue 11 item 7).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// A thumbnail decodes one keyframe.
pub const DEFAULT_THUMBNAIL_TIMEOUT: Duration = Duration::from_secs(60);

/// Time limits of each operation; a run that exceeds its limit is killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationTimeouts {
    pub probe: Duration,
    pub remux: Duration,
    pub transcode: Duration,
    pub thumbnail: Duration,
    pub concat: Duration,
}

impl Default for OperationTimeouts {
    fn default() -> Self {
        OperationTimeouts {
            probe: DEFAULT_PROBE_TIMEOUT,
            remux: Duration::from_secs(30 * 60),
            transcode: Duration::from_secs(6 * 60 * 60),
            thumbnail: DEFAULT_THUMBNAIL_TIMEOUT,
            concat: Duration::from_secs(30 * 60),
        }
    }
}

impl OperationTimeouts {
    /// Every operation limited to `timeout` (tests that want everything to time out).
    pub fn all(timeout: Duration) -> Self {
        OperationTimeouts {
            probe: timeout,
            remux: timeout,
            transcode: timeout,
            thumbnail: timeout,
            concat: timeout,
        }
    }

    /// Remux, transcode and concat limited to `operation_timeout` (the operator's
    /// `FFMPEG_DEFAULT_TIMEOUT`); probe and thumbnail keep their own short limits, never longer
    /// than that.
    pub fn for_operations(operation_timeout: Duration) -> Self {
        OperationTimeouts {
            probe: DEFAULT_PROBE_TIMEOUT.min(operation_timeout),
            remux: operation_timeout,
            transcode: operation_timeout,
            thumbnail: DEFAULT_THUMBNAIL_TIMEOUT.min(operation_timeout),
            concat: operation_timeout,
        }
    }
}

/// A file ffmpeg finished writing.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedOutput {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// The last `-progress` block (`ended` is true when ffmpeg reported the end).
    pub last_progress: Option<FfmpegProgress>,
    /// What ffmpeg said on stderr (warnings of a run that still exited 0).
    pub stderr_tail: String,
}

/// A thumbnail written by [`FfmpegRunner::thumbnail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub size_bytes: u64,
}

/// The first line of `-version` of each binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryVersions {
    pub ffmpeg: String,
    pub ffprobe: String,
}

/// Runs ffmpeg and ffprobe operations on local files.
#[derive(Debug, Clone, Default)]
pub struct FfmpegRunner {
    binaries: FfmpegBinaries,
    timeouts: OperationTimeouts,
}

impl FfmpegRunner {
    pub fn new(binaries: FfmpegBinaries) -> Self {
        FfmpegRunner {
            binaries,
            timeouts: OperationTimeouts::default(),
        }
    }

    /// `binaries`, remux/transcode/concat limited to `operation_timeout`, probe and thumbnail
    /// to their own short limits (see [`OperationTimeouts::for_operations`]). The binary crate
    /// reads these from its settings; this crate never reads the environment.
    pub fn with_operation_timeout(binaries: FfmpegBinaries, operation_timeout: Duration) -> Self {
        FfmpegRunner::new(binaries)
            .with_timeouts(OperationTimeouts::for_operations(operation_timeout))
    }

    pub fn with_timeouts(mut self, timeouts: OperationTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    pub fn binaries(&self) -> &FfmpegBinaries {
        &self.binaries
    }

    pub fn timeouts(&self) -> &OperationTimeouts {
        &self.timeouts
    }

    /// Both binaries start and report a version (a start-up check): otherwise `BinaryNotFound` etc.
    pub async fn versions(&self) -> FfmpegResult<BinaryVersions> {
        Ok(BinaryVersions {
            ffmpeg: self.version_of(&self.binaries.ffmpeg).await?,
            ffprobe: self.version_of(&self.binaries.ffprobe).await?,
        })
    }

    async fn version_of(&self, binary: &Path) -> FfmpegResult<String> {
        let arguments = vec![OsString::from("-version")];
        let (finished, stdout) =
            run_collecting_stdout(binary, &arguments, self.timeouts.probe, "version check").await?;
        if !finished.success() {
            return Err(classify_failure(
                &binary.to_string_lossy(),
                finished.exit_status,
                &finished.stderr_tail,
                "-version",
                None,
            ));
        }
        Ok(String::from_utf8_lossy(&stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }

    /// ffprobe a local file.
    pub async fn probe(&self, input: &Path) -> FfmpegResult<StreamInfo> {
        let stdout = self.probe_json(input).await?;
        let json = String::from_utf8_lossy(&stdout);
        parse_ffprobe_json(&json)
    }

    /// ffprobe's JSON (format and streams) of a local file.
    async fn probe_json(&self, input: &Path) -> FfmpegResult<Vec<u8>> {
        ensure_input_exists(input).await?;
        let media = identify(input).await?;
        let arguments = probe_arguments(&media);
        let (finished, stdout) = run_collecting_stdout(
            &self.binaries.ffprobe,
            &arguments,
            self.timeouts.probe,
            "probe",
        )
        .await?;
        if !finished.success() {
            return Err(classify_failure(
                "ffprobe",
                finished.exit_status,
                &finished.stderr_tail,
                &input.to_string_lossy(),
                None,
            ));
        }
        Ok(stdout)
    }

    /// The start time of a local file in seconds (ffprobe's `format.start_time`: the stream's own
    /// clock, e.g. an MPEG-TS part's first PTS / 90 kHz); `None` when ffprobe does not say.
    pub async fn probe_start_seconds(&self, input: &Path) -> FfmpegResult<Option<f64>> {
        let stdout = self.probe_json(input).await?;
        let json: serde_json::Value =
            serde_json::from_slice(&stdout).map_err(|error| FfmpegError::ProbeParse {
                detail: error.to_string(),
            })?;
        Ok(json
            .get("format")
            .and_then(|format| format.get("start_time"))
            .and_then(|start| start.as_str())
            .and_then(|start| start.parse::<f64>().ok())
            .filter(|start| start.is_finite()))
    }

    /// Remux without re-encoding (see [`remux_arguments`]).
    pub async fn remux(
        &self,
        input: &Path,
        output: &Path,
        options: &RemuxOptions,
        progress: Option<&watch::Sender<FfmpegProgress>>,
    ) -> FfmpegResult<FinishedOutput> {
        let run = OutputRun {
            operation: "remux",
            input,
            audio_input: options.audio_input.as_ref(),
            output,
            timeout: self.timeouts.remux,
        };
        let media = identify(input).await?;
        self.run_to_output(run, progress, |partial| {
            remux_arguments(&media, partial, options)
        })
        .await
    }

    /// Re-encode (see [`transcode_arguments`]).
    pub async fn transcode(
        &self,
        input: &Path,
        output: &Path,
        options: &TranscodeOptions,
        progress: Option<&watch::Sender<FfmpegProgress>>,
    ) -> FfmpegResult<FinishedOutput> {
        let run = OutputRun {
            operation: "transcode",
            input,
            audio_input: options.audio_input.as_ref(),
            output,
            timeout: self.timeouts.transcode,
        };
        let media = identify(input).await?;
        self.run_to_output(run, progress, |partial| {
            transcode_arguments(&media, partial, options)
        })
        .await
    }

    /// Audio only, to an m4a (see [`audio_only_arguments`]).
    pub async fn audio_only(
        &self,
        input: &Path,
        output: &Path,
        options: &AudioOnlyOptions,
        progress: Option<&watch::Sender<FfmpegProgress>>,
    ) -> FfmpegResult<FinishedOutput> {
        let run = OutputRun {
            operation: "audio extraction",
            input,
            audio_input: None,
            output,
            timeout: self.timeouts.remux,
        };
        let media = identify(input).await?;
        self.run_to_output(run, progress, |partial| {
            audio_only_arguments(&media, partial, options)
        })
        .await
    }

    /// Split `input` into pieces of about `options.piece_seconds` (cut on keyframes) in
    /// `output_directory`, named `<stem>-part001.<ext>`, ...; returns the pieces in order. Pieces
    /// of an earlier attempt with the same stem are removed first.
    pub async fn split(
        &self,
        input: &Path,
        output_directory: &Path,
        stem: &str,
        options: &SplitOptions,
        progress: Option<&watch::Sender<FfmpegProgress>>,
    ) -> FfmpegResult<Vec<PathBuf>> {
        ensure_input_exists(input).await?;
        let piece_path = |number: u32| {
            output_directory.join(format!(
                "{stem}-part{number:03}.{}",
                options.container.extension()
            ))
        };
        for number in 1..=9_999u32 {
            let stale_piece = piece_path(number);
            if !tokio::fs::try_exists(&stale_piece).await.unwrap_or(false) {
                break;
            }
            remove_file_if_present(&stale_piece).await;
        }
        let media = identify(input).await?;
        let pattern = split_output_pattern(output_directory, stem, options.container);
        let arguments = split_arguments(&media, &pattern, options);
        let (finished, _) = run_ffmpeg(
            &self.binaries.ffmpeg,
            &arguments,
            "split",
            self.timeouts.remux,
            progress,
        )
        .await?;
        if !finished.success() {
            return Err(classify_failure(
                "ffmpeg",
                finished.exit_status,
                &finished.stderr_tail,
                &input.to_string_lossy(),
                Some(output_directory),
            ));
        }
        let mut pieces = Vec::new();
        for number in 1..=9_999u32 {
            let piece = piece_path(number);
            match tokio::fs::metadata(&piece).await {
                Ok(metadata) if metadata.len() > 0 => pieces.push(piece),
                _ => break,
            }
        }
        Ok(pieces)
    }

    /// Join `inputs` in order without re-encoding (concat demuxer; the list file is written beside
    /// the output and removed afterwards).
    pub async fn concat(
        &self,
        inputs: &[PathBuf],
        output: &Path,
        options: &ConcatOptions,
        progress: Option<&watch::Sender<FfmpegProgress>>,
    ) -> FfmpegResult<FinishedOutput> {
        let Some(first_input) = inputs.first() else {
            return Err(FfmpegError::io(
                "concatenating",
                io::Error::new(io::ErrorKind::InvalidInput, "no inputs to concatenate"),
            ));
        };
        let mut absolute_inputs = Vec::with_capacity(inputs.len());
        let inputs_format = identify(first_input).await?.format;
        for input in inputs {
            ensure_input_exists(input).await?;
            let media = identify(input).await?;
            if media.format != inputs_format {
                return Err(FfmpegError::NotMedia {
                    input: input.to_string_lossy().into_owned(),
                    looks_like: format!(
                        "{} data among {} files to join",
                        media.format.demuxer(),
                        inputs_format.demuxer()
                    ),
                });
            }
            absolute_inputs.push(std::path::absolute(input).map_err(|source| {
                FfmpegError::io(format!("resolving {}", input.display()), source)
            })?);
        }
        let list_file = sibling_path(output, "concat.txt");
        tokio::fs::write(&list_file, concat_list_contents(&absolute_inputs))
            .await
            .map_err(|source| {
                FfmpegError::io(format!("writing {}", list_file.display()), source)
            })?;
        let run = OutputRun {
            operation: "concat",
            input: first_input,
            audio_input: None,
            output,
            timeout: self.timeouts.concat,
        };
        let result = self
            .run_to_output(run, progress, |partial| {
                concat_arguments(&list_file, inputs_format, partial, options)
            })
            .await;
        remove_file_if_present(&list_file).await;
        result
    }

    /// Decode `input` (of `duration_seconds`; sampled past `sampling`'s length, see
    /// [`decode_check_slices`]) and
    /// count the errors ffmpeg prints. A run that fails outright counts its lines too (at least
    /// one): the file is damaged, not the check.
    pub async fn decode_check(
        &self,
        input: &Path,
        duration_seconds: f64,
        sampling: DecodeCheckSampling,
    ) -> FfmpegResult<DecodeCheck> {
        ensure_input_exists(input).await?;
        let media = identify(input).await?;
        let slices = decode_check_slices(duration_seconds, sampling);
        let arguments = decode_check_arguments(
            &media,
            slices.as_ref().map(|slices| &slices[..]),
            sampling.keyframes_only,
        );
        // One process for every slice (a process start costs more than decoding 2 s).
        let (finished, _) = run_ffmpeg(
            &self.binaries.ffmpeg,
            &arguments,
            "decode check",
            self.timeouts.remux,
            None,
        )
        .await?;
        let lines: Vec<&str> = finished
            .stderr_tail
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        let error_count = if lines.is_empty() && !finished.success() {
            1
        } else {
            lines.len()
        };
        Ok(DecodeCheck {
            sampled: slices.is_some() || sampling.keyframes_only,
            error_count,
            first_errors: lines
                .into_iter()
                .take(DECODE_CHECK_ERRORS_KEPT)
                .map(str::to_owned)
                .collect(),
        })
    }

    /// A JPEG of the first keyframe, at most 320 px on the long side.
    pub async fn thumbnail(&self, input: &Path, output_jpeg: &Path) -> FfmpegResult<Thumbnail> {
        let run = OutputRun {
            operation: "thumbnail",
            input,
            audio_input: None,
            output: output_jpeg,
            timeout: self.timeouts.thumbnail,
        };
        let media = identify(input).await?;
        let finished = self
            .run_to_output(run, None, |partial| thumbnail_arguments(&media, partial))
            .await?;
        let bytes = tokio::fs::read(&finished.path).await.map_err(|source| {
            FfmpegError::io(format!("reading {}", finished.path.display()), source)
        })?;
        let (width, height) = jpeg_dimensions(&bytes).ok_or_else(|| FfmpegError::InvalidInput {
            input: input.to_string_lossy().into_owned(),
            detail: "ffmpeg wrote no valid JPEG (no video frame?)".to_owned(),
            stderr_tail: String::new(),
        })?;
        Ok(Thumbnail {
            path: finished.path,
            width,
            height,
            size_bytes: finished.size_bytes,
        })
    }

    /// Check the inputs exist, run ffmpeg writing to `<output>.partial`, then rename it to `output`
    /// on success; on failure remove the partial file and classify the error from stderr.
    async fn run_to_output(
        &self,
        run: OutputRun<'_>,
        progress: Option<&watch::Sender<FfmpegProgress>>,
        build_arguments: impl FnOnce(&Path) -> Vec<OsString>,
    ) -> FfmpegResult<FinishedOutput> {
        let OutputRun {
            operation,
            input,
            audio_input,
            output,
            timeout,
        } = run;
        ensure_input_exists(input).await?;
        if let Some(audio_input) = audio_input {
            ensure_input_exists(&audio_input.path).await?;
            let identified = identify(&audio_input.path).await?;
            if identified.format != audio_input.format {
                return Err(FfmpegError::NotMedia {
                    input: audio_input.path.to_string_lossy().into_owned(),
                    looks_like: format!(
                        "{} data, not {}",
                        identified.format.demuxer(),
                        audio_input.format.demuxer()
                    ),
                });
            }
        }
        let partial_output = partial_path(output);
        let partial = partial_output.as_path();
        // A leftover at that name (an earlier attempt's file, or a link) is removed, never
        // written through: `-y` would follow a symbolic link.
        if std::fs::symlink_metadata(partial).is_ok_and(|metadata| !metadata.is_dir()) {
            let _ = std::fs::remove_file(partial);
        }
        let arguments = build_arguments(partial);
        let ran = run_ffmpeg(
            &self.binaries.ffmpeg,
            &arguments,
            operation,
            timeout,
            progress,
        )
        .await;
        let (finished, last_progress) = match ran {
            Ok(ran) => ran,
            Err(error) => {
                remove_file_if_present(partial).await;
                return Err(error);
            }
        };
        if !finished.success() {
            remove_file_if_present(partial).await;
            return Err(classify_failure(
                "ffmpeg",
                finished.exit_status,
                &finished.stderr_tail,
                &input.to_string_lossy(),
                Some(output),
            ));
        }
        let size_bytes = match tokio::fs::metadata(partial).await {
            Ok(metadata) if metadata.len() > 0 => metadata.len(),
            _ => {
                remove_file_if_present(partial).await;
                return Err(FfmpegError::InvalidInput {
                    input: input.to_string_lossy().into_owned(),
                    detail: format!("{operation} produced no output"),
                    stderr_tail: finished.stderr_tail,
                });
            }
        };
        tokio::fs::rename(partial, output).await.map_err(|source| {
            FfmpegError::io(
                format!("renaming {} to {}", partial.display(), output.display()),
                source,
            )
        })?;
        Ok(FinishedOutput {
            path: output.to_path_buf(),
            size_bytes,
            last_progress,
            stderr_tail: finished.stderr_tail,
        })
    }
}

/// Error lines kept in a [`DecodeCheck`].
pub const DECODE_CHECK_ERRORS_KEPT: usize = 5;

/// How a finished file decoded (`ffmpeg -v error -f null -`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecodeCheck {
    /// Errors ffmpeg printed (counted from its last lines: at most the stderr tail's 40 lines).
    pub error_count: usize,
    /// Only slices, or only the keyframes, were decoded.
    pub sampled: bool,
    /// The first few error lines.
    pub first_errors: Vec<String>,
}

impl DecodeCheck {
    pub fn is_clean(&self) -> bool {
        self.error_count == 0
    }
}

/// One run of ffmpeg that writes one output file.
struct OutputRun<'a> {
    operation: &'a str,
    input: &'a Path,
    audio_input: Option<&'a MediaInput>,
    output: &'a Path,
    timeout: Duration,
}

/// Run ffmpeg with `arguments` (which should include `-progress pipe:1` when `progress` is given)
/// until it exits or `timeout` passes; progress blocks go to `progress`. Returns the exit (success
/// or not) and the last progress block.
pub async fn run_ffmpeg(
    ffmpeg: &Path,
    arguments: &[OsString],
    operation: &str,
    timeout: Duration,
    progress: Option<&watch::Sender<FfmpegProgress>>,
) -> FfmpegResult<(FinishedProcess, Option<FfmpegProgress>)> {
    let mut process = FfmpegProcess::spawn(ffmpeg, arguments, StdoutMode::Piped)?;
    let stdout = process.take_stdout();
    let reading = async {
        let mut last_progress = None;
        if let Some(stdout) = stdout {
            read_progress(stdout, |block| {
                if let Some(sender) = progress {
                    sender.send_replace(block.clone());
                }
                last_progress = Some(block);
            })
            .await;
        }
        last_progress
    };
    let (last_progress, finished) =
        tokio::join!(reading, process.wait_with_timeout(timeout, operation));
    Ok((finished?, last_progress))
}

/// Read `-progress` output to end-of-file, calling `on_progress` with each block.
pub async fn read_progress(
    reader: impl AsyncRead + Unpin,
    mut on_progress: impl FnMut(FfmpegProgress),
) {
    let mut lines = BufReader::new(reader).lines();
    let mut parser = ProgressParser::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(block) = parser.push_line(&line) {
            on_progress(block);
        }
    }
}

/// Spawn a task that reads `-progress` output into a watch channel.
pub fn spawn_progress_watch(
    reader: impl AsyncRead + Unpin + Send + 'static,
) -> (watch::Receiver<FfmpegProgress>, JoinHandle<()>) {
    let (sender, receiver) = watch::channel(FfmpegProgress::default());
    let task = tokio::spawn(async move {
        read_progress(reader, |block| {
            sender.send_replace(block);
        })
        .await;
    });
    (receiver, task)
}

async fn run_collecting_stdout(
    binary: &Path,
    arguments: &[OsString],
    timeout: Duration,
    operation: &str,
) -> FfmpegResult<(FinishedProcess, Vec<u8>)> {
    let mut process = FfmpegProcess::spawn(binary, arguments, StdoutMode::Piped)?;
    let stdout = process.take_stdout();
    let reading = async {
        let mut collected = Vec::new();
        if let Some(stdout) = stdout {
            // A read error only shortens the output; the exit status tells what happened.
            let _ = stdout
                .take(PROBE_OUTPUT_MAX_BYTES)
                .read_to_end(&mut collected)
                .await;
        }
        collected
    };
    let (collected, finished) =
        tokio::join!(reading, process.wait_with_timeout(timeout, operation));
    Ok((finished?, collected))
}

/// [`MediaInput::identify`] off the async threads.
async fn identify(input: &Path) -> FfmpegResult<MediaInput> {
    let path = input.to_path_buf();
    tokio::task::spawn_blocking(move || MediaInput::identify(&path))
        .await
        .map_err(|error| FfmpegError::io("identifying an input", io::Error::other(error)))?
}

async fn ensure_input_exists(input: &Path) -> FfmpegResult<()> {
    match tokio::fs::metadata(input).await {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(FfmpegError::InputNotFound {
            path: input.to_path_buf(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(FfmpegError::InputNotFound {
            path: input.to_path_buf(),
        }),
        Err(source) => Err(FfmpegError::io(
            format!("reading {}", input.display()),
            source,
        )),
    }
}

/// `<dir>/<name>.partial`, where an output is written before it is complete.
pub fn partial_path(output: &Path) -> PathBuf {
    sibling_path(output, "partial")
}

fn sibling_path(output: &Path, suffix: &str) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_else(|| OsString::from("output"));
    name.push(".");
    name.push(suffix);
    output.with_file_name(name)
}

async fn remove_file_if_present(path: &Path) {
    if let Err(error) = tokio::fs::remove_file(path).await
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "could not remove temporary file");
    }
}

/// The ffmpeg engine: ffmpeg reads its stdin (fed by the caller, see
/// [`EngineRecording::take_input_pipe`]) or a local file, never the network, and writes MPEG-TS
/// segments (`part-0001.ts`, ...) into a directory. Progress in a watch channel; pause/resume by
/// SIGSTOP/SIGCONT; stop by closing the input pipe (or `q`), then SIGTERM, then SIGKILL.
#[derive(Debug)]
pub struct EngineRecording {
    process: FfmpegProcess,
    input_description: String,
    output_directory: PathBuf,
    progress_receiver: watch::Receiver<FfmpegProgress>,
    progress_task: Option<JoinHandle<()>>,
}

/// How an engine recording ended.
#[derive(Debug, Clone)]
pub struct EngineRecordingOutcome {
    /// The non-empty segment files, in order.
    pub segment_files: Vec<PathBuf>,
    pub last_progress: FfmpegProgress,
    /// Present when ended by [`EngineRecording::stop`].
    pub stop: Option<StopOutcome>,
    pub stderr_tail: String,
}

impl EngineRecording {
    /// Create `output_directory` and start ffmpeg on `input`.
    pub async fn start(
        binaries: &FfmpegBinaries,
        input: &EngineInput,
        output_directory: &Path,
        options: &EngineOptions,
    ) -> FfmpegResult<EngineRecording> {
        tokio::fs::create_dir_all(output_directory)
            .await
            .map_err(|source| {
                FfmpegError::io(format!("creating {}", output_directory.display()), source)
            })?;
        let arguments =
            engine_record_arguments(input, &engine_output_pattern(output_directory), options);
        let mut process = FfmpegProcess::spawn(&binaries.ffmpeg, &arguments, StdoutMode::Piped)?;
        let (progress_receiver, progress_task) = match process.take_stdout() {
            Some(stdout) => {
                let (receiver, task) = spawn_progress_watch(stdout);
                (receiver, Some(task))
            }
            None => (watch::channel(FfmpegProgress::default()).1, None),
        };
        Ok(EngineRecording {
            process,
            input_description: input.describe(),
            output_directory: output_directory.to_path_buf(),
            progress_receiver,
            progress_task,
        })
    }

    /// ffmpeg's stdin, for an [`EngineInput::Pipe`] recording: write the media into it and drop it
    /// at the end (ffmpeg then finishes the last segment and exits by itself).
    pub fn take_input_pipe(&mut self) -> Option<tokio::process::ChildStdin> {
        self.process.take_stdin()
    }

    /// Progress updates (one per `-progress` block, about every 0.5 s).
    pub fn progress(&self) -> watch::Receiver<FfmpegProgress> {
        self.progress_receiver.clone()
    }

    pub fn latest_progress(&self) -> FfmpegProgress {
        self.progress_receiver.borrow().clone()
    }

    pub fn process_id(&self) -> Option<u32> {
        self.process.id()
    }

    pub fn output_directory(&self) -> &Path {
        &self.output_directory
    }

    pub fn is_paused(&self) -> bool {
        self.process.is_paused()
    }

    /// True once ffmpeg has exited by itself (end of stream, `max_duration`, an error); then
    /// [`EngineRecording::wait`] returns at once with the outcome.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.process.try_exit_status(), Ok(Some(_)) | Err(_))
    }

    /// SIGSTOP: ffmpeg stops reading; what the source sends meanwhile is not recorded.
    pub fn pause(&mut self) -> FfmpegResult<()> {
        self.process.pause()
    }

    pub fn resume(&mut self) -> FfmpegResult<()> {
        self.process.resume()
    }

    /// Stop gracefully (see [`FfmpegProcess::graceful_stop`]); the segments written are kept.
    pub async fn stop(&mut self, grace: Duration) -> FfmpegResult<EngineRecordingOutcome> {
        let stop = self.process.graceful_stop(grace).await?;
        let stderr_tail = stop.stderr_tail.clone();
        self.outcome(Some(stop), stderr_tail).await
    }

    /// Wait until ffmpeg ends by itself (end of stream, `max_duration`). A failure is classified
    /// from stderr (e.g. [`FfmpegError::NetworkFailure`]); the segments written stay on disk (see
    /// [`engine_segment_files`]). After `timeout` ffmpeg is killed and the result is `TimedOut`.
    pub async fn wait(&mut self, timeout: Duration) -> FfmpegResult<EngineRecordingOutcome> {
        let finished = self.process.wait_with_timeout(timeout, "recording").await?;
        if !finished.success() {
            return Err(classify_failure(
                "ffmpeg",
                finished.exit_status,
                &finished.stderr_tail,
                &self.input_description,
                Some(&self.output_directory),
            ));
        }
        self.outcome(None, finished.stderr_tail).await
    }

    async fn outcome(
        &mut self,
        stop: Option<StopOutcome>,
        stderr_tail: String,
    ) -> FfmpegResult<EngineRecordingOutcome> {
        if let Some(mut task) = self.progress_task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        let segment_files = engine_segment_files(&self.output_directory).map_err(|source| {
            FfmpegError::io(
                format!("listing {}", self.output_directory.display()),
                source,
            )
        })?;
        Ok(EngineRecordingOutcome {
            segment_files,
            last_progress: self.latest_progress(),
            stop,
            stderr_tail,
        })
    }
}

/// The non-empty `part-NNNN.ts` files of the ffmpeg engine in `output_directory`, in order.
pub fn engine_segment_files(output_directory: &Path) -> io::Result<Vec<PathBuf>> {
    let mut segment_files = Vec::new();
    for entry in std::fs::read_dir(output_directory)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_segment = name
            .strip_prefix("part-")
            .and_then(|rest| rest.strip_suffix(".ts"))
            .is_some_and(|number| {
                !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit())
            });
        if is_segment && entry.metadata()?.len() > 0 {
            segment_files.push(entry.path());
        }
    }
    segment_files.sort_by_key(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| {
                name.trim_start_matches("part-")
                    .trim_end_matches(".ts")
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(u64::MAX)
    });
    Ok(segment_files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_keep_a_short_timeout_whatever_the_operation_timeout() {
        let timeouts = OperationTimeouts::for_operations(Duration::from_secs(7200));
        assert_eq!(timeouts.probe, DEFAULT_PROBE_TIMEOUT);
        assert_eq!(timeouts.thumbnail, DEFAULT_THUMBNAIL_TIMEOUT);
        assert_eq!(timeouts.remux, Duration::from_secs(7200));
        assert_eq!(timeouts.concat, Duration::from_secs(7200));
        let short = OperationTimeouts::for_operations(Duration::from_secs(5));
        assert_eq!(short.probe, Duration::from_secs(5));
        let runner = FfmpegRunner::with_operation_timeout(
            FfmpegBinaries::default(),
            Duration::from_secs(7200),
        );
        assert_eq!(runner.timeouts().probe, DEFAULT_PROBE_TIMEOUT);
    }

    #[test]
    fn partial_path_is_beside_the_output() {
        assert_eq!(
            partial_path(Path::new("/r/out.mp4")),
            PathBuf::from("/r/out.mp4.partial")
        );
        assert_eq!(
            sibling_path(Path::new("out.mp4"), "concat.txt"),
            PathBuf::from("out.mp4.concat.txt")
        );
    }

    #[test]
    fn segment_files_are_listed_in_numeric_order_without_empty_or_foreign_files() -> io::Result<()>
    {
        let directory = tempfile::tempdir()?;
        for (name, contents) in [
            ("part-0010.ts", "x"),
            ("part-0002.ts", "x"),
            ("part-0003.ts", ""),
            ("part-abcd.ts", "x"),
            ("notes.txt", "x"),
            ("part-10000.ts", "x"),
        ] {
            std::fs::write(directory.path().join(name), contents)?;
        }
        let names: Vec<String> = engine_segment_files(directory.path())?
            .iter()
            .filter_map(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .collect();
        assert_eq!(names, ["part-0002.ts", "part-0010.ts", "part-10000.ts"]);
        Ok(())
    }

    #[tokio::test]
    async fn progress_reader_feeds_the_watch() {
        let input: &'static [u8] = b"frame=1\nprogress=continue\nframe=2\nprogress=end\n";
        let (receiver, task) = spawn_progress_watch(input);
        task.await.expect("reader task");
        let last = receiver.borrow().clone();
        assert_eq!(last.frame, Some(2));
        assert!(last.ended);
    }
}
