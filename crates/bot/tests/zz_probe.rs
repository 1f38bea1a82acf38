use streambot_bot::parser::parse_message;
#[test]
fn probe() {
    let url = "https://x.tv/a.m3u8";
    let pieces = [
        "1h ",
        "every ",
        "at ",
        "and a half ",
        "1:2:3:4:5 ",
        "🎉",
        "\u{202e}",
        "9",
        "9.",
        "каждую пятницу и ",
        "Friday and ",
        "at 20:00 ",
        "UTC+3 ",
        "Europe/Berlin ",
        "wait up to ",
        "in ",
        "in German ",
        "tomorrow ",
        "1h30",
        "1,5 ",
        ":",
        "0:",
        "99999999999999999999:99 ",
    ];
    for piece in pieces {
        let mut text = format!("{url} ");
        while text.len() < 4096 - piece.len() {
            text.push_str(piece);
        }
        let started = std::time::Instant::now();
        let result = parse_message(&text, Some("StreamBot"));
        let summary: String = format!("{result:?}").chars().take(160).collect();
        println!("{piece:?} {:?} => {summary}", started.elapsed());
        let started = std::time::Instant::now();
        let no_url = text.replacen(url, "record", 1);
        let result = parse_message(&no_url, Some("StreamBot"));
        let summary: String = format!("{result:?}").chars().take(100).collect();
        println!("   no url {:?} => {summary}", started.elapsed());
    }
    for input in [
        "https://x.tv/a.m3u8 at 20:00 tomorrow",
        "https://x.tv/a.m3u8 at 8 tonight",
        "https://x.tv/a.m3u8 at 2:30 every Sunday",
        "https://x.tv/a.m3u8 at 20:00 every day for 2h wait up to 1 h",
        "https://x.tv/a.m3u8 every friday at 20:00 tomorrow",
        "https://x.tv/a.m3u8 tomorrow on Friday at 20:00",
        "https://x.tv/a.m3u8 in 2 hours",
        "https://x.tv/a.m3u8 in 720p",
        "https://x.tv/a.m3u8 in 1080p for 1h",
        "https://x.tv/a.m3u8 in the evening at 8",
        "record https://x.tv/a.m3u8 at 8 in HD",
        "https://x.tv/a.m3u8 at 8 for 2h",
        "https://x.tv/a.m3u8 @ 8",
        "https://x.tv/a.m3u8 from 8",
        "https://x.tv/a.m3u8 from 20:00 to 22:00",
        "https://x.tv/a.m3u8 20:00-22:00",
        "https://x.tv/a.m3u8 at 20:00 until 22:00",
        "https://x.tv/a.m3u8 с 20:00 до 22:00",
    ] {
        println!(
            "{input:?}\n   => {:?}",
            parse_message(input, Some("StreamBot"))
        );
    }
}
