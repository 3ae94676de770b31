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

/// Refuses bodies declared larger than the protocol allows before reading them, and bounds the
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
    if declared_length(&req).is_some_and(|n| n > limit) {
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
