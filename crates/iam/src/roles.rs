//! IAM roles: an identity with a trust policy that says who may assume it (through STS
//! AssumeRole, see `sessions.rs`) and identity policies that say what its sessions may do.

use keytrail_audit::CallContext;
use keytrail_crypto::random_string;
use keytrail_policy::{Policy, PolicyKind};
use keytrail_store::{RoleRecord, StoreError};

use crate::management::{delete_conflict, invalid_name};
use crate::policies::validate_description;
use crate::{ID_ALPHABET, IamApiError, IamApiResult, IamError, Identities, is_iam_name, now_ms};

/// Sessions last one hour unless the role allows longer (up to 12 hours).
pub const DEFAULT_MAX_SESSION_DURATION_S: i64 = 3600;
const LONGEST_MAX_SESSION_DURATION_S: i64 = 43_200;

pub fn role_arn(account_id: &str, role_name: &str) -> String {
    format!("arn:aws:iam::{account_id}:role/{role_name}")
}

fn no_such_role(role_name: &str) -> IamApiError {
    IamApiError::NoSuchEntity(format!("The role with name {role_name} cannot be found."))
}

fn validate_role_name(name: &str) -> IamApiResult<()> {
    if is_iam_name(name, 64) {
        Ok(())
    } else {
        Err(invalid_name("roleName", name))
    }
}

/// Trust policies are resource policies of the role: a Principal, no Resource.
pub(crate) fn parse_trust_policy(document: &str) -> IamApiResult<Policy> {
    Policy::parse(document, PolicyKind::Trust)
        .map_err(|e| IamApiError::MalformedPolicyDocument(e.message().to_string()))
}

impl Identities {
    pub(crate) async fn existing_role(
        &self,
        account_id: &str,
        role_name: &str,
    ) -> IamApiResult<RoleRecord> {
        self.store
            .get_role(account_id, role_name)
            .await?
            .ok_or_else(|| no_such_role(role_name))
    }

    pub async fn api_create_role(
        &self,
        ctx: &CallContext,
        role_name: &str,
        trust_policy: &str,
        description: Option<&str>,
        max_session_duration_s: Option<i64>,
    ) -> IamApiResult<RoleRecord> {
        validate_role_name(role_name)?;
        let max_session_duration_s =
            max_session_duration_s.unwrap_or(DEFAULT_MAX_SESSION_DURATION_S);
        if !(DEFAULT_MAX_SESSION_DURATION_S..=LONGEST_MAX_SESSION_DURATION_S)
            .contains(&max_session_duration_s)
        {
            return Err(IamApiError::Validation(format!(
                "1 validation error detected: Value '{max_session_duration_s}' at \
                 'maxSessionDuration' failed to satisfy constraint: Member must have value \
                 between {DEFAULT_MAX_SESSION_DURATION_S} and {LONGEST_MAX_SESSION_DURATION_S}"
            )));
        }
        validate_description(description)?;
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "CreateRole", &role_arn(&account, role_name))
            .await?;
        parse_trust_policy(trust_policy)?;
        let role = RoleRecord {
            account_id: account,
            role_name: role_name.to_string(),
            role_id: format!(
                "AROA{}",
                random_string(17, ID_ALPHABET).map_err(IamError::from)?
            ),
            trust_policy: trust_policy.to_string(),
            description: description.map(str::to_string),
            max_session_duration_s,
            created_at_ms: now_ms(),
        };
        match self.store.create_role(role.clone()).await {
            Ok(()) => Ok(role),
            Err(StoreError::AlreadyExists { .. }) => Err(IamApiError::EntityAlreadyExists(
                format!("Role with name {role_name} already exists."),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn api_get_role(
        &self,
        ctx: &CallContext,
        role_name: &str,
    ) -> IamApiResult<RoleRecord> {
        validate_role_name(role_name)?;
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "GetRole", &role_arn(&account, role_name))
            .await?;
        self.existing_role(&account, role_name).await
    }

    pub async fn api_list_roles(&self, ctx: &CallContext) -> IamApiResult<Vec<RoleRecord>> {
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "ListRoles", &format!("arn:aws:iam::{account}:role/"))
            .await?;
        Ok(self.store.list_roles(&account).await?)
    }

    pub async fn api_delete_role(&self, ctx: &CallContext, role_name: &str) -> IamApiResult<()> {
        validate_role_name(role_name)?;
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "DeleteRole", &role_arn(&account, role_name))
            .await?;
        match self.store.delete_role(&account, role_name).await {
            Ok(true) => {
                self.forget_role(&account, role_name);
                Ok(())
            }
            Ok(false) => Err(no_such_role(role_name)),
            Err(StoreError::InUse { reason, .. }) => Err(delete_conflict(&reason)),
            Err(e) => Err(e.into()),
        }
    }
}
