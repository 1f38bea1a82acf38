//! Splitting a playlist text into classified lines: tags, comments and URI lines.

/// One non-blank line of a playlist, trimmed, with its 1-based line number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PlaylistLine<'text> {
    /// A line starting with `#EXT`: the tag name (with its `#`) and the value after the first
    /// `:`, if any.
    Tag {
        line_number: usize,
        name: &'text str,
        value: Option<&'text str>,
    },
    /// A line starting with `#` that is not a tag.
    Comment,
    /// Any other non-blank line: a URI.
    Uri { line_number: usize, uri: &'text str },
}

/// Splits on `\r\n`, `\r` and `\n`, strips a leading UTF-8 byte order mark, trims every line and
/// skips blank lines. Line numbers count every line end, blank lines included.
pub(crate) fn playlist_lines(text: &str) -> impl Iterator<Item = PlaylistLine<'_>> {
    raw_lines(text).filter_map(|(line_number, raw_line)| classify_line(line_number, raw_line))
}

/// Every line with its 1-based number, untrimmed, blank ones included, without the line ends
/// and without a leading UTF-8 byte order mark.
pub(crate) fn raw_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    RawLines {
        remaining: text.strip_prefix('\u{feff}').unwrap_or(text),
        next_line_number: 1,
    }
}

fn classify_line(line_number: usize, raw_line: &str) -> Option<PlaylistLine<'_>> {
    let line = raw_line.trim();
    if line.is_empty() {
        return None;
    }
    if !line.starts_with('#') {
        return Some(PlaylistLine::Uri {
            line_number,
            uri: line,
        });
    }
    if !line.starts_with("#EXT") {
        return Some(PlaylistLine::Comment);
    }
    // The name is `#` and the run of letters, digits and `-` after it; the value is what follows,
    // without the `:` (tolerant of a missing `:` as in `#EXTINF 10,` or a space before it).
    let name_length = 1 + line[1..]
        .find(|character: char| !is_tag_name_character(character))
        .unwrap_or(line.len() - 1);
    let (name, rest) = line.split_at(name_length);
    let rest = rest.trim_start();
    let value = match rest.strip_prefix(':') {
        Some(value) => Some(value.trim()),
        None if rest.is_empty() => None,
        None => Some(rest),
    };
    Some(PlaylistLine::Tag {
        line_number,
        name,
        value,
    })
}

fn is_tag_name_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '-'
}

struct RawLines<'text> {
    remaining: &'text str,
    next_line_number: usize,
}

impl<'text> Iterator for RawLines<'text> {
    type Item = (usize, &'text str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining.is_empty() {
            return None;
        }
        let line_number = self.next_line_number;
        self.next_line_number += 1;
        match self.remaining.find(['\r', '\n']) {
            Some(end_index) => {
                let line = &self.remaining[..end_index];
                let terminator_length = if self.remaining[end_index..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                self.remaining = &self.remaining[end_index + terminator_length..];
                Some((line_number, line))
            }
            None => {
                let line = self.remaining;
                self.remaining = "";
                Some((line_number, line))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_line_end_style_and_counts_lines() {
        let lines: Vec<_> =
            playlist_lines("\u{feff}#EXTM3U\r\n\r\nfirst.ts\rsecond.ts\n  #EXTINF:1,  \n")
                .collect();
        assert_eq!(
            lines,
            vec![
                PlaylistLine::Tag {
                    line_number: 1,
                    name: "#EXTM3U",
                    value: None
                },
                PlaylistLine::Uri {
                    line_number: 3,
                    uri: "first.ts"
                },
                PlaylistLine::Uri {
                    line_number: 4,
                    uri: "second.ts"
                },
                PlaylistLine::Tag {
                    line_number: 5,
                    name: "#EXTINF",
                    value: Some("1,")
                },
            ]
        );
    }

    #[test]
    fn tag_name_ends_where_name_characters_end() {
        let tags: Vec<_> =
            playlist_lines("#EXTINF 10,title\n#EXTINF\"x\n#EXT-X-KEY :METHOD=NONE\n#EXTINFO")
                .collect();
        assert_eq!(
            tags,
            vec![
                PlaylistLine::Tag {
                    line_number: 1,
                    name: "#EXTINF",
                    value: Some("10,title")
                },
                PlaylistLine::Tag {
                    line_number: 2,
                    name: "#EXTINF",
                    value: Some("\"x")
                },
                PlaylistLine::Tag {
                    line_number: 3,
                    name: "#EXT-X-KEY",
                    value: Some("METHOD=NONE")
                },
                PlaylistLine::Tag {
                    line_number: 4,
                    name: "#EXTINFO",
                    value: None
                },
            ]
        );
    }

    #[test]
    fn comments_are_not_tags() {
        let lines: Vec<_> = playlist_lines("# a comment\n#EXT-X-ENDLIST").collect();
        assert_eq!(lines[0], PlaylistLine::Comment);
        assert!(matches!(
            lines[1],
            PlaylistLine::Tag {
                name: "#EXT-X-ENDLIST",
                ..
            }
        ));
    }
}
