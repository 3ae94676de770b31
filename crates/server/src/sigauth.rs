//! SigV4 header authentication for the JSON (KMS, CloudTrail) and query (STS, IAM) protocols.
//! S3 requests are authenticated by s3s with our secret lookup instead (see `s3.rs`).

use std::borrow::Cow;

use http::StatusCode;
use http::request::Parts;
use keytrail_audit::Principal;
use keytrail_iam::{Credential, Identities};
use keytrail_sigv4::{self as sigv4, RequestParts, SigV4Error};
use time::OffsetDateTime;

use crate::call::header_text;
use crate::errors::ApiError;

/// The two families of error names AWS uses for authentication failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// awsJson services: `UnrecognizedClientException`, `InvalidSignatureException`, …
    Json,
    /// Query services (STS, IAM): `InvalidClientTokenId`, `SignatureDoesNotMatch`, …
    Query,
}

#[derive(Debug)]
pub struct Authenticated {
    pub principal: Principal,
    pub region: String,
}

/// A rejected request. `principal` is set when the access key was known, so the failure can be
/// journaled in that account.
#[derive(Debug)]
pub struct AuthFailure {
    pub error: ApiError,
    pub principal: Option<Principal>,
    pub region: Option<String>,
}

fn missing(style: ErrorStyle) -> ApiError {
    match style {
        ErrorStyle::Json => ApiError::new(
            "MissingAuthenticationTokenException",
            StatusCode::FORBIDDEN,
            "Missing Authentication Token",
        ),
        ErrorStyle::Query => ApiError::new(
            "MissingAuthenticationToken",
            StatusCode::FORBIDDEN,
            "Request is missing Authentication Token",
        ),
    }
}

fn incomplete(style: ErrorStyle, message: String) -> ApiError {
    match style {
        ErrorStyle::Json => ApiError::new(
            "IncompleteSignatureException",
            StatusCode::BAD_REQUEST,
            message,
        ),
        ErrorStyle::Query => ApiError::new("IncompleteSignature", StatusCode::BAD_REQUEST, message),
    }
}

fn unknown_key(style: ErrorStyle) -> ApiError {
    let message = "The security token included in the request is invalid.";
    match style {
        ErrorStyle::Json => ApiError::new(
            "UnrecognizedClientException",
            StatusCode::BAD_REQUEST,
            message,
        ),
        ErrorStyle::Query => ApiError::new("InvalidClientTokenId", StatusCode::FORBIDDEN, message),
    }
}

fn expired_token(style: ErrorStyle) -> ApiError {
    let message = "The security token included in the request is expired";
    match style {
        ErrorStyle::Json => {
            ApiError::new("ExpiredTokenException", StatusCode::BAD_REQUEST, message)
        }
        ErrorStyle::Query => ApiError::new("ExpiredToken", StatusCode::FORBIDDEN, message),
    }
}

fn bad_signature(style: ErrorStyle, message: String) -> ApiError {
    match style {
        ErrorStyle::Json => ApiError::new(
            "InvalidSignatureException",
            StatusCode::BAD_REQUEST,
            message,
        ),
        ErrorStyle::Query => ApiError::new("SignatureDoesNotMatch", StatusCode::FORBIDDEN, message),
    }
}

fn to_api_error(style: ErrorStyle, e: SigV4Error) -> ApiError {
    match e {
        SigV4Error::MissingAuthentication => missing(style),
        SigV4Error::Incomplete(m) => incomplete(style, m),
        other => bad_signature(style, other.to_string()),
    }
}

/// Derived SigV4 signing keys by access key and credential scope, ready as HMAC keys. A key is
/// good for one day, one region and one service; deriving it costs four HMACs per request
/// otherwise. The secret it was derived from is kept beside it so a replaced secret is never
/// matched. Looked up by the access key id as given, without building a key string.
#[derive(Default)]
pub struct SigningKeyCache {
    keys: std::sync::RwLock<std::collections::HashMap<String, Vec<CachedSigningKey>>>,
}

struct CachedSigningKey {
    scope: OwnedScope,
    secret: zeroize::Zeroizing<String>,
    key: std::sync::Arc<aws_lc_rs::hmac::Key>,
}

/// A credential scope kept beyond its request.
#[derive(PartialEq, Eq)]
struct OwnedScope {
    date: String,
    region: String,
    service: String,
}

impl OwnedScope {
    fn of(scope: &sigv4::CredentialScope<'_>) -> Self {
        Self {
            date: scope.date.to_owned(),
            region: scope.region.to_owned(),
            service: scope.service.to_owned(),
        }
    }

    fn is(&self, scope: &sigv4::CredentialScope<'_>) -> bool {
        self.date == scope.date && self.region == scope.region && self.service == scope.service
    }
}

/// Access keys beyond this are dropped wholesale: scopes change daily, so the map only refills.
const MAX_CACHED_ACCESS_KEYS: usize = 10_000;
/// Scopes kept per access key (a day's regions and services), the oldest dropped first.
const MAX_SCOPES_PER_ACCESS_KEY: usize = 16;

impl SigningKeyCache {
    pub fn get(
        &self,
        auth: &sigv4::AuthorizationHeader<'_>,
        secret: &str,
    ) -> std::sync::Arc<aws_lc_rs::hmac::Key> {
        if let Ok(keys) = self.keys.read()
            && let Some(cached) = keys.get(auth.access_key_id).and_then(|scopes| {
                scopes
                    .iter()
                    .find(|c| c.scope.is(&auth.scope) && c.secret.as_str() == secret)
            })
        {
            return std::sync::Arc::clone(&cached.key);
        }
        let derived = sigv4::signing_key(secret, &auth.scope);
        let key = std::sync::Arc::new(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &derived,
        ));
        if let Ok(mut keys) = self.keys.write() {
            if keys.len() >= MAX_CACHED_ACCESS_KEYS {
                keys.clear();
            }
            let scopes = keys.entry(auth.access_key_id.to_owned()).or_default();
            scopes.retain(|c| !c.scope.is(&auth.scope));
            if scopes.len() >= MAX_SCOPES_PER_ACCESS_KEY {
                scopes.remove(0);
            }
            scopes.push(CachedSigningKey {
                scope: OwnedScope::of(&auth.scope),
                secret: zeroize::Zeroizing::new(secret.to_string()),
                key: std::sync::Arc::clone(&key),
            });
        }
        key
    }
}

/// The headers the client signed as `(name, value)` (the others do not take part in the
/// signature), with `host` synthesised from the URI authority for HTTP/2. Borrowed from the
/// request: only a value that is not UTF-8 is copied (lossily).
pub fn signed_header_pairs<'a, S: AsRef<str>>(
    parts: &'a Parts,
    signed: &[S],
) -> Vec<(&'a str, Cow<'a, str>)> {
    let mut headers: Vec<(&str, Cow<'_, str>)> = parts
        .headers
        .iter()
        .filter(|(n, _)| {
            signed
                .iter()
                .any(|s| s.as_ref().eq_ignore_ascii_case(n.as_str()))
        })
        .map(|(n, v)| (n.as_str(), header_text(v)))
        .collect();
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
    {
        headers.push(("host", Cow::Borrowed(authority.as_str())));
    }
    headers
}

fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Authenticates a header-signed request whose credential scope must name `service`.
pub async fn authenticate(
    identities: &Identities,
    signing_keys: &SigningKeyCache,
    parts: &Parts,
    body: &[u8],
    service: &str,
    style: ErrorStyle,
) -> Result<Authenticated, AuthFailure> {
    let fail = |error, principal: Option<Principal>, region: Option<String>| AuthFailure {
        error,
        principal,
        region,
    };
    let Some(authorization) = parts.headers.get(http::header::AUTHORIZATION) else {
        return Err(fail(missing(style), None, None));
    };
    let authorization = header_text(authorization);
    let auth = sigv4::parse_authorization(&authorization)
        .map_err(|e| fail(to_api_error(style, e), None, None))?;

    let session_token = parts
        .headers
        .get("x-amz-security-token")
        .map(|v| header_text(v).into_owned());
    let credential = identities
        .resolve_credential(auth.access_key_id, session_token.as_deref())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "access key lookup failed");
            fail(ApiError::internal(), None, None)
        })?;
    let region = valid_region(auth.scope.region).then_some(auth.scope.region);
    let resolved = match credential {
        Credential::Known(resolved) => resolved,
        Credential::UnknownKey | Credential::InvalidToken => {
            return Err(fail(unknown_key(style), None, None));
        }
        Credential::ExpiredToken(principal) => {
            return Err(fail(
                expired_token(style),
                Some(principal),
                region.map(str::to_owned),
            ));
        }
    };
    let principal = resolved.principal.clone();
    let fail_known = |error| fail(error, Some(principal.clone()), region.map(str::to_owned));

    if !resolved.active {
        return Err(fail_known(unknown_key(style)));
    }
    if auth.scope.service != service {
        return Err(fail_known(to_api_error(
            style,
            SigV4Error::WrongService {
                expected: service.to_string(),
            },
        )));
    }
    if region.is_none() {
        return Err(fail_known(to_api_error(style, SigV4Error::InvalidRegion)));
    }
    let amz_date = parts.headers.get("x-amz-date").map(header_text);
    let Some(amz_date) = amz_date else {
        return Err(fail_known(incomplete(
            style,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )));
    };
    sigv4::check_time(&amz_date, &auth.scope, OffsetDateTime::now_utc())
        .map_err(|e| fail_known(to_api_error(style, e)))?;

    let signed = signed_header_pairs(parts, &auth.signed_headers);
    let headers: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    let payload_hash = sigv4::sha256_hex(body);
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let signing_key = signing_keys.get(&auth, &resolved.secret);
    sigv4::verify_with_key(&request, &auth, &amz_date, &signing_key)
        .map_err(|e| fail_known(to_api_error(style, e)))?;
    Ok(Authenticated {
        principal,
        region: auth.scope.region.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_signing_key_is_never_used_for_another_secret() {
        let cache = SigningKeyCache::default();
        let auth = sigv4::parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261128/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .unwrap();
        // Keys compared by what they sign.
        let tag =
            |key: &aws_lc_rs::hmac::Key| aws_lc_rs::hmac::sign(key, b"probe").as_ref().to_vec();
        let expected = |secret: &str| {
            tag(&aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                &sigv4::signing_key(secret, &auth.scope),
            ))
        };
        let first = cache.get(&auth, "secret-a");
        assert!(std::sync::Arc::ptr_eq(
            &first,
            &cache.get(&auth, "secret-a")
        ));
        assert_eq!(tag(&first), expected("secret-a"));
        let replaced = cache.get(&auth, "secret-b");
        assert_eq!(tag(&replaced), expected("secret-b"));
        assert_ne!(tag(&replaced), tag(&first));
        // Another scope of the same access key is a key of its own, and both stay cached.
        let mut other = auth.clone();
        other.scope.region = "eu-west-1";
        let in_eu = cache.get(&other, "secret-b");
        assert_ne!(tag(&in_eu), tag(&replaced));
        assert!(std::sync::Arc::ptr_eq(
            &replaced,
            &cache.get(&auth, "secret-b")
        ));
        assert!(std::sync::Arc::ptr_eq(
            &in_eu,
            &cache.get(&other, "secret-b")
        ));
    }
}
