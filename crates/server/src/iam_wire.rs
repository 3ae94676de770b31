//! IAM over the query protocol: form parameters in, `<...Response>` XML out, in the shapes of
//! botocore's `iam/2010-05-08` model.

use http::StatusCode;
use keytrail_audit::CallContext;
use keytrail_iam::{AccessKeyMetadata, IamApiError, Identities, user_arn};
use keytrail_store::UserRecord;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::errors::{ApiError, xml_escape};

pub const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// What an IAM call produced: the response's result element (empty for operations without
/// output), and what its event records.
pub struct IamOutcome {
    pub result_xml: String,
    pub request_parameters: serde_json::Value,
    pub response_elements: Option<serde_json::Value>,
}

fn api_error(e: IamApiError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(e.code(), status, e.to_string())
}

fn iso(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    param(params, name).ok_or_else(|| {
        ApiError::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: \
                 Member must not be null",
                lower_first(name)
            ),
        )
    })
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A user as `<element>` (`User` in a result, `member` in a list).
fn user_xml(element: &str, user: &UserRecord) -> String {
    format!(
        "<{element}><Path>/</Path><UserName>{}</UserName><UserId>{}</UserId><Arn>{}</Arn><CreateDate>{}</CreateDate></{element}>",
        xml_escape(&user.user_name),
        xml_escape(&user.user_id),
        xml_escape(&user_arn(&user.account_id, &user.user_name)),
        iso(user.created_at_ms)
    )
}

fn user_json(user: &UserRecord) -> serde_json::Value {
    json!({
        "path": "/",
        "userName": user.user_name,
        "userId": user.user_id,
        "arn": user_arn(&user.account_id, &user.user_name),
        "createDate": iso(user.created_at_ms),
    })
}

fn key_metadata_xml(key: &AccessKeyMetadata) -> String {
    let user = key
        .user_name
        .as_deref()
        .map(|u| format!("<UserName>{}</UserName>", xml_escape(u)))
        .unwrap_or_default();
    format!(
        "<member>{user}<AccessKeyId>{}</AccessKeyId><Status>{}</Status><CreateDate>{}</CreateDate></member>",
        xml_escape(&key.access_key_id),
        xml_escape(&key.status),
        iso(key.created_at_ms)
    )
}

/// IAM returns policy documents URL-encoded (RFC 3986); the SDKs decode them.
fn url_encode(document: &str) -> String {
    let mut out = String::with_capacity(document.len() * 3);
    for b in document.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn members(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("<member>{}</member>", xml_escape(n)))
        .collect()
}

/// Runs one IAM action. `None` when keytrail does not implement it.
pub async fn dispatch(
    identities: &Identities,
    ctx: &CallContext,
    action: &str,
    params: &[(String, String)],
) -> Option<Result<IamOutcome, ApiError>> {
    run(identities, ctx, action, params).await.transpose()
}

async fn run(
    identities: &Identities,
    ctx: &CallContext,
    action: &str,
    params: &[(String, String)],
) -> Result<Option<IamOutcome>, ApiError> {
    let user_param = param(params, "UserName");
    Ok(Some(match action {
        "CreateUser" => {
            let name = required(params, "UserName")?;
            let user = identities
                .api_create_user(ctx, name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: user_xml("User", &user),
                request_parameters: json!({ "userName": name }),
                response_elements: Some(json!({ "user": user_json(&user) })),
            }
        }
        "GetUser" => {
            let user = identities
                .api_get_user(ctx, user_param)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: user_xml("User", &user),
                request_parameters: json!({ "userName": user_param }),
                response_elements: None,
            }
        }
        "ListUsers" => {
            let users = identities.api_list_users(ctx).await.map_err(api_error)?;
            let xml: String = users.iter().map(|u| user_xml("member", u)).collect();
            IamOutcome {
                result_xml: format!("<Users>{xml}</Users><IsTruncated>false</IsTruncated>"),
                request_parameters: json!({}),
                response_elements: None,
            }
        }
        "DeleteUser" => {
            let name = required(params, "UserName")?;
            identities
                .api_delete_user(ctx, name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: json!({ "userName": name }),
                response_elements: None,
            }
        }
        "CreateAccessKey" => {
            let key = identities
                .api_create_access_key(ctx, user_param)
                .await
                .map_err(api_error)?;
            let user = key
                .user_name
                .as_deref()
                .map(|u| format!("<UserName>{}</UserName>", xml_escape(u)))
                .unwrap_or_default();
            let now = iso(ctx.time.unix_timestamp() * 1000);
            IamOutcome {
                result_xml: format!(
                    "<AccessKey>{user}<AccessKeyId>{}</AccessKeyId><Status>Active</Status><SecretAccessKey>{}</SecretAccessKey><CreateDate>{now}</CreateDate></AccessKey>",
                    xml_escape(&key.access_key_id),
                    xml_escape(&key.secret_access_key)
                ),
                request_parameters: json!({ "userName": key.user_name }),
                // The secret never reaches the journal.
                response_elements: Some(json!({ "accessKey": {
                    "userName": key.user_name,
                    "accessKeyId": key.access_key_id,
                    "status": "Active",
                    "createDate": now,
                }})),
            }
        }
        "ListAccessKeys" => {
            let keys = identities
                .api_list_access_keys(ctx, user_param)
                .await
                .map_err(api_error)?;
            let xml: String = keys.iter().map(key_metadata_xml).collect();
            let user = user_param
                .map(|u| format!("<UserName>{}</UserName>", xml_escape(u)))
                .unwrap_or_default();
            IamOutcome {
                result_xml: format!(
                    "{user}<AccessKeyMetadata>{xml}</AccessKeyMetadata><IsTruncated>false</IsTruncated>"
                ),
                request_parameters: json!({ "userName": user_param }),
                response_elements: None,
            }
        }
        "UpdateAccessKey" => {
            let id = required(params, "AccessKeyId")?;
            let status = required(params, "Status")?;
            identities
                .api_update_access_key(ctx, user_param, id, status)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: json!({ "userName": user_param, "accessKeyId": id, "status": status }),
                response_elements: None,
            }
        }
        "DeleteAccessKey" => {
            let id = required(params, "AccessKeyId")?;
            identities
                .api_delete_access_key(ctx, user_param, id)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: json!({ "userName": user_param, "accessKeyId": id }),
                response_elements: None,
            }
        }
        "PutUserPolicy" => {
            let name = required(params, "UserName")?;
            let policy_name = required(params, "PolicyName")?;
            let document = required(params, "PolicyDocument")?;
            identities
                .api_put_user_policy(ctx, name, policy_name, document)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: json!({ "userName": name, "policyName": policy_name, "policyDocument": document }),
                response_elements: None,
            }
        }
        "GetUserPolicy" => {
            let name = required(params, "UserName")?;
            let policy_name = required(params, "PolicyName")?;
            let document = identities
                .api_get_user_policy(ctx, name, policy_name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: format!(
                    "<UserName>{}</UserName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
                    xml_escape(name),
                    xml_escape(policy_name),
                    url_encode(&document)
                ),
                request_parameters: json!({ "userName": name, "policyName": policy_name }),
                response_elements: None,
            }
        }
        "ListUserPolicies" => {
            let name = required(params, "UserName")?;
            let names = identities
                .api_list_user_policies(ctx, name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: format!(
                    "<PolicyNames>{}</PolicyNames><IsTruncated>false</IsTruncated>",
                    members(&names)
                ),
                request_parameters: json!({ "userName": name }),
                response_elements: None,
            }
        }
        "DeleteUserPolicy" => {
            let name = required(params, "UserName")?;
            let policy_name = required(params, "PolicyName")?;
            identities
                .api_delete_user_policy(ctx, name, policy_name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: json!({ "userName": name, "policyName": policy_name }),
                response_elements: None,
            }
        }
        _ => return Ok(None),
    }))
}

/// The whole response document of a successful IAM call.
pub fn response_document(action: &str, result_xml: &str, request_id: &str) -> String {
    let result = if result_xml.is_empty() {
        String::new()
    } else {
        format!("<{action}Result>{result_xml}</{action}Result>")
    };
    format!(
        "<{action}Response xmlns=\"{IAM_NAMESPACE}\">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>\n",
        xml_escape(request_id)
    )
}
