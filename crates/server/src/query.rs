//! The query protocol (`Action=...` form posts): STS and IAM.

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use keytrail_iam::get_caller_identity;

use crate::AppState;
use crate::call::{CallOutcome, call_context, journal, new_json_request_id};
use crate::errors::{ApiError, query_error, set_header, xml_escape};
use crate::sigauth::{ErrorStyle, authenticate};

const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
use crate::iam_wire::{self, IAM_NAMESPACE};

/// Query-protocol requests are `POST /` with a form body, or `GET /?Action=...`; S3 has no
/// operation of either shape.
pub fn is_query_request_head(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> bool {
    if uri.path() != "/" {
        return false;
    }
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let action_in_query = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("Action=")));
    (method == http::Method::POST && form) || action_in_query
}

/// The service a query request is for, from its credential scope (STS and IAM share the shape).
fn scoped_service(parts: &Parts) -> &'static str {
    let scope_service = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| keytrail_sigv4::parse_authorization(v).ok())
        .map(|a| a.scope.service);
    match scope_service.as_deref() {
        Some("iam") => "iam",
        _ => "sts",
    }
}

fn params(parts: &Parts, body: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    if parts.method == http::Method::POST {
        out.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default());
    }
    out
}

pub async fn handle(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
) -> (&'static str, String, Response<Body>) {
    let request_id = new_json_request_id();
    let service = scoped_service(parts);
    let namespace = if service == "iam" {
        IAM_NAMESPACE
    } else {
        STS_NAMESPACE
    };
    let event_source = if service == "iam" {
        "iam.amazonaws.com"
    } else {
        "sts.amazonaws.com"
    };
    let params = params(parts, &body);
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let op_label = if action.is_empty() {
        "unknown".to_string()
    } else {
        action.clone()
    };

    let auth = match authenticate(
        &state.identities,
        &state.signing_keys,
        parts,
        &body,
        service,
        ErrorStyle::Query,
    )
    .await
    {
        Ok(auth) => auth,
        Err(failure) => {
            if let (Some(principal), Some(region)) = (failure.principal, failure.region)
                && !action.is_empty()
            {
                let ctx = call_context(parts, &request_id, region, principal);
                let outcome = CallOutcome::management(event_source, &action, true)
                    .with_error(Some(&failure.error));
                if let Err(e) = journal(state, &ctx, outcome).await {
                    return (service, op_label, query_error(&e, &request_id, namespace));
                }
            }
            return (
                service,
                op_label,
                query_error(&failure.error, &request_id, namespace),
            );
        }
    };
    if action.is_empty() {
        let err = ApiError::new("MissingAction", StatusCode::BAD_REQUEST, "Missing Action");
        return (service, op_label, query_error(&err, &request_id, namespace));
    }

    let principal = auth.principal.clone();
    let ctx = call_context(parts, &request_id, auth.region, auth.principal);
    let read_only = ["Get", "List"].iter().any(|p| action.starts_with(p));
    if service == "iam"
        && let Some(result) = iam_wire::dispatch(&state.identities, &ctx, &action, &params).await
    {
        let mut outcome = CallOutcome::management(event_source, &action, read_only)
            .with_error(result.as_ref().err());
        if let Ok(done) = &result {
            outcome.request_parameters = Some(done.request_parameters.clone());
            outcome.response_elements = done.response_elements.clone();
        }
        let response = match (journal(state, &ctx, outcome).await, result) {
            (Err(e), _) | (Ok(()), Err(e)) => query_error(&e, &request_id, namespace),
            (Ok(()), Ok(done)) => xml_response(
                iam_wire::response_document(&action, &done.result_xml, &request_id),
                &request_id,
            ),
        };
        return (service, op_label, response);
    }
    let result = match (service, action.as_str()) {
        ("sts", "GetCallerIdentity") => {
            let id = get_caller_identity(&principal);
            Ok(format!(
                "<GetCallerIdentityResponse xmlns=\"{STS_NAMESPACE}\">\n  <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
                xml_escape(&id.arn),
                xml_escape(&id.user_id),
                xml_escape(&id.account),
                xml_escape(&request_id)
            ))
        }
        (_, other) => {
            let version = if service == "iam" {
                "2010-05-08"
            } else {
                "2011-06-15"
            };
            Err(ApiError::new(
                "InvalidAction",
                StatusCode::BAD_REQUEST,
                format!("Could not find operation {other} for version {version}"),
            ))
        }
    };
    let outcome =
        CallOutcome::management(event_source, &action, read_only).with_error(result.as_ref().err());
    let response = match (journal(state, &ctx, outcome).await, result) {
        (Err(e), _) | (Ok(()), Err(e)) => query_error(&e, &request_id, namespace),
        (Ok(()), Ok(xml)) => xml_response(xml, &request_id),
    };
    (service, op_label, response)
}

fn xml_response(xml: String, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(xml));
    set_header(&mut resp, "content-type", "text/xml");
    set_header(&mut resp, "x-amzn-requestid", request_id);
    resp
}
