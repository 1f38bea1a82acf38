//! `native_remux [--seconds S] MAIN.ts [AUDIO.ts] OUT.mp4`: the one-pass native remux of a part
//! (and an audio rendition), the index room reserved for S seconds of media (default 3600), as
//! finalize reserves it from the ledger's duration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use streambot_mp4remux::{
    Brand, InputRole, Limits, RemuxInput, estimated_index_bytes, remux_to_mp4_in_one_pass,
};

fn main() -> ExitCode {
    let mut arguments: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let mut media_seconds = 3600.0;
    if arguments
        .first()
        .is_some_and(|first| first.as_os_str() == "--seconds")
    {
        match arguments
            .get(1)
            .and_then(|value| value.to_str()?.parse::<f64>().ok())
        {
            Some(value) => media_seconds = value,
            None => {
                eprintln!("--seconds wants a number");
                return ExitCode::from(2);
            }
        }
        arguments.drain(..2);
    }
    let (inputs, output) = match arguments.as_slice() {
        [main, output] => (
            vec![RemuxInput {
                path: main.clone(),
                role: InputRole::Main { take_audio: true },
            }],
            output,
        ),
        [main, audio, output] => (
            vec![
                RemuxInput {
                    path: main.clone(),
                    role: InputRole::Main { take_audio: false },
                },
                RemuxInput {
                    path: audio.clone(),
                    role: InputRole::AudioRendition,
                },
            ],
            output,
        ),
        _ => {
            eprintln!("usage: native_remux [--seconds S] MAIN.ts [AUDIO.ts] OUT.mp4");
            return ExitCode::from(2);
        }
    };
    match remux_to_mp4_in_one_pass(
        &inputs,
        output,
        Brand::Mp4,
        Limits::default(),
        estimated_index_bytes(media_seconds),
        &AtomicBool::new(false),
    ) {
        Ok(summary) => {
            println!("{summary:?}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
