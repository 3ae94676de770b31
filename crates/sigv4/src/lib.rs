//! AWS Signature Version 4 for the server side: parse the `Authorization` header, rebuild the
//! canonical request exactly as the client did, derive the signing key and compare signatures in
//! constant time.
//!
//! The crate is pure (no HTTP types, no I/O) so that it can be tested against AWS's published
//! test vectors and against requests signed by the `aws-sigv4` crate. The server adapts its HTTP
//! request into [`RequestParts`]; S3 requests are verified by s3s and never come here.

use std::borrow::Cow;

use aws_lc_rs::{digest, hmac};
use subtle::ConstantTimeEq;
use time::{OffsetDateTime, PrimitiveDateTime, macros::format_description};
use zeroize::Zeroizing;

/// The only signing algorithm this verifier accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS accepts requests whose timestamp is within this many seconds of its own clock.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 15 * 60;

/// Why a request's signature was not accepted. Each variant maps to one AWS error code in the
/// server; the messages follow AWS's wording where it is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("Missing Authentication Token")]
    MissingAuthentication,
    #[error("{0}")]
    Incomplete(String),
    #[error("Credential should be scoped to correct service: '{expected}'. ")]
    WrongService { expected: String },
    #[error("Credential should be scoped to a valid region. ")]
    InvalidRegion,
    #[error(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope}' != '{request}', from '{amz_date}'."
    )]
    ScopeDateMismatch {
        scope: String,
        request: String,
        amz_date: String,
    },
    #[error("Signature expired: {amz_date} is now earlier than {earliest} ({now} - 15 min.)")]
    Expired {
        amz_date: String,
        earliest: String,
        now: String,
    },
    #[error("Signature not yet current: {amz_date} is still later than {latest} ({now} + 15 min.)")]
    NotYetCurrent {
        amz_date: String,
        latest: String,
        now: String,
    },
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureMismatch,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header, borrowed from its value:
/// every signed request is parsed, and nothing here outlives the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader<'a> {
    pub access_key_id: &'a str,
    pub scope: CredentialScope<'a>,
    /// Lower-case header names in the order the client listed them (AWS requires sorted);
    /// copied only when the client wrote one with capitals.
    pub signed_headers: Vec<Cow<'a, str>>,
    /// 64 hexadecimal characters, in either case.
    pub signature: &'a str,
}

/// `<yyyymmdd>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialScope<'a> {
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl CredentialScope<'_> {
    pub fn as_string(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// Parses the value of an `Authorization` header. Anything that is not a complete SigV4 header
/// is an [`SigV4Error::Incomplete`] with a message naming what is missing, as AWS reports it.
pub fn parse_authorization(value: &str) -> Result<AuthorizationHeader<'_>, SigV4Error> {
    let value = value.trim();
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        let algorithm = value.split_whitespace().next().unwrap_or_default();
        return Err(SigV4Error::Incomplete(format!(
            "Unsupported authorization type: '{algorithm}'. Only AWS4-HMAC-SHA256 is supported."
        )));
    };
    if !rest.starts_with(' ') {
        return Err(SigV4Error::Incomplete(
            "Authorization header requires a space after the algorithm.".into(),
        ));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, val)) = part.split_once('=') else {
            return Err(SigV4Error::Incomplete(format!(
                "Authorization header requires each component to be of the form key=value: '{part}'"
            )));
        };
        match name.trim() {
            "Credential" => credential = Some(val.trim()),
            "SignedHeaders" => signed_headers = Some(val.trim()),
            "Signature" => signature = Some(val.trim()),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("'Credential'");
    }
    if signed_headers.is_none() {
        missing.push("'SignedHeaders'");
    }
    if signature.is_none() {
        missing.push("'Signature'");
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(SigV4Error::Incomplete(format!(
            "Authorization header requires {} parameter(s). Authorization={value}",
            missing.join(", ")
        )));
    };
    let (access_key_id, scope) = parse_credential(credential)?;
    let mut names = Vec::with_capacity(signed_headers.bytes().filter(|&b| b == b';').count() + 1);
    for name in signed_headers.split(';') {
        let name = name.trim_ascii();
        if name.is_empty() {
            return Err(SigV4Error::Incomplete(
                "SignedHeaders must not contain empty header names.".into(),
            ));
        }
        names.push(if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        });
    }
    let signed_headers = names;
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigV4Error::Incomplete(
            "Signature must be 64 hexadecimal characters.".into(),
        ));
    }
    Ok(AuthorizationHeader {
        access_key_id,
        scope,
        signed_headers,
        signature,
    })
}

fn parse_credential(credential: &str) -> Result<(&str, CredentialScope<'_>), SigV4Error> {
    let mut parts = credential.split('/');
    let fields: [Option<&str>; 6] = std::array::from_fn(|_| parts.next());
    let [
        Some(access_key_id),
        Some(date),
        Some(region),
        Some(service),
        Some(terminator),
        None,
    ] = fields
    else {
        return Err(five_parts_expected(credential));
    };
    if [access_key_id, date, region, service, terminator]
        .iter()
        .any(|p| p.is_empty())
    {
        return Err(five_parts_expected(credential));
    }
    if terminator != "aws4_request" {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        )));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::Incomplete(format!(
            "Credential date must be in the form yyyyMMdd: '{date}'"
        )));
    }
    Ok((
        access_key_id,
        CredentialScope {
            date,
            region,
            service,
        },
    ))
}

fn five_parts_expected(credential: &str) -> SigV4Error {
    SigV4Error::Incomplete(format!(
        "Credential should have 5 parts (access key, date, region, service, aws4_request) separated by '/': '{credential}'"
    ))
}

/// Parses an ISO-8601 basic timestamp as used by `X-Amz-Date`: `20150830T123600Z`.
pub fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    // `YYYYMMDDTHHMMSSZ` read by position: every signed request carries one, and the general
    // format-description parser costs several times as much.
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let day = u8::try_from(number(6..8)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(number(9..11)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(13..15)?).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, clock).assume_utc())
}

/// Formats a time as `X-Amz-Date` does.
pub fn format_amz_date(t: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}

/// Checks the request time against the server clock and the credential scope date.
pub fn check_time(
    amz_date: &str,
    scope: &CredentialScope<'_>,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, SigV4Error> {
    let Some(request_time) = parse_amz_date(amz_date) else {
        return Err(SigV4Error::Incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    if amz_date.get(..8) != Some(scope.date) {
        return Err(SigV4Error::ScopeDateMismatch {
            scope: scope.date.to_string(),
            request: amz_date.get(..8).unwrap_or_default().to_string(),
            amz_date: amz_date.to_string(),
        });
    }
    let skew = (request_time - now).whole_seconds();
    let window = time::Duration::seconds(MAX_CLOCK_SKEW_SECONDS);
    if skew < -MAX_CLOCK_SKEW_SECONDS {
        return Err(SigV4Error::Expired {
            amz_date: amz_date.to_string(),
            earliest: format_amz_date(now - window),
            now: format_amz_date(now),
        });
    }
    if skew > MAX_CLOCK_SKEW_SECONDS {
        return Err(SigV4Error::NotYetCurrent {
            amz_date: amz_date.to_string(),
            latest: format_amz_date(now + window),
            now: format_amz_date(now),
        });
    }
    Ok(request_time)
}

/// What the verifier needs of an HTTP request, already split by the server.
#[derive(Debug, Clone)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as sent on the wire, still percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query string without the leading `?` (empty when none).
    pub query: &'a str,
    /// Every header of the request; names in any case. Repeated names are allowed.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lower-case hex SHA-256 of the body (or the literal the S3 protocol allows).
    pub payload_hash: &'a str,
}

/// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept, everything else
/// `%XX` with upper-case hex. `/` is kept only when `keep_slash`.
pub fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &b in input {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = char::from(bytes[i + 1]).to_digit(16);
            let lo = char::from(bytes[i + 2]).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The canonical URI for non-S3 services: the path as sent on the wire (already encoded once by
/// the client), with dot and empty segments removed, encoded once more. AWS double-encodes the
/// path for every service but S3, which never comes through this verifier.
pub fn canonical_uri(path: &str) -> String {
    if path == "/" {
        return String::from("/");
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s.as_bytes(), false))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.len() > 1 && path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical query string: every `k=v` pair decoded and re-encoded, sorted by key then value.
/// `X-Amz-Signature` is excluded (presigned requests carry it in the query).
pub fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = percent_decode(&k.replace('+', "%20"));
            let v = percent_decode(&v.replace('+', "%20"));
            (uri_encode(&k, false), uri_encode(&v, false))
        })
        .filter(|(k, _)| k != "X-Amz-Signature")
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Appends a header value trimmed, with internal runs of whitespace collapsed to one space, as
/// SigV4 requires.
fn push_canonical_header_value(out: &mut String, value: &str) {
    // Most values hold no whitespace at all (the ASCII spaces are 0x09-0x0d and 0x20; any other
    // is beyond 0x7f): copied whole instead of word by word.
    if !value
        .bytes()
        .any(|b| matches!(b, 0x09..=0x0d | b' ') || !b.is_ascii())
    {
        out.push_str(value);
        return;
    }
    for (i, word) in value.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// Builds the canonical request. Every name in `signed_headers` must be present in the request,
/// otherwise the signature cannot have been computed over it and verification fails.
pub fn canonical_request<S: AsRef<str>>(
    parts: &RequestParts<'_>,
    signed_headers: &[S],
    canonical_uri: &str,
) -> Result<String, SigV4Error> {
    let mut sorted: Vec<&str> = signed_headers.iter().map(AsRef::as_ref).collect();
    sorted.sort_unstable();
    let query = canonical_query(parts.query);
    let mut out = String::with_capacity(
        parts.method.len()
            + canonical_uri.len()
            + query.len()
            + parts.payload_hash.len()
            + parts
                .headers
                .iter()
                .map(|(n, v)| 2 * n.len() + v.len() + 3)
                .sum::<usize>()
            + 8,
    );
    out.push_str(parts.method);
    out.push('\n');
    out.push_str(canonical_uri);
    out.push('\n');
    out.push_str(&query);
    out.push('\n');
    for name in &sorted {
        out.push_str(name);
        out.push(':');
        let mut found = false;
        for (_, value) in parts
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            if found {
                out.push(',');
            }
            push_canonical_header_value(&mut out, value);
            found = true;
        }
        if !found {
            return Err(SigV4Error::SignatureMismatch);
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(parts.payload_hash);
    Ok(out)
}

/// `AWS4-HMAC-SHA256\n<amz-date>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(
    amz_date: &str,
    scope: &CredentialScope<'_>,
    canonical_request: &str,
) -> String {
    let mut out = String::with_capacity(
        ALGORITHM.len()
            + amz_date.len()
            + scope.date.len()
            + scope.region.len()
            + scope.service.len()
            + 100,
    );
    out.push_str(ALGORITHM);
    out.push('\n');
    out.push_str(amz_date);
    out.push('\n');
    out.push_str(scope.date);
    out.push('/');
    out.push_str(scope.region);
    out.push('/');
    out.push_str(scope.service);
    out.push_str("/aws4_request\n");
    push_hex(
        &mut out,
        digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref(),
    );
    out
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    // Written as bytes and appended a digest's worth at a time, instead of one `char` push
    // (with its UTF-8 encoding) per digit.
    for chunk in bytes.chunks(32) {
        let mut digits = [0u8; 64];
        for (pair, &b) in digits.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX_LOWER[usize::from(b >> 4)];
            pair[1] = HEX_LOWER[usize::from(b & 0x0f)];
        }
        out.push_str(std::str::from_utf8(&digits[..2 * chunk.len()]).unwrap_or_default());
    }
}

/// Lower-case hex of `bytes`.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex_lower(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    Zeroizing::new(hmac::sign(&key, data).as_ref().to_vec())
}

/// The derived signing key; zeroized when dropped because it is as good as the secret for a day.
pub fn signing_key(secret: &str, scope: &CredentialScope<'_>) -> Zeroizing<Vec<u8>> {
    let seed = Zeroizing::new(format!("AWS4{secret}"));
    let k_date = hmac_sha256(seed.as_bytes(), scope.date.as_bytes());
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes());
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Hex signature of a string to sign.
pub fn sign(secret: &str, scope: &CredentialScope<'_>, string_to_sign: &str) -> String {
    let key = signing_key(secret, scope);
    hex_lower(&hmac_sha256(&key, string_to_sign.as_bytes()))
}

/// Verifies a parsed header-signed request with the caller's secret. Time and scope checks are
/// done separately ([`check_time`]) because they do not need the secret.
pub fn verify(
    parts: &RequestParts<'_>,
    auth: &AuthorizationHeader<'_>,
    amz_date: &str,
    secret: &str,
) -> Result<(), SigV4Error> {
    verify_with_signing_key(parts, auth, amz_date, &signing_key(secret, &auth.scope))
}

/// [`verify`] with a signing key derived earlier for the same secret and scope: the key is
/// valid for a whole day, so servers cache it instead of deriving it for every request.
pub fn verify_with_signing_key(
    parts: &RequestParts<'_>,
    auth: &AuthorizationHeader<'_>,
    amz_date: &str,
    signing_key: &[u8],
) -> Result<(), SigV4Error> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_key);
    verify_with_key(parts, auth, amz_date, &key)
}

/// [`verify_with_signing_key`] with the signing key already prepared as an HMAC key (its
/// padded inner and outer states computed once), as a server's cache keeps it.
pub fn verify_with_key(
    parts: &RequestParts<'_>,
    auth: &AuthorizationHeader<'_>,
    amz_date: &str,
    key: &hmac::Key,
) -> Result<(), SigV4Error> {
    let canonical = canonical_request(parts, &auth.signed_headers, &canonical_uri(parts.path))?;
    let to_sign = string_to_sign(amz_date, &auth.scope, &canonical);
    let expected = hmac::sign(key, to_sign.as_bytes());
    let mut given = [0u8; 32];
    // `parse_authorization` checked the signature is 64 hex characters.
    let decoded = hex::decode_to_slice(auth.signature, &mut given).is_ok();
    if decoded && bool::from(expected.as_ref().ct_eq(&given[..])) {
        Ok(())
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests;
