//! `native_remux MAIN.ts [AUDIO.ts] OUT.mp4`: the native remux of a part (and an audio rendition).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use streambot_mp4remux::{Brand, InputRole, Limits, RemuxInput, remux_to_mp4};

fn main() -> ExitCode {
    let arguments: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
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
            eprintln!("usage: native_remux MAIN.ts [AUDIO.ts] OUT.mp4");
            return ExitCode::from(2);
        }
    };
    match remux_to_mp4(
        &inputs,
        output,
        Brand::Mp4,
        Limits::default(),
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
