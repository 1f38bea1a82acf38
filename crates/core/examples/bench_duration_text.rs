//! The cost of understanding time in a message: `parse_duration_text` on what people type,
//! `find_time_phrases` on a long forwarded post, and a format → parse round trip, each beside a
//! floor measured in the same run (splitting the same text into words), as medians of `--runs`.
//!
//! cargo run --release -p streambot-core --example bench_duration_text [-- --runs 7]

use std::hint::black_box;
use std::time::{Duration, Instant};

use streambot_core::duration_text::{ENGLISH_DURATION_UNITS, RUSSIAN_DURATION_UNITS};
use streambot_core::{find_time_phrases, format_duration_with_units, parse_duration_text};

const PHRASES: [&str; 16] = [
    "2h",
    "90 min",
    "1h30m",
    "1:30:00",
    "1 hour 30 minutes",
    "2 hours and 15 minutes",
    "an hour and a half",
    "half an hour",
    "forty five minutes",
    "на 10 секунд",
    "полтора часа",
    "1 ч 30 мин",
    "2 часа 15 минут",
    "45s",
    "90",
    "for 3 hours",
];
const POST: &str = "🔴 Tonight live: the final of the season, Зенит — Спартак, starts at 20:00 МСК! \
    Watch here https://cdn.example.tv/live/final/index.m3u8?token=abc and share. Match 2 of 5, \
    18+ only, about 1 hour 45 minutes with the break; tomorrow 21:30 the replay.";
const ITERATIONS: usize = 20_000;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn nanoseconds_per_call(mut work: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        work();
    }
    started.elapsed().as_nanos() as f64 / ITERATIONS as f64
}

fn main() {
    let runs = std::env::args()
        .skip_while(|argument| argument != "--runs")
        .nth(1)
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(7)
        .max(1);
    let mut parse = Vec::new();
    let mut parse_floor = Vec::new();
    let mut find = Vec::new();
    let mut find_floor = Vec::new();
    let mut round_trip = Vec::new();
    for _ in 0..runs {
        parse.push(
            nanoseconds_per_call(|| {
                for phrase in PHRASES {
                    let _ = black_box(parse_duration_text(black_box(phrase)));
                }
            }) / PHRASES.len() as f64,
        );
        parse_floor.push(
            nanoseconds_per_call(|| {
                for phrase in PHRASES {
                    black_box(black_box(phrase).split_whitespace().count());
                }
            }) / PHRASES.len() as f64,
        );
        find.push(nanoseconds_per_call(|| {
            black_box(find_time_phrases(black_box(POST)));
        }));
        find_floor.push(nanoseconds_per_call(|| {
            black_box(black_box(POST).to_lowercase().split_whitespace().count());
        }));
        let mut seconds = 1u64;
        round_trip.push(
            nanoseconds_per_call(|| {
                seconds = seconds % 600_000 + 7919;
                for units in [ENGLISH_DURATION_UNITS, RUSSIAN_DURATION_UNITS] {
                    let text = format_duration_with_units(Duration::from_secs(seconds), units);
                    let _ = black_box(parse_duration_text(&text));
                }
            }) / 2.0,
        );
    }
    let (parse, parse_floor) = (median(parse), median(parse_floor));
    let (find, find_floor) = (median(find), median(find_floor));
    println!("runs: {runs}, {ITERATIONS} iterations each (medians)");
    println!(
        "parse_duration_text, one typed phrase: {parse:.0} ns (floor, splitting it into words: {parse_floor:.0} ns; ratio {:.1})",
        parse / parse_floor.max(1.0)
    );
    println!(
        "find_time_phrases, a {}-character forwarded post: {find:.0} ns (floor, lower-case and split: {find_floor:.0} ns; ratio {:.1})",
        POST.chars().count(),
        find / find_floor.max(1.0)
    );
    println!(
        "format then parse back one duration: {:.0} ns",
        median(round_trip)
    );
}
