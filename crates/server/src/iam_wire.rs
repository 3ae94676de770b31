//! IAM over the query protocol: form parameters in, `<...Response>` XML out, in the shapes of
//! botocore's `iam/2010-05-08` model.

use http::StatusCode;
use keytrail_audit::CallContext;
use keytrail_iam::{
    AccessKeyMetadata, IamApiError, IamEntity, Identities, ManagedPolicy, role_arn, user_arn,
};
use keytrail_store::{RoleRecord, UserRecord};
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

pub(crate) fn api_error(e: IamApiError) -> ApiError {
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

/// The user or role an action addresses: `UserName` for `...User...` actions, else `RoleName`.
fn entity_of<'a>(action: &str, params: &'a [(String, String)]) -> Result<IamEntity<'a>, ApiError> {
    if action.contains("User") {
        Ok(IamEntity::User(required(params, "UserName")?))
    } else {
        Ok(IamEntity::Role(required(params, "RoleName")?))
    }
}

fn entity_xml(entity: IamEntity<'_>) -> String {
    match entity {
        IamEntity::User(name) => format!("<UserName>{}</UserName>", xml_escape(name)),
        IamEntity::Role(name) => format!("<RoleName>{}</RoleName>", xml_escape(name)),
    }
}

/// The event's requestParameters: `userName`/`roleName` plus the operation's own.
fn entity_parameters(entity: IamEntity<'_>, mut rest: serde_json::Value) -> serde_json::Value {
    let key = match entity {
        IamEntity::User(_) => "userName",
        IamEntity::Role(_) => "roleName",
    };
    if let Some(map) = rest.as_object_mut() {
        map.insert(key.into(), entity.name().into());
    }
    rest
}

fn integer(value: &str, member: &str) -> Result<i64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            format!("1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must be a number"),
        )
    })
}

fn role_xml(element: &str, role: &RoleRecord) -> String {
    let description = role
        .description
        .as_deref()
        .map(|d| format!("<Description>{}</Description>", xml_escape(d)))
        .unwrap_or_default();
    format!(
        "<{element}><Path>/</Path><RoleName>{}</RoleName><RoleId>{}</RoleId><Arn>{}</Arn><CreateDate>{}</CreateDate><AssumeRolePolicyDocument>{}</AssumeRolePolicyDocument>{description}<MaxSessionDuration>{}</MaxSessionDuration></{element}>",
        xml_escape(&role.role_name),
        xml_escape(&role.role_id),
        xml_escape(&role_arn(&role.account_id, &role.role_name)),
        iso(role.created_at_ms),
        url_encode(&role.trust_policy),
        role.max_session_duration_s
    )
}

fn role_json(role: &RoleRecord) -> serde_json::Value {
    json!({
        "path": "/",
        "roleName": role.role_name,
        "roleId": role.role_id,
        "arn": role_arn(&role.account_id, &role.role_name),
        "createDate": iso(role.created_at_ms),
        "assumeRolePolicyDocument": role.trust_policy,
        "maxSessionDuration": role.max_session_duration_s,
    })
}

fn managed_policy_xml(element: &str, policy: &ManagedPolicy) -> String {
    let description = policy
        .row
        .description
        .as_deref()
        .map(|d| format!("<Description>{}</Description>", xml_escape(d)))
        .unwrap_or_default();
    format!(
        "<{element}><PolicyName>{}</PolicyName><PolicyId>{}</PolicyId><Arn>{}</Arn><Path>/</Path><DefaultVersionId>v1</DefaultVersionId><AttachmentCount>{}</AttachmentCount><PermissionsBoundaryUsageCount>0</PermissionsBoundaryUsageCount><IsAttachable>true</IsAttachable>{description}<CreateDate>{}</CreateDate><UpdateDate>{}</UpdateDate></{element}>",
        xml_escape(&policy.row.policy_name),
        xml_escape(&policy.row.policy_id),
        xml_escape(&policy.arn),
        policy.row.attachment_count,
        iso(policy.row.created_at_ms),
        iso(policy.row.updated_at_ms)
    )
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
        "PutUserPolicy" | "PutRolePolicy" => {
            let entity = entity_of(action, params)?;
            let policy_name = required(params, "PolicyName")?;
            let document = required(params, "PolicyDocument")?;
            identities
                .api_put_inline_policy(ctx, entity, policy_name, document)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: entity_parameters(
                    entity,
                    json!({ "policyName": policy_name, "policyDocument": document }),
                ),
                response_elements: None,
            }
        }
        "GetUserPolicy" | "GetRolePolicy" => {
            let entity = entity_of(action, params)?;
            let policy_name = required(params, "PolicyName")?;
            let document = identities
                .api_get_inline_policy(ctx, entity, policy_name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: format!(
                    "{}<PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
                    entity_xml(entity),
                    xml_escape(policy_name),
                    url_encode(&document)
                ),
                request_parameters: entity_parameters(entity, json!({ "policyName": policy_name })),
                response_elements: None,
            }
        }
        "ListUserPolicies" | "ListRolePolicies" => {
            let entity = entity_of(action, params)?;
            let names = identities
                .api_list_inline_policies(ctx, entity)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: format!(
                    "<PolicyNames>{}</PolicyNames><IsTruncated>false</IsTruncated>",
                    members(&names)
                ),
                request_parameters: entity_parameters(entity, json!({})),
                response_elements: None,
            }
        }
        "DeleteUserPolicy" | "DeleteRolePolicy" => {
            let entity = entity_of(action, params)?;
            let policy_name = required(params, "PolicyName")?;
            identities
                .api_delete_inline_policy(ctx, entity, policy_name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: entity_parameters(entity, json!({ "policyName": policy_name })),
                response_elements: None,
            }
        }
        "CreateRole" => {
            let name = required(params, "RoleName")?;
            let trust = required(params, "AssumeRolePolicyDocument")?;
            let description = param(params, "Description");
            let max_session = param(params, "MaxSessionDuration")
                .map(|v| integer(v, "maxSessionDuration"))
                .transpose()?;
            let role = identities
                .api_create_role(ctx, name, trust, description, max_session)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: role_xml("Role", &role),
                request_parameters: json!({
                    "roleName": name,
                    "assumeRolePolicyDocument": trust,
                    "description": description,
                    "maxSessionDuration": max_session,
                }),
                response_elements: Some(json!({ "role": role_json(&role) })),
            }
        }
        "GetRole" => {
            let name = required(params, "RoleName")?;
            let role = identities
                .api_get_role(ctx, name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: role_xml("Role", &role),
                request_parameters: json!({ "roleName": name }),
                response_elements: None,
            }
        }
        "ListRoles" => {
            let roles = identities.api_list_roles(ctx).await.map_err(api_error)?;
            let xml: String = roles.iter().map(|r| role_xml("member", r)).collect();
            IamOutcome {
                result_xml: format!("<Roles>{xml}</Roles><IsTruncated>false</IsTruncated>"),
                request_parameters: json!({}),
                response_elements: None,
            }
        }
        "DeleteRole" => {
            let name = required(params, "RoleName")?;
            identities
                .api_delete_role(ctx, name)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: json!({ "roleName": name }),
                response_elements: None,
            }
        }
        "CreatePolicy" => {
            let name = required(params, "PolicyName")?;
            let document = required(params, "PolicyDocument")?;
            let description = param(params, "Description");
            let policy = identities
                .api_create_policy(ctx, name, document, description)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: managed_policy_xml("Policy", &policy),
                request_parameters: json!({
                    "policyName": name,
                    "policyDocument": document,
                    "description": description,
                }),
                response_elements: Some(json!({ "policy": {
                    "policyName": policy.row.policy_name,
                    "policyId": policy.row.policy_id,
                    "arn": policy.arn,
                    "path": "/",
                    "defaultVersionId": "v1",
                    "attachmentCount": 0,
                    "isAttachable": true,
                    "createDate": iso(policy.row.created_at_ms),
                    "updateDate": iso(policy.row.updated_at_ms),
                }})),
            }
        }
        "GetPolicy" => {
            let arn = required(params, "PolicyArn")?;
            let policy = identities
                .api_get_policy(ctx, arn)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: managed_policy_xml("Policy", &policy),
                request_parameters: json!({ "policyArn": arn }),
                response_elements: None,
            }
        }
        "GetPolicyVersion" => {
            let arn = required(params, "PolicyArn")?;
            let version = required(params, "VersionId")?;
            let policy = identities
                .api_get_policy_version(ctx, arn, version)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: format!(
                    "<PolicyVersion><Document>{}</Document><VersionId>v1</VersionId><IsDefaultVersion>true</IsDefaultVersion><CreateDate>{}</CreateDate></PolicyVersion>",
                    url_encode(&policy.row.document),
                    iso(policy.row.created_at_ms)
                ),
                request_parameters: json!({ "policyArn": arn, "versionId": version }),
                response_elements: None,
            }
        }
        "ListPolicies" => {
            // Only customer managed policies exist here; `Scope=AWS` lists nothing.
            let policies = if param(params, "Scope") == Some("AWS") {
                Vec::new()
            } else {
                identities.api_list_policies(ctx).await.map_err(api_error)?
            };
            let xml: String = policies
                .iter()
                .map(|p| managed_policy_xml("member", p))
                .collect();
            IamOutcome {
                result_xml: format!("<Policies>{xml}</Policies><IsTruncated>false</IsTruncated>"),
                request_parameters: json!({ "scope": param(params, "Scope") }),
                response_elements: None,
            }
        }
        "DeletePolicy" => {
            let arn = required(params, "PolicyArn")?;
            identities
                .api_delete_policy(ctx, arn)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: json!({ "policyArn": arn }),
                response_elements: None,
            }
        }
        "AttachUserPolicy" | "AttachRolePolicy" => {
            let entity = entity_of(action, params)?;
            let arn = required(params, "PolicyArn")?;
            identities
                .api_attach_policy(ctx, entity, arn)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: entity_parameters(entity, json!({ "policyArn": arn })),
                response_elements: None,
            }
        }
        "DetachUserPolicy" | "DetachRolePolicy" => {
            let entity = entity_of(action, params)?;
            let arn = required(params, "PolicyArn")?;
            identities
                .api_detach_policy(ctx, entity, arn)
                .await
                .map_err(api_error)?;
            IamOutcome {
                result_xml: String::new(),
                request_parameters: entity_parameters(entity, json!({ "policyArn": arn })),
                response_elements: None,
            }
        }
        "ListAttachedUserPolicies" | "ListAttachedRolePolicies" => {
            let entity = entity_of(action, params)?;
            let policies = identities
                .api_list_attached_policies(ctx, entity)
                .await
                .map_err(api_error)?;
            let xml: String = policies
                .iter()
                .map(|p| {
                    format!(
                        "<member><PolicyName>{}</PolicyName><PolicyArn>{}</PolicyArn></member>",
                        xml_escape(&p.row.policy_name),
                        xml_escape(&p.arn)
                    )
                })
                .collect();
            IamOutcome {
                result_xml: format!(
                    "<AttachedPolicies>{xml}</AttachedPolicies><IsTruncated>false</IsTruncated>"
                ),
                request_parameters: entity_parameters(entity, json!({})),
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
