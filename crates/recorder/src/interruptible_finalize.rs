//! Finalize that a stop or a shutdown can interrupt (issue 11): a long finalize (a remux of hours,
//! a re-encode) must not hold a worker's shutdown or a "stop now" for its whole length.
//!
//! [`finalize_recording_interruptible`] runs [`finalize_recording`] with the intermediate parts
//! kept, racing it against a [`CancellationToken`]. On cancellation the finalize future is dropped:
//! every ffmpeg it had running is killed at once with its process group (`FfmpegProcess`'s drop),
//! the half-written outputs (`*.partial`, the `joined-NNNN.ts` intermediate) are removed, and every
//! part is where the recording left it, so the same report can be finalized again later. Only when
//! finalize ran to its end are the parts it turned into checked files removed (unless they are to
//! be kept).

use std::collections::HashSet;
use std::path::Path;

use streambot_ffmpeg::FfmpegRunner;
use tokio_util::sync::CancellationToken;

use crate::RecordingReport;
use crate::finalize::{FinalizeReport, FinalizeSettings, finalize_recording};

/// How an interruptible finalize ended.
#[derive(Debug, Clone)]
pub enum FinalizeEnd {
    /// Finalize ran to its end (some parts may have failed: see the report).
    Finished(FinalizeReport),
    /// Cancelled: every ffmpeg was killed and every part is untouched.
    Interrupted,
}

/// [`finalize_recording`], interrupted at once when `cancel` is cancelled (see the module docs).
pub async fn finalize_recording_interruptible(
    runner: &FfmpegRunner,
    report: &RecordingReport,
    settings: &FinalizeSettings,
    cancel: &CancellationToken,
) -> FinalizeEnd {
    if cancel.is_cancelled() {
        return FinalizeEnd::Interrupted;
    }
    let keeping_settings = FinalizeSettings {
        keep_intermediate_parts: true,
        ..settings.clone()
    };
    let finished = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        finished = finalize_recording(runner, report, &keeping_settings) => Some(finished),
    };
    let Some(finalized) = finished else {
        remove_unfinished_outputs(&report.output_directory);
        tracing::info!(
            directory = %report.output_directory.display(),
            "finalize interrupted: ffmpeg stopped, the parts are kept for a later finalize"
        );
        return FinalizeEnd::Interrupted;
    };
    if !settings.keep_intermediate_parts {
        remove_finished_parts(report, &finalized);
    }
    FinalizeEnd::Finished(finalized)
}

/// Outputs an interrupted finalize leaves half-written: ffmpeg's `*.partial` files (and the
/// concat list) and the joined intermediate.
fn remove_unfinished_outputs(directory: &Path) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let unfinished = name.ends_with(".partial")
            || name.ends_with(".concat.txt")
            || (name.starts_with("joined-") && name.ends_with(".ts"));
        if unfinished && let Err(error) = std::fs::remove_file(entry.path()) {
            tracing::warn!(file = %name, %error, "could not remove an unfinished output");
        }
    }
}

/// After a finalize that ran to its end: the main parts that became finished files, and the audio
/// parts once every main part they go with did (a part that failed keeps its audio beside it).
fn remove_finished_parts(report: &RecordingReport, finalized: &FinalizeReport) {
    let Some(main) = &report.main else {
        return;
    };
    let finished_numbers: HashSet<u32> = finalized
        .files
        .iter()
        .flat_map(|file| std::iter::once(file.part_number).chain(file.joined_part_numbers.clone()))
        .collect();
    let mut every_main_part_finished = true;
    for part in &main.parts {
        if finished_numbers.contains(&part.number) {
            let _ = std::fs::remove_file(&part.path);
        } else {
            every_main_part_finished = false;
        }
    }
    let Some(audio) = &report.audio else {
        return;
    };
    for (index, audio_part) in audio.parts.iter().enumerate() {
        let paired_main_finished = audio.parts.len() == main.parts.len()
            && main
                .parts
                .get(index)
                .is_some_and(|part| finished_numbers.contains(&part.number));
        if every_main_part_finished || paired_main_finished {
            let _ = std::fs::remove_file(&audio_part.path);
        }
    }
}
