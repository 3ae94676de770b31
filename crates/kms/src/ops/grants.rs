//! CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant (§2.10).

use super::*;
use crate::grants::{CONTEXT_OPERATIONS, Grant, issue_token, read_token};

/// AWS's quota of grants on one key.
const MAX_GRANTS_PER_KEY: usize = 50_000;
const DEFAULT_GRANT_PAGE: usize = 50;
const LONGEST_GRANT_PAGE: i64 = 100;
const GRANT_ID_HEX_LEN: usize = 64;

const ALL_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

/// The grant operations a key of this spec and usage supports.
fn operations_for(key: &KeyRecord) -> &'static [&'static str] {
    match (key.key_spec.as_str(), key.key_usage.as_str()) {
        (SYMMETRIC_DEFAULT, _) => &[
            "Decrypt",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
            "CreateGrant",
            "RetireGrant",
            "DescribeKey",
        ],
        (_, "ENCRYPT_DECRYPT") => &[
            "Encrypt",
            "Decrypt",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GetPublicKey",
            "CreateGrant",
            "RetireGrant",
            "DescribeKey",
        ],
        (_, "SIGN_VERIFY") => &[
            "Sign",
            "Verify",
            "GetPublicKey",
            "CreateGrant",
            "RetireGrant",
            "DescribeKey",
        ],
        (_, "KEY_AGREEMENT") => &[
            "DeriveSharedSecret",
            "GetPublicKey",
            "CreateGrant",
            "RetireGrant",
            "DescribeKey",
        ],
        (_, "ENCAPSULATE_DECAPSULATE") => &[
            "Encapsulate",
            "Decapsulate",
            "GetPublicKey",
            "CreateGrant",
            "RetireGrant",
            "DescribeKey",
        ],
        (_, "GENERATE_VERIFY_MAC") => &[
            "GenerateMac",
            "VerifyMac",
            "CreateGrant",
            "RetireGrant",
            "DescribeKey",
        ],
        _ => &["CreateGrant", "RetireGrant", "DescribeKey"],
    }
}

fn principal_member(field: &str, value: &str) -> KmsResult<()> {
    length(field, value, 1, 256)?;
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
    {
        return Err(KmsError::constraint(
            field,
            value,
            "Member must satisfy regular expression pattern: ^[\\w+=,.@:/-]+$",
        ));
    }
    Ok(())
}

/// One of a principal ARN and a service principal: `(value, is_service)`.
fn one_principal(
    arn_field: &str,
    arn: &Option<String>,
    service_field: &str,
    service: &Option<String>,
) -> KmsResult<Option<(String, bool)>> {
    match (arn, service) {
        (Some(_), Some(_)) => Err(KmsError::Validation(format!(
            "Specify either {arn_field} or {service_field}, not both."
        ))),
        (Some(arn), None) => {
            principal_member(arn_field, arn)?;
            Ok(Some((arn.clone(), false)))
        }
        (None, Some(service)) => {
            principal_member(service_field, service)?;
            Ok(Some((service.clone(), true)))
        }
        (None, None) => Ok(None),
    }
}

fn grant_id_member(value: &Option<String>) -> KmsResult<&str> {
    let id = required(value, "grantId")?;
    length("grantId", id, 1, 128)?;
    if id.len() != GRANT_ID_HEX_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KmsError::InvalidGrantId(format!(
            "Grant ID {id} is not valid."
        )));
    }
    Ok(id)
}

fn entry(grant: &Grant) -> GrantListEntry {
    let (grantee, grantee_service) = if grant.grantee_is_service {
        (None, Some(grant.grantee.clone()))
    } else {
        (Some(grant.grantee.clone()), None)
    };
    let (retiring, retiring_service) = match (&grant.retiring, grant.retiring_is_service) {
        (Some(r), true) => (None, Some(r.clone())),
        (r, _) => (r.clone(), None),
    };
    GrantListEntry {
        key_id: Some(grant.key_arn.clone()),
        grant_id: Some(grant.grant_id.clone()),
        name: grant.name.clone(),
        creation_date: Some(epoch_seconds(grant.created_ms)),
        grantee_principal: grantee,
        grantee_service_principal: grantee_service,
        retiring_principal: retiring,
        retiring_service_principal: retiring_service,
        issuing_account: Some(grant.issuing_account.clone()),
        operations: Some(grant.operations.clone()),
        constraints: grant.constraints.clone(),
    }
}

fn grant_page(
    grants: Vec<Grant>,
    marker: &Option<String>,
    limit: Option<i64>,
) -> KmsResult<ListGrantsResponse> {
    let limit = match limit {
        None => DEFAULT_GRANT_PAGE,
        Some(n) => {
            range("limit", n, 1, LONGEST_GRANT_PAGE)?;
            usize::try_from(n).unwrap_or(DEFAULT_GRANT_PAGE)
        }
    };
    let (page, next, truncated) = paginate(
        grants,
        |g| format!("{:020}{}", g.created_ms, g.grant_id),
        marker,
        limit,
    )?;
    Ok(ListGrantsResponse {
        grants: Some(page.iter().map(entry).collect()),
        next_marker: next,
        truncated: Some(truncated),
    })
}

#[async_trait::async_trait]
impl KmsOperation for CreateGrantRequest {
    const NAME: &'static str = "CreateGrant";
    const READ_ONLY: bool = false;
    type Output = CreateGrantResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        let mut keys = vec![(
            "kms:GrantOperations".to_string(),
            self.operations.clone().unwrap_or_default(),
        )];
        if let Some(grantee) = self
            .grantee_principal
            .as_ref()
            .or(self.grantee_service_principal.as_ref())
        {
            keys.push(("kms:GranteePrincipal".into(), vec![grantee.clone()]));
        }
        if let Some(retiring) = self
            .retiring_principal
            .as_ref()
            .or(self.retiring_service_principal.as_ref())
        {
            keys.push(("kms:RetiringPrincipal".into(), vec![retiring.clone()]));
        }
        if let Some(constraints) = &self.constraints {
            let mut types = Vec::new();
            if constraints.encryption_context_equals.is_some() {
                types.push("EncryptionContextEquals".to_string());
            }
            if constraints.encryption_context_subset.is_some() {
                types.push("EncryptionContextSubset".to_string());
            }
            keys.push(("kms:GrantConstraintType".into(), types));
        }
        keys
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let operations = required(&self.operations, "operations")?;
        if operations.is_empty() {
            return Err(KmsError::constraint(
                "operations",
                "[]",
                "Member must have length greater than or equal to 1",
            ));
        }
        for operation in operations {
            if !ALL_OPERATIONS.contains(&operation.as_str()) {
                return Err(KmsError::constraint(
                    "operations",
                    operation,
                    "Member must satisfy enum value set: [Decrypt, Encrypt, GenerateDataKey, \
                     GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, Sign, Verify, \
                     GetPublicKey, CreateGrant, RetireGrant, DescribeKey, GenerateDataKeyPair, \
                     GenerateDataKeyPairWithoutPlaintext, GenerateMac, VerifyMac, \
                     DeriveSharedSecret]",
                ));
            }
        }
        let Some((grantee, grantee_is_service)) = one_principal(
            "granteePrincipal",
            &self.grantee_principal,
            "granteeServicePrincipal",
            &self.grantee_service_principal,
        )?
        else {
            return Err(null_member("granteePrincipal"));
        };
        let retiring = one_principal(
            "retiringPrincipal",
            &self.retiring_principal,
            "retiringServicePrincipal",
            &self.retiring_service_principal,
        )?;
        if let Some(name) = &self.name {
            length("name", name, 1, 256)?;
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
            {
                return Err(KmsError::constraint(
                    "name",
                    name,
                    "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
                ));
            }
        }
        grant_tokens(kms, &self.grant_tokens)?;

        let key = kms.lookup(ctx, key_id, false).await?;
        note_key(notes, &key);
        let for_aws_resource = ctx.invoked_by.is_some().to_string();
        kms.authorize(
            ctx,
            Some(&key),
            "kms:CreateGrant",
            vec![("kms:GrantIsForAWSResource".into(), vec![for_aws_resource])],
        )
        .await?;
        Kms::usable_for_crypto(&key)?;
        let supported = operations_for(&key.record);
        if let Some(unsupported) = operations.iter().find(|o| !supported.contains(&o.as_str())) {
            return Err(KmsError::Validation(format!(
                "Grant operation {unsupported} is not supported by {} with key spec {} and \
                 key usage {}.",
                key.arn, key.record.key_spec, key.record.key_usage
            )));
        }
        if let Some(constraints) = &self.constraints {
            let context_constrained = constraints.encryption_context_equals.is_some()
                || constraints.encryption_context_subset.is_some();
            if context_constrained
                && let Some(op) = operations
                    .iter()
                    .find(|o| !CONTEXT_OPERATIONS.contains(&o.as_str()))
            {
                return Err(KmsError::Validation(format!(
                    "Encryption context grant constraints are not supported for operation {op}, \
                     which takes no encryption context."
                )));
            }
            for map in [
                &constraints.encryption_context_equals,
                &constraints.encryption_context_subset,
            ] {
                context(map)?;
            }
        }

        let existing = kms.grants_of(&key).await?;
        let mut operations = operations.clone();
        operations.sort();
        operations.dedup();
        let grant = Grant {
            grant_id: String::new(),
            name: self.name.clone(),
            key_arn: key.arn.clone(),
            grantee,
            grantee_is_service,
            retiring: retiring.as_ref().map(|(r, _)| r.clone()),
            retiring_is_service: retiring.as_ref().is_some_and(|(_, s)| *s),
            operations,
            constraints: self.constraints.clone(),
            issuing_account: format!("arn:aws:iam::{}:root", key.record.account_id),
            created_ms: now_ms(),
        };
        // A named grant created again with the same parameters is the same grant.
        let same = |g: &Grant| {
            g.name.is_some()
                && g.name == grant.name
                && g.grantee == grant.grantee
                && g.grantee_is_service == grant.grantee_is_service
                && g.retiring == grant.retiring
                && g.operations == grant.operations
                && g.constraints == grant.constraints
        };
        if let Some(previous) = existing.iter().find(|g| same(g)) {
            dry_run(self.dry_run)?;
            notes.response_elements = Some(serde_json::json!({ "grantId": previous.grant_id }));
            return Ok(CreateGrantResponse {
                grant_token: Some(issue_token(kms.root_key(), previous)?),
                grant_id: Some(previous.grant_id.clone()),
            });
        }
        if existing.len() >= MAX_GRANTS_PER_KEY {
            return Err(KmsError::LimitExceeded(format!(
                "The request would exceed the limit of {MAX_GRANTS_PER_KEY} grants for {}.",
                key.arn
            )));
        }
        dry_run(self.dry_run)?;
        let grant = Grant {
            grant_id: hex::encode(
                keytrail_crypto::random_bytes(GRANT_ID_HEX_LEN / 2)
                    .map_err(|e| KmsError::Internal(e.to_string()))?,
            ),
            ..grant
        };
        kms.add_grant(&key.record, &grant).await?;
        notes.response_elements = Some(serde_json::json!({ "grantId": grant.grant_id }));
        Ok(CreateGrantResponse {
            grant_token: Some(issue_token(kms.root_key(), &grant)?),
            grant_id: Some(grant.grant_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListGrantsRequest {
    const NAME: &'static str = "ListGrants";
    const READ_ONLY: bool = true;
    type Output = ListGrantsResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let grant_id = match &self.grant_id {
            Some(_) => Some(grant_id_member(&self.grant_id)?),
            None => None,
        };
        let grantee = one_principal(
            "granteePrincipal",
            &self.grantee_principal,
            "granteeServicePrincipal",
            &self.grantee_service_principal,
        )?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let grants: Vec<Grant> = kms
            .grants_of(&key)
            .await?
            .iter()
            .filter(|g| grant_id.is_none_or(|id| g.grant_id == id))
            .filter(|g| {
                grantee
                    .as_ref()
                    .is_none_or(|(p, service)| g.grantee == *p && g.grantee_is_service == *service)
            })
            .cloned()
            .collect();
        grant_page(grants, &self.marker, self.limit)
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListRetirableGrantsRequest {
    const NAME: &'static str = "ListRetirableGrants";
    const READ_ONLY: bool = true;
    type Output = ListGrantsResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let Some((retiring, is_service)) = one_principal(
            "retiringPrincipal",
            &self.retiring_principal,
            "retiringServicePrincipal",
            &self.retiring_service_principal,
        )?
        else {
            return Err(null_member("retiringPrincipal"));
        };
        // An IAM permission only: the grants listed may be on any key.
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        let grants = kms
            .retirable_grants(&retiring, &ctx.region)
            .await?
            .into_iter()
            .filter(|g| g.retiring_is_service == is_service)
            .collect();
        grant_page(grants, &self.marker, self.limit)
    }
}

#[async_trait::async_trait]
impl KmsOperation for RetireGrantRequest {
    const NAME: &'static str = "RetireGrant";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let (grant_id, key_id) = match (&self.grant_token, &self.key_id, &self.grant_id) {
            (Some(token), _, _) => {
                length("grantToken", token, 1, 8192)?;
                let (grant_id, key_arn) = read_token(kms.root_key(), token)?;
                if self.grant_id.as_ref().is_some_and(|id| *id != grant_id) {
                    return Err(KmsError::InvalidGrantId(
                        "The grant ID does not match the grant token.".into(),
                    ));
                }
                (grant_id, key_arn)
            }
            (None, Some(key_id), Some(_)) => {
                length("keyId", key_id, 1, 2048)?;
                (grant_id_member(&self.grant_id)?.to_string(), key_id.clone())
            }
            _ => {
                return Err(KmsError::Validation(
                    "Specify either a grant token, or both the key ID and the grant ID.".into(),
                ));
            }
        };
        let key = kms.lookup(ctx, &key_id, false).await?;
        note_key(notes, &key);
        let grant = kms
            .grants_of(&key)
            .await?
            .iter()
            .find(|g| g.grant_id == grant_id)
            .cloned()
            .ok_or_else(|| KmsError::NotFound(format!("Grant ID {grant_id} not found")))?;
        // Not a policy permission: the retiring principal, a grantee the grant lets retire it,
        // or the root user of the account that owns the key.
        let principal = &ctx.principal;
        let may_retire = grant.retiree_names(principal)
            || (grant.grantee_names(principal)
                && grant.operations.iter().any(|o| o == "RetireGrant"))
            || (matches!(principal.kind, keytrail_audit::PrincipalKind::Root)
                && principal.account_id == key.record.account_id);
        if !may_retire {
            return Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: kms:RetireGrant on resource: {} because \
                 it is neither the grant's retiring principal nor a grantee allowed to retire it",
                principal.arn(),
                key.arn
            )));
        }
        ctx.authorized_by_grant();
        dry_run(self.dry_run)?;
        if !kms.remove_grant(&key.record, &grant_id).await? {
            return Err(KmsError::NotFound(format!("Grant ID {grant_id} not found")));
        }
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for RevokeGrantRequest {
    const NAME: &'static str = "RevokeGrant";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let grant_id = grant_id_member(&self.grant_id)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        dry_run(self.dry_run)?;
        if !kms.remove_grant(&key.record, grant_id).await? {
            return Err(KmsError::NotFound(format!("Grant ID {grant_id} not found")));
        }
        Ok(EmptyResponse {})
    }
}
