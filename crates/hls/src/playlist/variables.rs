//! Variable substitution (`#EXT-X-DEFINE`, RFC 8216bis 4.4.2.3): `{$name}` references in URI
//! lines and tag values are replaced by the value of a `NAME`/`VALUE` definition of the same
//! playlist, or of an `IMPORT`/`QUERYPARAM` definition whose value the caller supplies. References
//! to unknown variables are left as written. `#EXTINF` titles are not substituted.

use std::borrow::Cow;
use std::collections::HashMap;

use super::PlaylistLimits;
use super::attributes::Attributes;
use super::lines::{PlaylistLine, playlist_lines, raw_lines};
use super::tags::{TAG_DEFINE, TAG_EXTINF};
use super::types::PlaylistParseError;

/// The text with every resolvable `{$name}` reference substituted, one output line per input
/// line so that line numbers in errors stay right. Borrowed when nothing needs substituting.
/// The output is bounded by `limits.maximum_substituted_bytes` and the number of references
/// substituted by `limits.maximum_variable_references`: past either, an error, never a large
/// allocation.
pub(crate) fn substitute_variables<'text>(
    text: &'text str,
    external_variables: &[(String, String)],
    limits: &PlaylistLimits,
) -> Result<Cow<'text, str>, PlaylistParseError> {
    if !text.contains("{$") {
        return Ok(Cow::Borrowed(text));
    }
    let variables = collect_defined_variables(text, external_variables);
    if variables.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    let mut budget = SubstitutionBudget {
        remaining_bytes: limits.maximum_substituted_bytes,
        remaining_references: limits.maximum_variable_references,
        limits: *limits,
    };
    let mut substituted_text =
        String::with_capacity(text.len().min(limits.maximum_substituted_bytes));
    for (_, raw_line) in raw_lines(text) {
        let trimmed_line = raw_line.trim_start();
        let is_exempt =
            trimmed_line.starts_with(TAG_EXTINF) || trimmed_line.starts_with(TAG_DEFINE);
        if is_exempt {
            budget.spend_bytes(raw_line.len() + 1)?;
            substituted_text.push_str(raw_line);
        } else {
            substitute_references(raw_line, &variables, &mut budget, &mut substituted_text)?;
            budget.spend_bytes(1)?;
        }
        substituted_text.push('\n');
    }
    Ok(Cow::Owned(substituted_text))
}

struct SubstitutionBudget {
    remaining_bytes: usize,
    remaining_references: usize,
    limits: PlaylistLimits,
}

impl SubstitutionBudget {
    fn spend_bytes(&mut self, bytes: usize) -> Result<(), PlaylistParseError> {
        spend(
            &mut self.remaining_bytes,
            bytes,
            "bytes after variable substitution",
            self.limits.maximum_substituted_bytes,
        )
    }

    fn spend_reference(&mut self) -> Result<(), PlaylistParseError> {
        spend(
            &mut self.remaining_references,
            1,
            "variable references",
            self.limits.maximum_variable_references,
        )
    }
}

/// Takes `amount` from `remaining`, or says which limit it would go over.
fn spend(
    remaining: &mut usize,
    amount: usize,
    what: &'static str,
    limit: usize,
) -> Result<(), PlaylistParseError> {
    match remaining.checked_sub(amount) {
        Some(left) => {
            *remaining = left;
            Ok(())
        }
        None => Err(PlaylistParseError::OverLimit {
            what,
            limit: limit as u64,
        }),
    }
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

fn substitute_references(
    line: &str,
    variables: &HashMap<String, String>,
    budget: &mut SubstitutionBudget,
    substituted_line: &mut String,
) -> Result<(), PlaylistParseError> {
    let mut remaining = line;
    while let Some(reference_start) = remaining.find("{$") {
        let before = &remaining[..reference_start];
        budget.spend_bytes(before.len())?;
        substituted_line.push_str(before);
        let after_opening = &remaining[reference_start + 2..];
        let replacement = after_opening.find('}').and_then(|name_end| {
            variables
                .get(&after_opening[..name_end])
                .map(|value| (value, name_end))
        });
        match replacement {
            Some((value, name_end)) => {
                budget.spend_reference()?;
                budget.spend_bytes(value.len())?;
                substituted_line.push_str(value);
                remaining = &after_opening[name_end + 1..];
            }
            None => {
                budget.spend_bytes(2)?;
                substituted_line.push_str("{$");
                remaining = after_opening;
            }
        }
    }
    budget.spend_bytes(remaining.len())?;
    substituted_line.push_str(remaining);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_defined_and_external_variables_only() {
        let text = "#EXTM3U\r\n#EXT-X-DEFINE:NAME=\"path\",VALUE=\"test/\"\r\n#EXT-X-DEFINE:IMPORT=\"auth\"\r\n\
                    #EXTINF:5,{$path}\r\n{$path}seg.mp4?{$auth}&{$unknown}{$\r\n";
        let limits = PlaylistLimits::default();
        let substituted = substitute_variables(
            text,
            &[("auth".to_string(), "token=1".to_string())],
            &limits,
        )
        .expect("within limits");
        assert_eq!(
            substituted,
            "#EXTM3U\n#EXT-X-DEFINE:NAME=\"path\",VALUE=\"test/\"\n#EXT-X-DEFINE:IMPORT=\"auth\"\n\
             #EXTINF:5,{$path}\ntest/seg.mp4?token=1&{$unknown}{$\n"
        );
        assert!(matches!(
            substitute_variables("#EXTM3U\na.ts\n", &[], &limits),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn a_define_bomb_stops_at_the_output_limit() {
        // 1 KiB value, referenced 64 times per line on 1,000 lines: 64 MiB if unbounded.
        let value = "x".repeat(1024);
        let line = "{$v}".repeat(64);
        let mut text = format!("#EXTM3U\n#EXT-X-DEFINE:NAME=\"v\",VALUE=\"{value}\"\n");
        for _ in 0..1000 {
            text.push_str("#EXTINF:1,\n");
            text.push_str(&line);
            text.push('\n');
        }
        let limits = PlaylistLimits {
            maximum_substituted_bytes: 1024 * 1024,
            ..PlaylistLimits::default()
        };
        assert_eq!(
            substitute_variables(&text, &[], &limits),
            Err(PlaylistParseError::OverLimit {
                what: "bytes after variable substitution",
                limit: 1024 * 1024
            })
        );
        let few_references = PlaylistLimits {
            maximum_variable_references: 10,
            ..PlaylistLimits::default()
        };
        assert!(matches!(
            substitute_variables(&text, &[], &few_references),
            Err(PlaylistParseError::OverLimit {
                what: "variable references",
                ..
            })
        ));
    }
}
