//! Telegram's upload limit: the one rule the bot (where parts are cut and sent), the Telegram
//! channel storage and the binary's wiring share.

/// The cloud Bot API (`api.telegram.org`) accepts files up to 50 MB.
pub const CLOUD_BOT_API_UPLOAD_LIMIT_BYTES: u64 = 50_000_000;
/// A local Bot API server (`telegram-bot-api --local`) accepts files up to 2000 MB.
pub const LOCAL_BOT_API_UPLOAD_LIMIT_BYTES: u64 = 2_000_000_000;
/// The cloud Bot API's host.
pub const CLOUD_BOT_API_HOST: &str = "api.telegram.org";

/// The upload limit of the Bot API server at `api_host` (`None`: the cloud one). Any host other
/// than `api.telegram.org` (in any case) is a local Bot API server.
pub fn telegram_upload_limit_bytes(api_host: Option<&str>) -> u64 {
    match api_host {
        Some(host) if !host.eq_ignore_ascii_case(CLOUD_BOT_API_HOST) => {
            LOCAL_BOT_API_UPLOAD_LIMIT_BYTES
        }
        _ => CLOUD_BOT_API_UPLOAD_LIMIT_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_api_allows_50_megabytes_and_a_local_server_2000() {
        assert_eq!(telegram_upload_limit_bytes(None), 50_000_000);
        assert_eq!(
            telegram_upload_limit_bytes(Some("api.telegram.org")),
            50_000_000
        );
        assert_eq!(
            telegram_upload_limit_bytes(Some("API.Telegram.org")),
            50_000_000
        );
        assert_eq!(
            telegram_upload_limit_bytes(Some("127.0.0.1")),
            2_000_000_000
        );
        assert_eq!(telegram_upload_limit_bytes(Some("bot-api")), 2_000_000_000);
    }
}
