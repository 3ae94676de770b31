//! The awsJson 1.1 protocol (KMS, CloudTrail): `POST /` with `X-Amz-Target`.

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use crate::AppState;
use crate::call::{CallOutcome, call_context, journal, new_json_request_id};
use crate::errors::{ApiError, json_error, set_header};
use crate::kms_wire::Dispatched;
use crate::sigauth::{ErrorStyle, authenticate};

/// A service spoken over awsJson 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonService {
    pub target_prefix: &'static str,
    /// The service name in the SigV4 credential scope.
    pub signing_name: &'static str,
    pub event_source: &'static str,
}

pub const KMS: JsonService = JsonService {
    target_prefix: "TrentService.",
    signing_name: "kms",
    event_source: "kms.amazonaws.com",
};

pub const CLOUDTRAIL: JsonService = JsonService {
    target_prefix: "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.",
    signing_name: "cloudtrail",
    event_source: "cloudtrail.amazonaws.com",
};

/// The target prefix the AWS SDK for Rust (from the Smithy model) sends for CloudTrail; botocore
/// sends [`CLOUDTRAIL`]'s longer one.
const CLOUDTRAIL_SHORT_PREFIX: &str = "CloudTrail_20131101.";

/// Which service and operation an `X-Amz-Target` names.
pub fn resolve_target(target: &str) -> Option<(JsonService, &str)> {
    [
        (KMS, KMS.target_prefix),
        (CLOUDTRAIL, CLOUDTRAIL.target_prefix),
        (CLOUDTRAIL, CLOUDTRAIL_SHORT_PREFIX),
    ]
    .into_iter()
    .find_map(|(service, prefix)| {
        target
            .strip_prefix(prefix)
            .filter(|op| !op.is_empty())
            .map(|op| (service, op))
    })
}

/// Operations are read-only when AWS marks them so in events: reads, and KMS's crypto calls.
fn is_read_only(service: JsonService, operation: &str) -> bool {
    let reads = ["Get", "Describe", "List", "Lookup"];
    if reads.iter().any(|p| operation.starts_with(p)) {
        return true;
    }
    service == KMS
        && matches!(
            operation,
            "Encrypt"
                | "Decrypt"
                | "ReEncrypt"
                | "GenerateDataKey"
                | "GenerateDataKeyWithoutPlaintext"
                | "GenerateDataKeyPair"
                | "GenerateDataKeyPairWithoutPlaintext"
                | "GenerateMac"
                | "VerifyMac"
                | "GenerateRandom"
                | "Sign"
                | "Verify"
        )
}

/// Service label and operation for metrics, and the response.
pub async fn handle(
    state: &AppState,
    parts: &Parts,
    target: &str,
    body: Bytes,
) -> (&'static str, String, Response<Body>) {
    let request_id = new_json_request_id();
    let Some((service, operation)) = resolve_target(target) else {
        let err = ApiError::new(
            "UnknownOperationException",
            StatusCode::BAD_REQUEST,
            format!("The target '{target}' names no operation of a service keytrail serves."),
        );
        return ("unknown", "unknown".into(), json_error(&err, &request_id));
    };
    let label = service.signing_name;
    let response = match authenticate(
        &state.identities,
        &state.signing_keys,
        parts,
        &body,
        service.signing_name,
        ErrorStyle::Json,
    )
    .await
    {
        Err(failure) => {
            if let (Some(principal), Some(region)) = (failure.principal, failure.region) {
                let ctx = call_context(parts, &request_id, region, principal);
                let outcome = CallOutcome::management(
                    service.event_source,
                    operation,
                    is_read_only(service, operation),
                )
                .with_error(Some(&failure.error));
                if let Err(e) = journal(state, &ctx, outcome).await {
                    return (label, operation.into(), json_error(&e, &request_id));
                }
            }
            json_error(&failure.error, &request_id)
        }
        Ok(auth) => {
            let ctx = call_context(parts, &request_id, auth.region, auth.principal);
            // CloudTrail's calls hold the most state across their awaits: boxed, they keep this
            // future (which `dispatch` boxes and so copies whole, per call) at KMS's size.
            let dispatched = if service == KMS {
                crate::kms_wire::dispatch(&state.kms, &ctx, operation, &body).await
            } else {
                Box::pin(state.cloudtrail.execute(&ctx, operation, &body))
                    .await
                    .map(|result| {
                        Dispatched::Ran(result.map_err(|e| {
                            let status =
                                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                            ApiError::new(e.code, status, e.message)
                        }))
                    })
            };
            match dispatched {
                Some(Dispatched::Ran(Ok(bytes))) => ok_response(bytes, &request_id),
                Some(Dispatched::Ran(Err(e))) => json_error(&e, &request_id),
                Some(Dispatched::Rejected(e)) => {
                    journal_failure(state, &ctx, service, operation, &e, &request_id).await
                }
                None => {
                    let e = match parse_input(&body) {
                        Err(e) => e,
                        Ok(_) => unknown_operation(service, operation),
                    };
                    journal_failure(state, &ctx, service, operation, &e, &request_id).await
                }
            }
        }
    };
    (label, operation.to_string(), response)
}

fn unknown_operation(service: JsonService, operation: &str) -> ApiError {
    ApiError::new(
        "UnknownOperationException",
        StatusCode::BAD_REQUEST,
        format!(
            "Operation {operation} of {} is not supported by this keytrail version.",
            service.signing_name
        ),
    )
}

fn ok_response(bytes: Vec<u8>, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        crate::errors::AMZ_JSON_1_1_VALUE,
    );
    set_header(&mut resp, crate::errors::X_AMZN_REQUESTID, request_id);
    resp
}

/// Journals a call that no service ran (unknown operation, unparsable input) and answers it.
async fn journal_failure(
    state: &AppState,
    ctx: &keytrail_audit::CallContext,
    service: JsonService,
    operation: &str,
    error: &ApiError,
    request_id: &str,
) -> Response<Body> {
    let outcome = CallOutcome::management(
        service.event_source,
        operation,
        is_read_only(service, operation),
    )
    .with_error(Some(error));
    match journal(state, ctx, outcome).await {
        Err(e) => json_error(&e, request_id),
        Ok(()) => json_error(error, request_id),
    }
}

fn parse_input(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            "SerializationException",
            StatusCode::BAD_REQUEST,
            "Start of structure or map found where not expected.",
        )),
        Err(e) => Err(ApiError::new(
            "SerializationException",
            StatusCode::BAD_REQUEST,
            format!("The request body is not valid JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_to_services() {
        assert_eq!(
            resolve_target("TrentService.GenerateDataKey"),
            Some((KMS, "GenerateDataKey"))
        );
        assert_eq!(
            resolve_target("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateTrail"),
            Some((CLOUDTRAIL, "CreateTrail"))
        );
        assert_eq!(
            resolve_target("CloudTrail_20131101.LookupEvents"),
            Some((CLOUDTRAIL, "LookupEvents"))
        );
        assert_eq!(resolve_target("TrentService."), None);
        assert_eq!(resolve_target("DynamoDB_20120810.ListTables"), None);
    }

    #[test]
    fn read_only_follows_aws() {
        assert!(is_read_only(KMS, "Decrypt"));
        assert!(is_read_only(KMS, "ListKeys"));
        assert!(!is_read_only(KMS, "CreateKey"));
        assert!(is_read_only(CLOUDTRAIL, "LookupEvents"));
        assert!(!is_read_only(CLOUDTRAIL, "StartLogging"));
    }

    #[test]
    fn malformed_input_is_a_serialization_error() {
        assert_eq!(parse_input(b"").unwrap().len(), 0);
        assert_eq!(
            parse_input(b"[1]").unwrap_err().code,
            "SerializationException"
        );
        assert_eq!(
            parse_input(b"{").unwrap_err().code,
            "SerializationException"
        );
        assert_eq!(
            unknown_operation(KMS, "CreateGrant").code,
            "UnknownOperationException"
        );
    }
}
