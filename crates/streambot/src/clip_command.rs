//! `streambot clip DIR --last 5m [--output FILE]`: a playable file of the last minutes of a
//! recording directory (parts + ledger), made at once, even while the recording goes on.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use streambot_ffmpeg::FfmpegRunner;
use streambot_recorder::clip::clip_last;

#[derive(Debug, clap::Args)]
pub struct ClipArguments {
    /// The recording's directory (where its parts and ledger are).
    pub directory: PathBuf,
    /// How much of the end to take, e.g. 5m, 90s, 1h.
    #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration_argument)]
    pub last: Duration,
    /// The clip file (mp4, or mkv/ts by its extension). Default: DIR/clip-<seconds>-<time>.mp4.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run_clip_command(arguments: ClipArguments) -> ExitCode {
    let output = arguments.output.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|duration| duration.as_secs())
            .unwrap_or(0);
        arguments.directory.join(format!(
            "clip-{}s-{now}.mp4",
            arguments.last.as_secs().max(1)
        ))
    });
    let runner = FfmpegRunner::new(crate::ffmpeg_settings::ffmpeg_binaries(
        crate::settings::environment(),
    ));
    match clip_last(&runner, &arguments.directory, arguments.last, &output).await {
        Ok(clip) => {
            if arguments.json {
                if let Err(status) = crate::probe_command::print_pretty_json("clip", &clip) {
                    return status;
                }
            } else {
                println!(
                    "{} ({:.1} s, {} segments, {} bytes)",
                    clip.path.display(),
                    clip.duration_seconds,
                    clip.segments,
                    clip.size_bytes
                );
                for note in &clip.notes {
                    println!("note: {note}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("streambot clip: {} ({error})", error.user_message());
            ExitCode::from(1)
        }
    }
}
