//! The query protocol (`Action=...` form posts): STS and IAM.

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use keytrail_audit::{CallContext, Principal};
use keytrail_iam::get_caller_identity;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::call::{CallOutcome, call_context, journal, new_json_request_id};
use crate::errors::{ApiError, query_error, set_header, xml_escape};
use crate::sigauth::{ErrorStyle, authenticate};

pub(crate) const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
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
    match scope_service {
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
    let outcome = match (service, action.as_str()) {
        ("sts", "GetCallerIdentity") => Ok(sts_get_caller_identity(&principal, &request_id)),
        ("sts", "AssumeRole") => sts_assume_role(state, &ctx, &params, &request_id).await,
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
    // STS calls change nothing: AWS records them all as read-only.
    let mut event =
        CallOutcome::management(event_source, &action, true).with_error(outcome.as_ref().err());
    if let Ok(done) = &outcome {
        event.request_parameters = done.request_parameters.clone();
        event.response_elements = done.response_elements.clone();
        event.resources = done.resources.clone();
    }
    let response = match (journal(state, &ctx, event).await, outcome) {
        (Err(e), _) | (Ok(()), Err(e)) => query_error(&e, &request_id, namespace),
        (Ok(()), Ok(done)) => xml_response(done.xml, &request_id),
    };
    (service, op_label, response)
}

/// A successful STS call: the response document and what its event records.
struct StsOutcome {
    xml: String,
    request_parameters: Option<serde_json::Value>,
    response_elements: Option<serde_json::Value>,
    resources: Vec<keytrail_audit::Resource>,
}

fn sts_document(action: &str, result_xml: &str, request_id: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{STS_NAMESPACE}\">\n  <{action}Result>\n{result_xml}  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        xml_escape(request_id)
    )
}

fn sts_get_caller_identity(principal: &Principal, request_id: &str) -> StsOutcome {
    let id = get_caller_identity(principal);
    let result = format!(
        "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
        xml_escape(&id.arn),
        xml_escape(&id.user_id),
        xml_escape(&id.account),
    );
    StsOutcome {
        xml: sts_document("GetCallerIdentity", &result, request_id),
        request_parameters: None,
        response_elements: None,
        resources: Vec::new(),
    }
}

fn sts_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn sts_assume_role(
    state: &AppState,
    ctx: &CallContext,
    params: &[(String, String)],
    request_id: &str,
) -> Result<StsOutcome, ApiError> {
    let missing = |member: &str| {
        ApiError::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy \
                 constraint: Member must not be null"
            ),
        )
    };
    let role_arn = sts_param(params, "RoleArn").ok_or_else(|| missing("roleArn"))?;
    let session_name =
        sts_param(params, "RoleSessionName").ok_or_else(|| missing("roleSessionName"))?;
    let duration = match sts_param(params, "DurationSeconds") {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ApiError::new(
                "ValidationError",
                StatusCode::BAD_REQUEST,
                format!("Value '{v}' at 'durationSeconds' failed to satisfy constraint: Member must be a number"),
            )
        })?),
    };
    if sts_param(params, "Policy").is_some()
        || params.iter().any(|(k, _)| k.starts_with("PolicyArns."))
    {
        // Session policies narrow a session's permissions; accepting and ignoring them would
        // grant more than the caller asked for.
        return Err(ApiError::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            "Session policies (Policy, PolicyArns) are not supported by keytrail.",
        ));
    }
    let credentials = state
        .identities
        .api_assume_role(ctx, role_arn, session_name, duration)
        .await
        .map_err(iam_wire::api_error)?;
    let expiration = credentials.expiration.format(&Rfc3339).unwrap_or_default();
    let result = format!(
        "    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{expiration}</Expiration>\n    </Credentials>\n",
        xml_escape(&credentials.assumed_role_id),
        xml_escape(&credentials.arn),
        xml_escape(&credentials.access_key_id),
        xml_escape(&credentials.secret_access_key),
        xml_escape(&credentials.session_token),
    );
    let role_account = role_arn.split(':').nth(4).unwrap_or_default().to_string();
    Ok(StsOutcome {
        xml: sts_document("AssumeRole", &result, request_id),
        request_parameters: Some(json!({
            "roleArn": role_arn,
            "roleSessionName": session_name,
            "durationSeconds": duration,
        })),
        // The secret and the token (which carries it, sealed) stay out of the journal.
        response_elements: Some(json!({
            "credentials": {
                "accessKeyId": credentials.access_key_id,
                "expiration": expiration,
            },
            "assumedRoleUser": {
                "assumedRoleId": credentials.assumed_role_id,
                "arn": credentials.arn,
            },
        })),
        resources: vec![keytrail_audit::Resource {
            account_id: Some(role_account),
            resource_type: "AWS::IAM::Role".into(),
            arn: role_arn.to_string(),
        }],
    })
}

fn xml_response(xml: String, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(xml));
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, crate::errors::TEXT_XML_VALUE);
    set_header(&mut resp, crate::errors::X_AMZN_REQUESTID, request_id);
    resp
}
