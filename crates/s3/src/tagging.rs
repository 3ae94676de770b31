//! Object tags: validated as S3 validates them (at most 10 per object, keys 1–128 and values
//! 0–256 characters of letters, digits, spaces and `_ . : / = + - @`, keys unique and not
//! `aws:`), from a `Tagging` body (PutObjectTagging) or an `x-amz-tagging` header (PutObject,
//! CreateMultipartUpload, CopyObject with `x-amz-tagging-directive: REPLACE`).

use s3s::dto::Tag;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

pub const MAX_OBJECT_TAGS: usize = 10;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

fn allowed(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
}

/// Checks a tag set and returns it as (key, value) pairs in the order given.
pub fn validate(pairs: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    if pairs.len() > MAX_OBJECT_TAGS {
        let mut error = S3Error::with_message(
            S3ErrorCode::Custom("BadRequest".into()),
            "Object tags cannot be greater than 10",
        );
        error.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(error);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in &pairs {
        if key.is_empty() || !allowed(key) {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is invalid"
            ));
        }
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is too long, max 128"
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is too long, max 256"
            ));
        }
        if !allowed(value) {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is invalid"
            ));
        }
        if key.starts_with("aws:") {
            return Err(s3_error!(
                InvalidTag,
                "Your TagKey cannot be prefixed with aws:"
            ));
        }
        if !seen.insert(key.as_str()) {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(pairs)
}

/// A `Tagging` document's tag set.
pub fn from_tag_set(tags: Vec<Tag>) -> S3Result<Vec<(String, String)>> {
    let pairs = tags
        .into_iter()
        .map(|tag| match (tag.key, tag.value) {
            (Some(key), value) => Ok((key, value.unwrap_or_default())),
            (None, _) => Err(s3_error!(MalformedXML, "A tag needs a Key.")),
        })
        .collect::<S3Result<Vec<_>>>()?;
    validate(pairs)
}

/// The `x-amz-tagging` header: a URL-encoded query string, `k1=v1&k2=v2`.
pub fn from_header(header: &str) -> S3Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(header).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."
        )
    })?;
    validate(pairs)
}

pub fn to_tag_set(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(key, value)| Tag {
            key: Some(key.clone()),
            value: Some(value.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: S3Result<Vec<(String, String)>>) -> String {
        result.unwrap_err().code().as_str().to_string()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_header_form_decodes_percent_and_plus() {
        assert_eq!(
            from_header("project=key%20trail&team=a%2Bb&empty=").unwrap(),
            pairs(&[("project", "key trail"), ("team", "a+b"), ("empty", "")])
        );
    }

    #[test]
    fn invalid_tag_sets_are_refused_with_s3s_codes() {
        let eleven: Vec<_> = (0..11)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(code(validate(eleven)), "BadRequest");
        assert_eq!(
            code(validate(pairs(&[("a", "1"), ("a", "2")]))),
            "InvalidTag"
        );
        assert_eq!(code(validate(pairs(&[("aws:owner", "x")]))), "InvalidTag");
        assert_eq!(code(validate(pairs(&[("", "x")]))), "InvalidTag");
        assert_eq!(code(validate(pairs(&[("semi;colon", "x")]))), "InvalidTag");
        assert_eq!(
            code(validate(vec![("k".repeat(129), "v".into())])),
            "InvalidTag"
        );
        assert_eq!(
            code(validate(vec![("k".into(), "v".repeat(257))])),
            "InvalidTag"
        );
        assert!(validate(vec![("k".repeat(128), "v".repeat(256))]).is_ok());
        assert!(validate(pairs(&[("Ünïcode key", "value with : / = + - @ _ .")])).is_ok());
    }
}
