//! Variable substitution (`#EXT-X-DEFINE`, RFC 8216bis 4.4.2.3): `{$name}` references in URI
//! lines and tag values are replaced by the value of a `NAME`/`VALUE` definition of the same
//! playlist, or of an `IMPORT`/`QUERYPARAM` definition whose value the caller supplies. References
//! to unknown variables are left as written. `#EXTINF` titles are not substituted.

use std::borrow::Cow;
use std::collections::HashMap;

use super::attributes::Attributes;
use super::lines::{PlaylistLine, playlist_lines, raw_lines};
use super::tags::{TAG_DEFINE, TAG_EXTINF};

/// The text with every resolvable `{$name}` reference substituted, one output line per input
/// line so that line numbers in errors stay right. Borrowed when nothing needs substituting.
pub(crate) fn substitute_variables<'text>(
    text: &'text str,
    external_variables: &[(String, String)],
) -> Cow<'text, str> {
    if !text.contains("{$") {
        return Cow::Borrowed(text);
    }
    let variables = collect_defined_variables(text, external_variables);
    if variables.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut substituted_text = String::with_capacity(text.len());
    for (_, raw_line) in raw_lines(text) {
        let trimmed_line = raw_line.trim_start();
        let is_exempt =
            trimmed_line.starts_with(TAG_EXTINF) || trimmed_line.starts_with(TAG_DEFINE);
        if is_exempt {
            substituted_text.push_str(raw_line);
        } else {
            substituted_text.push_str(&substitute_references(raw_line, &variables));
        }
        substituted_text.push('\n');
    }
    Cow::Owned(substituted_text)
}

fn collect_defined_variables(
    text: &str,
    external_variables: &[(String, String)],
) -> HashMap<String, String> {
    let mut variables = HashMap::new();
    for line in playlist_lines(text) {
        let PlaylistLine::Tag {
            name: TAG_DEFINE,
            value,
            ..
        } = line
        else {
            continue;
        };
        let attributes = Attributes::parse(value);
        if let Some(variable_name) = attributes.text("NAME") {
            let variable_value = attributes
                .get("VALUE")
                .map(|value| value.as_text().to_string())
                .unwrap_or_default();
            variables.insert(variable_name, variable_value);
        } else if let Some(variable_name) = attributes
            .text("IMPORT")
            .or_else(|| attributes.text("QUERYPARAM"))
            && let Some((_, external_value)) = external_variables
                .iter()
                .find(|(external_name, _)| *external_name == variable_name)
        {
            variables.insert(variable_name, external_value.clone());
        }
    }
    variables
}

fn substitute_references(line: &str, variables: &HashMap<String, String>) -> String {
    let mut substituted_line = String::with_capacity(line.len());
    let mut remaining = line;
    while let Some(reference_start) = remaining.find("{$") {
        substituted_line.push_str(&remaining[..reference_start]);
        let after_opening = &remaining[reference_start + 2..];
        let replacement = after_opening.find('}').and_then(|name_end| {
            variables
                .get(&after_opening[..name_end])
                .map(|value| (value, name_end))
        });
        match replacement {
            Some((value, name_end)) => {
                substituted_line.push_str(value);
                remaining = &after_opening[name_end + 1..];
            }
            None => {
                substituted_line.push_str("{$");
                remaining = after_opening;
            }
        }
    }
    substituted_line.push_str(remaining);
    substituted_line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_defined_and_external_variables_only() {
        let text = "#EXTM3U\r\n#EXT-X-DEFINE:NAME=\"path\",VALUE=\"test/\"\r\n#EXT-X-DEFINE:IMPORT=\"auth\"\r\n\
                    #EXTINF:5,{$path}\r\n{$path}seg.mp4?{$auth}&{$unknown}{$\r\n";
        let substituted =
            substitute_variables(text, &[("auth".to_string(), "token=1".to_string())]);
        assert_eq!(
            substituted,
            "#EXTM3U\n#EXT-X-DEFINE:NAME=\"path\",VALUE=\"test/\"\n#EXT-X-DEFINE:IMPORT=\"auth\"\n\
             #EXTINF:5,{$path}\ntest/seg.mp4?token=1&{$unknown}{$\n"
        );
        assert!(matches!(
            substitute_variables("#EXTM3U\na.ts\n", &[]),
            Cow::Borrowed(_)
        ));
    }
}
