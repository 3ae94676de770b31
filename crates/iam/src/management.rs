//! The IAM API for users, their access keys and their inline policies, with IAM's rules and
//! error names. Every operation is authorized first: the account root may do anything in its
//! account, a user what its policies allow (`iam:<Operation>` on the user's ARN).

use keytrail_audit::{CallContext, PrincipalKind};
use keytrail_policy::{Decision, Policy, PolicyKind, ResourceAuthority};
use keytrail_store::{AccessKeyRecord, PolicyDocumentRow, PolicyOwner, StoreError, UserRecord};

use crate::access::{denial_message, request_context};
use crate::{IamError, Identities, NewAccessKey, now_ms, validate_user_name};

/// The aggregate size of a user's inline policies, not counting white space.
const USER_INLINE_POLICY_LIMIT: usize = 2048;
/// IAM allows two access keys per user.
const ACCESS_KEYS_PER_USER: usize = 2;

/// An IAM API error: the code and status AWS returns, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamApiError {
    #[error("{0}")]
    NoSuchEntity(String),
    #[error("{0}")]
    EntityAlreadyExists(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    DeleteConflict(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    ServiceFailure(String),
}

impl IamApiError {
    pub fn code(&self) -> &'static str {
        match self {
            IamApiError::NoSuchEntity(_) => "NoSuchEntity",
            IamApiError::EntityAlreadyExists(_) => "EntityAlreadyExists",
            IamApiError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            IamApiError::DeleteConflict(_) => "DeleteConflict",
            IamApiError::LimitExceeded(_) => "LimitExceeded",
            IamApiError::Validation(_) => "ValidationError",
            IamApiError::AccessDenied(_) => "AccessDenied",
            IamApiError::ServiceFailure(_) => "ServiceFailure",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            IamApiError::NoSuchEntity(_) => 404,
            IamApiError::EntityAlreadyExists(_)
            | IamApiError::DeleteConflict(_)
            | IamApiError::LimitExceeded(_) => 409,
            IamApiError::MalformedPolicyDocument(_) | IamApiError::Validation(_) => 400,
            IamApiError::AccessDenied(_) => 403,
            IamApiError::ServiceFailure(_) => 500,
        }
    }
}

impl From<IamError> for IamApiError {
    fn from(e: IamError) -> Self {
        match e {
            IamError::InvalidUserName(name) => IamApiError::Validation(format!(
                "1 validation error detected: Value '{name}' at 'userName' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
            )),
            other => {
                tracing::error!(error = %other, "IAM operation failed");
                IamApiError::ServiceFailure("The request processing has failed.".into())
            }
        }
    }
}

impl From<StoreError> for IamApiError {
    fn from(e: StoreError) -> Self {
        IamApiError::from(IamError::Store(e))
    }
}

pub type IamApiResult<T> = Result<T, IamApiError>;

/// An access key as ListAccessKeys shows it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyMetadata {
    pub user_name: Option<String>,
    pub access_key_id: String,
    pub status: String,
    pub created_at_ms: i64,
}

impl From<&AccessKeyRecord> for AccessKeyMetadata {
    fn from(record: &AccessKeyRecord) -> Self {
        Self {
            user_name: record.user_name.clone(),
            access_key_id: record.access_key_id.clone(),
            status: record.status.clone(),
            created_at_ms: record.created_at_ms,
        }
    }
}

pub fn user_arn(account_id: &str, user_name: &str) -> String {
    format!("arn:aws:iam::{account_id}:user/{user_name}")
}

/// The ARN access-key operations act on: the user's, or the root user's.
fn key_owner_arn(account_id: &str, user_name: Option<&str>) -> String {
    match user_name {
        Some(name) => user_arn(account_id, name),
        None => format!("arn:aws:iam::{account_id}:root"),
    }
}

fn no_such_user(user_name: &str) -> IamApiError {
    IamApiError::NoSuchEntity(format!("The user with name {user_name} cannot be found."))
}

fn validate_policy_name(name: &str) -> IamApiResult<()> {
    if crate::is_iam_name(name, 128) {
        Ok(())
    } else {
        Err(IamApiError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'policyName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )))
    }
}

fn size_without_whitespace(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

impl Identities {
    /// Authorizes an IAM operation on a resource of the caller's account.
    async fn authorize_iam(
        &self,
        ctx: &CallContext,
        operation: &str,
        resource: &str,
    ) -> IamApiResult<()> {
        let request = request_context(ctx, &format!("iam:{operation}"), resource);
        let decision = self
            .decide(
                ctx,
                &request,
                None,
                &ctx.principal.account_id,
                ResourceAuthority::Optional,
                false,
            )
            .await?;
        match decision {
            Decision::Allow => Ok(()),
            denied => Err(IamApiError::AccessDenied(denial_message(
                &request, &denied, false,
            ))),
        }
    }

    /// The user an operation names, or the calling user when it names none (as IAM does for
    /// the access-key operations).
    fn target_user(ctx: &CallContext, user_name: Option<&str>) -> IamApiResult<Option<String>> {
        match (user_name, &ctx.principal.kind) {
            (Some(name), _) => {
                validate_user_name(name)?;
                Ok(Some(name.to_string()))
            }
            (None, PrincipalKind::IamUser { user_name, .. }) => Ok(Some(user_name.clone())),
            (None, PrincipalKind::Root) => Ok(None),
            (None, _) => Err(IamApiError::Validation(
                "Must specify userName when calling with non-User credentials".into(),
            )),
        }
    }

    async fn existing_user(&self, account_id: &str, user_name: &str) -> IamApiResult<UserRecord> {
        self.store
            .get_user(account_id, user_name)
            .await?
            .ok_or_else(|| no_such_user(user_name))
    }

    pub async fn api_create_user(
        &self,
        ctx: &CallContext,
        user_name: &str,
    ) -> IamApiResult<UserRecord> {
        validate_user_name(user_name)?;
        let account = &ctx.principal.account_id;
        self.authorize_iam(ctx, "CreateUser", &user_arn(account, user_name))
            .await?;
        match self.create_user(account, user_name).await {
            Err(IamError::Store(StoreError::AlreadyExists { .. })) => {
                Err(IamApiError::EntityAlreadyExists(format!(
                    "User with name {user_name} already exists."
                )))
            }
            other => Ok(other?),
        }
    }

    pub async fn api_get_user(
        &self,
        ctx: &CallContext,
        user_name: Option<&str>,
    ) -> IamApiResult<UserRecord> {
        let account = &ctx.principal.account_id;
        let Some(name) = Self::target_user(ctx, user_name)? else {
            return Err(IamApiError::Validation(
                "GetUser without a UserName describes the calling user; the root user is not an \
                 IAM user."
                    .into(),
            ));
        };
        self.authorize_iam(ctx, "GetUser", &user_arn(account, &name))
            .await?;
        self.existing_user(account, &name).await
    }

    pub async fn api_list_users(&self, ctx: &CallContext) -> IamApiResult<Vec<UserRecord>> {
        let account = &ctx.principal.account_id;
        self.authorize_iam(ctx, "ListUsers", &format!("arn:aws:iam::{account}:user/"))
            .await?;
        Ok(self.store.list_users(account).await?)
    }

    pub async fn api_delete_user(&self, ctx: &CallContext, user_name: &str) -> IamApiResult<()> {
        validate_user_name(user_name)?;
        let account = &ctx.principal.account_id;
        self.authorize_iam(ctx, "DeleteUser", &user_arn(account, user_name))
            .await?;
        match self.store.delete_user(account, user_name).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(no_such_user(user_name)),
            Err(StoreError::InUse { reason, .. }) => Err(IamApiError::DeleteConflict(format!(
                "Cannot delete entity, must {} first.",
                if reason.contains("access keys") {
                    "delete access keys"
                } else {
                    "delete policies"
                }
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn api_create_access_key(
        &self,
        ctx: &CallContext,
        user_name: Option<&str>,
    ) -> IamApiResult<NewAccessKey> {
        let account = ctx.principal.account_id.clone();
        let target = Self::target_user(ctx, user_name)?;
        let resource = key_owner_arn(&account, target.as_deref());
        self.authorize_iam(ctx, "CreateAccessKey", &resource)
            .await?;
        if let Some(name) = &target {
            self.existing_user(&account, name).await?;
        }
        let existing = self
            .store
            .list_access_keys_of(&account, target.as_deref())
            .await?
            .len();
        if existing >= ACCESS_KEYS_PER_USER {
            return Err(IamApiError::LimitExceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"
            )));
        }
        Ok(self.create_access_key(&account, target.as_deref()).await?)
    }

    /// The access keys of a user (or of the root user), after checking they are the caller's
    /// account's.
    async fn keys_of(
        &self,
        account: &str,
        user: Option<&str>,
    ) -> IamApiResult<Vec<AccessKeyRecord>> {
        if let Some(name) = user {
            self.existing_user(account, name).await?;
        }
        Ok(self.store.list_access_keys_of(account, user).await?)
    }

    pub async fn api_list_access_keys(
        &self,
        ctx: &CallContext,
        user_name: Option<&str>,
    ) -> IamApiResult<Vec<AccessKeyMetadata>> {
        let account = ctx.principal.account_id.clone();
        let target = Self::target_user(ctx, user_name)?;
        let resource = key_owner_arn(&account, target.as_deref());
        self.authorize_iam(ctx, "ListAccessKeys", &resource).await?;
        Ok(self
            .keys_of(&account, target.as_deref())
            .await?
            .iter()
            .map(AccessKeyMetadata::from)
            .collect())
    }

    /// The key a key operation names, if it belongs to the target user of the caller's account.
    async fn owned_key(
        &self,
        ctx: &CallContext,
        operation: &str,
        user_name: Option<&str>,
        access_key_id: &str,
    ) -> IamApiResult<AccessKeyRecord> {
        let account = ctx.principal.account_id.clone();
        let target = Self::target_user(ctx, user_name)?;
        let resource = key_owner_arn(&account, target.as_deref());
        self.authorize_iam(ctx, operation, &resource).await?;
        self.keys_of(&account, target.as_deref())
            .await?
            .into_iter()
            .find(|k| k.access_key_id == access_key_id)
            .ok_or_else(|| {
                IamApiError::NoSuchEntity(format!(
                    "The Access Key with id {access_key_id} cannot be found."
                ))
            })
    }

    pub async fn api_update_access_key(
        &self,
        ctx: &CallContext,
        user_name: Option<&str>,
        access_key_id: &str,
        status: &str,
    ) -> IamApiResult<()> {
        if status != "Active" && status != "Inactive" {
            return Err(IamApiError::Validation(format!(
                "1 validation error detected: Value '{status}' at 'status' failed to satisfy \
                 constraint: Member must satisfy enum value set: [Active, Inactive]"
            )));
        }
        let key = self
            .owned_key(ctx, "UpdateAccessKey", user_name, access_key_id)
            .await?;
        self.store
            .set_access_key_status(&key.access_key_id, status)
            .await?;
        self.forget(&key.access_key_id);
        Ok(())
    }

    pub async fn api_delete_access_key(
        &self,
        ctx: &CallContext,
        user_name: Option<&str>,
        access_key_id: &str,
    ) -> IamApiResult<()> {
        let key = self
            .owned_key(ctx, "DeleteAccessKey", user_name, access_key_id)
            .await?;
        self.delete_access_key(&key.access_key_id).await?;
        Ok(())
    }

    pub async fn api_put_user_policy(
        &self,
        ctx: &CallContext,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> IamApiResult<()> {
        validate_user_name(user_name)?;
        validate_policy_name(policy_name)?;
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "PutUserPolicy", &user_arn(&account, user_name))
            .await?;
        Policy::parse(document, PolicyKind::Identity)
            .map_err(|e| IamApiError::MalformedPolicyDocument(e.message().to_string()))?;
        self.existing_user(&account, user_name).await?;
        let others: usize = self
            .store
            .list_policy_documents(&account, PolicyOwner::User, user_name)
            .await?
            .iter()
            .filter(|p| p.policy_name != policy_name)
            .map(|p| size_without_whitespace(&p.document))
            .sum();
        if others + size_without_whitespace(document) > USER_INLINE_POLICY_LIMIT {
            return Err(IamApiError::LimitExceeded(format!(
                "Maximum policy size of {USER_INLINE_POLICY_LIMIT} bytes exceeded for user {user_name}"
            )));
        }
        self.store
            .put_policy_document(PolicyDocumentRow {
                account_id: account.clone(),
                owner: PolicyOwner::User,
                owner_name: user_name.to_string(),
                policy_name: policy_name.to_string(),
                document: document.to_string(),
                updated_at_ms: now_ms(),
            })
            .await?;
        self.forget_policies(&account, PolicyOwner::User, user_name);
        Ok(())
    }

    pub async fn api_get_user_policy(
        &self,
        ctx: &CallContext,
        user_name: &str,
        policy_name: &str,
    ) -> IamApiResult<String> {
        validate_user_name(user_name)?;
        validate_policy_name(policy_name)?;
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "GetUserPolicy", &user_arn(&account, user_name))
            .await?;
        self.existing_user(&account, user_name).await?;
        self.store
            .list_policy_documents(&account, PolicyOwner::User, user_name)
            .await?
            .into_iter()
            .find(|p| p.policy_name == policy_name)
            .map(|p| p.document)
            .ok_or_else(|| {
                IamApiError::NoSuchEntity(format!(
                    "The user policy with name {policy_name} cannot be found."
                ))
            })
    }

    pub async fn api_list_user_policies(
        &self,
        ctx: &CallContext,
        user_name: &str,
    ) -> IamApiResult<Vec<String>> {
        validate_user_name(user_name)?;
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "ListUserPolicies", &user_arn(&account, user_name))
            .await?;
        self.existing_user(&account, user_name).await?;
        Ok(self
            .store
            .list_policy_documents(&account, PolicyOwner::User, user_name)
            .await?
            .into_iter()
            .map(|p| p.policy_name)
            .collect())
    }

    pub async fn api_delete_user_policy(
        &self,
        ctx: &CallContext,
        user_name: &str,
        policy_name: &str,
    ) -> IamApiResult<()> {
        validate_user_name(user_name)?;
        validate_policy_name(policy_name)?;
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(ctx, "DeleteUserPolicy", &user_arn(&account, user_name))
            .await?;
        self.existing_user(&account, user_name).await?;
        let deleted = self
            .store
            .delete_policy_document(&account, PolicyOwner::User, user_name, policy_name)
            .await?;
        self.forget_policies(&account, PolicyOwner::User, user_name);
        if deleted {
            Ok(())
        } else {
            Err(IamApiError::NoSuchEntity(format!(
                "The user policy with name {policy_name} cannot be found."
            )))
        }
    }
}
