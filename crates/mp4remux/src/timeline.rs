//! Timestamps as ffmpeg's `-c copy -avoid_negative_ts make_zero` remux writes them, so a native
//! remux has the same sample times, edit lists and A/V offset as the ffmpeg one (pure integer
//! arithmetic; the rounding rules of libavutil's `av_rescale_rnd` and `av_add_stable`).

/// The 90 kHz clock of MPEG-TS.
pub const TS_CLOCK: i64 = 90_000;
/// The movie timescale ffmpeg writes (`mvhd`, `tkhd`, `elst` durations).
pub const MOVIE_TIMESCALE: i64 = 1_000;
const WRAP: i64 = 1 << 33;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    Down,
    Up,
    /// Half away from zero (`AV_ROUND_NEAR_INF`).
    Nearest,
}

/// `value * multiplier / divisor` rounded as asked; saturates instead of overflowing.
pub fn rescale(value: i64, multiplier: i64, divisor: i64, rounding: Rounding) -> i64 {
    if divisor <= 0 {
        return 0;
    }
    let product = i128::from(value) * i128::from(multiplier);
    let divisor = i128::from(divisor);
    let quotient = match rounding {
        Rounding::Down => product.div_euclid(divisor),
        Rounding::Up => -((-product).div_euclid(divisor)),
        Rounding::Nearest => {
            if product >= 0 {
                (product + divisor / 2) / divisor
            } else {
                -((-product + divisor / 2) / divisor)
            }
        }
    };
    i64::try_from(quotient).unwrap_or(if quotient < 0 { i64::MIN } else { i64::MAX })
}

/// `av_add_stable(1/90000, timestamp, 1/sample_rate, samples)`: the next audio timestamp inside a
/// PES packet, exactly as ffmpeg's demuxer interpolates it.
pub fn add_samples_stable(timestamp: i64, samples: i64, sample_rate: i64) -> i64 {
    if sample_rate <= 0 {
        return timestamp;
    }
    // inc_tb = samples / sample_rate; m/d in units of the 90 kHz clock.
    let m = i128::from(samples) * i128::from(TS_CLOCK);
    let d = i128::from(sample_rate);
    if m % d == 0 {
        return timestamp.saturating_add(i64::try_from(m / d).unwrap_or(i64::MAX));
    }
    if m < d {
        return timestamp;
    }
    // old = av_rescale_q(ts, 1/90000, samples/sample_rate) (nearest)
    let to_increments =
        |value: i64| -> i64 { rescale(value, sample_rate, TS_CLOCK * samples, Rounding::Nearest) };
    let to_clock = |increments: i64| -> i64 {
        rescale(
            increments,
            TS_CLOCK * samples,
            sample_rate,
            Rounding::Nearest,
        )
    };
    let old = to_increments(timestamp);
    let old_timestamp = to_clock(old);
    to_clock(old.saturating_add(1)).saturating_add(timestamp - old_timestamp)
}

/// Extend a 33-bit timestamp to the value nearest `reference` (wraps at 2^33 handled).
pub fn unwrap_timestamp(raw: u64, reference: i64) -> i64 {
    let raw = (raw & (WRAP as u64 - 1)) as i64;
    let base = reference - reference.rem_euclid(WRAP);
    let candidates = [base - WRAP + raw, base + raw, base + WRAP + raw];
    candidates
        .into_iter()
        .min_by_key(|candidate| (candidate - reference).unsigned_abs())
        .unwrap_or(raw)
}

/// ffmpeg's input start time (`AVFormatContext.start_time`, in the 90 kHz clock): the earliest
/// first PTS of its audio/video streams, or a data stream's when that is earlier by less than 1 s
/// (or there is no audio/video timestamp at all).
pub fn input_start_time(media_first: Option<i64>, data_first: Option<i64>) -> Option<i64> {
    match (media_first, data_first) {
        (None, data) => data,
        (Some(media), Some(data)) if media > data && media - data < TS_CLOCK => Some(data),
        (Some(media), _) => Some(media),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_like_libavutil() {
        assert_eq!(rescale(5110, 44100, 90000, Rounding::Nearest), 2504);
        assert_eq!(rescale(-5, 1, 2, Rounding::Nearest), -3);
        assert_eq!(rescale(-5, 1, 2, Rounding::Up), -2);
        assert_eq!(rescale(-5, 1, 2, Rounding::Down), -3);
        assert_eq!(rescale(i64::MAX, i64::MAX, 1, Rounding::Up), i64::MAX);
        assert_eq!(rescale(1, 1, 0, Rounding::Up), 0);
    }

    #[test]
    fn audio_interpolation_matches_ffprobe() {
        // Measured on an ffmpeg-made TS at 44.1 kHz (ffprobe -show_packets).
        let mut timestamp = 131_110;
        let mut seen = Vec::new();
        for _ in 0..4 {
            timestamp = add_samples_stable(timestamp, 1024, 44100);
            seen.push(timestamp);
        }
        assert_eq!(seen, vec![133_200, 135_290, 137_380, 139_469]);
        assert_eq!(add_samples_stable(158_278, 1024, 44100), 160_368);
        assert_eq!(add_samples_stable(10, 1024, 48000), 1930);
    }

    #[test]
    fn wrap_is_unwrapped_near_the_reference() {
        assert_eq!(unwrap_timestamp(5, WRAP - 10), WRAP + 5);
        assert_eq!(unwrap_timestamp((WRAP - 5) as u64, WRAP + 3), WRAP - 5);
        assert_eq!(unwrap_timestamp(100, 0), 100);
        assert_eq!(input_start_time(Some(100), Some(50)), Some(50));
        assert_eq!(input_start_time(Some(100_000), Some(5)), Some(100_000));
    }
}
