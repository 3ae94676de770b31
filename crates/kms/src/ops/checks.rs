//! Input checks shared by the operations: model constraints, pagination, tags, DryRun.

use super::*;

pub(super) fn required<'a, T>(value: &'a Option<T>, field: &str) -> KmsResult<&'a T> {
    value.as_ref().ok_or_else(|| null_member(field))
}

pub(super) fn null_member(field: &str) -> KmsError {
    KmsError::Validation(format!(
        "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
    ))
}

pub(super) fn length(field: &str, value: &str, min: usize, max: usize) -> KmsResult<()> {
    let n = value.chars().count();
    if n < min {
        return Err(KmsError::constraint(
            field,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(KmsError::constraint(
            field,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// A binary member within the model's length bounds (1 to `max` bytes). The message never
/// shows the bytes: `[SENSITIVE]` (secrets) or `[BLOB]` stands in for them.
pub(super) fn bytes_member<'a, B: AsRef<[u8]>>(
    value: &'a Option<B>,
    field: &str,
    max: usize,
    shown: &str,
) -> KmsResult<&'a [u8]> {
    let bytes = required(value, field)?.as_ref();
    if bytes.is_empty() || bytes.len() > max {
        return Err(KmsError::constraint(
            field,
            shown,
            &format!("Member must have length between 1 and {max}"),
        ));
    }
    Ok(bytes)
}

/// A ciphertext-sized binary member (the model's `CiphertextType`: 1 to 6144 bytes).
pub(super) fn ciphertext_member<'a, B: AsRef<[u8]>>(
    value: &'a Option<B>,
    field: &str,
) -> KmsResult<&'a [u8]> {
    bytes_member(value, field, 6144, "[BLOB]")
}

pub(super) fn range(field: &str, value: i64, min: i64, max: i64) -> KmsResult<()> {
    if value < min {
        return Err(KmsError::constraint(
            field,
            &value.to_string(),
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(KmsError::constraint(
            field,
            &value.to_string(),
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

pub(super) fn key_id_member<'a>(value: &'a Option<String>, field: &str) -> KmsResult<&'a str> {
    let v = required(value, field)?;
    length(field, v, 1, 2048)?;
    Ok(v)
}

pub(super) fn grant_tokens(kms: &Kms, tokens: &Option<Vec<String>>) -> KmsResult<()> {
    let Some(tokens) = tokens else {
        return Ok(());
    };
    if tokens.len() > 10 {
        return Err(KmsError::constraint(
            "grantTokens",
            &format!("{tokens:?}"),
            "Member must have length less than or equal to 10",
        ));
    }
    kms.check_grant_tokens(tokens)
}

pub(super) fn context(value: &Option<EncryptionContextMap>) -> KmsResult<EncryptionContext> {
    let ctx: EncryptionContext = value.clone().unwrap_or_default();
    let size: usize = ctx.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_CONTEXT_BYTES {
        return Err(KmsError::Validation(format!(
            "The encryption context is {size} bytes; the limit is {MAX_CONTEXT_BYTES}."
        )));
    }
    if ctx.keys().any(String::is_empty) {
        return Err(KmsError::Validation(
            "Encryption context keys must not be empty.".into(),
        ));
    }
    Ok(ctx)
}

pub(super) fn symmetric_algorithm(
    field: &str,
    value: &Option<String>,
    key: &LoadedKey,
) -> KmsResult<String> {
    match value.as_deref() {
        None | Some(SYMMETRIC_DEFAULT) => Ok(SYMMETRIC_DEFAULT.into()),
        Some(alg @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" | "SM2PKE")) => {
            Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {alg} is incompatible with key spec {}.",
                key.record.key_spec
            )))
        }
        Some(other) => Err(KmsError::constraint(
            field,
            other,
            "Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]",
        )),
    }
}

pub(super) fn limit(value: Option<i64>, default: usize) -> KmsResult<usize> {
    match value {
        None => Ok(default),
        Some(n) => {
            range("limit", n, 1, 1000)?;
            Ok(usize::try_from(n).unwrap_or(default))
        }
    }
}

pub(super) const MARKER_PREFIX: &str = "kt1:";

/// One page of `items`, sorted by `sort_key`, starting at `marker` (the sort key of the first
/// item of the page, prefixed so foreign markers are recognised).
pub(super) fn paginate<T>(
    mut items: Vec<T>,
    sort_key: impl Fn(&T) -> String,
    marker: &Option<String>,
    limit: usize,
) -> KmsResult<(Vec<T>, Option<String>, bool)> {
    items.sort_by_key(|a| sort_key(a));
    let start = match marker {
        None => 0,
        Some(m) => {
            let Some(from) = m.strip_prefix(MARKER_PREFIX) else {
                return Err(KmsError::InvalidMarker(format!("Invalid marker: {m}")));
            };
            items
                .iter()
                .position(|i| sort_key(i).as_str() >= from)
                .unwrap_or(items.len())
        }
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    if rest.len() > limit {
        let next = format!("{MARKER_PREFIX}{}", sort_key(&rest[limit]));
        rest.truncate(limit);
        Ok((rest, Some(next), true))
    } else {
        Ok((rest, None, false))
    }
}

pub(super) fn dry_run(flag: Option<bool>) -> KmsResult<()> {
    if flag == Some(true) {
        return Err(KmsError::DryRun(
            "The request would have succeeded, but the DryRun option is set.".into(),
        ));
    }
    Ok(())
}

pub(super) fn validate_tags(tags: &[Tag]) -> KmsResult<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let key = required(&tag.tag_key, "tagKey")?;
        let value = required(&tag.tag_value, "tagValue")?;
        length("tagKey", key, 1, 128)?;
        length("tagValue", value, 0, 256)?;
        if key.starts_with("aws:") {
            return Err(KmsError::Tag(format!(
                "Tag keys beginning with \"aws:\" are reserved: {key}"
            )));
        }
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

pub(super) fn merge_tags(
    existing: &mut Vec<(String, String)>,
    new: Vec<(String, String)>,
) -> KmsResult<()> {
    for (k, v) in new {
        match existing.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => existing.push((k, v)),
        }
    }
    if existing.len() > MAX_TAGS {
        return Err(KmsError::LimitExceeded(format!(
            "A KMS key can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}
