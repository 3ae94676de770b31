//! Request size and time limits, as a layer in front of every protocol, answering in each
//! protocol's own error shape.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use http::{Response, StatusCode};

use crate::AppState;
use crate::call::{new_json_request_id, new_s3_host_id, new_s3_request_id};
use crate::errors::{ApiError, json_error, query_error};

const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

enum Protocol {
    Json,
    Query,
    S3,
}

fn protocol(req: &Request) -> Protocol {
    if req.headers().contains_key("x-amz-target") {
        Protocol::Json
    } else if crate::query::is_query_request_head(req.method(), req.uri(), req.headers()) {
        Protocol::Query
    } else {
        Protocol::S3
    }
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn too_large(protocol: &Protocol, limit: u64) -> Response<Body> {
    let message = format!("Request body exceeds the limit of {limit} bytes.");
    match protocol {
        Protocol::Json => json_error(
            &ApiError::new(
                "RequestEntityTooLarge",
                StatusCode::PAYLOAD_TOO_LARGE,
                message,
            ),
            &new_json_request_id(),
        ),
        Protocol::Query => query_error(
            &ApiError::new(
                "RequestEntityTooLarge",
                StatusCode::PAYLOAD_TOO_LARGE,
                message,
            ),
            &new_json_request_id(),
            STS_NAMESPACE,
        ),
        Protocol::S3 => crate::s3::s3_error_response(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            StatusCode::BAD_REQUEST,
            &new_s3_request_id(),
            &new_s3_host_id(),
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

/// Refuses bodies declared larger than the protocol allows without handling them, and bounds the
/// time of JSON and query calls (S3 transfers may legitimately take long).
pub async fn enforce(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let protocol = protocol(&req);
    let limit = match protocol {
        Protocol::S3 => state.config.max_s3_body_bytes,
        Protocol::Json | Protocol::Query => state.config.max_api_body_bytes as u64,
    };
    if let Some(declared) = declared_length(&req).filter(|n| *n > limit) {
        if !matches!(protocol, Protocol::S3) && declared <= LINGER_BYTES {
            discard_body(req.into_body()).await;
        }
        return too_large(&protocol, limit);
    }
    match protocol {
        Protocol::S3 => next.run(req).await,
        Protocol::Json | Protocol::Query => {
            match tokio::time::timeout(state.config.api_timeout, next.run(req)).await {
                Ok(resp) => resp,
                Err(_) => {
                    let err = ApiError::new(
                        "RequestTimeoutException",
                        StatusCode::REQUEST_TIMEOUT,
                        "The request was not completed in time.",
                    );
                    match protocol {
                        Protocol::Json => json_error(&err, &new_json_request_id()),
                        _ => query_error(&err, &new_json_request_id(), STS_NAMESPACE),
                    }
                }
            }
        }
    }
}
