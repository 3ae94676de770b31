//! Identity policies through the IAM API: inline policies of users and roles, customer managed
//! policies, and their attachments. Every document is validated by the policy engine when it is
//! written; the cached identity policies of the owner are forgotten on every change.

use keytrail_audit::CallContext;
use keytrail_crypto::random_string;
use keytrail_policy::{Policy, PolicyKind};
use keytrail_store::{ManagedPolicyRow, PolicyDocumentRow, PolicyOwner, StoreError};

use crate::management::{delete_conflict, invalid_name};
use crate::{ID_ALPHABET, IamApiError, IamApiResult, Identities, is_iam_name, now_ms};

/// Managed policies may be up to 6,144 characters, not counting white space.
const MANAGED_POLICY_LIMIT: usize = 6144;
/// Managed policies attached to one user or role.
const ATTACHMENTS_PER_ENTITY: usize = 10;

/// The user or role an inline-policy or attachment operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamEntity<'a> {
    User(&'a str),
    Role(&'a str),
}

impl<'a> IamEntity<'a> {
    pub fn owner(self) -> PolicyOwner {
        match self {
            IamEntity::User(_) => PolicyOwner::User,
            IamEntity::Role(_) => PolicyOwner::Role,
        }
    }

    pub fn name(self) -> &'a str {
        match self {
            IamEntity::User(name) | IamEntity::Role(name) => name,
        }
    }

    /// `User` or `Role`, as IAM's operation names spell it.
    fn kind(self) -> &'static str {
        match self {
            IamEntity::User(_) => "User",
            IamEntity::Role(_) => "Role",
        }
    }

    pub fn arn(self, account_id: &str) -> String {
        match self {
            IamEntity::User(name) => format!("arn:aws:iam::{account_id}:user/{name}"),
            IamEntity::Role(name) => format!("arn:aws:iam::{account_id}:role/{name}"),
        }
    }

    /// The aggregate size of the inline policies, not counting white space.
    fn inline_limit(self) -> usize {
        match self {
            IamEntity::User(_) => 2048,
            IamEntity::Role(_) => 10_240,
        }
    }

    fn validate(self) -> IamApiResult<()> {
        let (member, max) = match self {
            IamEntity::User(_) => ("userName", 64),
            IamEntity::Role(_) => ("roleName", 64),
        };
        if is_iam_name(self.name(), max) {
            Ok(())
        } else {
            Err(invalid_name(member, self.name()))
        }
    }

    fn no_such_policy(self, policy_name: &str) -> IamApiError {
        IamApiError::NoSuchEntity(format!(
            "The {} policy with name {policy_name} cannot be found.",
            self.kind().to_lowercase()
        ))
    }
}

/// A managed policy as the IAM API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub arn: String,
    pub row: ManagedPolicyRow,
}

pub fn managed_policy_arn(account_id: &str, policy_name: &str) -> String {
    format!("arn:aws:iam::{account_id}:policy/{policy_name}")
}

fn validate_policy_name(name: &str) -> IamApiResult<()> {
    if is_iam_name(name, 128) {
        Ok(())
    } else {
        Err(invalid_name("policyName", name))
    }
}

/// Descriptions of roles and policies: up to 1,000 characters.
pub(crate) fn validate_description(description: Option<&str>) -> IamApiResult<()> {
    if description.is_some_and(|d| d.chars().count() > 1000) {
        return Err(IamApiError::Validation(
            "1 validation error detected: Value at 'description' failed to satisfy \
             constraint: Member must have length less than or equal to 1000"
                .into(),
        ));
    }
    Ok(())
}

fn size_without_whitespace(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

fn parse_identity_policy(document: &str) -> IamApiResult<()> {
    Policy::parse(document, PolicyKind::Identity)
        .map(|_| ())
        .map_err(|e| IamApiError::MalformedPolicyDocument(e.message().to_string()))
}

fn no_such_policy_arn(arn: &str) -> IamApiError {
    IamApiError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable."))
}

impl Identities {
    async fn existing_entity(&self, account: &str, entity: IamEntity<'_>) -> IamApiResult<()> {
        entity.validate()?;
        match entity {
            IamEntity::User(name) => self.existing_user(account, name).await.map(|_| ()),
            IamEntity::Role(name) => self.existing_role(account, name).await.map(|_| ()),
        }
    }

    pub async fn api_put_inline_policy(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
        policy_name: &str,
        document: &str,
    ) -> IamApiResult<()> {
        entity.validate()?;
        validate_policy_name(policy_name)?;
        let account = ctx.principal.account_id.clone();
        let operation = format!("Put{}Policy", entity.kind());
        self.authorize_iam(ctx, &operation, &entity.arn(&account))
            .await?;
        parse_identity_policy(document)?;
        self.existing_entity(&account, entity).await?;
        let others: usize = self
            .store
            .list_policy_documents(&account, entity.owner(), entity.name())
            .await?
            .iter()
            .filter(|p| p.policy_name != policy_name)
            .map(|p| size_without_whitespace(&p.document))
            .sum();
        let limit = entity.inline_limit();
        if others + size_without_whitespace(document) > limit {
            return Err(IamApiError::LimitExceeded(format!(
                "Maximum policy size of {limit} bytes exceeded for {} {}",
                entity.kind().to_lowercase(),
                entity.name()
            )));
        }
        self.store
            .put_policy_document(PolicyDocumentRow {
                account_id: account.clone(),
                owner: entity.owner(),
                owner_name: entity.name().to_string(),
                policy_name: policy_name.to_string(),
                document: document.to_string(),
                updated_at_ms: now_ms(),
            })
            .await?;
        self.forget_policies(&account, entity.owner(), entity.name());
        Ok(())
    }

    pub async fn api_get_inline_policy(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
        policy_name: &str,
    ) -> IamApiResult<String> {
        entity.validate()?;
        validate_policy_name(policy_name)?;
        let account = ctx.principal.account_id.clone();
        let operation = format!("Get{}Policy", entity.kind());
        self.authorize_iam(ctx, &operation, &entity.arn(&account))
            .await?;
        self.existing_entity(&account, entity).await?;
        self.store
            .list_policy_documents(&account, entity.owner(), entity.name())
            .await?
            .into_iter()
            .find(|p| p.policy_name == policy_name)
            .map(|p| p.document)
            .ok_or_else(|| entity.no_such_policy(policy_name))
    }

    pub async fn api_list_inline_policies(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
    ) -> IamApiResult<Vec<String>> {
        entity.validate()?;
        let account = ctx.principal.account_id.clone();
        let operation = format!("List{}Policies", entity.kind());
        self.authorize_iam(ctx, &operation, &entity.arn(&account))
            .await?;
        self.existing_entity(&account, entity).await?;
        Ok(self
            .store
            .list_policy_documents(&account, entity.owner(), entity.name())
            .await?
            .into_iter()
            .map(|p| p.policy_name)
            .collect())
    }

    pub async fn api_delete_inline_policy(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
        policy_name: &str,
    ) -> IamApiResult<()> {
        entity.validate()?;
        validate_policy_name(policy_name)?;
        let account = ctx.principal.account_id.clone();
        let operation = format!("Delete{}Policy", entity.kind());
        self.authorize_iam(ctx, &operation, &entity.arn(&account))
            .await?;
        self.existing_entity(&account, entity).await?;
        let deleted = self
            .store
            .delete_policy_document(&account, entity.owner(), entity.name(), policy_name)
            .await?;
        self.forget_policies(&account, entity.owner(), entity.name());
        if deleted {
            Ok(())
        } else {
            Err(entity.no_such_policy(policy_name))
        }
    }

    pub async fn api_create_policy(
        &self,
        ctx: &CallContext,
        policy_name: &str,
        document: &str,
        description: Option<&str>,
    ) -> IamApiResult<ManagedPolicy> {
        validate_policy_name(policy_name)?;
        validate_description(description)?;
        let account = ctx.principal.account_id.clone();
        let arn = managed_policy_arn(&account, policy_name);
        self.authorize_iam(ctx, "CreatePolicy", &arn).await?;
        parse_identity_policy(document)?;
        if size_without_whitespace(document) > MANAGED_POLICY_LIMIT {
            return Err(IamApiError::LimitExceeded(format!(
                "Cannot exceed quota for PolicySize: {MANAGED_POLICY_LIMIT}"
            )));
        }
        let now = now_ms();
        let row = ManagedPolicyRow {
            account_id: account.clone(),
            policy_name: policy_name.to_string(),
            policy_id: format!(
                "ANPA{}",
                random_string(17, ID_ALPHABET).map_err(crate::IamError::from)?
            ),
            document: document.to_string(),
            description: description.map(str::to_string),
            created_at_ms: now,
            updated_at_ms: now,
            attachment_count: 0,
        };
        match self.store.create_managed_policy(row.clone()).await {
            Ok(()) => Ok(ManagedPolicy { arn, row }),
            Err(StoreError::AlreadyExists { .. }) => {
                Err(IamApiError::EntityAlreadyExists(format!(
                    "A policy called {policy_name} already exists. Duplicate names are not allowed."
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The name of a managed policy of the caller's account, from its ARN.
    fn policy_name_of<'a>(ctx: &CallContext, arn: &'a str) -> IamApiResult<&'a str> {
        let invalid = || IamApiError::InvalidInput(format!("ARN {arn} is not valid."));
        let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
        let (account, resource) = rest.split_once(':').ok_or_else(invalid)?;
        let path_and_name = resource.strip_prefix("policy/").ok_or_else(invalid)?;
        let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
        if account != ctx.principal.account_id {
            // AWS managed policies (`aws`) and other accounts' policies are not stored here.
            return Err(no_such_policy_arn(arn));
        }
        validate_policy_name(name)?;
        Ok(name)
    }

    async fn existing_policy(&self, ctx: &CallContext, arn: &str) -> IamApiResult<ManagedPolicy> {
        let name = Self::policy_name_of(ctx, arn)?;
        let row = self
            .store
            .get_managed_policy(&ctx.principal.account_id, name)
            .await?
            .ok_or_else(|| no_such_policy_arn(arn))?;
        Ok(ManagedPolicy {
            arn: managed_policy_arn(&row.account_id, &row.policy_name),
            row,
        })
    }

    pub async fn api_get_policy(
        &self,
        ctx: &CallContext,
        arn: &str,
    ) -> IamApiResult<ManagedPolicy> {
        Self::policy_name_of(ctx, arn)?;
        self.authorize_iam(ctx, "GetPolicy", arn).await?;
        self.existing_policy(ctx, arn).await
    }

    /// The document of a policy's only version, `v1`.
    pub async fn api_get_policy_version(
        &self,
        ctx: &CallContext,
        arn: &str,
        version_id: &str,
    ) -> IamApiResult<ManagedPolicy> {
        Self::policy_name_of(ctx, arn)?;
        self.authorize_iam(ctx, "GetPolicyVersion", arn).await?;
        let policy = self.existing_policy(ctx, arn).await?;
        if version_id != "v1" {
            return Err(IamApiError::NoSuchEntity(format!(
                "Policy {arn} version {version_id} does not exist or is not attachable."
            )));
        }
        Ok(policy)
    }

    pub async fn api_list_policies(&self, ctx: &CallContext) -> IamApiResult<Vec<ManagedPolicy>> {
        let account = ctx.principal.account_id.clone();
        self.authorize_iam(
            ctx,
            "ListPolicies",
            &format!("arn:aws:iam::{account}:policy/"),
        )
        .await?;
        Ok(self
            .store
            .list_managed_policies(&account)
            .await?
            .into_iter()
            .map(|row| ManagedPolicy {
                arn: managed_policy_arn(&row.account_id, &row.policy_name),
                row,
            })
            .collect())
    }

    pub async fn api_delete_policy(&self, ctx: &CallContext, arn: &str) -> IamApiResult<()> {
        let name = Self::policy_name_of(ctx, arn)?;
        self.authorize_iam(ctx, "DeletePolicy", arn).await?;
        match self
            .store
            .delete_managed_policy(&ctx.principal.account_id, name)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(no_such_policy_arn(arn)),
            Err(StoreError::InUse { reason, .. }) => Err(delete_conflict(&reason)),
            Err(e) => Err(e.into()),
        }
    }

    /// For Attach/Detach{User,Role}Policy: authorizes the operation on the user or role (with
    /// `iam:PolicyARN`) and checks it exists; returns the caller's account.
    async fn attachment_target(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
        verb: &str,
        arn: &str,
    ) -> IamApiResult<String> {
        let account = ctx.principal.account_id.clone();
        let operation = format!("{verb}{}Policy", entity.kind());
        self.authorize_iam_with(
            ctx,
            &operation,
            &entity.arn(&account),
            &[("iam:PolicyARN", arn)],
        )
        .await?;
        self.existing_entity(&account, entity).await?;
        Ok(account)
    }

    pub async fn api_attach_policy(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
        arn: &str,
    ) -> IamApiResult<()> {
        entity.validate()?;
        let name = Self::policy_name_of(ctx, arn)?;
        let account = self.attachment_target(ctx, entity, "Attach", arn).await?;
        let attached = self
            .store
            .list_attached_policies(&account, entity.owner(), entity.name())
            .await?;
        if attached.len() >= ATTACHMENTS_PER_ENTITY
            && !attached.iter().any(|p| p.policy_name == name)
        {
            return Err(IamApiError::LimitExceeded(format!(
                "Cannot exceed quota for PoliciesPer{}: {ATTACHMENTS_PER_ENTITY}",
                entity.kind()
            )));
        }
        match self
            .store
            .attach_policy(&account, entity.owner(), entity.name(), name)
            .await
        {
            Ok(()) => {
                self.forget_policies(&account, entity.owner(), entity.name());
                Ok(())
            }
            Err(StoreError::NotFound { .. }) => Err(no_such_policy_arn(arn)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn api_detach_policy(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
        arn: &str,
    ) -> IamApiResult<()> {
        entity.validate()?;
        let name = Self::policy_name_of(ctx, arn)?;
        let account = self.attachment_target(ctx, entity, "Detach", arn).await?;
        let detached = self
            .store
            .detach_policy(&account, entity.owner(), entity.name(), name)
            .await?;
        self.forget_policies(&account, entity.owner(), entity.name());
        if detached {
            Ok(())
        } else {
            Err(IamApiError::NoSuchEntity(format!(
                "Policy {arn} was not found."
            )))
        }
    }

    pub async fn api_list_attached_policies(
        &self,
        ctx: &CallContext,
        entity: IamEntity<'_>,
    ) -> IamApiResult<Vec<ManagedPolicy>> {
        entity.validate()?;
        let account = ctx.principal.account_id.clone();
        let operation = format!("ListAttached{}Policies", entity.kind());
        self.authorize_iam(ctx, &operation, &entity.arn(&account))
            .await?;
        self.existing_entity(&account, entity).await?;
        Ok(self
            .store
            .list_attached_policies(&account, entity.owner(), entity.name())
            .await?
            .into_iter()
            .map(|row| ManagedPolicy {
                arn: managed_policy_arn(&row.account_id, &row.policy_name),
                row,
            })
            .collect())
    }
}
