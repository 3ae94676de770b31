//! `GET /_keytrail/usage?start=&end=&groupBy=`: the caller's account's KMS requests from the
//! hourly usage rollup, for dashboards. SigV4-signed (any service name in the scope; `keytrail`
//! is natural) and authorized as `keytrail:GetUsage` on `*`: the account root, or a user or
//! role whose identity policies allow it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use http::{Request, Response, StatusCode};
use keytrail_policy::{Decision, ResourceAuthority};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::call::{call_context, new_json_request_id};
use crate::errors::{ApiError, json_error, set_header};
use crate::sigauth::{ErrorStyle, authenticate};

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", StatusCode::BAD_REQUEST, message)
}

fn time_param(value: Option<&String>, default: OffsetDateTime) -> Result<i64, ApiError> {
    let t = match value {
        None => default,
        Some(text) => OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| bad_request(format!("{text} is not an ISO 8601 time")))?,
    };
    Ok(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

pub async fn usage(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response<Body> {
    let request_id = new_json_request_id();
    let (parts, _) = req.into_parts();
    match answer(&state, &parts, &request_id).await {
        Ok(json) => {
            let mut resp = Response::new(Body::from(json));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                crate::errors::APPLICATION_JSON_VALUE,
            );
            set_header(&mut resp, crate::errors::X_AMZN_REQUESTID, &request_id);
            resp
        }
        Err(e) => json_error(&e, &request_id),
    }
}

async fn answer(
    state: &AppState,
    parts: &http::request::Parts,
    request_id: &str,
) -> Result<Vec<u8>, ApiError> {
    let scope_service = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| keytrail_sigv4::parse_authorization(v).ok())
        .map_or("keytrail", |a| a.scope.service);
    let auth = authenticate(
        &state.identities,
        &state.signing_keys,
        parts,
        b"",
        scope_service,
        ErrorStyle::Json,
    )
    .await
    .map_err(|failure| failure.error)?;
    let ctx = call_context(parts, request_id, auth.region, auth.principal);
    let request = keytrail_iam::request_context(&ctx, "keytrail:GetUsage", "*");
    let decision = state
        .identities
        .decide(
            &ctx,
            &request,
            None,
            &ctx.principal.account_id,
            ResourceAuthority::Optional,
            false,
        )
        .await
        .map_err(|_| ApiError::internal())?;
    if decision != Decision::Allow {
        return Err(ApiError::new(
            "AccessDeniedException",
            StatusCode::FORBIDDEN,
            keytrail_iam::denial_message(&request, &decision, false),
        ));
    }

    let params: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let now = keytrail_audit::clock::now();
    let start = time_param(params.get("start"), now - time::Duration::days(30))?;
    let end = time_param(params.get("end"), now)?;
    if start >= end {
        return Err(bad_request("start must be before end"));
    }
    let group_by = params.get("groupBy").map_or("key", String::as_str);
    let rows = state
        .store
        .kms_usage(
            start - start.rem_euclid(3_600_000),
            end,
            Some(&ctx.principal.account_id),
        )
        .await
        .map_err(|_| ApiError::internal())?;
    let mut groups: BTreeMap<String, i64> = BTreeMap::new();
    for row in &rows {
        let name = match group_by {
            "key" => row.key_arn.clone(),
            "source" => row.source.clone(),
            "operation" => row.operation.clone(),
            "region" => row.region.clone(),
            "hour" => OffsetDateTime::from_unix_timestamp(row.hour_ms / 1000)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default(),
            "day" => OffsetDateTime::from_unix_timestamp(row.hour_ms / 1000)
                .map(|t| t.date().to_string())
                .unwrap_or_default(),
            other => {
                return Err(bad_request(format!(
                    "groupBy must be key, source, operation, region, hour or day, not {other}"
                )));
            }
        };
        *groups.entry(name).or_default() += row.requests;
    }
    let body = serde_json::json!({
        "accountId": ctx.principal.account_id,
        "groupBy": group_by,
        "requests": groups.values().sum::<i64>(),
        "groups": groups
            .iter()
            .map(|(name, n)| serde_json::json!({ "name": name, "requests": n }))
            .collect::<Vec<_>>(),
    });
    serde_json::to_vec(&body).map_err(|_| ApiError::internal())
}
