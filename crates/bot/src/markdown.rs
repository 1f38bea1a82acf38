//! Telegram MarkdownV2 escaping: every character the format reserves gets a backslash, so text a
//! user wrote (a URL, a stream title, an error from a server) can never break a message.

/// Characters MarkdownV2 reserves outside code spans.
const RESERVED: [char; 19] = [
    '\\', '_', '*', '[', ']', '(', ')', '~', '`', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!',
];

/// Escapes text for use anywhere in a MarkdownV2 message outside code spans and links.
pub fn escape_markdown_v2(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 4);
    for character in text.chars() {
        if RESERVED.contains(&character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Escapes text for use inside a `code` or ```pre``` span: only backslash and backtick.
pub fn escape_markdown_v2_code(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if character == '\\' || character == '`' {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(
            escape_markdown_v2("https://x.com/a_b.m3u8?q=1&r=(2)!"),
            "https://x\\.com/a\\_b\\.m3u8?q\\=1&r\\=\\(2\\)\\!"
        );
        assert_eq!(escape_markdown_v2_code("a`b\\c"), "a\\`b\\\\c");
    }

    proptest! {
        /// Removing every backslash that precedes a reserved character gives the text back, and
        /// no reserved character is left unescaped.
        #[test]
        fn escaping_is_reversible_and_complete(text in ".{0,200}") {
            let escaped = escape_markdown_v2(&text);
            let mut unescaped = String::new();
            let mut characters = escaped.chars();
            while let Some(character) = characters.next() {
                if character == '\\' {
                    let next = characters.next();
                    prop_assert!(next.is_some_and(|next| RESERVED.contains(&next)));
                    if let Some(next) = next { unescaped.push(next); }
                } else {
                    prop_assert!(!RESERVED.contains(&character));
                    unescaped.push(character);
                }
            }
            prop_assert_eq!(unescaped, text);
        }
    }
}
