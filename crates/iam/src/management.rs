//! The IAM API for users and their access keys, with IAM's rules and
//! error names. Every operation is authorized first: the account root may do anything in its
//! account, a user what its policies allow (`iam:<Operation>` on the user's ARN).

use keytrail_audit::{CallContext, PrincipalKind};
use keytrail_policy::{Decision, ResourceAuthority};
use keytrail_store::{AccessKeyRecord, StoreError, UserRecord};

use crate::access::{denial_message, request_context};
use crate::{IamError, Identities, NewAccessKey, validate_user_name};

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
    InvalidInput(String),
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
            IamApiError::InvalidInput(_) => "InvalidInput",
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
            IamApiError::MalformedPolicyDocument(_)
            | IamApiError::Validation(_)
            | IamApiError::InvalidInput(_) => 400,
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

/// IAM's refusal to delete a user, role or policy that something still hangs on.
pub(crate) fn delete_conflict(reason: &str) -> IamApiError {
    let first = if reason.contains("access keys") {
        "delete access keys"
    } else if reason.contains("attached") {
        "detach all policies"
    } else {
        "delete policies"
    };
    IamApiError::DeleteConflict(format!("Cannot delete entity, must {first} first."))
}

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

pub(crate) fn no_such_user(user_name: &str) -> IamApiError {
    IamApiError::NoSuchEntity(format!("The user with name {user_name} cannot be found."))
}

/// IAM's validation error for a name that breaks `[\w+=,.@-]+` or its length.
pub(crate) fn invalid_name(member: &str, value: &str) -> IamApiError {
    IamApiError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
    ))
}

impl Identities {
    /// Authorizes an IAM operation on a resource of the caller's account.
    pub(crate) async fn authorize_iam(
        &self,
        ctx: &CallContext,
        operation: &str,
        resource: &str,
    ) -> IamApiResult<()> {
        self.authorize_iam_with(ctx, operation, resource, &[]).await
    }

    /// [`Self::authorize_iam`] with service-specific condition keys (`iam:PolicyARN`, …).
    pub(crate) async fn authorize_iam_with(
        &self,
        ctx: &CallContext,
        operation: &str,
        resource: &str,
        condition_keys: &[(&str, &str)],
    ) -> IamApiResult<()> {
        let mut request = request_context(ctx, &format!("iam:{operation}"), resource);
        for (key, value) in condition_keys {
            request.set((*key).to_string(), (*value).to_string());
        }
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

    pub(crate) async fn existing_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> IamApiResult<UserRecord> {
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
            Err(StoreError::InUse { reason, .. }) => Err(delete_conflict(&reason)),
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
}
