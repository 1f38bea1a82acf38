//! Attribute lists (RFC 8216 4.2): `NAME=VALUE` pairs separated by commas, where a value is a
//! quoted string (which may contain commas), a hexadecimal sequence, a decimal integer or float,
//! a decimal resolution or an enumerated string.

use serde::Serialize;

use super::types::Resolution;

/// One attribute value, kept as written so that each tag reads it as the type it expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AttributeValue {
    /// A `"quoted string"`, without its quotes.
    Quoted(String),
    /// Anything else (enumerated string, decimal, hexadecimal, resolution), trimmed.
    Unquoted(String),
}

impl AttributeValue {
    /// The value's text (without quotes for a quoted string).
    pub fn as_text(&self) -> &str {
        match self {
            AttributeValue::Quoted(text) | AttributeValue::Unquoted(text) => text,
        }
    }

    /// A decimal integer, also accepted when quoted.
    pub fn as_decimal_integer(&self) -> Option<u64> {
        self.as_text().trim().parse().ok()
    }

    /// A finite decimal floating point number, also accepted when quoted.
    pub fn as_decimal_float(&self) -> Option<f64> {
        parse_finite_float(self.as_text())
    }

    /// A decimal resolution `<width>x<height>` (an upper-case `X` is accepted too).
    pub fn as_resolution(&self) -> Option<Resolution> {
        let (width_text, height_text) = self.as_text().trim().split_once(['x', 'X'])?;
        Some(Resolution {
            width: width_text.trim().parse().ok()?,
            height: height_text.trim().parse().ok()?,
        })
    }

    /// A hexadecimal sequence `0x...` as bytes; an odd number of digits is read as if it had a
    /// leading zero.
    pub fn as_hexadecimal_bytes(&self) -> Option<Vec<u8>> {
        let text = self.as_text().trim();
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))?;
        if digits.is_empty() {
            return None;
        }
        if digits.len() % 2 == 1 {
            hex::decode(format!("0{digits}")).ok()
        } else {
            hex::decode(digits).ok()
        }
    }

    /// The enumerated string `YES` (case-insensitive).
    pub fn is_yes(&self) -> bool {
        self.as_text().trim().eq_ignore_ascii_case("YES")
    }
}

/// A finite float; `inf`, `NaN` and empty text are refused.
pub(crate) fn parse_finite_float(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
}

/// Parses an attribute list. Tolerant: whitespace around names and values is ignored, a
/// missing closing quote ends the value at the end of the text, and a name without `=` gets an
/// empty unquoted value. Never fails.
pub fn parse_attribute_list(attribute_list_text: &str) -> Vec<(String, AttributeValue)> {
    let mut attributes = Vec::new();
    let mut remaining = attribute_list_text;
    loop {
        remaining = remaining
            .trim_start_matches(|character: char| character == ',' || character.is_whitespace());
        if remaining.is_empty() {
            return attributes;
        }
        let name_end = remaining.find(['=', ',']).unwrap_or(remaining.len());
        let name = remaining[..name_end].trim().to_string();
        remaining = &remaining[name_end..];
        let Some(after_equals) = remaining.strip_prefix('=') else {
            attributes.push((name, AttributeValue::Unquoted(String::new())));
            continue;
        };
        let value_text = after_equals.trim_start();
        let value = if let Some(after_quote) = value_text.strip_prefix('"') {
            let quote_end = after_quote.find('"').unwrap_or(after_quote.len());
            let quoted = after_quote[..quote_end].to_string();
            let after_value = after_quote.get(quote_end + 1..).unwrap_or("");
            // Anything between the closing quote and the next comma is junk; skip it.
            remaining = after_value
                .find(',')
                .map_or("", |comma_index| &after_value[comma_index..]);
            AttributeValue::Quoted(quoted)
        } else {
            let value_end = value_text.find(',').unwrap_or(value_text.len());
            remaining = &value_text[value_end..];
            AttributeValue::Unquoted(value_text[..value_end].trim().to_string())
        };
        attributes.push((name, value));
    }
}

/// Lookup helper over a parsed attribute list; names compare case-insensitively.
pub(crate) struct Attributes {
    pairs: Vec<(String, AttributeValue)>,
}

impl Attributes {
    pub(crate) fn parse(attribute_list_text: Option<&str>) -> Self {
        Attributes {
            pairs: parse_attribute_list(attribute_list_text.unwrap_or("")),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.pairs
            .iter()
            .find(|(attribute_name, _)| attribute_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The value's text, `None` when absent or empty.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|value| value.as_text().trim())
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    }

    pub(crate) fn decimal_integer(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(AttributeValue::as_decimal_integer)
    }

    pub(crate) fn decimal_float(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(AttributeValue::as_decimal_float)
    }

    pub(crate) fn is_yes(&self, name: &str) -> bool {
        self.get(name).is_some_and(AttributeValue::is_yes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(text: &str) -> AttributeValue {
        AttributeValue::Quoted(text.to_string())
    }

    fn unquoted(text: &str) -> AttributeValue {
        AttributeValue::Unquoted(text.to_string())
    }

    #[test]
    fn quoted_values_keep_their_commas() {
        let attributes = parse_attribute_list(
            r#"BANDWIDTH=1280000,CODECS="avc1.4d401f,mp4a.40.2",RESOLUTION=1280x720"#,
        );
        assert_eq!(
            attributes,
            vec![
                ("BANDWIDTH".to_string(), unquoted("1280000")),
                ("CODECS".to_string(), quoted("avc1.4d401f,mp4a.40.2")),
                ("RESOLUTION".to_string(), unquoted("1280x720")),
            ]
        );
        assert_eq!(
            attributes[2].1.as_resolution(),
            Some(Resolution {
                width: 1280,
                height: 720
            })
        );
    }

    #[test]
    fn tolerates_spaces_missing_values_and_unterminated_quotes() {
        let attributes = parse_attribute_list(r#" METHOD = AES-128 , FLAG, URI="key.bin"#);
        assert_eq!(
            attributes,
            vec![
                ("METHOD".to_string(), unquoted("AES-128")),
                ("FLAG".to_string(), unquoted("")),
                ("URI".to_string(), quoted("key.bin")),
            ]
        );
        assert!(parse_attribute_list("").is_empty());
        assert!(parse_attribute_list(",,,").is_empty());
    }

    #[test]
    fn reads_hexadecimal_and_numbers() {
        assert_eq!(
            unquoted("0x0a0B").as_hexadecimal_bytes(),
            Some(vec![10, 11])
        );
        assert_eq!(
            unquoted("0xabc").as_hexadecimal_bytes(),
            Some(vec![0x0a, 0xbc])
        );
        assert_eq!(unquoted("0x").as_hexadecimal_bytes(), None);
        assert_eq!(unquoted("0xzz").as_hexadecimal_bytes(), None);
        assert_eq!(unquoted("29.97").as_decimal_float(), Some(29.97));
        assert_eq!(unquoted("NaN").as_decimal_float(), None);
        assert_eq!(quoted("42").as_decimal_integer(), Some(42));
        assert_eq!(unquoted("-1").as_decimal_integer(), None);
    }
}
