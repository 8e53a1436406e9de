//! Secret values in an auth file's text shown as `"<redacted>"`, so a `--dry-run` diff never
//! prints another registry's stored login.

use super::diff::unified_diff;

/// The fields of an `auths` entry that hold a secret (docker/cli and containers/image).
pub(crate) const SECRET_FIELDS: [&str; 4] = ["auth", "password", "identitytoken", "registrytoken"];

/// What a dry run prints in place of a secret value.
const REDACTED: &str = "\"<redacted>\"";

/// The `--dry-run` diff between two config texts, with every secret value shown as
/// `"<redacted>"`: the file holds other registries' stored logins, and a diff prints them as
/// context or as removed lines. Both sides are masked alike, so the diff keeps its shape.
pub(crate) fn masked_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    unified_diff(&mask_secrets(old), &mask_secrets(new), old_name, new_name)
}

/// `text`, a JSON document, with the string value of every key named in [`SECRET_FIELDS`]
/// (compared case-insensitively, as Go's JSON decoding does) replaced by [`REDACTED`]; every
/// other byte is kept.
///
/// This follows the JSON grammar rather than parsing into a `Value` and rendering that: the
/// old side of the diff must stay the file's own text, or the diff would hide the reformatting
/// that the real write does (a compact or hand-indented file is rewritten in full). Only string
/// values are masked: docker/cli and containers/image decode these fields as strings, so any
/// other value is not a credential they would send.
fn mask_secrets(text: &str) -> String {
    /// Where the scanner is: inside an object (expecting a key or not) or an array.
    enum Frame {
        Object { expect_key: bool },
        Array,
    }
    let mut out = String::with_capacity(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    // Set by a secret key, cleared by the value that follows it.
    let mut secret_value = false;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' => {
                // Find the closing quote, skipping escaped characters.
                let mut end = text.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        _ => {}
                    }
                }
                let literal = &text[start..end];
                match stack.last_mut() {
                    Some(Frame::Object { expect_key }) if *expect_key => {
                        *expect_key = false;
                        // A key that does not decode is not one of ours; it is copied as is.
                        secret_value = serde_json::from_str::<String>(literal)
                            .is_ok_and(|key| SECRET_FIELDS.iter().any(|f| key.eq_ignore_ascii_case(f)));
                        out.push_str(literal);
                    }
                    _ if secret_value => {
                        secret_value = false;
                        out.push_str(REDACTED);
                    }
                    _ => out.push_str(literal),
                }
            }
            '{' => {
                secret_value = false;
                stack.push(Frame::Object { expect_key: true });
                out.push(c);
            }
            '[' => {
                secret_value = false;
                stack.push(Frame::Array);
                out.push(c);
            }
            '}' | ']' => {
                secret_value = false;
                stack.pop();
                out.push(c);
            }
            ',' => {
                secret_value = false;
                if let Some(Frame::Object { expect_key }) = stack.last_mut() {
                    *expect_key = true;
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn secrets_are_masked_wherever_they_are_and_nothing_else_is() {
        let text = "{\"auths\": {\"h\": {\"auth\":\"A\\\"1\", \"Password\" : \"P1\", \"username\": \"auth\"},\n\
                    \"i\": {\"IdentityToken\": \"I1\", \"registrytoken\": \"R1\", \"x\": [\"auth\", \"V\"]}},\n\
                    \"au\\u0074h\": \"E1\", \"AUTH\": 5, \"password\": {\"n\": \"N\"}, \"k\": \"auth\", \"v\": \"W\"}";
        assert!(serde_json::from_str::<Value>(text).is_ok(), "the sample is valid JSON");
        let masked = mask_secrets(text);
        assert_eq!(
            masked,
            "{\"auths\": {\"h\": {\"auth\":\"<redacted>\", \"Password\" : \"<redacted>\", \"username\": \"auth\"},\n\
             \"i\": {\"IdentityToken\": \"<redacted>\", \"registrytoken\": \"<redacted>\", \"x\": [\"auth\", \"V\"]}},\n\
             \"au\\u0074h\": \"<redacted>\", \"AUTH\": 5, \"password\": {\"n\": \"N\"}, \"k\": \"auth\", \"v\": \"W\"}"
        );
        let before = "{\n\t\"auths\": {\n\t\t\"a\": {\n\t\t\t\"auth\": \"S1\"\n\t\t}\n\t}\n}\n";
        let after = "{\n\t\"auths\": {}\n}\n";
        assert_eq!(
            masked_diff(before, after, "a", "b"),
            "--- a\n+++ b\n@@ -1,7 +1,3 @@\n {\n-\t\"auths\": {\n-\t\t\"a\": {\n-\t\t\t\"auth\": \"<redacted>\"\n-\t\t}\n-\t}\n+\t\"auths\": {}\n }\n"
        );
    }
}
