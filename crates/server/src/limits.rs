//! Request size and time limits, applied by the dispatcher before and around every protocol's
//! handling (not as a router layer: that boxed each request's future and cloned the inner
//! service per request), answering in each protocol's own error shape.

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use http::{Response, StatusCode};

use crate::AppState;
use crate::call::{new_json_request_id, new_s3_host_id, new_s3_request_id};
use crate::errors::{ApiError, json_error, query_error};
use crate::query::STS_NAMESPACE;

/// Which protocol a request speaks, told from its head.
pub(crate) enum Protocol {
    /// awsJson (KMS, CloudTrail, ...), with its `X-Amz-Target`.
    Json(String),
    /// The query protocol (STS, IAM).
    Query,
    S3,
}

impl Protocol {
    pub(crate) fn of(req: &Request) -> Self {
        match req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
        {
            Some(target) => Protocol::Json(target.to_string()),
            None if crate::query::is_query_request_head(req.method(), req.uri(), req.headers()) => {
                Protocol::Query
            }
            None => Protocol::S3,
        }
    }
}

/// What handling a request produced: the service and operation it is counted under, and the
/// answer.
pub(crate) type Handled = (&'static str, String, Response<Body>);

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// An error of a JSON or query call in its protocol's shape, counted under the service such a
/// call is counted under before it names one.
pub(crate) fn api_error(protocol: &Protocol, err: &ApiError) -> Handled {
    match protocol {
        Protocol::Query => (
            "sts",
            "unknown".into(),
            query_error(err, &new_json_request_id(), STS_NAMESPACE),
        ),
        Protocol::Json(_) | Protocol::S3 => (
            "unknown",
            "unknown".into(),
            json_error(err, &new_json_request_id()),
        ),
    }
}

fn too_large(protocol: &Protocol, limit: u64) -> Handled {
    match protocol {
        Protocol::S3 => (
            "s3",
            "unknown".into(),
            crate::s3::s3_error_response(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                StatusCode::BAD_REQUEST,
                &new_s3_request_id(),
                &new_s3_host_id(),
            ),
        ),
        api => api_error(
            api,
            &ApiError::new(
                "RequestEntityTooLarge",
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body exceeds the limit of {limit} bytes."),
            ),
        ),
    }
}

/// An API body declared too large but at most this big is read and thrown away before the
/// refusal is sent (a "lingering close"): a client still writing its body when the server
/// answers and closes gets a broken pipe instead of the 413. Anything bigger is refused at once.
const LINGER_BYTES: u64 = 8 * 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(5);

async fn discard_body(body: Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let drain = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// The request back when the body it declares fits its protocol's limit; otherwise the
/// refusal, sent without handling the request.
pub(crate) async fn refuse_oversized(
    state: &AppState,
    protocol: &Protocol,
    req: Request,
) -> Result<Request, Handled> {
    let limit = match protocol {
        Protocol::S3 => state.config.max_s3_body_bytes,
        Protocol::Json(_) | Protocol::Query => state.config.max_api_body_bytes as u64,
    };
    match declared_length(&req).filter(|n| *n > limit) {
        None => Ok(req),
        Some(declared) => {
            if !matches!(protocol, Protocol::S3) && declared <= LINGER_BYTES {
                discard_body(req.into_body()).await;
            }
            Err(too_large(protocol, limit))
        }
    }
}

/// Runs a JSON or query call within the configured time (S3 transfers may legitimately take
/// long and are not bounded here); a call that runs out is answered with a
/// RequestTimeoutException in its protocol's shape. See `deadlines` for how the time is kept.
pub(crate) async fn within_api_time(
    state: &AppState,
    protocol: &Protocol,
    call: impl Future<Output = Handled>,
) -> Handled {
    if let Some(handled) = state.call_deadlines.run(call).await {
        return handled;
    }
    api_error(
        protocol,
        &ApiError::new(
            "RequestTimeoutException",
            StatusCode::REQUEST_TIMEOUT,
            "The request was not completed in time.",
        ),
    )
}
