//! The one way sizes, bit rates and media durations are written for people (the bot, the CLI,
//! storage captions and errors). Durations that must read back (`1 h 30 min`) are
//! `duration_text::format_duration_with_units`.

/// `1.5 GB`, `300 MB`, `12 KB`, `17 bytes`: decimal units, as disk sizes and Telegram's upload
/// limit are stated.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ];
    for (unit_name, unit_size) in UNITS {
        if bytes >= unit_size {
            let value = bytes as f64 / unit_size as f64;
            return if value >= 100.0 {
                format!("{value:.0} {unit_name}")
            } else {
                format!("{value:.1} {unit_name}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// `2.50 Mbit/s`, `800 kbit/s`.
pub fn format_bitrate(bits_per_second: f64) -> String {
    if bits_per_second >= 1_000_000.0 {
        format!("{:.2} Mbit/s", bits_per_second / 1_000_000.0)
    } else {
        format!("{:.0} kbit/s", bits_per_second / 1000.0)
    }
}

/// `1:02:03` or `4:05`: a media duration as a player shows it. Negative or not finite is `0:00`.
pub fn format_clock_duration(duration_seconds: f64) -> String {
    let total_seconds = if duration_seconds.is_finite() && duration_seconds > 0.0 {
        duration_seconds.round() as u64
    } else {
        0
    };
    let hours = total_seconds / 3600;
    let minutes = (total_seconds % 3600) / 60;
    let seconds = total_seconds % 60;
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_in_decimal_units() {
        assert_eq!(format_size(17), "17 bytes");
        assert_eq!(format_size(1_500), "1.5 KB");
        assert_eq!(format_size(300_000_000), "300 MB");
        assert_eq!(format_size(50_000_000), "50.0 MB");
        assert_eq!(format_size(5_000_000_000), "5.0 GB");
    }

    #[test]
    fn bit_rates_switch_to_megabits_at_one_million() {
        assert_eq!(format_bitrate(800_000.0), "800 kbit/s");
        assert_eq!(format_bitrate(2_500_000.0), "2.50 Mbit/s");
    }

    #[test]
    fn clock_durations_show_hours_only_when_there_are_some() {
        assert_eq!(format_clock_duration(245.0), "4:05");
        assert_eq!(format_clock_duration(3723.4), "1:02:03");
        assert_eq!(format_clock_duration(-3.0), "0:00");
        assert_eq!(format_clock_duration(f64::NAN), "0:00");
    }
}
