//! The one redaction of URLs (issue 11): what any crate writes of a user's link in a log, an
//! error, the ledger, a chat message or the dashboard. Pure string work, so every crate (the
//! dashboard too, which must not compile the recording side) shares it; `hls::url_safety`
//! re-exports it beside its `redact_url(&Url)`.

/// Query parameters whose names contain one of these (lower case) carry secrets: their values
/// are replaced by [`REDACTED`] wherever a URL is written or logged.
const SECRET_QUERY_NAME_PARTS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "key",
    "sig",
    "credential",
    "session",
];

/// What stands in for a removed secret.
pub const REDACTED: &str = "REDACTED";

/// A URL as it may be written to a log, an error text, the ledger, a message or the dashboard, or
/// text that may not parse as a URL (a playlist's URI, a user's message):
/// every `scheme://user:password@host` or `//user@host` loses its userinfo, and every query's
/// secret-looking values are replaced.
pub fn redact_url_text(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    // Userinfo: between "//" and the end of the authority.
    while let Some(slashes) = rest.find("//") {
        let (before, after) = rest.split_at(slashes + 2);
        result.push_str(before);
        let authority_end = after
            .find(|character: char| {
                matches!(character, '/' | '?' | '#' | '\\') || character.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(at) => result.push_str(&authority[at + 1..]),
            None => result.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    result.push_str(rest);
    redact_query_secrets(&result)
}

fn redact_query_secrets(text: &str) -> String {
    let Some(query_start) = text.find('?') else {
        return text.to_string();
    };
    let (before, after) = text.split_at(query_start + 1);
    let query_end = after
        .find(|character: char| character == '#' || character.is_whitespace())
        .unwrap_or(after.len());
    let (query, tail) = after.split_at(query_end);
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_query_name(name) => format!("{name}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect();
    format!(
        "{before}{}{}",
        redacted.join("&"),
        redact_query_secrets(tail)
    )
}

fn is_secret_query_name(name: &str) -> bool {
    let lowered = name.to_ascii_lowercase();
    SECRET_QUERY_NAME_PARTS
        .iter()
        .any(|part| lowered.contains(part))
}
