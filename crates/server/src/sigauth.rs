//! SigV4 header authentication for the JSON (KMS, CloudTrail) and query (STS, IAM) protocols.
//! S3 requests are authenticated by s3s with our secret lookup instead (see `s3.rs`).

use http::StatusCode;
use http::request::Parts;
use keytrail_audit::Principal;
use keytrail_iam::Identities;
use keytrail_sigv4::{self as sigv4, RequestParts, SigV4Error};
use time::OffsetDateTime;

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

/// Every header as `(name, value)`, with `host` synthesised from the URI authority for HTTP/2.
pub fn header_pairs(parts: &Parts) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
    {
        headers.push(("host".into(), authority.to_string()));
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
    let authorization = String::from_utf8_lossy(authorization.as_bytes());
    let auth = sigv4::parse_authorization(&authorization)
        .map_err(|e| fail(to_api_error(style, e), None, None))?;

    let resolved = identities.resolve(&auth.access_key_id).await.map_err(|e| {
        tracing::error!(error = %e, "access key lookup failed");
        fail(ApiError::internal(), None, None)
    })?;
    let Some(resolved) = resolved else {
        return Err(fail(unknown_key(style), None, None));
    };
    let region = valid_region(&auth.scope.region).then(|| auth.scope.region.clone());
    let principal = resolved.principal.clone();
    let fail_known = |error| fail(error, Some(principal.clone()), region.clone());

    if !resolved.active {
        return Err(fail_known(unknown_key(style)));
    }
    if parts.headers.contains_key("x-amz-security-token") {
        // Only long-term keys exist until STS sessions do; a token cannot be valid.
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
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(amz_date) = amz_date else {
        return Err(fail_known(incomplete(
            style,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )));
    };
    sigv4::check_time(&amz_date, &auth.scope, OffsetDateTime::now_utc())
        .map_err(|e| fail_known(to_api_error(style, e)))?;

    let headers = header_pairs(parts);
    let payload_hash = sigv4::sha256_hex(body);
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        payload_hash: &payload_hash,
    };
    sigv4::verify(&request, &auth, &amz_date, &resolved.secret)
        .map_err(|e| fail_known(to_api_error(style, e)))?;
    Ok(Authenticated {
        principal,
        region: auth.scope.region,
    })
}
