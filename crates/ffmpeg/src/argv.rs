//! Pure argv builders for every ffmpeg/ffprobe invocation of the project.
//!
//! Rules kept by every builder that reads local files:
//! - before each `-i`: the input format named (`-f mpegts`, `-f mov`, ...), `-format_whitelist` of
//!   exactly that demuxer (`concat` and the one inner demuxer for a concat list), and
//!   `-protocol_whitelist file`: whatever a part's bytes say, ffmpeg opens no other file and never
//!   the network (see [`crate::input`]);
//! - local paths are passed as `file:<path>`, so a name with a `:` or a leading `-` means nothing else;
//! - no `-nostdin`: stdin is how [`crate::process::FfmpegProcess::graceful_stop`] sends `q`;
//! - `-y`, `-hide_banner`, `-nostats`, `-loglevel warning`, and `-progress pipe:1` when stdout is read;
//! - explicit `-map` of video and audio only (HLS timed-metadata / data streams break mp4 muxing);
//! - an explicit `-f`, so the output may be written under a temporary name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::input::{InputFormat, MediaInput};
use crate::probe::StreamInfo;

/// Protocols allowed when ffmpeg reads local files.
pub const LOCAL_PROTOCOL_WHITELIST: &str = "file";
/// Protocols allowed when ffmpeg reads our own pipe (its stdin).
pub const PIPE_PROTOCOL_WHITELIST: &str = "pipe";
/// How much of the input the thumbnail of a remux reads (its first keyframe is in there for any
/// HLS segmenting; without one, no thumbnail is written and finalize takes one separately).
pub const THUMBNAIL_INPUT_SECONDS: &str = "6";
/// Telegram's limit for a video thumbnail's long side.
pub const THUMBNAIL_MAX_SIDE_PIXELS: u32 = 320;

/// The container of a finished file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputContainer {
    #[default]
    Mp4,
    Mkv,
    Ts,
    /// Audio only (AAC in MP4).
    M4a,
}

impl OutputContainer {
    pub fn extension(self) -> &'static str {
        match self {
            OutputContainer::Mp4 => "mp4",
            OutputContainer::Mkv => "mkv",
            OutputContainer::Ts => "ts",
            OutputContainer::M4a => "m4a",
        }
    }

    /// The ffmpeg muxer name given to `-f`.
    pub fn muxer(self) -> &'static str {
        match self {
            OutputContainer::Mp4 => "mp4",
            OutputContainer::Mkv => "matroska",
            OutputContainer::Ts => "mpegts",
            OutputContainer::M4a => "ipod",
        }
    }

    /// Whether `-movflags +faststart` applies.
    pub fn supports_faststart(self) -> bool {
        matches!(self, OutputContainer::Mp4 | OutputContainer::M4a)
    }

    /// Whether AAC must be stored as AudioSpecificConfig (not ADTS) in this container.
    pub fn needs_raw_aac(self) -> bool {
        matches!(
            self,
            OutputContainer::Mp4 | OutputContainer::M4a | OutputContainer::Mkv
        )
    }

    pub fn is_audio_only(self) -> bool {
        self == OutputContainer::M4a
    }
}

/// Options of [`remux_arguments`] (`-c copy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemuxOptions {
    pub container: OutputContainer,
    /// `-movflags +faststart` (mp4/m4a only): the index first, so playback starts before download ends.
    /// Costs a second pass that rewrites the whole file; see `reserved_index_bytes`.
    pub faststart: bool,
    /// `-moov_size <bytes>` (mp4/m4a only, instead of `+faststart`): the index is written first
    /// into this much reserved space, in one pass (issue 18). Too small a reservation makes
    /// ffmpeg log `reserved_moov_size is too small` (see [`reserved_index_shortfall`]).
    pub reserved_index_bytes: Option<u64>,
    /// Also write a JPEG of the first keyframe here, from the same run (a second, short read of
    /// the input: see [`THUMBNAIL_INPUT_SECONDS`]); video outputs only.
    pub thumbnail: Option<PathBuf>,
    /// A separately fetched audio rendition: video from the main input, audio from this one.
    pub audio_input: Option<MediaInput>,
    /// `-avoid_negative_ts make_zero`: the file starts at 0, not at the live stream's clock.
    pub timestamps_from_zero: bool,
    /// The audio that ends up in the output is AAC in ADTS framing (AAC from MPEG-TS or a raw `.aac`
    /// file): adds `-bsf:a aac_adtstoasc` for mp4/m4a/mkv. See [`crate::probe::StreamInfo::audio_is_adts_aac`].
    pub audio_is_adts_aac: bool,
    /// More audio renditions, each its own audio track after the first (`audio_input`, or the
    /// main input's audio); see [`AudioTrackInput`].
    pub extra_audio_inputs: Vec<AudioTrackInput>,
    /// Language and title of the first audio track (the main input's or `audio_input`'s).
    pub first_audio_track: TrackLabel,
    /// WebVTT subtitle files, each its own subtitle track (`mov_text` in mp4, WebVTT in mkv;
    /// left out of ts and m4a). See [`SubtitleInput`].
    pub subtitle_inputs: Vec<SubtitleInput>,
    /// Stream ids (MPEG-TS PIDs) of the main input left out (`-map -0:i:<id>`): streams its
    /// program map declares that carry no packet, which ffmpeg cannot write (see
    /// [`crate::known_streams::ts_streams_without_packets`]).
    pub main_streams_left_out: Vec<u16>,
    /// The stream id of the main input's video the thumbnail is made from (`-map N:i:<id>`);
    /// `None`: its first video stream (`v:0`).
    pub thumbnail_stream_id: Option<u16>,
    /// Stream ids of `audio_input` left out (`-map -1:i:<id>`), as `main_streams_left_out`.
    pub audio_streams_left_out: Vec<u16>,
}

/// A track's language (any BCP 47 tag; written as its ISO 639-2 code, see [`iso639_2_code`])
/// and title.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackLabel {
    pub language: Option<String>,
    pub title: Option<String>,
}

/// An audio rendition recorded as its own file, muxed as one more audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrackInput {
    pub input: MediaInput,
    pub label: TrackLabel,
    /// The stream id of its audio to map (`-map N:i:<id>`); `None`: its first audio (`a:0`).
    pub stream_id: Option<u16>,
}

/// A WebVTT file whose cue times are already the output's times (seconds from its start). ffmpeg
/// keeps a subtitle-only input's cue times as written (it does not move it to start at zero as
/// it does audio and video inputs; `crates/recorder/tests/tracks.rs` checks the first cue's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleInput {
    pub path: PathBuf,
    pub label: TrackLabel,
}

/// The ISO 639-2 code for a language tag's primary language (`de-DE` → `deu`), as mp4 and mkv
/// want it; a three-letter tag is taken as it is; `None` for what is not known.
pub fn iso639_2_code(tag: &str) -> Option<String> {
    const CODES: [(&str, &str); 48] = [
        ("ar", "ara"),
        ("bg", "bul"),
        ("bn", "ben"),
        ("ca", "cat"),
        ("cs", "ces"),
        ("da", "dan"),
        ("de", "deu"),
        ("el", "ell"),
        ("en", "eng"),
        ("es", "spa"),
        ("et", "est"),
        ("fa", "fas"),
        ("fi", "fin"),
        ("fr", "fra"),
        ("he", "heb"),
        ("hi", "hin"),
        ("hr", "hrv"),
        ("hu", "hun"),
        ("id", "ind"),
        ("it", "ita"),
        ("ja", "jpn"),
        ("ka", "kat"),
        ("kk", "kaz"),
        ("ko", "kor"),
        ("lt", "lit"),
        ("lv", "lav"),
        ("ms", "msa"),
        ("nb", "nob"),
        ("nl", "nld"),
        ("nn", "nno"),
        ("no", "nor"),
        ("pl", "pol"),
        ("pt", "por"),
        ("ro", "ron"),
        ("ru", "rus"),
        ("sk", "slk"),
        ("sl", "slv"),
        ("sr", "srp"),
        ("sv", "swe"),
        ("ta", "tam"),
        ("th", "tha"),
        ("tr", "tur"),
        ("uk", "ukr"),
        ("ur", "urd"),
        ("uz", "uzb"),
        ("vi", "vie"),
        ("zh", "zho"),
        ("be", "bel"),
    ];
    let primary = tag
        .trim()
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if primary.len() == 3 && primary.chars().all(|c| c.is_ascii_lowercase()) {
        return Some(primary);
    }
    CODES
        .iter()
        .find(|(two, _)| *two == primary)
        .map(|(_, three)| (*three).to_string())
}

impl RemuxOptions {
    /// Faststart and timestamps from zero on; no separate audio.
    pub fn new(container: OutputContainer) -> Self {
        RemuxOptions {
            container,
            faststart: true,
            reserved_index_bytes: None,
            thumbnail: None,
            audio_input: None,
            timestamps_from_zero: true,
            audio_is_adts_aac: false,
            extra_audio_inputs: Vec::new(),
            first_audio_track: TrackLabel::default(),
            subtitle_inputs: Vec::new(),
            main_streams_left_out: Vec::new(),
            thumbnail_stream_id: None,
            audio_streams_left_out: Vec::new(),
        }
    }
}

impl Default for RemuxOptions {
    fn default() -> Self {
        RemuxOptions::new(OutputContainer::Mp4)
    }
}

/// A re-encoding target: libx264 CRF with the height capped, AAC audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodePreset {
    /// Height cap in pixels; never upscaled; width follows the aspect ratio (even).
    pub max_height: u32,
    /// x264 constant rate factor (lower is better; 18-28 is sensible).
    pub crf: u8,
    pub audio_bitrate_kbps: u32,
    /// x264 speed preset (`ultrafast` ... `veryslow`).
    pub preset: String,
}

impl TranscodePreset {
    /// 720p, CRF 23, 128 kb/s audio.
    pub fn high() -> Self {
        TranscodePreset::new(720, 23, 128)
    }

    /// 480p, CRF 26, 96 kb/s audio.
    pub fn medium() -> Self {
        TranscodePreset::new(480, 26, 96)
    }

    /// 360p, CRF 28, 64 kb/s audio.
    pub fn low() -> Self {
        TranscodePreset::new(360, 28, 64)
    }

    /// With the `veryfast` x264 preset.
    pub fn new(max_height: u32, crf: u8, audio_bitrate_kbps: u32) -> Self {
        TranscodePreset {
            max_height,
            crf,
            audio_bitrate_kbps,
            preset: "veryfast".to_owned(),
        }
    }

    /// Whether a source already fits this preset, so that a plain remux is enough: H.264 video no
    /// taller than `max_height` (or no video) and AAC audio (or no audio).
    pub fn is_satisfied_by(&self, source: &StreamInfo) -> bool {
        let video_fits = source
            .video
            .as_ref()
            .is_none_or(|video| video.codec == "h264" && video.height <= self.max_height);
        let audio_fits = source
            .audio
            .as_ref()
            .is_none_or(|audio| audio.codec == "aac");
        video_fits && audio_fits
    }
}

/// Options of [`transcode_arguments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeOptions {
    pub container: OutputContainer,
    pub faststart: bool,
    pub audio_input: Option<MediaInput>,
    pub timestamps_from_zero: bool,
    pub preset: TranscodePreset,
    /// See [`RemuxOptions::main_streams_left_out`].
    pub main_streams_left_out: Vec<u16>,
    /// See [`RemuxOptions::audio_streams_left_out`].
    pub audio_streams_left_out: Vec<u16>,
}

impl TranscodeOptions {
    pub fn new(container: OutputContainer, preset: TranscodePreset) -> Self {
        TranscodeOptions {
            container,
            faststart: true,
            audio_input: None,
            timestamps_from_zero: true,
            preset,
            main_streams_left_out: Vec::new(),
            audio_streams_left_out: Vec::new(),
        }
    }
}

/// Options of [`audio_only_arguments`] (always an m4a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOnlyOptions {
    /// The source audio is AAC: copied, not re-encoded.
    pub source_audio_is_aac: bool,
    /// The source AAC is in ADTS framing (from MPEG-TS): adds `-bsf:a aac_adtstoasc` when copying.
    pub source_audio_is_adts: bool,
    /// Bitrate when re-encoding to AAC.
    pub audio_bitrate_kbps: u32,
    pub faststart: bool,
    /// The stream id of the audio to map (`-map 0:i:<id>`: the first audio stream with packets
    /// when the program map declares empty ones); `None`: the first audio (`0:a:0`).
    pub audio_stream_id: Option<u16>,
}

impl Default for AudioOnlyOptions {
    fn default() -> Self {
        AudioOnlyOptions {
            source_audio_is_aac: true,
            source_audio_is_adts: false,
            audio_bitrate_kbps: 128,
            faststart: true,
            audio_stream_id: None,
        }
    }
}

/// Options of [`split_arguments`] (`-c copy`, cut at the first keyframe after each interval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitOptions {
    /// The container of each piece (mp4 pieces get faststart).
    pub container: OutputContainer,
    pub piece_seconds: u32,
    pub audio_is_adts_aac: bool,
}

/// The piece file name pattern of [`split_arguments`]: `<stem>-part%03d.<extension>`.
pub fn split_output_pattern(directory: &Path, stem: &str, container: OutputContainer) -> PathBuf {
    directory.join(format!("{stem}-part%03d.{}", container.extension()))
}

/// Options of [`concat_arguments`] (`-c copy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcatOptions {
    pub container: OutputContainer,
    pub faststart: bool,
    pub audio_is_adts_aac: bool,
    /// See [`RemuxOptions::main_streams_left_out`] (the first file's: the concat demuxer takes
    /// its streams from it).
    pub main_streams_left_out: Vec<u16>,
}

impl ConcatOptions {
    pub fn new(container: OutputContainer) -> Self {
        ConcatOptions {
            container,
            faststart: true,
            audio_is_adts_aac: false,
            main_streams_left_out: Vec::new(),
        }
    }
}

/// Options of the ffmpeg engine ([`engine_record_arguments`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Length of each output segment (cut at the next keyframe after it).
    pub segment_seconds: u32,
    /// `-t`: stop after this much media time.
    pub max_duration: Option<Duration>,
    /// Number of the first segment file (`part-0001.ts` for 1); a restart continues the numbering.
    pub first_segment_number: u32,
    /// Stream ids (MPEG-TS PIDs) of the input left out: declared streams that carry no packet
    /// (see [`RemuxOptions::main_streams_left_out`]).
    pub streams_left_out: Vec<u16>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            segment_seconds: 600,
            max_duration: None,
            first_segment_number: 1,
            streams_left_out: Vec::new(),
        }
    }
}

/// What the ffmpeg engine reads: never a URL (issue 11). streambot's own HTTP client fetches the
/// link and writes the bytes into ffmpeg's stdin, or downloads a file first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineInput {
    /// ffmpeg's stdin (`pipe:0`, `-protocol_whitelist pipe`), in this container.
    Pipe(InputFormat),
    /// A local file (`-protocol_whitelist file`).
    File(MediaInput),
}

impl EngineInput {
    /// For messages and logs.
    pub fn describe(&self) -> String {
        match self {
            EngineInput::Pipe(format) => format!("{} on stdin", format.demuxer()),
            EngineInput::File(input) => input.path.display().to_string(),
        }
    }
}

/// The segment file name pattern of the ffmpeg engine in `output_directory`: `part-%04d.ts`.
pub fn engine_output_pattern(output_directory: &Path) -> PathBuf {
    output_directory.join("part-%04d.ts")
}

/// `file:<path>`: a local path ffmpeg cannot take for an option or another protocol.
pub fn local_path_argument(path: &Path) -> OsString {
    let mut argument = OsString::from("file:");
    argument.push(path.as_os_str());
    argument
}

fn push_all(arguments: &mut Vec<OsString>, items: &[&str]) {
    arguments.extend(items.iter().map(OsString::from));
}

fn common_arguments(with_progress: bool) -> Vec<OsString> {
    let mut arguments = Vec::with_capacity(32);
    push_all(
        &mut arguments,
        &["-hide_banner", "-nostats", "-loglevel", "warning", "-y"],
    );
    if with_progress {
        push_all(&mut arguments, &["-progress", "pipe:1"]);
    }
    arguments
}

/// `-f <demuxer> -format_whitelist <allowed>` (and `-enable_drefs 0` for mov: an MP4 may name
/// other files as its media, never followed).
fn push_input_format(arguments: &mut Vec<OsString>, format: InputFormat, allowed: &str) {
    push_all(
        arguments,
        &["-f", format.demuxer(), "-format_whitelist", allowed],
    );
    if format == InputFormat::Mp4 {
        push_all(arguments, &["-enable_drefs", "0"]);
    }
}

fn push_local_input(arguments: &mut Vec<OsString>, input: &MediaInput) {
    push_input_format(arguments, input.format, input.format.demuxer());
    push_all(
        arguments,
        &["-protocol_whitelist", LOCAL_PROTOCOL_WHITELIST, "-i"],
    );
    arguments.push(local_path_argument(&input.path));
}

/// Maps for one main input and an optional second input that carries the audio.
fn push_stream_maps(
    arguments: &mut Vec<OsString>,
    container: OutputContainer,
    has_audio_input: bool,
) {
    let audio_map = if has_audio_input { "1:a:0" } else { "0:a?" };
    if container.is_audio_only() {
        push_all(arguments, &["-map", audio_map, "-vn"]);
    } else if has_audio_input {
        push_all(arguments, &["-map", "0:v", "-map", "1:a"]);
    } else {
        push_all(arguments, &["-map", "0:v?", "-map", "0:a?"]);
    }
}

/// `-map -<input>:i:<id>` for each stream of input `input` left out (after the maps that take
/// it).
fn push_streams_left_out(arguments: &mut Vec<OsString>, input: usize, stream_ids: &[u16]) {
    for stream_id in stream_ids {
        arguments.push("-map".into());
        arguments.push(format!("-{input}:i:{stream_id}").into());
    }
}

fn push_output(
    arguments: &mut Vec<OsString>,
    container: OutputContainer,
    faststart: bool,
    timestamps_from_zero: bool,
    output: &Path,
) {
    push_output_with_index(
        arguments,
        container,
        faststart,
        None,
        timestamps_from_zero,
        output,
    );
}

fn push_output_with_index(
    arguments: &mut Vec<OsString>,
    container: OutputContainer,
    faststart: bool,
    reserved_index_bytes: Option<u64>,
    timestamps_from_zero: bool,
    output: &Path,
) {
    if timestamps_from_zero {
        push_all(arguments, &["-avoid_negative_ts", "make_zero"]);
    }
    match reserved_index_bytes {
        Some(bytes) if container.supports_faststart() => {
            arguments.push("-moov_size".into());
            arguments.push(bytes.to_string().into());
        }
        _ if faststart && container.supports_faststart() => {
            push_all(arguments, &["-movflags", "+faststart"]);
        }
        _ => {}
    }
    push_all(arguments, &["-f", container.muxer()]);
    arguments.push(local_path_argument(output));
}

/// Common options, the main input, the audio rendition (if any), and the stream maps.
fn arguments_up_to_maps(
    input: &MediaInput,
    audio_input: Option<&MediaInput>,
    container: OutputContainer,
) -> Vec<OsString> {
    let mut arguments = common_arguments(true);
    push_local_input(&mut arguments, input);
    if let Some(audio_input) = audio_input {
        push_local_input(&mut arguments, audio_input);
    }
    push_stream_maps(&mut arguments, container, audio_input.is_some());
    arguments
}

/// `-c copy`, plus `-bsf:a aac_adtstoasc` when ADTS AAC goes into a container that needs raw AAC.
fn push_stream_copy(
    arguments: &mut Vec<OsString>,
    container: OutputContainer,
    audio_is_adts_aac: bool,
) {
    push_all(arguments, &["-c", "copy"]);
    if audio_is_adts_aac && container.needs_raw_aac() {
        push_all(arguments, &["-bsf:a", "aac_adtstoasc"]);
    }
}

/// Remux `input` (and the audio rendition, if any) into `output` without re-encoding.
pub fn remux_arguments(input: &MediaInput, output: &Path, options: &RemuxOptions) -> Vec<OsString> {
    let mut arguments = common_arguments(true);
    push_local_input(&mut arguments, input);
    let mut input_count = 1;
    if let Some(audio_input) = &options.audio_input {
        push_local_input(&mut arguments, audio_input);
        input_count += 1;
    }
    let extra_audio: &[AudioTrackInput] = if options.container.is_audio_only() {
        &[]
    } else {
        &options.extra_audio_inputs
    };
    let first_extra_audio_input = input_count;
    for extra in extra_audio {
        push_local_input(&mut arguments, &extra.input);
        input_count += 1;
    }
    let subtitles: &[SubtitleInput] = match options.container {
        OutputContainer::Mp4 | OutputContainer::Mkv => &options.subtitle_inputs,
        _ => &[],
    };
    let first_subtitle_input = input_count;
    for subtitle in subtitles {
        push_subtitle_input(&mut arguments, subtitle);
        input_count += 1;
    }
    let thumbnail = options
        .thumbnail
        .as_deref()
        .filter(|_| !options.container.is_audio_only());
    if thumbnail.is_some() {
        // The same file again, only its first seconds, keyframes only, one decoder thread.
        push_all(
            &mut arguments,
            &[
                "-threads",
                "1",
                "-skip_frame",
                "nokey",
                "-t",
                THUMBNAIL_INPUT_SECONDS,
            ],
        );
        push_local_input(&mut arguments, input);
    }
    push_stream_maps(
        &mut arguments,
        options.container,
        options.audio_input.is_some(),
    );
    push_streams_left_out(&mut arguments, 0, &options.main_streams_left_out);
    if options.audio_input.is_some() {
        push_streams_left_out(&mut arguments, 1, &options.audio_streams_left_out);
    }
    for (index, extra) in extra_audio.iter().enumerate() {
        let input = first_extra_audio_input + index;
        arguments.push("-map".into());
        match extra.stream_id {
            Some(stream_id) => arguments.push(format!("{input}:i:{stream_id}").into()),
            None => arguments.push(format!("{input}:a:0").into()),
        }
    }
    for index in 0..subtitles.len() {
        arguments.push("-map".into());
        arguments.push(format!("{}:s:0", first_subtitle_input + index).into());
    }
    push_stream_copy(&mut arguments, options.container, options.audio_is_adts_aac);
    push_track_labels(&mut arguments, options, extra_audio, subtitles);
    push_output_with_index(
        &mut arguments,
        options.container,
        options.faststart,
        options.reserved_index_bytes,
        options.timestamps_from_zero,
        output,
    );
    if let Some(thumbnail) = thumbnail {
        push_thumbnail_output(
            &mut arguments,
            input_count,
            options.thumbnail_stream_id,
            thumbnail,
        );
    }
    arguments
}

/// A WebVTT file as an input: the `webvtt` demuxer only, local files only.
fn push_subtitle_input(arguments: &mut Vec<OsString>, subtitle: &SubtitleInput) {
    push_all(arguments, &["-f", "webvtt", "-format_whitelist", "webvtt"]);
    push_all(
        arguments,
        &["-protocol_whitelist", LOCAL_PROTOCOL_WHITELIST, "-i"],
    );
    arguments.push(local_path_argument(&subtitle.path));
}

/// `-metadata:s:a:N language=…`/`title=…` and dispositions of the audio and subtitle tracks, and
/// the subtitle codec of the container. Added only when there is more than the plain streams.
fn push_track_labels(
    arguments: &mut Vec<OsString>,
    options: &RemuxOptions,
    extra_audio: &[AudioTrackInput],
    subtitles: &[SubtitleInput],
) {
    let push_label = |arguments: &mut Vec<OsString>, specifier: &str, label: &TrackLabel| {
        if let Some(code) = label.language.as_deref().and_then(iso639_2_code) {
            arguments.push(format!("-metadata:s:{specifier}").into());
            arguments.push(format!("language={code}").into());
        }
        if let Some(title) = &label.title {
            arguments.push(format!("-metadata:s:{specifier}").into());
            // Titles come from playlists: no control characters reach the file.
            let clean: String = title.chars().filter(|c| !c.is_control()).take(64).collect();
            arguments.push(format!("title={clean}").into());
        }
    };
    if !extra_audio.is_empty() || options.first_audio_track != TrackLabel::default() {
        push_label(arguments, "a:0", &options.first_audio_track);
        push_all(arguments, &["-disposition:a:0", "default"]);
        for (index, extra) in extra_audio.iter().enumerate() {
            let specifier = format!("a:{}", index + 1);
            push_label(arguments, &specifier, &extra.label);
            arguments.push(format!("-disposition:{specifier}").into());
            arguments.push("0".into());
        }
    }
    if subtitles.is_empty() {
        return;
    }
    let codec = match options.container {
        OutputContainer::Mkv => "webvtt",
        _ => "mov_text",
    };
    push_all(arguments, &["-c:s", codec]);
    for (index, subtitle) in subtitles.iter().enumerate() {
        let specifier = format!("s:{index}");
        push_label(arguments, &specifier, &subtitle.label);
        arguments.push(format!("-disposition:{specifier}").into());
        arguments.push("0".into());
    }
}

/// The first video frame of input `input_index` (of its stream `stream_id`, else of its first
/// video stream), scaled to a JPEG at `output_jpeg`.
fn push_thumbnail_output(
    arguments: &mut Vec<OsString>,
    input_index: usize,
    stream_id: Option<u16>,
    output_jpeg: &Path,
) {
    arguments.push("-map".into());
    match stream_id {
        Some(stream_id) => arguments.push(format!("{input_index}:i:{stream_id}").into()),
        None => arguments.push(format!("{input_index}:v:0").into()),
    }
    push_all(arguments, &["-an", "-sn", "-dn", "-frames:v", "1", "-vf"]);
    arguments.push(thumbnail_scale_filter(THUMBNAIL_MAX_SIDE_PIXELS).into());
    push_all(
        arguments,
        &["-c:v", "mjpeg", "-q:v", "3", "-update", "1", "-f", "image2"],
    );
    arguments.push(local_path_argument(output_jpeg));
}

/// Bytes to reserve for the index of an mp4 of `media_seconds` (`-moov_size`): per second, up to
/// 60 video samples of ~20 index bytes (size, composition offset, chunk offset, sync entry) and
/// ~50 audio samples of ~12; plus 64 KiB. About 6.5 MB for an hour of video with audio, 3x
/// what ffmpeg needs for 25 fps; the unused part stays in the file as a `free` box.
pub fn estimated_index_bytes(media_seconds: f64, has_video: bool, has_audio: bool) -> u64 {
    let seconds = if media_seconds.is_finite() {
        media_seconds.clamp(1.0, 7.0 * 24.0 * 3600.0)
    } else {
        3600.0
    };
    let per_second: f64 =
        if has_video { 60.0 * 20.0 } else { 0.0 } + if has_audio { 50.0 * 12.0 } else { 0.0 };
    64 * 1024 + (seconds * per_second.max(600.0)) as u64
}

/// When ffmpeg's stderr says the `-moov_size` reservation was too small (ffmpeg 5.1 still exits
/// 0, with no usable index), how many more bytes it needed.
pub fn reserved_index_shortfall(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|line| line.contains("reserved_moov_size is too small"))?;
    let needed = line
        .split("needed")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<u64>().ok());
    Some(needed.unwrap_or(1024 * 1024))
}

/// The `scale` filter that caps the height at `max_height` (never upscales; even width).
pub fn scale_filter_for_max_height(max_height: u32) -> String {
    format!("scale=-2:min(ih\\,{max_height})")
}

/// Re-encode `input` (and the audio rendition, if any): libx264 CRF with the height capped, AAC.
pub fn transcode_arguments(
    input: &MediaInput,
    output: &Path,
    options: &TranscodeOptions,
) -> Vec<OsString> {
    let preset = &options.preset;
    let mut arguments =
        arguments_up_to_maps(input, options.audio_input.as_ref(), options.container);
    push_streams_left_out(&mut arguments, 0, &options.main_streams_left_out);
    if options.audio_input.is_some() {
        push_streams_left_out(&mut arguments, 1, &options.audio_streams_left_out);
    }
    if !options.container.is_audio_only() {
        arguments.push("-vf".into());
        arguments.push(scale_filter_for_max_height(preset.max_height).into());
        push_all(&mut arguments, &["-c:v", "libx264", "-preset"]);
        arguments.push(preset.preset.as_str().into());
        arguments.push("-crf".into());
        arguments.push(preset.crf.to_string().into());
        push_all(&mut arguments, &["-pix_fmt", "yuv420p"]);
    }
    push_all(&mut arguments, &["-c:a", "aac", "-b:a"]);
    arguments.push(format!("{}k", preset.audio_bitrate_kbps).into());
    push_output(
        &mut arguments,
        options.container,
        options.faststart,
        options.timestamps_from_zero,
        output,
    );
    arguments
}

/// Audio only, to an m4a: the first audio stream (with packets, see
/// [`AudioOnlyOptions::audio_stream_id`]), copied when it is AAC, otherwise encoded to AAC.
pub fn audio_only_arguments(
    input: &MediaInput,
    output: &Path,
    options: &AudioOnlyOptions,
) -> Vec<OsString> {
    let mut arguments = common_arguments(true);
    push_local_input(&mut arguments, input);
    arguments.push("-map".into());
    match options.audio_stream_id {
        Some(stream_id) => arguments.push(format!("0:i:{stream_id}").into()),
        None => arguments.push("0:a:0".into()),
    }
    arguments.push("-vn".into());
    if options.source_audio_is_aac {
        push_all(&mut arguments, &["-c:a", "copy"]);
        if options.source_audio_is_adts {
            push_all(&mut arguments, &["-bsf:a", "aac_adtstoasc"]);
        }
    } else {
        push_all(&mut arguments, &["-c:a", "aac", "-b:a"]);
        arguments.push(format!("{}k", options.audio_bitrate_kbps).into());
    }
    push_output(
        &mut arguments,
        OutputContainer::M4a,
        options.faststart,
        true,
        output,
    );
    arguments
}

/// A JPEG of the first keyframe, at most [`THUMBNAIL_MAX_SIDE_PIXELS`] on the long side (never
/// upscaled). No `-progress`: run with stdout null.
pub fn thumbnail_arguments(input: &MediaInput, output_jpeg: &Path) -> Vec<OsString> {
    let mut arguments = common_arguments(false);
    // One decoder thread: the frame threads' start costs more than decoding one keyframe.
    push_all(&mut arguments, &["-threads", "1", "-skip_frame", "nokey"]);
    push_local_input(&mut arguments, input);
    push_thumbnail_output(&mut arguments, 0, None, output_jpeg);
    arguments
}

/// Fit into a `max_side` square keeping the aspect ratio, never upscaling, even dimensions.
pub fn thumbnail_scale_filter(max_side: u32) -> String {
    format!(
        "scale=w=min({max_side}\\,iw):h=min({max_side}\\,ih):force_original_aspect_ratio=decrease:force_divisible_by=2"
    )
}

/// The text of a concat demuxer list file naming `inputs` in order (paths quoted for the demuxer).
pub fn concat_list_contents(inputs: &[PathBuf]) -> String {
    let mut contents = String::from("ffconcat version 1.0\n");
    for input in inputs {
        let escaped = input.to_string_lossy().replace('\'', "'\\''");
        contents.push_str("file '");
        contents.push_str(&escaped);
        contents.push_str("'\n");
    }
    contents
}

/// Join the files named in `list_file` (see [`concat_list_contents`]), all in `inputs_format`,
/// without re-encoding. The concat demuxer passes its whitelists to each file it opens, so each
/// listed file may only be read with `inputs_format`'s demuxer (mov keeps external references
/// off by default; the option cannot be passed through concat).
pub fn concat_arguments(
    list_file: &Path,
    inputs_format: InputFormat,
    output: &Path,
    options: &ConcatOptions,
) -> Vec<OsString> {
    let mut arguments = common_arguments(true);
    let allowed = format!("concat,{}", inputs_format.demuxer());
    push_all(
        &mut arguments,
        &["-f", "concat", "-safe", "0", "-format_whitelist"],
    );
    arguments.push(allowed.into());
    push_all(
        &mut arguments,
        &["-protocol_whitelist", LOCAL_PROTOCOL_WHITELIST, "-i"],
    );
    arguments.push(local_path_argument(list_file));
    push_stream_maps(&mut arguments, options.container, false);
    push_streams_left_out(&mut arguments, 0, &options.main_streams_left_out);
    push_stream_copy(&mut arguments, options.container, options.audio_is_adts_aac);
    push_output(
        &mut arguments,
        options.container,
        options.faststart,
        true,
        output,
    );
    arguments
}

/// How much of a finished file the decode check decodes: all of a file up to
/// `whole_file_up_to_seconds`, else the first, a middle and the last `slice_seconds`; every
/// picture, or only the keyframes (`-skip_frame nokey`; audio whole either way).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeCheckSampling {
    pub whole_file_up_to_seconds: f64,
    pub slice_seconds: f64,
    pub keyframes_only: bool,
}

impl DecodeCheckSampling {
    /// For a file whatever made it (an fMP4 part after an init change, ffmpeg's remux of
    /// anything): whole up to a minute, then three 10 s slices.
    pub const THOROUGH: DecodeCheckSampling = DecodeCheckSampling {
        whole_file_up_to_seconds: 60.0,
        slice_seconds: 10.0,
        keyframes_only: false,
    };
    /// For a file streambot's own remuxer wrote from an MPEG-TS part, which it read NAL unit by
    /// NAL unit and ADTS frame by frame (a changed SPS, a lost sync, a broken PES: declined,
    /// and ffmpeg's path is checked thoroughly): every keyframe and all the audio up to 10
    /// minutes, then three 60 s slices of them. Decoding a 45 s 720p part whole cost 70x its
    /// remux; its keyframes and audio about 10x (BENCHMARKS.md, issue 18).
    pub const QUICK: DecodeCheckSampling = DecodeCheckSampling {
        whole_file_up_to_seconds: 600.0,
        slice_seconds: 60.0,
        keyframes_only: true,
    };
}

/// What of a file of `duration_seconds` is decoded to check it (pure): `None` for the whole
/// file, else the `(start, length)` slices: the first, a middle and the last.
pub fn decode_check_slices(
    duration_seconds: f64,
    sampling: DecodeCheckSampling,
) -> Option<[(f64, f64); 3]> {
    if !duration_seconds.is_finite() || duration_seconds <= sampling.whole_file_up_to_seconds {
        return None;
    }
    let slice = sampling.slice_seconds;
    Some([
        (0.0, slice),
        ((duration_seconds - slice) / 2.0, slice),
        (duration_seconds - slice, slice),
    ])
}

/// Decode `input` (whole, or the slices `(start, length)` of it, each an input of the same one
/// process) and discard the frames, printing only errors (`-v error -f null -`): each stderr
/// line is a decode error. One decoder thread.
pub fn decode_check_arguments(
    input: &MediaInput,
    slices: Option<&[(f64, f64)]>,
    keyframes_only: bool,
) -> Vec<OsString> {
    let mut arguments = Vec::with_capacity(48);
    push_all(
        &mut arguments,
        &[
            "-hide_banner",
            "-nostats",
            "-nostdin",
            "-loglevel",
            "error",
            "-threads",
            "1",
        ],
    );
    let skip = |arguments: &mut Vec<OsString>| {
        if keyframes_only {
            push_all(arguments, &["-skip_frame", "nokey"]);
        }
    };
    let Some(slices) = slices.filter(|slices| !slices.is_empty()) else {
        skip(&mut arguments);
        push_local_input(&mut arguments, input);
        push_all(
            &mut arguments,
            &["-map", "0:v?", "-map", "0:a?", "-f", "null", "-"],
        );
        return arguments;
    };
    for (start, length) in slices {
        arguments.push("-ss".into());
        arguments.push(format!("{:.3}", start.max(0.0)).into());
        arguments.push("-t".into());
        arguments.push(format!("{:.3}", length.max(0.0)).into());
        skip(&mut arguments);
        push_local_input(&mut arguments, input);
    }
    for index in 0..slices.len() {
        arguments.push("-map".into());
        arguments.push(format!("{index}:v?").into());
        arguments.push("-map".into());
        arguments.push(format!("{index}:a?").into());
    }
    push_all(&mut arguments, &["-f", "null", "-"]);
    arguments
}

/// Split a finished file into pieces of about `piece_seconds` each (segment muxer, cut on
/// keyframes, each piece starting at timestamp zero), named by `output_pattern` (numbered from 1).
pub fn split_arguments(
    input: &MediaInput,
    output_pattern: &Path,
    options: &SplitOptions,
) -> Vec<OsString> {
    let mut arguments = arguments_up_to_maps(input, None, options.container);
    push_stream_copy(&mut arguments, options.container, options.audio_is_adts_aac);
    push_all(&mut arguments, &["-f", "segment", "-segment_time"]);
    arguments.push(options.piece_seconds.max(1).to_string().into());
    push_all(
        &mut arguments,
        &["-segment_format", options.container.muxer()],
    );
    if options.container.supports_faststart() {
        push_all(
            &mut arguments,
            &["-segment_format_options", "movflags=+faststart"],
        );
    }
    push_all(
        &mut arguments,
        &["-reset_timestamps", "1", "-segment_start_number", "1"],
    );
    arguments.push(local_path_argument(output_pattern));
    arguments
}

/// ffprobe of a local file as JSON (format and streams).
pub fn probe_arguments(input: &MediaInput) -> Vec<OsString> {
    let mut arguments = Vec::with_capacity(20);
    push_all(
        &mut arguments,
        &[
            "-hide_banner",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ],
    );
    push_input_format(&mut arguments, input.format, input.format.demuxer());
    push_all(
        &mut arguments,
        &["-protocol_whitelist", LOCAL_PROTOCOL_WHITELIST, "-i"],
    );
    arguments.push(local_path_argument(&input.path));
    arguments
}

/// Whether `url` looks like an HLS playlist (`.m3u8`/`.m3u` path, or `m3u8` in the path or query).
pub fn is_probably_hls(url: &str) -> bool {
    let lowercase = url.trim().to_ascii_lowercase();
    let without_fragment = lowercase.split('#').next().unwrap_or_default();
    let (path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, query),
        None => (without_fragment, ""),
    };
    path.ends_with(".m3u8")
        || path.ends_with(".m3u")
        || path.contains("m3u8")
        || query.contains("m3u8")
}

/// The ffmpeg engine: ffmpeg reads `input` (its stdin or a downloaded file, with the demuxer
/// named) and writes MPEG-TS segments to `output_pattern` (see [`engine_output_pattern`]).
pub fn engine_record_arguments(
    input: &EngineInput,
    output_pattern: &Path,
    options: &EngineOptions,
) -> Vec<OsString> {
    let mut arguments = common_arguments(true);
    match input {
        EngineInput::Pipe(format) => {
            push_input_format(&mut arguments, *format, format.demuxer());
            push_all(
                &mut arguments,
                &[
                    // A live link reconnected by the feeder leaves the packet cut off with the
                    // old connection incomplete: dropped, not copied into the part damaged.
                    "-fflags",
                    "+discardcorrupt",
                    "-protocol_whitelist",
                    PIPE_PROTOCOL_WHITELIST,
                    "-i",
                    "pipe:0",
                ],
            );
        }
        EngineInput::File(input) => push_local_input(&mut arguments, input),
    }
    if let Some(max_duration) = options.max_duration {
        arguments.push("-t".into());
        arguments.push(format!("{:.3}", max_duration.as_secs_f64()).into());
    }
    push_all(&mut arguments, &["-map", "0:v?", "-map", "0:a?"]);
    push_streams_left_out(&mut arguments, 0, &options.streams_left_out);
    push_all(
        &mut arguments,
        &["-c", "copy", "-f", "segment", "-segment_time"],
    );
    arguments.push(options.segment_seconds.max(1).to_string().into());
    push_all(
        &mut arguments,
        &[
            "-segment_format",
            "mpegts",
            "-reset_timestamps",
            "1",
            "-segment_start_number",
        ],
    );
    arguments.push(options.first_segment_number.to_string().into());
    arguments.push(local_path_argument(output_pattern));
    arguments
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local input in the format its extension names (MPEG-TS when it names none).
    fn media(path: &str) -> MediaInput {
        let path = Path::new(path);
        MediaInput::new(
            path,
            InputFormat::from_extension(path).unwrap_or(InputFormat::MpegTs),
        )
    }

    fn strings(arguments: &[OsString]) -> Vec<String> {
        arguments
            .iter()
            .map(|argument| argument.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn extra_audio_and_subtitle_tracks_are_mapped_labelled_and_the_thumbnail_reads_the_last_input()
    {
        let mut options = RemuxOptions::new(OutputContainer::Mp4);
        options.audio_input = Some(MediaInput::new("/job/audio-0001.ts", InputFormat::MpegTs));
        options.first_audio_track = TrackLabel {
            language: Some("en".to_string()),
            title: Some("English\n".to_string()),
        };
        options.extra_audio_inputs.push(AudioTrackInput {
            input: MediaInput::new("/job/audio2-0001.ts", InputFormat::MpegTs),
            label: TrackLabel {
                language: Some("de-DE".to_string()),
                title: None,
            },
            stream_id: None,
        });
        options.subtitle_inputs.push(SubtitleInput {
            path: PathBuf::from("/job/subtitles1-for-0001.vtt"),
            label: TrackLabel {
                language: Some("xx-unknown".to_string()),
                title: None,
            },
        });
        options.thumbnail = Some(PathBuf::from("/job/recording-0001.jpg"));
        let input = MediaInput::new("/job/main-0001.ts", InputFormat::MpegTs);
        let text = strings(&remux_arguments(
            &input,
            Path::new("/job/out.mp4"),
            &options,
        ))
        .join(" ");
        assert!(text.contains("-f webvtt -format_whitelist webvtt -protocol_whitelist file -i file:/job/subtitles1-for-0001.vtt"), "{text}");
        assert!(
            text.contains("-map 0:v -map 1:a -map 2:a:0 -map 3:s:0"),
            "{text}"
        );
        assert!(text.contains("-c:s mov_text"), "{text}");
        assert!(text.contains("-metadata:s:a:0 language=eng -metadata:s:a:0 title=English -disposition:a:0 default"), "{text}");
        assert!(
            text.contains("-metadata:s:a:1 language=deu -disposition:a:1 0"),
            "{text}"
        );
        assert!(!text.contains("language=xx"), "{text}");
        assert!(
            text.contains("-map 4:v:0"),
            "the thumbnail reads input 4: {text}"
        );
        // Neither ts nor m4a take subtitles.
        options.container = OutputContainer::Ts;
        options.thumbnail = None;
        let text = strings(&remux_arguments(&input, Path::new("/job/out.ts"), &options)).join(" ");
        assert!(
            !text.contains("webvtt") && !text.contains("3:s:0"),
            "{text}"
        );
    }

    #[test]
    fn language_tags_become_iso_639_2_codes() {
        assert_eq!(iso639_2_code("en").as_deref(), Some("eng"));
        assert_eq!(iso639_2_code("de-DE").as_deref(), Some("deu"));
        assert_eq!(iso639_2_code("pt_BR").as_deref(), Some("por"));
        assert_eq!(iso639_2_code("FIL").as_deref(), Some("fil"));
        assert_eq!(iso639_2_code("x"), None);
        assert_eq!(iso639_2_code("e1"), None);
    }

    fn joined(arguments: &[OsString]) -> String {
        strings(arguments).join(" ")
    }

    /// Every `-i` is preceded by a protocol whitelist.
    fn assert_every_input_whitelisted(arguments: &[OsString], whitelist: &str) {
        let arguments = strings(arguments);
        for (index, argument) in arguments.iter().enumerate() {
            if argument == "-i" {
                let before = &arguments[..index];
                let last_whitelist = before
                    .iter()
                    .rposition(|item| item == "-protocol_whitelist");
                let last_input = before.iter().rposition(|item| item == "-i");
                match last_whitelist {
                    Some(position) => {
                        assert_eq!(arguments[position + 1], whitelist);
                        assert!(
                            last_input.is_none_or(|input| input < position),
                            "{arguments:?}"
                        );
                    }
                    None => panic!("-i without whitelist: {arguments:?}"),
                }
            }
        }
    }

    /// Every `-i` of a local input is preceded, since the previous `-i`, by `-f`, a
    /// `-format_whitelist` and `-protocol_whitelist file`.
    fn assert_every_local_input_names_its_format(arguments: &[OsString]) {
        let arguments = strings(arguments);
        let mut since_last_input: Vec<&str> = Vec::new();
        for argument in &arguments {
            if argument == "-i" {
                let option_value = |name: &str| {
                    since_last_input
                        .iter()
                        .position(|item| *item == name)
                        .and_then(|position| since_last_input.get(position + 1))
                        .copied()
                };
                assert!(option_value("-f").is_some(), "-i without -f: {arguments:?}");
                let allowed = option_value("-format_whitelist")
                    .unwrap_or_else(|| panic!("-i without -format_whitelist: {arguments:?}"));
                assert!(
                    !allowed.contains("hls") && !allowed.contains("dash"),
                    "{allowed}"
                );
                assert_eq!(
                    option_value("-protocol_whitelist"),
                    Some(LOCAL_PROTOCOL_WHITELIST),
                    "{arguments:?}"
                );
                since_last_input.clear();
            } else {
                since_last_input.push(argument);
            }
        }
    }

    #[test]
    fn every_local_builder_names_the_input_format_and_allows_only_files() {
        let with_audio = RemuxOptions {
            audio_input: Some(media("/r/audio-0001.ts")),
            ..RemuxOptions::default()
        };
        let all = [
            remux_arguments(
                &media("/r/main-0001.ts"),
                Path::new("/r/o.mp4"),
                &with_audio,
            ),
            remux_arguments(
                &media("/r/main-0001.mp4"),
                Path::new("/r/o.mkv"),
                &RemuxOptions::new(OutputContainer::Mkv),
            ),
            transcode_arguments(
                &media("/r/main-0001.ts"),
                Path::new("/r/o.mp4"),
                &TranscodeOptions::new(OutputContainer::Mp4, TranscodePreset::low()),
            ),
            audio_only_arguments(
                &MediaInput::new("/r/audio-0001.bin", InputFormat::Adts),
                Path::new("/r/o.m4a"),
                &AudioOnlyOptions::default(),
            ),
            thumbnail_arguments(&media("/r/o.mp4"), Path::new("/r/o.jpg")),
            concat_arguments(
                Path::new("/r/list.txt"),
                InputFormat::Mp4,
                Path::new("/r/all.mp4"),
                &ConcatOptions::new(OutputContainer::Mp4),
            ),
            split_arguments(
                &media("/r/all.mp4"),
                Path::new("/r/p%03d.mp4"),
                &SplitOptions {
                    container: OutputContainer::Mp4,
                    piece_seconds: 60,
                    audio_is_adts_aac: false,
                },
            ),
            probe_arguments(&media("/r/main-0001.ts")),
        ];
        for arguments in &all {
            assert_every_local_input_names_its_format(arguments);
            let text = joined(arguments);
            assert!(
                !text.contains("http") && !text.contains("pipe,") && !text.contains(",pipe"),
                "{text}"
            );
        }
    }

    #[test]
    fn remux_ts_to_mp4_with_adts_aac() {
        let options = RemuxOptions {
            audio_is_adts_aac: true,
            ..RemuxOptions::new(OutputContainer::Mp4)
        };
        let arguments =
            remux_arguments(&media("/r/part-0001.ts"), Path::new("/r/out.mp4"), &options);
        assert_eq!(
            joined(&arguments),
            "-hide_banner -nostats -loglevel warning -y -progress pipe:1 \
             -f mpegts -format_whitelist mpegts -protocol_whitelist file -i file:/r/part-0001.ts \
             -map 0:v? -map 0:a? -c copy -bsf:a aac_adtstoasc \
             -avoid_negative_ts make_zero -movflags +faststart -f mp4 file:/r/out.mp4"
        );
        assert!(!strings(&arguments).contains(&"-nostdin".to_owned()));
    }

    #[test]
    fn remux_without_adts_has_no_bitstream_filter_and_ts_has_no_faststart() {
        let arguments = remux_arguments(
            &media("a.ts"),
            Path::new("b.ts"),
            &RemuxOptions {
                audio_is_adts_aac: true,
                ..RemuxOptions::new(OutputContainer::Ts)
            },
        );
        let text = joined(&arguments);
        assert!(!text.contains("aac_adtstoasc"), "{text}");
        assert!(!text.contains("faststart"), "{text}");
        assert!(text.ends_with("-f mpegts file:b.ts"), "{text}");

        let mp4 = joined(&remux_arguments(
            &media("a.mp4"),
            Path::new("b.mp4"),
            &RemuxOptions::default(),
        ));
        assert!(!mp4.contains("aac_adtstoasc"), "{mp4}");
    }

    #[test]
    fn remux_with_separate_audio_maps_video_from_first_and_audio_from_second() {
        let options = RemuxOptions {
            audio_input: Some(media("/r/audio.mp4")),
            ..RemuxOptions::new(OutputContainer::Mkv)
        };
        let arguments = remux_arguments(&media("/r/video.mp4"), Path::new("/r/out.mkv"), &options);
        let text = joined(&arguments);
        assert!(
            text.contains("-i file:/r/video.mp4 -f mov -format_whitelist mov -enable_drefs 0 -protocol_whitelist file -i file:/r/audio.mp4 -map 0:v -map 1:a -c copy"),
            "{text}"
        );
        assert!(text.ends_with("-f matroska file:/r/out.mkv"), "{text}");
        assert_every_input_whitelisted(&arguments, LOCAL_PROTOCOL_WHITELIST);
    }

    #[test]
    fn remux_to_m4a_keeps_only_audio() {
        let text = joined(&remux_arguments(
            &media("a.ts"),
            Path::new("a.m4a"),
            &RemuxOptions::new(OutputContainer::M4a),
        ));
        assert!(text.contains("-map 0:a? -vn -c copy"), "{text}");
        assert!(
            text.ends_with("-movflags +faststart -f ipod file:a.m4a"),
            "{text}"
        );
    }

    #[test]
    fn a_reserved_index_replaces_the_faststart_pass() {
        let options = RemuxOptions {
            reserved_index_bytes: Some(200_000),
            ..RemuxOptions::default()
        };
        let text = joined(&remux_arguments(
            &media("a.ts"),
            Path::new("a.mp4"),
            &options,
        ));
        assert!(
            text.ends_with("-avoid_negative_ts make_zero -moov_size 200000 -f mp4 file:a.mp4"),
            "{text}"
        );
        assert!(!text.contains("faststart"), "{text}");
        // Not for containers without an mp4 index.
        let mkv = joined(&remux_arguments(
            &media("a.ts"),
            Path::new("a.mkv"),
            &RemuxOptions {
                container: OutputContainer::Mkv,
                ..options
            },
        ));
        assert!(!mkv.contains("moov_size"), "{mkv}");
    }

    #[test]
    fn a_remux_can_take_its_thumbnail_in_the_same_run() {
        let options = RemuxOptions {
            reserved_index_bytes: Some(146_536),
            thumbnail: Some(PathBuf::from("/r/recording-0001.jpg")),
            audio_input: Some(media("/r/audio-0001.ts")),
            audio_is_adts_aac: true,
            ..RemuxOptions::default()
        };
        let arguments = remux_arguments(
            &media("/r/main-0001.ts"),
            Path::new("/r/recording-0001.mp4"),
            &options,
        );
        assert_every_local_input_names_its_format(&arguments);
        assert_eq!(
            joined(&arguments),
            "-hide_banner -nostats -loglevel warning -y -progress pipe:1 \
             -f mpegts -format_whitelist mpegts -protocol_whitelist file -i file:/r/main-0001.ts \
             -f mpegts -format_whitelist mpegts -protocol_whitelist file -i file:/r/audio-0001.ts \
             -threads 1 -skip_frame nokey -t 6 \
             -f mpegts -format_whitelist mpegts -protocol_whitelist file -i file:/r/main-0001.ts \
             -map 0:v -map 1:a -c copy -bsf:a aac_adtstoasc -avoid_negative_ts make_zero \
             -moov_size 146536 -f mp4 file:/r/recording-0001.mp4 \
             -map 2:v:0 -an -sn -dn -frames:v 1 \
             -vf scale=w=min(320\\,iw):h=min(320\\,ih):force_original_aspect_ratio=decrease:force_divisible_by=2 \
             -c:v mjpeg -q:v 3 -update 1 -f image2 file:/r/recording-0001.jpg"
        );
        // Audio only: no thumbnail.
        let m4a = joined(&remux_arguments(
            &media("/r/main-0001.ts"),
            Path::new("/r/a.m4a"),
            &RemuxOptions {
                container: OutputContainer::M4a,
                audio_input: None,
                ..options
            },
        ));
        assert!(
            !m4a.contains("mjpeg") && !m4a.contains("skip_frame"),
            "{m4a}"
        );
    }

    #[test]
    fn index_reservations_grow_with_duration_and_shortfalls_are_read() {
        let hour = estimated_index_bytes(3600.0, true, true);
        assert!(hour > 3_000_000 && hour < 8_000_000, "{hour}");
        assert!(estimated_index_bytes(45.0, true, true) < 200_000);
        assert!(estimated_index_bytes(f64::NAN, true, false) > 64 * 1024);
        assert!(estimated_index_bytes(-5.0, false, false) > 64 * 1024);
        assert_eq!(
            reserved_index_shortfall(
                "[mp4 @ 0x55] reserved_moov_size is too small, needed 25781 additional\nError writing trailer"
            ),
            Some(25_781)
        );
        assert_eq!(reserved_index_shortfall("all fine"), None);
    }

    #[test]
    fn remux_without_timestamp_shift() {
        let text = joined(&remux_arguments(
            &media("a.ts"),
            Path::new("a.mp4"),
            &RemuxOptions {
                timestamps_from_zero: false,
                faststart: false,
                ..RemuxOptions::default()
            },
        ));
        assert!(!text.contains("avoid_negative_ts"));
        assert!(!text.contains("movflags"));
    }

    #[test]
    fn local_paths_cannot_pass_for_options_or_protocols() {
        let text = joined(&remux_arguments(
            &media("-rf http:evil.ts"),
            Path::new("out.mp4"),
            &RemuxOptions::default(),
        ));
        assert!(text.contains("-i file:-rf http:evil.ts"), "{text}");
    }

    #[test]
    fn transcode_scales_encodes_and_whitelists() {
        let options = TranscodeOptions::new(OutputContainer::Mp4, TranscodePreset::medium());
        let arguments = transcode_arguments(&media("in.ts"), Path::new("out.mp4"), &options);
        assert_eq!(
            joined(&arguments),
            "-hide_banner -nostats -loglevel warning -y -progress pipe:1 \
             -f mpegts -format_whitelist mpegts -protocol_whitelist file -i file:in.ts -map 0:v? -map 0:a? \
             -vf scale=-2:min(ih\\,480) -c:v libx264 -preset veryfast -crf 26 -pix_fmt yuv420p \
             -c:a aac -b:a 96k -avoid_negative_ts make_zero -movflags +faststart -f mp4 file:out.mp4"
        );
    }

    #[test]
    fn transcode_to_m4a_encodes_no_video() {
        let options = TranscodeOptions::new(OutputContainer::M4a, TranscodePreset::low());
        let text = joined(&transcode_arguments(
            &media("in.ts"),
            Path::new("out.m4a"),
            &options,
        ));
        assert!(!text.contains("libx264"), "{text}");
        assert!(text.contains("-vn -c:a aac -b:a 64k"), "{text}");
    }

    #[test]
    fn split_cuts_by_time_into_faststart_pieces() {
        let options = SplitOptions {
            container: OutputContainer::Mp4,
            piece_seconds: 1800,
            audio_is_adts_aac: true,
        };
        let pattern = split_output_pattern(Path::new("/r"), "rec", OutputContainer::Mp4);
        assert_eq!(pattern, PathBuf::from("/r/rec-part%03d.mp4"));
        assert_eq!(
            joined(&split_arguments(&media("/r/rec.ts"), &pattern, &options)),
            "-hide_banner -nostats -loglevel warning -y -progress pipe:1 \
             -f mpegts -format_whitelist mpegts -protocol_whitelist file -i file:/r/rec.ts -map 0:v? -map 0:a? -c copy -bsf:a aac_adtstoasc \
             -f segment -segment_time 1800 -segment_format mp4 -segment_format_options movflags=+faststart \
             -reset_timestamps 1 -segment_start_number 1 file:/r/rec-part%03d.mp4"
        );
    }

    #[test]
    fn a_preset_is_satisfied_by_small_enough_h264_and_aac() {
        let source = |codec: &str, height: u32, audio: &str| StreamInfo {
            container: "mpegts".to_owned(),
            duration: None,
            size_bytes: None,
            bit_rate: None,
            video: Some(crate::probe::VideoStreamInfo {
                codec: codec.to_owned(),
                width: height * 16 / 9,
                height,
                frame_rate: None,
                bit_rate: None,
            }),
            audio: Some(crate::probe::AudioStreamInfo {
                codec: audio.to_owned(),
                channels: None,
                sample_rate: None,
                bit_rate: None,
            }),
            stream_count: 2,
        };
        let high = TranscodePreset::high();
        assert!(high.is_satisfied_by(&source("h264", 720, "aac")));
        assert!(high.is_satisfied_by(&source("h264", 480, "aac")));
        assert!(!high.is_satisfied_by(&source("h264", 1080, "aac")));
        assert!(!high.is_satisfied_by(&source("hevc", 720, "aac")));
        assert!(!high.is_satisfied_by(&source("h264", 720, "mp3")));
    }

    #[test]
    fn presets_are_ordered() {
        assert!(TranscodePreset::high().max_height > TranscodePreset::medium().max_height);
        assert!(TranscodePreset::medium().max_height > TranscodePreset::low().max_height);
        assert!(TranscodePreset::high().crf < TranscodePreset::low().crf);
    }

    #[test]
    fn audio_only_copies_aac_and_encodes_anything_else() {
        let copied = joined(&audio_only_arguments(
            &media("in.ts"),
            Path::new("out.m4a"),
            &AudioOnlyOptions {
                source_audio_is_adts: true,
                ..AudioOnlyOptions::default()
            },
        ));
        assert!(
            copied.contains("-map 0:a:0 -vn -c:a copy -bsf:a aac_adtstoasc"),
            "{copied}"
        );
        assert!(copied.ends_with("-f ipod file:out.m4a"), "{copied}");
        let encoded = joined(&audio_only_arguments(
            &media("in.ts"),
            Path::new("out.m4a"),
            &AudioOnlyOptions {
                source_audio_is_aac: false,
                audio_bitrate_kbps: 96,
                ..AudioOnlyOptions::default()
            },
        ));
        assert!(encoded.contains("-c:a aac -b:a 96k"), "{encoded}");
        assert!(!encoded.contains("aac_adtstoasc"), "{encoded}");
        // A program map declaring an empty audio stream first: the one with packets, by id.
        let by_id = joined(&audio_only_arguments(
            &media("in.ts"),
            Path::new("out.m4a"),
            &AudioOnlyOptions {
                audio_stream_id: Some(0x102),
                ..AudioOnlyOptions::default()
            },
        ));
        assert!(by_id.contains("-map 0:i:258 -vn -c:a copy"), "{by_id}");
    }

    #[test]
    fn thumbnail_takes_the_first_keyframe_at_most_320_pixels() {
        let arguments = thumbnail_arguments(&media("in.mp4"), Path::new("thumb.jpg"));
        assert_eq!(
            joined(&arguments),
            "-hide_banner -nostats -loglevel warning -y \
             -threads 1 -skip_frame nokey -f mov -format_whitelist mov -enable_drefs 0 -protocol_whitelist file -i file:in.mp4 \
             -map 0:v:0 -an -sn -dn -frames:v 1 \
             -vf scale=w=min(320\\,iw):h=min(320\\,ih):force_original_aspect_ratio=decrease:force_divisible_by=2 \
             -c:v mjpeg -q:v 3 -update 1 -f image2 file:thumb.jpg"
        );
    }

    #[test]
    fn concat_list_quotes_paths() {
        let contents = concat_list_contents(&[
            PathBuf::from("/r/part-0001.ts"),
            PathBuf::from("/r/it's.ts"),
        ]);
        assert_eq!(
            contents,
            "ffconcat version 1.0\nfile '/r/part-0001.ts'\nfile '/r/it'\\''s.ts'\n"
        );
    }

    #[test]
    fn concat_uses_the_demuxer_with_a_local_whitelist() {
        let arguments = concat_arguments(
            Path::new("/r/list.txt"),
            InputFormat::MpegTs,
            Path::new("/r/all.ts"),
            &ConcatOptions::new(OutputContainer::Ts),
        );
        assert_eq!(
            joined(&arguments),
            "-hide_banner -nostats -loglevel warning -y -progress pipe:1 \
             -f concat -safe 0 -format_whitelist concat,mpegts -protocol_whitelist file -i file:/r/list.txt \
             -map 0:v? -map 0:a? -c copy -avoid_negative_ts make_zero -f mpegts file:/r/all.ts"
        );
    }

    #[test]
    fn probe_is_json_of_format_and_streams_on_local_files_only() {
        assert_eq!(
            joined(&probe_arguments(&media("x.mp4"))),
            "-hide_banner -v error -print_format json -show_format -show_streams \
             -f mov -format_whitelist mov -enable_drefs 0 -protocol_whitelist file -i file:x.mp4"
        );
    }

    #[test]
    fn hls_detection() {
        assert!(is_probably_hls("https://example.com/live/index.m3u8"));
        assert!(is_probably_hls(
            "https://example.com/live/INDEX.M3U8?token=abc#x"
        ));
        assert!(is_probably_hls("http://example.com/playlist.m3u"));
        assert!(is_probably_hls(
            "https://example.com/manifest(format=m3u8-aapl)"
        ));
        assert!(is_probably_hls("https://example.com/play?format=m3u8"));
        assert!(!is_probably_hls("https://example.com/live/stream.ts"));
        assert!(!is_probably_hls("https://example.com/radio.mp3?q=1"));
        assert!(!is_probably_hls("https://example.com/m3u/stream.flv"));
    }

    #[test]
    fn decode_checks_sample_long_files_and_read_only_the_named_file() {
        let thorough = DecodeCheckSampling::THOROUGH;
        assert_eq!(decode_check_slices(45.0, thorough), None);
        assert_eq!(decode_check_slices(f64::NAN, thorough), None);
        assert_eq!(
            decode_check_slices(600.0, thorough),
            Some([(0.0, 10.0), (295.0, 10.0), (590.0, 10.0)])
        );
        assert_eq!(decode_check_slices(45.0, DecodeCheckSampling::QUICK), None);
        assert_eq!(
            decode_check_slices(3600.0, DecodeCheckSampling::QUICK),
            Some([(0.0, 60.0), (1770.0, 60.0), (3540.0, 60.0)])
        );
        let input = MediaInput::new("/r/recording-0001.mp4", InputFormat::Mp4);
        let slices = [(0.0, 10.0), (295.0, 10.0)];
        assert_eq!(
            joined(&decode_check_arguments(&input, Some(&slices), false)),
            "-hide_banner -nostats -nostdin -loglevel error -threads 1 -ss 0.000 -t 10.000 \
             -f mov -format_whitelist mov -enable_drefs 0 -protocol_whitelist file \
             -i file:/r/recording-0001.mp4 -ss 295.000 -t 10.000 \
             -f mov -format_whitelist mov -enable_drefs 0 -protocol_whitelist file \
             -i file:/r/recording-0001.mp4 -map 0:v? -map 0:a? -map 1:v? -map 1:a? -f null -"
        );
        assert_eq!(
            joined(&decode_check_arguments(&input, None, true)),
            "-hide_banner -nostats -nostdin -loglevel error -threads 1 -skip_frame nokey \
             -f mov -format_whitelist mov -enable_drefs 0 -protocol_whitelist file \
             -i file:/r/recording-0001.mp4 -map 0:v? -map 0:a? -f null -"
        );
        assert_every_input_whitelisted(
            &decode_check_arguments(&input, Some(&slices), true),
            LOCAL_PROTOCOL_WHITELIST,
        );
        assert_every_input_whitelisted(
            &decode_check_arguments(&input, None, false),
            LOCAL_PROTOCOL_WHITELIST,
        );
    }

    #[test]
    fn engine_reads_only_its_stdin_with_the_demuxer_named() {
        let arguments = engine_record_arguments(
            &EngineInput::Pipe(InputFormat::Flv),
            &engine_output_pattern(Path::new("/r/job")),
            &EngineOptions::default(),
        );
        assert_eq!(
            joined(&arguments),
            "-hide_banner -nostats -loglevel warning -y -progress pipe:1 \
             -f flv -format_whitelist flv -fflags +discardcorrupt -protocol_whitelist pipe -i pipe:0 \
             -map 0:v? -map 0:a? -c copy \
             -f segment -segment_time 600 -segment_format mpegts -reset_timestamps 1 \
             -segment_start_number 1 file:/r/job/part-%04d.ts"
        );
        assert_every_input_whitelisted(&arguments, PIPE_PROTOCOL_WHITELIST);
        let text = joined(&arguments);
        for network in ["http", "tcp", "tls", "crypto", "reconnect", "user_agent"] {
            assert!(!text.contains(network), "{text}");
        }
    }

    #[test]
    fn engine_on_a_downloaded_file_limits_duration_and_numbering() {
        let options = EngineOptions {
            segment_seconds: 60,
            max_duration: Some(Duration::from_millis(7_200_500)),
            first_segment_number: 4,
            streams_left_out: Vec::new(),
        };
        let arguments = engine_record_arguments(
            &EngineInput::File(media("/r/download.mp4")),
            Path::new("/r/p-%04d.ts"),
            &options,
        );
        assert_every_local_input_names_its_format(&arguments);
        let text = joined(&arguments);
        assert!(
            text.contains(
                "-f mov -format_whitelist mov -enable_drefs 0 -protocol_whitelist file -i file:/r/download.mp4 -t 7200.500"
            ),
            "{text}"
        );
        assert!(text.contains("-segment_time 60 "), "{text}");
        assert!(text.contains("-segment_start_number 4 "), "{text}");
    }

    /// Streams of the main input left out (declared, no packets): one negative map each, after
    /// the maps that would take them.
    #[test]
    fn streams_left_out_get_negative_maps_after_the_maps() {
        let options = RemuxOptions {
            main_streams_left_out: vec![0x102, 0x1FF],
            thumbnail_stream_id: Some(0x101),
            thumbnail: Some(PathBuf::from("/r/out.jpg")),
            ..RemuxOptions::new(OutputContainer::Mkv)
        };
        let text = joined(&remux_arguments(
            &media("/r/part-0001.ts"),
            Path::new("/r/out.mkv"),
            &options,
        ));
        assert!(
            text.contains("-map 0:v? -map 0:a? -map -0:i:258 -map -0:i:511"),
            "{text}"
        );
        // The thumbnail comes from the video with packets, not from `v:0`.
        assert!(text.contains("-map 1:i:257 -an"), "{text}");
        // An audio rendition's own empty streams: left out of input 1.
        let with_audio = RemuxOptions {
            audio_input: Some(media("/r/audio-0001.ts")),
            audio_streams_left_out: vec![0x101],
            ..RemuxOptions::new(OutputContainer::Mkv)
        };
        let text = joined(&remux_arguments(
            &media("/r/part-0001.ts"),
            Path::new("/r/out.mkv"),
            &with_audio,
        ));
        assert!(text.contains("-map 0:v -map 1:a -map -1:i:257 "), "{text}");
        // An extra audio track whose first audio is empty: its stream with packets by id.
        let mut with_extra = RemuxOptions::new(OutputContainer::Mkv);
        with_extra.extra_audio_inputs.push(AudioTrackInput {
            input: media("/r/audio2-0001.ts"),
            label: TrackLabel::default(),
            stream_id: Some(0x101),
        });
        let text = joined(&remux_arguments(
            &media("/r/part-0001.ts"),
            Path::new("/r/out.mkv"),
            &with_extra,
        ));
        assert!(text.contains("-map 0:v? -map 0:a? -map 1:i:257 "), "{text}");
        // The ffmpeg engine's input.
        let engine = EngineOptions {
            streams_left_out: vec![0x102],
            ..EngineOptions::default()
        };
        let text = joined(&engine_record_arguments(
            &EngineInput::Pipe(InputFormat::MpegTs),
            Path::new("/r/part-%04d.ts"),
            &engine,
        ));
        assert!(
            text.contains("-map 0:v? -map 0:a? -map -0:i:258 -c copy -f segment"),
            "{text}"
        );
        let transcode = TranscodeOptions {
            main_streams_left_out: vec![0x102],
            ..TranscodeOptions::new(OutputContainer::Mp4, TranscodePreset::low())
        };
        let text = joined(&transcode_arguments(
            &media("/r/part-0001.ts"),
            Path::new("/r/out.mp4"),
            &transcode,
        ));
        assert!(text.contains("-map 0:a? -map -0:i:258 "), "{text}");
        let concat = ConcatOptions {
            main_streams_left_out: vec![0x102],
            ..ConcatOptions::new(OutputContainer::Ts)
        };
        let text = joined(&concat_arguments(
            Path::new("/r/list.txt"),
            InputFormat::MpegTs,
            Path::new("/r/joined.ts"),
            &concat,
        ));
        assert!(text.contains("-map 0:a? -map -0:i:258 "), "{text}");
    }
}
